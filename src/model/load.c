/*
 * load.c - shrink_model_load: detect the format, read config and tensor table, bind tensors
 * to the decoder's fields (model.h) by name, load the tokenizer.
 *
 * Paths accepted: a GGUF file (.gguf or the "GGUF" magic: arch llama or gpt2, llama.cpp's
 * tensor names, tokenizer from its metadata); a llama2.c legacy .bin; a Hugging Face folder (config.json +
 * model.safetensors or model.safetensors.index.json); a .safetensors / .index.json /
 * config.json file inside such a folder. A file with neither extension is sniffed: a
 * safetensors header (u64 length, then '{') means safetensors, anything else llama2.c.
 *
 * Binding iterates the tensor table (formats/tensors.c): each row gives the role's name in
 * the file's format and the architecture's family, its shape in terms of the config, and the
 * field it is bound to.
 *   - weight matrices stay borrowed views into the mapping when the file holds them as
 *     (out, in) and suitably aligned; with widen_f32 (or when unaligned) they are copied;
 *   - GPT-2 Conv1D weights are stored (in, out) and are transposed into owned (out, in)
 *     buffers of the same dtype; c_attn is split into wq / wk / wv views of one buffer;
 *   - norm weights and all biases are widened to owned f32.
 * Biases the configuration requires must be present; other biases are bound when present.
 * A missing tensor or a wrong shape is SHRINK_ERR_FORMAT naming the tensor and the file.
 */
#include "source.h"
#include "model.h"
#include "lora.h"

#include <dirent.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* ---- ownership ------------------------------------------------------------------------ */

shrink_load_params shrink_load_params_default(void) {
    shrink_load_params p = {.tokenizer_path = NULL, .widen_f32 = false, .no_tokenizer = false};
    return p;
}

void *sk_model_own(struct shrink_model *m, void *buf) {
    if (!buf) return NULL;
    if (m->n_owned == m->cap_owned) {
        int nc = m->cap_owned ? m->cap_owned * 2 : 64;
        void **o = sk_realloc(m->owned, (size_t)nc * sizeof *o);
        if (!o) {
            sk_free(buf);
            return NULL;
        }
        m->owned = o;
        m->cap_owned = nc;
    }
    m->owned[m->n_owned++] = buf;
    return buf;
}

void shrink_model_free(shrink_model *m) {
    if (!m) return;
    shrink_tokenizer_free(m->tok);
    sk_lora_free(m->lora);
    for (int i = 0; i < m->n_owned; i++) sk_free(m->owned[i]);
    sk_free(m->owned);
    sk_free(m->layers);
    sk_tensors_free(m->tensors, m->n_tensors);
    for (int i = 0; i < m->n_maps; i++) sk_unmap(&m->maps[i]);
    sk_free(m->maps);
    sk_free(m->path);
    sk_free(m);
}

const shrink_tokenizer *shrink_model_tokenizer(const shrink_model *m) { return m ? m->tok : NULL; }

/* ---- binding state -------------------------------------------------------------------- */

typedef struct name_idx {
    const char *name;
    int64_t     i;
} name_idx;

typedef struct binder {
    struct shrink_model      *m;
    const shrink_load_params *params;
    name_idx                 *sorted;  /* tensor names sorted, with their indices */
    uint8_t                  *used;    /* per tensor: bound */
    const char               *file;    /* for messages */
    int                       load_as; /* shrink_dtype of params->load_as, or -1 */
} binder;

static int cmp_name_idx(const void *a, const void *b) {
    return strcmp(((const name_idx *)a)->name, ((const name_idx *)b)->name);
}

/* Index of the tensor called `name`, -1 if none (binary search over b->sorted). */
static int64_t find_tensor(const binder *b, const char *name) {
    int64_t lo = 0, hi = b->m->n_tensors - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(b->sorted[mid].name, name);
        if (c == 0) return b->sorted[mid].i;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

static int is_gguf(const struct shrink_model *m) { return strcmp(m->format, "gguf") == 0; }

/* Raw bytes of tensor t in an aligned owned-by-caller buffer (NULL on OOM). */
static void *copy_aligned(const sk_tensor *t) {
    void *p = sk_aligned_alloc(64, (size_t)t->bytes);
    if (p) memcpy(p, t->data, (size_t)t->bytes);
    return p;
}

/* A vector of n elements widened to an owned f32 buffer. */
static shrink_status bind_vec(binder *b, const sk_tensor *t, const float **out) {
    size_t n = (size_t)t->shape[0];
    float *dst = sk_model_own(b->m, sk_aligned_alloc(64, n * sizeof(float)));
    if (!dst) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory for '%s'", b->file, t->name);
    if (t->dtype == SHRINK_DTYPE_F32) {
        memcpy(dst, t->data, n * sizeof(float));
    } else {
        void *raw = copy_aligned(t);
        if (!raw) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", b->file);
        sk_dtype(t->dtype)->to_f32(raw, dst, (int64_t)n);
        sk_free(raw);
    }
    b->m->weight_bytes += n * sizeof(float);
    *out = dst;
    return SHRINK_OK;
}

/* Matrix (rows, cols) from tensor t: a view when possible, else an owned copy (transposed
 * from (cols, rows) when conv1d, widened to f32 when asked). */
static shrink_status bind_mat(binder *b, const sk_tensor *t, int64_t rows, int64_t cols,
                              int conv1d, sk_mat *out) {
    size_t es = sk_dtype(t->dtype)->bytes;
    int widen = b->params->widen_f32 && t->dtype != SHRINK_DTYPE_F32;
    /* block types: fp16 fields, 2-byte alignment is enough; row heads are read with memcpy */
    int aligned = ((uintptr_t)t->data % (sk_dtype(t->dtype)->block > 1 ? 2 : es)) == 0;
    if (conv1d && sk_dtype_quantized(t->dtype))
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: tensor '%s': a transposed (Conv1D) weight "
                        "cannot be %s", b->file, t->name, sk_dtype(t->dtype)->name);
    out->rows = rows;
    out->cols = cols;
    out->dtype = t->dtype;
    if (!conv1d && !widen && aligned) {
        out->data = t->data;
        b->m->weight_bytes += t->bytes;
        return SHRINK_OK;
    }
    /* same-dtype owned copy in (out, in) layout */
    uint8_t *buf = sk_aligned_alloc(64, (size_t)t->bytes);
    if (!buf) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory for '%s'", b->file, t->name);
    const uint8_t *src = t->data;
    if (conv1d) {
        /* file (cols, rows) -> (rows, cols): dst[r, k] = src[k, r] */
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < cols; k++)
                memcpy(buf + ((size_t)r * (size_t)cols + (size_t)k) * es,
                       src + ((size_t)k * (size_t)rows + (size_t)r) * es, es);
    } else {
        memcpy(buf, src, (size_t)t->bytes);
    }
    if (widen) {
        float *f = sk_aligned_alloc(64, (size_t)rows * (size_t)cols * sizeof(float));
        if (!f) {
            sk_free(buf);
            return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory for '%s'", b->file, t->name);
        }
        /* row by row: row-head types have their scales in each row */
        uint64_t rb = sk_dtype_row_bytes(t->dtype, cols);
        for (int64_t r = 0; r < rows; r++)
            sk_dtype(t->dtype)->to_f32(buf + (size_t)r * rb, f + (size_t)r * (size_t)cols, cols);
        sk_free(buf);
        buf = (uint8_t *)f;
        out->dtype = SHRINK_DTYPE_F32;
    }
    if (!sk_model_own(b->m, buf))
        return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory for '%s'", b->file, t->name);
    out->data = buf;
    b->m->weight_bytes += sk_dtype_tensor_bytes(out->dtype, rows, cols);
    return SHRINK_OK;
}

/* --load-as (shrink_load_params.load_as): matrix *mat (bound from tensor t, f32/f16/bf16)
 * quantized in memory to the type `shrink quantize` would write for it (sk_gguf_fallback of
 * the scheme's type), through the same row quantizer (the dtype row's `quantize`, else
 * from_f32; per-tensor types scaled by the whole tensor's range), so the model equals the
 * file that command writes. The old copy, if the model owns one, stays owned until free. */
static shrink_status quantize_as(binder *b, const sk_tensor *t, sk_mat *mat) {
    const shrink_dtype want = b->load_as;
    const shrink_dtype from = mat->dtype;
    if (sk_dtype_quantized(from))
        return sk_error(SHRINK_ERR_ARG, "%s: tensor '%s' is %s already: --load-as quantizes "
                        "f32, f16 or bf16 models", b->file, t->name, sk_dtype(from)->name);
    const int64_t rows = mat->rows, cols = mat->cols;
    const shrink_dtype to = sk_gguf_fallback(want, cols);
    if (to == from) return SHRINK_OK;
    const sk_dtype_traits *d = sk_dtype(to), *fd = sk_dtype(from);
    const uint64_t rb = sk_dtype_row_bytes(to, cols), fb = sk_dtype_row_bytes(from, cols);
    /* a block of rows widened at a time (about 4 MiB of f32), never the whole matrix */
    const int64_t chunk = cols < ((int64_t)1 << 20) ? ((int64_t)1 << 20) / cols : 1;
    uint8_t *q = sk_aligned_alloc(64, (size_t)(rb * (uint64_t)rows));
    float *f = sk_aligned_alloc(64, (size_t)(rows < chunk ? rows : chunk) * (size_t)cols *
                                        sizeof(float));
    if (!q || !f || !sk_model_own(b->m, q)) {
        if (!q || !f) sk_free(q); /* owned (freed with the model) once sk_model_own took it */
        sk_free(f);
        return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory quantizing '%s'", b->file, t->name);
    }
    const uint8_t *src = mat->data;
    sk_qparams qp;
    memset(&qp, 0, sizeof qp);
    if (to == SHRINK_DTYPE_INT8_T || to == SHRINK_DTYPE_INT8_T_ASYM) {
        float lo = INFINITY, hi = -INFINITY;
        for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
            const int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
            for (int64_t r = 0; r < nr; r++)
                fd->to_f32(src + (size_t)((r0 + r) * (int64_t)fb), f + (size_t)r * (size_t)cols,
                           cols);
            for (int64_t i = 0; i < nr * cols; i++) {
                if (f[i] < lo) lo = f[i];
                if (f[i] > hi) hi = f[i];
            }
        }
        if (!(lo <= hi)) lo = hi = 0.0f;
        qp.tensor_range = 1;
        qp.tmin = lo;
        qp.tmax = hi;
    }
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        const int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
        #pragma omp parallel for schedule(dynamic, 16)
        for (int64_t r = 0; r < nr; r++) {
            float *x = f + (size_t)r * (size_t)cols;
            uint8_t *y = q + (size_t)((r0 + r) * (int64_t)rb);
            fd->to_f32(src + (size_t)((r0 + r) * (int64_t)fb), x, cols);
            if (d->quantize) d->quantize(x, y, cols, &qp);
            else d->from_f32(x, y, cols);
        }
    }
    sk_free(f);
    /* the source's pages are not read again: a mapped file's go back to the page cache */
    if (sk_model_in_mapping(b->m, src))
        sk_map_release(src, sk_dtype_tensor_bytes(from, rows, cols));
    b->m->weight_bytes -= sk_dtype_tensor_bytes(from, rows, cols);
    b->m->weight_bytes += sk_dtype_tensor_bytes(to, rows, cols);
    mat->dtype = to;
    mat->data = q;
    return SHRINK_OK;
}

/* Checks t's shape against the expected (rows, cols) (file order: (cols, rows) for Conv1D). */
static shrink_status check_shape(binder *b, const sk_tensor *t, int64_t rows, int64_t cols,
                                 int conv1d) {
    int ok;
    if (cols == 0) ok = t->n_dims == 1 && t->shape[0] == rows;
    else if (conv1d) ok = t->n_dims == 2 && t->shape[0] == cols && t->shape[1] == rows;
    else ok = t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols;
    if (ok) return SHRINK_OK;
    char got[96] = "", want[64];
    size_t k = 0;
    for (int d = 0; d < t->n_dims && k < sizeof got - 24; d++)
        k += (size_t)snprintf(got + k, sizeof got - k, "%s%" PRId64, d ? ", " : "", t->shape[d]);
    if (cols == 0) snprintf(want, sizeof want, "%" PRId64, rows);
    else if (conv1d) snprintf(want, sizeof want, "%" PRId64 ", %" PRId64, cols, rows);
    else snprintf(want, sizeof want, "%" PRId64 ", %" PRId64, rows, cols);
    return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s' has shape [%s] but the config needs [%s]",
                    b->file, t->name, got, want);
}

/* Role r of layer `layer` stored as two low-rank factors <name>.lr_a (rank x cols) and
 * <name>.lr_b (rows x rank) (docs/lowrank.md): both bound as matrices of their own dtypes,
 * the layer's sk_mat pointing to them (lr). Missing factors: the dense tensor is missing. */
static shrink_status bind_factored(binder *b, const sk_trole *r, int layer, const char *pre,
                                   const char *base) {
    const sk_config *c = &b->m->cfg;
    const int64_t rows = sk_tdim_value(c, r->rows), cols = sk_tdim_value(c, r->cols);
    int64_t ti[2];
    const char *suf[2] = {SK_LR_SUFFIX_A, SK_LR_SUFFIX_B};
    for (int f = 0; f < 2; f++) {
        char name[200];
        snprintf(name, sizeof name, "%s%s%s", pre, base, suf[f]);
        ti[f] = find_tensor(b, name);
        if (ti[f] < 0 && (f == 1 || *pre)) { /* HF: also without the prefix */
            snprintf(name, sizeof name, "%s%s", base, suf[f]);
            ti[f] = find_tensor(b, name);
        }
    }
    if (ti[0] < 0 && ti[1] < 0)
        return sk_error(SHRINK_ERR_FORMAT, "%s: missing tensor '%s%s'", b->file, pre, base);
    if (ti[0] < 0 || ti[1] < 0)
        return sk_error(SHRINK_ERR_FORMAT, "%s: low-rank tensor '%s%s' has factor %s but not "
                        "%s", b->file, pre, base, ti[0] < 0 ? suf[1] : suf[0],
                        ti[0] < 0 ? suf[0] : suf[1]);
    if (!is_gguf(b->m) && sk_trole_conv1d(r, c->arch))
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: low-rank factors of '%s' in a Hugging Face "
                        "GPT-2 file (Conv1D layout) are not supported", b->file, base);
    const sk_tensor *ta = &b->m->tensors[ti[0]], *tb = &b->m->tensors[ti[1]];
    const int64_t k = ta->n_dims == 2 ? ta->shape[0] : 0;
    if (k < 1 || k > (rows < cols ? rows : cols))
        return sk_error(SHRINK_ERR_FORMAT, "%s: low-rank factor '%s' has rank %lld, not in "
                        "[1, %lld]", b->file, ta->name, (long long)k,
                        (long long)(rows < cols ? rows : cols));
    shrink_status st;
    if ((st = check_shape(b, ta, k, cols, 0)) || (st = check_shape(b, tb, rows, k, 0))) return st;
    sk_mat *ab = sk_model_own(b->m, sk_calloc(2, sizeof *ab));
    if (!ab) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory for '%s'", b->file, base);
    if ((st = bind_mat(b, ta, k, cols, 0, &ab[0])) || (st = bind_mat(b, tb, rows, k, 0, &ab[1])))
        return st;
    if (b->load_as >= 0 &&
        ((st = quantize_as(b, ta, &ab[0])) || (st = quantize_as(b, tb, &ab[1]))))
        return st;
    b->used[ti[0]] = b->used[ti[1]] = 1;
    uint8_t *base_ptr = (uint8_t *)&b->m->layers[layer];
    sk_mat *mat = (sk_mat *)(base_ptr + r->off);
    *mat = (sk_mat){.dtype = ab[0].dtype, .rows = rows, .cols = cols, .data = NULL, .lr = ab};
    return SHRINK_OK;
}

/* Binds role r of layer `layer` (-1: a model tensor) when the file has it. */
static shrink_status bind_one(binder *b, const sk_trole *r, int layer) {
    const sk_config *c = &b->m->cfg;
    int need = sk_trole_need(r, c);
    if (need < 0) return SHRINK_OK;
    int gguf = is_gguf(b->m);
    char base[128], name[160];
    if (!sk_trole_name(r, c->arch, gguf ? SK_TNAME_GGUF : SK_TNAME_HF, layer, base, sizeof base)) {
        if (!need) return SHRINK_OK;
        return sk_error(SHRINK_ERR_FORMAT, "%s: the %s model needs a tensor this format cannot "
                        "name", b->file, c->arch->name);
    }
    /* HF files may put the arch's prefix before the base model's names, or not */
    const char *const pre[] = {gguf || r->top ? "" : c->arch->hf_prefix, ""};
    int64_t ti = -1;
    for (int p = 0; p < 2 && ti < 0; p++) {
        snprintf(name, sizeof name, "%s%s", pre[p], base);
        ti = find_tensor(b, name);
    }
    if (ti < 0 && r->lowrank && r->bind == SK_TB_MAT && need > 0)
        return bind_factored(b, r, layer, pre[0], base);
    if (ti < 0) {
        if (!need) return SHRINK_OK;
        return sk_error(SHRINK_ERR_FORMAT, "%s: missing tensor '%s%s'", b->file, pre[0], base);
    }
    const sk_tensor *t = &b->m->tensors[ti];
    int conv1d = !gguf && sk_trole_conv1d(r, c->arch);
    int64_t rows = sk_tdim_value(c, r->rows);
    int64_t cols = r->cols == SK_TD_1 ? 0 : sk_tdim_value(c, r->cols); /* 0: a vector */
    shrink_status st = check_shape(b, t, rows, cols, conv1d);
    if (st) return st;
    b->used[ti] = 1;

    /* where the table says the role lives: a field of the layer or of the model's globals */
    uint8_t *base_ptr = layer >= 0 ? (uint8_t *)&b->m->layers[layer] : (uint8_t *)&b->m->tok_emb;
    sk_layer *l = layer >= 0 ? &b->m->layers[layer] : NULL;
    int64_t q = sk_tdim_value(c, SK_TD_Q), kv = sk_tdim_value(c, SK_TD_KV);
    switch (r->bind) {
    case SK_TB_MAT: {
        sk_mat *mat = (sk_mat *)(base_ptr + r->off);
        if ((st = bind_mat(b, t, rows, cols, conv1d, mat))) return st;
        /* --load-as: every matrix but the position embedding, as shrink quantize */
        return b->load_as >= 0 && mat != &b->m->pos_emb ? quantize_as(b, t, mat) : SHRINK_OK;
    }
    case SK_TB_VEC:
        return bind_vec(b, t, (const float **)(base_ptr + r->off));
    case SK_TB_QKV: {
        sk_mat all;
        if ((st = bind_mat(b, t, rows, cols, conv1d, &all))) return st;
        if (b->load_as >= 0 && (st = quantize_as(b, t, &all))) return st;
        size_t rb = (size_t)sk_dtype_row_bytes(all.dtype, cols); /* bytes per row */
        const uint8_t *p = all.data;
        l->wq = (sk_mat){.dtype = all.dtype, .rows = q, .cols = cols, .data = p};
        l->wk = (sk_mat){.dtype = all.dtype, .rows = kv, .cols = cols, .data = p + (size_t)q * rb};
        l->wv = (sk_mat){.dtype = all.dtype, .rows = kv, .cols = cols,
                         .data = p + (size_t)(q + kv) * rb};
        return SHRINK_OK;
    }
    case SK_TB_QKV_BIAS: {
        const float *v;
        if ((st = bind_vec(b, t, &v))) return st;
        l->bq = v;
        l->bk = v + q;
        l->bv = v + q + kv;
        return SHRINK_OK;
    }
    case SK_TB_NONE:
        return SHRINK_OK;
    }
    return SHRINK_OK;
}

/* Binds every row of the tensor table; sets the tied head, counts parameters. */
static shrink_status bind_all(struct shrink_model *m, const shrink_load_params *params,
                              const char *file, int64_t *n_params) {
    const sk_config *c = &m->cfg;
    binder b = {.m = m, .params = params, .file = file, .load_as = -1};
    shrink_status st = SHRINK_OK;
    if (params->load_as) {
        shrink_dtype d;
        if (shrink_dtype_parse(params->load_as, &d) != SHRINK_OK || !sk_dtype_quantized(d) ||
            d == SHRINK_DTYPE_W8A8 || d == SHRINK_DTYPE_W8A8_STATIC)
            return sk_error(SHRINK_ERR_ARG, "--load-as %s: not a weight quantization type "
                            "(q4_0, q8_0, q4_K, int4_g128, nf4, ...)", params->load_as);
        b.load_as = (int)d;
    }
    b.sorted = sk_malloc((size_t)(m->n_tensors ? m->n_tensors : 1) * sizeof *b.sorted);
    b.used = sk_calloc((size_t)(m->n_tensors ? m->n_tensors : 1), 1);
    m->layers = sk_calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!b.sorted || !b.used || !m->layers) {
        st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", file);
        goto out;
    }
    for (int64_t i = 0; i < m->n_tensors; i++) b.sorted[i] = (name_idx){m->tensors[i].name, i};
    qsort(b.sorted, (size_t)m->n_tensors, sizeof *b.sorted, cmp_name_idx);

    int n_roles;
    const sk_trole *roles = sk_troles(&n_roles);
    for (int i = 0; i < n_roles && !st; i++) {
        const sk_trole *r = &roles[i];
        if (!r->layer) st = bind_one(&b, r, -1);
        for (int l = 0; r->layer && l < c->n_layers && !st; l++) st = bind_one(&b, r, l);
    }
    if (st) goto out;
    if (c->tied) m->head = m->tok_emb;
    *n_params = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        if (!b.used[i]) continue;
        int64_t e = 1;
        for (int d = 0; d < m->tensors[i].n_dims; d++) e *= m->tensors[i].shape[d];
        *n_params += e;
    }
out:
    sk_free(b.sorted);
    sk_free(b.used);
    return st;
}

/* ---- tokenizer ------------------------------------------------------------------------ */

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* First tok*.bin in dir by name order (malloc'd path), NULL if none. */
static char *find_tok_bin(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char best[256] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 8 || n >= sizeof best || strncmp(e->d_name, "tok", 3) != 0 ||
            strcmp(e->d_name + n - 4, ".bin") != 0)
            continue;
        if (!best[0] || strcmp(e->d_name, best) < 0) snprintf(best, sizeof best, "%s", e->d_name);
    }
    closedir(d);
    if (!best[0]) return NULL;
    char *p = sk_path_join(dir, best);
    if (p && !sk_file_exists(p)) {
        sk_free(p);
        return NULL;
    }
    return p;
}

/* The tokenizer path to use beside a model (malloc'd), or NULL if there is none. */
static char *tokenizer_beside(const struct shrink_model *m, const char *dir) {
    if (strcmp(m->format, "llama2c") == 0) {
        char name[64];
        char *p = sk_path_join(dir, "tokenizer.bin");
        if (p && sk_file_exists(p)) return p;
        sk_free(p);
        snprintf(name, sizeof name, "tok%" PRId32 ".bin", m->cfg.vocab_size);
        p = sk_path_join(dir, name);
        if (p && sk_file_exists(p)) return p;
        sk_free(p);
        return find_tok_bin(dir);
    }
    static const char *const files[] = {"tokenizer.json", "tokenizer.model", "vocab.json",
                                        "tokenizer.bin", NULL};
    for (int i = 0; files[i]; i++) {
        char *p = sk_path_join(dir, files[i]);
        int found = p && sk_file_exists(p);
        sk_free(p);
        if (found) return sk_strdup(dir); /* the tokenizer code picks the file in the folder */
    }
    return NULL;
}

static shrink_status load_tokenizer(struct shrink_model *m, const shrink_load_params *params,
                                    const char *dir) {
    if (params->no_tokenizer) return SHRINK_OK;
    char *tp = params->tokenizer_path ? sk_strdup(params->tokenizer_path)
                                      : tokenizer_beside(m, dir);
    if (!tp) return SHRINK_OK; /* no tokenizer: commands that need one say so */
    shrink_status st = shrink_tokenizer_load(&m->tok, tp);
    if (st == SHRINK_OK) {
        int32_t tv = shrink_tokenizer_vocab_size(m->tok);
        /* A llama2.c tokenizer.bin stores no count: run.c reads exactly vocab_size pieces, so
         * fewer means a truncated or mismatched file. Other tokenizers may be smaller than a
         * padded embedding table. */
        int exact = ends_with(tp, ".bin") && sk_file_exists(tp);
        /* Smaller than the vocabulary: only the padding of an embedding table rounded up to a
         * multiple of 64 (Phi-3, GPT-NeoX, Qwen2: up to a few hundred rows); a tokenizer of
         * another model is refused here rather than in the middle of a generation. */
        int32_t gap = m->cfg.vocab_size - tv;
        int padded = gap > 0 && gap < 1024 && m->cfg.vocab_size % 64 == 0;
        if (tv > m->cfg.vocab_size || (exact && tv != m->cfg.vocab_size) || (gap > 0 && !padded))
            st = sk_error(SHRINK_ERR_FORMAT, "%s: the tokenizer%s has %" PRId32 " tokens but "
                          "the model %s has a vocabulary of %" PRId32 "%s", tp,
                          params->tokenizer_path ? " given with --tokenizer" : "", tv,
                          m->path ? m->path : "", m->cfg.vocab_size,
                          exact ? " (a llama2.c tokenizer must have exactly as many; truncated?)"
                                : ": it belongs to another model");
    }
    sk_free(tp);
    return st;
}

/* ---- detection and loading ------------------------------------------------------------ */

/* Does the file start like a safetensors file (u64 header length within the file, '{')? */
static int sniff_safetensors(const char *path) {
    FILE *f = sk_fopen_regular(path);
    if (!f) return 0;
    uint8_t h[9];
    int ok = fread(h, 1, 9, f) == 9;
    long size = -1;
    if (ok && fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    fclose(f);
    return ok && size >= 9 && sk_rd_u64(h) <= (uint64_t)size - 8 && h[8] == '{';
}

/* Picks the weight file of a Hugging Face folder (malloc'd). */
static shrink_status hf_weights(const char *dir, char **out) {
    static const char *const names[] = {"model.safetensors", "model.safetensors.index.json",
                                        NULL};
    for (int i = 0; names[i]; i++) {
        char *p = sk_path_join(dir, names[i]);
        if (!p) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", dir);
        if (sk_file_exists(p)) {
            *out = p;
            return SHRINK_OK;
        }
        sk_free(p);
    }
    return sk_error(SHRINK_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json in "
                    "the folder", dir);
}

/* Does the file start with the GGUF magic? */
static int sniff_gguf(const char *path) {
    FILE *f = sk_fopen_regular(path);
    if (!f) return 0;
    uint8_t h[4];
    int ok = fread(h, 1, 4, f) == 4 && sk_rd_u32(h) == SK_GGUF_MAGIC;
    fclose(f);
    return ok;
}

/* A .gguf file (or any file starting with the GGUF magic): config, tensors and, unless a
 * tokenizer path is given or none is wanted, the tokenizer from its metadata. */
static shrink_status load_gguf(struct shrink_model *m, const char *path,
                               const shrink_load_params *params, int bind) {
    m->format = "gguf";
    int want_tok = !params->no_tokenizer && !params->tokenizer_path;
    shrink_status st = sk_gguf_open(&m->files, path, want_tok);
    if (st) return st;
    if (bind) {
        int64_t n_params = 0;
        if ((st = bind_all(m, params, path, &n_params))) return st;
        m->n_params = n_params;
    }
    if (params->tokenizer_path && !params->no_tokenizer) {
        char *dir = sk_path_dir(path);
        if (!dir) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
        st = load_tokenizer(m, params, dir);
        sk_free(dir);
    }
    return st;
}

static shrink_status load_into(struct shrink_model *m, const char *path,
                               const shrink_load_params *params, int bind) {
    char *dir = NULL, *weights = NULL;
    shrink_status st;
    int hf;
    if (sk_file_exists(path) && (ends_with(path, ".gguf") || sniff_gguf(path)))
        return load_gguf(m, path, params, bind);
    if (sk_dir_exists(path)) {
        hf = 1;
        dir = sk_strdup(path);
    } else if (sk_file_exists(path)) {
        hf = ends_with(path, ".safetensors") || ends_with(path, ".json") ||
             (!ends_with(path, ".bin") && sniff_safetensors(path));
        dir = sk_path_dir(path);
        if (hf && !ends_with(path, "config.json")) weights = sk_strdup(path);
    } else {
        return sk_error_not_found(path, "model file or folder");
    }
    if (!dir) {
        st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    if (hf) {
        m->format = "safetensors";
        if (!weights && (st = hf_weights(dir, &weights))) goto out;
        if ((st = sk_config_load(dir, &m->cfg))) goto out;
        if ((st = sk_safetensors_open(&m->files, weights))) goto out;
    } else {
        m->format = "llama2c";
        if ((st = sk_llama2c_open(&m->files, path))) goto out;
        weights = sk_strdup(path);
        if (!weights) {
            st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
            goto out;
        }
    }
    int64_t n_params = 0;
    if (bind && (st = bind_all(m, params, weights, &n_params))) goto out;
    m->n_params = n_params;
    st = load_tokenizer(m, params, dir);
out:
    sk_free(dir);
    sk_free(weights);
    return st;
}

static shrink_status model_load(shrink_model **out, const char *path,
                                const shrink_load_params *params, int bind) {
    if (!out) return sk_error(SHRINK_ERR_ARG, "loading a model: no result given");
    *out = NULL;
    if (!path || !*path) return sk_error(SHRINK_ERR_ARG, "loading a model: no path given");
    shrink_load_params def = shrink_load_params_default();
    if (!params) params = &def;
    struct shrink_model *m = sk_calloc(1, sizeof *m);
    if (!m) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    m->path = sk_strdup(path);
    shrink_status st = m->path ? load_into(m, path, params, bind)
                               : sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    if (st) {
        shrink_model_free(m);
        return st;
    }
    *out = m;
    return SHRINK_OK;
}

shrink_status shrink_model_load(shrink_model **out, const char *path,
                                const shrink_load_params *params) {
    shrink_status st = model_load(out, path, params, 1);
    if (st || (params && params->allow_nonfinite) ||
        !(st = sk_model_check_finite(*out, "--allow-nonfinite loads the model anyway")))
        return st;
    shrink_model_free(*out);
    *out = NULL;
    return st;
}

shrink_status sk_model_open(struct shrink_model **out, const char *path,
                            const shrink_load_params *params) {
    return model_load(out, path, params, 0);
}

/* ---- queries -------------------------------------------------------------------------- */

void shrink_model_get_info(const shrink_model *m, shrink_model_info *info) {
    memset(info, 0, sizeof *info);
    if (!m) return;
    const sk_config *c = &m->cfg;
    info->arch             = c->arch->name;
    info->format           = m->format;
    info->dim              = c->dim;
    info->n_layers         = c->n_layers;
    info->n_heads          = c->n_heads;
    info->n_kv_heads       = c->n_kv_heads;
    info->head_dim         = c->head_dim;
    info->ffn_dim          = c->ffn_dim;
    info->vocab_size       = c->vocab_size;
    info->max_seq_len      = c->max_seq_len;
    info->norm_eps         = c->norm_eps;
    info->rope_theta       = c->arch->pos == SK_POS_ROPE ? c->rope_theta : 0;
    info->tied_embeddings  = c->tied != 0;
    info->rope_interleaved = c->rope_layout == SK_ROPE_INTERLEAVED;
    info->bos_id           = c->bos_id;
    info->eos_id           = c->eos_id;
    info->add_bos          = c->add_bos != 0;
    info->n_params         = m->n_params;
    info->n_tensors        = m->n_tensors;
    info->weight_bytes     = m->weight_bytes;
    info->file_bytes       = m->file_bytes;
}

shrink_status shrink_model_tensor(const shrink_model *m, int64_t i, shrink_tensor_info *info) {
    if (!m || !info) return sk_error(SHRINK_ERR_ARG, "tensor lookup: no model or result given");
    if (i < 0 || i >= m->n_tensors)
        return sk_error(SHRINK_ERR_RANGE, "tensor index %" PRId64 " not in [0, %"
                        PRId64 ")", i, m->n_tensors);
    const sk_tensor *t = &m->tensors[i];
    memset(info, 0, sizeof *info);
    info->name = t->name;
    info->dtype = t->dtype;
    info->n_dims = t->n_dims;
    for (int d = 0; d < t->n_dims && d < 4; d++) info->shape[d] = t->shape[d];
    info->bytes = t->bytes;
    return SHRINK_OK;
}
