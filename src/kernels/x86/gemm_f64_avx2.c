/*
 * gemm_f64_avx2.c - the double-precision tile update of kernels.h (sk_f64_tile_fn) with AVX2
 * and FMA (compiled with the AVX2 flags only): 4 rows x 8 columns of accumulators (8 ymm),
 * per k one broadcast of A per row and two loads of B; columns left over in 4s, then one at
 * a time (scalar FMA). The reference: gemm_f64.c.
 */
#include "../kernels.h"

#include <immintrin.h>

static void rows4(int64_t n, int64_t K, const double *const *A, int64_t ak,
                  const double *const *B, double *const *C, int sub, int zero) {
    const double *a0 = A[0], *a1 = A[1], *a2 = A[2], *a3 = A[3];
    double *c[4] = {C[0], C[1], C[2], C[3]};
    const __m256d sg = _mm256_set1_pd(sub ? -1.0 : 1.0);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256d x[4][2];
        for (int i = 0; i < 4; i++) {
            /* sub: the accumulators hold -C and gain +a*b; negated back at the store (the
             * rounding is sign-symmetric: the same bits as accumulating -a*b into C) */
            x[i][0] = zero ? _mm256_setzero_pd() : _mm256_mul_pd(_mm256_loadu_pd(c[i] + j), sg);
            x[i][1] = zero ? _mm256_setzero_pd()
                           : _mm256_mul_pd(_mm256_loadu_pd(c[i] + j + 4), sg);
        }
        for (int64_t k = 0; k < K; k++) {
            const double *b = B[k] + j;
            const __m256d b0 = _mm256_loadu_pd(b), b1 = _mm256_loadu_pd(b + 4);
/* row i of the 4 x 8 block: one broadcast of A, two FMAs */
#define ROW8(i, ai)                                                                          \
    do {                                                                                     \
        const __m256d v_ = _mm256_broadcast_sd((ai) + k * ak);                               \
        x[i][0] = _mm256_fmadd_pd(v_, b0, x[i][0]);                                          \
        x[i][1] = _mm256_fmadd_pd(v_, b1, x[i][1]);                                          \
    } while (0)
            ROW8(0, a0);
            ROW8(1, a1);
            ROW8(2, a2);
            ROW8(3, a3);
#undef ROW8
        }
        for (int i = 0; i < 4; i++) {
            x[i][0] = _mm256_mul_pd(x[i][0], sg);
            x[i][1] = _mm256_mul_pd(x[i][1], sg);
            if (zero) {
                x[i][0] = _mm256_add_pd(_mm256_loadu_pd(c[i] + j), x[i][0]);
                x[i][1] = _mm256_add_pd(_mm256_loadu_pd(c[i] + j + 4), x[i][1]);
            }
            _mm256_storeu_pd(c[i] + j, x[i][0]);
            _mm256_storeu_pd(c[i] + j + 4, x[i][1]);
        }
    }
    for (; j + 4 <= n; j += 4) {
        __m256d x[4];
        for (int i = 0; i < 4; i++)
            x[i] = zero ? _mm256_setzero_pd() : _mm256_mul_pd(_mm256_loadu_pd(c[i] + j), sg);
        for (int64_t k = 0; k < K; k++) {
            const __m256d b0 = _mm256_loadu_pd(B[k] + j);
            x[0] = _mm256_fmadd_pd(_mm256_broadcast_sd(a0 + k * ak), b0, x[0]);
            x[1] = _mm256_fmadd_pd(_mm256_broadcast_sd(a1 + k * ak), b0, x[1]);
            x[2] = _mm256_fmadd_pd(_mm256_broadcast_sd(a2 + k * ak), b0, x[2]);
            x[3] = _mm256_fmadd_pd(_mm256_broadcast_sd(a3 + k * ak), b0, x[3]);
        }
        for (int i = 0; i < 4; i++) {
            x[i] = _mm256_mul_pd(x[i], sg);
            if (zero) x[i] = _mm256_add_pd(_mm256_loadu_pd(c[i] + j), x[i]);
            _mm256_storeu_pd(c[i] + j, x[i]);
        }
    }
    const double s = sub ? -1.0 : 1.0;
    for (; j < n; j++)
        for (int i = 0; i < 4; i++) {
            const double *a = A[i];
            __m128d acc = _mm_set_sd(zero ? 0.0 : c[i][j]);
            for (int64_t k = 0; k < K; k++)
                acc = _mm_fmadd_sd(_mm_set_sd(s * a[k * ak]), _mm_set_sd(B[k][j]), acc);
            const double r = _mm_cvtsd_f64(acc);
            c[i][j] = zero ? c[i][j] + r : r;
        }
}

static void row1(int64_t n, int64_t K, const double *a, int64_t ak, const double *const *B,
                 double *c, int sub, int zero) {
    const __m256d sg = _mm256_set1_pd(sub ? -1.0 : 1.0);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256d x0 = zero ? _mm256_setzero_pd() : _mm256_loadu_pd(c + j);
        __m256d x1 = zero ? _mm256_setzero_pd() : _mm256_loadu_pd(c + j + 4);
        for (int64_t k = 0; k < K; k++) {
            const __m256d v = _mm256_mul_pd(_mm256_broadcast_sd(a + k * ak), sg);
            x0 = _mm256_fmadd_pd(v, _mm256_loadu_pd(B[k] + j), x0);
            x1 = _mm256_fmadd_pd(v, _mm256_loadu_pd(B[k] + j + 4), x1);
        }
        if (zero) {
            x0 = _mm256_add_pd(_mm256_loadu_pd(c + j), x0);
            x1 = _mm256_add_pd(_mm256_loadu_pd(c + j + 4), x1);
        }
        _mm256_storeu_pd(c + j, x0);
        _mm256_storeu_pd(c + j + 4, x1);
    }
    const double s = sub ? -1.0 : 1.0;
    for (; j < n; j++) {
        __m128d acc = _mm_set_sd(zero ? 0.0 : c[j]);
        for (int64_t k = 0; k < K; k++)
            acc = _mm_fmadd_sd(_mm_set_sd(s * a[k * ak]), _mm_set_sd(B[k][j]), acc);
        const double r = _mm_cvtsd_f64(acc);
        c[j] = zero ? c[j] + r : r;
    }
}

void sk_f64_tile_avx2(int64_t m, int64_t n, int64_t K, const double *const *A, int64_t ak,
                      const double *const *B, double *const *C, int sub, int zero) {
    if (m == 4) {
        rows4(n, K, A, ak, B, C, sub, zero);
        return;
    }
    for (int64_t i = 0; i < m; i++) row1(n, K, A[i], ak, B, C[i], sub, zero);
}
