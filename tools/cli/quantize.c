/*
 * quantize.c - `shrink quantize IN OUT.gguf --scheme NAME`: any model shrink reads to a
 * quantized GGUF file, through shrink_quantize (the library does the work; this file parses
 * options and prints).
 *
 * stdout: the footprint line ("f32 1.06 MB -> q8_0 0.32 MB, 3.3x smaller, 8.50 bits/weight"),
 * with --verbose a per-tensor table (name, shape, type, bytes, relative RMS error of the round
 * trip); or with --json one object (per-tensor entries with --verbose). stderr: progress with
 * an ETA, warnings (re-quantizing a quantized input, fallback types).
 */
#include "cli.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct quantize_opts {
    const char *scheme;
    const char *keep;
    const char *keep_dtype;
    const char *calib;
    int32_t     calib_tokens;
    bool        verbose;
    bool        ggml_exact;
    const char *imatrix;
    int32_t     calib_ctx;
    bool        allow_requantize;
    bool        pure;
} quantize_opts;

static const cli_opt quantize_rows[] = {
    {"--scheme", "-s", CLI_OPT_STR, offsetof(quantize_opts, scheme), "NAME", 0, 0,
     "q8_0 q4_0 q4_1 q5_0 q5_1 q4_K q5_K q6_K q4_K_M q5_K_M int8_ch\n"
     "                         int8_ch_asym int8_t int8_t_asym int4_g32|g64|g128[_asym] nf4\n"
     "                         nf4_dq w8a8 w8a8_static (docs/quantization.md)"},
    {"--keep", NULL, CLI_OPT_STR, offsetof(quantize_opts, keep), "GLOBS", 0, 0,
     "keep tensors whose GGUF name matches a glob, e.g.\n"
     "                         'output.weight,*.attn_v.*', in --keep-dtype"},
    {"--keep-dtype", NULL, CLI_OPT_STR, offsetof(quantize_opts, keep_dtype), "DTYPE", 0, 0,
     "dtype of the kept tensors (default f16)"},
    {"--calib", NULL, CLI_OPT_STR, offsetof(quantize_opts, calib), "FILE", 0, 0,
     "UTF-8 text: w8a8_static measures activation scales on it,\n"
     "                         other schemes the importance matrix (as --imatrix)"},
    {"--calib-tokens", NULL, CLI_OPT_INT, offsetof(quantize_opts, calib_tokens), "N", 1,
     100000000, "tokens of the calibration text used (default 4096)"},
    {"--ggml-exact", NULL, CLI_OPT_FLAG, offsetof(quantize_opts, ggml_exact), NULL, 0, 0,
     "round-to-nearest reference quantizers: llama-quantize's\n"
     "                         bytes for llama.cpp types (default: q4_0 q4_1\n"
     "                         q5_0 q5_1 int4_* nf4* search each block's scale)"},
    {"--verbose", "-v", CLI_OPT_FLAG, offsetof(quantize_opts, verbose), NULL, 0, 0,
     "a per-tensor table: shape, type, bytes, relative RMS error"},
    {"--imatrix", NULL, CLI_OPT_STR, offsetof(quantize_opts, imatrix), "FILE", 0, 0,
     "importance matrix (shrink imatrix, llama-imatrix: .dat or\n"
     "                         GGUF) weighting every block's scale search"},
    {"--calib-ctx", NULL, CLI_OPT_INT, offsetof(quantize_opts, calib_ctx), "N", 1, 1000000,
     "other schemes: --calib computes the importance matrix\n"
     "                         in chunks of N tokens (default 512)"},
    {"--allow-requantize", NULL, CLI_OPT_FLAG, offsetof(quantize_opts, allow_requantize), NULL,
     0, 0, "quantize an input that is already quantized (rounds twice)"},
    {"--pure", NULL, CLI_OPT_FLAG, offsetof(quantize_opts, pure), NULL, 0, 0,
     "q4_0..q5_K: the output matrix in the scheme's type too\n"
     "                         (default q6_K there, as llama-quantize)"},
};

static const cli_spec spec = {
    .name        = "quantize",
    .synopsis    = "IN OUT.gguf --scheme NAME [--keep GLOBS [--keep-dtype DTYPE]]\n"
                   "       [--calib FILE [--calib-tokens N]] [--ggml-exact] [--verbose]",
    .description = "Quantizes a model (GGUF, Hugging Face folder or llama2.c .bin; a quantized\n"
                   "GGUF is dequantized first) into a GGUF file, tensor by tensor. q4_K_M and\n"
                   "q5_K_M choose a type per tensor with llama.cpp's rules; the other schemes put\n"
                   "every matrix in one type. Norms and biases stay f32. Rows a type's block does\n"
                   "not divide fall back per tensor (docs/quantization.md). Prints the footprint\n"
                   "(file sizes, 1 MB = 10^6 bytes). OUT appears only when complete.",
    .opts        = quantize_rows,
    .n_opts      = sizeof quantize_rows / sizeof quantize_rows[0],
    .n_pos_min   = 2,
    .n_pos_max   = 2,
    .model       = true,
};

static void shape_str(char *buf, size_t cap, const shrink_quantize_tensor *t) {
    if (t->n_dims == 1) snprintf(buf, cap, "%lld", (long long)t->shape[0]);
    else snprintf(buf, cap, "%lld x %lld", (long long)t->shape[0], (long long)t->shape[1]);
}

static void print_json(const char *in, const char *out, const shrink_quantize_result *r,
                       bool verbose) {
    cli_json j;
    cli_json_begin(&j, stdout);
    cli_json_key(&j, "input");           cli_json_str(&j, in);
    cli_json_key(&j, "output");          cli_json_str(&j, out);
    cli_json_key(&j, "scheme");          cli_json_str(&j, r->scheme);
    cli_json_key(&j, "in_dtype");        cli_json_str(&j, r->in_dtype);
    cli_json_key(&j, "in_file_bytes");   cli_json_u64(&j, r->in_file_bytes);
    cli_json_key(&j, "out_file_bytes");  cli_json_u64(&j, r->out_file_bytes);
    cli_json_key(&j, "tensor_bytes");    cli_json_u64(&j, r->tensor_bytes);
    cli_json_key(&j, "n_params");        cli_json_int(&j, r->n_params);
    cli_json_key(&j, "bits_per_weight"); cli_json_num(&j, r->bits_per_weight);
    cli_json_key(&j, "ratio");
    cli_json_num(&j, r->out_file_bytes ? (double)r->in_file_bytes / (double)r->out_file_bytes
                                       : 0.0);
    cli_json_key(&j, "n_tensors");       cli_json_int(&j, r->n_tensors);
    cli_json_key(&j, "n_fallback");      cli_json_int(&j, r->n_fallback);
    cli_json_key(&j, "requantized");     cli_json_bool(&j, r->requantized);
    cli_json_key(&j, "calib_tokens");    cli_json_int(&j, r->calib_tokens);
    cli_json_key(&j, "seconds");         cli_json_num(&j, r->seconds);
    cli_json_key(&j, "peak_rss_bytes");  cli_json_u64(&j, shrink_peak_rss());
    if (verbose && r->tensors) {
        cli_json_key(&j, "tensors");
        cli_json_arr_begin(&j);
        for (int64_t i = 0; i < r->n_tensors; i++) {
            const shrink_quantize_tensor *t = &r->tensors[i];
            cli_json_obj_begin(&j);
            cli_json_key(&j, "name");  cli_json_str(&j, t->name);
            cli_json_key(&j, "shape");
            cli_json_arr_begin(&j);
            cli_json_int(&j, t->shape[0]);
            if (t->n_dims == 2) cli_json_int(&j, t->shape[1]);
            cli_json_arr_end(&j);
            cli_json_key(&j, "dtype");    cli_json_str(&j, shrink_dtype_name(t->dtype));
            cli_json_key(&j, "bytes");    cli_json_u64(&j, t->bytes);
            cli_json_key(&j, "rel_rms");  cli_json_num(&j, t->rel_rms);
            cli_json_key(&j, "fallback"); cli_json_bool(&j, t->fallback);
            cli_json_key(&j, "kept");     cli_json_bool(&j, t->kept);
            cli_json_obj_end(&j);
        }
        cli_json_arr_end(&j);
    }
    cli_json_end(&j);
}

static void print_text(const shrink_quantize_result *r, bool verbose) {
    if (verbose && r->tensors) {
        printf("%-28s %-14s %-10s %12s %10s\n", "tensor", "shape", "type", "bytes", "rel_rms");
        for (int64_t i = 0; i < r->n_tensors; i++) {
            const shrink_quantize_tensor *t = &r->tensors[i];
            char shape[48];
            shape_str(shape, sizeof shape, t);
            printf("%-28s %-14s %-10s %12llu %10.3e%s%s\n", t->name, shape,
                   shrink_dtype_name(t->dtype), (unsigned long long)t->bytes, t->rel_rms,
                   t->fallback ? "  (fallback)" : "", t->kept ? "  (kept)" : "");
        }
        printf("\n");
    }
    double ratio = r->out_file_bytes ? (double)r->in_file_bytes / (double)r->out_file_bytes : 0;
    bool larger = ratio > 0 && ratio < 1;
    printf("%s %.2f MB -> %s %.2f MB, %.1fx %s, %.2f bits/weight\n", r->in_dtype,
           (double)r->in_file_bytes / 1e6, r->scheme, (double)r->out_file_bytes / 1e6,
           larger ? 1 / ratio : ratio, larger ? "larger" : "smaller", r->bits_per_weight);
}

/* --imatrix, --calib for schemes other than w8a8_static (the importance matrix computed on the
 * fly), --calib-ctx, --allow-requantize. */
static void imatrix_params(const quantize_opts *o, shrink_quantize_params *p) {
    bool w8a8s = strncasecmp(o->scheme, "w8a8_static", 11) == 0 ||
                 strncasecmp(o->scheme, "w8a8-static", 11) == 0;
    p->imatrix_path = o->imatrix;
    if (o->calib && !w8a8s && !o->imatrix) p->imatrix_calib = o->calib;
    if (o->calib && !w8a8s && o->imatrix)
        cli_warn("--calib ignored: the importance matrix comes from --imatrix %s", o->imatrix);
    p->imatrix_ctx = o->calib_ctx;
    p->allow_requantize = o->allow_requantize;
    p->pure = o->pure;
}

int cmd_quantize(int argc, char **argv) {
    cli_common common;
    char      *pos[2];
    int        n_pos;
    quantize_opts opts = {.calib_tokens = 4096};
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    if (common.f32) return cli_fail("quantize: --f32 does not apply (weights are read as f32)");
    if (!opts.scheme) {
        fprintf(stderr, "shrink quantize: --scheme is required\n\n");
        cli_usage(&spec, stderr);
        return CLI_USAGE;
    }
    cli_io io[] = {{"IN", pos[0], CLI_IN},
                   {"--tokenizer", common.tokenizer, CLI_IN},
                   {"--calib", opts.calib, CLI_IN},
                   {"--imatrix", opts.imatrix, CLI_IN},
                   {"OUT", pos[1], CLI_OUT}};
    if ((rc = cli_check_io(io, 5)) != CLI_OK) return rc;
    shrink_quantize_params p = shrink_quantize_params_default();
    p.scheme = opts.scheme;
    p.keep = opts.keep;
    p.ggml_exact = opts.ggml_exact;
    if (opts.keep_dtype) {
        shrink_dtype d;
        if (shrink_dtype_parse(opts.keep_dtype, &d) != SHRINK_OK) {
            fprintf(stderr, "shrink quantize: --keep-dtype: %s\n\n", shrink_last_error());
            cli_usage(&spec, stderr);
            return CLI_USAGE;
        }
        p.keep_dtype = d;
    }
    p.calib_path = opts.calib;
    imatrix_params(&opts, &p);
    p.calib_tokens = opts.calib_tokens;
    p.tokenizer_path = common.tokenizer;
    p.tensor_stats = opts.verbose;
    shrink_set_threads(common.threads);

    cli_phase_progress prog = {.phase = -1, .last = -1, .calib_label = "calibration tokens",
                               .write_label = "quantize MiB", .common = &common};
    p.progress = cli_phase_progress_cb;
    p.user = &prog;
    shrink_quantize_result r;
    shrink_status st = shrink_quantize(pos[0], pos[1], &p, &r);
    cli_phase_progress_end(&prog);
    if (st != SHRINK_OK) {
        if (st == SHRINK_ERR_ARG && strstr(shrink_last_error(), "unknown scheme")) {
            fprintf(stderr, "shrink quantize: %s\n", shrink_last_error());
            return CLI_USAGE;
        }
        const char *msg = shrink_last_error();
        if (msg && *msg && !strstr(msg, pos[0]) && !strstr(msg, pos[1]) &&
            !(opts.calib && strstr(msg, opts.calib)) &&
            !(opts.imatrix && strstr(msg, opts.imatrix)))
            return cli_fail("%s: %s", pos[0], msg);   /* a tensor of IN */
        return cli_fail_status(st);
    }
    if (r.requantized)
        cli_warn("%s holds quantized tensors: they were dequantized and quantized again, which "
                 "loses more than quantizing the original weights", pos[0]);
    if (r.n_fallback)
        cli_warn("%lld tensor(s) have rows the %s block does not divide and use a fallback type "
                 "(--verbose lists them)", (long long)r.n_fallback, r.scheme);
    if (common.json) print_json(pos[0], pos[1], &r, opts.verbose);
    else print_text(&r, opts.verbose);
    shrink_quantize_result_free(&r);
    return CLI_OK;
}
