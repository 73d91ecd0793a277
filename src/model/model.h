/*
 * model.h - the in-memory model: configuration, architecture row, weights, tensor table.
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

typedef enum sk_norm_kind { SK_NORM_RMS, SK_NORM_LAYER } sk_norm_kind;
typedef enum sk_ffn_kind { SK_FFN_SWIGLU, SK_FFN_GELU_TANH } sk_ffn_kind;
typedef enum sk_pos_kind { SK_POS_ROPE, SK_POS_LEARNED } sk_pos_kind;
typedef enum sk_rope_layout {
    SK_ROPE_HALF,        /* Hugging Face rotate-half: pairs (i, i + hd/2) */
    SK_ROPE_INTERLEAVED, /* llama2.c / GGUF: pairs (2i, 2i + 1) */
} sk_rope_layout;
typedef enum sk_names {
    SK_NAMES_LLAMA, /* model.embed_tokens, model.layers.N.self_attn.q_proj, ... */
    SK_NAMES_GPT2,  /* [transformer.]wte, h.N.attn.c_attn (Conv1D, fused q|k|v), ... */
} sk_names;

/* One row per architecture (arch.c). */
typedef struct sk_arch {
    const char  *name;        /* "llama", "gpt2" */
    sk_norm_kind norm;
    sk_ffn_kind  ffn;
    sk_pos_kind  pos;
    int          norm_bias;   /* LayerNorm has a bias */
    int          mlp_bias;    /* FFN linear layers have biases */
    int          out_bias;    /* attention output projection has a bias */
    int          qkv_bias;    /* q/k/v projections have biases by default (GPT-2, Qwen2) */
    int          tied;        /* default of tie_word_embeddings */
    sk_names     names;       /* tensor naming scheme of Hugging Face files */
} sk_arch;

SK_HIDDEN const sk_arch *sk_arch_find(const char *name); /* NULL if unknown */
SK_HIDDEN const sk_arch *sk_arch_at(int i);              /* row i, NULL past the end */

typedef struct sk_config {
    const sk_arch *arch;
    int32_t        dim;
    int32_t        n_layers;
    int32_t        n_heads;
    int32_t        n_kv_heads;
    int32_t        head_dim;
    int32_t        ffn_dim;
    int32_t        vocab_size;
    int32_t        max_seq_len;
    float          norm_eps;
    float          rope_theta;
    sk_rope_layout rope_layout;
    int            tied;       /* output head shares the token embedding */
    int            qkv_bias;   /* attention q/k/v biases (GPT-2, Qwen2) */
    int32_t        bos_id;     /* -1 if none */
    int32_t        eos_id;
    int            add_bos;    /* texts get BOS prepended (Llama: yes, GPT-2: no) */
} sk_config;

/* Checks a config for values the decoder cannot run; the message names the field and the
 * source (`what`, e.g. the config.json path). */
SK_HIDDEN shrink_status sk_config_validate(const sk_config *c, const char *what);

typedef struct sk_layer {
    const float *attn_norm;    /* (D) */
    const float *attn_norm_b;  /* (D) or NULL */
    sk_mat       wq;           /* (H*hd, D) */
    sk_mat       wk;           /* (KV*hd, D) */
    sk_mat       wv;           /* (KV*hd, D) */
    const float *bq;           /* (H*hd) or NULL */
    const float *bk;           /* (KV*hd) or NULL */
    const float *bv;           /* (KV*hd) or NULL */
    sk_mat       wo;           /* (D, H*hd) */
    const float *bo;           /* (D) or NULL */
    const float *ffn_norm;     /* (D) */
    const float *ffn_norm_b;   /* (D) or NULL */
    sk_mat       w_gate;       /* (F, D) SwiGLU only */
    sk_mat       w_up;         /* (F, D) */
    const float *b_up;         /* (F) or NULL */
    sk_mat       w_down;       /* (D, F) */
    const float *b_down;       /* (D) or NULL */
} sk_layer;

/* A tensor as stored in the file, for `shrink info` and the writers. */
typedef struct sk_tensor {
    char        *name;
    shrink_dtype dtype;
    int32_t      n_dims;
    int64_t      shape[4];
    uint64_t     bytes;
    const void  *data;         /* view into a mapping */
} sk_tensor;

struct shrink_tokenizer;

struct shrink_model {
    sk_config    cfg;
    const char  *format;       /* "llama2c", "safetensors" */
    char        *path;         /* what was loaded */
    sk_mat       tok_emb;      /* (V, D) */
    sk_mat       pos_emb;      /* (S, D) learned positions, data NULL for RoPE */
    const float *final_norm;   /* (D) */
    const float *final_norm_b; /* (D) or NULL */
    sk_mat       head;         /* (V, D); == tok_emb when tied */
    sk_layer    *layers;       /* L of them */

    sk_tensor   *tensors;      /* file tensors, in file order */
    int64_t      n_tensors;
    int64_t      n_params;     /* elements of the tensors bound to the fields above */
    uint64_t     file_bytes;
    uint64_t     weight_bytes; /* bytes of the matrices and vectors the decoder reads */

    sk_map      *maps;         /* mapped files */
    int          n_maps;
    void       **owned;        /* buffers owned by the model (converted weights) */
    int          n_owned;
    int          cap_owned;

    struct shrink_tokenizer *tok; /* NULL if none */
};

/* Registers a buffer for release by shrink_model_free. Returns buf, or NULL (and frees buf)
 * if registering fails. */
SK_HIDDEN void *sk_model_own(struct shrink_model *m, void *buf);

/* SHRINK_ERR_FORMAT naming the first tensor holding NaN or Inf (f32/f16/bf16), else OK. */
SK_HIDDEN shrink_status sk_model_check_finite(const struct shrink_model *m);

/* The model a context runs. */
SK_HIDDEN const struct shrink_model *sk_context_model(const shrink_context *x);

/* The linear layers of the decoder, as observers see them (GPT-2's fused q|k|v is SK_LIN_Q,
 * K and V share its input). */
typedef enum sk_linear {
    SK_LIN_Q, SK_LIN_K, SK_LIN_V, SK_LIN_O, SK_LIN_GATE, SK_LIN_UP, SK_LIN_DOWN,
    SK_LIN_HEAD, /* the output head (layer -1), observed only for tokens whose logits are asked */
    SK_LIN_COUNT
} sk_linear;

/* Called before each matrix product with its input X (T, cols) f32, row-major; the calls of
 * one forward pass come from one thread, in order (calibration: shrink_quantize w8a8_static). */
typedef void (*sk_observe_fn)(void *user, int layer, sk_linear which, const float *X,
                              int64_t T, int64_t cols);
/* Sets (fn non-NULL) or clears the observer of a context. Costs one test per product when
 * unset. */
SK_HIDDEN void sk_context_set_observer(shrink_context *x, sk_observe_fn fn, void *user);

#endif /* SK_MODEL_H */
