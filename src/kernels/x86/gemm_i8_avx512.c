/*
 * gemm_i8_avx512.c - the int8 GEMM kernels of the W8A8 types with AVX-512 VNNI (compiled
 * with the AVX-512 flags only; used only when the CPU has AVX512_VNNI, sk_i8_gemm_get).
 * Contract: sk_i8_gemm in kernels.h; driver and specification: gemm_i8.c.
 *
 *   vpdpbusd multiplies unsigned bytes by signed bytes, 4 products summed into each int32
 *   lane. The weights go in unsigned with an offset of 128 (w + 128 in 0..255, stored as
 *   w ^ 0x80), the activations signed and broadcast (4 k of one token = one dword), so
 *   sum (w + 128) x = sum w x + 128 sum x: the tile subtracts 128 * (the token's sum of q,
 *   sk_act_i8.sum) at the end. Zero padding of X (k past the row, tokens past T) adds
 *   nothing whatever the weight padding is. int32 arithmetic wraps, so the result is exact
 *   whenever the true sum fits int32 (cols <= SK_I8_MAX_COLS), even if the offset sum does not.
 *
 *   pack_w  16 rows x 64 bytes loaded (masked at the K tail), transposed as 16 x 16 dwords,
 *           xored with 0x80: panels [g][32 rows][4 k] (128 bytes per group).
 *   pack_x  the same transpose on up to 12 tokens: tiles [g][12 tokens][4 k] (48 bytes).
 *   tile    32 rows (2 zmm) x up to 12 tokens = 24 int32 accumulators; per group of 4 k two
 *           panel loads, one broadcast per token, 24 vpdpbusd (1536 multiply-adds; the f32
 *           tile does 384 per k with as many instructions).
 */
#include "../kernels.h"

#include <immintrin.h>

#define MR 32
#define NR 12
#define KC 1024 /* 256 rows x 1024 k = 256 KiB of panels per block, a 12 KiB X tile */
_Static_assert(NR <= 16 && MR == 32, "pack_x transposes <= 16 tokens; tile has 2 zmm of rows");
#define SK_INLINE static inline __attribute__((always_inline))

/* In-place transpose of 16 x 16 dwords: r[i] lane j -> r[j] lane i (as matmul_avx512.c's
 * transpose16, on integer registers). */
SK_INLINE void transpose16_epi32(__m512i r[16]) {
    __m512i t[16], u[16];
#pragma GCC unroll 16
    for (int a = 0; a < 8; a++) {
        t[2 * a] = _mm512_unpacklo_epi32(r[2 * a], r[2 * a + 1]);
        t[2 * a + 1] = _mm512_unpackhi_epi32(r[2 * a], r[2 * a + 1]);
    }
#pragma GCC unroll 16
    for (int b = 0; b < 4; b++) {
        u[4 * b + 0] = _mm512_unpacklo_epi64(t[4 * b], t[4 * b + 2]);
        u[4 * b + 1] = _mm512_unpackhi_epi64(t[4 * b], t[4 * b + 2]);
        u[4 * b + 2] = _mm512_unpacklo_epi64(t[4 * b + 1], t[4 * b + 3]);
        u[4 * b + 3] = _mm512_unpackhi_epi64(t[4 * b + 1], t[4 * b + 3]);
    }
#pragma GCC unroll 16
    for (int c = 0; c < 4; c++) {
        __m512i v = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44);
        __m512i w = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44);
        __m512i v2 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xEE);
        __m512i w2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xEE);
        r[c] = _mm512_shuffle_i32x4(v, w, 0x88);
        r[4 + c] = _mm512_shuffle_i32x4(v, w, 0xDD);
        r[8 + c] = _mm512_shuffle_i32x4(v2, w2, 0x88);
        r[12 + c] = _mm512_shuffle_i32x4(v2, w2, 0xDD);
    }
}

/* v[i] = 64 bytes [k, k + nk) of line i (< nvalid; zeros after nk and for i >= nvalid),
 * transposed: v[g] = dword g (k + 4g .. k + 4g + 3) of lines 0..15 */
SK_INLINE void load_transpose(const int8_t *base, size_t stride, int nvalid, int64_t k, int nk,
                              __m512i v[16]) {
    const __mmask64 m = nk >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << nk) - 1;
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        v[i] = i < nvalid ? _mm512_maskz_loadu_epi8(m, base + (size_t)i * stride + k)
                          : _mm512_setzero_si512();
    transpose16_epi32(v);
}

static void pack_w_avx512(const int8_t *w, uint64_t rb, int64_t nrows, int64_t k0, int64_t kc,
                          void *dst) {
    const int64_t npanels = (nrows + MR - 1) / MR, ng = (kc + 3) / 4;
    const __m512i off = _mm512_set1_epi8((char)0x80);
    for (int64_t p = 0; p < npanels; p++) {
        uint8_t *pd = (uint8_t *)dst + (size_t)(p * ng) * MR * 4;
        for (int h = 0; h < MR / 16; h++) {
            int64_t rbase = p * MR + h * 16;
            int nvalid = nrows - rbase >= 16 ? 16 : (nrows - rbase > 0 ? (int)(nrows - rbase) : 0);
            for (int64_t kk = 0; kk < kc; kk += 64) {
                int nk = kc - kk >= 64 ? 64 : (int)(kc - kk);
                __m512i v[16];
                load_transpose(w + (size_t)rbase * rb, rb, nvalid, k0 + kk, nk, v);
                uint8_t *o = pd + (size_t)(kk / 4) * MR * 4 + h * 64;
#pragma GCC unroll 16
                for (int g = 0; g < 16; g++) /* constant bounds: v stays in registers */
                    if (4 * g < nk) _mm512_store_si512(o + g * MR * 4, _mm512_xor_si512(v[g], off));
            }
        }
    }
}

static void pack_x_avx512(const int8_t *x, size_t xs, int nt, int64_t k0, int64_t kc,
                          void *dst) {
    const __mmask16 mst = (__mmask16)((1u << NR) - 1);
    for (int64_t kk = 0; kk < kc; kk += 64) {
        int nk = kc - kk >= 64 ? 64 : (int)(kc - kk);
        __m512i v[16];
        load_transpose(x, xs, nt, k0 + kk, nk, v);
        uint8_t *o = (uint8_t *)dst + (size_t)(kk / 4) * NR * 4;
#pragma GCC unroll 16
        for (int g = 0; g < 16; g++)
            if (4 * g < nk) _mm512_mask_storeu_epi32(o + g * NR * 4, mst, v[g]);
    }
}

/* ---- the micro-kernel ------------------------------------------------------------------ */

SK_INLINE void tile_impl(int64_t ng, const uint8_t *wp, const uint8_t *xp, float *Y,
                         int64_t ldy, const int nt, __mmask16 m0, __mmask16 m1, int flags,
                         const float *dw, const float *dx, const int32_t *xsum) {
    __m512i c0[NR], c1[NR];
#pragma GCC unroll 12
    for (int j = 0; j < nt; j++) {
        if (flags & SK_I8_ACC) {
            c0[j] = _mm512_maskz_loadu_epi32(m0, Y + j * ldy);
            c1[j] = _mm512_maskz_loadu_epi32(m1, Y + j * ldy + 16);
        } else {
            c0[j] = c1[j] = _mm512_setzero_si512();
        }
    }
    for (int64_t g = 0; g < ng; g++) {
        __m512i w0 = _mm512_load_si512(wp + g * MR * 4);
        __m512i w1 = _mm512_load_si512(wp + g * MR * 4 + 64);
        const uint8_t *xg = xp + g * NR * 4;
#pragma GCC unroll 12
        for (int j = 0; j < nt; j++) {
            int32_t x4;
            __builtin_memcpy(&x4, xg + 4 * j, 4);
            __m512i b = _mm512_set1_epi32(x4);
            c0[j] = _mm512_dpbusd_epi32(c0[j], w0, b);
            c1[j] = _mm512_dpbusd_epi32(c1[j], w1, b);
        }
    }
    if (flags & SK_I8_FINISH) {
        const __m512 d0 = _mm512_loadu_ps(dw), d1 = _mm512_loadu_ps(dw + 16);
#pragma GCC unroll 12
        for (int j = 0; j < nt; j++) {
            /* remove the weights' +128: sum (w + 128) x - 128 sum x */
            const __m512i corr = _mm512_set1_epi32((int32_t)((uint32_t)xsum[j] << 7));
            const __m512 s = _mm512_set1_ps(dx[j]);
            __m512 y0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(c0[j], corr)),
                                      _mm512_mul_ps(d0, s));
            __m512 y1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(c1[j], corr)),
                                      _mm512_mul_ps(d1, s));
            _mm512_mask_storeu_ps(Y + j * ldy, m0, y0);
            _mm512_mask_storeu_ps(Y + j * ldy + 16, m1, y1);
        }
    } else {
#pragma GCC unroll 12
        for (int j = 0; j < nt; j++) {
            _mm512_mask_storeu_epi32(Y + j * ldy, m0, c0[j]);
            _mm512_mask_storeu_epi32(Y + j * ldy + 16, m1, c1[j]);
        }
    }
}

static void tile_avx512(int64_t ng, const void *wp, const void *xp, float *Y, int64_t ldy,
                        int nt, int mrows, int flags, const float *dw, const float *dx,
                        const int32_t *xsum) {
    __mmask16 m0 = (__mmask16)(mrows >= 16 ? 0xFFFF : (1u << mrows) - 1);
    __mmask16 m1 = (__mmask16)(mrows >= 32 ? 0xFFFF : mrows > 16 ? (1u << (mrows - 16)) - 1 : 0);
    switch (nt) {
#define CASE(n) case n: tile_impl(ng, wp, xp, Y, ldy, n, m0, m1, flags, dw, dx, xsum); break;
    CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6)
    CASE(7) CASE(8) CASE(9) CASE(10) CASE(11) CASE(12)
#undef CASE
    default: break;
    }
}

const sk_i8_gemm sk_i8_gemm_avx512 = {
    .name = "avx512", .mr = MR, .nr = NR, .wgb = 4, .xgb = 4, .kc_max = KC,
    .pack_w = pack_w_avx512, .pack_x = pack_x_avx512, .tile = tile_avx512,
};
