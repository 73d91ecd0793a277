/*
 * init.h - models with random weights, initialized as Hugging Face transformers initializes
 * them (`shrink init`): the preset table (real shapes of published models), the tensor table
 * of a config with each tensor's initializer, and a counter-based normal generator.
 *
 * Shapes: D = dim, L = n_layers, F = ffn_dim, V = vocab_size, S = max_seq_len,
 * Q = n_heads * head_dim, KV = n_kv_heads * head_dim.
 *
 * Initialization (LlamaPreTrainedModel / GPT2PreTrainedModel._init_weights):
 *   every matrix and embedding  normal(0, initializer_range)      (default 0.02)
 *   GPT-2 attn.c_proj, mlp.c_proj  normal(0, initializer_range / sqrt(2 L))
 *   norm weights  1,  every bias  0.
 * Element i of a tensor is a pure function of (seed, tensor name, i): a splitmix64 hash of
 * the counter gives two uniforms per pair of elements and Box–Muller turns them into two
 * normals. Any range of any tensor can be generated on its own, in any order, by any number
 * of threads, with identical results; a tensor's values do not depend on the other tensors of
 * the model (a config with more layers has the same first layers). docs/init.md has more.
 */
#ifndef SK_INIT_H
#define SK_INIT_H

#include "model.h"

/* ---- presets --------------------------------------------------------------------------- */

/* One row per preset: the shape of a published model. */
typedef struct sk_preset {
    const char *name;        /* "gpt2", "tinyllama-1.1b", ... */
    const char *arch;        /* row of the architecture table */
    int32_t     dim;
    int32_t     n_layers;
    int32_t     n_heads;
    int32_t     n_kv_heads;
    int32_t     ffn_dim;
    int32_t     vocab_size;
    int32_t     max_seq_len;
    float       norm_eps;
    float       rope_theta;  /* 0 for learned positions */
    int         tied;
    int32_t     bos_id;
    int32_t     eos_id;
    int64_t     n_params;    /* the published parameter count; tests check the table against it */
    const char *source;      /* the model whose config.json this row copies */
} sk_preset;

SK_HIDDEN const sk_preset *sk_preset_at(int i);             /* row i, NULL past the end */
SK_HIDDEN const sk_preset *sk_preset_find(const char *name); /* NULL if unknown */
/* The sk_config of a preset (Hugging Face conventions: rotate-half RoPE). Validated. */
SK_HIDDEN shrink_status sk_preset_config(const sk_preset *p, sk_config *out);

/* Reads a Hugging Face config.json (a file, or a folder holding config.json and maybe
 * tokenizer_config.json) into *cfg with sk_config_parse, and its initializer_range into
 * *init_range (0.02 when absent; must be finite and >= 0). */
SK_HIDDEN shrink_status sk_init_config_load(const char *path, sk_config *cfg, float *init_range);

/* ---- the tensor table ------------------------------------------------------------------ */

typedef enum sk_init_kind {
    SK_INIT_NORMAL, /* normal(0, std) */
    SK_INIT_ONES,   /* norm weights */
    SK_INIT_ZEROS,  /* biases */
} sk_init_kind;

typedef struct sk_init_tensor {
    char         name[96];   /* Hugging Face name ("model.layers.3.mlp.up_proj.weight") */
    int32_t      n_dims;     /* 1 or 2 */
    int64_t      shape[2];   /* as a Hugging Face file stores it (GPT-2 Conv1D: (in, out)) */
    int64_t      n_elems;
    sk_init_kind kind;
    float        std;        /* SK_INIT_NORMAL only */
    uint64_t     key;        /* stream key: hash of the name (set by sk_init_tensors) */
} sk_init_tensor;

/* The tensors of a model with config c, in Hugging Face order (embeddings, layer by layer,
 * final norm, untied head), with their initializers for initializer range `init_range`.
 * Names are those Hugging Face's LlamaForCausalLM / GPT2LMHeadModel save ("transformer."
 * prefix for GPT-2); a tied head has no tensor. *out is sk_malloc'd (sk_free it). */
SK_HIDDEN shrink_status sk_init_tensors(const sk_config *c, float init_range,
                                        sk_init_tensor **out, int64_t *n_out);

/* Parameter count of config c (the sum of the table's elements; a tied head counts once). */
SK_HIDDEN int64_t sk_init_n_params(const sk_config *c);

/* ---- the generator --------------------------------------------------------------------- */

/* dst[k] = element (start + k) of tensor t for seed `seed`, k < n. Uses the library's
 * threads for large n (call from outside a parallel region); the values do not depend on the
 * thread count nor on how a tensor is cut into ranges. */
SK_HIDDEN void sk_init_fill(const sk_init_tensor *t, uint64_t seed, int64_t start, int64_t n,
                            float *dst);

#endif /* SK_INIT_H */
