/*
 * init.c - `shrink init (--config config.json | --preset NAME) [--seed S] [--dtype D]
 * [--to hf|gguf|llama2c] [--tokenizer FILE] OUT`: a model with random weights, initialized as
 * Hugging Face transformers initializes a new model, written while it is generated
 * (shrink_model_init). `shrink init --list` prints the presets with their parameter counts.
 * docs/init.md says what the weights are and which presets exist.
 */
#include "cli.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct init_opts {
    const char *config;
    const char *preset;
    uint64_t    seed;
    const char *dtype;
    const char *to;
    const char *tokenizer;
    bool        list;
} init_opts;

static const cli_opt init_rows[] = {
    {"--config", NULL, CLI_OPT_STR, offsetof(init_opts, config), "FILE", 0, 0,
     "Hugging Face config.json (or a folder holding one) giving the shape"},
    {"--preset", "-p", CLI_OPT_STR, offsetof(init_opts, preset), "NAME", 0, 0,
     "the shape of a published model (see --list)"},
    {"--seed", "-s", CLI_OPT_U64, offsetof(init_opts, seed), "S", 0, 0,
     "random seed (default 0); equal seeds give equal bytes"},
    {"--dtype", NULL, CLI_OPT_STR, offsetof(init_opts, dtype), "D", 0, 0,
     "f32, f16 or bf16 (default f32)"},
    {"--to", NULL, CLI_OPT_STR, offsetof(init_opts, to), "FORMAT", 0, 0,
     "hf, gguf or llama2c (default: .gguf -> gguf, .bin -> llama2c, else a hf folder)"},
    {"--tokenizer", NULL, CLI_OPT_STR, offsetof(init_opts, tokenizer), "FILE", 0, 0,
     "tokenizer file or folder to carry into the output (default: none)"},
    {"--list", NULL, CLI_OPT_FLAG, offsetof(init_opts, list), NULL, 0, 0,
     "list the presets with their shapes and parameter counts"},
};

static const cli_spec spec = {
    .name        = "init",
    .synopsis    = "(--preset NAME | --config config.json) [--seed S] [--dtype D] [--to FORMAT] "
                   "OUT\n       shrink init --list",
    .description = "Writes a model with random weights, initialized as Hugging Face initializes\n"
                   "a new model: matrices and embeddings normal(0, 0.02) (or the config's\n"
                   "initializer_range; GPT-2's c_proj / sqrt(2 n_layer)), norms 1, biases 0.\n"
                   "The weights are generated while they are written (memory stays small at any\n"
                   "size); equal seeds give equal bytes whatever the thread count. Without\n"
                   "--tokenizer the model has no tokenizer: `shrink bench` runs it (token ids),\n"
                   "`generate` and `ppl` need one.",
    .opts        = init_rows,
    .n_opts      = sizeof init_rows / sizeof init_rows[0],
    .n_pos_min   = 0,
    .n_pos_max   = 1,
    .model       = false,
};

/* ==== --list ============================================================================== */

static int list_presets(const cli_common *common) {
    int32_t n = shrink_preset_count();
    shrink_preset_info *p = calloc((size_t)n, sizeof *p);
    if (!p) return cli_fail("out of memory");
    for (int32_t i = 0; i < n; i++) {
        shrink_status st = shrink_preset_get(i, &p[i]);
        if (st != SHRINK_OK) {
            free(p);
            return cli_fail_status(st);
        }
    }
    if (common->json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_key(&j, "presets");
        cli_json_arr_begin(&j);
        for (int32_t i = 0; i < n; i++) {
            cli_json_obj_begin(&j);
            cli_json_key(&j, "name");            cli_json_str(&j, p[i].name);
            cli_json_key(&j, "arch");            cli_json_str(&j, p[i].arch);
            cli_json_key(&j, "dim");             cli_json_int(&j, p[i].dim);
            cli_json_key(&j, "n_layers");        cli_json_int(&j, p[i].n_layers);
            cli_json_key(&j, "n_heads");         cli_json_int(&j, p[i].n_heads);
            cli_json_key(&j, "n_kv_heads");      cli_json_int(&j, p[i].n_kv_heads);
            cli_json_key(&j, "ffn_dim");         cli_json_int(&j, p[i].ffn_dim);
            cli_json_key(&j, "vocab_size");      cli_json_int(&j, p[i].vocab_size);
            cli_json_key(&j, "max_seq_len");     cli_json_int(&j, p[i].max_seq_len);
            cli_json_key(&j, "tied_embeddings"); cli_json_bool(&j, p[i].tied_embeddings);
            cli_json_key(&j, "n_params");        cli_json_int(&j, p[i].n_params);
            cli_json_key(&j, "source");          cli_json_str(&j, p[i].source);
            cli_json_obj_end(&j);
        }
        cli_json_arr_end(&j);
        cli_json_end(&j);
    } else {
        printf("%-15s %-6s %5s %3s %3s %3s %6s %7s %7s %4s %15s\n", "preset", "arch", "dim",
               "L", "H", "KV", "ffn", "vocab", "ctx", "tied", "parameters");
        for (int32_t i = 0; i < n; i++)
            printf("%-15s %-6s %5d %3d %3d %3d %6d %7d %7d %4s %15lld  (%.1f M)\n", p[i].name,
                   p[i].arch, p[i].dim, p[i].n_layers, p[i].n_heads, p[i].n_kv_heads,
                   p[i].ffn_dim, p[i].vocab_size, p[i].max_seq_len,
                   p[i].tied_embeddings ? "yes" : "no", (long long)p[i].n_params,
                   (double)p[i].n_params / 1e6);
    }
    free(p);
    return CLI_OK;
}

/* ==== writing ============================================================================= */

/* Progress in MiB with an ETA (cli_progress), from the writer's byte counts. */
static void progress_cb(void *user, int64_t done, int64_t total) {
    int64_t mib = 1 << 20;
    cli_progress_update((cli_progress *)user, (done + mib - 1) / mib, (total + mib - 1) / mib);
}

static void print_json(const char *out, const shrink_init_result *r, const shrink_init_params *p) {
    cli_json j;
    cli_json_begin(&j, stdout);
    cli_json_key(&j, "output");         cli_json_str(&j, out);
    cli_json_key(&j, "preset");
    if (p->preset) cli_json_str(&j, p->preset);
    else cli_json_null(&j);
    cli_json_key(&j, "config");
    if (p->config_path) cli_json_str(&j, p->config_path);
    else cli_json_null(&j);
    cli_json_key(&j, "arch");           cli_json_str(&j, r->arch);
    cli_json_key(&j, "format");         cli_json_str(&j, r->format);
    cli_json_key(&j, "dtype");          cli_json_str(&j, shrink_dtype_name(p->dtype));
    cli_json_key(&j, "seed");           cli_json_u64(&j, p->seed);
    cli_json_key(&j, "tokenizer");
    if (p->tokenizer_path) cli_json_str(&j, p->tokenizer_path);
    else cli_json_null(&j);
    cli_json_key(&j, "n_tensors");      cli_json_int(&j, r->n_tensors);
    cli_json_key(&j, "n_params");       cli_json_int(&j, r->n_params);
    cli_json_key(&j, "tensor_bytes");   cli_json_u64(&j, r->tensor_bytes);
    cli_json_key(&j, "seconds");        cli_json_num(&j, r->seconds);
    cli_json_key(&j, "peak_rss_bytes"); cli_json_u64(&j, shrink_peak_rss());
    cli_json_end(&j);
}

static void print_text(const char *out, const shrink_init_result *r, const shrink_init_params *p) {
    char b[32], c[32];
    printf("initialized: %s -> %s (%s %s, %s, seed %llu, %s)\n",
           p->preset ? p->preset : p->config_path, out, r->arch, r->format,
           shrink_dtype_name(p->dtype), (unsigned long long)p->seed,
           p->tokenizer_path ? "with tokenizer" : "no tokenizer");
    printf("parameters:  %lld in %lld tensors, tensor data %s\n", (long long)r->n_params,
           (long long)r->n_tensors, cli_fmt_bytes(b, sizeof b, r->tensor_bytes));
    printf("time:        %.2f s, peak RSS %s\n", r->seconds,
           cli_fmt_bytes(c, sizeof c, shrink_peak_rss()));
}

static bool preset_known(const char *name) {
    for (int32_t i = 0; i < shrink_preset_count(); i++) {
        shrink_preset_info info;
        if (shrink_preset_get(i, &info) == SHRINK_OK && !strcmp(info.name, name)) return true;
    }
    return false;
}

int cmd_init(int argc, char **argv) {
    cli_common common;
    char      *pos[1];
    int        n_pos;
    init_opts  opts = {0};
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    shrink_set_threads(common.threads);
    if (opts.list) {
        if (n_pos || opts.config || opts.preset) {
            fprintf(stderr, "shrink init: --list takes no other arguments\n\n");
            cli_usage(&spec, stderr);
            return CLI_USAGE;
        }
        return list_presets(&common);
    }
    if (n_pos != 1 || !opts.config == !opts.preset) {
        fprintf(stderr, "shrink init: %s\n\n", n_pos != 1 ? "missing the output path OUT"
                                                          : "give one of --preset and --config");
        cli_usage(&spec, stderr);
        return CLI_USAGE;
    }
    if (opts.preset && !preset_known(opts.preset)) {
        fprintf(stderr, "shrink init: unknown preset '%s' (shrink init --list shows them)\n\n",
                opts.preset);
        cli_usage(&spec, stderr);
        return CLI_USAGE;
    }
    shrink_init_params p = shrink_init_params_default();
    p.preset         = opts.preset;
    p.config_path    = opts.config;
    p.seed           = opts.seed;
    p.to             = opts.to;
    p.tokenizer_path = opts.tokenizer;
    if (opts.dtype && shrink_dtype_parse(opts.dtype, &p.dtype) != SHRINK_OK) {
        fprintf(stderr, "shrink init: --dtype: '%s' is not f32, f16 or bf16\n\n", opts.dtype);
        cli_usage(&spec, stderr);
        return CLI_USAGE;
    }
    if (opts.to && strcmp(opts.to, "hf") && strcmp(opts.to, "gguf") &&
        strcmp(opts.to, "llama2c")) {
        fprintf(stderr, "shrink init: --to: '%s' is not hf, gguf or llama2c\n\n", opts.to);
        cli_usage(&spec, stderr);
        return CLI_USAGE;
    }
    cli_io io[] = {{"--config", opts.config, CLI_IN},
                   {"--tokenizer", opts.tokenizer, CLI_IN},
                   {"OUT", pos[0], cli_out_is_folder(opts.to, pos[0]) ? CLI_OUT_DIR : CLI_OUT}};
    if ((rc = cli_check_io(io, 3)) != CLI_OK) return rc;

    cli_progress prog;
    cli_progress_start(&prog, "MiB written", &common);
    p.progress = progress_cb;
    p.user     = &prog;
    shrink_init_result r;
    shrink_status st = shrink_model_init(pos[0], &p, &r);
    cli_progress_end(&prog);
    if (st != SHRINK_OK) return cli_fail_status(st);
    if (common.json) print_json(pos[0], &r, &p);
    else print_text(pos[0], &r, &p);
    return CLI_OK;
}
