/*
 * eval.c - `shrink eval MODEL... --task T --data FILE`: task accuracy of one or several models
 * side by side (the first is the base), and `shrink eval --make-lambada|--make-choice TEXT
 * OUT.jsonl`, which builds a task file from plain text.
 *
 * The work is the library's (src/eval/tasks.c): shrink_task_load reads and checks the file,
 * shrink_eval_task scores it with one model. Models are loaded one after the other (only one
 * is in memory at a time); every model must tokenize every item to the base's token ids.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EVAL_MAX_MODELS 16

typedef struct eval_opts {
    const char *task;
    const char *data;
    int32_t     limit;
    int32_t     ctx;
    int32_t     max_new;
    const char *stop;
    const char *make_lambada;
    const char *make_choice;
    uint64_t    seed;
} eval_opts;

#define O(field) offsetof(eval_opts, field)
static const cli_opt eval_rows[] = {
    {"--task",         NULL, CLI_OPT_STR, O(task),         "T", 0, 0,
     "lambada, choice or generate (required unless --make-*)"},
    {"--data",         NULL, CLI_OPT_STR, O(data),         "FILE", 0, 0,
     "the task file, JSONL (required unless --make-*)"},
    {"--limit",        "-n", CLI_OPT_INT, O(limit),        "N", 0, 1 << 30,
     "score only the first N items (default: all)"},
    {"--ctx",          "-c", CLI_OPT_INT, O(ctx),          "N", 0, 1 << 24,
     "context length; longer items lose tokens from the left (default: the model's)"},
    {"--max-new",      NULL, CLI_OPT_INT, O(max_new),      "N", 1, 1 << 20,
     "generate: most new tokens (default 32)"},
    {"--stop",         NULL, CLI_OPT_STR, O(stop),         "S", 0, 0,
     "generate: the generation ends at S (default a newline; \\n is a newline)"},
    {"--make-lambada", NULL, CLI_OPT_STR, O(make_lambada), "TEXT", 0, 0,
     "write a lambada task file OUT.jsonl from TEXT (no model needed)"},
    {"--make-choice",  NULL, CLI_OPT_STR, O(make_choice),  "TEXT", 0, 0,
     "write a 4-way next-sentence choice task file OUT.jsonl from TEXT"},
    {"--seed",         NULL, CLI_OPT_U64, O(seed),         "N", 0, 0,
     "seed of --make-lambada / --make-choice (default 1)"},
};
#undef O

static const cli_spec spec = {
    .name        = "eval",
    .synopsis    = "MODEL... --task lambada|choice|generate --data FILE [--limit N] [options]\n"
                   "       shrink eval --make-lambada TEXT OUT.jsonl [--seed N] [--limit N]\n"
                   "       shrink eval --make-choice TEXT OUT.jsonl [--seed N] [--limit N]",
    .description = "Task accuracy, as lm-evaluation-harness measures it, of every MODEL side by side\n"
                   "(the first is the base), with standard errors. lambada: JSONL {\"text\"}, the\n"
                   "last word predicted greedily (acc) and its log-likelihood; choice: JSONL\n"
                   "{\"context\", \"choices\", \"label\"}, the choice of highest log-likelihood (acc)\n"
                   "and of highest log-likelihood per byte (acc_norm); generate: JSONL {\"prompt\",\n"
                   "\"answer\"}, a greedy generation up to --stop, exact and contains match.\n"
                   "docs/eval.md has the formats and rules.",
    .opts        = eval_rows,
    .n_opts      = sizeof eval_rows / sizeof eval_rows[0],
    .n_pos_min   = 1,
    .n_pos_max   = EVAL_MAX_MODELS,
    .model       = true,
};

static const char *base_name(const char *path, char *buf, size_t cap) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && path[b - 1] != '/') b--;
    snprintf(buf, cap, "%.*s", (int)(n - b), path + b);
    return buf;
}

static int make_file(const eval_opts *o, const cli_common *common, char **pos, int n_pos) {
    if (o->make_lambada && o->make_choice)
        return cli_fail("give one of --make-lambada and --make-choice");
    if (n_pos != 1) {
        fprintf(stderr, "shrink eval: --make-* takes one output file OUT.jsonl\n\n");
        cli_usage(&spec, stderr);
        return CLI_USAGE;
    }
    shrink_task_kind kind = o->make_lambada ? SHRINK_TASK_LAMBADA : SHRINK_TASK_CHOICE;
    const char      *text = o->make_lambada ? o->make_lambada : o->make_choice;
    int64_t          n    = 0;
    double           t0   = shrink_time();
    shrink_status st = shrink_task_make(kind, text, pos[0], o->seed, o->limit, &n);
    if (st != SHRINK_OK) return cli_fail_status(st);
    double s = shrink_time() - t0;
    if (common->json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_key(&j, "task");    cli_json_str(&j, shrink_task_kind_name(kind));
        cli_json_key(&j, "text");    cli_json_str(&j, text);
        cli_json_key(&j, "out");     cli_json_str(&j, pos[0]);
        cli_json_key(&j, "seed");    cli_json_u64(&j, o->seed);
        cli_json_key(&j, "items");   cli_json_int(&j, n);
        cli_json_key(&j, "seconds"); cli_json_num(&j, s);
        cli_json_end(&j);
    } else {
        printf("%s: %lld %s items from %s (seed %llu)\n", pos[0], (long long)n,
               shrink_task_kind_name(kind), text, (unsigned long long)o->seed);
    }
    return CLI_OK;
}

typedef struct eval_row {
    shrink_task_result r;
    int32_t            ctx;
    bool               done;
} eval_row;

/* "\n" and "\t" in a --stop value become the characters (in place). */
static void unescape(char *s) {
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] == 'n') { *w++ = '\n'; r++; }
        else if (r[0] == '\\' && r[1] == 't') { *w++ = '\t'; r++; }
        else *w++ = *r;
    }
    *w = '\0';
}

static int run_model(const char *path, const cli_common *common, const eval_opts *o,
                     const shrink_task *task, const shrink_task_params *tp, eval_row *row) {
    shrink_model   *m   = NULL;
    shrink_context *ctx = NULL;
    char            name[256], label[300];
    int rc = cli_load_model(path, common, CLI_TOK_NEED, &m);
    if (rc != CLI_OK) return rc;
    shrink_model_info mi;
    shrink_model_get_info(m, &mi);
    int32_t n = o->ctx ? o->ctx : mi.max_seq_len;
    if (n > mi.max_seq_len) {
        shrink_model_free(m);
        return cli_fail("--ctx %d is larger than the context %d of %s", n, mi.max_seq_len, path);
    }
    shrink_status st = shrink_context_create(&ctx, m, n, n);
    if (st != SHRINK_OK) {
        shrink_model_free(m);
        return cli_fail("%s: %s", path, shrink_last_error());
    }
    row->ctx = n;
    cli_progress       prog;
    shrink_task_params p = *tp;
    p.progress           = cli_progress_cb;
    p.user               = &prog;
    snprintf(label, sizeof label, "eval %s", base_name(path, name, sizeof name));
    cli_progress_start(&prog, label, common);
    st = shrink_eval_task(m, ctx, task, &p, &row->r);
    cli_progress_end(&prog);
    if (st != SHRINK_OK) {
        const char *msg = shrink_last_error();
        rc = cli_fail("%s: %s", o->data, msg && *msg ? msg : shrink_status_name(st));
    }
    row->done = rc == CLI_OK;
    shrink_context_free(ctx);
    shrink_model_free(m);
    return rc;
}

static void print_json(const eval_opts *o, char **paths, int n, const shrink_task *task,
                       const eval_row *rows, const shrink_task_params *tp) {
    char     name[256];
    cli_json j;
    cli_json_begin(&j, stdout);
    cli_json_key(&j, "task");    cli_json_str(&j, shrink_task_kind_name(task->kind));
    cli_json_key(&j, "data");    cli_json_str(&j, o->data);
    cli_json_key(&j, "items");   cli_json_int(&j, task->n_items);
    cli_json_key(&j, "base");    cli_json_str(&j, paths[0]);
    cli_json_key(&j, "threads"); cli_json_int(&j, shrink_get_threads());
    if (task->kind == SHRINK_TASK_GENERATE) {
        cli_json_key(&j, "max_new"); cli_json_int(&j, tp->max_new);
        cli_json_key(&j, "stop");    cli_json_str(&j, tp->stop);
    }
    cli_json_key(&j, "models");
    cli_json_arr_begin(&j);
    for (int i = 0; i < n; i++) {
        const shrink_task_result *r = &rows[i].r;
        cli_json_obj_begin(&j);
        cli_json_key(&j, "name");    cli_json_str(&j, base_name(paths[i], name, sizeof name));
        cli_json_key(&j, "path");    cli_json_str(&j, paths[i]);
        cli_json_key(&j, "is_base"); cli_json_bool(&j, i == 0);
        cli_json_key(&j, "ctx");     cli_json_int(&j, rows[i].ctx);
        if (task->kind == SHRINK_TASK_GENERATE) {
            cli_json_key(&j, "exact_match");       cli_json_num(&j, r->acc);
            cli_json_key(&j, "exact_match_se");    cli_json_num(&j, r->acc_se);
            cli_json_key(&j, "contains_match");    cli_json_num(&j, r->acc_norm);
            cli_json_key(&j, "contains_match_se"); cli_json_num(&j, r->acc_norm_se);
        } else {
            cli_json_key(&j, "acc");    cli_json_num(&j, r->acc);
            cli_json_key(&j, "acc_se"); cli_json_num(&j, r->acc_se);
            if (task->kind == SHRINK_TASK_CHOICE) {
                cli_json_key(&j, "acc_norm");    cli_json_num(&j, r->acc_norm);
                cli_json_key(&j, "acc_norm_se"); cli_json_num(&j, r->acc_norm_se);
            }
            cli_json_key(&j, "mean_loglik");    cli_json_num(&j, r->mean_loglik);
            cli_json_key(&j, "mean_loglik_se"); cli_json_num(&j, r->mean_loglik_se);
            if (task->kind == SHRINK_TASK_LAMBADA) {
                cli_json_key(&j, "ppl"); cli_json_num(&j, r->ppl);
            }
        }
        cli_json_key(&j, "truncated");        cli_json_int(&j, r->n_truncated);
        cli_json_key(&j, "tokens_evaluated"); cli_json_int(&j, r->tokens_evaluated);
        cli_json_key(&j, "seconds");          cli_json_num(&j, r->seconds);
        cli_json_key(&j, "per_item");
        cli_json_arr_begin(&j);
        for (int64_t k = 0; k < r->n_items; k++) {
            const shrink_task_item_result *it = &r->items[k];
            cli_json_obj_begin(&j);
            cli_json_key(&j, "line");    cli_json_int(&j, task->items[k].line);
            cli_json_key(&j, "correct"); cli_json_bool(&j, it->correct);
            if (task->kind == SHRINK_TASK_GENERATE) {
                cli_json_key(&j, "contains");   cli_json_bool(&j, it->correct_norm);
                cli_json_key(&j, "generation"); cli_json_str(&j, it->generation);
            } else {
                cli_json_key(&j, "loglik"); cli_json_num(&j, it->loglik);
                if (task->kind == SHRINK_TASK_CHOICE) {
                    cli_json_key(&j, "pred");         cli_json_int(&j, it->pred);
                    cli_json_key(&j, "correct_norm"); cli_json_bool(&j, it->correct_norm);
                }
            }
            cli_json_obj_end(&j);
        }
        cli_json_arr_end(&j);
        cli_json_obj_end(&j);
    }
    cli_json_arr_end(&j);
    cli_json_end(&j);
}

static void print_table(const eval_opts *o, char **paths, int n, const shrink_task *task,
                        const eval_row *rows) {
    char name[256];
    if (task->kind == SHRINK_TASK_LAMBADA) {
        printf("| model | acc %% | mean loglik | ppl | truncated | s |\n");
        printf("| --- | ---: | ---: | ---: | ---: | ---: |\n");
    } else if (task->kind == SHRINK_TASK_CHOICE) {
        printf("| model | acc %% | acc_norm %% | mean loglik (right choice) | truncated | s |\n");
        printf("| --- | ---: | ---: | ---: | ---: | ---: |\n");
    } else {
        printf("| model | exact match %% | contains %% | truncated | s |\n");
        printf("| --- | ---: | ---: | ---: | ---: |\n");
    }
    for (int i = 0; i < n; i++) {
        const shrink_task_result *r = &rows[i].r;
        printf("| %s%s | %.2f ± %.2f", base_name(paths[i], name, sizeof name),
               i == 0 ? " (base)" : "", 100 * r->acc, 100 * r->acc_se);
        if (task->kind == SHRINK_TASK_LAMBADA)
            printf(" | %.4f ± %.4f | %.3f", r->mean_loglik, r->mean_loglik_se, r->ppl);
        else if (task->kind == SHRINK_TASK_CHOICE)
            printf(" | %.2f ± %.2f | %.4f ± %.4f", 100 * r->acc_norm, 100 * r->acc_norm_se,
                   r->mean_loglik, r->mean_loglik_se);
        else
            printf(" | %.2f ± %.2f", 100 * r->acc_norm, 100 * r->acc_norm_se);
        printf(" | %lld | %.1f |\n", (long long)r->n_truncated, r->seconds);
    }
    printf("\ntask: %s, %s, %lld items; ± is one standard error", shrink_task_kind_name(task->kind),
           o->data, (long long)task->n_items);
    if (task->kind == SHRINK_TASK_CHOICE)
        printf("; acc_norm: log-likelihood per byte of the choice");
    printf("\n");
}

int cmd_eval(int argc, char **argv) {
    cli_common  common;
    char       *pos[EVAL_MAX_MODELS];
    int         n_pos;
    eval_opts   opts = {.seed = 1, .max_new = 32};
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    if (opts.make_lambada || opts.make_choice) return make_file(&opts, &common, pos, n_pos);
    if (!opts.task || !opts.data) {
        fprintf(stderr, "shrink eval: missing --%s\n\n", opts.task ? "data FILE" : "task T");
        cli_usage(&spec, stderr);
        return CLI_USAGE;
    }
    shrink_task_kind kind;
    if (shrink_task_kind_parse(opts.task, &kind) != SHRINK_OK) {
        fprintf(stderr, "shrink eval: %s\n\n", shrink_last_error());
        cli_usage(&spec, stderr);
        return CLI_USAGE;
    }
    for (int i = 0; i < n_pos; i++)   /* fail before any work */
        if (access(pos[i], R_OK) != 0) return cli_fail("%s: %s", pos[i], strerror(errno));
    char stop[256] = "\n";
    if (opts.stop) {
        snprintf(stop, sizeof stop, "%s", opts.stop);
        unescape(stop);
    }
    shrink_task_params tp = shrink_task_params_default();
    tp.max_new            = opts.max_new;
    tp.stop               = stop;
    shrink_task *task     = NULL;
    shrink_status st      = shrink_task_load(&task, opts.data, kind, opts.limit);
    if (st != SHRINK_OK) return cli_fail_status(st);
    eval_row *rows = calloc((size_t)n_pos, sizeof *rows);
    if (!rows) {
        shrink_task_free(task);
        return cli_fail("out of memory");
    }
    for (int i = 0; i < n_pos && rc == CLI_OK; i++) {
        rc = run_model(pos[i], &common, &opts, task, &tp, &rows[i]);
        if (rc != CLI_OK || i == 0) continue;
        for (int64_t k = 0; k < task->n_items; k++)
            if (rows[i].r.items[k].ids_hash != rows[0].r.items[k].ids_hash) {
                rc = cli_fail("%s tokenizes %s line %lld differently from the base %s: the "
                              "models cannot be compared item by item", pos[i], opts.data,
                              (long long)task->items[k].line, pos[0]);
                break;
            }
    }
    if (rc == CLI_OK) {
        for (int i = 0; i < n_pos; i++)
            if (rows[i].r.n_truncated)
                cli_warn("%s: %lld of %lld items were truncated from the left to fit a context "
                         "of %d", pos[i], (long long)rows[i].r.n_truncated,
                         (long long)task->n_items, rows[i].ctx);
        if (common.json) print_json(&opts, pos, n_pos, task, rows, &tp);
        else print_table(&opts, pos, n_pos, task, rows);
    }
    for (int i = 0; i < n_pos; i++) shrink_task_result_free(&rows[i].r);
    free(rows);
    shrink_task_free(task);
    return rc;
}
