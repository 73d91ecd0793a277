/*
 * layerwise.h - the layer-by-layer calibration pass shared by the methods that adjust each
 * linear layer from statistics of its inputs (Wanda and SparseGPT in src/prune, GPTQ in
 * src/quant), as their papers do: for layer l = 0, 1, ... the model runs over the
 * calibration tokens (windows of n_ctx tokens, each from position 0) with an observer that
 * accumulates, for the inputs of layer l's matrices, the sum of x^2 per input column (diag)
 * or the Hessian H = sum_t x_t x_t^T; then the caller's layer function changes layer l's
 * matrices (sk_bind_linear), so that layer l + 1 is calibrated on the outputs of the already
 * changed layers. Memory: the model as loaded plus one layer's statistics (four D x D / F x F
 * Hessians); the forward of layer l reruns layers 0..l (L (L + 1) / 2 layer passes in all).
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
    int             diag;       /* 1: sum x^2 per column; 0: H (full, symmetric) */
    sk_layer_fn     layer;      /* called once per layer with the statistics (may change them) */
    int             head;       /* 1 (diag 0 only): then once more with layer = n_layers and in
                                   stat[SK_IN_ATTN] the Hessian of the output head's input */
    void          (*progress)(void *user, int64_t done, int64_t total); /* layers done */
    void           *user;
} sk_layerwise;

SK_HIDDEN shrink_status sk_layerwise_run(const sk_layerwise *w);

#endif /* SK_MODEL_LAYERWISE_H */
