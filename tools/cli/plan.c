/*
 * plan.c - `shrink plan MODEL --calib FILE (--bytes N | --bits B | --max-kl K) [--to OUT]`:
 * one quantization type per matrix chosen from the measured KL of each matrix alone in each
 * candidate type, least summed KL within the budget (shrink_plan does the work; this file
 * parses and prints).
 *
 * stdout: one line per matrix (type, bytes, KL alone; --verbose: every candidate), then the
 * totals, the predicted KL and, with --to, the written file's measured KL; or with --json one
 * object. stderr: progress with an ETA (measurements).
 */
#include "cli.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

typedef struct plan_opts {
    const char *calib;
    uint64_t    bytes;
    double      bits;
    double      max_kl;
    int32_t     calib_tokens;
    int32_t     calib_ctx;
    const char *types;
    const char *to;
    bool        no_imatrix;
    bool        verbose;
    bool        measure_all;
    bool        recipe;
    const char *assign;
} plan_opts;

#define O(f) offsetof(plan_opts, f)
static const cli_opt plan_rows[] = {
    {"--calib", "-f", CLI_OPT_STR, O(calib), "FILE", 0, 0,
     "UTF-8 text every KL is measured on (required)"},
    {"--bytes", NULL, CLI_OPT_U64, O(bytes), "N", 0, 0,
     "budget: the output file's size at most, header and manifest included"},
    {"--bits", "--bpw", CLI_OPT_FLOAT, O(bits), "B", 0.5, 64,
     "budget: bits per weight at most (8 x tensor bytes / elements, as quantize prints)"},
    {"--max-kl", NULL, CLI_OPT_FLOAT, O(max_kl), "K", 1e-300, 1e300,
     "budget: the smallest file whose predicted KL is at most K"},
    {"--calib-tokens", NULL, CLI_OPT_INT, O(calib_tokens), "N", 2, 100000000,
     "tokens of the text used (default 1024)"},
    {"--calib-ctx", NULL, CLI_OPT_INT, O(calib_ctx), "N", 1, 1000000,
     "tokens per window, each from position 0 (default min(512, context))"},
    {"--types", NULL, CLI_OPT_STR, O(types), "LIST", 0, 0,
     "comma-separated candidate types (default q2_K,q3_K,q4_K,q5_K,q6_K,q4_0,q4_1,q5_0,q5_1,"
     "iq4_nl,q8_0,f16)"},
    {"--to", "-o", CLI_OPT_STR, O(to), "OUT", 0, 0,
     "write the planned model (GGUF) and measure its KL on the text"},
    {"--no-imatrix", NULL, CLI_OPT_FLAG, O(no_imatrix), NULL, 0, 0,
     "quantize without the importance of the inputs measured on the text"},
    {"--verbose", "-v", CLI_OPT_FLAG, O(verbose), NULL, 0, 0,
     "print every candidate's bytes, error and KL per matrix (m: measured)"},
    {"--measure-all", NULL, CLI_OPT_FLAG, O(measure_all), NULL, 0, 0,
     "a forward pass for every candidate (default: one per matrix at its anchor type, the first\n"
     "of >= 4.5 bits, the others' KL scaled by their importance-weighted error)"},
    {"--recipe", NULL, CLI_OPT_FLAG, O(recipe), NULL, 0, 0,
     "print the plan as a recipe (docs/recipes.md) that `shrink recipe run` turns into the\n"
     "planned file: a plan step with the chosen types (--assign), the measures in comments"},
    {"--assign", NULL, CLI_OPT_STR, O(assign), "LIST", 0, 0,
     "instead of a budget: the type of every planned matrix, NAME=TYPE,... (what --recipe\n"
     "prints): written with the importance measured on --calib, nothing else measured"},
};
#undef O

static const cli_spec spec = {
    .name        = "plan",
    .synopsis    = "MODEL --calib FILE (--bytes N | --bits B | --max-kl K | --assign LIST)\n"
                   "       [--to OUT.gguf]"
                   " [--calib-tokens N] [--calib-ctx C] [--types LIST] [--measure-all]\n"
                   "       [--no-imatrix]"
                   " [--verbose] [--json] [--recipe]",
    .description = "Chooses one quantization type per matrix for a size budget. For every\n"
                   "matrix and every candidate type whose block divides its rows, the model runs\n"
                   "over --calib with that matrix alone quantized (shrink quantize's importance-\n"
                   "weighted quantizer, the importance measured on the same text) and the mean\n"
                   "KL of its next-token distribution from the original's is measured, by\n"
                   "default at one anchor type per matrix (the others scaled by their weighted\n"
                   "error; --measure-all: every candidate). Then the types of least summed KL\n"
                   "whose file fits the budget are chosen (a knapsack). Prints the plan and its\n"
                   "predicted KL; --to writes it (GGUF, llama.cpp's types by default) and\n"
                   "measures the file's KL on the same text. The plan is a pure function of the\n"
                   "model, the text and the options. docs/plan.md.",
    .opts        = plan_rows,
    .n_opts      = sizeof plan_rows / sizeof plan_rows[0],
    .n_pos_min   = 1,
    .n_pos_max   = 1,
    .model       = true,
};

static void print_json(const char *in, const plan_opts *o, const shrink_plan_result *r) {
    cli_json j;
    cli_json_begin(&j, stdout);
    cli_json_key(&j, "input");          cli_json_str(&j, in);
    cli_json_key(&j, "output");         if (o->to) cli_json_str(&j, o->to); else cli_json_null(&j);
    cli_json_key(&j, "calib");          cli_json_str(&j, o->calib);
    cli_json_key(&j, "calib_tokens");   cli_json_int(&j, r->calib_tokens);
    cli_json_key(&j, "budget_bytes");   cli_json_u64(&j, r->budget_bytes);
    cli_json_key(&j, "min_bytes");      cli_json_u64(&j, r->min_bytes);
    cli_json_key(&j, "file_bytes");     cli_json_u64(&j, r->file_bytes);
    cli_json_key(&j, "header_bytes");   cli_json_u64(&j, r->header_bytes);
    cli_json_key(&j, "fixed_bytes");    cli_json_u64(&j, r->fixed_bytes);
    cli_json_key(&j, "tensor_bytes");   cli_json_u64(&j, r->tensor_bytes);
    cli_json_key(&j, "n_params");       cli_json_int(&j, r->n_params);
    cli_json_key(&j, "bits_per_weight"); cli_json_num(&j, r->bits_per_weight);
    cli_json_key(&j, "predicted_kl");   cli_json_num(&j, r->predicted_kl);
    cli_json_key(&j, "measured_kl");    cli_json_num(&j, r->measured_kl);
    cli_json_key(&j, "n_measured");     cli_json_int(&j, r->n_measured);
    cli_json_key(&j, "tensors");
    cli_json_arr_begin(&j);
    for (int64_t i = 0; i < r->n_tensors; i++) {
        const shrink_plan_tensor *t = &r->tensors[i];
        const shrink_plan_cand *c = &t->cands[t->choice];
        cli_json_obj_begin(&j);
        cli_json_key(&j, "name");  cli_json_str(&j, t->name);
        cli_json_key(&j, "shape");
        cli_json_arr_begin(&j);
        cli_json_int(&j, t->rows);
        cli_json_int(&j, t->cols);
        cli_json_arr_end(&j);
        cli_json_key(&j, "dtype"); cli_json_str(&j, shrink_dtype_name(c->dtype));
        cli_json_key(&j, "bytes"); cli_json_u64(&j, c->bytes);
        cli_json_key(&j, "kl");    cli_json_num(&j, c->kl);
        cli_json_key(&j, "candidates");
        cli_json_arr_begin(&j);
        for (int32_t k = 0; k < t->n_cands; k++) {
            cli_json_obj_begin(&j);
            cli_json_key(&j, "dtype"); cli_json_str(&j, shrink_dtype_name(t->cands[k].dtype));
            cli_json_key(&j, "bytes"); cli_json_u64(&j, t->cands[k].bytes);
            cli_json_key(&j, "kl");    cli_json_num(&j, t->cands[k].kl);
            cli_json_key(&j, "err");   cli_json_num(&j, t->cands[k].err);
            cli_json_key(&j, "measured"); cli_json_bool(&j, t->cands[k].measured);
            cli_json_obj_end(&j);
        }
        cli_json_arr_end(&j);
        cli_json_obj_end(&j);
    }
    cli_json_arr_end(&j);
    cli_json_key(&j, "seconds");        cli_json_num(&j, r->seconds);
    cli_json_key(&j, "peak_rss_bytes"); cli_json_u64(&j, shrink_peak_rss());
    cli_json_end(&j);
}

static void print_text(const char *in, const plan_opts *o, const shrink_plan_result *r) {
    printf("plan of %s: budget %llu bytes, KL measured on %lld tokens of %s (%lld passes)\n",
           in, (unsigned long long)r->budget_bytes, (long long)r->calib_tokens, o->calib,
           (long long)r->n_measured);
    printf("%-28s %13s  %-7s %10s  %10s%s\n", "tensor", "shape", "type", "bytes", "KL alone",
           o->verbose ? "  rel. error" : "");
    for (int64_t i = 0; i < r->n_tensors; i++) {
        const shrink_plan_tensor *t = &r->tensors[i];
        const shrink_plan_cand *c = &t->cands[t->choice];
        char shape[32];
        snprintf(shape, sizeof shape, "%lld x %lld", (long long)t->rows, (long long)t->cols);
        printf("%-28s %13s  %-7s %10llu  %10.3e\n", t->name, shape, shrink_dtype_name(c->dtype),
               (unsigned long long)c->bytes, c->kl);
        if (!o->verbose) continue;
        for (int32_t k = 0; k < t->n_cands; k++)
            printf("%-28s %13s  %c%-6s %10llu  %10.3e%c %10.3e\n", "", "",
                   k == t->choice ? '*' : ' ', shrink_dtype_name(t->cands[k].dtype),
                   (unsigned long long)t->cands[k].bytes, t->cands[k].kl,
                   t->cands[k].measured ? 'm' : ' ', t->cands[k].err);
    }
    /* the types used, by count */
    int count[SHRINK_DTYPE_COUNT] = {0};
    for (int64_t i = 0; i < r->n_tensors; i++)
        count[r->tensors[i].cands[r->tensors[i].choice].dtype]++;
    printf("types:");
    for (int d = 0; d < SHRINK_DTYPE_COUNT; d++)
        if (count[d]) printf(" %s %d", shrink_dtype_name((shrink_dtype)d), count[d]);
    printf("\n");
    printf("file %llu bytes (budget %llu, smallest possible %llu; header %llu, norms and "
           "positions %llu), %.3f bits/weight\n",
           (unsigned long long)r->file_bytes, (unsigned long long)r->budget_bytes,
           (unsigned long long)r->min_bytes, (unsigned long long)r->header_bytes,
           (unsigned long long)r->fixed_bytes, r->bits_per_weight);
    printf("predicted KL %.3e (sum of the chosen matrices' KL alone)\n", r->predicted_kl);
    if (o->to)
        printf("wrote %s: measured KL %.3e on the same %lld tokens\n", o->to, r->measured_kl,
               (long long)r->calib_tokens);
}

/* A recipe value: quoted when it holds a space, a '#' or a quote. */
static void recipe_value(const char *v) {
    if (!strpbrk(v, " \t#\"\\")) {
        printf("%s", v);
        return;
    }
    putchar('"');
    for (; *v; v++) {
        if (*v == '"' || *v == '\\') putchar('\\');
        putchar(*v);
    }
    putchar('"');
}

/* The plan as a recipe: the same options in a plan step (the plan is a pure function of the
 * model, the text and the options, so the run writes the same types), a gate on the budget,
 * and the chosen types as comments. */
static void print_recipe(const char *in, const plan_opts *o, const cli_common *c,
                         const shrink_plan_result *r) {
    printf("# the plan of %s as a recipe (shrink plan --recipe; docs/recipes.md):\n", in);
    printf("#   shrink recipe run THIS.recipe OUT   writes OUT/step-1-plan/model.gguf\n");
    printf("# budget:");
    if (o->bytes) printf(" --bytes %llu", (unsigned long long)o->bytes);
    if (o->bits > 0) printf(" --bits %g", o->bits);
    if (o->max_kl > 0) printf(" --max-kl %g", o->max_kl);
    if (o->assign) printf(" --assign");
    printf("; file %llu bytes, %.3f bits/weight\n", (unsigned long long)r->file_bytes,
           r->bits_per_weight);
    printf("# predicted KL %.3e on %lld tokens of the text; KL alone of each chosen type:\n",
           r->predicted_kl, (long long)r->calib_tokens);
    for (int64_t i = 0; i < r->n_tensors; i++) {
        const shrink_plan_tensor *t = &r->tensors[i];
        printf("#   %-32s %-7s %10.3e\n", t->name, shrink_dtype_name(t->cands[t->choice].dtype),
               t->cands[t->choice].kl);
    }
    printf("input  ");
    recipe_value(in);
    printf("\n\nstep plan calib=");
    recipe_value(o->calib);
    printf(" calib-tokens=%d", o->calib_tokens);
    if (o->calib_ctx) printf(" calib-ctx=%d", o->calib_ctx);
    printf(" assign=");
    for (int64_t i = 0; i < r->n_tensors; i++) {
        const shrink_plan_tensor *t = &r->tensors[i];
        printf("%s%s=%s", i ? "," : "", t->name, shrink_dtype_name(t->cands[t->choice].dtype));
    }
    if (o->types) {
        printf(" types=");
        recipe_value(o->types);
    }
    if (c->tokenizer) {
        printf(" tokenizer=");
        recipe_value(c->tokenizer);
    }
    if (o->no_imatrix) printf(" no-imatrix");
    printf("\n");
}

int cmd_plan(int argc, char **argv) {
    cli_common common;
    char      *pos[1];
    int        n_pos;
    plan_opts  opts = {.calib_tokens = 1024};
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    const int n_budgets = (opts.bytes != 0) + (opts.bits > 0) + (opts.max_kl > 0) +
                          (opts.assign != NULL);
    if (!opts.calib || n_budgets != 1) {
        fprintf(stderr, "shrink plan: %s\n\n", !opts.calib ? "--calib FILE is required"
                : n_budgets ? "give one budget: --bytes N, --bits B, --max-kl K or --assign "
                              "LIST, not both"
                            : "a budget is required: --bytes N, --bits B or --max-kl K (or "
                              "--assign LIST)");
        cli_usage(&spec, stderr);
        return CLI_USAGE;
    }
    cli_io io[] = {{"MODEL", pos[0], CLI_IN},
                   {"--tokenizer", common.tokenizer, CLI_IN},
                   {"--calib", opts.calib, CLI_IN},
                   {"--to", opts.to, CLI_OUT}};
    if ((rc = cli_check_io(io, 4)) != CLI_OK) return rc;
    shrink_set_threads(common.threads);
    shrink_plan_params p = shrink_plan_params_default();
    p.calib_path = opts.calib;
    p.calib_tokens = opts.calib_tokens;
    p.calib_ctx = opts.calib_ctx;
    p.budget_bytes = opts.bytes;
    p.budget_bits = opts.bits;
    p.max_kl = opts.max_kl;
    p.types = opts.types;
    p.no_imatrix = opts.no_imatrix;
    p.measure_all = opts.measure_all;
    p.assign = opts.assign;
    p.tokenizer_path = common.tokenizer;
    p.out = opts.to;
    cli_progress prog;
    cli_progress_start(&prog, "measurements", &common);
    p.progress = cli_progress_cb;
    p.user = &prog;
    shrink_plan_result r;
    shrink_status st = shrink_plan(pos[0], &p, &r);
    cli_progress_end(&prog);
    if (st != SHRINK_OK) {
        const char *msg = shrink_last_error();
        if (msg && *msg && !strstr(msg, pos[0]) && !strstr(msg, opts.calib) &&
            !(opts.to && strstr(msg, opts.to)))
            return cli_fail("%s: %s", pos[0], msg);
        return cli_fail_status(st);
    }
    if (opts.recipe) print_recipe(pos[0], &opts, &common, &r);
    else if (common.json) print_json(pos[0], &opts, &r);
    else print_text(pos[0], &opts, &r);
    shrink_plan_result_free(&r);
    return CLI_OK;
}
