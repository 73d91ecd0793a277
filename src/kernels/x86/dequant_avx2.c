/*
 * dequant_avx2.c - the AVX2 row dequantizers: dequant_x86.h on pairs of ymm, the NF4 table
 * looked up with two vpermps per 8 codes (low and high half of the table, blended on bit 3).
 * Compiled with the AVX2 flags only. References and contract: kernels.h (sk_dequant_fn), the
 * dtype rows' to_f32 / to_f32_range.
 */
#include "dequant_x86.h"

DQ_INLINE void dq_lookup16(float *dst, const float tbl[16], dq_v16u8 q) {
    __m128i q8;
    memcpy(&q8, &q, sizeof q8);
    const __m256 t0 = _mm256_loadu_ps(tbl), t1 = _mm256_loadu_ps(tbl + 8);
    for (int h = 0; h < 2; h++) {
        __m256i i = _mm256_cvtepu8_epi32(h ? _mm_srli_si128(q8, 8) : q8);
        __m256 lo = _mm256_permutevar8x32_ps(t0, i), hi = _mm256_permutevar8x32_ps(t1, i);
        __m256 hi_sel = _mm256_castsi256_ps(_mm256_slli_epi32(i, 28)); /* bit 3 -> sign */
        _mm256_storeu_ps(dst + 8 * h, _mm256_blendv_ps(lo, hi, hi_sel));
    }
}

sk_dequant_fn sk_dequant_avx2(shrink_dtype t) {
    return (unsigned)t < SHRINK_DTYPE_COUNT ? dq_table[t] : NULL;
}
