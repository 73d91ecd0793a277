/*
 * compare.c - `shrink compare BASE MODEL... --text FILE`: one table over a base model and
 * compressed versions of it: dtypes of the weight matrices, bits per weight, file size,
 * perplexity, Δppl against the base, KL divergence from the base (mean, 99th percentile),
 * same-top-1 rate, prompt and decode speed, peak RSS. Perplexity, Δppl (paired with the base),
 * KL mean and same-top-1 carry ± their standard error over the scored tokens, and a "~" marks a
 * difference from the base no larger than its error; speeds are shrink_bench's medians, with a
 * warning on stderr when a test's runs spread by more than 10 %; --no-speed drops the speed
 * columns.
 *
 * The work is the library's: shrink_compare (src/eval/compare.c) evaluates every model in
 * lockstep on the windows of shrink_perplexity, so a model's perplexity here equals
 * `shrink ppl` with the same --ctx/--stride/--llama-cpp; shrink_bench measures the speeds as
 * `shrink bench` does.
 *
 * Processes: the parent never loads a model. The quality pass (all models loaded at once) runs
 * in one forked child; then each model's speed runs in a child of its own that loads only that
 * model, and the child's peak RSS (ru_maxrss from wait4) is the model's: load + pp + tg runs,
 * without the other models or the quality pass's buffers. Results come back through pipes. The
 * children are forked before this process has started any OpenMP thread (libgomp's pool does
 * not survive fork).
 *
 * --shard I/N scores share I of the windows (no speed runs) and writes, from the quality
 * child, JSON with every model's per-token KL, NLL and same-top-1; `shrink merge-results`
 * joins the shards into this command's output for the whole text (docs/scale.md).
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define CMP_MAX_MODELS 16

typedef struct cmp_opts {
    const char *text;
    int32_t     ctx;
    int32_t     stride;
    bool        llama_cpp;
    int32_t     tokens;
    bool        no_speed;
    int32_t     pp;
    int32_t     tg;
    int32_t     reps;
    cli_list    base_lora;
    const char *shard;
} cmp_opts;

#define O(field) offsetof(cmp_opts, field)
static const cli_opt compare_rows[] = {
    {"--text",      "-f", CLI_OPT_STR,  O(text),      "FILE", 0, 0,
     "UTF-8 text to score (required)"},
    {"--ctx",       "-c", CLI_OPT_INT,  O(ctx),       "N", 0, 1 << 24,
     "window length in tokens (default min(base context, 512)), as shrink ppl"},
    {"--stride",    NULL, CLI_OPT_INT,  O(stride),    "S", 0, 1 << 24,
     "sliding window step (default ctx/2), as shrink ppl"},
    {"--llama-cpp", NULL, CLI_OPT_FLAG, O(llama_cpp), NULL, 0, 0,
     "llama-perplexity's windows: chunks of ctx, BOS each, 2nd half scored"},
    {"--tokens",    "-n", CLI_OPT_INT,  O(tokens),    "N", 0, 1 << 30,
     "score only the first windows holding N tokens (default: the whole text)"},
    {"--no-speed",  NULL, CLI_OPT_FLAG, O(no_speed),  NULL, 0, 0,
     "skip the speed runs: no pp, tg and peak RSS columns"},
    {"--pp",        NULL, CLI_OPT_INT,  O(pp),        "N", 0, 1 << 20,
     "prompt tokens of the pp test (default 128, capped at the context; 0 = skip)"},
    {"--tg",        NULL, CLI_OPT_INT,  O(tg),        "N", 0, 1 << 20,
     "tokens of the decode test (default 64, capped at the context; 0 = skip)"},
    {"--reps",      "-r", CLI_OPT_INT,  O(reps),      "N", 1, 1000,
     "measured repetitions of each speed test after one warm-up (default 3)"},
    {"--base-lora", NULL, CLI_OPT_LIST, O(base_lora), "FILE[:SCALE]", 0, 0,
     "apply a LoRA adapter to BASE at run time (repeatable; --lora applies to the MODELs)"},
    {"--shard",     NULL, CLI_OPT_STR,  O(shard),     "I/N", 0, 0,
     "score only share I of N of the windows (no speed runs; JSON with the per-token values "
     "that `shrink merge-results` joins)"},
};
#undef O

static const cli_spec spec = {
    .name        = "compare",
    .synopsis    = "BASE MODEL... --text FILE [--ctx N] [--stride S] [--llama-cpp] [--tokens N]\n"
                   "       [--no-speed] [--pp N] [--tg N] [--reps N] [--shard I/N] [options]",
    .description = "Scores BASE and every MODEL on FILE in lockstep and prints one markdown row per\n"
                   "model: weight dtypes, bits per weight, file size, perplexity (equal to shrink\n"
                   "ppl's with the same windows), delta-ppl vs BASE, KL(P_base || P_model) per\n"
                   "token (mean, 99th percentile), same-top-1 %, pp and tg tokens/s (shrink\n"
                   "bench's method) and peak RSS (each model alone in a forked child). All\n"
                   "models must share BASE's vocabulary and tokenization. --lora adapters apply\n"
                   "to every MODEL, --base-lora ones to BASE, at run time without merging (as\n"
                   "--load-as quantizes the MODELs only); docs/adapters.md.",
    .opts        = compare_rows,
    .n_opts      = sizeof compare_rows / sizeof compare_rows[0],
    .n_pos_min   = 2,
    .n_pos_max   = CMP_MAX_MODELS,
    .model       = true,
    .load_as     = true,
    .lora        = true,
};

/* One model's row; filled in the children and sent through a pipe (same binary: same layout). */
typedef struct cmp_row {
    char                  scheme[96];  /* dtypes of the 2-D tensors, "q4_K/q6_K" */
    double                bpw;         /* 8 x tensor bytes / tensor elements */
    uint64_t              file_bytes;
    int64_t               n_params;
    shrink_compare_result q;
    bool                  speed;       /* speed measured */
    int32_t               pp, tg;      /* the test sizes used */
    shrink_bench_result   s;
    uint64_t              peak_rss;    /* of the speed child */
} cmp_row;

typedef struct cmp_quality {           /* what the quality child returns */
    int32_t ctx;
    int32_t stride;
    int64_t windows_total;             /* of the whole text (a shard scores its share) */
    cmp_row rows[CMP_MAX_MODELS];
} cmp_quality;

typedef struct cmp_job {
    const cmp_opts   *opts;
    const cli_common *common;
    char            **paths;           /* [0] is the base */
    int               n;
    const char       *text;
    size_t            text_bytes;
    int               model;           /* speed child: which model */
    int32_t           shard, n_shards; /* --shard I/N (n_shards 0: the whole text) */
} cmp_job;

static const char *base_name(const char *path, char *buf, size_t cap) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && path[b - 1] != '/') b--;
    snprintf(buf, cap, "%.*s", (int)(n - b), path + b);
    return buf;
}

/* Model i's name in the table: its file name, or parent/name when another file of the run has
 * the same name (run1/model.gguf and run2/model.gguf; the same path twice keeps the name). */
/* The adapters model i gets: --base-lora for BASE, --lora for the MODELs. */
static const cli_list *model_lora(const cmp_job *job, int i) {
    return i == 0 ? &job->opts->base_lora : &job->common->lora;
}

/* The options model i is loaded with: --load-as and --lora are the MODELs', --base-lora
 * BASE's. */
static cli_common model_common(const cmp_job *job, int i) {
    cli_common c = *job->common;
    if (i == 0) {
        c.load_as = NULL;
        c.lora = job->opts->base_lora;
    }
    return c;
}

static const char *model_label(const cmp_job *job, int i, char *buf, size_t cap) {
    char other[256];
    base_name(job->paths[i], buf, cap);
    for (int k = 0; k < job->n; k++) {
        if (k == i || strcmp(job->paths[k], job->paths[i]) == 0 ||
            strcmp(base_name(job->paths[k], other, sizeof other), buf) != 0)
            continue;
        const char *p = job->paths[i];
        size_t n = strlen(p);
        while (n > 1 && p[n - 1] == '/') n--;
        size_t b = n, slashes = 0;
        while (b > 0 && !(p[b - 1] == '/' && ++slashes == 2)) b--;
        snprintf(buf, cap, "%.*s", (int)(n - b), p + b);
        break;
    }
    if (model_lora(job, i)->n > 0) {
        size_t len = strlen(buf);
        snprintf(buf + len, cap - len, " + lora");
    }
    return buf;
}

/* ==== child processes ===================================================================== */

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static size_t read_all(int fd, void *buf, size_t n) {
    char  *p   = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    return got;
}

typedef int (*child_fn)(const cmp_job *job, void *out);

/* Runs fn(job, out) in a forked child, which sends `out` (bytes long) back through a pipe.
 * Returns the child's exit code (it printed its own message) or CLI_ERR; *max_rss gets the
 * child's peak RSS in bytes. The process must not have started OpenMP's thread pool before
 * (libgomp's does not survive fork: the child hangs in its first parallel region): pipeline
 * and recipe steps therefore each run in their own child (cli_run_child). */
static int in_child(child_fn fn, const cmp_job *job, void *out, size_t bytes, const char *what,
                    uint64_t *max_rss) {
    int fd[2];
    if (pipe(fd) != 0) return cli_fail("pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return cli_fail("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(fd[0]);
        int rc = fn(job, out);
        if (rc == CLI_OK && write_all(fd[1], out, bytes) != 0) rc = CLI_ERR;
        close(fd[1]);
        fflush(stderr);
        _exit(rc);
    }
    close(fd[1]);
    size_t got = read_all(fd[0], out, bytes);
    close(fd[0]);
    int           status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &status, 0, &ru) < 0)
        if (errno != EINTR) return cli_fail("%s: wait: %s", what, strerror(errno));
    if (WIFSIGNALED(status))
        return cli_fail("%s: the process died of signal %d (%s)", what, WTERMSIG(status),
                        strsignal(WTERMSIG(status)));
    if (WEXITSTATUS(status) != 0) return WEXITSTATUS(status);
    if (got != bytes) return cli_fail("%s: incomplete result from the child process", what);
    if (max_rss) *max_rss = (uint64_t)ru.ru_maxrss * 1024;  /* Linux: KiB */
    return CLI_OK;
}

/* ==== quality (one child, all models) ===================================================== */

/* The dtypes of the 2-D tensors in table order ("q4_K/q6_K"), and 8 x bytes / elements. */
static void describe(const shrink_model *m, cmp_row *row) {
    shrink_model_info mi;
    bool              seen[SHRINK_DTYPE_COUNT] = {false};
    shrink_model_get_info(m, &mi);
    for (int64_t i = 0; i < mi.n_tensors; i++) {
        shrink_tensor_info t;
        if (shrink_model_tensor(m, i, &t) != SHRINK_OK) continue;
        if (t.n_dims >= 2 && (int)t.dtype >= 0 && t.dtype < SHRINK_DTYPE_COUNT)
            seen[t.dtype] = true;
    }
    row->scheme[0] = '\0';
    for (int d = 0; d < SHRINK_DTYPE_COUNT; d++) {
        if (!seen[d]) continue;
        size_t len = strlen(row->scheme);
        snprintf(row->scheme + len, sizeof row->scheme - len, "%s%s", len ? "/" : "",
                 shrink_dtype_name((shrink_dtype)d));
    }
    row->bpw        = cli_bits_per_weight(m);
    row->file_bytes = mi.file_bytes;
    row->n_params   = mi.n_params;
}

/* Every model: same vocabulary as the base, a context that holds the window. */
static int check_models(const cmp_job *job, shrink_model **m, int32_t ctx) {
    shrink_model_info b;
    shrink_model_get_info(m[0], &b);
    for (int i = 0; i < job->n; i++) {
        shrink_model_info mi;
        shrink_model_get_info(m[i], &mi);
        if (mi.vocab_size != b.vocab_size)
            return cli_fail("%s: vocabulary of %d tokens, but the base %s has %d: the KL "
                            "divergence needs the same vocabulary", job->paths[i], mi.vocab_size,
                            job->paths[0], b.vocab_size);
        if (ctx > mi.max_seq_len)
            return cli_fail("--ctx %d is larger than the context %d of %s", ctx, mi.max_seq_len,
                            job->paths[i]);
    }
    return CLI_OK;
}

/* The base's ids; every model with a tokenizer must encode the text to the same ids. */
static int tokenize(const cmp_job *job, shrink_model **m, int32_t **ids, size_t *n) {
    shrink_model_info b;
    shrink_model_get_info(m[0], &b);
    shrink_status st = shrink_tokenizer_encode(shrink_model_tokenizer(m[0]), job->text,
                                               job->text_bytes, b.add_bos, ids, n);
    if (st != SHRINK_OK) return cli_fail("%s: %s", job->opts->text, shrink_last_error());
    size_t n_text = *n - (b.add_bos && *n > 0 ? 1 : 0);
    if (*n < 2 || n_text < 1)
        return cli_fail("%s: %zu tokens: too few to score", job->opts->text, n_text);
    for (int i = 1; i < job->n; i++) {
        const shrink_tokenizer *tok = shrink_model_tokenizer(m[i]);
        int32_t                *o   = NULL;
        size_t                  no  = 0;
        if (!tok) continue;   /* scored with the base's tokens */
        shrink_model_info mi;
        shrink_model_get_info(m[i], &mi);
        if (shrink_tokenizer_encode(tok, job->text, job->text_bytes, mi.add_bos, &o, &no) !=
            SHRINK_OK)
            return cli_fail("%s: %s", job->paths[i], shrink_last_error());
        size_t k = 0;
        while (k < no && k < *n && o[k] == (*ids)[k]) k++;
        shrink_free(o);
        if (k < no || k < *n)
            return cli_fail("%s tokenizes %s differently from the base %s (%zu vs %zu tokens, "
                            "first difference at token %zu)", job->paths[i], job->opts->text,
                            job->paths[0], no, *n, k);
    }
    return CLI_OK;
}

static void print_shard_json(const cmp_job *job, const cmp_quality *q, const double *pt);

static int run_compare(const cmp_job *job, shrink_model **m, const int32_t *ids, size_t n,
                       cmp_quality *out) {
    shrink_context *ctx[CMP_MAX_MODELS] = {NULL};
    shrink_compare_result r[CMP_MAX_MODELS];
    int rc = CLI_OK;
    for (int i = 0; i < job->n && rc == CLI_OK; i++) {
        shrink_status st = shrink_context_create(&ctx[i], m[i], out->ctx, out->ctx);
        if (st != SHRINK_OK) rc = cli_fail("%s: %s", job->paths[i], shrink_last_error());
    }
    if (rc == CLI_OK) {
        cli_progress          prog;
        shrink_compare_params cp = shrink_compare_params_default();
        cp.method     = job->opts->llama_cpp ? SHRINK_PPL_LLAMA_CPP : SHRINK_PPL_SLIDING;
        cp.n_ctx      = out->ctx;
        cp.stride     = out->stride;
        cp.max_tokens = job->opts->tokens;
        cp.progress   = cli_progress_cb;
        cp.user       = &prog;
        double *pt    = NULL;
        if (job->n_shards > 1) {
            cp.shard     = job->shard;
            cp.n_shards  = job->n_shards;
            cp.per_token = &pt;
        }
        cli_progress_start(&prog, "compare windows", job->common);
        shrink_status st = shrink_compare(ctx, job->n, ids, (int64_t)n, &cp, r);
        cli_progress_end(&prog);
        if (st != SHRINK_OK) rc = cli_fail_status(st);
        for (int i = 0; i < job->n && rc == CLI_OK; i++) out->rows[i].q = r[i];
        if (rc == CLI_OK) out->windows_total = r[0].windows_total;
        if (rc == CLI_OK && pt) {   /* the share's JSON, written here (the per-token values) */
            print_shard_json(job, out, pt);
            fflush(stdout);
        }
        shrink_free(pt);
    }
    for (int i = 0; i < job->n; i++) shrink_context_free(ctx[i]);
    return rc;
}

static int quality_child(const cmp_job *job, void *vout) {
    cmp_quality  *out               = vout;
    shrink_model *m[CMP_MAX_MODELS] = {NULL};
    int32_t      *ids               = NULL;
    size_t        n                 = 0;
    int           rc                = CLI_OK;
    for (int i = 0; i < job->n && rc == CLI_OK; i++) {
        cli_common c = model_common(job, i);
        rc = cli_load_model(job->paths[i], &c, i == 0 ? CLI_TOK_NEED : CLI_TOK_OPTIONAL, &m[i]);
    }
    if (rc != CLI_OK) goto out_models;
    shrink_model_info b;
    shrink_model_get_info(m[0], &b);
    out->ctx    = job->opts->ctx ? job->opts->ctx : (b.max_seq_len < 512 ? b.max_seq_len : 512);
    out->stride = job->opts->llama_cpp ? out->ctx
                                       : (job->opts->stride ? job->opts->stride : out->ctx / 2);
    if (out->stride < 1 || out->stride > out->ctx) {
        rc = cli_fail("--stride %d must be in [1, ctx = %d]", out->stride, out->ctx);
        goto out_models;
    }
    if ((rc = check_models(job, m, out->ctx)) != CLI_OK) goto out_models;
    if ((rc = tokenize(job, m, &ids, &n)) != CLI_OK) goto out_models;
    for (int i = 0; i < job->n; i++) describe(m[i], &out->rows[i]);
    rc = run_compare(job, m, ids, n, out);
out_models:
    shrink_free(ids);
    for (int i = 0; i < job->n; i++) shrink_model_free(m[i]);
    return rc;
}

/* ==== speed (one child per model) ========================================================= */

static int speed_child(const cmp_job *job, void *vout) {
    cmp_row      *row = vout;
    shrink_model *m   = NULL;
    char          name[256], label[300];
    cli_common base = model_common(job, job->model);
    int rc = cli_load_model(job->paths[job->model], &base, CLI_TOK_NONE, &m);
    if (rc != CLI_OK) return rc;
    shrink_model_info mi;
    shrink_model_get_info(m, &mi);
    int32_t max = mi.max_seq_len;
    row->pp = job->opts->pp < 0 ? (max < 128 ? max : 128) : job->opts->pp;
    row->tg = job->opts->tg < 0 ? (max < 64 ? max : 64) : job->opts->tg;

    cli_progress        prog;
    shrink_bench_params bp = shrink_bench_params_default();
    bp.pp       = row->pp;
    bp.tg       = row->tg;
    bp.reps     = job->opts->reps;
    bp.progress = cli_progress_cb;
    bp.user     = &prog;
    snprintf(label, sizeof label, "speed %s", model_label(job, job->model, name, sizeof name));
    cli_progress_start(&prog, label, job->common);
    shrink_status st = shrink_bench(m, &bp, &row->s);
    cli_progress_end(&prog);
    if (st != SHRINK_OK) rc = cli_fail("%s: %s", job->paths[job->model], shrink_last_error());
    row->speed = rc == CLI_OK;
    if (row->speed && row->pp) {
        snprintf(label, sizeof label, "pp%d", row->pp);
        cli_speed_spread_warn(name, label, row->s.pp_tok_s_median, row->s.pp_tok_s_sd, bp.reps);
    }
    if (row->speed && row->tg) {
        snprintf(label, sizeof label, "tg%d", row->tg);
        cli_speed_spread_warn(name, label, row->s.tg_tok_s_median, row->s.tg_tok_s_sd, bp.reps);
    }
    shrink_model_free(m);
    return rc;
}

/* ==== output ============================================================================== */

static double delta_pct(const cmp_row *r, const cmp_row *base) {
    return 100.0 * (r->q.ppl / base->q.ppl - 1.0);
}

static const char *method_name(const cmp_opts *o) { return o->llama_cpp ? "llama.cpp" : "sliding"; }

/* The keys a run's and a shard's JSON share: the comparison ... */
static void json_windows(cli_json *j, const cmp_job *job, const cmp_quality *q) {
    cli_json_key(j, "base");          cli_json_str(j, job->paths[0]);
    cli_json_key(j, "text");          cli_json_str(j, job->opts->text);
    cli_json_key(j, "ctx");           cli_json_int(j, q->ctx);
    cli_json_key(j, "stride");        cli_json_int(j, q->stride);
    cli_json_key(j, "method");        cli_json_str(j, method_name(job->opts));
}

/* ... and each model's description */
static void json_model(cli_json *j, const cmp_job *job, const cmp_row *r, int i) {
    char name[256];
    cli_json_key(j, "name");            cli_json_str(j, model_label(job, i, name, sizeof name));
    cli_json_key(j, "path");            cli_json_str(j, job->paths[i]);
    cli_json_key(j, "is_base");         cli_json_bool(j, i == 0);
    cli_json_key(j, "lora");
    cli_json_arr_begin(j);
    for (int k = 0; k < model_lora(job, i)->n; k++) cli_json_str(j, model_lora(job, i)->v[k]);
    cli_json_arr_end(j);
    cli_json_key(j, "scheme");          cli_json_str(j, r->scheme);
    cli_json_key(j, "bits_per_weight"); cli_json_num(j, r->bpw);
    cli_json_key(j, "file_bytes");      cli_json_u64(j, r->file_bytes);
    cli_json_key(j, "n_params");        cli_json_int(j, r->n_params);
}

static void print_json(const cmp_job *job, const cmp_quality *q) {
    const cmp_row *rows = q->rows;
    cli_json       j;
    cli_json_begin(&j, stdout);
    json_windows(&j, job, q);
    cli_json_key(&j, "tokens_scored"); cli_json_int(&j, rows[0].q.tokens_scored);
    cli_json_key(&j, "n_tokens");      cli_json_int(&j, rows[0].q.n_tokens);
    cli_json_key(&j, "windows");       cli_json_int(&j, rows[0].q.windows);
    cli_json_key(&j, "threads");       cli_json_int(&j, shrink_get_threads());
    cli_json_key(&j, "reps");          cli_json_int(&j, job->opts->no_speed ? 0 : job->opts->reps);
    cli_json_key(&j, "models");
    cli_json_arr_begin(&j);
    for (int i = 0; i < job->n; i++) {
        const cmp_row *r = &rows[i];
        cli_json_obj_begin(&j);
        json_model(&j, job, r, i);
        cli_json_key(&j, "ppl");             cli_json_num(&j, r->q.ppl);
        cli_json_key(&j, "nll");             cli_json_num(&j, r->q.nll);
        cli_json_key(&j, "ppl_se");          cli_json_num(&j, r->q.ppl_se);
        cli_json_key(&j, "nll_se");          cli_json_num(&j, r->q.nll_se);
        cli_json_key(&j, "delta_ppl");       cli_json_num(&j, r->q.dppl);
        cli_json_key(&j, "delta_ppl_se");    cli_json_num(&j, r->q.dppl_se);
        cli_json_key(&j, "delta_ppl_pct");   cli_json_num(&j, delta_pct(r, &rows[0]));
        cli_json_key(&j, "delta_ppl_pct_se"); cli_json_num(&j, 100.0 * r->q.dppl_se / rows[0].q.ppl);
        cli_json_key(&j, "kl_mean");         cli_json_num(&j, r->q.kl_mean);
        cli_json_key(&j, "kl_mean_se");      cli_json_num(&j, r->q.kl_mean_se);
        cli_json_key(&j, "kl_p99");          cli_json_num(&j, r->q.kl_p99);
        cli_json_key(&j, "kl_max");          cli_json_num(&j, r->q.kl_max);
        cli_json_key(&j, "top1_same_pct");   cli_json_num(&j, 100.0 * r->q.top1_same);
        cli_json_key(&j, "top1_same_pct_se"); cli_json_num(&j, 100.0 * r->q.top1_same_se);
        cli_json_key(&j, "eval_seconds");    cli_json_num(&j, r->q.seconds);
        cli_json_key(&j, "pp");              if (r->speed) cli_json_int(&j, r->pp); else cli_json_null(&j);
        cli_json_key(&j, "tg");              if (r->speed) cli_json_int(&j, r->tg); else cli_json_null(&j);
        const shrink_bench_result *b = &r->s;
        cli_json_speed(&j, "pp", r->speed && r->pp, b->pp_tok_s_median, b->pp_tok_s,
                       b->pp_tok_s_sd, b->pp_tok_s_min, b->pp_tok_s_max);
        cli_json_speed(&j, "tg", r->speed && r->tg, b->tg_tok_s_median, b->tg_tok_s,
                       b->tg_tok_s_sd, b->tg_tok_s_min, b->tg_tok_s_max);
        cli_json_key(&j, "peak_rss_bytes");  if (r->speed) cli_json_u64(&j, r->peak_rss); else cli_json_null(&j);
        cli_json_obj_end(&j);
    }
    cli_json_arr_end(&j);
    cli_json_end(&j);
}

/* A share's JSON (--shard I/N): what merge-results needs to join the shards, the per-token
 * values of every model included (numbers round-trip exactly). */
static void print_shard_json(const cmp_job *job, const cmp_quality *q, const double *pt) {
    const cmp_row *rows = q->rows;
    const int64_t  S    = rows[0].q.tokens_scored;
    static const char *const arr[3] = {"kl", "nll", "same"};
    cli_json       j;
    cli_json_begin(&j, stdout);
    cli_json_key(&j, "compare_shard"); cli_json_bool(&j, true);
    json_windows(&j, job, q);
    cli_json_key(&j, "n_tokens");      cli_json_int(&j, rows[0].q.n_tokens);
    cli_json_key(&j, "windows_total"); cli_json_int(&j, q->windows_total);
    cli_json_key(&j, "windows");       cli_json_int(&j, rows[0].q.windows);
    cli_json_key(&j, "shard");         cli_json_int(&j, job->shard);
    cli_json_key(&j, "shards");        cli_json_int(&j, job->n_shards);
    cli_json_key(&j, "tokens_scored"); cli_json_int(&j, S);
    cli_json_key(&j, "threads");       cli_json_int(&j, shrink_get_threads());
    cli_json_key(&j, "models");
    cli_json_arr_begin(&j);
    for (int i = 0; i < job->n; i++) {
        const cmp_row *r = &rows[i];
        cli_json_obj_begin(&j);
        json_model(&j, job, r, i);
        cli_json_key(&j, "eval_seconds");    cli_json_num(&j, r->q.seconds);
        for (int a = 0; a < 3; a++) {
            const double *v = pt + (size_t)(3 * i + a) * (size_t)S;
            cli_json_key(&j, arr[a]);
            cli_json_arr_begin(&j);
            for (int64_t t = 0; t < S; t++) cli_json_num(&j, v[t]);
            cli_json_arr_end(&j);
        }
        cli_json_obj_end(&j);
    }
    cli_json_arr_end(&j);
    cli_json_end(&j);
}

/* "x ± se" (fmt for both), with a leading "~" when the difference from the base, diff, is
 * at most se (within its uncertainty). se < 0 (the base row's differences): x alone. */
static const char *with_se(char *buf, size_t cap, const char *fmt, double x, double se,
                           double diff) {
    char xs[40], ss[40], sf[16];
    snprintf(xs, sizeof xs, fmt, x);
    if (se < 0) return snprintf(buf, cap, "%s", xs), buf;
    snprintf(sf, sizeof sf, "%%%s", fmt[1] == '+' ? fmt + 2 : fmt + 1);   /* "%+.3f" -> "%.3f" */
    snprintf(ss, sizeof ss, sf, se);
    snprintf(buf, cap, "%s%s ± %s", fabs(diff) <= se ? "~" : "", xs, ss);
    return buf;
}

static void print_table(const cmp_job *job, const cmp_quality *q) {
    const cmp_row *rows = q->rows;
    const cmp_row *sp   = NULL;   /* a row with speeds, for the column names */
    for (int i = 0; i < job->n && !sp; i++) sp = rows[i].speed ? &rows[i] : NULL;
    printf("| model | scheme | bpw | size | ppl | Δppl %% | KL mean | KL p99 | same top-1 %% |");
    if (sp) printf(" pp%d t/s | tg%d t/s | peak RSS |", sp->pp, sp->tg);
    printf("\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |%s\n",
           sp ? " ---: | ---: | ---: |" : "");
    for (int i = 0; i < job->n; i++) {
        const cmp_row *r = &rows[i];
        double         b = rows[0].q.ppl;
        char name[256], size[32], rss[32], pps[32] = "-", tgs[32] = "-";
        char ppl[96], dppl[96], kl[96], top1[96];
        /* the base row has no error bars on its differences from itself */
        double         d = delta_pct(r, &rows[0]);
        with_se(ppl, sizeof ppl, "%.4f", r->q.ppl, r->q.ppl_se, HUGE_VAL);
        with_se(dppl, sizeof dppl, "%+.3f", d, i ? 100.0 * r->q.dppl_se / b : -1, d);
        with_se(kl, sizeof kl, "%.6f", r->q.kl_mean, i ? r->q.kl_mean_se : -1, r->q.kl_mean);
        with_se(top1, sizeof top1, "%.2f", 100.0 * r->q.top1_same,
                i ? 100.0 * r->q.top1_same_se : -1, 100.0 * (1.0 - r->q.top1_same));
        printf("| %s%s | %s | %.2f | %s | %s | %s | %s | %.6f | %s |",
               model_label(job, i, name, sizeof name), i == 0 ? " (base)" : "", r->scheme,
               r->bpw, cli_fmt_bytes(size, sizeof size, r->file_bytes), ppl, dppl, kl,
               r->q.kl_p99, top1);
        if (sp) {
            if (r->speed && r->pp) snprintf(pps, sizeof pps, "%.1f", r->s.pp_tok_s_median);
            if (r->speed && r->tg) snprintf(tgs, sizeof tgs, "%.1f", r->s.tg_tok_s_median);
            if (r->speed) cli_fmt_bytes(rss, sizeof rss, r->peak_rss);
            else snprintf(rss, sizeof rss, "-");
            printf(" %s | %s | %s |", pps, tgs, rss);
        }
        printf("\n");
    }
    printf("\ntext: %s, %lld tokens scored of %lld (%lld window%s, ctx %d, stride %d, %s)\n",
           job->opts->text, (long long)rows[0].q.tokens_scored, (long long)rows[0].q.n_tokens,
           (long long)rows[0].q.windows, cli_s(rows[0].q.windows), q->ctx, q->stride,
           method_name(job->opts));
    printf("KL: KL(P_base || P_model) in nats per scored token; same top-1: the model's most "
           "likely token is the base's\n");
    printf("±: standard error over the scored tokens (Δppl paired with the base); ~: the "
           "difference from the base is within its standard error\n");
    if (sp)
        printf("speed: tokens/s, median of %d run%s after a warm-up, threads pinned (shrink bench's "
               "method), %d thread%s; peak RSS: each model loaded and run alone in a forked child\n",
               job->opts->reps, cli_s(job->opts->reps), shrink_get_threads(),
               cli_s(shrink_get_threads()));
}

/* ==== joined shards (shrink merge-results) ================================================ */

int cli_compare_print_merged(const shrink_compare_merged *m, bool json) {
    if (m->n_models < 1 || m->n_models > CMP_MAX_MODELS)
        return cli_fail("the shards compare %d models; at most %d", m->n_models, CMP_MAX_MODELS);
    cmp_opts     opts = {.text = m->text, .llama_cpp = !strcmp(m->method, "llama.cpp"),
                         .no_speed = true};
    char        *paths[CMP_MAX_MODELS];
    cmp_quality *q = calloc(1, sizeof *q);
    if (!q) return cli_fail("out of memory");
    q->ctx    = m->ctx;
    q->stride = m->stride;
    for (int i = 0; i < m->n_models; i++) {
        const shrink_compare_merged_model *mm = &m->models[i];
        cmp_row *r = &q->rows[i];
        paths[i] = mm->path;
        snprintf(r->scheme, sizeof r->scheme, "%s", mm->scheme);
        r->bpw        = mm->bits_per_weight;
        r->file_bytes = mm->file_bytes;
        r->n_params   = mm->n_params;
        r->q          = mm->r;
    }
    q->windows_total = m->models[0].r.windows_total;
    cli_common common;   /* no adapters: --shard refuses them */
    memset(&common, 0, sizeof common);
    cmp_job job = {.opts = &opts, .common = &common, .paths = paths, .n = m->n_models};
    if (json) print_json(&job, q);
    else print_table(&job, q);
    free(q);
    return CLI_OK;
}

/* ==== command ============================================================================= */

int cmd_compare(int argc, char **argv) {
    cli_common  common;
    char       *pos[CMP_MAX_MODELS];
    int         n_pos;
    char       *text = NULL;
    cmp_opts    opts = {.pp = -1, .tg = -1, .reps = 3};
    cmp_job     job  = {0};
    cmp_quality *q   = NULL;
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    if (!opts.text) {
        fprintf(stderr, "shrink compare: missing --text FILE\n\n");
        cli_usage(&spec, stderr);
        return CLI_USAGE;
    }
    if (opts.shard) {   /* a share of the windows: quality only, as JSON */
        if ((rc = cli_parse_shard("compare", opts.shard, &job.shard, &job.n_shards)))
            return rc;
        if (common.lora.n > 0 || opts.base_lora.n > 0)
            return cli_fail("--shard does not take --lora or --base-lora (the joined output "
                            "would not name the adapters)");
        opts.no_speed = true;
    }
    if (opts.no_speed) opts.pp = opts.tg = 0;
    else if (opts.pp == 0 && opts.tg == 0)
        return cli_fail("nothing to measure: --pp 0 and --tg 0 (use --no-speed)");
    shrink_set_threads(common.threads);   /* sets the count only: no thread starts here */
    for (int i = 0; i < n_pos; i++)   /* fail before any work; loading checks the rest */
        if (access(pos[i], R_OK) != 0) return cli_fail("%s: %s", pos[i], strerror(errno));
    size_t text_bytes = 0;
    if ((rc = cli_read_text(opts.text, &text, &text_bytes)) != CLI_OK) return rc;
    if (!(q = calloc(1, sizeof *q))) {
        free(text);
        return cli_fail("out of memory");
    }
    job = (cmp_job){.opts = &opts, .common = &common, .paths = pos, .n = n_pos, .text = text,
                    .text_bytes = text_bytes, .shard = job.shard, .n_shards = job.n_shards};
    rc = in_child(quality_child, &job, q, sizeof *q, "compare", NULL);
    free(text);   /* the speed children do not need it */
    job.text = NULL;
    for (int i = 0; i < n_pos && rc == CLI_OK && !opts.no_speed; i++) {
        cmp_row row;
        memset(&row, 0, sizeof row);
        job.model = i;
        rc = in_child(speed_child, &job, &row, sizeof row, pos[i], &row.peak_rss);
        q->rows[i].speed    = row.speed;
        q->rows[i].pp       = row.pp;
        q->rows[i].tg       = row.tg;
        q->rows[i].s        = row.s;
        q->rows[i].peak_rss = row.peak_rss;
    }
    if (job.n_shards > 1) {}   /* the quality child wrote the share's JSON */
    else if (rc == CLI_OK && common.json) print_json(&job, q);
    else if (rc == CLI_OK) print_table(&job, q);
    free(q);
    return rc;
}
