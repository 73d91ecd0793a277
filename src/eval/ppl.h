/*
 * ppl.h - the windows and pieces of the perplexity methods, shared by shrink_perplexity (ppl.c)
 * and shrink_compare (compare.c) so that both score exactly the same tokens with exactly the
 * same evaluation calls (a model's perplexity in `shrink compare` equals `shrink ppl`'s).
 *
 * A plan cuts ids[0..n_ids) into windows; window k is ids[begin, begin + len) (for the llama.cpp
 * method with its first token replaced by BOS), of which positions j0 .. len-1 are scored. A
 * window is evaluated from position 0 in pieces of at most SK_PPL_PIECE tokens (the logits
 * buffer stays [SK_PPL_PIECE, V]); piece rows lo .. T-1 predict win[done + lo + 1 ..].
 */
#ifndef SK_PPL_H
#define SK_PPL_H

#include "../model/model.h"

#define SK_PPL_PIECE 128

typedef struct sk_ppl_plan {
    shrink_ppl_method method;
    int32_t           n_ctx;     /* window length */
    int32_t           stride;    /* sliding step (= n_ctx for the llama.cpp method) */
    int64_t           n_ids;     /* tokens used (after a max_tokens limit) */
    int64_t           windows;   /* windows in all */
    int64_t           scored;    /* tokens scored in all */
    int32_t           bos;       /* llama.cpp method: first token of each chunk, -1: kept */
} sk_ppl_plan;

typedef struct sk_ppl_window {
    int64_t begin;  /* ids[begin, begin + len) */
    int32_t len;
    int32_t j0;     /* first scored position of the window (>= 1) */
} sk_ppl_window;

/* One evaluation call of a window: tokens win[done, done + T) at positions done.., logits of
 * rows lo .. T-1 (nl = T - lo of them; nl = 0: no logits needed). */
typedef struct sk_ppl_piece {
    int32_t done;
    int32_t T;
    int32_t lo;
    int32_t nl;
} sk_ppl_piece;

/* Plans the windows of `method` over n_ids tokens for a model with config c and a context of
 * ctx_cap positions; n_ctx 0 = min(model context, 512), stride 0 = n_ctx / 2; max_tokens > 0
 * keeps only the tokens needed to score that many (sliding: the first max_tokens + 1 tokens,
 * so exactly max_tokens scored when the windows overlap, a few less with stride = n_ctx;
 * llama.cpp: whole chunks, at least max_tokens when the text has them). Errors name the bad
 * value. */
SK_HIDDEN shrink_status sk_ppl_plan_make(sk_ppl_plan *p, const sk_config *c, int32_t ctx_cap,
                                         shrink_ppl_method method, int32_t n_ctx, int32_t stride,
                                         int64_t n_ids, int64_t max_tokens, const char *who);
/* Window k (0 <= k < p->windows); copies its tokens to win[0..len) (BOS first for llama.cpp). */
SK_HIDDEN void sk_ppl_window_at(const sk_ppl_plan *p, int64_t k, const int32_t *ids,
                                sk_ppl_window *w, int32_t *win);
/* The first piece of a window (done = 0), then the next one; false past the end. */
SK_HIDDEN bool sk_ppl_piece_next(const sk_ppl_window *w, sk_ppl_piece *pc, bool first);
/* KL of next-token distributions against a kept base (structured pruning's sensitivity, shrink
 * plan). lse: log sum exp of a logits row (max + log of the double sum of expf). keep: p[0..V)
 * = softmax(z) as float, returns sum p log p. kl: KL(p || softmax(z)) for p kept by keep
 * (negent its return value) = negent - (sum p z - sum p * lse); may be slightly negative from
 * rounding. */
SK_HIDDEN double sk_logits_lse(const float *z, int32_t V);
SK_HIDDEN double sk_logits_keep(const float *z, int32_t V, double lse, float *p);
SK_HIDDEN double sk_logits_kl(const float *z, int32_t V, double lse, const float *p,
                              double negent);
/* -log softmax(logits)[target] in double (float sum of the exponentials). */
SK_HIDDEN double sk_ppl_nll(const float *logits, int32_t V, int32_t target);

/* Standard error of the mean of n values from their sum and sum of squares: sample sd /
 * sqrt(n); 0 for n < 2. */
SK_HIDDEN double sk_mean_se(double sum, double sum2, int64_t n);

#endif /* SK_PPL_H */
