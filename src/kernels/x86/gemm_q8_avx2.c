/*
 * gemm_q8_avx2.c - the micro-kernel of the q8_0 / q4_0 prompt GEMM with AVX2 (compiled with
 * the AVX2 flags only). Contract: sk_q8_gemm in kernels.h; driver and specification: gemm_q8.c.
 *
 * As the AVX-512 kernel (one broadcast of a row's 4 weight bytes against a vector of tokens'
 * int8 of that group), with vpmaddubsw + vpmaddwd by ones in place of vpdpbusd. vpmaddubsw
 * saturates its 16-bit pair sums, so the unsigned operand must stay small:
 *   q4_0: the nibbles (0..15) go in as they are, the accumulator starts at -8 * sum x;
 *   q8_0: |w| (0..128, -128 included) unsigned and x with w's sign (vpsignb), so pairs stay
 *         within 2 * 128 * 127 < 2^15 and no correction is needed.
 * Tile: MR rows x 16 tokens (two ymm of 8). Exact integer block sums, then the reference's
 * f = (float)isum * (d_w * d_x), acc += f (no FMA).
 */
#include "../kernels.h"

#include <immintrin.h>

#define MR 2
#define NT 16
#define SK_INLINE static inline __attribute__((always_inline))

SK_INLINE __m256i bcast32(const uint8_t *p) {
    int32_t v;
    __builtin_memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* acc + sum of 4 products u8 x s8 per int32 lane (no saturation for the callers' ranges) */
SK_INLINE __m256i dp4(__m256i acc, __m256i u, __m256i s, __m256i ones) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), ones));
}

SK_INLINE void tile_impl(const int kind, int64_t nb, const uint8_t *w, uint64_t rb,
                         const int mrows, const int nv, const float *prep, int64_t preps,
                         const uint8_t *xp, float *out) {
    const size_t xblk = sk_q8g_xblock(kind, NT);
    const size_t bs = kind == SK_Q8G_Q8_0 ? 34 : 18;
    const __m256i ones = _mm256_set1_epi16(1), c0f = _mm256_set1_epi8(0x0F);
    __m256 acc[MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < mrows; i++)
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) acc[i][v] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *xb = xp + (size_t)b * xblk;
        const uint8_t *wb = w + (size_t)b * bs + 2;
        __m256i ci[MR][2];
        if (kind == SK_Q8G_Q8_0) {
#pragma GCC unroll 8
            for (int i = 0; i < mrows; i++)
#pragma GCC unroll 2
                for (int v = 0; v < nv; v++) ci[i][v] = _mm256_setzero_si256();
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++) {
                __m256i x[2];
#pragma GCC unroll 2
                for (int v = 0; v < nv; v++)
                    x[v] = _mm256_load_si256((const __m256i *)(xb + g * NT * 4 + 32 * v));
#pragma GCC unroll 8
                for (int i = 0; i < mrows; i++) {
                    const __m256i wv = bcast32(wb + i * rb + 4 * g);
                    const __m256i aw = _mm256_abs_epi8(wv);
#pragma GCC unroll 2
                    for (int v = 0; v < nv; v++)
                        ci[i][v] = dp4(ci[i][v], aw, _mm256_sign_epi8(x[v], wv), ones);
                }
            }
        } else {
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++) {
                __m256i corr = _mm256_sub_epi32(
                    _mm256_setzero_si256(),
                    _mm256_slli_epi32(_mm256_load_si256((const __m256i *)(xb + 32 * NT + 32 * v)), 3));
#pragma GCC unroll 8
                for (int i = 0; i < mrows; i++) ci[i][v] = corr;
            }
#pragma GCC unroll 4
            for (int g = 0; g < 4; g++) {
                __m256i xl[2], xh[2];
#pragma GCC unroll 2
                for (int v = 0; v < nv; v++) {
                    xl[v] = _mm256_load_si256((const __m256i *)(xb + g * NT * 4 + 32 * v));
                    xh[v] = _mm256_load_si256((const __m256i *)(xb + (g + 4) * NT * 4 + 32 * v));
                }
#pragma GCC unroll 8
                for (int i = 0; i < mrows; i++) {
                    const __m256i full = bcast32(wb + i * rb + 4 * g);
                    const __m256i lo = _mm256_and_si256(full, c0f);
                    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(full, 4), c0f);
#pragma GCC unroll 2
                    for (int v = 0; v < nv; v++) {
                        ci[i][v] = dp4(ci[i][v], lo, xl[v], ones);
                        ci[i][v] = dp4(ci[i][v], hi, xh[v], ones);
                    }
                }
            }
        }
        __m256 dx[2];
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) dx[v] = _mm256_load_ps((const float *)(xb + 36 * NT) + 8 * v);
#pragma GCC unroll 8
        for (int i = 0; i < mrows; i++) {
            const __m256 d = _mm256_set1_ps(prep[i * preps + b]);
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++)
                acc[i][v] = _mm256_add_ps(
                    acc[i][v], _mm256_mul_ps(_mm256_cvtepi32_ps(ci[i][v]), _mm256_mul_ps(d, dx[v])));
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < mrows; i++)
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) _mm256_storeu_ps(out + i * NT + 8 * v, acc[i][v]);
}

_Static_assert(sk_q8g_xblock(SK_Q8G_Q8_0, NT) % 32 == 0, "x tile blocks must keep the 32-byte alignment");

static void tile_avx2(sk_q8g_kind kind, int64_t nb, const uint8_t *w, uint64_t rb, int mrows,
                      int ntv, const float *prep, int64_t preps, const uint8_t *xp, float *out) {
    const int nv = ntv > 8 ? 2 : 1; /* the second token vector only when it has tokens */
#define CASE(K, M, V)                                                                         \
    if (kind == K && mrows == M && nv == V) {                                                 \
        tile_impl(K, nb, w, rb, M, V, prep, preps, xp, out);                                      \
        return;                                                                               \
    }
#define ROWS(K, V) CASE(K, 1, V) CASE(K, 2, V)
    ROWS(SK_Q8G_Q8_0, 1) ROWS(SK_Q8G_Q8_0, 2) ROWS(SK_Q8G_Q4_0, 1) ROWS(SK_Q8G_Q4_0, 2)
#undef ROWS
#undef CASE
}

const sk_q8_gemm sk_q8_gemm_avx2 = {
    .name = "avx2", .mr = {MR, MR, 0}, .nt = NT, .tile = tile_avx2,
};
