/*
 * dequant_avx2.c - the AVX2 row dequantizers: dequant_x86.h with 16 lanes in two ymm (bytes
 * widened with vpmovsxbd / vpmovzxbd per 8, vcvtdq2ps, then the scale), the NF4 table looked
 * up with two vpermps per 8 codes (low and high half of the table, blended on bit 3).
 * Compiled with the AVX2 flags only. References and contract: kernels.h (sk_dequant_fn), the
 * dtype rows' to_f32 / to_f32_range.
 */
#include "dequant_x86.h"

/* lanes 8h .. 8h + 7 of q as f32 */
DQ_INLINE __m256 dq_widen8(dq_v16u8 q, int sgn, int h) {
    __m128i b = h ? _mm_unpackhi_epi64((__m128i)q, (__m128i)q) : (__m128i)q;
    __m256i w = sgn ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
    return _mm256_cvtepi32_ps(w);
}

DQ_INLINE void dq_put(float *dst, dq_v16u8 q, int sgn, float d) {
    const __m256 vd = _mm256_set1_ps(d);
    _mm256_storeu_ps(dst, _mm256_mul_ps(dq_widen8(q, sgn, 0), vd));
    _mm256_storeu_ps(dst + 8, _mm256_mul_ps(dq_widen8(q, sgn, 1), vd));
}

DQ_INLINE void dq_put_add(float *dst, dq_v16u8 q, int sgn, float d, float m) {
    const __m256 vd = _mm256_set1_ps(d), vm = _mm256_set1_ps(m);
    _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_mul_ps(dq_widen8(q, sgn, 0), vd), vm));
    _mm256_storeu_ps(dst + 8, _mm256_add_ps(_mm256_mul_ps(dq_widen8(q, sgn, 1), vd), vm));
}

DQ_INLINE void dq_lookup16(float *dst, const float tbl[16], dq_v16u8 q) {
    const __m256 t0 = _mm256_loadu_ps(tbl), t1 = _mm256_loadu_ps(tbl + 8);
    for (int h = 0; h < 2; h++) {
        __m256i i = _mm256_cvtepu8_epi32(h ? _mm_unpackhi_epi64((__m128i)q, (__m128i)q)
                                           : (__m128i)q);
        __m256 lo = _mm256_permutevar8x32_ps(t0, i), hi = _mm256_permutevar8x32_ps(t1, i);
        __m256 hi_sel = _mm256_castsi256_ps(_mm256_slli_epi32(i, 28)); /* bit 3 -> sign */
        _mm256_storeu_ps(dst + 8 * h, _mm256_blendv_ps(lo, hi, hi_sel));
    }
}

sk_dequant_fn sk_dequant_avx2(shrink_dtype t) {
    return (unsigned)t < SHRINK_DTYPE_COUNT ? dq_table[t] : NULL;
}
