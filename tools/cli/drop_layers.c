/*
 * drop_layers.c - `shrink drop-layers IN OUT (--remove N | --layers LIST) [--by
 * kld|influence|last] [--text FILE]`: layer reduction. Whole decoder layers are removed and a
 * standard, smaller model is written (GGUF for *.gguf, else a Hugging Face folder) with the
 * new layer count. The work is shrink_prune_structured's (src/prune/structured.c): its layer
 * scores are the measured KL of shrink_sensitivity (kld) or ShortGPT's block influence
 * (influence); `last` and --layers hand it a list of layers. This file parses and prints.
 *
 * stdout: one line (layers in -> out, params, bytes, output) and the removed layers; or with
 * --json one object. stderr: progress with an ETA (layers measured, then MiB written).
 */
#include "cli.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct drop_opts {
    int32_t     remove;
    const char *layers;
    const char *by;
    const char *text;
    int32_t     calib_tokens;
    int32_t     calib_ctx;
    const char *dtype;
} drop_opts;

#define O(f) offsetof(drop_opts, f)
static const cli_opt drop_opts_table[] = {
    {"--remove", "-n", CLI_OPT_INT, O(remove), "N", 1, 1 << 20,
     "remove N layers, chosen by --by"},
    {"--layers", NULL, CLI_OPT_STR, O(layers), "LIST", 0, 0,
     "remove exactly these layers: 0-based indices and ranges,\n"
     "                         e.g. 3,5-7 (no --remove, no --by)"},
    {"--by", NULL, CLI_OPT_STR, O(by), "HOW", 0, 0,
     "kld (default: least KL from the original when skipped;\n"
     "                         needs --text), influence (least block influence\n"
     "                         1 - cos(h_in, h_out); needs --text) or last"},
    {"--text", "--calib", CLI_OPT_STR, O(text), "FILE", 0, 0,
     "UTF-8 text the layers are measured on (kld, influence)"},
    {"--calib-tokens", NULL, CLI_OPT_INT, O(calib_tokens), "N", 2, 100000000,
     "tokens of the text used (default 512)"},
    {"--calib-ctx", NULL, CLI_OPT_INT, O(calib_ctx), "N", 1, 1000000,
     "tokens per window (default: context, <= 256)"},
    {"--dtype", NULL, CLI_OPT_STR, O(dtype), "DTYPE", 0, 0,
     "dtype of the output's matrices (default: the input's)"},
};
#undef O

static const cli_spec spec = {
    .name        = "drop-layers",
    .synopsis    = "IN OUT (--remove N [--by kld|influence|last] [--text FILE] | --layers LIST)\n"
                   "       [--calib-tokens N] [--dtype DTYPE] [--json]",
    .description = "Layer reduction: removes whole decoder layers and writes a standard, smaller\n"
                   "model with the new layer count (GGUF for OUT.gguf, else a Hugging Face\n"
                   "folder) that llama.cpp and transformers load unchanged. --by kld removes the\n"
                   "layers whose skipping alone changes the next-token distribution least (mean\n"
                   "KL on --text, as shrink sensitivity measures it); --by influence those of\n"
                   "least block influence 1 - cos(h_in, h_out) (ShortGPT); --by last the final\n"
                   "ones; --layers LIST exactly those. OUT appears only when complete.\n"
                   "Healing the result: shrink distill or shrink lora (docs/lowrank.md).",
    .opts        = drop_opts_table,
    .n_opts      = sizeof drop_opts_table / sizeof drop_opts_table[0],
    .n_pos_min   = 2,
    .n_pos_max   = 2,
    .model       = true,
};

static int usage_error(const char *msg) {
    fprintf(stderr, "shrink drop-layers: %s\n\n", msg);
    cli_usage(&spec, stderr);
    return CLI_USAGE;
}

/* "3,5-7" into v (at most cap); returns the count, or -1 after printing the problem. */
static int parse_list(const char *s, int32_t *v, int cap, int n_layers) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long a = strtol(p, &end, 10), b;
        if (end == p || errno || a < 0) goto bad;
        b = a;
        if (*end == '-') {
            const char *q = end + 1;
            b = strtol(q, &end, 10);
            if (end == q || errno || b < a) goto bad;
        }
        if (*end != ',' && *end) goto bad;
        for (long l = a; l <= b; l++) {
            if (l >= n_layers) {
                fprintf(stderr, "shrink drop-layers: --layers %s: layer %ld does not exist (the "
                        "model has layers 0 to %d)\n", s, l, n_layers - 1);
                return -1;
            }
            for (int i = 0; i < n; i++)
                if (v[i] == (int32_t)l) {
                    fprintf(stderr, "shrink drop-layers: --layers %s: layer %ld is listed "
                            "twice\n", s, l);
                    return -1;
                }
            if (n >= cap) break;
            v[n++] = (int32_t)l;
        }
        p = *end ? end + 1 : end;
        if (*end == ',' && !*p) goto bad;
    }
    if (n == 0) goto bad;
    return n;
bad:
    fprintf(stderr, "shrink drop-layers: --layers '%s': expected layer indices and ranges "
            "such as 3,5-7\n", s);
    return -1;
}

int cmd_drop_layers(int argc, char **argv) {
    cli_common common;
    char      *pos[2];
    int        n_pos;
    drop_opts  opts = {.calib_tokens = 512};
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    if (!opts.remove == !opts.layers) return usage_error("give --remove N or --layers LIST");
    if (opts.layers && opts.by) return usage_error("--layers names the layers; it takes no --by");
    const char *by = opts.layers ? "list" : opts.by ? opts.by : "kld";
    shrink_rank_by rank = SHRINK_RANK_SENSITIVITY;
    if (!strcasecmp(by, "kld")) rank = SHRINK_RANK_SENSITIVITY;
    else if (!strcasecmp(by, "influence")) rank = SHRINK_RANK_ACTIVATION;
    else if (strcasecmp(by, "last") && strcasecmp(by, "list"))
        return usage_error("--by: kld, influence or last");
    const int measured = !opts.layers && strcasecmp(by, "last");
    if (measured && !opts.text) return usage_error("--by kld and --by influence need --text FILE");
    if (!measured && opts.text) cli_warn("--text is not used when the layers are not measured");
    if (common.f32) return cli_fail("drop-layers: --f32 does not apply (use --dtype f32)");
    cli_io io[] = {{"IN", pos[0], CLI_IN},
                   {"--tokenizer", common.tokenizer, CLI_IN},
                   {"--text", measured ? opts.text : NULL, CLI_IN},
                   {"OUT", pos[1], cli_out_is_folder(NULL, pos[1]) ? CLI_OUT_DIR : CLI_OUT}};
    if ((rc = cli_check_io(io, 4)) != CLI_OK) return rc;
    shrink_set_threads(common.threads);
    shrink_structured_params p = shrink_structured_params_default();
    if (opts.dtype) {
        shrink_dtype d;
        if (shrink_dtype_parse(opts.dtype, &d) != SHRINK_OK) {
            fprintf(stderr, "shrink drop-layers: --dtype: %s\n\n", shrink_last_error());
            cli_usage(&spec, stderr);
            return CLI_USAGE;
        }
        p.dtype = d;
    }
    /* the layer count, for --by last, --layers and the messages */
    shrink_model *m = NULL;
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = common.tokenizer;
    shrink_status st = shrink_model_load(&m, pos[0], &lp);
    if (st) return cli_fail_status(st);
    shrink_model_info mi;
    shrink_model_get_info(m, &mi);
    shrink_model_free(m);
    const int L = mi.n_layers;
    int32_t *list = malloc((size_t)(L > 0 ? L : 1) * sizeof *list);
    if (!list) return cli_fail("out of memory");
    int n_list = 0;
    if (opts.layers) {
        if ((n_list = parse_list(opts.layers, list, L, L)) < 0) {
            free(list);
            return CLI_USAGE;
        }
    } else if (opts.remove >= L) {
        free(list);
        return cli_fail("%s: cannot remove %d layers of %d (at least one must stay)", pos[0],
                        opts.remove, L);
    } else if (!measured) {
        for (int i = 0; i < opts.remove; i++) list[n_list++] = L - opts.remove + i;
    }
    if (n_list >= L) {
        free(list);
        return cli_fail("%s: --layers %s removes all %d layers (at least one must stay)",
                        pos[0], opts.layers, L);
    }
    if (n_list) {
        p.layer_list = list;
        p.n_layer_list = n_list;
    } else {
        p.layers = opts.remove;
        p.by = rank;
        p.calib_path = opts.text;
        p.calib_tokens = opts.calib_tokens;
        p.calib_ctx = opts.calib_ctx;
    }
    p.tokenizer_path = common.tokenizer;
    cli_phase_progress prog = {.phase = -1, .last = -1, .calib_label = "layers measured",
                               .write_label = "write MiB", .common = &common};
    p.progress = cli_phase_progress_cb;
    p.user = &prog;
    shrink_structured_result r;
    st = shrink_prune_structured(pos[0], pos[1], &p, &r);
    cli_phase_progress_end(&prog);
    free(list);
    if (st) return cli_fail_status(st);
    const int removed = r.n_layers_in - r.n_layers;
    if (common.json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_key(&j, "input");          cli_json_str(&j, pos[0]);
        cli_json_key(&j, "output");         cli_json_str(&j, pos[1]);
        cli_json_key(&j, "by");             cli_json_str(&j, by);
        cli_json_key(&j, "n_layers_in");    cli_json_int(&j, r.n_layers_in);
        cli_json_key(&j, "n_layers");       cli_json_int(&j, r.n_layers);
        cli_json_key(&j, "removed_layers");
        cli_json_arr_begin(&j);
        for (int i = 0; i < removed; i++) cli_json_int(&j, r.removed_layers[i]);
        cli_json_arr_end(&j);
        cli_json_key(&j, "params_in");      cli_json_int(&j, r.params_in);
        cli_json_key(&j, "params_out");     cli_json_int(&j, r.params_out);
        cli_json_key(&j, "in_file_bytes");  cli_json_u64(&j, r.in_file_bytes);
        cli_json_key(&j, "out_file_bytes"); cli_json_u64(&j, r.out_file_bytes);
        cli_json_key(&j, "calib_tokens");   cli_json_int(&j, r.calib_tokens);
        cli_json_key(&j, "seconds");        cli_json_num(&j, r.seconds);
        cli_json_end(&j);
    } else {
        char a[32], b[32];
        printf("by %s: layers %d -> %d; %.2fM -> %.2fM params (%.1f%%) -> %s (%s, input %s)\n",
               by, r.n_layers_in, r.n_layers, (double)r.params_in / 1e6,
               (double)r.params_out / 1e6,
               100.0 * (double)r.params_out / (double)(r.params_in ? r.params_in : 1), pos[1],
               cli_fmt_bytes(a, sizeof a, r.out_file_bytes),
               cli_fmt_bytes(b, sizeof b, r.in_file_bytes));
        printf("removed layers:");
        for (int i = 0; i < removed; i++) printf(" %d", r.removed_layers[i]);
        printf("\n");
    }
    shrink_structured_result_free(&r);
    return CLI_OK;
}
