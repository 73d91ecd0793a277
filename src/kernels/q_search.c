/*
 * q_search.c - searched quantizers of the 4/5-bit block types (q_search.h): per block, a grid
 * of candidate scales (as llama.cpp's make_qx_quants / make_qkx2_quants), each followed by the
 * least-squares scale (and min) of the codes it gives; the best candidate is rounded to the
 * stored f16 (or u8) scale, its codes chosen again against the stored values, refitted once,
 * and written only if its error, measured on the type's own dequantizer, is below the error
 * of the reference's block (written first, by the type's from_f32). Ties keep the reference.
 *
 * Cost: ~20 candidates of one pass over the block each; the exact checks dequantize 3 blocks.
 */
#include "q_search.h"
#include "q_imatrix.h"
#include "ggml_quants.h"
#include "shrink_quants.h"

#include <math.h>
#include <stdlib.h>

#define MAXG 128
#define NC   16 /* candidate scales per block */
#define NC4  8  /* nf4: candidates (each costs 15 compares per element) */

int sk_qsearch_mode(void) {
    const char *e = getenv("SHRINK_QSEARCH");
    if (!e || !*e) return 1;
    int m = atoi(e);
    return m >= 0 && m <= 2 ? m : 1;
}

/* v clamped to [lo, hi] (NaN gives lo), then rounded to an integer value (|v| <= 255 here;
 * half to even: any code is valid, the error decides) */
static inline float code_of(float v, float lo, float hi) {
    v = v >= lo ? (v <= hi ? v : hi) : lo;
    return (v + 12582912.0f) - 12582912.0f;
}

/* 4-lane vectors (GCC/Clang vector extensions: SSE2/NEON registers, no ISA dispatch): the
 * candidate loops keep NC accumulators in NC/4 vectors. */
typedef float   v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f vsel(v4i m, v4f a, v4f b) { return (v4f)((m & (v4i)a) | (~m & (v4i)b)); }

/* code_of on 4 lanes (NaN stays NaN; callers skip non-finite blocks) */
static inline v4f vcode(v4f v, float lo, float hi) {
    v4f vlo = (v4f){0, 0, 0, 0} + lo, vhi = (v4f){0, 0, 0, 0} + hi;
    v = vsel(v < vlo, vlo, v);
    v = vsel(v > vhi, vhi, v);
    return (v + 12582912.0f) - 12582912.0f;
}

static float f16r(float v, sk_half *h) {
    v = v >= -65504.0f ? (v <= 65504.0f ? v : 65504.0f) : -65504.0f;
    *h = sk_f32_to_f16(v);
    return sk_f16_to_f32(*h);
}

/* Per-row weight context: sigma2 of the row (mode 2) and the importance matrix. */
typedef struct wctx {
    int          mode;
    float        sigma2;
    const float *imatrix; /* indexed by the row's column, or NULL */
} wctx;

static wctx row_wctx(const float *x, int64_t n, const sk_qparams *p) {
    wctx c = {sk_qsearch_mode(), 0.0f, p ? p->imatrix : NULL};
    if (c.mode == 2) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
        c.sigma2 = n ? (float)(s / (double)n) : 0.0f;
    }
    return c;
}

static void block_weights(const wctx *c, const float *x, int64_t col0, int g, float *w) {
    for (int j = 0; j < g; j++) {
        float v = c->mode == 2 ? sqrtf(c->sigma2 + x[j] * x[j]) : 1.0f;
        w[j] = c->imatrix ? v * c->imatrix[col0 + j] : v;
    }
}

/* sum w (y - x)^2 in double */
static double werr(const float *x, const float *y, const float *w, int g) {
    double e = 0;
    for (int j = 0; j < g; j++) {
        double d = (double)y[j] - (double)x[j];
        e += (double)w[j] * d * d;
    }
    return e;
}

/* ==== the integer-code block types ========================================================= */

typedef struct qfmt {
    int    g;          /* elements per block */
    size_t bytes;      /* bytes per block */
    int    has_m;      /* f16 m after f16 d (asymmetric, x = d*q + m) */
    int    five;       /* u32 qh of 5th bits after the scales */
    int    off;        /* stored code = L + off */
    float  lo, hi;     /* code range of L */
    void (*ref)(const float *src, void *dst, int64_t n);  /* from_f32 */
    void (*deq)(const void *src, float *dst, int64_t n);  /* to_f32 */
    int    qim;        /* the dtype of ggml's importance-weighted quantizer, -1: none */
} qfmt;

static void pack_block(const qfmt *f, uint8_t *b, sk_half hd, sk_half hm, const float *L) {
    int at = 2, h = f->g / 2;
    memcpy(b, &hd, 2);
    if (f->has_m) {
        memcpy(b + 2, &hm, 2);
        at = 4;
    }
    int q[MAXG];
    for (int j = 0; j < f->g; j++) q[j] = (int)L[j] + f->off;
    if (f->five) {
        uint32_t qh = 0;
        for (int j = 0; j < f->g; j++) qh |= (uint32_t)(q[j] >> 4 & 1) << j;
        for (int k = 0; k < 4; k++) b[at + k] = (uint8_t)(qh >> (8 * k));
        at += 4;
    }
    for (int j = 0; j < h; j++) b[at + j] = (uint8_t)((q[j] & 15) | (q[j + h] & 15) << 4);
}

/* Symmetric: the continuous scale d minimising sum w (x - d L)^2 over a grid of candidates
 * d = max / t (max: the largest |x| with its sign; t near lo and near hi), each refitted by
 * least squares on its codes. 0 if the block is zero. */
static float sym_search(const qfmt *f, const float *x, const float *w) {
    const int g = f->g;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < g; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    if (amax == 0.0f) return 0.0f;
    /* NC candidates t: near lo (max -> the lowest code) and, for asymmetric code ranges,
     * near hi; inner loops over the candidates (independent accumulators: vectorised) */
    int sides = f->lo == -f->hi ? 1 : 2;
    float id[NC], sxl[NC], sll[NC];
    for (int k = 0; k < NC; k++) {
        int s = sides == 2 && k >= NC / 2;
        float off = sides == 1 ? 0.1f * (float)(k - 7) : 0.2f * (float)(k % (NC / 2) - 3);
        float t = s ? f->hi + off : f->lo - off;
        id[k] = t / max;
        sxl[k] = sll[k] = 0.0f;
    }
    v4f vid[NC / 4], vxl[NC / 4], vll[NC / 4];
    for (int v = 0; v < NC / 4; v++) {
        memcpy(&vid[v], &id[4 * v], sizeof vid[v]);
        vxl[v] = vll[v] = (v4f){0, 0, 0, 0};
    }
    for (int j = 0; j < g; j++) {
        const float wx = w[j] * x[j], wj = w[j];
        for (int v = 0; v < NC / 4; v++) {
            v4f l = vcode(vid[v] * x[j], f->lo, f->hi);
            vxl[v] += wx * l;
            vll[v] += wj * l * l;
        }
    }
    memcpy(sxl, vxl, sizeof sxl);
    memcpy(sll, vll, sizeof sll);
    float best = 0.0f, best_score = -1.0f;
    for (int k = 0; k < NC; k++)
        if (sll[k] > 0.0f && sxl[k] * sxl[k] > best_score * sll[k]) {
            best_score = sxl[k] * sxl[k] / sll[k];
            best = sxl[k] / sll[k];
        }
    return best;
}

/* Asymmetric: (d, m) minimising sum w (x - d L - m)^2 over candidate inverse scales
 * (nmax - 1 .. nmax + 1) / (max - min) (make_qkx2_quants' grid), each refitted by least
 * squares on its codes. Returns 0 if no candidate has two distinct codes. */
static int asym_lsq(const float *x, const float *w, const float *L, int g, float *d, float *m,
                    float *score) {
    float sw = 0, sl = 0, sll = 0, sx = 0, sxl = 0;
    for (int j = 0; j < g; j++) {
        sw += w[j];
        sl += w[j] * L[j];
        sll += w[j] * L[j] * L[j];
        sx += w[j] * x[j];
        sxl += w[j] * x[j] * L[j];
    }
    float D = sw * sll - sl * sl;
    if (!(D > 0.0f)) return 0;
    *d = (sw * sxl - sx * sl) / D;
    *m = (sll * sx - sl * sxl) / D;
    /* reduction of the error against m = mean alone: maximise it */
    if (score) *score = *d * (sxl - sx * sl / sw);
    return 1;
}

static int asym_search(const qfmt *f, const float *x, const float *w, float *d, float *m) {
    const int g = f->g;
    float mn = x[0], mx = x[0];
    for (int j = 1; j < g; j++) {
        mn = x[j] < mn ? x[j] : mn;
        mx = x[j] > mx ? x[j] : mx;
    }
    if (!(mx > mn)) return 0;
    /* inverse scales (nmax - 1 .. nmax + 1) / (max - min); per candidate the sums of the
     * least-squares fit (sw, sx: the same for all) */
    float id[NC], sl[NC], sll[NC], sxl[NC], sw = 0.0f, sx = 0.0f;
    for (int k = 0; k < NC; k++) {
        id[k] = (f->hi - 1.0f + (2.0f / (NC - 1)) * (float)k) / (mx - mn);
        sl[k] = sll[k] = sxl[k] = 0.0f;
    }
    v4f vid[NC / 4], vl[NC / 4], vll[NC / 4], vxl[NC / 4];
    for (int v = 0; v < NC / 4; v++) {
        memcpy(&vid[v], &id[4 * v], sizeof vid[v]);
        vl[v] = vll[v] = vxl[v] = (v4f){0, 0, 0, 0};
    }
    for (int j = 0; j < g; j++) {
        const float xj = x[j] - mn, wj = w[j], wx = w[j] * x[j];
        sw += wj;
        sx += wx;
        for (int v = 0; v < NC / 4; v++) {
            v4f l = vcode(vid[v] * xj, 0.0f, f->hi), wl = wj * l;
            vl[v] += wl;
            vll[v] += wl * l;
            vxl[v] += wx * l;
        }
    }
    memcpy(sl, vl, sizeof sl);
    memcpy(sll, vll, sizeof sll);
    memcpy(sxl, vxl, sizeof sxl);
    int found = 0;
    float best = -1.0f;
    for (int k = 0; k < NC; k++) {
        float D = sw * sll[k] - sl[k] * sl[k];
        if (!(D > 0.0f)) continue;
        float cd = (sw * sxl[k] - sx * sl[k]) / D;
        float sc = cd * (sxl[k] - sx * sl[k] / sw);
        if (sc > best) {
            best = sc;
            *d = cd;
            *m = (sll[k] * sx - sl[k] * sxl[k]) / D;
            found = 1;
        }
    }
    return found;
}

/* The codes of x against the stored (f16) d and m, packed into b; returns 0 for a bad d. */
static void codes_sym(const qfmt *f, const float *x, float dd, float *L) {
    float id = dd != 0.0f ? 1.0f / dd : 0.0f;
    for (int j = 0; j < f->g; j++) L[j] = code_of(x[j] * id, f->lo, f->hi);
}

static void codes_asym(const qfmt *f, const float *x, float dd, float mm, float *L) {
    float id = dd != 0.0f ? 1.0f / dd : 0.0f;
    for (int j = 0; j < f->g; j++) L[j] = code_of((x[j] - mm) * id, 0.0f, f->hi);
}

/* Candidate block from (d, m): stored, coded, packed into cand; its error in *e; then the
 * least-squares refit of those codes, likewise; keeps the better in cand. */
static double try_block(const qfmt *f, const float *x, const float *w, float d, float m,
                        uint8_t *cand) {
    float L[MAXG], y[MAXG];
    uint8_t tmp[2 * MAXG];
    double best = INFINITY;
    for (int pass = 0; pass < 2; pass++) {
        sk_half hd, hm = 0;
        float dd = f16r(d, &hd), mm = f->has_m ? f16r(m, &hm) : 0.0f;
        if (!isfinite(dd) || !isfinite(mm)) break;
        if (f->has_m) codes_asym(f, x, dd, mm, L);
        else codes_sym(f, x, dd, L);
        pack_block(f, tmp, hd, hm, L);
        f->deq(tmp, y, f->g);
        double e = werr(x, y, w, f->g);
        if (e < best) {
            best = e;
            memcpy(cand, tmp, f->bytes);
        }
        /* refit on these codes */
        if (f->has_m) {
            if (!asym_lsq(x, w, L, f->g, &d, &m, NULL)) break;
        } else {
            float sxl = 0, sll = 0;
            for (int j = 0; j < f->g; j++) {
                sxl += w[j] * x[j] * L[j];
                sll += w[j] * L[j] * L[j];
            }
            if (!(sll > 0.0f)) break;
            d = sxl / sll;
        }
    }
    return best;
}

static void search_row(const qfmt *f, const float *src, void *dst, int64_t n,
                       const sk_qparams *p) {
    /* the reference's blocks: the candidates to beat (with an importance matrix, ggml's
     * importance-weighted blocks, llama-quantize --imatrix's bytes) */
    if (p && p->imatrix && f->qim >= 0) sk_qim_quantize((shrink_dtype)f->qim, src, dst, n,
                                                        p->imatrix);
    else f->ref(src, dst, n);
    wctx c = row_wctx(src, n, p);
    if (c.mode == 0) return;
    float w[MAXG], y[MAXG];
    uint8_t cand[2 * MAXG];
    for (int64_t b = 0; b < n / f->g; b++) {
        const float *x = src + b * f->g;
        uint8_t *blk = (uint8_t *)dst + (size_t)b * f->bytes;
        block_weights(&c, x, b * f->g, f->g, w);
        f->deq(blk, y, f->g);
        double e_ref = werr(x, y, w, f->g);
        if (!(e_ref > 0.0)) continue; /* exact already (or not finite: leave it) */
        float d = 0.0f, m = 0.0f;
        if (f->has_m) {
            if (!asym_search(f, x, w, &d, &m)) continue;
        } else {
            d = sym_search(f, x, w);
            if (d == 0.0f) continue;
        }
        if (try_block(f, x, w, d, m, cand) < e_ref) memcpy(blk, cand, f->bytes);
    }
}

static const qfmt F_Q4_0 = {SK_QK4_0, sizeof(block_q4_0), 0, 0, 8, -8.0f, 7.0f,
                            sk_q4_0_quant_ref, sk_q4_0_dequant_ref, SHRINK_DTYPE_Q4_0};
static const qfmt F_Q4_1 = {SK_QK4_1, sizeof(block_q4_1), 1, 0, 0, 0.0f, 15.0f,
                            sk_q4_1_quant_ref, sk_q4_1_dequant_ref, SHRINK_DTYPE_Q4_1};
static const qfmt F_Q5_0 = {SK_QK5_0, sizeof(block_q5_0), 0, 1, 16, -16.0f, 15.0f,
                            sk_q5_0_quant_ref, sk_q5_0_dequant_ref, SHRINK_DTYPE_Q5_0};
static const qfmt F_Q5_1 = {SK_QK5_1, sizeof(block_q5_1), 1, 1, 0, 0.0f, 31.0f,
                            sk_q5_1_quant_ref, sk_q5_1_dequant_ref, SHRINK_DTYPE_Q5_1};
#define INT4(G) {G, sizeof(sk_block_int4_g##G), 0, 0, 8, -7.0f, 7.0f, sk_int4_g##G##_from_f32, \
                 sk_int4_g##G##_to_f32, -1}
#define INT4A(G) {G, sizeof(sk_block_int4_g##G##_asym), 1, 0, 0, 0.0f, 15.0f,                  \
                  sk_int4_g##G##_asym_from_f32, sk_int4_g##G##_asym_to_f32, -1}
static const qfmt F_I4[3] = {INT4(32), INT4(64), INT4(128)};
static const qfmt F_I4A[3] = {INT4A(32), INT4A(64), INT4A(128)};
#undef INT4
#undef INT4A

void sk_q4_0_search(const float *s, void *d, int64_t n, const sk_qparams *p) {
    search_row(&F_Q4_0, s, d, n, p);
}
void sk_q4_1_search(const float *s, void *d, int64_t n, const sk_qparams *p) {
    search_row(&F_Q4_1, s, d, n, p);
}
void sk_q5_0_search(const float *s, void *d, int64_t n, const sk_qparams *p) {
    search_row(&F_Q5_0, s, d, n, p);
}
void sk_q5_1_search(const float *s, void *d, int64_t n, const sk_qparams *p) {
    search_row(&F_Q5_1, s, d, n, p);
}
void sk_int4_g32_search(const float *s, void *d, int64_t n, const sk_qparams *p) {
    search_row(&F_I4[0], s, d, n, p);
}
void sk_int4_g64_search(const float *s, void *d, int64_t n, const sk_qparams *p) {
    search_row(&F_I4[1], s, d, n, p);
}
void sk_int4_g128_search(const float *s, void *d, int64_t n, const sk_qparams *p) {
    search_row(&F_I4[2], s, d, n, p);
}
void sk_int4_g32_asym_search(const float *s, void *d, int64_t n, const sk_qparams *p) {
    search_row(&F_I4A[0], s, d, n, p);
}
void sk_int4_g64_asym_search(const float *s, void *d, int64_t n, const sk_qparams *p) {
    search_row(&F_I4A[1], s, d, n, p);
}
void sk_int4_g128_asym_search(const float *s, void *d, int64_t n, const sk_qparams *p) {
    search_row(&F_I4A[2], s, d, n, p);
}

/* ==== nf4 and nf4_dq: x = scale * NF4[q] =================================================== */

/* midpoints between neighbouring NF4 codes */
static void nf4_mids(float *mid) {
    for (int i = 0; i < 15; i++) mid[i] = 0.5f * (sk_nf4_values[i] + sk_nf4_values[i + 1]);
}

/* nearest NF4 code of v: the number of midpoints below v, by binary search (4 compares) */
static inline int nf4_near(const float *mid, float v) {
    int q = 0;
    for (int step = 8; step > 0; step >>= 1)
        if (v > mid[q + step - 1]) q += step;
    return q;
}

/* The continuous scale minimising sum w (x - d NF4[q])^2 over candidates d = absmax * f,
 * each refitted on its codes; 0 for a zero block. */
static float nf4_search_scale(const float *x, const float *w) {
    float amax = 0.0f;
    for (int j = 0; j < SK_QK_NF4; j++) amax = fmaxf(amax, fabsf(x[j]));
    if (amax == 0.0f) return 0.0f;
    /* value of the nearest code = NF4[0] + the steps of the midpoints below: no lookup, so
     * the inner loop over the NC4 candidates vectorises */
    float mid[15], step[15];
    nf4_mids(mid);
    for (int i = 0; i < 15; i++) step[i] = sk_nf4_values[i + 1] - sk_nf4_values[i];
    float id[NC4], sxv[NC4], svv[NC4];
    for (int k = 0; k < NC4; k++) {
        id[k] = 1.0f / (amax * (0.72f + 0.04f * (float)k)); /* 0.72 .. 1.00 */
        sxv[k] = svv[k] = 0.0f;
    }
    v4f vid[NC4 / 4], vxv[NC4 / 4], vvv[NC4 / 4];
    for (int v = 0; v < NC4 / 4; v++) {
        memcpy(&vid[v], &id[4 * v], sizeof vid[v]);
        vxv[v] = vvv[v] = (v4f){0, 0, 0, 0};
    }
    for (int j = 0; j < SK_QK_NF4; j++) {
        const float wx = w[j] * x[j], wj = w[j];
        for (int v = 0; v < NC4 / 4; v++) {
            v4f u = vid[v] * x[j], val = (v4f){0, 0, 0, 0} - 1.0f;
            for (int i = 0; i < 15; i++)
                val += (v4f)((v4i)(u > mid[i]) & (v4i)((v4f){0, 0, 0, 0} + step[i]));
            vxv[v] += wx * val;
            vvv[v] += wj * val * val;
        }
    }
    memcpy(sxv, vxv, sizeof sxv);
    memcpy(svv, vvv, sizeof svv);
    float best = 0.0f, best_score = -1.0f;
    for (int k = 0; k < NC4; k++)
        if (svv[k] > 0.0f && sxv[k] * sxv[k] > best_score * svv[k]) {
            best_score = sxv[k] * sxv[k] / svv[k];
            best = sxv[k] / svv[k];
        }
    return best;
}

static void nf4_pack(const float *x, float d, uint8_t *qs) {
    float id = d != 0.0f ? 1.0f / d : 0.0f, mid[15];
    nf4_mids(mid);
    for (int j = 0; j < SK_QK_NF4 / 2; j++) {
        int lo = d != 0.0f ? nf4_near(mid, x[j] * id) : 7;
        int hi = d != 0.0f ? nf4_near(mid, x[j + SK_QK_NF4 / 2] * id) : 7;
        qs[j] = (uint8_t)(lo | hi << 4);
    }
}

/* least-squares scale of the codes in qs */
static float nf4_refit(const float *x, const float *w, const uint8_t *qs) {
    float sxv = 0.0f, svv = 0.0f;
    for (int j = 0; j < SK_QK_NF4; j++) {
        int q = j < SK_QK_NF4 / 2 ? qs[j] & 15 : qs[j - SK_QK_NF4 / 2] >> 4;
        float v = sk_nf4_values[q];
        sxv += w[j] * x[j] * v;
        svv += w[j] * v * v;
    }
    return svv > 0.0f ? sxv / svv : 0.0f;
}

void sk_nf4_search(const float *src, void *dst, int64_t n, const sk_qparams *p) {
    sk_nf4_from_f32(src, dst, n);
    wctx c = row_wctx(src, n, p);
    if (c.mode == 0) return;
    sk_block_nf4 *blocks = dst;
    float w[SK_QK_NF4], y[SK_QK_NF4];
    for (int64_t b = 0; b < n / SK_QK_NF4; b++) {
        const float *x = src + b * SK_QK_NF4;
        block_weights(&c, x, b * SK_QK_NF4, SK_QK_NF4, w);
        sk_nf4_to_f32(&blocks[b], y, SK_QK_NF4);
        double best = werr(x, y, w, SK_QK_NF4);
        if (!(best > 0.0)) continue;
        float d = nf4_search_scale(x, w);
        for (int pass = 0; pass < 2 && d > 0.0f; pass++) {
            sk_block_nf4 t;
            float dd = f16r(d, &t.d);
            if (!(dd > 0.0f) || !isfinite(dd)) break;
            nf4_pack(x, dd, t.qs);
            sk_nf4_to_f32(&t, y, SK_QK_NF4);
            double e = werr(x, y, w, SK_QK_NF4);
            if (e < best) {
                best = e;
                blocks[b] = t;
            }
            d = nf4_refit(x, w, t.qs);
        }
    }
}

/* nf4_dq: D stays the reference's (row absmax / 255); each block's u8 s is searched among the
 * integers around the best continuous scale / D and its refit. */
void sk_nf4_dq_search(const float *src, void *dst, int64_t n, const sk_qparams *p) {
    sk_nf4_dq_from_f32(src, dst, n);
    wctx c = row_wctx(src, n, p);
    if (c.mode == 0) return;
    uint8_t *row = dst;
    float D = sk_rd_f32(row);
    if (!(D > 0.0f) || !isfinite(D)) return;
    sk_block_nf4_dq *blocks = (sk_block_nf4_dq *)(row + SK_HEAD_NF4D);
    float w[SK_QK_NF4], y[SK_QK_NF4];
    for (int64_t b = 0; b < n / SK_QK_NF4; b++) {
        const float *x = src + b * SK_QK_NF4;
        block_weights(&c, x, b * SK_QK_NF4, SK_QK_NF4, w);
        uint8_t one[SK_HEAD_NF4D + sizeof(sk_block_nf4_dq)]; /* a one-block row */
        memcpy(one, &D, 4);
        memcpy(one + SK_HEAD_NF4D, &blocks[b], sizeof blocks[b]);
        sk_nf4_dq_to_f32_range(one, 0, SK_QK_NF4, y);
        double best = werr(x, y, w, SK_QK_NF4);
        if (!(best > 0.0)) continue;
        float d = nf4_search_scale(x, w);
        if (!(d > 0.0f)) continue;
        float cands[4];
        int nc = 0;
        cands[nc++] = floorf(d / D);
        cands[nc++] = ceilf(d / D);
        for (int k = 0; k < nc; k++) {
            float s = cands[k] < 1.0f ? 1.0f : cands[k] > 255.0f ? 255.0f : cands[k];
            sk_block_nf4_dq t;
            t.s = (uint8_t)s;
            nf4_pack(x, D * s, t.qs);
            memcpy(one + SK_HEAD_NF4D, &t, sizeof t);
            sk_nf4_dq_to_f32_range(one, 0, SK_QK_NF4, y);
            double e = werr(x, y, w, SK_QK_NF4);
            if (e < best) {
                best = e;
                blocks[b] = t;
            }
            if (k == 1 && nc < 4) { /* the refit of the better codes, rounded both ways */
                float r = nf4_refit(x, w, blocks[b].qs) / D;
                cands[nc++] = floorf(r);
                cands[nc++] = ceilf(r);
            }
        }
    }
}

int sk_quantize_searches(shrink_dtype t) {
    switch (t) {
    case SHRINK_DTYPE_Q4_0: case SHRINK_DTYPE_Q4_1: case SHRINK_DTYPE_Q5_0:
    case SHRINK_DTYPE_Q5_1: case SHRINK_DTYPE_INT4_G32: case SHRINK_DTYPE_INT4_G64:
    case SHRINK_DTYPE_INT4_G128: case SHRINK_DTYPE_INT4_G32_ASYM:
    case SHRINK_DTYPE_INT4_G64_ASYM: case SHRINK_DTYPE_INT4_G128_ASYM: case SHRINK_DTYPE_NF4:
    case SHRINK_DTYPE_NF4_DQ:
        return 1;
    default:
        return 0;
    }
}
