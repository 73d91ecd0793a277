/*
 * report.c - `shrink report JSON|OUT... -o report.html`: one self-contained HTML page from the
 * outputs of `shrink compare --json` (shrink_report): the size-vs-KL Pareto plot, speed bars,
 * the table of variants and the manifests (docs/report.md). A folder argument is a recipe
 * run's OUT (docs/recipes.md): its compare steps' step-N-compare/compare.json.
 */
#include "cli.h"

#include <glob.h>
#include <sys/stat.h>

#include <stddef.h>

typedef struct report_opts {
    const char *out;
    const char *title;
    const char *svg;
} report_opts;

#define O(field) offsetof(report_opts, field)
static const cli_opt report_rows[] = {
    {"--output", "-o", CLI_OPT_STR, O(out), "FILE", 0, 0, "the HTML file to write (required)"},
    {"--title", NULL, CLI_OPT_STR, O(title), "TEXT", 0, 0, "the page title (default: shrink report)"},
    {"--svg", NULL, CLI_OPT_STR, O(svg), "PLOT", 0, 0,
     "write only this plot as an SVG file: pareto, speed, memory, tensors or heatmap\n"
     "(tensors and heatmap: of the first plan or quantize JSON; for documents)"},
};
#undef O

static const cli_spec spec = {
    .name        = "report",
    .synopsis    = "JSON|OUT... -o report.html [--title TEXT] [--svg PLOT] [options]",
    .description = "Writes one self-contained HTML page (inline SVG, no script, nothing fetched\n"
                   "from the network) from the outputs of `shrink compare --json`: every variant's\n"
                   "file size against its KL divergence from the base with the Pareto front, the\n"
                   "decode and prompt-processing speed bars, the peak memory bars, the table of\n"
                   "variants and how each model file was made (its manifest, docs/manifest.md);\n"
                   "from `shrink plan --json` the per-tensor error bars and the per-layer\n"
                   "sensitivity heatmap (each matrix's KL alone), from `shrink quantize --json\n"
                   "--verbose` the per-tensor error bars; from a recipe run's folder its compare\n"
                   "steps, its recipe and each step's command and gates.",
    .opts        = report_rows,
    .n_opts      = sizeof report_rows / sizeof report_rows[0],
    .n_pos_min   = 1,
    .n_pos_max   = 64,
};

static int report_files(char **pos, int n_pos, const report_opts *o, const cli_common *c,
                        const char *run_dir);

int cmd_report(int argc, char **argv) {
    cli_common  common;
    char       *pos[64];
    int         n_pos;
    report_opts opts = {0};
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    if (!opts.out) {
        fprintf(stderr, "shrink report: -o FILE is required\n\n");
        cli_usage(&spec, stderr);
        return CLI_USAGE;
    }
    /* a recipe's OUT folder (docs/recipes.md): the outputs of its compare steps */
    glob_t g[64];
    int    n_glob = 0;
    char  *json[64 * 4];
    int    n_json = 0;
    const char *run_dir = NULL;   /* the first recipe folder: its recipe and steps */
    for (int i = 0; i < n_pos; i++) {
        struct stat sb;
        if (stat(pos[i], &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            if (n_json < 64 * 4) json[n_json++] = pos[i];
            continue;
        }
        char pat[4096];
        if (!run_dir) run_dir = pos[i];
        snprintf(pat, sizeof pat, "%s/step-*-compare/compare.json", pos[i]);
        int found = glob(pat, 0, NULL, &g[n_glob]) == 0;
        /* its plan steps' measured tables (per-tensor errors, the sensitivity heatmap) */
        snprintf(pat, sizeof pat, "%s/step-*-plan/plan.json", pos[i]);
        found |= glob(pat, GLOB_APPEND, NULL, &g[n_glob]) == 0;
        snprintf(pat, sizeof pat, "%s/step-*-try/alt-*-plan/plan.json", pos[i]);
        found |= glob(pat, GLOB_APPEND, NULL, &g[n_glob]) == 0;
        if (!found) {
            globfree(&g[n_glob]);
            for (int k = 0; k < n_glob; k++) globfree(&g[k]);
            return cli_fail("%s: a folder, but not a recipe run with a compare or plan step (no "
                            "step-N-compare/compare.json or plan.json in it)", pos[i]);
        }
        for (size_t k = 0; k < g[n_glob].gl_pathc && n_json < 64 * 4; k++)
            json[n_json++] = g[n_glob].gl_pathv[k];
        n_glob++;
    }
    rc = report_files(json, n_json, &opts, &common, run_dir);
    for (int k = 0; k < n_glob; k++) globfree(&g[k]);
    return rc;
}

static int report_files(char **pos, int n_pos, const report_opts *o, const cli_common *c,
                        const char *run_dir) {
    report_opts opts = *o;
    cli_common common = *c;
    int rc;
    cli_io io[64 * 4 + 1];
    for (int i = 0; i < n_pos; i++) io[i] = (cli_io){"JSON", pos[i], CLI_IN};
    io[n_pos] = (cli_io){"-o", opts.out, CLI_OUT};
    if ((rc = cli_check_io(io, n_pos + 1)) != CLI_OK) return rc;
    shrink_report_result r;
    shrink_report_params p = {opts.title, opts.svg, run_dir};
    shrink_status st = shrink_report((const char *const *)pos, n_pos, opts.out, &p, &r);
    if (st) return cli_fail_status(st);
    if (common.json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_key(&j, "output");
        cli_json_str(&j, opts.out);
        cli_json_key(&j, "n_points");
        cli_json_int(&j, r.n_points);
        cli_json_key(&j, "n_pareto");
        cli_json_int(&j, r.n_pareto);
        cli_json_key(&j, "n_bars");
        cli_json_int(&j, r.n_bars);
        cli_json_key(&j, "n_mem_bars");
        cli_json_int(&j, r.n_mem_bars);
        cli_json_key(&j, "n_tensor_bars");
        cli_json_int(&j, r.n_tensor_bars);
        cli_json_key(&j, "n_cells");
        cli_json_int(&j, r.n_cells);
        cli_json_end(&j);
    } else {
        printf("wrote %s: %d variant%s, %d on the Pareto front, %d speed bar%s, %d memory bar%s, "
               "%d tensor error bar%s, %d heatmap cell%s\n", opts.out, r.n_points,
               cli_s(r.n_points), r.n_pareto, r.n_bars, cli_s(r.n_bars), r.n_mem_bars,
               cli_s(r.n_mem_bars), r.n_tensor_bars, cli_s(r.n_tensor_bars), r.n_cells,
               cli_s(r.n_cells));
    }
    return CLI_OK;
}
