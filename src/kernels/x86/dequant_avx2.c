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

/* 8 lanes = groups 2c, 2c + 1 of the half h (values 8h .. 8h + 7 in v): lane j of group g
 * takes v[2g] where p_{2g} == j % 4, v[2g + 1] where p_{2g+1} == j % 4 (that one wins), else 0 */
DQ_INLINE __m256 dq_s24_8(__m256 v, uint32_t pos16, int c) {
    const __m256i jj = _mm256_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3);
    const __m256i sh0 = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    const __m256i i0 = _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2);
    const __m256i three = _mm256_set1_epi32(3), W = _mm256_set1_epi32((int)(pos16 >> (8 * c)));
    __m256i p0 = _mm256_and_si256(_mm256_srlv_epi32(W, sh0), three);
    __m256i p1 = _mm256_and_si256(_mm256_srlv_epi32(W, _mm256_add_epi32(sh0, _mm256_set1_epi32(2))),
                                  three);
    __m256i ic = _mm256_add_epi32(i0, _mm256_set1_epi32(4 * c));
    __m256 a = _mm256_permutevar8x32_ps(v, ic);
    __m256 b = _mm256_permutevar8x32_ps(v, _mm256_add_epi32(ic, _mm256_set1_epi32(1)));
    __m256 r = _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_cmpeq_epi32(p0, jj)));
    return _mm256_blendv_ps(r, b, _mm256_castsi256_ps(_mm256_cmpeq_epi32(p1, jj)));
}

DQ_INLINE void dq_s24(float *dst, uint32_t pos, const uint8_t *vals, int i8, float d) {
    for (int h = 0; h < 2; h++) {
        __m256 v;
        if (i8) {
            __m128i q = _mm_loadl_epi64((const __m128i *)(vals + 8 * h));
            v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), _mm256_set1_ps(d));
        } else {
            v = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(vals + 16 * h)));
        }
        uint32_t p16 = pos >> (16 * h);
        _mm256_storeu_ps(dst + 16 * h, dq_s24_8(v, p16, 0));
        _mm256_storeu_ps(dst + 16 * h + 8, dq_s24_8(v, p16, 1));
    }
}

sk_dequant_fn sk_dequant_avx2(shrink_dtype t) {
    return (unsigned)t < SHRINK_DTYPE_COUNT ? dq_table[t] : NULL;
}
