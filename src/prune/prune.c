/*
 * prune.c - shrink_prune: unstructured and N:M pruning of the linear layers, written dense
 * into GGUF through the tensor transform (src/model/transform.h).
 *
 * What it does, in order:
 *   1. checks the parameters and opens the input through the tensor transform; the pruned
 *      tensors are the matrices of roles q, k, v, qkv (GPT-2), o, gate, up, down not matched
 *      by --keep (embeddings, head, norms and biases are never pruned); an N:M pattern must
 *      divide their rows;
 *   2. wanda / sparsegpt: the layer-by-layer pass (src/model/layerwise.h) over the calibration
 *      tokens accumulates, for the inputs of layer l's matrices, the squared L2 norm per input
 *      column (Wanda) or X^T X (SparseGPT's Hessian); then layer l's matrices are pruned (read
 *      as f32 from the transform's source) and the pruned f32 copies bound into the decoder,
 *      so layer l + 1 is calibrated on the outputs of the already pruned layers (as both
 *      papers do). The writer drives the pass: it runs up to layer l when the output reaches
 *      layer l's first pruned tensor, and each pruned copy is freed once written (the decoder
 *      never reads a finished layer again). Memory: the calibration stream, one layer's
 *      statistics (four D x D / F x F Hessians for SparseGPT) and pruned copies;
 *   3. threshold / magnitude: each tensor is pruned when the transform reaches it (begin:
 *      the whole tensor as f32, pruned, kept until its last block is written);
 *   4. writes every tensor in its output dtype (--dtype, or the input's float type) from the
 *      pruned values; the zeros are exact zeros of the dtype for f32/f16/bf16.
 */
#include "prune.h"

#include "../model/layerwise.h"
#include "../model/transform.h"
#include "../tokenizer/tokenizer.h"

#include <math.h>
#include <omp.h>
#include <strings.h>
#include <sys/stat.h>

typedef enum pmethod { PM_THRESHOLD, PM_MAGNITUDE, PM_WANDA, PM_SPARSEGPT, PM_COUNT } pmethod;
static const char *const method_names[PM_COUNT] = {"threshold", "magnitude", "wanda",
                                                   "sparsegpt"};


typedef struct ptensor {
    int      prunable;
    int      kept;
    int      input;      /* IN_*, for calibrated methods */
    float   *w;          /* pruned values (rows x cols) until written */
    int64_t  n_zero;
    double   rel_err;
    char     note[96];   /* --store sparse_*: why the matrix stays dense ("" otherwise) */
} ptensor;

struct pcal;

typedef struct pjob {
    struct pcal *cal;    /* wanda / sparsegpt: the layer-by-layer pass, begun at the first
                            tensor and advanced as the writer reaches each layer */
    const shrink_prune_params *p;
    const char *in;      /* the input's path, for messages */
    pmethod   method;
    double    sparsity;
    int       n, m;
    ptensor  *ps;        /* (xf->n) */
} pjob;


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

/* The most non-zeros a row of x will keep, known before it is pruned: per-row methods and N:M
 * patterns from the count they zero; threshold and magnitude per matrix by pruning a copy now
 * (the same deterministic result as later); SparseGPT's adaptive masks are not known until its
 * layer's turn: -1 (its rows are checked when written). */
static shrink_status max_row_keep(pjob *j, sk_xf *xf, sk_xf_tensor *x, int64_t *out) {
    const int64_t rows = x->t.rows, cols = x->t.cols;
    if (j->m) {
        *out = cols / j->m * j->n;
        return SHRINK_OK;
    }
    if (j->method == PM_WANDA || (j->method == PM_MAGNITUDE && j->p->per_row)) {
        *out = cols - (int64_t)floor((double)cols * j->sparsity);
        return SHRINK_OK;
    }
    if (j->method == PM_SPARSEGPT) {
        *out = -1;
        return SHRINK_OK;
    }
    float *w = NULL;
    shrink_status st = sk_xf_read_f32(xf, x, &w);
    if (st) return st;
    if (j->method == PM_THRESHOLD) sk_prune_threshold(w, rows * cols, j->p->threshold);
    else st = sk_prune_matrix(w, rows, cols, j->sparsity, NULL);
    int64_t most = 0;
    for (int64_t r = 0; !st && r < rows; r++) {
        int64_t nz = 0;
        for (int64_t c = 0; c < cols; c++) nz += w[(size_t)r * (size_t)cols + (size_t)c] != 0.0f;
        if (nz > most) most = nz;
    }
    sk_free(w);
    *out = most;
    return st;
}

/* --store sparse_f16 / sparse_i8: the sparse type when every row will fit (at most half of it
 * kept) and the type is smaller than the dense one; else dense, and the note says why */
static shrink_status plan_sparse_bm(pjob *j, sk_xf *xf, sk_xf_tensor *x, ptensor *q) {
    const shrink_dtype sp = (shrink_dtype)j->p->store, dense = x->dtype;
    const int64_t cols = x->t.cols;
    if (cols % (int64_t)sk_dtype(sp)->block) {
        snprintf(q->note, sizeof q->note, "stays %s: %lld inputs are not a multiple of %d",
                 sk_dtype(dense)->name, (long long)cols, (int)sk_dtype(sp)->block);
        return SHRINK_OK;
    }
    if (sk_dtype_row_bytes(sp, cols) >= sk_dtype_row_bytes(dense, cols)) {
        snprintf(q->note, sizeof q->note, "stays %s: %s would not be smaller",
                 sk_dtype(dense)->name, sk_dtype(sp)->name);
        return SHRINK_OK;
    }
    int64_t most = 0;
    shrink_status st = max_row_keep(j, xf, x, &most);
    if (st) return st;
    if (most > cols / 2) {
        snprintf(q->note, sizeof q->note, "stays %s: a row keeps %lld of %lld inputs (%s holds "
                 "at most half)", sk_dtype(dense)->name, (long long)most, (long long)cols,
                 sk_dtype(sp)->name);
        return SHRINK_OK;
    }
    x->dtype = sp;
    return SHRINK_OK;
}

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
    if (q->prunable && j->p->store >= 0 && sk_dtype_sparse24((shrink_dtype)j->p->store) &&
        x->t.cols % (int64_t)sk_dtype((shrink_dtype)j->p->store)->block == 0)
        x->dtype = (shrink_dtype)j->p->store;
    if (q->prunable && j->p->store >= 0 && sk_dtype_sparse_bm((shrink_dtype)j->p->store))
        return plan_sparse_bm(j, xf, x, q);
    return SHRINK_OK;
}

/* --store sparse24_*: every row of the pruned values must be 2:4. sparse_*: a row keeping more
 * than half of its inputs (only SparseGPT's, whose rows are not known when the types are
 * planned) is trimmed to its half largest |w|, counted in the zeros and in the note */
static shrink_status check_store(const pjob *j, const sk_xf_tensor *x, float *w) {
    if (sk_dtype_sparse_bm(x->dtype)) {
        ptensor *q = x->user;
        int64_t rows = 0, extra = 0;
        for (int64_t r = 0; r < x->t.rows; r++) {
            int64_t z = sk_sparse_bm_trim(w + (size_t)r * (size_t)x->t.cols, x->t.cols);
            rows += z > 0;
            extra += z;
        }
        if (rows) {
            q->n_zero += extra;
            snprintf(q->note, sizeof q->note, "%lld rows trimmed to half their inputs (%lld more "
                     "zeros) to fit %s", (long long)rows, (long long)extra,
                     sk_dtype(x->dtype)->name);
        }
        return SHRINK_OK;
    }
    if (!sk_dtype_sparse24(x->dtype)) return SHRINK_OK;
    for (int64_t r = 0; r < x->t.rows; r++)
        if (!sk_sparse24_row_ok(w + (size_t)r * (size_t)x->t.cols, x->t.cols))
            return sk_error(SHRINK_ERR_ARG, "%s: '%s' is not 2:4 sparse after pruning (row %lld "
                            "has a group of 4 inputs with more than 2 non-zeros): --store %s "
                            "needs --pattern 2:4 (or 1:4)", j->in, x->name, (long long)r,
                            sk_dtype((shrink_dtype)j->p->store)->name);
    return SHRINK_OK;
}

static shrink_status calib_upto(pjob *j, int l);

/* threshold / magnitude: the whole tensor, pruned, before its first rows are written (wanda /
 * sparsegpt: the pass run up to the tensor's layer, which prunes it) */
static shrink_status p_begin(void *user, sk_xf *xf, sk_xf_tensor *x) {
    pjob *j = user;
    ptensor *q = x->user;
    if (j->cal && q->prunable && x->t.n_dims == 2) { /* wanda / sparsegpt: its layer's turn */
        shrink_status st = calib_upto(j, x->t.layer);
        if (st) return st;
    }
    if (q->prunable && q->w && j->p->store >= 0) return check_store(j, x, q->w);
    if (!q->prunable || q->w) return SHRINK_OK;
    float *w = NULL;
    shrink_status st = sk_xf_read_f32(xf, x, &w);
    if (st) return st;
    const int64_t rows = x->t.rows, cols = x->t.cols, n = rows * cols;
    if (j->method == PM_MAGNITUDE && j->n == 0 && !j->p->per_row) {
        /* magnitude over the whole matrix: the statistics without a copy (only zeroes, so
         * the error is the zeroed weights'; the sums are tensor_stats' in its order) */
        double r2 = 0.0, e2 = 0.0;
        for (int64_t i = 0; i < n; i++) r2 += (double)w[i] * (double)w[i];
        if ((st = sk_prune_matrix(w, rows, cols, j->sparsity, &e2))) {
            sk_free(w);
            return st;
        }
        int64_t z = 0;
        for (int64_t i = 0; i < n; i++) z += w[i] == 0.0f;
        q->n_zero = z;
        q->rel_err = r2 > 0 ? sqrt(e2 / r2) : 0.0;
        if (j->p->store >= 0 && (st = check_store(j, x, w))) {
            sk_free(w);
            return st;
        }
        q->w = w;
        return SHRINK_OK;
    }
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
    }
    if (!st) tensor_stats(q, w, w0, n);
    sk_free(w0);
    if (st) {
        sk_free(w);
        return st;
    }
    if (j->p->store >= 0 && (st = check_store(j, x, w))) {
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

static int calib_running(const pjob *j);

static void p_progress(void *user, int64_t done, int64_t total) {
    const pjob *j = user;
    const shrink_prune_params *p = j->p;
    if (calib_running(j)) return; /* the layers are the progress until the last is done */
    if (p->progress) p->progress(p->user, 1, done, total);
}

/* ---- calibration (wanda, sparsegpt): the shared layer-by-layer pass (model/layerwise.h) ---- */

shrink_status sk_prune_calib_tokens(const shrink_model *m, const char *path, int64_t want,
                                    int32_t **ids_out, int64_t *n_out) {
    return sk_calib_tokens(m, path, want, "--calib-tokens", ids_out, n_out);
}

/* Prunes tensor x (input statistics s of `cols` columns) into j->ps[..].w. */
static shrink_status prune_calibrated(pjob *j, sk_xf *xf, sk_xf_tensor *x, const double *s,
                                      const double *U, const uint8_t *dead) {
    ptensor *q = &j->ps[x - xf->ts];
    float *w = NULL;
    shrink_status st = sk_xf_read_f32(xf, x, &w);
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

typedef struct pcal {
    pjob         *j;
    sk_xf        *xf;
    double       *U;
    uint8_t      *dead;
    shrink_model *m;     /* the decoding model the pass runs and binds pruned layers into */
    int32_t      *ids;
    sk_lw_state  *lw;
} pcal;

/* Layer l's statistics are in: its matrices, input by input (factor, prune, bind). */
static shrink_status prune_layer(void *user, struct shrink_model *mm, int l,
                                 double *const stat[SK_IN_COUNT],
                                 const int64_t cols[SK_IN_COUNT]) {
    pcal *pc = user;
    pjob *j = pc->j;
    sk_xf *xf = pc->xf;
    shrink_status st = SHRINK_OK;
    for (int in_i = 0; in_i < SK_IN_COUNT && !st; in_i++) {
        int any = 0;
        for (int64_t i = 0; i < xf->n; i++)
            any |= xf->ts[i].t.layer == l && j->ps[i].prunable && j->ps[i].input == in_i &&
                   xf->ts[i].t.n_dims == 2;
        if (!any) continue;
        if (j->method == PM_SPARSEGPT) {
            st = sk_sparsegpt_factor(stat[in_i], cols[in_i], j->p->damp, pc->U, pc->dead);
            if (st) return sk_error(st, "layer %d: %s", l, shrink_last_error());
        }
        for (int64_t i = 0; i < xf->n && !st; i++) {
            sk_xf_tensor *x = &xf->ts[i];
            if (x->t.layer != l || !j->ps[i].prunable || j->ps[i].input != in_i ||
                x->t.n_dims != 2)
                continue;
            st = prune_calibrated(j, xf, x, stat[in_i], pc->U, pc->dead);
            if (!st)
                sk_bind_linear(mm, x->t.role, x->t.layer, SHRINK_DTYPE_F32, x->t.rows, x->t.cols,
                               j->ps[i].w);
        }
    }
    return st;
}

static void prune_layer_progress(void *user, int64_t done, int64_t total) {
    const pcal *pc = user;
    if (pc->j->p->progress) pc->j->p->progress(pc->j->p->user, 0, done, total);
}

/* Loads the model, encodes the calibration tokens and begins the layer-by-layer pass; the
 * layers run later, as the writer reaches them (calib_upto). pc is freed by calib_end. */
static shrink_status calib_begin(pjob *j, sk_xf *xf, const char *in, int64_t *n_used) {
    const shrink_prune_params *p = j->p;
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = p->tokenizer_path;
    lp.allow_nonfinite = true; /* xf checked the same file at open */
    pcal *pc = sk_calloc(1, sizeof *pc);
    if (!pc) return sk_error(SHRINK_ERR_NOMEM, "prune: out of memory");
    j->cal = pc;
    pc->j = j;
    pc->xf = xf;
    int64_t n = 0;
    shrink_status st = shrink_model_load(&pc->m, in, &lp);
    if (st) return st;
    const sk_config *cfg = &((struct shrink_model *)pc->m)->cfg;
    if ((st = sk_prune_calib_tokens(pc->m, p->calib_path, p->calib_tokens, &pc->ids, &n)))
        return st;
    if (j->method == PM_SPARSEGPT) {
        const int64_t maxc = cfg->ffn_dim > cfg->dim ? cfg->ffn_dim : cfg->dim;
        const int64_t qd = (int64_t)cfg->n_heads * cfg->head_dim;
        const int64_t mc = qd > maxc ? qd : maxc;
        pc->U = sk_malloc((size_t)(mc * mc) * sizeof *pc->U);
        pc->dead = sk_malloc((size_t)mc);
        if (!pc->U || !pc->dead)
            return sk_error(SHRINK_ERR_NOMEM, "prune: out of memory for a %lld x %lld "
                            "inverse Hessian", (long long)mc, (long long)mc);
    }
    sk_layerwise lw = {.model = pc->m, .ids = pc->ids, .n = n, .n_ctx = p->calib_ctx,
                       .diag = j->method == PM_WANDA, .layer = prune_layer,
                       .progress = prune_layer_progress, .user = pc};
    if ((st = sk_layerwise_begin(&lw, &pc->lw))) return st;
    *n_used = n;
    return SHRINK_OK;
}

/* Runs the pass up to layer l (its matrices pruned into j->ps[..].w). */
static shrink_status calib_upto(pjob *j, int l) {
    pcal *pc = j->cal;
    shrink_status st = SHRINK_OK;
    while (!st && sk_layerwise_next(pc->lw) <= l &&
           sk_layerwise_next(pc->lw) < sk_layerwise_count(pc->lw))
        st = sk_layerwise_step(pc->lw);
    return st;
}

static int calib_running(const pjob *j) {
    return j->cal && j->cal->lw && sk_layerwise_next(j->cal->lw) < sk_layerwise_count(j->cal->lw);
}

static void calib_end(pjob *j) {
    pcal *pc = j->cal;
    if (!pc) return;
    sk_layerwise_end(pc->lw);
    sk_free(pc->U);
    sk_free(pc->dead);
    shrink_free(pc->ids);
    shrink_model_free(pc->m);
    sk_free(pc);
    j->cal = NULL;
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
    if (p->store != -1 && (p->store < 0 || p->store >= SHRINK_DTYPE_COUNT ||
                           (!sk_dtype_sparse24((shrink_dtype)p->store) &&
                            !sk_dtype_sparse_bm((shrink_dtype)p->store))))
        return sk_error(SHRINK_ERR_ARG, "prune: storage %d is neither dense nor a sparse type "
                        "(sparse24_f16, sparse24_i8, sparse_f16, sparse_i8)", (int)p->store);
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
        q->input = sk_role_input(x->t.role);
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
        if ((st = calib_begin(&j, &xf, in, &r->calib_tokens))) goto out;
    }
    sk_xf_method method = {.plan = p_plan, .begin = p_begin, .rows = p_rows,
                           .end_block = p_end_block, .user = &j};
    sk_xf_opts o = {.dtype = p->dtype, .file_type = -1, .progress = p_progress,
                    .progress_user = &j};
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
        snprintf(o2->store_note, sizeof o2->store_note, "%s", q->note);
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
    calib_end(&j);
    if (j.ps)
        for (int64_t i = 0; i < xf.n; i++) sk_free(j.ps[i].w);
    sk_free(j.ps);
    sk_xf_close(&xf);
    return st;
}
