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

#endif /* SK_MODEL_HESSIAN_H */
