/*
 * merge.c - shrink_merge: W' = W + scale * B A of one or more LoRA adapters (model/lora.h)
 * merged into a base model, written through the format writers (GGUF, Hugging Face folder,
 * llama2.c) like shrink_convert. The base is opened without binding its weights; a source
 * wraps the model's own: the rows of an adapted projection are read as f32, the adapters'
 * B[rows] A added, and the block converted to the output dtype. Nothing holds the whole model.
 *
 * An adapter of scale 0 changes nothing and is skipped, so the output is then exactly what
 * shrink_convert writes. A quantized base needs an explicit output dtype: merging into it
 * would otherwise widen the weights to f32 silently.
 */
#include "../model/lora.h"
#include "../model/source.h"

#include <math.h>

shrink_merge_params shrink_merge_params_default(void) {
    shrink_merge_params p;
    memset(&p, 0, sizeof p);
    p.dtype = -1;
    return p;
}

typedef struct merge_src {
    sk_source      base;     /* the model's own source */
    const sk_lora *list;
    float         *tmp;      /* f32 rows of one block */
    size_t         tmp_n;
    int64_t        n_merged; /* blocks of adapted tensors (counted on their first rows) */
    int            keep_zeros; /* shrink_merge_params.keep_sparsity */
} merge_src;

static int role_linear(int role) {
    switch (role) {
    case SK_ROLE_WQ: return SK_LIN_Q;
    case SK_ROLE_WK: return SK_LIN_K;
    case SK_ROLE_WV: return SK_LIN_V;
    case SK_ROLE_WO: return SK_LIN_O;
    case SK_ROLE_W_GATE: return SK_LIN_GATE;
    case SK_ROLE_W_UP: return SK_LIN_UP;
    case SK_ROLE_W_DOWN: return SK_LIN_DOWN;
    default: return -1;
    }
}

/* Is projection `which` of layer l adapted by an adapter of nonzero scale? */
static int adapted(const sk_lora *list, int l, int which) {
    for (const sk_lora *a = list; a; a = a->next)
        if (a->scale != 0.f && a->pairs[(size_t)l * SK_LORA_N_LIN + which].A) return 1;
    return 0;
}

static shrink_status merge_fill(void *user, const sk_wtensor *t, int64_t row0, int64_t n_rows,
                                int transposed, shrink_dtype dt, void *dst) {
    merge_src *ms = user;
    int which = t->n_dims == 2 ? role_linear(t->role) : -1;
    if (which < 0 || t->layer < 0 || !adapted(ms->list, t->layer, which))
        return ms->base.fill(ms->base.user, t, row0, n_rows, transposed, dt, dst);
    if (transposed)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "merge: '%s': the output format asks "
                        "the merged matrix transposed", t->name);
    size_t need = (size_t)n_rows * (size_t)t->cols;
    float *w = dt == SHRINK_DTYPE_F32 ? dst : NULL;
    if (!w) {
        if (need > ms->tmp_n) {
            sk_free(ms->tmp);
            ms->tmp = sk_aligned_alloc(64, need * sizeof(float));
            ms->tmp_n = ms->tmp ? need : 0;
            if (!ms->tmp)
                return sk_error(SHRINK_ERR_NOMEM, "merge: '%s': out of memory", t->name);
        }
        w = ms->tmp;
    }
    shrink_status st = ms->base.fill(ms->base.user, t, row0, n_rows, 0, SHRINK_DTYPE_F32, w);
    if (st) return st;
    if (row0 == 0) ms->n_merged++;
    const int64_t cols = t->cols;
    for (const sk_lora *a = ms->list; a; a = a->next) {
        const sk_lora_pair *p = &a->pairs[(size_t)t->layer * SK_LORA_N_LIN + which];
        if (!p->A || a->scale == 0.f) continue;
        const float s = a->scale;
        const int64_t r = p->r;
        #pragma omp parallel for schedule(static) if (n_rows * cols * r > 65536)
        for (int64_t i = 0; i < n_rows; i++) {
            const float *b = p->B + (row0 + i) * r;
            float *row = w + i * cols;
            for (int64_t c = 0; c < cols; c++) {
                if (ms->keep_zeros && row[c] == 0.0f) continue; /* a pruned weight */
                float acc = 0.f;
                for (int64_t k = 0; k < r; k++) acc += b[k] * p->A[k * cols + c];
                row[c] += s * acc;
            }
        }
    }
    if (w != dst) return sk_convert_rows(w, SHRINK_DTYPE_F32, dst, dt, n_rows, cols);
    return SHRINK_OK;
}

/* Forwards progress and remembers the bytes written. */
typedef struct merge_progress {
    const shrink_merge_params *p;
    int64_t                    done;
} merge_progress;

static void merge_progress_cb(void *user, int64_t done, int64_t total) {
    merge_progress *c = user;
    c->done = done;
    if (c->p->progress) c->p->progress(c->p->user, done, total);
}

shrink_status shrink_merge(const char *base, const char *out, const shrink_merge_params *p,
                           shrink_merge_result *r) {
    if (r) memset(r, 0, sizeof *r);
    if (!base || !*base || !out || !*out || !p)
        return sk_error(SHRINK_ERR_ARG, "merge: base, output and parameters are required");
    if (p->n_adapters < 1 || !p->adapters)
        return sk_error(SHRINK_ERR_ARG, "merge: no adapter given (--lora FILE[:SCALE])");
    int fmt = p->to ? sk_format_parse(p->to) : (int)sk_format_from_path(out);
    if (fmt < 0)
        return sk_error(SHRINK_ERR_ARG, "merge: unknown output format '%s' (gguf, hf, "
                        "llama2c)", p->to);
    if (p->dtype < -1 || p->dtype >= SHRINK_DTYPE_COUNT)
        return sk_error(SHRINK_ERR_ARG, "merge: bad dtype %d", (int)p->dtype);
    if (p->dtype >= 0 && sk_dtype_sparse24((shrink_dtype)p->dtype))
        return sk_error(SHRINK_ERR_ARG, "%s: %s stores 2:4-pruned matrices only; write it with "
                        "shrink prune --pattern 2:4 --store %s", out, sk_dtype((shrink_dtype)p->dtype)->name,
                        sk_dtype((shrink_dtype)p->dtype)->name);
    if (sk_same_file(base, out))
        return sk_error(SHRINK_ERR_ARG, "%s: is the base model; refusing to overwrite it", out);
    double t0 = shrink_time();
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = p->tokenizer_path;
    struct shrink_model *m = NULL;
    sk_lora *list = NULL;
    merge_src ms = {0};
    shrink_status st = sk_model_open(&m, base, &lp);
    if (st) goto out;
    if (p->dtype < 0 && fmt != SK_FORMAT_LLAMA2C)
        for (int64_t i = 0; i < m->n_tensors; i++)
            if (m->tensors[i].n_dims == 2 && sk_dtype_quantized(m->tensors[i].dtype)) {
                st = sk_error(SHRINK_ERR_ARG, "%s: the base is quantized (tensor '%s' is %s): "
                              "merging would widen it; give the output dtype (--dtype f16, "
                              "f32, q8_0, ...)", base, m->tensors[i].name,
                              shrink_dtype_name(m->tensors[i].dtype));
                goto out;
            }
    sk_lora **end = &list;
    for (int i = 0; i < p->n_adapters; i++) {
        double sc = p->scales ? p->scales[i] : 1.0;
        if ((st = sk_lora_read(p->adapters[i], &m->cfg, m->cfg.rope_layout, sc, end))) goto out;
        end = &(*end)->next;
    }
    if ((st = sk_source_from_model(m, &ms.base))) goto out;
    ms.list = list;
    ms.keep_zeros = p->keep_sparsity;
    sk_source src = ms.base;
    src.fill = merge_fill;
    src.user = &ms;
    sk_write_opts o = sk_write_opts_default();
    o.dtype = p->dtype;
    merge_progress mp = {p, 0};
    o.progress = merge_progress_cb;
    o.progress_user = &mp;
    if ((st = sk_model_write_source(m, &src, out, (sk_format)fmt, &o))) goto out;
    if (r) {
        r->format = sk_format_name((sk_format)fmt);
        r->dtype = fmt == SK_FORMAT_LLAMA2C ? SHRINK_DTYPE_F32
                   : p->dtype >= 0          ? (shrink_dtype)p->dtype
                                            : ms.base.dtype;
        r->n_merged = ms.n_merged;
        r->tensor_bytes = (uint64_t)mp.done;
        for (const sk_lora *a = list; a; a = a->next) r->n_adapter_params += a->n_params;
        r->seconds = shrink_time() - t0;
    }
out:
    sk_free(ms.tmp);
    sk_lora_free(list);
    shrink_model_free(m);
    return st;
}
