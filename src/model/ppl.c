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
 * small even for a 50k vocabulary.
 */
#include "model.h"

#include <math.h>

#define SK_PPL_PIECE 128

shrink_ppl_params shrink_ppl_params_default(void) {
    shrink_ppl_params p = {.method = SHRINK_PPL_SLIDING, .n_ctx = 0, .stride = 0,
                           .progress = NULL, .user = NULL};
    return p;
}

/* -log softmax(logits)[target] in double. */
static double nll_of(const float *logits, int32_t V, int32_t target) {
    float mx = logits[0];
    for (int32_t i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    float sum = 0.0f; /* terms are <= 1: float sums of up to 1e6 terms lose < 1e-6 relative */
    #pragma omp simd reduction(+ : sum)
    for (int32_t i = 0; i < V; i++) sum += expf(logits[i] - mx);
    return log((double)sum) + mx - (double)logits[target];
}

/* Evaluates win[0..len) from position 0 and adds the NLL of win[j] for j in [j0, len). */
static shrink_status score_window(shrink_context *ctx, const int32_t *win, int32_t len,
                                  int32_t j0, float *logits, int32_t V, double *nll,
                                  int64_t *scored) {
    /* logits row i predicts win[i + 1]; rows j0-1 .. len-2 are needed */
    int32_t need_from = j0 - 1;
    for (int32_t done = 0; done < len - 1;) {
        int32_t T = len - 1 - done < SK_PPL_PIECE ? len - 1 - done : SK_PPL_PIECE;
        int32_t lo = need_from > done ? need_from - done : 0; /* first needed row in piece */
        int32_t nl = lo < T ? T - lo : 0;
        shrink_status st = shrink_context_eval(ctx, win + done, T, done, nl ? logits : NULL,
                                               nl ? nl : 1);
        if (st != SHRINK_OK) return st;
        double sum = 0.0;
        #pragma omp parallel for schedule(static) reduction(+ : sum) if (nl > 1)
        for (int32_t r = 0; r < nl; r++)
            sum += nll_of(logits + (size_t)r * V, V, win[done + lo + r + 1]);
        *nll += sum;
        *scored += nl;
        done += T;
    }
    return SHRINK_OK;
}

shrink_status shrink_perplexity(shrink_context *ctx, const int32_t *ids, int64_t n_ids,
                                const shrink_ppl_params *params, shrink_ppl_result *res) {
    memset(res, 0, sizeof *res);
    shrink_ppl_params p = params ? *params : shrink_ppl_params_default();
    const struct shrink_model *m = sk_context_model(ctx);
    const sk_config *c = &m->cfg;
    const int32_t V = c->vocab_size;
    int32_t n_ctx = p.n_ctx > 0 ? p.n_ctx : (c->max_seq_len < 512 ? c->max_seq_len : 512);
    if (n_ctx > shrink_context_n_ctx(ctx))
        return sk_error(SHRINK_ERR_ARG, "perplexity: window %d exceeds the context's %d tokens",
                        n_ctx, shrink_context_n_ctx(ctx));
    if (n_ctx < 2) return sk_error(SHRINK_ERR_ARG, "perplexity: window %d < 2", n_ctx);
    int32_t stride = p.stride > 0 ? p.stride : n_ctx / 2;
    if (stride > n_ctx)
        return sk_error(SHRINK_ERR_ARG, "perplexity: stride %d exceeds the window %d", stride,
                        n_ctx);
    if (n_ids < 2) return sk_error(SHRINK_ERR_ARG, "perplexity: %" PRId64 " tokens: need >= 2",
                                   n_ids);

    float *logits = sk_malloc((size_t)SK_PPL_PIECE * (size_t)V * sizeof(float));
    int32_t *win = sk_malloc((size_t)n_ctx * sizeof(int32_t));
    if (!logits || !win) {
        sk_free(logits);
        sk_free(win);
        return sk_error(SHRINK_ERR_NOMEM, "perplexity: out of memory");
    }
    shrink_status st = SHRINK_OK;
    double nll = 0.0, t0 = shrink_time();
    int64_t scored = 0, evaluated = 0, windows = 0, total;

    if (p.method == SHRINK_PPL_LLAMA_CPP) {
        total = n_ids / n_ctx;
        if (total == 0) {
            st = sk_error(SHRINK_ERR_ARG, "perplexity: %" PRId64 " tokens, fewer than one "
                          "chunk of %d (llama.cpp method)", n_ids, n_ctx);
            goto out_free;
        }
        for (int64_t k = 0; k < total; k++) {
            memcpy(win, ids + k * n_ctx, (size_t)n_ctx * sizeof(int32_t));
            if (c->add_bos && c->bos_id >= 0) win[0] = c->bos_id;
            st = score_window(ctx, win, n_ctx, n_ctx / 2 + 1, logits, V, &nll, &scored);
            if (st != SHRINK_OK) goto out_free;
            evaluated += n_ctx - 1;
            windows++;
            if (p.progress) p.progress(p.user, windows, total);
        }
    } else {
        total = n_ids <= n_ctx ? 1 : (n_ids - n_ctx + stride - 1) / stride + 1;
        int64_t prev_end = 0;
        for (int64_t begin = 0;; begin += stride) {
            int64_t end = begin + n_ctx < n_ids ? begin + n_ctx : n_ids;
            int32_t len = (int32_t)(end - begin);
            int32_t j0 = prev_end - begin > 1 ? (int32_t)(prev_end - begin) : 1;
            st = score_window(ctx, ids + begin, len, j0, logits, V, &nll, &scored);
            if (st != SHRINK_OK) goto out_free;
            evaluated += len - 1;
            windows++;
            if (p.progress) p.progress(p.user, windows, total);
            prev_end = end;
            if (end == n_ids) break;
        }
    }
    res->seconds = shrink_time() - t0;
    res->nll = scored ? nll / (double)scored : 0.0;
    res->ppl = exp(res->nll);
    res->tokens_scored = scored;
    res->n_tokens = n_ids;
    res->windows = windows;
    res->tok_per_s = res->seconds > 0 ? (double)evaluated / res->seconds : 0.0;
out_free:
    sk_free(logits);
    sk_free(win);
    return st;
}
