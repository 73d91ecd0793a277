/*
 * quant.h - the internal interface of src/quant/: quantization schemes and their per-tensor
 * rules (quantize.c). Nothing outside src/ (and the tests) includes this.
 *
 * A scheme names what `shrink quantize --scheme` writes: one dtype for every matrix ("q8_0",
 * "int4_g128", ...) or one of llama.cpp's mixes ("q4_K_M", "q3_K_S", "q2_K_M" = Q2_K, ...),
 * whose per-tensor types follow llama.cpp's llama_tensor_get_type (src/llama-quant.cpp) for
 * those file types.
 * docs/quantization.md lists the schemes and the rules.
 */
#ifndef SK_QUANT_H
#define SK_QUANT_H

#include "../model/source.h"
#include "../formats/qmix.h"


typedef struct sk_scheme {
    const char  *name;      /* "q4_K_M" */
    shrink_dtype dtype;     /* of the matrices; a mix's base type */
    sk_mix       mix;
    int64_t      file_type; /* GGUF general.file_type (llama_ftype); -1: from dtype */
    /* for users (shrink quantize --list, shrink_quantize_scheme_get) */
    const char  *llama_cpp; /* llama-quantize's name for the same types, NULL if none */
    const char  *use;       /* what it is for, one line */
    double       ref_bpw;   /* bits/weight of the file on the reference model (0: not measured) */
    double       ref_kl;    /* mean KL(original || quantized) there (< 0: not measured) */
    int          ref;       /* which measurement (quantize.c, scheme_refs) */
} sk_scheme;

/* The scheme called `name` (case-insensitive, '-' may replace '_'); NULL if unknown. */
SK_HIDDEN const sk_scheme *sk_scheme_find(const char *name);
SK_HIDDEN int32_t          sk_scheme_count(void);
SK_HIDDEN const sk_scheme *sk_scheme_at(int32_t i);

/* Mixes: sk_mix, sk_mix_type (src/formats/qmix.h). */

/* The type a matrix of rows of `cols` elements gets when `want` is asked for: `want` if its
 * block divides cols, else the dtype's fallback chain (sk_gguf_fallback: llama-quantize's for
 * llama.cpp types, then f16; smaller groups, then 8 bits per channel for shrink's own types).
 * *fallback set to 1 if not `want` (may be NULL). */
SK_HIDDEN shrink_dtype sk_quant_fallback(shrink_dtype want, int64_t cols, int *fallback);

/* A per-tensor plan for shrink_quantize (shrink_plan, plan.c): tensors named in `names` (GGUF
 * names) get types[k] (falling back like any type where its block does not divide the rows),
 * every other tensor the scheme's rule; `im` (not owned, may be NULL) is the importance the
 * rows are quantized with instead of params' imatrix; file_type is general.file_type (-1:
 * from the scheme); dry_bytes non-NULL: nothing is written and *dry_bytes gets the size the
 * file would have. */
typedef struct sk_quant_override {
    int64_t                  n;
    const char *const       *names;
    const shrink_dtype      *types;
    const struct sk_imatrix *im;
    int64_t                  file_type;
    uint64_t                *dry_bytes;
} sk_quant_override;
SK_HIDDEN shrink_status sk_quantize_with(const char *in, const char *out,
                                         const shrink_quantize_params *p,
                                         const sk_quant_override *ov, shrink_quantize_result *r);

/* One row of `cols` values quantized to t as shrink_quantize writes it (default search, no
 * --ggml-exact), weighted by the importance `im` (cols values) where t uses one; im may be
 * NULL. */
SK_HIDDEN void sk_quantize_row_im(shrink_dtype t, const float *x, uint8_t *y, int64_t cols,
                                  const float *im);

#endif /* SK_QUANT_H */
