/*
 * model.h - the in-memory model: configuration, weights, file tensors (the types they are made
 * of, and the tensor table, are in formats/tensors.h).
 *
 * Shapes (stated once): D = dim (hidden size), L = n_layers, H = n_heads, KV = n_kv_heads,
 * hd = head_dim, F = ffn_dim (intermediate size), V = vocab_size, S = max_seq_len.
 *
 * One decoder serves every architecture: GPT-2 and Llama are rows of the architecture table
 * (arch.c) and the decoder branches on row/config fields, never on the architecture's name.
 * Weight matrices are views in (out, in) row-major layout: mmap'd when the file already is
 * in that layout and dtype, owned copies otherwise (GPT-2's Conv1D weights are transposed at
 * load; norms and biases are always widened to f32).
 */
#ifndef SK_MODEL_H
#define SK_MODEL_H

#include "../core/core.h"
#include "../kernels/kernels.h"
#include "../formats/formats.h" /* sk_files; sk_arch, sk_config, sk_layer, sk_tensor, the tensor table */

#include <stddef.h>

struct shrink_tokenizer;

struct shrink_model {
    union {                    /* what the format readers fill (formats.h) */
        sk_files files;
        struct { SK_FILES_FIELDS };
    };
    const char  *format;       /* "llama2c", "safetensors" */
    char        *path;         /* what was loaded */
    sk_mat       tok_emb;      /* (V, D) */
    sk_mat       pos_emb;      /* (S, D) learned positions, data NULL for RoPE */
    const float *final_norm;   /* (D) */
    const float *final_norm_b; /* (D) or NULL */
    sk_mat       head;         /* (V, D); == tok_emb when tied */
    sk_layer    *layers;       /* L of them */

    int64_t      n_params;     /* elements of the tensors bound to the fields above */
    uint64_t     weight_bytes; /* bytes of the matrices and vectors the decoder reads */

    struct sk_lora *lora;      /* adapters applied at run time (lora.h), NULL if none */

    void       **owned;        /* buffers owned by the model (converted weights) */
    int          n_owned;
    int          cap_owned;
};

/* The weights outside the layers are laid out as sk_globals (the tensor table's offsets). */
#define SK_GLOBAL_AT(f) (offsetof(struct shrink_model, f) - offsetof(struct shrink_model, tok_emb))
_Static_assert(SK_GLOBAL_AT(pos_emb) == offsetof(sk_globals, pos_emb) &&
               SK_GLOBAL_AT(final_norm) == offsetof(sk_globals, final_norm) &&
               SK_GLOBAL_AT(final_norm_b) == offsetof(sk_globals, final_norm_b) &&
               SK_GLOBAL_AT(head) == offsetof(sk_globals, head),
               "the model's global weights must match the tensor table's offsets");

/* Registers a buffer for release by shrink_model_free. Returns buf, or NULL (and frees buf)
 * if registering fails. */
SK_HIDDEN void *sk_model_own(struct shrink_model *m, void *buf);

/* SHRINK_ERR_FORMAT naming the file and the first tensor holding NaN or Inf (f32/f16/bf16
 * bits; quantized tensors dequantized row by row), else OK. `allow` (may be NULL) ends the
 * message: how the caller's user proceeds anyway ("--allow-nonfinite loads the model
 * anyway"). */
SK_HIDDEN shrink_status sk_model_check_finite(const struct shrink_model *m, const char *allow);
/* Exact zeros of tensor t's values (dequantized rows: a sparse type's unstored positions
 * count; finite.c); -1 if a row buffer cannot be had. */
SK_HIDDEN int64_t sk_tensor_zeros(const sk_tensor *t);
/* 1 if p points into one of m's mapped files (whose pages sk_map_release may drop), 0 if it
 * is heap memory. */
SK_HIDDEN int sk_model_in_mapping(const struct shrink_model *m, const void *p);

/* The model a context runs. */
SK_HIDDEN const struct shrink_model *sk_context_model(const shrink_context *x);

/* The linear layers of the decoder, as observers see them (GPT-2's fused q|k|v is SK_LIN_Q,
 * K and V share its input). */
typedef enum sk_linear {
    SK_LIN_Q, SK_LIN_K, SK_LIN_V, SK_LIN_O, SK_LIN_GATE, SK_LIN_UP, SK_LIN_DOWN,
    SK_LIN_HEAD, /* the output head (layer -1), observed only for tokens whose logits are asked */
    SK_LIN_RESID, /* not a product: the residual stream (T, D) entering layer l (l = n_layers:
                     leaving the last layer); block influence of structured pruning */
    SK_LIN_COUNT
} sk_linear;

/* Called before each matrix product with its input X (T, cols) f32, row-major; the calls of
 * one forward pass come from one thread, in order (calibration: shrink_quantize w8a8_static). */
typedef void (*sk_observe_fn)(void *user, int layer, sk_linear which, const float *X,
                              int64_t T, int64_t cols);
/* Sets (fn non-NULL) or clears the observer of a context. Costs one test per product when
 * unset. */
SK_HIDDEN void sk_context_set_observer(shrink_context *x, sk_observe_fn fn, void *user);

/* ---- one layer at a time (layerwise.c: calibration that holds one layer's weights) ----
 * A context whose cache holds a single layer: sk_context_layer runs any layer l on a residual
 * stream the caller keeps, with the same arithmetic as shrink_context_eval for the same
 * batches (T <= n_batch tokens at positions pos.., the batches of a window in order, since
 * layer l's keys and values of earlier positions are read from the cache). */
SK_HIDDEN shrink_status sk_context_create_layer(shrink_context **out, const shrink_model *model,
                                                int32_t n_ctx, int32_t n_batch);
/* The token (+ position) embedding of T tokens at positions pos.. into out (T x dim). */
SK_HIDDEN shrink_status sk_context_embed(shrink_context *x, const int32_t *tokens, int32_t T,
                                         int32_t pos, float *out);
/* Layer l on in (T x dim) into out (may be NULL: only the observer sees the layer). */
SK_HIDDEN shrink_status sk_context_layer(shrink_context *x, int l, const float *in, float *out,
                                         int32_t T, int32_t pos);
/* The final norm of in (T x dim), shown to the observer as the head's input (SK_LIN_HEAD). */
SK_HIDDEN shrink_status sk_context_head_input(shrink_context *x, const float *in, int32_t T);

/* The tokens of the calibration text at `path` for model m (its tokenizer; BOS first when the
 * model adds one): the whole text (want 0), or at least `want` of them from a prefix long
 * enough (the tokens of a prefix equal the whole text's except near the cut, which is
 * dropped); fewer when the whole text has fewer. A text that is not UTF-8 is an error. */
SK_HIDDEN shrink_status sk_calib_encode(const shrink_model *m, const char *path, int64_t want,
                                        int32_t **ids, size_t *n);

#endif /* SK_MODEL_H */
