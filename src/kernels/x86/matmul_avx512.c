/*
 * matmul_avx512.c - the AVX-512 kernel set (compiled with -mavx512f/bw/vl/dq ... only).
 * Same contracts as the references in matmul.c; see kernels.h and docs/kernels.md.
 *
 *   gemv    4 weight rows at a time, 16 columns per step, one accumulator per row (f16/bf16:
 *           32 columns, two accumulators, the next 4 rows prefetched into L2); f16 is
 *           widened with vcvtph2ps, bf16 by zero-extending to 32 bits and shifting left 16.
 *   pack_w  16 x 16 blocks: 16 rows loaded (widened), transposed in registers, stored as
 *           [k][32] panels.
 *   pack_x  the same transpose on up to 12 token rows ([k][12] tiles).
 *   tile    32 rows (2 zmm) x up to 12 tokens = 24 accumulators; per k two panel loads and
 *           one broadcast of X per token.
 */
#include "../kernels.h"

#include <immintrin.h>

#define MR 32
#define NR 12
_Static_assert(NR <= 16 && MR == 32, "pack_x transposes <= 16 tokens; tile has 2 zmm of rows");
#define SK_INLINE static inline __attribute__((always_inline))

/* ---- loads that widen to f32 ------------------------------------------------------------ */

SK_INLINE __m512 load16(const void *base, int64_t i, shrink_dtype dt) {
    if (dt == SHRINK_DTYPE_F32) return _mm512_loadu_ps((const float *)base + i);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)base + i));
    if (dt == SHRINK_DTYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

SK_INLINE __m512 load16_m(const void *base, int64_t i, shrink_dtype dt, __mmask16 m) {
    if (dt == SHRINK_DTYPE_F32) return _mm512_maskz_loadu_ps(m, (const float *)base + i);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)base + i);
    if (dt == SHRINK_DTYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static size_t esize(shrink_dtype dt) { return dt == SHRINK_DTYPE_F32 ? 4 : 2; }

/* ---- GEMV ------------------------------------------------------------------------------ */

SK_INLINE void gemv_impl(const void *Wd, int64_t cols, const float *x, float *y, int64_t r0,
                         int64_t r1, shrink_dtype dt) {
    const size_t es = esize(dt);
    const int64_t kv = cols & ~(int64_t)15;
    const __mmask16 mt = (__mmask16)((1u << (cols & 15)) - 1);
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        const uint8_t *w0 = (const uint8_t *)Wd + (size_t)r * (size_t)cols * es;
        const uint8_t *w1 = w0 + (size_t)cols * es;
        const uint8_t *w2 = w1 + (size_t)cols * es;
        const uint8_t *w3 = w2 + (size_t)cols * es;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
        int64_t k = 0;
        if (es == 2) {
            /* 32 columns (one cache line of each row) per step, two accumulators per row, and
             * the same line of the next 4 rows prefetched into L2: the rows are 4 streams that
             * restart on a new page every row, where the hardware prefetchers stall */
            const size_t ahead = 4 * (size_t)cols * es;
            __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
            __m512 b2 = _mm512_setzero_ps(), b3 = _mm512_setzero_ps();
            for (; k + 32 <= kv; k += 32) {
                _mm_prefetch((const char *)(w0 + ahead + (size_t)k * es), _MM_HINT_T1);
                _mm_prefetch((const char *)(w1 + ahead + (size_t)k * es), _MM_HINT_T1);
                _mm_prefetch((const char *)(w2 + ahead + (size_t)k * es), _MM_HINT_T1);
                _mm_prefetch((const char *)(w3 + ahead + (size_t)k * es), _MM_HINT_T1);
                __m512 xv = _mm512_loadu_ps(x + k), xw = _mm512_loadu_ps(x + k + 16);
                a0 = _mm512_fmadd_ps(load16(w0, k, dt), xv, a0);
                a1 = _mm512_fmadd_ps(load16(w1, k, dt), xv, a1);
                a2 = _mm512_fmadd_ps(load16(w2, k, dt), xv, a2);
                a3 = _mm512_fmadd_ps(load16(w3, k, dt), xv, a3);
                b0 = _mm512_fmadd_ps(load16(w0, k + 16, dt), xw, b0);
                b1 = _mm512_fmadd_ps(load16(w1, k + 16, dt), xw, b1);
                b2 = _mm512_fmadd_ps(load16(w2, k + 16, dt), xw, b2);
                b3 = _mm512_fmadd_ps(load16(w3, k + 16, dt), xw, b3);
            }
            a0 = _mm512_add_ps(a0, b0);
            a1 = _mm512_add_ps(a1, b1);
            a2 = _mm512_add_ps(a2, b2);
            a3 = _mm512_add_ps(a3, b3);
        }
        for (; k < kv; k += 16) {
            __m512 xv = _mm512_loadu_ps(x + k);
            a0 = _mm512_fmadd_ps(load16(w0, k, dt), xv, a0);
            a1 = _mm512_fmadd_ps(load16(w1, k, dt), xv, a1);
            a2 = _mm512_fmadd_ps(load16(w2, k, dt), xv, a2);
            a3 = _mm512_fmadd_ps(load16(w3, k, dt), xv, a3);
        }
        if (mt) {
            __m512 xv = _mm512_maskz_loadu_ps(mt, x + kv);
            a0 = _mm512_fmadd_ps(load16_m(w0, kv, dt, mt), xv, a0);
            a1 = _mm512_fmadd_ps(load16_m(w1, kv, dt, mt), xv, a1);
            a2 = _mm512_fmadd_ps(load16_m(w2, kv, dt, mt), xv, a2);
            a3 = _mm512_fmadd_ps(load16_m(w3, kv, dt, mt), xv, a3);
        }
        y[r - r0 + 0] = _mm512_reduce_add_ps(a0);
        y[r - r0 + 1] = _mm512_reduce_add_ps(a1);
        y[r - r0 + 2] = _mm512_reduce_add_ps(a2);
        y[r - r0 + 3] = _mm512_reduce_add_ps(a3);
    }
    for (; r < r1; r++) {
        const uint8_t *w0 = (const uint8_t *)Wd + (size_t)r * (size_t)cols * es;
        __m512 a0 = _mm512_setzero_ps();
        for (int64_t k = 0; k < kv; k += 16)
            a0 = _mm512_fmadd_ps(load16(w0, k, dt), _mm512_loadu_ps(x + k), a0);
        if (mt)
            a0 = _mm512_fmadd_ps(load16_m(w0, kv, dt, mt), _mm512_maskz_loadu_ps(mt, x + kv), a0);
        y[r - r0] = _mm512_reduce_add_ps(a0);
    }
}

static void gemv_avx512(const sk_mat *W, const float *x, float *y, int64_t r0, int64_t r1) {
    switch (W->dtype) {
    case SHRINK_DTYPE_F32: gemv_impl(W->data, W->cols, x, y, r0, r1, SHRINK_DTYPE_F32); break;
    case SHRINK_DTYPE_F16: gemv_impl(W->data, W->cols, x, y, r0, r1, SHRINK_DTYPE_F16); break;
    default:               gemv_impl(W->data, W->cols, x, y, r0, r1, SHRINK_DTYPE_BF16); break;
    }
}

/* ---- packing --------------------------------------------------------------------------- */

/* In-place transpose of 16 rows of 16 floats: r[i][j] -> r[j][i]. */
SK_INLINE void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
#pragma GCC unroll 16
    for (int a = 0; a < 8; a++) {
        t[2 * a] = _mm512_unpacklo_ps(r[2 * a], r[2 * a + 1]);
        t[2 * a + 1] = _mm512_unpackhi_ps(r[2 * a], r[2 * a + 1]);
    }
    /* u[4b + c], 128-bit lane L: column 4L + c of rows 4b .. 4b+3 */
#pragma GCC unroll 16
    for (int b = 0; b < 4; b++) {
        __m512d t0 = _mm512_castps_pd(t[4 * b]), t1 = _mm512_castps_pd(t[4 * b + 1]);
        __m512d t2 = _mm512_castps_pd(t[4 * b + 2]), t3 = _mm512_castps_pd(t[4 * b + 3]);
        u[4 * b + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        u[4 * b + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        u[4 * b + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        u[4 * b + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
#pragma GCC unroll 16
    for (int c = 0; c < 4; c++) {
        __m512 v = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44);
        __m512 w = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
        __m512 v2 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
        __m512 w2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
        r[c] = _mm512_shuffle_f32x4(v, w, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(v, w, 0xDD);
        r[8 + c] = _mm512_shuffle_f32x4(v2, w2, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(v2, w2, 0xDD);
    }
}

SK_INLINE void pack_impl(const sk_mat *W, int64_t r0, int64_t nrows, int64_t k0, int64_t kc,
                         float *dst, shrink_dtype dt) {
    const size_t es = esize(dt);
    const size_t rb = (size_t)W->cols * es;
    const int64_t npanels = (nrows + MR - 1) / MR;
    for (int64_t p = 0; p < npanels; p++) {
        float *pd = dst + p * kc * MR;
        for (int h = 0; h < MR / 16; h++) {
            int64_t rbase = p * MR + h * 16; /* relative to r0 */
            int nvalid = nrows - rbase >= 16 ? 16 : (nrows - rbase > 0 ? (int)(nrows - rbase) : 0);
            const uint8_t *row[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++) /* rows past nrows are never read */
                row[i] = i < nvalid ? (const uint8_t *)W->data + (size_t)(r0 + rbase + i) * rb : NULL;
            for (int64_t kk = 0; kk < kc; kk += 16) {
                int nk = kc - kk >= 16 ? 16 : (int)(kc - kk);
                __mmask16 m = (__mmask16)((1u << nk) - 1);
                __m512 v[16];
                if (nk == 16) {
#pragma GCC unroll 16
                    for (int i = 0; i < 16; i++)
                        v[i] = i < nvalid ? load16(row[i], k0 + kk, dt) : _mm512_setzero_ps();
                } else {
#pragma GCC unroll 16
                    for (int i = 0; i < 16; i++)
                        v[i] = i < nvalid ? load16_m(row[i], k0 + kk, dt, m) : _mm512_setzero_ps();
                }
                transpose16(v);
                float *o = pd + kk * MR + h * 16;
#pragma GCC unroll 16
                for (int j = 0; j < 16; j++) /* constant bounds: v stays in registers */
                    if (j < nk) _mm512_store_ps(o + j * MR, v[j]);
            }
        }
    }
}

static void pack_w_avx512(const sk_mat *W, int64_t r0, int64_t nrows, int64_t k0, int64_t kc,
                          float *dst) {
    switch (W->dtype) {
    case SHRINK_DTYPE_F32: pack_impl(W, r0, nrows, k0, kc, dst, SHRINK_DTYPE_F32); break;
    case SHRINK_DTYPE_F16: pack_impl(W, r0, nrows, k0, kc, dst, SHRINK_DTYPE_F16); break;
    default:               pack_impl(W, r0, nrows, k0, kc, dst, SHRINK_DTYPE_BF16); break;
    }
}

/* X tile: 16 k x up to 16 tokens per transpose; rows past T are zero; 12 lanes stored. */
static void pack_x_avx512(const float *X, int64_t cols, int64_t T, int64_t t0, int64_t k0,
                          int64_t kc, float *dst) {
    int nvalid = T - t0 >= NR ? NR : (int)(T - t0);
    const __mmask16 mst = (__mmask16)((1u << NR) - 1);
    for (int64_t kk = 0; kk < kc; kk += 16) {
        int nk = kc - kk >= 16 ? 16 : (int)(kc - kk);
        __mmask16 m = (__mmask16)((1u << nk) - 1);
        __m512 v[16];
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++)
            v[j] = j < nvalid ? _mm512_maskz_loadu_ps(m, X + (t0 + j) * cols + k0 + kk)
                              : _mm512_setzero_ps();
        transpose16(v);
#pragma GCC unroll 16
        for (int k = 0; k < 16; k++)
            if (k < nk) _mm512_mask_storeu_ps(dst + (kk + k) * NR, mst, v[k]);
    }
}

/* ---- the micro-kernel ------------------------------------------------------------------ */

SK_INLINE void tile_impl(int64_t kc, const float *wp, const float *xp, float *Y, int64_t ldy,
                         const int nt, __mmask16 m0, __mmask16 m1, int accumulate) {
    __m512 c0[NR], c1[NR];
#pragma GCC unroll 12
    for (int j = 0; j < nt; j++) c0[j] = c1[j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        __m512 w0 = _mm512_load_ps(wp + k * MR);
        __m512 w1 = _mm512_load_ps(wp + k * MR + 16);
#pragma GCC unroll 12
        for (int j = 0; j < nt; j++) {
            __m512 b = _mm512_set1_ps(xp[k * NR + j]);
            c0[j] = _mm512_fmadd_ps(w0, b, c0[j]);
            c1[j] = _mm512_fmadd_ps(w1, b, c1[j]);
        }
    }
#pragma GCC unroll 12
    for (int j = 0; j < nt; j++) {
        float *y = Y + j * ldy;
        if (accumulate) {
            c0[j] = _mm512_add_ps(c0[j], _mm512_maskz_loadu_ps(m0, y));
            c1[j] = _mm512_add_ps(c1[j], _mm512_maskz_loadu_ps(m1, y + 16));
        }
        _mm512_mask_storeu_ps(y, m0, c0[j]);
        _mm512_mask_storeu_ps(y + 16, m1, c1[j]);
    }
}

static void tile_avx512(int64_t kc, const float *wp, const float *xp, float *Y, int64_t ldy,
                        int nt, int mrows, int accumulate) {
    __mmask16 m0 = (__mmask16)(mrows >= 16 ? 0xFFFF : (1u << mrows) - 1);
    __mmask16 m1 = (__mmask16)(mrows >= 32 ? 0xFFFF : mrows > 16 ? (1u << (mrows - 16)) - 1 : 0);
    switch (nt) {
#define CASE(n) case n: tile_impl(kc, wp, xp, Y, ldy, n, m0, m1, accumulate); break;
    CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6)
    CASE(7) CASE(8) CASE(9) CASE(10) CASE(11) CASE(12)
#undef CASE
    default: break;
    }
}

/* ---- vector helpers -------------------------------------------------------------------- */

static float dot_avx512(const float *a, const float *b, int64_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = (__mmask16)(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static void axpy_avx512(int64_t n, float alpha, const float *x, float *y) {
    __m512 av = _mm512_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 r = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i));
        _mm512_mask_storeu_ps(y + i, m, r);
    }
}

/* exp(x) for x in lanes: x = n ln2 + r with n = round(x / ln2) and |r| <= ln2/2 (ln2 split in
 * a high and a low part so r is exact to float precision), e^r by a degree-6 polynomial
 * (Cephes expf coefficients), then scaled by 2^n with vscalefps, which also gives 0 for
 * very negative x. Inputs here are <= 0 (x - max), so there is no overflow. */
static inline __m512 exp_avx512(__m512 x) {
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 ln2_hi = _mm512_set1_ps(0.693359375f);
    const __m512 ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT);
    __m512 r = _mm512_fnmadd_ps(n, ln2_hi, x);
    r = _mm512_fnmadd_ps(n, ln2_lo, r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

static float exp_sum_avx512(float *x, int64_t n, float sub) {
    const __m512 vs = _mm512_set1_ps(sub);
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vs));
        _mm512_storeu_ps(x + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vs));
        _mm512_mask_storeu_ps(x + i, m, e);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(m, e));
    }
    return _mm512_reduce_add_ps(acc);
}

const sk_kernel_set sk_kernels_avx512 = {
    .name = "avx512", .isa = SK_ISA_AVX512, .mr = MR, .nr = NR,
    .gemv = gemv_avx512, .pack_w = pack_w_avx512, .pack_x = pack_x_avx512, .tile = tile_avx512,
    .dot_f32 = dot_avx512, .axpy_f32 = axpy_avx512, .exp_sum_f32 = exp_sum_avx512,
};
