/*
 * q_search.h - searched quantizers (q_search.c): the same storage layouts and dequantization
 * formulas as the round-to-nearest references (ggml_quants.h, shrink_quants.h), with the
 * scale (and min) of every block chosen by a search that minimises the block's squared
 * reconstruction error. The reference's own block is always a candidate, so no block's error
 * is larger than the reference's (tests/test_quantize.c checks it).
 *
 * These are the dtype rows' `quantize` hooks of q4_0, q4_1, q5_0, q5_1, int4_g*, int4_g*_asym,
 * nf4 and nf4_dq (used by `shrink quantize`); `from_f32` stays the reference (convert, the
 * byte-exact tests, `shrink quantize --ggml-exact`).
 *
 * Error weights (SHRINK_QSEARCH, read on every row; docs/quantization.md):
 *   0  off: the reference's bytes
 *   1  uniform: sum (x - x')^2
 *   2  sum w (x - x')^2 with w = sqrt(sigma2 + x^2), sigma2 = mean x^2 of the row (llama.cpp's
 *      weights without an importance matrix); times imatrix[j] when sk_qparams has one
 */
#ifndef SK_Q_SEARCH_H
#define SK_Q_SEARCH_H

#include "kernels.h"

SK_HIDDEN void sk_q4_0_search(const float *src, void *dst, int64_t n, const sk_qparams *p);
SK_HIDDEN void sk_q4_1_search(const float *src, void *dst, int64_t n, const sk_qparams *p);
SK_HIDDEN void sk_q5_0_search(const float *src, void *dst, int64_t n, const sk_qparams *p);
SK_HIDDEN void sk_q5_1_search(const float *src, void *dst, int64_t n, const sk_qparams *p);
SK_HIDDEN void sk_int4_g32_search(const float *src, void *dst, int64_t n, const sk_qparams *p);
SK_HIDDEN void sk_int4_g64_search(const float *src, void *dst, int64_t n, const sk_qparams *p);
SK_HIDDEN void sk_int4_g128_search(const float *src, void *dst, int64_t n, const sk_qparams *p);
SK_HIDDEN void sk_int4_g32_asym_search(const float *src, void *dst, int64_t n,
                                       const sk_qparams *p);
SK_HIDDEN void sk_int4_g64_asym_search(const float *src, void *dst, int64_t n,
                                       const sk_qparams *p);
SK_HIDDEN void sk_int4_g128_asym_search(const float *src, void *dst, int64_t n,
                                        const sk_qparams *p);
SK_HIDDEN void sk_nf4_search(const float *src, void *dst, int64_t n, const sk_qparams *p);
SK_HIDDEN void sk_nf4_dq_search(const float *src, void *dst, int64_t n, const sk_qparams *p);

/* 1 if dtype t's `quantize` hook is one of the searches above (its reference is from_f32). */
SK_HIDDEN int sk_quantize_searches(shrink_dtype t);
/* The error weighting in force (SHRINK_QSEARCH: 0 off, 1 uniform, 2 sqrt(sigma2 + x^2)). */
SK_HIDDEN int sk_qsearch_mode(void);

#endif /* SK_Q_SEARCH_H */
