/*
 * zeros.c - exact zeros of a model's tensors (docs/pruning.md): `shrink info` shows each
 * tensor's sparsity, and `shrink train` takes a pruned model's mask from them. Counted on the
 * rows dequantized through the dtype table's to_f32, so the positions a 2:4 sparse type does
 * not store count as zeros, and so do stored zeros of any type (-0.0 included).
 */
#include "model.h"

#include <omp.h>

int64_t sk_tensor_zeros(const sk_tensor *t) {
    const sk_dtype_traits *d = sk_dtype(t->dtype);
    if (!t->data || !d || !d->to_f32 || t->n_dims < 1) return 0;
    const int64_t cols = t->shape[t->n_dims - 1];
    const uint64_t rb = cols > 0 ? sk_dtype_row_bytes(t->dtype, cols) : 0;
    if (rb == 0 || cols % (int64_t)d->block != 0) return 0; /* the readers refuse such shapes */
    const int64_t rows = (int64_t)(t->bytes / rb);
    const uint8_t *p = t->data;
    int64_t n = 0;
    int nomem = 0;
    #pragma omp parallel reduction(+ : n) if (rows * cols > (1 << 18))
    {
        float *x = sk_malloc((size_t)cols * sizeof *x);
        if (!x) {
            #pragma omp atomic write
            nomem = 1;
        }
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!x) continue;
            d->to_f32(p + (size_t)r * rb, x, cols);
            for (int64_t c = 0; c < cols; c++) n += x[c] == 0.0f;
        }
        sk_free(x);
    }
    return nomem ? -1 : n;
}

int64_t shrink_model_zeros(const shrink_model *m, int64_t i) {
    if (!m || i < 0 || i >= m->n_tensors) return 0;
    return sk_tensor_zeros(&m->tensors[i]);
}
