/*
 * hessian.c - the damped inverse-Hessian factor of hessian.h (moved here from src/prune/algo.c
 * so that SparseGPT and GPTQ share one implementation).
 */
#include "hessian.h"

#include <math.h>
#include <omp.h>

/* In-place lower Cholesky factor of A (n x n): A = L L^T, L in the lower triangle (the upper
 * is set to 0). Returns the failing column + 1, or 0. */
static int64_t chol_lower(double *A, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        double *aj = A + j * n;
        double s = aj[j];
        for (int64_t k = 0; k < j; k++) s -= aj[k] * aj[k];
        if (!(s > 0.0) || !isfinite(s)) return j + 1;
        const double d = sqrt(s);
        aj[j] = d;
        /* serial: a parallel region per column costs more than it saves (barriers) */
        for (int64_t i = j + 1; i < n; i++) {
            double *ai = A + i * n;
            double t = ai[j];
            for (int64_t k = 0; k < j; k++) t -= ai[k] * aj[k];
            ai[j] = t / d;
        }
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) A[i * n + j] = 0.0;
    return 0;
}

shrink_status sk_hessian_factor(double *H, int64_t n, double damp, double *U, uint8_t *dead,
                                 const char *what) {
    double mean = 0.0;
    for (int64_t c = 0; c < n; c++) {
        dead[c] = H[c * n + c] == 0.0;
        if (dead[c]) H[c * n + c] = 1.0;
        mean += H[c * n + c];
    }
    mean /= (double)(n > 0 ? n : 1);
    for (int64_t c = 0; c < n; c++) H[c * n + c] += damp * mean;
    int64_t bad = chol_lower(H, n);
    if (bad)
        return sk_error(SHRINK_ERR_ARG, "%s: the Hessian of a %lld-column input is not "
                        "positive definite at column %lld even with damping %g (raise the "
                        "damping or give more calibration tokens)", what, (long long)n,
                        (long long)(bad - 1), damp);
    /* L^-1 (lower) into U, row by row: row i = (e_i - sum_{k<i} L[i][k] row k) / L[i][i]
     * (contiguous rows; the row-major loops matter for n ~ 1000 and more) */
    double *Li = U;
    memset(Li, 0, (size_t)(n * n) * sizeof *Li);
    for (int64_t i = 0; i < n; i++) {
        double *li = Li + i * n;
        const double *hi = H + i * n;
        li[i] = 1.0;
        for (int64_t k = 0; k < i; k++) {
            const double a = hi[k];
            if (a == 0.0) continue;
            const double *lk = Li + k * n;
            for (int64_t j = 0; j <= k; j++) li[j] -= a * lk[j];
        }
        const double d = hi[i];
        for (int64_t j = 0; j <= i; j++) li[j] /= d;
    }
    /* H^-1 = L^-T L^-1: row i of its lower triangle = sum_{k >= i} Li[k][i] * Li[k][0..i]; into
     * H (lower part first, then mirrored) */
    #pragma omp parallel for schedule(dynamic, 8) if (n > 128)
    for (int64_t i = 0; i < n; i++) {
        double *hi = H + i * n;
        for (int64_t j = 0; j <= i; j++) hi[j] = 0.0;
        for (int64_t k = i; k < n; k++) {
            const double *lk = Li + k * n;
            const double a = lk[i];
            if (a == 0.0) continue;
            for (int64_t j = 0; j <= i; j++) hi[j] += a * lk[j];
        }
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) H[i * n + j] = H[j * n + i];
    bad = chol_lower(H, n);
    if (bad)
        return sk_error(SHRINK_ERR_ARG, "%s: the inverse Hessian of a %lld-column input "
                        "is not positive definite at column %lld (raise the damping)",
                        what, (long long)n, (long long)(bad - 1));
    /* U = L'^T: upper */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) U[i * n + j] = j >= i ? H[j * n + i] : 0.0;
    return SHRINK_OK;
}

