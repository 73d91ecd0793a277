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

sk_dequant_fn sk_dequant_avx512(shrink_dtype t) {
    return (unsigned)t < SHRINK_DTYPE_COUNT ? dq_table[t] : NULL;
}
