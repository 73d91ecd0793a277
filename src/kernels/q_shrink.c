/*
 * q_shrink.c - shrink's own quantized types (int8 per channel / per tensor, int4 groups
 * symmetric and asymmetric, NF4, NF4 with double-quantized scales, W8A8): the scalar
 * reference dequantizers and round-to-nearest quantizers of their dtype rows.
 *
 * Layouts and formulas: shrink_quants.h and docs/formats.md ("shrink's own quantized types").
 * Not here: dot products with quantized activations (the rows' vec_dot_ref, in their own
 * files), choosing scales from calibration data (src/quant/), SIMD versions.
 *
 * Row-head types (int8_*, nf4_dq, w8a8*) take whole rows: src/dst point at the row's head and
 * n is the row's length. The others are plain block sequences (n a multiple of the group).
 */
#include "shrink_quants.h"

#include <float.h>
#include <math.h>

/* ==== helpers ============================================================================= */

/* bitsandbytes' NF4 code values (functional.py get_4bit_type("nf4"); csrc/kernels.cu). */
#define NF4_0  -1.0f
#define NF4_1  -0.6961928009986877f
#define NF4_2  -0.5250730514526367f
#define NF4_3  -0.39491748809814453f
#define NF4_4  -0.28444138169288635f
#define NF4_5  -0.18477343022823334f
#define NF4_6  -0.09105003625154495f
#define NF4_7  0.0f
#define NF4_8  0.07958029955625534f
#define NF4_9  0.16093020141124725f
#define NF4_10 0.24611230194568634f
#define NF4_11 0.33791524171829224f
#define NF4_12 0.44070982933044434f
#define NF4_13 0.5626170039176941f
#define NF4_14 0.7229568362236023f
#define NF4_15 1.0f

const float sk_nf4_values[16] = {
    NF4_0, NF4_1, NF4_2,  NF4_3,  NF4_4,  NF4_5,  NF4_6,  NF4_7,
    NF4_8, NF4_9, NF4_10, NF4_11, NF4_12, NF4_13, NF4_14, NF4_15,
};

/* Midpoints between neighbouring codes: the nearest code to v is the number of midpoints
 * below v (a tie goes to the lower code, as bitsandbytes' dQuantizeNF4 `x > threshold`). */
#define MID(a, b) (0.5f * ((a) + (b)))
static const float nf4_mid[15] = {
    MID(NF4_0, NF4_1),   MID(NF4_1, NF4_2),   MID(NF4_2, NF4_3),   MID(NF4_3, NF4_4),
    MID(NF4_4, NF4_5),   MID(NF4_5, NF4_6),   MID(NF4_6, NF4_7),   MID(NF4_7, NF4_8),
    MID(NF4_8, NF4_9),   MID(NF4_9, NF4_10),  MID(NF4_10, NF4_11), MID(NF4_11, NF4_12),
    MID(NF4_12, NF4_13), MID(NF4_13, NF4_14), MID(NF4_14, NF4_15),
};
#undef MID

static uint8_t nf4_code(float v) {
    uint8_t q = 0;
    for (int i = 0; i < 15; i++) q += v > nf4_mid[i];
    return q;
}

/* v clamped to [lo, hi]; NaN gives lo (no undefined float -> int conversion). */
static float clampf(float v, float lo, float hi) {
    return v >= lo ? (v <= hi ? v : hi) : lo;
}

static float absmax_of(const float *x, int64_t n) {
    float a = 0.0f;
    for (int64_t i = 0; i < n; i++) a = fmaxf(a, fabsf(x[i]));
    return a;
}

static void min_max_of(const float *x, int64_t n, float *mn, float *mx) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int64_t i = 0; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    if (n == 0) lo = hi = 0.0f;
    *mn = lo;
    *mx = hi;
}

static void wr_f32(uint8_t *p, float v) { memcpy(p, &v, 4); } /* little-endian hosts */

/* A scale as stored in f16 and read back (saturated at the largest half, 65504). */
static float f16_round(float v, sk_half *h) {
    *h = sk_f32_to_f16(clampf(v, -65504.0f, 65504.0f));
    return sk_f16_to_f32(*h);
}

/* ==== int8 with a row head: int8_ch, int8_t, w8a8 (f32 d), w8a8_static (f32 d, a) ========= */

/* head (f32 d, then `extra` f32s written by the caller) and q = clamp(round(x/d), -127, 127) */
static void int8_sym_row(const float *x, int64_t n, float d, uint8_t *row, size_t head) {
    wr_f32(row, d);
    int8_t *q = (int8_t *)(row + head);
    for (int64_t i = 0; i < n; i++)
        q[i] = d != 0.0f ? (int8_t)roundf(clampf(x[i] / d, -127.0f, 127.0f)) : 0;
}

static void int8_sym_to_f32(const uint8_t *row, size_t head, int64_t k0, int64_t n, float *dst) {
    float d = sk_rd_f32(row);
    const int8_t *q = (const int8_t *)(row + head) + k0;
    for (int64_t i = 0; i < n; i++) dst[i] = d * (float)q[i];
}

void sk_int8_ch_from_f32(const float *src, void *dst, int64_t n) {
    int8_sym_row(src, n, absmax_of(src, n) / 127.0f, dst, SK_HEAD_D);
}

void sk_int8_ch_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p) {
    sk_int8_ch_from_f32(src, dst, n);
}

void sk_int8_ch_to_f32(const void *src, float *dst, int64_t n) {
    int8_sym_to_f32(src, SK_HEAD_D, 0, n, dst);
}

void sk_int8_ch_to_f32_range(const void *row, int64_t k0, int64_t n, float *dst) {
    int8_sym_to_f32(row, SK_HEAD_D, k0, n, dst);
}

/* int8_t: the tensor's absmax (tensor_range); without it, the row's (as int8_ch) */
void sk_int8_t_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p) {
    float amax = p && p->tensor_range ? fmaxf(fabsf(p->tmin), fabsf(p->tmax))
                                      : absmax_of(src, n);
    int8_sym_row(src, n, amax / 127.0f, dst, SK_HEAD_D);
}

void sk_int8_t_from_f32(const float *src, void *dst, int64_t n) {
    sk_int8_t_quantize(src, dst, n, NULL);
}

/* w8a8: the weights are int8_ch (the difference is the activation format) */
void sk_w8a8_from_f32(const float *src, void *dst, int64_t n) {
    sk_int8_ch_from_f32(src, dst, n);
}

void sk_w8a8_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p) {
    sk_int8_ch_from_f32(src, dst, n);
}

/* w8a8_static: int8_ch weights, then a = the calibrated activation scale (0: not calibrated) */
void sk_w8a8_static_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p) {
    int8_sym_row(src, n, absmax_of(src, n) / 127.0f, dst, SK_HEAD_DM);
    wr_f32((uint8_t *)dst + 4, p ? p->act_scale : 0.0f);
}

void sk_w8a8_static_from_f32(const float *src, void *dst, int64_t n) {
    sk_w8a8_static_quantize(src, dst, n, NULL);
}

void sk_w8a8_static_to_f32(const void *src, float *dst, int64_t n) {
    int8_sym_to_f32(src, SK_HEAD_DM, 0, n, dst);
}

void sk_w8a8_static_to_f32_range(const void *row, int64_t k0, int64_t n, float *dst) {
    int8_sym_to_f32(row, SK_HEAD_DM, k0, n, dst);
}

/* ==== uint8 with a row head f32 d, f32 m: int8_ch_asym, int8_t_asym ====================== */

/* x = m + d*q, q = clamp(round((x - m)/d), 0, 255) */
static void int8_asym_row(const float *x, int64_t n, float mn, float mx, uint8_t *row) {
    float d = (mx - mn) / 255.0f;
    wr_f32(row, d);
    wr_f32(row + 4, mn);
    uint8_t *q = row + SK_HEAD_DM;
    for (int64_t i = 0; i < n; i++)
        q[i] = d != 0.0f ? (uint8_t)roundf(clampf((x[i] - mn) / d, 0.0f, 255.0f)) : 0;
}

void sk_int8_ch_asym_from_f32(const float *src, void *dst, int64_t n) {
    float mn, mx;
    min_max_of(src, n, &mn, &mx);
    int8_asym_row(src, n, mn, mx, dst);
}

void sk_int8_ch_asym_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p) {
    sk_int8_ch_asym_from_f32(src, dst, n);
}

void sk_int8_ch_asym_to_f32_range(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *r = row;
    float d = sk_rd_f32(r), m = sk_rd_f32(r + 4);
    const uint8_t *q = r + SK_HEAD_DM + k0;
    for (int64_t i = 0; i < n; i++) dst[i] = m + d * (float)q[i];
}

void sk_int8_ch_asym_to_f32(const void *src, float *dst, int64_t n) {
    sk_int8_ch_asym_to_f32_range(src, 0, n, dst);
}

/* int8_t_asym: the tensor's [tmin, tmax] (tensor_range); without it, the row's */
void sk_int8_t_asym_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p) {
    float mn, mx;
    if (p && p->tensor_range) {
        mn = p->tmin;
        mx = p->tmax;
    } else {
        min_max_of(src, n, &mn, &mx);
    }
    int8_asym_row(src, n, mn, mx, dst);
}

void sk_int8_t_asym_from_f32(const float *src, void *dst, int64_t n) {
    sk_int8_t_asym_quantize(src, dst, n, NULL);
}

/* ==== int4 groups: {f16 d; u8 qs[G/2]} and {f16 d; f16 m; u8 qs[G/2]} ===================== */

/* Packs G codes (0..15): byte j = q[j] | q[j + G/2] << 4. */
static void pack_nibbles(const uint8_t *q, int g, uint8_t *qs) {
    for (int j = 0; j < g / 2; j++) qs[j] = (uint8_t)(q[j] | q[j + g / 2] << 4);
}

static void unpack_nibbles(const uint8_t *qs, int g, uint8_t *q) {
    for (int j = 0; j < g / 2; j++) {
        q[j] = qs[j] & 15;
        q[j + g / 2] = qs[j] >> 4;
    }
}

/* Symmetric: d = absmax/7 (stored f16), q = clamp(round(x/d), -7, 7) + 8 against the stored d.
 * Block of g elements = 2 + g/2 bytes. */
static void int4_sym_quant(const float *src, uint8_t *dst, int64_t n, int g) {
    uint8_t q[128];
    for (int64_t b = 0; b < n / g; b++, dst += 2 + g / 2) {
        const float *x = src + b * g;
        sk_half h;
        float d = f16_round(absmax_of(x, g) / 7.0f, &h);
        memcpy(dst, &h, 2);
        for (int j = 0; j < g; j++)
            q[j] = (uint8_t)(d != 0.0f ? (int)roundf(clampf(x[j] / d, -7.0f, 7.0f)) + 8 : 8);
        pack_nibbles(q, g, dst + 2);
    }
}

static void int4_sym_deq(const uint8_t *src, float *dst, int64_t n, int g) {
    uint8_t q[128];
    for (int64_t b = 0; b < n / g; b++, src += 2 + g / 2) {
        sk_half h;
        memcpy(&h, src, 2);
        float d = sk_f16_to_f32(h);
        unpack_nibbles(src + 2, g, q);
        for (int j = 0; j < g; j++) dst[b * g + j] = d * (float)((int)q[j] - 8);
    }
}

/* Asymmetric: m = min (stored f16), d = (max - min)/15 (stored f16),
 * q = clamp(round((x - m)/d), 0, 15) against the stored m and d. Block = 4 + g/2 bytes. */
static void int4_asym_quant(const float *src, uint8_t *dst, int64_t n, int g) {
    uint8_t q[128];
    for (int64_t b = 0; b < n / g; b++, dst += 4 + g / 2) {
        const float *x = src + b * g;
        float mn, mx;
        min_max_of(x, g, &mn, &mx);
        sk_half hd, hm;
        float d = f16_round((mx - mn) / 15.0f, &hd);
        float m = f16_round(mn, &hm);
        memcpy(dst, &hd, 2);
        memcpy(dst + 2, &hm, 2);
        for (int j = 0; j < g; j++)
            q[j] = d != 0.0f ? (uint8_t)roundf(clampf((x[j] - m) / d, 0.0f, 15.0f)) : 0;
        pack_nibbles(q, g, dst + 4);
    }
}

static void int4_asym_deq(const uint8_t *src, float *dst, int64_t n, int g) {
    uint8_t q[128];
    for (int64_t b = 0; b < n / g; b++, src += 4 + g / 2) {
        sk_half hd, hm;
        memcpy(&hd, src, 2);
        memcpy(&hm, src + 2, 2);
        float d = sk_f16_to_f32(hd), m = sk_f16_to_f32(hm);
        unpack_nibbles(src + 4, g, q);
        for (int j = 0; j < g; j++) dst[b * g + j] = d * (float)q[j] + m;
    }
}

#define INT4_FUNCS(t, kind, g)                                                                 \
    void sk_##t##_to_f32(const void *src, float *dst, int64_t n) {                             \
        int4_##kind##_deq(src, dst, n, g);                                                     \
    }                                                                                          \
    void sk_##t##_from_f32(const float *src, void *dst, int64_t n) {                           \
        int4_##kind##_quant(src, dst, n, g);                                                   \
    }                                                                                          \
    void sk_##t##_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p) {      \
        int4_##kind##_quant(src, dst, n, g);                                                   \
    }
INT4_FUNCS(int4_g32, sym, 32)
INT4_FUNCS(int4_g64, sym, 64)
INT4_FUNCS(int4_g128, sym, 128)
INT4_FUNCS(int4_g32_asym, asym, 32)
INT4_FUNCS(int4_g64_asym, asym, 64)
INT4_FUNCS(int4_g128_asym, asym, 128)
#undef INT4_FUNCS

/* ==== nf4: blocks of 64 {f16 d; u8 qs[32]}, x = d * NF4[q] ================================ */

/* codes of g elements against the scale d (0: all code 7, NF4's zero) */
static void nf4_codes(const float *x, float d, uint8_t *qs) {
    uint8_t q[SK_QK_NF4];
    for (int j = 0; j < SK_QK_NF4; j++) q[j] = d != 0.0f ? nf4_code(x[j] / d) : 7;
    pack_nibbles(q, SK_QK_NF4, qs);
}

static void nf4_values(const uint8_t *qs, float d, float *dst) {
    uint8_t q[SK_QK_NF4];
    unpack_nibbles(qs, SK_QK_NF4, q);
    for (int j = 0; j < SK_QK_NF4; j++) dst[j] = d * sk_nf4_values[q[j]];
}

void sk_nf4_from_f32(const float *src, void *dst, int64_t n) {
    sk_block_nf4 *b = dst;
    for (int64_t i = 0; i < n / SK_QK_NF4; i++) {
        const float *x = src + i * SK_QK_NF4;
        float d = f16_round(absmax_of(x, SK_QK_NF4), &b[i].d);
        nf4_codes(x, d, b[i].qs);
    }
}

void sk_nf4_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p) {
    sk_nf4_from_f32(src, dst, n);
}

void sk_nf4_to_f32(const void *src, float *dst, int64_t n) {
    const sk_block_nf4 *b = src;
    for (int64_t i = 0; i < n / SK_QK_NF4; i++)
        nf4_values(b[i].qs, sk_f16_to_f32(b[i].d), dst + i * SK_QK_NF4);
}

/* ==== nf4_dq: row head f32 D, blocks {u8 s; u8 qs[32]}, x = (D*s) * NF4[q] ================= */

void sk_nf4_dq_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *row = dst;
    sk_block_nf4_dq *b = (sk_block_nf4_dq *)(row + SK_HEAD_NF4D);
    int64_t nb = n / SK_QK_NF4;
    float amax = 0.0f; /* the largest block absmax = the row's absmax */
    for (int64_t i = 0; i < nb; i++) amax = fmaxf(amax, absmax_of(src + i * SK_QK_NF4, SK_QK_NF4));
    float D = amax / 255.0f;
    wr_f32(row, D);
    for (int64_t i = 0; i < nb; i++) {
        const float *x = src + i * SK_QK_NF4;
        float a = absmax_of(x, SK_QK_NF4);
        float s = D != 0.0f ? roundf(clampf(a / D, 0.0f, 255.0f)) : 0.0f;
        if (a > 0.0f && s < 1.0f && D != 0.0f) s = 1.0f; /* a non-zero block keeps a scale */
        b[i].s = (uint8_t)s;
        nf4_codes(x, D * s, b[i].qs); /* against the rounded scale */
    }
}

void sk_nf4_dq_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p) {
    sk_nf4_dq_from_f32(src, dst, n);
}

void sk_nf4_dq_to_f32_range(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *r = row;
    float D = sk_rd_f32(r);
    const sk_block_nf4_dq *b = (const sk_block_nf4_dq *)(r + SK_HEAD_NF4D) + k0 / SK_QK_NF4;
    for (int64_t i = 0; i < n / SK_QK_NF4; i++)
        nf4_values(b[i].qs, D * (float)b[i].s, dst + i * SK_QK_NF4);
}

void sk_nf4_dq_to_f32(const void *src, float *dst, int64_t n) {
    sk_nf4_dq_to_f32_range(src, 0, n, dst);
}
