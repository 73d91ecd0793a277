/*
 * quantize.c - `shrink quantize IN OUT.gguf --scheme NAME`: any model shrink reads to a
 * quantized GGUF file, through shrink_quantize (the library does the work; this file parses
 * options and prints).
 *
 * stdout: the footprint line ("f32 1.01 MiB -> q8_0 304.66 KiB, 3.3x smaller, 8.50 bits/weight"),
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
    bool        output_q6_K;
    bool        list;       /* handled before parsing (scheme_list_cmd): here for --help */
    /* --method gptq */
    const char *method;
    double      damp;
    bool        act_order;
    int32_t     block;
    bool        gptq_head;
    double      smooth;     /* --smooth A; < 0: not given */
    bool        awq_no_clip;
} quantize_opts;

static const cli_opt quantize_rows[] = {
    {"--scheme", "-s", CLI_OPT_STR, offsetof(quantize_opts, scheme), "NAME", 0, 0,
     "one of the schemes below (shrink quantize --list;\n"
     "                         docs/quantization.md)"},
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
    {"--output-q6k", NULL, CLI_OPT_FLAG, offsetof(quantize_opts, output_q6_K), NULL, 0, 0,
     "q4_0..q5_K: the output matrix in q6_K, as llama-quantize\n"
     "                         without --pure (default: the scheme's type)"},
    {"--list", NULL, CLI_OPT_FLAG, offsetof(quantize_opts, list), NULL, 0, 0,
     "print the schemes (bits/weight, use, measured KL) and exit"},
    {"--method", NULL, CLI_OPT_STR, offsetof(quantize_opts, method), "NAME", 0, 0,
     "rtn (default): round to nearest; gptq: GPTQ against the\n"
     "                         Hessian of each layer's inputs on --calib; awq:\n"
     "                         activation-aware scales searched on --calib, folded\n"
     "                         into the norms"},
    {"--smooth", NULL, CLI_OPT_FLOAT, offsetof(quantize_opts, smooth), "A", 0, 1,
     "w8a8, w8a8_static: SmoothQuant with migration strength A\n"
     "                         in [0, 1] (0.5 is the usual) on --calib"},
    {"--awq-no-clip", NULL, CLI_OPT_FLAG, offsetof(quantize_opts, awq_no_clip), NULL, 0, 0,
     "--method awq without the weight clipping search"},
    {"--damp", NULL, CLI_OPT_FLOAT, offsetof(quantize_opts, damp), "F", 1e-12, 1e6,
     "gptq: damping, fraction of mean(diag H) (default 0.01)"},
    {"--act-order", NULL, CLI_OPT_FLAG, offsetof(quantize_opts, act_order), NULL, 0, 0,
     "gptq: columns by descending Hessian diagonal (static groups)"},
    {"--block", NULL, CLI_OPT_INT, offsetof(quantize_opts, block), "N", 1, 1 << 20,
     "gptq: columns per lazy update block (default 128)"},
    {"--gptq-head", NULL, CLI_OPT_FLAG, offsetof(quantize_opts, gptq_head), NULL, 0, 0,
     "gptq: the output head too (the token embedding when tied)"},
};

static void print_scheme_table(FILE *f);

static const cli_spec spec = {
    .name        = "quantize",
    .synopsis    = "IN OUT.gguf --scheme NAME [--keep GLOBS [--keep-dtype DTYPE]]\n"
                   "       (or llama-quantize's order: IN OUT.gguf NAME)\n"
                   "       [--calib FILE [--calib-tokens N]] [--ggml-exact] [--verbose]\n"
                   "       [--method gptq --calib FILE [--calib-ctx C] [--damp F] [--act-order]\n"
                   "        [--block B]]\n"
                   "       [--method awq --calib FILE] [--smooth A --calib FILE]\n"
                   "       shrink quantize --list [--json]",
    .description = "Quantizes a model (GGUF, Hugging Face folder or llama2.c .bin; a quantized\n"
                   "GGUF is dequantized first) into a GGUF file, tensor by tensor. The mixes\n"
                   "(q4_K_M, q5_K_M, q4_K_S, q5_K_S, q3_K_S/M/L, q2_K_M = llama-quantize's Q2_K)\n"
                   "choose a type per tensor with llama.cpp's rules; the other schemes put\n"
                   "every matrix in one type. Norms and biases stay f32. Rows a type's block does\n"
                   "not divide fall back per tensor (docs/quantization.md). Prints what was\n"
                   "written (tensors per type, bits/weight, fallbacks and why) and the footprint\n"
                   "(file sizes in KiB/MiB/GiB, powers of 1024). OUT appears only when complete.\n"
                   "A type name gives the same bytes as `shrink convert --dtype` of that type,\n"
                   "except that quantize searches the block scales of q4_0 q4_1 q5_0 q5_1\n"
                   "int4_* nf4* (and writes w8a8's lookup-only embedding int8_ch); --ggml-exact\n"
                   "makes them equal. --list: the schemes, what each is for, its bits/weight and\n"
                   "loss. llama-quantize's order IN OUT.gguf TYPE works too.",
    .opts        = quantize_rows,
    .n_opts      = sizeof quantize_rows / sizeof quantize_rows[0],
    .n_pos_min   = 2,
    .n_pos_max   = 3,   /* IN OUT [TYPE]: positional_scheme */
    .model       = true,
    .epilog      = print_scheme_table,
};

/* llama-quantize's order, `shrink quantize IN OUT TYPE`: a third positional argument is the
 * scheme (the same as --scheme TYPE; both, if different, are a usage error). */
static int positional_scheme(char **pos, int *n_pos, quantize_opts *opts) {
    if (*n_pos < 3) return CLI_OK;
    const char *name = shrink_quantize_scheme_for_llama_cpp(pos[2]);
    if (name) pos[2] = (char *)name;
    if (opts->scheme && strcasecmp(opts->scheme, pos[2]) != 0) {
        fprintf(stderr, "shrink quantize: the scheme is given twice: --scheme %s and '%s' after "
                "OUT\n", opts->scheme, pos[2]);
        return CLI_USAGE;
    }
    opts->scheme = pos[2];
    *n_pos = 2;
    return CLI_OK;
}

static void shape_str(char *buf, size_t cap, const shrink_quantize_tensor *t) {
    if (t->n_dims == 1) snprintf(buf, cap, "%lld", (long long)t->shape[0]);
    else snprintf(buf, cap, "%lld x %lld", (long long)t->shape[0], (long long)t->shape[1]);
}

static void print_json(const char *in, const char *out, const shrink_quantize_result *r,
                       bool verbose, const cli_written *w) {
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
    cli_json_key(&j, "fold_inputs");     cli_json_int(&j, r->fold_inputs);
    cli_json_key(&j, "awq_mean_alpha");  cli_json_num(&j, r->awq_mean_alpha);
    cli_json_key(&j, "awq_clipped");     cli_json_int(&j, r->awq_clipped);
    cli_json_key(&j, "gptq_matrices");   cli_json_int(&j, r->gptq_matrices);
    if (cli_mpi_ranks() > 1) {
        cli_json_key(&j, "ranks");       cli_json_int(&j, cli_mpi_ranks());
        cli_json_key(&j, "reduce_bytes"); cli_json_int(&j, cli_mpi_bytes_sent());
    }
    cli_json_key(&j, "seconds");         cli_json_num(&j, r->seconds);
    cli_json_key(&j, "peak_rss_bytes");  cli_json_u64(&j, shrink_peak_rss());
    cli_written_json(w, &j);
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
            cli_json_key(&j, "wanted");   cli_json_str(&j, shrink_dtype_name(t->wanted));
            cli_json_key(&j, "kept");     cli_json_bool(&j, t->kept);
            cli_json_obj_end(&j);
        }
        cli_json_arr_end(&j);
    }
    cli_json_end(&j);
}

/* --verbose: one line per tensor as it is written (library's tensor_done), as llama-quantize
 * prints them; the header before the first. */
static void print_tensor_row(void *user, const shrink_quantize_tensor *t, int64_t i, int64_t n) {
    (void)user;
    (void)n;
    if (i == 0)
        printf("%-28s %-14s %-10s %12s %10s\n", "tensor", "shape", "type", "bytes", "rel_rms");
    char shape[48], why[96] = "";
    shape_str(shape, sizeof shape, t);
    if (t->fallback)
        snprintf(why, sizeof why, "  (fallback from %s: rows of %lld, blocks of %lld)",
                 shrink_dtype_name(t->wanted), (long long)t->shape[1],
                 (long long)shrink_dtype_block_size(t->wanted));
    printf("%-28s %-14s %-10s %12llu %10.3e%s%s\n", t->name, shape, shrink_dtype_name(t->dtype),
           (unsigned long long)t->bytes, t->rel_rms, why, t->kept ? "  (kept)" : "");
    fflush(stdout);
}

static void print_text(const shrink_quantize_result *r, bool verbose, const cli_written *w) {
    if (verbose && r->tensors) printf("\n"); /* after the per-tensor lines */
    cli_written_print(w, stdout);
    double ratio = r->out_file_bytes ? (double)r->in_file_bytes / (double)r->out_file_bytes : 0;
    bool larger = ratio > 0 && ratio < 1;
    char ib[32], ob[32];
    printf("%s %s -> %s %s, %.1fx %s, %.2f bits/weight\n", r->in_dtype,
           cli_fmt_bytes(ib, sizeof ib, r->in_file_bytes), r->scheme,
           cli_fmt_bytes(ob, sizeof ob, r->out_file_bytes),
           larger ? 1 / ratio : ratio, larger ? "larger" : "smaller", r->bits_per_weight);
}

/* --imatrix, --calib for schemes other than w8a8_static (the importance matrix computed on the
 * fly), --calib-ctx, --allow-requantize. */
static void imatrix_params(const quantize_opts *o, shrink_quantize_params *p) {
    bool w8a8s = strncasecmp(o->scheme, "w8a8_static", 11) == 0 ||
                 strncasecmp(o->scheme, "w8a8-static", 11) == 0;
    bool calibrated = (o->method && strcasecmp(o->method, "rtn") != 0) || o->smooth >= 0;
    p->imatrix_path = o->imatrix;
    if (o->calib && !w8a8s && !o->imatrix && !calibrated) p->imatrix_calib = o->calib;
    if (o->calib && !w8a8s && o->imatrix)
        cli_warn("--calib ignored: the importance matrix comes from --imatrix %s", o->imatrix);
    p->imatrix_ctx = o->calib_ctx;
    p->allow_requantize = o->allow_requantize;
    p->output_q6_K = o->output_q6_K;
}

/* ==== choosing a scheme: --list and the table of --help ================================== */

static void print_scheme_table(FILE *f) {
    shrink_quantize_scheme_info si;
    const char *refs[4] = {NULL};
    int n_refs = 0;
    fprintf(f, "\nschemes (bits: the whole file's bits/weight on the reference model; KL: mean\n"
               "KL divergence of its next-token distributions from the original's, lower is\n"
               "better):\n"
               "  %-15s %6s %9s  %-15s %s\n", "scheme", "bits", "KL", "llama-quantize", "use");
    for (int32_t i = 0; shrink_quantize_scheme_get(i, &si) == SHRINK_OK; i++) {
        char bits[16] = "-", kl[16] = "-";
        if (si.ref_bits_per_weight > 0) snprintf(bits, sizeof bits, "%.2f", si.ref_bits_per_weight);
        else snprintf(bits, sizeof bits, "~%.2f", shrink_dtype_bits(si.dtype));
        if (si.ref_kl >= 0) snprintf(kl, sizeof kl, "%.6f", si.ref_kl);
        fprintf(f, "  %-15s %6s %9s  %-15s %s\n", si.name, bits, kl,
                si.llama_cpp ? si.llama_cpp : "(shrink only)", si.use);
        int seen = 0;
        for (int k = 0; k < n_refs; k++) seen |= si.ref && !strcmp(refs[k], si.ref);
        if (si.ref && !seen && n_refs < 4) refs[n_refs++] = si.ref;
    }
    for (int k = 0; k < n_refs; k++) fprintf(f, "%s %s\n", k ? "          " : "reference:", refs[k]);
    fprintf(f, "The reference has 14.5M weights, 57%% of them in its 32000 x 256 embedding, which\n"
               "the mixes store in q6_K: their bits are far above what they give on large models\n"
               "(q4_K_M ~4.9 on 7B). ~: the type's own bits, not measured. docs/quantization.md\n"
               "says which scheme suits which need.\n");
}

static int print_scheme_list_json(void) {
    cli_json j;
    cli_json_begin(&j, stdout);
    cli_json_key(&j, "schemes");
    cli_json_arr_begin(&j);
    shrink_quantize_scheme_info si;
    for (int32_t i = 0; shrink_quantize_scheme_get(i, &si) == SHRINK_OK; i++) {
        cli_json_obj_begin(&j);
        cli_json_key(&j, "name");      cli_json_str(&j, si.name);
        cli_json_key(&j, "dtype");     cli_json_str(&j, shrink_dtype_name(si.dtype));
        cli_json_key(&j, "mix");       cli_json_bool(&j, si.mix);
        cli_json_key(&j, "llama_cpp");
        if (si.llama_cpp) cli_json_str(&j, si.llama_cpp);
        else cli_json_null(&j);
        cli_json_key(&j, "use");       cli_json_str(&j, si.use);
        cli_json_key(&j, "dtype_bits_per_weight"); cli_json_num(&j, shrink_dtype_bits(si.dtype));
        cli_json_key(&j, "bits_per_weight");
        if (si.ref_bits_per_weight > 0) cli_json_num(&j, si.ref_bits_per_weight);
        else cli_json_null(&j);
        cli_json_key(&j, "kl_mean");
        if (si.ref_kl >= 0) cli_json_num(&j, si.ref_kl);
        else cli_json_null(&j);
        cli_json_key(&j, "reference");
        if (si.ref) cli_json_str(&j, si.ref);
        else cli_json_null(&j);
        cli_json_obj_end(&j);
    }
    cli_json_arr_end(&j);
    cli_json_end(&j);
    return CLI_OK;
}

/* `shrink quantize --list [--json]` (before the usual parsing: it takes no files) */
static int scheme_list_cmd(int argc, char **argv, bool *done) {
    bool list = false, json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--list")) list = true;
        else if (!strcmp(argv[i], "--json")) json = true;
    }
    *done = list;
    if (!list) return CLI_OK;
    if (json) return print_scheme_list_json();
    printf("usage: shrink quantize IN OUT.gguf --scheme NAME\n");
    print_scheme_table(stdout);
    return CLI_OK;
}

/* ==== what was written ==================================================================== */

/* The summary of what r says was written (r->tensors: tensor_stats is always on). */
static void written_of_result(cli_written *w, const shrink_quantize_result *r) {
    double bits = 0.0;
    const char *base = NULL;
    shrink_quantize_scheme_info si;
    for (int32_t i = 0; shrink_quantize_scheme_get(i, &si) == SHRINK_OK; i++)
        if (!strcmp(si.name, r->scheme)) {
            bits = shrink_dtype_bits(si.dtype);
            base = shrink_dtype_name(si.dtype);
        }
    cli_written_init(w, r->scheme, bits);
    w->base = base;
    for (int64_t i = 0; r->tensors && i < r->n_tensors; i++) {
        const shrink_quantize_tensor *t = &r->tensors[i];
        int64_t n = t->n_dims == 1 ? t->shape[0] : t->shape[0] * t->shape[1];
        cli_written_add(w, t->dtype, t->wanted, t->n_dims == 1 ? t->shape[0] : t->shape[1],
                        t->bytes, n);
    }
}

static int run_quantize(int argc, char **argv) {
    cli_common common;
    char      *pos[3];
    int        n_pos;
    quantize_opts opts = {.calib_tokens = 4096, .smooth = -1.0};
    bool listed;
    int rc = scheme_list_cmd(argc, argv, &listed);
    if (listed) return rc;
    rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    if ((rc = positional_scheme(pos, &n_pos, &opts)) != CLI_OK) return rc;
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
    p.method = opts.method;
    p.calib_ctx = opts.calib_ctx;
    if (opts.damp > 0) p.gptq_damp = opts.damp;
    p.gptq_act_order = opts.act_order;
    p.gptq_head = opts.gptq_head;
    if (opts.block > 0) p.gptq_block = opts.block;
    p.calib_tokens = opts.calib_tokens;
    p.smooth = opts.smooth >= 0;
    if (p.smooth) p.smooth_alpha = opts.smooth;
    p.awq_no_clip = opts.awq_no_clip;
    p.tokenizer_path = common.tokenizer;
    p.tensor_stats = true; /* the per-type summary; the table only with --verbose */
    if (opts.verbose && !common.json) p.tensor_done = print_tensor_row;
    shrink_set_threads(common.threads);

    cli_phase_progress prog = {.phase = -1, .last = -1, .calib_label = "calibration tokens",
                               .write_label = "quantize MiB", .common = &common};
    if (opts.method && !strcasecmp(opts.method, "gptq")) prog.calib_label = "GPTQ layers";
    /* mpirun -np R of a `make MPI=1` build, --method gptq: the windows over the ranks */
    if (opts.method && !strcasecmp(opts.method, "gptq")) p.comm = cli_mpi_comm();
    if (!p.comm || p.comm->rank == 0) {   /* rank 0 shows its share's progress */
        p.progress = cli_phase_progress_cb;
        p.user = &prog;
    }
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
    if (p.comm && p.comm->rank > 0) { /* rank 0 writes and reports */
        shrink_quantize_result_free(&r);
        return CLI_OK;
    }
    if (r.gptq_damp_raised)
        cli_warn("GPTQ: the Hessian of %d layer input(s) was not positive definite with damping "
                 "%g; the damping was raised (to %g at most): give more calibration tokens",
                 r.gptq_damp_raised, p.gptq_damp, r.gptq_max_damp);
    if (r.requantized)
        cli_warn("%s holds quantized tensors: they were dequantized and quantized again, which "
                 "loses more than quantizing the original weights", pos[0]);
    cli_written w;
    written_of_result(&w, &r);
    cli_written_notice(&w, pos[1]);
    if (common.json) print_json(pos[0], pos[1], &r, opts.verbose, &w);
    else print_text(&r, opts.verbose, &w);
    shrink_quantize_result_free(&r);
    return CLI_OK;
}

int cmd_quantize(int argc, char **argv) { return cli_mpi_end(run_quantize(argc, argv)); }
