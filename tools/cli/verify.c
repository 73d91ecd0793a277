/*
 * verify.c - `shrink verify MODEL`: reads the manifest of a model shrink wrote
 * (docs/manifest.md) and re-hashes every input it names that still exists at its path:
 * match, changed or missing. Exit 0 only when every input matches.
 */
#include "cli.h"

static const cli_spec spec = {
    .name        = "verify",
    .synopsis    = "MODEL [--json]",
    .description = "Reads the manifest shrink wrote into MODEL (a GGUF file, or a Hugging Face\n"
                   "folder's shrink_manifest.json) and re-hashes (SHA-256) every input it names:\n"
                   "'match' (same size and hash), 'changed' or 'missing' (nothing at the path).\n"
                   "Exit 0 when every input matches, 1 otherwise or when MODEL has no manifest.",
    .n_pos_min   = 1,
    .n_pos_max   = 1,
};

int cmd_verify(int argc, char **argv) {
    cli_common common;
    char      *pos[1];
    int        n_pos;
    int        rc = cli_parse(&spec, argc, argv, NULL, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    cli_io io[] = {{"MODEL", pos[0], CLI_IN}};
    if ((rc = cli_check_io(io, 1)) != CLI_OK) return rc;
    shrink_manifest *m = NULL;
    shrink_status    st = shrink_manifest_read(pos[0], &m);
    if (st) return cli_fail_status(st);
    if (!m)
        return cli_fail("%s: has no manifest (written by another tool, by shrink before 0.1.0, "
                        "with --no-manifest, or a llama2.c file); nothing to verify", pos[0]);
    int32_t bad = 0;
    if ((st = shrink_manifest_verify(m, &bad))) {
        shrink_manifest_free(m);
        return cli_fail_status(st);
    }
    int n_changed = 0, n_missing = 0;
    for (int32_t i = 0; i < m->n_inputs; i++) {
        n_changed += m->inputs[i].state == SHRINK_INPUT_CHANGED;
        n_missing += m->inputs[i].state == SHRINK_INPUT_MISSING;
    }
    if (common.json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_key(&j, "model");
        cli_json_str(&j, pos[0]);
        cli_json_key(&j, "verified");
        cli_json_bool(&j, bad == 0);
        cli_json_key(&j, "n_inputs");
        cli_json_int(&j, m->n_inputs);
        cli_json_key(&j, "n_match");
        cli_json_int(&j, m->n_inputs - bad);
        cli_json_key(&j, "n_changed");
        cli_json_int(&j, n_changed);
        cli_json_key(&j, "n_missing");
        cli_json_int(&j, n_missing);
        cli_json_key(&j, "manifest");
        cli_manifest_json(m, &j);
        cli_json_end(&j);
    } else {
        printf("model:         %s\n", pos[0]);
        cli_manifest_print(m, stdout);
    }
    for (int32_t i = 0; i < m->n_inputs; i++) {
        const shrink_manifest_input *r = &m->inputs[i];
        if (r->state == SHRINK_INPUT_CHANGED)
            fprintf(stderr, "shrink: %s: input %s %s changed: now %llu bytes, sha256 %s; recorded "
                    "%llu bytes, sha256 %s\n", pos[0], r->arg, r->path,
                    (unsigned long long)r->now_bytes, r->now_sha256,
                    (unsigned long long)r->bytes, r->sha256);
        else if (r->state == SHRINK_INPUT_MISSING)
            fprintf(stderr, "shrink: %s: input %s %s is missing (no regular file at that path)\n",
                    pos[0], r->arg, r->path);
    }
    if (bad)
        fprintf(stderr, "shrink: %s: %d of %d input%s do not match (%d changed, %d missing)\n",
                pos[0], (int)bad, (int)m->n_inputs, cli_s(m->n_inputs), n_changed, n_missing);
    else if (!common.json)
        printf("verified:      all %d input%s match\n", (int)m->n_inputs, cli_s(m->n_inputs));
    shrink_manifest_free(m);
    return bad ? CLI_ERR : CLI_OK;
}
