/*
 * q_palette.c - the palette types pal4, pal16, pal256 (palette.h): layout, the scalar
 * references (row writer, dequantizer, dot) and the check of a tensor's row heads.
 * The palettes themselves come from the k-means of src/quant/palette.c.
 */
#include "palette.h"

#include <math.h>

int sk_pal_k(shrink_dtype t) {
    return t == SHRINK_DTYPE_PAL4 ? 4 : t == SHRINK_DTYPE_PAL16 ? 16
                                      : t == SHRINK_DTYPE_PAL256 ? 256 : 0;
}

static int pal_bits(shrink_dtype t) {
    return t == SHRINK_DTYPE_PAL4 ? 2 : t == SHRINK_DTYPE_PAL16 ? 4 : 8;
}

static uint64_t pal_row_bytes(shrink_dtype t, int64_t n) {
    return SK_HEAD_PAL + (uint64_t)n / SK_QK_PAL * (uint64_t)(SK_QK_PAL * pal_bits(t) / 8);
}

static int64_t pal_nblk(const uint8_t *head) {
    uint16_t nb;
    memcpy(&nb, head + 4, 2);
    return nb;
}

void sk_pal_table(shrink_dtype t, const void *row, float *lut) {
    const int k = sk_pal_k(t);
    const uint8_t *r = row;
    const int j = r[2], g = r[3] + 1;
    const uint64_t rb = pal_row_bytes(t, pal_nblk(r) * SK_QK_PAL);
    const uint8_t *base = r - (uint64_t)j * rb;
    for (int e = 0; e < k; e++) {
        uint16_t h = 0;
        if (e < g) memcpy(&h, base + (uint64_t)e * rb, 2);
        lut[e] = e < g ? sk_f16_to_f32(h) : 0.0f;
    }
}

/* the code of element i of block b (b: the block's first code byte) */
static inline int pal_code(shrink_dtype t, const uint8_t *b, int i) {
    if (t == SHRINK_DTYPE_PAL16) return i < 16 ? b[i] & 15 : b[i - 16] >> 4;
    if (t == SHRINK_DTYPE_PAL4) return (b[i & 7] >> (2 * (i >> 3))) & 3;
    return b[i];
}

void sk_pal_codes(shrink_dtype t, const void *row, int64_t n, uint8_t *codes) {
    const uint8_t *b = (const uint8_t *)row + SK_HEAD_PAL;
    const int bb = SK_QK_PAL * pal_bits(t) / 8;
    for (int64_t i = 0; i < n; i += SK_QK_PAL, b += bb)
        for (int e = 0; e < SK_QK_PAL; e++) codes[i + e] = (uint8_t)pal_code(t, b, e);
}

int64_t sk_pal_check(shrink_dtype t, const void *data, int64_t rows, int64_t cols) {
    const int k = sk_pal_k(t);
    const uint64_t rb = pal_row_bytes(t, cols);
    const uint8_t *p = data;
    for (int64_t r = 0; r < rows; r++, p += rb) {
        int j = p[2], g = p[3] + 1;
        if (!(j < g && g <= k && r - j >= 0 && r - j + g <= rows &&
              pal_nblk(p) == cols / SK_QK_PAL && cols % SK_QK_PAL == 0))
            return r;
    }
    return -1;
}

void sk_pal_write_row(shrink_dtype t, const float *src, void *dst, int64_t n, const float *pal,
                      int j, int g) {
    const int bb = SK_QK_PAL * pal_bits(t) / 8;
    uint8_t *r = dst;
    float stored[256];
    for (int e = 0; e < g; e++) stored[e] = sk_f16_to_f32(sk_f32_to_f16(pal[e]));
    uint16_t h = sk_f32_to_f16(pal[j]);
    memcpy(r, &h, 2);
    r[2] = (uint8_t)j;
    r[3] = (uint8_t)(g - 1);
    uint16_t nb = (uint16_t)(n / SK_QK_PAL);
    memcpy(r + 4, &nb, 2);
    uint8_t *b = r + SK_HEAD_PAL;
    memset(b, 0, (size_t)(n / SK_QK_PAL * bb));
    for (int64_t i0 = 0; i0 < n; i0 += SK_QK_PAL, b += bb)
        for (int i = 0; i < SK_QK_PAL; i++) {
            const float v = src[i0 + i];
            int best = 0;
            float bd = fabsf(v - stored[0]);
            for (int e = 1; e < g; e++) {
                float d = fabsf(v - stored[e]);
                if (d < bd) {
                    bd = d;
                    best = e;
                }
            }
            if (t == SHRINK_DTYPE_PAL16) b[i & 15] |= (uint8_t)(best << (i < 16 ? 0 : 4));
            else if (t == SHRINK_DTYPE_PAL4) b[i & 7] |= (uint8_t)(best << (2 * (i >> 3)));
            else b[i] = (uint8_t)best;
        }
}

static void pal_from_f32(shrink_dtype t, const float *src, void *dst, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += isfinite(src[i]) ? (double)src[i] : 0.0;
    float mean = n > 0 ? (float)(s / (double)n) : 0.0f;
    sk_pal_write_row(t, src, dst, n, &mean, 0, 1);
}

static void pal_quantize(shrink_dtype t, const float *src, void *dst, int64_t n,
                         const sk_qparams *p) {
    if (p && p->palette && p->pal_g >= 1 && p->pal_g <= sk_pal_k(t) && p->pal_j >= 0 &&
        p->pal_j < p->pal_g)
        sk_pal_write_row(t, src, dst, n, p->palette, p->pal_j, p->pal_g);
    else pal_from_f32(t, src, dst, n);
}

static void pal_to_f32_range(shrink_dtype t, const void *row, int64_t k0, int64_t n,
                             float *dst) {
    float lut[256];
    sk_pal_table(t, row, lut);
    sk_pal_decode(t, row, k0, n, lut, dst);
}

void sk_pal_decode(shrink_dtype t, const void *row, int64_t k0, int64_t n, const float *lut,
                   float *dst) {
    const int bb = SK_QK_PAL * pal_bits(t) / 8;
    const uint8_t *b = (const uint8_t *)row + SK_HEAD_PAL + k0 / SK_QK_PAL * bb;
    for (int64_t i0 = 0; i0 < n; i0 += SK_QK_PAL, b += bb)
        for (int i = 0; i < SK_QK_PAL; i++) dst[i0 + i] = lut[pal_code(t, b, i)];
}

static float pal_dot(shrink_dtype t, int64_t n, const void *w, const void *xa) {
    float lut[256];
    sk_pal_table(t, w, lut);
    const float *x = xa;
    const uint8_t *b = (const uint8_t *)w + SK_HEAD_PAL;
    const int bb = SK_QK_PAL * pal_bits(t) / 8;
    float s = 0.0f;
    for (int64_t i0 = 0; i0 < n; i0 += SK_QK_PAL, b += bb)
        for (int i = 0; i < SK_QK_PAL; i++) s += lut[pal_code(t, b, i)] * x[i0 + i];
    return s;
}

#define PAL_FUNCS(name, T)                                                                    \
    void sk_##name##_from_f32(const float *src, void *dst, int64_t n) {                        \
        pal_from_f32(T, src, dst, n);                                                          \
    }                                                                                          \
    void sk_##name##_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p) {   \
        pal_quantize(T, src, dst, n, p);                                                       \
    }                                                                                          \
    float sk_##name##_dot_ref(int64_t n, const void *w, const void *xa) {                      \
        return pal_dot(T, n, w, xa);                                                           \
    }                                                                                          \
    void sk_##name##_to_f32_range(const void *row, int64_t k0, int64_t n, float *dst) {        \
        pal_to_f32_range(T, row, k0, n, dst);                                                  \
    }                                                                                          \
    void sk_##name##_to_f32(const void *src, float *dst, int64_t n) {                          \
        pal_to_f32_range(T, src, 0, n, dst);                                                   \
    }
PAL_FUNCS(pal4, SHRINK_DTYPE_PAL4)
PAL_FUNCS(pal16, SHRINK_DTYPE_PAL16)
PAL_FUNCS(pal256, SHRINK_DTYPE_PAL256)
#undef PAL_FUNCS
