/*
 * dequant_avx512.c - the AVX-512 row dequantizers: dequant_x86.h on zmm, the NF4 table looked
 * up with one vpermps per 16 codes. Compiled with the AVX-512 flags only. References and
 * contract: kernels.h (sk_dequant_fn), the dtype rows' to_f32 / to_f32_range.
 */
#include "dequant_x86.h"

DQ_INLINE void dq_lookup16(float *dst, const float tbl[16], dq_v16u8 q) {
    __m128i q8;
    memcpy(&q8, &q, sizeof q8);
    __m512 r = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(q8), _mm512_loadu_ps(tbl));
    _mm512_storeu_ps(dst, r);
}

sk_dequant_fn sk_dequant_avx512(shrink_dtype t) {
    return (unsigned)t < SHRINK_DTYPE_COUNT ? dq_table[t] : NULL;
}
