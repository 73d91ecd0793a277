/*
 * test_compare.c - shrink_compare (src/eval/compare.c) and shrink_bench against independent
 * recomputations, through the public API only:
 *
 *   - a model against a second load of itself: KL exactly 0 (< 1e-12), top-1 100 %, the same
 *     perplexity as the base, which equals shrink_perplexity's (sliding and llama.cpp windows);
 *   - stories260K f32 (llama2.c) against llama.cpp's stories260K-Q4_K_M.gguf: the mean, 99th
 *     percentile and maximum KL, the top-1 rate and both NLLs equal a float64 recomputation from
 *     the two models' logits (shrink_context_eval on the same windows, log-softmax in double);
 *     the KL is > 0 and the perplexity equals shrink_perplexity on the quantized model;
 *   - the standard errors (ppl, Δppl paired, KL mean, top-1) equal the textbook float64
 *     formulas applied to the per-token NLL / KL / agreement arrays of that recomputation;
 *   - --tokens (max_tokens) scores exactly that many tokens (sliding) or whole chunks
 *     (llama.cpp), with the perplexity of shrink_perplexity on the tokens used;
 *   - hostile input: models with different vocabularies, too few tokens, a window larger than
 *     a context: SHRINK_ERR_ARG with a message naming the problem;
 *   - shrink_bench: positive rates, min <= median, mean <= max, every thread pinned and the
 *     process's affinity restored afterwards, bad sizes refused.
 */
#include "shrink.h"
#include "test_util.h"

#include <sched.h>
#include <stdint.h>

static shrink_model *load(const char *path) {
    shrink_model      *m  = NULL;
    shrink_load_params lp = shrink_load_params_default();
    shrink_status      st = shrink_model_load(&m, path, &lp);
    CHECK(st == SHRINK_OK, "load %s: %s", path, shrink_last_error());
    return m;
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* log-softmax of l[0..V) into out, in double. */
static void log_softmax(const float *l, int V, double *out) {
    double mx = l[0], s = 0;
    for (int v = 1; v < V; v++) mx = l[v] > mx ? l[v] : mx;
    for (int v = 0; v < V; v++) s += exp((double)l[v] - mx);
    for (int v = 0; v < V; v++) out[v] = (double)l[v] - mx - log(s);
}

static int argmax(const double *x, int V) {
    int a = 0;
    for (int v = 1; v < V; v++) if (x[v] > x[a]) a = v;
    return a;
}

typedef struct ref_stats {
    double  nll_b, nll_m, kl_mean, kl_p99, kl_max, same;
    /* standard errors, float64 from the per-token arrays (two passes, textbook formulas) */
    double  nll_b_se, nll_m_se, dppl_se, kl_se, same_se;
    int64_t scored;
} ref_stats;

/* Sample standard deviation / sqrt(n) of x[0..n), and the sample covariance of x and y. */
static double se_of(const double *x, int64_t n) {
    double m = 0, v = 0;
    for (int64_t i = 0; i < n; i++) m += x[i] / n;
    for (int64_t i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    return sqrt(v / (n - 1) / n);
}

static double cov_of(const double *x, const double *y, int64_t n) {
    double mx = 0, my = 0, c = 0;
    for (int64_t i = 0; i < n; i++) {
        mx += x[i] / n;
        my += y[i] / n;
    }
    for (int64_t i = 0; i < n; i++) c += (x[i] - mx) * (y[i] - my);
    return c / (n - 1);
}

/* The sliding windows of the Hugging Face guide, written out again: window k = ids[k*stride,
 * +ctx), scoring positions from the end of the previous window on. Each window is evaluated
 * in one call (ctx <= 129 keeps it one piece) asking for the logits of the scored rows. */
static void reference(shrink_context *cb, shrink_context *cm, const int32_t *ids, int64_t n,
                      int ctx, int stride, int V, ref_stats *r) {
    float  *lb = malloc((size_t)ctx * V * sizeof *lb), *lm = malloc((size_t)ctx * V * sizeof *lm);
    double *pb = malloc((size_t)V * sizeof *pb), *pm = malloc((size_t)V * sizeof *pm);
    double *kls = malloc((size_t)n * sizeof *kls), *tb = malloc((size_t)n * sizeof *tb);
    double *tm = malloc((size_t)n * sizeof *tm), *ts = malloc((size_t)n * sizeof *ts);
    memset(r, 0, sizeof *r);
    int64_t prev_end = 0;
    for (int64_t begin = 0;; begin += stride) {
        int64_t end = begin + ctx < n ? begin + ctx : n;
        int     len = (int)(end - begin);
        int     j0  = prev_end - begin > 1 ? (int)(prev_end - begin) : 1;
        int     nl  = len - j0;   /* rows j0-1 .. len-2 */
        CHECK(shrink_context_eval(cb, ids + begin, len - 1, 0, lb, nl) == SHRINK_OK, "eval base");
        CHECK(shrink_context_eval(cm, ids + begin, len - 1, 0, lm, nl) == SHRINK_OK, "eval model");
        for (int i = 0; i < nl; i++) {
            int target = ids[begin + j0 + i];
            log_softmax(lb + (size_t)i * V, V, pb);
            log_softmax(lm + (size_t)i * V, V, pm);
            double kl = 0;
            for (int v = 0; v < V; v++) kl += exp(pb[v]) * (pb[v] - pm[v]);
            r->nll_b -= pb[target];
            r->nll_m -= pm[target];
            r->kl_mean += kl;
            r->same += argmax(pb, V) == argmax(pm, V);
            tb[r->scored] = -pb[target];
            tm[r->scored] = -pm[target];
            ts[r->scored] = argmax(pb, V) == argmax(pm, V);
            kls[r->scored++] = kl;
        }
        prev_end = end;
        if (end == n) break;
    }
    r->nll_b /= r->scored;
    r->nll_m /= r->scored;
    r->kl_mean /= r->scored;
    r->same /= r->scored;
    int64_t ns = r->scored;
    double  pB = exp(r->nll_b), pM = exp(r->nll_m);
    r->nll_b_se = se_of(tb, ns);
    r->nll_m_se = se_of(tm, ns);
    r->kl_se    = se_of(kls, ns);
    r->same_se  = se_of(ts, ns);  /* = sqrt(p (1 - p) / (n - 1)) for 0/1 values */
    r->dppl_se  = sqrt(pM * pM * r->nll_m_se * r->nll_m_se + pB * pB * r->nll_b_se * r->nll_b_se
                       - 2 * pM * pB * cov_of(tm, tb, ns) / ns);
    qsort(kls, (size_t)r->scored, sizeof *kls, cmp_dbl);
    double  pos = 0.99 * (double)(r->scored - 1);
    int64_t lo  = (int64_t)pos;
    r->kl_p99 = lo + 1 < r->scored ? kls[lo] + (pos - lo) * (kls[lo + 1] - kls[lo]) : kls[lo];
    r->kl_max = kls[r->scored - 1];
    free(lb); free(lm); free(pb); free(pm); free(kls); free(tb); free(tm); free(ts);
}

static int32_t *tokens_of(shrink_model *m, const char *text_path, size_t max_bytes, size_t *n) {
    FILE *f = fopen(text_path, "rb");
    CHECK(f != NULL, "open %s", text_path);
    if (!f) return NULL;
    char  *buf = malloc(max_bytes + 1);
    size_t len = fread(buf, 1, max_bytes, f);
    fclose(f);
    while (len > 0 && ((unsigned char)buf[len - 1] & 0xC0) == 0x80) len--;  /* whole UTF-8 */
    if (len > 0 && (unsigned char)buf[len - 1] >= 0xC0) len--;
    int32_t *ids = NULL;
    CHECK(shrink_tokenizer_encode(shrink_model_tokenizer(m), buf, len, true, &ids, n) ==
          SHRINK_OK, "encode: %s", shrink_last_error());
    free(buf);
    return ids;
}

static shrink_context *context(shrink_model *m, int n) {
    shrink_context *c = NULL;
    CHECK(shrink_context_create(&c, m, n, n) == SHRINK_OK, "context: %s", shrink_last_error());
    return c;
}

/* A model against a second load of itself; ppl equals shrink_perplexity's. */
static void test_self(const char *path, const int32_t *ids, size_t n) {
    shrink_model   *a = load(path), *b = load(path);
    if (!a || !b) return;
    shrink_context *c[2] = {context(a, 64), context(b, 64)};
    /* sliding with overlap, sliding without (stride = ctx: first tokens unscored), llama.cpp */
    for (int method = 0; method < 3; method++) {
        shrink_compare_params p = shrink_compare_params_default();
        shrink_compare_result r[2];
        p.method = method == 2 ? SHRINK_PPL_LLAMA_CPP : SHRINK_PPL_SLIDING;
        p.n_ctx  = 64;
        p.stride = method == 1 ? 64 : 32;
        CHECK(shrink_compare(c, 2, ids, (int64_t)n, &p, r) == SHRINK_OK, "compare self: %s",
              shrink_last_error());
        CHECK(fabs(r[1].kl_mean) < 1e-12 && fabs(r[1].kl_max) < 1e-12 && fabs(r[1].kl_p99) < 1e-12,
              "self KL mean %g max %g p99 %g (want 0)", r[1].kl_mean, r[1].kl_max, r[1].kl_p99);
        CHECK(r[1].top1_same == 1.0 && r[0].top1_same == 1.0, "self top-1 %g", r[1].top1_same);
        CHECK(r[1].ppl == r[0].ppl, "self ppl %.17g vs base %.17g", r[1].ppl, r[0].ppl);

        shrink_ppl_params pp = shrink_ppl_params_default();
        shrink_ppl_result pr;
        pp.method = p.method;
        pp.n_ctx  = 64;
        pp.stride = p.stride;
        CHECK(shrink_perplexity(c[0], ids, (int64_t)n, &pp, &pr) == SHRINK_OK, "ppl");
        CHECK(fabs(pr.ppl / r[0].ppl - 1) < 1e-12, "method %d: compare ppl %.17g, "
              "shrink_perplexity %.17g", method, r[0].ppl, pr.ppl);
        CHECK(pr.tokens_scored == r[0].tokens_scored && pr.windows == r[0].windows,
              "scored %lld/%lld windows %lld/%lld", (long long)r[0].tokens_scored,
              (long long)pr.tokens_scored, (long long)r[0].windows, (long long)pr.windows);
    }
    /* llama.cpp windows with max_tokens: whole chunks (31 scored each at ctx 64), the ppl of
     * shrink_perplexity on just those chunks */
    shrink_compare_params p = shrink_compare_params_default();
    shrink_compare_result r[2];
    p.method     = SHRINK_PPL_LLAMA_CPP;
    p.n_ctx      = 64;
    p.max_tokens = 40;
    CHECK(shrink_compare(c, 2, ids, (int64_t)n, &p, r) == SHRINK_OK, "compare: %s",
          shrink_last_error());
    CHECK(r[0].windows == 2 && r[0].tokens_scored == 62 && r[0].n_tokens == 128,
          "llama.cpp max_tokens 40: %lld windows, %lld scored of %lld", (long long)r[0].windows,
          (long long)r[0].tokens_scored, (long long)r[0].n_tokens);
    shrink_ppl_params pp = shrink_ppl_params_default();
    shrink_ppl_result pr;
    pp.method = SHRINK_PPL_LLAMA_CPP;
    pp.n_ctx  = 64;
    CHECK(shrink_perplexity(c[0], ids, 128, &pp, &pr) == SHRINK_OK &&
          fabs(pr.ppl / r[0].ppl - 1) < 1e-12, "llama.cpp max_tokens: ppl %.17g vs %.17g",
          r[0].ppl, pr.ppl);
    shrink_context_free(c[0]);
    shrink_context_free(c[1]);
    shrink_model_free(a);
    shrink_model_free(b);
}

/* f32 vs Q4_K_M: the library's statistics against the float64 recomputation. */
static void test_quantized(const char *base_path, const char *q_path, const int32_t *ids,
                           size_t n) {
    shrink_model *b = load(base_path), *q = load(q_path);
    if (!b || !q) return;
    const int ctx = 64, stride = 32, max_tokens = 120;
    shrink_context *c[2] = {context(b, ctx), context(q, ctx)};
    shrink_compare_params p = shrink_compare_params_default();
    shrink_compare_result r[2];
    p.n_ctx      = ctx;
    p.stride     = stride;
    p.max_tokens = max_tokens;
    CHECK(shrink_compare(c, 2, ids, (int64_t)n, &p, r) == SHRINK_OK, "compare: %s",
          shrink_last_error());
    CHECK(r[1].tokens_scored == max_tokens && r[1].n_tokens == max_tokens + 1,
          "max_tokens %d: scored %lld of %lld", max_tokens, (long long)r[1].tokens_scored,
          (long long)r[1].n_tokens);

    ref_stats ref;
    shrink_model_info mi;
    shrink_model_get_info(b, &mi);
    reference(c[0], c[1], ids, max_tokens + 1, ctx, stride, mi.vocab_size, &ref);
    CHECK(ref.scored == r[1].tokens_scored, "reference scored %lld", (long long)ref.scored);
    printf("stories260K f32 vs Q4_K_M, %lld tokens: KL mean %.6g (ref %.6g), p99 %.6g (ref "
           "%.6g), max %.6g (ref %.6g), top-1 %.4f (ref %.4f), ppl %.4f / %.4f\n",
           (long long)ref.scored, r[1].kl_mean, ref.kl_mean, r[1].kl_p99, ref.kl_p99,
           r[1].kl_max, ref.kl_max, r[1].top1_same, ref.same, r[0].ppl, r[1].ppl);
    CHECK(r[1].kl_mean > 1e-5, "KL of a quantized model %g: want > 0", r[1].kl_mean);
    CHECK(fabs(r[1].kl_mean - ref.kl_mean) <= 1e-6 * ref.kl_mean + 1e-9,
          "KL mean %.12g vs float64 %.12g", r[1].kl_mean, ref.kl_mean);
    CHECK(fabs(r[1].kl_p99 - ref.kl_p99) <= 1e-5 * ref.kl_p99 + 1e-9,
          "KL p99 %.12g vs float64 %.12g", r[1].kl_p99, ref.kl_p99);
    CHECK(fabs(r[1].kl_max - ref.kl_max) <= 1e-5 * ref.kl_max + 1e-9,
          "KL max %.12g vs float64 %.12g", r[1].kl_max, ref.kl_max);
    CHECK(fabs(r[1].top1_same - ref.same) < 1e-12, "top-1 %.6f vs %.6f", r[1].top1_same, ref.same);
    CHECK(fabs(r[0].nll - ref.nll_b) < 1e-6 && fabs(r[1].nll - ref.nll_m) < 1e-6,
          "nll %.9f / %.9f vs float64 %.9f / %.9f", r[0].nll, r[1].nll, ref.nll_b, ref.nll_m);

    /* standard errors against the float64 recomputation from the per-token values */
    printf("  ± ppl %.4f / %.4f, Δppl %+.4f ± %.4f (ref %.4f), KL ± %.3g (ref %.3g), top-1 ± %.4f "
           "(ref %.4f)\n", r[0].ppl_se, r[1].ppl_se, r[1].dppl, r[1].dppl_se, ref.dppl_se,
           r[1].kl_mean_se, ref.kl_se, r[1].top1_same_se, ref.same_se);
    CHECK(fabs(r[0].nll_se - ref.nll_b_se) <= 1e-6 * ref.nll_b_se &&
          fabs(r[1].nll_se - ref.nll_m_se) <= 1e-6 * ref.nll_m_se,
          "nll se %.12g / %.12g vs float64 %.12g / %.12g", r[0].nll_se, r[1].nll_se,
          ref.nll_b_se, ref.nll_m_se);
    CHECK(fabs(r[1].ppl_se - exp(ref.nll_m) * ref.nll_m_se) <= 1e-6 * r[1].ppl_se,
          "ppl se %.12g vs %.12g", r[1].ppl_se, exp(ref.nll_m) * ref.nll_m_se);
    CHECK(fabs(r[1].dppl - (exp(ref.nll_m) - exp(ref.nll_b))) <= 1e-6 * exp(ref.nll_b) &&
          fabs(r[1].dppl_se - ref.dppl_se) <= 1e-5 * ref.dppl_se && r[1].dppl_se > 0 &&
          r[0].dppl == 0 && r[0].dppl_se == 0,
          "Δppl %.12g ± %.12g vs float64 ± %.12g", r[1].dppl, r[1].dppl_se, ref.dppl_se);
    CHECK(fabs(r[1].kl_mean_se - ref.kl_se) <= 1e-5 * ref.kl_se + 1e-12,
          "KL se %.12g vs float64 %.12g", r[1].kl_mean_se, ref.kl_se);
    CHECK(fabs(r[1].top1_same_se - ref.same_se) <= 1e-12, "top-1 se %.12g vs float64 %.12g",
          r[1].top1_same_se, ref.same_se);
    /* paired: the Δppl error is smaller than the unpaired sqrt(se_m^2 + se_b^2) */
    CHECK(r[1].dppl_se < sqrt(r[0].ppl_se * r[0].ppl_se + r[1].ppl_se * r[1].ppl_se),
          "paired Δppl se %.6g not below the unpaired one", r[1].dppl_se);

    /* the quantized model's perplexity equals shrink_perplexity on it */
    shrink_ppl_params pp = shrink_ppl_params_default();
    shrink_ppl_result pr;
    pp.n_ctx  = ctx;
    pp.stride = stride;
    CHECK(shrink_perplexity(c[1], ids, max_tokens + 1, &pp, &pr) == SHRINK_OK, "ppl");
    CHECK(fabs(pr.ppl / r[1].ppl - 1) < 1e-12, "Q4_K_M ppl %.17g vs shrink_perplexity %.17g",
          r[1].ppl, pr.ppl);
    CHECK(fabs(pr.nll_se - ref.nll_m_se) <= 1e-6 * ref.nll_m_se &&
          fabs(pr.ppl_se - pr.ppl * pr.nll_se) <= 1e-12 * pr.ppl_se,
          "shrink_perplexity nll se %.12g vs float64 %.12g (ppl ± %.12g)", pr.nll_se,
          ref.nll_m_se, pr.ppl_se);
    shrink_context_free(c[0]);
    shrink_context_free(c[1]);
    shrink_model_free(b);
    shrink_model_free(q);
}

/* Different vocabularies, too few tokens, a window past a context. */
static void test_hostile(const char *small, const char *big, const int32_t *ids, size_t n) {
    shrink_model *a = load(small), *b = big ? load(big) : NULL;
    if (!a) return;
    shrink_context       *c[2] = {context(a, 64), NULL};
    shrink_compare_params p    = shrink_compare_params_default();
    shrink_compare_result r[2];
    p.n_ctx = 64;
    if (b) {
        c[1] = context(b, 64);
        CHECK(shrink_compare(c, 2, ids, (int64_t)n, &p, r) == SHRINK_ERR_ARG &&
              strstr(shrink_last_error(), "vocabulary"), "different vocabularies: %s",
              shrink_last_error());
        shrink_context_free(c[1]);
    }
    c[1] = context(a, 32);
    CHECK(shrink_compare(c, 2, ids, (int64_t)n, &p, r) == SHRINK_ERR_ARG &&
          strstr(shrink_last_error(), "context"), "window past a context: %s", shrink_last_error());
    CHECK(shrink_compare(c, 1, ids, 1, &p, r) == SHRINK_ERR_ARG, "one token: %s",
          shrink_last_error());
    CHECK(shrink_compare(c, 0, ids, (int64_t)n, &p, r) == SHRINK_ERR_ARG, "no models");

    shrink_bench_params bp = shrink_bench_params_default();
    shrink_bench_result br;
    bp.pp   = 16;
    bp.tg   = 4;
    bp.reps = 2;
    cpu_set_t before, after;
    CHECK(sched_getaffinity(0, sizeof before, &before) == 0, "sched_getaffinity");
    bp.reps = 3;
    CHECK(shrink_bench(a, &bp, &br) == SHRINK_OK && br.pp_tok_s > 0 && br.tg_tok_s > 0,
          "bench: %s", shrink_last_error());
    /* median, mean, min, max of the same 3 runs: min <= median, mean <= max */
    CHECK(br.pp_tok_s_min <= br.pp_tok_s_median && br.pp_tok_s_median <= br.pp_tok_s_max &&
          br.pp_tok_s_min <= br.pp_tok_s && br.pp_tok_s <= br.pp_tok_s_max &&
          br.tg_tok_s_min <= br.tg_tok_s_median && br.tg_tok_s_median <= br.tg_tok_s_max &&
          br.pp_tok_s_min > 0 && br.tg_tok_s_min > 0,
          "bench statistics: pp min %g median %g mean %g max %g, tg min %g median %g max %g",
          br.pp_tok_s_min, br.pp_tok_s_median, br.pp_tok_s, br.pp_tok_s_max, br.tg_tok_s_min,
          br.tg_tok_s_median, br.tg_tok_s_max);
    /* pinned: every thread bound during the runs, the process's CPUs given back after */
    CHECK(br.threads == shrink_get_threads() && br.pinned == br.threads,
          "bench pinned %d of %d threads", br.pinned, br.threads);
    CHECK(sched_getaffinity(0, sizeof after, &after) == 0 && CPU_EQUAL(&before, &after),
          "bench: the affinity was not restored (%d CPUs before, %d after)", CPU_COUNT(&before),
          CPU_COUNT(&after));
    bp.pin = false;
    CHECK(shrink_bench(a, &bp, &br) == SHRINK_OK && br.pinned == 0, "bench unpinned: %d pinned",
          br.pinned);
    bp.pin  = true;
    bp.reps = 2;
    bp.pp = 1 << 20;
    CHECK(shrink_bench(a, &bp, &br) == SHRINK_ERR_ARG, "bench pp past the context");
    bp.pp = bp.tg = 0;
    CHECK(shrink_bench(a, &bp, &br) == SHRINK_ERR_ARG, "bench with nothing to do");
    shrink_context_free(c[0]);
    shrink_context_free(c[1]);
    shrink_model_free(a);
    shrink_model_free(b);
}

int main(void) {
    char m[1024], t[1024], q[1024], big[1024];
    if (!test_need_asset(m, sizeof m, "models/stories260K/stories260K.bin") ||
        !test_need_asset(t, sizeof t, "fixtures/stories260K/ppl_text.txt"))
        return test_summary("test_compare");
    shrink_set_threads(2);
    shrink_model *tm = load(m);
    if (!tm) return test_summary("test_compare");
    size_t   n;
    int32_t *ids = tokens_of(tm, t, 1200, &n);
    shrink_model_free(tm);
    if (!ids) return test_summary("test_compare");
    CHECK(n > 128, "%zu tokens: the tests need more than 128", n);

    test_self(m, ids, n < 128 ? n : 128);   /* a few windows of each method */
    if (test_need_asset(q, sizeof q, "fixtures/gguf/stories260K-Q4_K_M.gguf"))
        test_quantized(m, q, ids, n);
    test_hostile(m, test_need_asset(big, sizeof big, "models/mix-llama-14m"), ids, n);
    shrink_free(ids);
    return test_summary("test_compare");
}
