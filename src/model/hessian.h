/*
 * hessian.h - the second-order machinery shared by the calibrated methods that round or prune
 * a linear layer against the Hessian of its inputs, H = sum_t x_t x_t^T (SparseGPT in
 * src/prune, GPTQ in src/quant): the upper Cholesky factor of the damped inverse Hessian.
 */
#ifndef SK_MODEL_HESSIAN_H
#define SK_MODEL_HESSIAN_H

#include "../core/core.h"

/* From H (n x n, row-major, symmetric, overwritten): sets dead[c] = (H[c][c] == 0) and puts
 * H[c][c] = 1 there, adds damp * mean(diag H) to the diagonal, and returns in U (n x n) the
 * upper Cholesky factor of H^-1 (H^-1 = U^T U), computed in double. SHRINK_ERR_ARG (message
 * starting with `what`) if H + damping is not positive definite. */
SK_HIDDEN shrink_status sk_hessian_factor(double *H, int64_t n, double damp, double *U,
                                          uint8_t *dead, const char *what);

/* Packed triangles (n (n + 1) / 2 doubles, half the memory: a 7B model's ffn_down input has
 * n = 11008): a lower triangle by rows (row i at i (i + 1) / 2, elements 0..i), an upper one
 * by rows (row i at sk_hessian_up(i, n), elements i..n-1; element j at + j - i). */
static inline size_t sk_hessian_up(int64_t i, int64_t n) {
    return (size_t)i * (size_t)n - (size_t)i * (size_t)(i - 1) / 2;
}
static inline size_t sk_hessian_packed(int64_t n) { return (size_t)n * (size_t)(n + 1) / 2; }

/* The same with H the lower triangle, packed (overwritten), and U (packed doubles, work space
 * too) the upper factor, packed: the same numbers as sk_hessian_factor, in 2 n (n + 1) / 2
 * doubles instead of 2 n^2. */
SK_HIDDEN shrink_status sk_hessian_factor_packed(double *H, int64_t n, double damp, double *U,
                                                 uint8_t *dead, const char *what);

/* H += X^T X for the T x n floats X (T tokens): H packed (its upper triangle by rows) or full
 * (row-major, upper triangle only), each element's sum over the T tokens taken from zero in
 * token order, then added (products of floats are exact in double, so the bits do not depend
 * on the kernel level). Xd: T x n doubles of scratch. Threads over rows. */
SK_HIDDEN void sk_hessian_add_xtx(double *H, int64_t n, int packed, const float *X, int64_t T,
                                  double *Xd);

#endif /* SK_MODEL_HESSIAN_H */
