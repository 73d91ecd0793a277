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

sk_vec_dot_fn sk_qdot_avx512(shrink_dtype t) { return qdot_lookup(t); }
sk_act_quant_fn sk_act_quant_avx512(sk_act_format f) { return act_quant_lookup(f); }
