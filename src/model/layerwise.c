/*
 * layerwise.c - the layer-by-layer calibration pass of layerwise.h (moved here from
 * src/prune/prune.c so that SparseGPT, Wanda and GPTQ share it).
 */
#include "layerwise.h"

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
    sk_mat mt = {dt, rows, cols, w};
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
        L->wq = (sk_mat){dt, q, cols, b};
        L->wk = (sk_mat){dt, kv, cols, b + (size_t)q * rb};
        L->wv = (sk_mat){dt, kv, cols, b + (size_t)(q + kv) * rb};
        break;
    }
    default: break;
    }
}

typedef struct lw_calib {
    int      diag;
    int      n_layers;
    int      layer;            /* the layer observed */
    int64_t  cols[SK_IN_COUNT];
    double  *stat[SK_IN_COUNT];
} lw_calib;

static void lw_observe(void *user, int layer, sk_linear which, const float *X, int64_t T,
                       int64_t cols) {
    lw_calib *c = user;
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
    /* upper triangle of X^T X */
    #pragma omp parallel for schedule(dynamic, 4) if (cols * cols * T > 1000000)
    for (int64_t a = 0; a < cols; a++) {
        double *ha = s + a * cols;
        for (int64_t t = 0; t < T; t++) {
            const float *xt = X + t * cols;
            const double xa = xt[a];
            if (xa == 0.0) continue;
            for (int64_t b = a; b < cols; b++) ha[b] += xa * (double)xt[b];
        }
    }
}

shrink_status sk_layerwise_run(const sk_layerwise *w) {
    struct shrink_model *mm = w->model;
    const sk_config *cfg = &mm->cfg;
    shrink_context *ctx = NULL;
    lw_calib c;
    memset(&c, 0, sizeof c);
    c.diag = w->diag;
    c.n_layers = cfg->n_layers;
    int32_t n_ctx = w->n_ctx > 0 ? w->n_ctx : (cfg->max_seq_len < 512 ? cfg->max_seq_len : 512);
    if (n_ctx > cfg->max_seq_len) n_ctx = cfg->max_seq_len;
    const int32_t piece = n_ctx < 128 ? n_ctx : 128;
    shrink_status st = shrink_context_create(&ctx, w->model, n_ctx, piece);
    if (st) return st;
    c.cols[SK_IN_ATTN] = cfg->dim;
    c.cols[SK_IN_O] = (int64_t)cfg->n_heads * cfg->head_dim;
    c.cols[SK_IN_FFN] = cfg->dim;
    c.cols[SK_IN_DOWN] = cfg->ffn_dim;
    for (int i = 0; i < SK_IN_COUNT; i++) {
        int64_t e = w->diag ? c.cols[i] : c.cols[i] * c.cols[i];
        c.stat[i] = sk_malloc((size_t)e * sizeof(double));
        if (!c.stat[i]) {
            st = sk_error(SHRINK_ERR_NOMEM, "out of memory for the statistics of a %lld-column "
                          "input", (long long)c.cols[i]);
            goto out;
        }
    }
    sk_context_set_observer(ctx, lw_observe, &c);
    const int L = cfg->n_layers, LL = L + (w->head && !w->diag);
    float *logits = NULL;
    for (int l = 0; l < LL && !st; l++) {
        c.layer = l;
        for (int i = 0; i < SK_IN_COUNT; i++)
            memset(c.stat[i], 0, (size_t)(w->diag ? c.cols[i] : c.cols[i] * c.cols[i]) *
                   sizeof(double));
        /* windows of n_ctx tokens, each from position 0 (the head: in pieces whose logits are
         * all asked for, so that its input is observed for every token) */
        if (l == L && !logits) {
            logits = sk_malloc((size_t)piece * (size_t)cfg->vocab_size * sizeof *logits);
            if (!logits) {
                st = sk_error(SHRINK_ERR_NOMEM, "out of memory for the head's calibration");
                break;
            }
        }
        for (int64_t w0 = 0; w0 < w->n && !st; w0 += n_ctx) {
            int32_t wl = (int32_t)(w->n - w0 < n_ctx ? w->n - w0 : n_ctx);
            if (l < L) {
                st = shrink_context_eval(ctx, w->ids + w0, wl, 0, NULL, 0);
                continue;
            }
            for (int32_t o = 0; o < wl && !st; o += piece) {
                int32_t k = wl - o < piece ? wl - o : piece;
                st = shrink_context_eval(ctx, w->ids + w0 + o, k, o, logits, k);
            }
        }
        if (st) break;
        if (!w->diag)
            for (int i = 0; i < SK_IN_COUNT; i++) { /* mirror the upper triangle */
                const int64_t k = c.cols[i];
                double *H = c.stat[i];
                for (int64_t a = 0; a < k; a++)
                    for (int64_t b = 0; b < a; b++) H[a * k + b] = H[b * k + a];
            }
        st = w->layer(w->user, mm, l, c.stat, c.cols);
        if (w->progress) w->progress(w->user, l + 1, LL);
        if (st || l + 1 == LL) break;
        /* the matrices bound may be of other types: a context sized for them (scratch) */
        shrink_context_free(ctx);
        ctx = NULL;
        if ((st = shrink_context_create(&ctx, w->model, n_ctx, piece))) break;
        sk_context_set_observer(ctx, lw_observe, &c);
    }
    sk_free(logits);
out:
    for (int i = 0; i < SK_IN_COUNT; i++) sk_free(c.stat[i]);
    shrink_context_free(ctx);
    return st;
}
