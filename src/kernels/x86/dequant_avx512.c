/*
 * dequant_avx512.c - the AVX-512 row dequantizers: dequant_x86.h with 16 lanes in one zmm
 * (bytes widened with vpmovsxbd / vpmovzxbd, vcvtdq2ps, then the scale), the NF4 table looked
 * up with one vpermps per 16 codes. Compiled with the AVX-512 flags only. References and
 * contract: kernels.h (sk_dequant_fn), the dtype rows' to_f32 / to_f32_range.
 */
#include "dequant_x86.h"

DQ_INLINE __m512 dq_widen(dq_v16u8 q, int sgn) {
    __m512i w = sgn ? _mm512_cvtepi8_epi32((__m128i)q) : _mm512_cvtepu8_epi32((__m128i)q);
    return _mm512_cvtepi32_ps(w);
}

DQ_INLINE void dq_put(float *dst, dq_v16u8 q, int sgn, float d) {
    _mm512_storeu_ps(dst, _mm512_mul_ps(dq_widen(q, sgn), _mm512_set1_ps(d)));
}

DQ_INLINE void dq_put_add(float *dst, dq_v16u8 q, int sgn, float d, float m) {
    __m512 p = _mm512_mul_ps(dq_widen(q, sgn), _mm512_set1_ps(d));
    _mm512_storeu_ps(dst, _mm512_add_ps(p, _mm512_set1_ps(m)));
}

DQ_INLINE void dq_lookup16(float *dst, const float tbl[16], dq_v16u8 q) {
    __m512 r = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32((__m128i)q), _mm512_loadu_ps(tbl));
    _mm512_storeu_ps(dst, r);
}

/* 16 lanes = groups 4c .. 4c + 3 (values in v): lane j of group g takes v[2g] where
 * p_{2g} == j % 4, v[2g + 1] where p_{2g+1} == j % 4 (that one wins), else 0 */
DQ_INLINE void dq_s24(float *dst, uint32_t pos, const uint8_t *vals, int i8, float d) {
    __m512 v = i8 ? _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                      _mm_loadu_si128((const __m128i *)vals))),
                                  _mm512_set1_ps(d))
                  : _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)vals));
    const __m512i jj = _mm512_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3);
    const __m512i g4 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    const __m512i three = _mm512_set1_epi32(3), W = _mm512_set1_epi32((int)pos);
    for (int c = 0; c < 2; c++) {
        __m512i g = _mm512_add_epi32(g4, _mm512_set1_epi32(4 * c));  /* group of each lane */
        __m512i sh0 = _mm512_slli_epi32(g, 2);                        /* bits of p_{2g}: 4g */
        __m512i p0 = _mm512_and_si512(_mm512_srlv_epi32(W, sh0), three);
        __m512i p1 = _mm512_and_si512(
            _mm512_srlv_epi32(W, _mm512_add_epi32(sh0, _mm512_set1_epi32(2))), three);
        __m512i i0 = _mm512_slli_epi32(g, 1);
        __m512 a = _mm512_permutexvar_ps(i0, v);
        __m512 b = _mm512_permutexvar_ps(_mm512_add_epi32(i0, _mm512_set1_epi32(1)), v);
        __m512 r = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(p0, jj), a);
        r = _mm512_mask_mov_ps(r, _mm512_cmpeq_epi32_mask(p1, jj), b);
        _mm512_storeu_ps(dst + 16 * c, r);
    }
}

sk_dequant_fn sk_dequant_avx512(shrink_dtype t) {
    return (unsigned)t < SHRINK_DTYPE_COUNT ? dq_table[t] : NULL;
}
