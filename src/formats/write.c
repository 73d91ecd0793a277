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
 * interleaved row h*hd + 2i + s  <->  rotate-half row h*hd + s*hd/2 + i. Row r of layout
 * `from` goes to row rope_dest(r) of the other. */
static int64_t rope_dest(int64_t r, int64_t hd, sk_rope_layout from) {
    int64_t h0 = r / hd * hd, l = r - h0;
    return from == SK_ROPE_INTERLEAVED ? h0 + (l & 1) * (hd / 2) + l / 2
                                       : h0 + 2 * (l % (hd / 2)) + l / (hd / 2);
}

static void permute_rows(const uint8_t *src, uint8_t *dst, int64_t n_rows, size_t row_bytes,
                         int64_t hd, sk_rope_layout from) {
    for (int64_t r = 0; r < n_rows; r++)
        memcpy(dst + (size_t)rope_dest(r, hd, from) * row_bytes, src + (size_t)r * row_bytes,
               row_bytes);
}

/* Are t's rows q/k rows that follow the RoPE layout? (A low-rank factor A's rows are not:
 * its B carries the output rows.) */
static int role_is_rope(const sk_config *c, const sk_wtensor *t) {
    return c->arch->pos == SK_POS_ROPE && sk_trole_at(t->role)->rope && t->factor != 1;
}

shrink_status sk_source_tensors(const sk_source *src, sk_wtensor **out, int64_t *n_out) {
    sk_wtensor *ts;
    int64_t n;
    shrink_status st = sk_wtensors(&src->cfg, &ts, &n);
    if (st) return st;
    int64_t extra = 0;
    for (int64_t i = 0; src->rank_of && i < n; i++)
        extra += sk_trole_at(ts[i].role)->lowrank && src->rank_of(src->rank_user, &ts[i]) > 0;
    if (extra) {
        sk_wtensor *w = sk_calloc((size_t)(n + extra), sizeof *w);
        if (!w) {
            sk_free(ts);
            return sk_error(SHRINK_ERR_NOMEM, "out of memory for the tensor list");
        }
        int64_t j = 0;
        for (int64_t i = 0; i < n; i++) {
            const int64_t k = sk_trole_at(ts[i].role)->lowrank ? src->rank_of(src->rank_user, &ts[i])
                                                               : 0;
            if (k > 0) {
                sk_wtensor_factors(&ts[i], k, &w[j], &w[j + 1]);
                j += 2;
            } else {
                w[j++] = ts[i];
            }
        }
        sk_free(ts);
        ts = w;
        n = j;
    }
    *out = ts;
    *n_out = n;
    return SHRINK_OK;
}

int64_t sk_source_n_factored(const sk_source *src) {
    if (!src->rank_of) return 0;
    sk_wtensor *ts;
    int64_t n, k = 0;
    if (sk_source_tensors(src, &ts, &n)) return -1;
    for (int64_t i = 0; i < n; i++) k += ts[i].factor == 1;
    sk_free(ts);
    return k;
}

int64_t sk_write_row_pos(const sk_config *c, const sk_wtensor *t, sk_rope_layout layout,
                         int64_t r) {
    return role_is_rope(c, t) && layout != c->rope_layout
               ? rope_dest(r, c->head_dim, c->rope_layout) : r;
}

shrink_status sk_write_stream(const sk_source *src, const sk_wtensor *t, sk_out *o,
                              shrink_dtype dt, int transposed, sk_rope_layout layout,
                              sk_write_progress *pr) {
    const sk_config *c = &src->cfg;
    int64_t rows = transposed ? t->cols : t->rows;
    int64_t cols = transposed ? t->rows : t->cols;
    size_t row_bytes = (size_t)sk_dtype_row_bytes(dt, cols);
    int permute = role_is_rope(c, t) && layout != c->rope_layout && !transposed;
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
    const int64_t nf = fmt == SK_FORMAT_GGUF ? 0 : sk_source_n_factored(src);
    if (nf < 0) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", out);
    if (nf > 0)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: %lld matrices are stored as low-rank "
                        "factors, which only shrink's GGUF holds: write a .gguf, or merge them "
                        "dense (shrink lowrank --store dense)", out, (long long)nf);
    switch (fmt) {
    case SK_FORMAT_GGUF:    return sk_gguf_write(src, out, &wo);
    case SK_FORMAT_HF:      return sk_hf_write(src, out, &wo);
    case SK_FORMAT_LLAMA2C: return sk_llama2c_write(src, out, &wo);
    default: break;
    }
    return sk_error(SHRINK_ERR_ARG, "writing a model: unknown format %d", (int)fmt);
}

