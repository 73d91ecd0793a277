/*
 * lowrank.c - `shrink lowrank IN OUT (--rank R | --energy E | --ratio P) [--method
 * svd|asvd|whiten] [--calib FILE] [--targets LIST]`: every targeted matrix replaced by its
 * truncated SVD (plain, activation-scaled, or whitened by the calibration inputs), written
 * back dense (shrink_lowrank does the work; this file parses and prints).
 *
 * stdout: one line (method, matrices, ranks, parameters the factors would hold, mean kept
 * energy and error, output); or with --json one object. stderr: progress with an ETA
 * (calibration tokens, then MiB written) and a warning for matrices kept dense.
 */
#include "cli.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct lr_opts {
    int32_t     rank;
    double      energy;
    double      ratio;
    const char *method;
    const char *calib;
    int32_t     calib_tokens;
    int32_t     calib_ctx;
    const char *targets;
    double      alpha;
    double      damp;
    const char *dtype;
    const char *store;
    const char *choose;
    int32_t     choose_tokens;
} lr_opts;

#define O(f) offsetof(lr_opts, f)
static const cli_opt lr_opts_table[] = {
    {"--rank", "-r", CLI_OPT_INT, O(rank), "R", -2147483647.0, 2147483647.0,
     "the rank of every matrix, in [1, min(rows, cols)]"},
    {"--energy", NULL, CLI_OPT_FLOAT, O(energy), "E", -1e300, 1e300,
     "per matrix the smallest rank keeping the fraction E in\n"
     "                         (0, 1] of the spectral energy (sum of sigma^2)"},
    {"--ratio", NULL, CLI_OPT_FLOAT, O(ratio), "P", -1e300, 1e300,
     "per matrix the rank whose two factors hold the fraction\n"
     "                         P in (0, 1) of its parameters (0.8: 20% fewer)"},
    {"--method", "-m", CLI_OPT_STR, O(method), "M", 0, 0,
     "svd (default) | asvd (activation-scaled; --calib) |\n"
     "                         whiten (SVD-LLM; --calib)"},
    {"--calib", NULL, CLI_OPT_STR, O(calib), "FILE", 0, 0,
     "asvd, whiten: UTF-8 calibration text"},
    {"--calib-tokens", NULL, CLI_OPT_INT, O(calib_tokens), "N", 1, 100000000,
     "tokens of the calibration text used (default 2048)"},
    {"--calib-ctx", NULL, CLI_OPT_INT, O(calib_ctx), "N", 1, 1000000,
     "tokens per calibration window (default: context, <= 256)"},
    {"--targets", NULL, CLI_OPT_STR, O(targets), "LIST", 0, 0,
     "matrices factored: q,k,v,o,gate,up,down (default all)"},
    {"--alpha", NULL, CLI_OPT_FLOAT, O(alpha), "A", 1e-6, 4,
     "asvd: exponent of the activation scale (0.5)"},
    {"--damp", NULL, CLI_OPT_FLOAT, O(damp), "F", 0, 0.999,
     "whiten: added to diag(X^T X), fraction of its mean (1e-3)"},
    {"--dtype", NULL, CLI_OPT_STR, O(dtype), "DTYPE", 0, 0,
     "dtype of the output's matrices (default: the input's)"},
    {"--store", NULL, CLI_OPT_STR, O(store), "S", 0, 0,
     "dense (default): the product merged back, any reader\n"
     "                         runs it | factored: each matrix whose factors are\n"
     "                         smaller stored as the two (GGUF; shrink runs them as\n"
     "                         two products, llama.cpp does not read them)"},
    {"--choose", NULL, CLI_OPT_STR, O(choose), "HOW", 0, 0,
     "uniform (default): every matrix at --ratio P | sensitivity:\n"
     "                         per-matrix ranks under the budget P x the parameters,\n"
     "                         from each matrix's measured KL on --calib at a few ranks"},
    {"--choose-tokens", NULL, CLI_OPT_INT, O(choose_tokens), "N", 1, 100000000,
     "--choose sensitivity: tokens of --calib measured (default 512)"},
};
#undef O

static const cli_spec spec = {
    .name        = "lowrank",
    .synopsis    = "IN OUT (--rank R | --energy E | --ratio P) [--method svd|asvd|whiten]\n"
                   "       [--calib FILE [--calib-tokens N]] [--targets q,k,v,o,gate,up,down]\n"
                   "       [--dtype DTYPE] [--store dense|factored]\n"
                   "       [--choose uniform|sensitivity --calib FILE] [--json]",
    .description = "Low-rank factorization: every targeted matrix W (attention q/k/v/o, FFN\n"
                   "gate/up/down) is replaced by its best rank-r approximation and the product\n"
                   "is written back dense (GGUF for OUT.gguf, else a Hugging Face folder), so\n"
                   "the model keeps its shape and every reader runs it. svd truncates W itself;\n"
                   "asvd scales W's input channels by their mean |activation|^alpha on --calib\n"
                   "first (ASVD); whiten truncates W L with L L^T = X^T X of the calibration\n"
                   "inputs (SVD-LLM), which minimises the error of the layer's output. A matrix\n"
                   "whose factors r (rows + cols) would not be smaller than it is kept as it is\n"
                   "(a warning says how many). OUT appears only when complete. docs/lowrank.md.",
    .opts        = lr_opts_table,
    .n_opts      = sizeof lr_opts_table / sizeof lr_opts_table[0],
    .n_pos_min   = 2,
    .n_pos_max   = 2,
    .model       = true,
};

static int usage_error(const char *msg) {
    fprintf(stderr, "shrink lowrank: %s\n\n", msg);
    cli_usage(&spec, stderr);
    return CLI_USAGE;
}

int cmd_lowrank(int argc, char **argv) {
    cli_common common;
    char      *pos[2];
    int        n_pos;
    lr_opts    opts = {.rank = -1, .energy = -1.0, .ratio = -1.0, .calib_tokens = 2048,
                       .alpha = 0.5, .damp = 1e-3};
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    const int given = (opts.rank != -1) + (opts.energy != -1.0) + (opts.ratio != -1.0);
    if (given != 1) return usage_error("give one of --rank R, --energy E or --ratio P");
    char msg[160];
    if (opts.rank != -1 && opts.rank < 1) {
        snprintf(msg, sizeof msg, "--rank %d: the rank must be at least 1", opts.rank);
        return usage_error(msg);
    }
    if (opts.energy != -1.0 && !(opts.energy > 0.0 && opts.energy <= 1.0)) {
        snprintf(msg, sizeof msg, "--energy %g: must be in (0, 1]", opts.energy);
        return usage_error(msg);
    }
    if (opts.ratio != -1.0 && !(opts.ratio > 0.0 && opts.ratio < 1.0)) {
        snprintf(msg, sizeof msg, "--ratio %g: must be in (0, 1) (the fraction of each matrix's "
                 "parameters its factors keep)", opts.ratio);
        return usage_error(msg);
    }
    shrink_lowrank_params p = shrink_lowrank_params_default();
    if (opts.method && shrink_lowrank_method_parse(opts.method, &p.method) != SHRINK_OK) {
        snprintf(msg, sizeof msg, "--method: %s", shrink_last_error());
        return usage_error(msg);
    }
    if (opts.choose && strcmp(opts.choose, "uniform") && strcmp(opts.choose, "sensitivity")) {
        snprintf(msg, sizeof msg, "--choose %.40s: one of uniform, sensitivity", opts.choose);
        return usage_error(msg);
    }
    p.choose = opts.choose && !strcmp(opts.choose, "sensitivity");
    if (p.choose && (opts.ratio == -1.0 || !opts.calib))
        return usage_error("--choose sensitivity needs a budget --ratio P and a calibration "
                           "text --calib FILE");
    if (p.method != SHRINK_LOWRANK_SVD && !opts.calib)
        return usage_error("--method asvd and --method whiten need --calib FILE");
    if (p.method == SHRINK_LOWRANK_SVD && opts.calib && !p.choose)
        cli_warn("--calib is not used by --method svd");
    if (opts.choose_tokens) p.choose_tokens = opts.choose_tokens;
    if (common.f32) return cli_fail("lowrank: --f32 does not apply (use --dtype f32)");
    if (opts.dtype) {
        shrink_dtype d;
        if (shrink_dtype_parse(opts.dtype, &d) != SHRINK_OK) {
            snprintf(msg, sizeof msg, "--dtype: %s", shrink_last_error());
            return usage_error(msg);
        }
        p.dtype = d;
    }
    if (opts.store && strcmp(opts.store, "dense") && strcmp(opts.store, "factored")) {
        snprintf(msg, sizeof msg, "--store %.40s: one of dense, factored", opts.store);
        return usage_error(msg);
    }
    p.factored = opts.store && !strcmp(opts.store, "factored");
    if (p.factored && cli_out_is_folder(NULL, pos[1]))
        return usage_error("--store factored writes a GGUF file: name OUT *.gguf (a Hugging "
                           "Face folder holds dense matrices only)");
    const char *calib = p.method != SHRINK_LOWRANK_SVD || p.choose ? opts.calib : NULL;
    cli_io io[] = {{"IN", pos[0], CLI_IN},
                   {"--tokenizer", common.tokenizer, CLI_IN},
                   {"--calib", calib, CLI_IN},
                   {"OUT", pos[1], cli_out_is_folder(NULL, pos[1]) ? CLI_OUT_DIR : CLI_OUT}};
    if ((rc = cli_check_io(io, 4)) != CLI_OK) return rc;
    shrink_set_threads(common.threads);
    if (opts.rank != -1) p.rank = opts.rank;
    if (opts.energy != -1.0) p.energy = opts.energy;
    if (opts.ratio != -1.0) p.ratio = opts.ratio;
    p.targets = opts.targets;
    p.calib_path = calib;
    p.calib_tokens = opts.calib_tokens;
    p.calib_ctx = opts.calib_ctx;
    p.alpha = opts.alpha;
    p.damp = opts.damp;
    p.tokenizer_path = common.tokenizer;
    cli_phase_progress prog = {.phase = -1, .last = -1, .calib_label = "calibration tokens",
                               .write_label = "write MiB", .common = &common};
    p.progress = cli_phase_progress_cb;
    p.user = &prog;
    shrink_lowrank_result r;
    shrink_status st = shrink_lowrank(pos[0], pos[1], &p, &r);
    cli_phase_progress_end(&prog);
    if (st) return cli_fail_status(st);
    if (r.n_dense && p.choose)
        cli_warn("%lld of %lld matrices kept dense (chosen by measured sensitivity)",
                 (long long)r.n_dense, (long long)r.n_matrices);
    else if (r.n_dense)
        cli_warn("%lld of %lld matrices kept dense: their two factors would not be smaller",
                 (long long)r.n_dense, (long long)r.n_matrices);
    if (p.factored && !r.n_factored)
        cli_warn("no matrix is stored factored (no factors would be smaller): %s is dense",
                 pos[1]);
    const char *method = shrink_lowrank_method_name(p.method);
    const double frac = (double)r.params_lowrank / (double)(r.params_target ? r.params_target : 1);
    if (common.json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_key(&j, "input");          cli_json_str(&j, pos[0]);
        cli_json_key(&j, "output");         cli_json_str(&j, pos[1]);
        cli_json_key(&j, "method");         cli_json_str(&j, method);
        cli_json_key(&j, "n_matrices");     cli_json_int(&j, r.n_matrices);
        cli_json_key(&j, "n_dense");        cli_json_int(&j, r.n_dense);
        cli_json_key(&j, "n_factored");     cli_json_int(&j, r.n_factored);
        cli_json_key(&j, "choose");         cli_json_str(&j, p.choose ? "sensitivity" : "uniform");
        cli_json_key(&j, "choose_passes");  cli_json_int(&j, r.choose_passes);
        cli_json_key(&j, "choose_kl_sum");  cli_json_num(&j, r.choose_kl_sum);
        cli_json_key(&j, "min_rank");       cli_json_int(&j, r.min_rank);
        cli_json_key(&j, "max_rank");       cli_json_int(&j, r.max_rank);
        cli_json_key(&j, "params_target");  cli_json_int(&j, r.params_target);
        cli_json_key(&j, "params_lowrank"); cli_json_int(&j, r.params_lowrank);
        cli_json_key(&j, "mean_energy");    cli_json_num(&j, r.mean_energy);
        cli_json_key(&j, "mean_rel_err");   cli_json_num(&j, r.mean_rel_err);
        cli_json_key(&j, "calib_tokens");   cli_json_int(&j, r.calib_tokens);
        cli_json_key(&j, "in_file_bytes");  cli_json_u64(&j, r.in_file_bytes);
        cli_json_key(&j, "out_file_bytes"); cli_json_u64(&j, r.out_file_bytes);
        cli_json_key(&j, "seconds");        cli_json_num(&j, r.seconds);
        cli_json_end(&j);
    } else {
        char a[48] = "a folder";
        if (r.out_file_bytes) cli_fmt_bytes(a, sizeof a, r.out_file_bytes);
        printf("%s: %lld matrices, rank %d..%d, factors %.2fM of %.2fM params (%.1f%%), "
               "mean kept energy %.4f, mean relative error %.4f -> %s (%s, %s)\n", method,
               (long long)r.n_matrices, r.min_rank, r.max_rank, (double)r.params_lowrank / 1e6,
               (double)r.params_target / 1e6, 100.0 * frac, r.mean_energy, r.mean_rel_err,
               pos[1], a, r.n_factored ? "factored" : "dense");
    }
    return CLI_OK;
}
