/*
 * finite.c - NaN and infinities in a model's weights (docs/reliability.md): counted per tensor
 * from the bits of f32, f16 and bf16 tensors (quantized tensors are not scanned: their scales
 * are checked by the format readers' ranges only), and refused at load unless
 * shrink_load_params.allow_nonfinite.
 */
#include "model.h"

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

/* Non-finite elements of tensor t: all exponent bits set (NaN or +-Inf). */
static int64_t count_nonfinite(const sk_tensor *t, int64_t *first) {
    int64_t n = 0, at = -1;
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
    }
    if (first) *first = at;
    return n;
}

int64_t shrink_model_nonfinite(const shrink_model *m, int64_t i) {
    if (!m || i < 0 || i >= m->n_tensors) return 0;
    return count_nonfinite(&m->tensors[i], NULL);
}

shrink_status sk_model_check_finite(const struct shrink_model *m) {
    int64_t bad_tensors = 0, first_tensor = -1, first_at = -1, first_n = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        int64_t at;
        int64_t n = count_nonfinite(&m->tensors[i], &at);
        if (n && !bad_tensors++) {
            first_tensor = i;
            first_at = at;
            first_n = n;
        }
    }
    if (!bad_tensors) return SHRINK_OK;
    const sk_tensor *t = &m->tensors[first_tensor];
    return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s' holds %" PRId64 " NaN or infinite "
                    "value(s) (the first at element %" PRId64 ")%s%" PRId64 " tensor(s) in all; "
                    "the weights are broken (`shrink info` counts them; --allow-nonfinite "
                    "loads the model anyway)", m->path ? m->path : "model", t->name, first_n,
                    first_at, bad_tensors > 1 ? ", " : "; ", bad_tensors);
}
