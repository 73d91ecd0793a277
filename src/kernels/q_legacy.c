/*
 * q_legacy.c - llama.cpp's 32-element block types Q8_0, Q4_0, Q4_1, Q5_0, Q5_1: scalar
 * dequantizers (equal bit for bit to ggml's for the same bytes) and round-to-nearest
 * quantizers (the same bytes as ggml's quantize_row_<type>_ref). Layouts: ggml_quants.h.
 *
 * Built with -ffp-contract=off (Makefile): a fused multiply-add would change rounding.
 */
#include "kernels.h"
#include "ggml_quants.h"

#include <float.h>
#include <math.h>

/* Largest |x| of a block, returned with its sign (the first one wins ties). */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

static void min_max(const float *x, int n, float *mn, float *mx) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

/* ---- Q8_0: x = d * q, q in [-127, 127], d = absmax / 127 ---- */

void sk_q8_0_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q8_0 *b = src;
    for (int64_t i = 0; i < n / SK_QK8_0; i++) {
        float d = sk_f16_to_f32(b[i].d);
        for (int j = 0; j < SK_QK8_0; j++) dst[i * SK_QK8_0 + j] = (float)b[i].qs[j] * d;
    }
}

/* (int8_t)v and (uint8_t)v, truncating toward zero as the casts do for the values a block
 * can produce, but NaN gives 0 and values out of range saturate: NaN or Inf weights are
 * never undefined behaviour (they are refused earlier with the tensor's name anyway). */
static inline int q_trunc_i8(float v) {
    return v == v ? (v >= 127.0f ? 127 : v <= -128.0f ? -128 : (int)v) : 0;
}
static inline unsigned q_trunc_u8(float v) {
    return v == v ? (v >= 255.0f ? 255u : v <= 0.0f ? 0u : (unsigned)v) : 0u;
}

void sk_q8_0_quant_ref(const float *src, void *dst, int64_t n) {
    block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / SK_QK8_0; i++) {
        const float *x = src + i * SK_QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < SK_QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = sk_f32_to_f16(d);
        for (int j = 0; j < SK_QK8_0; j++) b[i].qs[j] = (int8_t)q_trunc_i8(roundf(x[j] * id));
    }
}

/* ---- Q4_0: x = d * (q - 8), q in [0, 15], d = signed absmax / -8 ---- */

void sk_q4_0_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q4_0 *b = src;
    for (int64_t i = 0; i < n / SK_QK4_0; i++) {
        float d = sk_f16_to_f32(b[i].d);
        float *y = dst + i * SK_QK4_0;
        for (int j = 0; j < SK_QK4_0 / 2; j++) {
            y[j] = (float)((b[i].qs[j] & 0x0F) - 8) * d;
            y[j + SK_QK4_0 / 2] = (float)((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void sk_q4_0_quant_ref(const float *src, void *dst, int64_t n) {
    block_q4_0 *b = dst;
    for (int64_t i = 0; i < n / SK_QK4_0; i++) {
        const float *x = src + i * SK_QK4_0;
        float d = signed_absmax(x, SK_QK4_0) / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = sk_f32_to_f16(d);
        for (int j = 0; j < SK_QK4_0 / 2; j++) {
            /* truncation of (v + 8.5) rounds half up; the max maps to -8 -> 0 */
            int lo = q_trunc_i8(x[j] * id + 8.5f), hi = q_trunc_i8(x[j + SK_QK4_0 / 2] * id + 8.5f);
            if (lo > 15) lo = 15;
            if (hi > 15) hi = 15;
            b[i].qs[j] = (uint8_t)(lo | hi << 4);
        }
    }
}

/* ---- Q4_1: x = d * q + m, q in [0, 15], m = min, d = (max - min) / 15 ---- */

void sk_q4_1_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q4_1 *b = src;
    for (int64_t i = 0; i < n / SK_QK4_1; i++) {
        float d = sk_f16_to_f32(b[i].d), m = sk_f16_to_f32(b[i].m);
        float *y = dst + i * SK_QK4_1;
        for (int j = 0; j < SK_QK4_1 / 2; j++) {
            y[j] = (float)(b[i].qs[j] & 0x0F) * d + m;
            y[j + SK_QK4_1 / 2] = (float)(b[i].qs[j] >> 4) * d + m;
        }
    }
}

void sk_q4_1_quant_ref(const float *src, void *dst, int64_t n) {
    block_q4_1 *b = dst;
    for (int64_t i = 0; i < n / SK_QK4_1; i++) {
        const float *x = src + i * SK_QK4_1;
        float mn, mx;
        min_max(x, SK_QK4_1, &mn, &mx);
        float d = (mx - mn) / 15.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = sk_f32_to_f16(d);
        b[i].m = sk_f32_to_f16(mn);
        for (int j = 0; j < SK_QK4_1 / 2; j++) {
            int lo = q_trunc_i8((x[j] - mn) * id + 0.5f);
            int hi = q_trunc_i8((x[j + SK_QK4_1 / 2] - mn) * id + 0.5f);
            if (lo > 15) lo = 15;
            if (hi > 15) hi = 15;
            b[i].qs[j] = (uint8_t)(lo | hi << 4);
        }
    }
}

/* ---- Q5_0 / Q5_1: a 5th bit per element in qh (bit j for element j) ---- */

static uint32_t rd_qh(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static void wr_qh(uint8_t qh[4], uint32_t v) {
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(v >> (8 * k));
}

/* The 5-bit value of element j (< 32) of a block. */
static int q5_value(const uint8_t *qs, uint32_t qh, int j) {
    int half = SK_QK5_0 / 2;
    int lo = j < half ? qs[j] & 0x0F : qs[j - half] >> 4;
    return lo | (int)((qh >> j) & 1) << 4;
}

void sk_q5_0_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q5_0 *b = src;
    for (int64_t i = 0; i < n / SK_QK5_0; i++) {
        float d = sk_f16_to_f32(b[i].d);
        uint32_t qh = rd_qh(b[i].qh);
        for (int j = 0; j < SK_QK5_0; j++)
            dst[i * SK_QK5_0 + j] = (float)(q5_value(b[i].qs, qh, j) - 16) * d;
    }
}

void sk_q5_0_quant_ref(const float *src, void *dst, int64_t n) {
    block_q5_0 *b = dst;
    const int half = SK_QK5_0 / 2;
    for (int64_t i = 0; i < n / SK_QK5_0; i++) {
        const float *x = src + i * SK_QK5_0;
        float d = signed_absmax(x, SK_QK5_0) / -16.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = sk_f32_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < half; j++) {
            int lo = q_trunc_i8(x[j] * id + 16.5f), hi = q_trunc_i8(x[j + half] * id + 16.5f);
            if (lo > 31) lo = 31;
            if (hi > 31) hi = 31;
            b[i].qs[j] = (uint8_t)((lo & 0x0F) | (hi & 0x0F) << 4);
            qh |= (uint32_t)(lo >> 4 & 1) << j | (uint32_t)(hi >> 4 & 1) << (j + half);
        }
        wr_qh(b[i].qh, qh);
    }
}

void sk_q5_1_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q5_1 *b = src;
    for (int64_t i = 0; i < n / SK_QK5_1; i++) {
        float d = sk_f16_to_f32(b[i].d), m = sk_f16_to_f32(b[i].m);
        uint32_t qh = rd_qh(b[i].qh);
        for (int j = 0; j < SK_QK5_1; j++)
            dst[i * SK_QK5_1 + j] = (float)q5_value(b[i].qs, qh, j) * d + m;
    }
}

void sk_q5_1_quant_ref(const float *src, void *dst, int64_t n) {
    block_q5_1 *b = dst;
    const int half = SK_QK5_1 / 2;
    for (int64_t i = 0; i < n / SK_QK5_1; i++) {
        const float *x = src + i * SK_QK5_1;
        float mn, mx;
        min_max(x, SK_QK5_1, &mn, &mx);
        float d = (mx - mn) / 31.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = sk_f32_to_f16(d);
        b[i].m = sk_f32_to_f16(mn);
        uint32_t qh = 0;
        for (int j = 0; j < half; j++) {
            /* (x - min) * id + 0.5 lies in [0.5, 31.5]: truncation rounds half up */
            unsigned lo = q_trunc_u8((x[j] - mn) * id + 0.5f);
            unsigned hi = q_trunc_u8((x[j + half] - mn) * id + 0.5f);
            b[i].qs[j] = (uint8_t)((lo & 0x0F) | (hi & 0x0F) << 4);
            qh |= (uint32_t)(lo >> 4 & 1) << j | (uint32_t)(hi >> 4 & 1) << (j + half);
        }
        wr_qh(b[i].qh, qh);
    }
}

/* ---- IQ4_NL: 32-blocks of 4-bit indices into a fixed non-uniform grid, x = d * grid[q] ---- */

const int8_t sk_iq4_nl_grid[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                   1,    13,   25,  38,  53,  69,  89,  113};

void sk_iq4_nl_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_iq4_nl *b = src;
    for (int64_t i = 0; i < n / SK_QK4_NL; i++) {
        const float d = sk_f16_to_f32(b[i].d);
        for (int j = 0; j < SK_QK4_NL / 2; j++) {
            dst[i * SK_QK4_NL + j] = d * (float)sk_iq4_nl_grid[b[i].qs[j] & 0x0F];
            dst[i * SK_QK4_NL + j + 16] = d * (float)sk_iq4_nl_grid[b[i].qs[j] >> 4];
        }
    }
}

/* The grid index nearest to v (the lower one on a tie). */
static int iq4_nearest(float v) {
    const int8_t *g = sk_iq4_nl_grid;
    if (v <= g[0]) return 0;
    if (v >= g[15]) return 15;
    int lo = 0, hi = 15; /* g[lo] < v < g[hi] */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (v < g[mid]) hi = mid;
        else lo = mid;
    }
    return v - g[hi - 1] < g[hi] - v ? hi - 1 : hi;
}

/* sum w*q*x and sum w*q*q of the block's values on the grid scaled by 1/iscale */
static void iq4_fit(const float *x, const float *w, float iscale, float *sqx, float *sq2) {
    float a = 0, b = 0;
    for (int j = 0; j < SK_QK4_NL; j++) {
        float q = sk_iq4_nl_grid[iq4_nearest(iscale * x[j])];
        a += w[j] * q * x[j];
        b += w[j] * q * q;
    }
    *sqx = a;
    *sq2 = b;
}

/* As ggml's iq4_nl quantizer: per block, weights x^2 (with an importance matrix:
 * imatrix[j] * sqrt(sigma2 + x^2), sigma2 = 2 * mean x^2 of the block); the least-squares
 * scale on the grid through the signed absmax, then 15 grid spacings around it
 * ((k - 127) / max, |k| <= 7), keeping the best fit; indices again against the chosen scale. */
static void iq4_nl_quant(const float *src, void *dst, int64_t n, const float *imatrix) {
    block_iq4_nl *b = dst;
    float w[SK_QK4_NL];
    uint8_t L[SK_QK4_NL];
    for (int64_t i = 0; i < n / SK_QK4_NL; i++) {
        const float *x = src + i * SK_QK4_NL;
        float sigma2 = 0, amax = 0, max = 0;
        for (int j = 0; j < SK_QK4_NL; j++) sigma2 += x[j] * x[j];
        sigma2 *= 2.0f / SK_QK4_NL;
        for (int j = 0; j < SK_QK4_NL; j++) {
            w[j] = imatrix ? imatrix[i * SK_QK4_NL + j] * sqrtf(sigma2 + x[j] * x[j])
                           : x[j] * x[j];
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        float d = 0;
        if (amax >= 1e-15f) {
            float sqx, sq2;
            d = -max / sk_iq4_nl_grid[0];
            iq4_fit(x, w, 1 / d, &sqx, &sq2);
            d = sqx / sq2;
            float best = d * sqx;
            for (int k = -7; k <= 7; k++) {
                iq4_fit(x, w, (float)(k + sk_iq4_nl_grid[0]) / max, &sqx, &sq2);
                if (sq2 > 0 && sqx * sqx > best * sq2) {
                    d = sqx / sq2;
                    best = d * sqx;
                }
            }
        }
        b[i].d = sk_f32_to_f16(d);
        const float id = d != 0 ? 1 / d : 0;
        for (int j = 0; j < SK_QK4_NL; j++) L[j] = (uint8_t)iq4_nearest(id * x[j]);
        for (int j = 0; j < SK_QK4_NL / 2; j++) b[i].qs[j] = (uint8_t)(L[j] | L[j + 16] << 4);
    }
}

void sk_iq4_nl_quant_ref(const float *src, void *dst, int64_t n) {
    iq4_nl_quant(src, dst, n, NULL);
}

void sk_iq4_nl_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p) {
    iq4_nl_quant(src, dst, n, p ? p->imatrix : NULL);
}
