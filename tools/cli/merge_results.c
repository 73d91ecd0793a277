/*
 * merge_results.c - `shrink merge-results FILE... [--json] [--top N]`: joins the --json
 * outputs of a sweep run in shards (`shrink sensitivity --shard I/N --json > shard-I.json`, one
 * per machine or Slurm array task, or `shrink compare --shard I/N`; docs/scale.md) and prints
 * what the unsharded run prints. shrink_sensitivity_merge / shrink_compare_merge check that the
 * files are the shards of one sweep, all present.
 */
#include "cli.h"

#include <stddef.h>
#include <string.h>

typedef struct merge_results_opts {
    int32_t top;
} merge_results_opts;

#define O(f) offsetof(merge_results_opts, f)
static const cli_opt merge_results_rows[] = {
    {"--top", NULL, CLI_OPT_INT, O(top), "N", 1, 1 << 30,
     "print only the N least sensitive units (text output)"},
};
#undef O

enum { MAX_SHARDS = 4096 };

static const cli_spec spec = {
    .name        = "merge-results",
    .synopsis    = "SHARD.json... [--top N] [--json]",
    .description = "Joins the --json files of a sweep run in shards, e.g.\n"
                   "  shrink sensitivity M --calib T --shard 0/2 --json > s0.json   (machine 1)\n"
                   "  shrink sensitivity M --calib T --shard 1/2 --json > s1.json   (machine 2)\n"
                   "  shrink merge-results s0.json s1.json\n"
                   "and prints what one unsharded run prints (the same numbers, ranked over all\n"
                   "units). The same for `shrink compare --shard I/N` outputs (the comparison\n"
                   "of the whole text, as --no-speed prints it). The files must be the shards of\n"
                   "one sweep (same model, text, unit, tokens), each shard once: otherwise a\n"
                   "message names the file and what differs.",
    .opts        = merge_results_rows,
    .n_opts      = sizeof merge_results_rows / sizeof merge_results_rows[0],
    .n_pos_min   = 1,
    .n_pos_max   = MAX_SHARDS,
};

/* A compare shard's JSON starts with {"compare_shard":true (tools/cli/compare.c). */
static bool is_compare_shard(const char *path) {
    char  head[32] = "";
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    size_t n = fread(head, 1, sizeof head - 1, f);
    fclose(f);
    head[n] = '\0';
    return strncmp(head, "{\"compare_shard\":", 17) == 0;
}

int cmd_merge_results(int argc, char **argv) {
    cli_common          common;
    static char        *pos[MAX_SHARDS];
    int                 n_pos;
    merge_results_opts  opts = {0};
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    for (int i = 0; i < n_pos; i++) {
        cli_io io = {"SHARD", pos[i], CLI_IN};
        if ((rc = cli_check_io(&io, 1)) != CLI_OK) return rc;
    }
    if (cli_recipe_is_shard(pos[0]))   /* shrink recipe run --shard I/N outputs */
        return cli_recipe_merge(pos, n_pos, common.json);
    if (is_compare_shard(pos[0])) {   /* shrink compare --shard I/N outputs */
        shrink_compare_merged m;
        shrink_status st = shrink_compare_merge((const char *const *)pos, n_pos, &m);
        if (st) return cli_fail_status(st);
        rc = cli_compare_print_merged(&m, common.json);
        shrink_compare_merged_free(&m);
        return rc;
    }
    shrink_sensitivity_result r;
    shrink_status st = shrink_sensitivity_merge((const char *const *)pos, n_pos, &r);
    if (st) return cli_fail_status(st);
    rc = cli_print_sensitivity(r.input, r.calib, &r, common.json, opts.top);
    shrink_sensitivity_result_free(&r);
    return rc;
}
