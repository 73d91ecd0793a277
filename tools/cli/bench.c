/*
 * bench.c - `shrink bench MODEL`: prompt-processing and decode speed, like llama-bench.
 *
 *   pp: --pp tokens evaluated in one shrink_context_eval call from position 0;
 *   tg: --tg single-token evals at positions 0, 1, ... (decode from an empty context);
 * each measured --reps times after one warm-up run with every thread pinned to one CPU,
 * reported as the median ± the sample standard deviation of tokens/s (mean, min and max in
 * --json); a relative spread (sd / median) over 10 % gives a warning on stderr. Token ids are
 * fixed, (i * 7919) % vocab, so no tokenizer is needed.
 *
 * Also reported: threads, peak RSS (taken before the bandwidth buffer exists), weight bytes, the
 * memory read bandwidth (measured here after the runs with shrink_measure_bandwidth over
 * 512 MiB, best of 5, unless --bandwidth gives it), the decode
 * roofline fraction = weight_bytes * decode tok/s / bandwidth, and the GFLOP/s of prompt
 * processing counted as
 *     flops(pp run) = pp * 2 * layer_params + 2 * dim * vocab
 *                     + 2 * n_layers * q_dim * pp * (pp + 1)
 *     layer_params  = n_layers * (dim*q_dim + 2*dim*kv_dim + q_dim*dim + n_ffn*dim*ffn_dim)
 * (the output head runs once: a pp run asks for the last token's logits only, as llama-bench)
 * (q_dim = n_heads * head_dim, kv_dim = n_kv_heads * head_dim, n_ffn = 3 for gated MLPs (Llama),
 * 2 for GPT-2; the second term is Q*K^T and A*V over the causal prefix, 4 * q_dim flops per
 * layer per attended position). Norms, activations and softmax are not counted.
 */
#include "cli.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct bench_opts {
    int32_t pp;
    int32_t tg;
    int32_t reps;
    double  bandwidth;   /* GB/s; 0 = measure */
    bool    no_pin;
} bench_opts;

#define O(field) offsetof(bench_opts, field)
static const cli_opt bench_rows[] = {
    {"--pp",        "-p", CLI_OPT_INT,   O(pp),        "N", 0, 1 << 20,
     "prompt tokens evaluated at once (default 512, capped at the model context; 0 = skip)"},
    {"--tg",        "-n", CLI_OPT_INT,   O(tg),        "N", 0, 1 << 20,
     "tokens decoded one at a time (default 128; 0 = skip)"},
    {"--reps",      "-r", CLI_OPT_INT,   O(reps),      "N", 1, 1000,
     "measured repetitions after one warm-up (default 5)"},
    {"--no-pin",    NULL, CLI_OPT_FLAG,  O(no_pin),    NULL, 0, 0,
     "leave threads unpinned (default: each bound to one CPU during the runs)"},
    {"--bandwidth", NULL, CLI_OPT_FLOAT, O(bandwidth), "GBs", 0, 1e6,
     "memory bandwidth in GB/s for the roofline (default: measure)"},
};
#undef O

static const cli_spec spec = {
    .name        = "bench",
    .synopsis    = "MODEL [--pp 512] [--tg 128] [--reps 5] [--bandwidth GBs] [--no-pin] [options]",
    .description = "Measures prompt processing (pp) and decode (tg) speed after a warm-up run,\n"
                   "threads pinned, as the median ± sd over the repetitions (a warning when\n"
                   "sd / median > 10 %), and prints a markdown table like llama-bench's with\n"
                   "the memory bandwidth, the decode roofline fraction and the pp GFLOP/s.",
    .opts        = bench_rows,
    .n_opts      = sizeof bench_rows / sizeof bench_rows[0],
    .n_pos_min   = 1,
    .n_pos_max   = 1,
    .model       = true,
    .load_as     = true,
    .lora        = true,
};

typedef struct bench_stat {
    double median;  /* tokens/s */
    double mean;
    double sd;
    double min, max;
} bench_stat;

typedef struct bench_result {
    const char       *model;
    shrink_model_info mi;
    int32_t           pp, tg, reps;
    bench_stat        pp_rate;
    bench_stat        tg_rate;
    double            pp_flops;        /* flops of one pp run */
    double            bandwidth;       /* bytes/s */
    uint64_t          peak_rss;        /* before the bandwidth buffer is allocated */
    bool              bw_measured;
    int32_t           pinned;          /* threads pinned during the runs */
    bool              noisy;           /* a test's spread was over CLI_SPREAD_WARN */
    uint64_t          l3_bytes;        /* 0 if unknown */
} bench_result;

/* ==== measuring =========================================================================== */

static double pp_flops(const shrink_model_info *mi, int32_t pp) {
    double q_dim  = (double)mi->n_heads * mi->head_dim;
    double kv_dim = (double)mi->n_kv_heads * mi->head_dim;
    double n_ffn  = strcmp(mi->arch, "gpt2") ? 3 : 2;   /* GPT-2's MLP has no gate */
    double layer  = mi->dim * q_dim + 2 * mi->dim * kv_dim + q_dim * mi->dim +
                    n_ffn * mi->dim * (double)mi->ffn_dim;
    double head   = (double)mi->dim * mi->vocab_size; /* once: only the last token's logits */
    return pp * 2 * mi->n_layers * layer + 2 * head + 2.0 * mi->n_layers * q_dim * pp * (pp + 1.0);
}

/* The runs themselves are shrink_bench's (src/eval/bench.c), shared with `shrink compare`. */
static int run_bench(shrink_model *m, const cli_common *common, bool pin, bench_result *b) {
    cli_progress        prog;
    shrink_bench_params bp = shrink_bench_params_default();
    shrink_bench_result r;
    bp.pp       = b->pp;
    bp.tg       = b->tg;
    bp.reps     = b->reps;
    bp.progress = cli_progress_cb;
    bp.user     = &prog;
    bp.pin      = pin;
    cli_progress_start(&prog, "bench runs", common);
    shrink_status st = shrink_bench(m, &bp, &r);
    cli_progress_end(&prog);
    if (st != SHRINK_OK) return cli_fail_status(st);
    b->pp_rate = (bench_stat){r.pp_tok_s_median, r.pp_tok_s, r.pp_tok_s_sd, r.pp_tok_s_min,
                              r.pp_tok_s_max};
    b->tg_rate = (bench_stat){r.tg_tok_s_median, r.tg_tok_s, r.tg_tok_s_sd, r.tg_tok_s_min,
                              r.tg_tok_s_max};
    b->pinned  = r.pinned;
    char t[32];
    snprintf(t, sizeof t, "pp%d", b->pp);
    if (b->pp > 0 && cli_speed_spread_warn(NULL, t, b->pp_rate.median, b->pp_rate.sd, b->reps))
        b->noisy = true;
    snprintf(t, sizeof t, "tg%d", b->tg);
    if (b->tg > 0 && cli_speed_spread_warn(NULL, t, b->tg_rate.median, b->tg_rate.sd, b->reps))
        b->noisy = true;
    return CLI_OK;
}

/* ==== output ============================================================================== */

static double roofline(const bench_result *b) {
    return b->bandwidth > 0 ? (double)b->mi.weight_bytes * b->tg_rate.median / b->bandwidth : 0;
}

static double gflops(const bench_result *b) {
    return b->pp > 0 ? b->pp_flops * (b->pp_rate.median / b->pp) / 1e9 : 0;
}

static void print_json(const bench_result *b) {
    cli_json j;
    cli_json_begin(&j, stdout);
    cli_json_key(&j, "model");              cli_json_str(&j, b->model);
    cli_json_key(&j, "arch");               cli_json_str(&j, b->mi.arch);
    cli_json_key(&j, "n_params");           cli_json_int(&j, b->mi.n_params);
    cli_json_key(&j, "weight_bytes");       cli_json_u64(&j, b->mi.weight_bytes);
    cli_json_key(&j, "threads");            cli_json_int(&j, shrink_get_threads());
    cli_json_key(&j, "threads_pinned");     cli_json_int(&j, b->pinned);
    cli_json_key(&j, "kernels");            cli_json_str(&j, shrink_kernels_name());
    cli_json_key(&j, "pp");                 cli_json_int(&j, b->pp);
    cli_json_key(&j, "tg");                 cli_json_int(&j, b->tg);
    cli_json_key(&j, "reps");               cli_json_int(&j, b->reps);
    cli_json_speed(&j, "pp", b->pp > 0, b->pp_rate.median, b->pp_rate.mean, b->pp_rate.sd,
                   b->pp_rate.min, b->pp_rate.max);
    cli_json_key(&j, "pp_gflops");          cli_json_num(&j, gflops(b));
    cli_json_speed(&j, "tg", b->tg > 0, b->tg_rate.median, b->tg_rate.mean, b->tg_rate.sd,
                   b->tg_rate.min, b->tg_rate.max);
    cli_json_key(&j, "spread_warning");     cli_json_bool(&j, b->noisy);
    cli_json_key(&j, "bandwidth_bytes_s");  cli_json_num(&j, b->bandwidth);
    cli_json_key(&j, "bandwidth_measured"); cli_json_bool(&j, b->bw_measured);
    cli_json_key(&j, "roofline_fraction");  cli_json_num(&j, roofline(b));
    cli_json_key(&j, "l3_bytes");           cli_json_u64(&j, b->l3_bytes);
    cli_json_key(&j, "peak_rss_bytes");     cli_json_u64(&j, b->peak_rss);
    cli_json_end(&j);
}

static void print_row(const bench_result *b, const char *test, bench_stat s, double gf) {
    const char *name = strrchr(b->model, '/');
    char        wb[32], gfs[32];
    name = name && name[1] ? name + 1 : b->model;
    if (gf > 0) snprintf(gfs, sizeof gfs, "%.2f", gf);
    else snprintf(gfs, sizeof gfs, "-");
    printf("| %s | %.2f M | %s | %d | %s | %.2f ± %.2f | %s |\n", name,
           (double)b->mi.n_params / 1e6, cli_fmt_bytes(wb, sizeof wb, b->mi.weight_bytes),
           shrink_get_threads(), test, s.median, s.sd, gfs);
}

static void print_table(const bench_result *b) {
    char t[32], bw[32];
    printf("| model | params | weights | threads | test | t/s | GFLOP/s |\n");
    printf("| --- | ---: | ---: | ---: | --- | ---: | ---: |\n");
    if (b->pp > 0) {
        snprintf(t, sizeof t, "pp%d", b->pp);
        print_row(b, t, b->pp_rate, gflops(b));
    }
    if (b->tg > 0) {
        snprintf(t, sizeof t, "tg%d", b->tg);
        print_row(b, t, b->tg_rate, 0);
    }
    printf("\nt/s: median ± sd of %d run%s after a warm-up, %d thread%s%s\n", b->reps,
           cli_s(b->reps), shrink_get_threads(), cli_s(shrink_get_threads()),
           b->pinned ? ", each pinned to one CPU" : " (not pinned)");
    printf("kernels: %s\n", shrink_kernels_name());
    printf("memory bandwidth: %.1f GB/s (%s)\n", b->bandwidth / 1e9,
           b->bw_measured ? "measured: 512 MiB read, best of 5" : "given with --bandwidth");
    if (b->tg > 0)
        printf("decode roofline: %s x %.1f tok/s = %.2f GB/s = %.1f%% of the bandwidth%s\n",
               cli_fmt_bytes(bw, sizeof bw, b->mi.weight_bytes), b->tg_rate.median,
               (double)b->mi.weight_bytes * b->tg_rate.median / 1e9, 100 * roofline(b),
               b->l3_bytes && b->mi.weight_bytes <= b->l3_bytes
                   ? " (weights fit in L3: more than 100% is possible)" : "");
    printf("peak RSS: %s (before the bandwidth measurement)\n",
           cli_fmt_bytes(bw, sizeof bw, b->peak_rss));
}

/* ==== command ============================================================================= */

/* Applies the defaults and checks the sizes against the model's context. */
static int plan(const bench_opts *opts, bench_result *b) {
    int32_t max = b->mi.max_seq_len;
    b->pp = opts->pp < 0 ? (max < 512 ? max : 512) : opts->pp;
    b->tg = opts->tg < 0 ? (max < 128 ? max : 128) : opts->tg;
    if (b->pp > max || b->tg > max)
        return cli_fail("--pp %d / --tg %d: the model's context holds %d tokens", b->pp, b->tg,
                        max);
    if (b->pp == 0 && b->tg == 0) return cli_fail("nothing to measure: --pp 0 and --tg 0");
    b->reps     = opts->reps;
    b->pp_flops = pp_flops(&b->mi, b->pp);
    long l3     = sysconf(_SC_LEVEL3_CACHE_SIZE);
    b->l3_bytes = l3 > 0 ? (uint64_t)l3 : 0;
    return CLI_OK;
}

int cmd_bench(int argc, char **argv) {
    cli_common    common;
    char         *pos[1];
    int           n_pos;
    shrink_model *m = NULL;
    bench_result  b = {0};

    /* pp, tg -1: the defaults, capped at the model's context */
    bench_opts    opts = {.pp = -1, .tg = -1, .reps = 5};
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    b.model = pos[0];
    if ((rc = cli_load_model(b.model, &common, CLI_TOK_NONE, &m)) != CLI_OK) return rc;
    shrink_model_get_info(m, &b.mi);
    if ((rc = plan(&opts, &b)) != CLI_OK) goto out_model;

    if ((rc = run_bench(m, &common, !opts.no_pin, &b)) != CLI_OK) goto out_model;
    /* after the runs, so that peak RSS is the model's and not the 512 MiB buffer's */
    b.peak_rss    = shrink_peak_rss();
    b.bw_measured = opts.bandwidth <= 0;
    b.bandwidth   = b.bw_measured ? shrink_measure_bandwidth((size_t)512 << 20, 5)
                                  : opts.bandwidth * 1e9;
    if (common.json) print_json(&b);
    else print_table(&b);
out_model:
    shrink_model_free(m);
    return rc;
}
