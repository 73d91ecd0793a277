/*
 * sensitivity_merge.c - shrink_sensitivity_merge: joins the shards of one sensitivity sweep
 * (`shrink sensitivity --json --shard i/N` on N machines or Slurm array tasks; docs/scale.md)
 * into the result the unsharded run gives. Each shard's JSON names the model, text, unit,
 * tokens and block it measured and which share it holds; the shards must agree on all of them
 * and hold every share once. Each unit's KL and perplexity are a pure function of the model,
 * the text and the unit, and the JSON numbers round-trip exactly, so the joined table (ranked
 * again over all units) equals the single run's.
 */
#include "prune.h"

#include "../core/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct shard_file {
    const char *path;
    sk_json    *j;
    const char *input, *calib, *unit;
    int64_t     tokens, block, shard, shards, total;
    double      base_ppl;
    const sk_json *units;
} shard_file;

static shrink_status shard_read(const char *path, shard_file *f) {
    memset(f, 0, sizeof *f);
    f->path = path;
    shrink_status st = sk_json_read_file(path, (size_t)1 << 28, &f->j);
    if (st) return st;
    f->input = sk_json_get_str(f->j, "input");
    f->calib = sk_json_get_str(f->j, "calib");
    f->unit = sk_json_get_str(f->j, "unit");
    f->units = sk_json_get(f->j, "units");
    if (!f->input || !f->calib || !f->unit || !f->units || f->units->type != SK_JSON_ARRAY ||
        !sk_json_get_int(f->j, "calib_tokens", &f->tokens) ||
        !sk_json_get_num(f->j, "base_ppl", &f->base_ppl))
        return sk_error(SHRINK_ERR_FORMAT, "%s: not the --json output of shrink sensitivity "
                        "(input, calib, unit, calib_tokens, base_ppl and units expected)", path);
    if (!sk_json_get_int(f->j, "block", &f->block)) f->block = 0;
    if (!sk_json_get_int(f->j, "shard", &f->shard)) f->shard = 0;
    if (!sk_json_get_int(f->j, "shards", &f->shards)) f->shards = 1;
    if (!sk_json_get_int(f->j, "units_total", &f->total)) f->total = (int64_t)f->units->len;
    if (f->shards < 1 || f->shard < 0 || f->shard >= f->shards || f->total < 0 ||
        f->shards > (int64_t)1 << 20)
        return sk_error(SHRINK_ERR_FORMAT, "%s: shard %lld of %lld is not a share of a sweep",
                        path, (long long)f->shard, (long long)f->shards);
    return SHRINK_OK;
}

/* "the same sweep": what each shard names must equal the first's */
static shrink_status shard_match(const shard_file *a, const shard_file *b) {
    const char *what = NULL;
    if (strcmp(a->input, b->input) != 0) what = "model (input)";
    else if (strcmp(a->calib, b->calib) != 0) what = "text (calib)";
    else if (strcmp(a->unit, b->unit) != 0) what = "unit";
    else if (a->tokens != b->tokens) what = "calib_tokens";
    else if (a->block != b->block) what = "block";
    else if (a->shards != b->shards) what = "number of shards";
    else if (a->total != b->total) what = "units_total";
    else if (a->base_ppl != b->base_ppl) what = "base_ppl (the model or text changed)";
    if (what)
        return sk_error(SHRINK_ERR_ARG, "%s and %s are not shards of one sweep: the %s differs",
                        a->path, b->path, what);
    return SHRINK_OK;
}

static int entry_cmp(const void *x, const void *y) {
    const shrink_sensitivity_entry *p = x, *q = y;
    if (p->layer != q->layer) return p->layer < q->layer ? -1 : 1;
    return (p->index > q->index) - (p->index < q->index);
}

shrink_status shrink_sensitivity_merge(const char *const *paths, int32_t n,
                                       shrink_sensitivity_result *r) {
    if (!r) return sk_error(SHRINK_ERR_ARG, "sensitivity merge: no result buffer given");
    memset(r, 0, sizeof *r);
    if (!paths || n < 1) return sk_error(SHRINK_ERR_ARG, "no shard files given");
    shard_file *f = sk_calloc((size_t)n, sizeof *f);
    uint8_t    *seen = NULL;
    shrink_status st = f ? SHRINK_OK : sk_error(SHRINK_ERR_NOMEM, "merging results: out of memory");
    for (int32_t i = 0; !st && i < n; i++) {
        if ((st = shard_read(paths[i], &f[i]))) break;
        if (i > 0) st = shard_match(&f[0], &f[i]);
    }
    if (st) goto out;
    if (shrink_unit_parse(f[0].unit, &r->unit) != SHRINK_OK) {
        st = sk_error(SHRINK_ERR_FORMAT, "%s: unknown unit '%s'", f[0].path, f[0].unit);
        goto out;
    }
    seen = sk_calloc((size_t)f[0].shards, 1);
    if (!seen) {
        st = sk_error(SHRINK_ERR_NOMEM, "merging results: out of memory");
        goto out;
    }
    int64_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        if (seen[f[i].shard]) {
            st = sk_error(SHRINK_ERR_ARG, "shard %lld of %lld is given twice (%s)",
                          (long long)f[i].shard, (long long)f[i].shards, f[i].path);
            goto out;
        }
        seen[f[i].shard] = 1;
        total += (int64_t)f[i].units->len;
    }
    for (int64_t s = 0; s < f[0].shards; s++)
        if (!seen[s]) {
            st = sk_error(SHRINK_ERR_ARG, "shard %lld of %lld is missing", (long long)s,
                          (long long)f[0].shards);
            goto out;
        }
    if (total != f[0].total) {
        st = sk_error(SHRINK_ERR_FORMAT, "the shards hold %lld units, their sweep has %lld",
                      (long long)total, (long long)f[0].total);
        goto out;
    }
    r->entries = sk_calloc((size_t)(total ? total : 1), sizeof *r->entries);
    if (!r->entries) {
        st = sk_error(SHRINK_ERR_NOMEM, "merging results: out of memory");
        goto out;
    }
    int64_t k = 0;
    for (int32_t i = 0; i < n; i++)
        for (size_t u = 0; u < f[i].units->len; u++, k++) {
            const sk_json *e = &f[i].units->items[u];
            int64_t layer, index;
            double  kl, ppl, proxy = NAN;
            const sk_json *px = sk_json_get(e, "proxy"); /* null where it is not a number */
            if (!sk_json_get_int(e, "layer", &layer) || !sk_json_get_int(e, "index", &index) ||
                !sk_json_get_num(e, "kl", &kl) || !sk_json_get_num(e, "ppl", &ppl) || !px ||
                (px->type != SK_JSON_NULL && !sk_json_get_num(e, "proxy", &proxy)) ||
                layer < 0 || layer > INT32_MAX ||
                index < -1 || index > INT32_MAX) {
                st = sk_error(SHRINK_ERR_FORMAT, "%s: unit %zu lacks layer, index, kl, ppl or "
                              "proxy", f[i].path, u);
                goto out;
            }
            r->entries[k] = (shrink_sensitivity_entry){(int32_t)layer, (int32_t)index, kl, ppl,
                                                       proxy, 0};
        }
    qsort(r->entries, (size_t)total, sizeof *r->entries, entry_cmp);
    for (int64_t i = 1; i < total; i++)
        if (entry_cmp(&r->entries[i - 1], &r->entries[i]) == 0) {
            st = sk_error(SHRINK_ERR_FORMAT, "unit (layer %d, index %d) is in two shards",
                          r->entries[i].layer, r->entries[i].index);
            goto out;
        }
    r->n = total;
    if ((st = sk_sensitivity_rank(r))) goto out;
    r->base_ppl = f[0].base_ppl;
    r->n_tokens = f[0].tokens;
    r->block = (int32_t)f[0].block;
    r->shard = 0;
    r->n_shards = 1;
    r->n_total = total;
    for (int32_t i = 0; i < n; i++) {
        double sec;
        if (sk_json_get_num(f[i].j, "seconds", &sec) && isfinite(sec)) r->seconds += sec;
    }
    r->input = sk_strdup(f[0].input);
    r->calib = sk_strdup(f[0].calib);
    if (!r->input || !r->calib) st = sk_error(SHRINK_ERR_NOMEM, "merging results: out of memory");
out:
    for (int32_t i = 0; f && i < n; i++) sk_json_free(f[i].j);
    sk_free(f);
    sk_free(seen);
    if (st) shrink_sensitivity_result_free(r);
    return st;
}
