/*
 * matmul_avx2.c - the AVX2 + FMA + F16C kernel set (compiled with -mavx2 -mfma -mf16c only).
 * Same contracts as the references in matmul.c; see kernels.h and docs/kernels.md.
 *
 *   gemv    4 weight rows at a time, 8 columns per step; f16 widened with vcvtph2ps, bf16 by
 *           zero-extension and a 16-bit shift. Column tails go through a zero-padded copy.
 *   pack_w  8 x 8 blocks transposed in registers into [k][16] panels.
 *   pack_x  4 x 4 transposes of token rows into [k][4] tiles.
 *   tile    24 rows (3 ymm) x up to 4 tokens = 12 accumulators.
 */
#include "../kernels.h"

#include <immintrin.h>

/* 24 x 4 measured a little ahead of 16 x 6 and 32 x 3 on Zen 4 (fewer broadcasts per FMA) */
#define MR 24
#define NR 4
#define MV (MR / 8) /* ymm vectors per panel row */
_Static_assert(NR == 4 && MR % 8 == 0, "pack_x_avx2 transposes 4 tokens; panels are whole ymm");
#define SK_INLINE static inline __attribute__((always_inline))

static size_t esize(shrink_dtype dt) { return dt == SHRINK_DTYPE_F32 ? 4 : 2; }

SK_INLINE __m256 load8(const void *base, int64_t i, shrink_dtype dt) {
    if (dt == SHRINK_DTYPE_F32) return _mm256_loadu_ps((const float *)base + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)base + i));
    if (dt == SHRINK_DTYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* n < 8 elements at base[i..], the rest zero. */
SK_INLINE __m256 load8_n(const void *base, int64_t i, int n, shrink_dtype dt) {
    _Alignas(32) uint8_t tmp[32] = {0};
    size_t es = esize(dt);
    memcpy(tmp, (const uint8_t *)base + (size_t)i * es, (size_t)n * es);
    return load8(tmp, 0, dt);
}

SK_INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

SK_INLINE __m256i mask8(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* ---- GEMV ------------------------------------------------------------------------------ */

SK_INLINE void gemv_impl(const void *Wd, int64_t cols, const float *x, float *y, int64_t r0,
                         int64_t r1, shrink_dtype dt) {
    const size_t es = esize(dt);
    const int64_t kv = cols & ~(int64_t)7;
    const int nt = (int)(cols & 7);
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        const uint8_t *w0 = (const uint8_t *)Wd + (size_t)r * (size_t)cols * es;
        const uint8_t *w1 = w0 + (size_t)cols * es;
        const uint8_t *w2 = w1 + (size_t)cols * es;
        const uint8_t *w3 = w2 + (size_t)cols * es;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        for (int64_t k = 0; k < kv; k += 8) {
            __m256 xv = _mm256_loadu_ps(x + k);
            a0 = _mm256_fmadd_ps(load8(w0, k, dt), xv, a0);
            a1 = _mm256_fmadd_ps(load8(w1, k, dt), xv, a1);
            a2 = _mm256_fmadd_ps(load8(w2, k, dt), xv, a2);
            a3 = _mm256_fmadd_ps(load8(w3, k, dt), xv, a3);
        }
        if (nt) {
            __m256 xv = _mm256_maskload_ps(x + kv, mask8(nt));
            a0 = _mm256_fmadd_ps(load8_n(w0, kv, nt, dt), xv, a0);
            a1 = _mm256_fmadd_ps(load8_n(w1, kv, nt, dt), xv, a1);
            a2 = _mm256_fmadd_ps(load8_n(w2, kv, nt, dt), xv, a2);
            a3 = _mm256_fmadd_ps(load8_n(w3, kv, nt, dt), xv, a3);
        }
        y[r - r0 + 0] = hsum8(a0);
        y[r - r0 + 1] = hsum8(a1);
        y[r - r0 + 2] = hsum8(a2);
        y[r - r0 + 3] = hsum8(a3);
    }
    for (; r < r1; r++) {
        const uint8_t *w0 = (const uint8_t *)Wd + (size_t)r * (size_t)cols * es;
        __m256 a0 = _mm256_setzero_ps();
        for (int64_t k = 0; k < kv; k += 8)
            a0 = _mm256_fmadd_ps(load8(w0, k, dt), _mm256_loadu_ps(x + k), a0);
        if (nt)
            a0 = _mm256_fmadd_ps(load8_n(w0, kv, nt, dt), _mm256_maskload_ps(x + kv, mask8(nt)), a0);
        y[r - r0] = hsum8(a0);
    }
}

static void gemv_avx2(const sk_mat *W, const float *x, float *y, int64_t r0, int64_t r1) {
    switch (W->dtype) {
    case SHRINK_DTYPE_F32: gemv_impl(W->data, W->cols, x, y, r0, r1, SHRINK_DTYPE_F32); break;
    case SHRINK_DTYPE_F16: gemv_impl(W->data, W->cols, x, y, r0, r1, SHRINK_DTYPE_F16); break;
    default:               gemv_impl(W->data, W->cols, x, y, r0, r1, SHRINK_DTYPE_BF16); break;
    }
}

/* ---- packing --------------------------------------------------------------------------- */

SK_INLINE void transpose8(__m256 r[8]) {
    __m256 t[8], s[8];
#pragma GCC unroll 8
    for (int a = 0; a < 4; a++) {
        t[2 * a] = _mm256_unpacklo_ps(r[2 * a], r[2 * a + 1]);
        t[2 * a + 1] = _mm256_unpackhi_ps(r[2 * a], r[2 * a + 1]);
    }
#pragma GCC unroll 8
    for (int b = 0; b < 2; b++) {
        s[4 * b + 0] = _mm256_shuffle_ps(t[4 * b], t[4 * b + 2], 0x44);
        s[4 * b + 1] = _mm256_shuffle_ps(t[4 * b], t[4 * b + 2], 0xEE);
        s[4 * b + 2] = _mm256_shuffle_ps(t[4 * b + 1], t[4 * b + 3], 0x44);
        s[4 * b + 3] = _mm256_shuffle_ps(t[4 * b + 1], t[4 * b + 3], 0xEE);
    }
#pragma GCC unroll 8
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x20);
        r[4 + c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x31);
    }
}

SK_INLINE void pack_impl(const sk_mat *W, int64_t r0, int64_t nrows, int64_t k0, int64_t kc,
                         float *dst, shrink_dtype dt) {
    const size_t rb = (size_t)W->cols * esize(dt);
    const int64_t npanels = (nrows + MR - 1) / MR;
    for (int64_t p = 0; p < npanels; p++) {
        float *pd = dst + p * kc * MR;
        for (int h = 0; h < MR / 8; h++) {
            int64_t rbase = p * MR + h * 8;
            int nvalid = nrows - rbase >= 8 ? 8 : (nrows - rbase > 0 ? (int)(nrows - rbase) : 0);
            const uint8_t *row[8];
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) /* rows past nrows are never read */
                row[i] = i < nvalid ? (const uint8_t *)W->data + (size_t)(r0 + rbase + i) * rb : NULL;
            for (int64_t kk = 0; kk < kc; kk += 8) {
                int nk = kc - kk >= 8 ? 8 : (int)(kc - kk);
                __m256 v[8];
                if (nk == 8) {
#pragma GCC unroll 8
                    for (int i = 0; i < 8; i++)
                        v[i] = i < nvalid ? load8(row[i], k0 + kk, dt) : _mm256_setzero_ps();
                } else {
#pragma GCC unroll 8
                    for (int i = 0; i < 8; i++)
                        v[i] = i < nvalid ? load8_n(row[i], k0 + kk, nk, dt) : _mm256_setzero_ps();
                }
                transpose8(v);
                float *o = pd + kk * MR + h * 8;
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) /* constant bounds: v stays in registers */
                    if (j < nk) _mm256_store_ps(o + j * MR, v[j]);
            }
        }
    }
}

static void pack_w_avx2(const sk_mat *W, int64_t r0, int64_t nrows, int64_t k0, int64_t kc,
                        float *dst) {
    switch (W->dtype) {
    case SHRINK_DTYPE_F32: pack_impl(W, r0, nrows, k0, kc, dst, SHRINK_DTYPE_F32); break;
    case SHRINK_DTYPE_F16: pack_impl(W, r0, nrows, k0, kc, dst, SHRINK_DTYPE_F16); break;
    default:               pack_impl(W, r0, nrows, k0, kc, dst, SHRINK_DTYPE_BF16); break;
    }
}

/* X tile of NR = 4 tokens: 4 x 4 transposes of 128-bit rows; rows past T are zero. */
static void pack_x_avx2(const float *X, int64_t cols, int64_t T, int64_t t0, int64_t k0,
                        int64_t kc, float *dst) {
    int nvalid = T - t0 >= NR ? NR : (int)(T - t0);
    const float *row[NR];
    for (int j = 0; j < NR; j++) row[j] = X + (t0 + (j < nvalid ? j : 0)) * cols + k0;
    int64_t k = 0;
    for (; k + 4 <= kc; k += 4) {
        __m128 r0 = _mm_loadu_ps(row[0] + k);
        __m128 r1 = nvalid > 1 ? _mm_loadu_ps(row[1] + k) : _mm_setzero_ps();
        __m128 r2 = nvalid > 2 ? _mm_loadu_ps(row[2] + k) : _mm_setzero_ps();
        __m128 r3 = nvalid > 3 ? _mm_loadu_ps(row[3] + k) : _mm_setzero_ps();
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        _mm_storeu_ps(dst + (k + 0) * NR, r0);
        _mm_storeu_ps(dst + (k + 1) * NR, r1);
        _mm_storeu_ps(dst + (k + 2) * NR, r2);
        _mm_storeu_ps(dst + (k + 3) * NR, r3);
    }
    for (; k < kc; k++)
        for (int j = 0; j < NR; j++) dst[k * NR + j] = j < nvalid ? row[j][k] : 0.0f;
}

/* ---- the micro-kernel ------------------------------------------------------------------ */

SK_INLINE void tile_impl(int64_t kc, const float *wp, const float *xp, float *Y, int64_t ldy,
                         const int nt, int mrows, int accumulate) {
    __m256 c[NR][MV];
#pragma GCC unroll 8
    for (int j = 0; j < nt; j++)
#pragma GCC unroll 4
        for (int v = 0; v < MV; v++) c[j][v] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        __m256 w[MV];
#pragma GCC unroll 4
        for (int v = 0; v < MV; v++) w[v] = _mm256_load_ps(wp + k * MR + 8 * v);
#pragma GCC unroll 8
        for (int j = 0; j < nt; j++) {
            __m256 b = _mm256_broadcast_ss(xp + k * NR + j);
#pragma GCC unroll 4
            for (int v = 0; v < MV; v++) c[j][v] = _mm256_fmadd_ps(w[v], b, c[j][v]);
        }
    }
    if (mrows == MR) {
#pragma GCC unroll 8
        for (int j = 0; j < nt; j++)
#pragma GCC unroll 4
            for (int v = 0; v < MV; v++) {
                float *y = Y + j * ldy + 8 * v;
                _mm256_storeu_ps(y, accumulate ? _mm256_add_ps(c[j][v], _mm256_loadu_ps(y)) : c[j][v]);
            }
    } else {
        __m256i m[MV];
#pragma GCC unroll 4
        for (int v = 0; v < MV; v++) m[v] = mask8(mrows - 8 * v);
#pragma GCC unroll 8
        for (int j = 0; j < nt; j++)
#pragma GCC unroll 4
            for (int v = 0; v < MV; v++) {
                float *y = Y + j * ldy + 8 * v;
                __m256 r = c[j][v];
                if (accumulate) r = _mm256_add_ps(r, _mm256_maskload_ps(y, m[v]));
                _mm256_maskstore_ps(y, m[v], r);
            }
    }
}

static void tile_avx2(int64_t kc, const float *wp, const float *xp, float *Y, int64_t ldy,
                      int nt, int mrows, int accumulate) {
    switch (nt) {
#define CASE(n) case n: tile_impl(kc, wp, xp, Y, ldy, n, mrows, accumulate); break;
    CASE(1) CASE(2) CASE(3) CASE(4)
#if NR > 4
    CASE(5) CASE(6)
#endif
#undef CASE
    default: break;
    }
}

/* ---- vector helpers -------------------------------------------------------------------- */

static float dot_avx2(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i < n; i += 8) {
        __m256i m = mask8((int)(n - i >= 8 ? 8 : n - i));
        s0 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s0);
    }
    return hsum8(_mm256_add_ps(s0, s1));
}

static void axpy_avx2(int64_t n, float alpha, const float *x, float *y) {
    __m256 av = _mm256_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    if (i < n) {
        __m256i m = mask8((int)(n - i));
        __m256 r = _mm256_fmadd_ps(av, _mm256_maskload_ps(x + i, m), _mm256_maskload_ps(y + i, m));
        _mm256_maskstore_ps(y + i, m, r);
    }
}

const sk_kernel_set sk_kernels_avx2 = {
    .name = "avx2", .isa = SK_ISA_AVX2, .mr = MR, .nr = NR,
    .gemv = gemv_avx2, .pack_w = pack_w_avx2, .pack_x = pack_x_avx2, .tile = tile_avx2,
    .dot_f32 = dot_avx2, .axpy_f32 = axpy_avx2,
    .exp_sum_f32 = sk_vec_exp_sum_f32_ref, /* no AVX2 exp yet */
};
