/*
 * tcache.c - the teacher cache of `shrink distill --teacher-cache DIR` (layout: optim.h): the
 * teacher's top K ids and logits for every position of every aligned window of the training
 * data, computed once (one teacher pass over the data, the same decoder calls as the training
 * loop's teacher pass, so the rows are bit for bit what that pass would give) and reused by
 * every later epoch and run with the same teacher, data, context and K. A cache file whose
 * header, size or checksum does not hold is an error naming the file: it is never trusted nor
 * silently rebuilt.
 */
#include "optim.h"

#include "../core/out.h"
#include "../model/model.h"

#include <errno.h>
#include <sys/stat.h>

#define TC_MAGIC   "SKTCACHE"
#define TC_VERSION 1
#define TC_HEADER  64

/* FNV-1a 64 over 8-byte words (the tail byte by byte): a checksum, not a cryptographic hash. */
typedef struct tc_hash {
    uint64_t h;
} tc_hash;

static void th_init(tc_hash *x) { x->h = SK_HASH64_INIT; }

static void th_add(tc_hash *x, const void *p, size_t n) { x->h = sk_hash64(x->h, p, n); }

/* The teacher's identity: every tensor's name, dtype, shape and bytes. */
static uint64_t teacher_hash(const struct shrink_model *m) {
    tc_hash x;
    th_init(&x);
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const sk_tensor *t = &m->tensors[i];
        th_add(&x, t->name, strlen(t->name));
        const int64_t meta[6] = {t->dtype, t->n_dims, t->shape[0], t->shape[1], t->shape[2],
                                 t->shape[3]};
        th_add(&x, meta, sizeof meta);
        if (t->data) th_add(&x, t->data, (size_t)t->bytes);
    }
    return x.h;
}

static uint64_t data_hash(const sk_tokens *d) {
    tc_hash x;
    th_init(&x);
    int32_t buf[1024];
    for (int64_t i = 0; i < d->n;) {
        int n = 0;
        for (; n < 1024 && i < d->n; n++, i++) buf[n] = sk_tokens_at(d, i);
        th_add(&x, buf, (size_t)n * sizeof *buf);
    }
    th_add(&x, &d->n, sizeof d->n);
    return x.h;
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static void make_header(uint8_t *h, int32_t K, int32_t T, int32_t V, int64_t W, uint64_t th,
                        uint64_t dh, int64_t n) {
    memset(h, 0, TC_HEADER);
    memcpy(h, TC_MAGIC, 8);
    put32(h + 8, TC_VERSION);
    put32(h + 12, (uint32_t)K);
    put32(h + 16, (uint32_t)T);
    put32(h + 20, (uint32_t)V);
    put64(h + 24, (uint64_t)W);
    put64(h + 32, th);
    put64(h + 40, dh);
    put64(h + 48, (uint64_t)n);
}

/* One teacher pass over the W aligned windows, written to path. */
static shrink_status build(const char *path, const struct shrink_model *teacher,
                           const sk_tokens *data, int32_t T, int32_t K, int64_t W, uint64_t th,
                           uint64_t dh, void (*progress)(void *, int64_t, int64_t), void *user) {
    const int32_t V = teacher->cfg.vocab_size;
    shrink_context *ctx = NULL;
    int32_t *tok = sk_malloc((size_t)T * sizeof *tok);
    float *logits = sk_malloc((size_t)T * (size_t)V * sizeof *logits);
    uint8_t *rows = sk_malloc((size_t)T * (size_t)K * 8u);
    shrink_status st = SHRINK_OK;
    sk_out o = {.fd = -1};
    if (!tok || !logits || !rows) {
        st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory for the teacher cache", path);
        goto out;
    }
    /* the training loop's teacher context: T positions, batch T */
    if ((st = shrink_context_create(&ctx, teacher, T, T))) goto out;
    if ((st = sk_out_open(&o, path, NULL, 0))) goto out;
    uint8_t h[TC_HEADER];
    make_header(h, K, T, V, W, th, dh, data->n);
    tc_hash x;
    th_init(&x);
    th_add(&x, h, 56);
    if ((st = sk_out_write(&o, h, sizeof h))) goto out;
    for (int64_t w = 0; w < W; w++) {
        for (int32_t t = 0; t < T; t++) tok[t] = sk_tokens_at(data, w * T + t);
        if ((st = shrink_context_eval(ctx, tok, T, 0, logits, T))) goto out;
        #pragma omp parallel for schedule(static)
        for (int32_t t = 0; t < T; t++) {
            uint8_t *r = rows + (size_t)t * K * 8u;
            int32_t ids[K];
            float zk[K];
            sk_distill_top_k(logits + (size_t)t * V, V, K, ids, zk);
            memcpy(r, ids, (size_t)K * 4u);
            memcpy(r + (size_t)K * 4u, zk, (size_t)K * 4u);
        }
        th_add(&x, rows, (size_t)T * K * 8u);
        if ((st = sk_out_write(&o, rows, (size_t)T * K * 8u))) goto out;
        if (progress) progress(user, w + 1, W);
    }
    put64(h + 56, x.h);
    if ((st = sk_out_pwrite(&o, h + 56, 8, 56))) goto out;
    st = sk_out_commit(&o);
out:
    if (st) sk_out_abort(&o);
    shrink_context_free(ctx);
    sk_free(tok);
    sk_free(logits);
    sk_free(rows);
    return st;
}

/* Maps and checks the cache at path against what this run expects. */
static shrink_status check(sk_tcache *c, const char *path, const uint8_t *want_h) {
    shrink_status st = sk_map_file(path, &c->map);
    if (st) return st;
    const uint8_t *d = c->map.data;
    const size_t n = c->map.size;
    if (n < TC_HEADER || memcmp(d, TC_MAGIC, 8))
        return sk_error(SHRINK_ERR_FORMAT, "%s: not a teacher cache (no %s header): remove it "
                        "or give another --teacher-cache folder", path, TC_MAGIC);
    uint32_t version;
    memcpy(&version, d + 8, 4);
    if (version != TC_VERSION)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: teacher cache version %u (this shrink "
                        "reads %d)", path, version, TC_VERSION);
    if (memcmp(d + 12, want_h + 12, 56 - 12))
        return sk_error(SHRINK_ERR_FORMAT, "%s: the header does not match its name (K, "
                        "context, vocabulary, windows, teacher or data hash differ): a corrupt "
                        "or renamed cache; remove it", path);
    const uint64_t bytes = (uint64_t)c->n_windows * (uint64_t)c->T * (uint64_t)c->K * 8u;
    if (n - TC_HEADER != bytes)
        return sk_error(SHRINK_ERR_FORMAT, "%s: %zu bytes of rows, the header says %llu "
                        "(truncated or corrupt); remove it to rebuild", path, n - TC_HEADER,
                        (unsigned long long)bytes);
    tc_hash x;
    th_init(&x);
    th_add(&x, d, 56);
    th_add(&x, d + TC_HEADER, (size_t)bytes);
    uint64_t sum;
    memcpy(&sum, d + 56, 8);
    if (sum != x.h)
        return sk_error(SHRINK_ERR_FORMAT, "%s: checksum mismatch (the file is corrupt); "
                        "remove it to rebuild", path);
    for (int64_t i = 0; i < c->n_windows * c->T * c->K; i++) { /* ids in the vocabulary */
        const uint8_t *r = d + TC_HEADER + (size_t)(i / c->K) * c->K * 8u;
        int32_t id;
        memcpy(&id, r + (size_t)(i % c->K) * 4u, 4);
        if (id < 0 || id >= c->V)
            return sk_error(SHRINK_ERR_FORMAT, "%s: token id %d outside the vocabulary", path,
                            id);
    }
    c->rows = d + TC_HEADER;
    return SHRINK_OK;
}

shrink_status sk_tcache_open(sk_tcache *c, const char *dir, const struct shrink_model *teacher,
                             const sk_tokens *data, int32_t T, int32_t K,
                             void (*progress)(void *, int64_t, int64_t), void *user) {
    memset(c, 0, sizeof *c);
    const int32_t V = teacher->cfg.vocab_size;
    if (K < 1 || K >= V)
        return sk_error(SHRINK_ERR_ARG, "--teacher-cache stores the teacher's top K tokens: "
                        "give --top-k K (below the vocabulary of %d) or --mode weak", V);
    if (T < 1 || data->n < (int64_t)T + 1)
        return sk_error(SHRINK_ERR_ARG, "teacher cache: %lld tokens, a window of context %d "
                        "needs %d", (long long)data->n, T, T + 1);
    c->K = K;
    c->T = T;
    c->V = V;
    c->n_windows = (data->n - 1) / T;
    const uint64_t th = teacher_hash(teacher), dh = data_hash(data);
    if (!sk_dir_exists(dir) && mkdir(dir, 0777) != 0 && errno != EEXIST)
        return sk_error(SHRINK_ERR_IO, "%s: cannot create the teacher cache folder: %s", dir,
                        strerror(errno));
    char name[128];
    snprintf(name, sizeof name, "teacher-%016llx-data-%016llx-ctx%d-k%d.tcache",
             (unsigned long long)th, (unsigned long long)dh, T, K);
    if (!(c->path = sk_path_join(dir, name)))
        return sk_error(SHRINK_ERR_NOMEM, "teacher cache: out of memory");
    uint8_t want[TC_HEADER];
    make_header(want, K, T, V, c->n_windows, th, dh, data->n);
    shrink_status st;
    if (!sk_file_exists(c->path)) {
        if ((st = build(c->path, teacher, data, T, K, c->n_windows, th, dh, progress, user)))
            goto fail;
        c->built = true;
    }
    if ((st = check(c, c->path, want))) goto fail;
    return SHRINK_OK;
fail:
    sk_tcache_close(c);
    return st;
}

void sk_tcache_close(sk_tcache *c) {
    if (!c) return;
    sk_unmap(&c->map);
    sk_free(c->path);
    memset(c, 0, sizeof *c);
}
