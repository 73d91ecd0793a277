/*
 * prune.c - `shrink prune IN OUT.gguf --method M (--sparsity S | --pattern N:M | --threshold
 * V)`: unstructured and N:M pruning of the linear layers, written dense, through shrink_prune
 * (the library does the work; this file parses options and prints).
 *
 * stdout: one line ("wanda 50.0% of 5.9M weights in 14 matrices zeroed -> OUT (4.01 MiB)"), with
 * --verbose a per-tensor table (name, shape, dtype, sparsity, relative change); or with --json
 * one object (per-tensor entries always: the sparsity of each tensor). stderr: progress with an
 * ETA (calibrated layers, then MiB written).
 */
#include "cli.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <math.h>

typedef struct prune_opts {
    const char *method;
    double      sparsity;
    double      threshold;
    const char *per;
    const char *pattern;
    const char *keep;
    const char *dtype;
    const char *calib;
    int32_t     calib_tokens;
    int32_t     calib_ctx;
    double      damp;
    int32_t     block;
    bool        verbose;
    const char *structured;
    const char *by;
    int32_t     seed;
    int32_t     neuron_block;
    const char *store;
} prune_opts;

#define O(f) offsetof(prune_opts, f)
static const cli_opt prune_rows_opts[] = {
    {"--method", "-m", CLI_OPT_STR, O(method), "M", 0, 0,
     "threshold | magnitude | wanda | sparsegpt (docs/pruning.md)"},
    {"--sparsity", "-s", CLI_OPT_FLOAT, O(sparsity), "S", -1e9, 1e9,
     "fraction of each pruned matrix zeroed, in [0, 1)"},
    {"--threshold", NULL, CLI_OPT_FLOAT, O(threshold), "V", -1e300, 1e300,
     "threshold: zero every weight with |w| < V"},
    {"--per", NULL, CLI_OPT_STR, O(per), "row|matrix", 0, 0,
     "magnitude: the sparsity per output row or per matrix\n"
     "                         (default matrix; wanda is per row)"},
    {"--pattern", NULL, CLI_OPT_STR, O(pattern), "N:M", 0, 0,
     "semi-structured: N of every M consecutive inputs stay\n"
     "                         nonzero (2:4, 4:8); sets the sparsity to 1 - N/M"},
    {"--keep", NULL, CLI_OPT_STR, O(keep), "GLOBS", 0, 0,
     "leave tensors whose GGUF name matches a glob untouched,\n"
     "                         e.g. 'blk.0.*,*.attn_v.*' (embeddings, head and\n"
     "                         norms always are)"},
    {"--dtype", NULL, CLI_OPT_STR, O(dtype), "DTYPE", 0, 0,
     "dtype of the output's matrices: f32, f16, bf16 or a\n"
     "                         quantized type (default: the input's)"},
    {"--calib", NULL, CLI_OPT_STR, O(calib), "FILE", 0, 0,
     "wanda, sparsegpt: UTF-8 calibration text"},
    {"--calib-tokens", NULL, CLI_OPT_INT, O(calib_tokens), "N", 1, 100000000,
     "tokens of the calibration text used (default 4096;\n"
     "                         --structured: 512)"},
    {"--calib-ctx", NULL, CLI_OPT_INT, O(calib_ctx), "N", 1, 1000000,
     "tokens per calibration window (default: context, <= 512)"},
    {"--damp", NULL, CLI_OPT_FLOAT, O(damp), "F", 1e-12, 1e6,
     "sparsegpt: damping, fraction of mean(diag H) (0.01)"},
    {"--block", NULL, CLI_OPT_INT, O(block), "N", 1, 1 << 20,
     "sparsegpt: columns per block (128)"},
    {"--verbose", "-v", CLI_OPT_FLAG, O(verbose), NULL, 0, 0,
     "a per-tensor table: shape, dtype, sparsity, relative change"},
    {"--structured", NULL, CLI_OPT_STR, O(structured), "SPEC", 0, 0,
     "remove whole units instead (no --method): SPEC is\n"
     "                         heads=N,kv-heads=N,neurons=N,layers=N (any of them;\n"
     "                         N a count per layer or P%); OUT a .gguf or a HF folder"},
    {"--by", NULL, CLI_OPT_STR, O(by), "HOW", 0, 0,
     "--structured ranking: activation (default; needs --calib),\n"
     "                         sensitivity (measured KL; --calib) or random"},
    {"--seed", NULL, CLI_OPT_INT, O(seed), "N", 0, 2147483647, "--by random: the seed (1)"},
    {"--neuron-block", NULL, CLI_OPT_INT, O(neuron_block), "N", 1, 1 << 24,
     "--by sensitivity: neurons measured together (ffn/16)"},
    {"--store", NULL, CLI_OPT_STR, O(store), "HOW", 0, 0,
     "pruned matrices: dense (default; llama.cpp and HF read\n"
     "                         it), sparse24 (= sparse24_f16: 2:4 with f16 values,\n"
     "                         9 bits/weight) or sparse24_i8 (int8 values, 5 bits);\n"
     "                         sparse24 needs --pattern 2:4; sparse (= sparse_f16:\n"
     "                         any pattern, a bitmap + f16 values, at most half of\n"
     "                         each row: 9 bits/weight) or sparse_i8 (int8, 5 bits);\n"
     "                         a matrix that does not fit stays dense (--json:\n"
     "                         store_note); sparse types are shrink-only GGUF"},
};
#undef O

static const cli_spec spec = {
    .name        = "prune",
    .synopsis    = "IN OUT.gguf --method M (--sparsity S | --pattern N:M | --threshold V)\n"
                   "       [--per row|matrix] [--calib FILE [--calib-tokens N]] [--keep GLOBS]\n"
                   "       [--dtype DTYPE] [--store dense|sparse24|sparse24_i8|sparse|sparse_i8] [-v]\n"
                   "       shrink prune IN OUT --structured heads=N,neurons=N,layers=N\n"
                   "       [--by activation|sensitivity|random] [--calib FILE] [--dtype DTYPE]",
    .description = "Prunes the linear layers (attention q/k/v/o, FFN gate/up/down) of a model and\n"
                   "writes it dense as GGUF: pruned weights are exact zeros. threshold zeroes\n"
                   "|w| < V; magnitude the smallest |w| per matrix or row; wanda the smallest\n"
                   "|w| * ||x|| per row; sparsegpt masks by w^2 / [H^-1]cc^2 and updates the\n"
                   "remaining weights (OBS) from the Hessian of the calibration inputs. wanda and\n"
                   "sparsegpt run the model layer by layer over --calib, each layer seeing the\n"
                   "pruned layers before it. --structured removes whole query heads (the same\n"
                   "number from each K/V group), K/V groups, FFN neurons and layers, the same\n"
                   "count in every layer, and writes a smaller model with the new config; the\n"
                   "units go by least activation importance (Minitron; ShortGPT block influence\n"
                   "for layers), least measured KL (shrink sensitivity) or at random. OUT appears\n"
                   "only when complete.",
    .opts        = prune_rows_opts,
    .n_opts      = sizeof prune_rows_opts / sizeof prune_rows_opts[0],
    .n_pos_min   = 2,
    .n_pos_max   = 2,
    .model       = true,
};

static void print_json(const char *in, const char *out, const shrink_prune_params *p,
                       const shrink_prune_result *r) {
    cli_json j;
    cli_json_begin(&j, stdout);
    cli_json_key(&j, "input");           cli_json_str(&j, in);
    cli_json_key(&j, "output");          cli_json_str(&j, out);
    cli_json_key(&j, "method");          cli_json_str(&j, r->method);
    cli_json_key(&j, "pattern");
    if (p->pattern_m) {
        char pat[32];
        snprintf(pat, sizeof pat, "%d:%d", p->pattern_n, p->pattern_m);
        cli_json_str(&j, pat);
    } else {
        cli_json_null(&j);
    }
    cli_json_key(&j, "sparsity");        cli_json_num(&j, r->sparsity);
    cli_json_key(&j, "n_pruned_params"); cli_json_int(&j, r->n_pruned_params);
    cli_json_key(&j, "n_zero");          cli_json_int(&j, r->n_zero);
    cli_json_key(&j, "n_params");        cli_json_int(&j, r->n_params);
    cli_json_key(&j, "n_tensors");       cli_json_int(&j, r->n_tensors);
    cli_json_key(&j, "n_pruned");        cli_json_int(&j, r->n_pruned);
    cli_json_key(&j, "in_file_bytes");   cli_json_u64(&j, r->in_file_bytes);
    cli_json_key(&j, "out_file_bytes");  cli_json_u64(&j, r->out_file_bytes);
    cli_json_key(&j, "tensor_bytes");    cli_json_u64(&j, r->tensor_bytes);
    cli_json_key(&j, "calib_tokens");    cli_json_int(&j, r->calib_tokens);
    cli_json_key(&j, "seconds");         cli_json_num(&j, r->seconds);
    cli_json_key(&j, "peak_rss_bytes");  cli_json_u64(&j, shrink_peak_rss());
    cli_json_key(&j, "tensors");
    cli_json_arr_begin(&j);
    for (int64_t i = 0; i < r->n_tensors; i++) {
        const shrink_prune_tensor *t = &r->tensors[i];
        cli_json_obj_begin(&j);
        cli_json_key(&j, "name");  cli_json_str(&j, t->name);
        cli_json_key(&j, "shape");
        cli_json_arr_begin(&j);
        cli_json_int(&j, t->shape[0]);
        if (t->n_dims == 2) cli_json_int(&j, t->shape[1]);
        cli_json_arr_end(&j);
        cli_json_key(&j, "dtype");    cli_json_str(&j, shrink_dtype_name(t->dtype));
        cli_json_key(&j, "bytes");    cli_json_u64(&j, t->bytes);
        cli_json_key(&j, "pruned");   cli_json_bool(&j, t->pruned);
        cli_json_key(&j, "kept");     cli_json_bool(&j, t->kept);
        cli_json_key(&j, "sparsity");
        cli_json_num(&j, t->pruned && t->n_elems ? (double)t->n_zero / (double)t->n_elems : 0.0);
        cli_json_key(&j, "rel_err");  cli_json_num(&j, t->rel_err);
        if (t->store_note[0]) {
            cli_json_key(&j, "store_note");
            cli_json_str(&j, t->store_note);
        }
        cli_json_obj_end(&j);
    }
    cli_json_arr_end(&j);
    cli_json_end(&j);
}

static void print_text(const char *out, const shrink_prune_result *r, bool verbose) {
    if (verbose) {
        printf("%-28s %-14s %-6s %9s %10s\n", "tensor", "shape", "dtype", "sparsity", "rel_err");
        for (int64_t i = 0; i < r->n_tensors; i++) {
            const shrink_prune_tensor *t = &r->tensors[i];
            char shape[48];
            if (t->n_dims == 1) snprintf(shape, sizeof shape, "%lld", (long long)t->shape[0]);
            else snprintf(shape, sizeof shape, "%lld x %lld", (long long)t->shape[0],
                          (long long)t->shape[1]);
            if (t->pruned)
                printf("%-28s %-14s %-6s %8.2f%% %10.3e\n", t->name, shape,
                       shrink_dtype_name(t->dtype),
                       100.0 * (double)t->n_zero / (double)(t->n_elems ? t->n_elems : 1),
                       t->rel_err);
            else
                printf("%-28s %-14s %-6s %9s %10s%s\n", t->name, shape,
                       shrink_dtype_name(t->dtype), "-", "-", t->kept ? "  (kept)" : "");
        }
        printf("\n");
    }
    for (int64_t i = 0; i < r->n_tensors; i++)
        if (r->tensors[i].store_note[0])
            printf("%s: %s\n", r->tensors[i].name, r->tensors[i].store_note);
    char ob[32];
    printf("%s: %.2f%% of %.2fM weights in %lld matri%s zeroed -> %s (%s)\n", r->method,
           100.0 * r->sparsity, (double)r->n_pruned_params / 1e6, (long long)r->n_pruned,
           r->n_pruned == 1 ? "x" : "ces", out, cli_fmt_bytes(ob, sizeof ob, r->out_file_bytes));
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "shrink prune: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n");
    cli_usage(&spec, stderr);
    return CLI_USAGE;
}

/* ==== --structured ======================================================================== */

/* One "key=N" or "key=P%" of the spec into *count (P% of `of`, rounded; heads to a multiple of
 * `mult`). Returns 0, or -1 after printing the problem. */
static int spec_value(const char *key, const char *v, int32_t of, int32_t mult, int32_t *count) {
    char *end;
    double x = strtod(v, &end);
    if (end == v || !(x >= 0) || x > 1e9) {
        fprintf(stderr, "shrink prune: --structured %s=%s: expected a count or a percentage\n",
                key, v);
        return -1;
    }
    if (*end == '%' && end[1] == '\0') {
        double n = x / 100.0 * of / mult;
        *count = (int32_t)floor(n + 0.5) * mult;
        if (x > 0 && *count == 0) *count = mult;
    } else if (*end == '\0' && x == floor(x)) {
        *count = (int32_t)x;
    } else {
        fprintf(stderr, "shrink prune: --structured %s=%s: expected a whole count or P%%\n",
                key, v);
        return -1;
    }
    return 0;
}

static int parse_spec(const char *spec_s, const shrink_model_info *mi,
                      shrink_structured_params *p) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec_s);
    int any = 0;
    for (char *save = NULL, *item = strtok_r(buf, ",", &save); item;
         item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq) {
            fprintf(stderr, "shrink prune: --structured '%s': expected UNIT=N (heads, kv-heads, "
                    "neurons, layers)\n", item);
            return -1;
        }
        *eq = '\0';
        const char *v = eq + 1;
        int r;
        if (!strcmp(item, "heads"))
            r = spec_value(item, v, mi->n_heads, mi->n_kv_heads, &p->heads);
        else if (!strcmp(item, "kv-heads"))
            r = spec_value(item, v, mi->n_kv_heads, 1, &p->kv_heads);
        else if (!strcmp(item, "neurons"))
            r = spec_value(item, v, mi->ffn_dim, 1, &p->neurons);
        else if (!strcmp(item, "layers"))
            r = spec_value(item, v, mi->n_layers, 1, &p->layers);
        else {
            fprintf(stderr, "shrink prune: --structured: unknown unit '%s' (heads, kv-heads, "
                    "neurons, layers)\n", item);
            return -1;
        }
        if (r) return -1;
        any = 1;
    }
    if (!any) {
        fprintf(stderr, "shrink prune: --structured '%s': nothing to remove\n", spec_s);
        return -1;
    }
    return 0;
}

static void json_i32s(cli_json *j, const int32_t *v, int n) {
    cli_json_arr_begin(j);
    for (int i = 0; i < n; i++) cli_json_int(j, v[i]);
    cli_json_arr_end(j);
}

static void print_structured_json(const char *in, const char *out, const char *by,
                                  const shrink_structured_result *r) {
    const int L = r->n_layers_in, rl = L - r->n_layers, rh = r->n_heads_in - r->n_heads,
              rf = r->ffn_dim_in - r->ffn_dim;
    cli_json j;
    cli_json_begin(&j, stdout);
    cli_json_key(&j, "input");          cli_json_str(&j, in);
    cli_json_key(&j, "output");         cli_json_str(&j, out);
    cli_json_key(&j, "by");             cli_json_str(&j, by);
    cli_json_key(&j, "n_layers_in");    cli_json_int(&j, r->n_layers_in);
    cli_json_key(&j, "n_heads_in");     cli_json_int(&j, r->n_heads_in);
    cli_json_key(&j, "n_kv_heads_in");  cli_json_int(&j, r->n_kv_heads_in);
    cli_json_key(&j, "ffn_dim_in");     cli_json_int(&j, r->ffn_dim_in);
    cli_json_key(&j, "n_layers");       cli_json_int(&j, r->n_layers);
    cli_json_key(&j, "n_heads");        cli_json_int(&j, r->n_heads);
    cli_json_key(&j, "n_kv_heads");     cli_json_int(&j, r->n_kv_heads);
    cli_json_key(&j, "ffn_dim");        cli_json_int(&j, r->ffn_dim);
    cli_json_key(&j, "params_in");      cli_json_int(&j, r->params_in);
    cli_json_key(&j, "params_out");     cli_json_int(&j, r->params_out);
    cli_json_key(&j, "in_file_bytes");  cli_json_u64(&j, r->in_file_bytes);
    cli_json_key(&j, "out_file_bytes"); cli_json_u64(&j, r->out_file_bytes);
    cli_json_key(&j, "calib_tokens");   cli_json_int(&j, r->calib_tokens);
    cli_json_key(&j, "seconds");        cli_json_num(&j, r->seconds);
    cli_json_key(&j, "removed_layers"); json_i32s(&j, r->removed_layers, rl);
    cli_json_key(&j, "removed_heads");  /* per input layer ([] for a removed layer) */
    cli_json_arr_begin(&j);
    for (int l = 0; l < L; l++)
        json_i32s(&j, r->removed_heads + (size_t)l * rh,
                  rh && r->removed_heads[(size_t)l * rh] >= 0 ? rh : 0);
    cli_json_arr_end(&j);
    cli_json_key(&j, "removed_neurons");
    cli_json_arr_begin(&j);
    for (int l = 0; l < L; l++)
        json_i32s(&j, r->removed_neurons + (size_t)l * rf,
                  rf && r->removed_neurons[(size_t)l * rf] >= 0 ? rf : 0);
    cli_json_arr_end(&j);
    cli_json_end(&j);
}

static int run_structured(char **pos, const prune_opts *o, const cli_common *common) {
    if (o->method)
        return usage_error("%s", "--structured removes whole units; it takes no --method");
    if (o->sparsity != -1.0 || o->threshold != -1.0 || o->pattern || o->per || o->keep)
        return usage_error("%s", "--sparsity, --threshold, --pattern, --per and --keep are for "
                           "--method, not --structured");
    shrink_structured_params p = shrink_structured_params_default();
    if (!o->by || !strcasecmp(o->by, "activation")) p.by = SHRINK_RANK_ACTIVATION;
    else if (!strcasecmp(o->by, "sensitivity")) p.by = SHRINK_RANK_SENSITIVITY;
    else if (!strcasecmp(o->by, "random")) p.by = SHRINK_RANK_RANDOM;
    else return usage_error("--by %s: activation, sensitivity or random", o->by);
    cli_io io[] = {{"IN", pos[0], CLI_IN},
                   {"--tokenizer", common->tokenizer, CLI_IN},
                   {"--calib", o->calib, CLI_IN},
                   {"OUT", pos[1], cli_out_is_folder(NULL, pos[1]) ? CLI_OUT_DIR : CLI_OUT}};
    int rc = cli_check_io(io, 4);
    if (rc != CLI_OK) return rc;
    shrink_set_threads(common->threads);
    /* the config, for percentages and messages */
    shrink_model *m = NULL;
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = common->tokenizer;
    shrink_status st = shrink_model_load(&m, pos[0], &lp);
    if (st) return cli_fail_status(st);
    shrink_model_info mi;
    shrink_model_get_info(m, &mi);
    shrink_model_free(m);
    if (parse_spec(o->structured, &mi, &p)) {
        fprintf(stderr, "\n");
        cli_usage(&spec, stderr);
        return CLI_USAGE;
    }
    p.seed = (uint64_t)o->seed;
    p.block = o->neuron_block;
    p.calib_path = o->calib;
    if (o->calib_tokens) p.calib_tokens = o->calib_tokens;
    p.calib_ctx = o->calib_ctx;
    p.tokenizer_path = common->tokenizer;
    if (o->dtype) {
        shrink_dtype d;
        if (shrink_dtype_parse(o->dtype, &d) != SHRINK_OK)
            return usage_error("--dtype: %s", shrink_last_error());
        p.dtype = d;
    }
    if (o->calib && p.by == SHRINK_RANK_RANDOM) cli_warn("--calib is not used by --by random");
    cli_phase_progress prog = {.phase = -1, .last = -1, .calib_label = "units measured",
                               .write_label = "write MiB", .common = common};
    p.progress = cli_phase_progress_cb;
    p.user = &prog;
    shrink_structured_result r;
    st = shrink_prune_structured(pos[0], pos[1], &p, &r);
    cli_phase_progress_end(&prog);
    if (st) return cli_fail_status(st);
    const char *by = p.by == SHRINK_RANK_SENSITIVITY ? "sensitivity"
                     : p.by == SHRINK_RANK_RANDOM ? "random" : "activation";
    if (common->json) {
        print_structured_json(pos[0], pos[1], by, &r);
    } else {
        char a[32], b[32];
        printf("by %s: heads %d -> %d (kv %d -> %d), ffn %d -> %d, layers %d -> %d; "
               "%.2fM -> %.2fM params (%.1f%%) -> %s (%s, input %s)\n", by, r.n_heads_in,
               r.n_heads, r.n_kv_heads_in, r.n_kv_heads, r.ffn_dim_in, r.ffn_dim, r.n_layers_in,
               r.n_layers, (double)r.params_in / 1e6, (double)r.params_out / 1e6,
               100.0 * (double)r.params_out / (double)(r.params_in ? r.params_in : 1), pos[1],
               cli_fmt_bytes(a, sizeof a, r.out_file_bytes),
               cli_fmt_bytes(b, sizeof b, r.in_file_bytes));
        if (r.n_layers < r.n_layers_in) {
            printf("removed layers:");
            for (int i = 0; i < r.n_layers_in - r.n_layers; i++)
                printf(" %d", r.removed_layers[i]);
            printf("\n");
        }
    }
    shrink_structured_result_free(&r);
    return CLI_OK;
}

int cmd_prune(int argc, char **argv) {
    cli_common common;
    char      *pos[2];
    int        n_pos;
    prune_opts opts = {.sparsity = -1.0, .threshold = -1.0, .calib_tokens = 0,
                       .damp = 0.01, .block = 128, .seed = 1};
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    if (common.f32) return cli_fail("prune: --f32 does not apply (weights are read as f32)");
    if (opts.structured) return run_structured(pos, &opts, &common);
    if (opts.by || opts.neuron_block)
        return usage_error("%s", "--by and --neuron-block go with --structured");
    if (!opts.calib_tokens) opts.calib_tokens = 4096;
    if (!opts.method) return usage_error("%s", "--method is required (or --structured SPEC)");
    shrink_prune_params p = shrink_prune_params_default();
    p.method = opts.method;
    p.sparsity = opts.sparsity;
    p.threshold = opts.threshold;
    if (opts.per) {
        if (!strcasecmp(opts.per, "row")) p.per_row = true;
        else if (strcasecmp(opts.per, "matrix")) return usage_error("--per %s: row or matrix",
                                                                    opts.per);
    }
    if (opts.pattern) {
        int n = 0, m = 0, used = 0;
        if (sscanf(opts.pattern, "%d:%d%n", &n, &m, &used) != 2 ||
            opts.pattern[used] != '\0')
            return usage_error("--pattern '%s': expected N:M, e.g. 2:4", opts.pattern);
        p.pattern_n = n;
        p.pattern_m = m;
    }
    if (opts.dtype) {
        shrink_dtype d;
        if (shrink_dtype_parse(opts.dtype, &d) != SHRINK_OK)
            return usage_error("--dtype: %s", shrink_last_error());
        p.dtype = d;
    }
    if (opts.store && strcasecmp(opts.store, "dense")) {
        if (!strcasecmp(opts.store, "sparse24")) p.store = SHRINK_DTYPE_SPARSE24_F16;
        else if (!strcasecmp(opts.store, "sparse24_f16") || !strcasecmp(opts.store, "sparse24-f16"))
            p.store = SHRINK_DTYPE_SPARSE24_F16;
        else if (!strcasecmp(opts.store, "sparse24_i8") || !strcasecmp(opts.store, "sparse24-i8"))
            p.store = SHRINK_DTYPE_SPARSE24_I8;
        else if (!strcasecmp(opts.store, "sparse") || !strcasecmp(opts.store, "sparse_f16") ||
                 !strcasecmp(opts.store, "sparse-f16"))
            p.store = SHRINK_DTYPE_SPARSE_F16;
        else if (!strcasecmp(opts.store, "sparse_i8") || !strcasecmp(opts.store, "sparse-i8"))
            p.store = SHRINK_DTYPE_SPARSE_I8;
        else
            return usage_error("--store %s: dense, sparse24 (sparse24_f16), sparse24_i8, sparse "
                               "(sparse_f16) or sparse_i8", opts.store);
    }
    p.keep = opts.keep;
    p.calib_path = opts.calib;
    p.calib_tokens = opts.calib_tokens;
    p.calib_ctx = opts.calib_ctx;
    p.damp = opts.damp;
    p.block_size = opts.block;
    p.tokenizer_path = common.tokenizer;
    if (opts.calib && strcasecmp(opts.method, "wanda") && strcasecmp(opts.method, "sparsegpt"))
        cli_warn("--calib is used by wanda and sparsegpt only; ignored for %s", opts.method);
    cli_io io[] = {{"IN", pos[0], CLI_IN},
                   {"--tokenizer", common.tokenizer, CLI_IN},
                   {"--calib", opts.calib, CLI_IN},
                   {"OUT", pos[1], CLI_OUT}};
    if ((rc = cli_check_io(io, 4)) != CLI_OK) return rc;
    shrink_set_threads(common.threads);

    cli_phase_progress prog = {.phase = -1, .last = -1, .calib_label = "calibrated layers",
                               .write_label = "write MiB", .common = &common};
    p.progress = cli_phase_progress_cb;
    p.user = &prog;
    shrink_prune_result r;
    shrink_status st = shrink_prune(pos[0], pos[1], &p, &r);
    cli_phase_progress_end(&prog);
    if (st != SHRINK_OK) {
        if (st == SHRINK_ERR_ARG && strstr(shrink_last_error(), "unknown pruning method")) {
            fprintf(stderr, "shrink prune: %s\n", shrink_last_error());
            return CLI_USAGE;
        }
        return cli_fail_status(st);
    }
    if (common.json) print_json(pos[0], pos[1], &p, &r);
    else print_text(pos[1], &r, opts.verbose);
    shrink_prune_result_free(&r);
    return CLI_OK;
}
