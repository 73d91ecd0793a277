/*
 * checkpoint.c - training checkpoints: everything a run needs to continue bit for bit, in one
 * file written atomically (sk_out_*: temporary beside it, fsync, rename), so a process killed
 * at any moment leaves either the previous checkpoint or the new one, never a mix.
 *
 * Layout (little-endian; docs/training.md):
 *    0  magic "SKCKPT\0\0"          8  version u32, n_params u32
 *   16  step u64                    24  optimizer t u64
 *   32  optimizer kind u32, state arrays u32 (0: none, 1: m, 2: m and v)
 *   40  loader rng u64              48  loader pos u64
 *   56  loss f64                    64  validation loss f64 (NaN: none)
 *   72  config length u32, config text (key=value lines)
 *   then per parameter not frozen (n_params counts them: a LoRA checkpoint holds the adapter
 *        only, the frozen base is the model file): name length u32, name, element count u64,
 *        weights f32[n], m f32[n] (if state >= 1), v f32[n] (if state == 2)
 *   last: FNV-1a 64 of every byte before it (u64)
 * The floats are the in-memory fp32 values (the host is little-endian, checked at compile
 * time), so a reload restores them exactly.
 */
#include "optim.h"

#include <math.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint.c writes the host's floats as little-endian"
#endif

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME  0x100000001b3ull

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * FNV_PRIME;
    return h;
}

/* ==== writing ============================================================================= */

typedef struct ck_writer {
    sk_out   o;
    uint64_t hash;
} ck_writer;

static shrink_status ck_put(ck_writer *w, const void *p, size_t n) {
    w->hash = fnv1a(w->hash, p, n);
    return sk_out_write(&w->o, p, n);
}

static shrink_status ck_u32(ck_writer *w, uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
    return ck_put(w, b, 4);
}

static shrink_status ck_u64(ck_writer *w, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    return ck_put(w, b, 8);
}

static shrink_status ck_f64(ck_writer *w, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    return ck_u64(w, u);
}

/* Parameters a checkpoint holds: those not frozen. */
static int64_t stored_params(const sk_train_model *tm) {
    int64_t n = 0;
    for (int64_t i = 0; i < tm->n_params; i++) n += !tm->params[i].frozen;
    return n;
}

static int state_arrays(const sk_optim *o) {
    return o->v ? 2 : o->m ? 1 : 0;
}

static shrink_status write_param(ck_writer *w, const sk_trainer *tr, int64_t i) {
    const sk_train_param *p = &tr->tm->params[i];
    const sk_optim       *o = tr->opt;
    size_t len = strlen(p->t.name);
    shrink_status st;
    if ((st = ck_u32(w, (uint32_t)len)) || (st = ck_put(w, p->t.name, len)) ||
        (st = ck_u64(w, (uint64_t)p->n)) || (st = ck_put(w, p->w, (size_t)p->n * 4)))
        return st;
    if (o->m && (st = ck_put(w, o->m + o->off[i], (size_t)p->n * 4))) return st;
    if (o->v && (st = ck_put(w, o->v + o->off[i], (size_t)p->n * 4))) return st;
    return SHRINK_OK;
}

shrink_status sk_ckpt_save(const sk_trainer *tr, const char *path) {
    ck_writer w = {.hash = FNV_OFFSET};
    shrink_status st = sk_out_open(&w.o, path, NULL, 0);
    if (st) return st;
    size_t clen = strlen(tr->config);
    if ((st = ck_put(&w, SK_CKPT_MAGIC, 8)) || (st = ck_u32(&w, SK_CKPT_VERSION)) ||
        (st = ck_u32(&w, (uint32_t)stored_params(tr->tm))) ||
        (st = ck_u64(&w, (uint64_t)tr->step)) ||
        (st = ck_u64(&w, (uint64_t)tr->opt->t)) || (st = ck_u32(&w, (uint32_t)tr->opt->p.kind)) ||
        (st = ck_u32(&w, (uint32_t)state_arrays(tr->opt))) || (st = ck_u64(&w, tr->train.rng)) ||
        (st = ck_u64(&w, (uint64_t)tr->train.pos)) || (st = ck_f64(&w, tr->loss)) ||
        (st = ck_f64(&w, tr->val_loss)) || (st = ck_u32(&w, (uint32_t)clen)) ||
        (st = ck_put(&w, tr->config, clen)))
        return st;
    for (int64_t i = 0; i < tr->tm->n_params; i++)
        if (!tr->tm->params[i].frozen && (st = write_param(&w, tr, i))) return st;
    uint64_t h = w.hash;
    if ((st = ck_u64(&w, h))) return st;
    return sk_out_commit(&w.o);
}

/* ==== reading ============================================================================= */

typedef struct ck_reader {
    const uint8_t *p;
    size_t         left;
    const char    *path;
} ck_reader;

static shrink_status ck_take(ck_reader *r, size_t n, const uint8_t **out, const char *what) {
    if (n > r->left)
        return sk_error(SHRINK_ERR_FORMAT, "%s: truncated checkpoint (%s needs %zu bytes, %zu "
                        "left)", r->path, what, n, r->left);
    *out = r->p;
    r->p += n;
    r->left -= n;
    return SHRINK_OK;
}

static shrink_status read_param(ck_reader *r, sk_trainer *tr, int64_t i, int arrays) {
    sk_train_param *p = &tr->tm->params[i];
    const uint8_t  *b = NULL;
    shrink_status   st;
    if ((st = ck_take(r, 4, &b, "a name length"))) return st;
    uint32_t len = sk_rd_u32(b);
    if ((st = ck_take(r, len, &b, "a name"))) return st;
    if (len != strlen(p->t.name) || memcmp(b, p->t.name, len))
        return sk_error(SHRINK_ERR_ARG, "%s: parameter %" PRId64 " is '%.*s', the model's is "
                        "'%s'", r->path, i, (int)(len < 200 ? len : 200), (const char *)b,
                        p->t.name);
    if ((st = ck_take(r, 8, &b, "an element count"))) return st;
    if (sk_rd_u64(b) != (uint64_t)p->n)
        return sk_error(SHRINK_ERR_ARG, "%s: '%s' has %" PRIu64 " elements, the model's %" PRId64,
                        r->path, p->t.name, sk_rd_u64(b), p->n);
    size_t bytes = (size_t)p->n * 4;
    if ((st = ck_take(r, bytes, &b, p->t.name))) return st;
    memcpy(p->w, b, bytes);
    if (arrays >= 1) {
        if ((st = ck_take(r, bytes, &b, p->t.name))) return st;
        memcpy(tr->opt->m + tr->opt->off[i], b, bytes);
    }
    if (arrays == 2) {
        if ((st = ck_take(r, bytes, &b, p->t.name))) return st;
        memcpy(tr->opt->v + tr->opt->off[i], b, bytes);
    }
    return SHRINK_OK;
}

/* The value of line "key=..." in text[0..n) (not NUL-terminated), or NULL; *len its length. */
static const char *config_value(const char *text, size_t n, const char *key, size_t klen,
                                size_t *len) {
    for (size_t i = 0; i < n;) {
        const char *nl  = memchr(text + i, '\n', n - i);
        size_t      end = nl ? (size_t)(nl - text) : n;
        if (end - i > klen && !memcmp(text + i, key, klen) && text[i + klen] == '=') {
            *len = end - i - klen - 1;
            return text + i + klen + 1;
        }
        i = end + 1;
    }
    return NULL;
}

/* "lr 0.001 (checkpoint 0.0003), steps 200 (checkpoint 100)": the options of this run (run,
 * NUL-terminated "key=value" lines) whose value differs from the checkpoint's (ck[0..ck_n)),
 * into out. */
static void config_diff(const char *ck, size_t ck_n, const char *run, char *out, size_t cap) {
    size_t used = 0;
    out[0] = '\0';
    for (const char *p = run; *p;) {
        const char *nl = strchr(p, '\n'), *eq = strchr(p, '=');
        size_t      ln = nl ? (size_t)(nl - p) : strlen(p);
        if (eq && eq < p + ln) {
            size_t      klen = (size_t)(eq - p), vlen = ln - klen - 1, cl = 0;
            const char *cv   = config_value(ck, ck_n, p, klen, &cl);
            if (!cv || cl != vlen || memcmp(cv, eq + 1, vlen)) {
                int w = snprintf(out + used, cap - used, "%s%.*s %.*s (checkpoint %.*s)",
                                 used ? ", " : "", (int)klen, p, (int)vlen, eq + 1,
                                 cv ? (int)cl : 4, cv ? cv : "none");
                if (w < 0 || (size_t)w >= cap - used) break;
                used += (size_t)w;
            }
        }
        p += ln + (nl ? 1 : 0);
    }
}

/* Checks magic, version, checksum and the header against tr; fills r past the config. */
static shrink_status read_header(ck_reader *r, sk_trainer *tr, const uint8_t *d, size_t len,
                                 int *arrays) {
    if (len < 84 || memcmp(d, SK_CKPT_MAGIC, 8))
        return sk_error(SHRINK_ERR_FORMAT, "%s: not a shrink checkpoint", r->path);
    if (sk_rd_u32(d + 8) != SK_CKPT_VERSION)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: checkpoint version %" PRIu32 " (this "
                        "shrink reads %d)", r->path, sk_rd_u32(d + 8), SK_CKPT_VERSION);
    if (fnv1a(FNV_OFFSET, d, len - 8) != sk_rd_u64(d + len - 8))
        return sk_error(SHRINK_ERR_FORMAT, "%s: checkpoint checksum mismatch (corrupt file)",
                        r->path);
    if (sk_rd_u32(d + 12) != (uint64_t)stored_params(tr->tm))
        return sk_error(SHRINK_ERR_ARG, "%s: %" PRIu32 " trained parameters, the run has %" PRId64,
                        r->path, sk_rd_u32(d + 12), stored_params(tr->tm));
    *arrays = (int)sk_rd_u32(d + 36);
    if (sk_rd_u32(d + 32) != (uint32_t)tr->opt->p.kind || *arrays != state_arrays(tr->opt))
        return sk_error(SHRINK_ERR_ARG, "%s: the checkpoint's optimizer differs from this run's",
                        r->path);
    uint32_t clen = sk_rd_u32(d + 72);
    r->p    = d + 76;
    r->left = len - 8 - 76;
    const uint8_t *c = NULL;
    shrink_status st = ck_take(r, clen, &c, "the config");
    if (st) return st;
    if (clen != strlen(tr->config) || memcmp(c, tr->config, clen)) {
        char diff[1024];
        config_diff((const char *)c, clen, tr->config, diff, sizeof diff);
        return sk_error(SHRINK_ERR_ARG, "%s: the checkpoint was written by a run with other "
                        "options: %s; resume with the checkpoint's values", r->path,
                        diff[0] ? diff : "(a setting not shown)");
    }
    return SHRINK_OK;
}

/* A checkpoint whose checksum is right may still be forged or written by a broken run: the
 * weights and moments must be finite and the second moments >= 0 (AdamW takes their root). */
static shrink_status check_values(const sk_trainer *tr, const char *path) {
    const sk_optim *o = tr->opt;
    for (int64_t i = 0; i < tr->tm->n_params; i++) {
        const sk_train_param *p = &tr->tm->params[i];
        if (p->frozen) continue;
        for (int64_t k = 0; k < p->n; k++) {
            float w = p->w[k], m = o->m ? o->m[o->off[i] + k] : 0.0f,
                  v = o->v ? o->v[o->off[i] + k] : 0.0f;
            if (!isfinite(w) || !isfinite(m) || !isfinite(v) || v < 0.0f)
                return sk_error(SHRINK_ERR_FORMAT, "%s: '%s' element %" PRId64 " holds %s "
                                "(weight %g, moments %g, %g): the checkpoint is broken", path,
                                p->t.name, k, v < 0.0f ? "a negative second moment"
                                                       : "NaN or an infinity",
                                (double)w, (double)m, (double)v);
        }
    }
    return SHRINK_OK;
}

shrink_status sk_ckpt_load(sk_trainer *tr, const char *path) {
    sk_map m;
    shrink_status st = sk_map_file(path, &m);
    if (st) return st;
    st = sk_ckpt_load_mem(tr, m.data, m.size, path);
    sk_unmap(&m);
    return st;
}

shrink_status sk_ckpt_load_mem(sk_trainer *tr, const uint8_t *data, size_t size,
                               const char *path) {
    shrink_status st;
    ck_reader r = {.path = path};
    int arrays = 0;
    if ((st = read_header(&r, tr, data, size, &arrays))) return st;
    for (int64_t i = 0; i < tr->tm->n_params && !st; i++)
        if (!tr->tm->params[i].frozen) st = read_param(&r, tr, i, arrays);
    if (!st && r.left != 0)
        st = sk_error(SHRINK_ERR_FORMAT, "%s: %zu bytes after the last parameter", path, r.left);
    if (!st) st = check_values(tr, path);
    if (st) return st;
    const uint8_t *d = data;
    double loss, val;
    uint64_t u = sk_rd_u64(d + 56);
    memcpy(&loss, &u, 8);
    u = sk_rd_u64(d + 64);
    memcpy(&val, &u, 8);
    tr->step      = (int64_t)sk_rd_u64(d + 16);
    tr->opt->t    = (int64_t)sk_rd_u64(d + 24);
    tr->train.rng = sk_rd_u64(d + 40);
    tr->train.pos = (int64_t)sk_rd_u64(d + 48);
    tr->loss      = loss;
    tr->val_loss  = val;
    if (tr->step < 0 || tr->step > tr->o.steps || tr->train.pos < 0 ||
        tr->train.pos > tr->train.tok->n || tr->opt->t < 0 || tr->opt->t > tr->step)
        st = sk_error(SHRINK_ERR_FORMAT, "%s: step %" PRId64 " / optimizer step %" PRId64
                      " / data position %" PRId64 " out of range", path, tr->step, tr->opt->t,
                      tr->train.pos);
    return st;
}
