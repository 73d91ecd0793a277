/*
 * lora.h - LoRA adapters held beside a model's weights (model/lora.c): read from a PEFT folder
 * (adapter_config.json + adapter_model.safetensors) or a llama.cpp GGUF LoRA adapter
 * (general.type = adapter), applied at run time without merging (the decoder adds
 * scale * B (A x) to each adapted projection) or merged by `shrink merge` (src/lora/).
 *
 * Every pair is held as f32: A (r, in) and B (out, r), PyTorch's shapes, with B's rows of
 * q/k in the RoPE layout the adapter was loaded for. scale = user scale * alpha / r
 * (alpha / sqrt(r) with PEFT's use_rslora).
 */
#ifndef SK_MODEL_LORA_H
#define SK_MODEL_LORA_H

#include "model.h"

/* The projections an adapter can target, in sk_linear order (SK_LIN_Q .. SK_LIN_DOWN). */
#define SK_LORA_N_LIN 7

typedef struct sk_lora_pair {
    float  *A;      /* (r, in) or NULL: this projection is not adapted */
    float  *B;      /* (out, r) */
    int64_t r, in, out;
} sk_lora_pair;

typedef struct sk_lora {
    char         *path;
    const char   *format;   /* "peft" or "gguf" */
    int64_t       r;        /* rank (largest over the pairs) */
    double        alpha;
    double        user_scale;
    float         scale;    /* user_scale * alpha / r (or / sqrt(r)) */
    sk_rope_layout layout;  /* of B's q/k rows (the base model's) */
    int32_t       n_layers;
    int64_t       n_pairs;  /* pairs present */
    int64_t       n_params; /* elements of A and B */
    sk_lora_pair *pairs;    /* (n_layers * SK_LORA_N_LIN), [layer * 7 + sk_linear] */
    struct sk_lora *next;
} sk_lora;

/* Reads the adapter at `path` (a PEFT folder, its adapter_model.safetensors, or a .gguf) for a
 * base model of config `cfg`; B's q/k rows are permuted to `layout`. Checks architecture,
 * target names, layers, shapes, rank (1..min(in, out)), finiteness; messages name the file
 * and the tensor. *out is malloc'd: free with sk_lora_free. */
SK_HIDDEN shrink_status sk_lora_read(const char *path, const sk_config *cfg,
                                     sk_rope_layout layout, double user_scale, sk_lora **out);
SK_HIDDEN void sk_lora_free(sk_lora *a); /* the list from a on */

/* dst = B (out, r) of q or k with its rows moved from RoPE layout `from` to the other one
 * (heads of hd rows). */
SK_HIDDEN void sk_lora_permute_b(const float *B, float *dst, int64_t out, int64_t r, int64_t hd,
                                 sk_rope_layout from);

/* Writes adapter `a` (for a base of config cfg) to `path`: a llama.cpp GGUF LoRA adapter when
 * path ends in .gguf (q/k rows of B interleaved, as llama.cpp's converter writes them), else a
 * PEFT folder (adapter_config.json + adapter_model.safetensors, q/k rows in Hugging Face
 * order). alpha is written as scale * r, so the file applies what `a` applies. Atomic (nothing
 * at path on failure); `inputs` are files the output must not replace. (lora_write.c) */
SK_HIDDEN shrink_status sk_lora_write(const sk_lora *a, const sk_config *cfg, const char *path,
                                      const char *const *inputs, int n_inputs);

/* Y (T rows, ldy apart) += scale * (X A^T) B^T for every adapter of the list on projection
 * `which` of layer l. X is (T, in). Uses the library's threads; outside parallel regions. */
SK_HIDDEN void sk_lora_apply(const sk_lora *list, int l, sk_linear which, const float *X,
                             int64_t T, float *Y, int64_t ldy);

/* ---- merging (lora_merge.c) -------------------------------------------------------------- */

/* A tensor source that adds the adapters' scale * B A to the rows of every adapted projection
 * of `base` (another source, e.g. sk_source_from_model's): W' = W + sum scale * B A, computed
 * in f32 and converted to the dtype asked for. Shared by shrink_merge (any output format) and
 * shrink_quantize with adapters (merge, then quantize, streamed). Rows of other tensors come
 * from `base` as they are. An adapter of scale 0 is skipped. */
typedef struct sk_lora_merge {
    sk_source      base;       /* the wrapped source */
    const sk_lora *list;
    int            keep_zeros; /* the base's exact zeros stay zero (a pruned base) */
    float         *tmp;        /* f32 rows when a non-f32 dtype is asked (one thread only) */
    size_t         tmp_n;
} sk_lora_merge;

/* *out = base with fill/user replaced by the merging ones; ms must outlive out. Fills of f32
 * rows may run concurrently on threads; fills of other dtypes use ms->tmp (one at a time). */
SK_HIDDEN void sk_lora_merge_source(sk_lora_merge *ms, const sk_source *base,
                                    const sk_lora *list, int keep_zeros, sk_source *out);
SK_HIDDEN void sk_lora_merge_free(sk_lora_merge *ms);
/* sk_lora_read of n adapters (scales: user scales, NULL = all 1) for a base of config cfg (q/k
 * rows in cfg->rope_layout), chained in order into *out; on failure *out is NULL. */
SK_HIDDEN shrink_status sk_lora_read_list(const char *const *paths, const double *scales, int n,
                                          const sk_config *cfg, sk_lora **out);
/* Is projection `which` (sk_linear) of layer l changed by an adapter of nonzero scale? */
SK_HIDDEN int sk_lora_adapted(const sk_lora *list, int l, int which);
/* Matrices of `cfg` that an adapter of nonzero scale in list changes. */
SK_HIDDEN int64_t sk_lora_n_adapted(const sk_lora *list, const sk_config *cfg);
/* The sk_linear of a GGUF tensor name "blk.N.attn_q.weight" (attn_q .. ffn_down; *layer = N),
 * -1 for other names. (lora.c) */
SK_HIDDEN int sk_lora_gguf_linear(const char *name, int *layer);
/* The sk_linear of a canonical tensor role (SK_ROLE_WQ ... SK_ROLE_W_DOWN), -1 for others. */
SK_HIDDEN int sk_lora_role_linear(int role);

#endif /* SK_MODEL_LORA_H */
