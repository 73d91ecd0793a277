/*
 * test_kernels.c - every kernel set this CPU can run, against the scalar references:
 * sk_matmul for every dtype x shape (tails in rows, cols and tokens; T = 1 decode and T > 1
 * prompt shapes), the vector helpers, the dispatch API, and the f16/bf16 conversions
 * (exhaustive f16 -> f32; round trips).
 *
 * Tolerance: |y - y_ref| <= 1e-5 * sum_k |w_k x_k| + 1e-30 (the two differ only in the order
 * of f32 additions).
 */
#include "kernels/kernels.h"
#include "test_util.h"

#include <omp.h>
#include <stdint.h>

static float rng_f(void) { return (float)(2.0 * test_rng_u() - 1.0); }

/* A random W (rows x cols) of dtype dt and its f32 widening. */
static void *make_w(shrink_dtype dt, int64_t rows, int64_t cols, float *wf) {
    const sk_dtype_traits *d = sk_dtype(dt);
    size_t n = (size_t)(rows * cols);
    float *tmp = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) tmp[i] = rng_f();
    void *w = malloc((n ? n : 1) * d->bytes);
    d->from_f32(tmp, w, (int64_t)n);
    d->to_f32(w, wf, (int64_t)n);
    free(tmp);
    return w;
}

/* Every available kernel set against sk_matmul_ref on one random problem. */
static void check_matmul(shrink_dtype dt, int64_t rows, int64_t cols, int64_t T,
                         int64_t ldy_extra) {
    int64_t ldy = rows + ldy_extra;
    float *wf = malloc((size_t)(rows * cols + 1) * sizeof(float));
    void *w = make_w(dt, rows, cols, wf);
    float *X = malloc((size_t)(T * cols + 1) * sizeof(float));
    for (int64_t i = 0; i < T * cols; i++) X[i] = rng_f();
    size_t ny = (size_t)(T * ldy + 1);
    float *Y = malloc(ny * sizeof(float)), *R = malloc(ny * sizeof(float));
    double *mag = malloc(ny * sizeof(double));
    sk_mat W = {.dtype = dt, .rows = rows, .cols = cols, .data = w};
    for (size_t i = 0; i < ny; i++) R[i] = 12345.0f;
    sk_matmul_ref(&W, X, T, R, ldy);
    for (int64_t t = 0; t < T; t++)
        for (int64_t r = 0; r < rows; r++) {
            double m = 0;
            for (int64_t k = 0; k < cols; k++) m += fabs((double)wf[r * cols + k] * X[t * cols + k]);
            mag[t * ldy + r] = m;
        }
    for (int l = 0; l < SK_ISA_COUNT; l++) {
        const sk_kernel_set *ks = sk_kernels_get((sk_isa)l);
        if (!ks) continue;
        for (size_t i = 0; i < ny; i++) Y[i] = 12345.0f; /* sentinels outside the rows */
        sk_matmul_with(ks, &W, X, T, Y, ldy);
        int bad = 0;
        for (int64_t t = 0; t < T && !bad; t++) {
            for (int64_t r = 0; r < ldy; r++) {
                float y = Y[t * ldy + r], ref = R[t * ldy + r];
                if (r >= rows) { /* padding between rows must not be written */
                    if (y != 12345.0f) bad = 1;
                    continue;
                }
                double err = fabs((double)y - ref), tol = 1e-5 * mag[t * ldy + r] + 1e-30;
                if (!(err <= tol)) {
                    bad = 1;
                    fprintf(stderr, "  %s %s %" PRId64 "x%" PRId64 " T=%" PRId64 ": Y[%" PRId64
                            ",%" PRId64 "] = %g, ref %g (err %g > tol %g)\n", ks->name,
                            shrink_dtype_name(dt), rows, cols, T, t, r, y, ref, err, tol);
                    break;
                }
            }
        }
        if (Y[T * ldy] != 12345.0f) bad = 1; /* past the end */
        CHECK(!bad, "matmul %s %s rows=%" PRId64 " cols=%" PRId64 " T=%" PRId64 " ldy=%" PRId64,
              ks->name, shrink_dtype_name(dt), rows, cols, T, ldy);
    }
    free(wf); free(w); free(X); free(Y); free(R); free(mag);
}

static void test_matmul(void) {
    static const int64_t shapes[][2] = {
        {1, 1},    {3, 172}, {5, 64},    {7, 32},   {16, 16},  {17, 33},  {31, 15},
        {32, 384}, {33, 17}, {47, 100},  {64, 64},  {95, 257}, {129, 7},  {100, 1024},
        {384, 384}, {260, 530},
    };
    static const int64_t Ts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 25, 64};
    for (int d = 0; d < SHRINK_DTYPE_COUNT; d++)
        for (size_t s = 0; !sk_dtype_quantized((shrink_dtype)d) && /* test_quants, _qshrink */
                           s < sizeof shapes / sizeof shapes[0]; s++)
            for (size_t t = 0; t < sizeof Ts / sizeof Ts[0]; t++)
                check_matmul((shrink_dtype)d, shapes[s][0], shapes[s][1], Ts[t], t % 3 == 1 ? 5 : 0);
    /* prompt-sized and decode-sized */
    for (int d = 0; d < SHRINK_DTYPE_COUNT; d++) {
        if (sk_dtype_quantized((shrink_dtype)d)) continue; /* test_quants.c, test_qshrink.c */
        check_matmul((shrink_dtype)d, 70, 300, 513, 0);
        check_matmul((shrink_dtype)d, 1000, 384, 1, 0);
        check_matmul((shrink_dtype)d, 1001, 77, 1, 3);
        check_matmul((shrink_dtype)d, 200, 1030, 30, 0);
        check_matmul((shrink_dtype)d, 20, 300, 200, 1); /* one panel: tokens split over threads */
    }
}

static void test_zero_cols(const sk_kernel_set *ks) {
    float Y[6] = {1, 1, 1, 1, 1, 1};
    float dummy = 0;
    sk_mat W = {.dtype = SHRINK_DTYPE_F32, .rows = 3, .cols = 0, .data = &dummy};
    sk_matmul_with(ks, &W, &dummy, 2, Y, 3);
    CHECK(Y[0] == 0 && Y[5] == 0, "%s: cols == 0 gives zeros", ks->name);
}

static void test_threads(const sk_kernel_set *ks) {
    /* the same result with 1 and 2 threads (static partitioning; each output computed by
     * one thread in the same order) */
    int64_t rows = 515, cols = 200, T = 41;
    float *wf = malloc((size_t)(rows * cols) * sizeof(float));
    void *w = make_w(SHRINK_DTYPE_F16, rows, cols, wf);
    float *X = malloc((size_t)(T * cols) * sizeof(float));
    for (int64_t i = 0; i < T * cols; i++) X[i] = rng_f();
    float *A = malloc((size_t)(T * rows) * sizeof(float)), *B = malloc((size_t)(T * rows) * sizeof(float));
    sk_mat W = {.dtype = SHRINK_DTYPE_F16, .rows = rows, .cols = cols, .data = w};
    int saved = omp_get_max_threads();
    for (int64_t tt = 1; tt <= T; tt += T - 1) {
        for (int64_t nrows = rows; nrows > 0; nrows -= 500) { /* 515 rows, then 15 */
            sk_mat Wn = W;
            Wn.rows = nrows;
            omp_set_num_threads(1);
            sk_matmul_with(ks, &Wn, X, tt, A, nrows);
            omp_set_num_threads(2);
            sk_matmul_with(ks, &Wn, X, tt, B, nrows);
            CHECK(memcmp(A, B, (size_t)(tt * nrows) * sizeof(float)) == 0,
                  "%s: 1 and 2 threads agree, rows=%" PRId64 " T=%" PRId64, ks->name, nrows, tt);
        }
    }
    omp_set_num_threads(saved);
    free(wf); free(w); free(X); free(A); free(B);
}

static void test_vec(const sk_kernel_set *ks) {
    for (int64_t n = 0; n <= 200; n += (n < 40 ? 1 : 37)) {
        float a[256], b[256], y[256], yr[256];
        double mag = 0;
        for (int64_t i = 0; i < n; i++) {
            a[i] = rng_f(); b[i] = rng_f(); y[i] = yr[i] = rng_f();
            mag += fabs((double)a[i] * b[i]);
        }
        y[n] = yr[n] = 77.0f;
        float d = ks->dot_f32(a, b, n), dr = sk_vec_dot_f32_ref(a, b, n);
        CHECK(fabs((double)d - dr) <= 1e-5 * mag + 1e-30, "%s dot n=%" PRId64 ": %g vs %g",
              ks->name, n, d, dr);
        ks->axpy_f32(n, 0.75f, a, y);
        sk_vec_axpy_f32_ref(n, 0.75f, a, yr);
        int ok = y[n] == 77.0f;
        for (int64_t i = 0; i < n; i++) ok &= fabsf(y[i] - yr[i]) <= 1e-6f * (fabsf(yr[i]) + 1.0f);
        CHECK(ok, "%s axpy n=%" PRId64, ks->name, n);
    }
}

static int same_bits_or_both_nan(float a, float b) {
    if (a != a && b != b) return 1;
    return memcmp(&a, &b, 4) == 0;
}

static void test_conversions(void) {
    /* f16 -> f32 exhaustively, against the hardware (F16C) when the CPU has it, and
     * f32 -> f16 -> f32 round trips every value (except NaN payload details). */
    int bad_rt = 0, bad_hw = 0, bad_tbl = 0;
    uint16_t hs[1];
    float fs[1];
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sk_f16_to_f32((uint16_t)h);
        uint16_t back = sk_f32_to_f16(f);
        if (f == f ? back != h : (back & 0x7C00) != 0x7C00 || !(back & 0x3FF)) bad_rt++;
        hs[0] = (uint16_t)h;
        sk_dtype(SHRINK_DTYPE_F16)->to_f32(hs, fs, 1);
        if (!same_bits_or_both_nan(fs[0], f)) bad_tbl++;
        /* the f16 GEMV path (vcvtph2ps) on a 1x1 matrix with x = 1 */
        if (sk_kernels_get(SK_ISA_AVX2) && f == f) {
            float one = 1.0f, y = 0;
            sk_mat W = {.dtype = SHRINK_DTYPE_F16, .rows = 1, .cols = 1, .data = hs};
            for (int l = SK_ISA_AVX2; l <= (int)sk_cpu_isa(); l++) {
                sk_kernels_get((sk_isa)l)->gemv(&W, &one, &y, 0, 1);
                if (!same_bits_or_both_nan(y, f) && !(y == 0 && f == 0)) bad_hw++;
            }
        }
    }
    CHECK(bad_rt == 0, "f16 round trips: %d bad", bad_rt);
    CHECK(bad_tbl == 0, "f16 table row vs scalar: %d bad", bad_tbl);
    CHECK(bad_hw == 0, "f16 widening in SIMD gemv vs scalar: %d bad", bad_hw);

    /* bf16: exhaustive round trip of the 16-bit patterns; SIMD widening matches */
    int bad_bf = 0, bad_bfhw = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sk_bf16_to_f32((uint16_t)h);
        uint16_t back = sk_f32_to_bf16(f);
        if (f == f ? back != h : (back & 0x7F80) != 0x7F80) bad_bf++;
        if (sk_kernels_get(SK_ISA_AVX2) && f == f) {
            hs[0] = (uint16_t)h;
            float one = 1.0f, y = 0;
            sk_mat W = {.dtype = SHRINK_DTYPE_BF16, .rows = 1, .cols = 1, .data = hs};
            for (int l = SK_ISA_AVX2; l <= (int)sk_cpu_isa(); l++) {
                sk_kernels_get((sk_isa)l)->gemv(&W, &one, &y, 0, 1);
                if (!same_bits_or_both_nan(y, f) && !(y == 0 && f == 0)) bad_bfhw++;
            }
        }
    }
    CHECK(bad_bf == 0, "bf16 round trips: %d bad", bad_bf);
    CHECK(bad_bfhw == 0, "bf16 widening in SIMD gemv vs scalar: %d bad", bad_bfhw);

    /* f32 -> f16/bf16 rounding: random floats within the relative tolerance of the table */
    int bad_rel = 0;
    for (int i = 0; i < 100000; i++) {
        float f = rng_f() * 100.0f;
        float h = sk_f16_to_f32(sk_f32_to_f16(f)), b = sk_bf16_to_f32(sk_f32_to_bf16(f));
        if (fabsf(f) > 1e-4f && fabsf(h - f) > sk_dtype(SHRINK_DTYPE_F16)->tol_rel * fabsf(f)) bad_rel++;
        if (fabsf(b - f) > sk_dtype(SHRINK_DTYPE_BF16)->tol_rel * fabsf(f)) bad_rel++;
    }
    CHECK(bad_rel == 0, "f32 -> f16/bf16 rounding within tol_rel: %d bad", bad_rel);
    /* ties to even */
    CHECK(sk_f32_to_bf16(sk_bf16_to_f32(0x3F80) + 0x1p-8f) == 0x3F80, "bf16 tie to even (down)");
    CHECK(sk_f32_to_f16(1.0f + 0x1p-11f) == 0x3C00, "f16 tie to even (down)");
    CHECK(sk_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3C02, "f16 tie to even (up)");
}

static void test_dispatch(void) {
    const char *isa = sk_kernels_isa();
    const char *env = getenv("SHRINK_KERNELS");
    CHECK(strcmp(isa, "ref") == 0 || strcmp(isa, "avx2") == 0 || strcmp(isa, "avx512") == 0,
          "sk_kernels_isa: %s", isa);
    if (env && strcmp(env, "ref") == 0) CHECK(strcmp(isa, "ref") == 0, "SHRINK_KERNELS=ref honoured");
    CHECK(sk_kernels_get(SK_ISA_REF) == &sk_kernels_ref, "ref is always available");
    CHECK(sk_kernels_get(sk_cpu_isa()) != NULL, "cpu level has a set");
    CHECK(strstr(shrink_kernels_name(), isa) == shrink_kernels_name(), "name starts with isa: %s",
          shrink_kernels_name());
    printf("kernels: %s (cpu: %s)\n", shrink_kernels_name(), sk_kernels_get(sk_cpu_isa())->name);
    /* the dispatched entry points */
    float a[19], b[19];
    for (int i = 0; i < 19; i++) a[i] = b[i] = (float)i;
    CHECK(sk_vec_dot_f32(a, b, 19) == 2109.0f, "sk_vec_dot_f32");
}

/* exp_sum_f32 of every kernel set against expf in double: each value within 4e-7 relative
 * (a few ulp), the sum within 1e-6 relative, tails of every length up to 33, and inputs down
 * to -120 (results underflow to subnormals or 0 as expf's do, within 1e-37 absolute). */
static void test_exp_sum(const sk_kernel_set *ks) {
    enum { N = 1000 };
    static float x[N];
    uint64_t st = 12345;
    for (int n = 0; n <= N; n += (n < 33 ? 1 : 241)) {
        double want_sum = 0;
        for (int i = 0; i < n; i++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = -120.0f * (float)((st >> 40) & 0xFFFFFF) / 16777216.0f + 3.0f;
        }
        float sub = 3.0f, ref[N];
        for (int i = 0; i < n; i++) {
            ref[i] = (float)exp((double)x[i] - sub);
            want_sum += ref[i];
        }
        float got_sum = ks->exp_sum_f32(x, n, sub);
        int bad = 0;
        for (int i = 0; i < n; i++)
            if (fabsf(x[i] - ref[i]) > 4e-7f * ref[i] + 1e-37f) bad++;
        CHECK(bad == 0, "%s exp_sum n=%d: %d values off", ks->name, n, bad);
        CHECK(fabs(got_sum - want_sum) <= 1e-6 * want_sum + 1e-30, "%s exp_sum n=%d: sum %.9g vs %.9g",
              ks->name, n, got_sum, want_sum);
    }
}

int main(void) {
    test_dispatch();
    test_conversions();
    test_matmul();
    for (int l = 0; l < SK_ISA_COUNT; l++) {
        const sk_kernel_set *ks = sk_kernels_get((sk_isa)l);
        if (!ks) {
            printf("%s: not supported by this CPU, skipped\n", l == SK_ISA_AVX2 ? "avx2" : "avx512");
            continue;
        }
        test_zero_cols(ks);
        test_threads(ks);
        test_vec(ks);
        test_exp_sum(ks);
    }
    /* the dispatched sk_matmul itself */
    {
        float wv[6] = {1, 2, 3, 4, 5, 6}, x[4] = {1, 1, 2, -1}, y[6];
        sk_mat W = {.dtype = SHRINK_DTYPE_F32, .rows = 3, .cols = 2, .data = wv};
        sk_scratch s = {0};
        CHECK(sk_matmul(&W, x, 2, y, 3, &s) == SHRINK_ERR_ARG, "sk_matmul: no scratch, no run");
        CHECK(sk_scratch_reserve(&s, sk_matmul_scratch_bytes(sk_kernels(), &W, 2)) == SHRINK_OK,
              "scratch");
        CHECK(sk_matmul(&W, x, 1, y, 3, &s) == SHRINK_OK, "sk_matmul T=1 status");
        CHECK(y[0] == 3 && y[1] == 7 && y[2] == 11, "sk_matmul T=1");
        CHECK(sk_matmul(&W, x, 2, y, 3, &s) == SHRINK_OK, "sk_matmul T=2 status");
        CHECK(y[0] == 3 && y[1] == 7 && y[2] == 11 && y[3] == 0 && y[4] == 2 && y[5] == 4,
              "sk_matmul T=2");
        CHECK(s.used == 0, "sk_matmul gave its scratch back");
        sk_scratch_free(&s);
    }
    return test_summary("test_kernels");
}
