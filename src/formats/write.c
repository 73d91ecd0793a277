/*
 * write.c - what every writer shares: the canonical tensor list, the streaming of one tensor
 * block by block (RoPE row permutation, Conv1D transposes, conversion by the source) and
 * sk_write's dispatch to the GGUF (gguf.c), Hugging Face (hf.c) and llama2.c (llama2c.c)
 * writers, which write through the atomic output files of src/core/out.c.
 *
 * Streaming: a tensor is written in blocks of about SK_WRITE_BLOCK_BYTES (whole heads for
 * q/k, whose rows may be permuted); the source fills each block already converted to the
 * output dtype. The source over a model (src/model/source.c) reads its file tensors through
 * the mapping and drops each tensor's pages once it is written, so the resident set stays at
 * about one block plus the headers whatever the model's size.
 *
 * Not here: format layouts (see the writer files and docs/formats.md), the public
 * shrink_convert (src/convert/convert.c).
 */
#include "formats.h"

/* ==== formats ============================================================================ */

static const char *const format_names[SK_FORMAT_COUNT] = {
    [SK_FORMAT_GGUF]    = "gguf",
    [SK_FORMAT_HF]      = "hf",
    [SK_FORMAT_LLAMA2C] = "llama2c",
};

const char *sk_format_name(sk_format f) {
    return f >= 0 && f < SK_FORMAT_COUNT ? format_names[f] : "?";
}

int sk_format_parse(const char *name) {
    if (!name) return -1;
    for (int f = 0; f < SK_FORMAT_COUNT; f++)
        if (strcmp(name, format_names[f]) == 0) return f;
    if (strcmp(name, "safetensors") == 0) return SK_FORMAT_HF;
    return -1;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

sk_format sk_format_from_path(const char *path) {
    if (ends_with(path, ".gguf")) return SK_FORMAT_GGUF;
    if (ends_with(path, ".bin")) return SK_FORMAT_LLAMA2C;
    return SK_FORMAT_HF;
}

sk_write_opts sk_write_opts_default(void) {
    sk_write_opts o = {.dtype = -1, .shard_bytes = 0, .progress = NULL, .progress_user = NULL,
                       .tensor_dtype = NULL, .tensor_user = NULL, .file_type = -1};
    return o;
}

/* ==== the canonical tensor list ========================================================== */

/* Shape of a row in terms of the config. */
typedef enum wdim { WD_1, WD_D, WD_F, WD_V, WD_S, WD_Q, WD_KV, WD_QKV } wdim;

typedef struct wrow {
    sk_role     role;
    int         layer;    /* per layer */
    const char *llama;    /* canonical name, Llama naming (NULL: not in this family) */
    const char *gpt2;     /* canonical name, GPT-2 naming */
    wdim        rows, cols;
    int         need;     /* 0 always; 1 qkv bias (llama family); 2 untied head */
} wrow;

/* In canonical (writing) order. */
static const wrow wrows[] = {
    {SK_ROLE_TOK_EMB,      0, "model.embed_tokens.weight", "wte.weight", WD_V, WD_D, 0},
    {SK_ROLE_POS_EMB,      0, NULL, "wpe.weight", WD_S, WD_D, 0},
    {SK_ROLE_ATTN_NORM,    1, "model.layers.%d.input_layernorm.weight", "h.%d.ln_1.weight", WD_D, WD_1, 0},
    {SK_ROLE_ATTN_NORM_B,  1, NULL, "h.%d.ln_1.bias", WD_D, WD_1, 0},
    {SK_ROLE_WQ,           1, "model.layers.%d.self_attn.q_proj.weight", NULL, WD_Q, WD_D, 0},
    {SK_ROLE_WK,           1, "model.layers.%d.self_attn.k_proj.weight", NULL, WD_KV, WD_D, 0},
    {SK_ROLE_WV,           1, "model.layers.%d.self_attn.v_proj.weight", NULL, WD_KV, WD_D, 0},
    {SK_ROLE_BQ,           1, "model.layers.%d.self_attn.q_proj.bias", NULL, WD_Q, WD_1, 1},
    {SK_ROLE_BK,           1, "model.layers.%d.self_attn.k_proj.bias", NULL, WD_KV, WD_1, 1},
    {SK_ROLE_BV,           1, "model.layers.%d.self_attn.v_proj.bias", NULL, WD_KV, WD_1, 1},
    {SK_ROLE_WQKV,         1, NULL, "h.%d.attn.c_attn.weight", WD_QKV, WD_D, 0},
    {SK_ROLE_BQKV,         1, NULL, "h.%d.attn.c_attn.bias", WD_QKV, WD_1, 0},
    {SK_ROLE_WO,           1, "model.layers.%d.self_attn.o_proj.weight", "h.%d.attn.c_proj.weight", WD_D, WD_Q, 0},
    {SK_ROLE_BO,           1, NULL, "h.%d.attn.c_proj.bias", WD_D, WD_1, 0},
    {SK_ROLE_FFN_NORM,     1, "model.layers.%d.post_attention_layernorm.weight", "h.%d.ln_2.weight", WD_D, WD_1, 0},
    {SK_ROLE_FFN_NORM_B,   1, NULL, "h.%d.ln_2.bias", WD_D, WD_1, 0},
    {SK_ROLE_W_GATE,       1, "model.layers.%d.mlp.gate_proj.weight", NULL, WD_F, WD_D, 0},
    {SK_ROLE_W_UP,         1, "model.layers.%d.mlp.up_proj.weight", "h.%d.mlp.c_fc.weight", WD_F, WD_D, 0},
    {SK_ROLE_B_UP,         1, NULL, "h.%d.mlp.c_fc.bias", WD_F, WD_1, 0},
    {SK_ROLE_W_DOWN,       1, "model.layers.%d.mlp.down_proj.weight", "h.%d.mlp.c_proj.weight", WD_D, WD_F, 0},
    {SK_ROLE_B_DOWN,       1, NULL, "h.%d.mlp.c_proj.bias", WD_D, WD_1, 0},
    {SK_ROLE_FINAL_NORM,   0, "model.norm.weight", "ln_f.weight", WD_D, WD_1, 0},
    {SK_ROLE_FINAL_NORM_B, 0, NULL, "ln_f.bias", WD_D, WD_1, 0},
    {SK_ROLE_HEAD,         0, "lm_head.weight", "lm_head.weight", WD_V, WD_D, 2},
};
enum { N_WROWS = sizeof wrows / sizeof wrows[0] };

static int64_t wdim_value(const sk_config *c, wdim d) {
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    switch (d) {
    case WD_1:   return 1;
    case WD_D:   return c->dim;
    case WD_F:   return c->ffn_dim;
    case WD_V:   return c->vocab_size;
    case WD_S:   return c->max_seq_len;
    case WD_Q:   return q;
    case WD_KV:  return kv;
    case WD_QKV: return q + 2 * kv;
    }
    return 0;
}

/* Whether row r applies to config c. */
static int wrow_applies(const wrow *r, const sk_config *c) {
    int gpt2 = c->arch->names == SK_NAMES_GPT2;
    const char *name = gpt2 ? r->gpt2 : r->llama;
    if (!name) return 0;
    if (r->role == SK_ROLE_POS_EMB && c->arch->pos != SK_POS_LEARNED) return 0;
    if (r->role == SK_ROLE_W_GATE && c->arch->ffn != SK_FFN_SWIGLU) return 0;
    if (r->need == 1 && !c->qkv_bias) return 0;
    if (r->need == 2 && c->tied) return 0;
    return 1;
}

shrink_status sk_wtensors(const sk_config *c, sk_wtensor **out, int64_t *n_out) {
    *out = NULL;
    *n_out = 0;
    int64_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        n = 0;
        /* per-layer rows are emitted layer by layer, in table order within a layer */
        for (int i = 0; i < N_WROWS; i++) {
            const wrow *r = &wrows[i];
            if (r->layer || !wrow_applies(r, c)) continue;
            if (r->role == SK_ROLE_FINAL_NORM) break; /* final rows come after the layers */
            if (pass) {
                sk_wtensor *t = &(*out)[n];
                snprintf(t->name, sizeof t->name, "%s",
                         c->arch->names == SK_NAMES_GPT2 ? r->gpt2 : r->llama);
                t->role = r->role;
                t->layer = -1;
                t->rows = wdim_value(c, r->rows);
                t->cols = wdim_value(c, r->cols);
                t->n_dims = r->cols == WD_1 ? 1 : 2;
            }
            n++;
        }
        for (int l = 0; l < c->n_layers; l++) {
            for (int i = 0; i < N_WROWS; i++) {
                const wrow *r = &wrows[i];
                if (!r->layer || !wrow_applies(r, c)) continue;
                if (pass) {
                    sk_wtensor *t = &(*out)[n];
                    snprintf(t->name, sizeof t->name,
                             c->arch->names == SK_NAMES_GPT2 ? r->gpt2 : r->llama, l);
                    t->role = r->role;
                    t->layer = l;
                    t->rows = wdim_value(c, r->rows);
                    t->cols = wdim_value(c, r->cols);
                    t->n_dims = r->cols == WD_1 ? 1 : 2;
                }
                n++;
            }
        }
        int after = 0;
        for (int i = 0; i < N_WROWS; i++) {
            const wrow *r = &wrows[i];
            if (r->role == SK_ROLE_FINAL_NORM) after = 1;
            if (!after || r->layer || !wrow_applies(r, c)) continue;
            if (pass) {
                sk_wtensor *t = &(*out)[n];
                snprintf(t->name, sizeof t->name, "%s",
                         c->arch->names == SK_NAMES_GPT2 ? r->gpt2 : r->llama);
                t->role = r->role;
                t->layer = -1;
                t->rows = wdim_value(c, r->rows);
                t->cols = wdim_value(c, r->cols);
                t->n_dims = r->cols == WD_1 ? 1 : 2;
            }
            n++;
        }
        if (!pass) {
            *out = sk_calloc((size_t)n, sizeof **out);
            if (!*out) return sk_error(SHRINK_ERR_NOMEM, "sk_wtensors: out of memory");
        }
    }
    *n_out = n;
    return SHRINK_OK;
}

/* ==== streaming one tensor =============================================================== */

/* Row permutation of q/k between RoPE layouts, within each head of hd rows:
 * interleaved row h*hd + 2i + s  <->  rotate-half row h*hd + s*hd/2 + i. */
static void permute_rows(const uint8_t *src, uint8_t *dst, int64_t n_rows, size_t row_bytes,
                         int64_t hd, sk_rope_layout from) {
    for (int64_t h0 = 0; h0 < n_rows; h0 += hd) {
        for (int64_t i = 0; i < hd / 2; i++) {
            for (int s = 0; s < 2; s++) {
                int64_t inter = h0 + 2 * i + s, half = h0 + s * (hd / 2) + i;
                int64_t from_row = from == SK_ROPE_INTERLEAVED ? inter : half;
                int64_t to_row = from == SK_ROPE_INTERLEAVED ? half : inter;
                memcpy(dst + (size_t)to_row * row_bytes, src + (size_t)from_row * row_bytes,
                       row_bytes);
            }
        }
    }
}

/* Is role a q/k tensor whose rows follow the RoPE layout? */
static int role_is_rope(const sk_config *c, sk_role r) {
    if (c->arch->pos != SK_POS_ROPE) return 0;
    return r == SK_ROLE_WQ || r == SK_ROLE_WK || r == SK_ROLE_BQ || r == SK_ROLE_BK;
}

shrink_status sk_write_stream(const sk_source *src, const sk_wtensor *t, sk_out *o,
                              shrink_dtype dt, int transposed, sk_rope_layout layout,
                              sk_write_progress *pr) {
    const sk_config *c = &src->cfg;
    int64_t rows = transposed ? t->cols : t->rows;
    int64_t cols = transposed ? t->rows : t->cols;
    size_t row_bytes = (size_t)sk_dtype_row_bytes(dt, cols);
    int permute = role_is_rope(c, t->role) && layout != c->rope_layout && !transposed;
    int64_t unit = permute ? c->head_dim : 1;
    int64_t per = (int64_t)(SK_WRITE_BLOCK_BYTES / (row_bytes ? row_bytes : 1));
    per = per / unit * unit;
    if (per < unit) per = unit;
    if (per > rows) per = rows;
    if (per < 1) per = 1;
    size_t block = (size_t)per * row_bytes;
    uint8_t *buf = sk_aligned_alloc(64, block ? block : 1);
    uint8_t *perm = permute ? sk_aligned_alloc(64, block ? block : 1) : NULL;
    if (!buf || (permute && !perm)) {
        sk_free(buf);
        sk_free(perm);
        sk_out_abort(o);
        return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory for a block of '%s' (%zu bytes)",
                        o->path ? o->path : "output", t->name, block);
    }
    shrink_status st = SHRINK_OK;
    for (int64_t r0 = 0; r0 < rows && !st; r0 += per) {
        int64_t n = rows - r0 < per ? rows - r0 : per;
        st = src->fill(src->user, t, r0, n, transposed, dt, buf);
        if (st) {
            sk_out_abort(o);
            break;
        }
        const uint8_t *w = buf;
        if (permute) {
            permute_rows(buf, perm, n, row_bytes, c->head_dim, c->rope_layout);
            w = perm;
        }
        st = sk_out_write(o, w, (size_t)n * row_bytes);
        if (!st && pr) {
            pr->done += (int64_t)((size_t)n * row_bytes);
            if (pr->fn) pr->fn(pr->user, pr->done, pr->total);
        }
    }
    sk_free(buf);
    sk_free(perm);
    return st;
}

/* ==== a source over a model's file tensors =============================================== */

/* File names of each role, per naming scheme (%d = layer). GGUF names are llama.cpp's
 * (llama-arch.cpp LLM_TENSOR_NAMES); HF GPT-2 weights marked conv1d are stored (in, out). */
typedef struct src_name {
    sk_role     role;
    const char *hf_llama;
    const char *hf_gpt2;
    int         gpt2_conv1d;
    const char *gguf;
} src_name;

static const src_name src_names[] = {
    {SK_ROLE_TOK_EMB,      "model.embed_tokens.weight", "wte.weight", 0, "token_embd.weight"},
    {SK_ROLE_POS_EMB,      NULL, "wpe.weight", 0, "position_embd.weight"},
    {SK_ROLE_FINAL_NORM,   "model.norm.weight", "ln_f.weight", 0, "output_norm.weight"},
    {SK_ROLE_FINAL_NORM_B, NULL, "ln_f.bias", 0, "output_norm.bias"},
    {SK_ROLE_HEAD,         "lm_head.weight", "lm_head.weight", 0, "output.weight"},
    {SK_ROLE_ATTN_NORM,    "model.layers.%d.input_layernorm.weight", "h.%d.ln_1.weight", 0, "blk.%d.attn_norm.weight"},
    {SK_ROLE_ATTN_NORM_B,  NULL, "h.%d.ln_1.bias", 0, "blk.%d.attn_norm.bias"},
    {SK_ROLE_WQ,           "model.layers.%d.self_attn.q_proj.weight", NULL, 0, "blk.%d.attn_q.weight"},
    {SK_ROLE_WK,           "model.layers.%d.self_attn.k_proj.weight", NULL, 0, "blk.%d.attn_k.weight"},
    {SK_ROLE_WV,           "model.layers.%d.self_attn.v_proj.weight", NULL, 0, "blk.%d.attn_v.weight"},
    {SK_ROLE_BQ,           "model.layers.%d.self_attn.q_proj.bias", NULL, 0, "blk.%d.attn_q.bias"},
    {SK_ROLE_BK,           "model.layers.%d.self_attn.k_proj.bias", NULL, 0, "blk.%d.attn_k.bias"},
    {SK_ROLE_BV,           "model.layers.%d.self_attn.v_proj.bias", NULL, 0, "blk.%d.attn_v.bias"},
    {SK_ROLE_WQKV,         NULL, "h.%d.attn.c_attn.weight", 1, "blk.%d.attn_qkv.weight"},
    {SK_ROLE_BQKV,         NULL, "h.%d.attn.c_attn.bias", 0, "blk.%d.attn_qkv.bias"},
    {SK_ROLE_WO,           "model.layers.%d.self_attn.o_proj.weight", "h.%d.attn.c_proj.weight", 1, "blk.%d.attn_output.weight"},
    {SK_ROLE_BO,           NULL, "h.%d.attn.c_proj.bias", 0, "blk.%d.attn_output.bias"},
    {SK_ROLE_FFN_NORM,     "model.layers.%d.post_attention_layernorm.weight", "h.%d.ln_2.weight", 0, "blk.%d.ffn_norm.weight"},
    {SK_ROLE_FFN_NORM_B,   NULL, "h.%d.ln_2.bias", 0, "blk.%d.ffn_norm.bias"},
    {SK_ROLE_W_GATE,       "model.layers.%d.mlp.gate_proj.weight", NULL, 0, "blk.%d.ffn_gate.weight"},
    {SK_ROLE_W_UP,         "model.layers.%d.mlp.up_proj.weight", "h.%d.mlp.c_fc.weight", 1, "blk.%d.ffn_up.weight"},
    {SK_ROLE_B_UP,         NULL, "h.%d.mlp.c_fc.bias", 0, "blk.%d.ffn_up.bias"},
    {SK_ROLE_W_DOWN,       "model.layers.%d.mlp.down_proj.weight", "h.%d.mlp.c_proj.weight", 1, "blk.%d.ffn_down.weight"},
    {SK_ROLE_B_DOWN,       NULL, "h.%d.mlp.c_proj.bias", 0, "blk.%d.ffn_down.bias"},
};

static const src_name *src_name_of(sk_role r) {
    for (size_t i = 0; i < sizeof src_names / sizeof src_names[0]; i++)
        if (src_names[i].role == r) return &src_names[i];
    return NULL;
}

const char *sk_role_name(sk_role r, int gguf, int gpt2) {
    const src_name *s = src_name_of(r);
    if (!s) return NULL;
    return gguf ? s->gguf : gpt2 ? s->hf_gpt2 : s->hf_llama;
}

int sk_role_conv1d(sk_role r) {
    const src_name *s = src_name_of(r);
    return s ? s->gpt2_conv1d : 0;
}

/* The file tensor of canonical tensor t in model m, and whether it is stored transposed. */
static const sk_tensor *model_tensor(const struct shrink_model *m, const sk_wtensor *t,
                                     int *stored_t) {
    const src_name *s = src_name_of(t->role);
    int gguf = strcmp(m->format, "gguf") == 0;
    int gpt2 = m->cfg.arch->names == SK_NAMES_GPT2;
    *stored_t = 0;
    if (!s) return NULL;
    const char *pat = gguf ? s->gguf : gpt2 ? s->hf_gpt2 : s->hf_llama;
    if (!pat) return NULL;
    char base[128], full[160];
    snprintf(base, sizeof base, pat, t->layer);
    static const char *const pre_gpt2[] = {"transformer.", "", NULL};
    static const char *const pre_none[] = {"", NULL};
    const char *const *pre = gpt2 && !gguf ? pre_gpt2 : pre_none;
    for (int p = 0; pre[p]; p++) {
        snprintf(full, sizeof full, "%s%s", t->role == SK_ROLE_HEAD ? "" : pre[p], base);
        for (int64_t i = 0; i < m->n_tensors; i++) {
            if (strcmp(m->tensors[i].name, full) == 0) {
                *stored_t = gpt2 && !gguf && s->gpt2_conv1d;
                return &m->tensors[i];
            }
        }
    }
    return NULL;
}

/* model_tensor for the model's tensor source (src/model/source.c). */
const sk_tensor *sk_model_file_tensor(const struct shrink_model *m, const sk_wtensor *t,
                                      int *stored_t) {
    return model_tensor(m, t, stored_t);
}

/* ==== dispatch =========================================================================== */

shrink_status sk_write(const sk_source *src, const char *out, sk_format fmt,
                       const sk_write_opts *o) {
    sk_write_opts def = sk_write_opts_default();
    if (!o) o = &def;
    if (!src || !src->fill || !src->cfg.arch || !out || !*out)
        return sk_error(SHRINK_ERR_ARG, "sk_write: incomplete source or no output path");
    if (o->dtype >= SHRINK_DTYPE_COUNT || o->dtype < -1)
        return sk_error(SHRINK_ERR_ARG, "sk_write: bad dtype %d", o->dtype);
    if (o->dtype >= 0 && sk_dtype_quantized((shrink_dtype)o->dtype) && fmt != SK_FORMAT_GGUF)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: %s is a GGUF type; Hugging Face and llama2.c "
                        "files hold f32/f16/bf16", out, sk_dtype((shrink_dtype)o->dtype)->name);
    shrink_status st = sk_config_validate(&src->cfg, out);
    if (st) return st;
    switch (fmt) {
    case SK_FORMAT_GGUF:    return sk_gguf_write(src, out, o);
    case SK_FORMAT_HF:      return sk_hf_write(src, out, o);
    case SK_FORMAT_LLAMA2C: return sk_llama2c_write(src, out, o);
    default: break;
    }
    return sk_error(SHRINK_ERR_ARG, "sk_write: unknown format %d", (int)fmt);
}

