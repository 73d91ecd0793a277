/*
 * prune.h - the pruning algorithms of shrink_prune (src/prune/algo.c), on plain arrays so
 * that the tests can run them on small matrices: selection of the smallest scores, magnitude
 * and Wanda per row or per matrix, N:M groups, and SparseGPT's second-order pruning with
 * error compensation. Every pruned weight becomes an exact 0.0f.
 *
 * Ties: scores are ranked by (score, index) so the result is deterministic; the index is the
 * element's position in the row (per row), in the matrix (per matrix, row-major) or in the
 * block (SparseGPT: row-major within the rows x block columns).
 */
#ifndef SK_PRUNE_H
#define SK_PRUNE_H

#include "../core/core.h"

/* Ranks r's entries by KL (0 = least sensitive; ties in model order). */
SK_HIDDEN shrink_status sk_sensitivity_rank(shrink_sensitivity_result *r);

/* The k smallest of score[0..n) by (score, index): mask[i] = 1 for them, 0 for the others.
 * SHRINK_ERR_NOMEM if no room to sort. */
SK_HIDDEN shrink_status sk_prune_select(const double *score, int64_t n, int64_t k,
                                        uint8_t *mask);

/* Zeroes, in each row of W (rows x cols), the weights with the smallest |w| * scale[c]
 * (scale NULL: 1, i.e. magnitude; Wanda: the input's L2 norm per column): unstructured
 * (n == 0) floor(cols * sparsity) of them per row, or in every group of m consecutive columns
 * the m - n smallest (cols % m == 0). Threads over rows. */
SK_HIDDEN shrink_status sk_prune_rows(float *W, int64_t rows, int64_t cols, const double *scale,
                                      double sparsity, int n, int m);

/* Zeroes the floor(rows * cols * sparsity) weights of smallest |w| in the whole matrix (ties
 * by index, as sk_prune_select); *e2 (if e2) = the sum of the squares of the zeroed weights in
 * index order. Scratch: rows * cols floats. */
SK_HIDDEN shrink_status sk_prune_matrix(float *W, int64_t rows, int64_t cols, double sparsity,
                                      double *e2);

/* Zeroes |w| < thr. */
SK_HIDDEN void sk_prune_threshold(float *W, int64_t n, double thr);

/* SparseGPT's inverse-Hessian factor: from H = sum_t x_t x_t^T (cols x cols, row-major,
 * overwritten), sets dead[c] = (H[c][c] == 0) and puts H[c][c] = 1 there, adds
 * damp * mean(diag H) to the diagonal, and returns in U (cols x cols) the upper Cholesky
 * factor of H^-1 (H^-1 = U^T U). SHRINK_ERR_ARG if H + damping is not positive definite. */
SK_HIDDEN shrink_status sk_sparsegpt_factor(double *H, int64_t cols, double damp, double *U,
                                            uint8_t *dead);

/* SparseGPT (Frantar & Alistarh 2023, Algorithm 1 as in the authors' sparsegpt.py) on W (rows
 * x cols, double, in place) with U from sk_sparsegpt_factor: dead columns zeroed; columns in
 * blocks of bs; unstructured (n == 0): at the start of each block the floor(rows * cnt *
 * sparsity) smallest w^2 / U[c][c]^2 of the block are masked (adaptive mask selection); N:M:
 * at every m-th column of a block the m - n smallest of the next m in each row; then column by
 * column the masked weights are zeroed and the error (w - q) / U[c][c] is spread over the
 * remaining columns of the block (and, after the block, over the later columns) by U's rows.
 * Threads over rows. bs % m == 0 for N:M. */
SK_HIDDEN shrink_status sk_sparsegpt(double *W, int64_t rows, int64_t cols, const double *U,
                                     const uint8_t *dead, double sparsity, int n, int m,
                                     int64_t bs);

/* The first `want` tokens of the calibration text at `path`, encoded with m's tokenizer
 * (*ids_out: shrink_free). A text giving fewer tokens, not UTF-8, or ids outside m's
 * vocabulary is an error naming `path`. */
SK_HIDDEN shrink_status sk_prune_calib_tokens(const shrink_model *m, const char *path,
                                              int64_t want, int32_t **ids_out, int64_t *n_out);

#endif /* SK_PRUNE_H */
