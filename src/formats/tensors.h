/*
 * tensors.h - what a model is made of, stated once: the architecture row (arch.c), the
 * configuration, the in-memory weights of a layer, and THE tensor table (tensors.c): one row
 * per tensor role with its shape in config terms, when it exists, its names in every file
 * format, its on-disk layout, where the loader puts it and how `init` fills it.
 *
 * Shapes (stated once): D = dim (hidden size), L = n_layers, H = n_heads, KV = n_kv_heads,
 * hd = head_dim, F = ffn_dim (intermediate size), V = vocab_size, S = max_seq_len,
 * Q = H * hd, KVD = KV * hd, QKV = Q + 2 * KVD.
 *
 * The loader, the writers (GGUF, Hugging Face, llama2.c), init, quantize and training iterate
 * the table; architecture differences are fields of the architecture row, never name tests.
 * A new tensor kind (a LoRA pair, a low-rank factor, a mask) is one new row in tensors.c.
 */
#ifndef SK_TENSORS_H
#define SK_TENSORS_H

#include "../core/core.h"
#include "../kernels/kernels.h"

/* ==== architecture row (arch.c) ========================================================== */

typedef enum sk_norm_kind { SK_NORM_RMS, SK_NORM_LAYER } sk_norm_kind;
typedef enum sk_ffn_kind { SK_FFN_SWIGLU, SK_FFN_GELU_TANH } sk_ffn_kind;
typedef enum sk_pos_kind { SK_POS_ROPE, SK_POS_LEARNED } sk_pos_kind;
typedef enum sk_rope_layout {
    SK_ROPE_HALF,        /* Hugging Face rotate-half: pairs (i, i + hd/2) */
    SK_ROPE_INTERLEAVED, /* llama2.c / GGUF: pairs (2i, 2i + 1) */
} sk_rope_layout;

/* Hugging Face families: the column of a tensor row's `hf` names and the config.json keys
 * (config.c, hf.c) an architecture uses. */
typedef enum sk_hf_family {
    SK_HF_LLAMA, /* model.embed_tokens, model.layers.N.self_attn.q_proj, hidden_size, ... */
    SK_HF_GPT2,  /* [transformer.]wte, h.N.attn.c_attn (Conv1D, fused q|k|v), n_embd, ... */
    SK_HF_FAMILIES
} sk_hf_family;

/* One row per architecture (arch.c). */
typedef struct sk_arch {
    const char  *name;        /* "llama", "gpt2": Hugging Face model_type */
    sk_norm_kind norm;
    sk_ffn_kind  ffn;
    sk_pos_kind  pos;
    int          norm_bias;   /* LayerNorm has a bias */
    int          mlp_bias;    /* FFN linear layers have biases */
    int          out_bias;    /* attention output projection has a bias */
    int          qkv_bias;    /* q/k/v projections have biases by default (GPT-2, Qwen2) */
    int          tied;        /* default of tie_word_embeddings */
    int          fused_qkv;   /* q|k|v are one matrix in files (GPT-2 c_attn, GGUF attn_qkv) */
    sk_hf_family hf;          /* Hugging Face tensor names and config keys */
    const char  *hf_prefix;   /* prefix some HF files put before the base model's names */
    int          hf_conv1d;   /* HF stores the rows marked conv1d as (in, out) (GPT-2 Conv1D) */
    const char  *hf_class;    /* config.json "architectures" */
    const char  *gguf_arch;   /* general.architecture it is written as; a file of that arch
                               * is read as the first row that names it */
    int          gguf_write;  /* shrink writes it as GGUF (qwen2: not yet) */
    int          gguf_head;   /* llama.cpp builds before PR 12456 (March 2025) need
                               * output.weight for a tied model of this arch: it is written
                               * as a copy of token_embd only on request (head_copy) */
    int          add_bos;     /* default of add_bos_token */
    int          resid_scale; /* init scales residual projections by 1 / sqrt(2 L) */
} sk_arch;

SK_HIDDEN const sk_arch *sk_arch_find(const char *name); /* NULL if unknown */
SK_HIDDEN const sk_arch *sk_arch_at(int i);              /* row i, NULL past the end */
/* The first row whose gguf_arch is `name` (the row GGUF files of that arch load as). */
SK_HIDDEN const sk_arch *sk_arch_find_gguf(const char *name);

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

/* Largest sizes a config may declare (every reader checks through sk_config_validate). */
#define SK_CFG_MAX_DIM    (1 << 20)
#define SK_CFG_MAX_LAYERS (1 << 12)

/* Checks a config for values the decoder cannot run; the message names the field and the
 * source (`what`, e.g. the config.json path). */
SK_HIDDEN shrink_status sk_config_validate(const sk_config *c, const char *what);

/* ==== in-memory weights ================================================================== */

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

/* The weights outside the layers, in the order struct shrink_model holds them (model.h
 * checks the layout), so the table can give their offsets without the model's type. */
typedef struct sk_globals {
    sk_mat       tok_emb;      /* (V, D) */
    sk_mat       pos_emb;      /* (S, D) learned positions, data NULL for RoPE */
    const float *final_norm;   /* (D) */
    const float *final_norm_b; /* (D) or NULL */
    sk_mat       head;         /* (V, D); == tok_emb when tied */
} sk_globals;

/* A tensor as stored in the file, for `shrink info` and the writers. */
typedef struct sk_tensor {
    char        *name;
    shrink_dtype dtype;
    int32_t      n_dims;
    int64_t      shape[4];
    uint64_t     bytes;
    const void  *data;         /* view into a mapping */
} sk_tensor;

/* ==== the tensor table (tensors.c) ======================================================= */

/* Roles with a name in code (the rows of the table, in canonical order). Code that needs no
 * particular role iterates sk_troles() instead; a test build may add rows past these. */
typedef enum sk_role {
    SK_ROLE_TOK_EMB, SK_ROLE_POS_EMB,
    SK_ROLE_ATTN_NORM, SK_ROLE_ATTN_NORM_B, SK_ROLE_WQ, SK_ROLE_WK, SK_ROLE_WV, SK_ROLE_BQ,
    SK_ROLE_BK, SK_ROLE_BV, SK_ROLE_WQKV, SK_ROLE_BQKV, SK_ROLE_WO, SK_ROLE_BO,
    SK_ROLE_FFN_NORM, SK_ROLE_FFN_NORM_B, SK_ROLE_W_GATE, SK_ROLE_W_UP, SK_ROLE_B_UP,
    SK_ROLE_W_DOWN, SK_ROLE_B_DOWN,
    SK_ROLE_FINAL_NORM, SK_ROLE_FINAL_NORM_B, SK_ROLE_HEAD,
    SK_ROLE_COUNT
} sk_role;

/* A dimension in config terms. */
typedef enum sk_tdim { SK_TD_1, SK_TD_D, SK_TD_F, SK_TD_V, SK_TD_S, SK_TD_Q, SK_TD_KV,
                       SK_TD_QKV } sk_tdim;

/* When a role exists (tensors.c: sk_trole_need says what each means for a config). */
typedef enum sk_twhen {
    SK_TW_ALWAYS,
    SK_TW_SPLIT,      /* separate q, k, v (not arch.fused_qkv) */
    SK_TW_FUSED,      /* fused q|k|v (arch.fused_qkv) */
    SK_TW_QKV_BIAS,   /* separate q/k/v biases: cfg.qkv_bias; else bound when present */
    SK_TW_FUSED_BIAS, /* fused q|k|v bias: cfg.qkv_bias; else bound when present */
    SK_TW_OUT_BIAS,   /* arch.out_bias; else bound when present */
    SK_TW_MLP_BIAS,   /* arch.mlp_bias; else bound when present */
    SK_TW_NORM_BIAS,  /* arch.norm_bias; else bound when present */
    SK_TW_SWIGLU,     /* arch.ffn == SWIGLU */
    SK_TW_LEARNED,    /* arch.pos == LEARNED */
    SK_TW_UNTIED,     /* !cfg.tied */
    SK_TW_TEST,       /* test builds only (SK_TEST_EXTRA_ROLE): sk_test_extra_role */
} sk_twhen;

/* How the loader binds a role to the decoder. */
typedef enum sk_tbind {
    SK_TB_MAT,      /* sk_mat field */
    SK_TB_VEC,      /* const float * field, widened to f32 */
    SK_TB_QKV,      /* fused q|k|v weight -> wq, wk, wv views */
    SK_TB_QKV_BIAS, /* fused q|k|v bias -> bq, bk, bv */
    SK_TB_NONE,     /* checked and counted, read by no decoder field */
} sk_tbind;

/* How `init` fills a role (convert/init.c). */
typedef enum sk_init_kind {
    SK_INIT_NORMAL, /* normal(0, std) */
    SK_INIT_ONES,   /* norm weights */
    SK_INIT_ZEROS,  /* biases */
} sk_init_kind;

typedef struct sk_trole {
    /* names, %d = layer; NULL: the role has no tensor in that format or family */
    const char  *hf[SK_HF_FAMILIES]; /* Hugging Face, per sk_arch.hf */
    const char  *gguf;               /* llama.cpp (llama-arch.cpp LLM_TENSOR_NAMES) */
    int          l2c;                /* position among llama2.c's arrays (1..), 0: none */
    int          layer;              /* one per layer (else one per model) */
    sk_tdim      rows, cols;         /* (out, in) as the decoder wants it; vectors cols 1 */
    sk_twhen     when;
    int          conv1d;             /* stored (in, out) when arch.hf_conv1d (HF only) */
    int          rope;               /* q/k rows: permuted between RoPE layouts */
    int          top;                /* HF: outside the base model (no arch.hf_prefix) */
    sk_tbind     bind;
    size_t       off;                /* offsetof in sk_layer (layer) or sk_globals */
    sk_init_kind init;
    int          resid;              /* a residual output projection (init scaling) */
    int          lowrank;            /* a linear layer that may be stored as two low-rank
                                        factors (docs/lowrank.md): named <name>.lr_a (rank x
                                        cols) and <name>.lr_b (rows x rank), no <name> */
} sk_trole;

/* The table: rows 0..n-1, row i is role i. */
SK_HIDDEN const sk_trole *sk_troles(int *n);
SK_HIDDEN const sk_trole *sk_trole_at(int role);

/* 1: config c has the role; 0: it has not but a file may carry it (bound when present);
 * -1: it has not (ignored). */
SK_HIDDEN int sk_trole_need(const sk_trole *r, const sk_config *c);
/* Value of a dimension for config c. */
SK_HIDDEN int64_t sk_tdim_value(const sk_config *c, sk_tdim d);
/* Name of role r in layer `layer` as a file of `fmt` spells it (buf: at least 96 bytes);
 * Hugging Face names without the arch.hf_prefix. Returns buf, or NULL if the format has no
 * such tensor. */
typedef enum sk_tname { SK_TNAME_HF, SK_TNAME_GGUF } sk_tname;
SK_HIDDEN const char *sk_trole_name(const sk_trole *r, const sk_arch *a, sk_tname fmt,
                                    int layer, char *buf, size_t cap);
/* The row whose name in `fmt` is `name` (HF: arch a's family, with or without a->hf_prefix;
 * GGUF names are the same for every arch, a may be NULL), for layers < n_layers; *layer gets
 * the layer (-1: a model row). -1 if no row has that name. */
SK_HIDDEN int sk_trole_find(const sk_arch *a, sk_tname fmt, const char *name, int n_layers,
                            int *layer);
/* Whether a Hugging Face file of arch a stores role r transposed (Conv1D). */
SK_HIDDEN int sk_trole_conv1d(const sk_trole *r, const sk_arch *a);

#ifdef SK_TEST_EXTRA_ROLE
/* The test build's dummy role exists while this is set (tests/test_tensors.c). */
extern int sk_test_extra_role;
#endif

/* A tensor of the canonical list: one role in one layer of a config, in writing order. */
typedef struct sk_wtensor {
    char    name[96];  /* canonical name: the Hugging Face name of the arch's family */
    sk_role role;      /* row of the tensor table (test builds may have rows past COUNT) */
    int32_t layer;     /* -1 for tensors outside the layers */
    int32_t n_dims;    /* 1 (vector) or 2 (matrix) */
    int64_t rows;      /* matrices: out features; vectors: length */
    int64_t cols;      /* matrices: in features; vectors: 1 */
    int32_t factor;    /* 0: the tensor itself; 1, 2: low-rank factor A (rows = rank, cols as
                          the matrix's) or B (rows as the matrix's, cols = rank) of a role
                          with `lowrank` (name: the matrix's + SK_LR_SUFFIX_A / _B) */
} sk_wtensor;

#define SK_LR_SUFFIX_A ".lr_a"
#define SK_LR_SUFFIX_B ".lr_b"

/* The name of t in a file of `fmt` (sk_trole_name, and the factor's suffix), in buf; NULL if
 * the format has no such tensor. */
SK_HIDDEN const char *sk_wtensor_name(const sk_wtensor *t, const sk_arch *a, sk_tname fmt,
                                      char *buf, size_t cap);
/* The two factor rows of matrix t at rank k: fa (A: k x cols), fb (B: rows x k), named. */
SK_HIDDEN void sk_wtensor_factors(const sk_wtensor *t, int64_t k, sk_wtensor *fa,
                                  sk_wtensor *fb);

/* The canonical tensor list of a config (the roles it has, layer rows layer by layer between
 * the model rows before and after them): *out (malloc'd, free with sk_free) gets *n rows. */
SK_HIDDEN shrink_status sk_wtensors(const sk_config *cfg, sk_wtensor **out, int64_t *n);

#endif /* SK_TENSORS_H */
