/*
 * layerwise.c - the layer-by-layer calibration pass of layerwise.h (moved here from
 * src/prune/prune.c so that SparseGPT, Wanda and GPTQ share it).
 */
#include "layerwise.h"
#include "hessian.h"

#include <math.h>
#include <omp.h>

int sk_role_input(sk_role r) {
    switch (r) {
    case SK_ROLE_WQ: case SK_ROLE_WK: case SK_ROLE_WV: case SK_ROLE_WQKV: return SK_IN_ATTN;
    case SK_ROLE_WO: return SK_IN_O;
    case SK_ROLE_W_GATE: case SK_ROLE_W_UP: return SK_IN_FFN;
    case SK_ROLE_W_DOWN: return SK_IN_DOWN;
    default: return -1;
    }
}

shrink_status sk_calib_tokens(const shrink_model *m, const char *path, int64_t want,
                              const char *opt, int32_t **ids_out, int64_t *n_out) {
    int32_t *ids = NULL;
    size_t n_ids = 0;
    shrink_status st = sk_calib_encode(m, path, want, &ids, &n_ids);
    if (st) return st;
    if ((int64_t)n_ids < want) {
        shrink_free(ids);
        return sk_error(SHRINK_ERR_ARG, "%s: the calibration text gives %zu tokens but %lld "
                        "were asked (%s)", path, n_ids, (long long)want, opt);
    }
    for (int64_t i = 0; i < want; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab_size) {
            int32_t bad_id = ids[i];
            shrink_free(ids);
            return sk_error(SHRINK_ERR_ARG, "%s: the tokenizer gives id %d, outside the model's "
                            "vocabulary of %d: the tokenizer is not the model's",
                            path, bad_id, m->cfg.vocab_size);
        }
    *ids_out = ids;
    *n_out = want;
    return SHRINK_OK;
}

void sk_bind_linear(struct shrink_model *m, sk_role role, int layer, shrink_dtype dt,
                    int64_t rows, int64_t cols, const void *w) {
    sk_layer *L = &m->layers[layer];
    const sk_config *c = &m->cfg;
    sk_mat mt = {dt, rows, cols, w, NULL};
    switch (role) {
    case SK_ROLE_WQ: L->wq = mt; break;
    case SK_ROLE_WK: L->wk = mt; break;
    case SK_ROLE_WV: L->wv = mt; break;
    case SK_ROLE_WO: L->wo = mt; break;
    case SK_ROLE_W_GATE: L->w_gate = mt; break;
    case SK_ROLE_W_UP: L->w_up = mt; break;
    case SK_ROLE_W_DOWN: L->w_down = mt; break;
    case SK_ROLE_WQKV: {
        const int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads *
                          c->head_dim;
        const size_t rb = (size_t)sk_dtype_row_bytes(dt, cols);
        const uint8_t *b = w;
        L->wq = (sk_mat){dt, q, cols, b, NULL};
        L->wk = (sk_mat){dt, kv, cols, b + (size_t)q * rb, NULL};
        L->wv = (sk_mat){dt, kv, cols, b + (size_t)(q + kv) * rb, NULL};
        break;
    }
    default: break;
    }
}

typedef struct lw_calib {
    int      diag;
    int      packed;           /* H as its packed upper triangle (hessian.h) */
    int      n_layers;
    int      layer;            /* the layer observed */
    int      active;           /* 0: the statistics are not collected (the update pass) */
    int64_t  cols[SK_IN_COUNT];
    double  *stat[SK_IN_COUNT];
    /* H: the current window's inputs (n_ctx x cols floats each), added to H at its end */
    float   *win[SK_IN_COUNT];
    int64_t  wn[SK_IN_COUNT];  /* tokens in win */
    double  *xd;               /* n_ctx x max cols doubles: sk_hessian_add_xtx's scratch */
    /* ranks (sk_layerwise.comm): block holds n_keep parts of E doubles (the four inputs' H
     * at offsets off[]); stat[i] points into part 0. A rank other than 0 keeps each window's
     * sums apart (part k = window k) until the ordered sum adds them. */
    double  *block;
    int64_t  n_keep, E, off[SK_IN_COUNT];
    int64_t  window;           /* the window being observed (its part when n_keep > 1) */
} lw_calib;

/* Doubles of input i's statistics. */
static int64_t lw_elems(const lw_calib *c, int i) {
    const int64_t k = c->cols[i];
    return c->diag ? k : c->packed ? (int64_t)sk_hessian_packed(k) : k * k;
}

static void lw_observe(void *user, int layer, sk_linear which, const float *X, int64_t T,
                       int64_t cols) {
    lw_calib *c = user;
    if (!c->active) return;
    if (which == SK_LIN_HEAD ? c->layer != c->n_layers : layer != c->layer) return;
    int in;
    switch (which) {
    case SK_LIN_HEAD: in = SK_IN_ATTN; break;
    case SK_LIN_Q: in = SK_IN_ATTN; break;
    case SK_LIN_O: in = SK_IN_O; break;
    case SK_LIN_UP: in = SK_IN_FFN; break;
    case SK_LIN_DOWN: in = SK_IN_DOWN; break;
    default: return; /* K, V, gate: the same input as Q / up */
    }
    double *s = c->stat[in];
    if (!s || cols != c->cols[in]) return;
    if (c->diag) {
        for (int64_t t = 0; t < T; t++)
            for (int64_t k = 0; k < cols; k++) s[k] += (double)X[t * cols + k] * X[t * cols + k];
        return;
    }
    /* H: kept until the window ends (lw_flush) */
    memcpy(c->win[in] + (size_t)c->wn[in] * (size_t)cols, X, (size_t)(T * cols) * sizeof *X);
    c->wn[in] += T;
}

/* The end of a window: H += X^T X of its inputs (each element's window sum from zero, then
 * added: src/model/hessian.h), so the sums do not depend on how a window is cut in steps. */
static void lw_flush(lw_calib *c) {
    if (c->diag) return;
    double *part = c->block + (size_t)(c->n_keep > 1 ? c->window : 0) * (size_t)c->E;
    for (int i = 0; i < SK_IN_COUNT; i++) {
        if (c->wn[i] > 0 && c->stat[i])
            sk_hessian_add_xtx(part + c->off[i], c->cols[i], c->packed, c->win[i], c->wn[i],
                               c->xd);
        c->wn[i] = 0;
    }
    c->window++;
}

/* Drops the mapped pages of layer l's matrices (heap copies are left alone). */
static void release_layer(const struct shrink_model *m, int l) {
    const sk_layer *L = &m->layers[l];
    const sk_mat *ms[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    for (int i = 0; i < 7; i++)
        if (ms[i]->data && sk_model_in_mapping(m, ms[i]->data))
            sk_map_release(ms[i]->data, sk_dtype_tensor_bytes(ms[i]->dtype, ms[i]->rows,
                                                                ms[i]->cols));
}

struct sk_lw_state {
    sk_layerwise    w;
    shrink_context *ctx;
    lw_calib        c;
    float          *X;        /* (n, dim) the residual stream entering layer `next` */
    int32_t         n_ctx, piece;
    int             next;     /* the next layer to run (n_layers: the head) */
    int             LL;       /* layers to run, the head counted */
};

void sk_layerwise_end(sk_lw_state *s) {
    if (!s) return;
    sk_free(s->c.block);
    for (int i = 0; i < SK_IN_COUNT; i++) sk_free(s->c.win[i]);
    sk_free(s->c.xd);
    sk_free(s->X);
    shrink_context_free(s->ctx);
    sk_free(s);
}

int sk_layerwise_next(const sk_lw_state *s) { return s->next; }
int sk_layerwise_count(const sk_lw_state *s) { return s->LL; }

/* A context for one layer, observed by the statistics (or the caller's observer). */
static shrink_status lw_context(sk_lw_state *s) {
    shrink_context_free(s->ctx);
    s->ctx = NULL;
    shrink_status st = sk_context_create_layer(&s->ctx, s->w.model, s->n_ctx, s->piece);
    if (st) return st;
    if (s->w.layer) sk_context_set_observer(s->ctx, lw_observe, &s->c);
    else sk_context_set_observer(s->ctx, s->w.observe, s->w.user);
    return SHRINK_OK;
}

/* One pass of layer l (n_layers: the head's input) over every window: in place when
 * `update`, else only observed. */
static shrink_status lw_pass(sk_lw_state *s, int l, int update) {
    const int64_t D = s->w.model->cfg.dim;
    shrink_status st = SHRINK_OK;
    for (int64_t w0 = 0; w0 < s->w.n && !st; w0 += s->n_ctx) {
        const int32_t wl = (int32_t)(s->w.n - w0 < s->n_ctx ? s->w.n - w0 : s->n_ctx);
        for (int32_t o = 0; o < wl && !st; o += s->piece) {
            const int32_t k = wl - o < s->piece ? wl - o : s->piece;
            float *X = s->X + (size_t)(w0 + o) * (size_t)D;
            st = l == s->w.model->cfg.n_layers ? sk_context_head_input(s->ctx, X, k)
                                               : sk_context_layer(s->ctx, l, X,
                                                                  update ? X : NULL, k, o);
        }
        if (!st && s->c.active) lw_flush(&s->c);
    }
    return st;
}

shrink_status sk_layerwise_begin(const sk_layerwise *w, sk_lw_state **out) {
    *out = NULL;
    struct shrink_model *mm = w->model;
    const sk_config *cfg = &mm->cfg;
    sk_lw_state *s = sk_calloc(1, sizeof *s);
    if (!s) return sk_error(SHRINK_ERR_NOMEM, "out of memory for the layer-by-layer pass");
    s->w = *w;
    s->c.diag = w->diag;
    s->c.packed = w->packed && !w->diag;
    s->c.n_layers = cfg->n_layers;
    int32_t n_ctx = w->n_ctx > 0 ? w->n_ctx : (cfg->max_seq_len < 512 ? cfg->max_seq_len : 512);
    if (n_ctx > cfg->max_seq_len) n_ctx = cfg->max_seq_len;
    s->n_ctx = n_ctx;
    s->piece = w->n_batch > 0 ? (w->n_batch < n_ctx ? w->n_batch : n_ctx)
                              : (n_ctx < 128 ? n_ctx : 128);
    s->LL = cfg->n_layers + (w->layer && w->head && !w->diag);
    shrink_status st = SHRINK_OK;
    s->X = sk_malloc((size_t)w->n * (size_t)cfg->dim * sizeof(float));
    if (!s->X) {
        st = sk_error(SHRINK_ERR_NOMEM, "out of memory for the activations of %lld calibration "
                      "tokens (%lld x %d floats): use fewer tokens", (long long)w->n,
                      (long long)w->n, cfg->dim);
        goto out;
    }
    s->c.cols[SK_IN_ATTN] = cfg->dim;
    s->c.cols[SK_IN_O] = (int64_t)cfg->n_heads * cfg->head_dim;
    s->c.cols[SK_IN_FFN] = cfg->dim;
    s->c.cols[SK_IN_DOWN] = cfg->ffn_dim;
    /* ranks: a rank other than 0 keeps its windows apart (H only; the ordered sum then gives
     * one process's additions) */
    const shrink_train_comm *rc = w->comm && w->comm->n_ranks > 1 ? w->comm : NULL;
    s->c.n_keep = rc && rc->rank > 0 && !w->diag ? (w->n + n_ctx - 1) / n_ctx : 1;
    if (rc && w->layer && !rc->sum_f64) {
        st = sk_error(SHRINK_ERR_ARG, "the ranks' communication has no sum");
        goto out;
    }
    for (int i = 0; i < SK_IN_COUNT && w->layer; i++) {
        s->c.off[i] = s->c.E;
        s->c.E += lw_elems(&s->c, i);
    }
    if (w->layer) {
        s->c.block = sk_malloc((size_t)s->c.n_keep * (size_t)s->c.E * sizeof(double));
        if (!s->c.block) {
            st = sk_error(SHRINK_ERR_NOMEM, "out of memory for the statistics of a layer "
                          "(%lld doubles%s)", (long long)(s->c.n_keep * s->c.E),
                          s->c.n_keep > 1 ? ", one set per window of this rank" : "");
            goto out;
        }
        for (int i = 0; i < SK_IN_COUNT; i++) s->c.stat[i] = s->c.block + s->c.off[i];
    }
    int64_t widest = 0;
    for (int i = 0; i < SK_IN_COUNT && w->layer && !w->diag; i++) {
        widest = s->c.cols[i] > widest ? s->c.cols[i] : widest;
        if (!(s->c.win[i] = sk_malloc((size_t)n_ctx * (size_t)s->c.cols[i] * sizeof(float)))) {
            st = sk_error(SHRINK_ERR_NOMEM, "out of memory for a window's inputs");
            goto out;
        }
    }
    if (widest && !(s->c.xd = sk_malloc((size_t)n_ctx * (size_t)widest * sizeof(double)))) {
        st = sk_error(SHRINK_ERR_NOMEM, "out of memory for a window's inputs");
        goto out;
    }
    if ((st = lw_context(s))) goto out;
    /* the embeddings of every window, in the batches the layers will see */
    for (int64_t w0 = 0; w0 < w->n && !st; w0 += n_ctx) {
        const int32_t wl = (int32_t)(w->n - w0 < n_ctx ? w->n - w0 : n_ctx);
        for (int32_t o = 0; o < wl && !st; o += s->piece) {
            const int32_t k = wl - o < s->piece ? wl - o : s->piece;
            st = sk_context_embed(s->ctx, w->ids + w0 + o, k, o,
                                  s->X + (size_t)(w0 + o) * (size_t)cfg->dim);
        }
    }
    if (!st && sk_model_in_mapping(mm, mm->tok_emb.data))
        sk_map_release(mm->tok_emb.data, sk_dtype_tensor_bytes(mm->tok_emb.dtype,
                                                               mm->tok_emb.rows,
                                                               mm->tok_emb.cols));
out:
    if (st) sk_layerwise_end(s);
    else *out = s;
    return st;
}

shrink_status sk_layerwise_step(sk_lw_state *s) {
    const sk_layerwise *w = &s->w;
    struct shrink_model *mm = w->model;
    const int L = mm->cfg.n_layers, l = s->next;
    if (l >= s->LL) return SHRINK_OK;
    lw_calib *c = &s->c;
    shrink_status st;
    c->layer = l;
    if (!w->layer) { /* observe only: one pass, in place */
        if ((st = lw_pass(s, l, 1))) return st;
        release_layer(mm, l);
        if (w->after && (st = w->after(w->user, l))) return st;
        s->next++;
        if (w->progress) w->progress(w->user, s->next, s->LL);
        return SHRINK_OK;
    }
    memset(c->block, 0, (size_t)c->n_keep * (size_t)c->E * sizeof(double));
    c->window = 0;
    /* the statistics of layer l's inputs (windows of n_ctx tokens, each from position 0) */
    c->active = 1;
    st = lw_pass(s, l, 0);
    c->active = 0;
    if (st) return st;
    /* ranks: the windows' sums in window order (rank 0's already added), onto every rank */
    const shrink_train_comm *rc = w->comm && w->comm->n_ranks > 1 ? w->comm : NULL;
    if (rc && !w->diag) {
        double **parts = sk_malloc((size_t)c->n_keep * sizeof *parts);
        if (!parts) return sk_error(SHRINK_ERR_NOMEM, "out of memory");
        for (int64_t k = 0; k < c->n_keep; k++) parts[k] = c->block + (size_t)k * (size_t)c->E;
        st = rc->sum_f64(rc->user, parts, (int32_t)c->n_keep, c->E);
        sk_free(parts);
        if (st) return st;
    }
    if (l < L) release_layer(mm, l);
    if (!w->diag && !c->packed)
        for (int i = 0; i < SK_IN_COUNT; i++) { /* mirror the upper triangle */
            const int64_t k = c->cols[i];
            double *H = c->stat[i];
            for (int64_t a = 0; a < k; a++)
                for (int64_t b = 0; b < a; b++) H[a * k + b] = H[b * k + a];
        }
    if ((st = w->layer(w->user, mm, l, c->stat, c->cols))) return st;
    s->next++;
    /* the matrices bound may be of other types: a context sized for them (scratch) */
    if (s->next < s->LL) {
        if ((st = lw_context(s))) return st;
        /* layer l as changed, on the stream the next layer reads */
        if (l < L && (st = lw_pass(s, l, 1))) return st;
        if (l < L) release_layer(mm, l);
    }
    if (w->progress) w->progress(w->user, s->next, s->LL);
    return SHRINK_OK;
}

shrink_status sk_layerwise_run(const sk_layerwise *w) {
    sk_lw_state *s = NULL;
    shrink_status st = sk_layerwise_begin(w, &s);
    while (!st && s->next < s->LL) st = sk_layerwise_step(s);
    sk_layerwise_end(s);
    return st;
}
