/*
 * finite.c - NaN and infinities in a model's weights (docs/reliability.md): counted per tensor
 * from the bits of f32, f16 and bf16 tensors, and for quantized tensors (q8_0, q4_K, shrink's
 * own types, ...) from their rows dequantized through the dtype table's to_f32 (a NaN or
 * infinite block scale makes its elements non-finite); refused at load unless
 * shrink_load_params.allow_nonfinite, and before `convert`, `quantize` and `prune` read a
 * weight (sk_model_check_finite, called by shrink_convert and sk_xf_open).
 */
#include "model.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* Bits of element i of p (tensor data may be unaligned: a view into the file). */
static inline uint32_t bits32(const uint8_t *p, int64_t i) {
    uint32_t v;
    memcpy(&v, p + 4 * i, 4);
    return v;
}
static inline uint16_t bits16(const uint8_t *p, int64_t i) {
    uint16_t v;
    memcpy(&v, p + 2 * i, 2);
    return v;
}

/* Non-finite elements of quantized tensor t, from its rows dequantized by the dtype table's
 * to_f32; the first one's index in *first. -1 if a row buffer cannot be had. */
static int64_t count_quantized(const sk_tensor *t, int64_t *first) {
    const sk_dtype_traits *d = sk_dtype(t->dtype);
    if (!d || !d->to_f32 || t->n_dims < 1) return 0;
    const int64_t cols = t->shape[t->n_dims - 1];
    const uint64_t rb = cols > 0 ? sk_dtype_row_bytes(t->dtype, cols) : 0;
    if (rb == 0 || cols % (int64_t)d->block != 0) return 0; /* the readers refuse such shapes */
    const int64_t rows = (int64_t)(t->bytes / rb);
    const uint8_t *p = t->data;
    int64_t n = 0, at = -1;
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
            for (int64_t c = 0; c < cols; c++) n += !isfinite(x[c]);
        }
        sk_free(x);
    }
    if (nomem) return -1;
    if (n && first) { /* the first one, by a serial pass up to it */
        float *x = sk_malloc((size_t)cols * sizeof *x);
        if (!x) return -1;
        for (int64_t r = 0; r < rows && at < 0; r++) {
            d->to_f32(p + (size_t)r * rb, x, cols);
            for (int64_t c = 0; c < cols && at < 0; c++)
                if (!isfinite(x[c])) at = r * cols + c;
        }
        sk_free(x);
    }
    if (first) *first = at;
    return n;
}

/* Non-finite elements of tensor t: all exponent bits set (NaN or +-Inf) for f32/f16/bf16,
 * dequantized rows for the rest. -1 if memory for a row cannot be had. */
static int64_t count_nonfinite(const sk_tensor *t, int64_t *first) {
    int64_t n = 0, at = -1;
    if (first) *first = -1;
    if (!t->data) return 0;
    const uint8_t *p = t->data;
    if (t->dtype == SHRINK_DTYPE_F32) {
        int64_t k = (int64_t)(t->bytes / 4);
        #pragma omp parallel for reduction(+ : n) schedule(static) if (k > (1 << 20))
        for (int64_t i = 0; i < k; i++) n += (bits32(p, i) & 0x7f800000u) == 0x7f800000u;
        for (int64_t i = 0; n && i < k && at < 0; i++)
            if ((bits32(p, i) & 0x7f800000u) == 0x7f800000u) at = i;
    } else if (t->dtype == SHRINK_DTYPE_F16 || t->dtype == SHRINK_DTYPE_BF16) {
        uint16_t mask = t->dtype == SHRINK_DTYPE_F16 ? 0x7c00u : 0x7f80u;
        int64_t k = (int64_t)(t->bytes / 2);
        #pragma omp parallel for reduction(+ : n) schedule(static) if (k > (1 << 20))
        for (int64_t i = 0; i < k; i++) n += (bits16(p, i) & mask) == mask;
        for (int64_t i = 0; n && i < k && at < 0; i++)
            if ((bits16(p, i) & mask) == mask) at = i;
    } else if (t->dtype >= 0 && t->dtype < SHRINK_DTYPE_COUNT && sk_dtype_quantized(t->dtype)) {
        return count_quantized(t, first);
    }
    if (first) *first = at;
    return n;
}

/* Counts tensor i, then lets its pages go if they are a mapped file's: a check of a 13 GB
 * model must not leave 13 GB resident (streaming commands hold one tensor at a time; the
 * pages come back from the page cache when read again). */
static int64_t count_and_release(const shrink_model *m, int64_t i, int64_t *first) {
    const sk_tensor *t = &m->tensors[i];
    int64_t n = count_nonfinite(t, first);
    if (t->data && t->bytes && sk_model_in_mapping(m, t->data)) sk_map_release(t->data, t->bytes);
    return n;
}

int64_t shrink_model_nonfinite(const shrink_model *m, int64_t i) {
    if (!m || i < 0 || i >= m->n_tensors) return 0;
    return count_and_release(m, i, NULL);
}

shrink_status sk_model_check_finite(const struct shrink_model *m, const char *allow) {
    int64_t bad_tensors = 0, first_tensor = -1, first_at = -1, first_n = 0;
    const char *path = m->path ? m->path : "model";
    for (int64_t i = 0; i < m->n_tensors; i++) {
        int64_t at;
        int64_t n = count_and_release(m, i, &at);
        if (n < 0)
            return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory checking tensor '%s' for NaN",
                            path, m->tensors[i].name);
        if (n && !bad_tensors++) {
            first_tensor = i;
            first_at = at;
            first_n = n;
        }
    }
    if (!bad_tensors) return SHRINK_OK;
    const sk_tensor *t = &m->tensors[first_tensor];
    return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s' (%s) holds %" PRId64 " NaN or infinite "
                    "value(s) (the first at element %" PRId64 ")%s%" PRId64 " tensor(s) in all; "
                    "the weights are broken (`shrink info` counts them%s%s)", path, t->name,
                    sk_dtype(t->dtype) ? sk_dtype(t->dtype)->name : "?", first_n, first_at,
                    bad_tensors > 1 ? ", " : "; ", bad_tensors, allow ? "; " : "",
                    allow ? allow : "");
}
