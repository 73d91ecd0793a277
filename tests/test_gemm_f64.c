/*
 * test_gemm_f64.c - the double-precision tile update (src/kernels/gemm_f64.c,
 * x86/gemm_f64_avx2.c) and the blocked second-order machinery built on it
 * (src/model/hessian.c, src/quant/gptq.c), each against an independent reference here:
 *   1. the avx2 tile against the scalar reference for every row count 1..4, column counts
 *      across the 8- and 4-wide paths and their tails, K 0..9, add / subtract, from C / from
 *      zero: equal within 1e-13 of the sum of |terms| on doubles, and bit for bit when the
 *      products are exact (floats, as in X^T X);
 *   2. sk_hessian_add_xtx (threads over row groups, the tile) against the plain loop (each
 *      element's sum over the tokens from zero in token order, then added), bit for bit,
 *      packed and full, for widths around the 4-row groups;
 *   3. the blocked factor (sk_hessian_factor_packed: blocked Cholesky of the reversed H and a
 *      blocked triangular inverse) against the unblocked float64 algorithm it replaced
 *      (Cholesky of H, L^-1 row by row, H^-1 = L^-T L^-1, Cholesky again, U = L'^T) for n
 *      across the 64-wide blocks (1, 7, 64, 65, 150, 203): |U - U_ref| <= 1e-9 max |U_ref|;
 *   4. GPTQ with lazy blocks (128 and 1 columns: every trailing update through the tile over
 *      chunks of 512 columns and tiles of 32 rows) against one block of all columns (the
 *      column-by-column algorithm, no trailing update), on 37 x 608 (ragged tiles and
 *      groups): at most 0.5 % of the codes differ, and the layer error within 1e-6.
 */
#include "kernels/kernels.h"
#include "model/hessian.h"
#include "quant/gptq.h"
#include "test_util.h"

#include <math.h>

static double rnd(void) { return test_rng_u() * 2.0 - 1.0; }

static void check_tile(int exact) {
    /* without AVX2 the kernel sk_matmul would dispatch is the reference itself */
    const sk_f64_tile_fn tile = sk_cpu_isa() >= SK_ISA_AVX2 ? sk_f64_tile_avx2 : sk_f64_tile_ref;
    const int ns[] = {1, 3, 4, 5, 8, 9, 13, 16, 21};
    int bad = 0, cases = 0;
    for (int m = 1; m <= 4; m++)
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (int K = 0; K <= 9; K++)
                for (int mode = 0; mode < 4; mode++) {
                    const int n = ns[ni], sub = mode & 1, zero = mode >> 1, ak = 3;
                    double a[4][30], b[10][24], c1[4][24], c2[4][24];
                    for (int i = 0; i < 4; i++)
                        for (int k = 0; k < 30; k++)
                            a[i][k] = exact ? (double)(float)rnd() : rnd();
                    for (int k = 0; k < 10; k++)
                        for (int j = 0; j < 24; j++) b[k][j] = exact ? (double)(float)rnd() : rnd();
                    for (int i = 0; i < 4; i++)
                        for (int j = 0; j < 24; j++) c1[i][j] = c2[i][j] = rnd();
                    const double *A[4] = {a[0], a[1], a[2], a[3]}, *B[10];
                    for (int k = 0; k < 10; k++) B[k] = b[k];
                    double *C1[4] = {c1[0], c1[1], c1[2], c1[3]}, *C2[4] = {c2[0], c2[1], c2[2], c2[3]};
                    sk_f64_tile_ref(m, n, K, A, ak, B, C1, sub, zero);
                    tile(m, n, K, A, ak, B, C2, sub, zero);
                    for (int i = 0; i < 4; i++)
                        for (int j = 0; j < 24; j++) {
                            double mag = fabs(c2[i][j]);
                            for (int k = 0; k < K; k++) mag += fabs(a[i][k * ak] * b[k][j]);
                            const double d = fabs(c1[i][j] - c2[i][j]);
                            if (i >= m || j >= n ? c1[i][j] != c2[i][j]
                                                 : exact ? d != 0.0 : d > 1e-13 * mag)
                                bad++;
                        }
                    cases++;
                }
    CHECK(bad == 0, "tile (%s): %d of %d cases' elements differ from the reference",
          exact ? "float products" : "doubles", bad, cases);
}

static void check_xtx(void) {
    const int64_t ns[] = {1, 2, 5, 8, 33};
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (int packed = 0; packed < 2; packed++) {
            const int64_t n = ns[ni], T = 23;
            float *X = malloc(sizeof(float) * (size_t)(T * n));
            double *Xd = malloc(sizeof(double) * (size_t)(T * n));
            double *H = malloc(sizeof(double) * (size_t)(n * n));
            double *R = malloc(sizeof(double) * (size_t)(n * n));
            for (int64_t i = 0; i < T * n; i++) X[i] = (float)(rnd() * (i % 7 == 3 ? 0 : 3));
            /* start values S in H (packed or full) and the reference R = S + the window's
             * sum of each element, from zero in token order */
            double *S = malloc(sizeof(double) * (size_t)(n * n));
            for (int64_t i = 0; i < n * n; i++) S[i] = rnd();
            for (int64_t a = 0; a < n; a++)
                for (int64_t b2 = a; b2 < n; b2++) {
                    double s = 0.0;
                    for (int64_t t = 0; t < T; t++) s += (double)X[t * n + a] * (double)X[t * n + b2];
                    R[a * n + b2] = S[a * n + b2] + s;
                    if (packed) H[sk_hessian_up(a, n) + (size_t)(b2 - a)] = S[a * n + b2];
                    else H[a * n + b2] = S[a * n + b2];
                }
            sk_hessian_add_xtx(H, n, packed, X, T, Xd);
            int diff = 0;
            for (int64_t a = 0; a < n; a++)
                for (int64_t b2 = a; b2 < n; b2++) {
                    const double v = packed ? H[sk_hessian_up(a, n) + (size_t)(b2 - a)] : H[a * n + b2];
                    diff += v != R[a * n + b2];
                }
            CHECK(diff == 0, "X^T X, n %lld, %s: %d elements differ from the plain loop",
                  (long long)n, packed ? "packed" : "full", diff);
            free(X);
            free(Xd);
            free(H);
            free(R);
            free(S);
        }
}

/* The unblocked float64 algorithm: full matrices. Returns 0 if not positive definite. */
static int factor_ref(const double *H0, int64_t n, double damp, double *U) {
    double *A = malloc(sizeof(double) * (size_t)(n * n)), *Li = calloc((size_t)(n * n), sizeof(double));
    memcpy(A, H0, sizeof(double) * (size_t)(n * n));
    double mean = 0;
    for (int64_t c = 0; c < n; c++) mean += A[c * n + c];
    mean /= (double)n;
    for (int64_t c = 0; c < n; c++) A[c * n + c] += damp * mean;
    int ok = 1;
    for (int pass = 0; pass < 2 && ok; pass++) {
        for (int64_t j = 0; j < n && ok; j++) { /* lower Cholesky in place */
            double s = A[j * n + j];
            for (int64_t k = 0; k < j; k++) s -= A[j * n + k] * A[j * n + k];
            if (!(s > 0)) ok = 0;
            const double d = sqrt(s);
            A[j * n + j] = d;
            for (int64_t i = j + 1; i < n; i++) {
                double t = A[i * n + j];
                for (int64_t k = 0; k < j; k++) t -= A[i * n + k] * A[j * n + k];
                A[i * n + j] = t / d;
            }
        }
        if (pass == 1 || !ok) break;
        memset(Li, 0, sizeof(double) * (size_t)(n * n));
        for (int64_t i = 0; i < n; i++) { /* L^-1 */
            Li[i * n + i] = 1.0;
            for (int64_t k = 0; k < i; k++)
                for (int64_t j = 0; j <= k; j++) Li[i * n + j] -= A[i * n + k] * Li[k * n + j];
            for (int64_t j = 0; j <= i; j++) Li[i * n + j] /= A[i * n + i];
        }
        for (int64_t i = 0; i < n; i++) /* H^-1 = L^-T L^-1 */
            for (int64_t j = 0; j <= i; j++) {
                double s = 0;
                for (int64_t k = i; k < n; k++) s += Li[k * n + i] * Li[k * n + j];
                A[i * n + j] = s;
            }
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) U[i * n + j] = j >= i ? A[j * n + i] : 0.0;
    free(A);
    free(Li);
    return ok;
}

static void check_factor(void) {
    const int64_t ns[] = {1, 7, 64, 65, 150, 203};
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        const int64_t n = ns[ni], T = n + 20;
        double *X = malloc(sizeof(double) * (size_t)(T * n)), *H = calloc((size_t)(n * n), sizeof(double));
        double *U = malloc(sizeof(double) * (size_t)(n * n));
        for (int64_t i = 0; i < T * n; i++) X[i] = rnd() * (1 + (i % n) % 5);
        for (int64_t t = 0; t < T; t++)
            for (int64_t a = 0; a < n; a++)
                for (int64_t b = 0; b < n; b++) H[a * n + b] += X[t * n + a] * X[t * n + b];
        const size_t P = sk_hessian_packed(n);
        double *Hp = malloc(sizeof(double) * P), *Up = malloc(sizeof(double) * P);
        uint8_t *dead = malloc((size_t)n);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j <= i; j++) Hp[(size_t)(i * (i + 1) / 2 + j)] = H[i * n + j];
        const int ok_ref = factor_ref(H, n, 0.01, U);
        const int ok = sk_hessian_factor_packed(Hp, n, 0.01, Up, dead, "test") == SHRINK_OK;
        CHECK(ok && ok_ref, "factor n %lld: %s", (long long)n, shrink_last_error());
        double mx = 0, worst = 0;
        for (int64_t i = 0; ok && i < n; i++)
            for (int64_t j = i; j < n; j++) {
                mx = fmax(mx, fabs(U[i * n + j]));
                worst = fmax(worst, fabs(Up[sk_hessian_up(i, n) + (size_t)(j - i)] - U[i * n + j]));
            }
        CHECK(worst <= 1e-9 * mx, "blocked factor n %lld: differs from the unblocked by %g (max %g)",
              (long long)n, worst, mx);
        printf("  factor n %3lld: blocked vs unblocked max |diff| %.3g (max |U| %.3g)\n",
               (long long)n, worst, mx);
        free(X);
        free(H);
        free(U);
        free(Hp);
        free(Up);
        free(dead);
    }
}

static void check_gptq(void) {
    const int64_t rows = 37, n = 608, T = 700;
    float *W = malloc(sizeof(float) * (size_t)(rows * n));
    double *X = malloc(sizeof(double) * (size_t)(T * n));
    double *Hf = calloc((size_t)(n * n), sizeof(double));
    for (int64_t i = 0; i < rows * n; i++) W[i] = (float)rnd();
    for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < n; c++)
            X[t * n + c] = rnd() * (1 + c % 4) + (c > 0 ? 0.5 * X[t * n + c - 1] : 0.0);
    for (int64_t t = 0; t < T; t++)
        for (int64_t a = 0; a < n; a++)
            for (int64_t b = a; b < n; b++) Hf[a * n + b] += X[t * n + a] * X[t * n + b];
    const int64_t blocks[3] = {n, 128, 1};
    double *Q[3];
    double err[3];
    uint8_t *out = malloc((size_t)sk_dtype_row_bytes(SHRINK_DTYPE_Q4_0, n) * (size_t)rows);
    const size_t P = sk_hessian_packed(n);
    double *H = malloc(sizeof(double) * P);
    for (int bi = 0; bi < 3; bi++) {
        for (int64_t a = 0; a < n; a++)
            memcpy(H + sk_hessian_up(a, n), Hf + a * n + a, sizeof(double) * (size_t)(n - a));
        sk_gptq_opts o = {.damp = 0.01, .act_order = 0, .block = blocks[bi], .search = 0};
        sk_gptq_factor f;
        Q[bi] = malloc(sizeof(double) * (size_t)(rows * n));
        int ok = sk_gptq_prepare(H, n, &o, &f, "test") == SHRINK_OK &&
                 sk_gptq_quantize(W, rows, &f, SHRINK_DTYPE_Q4_0, &o, out, Q[bi]) == SHRINK_OK;
        CHECK(ok, "gptq block %lld: %s", (long long)blocks[bi], shrink_last_error());
        sk_gptq_factor_free(&f);
        /* layer error ||(W - Q) X^T|| / ||W X^T|| */
        double num = 0, den = 0;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t t = 0; t < T; t++) {
                double y = 0, e = 0;
                for (int64_t c = 0; c < n; c++) {
                    y += W[r * n + c] * X[t * n + c];
                    e += (W[r * n + c] - Q[bi][r * n + c]) * X[t * n + c];
                }
                num += e * e;
                den += y * y;
            }
        err[bi] = sqrt(num / den);
    }
    for (int bi = 1; bi < 3; bi++) {
        int diff = 0;
        for (int64_t i = 0; i < rows * n; i++) diff += Q[bi][i] != Q[0][i];
        CHECK(diff <= rows * n / 200, "gptq block %lld: %d of %lld values differ from one block",
              (long long)blocks[bi], diff, (long long)(rows * n));
        CHECK(fabs(err[bi] - err[0]) <= 1e-6 * err[0], "gptq block %lld: layer error %.9g vs %.9g",
              (long long)blocks[bi], err[bi], err[0]);
        printf("  gptq 37 x 608 q4_0, block %3lld vs one block: %d values differ, layer error "
               "%.9g vs %.9g\n", (long long)blocks[bi], diff, err[bi], err[0]);
    }
    for (int bi = 0; bi < 3; bi++) free(Q[bi]);
    free(W);
    free(X);
    free(Hf);
    free(H);
    free(out);
}

int main(void) {
    test_rng_seed(11);
    check_tile(0);
    check_tile(1);
    check_xtx();
    check_factor();
    check_gptq();
    return test_summary("test_gemm_f64");
}
