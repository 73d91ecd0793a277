/*
 * qat_lsq.c - QAT with learned scales (train.h, "Learned scales"; docs/adapters.md): LSQ
 * (Esser et al., "Learned Step Size Quantization", ICLR 2020) on the block types whose block
 * is one f16 scale d and codes on a fixed grid of levels L, x = d L:
 *
 *   type        block  levels L                     bytes
 *   q4_0        32     -8 .. 7 (code L + 8)         f16 d, 16 nibbles (j | j + 16 << 4)
 *   int4_gG     G      -7 .. 7 (code L + 8)         f16 d, G/2 nibbles (j | j + G/2 << 4)
 *   q8_0        32     -127 .. 127 (int8)           f16 d, 32 int8
 *   nf4         64     NF4[0..15] in [-1, 1]        f16 d, 32 nibbles
 *
 * Forward (per block, scale parameter s): d = f16(s); v_j = x_j / d; code = the level nearest
 * v_j within the grid (uniform grids: roundf of v clamped to [lo, hi], half away from zero;
 * nf4: the midpoints of q_shrink.c, ties to the lower level); the block's bytes are written and
 * x̂ = the dtype row's to_f32 of those bytes, so the file written later (the same bytes)
 * dequantizes to x̂ bit for bit. d = 0 puts every code at level 0.
 * Backward, from G_j = dL/dx̂_j: the straight-through estimator inside the grid's range and
 * LSQ's clipping outside,
 *     dL/dx_j += G_j            if lo <= v_j <= hi, else 0
 *     dL/ds   += gs * sum_j G_j (L_j - v_j)   inside,   G_j L_j   clipped (or d = 0)
 * with gs = 1 / sqrt(block * Qp) (LSQ's gradient scale; Qp = hi: 7, 7, 127, 1), the derivative
 * through f16(s) taken as 1. The scale parameters are appended to the training table (one
 * float per block, rows x blocks), trained by the same optimizer without weight decay, and held
 * in checkpoints like any parameter.
 */
#include "train.h"
#include "../kernels/shrink_quants.h"

#include <math.h>
#include <omp.h>

typedef struct lsq_kind {
    shrink_dtype dt;
    int          block;
    int          int8;     /* codes are int8 (q8_0), else nibbles */
    int          lo, hi;   /* level range (uniform grids) */
    int          nf4;      /* levels are NF4's */
} lsq_kind;

static const lsq_kind kinds[] = {
    {SHRINK_DTYPE_Q4_0, 32, 0, -8, 7, 0},
    {SHRINK_DTYPE_Q8_0, 32, 1, -127, 127, 0},
    {SHRINK_DTYPE_INT4_G32, 32, 0, -7, 7, 0},
    {SHRINK_DTYPE_INT4_G64, 64, 0, -7, 7, 0},
    {SHRINK_DTYPE_INT4_G128, 128, 0, -7, 7, 0},
    {SHRINK_DTYPE_NF4, SK_QK_NF4, 0, -1, 1, 1},
};

static const lsq_kind *kind_of(shrink_dtype dt) {
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i].dt == dt) return &kinds[i];
    return NULL;
}

int sk_qat_lsq_supported(shrink_dtype dt) {
    const lsq_kind *k = kind_of(dt);
    return k && (int64_t)sk_dtype(dt)->block == k->block &&
           sk_dtype(dt)->bytes == 2 + (size_t)(k->int8 ? k->block : k->block / 2);
}

/* NF4 code of v: the number of midpoints between neighbouring levels below v. */
static int nf4_code(float v) {
    int q = 0;
    for (int i = 0; i < 15; i++) q += v > 0.5f * (sk_nf4_values[i] + sk_nf4_values[i + 1]);
    return q;
}

/* Code of v (uniform: the level + offset; nf4: 0..15) and its level. */
static int code_of(const lsq_kind *k, float v, float *level) {
    if (k->nf4) {
        int q = nf4_code(v);
        *level = sk_nf4_values[q];
        return q;
    }
    if (v != v) v = 0.0f; /* NaN weights: the zero level (no undefined conversion) */
    float c = v < (float)k->lo ? (float)k->lo : v > (float)k->hi ? (float)k->hi : v;
    int l = (int)roundf(c);
    *level = (float)l;
    return k->int8 ? l : l + 8;
}

static int zero_code(const lsq_kind *k) { return k->nf4 ? 7 : k->int8 ? 0 : 8; }

/* One block of x against scale s into bytes y. */
static void encode_block(const lsq_kind *k, const float *x, float s, uint8_t *y) {
    const sk_half h = sk_f32_to_f16(s);
    const float d = sk_f16_to_f32(h);
    memcpy(y, &h, 2);
    uint8_t *q = y + 2;
    const int G = k->block;
    if (!k->int8) memset(q, 0, (size_t)G / 2);
    for (int j = 0; j < G; j++) {
        float level;
        int c = d != 0.0f ? code_of(k, x[j] / d, &level) : zero_code(k);
        if (k->int8) q[j] = (uint8_t)(int8_t)c;
        else q[j % (G / 2)] |= (uint8_t)(c << (j < G / 2 ? 0 : 4));
    }
}

static const sk_train_param *scales_of(const sk_train_model *tm, const sk_train_param *p) {
    return &tm->params[p->qat_sp - 1];
}

void sk_qat_lsq_rows(const sk_train_model *tm, const sk_train_param *p, int64_t row0, int64_t n,
                     void *dst) {
    const lsq_kind *k = kind_of((shrink_dtype)p->qat_dtype);
    const int64_t cols = p->t.cols, nb = cols / k->block;
    const size_t bb = sk_dtype(k->dt)->bytes;
    const float *s = scales_of(tm, p)->w;
    for (int64_t r = row0; r < row0 + n; r++)
        for (int64_t b = 0; b < nb; b++)
            encode_block(k, p->w + r * cols + b * k->block, s[r * nb + b],
                         (uint8_t *)dst + ((size_t)(r - row0) * (size_t)nb + (size_t)b) * bb);
}

void sk_qat_lsq_refresh(const sk_train_model *tm, const sk_train_param *p) {
    const lsq_kind *k = kind_of((shrink_dtype)p->qat_dtype);
    const sk_dtype_traits *d = sk_dtype(k->dt);
    const int64_t rows = p->t.rows, cols = p->t.cols;
    const size_t rb = (size_t)sk_dtype_row_bytes(k->dt, cols);
    #pragma omp parallel
    {
        uint8_t *y = sk_malloc(rb);
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!y) continue; /* out of memory: wq keeps its floats (cannot fail here) */
            sk_qat_lsq_rows(tm, p, r, 1, y);
            d->to_f32(y, p->wq + r * cols, cols);
        }
        sk_free(y);
    }
}

void sk_qat_lsq_backward(sk_train_model *tm, const sk_train_param *p, const float *G) {
    const lsq_kind *k = kind_of((shrink_dtype)p->qat_dtype);
    const sk_train_param *ps = scales_of(tm, p);
    const int64_t rows = p->t.rows, cols = p->t.cols, nb = cols / k->block;
    const float lo = k->nf4 ? -1.0f : (float)k->lo, hi = k->nf4 ? 1.0f : (float)k->hi;
    const double gs = 1.0 / sqrt((double)k->block * (double)hi);
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t b = 0; b < nb; b++) {
            const int64_t o = r * cols + b * k->block;
            const float d = sk_f16_to_f32(sk_f32_to_f16(ps->w[r * nb + b]));
            double acc = 0.0;
            for (int j = 0; j < k->block; j++) {
                const float x = p->w[o + j], g = G[o + j];
                float m = p->mask_f32 ? p->mask_f32[o + j] : 1.0f;
                if (p->mask_u8 && !p->mask_u8[o + j]) m = 0.0f;
                float level;
                if (d != 0.0f) {
                    const float v = x / d;
                    code_of(k, v, &level);
                    if (v >= lo && v <= hi) {
                        p->g[o + j] += m * g;
                        acc += (double)g * ((double)level - (double)v);
                        continue;
                    }
                } else {
                    level = x > 0 ? hi : x < 0 ? lo : 0.0f;
                }
                acc += (double)g * (double)level; /* clipped: no gradient to x */
            }
            ps->g[r * nb + b] += (float)(gs * acc);
        }
}

shrink_status sk_qat_lsq_attach(sk_train_model *tm, float lr_mult) {
    int64_t n_new = 0, off = tm->n_elems;
    /* every QAT matrix but those fallen back to f16 (no scales: rounded to f16) */
#define HAS_SCALES(p) ((p)->wq && (p)->qat_dtype != SHRINK_DTYPE_F16)
    for (int64_t i = 0; i < tm->n_params; i++) n_new += HAS_SCALES(&tm->params[i]);
    sk_train_param *np = sk_calloc((size_t)(tm->n_params + n_new), sizeof *np);
    if (!np) return sk_error(SHRINK_ERR_NOMEM, "QAT: out of memory");
    memcpy(np, tm->params, (size_t)tm->n_params * sizeof *np);
    int64_t j = tm->n_params;
    for (int64_t i = 0; i < tm->n_params; i++) {
        sk_train_param *p = &np[i];
        if (!HAS_SCALES(p)) continue;
        const lsq_kind *k = kind_of((shrink_dtype)p->qat_dtype);
        sk_train_param *s = &np[j];
        if (snprintf(s->t.name, sizeof s->t.name, "%s.qat_scale", p->t.name) >=
            (int)sizeof s->t.name) {
            sk_free(np);
            return sk_error(SHRINK_ERR_ARG, "QAT: tensor name '%s' too long", p->t.name);
        }
        s->t.role = SK_ROLE_COUNT; /* no role: the layers' slots ignore it */
        s->t.layer = p->t.layer;
        s->t.n_dims = 2;
        s->t.rows = p->t.rows;
        s->t.cols = p->t.cols / k->block;
        s->n = s->t.rows * s->t.cols;
        s->offset = off;
        s->dtype = SHRINK_DTYPE_F32;
        s->lr_mult = lr_mult;
        s->no_decay = 1;
        off += (s->n + 15) & ~(int64_t)15;
        p->qat_sp = ++j; /* 1 + index */
    }
    float *w_all = sk_aligned_alloc(64, (size_t)off * sizeof(float));
    float *g_all = sk_aligned_alloc(64, (size_t)off * sizeof(float));
    if (!w_all || !g_all) {
        sk_free(w_all);
        sk_free(g_all);
        sk_free(np);
        return sk_error(SHRINK_ERR_NOMEM, "QAT: out of memory for the learned scales");
    }
    memcpy(w_all, tm->w_all, (size_t)tm->n_elems * sizeof(float));
    memset(w_all + tm->n_elems, 0, (size_t)(off - tm->n_elems) * sizeof(float));
    memset(g_all, 0, (size_t)off * sizeof(float));
    for (int64_t i = 0; i < tm->n_params + n_new; i++) {
        if (np[i].stored.data) continue; /* a frozen matrix held stored: no floats */
        np[i].w = w_all + np[i].offset;
        np[i].g = g_all + np[i].offset;
    }
    sk_free(tm->w_all);
    sk_free(tm->g_all);
    sk_free(tm->params);
    tm->w_all = w_all;
    tm->g_all = g_all;
    tm->params = np;
    tm->n_params += n_new;
    tm->n_elems = off;
    /* the scale the type's own quantizer picks for the initial weights (its f16 field) */
    for (int64_t i = 0; i < tm->n_params; i++) {
        const sk_train_param *p = &tm->params[i];
        if (!p->qat_sp) continue;
        const sk_dtype_traits *d = sk_dtype((shrink_dtype)p->qat_dtype);
        const int64_t cols = p->t.cols, nb = cols / (int64_t)d->block;
        float *s = tm->params[p->qat_sp - 1].w;
        uint8_t *y = sk_malloc((size_t)sk_dtype_row_bytes((shrink_dtype)p->qat_dtype, cols));
        if (!y) return sk_error(SHRINK_ERR_NOMEM, "QAT: out of memory");
        for (int64_t r = 0; r < p->t.rows; r++) {
            sk_qat_quantize_rows(tm, &(sk_train_param){.t = p->t, .n = p->n, .w = p->w,
                                                       .qat_dtype = p->qat_dtype},
                                 r, 1, y);
            for (int64_t b = 0; b < nb; b++) {
                sk_half h;
                memcpy(&h, y + (size_t)b * d->bytes, 2);
                s[r * nb + b] = sk_f16_to_f32(h);
            }
        }
        sk_free(y);
    }
    tm->qat_lsq = 1;
    tm->qat_fresh = 0;
    return SHRINK_OK;
}
