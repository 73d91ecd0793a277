/*
 * imatrix.c - shrink_imatrix and the importance matrices shrink_quantize uses (imatrix.h).
 *
 * Computing (as llama-imatrix of llama.cpp c392e50 does, so that both give the same file on
 * the same model and text): the whole calibration text is encoded (BOS first when the model
 * adds one), cut into chunks of C tokens (the tail shorter than C is dropped), and each chunk
 * is run from position 0 with its first token replaced by BOS. An observer on the decoder
 * (sk_context_set_observer) sees the input X (T x cols) of every linear layer of the blocks
 * and adds x^2 of every column over the T tokens, in double. The head is not observed
 * (llama-imatrix leaves output.weight out unless --process-output). Entry values are
 * mean x^2 per column; llama.cpp counts one call per matrix product of at most 512 tokens
 * (its micro-batch), so a chunk of C tokens is ceil(C / 512) calls.
 *
 * Legacy file (llama.cpp's imatrix.dat, little-endian): int32 n_entries; per entry int32
 * name length, the name, int32 ncall, int32 n_values, float[n_values] = mean(x^2) * ncall;
 * then int32 chunks and int32 length + the calibration file's name. llama-quantize divides
 * by ncall. GGUF form (newer llama.cpp): per entry tensors "<name>.in_sum2" (F32, n_values
 * x n_matrices) and "<name>.counts" (F32, n_matrices); the importance is in_sum2 / counts
 * per matrix; keys imatrix.chunk_count and imatrix.datasets.
 */
#include "imatrix.h"

#include "../model/model.h"
#include "../model/layerwise.h"
#include "../formats/formats.h"
#include "../core/out.h"

#include <math.h>

/* ==== the in-memory matrix =============================================================== */

void sk_imatrix_free(sk_imatrix *m) {
    if (!m) return;
    for (int64_t i = 0; i < m->n; i++) {
        sk_free(m->e[i].name);
        sk_free(m->e[i].v);
    }
    sk_free(m->e);
    sk_free(m->dataset);
    sk_free(m);
}

const sk_imatrix_entry *sk_imatrix_find(const sk_imatrix *m, const char *name) {
    if (!m || !name) return NULL;
    for (int64_t i = 0; i < m->n; i++)
        if (strcmp(m->e[i].name, name) == 0) return &m->e[i];
    return NULL;
}

/* Adds an entry (name copied, values taken over); *e gets it. */
static shrink_status add_entry(sk_imatrix *m, const char *name, size_t len, int64_t n,
                               int32_t ncall, sk_imatrix_entry **e) {
    sk_imatrix_entry *ne = sk_realloc(m->e, (size_t)(m->n + 1) * sizeof *ne);
    if (!ne) return sk_error(SHRINK_ERR_NOMEM, "imatrix: out of memory");
    m->e = ne;
    sk_imatrix_entry *x = &m->e[m->n];
    memset(x, 0, sizeof *x);
    x->name = sk_strndup(name, len);
    x->v = sk_calloc((size_t)n, sizeof(float));
    if (!x->name || !x->v) {
        sk_free(x->name);
        sk_free(x->v);
        return sk_error(SHRINK_ERR_NOMEM, "imatrix: out of memory");
    }
    x->n = n;
    x->ncall = ncall;
    m->n++;
    *e = x;
    return SHRINK_OK;
}

/* ==== reading ============================================================================ */

static int32_t rd_i32(const uint8_t *p) {
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                 (uint32_t)p[3] << 24;
    int32_t r;
    memcpy(&r, &v, 4);
    return r;
}

static float rd_f32(const uint8_t *p) {
    uint32_t v = (uint32_t)rd_i32(p);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

/* Value i of entry `name` must be finite and >= 0. */
static shrink_status check_value(const char *path, const sk_imatrix_entry *e, int64_t i) {
    float v = e->v[i];
    if (isfinite(v) && v >= 0.0f) return SHRINK_OK;
    return sk_error(SHRINK_ERR_FORMAT, "%s: entry '%s' holds %s at column %" PRId64 ": the "
                    "importance matrix is broken (a diverged calibration run?)", path, e->name,
                    isnan(v) ? "NaN" : isinf(v) ? "an infinity" : "a negative value", i);
}

#define MAX_NAME 512

static shrink_status read_legacy(const char *path, const uint8_t *b, size_t len, sk_imatrix *m) {
    size_t at = 0;
#define NEED(k, what)                                                                         \
    do {                                                                                      \
        if (len - at < (size_t)(k))                                                           \
            return sk_error(SHRINK_ERR_FORMAT, "%s: truncated: %s needs %zu bytes at offset " \
                            "%zu but the file ends at %zu", path, what, (size_t)(k), at, len); \
    } while (0)
    NEED(4, "the entry count");
    int32_t n = rd_i32(b);
    at = 4;
    if (n < 1 || (size_t)n > len / 12)
        return sk_error(SHRINK_ERR_FORMAT, "%s: not an importance matrix: it claims %d entries "
                        "in %zu bytes", path, (int)n, len);
    for (int32_t i = 0; i < n; i++) {
        NEED(4, "an entry's name length");
        int32_t nl = rd_i32(b + at);
        at += 4;
        if (nl < 1 || nl > MAX_NAME)
            return sk_error(SHRINK_ERR_FORMAT, "%s: entry %d has a name of %d bytes (1..%d)",
                            path, (int)i, (int)nl, MAX_NAME);
        NEED(nl + 8, "an entry's name and counts");
        const char *name = (const char *)b + at;
        at += (size_t)nl;
        int32_t ncall = rd_i32(b + at), nv = rd_i32(b + at + 4);
        at += 8;
        if (memchr(name, 0, (size_t)nl))
            return sk_error(SHRINK_ERR_FORMAT, "%s: entry %d's name holds a NUL byte", path,
                            (int)i);
        if (ncall < 0 || nv < 1)
            return sk_error(SHRINK_ERR_FORMAT, "%s: entry '%.*s' has %d calls and %d values",
                            path, (int)nl, name, (int)ncall, (int)nv);
        NEED((size_t)nv * 4, "an entry's values");
        for (int64_t k = 0; k < m->n; k++)
            if (strlen(m->e[k].name) == (size_t)nl && !memcmp(m->e[k].name, name, (size_t)nl))
                return sk_error(SHRINK_ERR_FORMAT, "%s: entry '%.*s' appears twice", path,
                                (int)nl, name);
        sk_imatrix_entry *e;
        shrink_status st = add_entry(m, name, (size_t)nl, nv, ncall, &e);
        if (st) return st;
        for (int32_t k = 0; k < nv; k++) {
            float v = rd_f32(b + at + 4 * (size_t)k);
            e->v[k] = ncall > 0 ? v / (float)ncall : v;
            if ((st = check_value(path, e, k))) return st;
        }
        at += (size_t)nv * 4;
    }
    if (at == len) return SHRINK_OK; /* older files end here */
    NEED(8, "the chunk count and dataset name");
    m->chunks = rd_i32(b + at);
    int32_t dl = rd_i32(b + at + 4);
    at += 8;
    if (dl < 0 || (size_t)dl != len - at)
        return sk_error(SHRINK_ERR_FORMAT, "%s: the dataset name claims %d bytes but %zu "
                        "remain", path, (int)dl, len - at);
    m->dataset = sk_strndup((const char *)b + at, (size_t)dl);
    if (!m->dataset) return sk_error(SHRINK_ERR_NOMEM, "imatrix: out of memory");
#undef NEED
    return SHRINK_OK;
}

static int str_ends(sk_gguf_str s, const char *suf, size_t *base) {
    size_t k = strlen(suf);
    if (s.len <= k || memcmp(s.s + s.len - k, suf, k) != 0) return 0;
    *base = (size_t)s.len - k;
    return 1;
}

static shrink_status read_gguf(const char *path, const uint8_t *b, size_t len, sk_imatrix *m) {
    sk_gguf *g = NULL;
    shrink_status st = sk_gguf_parse(b, len, path, &g);
    if (st) return st;
    for (int64_t i = 0; i < g->n_tensors && !st; i++) {
        const sk_gguf_tensor *s = &g->tensors[i];
        size_t bl;
        if (!str_ends(s->name, ".in_sum2", &bl)) continue;
        /* its counts tensor */
        const sk_gguf_tensor *c = NULL;
        for (int64_t k = 0; k < g->n_tensors; k++) {
            size_t cl;
            if (str_ends(g->tensors[k].name, ".counts", &cl) && cl == bl &&
                !memcmp(g->tensors[k].name.s, s->name.s, bl))
                c = &g->tensors[k];
        }
        if (!c) {
            st = sk_error(SHRINK_ERR_FORMAT, "%s: '%.*s' has no '.counts' tensor", path,
                          (int)s->name.len, s->name.s);
            break;
        }
        int64_t cols = s->ne[0], mats = s->n_dims > 1 ? s->ne[1] : 1;
        int64_t nc = c->ne[0] * (c->n_dims > 1 ? c->ne[1] : 1);
        if (s->type != 0 || c->type != 0 || nc != mats || s->n_dims > 2 || cols < 1) {
            st = sk_error(SHRINK_ERR_FORMAT, "%s: '%.*s': expected F32 in_sum2 (n, matrices) "
                          "and F32 counts (matrices)", path, (int)s->name.len, s->name.s);
            break;
        }
        sk_imatrix_entry *e;
        if ((st = add_entry(m, s->name.s, bl, cols * mats, 0, &e))) break;
        for (int64_t j = 0; j < mats && !st; j++) {
            float cnt = rd_f32(c->data + 4 * j);
            if (!(cnt >= 0.0f) || !isfinite(cnt)) {
                st = sk_error(SHRINK_ERR_FORMAT, "%s: entry '%s' has a count of %g", path,
                              e->name, (double)cnt);
                break;
            }
            if (j == 0) e->ncall = (int32_t)(cnt < 2e9f ? cnt : 2e9f);
            for (int64_t k = 0; k < cols && !st; k++) {
                float v = rd_f32(s->data + 4 * (j * cols + k));
                e->v[j * cols + k] = cnt > 0.0f ? v / cnt : 0.0f;
                st = check_value(path, e, j * cols + k);
            }
        }
    }
    if (!st && m->n == 0)
        st = sk_error(SHRINK_ERR_FORMAT, "%s: a GGUF file without importance matrix entries "
                      "('<name>.in_sum2' tensors)", path);
    if (!st) {
        const sk_gguf_kv *kv = sk_gguf_find(g, "imatrix.chunk_count");
        if (kv && kv->val.type <= SK_GGUF_INT32) m->chunks = (int32_t)kv->val.v.u;
    }
    sk_gguf_free(g);
    return st;
}

shrink_status sk_imatrix_read(const char *path, sk_imatrix **out) {
    *out = NULL;
    sk_map map;
    shrink_status st = sk_map_file(path, &map);
    if (st) return st;
    sk_imatrix *m = sk_calloc(1, sizeof *m);
    if (!m) {
        sk_unmap(&map);
        return sk_error(SHRINK_ERR_NOMEM, "imatrix: out of memory");
    }
    if (map.size >= 4 && rd_i32(map.data) == (int32_t)SK_GGUF_MAGIC)
        st = read_gguf(path, map.data, map.size, m);
    else st = read_legacy(path, map.data ? map.data : (const uint8_t *)"", map.size, m);
    sk_unmap(&map);
    if (st) {
        sk_imatrix_free(m);
        return st;
    }
    *out = m;
    return SHRINK_OK;
}

/* ==== matching a model =================================================================== */

shrink_status sk_imatrix_check(const sk_imatrix *m, const sk_xf *xf, const char *what) {
    for (int64_t i = 0; i < m->n; i++) {
        const sk_imatrix_entry *e = &m->e[i];
        const sk_xf_tensor *x = NULL;
        for (int64_t k = 0; k < xf->n; k++)
            if (strcmp(xf->ts[k].name, e->name) == 0) x = &xf->ts[k];
        if (!x || x->t.n_dims != 2)
            return sk_error(SHRINK_ERR_ARG, "%s: entry '%s' names no matrix of the model: the "
                            "importance matrix was computed for another model", what, e->name);
        if (x->t.cols != e->n)
            return sk_error(SHRINK_ERR_ARG, "%s: entry '%s' has %" PRId64 " values but the "
                            "model's tensor has rows of %" PRId64 ": the importance matrix was "
                            "computed for another model", what, e->name, e->n, x->t.cols);
    }
    return SHRINK_OK;
}

/* ==== computing ========================================================================== */

#define UBATCH 512 /* llama.cpp's default micro-batch: one matrix product ("call") per piece */

size_t sk_imatrix_stream_bytes = (size_t)256 << 20;

typedef struct icoll {
    const shrink_imatrix_params *progress; /* its progress callback, tokens */
    int64_t  total, base, span;  /* tokens in all, before this group, in this group */
    int      n_layers;
    int64_t  cols[SK_LIN_COUNT]; /* input width of each linear of a layer */
    double  *sum[SK_LIN_COUNT];  /* (n_layers * cols) sums of x^2 */
    int64_t  tokens;             /* tokens seen per linear (each sees every token) */
    int      seen[SK_LIN_COUNT];
    /* a rank other than 0 keeps each chunk's sums apart: sum[w] holds n_keep blocks of
     * n_layers * cols, the i-th call of (layer, w) adding into block i */
    int64_t  n_keep;
    int64_t *calls;              /* (SK_LIN_HEAD * n_layers) calls seen, when n_keep > 1 */
    int      overflow;           /* a (layer, w) called more than once per chunk: the chunk
                                  * blocks would not be the chunks */
} icoll;

static void icoll_observe(void *user, int layer, sk_linear which, const float *X, int64_t T,
                          int64_t cols) {
    icoll *c = user;
    if (layer < 0 || layer >= c->n_layers || which >= SK_LIN_HEAD || !c->sum[which] ||
        cols != c->cols[which])
        return;
    c->seen[which] = 1;
    double *s = c->sum[which] + (int64_t)layer * cols;
    if (c->n_keep > 1) {   /* this chunk's block */
        int64_t i = c->calls[(int64_t)which * c->n_layers + layer]++;
        if (i >= c->n_keep) {
            c->overflow = 1;
            return;
        }
        s += i * c->n_layers * cols;
    }
    #pragma omp parallel for schedule(static) if (cols * T > 65536)
    for (int64_t j = 0; j < cols; j++) {
        double a = 0.0;
        for (int64_t t = 0; t < T; t++) {
            double v = X[t * cols + j];
            a += v * v;
        }
        s[j] += a;
    }
}

/* The GGUF name of linear `which` of layer l, or NULL if the model has none (GPT-2's fused
 * q|k|v is the Q linear; K and V have no tensor of their own). */
static const char *lin_name(const sk_config *c, int l, sk_linear which, char *buf, size_t cap) {
    static const sk_role roles[SK_LIN_HEAD] = {SK_ROLE_WQ, SK_ROLE_WK, SK_ROLE_WV, SK_ROLE_WO,
                                               SK_ROLE_W_GATE, SK_ROLE_W_UP, SK_ROLE_W_DOWN};
    sk_role r = roles[which];
    if (c->arch->fused_qkv) {
        if (which == SK_LIN_K || which == SK_LIN_V) return NULL;
        if (which == SK_LIN_Q) r = SK_ROLE_WQKV;
    }
    const sk_trole *t = sk_trole_at(r);
    if (!t || sk_trole_need(t, c) != 1) return NULL;
    return sk_trole_name(t, c->arch, SK_TNAME_GGUF, l, buf, cap);
}

static int64_t lin_cols(const sk_config *c, sk_linear which) {
    switch (which) {
    case SK_LIN_O: return (int64_t)c->n_heads * c->head_dim;
    case SK_LIN_DOWN: return c->ffn_dim;
    default: return c->dim;
    }
}

/* A group's layers done, as tokens of the whole pass. */
static void im_layers(void *user, int64_t done, int64_t n) {
    const icoll *c = user;
    const shrink_imatrix_params *p = c->progress;
    if (p->progress && n > 0) p->progress(p->user, c->base + c->span * done / n, c->total);
}

/* Ranks: every one must run the same options on the same files. */
static shrink_status imatrix_agree(const shrink_train_comm *rc, const char *in,
                                   const shrink_imatrix_params *p) {
    if (!rc->agree) return SHRINK_OK;
    char opt[64];
    snprintf(opt, sizeof opt, "imatrix %lld %d", (long long)p->calib_tokens, (int)p->calib_ctx);
    uint64_t h = sk_hash_str(SK_HASH64_INIT, opt);
    h = sk_hash_file_id(sk_hash_file_id(sk_hash_file_id(h, in), p->calib_path),
                        p->tokenizer_path);
    return rc->agree(rc->user, h);
}

/* Ranks: the sums of every column, each rank's chunk blocks in order, added along the chain;
 * the total lands in every rank's first block. */
static shrink_status imatrix_reduce(const shrink_train_comm *rc, icoll *c) {
    if (!rc->sum_f64)
        return sk_error(SHRINK_ERR_ARG, "imatrix: the ranks' communication has no sum");
    double **parts = sk_malloc((size_t)c->n_keep * sizeof *parts);
    if (!parts) return sk_error(SHRINK_ERR_NOMEM, "imatrix: out of memory");
    shrink_status st = SHRINK_OK;
    for (int w = 0; w < SK_LIN_HEAD && !st; w++) {
        if (!c->sum[w]) continue;
        const int64_t n = (int64_t)c->n_layers * c->cols[w];
        for (int64_t i = 0; i < c->n_keep; i++) parts[i] = c->sum[w] + i * n;
        st = rc->sum_f64(rc->user, parts, (int32_t)c->n_keep, n);
    }
    sk_free(parts);
    return st;
}

shrink_imatrix_params shrink_imatrix_params_default(void) {
    shrink_imatrix_params p = {.calib_path = NULL, .calib_tokens = 0, .calib_ctx = 512,
                               .tokenizer_path = NULL, .progress = NULL, .user = NULL};
    return p;
}

shrink_status sk_imatrix_compute(const char *in, const shrink_imatrix_params *p,
                                 sk_imatrix **out, shrink_imatrix_result *r) {
    *out = NULL;
    shrink_imatrix_result tmp;
    if (!r) r = &tmp;
    memset(r, 0, sizeof *r);
    double t0 = shrink_time();
    if (!p->calib_path || !*p->calib_path)
        return sk_error(SHRINK_ERR_ARG, "the importance matrix needs a calibration text "
                        "(--calib FILE)");
    if (p->calib_tokens < 0 || p->calib_ctx < 0)
        return sk_error(SHRINK_ERR_ARG, "calibration tokens %lld / chunk %d < 0",
                        (long long)p->calib_tokens, (int)p->calib_ctx);
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = p->tokenizer_path;
    shrink_model *m = NULL;
    int32_t *ids = NULL;
    sk_imatrix *im = NULL;
    icoll c;
    memset(&c, 0, sizeof c);
    shrink_status st = shrink_model_load(&m, in, &lp);
    if (st) return st;
    const sk_config *cfg = &m->cfg;
    size_t n_ids = 0;
    if ((st = sk_calib_encode(m, p->calib_path, p->calib_tokens, &ids, &n_ids))) goto out;
    int32_t C = p->calib_ctx > 0 ? p->calib_ctx : 512;
    if (C > cfg->max_seq_len) {
        st = sk_error(SHRINK_ERR_ARG, "--calib-ctx %d exceeds the model's context of %d "
                      "positions", (int)C, (int)cfg->max_seq_len);
        goto out;
    }
    r->text_tokens = (int64_t)n_ids;
    int64_t want = p->calib_tokens > 0 ? p->calib_tokens : (int64_t)n_ids;
    if (p->calib_tokens > (int64_t)n_ids) {
        st = sk_error(SHRINK_ERR_ARG, "%s: the calibration text gives %zu tokens but %lld were "
                      "asked (--calib-tokens)", p->calib_path, n_ids,
                      (long long)p->calib_tokens);
        goto out;
    }
    int64_t n_chunks = want / C;
    if (n_chunks < 1) {
        st = sk_error(SHRINK_ERR_ARG, "%s: the calibration text gives %zu tokens, fewer than "
                      "one chunk of %d (--calib-ctx)", p->calib_path, n_ids, (int)C);
        goto out;
    }
    /* ranks: this rank's chunks [lo, hi) */
    const shrink_train_comm *rc = p->comm && p->comm->n_ranks > 1 ? p->comm : NULL;
    int64_t lo = 0, hi = n_chunks;
    if (rc) {
        if (n_chunks < rc->n_ranks) {
            st = sk_error(SHRINK_ERR_ARG, "%s: %lld chunks of %d tokens cannot be shared by %d "
                          "ranks (at least one chunk each)", p->calib_path,
                          (long long)n_chunks, (int)C, (int)rc->n_ranks);
            goto out;
        }
        lo = n_chunks * rc->rank / rc->n_ranks;
        hi = n_chunks * (rc->rank + 1) / rc->n_ranks;
        if ((st = imatrix_agree(rc, in, p))) goto out;
        c.n_keep = rc->rank > 0 ? hi - lo : 1;
    }
    c.n_layers = cfg->n_layers;
    if (c.n_keep > 1 &&
        !(c.calls = sk_calloc((size_t)SK_LIN_HEAD * (size_t)c.n_layers, sizeof *c.calls))) {
        st = sk_error(SHRINK_ERR_NOMEM, "imatrix: out of memory");
        goto out;
    }
    for (int w = 0; w < SK_LIN_HEAD; w++) {
        char nb[96];
        if (!lin_name(cfg, 0, (sk_linear)w, nb, sizeof nb)) continue;
        c.cols[w] = lin_cols(cfg, (sk_linear)w);
        c.sum[w] = sk_calloc((size_t)(c.n_keep > 1 ? c.n_keep : 1) * (size_t)c.n_layers *
                             (size_t)c.cols[w], sizeof(double));
        if (!c.sum[w]) {
            st = sk_error(SHRINK_ERR_NOMEM, "imatrix: out of memory");
            goto out;
        }
    }
    /* every chunk from position 0 with its first token BOS */
    for (int64_t k = 0; k < n_chunks; k++)
        if (cfg->add_bos && cfg->bos_id >= 0) ids[k * C] = cfg->bos_id;
    /* one layer at a time over a group of chunks (src/model/layerwise.h): the sums of each
     * column still come chunk after chunk, as a whole-model forward per chunk adds them */
    const int64_t total = n_chunks * C;
    int64_t group = (int64_t)(sk_imatrix_stream_bytes / ((size_t)C * (size_t)cfg->dim * sizeof(float)));
    if (group < 1) group = 1;
    c.progress = p;
    c.total = (hi - lo) * C; /* this rank's share */
    for (int64_t k = lo; k < hi && !st; k += group) {
        const int64_t g = hi - k < group ? hi - k : group;
        c.base = (k - lo) * C;
        c.span = g * C;
        sk_layerwise lw = {.model = m, .ids = ids + k * C, .n = g * C, .n_ctx = C,
                           .n_batch = C, .observe = icoll_observe, .progress = im_layers,
                           .user = &c};
        st = sk_layerwise_run(&lw);
    }
    if (!st && c.overflow)
        st = sk_error(SHRINK_ERR_UNSUPPORTED, "imatrix: a rank saw more products than chunks; "
                      "its sums cannot be added in chunk order");
    if (st || (rc && (st = imatrix_reduce(rc, &c)))) goto out;
    /* the entries, layer by layer in the decoder's order */
    im = sk_calloc(1, sizeof *im);
    if (!im) {
        st = sk_error(SHRINK_ERR_NOMEM, "imatrix: out of memory");
        goto out;
    }
    const int32_t ncall = (int32_t)(n_chunks * ((C + UBATCH - 1) / UBATCH));
    for (int l = 0; l < c.n_layers && !st; l++)
        for (int w = 0; w < SK_LIN_HEAD && !st; w++) {
            char nb[96];
            const char *name = lin_name(cfg, l, (sk_linear)w, nb, sizeof nb);
            if (!name || !c.sum[w] || !c.seen[w]) continue;
            sk_imatrix_entry *e;
            if ((st = add_entry(im, name, strlen(name), c.cols[w], ncall, &e))) break;
            const double *s = c.sum[w] + (int64_t)l * c.cols[w];
            for (int64_t j = 0; j < c.cols[w]; j++) {
                e->v[j] = (float)(s[j] / (double)total);
                if (!isfinite(e->v[j])) {
                    st = sk_error(SHRINK_ERR_RANGE, "%s: the input of '%s' reached %g at column "
                                  "%" PRId64 ": the model's activations overflow", in, name,
                                  (double)e->v[j], j);
                    break;
                }
            }
        }
    if (st) goto out;
    im->chunks = ncall;
    im->dataset = sk_strdup(p->calib_path);
    if (!im->dataset) {
        st = sk_error(SHRINK_ERR_NOMEM, "imatrix: out of memory");
        goto out;
    }
    r->n_entries = im->n;
    r->n_chunks = n_chunks;
    r->n_tokens = total;
    r->seconds = shrink_time() - t0;
    *out = im;
    im = NULL;
out:
    for (int w = 0; w < SK_LIN_COUNT; w++) sk_free(c.sum[w]);
    sk_free(c.calls);
    sk_imatrix_free(im);
    shrink_free(ids);
    shrink_model_free(m);
    return st;
}

/* ==== writing ============================================================================ */

static void put_i32(uint8_t *p, int32_t v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    for (int k = 0; k < 4; k++) p[k] = (uint8_t)(u >> (8 * k));
}

/* The legacy file's bytes of m in a malloc'd buffer. */
static shrink_status legacy_bytes(const sk_imatrix *m, uint8_t **out, size_t *len) {
    const char *ds = m->dataset ? m->dataset : "";
    size_t n = 4 + 8 + strlen(ds);
    for (int64_t i = 0; i < m->n; i++) n += 12 + strlen(m->e[i].name) + 4 * (size_t)m->e[i].n;
    uint8_t *b = sk_malloc(n), *p = b;
    if (!b) return sk_error(SHRINK_ERR_NOMEM, "imatrix: out of memory");
    put_i32(p, (int32_t)m->n);
    p += 4;
    for (int64_t i = 0; i < m->n; i++) {
        const sk_imatrix_entry *e = &m->e[i];
        int32_t nl = (int32_t)strlen(e->name);
        put_i32(p, nl);
        memcpy(p + 4, e->name, (size_t)nl);
        p += 4 + nl;
        put_i32(p, e->ncall);
        put_i32(p + 4, (int32_t)e->n);
        p += 8;
        for (int64_t k = 0; k < e->n; k++, p += 4) {
            float v = (float)((double)e->v[k] * (double)(e->ncall > 0 ? e->ncall : 1));
            uint32_t u;
            memcpy(&u, &v, 4);
            put_i32(p, (int32_t)u);
        }
    }
    put_i32(p, m->chunks);
    put_i32(p + 4, (int32_t)strlen(ds));
    memcpy(p + 8, ds, strlen(ds));
    *out = b;
    *len = n;
    return SHRINK_OK;
}

/* *m replaced by what reading its legacy file gives (values stored as mean * calls in float):
 * a matrix used on the fly then equals the one written and read back, bit for bit. */
shrink_status sk_imatrix_roundtrip(sk_imatrix **m, const char *what) {
    uint8_t *b = NULL;
    size_t n = 0;
    shrink_status st = legacy_bytes(*m, &b, &n);
    if (st) return st;
    sk_imatrix *r = sk_calloc(1, sizeof *r);
    if (!r) st = sk_error(SHRINK_ERR_NOMEM, "imatrix: out of memory");
    else st = read_legacy(what, b, n, r);
    sk_free(b);
    if (st) {
        sk_imatrix_free(r);
        return st;
    }
    sk_imatrix_free(*m);
    *m = r;
    return SHRINK_OK;
}

static shrink_status write_legacy(const sk_imatrix *m, const char *path, const char *in,
                                  const char *calib) {
    const char *inputs[2] = {in, calib};
    uint8_t *b = NULL;
    size_t n = 0;
    shrink_status st = legacy_bytes(m, &b, &n);
    if (st) return st;
    sk_out o;
    if (!(st = sk_out_open(&o, path, inputs, 2)) && !(st = sk_out_write(&o, b, n)))
        st = sk_out_commit(&o);
    sk_free(b);
    return st;
}

shrink_status shrink_imatrix(const char *in, const char *out, const shrink_imatrix_params *p,
                             shrink_imatrix_result *r) {
    shrink_imatrix_params def = shrink_imatrix_params_default();
    if (!p) p = &def;
    shrink_imatrix_result tmp;
    if (!r) r = &tmp;
    if (!in || !*in || !out || !*out)
        return sk_error(SHRINK_ERR_ARG, "imatrix: the input model and the output file are required");
    if (sk_same_file(in, out))
        return sk_error(SHRINK_ERR_ARG, "%s: is the input; refusing to overwrite it", out);
    if (p->calib_path && sk_same_file(p->calib_path, out))
        return sk_error(SHRINK_ERR_ARG, "%s: is the calibration text; refusing to overwrite it",
                        out);
    sk_imatrix *m = NULL;
    shrink_status st = sk_imatrix_compute(in, p, &m, r);
    if (st) return st;
    double t = r->seconds;
    if (!p->comm || p->comm->rank == 0) st = write_legacy(m, out, in, p->calib_path);
    sk_imatrix_free(m);
    r->seconds = t;
    return st;
}
