/*
 * q_imatrix.h - ggml's importance-weighted quantizers (q_imatrix.c): the bytes llama-quantize
 * --imatrix writes for q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K and q6_K, given the
 * importance of each column of the row (the imatrix entry of the tensor).
 */
#ifndef SK_Q_IMATRIX_H
#define SK_Q_IMATRIX_H

#include "kernels.h"

/* 1 if dtype t has an importance-weighted quantizer (q8_0 has none: ggml ignores the
 * importance there, so its from_f32 is what llama-quantize writes). */
SK_HIDDEN int sk_qim_has(shrink_dtype t);
/* Quantizes one row src[n] (n a multiple of t's block) into dst with the column importance
 * qw[n] (> 0), as ggml_quantize_chunk(t, ..., qw) does. t must satisfy sk_qim_has. */
SK_HIDDEN void sk_qim_quantize(shrink_dtype t, const float *src, void *dst, int64_t n,
                               const float *qw);

/* The K types' importance search (q2_K..q5_K): per super-block ggml's block, the same with the
 * plain importance as fit weights (a coarser grid: 13 steps of 0.15, not 37 of 0.05), and two
 * alternating refits (codes fixed, sub-block scales and mins by weighted least squares, stored
 * again) of the best so far; the block with the
 * smallest sum qw (x - x')^2 is written, so never one worse than ggml's. Other types (q6_K
 * too: the same search gained 0.1 % of weighted error and no KL on mix-llama-22m q4_K_M, at 2.3x
 * the time): sk_qim_quantize. */
SK_HIDDEN void sk_qim_search(shrink_dtype t, const float *src, void *dst, int64_t n,
                             const float *qw);

#endif /* SK_Q_IMATRIX_H */
