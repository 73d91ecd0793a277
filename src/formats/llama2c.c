/*
 * llama2c.c - reader of llama2.c legacy checkpoints (karpathy/llama2.c, export.py
 * legacy_export; read by run.c's read_checkpoint / memory_map_weights).
 *
 * Layout, all little-endian, no magic, no padding:
 *   1. header, 7 x int32: dim (D), hidden_dim (F), n_layers (L), n_heads (H), n_kv_heads (KV),
 *      vocab_size (V; negative = an untied classifier follows at the end), seq_len (S);
 *   2. f32 arrays, row-major, hd = D / H, KVD = KV * hd:
 *        token_embedding_table (V, D)   rms_att_weight (L, D)
 *        wq (L, D, D)    wk (L, KVD, D)    wv (L, KVD, D)    wo (L, D, D)
 *        rms_ffn_weight (L, D)
 *        w1 (L, F, D)    w2 (L, D, F)    w3 (L, F, D)
 *        rms_final_weight (D)
 *        freq_cis_real (S, hd/2)   freq_cis_imag (S, hd/2)   (skipped: RoPE is recomputed)
 *        wcls (V, D)                      only when vocab_size < 0
 *      Every matrix is (out, in), the layout sk_mat wants (run.c: matmul(xout, x, w, n, d)
 *      computes W (d, n) @ x). q/k rows are in llama2.c's interleaved RoPE order
 *      (SK_ROPE_INTERLEAVED), not Hugging Face's rotate-half order.
 *
 * Every header field is read on its own and checked (positive, H % KV == 0, D % H == 0, even
 * head size) and the file size must equal exactly what the header implies; all products are
 * overflow-checked. The tensors get Hugging Face names, one per layer and matrix, so that the
 * loader binds both formats with one table ("model.layers.N.self_attn.q_proj.weight", ...).
 * The newer llama2.c "version" exports (magic "ak42") are recognized and refused.
 */
#include "formats.h"

#include <math.h>

#define LLAMA2C_HEADER_BYTES 28
#define LLAMA2C_MAGIC        0x616b3432u /* "ak42": llama2.c export.py version 1/2 files */
#define LLAMA2C_MAX_DIM      (1 << 20)
#define LLAMA2C_MAX_LAYERS   4096

/* One array of the file: `count` tensors of shape (rows, cols) (cols 0: a vector). */
typedef struct l2c_array {
    const sk_trole *role; /* NULL: freq_cis, skipped */
    int             per_layer;
    int64_t         rows, cols;
} l2c_array;

/* Position of freq_cis_real / imag among the arrays; the tensor table's `l2c` column gives
 * the others. */
#define L2C_FREQS 12
#define L2C_MAX_ARRAYS 16

/* The file's arrays in order, from the tensor table (untied: with the classifier). */
static int l2c_arrays(const sk_config *c, l2c_array *arrays) {
    int n_roles, n = 0;
    const sk_trole *roles = sk_troles(&n_roles);
    for (int pos = 1; pos < L2C_MAX_ARRAYS; pos++) {
        if (pos == L2C_FREQS) {
            for (int k = 0; k < 2; k++)
                arrays[n++] = (l2c_array){NULL, 0, c->max_seq_len, c->head_dim / 2};
            continue;
        }
        for (int i = 0; i < n_roles; i++) {
            const sk_trole *r = &roles[i];
            if (r->l2c != pos || sk_trole_need(r, c) != 1) continue;
            int64_t cols = r->cols == SK_TD_1 ? 0 : sk_tdim_value(c, r->cols);
            arrays[n++] = (l2c_array){r, r->layer, sk_tdim_value(c, r->rows), cols};
        }
    }
    return n;
}

static int32_t rd_i32(const uint8_t *p) {
    uint32_t u = sk_rd_u32(p);
    int32_t v;
    memcpy(&v, &u, 4);
    return v;
}

static shrink_status check_field(const char *name, const char *field, int32_t v, int32_t max) {
    if (v <= 0 || v > max)
        return sk_error(SHRINK_ERR_FORMAT, "%s: header field %s is %" PRId32 " but must be in "
                        "[1, %" PRId32 "]", name, field, v, max);
    return SHRINK_OK;
}

/* Reads and validates the header into *c. */
static shrink_status parse_header(const uint8_t *data, size_t len, const char *name,
                                  sk_config *c, int *untied) {
    if (len < LLAMA2C_HEADER_BYTES)
        return sk_error(SHRINK_ERR_FORMAT, "%s: file is %zu bytes, too short for a llama2.c "
                        "header (%d bytes)", name, len, LLAMA2C_HEADER_BYTES);
    if (sk_rd_u32(data) == LLAMA2C_MAGIC)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: llama2.c versioned export (magic \"ak42\", "
                        "version %" PRIu32 ") is not supported; export with the legacy format",
                        name, sk_rd_u32(data + 4));
    int32_t dim = rd_i32(data + 0), hidden = rd_i32(data + 4), n_layers = rd_i32(data + 8);
    int32_t n_heads = rd_i32(data + 12), n_kv = rd_i32(data + 16), vocab = rd_i32(data + 20);
    int32_t seq = rd_i32(data + 24);
    shrink_status st;
    if ((st = check_field(name, "dim", dim, LLAMA2C_MAX_DIM))) return st;
    if ((st = check_field(name, "hidden_dim", hidden, LLAMA2C_MAX_DIM))) return st;
    if ((st = check_field(name, "n_layers", n_layers, LLAMA2C_MAX_LAYERS))) return st;
    if ((st = check_field(name, "n_heads", n_heads, dim))) return st;
    if ((st = check_field(name, "n_kv_heads", n_kv, n_heads))) return st;
    if (vocab == INT32_MIN || vocab == 0 || (vocab < 0 ? -vocab : vocab) > LLAMA2C_MAX_DIM)
        return sk_error(SHRINK_ERR_FORMAT, "%s: header field vocab_size is %" PRId32 " but its "
                        "magnitude must be in [1, %d]", name, vocab, LLAMA2C_MAX_DIM);
    if ((st = check_field(name, "seq_len", seq, LLAMA2C_MAX_DIM))) return st;
    if (dim % n_heads != 0)
        return sk_error(SHRINK_ERR_FORMAT, "%s: dim %" PRId32 " is not a multiple of n_heads %"
                        PRId32, name, dim, n_heads);
    if (n_heads % n_kv != 0)
        return sk_error(SHRINK_ERR_FORMAT, "%s: n_heads %" PRId32 " is not a multiple of "
                        "n_kv_heads %" PRId32, name, n_heads, n_kv);
    if ((dim / n_heads) % 2 != 0)
        return sk_error(SHRINK_ERR_FORMAT, "%s: head size %" PRId32 " is odd (RoPE rotates "
                        "pairs)", name, dim / n_heads);

    memset(c, 0, sizeof *c);
    c->arch        = sk_arch_find("llama");
    c->dim         = dim;
    c->n_layers    = n_layers;
    c->n_heads     = n_heads;
    c->n_kv_heads  = n_kv;
    c->head_dim    = dim / n_heads;
    c->ffn_dim     = hidden;
    c->vocab_size  = vocab < 0 ? -vocab : vocab;
    c->max_seq_len = seq;
    c->norm_eps    = 1e-5f;    /* run.c rmsnorm */
    c->rope_theta  = 10000.0f; /* run.c: powf(10000.0f, head_dim / (float)head_size) */
    c->rope_layout = SK_ROPE_INTERLEAVED;
    c->tied        = vocab > 0;
    c->qkv_bias    = 0;
    c->bos_id      = 1;
    c->eos_id      = 2;
    c->add_bos     = 1;
    *untied        = vocab < 0;
    SHRINK_ASSERT(c->arch);
    return sk_config_validate(c, name);
}

shrink_status sk_llama2c_parse(const uint8_t *data, size_t len, const char *name,
                               sk_config *cfg, sk_tensor **out, int64_t *n_out) {
    *out = NULL;
    *n_out = 0;
    int untied = 0;
    shrink_status st = parse_header(data, len, name, cfg, &untied);
    if (st) return st;
    const int64_t D = cfg->dim, F = cfg->ffn_dim, L = cfg->n_layers, V = cfg->vocab_size;
    const int64_t S = cfg->max_seq_len;
    l2c_array arrays[L2C_MAX_ARRAYS + 1];
    const int n_arrays = l2c_arrays(cfg, arrays); /* cfg->tied == !untied */

    /* Sizes first: the file must be exactly header + all arrays. Every value is < 2^20, so
     * products of two fit easily; the sums and the per-layer factor are checked anyway. */
    uint64_t total = LLAMA2C_HEADER_BYTES;
    int64_t n_tensors = 0;
    for (int a = 0; a < n_arrays; a++) {
        uint64_t elems = (uint64_t)arrays[a].rows * (uint64_t)(arrays[a].cols ? arrays[a].cols : 1);
        uint64_t bytes;
        if (!sk_mul_ok(elems, 4 * (uint64_t)(arrays[a].per_layer ? L : 1), &bytes) ||
            !sk_add_ok(total, bytes, &total))
            return sk_error(SHRINK_ERR_FORMAT, "%s: checkpoint size overflows", name);
        if (arrays[a].role) n_tensors += arrays[a].per_layer ? L : 1;
    }
    if (total != (uint64_t)len)
        return sk_error(SHRINK_ERR_FORMAT, "%s: file is %zu bytes but its header (dim %" PRId64
                        ", hidden_dim %" PRId64 ", n_layers %" PRId64 ", vocab_size %" PRId64
                        ", seq_len %" PRId64 "%s) implies %" PRIu64 " bytes", name, len, D, F, L,
                        V, S, untied ? ", untied classifier" : "", total);

    sk_tensor *t = sk_calloc((size_t)n_tensors, sizeof *t);
    if (!t) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", name);
    const uint8_t *p = data + LLAMA2C_HEADER_BYTES;
    int64_t n = 0;
    for (int a = 0; a < n_arrays; a++) {
        const l2c_array *ar = &arrays[a];
        uint64_t bytes = (uint64_t)ar->rows * (uint64_t)(ar->cols ? ar->cols : 1) * 4;
        int64_t count = ar->per_layer ? L : 1;
        for (int64_t l = 0; l < count; l++, p += bytes) {
            if (!ar->role) continue;
            char buf[96];
            sk_trole_name(ar->role, cfg->arch, SK_TNAME_HF, ar->per_layer ? (int)l : -1, buf,
                          sizeof buf);
            sk_tensor *x = &t[n];
            if (!(x->name = sk_strdup(buf))) {
                sk_tensors_free(t, n);
                return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", name);
            }
            x->dtype = SHRINK_DTYPE_F32;
            x->n_dims = ar->cols ? 2 : 1;
            x->shape[0] = ar->rows;
            x->shape[1] = ar->cols;
            x->bytes = bytes;
            x->data = p;
            n++;
        }
    }
    SHRINK_ASSERT(n == n_tensors && p == data + len);
    *out = t;
    *n_out = n;
    return SHRINK_OK;
}

shrink_status sk_llama2c_open(sk_files *f, const char *path) {
    sk_map *maps = sk_realloc(f->maps, (size_t)(f->n_maps + 1) * sizeof *maps);
    if (!maps) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    f->maps = maps;
    sk_map *mp = &f->maps[f->n_maps];
    shrink_status st = sk_map_file(path, mp);
    if (st) return st;
    f->n_maps++;
    f->file_bytes += mp->size;
    return sk_llama2c_parse(mp->data, mp->size, path, &f->cfg, &f->tensors, &f->n_tensors);
}

/* ==== writing ============================================================================ */

/* The canonical tensor of (role, layer) in ts[0..n), or NULL. */
static const sk_wtensor *find_w(const sk_wtensor *ts, int64_t n, sk_role role, int layer) {
    for (int64_t i = 0; i < n; i++)
        if (ts[i].role == role && ts[i].layer == layer) return &ts[i];
    return NULL;
}

/* What run.c cannot express: anything but a plain Llama with its fixed constants. */
static shrink_status l2c_check(const sk_source *src, const char *out, const sk_write_opts *o) {
    const sk_config *c = &src->cfg;
    if (c->arch->norm != SK_NORM_RMS || c->arch->ffn != SK_FFN_SWIGLU ||
        c->arch->pos != SK_POS_ROPE || c->arch->fused_qkv)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: llama2.c checkpoints hold Llama models only "
                        "(this one is %s)", out, c->arch->name);
    if (c->qkv_bias)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: llama2.c checkpoints have no q/k/v biases",
                        out);
    if ((int64_t)c->head_dim * c->n_heads != c->dim)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: llama2.c needs head_dim * n_heads == dim "
                        "(%d * %d != %d)", out, c->head_dim, c->n_heads, c->dim);
    if (c->rope_theta != 10000.0f || c->norm_eps != 1e-5f)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: llama2.c's run.c fixes rope_theta = 10000 "
                        "and rms_norm_eps = 1e-5; this model has %g and %g", out,
                        (double)c->rope_theta, (double)c->norm_eps);
    if (o->dtype >= 0 && o->dtype != SHRINK_DTYPE_F32)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: llama2.c legacy checkpoints are f32 only "
                        "(asked for %s)", out, shrink_dtype_name((shrink_dtype)o->dtype));
    int n_roles;
    const sk_trole *roles = sk_troles(&n_roles);
    for (int i = 0; i < n_roles; i++)
        if (!roles[i].l2c && sk_trole_need(&roles[i], c) == 1)
            return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: llama2.c checkpoints have no place for "
                            "tensor '%s'", out, roles[i].hf[c->arch->hf]);
    return SHRINK_OK;
}

/* freq_cis_real / imag (S, hd/2) as llama2.c's export computes them (precompute_freqs_cis;
 * run.c does not read them). */
static shrink_status write_freqs(sk_out *f, const sk_config *c, int imag) {
    int64_t half = c->head_dim / 2;
    float *row = sk_malloc((size_t)half * sizeof *row);
    if (!row) {
        sk_out_abort(f);
        return sk_error(SHRINK_ERR_NOMEM, "out of memory");
    }
    shrink_status st = SHRINK_OK;
    for (int64_t t = 0; t < c->max_seq_len && !st; t++) {
        for (int64_t i = 0; i < half; i++) {
            float freq = 1.0f / powf(10000.0f, (float)(2 * i) / (float)c->head_dim);
            float a = (float)t * freq;
            row[i] = imag ? sinf(a) : cosf(a);
        }
        st = sk_out_write(f, row, (size_t)half * sizeof *row); /* little-endian hosts */
    }
    sk_free(row);
    return st;
}

shrink_status sk_llama2c_write(const sk_source *src, const char *out, const sk_write_opts *o) {
    shrink_status st = l2c_check(src, out, o);
    if (st) return st;
    const sk_config *c = &src->cfg;
    sk_wtensor *ts;
    int64_t n;
    if ((st = sk_wtensors(c, &ts, &n))) return st;
    uint64_t total = 0;
    for (int64_t i = 0; i < n; i++) total += (uint64_t)ts[i].rows * (uint64_t)ts[i].cols * 4;
    sk_write_progress pr = {0, (int64_t)total, o->progress, o->progress_user};
    sk_out f;
    if ((st = sk_out_open(&f, out, src->inputs, src->n_inputs))) {
        sk_free(ts);
        return st;
    }
    int32_t hdr[7] = {c->dim, c->ffn_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                      c->tied ? c->vocab_size : -c->vocab_size, c->max_seq_len};
    uint8_t h[28];
    for (int k = 0; k < 7; k++)
        for (int b = 0; b < 4; b++) h[4 * k + b] = (uint8_t)((uint32_t)hdr[k] >> (8 * b));
    st = sk_out_write(&f, h, sizeof h);
    /* the arrays in file order (see the top of this file) */
    l2c_array arrays[L2C_MAX_ARRAYS + 1];
    int n_arrays = l2c_arrays(c, arrays), freqs = 0, n_roles;
    const sk_trole *roles = sk_troles(&n_roles);
    for (int a = 0; a < n_arrays && !st; a++) {
        if (!arrays[a].role) {
            st = write_freqs(&f, c, freqs++); /* real, then imag */
            continue;
        }
        int count = arrays[a].per_layer ? c->n_layers : 1;
        for (int l = 0; l < count && !st; l++) {
            const sk_wtensor *t = find_w(ts, n, (sk_role)(arrays[a].role - roles),
                                         arrays[a].per_layer ? l : -1);
            SHRINK_ASSERT(t);
            st = sk_write_stream(src, t, &f, SHRINK_DTYPE_F32, 0, SK_ROPE_INTERLEAVED, &pr);
        }
    }
    sk_free(ts);
    if (!st) st = sk_out_commit(&f);
    else sk_out_abort(&f);
    return st;
}
