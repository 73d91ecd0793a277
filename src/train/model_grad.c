/*
 * model_grad.c - the training model: fp32 master parameters (one table row per canonical
 * tensor), the training forward pass (decoder.c's structure, every activation the backward
 * needs kept per layer) and the backward pass, strung together from the layers of layers.c.
 *
 * Like the decoder, the passes branch on the architecture row and the config (norm kind,
 * FFN kind, positional encoding, RoPE layout, biases present, tied head), never on the
 * architecture's name. Shapes as in train.h; Q = H*hd, K = KV*hd.
 */
#include "train.h"

#include <math.h>
#include <omp.h>

/* ==== the run state: activations saved by the forward pass, gradients of the backward ===== */

struct sk_train_state {
    int B, T;              /* capacity */
    int recompute;         /* sized for sk_train_model.recompute: one layer's activations */
    int32_t *inp, *tgt;    /* (N) input ids, target ids */
    float *rope_cos;       /* (T, hd/2) */
    float *rope_sin;
    /* saved by the forward pass, per layer l (offset l * size; with recompute, res per layer
     * and the others for one layer: slot 0, refilled by the backward layer by layer) */
    float *res;            /* (L+1, N, D) residual stream entering layer l; res[L] the last */
    float *mid;            /* (L, N, D) residual after the attention block */
    float *xn1, *mean1, *rstd1; /* (L, N, D), (L, N), (L, N) attention norm out, statistics */
    float *q, *k, *v;      /* (L, N, Q), (L, N, K), (L, N, K) after RoPE */
    float *att;            /* (L, B, H, T, T) attention probabilities */
    float *ao;             /* (L, N, Q) attention output (input of wo) */
    float *xn2, *mean2, *rstd2; /* FFN norm */
    float *fa, *fb, *fh;   /* (L, N, F): SwiGLU gate, up, silu(gate)*up; GELU pre, -, gelu */
    float *xnf, *meanf, *rstdf; /* final norm */
    /* gradients of activations (one layer at a time) */
    float *dres, *dxn, *dq, *dk, *dv, *dao, *dfh, *dfa, *dfb;
    float *work;           /* matmul / classifier / attention work space */
    size_t work_floats;
    float *gmask;          /* (n_elems) scratch gradients of masked tensors, or NULL */
    float *lr_mid, *lr_dmid; /* (N, largest rank) a low-rank linear's X A^T and its gradient
                                (recomputed in the backward), NULL without factored ones */
    sk_scratch mm;         /* the matrix products' work memory (sk_layers_scratch_bytes) */
    int    mm_threads;     /* the thread count and kernel set mm is sized for */
    const sk_kernel_set *mm_set;
};

static void state_free(struct sk_train_state *s) {
    if (!s) return;
    float *bufs[] = {s->rope_cos, s->rope_sin, s->res, s->mid, s->xn1, s->mean1, s->rstd1,
                     s->q, s->k, s->v, s->att, s->ao, s->xn2, s->mean2, s->rstd2, s->fa,
                     s->fb, s->fh, s->xnf, s->meanf, s->rstdf, s->dres, s->dxn, s->dq, s->dk,
                     s->dv, s->dao, s->dfh, s->dfa, s->dfb, s->work, s->gmask, s->lr_mid,
                     s->lr_dmid};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) sk_free(bufs[i]);
    sk_free(s->inp);
    sk_free(s->tgt);
    sk_scratch_free(&s->mm);
    sk_free(s);
}

/* Rows of logits held at once by the classifier: about 4M floats. */
int sk_classifier_chunk(int N, int V) {
    int c = (int)((4u << 20) / (unsigned)V);
    if (c < 16) c = 16;
    if (c > 256) c = 256;
    return c < N ? c : N;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

static float *falloc(size_t n) { return sk_aligned_alloc(64, (n ? n : 1) * sizeof(float)); }

/* The distinct dtypes of the matrices held stored (a frozen base), at most cap. */
static int stored_dtypes(const sk_train_model *tm, shrink_dtype *dts, int cap) {
    int n = 0;
    for (int64_t i = 0; i < tm->n_params; i++) {
        const sk_train_param *p = &tm->params[i];
        if (!p->stored.data) continue;
        int seen = 0;
        for (int k = 0; k < n; k++) seen |= dts[k] == p->stored.dtype;
        if (!seen && n < cap) dts[n++] = p->stored.dtype;
    }
    return n;
}

/* Sizes the products' scratch for B*T rows at the current kernels and thread count: at
 * reserve, then again only when the threads or the kernel set changed. */
static shrink_status reserve_scratch(const sk_train_model *tm, struct sk_train_state *s) {
    const sk_config *c = &tm->cfg;
    const sk_kernel_set *ks = sk_kernels();
    const int nth = omp_get_max_threads();
    if (s->mm_set == ks && s->mm_threads == nth) return SHRINK_OK;
    const int N = s->B * s->T;
    shrink_dtype dts[SHRINK_DTYPE_COUNT];
    const int nd = stored_dtypes(tm, dts, SHRINK_DTYPE_COUNT);
    shrink_status st = sk_scratch_reserve(
        &s->mm, sk_layers_scratch_bytes(c, N, sk_classifier_chunk(N, c->vocab_size), dts, nd));
    if (st) return st;
    s->mm_set = ks;
    s->mm_threads = nth;
    return SHRINK_OK;
}

static shrink_status state_alloc(const sk_train_model *tm, int B, int T,
                                 struct sk_train_state **out) {
    const sk_config *c = &tm->cfg;
    const size_t Lr = (size_t)c->n_layers, D = (size_t)c->dim, F = (size_t)c->ffn_dim;
    const size_t L = tm->recompute ? 1 : Lr; /* layers of saved activations but res */
    const size_t Q = (size_t)c->n_heads * c->head_dim, K = (size_t)c->n_kv_heads * c->head_dim;
    const size_t N = (size_t)B * T, H = (size_t)c->n_heads, V = (size_t)c->vocab_size;
    const size_t half = (size_t)c->head_dim / 2;
    struct sk_train_state *s = sk_calloc(1, sizeof *s);
    if (!s) return sk_error(SHRINK_ERR_NOMEM, "training: out of memory");
    s->B = B;
    s->T = T;
    s->recompute = tm->recompute != 0;
    s->inp = sk_malloc(N * sizeof(int32_t));
    s->tgt = sk_malloc(N * sizeof(int32_t));
    s->rope_cos = falloc((size_t)T * half);
    s->rope_sin = falloc((size_t)T * half);
    s->res = falloc((Lr + 1) * N * D);
    s->mid = falloc(L * N * D);
    s->xn1 = falloc(L * N * D);
    s->mean1 = falloc(L * N);
    s->rstd1 = falloc(L * N);
    s->q = falloc(L * N * Q);
    s->k = falloc(L * N * K);
    s->v = falloc(L * N * K);
    s->att = falloc(L * (size_t)B * H * T * T);
    s->ao = falloc(L * N * Q);
    s->xn2 = falloc(L * N * D);
    s->mean2 = falloc(L * N);
    s->rstd2 = falloc(L * N);
    s->fa = falloc(L * N * F);
    s->fb = falloc(L * N * F);
    s->fh = falloc(L * N * F);
    s->xnf = falloc(N * D);
    s->meanf = falloc(N);
    s->rstdf = falloc(N);
    s->dres = falloc(N * D);
    s->dxn = falloc(N * D);
    s->dq = falloc(N * Q);
    s->dk = falloc(N * K);
    s->dv = falloc(N * K);
    s->dao = falloc(N * Q);
    s->dfh = falloc(N * F);
    s->dfa = falloc(N * F);
    s->dfb = falloc(N * F);
    size_t w = sk_classifier_work_floats((int)D, (int)V, sk_classifier_chunk((int)N, (int)V));
    w = max_sz(w, (size_t)omp_get_max_threads() * T);
    s->work_floats = w;
    s->work = falloc(w);
    size_t kmax = 0; /* low-rank factors: the (N, rank) intermediate of the two products */
    for (int64_t i = 0; i < tm->n_params; i++)
        if (tm->params[i].t.factor == 1) kmax = max_sz(kmax, (size_t)tm->params[i].t.rows);
    if (kmax && (!(s->lr_mid = falloc(N * kmax)) || !(s->lr_dmid = falloc(N * kmax)))) {
        state_free(s);
        return sk_error(SHRINK_ERR_NOMEM, "training: out of memory for the activations of "
                        "B=%d, T=%d", B, T);
    }
    if (!s->inp || !s->tgt || !s->rope_cos || !s->rope_sin || !s->res || !s->mid || !s->xn1 ||
        !s->mean1 || !s->rstd1 || !s->q || !s->k || !s->v || !s->att || !s->ao || !s->xn2 ||
        !s->mean2 || !s->rstd2 || !s->fa || !s->fb || !s->fh || !s->xnf || !s->meanf ||
        !s->rstdf || !s->dres || !s->dxn || !s->dq || !s->dk || !s->dv || !s->dao || !s->dfh ||
        !s->dfa || !s->dfb || !s->work || reserve_scratch(tm, s) != SHRINK_OK) {
        state_free(s);
        return sk_error(SHRINK_ERR_NOMEM, "training: out of memory for the "
                        "activations of B=%d, T=%d", B, T);
    }
    /* RoPE angles p * theta^(-2i/hd) in double, as decoder.c */
    if (c->arch->pos == SK_POS_ROPE)
        for (size_t p = 0; p < (size_t)T; p++)
            for (size_t i = 0; i < half; i++) {
                double freq = pow((double)c->rope_theta, -(double)(2 * i) / c->head_dim);
                s->rope_cos[p * half + i] = (float)cos((double)p * freq);
                s->rope_sin[p * half + i] = (float)sin((double)p * freq);
            }
    *out = s;
    return SHRINK_OK;
}

shrink_status sk_train_reserve(sk_train_model *tm, int B, int T) {
    if (!tm || B < 1 || T < 1)
        return sk_error(SHRINK_ERR_ARG, "training: batch %d x %d tokens is empty", B, T);
    if (T > tm->cfg.max_seq_len)
        return sk_error(SHRINK_ERR_RANGE, "training: a sequence of %d tokens exceeds the context "
                        "length %d", T, tm->cfg.max_seq_len);
    if (tm->st && B <= tm->st->B && T <= tm->st->T && tm->st->recompute == (tm->recompute != 0))
        return SHRINK_OK;
    if (tm->st) {
        if (B < tm->st->B) B = tm->st->B;
        if (T < tm->st->T) T = tm->st->T;
    }
    struct sk_train_state *s = NULL;
    shrink_status st = state_alloc(tm, B, T, &s);
    if (st) return st;
    state_free(tm->st);
    tm->st = s;
    return SHRINK_OK;
}

/* ==== parameters ============================================================================ */

/* A parameter table for src's config, no weights yet: one row per canonical tensor (t, n,
 * conv1d, dtype); the caller lays out the offsets (held stored: -1) and calls blocks_alloc. */
static shrink_status table_new(sk_train_model **out, const sk_source *src) {
    *out = NULL;
    shrink_status st = sk_config_validate(&src->cfg, "training");
    if (st) return st;
    sk_train_model *tm = sk_calloc(1, sizeof *tm);
    if (!tm) return sk_error(SHRINK_ERR_NOMEM, "training: out of memory");
    tm->cfg = src->cfg;
    tm->dtype = src->dtype;
    tm->grad_scale = 1.0f;
    sk_wtensor *ts = NULL;
    int64_t n = 0;
    /* a matrix the source stores as low-rank factors: two parameters, A then B */
    if ((st = sk_source_tensors(src, &ts, &n))) goto fail;
    if (!(tm->params = sk_calloc((size_t)n, sizeof *tm->params))) {
        st = sk_error(SHRINK_ERR_NOMEM, "training: out of memory");
        goto fail;
    }
    tm->n_params = n;
    for (int64_t i = 0; i < n; i++) {
        sk_train_param *p = &tm->params[i];
        p->t = ts[i];
        p->n = ts[i].rows * ts[i].cols;
        p->conv1d = ts[i].n_dims == 2 && sk_trole_conv1d(sk_trole_at(ts[i].role), tm->cfg.arch);
        p->dtype = src->dtype_of ? src->dtype_of(src->user, &ts[i]) : src->dtype;
    }
    sk_free(ts);
    *out = tm;
    return SHRINK_OK;
fail:
    sk_free(ts);
    sk_train_free(tm);
    return st;
}

/* The next offset in the blocks for p (every tensor 64-byte aligned). */
static void place(sk_train_model *tm, sk_train_param *p) {
    p->offset = tm->n_elems;
    tm->n_elems += (p->n + 15) & ~(int64_t)15;
}

/* w_all and g_all of n_elems floats, zeroed; w and g of every parameter not held stored. */
static shrink_status blocks_alloc(sk_train_model *tm) {
    const int64_t off = tm->n_elems;
    tm->w_all = falloc((size_t)off);
    tm->g_all = falloc((size_t)off);
    if (!tm->w_all || !tm->g_all)
        return sk_error(SHRINK_ERR_NOMEM, "training: out of memory for %" PRId64
                        " parameters", off);
    memset(tm->w_all, 0, (size_t)off * sizeof(float));
    memset(tm->g_all, 0, (size_t)off * sizeof(float));
    for (int64_t i = 0; i < tm->n_params; i++) {
        sk_train_param *p = &tm->params[i];
        if (p->stored.data) continue;
        p->w = tm->w_all + p->offset;
        p->g = tm->g_all + p->offset;
    }
    return SHRINK_OK;
}

static shrink_status create(sk_train_model **out, const sk_source *src) {
    *out = NULL;
    if (!src || !src->fill || !src->cfg.arch)
        return sk_error(SHRINK_ERR_ARG, "training: incomplete model");
    sk_train_model *tm;
    shrink_status st = table_new(&tm, src);
    if (st) return st;
    for (int64_t i = 0; i < tm->n_params; i++) place(tm, &tm->params[i]);
    if ((st = blocks_alloc(tm))) goto fail;
    for (int64_t i = 0; i < tm->n_params; i++) {
        sk_train_param *p = &tm->params[i];
        if ((st = src->fill(src->user, &p->t, 0, p->t.rows, 0, SHRINK_DTYPE_F32, p->w)))
            goto fail;
    }
    *out = tm;
    return SHRINK_OK;
fail:
    sk_train_free(tm);
    return st;
}

shrink_status sk_train_create(sk_train_model **out, const sk_source *src) {
    if (!out) return sk_error(SHRINK_ERR_ARG, "training: no result given");
    return create(out, src);
}

shrink_status sk_train_create_from_model(sk_train_model **out, const struct shrink_model *m) {
    if (!out) return sk_error(SHRINK_ERR_ARG, "training: no result given");
    *out = NULL;
    sk_source src;
    shrink_status st = sk_source_from_model(m, &src);
    if (st) return st;
    return create(out, &src);
}

/* The bound weight of canonical tensor t in loaded model m: a matrix (*mat set, returns its
 * data) or an f32 vector (returned); NULL if the model has none bound. A fused q|k|v is the
 * whole (Q + 2K) rows from wq's first. */
static const void *model_weight(const struct shrink_model *m, const sk_wtensor *t,
                                const sk_mat **mat) {
    const sk_trole *r = sk_trole_at(t->role);
    const uint8_t *base = t->layer >= 0 ? (const uint8_t *)&m->layers[t->layer]
                                        : (const uint8_t *)&m->tok_emb;
    *mat = NULL;
    switch (r->bind) {
    case SK_TB_MAT:
        *mat = (const sk_mat *)(base + r->off);
        return (*mat)->data;
    case SK_TB_VEC:
        return *(const float *const *)(base + r->off);
    case SK_TB_QKV:
        *mat = &m->layers[t->layer].wq;
        return (*mat)->data;
    case SK_TB_QKV_BIAS:
        return m->layers[t->layer].bq;
    default:
        return NULL;
    }
}

shrink_status sk_train_create_frozen(sk_train_model **out, const struct shrink_model *m) {
    if (!out) return sk_error(SHRINK_ERR_ARG, "training: no result given");
    *out = NULL;
    if (!m || !m->layers) return sk_error(SHRINK_ERR_ARG, "training: the base model's weights "
                                          "are not loaded");
    sk_source src;
    sk_train_model *tm;
    shrink_status st = sk_source_from_model(m, &src);
    if (st || (st = table_new(&tm, &src))) return st;
    for (int64_t i = 0; i < tm->n_params; i++) {
        sk_train_param *p = &tm->params[i];
        p->frozen = 1;
        const sk_mat *mat;
        const void *d = model_weight(m, &p->t, &mat);
        if (!d) {
            st = sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s' is not loaded", m->path,
                          p->t.name);
            goto fail;
        }
        if (mat && sk_mat_lowrank(mat)) {
            st = sk_error(SHRINK_ERR_UNSUPPORTED, "%s: '%s' is stored as low-rank factors: a "
                          "frozen base (LoRA, QLoRA) of factored matrices is not supported; "
                          "train the factors themselves (shrink train)", m->path, p->t.name);
            goto fail;
        }
        if (mat && p->t.role != SK_ROLE_POS_EMB) { /* held as stored: a view, no floats */
            p->stored = (sk_mat){.dtype = mat->dtype, .rows = p->t.rows, .cols = p->t.cols,
                                 .data = d};
            p->offset = -1;
        } else {
            place(tm, p);
        }
    }
    if ((st = blocks_alloc(tm))) goto fail;
    for (int64_t i = 0; i < tm->n_params; i++) {
        sk_train_param *p = &tm->params[i];
        if (p->stored.data) continue;
        const sk_mat *mat;
        const void *d = model_weight(m, &p->t, &mat);
        if (mat) /* a learned position embedding: widened (small) */
            for (int64_t r = 0; r < p->t.rows; r++) sk_mat_row_f32(mat, r, p->w + r * p->t.cols);
        else
            memcpy(p->w, d, (size_t)p->n * sizeof(float));
    }
    *out = tm;
    return SHRINK_OK;
fail:
    sk_train_free(tm);
    return st;
}

void sk_train_free(sk_train_model *tm) {
    if (!tm) return;
    state_free(tm->st);
    sk_free(tm->params);
    sk_free(tm->w_all);
    sk_free(tm->g_all);
    sk_free(tm->wq_all);
    sk_free(tm);
}

sk_train_param *sk_train_find(sk_train_model *tm, const char *name) {
    if (!tm || !name) return NULL;
    size_t np = strlen(tm->cfg.arch->hf_prefix); /* GPT-2's "transformer." */
    if (np && strncmp(name, tm->cfg.arch->hf_prefix, np) == 0) name += np;
    for (int64_t i = 0; i < tm->n_params; i++)
        if (strcmp(tm->params[i].t.name, name) == 0) return &tm->params[i];
    return NULL;
}

void sk_train_zero_grad(sk_train_model *tm) {
    if (tm) memset(tm->g_all, 0, (size_t)tm->n_elems * sizeof(float));
}

/* ---- saving: a tensor source over the master weights ------------------------------------ */

const sk_train_param *sk_train_param_of(const sk_train_model *tm, const sk_wtensor *t) {
    const sk_train_param *p = NULL;
    for (int64_t i = 0; i < tm->n_params && !p; i++)
        if (tm->params[i].t.role == t->role && tm->params[i].t.layer == t->layer &&
            tm->params[i].t.factor == t->factor)
            p = &tm->params[i];
    if (!p && t->role == SK_ROLE_HEAD && tm->cfg.tied)
        for (int64_t i = 0; i < tm->n_params && !p; i++)
            if (tm->params[i].t.role == SK_ROLE_TOK_EMB) p = &tm->params[i];
    return p;
}

static shrink_status train_fill(void *user, const sk_wtensor *t, int64_t row0, int64_t n_rows,
                                int transposed, shrink_dtype dt, void *dst) {
    const sk_train_model *tm = user;
    const sk_train_param *p = sk_train_param_of(tm, t);
    if (!p) return sk_error(SHRINK_ERR_FORMAT, "the model has no tensor '%s'", t->name);
    if (p->wq && dt == (shrink_dtype)p->qat_dtype && !transposed) /* QAT: the real quantized */
        return sk_qat_quantize_rows(tm, p, row0, n_rows, dst);
    if (p->stored.data) { /* a frozen matrix held in its stored dtype */
        if (transposed && t->n_dims == 2)
            return sk_error(SHRINK_ERR_UNSUPPORTED, "tensor '%s': a frozen %s matrix is not "
                            "written transposed", t->name, sk_dtype(p->stored.dtype)->name);
        const uint8_t *src = (const uint8_t *)p->stored.data +
                             sk_dtype_tensor_bytes(p->stored.dtype, row0, p->t.cols);
        return sk_convert_rows(src, p->stored.dtype, dst, dt, n_rows, p->t.cols);
    }
    if (!transposed || t->n_dims == 1) {
        /* whole rows: row-head dtypes (int8_ch, ...) quantize each row with its own scale */
        return sk_convert_rows(p->w + row0 * p->t.cols, SHRINK_DTYPE_F32, dst, dt, n_rows,
                               p->t.cols);
    }
    /* rows of the transpose: dst[j][k] = w[k][row0 + j] */
    const size_t es = sk_dtype(dt)->bytes;
    float *row = sk_malloc((size_t)p->t.rows * sizeof(float));
    if (!row) return sk_error(SHRINK_ERR_NOMEM, "out of memory reading the model's weights");
    for (int64_t j = 0; j < n_rows; j++) {
        for (int64_t k = 0; k < p->t.rows; k++) row[k] = p->w[k * p->t.cols + row0 + j];
        sk_convert(row, SHRINK_DTYPE_F32, (uint8_t *)dst + (size_t)j * p->t.rows * es, dt,
                   p->t.rows);
    }
    sk_free(row);
    return SHRINK_OK;
}

static shrink_dtype train_dtype_of(void *user, const sk_wtensor *t) {
    const sk_train_model *tm = user;
    for (int64_t i = 0; i < tm->n_params; i++)
        if (tm->params[i].t.role == t->role && tm->params[i].t.layer == t->layer &&
            tm->params[i].t.factor == t->factor)
            return tm->params[i].wq ? (shrink_dtype)tm->params[i].qat_dtype
                                    : tm->params[i].dtype;
    return tm->dtype;
}

/* A matrix trained as low-rank factors is saved as its factors: their rank. */
static int64_t train_rank_of(void *user, const sk_wtensor *t) {
    const sk_train_model *tm = user;
    for (int64_t i = 0; i < tm->n_params; i++)
        if (tm->params[i].t.factor == 1 && tm->params[i].t.role == t->role &&
            tm->params[i].t.layer == t->layer)
            return tm->params[i].t.rows;
    return 0;
}

void sk_train_source(const sk_train_model *tm, sk_source *src) {
    memset(src, 0, sizeof *src);
    src->rank_of = train_rank_of;
    src->rank_user = (void *)(uintptr_t)tm;
    src->cfg = tm->cfg;
    src->dtype = tm->dtype;
    src->dtype_of = train_dtype_of;
    src->fill = train_fill;
    src->user = (void *)(uintptr_t)tm;
}

/* ==== binding parameters to the layers ====================================================== */

/* A parameter as a layer sees it: weights (f32 w, or q: a frozen matrix's rows in its stored
 * dtype dt), and where its gradient goes (NULL: frozen). */
typedef struct slot {
    const float *w;
    float       *g;
    const void  *q;
    shrink_dtype dt;
} slot;

/* Slot s as a (rows, cols) matrix for the products. */
static sk_mat mat_of(slot s, int64_t rows, int64_t cols) {
    sk_mat m = {.dtype = s.q ? s.dt : SHRINK_DTYPE_F32, .rows = rows, .cols = cols,
                .data = s.q ? s.q : (const void *)s.w};
    return m;
}

/* A linear layer trained as two low-rank factors (W = B A, docs/lowrank.md): k 0 if dense. */
enum { LR_Q, LR_K, LR_V, LR_O, LR_GATE, LR_UP, LR_DOWN, LR_N };
typedef struct lr_slots {
    slot    a, b;  /* A (k, in), B (out, k) */
    int64_t k;
} lr_slots;

static int lr_index(sk_role r) {
    switch (r) {
    case SK_ROLE_WQ: return LR_Q;
    case SK_ROLE_WK: return LR_K;
    case SK_ROLE_WV: return LR_V;
    case SK_ROLE_WO: return LR_O;
    case SK_ROLE_W_GATE: return LR_GATE;
    case SK_ROLE_W_UP: return LR_UP;
    case SK_ROLE_W_DOWN: return LR_DOWN;
    default: return -1;
    }
}

typedef struct layer_slots {
    slot attn_norm, attn_norm_b, wq, wk, wv, bq, bk, bv, wo, bo;
    slot ffn_norm, ffn_norm_b, w_gate, w_up, b_up, w_down, b_down;
    lr_slots lr[LR_N];
} layer_slots;

typedef struct model_slots {
    slot tok_emb, pos_emb, final_norm, final_norm_b, head;
    layer_slots *layers;
} model_slots;

/* Where parameter p's gradient is accumulated: g, the mask scratch, or nowhere (frozen). */
static float *grad_target(const sk_train_model *tm, const sk_train_param *p) {
    if (p->frozen) return NULL;
    if (p->mask_f32 || p->mask_u8 || p->qat_sp) return tm->st->gmask + p->offset;
    return p->g;
}

static slot slot_at(const sk_train_param *p, float *g, int64_t row0, int64_t cols) {
    if (p->stored.data) {
        slot s = {.q = (const uint8_t *)p->stored.data +
                       sk_dtype_tensor_bytes(p->stored.dtype, row0, p->t.cols),
                  .dt = p->stored.dtype};
        return s;
    }
    slot s = {.w = (p->wq ? p->wq : p->w) + row0 * cols, .g = g ? g + row0 * cols : NULL};
    return s;
}

/* Fills the slots from the parameter table by role and layer (fused GPT-2 q|k|v split into
 * row ranges). */
static void bind_slots(const sk_train_model *tm, model_slots *ms) {
    const sk_config *c = &tm->cfg;
    const int64_t Q = (int64_t)c->n_heads * c->head_dim, K = (int64_t)c->n_kv_heads * c->head_dim;
    for (int64_t i = 0; i < tm->n_params; i++) {
        const sk_train_param *p = &tm->params[i];
        float *g = grad_target(tm, p);
        slot s = slot_at(p, g, 0, 0);
        layer_slots *l = p->t.layer >= 0 ? &ms->layers[p->t.layer] : NULL;
        const int64_t cols = p->t.cols;
        if (p->t.factor && l && lr_index(p->t.role) >= 0) { /* a low-rank factor */
            lr_slots *f = &l->lr[lr_index(p->t.role)];
            if (p->t.factor == 1) {
                f->a = s;
                f->k = p->t.rows;
            } else {
                f->b = s;
            }
            continue;
        }
        switch (p->t.role) {
        case SK_ROLE_TOK_EMB:      ms->tok_emb = s; break;
        case SK_ROLE_POS_EMB:      ms->pos_emb = s; break;
        case SK_ROLE_FINAL_NORM:   ms->final_norm = s; break;
        case SK_ROLE_FINAL_NORM_B: ms->final_norm_b = s; break;
        case SK_ROLE_HEAD:         ms->head = s; break;
        case SK_ROLE_ATTN_NORM:    l->attn_norm = s; break;
        case SK_ROLE_ATTN_NORM_B:  l->attn_norm_b = s; break;
        case SK_ROLE_WQ:           l->wq = s; break;
        case SK_ROLE_WK:           l->wk = s; break;
        case SK_ROLE_WV:           l->wv = s; break;
        case SK_ROLE_BQ:           l->bq = s; break;
        case SK_ROLE_BK:           l->bk = s; break;
        case SK_ROLE_BV:           l->bv = s; break;
        case SK_ROLE_WQKV:
            l->wq = slot_at(p, g, 0, cols);
            l->wk = slot_at(p, g, Q, cols);
            l->wv = slot_at(p, g, Q + K, cols);
            break;
        case SK_ROLE_BQKV:
            l->bq = slot_at(p, g, 0, 1);
            l->bk = slot_at(p, g, Q, 1);
            l->bv = slot_at(p, g, Q + K, 1);
            break;
        case SK_ROLE_WO:           l->wo = s; break;
        case SK_ROLE_BO:           l->bo = s; break;
        case SK_ROLE_FFN_NORM:     l->ffn_norm = s; break;
        case SK_ROLE_FFN_NORM_B:   l->ffn_norm_b = s; break;
        case SK_ROLE_W_GATE:       l->w_gate = s; break;
        case SK_ROLE_W_UP:         l->w_up = s; break;
        case SK_ROLE_B_UP:         l->b_up = s; break;
        case SK_ROLE_W_DOWN:       l->w_down = s; break;
        case SK_ROLE_B_DOWN:       l->b_down = s; break;
        default: break;
        }
    }
    if (c->tied) ms->head = ms->tok_emb;
}

/* ==== norms by the architecture's kind ====================================================== */

static void norm_forward(const sk_config *c, float *out, float *mean, float *rstd,
                         const float *inp, slot w, slot b, int N) {
    if (c->arch->norm == SK_NORM_RMS)
        sk_rmsnorm_forward(out, rstd, inp, w.w, N, c->dim, c->norm_eps);
    else
        sk_layernorm_forward(out, mean, rstd, inp, w.w, b.w, N, c->dim, c->norm_eps);
}

static void norm_backward(const sk_config *c, float *dinp, const float *dout,
                          const float *inp, slot w, slot b, const float *mean,
                          const float *rstd, int N) {
    if (c->arch->norm == SK_NORM_RMS)
        sk_rmsnorm_backward(dinp, w.g, dout, inp, w.w, rstd, N, c->dim);
    else
        sk_layernorm_backward(dinp, w.g, b.w ? b.g : NULL, dout, inp, w.w, mean, rstd, N, c->dim);
}

/* ==== forward and backward ================================================================== */

static shrink_status check_tokens(const sk_train_model *tm, const int32_t *tokens, int B, int T,
                                  const char *fn) {
    if (!tm || !tokens || B < 1 || T < 1)
        return sk_error(SHRINK_ERR_ARG, "%s: batch %d x %d tokens is empty", fn, B, T);
    if (T > tm->cfg.max_seq_len)
        return sk_error(SHRINK_ERR_RANGE, "%s: a sequence of %d tokens exceeds the context "
                        "length %d", fn, T, tm->cfg.max_seq_len);
    const int64_t n = (int64_t)B * (T + 1);
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= tm->cfg.vocab_size)
            return sk_error(SHRINK_ERR_RANGE, "%s: token id %d at %" PRId64 " not in [0, %d)",
                            fn, tokens[i], i, tm->cfg.vocab_size);
    return SHRINK_OK;
}

/* The forward pass over st->inp, keeping every activation; leaves the final-normed hidden
 * states in st->xnf. */
/* The linear hook (train.h) after a product, if any. */
static shrink_status hook_fwd(const sk_train_model *tm, int l, sk_linear w, const float *X, int N,
                              float *Y) {
    return tm->hook ? tm->hook->forward(tm->hook, l, w, X, N, Y) : SHRINK_OK;
}

static shrink_status hook_bwd(const sk_train_model *tm, int l, sk_linear w, const float *X,
                              const float *dY, int N, float *dX) {
    return tm->hook ? tm->hook->backward(tm->hook, l, w, X, dY, N, dX) : SHRINK_OK;
}

/* A layer's projection matrices as the products take them. */
typedef struct layer_mats {
    sk_mat wq, wk, wv, wo, w_gate, w_up, w_down;
} layer_mats;

static layer_mats mats_of(const sk_config *c, const layer_slots *w) {
    const int64_t D = c->dim, F = c->ffn_dim, Q = (int64_t)c->n_heads * c->head_dim;
    const int64_t K = (int64_t)c->n_kv_heads * c->head_dim;
    layer_mats m = {.wq = mat_of(w->wq, Q, D), .wk = mat_of(w->wk, K, D),
                    .wv = mat_of(w->wv, K, D), .wo = mat_of(w->wo, D, Q),
                    .w_gate = mat_of(w->w_gate, F, D), .w_up = mat_of(w->w_up, F, D),
                    .w_down = mat_of(w->w_down, D, F)};
    return m;
}

/* Y (N, out) = X W^T (+ bias), or for a low-rank linear (f->k) X A^T B^T through the
 * (N, k) intermediate lr_mid. */
static shrink_status lin_fwd(struct sk_train_state *s, const lr_slots *f, float *Y,
                             const float *X, const sk_mat *W, const float *bias, int N, int in,
                             int out) {
    if (!f->k) return sk_matmul_forward(Y, X, W, bias, N, in, out, &s->mm);
    const int k = (int)f->k;
    const sk_mat A = mat_of(f->a, k, in), Bm = mat_of(f->b, out, k);
    shrink_status st = sk_matmul_forward(s->lr_mid, X, &A, NULL, N, in, k, &s->mm);
    return st ? st : sk_matmul_forward(Y, s->lr_mid, &Bm, bias, N, k, out, &s->mm);
}

/* The backward of lin_fwd: dX += dY W (or dY B A), the weight gradients (dW, or A's and B's
 * into their slots' g) and dbias added. A low-rank linear recomputes mid = X A^T (cheap:
 * rank k), then dB += dY^T mid, dmid = dY B, dA += dmid^T X, dX += dmid A. */
static shrink_status lin_bwd(struct sk_train_state *s, const lr_slots *f, float *dX, float *dW,
                             float *dbias, const float *dY, const float *X, const sk_mat *W,
                             int N, int in, int out) {
    if (!f->k) return sk_matmul_backward(dX, dW, dbias, dY, X, W, N, in, out, &s->mm);
    const int k = (int)f->k;
    const sk_mat A = mat_of(f->a, k, in), Bm = mat_of(f->b, out, k);
    shrink_status st = sk_matmul_forward(s->lr_mid, X, &A, NULL, N, in, k, &s->mm);
    if (st) return st;
    memset(s->lr_dmid, 0, (size_t)N * (size_t)k * sizeof(float));
    st = sk_matmul_backward(s->lr_dmid, f->b.g, dbias, dY, s->lr_mid, &Bm, N, k, out, &s->mm);
    return st ? st : sk_matmul_backward(dX, f->a.g, NULL, s->lr_dmid, X, &A, N, in, k, &s->mm);
}

/* Layer l's forward pass from res[l]: its activations into their slot (train_state), and
 * with `down` the down projection and residual into res[l + 1]; without, it stops at fh (the
 * backward's recomputation of a layer whose activations were not kept). */
static shrink_status layer_forward(const sk_train_model *tm, const model_slots *ms, int l,
                                   int B, int T, int down) {
    const sk_config *c = &tm->cfg;
    struct sk_train_state *s = tm->st;
    const int N = B * T, D = c->dim, H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim;
    const int F = c->ffn_dim, Q = H * hd, K = KV * hd;
    const size_t ND = (size_t)N * D;
    shrink_status st;
    {
        const layer_slots *w = &ms->layers[l];
        const layer_mats mw = mats_of(c, w);
        const size_t j = s->recompute ? 0 : (size_t)l; /* the slot of its activations */
        float *x = s->res + (size_t)l * ND, *mid = s->mid + j * ND;
        float *xn1 = s->xn1 + j * ND, *xn2 = s->xn2 + j * ND;
        float *q = s->q + j * N * Q, *k = s->k + j * N * K;
        float *v = s->v + j * N * K, *ao = s->ao + j * N * Q;
        float *att = s->att + j * B * H * T * T;
        float *fa = s->fa + j * N * F, *fb = s->fb + j * N * F;
        float *fh = s->fh + j * N * F;

        /* attention: xn = norm(x); q, k, v projections; RoPE on q and k */
        norm_forward(c, xn1, s->mean1 + j * N, s->rstd1 + j * N, x,
                     w->attn_norm, w->attn_norm_b, N);
        if ((st = lin_fwd(s, &w->lr[LR_Q], q, xn1, &mw.wq, w->bq.w, N, D, Q))) return st;
        if ((st = lin_fwd(s, &w->lr[LR_K], k, xn1, &mw.wk, w->bk.w, N, D, K))) return st;
        if ((st = lin_fwd(s, &w->lr[LR_V], v, xn1, &mw.wv, w->bv.w, N, D, K))) return st;
        if ((st = hook_fwd(tm, l, SK_LIN_Q, xn1, N, q)) ||
            (st = hook_fwd(tm, l, SK_LIN_K, xn1, N, k)) ||
            (st = hook_fwd(tm, l, SK_LIN_V, xn1, N, v)))
            return st;
        if (c->arch->pos == SK_POS_ROPE) {
            sk_rope_forward(q, s->rope_cos, s->rope_sin, N, T, H, hd, c->rope_layout);
            sk_rope_forward(k, s->rope_cos, s->rope_sin, N, T, KV, hd, c->rope_layout);
        }
        sk_attention_forward(ao, att, q, k, v, B, T, H, KV, hd);

        /* output projection and residual: mid = x + ao wo^T (+ bo) */
        if ((st = lin_fwd(s, &w->lr[LR_O], mid, ao, &mw.wo, w->bo.w, N, Q, D))) return st;
        if ((st = hook_fwd(tm, l, SK_LIN_O, ao, N, mid))) return st;
        sk_residual_forward(mid, x, ND);

        /* feed-forward: xn = norm(mid); SwiGLU or GELU MLP; residual */
        norm_forward(c, xn2, s->mean2 + j * N, s->rstd2 + j * N, mid,
                     w->ffn_norm, w->ffn_norm_b, N);
        if (c->arch->ffn == SK_FFN_SWIGLU) {
            st = lin_fwd(s, &w->lr[LR_GATE], fa, xn2, &mw.w_gate, NULL, N, D, F);
            if (st || (st = lin_fwd(s, &w->lr[LR_UP], fb, xn2, &mw.w_up, w->b_up.w, N, D, F)))
                return st;
            if ((st = hook_fwd(tm, l, SK_LIN_GATE, xn2, N, fa)) ||
                (st = hook_fwd(tm, l, SK_LIN_UP, xn2, N, fb)))
                return st;
            sk_swiglu_forward(fh, fa, fb, (size_t)N * F);
        } else {
            st = lin_fwd(s, &w->lr[LR_UP], fa, xn2, &mw.w_up, w->b_up.w, N, D, F);
            if (st || (st = hook_fwd(tm, l, SK_LIN_UP, xn2, N, fa))) return st;
            sk_gelu_forward(fh, fa, (size_t)N * F);
        }
        if (!down) return SHRINK_OK; /* a recomputation: the backward needs no more */
        float *xo = s->res + (size_t)(l + 1) * ND;
        st = lin_fwd(s, &w->lr[LR_DOWN], xo, fh, &mw.w_down, w->b_down.w, N, F, D);
        if (st || (st = hook_fwd(tm, l, SK_LIN_DOWN, fh, N, xo))) return st;
        sk_residual_forward(xo, mid, ND);
    }
    return SHRINK_OK;
}

static shrink_status forward(const sk_train_model *tm, const model_slots *ms, int B,
                             int T) {
    const sk_config *c = &tm->cfg;
    struct sk_train_state *s = tm->st;
    const int N = B * T, D = c->dim;
    const size_t ND = (size_t)N * D;
    shrink_status st;

    /* token embedding (+ learned position embedding) */
    const sk_mat wte = mat_of(ms->tok_emb, c->vocab_size, D);
    sk_encoder_forward(s->res, s->inp, &wte,
                    c->arch->pos == SK_POS_LEARNED ? ms->pos_emb.w : NULL, N, T, D);

    for (int l = 0; l < c->n_layers; l++)
        if ((st = layer_forward(tm, ms, l, B, T, 1))) return st;
    norm_forward(c, s->xnf, s->meanf, s->rstdf, s->res + (size_t)c->n_layers * ND,
                 ms->final_norm, ms->final_norm_b, N);
    return SHRINK_OK;
}

/* The backward pass; the classifier has left d loss / d xnf in st->dxn. */
static shrink_status backward(const sk_train_model *tm, const model_slots *ms, int B,
                              int T) {
    const sk_config *c = &tm->cfg;
    struct sk_train_state *s = tm->st;
    const int N = B * T, D = c->dim, H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim;
    const int F = c->ffn_dim, Q = H * hd, K = KV * hd, L = c->n_layers;
    const size_t ND = (size_t)N * D;
    shrink_status st;

    /* final norm: dres = d loss / d res[L] */
    memset(s->dres, 0, ND * sizeof(float));
    norm_backward(c, s->dres, s->dxn, s->res + (size_t)L * ND, ms->final_norm,
                  ms->final_norm_b, s->meanf, s->rstdf, N);

    for (int l = L - 1; l >= 0; l--) {
        const layer_slots *w = &ms->layers[l];
        const layer_mats mw = mats_of(c, w);
        /* activation checkpointing: the layer's activations again, from its input res[l]
         * (the same kernels on the same input: the same floats; the last layer's are still
         * in the slot from the forward pass) */
        if (s->recompute && l < L - 1 && (st = layer_forward(tm, ms, l, B, T, 0))) return st;
        const size_t j = s->recompute ? 0 : (size_t)l;
        const float *x = s->res + (size_t)l * ND, *mid = s->mid + j * ND;
        const float *xn1 = s->xn1 + j * ND, *xn2 = s->xn2 + j * ND;
        const float *q = s->q + j * N * Q, *k = s->k + j * N * K;
        const float *v = s->v + j * N * K, *ao = s->ao + j * N * Q;
        const float *att = s->att + j * B * H * T * T;
        const float *fa = s->fa + j * N * F, *fb = s->fb + j * N * F;
        const float *fh = s->fh + j * N * F;

        /* res[l+1] = mid + down(fh): dres flows to mid unchanged and into the MLP */
        memset(s->dfh, 0, (size_t)N * F * sizeof(float));
        st = lin_bwd(s, &w->lr[LR_DOWN], s->dfh, w->w_down.g,
                     w->b_down.w ? w->b_down.g : NULL, s->dres, fh, &mw.w_down, N, F, D);
        if (st || (st = hook_bwd(tm, l, SK_LIN_DOWN, fh, s->dres, N, s->dfh))) return st;
        memset(s->dxn, 0, ND * sizeof(float));
        if (c->arch->ffn == SK_FFN_SWIGLU) {
            sk_swiglu_backward(s->dfa, s->dfb, s->dfh, fa, fb, (size_t)N * F);
            st = lin_bwd(s, &w->lr[LR_GATE], s->dxn, w->w_gate.g, NULL, s->dfa, xn2,
                         &mw.w_gate, N, D, F);
            if (st || (st = hook_bwd(tm, l, SK_LIN_GATE, xn2, s->dfa, N, s->dxn))) return st;
            st = lin_bwd(s, &w->lr[LR_UP], s->dxn, w->w_up.g, w->b_up.w ? w->b_up.g : NULL,
                         s->dfb, xn2, &mw.w_up, N, D, F);
            if (st || (st = hook_bwd(tm, l, SK_LIN_UP, xn2, s->dfb, N, s->dxn))) return st;
        } else {
            sk_gelu_backward(s->dfa, fa, s->dfh, (size_t)N * F);
            st = lin_bwd(s, &w->lr[LR_UP], s->dxn, w->w_up.g, w->b_up.w ? w->b_up.g : NULL,
                         s->dfa, xn2, &mw.w_up, N, D, F);
            if (st || (st = hook_bwd(tm, l, SK_LIN_UP, xn2, s->dfa, N, s->dxn))) return st;
        }
        norm_backward(c, s->dres, s->dxn, mid, w->ffn_norm, w->ffn_norm_b,
                      s->mean2 + j * N, s->rstd2 + j * N, N);

        /* mid = x + o(ao): dres (now d/dmid) flows to x unchanged and into attention */
        memset(s->dao, 0, (size_t)N * Q * sizeof(float));
        st = lin_bwd(s, &w->lr[LR_O], s->dao, w->wo.g, w->bo.w ? w->bo.g : NULL, s->dres, ao,
                     &mw.wo, N, Q, D);
        if (st || (st = hook_bwd(tm, l, SK_LIN_O, ao, s->dres, N, s->dao))) return st;
        sk_attention_backward(s->dq, s->dk, s->dv, s->dao, q, k, v, att, B, T, H, KV, hd,
                           s->work);
        if (c->arch->pos == SK_POS_ROPE) {
            sk_rope_backward(s->dq, s->rope_cos, s->rope_sin, N, T, H, hd, c->rope_layout);
            sk_rope_backward(s->dk, s->rope_cos, s->rope_sin, N, T, KV, hd, c->rope_layout);
        }
        memset(s->dxn, 0, ND * sizeof(float));
        st = lin_bwd(s, &w->lr[LR_Q], s->dxn, w->wq.g, w->bq.w ? w->bq.g : NULL, s->dq, xn1,
                     &mw.wq, N, D, Q);
        if (st || (st = hook_bwd(tm, l, SK_LIN_Q, xn1, s->dq, N, s->dxn))) return st;
        st = lin_bwd(s, &w->lr[LR_K], s->dxn, w->wk.g, w->bk.w ? w->bk.g : NULL, s->dk, xn1,
                     &mw.wk, N, D, K);
        if (st || (st = hook_bwd(tm, l, SK_LIN_K, xn1, s->dk, N, s->dxn))) return st;
        st = lin_bwd(s, &w->lr[LR_V], s->dxn, w->wv.g, w->bv.w ? w->bv.g : NULL, s->dv, xn1,
                     &mw.wv, N, D, K);
        if (st || (st = hook_bwd(tm, l, SK_LIN_V, xn1, s->dv, N, s->dxn))) return st;
        norm_backward(c, s->dres, s->dxn, x, w->attn_norm, w->attn_norm_b,
                      s->mean1 + j * N, s->rstd1 + j * N, N);
    }
    /* embeddings */
    sk_encoder_backward(ms->tok_emb.g, c->arch->pos == SK_POS_LEARNED ? ms->pos_emb.g : NULL,
                     s->dres, s->inp, N, T, D);
    return SHRINK_OK;
}

/* g += mask * scratch for every masked, unfrozen parameter (QAT's learned scales: their
 * backward, qat_lsq.c). */
static void apply_masks(sk_train_model *tm) {
    for (int64_t i = 0; i < tm->n_params; i++) {
        sk_train_param *p = &tm->params[i];
        if (p->frozen || (!p->mask_f32 && !p->mask_u8 && !p->qat_sp)) continue;
        const float *src = tm->st->gmask + p->offset;
        if (p->qat_sp) { /* QAT's learned scales: dL/dŴ to w (clip mask) and the scales */
            sk_qat_lsq_backward(tm, p, src);
            continue;
        }
        #pragma omp parallel for schedule(static) if (p->n > 65536)
        for (int64_t j = 0; j < p->n; j++) {
            float m = p->mask_f32 ? p->mask_f32[j] : 1.0f;
            if (p->mask_u8 && !p->mask_u8[j]) m = 0.0f;
            p->g[j] += m * src[j];
        }
    }
}

static shrink_status run(sk_train_model *tm, const int32_t *tokens, int B, int T, float *loss,
                         int want_grad, const char *fn, const sk_distill_rows *teach,
                         double *ce, double *kl) {
    shrink_status st = check_tokens(tm, tokens, B, T, fn);
    if (st) return st;
    if ((st = sk_train_reserve(tm, B, T))) return st;
    struct sk_train_state *s = tm->st;
    const sk_config *c = &tm->cfg;
    if ((st = reserve_scratch(tm, s))) return st; /* a no-op unless threads or kernels changed */
    const int N = B * T, D = c->dim, V = c->vocab_size;

    /* masked parameters accumulate into a scratch first */
    int masked = 0;
    for (int64_t i = 0; i < tm->n_params; i++)
        masked |= !tm->params[i].frozen && (tm->params[i].mask_f32 || tm->params[i].mask_u8 ||
                                            tm->params[i].qat_sp);
    if (want_grad && masked) {
        if (!s->gmask && !(s->gmask = falloc((size_t)tm->n_elems)))
            return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory for masked gradients", fn);
        memset(s->gmask, 0, (size_t)tm->n_elems * sizeof(float));
    }
    if ((st = sk_qat_refresh(tm))) return st; /* QAT: wq from the current w */
    if (tm->hook) {
        tm->hook->training = want_grad;
        tm->hook->passes += want_grad != 0;
    }
    model_slots ms = {0};
    ms.layers = sk_calloc((size_t)c->n_layers, sizeof *ms.layers);
    if (!ms.layers) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", fn);
    bind_slots(tm, &ms);

    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            s->inp[b * T + t] = tokens[(size_t)b * (T + 1) + t];
            s->tgt[b * T + t] = tokens[(size_t)b * (T + 1) + t + 1];
        }
    if ((st = forward(tm, &ms, B, T))) goto out;

    /* fused classifier: loss, and d loss / d xnf into dxn, dhead pushed at once */
    const float scale = tm->grad_scale / (float)N;
    float *dxnf = NULL;
    if (want_grad) {
        dxnf = s->dxn;
        memset(dxnf, 0, (size_t)N * D * sizeof(float));
    }
    double sum = 0.0, ce_sum = 0.0, kl_sum = 0.0;
    const sk_mat head = mat_of(ms.head, V, D);
    if (teach && ms.head.q)
        st = sk_error(SHRINK_ERR_UNSUPPORTED, "%s: distillation into a frozen %s head is not "
                      "supported", fn, sk_dtype(ms.head.dt)->name);
    else if (teach)
        st = sk_distill_classifier_forward_backward(&sum, dxnf, want_grad ? ms.head.g : NULL,
                                                    s->xnf, ms.head.w, s->tgt, teach, N, D, V,
                                                    scale, s->work, sk_classifier_chunk(N, V),
                                                    &s->mm, &ce_sum, &kl_sum);
    else {
        st = sk_classifier_forward_backward(&sum, dxnf, want_grad ? ms.head.g : NULL, s->xnf,
                                            &head, s->tgt, N, D, V, scale, s->work,
                                            sk_classifier_chunk(N, V), &s->mm);
        ce_sum = sum;
    }
    if (st) goto out;
    if (ce) *ce = ce_sum / N;
    if (kl) *kl = kl_sum / N;
    if (want_grad) {
        if ((st = backward(tm, &ms, B, T))) goto out;
        if (masked) apply_masks(tm);
    }
    if (loss) *loss = (float)(sum / N);
out:
    sk_free(ms.layers);
    return st;
}

shrink_status sk_train_forward_backward(sk_train_model *tm, const int32_t *tokens, int B, int T,
                                        float *loss) {
    return run(tm, tokens, B, T, loss, 1, "training step", NULL, NULL, NULL);
}

shrink_status sk_train_loss(sk_train_model *tm, const int32_t *tokens, int B, int T,
                            float *loss) {
    return run(tm, tokens, B, T, loss, 0, "loss", NULL, NULL, NULL);
}

static shrink_status check_teach(const sk_train_model *tm, const sk_distill_rows *t,
                                 const char *fn) {
    const int V = tm->cfg.vocab_size;
    if (!t || (!t->logp && !t->fill) || t->K < 1 || t->K > V ||
        (!t->idx && !t->fill && t->K != V) ||
        !(t->alpha >= 0 && t->alpha <= 1) || !(t->tau > 0))
        return sk_error(SHRINK_ERR_ARG, "%s: bad teacher rows (alpha in [0, 1], tau > 0, "
                        "1 <= K <= V, idx unless K == V)", fn);
    return SHRINK_OK;
}

shrink_status sk_train_forward_backward_distill(sk_train_model *tm, const int32_t *tokens,
                                                int B, int T, const sk_distill_rows *t,
                                                float *loss, double *ce, double *kl) {
    shrink_status st = check_teach(tm, t, "distillation step");
    if (st) return st;
    return run(tm, tokens, B, T, loss, 1, "distillation step", t, ce, kl);
}

shrink_status sk_train_loss_distill(sk_train_model *tm, const int32_t *tokens, int B, int T,
                                    const sk_distill_rows *t, float *loss, double *ce,
                                    double *kl) {
    shrink_status st = check_teach(tm, t, "distillation loss");
    if (st) return st;
    return run(tm, tokens, B, T, loss, 0, "distillation loss", t, ce, kl);
}
