/*
 * qmix.h - llama.cpp's quantization mixes (q4_K_M, q3_K_S, ...): the per-tensor types of
 * llama_tensor_get_type (src/llama-quant.cpp, llama.cpp c392e50) as one table (qmix.c).
 * Here, below the operations, because two of them apply the same rules: `shrink quantize
 * --scheme MIX` (src/quant) writes them and `shrink train --qat MIX` (src/train) trains with
 * each matrix fake-quantized to the type the mix would write.
 */
#ifndef SK_QMIX_H
#define SK_QMIX_H

#include "formats.h"

typedef enum sk_mix {
    SK_MIX_NONE = 0, /* every matrix in the scheme's dtype (llama-quantize --pure) */
    SK_MIX_Q4_K_M,   /* LLAMA_FTYPE_MOSTLY_Q4_K_M */
    SK_MIX_Q5_K_M,   /* LLAMA_FTYPE_MOSTLY_Q5_K_M */
    SK_MIX_Q2_K,     /* LLAMA_FTYPE_MOSTLY_Q2_K (shrink's scheme q2_K_M: q2_K is every matrix q2_K) */
    SK_MIX_Q3_K_S,   /* LLAMA_FTYPE_MOSTLY_Q3_K_S */
    SK_MIX_Q3_K_M,   /* LLAMA_FTYPE_MOSTLY_Q3_K_M */
    SK_MIX_Q3_K_L,   /* LLAMA_FTYPE_MOSTLY_Q3_K_L */
    SK_MIX_Q4_K_S,   /* LLAMA_FTYPE_MOSTLY_Q4_K_S */
    SK_MIX_Q5_K_S,   /* LLAMA_FTYPE_MOSTLY_Q5_K_S */
    SK_MIX_COUNT
} sk_mix;

/* The mix called `name` as `shrink quantize --scheme` spells it ("q4_K_M", "q2_K_M", ...;
 * case-insensitive, '-' may replace '_'); SK_MIX_NONE if it is not a mix. */
SK_HIDDEN sk_mix sk_mix_find(const char *name);
/* Its name ("q4_K_M"), its base type (q4_K) and general.file_type (llama_ftype). */
SK_HIDDEN const char  *sk_mix_name(sk_mix mix);
SK_HIDDEN shrink_dtype sk_mix_base(sk_mix mix);
SK_HIDDEN int64_t      sk_mix_file_type(sk_mix mix);

/* The model facts the rules read besides a tensor's own: llama.cpp's 70B rule (80 layers with
 * GQA) and n_gqa (query heads per kv head). */
SK_HIDDEN void sk_mix_facts(const sk_config *c, int *is_70b, int *n_gqa);

/* The role (sk_role) of a tensor by its GGUF name (llama.cpp's rules go by name), -1 if none. */
SK_HIDDEN int sk_mix_role(const char *gguf_name, int n_layer);

/* What llama.cpp's llama_tensor_get_type decides for a 2-D weight that llama-quantize
 * quantizes (not norms, not position embeddings) under a mix, from the tensor's role, its row
 * length ne0, its layer i_layer of n_layer (blocks are visited in layer order, so llama.cpp's
 * attn_v / ffn_down counters equal the layer), whether the file has an output.weight (if not,
 * token_embd.weight takes the output's rule), is_70b and n_gqa (sk_mix_facts). sk_mix_want is
 * the rules' type; sk_mix_type the type written: row lengths the type's block does not divide
 * fall back as llama.cpp does (q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0, then f16 where
 * llama.cpp would refuse: sk_gguf_fallback); *fallback is set to 1 then (may be NULL). */
SK_HIDDEN shrink_dtype sk_mix_want(sk_mix mix, int role, int64_t ne0, int i_layer, int n_layer,
                                   int has_output, int is_70b, int n_gqa);
SK_HIDDEN shrink_dtype sk_mix_type(sk_mix mix, int role, int64_t ne0, int i_layer, int n_layer,
                                   int has_output, int is_70b, int n_gqa, int *fallback);

#endif
