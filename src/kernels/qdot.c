/*
 * qdot.c - quantized decode: the activation quantizers (sk_act_quantize_ref) and the scalar
 * reference dot products (vec_dot_ref of the dtype rows) of the llama.cpp block types against
 * quantized activations, plus the lookups that hand out the SIMD versions (x86/qdot_<isa>.c).
 *
 * These references are the specification of the SIMD kernels (layouts.md, docs/kernels.md):
 * integer sums per block in int32; each block's sum converted to float and multiplied by
 * (weight block scale * activation block scale); offsets and mins through the activation
 * sums (sk_act_q8_32.s, block_q8_K.bsums); blocks accumulated in f32 in index order.
 * A SIMD kernel computes the same integer sums exactly and differs only in the order of the
 * f32 additions. Like ggml's vec_dot_<type>_q8_0/_q8_K (ggml-cpu/quants.c, generic).
 */
#include "kernels.h"
#include "ggml_quants.h"
#include "shrink_quants.h"

#include <math.h>

/* ==== activation quantizers ================================================================ */

size_t sk_act_bytes(sk_act_format f, int64_t n) {
    switch (f) {
    case SK_ACT_F32:       return (size_t)n * sizeof(float);
    case SK_ACT_Q8_32:     return (size_t)(n / 32) * sizeof(sk_act_q8_32);
    case SK_ACT_Q8_K:      return (size_t)(n / SK_QK_K) * sizeof(block_q8_K);
    case SK_ACT_I8_TOKEN:
    case SK_ACT_I8_STATIC: return sizeof(sk_act_i8) + (size_t)n;
    default:               SHRINK_ASSERT(!"unknown activation format"); return 0;
    }
}

int64_t sk_act_block(sk_act_format f) {
    return f == SK_ACT_Q8_32 ? 32 : f == SK_ACT_Q8_K ? SK_QK_K : 1;
}

/* q = roundf(x / d) clamped to [-127, 127]; 0 when d == 0 */
static int8_t q8_of(float x, float d) {
    if (d == 0.0f) return 0;
    float v = roundf(x / d);
    if (v != v) return 0;   /* NaN: never cast to an integer */
    return (int8_t)(v > 127.0f ? 127 : v < -127.0f ? -127 : (int)v);
}

static void act_q8_32_ref(const float *x, int64_t n, void *dst, float static_scale) {
    (void)static_scale;
    uint8_t *out = dst;
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        sk_act_q8_32 blk;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
        blk.d = amax / 127.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            blk.qs[j] = q8_of(xb[j], blk.d);
            sum += blk.qs[j];
        }
        blk.s = blk.d * (float)sum;
        memcpy(out + b * sizeof blk, &blk, sizeof blk);
    }
}

static void act_q8_K_ref(const float *x, int64_t n, void *dst, float static_scale) {
    (void)static_scale;
    sk_q8_K_quant_ref(x, dst, n);
}

static void act_i8_ref(const float *x, int64_t n, void *dst, float d) {
    int8_t *q = (int8_t *)dst + sizeof(sk_act_i8);
    sk_act_i8 h = {.d = d, .sum = 0};
    for (int64_t i = 0; i < n; i++) {
        q[i] = q8_of(x[i], d);
        h.sum += q[i];
    }
    memcpy(dst, &h, sizeof h);
}

static void act_i8_token_ref(const float *x, int64_t n, void *dst, float static_scale) {
    (void)static_scale;
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    act_i8_ref(x, n, dst, amax / 127.0f);
}

/* a scale of 0 means "not calibrated" (w8a8_static's from_f32): the token's own, as w8a8 */
static void act_i8_static_ref(const float *x, int64_t n, void *dst, float static_scale) {
    if (static_scale > 0.0f) act_i8_ref(x, n, dst, static_scale);
    else act_i8_token_ref(x, n, dst, 0.0f);
}

static void act_f32_ref(const float *x, int64_t n, void *dst, float static_scale) {
    (void)static_scale;
    memcpy(dst, x, (size_t)n * sizeof(float));
}

static sk_act_quant_fn act_quant_ref(sk_act_format f) {
    switch (f) {
    case SK_ACT_F32:       return act_f32_ref;
    case SK_ACT_Q8_32:     return act_q8_32_ref;
    case SK_ACT_Q8_K:      return act_q8_K_ref;
    case SK_ACT_I8_TOKEN:  return act_i8_token_ref;
    case SK_ACT_I8_STATIC: return act_i8_static_ref;
    default:               SHRINK_ASSERT(!"unknown activation format"); return NULL;
    }
}

void sk_act_quantize_ref(sk_act_format f, const float *x, int64_t n, void *dst,
                         float static_scale) {
    SHRINK_ASSERT(n % sk_act_block(f) == 0);
    act_quant_ref(f)(x, n, dst, static_scale);
}

sk_act_quant_fn sk_act_quant_get(sk_isa isa, sk_act_format f) {
    SHRINK_ASSERT((unsigned)f < SK_ACT_COUNT);
    return sk_kernel_table(isa)->act_quant[f];
}

void sk_act_quantize(sk_act_format f, const float *x, int64_t n, void *dst, float static_scale) {
    SHRINK_ASSERT(n % sk_act_block(f) == 0 && (unsigned)f < SK_ACT_COUNT);
    sk_kernel_table(sk_kernels()->isa)->act_quant[f](x, n, dst, static_scale);
}

void sk_act_dequantize(sk_act_format f, const void *src, int64_t n, float *dst) {
    const uint8_t *p = src;
    switch (f) {
    case SK_ACT_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case SK_ACT_Q8_32:
        for (int64_t b = 0; b < n / 32; b++) {
            sk_act_q8_32 blk;
            memcpy(&blk, p + b * sizeof blk, sizeof blk);
            for (int j = 0; j < 32; j++) dst[b * 32 + j] = blk.d * (float)blk.qs[j];
        }
        break;
    case SK_ACT_Q8_K: {
        block_q8_K blk;
        for (int64_t b = 0; b < n / SK_QK_K; b++) {
            memcpy(&blk, p + b * sizeof blk, sizeof blk);
            sk_q8_K_dequant_ref(&blk, dst + b * SK_QK_K, SK_QK_K);
        }
        break;
    }
    case SK_ACT_I8_TOKEN:
    case SK_ACT_I8_STATIC: {
        sk_act_i8 h;
        memcpy(&h, p, sizeof h);
        const int8_t *q = (const int8_t *)(p + sizeof h);
        for (int64_t i = 0; i < n; i++) dst[i] = h.d * (float)q[i];
        break;
    }
    default: SHRINK_ASSERT(!"unknown activation format");
    }
}

/* ==== reference dots: legacy 32-blocks x sk_act_q8_32 ======================================= */

/* Blocks are read through memcpy: rows of these types are not aligned in general. */
#define LOAD(var, base, i) \
    memcpy(&(var), (const uint8_t *)(base) + (size_t)(i) * sizeof(var), sizeof(var))

float sk_q8_0_dot_ref(int64_t n, const void *w, const void *xa) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        block_q8_0 wb;
        sk_act_q8_32 xb;
        LOAD(wb, w, b);
        LOAD(xb, xa, b);
        int32_t isum = 0;
        for (int j = 0; j < 32; j++) isum += wb.qs[j] * xb.qs[j];
        acc += (float)isum * (sk_f16_to_f32(wb.d) * xb.d);
    }
    return acc;
}

/* element j (< 32) of a 4-bit block: low nibble of byte j, or high nibble of byte j - 16 */
static int nib(const uint8_t *qs, int j) { return j < 16 ? qs[j] & 0x0F : qs[j - 16] >> 4; }

static int q5_hi(const uint8_t qh[4], int j) { return (qh[j / 8] >> (j % 8) & 1) << 4; }

/* One legacy 32-block: its 32 signed codes q (zero point already subtracted), its scale d and
 * min m (0 for the zero-point types); x = d * q + m. */
typedef void (*legacy_codes_fn)(const uint8_t *blk, int q[32], float *d, float *m);

static void codes_q4_0(const uint8_t *blk, int q[32], float *d, float *m) {
    block_q4_0 b;
    memcpy(&b, blk, sizeof b);
    for (int j = 0; j < 32; j++) q[j] = nib(b.qs, j) - 8;
    *d = sk_f16_to_f32(b.d);
    *m = 0.0f;
}
static void codes_q4_1(const uint8_t *blk, int q[32], float *d, float *m) {
    block_q4_1 b;
    memcpy(&b, blk, sizeof b);
    for (int j = 0; j < 32; j++) q[j] = nib(b.qs, j);
    *d = sk_f16_to_f32(b.d);
    *m = sk_f16_to_f32(b.m);
}
static void codes_q5_0(const uint8_t *blk, int q[32], float *d, float *m) {
    block_q5_0 b;
    memcpy(&b, blk, sizeof b);
    for (int j = 0; j < 32; j++) q[j] = nib(b.qs, j) + q5_hi(b.qh, j) - 16;
    *d = sk_f16_to_f32(b.d);
    *m = 0.0f;
}
static void codes_q5_1(const uint8_t *blk, int q[32], float *d, float *m) {
    block_q5_1 b;
    memcpy(&b, blk, sizeof b);
    for (int j = 0; j < 32; j++) q[j] = nib(b.qs, j) + q5_hi(b.qh, j);
    *d = sk_f16_to_f32(b.d);
    *m = sk_f16_to_f32(b.m);
}

static void codes_iq4_nl(const uint8_t *blk, int q[32], float *d, float *m) {
    block_iq4_nl b;
    memcpy(&b, blk, sizeof b);
    for (int j = 0; j < 32; j++) q[j] = sk_iq4_nl_grid[nib(b.qs, j)];
    *d = sk_f16_to_f32(b.d);
    *m = 0.0f;
}

/* sum over blocks of isum * (d_w * d_x), plus m * s for the min types (s = d_x * sum(xq)) */
static float legacy_dot_ref(int64_t n, const void *w, const void *xa, size_t bs,
                            legacy_codes_fn codes) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        sk_act_q8_32 xb;
        LOAD(xb, xa, b);
        int q[32];
        float d, m;
        codes((const uint8_t *)w + (size_t)b * bs, q, &d, &m);
        int32_t isum = 0;
        for (int j = 0; j < 32; j++) isum += q[j] * xb.qs[j];
        acc += (float)isum * (d * xb.d) + m * xb.s; /* m = 0 adds exactly 0 */
    }
    return acc;
}

float sk_iq4_nl_dot_ref(int64_t n, const void *w, const void *xa) {
    return legacy_dot_ref(n, w, xa, sizeof(block_iq4_nl), codes_iq4_nl);
}
float sk_q4_0_dot_ref(int64_t n, const void *w, const void *xa) {
    return legacy_dot_ref(n, w, xa, sizeof(block_q4_0), codes_q4_0);
}
float sk_q4_1_dot_ref(int64_t n, const void *w, const void *xa) {
    return legacy_dot_ref(n, w, xa, sizeof(block_q4_1), codes_q4_1);
}
float sk_q5_0_dot_ref(int64_t n, const void *w, const void *xa) {
    return legacy_dot_ref(n, w, xa, sizeof(block_q5_0), codes_q5_0);
}
float sk_q5_1_dot_ref(int64_t n, const void *w, const void *xa) {
    return legacy_dot_ref(n, w, xa, sizeof(block_q5_1), codes_q5_1);
}

/* ==== reference dots: K-quants x block_q8_K ================================================= */

/* q2_K and q3_K: element 128*h + 32*g + l (h < 2, g < 4, l < 32) has its 2 low bits at 2g of
 * qs[32h + l] and is in sub-block e / 16 of 16 elements. q2_K: x = d*sc*q - dmin*m (4-bit sc
 * and m), the mins through the q8_K sums of 16: sum_j m_j * bsums[j]. q3_K: the 3rd bit is
 * bit 4h + g of hmask[l] (clear: q - 4), x = d * (sc - 32) * q with 6-bit sc. */
float sk_q2_K_dot_ref(int64_t n, const void *w, const void *xa) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n / SK_QK_K; b++) {
        block_q2_K wb;
        block_q8_K xb;
        LOAD(wb, w, b);
        LOAD(xb, xa, b);
        int32_t isum = 0, imin = 0;
        for (int j = 0; j < 16; j++) {
            int32_t s = 0;
            for (int e = 16 * j; e < 16 * j + 16; e++)
                s += (wb.qs[32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32)) & 3) * xb.qs[e];
            isum += (wb.scales[j] & 0x0F) * s;
            imin += (wb.scales[j] >> 4) * xb.bsums[j];
        }
        acc += (float)isum * (sk_f16_to_f32(wb.d) * xb.d) -
               (float)imin * (sk_f16_to_f32(wb.dmin) * xb.d);
    }
    return acc;
}

float sk_q3_K_dot_ref(int64_t n, const void *w, const void *xa) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n / SK_QK_K; b++) {
        block_q3_K wb;
        block_q8_K xb;
        LOAD(wb, w, b);
        LOAD(xb, xa, b);
        int32_t isum = 0;
        for (int j = 0; j < 16; j++) {
            int32_t s = 0;
            for (int e = 16 * j; e < 16 * j + 16; e++) {
                int h = e / 128, g = e % 128 / 32, l = e % 32;
                int q = (wb.qs[32 * h + l] >> (2 * g) & 3) - (wb.hmask[l] >> (4 * h + g) & 1 ? 0 : 4);
                s += q * xb.qs[e];
            }
            int lo = j < 8 ? wb.scales[j] & 0x0F : wb.scales[j - 8] >> 4;
            int sc = (lo | (wb.scales[8 + j % 4] >> (2 * (j / 4)) & 3) << 4) - 32;
            isum += sc * s;
        }
        acc += (float)isum * (sk_f16_to_f32(wb.d) * xb.d);
    }
    return acc;
}

/* 6-bit scale and min of sub-block j (< 8) of q4_K/q5_K (as kquants.c's scale_min_k4) */
static void k4_scale_min(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0F) | (q[j - 4] >> 6) << 4;
        *m = (q[j + 4] >> 4) | (q[j] >> 6) << 4;
    }
}

/* q4_K and q5_K (qh != NULL): element 32*j + l of a super-block is in sub-block j (scale
 * sc_j, min m_j): x = d*sc_j*q - dmin*m_j. Integer part sum_j sc_j * sum_l q*xq; the mins
 * through the q8_K sums of 16: sum_j m_j * (bsums[2j] + bsums[2j+1]). */
static float k45_dot(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh, float d,
                     float dmin, const block_q8_K *xb) {
    int32_t isum = 0, imin = 0;
    for (int j = 0; j < 8; j++) {
        int sc, m;
        k4_scale_min(j, scales, &sc, &m);
        const uint8_t *q = qs + 32 * (j / 2);
        int32_t s = 0;
        for (int l = 0; l < 32; l++) {
            int v = j % 2 ? q[l] >> 4 : q[l] & 0x0F;
            if (qh) v |= (qh[l] >> j & 1) << 4;
            s += v * xb->qs[32 * j + l];
        }
        isum += sc * s;
        imin += m * (xb->bsums[2 * j] + xb->bsums[2 * j + 1]);
    }
    return (float)isum * (d * xb->d) - (float)imin * (dmin * xb->d);
}

float sk_q4_K_dot_ref(int64_t n, const void *w, const void *xa) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n / SK_QK_K; b++) {
        block_q4_K wb;
        block_q8_K xb;
        LOAD(wb, w, b);
        LOAD(xb, xa, b);
        acc += k45_dot(wb.scales, wb.qs, NULL, sk_f16_to_f32(wb.d), sk_f16_to_f32(wb.dmin), &xb);
    }
    return acc;
}

float sk_q5_K_dot_ref(int64_t n, const void *w, const void *xa) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n / SK_QK_K; b++) {
        block_q5_K wb;
        block_q8_K xb;
        LOAD(wb, w, b);
        LOAD(xb, xa, b);
        acc += k45_dot(wb.scales, wb.qs, wb.qh, sk_f16_to_f32(wb.d), sk_f16_to_f32(wb.dmin), &xb);
    }
    return acc;
}

/* q6_K: element 128*h + 32*g + l (h < 2, g < 4, l < 32) has low bits in nibble g/2 of
 * ql[64h + l + 32*(g%2)], high bits at 2g of qh[32h + l], scale scales[8h + 2g + l/16];
 * x = d * sc * (q - 32). */
float sk_q6_K_dot_ref(int64_t n, const void *w, const void *xa) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n / SK_QK_K; b++) {
        block_q6_K wb;
        block_q8_K xb;
        LOAD(wb, w, b);
        LOAD(xb, xa, b);
        int32_t isum = 0;
        for (int h = 0; h < 2; h++)
            for (int g = 0; g < 4; g++)
                for (int s16 = 0; s16 < 2; s16++) {
                    int32_t s = 0;
                    for (int l = 16 * s16; l < 16 * s16 + 16; l++) {
                        int lo = wb.ql[64 * h + l + 32 * (g % 2)] >> (4 * (g / 2)) & 0x0F;
                        int q = (lo | (wb.qh[32 * h + l] >> (2 * g) & 3) << 4) - 32;
                        s += q * xb.qs[128 * h + 32 * g + l];
                    }
                    isum += wb.scales[8 * h + 2 * g + s16] * s;
                }
        acc += (float)isum * (sk_f16_to_f32(wb.d) * xb.d);
    }
    return acc;
}

/* ==== reference dots: shrink's own types (shrink_quants.h, layouts.md) ===================== */

/* int8 weights with a row head f32 d (int8_ch, int8_t) x sk_act_q8_32: per activation block
 * of 32, isum = sum wq*xq; acc += isum * (d * d_x). */
float sk_int8_dot_ref(int64_t n, const void *w, const void *xa) {
    const uint8_t *row = w;
    const float d = sk_rd_f32(row);
    const int8_t *q = (const int8_t *)(row + SK_HEAD_D);
    float acc = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        sk_act_q8_32 xb;
        LOAD(xb, xa, b);
        int32_t isum = 0;
        for (int j = 0; j < 32; j++) isum += q[32 * b + j] * xb.qs[j];
        acc += (float)isum * (d * xb.d);
    }
    return acc;
}

/* uint8 weights with a row head f32 d, f32 m (int8_ch_asym, int8_t_asym): x = m + d*q;
 * per activation block: acc += isum * (d * d_x) + m * s_x. */
float sk_int8_asym_dot_ref(int64_t n, const void *w, const void *xa) {
    const uint8_t *row = w;
    const float d = sk_rd_f32(row), m = sk_rd_f32(row + 4);
    const uint8_t *q = row + SK_HEAD_DM;
    float acc = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        sk_act_q8_32 xb;
        LOAD(xb, xa, b);
        int32_t isum = 0;
        for (int j = 0; j < 32; j++) isum += q[32 * b + j] * xb.qs[j];
        acc += (float)isum * (d * xb.d) + m * xb.s;
    }
    return acc;
}

/* int4 groups of g (sym: {f16 d; qs}, x = d*(q-8); asym: {f16 d; f16 m; qs}, x = d*q + m),
 * x sk_act_q8_32: each group spans g/32 activation blocks; per activation block, isum over
 * its 32 codes (element e of the group: nibble of byte e % (g/2), high if e >= g/2). */
static float int4_dot(int64_t n, const uint8_t *w, const void *xa, int g, int asym) {
    const size_t head = asym ? 4 : 2, bsz = head + (size_t)g / 2;
    float acc = 0.0f;
    for (int64_t b = 0; b < n / g; b++, w += bsz) {
        uint16_t hd, hm = 0;
        memcpy(&hd, w, 2);
        if (asym) memcpy(&hm, w + 2, 2);
        const float d = sk_f16_to_f32(hd), m = sk_f16_to_f32(hm);
        const uint8_t *qs = w + head;
        for (int a = 0; a < g / 32; a++) {
            sk_act_q8_32 xb;
            LOAD(xb, xa, b * (g / 32) + a);
            int32_t isum = 0;
            for (int j = 0; j < 32; j++) {
                int e = 32 * a + j;
                int q = e < g / 2 ? qs[e] & 0x0F : qs[e - g / 2] >> 4;
                isum += (asym ? q : q - 8) * xb.qs[j];
            }
            acc += (float)isum * (d * xb.d);
            if (asym) acc += m * xb.s;
        }
    }
    return acc;
}

float sk_int4_g32_dot_ref(int64_t n, const void *w, const void *xa) {
    return int4_dot(n, w, xa, 32, 0);
}
float sk_int4_g64_dot_ref(int64_t n, const void *w, const void *xa) {
    return int4_dot(n, w, xa, 64, 0);
}
float sk_int4_g128_dot_ref(int64_t n, const void *w, const void *xa) {
    return int4_dot(n, w, xa, 128, 0);
}
float sk_int4_g32_asym_dot_ref(int64_t n, const void *w, const void *xa) {
    return int4_dot(n, w, xa, 32, 1);
}
float sk_int4_g64_asym_dot_ref(int64_t n, const void *w, const void *xa) {
    return int4_dot(n, w, xa, 64, 1);
}
float sk_int4_g128_asym_dot_ref(int64_t n, const void *w, const void *xa) {
    return int4_dot(n, w, xa, 128, 1);
}

/* nf4 / nf4_dq x f32 activations: dequantize (the dtype row's arithmetic: d * NF4[q], d the
 * f16 block absmax or D*s), then the f32 dot in index order. */
static float nf4_block_dot(const uint8_t *qs, float d, const float *x, float acc) {
    for (int j = 0; j < SK_QK_NF4; j++) {
        int q = j < SK_QK_NF4 / 2 ? qs[j] & 0x0F : qs[j - SK_QK_NF4 / 2] >> 4;
        acc += d * sk_nf4_values[q] * x[j];
    }
    return acc;
}

float sk_nf4_dot_ref(int64_t n, const void *w, const void *xa) {
    const uint8_t *p = w;
    float acc = 0.0f;
    for (int64_t b = 0; b < n / SK_QK_NF4; b++, p += sizeof(sk_block_nf4)) {
        uint16_t h;
        memcpy(&h, p, 2);
        acc = nf4_block_dot(p + 2, sk_f16_to_f32(h), (const float *)xa + b * SK_QK_NF4, acc);
    }
    return acc;
}

float sk_nf4_dq_dot_ref(int64_t n, const void *w, const void *xa) {
    const uint8_t *p = w;
    const float D = sk_rd_f32(p);
    p += SK_HEAD_NF4D;
    float acc = 0.0f;
    for (int64_t b = 0; b < n / SK_QK_NF4; b++, p += sizeof(sk_block_nf4_dq))
        acc = nf4_block_dot(p + 1, D * (float)p[0], (const float *)xa + b * SK_QK_NF4, acc);
    return acc;
}

/* w8a8 (head f32 d) and w8a8_static (head f32 d, f32 a) x sk_act_i8: one integer sum over
 * the row (int64 here: no overflow for any n; the SIMD kernels sum int32 lanes of n/8
 * products each, then the lanes in int64), times d * d_x once. */
static float w8a8_dot(int64_t n, const uint8_t *row, size_t head, const void *xa) {
    sk_act_i8 h;
    memcpy(&h, xa, sizeof h);
    const int8_t *x = (const int8_t *)xa + sizeof h;
    const int8_t *q = (const int8_t *)(row + head);
    int64_t isum = 0;
    for (int64_t i = 0; i < n; i++) isum += q[i] * x[i];
    return (float)isum * (sk_rd_f32(row) * h.d);
}

float sk_w8a8_dot_ref(int64_t n, const void *w, const void *xa) {
    return w8a8_dot(n, w, SK_HEAD_D, xa);
}

float sk_w8a8_static_dot_ref(int64_t n, const void *w, const void *xa) {
    return w8a8_dot(n, w, SK_HEAD_DM, xa);
}

/* ==== lookups ================================================================================ */

/* The level's quantizers and dots (the avx512 dots need VNNI; a level without a kernel falls
 * back to the level below, then to the reference). */
void sk_qdot_fill(sk_isa_table *tb, int vnni) {
    for (int i = 0; i < SK_ACT_COUNT; i++) {
        const sk_act_format f = (sk_act_format)i;
        sk_act_quant_fn fn = NULL;
        if (tb->isa >= SK_ISA_AVX512) fn = sk_act_quant_avx512(f);
        if (!fn && tb->isa >= SK_ISA_AVX2) fn = sk_act_quant_avx2(f);
        tb->act_quant[f] = fn ? fn : act_quant_ref(f);
    }
    for (int i = 0; i < SHRINK_DTYPE_COUNT; i++) {
        const shrink_dtype t = (shrink_dtype)i;
        sk_vec_dot_fn fn = NULL;
        if (tb->isa >= SK_ISA_AVX512 && vnni) fn = sk_qdot_avx512(t);
        if (!fn && tb->isa >= SK_ISA_AVX2) fn = sk_qdot_avx2(t);
        tb->dtype[t].vec_dot = fn ? fn : sk_dtype(t)->vec_dot_ref;
        tb->dtype[t].act_quant = tb->act_quant[sk_dtype(t)->act];
    }
}

sk_vec_dot_fn sk_vec_dot_get(sk_isa isa, shrink_dtype t) {
    if ((unsigned)t >= SHRINK_DTYPE_COUNT) return NULL;
    return sk_kernel_table(isa)->dtype[t].vec_dot;
}
