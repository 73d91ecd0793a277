/*
 * student.c - `shrink student T OUT --layers N|LIST [--pick every-other|kld] [--heads H]
 * [--ffn F] [--init copy|random --seed S]`: a student cut from its teacher through
 * shrink_student (the library does the cut; this file parses options and prints).
 * --init random writes the cut config with fresh weights (shrink_model_init on the cut
 * model's config.json, written first to a temporary Hugging Face folder next to OUT).
 *
 * stdout: one line ("student: layers 6 -> 3 [0 2 4], heads 8 -> 8, ffn 768 -> 768; 22.1M ->
 * 11.3M params -> OUT (21.6 MiB)") or with --json one object. stderr: progress with an ETA.
 */
#include "cli.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct student_opts {
    const char *layers;
    const char *pick;
    int32_t     heads;
    int32_t     ffn;
    int32_t     hidden;
    const char *init;
    int32_t     seed;
    const char *calib;
    int32_t     calib_tokens;
    const char *dtype;
} student_opts;

#define O(f) offsetof(student_opts, f)
static const cli_opt student_rows_opts[] = {
    {"--layers", NULL, CLI_OPT_STR, O(layers), "N|LIST", 0, 0,
     "layers kept: a count (chosen by --pick) or a list of the\n"
     "                         teacher's layers, e.g. 0,2,4 (default: all)"},
    {"--pick", NULL, CLI_OPT_STR, O(pick), "HOW", 0, 0,
     "every-other (default: layer floor(i*L/N)) or kld (the\n"
     "                         layers, heads and neurons of largest measured KL;\n"
     "                         needs --calib)"},
    {"--heads", NULL, CLI_OPT_INT, O(heads), "H", 1, 1 << 20,
     "query heads kept per layer (a multiple of the K/V groups)"},
    {"--ffn", NULL, CLI_OPT_INT, O(ffn), "F", 1, 1 << 28, "FFN neurons kept per layer"},
    {"--hidden", NULL, CLI_OPT_INT, O(hidden), "D", 1, 1 << 24, "hidden size kept (the residual "
     "dims of largest\n                         token-embedding column norm)"},
    {"--init", NULL, CLI_OPT_STR, O(init), "copy|random", 0, 0,
     "copy the teacher's kept weights (default) or random\n"
     "                         weights of the cut config (as shrink init)"},
    {"--seed", NULL, CLI_OPT_INT, O(seed), "S", 0, 2147483647, "--init random: the seed (1)"},
    {"--calib", NULL, CLI_OPT_STR, O(calib), "FILE", 0, 0,
     "calibration text: --pick kld, and heads / neurons by\n"
     "                         activation (without it the first ones stay)"},
    {"--calib-tokens", NULL, CLI_OPT_INT, O(calib_tokens), "N", 2, 100000000,
     "tokens of --calib used (512)"},
    {"--dtype", NULL, CLI_OPT_STR, O(dtype), "DTYPE", 0, 0,
     "dtype of the output's matrices (default: the teacher's)"},
};
#undef O

static const cli_spec spec = {
    .name        = "student",
    .synopsis    = "TEACHER OUT --layers N|LIST [--pick every-other|kld] [--heads H] [--ffn F]\n"
                   "       [--hidden D] [--init copy|random [--seed S]] [--calib FILE] [--dtype DTYPE]",
    .description = "Cuts a student from a teacher for distillation (shrink distill): keeps\n"
                   "the chosen layers (every other one, a list, or the most important by\n"
                   "measured KL), fewer query heads and FFN neurons per layer, a narrower\n"
                   "hidden size (the residual dimensions of largest embedding norm), with the\n"
                   "teacher's kept weights copied exactly, or random weights of the cut config\n"
                   "(--init random). OUT: .gguf, .bin (llama2.c) or a Hugging Face folder,\n"
                   "written only when complete. A student as big as its teacher is an error.",
    .opts        = student_rows_opts,
    .n_opts      = sizeof student_rows_opts / sizeof student_rows_opts[0],
    .n_pos_min   = 2,
    .n_pos_max   = 2,
    .model       = true,
};

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "shrink student: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n");
    cli_usage(&spec, stderr);
    return CLI_USAGE;
}

/* "--layers N" (count) or "A,B,C" (list, at least one comma). Returns 0 or -1. */
static int parse_layers(const char *s, int32_t *count, int32_t *list, int32_t *n_list) {
    *count = 0;
    *n_list = 0;
    if (!strchr(s, ',')) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || *end || v < 1 || v > 1 << 20) return -1;
        *count = (int32_t)v;
        return 0;
    }
    for (const char *p = s; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 1 << 20 || *n_list >= 4096) return -1;
        list[(*n_list)++] = (int32_t)v;
        if (*end == ',') p = end + 1;
        else if (*end == '\0') p = end;
        else return -1;
        if (*end == ',' && !*p) return -1;
    }
    return 0;
}

static void json_i32s(cli_json *j, const int32_t *v, int n) {
    cli_json_arr_begin(j);
    for (int i = 0; i < n; i++) cli_json_int(j, v[i]);
    cli_json_arr_end(j);
}

/* The layers kept, from the removed ones: kept[0..n_layers). */
static void kept_layers(const shrink_structured_result *r, int32_t *kept) {
    for (int l = 0, j = 0, k = 0; l < r->n_layers_in; l++) {
        if (k < r->n_layers_in - r->n_layers && r->removed_layers[k] == l) k++;
        else kept[j++] = l;
    }
}

/* Writes random weights of the cut at `cut` (a Hugging Face folder) to out. */
static shrink_status random_init(const char *cut, const char *out, const char *tokenizer,
                                 uint64_t seed, const char *dtype_name,
                                 const cli_common *common) {
    shrink_init_params ip = shrink_init_params_default();
    ip.config_path = cut;
    ip.seed = seed;
    ip.tokenizer_path = tokenizer ? tokenizer : cut;
    if (dtype_name) {
        shrink_dtype d;
        shrink_status st = shrink_dtype_parse(dtype_name, &d);
        if (st) return st;
        ip.dtype = d;
    }
    cli_progress pr;
    cli_progress_start(&pr, "init MiB", common);
    ip.progress = cli_progress_cb;
    ip.user = &pr;
    shrink_status st = shrink_model_init(out, &ip, NULL);
    cli_progress_end(&pr);
    return st;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) ? 0 : 0;
}

/* Removes the temporary cut folder (written by this process only). */
static void remove_tree(const char *dir) {
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int cmd_student(int argc, char **argv) {
    cli_common common;
    char *pos[2];
    int n_pos;
    student_opts o = {.seed = 1};
    int rc = cli_parse(&spec, argc, argv, &o, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    if (common.f32) return cli_fail("student: --f32 does not apply (weights are copied)");
    shrink_student_params p = shrink_student_params_default();
    static int32_t list[4096];
    if (o.layers && parse_layers(o.layers, &p.layers, list, &p.n_layer_list))
        return usage_error("--layers '%s': expected a count N or a list of layers like 0,2,4",
                           o.layers);
    p.layer_list = p.n_layer_list ? list : NULL;
    if (!o.pick || !strcasecmp(o.pick, "every-other")) p.pick = SHRINK_PICK_EVERY_OTHER;
    else if (!strcasecmp(o.pick, "kld")) p.pick = SHRINK_PICK_KLD;
    else return usage_error("--pick %s: every-other or kld", o.pick);
    if (p.n_layer_list && o.pick && p.pick == SHRINK_PICK_KLD)
        cli_warn("--layers lists the layers: --pick kld ranks only heads and neurons");
    bool random = false;
    if (o.init && !strcasecmp(o.init, "random")) random = true;
    else if (o.init && strcasecmp(o.init, "copy"))
        return usage_error("--init %s: copy or random", o.init);
    if (!o.layers && !o.heads && !o.ffn && !o.hidden)
        return usage_error("%s", "nothing to cut: give --layers, --heads, --ffn or --hidden");
    p.heads = o.heads;
    p.ffn = o.ffn;
    p.hidden = o.hidden;
    p.calib_path = o.calib;
    if (o.calib_tokens) p.calib_tokens = o.calib_tokens;
    p.tokenizer_path = common.tokenizer;
    if (o.dtype) {
        shrink_dtype d;
        if (shrink_dtype_parse(o.dtype, &d) != SHRINK_OK)
            return usage_error("--dtype: %s", shrink_last_error());
        p.dtype = d;
    }
    cli_io io[] = {{"TEACHER", pos[0], CLI_IN},
                   {"--tokenizer", common.tokenizer, CLI_IN},
                   {"--calib", o.calib, CLI_IN},
                   {"OUT", pos[1], cli_out_is_folder(NULL, pos[1]) ? CLI_OUT_DIR : CLI_OUT}};
    if ((rc = cli_check_io(io, 4)) != CLI_OK) return rc;
    shrink_set_threads(common.threads);
    cli_install_signals();

    /* --init random: cut to a temporary folder first (its config.json and tokenizer) */
    char tmp[4096];
    const char *cut = pos[1];
    if (random) {
        snprintf(tmp, sizeof tmp, "%s.student-cut.%ld", pos[1], (long)getpid());
        cut = tmp;
    }
    cli_phase_progress prog = {.phase = -1, .last = -1, .calib_label = "units measured",
                               .write_label = "write MiB", .common = &common};
    p.progress = cli_phase_progress_cb;
    p.user = &prog;
    shrink_structured_result r;
    shrink_status st = shrink_student(pos[0], cut, &p, &r);
    cli_phase_progress_end(&prog);
    if (st) return cli_fail_status(st);
    if (random) {
        st = random_init(cut, pos[1], common.tokenizer, (uint64_t)o.seed, o.dtype, &common);
        remove_tree(tmp);
        if (st) {
            shrink_structured_result_free(&r);
            return cli_fail_status(st);
        }
    }
    int32_t *kept = malloc((size_t)(r.n_layers > 0 ? r.n_layers : 1) * sizeof *kept);
    if (!kept) {
        shrink_structured_result_free(&r);
        return cli_fail("student: out of memory");
    }
    kept_layers(&r, kept);
    const char *pick = p.n_layer_list ? "list" : p.pick == SHRINK_PICK_KLD ? "kld"
                                                                          : "every-other";
    if (common.json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_key(&j, "input");          cli_json_str(&j, pos[0]);
        cli_json_key(&j, "output");         cli_json_str(&j, pos[1]);
        cli_json_key(&j, "pick");           cli_json_str(&j, pick);
        cli_json_key(&j, "init");           cli_json_str(&j, random ? "random" : "copy");
        cli_json_key(&j, "n_layers_in");    cli_json_int(&j, r.n_layers_in);
        cli_json_key(&j, "n_heads_in");     cli_json_int(&j, r.n_heads_in);
        cli_json_key(&j, "ffn_dim_in");     cli_json_int(&j, r.ffn_dim_in);
        cli_json_key(&j, "n_layers");       cli_json_int(&j, r.n_layers);
        cli_json_key(&j, "n_heads");        cli_json_int(&j, r.n_heads);
        cli_json_key(&j, "n_kv_heads");     cli_json_int(&j, r.n_kv_heads);
        cli_json_key(&j, "ffn_dim");        cli_json_int(&j, r.ffn_dim);
        cli_json_key(&j, "dim_in");         cli_json_int(&j, r.dim_in);
        cli_json_key(&j, "dim");            cli_json_int(&j, r.dim);
        cli_json_key(&j, "kept_layers");    json_i32s(&j, kept, r.n_layers);
        cli_json_key(&j, "params_in");      cli_json_int(&j, r.params_in);
        cli_json_key(&j, "params_out");     cli_json_int(&j, r.params_out);
        cli_json_key(&j, "in_file_bytes");  cli_json_u64(&j, r.in_file_bytes);
        cli_json_key(&j, "out_file_bytes"); cli_json_u64(&j, r.out_file_bytes);
        cli_json_key(&j, "seconds");        cli_json_num(&j, r.seconds);
        cli_json_end(&j);
    } else {
        printf("student (%s, %s): layers %d -> %d [", pick, random ? "random init" : "copied",
               r.n_layers_in, r.n_layers);
        for (int i = 0; i < r.n_layers; i++) printf("%s%d", i ? " " : "", kept[i]);
        printf("], heads %d -> %d, ffn %d -> %d, hidden %d -> %d; %.2fM -> %.2fM params -> %s\n",
               r.n_heads_in, r.n_heads, r.ffn_dim_in, r.ffn_dim, r.dim_in, r.dim,
               (double)r.params_in / 1e6,
               (double)r.params_out / 1e6, pos[1]);
    }
    free(kept);
    shrink_structured_result_free(&r);
    return CLI_OK;
}
