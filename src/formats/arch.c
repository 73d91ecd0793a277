/*
 * arch.c - THE architecture table: one row per architecture the decoder runs.
 *
 * The decoder, the loader and the writers branch on row fields (norm kind, FFN kind,
 * positions, biases, fused q|k|v, file names and keys), never on the row's name. Hugging Face model_type values that are the Llama
 * architecture with other defaults (mistral, qwen2) are rows of their own; config.c rejects
 * the settings of those families the decoder cannot run (e.g. sliding-window attention).
 * A new architecture is one new row here plus, if it names tensors differently, a column of
 * names in the tensor table (tensors.c).
 */
#include "tensors.h"

static const sk_arch sk_archs[] = {
    {
        .name        = "llama",
        .norm        = SK_NORM_RMS,
        .ffn         = SK_FFN_SWIGLU,
        .pos         = SK_POS_ROPE,
        .norm_bias   = 0,
        .mlp_bias    = 0,
        .out_bias    = 0,
        .qkv_bias    = 0,
        .tied        = 0,
        .fused_qkv   = 0,
        .hf          = SK_HF_LLAMA,
        .hf_prefix   = "",
        .hf_conv1d   = 0,
        .hf_class    = "LlamaForCausalLM",
        .gguf_arch   = "llama",
        .gguf_write  = 1,
        .gguf_head   = 0,
        .add_bos     = 1,
        .resid_scale = 0,
    },
    {
        .name        = "mistral",
        .norm        = SK_NORM_RMS,
        .ffn         = SK_FFN_SWIGLU,
        .pos         = SK_POS_ROPE,
        .norm_bias   = 0,
        .mlp_bias    = 0,
        .out_bias    = 0,
        .qkv_bias    = 0,
        .tied        = 0,
        .fused_qkv   = 0,
        .hf          = SK_HF_LLAMA,
        .hf_prefix   = "",
        .hf_conv1d   = 0,
        .hf_class    = "MistralForCausalLM",
        .gguf_arch   = "llama",
        .gguf_write  = 1,
        .gguf_head   = 0,
        .add_bos     = 1,
        .resid_scale = 0,
    },
    {
        .name        = "qwen2",
        .norm        = SK_NORM_RMS,
        .ffn         = SK_FFN_SWIGLU,
        .pos         = SK_POS_ROPE,
        .norm_bias   = 0,
        .mlp_bias    = 0,
        .out_bias    = 0,
        .qkv_bias    = 1,
        .tied        = 0,
        .fused_qkv   = 0,
        .hf          = SK_HF_LLAMA,
        .hf_prefix   = "",
        .hf_conv1d   = 0,
        .hf_class    = "Qwen2ForCausalLM",
        .gguf_arch   = "llama",
        .gguf_write  = 0,
        .gguf_head   = 0,
        .add_bos     = 1,
        .resid_scale = 0,
    },
    {
        .name        = "gpt2",
        .norm        = SK_NORM_LAYER,
        .ffn         = SK_FFN_GELU_TANH,
        .pos         = SK_POS_LEARNED,
        .norm_bias   = 1,
        .mlp_bias    = 1,
        .out_bias    = 1,
        .qkv_bias    = 1,
        .tied        = 1,
        .fused_qkv   = 1,
        .hf          = SK_HF_GPT2,
        .hf_prefix   = "transformer.",
        .hf_conv1d   = 1,
        .hf_class    = "GPT2LMHeadModel",
        .gguf_arch   = "gpt2",
        .gguf_write  = 1,
        .gguf_head   = 1,
        .add_bos     = 0,
        .resid_scale = 1,
    },
};

#define SK_N_ARCHS ((int)(sizeof sk_archs / sizeof sk_archs[0]))

const sk_arch *sk_arch_find(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < SK_N_ARCHS; i++)
        if (strcmp(sk_archs[i].name, name) == 0) return &sk_archs[i];
    return NULL;
}

const sk_arch *sk_arch_at(int i) {
    return i >= 0 && i < SK_N_ARCHS ? &sk_archs[i] : NULL;
}

const sk_arch *sk_arch_find_gguf(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < SK_N_ARCHS; i++)
        if (strcmp(sk_archs[i].gguf_arch, name) == 0) return &sk_archs[i];
    return NULL;
}
