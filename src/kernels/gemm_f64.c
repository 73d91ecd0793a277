/*
 * gemm_f64.c - the double-precision tile update of kernels.h (sk_f64_tile_fn): the reference
 * and the choice of level. The AVX2 twin is x86/gemm_f64_avx2.c.
 */
#include "kernels.h"

void sk_f64_tile_ref(int64_t m, int64_t n, int64_t K, const double *const *A, int64_t ak,
                     const double *const *B, double *const *C, int sub, int zero) {
    for (int64_t i = 0; i < m; i++) {
        const double *a = A[i];
        double *c = C[i];
        for (int64_t j = 0; j < n; j++) {
            double acc = zero ? 0.0 : c[j];
            if (sub)
                for (int64_t k = 0; k < K; k++) {
                    const double p = a[k * ak] * B[k][j];
                    acc -= p;
                }
            else
                for (int64_t k = 0; k < K; k++) {
                    const double p = a[k * ak] * B[k][j];
                    acc += p;
                }
            c[j] = zero ? c[j] + acc : acc;
        }
    }
}

sk_f64_tile_fn sk_f64_tile_get(void) {
    return sk_kernels()->isa >= SK_ISA_AVX2 ? sk_f64_tile_avx2 : sk_f64_tile_ref;
}
