/*
 * source.c - the model as a tensor source for the format writers (sk_source over the file
 * tensors of a loaded or sk_model_open'ed model), and writing a model with its own files
 * protected as inputs.
 *
 * The source reads its file tensors through the mapping, converting (and transposing GPT-2's
 * Conv1D weights) block by block, and drops each tensor's pages (madvise MADV_DONTNEED) once
 * it is written, so the resident set stays at about one block whatever the model's size.
 */
#include "source.h"

#include <dirent.h>

/* The file tensor of canonical tensor t in model m (named as the model's file format names it,
 * through the tensor table), and whether it is stored transposed. */
static const sk_tensor *model_tensor(const struct shrink_model *m, const sk_wtensor *t,
                                     int *stored_t) {
    const sk_trole *r = sk_trole_at(t->role);
    int gguf = strcmp(m->format, "gguf") == 0;
    const sk_arch *a = m->cfg.arch;
    *stored_t = 0;
    char base[128], full[160];
    if (!sk_wtensor_name(t, a, gguf ? SK_TNAME_GGUF : SK_TNAME_HF, base, sizeof base))
        return NULL;
    /* HF files may put the arch's prefix before the base model's names, or not */
    const char *const pre[] = {gguf || r->top ? "" : a->hf_prefix, ""};
    for (int p = 0; p < 2; p++) {
        snprintf(full, sizeof full, "%s%s", pre[p], base);
        for (int64_t i = 0; i < m->n_tensors; i++) {
            if (strcmp(m->tensors[i].name, full) == 0) {
                *stored_t = !gguf && sk_trole_conv1d(r, a);
                return &m->tensors[i];
            }
        }
    }
    return NULL;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Is p inside one of m's mappings? (owned buffers must not be madvise'd) */
int sk_model_in_mapping(const struct shrink_model *m, const void *p) {
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
    int mapped = sk_model_in_mapping(m, ft->data);
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

int sk_model_file_dtype(const struct shrink_model *m, const sk_wtensor *t) {
    int stored_t;
    const sk_tensor *ft = model_tensor(m, t, &stored_t);
    if (!ft && t->role == SK_ROLE_HEAD) {
        sk_wtensor e = *t;
        e.role = SK_ROLE_TOK_EMB;
        ft = model_tensor(m, &e, &stored_t);
    }
    return ft ? (int)ft->dtype : -1;
}

static shrink_dtype model_dtype_of(void *user, const sk_wtensor *t) {
    /* quantized types (q4_K, int8_ch, ...) are written widened to f32 unless a dtype is asked
     * for (shrink_convert passes them through itself) */
    int d = sk_model_file_dtype(user, t);
    if (d == SHRINK_DTYPE_SPARSE24_F16 || d == SHRINK_DTYPE_SPARSE_F16)
        return SHRINK_DTYPE_F16; /* dense again, exactly */
    return d >= 0 && !sk_dtype_quantized((shrink_dtype)d) ? (shrink_dtype)d : SHRINK_DTYPE_F32;
}

/* A matrix the file stores as two low-rank factors: their rank (A's rows), else 0. */
static int64_t model_rank_of(void *user, const sk_wtensor *t) {
    const struct shrink_model *m = user;
    if (t->factor || !sk_trole_at(t->role)->lowrank) return 0;
    int stored_t;
    if (model_tensor(m, t, &stored_t)) return 0;
    sk_wtensor fa, fb;
    sk_wtensor_factors(t, 1, &fa, &fb);
    const sk_tensor *a = model_tensor(m, &fa, &stored_t);
    return a && a->n_dims == 2 ? a->shape[0] : 0;
}

shrink_status sk_source_from_model(const struct shrink_model *m, sk_source *src) {
    memset(src, 0, sizeof *src);
    if (!m) return sk_error(SHRINK_ERR_ARG, "reading weights: no model given");
    src->cfg = m->cfg;
    src->fill = model_fill;
    src->dtype_of = model_dtype_of;
    src->rank_of = model_rank_of;
    src->rank_user = (void *)(uintptr_t)m;
    src->user = (void *)(uintptr_t)m;
    src->tok = m->tok;
    src->name = NULL;
    /* the model's dtype: that of the token embedding */
    sk_wtensor e = {.role = SK_ROLE_TOK_EMB, .layer = -1};
    src->dtype = model_dtype_of((void *)(uintptr_t)m, &e);
    /* every canonical tensor must exist with the right element count */
    sk_wtensor *ts;
    int64_t n;
    shrink_status st = sk_source_tensors(src, &ts, &n); /* low-rank factors included */
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

shrink_status sk_model_write(const struct shrink_model *m, const char *out, sk_format fmt,
                             const sk_write_opts *o) {
    sk_source src;
    shrink_status st = sk_source_from_model(m, &src);
    if (st) return st;
    return sk_model_write_source(m, &src, out, fmt, o);
}

shrink_status sk_source_serve_f32(const float *buf, const sk_wtensor *t, int64_t row0,
                                  int64_t n_rows, int transposed, shrink_dtype dt, void *dst,
                                  float **tr, const char *what) {
    if (t->n_dims == 1) return sk_convert_rows(buf + row0, SHRINK_DTYPE_F32, dst, dt, 1, n_rows);
    if (!transposed)
        return sk_convert_rows(buf + row0 * t->cols, SHRINK_DTYPE_F32, dst, dt, n_rows, t->cols);
    sk_free(*tr);
    *tr = sk_aligned_alloc(64, (size_t)(n_rows * t->rows) * sizeof(float));
    if (!*tr) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", what);
    for (int64_t j = 0; j < n_rows; j++)
        for (int64_t k = 0; k < t->rows; k++) (*tr)[j * t->rows + k] = buf[k * t->cols + row0 + j];
    return sk_convert_rows(*tr, SHRINK_DTYPE_F32, dst, dt, n_rows, t->rows);
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
