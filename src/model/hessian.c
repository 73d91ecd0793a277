/*
 * hessian.c - the damped inverse-Hessian factor of hessian.h (moved here from src/prune/algo.c
 * so that SparseGPT and GPTQ share one implementation).
 */
#include "hessian.h"

#include <math.h>
#include <omp.h>

/* Packed storage (hessian.h): row i of a lower triangle starts at LO(i); row i of an upper
 * triangle at UP(i, n), its element j (>= i) at UP(i, n) + j - i. */
#define LO(i) ((size_t)(i) * (size_t)((i) + 1) / 2)

/* In-place lower Cholesky factor of A (lower-packed, n): A = L L^T. Returns the failing
 * column + 1, or 0. */
static int64_t chol_lower(double *A, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        double *aj = A + LO(j);
        double s = aj[j];
        for (int64_t k = 0; k < j; k++) s -= aj[k] * aj[k];
        if (!(s > 0.0) || !isfinite(s)) return j + 1;
        const double d = sqrt(s);
        aj[j] = d;
        /* the rows below are independent: threads only where a column's work (n - j) j
         * outweighs a parallel region's barrier (large n: a 7B ffn_down's 11008) */
        #pragma omp parallel for schedule(static) if ((n - j) * j > (1 << 20))
        for (int64_t i = j + 1; i < n; i++) {
            double *ai = A + LO(i);
            double t = ai[j];
            for (int64_t k = 0; k < j; k++) t -= ai[k] * aj[k];
            ai[j] = t / d;
        }
    }
    return 0;
}

shrink_status sk_hessian_factor_packed(double *H, int64_t n, double damp, double *U,
                                        uint8_t *dead, const char *what) {
    double mean = 0.0;
    for (int64_t c = 0; c < n; c++) {
        double *hc = H + LO(c) + (size_t)c;
        dead[c] = *hc == 0.0;
        if (dead[c]) *hc = 1.0;
        mean += *hc;
    }
    mean /= (double)(n > 0 ? n : 1);
    for (int64_t c = 0; c < n; c++) H[LO(c) + (size_t)c] += damp * mean;
    int64_t bad = chol_lower(H, n);
    if (bad)
        return sk_error(SHRINK_ERR_ARG, "%s: the Hessian of a %lld-column input is not "
                        "positive definite at column %lld even with damping %g (raise the "
                        "damping or give more calibration tokens)", what, (long long)n,
                        (long long)(bad - 1), damp);
    /* L^-1 (lower) into U, row by row: row i = (e_i - sum_{k<i} L[i][k] row k) / L[i][i]
     * (contiguous rows; the row-major loops matter for n ~ 1000 and more) */
    double *Li = U;
    memset(Li, 0, LO(n) * sizeof *Li);
    for (int64_t i = 0; i < n; i++) {
        double *li = Li + LO(i);
        const double *hi = H + LO(i);
        li[i] = 1.0;
        for (int64_t k = 0; k < i; k++) {
            const double a = hi[k];
            if (a == 0.0) continue;
            const double *lk = Li + LO(k);
            for (int64_t j = 0; j <= k; j++) li[j] -= a * lk[j];
        }
        const double d = hi[i];
        for (int64_t j = 0; j <= i; j++) li[j] /= d;
    }
    /* H^-1 = L^-T L^-1: row i of its lower triangle = sum_{k >= i} Li[k][i] * Li[k][0..i]; into
     * H */
    #pragma omp parallel for schedule(dynamic, 8) if (n > 128)
    for (int64_t i = 0; i < n; i++) {
        double *hi = H + LO(i);
        for (int64_t j = 0; j <= i; j++) hi[j] = 0.0;
        for (int64_t k = i; k < n; k++) {
            const double *lk = Li + LO(k);
            const double a = lk[i];
            if (a == 0.0) continue;
            for (int64_t j = 0; j <= i; j++) hi[j] += a * lk[j];
        }
    }
    bad = chol_lower(H, n);
    if (bad)
        return sk_error(SHRINK_ERR_ARG, "%s: the inverse Hessian of a %lld-column input "
                        "is not positive definite at column %lld (raise the damping)",
                        what, (long long)n, (long long)(bad - 1));
    /* U = L'^T: upper, row i = column i of L' */
    for (int64_t i = 0; i < n; i++) {
        double *ui = U + sk_hessian_up(i, n);
        for (int64_t j = i; j < n; j++) ui[j - i] = H[LO(j) + (size_t)i];
    }
    return SHRINK_OK;
}

shrink_status sk_hessian_factor(double *H, int64_t n, double damp, double *U, uint8_t *dead,
                                 const char *what) {
    const size_t P = LO(n);
    double *A = sk_malloc(P * sizeof *A), *B = sk_malloc(P * sizeof *B);
    shrink_status st = SHRINK_OK;
    if (!A || !B) {
        st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory for a %lld x %lld Hessian", what,
                      (long long)n, (long long)n);
        goto out;
    }
    for (int64_t i = 0; i < n; i++) memcpy(A + LO(i), H + (size_t)(i * n), (size_t)(i + 1) *
                                           sizeof *A);
    if ((st = sk_hessian_factor_packed(A, n, damp, B, dead, what))) goto out;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            U[i * n + j] = j >= i ? B[sk_hessian_up(i, n) + (size_t)(j - i)] : 0.0;
out:
    sk_free(A);
    sk_free(B);
    return st;
}
