/*
 * compare_merge.c - shrink_compare_merge: joins the shards of one comparison (`shrink compare
 * --shard i/N --json` on N machines or Slurm array tasks; docs/scale.md) into what the
 * unsharded run reports. Shard i scored the windows i W / N .. (i + 1) W / N - 1, so its
 * tokens follow shard i - 1's: the per-token KL, NLL and same-top-1 of every model, joined in
 * shard order, are the unsharded run's, and shrink_compare_stats makes the same sums over them
 * (the JSON numbers round-trip exactly), so the statistics equal the single run's bit for bit.
 */
#include "ppl.h"

#include "../core/json.h"

#include <math.h>
#include <string.h>

typedef struct cshard {
    const char    *path;
    sk_json       *j;
    const char    *base, *text, *method;
    int64_t        ctx, stride, n_tokens, windows_total, windows, shard, shards, scored;
    const sk_json *models;
} cshard;

static shrink_status cshard_read(const char *path, cshard *f) {
    memset(f, 0, sizeof *f);
    f->path = path;
    shrink_status st = sk_json_read_file(path, (size_t)1 << 30, &f->j);
    if (st) return st;
    f->base   = sk_json_get_str(f->j, "base");
    f->text   = sk_json_get_str(f->j, "text");
    f->method = sk_json_get_str(f->j, "method");
    f->models = sk_json_get(f->j, "models");
    if (!f->base || !f->text || !f->method || !f->models || f->models->type != SK_JSON_ARRAY ||
        f->models->len < 1 || f->models->len > (1 << 16) ||
        !sk_json_get_int(f->j, "ctx", &f->ctx) || !sk_json_get_int(f->j, "stride", &f->stride) ||
        !sk_json_get_int(f->j, "n_tokens", &f->n_tokens) ||
        !sk_json_get_int(f->j, "windows_total", &f->windows_total) ||
        !sk_json_get_int(f->j, "windows", &f->windows) ||
        !sk_json_get_int(f->j, "shard", &f->shard) ||
        !sk_json_get_int(f->j, "shards", &f->shards) ||
        !sk_json_get_int(f->j, "tokens_scored", &f->scored))
        return sk_error(SHRINK_ERR_FORMAT, "%s: not the output of shrink compare --shard I/N "
                        "--json (base, text, method, ctx, stride, n_tokens, windows_total, "
                        "windows, shard, shards, tokens_scored and models expected)", path);
    if (f->shards < 1 || f->shards > (int64_t)1 << 20 || f->shard < 0 || f->shard >= f->shards ||
        f->scored < 0 || f->windows < 0 || f->windows > f->windows_total)
        return sk_error(SHRINK_ERR_FORMAT, "%s: shard %lld of %lld (%lld windows of %lld) is not "
                        "a share of a comparison", path, (long long)f->shard,
                        (long long)f->shards, (long long)f->windows,
                        (long long)f->windows_total);
    for (size_t i = 0; i < f->models->len; i++) {
        const sk_json *m = &f->models->items[i];
        static const char *const arr[3] = {"kl", "nll", "same"};
        if (!sk_json_get_str(m, "path") || !sk_json_get_str(m, "name"))
            return sk_error(SHRINK_ERR_FORMAT, "%s: model %zu has no path or name", path, i);
        for (int a = 0; a < 3; a++) {
            const sk_json *v = sk_json_get(m, arr[a]);
            if (!v || v->type != SK_JSON_ARRAY || (int64_t)v->len != f->scored)
                return sk_error(SHRINK_ERR_FORMAT, "%s: model %zu: '%s' is not an array of "
                                "the %lld tokens scored", path, i, arr[a], (long long)f->scored);
            for (size_t t = 0; t < v->len; t++)
                if (v->items[t].type != SK_JSON_NUMBER || !isfinite(v->items[t].number))
                    return sk_error(SHRINK_ERR_FORMAT, "%s: model %zu: %s[%zu] is not a finite "
                                    "number", path, i, arr[a], t);
        }
    }
    return SHRINK_OK;
}

/* "the same comparison": what each shard names must equal the first's */
static shrink_status cshard_match(const cshard *a, const cshard *b) {
    const char *what = NULL;
    if (strcmp(a->base, b->base) != 0) what = "base";
    else if (strcmp(a->text, b->text) != 0) what = "text";
    else if (strcmp(a->method, b->method) != 0) what = "method";
    else if (a->ctx != b->ctx || a->stride != b->stride) what = "ctx or stride";
    else if (a->n_tokens != b->n_tokens) what = "n_tokens";
    else if (a->windows_total != b->windows_total) what = "windows_total";
    else if (a->shards != b->shards) what = "number of shards";
    else if (a->models->len != b->models->len) what = "number of models";
    for (size_t i = 0; !what && i < a->models->len; i++)
        if (strcmp(sk_json_get_str(&a->models->items[i], "path"),
                   sk_json_get_str(&b->models->items[i], "path")) != 0)
            what = "list of models";
    if (what)
        return sk_error(SHRINK_ERR_ARG, "%s and %s are not shards of one comparison: the %s "
                        "differs", a->path, b->path, what);
    return SHRINK_OK;
}

void shrink_compare_merged_free(shrink_compare_merged *m) {
    if (!m) return;
    for (int32_t i = 0; m->models && i < m->n_models; i++) {
        sk_free(m->models[i].name);
        sk_free(m->models[i].path);
        sk_free(m->models[i].scheme);
    }
    sk_free(m->models);
    sk_free(m->base);
    sk_free(m->text);
    sk_free(m->method);
    memset(m, 0, sizeof *m);
}

static char *dup_or_empty(const char *s) { return sk_strdup(s ? s : ""); }

shrink_status shrink_compare_merge(const char *const *paths, int32_t n,
                                   shrink_compare_merged *out) {
    if (!out) return sk_error(SHRINK_ERR_ARG, "compare merge: no result buffer given");
    memset(out, 0, sizeof *out);
    if (!paths || n < 1) return sk_error(SHRINK_ERR_ARG, "no shard files given");
    cshard  *f     = sk_calloc((size_t)n, sizeof *f);
    cshard **order = NULL;
    double  *pt    = NULL;
    shrink_status st = f ? SHRINK_OK : sk_error(SHRINK_ERR_NOMEM, "merging results: out of memory");
    for (int32_t i = 0; !st && i < n; i++) {
        if ((st = cshard_read(paths[i], &f[i]))) break;
        if (i > 0) st = cshard_match(&f[0], &f[i]);
    }
    if (st) goto out;
    order = sk_calloc((size_t)f[0].shards, sizeof *order);
    if (!order) {
        st = sk_error(SHRINK_ERR_NOMEM, "merging results: out of memory");
        goto out;
    }
    for (int32_t i = 0; i < n; i++) {
        if (order[f[i].shard]) {
            st = sk_error(SHRINK_ERR_ARG, "shard %lld of %lld is given twice (%s and %s)",
                          (long long)f[i].shard, (long long)f[i].shards,
                          order[f[i].shard]->path, f[i].path);
            goto out;
        }
        order[f[i].shard] = &f[i];
    }
    int64_t scored = 0, windows = 0;
    for (int64_t s = 0; s < f[0].shards; s++) {
        if (!order[s]) {
            st = sk_error(SHRINK_ERR_ARG, "shard %lld of %lld is missing", (long long)s,
                          (long long)f[0].shards);
            goto out;
        }
        scored += order[s]->scored;
        windows += order[s]->windows;
    }
    if (windows != f[0].windows_total) {
        st = sk_error(SHRINK_ERR_FORMAT, "the shards hold %lld windows, their comparison has "
                      "%lld", (long long)windows, (long long)f[0].windows_total);
        goto out;
    }
    const int32_t nm = (int32_t)f[0].models->len;
    const size_t  S  = (size_t)scored;
    pt = sk_malloc((size_t)(3 * nm) * (S ? S : 1) * sizeof(double));
    out->models = sk_calloc((size_t)nm, sizeof *out->models);
    if (!pt || !out->models) {
        st = sk_error(SHRINK_ERR_NOMEM, "merging results: out of memory (%lld tokens)",
                      (long long)scored);
        goto out;
    }
    out->n_models = nm;
    static const char *const arr[3] = {"kl", "nll", "same"};
    size_t at = 0;   /* tokens joined so far */
    for (int64_t s = 0; s < f[0].shards; s++) {
        const cshard *c = order[s];
        for (int32_t i = 0; i < nm; i++) {
            const sk_json *m = &c->models->items[i];
            for (int a = 0; a < 3; a++) {
                const sk_json *v = sk_json_get(m, arr[a]);
                double *d = pt + (size_t)(3 * i + a) * S + at;
                for (size_t t = 0; t < v->len; t++) d[t] = v->items[t].number;
            }
            double sec;
            if (sk_json_get_num(m, "eval_seconds", &sec) && isfinite(sec))
                out->models[i].r.seconds += sec;
        }
        at += (size_t)c->scored;
    }
    shrink_compare_result *r = sk_calloc((size_t)nm, sizeof *r);
    if (!r) {
        st = sk_error(SHRINK_ERR_NOMEM, "merging results: out of memory");
        goto out;
    }
    st = shrink_compare_stats(pt, nm, scored, r);
    for (int32_t i = 0; !st && i < nm; i++) {
        shrink_compare_merged_model *mm = &out->models[i];
        const sk_json *m = &f[0].models->items[i];
        double  sec = mm->r.seconds, bpw = 0.0;
        int64_t np = 0, fb = 0;
        mm->r           = r[i];
        mm->r.seconds   = sec;
        mm->r.windows   = windows;
        mm->r.windows_total = windows;
        mm->r.n_tokens  = f[0].n_tokens;
        sk_json_get_num(m, "bits_per_weight", &bpw);
        sk_json_get_int(m, "n_params", &np);
        sk_json_get_int(m, "file_bytes", &fb);
        mm->bits_per_weight = bpw;
        mm->n_params        = np;
        mm->file_bytes      = (uint64_t)fb;
        mm->name   = dup_or_empty(sk_json_get_str(m, "name"));
        mm->path   = dup_or_empty(sk_json_get_str(m, "path"));
        mm->scheme = dup_or_empty(sk_json_get_str(m, "scheme"));
        if (!mm->name || !mm->path || !mm->scheme)
            st = sk_error(SHRINK_ERR_NOMEM, "merging results: out of memory");
    }
    sk_free(r);
    if (st) goto out;
    out->ctx    = (int32_t)f[0].ctx;
    out->stride = (int32_t)f[0].stride;
    out->base   = sk_strdup(f[0].base);
    out->text   = sk_strdup(f[0].text);
    out->method = sk_strdup(f[0].method);
    if (!out->base || !out->text || !out->method)
        st = sk_error(SHRINK_ERR_NOMEM, "merging results: out of memory");
out:
    for (int32_t i = 0; f && i < n; i++) sk_json_free(f[i].j);
    sk_free(f);
    sk_free(order);
    sk_free(pt);
    if (st) shrink_compare_merged_free(out);
    return st;
}
