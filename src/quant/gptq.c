/*
 * gptq.c - GPTQ for one weight matrix (gptq.h). Rows are independent once the scales are
 * fixed (every scale belongs to one row), so the rows are processed in tiles of TILE rows,
 * threads over tiles, each tile walking the columns in order with lazy block updates.
 */
#include "gptq.h"

#include "../kernels/kernels.h"
#include "../kernels/ggml_quants.h"
#include "../model/hessian.h"
#include "../model/layerwise.h"

#include <math.h>
#include <omp.h>

enum { L_NIB, L_Q5, L_I8 }; /* how a block's codes are laid out after its head */

/* One dtype GPTQ writes: blocks of g columns (0: the whole row, a row head) with a head of hb
 * bytes (d, then m for asym; f16, or f32 for a row head), codes lo..hi stored as q + off. */
typedef struct gtype {
    shrink_dtype t;
    int g, hb, lo, hi, off, asym, layout;
} gtype;

static const gtype gtypes[] = {
    {SHRINK_DTYPE_Q4_0, 32, 2, -8, 7, 8, 0, L_NIB},
    {SHRINK_DTYPE_Q4_1, 32, 4, 0, 15, 0, 1, L_NIB},
    {SHRINK_DTYPE_Q5_0, 32, 2, -16, 15, 16, 0, L_Q5},
    {SHRINK_DTYPE_Q5_1, 32, 4, 0, 31, 0, 1, L_Q5},
    {SHRINK_DTYPE_Q8_0, 32, 2, -127, 127, 0, 0, L_I8},
    {SHRINK_DTYPE_INT4_G32, 32, 2, -7, 7, 8, 0, L_NIB},
    {SHRINK_DTYPE_INT4_G64, 64, 2, -7, 7, 8, 0, L_NIB},
    {SHRINK_DTYPE_INT4_G128, 128, 2, -7, 7, 8, 0, L_NIB},
    {SHRINK_DTYPE_INT4_G32_ASYM, 32, 4, 0, 15, 0, 1, L_NIB},
    {SHRINK_DTYPE_INT4_G64_ASYM, 64, 4, 0, 15, 0, 1, L_NIB},
    {SHRINK_DTYPE_INT4_G128_ASYM, 128, 4, 0, 15, 0, 1, L_NIB},
    {SHRINK_DTYPE_INT8_CH, 0, 4, -127, 127, 0, 0, L_I8},
    {SHRINK_DTYPE_W8A8, 0, 4, -127, 127, 0, 0, L_I8},
};

static const gtype *gtype_of(shrink_dtype t) {
    for (size_t i = 0; i < sizeof gtypes / sizeof gtypes[0]; i++)
        if (gtypes[i].t == t) return &gtypes[i];
    return NULL;
}

int sk_gptq_serves(shrink_dtype t, int64_t cols) {
    const gtype *g = gtype_of(t);
    return g && (cols <= 0 || g->g == 0 || cols % g->g == 0);
}

/* The scales of one group: d (and m) as stored, and the head bytes to write. */
typedef struct gparam {
    double  d, m;
    uint8_t head[4];
} gparam;

/* Chooses the scales of n values by the dtype row's quantizer run on them (as f32). fbuf: n
 * floats, bbuf: the row bytes of n elements. */
static void choose(const gtype *g, const double *x, int64_t n, int search, float *fbuf,
                   uint8_t *bbuf, gparam *p) {
    const sk_dtype_traits *d = sk_dtype(g->t);
    for (int64_t i = 0; i < n; i++) fbuf[i] = (float)x[i];
    if (search && d->quantize) {
        sk_qparams qp;
        memset(&qp, 0, sizeof qp);
        d->quantize(fbuf, bbuf, n, &qp);
    } else {
        d->from_f32(fbuf, bbuf, n);
    }
    memcpy(p->head, bbuf, (size_t)g->hb);
    if (g->g == 0) {
        p->d = sk_rd_f32(bbuf);
        p->m = 0.0;
    } else {
        sk_half h;
        memcpy(&h, bbuf, 2);
        p->d = sk_f16_to_f32(h);
        if (g->asym) memcpy(&h, bbuf + 2, 2);
        p->m = g->asym ? sk_f16_to_f32(h) : 0.0;
    }
}

/* The code of x under p (lo..hi) and its value in *q. */
static int code_of(const gtype *g, const gparam *p, double x, double *q) {
    if (p->d == 0.0) {
        *q = g->asym ? p->m : 0.0;
        return g->asym ? 0 : 0;
    }
    double v = g->asym ? (x - p->m) / p->d : x / p->d;
    v = round(v);
    if (!(v >= g->lo)) v = g->lo; /* NaN to lo */
    if (v > g->hi) v = g->hi;
    const int c = (int)v;
    *q = g->asym ? (double)((float)p->d * (float)c + (float)p->m) : (double)((float)p->d *
                                                                             (float)c);
    return c;
}

/* Writes one row of codes (cols, lo..hi) with the scales of its groups. */
static void pack_row(const gtype *g, const int16_t *codes, const gparam *ps, int64_t cols,
                     uint8_t *row) {
    const int64_t G = g->g ? g->g : cols, ng = cols / G;
    for (int64_t b = 0; b < ng; b++) {
        const int16_t *c = codes + b * G;
        memcpy(row, ps[b].head, (size_t)g->hb);
        uint8_t *qs = row + g->hb;
        if (g->layout == L_I8) {
            for (int64_t j = 0; j < G; j++) ((int8_t *)qs)[j] = (int8_t)(c[j] + g->off);
            row += g->hb + G;
        } else if (g->layout == L_NIB) {
            for (int64_t j = 0; j < G / 2; j++)
                qs[j] = (uint8_t)((c[j] + g->off) | (c[j + G / 2] + g->off) << 4);
            row += g->hb + G / 2;
        } else { /* q5: qh (32 bits, element j at bit j) then nibbles as q4 */
            uint32_t qh = 0;
            for (int j = 0; j < 16; j++) {
                const int a = c[j] + g->off, b2 = c[j + 16] + g->off;
                qs[4 + j] = (uint8_t)((a & 15) | (b2 & 15) << 4);
                qh |= (uint32_t)((a >> 4) & 1) << j;
                qh |= (uint32_t)((b2 >> 4) & 1) << (j + 16);
            }
            memcpy(qs, &qh, 4); /* little-endian hosts */
            row += g->hb + 4 + 16;
        }
    }
}

/* ---- the factor --------------------------------------------------------------------------- */

void sk_gptq_factor_free(sk_gptq_factor *f) {
    if (!f) return;
    sk_free(f->U);
    sk_free(f->perm);
    sk_free(f->dead);
    memset(f, 0, sizeof *f);
}

typedef struct dkey {
    double  v;
    int64_t i;
} dkey;

static int cmp_desc(const void *a, const void *b) {
    const dkey *x = a, *y = b;
    if (x->v > y->v) return -1;
    if (x->v < y->v) return 1;
    return (x->i > y->i) - (x->i < y->i);
}

shrink_status sk_gptq_prepare(double *H, int64_t n, const sk_gptq_opts *o, sk_gptq_factor *f,
                              const char *what) {
    memset(f, 0, sizeof *f);
    f->n = n;
    const size_t P = sk_hessian_packed(n);
    f->U = sk_malloc(P * sizeof *f->U);
    f->perm = sk_malloc((size_t)n * sizeof *f->perm);
    f->dead = sk_malloc((size_t)n);
    double *Hp = sk_malloc(P * sizeof *Hp);
    uint8_t *dead2 = sk_malloc((size_t)n);
    dkey *keys = sk_malloc((size_t)n * sizeof *keys);
    shrink_status st = SHRINK_OK;
    if (!f->U || !f->perm || !f->dead || !Hp || !dead2 || !keys) {
        st = sk_error(SHRINK_ERR_NOMEM, "gptq: out of memory for the %lld x %lld Hessian of %s",
                      (long long)n, (long long)n, what);
        goto out;
    }
    for (int64_t c = 0; c < n; c++) {
        double *hc = H + sk_hessian_up(c, n);
        f->dead[c] = *hc == 0.0;
        if (f->dead[c]) *hc = 1.0;
        keys[c].v = *hc;
        keys[c].i = c;
    }
    if (o->act_order) qsort(keys, (size_t)n, sizeof *keys, cmp_desc);
    for (int64_t c = 0; c < n; c++) f->perm[c] = o->act_order ? keys[c].i : c;
    f->damp = o->damp;
    for (int tries = 0;; tries++) {
        /* the permuted H, lower triangle packed: Hp[a][b] = H[perm a][perm b], b <= a */
        for (int64_t a = 0; a < n; a++) {
            double *ha = Hp + (size_t)a * (size_t)(a + 1) / 2;
            for (int64_t b = 0; b <= a; b++) {
                const int64_t x = f->perm[a], y = f->perm[b];
                ha[b] = x <= y ? H[sk_hessian_up(x, n) + (size_t)(y - x)]
                               : H[sk_hessian_up(y, n) + (size_t)(x - y)];
            }
        }
        st = sk_hessian_factor_packed(Hp, n, f->damp, f->U, dead2, what);
        if (st != SHRINK_ERR_ARG || tries == 3) break;
        f->damp *= 10.0;
        f->retries++;
    }
out:
    sk_free(Hp);
    sk_free(dead2);
    sk_free(keys);
    if (st) sk_gptq_factor_free(f);
    return st;
}

/* ---- GPTQ over tiles of rows -------------------------------------------------------------- */

#define TILE 32 /* rows per tile: the lazy update streams a block of U once per tile */
#define CHUNK 512 /* columns per step of the lazy update (a block of U: 128 x 512 doubles) */

shrink_status sk_gptq_quantize(const float *W, int64_t rows, const sk_gptq_factor *f,
                               shrink_dtype t, const sk_gptq_opts *o, uint8_t *out, double *Q) {
    const int64_t n = f->n;
    const gtype *g = gtype_of(t);
    if (!sk_gptq_serves(t, n))
        return sk_error(SHRINK_ERR_ARG, "gptq cannot write %s for rows of %lld",
                        shrink_dtype_name(t), (long long)n);
    const int64_t G = g->g ? g->g : n, ng = n / G;
    const int64_t bs = o->block > 0 ? (o->block < n ? o->block : n) : (n < 128 ? n : 128);
    const size_t row_bytes = (size_t)sk_dtype_row_bytes(t, n);
    const size_t gbytes = (size_t)sk_dtype_row_bytes(t, G);
    const int64_t n_tiles = (rows + TILE - 1) / TILE;
    const int nt = omp_get_max_threads();
    /* per thread: w (TILE x n), e (TILE x bs), codes (TILE x n), params (TILE x ng), a group
     * as f32 and as bytes, the pending values of a group */
    size_t per = (size_t)TILE * (size_t)n * sizeof(double) +
                       (size_t)TILE * (size_t)bs * sizeof(double) +
                       (size_t)TILE * (size_t)n * sizeof(int16_t) +
                       (size_t)TILE * (size_t)ng * sizeof(gparam) + (size_t)G * sizeof(float) +
                       gbytes + (size_t)G * sizeof(double) + (size_t)bs * sizeof(double *) +
                       64 * 8;
    per = (per + 63) & ~(size_t)63; /* every thread's slice 64-byte aligned */
    uint8_t *scratch = sk_malloc((size_t)nt * per);
    if (!scratch)
        return sk_error(SHRINK_ERR_NOMEM, "gptq: out of memory for %d x %lld scratch rows",
                        nt * TILE, (long long)n);
    const double *U = f->U; /* row a of the packed upper factor: U + up(a) - a, from column a */
    const int64_t *perm = f->perm;
    const int stat = o->act_order;
    const sk_f64_tile_fn tile = sk_f64_tile_get();
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (rows * n * n > 1000000)
    for (int64_t ti = 0; ti < n_tiles; ti++) {
        uint8_t *s = scratch + (size_t)omp_get_thread_num() * per;
        double *w = (double *)s;
        double *e = w + TILE * n;
        int16_t *codes = (int16_t *)(e + TILE * bs);
        uint8_t *p8 = (uint8_t *)(codes + TILE * n);
        p8 += (size_t)(-(uintptr_t)p8 & 15);
        gparam *ps = (gparam *)p8;
        float *fbuf = (float *)(ps + TILE * ng);
        uint8_t *bbuf = (uint8_t *)(fbuf + G);
        uint8_t *vb = bbuf + gbytes;
        vb += (size_t)(-(uintptr_t)vb & 7);
        double *vals = (double *)vb;
        const double **bp = (const double **)(vals + G);
        const int64_t r0 = ti * TILE, nr = rows - r0 < TILE ? rows - r0 : TILE;
        /* the rows in column order perm, dead inputs zeroed */
        for (int64_t r = 0; r < nr; r++) {
            const float *src = W + (size_t)(r0 + r) * (size_t)n;
            for (int64_t j = 0; j < n; j++)
                w[r * n + j] = f->dead[perm[j]] ? 0.0 : (double)src[perm[j]];
        }
        if (stat) /* static groups: every group's scales from the matrix as given */
            for (int64_t r = 0; r < nr; r++) {
                const float *src = W + (size_t)(r0 + r) * (size_t)n;
                for (int64_t b = 0; b < ng; b++) {
                    for (int64_t k = 0; k < G; k++)
                        vals[k] = f->dead[b * G + k] ? 0.0 : (double)src[b * G + k];
                    choose(g, vals, G, o->search, fbuf, bbuf, &ps[r * ng + b]);
                }
            }
        for (int64_t i1 = 0; i1 < n; i1 += bs) {
            const int64_t i2 = i1 + bs < n ? i1 + bs : n;
            for (int64_t j = i1; j < i2; j++) {
                const int64_t c = perm[j];
                const double *u = U + sk_hessian_up(j, n) - j;
                if (!stat && c % G == 0) /* a group starts: its scales from current values */
                    for (int64_t r = 0; r < nr; r++) {
                        const double *wr = w + r * n;
                        for (int64_t k = 0; k < G; k++) {
                            double v = wr[j + k];
                            if (j + k >= i2) /* the block's errors are still pending there */
                                for (int64_t a = i1; a < j; a++)
                                    v -= e[r * bs + (a - i1)] *
                                         U[sk_hessian_up(a, n) + (size_t)(j + k - a)];
                            vals[k] = v;
                        }
                        choose(g, vals, G, o->search, fbuf, bbuf, &ps[r * ng + c / G]);
                    }
                for (int64_t r = 0; r < nr; r++) {
                    double *wr = w + r * n;
                    double q;
                    const double x = wr[j];
                    codes[r * n + c] = (int16_t)code_of(g, &ps[r * ng + c / G], x, &q);
                    if (Q) Q[(size_t)(r0 + r) * (size_t)n + (size_t)c] = q;
                    const double ej = (x - q) / u[j];
                    e[r * bs + (j - i1)] = ej;
                    wr[j] = q;
                    if (ej != 0.0)
                        for (int64_t k = j + 1; k < i2; k++) wr[k] -= ej * u[k];
                }
            }
            /* the block's errors onto the later columns: W[:, i2:] -= E U[i1:i2, i2:], by
             * chunks of columns (a chunk of U's block stays in cache for all the rows) */
            for (int64_t c0 = i2; c0 < n; c0 += CHUNK) {
                const int64_t c1 = c0 + CHUNK < n ? c0 + CHUNK : n;
                for (int64_t a = i1; a < i2; a++) bp[a - i1] = U + sk_hessian_up(a, n) - a + c0;
                for (int64_t r = 0; r < nr; r += 4) {
                    const int64_t mi = nr - r < 4 ? nr - r : 4;
                    const double *ar[4];
                    double *cr[4];
                    for (int64_t q = 0; q < mi; q++) {
                        ar[q] = e + (r + q) * bs;
                        cr[q] = w + (r + q) * n + c0;
                    }
                    tile(mi, c1 - c0, i2 - i1, ar, 1, bp, cr, 1, 0);
                }
            }
        }
        for (int64_t r = 0; r < nr; r++)
            pack_row(g, codes + r * n, ps + r * ng, n, out + (size_t)(r0 + r) * row_bytes);
    }
    sk_free(scratch);
    return SHRINK_OK;
}

/* ---- a whole model ------------------------------------------------------------------------ */

/* The state of a run between begin and free (sk_gptq_run.st). */
struct sk_gptq_state {
    sk_xf       *xf;
    shrink_model *m;
    int32_t     *ids;
    sk_lw_state *lw;
    int          n_layers;
    int          tied;     /* no output.weight: the token embedding is the head */
};

void sk_gptq_run_free(sk_gptq_run *r, int64_t n) {
    if (r->bytes) {
        for (int64_t i = 0; i < n; i++) sk_free(r->bytes[i]);
        sk_free(r->bytes);
        r->bytes = NULL;
    }
    sk_gptq_state *s = r->st;
    if (!s) return;
    sk_layerwise_end(s->lw);
    shrink_free(s->ids);
    shrink_model_free(s->m);
    sk_free(s);
    r->st = NULL;
}

void sk_gptq_release(sk_gptq_run *r, int64_t i) {
    if (!r->bytes) return;
    sk_free(r->bytes[i]);
    r->bytes[i] = NULL;
}

/* Whether tensor i is GPTQ'd at layer `layer` from input `in` (layer n_layers: the head). */
static int selected(const sk_gptq_run *r, int64_t i, int layer, int in) {
    const sk_gptq_state *c = r->st;
    const sk_xf_tensor *x = &c->xf->ts[i];
    if (!r->sel[i] || x->t.n_dims != 2 || !sk_gptq_serves(x->dtype, x->t.cols)) return 0;
    if (layer == c->n_layers)
        return in == SK_IN_ATTN && (x->t.role == SK_ROLE_HEAD ||
                                    (c->tied && x->t.role == SK_ROLE_TOK_EMB));
    return x->t.layer == layer && sk_role_input(x->t.role) == in;
}

int sk_gptq_layer_of(const sk_gptq_run *r, int64_t i) {
    if (!r->st) return -1;
    for (int l = 0; l <= r->st->n_layers; l++)
        for (int in = 0; in < SK_IN_COUNT; in++)
            if (selected(r, i, l, in)) return l <= sk_layerwise_count(r->st->lw) - 1 ? l : -1;
    return -1;
}

/* Layer l's Hessians are in: GPTQ of its selected matrices, input by input, and binding. */
static shrink_status gptq_layer(void *user, struct shrink_model *m, int l,
                                double *const stat[SK_IN_COUNT], const int64_t cols[SK_IN_COUNT]) {
    sk_gptq_run *r = user;
    sk_gptq_state *c = r->st;
    sk_xf *xf = c->xf;
    shrink_status st = SHRINK_OK;
    /* the widest input first (ffn_down's): the inputs are independent, and the memory of the
     * largest factor is reached at once */
    for (int in = SK_IN_COUNT - 1; in >= 0 && !st; in--) {
        int any = 0;
        for (int64_t i = 0; i < xf->n; i++) any |= selected(r, i, l, in);
        if (!any) continue;
        static const char *const names[SK_IN_COUNT] = {"attention input", "attention output",
                                                       "feed-forward input", "ffn_down input"};
        char what[96];
        if (l == c->n_layers) snprintf(what, sizeof what, "the output head's input");
        else snprintf(what, sizeof what, "layer %d, %s", l, names[in]);
        sk_gptq_factor f;
        if ((st = sk_gptq_prepare(stat[in], cols[in], &r->o, &f, what))) break;
        if (f.retries) r->damp_raised++;
        if (f.damp > r->max_damp) r->max_damp = f.damp;
        for (int64_t i = 0; i < xf->n && !st; i++) {
            if (!selected(r, i, l, in)) continue;
            const sk_xf_tensor *x = &xf->ts[i];
            float *w = NULL;
            if ((st = sk_xf_read_f32(xf, x, &w))) break;
            const size_t bytes = (size_t)sk_dtype_row_bytes(x->dtype, x->t.cols) *
                                 (size_t)x->t.rows;
            uint8_t *b = sk_aligned_alloc(64, bytes ? bytes : 1);
            if (!b) st = sk_error(SHRINK_ERR_NOMEM, "gptq: out of memory for '%s'", x->name);
            else st = sk_gptq_quantize(w, x->t.rows, &f, x->dtype, &r->o, b, NULL);
            sk_free(w);
            if (st) {
                sk_free(b);
                break;
            }
            r->bytes[i] = b;
            r->n_matrices++;
            if (l < c->n_layers) sk_bind_linear(m, x->t.role, l, x->dtype, x->t.rows, x->t.cols, b);
        }
        sk_gptq_factor_free(&f);
    }
    return st;
}

static void gptq_progress(void *user, int64_t done, int64_t total) {
    sk_gptq_run *r = user;
    r->layers_done = done;
    r->layers_total = total;
    if (r->progress) r->progress(r->user, done, total);
}

shrink_status sk_gptq_begin(sk_xf *xf, sk_gptq_run *r) {
    r->bytes = sk_calloc((size_t)xf->n, sizeof *r->bytes);
    sk_gptq_state *c = sk_calloc(1, sizeof *c);
    r->st = c;
    if (!r->bytes || !c) return sk_error(SHRINK_ERR_NOMEM, "gptq: out of memory");
    r->n_matrices = 0;
    r->damp_raised = 0;
    r->max_damp = r->o.damp;
    c->xf = xf;
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = r->tokenizer_path;
    lp.allow_nonfinite = true; /* xf checked the same file at open; rows are checked again */
    int64_t n = 0;
    shrink_status st = shrink_model_load(&c->m, r->in, &lp);
    if (st) return st;
    if ((st = sk_calib_tokens(c->m, r->calib_path, r->calib_tokens, "--calib-tokens", &c->ids,
                              &n)))
        return st;
    c->n_layers = ((struct shrink_model *)c->m)->cfg.n_layers;
    /* ranks: this rank's windows [lo, hi) of the n_win windows of C tokens */
    const sk_config *cfg = &((struct shrink_model *)c->m)->cfg;
    int32_t C = r->calib_ctx > 0 ? r->calib_ctx : (cfg->max_seq_len < 512 ? cfg->max_seq_len : 512);
    if (C > cfg->max_seq_len) C = cfg->max_seq_len;
    const shrink_train_comm *rc = r->comm && r->comm->n_ranks > 1 ? r->comm : NULL;
    int64_t t0 = 0, t1 = n;
    if (rc) {
        const int64_t n_win = (n + C - 1) / C;
        if (n_win < rc->n_ranks)
            return sk_error(SHRINK_ERR_ARG, "%s: %lld calibration windows of %d tokens cannot "
                            "be shared by %d ranks (at least one window each)", r->calib_path,
                            (long long)n_win, (int)C, (int)rc->n_ranks);
        t0 = n_win * rc->rank / rc->n_ranks * C;
        t1 = n_win * (rc->rank + 1) / rc->n_ranks * C;
        if (t1 > n) t1 = n;
        if (rc->agree) {
            char opt[160];
            snprintf(opt, sizeof opt, "gptq %lld %d %.17g %d %lld %d %d", (long long)n, (int)C,
                     r->o.damp, r->o.act_order, (long long)r->o.block, r->o.search, r->head);
            uint64_t h = sk_hash_str(SK_HASH64_INIT, opt);
            h = sk_hash_file_id(sk_hash_file_id(sk_hash_file_id(h, r->in), r->calib_path),
                                r->tokenizer_path);
            for (int64_t i = 0; i < xf->n; i++) /* the planned types */
                h = sk_hash_str(h, r->sel[i] && shrink_dtype_name(xf->ts[i].dtype)
                                       ? shrink_dtype_name(xf->ts[i].dtype) : "-");
            if ((st = rc->agree(rc->user, h))) return st;
        }
    }
    c->tied = 1;
    for (int64_t i = 0; i < xf->n; i++) c->tied &= xf->ts[i].t.role != SK_ROLE_HEAD;
    sk_layerwise lw = {.model = c->m, .ids = c->ids + t0, .n = t1 - t0, .n_ctx = C, .diag = 0,
                       .packed = 1, .layer = gptq_layer, .head = r->head,
                       .progress = gptq_progress, .user = r, .comm = rc};
    if ((st = sk_layerwise_begin(&lw, &c->lw))) return st;
    r->layers_total = sk_layerwise_count(c->lw);
    r->n_tokens = n;
    return SHRINK_OK;
}

shrink_status sk_gptq_upto(sk_gptq_run *r, int layer) {
    shrink_status st = SHRINK_OK;
    while (!st && r->st && sk_layerwise_next(r->st->lw) <= layer &&
           sk_layerwise_next(r->st->lw) < sk_layerwise_count(r->st->lw))
        st = sk_layerwise_step(r->st->lw);
    return st;
}
