/*
 * qdot_avx512.c - the AVX-512 VNNI quantized dot kernels: qdot_x86.h over vpdpbusd /
 * vpdpwssd on 256-bit registers (AVX512_VNNI + VL; a product and its accumulation in one
 * instruction, no 16-bit stage) and a mask register for the 5th bits. Used only when the CPU
 * has AVX512_VNNI (sk_vec_dot_get). Compiled with the AVX-512 flags only. Specification: qdot.c.
 */
#include <immintrin.h>
#include <stdint.h>

static inline __attribute__((always_inline)) __m256i mul_sum_u8s8(__m256i acc, __m256i u,
                                                                  __m256i s) {
    return _mm256_dpbusd_epi32(acc, u, s);
}

static inline __attribute__((always_inline)) __m256i mul_sum_i16(__m256i acc, __m256i a,
                                                                 __m256i b) {
    return _mm256_dpwssd_epi32(acc, a, b);
}

static inline __attribute__((always_inline)) __m256i bits_0x10(const uint8_t *qh) {
    uint32_t x32;
    __builtin_memcpy(&x32, qh, 4);
    return _mm256_maskz_mov_epi8((__mmask32)x32, _mm256_set1_epi8(0x10));
}

#include "qdot_x86.h"

/* ---- zmm kernels: where 16 lanes pay (a table of 16 floats in one register, 64 int8) ---- */

/* nf4: vpermps takes the low 4 bits of each dword, so a zero-extended byte looks up its low
 * nibble directly and, shifted right by 4, its high nibble: 16 codes per lookup. The table
 * is scaled by the block's d first, so the lookups give the dequantized weights themselves
 * (d * NF4[q], the reference's values) and each of the four lookups is one FMA into its own
 * accumulator. */
SK_INLINE void nf4_block16(const uint8_t *qs, const float *x, __m512 lut, __m512 acc[4]) {
    __m512i v0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)qs));
    __m512i v1 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qs + 16)));
    acc[0] = _mm512_fmadd_ps(_mm512_permutexvar_ps(v0, lut), _mm512_loadu_ps(x), acc[0]);
    acc[1] = _mm512_fmadd_ps(_mm512_permutexvar_ps(v1, lut), _mm512_loadu_ps(x + 16), acc[1]);
    acc[2] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v0, 4), lut),
                             _mm512_loadu_ps(x + 32), acc[2]);
    acc[3] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v1, 4), lut),
                             _mm512_loadu_ps(x + 48), acc[3]);
}

static float nf4_dot_z(int64_t n, const void *w, const void *xa) {
    const uint8_t *p = w;
    const float *x = xa;
    const __m512 lut = _mm512_loadu_ps(sk_nf4_values);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    for (int64_t b = 0; b < n / SK_QK_NF4; b++, p += sizeof(sk_block_nf4), x += SK_QK_NF4)
        nf4_block16(p + 2, x, _mm512_mul_ps(_mm512_set1_ps(f16(p)), lut), acc);
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]),
                                              _mm512_add_ps(acc[2], acc[3])));
}

static float nf4_dq_dot_z(int64_t n, const void *w, const void *xa) {
    const uint8_t *p = (const uint8_t *)w + SK_HEAD_NF4D;
    const float *x = xa, D = f32_at(w);
    const __m512 lut = _mm512_loadu_ps(sk_nf4_values);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    for (int64_t b = 0; b < n / SK_QK_NF4; b++, p += sizeof(sk_block_nf4_dq), x += SK_QK_NF4)
        nf4_block16(p + 1, x, _mm512_mul_ps(_mm512_set1_ps(D * (float)p[0]), lut), acc);
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]),
                                              _mm512_add_ps(acc[2], acc[3])));
}

/* w8a8: 64 int8 per step; AVX-512 has no vpsignb, so x takes w's sign with a masked
 * subtraction (mask = w < 0); the tail with masked loads (zeros add nothing). int32 lanes per
 * chunk of 2^16 elements, chunks summed in int64. */
SK_INLINE float w8a8_dot_z(int64_t n, const uint8_t *row, size_t head, const uint8_t *xa) {
    const uint8_t *q = row + head, *x = xa + sizeof(sk_act_i8);
    int64_t isum = 0;
    for (int64_t c = 0; c < n; c += 65536) {
        const int64_t end = n - c < 65536 ? n : c + 65536;
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        int64_t i = c;
        for (; i + 128 <= end; i += 128) {
            __m512i w0 = _mm512_loadu_si512(q + i), w1 = _mm512_loadu_si512(q + i + 64);
            __m512i x0 = _mm512_loadu_si512(x + i), x1 = _mm512_loadu_si512(x + i + 64);
            x0 = _mm512_mask_sub_epi8(x0, _mm512_movepi8_mask(w0), _mm512_setzero_si512(), x0);
            x1 = _mm512_mask_sub_epi8(x1, _mm512_movepi8_mask(w1), _mm512_setzero_si512(), x1);
            a0 = _mm512_dpbusd_epi32(a0, _mm512_abs_epi8(w0), x0);
            a1 = _mm512_dpbusd_epi32(a1, _mm512_abs_epi8(w1), x1);
        }
        for (; i < end; i += 64) {
            __mmask64 m = end - i >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << (end - i)) - 1;
            __m512i w0 = _mm512_maskz_loadu_epi8(m, q + i), x0 = _mm512_maskz_loadu_epi8(m, x + i);
            x0 = _mm512_mask_sub_epi8(x0, _mm512_movepi8_mask(w0), _mm512_setzero_si512(), x0);
            a0 = _mm512_dpbusd_epi32(a0, _mm512_abs_epi8(w0), x0);
        }
        isum += _mm512_reduce_add_epi32(_mm512_add_epi32(a0, a1));
    }
    return (float)isum * (f32_at(row) * f32_at(xa + offsetof(sk_act_i8, d)));
}

static float w8a8_dot_zmm(int64_t n, const void *w, const void *xa) {
    return w8a8_dot_z(n, w, SK_HEAD_D, xa);
}

static float w8a8_static_dot_zmm(int64_t n, const void *w, const void *xa) {
    return w8a8_dot_z(n, w, SK_HEAD_DM, xa);
}

/* 2:4 sparse: one vpermt2ps picks the 16 activations under a block's 16 values from its 32
 * (index 4*(i/2) + p_i, computed from the positions word with one variable shift). */
SK_INLINE __m512 s24_gather16(uint32_t pos, const float *x) {
    const __m512i sh = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i base = _mm512_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28);
    __m512i idx = _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32((int)pos), sh),
                                   _mm512_set1_epi32(3));
    idx = _mm512_add_epi32(idx, base);
    return _mm512_permutex2var_ps(_mm512_loadu_ps(x), idx, _mm512_loadu_ps(x + 16));
}

static float sparse24_f16_dot_z(int64_t n, const void *w, const void *xa) {
    const uint8_t *b = w;
    const float *x = xa;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 2 * SK_QK_S24 <= n; k += 2 * SK_QK_S24, b += 2 * SK_S24_F16_BYTES, x += 64) {
        __m512 v0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + 4)));
        __m512 v1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + 40)));
        a0 = _mm512_fmadd_ps(v0, s24_gather16(s24_pos(b), x), a0);
        a1 = _mm512_fmadd_ps(v1, s24_gather16(s24_pos(b + 36), x + 32), a1);
    }
    if (k < n) {
        __m512 v0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + 4)));
        a0 = _mm512_fmadd_ps(v0, s24_gather16(s24_pos(b), x), a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

static float sparse24_i8_dot_z(int64_t n, const void *w, const void *xa) {
    const uint8_t *r = w;
    const float d = f32_at(r);
    const uint8_t *b = r + SK_HEAD_D;
    const float *x = xa;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 2 * SK_QK_S24 <= n; k += 2 * SK_QK_S24, b += 2 * SK_S24_I8_BYTES, x += 64) {
        __m512 v0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 4))));
        __m512 v1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 24))));
        a0 = _mm512_fmadd_ps(v0, s24_gather16(s24_pos(b), x), a0);
        a1 = _mm512_fmadd_ps(v1, s24_gather16(s24_pos(b + 20), x + 32), a1);
    }
    if (k < n) {
        __m512 v0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 4))));
        a0 = _mm512_fmadd_ps(v0, s24_gather16(s24_pos(b), x), a0);
    }
    return d * _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

/* pal16: the 16-entry palette in one zmm, vpermps on the low 4 bits of each dword (the high
 * nibble shifted down for elements 16..31), 16 lanes per step */
static float pal16_dot_z(int64_t n, const void *w, const void *xa) {
    float lut[16];
    pal_lut16(w, lut);
    const __m512 t = _mm512_loadu_ps(lut);
    const uint8_t *b = (const uint8_t *)w + SK_HEAD_PAL;
    const float *x = xa;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 2 * SK_QK_PAL <= n; i += 2 * SK_QK_PAL, b += 32, x += 2 * SK_QK_PAL) {
        __m512i v0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)b));
        __m512i v1 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + 16)));
        s0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v0, t), _mm512_loadu_ps(x), s0);
        s1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v0, 4), t),
                             _mm512_loadu_ps(x + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v1, t), _mm512_loadu_ps(x + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v1, 4), t),
                             _mm512_loadu_ps(x + 48), s3);
    }
    if (i < n) {
        __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)b));
        s0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v, t), _mm512_loadu_ps(x), s0);
        s1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), t),
                             _mm512_loadu_ps(x + 16), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

/* unstructured sparse: 16 inputs per step, mask m = 16 bits of the bitmap. Its popcount(m)
 * values (the next slots) are loaded compact (a plain load while 32 more slots remain in the
 * row, else a masked load that reads nothing past them) and vexpandps with zeroing mask m puts
 * them on their lanes (tried instead: vpermps with table indices, sk_sbm_idx8 as on AVX2 —
 * slower on Zen 4, bench/bench_sparse_dot.c) */
static float sparse_f16_dot_z(int64_t n, const void *w, const void *xa) {
    const uint8_t *bm = (const uint8_t *)w + SK_SBM_HEAD_F16;
    const uint16_t *v = (const uint16_t *)(bm + n / 8);
    const int64_t cap = n / 2;
    const float *x = xa;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t s = 0;
    for (int64_t k = 0; k < n; k += 32, x += 32) {
        uint32_t m;
        memcpy(&m, bm + k / 8, 4);
        const unsigned m0 = m & 0xFFFF, m1 = m >> 16;
        const int c0 = __builtin_popcount(m0), c1 = __builtin_popcount(m1);
        __m256i h0, h1;
        if (s + 32 <= cap) {
            h0 = _mm256_loadu_si256((const __m256i *)(v + s));
            h1 = _mm256_loadu_si256((const __m256i *)(v + s + c0));
        } else {
            h0 = _mm256_maskz_loadu_epi16((__mmask16)((1u << c0) - 1), v + s);
            h1 = _mm256_maskz_loadu_epi16((__mmask16)((1u << c1) - 1), v + s + c0);
        }
        a0 = _mm512_fmadd_ps(_mm512_maskz_expand_ps((__mmask16)m0, _mm512_cvtph_ps(h0)),
                             _mm512_loadu_ps(x), a0);
        a1 = _mm512_fmadd_ps(_mm512_maskz_expand_ps((__mmask16)m1, _mm512_cvtph_ps(h1)),
                             _mm512_loadu_ps(x + 16), a1);
        s += c0 + c1;
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

static float sparse_i8_dot_z(int64_t n, const void *w, const void *xa) {
    const uint8_t *r = w, *bm = r + SK_SBM_HEAD_I8;
    const int8_t *v = (const int8_t *)(bm + n / 8);
    const int64_t cap = n / 2;
    const float d = f32_at(r + 8);
    const float *x = xa;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t s = 0;
    for (int64_t k = 0; k < n; k += 32, x += 32) {
        uint32_t m;
        memcpy(&m, bm + k / 8, 4);
        const unsigned m0 = m & 0xFFFF, m1 = m >> 16;
        const int c0 = __builtin_popcount(m0), c1 = __builtin_popcount(m1);
        __m128i q0, q1;
        if (s + 32 <= cap) {
            q0 = _mm_loadu_si128((const __m128i *)(v + s));
            q1 = _mm_loadu_si128((const __m128i *)(v + s + c0));
        } else {
            q0 = _mm_maskz_loadu_epi8((__mmask16)((1u << c0) - 1), v + s);
            q1 = _mm_maskz_loadu_epi8((__mmask16)((1u << c1) - 1), v + s + c0);
        }
        __m512 v0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0));
        __m512 v1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1));
        a0 = _mm512_fmadd_ps(_mm512_maskz_expand_ps((__mmask16)m0, v0), _mm512_loadu_ps(x), a0);
        a1 = _mm512_fmadd_ps(_mm512_maskz_expand_ps((__mmask16)m1, v1), _mm512_loadu_ps(x + 16), a1);
        s += c0 + c1;
    }
    return d * _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

sk_vec_dot_fn sk_qdot_avx512(shrink_dtype t) {
    switch (t) {
    case SHRINK_DTYPE_SPARSE24_F16: return sparse24_f16_dot_z;
    case SHRINK_DTYPE_SPARSE24_I8:  return sparse24_i8_dot_z;
    case SHRINK_DTYPE_PAL16:       return pal16_dot_z;
    case SHRINK_DTYPE_SPARSE_F16:  return sparse_f16_dot_z;
    case SHRINK_DTYPE_SPARSE_I8:   return sparse_i8_dot_z;
    case SHRINK_DTYPE_NF4:         return nf4_dot_z;
    case SHRINK_DTYPE_NF4_DQ:      return nf4_dq_dot_z;
    case SHRINK_DTYPE_W8A8:        return w8a8_dot_zmm;
    case SHRINK_DTYPE_W8A8_STATIC: return w8a8_static_dot_zmm;
    default:                       return qdot_lookup(t);
    }
}
sk_act_quant_fn sk_act_quant_avx512(sk_act_format f) { return act_quant_lookup(f); }
