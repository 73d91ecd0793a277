/*
 * layerwise.h - the layer-by-layer calibration pass shared by the methods that adjust each
 * linear layer from statistics of its inputs (Wanda and SparseGPT in src/prune, GPTQ in
 * src/quant), as their papers do, and by those that only observe (the importance matrix):
 * the calibration tokens (windows of n_ctx tokens, each from position 0, in batches of
 * n_batch) are embedded once, and the residual stream of every token is kept (n x dim
 * floats); then for layer l = 0, 1, ... layer l alone runs over the stream with an observer
 * that accumulates, for the inputs of layer l's matrices, the sum of x^2 per input column
 * (diag) or the Hessian H = sum_t x_t x_t^T; the caller's layer function changes layer l's
 * matrices (sk_bind_linear), and layer l runs again, as changed, to give the stream layer
 * l + 1 reads — so each layer is calibrated on the outputs of the already changed layers.
 * The arithmetic is that of shrink_context_eval on the same windows (the same bytes as a
 * whole-model forward per layer). Memory: the stream, one layer's statistics (four D x D /
 * F x F Hessians) and one layer's weights: the mapped pages of a finished layer are dropped
 * (sk_map_release), so a model far larger than memory streams from its mapping. Time: two
 * passes of one layer per layer.
 */
#ifndef SK_MODEL_LAYERWISE_H
#define SK_MODEL_LAYERWISE_H

#include "model.h"

/* The calibrated inputs of a layer: q/k/v (and GPT-2's qkv) share one, gate/up another. */
enum { SK_IN_ATTN, SK_IN_O, SK_IN_FFN, SK_IN_DOWN, SK_IN_COUNT };

/* The calibrated input of a role (SK_IN_*), -1 for roles that are not a layer's matrices. */
SK_HIDDEN int sk_role_input(sk_role r);

/* The first `want` tokens of the calibration text at `path`, encoded with m's tokenizer
 * (*ids_out: shrink_free). A text giving fewer tokens (the message says how many it gave and
 * names `opt`, the user's option), not UTF-8, or ids outside m's vocabulary is an error naming
 * `path`. */
SK_HIDDEN shrink_status sk_calib_tokens(const shrink_model *m, const char *path, int64_t want,
                                        const char *opt, int32_t **ids_out, int64_t *n_out);

/* Binds the matrix of `role` in layer `layer` of the decoding model m to w (rows x cols of
 * dtype dt, not copied: it must live while m is used); GPT-2's fused qkv is split by rows. */
SK_HIDDEN void sk_bind_linear(struct shrink_model *m, sk_role role, int layer, shrink_dtype dt,
                              int64_t rows, int64_t cols, const void *w);

typedef shrink_status (*sk_layer_fn)(void *user, struct shrink_model *m, int layer,
                                     double *const stat[SK_IN_COUNT],
                                     const int64_t cols[SK_IN_COUNT]);

typedef struct sk_layerwise {
    shrink_model   *model;
    const int32_t  *ids;
    int64_t         n;          /* tokens */
    int32_t         n_ctx;      /* 0: min(max_seq_len, 512) */
    int32_t         n_batch;    /* tokens per step of a window: 0: min(n_ctx, 128) */
    int             diag;       /* 1: sum x^2 per column; 0: H (full, symmetric) */
    int             packed;     /* diag 0: H as its upper triangle packed by rows (hessian.h:
                                   half the memory) */
    sk_layer_fn     layer;      /* called once per layer with the statistics (may change them);
                                   NULL: no statistics, `observe` sees one pass per layer */
    sk_observe_fn   observe;    /* with layer NULL: the observer of every layer's pass (user) */
    shrink_status (*after)(void *user, int layer); /* with layer NULL: called after each
                                   layer's pass (may be NULL) */
    int             head;       /* 1 (diag 0 only): then once more with layer = n_layers and in
                                   stat[SK_IN_ATTN] the Hessian of the output head's input */
    void          (*progress)(void *user, int64_t done, int64_t total); /* layers done */
    void           *user;
    /* ranks (H only): ids / n are this rank's share of the windows, contiguous and in order;
     * each window's sums start from zero and are added to H in window order (also in one
     * process), a rank other than 0 keeping each of its windows' sums apart until comm's
     * ordered sum adds them to the running total of the ranks before it, so every rank gets
     * one process's H bit for bit. Memory there: one set of the four H per window of its
     * share. NULL or one rank: one process. */
    const struct shrink_train_comm *comm;
} sk_layerwise;

/* The whole pass. */
SK_HIDDEN shrink_status sk_layerwise_run(const sk_layerwise *w);

/* The same pass a layer at a time, for callers that consume each layer's result as it comes
 * (quantize writes a GPTQ'd layer before the next is calibrated): begin embeds the tokens;
 * each step runs the next layer (sk_layerwise_next; sk_layerwise_count in all, the head
 * counted); end frees (safe on NULL). w is copied; its ids must live until end. */
typedef struct sk_lw_state sk_lw_state;
SK_HIDDEN shrink_status sk_layerwise_begin(const sk_layerwise *w, sk_lw_state **out);
SK_HIDDEN shrink_status sk_layerwise_step(sk_lw_state *s);
SK_HIDDEN int sk_layerwise_next(const sk_lw_state *s);
SK_HIDDEN int sk_layerwise_count(const sk_lw_state *s);
SK_HIDDEN void sk_layerwise_end(sk_lw_state *s);

#endif /* SK_MODEL_LAYERWISE_H */
