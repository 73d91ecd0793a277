/*
 * q_imatrix.c - ggml's importance-weighted quantizers (what llama-quantize --imatrix writes),
 * written from the published algorithm of ggml-quants.c at llama.cpp c392e50; the arithmetic
 * follows it operation by operation (float, in the same order, no fused multiply-add: this
 * file is built with -ffp-contract=off) so that the bytes are ggml's
 * (tests/test_quants.c checks them against ../shared/fixtures/ggml's imatrix vectors).
 *
 * Per row x of n elements with the importance qw[n] of its columns:
 *   q4_0, q5_0  per block of 32, weights w = qw * sqrt(sigma2 + x^2), sigma2 = mean x^2 of the
 *               row; the symmetric scale of fit_sym (19 candidate grid spacings around
 *               nmax / max, each refitted by weighted least squares);
 *   q4_1, q5_1  the same weights; scale and min of fit_min (37 grid spacings, weighted least
 *               squares of scale and min, the smallest weighted error kept);
 *   q4_K, q5_K  per super-block sigma2 = 2 mean x^2; per sub-block of 32 fit_min, then the
 *               8 scales and 8 mins quantized to 6 bits by fit_pos weighted by the sub-block
 *               weight sums; the codes again against the stored scales;
 *   q6_K        per sub-block of 16 fit_sym with w = qw alone; 8-bit scales from the largest.
 *   q2_K        per super-block sigma2 = mean x^2; per sub-block of 16 fit_min (codes 0..3),
 *               the 16 scales and 16 mins to 4 bits by fit_pos weighted by the weight sums;
 *   q3_K        sigma2 = 2 mean x^2; per sub-block of 16 fit_sym (codes -4..3), the 16 scales
 *               to 6 bits by fit_sym (codes -32..31) weighted by the weight sums;
 * q8_0 has none: ggml ignores the importance there (its from_f32 is llama-quantize's).
 */
#include "q_imatrix.h"
#include "ggml_quants.h"
#include "kernels.h"

#include <math.h>

#define GROUP_MAX_EPS 1e-15f

/* Round to nearest, ties to even (|v| < 2^22): 1.5 * 2^23 added in float. */
static int near_int(float v) {
    float f = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &f, 4);
    return (i & 0x007FFFFF) - 0x00400000;
}

static int clamp_i(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The symmetric codes of x at inverse scale id (code + nmax, codes in [-nmax, nmax - 1]) into C;
 * returns 1 if they equal P's. */
static int sym_codes(int n, int nmax, const float *x, float id, int8_t *C, const int8_t *P) {
    int same = 1;
    for (int i = 0; i < n; i++) {
        C[i] = (int8_t)(clamp_i(near_int(id * x[i]), -nmax, nmax - 1) + nmax);
        same &= C[i] == P[i];
    }
    return same;
}

/* Weighted sums of the codes C (code + nmax), in ggml's order. */
static void sym_sums(int n, int nmax, const float *x, const float *w, const int8_t *C,
                     float *sumlx, float *suml2) {
    float a = 0, b = 0;
    for (int i = 0; i < n; i++) {
        const int l = C[i] - nmax;
        a += w[i] * x[i] * (float)l;
        b += w[i] * (float)l * (float)l;
    }
    *sumlx = a;
    *suml2 = b;
}

/* ggml's make_qx_quants with weights: the scale d of x ~ d (L - nmax). A candidate whose codes
 * equal the previous candidate's is skipped: the same sums meet the same state (or the state
 * those codes made), so the outcome is the same. */
static float fit_sym(int n, int nmax, const float *x, int8_t *L, const float *w) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    int8_t P[32], C[32];
    SHRINK_ASSERT(n <= 32);
    float sumlx, suml2;
    sym_codes(n, nmax, x, (float)-nmax / max, L, L);
    sym_sums(n, nmax, x, w, L, &sumlx, &suml2);
    memcpy(P, L, (size_t)n);
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        float id = -((float)nmax + 0.1f * (float)is) / max;
        if (sym_codes(n, nmax, x, id, C, P)) continue;
        memcpy(P, C, (size_t)n);
        sym_sums(n, nmax, x, w, C, &sumlx, &suml2);
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            memcpy(L, C, (size_t)n);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* ggml's make_qkx3_quants with weights (squared error): x ~ scale * L - *neg_min, L in
 * [0, nmax]; returns the scale. */
static float fit_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min,
                     uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max <= min) {
        memset(L, 0, (size_t)n);
        *neg_min = -min;
        return 0.0f;
    }
    float id = (float)nmax / (max - min), scale = 1 / id, best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clamp_i(near_int(id * (x[i] - min)), 0, nmax);
        float diff = scale * (float)L[i] + min - x[i];
        best += w[i] * (diff * diff);
    }
    /* A step whose codes equal the previous step's gives the same sums and error, which was
     * either taken (then not smaller than itself) or not: skipped, with the same result. */
    uint8_t Lc[32];
    SHRINK_ASSERT(n <= 32);
    for (int is = 0; is <= nstep; is++) {
        id = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        int same = is > 0;
        for (int i = 0; i < n; i++) {
            Lc[i] = (uint8_t)clamp_i(near_int(id * (x[i] - min)), 0, nmax);
            same &= Lc[i] == Laux[i];
        }
        if (same) continue;
        memcpy(Laux, Lc, (size_t)n);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            const int l = Laux[i];
            sl += w[i] * (float)l;
            sl2 += w[i] * (float)l * (float)l;
            sxl += w[i] * (float)l * x[i];
        }
        float D = sum_w * sl2 - sl * sl;
        if (!(D > 0)) continue;
        float s = (sum_w * sxl - sum_x * sl) / D, m = (sl2 * sum_x - sl * sxl) / D;
        if (m > 0) {
            m = 0;
            s = sxl / sl2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float diff = s * (float)Laux[i] + m - x[i];
            err += w[i] * (diff * diff);
        }
        if (err < best) {
            memcpy(L, Laux, (size_t)n);
            best = err;
            scale = s;
            min = m;
        }
    }
    *neg_min = -min;
    return scale;
}

/* ggml's make_qp_quants: nonnegative x ~ d L, L in [0, nmax] (the 6-bit scales of K types). */
static float fit_pos(int n, int nmax, const float *x, uint8_t *L, const float *w) {
    float max = 0;
    for (int i = 0; i < n; i++) max = x[i] > max ? x[i] : max;
    if (max == 0.0f) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float id = (float)nmax / max, scale = 1 / id, best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)near_int(id * x[i]);
        float diff = x[i] - scale * (float)L[i];
        best += w[i] * diff * diff;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0) continue;
        float id_is = (0.1f * (float)is + (float)nmax) / max, s_is = 1 / id_is, e = 0;
        for (int i = 0; i < n; i++) {
            int l = near_int(id_is * x[i]);
            l = l < nmax ? l : nmax;
            float diff = x[i] - s_is * (float)l;
            e += w[i] * diff * diff;
        }
        if (e < best) {
            best = e;
            id = id_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = near_int(id * x[i]);
        L[i] = (uint8_t)(l < nmax ? l : nmax);
        sumlx += w[i] * x[i] * (float)L[i];
        suml2 += w[i] * (float)L[i] * (float)L[i];
    }
    /* coordinate descent on the codes: each code moved to its best value given the others */
    for (int it = 0; it < 5; it++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float slx = sumlx - w[i] * x[i] * (float)L[i];
            float sl2 = suml2 - w[i] * (float)L[i] * (float)L[i];
            if (!(slx > 0 && sl2 > 0)) continue;
            int nl = near_int(x[i] * sl2 / slx);
            nl = nl < nmax ? nl : nmax;
            if (nl == L[i]) continue;
            slx += w[i] * x[i] * (float)nl;
            sl2 += w[i] * (float)nl * (float)nl;
            if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (uint8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    return sumlx / suml2;
}

/* ==== the legacy 32-blocks =============================================================== */

static float row_sigma2(const float *x, int64_t n) {
    float s = 0;
    for (int64_t j = 0; j < n; j++) s += x[j] * x[j];
    return s / (float)n;
}

static void legacy_weights(const float *xb, const float *qw, float sigma2, float w[32]) {
    for (int j = 0; j < 32; j++) w[j] = qw[j] * sqrtf(sigma2 + xb[j] * xb[j]);
}

/* low nibbles of elements 0..15, high nibbles of 16..31; the 5th bits into qh (q5) */
static void pack_nibbles(uint8_t qs[16], const uint8_t *L) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((L[j] & 0x0F) | (L[j + 16] & 0x0F) << 4);
}

static void pack_fifth(uint8_t qh[4], const uint8_t *L) {
    uint32_t h = 0;
    for (int j = 0; j < 32; j++) h |= (uint32_t)(L[j] >> 4 & 1) << j;
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> (8 * k));
}

/* q4_0 (nmax 8) and q5_0 (nmax 16) */
static void quant_sym32(const float *x, void *dst, int64_t n, const float *qw, int five) {
    const float sigma2 = row_sigma2(x, n);
    const size_t bytes = five ? sizeof(block_q5_0) : sizeof(block_q4_0);
    float w[32];
    int8_t L[32];
    for (int64_t b = 0; b < n / 32; b++) {
        uint8_t *y = (uint8_t *)dst + (size_t)b * bytes;
        legacy_weights(x + 32 * b, qw + 32 * b, sigma2, w);
        sk_half d = sk_f32_to_f16(fit_sym(32, five ? 16 : 8, x + 32 * b, L, w));
        memcpy(y, &d, 2);
        if (five) pack_fifth(y + 2, (const uint8_t *)L);
        pack_nibbles(y + (five ? 6 : 2), (const uint8_t *)L);
    }
}

/* q4_1 (nmax 15) and q5_1 (nmax 31) */
static void quant_min32(const float *x, void *dst, int64_t n, const float *qw, int five) {
    const float sigma2 = row_sigma2(x, n);
    const size_t bytes = five ? sizeof(block_q5_1) : sizeof(block_q4_1);
    float w[32], neg_min;
    uint8_t L[32], Laux[32];
    for (int64_t b = 0; b < n / 32; b++) {
        uint8_t *y = (uint8_t *)dst + (size_t)b * bytes;
        legacy_weights(x + 32 * b, qw + 32 * b, sigma2, w);
        float d = fit_min(32, five ? 31 : 15, x + 32 * b, w, L, &neg_min, Laux, -0.9f, 0.05f, 36);
        sk_half h[2] = {sk_f32_to_f16(d), sk_f32_to_f16(-neg_min)};
        memcpy(y, h, 4);
        if (five) pack_fifth(y + 4, L);
        pack_nibbles(y + (five ? 8 : 4), L);
    }
}

/* ==== K types ============================================================================ */

/* q4_K / q5_K, second half: the 8 sub-block scales and mins (floats) to 6 bits by fit_pos
 * weighted by the sub-block weight sums sw, packed; the final codes against them. */
static void k_finish(const float *x, const float sc[8], const float mins[8], const float sw[8],
                     int nmax, uint8_t L[SK_QK_K], sk_half *d, sk_half *dmin,
                     uint8_t scales[SK_K_SCALE_SIZE]) {
    uint8_t Ls[8], Lm[8];
    float d_block = fit_pos(8, 63, sc, Ls, sw), m_block = fit_pos(8, 63, mins, Lm, sw);
    int ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = Ls[j] < 63 ? Ls[j] : 63;
        lm[j] = Lm[j] < 63 ? Lm[j] : 63;
    }
    sk_k4_pack_scales(ls, lm, scales);
    *d = sk_f32_to_f16(d_block);
    *dmin = sk_f32_to_f16(m_block);
    for (int j = 0; j < 8; j++) {
        int s, m;
        sk_k4_scale_min(j, scales, &s, &m);
        const float dj = sk_f16_to_f32(*d) * (float)s;
        if (dj == 0.0f) continue;
        const float dm = sk_f16_to_f32(*dmin) * (float)m;
        for (int i = 0; i < 32; i++)
            L[32 * j + i] = (uint8_t)clamp_i(near_int((x[32 * j + i] + dm) / dj), 0, nmax);
    }
}

/* sum x^2 over a super-block */
static float sb_sumsq(const float *x) {
    float s = 0;
    for (int l = 0; l < SK_QK_K; l++) s += x[l] * x[l];
    return s;
}

/* The fit weights of n values: qw * sqrt(sigma2 + x^2) (ggml's), or qw when `plain`; returns
 * their sum (in ggml's order). */
static float sub_weights(int n, const float *x, const float *qw, float sigma2, int plain,
                         float *w) {
    for (int l = 0; l < n; l++) w[l] = plain ? qw[l] : qw[l] * sqrtf(sigma2 + x[l] * x[l]);
    float s = 0;
    for (int l = 0; l < n; l++) s += w[l];
    return s;
}

/* q4_K / q5_K super-block: sub-block fits with weights qw * sqrt(sigma2 + x^2) (ggml's; plain
 * qw when `plain`), then k_finish. */
static void k_scales_min(const float *x, const float *qw, int nmax, int plain,
                         uint8_t L[SK_QK_K], sk_half *d, sk_half *dmin,
                         uint8_t scales[SK_K_SCALE_SIZE]) {
    const float sigma2 = 2 * sb_sumsq(x) / SK_QK_K;
    float w[32], sw[8], sc[8], mins[8];
    uint8_t Laux[32];
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        sw[j] = sub_weights(32, xs, qw + 32 * j, sigma2, plain, w);
        sc[j] = fit_min(32, nmax, xs, w, L + 32 * j, &mins[j], Laux, -0.9f, plain ? 0.15f : 0.05f,
                        plain ? 12 : 36);
    }
    k_finish(x, sc, mins, sw, nmax, L, d, dmin, scales);
}

static void quant_q4_K(const float *x, void *dst, int64_t n, const float *qw) {
    block_q4_K *y = dst;
    uint8_t L[SK_QK_K];
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        k_scales_min(x + i * SK_QK_K, qw + i * SK_QK_K, 15, 0, L, &y[i].d, &y[i].dmin,
                     y[i].scales);
        sk_q4_K_pack(&y[i], L);
    }
}

static void quant_q5_K(const float *x, void *dst, int64_t n, const float *qw) {
    block_q5_K *y = dst;
    uint8_t L[SK_QK_K];
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        k_scales_min(x + i * SK_QK_K, qw + i * SK_QK_K, 31, 0, L, &y[i].d, &y[i].dmin,
                     y[i].scales);
        sk_q5_K_pack(&y[i], L);
    }
}

/* q6_K super-block from the 16 float sub-block scales sc: int8 scales relative to the largest,
 * the codes against the stored scales, packed; L holds the fits' codes on entry (kept where a
 * stored scale is 0). */
static void q6_finish(const float *x, const float sc[16], int8_t L[SK_QK_K], block_q6_K *y) {
    float max_scale = 0, max_abs = 0;
    for (int ib = 0; ib < SK_QK_K / 16; ib++)
        if (fabsf(sc[ib]) > max_abs) {
            max_abs = fabsf(sc[ib]);
            max_scale = sc[ib];
        }
    if (max_abs < GROUP_MAX_EPS) {
        memset(y, 0, sizeof *y);
        return;
    }
    const float id = -128.0f / max_scale;
    y->d = sk_f32_to_f16(1 / id);
    for (int ib = 0; ib < SK_QK_K / 16; ib++) {
        int s = near_int(id * sc[ib]);
        y->scales[ib] = (int8_t)(s < 127 ? s : 127);
    }
    for (int j = 0; j < SK_QK_K / 16; j++) {
        const float dj = sk_f16_to_f32(y->d) * (float)y->scales[j];
        if (dj == 0.0f) continue;
        for (int k = 0; k < 16; k++)
            L[16 * j + k] = (int8_t)(clamp_i(near_int(x[16 * j + k] / dj), -32, 31) + 32);
    }
    sk_q6_K_pack(y, L);
}

/* q6_K super-block: per sub-block of 16 fit_sym with weights qw (ggml's), or with
 * qw * sqrt(sigma2 + x^2) when `scaled`. */
static void q6_block(const float *x, const float *qw, int scaled, int8_t L[SK_QK_K],
                     block_q6_K *y) {
    float sc[SK_QK_K / 16], w[16], sigma2 = 0;
    if (scaled) {
        for (int l = 0; l < SK_QK_K; l++) sigma2 += x[l] * x[l];
        sigma2 = 2 * sigma2 / SK_QK_K;
    }
    for (int ib = 0; ib < SK_QK_K / 16; ib++) {
        const float *q = qw + 16 * ib;
        if (scaled) {
            for (int l = 0; l < 16; l++) w[l] = q[l] * sqrtf(sigma2 + x[16 * ib + l] * x[16 * ib + l]);
            q = w;
        }
        sc[ib] = fit_sym(16, 32, x + 16 * ib, L + 16 * ib, q);
    }
    q6_finish(x, sc, L, y);
}

static void quant_q6_K(const float *src, void *dst, int64_t n, const float *qw) {
    block_q6_K *y = dst;
    int8_t L[SK_QK_K];
    for (int64_t i = 0; i < n / SK_QK_K; i++)
        q6_block(src + i * SK_QK_K, qw + i * SK_QK_K, 0, L, &y[i]);
}

/* q2_K super-block from the 16 float sub-block scales and mins and their weight sums sw: both to
 * 4 bits by fit_pos, the codes against the stored values, packed. */
static void q2_finish(const float *x, const float sc[16], const float mins[16],
                      const float sw[16], uint8_t L[SK_QK_K], block_q2_K *y) {
    uint8_t Ls[16], Lm[16];
    float dm = fit_pos(16, 15, sc, Ls, sw), mm = fit_pos(16, 15, mins, Lm, sw);
    y->d = sk_f32_to_f16(dm);
    y->dmin = sk_f32_to_f16(mm);
    dm = sk_f16_to_f32(y->d);
    mm = sk_f16_to_f32(y->dmin);
    for (int j = 0; j < 16; j++) y->scales[j] = (uint8_t)(Ls[j] | Lm[j] << 4);
    for (int j = 0; j < 16; j++) {
        const float d = dm * (float)(y->scales[j] & 0xF);
        if (d == 0.0f) continue;
        const float m = mm * (float)(y->scales[j] >> 4);
        for (int i = 0; i < 16; i++)
            L[16 * j + i] = (uint8_t)clamp_i(near_int((x[16 * j + i] + m) / d), 0, 3);
    }
    sk_q2_K_pack(y, L);
}

/* q2_K super-block: per sub-block of 16 fit_min (codes 0..3) with weights
 * qw * sqrt(sigma2 + x^2), sigma2 = mean x^2 (ggml's; plain qw when `plain`), then q2_finish. */
static void q2_block(const float *x, const float *qw, int plain, uint8_t L[SK_QK_K],
                     block_q2_K *y) {
    const float sigma2 = sb_sumsq(x) / SK_QK_K;
    float w[16], sw[16], sc[16], mins[16];
    uint8_t Laux[16];
    for (int j = 0; j < 16; j++) {
        const float *xs = x + 16 * j;
        sw[j] = sub_weights(16, xs, qw + 16 * j, sigma2, plain, w);
        sc[j] = fit_min(16, 3, xs, w, L + 16 * j, &mins[j], Laux, -0.9f, plain ? 0.15f : 0.05f,
                        plain ? 12 : 36);
    }
    q2_finish(x, sc, mins, sw, L, y);
}

/* q3_K super-block from the 16 float sub-block scales sc and their weight sums sw: the 6-bit
 * scales by fit_sym (codes -32..31), the codes against the stored scales (L holds the fits'
 * codes 0..7 on entry, kept where a stored scale is 0), packed. */
static void q3_finish(const float *x, const float sc[16], const float sw[16],
                      int8_t L[SK_QK_K], block_q3_K *y) {
    int8_t Ls[16];
    memset(y->scales, 0, 12);
    const float d_block = fit_sym(16, 32, sc, Ls, sw);
    for (int j = 0; j < 16; j++) {
        int l = Ls[j];
        if (j < 8) y->scales[j] = (uint8_t)(l & 0xF);
        else y->scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
        l >>= 4;
        y->scales[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
    }
    y->d = sk_f32_to_f16(d_block);
    for (int j = 0; j < 16; j++) {
        int lo = j < 8 ? y->scales[j] & 0xF : y->scales[j - 8] >> 4;
        int s = (lo | ((y->scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32;
        const float d = sk_f16_to_f32(y->d) * (float)s;
        if (d == 0.0f) continue;
        for (int i = 0; i < 16; i++)
            L[16 * j + i] = (int8_t)(clamp_i(near_int(x[16 * j + i] / d), -4, 3) + 4);
    }
    sk_q3_K_pack(y, L);
}

/* q3_K super-block: per sub-block of 16 fit_sym (codes -4..3) with weights
 * qw * sqrt(sigma2 + x^2), sigma2 = 2 mean x^2 (ggml's; plain qw when `plain`). */
static void q3_block(const float *x, const float *qw, int plain, int8_t L[SK_QK_K],
                     block_q3_K *y) {
    const float sigma2 = 2 * sb_sumsq(x) / SK_QK_K;
    float w[16], sw[16], sc[16];
    for (int j = 0; j < 16; j++) {
        const float *xs = x + 16 * j;
        sw[j] = sub_weights(16, xs, qw + 16 * j, sigma2, plain, w);
        sc[j] = fit_sym(16, 4, xs, L + 16 * j, w);
    }
    q3_finish(x, sc, sw, L, y);
}

/* ==== the K types' search ================================================================ */

/* sum qw (dequant(b) - x)^2 over one super-block of type t */
static double k_err(shrink_dtype t, const void *b, const float *x, const float *qw) {
    float y[SK_QK_K];
    sk_dtype(t)->to_f32(b, y, SK_QK_K);
    double e = 0;
    for (int i = 0; i < SK_QK_K; i++) {
        double d = (double)y[i] - (double)x[i];
        e += (double)qw[i] * d * d;
    }
    return e;
}

/* Weighted least squares of x ~ s l + m over n values with codes l (m <= 0 asked: min types;
 * sym: m = 0); returns 0 when the codes are all equal. */
static int lsq(int n, const float *x, const float *w, const int *l, int sym, float *s, float *m) {
    double sw = 0, sl = 0, sll = 0, sx = 0, sxl = 0;
    for (int i = 0; i < n; i++) {
        sw += w[i];
        sl += w[i] * l[i];
        sll += (double)w[i] * l[i] * l[i];
        sx += (double)w[i] * x[i];
        sxl += (double)w[i] * x[i] * l[i];
    }
    if (!(sll > 0)) return 0;
    double D = sw * sll - sl * sl;
    if (!sym && D > 0) {
        *s = (float)((sw * sxl - sx * sl) / D);
        *m = (float)((sll * sx - sl * sxl) / D);
        if (*m <= 0 && *s > 0) return 1;
    }
    *s = (float)(sxl / sll);
    *m = 0;
    return *s > 0 || sym;
}

/* One alternating step on a q4_K/q5_K block: its codes fixed, each sub-block's scale and min
 * refitted by weighted least squares, then stored again (k_finish) into `out`. */
static void k_refit(const float *x, const float *qw, int nmax, const uint8_t *Lin, uint8_t *L,
                    sk_half *d, sk_half *dmin, uint8_t *scales) {
    float sc[8], mins[8], sw[8];
    for (int j = 0; j < 8; j++) {
        int l[32];
        float sj = 0;
        for (int i = 0; i < 32; i++) {
            l[i] = Lin[32 * j + i];
            sj += qw[32 * j + i];
        }
        sw[j] = sj;
        float s, m;
        if (!lsq(32, x + 32 * j, qw + 32 * j, l, 0, &s, &m)) {
            s = 0;
            m = 0;
            float mn = 0;
            for (int i = 0; i < 32; i++) mn = x[32 * j + i] < mn ? x[32 * j + i] : mn;
            m = mn;
        }
        sc[j] = s > 0 ? s : 0;
        mins[j] = -m;
    }
    k_finish(x, sc, mins, sw, nmax, L, d, dmin, scales);
}

static void search_q45_K(shrink_dtype t, const float *src, void *dst, int64_t n,
                         const float *qwr) {
    const int five = t == SHRINK_DTYPE_Q5_K, nmax = five ? 31 : 15;
    const size_t bytes = five ? sizeof(block_q5_K) : sizeof(block_q4_K);
    union { block_q4_K a; block_q5_K b; } c, best;
    uint8_t L[SK_QK_K], Lb[SK_QK_K];
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        const float *x = src + i * SK_QK_K, *qw = qwr + i * SK_QK_K;
        uint8_t *y = (uint8_t *)dst + (size_t)i * bytes;
        double be = INFINITY;
        for (int cand = 0; cand < 4; cand++) {
            /* 0: ggml's, 1: plain importance weights, 2-3: refits of the best so far */
            sk_half *d = five ? &c.b.d : &c.a.d, *dm = five ? &c.b.dmin : &c.a.dmin;
            uint8_t *sc = five ? c.b.scales : c.a.scales;
            if (cand < 2) k_scales_min(x, qw, nmax, cand, L, d, dm, sc);
            else k_refit(x, qw, nmax, Lb, L, d, dm, sc);
            if (five) sk_q5_K_pack(&c.b, L);
            else sk_q4_K_pack(&c.a, L);
            double e = k_err(t, &c, x, qw);
            if (e < be) {
                be = e;
                best = c;
                memcpy(Lb, L, sizeof L);
            }
        }
        memcpy(y, &best, bytes);
    }
}

/* q2_K / q3_K: candidates 0 ggml's block, 1 the plain importance as fit weights, 2-3 refits of
 * the best so far (its codes fixed, each sub-block's scale (and min) by weighted least squares,
 * the super-block stored again); the smallest sum qw (x - x')^2 is written. ncand 1: ggml's. */
static void search_q23_K(shrink_dtype t, const float *src, void *dst, int64_t n,
                         const float *qwr, int ncand) {
    const int three = t == SHRINK_DTYPE_Q3_K;
    const size_t bytes = three ? sizeof(block_q3_K) : sizeof(block_q2_K);
    union { block_q2_K a; block_q3_K b; } c, best;
    uint8_t L[SK_QK_K], Lb[SK_QK_K];
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        const float *x = src + i * SK_QK_K, *qw = qwr + i * SK_QK_K;
        double be = INFINITY;
        for (int cand = 0; cand < ncand; cand++) {
            if (cand < 2) {
                if (three) q3_block(x, qw, cand, (int8_t *)L, &c.b);
                else q2_block(x, qw, cand, L, &c.a);
            } else {
                float sc[16], mins[16], sw[16];
                for (int j = 0; j < 16; j++) {
                    int l[16];
                    float sj = 0, s, m;
                    for (int k = 0; k < 16; k++) {
                        l[k] = Lb[16 * j + k] - (three ? 4 : 0);
                        sj += qw[16 * j + k];
                    }
                    sw[j] = sj;
                    if (!lsq(16, x + 16 * j, qw + 16 * j, l, three, &s, &m)) {
                        s = 0;
                        m = 0;
                        for (int k = 0; k < 16; k++) m = x[16 * j + k] < m ? x[16 * j + k] : m;
                    }
                    sc[j] = three || s > 0 ? s : 0;
                    mins[j] = -m;
                }
                memcpy(L, Lb, sizeof L);
                if (three) q3_finish(x, sc, sw, (int8_t *)L, &c.b);
                else q2_finish(x, sc, mins, sw, L, &c.a);
            }
            double e = k_err(t, &c, x, qw);
            if (e < be) {
                be = e;
                best = c;
                memcpy(Lb, L, sizeof L);
            }
        }
        memcpy((uint8_t *)dst + (size_t)i * bytes, &best, bytes);
    }
}

void sk_qim_search(shrink_dtype t, const float *src, void *dst, int64_t n, const float *qw) {
    if (t == SHRINK_DTYPE_Q4_K || t == SHRINK_DTYPE_Q5_K) search_q45_K(t, src, dst, n, qw);
    else if (t == SHRINK_DTYPE_Q2_K || t == SHRINK_DTYPE_Q3_K)
        search_q23_K(t, src, dst, n, qw, 4);
    else sk_qim_quantize(t, src, dst, n, qw);
}

/* ==== the table ========================================================================== */

int sk_qim_has(shrink_dtype t) {
    switch (t) {
    case SHRINK_DTYPE_Q4_0: case SHRINK_DTYPE_Q4_1: case SHRINK_DTYPE_Q5_0:
    case SHRINK_DTYPE_Q5_1: case SHRINK_DTYPE_Q2_K: case SHRINK_DTYPE_Q3_K:
    case SHRINK_DTYPE_Q4_K: case SHRINK_DTYPE_Q5_K: case SHRINK_DTYPE_Q6_K:
        return 1;
    default:
        return 0;
    }
}

void sk_qim_quantize(shrink_dtype t, const float *src, void *dst, int64_t n, const float *qw) {
    switch (t) {
    case SHRINK_DTYPE_Q4_0: quant_sym32(src, dst, n, qw, 0); break;
    case SHRINK_DTYPE_Q5_0: quant_sym32(src, dst, n, qw, 1); break;
    case SHRINK_DTYPE_Q4_1: quant_min32(src, dst, n, qw, 0); break;
    case SHRINK_DTYPE_Q5_1: quant_min32(src, dst, n, qw, 1); break;
    case SHRINK_DTYPE_Q4_K: quant_q4_K(src, dst, n, qw); break;
    case SHRINK_DTYPE_Q5_K: quant_q5_K(src, dst, n, qw); break;
    case SHRINK_DTYPE_Q6_K: quant_q6_K(src, dst, n, qw); break;
    case SHRINK_DTYPE_Q2_K: case SHRINK_DTYPE_Q3_K: search_q23_K(t, src, dst, n, qw, 1); break;
    default: SHRINK_ASSERT(!"a dtype without an importance-weighted quantizer"); break;
    }
}
