/*
 * test_lowrank_factored.c - low-rank matrices stored as two factors (docs/lowrank.md,
 * "Factored storage") against independent references:
 *   - the kernels: a factored sk_mat (W = B A) through sk_matmul (decode T = 1 and a prompt
 *     T = 7), sk_matmul_f32x and the scalar sk_matmul_ref against the product of the factors
 *     recomputed here in double: f32 factors within f32 rounding; q8_0 factors against the
 *     double product of their dequantized values (the reference within f32 rounding, the
 *     SIMD kernels that quantize activations within q8_0's activation error);
 *   - the model (tiny-llama-gqa): shrink lowrank --store factored and --store dense of the same
 *     factorization (f32) give logits equal within f32 rounding, the factored file is smaller
 *     and holds <name>.lr_a / .lr_b instead of <name>; `convert` of the factored file keeps
 *     the factors and the logits bit for bit (reload, rewrite, run); q8_0 factors written by
 *     lowrank --dtype q8_0 load and run close to the f32 ones; a Hugging Face output of a
 *     factored model is refused.
 */
#include "kernels/kernels.h"
#include "test_util.h"

#include <unistd.h>

/* ---- kernels --------------------------------------------------------------------------- */

static void fill(float *v, int64_t n, double s) {
    for (int64_t i = 0; i < n; i++) v[i] = (float)(s * test_rng_normal());
}

/* max |y - ref| / max |ref| */
static double rel_diff(const float *y, const double *ref, int64_t n) {
    double d = 0.0, mx = 0.0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)y[i] - ref[i]));
        mx = fmax(mx, fabs(ref[i]));
    }
    return mx > 0 ? d / mx : d;
}

static void test_kernels(shrink_dtype dt, int64_t m, int64_t n, int64_t k) {
    const int64_t Ts[2] = {1, 7};
    float *A = malloc((size_t)(k * n) * sizeof *A), *B = malloc((size_t)(m * k) * sizeof *B);
    fill(A, k * n, 0.2);
    fill(B, m * k, 0.2);
    const sk_dtype_traits *d = sk_dtype(dt);
    const uint64_t ab = sk_dtype_tensor_bytes(dt, k, n), bb = sk_dtype_tensor_bytes(dt, m, k);
    uint8_t *qa = malloc(ab), *qb = malloc(bb);
    float *Ad = malloc((size_t)(k * n) * sizeof *Ad), *Bd = malloc((size_t)(m * k) * sizeof *Bd);
    for (int64_t r = 0; r < k; r++) { /* row by row: rows of the stored dtype */
        d->from_f32(A + r * n, qa + r * sk_dtype_row_bytes(dt, n), n);
        d->to_f32(qa + r * sk_dtype_row_bytes(dt, n), Ad + r * n, n);
    }
    for (int64_t r = 0; r < m; r++) {
        d->from_f32(B + r * k, qb + r * sk_dtype_row_bytes(dt, k), k);
        d->to_f32(qb + r * sk_dtype_row_bytes(dt, k), Bd + r * k, k);
    }
    sk_mat fac[2] = {{.dtype = dt, .rows = k, .cols = n, .data = qa},
                     {.dtype = dt, .rows = m, .cols = k, .data = qb}};
    const sk_mat W = {.dtype = dt, .rows = m, .cols = n, .data = NULL, .lr = fac};
    CHECK(sk_mat_bytes(&W) == ab + bb, "sk_mat_bytes of a factored matrix");
    const double q = dt == SHRINK_DTYPE_F32 ? 0.0 : 1.0;
    for (int i = 0; i < 2; i++) {
        const int64_t T = Ts[i];
        float *X = malloc((size_t)(T * n) * sizeof *X), *Y = malloc((size_t)(T * m) * sizeof *Y);
        double *ref = malloc((size_t)(T * m) * sizeof *ref), *mid = malloc((size_t)k * sizeof *mid);
        fill(X, T * n, 1.0);
        for (int64_t t = 0; t < T; t++) { /* (X A^T) B^T in double from the stored values */
            for (int64_t j = 0; j < k; j++) {
                double s = 0.0;
                for (int64_t c = 0; c < n; c++) s += (double)Ad[j * n + c] * X[t * n + c];
                mid[j] = s;
            }
            for (int64_t r = 0; r < m; r++) {
                double s = 0.0;
                for (int64_t j = 0; j < k; j++) s += (double)Bd[r * k + j] * mid[j];
                ref[t * m + r] = s;
            }
        }
        CHECK(sk_matmul_ref(&W, X, T, Y, m) == SHRINK_OK, "ref");
        double e = rel_diff(Y, ref, T * m);
        CHECK(e < 1e-5, "%s factored %lldx%lld rank %lld T=%lld: scalar reference off by %.3g",
              d->name, (long long)m, (long long)n, (long long)k, (long long)T, e);
        CHECK(sk_matmul_with(sk_kernels(), &W, X, T, Y, m) == SHRINK_OK, "matmul: %s",
              shrink_last_error());
        e = rel_diff(Y, ref, T * m);
        /* q8_0: the kernels quantize the activations (both products' inputs) to 8 bits */
        CHECK(e < 1e-5 + q * 2e-2, "%s factored T=%lld: sk_matmul off by %.3g", d->name,
              (long long)T, e);
        sk_scratch s = {0};
        CHECK(sk_scratch_reserve(&s, sk_matmul_f32x_scratch_bytes(sk_kernels(), &W, T)) == 0,
              "scratch");
        CHECK(sk_matmul_f32x(&W, X, T, Y, m, &s) == SHRINK_OK, "f32x");
        sk_scratch_free(&s);
        e = rel_diff(Y, ref, T * m);
        CHECK(e < 1e-5, "%s factored T=%lld: sk_matmul_f32x off by %.3g", d->name, (long long)T,
              e);
        /* too little scratch: an error, not an overrun */
        sk_scratch s2 = {0};
        const size_t need = sk_matmul_scratch_bytes(sk_kernels(), &W, T);
        CHECK(need >= (size_t)(T * k) * sizeof(float), "scratch holds the intermediate");
        CHECK(sk_matmul(&W, X, T, Y, m, &s2) == SHRINK_ERR_ARG, "no scratch refused");
        sk_scratch_free(&s2);
        free(X);
        free(Y);
        free(ref);
        free(mid);
    }
    free(A);
    free(B);
    free(qa);
    free(qb);
    free(Ad);
    free(Bd);
}

/* ---- the model ------------------------------------------------------------------------- */

static float *logits_of(const char *path, const int32_t *ids, int n, int *V) {
    shrink_model *m = NULL;
    shrink_context *c = NULL;
    float *lg = NULL;
    if (shrink_model_load(&m, path, NULL) != SHRINK_OK) {
        CHECK(0, "load %s: %s", path, shrink_last_error());
        return NULL;
    }
    shrink_model_info info;
    shrink_model_get_info(m, &info);
    *V = info.vocab_size;
    lg = malloc((size_t)n * (size_t)*V * sizeof *lg);
    if (shrink_context_create(&c, m, 0, 0) != SHRINK_OK ||
        shrink_context_eval(c, ids, n, 0, lg, n) != SHRINK_OK) {
        CHECK(0, "run %s: %s", path, shrink_last_error());
        free(lg);
        lg = NULL;
    }
    shrink_context_free(c);
    shrink_model_free(m);
    return lg;
}

static double logit_diff(const float *a, const float *b, int64_t n) {
    double d = 0.0, mx = 0.0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        mx = fmax(mx, fabs((double)b[i]));
    }
    return mx > 0 ? d / mx : d;
}

/* How many tensors of the file end in `suffix`, and of them how many are `dt` (-1: any). */
static int count_tensors(const char *path, const char *suffix, int dt, int *n_dt) {
    shrink_model *m = NULL;
    int n = 0;
    *n_dt = 0;
    if (shrink_model_load(&m, path, NULL) != SHRINK_OK) return -1;
    shrink_model_info info;
    shrink_model_get_info(m, &info);
    for (int64_t i = 0; i < info.n_tensors; i++) {
        shrink_tensor_info t;
        if (shrink_model_tensor(m, i, &t) != SHRINK_OK) break;
        const size_t a = strlen(t.name), b = strlen(suffix);
        if (a >= b && strcmp(t.name + a - b, suffix) == 0) {
            n++;
            *n_dt += dt < 0 || (int)t.dtype == dt;
        }
    }
    shrink_model_free(m);
    return n;
}

static long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static void test_factored_model(void) {
    char mp[2048];
    if (!test_need_model(mp, sizeof mp, "tiny-llama-gqa")) return;
    char dense[256], fact[256], fq[256], conv[256], hf[256];
    const int pid = (int)getpid();
    snprintf(dense, sizeof dense, "/tmp/shrink_lrf_%d_dense.gguf", pid);
    snprintf(fact, sizeof fact, "/tmp/shrink_lrf_%d_fact.gguf", pid);
    snprintf(fq, sizeof fq, "/tmp/shrink_lrf_%d_q8.gguf", pid);
    snprintf(conv, sizeof conv, "/tmp/shrink_lrf_%d_conv.gguf", pid);
    snprintf(hf, sizeof hf, "/tmp/shrink_lrf_%d_hf", pid);
    shrink_lowrank_params p = shrink_lowrank_params_default();
    p.ratio = 0.5;
    p.dtype = SHRINK_DTYPE_F32;
    shrink_lowrank_result rd, rf, rq;
    CHECK(shrink_lowrank(mp, dense, &p, &rd) == SHRINK_OK, "dense: %s", shrink_last_error());
    p.factored = 1;
    CHECK(shrink_lowrank(mp, fact, &p, &rf) == SHRINK_OK, "factored: %s", shrink_last_error());
    CHECK(rd.n_factored == 0 && rf.n_factored == rf.n_matrices - rf.n_dense && rf.n_factored > 0,
          "factored %lld of %lld", (long long)rf.n_factored, (long long)rf.n_matrices);
    CHECK(rf.params_lowrank == rd.params_lowrank && rf.min_rank == rd.min_rank &&
          rf.max_rank == rd.max_rank, "the same factorization");
    CHECK(file_size(fact) > 0 && file_size(fact) < file_size(dense), "factored %ld < dense %ld",
          file_size(fact), file_size(dense));
    int n_f32;
    CHECK(count_tensors(fact, ".lr_a", SHRINK_DTYPE_F32, &n_f32) == rf.n_factored &&
          count_tensors(fact, ".lr_b", -1, &n_f32) == rf.n_factored, "a pair per matrix");
    CHECK(count_tensors(dense, ".lr_a", -1, &n_f32) == 0, "the dense file has no factors");
    /* quantized factors */
    p.dtype = SHRINK_DTYPE_Q8_0;
    CHECK(shrink_lowrank(mp, fq, &p, &rq) == SHRINK_OK, "q8_0 factors: %s", shrink_last_error());
    int n_q8;
    CHECK(count_tensors(fq, ".lr_a", SHRINK_DTYPE_Q8_0, &n_q8) == rq.n_factored && n_q8 > 0,
          "q8_0 factors A: %d", n_q8);
    /* convert keeps the factors */
    shrink_convert_params cp = shrink_convert_params_default();
    CHECK(shrink_convert(fact, conv, &cp, NULL) == SHRINK_OK, "convert: %s", shrink_last_error());
    CHECK(count_tensors(conv, ".lr_b", -1, &n_f32) == rf.n_factored, "convert keeps factors");
    cp.to = "hf";
    CHECK(shrink_convert(fact, hf, &cp, NULL) == SHRINK_ERR_UNSUPPORTED, "HF output refused");
    CHECK(!test_is_dir(hf), "no HF output left");
    p.dtype = -1;
    CHECK(shrink_lowrank(mp, hf, &p, NULL) == SHRINK_ERR_UNSUPPORTED && !test_is_dir(hf),
          "lowrank --store factored to a folder refused");

    int32_t ids[24];
    for (int i = 0; i < 24; i++) ids[i] = (int32_t)((i * 37 + 5) % 500);
    int V = 0, V2 = 0, V3 = 0, V4 = 0;
    float *ld = logits_of(dense, ids, 24, &V);
    float *lf = logits_of(fact, ids, 24, &V2);
    float *lc = logits_of(conv, ids, 24, &V3);
    float *lq = logits_of(fq, ids, 24, &V4);
    if (ld && lf && lc && lq && V == V2 && V == V3 && V == V4) {
        const double e = logit_diff(lf, ld, 24 * (int64_t)V);
        CHECK(e < 2e-5, "factored vs merged dense logits: %.3g relative", e);
        CHECK(memcmp(lf, lc, (size_t)24 * V * sizeof *lf) == 0, "converted factored: same logits");
        const double eq = logit_diff(lq, lf, 24 * (int64_t)V);
        int finite = 1;
        for (int64_t i = 0; i < 24 * (int64_t)V; i++) finite &= isfinite(lq[i]) != 0;
        CHECK(finite && eq < 0.05 && eq > 0.0, "q8_0 factors vs f32 factors: %.3g relative", eq);
    } else {
        CHECK(0, "logits");
    }
    free(ld);
    free(lf);
    free(lc);
    free(lq);
    unlink(dense);
    unlink(fact);
    unlink(fq);
    unlink(conv);
}

int main(void) {
    test_rng_seed(15);
    test_kernels(SHRINK_DTYPE_F32, 48, 64, 12);
    test_kernels(SHRINK_DTYPE_F32, 40, 24, 24);
    test_kernels(SHRINK_DTYPE_Q8_0, 64, 96, 32);
    test_factored_model();
    return test_summary("test_lowrank_factored");
}
