/*
 * kernels.h - the dtype table and the compute kernels the decoder calls.
 *
 * Shapes: a weight matrix W is (rows = out features, cols = in features), row-major, each row
 * `cols` contiguous elements of W->dtype. Activations are f32, row-major, one row per token.
 *
 * Every kernel has a scalar reference (`*_ref`, in f32.c / f16.c ...) that is its
 * specification; SIMD versions live in x86/<family>_<isa>.c and are chosen once at init by
 * dispatch.c (SHRINK_KERNELS=ref forces the references).
 */
#ifndef SK_KERNELS_H
#define SK_KERNELS_H

#include "../core/core.h"

/* ---- the dtype table ------------------------------------------------------------------- */

typedef struct sk_dtype_traits {
    const char *name;       /* "f32" */
    const char *st_name;    /* safetensors spelling: "F32" */
    size_t      block;      /* elements per block */
    size_t      bytes;      /* bytes per block */
    /* dst[0..n) = src widened to f32 (n a multiple of block) */
    void (*to_f32)(const void *src, float *dst, int64_t n);
    /* dst = src narrowed (round to nearest even); n a multiple of block */
    void (*from_f32)(const float *src, void *dst, int64_t n);
    double tol_rel;         /* tests: relative error of a round trip */
} sk_dtype_traits;

SK_HIDDEN const sk_dtype_traits *sk_dtype(shrink_dtype t);
/* Bytes of n elements of dtype t (n a multiple of the block). */
SK_HIDDEN uint64_t sk_dtype_row_bytes(shrink_dtype t, int64_t n);

/* Scalar conversions (IEEE half, bfloat16); round to nearest even, NaN/Inf preserved. */
SK_HIDDEN float    sk_f16_to_f32(uint16_t h);
SK_HIDDEN uint16_t sk_f32_to_f16(float f);
SK_HIDDEN float    sk_bf16_to_f32(uint16_t h);
SK_HIDDEN uint16_t sk_f32_to_bf16(float f);

/* ---- matrices -------------------------------------------------------------------------- */

typedef struct sk_mat {
    shrink_dtype dtype;
    int64_t      rows;  /* out features */
    int64_t      cols;  /* in features */
    const void  *data;  /* rows * cols elements, row-major */
} sk_mat;

/* Y[t*ldy + r] = sum_k W[r, k] * X[t*cols + k]   for t < T, r < W->rows.
 * (Y = X W^T, as torch.nn.functional.linear without bias.) Accumulates in f32.
 * Uses the library's threads (OpenMP); call from outside a parallel region.
 * T == 1 is the decode (matrix-vector) case; T > 1 prompt processing (matrix-matrix). */
SK_HIDDEN void sk_matmul(const sk_mat *W, const float *X, int64_t T, float *Y, int64_t ldy);

/* The scalar reference of sk_matmul (single-threaded): the specification, used by tests. */
SK_HIDDEN void sk_matmul_ref(const sk_mat *W, const float *X, int64_t T, float *Y, int64_t ldy);

/* Row r of W as f32 (dst has W->cols floats). Used for embedding lookups. */
SK_HIDDEN void sk_mat_row_f32(const sk_mat *W, int64_t r, float *dst);

/* ---- dispatch -------------------------------------------------------------------------- */

/* Fills the dispatch table once (thread-safe, idempotent). Called by sk_matmul itself. */
SK_HIDDEN void sk_kernels_init(void);
/* "avx512", "avx2" or "ref". */
SK_HIDDEN const char *sk_kernels_isa(void);

#endif /* SK_KERNELS_H */
