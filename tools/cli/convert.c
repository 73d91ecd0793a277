/*
 * convert.c - `shrink convert IN OUT`: any model shrink reads (GGUF, Hugging Face folder,
 * llama2.c .bin) to GGUF, a Hugging Face folder or a llama2.c .bin.
 *
 * The output format is --to, else OUT's extension (.gguf -> gguf, .bin -> llama2c, anything
 * else a Hugging Face folder). --dtype sets the dtype of the weight matrices (default: the
 * input's). The conversion streams (shrink_convert): tensors are read through the input's
 * mapping and written block by block, so peak RSS stays far below the model's size; progress
 * with an ETA goes to stderr. The output appears only when complete (temporary + rename).
 */
#include "cli.h"

#include <stddef.h>
#include <string.h>

typedef struct convert_opts {
    const char *to;
    const char *dtype;
    uint64_t    shard_size;
    bool        head_copy;
    bool        allow_requantize;
} convert_opts;

static const cli_opt convert_rows[] = {
    {"--to", NULL, CLI_OPT_STR, offsetof(convert_opts, to), "FORMAT", 0, 0,
     "gguf, hf or llama2c (default: from OUT: .gguf, .bin, else a HF folder)"},
    {"--dtype", NULL, CLI_OPT_STR, offsetof(convert_opts, dtype), "DTYPE", 0, 0,
     "dtype of the weight matrices (default or `same`: the input's, quantized tensors\n"
     "passed through byte for byte): f32, f16, bf16; GGUF only:\n"
     "llama.cpp's q8_0, q4_0, q4_1, q5_0, q5_1, q2_K ... q6_K, iq4_nl, or shrink's own int8_ch, int8_ch_asym, int8_t, int8_t_asym,\n"
     "int4_g32|64|128[_asym], nf4, nf4_dq, w8a8, w8a8_static (llama.cpp cannot read those;\n"
     "row by row, no calibration; docs/formats.md)"},
    {"--shard-size", NULL, CLI_OPT_U64, offsetof(convert_opts, shard_size), "BYTES", 0, 0,
     "HF output: largest safetensors shard (default 2000000000)"},
    {"--head-copy", NULL, CLI_OPT_FLAG, offsetof(convert_opts, head_copy), NULL, 0, 0,
     "GGUF of a tied GPT-2: also write output.weight, a copy of token_embd, for llama.cpp\n"
     "builds before March 2025 (PR 12456), which refuse the file without it (default: the\n"
     "head is token_embd, written once, as llama.cpp's converter now writes it)"},
    {"--allow-requantize", NULL, CLI_OPT_FLAG, offsetof(convert_opts, allow_requantize), NULL,
     0, 0, "let --dtype change an already quantized tensor's type (or widen it for a HF or\n"
     "llama2.c output); refused by default, as llama-quantize does"},
};

static const cli_spec spec = {
    .name        = "convert",
    .synopsis    = "IN OUT [--to gguf|hf|llama2c] [--dtype f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|\n"
                   "       q2_K|q3_K|q4_K|q5_K|q6_K|iq4_nl|\n"
                   "       int8_ch|int8_ch_asym|int8_t|int8_t_asym|int4_g32|int4_g64|int4_g128|\n"
                   "       int4_g32_asym|int4_g64_asym|int4_g128_asym|nf4|nf4_dq|w8a8|w8a8_static]\n"
                   "       [--shard-size BYTES] [--head-copy] [--allow-requantize]",
    .description = "Converts a model between GGUF, Hugging Face (config.json + safetensors +\n"
                   "tokenizer files) and llama2.c .bin, tensor by tensor without loading the\n"
                   "whole model. Same-dtype conversions are lossless (bit for bit). OUT is\n"
                   "written to a temporary and renamed when complete; it may not be IN. Prints\n"
                   "what was written (tensors per type, bits/weight, fallbacks for rows the\n"
                   "type's block does not divide). The bytes are those of `shrink quantize\n"
                   "--scheme DTYPE --ggml-exact` (quantize's default searches the block scales\n"
                   "of q4_0 q4_1 q5_0 q5_1 int4_* nf4*, writes w8a8*'s lookup-only embedding\n"
                   "int8_ch, and has llama.cpp's per-tensor mixes such as q4_K_M).",
    .opts        = convert_rows,
    .n_opts      = sizeof convert_rows / sizeof convert_rows[0],
    .n_pos_min   = 2,
    .n_pos_max   = 2,
    .model       = true,
};

/* Progress in MiB with an ETA (cli_progress), from shrink_convert's byte counts. */
static void progress_cb(void *user, int64_t done, int64_t total) {
    int64_t mib = 1 << 20;
    cli_progress_update((cli_progress *)user, (done + mib - 1) / mib, (total + mib - 1) / mib);
}

static void print_json(const char *in, const char *out, const shrink_convert_result *r,
                       const cli_written *w) {
    cli_json j;
    cli_json_begin(&j, stdout);
    cli_json_key(&j, "input");          cli_json_str(&j, in);
    cli_json_key(&j, "output");         cli_json_str(&j, out);
    cli_json_key(&j, "format");         cli_json_str(&j, r->format);
    cli_json_key(&j, "dtype");          cli_json_str(&j, shrink_dtype_name(r->dtype));
    cli_json_key(&j, "n_tensors");      cli_json_int(&j, r->n_tensors);
    cli_json_key(&j, "n_params");       cli_json_int(&j, r->n_params);
    cli_json_key(&j, "tensor_bytes");   cli_json_u64(&j, r->tensor_bytes);
    cli_json_key(&j, "seconds");        cli_json_num(&j, r->seconds);
    cli_json_key(&j, "peak_rss_bytes"); cli_json_u64(&j, shrink_peak_rss());
    if (w->n_tensors) {
        cli_json_key(&j, "bits_per_weight"); cli_json_num(&j, cli_written_bits(w));
        cli_written_json(w, &j);
    }
    cli_json_end(&j);
}

static void print_text(const char *in, const char *out, const shrink_convert_result *r,
                       const cli_written *w) {
    char b[32], c[32];
    printf("converted:  %s -> %s (%s, %s)\n", in, out, r->format, shrink_dtype_name(r->dtype));
    printf("parameters: %lld, tensor data %s\n", (long long)r->n_params,
           cli_fmt_bytes(b, sizeof b, r->tensor_bytes));
    printf("time:       %.2f s, peak RSS %s\n", r->seconds,
           cli_fmt_bytes(c, sizeof c, shrink_peak_rss()));
    if (w->n_tensors) cli_written_print(w, stdout);
}

/* What the output file holds, read back (quantize prints the same summary). */
static void written_summary(cli_written *w, const char *out, int dtype) {
    cli_written_init(w, dtype >= 0 ? shrink_dtype_name((shrink_dtype)dtype) : "the input's types",
                     dtype >= 0 ? shrink_dtype_bits((shrink_dtype)dtype) : 0.0);
    if (cli_written_from_file(w, out, dtype) != SHRINK_OK) {
        cli_warn("%s: cannot read the written file back to summarize it: %s", out,
                 shrink_last_error());
        w->n_tensors = 0;
        return;
    }
    cli_written_notice(w, out);
}

int cmd_convert(int argc, char **argv) {
    cli_common common;
    char      *pos[2];
    int        n_pos;
    convert_opts opts = {0};
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    if (common.f32)
        return cli_fail("convert: use --dtype f32 instead of --f32");
    shrink_convert_params p = shrink_convert_params_default();
    if (opts.to && strcmp(opts.to, "gguf") && strcmp(opts.to, "hf") &&
        strcmp(opts.to, "llama2c")) {
        fprintf(stderr, "shrink convert: --to: '%s' is not gguf, hf or llama2c\n\n", opts.to);
        cli_usage(&spec, stderr);
        return CLI_USAGE;
    }
    p.to = opts.to;
    if (opts.dtype && strcmp(opts.dtype, "same") != 0) {
        shrink_dtype d;
        if (shrink_dtype_parse(opts.dtype, &d) != SHRINK_OK) {
            fprintf(stderr, "shrink convert: --dtype: %s\n\n", shrink_last_error());
            cli_usage(&spec, stderr);
            return CLI_USAGE;
        }
        p.dtype = d;
    }
    cli_io io[] = {{"IN", pos[0], CLI_IN},
                   {"--tokenizer", common.tokenizer, CLI_IN},
                   {"OUT", pos[1], cli_out_is_folder(opts.to, pos[1]) ? CLI_OUT_DIR : CLI_OUT}};
    if ((rc = cli_check_io(io, 3)) != CLI_OK) return rc;
    p.shard_bytes = opts.shard_size;
    p.tokenizer_path = common.tokenizer;
    p.allow_nonfinite = common.allow_nonfinite;
    p.head_copy = opts.head_copy;
    p.allow_requantize = opts.allow_requantize;
    shrink_set_threads(common.threads);

    cli_progress prog;
    cli_progress_start(&prog, "convert MiB", &common);
    p.progress = progress_cb;
    p.user = &prog;
    shrink_convert_result r;
    shrink_status st = shrink_convert(pos[0], pos[1], &p, &r);
    cli_progress_end(&prog);
    if (st != SHRINK_OK) return cli_fail_status(st);
    cli_written w;
    written_summary(&w, pos[1], p.dtype);
    if (common.json) print_json(pos[0], pos[1], &r, &w);
    else print_text(pos[0], pos[1], &r, &w);
    return CLI_OK;
}
