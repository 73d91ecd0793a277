/*
 * lowrank.c - shrink_lowrank: every targeted matrix of a model replaced by its rank-r
 * approximation (svd.c), the product written back dense in the model's own shape (GGUF or a
 * Hugging Face folder), so every reader runs the result.
 *
 * In order:
 *   1. the parameters are checked (a rank, an energy or a ratio; the targets; a calibration
 *      text for asvd / whiten) and the model is opened for writing (sk_model_open);
 *   2. asvd / whiten: the model is loaded for decoding and run over the calibration tokens in
 *      windows from position 0, with an observer on the decoder (sk_context_set_observer)
 *      that accumulates for every layer the input statistics of its matrices: sum |x_j|
 *      (asvd) or X^T X (whiten; lower triangle) of the q/k/v input, the o input, the
 *      gate/up input and the down input. One pass with the original weights for all layers
 *      (ASVD and SVD-LLM calibrate on the original model). Memory for whiten: per layer
 *      3 dim^2 + ffn^2 doubles;
 *   3. the model is written through the format writers from a source wrapping the input's:
 *      a targeted matrix is read whole as f32 when the writer reaches it, truncated with its
 *      layer's metric, and served block by block; every other tensor passes through.
 */
#include "lowrank.h"

#include "../model/source.h"
#include "../model/layerwise.h"
#include "../eval/ppl.h"

#include <math.h>
#include <strings.h>
#include <sys/stat.h>

/* The calibrated inputs of a layer: q/k/v (and GPT-2's qkv) share one, gate/up another. */
enum { IN_ATTN, IN_O, IN_FFN, IN_DOWN, IN_COUNT };

static const char *const method_names[SHRINK_LOWRANK_COUNT] = {"svd", "asvd", "whiten"};

const char *shrink_lowrank_method_name(shrink_lowrank_method m) {
    return (unsigned)m < SHRINK_LOWRANK_COUNT ? method_names[m] : "?";
}

shrink_status shrink_lowrank_method_parse(const char *name, shrink_lowrank_method *out) {
    const int i = sk_name_find(method_names, SHRINK_LOWRANK_COUNT, name);
    if (i >= 0) {
        *out = (shrink_lowrank_method)i;
        return SHRINK_OK;
    }
    return sk_error(SHRINK_ERR_ARG, "unknown low-rank method '%s' (one of: svd, asvd, whiten)",
                    name ? name : "");
}

shrink_lowrank_params shrink_lowrank_params_default(void) {
    shrink_lowrank_params p = {.method = SHRINK_LOWRANK_SVD, .rank = 0, .energy = 0.0,
                               .ratio = 0.0, .targets = NULL, .calib_path = NULL,
                               .calib_tokens = 2048, .calib_ctx = 0, .alpha = 0.5,
                               .damp = 1e-3, .tokenizer_path = NULL, .dtype = -1,
                               .progress = NULL, .user = NULL, .factored = 0,
                               .choose = 0, .choose_tokens = 512};
    return p;
}

/* The target bit and calibrated input of a role; -1 if the role is not a target kind. */
enum { T_Q, T_K, T_V, T_O, T_GATE, T_UP, T_DOWN, T_COUNT };
static const char *const target_names[T_COUNT] = {"q", "k", "v", "o", "gate", "up", "down"};

static int role_target(sk_role r) {
    switch (r) {
    case SK_ROLE_WQ: case SK_ROLE_WQKV: return T_Q;
    case SK_ROLE_WK: return T_K;
    case SK_ROLE_WV: return T_V;
    case SK_ROLE_WO: return T_O;
    case SK_ROLE_W_GATE: return T_GATE;
    case SK_ROLE_W_UP: return T_UP;
    case SK_ROLE_W_DOWN: return T_DOWN;
    default: return -1;
    }
}

static int target_input(int t) {
    return t <= T_V ? IN_ATTN : t == T_O ? IN_O : t == T_DOWN ? IN_DOWN : IN_FFN;
}

/* "q,k,v,o,gate,up,down" (also q_proj, ..., and "all") into a bit mask. */
static shrink_status parse_targets(const char *s, unsigned *mask) {
    *mask = 0;
    if (!s || !*s || !strcasecmp(s, "all")) {
        *mask = (1u << T_COUNT) - 1;
        return SHRINK_OK;
    }
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n > 5 && !strncasecmp(p + n - 5, "_proj", 5)) n -= 5;
        int found = -1;
        for (int t = 0; t < T_COUNT; t++)
            if (strlen(target_names[t]) == n && !strncasecmp(p, target_names[t], n)) found = t;
        if (found < 0)
            return sk_error(SHRINK_ERR_ARG, "low-rank targets '%s': unknown target '%.*s' (q, k, "
                            "v, o, gate, up, down)", s, (int)n, p);
        *mask |= 1u << found;
        p = e ? e + 1 : p + strlen(p);
    }
    return SHRINK_OK;
}

/* ---- calibration ------------------------------------------------------------------------ */

typedef struct lcalib {
    int      L;
    int      whiten;
    int64_t  cols[IN_COUNT];
    double  *stat[IN_COUNT];   /* (L, cols) sum |x| or (L, cols, cols) X^T X (lower) */
    int64_t  n_tok[IN_COUNT];  /* tokens seen per input (layer 0) */
} lcalib;

static void lcalib_free(lcalib *c) {
    for (int i = 0; i < IN_COUNT; i++) sk_free(c->stat[i]);
    memset(c, 0, sizeof *c);
}

static void observe(void *user, int layer, sk_linear which, const float *X, int64_t T,
                    int64_t cols) {
    lcalib *c = user;
    int in;
    switch (which) {
    case SK_LIN_Q: in = IN_ATTN; break;
    case SK_LIN_O: in = IN_O; break;
    case SK_LIN_UP: in = IN_FFN; break;
    case SK_LIN_DOWN: in = IN_DOWN; break;
    default: return; /* K, V, gate: the same input as Q / up */
    }
    if (layer < 0 || layer >= c->L || !c->stat[in] || cols != c->cols[in]) return;
    if (layer == 0) c->n_tok[in] += T;
    if (!c->whiten) {
        double *s = c->stat[in] + (size_t)layer * (size_t)cols;
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < cols; j++) s[j] += fabs((double)X[t * cols + j]);
        return;
    }
    double *C = c->stat[in] + (size_t)layer * (size_t)(cols * cols);
    #pragma omp parallel for schedule(dynamic, 8) if (cols * cols * T > 1000000)
    for (int64_t a = 0; a < cols; a++) { /* row a of the lower triangle */
        double *ca = C + a * cols;
        for (int64_t t = 0; t < T; t++) {
            const float *xt = X + t * cols;
            const double xa = xt[a];
            if (xa != 0.0)
                for (int64_t b = 0; b <= a; b++) ca[b] += xa * (double)xt[b];
        }
    }
}

static shrink_status calibrate(const char *in, const shrink_lowrank_params *p, unsigned mask,
                               lcalib *c, int64_t *n_tokens) {
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = p->tokenizer_path;
    shrink_model *m = NULL;
    shrink_context *ctx = NULL;
    int32_t *ids = NULL;
    shrink_status st = shrink_model_load(&m, in, &lp);
    if (st) return st;
    const sk_config *cfg = &m->cfg;
    const int64_t want = p->calib_tokens > 0 ? p->calib_tokens : 2048;
    int64_t n_calib = 0;
    if ((st = sk_calib_tokens(m, p->calib_path, want, "--calib-tokens", &ids, &n_calib)))
        goto out;
    int32_t C = p->calib_ctx > 0 ? p->calib_ctx : (cfg->max_seq_len < 256 ? cfg->max_seq_len
                                                                          : 256);
    if (C > cfg->max_seq_len) {
        st = sk_error(SHRINK_ERR_ARG, "--calib-ctx %d exceeds the model's context of %d "
                      "positions", (int)C, (int)cfg->max_seq_len);
        goto out;
    }
    c->L = cfg->n_layers;
    c->whiten = p->method == SHRINK_LOWRANK_WHITEN;
    c->cols[IN_ATTN] = cfg->dim;
    c->cols[IN_O] = (int64_t)cfg->n_heads * cfg->head_dim;
    c->cols[IN_FFN] = cfg->dim;
    c->cols[IN_DOWN] = cfg->ffn_dim;
    for (int t = 0; t < T_COUNT; t++) {
        const int i = target_input(t);
        if (!(mask & (1u << t)) || c->stat[i]) continue;
        const size_t per = c->whiten ? (size_t)(c->cols[i] * c->cols[i]) : (size_t)c->cols[i];
        c->stat[i] = sk_calloc((size_t)c->L * per, sizeof(double));
        if (!c->stat[i]) {
            st = sk_error(SHRINK_ERR_NOMEM, "low-rank: out of memory for the activation "
                          "statistics (%d layers x %lld x %lld)", c->L, (long long)c->cols[i],
                          (long long)(c->whiten ? c->cols[i] : 1));
            goto out;
        }
    }
    if ((st = shrink_context_create(&ctx, m, C, C < 128 ? C : 128))) goto out;
    sk_context_set_observer(ctx, observe, c);
    for (int64_t w0 = 0; w0 < want && !st; w0 += C) {
        const int32_t n = (int32_t)(want - w0 < C ? want - w0 : C);
        st = shrink_context_eval(ctx, ids + w0, n, 0, NULL, 0);
        if (p->progress) p->progress(p->user, 0, w0 + n, want);
    }
    *n_tokens = want;
out:
    shrink_context_free(ctx);
    shrink_free(ids);
    shrink_model_free(m);
    return st;
}

/* The metric of input i of layer l: asvd scales, or the damped covariance (once per input). */
static shrink_status lcalib_finish(lcalib *c, const shrink_lowrank_params *p) {
    for (int i = 0; i < IN_COUNT; i++) {
        if (!c->stat[i]) continue;
        const int64_t n = c->cols[i];
        if (c->n_tok[i] <= 0)
            return sk_error(SHRINK_ERR_FORMAT, "low-rank: the calibration pass saw no input of "
                            "the %s matrices", i == IN_ATTN ? "attention" : i == IN_O ? "output"
                            : i == IN_FFN ? "FFN" : "down");
        for (int l = 0; l < c->L; l++) {
            if (!c->whiten) {
                double *s = c->stat[i] + (size_t)l * (size_t)n, mx = 0.0;
                for (int64_t j = 0; j < n; j++) {
                    s[j] = pow(s[j] / (double)c->n_tok[i], p->alpha);
                    mx = fmax(mx, s[j]);
                }
                for (int64_t j = 0; j < n; j++) /* dead channels: a small positive scale */
                    s[j] = mx > 0 ? fmax(s[j], 1e-6 * mx) : 1.0;
            } else {
                double *C = c->stat[i] + (size_t)l * (size_t)(n * n), tr = 0.0;
                for (int64_t j = 0; j < n; j++) tr += C[j * n + j];
                const double d = tr > 0 ? p->damp * tr / (double)n : 1.0;
                for (int64_t j = 0; j < n; j++) C[j * n + j] += d > 0 ? d : 1e-12;
            }
        }
    }
    return SHRINK_OK;
}

/* ---- the source of the output ----------------------------------------------------------- */

typedef struct lfill {
    const shrink_lowrank_params *p;
    sk_lr_rank   how;
    unsigned     mask;
    lcalib      *cal;
    sk_source    base;
    float       *buf;       /* the current matrix: f32 (rows x cols), truncated */
    float       *tr;        /* transposed rows */
    int64_t     *ranks;     /* per layer and target, the rank (0: dense), fixed before the
                               header is written: factored (plan_ranks) or chosen (choose) */
    int          factored;  /* store the factors */
    int          chosen;    /* ranks from the sensitivity chooser */
    double      *fy, *fz;   /* factored: the current matrix's factors (rows x k, k x cols) */
    float       *fab;       /* ... as f32: A (k x cols) then B (rows x k) */
    int64_t      cur_rank;  /* rank of the factors in fab, 0: none */
    int64_t      cur_cols;  /* cols of the current matrix */
    int          cur_role, cur_layer;
    shrink_lowrank_result *r;
    double       sum_energy, sum_err;
} lfill;

static shrink_status load_matrix(lfill *f, const sk_wtensor *t, int target) {
    const int64_t m = t->rows, n = t->cols;
    sk_free(f->buf);
    f->buf = sk_aligned_alloc(64, (size_t)(m * n) * sizeof(float));
    if (!f->buf) return sk_error(SHRINK_ERR_NOMEM, "low-rank: out of memory for '%s'", t->name);
    shrink_status st = f->base.fill(f->base.user, t, 0, m, 0, SHRINK_DTYPE_F32, f->buf);
    if (st) return st;
    f->cur_role = (int)t->role;
    f->cur_layer = t->layer;
    if (target < 0) return SHRINK_OK;
    sk_lr_metric met = {NULL, NULL};
    const int in = target_input(target);
    if (f->cal && f->cal->stat[in] && t->layer >= 0) {
        if (f->cal->cols[in] != n)
            return sk_error(SHRINK_ERR_FORMAT, "low-rank: '%s' has %lld inputs, its calibrated "
                            "input %lld", t->name, (long long)n, (long long)f->cal->cols[in]);
        const double *s = f->cal->stat[in] + (size_t)t->layer * (size_t)(f->cal->whiten ? n * n
                                                                                          : n);
        if (f->cal->whiten) met.cov = s;
        else met.scale = s;
    }
    sk_lr_out o;
    sk_lr_rank how = f->how;
    if (f->chosen) { /* the chooser's rank; 0: this matrix stays dense */
        const int64_t rk = f->ranks[t->layer * T_COUNT + target];
        if (!rk) {
            f->r->n_matrices++;
            f->r->n_dense++;
            f->r->params_target += m * n;
            f->r->params_lowrank += m * n;
            f->sum_energy += 1.0;
            f->cur_rank = 0;
            return SHRINK_OK;
        }
        how = (sk_lr_rank){.rank = rk, .energy = 0.0, .ratio = 0.0};
    }
    const int fact = f->factored && f->ranks && f->ranks[t->layer * T_COUNT + target] > 0;
    const int64_t k = m < n ? m : n;
    f->cur_rank = 0;
    if (fact) {
        sk_free(f->fy);
        sk_free(f->fz);
        sk_free(f->fab);
        f->fy = sk_malloc((size_t)(m * k) * sizeof(double));
        f->fz = sk_malloc((size_t)(k * n) * sizeof(double));
        f->fab = sk_aligned_alloc(64, (size_t)(k * (m + n)) * sizeof(float));
        if (!f->fy || !f->fz || !f->fab)
            return sk_error(SHRINK_ERR_NOMEM, "low-rank: out of memory for the factors of '%s'",
                            t->name);
    }
    if ((st = sk_lowrank_matrix(f->buf, m, n, &met, &how, f->buf, NULL, fact ? f->fy : NULL,
                                fact ? f->fz : NULL, &o))) {
        char why[256];
        snprintf(why, sizeof why, "%s", shrink_last_error());
        return sk_error(st, "'%s' (%lld x %lld): %s", t->name, (long long)m, (long long)n, why);
    }
    shrink_lowrank_result *r = f->r;
    const int first = r->n_matrices == r->n_dense && f->chosen; /* the chooser's dense: no rank */
    if (!r->n_matrices || first || o.rank < r->min_rank) r->min_rank = (int32_t)o.rank;
    if (!r->n_matrices || first || o.rank > r->max_rank) r->max_rank = (int32_t)o.rank;
    r->n_matrices++;
    r->params_target += m * n;
    if (o.dense) {
        r->n_dense++;
        r->params_lowrank += m * n;
    } else {
        r->params_lowrank += o.rank * (m + n);
    }
    if (fact) {
        if (o.dense || o.rank != f->ranks[t->layer * T_COUNT + target])
            return sk_error(SHRINK_ERR_RANGE, "low-rank: '%s' came out at rank %lld, planned "
                            "%lld", t->name, (long long)o.rank,
                            (long long)f->ranks[t->layer * T_COUNT + target]);
        for (int64_t i = 0; i < o.rank * n; i++) f->fab[i] = (float)f->fz[i];
        for (int64_t i = 0; i < m * o.rank; i++) f->fab[o.rank * n + i] = (float)f->fy[i];
        f->cur_rank = o.rank;
        f->cur_cols = n;
        r->n_factored++;
    }
    f->sum_energy += o.energy;
    f->sum_err += o.rel_err;
    return SHRINK_OK;
}

static int is_target(const lfill *f, const sk_wtensor *t) {
    const int tg = t->n_dims == 2 ? role_target(t->role) : -1;
    return tg >= 0 && (f->mask & (1u << tg)) ? tg : -1;
}

static shrink_status l_fill(void *user, const sk_wtensor *t, int64_t row0, int64_t n_rows,
                            int transposed, shrink_dtype dt, void *dst) {
    lfill *f = user;
    const int tg = is_target(f, t);
    if (tg < 0) return f->base.fill(f->base.user, t, row0, n_rows, transposed, dt, dst);
    shrink_status st;
    if ((int)t->role != f->cur_role || t->layer != f->cur_layer || !f->buf) {
        sk_wtensor d = *t; /* the whole matrix, whichever factor is asked for */
        if (t->factor) {
            d.factor = 0;
            d.rows = sk_tdim_value(&f->base.cfg, sk_trole_at(t->role)->rows);
            d.cols = sk_tdim_value(&f->base.cfg, sk_trole_at(t->role)->cols);
            d.name[strlen(d.name) - strlen(SK_LR_SUFFIX_A)] = 0;
        }
        if ((st = load_matrix(f, &d, tg))) return st;
    }
    if (!t->factor)
        return sk_source_serve_f32(f->buf, t, row0, n_rows, transposed, dt, dst, &f->tr,
                                   "low-rank");
    if (!f->cur_rank || (t->factor == 1 ? t->rows : t->cols) != f->cur_rank)
        return sk_error(SHRINK_ERR_RANGE, "low-rank: no factors of rank %lld for '%s'",
                        (long long)(t->factor == 1 ? t->rows : t->cols), t->name);
    /* fab: A (k x cols) then B (rows x k) */
    const float *w = t->factor == 1 ? f->fab : f->fab + f->cur_rank * (f->cur_cols);
    return sk_source_serve_f32(w, t, row0, n_rows, transposed, dt, dst, &f->tr, "low-rank");
}

static int64_t l_rank_of(void *user, const sk_wtensor *t) {
    lfill *f = user;
    const int tg = is_target(f, t);
    return tg >= 0 && t->layer >= 0 && !t->factor ? f->ranks[t->layer * T_COUNT + tg] : 0;
}

/* ---- the rank chooser: measured sensitivity, greedy allocation --------------------------- */

/* Candidate sizes of a matrix's factors, as fractions of its parameters (then dense). */
static const double choose_fracs[] = {0.3, 0.5, 0.7, 0.85};
enum { N_CAND = sizeof choose_fracs / sizeof choose_fracs[0] };

typedef struct cand {
    int64_t rank[N_CAND + 1];   /* last: dense (0) */
    int64_t cost[N_CAND + 1];   /* parameters */
    double  kl[N_CAND + 1];
    int     pick;
} cand;

typedef struct kpass {
    shrink_context *ctx;
    const int32_t  *ids;
    int64_t         n;
    int32_t         C;
    int             V;
    float          *logits;     /* (C, V) */
    float          *base_p;     /* (n, V) */
    double         *negent;     /* (n) */
} kpass;

/* One pass over the tokens: base (keep the distributions) or the mean KL from them. */
static shrink_status kl_pass(kpass *k, int base, double *kl_out) {
    double kl = 0.0;
    const int V = k->V;
    for (int64_t w0 = 0; w0 < k->n; w0 += k->C) {
        const int32_t wl = (int32_t)(k->n - w0 < k->C ? k->n - w0 : k->C);
        shrink_status st = shrink_context_eval(k->ctx, k->ids + w0, wl, 0, k->logits, wl);
        if (st) return st;
        #pragma omp parallel for reduction(+ : kl) schedule(static)
        for (int32_t t = 0; t < wl; t++) {
            const float *z = k->logits + (size_t)t * V;
            const double lse = sk_logits_lse(z, V);
            float *b = k->base_p + (size_t)(w0 + t) * V;
            if (base) k->negent[w0 + t] = sk_logits_keep(z, V, lse, b);
            else kl += sk_logits_kl(z, V, lse, b, k->negent[w0 + t]);
        }
    }
    if (kl_out) *kl_out = kl / (double)k->n;
    return SHRINK_OK;
}

/* Greedy allocation: every matrix starts at its smallest candidate; while the budget allows,
 * the upgrade (to any larger candidate of one matrix) of most KL saved per parameter added is
 * taken. Measured KL is made non-increasing in the size first (noise). */
static void allocate(cand *cs, int64_t n, int64_t budget) {
    int64_t used = 0;
    for (int64_t i = 0; i < n; i++) {
        for (int c = N_CAND - 1; c >= 0; c--)
            if (cs[i].kl[c] < cs[i].kl[c + 1]) cs[i].kl[c] = cs[i].kl[c + 1];
        cs[i].pick = 0;
        used += cs[i].cost[0];
    }
    for (;;) {
        double best = 0.0;
        int64_t bi = -1;
        int bc = -1;
        for (int64_t i = 0; i < n; i++)
            for (int c = cs[i].pick + 1; c <= N_CAND; c++) {
                const int64_t dc = cs[i].cost[c] - cs[i].cost[cs[i].pick];
                if (dc <= 0 || used + dc > budget) continue;
                const double gain = (cs[i].kl[cs[i].pick] - cs[i].kl[c]) / (double)dc;
                if (gain > best) {
                    best = gain;
                    bi = i;
                    bc = c;
                }
            }
        if (bi < 0) break;
        used += cs[bi].cost[bc] - cs[bi].cost[cs[bi].pick];
        cs[bi].pick = bc;
    }
}

/* The chooser: f->ranks from measured sensitivity under the budget p->ratio. */
static shrink_status choose_ranks(lfill *f, const char *in, const shrink_lowrank_params *p) {
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = p->tokenizer_path;
    shrink_model *m = NULL;
    int32_t *ids = NULL;
    kpass k;
    memset(&k, 0, sizeof k);
    cand *cs = NULL;
    float *W = NULL, *Wc = NULL;
    double *Y = NULL, *Z = NULL;
    shrink_status st = shrink_model_load(&m, in, &lp);
    if (st) return st;
    const sk_config *c = &m->cfg;
    const int64_t want = p->choose_tokens > 0 ? p->choose_tokens : 512;
    int64_t n_ids = 0;
    if ((st = sk_calib_tokens(m, p->calib_path, want, "--choose-tokens", &ids, &n_ids))) goto out;
    k.ids = ids;
    k.n = want;
    k.C = p->calib_ctx > 0 ? p->calib_ctx : (c->max_seq_len < 256 ? c->max_seq_len : 256);
    k.V = c->vocab_size;
    k.logits = sk_malloc((size_t)k.C * (size_t)k.V * sizeof(float));
    k.base_p = sk_malloc((size_t)k.n * (size_t)k.V * sizeof(float));
    k.negent = sk_malloc((size_t)k.n * sizeof(double));
    f->ranks = sk_calloc((size_t)c->n_layers * T_COUNT, sizeof *f->ranks);
    cs = sk_calloc((size_t)c->n_layers * T_COUNT, sizeof *cs);
    if (!k.logits || !k.base_p || !k.negent || !f->ranks || !cs) {
        st = sk_error(SHRINK_ERR_NOMEM, "low-rank: out of memory for the sensitivity pass "
                      "(%lld tokens x %d vocabulary)", (long long)k.n, k.V);
        goto out;
    }
    if ((st = shrink_context_create(&k.ctx, m, k.C, k.C < 128 ? k.C : 128))) goto out;
    if ((st = kl_pass(&k, 1, NULL))) goto out;
    int64_t total = 0, n_mat = 0, done = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int tg = 0; tg < T_COUNT; tg++) n_mat += (f->mask >> tg) & 1;
    for (int l = 0; l < c->n_layers && !st; l++) {
        int n_r;
        const sk_trole *roles = sk_troles(&n_r);
        for (int ri = 0; ri < n_r && !st; ri++) {
            const sk_trole *r = &roles[ri];
            const int tg = r->lowrank && r->bind == SK_TB_MAT ? role_target((sk_role)ri) : -1;
            if (tg < 0 || !(f->mask & (1u << tg)) || sk_trole_need(r, c) != 1) continue;
            sk_mat *mat = (sk_mat *)((uint8_t *)&m->layers[l] + r->off);
            if (sk_mat_lowrank(mat)) {
                st = sk_error(SHRINK_ERR_UNSUPPORTED, "%s: the input is already low-rank "
                              "factored", in);
                break;
            }
            const int64_t rows = mat->rows, cols = mat->cols, kk = rows < cols ? rows : cols;
            cand *cd = &cs[l * T_COUNT + tg];
            for (int ci = 0; ci < N_CAND; ci++) {
                int64_t rk = (int64_t)floor(choose_fracs[ci] * (double)rows * (double)cols /
                                            (double)(rows + cols));
                cd->rank[ci] = rk < 1 ? 1 : rk > kk ? kk : rk;
                cd->cost[ci] = cd->rank[ci] * (rows + cols);
            }
            cd->rank[N_CAND] = 0;
            cd->cost[N_CAND] = rows * cols;
            total += rows * cols;
            const int64_t rmax = cd->rank[N_CAND - 1];
            sk_free(W); sk_free(Wc); sk_free(Y); sk_free(Z);
            W = sk_aligned_alloc(64, (size_t)(rows * cols) * sizeof *W);
            Wc = sk_aligned_alloc(64, (size_t)(rows * cols) * sizeof *Wc);
            Y = sk_malloc((size_t)(rows * kk) * sizeof *Y);
            Z = sk_malloc((size_t)(kk * cols) * sizeof *Z);
            if (!W || !Wc || !Y || !Z) {
                st = sk_error(SHRINK_ERR_NOMEM, "low-rank: out of memory for a %lld x %lld "
                              "matrix", (long long)rows, (long long)cols);
                break;
            }
            for (int64_t i = 0; i < rows; i++) sk_mat_row_f32(mat, i, W + i * cols);
            sk_lr_metric met = {NULL, NULL};
            const int in_i = target_input(tg);
            if (f->cal && f->cal->stat[in_i]) {
                const double *sv = f->cal->stat[in_i] +
                                   (size_t)l * (size_t)(f->cal->whiten ? cols * cols : cols);
                if (f->cal->whiten) met.cov = sv;
                else met.scale = sv;
            }
            const sk_lr_rank how = {.rank = rmax, .energy = 0.0, .ratio = 0.0};
            sk_lr_out o;
            if ((st = sk_lowrank_matrix(W, rows, cols, &met, &how, Wc, NULL, Y, Z, &o))) break;
            const sk_mat keep = *mat;
            for (int ci = 0; ci < N_CAND && !st; ci++) {
                const int64_t rk = cd->rank[ci];
                if (o.dense || rk * (rows + cols) >= rows * cols) { /* not smaller: dense */
                    cd->rank[ci] = 0;
                    cd->cost[ci] = rows * cols;
                    cd->kl[ci] = 0.0;
                    continue;
                }
                /* the nested truncation: the first rk columns of Y, rows of Z */
                #pragma omp parallel for schedule(static)
                for (int64_t i = 0; i < rows; i++)
                    for (int64_t j = 0; j < cols; j++) {
                        double sum = 0.0;
                        for (int64_t q = 0; q < rk; q++) sum += Y[i * rmax + q] * Z[q * cols + j];
                        Wc[i * cols + j] = (float)sum;
                    }
                *mat = (sk_mat){.dtype = SHRINK_DTYPE_F32, .rows = rows, .cols = cols,
                                .data = Wc, .lr = NULL};
                st = kl_pass(&k, 0, &cd->kl[ci]);
                *mat = keep;
                f->r->choose_passes++;
            }
            if (p->progress) p->progress(p->user, 0, ++done, n_mat); /* matrices measured */
        }
    }
    if (st) goto out;
    allocate(cs, (int64_t)c->n_layers * T_COUNT, (int64_t)floor(p->ratio * (double)total));
    for (int64_t i = 0; i < (int64_t)c->n_layers * T_COUNT; i++) {
        f->ranks[i] = cs[i].rank[cs[i].pick];
        f->r->choose_kl_sum += cs[i].kl[cs[i].pick];
    }
    f->chosen = 1;
out:
    sk_free(W); sk_free(Wc); sk_free(Y); sk_free(Z);
    sk_free(cs);
    sk_free(k.logits);
    sk_free(k.base_p);
    sk_free(k.negent);
    shrink_context_free(k.ctx);
    shrink_free(ids);
    shrink_model_free(m);
    return st;
}

/* factored: the rank every targeted matrix is stored at (0: dense, its factors would not be
 * smaller), before the writer lists the tensors. A fixed rank or ratio gives it from the
 * shape (svd.c's rule); an energy needs the spectrum: each matrix is factored once here. */
static shrink_status plan_ranks(lfill *f, const sk_config *c) {
    if (f->chosen) return SHRINK_OK; /* the chooser's ranks (0: dense) */
    f->ranks = sk_calloc((size_t)c->n_layers * T_COUNT, sizeof *f->ranks);
    if (!f->ranks) return sk_error(SHRINK_ERR_NOMEM, "low-rank: out of memory");
    sk_wtensor *ts;
    int64_t n;
    shrink_status st = sk_wtensors(c, &ts, &n);
    if (st) return st;
    for (int64_t i = 0; i < n && !st; i++) {
        const int tg = is_target(f, &ts[i]);
        if (tg < 0 || ts[i].layer < 0 || !sk_trole_at(ts[i].role)->lowrank) continue;
        const int64_t m = ts[i].rows, nn = ts[i].cols, k = m < nn ? m : nn;
        int64_t r;
        if (f->how.rank) {
            r = f->how.rank;
        } else if (f->how.ratio != 0.0) {
            r = (int64_t)floor(f->how.ratio * (double)m * (double)nn / (double)(m + nn));
            r = r < 1 ? 1 : r > k ? k : r;
        } else {
            shrink_lowrank_result scratch_r;
            memset(&scratch_r, 0, sizeof scratch_r);
            shrink_lowrank_result *keep = f->r;
            f->r = &scratch_r;
            int64_t *ranks = f->ranks;
            f->ranks = NULL;
            st = load_matrix(f, &ts[i], tg);
            f->ranks = ranks;
            f->r = keep;
            r = scratch_r.n_dense ? k : scratch_r.max_rank;
            f->cur_role = -1;
        }
        f->ranks[ts[i].layer * T_COUNT + tg] = r * (m + nn) < m * nn ? r : 0;
    }
    sk_free(ts);
    return st;
}

static shrink_dtype l_dtype_of(void *user, const sk_wtensor *t) {
    lfill *f = user;
    return f->base.dtype_of ? f->base.dtype_of(f->base.user, t) : f->base.dtype;
}

static void write_progress(void *user, int64_t done, int64_t total) {
    const shrink_lowrank_params *p = user;
    if (p->progress) p->progress(p->user, 1, done, total);
}

/* Checks the rank choice against every targeted matrix before anything runs. */
static shrink_status check_params(const shrink_lowrank_params *p, const sk_config *c,
                                  unsigned mask, const char *in, sk_lr_rank *how) {
    if ((unsigned)p->method >= SHRINK_LOWRANK_COUNT)
        return sk_error(SHRINK_ERR_ARG, "low-rank: unknown method %d", (int)p->method);
    const int set = (p->rank != 0) + (p->energy != 0.0) + (p->ratio != 0.0);
    if (set != 1)
        return sk_error(SHRINK_ERR_ARG, "low-rank: give exactly one of a rank (--rank), an "
                        "energy (--energy) or a parameter ratio (--ratio)");
    if (p->rank < 0)
        return sk_error(SHRINK_ERR_ARG, "low-rank: rank %d is not positive", p->rank);
    if (p->energy != 0.0 && !(p->energy > 0.0 && p->energy <= 1.0))
        return sk_error(SHRINK_ERR_ARG, "low-rank: energy %g is not in (0, 1]", p->energy);
    if (p->ratio != 0.0 && !(p->ratio > 0.0 && p->ratio < 1.0))
        return sk_error(SHRINK_ERR_ARG, "low-rank: parameter ratio %g is not in (0, 1)",
                        p->ratio);
    if (p->method != SHRINK_LOWRANK_SVD && (!p->calib_path || !*p->calib_path))
        return sk_error(SHRINK_ERR_ARG, "low-rank %s needs a calibration text (--calib FILE)",
                        method_names[p->method]);
    if (p->method == SHRINK_LOWRANK_ASVD && !(p->alpha > 0.0 && p->alpha <= 4.0))
        return sk_error(SHRINK_ERR_ARG, "low-rank: asvd alpha %g is not in (0, 4]", p->alpha);
    if (p->method == SHRINK_LOWRANK_WHITEN && !(p->damp >= 0.0 && p->damp < 1.0))
        return sk_error(SHRINK_ERR_ARG, "low-rank: whitening damping %g is not in [0, 1)",
                        p->damp);
    how->rank = p->rank;
    how->energy = p->energy;
    how->ratio = p->ratio;
    sk_wtensor *ts;
    int64_t n;
    shrink_status st = sk_wtensors(c, &ts, &n);
    if (st) return st;
    int64_t targeted = 0;
    for (int64_t i = 0; i < n && !st; i++) {
        const int tg = ts[i].n_dims == 2 ? role_target(ts[i].role) : -1;
        if (tg < 0 || !(mask & (1u << tg))) continue;
        targeted++;
        const int64_t k = ts[i].rows < ts[i].cols ? ts[i].rows : ts[i].cols;
        if (p->rank > k)
            st = sk_error(SHRINK_ERR_ARG, "%s: rank %d is above min(rows, cols) = %lld of '%s' "
                          "(%lld x %lld)", in, p->rank, (long long)k, ts[i].name,
                          (long long)ts[i].rows, (long long)ts[i].cols);
    }
    sk_free(ts);
    if (!st && !targeted)
        st = sk_error(SHRINK_ERR_ARG, "%s: the model has none of the targeted matrices", in);
    return st;
}

shrink_status shrink_lowrank(const char *in, const char *out, const shrink_lowrank_params *p,
                             shrink_lowrank_result *r) {
    shrink_lowrank_params def = shrink_lowrank_params_default();
    if (!p) p = &def;
    shrink_lowrank_result tmp;
    if (!r) r = &tmp;
    memset(r, 0, sizeof *r);
    if (!in || !*in || !out || !*out)
        return sk_error(SHRINK_ERR_ARG, "low-rank: input and output paths are required");
    const double t0 = shrink_time();
    unsigned mask;
    shrink_status st = parse_targets(p->targets, &mask);
    if (st) return st;
    struct shrink_model *m = NULL;
    lcalib cal;
    memset(&cal, 0, sizeof cal);
    lfill f;
    memset(&f, 0, sizeof f);
    f.cur_role = -1;
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = p->tokenizer_path;
    if ((st = sk_model_open(&m, in, &lp))) return st;
    if ((st = check_params(p, &m->cfg, mask, in, &f.how))) goto out;
    if (p->method != SHRINK_LOWRANK_SVD) {
        if ((st = calibrate(in, p, mask, &cal, &r->calib_tokens))) goto out;
        if ((st = lcalib_finish(&cal, p))) goto out;
        f.cal = &cal;
    }
    if ((st = sk_source_from_model(m, &f.base))) goto out;
    f.p = p;
    f.mask = mask;
    f.r = r;
    if (p->choose) {
        if (!(p->ratio > 0.0) || !p->calib_path || !*p->calib_path) {
            st = sk_error(SHRINK_ERR_ARG, "low-rank: the sensitivity chooser (--choose "
                          "sensitivity) needs a parameter budget (--ratio P) and a calibration "
                          "text (--calib FILE)");
            goto out;
        }
        f.mask = mask;
        f.r = r;
        if ((st = choose_ranks(&f, in, p))) goto out;
    }
    f.factored = p->factored;
    if (p->factored) {
        if (sk_format_from_path(out) != SK_FORMAT_GGUF) {
            st = sk_error(SHRINK_ERR_UNSUPPORTED, "%s: factored storage (--store factored) is "
                          "written as GGUF only: name the output *.gguf, or use --store dense",
                          out);
            goto out;
        }
        if ((st = plan_ranks(&f, &m->cfg))) goto out;
    }
    sk_source src = f.base;
    src.fill = l_fill;
    src.dtype_of = l_dtype_of;
    src.rank_of = p->factored ? l_rank_of : NULL;
    src.rank_user = &f;
    src.user = &f;
    sk_write_opts wo = sk_write_opts_default();
    wo.dtype = p->dtype;
    wo.progress = write_progress;
    wo.progress_user = (void *)(uintptr_t)p;
    if ((st = sk_model_write_source(m, &src, out, sk_format_from_path(out), &wo))) goto out;
    if (r->n_matrices) {
        r->mean_energy = f.sum_energy / (double)r->n_matrices;
        r->mean_rel_err = f.sum_err / (double)r->n_matrices;
    }
    r->in_file_bytes = m->file_bytes;
    struct stat sb;
    if (stat(out, &sb) == 0 && S_ISREG(sb.st_mode)) r->out_file_bytes = (uint64_t)sb.st_size;
    r->seconds = shrink_time() - t0;
out:
    if (st) memset(r, 0, sizeof *r);
    lcalib_free(&cal);
    sk_free(f.buf);
    sk_free(f.tr);
    sk_free(f.ranks);
    sk_free(f.fy);
    sk_free(f.fz);
    sk_free(f.fab);
    shrink_model_free(m);
    return st;
}
