/*
 * write.c - what every writer shares: the streaming of one tensor block by block (RoPE row
 * permutation, Conv1D transposes, conversion by the source) and sk_write's dispatch to the
 * GGUF (gguf.c), Hugging Face (hf.c) and llama2.c (llama2c.c) writers, which write through the
 * atomic output files of src/core/out.c. The list of tensors each writer writes comes from the
 * tensor table (tensors.c).
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
    return c->arch->pos == SK_POS_ROPE && sk_trole_at(r)->rope;
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

/* ==== dispatch =========================================================================== */

shrink_status sk_write(const sk_source *src, const char *out, sk_format fmt,
                       const sk_write_opts *o) {
    sk_write_opts def = sk_write_opts_default();
    if (!o) o = &def;
    if (!src || !src->fill || !src->cfg.arch || !out || !*out)
        return sk_error(SHRINK_ERR_ARG, "writing a model: incomplete model or no output path");
    if (o->dtype >= SHRINK_DTYPE_COUNT || o->dtype < -1)
        return sk_error(SHRINK_ERR_ARG, "writing a model: unknown type %d", o->dtype);
    if (o->dtype >= 0 && sk_dtype_quantized((shrink_dtype)o->dtype) && fmt != SK_FORMAT_GGUF)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: %s is a GGUF type; Hugging Face and llama2.c "
                        "files hold f32/f16/bf16", out, sk_dtype((shrink_dtype)o->dtype)->name);
    shrink_status st = sk_config_validate(&src->cfg, out);
    if (st) return st;
    sk_write_opts wo = *o;   /* every writer gets the manifest here (docs/manifest.md) */
    if (!wo.manifest && (st = sk_manifest_for_write(out, &wo.manifest))) return st;
    switch (fmt) {
    case SK_FORMAT_GGUF:    return sk_gguf_write(src, out, &wo);
    case SK_FORMAT_HF:      return sk_hf_write(src, out, &wo);
    case SK_FORMAT_LLAMA2C: return sk_llama2c_write(src, out, &wo);
    default: break;
    }
    return sk_error(SHRINK_ERR_ARG, "writing a model: unknown format %d", (int)fmt);
}

