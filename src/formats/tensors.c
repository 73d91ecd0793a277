/*
 * tensors.c - THE tensor table: one row per tensor role (tensors.h says what each column
 * means). Every list of a model's tensors is derived from it: the loader's binding
 * (model/load.c), the canonical list the writers stream (sk_wtensors, below), the GGUF,
 * Hugging Face and llama2.c names, `init`'s fill, quantize's and training's tensor lists.
 *
 * Rows are in canonical (writing) order: the model rows before the first layer row, then
 * the layer rows layer by layer, then the model rows after. GGUF files shrink writes list
 * their tensors in this order. Sources of the names: Hugging Face modeling_llama.py /
 * modeling_gpt2.py, llama.cpp llama-arch.cpp (LLM_TENSOR_NAMES), llama2.c export.py
 * (legacy_export, array order; 12 is freq_cis, written by llama2c.c).
 */
#include "tensors.h"

#include <stddef.h>

#define L(f) offsetof(sk_layer, f)
#define G(f) offsetof(sk_globals, f)

#ifdef SK_TEST_EXTRA_ROLE
int sk_test_extra_role;
#endif

static const sk_trole troles[] = {
    [SK_ROLE_TOK_EMB] = {{"model.embed_tokens.weight", "wte.weight"}, "token_embd.weight",
        1, 0, SK_TD_V, SK_TD_D, SK_TW_ALWAYS, 0, 0, 0, SK_TB_MAT, G(tok_emb), SK_INIT_NORMAL, 0},
    [SK_ROLE_POS_EMB] = {{NULL, "wpe.weight"}, "position_embd.weight",
        0, 0, SK_TD_S, SK_TD_D, SK_TW_LEARNED, 0, 0, 0, SK_TB_MAT, G(pos_emb), SK_INIT_NORMAL, 0},
    [SK_ROLE_ATTN_NORM] = {{"model.layers.%d.input_layernorm.weight", "h.%d.ln_1.weight"},
        "blk.%d.attn_norm.weight",
        2, 1, SK_TD_D, SK_TD_1, SK_TW_ALWAYS, 0, 0, 0, SK_TB_VEC, L(attn_norm), SK_INIT_ONES, 0},
    [SK_ROLE_ATTN_NORM_B] = {{NULL, "h.%d.ln_1.bias"}, "blk.%d.attn_norm.bias",
        0, 1, SK_TD_D, SK_TD_1, SK_TW_NORM_BIAS, 0, 0, 0, SK_TB_VEC, L(attn_norm_b), SK_INIT_ZEROS, 0},
    [SK_ROLE_WQ] = {{"model.layers.%d.self_attn.q_proj.weight", NULL}, "blk.%d.attn_q.weight",
        3, 1, SK_TD_Q, SK_TD_D, SK_TW_SPLIT, 0, 1, 0, SK_TB_MAT, L(wq), SK_INIT_NORMAL, 0, 1},
    [SK_ROLE_WK] = {{"model.layers.%d.self_attn.k_proj.weight", NULL}, "blk.%d.attn_k.weight",
        4, 1, SK_TD_KV, SK_TD_D, SK_TW_SPLIT, 0, 1, 0, SK_TB_MAT, L(wk), SK_INIT_NORMAL, 0, 1},
    [SK_ROLE_WV] = {{"model.layers.%d.self_attn.v_proj.weight", NULL}, "blk.%d.attn_v.weight",
        5, 1, SK_TD_KV, SK_TD_D, SK_TW_SPLIT, 0, 0, 0, SK_TB_MAT, L(wv), SK_INIT_NORMAL, 0, 1},
    [SK_ROLE_BQ] = {{"model.layers.%d.self_attn.q_proj.bias", NULL}, "blk.%d.attn_q.bias",
        0, 1, SK_TD_Q, SK_TD_1, SK_TW_QKV_BIAS, 0, 1, 0, SK_TB_VEC, L(bq), SK_INIT_ZEROS, 0},
    [SK_ROLE_BK] = {{"model.layers.%d.self_attn.k_proj.bias", NULL}, "blk.%d.attn_k.bias",
        0, 1, SK_TD_KV, SK_TD_1, SK_TW_QKV_BIAS, 0, 1, 0, SK_TB_VEC, L(bk), SK_INIT_ZEROS, 0},
    [SK_ROLE_BV] = {{"model.layers.%d.self_attn.v_proj.bias", NULL}, "blk.%d.attn_v.bias",
        0, 1, SK_TD_KV, SK_TD_1, SK_TW_QKV_BIAS, 0, 0, 0, SK_TB_VEC, L(bv), SK_INIT_ZEROS, 0},
    [SK_ROLE_WQKV] = {{NULL, "h.%d.attn.c_attn.weight"}, "blk.%d.attn_qkv.weight",
        0, 1, SK_TD_QKV, SK_TD_D, SK_TW_FUSED, 1, 0, 0, SK_TB_QKV, 0, SK_INIT_NORMAL, 0},
    [SK_ROLE_BQKV] = {{NULL, "h.%d.attn.c_attn.bias"}, "blk.%d.attn_qkv.bias",
        0, 1, SK_TD_QKV, SK_TD_1, SK_TW_FUSED_BIAS, 0, 0, 0, SK_TB_QKV_BIAS, 0, SK_INIT_ZEROS, 0},
    [SK_ROLE_WO] = {{"model.layers.%d.self_attn.o_proj.weight", "h.%d.attn.c_proj.weight"},
        "blk.%d.attn_output.weight",
        6, 1, SK_TD_D, SK_TD_Q, SK_TW_ALWAYS, 1, 0, 0, SK_TB_MAT, L(wo), SK_INIT_NORMAL, 1, 1},
    [SK_ROLE_BO] = {{"model.layers.%d.self_attn.o_proj.bias", "h.%d.attn.c_proj.bias"},
        "blk.%d.attn_output.bias",
        0, 1, SK_TD_D, SK_TD_1, SK_TW_OUT_BIAS, 0, 0, 0, SK_TB_VEC, L(bo), SK_INIT_ZEROS, 0},
    [SK_ROLE_FFN_NORM] = {{"model.layers.%d.post_attention_layernorm.weight", "h.%d.ln_2.weight"},
        "blk.%d.ffn_norm.weight",
        7, 1, SK_TD_D, SK_TD_1, SK_TW_ALWAYS, 0, 0, 0, SK_TB_VEC, L(ffn_norm), SK_INIT_ONES, 0},
    [SK_ROLE_FFN_NORM_B] = {{NULL, "h.%d.ln_2.bias"}, "blk.%d.ffn_norm.bias",
        0, 1, SK_TD_D, SK_TD_1, SK_TW_NORM_BIAS, 0, 0, 0, SK_TB_VEC, L(ffn_norm_b), SK_INIT_ZEROS, 0},
    [SK_ROLE_W_GATE] = {{"model.layers.%d.mlp.gate_proj.weight", NULL}, "blk.%d.ffn_gate.weight",
        8, 1, SK_TD_F, SK_TD_D, SK_TW_SWIGLU, 0, 0, 0, SK_TB_MAT, L(w_gate), SK_INIT_NORMAL, 0, 1},
    [SK_ROLE_W_UP] = {{"model.layers.%d.mlp.up_proj.weight", "h.%d.mlp.c_fc.weight"},
        "blk.%d.ffn_up.weight",
        10, 1, SK_TD_F, SK_TD_D, SK_TW_ALWAYS, 1, 0, 0, SK_TB_MAT, L(w_up), SK_INIT_NORMAL, 0, 1},
    [SK_ROLE_B_UP] = {{NULL, "h.%d.mlp.c_fc.bias"}, "blk.%d.ffn_up.bias",
        0, 1, SK_TD_F, SK_TD_1, SK_TW_MLP_BIAS, 0, 0, 0, SK_TB_VEC, L(b_up), SK_INIT_ZEROS, 0},
    [SK_ROLE_W_DOWN] = {{"model.layers.%d.mlp.down_proj.weight", "h.%d.mlp.c_proj.weight"},
        "blk.%d.ffn_down.weight",
        9, 1, SK_TD_D, SK_TD_F, SK_TW_ALWAYS, 1, 0, 0, SK_TB_MAT, L(w_down), SK_INIT_NORMAL, 1, 1},
    [SK_ROLE_B_DOWN] = {{NULL, "h.%d.mlp.c_proj.bias"}, "blk.%d.ffn_down.bias",
        0, 1, SK_TD_D, SK_TD_1, SK_TW_MLP_BIAS, 0, 0, 0, SK_TB_VEC, L(b_down), SK_INIT_ZEROS, 0},
    [SK_ROLE_FINAL_NORM] = {{"model.norm.weight", "ln_f.weight"}, "output_norm.weight",
        11, 0, SK_TD_D, SK_TD_1, SK_TW_ALWAYS, 0, 0, 0, SK_TB_VEC, G(final_norm), SK_INIT_ONES, 0},
    [SK_ROLE_FINAL_NORM_B] = {{NULL, "ln_f.bias"}, "output_norm.bias",
        0, 0, SK_TD_D, SK_TD_1, SK_TW_NORM_BIAS, 0, 0, 0, SK_TB_VEC, G(final_norm_b), SK_INIT_ZEROS, 0},
    [SK_ROLE_HEAD] = {{"lm_head.weight", "lm_head.weight"}, "output.weight",
        13, 0, SK_TD_V, SK_TD_D, SK_TW_UNTIED, 0, 0, 1, SK_TB_MAT, G(head), SK_INIT_NORMAL, 0},
#ifdef SK_TEST_EXTRA_ROLE
    /* the test build's dummy role: a per-layer vector no decoder field reads */
    {{"model.layers.%d.extra.weight", "h.%d.extra.weight"}, "blk.%d.extra.weight",
        0, 1, SK_TD_D, SK_TD_1, SK_TW_TEST, 0, 0, 0, SK_TB_NONE, 0, SK_INIT_ONES, 0},
#endif
};
#define N_TROLES ((int)(sizeof troles / sizeof troles[0]))

const sk_trole *sk_troles(int *n) {
    *n = N_TROLES;
    return troles;
}

const sk_trole *sk_trole_at(int role) {
    return role >= 0 && role < N_TROLES ? &troles[role] : NULL;
}

int sk_trole_need(const sk_trole *r, const sk_config *c) {
    const sk_arch *a = c->arch;
    switch (r->when) {
    case SK_TW_ALWAYS:     return 1;
    case SK_TW_SPLIT:      return a->fused_qkv ? -1 : 1;
    case SK_TW_FUSED:      return a->fused_qkv ? 1 : -1;
    case SK_TW_QKV_BIAS:   return a->fused_qkv ? -1 : c->qkv_bias ? 1 : 0;
    case SK_TW_FUSED_BIAS: return !a->fused_qkv ? -1 : c->qkv_bias ? 1 : 0;
    case SK_TW_OUT_BIAS:   return a->out_bias ? 1 : 0;
    case SK_TW_MLP_BIAS:   return a->mlp_bias ? 1 : 0;
    case SK_TW_NORM_BIAS:  return a->norm_bias ? 1 : 0;
    case SK_TW_SWIGLU:     return a->ffn == SK_FFN_SWIGLU ? 1 : -1;
    case SK_TW_LEARNED:    return a->pos == SK_POS_LEARNED ? 1 : -1;
    case SK_TW_UNTIED:     return c->tied ? -1 : 1;
    case SK_TW_TEST:
#ifdef SK_TEST_EXTRA_ROLE
        return sk_test_extra_role ? 1 : -1;
#else
        return -1;
#endif
    }
    return 1;
}

int64_t sk_tdim_value(const sk_config *c, sk_tdim d) {
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    switch (d) {
    case SK_TD_1:   return 1;
    case SK_TD_D:   return c->dim;
    case SK_TD_F:   return c->ffn_dim;
    case SK_TD_V:   return c->vocab_size;
    case SK_TD_S:   return c->max_seq_len;
    case SK_TD_Q:   return q;
    case SK_TD_KV:  return kv;
    case SK_TD_QKV: return q + 2 * kv;
    }
    return 0;
}

const char *sk_trole_name(const sk_trole *r, const sk_arch *a, sk_tname fmt, int layer,
                          char *buf, size_t cap) {
    const char *pat = fmt == SK_TNAME_GGUF ? r->gguf : r->hf[a->hf];
    if (!pat) return NULL;
    snprintf(buf, cap, pat, layer);
    return buf;
}

int sk_trole_find(const sk_arch *a, sk_tname fmt, const char *name, int n_layers,
                  int *layer) {
    const char *pre = fmt == SK_TNAME_HF && a && strncmp(name, a->hf_prefix, strlen(a->hf_prefix))
                      == 0 ? a->hf_prefix : "";
    for (int i = 0; i < N_TROLES; i++) {
        const sk_trole *r = &troles[i];
        const char *pat = fmt == SK_TNAME_GGUF ? r->gguf : r->hf[a->hf];
        if (!pat) continue;
        for (int l = r->layer ? 0 : -1; l < (r->layer ? n_layers : 0); l++) {
            char buf[128];
            snprintf(buf, sizeof buf, pat, l);
            /* the prefixed spelling only for rows under the base model */
            if (strcmp(buf, name) == 0 || (!r->top && *pre && strcmp(buf, name + strlen(pre)) == 0)) {
                *layer = l;
                return i;
            }
        }
    }
    return -1;
}

const char *sk_wtensor_name(const sk_wtensor *t, const sk_arch *a, sk_tname fmt, char *buf,
                            size_t cap) {
    if (!sk_trole_name(sk_trole_at(t->role), a, fmt, t->layer, buf, cap)) return NULL;
    if (t->factor) {
        const size_t n = strlen(buf);
        snprintf(buf + n, cap > n ? cap - n : 0, "%s",
                 t->factor == 1 ? SK_LR_SUFFIX_A : SK_LR_SUFFIX_B);
    }
    return buf;
}

void sk_wtensor_factors(const sk_wtensor *t, int64_t k, sk_wtensor *fa, sk_wtensor *fb) {
    *fa = *t;
    *fb = *t;
    fa->factor = 1;
    fa->rows = k;
    fb->factor = 2;
    fb->cols = k;
    const size_t n = strlen(t->name);
    snprintf(fa->name + n, sizeof fa->name - n, "%s", SK_LR_SUFFIX_A);
    snprintf(fb->name + n, sizeof fb->name - n, "%s", SK_LR_SUFFIX_B);
}

int sk_trole_conv1d(const sk_trole *r, const sk_arch *a) {
    return r->conv1d && a->hf_conv1d;
}

/* Appends role i (layer l, or -1) to out[*n] if c has it (out NULL: counts only). */
static void add_role(const sk_config *c, int i, int l, sk_wtensor *out, int64_t *n) {
    const sk_trole *r = &troles[i];
    if (sk_trole_need(r, c) != 1) return;
    if (out) {
        sk_wtensor *t = &out[*n];
        /* a role the config has is named in its family (the table test checks it) */
        if (!sk_trole_name(r, c->arch, SK_TNAME_HF, l, t->name, sizeof t->name))
            snprintf(t->name, sizeof t->name, "?");
        t->role = (sk_role)i;
        t->layer = l;
        t->rows = sk_tdim_value(c, r->rows);
        t->cols = sk_tdim_value(c, r->cols);
        t->n_dims = r->cols == SK_TD_1 ? 1 : 2;
    }
    (*n)++;
}

shrink_status sk_wtensors(const sk_config *c, sk_wtensor **out, int64_t *n_out) {
    *out = NULL;
    *n_out = 0;
    int first_layer_row = N_TROLES;
    for (int i = N_TROLES - 1; i >= 0; i--)
        if (troles[i].layer) first_layer_row = i;
    sk_wtensor *t = NULL;
    int64_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        n = 0;
        for (int i = 0; i < first_layer_row; i++)
            if (!troles[i].layer) add_role(c, i, -1, t, &n);
        for (int l = 0; l < c->n_layers; l++)
            for (int i = 0; i < N_TROLES; i++)
                if (troles[i].layer) add_role(c, i, l, t, &n);
        for (int i = first_layer_row; i < N_TROLES; i++)
            if (!troles[i].layer) add_role(c, i, -1, t, &n);
        if (!pass && !(t = sk_calloc((size_t)(n ? n : 1), sizeof *t)))
            return sk_error(SHRINK_ERR_NOMEM, "out of memory for the tensor list");
    }
    *out = t;
    *n_out = n;
    return SHRINK_OK;
}
