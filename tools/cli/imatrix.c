/*
 * imatrix.c - `shrink imatrix IN --calib FILE -o OUT`: llama.cpp's importance matrix of a model
 * on a calibration text, written in the legacy imatrix format llama-quantize --imatrix reads,
 * through shrink_imatrix (the library does the work; this file parses options and prints).
 *
 * Under mpirun (a `make MPI=1` build) the chunks are shared by the ranks and rank 0 writes OUT,
 * the same bytes as one process (docs/scale.md).
 *
 * stdout: one line ("42 entries from 65 chunks of 256 tokens (16640 tokens) -> OUT");
 * or with --json one object. stderr: progress with an ETA (calibration tokens).
 */
#include "cli.h"

#include <stddef.h>
#include <string.h>

typedef struct imatrix_opts {
    const char *calib;
    const char *out;
    int32_t     calib_tokens;
    int32_t     calib_ctx;
} imatrix_opts;

#define O(f) offsetof(imatrix_opts, f)
static const cli_opt imatrix_rows[] = {
    {"--calib", "-f", CLI_OPT_STR, O(calib), "FILE", 0, 0, "UTF-8 calibration text (required)"},
    {"--output", "-o", CLI_OPT_STR, O(out), "FILE", 0, 0,
     "the importance matrix file to write (required)"},
    {"--calib-tokens", NULL, CLI_OPT_INT, O(calib_tokens), "N", 1, 1000000000,
     "tokens of the text used, in whole chunks (default: all)"},
    {"--calib-ctx", "-c", CLI_OPT_INT, O(calib_ctx), "N", 1, 1000000,
     "tokens per chunk, each run from position 0 (default 512)"},
};
#undef O

static const cli_spec spec = {
    .name        = "imatrix",
    .synopsis    = "IN --calib FILE -o OUT [--calib-tokens N] [--calib-ctx C]",
    .description = "Computes llama.cpp's importance matrix of a model: for every linear layer of\n"
                   "the blocks, the mean of x^2 of each input column over a calibration text cut\n"
                   "into chunks of C tokens (as llama-imatrix -c C). Writes llama.cpp's imatrix\n"
                   "file, which `shrink quantize --imatrix` and llama-quantize --imatrix read.\n"
                   "OUT appears only when complete.",
    .opts        = imatrix_rows,
    .n_opts      = sizeof imatrix_rows / sizeof imatrix_rows[0],
    .n_pos_min   = 1,
    .n_pos_max   = 1,
    .model       = true,
};

static int run_imatrix(int argc, char **argv) {
    cli_common common;
    char      *pos[1];
    int        n_pos;
    imatrix_opts opts = {.calib_ctx = 512};
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    if (!opts.calib || !opts.out) {
        fprintf(stderr, "shrink imatrix: %s is required\n\n", opts.calib ? "-o OUT" : "--calib");
        cli_usage(&spec, stderr);
        return CLI_USAGE;
    }
    cli_io io[] = {{"IN", pos[0], CLI_IN},
                   {"--tokenizer", common.tokenizer, CLI_IN},
                   {"--calib", opts.calib, CLI_IN},
                   {"-o", opts.out, CLI_OUT}};
    if ((rc = cli_check_io(io, 4)) != CLI_OK) return rc;
    shrink_set_threads(common.threads);
    shrink_imatrix_params p = shrink_imatrix_params_default();
    p.calib_path = opts.calib;
    p.calib_tokens = opts.calib_tokens;
    p.calib_ctx = opts.calib_ctx;
    p.tokenizer_path = common.tokenizer;
    p.comm = cli_mpi_comm();   /* mpirun -np R of a `make MPI=1` build: chunks over the ranks */
    cli_progress prog;
    cli_progress_start(&prog, "calibration tokens", &common);
    if (!p.comm || p.comm->rank == 0) {   /* rank 0 shows its share's progress */
        p.progress = cli_progress_cb;
        p.user = &prog;
    }
    shrink_imatrix_result r;
    shrink_status st = shrink_imatrix(pos[0], opts.out, &p, &r);
    cli_progress_end(&prog);
    if (st != SHRINK_OK) {
        const char *msg = shrink_last_error();
        if (msg && *msg && !strstr(msg, pos[0]) && !strstr(msg, opts.out) &&
            !strstr(msg, opts.calib))
            return cli_fail("%s: %s", pos[0], msg);
        return cli_fail_status(st);
    }
    if (common.json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_key(&j, "input");        cli_json_str(&j, pos[0]);
        cli_json_key(&j, "output");       cli_json_str(&j, opts.out);
        cli_json_key(&j, "calib");        cli_json_str(&j, opts.calib);
        cli_json_key(&j, "n_entries");    cli_json_int(&j, r.n_entries);
        cli_json_key(&j, "n_chunks");     cli_json_int(&j, r.n_chunks);
        cli_json_key(&j, "calib_ctx");    cli_json_int(&j, opts.calib_ctx);
        cli_json_key(&j, "n_tokens");     cli_json_int(&j, r.n_tokens);
        cli_json_key(&j, "text_tokens");  cli_json_int(&j, r.text_tokens);
        if (cli_mpi_ranks() > 1) {
            cli_json_key(&j, "ranks");    cli_json_int(&j, cli_mpi_ranks());
            cli_json_key(&j, "reduce_bytes"); cli_json_int(&j, cli_mpi_bytes_sent());
        }
        cli_json_key(&j, "seconds");      cli_json_num(&j, r.seconds);
        cli_json_key(&j, "peak_rss_bytes"); cli_json_u64(&j, shrink_peak_rss());
        cli_json_end(&j);
    } else {
        printf("%lld entries from %lld chunks of %d tokens (%lld tokens) -> %s\n",
               (long long)r.n_entries, (long long)r.n_chunks, (int)opts.calib_ctx,
               (long long)r.n_tokens, opts.out);
    }
    return CLI_OK;
}

int cmd_imatrix(int argc, char **argv) { return cli_mpi_end(run_imatrix(argc, argv)); }
