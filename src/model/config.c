/*
 * config.c - Hugging Face config.json (+ tokenizer_config.json) into sk_config, checked by
 * sk_config_validate (formats/arch.c, shared with every other source of a config).
 *
 * Keys read (https://huggingface.co/docs/transformers, LlamaConfig / GPT2Config):
 *   Llama family (llama, mistral, qwen2): hidden_size, intermediate_size, num_hidden_layers,
 *     num_attention_heads, num_key_value_heads (default: heads), head_dim (default
 *     hidden/heads), vocab_size, max_position_embeddings (default 2048), rms_norm_eps
 *     (default 1e-6), rope_theta (default 10000) or transformers 5's rope_parameters
 *     {rope_theta, rope_type}, rope_scaling (must be absent/null), hidden_act (must be silu),
 *     attention_bias, tie_word_embeddings;
 *   GPT-2: n_embd, n_layer, n_head, n_positions (or n_ctx), n_inner (default 4 * n_embd),
 *     layer_norm_epsilon (default 1e-5), activation_function (gelu_new / gelu_pytorch_tanh),
 *     vocab_size, tie_word_embeddings (default true);
 *   both: model_type (else architectures[0]), torch_dtype or dtype, bos_token_id,
 *     eos_token_id (an int, null, or a list whose first entry is used).
 * tokenizer_config.json: add_bos_token (default: Llama family yes, GPT-2 no).
 * A value the decoder cannot run is SHRINK_ERR_UNSUPPORTED naming the field; a malformed or
 * impossible value is SHRINK_ERR_FORMAT naming the file and the field.
 */
#include "source.h"

#include "../core/json.h"

#include <math.h>

#define SK_CFG_MAX_FILE   (16u << 20)

/* ---- typed field readers -------------------------------------------------------------- */

/* Reads integer field `key` (absent or null -> *out = def, or an error if required). */
static shrink_status get_i32(const sk_json *j, const char *key, const char *name, int required,
                             int32_t def, int32_t *out) {
    const sk_json *v = sk_json_get(j, key);
    if (!v || v->type == SK_JSON_NULL) {
        if (required)
            return sk_error(SHRINK_ERR_FORMAT, "%s: missing required field '%s'", name, key);
        *out = def;
        return SHRINK_OK;
    }
    if (v->type != SK_JSON_NUMBER || !v->is_int)
        return sk_error(SHRINK_ERR_FORMAT, "%s: field '%s' must be an integer", name, key);
    if (v->integer < INT32_MIN || v->integer > INT32_MAX)
        return sk_error(SHRINK_ERR_FORMAT, "%s: field '%s' is %" PRId64 ", out of range", name,
                        key, v->integer);
    *out = (int32_t)v->integer;
    return SHRINK_OK;
}

static shrink_status get_f32(const sk_json *j, const char *key, const char *name, float def,
                             float *out) {
    const sk_json *v = sk_json_get(j, key);
    if (!v || v->type == SK_JSON_NULL) {
        *out = def;
        return SHRINK_OK;
    }
    if (v->type != SK_JSON_NUMBER)
        return sk_error(SHRINK_ERR_FORMAT, "%s: field '%s' must be a number", name, key);
    *out = (float)v->number;
    return SHRINK_OK;
}

static shrink_status get_bool(const sk_json *j, const char *key, const char *name, int def,
                              int *out) {
    const sk_json *v = sk_json_get(j, key);
    if (!v || v->type == SK_JSON_NULL) {
        *out = def;
        return SHRINK_OK;
    }
    if (v->type != SK_JSON_BOOL)
        return sk_error(SHRINK_ERR_FORMAT, "%s: field '%s' must be true or false", name, key);
    *out = v->boolean;
    return SHRINK_OK;
}

/* A string field that, when present and not null, must be one of `allowed` (NULL-ended). */
static shrink_status check_str(const sk_json *j, const char *key, const char *name,
                               const char *const *allowed) {
    const sk_json *v = sk_json_get(j, key);
    if (!v || v->type == SK_JSON_NULL) return SHRINK_OK;
    if (v->type != SK_JSON_STRING)
        return sk_error(SHRINK_ERR_FORMAT, "%s: field '%s' must be a string", name, key);
    if (!allowed) return SHRINK_OK;
    for (int i = 0; allowed[i]; i++)
        if (strcmp(v->str, allowed[i]) == 0) return SHRINK_OK;
    return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: %s '%.64s' is not supported (supported: %s%s%s)",
                    name, key, v->str, allowed[0], allowed[1] ? ", " : "",
                    allowed[1] ? allowed[1] : "");
}

/* bos_token_id / eos_token_id: an int, null (-> -1), or a list (first entry). */
static shrink_status get_token_id(const sk_json *j, const char *key, const char *name,
                                  int32_t def, int32_t *out) {
    const sk_json *v = sk_json_get(j, key);
    if (v && v->type == SK_JSON_ARRAY) {
        if (v->len == 0) {
            *out = -1;
            return SHRINK_OK;
        }
        const sk_json *f = &v->items[0];
        if (f->type != SK_JSON_NUMBER || !f->is_int || f->integer < -1 || f->integer > INT32_MAX)
            return sk_error(SHRINK_ERR_FORMAT, "%s: field '%s' must hold token ids", name, key);
        *out = (int32_t)f->integer;
        return SHRINK_OK;
    }
    if (v && v->type == SK_JSON_NULL) {
        *out = -1;
        return SHRINK_OK;
    }
    return get_i32(j, key, name, 0, def, out);
}

/* ---- architecture --------------------------------------------------------------------- */

static shrink_status find_arch(const sk_json *j, const char *name, const sk_arch **out) {
    const char *mt = sk_json_get_str(j, "model_type");
    if (!mt) {
        const sk_json *a = sk_json_get(j, "architectures");
        if (a && a->type == SK_JSON_ARRAY && a->len > 0 && a->items[0].type == SK_JSON_STRING) {
            for (int i = 0; sk_arch_at(i); i++)
                if (strcmp(a->items[0].str, sk_arch_at(i)->hf_class) == 0)
                    mt = sk_arch_at(i)->name;
            if (!mt)
                return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: architectures[0] '%.64s' is not "
                                "supported", name, a->items[0].str);
        }
    }
    if (!mt) return sk_error(SHRINK_ERR_FORMAT, "%s: missing field 'model_type'", name);
    *out = sk_arch_find(mt);
    if (!*out)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: model_type '%.64s' is not supported "
                        "(supported: llama, mistral, qwen2, gpt2)", name, mt);
    return SHRINK_OK;
}

/* ---- per family ----------------------------------------------------------------------- */

/* rope_theta, or transformers 5's rope_parameters; rope_scaling must be absent. */
static shrink_status parse_rope(const sk_json *j, const char *name, sk_config *c) {
    const sk_json *rs = sk_json_get(j, "rope_scaling");
    if (rs && rs->type != SK_JSON_NULL)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: rope_scaling is set; only unscaled RoPE is "
                        "supported", name);
    shrink_status st = get_f32(j, "rope_theta", name, 10000.0f, &c->rope_theta);
    if (st) return st;
    const sk_json *rp = sk_json_get(j, "rope_parameters");
    if (!rp || rp->type == SK_JSON_NULL) return SHRINK_OK;
    if (rp->type != SK_JSON_OBJECT)
        return sk_error(SHRINK_ERR_FORMAT, "%s: field 'rope_parameters' must be an object", name);
    const sk_json *rt = sk_json_get(rp, "rope_type");
    if (!rt) rt = sk_json_get(rp, "type");
    if (rt && rt->type != SK_JSON_NULL &&
        (rt->type != SK_JSON_STRING || strcmp(rt->str, "default") != 0))
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: rope_parameters.rope_type '%.32s' is not "
                        "supported (only 'default')", name,
                        rt->type == SK_JSON_STRING ? rt->str : "(not a string)");
    return get_f32(rp, "rope_theta", name, c->rope_theta, &c->rope_theta);
}

static shrink_status parse_llama(const sk_json *j, const char *name, sk_config *c) {
    static const char *const silu[] = {"silu", NULL};
    shrink_status st;
    int attn_bias = 0, mlp_bias = 0;
    if ((st = get_i32(j, "hidden_size", name, 1, 0, &c->dim)) ||
        (st = get_i32(j, "intermediate_size", name, 1, 0, &c->ffn_dim)) ||
        (st = get_i32(j, "num_hidden_layers", name, 1, 0, &c->n_layers)) ||
        (st = get_i32(j, "num_attention_heads", name, 1, 0, &c->n_heads)) ||
        (st = get_i32(j, "num_key_value_heads", name, 0, c->n_heads, &c->n_kv_heads)) ||
        (st = get_i32(j, "vocab_size", name, 1, 0, &c->vocab_size)) ||
        (st = get_i32(j, "max_position_embeddings", name, 0, 2048, &c->max_seq_len)) ||
        (st = get_f32(j, "rms_norm_eps", name, 1e-6f, &c->norm_eps)) ||
        (st = parse_rope(j, name, c)) ||
        (st = check_str(j, "hidden_act", name, silu)) ||
        (st = get_bool(j, "attention_bias", name, 0, &attn_bias)) ||
        (st = get_bool(j, "mlp_bias", name, 0, &mlp_bias)))
        return st;
    if (mlp_bias)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: mlp_bias = true is not supported", name);
    if (c->n_heads <= 0)
        return sk_error(SHRINK_ERR_FORMAT, "%s: num_attention_heads is %" PRId32 " but must be "
                        "positive", name, c->n_heads);
    if ((st = get_i32(j, "head_dim", name, 0, c->dim / c->n_heads, &c->head_dim))) return st;
    c->qkv_bias = c->arch->qkv_bias || attn_bias;
    c->rope_layout = SK_ROPE_HALF;

    /* sliding-window attention (mistral, qwen2) is not something the decoder does */
    int use_sw = 1;
    if ((st = get_bool(j, "use_sliding_window", name, 1, &use_sw))) return st;
    const sk_json *sw = sk_json_get(j, "sliding_window");
    if (use_sw && sw && sw->type != SK_JSON_NULL) {
        if (sw->type != SK_JSON_NUMBER || !sw->is_int)
            return sk_error(SHRINK_ERR_FORMAT, "%s: field 'sliding_window' must be an integer",
                            name);
        if (sw->integer < c->max_seq_len)
            return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: sliding_window %" PRId64 " is shorter "
                            "than max_position_embeddings %" PRId32 "; sliding-window attention "
                            "is not supported", name, sw->integer, c->max_seq_len);
    }
    return SHRINK_OK;
}

static shrink_status parse_gpt2(const sk_json *j, const char *name, sk_config *c) {
    static const char *const gelu[] = {"gelu_new", "gelu_pytorch_tanh", NULL};
    shrink_status st;
    int32_t n_ctx;
    int scale = 1, by_layer = 0, upcast = 0;
    if ((st = get_i32(j, "n_embd", name, 1, 0, &c->dim)) ||
        (st = get_i32(j, "n_layer", name, 1, 0, &c->n_layers)) ||
        (st = get_i32(j, "n_head", name, 1, 0, &c->n_heads)) ||
        (st = get_i32(j, "vocab_size", name, 0, 50257, &c->vocab_size)) ||
        (st = get_i32(j, "n_ctx", name, 0, 1024, &n_ctx)) ||
        (st = get_i32(j, "n_positions", name, 0, n_ctx, &c->max_seq_len)) ||
        (st = get_f32(j, "layer_norm_epsilon", name, 1e-5f, &c->norm_eps)) ||
        (st = check_str(j, "activation_function", name, gelu)) ||
        (st = get_bool(j, "scale_attn_weights", name, 1, &scale)) ||
        (st = get_bool(j, "scale_attn_by_inverse_layer_idx", name, 0, &by_layer)) ||
        (st = get_bool(j, "reorder_and_upcast_attn", name, 0, &upcast)))
        return st;
    if (!scale || by_layer)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: %s is not supported", name,
                        !scale ? "scale_attn_weights = false" : "scale_attn_by_inverse_layer_idx");
    if (c->dim > SK_CFG_MAX_DIM)
        return sk_error(SHRINK_ERR_FORMAT, "%s: n_embd %" PRId32 " is too large", name, c->dim);
    if ((st = get_i32(j, "n_inner", name, 0, 4 * c->dim, &c->ffn_dim))) return st;
    c->n_kv_heads = c->n_heads;
    c->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
    c->rope_theta = 0;
    c->rope_layout = SK_ROPE_HALF;
    c->qkv_bias = 1;
    (void)upcast; /* an attention-precision detail; the decoder computes in f32 anyway */
    return SHRINK_OK;
}

/* ---- entry points --------------------------------------------------------------------- */

static shrink_status parse_tok_config(const char *text, size_t len, const char *name,
                                      sk_config *c) {
    sk_json *t;
    shrink_status st = sk_json_parse(text, len, name, &t);
    if (st) return st;
    if (t->type != SK_JSON_OBJECT)
        st = sk_error(SHRINK_ERR_FORMAT, "%s: not a JSON object", name);
    else
        st = get_bool(t, "add_bos_token", name, c->add_bos, &c->add_bos);
    sk_json_free(t);
    return st;
}

/* Per Hugging Face family (sk_arch.hf): the size keys' reader and the token ids
 * transformers defaults to. */
static const struct {
    shrink_status (*parse)(const sk_json *j, const char *name, sk_config *c);
    int32_t bos, eos;
} hf_families[SK_HF_FAMILIES] = {
    [SK_HF_LLAMA] = {parse_llama, 1, 2},
    [SK_HF_GPT2]  = {parse_gpt2, 50256, 50256},
};

static shrink_status config_parse_named(const char *text, size_t len, const char *name,
                                        const char *tok_config, size_t tok_len,
                                        const char *tok_name, sk_config *c) {
    static const char *const dtypes[] = {"float32", "float16", "bfloat16", NULL};
    memset(c, 0, sizeof *c);
    sk_json *j;
    shrink_status st = sk_json_parse(text, len, name, &j);
    if (st) return st;
    if (j->type != SK_JSON_OBJECT) {
        st = sk_error(SHRINK_ERR_FORMAT, "%s: not a JSON object", name);
        goto out;
    }
    if ((st = find_arch(j, name, &c->arch))) goto out;
    if ((st = hf_families[c->arch->hf].parse(j, name, c))) goto out;
    if ((st = get_bool(j, "tie_word_embeddings", name, c->arch->tied, &c->tied)) ||
        (st = check_str(j, "torch_dtype", name, dtypes)) ||
        (st = check_str(j, "dtype", name, dtypes)) ||
        (st = get_token_id(j, "bos_token_id", name, hf_families[c->arch->hf].bos, &c->bos_id)) ||
        (st = get_token_id(j, "eos_token_id", name, hf_families[c->arch->hf].eos, &c->eos_id)))
        goto out;
    /* the Hugging Face defaults (Llama 1/2, GPT-2 50256) only where the vocabulary has them */
    if (!sk_json_get(j, "bos_token_id") && c->bos_id >= c->vocab_size) c->bos_id = -1;
    if (!sk_json_get(j, "eos_token_id") && c->eos_id >= c->vocab_size) c->eos_id = -1;
    c->add_bos = c->arch->add_bos;
    if (tok_config && (st = parse_tok_config(tok_config, tok_len, tok_name, c))) goto out;
    st = sk_config_validate(c, name);
out:
    sk_json_free(j);
    return st;
}

shrink_status sk_config_parse(const char *text, size_t len, const char *name,
                              const char *tok_config, size_t tok_len, sk_config *cfg) {
    return config_parse_named(text, len, name, tok_config, tok_len, "tokenizer_config.json", cfg);
}

shrink_status sk_config_load(const char *dir, sk_config *cfg) {
    char *path = sk_path_join(dir, "config.json");
    char *tpath = sk_path_join(dir, "tokenizer_config.json");
    char *text = NULL, *ttext = NULL;
    size_t len = 0, tlen = 0;
    shrink_status st;
    if (!path || !tpath) {
        st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", dir);
        goto out;
    }
    if ((st = sk_read_file(path, SK_CFG_MAX_FILE, &text, &len))) goto out;
    if (sk_file_exists(tpath) && (st = sk_read_file(tpath, SK_CFG_MAX_FILE, &ttext, &tlen)))
        goto out;
    st = config_parse_named(text, len, path, ttext, tlen, tpath, cfg);
out:
    sk_free(text);
    sk_free(ttext);
    sk_free(path);
    sk_free(tpath);
    return st;
}
