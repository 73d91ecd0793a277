/*
 * structured.c - structured pruning (shrink_prune_structured) and the sensitivity analysis it
 * ranks by (shrink_sensitivity): whole attention heads, K/V groups, FFN neurons and decoder
 * layers are removed and a physically smaller model is written with the new config.
 *
 * Masking equals removal. A query head's output reaches the residual stream only through its
 * hd columns of W_o; an FFN neuron only through its column of W_down; a layer only through
 * W_o, b_o, W_down and b_down (pre-norm residual blocks). So a unit is measured as removed by
 * zeroing those columns in f32 copies of W_o / W_down bound into the decoder, and the smaller
 * model written later (the unit's rows of W_q / W_k / W_v / W_gate / W_up and its columns of
 * W_o / W_down dropped, a layer's tensors dropped and the rest renumbered) has the same
 * logits up to the order of float sums (tests/test_prune_structured.c).
 *
 * Scores (the lower, the sooner removed):
 *   sensitivity - the mean KL(original || unit removed) per calibration token, each unit
 *                 removed alone (a neuron's score is its block's; ties by the proxy);
 *   activation  - Minitron's importance: head: mean over tokens of ||head output|| times
 *                 ||W_o columns of the head||_F; neuron: mean |a_i| (input of W_down) times
 *                 ||W_down column i||; a K/V group: the sum over its heads; layer: ShortGPT's
 *                 block influence 1 - mean cos(h_in, h_out) of the residual stream;
 *   random      - seeded, a baseline.
 * The config has one n_heads / n_kv_heads / ffn_dim for every layer (the architecture table
 * and the formats have no per-layer sizes), so each kept layer loses the same count: its own
 * least important units. Query heads leave every K/V group in equal numbers, so the heads of
 * group g stay consecutive and n_heads / n_kv_heads stays an integer.
 */
#include "prune.h"

#include "../model/source.h"
#include "../eval/ppl.h"

#include <math.h>
#include <omp.h>
#include <strings.h>
#include <sys/stat.h>

/* ==== units ================================================================================ */

static const char *const unit_names[SHRINK_UNIT_COUNT] = {"layer", "head", "kv-head",
                                                          "neuron-block"};

const char *shrink_unit_name(shrink_unit u) {
    return (unsigned)u < SHRINK_UNIT_COUNT ? unit_names[u] : "?";
}

shrink_status shrink_unit_parse(const char *name, shrink_unit *out) {
    const int i = sk_name_find(unit_names, SHRINK_UNIT_COUNT, name);
    if (i >= 0) {
        *out = (shrink_unit)i;
        return SHRINK_OK;
    }
    return sk_error(SHRINK_ERR_ARG, "unknown unit '%s' (one of: layer, head, kv-head, "
                    "neuron-block)", name ? name : "");
}

/* ==== the scoring model: a loaded model with f32 W_o / W_down that units are masked in ==== */

typedef struct sscore {
    shrink_model        *m;
    shrink_context      *ctx;
    int32_t             *ids;
    int64_t              n;          /* calibration tokens */
    int32_t              n_ctx;
    int                  L, H, KV, hd, F, D, V;
    float              **wo, **wo0;  /* (L) working / original f32 W_o (D, H*hd) */
    float              **wd, **wd0;  /* (L) working / original f32 W_down (D, F) */
    const float        **bo0, **bd0; /* (L) original biases (may be NULL) */
    /* activation statistics of the unmasked pass */
    double              *head_act;   /* (L, H) sum over tokens of ||head output|| */
    double              *neuron_act; /* (L, F) sum over tokens of |a_i| */
    double              *cos_sum;    /* (L) sum over tokens of cos(x_l, x_{l+1}) */
    float               *resid;      /* (n_batch, D) the last residual stream seen */
    int                  resid_layer;
    int64_t              n_obs;      /* tokens observed */
    /* the unmasked model's log-probabilities */
    float               *base_p;     /* (n, V) next-token probabilities */
    double              *base_negent; /* (n) sum p log p per token */
    float               *logits;     /* (n_ctx, V) */
    double               base_ppl;
} sscore;

static void sscore_free(sscore *s) {
    for (int l = 0; l < s->L; l++) {
        if (s->wo) sk_free(s->wo[l]);
        if (s->wo0) sk_free(s->wo0[l]);
        if (s->wd) sk_free(s->wd[l]);
        if (s->wd0) sk_free(s->wd0[l]);
    }
    sk_free(s->wo);
    sk_free(s->wo0);
    sk_free(s->wd);
    sk_free(s->wd0);
    sk_free(s->bo0);
    sk_free(s->bd0);
    sk_free(s->head_act);
    sk_free(s->neuron_act);
    sk_free(s->cos_sum);
    sk_free(s->resid);
    sk_free(s->base_p);
    sk_free(s->base_negent);
    sk_free(s->logits);
    shrink_free(s->ids);
    shrink_context_free(s->ctx);
    shrink_model_free(s->m);
    memset(s, 0, sizeof *s);
}

/* An f32 copy of matrix W. */
static float *mat_f32(const sk_mat *W) {
    float *w = sk_aligned_alloc(64, (size_t)(W->rows * W->cols) * sizeof *w);
    if (w)
        for (int64_t r = 0; r < W->rows; r++) sk_mat_row_f32(W, r, w + r * W->cols);
    return w;
}

static void observe(void *user, int layer, sk_linear which, const float *X, int64_t T,
                    int64_t cols) {
    sscore *s = user;
    if (which == SK_LIN_O && layer >= 0 && layer < s->L && cols == (int64_t)s->H * s->hd) {
        double *h = s->head_act + (size_t)layer * s->H;
        for (int64_t t = 0; t < T; t++)
            for (int k = 0; k < s->H; k++) {
                const float *v = X + t * cols + (int64_t)k * s->hd;
                double ss = 0.0;
                for (int i = 0; i < s->hd; i++) ss += (double)v[i] * v[i];
                h[k] += sqrt(ss);
            }
    } else if (which == SK_LIN_DOWN && layer >= 0 && layer < s->L && cols == s->F) {
        double *a = s->neuron_act + (size_t)layer * s->F;
        for (int64_t t = 0; t < T; t++)
            for (int64_t i = 0; i < cols; i++) a[i] += fabs((double)X[t * cols + i]);
    } else if (which == SK_LIN_RESID && cols == s->D) {
        if (layer > 0 && layer == s->resid_layer + 1)
            for (int64_t t = 0; t < T; t++) {
                const float *a = s->resid + t * cols, *b = X + t * cols;
                double ab = 0.0, aa = 0.0, bb = 0.0;
                for (int64_t i = 0; i < cols; i++) {
                    ab += (double)a[i] * b[i];
                    aa += (double)a[i] * a[i];
                    bb += (double)b[i] * b[i];
                }
                s->cos_sum[layer - 1] += aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 1.0;
            }
        if (layer == 0) s->n_obs += T;
        memcpy(s->resid, X, (size_t)(T * cols) * sizeof(float));
        s->resid_layer = layer;
    }
}

/* Runs the (masked) model over the calibration tokens: the unmasked pass (base) keeps its
 * probabilities; the others return the mean KL from them. Perplexity: every next token
 * within a window. */
static shrink_status score_pass(sscore *s, int base, double *kl_out, double *ppl_out) {
    double kl = 0.0, nll = 0.0;
    int64_t scored = 0;
    const int V = s->V;
    for (int64_t w0 = 0; w0 < s->n; w0 += s->n_ctx) {
        const int32_t wl = (int32_t)(s->n - w0 < s->n_ctx ? s->n - w0 : s->n_ctx);
        shrink_status st = shrink_context_eval(s->ctx, s->ids + w0, wl, 0, s->logits, wl);
        if (st) return st;
        #pragma omp parallel for reduction(+ : kl, nll, scored) schedule(static)
        for (int32_t t = 0; t < wl; t++) {
            const float *z = s->logits + (size_t)t * V;
            const double lse = sk_logits_lse(z, V);
            if (t + 1 < wl) {
                nll += lse - z[s->ids[w0 + t + 1]];
                scored++;
            }
            float *b = s->base_p + (size_t)(w0 + t) * V;
            if (base) /* probabilities and sum p log p of the unmasked model */
                s->base_negent[w0 + t] = sk_logits_keep(z, V, lse, b);
            else /* KL = sum p_b log p_b - sum p_b log q */
                kl += sk_logits_kl(z, V, lse, b, s->base_negent[w0 + t]);
        }
    }
    if (kl_out) *kl_out = kl / (double)s->n;
    if (ppl_out) *ppl_out = exp(nll / (double)(scored ? scored : 1));
    return SHRINK_OK;
}

/* Loads the model, binds f32 copies of W_o / W_down, encodes the calibration text and runs
 * the unmasked pass with the activation observer. */
static shrink_status sscore_open(sscore *s, const char *in, const char *tok_path,
                                 const char *calib, int64_t calib_tokens, int32_t calib_ctx) {
    memset(s, 0, sizeof *s);
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = tok_path;
    shrink_status st = shrink_model_load(&s->m, in, &lp);
    if (st) return st;
    struct shrink_model *m = s->m;
    const sk_config *c = &m->cfg;
    s->L = c->n_layers;
    s->H = c->n_heads;
    s->KV = c->n_kv_heads;
    s->hd = c->head_dim;
    s->F = c->ffn_dim;
    s->D = c->dim;
    s->V = c->vocab_size;
    if ((st = sk_prune_calib_tokens(m, calib, calib_tokens, &s->ids, &s->n))) return st;
    s->n_ctx = calib_ctx > 0 ? calib_ctx : (c->max_seq_len < 256 ? c->max_seq_len : 256);
    if (s->n_ctx > c->max_seq_len) s->n_ctx = c->max_seq_len;
    const int32_t piece = s->n_ctx < 128 ? s->n_ctx : 128;
    const size_t L = (size_t)s->L;
    s->wo = sk_calloc(L, sizeof *s->wo);
    s->wo0 = sk_calloc(L, sizeof *s->wo0);
    s->wd = sk_calloc(L, sizeof *s->wd);
    s->wd0 = sk_calloc(L, sizeof *s->wd0);
    s->bo0 = sk_calloc(L, sizeof *s->bo0);
    s->bd0 = sk_calloc(L, sizeof *s->bd0);
    s->head_act = sk_calloc(L * (size_t)s->H, sizeof(double));
    s->neuron_act = sk_calloc(L * (size_t)s->F, sizeof(double));
    s->cos_sum = sk_calloc(L, sizeof(double));
    s->resid = sk_malloc((size_t)piece * (size_t)s->D * sizeof(float));
    s->base_p = sk_malloc((size_t)s->n * (size_t)s->V * sizeof(float));
    s->base_negent = sk_malloc((size_t)s->n * sizeof(double));
    s->logits = sk_malloc((size_t)s->n_ctx * (size_t)s->V * sizeof(float));
    if (!s->wo || !s->wo0 || !s->wd || !s->wd0 || !s->bo0 || !s->bd0 || !s->head_act ||
        !s->neuron_act || !s->cos_sum || !s->resid || !s->base_p || !s->base_negent || !s->logits)
        return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory for the scores of %lld "
                        "calibration tokens", in, (long long)s->n);
    for (int l = 0; l < s->L; l++) {
        sk_layer *Ly = &m->layers[l];
        s->wo[l] = mat_f32(&Ly->wo);
        s->wo0[l] = mat_f32(&Ly->wo);
        s->wd[l] = mat_f32(&Ly->w_down);
        s->wd0[l] = mat_f32(&Ly->w_down);
        if (!s->wo[l] || !s->wo0[l] || !s->wd[l] || !s->wd0[l])
            return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory for f32 weights", in);
        Ly->wo = (sk_mat){SHRINK_DTYPE_F32, Ly->wo.rows, Ly->wo.cols, s->wo[l], NULL};
        Ly->w_down = (sk_mat){SHRINK_DTYPE_F32, Ly->w_down.rows, Ly->w_down.cols, s->wd[l], NULL};
        s->bo0[l] = Ly->bo;
        s->bd0[l] = Ly->b_down;
    }
    /* after the f32 copies are bound: the context sizes its scratch for the bound matrices */
    if ((st = shrink_context_create(&s->ctx, m, s->n_ctx, piece))) return st;
    s->resid_layer = -2;
    sk_context_set_observer(s->ctx, observe, s);
    st = score_pass(s, 1, NULL, &s->base_ppl);
    sk_context_set_observer(s->ctx, NULL, NULL);
    return st;
}

/* Masks (on) or restores (off) one unit. */
static void sscore_mask(sscore *s, shrink_unit u, int l, int idx, int block, int on) {
    struct shrink_model *m = s->m;
    const int64_t D = s->D, HD = (int64_t)s->H * s->hd, F = s->F;
    int64_t c0 = 0, nc = 0;
    float *w = NULL;
    const float *w0 = NULL;
    int64_t cols = 0;
    switch (u) {
    case SHRINK_UNIT_LAYER:
        if (on) {
            memset(s->wo[l], 0, (size_t)(D * HD) * sizeof(float));
            memset(s->wd[l], 0, (size_t)(D * F) * sizeof(float));
            m->layers[l].bo = NULL;
            m->layers[l].b_down = NULL;
        } else {
            memcpy(s->wo[l], s->wo0[l], (size_t)(D * HD) * sizeof(float));
            memcpy(s->wd[l], s->wd0[l], (size_t)(D * F) * sizeof(float));
            m->layers[l].bo = s->bo0[l];
            m->layers[l].b_down = s->bd0[l];
        }
        return;
    case SHRINK_UNIT_HEAD: c0 = (int64_t)idx * s->hd; nc = s->hd; break;
    case SHRINK_UNIT_KV_HEAD: {
        const int g = s->H / s->KV;
        c0 = (int64_t)idx * g * s->hd;
        nc = (int64_t)g * s->hd;
        break;
    }
    case SHRINK_UNIT_NEURON_BLOCK:
        c0 = (int64_t)idx * block;
        nc = c0 + block <= F ? block : F - c0;
        break;
    default: return;
    }
    if (u == SHRINK_UNIT_NEURON_BLOCK) {
        w = s->wd[l];
        w0 = s->wd0[l];
        cols = F;
    } else {
        w = s->wo[l];
        w0 = s->wo0[l];
        cols = HD;
    }
    for (int64_t r = 0; r < D; r++) {
        float *row = w + r * cols + c0;
        if (on) memset(row, 0, (size_t)nc * sizeof(float));
        else memcpy(row, w0 + r * cols + c0, (size_t)nc * sizeof(float));
    }
}

/* Units of kind u per layer (layers: 1 per layer). */
static int units_per_layer(const sscore *s, shrink_unit u, int block) {
    switch (u) {
    case SHRINK_UNIT_HEAD: return s->H;
    case SHRINK_UNIT_KV_HEAD: return s->KV;
    case SHRINK_UNIT_NEURON_BLOCK: return (s->F + block - 1) / block;
    default: return 1;
    }
}

/* ||column c of W (rows x cols)||. */
static double col_norm(const float *W, int64_t rows, int64_t cols, int64_t c) {
    double ss = 0.0;
    for (int64_t r = 0; r < rows; r++) ss += (double)W[r * cols + c] * W[r * cols + c];
    return sqrt(ss);
}

/* The proxy score of head k of layer l (Minitron). */
static double head_proxy(const sscore *s, int l, int k) {
    const int64_t HD = (int64_t)s->H * s->hd;
    double ss = 0.0;
    for (int i = 0; i < s->hd; i++) {
        double n = col_norm(s->wo0[l], s->D, HD, (int64_t)k * s->hd + i);
        ss += n * n;
    }
    return s->head_act[(size_t)l * s->H + k] / (double)(s->n_obs ? s->n_obs : 1) * sqrt(ss);
}

static double neuron_proxy(const sscore *s, int l, int i) {
    return s->neuron_act[(size_t)l * s->F + i] / (double)(s->n_obs ? s->n_obs : 1) *
           col_norm(s->wd0[l], s->D, s->F, i);
}

static double unit_proxy(const sscore *s, shrink_unit u, int l, int idx, int block) {
    double p = 0.0;
    switch (u) {
    case SHRINK_UNIT_LAYER:
        return 1.0 - s->cos_sum[l] / (double)(s->n_obs ? s->n_obs : 1);
    case SHRINK_UNIT_HEAD: return head_proxy(s, l, idx);
    case SHRINK_UNIT_KV_HEAD: {
        const int g = s->H / s->KV;
        for (int k = idx * g; k < (idx + 1) * g; k++) p += head_proxy(s, l, k);
        return p;
    }
    case SHRINK_UNIT_NEURON_BLOCK:
        for (int i = idx * block; i < (idx + 1) * block && i < s->F; i++)
            p += neuron_proxy(s, l, i);
        return p;
    default: return 0.0;
    }
}

/* Measures every unit of kind u (entries: L x units_per_layer, or L for layers). */
/* Units k (model order) with k % n_shards == shard into e[0..), in order. */
static shrink_status measure_units(sscore *s, shrink_unit u, int block, int shard,
                                   int n_shards, shrink_sensitivity_entry *e,
                                   void (*progress)(void *, int64_t, int64_t), void *user) {
    const int per = units_per_layer(s, u, block);
    const int64_t total = (int64_t)s->L * per;
    const int64_t mine = (total - shard + n_shards - 1) / n_shards;
    int64_t j = 0;
    for (int64_t k = shard; k < total; k += n_shards, j++) {
        const int l = (int)(k / per), idx = (int)(k % per);
        e[j].layer = l;
        e[j].index = u == SHRINK_UNIT_LAYER ? -1 : idx;
        e[j].proxy = unit_proxy(s, u, l, idx, block);
        sscore_mask(s, u, l, idx, block, 1);
        shrink_status st = score_pass(s, 0, &e[j].kl, &e[j].ppl);
        sscore_mask(s, u, l, idx, block, 0);
        if (st) return st;
        if (progress) progress(user, j + 1, mine);
    }
    return SHRINK_OK;
}

/* ==== shrink_sensitivity =================================================================== */

shrink_sensitivity_params shrink_sensitivity_params_default(void) {
    shrink_sensitivity_params p = {.unit = SHRINK_UNIT_LAYER, .calib_path = NULL,
                                   .calib_tokens = 512, .calib_ctx = 0, .block = 0,
                                   .tokenizer_path = NULL, .progress = NULL, .user = NULL,
                                   .shard = 0, .n_shards = 1};
    return p;
}

void shrink_sensitivity_result_free(shrink_sensitivity_result *r) {
    if (!r) return;
    sk_free(r->entries);
    sk_free(r->input);
    sk_free(r->calib);
    r->entries = NULL;
    r->input = r->calib = NULL;
    r->n = 0;
}

/* Sorting indices by (key, key2, index). */
typedef struct rk {
    double  a, b;
    int64_t i;
} rk;

static int rk_cmp(const void *x, const void *y) {
    const rk *p = x, *q = y;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    if (p->b != q->b) return p->b < q->b ? -1 : 1;
    return p->i < q->i ? -1 : p->i > q->i;
}

/* out[0..n) = the indices ordered by (a, b, index). */
static shrink_status rank_order(const double *a, const double *b, int64_t n, int64_t *out) {
    rk *v = sk_malloc((size_t)(n ? n : 1) * sizeof *v);
    if (!v) return sk_error(SHRINK_ERR_NOMEM, "structured pruning: out of memory");
    for (int64_t i = 0; i < n; i++) v[i] = (rk){a[i], b ? b[i] : 0.0, i};
    qsort(v, (size_t)n, sizeof *v, rk_cmp);
    for (int64_t i = 0; i < n; i++) out[i] = v[i].i;
    sk_free(v);
    return SHRINK_OK;
}

shrink_status sk_sensitivity_rank(shrink_sensitivity_result *r) {
    double *a = sk_malloc((size_t)(r->n ? r->n : 1) * sizeof *a);
    int64_t *ord = sk_malloc((size_t)(r->n ? r->n : 1) * sizeof *ord);
    shrink_status st = SHRINK_OK;
    if (!a || !ord) st = sk_error(SHRINK_ERR_NOMEM, "sensitivity: out of memory");
    for (int64_t i = 0; !st && i < r->n; i++) a[i] = r->entries[i].kl;
    if (!st) st = rank_order(a, NULL, r->n, ord);
    for (int64_t i = 0; !st && i < r->n; i++) r->entries[ord[i]].rank = (int32_t)i;
    sk_free(a);
    sk_free(ord);
    return st;
}

static int32_t default_block(int F) {
    int32_t b = F / 16;
    return b > 0 ? b : 1;
}

shrink_status shrink_sensitivity(const char *in, const shrink_sensitivity_params *p,
                                 shrink_sensitivity_result *r) {
    shrink_sensitivity_params def = shrink_sensitivity_params_default();
    if (!p) p = &def;
    if (!r) return sk_error(SHRINK_ERR_ARG, "sensitivity: no result buffer given");
    memset(r, 0, sizeof *r);
    if (!in || !*in) return sk_error(SHRINK_ERR_ARG, "sensitivity: no input model given");
    if ((unsigned)p->unit >= SHRINK_UNIT_COUNT)
        return sk_error(SHRINK_ERR_ARG, "sensitivity: unknown unit %d", (int)p->unit);
    if (!p->calib_path || !*p->calib_path)
        return sk_error(SHRINK_ERR_ARG, "sensitivity needs a calibration text (--calib FILE)");
    if (p->calib_tokens < 2)
        return sk_error(SHRINK_ERR_ARG, "calibration tokens %lld < 2",
                        (long long)p->calib_tokens);
    const int n_shards = p->n_shards > 1 ? p->n_shards : 1;
    if (p->shard < 0 || p->shard >= n_shards)
        return sk_error(SHRINK_ERR_ARG, "shard %d of %d: the shard is 0 .. %d", (int)p->shard,
                        n_shards, n_shards - 1);
    const double t0 = shrink_time();
    sscore s;
    shrink_status st = sscore_open(&s, in, p->tokenizer_path, p->calib_path, p->calib_tokens,
                                   p->calib_ctx);
    if (st) goto out;
    const int block = p->block > 0 ? p->block : default_block(s.F);
    if (p->block > s.F) {
        st = sk_error(SHRINK_ERR_ARG, "neuron block %d is larger than the FFN (%d neurons)",
                      p->block, s.F);
        goto out;
    }
    const int per = units_per_layer(&s, p->unit, block);
    r->n_total = (int64_t)s.L * per;
    if (p->shard >= r->n_total) {
        st = sk_error(SHRINK_ERR_ARG, "shard %d of %d: the model has only %lld %s units",
                      (int)p->shard, n_shards, (long long)r->n_total, shrink_unit_name(p->unit));
        goto out;
    }
    r->n = (r->n_total - p->shard + n_shards - 1) / n_shards;
    r->shard = n_shards > 1 ? p->shard : 0;
    r->n_shards = n_shards;
    r->entries = sk_calloc((size_t)r->n, sizeof *r->entries);
    if (!r->entries) {
        st = sk_error(SHRINK_ERR_NOMEM, "sensitivity: out of memory");
        goto out;
    }
    if ((st = measure_units(&s, p->unit, block, r->shard, n_shards, r->entries, p->progress,
                            p->user)))
        goto out;
    if ((st = sk_sensitivity_rank(r))) goto out;
    r->unit = p->unit;
    r->base_ppl = s.base_ppl;
    r->n_tokens = s.n;
    r->block = block;
    r->seconds = shrink_time() - t0;
out:
    if (st) shrink_sensitivity_result_free(r);
    sscore_free(&s);
    return st;
}

/* ==== shrink_prune_structured ============================================================== */

shrink_structured_params shrink_structured_params_default(void) {
    shrink_structured_params p = {.heads = 0, .kv_heads = 0, .neurons = 0, .layers = 0,
                                  .by = SHRINK_RANK_ACTIVATION, .block = 0, .seed = 1,
                                  .calib_path = NULL, .calib_tokens = 512, .calib_ctx = 0,
                                  .tokenizer_path = NULL, .dtype = -1, .progress = NULL,
                                  .user = NULL, .layer_list = NULL, .n_layer_list = 0,
                                  .layer_scores = NULL};
    return p;
}

void shrink_structured_result_free(shrink_structured_result *r) {
    if (!r) return;
    sk_free(r->removed_layers);
    sk_free(r->removed_heads);
    sk_free(r->removed_neurons);
    r->removed_layers = r->removed_heads = r->removed_neurons = NULL;
}

/* What is kept: the output's layer l is input layer lmap[l]; its query heads qmap[l][...],
 * K/V heads kvmap[l][...], neurons fmap[l][...] (input indices, ascending). */
typedef struct splan {
    sk_config  in, out;
    int32_t   *lmap;  /* (out.L) */
    int32_t   *qmap;  /* (out.L, out.H) */
    int32_t   *kvmap; /* (out.L, out.KV) */
    int32_t   *fmap;  /* (out.L, out.F) */
    int32_t   *dmap;  /* (out.D) kept residual dimensions, ascending */
} splan;

static void splan_free(splan *pl) {
    sk_free(pl->lmap);
    sk_free(pl->qmap);
    sk_free(pl->kvmap);
    sk_free(pl->fmap);
    sk_free(pl->dmap);
}

/* The source of the smaller model: each tensor read whole as f32 from the input's source,
 * its kept rows / columns gathered, then served block by block. */
typedef struct sfill {
    const splan *pl;
    sk_source    base;
    sk_wtensor  *in_ts;  /* the input's canonical tensors */
    int64_t      n_in;
    float       *buf;    /* the input tensor, f32 */
    float       *sel;    /* the output tensor, f32 */
    float       *tr;     /* transposed rows */
    int          cur_role, cur_layer;
} sfill;

static const sk_wtensor *in_tensor(const sfill *f, const sk_wtensor *t) {
    const int32_t layer = t->layer >= 0 ? f->pl->lmap[t->layer] : -1;
    for (int64_t i = 0; i < f->n_in; i++)
        if (f->in_ts[i].role == t->role && f->in_ts[i].layer == layer) return &f->in_ts[i];
    return NULL;
}

/* The kept indices of the rows (rc 0) or columns (rc 1) of role r in output layer l, in units
 * of `unit` consecutive elements (NULL: all kept). */
static const int32_t *kept(const splan *pl, sk_role r, int l, int rc, int *n, int *unit) {
    const sk_config *o = &pl->out;
    *unit = 1;
    switch (r) {
    case SK_ROLE_WQ: case SK_ROLE_BQ:
        if (rc) return NULL;
        *n = o->n_heads;
        *unit = o->head_dim;
        return pl->qmap + (size_t)l * o->n_heads;
    case SK_ROLE_WK: case SK_ROLE_WV: case SK_ROLE_BK: case SK_ROLE_BV:
        if (rc) return NULL;
        *n = o->n_kv_heads;
        *unit = o->head_dim;
        return pl->kvmap + (size_t)l * o->n_kv_heads;
    case SK_ROLE_WO:
        if (!rc) return NULL;
        *n = o->n_heads;
        *unit = o->head_dim;
        return pl->qmap + (size_t)l * o->n_heads;
    case SK_ROLE_W_GATE: case SK_ROLE_W_UP: case SK_ROLE_B_UP:
        if (rc) return NULL;
        *n = o->ffn_dim;
        return pl->fmap + (size_t)l * o->ffn_dim;
    case SK_ROLE_W_DOWN:
        if (!rc) return NULL;
        *n = o->ffn_dim;
        return pl->fmap + (size_t)l * o->ffn_dim;
    default: return NULL;
    }
}

static shrink_status load_tensor(sfill *f, const sk_wtensor *t) {
    const sk_wtensor *ti = in_tensor(f, t);
    if (!ti) return sk_error(SHRINK_ERR_FORMAT, "structured pruning: no input tensor for '%s'",
                             t->name);
    const int vec = t->n_dims == 1;
    const int64_t ir = ti->rows, ic = vec ? 1 : ti->cols;
    const int64_t orows = t->rows, ocols = vec ? 1 : t->cols;
    sk_free(f->buf);
    sk_free(f->sel);
    f->sel = NULL;
    f->buf = sk_aligned_alloc(64, (size_t)(ir * ic) * sizeof(float));
    f->sel = sk_aligned_alloc(64, (size_t)(orows * ocols) * sizeof(float));
    if (!f->buf || !f->sel)
        return sk_error(SHRINK_ERR_NOMEM, "structured pruning: out of memory for '%s'",
                        t->name);
    shrink_status st = f->base.fill(f->base.user, ti, 0, ir, 0, SHRINK_DTYPE_F32, f->buf);
    if (st) return st;
    int nr = 0, ur = 1, nc = 0, uc = 1;
    const int32_t *rk_ = t->layer >= 0 ? kept(f->pl, t->role, t->layer, 0, &nr, &ur) : NULL;
    const int32_t *ck = t->layer >= 0 && !vec ? kept(f->pl, t->role, t->layer, 1, &nc, &uc)
                                              : NULL;
    /* an axis of the residual stream (hidden size changed): the kept dimensions */
    const sk_config *pi = &f->pl->in, *po = &f->pl->out;
    if (pi->dim != po->dim) {
        if (!rk_ && ir == pi->dim && orows == po->dim) rk_ = f->pl->dmap, nr = po->dim, ur = 1;
        if (!ck && !vec && ic == pi->dim && ocols == po->dim)
            ck = f->pl->dmap, nc = po->dim, uc = 1;
    }
    if ((rk_ ? (int64_t)nr * ur : ir) != orows || (ck ? (int64_t)nc * uc : ic) != ocols)
        return sk_error(SHRINK_ERR_FORMAT, "structured pruning: '%s' does not match the plan",
                        t->name);
    for (int64_t r = 0; r < orows; r++) {
        const int64_t sr = rk_ ? (int64_t)rk_[r / ur] * ur + r % ur : r;
        const float *src = f->buf + sr * ic;
        float *dst = f->sel + r * ocols;
        if (!ck) {
            memcpy(dst, src, (size_t)ocols * sizeof(float));
        } else {
            for (int j = 0; j < nc; j++)
                memcpy(dst + (int64_t)j * uc, src + (int64_t)ck[j] * uc,
                       (size_t)uc * sizeof(float));
        }
    }
    f->cur_role = (int)t->role;
    f->cur_layer = t->layer;
    return SHRINK_OK;
}

static shrink_status s_fill(void *user, const sk_wtensor *t, int64_t row0, int64_t n_rows,
                            int transposed, shrink_dtype dt, void *dst) {
    sfill *f = user;
    shrink_status st;
    if (row0 == 0 || (int)t->role != f->cur_role || t->layer != f->cur_layer)
        if ((st = load_tensor(f, t))) return st;
    return sk_source_serve_f32(f->sel, t, row0, n_rows, transposed, dt, dst, &f->tr,
                               "structured pruning");
}

static shrink_dtype s_dtype_of(void *user, const sk_wtensor *t) {
    sfill *f = user;
    const sk_wtensor *ti = in_tensor(f, t);
    if (!ti || !f->base.dtype_of) return f->base.dtype;
    return f->base.dtype_of(f->base.user, ti);
}

/* splitmix64 */
static uint64_t rnd(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Only the listed layers go: nothing to score, no calibration text needed. */
static int only_listed(const shrink_structured_params *p) {
    return p->n_layer_list > 0 && !p->heads && !p->kv_heads && !p->neurons;
}

static shrink_status check_structured(const shrink_structured_params *p, const sk_config *c,
                                      const char *in) {
    if (p->heads < 0 || p->kv_heads < 0 || p->neurons < 0 || p->layers < 0)
        return sk_error(SHRINK_ERR_ARG, "structured pruning: negative count");
    if (p->dims < 0) return sk_error(SHRINK_ERR_ARG, "structured pruning: negative count");
    if (!p->heads && !p->kv_heads && !p->neurons && !p->layers && !p->dims)
        return sk_error(SHRINK_ERR_ARG, "structured pruning: nothing to remove (give heads, "
                        "kv-heads, neurons, layers or hidden dimensions)");
    if (p->dims && c->arch->fused_qkv)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: %s has a fused q|k|v projection and "
                        "head_dim = dim / n_heads, so its hidden size cannot be narrowed", in,
                        c->arch->name);
    if (p->dims >= c->dim)
        return sk_error(SHRINK_ERR_ARG, "%s: cannot remove %d hidden dimensions of %d (at "
                        "least one must stay)", in, p->dims, c->dim);
    if (p->heads && p->kv_heads)
        return sk_error(SHRINK_ERR_ARG, "structured pruning: give heads or kv-heads, not both");
    if ((p->heads || p->kv_heads) && c->arch->fused_qkv)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: %s has a fused q|k|v projection and "
                        "head_dim = dim / n_heads, so its heads cannot be removed (neurons and "
                        "layers can)", in, c->arch->name);
    if (p->layers >= c->n_layers)
        return sk_error(SHRINK_ERR_ARG, "%s: cannot remove %d layers of %d (at least one must "
                        "stay)", in, p->layers, c->n_layers);
    if (p->kv_heads >= c->n_kv_heads)
        return sk_error(SHRINK_ERR_ARG, "%s: cannot remove %d K/V heads of %d per layer (at "
                        "least one must stay)", in, p->kv_heads, c->n_kv_heads);
    if (p->heads >= c->n_heads)
        return sk_error(SHRINK_ERR_ARG, "%s: cannot remove %d heads of %d per layer (at least "
                        "one must stay)", in, p->heads, c->n_heads);
    if (p->heads % c->n_kv_heads)
        return sk_error(SHRINK_ERR_ARG, "%s: %d heads is not a multiple of the %d K/V groups: "
                        "each group must lose the same number of query heads (or remove whole "
                        "groups with kv-heads)", in, p->heads, c->n_kv_heads);
    if (p->neurons >= c->ffn_dim)
        return sk_error(SHRINK_ERR_ARG, "%s: cannot remove %d FFN neurons of %d per layer (at "
                        "least one must stay)", in, p->neurons, c->ffn_dim);
    if (p->n_layer_list < 0 || (p->n_layer_list && !p->layer_list))
        return sk_error(SHRINK_ERR_ARG, "structured pruning: bad layer list");
    for (int32_t i = 0; i < p->n_layer_list; i++) {
        if (p->layer_list[i] < 0 || p->layer_list[i] >= c->n_layers)
            return sk_error(SHRINK_ERR_ARG, "%s: layer %d does not exist (the model has layers "
                            "0 to %d)", in, p->layer_list[i], c->n_layers - 1);
        for (int32_t j = 0; j < i; j++)
            if (p->layer_list[j] == p->layer_list[i])
                return sk_error(SHRINK_ERR_ARG, "%s: layer %d is listed twice", in,
                                p->layer_list[i]);
    }
    if (p->by != SHRINK_RANK_RANDOM && p->by != SHRINK_RANK_INDEX && !only_listed(p) &&
        (!p->calib_path || !*p->calib_path))
        return sk_error(SHRINK_ERR_ARG, "structured pruning by %s needs a calibration text "
                        "(--calib FILE)", p->by == SHRINK_RANK_SENSITIVITY ? "sensitivity"
                                                                           : "activation");
    if (p->block < 0 || p->block > c->ffn_dim)
        return sk_error(SHRINK_ERR_ARG, "neuron block %d is not in [1, %d]", p->block,
                        c->ffn_dim);
    return SHRINK_OK;
}

typedef struct sprog {
    const shrink_structured_params *p;
    int64_t done0, total;
} sprog;

static void unit_progress(void *user, int64_t done, int64_t total) {
    sprog *g = user;
    (void)total;
    if (g->p->progress) g->p->progress(g->p->user, 0, g->done0 + done, g->total);
}

static void write_progress(void *user, int64_t done, int64_t total) {
    const shrink_structured_params *p = user;
    if (p->progress) p->progress(p->user, 1, done, total);
}

/* Scores (lower = removed first): layer (L), head (L x H), kv (L x KV), neuron (L x F) with a
 * second key neuron2 (the proxy under sensitivity). */
typedef struct sscores {
    double *layer, *head, *kv, *neuron, *neuron2;
    double *dim; /* (D) residual dimensions: the token embedding's column norms */
} sscores;

static shrink_status compute_scores(const char *in, const shrink_structured_params *p,
                                    const sk_config *c, sscores *sc, int64_t *n_calib) {
    const int L = c->n_layers, H = c->n_heads, KV = c->n_kv_heads, F = c->ffn_dim;
    if (only_listed(p)) return SHRINK_OK; /* the layers' scores come from the list */
    if (p->by == SHRINK_RANK_RANDOM) {
        uint64_t seed = p->seed;
        for (int i = 0; i < L; i++) sc->layer[i] = (double)(rnd(&seed) >> 11);
        for (int i = 0; i < L * H; i++) sc->head[i] = (double)(rnd(&seed) >> 11);
        for (int i = 0; i < L * KV; i++) sc->kv[i] = (double)(rnd(&seed) >> 11);
        for (int64_t i = 0; i < (int64_t)L * F; i++) sc->neuron[i] = (double)(rnd(&seed) >> 11);
        return SHRINK_OK;
    }
    if (p->by == SHRINK_RANK_INDEX) { /* the last units go first */
        for (int i = 0; i < L; i++) sc->layer[i] = -i;
        for (int i = 0; i < L * H; i++) sc->head[i] = -(i % H);
        for (int i = 0; i < L * KV; i++) sc->kv[i] = -(i % KV);
        for (int64_t i = 0; i < (int64_t)L * F; i++) sc->neuron[i] = (double)-(i % F);
        return SHRINK_OK;
    }
    sscore s;
    shrink_status st = sscore_open(&s, in, p->tokenizer_path, p->calib_path, p->calib_tokens,
                                   p->calib_ctx);
    shrink_sensitivity_entry *e = NULL;
    if (st) goto out;
    *n_calib = s.n;
    const int block = p->block > 0 ? p->block : default_block(F);
    for (int l = 0; l < L; l++) {
        sc->layer[l] = unit_proxy(&s, SHRINK_UNIT_LAYER, l, 0, block);
        for (int k = 0; k < H; k++) sc->head[l * H + k] = head_proxy(&s, l, k);
        for (int g = 0; g < KV; g++)
            sc->kv[l * KV + g] = unit_proxy(&s, SHRINK_UNIT_KV_HEAD, l, g, block);
        for (int i = 0; i < F; i++) sc->neuron[(size_t)l * F + i] = neuron_proxy(&s, l, i);
    }
    if (p->by != SHRINK_RANK_SENSITIVITY) goto out;
    /* the measured KL of each unit kind asked for */
    const shrink_unit kinds[4] = {SHRINK_UNIT_LAYER, SHRINK_UNIT_HEAD, SHRINK_UNIT_KV_HEAD,
                                  SHRINK_UNIT_NEURON_BLOCK};
    const int want[4] = {p->layers > 0, p->heads > 0, p->kv_heads > 0, p->neurons > 0};
    sprog g = {p, 0, 0};
    for (int k = 0; k < 4; k++)
        if (want[k]) g.total += (int64_t)L * units_per_layer(&s, kinds[k], block);
    e = sk_calloc((size_t)L * (size_t)(F > H ? F : H) + 1, sizeof *e);
    if (!e) {
        st = sk_error(SHRINK_ERR_NOMEM, "structured pruning: out of memory");
        goto out;
    }
    for (int k = 0; k < 4 && !st; k++) {
        if (!want[k]) continue;
        const int per = units_per_layer(&s, kinds[k], block);
        if ((st = measure_units(&s, kinds[k], block, 0, 1, e, unit_progress, &g))) break;
        g.done0 += (int64_t)L * per;
        for (int l = 0; l < L; l++)
            for (int u = 0; u < per; u++) {
                const double kl = e[l * per + u].kl;
                switch (kinds[k]) {
                case SHRINK_UNIT_LAYER: sc->layer[l] = kl; break;
                case SHRINK_UNIT_HEAD: sc->head[l * H + u] = kl; break;
                case SHRINK_UNIT_KV_HEAD: sc->kv[l * KV + u] = kl; break;
                default:
                    for (int i = u * block; i < (u + 1) * block && i < F; i++) {
                        sc->neuron2[(size_t)l * F + i] = sc->neuron[(size_t)l * F + i];
                        sc->neuron[(size_t)l * F + i] = kl;
                    }
                }
            }
    }
out:
    sk_free(e);
    sscore_free(&s);
    return st;
}

/* The plan from the scores: the layers of lowest score go; in each kept layer the lowest
 * heads of each K/V group, K/V groups, neurons. */
static shrink_status make_plan(const shrink_structured_params *p, const sscores *sc,
                               splan *pl, shrink_structured_result *r) {
    const sk_config *c = &pl->in;
    const int L = c->n_layers, H = c->n_heads, KV = c->n_kv_heads, F = c->ffn_dim;
    const int G = H / KV;
    sk_config *o = &pl->out;
    *o = *c;
    o->n_layers = L - p->layers;
    o->n_kv_heads = KV - p->kv_heads;
    o->n_heads = p->kv_heads ? o->n_kv_heads * G : H - p->heads;
    o->ffn_dim = F - p->neurons;
    o->dim = c->dim - p->dims;
    o->head_dim = c->head_dim; /* the heads keep their width (GGUF: key_length) */
    const int rh = H - o->n_heads, rf = F - o->ffn_dim;
    pl->lmap = sk_malloc((size_t)o->n_layers * sizeof(int32_t));
    pl->qmap = sk_malloc((size_t)o->n_layers * o->n_heads * sizeof(int32_t));
    pl->kvmap = sk_malloc((size_t)o->n_layers * o->n_kv_heads * sizeof(int32_t));
    pl->fmap = sk_malloc((size_t)o->n_layers * o->ffn_dim * sizeof(int32_t));
    pl->dmap = sk_malloc((size_t)o->dim * sizeof(int32_t));
    r->removed_layers = sk_malloc((size_t)(p->layers + 1) * sizeof(int32_t));
    r->removed_heads = sk_malloc((size_t)L * (size_t)(rh + 1) * sizeof(int32_t));
    r->removed_neurons = sk_malloc((size_t)L * (size_t)(rf + 1) * sizeof(int32_t));
    size_t most = (size_t)(F > H ? F : H) + (size_t)L; /* units ranked at once */
    if (most < (size_t)c->dim) most = (size_t)c->dim;
    int64_t *ord = sk_malloc(most * sizeof *ord);
    uint8_t *gone = sk_malloc(most);
    shrink_status st = SHRINK_OK;
    if (!pl->lmap || !pl->qmap || !pl->kvmap || !pl->fmap || !pl->dmap || !r->removed_layers ||
        !r->removed_heads || !r->removed_neurons || !ord || !gone) {
        st = sk_error(SHRINK_ERR_NOMEM, "structured pruning: out of memory");
        goto out;
    }
    /* residual dimensions: the lowest scores go, the rest stay in order */
    memset(gone, 0, (size_t)c->dim);
    if (p->dims) {
        if ((st = rank_order(sc->dim, NULL, c->dim, ord))) goto out;
        for (int i = 0; i < p->dims; i++) gone[ord[i]] = 1;
    }
    for (int d = 0, j = 0; d < c->dim; d++)
        if (!gone[d]) pl->dmap[j++] = d;
    /* layers */
    if ((st = rank_order(sc->layer, NULL, L, ord))) goto out;
    memset(gone, 0, (size_t)L);
    for (int i = 0; i < p->layers; i++) gone[ord[i]] = 1;
    for (int l = 0, j = 0, k = 0; l < L; l++) {
        if (gone[l]) r->removed_layers[k++] = l;
        else pl->lmap[j++] = l;
    }
    for (int l = 0; l < L * rh; l++) r->removed_heads[l] = -1;
    for (int l = 0; l < L * rf; l++) r->removed_neurons[l] = -1;
    for (int ol = 0; ol < o->n_layers; ol++) {
        const int l = pl->lmap[ol];
        /* heads: whole groups, or the same number from every group */
        memset(gone, 0, (size_t)H);
        if (p->kv_heads) {
            if ((st = rank_order(sc->kv + (size_t)l * KV, NULL, KV, ord))) goto out;
            for (int i = 0; i < p->kv_heads; i++)
                for (int h = 0; h < G; h++) gone[ord[i] * G + h] = 1;
        } else if (p->heads) {
            for (int g = 0; g < KV; g++) {
                if ((st = rank_order(sc->head + (size_t)l * H + (size_t)g * G, NULL, G, ord)))
                    goto out;
                for (int i = 0; i < p->heads / KV; i++) gone[g * G + ord[i]] = 1;
            }
        }
        for (int h = 0, j = 0, k = 0, kv = 0; h < H; h++) {
            if (gone[h]) r->removed_heads[(size_t)l * rh + k++] = h;
            else pl->qmap[(size_t)ol * o->n_heads + j++] = h;
            if (h % G == G - 1) { /* a group ends: kept if any of its heads is */
                int any = 0;
                for (int q = h - G + 1; q <= h; q++) any |= !gone[q];
                if (any) pl->kvmap[(size_t)ol * o->n_kv_heads + kv++] = h / G;
            }
        }
        /* neurons */
        memset(gone, 0, (size_t)F);
        if (rf) {
            if ((st = rank_order(sc->neuron + (size_t)l * F, sc->neuron2 ? sc->neuron2 +
                                 (size_t)l * F : NULL, F, ord)))
                goto out;
            for (int i = 0; i < rf; i++) gone[ord[i]] = 1;
        }
        for (int i = 0, j = 0, k = 0; i < F; i++) {
            if (gone[i]) r->removed_neurons[(size_t)l * rf + k++] = i;
            else pl->fmap[(size_t)ol * o->ffn_dim + j++] = i;
        }
    }
    qsort(r->removed_layers, (size_t)p->layers, sizeof(int32_t), cmp_i32);
out:
    sk_free(ord);
    sk_free(gone);
    return st;
}

/* The score of each residual dimension d: the L2 norm of the token embedding's column d (how
 * much every token writes into it), into sc->dim. */
static shrink_status dim_scores(const sk_source *src, const sk_wtensor *ts, int64_t n,
                                const sk_config *c, double *out) {
    const sk_wtensor *e = NULL;
    for (int64_t i = 0; i < n; i++)
        if (ts[i].role == SK_ROLE_TOK_EMB) e = &ts[i];
    if (!e || e->cols != c->dim)
        return sk_error(SHRINK_ERR_FORMAT, "structured pruning: no token embedding of width %d",
                        c->dim);
    float *w = sk_aligned_alloc(64, (size_t)(e->rows * e->cols) * sizeof(float));
    if (!w) return sk_error(SHRINK_ERR_NOMEM, "structured pruning: out of memory");
    shrink_status st = src->fill(src->user, e, 0, e->rows, 0, SHRINK_DTYPE_F32, w);
    for (int64_t d = 0; d < c->dim; d++) out[d] = 0.0;
    for (int64_t r = 0; !st && r < e->rows; r++)
        for (int64_t d = 0; d < c->dim; d++) out[d] += (double)w[r * c->dim + d] * w[r * c->dim + d];
    for (int64_t d = 0; d < c->dim; d++) out[d] = sqrt(out[d]);
    sk_free(w);
    return st;
}

static shrink_status config_params(const sk_config *c, int64_t *out) {
    sk_wtensor *ts;
    int64_t n, total = 0;
    shrink_status st = sk_wtensors(c, &ts, &n);
    if (st) return st;
    for (int64_t i = 0; i < n; i++) total += ts[i].rows * ts[i].cols;
    sk_free(ts);
    *out = total;
    return SHRINK_OK;
}

shrink_status shrink_prune_structured(const char *in, const char *out,
                                      const shrink_structured_params *p_in,
                                      shrink_structured_result *r) {
    shrink_structured_params def = shrink_structured_params_default();
    if (p_in) def = *p_in;
    if (def.n_layer_list > 0) def.layers = def.n_layer_list;
    const shrink_structured_params *p = &def;
    shrink_structured_result tmp;
    if (!r) r = &tmp;
    memset(r, 0, sizeof *r);
    if (!in || !*in || !out || !*out)
        return sk_error(SHRINK_ERR_ARG, "structured pruning: input and output paths are "
                        "required");
    const double t0 = shrink_time();
    splan pl;
    memset(&pl, 0, sizeof pl);
    sscores sc;
    memset(&sc, 0, sizeof sc);
    sfill f;
    memset(&f, 0, sizeof f);
    f.cur_role = -1;
    struct shrink_model *m = NULL;
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = p->tokenizer_path;
    shrink_status st = sk_model_open(&m, in, &lp);
    if (st) return st;
    const sk_config *c = &m->cfg;
    if ((st = check_structured(p, c, in))) goto out;
    pl.in = *c;
    const size_t L = (size_t)c->n_layers;
    sc.layer = sk_calloc(L, sizeof(double));
    sc.head = sk_calloc(L * (size_t)c->n_heads, sizeof(double));
    sc.kv = sk_calloc(L * (size_t)c->n_kv_heads, sizeof(double));
    sc.neuron = sk_calloc(L * (size_t)c->ffn_dim, sizeof(double));
    sc.dim = sk_calloc((size_t)c->dim, sizeof(double));
    if (p->by == SHRINK_RANK_SENSITIVITY)
        sc.neuron2 = sk_calloc(L * (size_t)c->ffn_dim, sizeof(double));
    if (!sc.layer || !sc.head || !sc.kv || !sc.neuron || !sc.dim ||
        (p->by == SHRINK_RANK_SENSITIVITY && !sc.neuron2)) {
        st = sk_error(SHRINK_ERR_NOMEM, "structured pruning: out of memory");
        goto out;
    }
    if ((st = compute_scores(in, p, c, &sc, &r->calib_tokens))) goto out;
    if (p->n_layer_list > 0) { /* the listed layers first, in model order */
        for (size_t l = 0; l < L; l++) {
            sc.layer[l] = 1.0 + (double)l;
            for (int32_t i = 0; i < p->n_layer_list; i++)
                if (p->layer_list[i] == (int32_t)l) sc.layer[l] = -1.0;
        }
    } else if (p->layer_scores) {
        memcpy(sc.layer, p->layer_scores, L * sizeof(double));
    }
    if ((st = sk_source_from_model(m, &f.base))) goto out;
    if ((st = sk_wtensors(&pl.in, &f.in_ts, &f.n_in))) goto out;
    if (p->dims && (st = dim_scores(&f.base, f.in_ts, f.n_in, c, sc.dim))) goto out;
    if ((st = make_plan(p, &sc, &pl, r))) goto out;
    if ((st = sk_config_validate(&pl.out, out))) goto out;
    if ((st = config_params(&pl.in, &r->params_in)) ||
        (st = config_params(&pl.out, &r->params_out)))
        goto out;
    /* write */
    f.pl = &pl;
    sk_source src = f.base;
    src.cfg = pl.out;
    src.cfg.rope_layout = f.base.cfg.rope_layout;
    src.fill = s_fill;
    src.dtype_of = s_dtype_of;
    src.user = &f;
    sk_write_opts wo = sk_write_opts_default();
    wo.dtype = p->dtype;
    wo.progress = write_progress;
    wo.progress_user = (void *)(uintptr_t)p;
    if ((st = sk_model_write_source(m, &src, out, sk_format_from_path(out), &wo))) goto out;

    r->n_layers_in = c->n_layers;
    r->n_heads_in = c->n_heads;
    r->n_kv_heads_in = c->n_kv_heads;
    r->ffn_dim_in = c->ffn_dim;
    r->n_layers = pl.out.n_layers;
    r->n_heads = pl.out.n_heads;
    r->n_kv_heads = pl.out.n_kv_heads;
    r->ffn_dim = pl.out.ffn_dim;
    r->dim_in = c->dim;
    r->dim = pl.out.dim;
    r->in_file_bytes = m->file_bytes;
    struct stat sb;
    if (stat(out, &sb) == 0 && S_ISREG(sb.st_mode)) r->out_file_bytes = (uint64_t)sb.st_size;
    r->seconds = shrink_time() - t0;
out:
    if (st) shrink_structured_result_free(r);
    else if (r == &tmp) shrink_structured_result_free(r);
    sk_free(sc.layer);
    sk_free(sc.head);
    sk_free(sc.kv);
    sk_free(sc.neuron);
    sk_free(sc.neuron2);
    sk_free(sc.dim);
    sk_free(f.in_ts);
    sk_free(f.buf);
    sk_free(f.sel);
    sk_free(f.tr);
    splan_free(&pl);
    shrink_model_free(m);
    return st;
}
