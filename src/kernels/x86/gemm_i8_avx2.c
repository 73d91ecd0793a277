/*
 * gemm_i8_avx2.c - the int8 GEMM kernels of the W8A8 types with AVX2 (compiled with the
 * AVX2 flags only). Contract: sk_i8_gemm in kernels.h; driver and specification: gemm_i8.c.
 *
 *   AVX2's byte product (vpmaddubsw) adds two u8 x s8 products in a saturating int16: with
 *   a broadcast operand the sign trick (|w|, x with w's sign) costs an extra instruction per
 *   product vector, and an offset operand (up to 255 x 127, twice) saturates. So both
 *   operands are widened to int16 once, at packing, and vpmaddwd adds pairs of int16
 *   products into int32 lanes exactly (no offset, no correction): 16 multiply-adds per
 *   instruction plus one vpaddd, against 8 per f32 FMA.
 *
 *   pack_w  8 rows x 16 k loaded, widened (vpmovsxbw: 8 dwords = 8 pairs of k), transposed
 *           as 8 x 8 dwords: panels [k/2][16 rows][2 k] int16 (128 bytes per group of 4 k).
 *   pack_x  the same on up to 6 tokens: tiles [k/2][6 tokens][2 k] int16 (48 bytes).
 *   tile    16 rows (2 ymm) x up to 6 tokens = 12 int32 accumulators; per pair of k two
 *           panel loads, one broadcast per token, 12 vpmaddwd + 12 vpaddd.
 */
#include "../kernels.h"

#include <immintrin.h>

#define MR 16
#define NR 6
#define KC 512 /* 256 rows x 512 k x 2 bytes = 256 KiB of panels per block */
_Static_assert(NR <= 8 && MR == 16, "pack_x transposes <= 8 tokens; tile has 2 ymm of rows");
#define SK_INLINE static inline __attribute__((always_inline))

/* In-place transpose of 8 x 8 dwords: r[i] lane j -> r[j] lane i. */
SK_INLINE void transpose8_epi32(__m256i r[8]) {
    __m256i t[8], u[8];
#pragma GCC unroll 8
    for (int a = 0; a < 4; a++) {
        t[2 * a] = _mm256_unpacklo_epi32(r[2 * a], r[2 * a + 1]);
        t[2 * a + 1] = _mm256_unpackhi_epi32(r[2 * a], r[2 * a + 1]);
    }
    /* u[4b + c], each 128-bit half h: column c + 4h of rows 4b .. 4b + 3 */
#pragma GCC unroll 8
    for (int b = 0; b < 2; b++) {
        u[4 * b + 0] = _mm256_unpacklo_epi64(t[4 * b], t[4 * b + 2]);
        u[4 * b + 1] = _mm256_unpackhi_epi64(t[4 * b], t[4 * b + 2]);
        u[4 * b + 2] = _mm256_unpacklo_epi64(t[4 * b + 1], t[4 * b + 3]);
        u[4 * b + 3] = _mm256_unpackhi_epi64(t[4 * b + 1], t[4 * b + 3]);
    }
#pragma GCC unroll 8
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x20);
        r[4 + c] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x31);
    }
}

/* v[i] = 16 bytes [k, k + nk) of line i (< nvalid; zeros after nk and for i >= nvalid),
 * widened to int16, transposed: v[p] = k pair p (k + 2p, k + 2p + 1) of lines 0..7 */
SK_INLINE void load_widen_transpose(const int8_t *base, size_t stride, int nvalid, int64_t k,
                                    int nk, __m256i v[8]) {
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        __m128i b = _mm_setzero_si128();
        if (i < nvalid) {
            const int8_t *src = base + (size_t)i * stride + k;
            if (nk >= 16) {
                b = _mm_loadu_si128((const __m128i *)src);
            } else {
                int8_t tmp[16] = {0};
                __builtin_memcpy(tmp, src, (size_t)nk);
                b = _mm_loadu_si128((const __m128i *)tmp);
            }
        }
        v[i] = _mm256_cvtepi8_epi16(b);
    }
    transpose8_epi32(v);
}

static void pack_w_avx2(const int8_t *w, uint64_t rb, int64_t nrows, int64_t k0, int64_t kc,
                        void *dst) {
    const int64_t npanels = (nrows + MR - 1) / MR, ng = (kc + 3) / 4;
    for (int64_t p = 0; p < npanels; p++) {
        uint8_t *pd = (uint8_t *)dst + (size_t)(p * ng) * MR * 8;
        for (int h = 0; h < MR / 8; h++) {
            int64_t rbase = p * MR + h * 8;
            int nvalid = nrows - rbase >= 8 ? 8 : (nrows - rbase > 0 ? (int)(nrows - rbase) : 0);
            for (int64_t kk = 0; kk < kc; kk += 16) {
                int nk = kc - kk >= 16 ? 16 : (int)(kc - kk);
                int npair = (nk + 3) / 4 * 2; /* whole groups of 4 k, zero padded */
                __m256i v[8];
                load_widen_transpose(w + (size_t)rbase * rb, rb, nvalid, k0 + kk, nk, v);
                uint8_t *o = pd + (size_t)(kk / 2) * MR * 4 + h * 32;
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++)
                    if (i < npair) _mm256_store_si256((__m256i *)(o + i * MR * 4), v[i]);
            }
        }
    }
}

static void pack_x_avx2(const int8_t *x, size_t xs, int nt, int64_t k0, int64_t kc, void *dst) {
    const __m256i mst = _mm256_cmpgt_epi32(_mm256_set1_epi32(NR),
                                           _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int64_t kk = 0; kk < kc; kk += 16) {
        int nk = kc - kk >= 16 ? 16 : (int)(kc - kk);
        int npair = (nk + 3) / 4 * 2;
        __m256i v[8];
        load_widen_transpose(x, xs, nt, k0 + kk, nk, v);
        int *o = (int *)((uint8_t *)dst + (size_t)(kk / 2) * NR * 4);
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++)
            if (i < npair) _mm256_maskstore_epi32(o + i * NR, mst, v[i]);
    }
}

/* ---- the micro-kernel ------------------------------------------------------------------ */

SK_INLINE void tile_impl(int64_t ng, const uint8_t *wp, const uint8_t *xp, float *Y,
                         int64_t ldy, const int nt, int full, __m256i m0, __m256i m1,
                         int flags, const float *dw, const float *dx) {
    __m256i c0[NR], c1[NR];
#pragma GCC unroll 6
    for (int j = 0; j < nt; j++) {
        int *y = (int *)(Y + j * ldy);
        if (!(flags & SK_I8_ACC)) {
            c0[j] = c1[j] = _mm256_setzero_si256();
        } else if (full) {
            c0[j] = _mm256_loadu_si256((const __m256i *)y);
            c1[j] = _mm256_loadu_si256((const __m256i *)(y + 8));
        } else {
            c0[j] = _mm256_maskload_epi32(y, m0);
            c1[j] = _mm256_maskload_epi32(y + 8, m1);
        }
    }
    for (int64_t p = 0; p < 2 * ng; p++) {
        __m256i w0 = _mm256_load_si256((const __m256i *)(wp + p * MR * 4));
        __m256i w1 = _mm256_load_si256((const __m256i *)(wp + p * MR * 4 + 32));
        const uint8_t *xq = xp + p * NR * 4;
#pragma GCC unroll 6
        for (int j = 0; j < nt; j++) {
            int32_t x2;
            __builtin_memcpy(&x2, xq + 4 * j, 4);
            __m256i b = _mm256_set1_epi32(x2);
            c0[j] = _mm256_add_epi32(c0[j], _mm256_madd_epi16(w0, b));
            c1[j] = _mm256_add_epi32(c1[j], _mm256_madd_epi16(w1, b));
        }
    }
    const __m256 d0 = _mm256_loadu_ps(dw), d1 = _mm256_loadu_ps(dw + 8);
#pragma GCC unroll 6
    for (int j = 0; j < nt; j++) {
        float *y = Y + j * ldy;
        if (flags & SK_I8_FINISH) {
            const __m256 s = _mm256_set1_ps(dx[j]);
            __m256 y0 = _mm256_mul_ps(_mm256_cvtepi32_ps(c0[j]), _mm256_mul_ps(d0, s));
            __m256 y1 = _mm256_mul_ps(_mm256_cvtepi32_ps(c1[j]), _mm256_mul_ps(d1, s));
            if (full) {
                _mm256_storeu_ps(y, y0);
                _mm256_storeu_ps(y + 8, y1);
            } else {
                _mm256_maskstore_ps(y, m0, y0);
                _mm256_maskstore_ps(y + 8, m1, y1);
            }
        } else if (full) {
            _mm256_storeu_si256((__m256i *)y, c0[j]);
            _mm256_storeu_si256((__m256i *)(y + 8), c1[j]);
        } else {
            _mm256_maskstore_epi32((int *)y, m0, c0[j]);
            _mm256_maskstore_epi32((int *)y + 8, m1, c1[j]);
        }
    }
}

static void tile_avx2(int64_t ng, const void *wp, const void *xp, float *Y, int64_t ldy, int nt,
                      int mrows, int flags, const float *dw, const float *dx,
                      const int32_t *xsum) {
    (void)xsum; /* no offset to correct */
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(mrows), lane);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(mrows - 8), lane);
    const int full = mrows == MR;
    switch (nt) {
#define CASE(n) case n: tile_impl(ng, wp, xp, Y, ldy, n, full, m0, m1, flags, dw, dx); break;
    CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6)
#undef CASE
    default: break;
    }
}

const sk_i8_gemm sk_i8_gemm_avx2 = {
    .name = "avx2", .mr = MR, .nr = NR, .wgb = 8, .xgb = 8, .kc_max = KC,
    .pack_w = pack_w_avx2, .pack_x = pack_x_avx2, .tile = tile_avx2,
};
