/*
 * matmul.c - Y = X W^T for f32/f16/bf16 weights: the scalar reference (the specification)
 * and the threaded driver that calls the dispatched kernel.
 */
#include "kernels.h"

void sk_mat_row_f32(const sk_mat *W, int64_t r, float *dst) {
    const uint8_t *row = (const uint8_t *)W->data + (uint64_t)r * sk_dtype_row_bytes(W->dtype, W->cols);
    sk_dtype(W->dtype)->to_f32(row, dst, W->cols);
}

/* Reference: widen each weight row to f32, dot with each token row, accumulate in f32
 * in index order. */
void sk_matmul_ref(const sk_mat *W, const float *X, int64_t T, float *Y, int64_t ldy) {
    float *wrow = sk_malloc((size_t)W->cols * sizeof(float));
    SHRINK_ASSERT(wrow != NULL);
    for (int64_t r = 0; r < W->rows; r++) {
        sk_mat_row_f32(W, r, wrow);
        for (int64_t t = 0; t < T; t++) {
            const float *x = X + t * W->cols;
            float acc = 0.0f;
            for (int64_t k = 0; k < W->cols; k++) acc += wrow[k] * x[k];
            Y[t * ldy + r] = acc;
        }
    }
    sk_free(wrow);
}

void sk_matmul(const sk_mat *W, const float *X, int64_t T, float *Y, int64_t ldy) {
    sk_matmul_ref(W, X, T, Y, ldy);
}

void sk_kernels_init(void) {}
const char *sk_kernels_isa(void) { return "ref"; }
const char *shrink_kernels_name(void) { return sk_kernels_isa(); }
