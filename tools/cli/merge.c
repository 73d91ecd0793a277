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
    const char *scheme;
    const char *text;
    int32_t     tokens;
    int32_t     ctx;
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
    {"--scheme", NULL, CLI_OPT_STR, offsetof(merge_opts, scheme), "S", 0, 0,
     "re-quantize the merged weights to a scheme of `shrink quantize` (q4_0, nf4,\n"
     "q4_K_M, ...; GGUF output) and report the merged-then-quantized error"},
    {"--text", "-f", CLI_OPT_STR, offsetof(merge_opts, text), "FILE", 0, 0,
     "with --scheme: measure the error on this UTF-8 text too (KL to base + adapters)"},
    {"--tokens", "-n", CLI_OPT_INT, offsetof(merge_opts, tokens), "N", 1, 1 << 30,
     "tokens of --text scored (default 1024)"},
    {"--ctx", "-c", CLI_OPT_INT, offsetof(merge_opts, ctx), "N", 2, 1 << 24,
     "window of the --text scoring (default min(256, the model's context))"},
};

static const cli_spec spec = {
    .name        = "merge",
    .synopsis    = "BASE --lora ADAPTER[:SCALE] [--lora ...] -o OUT [--dtype D | --scheme S\n"
                   "       [--text FILE] [--tokens N] [--ctx N]] [--to FORMAT]",
    .description = "Merges LoRA adapters (PEFT folders or llama.cpp GGUF LoRA adapters) into the\n"
                   "base model: W' = W + SCALE * alpha/r * B A for every adapted projection,\n"
                   "streamed tensor by tensor. OUT is written to a temporary and renamed when\n"
                   "complete; on any error nothing is written. --scheme quantizes the merged\n"
                   "rows as they stream (as `shrink quantize --scheme S` on the merged f32\n"
                   "model) and reports the weight error of the merged matrices; --text adds the\n"
                   "KL divergence from the base with the adapters applied unmerged, of the\n"
                   "output and of the base quantized to S with the adapters kept separate.\n"
                   "OUT may also be given as the second argument. docs/adapters.md.",
    .opts        = merge_rows,
    .n_opts      = sizeof merge_rows / sizeof merge_rows[0],
    .n_pos_min   = 1,
    .n_pos_max   = 2,
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
    char      *pos[2];
    int        n_pos;
    merge_opts opts = {0};
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    if (common.f32) return usage_error("use --dtype f32 instead of --f32");
    if (n_pos == 2 && opts.out) return usage_error("OUT given twice (-o and as an argument)");
    if (n_pos == 2) opts.out = pos[1];
    if (!opts.out) return usage_error("-o OUT is required");
    if (opts.scheme && opts.dtype) return usage_error("give --dtype or --scheme, not both");
    if (!opts.scheme && (opts.text || opts.tokens || opts.ctx))
        return usage_error("--text, --tokens and --ctx measure a re-quantized merge: give --scheme");
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
    cli_io io[CLI_LIST_MAX + 4];
    int n_io = 0;
    io[n_io++] = (cli_io){"BASE", pos[0], CLI_IN};
    io[n_io++] = (cli_io){"--tokenizer", common.tokenizer, CLI_IN};
    io[n_io++] = (cli_io){"--text", opts.text, CLI_IN};
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
    p.scheme = opts.scheme;
    p.eval_text = opts.text;
    p.eval_tokens = opts.tokens;
    p.eval_ctx = opts.ctx;
    shrink_set_threads(common.threads);

    cli_progress prog;
    cli_progress_start(&prog, "merge MiB", &common);
    p.progress = progress_cb;
    p.user = &prog;
    shrink_merge_result r;
    shrink_status st = shrink_merge(pos[0], opts.out, &p, &r);
    cli_progress_end(&prog);
    if (st != SHRINK_OK) return cli_fail_status(st);
    const char *dtype = r.scheme ? r.scheme : shrink_dtype_name(r.dtype);
    const bool ev = r.scheme && opts.text;
    const bool unm = ev && r.ppl_unmerged == r.ppl_unmerged;
    if (common.json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_key(&j, "base");             cli_json_str(&j, pos[0]);
        cli_json_key(&j, "output");           cli_json_str(&j, opts.out);
        cli_json_key(&j, "format");           cli_json_str(&j, r.format);
        cli_json_key(&j, "dtype");            cli_json_str(&j, dtype);
        cli_json_key(&j, "n_adapters");       cli_json_int(&j, common.lora.n);
        cli_json_key(&j, "n_merged");         cli_json_int(&j, r.n_merged);
        cli_json_key(&j, "n_adapter_params"); cli_json_int(&j, r.n_adapter_params);
        cli_json_key(&j, "tensor_bytes");     cli_json_u64(&j, r.tensor_bytes);
        if (r.scheme) {
            cli_json_key(&j, "scheme");          cli_json_str(&j, r.scheme);
            cli_json_key(&j, "bits_per_weight"); cli_json_num(&j, r.bits_per_weight);
            cli_json_key(&j, "weight_rel_rms_mean"); cli_json_num(&j, r.wrel_mean);
            cli_json_key(&j, "weight_rel_rms_max");  cli_json_num(&j, r.wrel_max);
        }
        if (ev) {
            cli_json_key(&j, "text");            cli_json_str(&j, opts.text);
            cli_json_key(&j, "tokens_scored");   cli_json_int(&j, r.eval_tokens);
            cli_json_key(&j, "ppl_reference");   cli_json_num(&j, r.ppl_ref);
            cli_json_key(&j, "ppl_merged");      cli_json_num(&j, r.ppl_merged);
            cli_json_key(&j, "kl_merged");       cli_json_num(&j, r.kl_merged);
            cli_json_key(&j, "kl_merged_se");    cli_json_num(&j, r.kl_merged_se);
            cli_json_key(&j, "top1_same_merged"); cli_json_num(&j, r.top1_merged);
            cli_json_key(&j, "ppl_unmerged");    cli_json_num(&j, r.ppl_unmerged); /* null when not measured */
            cli_json_key(&j, "kl_unmerged");     cli_json_num(&j, r.kl_unmerged); /* null when not measured */
            cli_json_key(&j, "kl_unmerged_se");  cli_json_num(&j, r.kl_unmerged_se); /* null when not measured */
            cli_json_key(&j, "top1_same_unmerged"); unm ? cli_json_num(&j, r.top1_unmerged) : cli_json_null(&j);
        }
        cli_json_key(&j, "seconds");          cli_json_num(&j, r.seconds);
        cli_json_end(&j);
    } else {
        char b[32];
        printf("merged:     %d adapter(s) into %s -> %s (%s, %s)\n", common.lora.n, pos[0],
               opts.out, r.format, dtype);
        printf("matrices:   %lld changed, %lld adapter parameters, tensor data %s\n",
               (long long)r.n_merged, (long long)r.n_adapter_params,
               cli_fmt_bytes(b, sizeof b, r.tensor_bytes));
        if (r.scheme)
            printf("quantized:  %s, %.2f bits/weight; weight error of the merged matrices "
                   "||Q(W') - W'|| / ||W'||: mean %.4g, max %.4g\n", r.scheme,
                   r.bits_per_weight, r.wrel_mean, r.wrel_max);
        if (ev) {
            printf("error on %s (%lld tokens; reference: base + adapters unmerged, ppl %.4f):\n",
                   opts.text, (long long)r.eval_tokens, r.ppl_ref);
            printf("  merged, then %-10s ppl %.4f  KL %.6f +- %.6f  same top-1 %.2f %%\n",
                   r.scheme, r.ppl_merged, r.kl_merged, r.kl_merged_se, 100 * r.top1_merged);
            if (unm)
                printf("  %-10s base + adapters  ppl %.4f  KL %.6f +- %.6f  same top-1 %.2f %%\n",
                       r.scheme, r.ppl_unmerged, r.kl_unmerged, r.kl_unmerged_se,
                       100 * r.top1_unmerged);
            else
                printf("  (adapters unmerged on the base quantized to %s: not measured, %s)\n",
                       r.scheme, "a mix scheme or an already quantized base");
        }
        printf("time:       %.2f s\n", r.seconds);
    }
    return CLI_OK;
}
