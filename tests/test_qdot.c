/*
 * test_qdot.c - quantized decode kernels (src/kernels/qdot.c, x86/qdot_<isa>.c): for every
 * dtype row with a vec_dot_ref and every kernel level this CPU runs,
 *   1. the activation quantizers of each level against sk_act_quantize_ref: byte-identical
 *      (random rows, all-zero blocks, values on exact .5 ties of the rounding);
 *   2. the reference dot against a float64 dot of the dequantized weights and the dequantized
 *      activations (relative to sum |w_k x_k|: catches a wrong nibble, scale or offset);
 *   3. each level's dot (sk_vec_dot_get) against the reference dot, same tolerance (catches a
 *      SIMD kernel that reads the layout differently from the specification);
 *   4. sk_matmul of every kernel set at T = 1 (quantized decode) and T = 5 (f32 GEMM over
 *      dequantized panels; the int8 GEMM for the int8-activation types, whose bit-exactness
 *      test_gemm_i8 checks) against
 *      sk_matmul_ref (f32 activations), within 1e-5 * sum |w x| plus the activation
 *      quantization's own bound sum_k |w_k| |x_k - xq_k|.
 * Lengths are multiples of the block with a tail of blocks (e.g. 32 .. 4128).
 * Before these, test_dot_list: exactly the dtypes listed in must_dot have a dot kernel (and a
 * SIMD one at every level this CPU runs), no more, no fewer.
 */
#include "kernels/kernels.h"
#include "test_util.h"

#include <stdint.h>


static int64_t lcm64(int64_t a, int64_t b) {
    int64_t x = a, y = b;
    while (y) {
        int64_t t = x % y;
        x = y;
        y = t;
    }
    return a / x * b;
}

/* quantizes rows x cols of wf into w row by row (quantize() with p where the row has it) */
static void quant_rows(shrink_dtype dt, const float *wf, int64_t rows, int64_t cols, void *w,
                       const sk_qparams *p) {
    const sk_dtype_traits *d = sk_dtype(dt);
    const uint64_t rb = sk_dtype_row_bytes(dt, cols);
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *row = (uint8_t *)w + r * rb;
        if (d->quantize) d->quantize(wf + r * cols, row, cols, p);
        else d->from_f32(wf + r * cols, row, cols);
    }
}

/* the activation scale of SK_ACT_I8_STATIC rows (0 for the other formats) */
static float static_scale_of(shrink_dtype dt, const void *w) {
    float a = 0.0f;
    if (sk_dtype(dt)->act == SK_ACT_I8_STATIC)
        memcpy(&a, (const uint8_t *)w + SK_ACT_STATIC_OFF, sizeof a);
    return a;
}

static float absmax(const float *x, int64_t n) {
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

/* ==== 1. activation quantizers ============================================================== */

static void check_act_quant(sk_act_format f, const float *x, int64_t n, float ss,
                            const char *what) {
    size_t nb = sk_act_bytes(f, n);
    uint8_t *ref = malloc(nb), *got = malloc(nb + 1);
    sk_act_quantize_ref(f, x, n, ref, ss);
    for (int l = 1; l < SK_ISA_COUNT; l++) {
        if (!sk_kernels_get((sk_isa)l)) continue;
        /* +1: an odd address (the quantizers must not assume alignment) */
        sk_act_quant_get((sk_isa)l, f)(x, n, got + 1, ss);
        size_t bad = nb;
        for (size_t i = 0; i < nb && bad == nb; i++)
            if (ref[i] != got[1 + i]) bad = i;
        CHECK(bad == nb, "act format %d (%s) n=%" PRId64 " level %d: byte %zu differs (%u vs %u)",
              (int)f, what, n, l, bad, bad < nb ? ref[bad] : 0, bad < nb ? got[1 + bad] : 0);
    }
    free(ref);
    free(got);
}

static void test_act_quant(void) {
    static const sk_act_format fmts[] = {SK_ACT_Q8_32, SK_ACT_Q8_K, SK_ACT_I8_TOKEN,
                                         SK_ACT_I8_STATIC};
    static const int64_t ns[] = {256, 512, 4096, 4352};
    for (size_t fi = 0; fi < sizeof fmts / sizeof fmts[0]; fi++) {
        sk_act_format f = fmts[fi];
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
            int64_t n = ns[k];
            float *x = malloc((size_t)n * sizeof(float));
            for (int64_t i = 0; i < n; i++) x[i] = test_rng_normal() * (i % 97 == 0 ? 8.0f : 1.0f);
            float ss = absmax(x, n) / 127.0f * 0.7f; /* static: some values clamp */
            check_act_quant(f, x, n, ss, "normal");
            /* zeros in the first block, exact ties: amax 127 -> d = 1, x = k + 0.5 */
            for (int64_t i = 0; i < n; i++) x[i] = (float)((int)(i % 60) - 30) + 0.5f;
            for (int64_t i = 0; i < n; i += 256) x[i] = 127.0f;
            for (int64_t i = 0; i < 32; i++) x[i] = 0.0f;
            check_act_quant(f, x, n, 1.0f, "ties");
            free(x);
        }
    }
    /* int8 per token at lengths that are not multiples of 32 */
    for (int64_t n = 1; n < 100; n += 7) {
        float x[100];
        for (int64_t i = 0; i < n; i++) x[i] = test_rng_normal();
        check_act_quant(SK_ACT_I8_TOKEN, x, n, 0.0f, "short");
        check_act_quant(SK_ACT_I8_STATIC, x, n, 0.01f, "short");
    }
}

/* ==== 2, 3. dots ============================================================================ */

static void check_dot(shrink_dtype dt, int64_t n) {
    const sk_dtype_traits *d = sk_dtype(dt);
    float *wf = malloc((size_t)n * sizeof(float)), *x = malloc((size_t)n * sizeof(float));
    float *wd = malloc((size_t)n * sizeof(float)), *xd = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        wf[i] = test_rng_normal() * (i % 61 == 0 ? 5.0f : 1.0f);
        x[i] = test_rng_normal() * (i % 53 == 0 ? 6.0f : 1.0f) + 0.3f;
    }
    sk_qparams p = {0};
    p.act_scale = absmax(x, n) / 127.0f;
    /* The dots read copies at odd addresses (rows of the row-head types are not aligned;
     * the quantizers and dequantizers of the block types take aligned blocks). */
    const size_t wb = sk_dtype_row_bytes(dt, n), xb = sk_act_bytes(d->act, n);
    uint8_t *wal = malloc(wb), *wbuf = malloc(wb + 1), *w = wbuf + 1;
    quant_rows(dt, wf, 1, n, wal, &p);
    d->to_f32(wal, wd, n);
    memcpy(w, wal, wb);
    uint8_t *xal = malloc(xb), *xbuf = malloc(xb + 1);
    uint8_t *xa = xbuf + (d->act == SK_ACT_F32 ? 0 : 1); /* f32 activations are floats */
    sk_act_quantize_ref(d->act, x, n, xal, static_scale_of(dt, wal));
    sk_act_dequantize(d->act, xal, n, xd);
    memcpy(xa, xal, xb);
    double exact = 0, mag = 0;
    for (int64_t i = 0; i < n; i++) {
        exact += (double)wd[i] * xd[i];
        mag += fabs((double)wd[i] * xd[i]);
    }
    float ref = d->vec_dot_ref(n, w, xa);
    double tol = 1e-5 * mag + 1e-30;
    CHECK(fabs(ref - exact) <= tol, "%s n=%" PRId64 ": ref dot %.9g vs float64 %.9g (tol %.3g)",
          d->name, n, (double)ref, exact, tol);
    for (int l = 1; l < SK_ISA_COUNT; l++) {
        if (!sk_kernels_get((sk_isa)l)) continue;
        sk_vec_dot_fn fn = sk_vec_dot_get((sk_isa)l, dt);
        float got = fn(n, w, xa);
        CHECK(fabs(got - ref) <= tol,
              "%s n=%" PRId64 " level %d%s: dot %.9g vs ref %.9g (tol %.3g)", d->name, n, l, fn == d->vec_dot_ref ? " (ref)" : "", (double)got, (double)ref, tol);
    }
    free(wf); free(x); free(wd); free(xd); free(wal); free(wbuf); free(xal); free(xbuf);
}

/* The dtypes that must have a dot kernel (a vec_dot_ref, and a SIMD dot at every level above
 * the reference that this CPU runs): every quantized type, i.e. all but f32, f16 and bf16. A
 * type added without a dot, or a dot lost, fails the count below. */
static const shrink_dtype must_dot[] = {
    SHRINK_DTYPE_Q8_0,          SHRINK_DTYPE_Q4_0,          SHRINK_DTYPE_Q4_1,
    SHRINK_DTYPE_Q5_0,          SHRINK_DTYPE_Q5_1,          SHRINK_DTYPE_Q4_K,
    SHRINK_DTYPE_Q5_K,          SHRINK_DTYPE_Q6_K,          SHRINK_DTYPE_INT8_CH,
    SHRINK_DTYPE_INT8_CH_ASYM,  SHRINK_DTYPE_INT8_T,        SHRINK_DTYPE_INT8_T_ASYM,
    SHRINK_DTYPE_INT4_G32,      SHRINK_DTYPE_INT4_G64,      SHRINK_DTYPE_INT4_G128,
    SHRINK_DTYPE_INT4_G32_ASYM, SHRINK_DTYPE_INT4_G64_ASYM, SHRINK_DTYPE_INT4_G128_ASYM,
    SHRINK_DTYPE_NF4,           SHRINK_DTYPE_NF4_DQ,        SHRINK_DTYPE_W8A8,
    SHRINK_DTYPE_W8A8_STATIC,   SHRINK_DTYPE_Q2_K,          SHRINK_DTYPE_Q3_K,
    SHRINK_DTYPE_IQ4_NL,        SHRINK_DTYPE_SPARSE24_F16,  SHRINK_DTYPE_SPARSE24_I8,
    SHRINK_DTYPE_PAL16,         SHRINK_DTYPE_PAL256,        SHRINK_DTYPE_PAL4,
    SHRINK_DTYPE_SPARSE_F16,    SHRINK_DTYPE_SPARSE_I8,
};
enum { N_MUST_DOT = sizeof must_dot / sizeof must_dot[0] };

static int must_have_dot(int t) {
    for (int i = 0; i < N_MUST_DOT; i++)
        if ((int)must_dot[i] == t) return 1;
    return 0;
}

static void test_dot_list(void) {
    CHECK(N_MUST_DOT == 32, "the list holds %d types", N_MUST_DOT);
    CHECK(SHRINK_DTYPE_COUNT == 35, "%d dtypes: a new one must be added to must_dot (or not)",
          (int)SHRINK_DTYPE_COUNT);
    int ndt = 0;
    for (int t = 0; t < SHRINK_DTYPE_COUNT; t++) {
        const sk_dtype_traits *d = sk_dtype((shrink_dtype)t);
        int want = must_have_dot(t);
        ndt += d->vec_dot_ref != NULL;
        CHECK(!!d->vec_dot_ref == want, "%s: %s a dot kernel", d->name,
              want ? "must have" : "has, but is not listed with");
        for (int l = 1; want && l < SK_ISA_COUNT; l++)
            if (sk_kernels_get((sk_isa)l))
                CHECK(sk_vec_dot_get((sk_isa)l, (shrink_dtype)t) != d->vec_dot_ref,
                      "%s: no SIMD dot at level %d (this CPU runs it)", d->name, l);
    }
    CHECK(ndt == N_MUST_DOT, "%d dtypes have a dot kernel, want exactly %d", ndt, N_MUST_DOT);
}

static void test_dots(void) {
    for (int t = 0; t < SHRINK_DTYPE_COUNT; t++) {
        const sk_dtype_traits *d = sk_dtype((shrink_dtype)t);
        if (!d->vec_dot_ref) continue;
        int64_t L = lcm64((int64_t)d->block, sk_act_block(d->act));
        int64_t ns[] = {L, 2 * L, 3 * L, 5 * L, (4096 / L) * L + L, 4096 / L * L};
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) check_dot((shrink_dtype)t, ns[k]);
        if (L == 1)
            for (int64_t n = 3; n < 300; n += 37) check_dot((shrink_dtype)t, n);
        /* the level each dtype gets (informational) */
        for (int l = 1; l < SK_ISA_COUNT; l++)
            if (sk_kernels_get((sk_isa)l))
                printf("  %-14s level %d: %s\n", d->name, l,
                       sk_vec_dot_get((sk_isa)l, (shrink_dtype)t) == d->vec_dot_ref ? "ref"
                                                                                   : "simd");
    }
}

/* q8_0 weights with -128 codes (legal bytes a file may hold; the quantizer never writes them) */
static void test_q8_0_min_code(void) {
    const int64_t n = 64;
    const sk_dtype_traits *d = sk_dtype(SHRINK_DTYPE_Q8_0);
    uint8_t w[2 * 34];
    float x[64], xd[64];
    for (int b = 0; b < 2; b++) {
        uint16_t h = sk_f32_to_f16(0.01f);
        memcpy(w + 34 * b, &h, 2);
        for (int j = 0; j < 32; j++) w[34 * b + 2 + j] = (uint8_t)(j % 3 == 0 ? 0x80 : j * 7);
    }
    for (int i = 0; i < n; i++) x[i] = test_rng_normal();
    uint8_t xa[2 * sizeof(sk_act_q8_32)];
    sk_act_quantize_ref(SK_ACT_Q8_32, x, n, xa, 0);
    sk_act_dequantize(SK_ACT_Q8_32, xa, n, xd);
    float wd[64];
    d->to_f32(w, wd, n);
    double exact = 0, mag = 0;
    for (int i = 0; i < n; i++) {
        exact += (double)wd[i] * xd[i];
        mag += fabs((double)wd[i] * xd[i]);
    }
    for (int l = 0; l < SK_ISA_COUNT; l++) {
        if (!sk_kernels_get((sk_isa)l)) continue;
        float got = sk_vec_dot_get((sk_isa)l, SHRINK_DTYPE_Q8_0)(n, w, xa);
        CHECK(fabs(got - exact) <= 1e-5 * mag, "q8_0 with -128 codes, level %d: %g vs %g", l,
              (double)got, exact);
    }
}

/* ==== 4. sk_matmul ========================================================================== */

static void check_matmul(shrink_dtype dt, int64_t rows, int64_t cols, int64_t T) {
    const sk_dtype_traits *d = sk_dtype(dt);
    float *wf = malloc((size_t)(rows * cols) * sizeof(float));
    float *X = malloc((size_t)(T * cols) * sizeof(float));
    for (int64_t i = 0; i < rows * cols; i++) wf[i] = test_rng_normal();
    for (int64_t i = 0; i < T * cols; i++) X[i] = test_rng_normal() * (i % 41 == 0 ? 4.0f : 1.0f);
    sk_qparams p = {0};
    p.act_scale = absmax(X, T * cols) / 127.0f * 0.8f;
    const uint64_t rb = sk_dtype_row_bytes(dt, cols);
    void *w = malloc(rows * rb);
    quant_rows(dt, wf, rows, cols, w, &p);
    for (int64_t r = 0; r < rows; r++) d->to_f32((uint8_t *)w + r * rb, wf + r * cols, cols);
    /* the activations as the scheme sees them (decode quantizes every type; prompt processing
     * the int8-activation types and q8_0 / q4_0 / q4_K, gemm_q8.c) */
    float *Xd = malloc((size_t)(T * cols) * sizeof(float));
    const int act_always = d->act == SK_ACT_I8_TOKEN || d->act == SK_ACT_I8_STATIC ||
                           dt == SHRINK_DTYPE_Q8_0 || dt == SHRINK_DTYPE_Q4_0 ||
                           dt == SHRINK_DTYPE_Q4_K; /* gemm_q8.c (the bound only grows) */
    if ((T == 1 || act_always) && cols % sk_act_block(d->act) == 0) {
        void *xa = malloc(sk_act_bytes(d->act, cols));
        for (int64_t t = 0; t < T; t++) {
            sk_act_quantize_ref(d->act, X + t * cols, cols, xa, static_scale_of(dt, w));
            sk_act_dequantize(d->act, xa, cols, Xd + t * cols);
        }
        free(xa);
    } else {
        memcpy(Xd, X, (size_t)(T * cols) * sizeof(float));
    }
    float *Y = malloc((size_t)(T * rows) * sizeof(float)), *R = malloc((size_t)(T * rows) * 4);
    sk_mat W = {.dtype = dt, .rows = rows, .cols = cols, .data = w};
    sk_matmul_ref(&W, X, T, R, rows);
    for (int l = 0; l < SK_ISA_COUNT; l++) {
        const sk_kernel_set *ks = sk_kernels_get((sk_isa)l);
        if (!ks) continue;
        sk_matmul_with(ks, &W, X, T, Y, rows);
        int bad = 0;
        for (int64_t t = 0; t < T && !bad; t++)
            for (int64_t r = 0; r < rows && !bad; r++) {
                double mag = 0, qerr = 0;
                for (int64_t k = 0; k < cols; k++) {
                    double wk = fabs((double)wf[r * cols + k]);
                    mag += wk * fmax(fabs((double)X[t * cols + k]), fabs((double)Xd[t * cols + k]));
                    qerr += wk * fabs((double)X[t * cols + k] - Xd[t * cols + k]);
                }
                double err = fabs((double)Y[t * rows + r] - R[t * rows + r]);
                double tol = 1e-5 * mag + 1.0001 * qerr + 1e-30;
                if (!(err <= tol)) {
                    bad = 1;
                    fprintf(stderr, "  %s %s: Y[%" PRId64 ",%" PRId64 "] = %g, ref %g (tol %g)\n",
                            ks->name, d->name, t, r, (double)Y[t * rows + r],
                            (double)R[t * rows + r], tol);
                }
            }
        CHECK(!bad, "matmul %s %s %" PRId64 "x%" PRId64 " T=%" PRId64, ks->name, d->name, rows,
              cols, T);
    }
    free(wf); free(X); free(Xd); free(w); free(Y); free(R);
}

static void test_matmul(void) {
    for (int t = 0; t < SHRINK_DTYPE_COUNT; t++) {
        const sk_dtype_traits *d = sk_dtype((shrink_dtype)t);
        if (!d->vec_dot_ref) continue;
        int64_t L = lcm64((int64_t)d->block, sk_act_block(d->act));
        int64_t c1 = L >= 256 ? 2 * L : 8 * L, c2 = L >= 256 ? 9 * L : 35 * L;
        check_matmul((shrink_dtype)t, 37, c1, 1);
        check_matmul((shrink_dtype)t, 300, c2, 1); /* threaded */
        check_matmul((shrink_dtype)t, 37, c1, 5);
        check_matmul((shrink_dtype)t, 1, c2, 1);
        if (L == 1) check_matmul((shrink_dtype)t, 40, 77, 1); /* no act blocks: dequantized */
        if (d->act == SK_ACT_I8_TOKEN || d->act == SK_ACT_I8_STATIC)
            check_matmul((shrink_dtype)t, 20, 2048, 40); /* X quantized by the threads */
    }
}

int main(void) {
    test_act_quant();
    test_dot_list();
    test_dots();
    test_q8_0_min_code();
    test_matmul();
    return test_summary("test_qdot");
}
