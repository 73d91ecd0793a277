/*
 * kquants.c - llama.cpp's K-quant super-block types Q4_K, Q5_K, Q6_K (and Q8_K, the activation
 * format of K-quant dot products): scalar dequantizers equal bit for bit to ggml's, and the
 * round-to-nearest reference quantizers that give ggml's bytes (quantize_row_<type>_ref,
 * no importance matrix). Layouts: ggml_quants.h.
 *
 * The quantizers search for each sub-block's scale (and min) minimizing a weighted squared
 * error, then quantize the scales themselves to 6 bits (Q4_K/Q5_K, relative to the fp16
 * super-block scales d and dmin) or 8 bits (Q6_K). Every float operation is written in
 * ggml's order; the file is built with -ffp-contract=off (Makefile). The Q4_K/Q5_K scale
 * and Q6_K scale searches run 4 sub-blocks per vector (fit_scale_min_x4, fit_scale_sym_x4:
 * the same operations per lane, so the same bytes, about 3x faster); fit_scale_min and
 * fit_scale_sym are their scalar references (sk_k_quant_scalar).
 */
#include "kernels.h"
#include "ggml_quants.h"

#include <math.h>

#define GROUP_MAX_EPS 1e-15f

/* Round to nearest, ties to even, for |v| < 2^22 (the 1.5 * 2^23 trick, exact in float). */
static int nearest_int(float v) {
    float f = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &f, 4);
    return (i & 0x007FFFFF) - 0x00400000;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Scale and min of n values (x ~ scale * L - min, L in [0, nmax], min >= 0 returned as
 * *neg_min = -min clipped so that the zero point is not positive): starts from the
 * min/max grid, then tries nstep + 1 slightly different grid spacings (rmin + rdelta * is
 * steps wider) and keeps the weighted least-squares fit with the smallest error (weighted
 * squared error, or weighted absolute error when abs_err: Q2_K). */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *neg_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                           int abs_err) {
    float mn = x[0], mx = x[0];
    float sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (mn > 0) mn = 0;
    if (mx == mn) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *neg_min = -mn;
        return 0.0f;
    }
    float iscale = (float)nmax / (mx - mn);
    float scale = 1 / iscale;
    float best_err = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nearest_int(iscale * (x[i] - mn)), 0, nmax);
        float diff = scale * L[i] + mn - x[i];
        best_err += w[i] * (abs_err ? fabsf(diff) : diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (mx - mn);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest_int(iscale * (x[i] - mn)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                err += w[i] * (abs_err ? fabsf(diff) : diff * diff);
            }
            if (err < best_err) {
                for (int i = 0; i < n; i++) L[i] = Laux[i];
                best_err = err;
                scale = this_scale;
                mn = this_min;
            }
        }
    }
    *neg_min = -mn;
    return scale;
}

/* fit_scale_min for 4 sub-blocks of 32 of a Q4_K/Q5_K super-block at once, lane j being
 * sub-block j0 + j: xt[i][j] = x[32 (j0 + j) + i], wt likewise. Every lane performs exactly
 * fit_scale_min's float operations in its order (its branches become per-lane selects), so
 * the results are bit-identical; GCC's generic vectors make them SSE2 instructions on
 * baseline x86-64 (NEON on arm). test_quantize compares both on random data. */
typedef float   v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static v4i v4_nearest_int(v4f v) {
    v4f f = v + 12582912.0f;
    v4i i;
    memcpy(&i, &f, sizeof i);
    return (i & 0x007FFFFF) - 0x00400000;
}

static v4i v4_clamp(v4i v, int lo, int hi) {
    v4i lo_m = v < lo, hi_m = v > hi;
    v4i lv = {lo, lo, lo, lo}, hv = {hi, hi, hi, hi};
    v = (v & ~lo_m) | (lv & lo_m);
    return (v & ~hi_m) | (hv & hi_m);
}

static v4f v4_sel(v4i m, v4f a, v4f b) { /* m ? a : b, lanes of m all ones or zero */
    v4i ai, bi, r;
    memcpy(&ai, &a, sizeof ai);
    memcpy(&bi, &b, sizeof bi);
    r = (ai & m) | (bi & ~m);
    v4f out;
    memcpy(&out, &r, sizeof out);
    return out;
}

static void fit_scale_min_x4(int nmax, const v4f xt[32], const v4f wt[32], uint8_t *L,
                             float scale_out[4], float neg_min_out[4], float rmin, float rdelta,
                             int nstep) {
    v4f mn = xt[0], mx = xt[0];
    v4f sum_w = wt[0], sum_x = sum_w * xt[0];
    for (int i = 1; i < 32; i++) {
        mn = v4_sel(xt[i] < mn, xt[i], mn);
        mx = v4_sel(xt[i] > mx, xt[i], mx);
        sum_w += wt[i];
        sum_x += wt[i] * xt[i];
    }
    const v4f zero = {0, 0, 0, 0};
    mn = v4_sel(mn > 0, zero, mn);
    const v4i flat = mx == mn; /* fit_scale_min returns early: L = 0, scale 0 */
    v4f iscale = (zero + (float)nmax) / (mx - mn);
    v4f scale = 1 / iscale;
    v4f best_err = zero;
    v4i Lv[32], Laux[32];
    for (int i = 0; i < 32; i++) {
        Lv[i] = v4_clamp(v4_nearest_int(iscale * (xt[i] - mn)), 0, nmax);
        v4f diff = scale * __builtin_convertvector(Lv[i], v4f) + mn - xt[i];
        best_err += wt[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (mx - mn);
        v4f sum_l = zero, sum_l2 = zero, sum_xl = zero;
        for (int i = 0; i < 32; i++) {
            Laux[i] = v4_clamp(v4_nearest_int(iscale * (xt[i] - mn)), 0, nmax);
            v4f l = __builtin_convertvector(Laux[i], v4f);
            sum_l += wt[i] * l;
            sum_l2 += wt[i] * l * l;
            sum_xl += wt[i] * l * xt[i];
        }
        v4f D = sum_w * sum_l2 - sum_l * sum_l;
        v4f this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        v4f this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        v4i pos = this_min > 0;
        this_min = v4_sel(pos, zero, this_min);
        this_scale = v4_sel(pos, sum_xl / sum_l2, this_scale);
        v4f err = zero;
        for (int i = 0; i < 32; i++) {
            v4f diff = this_scale * __builtin_convertvector(Laux[i], v4f) + this_min - xt[i];
            err += wt[i] * (diff * diff);
        }
        v4i better = (D > 0) & ~flat & (err < best_err);
        for (int i = 0; i < 32; i++) Lv[i] = (Laux[i] & better) | (Lv[i] & ~better);
        best_err = v4_sel(better, err, best_err);
        scale = v4_sel(better, this_scale, scale);
        mn = v4_sel(better, this_min, mn);
    }
    for (int j = 0; j < 4; j++) {
        scale_out[j] = flat[j] ? 0.0f : scale[j];
        neg_min_out[j] = -mn[j];
        for (int i = 0; i < 32; i++) L[32 * j + i] = flat[j] ? 0 : (uint8_t)Lv[i][j];
    }
}

/* Symmetric scale of n values, L in [0, 2*nmax) holding q + nmax (q in [-nmax, nmax-1]):
 * the grid through the signed absmax, then 18 nearby grid spacings, keeping the best
 * x^2-weighted least-squares scale. */
/* The value of largest magnitude among n (its sign kept); 0 and L zeroed when all are below
 * GROUP_MAX_EPS (the symmetric fits then return scale 0). */
static float signed_absmax(int n, const float *x, int8_t *L) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    if (amax >= GROUP_MAX_EPS) return max;
    for (int i = 0; i < n; i++) L[i] = 0;
    return 0.0f;
}

static float fit_scale_sym(int n, int nmax, const float *x, int8_t *L) {
    const float max = signed_absmax(n, x, L);
    if (max == 0.0f) return 0.0f;
    float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* fit_scale_sym for 4 sub-blocks of 16 at once (lane j: xt[i][j] = element i of sub-block
 * j; L[16 j + i]), each lane doing fit_scale_sym's float operations in its order. */
static void fit_scale_sym_x4(int nmax, const v4f xt[16], int8_t *L, float scale_out[4]) {
    const v4f zero = {0, 0, 0, 0};
    const v4i sign = {0x7FFFFFFF, 0x7FFFFFFF, 0x7FFFFFFF, 0x7FFFFFFF};
    v4f amax = zero, max = zero;
    for (int i = 0; i < 16; i++) {
        v4i bits;
        memcpy(&bits, &xt[i], sizeof bits);
        bits &= sign;
        v4f ax;
        memcpy(&ax, &bits, sizeof ax);
        v4i m = ax > amax;
        amax = v4_sel(m, ax, amax);
        max = v4_sel(m, xt[i], max);
    }
    const v4i tiny = amax < GROUP_MAX_EPS; /* fit_scale_sym returns early: L = 0, scale 0 */
    v4f iscale = (float)-nmax / max;
    v4f sumlx = zero, suml2 = zero;
    v4i Lv[16];
    for (int i = 0; i < 16; i++) {
        Lv[i] = v4_clamp(v4_nearest_int(iscale * xt[i]), -nmax, nmax - 1);
        v4f l = __builtin_convertvector(Lv[i], v4f);
        v4f w = xt[i] * xt[i];
        sumlx += w * xt[i] * l;
        suml2 += w * l * l;
    }
    v4f scale = v4_sel(suml2 != 0, sumlx / suml2, zero);
    v4f best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        v4i Laux[16];
        sumlx = suml2 = zero;
        for (int i = 0; i < 16; i++) {
            Laux[i] = v4_clamp(v4_nearest_int(iscale * xt[i]), -nmax, nmax - 1);
            v4f l = __builtin_convertvector(Laux[i], v4f);
            v4f w = xt[i] * xt[i];
            sumlx += w * xt[i] * l;
            suml2 += w * l * l;
        }
        v4i better = ~tiny & (suml2 > 0) & (sumlx * sumlx > best * suml2);
        for (int i = 0; i < 16; i++) Lv[i] = (Laux[i] & better) | (Lv[i] & ~better);
        scale = v4_sel(better, sumlx / suml2, scale);
        best = v4_sel(better, scale * sumlx, best);
    }
    for (int j = 0; j < 4; j++) {
        scale_out[j] = tiny[j] ? 0.0f : scale[j];
        for (int i = 0; i < 16; i++) L[16 * j + i] = (int8_t)(tiny[j] ? 0 : Lv[i][j] + nmax);
    }
}

/* Scale and min of sub-block j (< 8) from the 12 packed bytes: j < 4 in the low 6 bits of
 * bytes j and j+4; j >= 4 split as 4 low bits in byte j+4 and 2 high bits on top of
 * bytes j-4 (scale) and j (min). */
void sk_k4_scale_min(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0F) | (q[j - 4] >> 6) << 4;
        *m = (q[j + 4] >> 4) | (q[j] >> 6) << 4;
    }
}

/* Packs 8 six-bit scales and mins (the inverse of scale_min_k4). */
void sk_k4_pack_scales(const int ls[8], const int lm[8], uint8_t q[SK_K_SCALE_SIZE]) {
    for (int j = 0; j < 4; j++) {
        q[j] = (uint8_t)ls[j];
        q[j + 4] = (uint8_t)lm[j];
    }
    for (int j = 4; j < 8; j++) {
        q[j + 4] = (uint8_t)((ls[j] & 0x0F) | (lm[j] & 0x0F) << 4);
        q[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
        q[j] |= (uint8_t)((lm[j] >> 4) << 6);
    }
}

/* Common part of Q4_K/Q5_K: per-sub-block fits, 6-bit scales/mins, then the final levels
 * L[256] in [0, nmax] against the quantized scales. */
static void quant_k_scales(const float *x, int nmax, float rmin, int nstep, uint8_t L[SK_QK_K],
                           sk_half *d, sk_half *dmin, uint8_t scales[SK_K_SCALE_SIZE],
                           int scalar) {
    float w[32], sc[8], mins[8];
    uint8_t Laux[32];
    v4f xt[2][32], wt[2][32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xs[l]);
        if (scalar) {
            sc[j] = fit_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep,
                                      0);
        } else {
            for (int l = 0; l < 32; l++) {
                xt[j / 4][l][j % 4] = xs[l];
                wt[j / 4][l][j % 4] = w[l];
            }
        }
    }
    for (int g = 0; g < 2 && !scalar; g++)
        fit_scale_min_x4(nmax, xt[g], wt[g], L + 128 * g, sc + 4 * g, mins + 4 * g, rmin, 0.1f,
                         nstep);
    for (int j = 0; j < 8; j++) {
        if (sc[j] > max_scale) max_scale = sc[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    int ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = nearest_int(inv_scale * sc[j]);
        lm[j] = nearest_int(inv_min * mins[j]);
        if (ls[j] > 63) ls[j] = 63;
        if (lm[j] > 63) lm[j] = 63;
    }
    memset(scales, 0, SK_K_SCALE_SIZE);
    sk_k4_pack_scales(ls, lm, scales);
    *d = sk_f32_to_f16(max_scale / 63.0f);
    *dmin = sk_f32_to_f16(max_min / 63.0f);
    for (int j = 0; j < 8; j++) {
        int s, m;
        sk_k4_scale_min(j, scales, &s, &m);
        float dj = sk_f16_to_f32(*d) * (float)s;
        if (dj == 0.0f) continue;
        float dm = sk_f16_to_f32(*dmin) * (float)m;
        for (int i = 0; i < 32; i++)
            L[32 * j + i] = (uint8_t)clampi(nearest_int((x[32 * j + i] + dm) / dj), 0, nmax);
    }
}

/* ---- Q4_K ---- */

void sk_q4_K_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q4_K *b = src;
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        float d = sk_f16_to_f32(b[i].d), dmin = sk_f16_to_f32(b[i].dmin);
        const uint8_t *q = b[i].qs;
        float *y = dst + i * SK_QK_K;
        /* 64 elements per 32 bytes: low nibbles are sub-block 2k, high nibbles 2k+1 */
        for (int k = 0; k < 4; k++, q += 32, y += 64) {
            int s0, m0, s1, m1;
            sk_k4_scale_min(2 * k, b[i].scales, &s0, &m0);
            sk_k4_scale_min(2 * k + 1, b[i].scales, &s1, &m1);
            float d0 = d * (float)s0, mm0 = dmin * (float)m0;
            float d1 = d * (float)s1, mm1 = dmin * (float)m1;
            for (int l = 0; l < 32; l++) y[l] = d0 * (float)(q[l] & 0x0F) - mm0;
            for (int l = 0; l < 32; l++) y[32 + l] = d1 * (float)(q[l] >> 4) - mm1;
        }
    }
}

static void q4_K_quant(const float *src, void *dst, int64_t n, int scalar) {
    block_q4_K *b = dst;
    uint8_t L[SK_QK_K];
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        quant_k_scales(src + i * SK_QK_K, 15, -1.0f, 20, L, &b[i].d, &b[i].dmin, b[i].scales,
                       scalar);
        sk_q4_K_pack(&b[i], L);
    }
}

void sk_q4_K_pack(block_q4_K *b, const uint8_t L[SK_QK_K]) {
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < 32; l++)
            b->qs[32 * k + l] = (uint8_t)(L[64 * k + l] | L[64 * k + 32 + l] << 4);
}

void sk_q4_K_quant_ref(const float *src, void *dst, int64_t n) { q4_K_quant(src, dst, n, 0); }

/* ---- Q5_K ---- */

void sk_q5_K_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q5_K *b = src;
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        float d = sk_f16_to_f32(b[i].d), dmin = sk_f16_to_f32(b[i].dmin);
        const uint8_t *q = b[i].qs;
        float *y = dst + i * SK_QK_K;
        /* sub-block 2k: low nibbles + bit 2k of qh; 2k+1: high nibbles + bit 2k+1 */
        for (int k = 0; k < 4; k++, q += 32, y += 64) {
            int s0, m0, s1, m1;
            sk_k4_scale_min(2 * k, b[i].scales, &s0, &m0);
            sk_k4_scale_min(2 * k + 1, b[i].scales, &s1, &m1);
            float d0 = d * (float)s0, mm0 = dmin * (float)m0;
            float d1 = d * (float)s1, mm1 = dmin * (float)m1;
            for (int l = 0; l < 32; l++)
                y[l] = d0 * (float)((q[l] & 0x0F) + ((b[i].qh[l] >> (2 * k) & 1) << 4)) - mm0;
            for (int l = 0; l < 32; l++)
                y[32 + l] = d1 * (float)((q[l] >> 4) + ((b[i].qh[l] >> (2 * k + 1) & 1) << 4)) - mm1;
        }
    }
}

static void q5_K_quant(const float *src, void *dst, int64_t n, int scalar) {
    block_q5_K *b = dst;
    uint8_t L[SK_QK_K];
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        quant_k_scales(src + i * SK_QK_K, 31, -0.5f, 15, L, &b[i].d, &b[i].dmin, b[i].scales,
                       scalar);
        sk_q5_K_pack(&b[i], L);
    }
}

void sk_q5_K_pack(block_q5_K *b, const uint8_t L[SK_QK_K]) {
    memset(b->qh, 0, sizeof b->qh);
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < 32; l++) {
            int l0 = L[64 * k + l], l1 = L[64 * k + 32 + l];
            b->qs[32 * k + l] = (uint8_t)((l0 & 0x0F) | (l1 & 0x0F) << 4);
            b->qh[l] |= (uint8_t)((l0 >> 4) << (2 * k) | (l1 >> 4) << (2 * k + 1));
        }
}

void sk_q5_K_quant_ref(const float *src, void *dst, int64_t n) { q5_K_quant(src, dst, n, 0); }


/* ---- Q6_K ---- */

void sk_q6_K_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q6_K *b = src;
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        float d = sk_f16_to_f32(b[i].d);
        float *y = dst + i * SK_QK_K;
        /* two halves of 128: ql[64], qh[32], scales[8] each; element 32*g + l of a half
         * (g < 4) has low bits in ql[l + 32*(g&1)] (nibble g>>1), high bits at 2g of qh[l] */
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b[i].ql + 64 * h, *qh = b[i].qh + 32 * h;
            const int8_t *sc = b[i].scales + 8 * h;
            for (int g = 0; g < 4; g++)
                for (int l = 0; l < 32; l++) {
                    int lo = (ql[l + 32 * (g & 1)] >> (4 * (g >> 1))) & 0x0F;
                    int q = (lo | ((qh[l] >> (2 * g)) & 3) << 4) - 32;
                    y[128 * h + 32 * g + l] = d * (float)sc[l / 16 + 2 * g] * (float)q;
                }
        }
    }
}

static void q6_K_quant(const float *src, void *dst, int64_t n, int scalar) {
    block_q6_K *b = dst;
    int8_t L[SK_QK_K];
    float scales[SK_QK_K / 16];
    v4f xt[16];
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        const float *x = src + i * SK_QK_K;
        float max_scale = 0, max_abs = 0;
        for (int g = 0; g < SK_QK_K / 64 && !scalar; g++) {
            for (int j = 0; j < 4; j++)
                for (int k = 0; k < 16; k++) xt[k][j] = x[64 * g + 16 * j + k];
            fit_scale_sym_x4(32, xt, L + 64 * g, scales + 4 * g);
        }
        for (int ib = 0; ib < SK_QK_K / 16; ib++) {
            if (scalar) scales[ib] = fit_scale_sym(16, 32, x + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs) {
                max_abs = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        if (max_abs < GROUP_MAX_EPS) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        float iscale = -128.0f / max_scale;
        b[i].d = sk_f32_to_f16(1 / iscale);
        for (int ib = 0; ib < SK_QK_K / 16; ib++) {
            int s = nearest_int(iscale * scales[ib]);
            b[i].scales[ib] = (int8_t)(s < 127 ? s : 127);
        }
        for (int j = 0; j < SK_QK_K / 16; j++) {
            float dj = sk_f16_to_f32(b[i].d) * (float)b[i].scales[j];
            if (dj == 0.0f) continue;
            for (int k = 0; k < 16; k++)
                L[16 * j + k] = (int8_t)(clampi(nearest_int(x[16 * j + k] / dj), -32, 31) + 32);
        }
        sk_q6_K_pack(&b[i], L);
    }
}

void sk_q6_K_pack(block_q6_K *b, const int8_t L[SK_QK_K]) {
    for (int h = 0; h < 2; h++) {
        uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        const int8_t *Lh = L + 128 * h;
        for (int l = 0; l < 32; l++) {
            ql[l] = (uint8_t)((Lh[l] & 0x0F) | (Lh[l + 64] & 0x0F) << 4);
            ql[l + 32] = (uint8_t)((Lh[l + 32] & 0x0F) | (Lh[l + 96] & 0x0F) << 4);
            qh[l] = (uint8_t)((Lh[l] >> 4) | (Lh[l + 32] >> 4) << 2 | (Lh[l + 64] >> 4) << 4 |
                              (Lh[l + 96] >> 4) << 6);
        }
    }
}

void sk_q6_K_quant_ref(const float *src, void *dst, int64_t n) { q6_K_quant(src, dst, n, 0); }

/* ---- Q2_K: 16 sub-blocks of 16, 2-bit codes, 4-bit scale and min per sub-block ---- */

/* Element 128*h + 32*g + l (h < 2, g < 4, l < 32) is bits 2g..2g+1 of qs[32h + l]; it is in
 * sub-block 8h + 2g + l/16, whose scale is the low and min the high nibble of scales[]:
 * x = d * sc * q - dmin * m. */
void sk_q2_K_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q2_K *b = src;
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        const float d = sk_f16_to_f32(b[i].d), dmin = sk_f16_to_f32(b[i].dmin);
        float *y = dst + i * SK_QK_K;
        for (int e = 0; e < SK_QK_K; e++) {
            const int h = e / 128, g = e % 128 / 32, l = e % 32;
            const uint8_t sm = b[i].scales[e / 16];
            const int q = b[i].qs[32 * h + l] >> (2 * g) & 3;
            y[e] = d * (float)(sm & 0x0F) * (float)q - dmin * (float)(sm >> 4);
        }
    }
}

/* Writes 2-bit levels L[256] (element order above) into the code bytes qs[64]: the 4 levels
 * of elements l, l+32, l+64, l+96 of each half share a byte (also Q3_K's low bits). */
static void pack_2bit(const uint8_t *L, uint8_t qs[SK_QK_K / 4]) {
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *Lh = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)(Lh[0] | Lh[32] << 2 | Lh[64] << 4 | Lh[96] << 6);
        }
}

/* Round to nearest like ggml's quantize_row_q2_K_ref: each sub-block's scale and min fitted
 * with |x|-weighted absolute error (fit_scale_min), the 16 scales and the 16 mins quantized to
 * 4 bits against their maxima (d = max_scale / 15, dmin = max_min / 15), then the levels
 * again against the quantized scales. */
static void q2_K_quant(const float *src, void *dst, int64_t n) {
    block_q2_K *b = dst;
    uint8_t L[SK_QK_K], Laux[16];
    float w[16], sc[16], mins[16];
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        const float *x = src + i * SK_QK_K;
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
            sc[j] = fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f,
                                  15, 1);
            if (sc[j] > max_scale) max_scale = sc[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        memset(b[i].scales, 0, sizeof b[i].scales);
        b[i].d = b[i].dmin = 0; /* +0.0 in fp16 */
        if (max_scale > 0) {
            const float inv = 15.0f / max_scale;
            for (int j = 0; j < 16; j++) b[i].scales[j] = (uint8_t)nearest_int(inv * sc[j]);
            b[i].d = sk_f32_to_f16(max_scale / 15.0f);
        }
        if (max_min > 0) {
            const float inv = 15.0f / max_min;
            for (int j = 0; j < 16; j++)
                b[i].scales[j] |= (uint8_t)(nearest_int(inv * mins[j]) << 4);
            b[i].dmin = sk_f32_to_f16(max_min / 15.0f);
        }
        for (int j = 0; j < 16; j++) {
            const float dj = sk_f16_to_f32(b[i].d) * (float)(b[i].scales[j] & 0x0F);
            if (dj == 0.0f) continue;
            const float dm = sk_f16_to_f32(b[i].dmin) * (float)(b[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (uint8_t)clampi(nearest_int((x[16 * j + l] + dm) / dj), 0, 3);
        }
        sk_q2_K_pack(&b[i], L);
    }
}

void sk_q2_K_pack(block_q2_K *b, const uint8_t L[SK_QK_K]) { pack_2bit(L, b->qs); }

void sk_q2_K_quant_ref(const float *src, void *dst, int64_t n) { q2_K_quant(src, dst, n); }

/* ---- Q3_K: 16 sub-blocks of 16, 3-bit codes (2 low bits as Q2_K, the 3rd in hmask),
 * 6-bit signed scales (offset 32) ---- */

/* The 6-bit scale j (< 16) of the 12 packed bytes: low 4 bits in the low (j < 8) or high
 * (j >= 8) nibble of byte j % 8, the 2 high bits at 2 * (j / 4) of byte 8 + j % 4. */
static int q3_scale(const uint8_t *s, int j) {
    int lo = j < 8 ? s[j] & 0x0F : s[j - 8] >> 4;
    return (lo | (s[8 + j % 4] >> (2 * (j / 4)) & 3) << 4) - 32;
}

/* Element 128*h + 32*g + l: low bits 2g of qs[32h + l] (as Q2_K), the 3rd bit is bit
 * 4h + g of hmask[l] (set: q in [0, 3]; clear: q - 4); sub-block e / 16:
 * x = d * (sc - 32) * q. */
void sk_q3_K_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q3_K *b = src;
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        const float d = sk_f16_to_f32(b[i].d);
        float *y = dst + i * SK_QK_K;
        for (int e = 0; e < SK_QK_K; e++) {
            const int h = e / 128, g = e % 128 / 32, l = e % 32;
            int q = b[i].qs[32 * h + l] >> (2 * g) & 3;
            if (!(b[i].hmask[l] >> (4 * h + g) & 1)) q -= 4;
            y[e] = d * (float)q3_scale(b[i].scales, e / 16) * (float)q;
        }
    }
}

/* Symmetric scale of n values with levels in [-nmax, nmax - 1] (L holds level + nmax): the
 * grid through the signed absmax, then up to 5 sweeps moving single levels to the one that
 * is best for the x^2-weighted least-squares scale of the others, kept when the fit
 * improves (ggml's make_q3_quants with its rmse refinement). */
static float fit_scale_sym_sweep(int n, int nmax, const float *x, int8_t *L) {
    const float max = signed_absmax(n, x, L);
    if (max == 0.0f) return 0.0f;
    const float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int sweep = 0; sweep < 5; sweep++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (!(slx > 0)) continue;
            float sl2 = suml2 - w * (float)L[i] * (float)L[i];
            int nl = clampi(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (nl == L[i]) continue;
            slx += w * x[i] * (float)nl;
            sl2 += w * (float)nl * (float)nl;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return sumlx / suml2;
}

/* Round to nearest like ggml's quantize_row_q3_K_ref: sub-block scales from
 * fit_scale_sym_sweep, quantized to 6 bits against the signed largest (d = max / -32),
 * then the levels against the quantized scales. */
static void q3_K_quant(const float *src, void *dst, int64_t n) {
    block_q3_K *b = dst;
    int8_t L[SK_QK_K];
    float sc[16];
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        const float *x = src + i * SK_QK_K;
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            sc[j] = fit_scale_sym_sweep(16, 4, x + 16 * j, L + 16 * j);
            if (fabsf(sc[j]) > amax) {
                amax = fabsf(sc[j]);
                max_scale = sc[j];
            }
        }
        memset(b[i].scales, 0, sizeof b[i].scales);
        b[i].d = 0;
        if (max_scale != 0) {
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < 16; j++) {
                int l = clampi(nearest_int(iscale * sc[j]), -32, 31) + 32;
                b[i].scales[j % 8] |= (uint8_t)((l & 0x0F) << (j < 8 ? 0 : 4));
                b[i].scales[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            b[i].d = sk_f32_to_f16(1 / iscale);
        }
        for (int j = 0; j < 16; j++) {
            const float dj = sk_f16_to_f32(b[i].d) * (float)q3_scale(b[i].scales, j);
            if (dj == 0.0f) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(clampi(nearest_int(x[16 * j + l] / dj), -4, 3) + 4);
        }
        sk_q3_K_pack(&b[i], L);
    }
}

void sk_q3_K_pack(block_q3_K *b, const int8_t L[SK_QK_K]) {
    uint8_t Lu[SK_QK_K];
    memset(b->hmask, 0, sizeof b->hmask);
    for (int e = 0; e < SK_QK_K; e++) {
        int v = L[e];
        if (v > 3) {
            b->hmask[e % 32] |= (uint8_t)(1 << (e / 32));
            v -= 4;
        }
        Lu[e] = (uint8_t)v;
    }
    pack_2bit(Lu, b->qs);
}

void sk_q3_K_quant_ref(const float *src, void *dst, int64_t n) { q3_K_quant(src, dst, n); }

/* ---- Q8_K: x = d * q, q in [-128, 127], d = signed absmax / -127 ---- */

void sk_q8_K_dequant_ref(const void *src, float *dst, int64_t n) {
    const block_q8_K *b = src;
    for (int64_t i = 0; i < n / SK_QK_K; i++)
        for (int j = 0; j < SK_QK_K; j++) dst[i * SK_QK_K + j] = b[i].d * (float)b[i].qs[j];
}

void sk_q8_K_quant_ref(const float *src, void *dst, int64_t n) {
    block_q8_K *b = dst;
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        const float *x = src + i * SK_QK_K;
        float amax = 0, max = 0;
        for (int j = 0; j < SK_QK_K; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        memset(&b[i], 0, sizeof b[i]);
        if (amax == 0) continue;
        float iscale = -127.0f / max;
        for (int j = 0; j < SK_QK_K; j++) {
            int v = nearest_int(iscale * x[j]);
            b[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < SK_QK_K / 16; j++) {
            int sum = 0;
            for (int k = 0; k < 16; k++) sum += b[i].qs[16 * j + k];
            b[i].bsums[j] = (int16_t)sum;
        }
        b[i].d = 1 / iscale;
    }
}

void sk_k_quant_scalar(shrink_dtype t, const float *src, void *dst, int64_t n) {
    SHRINK_ASSERT(t == SHRINK_DTYPE_Q4_K || t == SHRINK_DTYPE_Q5_K || t == SHRINK_DTYPE_Q6_K);
    if (t == SHRINK_DTYPE_Q4_K) q4_K_quant(src, dst, n, 1);
    else if (t == SHRINK_DTYPE_Q5_K) q5_K_quant(src, dst, n, 1);
    else q6_K_quant(src, dst, n, 1);
}
