/*
 * pipeline.c - `shrink pipeline teacher-student-4bit T OUT --student-layers L --data TRAIN
 * --tokens N --eval TEXT [--scheme q4_K_M]`: the seed pipeline of issue 12 as one command.
 * A recipe is a list of shrink command lines run in order, each the same code path as typing
 * it (cmd_student, cmd_distill, cmd_quantize, cmd_compare): cut the student, distill it from
 * the teacher, quantize it, and print one `shrink compare` table of the teacher, the student
 * and the quantized student (size, ppl, KL to the teacher, tok/s). Every step is echoed on
 * stderr as "$ shrink ..." before it runs, so the recipe can be replayed by hand (and a later
 * recipe file can list the same lines). The first failing step stops the pipeline with its
 * exit code.
 */
#include "cli.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct pipe_opts {
    int32_t     student_layers;
    const char *data;
    const char *eval;
    int64_t     tokens;
    const char *scheme;
    int32_t     batch;
    int32_t     ctx;
    double      lr;
    double      alpha;
    double      temperature;
    int32_t     top_k;
    uint64_t    seed;
    int64_t     eval_tokens;
    bool        no_speed;
    int32_t     student_hidden;
    int32_t     teacher_threads;
} pipe_opts;

#define O(f) offsetof(pipe_opts, f)
static const cli_opt pipe_rows[] = {
    {"--student-layers", NULL, CLI_OPT_INT, O(student_layers), "L", 1, 1 << 20,
     "layers of the student (every other one of the teacher's)"},
    {"--data", NULL, CLI_OPT_STR, O(data), "TRAIN", 0, 0,
     "training data for distillation (token file or text)"},
    {"--tokens", "-n", CLI_OPT_U64, O(tokens), "N", 0, 0,
     "training tokens (steps = N / (batch x ctx), at least 1)"},
    {"--eval", NULL, CLI_OPT_STR, O(eval), "TEXT", 0, 0, "held-out text of the compare table"},
    {"--scheme", NULL, CLI_OPT_STR, O(scheme), "NAME", 0, 0,
     "quantization scheme (default q4_K_M)"},
    {"--batch", NULL, CLI_OPT_INT, O(batch), "B", 1, 1 << 16, "distill batch (default 4)"},
    {"--ctx", NULL, CLI_OPT_INT, O(ctx), "T", 2, 1 << 20, "distill context (default 64)"},
    {"--lr", NULL, CLI_OPT_FLOAT, O(lr), "LR", 0, 10, "distill peak learning rate (1e-3)"},
    {"--alpha", NULL, CLI_OPT_FLOAT, O(alpha), "A", 0, 1, "weight of the KL term (0.9)"},
    {"--temperature", NULL, CLI_OPT_FLOAT, O(temperature), "TAU", 1e-6, 1e6,
     "distill temperature (1)"},
    {"--top-k", NULL, CLI_OPT_INT, O(top_k), "K", 0, 1 << 24, "distill on the teacher's top K"},
    {"--seed", NULL, CLI_OPT_U64, O(seed), "S", 0, 0, "seed of the distill windows (1)"},
    {"--eval-tokens", NULL, CLI_OPT_U64, O(eval_tokens), "N", 0, 0,
     "tokens of --eval scored (default 4096)"},
    {"--no-speed", NULL, CLI_OPT_FLAG, O(no_speed), NULL, 0, 0,
     "no tok/s columns in the table"},
    {"--student-hidden", NULL, CLI_OPT_INT, O(student_hidden), "D", 1, 1 << 24,
     "hidden size of the student (shrink student --hidden)"},
    {"--teacher-threads", NULL, CLI_OPT_INT, O(teacher_threads), "N", 1, 4096,
     "threads of the teacher in distill (default: --threads)"},
};
#undef O

static const cli_spec spec = {
    .name        = "pipeline",
    .synopsis    = "teacher-student-4bit TEACHER OUT --student-layers L --data TRAIN --tokens N\n"
                   "       --eval TEXT [--scheme q4_K_M] [--batch B] [--ctx T] [--lr LR]\n"
                   "       [--alpha A] [--temperature TAU] [--top-k K] [--seed S] [--no-speed]",
    .description = "Runs a recipe of shrink commands. teacher-student-4bit: shrink student (every\n"
                   "other layer, L of them) -> OUT/student.gguf; shrink distill on TRAIN for N\n"
                   "tokens -> OUT/distill/model.gguf; shrink quantize --scheme ->\n"
                   "OUT/student-SCHEME.gguf; shrink compare of the teacher (base), the student\n"
                   "and its quantized copy on --eval. Each step is echoed on stderr as the\n"
                   "command line it runs; the first failure stops the pipeline.",
    .opts        = pipe_rows,
    .n_opts      = sizeof pipe_rows / sizeof pipe_rows[0],
    .n_pos_min   = 3,
    .n_pos_max   = 3,
    .model       = true,
};

#define MAX_ARGS 48

typedef struct step {
    int (*run)(int argc, char **argv);
    int   argc;
    char *argv[MAX_ARGS];
} step;

static void add(step *s, const char *a) {
    if (s->argc < MAX_ARGS - 1) s->argv[s->argc++] = strdup(a);
}

static void addf(step *s, const char *fmt, double v) {
    char b[64];
    snprintf(b, sizeof b, fmt, v);
    add(s, b);
}

static void add_common(step *s, const cli_common *c) {
    char b[32];
    snprintf(b, sizeof b, "%d", c->threads);
    add(s, "--threads");
    add(s, b);
    if (c->tokenizer) {
        add(s, "--tokenizer");
        add(s, c->tokenizer);
    }
    if (c->progress) add(s, "--progress");
    if (c->json) add(s, "--json");
}

static void step_free(step *s) {
    for (int i = 0; i < s->argc; i++) free(s->argv[i]);
    s->argc = 0;
}

static int usage_error(const char *msg) {
    fprintf(stderr, "shrink pipeline: %s\n\n", msg);
    cli_usage(&spec, stderr);
    return CLI_USAGE;
}

int cmd_pipeline(int argc, char **argv) {
    cli_common common;
    char *pos[3];
    int n_pos;
    pipe_opts o = {.scheme = "q4_K_M", .batch = 4, .ctx = 64, .lr = 1e-3, .alpha = 0.9,
                   .temperature = 1.0, .seed = 1, .eval_tokens = 4096};
    int rc = cli_parse(&spec, argc, argv, &o, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    if (strcmp(pos[0], "teacher-student-4bit"))
        return usage_error("unknown recipe (the one recipe is teacher-student-4bit)");
    if (!o.student_layers) return usage_error("--student-layers L is required");
    if (!o.data) return usage_error("--data TRAIN is required");
    if (!o.eval) return usage_error("--eval TEXT is required");
    if (o.tokens < 1) return usage_error("--tokens N (N >= 1) is required");
    const char *teacher = pos[1], *out = pos[2];
    cli_io io[] = {{"TEACHER", teacher, CLI_IN},
                   {"--data", o.data, CLI_IN},
                   {"--eval", o.eval, CLI_IN},
                   {"--tokenizer", common.tokenizer, CLI_IN},
                   {"OUT", out, CLI_OUT_IN_DIR}};
    if ((rc = cli_check_io(io, 5)) != CLI_OK) return rc;
    bool created = false;
    if (mkdir(out, 0777) == 0) created = true;
    else if (errno != EEXIST) return cli_fail("%s: cannot create the folder: %s", out,
                                              strerror(errno));
    size_t cap = strlen(out) + 64;
    char *student = malloc(cap), *dir = malloc(cap), *trained = malloc(cap), *quant = malloc(cap);
    if (!student || !dir || !trained || !quant) {
        free(student);
        free(dir);
        free(trained);
        free(quant);
        return cli_fail("out of memory");
    }
    snprintf(student, cap, "%s/student.gguf", out);
    snprintf(dir, cap, "%s/distill", out);
    snprintf(trained, cap, "%s/distill/model.gguf", out);
    snprintf(quant, cap, "%s/student-%s.gguf", out, o.scheme);
    const int64_t per_step = (int64_t)o.batch * o.ctx;
    const int64_t steps = o.tokens / per_step > 0 ? o.tokens / per_step : 1;

    step s[4] = {{.run = cmd_student}, {.run = cmd_distill}, {.run = cmd_quantize},
                 {.run = cmd_compare}};
    add(&s[0], "student"); add(&s[0], teacher); add(&s[0], student);
    add(&s[0], "--layers"); addf(&s[0], "%.0f", o.student_layers);
    if (o.student_hidden) { add(&s[0], "--hidden"); addf(&s[0], "%.0f", o.student_hidden); }
    add_common(&s[0], &common);

    add(&s[1], "distill"); add(&s[1], "--teacher"); add(&s[1], teacher);
    add(&s[1], "--student"); add(&s[1], student); add(&s[1], "--data"); add(&s[1], o.data);
    add(&s[1], "--out"); add(&s[1], dir); add(&s[1], "--to"); add(&s[1], "gguf");
    add(&s[1], "--steps"); addf(&s[1], "%.0f", (double)steps);
    add(&s[1], "--batch"); addf(&s[1], "%.0f", o.batch);
    add(&s[1], "--ctx"); addf(&s[1], "%.0f", o.ctx);
    add(&s[1], "--lr"); addf(&s[1], "%.9g", o.lr);
    add(&s[1], "--warmup"); addf(&s[1], "%.0f", (double)(steps / 10));
    add(&s[1], "--alpha"); addf(&s[1], "%.9g", o.alpha);
    add(&s[1], "--temperature"); addf(&s[1], "%.9g", o.temperature);
    if (o.top_k) { add(&s[1], "--top-k"); addf(&s[1], "%.0f", o.top_k); }
    add(&s[1], "--seed"); addf(&s[1], "%.0f", (double)o.seed);
    if (o.teacher_threads) {
        add(&s[1], "--teacher-threads");
        addf(&s[1], "%.0f", o.teacher_threads);
    }
    add_common(&s[1], &common);

    add(&s[2], "quantize"); add(&s[2], trained); add(&s[2], quant);
    add(&s[2], "--scheme"); add(&s[2], o.scheme);
    add_common(&s[2], &common);

    add(&s[3], "compare"); add(&s[3], teacher); add(&s[3], trained); add(&s[3], quant);
    add(&s[3], "--text"); add(&s[3], o.eval);
    add(&s[3], "--tokens"); addf(&s[3], "%.0f", (double)o.eval_tokens);
    if (o.no_speed) add(&s[3], "--no-speed");
    add_common(&s[3], &common);

    rc = CLI_OK;
    for (int i = 0; i < 4 && rc == CLI_OK; i++) {
        fprintf(stderr, "pipeline step %d/4: $ shrink", i + 1);
        for (int a = 0; a < s[i].argc; a++) fprintf(stderr, " %s", s[i].argv[a]);
        fprintf(stderr, "\n");
        fflush(stdout);
        rc = cli_run_child(s[i].run, s[i].argc, s[i].argv, NULL);   /* a process per step */
        fflush(stdout);
        if (rc != CLI_OK) fprintf(stderr, "shrink pipeline: step %d (%s) failed\n", i + 1,
                                  s[i].argv[0]);
    }
    for (int i = 0; i < 4; i++) step_free(&s[i]);
    if (rc != CLI_OK && created) rmdir(out); /* only if still empty */
    free(student);
    free(dir);
    free(trained);
    free(quant);
    return rc;
}
