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

#include "../formats/formats.h"

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

/* ---- initializers ---------------------------------------------------------------------- */

/* sk_init_kind: formats/tensors.h (a column of the tensor table) */

/* How one tensor is initialized. */
typedef struct sk_init_spec {
    sk_init_kind kind;
    float        std;   /* SK_INIT_NORMAL only */
    uint64_t     key;   /* the tensor's stream: a hash of its canonical name */
} sk_init_spec;

/* The initializer of canonical tensor t (formats.h: sk_wtensors) of a model with config c
 * and initializer range `init_range`. */
SK_HIDDEN sk_init_spec sk_init_spec_of(const sk_config *c, float init_range,
                                       const sk_wtensor *t);

/* Parameter count of config c: the elements of its canonical tensors (a tied head counts
 * once). -1 if c is not valid. */
SK_HIDDEN int64_t sk_init_n_params(const sk_config *c);

/* ---- the generator --------------------------------------------------------------------- */

/* dst[k] = element (start + k) of the tensor (row-major, canonical layout) for seed `seed`,
 * k < n. Uses the library's threads for large n (call from outside a parallel region); the
 * values do not depend on the thread count nor on how a tensor is cut into ranges. */
SK_HIDDEN void sk_init_fill(const sk_init_spec *s, uint64_t seed, int64_t start, int64_t n,
                            float *dst);

/* Columns [col0, col0 + n_cols) of a (rows, cols) tensor as rows of its transpose:
 * dst[j * rows + r] = element (r * cols + col0 + j). The same values as sk_init_fill. */
SK_HIDDEN void sk_init_fill_cols(const sk_init_spec *s, uint64_t seed, int64_t rows,
                                 int64_t cols, int64_t col0, int64_t n_cols, float *dst);

/* ---- a model to write ------------------------------------------------------------------ */

typedef struct sk_init_params {
    sk_config    cfg;
    uint64_t     seed;
    float        init_range;   /* initializer_range; 0.02 in Hugging Face configs */
    shrink_dtype dtype;        /* of every tensor written */
} sk_init_params;

/* A tensor source (formats.h) whose tensors are generated on the fly from *p, for sk_write.
 * src borrows p (keep it alive while src is used). The tokenizer fields of src are left NULL:
 * the caller sets src->tok / src->tok_dir to carry a tokenizer into the output. */
SK_HIDDEN void sk_init_source(const sk_init_params *p, sk_source *src);

#endif /* SK_INIT_H */
