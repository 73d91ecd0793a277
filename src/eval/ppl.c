/*
 * ppl.c - perplexity of a token sequence.
 *
 * SHRINK_PPL_SLIDING is the Hugging Face guide "Perplexity of fixed-length models": windows
 * ids[begin, begin + ctx) for begin = 0, stride, 2 stride, ... until a window reaches the end;
 * each token i >= 1 is scored once, in the first window that reaches it, conditioned on the
 * tokens before it in that window (the first token of a window is never scored).
 * SHRINK_PPL_LLAMA_CPP is llama.cpp's llama-perplexity: non-overlapping chunks of ctx tokens,
 * each chunk's first token replaced by BOS (when the model uses one), only the tokens of the
 * second half scored (positions ctx/2 + 1 .. ctx - 1 of the chunk).
 *
 * Windows are evaluated in pieces of at most SK_PPL_PIECE tokens so the logits buffer stays
 * small even for a 50k vocabulary. The windows and pieces (ppl.h) are shared with
 * shrink_compare (compare.c), which scores several models on exactly these calls.
 */
#include "ppl.h"

#include <math.h>

shrink_ppl_params shrink_ppl_params_default(void) {
    shrink_ppl_params p = {.method = SHRINK_PPL_SLIDING, .n_ctx = 0, .stride = 0,
                           .progress = NULL, .user = NULL};
    return p;
}

double sk_mean_se(double sum, double sum2, int64_t n) {
    if (n < 2) return 0.0;
    double mean = sum / (double)n;
    double var  = (sum2 - sum * mean) / (double)(n - 1);
    return var > 0.0 ? sqrt(var / (double)n) : 0.0;
}

/* ==== windows and pieces (ppl.h) ========================================================== */

double sk_ppl_nll(const float *logits, int32_t V, int32_t target) {
    float mx = logits[0];
    for (int32_t i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    float sum = 0.0f; /* terms are <= 1: float sums of up to 1e6 terms lose < 1e-6 relative */
    #pragma omp simd reduction(+ : sum)
    for (int32_t i = 0; i < V; i++) sum += expf(logits[i] - mx);
    return log((double)sum) + mx - (double)logits[target];
}

double sk_logits_lse(const float *z, int32_t V) {
    float mx = -INFINITY;
    for (int32_t v = 0; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    double se = 0.0;
    for (int32_t v = 0; v < V; v++) se += expf(z[v] - mx);
    return mx + log(se);
}

double sk_logits_keep(const float *z, int32_t V, double lse, float *p) {
    double negent = 0.0;
    for (int32_t v = 0; v < V; v++) {
        const double lp = (double)z[v] - lse;
        p[v] = (float)exp(lp);
        negent += p[v] > 0 ? p[v] * lp : 0.0;
    }
    return negent;
}

double sk_logits_kl(const float *z, int32_t V, double lse, const float *p, double negent) {
    double pz = 0.0, ps = 0.0;
    for (int32_t v = 0; v < V; v++) {
        pz += (double)p[v] * z[v];
        ps += p[v];
    }
    return negent - (pz - ps * lse);
}

/* Window k's begin, len and j0. */
static void window_bounds(const sk_ppl_plan *p, int64_t k, sk_ppl_window *w) {
    w->begin = k * p->stride;
    if (p->method == SHRINK_PPL_LLAMA_CPP) {
        w->len = p->n_ctx;
        w->j0  = p->n_ctx / 2 + 1;
    } else {
        /* each token is scored in the first window that reaches it */
        int64_t end      = w->begin + p->n_ctx < p->n_ids ? w->begin + p->n_ctx : p->n_ids;
        int64_t prev_end = k == 0 ? 0
                         : (w->begin - p->stride + p->n_ctx < p->n_ids
                                ? w->begin - p->stride + p->n_ctx : p->n_ids);
        w->len = (int32_t)(end - w->begin);
        w->j0  = prev_end - w->begin > 1 ? (int32_t)(prev_end - w->begin) : 1;
    }
}

shrink_status sk_ppl_plan_make(sk_ppl_plan *p, const sk_config *c, int32_t ctx_cap,
                               shrink_ppl_method method, int32_t n_ctx, int32_t stride,
                               int64_t n_ids, int64_t max_tokens, const char *who) {
    memset(p, 0, sizeof *p);
    if (n_ctx <= 0) n_ctx = c->max_seq_len < 512 ? c->max_seq_len : 512;
    if (n_ctx > ctx_cap)
        return sk_error(SHRINK_ERR_ARG, "%s: window %d exceeds the context's %d tokens", who,
                        n_ctx, ctx_cap);
    if (n_ctx < 2) return sk_error(SHRINK_ERR_ARG, "%s: window %d < 2", who, n_ctx);
    if (stride <= 0) stride = n_ctx / 2;
    if (stride > n_ctx)
        return sk_error(SHRINK_ERR_ARG, "%s: stride %d exceeds the window %d", who, stride,
                        n_ctx);
    if (n_ids < 2)
        return sk_error(SHRINK_ERR_ARG, "%s: %" PRId64 " tokens: need >= 2", who, n_ids);
    p->method = method;
    p->n_ctx  = n_ctx;
    p->bos    = -1;
    if (method == SHRINK_PPL_LLAMA_CPP) {
        int64_t per = n_ctx - (n_ctx / 2 + 1); /* scored per chunk */
        p->stride   = n_ctx;
        p->windows  = n_ids / n_ctx;
        if (p->windows == 0)
            return sk_error(SHRINK_ERR_ARG, "%s: %" PRId64 " tokens, fewer than one chunk of %d "
                            "(llama.cpp method)", who, n_ids, n_ctx);
        if (max_tokens > 0 && per > 0 && (max_tokens + per - 1) / per < p->windows)
            p->windows = (max_tokens + per - 1) / per;
        p->n_ids  = p->windows * n_ctx;
        p->scored = p->windows * per;
        if (c->add_bos && c->bos_id >= 0) p->bos = c->bos_id;
    } else {
        p->stride = stride;
        p->n_ids  = max_tokens > 0 && max_tokens + 1 < n_ids ? max_tokens + 1 : n_ids;
        p->windows = p->n_ids <= n_ctx ? 1 : (p->n_ids - n_ctx + stride - 1) / stride + 1;
        /* every token after the first once, except that windows which do not overlap
         * (stride = n_ctx) leave their first token unscored */
        for (int64_t k = 0; k < p->windows; k++) {
            sk_ppl_window w;
            window_bounds(p, k, &w);
            p->scored += w.len - w.j0;
        }
    }
    return SHRINK_OK;
}

void sk_ppl_window_at(const sk_ppl_plan *p, int64_t k, const int32_t *ids, sk_ppl_window *w,
                      int32_t *win) {
    window_bounds(p, k, w);
    memcpy(win, ids + w->begin, (size_t)w->len * sizeof(int32_t));
    if (p->bos >= 0) win[0] = p->bos;
}

bool sk_ppl_piece_next(const sk_ppl_window *w, sk_ppl_piece *pc, bool first) {
    /* logits row i predicts win[i + 1]; rows j0-1 .. len-2 are needed */
    int32_t done = first ? 0 : pc->done + pc->T;
    if (done >= w->len - 1) return false;
    int32_t need_from = w->j0 - 1;
    pc->done = done;
    pc->T    = w->len - 1 - done < SK_PPL_PIECE ? w->len - 1 - done : SK_PPL_PIECE;
    pc->lo   = need_from > done ? need_from - done : 0; /* first needed row in piece */
    pc->nl   = pc->lo < pc->T ? pc->T - pc->lo : 0;
    return true;
}

/* ==== perplexity ========================================================================== */

/* Evaluates win[0..len) from position 0 and adds the NLL of win[j] for j in [j0, len). */
static shrink_status score_window(shrink_context *ctx, const int32_t *win,
                                  const sk_ppl_window *w, float *logits, int32_t V, double *nll,
                                  double *nll2, int64_t *scored) {
    sk_ppl_piece pc;
    for (bool more = sk_ppl_piece_next(w, &pc, true); more; more = sk_ppl_piece_next(w, &pc, false)) {
        shrink_status st = shrink_context_eval(ctx, win + pc.done, pc.T, pc.done,
                                               pc.nl ? logits : NULL, pc.nl ? pc.nl : 1);
        if (st != SHRINK_OK) return st;
        double sum = 0.0, sum2 = 0.0;
        #pragma omp parallel for schedule(static) reduction(+ : sum, sum2) if (pc.nl > 1)
        for (int32_t r = 0; r < pc.nl; r++) {
            double x = sk_ppl_nll(logits + (size_t)r * V, V, win[pc.done + pc.lo + r + 1]);
            sum += x;
            sum2 += x * x;
        }
        *nll += sum;
        *nll2 += sum2;
        *scored += pc.nl;
    }
    return SHRINK_OK;
}

shrink_status shrink_perplexity(shrink_context *ctx, const int32_t *ids, int64_t n_ids,
                                const shrink_ppl_params *params, shrink_ppl_result *res) {
    memset(res, 0, sizeof *res);
    shrink_ppl_params p = params ? *params : shrink_ppl_params_default();
    const struct shrink_model *m = sk_context_model(ctx);
    const int32_t V = m->cfg.vocab_size;
    sk_ppl_plan   plan;
    shrink_status st = sk_ppl_plan_make(&plan, &m->cfg, shrink_context_n_ctx(ctx), p.method,
                                        p.n_ctx, p.stride, n_ids, 0, "perplexity");
    if (st != SHRINK_OK) return st;

    float *logits = sk_malloc((size_t)SK_PPL_PIECE * (size_t)V * sizeof(float));
    int32_t *win = sk_malloc((size_t)plan.n_ctx * sizeof(int32_t));
    if (!logits || !win) {
        sk_free(logits);
        sk_free(win);
        return sk_error(SHRINK_ERR_NOMEM, "perplexity: out of memory");
    }
    double nll = 0.0, nll2 = 0.0, t0 = shrink_time();
    int64_t scored = 0, evaluated = 0;
    for (int64_t k = 0; k < plan.windows; k++) {
        sk_ppl_window w;
        sk_ppl_window_at(&plan, k, ids, &w, win);
        st = score_window(ctx, win, &w, logits, V, &nll, &nll2, &scored);
        if (st != SHRINK_OK) goto out_free;
        evaluated += w.len - 1;
        if (p.progress) p.progress(p.user, k + 1, plan.windows);
    }
    res->seconds = shrink_time() - t0;
    res->nll = scored ? nll / (double)scored : 0.0;
    res->ppl = exp(res->nll);
    res->nll_se = sk_mean_se(nll, nll2, scored);
    res->ppl_se = res->ppl * res->nll_se;
    res->tokens_scored = scored;
    res->n_tokens = n_ids;
    res->windows = plan.windows;
    res->tok_per_s = res->seconds > 0 ? (double)evaluated / res->seconds : 0.0;
out_free:
    sk_free(logits);
    sk_free(win);
    return st;
}
