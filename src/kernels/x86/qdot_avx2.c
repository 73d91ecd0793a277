/*
 * qdot_avx2.c - the AVX2 quantized dot kernels and activation quantizers: qdot_x86.h over
 * maddubs/madd (compiled with -mavx2 -mfma -mf16c only). Specification: qdot.c.
 */
#include <immintrin.h>
#include <stdint.h>

/* u8 x s8 -> int16 pairs (no saturation for u <= 128, see qdot_x86.h) -> int32 quads */
static inline __attribute__((always_inline)) __m256i mul_sum_u8s8(__m256i acc, __m256i u,
                                                                  __m256i s) {
    __m256i p = _mm256_maddubs_epi16(u, s);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

static inline __attribute__((always_inline)) __m256i mul_sum_i16(__m256i acc, __m256i a,
                                                                 __m256i b) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
}

/* ggml's bytes_from_bits_32: each byte of the u32 spread over 8 bytes, one bit tested each */
static inline __attribute__((always_inline)) __m256i bits_0x10(const uint8_t *qh) {
    uint32_t x32;
    __builtin_memcpy(&x32, qh, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                           0x0101010101010101, 0x0000000000000000);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x32), shuf);
    bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    __m256i set = _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

#include "qdot_x86.h"

sk_vec_dot_fn sk_qdot_avx2(shrink_dtype t) { return qdot_lookup(t); }
sk_act_quant_fn sk_act_quant_avx2(sk_act_format f) { return act_quant_lookup(f); }
