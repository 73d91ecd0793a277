/*
 * write.c - what every writer shares: atomic output files, the canonical tensor list, the
 * streaming of one tensor block by block (dtype conversion, RoPE row permutation, Conv1D
 * transposes), the tensor source over a loaded model, and sk_write's dispatch to the GGUF
 * (gguf.c), Hugging Face (hf.c) and llama2.c (llama2c.c) writers.
 *
 * Atomic outputs: bytes go to "<dir>/.<name>.tmp-XXXXXX" in the target folder (same file
 * system, so the rename is atomic), which is fsync'd, renamed over the target and followed
 * by an fsync of the folder. Any failure unlinks the temporary. An output that resolves to
 * one of the inputs (same device and inode) is refused before anything is written.
 *
 * Streaming: a tensor is written in blocks of about SK_WRITE_BLOCK_BYTES (whole heads for
 * q/k, whose rows may be permuted); the source fills each block already converted to the
 * output dtype. The source over a model reads its file tensors through the mapping and drops
 * each tensor's pages (madvise MADV_DONTNEED) once it is written, so the resident set stays
 * at about one block plus the headers whatever the model's size.
 *
 * Not here: format layouts (see the writer files and docs/formats.md).
 */
#include "formats.h"

#include "../tokenizer/tokenizer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* ==== dtype conversion =================================================================== */

void sk_convert(const void *src, shrink_dtype sdt, void *dst, shrink_dtype ddt, int64_t n) {
    if (n <= 0) return;
    if (sdt == ddt) {
        memcpy(dst, src, (size_t)sk_dtype_row_bytes(sdt, n));
        return;
    }
    if (sdt == SHRINK_DTYPE_F32) {
        sk_dtype(ddt)->from_f32(src, dst, n);
        return;
    }
    if (ddt == SHRINK_DTYPE_F32) {
        sk_dtype(sdt)->to_f32(src, dst, n);
        return;
    }
    /* f16 <-> bf16 (or a block type, n a multiple of its block) through f32, a chunk at a
     * time (1024: a multiple of every block) */
    float tmp[1024];
    const uint8_t *s = src;
    uint8_t *d = dst;
    for (int64_t i = 0; i < n; i += 1024) {
        int64_t k = n - i < 1024 ? n - i : 1024;
        sk_dtype(sdt)->to_f32(s + sk_dtype_row_bytes(sdt, i), tmp, k);
        sk_dtype(ddt)->from_f32(tmp, d + sk_dtype_row_bytes(ddt, i), k);
    }
}

shrink_status sk_convert_rows(const void *src, shrink_dtype sdt, void *dst, shrink_dtype ddt,
                              int64_t rows, int64_t cols) {
    const sk_dtype_traits *s = sk_dtype(sdt), *d = sk_dtype(ddt);
    if (rows <= 0) return SHRINK_OK;
    if (sdt == ddt) {
        memcpy(dst, src, (size_t)sk_dtype_tensor_bytes(sdt, rows, cols));
        return SHRINK_OK;
    }
    if (!s->row_head && !d->row_head) {
        sk_convert(src, sdt, dst, ddt, rows * cols);
        return SHRINK_OK;
    }
    /* a row-head type on either side: row by row (its scales are per row), through f32 */
    uint64_t sb = sk_dtype_row_bytes(sdt, cols), db = sk_dtype_row_bytes(ddt, cols);
    float *tmp = sdt == SHRINK_DTYPE_F32 || ddt == SHRINK_DTYPE_F32
                     ? NULL : sk_malloc((size_t)cols * sizeof(float));
    if (sdt != SHRINK_DTYPE_F32 && ddt != SHRINK_DTYPE_F32 && !tmp)
        return sk_error(SHRINK_ERR_NOMEM, "out of memory for a row of %" PRId64 " floats", cols);
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *sr = (const uint8_t *)src + (size_t)r * sb;
        uint8_t *dr = (uint8_t *)dst + (size_t)r * db;
        if (sdt == SHRINK_DTYPE_F32) {
            d->from_f32((const float *)sr, dr, cols);
        } else if (ddt == SHRINK_DTYPE_F32) {
            s->to_f32(sr, (float *)dr, cols);
        } else {
            s->to_f32(sr, tmp, cols);
            d->from_f32(tmp, dr, cols);
        }
    }
    sk_free(tmp);
    return SHRINK_OK;
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

/* ==== atomic output files ================================================================ */

int sk_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

shrink_status sk_out_open(sk_out *o, const char *path, const char *const *inputs,
                          int n_inputs) {
    memset(o, 0, sizeof *o);
    o->fd = -1;
    if (!path || !*path) return sk_error(SHRINK_ERR_ARG, "sk_out_open: no output path");
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i] && sk_same_file(path, inputs[i]))
            return sk_error(SHRINK_ERR_ARG, "%s: is the input file %s; refusing to overwrite "
                            "an input", path, inputs[i]);
    if (sk_dir_exists(path))
        return sk_error(SHRINK_ERR_ARG, "%s: is a folder, expected a file path", path);
    char *dir = sk_path_dir(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t n = (dir ? strlen(dir) : 0) + strlen(base) + 32;
    o->path = sk_strdup(path);
    o->tmp = sk_malloc(n);
    if (!dir || !o->path || !o->tmp) {
        sk_free(dir);
        sk_free(o->tmp); /* not a file name yet: sk_out_abort must not unlink it */
        o->tmp = NULL;
        sk_out_abort(o);
        return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(o->tmp, n, "%s/.%s.tmp-XXXXXX", dir, base);
    sk_free(dir);
    o->fd = mkostemp(o->tmp, O_CLOEXEC);
    if (o->fd < 0) {
        int e = errno;
        sk_free(o->tmp); /* nothing was created */
        o->tmp = NULL;
        sk_out_abort(o);
        return sk_error(SHRINK_ERR_IO, "%s: cannot create a temporary file beside it: %s", path,
                        strerror(e));
    }
    /* mkostemp creates 0600; give the file the usual permissions (umask applies) */
    mode_t um = umask(0);
    umask(um);
    if (fchmod(o->fd, 0666 & ~um) != 0) { /* not fatal */
    }
    return SHRINK_OK;
}

shrink_status sk_out_write(sk_out *o, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(o->fd, b, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            shrink_status st = sk_error(SHRINK_ERR_IO, "%s: write failed after %" PRIu64
                                        " bytes: %s", o->path, o->written, strerror(e));
            sk_out_abort(o);
            return st;
        }
        b += w;
        n -= (size_t)w;
        o->written += (uint64_t)w;
    }
    return SHRINK_OK;
}

shrink_status sk_out_pad(sk_out *o, uint64_t align) {
    static const uint8_t zeros[256];
    uint64_t pad = (align - o->written % align) % align;
    while (pad > 0) {
        size_t k = pad > sizeof zeros ? sizeof zeros : (size_t)pad;
        shrink_status st = sk_out_write(o, zeros, k);
        if (st) return st;
        pad -= k;
    }
    return SHRINK_OK;
}

shrink_status sk_out_pwrite(sk_out *o, const void *p, size_t n, uint64_t off) {
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = pwrite(o->fd, b, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            shrink_status st = sk_error(SHRINK_ERR_IO, "%s: write failed: %s", o->path,
                                        strerror(e));
            sk_out_abort(o);
            return st;
        }
        b += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return SHRINK_OK;
}

shrink_status sk_out_finish(sk_out *o) {
    if (o->fd < 0) return sk_error(SHRINK_ERR_ARG, "sk_out_finish: file not open");
    if (fsync(o->fd) != 0 && errno != EINVAL) {
        int e = errno;
        shrink_status st = sk_error(SHRINK_ERR_IO, "%s: fsync failed: %s", o->path, strerror(e));
        sk_out_abort(o);
        return st;
    }
    int rc = close(o->fd);
    o->fd = -1;
    if (rc != 0) {
        int e = errno;
        shrink_status st = sk_error(SHRINK_ERR_IO, "%s: close failed: %s", o->path, strerror(e));
        sk_out_abort(o);
        return st;
    }
    return SHRINK_OK;
}

/* fsyncs the folder holding path (makes a rename durable); errors are ignored. */
static void sync_dir_of(const char *path) {
    char *dir = sk_path_dir(path);
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    sk_free(dir);
}

shrink_status sk_out_rename(sk_out *o) {
    if (!o->tmp) return sk_error(SHRINK_ERR_ARG, "sk_out_rename: nothing to rename");
    if (rename(o->tmp, o->path) != 0) {
        int e = errno;
        shrink_status st = sk_error(SHRINK_ERR_IO, "%s: rename from %s failed: %s", o->path,
                                    o->tmp, strerror(e));
        sk_out_abort(o);
        return st;
    }
    sync_dir_of(o->path);
    sk_free(o->tmp);
    o->tmp = NULL;
    sk_free(o->path);
    o->path = NULL;
    return SHRINK_OK;
}

shrink_status sk_out_commit(sk_out *o) {
    shrink_status st = sk_out_finish(o);
    if (st) return st;
    return sk_out_rename(o);
}

void sk_out_abort(sk_out *o) {
    if (!o) return;
    if (o->fd >= 0) close(o->fd);
    o->fd = -1;
    if (o->tmp) unlink(o->tmp);
    sk_free(o->tmp);
    sk_free(o->path);
    o->tmp = NULL;
    o->path = NULL;
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

void sk_map_release(const void *p, uint64_t n) {
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0 || n == 0) return;
    uintptr_t a = (uintptr_t)p, e = a + (uintptr_t)n;
    a = (a + (uintptr_t)pg - 1) / (uintptr_t)pg * (uintptr_t)pg; /* only whole pages inside */
    e = e / (uintptr_t)pg * (uintptr_t)pg;
    if (e > a) (void)madvise((void *)a, e - a, MADV_DONTNEED);
}

/* Is p inside one of m's mappings? (owned buffers must not be madvise'd) */
static int in_mapping(const struct shrink_model *m, const void *p) {
    for (int i = 0; i < m->n_maps; i++) {
        const uint8_t *b = m->maps[i].data;
        if (b && (const uint8_t *)p >= b && (const uint8_t *)p < b + m->maps[i].size) return 1;
    }
    return 0;
}

static shrink_status model_fill(void *user, const sk_wtensor *t, int64_t row0, int64_t n_rows,
                                int transposed, shrink_dtype dt, void *dst) {
    const struct shrink_model *m = user;
    int stored_t;
    const sk_tensor *ft = model_tensor(m, t, &stored_t);
    if (!ft && t->role == SK_ROLE_HEAD && m->cfg.tied) {
        sk_wtensor e = *t;
        e.role = SK_ROLE_TOK_EMB;
        ft = model_tensor(m, &e, &stored_t);
    }
    if (!ft) return sk_error(SHRINK_ERR_FORMAT, "%s: no tensor for '%s'", m->path, t->name);
    /* the file tensor as a (fr, fc) matrix */
    int64_t fr = stored_t ? t->cols : t->rows, fc = stored_t ? t->rows : t->cols;
    int64_t elems = 1;
    for (int d = 0; d < ft->n_dims; d++) elems *= ft->shape[d];
    if (elems != fr * fc)
        return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s' has %" PRId64 " elements, expected %"
                        PRId64, m->path, ft->name, elems, fr * fc);
    size_t ses = sk_dtype(ft->dtype)->bytes, des = sk_dtype(dt)->bytes;
    const uint8_t *s = ft->data;
    int direct = transposed == stored_t || t->n_dims == 1;
    int64_t out_cols = transposed ? t->rows : t->cols;
    int mapped = in_mapping(m, ft->data);
    if (direct && t->n_dims == 1 && sk_dtype_quantized(ft->dtype)) {
        /* a quantized vector is one row of its file tensor: widen it whole, convert the slice */
        float *v = sk_malloc((size_t)elems * sizeof(float));
        if (!v) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory for '%s'", m->path, ft->name);
        sk_dtype(ft->dtype)->to_f32(ft->data, v, elems);
        shrink_status st = sk_convert_rows(v + row0, SHRINK_DTYPE_F32, dst, dt, n_rows, 1);
        sk_free(v);
        if (st) return st;
    } else if (direct) {
        /* whole rows of fc elements (row-head types carry their scales per row) */
        const uint8_t *from = s + sk_dtype_tensor_bytes(ft->dtype, row0, fc);
        shrink_status st = sk_convert_rows(from, ft->dtype, dst, dt, n_rows, fc);
        if (st) return st;
        if (mapped) sk_map_release(from, sk_dtype_tensor_bytes(ft->dtype, n_rows, fc));
    } else if (sk_dtype_quantized(ft->dtype) || sk_dtype_quantized(dt)) {
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: tensor '%s': cannot transpose %s data",
                        m->path, ft->name, sk_dtype_quantized(ft->dtype)
                                               ? sk_dtype(ft->dtype)->name : sk_dtype(dt)->name);
    } else {
        /* gather: dst[j][k] = file[k][row0 + j]; a file row at a time keeps reads sequential */
        uint8_t *d = dst;
        uint8_t tmp[8];
        for (int64_t k = 0; k < fr; k++) {
            const uint8_t *srow = s + (size_t)k * (size_t)fc * ses;
            for (int64_t j = 0; j < n_rows; j++) {
                memcpy(tmp, srow + (size_t)(row0 + j) * ses, ses);
                sk_convert(tmp, ft->dtype, d + ((size_t)j * (size_t)out_cols + (size_t)k) * des,
                           dt, 1);
            }
        }
    }
    int64_t total_rows = transposed ? t->cols : t->rows;
    if (row0 + n_rows >= total_rows && mapped) sk_map_release(ft->data, ft->bytes);
    return SHRINK_OK;
}

static shrink_dtype model_dtype_of(void *user, const sk_wtensor *t) {
    const struct shrink_model *m = user;
    int stored_t;
    const sk_tensor *ft = model_tensor(m, t, &stored_t);
    if (!ft && t->role == SK_ROLE_HEAD) {
        sk_wtensor e = *t;
        e.role = SK_ROLE_TOK_EMB;
        ft = model_tensor(m, &e, &stored_t);
    }
    /* quantized types (q4_K, int8_ch, ...) are written widened to f32 unless a dtype is asked
     * for */
    return ft && !sk_dtype_quantized(ft->dtype) ? ft->dtype : SHRINK_DTYPE_F32;
}

shrink_status sk_source_from_model(const struct shrink_model *m, sk_source *src) {
    memset(src, 0, sizeof *src);
    if (!m) return sk_error(SHRINK_ERR_ARG, "sk_source_from_model: no model");
    src->cfg = m->cfg;
    src->fill = model_fill;
    src->dtype_of = model_dtype_of;
    src->user = (void *)(uintptr_t)m;
    src->tok = m->tok;
    src->name = NULL;
    /* the model's dtype: that of the token embedding */
    sk_wtensor e = {.role = SK_ROLE_TOK_EMB, .layer = -1};
    src->dtype = model_dtype_of((void *)(uintptr_t)m, &e);
    /* every canonical tensor must exist with the right element count */
    sk_wtensor *ts;
    int64_t n;
    shrink_status st = sk_wtensors(&m->cfg, &ts, &n);
    if (st) return st;
    for (int64_t i = 0; i < n && !st; i++) {
        int stored_t;
        const sk_tensor *ft = model_tensor(m, &ts[i], &stored_t);
        if (!ft && ts[i].role == SK_ROLE_HEAD && m->cfg.tied) continue;
        if (!ft) {
            st = sk_error(SHRINK_ERR_FORMAT, "%s: missing tensor for '%s'", m->path,
                          ts[i].name);
            break;
        }
        int64_t elems = 1;
        for (int d = 0; d < ft->n_dims; d++) elems *= ft->shape[d];
        if (elems != ts[i].rows * ts[i].cols)
            st = sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s' has %" PRId64 " elements but the "
                          "config needs %" PRId64, m->path, ft->name, elems,
                          ts[i].rows * ts[i].cols);
    }
    sk_free(ts);
    return st;
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

shrink_status sk_model_write(const struct shrink_model *m, const char *out, sk_format fmt,
                             const sk_write_opts *o) {
    sk_source src;
    shrink_status st = sk_source_from_model(m, &src);
    if (st) return st;
    return sk_model_write_source(m, &src, out, fmt, o);
}

shrink_status sk_model_write_source(const struct shrink_model *m, sk_source *srcp,
                                    const char *out, sk_format fmt, const sk_write_opts *o) {
    sk_source src = *srcp;
    shrink_status st;
    char *dir = m->path ? (sk_dir_exists(m->path) ? sk_strdup(m->path) : sk_path_dir(m->path))
                        : NULL;
    const char *inputs[64];
    int n_in = 0;
    if (m->path) inputs[n_in++] = m->path;
    /* the mapped files are inputs too (their paths are not kept: compare by path names of
     * the usual files in the source folder) */
    static const char *const names[] = {"model.safetensors", "model.safetensors.index.json",
                                        "config.json", "tokenizer.json", "tokenizer.model",
                                        "tokenizer_config.json", NULL};
    char *paths[64] = {0};
    int n_paths = 0;
    for (int i = 0; dir && names[i] && n_in < 60; i++) {
        paths[n_paths] = sk_path_join(dir, names[i]);
        if (paths[n_paths]) inputs[n_in++] = paths[n_paths++];
    }
    /* shards of a sharded checkpoint */
    DIR *d = dir && strcmp(m->format, "safetensors") == 0 ? opendir(dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d)) && n_in < 60) {
        if (!ends_with(e->d_name, ".safetensors")) continue;
        paths[n_paths] = sk_path_join(dir, e->d_name);
        if (paths[n_paths]) inputs[n_in++] = paths[n_paths++];
    }
    if (d) closedir(d);
    if (dir && n_in < 64) inputs[n_in++] = dir; /* a HF output must not be the input folder */
    src.inputs = inputs;
    src.n_inputs = n_in;
    if (dir && strcmp(m->format, "safetensors") == 0) src.tok_dir = dir;
    st = sk_write(&src, out, fmt, o);
    for (int i = 0; i < n_paths; i++) sk_free(paths[i]);
    sk_free(dir);
    return st;
}

/* ==== shrink_convert ===================================================================== */

shrink_convert_params shrink_convert_params_default(void) {
    shrink_convert_params p = {.to = NULL, .dtype = -1, .shard_bytes = 0,
                               .tokenizer_path = NULL, .progress = NULL, .user = NULL};
    return p;
}

/* Forwards progress to the caller and remembers the bytes written. */
typedef struct conv_progress {
    const shrink_convert_params *p;
    int64_t                      done;
} conv_progress;

static void conv_progress_cb(void *user, int64_t done, int64_t total) {
    conv_progress *c = user;
    c->done = done;
    if (c->p->progress) c->p->progress(c->p->user, done, total);
}

shrink_status shrink_convert(const char *in, const char *out, const shrink_convert_params *p,
                             shrink_convert_result *r) {
    shrink_convert_params def = shrink_convert_params_default();
    if (!p) p = &def;
    if (r) memset(r, 0, sizeof *r);
    if (!in || !*in || !out || !*out)
        return sk_error(SHRINK_ERR_ARG, "shrink_convert: input and output paths are required");
    int fmt = p->to ? sk_format_parse(p->to) : (int)sk_format_from_path(out);
    if (fmt < 0)
        return sk_error(SHRINK_ERR_ARG, "shrink_convert: unknown output format '%s' (gguf, hf, "
                        "llama2c)", p->to);
    if (p->dtype < -1 || p->dtype >= SHRINK_DTYPE_COUNT)
        return sk_error(SHRINK_ERR_ARG, "shrink_convert: bad dtype %d", (int)p->dtype);
    if (sk_same_file(in, out))
        return sk_error(SHRINK_ERR_ARG, "%s: is the input; refusing to overwrite it", out);
    double t0 = shrink_time();
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = p->tokenizer_path;
    struct shrink_model *m;
    shrink_status st = sk_model_open(&m, in, &lp);
    if (st) return st;
    sk_write_opts o = sk_write_opts_default();
    o.dtype = p->dtype;
    o.shard_bytes = p->shard_bytes;
    conv_progress cp = {p, 0};
    o.progress = conv_progress_cb;
    o.progress_user = &cp;
    st = sk_model_write(m, out, (sk_format)fmt, &o);
    if (!st && r) {
        sk_source src;
        sk_source_from_model(m, &src);
        r->format = sk_format_name((sk_format)fmt);
        r->dtype = fmt == SK_FORMAT_LLAMA2C ? SHRINK_DTYPE_F32
                   : p->dtype >= 0          ? (shrink_dtype)p->dtype
                                            : src.dtype;
        r->n_tensors = m->n_tensors;
        r->tensor_bytes = (uint64_t)cp.done;
        sk_wtensor *ts;
        int64_t n;
        if (sk_wtensors(&m->cfg, &ts, &n) == SHRINK_OK) {
            for (int64_t i = 0; i < n; i++) r->n_params += ts[i].rows * ts[i].cols;
            sk_free(ts);
        }
        r->seconds = shrink_time() - t0;
    }
    shrink_model_free(m);
    return st;
}
