/*
 * lora.c - LoRA adapters: the PEFT and llama.cpp GGUF readers and the run-time product
 * (lora.h). Both formats end in the same sk_lora: f32 A (r, in) and B (out, r) per adapted
 * projection, checked against the base model's config before anything runs.
 */
#include "lora.h"
#include "../core/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LORA_STACK_FLOATS 4096 /* f32 of X A^T held on the stack per chunk of tokens */
#define LORA_MAX_RANK     1024

static const char *const peft_mod[SK_LORA_N_LIN] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                     "gate_proj", "up_proj", "down_proj"};
static const char *const gguf_mod[SK_LORA_N_LIN] = {"attn_q", "attn_k", "attn_v",
                                                     "attn_output", "ffn_gate", "ffn_up",
                                                     "ffn_down"};

int sk_lora_gguf_linear(const char *name, int *layer) {
    int l, n = 0;
    char mod[32];
    if (sscanf(name, "blk.%d.%31[^.].weight%n", &l, mod, &n) != 2 || name[n] != '\0' || l < 0)
        return -1;
    for (int w = 0; w < SK_LORA_N_LIN; w++)
        if (!strcmp(mod, gguf_mod[w])) {
            *layer = l;
            return w;
        }
    return -1;
}

/* (out, in) of projection `which` for config c. */
static void lin_shape(const sk_config *c, int which, int64_t *out, int64_t *in) {
    int64_t D = c->dim, Q = (int64_t)c->n_heads * c->head_dim;
    int64_t KV = (int64_t)c->n_kv_heads * c->head_dim, F = c->ffn_dim;
    switch (which) {
    case SK_LIN_Q: *out = Q; *in = D; break;
    case SK_LIN_K: case SK_LIN_V: *out = KV; *in = D; break;
    case SK_LIN_O: *out = D; *in = Q; break;
    case SK_LIN_GATE: case SK_LIN_UP: *out = F; *in = D; break;
    default: *out = D; *in = F; break;
    }
}

void sk_lora_free(sk_lora *a) {
    while (a) {
        sk_lora *next = a->next;
        if (a->pairs)
            for (int64_t i = 0; i < (int64_t)a->n_layers * SK_LORA_N_LIN; i++) {
                sk_free(a->pairs[i].A);
                sk_free(a->pairs[i].B);
            }
        sk_free(a->pairs);
        sk_free(a->path);
        sk_free(a);
        a = next;
    }
}

/* Stores one tensor (A when !is_b) of layer l, projection which, given in dtype dt with
 * PyTorch shape (rows, cols), converting it to f32 and checking it. */
static shrink_status put(sk_lora *a, const sk_config *c, const char *tname, int l, int which,
                         int is_b, shrink_dtype dt, int32_t n_dims, const int64_t *shape,
                         const void *data) {
    if (l < 0 || l >= c->n_layers)
        return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': layer %d but the base model has %d",
                        a->path, tname, l, c->n_layers);
    if (c->arch->ffn != SK_FFN_SWIGLU && which == SK_LIN_GATE)
        return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': the base model has no gate projection",
                        a->path, tname);
    if (dt != SHRINK_DTYPE_F32 && dt != SHRINK_DTYPE_F16 && dt != SHRINK_DTYPE_BF16)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s (f32, f16, bf16 only)",
                        a->path, tname, shrink_dtype_name(dt));
    if (n_dims != 2)
        return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': %d dimensions, expected 2", a->path,
                        tname, n_dims);
    sk_lora_pair *p = &a->pairs[(size_t)l * SK_LORA_N_LIN + which];
    int64_t out, in;
    lin_shape(c, which, &out, &in);
    int64_t r = is_b ? shape[1] : shape[0];
    int64_t other = is_b ? shape[0] : shape[1], want = is_b ? out : in;
    if (other != want)
        return sk_error(SHRINK_ERR_FORMAT,
                        "%s: tensor '%s': shape (%lld, %lld) does not fit the base model's %s of "
                        "layer %d, which is (%lld, %lld)", a->path, tname, (long long)shape[0],
                        (long long)shape[1], gguf_mod[which], l, (long long)out, (long long)in);
    if (r > LORA_MAX_RANK)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: tensor '%s': rank %lld (at most %d)", a->path,
                        tname, (long long)r, LORA_MAX_RANK);
    if (r < 1 || r > (out < in ? out : in))
        return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': rank %lld not in [1, %lld]", a->path,
                        tname, (long long)r, (long long)(out < in ? out : in));
    if ((is_b ? p->B : p->A))
        return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s' appears twice", a->path, tname);
    if (p->r && p->r != r)
        return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': rank %lld but its pair has rank %lld",
                        a->path, tname, (long long)r, (long long)p->r);
    size_t n = (size_t)shape[0] * (size_t)shape[1];
    float *f = sk_aligned_alloc(64, n * sizeof(float));
    if (!f) return sk_error(SHRINK_ERR_NOMEM, "%s: tensor '%s': out of memory", a->path, tname);
    if (dt == SHRINK_DTYPE_F32) memcpy(f, data, n * sizeof(float));
    else {
        const uint8_t *b = data;
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, b + 2 * i, 2);
            f[i] = dt == SHRINK_DTYPE_F16 ? sk_f16_to_f32(h) : sk_bf16_to_f32(h);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(f[i])) {
            double v = f[i];
            sk_free(f);
            return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': element %zu is not finite (%g)",
                            a->path, tname, i, v);
        }
    if (is_b) p->B = f;
    else p->A = f;
    p->r = r;
    p->in = in;
    p->out = out;
    a->n_params += (int64_t)n;
    return SHRINK_OK;
}

/* Parses "<mod>.lora_A.weight" style tails: returns which (0..6) or -1; *is_b set. */
static int mod_index(const char *const names[], const char *s, size_t len) {
    for (int i = 0; i < SK_LORA_N_LIN; i++)
        if (strlen(names[i]) == len && !strncmp(names[i], s, len)) return i;
    return -1;
}

/* PEFT: [base_model.model.]model.layers.N.(self_attn|mlp).<mod>.lora_(A|B)[.default].weight */
static shrink_status peft_name(const sk_lora *a, const char *name, int *l, int *which, int *is_b) {
    const char *s = name;
    if (!strncmp(s, "base_model.model.", 17)) s += 17;
    char *end;
    if (strncmp(s, "model.layers.", 13)) goto bad;
    s += 13;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '.' || v < 0 || v > 1 << 20) goto bad;
    *l = (int)v;
    s = end + 1;
    if (!strncmp(s, "self_attn.", 10)) s += 10;
    else if (!strncmp(s, "mlp.", 4)) s += 4;
    else goto bad;
    const char *dot = strstr(s, ".lora_");
    if (!dot) goto bad;
    *which = mod_index(peft_mod, s, (size_t)(dot - s));
    if (*which < 0)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: tensor '%s': module '%.*s' is not one shrink "
                        "adapts (q_proj k_proj v_proj o_proj gate_proj up_proj down_proj)",
                        a->path, name, (int)(dot - s), s);
    s = dot + 6;
    if (*s != 'A' && *s != 'B') goto bad;
    *is_b = *s == 'B';
    s++;
    if (!strcmp(s, ".weight") || !strcmp(s, ".default.weight")) return SHRINK_OK;
bad:
    return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: tensor '%s' is not a LoRA tensor shrink knows "
                    "(model.layers.N.self_attn|mlp.<module>.lora_A|lora_B.weight)", a->path, name);
}

static shrink_status read_peft(sk_lora *a, const sk_config *c, const char *dir,
                               const char *st_path, int *targets) {
    char *cfg_path = sk_path_join(dir, "adapter_config.json");
    char *text = NULL;
    size_t len = 0;
    sk_json *j = NULL;
    sk_map map = {0};
    sk_tensor *t = NULL;
    int64_t n = 0;
    shrink_status st;
    if (!cfg_path) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", a->path);
    if ((st = sk_read_file(cfg_path, 1u << 20, &text, &len)) != SHRINK_OK) goto out;
    if ((st = sk_json_parse(text, len, cfg_path, &j)) != SHRINK_OK) goto out;
    const char *pt = sk_json_get_str(j, "peft_type");
    if (pt && strcmp(pt, "LORA")) {
        st = sk_error(SHRINK_ERR_UNSUPPORTED, "%s: peft_type '%s' (LORA only)", cfg_path, pt);
        goto out;
    }
    int64_t r = 0;
    double alpha = 0;
    int rs = 0, fifo = 0;
    if (!sk_json_get_int(j, "r", &r) || r < 1) {
        st = sk_error(SHRINK_ERR_FORMAT, "%s: 'r' missing or not a positive integer", cfg_path);
        goto out;
    }
    if (!sk_json_get_num(j, "lora_alpha", &alpha) || !isfinite(alpha)) {
        st = sk_error(SHRINK_ERR_FORMAT, "%s: 'lora_alpha' missing or not a number", cfg_path);
        goto out;
    }
    sk_json_get_bool(j, "use_rslora", &rs);
    sk_json_get_bool(j, "fan_in_fan_out", &fifo);
    if (fifo) {
        st = sk_error(SHRINK_ERR_UNSUPPORTED, "%s: fan_in_fan_out (Conv1D bases) is not supported",
                      cfg_path);
        goto out;
    }
    const sk_json *rp = sk_json_get(j, "rank_pattern");
    const sk_json *ap = sk_json_get(j, "alpha_pattern");
    if ((rp && rp->type == SK_JSON_OBJECT && rp->len) || (ap && ap->type == SK_JSON_OBJECT && ap->len)) {
        st = sk_error(SHRINK_ERR_UNSUPPORTED, "%s: rank_pattern/alpha_pattern are not supported",
                      cfg_path);
        goto out;
    }
    const sk_json *tm = sk_json_get(j, "target_modules");
    if (tm && tm->type == SK_JSON_ARRAY) {
        for (size_t i = 0; i < tm->len; i++) {
            const sk_json *e = &tm->items[i];
            int w = e->type == SK_JSON_STRING ? mod_index(peft_mod, e->str, strlen(e->str)) : -1;
            if (w < 0) {
                st = sk_error(SHRINK_ERR_UNSUPPORTED, "%s: target module '%s' is not one shrink "
                              "adapts (q_proj k_proj v_proj o_proj gate_proj up_proj down_proj)",
                              cfg_path, e->type == SK_JSON_STRING ? e->str : "?");
                goto out;
            }
            targets[w] = 1;
        }
    } else {
        for (int w = 0; w < SK_LORA_N_LIN; w++) targets[w] = 1; /* a regex or "all-linear" */
    }
    a->r = r;
    a->alpha = alpha;
    a->scale = (float)(a->user_scale * alpha / (rs ? sqrt((double)r) : (double)r));
    if ((st = sk_map_file(st_path, &map)) != SHRINK_OK) goto out;
    if ((st = sk_safetensors_parse(map.data, map.size, st_path, &t, &n)) != SHRINK_OK) goto out;
    for (int64_t i = 0; i < n; i++) {
        int l = 0, w = 0, b = 0;
        if ((st = peft_name(a, t[i].name, &l, &w, &b)) != SHRINK_OK) goto out;
        if (!targets[w]) {
            st = sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': module %s is not in target_modules",
                          a->path, t[i].name, peft_mod[w]);
            goto out;
        }
        if ((st = put(a, c, t[i].name, l, w, b, t[i].dtype, t[i].n_dims, t[i].shape,
                      t[i].data)) != SHRINK_OK)
            goto out;
        if (a->pairs[(size_t)l * SK_LORA_N_LIN + w].r != r) {
            st = sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': rank %lld but r is %lld", a->path,
                          t[i].name, (long long)a->pairs[(size_t)l * SK_LORA_N_LIN + w].r,
                          (long long)r);
            goto out;
        }
    }
out:
    if (t) sk_tensors_free(t, n);
    sk_unmap(&map);
    sk_json_free(j);
    sk_free(text);
    sk_free(cfg_path);
    return st;
}

/* A GGUF string value equals s. */
static int kv_is(const sk_gguf *g, const char *key, const char *s) {
    const sk_gguf_kv *kv = sk_gguf_find(g, key);
    return kv && kv->val.type == SK_GGUF_STRING && kv->val.v.s.len == strlen(s) &&
           !memcmp(kv->val.v.s.s, s, kv->val.v.s.len);
}

static shrink_status read_gguf(sk_lora *a, const sk_config *c) {
    sk_map map = {0};
    sk_gguf *g = NULL;
    shrink_status st;
    if ((st = sk_map_file(a->path, &map)) != SHRINK_OK) return st;
    if ((st = sk_gguf_parse(map.data, map.size, a->path, &g)) != SHRINK_OK) goto out;
    if (!kv_is(g, "general.type", "adapter") || !kv_is(g, "adapter.type", "lora")) {
        st = sk_error(SHRINK_ERR_FORMAT, "%s: not a LoRA adapter (general.type must be 'adapter' "
                      "and adapter.type 'lora'; a model is given as MODEL, not --lora)", a->path);
        goto out;
    }
    if (!kv_is(g, "general.architecture", c->arch->gguf_arch ? c->arch->gguf_arch : "?")) {
        st = sk_error(SHRINK_ERR_FORMAT, "%s: general.architecture is not the base model's '%s'",
                      a->path, c->arch->gguf_arch ? c->arch->gguf_arch : c->arch->name);
        goto out;
    }
    double alpha = 0;
    const sk_gguf_kv *kv = sk_gguf_find(g, "adapter.lora.alpha");
    if (kv && (kv->val.type == SK_GGUF_FLOAT32 || kv->val.type == SK_GGUF_FLOAT64))
        alpha = kv->val.v.f;
    char name[SK_GGUF_MAX_NAME + 1];
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const sk_gguf_tensor *t = &g->tensors[i];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.s);
        int l, consumed = 0;
        char mod[32], ab;
        if (sscanf(name, "blk.%d.%31[a-z_].weight.lora_%c%n", &l, mod, &ab, &consumed) != 3 ||
            name[consumed] || (ab != 'a' && ab != 'b')) {
            st = sk_error(SHRINK_ERR_UNSUPPORTED, "%s: tensor '%s' is not a LoRA tensor shrink "
                          "knows (blk.N.<name>.weight.lora_a|lora_b)", a->path, name);
            goto out;
        }
        int w = mod_index(gguf_mod, mod, strlen(mod));
        if (w < 0) {
            st = sk_error(SHRINK_ERR_UNSUPPORTED, "%s: tensor '%s': '%s' is not a projection shrink "
                          "adapts", a->path, name, mod);
            goto out;
        }
        shrink_dtype dt = t->type == 0 ? SHRINK_DTYPE_F32 : t->type == 1 ? SHRINK_DTYPE_F16
                        : t->type == 30 ? SHRINK_DTYPE_BF16 : SHRINK_DTYPE_COUNT;
        if (dt == SHRINK_DTYPE_COUNT) {
            st = sk_error(SHRINK_ERR_UNSUPPORTED, "%s: tensor '%s': type %s (f32, f16, bf16 only)",
                          a->path, name, sk_ggml_type_name(t->type));
            goto out;
        }
        int64_t shape[2] = {t->n_dims == 2 ? t->ne[1] : 0, t->ne[0]};
        if ((st = put(a, c, name, l, w, ab == 'b', dt, (int32_t)t->n_dims, shape, t->data)) !=
            SHRINK_OK)
            goto out;
        if (a->pairs[(size_t)l * SK_LORA_N_LIN + w].r > a->r)
            a->r = a->pairs[(size_t)l * SK_LORA_N_LIN + w].r;
    }
    if (a->r > 0) {
        if (alpha <= 0) alpha = (double)a->r; /* llama.cpp: no alpha means scale 1 */
        a->alpha = alpha;
        a->scale = (float)(a->user_scale * alpha / (double)a->r);
    }
out:
    sk_gguf_free(g);
    sk_unmap(&map);
    return st;
}

void sk_lora_permute_b(const float *B, float *dst, int64_t out, int64_t r, int64_t hd,
                       sk_rope_layout from) {
    size_t rb = (size_t)r * sizeof(float);
    int64_t half = hd / 2;
    for (int64_t h = 0; h < out / hd; h++)
        for (int64_t i = 0; i < half; i++)
            for (int k = 0; k < 2; k++) {
                int64_t inter = h * hd + 2 * i + k, hf = h * hd + i + k * half;
                int64_t src = from == SK_ROPE_INTERLEAVED ? inter : hf;
                int64_t dst_row = from == SK_ROPE_INTERLEAVED ? hf : inter;
                memcpy(dst + dst_row * r, B + src * r, rb);
            }
}

/* Permutes the rows of B (out, r) of q or k from layout `from` to the other one. */
static shrink_status permute_b(sk_lora_pair *p, int64_t hd, sk_rope_layout from) {
    float *t = sk_aligned_alloc(64, (size_t)p->out * (size_t)p->r * sizeof(float));
    if (!t) return sk_error(SHRINK_ERR_NOMEM, "LoRA: out of memory");
    sk_lora_permute_b(p->B, t, p->out, p->r, hd, from);
    sk_free(p->B);
    p->B = t;
    return SHRINK_OK;
}

shrink_status sk_lora_read(const char *path, const sk_config *cfg, sk_rope_layout layout,
                           double user_scale, sk_lora **out) {
    *out = NULL;
    if (!path || !cfg) return sk_error(SHRINK_ERR_ARG, "LoRA: NULL path or config");
    if (!isfinite(user_scale))
        return sk_error(SHRINK_ERR_ARG, "%s: scale %g is not finite", path, user_scale);
    if (cfg->arch->fused_qkv)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: LoRA on a %s base (fused q|k|v) is not "
                        "supported yet", path, cfg->arch->name);
    sk_lora *a = sk_calloc(1, sizeof *a);
    if (!a) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    a->path = sk_strdup(path);
    a->n_layers = cfg->n_layers;
    a->user_scale = user_scale;
    a->layout = layout;
    a->pairs = sk_calloc((size_t)cfg->n_layers * SK_LORA_N_LIN, sizeof *a->pairs);
    shrink_status st = SHRINK_OK;
    if (!a->path || !a->pairs) {
        st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    int targets[SK_LORA_N_LIN] = {0};
    size_t n = strlen(path);
    sk_rope_layout native;
    if (n >= 5 && !strcmp(path + n - 5, ".gguf")) {
        a->format = "gguf";
        native = SK_ROPE_INTERLEAVED;
        st = read_gguf(a, cfg);
    } else {
        a->format = "peft";
        native = SK_ROPE_HALF;
        char *dir, *stp;
        if (sk_dir_exists(path)) {
            dir = sk_strdup(path);
            stp = sk_path_join(path, "adapter_model.safetensors");
        } else {
            dir = sk_path_dir(path);
            stp = sk_strdup(path);
        }
        if (!dir || !stp) st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
        else st = read_peft(a, cfg, dir, stp, targets);
        sk_free(dir);
        sk_free(stp);
    }
    if (st != SHRINK_OK) goto fail;
    for (int l = 0; l < cfg->n_layers; l++)
        for (int w = 0; w < SK_LORA_N_LIN; w++) {
            sk_lora_pair *p = &a->pairs[(size_t)l * SK_LORA_N_LIN + w];
            if (!p->A && !p->B) continue;
            if (!p->A || !p->B) {
                st = sk_error(SHRINK_ERR_FORMAT, "%s: layer %d %s has lora_%s but no lora_%s", path,
                              l, a->format[0] == 'g' ? gguf_mod[w] : peft_mod[w],
                              p->A ? "A" : "B", p->A ? "B" : "A");
                goto fail;
            }
            a->n_pairs++;
            if ((w == SK_LIN_Q || w == SK_LIN_K) && native != layout &&
                (st = permute_b(p, cfg->head_dim, native)) != SHRINK_OK)
                goto fail;
        }
    if (a->n_pairs == 0) {
        st = sk_error(SHRINK_ERR_FORMAT, "%s: no LoRA tensors", path);
        goto fail;
    }
    *out = a;
    return SHRINK_OK;
fail:
    sk_lora_free(a);
    return st;
}

void sk_lora_apply(const sk_lora *list, int l, sk_linear which, const float *X, int64_t T,
                   float *Y, int64_t ldy) {
    if (which >= SK_LORA_N_LIN) return;
    for (const sk_lora *a = list; a; a = a->next) {
        const sk_lora_pair *p = &a->pairs[(size_t)l * SK_LORA_N_LIN + which];
        if (!p->A) continue;
        float U[LORA_STACK_FLOATS];
        const int64_t r = p->r, out = p->out;
        const int64_t chunk = LORA_STACK_FLOATS / r;
        const float s = a->scale;
        for (int64_t t0 = 0; t0 < T; t0 += chunk) {
            int64_t tc = T - t0 < chunk ? T - t0 : chunk;
            /* U = X A^T (tc x r): r dots per token with the dispatched f32 dot, no allocation */
            #pragma omp parallel for schedule(static) if (tc * r * p->in > 65536)
            for (int64_t t = 0; t < tc; t++)
                for (int64_t k = 0; k < r; k++)
                    U[t * r + k] = sk_vec_dot_f32(p->A + k * p->in, X + (t0 + t) * p->in, p->in);
            #pragma omp parallel for schedule(static) if (tc * out * r > 65536)
            for (int64_t o = 0; o < out; o++) {
                const float *b = p->B + o * r;
                for (int64_t t = 0; t < tc; t++) {
                    const float *u = U + t * r;
                    float acc = 0.f;
                    for (int64_t k = 0; k < r; k++) acc += b[k] * u[k];
                    Y[(t0 + t) * ldy + o] += s * acc;
                }
            }
        }
    }
}

/* ---- public API ------------------------------------------------------------------------ */

shrink_status shrink_model_add_lora(shrink_model *m, const char *path, double scale) {
    if (!m || !path) return sk_error(SHRINK_ERR_ARG, "adapter: no model or no adapter path given");
    if (!m->layers)
        return sk_error(SHRINK_ERR_ARG, "%s: the model has no weights to apply it to",
                        path);
    sk_lora *a;
    shrink_status st = sk_lora_read(path, &m->cfg, m->cfg.rope_layout, scale, &a);
    if (st != SHRINK_OK) return st;
    sk_lora **end = &m->lora;
    while (*end) end = &(*end)->next;
    *end = a;
    return SHRINK_OK;
}

int shrink_model_n_lora(const shrink_model *m) {
    int n = 0;
    for (const sk_lora *a = m ? m->lora : NULL; a; a = a->next) n++;
    return n;
}

shrink_status shrink_model_lora(const shrink_model *m, int i, shrink_lora_info *info) {
    const sk_lora *a = m ? m->lora : NULL;
    for (int k = 0; a && k < i; k++) a = a->next;
    if (!a || i < 0 || !info) return sk_error(SHRINK_ERR_RANGE, "no adapter %d", i);
    info->path = a->path;
    info->format = a->format;
    info->rank = a->r;
    info->alpha = a->alpha;
    info->scale = a->user_scale;
    info->n_pairs = a->n_pairs;
    info->n_params = a->n_params;
    return SHRINK_OK;
}
