/*
 * hessian.c - the damped inverse-Hessian factor of hessian.h (moved here from src/prune/algo.c
 * so that SparseGPT and GPTQ share one implementation).
 */
#include "hessian.h"

#include "../kernels/kernels.h"

#include <math.h>
#include <omp.h>

/* Packed storage (hessian.h): row i of a lower triangle starts at LO(i); row i of an upper
 * triangle at UP(i, n), its element j (>= i) at UP(i, n) + j - i. */
#define LO(i) ((size_t)(i) * (size_t)((i) + 1) / 2)

enum { NB = 64 }; /* the block of the factor and of the inverse */

/* In-place lower Cholesky factor of A (lower-packed, n): A = L L^T, right-looking by blocks
 * of NB columns: the block's diagonal and the rows below it, then the trailing triangle
 * minus the block's outer products through the f64 tile (threads over rows). Returns the
 * failing column + 1, or 0 (or -1: out of memory). */
static int64_t chol_lower(double *A, int64_t n, sk_f64_tile_fn tile) {
    double *Bt = sk_malloc((size_t)NB * (size_t)(n > 0 ? n : 1) * sizeof *Bt);
    if (!Bt) return -1;
    for (int64_t j0 = 0; j0 < n; j0 += NB) {
        const int64_t j1 = j0 + NB < n ? j0 + NB : n, nb = j1 - j0;
        /* the diagonal block */
        for (int64_t j = j0; j < j1; j++) {
            double *aj = A + LO(j);
            double s = aj[j];
            for (int64_t k = j0; k < j; k++) s -= aj[k] * aj[k];
            if (!(s > 0.0) || !isfinite(s)) {
                sk_free(Bt);
                return j + 1;
            }
            const double d = sqrt(s);
            aj[j] = d;
            for (int64_t i = j + 1; i < j1; i++) {
                double *ai = A + LO(i);
                double t = ai[j];
                for (int64_t k = j0; k < j; k++) t -= ai[k] * aj[k];
                ai[j] = t / d;
            }
        }
        if (j1 == n) break;
        const int64_t m = n - j1;
        /* the rows below, each alone against the block's factor; and the transposed panel */
        #pragma omp parallel for schedule(static) if (m * nb * nb > (1 << 18))
        for (int64_t i = j1; i < n; i++) {
            double *ai = A + LO(i);
            for (int64_t j = j0; j < j1; j++) {
                const double *aj = A + LO(j);
                double t = ai[j];
                for (int64_t k = j0; k < j; k++) t -= ai[k] * aj[k];
                ai[j] = t / aj[j];
                Bt[(size_t)(j - j0) * (size_t)m + (size_t)(i - j1)] = ai[j];
            }
        }
        /* A[i][j] -= sum_k A[i][j0 + k] A[j][j0 + k] for j1 <= j <= i */
        const int64_t ng = (m + 3) / 4;
        #pragma omp parallel if (m * m * nb > (1 << 20))
        {
            const double *bp[NB];
            #pragma omp for schedule(dynamic, 4)
            for (int64_t g = 0; g < ng; g++) {
                const int64_t i0 = j1 + 4 * g, mi = n - i0 < 4 ? n - i0 : 4;
                const double *ar[4];
                double *cr[4];
                for (int64_t r = 0; r < mi; r++) {
                    ar[r] = A + LO(i0 + r) + j0;
                    cr[r] = A + LO(i0 + r) + j1;
                }
                for (int64_t k = 0; k < nb; k++) bp[k] = Bt + (size_t)k * (size_t)m;
                tile(mi, i0 - j1 + 1, nb, ar, 1, bp, cr, 1, 0);
                for (int64_t r = 1; r < mi; r++) { /* columns i0 + 1 .. i0 + r of row i0 + r */
                    const int64_t off = i0 + 1 - j1;
                    for (int64_t k = 0; k < nb; k++) bp[k] = Bt + (size_t)k * (size_t)m + off;
                    double *c1 = A + LO(i0 + r) + i0 + 1;
                    tile(1, r, nb, &ar[r], 1, bp, &c1, 1, 0);
                }
            }
        }
    }
    sk_free(Bt);
    return 0;
}

/* X = L^-1 (both lower-packed, n; X separate): by blocks of NB rows, first each row's sums
 * against the rows of the earlier blocks (the f64 tile, threads over rows), then the block's
 * own rows in order (threads over columns, which are independent). */
static void inv_lower(const double *L, double *X, int64_t n, sk_f64_tile_fn tile) {
    for (int64_t i0 = 0; i0 < n; i0 += NB) {
        const int64_t i1 = i0 + NB < n ? i0 + NB : n, rb = i1 - i0;
        /* T[i][j] = sum_{j <= k < i0} L[i][k] X[k][j] for j < i0, into X[i][j]: columns by
         * chunks of 64, the rows k >= c1 - 1 (all their columns there) by the tile, the
         * triangle c0 <= k < c1 - 1 by a loop */
        const int64_t nc = (i0 + 63) / 64, ng = (rb + 3) / 4;
        #pragma omp parallel if (rb * i0 * i0 > (1 << 20))
        {
            const double **bp = NULL;
            #pragma omp for schedule(dynamic, 1) collapse(2)
            for (int64_t g = 0; g < ng; g++)
                for (int64_t c = 0; c < nc; c++) {
                    if (!bp) bp = sk_malloc((size_t)(i0 > 0 ? i0 : 1) * sizeof *bp);
                    const int64_t r0 = i0 + 4 * g, mi = i1 - r0 < 4 ? i1 - r0 : 4;
                    const int64_t c0 = 64 * c, c1 = c0 + 64 < i0 ? c0 + 64 : i0;
                    const double *ar[4];
                    double *cr[4];
                    for (int64_t r = 0; r < mi; r++) {
                        double *xr = X + LO(r0 + r);
                        for (int64_t j = c0; j < c1; j++) xr[j] = 0.0;
                        /* the triangle: rows c0 .. c1 - 2 */
                        const double *lr = L + LO(r0 + r);
                        for (int64_t k = c0; k < c1 - 1; k++) {
                            const double a = lr[k];
                            const double *xk = X + LO(k);
                            for (int64_t j = c0; j <= k; j++) xr[j] += a * xk[j];
                        }
                        ar[r] = lr + (c1 - 1);
                        cr[r] = xr + c0;
                    }
                    const int64_t K = i0 - (c1 - 1);
                    if (bp) {
                        for (int64_t k = 0; k < K; k++) bp[k] = X + LO(c1 - 1 + k) + c0;
                        tile(mi, c1 - c0, K, ar, 1, bp, cr, 0, 0);
                    } else { /* out of memory for the pointers: the plain loop */
                        for (int64_t r = 0; r < mi; r++)
                            for (int64_t k = 0; k < K; k++)
                                for (int64_t j = c0; j < c1; j++)
                                    cr[r][j - c0] += ar[r][k] * X[LO(c1 - 1 + k) + (size_t)j];
                    }
                }
            sk_free((void *)bp);
        }
        for (int64_t i = i0; i < i1; i++) X[LO(i) + (size_t)i] = 1.0 / L[LO(i) + (size_t)i];
        const int64_t nc2 = (i1 + 63) / 64;
        #pragma omp parallel for schedule(dynamic, 1) if (rb * rb * i1 > (1 << 18))
        for (int64_t c = 0; c < nc2; c++) {
            const int64_t c0 = 64 * c, c1 = c0 + 64 < i1 ? c0 + 64 : i1;
            for (int64_t i = i0; i < i1; i++) {
                const double *li = L + LO(i);
                double *xi = X + LO(i);
                const int64_t e = c1 < i ? c1 : i;
                for (int64_t j = c0; j < e; j++) {
                    double t = j < i0 ? xi[j] : 0.0;
                    for (int64_t k = j > i0 ? j : i0; k < i; k++) t += li[k] * X[LO(k) + (size_t)j];
                    xi[j] = -t / li[i];
                }
            }
        }
    }
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
    /* U, the upper factor of H^-1 (H^-1 = U^T U), without forming H^-1: with J the reversal
     * of the n indices, R = J H J = L L^T (lower Cholesky) gives H = V V^T with V = J L J
     * upper, so H^-1 = V^-T V^-1 and U = V^-1 = J L^-1 J: U[i][j] = L^-1[n-1-i][n-1-j].
     * R's lower triangle is H's mirrored about the anti-diagonal; U packed by rows is L^-1
     * packed by rows read backwards. One factor and one triangular inverse (n^3 / 3
     * multiply-adds) where inverting H and factoring again took twice that. */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j <= i; j++) {
            const size_t p = LO(i) + (size_t)j, q = LO(n - 1 - j) + (size_t)(n - 1 - i);
            if (p < q) {
                const double t = H[p];
                H[p] = H[q];
                H[q] = t;
            }
        }
    const sk_f64_tile_fn tile = sk_f64_tile_get();
    const int64_t bad = chol_lower(H, n, tile);
    if (bad < 0)
        return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory for the factor of a %lld-column "
                        "input", what, (long long)n);
    if (bad)
        return sk_error(SHRINK_ERR_ARG, "%s: the Hessian of a %lld-column input is not "
                        "positive definite at column %lld even with damping %g (raise the "
                        "damping or give more calibration tokens)", what, (long long)n,
                        (long long)(n - bad), damp);
    inv_lower(H, U, n, tile);
    const size_t P = LO(n);
    for (size_t p = 0; p < P / 2; p++) {
        const double t = U[p];
        U[p] = U[P - 1 - p];
        U[P - 1 - p] = t;
    }
    return SHRINK_OK;
}

void sk_hessian_add_xtx(double *H, int64_t n, int packed, const float *X, int64_t T,
                        double *Xd) {
    if (T <= 0 || n <= 0) return;
    for (size_t i = 0; i < (size_t)T * (size_t)n; i++) Xd[i] = X[i];
    const sk_f64_tile_fn tile = sk_f64_tile_get();
    const int64_t ng = (n + 3) / 4;
    #pragma omp parallel if (n * n * T > 1000000)
    {
        const double **bp = sk_malloc((size_t)T * sizeof *bp);
        #pragma omp for schedule(dynamic, 1)
        for (int64_t g = 0; g < ng; g++) {
            const int64_t a0 = 4 * g, mi = n - a0 < 4 ? n - a0 : 4, c0 = a0 + mi - 1;
            const double *ar[4];
            double *cr[4];
            for (int64_t r = 0; r < mi; r++) {
                const int64_t a = a0 + r;
                double *ha = packed ? H + sk_hessian_up(a, n) - a : H + (size_t)a * (size_t)n;
                ar[r] = Xd + a;
                cr[r] = ha;
            }
            if (!bp) { /* out of memory for the pointers: the plain loop (the same sums) */
                for (int64_t r = 0; r < mi; r++)
                    for (int64_t b = a0 + r; b < n; b++) {
                        double acc = 0.0;
                        for (int64_t t = 0; t < T; t++)
                            acc += Xd[(size_t)t * (size_t)n + (size_t)(a0 + r)] *
                                   Xd[(size_t)t * (size_t)n + (size_t)b];
                        cr[r][b] += acc;
                    }
                continue;
            }
            /* columns c0 .. n - 1: every row of the group */
            double *cc[4];
            for (int64_t r = 0; r < mi; r++) cc[r] = cr[r] + c0;
            for (int64_t t = 0; t < T; t++) bp[t] = Xd + (size_t)t * (size_t)n + c0;
            tile(mi, n - c0, T, ar, n, bp, cc, 0, 1);
            /* columns a .. c0 - 1 of the group's first rows */
            for (int64_t r = 0; r + 1 < mi; r++) {
                const int64_t a = a0 + r;
                for (int64_t t = 0; t < T; t++) bp[t] = Xd + (size_t)t * (size_t)n + a;
                double *c1 = cr[r] + a;
                tile(1, c0 - a, T, &ar[r], n, bp, &c1, 0, 1);
            }
        }
        sk_free((void *)bp);
    }
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
