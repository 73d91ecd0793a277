/*
 * transform.c - the tensor transform (transform.h): open a model, plan the output's tensors,
 * stream each one through the threads and the operation's row callback into the GGUF writer.
 *
 * The writer asks for each tensor block by block in writing order (row0 == 0 starts the
 * next tensor); xf_fill serves a block by dealing chunks of f32 rows to the threads, each
 * reading its chunk from the model's source into its own staging slice and transforming it
 * into the block. The source is thread-safe for disjoint rows (it reads the mapping and
 * converts).
 */
#include "transform.h"

#include <omp.h>

/* ---- opening ------------------------------------------------------------------------------ */

/* The tensors sk_gguf_write writes: the canonical list (a tied head is token_embd alone;
 * gguf.c's gguf_list). */
static shrink_status list_tensors(sk_xf *xf) {
    const sk_config *c = &xf->base.cfg;
    sk_wtensor *ts;
    int64_t n;
    shrink_status st = sk_source_tensors(&xf->base, &ts, &n); /* low-rank factors included */
    if (st) return st;
    sk_xf_tensor *x = sk_calloc((size_t)n, sizeof *x);
    if (!x) {
        sk_free(ts);
        return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", xf->what);
    }
    for (int64_t i = 0; i < n; i++) x[i].t = ts[i];
    sk_free(ts);
    for (int64_t i = 0; i < n; i++) {
        if (!sk_wtensor_name(&x[i].t, c->arch, SK_TNAME_GGUF, x[i].name, sizeof x[i].name))
            snprintf(x[i].name, sizeof x[i].name, "?");
        x[i].in_dtype = xf->base.dtype_of ? xf->base.dtype_of(xf->base.user, &x[i].t)
                                          : xf->base.dtype;
    }
    xf->ts = x;
    xf->n = n;
    return SHRINK_OK;
}

shrink_status sk_xf_open(sk_xf *xf, const char *in, const char *tokenizer_path,
                         const char *what) {
    memset(xf, 0, sizeof *xf);
    xf->cur = -1;
    xf->what = what ? what : "transform";
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = tokenizer_path;
    shrink_status st = sk_model_open(&xf->model, in, &lp);
    /* NaN/Inf weights (quantized ones included) refused before any work: a quantized or
     * pruned copy would hide the damage */
    if (!st) st = sk_model_check_finite(xf->model, NULL);
    if (!st) st = sk_source_from_model(xf->model, &xf->base);
    if (!st) st = list_tensors(xf);
    xf->n_threads = omp_get_max_threads();
    if (xf->n_threads < 1) xf->n_threads = 1;
    return st;
}

void sk_xf_close(sk_xf *xf) {
    if (!xf) return;
    sk_free(xf->stage);
    sk_free(xf->ts);
    shrink_model_free(xf->model);
    memset(xf, 0, sizeof *xf);
}

/* ---- streaming rows through the threads ---------------------------------------------------- */

/* Room for at least one row of cols f32 per thread. */
static shrink_status ensure_stage(sk_xf *xf, int64_t cols) {
    size_t need = (size_t)cols > SK_XF_STAGE_FLOATS ? (size_t)cols : SK_XF_STAGE_FLOATS;
    if (need > xf->stage_floats) {
        sk_free(xf->stage);
        xf->stage = sk_aligned_alloc(64, (size_t)xf->n_threads * need * sizeof(float));
        xf->stage_floats = xf->stage ? need : 0;
        if (!xf->stage) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", xf->what);
    }
    return SHRINK_OK;
}

/* Records the first failure of a thread (its message is thread-local). */
static void thread_fail(sk_xf *xf, shrink_status st) {
    #pragma omp critical
    if (!xf->err) {
        xf->err = st;
        snprintf(xf->err_msg, sizeof xf->err_msg, "%s", shrink_last_error());
    }
}

/* The failure of a parallel region as this thread's status. */
static shrink_status region_status(sk_xf *xf) {
    if (!xf->err) return SHRINK_OK;
    shrink_status st = xf->err;
    xf->err = SHRINK_OK;
    return sk_error(st, "%s", xf->err_msg);
}

shrink_status sk_xf_map_rows(sk_xf *xf, const sk_xf_tensor *x, int64_t row0, int64_t n_rows,
                             sk_xf_chunk_fn fn, void *user) {
    const sk_wtensor *t = &x->t;
    const int vec = t->n_dims == 1;
    const int64_t cols = vec ? t->rows : t->cols;
    shrink_status st = ensure_stage(xf, cols);
    if (st) return st;
    const int64_t per = (int64_t)(xf->stage_floats / (size_t)cols);
    const int64_t n_chunks = (n_rows + per - 1) / per;
    int nt = n_chunks < xf->n_threads ? (int)n_chunks : xf->n_threads;
    if ((double)n_rows * (double)cols < 32768.0) nt = 1; /* not worth the threads */
    #pragma omp parallel num_threads(nt)
    {
        const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        float *rows = xf->stage + (size_t)tid * xf->stage_floats;
        for (int64_t c = tid; c < n_chunks && !xf->err; c += nth) {
            const int64_t r0 = c * per, k = n_rows - r0 < per ? n_rows - r0 : per;
            shrink_status s2 = vec ? xf->base.fill(xf->base.user, t, 0, t->rows, 0,
                                                   SHRINK_DTYPE_F32, rows)
                                   : xf->base.fill(xf->base.user, t, row0 + r0, k, 0,
                                                   SHRINK_DTYPE_F32, rows);
            if (!s2) s2 = fn(user, tid, r0, k, rows);
            if (s2) {
                thread_fail(xf, s2);
                break;
            }
        }
    }
    return region_status(xf);
}

/* ---- the transforming source --------------------------------------------------------------- */

/* A block being filled: rows [row0, ...) of x into dst. */
typedef struct xf_block {
    sk_xf        *xf;
    sk_xf_tensor *x;
    int64_t       row0;
    size_t        row_bytes;
    uint8_t      *dst;
} xf_block;

static shrink_status block_chunk(void *user, int tid, int64_t r, int64_t k, float *rows) {
    xf_block *b = user;
    sk_xf_tensor *x = b->x;
    uint8_t *dst = b->dst + (size_t)r * b->row_bytes;
    const sk_xf_method *m = b->xf->method;
    if (m->rows) return m->rows(m->user, x, tid, b->row0 + r, k, rows, dst);
    int64_t cols = x->t.n_dims == 1 ? x->t.rows : x->t.cols;
    return sk_convert_rows(rows, SHRINK_DTYPE_F32, dst, x->dtype, k, cols);
}

static shrink_status xf_fill(void *user, const sk_wtensor *t, int64_t row0, int64_t n_rows,
                             int transposed, shrink_dtype dt, void *dst) {
    sk_xf *xf = user;
    shrink_status st;
    if (row0 == 0) xf->cur++;
    SHRINK_ASSERT(xf->cur >= 0 && xf->cur < xf->n && !transposed);
    sk_xf_tensor *x = &xf->ts[xf->cur];
    SHRINK_ASSERT(dt == x->dtype);
    const int vec = t->n_dims == 1;
    if (vec && (row0 != 0 || n_rows != t->rows))
        return sk_error(SHRINK_ERR_ARG, "%s: '%s' asked in pieces", xf->what, x->name);
    if (row0 == 0 && xf->method->begin &&
        (st = xf->method->begin(xf->method->user, xf, x)))
        return st;
    const int64_t cols = vec ? t->rows : t->cols;
    xf_block b = {xf, x, row0, (size_t)sk_dtype_row_bytes(dt, cols), dst};
    if ((st = sk_xf_map_rows(xf, x, row0, vec ? 1 : n_rows, block_chunk, &b))) return st;
    if (xf->method->end_block &&
        (st = xf->method->end_block(xf->method->user, xf, x, row0, vec ? 1 : n_rows)))
        return st;
    xf->done += (uint64_t)(vec ? 1 : n_rows) * sk_dtype_row_bytes(dt, cols);
    if (xf->opts->progress)
        xf->opts->progress(xf->opts->progress_user, (int64_t)xf->done, (int64_t)xf->total);
    return SHRINK_OK;
}

/* The writer's dtype of tensor i: the plan's. */
static shrink_dtype xf_tensor_dtype(void *user, const sk_wtensor *t, int64_t i) {
    sk_xf *xf = user;
    SHRINK_ASSERT(i >= 0 && i < xf->n && xf->ts[i].t.role == t->role &&
                  xf->ts[i].t.layer == t->layer);
    return xf->ts[i].dtype;
}

shrink_status sk_xf_write(sk_xf *xf, const char *out, const sk_xf_method *m,
                          const sk_xf_opts *o) {
    shrink_status st;
    if (!xf->model || !m || !m->plan || !o)
        return sk_error(SHRINK_ERR_ARG, "%s: writing needs an open model, a plan and "
                        "options", xf->what);
    if (sk_format_from_path(out) != SK_FORMAT_GGUF)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: %s writes GGUF only; name the output "
                        "*.gguf", out, xf->what);
    xf->method = m;
    xf->opts = o;
    xf->total = 0;
    for (int64_t i = 0; i < xf->n; i++) {
        sk_xf_tensor *x = &xf->ts[i];
        const sk_wtensor *t = &x->t;
        x->dtype = t->n_dims == 1 ? SHRINK_DTYPE_F32 : x->in_dtype;
        if ((st = m->plan(m->user, xf, x))) return st;
        int64_t rows = t->n_dims == 1 ? 1 : t->rows, cols = t->n_dims == 1 ? t->rows : t->cols;
        x->bytes = (uint64_t)rows * sk_dtype_row_bytes(x->dtype, cols);
        xf->total += x->bytes;
    }
    sk_source src = xf->base;
    src.fill = xf_fill;
    src.user = xf;
    src.dtype_of = NULL;
    src.dtype = o->dtype >= 0 ? (shrink_dtype)o->dtype : xf->base.dtype;
    sk_write_opts wo = sk_write_opts_default();
    wo.dtype = o->dtype;
    wo.tensor_dtype = xf_tensor_dtype;
    wo.tensor_user = xf;
    wo.file_type = o->file_type;
    wo.dry_bytes = o->dry_bytes;
    xf->cur = -1;
    xf->done = 0;
    if ((st = sk_model_write_source(xf->model, &src, out, SK_FORMAT_GGUF, &wo))) return st;
    if (o->dry_bytes) return SHRINK_OK;
    SHRINK_ASSERT(xf->cur == xf->n - 1);
    return SHRINK_OK;
}

/* ---- a whole matrix as f32 ------------------------------------------------------------------ */

typedef struct xf_rd {
    float  *dst;
    int64_t cols;
} xf_rd;

static shrink_status read_chunk(void *user, int tid, int64_t r, int64_t k, float *rows) {
    xf_rd *d = user;
    memcpy(d->dst + (size_t)r * (size_t)d->cols, rows, (size_t)(k * d->cols) * sizeof(float));
    return SHRINK_OK;
}

shrink_status sk_xf_read_f32(sk_xf *xf, const sk_xf_tensor *x, float **out) {
    const int64_t n = x->t.rows * x->t.cols;
    float *w = sk_aligned_alloc(64, (size_t)n * sizeof *w);
    if (!w) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory for '%s' (%lld values)",
                            xf->what, x->name, (long long)n);
    xf_rd d = {w, x->t.cols};
    shrink_status st = sk_xf_map_rows(xf, x, 0, x->t.rows, read_chunk, &d);
    if (st) {
        sk_free(w);
        return st;
    }
    *out = w;
    return SHRINK_OK;
}
