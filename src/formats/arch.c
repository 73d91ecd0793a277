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

#include <inttypes.h>
#include <math.h>

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

/* ---- config validation (every reader and config.json; here so the readers below model/ can
 * call it) ----------------------------------------------------------------------- */

/* Field names as each Hugging Face family (sk_arch.hf) spells them, so messages point at the
 * right key; hd_derived: head_dim is dim / n_heads, so dim must divide. */
typedef struct cfg_names {
    const char *dim, *n_layers, *n_heads, *n_kv_heads, *head_dim, *ffn_dim, *vocab, *seq, *eps;
    int         hd_derived;
} cfg_names;

static const cfg_names cfg_names_of[SK_HF_FAMILIES] = {
    [SK_HF_LLAMA] = {"hidden_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "head_dim", "intermediate_size", "vocab_size",
                     "max_position_embeddings", "rms_norm_eps", 0},
    [SK_HF_GPT2]  = {"n_embd", "n_layer", "n_head", "n_head", "n_embd / n_head", "n_inner",
                     "vocab_size", "n_positions", "layer_norm_epsilon", 1},
};

static shrink_status range(const char *what, const char *field, int64_t v, int64_t lo,
                           int64_t hi) {
    if (v < lo || v > hi)
        return sk_error(SHRINK_ERR_FORMAT, "%s: %s is %" PRId64 " but must be in [%" PRId64
                        ", %" PRId64 "]", what, field, v, lo, hi);
    return SHRINK_OK;
}

shrink_status sk_config_validate(const sk_config *c, const char *what) {
    if (!c->arch) return sk_error(SHRINK_ERR_FORMAT, "%s: no architecture", what);
    const cfg_names *n = &cfg_names_of[c->arch->hf];
    shrink_status st;
    if ((st = range(what, n->dim, c->dim, 1, SK_CFG_MAX_DIM)) ||
        (st = range(what, n->n_layers, c->n_layers, 1, SK_CFG_MAX_LAYERS)) ||
        (st = range(what, n->n_heads, c->n_heads, 1, SK_CFG_MAX_DIM)) ||
        (st = range(what, n->n_kv_heads, c->n_kv_heads, 1, c->n_heads)) ||
        (st = range(what, n->head_dim, c->head_dim, 1, SK_CFG_MAX_DIM)) ||
        (st = range(what, n->ffn_dim, c->ffn_dim, 1, SK_CFG_MAX_DIM)) ||
        (st = range(what, n->vocab, c->vocab_size, 1, SK_CFG_MAX_DIM)) ||
        (st = range(what, n->seq, c->max_seq_len, 1, SK_CFG_MAX_DIM)))
        return st;
    if ((int64_t)c->n_heads * c->head_dim > SK_CFG_MAX_DIM)
        return sk_error(SHRINK_ERR_FORMAT, "%s: %s x %s = %" PRId64 " is too large", what,
                        n->n_heads, n->head_dim, (int64_t)c->n_heads * c->head_dim);
    if (c->n_heads % c->n_kv_heads != 0)
        return sk_error(SHRINK_ERR_FORMAT, "%s: %s %" PRId32 " is not a multiple of %s %" PRId32,
                        what, n->n_heads, c->n_heads, n->n_kv_heads, c->n_kv_heads);
    if (n->hd_derived && c->dim % c->n_heads != 0)
        return sk_error(SHRINK_ERR_FORMAT, "%s: %s %" PRId32 " is not a multiple of %s %" PRId32,
                        what, n->dim, c->dim, n->n_heads, c->n_heads);
    if (!(c->norm_eps > 0 && c->norm_eps < 1))
        return sk_error(SHRINK_ERR_FORMAT, "%s: %s is %g but must be in (0, 1)", what, n->eps,
                        (double)c->norm_eps);
    if (c->arch->pos == SK_POS_ROPE) {
        if (!(c->rope_theta > 0 && isfinite(c->rope_theta)))
            return sk_error(SHRINK_ERR_FORMAT, "%s: rope_theta is %g but must be positive", what,
                            (double)c->rope_theta);
        if (c->head_dim % 2 != 0)
            return sk_error(SHRINK_ERR_FORMAT, "%s: %s %" PRId32 " is odd (RoPE rotates pairs)",
                            what, n->head_dim, c->head_dim);
    }
    if ((st = range(what, "bos_token_id", c->bos_id, -1, c->vocab_size - 1)) ||
        (st = range(what, "eos_token_id", c->eos_id, -1, c->vocab_size - 1)))
        return st;
    return SHRINK_OK;
}
