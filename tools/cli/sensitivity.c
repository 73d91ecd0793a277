/*
 * sensitivity.c - `shrink sensitivity IN --calib FILE [--unit layer|head|kv-head|neuron-block]`:
 * for every unit, the KL divergence from the model's own next-token distribution and the
 * perplexity on the calibration text when that unit alone is removed, ranked, with the cheap
 * proxy score beside it (shrink_sensitivity does the work; this file parses and prints).
 *
 * stdout: a table ranked from least to most sensitive (rank, layer, index, KL, ppl, Δppl,
 * proxy) and the Spearman correlation of the proxy with the measured KL; or with --json one
 * object. stderr: progress with an ETA (units measured).
 */
#include "cli.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct sens_opts {
    const char *calib;
    const char *unit;
    int32_t     calib_tokens;
    int32_t     calib_ctx;
    int32_t     block;
    int32_t     top;
    const char *shard;
} sens_opts;

#define O(f) offsetof(sens_opts, f)
static const cli_opt sens_opts_table[] = {
    {"--calib", NULL, CLI_OPT_STR, O(calib), "FILE", 0, 0,
     "UTF-8 text the KL and perplexity are measured on (required)"},
    {"--unit", "-u", CLI_OPT_STR, O(unit), "UNIT", 0, 0,
     "layer (default) | head | kv-head | neuron-block"},
    {"--calib-tokens", NULL, CLI_OPT_INT, O(calib_tokens), "N", 2, 100000000,
     "tokens of the text used (default 512)"},
    {"--calib-ctx", NULL, CLI_OPT_INT, O(calib_ctx), "N", 1, 1000000,
     "tokens per window (default: context, <= 256)"},
    {"--block", NULL, CLI_OPT_INT, O(block), "N", 1, 1 << 24,
     "neuron-block: neurons per block (default ffn_dim / 16)"},
    {"--top", NULL, CLI_OPT_INT, O(top), "N", 1, 1 << 30,
     "print only the N least sensitive units (text output)"},
    {"--shard", NULL, CLI_OPT_STR, O(shard), "I/N", 0, 0,
     "measure only share I of N (units k with k % N == I); join with merge-results"},
};
#undef O

static const cli_spec spec = {
    .name        = "sensitivity",
    .synopsis    = "IN --calib FILE [--unit layer|head|kv-head|neuron-block]\n"
                   "       [--calib-tokens N] [--block N] [--top N] [--shard I/N] [--json]",
    .description = "Measures, for every unit of a model (decoder layer, query head, K/V group\n"
                   "with its query heads, or block of FFN neurons), the mean KL divergence from\n"
                   "the model's own next-token distribution and the perplexity on --calib when\n"
                   "that unit alone is removed (its output columns zeroed, which equals removing\n"
                   "it), ranked from least to most sensitive. Beside it the cheap proxy: block\n"
                   "influence 1 - cos(h_in, h_out) for layers (ShortGPT), mean activation norm x\n"
                   "weight norm for heads and neurons (Minitron). shrink prune --structured\n"
                   "--by sensitivity removes the least sensitive units. --shard I/N splits the\n"
                   "sweep over machines; `shrink merge-results` joins the shards' --json files\n"
                   "into the table one run prints (docs/scale.md).",
    .opts        = sens_opts_table,
    .n_opts      = sizeof sens_opts_table / sizeof sens_opts_table[0],
    .n_pos_min   = 1,
    .n_pos_max   = 1,
    .model       = true,
};

/* Spearman's rank correlation of a and b (no ties assumed beyond index order). */
static double spearman(const double *a, const double *b, int64_t n) {
    if (n < 2) return NAN;
    double *ra = malloc((size_t)n * sizeof *ra), *rb = malloc((size_t)n * sizeof *rb);
    if (!ra || !rb) {
        free(ra);
        free(rb);
        return NAN;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t ca = 0, cb = 0;
        for (int64_t k = 0; k < n; k++) {
            ca += a[k] < a[i] || (a[k] == a[i] && k < i);
            cb += b[k] < b[i] || (b[k] == b[i] && k < i);
        }
        ra[i] = (double)ca;
        rb[i] = (double)cb;
    }
    double d2 = 0.0;
    for (int64_t i = 0; i < n; i++) d2 += (ra[i] - rb[i]) * (ra[i] - rb[i]);
    free(ra);
    free(rb);
    return 1.0 - 6.0 * d2 / ((double)n * ((double)n * n - 1.0));
}

static double proxy_rho(const shrink_sensitivity_result *r) {
    double *a = malloc((size_t)(r->n ? r->n : 1) * sizeof *a);
    double *b = malloc((size_t)(r->n ? r->n : 1) * sizeof *b);
    double rho = NAN;
    if (a && b) {
        for (int64_t i = 0; i < r->n; i++) {
            a[i] = r->entries[i].kl;
            b[i] = r->entries[i].proxy;
        }
        rho = spearman(a, b, r->n);
    }
    free(a);
    free(b);
    return rho;
}

/* The table (or with json, one object) of a sensitivity result: a run's, or shards joined
 * by `shrink merge-results`. */
int cli_print_sensitivity(const char *input, const char *calib,
                          const shrink_sensitivity_result *r, bool json, int top) {
    const double rho = proxy_rho(r);
    if (json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_key(&j, "input");       cli_json_str(&j, input);
        cli_json_key(&j, "calib");       cli_json_str(&j, calib);
        cli_json_key(&j, "unit");        cli_json_str(&j, shrink_unit_name(r->unit));
        cli_json_key(&j, "calib_tokens"); cli_json_int(&j, r->n_tokens);
        if (r->unit == SHRINK_UNIT_NEURON_BLOCK) {
            cli_json_key(&j, "block");   cli_json_int(&j, r->block);
        }
        cli_json_key(&j, "base_ppl");    cli_json_num(&j, r->base_ppl);
        cli_json_key(&j, "proxy_spearman"); cli_json_num(&j, rho);
        cli_json_key(&j, "seconds");     cli_json_num(&j, r->seconds);
        if (r->n_shards > 1) {           /* a share of a sweep: merge-results joins them */
            cli_json_key(&j, "shard");   cli_json_int(&j, r->shard);
            cli_json_key(&j, "shards");  cli_json_int(&j, r->n_shards);
            cli_json_key(&j, "units_total"); cli_json_int(&j, r->n_total);
        }
        cli_json_key(&j, "units");       /* in model order; "rank" 0 = least sensitive */
        cli_json_arr_begin(&j);
        for (int64_t i = 0; i < r->n; i++) {
            const shrink_sensitivity_entry *e = &r->entries[i];
            cli_json_obj_begin(&j);
            cli_json_key(&j, "layer"); cli_json_int(&j, e->layer);
            cli_json_key(&j, "index"); cli_json_int(&j, e->index);
            cli_json_key(&j, "kl");    cli_json_num(&j, e->kl);
            cli_json_key(&j, "ppl");   cli_json_num(&j, e->ppl);
            cli_json_key(&j, "proxy"); cli_json_num(&j, e->proxy);
            cli_json_key(&j, "rank");  cli_json_int(&j, e->rank);
            cli_json_obj_end(&j);
        }
        cli_json_arr_end(&j);
        cli_json_end(&j);
    } else {
        int64_t *by_rank = malloc((size_t)(r->n ? r->n : 1) * sizeof *by_rank);
        if (!by_rank) return cli_fail("out of memory");
        for (int64_t i = 0; i < r->n; i++) by_rank[r->entries[i].rank] = i;
        printf("%s: %lld %s units, %lld tokens of %s, ppl %.4f as it is\n", input,
               (long long)r->n, shrink_unit_name(r->unit), (long long)r->n_tokens, calib,
               r->base_ppl);
        if (r->n_shards > 1)
            printf("shard %d of %d (%lld of %lld units; ranks within the shard)\n", r->shard,
                   r->n_shards, (long long)r->n, (long long)r->n_total);
        printf("%5s %6s %6s %12s %10s %10s %12s\n", "rank", "layer", "index", "KL", "ppl",
               "dppl", "proxy");
        const int64_t shown = top > 0 && top < r->n ? top : r->n;
        for (int64_t k = 0; k < shown; k++) {
            const shrink_sensitivity_entry *e = &r->entries[by_rank[k]];
            char idx[16];
            if (e->index < 0) snprintf(idx, sizeof idx, "-");
            else snprintf(idx, sizeof idx, "%d", e->index);
            printf("%5lld %6d %6s %12.6f %10.4f %+10.4f %12.6g\n", (long long)k, e->layer, idx,
                   e->kl, e->ppl, e->ppl - r->base_ppl, e->proxy);
        }
        printf("proxy vs measured KL: Spearman rho %.3f\n", rho);
        free(by_rank);
    }
    return CLI_OK;
}

int cmd_sensitivity(int argc, char **argv) {
    cli_common common;
    char      *pos[1];
    int        n_pos;
    sens_opts  opts = {.calib_tokens = 512};
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    shrink_sensitivity_params p = shrink_sensitivity_params_default();
    if (opts.unit && shrink_unit_parse(opts.unit, &p.unit) != SHRINK_OK) {
        fprintf(stderr, "shrink sensitivity: --unit: %s\n\n", shrink_last_error());
        cli_usage(&spec, stderr);
        return CLI_USAGE;
    }
    if (!opts.calib) {
        fprintf(stderr, "shrink sensitivity: --calib FILE is required\n\n");
        cli_usage(&spec, stderr);
        return CLI_USAGE;
    }
    if (common.f32) return cli_fail("sensitivity: --f32 does not apply (W_o and W_down are "
                                    "read as f32, the rest as stored)");
    cli_io io[] = {{"IN", pos[0], CLI_IN},
                   {"--tokenizer", common.tokenizer, CLI_IN},
                   {"--calib", opts.calib, CLI_IN}};
    if ((rc = cli_check_io(io, 3)) != CLI_OK) return rc;
    p.calib_path = opts.calib;
    p.calib_tokens = opts.calib_tokens;
    p.calib_ctx = opts.calib_ctx;
    p.block = opts.block;
    p.tokenizer_path = common.tokenizer;
    if (opts.shard && (rc = cli_parse_shard("sensitivity", opts.shard, &p.shard, &p.n_shards)))
        return rc;
    shrink_set_threads(common.threads);
    cli_progress prog;
    cli_progress_start(&prog, "units measured", &common);
    p.progress = cli_progress_cb;
    p.user = &prog;
    shrink_sensitivity_result r;
    shrink_status st = shrink_sensitivity(pos[0], &p, &r);
    cli_progress_end(&prog);
    if (st) return cli_fail_status(st);
    rc = cli_print_sensitivity(pos[0], opts.calib, &r, common.json, opts.top);
    shrink_sensitivity_result_free(&r);
    return rc;
}
