/*
 * prune.c - shrink_prune: unstructured and N:M pruning of the linear layers, written dense
 * into GGUF through the tensor transform (src/model/transform.h).
 *
 * What it does, in order:
 *   1. checks the parameters and opens the input through the tensor transform; the pruned
 *      tensors are the matrices of roles q, k, v, qkv (GPT-2), o, gate, up, down not matched
 *      by --keep (embeddings, head, norms and biases are never pruned); an N:M pattern must
 *      divide their rows;
 *   2. wanda / sparsegpt: loads the model for decoding and runs it over the calibration
 *      tokens once per layer l with an observer on the decoder (sk_context_set_observer) that
 *      accumulates, for the inputs of layer l's matrices, the squared L2 norm per input column
 *      (Wanda) or X^T X (SparseGPT's Hessian); then prunes layer l's matrices (read as f32 from
 *      the transform's source) and binds the pruned f32 copies into the decoder, so layer
 *      l + 1 is calibrated on the outputs of the already pruned layers (as both papers do).
 *      Memory: the pruned f32 copies of the linear layers (the weights of one model in f32)
 *      plus one layer's statistics (four D x D / F x F Hessians for SparseGPT);
 *   3. threshold / magnitude: each tensor is pruned when the transform reaches it (begin:
 *      the whole tensor as f32, pruned, kept until its last block is written);
 *   4. writes every tensor in its output dtype (--dtype, or the input's float type) from the
 *      pruned values; the zeros are exact zeros of the dtype for f32/f16/bf16.
 */
#include "prune.h"

#include "../model/transform.h"
#include "../tokenizer/tokenizer.h"

#include <math.h>
#include <omp.h>
#include <strings.h>
#include <sys/stat.h>

typedef enum pmethod { PM_THRESHOLD, PM_MAGNITUDE, PM_WANDA, PM_SPARSEGPT, PM_COUNT } pmethod;
static const char *const method_names[PM_COUNT] = {"threshold", "magnitude", "wanda",
                                                   "sparsegpt"};

/* The calibrated inputs of a layer: q/k/v (and GPT-2's qkv) share one, gate/up another. */
enum { IN_ATTN, IN_O, IN_FFN, IN_DOWN, IN_COUNT };

typedef struct ptensor {
    int      prunable;
    int      kept;
    int      input;      /* IN_*, for calibrated methods */
    float   *w;          /* pruned values (rows x cols) until written */
    int64_t  n_zero;
    double   rel_err;
} ptensor;

typedef struct pjob {
    const shrink_prune_params *p;
    const char *in;      /* the input's path, for messages */
    pmethod   method;
    double    sparsity;
    int       n, m;
    ptensor  *ps;        /* (xf->n) */
} pjob;


/* The calibrated input of a prunable role, -1 if the role is not pruned. */
static int role_input(sk_role r) {
    switch (r) {
    case SK_ROLE_WQ: case SK_ROLE_WK: case SK_ROLE_WV: case SK_ROLE_WQKV: return IN_ATTN;
    case SK_ROLE_WO: return IN_O;
    case SK_ROLE_W_GATE: case SK_ROLE_W_UP: return IN_FFN;
    case SK_ROLE_W_DOWN: return IN_DOWN;
    default: return -1;
    }
}

/* ---- reading a whole tensor as f32 ------------------------------------------------------ */

typedef struct rd {
    float  *dst;
    int64_t cols;
} rd;

static shrink_status read_chunk(void *user, int tid, int64_t r, int64_t k, float *rows) {
    rd *d = user;
    memcpy(d->dst + (size_t)r * (size_t)d->cols, rows, (size_t)(k * d->cols) * sizeof(float));
    return SHRINK_OK;
}

static shrink_status read_tensor(sk_xf *xf, const sk_xf_tensor *x, float **out) {
    const int64_t n = x->t.rows * x->t.cols;
    float *w = sk_aligned_alloc(64, (size_t)n * sizeof *w);
    if (!w) return sk_error(SHRINK_ERR_NOMEM, "prune: out of memory for '%s' (%lld "
                            "values)", x->name, (long long)n);
    rd d = {w, x->t.cols};
    shrink_status st = sk_xf_map_rows(xf, x, 0, x->t.rows, read_chunk, &d);
    if (st) {
        sk_free(w);
        return st;
    }
    *out = w;
    return SHRINK_OK;
}

/* Zeros of w[0..n) and ||w - w0|| / ||w0||. */
static void tensor_stats(ptensor *q, const float *w, const float *w0, int64_t n) {
    int64_t z = 0;
    double e2 = 0.0, r2 = 0.0;
    for (int64_t i = 0; i < n; i++) {
        z += w[i] == 0.0f;
        double d = (double)w[i] - (double)w0[i];
        e2 += d * d;
        r2 += (double)w0[i] * (double)w0[i];
    }
    q->n_zero = z;
    q->rel_err = r2 > 0 ? sqrt(e2 / r2) : 0.0;
}

/* ---- the method over the transform ------------------------------------------------------- */

static shrink_status p_plan(void *user, sk_xf *xf, sk_xf_tensor *x) {
    pjob *j = user;
    ptensor *q = &j->ps[x - xf->ts];
    x->user = q;
    if (x->t.n_dims == 1) {
        x->dtype = SHRINK_DTYPE_F32;
        return SHRINK_OK;
    }
    if (j->p->dtype >= 0 && x->t.role != SK_ROLE_POS_EMB)
        x->dtype = sk_gguf_fallback((shrink_dtype)j->p->dtype, x->t.cols);
    /* --store: the 2:4 type where its block of 32 divides the rows (else dense, as dtype) */
    if (q->prunable && j->p->store >= 0 &&
        x->t.cols % (int64_t)sk_dtype((shrink_dtype)j->p->store)->block == 0)
        x->dtype = (shrink_dtype)j->p->store;
    return SHRINK_OK;
}

/* --store sparse24_*: every row of the pruned values must be 2:4 */
static shrink_status check_sparse24(const pjob *j, const sk_xf_tensor *x, const float *w) {
    for (int64_t r = 0; r < x->t.rows; r++)
        if (!sk_sparse24_row_ok(w + (size_t)r * (size_t)x->t.cols, x->t.cols))
            return sk_error(SHRINK_ERR_ARG, "%s: '%s' is not 2:4 sparse after pruning (row %lld "
                            "has a group of 4 inputs with more than 2 non-zeros): --store %s "
                            "needs --pattern 2:4 (or 1:4)", j->in, x->name, (long long)r,
                            sk_dtype((shrink_dtype)j->p->store)->name);
    return SHRINK_OK;
}

/* threshold / magnitude: the whole tensor, pruned, before its first rows are written */
static shrink_status p_begin(void *user, sk_xf *xf, sk_xf_tensor *x) {
    pjob *j = user;
    ptensor *q = x->user;
    if (q->prunable && q->w && j->p->store >= 0) return check_sparse24(j, x, q->w);
    if (!q->prunable || q->w) return SHRINK_OK;
    float *w = NULL;
    shrink_status st = read_tensor(xf, x, &w);
    if (st) return st;
    const int64_t rows = x->t.rows, cols = x->t.cols, n = rows * cols;
    float *w0 = sk_aligned_alloc(64, (size_t)n * sizeof *w0);
    if (!w0) {
        sk_free(w);
        return sk_error(SHRINK_ERR_NOMEM, "prune: out of memory for '%s'", x->name);
    }
    memcpy(w0, w, (size_t)n * sizeof *w);
    if (j->method == PM_THRESHOLD) {
        if (j->n > 0) st = sk_prune_rows(w, rows, cols, NULL, 0.0, j->n, j->m);
        sk_prune_threshold(w, n, j->p->threshold);
    } else if (j->n > 0 || j->p->per_row) {
        st = sk_prune_rows(w, rows, cols, NULL, j->sparsity, j->n, j->m);
    } else {
        st = sk_prune_matrix(w, rows, cols, j->sparsity);
    }
    if (!st) tensor_stats(q, w, w0, n);
    sk_free(w0);
    if (st) {
        sk_free(w);
        return st;
    }
    if (j->p->store >= 0 && (st = check_sparse24(j, x, w))) {
        sk_free(w);
        return st;
    }
    q->w = w;
    return SHRINK_OK;
}

static shrink_status p_rows(void *user, sk_xf_tensor *x, int tid, int64_t row0, int64_t k,
                            float *rows, uint8_t *dst) {
    const ptensor *q = x->user;
    const int64_t cols = x->t.n_dims == 1 ? x->t.rows : x->t.cols;
    const float *src = q->w ? q->w + (size_t)row0 * (size_t)cols : rows;
    return sk_convert_rows(src, SHRINK_DTYPE_F32, dst, x->dtype, k, cols);
}

static shrink_status p_end_block(void *user, sk_xf *xf, sk_xf_tensor *x, int64_t row0,
                                 int64_t n_rows) {
    ptensor *q = x->user;
    if (q->w && (x->t.n_dims == 1 || row0 + n_rows >= x->t.rows)) {
        sk_free(q->w);
        q->w = NULL;
    }
    return SHRINK_OK;
}

static void p_progress(void *user, int64_t done, int64_t total) {
    const shrink_prune_params *p = user;
    if (p->progress) p->progress(p->user, 1, done, total);
}

/* ---- calibration (wanda, sparsegpt) ------------------------------------------------------ */

typedef struct calib {
    pmethod  method;
    int      layer;           /* the layer observed */
    int64_t  cols[IN_COUNT];
    double  *stat[IN_COUNT];  /* wanda: sum x^2 per column; sparsegpt: sum x x^T */
} calib;

static void calib_observe(void *user, int layer, sk_linear which, const float *X, int64_t T,
                          int64_t cols) {
    calib *c = user;
    if (layer != c->layer) return;
    int in;
    switch (which) {
    case SK_LIN_Q: in = IN_ATTN; break;
    case SK_LIN_O: in = IN_O; break;
    case SK_LIN_UP: in = IN_FFN; break;
    case SK_LIN_DOWN: in = IN_DOWN; break;
    default: return; /* K, V, gate: the same input as Q / up */
    }
    double *s = c->stat[in];
    if (!s || cols != c->cols[in]) return;
    if (c->method == PM_WANDA) {
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

shrink_status sk_prune_calib_tokens(const shrink_model *m, const char *path, int64_t want,
                                    int32_t **ids_out, int64_t *n_out) {
    int32_t *ids = NULL;
    size_t n_ids = 0;
    shrink_status st = sk_calib_encode(m, path, want, &ids, &n_ids);
    if (st) return st;
    if ((int64_t)n_ids < want) {
        shrink_free(ids);
        return sk_error(SHRINK_ERR_ARG, "%s: the calibration text gives %zu tokens but %lld "
                        "were asked (--calib-tokens)", path, n_ids, (long long)want);
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

/* Binds the pruned f32 values of x into layer l of the decoding model. */
static void bind_pruned(struct shrink_model *m, const sk_xf_tensor *x, const float *w) {
    sk_layer *L = &m->layers[x->t.layer];
    const sk_config *c = &m->cfg;
    sk_mat mt = {SHRINK_DTYPE_F32, x->t.rows, x->t.cols, w};
    switch (x->t.role) {
    case SK_ROLE_WQ: L->wq = mt; break;
    case SK_ROLE_WK: L->wk = mt; break;
    case SK_ROLE_WV: L->wv = mt; break;
    case SK_ROLE_WO: L->wo = mt; break;
    case SK_ROLE_W_GATE: L->w_gate = mt; break;
    case SK_ROLE_W_UP: L->w_up = mt; break;
    case SK_ROLE_W_DOWN: L->w_down = mt; break;
    case SK_ROLE_WQKV: {
        const int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads *
                          c->head_dim, D = x->t.cols;
        L->wq = (sk_mat){SHRINK_DTYPE_F32, q, D, w};
        L->wk = (sk_mat){SHRINK_DTYPE_F32, kv, D, w + q * D};
        L->wv = (sk_mat){SHRINK_DTYPE_F32, kv, D, w + (q + kv) * D};
        break;
    }
    default: break;
    }
}

/* Prunes tensor x (input statistics s of `cols` columns) into j->ps[..].w. */
static shrink_status prune_calibrated(pjob *j, sk_xf *xf, sk_xf_tensor *x, const double *s,
                                      const double *U, const uint8_t *dead) {
    ptensor *q = &j->ps[x - xf->ts];
    float *w = NULL;
    shrink_status st = read_tensor(xf, x, &w);
    if (st) return st;
    const int64_t rows = x->t.rows, cols = x->t.cols, n = rows * cols;
    float *w0 = sk_aligned_alloc(64, (size_t)n * sizeof *w0);
    double *wd = j->method == PM_SPARSEGPT ? sk_malloc((size_t)n * sizeof *wd) : NULL;
    double *norm = j->method == PM_WANDA ? sk_malloc((size_t)cols * sizeof *norm) : NULL;
    if (!w0 || (j->method == PM_SPARSEGPT && !wd) || (j->method == PM_WANDA && !norm)) {
        st = sk_error(SHRINK_ERR_NOMEM, "prune: out of memory for '%s'", x->name);
        goto out;
    }
    memcpy(w0, w, (size_t)n * sizeof *w);
    if (j->method == PM_WANDA) {
        for (int64_t c = 0; c < cols; c++) norm[c] = sqrt(s[c]);
        st = sk_prune_rows(w, rows, cols, norm, j->sparsity, j->n, j->m);
    } else {
        for (int64_t i = 0; i < n; i++) wd[i] = w[i];
        st = sk_sparsegpt(wd, rows, cols, U, dead, j->sparsity, j->n, j->m,
                          j->p->block_size > 0 ? j->p->block_size : 128);
        for (int64_t i = 0; !st && i < n; i++) w[i] = (float)wd[i];
    }
    if (st) goto out;
    tensor_stats(q, w, w0, n);
    q->w = w;
    w = NULL;
out:
    sk_free(w);
    sk_free(w0);
    sk_free(wd);
    sk_free(norm);
    return st;
}

/* Runs the model over the calibration tokens once per layer and prunes that layer's
 * matrices (see the top of the file). */
static shrink_status calibrate_and_prune(pjob *j, sk_xf *xf, const char *in,
                                         int64_t *n_used) {
    const shrink_prune_params *p = j->p;
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = p->tokenizer_path;
    shrink_model *m = NULL;
    shrink_context *ctx = NULL;
    int32_t *ids = NULL;
    int64_t n = 0;
    calib c;
    memset(&c, 0, sizeof c);
    c.method = j->method;
    double *U = NULL;
    uint8_t *dead = NULL;
    shrink_status st = shrink_model_load(&m, in, &lp);
    if (st) return st;
    struct shrink_model *mm = m;
    const sk_config *cfg = &mm->cfg;
    if ((st = sk_prune_calib_tokens(m, p->calib_path, p->calib_tokens, &ids, &n)))
        goto out;
    int32_t n_ctx = p->calib_ctx > 0 ? p->calib_ctx
                                     : (cfg->max_seq_len < 512 ? cfg->max_seq_len : 512);
    if (n_ctx > cfg->max_seq_len) n_ctx = cfg->max_seq_len;
    const int32_t piece = n_ctx < 128 ? n_ctx : 128;
    if ((st = shrink_context_create(&ctx, m, n_ctx, piece))) goto out;
    c.cols[IN_ATTN] = cfg->dim;
    c.cols[IN_O] = (int64_t)cfg->n_heads * cfg->head_dim;
    c.cols[IN_FFN] = cfg->dim;
    c.cols[IN_DOWN] = cfg->ffn_dim;
    int64_t maxc = 0;
    for (int i = 0; i < IN_COUNT; i++) {
        int64_t e = j->method == PM_WANDA ? c.cols[i] : c.cols[i] * c.cols[i];
        c.stat[i] = sk_malloc((size_t)e * sizeof(double));
        if (!c.stat[i]) {
            st = sk_error(SHRINK_ERR_NOMEM, "prune: out of memory for the statistics "
                          "of a %lld-column input", (long long)c.cols[i]);
            goto out;
        }
        if (c.cols[i] > maxc) maxc = c.cols[i];
    }
    if (j->method == PM_SPARSEGPT) {
        U = sk_malloc((size_t)(maxc * maxc) * sizeof *U);
        dead = sk_malloc((size_t)maxc);
        if (!U || !dead) {
            st = sk_error(SHRINK_ERR_NOMEM, "prune: out of memory for a %lld x %lld "
                          "inverse Hessian", (long long)maxc, (long long)maxc);
            goto out;
        }
    }
    sk_context_set_observer(ctx, calib_observe, &c);
    const int L = cfg->n_layers;
    for (int l = 0; l < L && !st; l++) {
        c.layer = l;
        for (int i = 0; i < IN_COUNT; i++)
            memset(c.stat[i], 0, (size_t)(j->method == PM_WANDA ? c.cols[i]
                                          : c.cols[i] * c.cols[i]) * sizeof(double));
        /* windows of n_ctx tokens, each from position 0 */
        for (int64_t w0 = 0; w0 < n && !st; w0 += n_ctx) {
            int32_t wl = (int32_t)(n - w0 < n_ctx ? n - w0 : n_ctx);
            st = shrink_context_eval(ctx, ids + w0, wl, 0, NULL, 0);
        }
        if (st) break;
        /* the pruned layer's inputs, one after another: statistics then its matrices */
        for (int in_i = 0; in_i < IN_COUNT && !st; in_i++) {
            int any = 0;
            for (int64_t i = 0; i < xf->n; i++)
                any |= xf->ts[i].t.layer == l && j->ps[i].prunable && j->ps[i].input == in_i &&
                       xf->ts[i].t.n_dims == 2;
            if (!any) continue;
            if (j->method == PM_SPARSEGPT) {
                const int64_t k = c.cols[in_i];
                double *H = c.stat[in_i];
                for (int64_t a = 0; a < k; a++) /* mirror the upper triangle */
                    for (int64_t b = 0; b < a; b++) H[a * k + b] = H[b * k + a];
                st = sk_sparsegpt_factor(H, k, p->damp, U, dead);
                if (st) {
                    st = sk_error(st, "layer %d: %s", l, shrink_last_error());
                    break;
                }
            }
            for (int64_t i = 0; i < xf->n && !st; i++) {
                sk_xf_tensor *x = &xf->ts[i];
                if (x->t.layer != l || !j->ps[i].prunable || j->ps[i].input != in_i ||
                    x->t.n_dims != 2)
                    continue;
                st = prune_calibrated(j, xf, x, c.stat[in_i], U, dead);
                if (!st) bind_pruned(mm, x, j->ps[i].w);
            }
        }
        if (p->progress) p->progress(p->user, 0, l + 1, L);
    }
    if (!st) *n_used = n;
out:
    for (int i = 0; i < IN_COUNT; i++) sk_free(c.stat[i]);
    sk_free(U);
    sk_free(dead);
    shrink_free(ids);
    shrink_context_free(ctx);
    shrink_model_free(m);
    return st;
}

/* ---- shrink_prune -------------------------------------------------------------------------- */

shrink_prune_params shrink_prune_params_default(void) {
    shrink_prune_params p = {.method = NULL, .sparsity = -1.0, .threshold = -1.0,
                             .per_row = false, .pattern_n = 0, .pattern_m = 0, .keep = NULL,
                             .dtype = -1, .calib_path = NULL, .calib_tokens = 4096,
                             .calib_ctx = 0, .tokenizer_path = NULL, .damp = 0.01,
                             .block_size = 128, .progress = NULL, .user = NULL,
                             .store = -1};
    return p;
}

void shrink_prune_result_free(shrink_prune_result *r) {
    if (!r) return;
    sk_free(r->tensors);
    r->tensors = NULL;
}

static shrink_status check_params(const char *in, const char *out, const shrink_prune_params *p,
                                  pjob *j) {
    if (!in || !*in || !out || !*out)
        return sk_error(SHRINK_ERR_ARG, "prune: input and output paths are required");
    if (!p->method)
        return sk_error(SHRINK_ERR_ARG, "prune: no method (one of: threshold, "
                        "magnitude, wanda, sparsegpt)");
    j->method = PM_COUNT;
    for (int i = 0; i < PM_COUNT; i++)
        if (strcasecmp(p->method, method_names[i]) == 0) j->method = (pmethod)i;
    if (j->method == PM_COUNT)
        return sk_error(SHRINK_ERR_ARG, "unknown pruning method '%s' (one of: threshold, "
                        "magnitude, wanda, sparsegpt)", p->method);
    j->n = p->pattern_n;
    j->m = p->pattern_m;
    if (j->n || j->m) {
        if (j->m < 2 || j->m > 64 || j->n < 1 || j->n >= j->m)
            return sk_error(SHRINK_ERR_ARG, "N:M pattern %d:%d: need 1 <= N < M <= 64 (N weights "
                            "of every M stay nonzero, e.g. 2:4)", j->n, j->m);
    }
    const double implied = j->m ? 1.0 - (double)j->n / (double)j->m : -1.0;
    if (j->method == PM_THRESHOLD) {
        if (!(p->threshold >= 0.0) || !isfinite(p->threshold))
            return sk_error(SHRINK_ERR_ARG, "method threshold needs a threshold >= 0 (weights "
                            "with |w| below it are zeroed; --threshold V)");
        if (p->sparsity >= 0.0)
            return sk_error(SHRINK_ERR_ARG, "method threshold takes a threshold, not a sparsity "
                            "(use magnitude for a sparsity)");
        j->sparsity = 0.0;
    } else {
        double s = p->sparsity;
        if (j->m && s < 0.0) s = implied;
        if (j->m && fabs(s - implied) > 1e-9)
            return sk_error(SHRINK_ERR_ARG, "sparsity %g contradicts the pattern %d:%d, which "
                            "zeroes %g of the weights (give one or the other)", s, j->n, j->m,
                            implied);
        if (s < 0.0 && p->sparsity == -1.0)
            return sk_error(SHRINK_ERR_ARG, "method %s needs a sparsity in [0, 1) or an N:M "
                            "pattern", method_names[j->method]);
        if (!(s >= 0.0 && s < 1.0))
            return sk_error(SHRINK_ERR_ARG, "sparsity %g is outside [0, 1)", s);
        j->sparsity = s;
    }
    if (j->method == PM_WANDA || j->method == PM_SPARSEGPT) {
        if (!p->calib_path || !*p->calib_path)
            return sk_error(SHRINK_ERR_ARG, "method %s needs a calibration text (--calib FILE): "
                            "its scores come from the activations of every linear layer",
                            method_names[j->method]);
        if (p->calib_tokens < 1)
            return sk_error(SHRINK_ERR_ARG, "calibration tokens %lld < 1",
                            (long long)p->calib_tokens);
    }
    if (j->method == PM_SPARSEGPT) {
        if (!(p->damp > 0.0) || !isfinite(p->damp))
            return sk_error(SHRINK_ERR_ARG, "sparsegpt: damping %g must be > 0", p->damp);
        if (p->block_size < 1 || (j->m && p->block_size % j->m))
            return sk_error(SHRINK_ERR_ARG, "sparsegpt: block size %d must be >= 1 and a "
                            "multiple of M", p->block_size);
    }
    if (p->dtype >= SHRINK_DTYPE_COUNT ||
        (p->dtype >= 0 && (!sk_dtype((shrink_dtype)p->dtype)->name ||
                           !sk_dtype((shrink_dtype)p->dtype)->block)))
        return sk_error(SHRINK_ERR_ARG, "prune: bad output dtype %d", (int)p->dtype);
    if (p->store != -1 && !sk_dtype_sparse24((shrink_dtype)p->store))
        return sk_error(SHRINK_ERR_ARG, "prune: storage %d is neither dense nor a 2:4 sparse "
                        "type (sparse24_f16, sparse24_i8)", (int)p->store);
    if (sk_same_file(in, out))
        return sk_error(SHRINK_ERR_ARG, "%s: is the input; refusing to overwrite it", out);
    if (sk_format_from_path(out) != SK_FORMAT_GGUF)
        return sk_error(SHRINK_ERR_ARG, "%s: pruned models are written as GGUF; name the output "
                        "*.gguf", out);
    return SHRINK_OK;
}

shrink_status shrink_prune(const char *in, const char *out, const shrink_prune_params *p,
                           shrink_prune_result *r) {
    shrink_prune_params def = shrink_prune_params_default();
    if (!p) p = &def;
    shrink_prune_result tmp;
    if (!r) r = &tmp;
    memset(r, 0, sizeof *r);
    const double t0 = shrink_time();
    pjob j;
    memset(&j, 0, sizeof j);
    j.p = p;
    j.in = in;
    shrink_status st = check_params(in, out, p, &j);
    if (st) return st;
    sk_xf xf;
    if ((st = sk_xf_open(&xf, in, p->tokenizer_path, "prune"))) goto out;
    j.ps = sk_calloc((size_t)xf.n, sizeof *j.ps);
    if (!j.ps) {
        st = sk_error(SHRINK_ERR_NOMEM, "prune: out of memory");
        goto out;
    }
    /* which tensors are pruned; the pattern must divide their rows */
    for (int64_t i = 0; i < xf.n; i++) {
        const sk_xf_tensor *x = &xf.ts[i];
        ptensor *q = &j.ps[i];
        q->input = role_input(x->t.role);
        if (x->t.n_dims != 2 || q->input < 0) continue;
        if (sk_glob_list_match(p->keep, x->name)) {
            q->kept = 1;
            continue;
        }
        q->prunable = 1;
        if (j.m && x->t.cols % j.m) {
            st = sk_error(SHRINK_ERR_ARG, "%s: pattern %d:%d does not divide the rows of '%s' "
                          "(%lld inputs); leave it out with --keep '%s'", in, j.n, j.m, x->name,
                          (long long)x->t.cols, x->name);
            goto out;
        }
    }
    if (j.method == PM_WANDA || j.method == PM_SPARSEGPT) {
        if ((st = calibrate_and_prune(&j, &xf, in, &r->calib_tokens))) goto out;
    }
    sk_xf_method method = {.plan = p_plan, .begin = p_begin, .rows = p_rows,
                           .end_block = p_end_block, .user = &j};
    sk_xf_opts o = {.dtype = p->dtype, .file_type = -1, .progress = p_progress,
                    .progress_user = (void *)(uintptr_t)p};
    if ((st = sk_xf_write(&xf, out, &method, &o))) goto out;

    r->method = method_names[j.method];
    r->in_file_bytes = xf.model->file_bytes;
    r->n_tensors = xf.n;
    r->tensors = sk_calloc((size_t)xf.n, sizeof *r->tensors);
    if (!r->tensors) {
        remove(out);
        st = sk_error(SHRINK_ERR_NOMEM, "prune: out of memory for the result");
        goto out;
    }
    for (int64_t i = 0; i < xf.n; i++) {
        const sk_xf_tensor *x = &xf.ts[i];
        const ptensor *q = &j.ps[i];
        shrink_prune_tensor *o2 = &r->tensors[i];
        const int64_t ne = x->t.n_dims == 1 ? x->t.rows : x->t.rows * x->t.cols;
        snprintf(o2->name, sizeof o2->name, "%s", x->name);
        o2->n_dims = x->t.n_dims;
        o2->shape[0] = x->t.rows;
        o2->shape[1] = x->t.n_dims == 1 ? 0 : x->t.cols;
        o2->dtype = x->dtype;
        o2->bytes = x->bytes;
        o2->pruned = q->prunable;
        o2->kept = q->kept;
        o2->n_elems = ne;
        o2->n_zero = q->n_zero;
        o2->rel_err = q->rel_err;
        r->tensor_bytes += x->bytes;
        r->n_params += ne;
        if (q->prunable) {
            r->n_pruned++;
            r->n_pruned_params += ne;
            r->n_zero += q->n_zero;
        }
    }
    r->sparsity = r->n_pruned_params ? (double)r->n_zero / (double)r->n_pruned_params : 0.0;
    struct stat sb;
    if (stat(out, &sb) == 0) r->out_file_bytes = (uint64_t)sb.st_size;
    r->seconds = shrink_time() - t0;
out:
    if (j.ps)
        for (int64_t i = 0; i < xf.n; i++) sk_free(j.ps[i].w);
    sk_free(j.ps);
    sk_xf_close(&xf);
    return st;
}
