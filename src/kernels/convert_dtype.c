/*
 * convert_dtype.c - element and row conversion between dtypes through the dtype table
 * (writers, training, the tensor sources): equal dtypes copy, F32 on one side calls the
 * table's converter, anything else goes through f32.
 */
#include "kernels.h"

void sk_convert(const void *src, shrink_dtype sdt, void *dst, shrink_dtype ddt, int64_t n) {
    if (n <= 0) return;
    if (sdt == ddt) {
        memcpy(dst, src, (size_t)sk_dtype_row_bytes(sdt, n));
        return;
    }
    if (sdt == SHRINK_DTYPE_F32) {
        sk_dtype(ddt)->from_f32(src, dst, n);
        return;
    }
    if (ddt == SHRINK_DTYPE_F32) {
        sk_dtype(sdt)->to_f32(src, dst, n);
        return;
    }
    /* f16 <-> bf16 (or a block type, n a multiple of its block) through f32, a chunk at a
     * time (1024: a multiple of every block) */
    float tmp[1024];
    const uint8_t *s = src;
    uint8_t *d = dst;
    for (int64_t i = 0; i < n; i += 1024) {
        int64_t k = n - i < 1024 ? n - i : 1024;
        sk_dtype(sdt)->to_f32(s + sk_dtype_row_bytes(sdt, i), tmp, k);
        sk_dtype(ddt)->from_f32(tmp, d + sk_dtype_row_bytes(ddt, i), k);
    }
}

shrink_status sk_convert_rows(const void *src, shrink_dtype sdt, void *dst, shrink_dtype ddt,
                              int64_t rows, int64_t cols) {
    const sk_dtype_traits *s = sk_dtype(sdt), *d = sk_dtype(ddt);
    if (rows <= 0) return SHRINK_OK;
    if (sdt == ddt) {
        memcpy(dst, src, (size_t)sk_dtype_tensor_bytes(sdt, rows, cols));
        return SHRINK_OK;
    }
    if (!s->row_head && !d->row_head) {
        sk_convert(src, sdt, dst, ddt, rows * cols);
        return SHRINK_OK;
    }
    /* a row-head type on either side: row by row (its scales are per row), through f32 */
    uint64_t sb = sk_dtype_row_bytes(sdt, cols), db = sk_dtype_row_bytes(ddt, cols);
    float *tmp = sdt == SHRINK_DTYPE_F32 || ddt == SHRINK_DTYPE_F32
                     ? NULL : sk_malloc((size_t)cols * sizeof(float));
    if (sdt != SHRINK_DTYPE_F32 && ddt != SHRINK_DTYPE_F32 && !tmp)
        return sk_error(SHRINK_ERR_NOMEM, "out of memory for a row of %" PRId64 " floats", cols);
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *sr = (const uint8_t *)src + (size_t)r * sb;
        uint8_t *dr = (uint8_t *)dst + (size_t)r * db;
        if (sdt == SHRINK_DTYPE_F32) {
            d->from_f32((const float *)sr, dr, cols);
        } else if (ddt == SHRINK_DTYPE_F32) {
            s->to_f32(sr, (float *)dr, cols);
        } else {
            s->to_f32(sr, tmp, cols);
            d->from_f32(tmp, dr, cols);
        }
    }
    sk_free(tmp);
    return SHRINK_OK;
}
