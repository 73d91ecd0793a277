/*
 * tensors.h - what a model is made of, stated once: the architecture row (arch.c), the
 * configuration, the in-memory weights of a layer and the tensors of a file.
 *
 * Shapes (stated once): D = dim (hidden size), L = n_layers, H = n_heads, KV = n_kv_heads,
 * hd = head_dim, F = ffn_dim (intermediate size), V = vocab_size, S = max_seq_len.
 */
#ifndef SK_TENSORS_H
#define SK_TENSORS_H

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

#endif /* SK_TENSORS_H */
