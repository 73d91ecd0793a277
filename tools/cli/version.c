/*
 * version.c - `shrink version`: the library version, the CPU kernels chosen at run time and
 * the number of threads the kernels would use.
 */
#include "cli.h"

static const cli_spec spec = {
    .name        = "version",
    .synopsis    = "[options]",
    .description = "Prints the version of shrink, the kernels chosen for this CPU and the\n"
                   "number of threads (--threads N changes it).",
    .n_pos_max   = 0,
};

int cmd_version(int argc, char **argv) {
    cli_common common;
    char      *pos[1];
    int        n_pos;
    int        rc = cli_parse(&spec, argc, argv, NULL, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    shrink_set_threads(common.threads);
    if (common.json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_key(&j, "version");
        cli_json_str(&j, SHRINK_VERSION);
        cli_json_key(&j, "kernels");
        cli_json_str(&j, shrink_kernels_name());
        cli_json_key(&j, "threads");
        cli_json_int(&j, shrink_get_threads());
        cli_json_end(&j);
    } else {
        printf("shrink %s\nkernels: %s\nthreads: %d\n", SHRINK_VERSION, shrink_kernels_name(),
               shrink_get_threads());
    }
    return CLI_OK;
}
