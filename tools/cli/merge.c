/*
 * merge.c - `shrink merge BASE --lora FILE[:SCALE] ... -o OUT [--dtype D] [--to FORMAT]`:
 * W + scale * (alpha / r) * B A of each adapter (PEFT folder or llama.cpp GGUF LoRA) merged
 * into the base and written as GGUF, a Hugging Face folder or llama2.c (shrink_merge). A
 * quantized base needs --dtype (the merged weights are not what was quantized).
 */
#include "cli.h"

#include <stddef.h>
#include <string.h>

typedef struct merge_opts {
    const char *out;
    const char *to;
    const char *dtype;
    bool        keep_sparsity;
} merge_opts;

static const cli_opt merge_rows[] = {
    {"--output", "-o", CLI_OPT_STR, offsetof(merge_opts, out), "OUT", 0, 0,
     "the merged model: .gguf, .bin (llama2.c) or a Hugging Face folder (required)"},
    {"--to", NULL, CLI_OPT_STR, offsetof(merge_opts, to), "FORMAT", 0, 0,
     "gguf, hf or llama2c (default: from OUT)"},
    {"--dtype", NULL, CLI_OPT_STR, offsetof(merge_opts, dtype), "DTYPE", 0, 0,
     "dtype of the weight matrices (default: the base's; required for a quantized base):\n"
     "f32, f16, bf16, or a GGUF type as in `shrink convert --dtype` (q8_0, ...)"},
    {"--keep-sparsity", NULL, CLI_OPT_FLAG, offsetof(merge_opts, keep_sparsity), NULL, 0, 0,
     "the base's exact zeros stay zero (a pruned base; default: B A fills them)"},
};

static const cli_spec spec = {
    .name        = "merge",
    .synopsis    = "BASE --lora ADAPTER[:SCALE] [--lora ...] -o OUT [--dtype D] [--to FORMAT]",
    .description = "Merges LoRA adapters (PEFT folders or llama.cpp GGUF LoRA adapters) into the\n"
                   "base model: W' = W + SCALE * alpha/r * B A for every adapted projection,\n"
                   "streamed tensor by tensor. OUT is written to a temporary and renamed when\n"
                   "complete; on any error nothing is written.",
    .opts        = merge_rows,
    .n_opts      = sizeof merge_rows / sizeof merge_rows[0],
    .n_pos_min   = 1,
    .n_pos_max   = 1,
    .model       = true,
    .lora        = true,
};

static void progress_cb(void *user, int64_t done, int64_t total) {
    int64_t mib = 1 << 20;
    cli_progress_update((cli_progress *)user, (done + mib - 1) / mib, (total + mib - 1) / mib);
}

static int usage_error(const char *msg) {
    fprintf(stderr, "shrink merge: %s\n\n", msg);
    cli_usage(&spec, stderr);
    return CLI_USAGE;
}

int cmd_merge(int argc, char **argv) {
    cli_common common;
    char      *pos[1];
    int        n_pos;
    merge_opts opts = {0};
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    if (common.f32) return usage_error("use --dtype f32 instead of --f32");
    if (!opts.out) return usage_error("-o OUT is required");
    if (common.lora.n < 1) return usage_error("give at least one --lora ADAPTER[:SCALE]");
    if (opts.to && strcmp(opts.to, "gguf") && strcmp(opts.to, "hf") && strcmp(opts.to, "llama2c"))
        return usage_error("--to: not gguf, hf or llama2c");
    shrink_merge_params p = shrink_merge_params_default();
    p.to = opts.to;
    if (opts.dtype) {
        shrink_dtype d;
        if (shrink_dtype_parse(opts.dtype, &d) != SHRINK_OK) {
            fprintf(stderr, "shrink merge: --dtype: %s\n\n", shrink_last_error());
            cli_usage(&spec, stderr);
            return CLI_USAGE;
        }
        p.dtype = d;
    }
    static char files[CLI_LIST_MAX][4096];
    const char *paths[CLI_LIST_MAX];
    double      scales[CLI_LIST_MAX];
    cli_io io[CLI_LIST_MAX + 3];
    int n_io = 0;
    io[n_io++] = (cli_io){"BASE", pos[0], CLI_IN};
    io[n_io++] = (cli_io){"--tokenizer", common.tokenizer, CLI_IN};
    for (int i = 0; i < common.lora.n; i++) {
        if (cli_split_scale(common.lora.v[i], files[i], sizeof files[i], &scales[i]) != CLI_OK)
            return CLI_ERR;
        paths[i] = files[i];
        io[n_io++] = (cli_io){"--lora", files[i], CLI_IN};
    }
    io[n_io++] = (cli_io){"-o", opts.out,
                          cli_out_is_folder(opts.to, opts.out) ? CLI_OUT_DIR : CLI_OUT};
    if ((rc = cli_check_io(io, n_io)) != CLI_OK) return rc;
    p.adapters = paths;
    p.scales = scales;
    p.n_adapters = common.lora.n;
    p.keep_sparsity = opts.keep_sparsity;
    p.tokenizer_path = common.tokenizer;
    shrink_set_threads(common.threads);

    cli_progress prog;
    cli_progress_start(&prog, "merge MiB", &common);
    p.progress = progress_cb;
    p.user = &prog;
    shrink_merge_result r;
    shrink_status st = shrink_merge(pos[0], opts.out, &p, &r);
    cli_progress_end(&prog);
    if (st != SHRINK_OK) return cli_fail_status(st);
    if (common.json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_key(&j, "base");             cli_json_str(&j, pos[0]);
        cli_json_key(&j, "output");           cli_json_str(&j, opts.out);
        cli_json_key(&j, "format");           cli_json_str(&j, r.format);
        cli_json_key(&j, "dtype");            cli_json_str(&j, shrink_dtype_name(r.dtype));
        cli_json_key(&j, "n_adapters");       cli_json_int(&j, common.lora.n);
        cli_json_key(&j, "n_merged");         cli_json_int(&j, r.n_merged);
        cli_json_key(&j, "n_adapter_params"); cli_json_int(&j, r.n_adapter_params);
        cli_json_key(&j, "tensor_bytes");     cli_json_u64(&j, r.tensor_bytes);
        cli_json_key(&j, "seconds");          cli_json_num(&j, r.seconds);
        cli_json_end(&j);
    } else {
        char b[32];
        printf("merged:     %d adapter(s) into %s -> %s (%s, %s)\n", common.lora.n, pos[0],
               opts.out, r.format, shrink_dtype_name(r.dtype));
        printf("matrices:   %lld changed, %lld adapter parameters, tensor data %s\n",
               (long long)r.n_merged, (long long)r.n_adapter_params,
               cli_fmt_bytes(b, sizeof b, r.tensor_bytes));
        printf("time:       %.2f s\n", r.seconds);
    }
    return CLI_OK;
}
