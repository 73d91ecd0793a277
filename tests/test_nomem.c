/*
 * test_nomem.c - out of memory is an error, not a crash (issue 10), on a tiny random llama
 * written to /tmp (self-contained, no ../shared):
 *   1. every public call below, run again and again with its n-th allocation failing
 *      (sk_alloc_fail_after, n = 1, 2, ... until the call no longer reaches an n-th), returns
 *      SHRINK_ERR_NOMEM with a message whenever the failure hit (SHRINK_OK only when it did not),
 *      and leaves no library bytes allocated (sk_alloc_bytes_live): shrink_model_init,
 *      shrink_model_load, shrink_context_create, shrink_context_eval, shrink_perplexity,
 *      shrink_compare, shrink_quantize, shrink_convert, shrink_bench, shrink_train, and the
 *      trainer's sk_train_create / sk_train_forward_backward; shrink_lowrank;
 *   2. the kernels allocate nothing per call: a context's eval (decode and a prompt, f32 and
 *      q8_0 models) after the first runs with allocations failing and gives the same logits;
 *      a training step allocates only its slot table (no product allocates);
 *   3. the library's diagnostics reach the log callback (a bad SHRINK_KERNELS) and nothing
 *      is printed (checked in a child process, so this process keeps its kernels).
 * Run it under ASan too (make asan; build-asan/tests/test_nomem): the sweeps free everything.
 */
#include "test_util.h"

#include "../src/train/train.h"
#include "../src/train/optim.h"

#include <sys/wait.h>
#include <unistd.h>

static char tmp_dir[] = "/tmp/test_nomem_XXXXXX";
static char model_path[300], q8_path[300], tok_path[300], train_dir[300], cfg_path[300];

/* ---- the sweep ----------------------------------------------------------------------------- */

typedef shrink_status (*call_fn)(void *user);

/* Runs fn with its n-th allocation failing for n = 1, 2, ... until a run succeeds without the
 * failure being reached. fn must free everything it made when it succeeds. */
static void sweep(const char *name, call_fn fn, void *user) {
    const size_t live = sk_alloc_bytes_live();
    long n = 1;
    for (; n < 20000; n++) {
        sk_alloc_fail_after(n);
        shrink_status st = fn(user);
        const int hit = sk_alloc_failed();
        sk_alloc_fail_after(0);
        if (hit)
            CHECK(st == SHRINK_ERR_NOMEM || st == SHRINK_OK,
                  "%s, allocation %ld failing: %s (%s), not out of memory", name, n,
                  shrink_status_name(st), shrink_last_error());
        if (hit && st == SHRINK_ERR_NOMEM)
            CHECK(shrink_last_error()[0] != '\0', "%s, allocation %ld: no message", name, n);
        CHECK(sk_alloc_bytes_live() == live, "%s, allocation %ld failing: %zd bytes leaked",
              name, n, (ssize_t)(sk_alloc_bytes_live() - live));
        if (!hit) {
            CHECK(st == SHRINK_OK, "%s: %s", name, shrink_last_error());
            break;
        }
        if (test_failed > 20) break; /* enough to read */
    }
    CHECK(n > 1, "%s allocates nothing?", name);
    printf("  %s: %ld allocations, each failing once\n", name, n - 1);
}

/* ---- the calls ----------------------------------------------------------------------------- */

static shrink_status call_init(void *user) {
    (void)user;
    char out[320];
    snprintf(out, sizeof out, "%s/init.gguf", tmp_dir);
    shrink_init_params p = shrink_init_params_default();
    p.config_path = cfg_path;
    p.seed = 3;
    shrink_status st = shrink_model_init(out, &p, NULL);
    remove(out);
    return st;
}

static shrink_status call_load(void *user) {
    shrink_model *m = NULL;
    shrink_status st = shrink_model_load(&m, (const char *)user, NULL);
    CHECK(st == SHRINK_OK || m == NULL, "load failed but returned a model");
    shrink_model_free(m);
    return st;
}

typedef struct eval_job {
    shrink_model *m;
    const int32_t *ids;
    int32_t n;
    float *logits;
} eval_job;

static shrink_status call_context(void *user) {
    eval_job *j = user;
    shrink_context *x = NULL;
    shrink_status st = shrink_context_create(&x, j->m, 32, 8);
    if (!st) st = shrink_context_eval(x, j->ids, j->n, 0, j->logits, 1);
    if (!st) st = shrink_context_eval(x, j->ids + j->n, 1, j->n, j->logits, 1);
    shrink_context_free(x);
    return st;
}

static shrink_status call_ppl(void *user) {
    eval_job *j = user;
    shrink_context *x = NULL;
    shrink_status st = shrink_context_create(&x, j->m, 16, 16);
    shrink_ppl_params p = shrink_ppl_params_default();
    p.n_ctx = 16;
    shrink_ppl_result r;
    if (!st) st = shrink_perplexity(x, j->ids, 40, &p, &r);
    shrink_context_free(x);
    return st;
}

typedef struct compare_job {
    shrink_model *a, *b;
    const int32_t *ids;
} compare_job;

static shrink_status call_compare(void *user) {
    compare_job *j = user;
    shrink_context *x[2] = {NULL, NULL};
    shrink_status st = shrink_context_create(&x[0], j->a, 16, 16);
    if (!st) st = shrink_context_create(&x[1], j->b, 16, 16);
    shrink_compare_params p = shrink_compare_params_default();
    p.n_ctx = 16;
    shrink_compare_result r[2];
    if (!st) st = shrink_compare(x, 2, j->ids, 40, &p, r);
    shrink_context_free(x[0]);
    shrink_context_free(x[1]);
    return st;
}

static shrink_status call_quantize(void *user) {
    (void)user;
    char out[320];
    snprintf(out, sizeof out, "%s/q.gguf", tmp_dir);
    shrink_quantize_params p = shrink_quantize_params_default();
    p.scheme = "q4_K_M";
    p.tensor_stats = true;
    shrink_quantize_result r;
    memset(&r, 0, sizeof r);
    shrink_status st = shrink_quantize(model_path, out, &p, &r);
    if (st == SHRINK_OK) shrink_quantize_result_free(&r);
    remove(out);
    return st;
}

/* q4_0 with an importance matrix file (user: its path): read, checked, used */
static shrink_status call_quantize_imatrix(void *user) {
    char out[320];
    snprintf(out, sizeof out, "%s/qi.gguf", tmp_dir);
    shrink_quantize_params p = shrink_quantize_params_default();
    p.scheme = "q4_0";
    p.imatrix_path = user;
    shrink_status st = shrink_quantize(model_path, out, &p, NULL);
    remove(out);
    return st;
}

/* A legacy imatrix file with entries blk.0.attn_q.weight and blk.1.ffn_down.weight. */
static int write_imatrix(const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    const char *names[2] = {"blk.0.attn_q.weight", "blk.1.ffn_down.weight"};
    const int32_t nv[2] = {64, 128};
    int32_t v = 2;
    int ok = fwrite(&v, 4, 1, f) == 1;
    for (int i = 0; i < 2; i++) {
        int32_t hdr[1] = {(int32_t)strlen(names[i])};
        ok &= fwrite(hdr, 4, 1, f) == 1 && fwrite(names[i], 1, strlen(names[i]), f) ==
              strlen(names[i]);
        int32_t cn[2] = {3, nv[i]};
        ok &= fwrite(cn, 4, 2, f) == 2;
        for (int k = 0; k < nv[i]; k++) {
            float x = 0.5f + (float)(k % 7);
            ok &= fwrite(&x, 4, 1, f) == 1;
        }
    }
    return fclose(f) == 0 && ok;
}

static shrink_status call_convert(void *user) {
    char out[320];
    snprintf(out, sizeof out, "%s/conv", tmp_dir); /* a Hugging Face folder */
    shrink_convert_params p = shrink_convert_params_default();
    p.allow_requantize = true; /* a q8_0 input is widened for HF */
    shrink_status st = shrink_convert((const char *)user, out, &p, NULL);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
    CHECK(system(cmd) == 0, "rm %s", out);
    return st;
}

/* low-rank: every matrix at rank 2, merged back dense */
static shrink_status call_lowrank(void *user) {
    (void)user;
    char out[320];
    snprintf(out, sizeof out, "%s/lr.gguf", tmp_dir);
    shrink_lowrank_params p = shrink_lowrank_params_default();
    p.rank = 2;
    shrink_status st = shrink_lowrank(model_path, out, &p, NULL);
    remove(out);
    return st;
}

/* low-rank factored storage: rank 2 stored as two factors per matrix */
static shrink_status call_lowrank_factored(void *user) {
    char out[320];
    snprintf(out, sizeof out, "%s/lrf.gguf", tmp_dir);
    shrink_lowrank_params p = shrink_lowrank_params_default();
    p.rank = 2;
    p.factored = 1;
    shrink_status st = shrink_lowrank(model_path, out, &p, NULL);
    if (!user) remove(out);
    return st;
}

static shrink_status call_bench(void *user) {
    shrink_bench_params p = shrink_bench_params_default();
    p.pp = 8;
    p.tg = 2;
    p.reps = 1;
    shrink_bench_result r;
    return shrink_bench((const shrink_model *)user, &p, &r);
}

static shrink_status call_train(void *user) {
    (void)user;
    shrink_train_params p = shrink_train_params_default();
    p.data = tok_path;
    p.out_dir = train_dir;
    p.steps = 2;
    p.batch = 2;
    p.ctx = 8;
    shrink_train_result r;
    return shrink_train(model_path, &p, &r);
}

typedef struct grad_job {
    const shrink_model *m;
    const int32_t *tokens; /* (2, 9) */
} grad_job;

static shrink_status call_grad(void *user) {
    grad_job *j = user;
    sk_train_model *tm = NULL;
    shrink_status st = sk_train_create_from_model(&tm, j->m);
    float loss = 0;
    if (!st) st = sk_train_forward_backward(tm, j->tokens, 2, 8, &loss);
    sk_train_free(tm);
    return st;
}

/* ---- 2. no allocation per call ----------------------------------------------------------- */

static void no_alloc_per_eval(shrink_model *m, const int32_t *ids) {
    const int32_t V = 64;
    float a[64], b[64];
    shrink_context *x = NULL;
    CHECK(shrink_context_create(&x, m, 32, 8) == SHRINK_OK, "%s", shrink_last_error());
    if (!x) return;
    CHECK(shrink_context_eval(x, ids, 8, 0, a, 1) == SHRINK_OK, "%s", shrink_last_error());
    CHECK(shrink_context_eval(x, ids + 8, 1, 8, a + 0, 1) == SHRINK_OK, "%s",
          shrink_last_error());
    memcpy(b, a, sizeof b);
    sk_alloc_fail_after(1); /* every allocation from here on would fail once: none happens */
    shrink_status st = shrink_context_eval(x, ids, 8, 0, a, 1);
    if (!st) st = shrink_context_eval(x, ids + 8, 1, 8, a, 1);
    const int hit = sk_alloc_failed();
    sk_alloc_fail_after(0);
    CHECK(st == SHRINK_OK && !hit, "shrink_context_eval allocated (%s)", shrink_last_error());
    CHECK(memcmp(a, b, (size_t)V * sizeof(float)) == 0, "eval again: other logits");
    shrink_context_free(x);
}

static void no_alloc_per_step(const shrink_model *m, const int32_t *tokens) {
    sk_train_model *tm = NULL;
    CHECK(sk_train_create_from_model(&tm, m) == SHRINK_OK, "%s", shrink_last_error());
    if (!tm) return;
    float l1 = 0, l2 = 0;
    CHECK(sk_train_loss(tm, tokens, 2, 8, &l1) == SHRINK_OK, "%s", shrink_last_error());
    CHECK(sk_train_forward_backward(tm, tokens, 2, 8, &l1) == SHRINK_OK, "%s",
          shrink_last_error());
    /* the step's one allocation is its table of parameter slots (model_grad.c, run) */
    sk_alloc_fail_after(2);
    shrink_status st = sk_train_forward_backward(tm, tokens, 2, 8, &l2);
    const int hit = sk_alloc_failed();
    sk_alloc_fail_after(0);
    CHECK(st == SHRINK_OK && !hit, "a training step allocated more than its slot table (%s)",
          shrink_last_error());
    CHECK(l1 == l2, "the same step twice: loss %g then %g", (double)l1, (double)l2);
    sk_train_free(tm);
}

/* ---- 3. the log callback ----------------------------------------------------------------- */

static void log_to_buf(const char *msg, void *user) { snprintf(user, 256, "%s", msg); }

/* In a new process (this program with --log-child): the dispatch reads the bad value at the
 * first kernel use, which this process has long passed. Its stdout and stderr must stay empty
 * (the library never prints). */
static int log_child(void) {
    char got[256] = "";
    shrink_set_log_callback(log_to_buf, got);
    (void)shrink_kernels_name();
    return strstr(got, "SHRINK_KERNELS=no-such-isa unknown") ? 0 : 1;
}

static void test_log_callback(void) {
    char out[320];
    snprintf(out, sizeof out, "%s/log-child.txt", tmp_dir);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("SHRINK_KERNELS", "no-such-isa", 1);
        if (!freopen(out, "w", stdout) || !freopen(out, "a", stderr)) _exit(3);
        execl("/proc/self/exe", "test_nomem", "--log-child", (char *)NULL);
        _exit(4);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0,
          "a bad SHRINK_KERNELS did not reach the log callback (child exit %d)",
          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    struct stat sb;
    CHECK(stat(out, &sb) == 0 && sb.st_size == 0, "the library printed %lld bytes",
          (long long)sb.st_size);
}

/* ---- setup ------------------------------------------------------------------------------- */

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    fputs(text, f);
    return fclose(f) == 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--log-child")) return log_child();
    if (!mkdtemp(tmp_dir)) {
        CHECK(0, "mkdtemp");
        return test_summary("test_nomem");
    }
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", tmp_dir);
    snprintf(model_path, sizeof model_path, "%s/tiny.gguf", tmp_dir);
    snprintf(q8_path, sizeof q8_path, "%s/tiny-q8.gguf", tmp_dir);
    snprintf(tok_path, sizeof tok_path, "%s/data.tok", tmp_dir);
    snprintf(train_dir, sizeof train_dir, "%s/train", tmp_dir);
    CHECK(write_text(cfg_path, "{\"model_type\": \"llama\", \"hidden_size\": 64,"
                               " \"intermediate_size\": 128, \"num_hidden_layers\": 2,"
                               " \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
                               " \"vocab_size\": 64, \"max_position_embeddings\": 64}"),
          "config.json");
    shrink_init_params ip = shrink_init_params_default();
    ip.config_path = cfg_path;
    ip.seed = 7;
    CHECK(shrink_model_init(model_path, &ip, NULL) == SHRINK_OK, "init: %s",
          shrink_last_error());
    shrink_quantize_params qp = shrink_quantize_params_default();
    qp.scheme = "q8_0";
    CHECK(shrink_quantize(model_path, q8_path, &qp, NULL) == SHRINK_OK, "q8_0: %s",
          shrink_last_error());
    int32_t ids[64];
    uint64_t seed = 11;
    for (int i = 0; i < 64; i++) ids[i] = (int32_t)(sk_rng_next(&seed) % 64);
    CHECK(sk_tokfile_write(tok_path, ids, 64, 64) == SHRINK_OK, "%s", shrink_last_error());
    int32_t tokens[18];
    memcpy(tokens, ids, 9 * sizeof(int32_t));
    memcpy(tokens + 9, ids + 20, 9 * sizeof(int32_t));

    shrink_model *m = NULL, *q8 = NULL;
    CHECK(shrink_model_load(&m, model_path, NULL) == SHRINK_OK, "%s", shrink_last_error());
    CHECK(shrink_model_load(&q8, q8_path, NULL) == SHRINK_OK, "%s", shrink_last_error());
    if (!m || !q8) return test_summary("test_nomem");

    float logits[64];
    eval_job ej = {m, ids, 8, logits}, ejq = {q8, ids, 8, logits};
    compare_job cj = {m, q8, ids};
    grad_job gj = {m, tokens};

    printf("test_nomem: kernels %s\n", shrink_kernels_name());
    sweep("shrink_model_init", call_init, NULL);
    sweep("shrink_model_load", call_load, model_path);
    sweep("shrink_model_load q8_0", call_load, q8_path);
    sweep("shrink_context_create + eval", call_context, &ej);
    sweep("shrink_context_create + eval q8_0", call_context, &ejq);
    sweep("shrink_perplexity", call_ppl, &ej);
    sweep("shrink_compare", call_compare, &cj);
    sweep("shrink_quantize q4_K_M", call_quantize, NULL);
    char im_path[320];
    snprintf(im_path, sizeof im_path, "%s/t.imatrix", tmp_dir);
    CHECK(write_imatrix(im_path), "write %s", im_path);
    sweep("shrink_quantize q4_0 --imatrix", call_quantize_imatrix, im_path);
    sweep("shrink_convert to HF", call_convert, q8_path);
    sweep("shrink_lowrank svd", call_lowrank, NULL);
    sweep("shrink_lowrank factored", call_lowrank_factored, NULL);
    char lrf_path[320];
    snprintf(lrf_path, sizeof lrf_path, "%s/lrf.gguf", tmp_dir);
    CHECK(call_lowrank_factored(lrf_path) == SHRINK_OK, "factored model: %s", shrink_last_error());
    sweep("shrink_model_load factored", call_load, lrf_path);
    remove(lrf_path);
    sweep("shrink_bench", call_bench, m);
    sweep("sk_train_create + forward_backward", call_grad, &gj);
    sweep("shrink_train", call_train, NULL);

    no_alloc_per_eval(m, ids);
    no_alloc_per_eval(q8, ids);
    no_alloc_per_step(m, tokens);
    test_log_callback();

    shrink_model_free(m);
    shrink_model_free(q8);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    CHECK(system(cmd) == 0, "rm %s", tmp_dir);
    return test_summary("test_nomem");
}
