/*
 * lowrank.h - the linear algebra of shrink_lowrank (src/lowrank/svd.c), on plain arrays so the
 * tests can run it on small matrices against a float64 reference (tools/ref_check/
 * lowrank_ref.py): the symmetric eigensolver, Cholesky, and the truncation of one matrix.
 *
 * One matrix W (m x n, rows = outputs, cols = inputs) is approximated by the best rank-r
 * matrix in a metric given by an input transform T (n x n): A = W T, A_r its truncated SVD,
 * W' = A_r T^-1. T = I is plain SVD; T = diag(s) with s_j = mean|x_j|^alpha is ASVD (Yuan et
 * al. 2023); T = L with L L^T = X^T X (+ damping) is SVD-LLM's whitening (Wang et al. 2024),
 * which minimises ||X W^T - X W'^T||_F. Only C = T T^T matters, and the smaller Gram matrix
 * is decomposed:
 *   n <= m: eigen of A^T A = T^T W^T W T (n x n) -> V_r;  W' = (W T V_r)(V_r^T T^-1)
 *   m <  n: eigen of A A^T = W C W^T (m x m)     -> U_r;  W' = U_r (U_r^T W)
 * (the same W' in exact arithmetic: A_r = U_r U_r^T A = A V_r V_r^T). Everything in double.
 */
#ifndef SK_LOWRANK_H
#define SK_LOWRANK_H

#include "../core/core.h"

/* Eigen-decomposition of the symmetric n x n matrix A (row-major, overwritten): eigenvalues
 * descending in w[0..n), eigenvector i in row i of Z (n x n, row-major). Householder
 * tridiagonalisation and the implicit QL algorithm (EISPACK tred2/tql2). SHRINK_ERR_RANGE if
 * QL does not converge. */
SK_HIDDEN shrink_status sk_sym_eigen(double *A, int64_t n, double *w, double *Z);

/* Lower Cholesky factor of the symmetric positive definite n x n matrix A in place (the
 * upper triangle is zeroed). SHRINK_ERR_RANGE if A is not positive definite. */
SK_HIDDEN shrink_status sk_cholesky(double *A, int64_t n);

/* How the rank of a matrix is chosen: exactly one of rank > 0, energy in (0, 1], ratio in
 * (0, 1) is set. ratio: r = floor(ratio * m * n / (m + n)) (the factors hold that fraction of
 * the matrix's parameters), at least 1. energy: the smallest r keeping that fraction of the
 * sum of squared singular values of A. */
typedef struct sk_lr_rank {
    int64_t rank;
    double  energy;
    double  ratio;
} sk_lr_rank;

/* The transform of a matrix's inputs: T = I (both NULL), T = diag(scale) (scale: n positive
 * entries) or the whitening by C = X^T X (cov: n x n symmetric positive definite, with any
 * damping already added; lower triangle read). */
typedef struct sk_lr_metric {
    const double *scale;
    const double *cov;
} sk_lr_metric;

typedef struct sk_lr_out {
    int64_t rank;      /* the rank kept (min(m, n) when the factors would not be smaller:
                          then dense = 1 and W is returned unchanged) */
    int     dense;
    double  energy;    /* kept fraction of sum sigma^2 of A */
    double  rel_err;   /* ||W - W'||_F / ||W||_F */
} sk_lr_out;

/* W (m x n, f32, row-major) -> Wr (m x n, f32; may equal W) the truncated approximation.
 * sigma (may be NULL): the min(m, n) singular values of A = W T, descending. Y (m x r) and Z
 * (r x n) (may be NULL; else m * min(m, n) and min(m, n) * n doubles): the factors, Wr = Y Z.
 * Threads over rows for the products. SHRINK_ERR_ARG for a rank of 0 or above min(m, n) or an
 * energy outside (0, 1]. */
SK_HIDDEN shrink_status sk_lowrank_matrix(const float *W, int64_t m, int64_t n,
                                          const sk_lr_metric *metric, const sk_lr_rank *how,
                                          float *Wr, double *sigma, double *Y, double *Z,
                                          sk_lr_out *out);

#endif /* SK_LOWRANK_H */
