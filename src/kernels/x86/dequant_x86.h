/*
 * dequant_x86.h - the SIMD row dequantizers of the quantized dtypes (prompt processing packs
 * their weights to f32 panels with them; matmul.c, pack_w_blocks). Written once: the codes of
 * 16 elements are assembled in a 16-byte GCC vector (nibbles, 5th and 6th bits, offsets such
 * as q - 8 done in int8, where they are exact), then one of three primitives that each ISA
 * file defines after including this header widens them to f32 and applies the block's scale:
 *
 *   void dq_put(float *dst, dq_v16u8 q, int sgn, float d)             dst[i] = (float)q[i] * d
 *   void dq_put_add(float *dst, dq_v16u8 q, int sgn, float d, float m) dst[i] = (float)q[i] * d + m
 *   void dq_lookup16(float *dst, const float tbl[16], dq_v16u8 q)     dst[i] = tbl[q[i]], q < 16
 *
 * (sgn: the bytes are int8, else uint8; a constant after inlining). AVX-512 does the 16 lanes
 * in one zmm, AVX2 in two ymm.
 *
 * Contract (kernels.h, sk_dequant_fn): dst[0..n) = elements [k0, k0 + n) of the row at `row`
 * (head included; k0 and n multiples of the block), the reference's floats bit for bit: every
 * element is the reference's formula on the same operands with the same roundings. Products
 * commute exactly; m + p == p + m; p - m == p + (-m) (signed zeros included); the files are
 * built with -ffp-contract=off (Makefile), so no multiply-add is fused. Scales are read with
 * memcpy: rows and blocks may sit at any address. The references: q_legacy.c, kquants.c,
 * q_shrink.c; tests/test_dequant.c compares every type and level with them bit for bit.
 */
#ifndef SK_DEQUANT_X86_H
#define SK_DEQUANT_X86_H

#include "../kernels.h"
#include "../ggml_quants.h"
#include "../shrink_quants.h"
#include "../palette.h"

#include <immintrin.h>

#define DQ_INLINE static inline __attribute__((always_inline))

typedef uint8_t dq_v16u8 __attribute__((vector_size(16)));

/* the ISA file's primitives (defined after this header; see the top) */
DQ_INLINE void dq_put(float *dst, dq_v16u8 q, int sgn, float d);
DQ_INLINE void dq_put_add(float *dst, dq_v16u8 q, int sgn, float d, float m);
DQ_INLINE void dq_lookup16(float *dst, const float tbl[16], dq_v16u8 q);
/* 2:4 sparse: one block of 32 elements from its positions word and 16 values (f16 at vals, or
 * with i8: int8 q at vals, value d*q): zeros, value i at element 4*(i/2) + p_i (sparse24.c) */
DQ_INLINE void dq_s24(float *dst, uint32_t pos, const uint8_t *vals, int i8, float d);

DQ_INLINE float dq_rd_f16(const uint8_t *p) { /* vcvtph2ps: exact, as sk_f16_to_f32 */
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

DQ_INLINE float dq_rd_f32(const uint8_t *p) {
    float f;
    memcpy(&f, p, 4);
    return f;
}

DQ_INLINE dq_v16u8 dq_ld(const uint8_t *p) {
    dq_v16u8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* ---- llama.cpp's 32-blocks (q_legacy.c) ---------------------------------------------------- */

static void q8_0_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *b = (const uint8_t *)row + k0 / SK_QK8_0 * sizeof(block_q8_0);
    for (int64_t i = 0; i < n / SK_QK8_0; i++, b += sizeof(block_q8_0), dst += SK_QK8_0) {
        float d = dq_rd_f16(b);
        for (int h = 0; h < 2; h++) dq_put(dst + 16 * h, dq_ld(b + 2 + 16 * h), 1, d);
    }
}

/* 4-bit codes of a 32-block: element j < 16 in the low nibble of qs[j], j + 16 in the high */
static void q4_0_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *b = (const uint8_t *)row + k0 / SK_QK4_0 * sizeof(block_q4_0);
    for (int64_t i = 0; i < n / SK_QK4_0; i++, b += sizeof(block_q4_0), dst += SK_QK4_0) {
        float d = dq_rd_f16(b);
        dq_v16u8 q = dq_ld(b + 2);
        dq_put(dst, (q & 15) - 8, 1, d);
        dq_put(dst + 16, (q >> 4) - 8, 1, d);
    }
}

static void q4_1_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *b = (const uint8_t *)row + k0 / SK_QK4_1 * sizeof(block_q4_1);
    for (int64_t i = 0; i < n / SK_QK4_1; i++, b += sizeof(block_q4_1), dst += SK_QK4_1) {
        float d = dq_rd_f16(b), m = dq_rd_f16(b + 2);
        dq_v16u8 q = dq_ld(b + 4);
        dq_put_add(dst, q & 15, 0, d, m);
        dq_put_add(dst + 16, q >> 4, 0, d, m);
    }
}

/* t[i[j]] for each byte j (i < 16): pshufb (GCC's __builtin_shuffle is unknown to clang, which
 * builds the fuzzers and the sanitizer runs of CI) */
DQ_INLINE dq_v16u8 dq_lut16(dq_v16u8 t, dq_v16u8 i) {
    return (dq_v16u8)_mm_shuffle_epi8((__m128i)t, (__m128i)i);
}

/* iq4_nl: the nibbles as grid values (int8), times d */
static void iq4_nl_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *b = (const uint8_t *)row + k0 / SK_QK4_NL * sizeof(block_iq4_nl);
    dq_v16u8 grid;
    memcpy(&grid, sk_iq4_nl_grid, sizeof grid);
    for (int64_t i = 0; i < n / SK_QK4_NL; i++, b += sizeof(block_iq4_nl), dst += SK_QK4_NL) {
        float d = dq_rd_f16(b);
        dq_v16u8 q = dq_ld(b + 2);
        dq_put(dst, dq_lut16(grid, q & 15), 1, d);
        dq_put(dst + 16, dq_lut16(grid, q >> 4), 1, d);
    }
}

/* q5: the 5th bit of element j is bit j of the little-endian u32 qh: byte j of the
 * broadcast bits of qh[j / 8] tested against 1 << (j % 8) */
DQ_INLINE void q5_codes(const uint8_t *qhp, const uint8_t *qs, dq_v16u8 *lo, dq_v16u8 *hi) {
    const dq_v16u8 bit = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const dq_v16u8 q = dq_ld(qs);
    const dq_v16u8 h0 = {qhp[0], qhp[0], qhp[0], qhp[0], qhp[0], qhp[0], qhp[0], qhp[0],
                         qhp[1], qhp[1], qhp[1], qhp[1], qhp[1], qhp[1], qhp[1], qhp[1]};
    const dq_v16u8 h1 = {qhp[2], qhp[2], qhp[2], qhp[2], qhp[2], qhp[2], qhp[2], qhp[2],
                         qhp[3], qhp[3], qhp[3], qhp[3], qhp[3], qhp[3], qhp[3], qhp[3]};
    *lo = (q & 15) | ((dq_v16u8)((h0 & bit) != 0) & 16);
    *hi = (q >> 4) | ((dq_v16u8)((h1 & bit) != 0) & 16);
}

static void q5_0_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *b = (const uint8_t *)row + k0 / SK_QK5_0 * sizeof(block_q5_0);
    for (int64_t i = 0; i < n / SK_QK5_0; i++, b += sizeof(block_q5_0), dst += SK_QK5_0) {
        float d = dq_rd_f16(b);
        dq_v16u8 lo, hi;
        q5_codes(b + 2, b + 6, &lo, &hi);
        dq_put(dst, lo - 16, 1, d);
        dq_put(dst + 16, hi - 16, 1, d);
    }
}

static void q5_1_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *b = (const uint8_t *)row + k0 / SK_QK5_1 * sizeof(block_q5_1);
    for (int64_t i = 0; i < n / SK_QK5_1; i++, b += sizeof(block_q5_1), dst += SK_QK5_1) {
        float d = dq_rd_f16(b), m = dq_rd_f16(b + 2);
        dq_v16u8 lo, hi;
        q5_codes(b + 4, b + 8, &lo, &hi);
        dq_put_add(dst, lo, 0, d, m);
        dq_put_add(dst + 16, hi, 0, d, m);
    }
}

/* ---- K-quants (kquants.c) ------------------------------------------------------------------ */

/* the 6-bit scale and min of sub-block j (kquants.c's scale_min_k4) */
DQ_INLINE void dq_scale_min_k4(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0F) | (q[j - 4] >> 6) << 4;
        *m = (q[j + 4] >> 4) | (q[j] >> 6) << 4;
    }
}

/* q2_K / q3_K: sub-block j (16 elements) of half h = j / 8, group g = j % 8 / 2 has its low
 * 2 bits at 2g of the 16 code bytes qs[32h + 16 (j % 2)..]; q3_K's 3rd bit is bit 4h + g of
 * the hmask bytes at the same offset within the 32. q2_K: x = (d*sc)*q - dmin*m; q3_K:
 * x = (d*(sc - 32))*q, q in [-4, 3]. */
static void q2_K_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *b = (const uint8_t *)row + k0 / SK_QK_K * sizeof(block_q2_K);
    for (int64_t i = 0; i < n / SK_QK_K; i++, b += sizeof(block_q2_K), dst += SK_QK_K) {
        const float d = dq_rd_f16(b + offsetof(block_q2_K, d));
        const float dmin = dq_rd_f16(b + offsetof(block_q2_K, dmin));
        const uint8_t *sc = b + offsetof(block_q2_K, scales), *qs = b + offsetof(block_q2_K, qs);
        for (int j = 0; j < 16; j++) {
            const int h = j / 8, g = j % 8 / 2;
            dq_v16u8 q = (dq_ld(qs + 32 * h + 16 * (j % 2)) >> (2 * g)) & 3;
            dq_put_add(dst + 16 * j, q, 0, d * (float)(sc[j] & 0x0F), -(dmin * (float)(sc[j] >> 4)));
        }
    }
}

static void q3_K_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *b = (const uint8_t *)row + k0 / SK_QK_K * sizeof(block_q3_K);
    for (int64_t i = 0; i < n / SK_QK_K; i++, b += sizeof(block_q3_K), dst += SK_QK_K) {
        const float d = dq_rd_f16(b + offsetof(block_q3_K, d));
        const uint8_t *s = b + offsetof(block_q3_K, scales), *qs = b + offsetof(block_q3_K, qs);
        const uint8_t *hm = b + offsetof(block_q3_K, hmask);
        for (int j = 0; j < 16; j++) {
            const int h = j / 8, g = j % 8 / 2, off = 16 * (j % 2);
            const int lo = j < 8 ? s[j] & 0x0F : s[j - 8] >> 4;
            const int sc = (lo | (s[8 + j % 4] >> (2 * (j / 4)) & 3) << 4) - 32;
            dq_v16u8 q = (dq_ld(qs + 32 * h + off) >> (2 * g)) & 3;
            q |= ((dq_ld(hm + off) >> (4 * h + g)) & 1) << 2;
            dq_put(dst + 16 * j, q - 4, 1, d * (float)sc);
        }
    }
}

/* q4_K / q5_K: 64 elements per 32 code bytes, sub-block 2k in the low nibbles, 2k+1 in the
 * high ones; q5_K adds bit 2k (2k+1) of qh[l] as the 5th bit. x = (d*sc)*q - dmin*m. */
DQ_INLINE void qk_deq(const uint8_t *b, int has_qh, float *y) {
    const uint8_t *sc = b + 4, *qh = b + 16, *q = b + 16 + (has_qh ? SK_QK_K / 8 : 0);
    float d = dq_rd_f16(b), dmin = dq_rd_f16(b + 2);
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++, q += 32, y += 64) { /* unrolled: constant bit shifts */
        int s0, m0, s1, m1;
        dq_scale_min_k4(2 * k, sc, &s0, &m0);
        dq_scale_min_k4(2 * k + 1, sc, &s1, &m1);
        float d0 = d * (float)s0, mm0 = dmin * (float)m0;
        float d1 = d * (float)s1, mm1 = dmin * (float)m1;
        for (int h = 0; h < 2; h++) {
            dq_v16u8 v = dq_ld(q + 16 * h), lo = v & 15, hi = v >> 4;
            if (has_qh) {
                dq_v16u8 hb = dq_ld(qh + 16 * h);
                lo |= ((hb >> (2 * k)) & 1) << 4;
                hi |= ((hb >> (2 * k + 1)) & 1) << 4;
            }
            dq_put_add(y + 16 * h, lo, 0, d0, -mm0); /* d0 * q - mm0 */
            dq_put_add(y + 32 + 16 * h, hi, 0, d1, -mm1);
        }
    }
}

static void q4_K_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *b = (const uint8_t *)row + k0 / SK_QK_K * sizeof(block_q4_K);
    for (int64_t i = 0; i < n / SK_QK_K; i++, b += sizeof(block_q4_K), dst += SK_QK_K)
        qk_deq(b, 0, dst);
}

static void q5_K_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *b = (const uint8_t *)row + k0 / SK_QK_K * sizeof(block_q5_K);
    for (int64_t i = 0; i < n / SK_QK_K; i++, b += sizeof(block_q5_K), dst += SK_QK_K)
        qk_deq(b, 1, dst);
}

/* q6_K: halves of 128 (ql[64], qh[32], scales[8]); element 32g + l of a half has its low
 * bits in ql[l + 32 (g & 1)] (nibble g >> 1), its high bits at 2g of qh[l]; 16 lanes share
 * one scale. x = (d * sc) * (q - 32). */
static void q6_K_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *b = (const uint8_t *)row + k0 / SK_QK_K * sizeof(block_q6_K);
    for (int64_t i = 0; i < n / SK_QK_K; i++, b += sizeof(block_q6_K), dst += SK_QK_K) {
        float d = dq_rd_f16(b + offsetof(block_q6_K, d));
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b + 64 * h, *qh = b + SK_QK_K / 2 + 32 * h;
            const int8_t *sc = (const int8_t *)(b + offsetof(block_q6_K, scales)) + 8 * h;
#pragma GCC unroll 4
            for (int g = 0; g < 4; g++) /* unrolled: constant bit shifts */
#pragma GCC unroll 2
                for (int l = 0; l < 2; l++) {
                    dq_v16u8 lo = (dq_ld(ql + 16 * l + 32 * (g & 1)) >> (4 * (g >> 1))) & 15;
                    dq_v16u8 hb = ((dq_ld(qh + 16 * l) >> (2 * g)) & 3) << 4;
                    float s = d * (float)sc[l + 2 * g];
                    dq_put(dst + 128 * h + 32 * g + 16 * l, (lo | hb) - 32, 1, s);
                }
        }
    }
}

/* ---- shrink's own types (q_shrink.c) --------------------------------------------------------- */

/* int8 with a row head f32 d (int8_ch, int8_t, w8a8: head 4; w8a8_static: head 8): d * q */
DQ_INLINE void int8_sym_deq(const uint8_t *row, size_t head, int64_t k0, int64_t n, float *dst) {
    float d = dq_rd_f32(row);
    const uint8_t *q = row + head + k0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) dq_put(dst + i, dq_ld(q + i), 1, d);
    for (; i < n; i++) dst[i] = d * (float)(int8_t)q[i];
}

static void int8_ch_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    int8_sym_deq(row, SK_HEAD_D, k0, n, dst);
}

static void w8a8_static_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    int8_sym_deq(row, SK_HEAD_DM, k0, n, dst);
}

/* int8_ch_asym, int8_t_asym: head f32 d, f32 m; m + d * q */
static void int8_asym_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *r = row;
    float d = dq_rd_f32(r), m = dq_rd_f32(r + 4);
    const uint8_t *q = r + SK_HEAD_DM + k0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) dq_put_add(dst + i, dq_ld(q + i), 0, d, m);
    for (; i < n; i++) dst[i] = m + d * (float)q[i];
}

/* int4 groups of g: byte j (< g/2) holds element j (low nibble) and j + g/2 (high) */
DQ_INLINE void int4_deq(const uint8_t *row, int64_t k0, int64_t n, float *dst, int g, int asym) {
    const size_t bytes = (asym ? 4 : 2) + (size_t)g / 2;
    const uint8_t *b = row + k0 / g * bytes;
    for (int64_t i = 0; i < n / g; i++, b += bytes, dst += g) {
        float d = dq_rd_f16(b), m = asym ? dq_rd_f16(b + 2) : 0.0f;
        const uint8_t *qs = b + (asym ? 4 : 2);
        for (int c = 0; c < g / 32; c++) {
            dq_v16u8 v = dq_ld(qs + 16 * c);
            if (asym) {
                dq_put_add(dst + 16 * c, v & 15, 0, d, m);
                dq_put_add(dst + g / 2 + 16 * c, v >> 4, 0, d, m);
            } else {
                dq_put(dst + 16 * c, (v & 15) - 8, 1, d);
                dq_put(dst + g / 2 + 16 * c, (v >> 4) - 8, 1, d);
            }
        }
    }
}

#define DQ_INT4(name, g, asym)                                                                 \
    static void name##_deq(const void *row, int64_t k0, int64_t n, float *dst) {               \
        int4_deq(row, k0, n, dst, g, asym);                                                    \
    }
DQ_INT4(int4_g32, 32, 0)
DQ_INT4(int4_g64, 64, 0)
DQ_INT4(int4_g128, 128, 0)
DQ_INT4(int4_g32_asym, 32, 1)
DQ_INT4(int4_g64_asym, 64, 1)
DQ_INT4(int4_g128_asym, 128, 1)
#undef DQ_INT4

/* nf4 / nf4_dq: the table is scaled by the block's scale first (16 products d * NF4[c], the
 * reference's values), then each code looks its product up. */
DQ_INLINE void nf4_block(const uint8_t *qs, float d, float *y) {
    float tbl[16];
    for (int c = 0; c < 16; c++) tbl[c] = d * sk_nf4_values[c];
    for (int c = 0; c < 2; c++) {
        dq_v16u8 v = dq_ld(qs + 16 * c);
        dq_lookup16(y + 16 * c, tbl, v & 15);
        dq_lookup16(y + 32 + 16 * c, tbl, v >> 4);
    }
}

static void nf4_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *b = (const uint8_t *)row + k0 / SK_QK_NF4 * sizeof(sk_block_nf4);
    for (int64_t i = 0; i < n / SK_QK_NF4; i++, b += sizeof(sk_block_nf4), dst += SK_QK_NF4)
        nf4_block(b + 2, dq_rd_f16(b), dst);
}

static void nf4_dq_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *r = row;
    float D = dq_rd_f32(r);
    const uint8_t *b = r + SK_HEAD_NF4D + k0 / SK_QK_NF4 * sizeof(sk_block_nf4_dq);
    for (int64_t i = 0; i < n / SK_QK_NF4; i++, b += sizeof(sk_block_nf4_dq), dst += SK_QK_NF4)
        nf4_block(b + 1, D * (float)b[0], dst);
}

/* 2:4 sparse (sparse24.c) */
static void sparse24_f16_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *b = (const uint8_t *)row + k0 / SK_QK_S24 * SK_S24_F16_BYTES;
    for (int64_t i = 0; i < n / SK_QK_S24; i++, b += SK_S24_F16_BYTES, dst += SK_QK_S24) {
        uint32_t pos;
        memcpy(&pos, b, 4);
        dq_s24(dst, pos, b + 4, 0, 0.0f);
    }
}

static void sparse24_i8_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *r = row;
    float d = dq_rd_f32(r);
    const uint8_t *b = r + SK_HEAD_D + k0 / SK_QK_S24 * SK_S24_I8_BYTES;
    for (int64_t i = 0; i < n / SK_QK_S24; i++, b += SK_S24_I8_BYTES, dst += SK_QK_S24) {
        uint32_t pos;
        memcpy(&pos, b, 4);
        dq_s24(dst, pos, b + 4, 1, d);
    }
}

/* unstructured sparse (sparse_bm.c): zeros, then each set bit's value (the next slot) at its
 * input; f16 by vcvtph2ps, int8 as d * q like the reference */
DQ_INLINE void sbm_deq(const uint8_t *r, size_t hb, int i8, int64_t k0, int64_t n, float *dst) {
    uint32_t nb;
    memcpy(&nb, r + 4, 4);
    const uint8_t *bm = r + hb, *v = bm + 8 * (uint64_t)nb;
    const float d = i8 ? dq_rd_f32(r + 8) : 0.0f;
    int64_t s = 0;
    for (int64_t b = 0; b < k0 / SK_QK_SBM; b++) {
        uint64_t m;
        memcpy(&m, bm + 8 * b, 8);
        s += __builtin_popcountll(m);
    }
    memset(dst, 0, (size_t)n * sizeof *dst);
    for (int64_t b = k0 / SK_QK_SBM; b < (k0 + n) / SK_QK_SBM; b++) {
        uint64_t m;
        memcpy(&m, bm + 8 * b, 8);
        float *o = dst + b * SK_QK_SBM - k0;
        for (; m; m &= m - 1, s++)
            o[__builtin_ctzll(m)] = i8 ? d * (float)(int8_t)v[s] : dq_rd_f16(v + 2 * s);
    }
}

static void sparse_f16_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    sbm_deq(row, SK_SBM_HEAD_F16, 0, k0, n, dst);
}

static void sparse_i8_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    sbm_deq(row, SK_SBM_HEAD_I8, 1, k0, n, dst);
}

/* palettes (palette.h): the group's palette as a 16-entry table (pal4: 4 entries, the rest 0),
 * the codes of 16 elements looked up at once; pal256: one lookup per element */
static void pal16_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    float tbl[16];
    sk_pal_table(SHRINK_DTYPE_PAL16, row, tbl);
    const uint8_t *b = (const uint8_t *)row + SK_HEAD_PAL + k0 / SK_QK_PAL * 16;
    for (int64_t i = 0; i < n; i += SK_QK_PAL, b += 16, dst += SK_QK_PAL) {
        dq_v16u8 v = dq_ld(b);
        dq_lookup16(dst, tbl, v & 15);
        dq_lookup16(dst + 16, tbl, v >> 4);
    }
}

static void pal4_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    float tbl[16] = {0};
    sk_pal_table(SHRINK_DTYPE_PAL4, row, tbl);
    const uint8_t *b = (const uint8_t *)row + SK_HEAD_PAL + k0 / SK_QK_PAL * 8;
    const dq_v16u8 lo = {0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2};
    const dq_v16u8 hi = {4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6};
    for (int64_t i = 0; i < n; i += SK_QK_PAL, b += 8, dst += SK_QK_PAL) {
        dq_v16u8 v;
        memcpy(&v, b, 8);
        memcpy((uint8_t *)&v + 8, b, 8);
        dq_lookup16(dst, tbl, (v >> lo) & 3);
        dq_lookup16(dst + 16, tbl, (v >> hi) & 3);
    }
}

static void pal256_deq(const void *row, int64_t k0, int64_t n, float *dst) {
    float tbl[256];
    sk_pal_table(SHRINK_DTYPE_PAL256, row, tbl);
    const uint8_t *b = (const uint8_t *)row + SK_HEAD_PAL + k0;
    for (int64_t i = 0; i < n; i++) dst[i] = tbl[b[i]];
}

/* ---- the table ------------------------------------------------------------------------------ */

static const sk_dequant_fn dq_table[SHRINK_DTYPE_COUNT] = {
    [SHRINK_DTYPE_Q8_0] = q8_0_deq,
    [SHRINK_DTYPE_Q4_0] = q4_0_deq,
    [SHRINK_DTYPE_Q4_1] = q4_1_deq,
    [SHRINK_DTYPE_Q5_0] = q5_0_deq,
    [SHRINK_DTYPE_Q5_1] = q5_1_deq,
    [SHRINK_DTYPE_Q4_K] = q4_K_deq,
    [SHRINK_DTYPE_Q5_K] = q5_K_deq,
    [SHRINK_DTYPE_Q6_K] = q6_K_deq,
    [SHRINK_DTYPE_Q2_K] = q2_K_deq,
    [SHRINK_DTYPE_Q3_K] = q3_K_deq,
    [SHRINK_DTYPE_IQ4_NL] = iq4_nl_deq,
    [SHRINK_DTYPE_INT8_CH] = int8_ch_deq,
    [SHRINK_DTYPE_INT8_CH_ASYM] = int8_asym_deq,
    [SHRINK_DTYPE_INT8_T] = int8_ch_deq,
    [SHRINK_DTYPE_INT8_T_ASYM] = int8_asym_deq,
    [SHRINK_DTYPE_INT4_G32] = int4_g32_deq,
    [SHRINK_DTYPE_INT4_G64] = int4_g64_deq,
    [SHRINK_DTYPE_INT4_G128] = int4_g128_deq,
    [SHRINK_DTYPE_INT4_G32_ASYM] = int4_g32_asym_deq,
    [SHRINK_DTYPE_INT4_G64_ASYM] = int4_g64_asym_deq,
    [SHRINK_DTYPE_INT4_G128_ASYM] = int4_g128_asym_deq,
    [SHRINK_DTYPE_NF4] = nf4_deq,
    [SHRINK_DTYPE_NF4_DQ] = nf4_dq_deq,
    [SHRINK_DTYPE_W8A8] = int8_ch_deq,
    [SHRINK_DTYPE_W8A8_STATIC] = w8a8_static_deq,
    [SHRINK_DTYPE_SPARSE24_F16] = sparse24_f16_deq,
    [SHRINK_DTYPE_SPARSE24_I8] = sparse24_i8_deq,
    [SHRINK_DTYPE_PAL16] = pal16_deq,
    [SHRINK_DTYPE_PAL256] = pal256_deq,
    [SHRINK_DTYPE_PAL4] = pal4_deq,
    [SHRINK_DTYPE_SPARSE_F16] = sparse_f16_deq,
    [SHRINK_DTYPE_SPARSE_I8] = sparse_i8_deq,
};

#endif /* SK_DEQUANT_X86_H */
