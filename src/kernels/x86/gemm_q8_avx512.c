/*
 * gemm_q8_avx512.c - the micro-kernel of the q8_0 / q4_0 prompt GEMM with AVX-512 VNNI
 * (compiled with the AVX-512 flags only; used only when the CPU has AVX512_VNNI).
 * Contract: sk_q8_gemm in kernels.h; driver and specification: gemm_q8.c.
 *
 * q4_K: tile_q4k below. The tile is MR rows x 32 tokens (two zmm of 16 tokens). Per 32-block: one int32
 * accumulator per (row, token vector) starts at the offset correction, then for each group of
 * 4 k the row's 4 weight bytes are broadcast to a zmm (vpbroadcastd) and vpdpbusd multiplies
 * them, unsigned, with the 16 tokens' 4 signed int8 of that group (the token tile):
 *   q8_0: the weights go in as w ^ 0x80 = w + 128 (0..255): sum (w + 128) x = sum w x +
 *         128 sum x, so the accumulator starts at -128 * (the token's sum of q for the block);
 *   q4_0: the nibbles go in as they are (0..15): sum (q - 8) x = sum q x - 8 sum x, the
 *         accumulator starts at -8 * sum x. One broadcast of 4 bytes gives the low nibbles
 *         (elements 4g..4g+3) and the high ones (16 + 4g..).
 * The block sum is exact in int32 (|isum| <= 32 * 255 * 127). Then, as the reference:
 * f = (float)isum * (d_w * d_x) and acc += f, mul and add (no FMA: the same bits).
 */
#include "../kernels.h"

#include <immintrin.h>

#define MR 4
#define NT 32
#define SK_INLINE static inline __attribute__((always_inline))

SK_INLINE __m512i bcast32(const uint8_t *p) {
    int32_t v;
    __builtin_memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

SK_INLINE void tile_impl(const int kind, int64_t nb, const uint8_t *w, uint64_t rb,
                         const int mrows, const int nv, const float *prep, int64_t preps,
                         const uint8_t *xp, float *out) {
    const size_t xblk = sk_q8g_xblock(kind, NT);
    const size_t bs = kind == SK_Q8G_Q8_0 ? 34 : 18;
    const int sh = kind == SK_Q8G_Q8_0 ? 7 : 3;
    const __m512i c80 = _mm512_set1_epi8((char)0x80), c0f = _mm512_set1_epi8(0x0F);
    __m512 acc[MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < mrows; i++)
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) acc[i][v] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *xb = xp + (size_t)b * xblk;
        const uint8_t *wb = w + (size_t)b * bs + 2;
        __m512i ci[MR][2];
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) {
            __m512i corr = _mm512_sub_epi32(
                _mm512_setzero_si512(),
                _mm512_slli_epi32(_mm512_load_si512(xb + 32 * NT + 64 * v), sh));
#pragma GCC unroll 8
            for (int i = 0; i < mrows; i++) ci[i][v] = corr;
        }
        if (kind == SK_Q8G_Q8_0) {
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++) {
                __m512i x[2];
#pragma GCC unroll 2
                for (int v = 0; v < nv; v++) x[v] = _mm512_load_si512(xb + g * NT * 4 + 64 * v);
#pragma GCC unroll 8
                for (int i = 0; i < mrows; i++) {
                    __m512i wv = _mm512_xor_si512(bcast32(wb + i * rb + 4 * g), c80);
#pragma GCC unroll 2
                    for (int v = 0; v < nv; v++) ci[i][v] = _mm512_dpbusd_epi32(ci[i][v], wv, x[v]);
                }
            }
        } else {
#pragma GCC unroll 4
            for (int g = 0; g < 4; g++) {
                __m512i xl[2], xh[2];
#pragma GCC unroll 2
                for (int v = 0; v < nv; v++) {
                    xl[v] = _mm512_load_si512(xb + g * NT * 4 + 64 * v);
                    xh[v] = _mm512_load_si512(xb + (g + 4) * NT * 4 + 64 * v);
                }
#pragma GCC unroll 8
                for (int i = 0; i < mrows; i++) {
                    __m512i full = bcast32(wb + i * rb + 4 * g);
                    __m512i lo = _mm512_and_si512(full, c0f);
                    __m512i hi = _mm512_and_si512(_mm512_srli_epi16(full, 4), c0f);
#pragma GCC unroll 2
                    for (int v = 0; v < nv; v++) {
                        ci[i][v] = _mm512_dpbusd_epi32(ci[i][v], lo, xl[v]);
                        ci[i][v] = _mm512_dpbusd_epi32(ci[i][v], hi, xh[v]);
                    }
                }
            }
        }
        __m512 dx[2];
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) dx[v] = _mm512_load_ps((const float *)(xb + 36 * NT) + 16 * v);
#pragma GCC unroll 8
        for (int i = 0; i < mrows; i++) {
            const __m512 d = _mm512_set1_ps(prep[i * preps + b]);
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++)
                acc[i][v] = _mm512_add_ps(
                    acc[i][v], _mm512_mul_ps(_mm512_cvtepi32_ps(ci[i][v]), _mm512_mul_ps(d, dx[v])));
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < mrows; i++)
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++)
            _mm512_storeu_ps(out + i * NT + 16 * v, v < nv ? acc[i][v] : _mm512_setzero_ps());
}

/* q4_K (MR_K rows x 32 tokens): per sub-block j of 32 the exact sum s_j of nibble x q8 (the
 * nibbles unsigned: no correction), then isum = sum sc_j s_j and imin = sum m_j (the tile's
 * sums of q per 32) with vpmulld, and, as the reference, acc += (float)isum * (d * d_x) -
 * (float)imin * (dmin * d_x). Sub-blocks 2p and 2p + 1 share the bytes qs[32p ..]: low and
 * high nibbles of one broadcast. */
#define MR_K 2
SK_INLINE __m512i bcast_i32(const float *p) {
    int32_t v;
    __builtin_memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

SK_INLINE void tile_q4k(int64_t nb, const uint8_t *w, uint64_t rb, const int mrows, const int nv,
                        const float *prep, int64_t preps, const uint8_t *xp, float *out) {
    const size_t xblk = sk_q8g_xblock(SK_Q8G_Q4_K, NT);
    const __m512i c0f = _mm512_set1_epi8(0x0F);
    __m512 acc[MR_K][2];
#pragma GCC unroll 2
    for (int i = 0; i < mrows; i++)
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) acc[i][v] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *xb = xp + (size_t)b * xblk;
        const uint8_t *wb = w + (size_t)b * 144 + 16;
        __m512i isum[MR_K][2], imin[MR_K][2];
#pragma GCC unroll 2
        for (int i = 0; i < mrows; i++)
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++) isum[i][v] = imin[i][v] = _mm512_setzero_si512();
        for (int p = 0; p < 4; p++) {
            __m512i sl[MR_K][2], sh[MR_K][2];
#pragma GCC unroll 2
            for (int i = 0; i < mrows; i++)
#pragma GCC unroll 2
                for (int v = 0; v < nv; v++) sl[i][v] = sh[i][v] = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++) {
                __m512i xl[2], xh[2];
#pragma GCC unroll 2
                for (int v = 0; v < nv; v++) {
                    xl[v] = _mm512_load_si512(xb + (size_t)(16 * p + g) * NT * 4 + 64 * v);
                    xh[v] = _mm512_load_si512(xb + (size_t)(16 * p + 8 + g) * NT * 4 + 64 * v);
                }
#pragma GCC unroll 2
                for (int i = 0; i < mrows; i++) {
                    const __m512i full = bcast32(wb + i * rb + 32 * p + 4 * g);
                    const __m512i lo = _mm512_and_si512(full, c0f);
                    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(full, 4), c0f);
#pragma GCC unroll 2
                    for (int v = 0; v < nv; v++) {
                        sl[i][v] = _mm512_dpbusd_epi32(sl[i][v], lo, xl[v]);
                        sh[i][v] = _mm512_dpbusd_epi32(sh[i][v], hi, xh[v]);
                    }
                }
            }
#pragma GCC unroll 2
            for (int i = 0; i < mrows; i++) {
                const float *pr = prep + i * preps + b * 18;
                const __m512i scl = bcast_i32(pr + 2 * p), sch = bcast_i32(pr + 2 * p + 1);
#pragma GCC unroll 2
                for (int v = 0; v < nv; v++)
                    isum[i][v] = _mm512_add_epi32(
                        isum[i][v], _mm512_add_epi32(_mm512_mullo_epi32(sl[i][v], scl),
                                                     _mm512_mullo_epi32(sh[i][v], sch)));
            }
        }
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m512i bs[2];
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++)
                bs[v] = _mm512_load_si512(xb + (size_t)256 * NT + (size_t)j * NT * 4 + 64 * v);
#pragma GCC unroll 2
            for (int i = 0; i < mrows; i++) {
                const __m512i m = bcast_i32(prep + i * preps + b * 18 + 8 + j);
#pragma GCC unroll 2
                for (int v = 0; v < nv; v++)
                    imin[i][v] = _mm512_add_epi32(imin[i][v], _mm512_mullo_epi32(bs[v], m));
            }
        }
        __m512 dx[2];
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) dx[v] = _mm512_load_ps((const float *)(xb + (size_t)288 * NT) + 16 * v);
#pragma GCC unroll 2
        for (int i = 0; i < mrows; i++) {
            const float *pr = prep + i * preps + b * 18;
            const __m512 d = _mm512_set1_ps(pr[16]), dm = _mm512_set1_ps(pr[17]);
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++) {
                __m512 t1 = _mm512_mul_ps(_mm512_cvtepi32_ps(isum[i][v]), _mm512_mul_ps(d, dx[v]));
                __m512 t2 = _mm512_mul_ps(_mm512_cvtepi32_ps(imin[i][v]), _mm512_mul_ps(dm, dx[v]));
                acc[i][v] = _mm512_add_ps(acc[i][v], _mm512_sub_ps(t1, t2));
            }
        }
    }
#pragma GCC unroll 2
    for (int i = 0; i < mrows; i++)
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++)
            _mm512_storeu_ps(out + i * NT + 16 * v, v < nv ? acc[i][v] : _mm512_setzero_ps());
}

/* the token tile is 64-byte aligned in the scratch and its blocks are multiples of 64 bytes */
_Static_assert(sk_q8g_xblock(SK_Q8G_Q8_0, NT) % 64 == 0 && sk_q8g_xblock(SK_Q8G_Q4_K, NT) % 64 == 0, "x tile blocks must keep the 64-byte alignment");

static void tile_avx512(sk_q8g_kind kind, int64_t nb, const uint8_t *w, uint64_t rb, int mrows,
                        int ntv, const float *prep, int64_t preps, const uint8_t *xp, float *out) {
    const int nv = ntv > 16 ? 2 : 1; /* the second token vector only when it has tokens */
#define CASE(K, M, V)                                                                         \
    if (kind == K && mrows == M && nv == V) {                                                 \
        tile_impl(K, nb, w, rb, M, V, prep, preps, xp, out);                                      \
        return;                                                                               \
    }
    if (kind == SK_Q8G_Q4_K) {
        if (mrows == 1 && nv == 1) tile_q4k(nb, w, rb, 1, 1, prep, preps, xp, out);
        else if (mrows == 1) tile_q4k(nb, w, rb, 1, 2, prep, preps, xp, out);
        else if (nv == 1) tile_q4k(nb, w, rb, 2, 1, prep, preps, xp, out);
        else tile_q4k(nb, w, rb, 2, 2, prep, preps, xp, out);
        return;
    }
#define ROWS(K, V) CASE(K, 1, V) CASE(K, 2, V) CASE(K, 3, V) CASE(K, 4, V)
    ROWS(SK_Q8G_Q8_0, 1) ROWS(SK_Q8G_Q8_0, 2) ROWS(SK_Q8G_Q4_0, 1) ROWS(SK_Q8G_Q4_0, 2)
#undef ROWS
#undef CASE
}

const sk_q8_gemm sk_q8_gemm_avx512 = {
    .name = "avx512", .mr = {MR, MR, MR_K}, .nt = NT, .tile = tile_avx512,
};
