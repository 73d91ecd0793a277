/*
 * qdot_x86.h - the 256-bit quantized dot kernels and activation quantizers, written once over
 * three primitives that each including ISA file defines before including this header:
 *
 *   __m256i mul_sum_u8s8(__m256i acc, __m256i u, __m256i s)
 *       acc + (per int32 lane) the sum of the 4 products u8 * s8; the u8 values here are at
 *       most 128 (so AVX2's maddubs does not saturate: 2 * 128 * 127 < 32768)
 *   __m256i mul_sum_i16(__m256i acc, __m256i a, __m256i b)
 *       acc + (per int32 lane) a16[2i] * b16[2i] + a16[2i+1] * b16[2i+1]
 *   __m256i bits_0x10(const uint8_t *qh)
 *       32 bytes: 0x10 where bit j of the little-endian u32 at qh is set, else 0
 *
 * qdot_avx2.c implements them with maddubs/madd, qdot_avx512.c with AVX-512 VNNI
 * (vpdpbusd/vpdpwssd on ymm) and a mask register. Everything here is static: each ISA file
 * gets its own copy compiled with its own flags (docs/style.md, section 6).
 *
 * The specification is qdot.c: every kernel computes the references' integer sums exactly
 * and differs only in how the f32 block terms are added (in 8 lanes, two accumulators).
 * Unaligned data: vectors with loadu, scalars with memcpy.
 */
#ifndef SK_QDOT_X86_H
#define SK_QDOT_X86_H

#include "../kernels.h"
#include "../ggml_quants.h"
#include "../shrink_quants.h"
#include "../palette.h"

#include <immintrin.h>
#include <math.h>

#define SK_INLINE static inline __attribute__((always_inline))

SK_INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

SK_INLINE int32_t hsum8i(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

SK_INLINE float f16(const void *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

SK_INLINE float f32_at(const void *p) {
    float f;
    memcpy(&f, p, 4);
    return f;
}

SK_INLINE __m256i loadu32(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* 16 bytes of nibbles -> 32 bytes: the low nibbles (elements 0..15), then the high ones */
SK_INLINE __m256i nibbles32(const uint8_t *qs) {
    __m128i q = _mm_loadu_si128((const __m128i *)qs);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* int32 lanes of sum(wq * xq) for signed bytes: |w| as u8 and x with w's sign */
SK_INLINE __m256i mul_sum_s8s8(__m256i acc, __m256i w, __m256i x) {
    return mul_sum_u8s8(acc, _mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
}

/* ==== legacy 32-blocks x sk_act_q8_32 ======================================================= */

/* Blocks are addressed as bytes (rows need not be aligned to the block structs). */
#define XA_SZ sizeof(sk_act_q8_32)
#define XA_D(xp, b) f32_at((xp) + (size_t)(b) * XA_SZ + offsetof(sk_act_q8_32, d))
#define XA_S(xp, b) f32_at((xp) + (size_t)(b) * XA_SZ + offsetof(sk_act_q8_32, s))
#define XA_QS(xp, b) loadu32((xp) + (size_t)(b) * XA_SZ + offsetof(sk_act_q8_32, qs))

/* Groups of 8 blocks: the 8 weight scales (f16, every BS bytes) and the 8 activation scales
 * (every 40 bytes) fetched with one gather each, multiplied as vectors and stored; each block
 * then broadcasts its product from memory (a load, no shuffle). Offsets / mins likewise as
 * vectors (the activation sums s gathered). The blocks past the last group one at a time. */
SK_INLINE __m256 f16x8_gather(const uint8_t *p, __m256i idx) {
    /* dword k = bytes [idx_k, idx_k + 4): the f16 in its low half (little-endian) */
    __m256i v = _mm256_and_si256(_mm256_i32gather_epi32((const int *)p, idx, 1),
                                 _mm256_set1_epi32(0xFFFF));
    v = _mm256_permute4x64_epi64(_mm256_packus_epi32(v, v), 0x08); /* 8 x u16, low 128 */
    return _mm256_cvtph_ps(_mm256_castsi256_si128(v));
}

SK_INLINE __m256i idx8(int stride) {
    return _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(stride));
}

/* One block: acc += d_w * d_x * cvt(p) (the scales of block b, scalar; q8_0 measured faster
 * this way than with the gathers, whose cost its cheaper integer part does not hide). */
#define BLOCK_TERM(acc, p, wp, xp, b) \
    acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(wp) * XA_D(xp, b)), _mm256_cvtepi32_ps(p), acc)

static float q8_0_dot(int64_t n, const void *w, const void *xa) {
    const uint8_t *wp = w, *xp = xa;
    const size_t bs = sizeof(block_q8_0);
    const int64_t nb = n / 32;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2, wp += 2 * bs) {
        __m256i p0 = mul_sum_s8s8(_mm256_setzero_si256(), loadu32(wp + 2), XA_QS(xp, b));
        __m256i p1 = mul_sum_s8s8(_mm256_setzero_si256(), loadu32(wp + bs + 2), XA_QS(xp, b + 1));
        BLOCK_TERM(acc0, p0, wp, xp, b);
        BLOCK_TERM(acc1, p1, wp + bs, xp, b + 1);
    }
    if (b < nb) {
        __m256i p0 = mul_sum_s8s8(_mm256_setzero_si256(), loadu32(wp + 2), XA_QS(xp, b));
        BLOCK_TERM(acc0, p0, wp, xp, b);
    }
    return hsum8(_mm256_add_ps(acc0, acc1));
}

/* The 4- and 5-bit 32-blocks: the unsigned codes q (0..15 or 0..31) times x with
 * mul_sum_u8s8, so sum((q - z) * xq) = sum(q * xq) - z * sum(xq); the z term goes through
 * the activation block's s = d * sum(xq): acc += d_w*d_x*sum(q*xq), off += d_w*s (z-point
 * types, times z at the end) or m*s (min types). BS: block bytes; CODES: the 32 codes of a
 * block; HAS_M: a f16 min after the f16 scale; OFF_SIGN, OFF_MUL: -, z or +, 1. */
#define LEGACY_DOT(NAME, BS, CODES, HAS_M, OFF_SIGN, OFF_MUL)                                   \
    static float NAME(int64_t n, const void *w, const void *xa) {                              \
        const uint8_t *wp = w, *xp = xa;                                                       \
        const int64_t nb = n / 32;                                                             \
        const __m256i widx = idx8((int)(BS)), xidx = idx8((int)XA_SZ);                        \
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),        \
                         _mm256_setzero_ps()}; /* four chains */                               \
        __m256 offv = _mm256_setzero_ps();                                                     \
        float off = 0.0f;                                                                      \
        int64_t b = 0;                                                                         \
        for (; b + 8 <= nb; b += 8, wp += 8 * (BS), xp += 8 * XA_SZ) {                         \
            const __m256 dw = f16x8_gather(wp, widx);                                          \
            const __m256 sx = _mm256_i32gather_ps((const float *)(xp + 4), xidx, 1);           \
            float S[8];                                                                        \
            _mm256_storeu_ps(S, _mm256_mul_ps(dw, _mm256_i32gather_ps((const float *)xp,       \
                                                                      xidx, 1)));              \
            offv = _mm256_fmadd_ps(HAS_M ? f16x8_gather(wp + 2, widx) : dw, sx, offv);         \
            _Pragma("GCC unroll 4") for (int k = 0; k < 8; k += 2) {                           \
                __m256i p0 = mul_sum_u8s8(_mm256_setzero_si256(), CODES(wp + k * (BS)),        \
                                          XA_QS(xp, k));                                       \
                __m256i p1 = mul_sum_u8s8(_mm256_setzero_si256(), CODES(wp + (k + 1) * (BS)),  \
                                          XA_QS(xp, k + 1));                                   \
                acc[k & 2] = _mm256_fmadd_ps(_mm256_broadcast_ss(S + k),                       \
                                             _mm256_cvtepi32_ps(p0), acc[k & 2]);              \
                acc[(k & 2) + 1] = _mm256_fmadd_ps(_mm256_broadcast_ss(S + k + 1),             \
                                                   _mm256_cvtepi32_ps(p1), acc[(k & 2) + 1]);  \
            }                                                                                  \
        }                                                                                      \
        for (; b < nb; b++, wp += (BS), xp += XA_SZ) {                                         \
            __m256i p0 = mul_sum_u8s8(_mm256_setzero_si256(), CODES(wp), XA_QS(xp, 0));        \
            BLOCK_TERM(acc[0], p0, wp, xp, 0);                                                 \
            off += (HAS_M ? f16(wp + 2) : f16(wp)) * XA_S(xp, 0);                              \
        }                                                                                      \
        __m256 a = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])); \
        return hsum8(a) OFF_SIGN OFF_MUL * (hsum8(offv) + off);                                \
    }

#define CODES_Q4_0(p) nibbles32((p) + offsetof(block_q4_0, qs))
#define CODES_Q4_1(p) nibbles32((p) + offsetof(block_q4_1, qs))
#define CODES_Q5_0(p) _mm256_or_si256(nibbles32((p) + offsetof(block_q5_0, qs)), \
                                      bits_0x10((p) + offsetof(block_q5_0, qh)))
#define CODES_Q5_1(p) _mm256_or_si256(nibbles32((p) + offsetof(block_q5_1, qs)), \
                                      bits_0x10((p) + offsetof(block_q5_1, qh)))
LEGACY_DOT(q4_0_dot, sizeof(block_q4_0), CODES_Q4_0, 0, -, 8.0f)
LEGACY_DOT(q4_1_dot, sizeof(block_q4_1), CODES_Q4_1, 1, +, 1.0f)
LEGACY_DOT(q5_0_dot, sizeof(block_q5_0), CODES_Q5_0, 0, -, 16.0f)
LEGACY_DOT(q5_1_dot, sizeof(block_q5_1), CODES_Q5_1, 1, +, 1.0f)

/* iq4_nl: the nibbles looked up in the grid (pshufb on the 16 int8 values), then signed x
 * signed bytes; d = f16 first in the block as q8_0's. */
static float iq4_nl_dot(int64_t n, const void *w, const void *xa) {
    const uint8_t *wp = w, *xp = xa;
    const __m256i grid = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)sk_iq4_nl_grid));
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    const int64_t nb = n / 32;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2, wp += 2 * sizeof(block_iq4_nl)) {
        __m256i v0 = _mm256_shuffle_epi8(grid, nibbles32(wp + 2));
        __m256i v1 = _mm256_shuffle_epi8(grid, nibbles32(wp + sizeof(block_iq4_nl) + 2));
        __m256i p0 = mul_sum_s8s8(_mm256_setzero_si256(), v0, XA_QS(xp, b));
        __m256i p1 = mul_sum_s8s8(_mm256_setzero_si256(), v1, XA_QS(xp, b + 1));
        BLOCK_TERM(acc0, p0, wp, xp, b);
        BLOCK_TERM(acc1, p1, wp + sizeof(block_iq4_nl), xp, b + 1);
    }
    if (b < nb) {
        __m256i v0 = _mm256_shuffle_epi8(grid, nibbles32(wp + 2));
        __m256i p0 = mul_sum_s8s8(_mm256_setzero_si256(), v0, XA_QS(xp, b));
        BLOCK_TERM(acc0, p0, wp, xp, b);
    }
    return hsum8(_mm256_add_ps(acc0, acc1));
}

/* ==== K-quants x block_q8_K ================================================================= */

/* q4_K/q5_K packed 6-bit scales and mins -> 16 int16: the 8 scales (low 128 bits), then the
 * 8 mins (ggml's kmask trick on 32-bit words, in registers) */
SK_INLINE __m256i k4_scales_mins(const uint8_t *q) {
    uint32_t u[4];
    memcpy(u, q, 12);
    const uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
    u[3] = ((u[2] >> 4) & kmask2) | (((u[1] >> 6) & kmask3) << 4);
    const uint32_t m_lo = u[1] & kmask1;
    u[1] = (u[2] & kmask2) | (((u[0] >> 6) & kmask3) << 4);
    u[2] = m_lo;
    u[0] &= kmask1;
    return _mm256_cvtepu8_epi16(_mm_set_epi32((int)u[3], (int)u[2], (int)u[1], (int)u[0]));
}

/* shuffle masks broadcasting int16 lane k of a 128-bit half to all 8 lanes */
SK_INLINE __m256i bcast16(__m256i v, int k) {
    return _mm256_shuffle_epi8(v, _mm256_set1_epi16((short)(0x0100 * (2 * k + 1) + 2 * k)));
}

/* q4_K (has_qh = 0) and q5_K: per super-block, 4 steps of 64 elements (32 bytes of codes:
 * low nibbles sub-block 2j, high nibbles 2j+1, the 5th bits from qh). The 6-bit scales are
 * applied to 16-bit pair sums: codes x q8 through _mm256_maddubs_epi16 (codes <= 31: no
 * saturation), then the scales through mul_sum_i16. Mins: sum_j m_j * (bsums[2j] +
 * bsums[2j+1]) with one madd. */
SK_INLINE float k45_dot(int64_t n, const void *w, const void *xa, const int has_qh) {
    const uint8_t *wp = w, *xp = xa;
    const size_t bsz = has_qh ? sizeof(block_q5_K) : sizeof(block_q4_K);
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int64_t b = 0; b < n / SK_QK_K; b++, wp += bsz, xp += sizeof(block_q8_K)) {
        const uint8_t *scales = wp + 4, *qh = wp + 4 + SK_K_SCALE_SIZE;
        const uint8_t *qs = has_qh ? qh + SK_QK_K / 8 : qh;
        const float dx = f32_at(xp + offsetof(block_q8_K, d));
        const float d = f16(wp) * dx, dmin = f16(wp + 2) * dx;
        const __m256i sm = k4_scales_mins(scales);
        /* mins: 8 int16 m_j against the 8 sums of 32 */
        __m128i bs_lo = _mm_loadu_si128((const __m128i *)(xp + offsetof(block_q8_K, bsums)));
        __m128i bs_hi = _mm_loadu_si128((const __m128i *)(xp + offsetof(block_q8_K, bsums) + 16));
        __m128i pm = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), _mm_hadd_epi16(bs_lo, bs_hi));
        accm = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(pm), accm);
        const __m256i sc16 = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm));
        __m256i hbits = has_qh ? loadu32(qh) : _mm256_setzero_si256();
        __m256i sumi = _mm256_setzero_si256(), sumh = _mm256_setzero_si256();
        const uint8_t *q8 = xp + offsetof(block_q8_K, qs);
        #pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            __m256i q4 = loadu32(qs + 32 * j);
            __m256i ql = _mm256_and_si256(q4, m4);
            __m256i qh4 = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
            if (has_qh) {
                __m256i b0 = _mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j), one);
                __m256i b1 = _mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j + 1), one);
                ql = _mm256_or_si256(ql, _mm256_slli_epi16(b0, 4));
                qh4 = _mm256_or_si256(qh4, _mm256_slli_epi16(b1, 4));
            }
            __m256i pl = _mm256_maddubs_epi16(ql, loadu32(q8 + 64 * j));
            __m256i ph = _mm256_maddubs_epi16(qh4, loadu32(q8 + 64 * j + 32));
            sumi = mul_sum_i16(sumi, pl, bcast16(sc16, 2 * j));
            sumh = mul_sum_i16(sumh, ph, bcast16(sc16, 2 * j + 1)); /* two dependency chains */
        }
        sumi = _mm256_add_epi32(sumi, sumh);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    accm = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
    accm = _mm_add_ss(accm, _mm_movehdup_ps(accm));
    return hsum8(acc) - _mm_cvtss_f32(accm);
}

static float q4_K_dot(int64_t n, const void *w, const void *xa) { return k45_dot(n, w, xa, 0); }
static float q5_K_dot(int64_t n, const void *w, const void *xa) { return k45_dot(n, w, xa, 1); }

/* q6_K: unsigned 6-bit codes u = q + 32 per half of 128 (4 groups g of 32: low nibbles of
 * ql[0..31] / ql[32..63], then their high nibbles; 2 bits of qh each), times x with maddubs
 * (u <= 63: no saturation), scales per 16 through mul_sum_i16; the -32 through the q8_K sums:
 * isum = sum sc*sum(u*x) - 32 * sum_j sc_j * bsums_j. */
static float q6_K_dot(int64_t n, const void *w, const void *xa) {
    const uint8_t *wp = w, *xp = xa;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / SK_QK_K; b++, wp += sizeof(block_q6_K), xp += sizeof(block_q8_K)) {
        const uint8_t *ql = wp + offsetof(block_q6_K, ql), *qh = wp + offsetof(block_q6_K, qh);
        const uint8_t *scp = wp + offsetof(block_q6_K, scales);
        const float d = f16(wp + offsetof(block_q6_K, d)) * f32_at(xp + offsetof(block_q8_K, d));
        __m256i sc_all = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)scp));
        __m256i bsums = loadu32(xp + offsetof(block_q8_K, bsums));
        __m256i sumi = _mm256_slli_epi32(_mm256_madd_epi16(sc_all, bsums), 5);
        sumi = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);
        const uint8_t *q8 = xp + offsetof(block_q8_K, qs);
        __m256i sumg[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        #pragma GCC unroll 2
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, q8 += 128) {
            /* the 8 scales of this half as int16, both 128-bit lanes */
            __m256i sc = _mm256_broadcastsi128_si256(
                _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(scp + 8 * h))));
            __m256i l0 = loadu32(ql), l1 = loadu32(ql + 32), hb = loadu32(qh);
            __m256i u[4], hi[4];
            u[0] = _mm256_and_si256(l0, m4);
            u[1] = _mm256_and_si256(l1, m4);
            u[2] = _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4);
            u[3] = _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4);
            /* bits 2g, 2g+1 of each qh byte moved to bits 4, 5 (shifts of 16-bit words: the
             * bits crossing into the neighbouring byte are masked off) */
            hi[0] = _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30);
            hi[1] = _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30);
            hi[2] = _mm256_and_si256(hb, m30);
            hi[3] = _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30);
            #pragma GCC unroll 4
            for (int g = 0; g < 4; g++) {
                __m256i q = _mm256_or_si256(u[g], hi[g]);
                __m256i p = _mm256_maddubs_epi16(q, loadu32(q8 + 32 * g));
                /* elements 0..15 use scale 2g (low 128 bits), 16..31 scale 2g+1 */
                __m256i s = _mm256_shuffle_epi8(
                    sc, _mm256_set_m128i(_mm_set1_epi16((short)(0x0100 * (4 * g + 3) + 4 * g + 2)),
                                         _mm_set1_epi16((short)(0x0100 * (4 * g + 1) + 4 * g))));
                sumg[g & 1] = mul_sum_i16(sumg[g & 1], p, s); /* two dependency chains */
            }
        }
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(sumg[0], sumg[1]));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc);
}

/* q2_K and q3_K: per half h of 128, the 32 code bytes qs[32h..] hold 4 groups g of 32
 * elements (bits 2g, 2g+1); maddubs of the unsigned codes (q2_K 0..3, q3_K 0..7 with the
 * 3rd bit from hmask) against x gives 16 pair sums, the first 8 in sub-block 8h + 2g, the last
 * 8 in 8h + 2g + 1; the scales per 16 through mul_sum_i16 (as q6_K). q2_K's mins and q3_K's
 * -4 offset go through the q8_K sums of 16: sum_j m_j * bsums_j, 4 * sum_j sc_j * bsums_j. */
SK_INLINE __m256i k23_scale_pair(__m256i sc8, int g) {
    return _mm256_shuffle_epi8(
        sc8, _mm256_set_m128i(_mm_set1_epi16((short)(0x0100 * (4 * g + 3) + 4 * g + 2)),
                              _mm_set1_epi16((short)(0x0100 * (4 * g + 1) + 4 * g))));
}

/* the 16 six-bit q3_K scales minus 32, as 16 int8 (layout: kquants.c, q3_scale) */
SK_INLINE __m128i q3_scales(const uint8_t *s) {
    uint32_t a[3], o[4];
    memcpy(a, s, 12);
    const uint32_t lo4 = 0x0F0F0F0F, lo2 = 0x03030303;
    o[0] = (a[0] & lo4) | (a[2] & lo2) << 4;             /* scales 0..3 */
    o[1] = (a[1] & lo4) | (a[2] >> 2 & lo2) << 4;        /* 4..7 */
    o[2] = (a[0] >> 4 & lo4) | (a[2] >> 4 & lo2) << 4;   /* 8..11 */
    o[3] = (a[1] >> 4 & lo4) | (a[2] >> 6 & lo2) << 4;   /* 12..15 */
    __m128i v = _mm_set_epi32((int)o[3], (int)o[2], (int)o[1], (int)o[0]);
    return _mm_sub_epi8(v, _mm_set1_epi8(32));
}

/* is_q3 = 0: q2_K (4-bit scales, mins through accm); 1: q3_K (6-bit scales - 32, the 3rd bit
 * from hmask, the -4 offset through the sums) */
SK_INLINE float k23_dot(int64_t n, const void *w, const void *xa, const int is_q3) {
    const uint8_t *wp = w, *xp = xa;
    const size_t bsz = is_q3 ? sizeof(block_q3_K) : sizeof(block_q2_K);
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / SK_QK_K; b++, wp += bsz, xp += sizeof(block_q8_K)) {
        const float dx = f32_at(xp + offsetof(block_q8_K, d));
        const __m256i bsums = loadu32(xp + offsetof(block_q8_K, bsums));
        __m256i sc_all, hm = _mm256_setzero_si256(), sumi = _mm256_setzero_si256();
        float d;
        const uint8_t *qs;
        if (is_q3) {
            d = f16(wp + offsetof(block_q3_K, d)) * dx;
            sc_all = _mm256_cvtepi8_epi16(q3_scales(wp + offsetof(block_q3_K, scales)));
            /* the codes are q + 4: subtract 4 * sum_j sc_j * bsums_j */
            sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(_mm256_madd_epi16(sc_all, bsums), 2));
            hm = loadu32(wp + offsetof(block_q3_K, hmask));
            qs = wp + offsetof(block_q3_K, qs);
        } else {
            d = f16(wp + offsetof(block_q2_K, d)) * dx;
            const float dmin = f16(wp + offsetof(block_q2_K, dmin)) * dx;
            const __m128i sm = _mm_loadu_si128((const __m128i *)(wp + offsetof(block_q2_K, scales)));
            const __m128i m4 = _mm_set1_epi8(0x0F);
            sc_all = _mm256_cvtepu8_epi16(_mm_and_si128(sm, m4));
            const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sm, 4), m4));
            accm = _mm256_fmadd_ps(_mm256_set1_ps(dmin),
                                   _mm256_cvtepi32_ps(_mm256_madd_epi16(mins, bsums)), accm);
            qs = wp + offsetof(block_q2_K, qs);
        }
        const uint8_t *q8 = xp + offsetof(block_q8_K, qs);
        __m256i sumg[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        #pragma GCC unroll 2
        for (int h = 0; h < 2; h++, qs += 32, q8 += 128) {
            const __m256i sc = _mm256_broadcastsi128_si256(h ? _mm256_extracti128_si256(sc_all, 1)
                                                             : _mm256_castsi256_si128(sc_all));
            const __m256i q = loadu32(qs);
            #pragma GCC unroll 4
            for (int g = 0; g < 4; g++) {
                __m256i u = _mm256_and_si256(_mm256_srli_epi16(q, 2 * g), m3);
                if (is_q3) {
                    __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + g), one);
                    u = _mm256_or_si256(u, _mm256_slli_epi16(hb, 2));
                }
                __m256i p = _mm256_maddubs_epi16(u, loadu32(q8 + 32 * g));
                sumg[g & 1] = mul_sum_i16(sumg[g & 1], p, k23_scale_pair(sc, g));
            }
        }
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(sumg[0], sumg[1]));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc) - hsum8(accm);
}

static float q2_K_dot(int64_t n, const void *w, const void *xa) { return k23_dot(n, w, xa, 0); }
static float q3_K_dot(int64_t n, const void *w, const void *xa) { return k23_dot(n, w, xa, 1); }

/* ==== shrink's own types (shrink_quants.h) ================================================== */

/* int8_ch / int8_t (head f32 d, int8 codes) x sk_act_q8_32: d * sum_b d_x * sum(wq * xq) */
static float int8_dot(int64_t n, const void *w, const void *xa) {
    const uint8_t *q = (const uint8_t *)w + SK_HEAD_D, *xp = xa;
    const int64_t nb = n / 32;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m256i p0 = mul_sum_s8s8(_mm256_setzero_si256(), loadu32(q + 32 * b), XA_QS(xp, b));
        __m256i p1 = mul_sum_s8s8(_mm256_setzero_si256(), loadu32(q + 32 * b + 32),
                                  XA_QS(xp, b + 1));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(XA_D(xp, b)), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(XA_D(xp, b + 1)), _mm256_cvtepi32_ps(p1), acc1);
    }
    if (b < nb) {
        __m256i p0 = mul_sum_s8s8(_mm256_setzero_si256(), loadu32(q + 32 * b), XA_QS(xp, b));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(XA_D(xp, b)), _mm256_cvtepi32_ps(p0), acc0);
    }
    return f32_at(w) * hsum8(_mm256_add_ps(acc0, acc1));
}

/* int8_ch_asym / int8_t_asym (head f32 d, f32 m, uint8 codes): the codes shifted to signed
 * (q - 128, one xor) so both ISAs take the s8 x s8 path; x = m + d*q = (m + 128 d) + d*(q-128),
 * the constant through the activation sums s. */
static float int8_asym_dot(int64_t n, const void *w, const void *xa) {
    const uint8_t *q = (const uint8_t *)w + SK_HEAD_DM, *xp = xa;
    const float d = f32_at(w), m = f32_at((const uint8_t *)w + 4);
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    const int64_t nb = n / 32;
    __m256 acc = _mm256_setzero_ps();
    float ssum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        __m256i ws = _mm256_xor_si256(loadu32(q + 32 * b), flip);
        __m256i p = mul_sum_s8s8(_mm256_setzero_si256(), ws, XA_QS(xp, b));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(XA_D(xp, b)), _mm256_cvtepi32_ps(p), acc);
        ssum += XA_S(xp, b);
    }
    return d * hsum8(acc) + (m + 128.0f * d) * ssum;
}

/* int4 groups of 64 and 128 (sym {f16 d; qs}, asym {f16 d; f16 m; qs}): 32 bytes of codes at
 * a time; their low nibbles are one activation block, their high nibbles the block g/64
 * further (element e of a group is in byte e % (g/2)). Per group: v = sum_a d_x[a] *
 * sum(q * xq) over its g/32 activation blocks, acc += d_w * v; the offset (-8 d_w or m) times
 * the sum of the blocks' s. The groups of 32 have q4_0's / q4_1's layout (their kernels). */
SK_INLINE float int4_gdot(int64_t n, const uint8_t *w, const uint8_t *xp, const int g,
                          const int asym) {
    const size_t head = asym ? 4 : 2, bsz = head + (size_t)g / 2;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    float off = 0.0f;
    for (int64_t b = 0; b < n / g; b++, w += bsz, xp += (size_t)(g / 32) * XA_SZ) {
        const uint8_t *qs = w + head;
        __m256 v = _mm256_setzero_ps();
        float ss = 0.0f;
        #pragma GCC unroll 2
        for (int c = 0; c < g / 64; c++) {
            __m256i q = loadu32(qs + 32 * c);
            __m256i lo = _mm256_and_si256(q, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            const int alo = c, ahi = c + g / 64;
            __m256i plo = mul_sum_u8s8(_mm256_setzero_si256(), lo, XA_QS(xp, alo));
            __m256i phi = mul_sum_u8s8(_mm256_setzero_si256(), hi, XA_QS(xp, ahi));
            v = _mm256_fmadd_ps(_mm256_set1_ps(XA_D(xp, alo)), _mm256_cvtepi32_ps(plo), v);
            v = _mm256_fmadd_ps(_mm256_set1_ps(XA_D(xp, ahi)), _mm256_cvtepi32_ps(phi), v);
            ss += XA_S(xp, alo) + XA_S(xp, ahi);
        }
        const float d = f16(w);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), v, acc);
        off += (asym ? f16(w + 2) : -8.0f * d) * ss;
    }
    return hsum8(acc) + off;
}

static float int4_g64_dot(int64_t n, const void *w, const void *xa) {
    return int4_gdot(n, w, xa, 64, 0);
}
static float int4_g128_dot(int64_t n, const void *w, const void *xa) {
    return int4_gdot(n, w, xa, 128, 0);
}
static float int4_g64_asym_dot(int64_t n, const void *w, const void *xa) {
    return int4_gdot(n, w, xa, 64, 1);
}
static float int4_g128_asym_dot(int64_t n, const void *w, const void *xa) {
    return int4_gdot(n, w, xa, 128, 1);
}

/* w8a8 / w8a8_static (head f32 d [, f32 a]) x sk_act_i8: int32 lanes per chunk of 2^16
 * elements (no overflow), chunks summed in int64; a tail of n % 32 through a zero-padded copy;
 * one scale product d * d_x at the end. */
SK_INLINE float w8a8_dot_impl(int64_t n, const uint8_t *row, size_t head, const uint8_t *xa) {
    const uint8_t *q = row + head, *x = xa + sizeof(sk_act_i8);
    int64_t isum = 0, i = 0;
    while (i + 32 <= n) {
        const int64_t end = n - (n - i) % 32 < i + 65536 ? n - (n - i) % 32 : i + 65536;
        __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
        for (; i + 64 <= end; i += 64) {
            a0 = mul_sum_s8s8(a0, loadu32(q + i), loadu32(x + i));
            a1 = mul_sum_s8s8(a1, loadu32(q + i + 32), loadu32(x + i + 32));
        }
        for (; i < end; i += 32) a0 = mul_sum_s8s8(a0, loadu32(q + i), loadu32(x + i));
        isum += hsum8i(_mm256_add_epi32(a0, a1));
    }
    if (i < n) {
        uint8_t tq[32] = {0}, tx[32] = {0};
        memcpy(tq, q + i, (size_t)(n - i));
        memcpy(tx, x + i, (size_t)(n - i));
        isum += hsum8i(mul_sum_s8s8(_mm256_setzero_si256(), loadu32(tq), loadu32(tx)));
    }
    return (float)isum * (f32_at(row) * f32_at(xa + offsetof(sk_act_i8, d)));
}

static float w8a8_dot(int64_t n, const void *w, const void *xa) {
    return w8a8_dot_impl(n, w, SK_HEAD_D, xa);
}

static float w8a8_static_dot(int64_t n, const void *w, const void *xa) {
    return w8a8_dot_impl(n, w, SK_HEAD_DM, xa);
}

/* nf4 (blocks {f16 d; qs[32]}) and nf4_dq (head f32 D; blocks {u8 s; qs[32]}) x f32: the codes
 * dequantized in registers through two 8-entry tables (permutevar8x32 on the low 3 bits of
 * the code, bit 3 choosing the table), times x, summed per block, times the block scale. Byte
 * j of a block holds element j (low nibble) and j + 32 (high). */
SK_INLINE __m256 nf4_lookup8(__m256i code, __m256 t0, __m256 t1) {
    __m256 lo = _mm256_permutevar8x32_ps(t0, code), hi = _mm256_permutevar8x32_ps(t1, code);
    return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(code, 28)));
}

SK_INLINE __m256 nf4_block8(const uint8_t *qs, const float *x, __m256 t0, __m256 t1) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    #pragma GCC unroll 4
    for (int k = 0; k < 32; k += 8) {
        __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qs + k)));
        s0 = _mm256_fmadd_ps(nf4_lookup8(v, t0, t1), _mm256_loadu_ps(x + k), s0);
        s1 = _mm256_fmadd_ps(nf4_lookup8(_mm256_srli_epi32(v, 4), t0, t1),
                             _mm256_loadu_ps(x + 32 + k), s1);
    }
    return _mm256_add_ps(s0, s1);
}

static float nf4_dot(int64_t n, const void *w, const void *xa) {
    const uint8_t *p = w;
    const float *x = xa;
    const __m256 t0 = _mm256_loadu_ps(sk_nf4_values), t1 = _mm256_loadu_ps(sk_nf4_values + 8);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / SK_QK_NF4; b++, p += sizeof(sk_block_nf4), x += SK_QK_NF4)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(p)), nf4_block8(p + 2, x, t0, t1), acc);
    return hsum8(acc);
}

static float nf4_dq_dot(int64_t n, const void *w, const void *xa) {
    const uint8_t *p = (const uint8_t *)w + SK_HEAD_NF4D;
    const float *x = xa, D = f32_at(w);
    const __m256 t0 = _mm256_loadu_ps(sk_nf4_values), t1 = _mm256_loadu_ps(sk_nf4_values + 8);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / SK_QK_NF4; b++, p += sizeof(sk_block_nf4_dq), x += SK_QK_NF4)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(D * (float)p[0]), nf4_block8(p + 1, x, t0, t1), acc);
    return hsum8(acc);
}

/* palettes (palette.h) x f32: the group's palette read once per row into registers (pal16:
 * two 8-entry tables, permutevar8x32 on the low 3 bits, bit 3 choosing the table, as nf4;
 * pal4: one table; pal256: a 256-entry table on the stack, gathered), times x, in 8 lanes. */
/* The palette of the row at w as 16 floats (entries past the group's g rows 0): the group's
 * heads' f16 gathered, widened with vcvtph2ps (exact, as sk_pal_table's sk_f16_to_f32). */
SK_INLINE void pal_lut(const void *w, int k, int block_bytes, float *lut) {
    const uint8_t *r = w;
    const int j = r[2], g = r[3] + 1 > k ? k : r[3] + 1;
    uint16_t nb;
    memcpy(&nb, r + 4, 2);
    const uint64_t rb = SK_HEAD_PAL + (uint64_t)nb * (uint64_t)block_bytes;
    const uint8_t *base = r - (uint64_t)j * rb;
    uint16_t h[256];
    for (int e = 0; e < g; e++) memcpy(&h[e], base + (uint64_t)e * rb, 2);
    for (int e = g; e < (k + 7) / 8 * 8; e++) h[e] = 0;
    for (int e = 0; e < k; e += 8)
        _mm256_storeu_ps(lut + e, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + e))));
}

SK_INLINE void pal_lut16(const void *w, float *lut) { pal_lut(w, 16, 16, lut); }

static float pal16_dot(int64_t n, const void *w, const void *xa) {
    float lut[16];
    pal_lut16(w, lut);
    const __m256 t0 = _mm256_loadu_ps(lut), t1 = _mm256_loadu_ps(lut + 8);
    const uint8_t *b = (const uint8_t *)w + SK_HEAD_PAL;
    const float *x = xa;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += SK_QK_PAL, b += 16, x += SK_QK_PAL) {
        __m256i v0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)b));
        __m256i v1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b + 8)));
        s0 = _mm256_fmadd_ps(nf4_lookup8(v0, t0, t1), _mm256_loadu_ps(x), s0);
        s1 = _mm256_fmadd_ps(nf4_lookup8(v1, t0, t1), _mm256_loadu_ps(x + 8), s1);
        s2 = _mm256_fmadd_ps(nf4_lookup8(_mm256_srli_epi32(v0, 4), t0, t1),
                             _mm256_loadu_ps(x + 16), s2);
        s3 = _mm256_fmadd_ps(nf4_lookup8(_mm256_srli_epi32(v1, 4), t0, t1),
                             _mm256_loadu_ps(x + 24), s3);
    }
    return hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

static float pal4_dot(int64_t n, const void *w, const void *xa) {
    float lut[8];
    pal_lut(w, 4, 8, lut); /* 8 entries: the last 4 zero */
    const __m256 t0 = _mm256_loadu_ps(lut);
    const __m256i three = _mm256_set1_epi32(3);
    const uint8_t *b = (const uint8_t *)w + SK_HEAD_PAL;
    const float *x = xa;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += SK_QK_PAL, b += 8, x += SK_QK_PAL) {
        __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)b));
        s0 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(t0, _mm256_and_si256(v, three)),
                             _mm256_loadu_ps(x), s0);
        s1 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(
                                 t0, _mm256_and_si256(_mm256_srli_epi32(v, 2), three)),
                             _mm256_loadu_ps(x + 8), s1);
        s0 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(
                                 t0, _mm256_and_si256(_mm256_srli_epi32(v, 4), three)),
                             _mm256_loadu_ps(x + 16), s0);
        s1 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(t0, _mm256_srli_epi32(v, 6)),
                             _mm256_loadu_ps(x + 24), s1);
    }
    return hsum8(_mm256_add_ps(s0, s1));
}

static float pal256_dot(int64_t n, const void *w, const void *xa) {
    float lut[256];
    pal_lut(w, 256, 32, lut);
    const uint8_t *b = (const uint8_t *)w + SK_HEAD_PAL;
    const float *x = xa;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 16, b += 16, x += 16) {
        __m256i v0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)b));
        __m256i v1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b + 8)));
        s0 = _mm256_fmadd_ps(_mm256_i32gather_ps(lut, v0, 4), _mm256_loadu_ps(x), s0);
        s1 = _mm256_fmadd_ps(_mm256_i32gather_ps(lut, v1, 4), _mm256_loadu_ps(x + 8), s1);
    }
    return hsum8(_mm256_add_ps(s0, s1));
}

/* ==== activation quantizers (byte-identical to qdot.c's references) ======================== */

/* roundf (half away from zero) of 8 lanes, exactly: truncate, then step away from zero when
 * the dropped fraction is >= 0.5 (v - trunc(v) is exact) */
SK_INLINE __m256 round_away(__m256 v) {
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0f));
    __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
    __m256 step = _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ),
                                _mm256_or_ps(sign, _mm256_set1_ps(1.0f)));
    return _mm256_add_ps(t, step);
}

SK_INLINE __m256 abs8(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

SK_INLINE float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 32 floats / d -> 32 int8 (roundf, clamp +-127; all 0 when d == 0); returns sum(q) */
SK_INLINE int quant32(const float *x, float d, int8_t *q) {
    if (d == 0.0f) {
        memset(q, 0, 32);
        return 0;
    }
    const __m256 vd = _mm256_set1_ps(d), lim = _mm256_set1_ps(127.0f);
    __m256i i[4];
    #pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        __m256 v = round_away(_mm256_div_ps(_mm256_loadu_ps(x + 8 * k), vd));
        v = _mm256_max_ps(_mm256_min_ps(v, lim), _mm256_sub_ps(_mm256_setzero_ps(), lim));
        i[k] = _mm256_cvttps_epi32(v);
    }
    __m256i sum = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
    /* packs interleave 128-bit lanes: 0 1 4 5 2 3 6 7 (units of 4) -> undo with a permute */
    __m256i p16a = _mm256_packs_epi32(i[0], i[1]), p16b = _mm256_packs_epi32(i[2], i[3]);
    __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, p8);
    return hsum8i(sum);
}

SK_INLINE float absmax(const float *x, int64_t n) {
    __m256 m = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, abs8(_mm256_loadu_ps(x + i)));
    float r = hmax8(m);
    for (; i < n; i++) r = fmaxf(r, fabsf(x[i]));
    return r;
}

static void act_q8_32(const float *x, int64_t n, void *dst, float static_scale) {
    (void)static_scale;
    uint8_t *out = dst;
    for (int64_t b = 0; b < n / 32; b++) {
        sk_act_q8_32 blk;
        blk.d = absmax(x + 32 * b, 32) / 127.0f;
        blk.s = blk.d * (float)quant32(x + 32 * b, blk.d, blk.qs);
        memcpy(out + b * sizeof blk, &blk, sizeof blk);
    }
}

static void act_i8(const float *x, int64_t n, void *dst, float d) {
    int8_t *q = (int8_t *)dst + sizeof(sk_act_i8);
    sk_act_i8 h = {.d = d, .sum = 0};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) h.sum += quant32(x + i, d, q + i);
    if (i < n) {
        float tmp[32] = {0};
        int8_t qt[32];
        memcpy(tmp, x + i, (size_t)(n - i) * sizeof(float));
        h.sum += quant32(tmp, d, qt); /* zero padding adds 0 */
        memcpy(q + i, qt, (size_t)(n - i));
    }
    memcpy(dst, &h, sizeof h);
}

static void act_i8_token(const float *x, int64_t n, void *dst, float static_scale) {
    (void)static_scale;
    act_i8(x, n, dst, absmax(x, n) / 127.0f);
}

static void act_i8_static(const float *x, int64_t n, void *dst, float static_scale) {
    if (static_scale > 0.0f) act_i8(x, n, dst, static_scale);
    else act_i8_token(x, n, dst, 0.0f);
}

/* ggml's quantize_row_q8_K_ref: iscale = -127 / (the signed value of largest magnitude, the
 * first one on ties), q = nearest-even(iscale * x) capped at 127 (vcvtps2dq rounds to even
 * like ggml's nearest_int), bsums of 16, d = 1 / iscale */
static void act_q8_K(const float *x, int64_t n, void *dst, float static_scale) {
    (void)static_scale;
    uint8_t *out = dst;
    for (int64_t b = 0; b < n / SK_QK_K; b++) {
        const float *xb = x + b * SK_QK_K;
        block_q8_K blk;
        memset(&blk, 0, sizeof blk);
        float amax = absmax(xb, SK_QK_K);
        if (amax != 0.0f) {
            int first = 0;
            while (fabsf(xb[first]) != amax) first++;
            const float iscale = -127.0f / xb[first];
            const __m256 vi = _mm256_set1_ps(iscale);
            for (int k = 0; k < SK_QK_K; k += 32) {
                __m256i i[4];
                _Pragma("GCC unroll 4") for (int u = 0; u < 4; u++)
                    i[u] = _mm256_min_epi32(
                        _mm256_cvtps_epi32(_mm256_mul_ps(vi, _mm256_loadu_ps(xb + k + 8 * u))),
                        _mm256_set1_epi32(127));
                __m256i p8 = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]),
                                                _mm256_packs_epi32(i[2], i[3]));
                p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
                _mm256_storeu_si256((__m256i *)(blk.qs + k), p8);
                /* sums of 16 */
                const __m256i ones = _mm256_set1_epi16(1);
                __m256i lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(p8));
                __m256i hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(p8, 1));
                blk.bsums[k / 16] = (int16_t)hsum8i(_mm256_madd_epi16(lo, ones));
                blk.bsums[k / 16 + 1] = (int16_t)hsum8i(_mm256_madd_epi16(hi, ones));
            }
            blk.d = 1 / iscale;
        }
        memcpy(out + b * sizeof blk, &blk, sizeof blk);
    }
}

/* ==== 2:4 sparse x f32 (sparse24.c) ========================================================== */

/* The 8 activations under values 8h .. 8h + 7 of a block (groups 4h .. 4h + 3, elements 16h ..
 * 16h + 15): lane i takes element 4*(i/2) + p_i of the 16; vpermps reads the low 3 bits of its
 * index, so lanes 0-3 pick from x[0..8) and lanes 4-7 (indices 8..15) from x[8..16). */
SK_INLINE __m256 s24_gather8(uint32_t pos16, const float *x) {
    const __m256i sh = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256i base = _mm256_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12);
    __m256i idx = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)pos16), sh),
                                   _mm256_set1_epi32(3));
    idx = _mm256_add_epi32(idx, base);
    __m256 lo = _mm256_permutevar8x32_ps(_mm256_loadu_ps(x), idx);
    __m256 hi = _mm256_permutevar8x32_ps(_mm256_loadu_ps(x + 8), idx);
    return _mm256_blend_ps(lo, hi, 0xF0);
}

SK_INLINE uint32_t s24_pos(const uint8_t *b) {
    uint32_t p;
    memcpy(&p, b, 4);
    return p;
}

static float sparse24_f16_dot(int64_t n, const void *w, const void *xa) {
    const uint8_t *b = w;
    const float *x = xa;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (int64_t k = 0; k < n; k += SK_QK_S24, b += SK_S24_F16_BYTES, x += SK_QK_S24) {
        uint32_t pos = s24_pos(b);
        __m256 v0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + 4)));
        __m256 v1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + 20)));
        a0 = _mm256_fmadd_ps(v0, s24_gather8(pos & 0xFFFF, x), a0);
        a1 = _mm256_fmadd_ps(v1, s24_gather8(pos >> 16, x + 16), a1);
    }
    return hsum8(_mm256_add_ps(a0, a1));
}

static float sparse24_i8_dot(int64_t n, const void *w, const void *xa) {
    const uint8_t *r = w;
    const float d = f32_at(r);
    const uint8_t *b = r + SK_HEAD_D;
    const float *x = xa;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (int64_t k = 0; k < n; k += SK_QK_S24, b += SK_S24_I8_BYTES, x += SK_QK_S24) {
        uint32_t pos = s24_pos(b);
        __m128i q = _mm_loadu_si128((const __m128i *)(b + 4)); /* 16 bytes: q */
        __m256 v0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
        __m256 v1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(q, q)));
        a0 = _mm256_fmadd_ps(v0, s24_gather8(pos & 0xFFFF, x), a0);
        a1 = _mm256_fmadd_ps(v1, s24_gather8(pos >> 16, x + 16), a1);
    }
    return d * hsum8(_mm256_add_ps(a0, a1));
}

/* ==== unstructured sparse x f32 (sparse_bm.c) ================================================ */

/* 8 inputs per step: byte m of the bitmap; its popcount(m) values (the next slots) are loaded
 * compact, converted, and moved to their lanes by vpermps with the indices sk_sbm_idx8[m]
 * (lane i: the set bits of m below i; one vpmovzxbd from the table), the lanes of unset bits
 * zeroed by an AND with the lane mask of m. Rows hold at most n/2 slots, so the last steps of
 * a row copy their values to a zeroed buffer instead of loading 8 slots past the row's end. */
SK_INLINE __m256 sbm_expand8(unsigned m, __m256 compact) {
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)&sk_sbm_idx8[m]));
    __m256i on = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)m), bit), bit);
    return _mm256_and_ps(_mm256_permutevar8x32_ps(compact, idx), _mm256_castsi256_ps(on));
}

static float sparse_f16_dot(int64_t n, const void *w, const void *xa) {
    const uint8_t *bm = (const uint8_t *)w + SK_SBM_HEAD_F16, *v = bm + n / 8;
    const int64_t cap = n / 2;
    const float *x = xa;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t s = 0;
    for (int64_t k = 0; k < n; k += 16, x += 16) {
        const unsigned m0 = bm[k / 8], m1 = bm[k / 8 + 1];
        const int c0 = __builtin_popcount(m0);
        __m128i h0, h1;
        if (s + 16 <= cap) {
            h0 = _mm_loadu_si128((const __m128i *)(v + 2 * s));
            h1 = _mm_loadu_si128((const __m128i *)(v + 2 * (s + c0)));
        } else {
            uint16_t t[24] = {0};
            memcpy(t, v + 2 * s, (size_t)(cap - s) * 2);
            h0 = _mm_loadu_si128((const __m128i *)t);
            h1 = _mm_loadu_si128((const __m128i *)(t + c0));
        }
        a0 = _mm256_fmadd_ps(sbm_expand8(m0, _mm256_cvtph_ps(h0)), _mm256_loadu_ps(x), a0);
        a1 = _mm256_fmadd_ps(sbm_expand8(m1, _mm256_cvtph_ps(h1)), _mm256_loadu_ps(x + 8), a1);
        s += c0 + __builtin_popcount(m1);
    }
    return hsum8(_mm256_add_ps(a0, a1));
}

static float sparse_i8_dot(int64_t n, const void *w, const void *xa) {
    const uint8_t *r = w, *bm = r + SK_SBM_HEAD_I8, *v = bm + n / 8;
    const int64_t cap = n / 2;
    const float d = f32_at(r + 8);
    const float *x = xa;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t s = 0;
    for (int64_t k = 0; k < n; k += 16, x += 16) {
        const unsigned m0 = bm[k / 8], m1 = bm[k / 8 + 1];
        const int c0 = __builtin_popcount(m0);
        __m128i q0, q1;
        if (s + 16 <= cap) {
            q0 = _mm_loadl_epi64((const __m128i *)(v + s));
            q1 = _mm_loadl_epi64((const __m128i *)(v + s + c0));
        } else {
            uint8_t t[24] = {0};
            memcpy(t, v + s, (size_t)(cap - s));
            q0 = _mm_loadl_epi64((const __m128i *)t);
            q1 = _mm_loadl_epi64((const __m128i *)(t + c0));
        }
        __m256 v0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q0));
        __m256 v1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q1));
        a0 = _mm256_fmadd_ps(sbm_expand8(m0, v0), _mm256_loadu_ps(x), a0);
        a1 = _mm256_fmadd_ps(sbm_expand8(m1, v1), _mm256_loadu_ps(x + 8), a1);
        s += c0 + __builtin_popcount(m1);
    }
    return d * hsum8(_mm256_add_ps(a0, a1));
}

/* ==== lookups ================================================================================ */

static sk_vec_dot_fn qdot_lookup(shrink_dtype t) {
    switch (t) {
    case SHRINK_DTYPE_Q8_0: return q8_0_dot;
    case SHRINK_DTYPE_Q4_0: return q4_0_dot;
    case SHRINK_DTYPE_Q4_1: return q4_1_dot;
    case SHRINK_DTYPE_Q5_0: return q5_0_dot;
    case SHRINK_DTYPE_Q5_1: return q5_1_dot;
    case SHRINK_DTYPE_Q4_K: return q4_K_dot;
    case SHRINK_DTYPE_Q5_K: return q5_K_dot;
    case SHRINK_DTYPE_Q6_K: return q6_K_dot;
    case SHRINK_DTYPE_Q2_K: return q2_K_dot;
    case SHRINK_DTYPE_Q3_K: return q3_K_dot;
    case SHRINK_DTYPE_IQ4_NL: return iq4_nl_dot;
    case SHRINK_DTYPE_INT8_CH:
    case SHRINK_DTYPE_INT8_T:         return int8_dot;
    case SHRINK_DTYPE_INT8_CH_ASYM:
    case SHRINK_DTYPE_INT8_T_ASYM:    return int8_asym_dot;
    case SHRINK_DTYPE_INT4_G32:       return q4_0_dot; /* the same block and formula */
    case SHRINK_DTYPE_INT4_G64:       return int4_g64_dot;
    case SHRINK_DTYPE_INT4_G128:      return int4_g128_dot;
    case SHRINK_DTYPE_INT4_G32_ASYM:  return q4_1_dot; /* the same block and formula */
    case SHRINK_DTYPE_INT4_G64_ASYM:  return int4_g64_asym_dot;
    case SHRINK_DTYPE_INT4_G128_ASYM: return int4_g128_asym_dot;
    case SHRINK_DTYPE_NF4:            return nf4_dot;
    case SHRINK_DTYPE_NF4_DQ:         return nf4_dq_dot;
    case SHRINK_DTYPE_W8A8:           return w8a8_dot;
    case SHRINK_DTYPE_W8A8_STATIC:    return w8a8_static_dot;
    case SHRINK_DTYPE_SPARSE24_F16:   return sparse24_f16_dot;
    case SHRINK_DTYPE_SPARSE24_I8:    return sparse24_i8_dot;
    case SHRINK_DTYPE_PAL16:          return pal16_dot;
    case SHRINK_DTYPE_PAL4:           return pal4_dot;
    case SHRINK_DTYPE_PAL256:         return pal256_dot;
    case SHRINK_DTYPE_SPARSE_F16:     return sparse_f16_dot;
    case SHRINK_DTYPE_SPARSE_I8:      return sparse_i8_dot;
    default:                return NULL;
    }
}

static sk_act_quant_fn act_quant_lookup(sk_act_format f) {
    switch (f) {
    case SK_ACT_Q8_32:     return act_q8_32;
    case SK_ACT_Q8_K:      return act_q8_K;
    case SK_ACT_I8_TOKEN:  return act_i8_token;
    case SK_ACT_I8_STATIC: return act_i8_static;
    default:               return NULL;
    }
}

#endif /* SK_QDOT_X86_H */
