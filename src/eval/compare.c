/*
 * compare.c - shrink_compare: perplexity, KL divergence from a base model and top-1 agreement of
 * several models on one token sequence, evaluated in lockstep.
 *
 * The windows and the evaluation calls are shrink_perplexity's (ppl.h): for each window, for
 * each piece of it, the base is evaluated, then every model on the same tokens, and the rows of
 * logits are compared at once, so nothing is kept between pieces but one KL value per scored
 * token and model (for the percentile). The statistics are those of llama-perplexity
 * --kl-divergence (llama.cpp, tools/perplexity): mean KL(P_base || P_model), its 99th
 * percentile and maximum, and the share of positions where both models' most likely tokens
 * agree ("same top p").
 *
 * Per scored row, with l the base's logits and m the model's (V = vocabulary):
 *     e_v     = exp(l_v - max l)                    (SIMD exp kernel, float)
 *     Z       = sum_v e_v,  lse_l = max l + log Z   (sums in double)
 *     KL      = sum_v (e_v / Z) (l_v - m_v) - lse_l + lse_m
 * which is sum_v p_v (log p_v - log q_v) written without forming log-probabilities in float:
 * identical logits give exactly 0; a value just below 0 (rounding) counts as 0. The NLL of every model (the base included) is
 * shrink_perplexity's function (sk_ppl_nll) on the same logits, so perplexities agree with it.
 */
#include "ppl.h"

#include <math.h>
#include <omp.h>

shrink_compare_params shrink_compare_params_default(void) {
    shrink_compare_params p = {.method = SHRINK_PPL_SLIDING, .n_ctx = 0, .stride = 0,
                               .max_tokens = 0, .progress = NULL, .user = NULL};
    return p;
}

/* ==== one row of logits =================================================================== */

typedef struct row_stats {
    float   mx;      /* max logit */
    int32_t argmax;  /* first index of the max */
    double  z;       /* sum_v exp(l_v - mx) */
    double  lse;     /* log sum_v exp(l_v) */
} row_stats;

/* Statistics of logits l[0..V); e[0..V) gets exp(l_v - mx). */
static void row_stats_of(const sk_kernel_set *ks, const float *l, int32_t V, float *e,
                         row_stats *s) {
    float   mx = l[0];
    int32_t am = 0;
    for (int32_t v = 1; v < V; v++)
        if (l[v] > mx) {
            mx = l[v];
            am = v;
        }
    memcpy(e, l, (size_t)V * sizeof(float));
    ks->exp_sum_f32(e, V, mx);
    double z = 0.0;
    #pragma omp simd reduction(+ : z)
    for (int32_t v = 0; v < V; v++) z += (double)e[v];
    s->mx     = mx;
    s->argmax = am;
    s->z      = z;
    s->lse    = (double)mx + log(z);
}

/* KL(P_l || P_m) from the base row's e (= exp(l - mx_l)) and stats, and the model row m. */
static double row_kl(const float *l, const float *e, const row_stats *sl, const float *m,
                     const row_stats *sm, int32_t V) {
    double s = 0.0;
    #pragma omp simd reduction(+ : s)
    for (int32_t v = 0; v < V; v++) s += (double)e[v] * ((double)l[v] - (double)m[v]);
    double kl = s / sl->z - sl->lse + sm->lse;
    /* >= 0 in exact arithmetic; rounding can give -1e-12. NaN stays NaN (never a perfect 0). */
    return kl < 0.0 ? 0.0 : kl;
}

/* ==== the comparison ====================================================================== */

typedef struct cmp_state {
    const sk_kernel_set *ks;
    int32_t    V;
    int32_t    n_threads;
    float     *base;      /* [SK_PPL_PIECE, V] base logits of the piece */
    float     *base_e;    /* [SK_PPL_PIECE, V] exp(l - max) of the base rows */
    row_stats *base_st;   /* [SK_PPL_PIECE] */
    float     *logits;    /* [SK_PPL_PIECE, V] a model's logits */
    float     *scratch;   /* [n_threads, V] */
    double    *row_nll;   /* [SK_PPL_PIECE] */
    double    *row_kl;    /* [SK_PPL_PIECE] */
    int32_t   *row_same;  /* [SK_PPL_PIECE] */
    int32_t   *row_bad;   /* [SK_PPL_PIECE] index + 1 of a non-finite logit of the row, or 0 */
} cmp_state;

static void cmp_free(cmp_state *s) {
    sk_free(s->base);
    sk_free(s->base_e);
    sk_free(s->base_st);
    sk_free(s->logits);
    sk_free(s->scratch);
    sk_free(s->row_nll);
    sk_free(s->row_kl);
    sk_free(s->row_same);
    sk_free(s->row_bad);
}

static shrink_status cmp_alloc(cmp_state *s, int32_t V) {
    size_t rows = (size_t)SK_PPL_PIECE * (size_t)V;
    memset(s, 0, sizeof *s);
    sk_kernels_init();
    s->ks        = sk_kernels();
    s->V         = V;
    s->n_threads = omp_get_max_threads();
    s->base      = sk_malloc(rows * sizeof(float));
    s->base_e    = sk_malloc(rows * sizeof(float));
    s->base_st   = sk_malloc(SK_PPL_PIECE * sizeof(row_stats));
    s->logits    = sk_malloc(rows * sizeof(float));
    s->scratch   = sk_malloc((size_t)s->n_threads * (size_t)V * sizeof(float));
    s->row_nll   = sk_malloc(SK_PPL_PIECE * sizeof(double));
    s->row_kl    = sk_malloc(SK_PPL_PIECE * sizeof(double));
    s->row_same  = sk_malloc(SK_PPL_PIECE * sizeof(int32_t));
    s->row_bad   = sk_malloc(SK_PPL_PIECE * sizeof(int32_t));
    if (!s->base || !s->base_e || !s->base_st || !s->logits || !s->scratch || !s->row_nll ||
        !s->row_kl || !s->row_same || !s->row_bad) {
        cmp_free(s);
        return sk_error(SHRINK_ERR_NOMEM, "compare: out of memory (%d x %d logits)",
                        SK_PPL_PIECE, V);
    }
    return SHRINK_OK;
}

/* Every model must score the same tokens with the same vocabulary as the base. */
static shrink_status cmp_check(shrink_context *const *ctxs, int32_t n, int32_t n_ctx) {
    const struct shrink_model *b = sk_context_model(ctxs[0]);
    for (int32_t i = 0; i < n; i++) {
        const struct shrink_model *m = sk_context_model(ctxs[i]);
        if (m->cfg.vocab_size != b->cfg.vocab_size)
            return sk_error(SHRINK_ERR_ARG, "compare: %s has a vocabulary of %d tokens, the base "
                            "%s %d: the KL divergence needs the same vocabulary", m->path,
                            m->cfg.vocab_size, b->path, b->cfg.vocab_size);
        if (m->cfg.bos_id != b->cfg.bos_id || m->cfg.add_bos != b->cfg.add_bos)
            return sk_error(SHRINK_ERR_ARG, "compare: %s has BOS %d (add_bos %d), the base %s "
                            "BOS %d (add_bos %d): the models would not read the same tokens",
                            m->path, m->cfg.bos_id, m->cfg.add_bos, b->path, b->cfg.bos_id,
                            b->cfg.add_bos);
        if (shrink_context_n_ctx(ctxs[i]) < n_ctx)
            return sk_error(SHRINK_ERR_ARG, "compare: the context of %s holds %d tokens, the "
                            "window is %d", m->path, shrink_context_n_ctx(ctxs[i]), n_ctx);
    }
    return SHRINK_OK;
}

/* 1 + the first index of a NaN or infinite value of l[0..V), or 0 if all are finite. */
static int32_t first_nonfinite(const float *l, int32_t V) {
    for (int32_t v = 0; v < V; v++)
        if (!isfinite(l[v])) return v + 1;
    return 0;
}

/* A model whose logits are not all finite fails the comparison (its statistics would be NaN,
 * and a clamp or a max could turn them into a perfect score). */
static shrink_status check_rows(const cmp_state *s, shrink_context *ctx, const float *rows,
                                const sk_ppl_piece *pc) {
    for (int32_t r = 0; r < pc->nl; r++)
        if (s->row_bad[r]) {
            float x = rows[(size_t)r * s->V + (size_t)(s->row_bad[r] - 1)];
            return sk_error(SHRINK_ERR_RANGE, "compare: %s gives a non-finite logit (%s for "
                            "token id %d at position %d): its weights or activations hold NaN "
                            "or overflow, so it cannot be compared", sk_context_model(ctx)->path,
                            isnan(x) ? "NaN" : x > 0 ? "+Inf" : "-Inf", s->row_bad[r] - 1,
                            pc->done + pc->lo + r);
        }
    return SHRINK_OK;
}

/* The base's piece: logits into s->base, row statistics, NLL of each row. */
static shrink_status eval_base(cmp_state *s, shrink_context *ctx, const int32_t *win,
                               const sk_ppl_piece *pc) {
    shrink_status st = shrink_context_eval(ctx, win + pc->done, pc->T, pc->done,
                                           pc->nl ? s->base : NULL, pc->nl ? pc->nl : 1);
    if (st != SHRINK_OK || pc->nl == 0) return st;
    const int32_t V = s->V;
    #pragma omp parallel for schedule(static) if (pc->nl > 1)
    for (int32_t r = 0; r < pc->nl; r++) {
        const float *l = s->base + (size_t)r * V;
        s->row_bad[r] = first_nonfinite(l, V);
        row_stats_of(s->ks, l, V, s->base_e + (size_t)r * V, &s->base_st[r]);
        s->row_nll[r] = sk_ppl_nll(l, V, win[pc->done + pc->lo + r + 1]);
    }
    return check_rows(s, ctx, s->base, pc);
}

/* A model's piece: NLL, KL from the base and top-1 agreement of each row. */
static shrink_status eval_model(cmp_state *s, shrink_context *ctx, const int32_t *win,
                                const sk_ppl_piece *pc) {
    shrink_status st = shrink_context_eval(ctx, win + pc->done, pc->T, pc->done,
                                           pc->nl ? s->logits : NULL, pc->nl ? pc->nl : 1);
    if (st != SHRINK_OK || pc->nl == 0) return st;
    const int32_t V = s->V;
    #pragma omp parallel for schedule(static) if (pc->nl > 1)
    for (int32_t r = 0; r < pc->nl; r++) {
        const float *l = s->base + (size_t)r * V;
        const float *m = s->logits + (size_t)r * V;
        row_stats    sm;
        s->row_bad[r] = first_nonfinite(m, V);
        row_stats_of(s->ks, m, V, s->scratch + (size_t)omp_get_thread_num() * V, &sm);
        s->row_nll[r]  = sk_ppl_nll(m, V, win[pc->done + pc->lo + r + 1]);
        s->row_kl[r]   = row_kl(l, s->base_e + (size_t)r * V, &s->base_st[r], m, &sm, V);
        s->row_same[r] = sm.argmax == s->base_st[r].argmax;
    }
    return check_rows(s, ctx, s->logits, pc);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The p-quantile (0..1) of x[0..n), sorted in place: linear interpolation between the closest
 * ranks (numpy's default). */
static double quantile(double *x, int64_t n, double p) {
    if (n == 0) return 0.0;
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    double  pos = p * (double)(n - 1);
    int64_t lo  = (int64_t)pos;
    if (lo >= n - 1) return x[n - 1];
    return x[lo] + (pos - (double)lo) * (x[lo + 1] - x[lo]);
}

/* Mean and sample variance of x[0..n) (two passes). */
static void mean_var(const double *x, int64_t n, double *mean, double *var) {
    double m = 0.0, v = 0.0;
    for (int64_t t = 0; t < n; t++) m += x[t];
    m = n ? m / (double)n : 0.0;
    for (int64_t t = 0; t < n; t++) v += (x[t] - m) * (x[t] - m);
    *mean = m;
    *var  = n > 1 ? v / (double)(n - 1) : 0.0;
}

/* The standard errors of shrink_compare_result from the per-token KL x[], NLL y[] and the
 * base's NLL yb[] (n tokens; same = tokens with the base's top-1); base = results[0], whose
 * nll_se is set first (i = 0 comes first). */
static void errors_of(const double *x, const double *y, const double *yb, int64_t n,
                      shrink_compare_result *r, const shrink_compare_result *base, int64_t same) {
    double my, vy, mb, vb, mx, vx, cov = 0.0;
    mean_var(y, n, &my, &vy);
    mean_var(yb, n, &mb, &vb);
    mean_var(x, n, &mx, &vx);
    for (int64_t t = 0; t < n; t++) cov += (y[t] - my) * (yb[t] - mb);
    cov = n > 1 ? cov / (double)(n - 1) : 0.0;
    double ppl = exp(my), ppl_b = exp(mb), dn = n > 0 ? (double)n : 1.0;
    double p   = n ? (double)same / (double)n : 1.0;
    double v   = (ppl * ppl * vy + ppl_b * ppl_b * vb - 2.0 * ppl * ppl_b * cov) / dn;
    r->nll_se       = sqrt(vy / dn);
    r->ppl_se       = ppl * r->nll_se;
    r->dppl         = r == base ? 0.0 : ppl - ppl_b;
    r->dppl_se      = r == base || v <= 0.0 ? 0.0 : sqrt(v);
    r->kl_mean_se   = sqrt(vx / dn);
    r->top1_same_se = n > 1 ? sqrt(p * (1.0 - p) / (double)(n - 1)) : 0.0;
}

shrink_status shrink_compare_stats(const double *pt, int32_t n, int64_t scored,
                                   shrink_compare_result *res) {
    if (n < 1 || scored < 0 || !res || (scored > 0 && !pt))
        return sk_error(SHRINK_ERR_ARG, "compare: statistics of %d models over %lld tokens", n,
                        (long long)scored);
    double *x = sk_malloc((size_t)(scored ? scored : 1) * sizeof(double));
    if (!x) return sk_error(SHRINK_ERR_NOMEM, "compare: out of memory (%" PRId64 " tokens)",
                            scored);
    const size_t S = (size_t)scored;
    for (int32_t i = 0; i < n; i++) {
        const double *kl = pt + (size_t)(3 * i) * S, *nll = kl + S, *sm = nll + S;
        double nsum = 0.0, ksum = 0.0, same = 0.0;
        for (size_t t = 0; t < S; t++) {   /* token order, from 0: shrink_compare's sums */
            nsum += nll[t];
            ksum += kl[t];
            same += sm[t];
        }
        memcpy(x, kl, S * sizeof(double));
        errors_of(x, nll, pt + S, scored, &res[i], &res[0], (int64_t)same);
        res[i].tokens_scored = scored;
        res[i].nll           = scored ? nsum / (double)scored : 0.0;
        res[i].ppl           = exp(res[i].nll);
        res[i].kl_mean       = scored ? ksum / (double)scored : 0.0;
        res[i].top1_same     = scored ? same / (double)scored : 1.0;
        res[i].kl_p99        = quantile(x, scored, 0.99);   /* sorts x */
        res[i].kl_max        = scored ? x[scored - 1] : 0.0;
    }
    sk_free(x);
    return SHRINK_OK;
}

shrink_status shrink_compare(shrink_context *const *ctxs, int32_t n, const int32_t *ids,
                             int64_t n_ids, const shrink_compare_params *params,
                             shrink_compare_result *res) {
    if (n < 1 || !ctxs || !res)
        return sk_error(SHRINK_ERR_ARG, "compare: %d models: need the base at least", n);
    memset(res, 0, (size_t)n * sizeof *res);
    shrink_compare_params      p = params ? *params : shrink_compare_params_default();
    const struct shrink_model *b = sk_context_model(ctxs[0]);
    sk_ppl_plan                plan;
    shrink_status st = sk_ppl_plan_make(&plan, &b->cfg, shrink_context_n_ctx(ctxs[0]), p.method,
                                        p.n_ctx, p.stride, n_ids, p.max_tokens, "compare");
    if (st != SHRINK_OK || (st = cmp_check(ctxs, n, plan.n_ctx)) != SHRINK_OK) return st;

    /* the share of the windows: [k0, k1) */
    int64_t k0 = 0, k1 = plan.windows;
    if (p.n_shards > 1) {
        if (p.shard < 0 || p.shard >= p.n_shards)
            return sk_error(SHRINK_ERR_ARG, "compare: shard %d of %d", p.shard, p.n_shards);
        k0 = plan.windows * p.shard / p.n_shards;
        k1 = plan.windows * (p.shard + 1) / p.n_shards;
    }
    cmp_state s;
    if ((st = cmp_alloc(&s, b->cfg.vocab_size)) != SHRINK_OK) return st;
    /* per model i: KL, NLL, same-top-1 of every scored token, at (3 i + 0, 1, 2) x scored */
    const size_t S   = (size_t)plan.scored;
    int32_t     *win = sk_malloc((size_t)plan.n_ctx * sizeof(int32_t));
    double      *tok = sk_malloc((size_t)(3 * n) * (S ? S : 1) * sizeof(double));
    if (!win || !tok) {
        st = sk_error(SHRINK_ERR_NOMEM, "compare: out of memory (%" PRId64 " tokens x %d "
                      "models)", plan.scored, n);
        goto out_free;
    }
    int64_t scored = 0;
    for (int64_t k = k0; k < k1; k++) {
        sk_ppl_window w;
        sk_ppl_piece  pc;
        sk_ppl_window_at(&plan, k, ids, &w, win);
        for (bool more = sk_ppl_piece_next(&w, &pc, true); more;
             more = sk_ppl_piece_next(&w, &pc, false)) {
            for (int32_t i = 0; i < n; i++) {
                double t0 = shrink_time();
                st = i == 0 ? eval_base(&s, ctxs[0], win, &pc) : eval_model(&s, ctxs[i], win, &pc);
                if (st != SHRINK_OK) goto out_free;
                double *t = tok + (size_t)(3 * i) * S + (size_t)scored;
                for (int32_t r = 0; r < pc.nl; r++) {
                    t[r]         = i == 0 ? 0.0 : s.row_kl[r];
                    t[S + r]     = s.row_nll[r];
                    t[2 * S + r] = i == 0 ? 1.0 : s.row_same[r];
                }
                res[i].seconds += shrink_time() - t0;
            }
            scored += pc.nl;
        }
        if (p.progress) p.progress(p.user, k + 1 - k0, k1 - k0);
    }
    SHRINK_ASSERT(p.n_shards > 1 ? scored <= plan.scored : scored == plan.scored);
    if (scored < plan.scored)   /* a share: the arrays packed to its tokens */
        for (int32_t i = 0; i < 3 * n; i++)
            memmove(tok + (size_t)i * (size_t)scored, tok + (size_t)i * S,
                    (size_t)scored * sizeof(double));
    if ((st = shrink_compare_stats(tok, n, scored, res))) goto out_free;
    for (int32_t i = 0; i < n; i++) {
        res[i].windows       = k1 - k0;
        res[i].windows_total = plan.windows;
        res[i].n_tokens = plan.n_ids;
    }
    if (p.per_token) {
        *p.per_token = tok;
        tok = NULL;
    }
out_free:
    sk_free(win);
    sk_free(tok);
    cmp_free(&s);
    return st;
}
