/*
 * test_manifest_lib.c - the library side of the manifest (src/formats/manifest.c,
 * docs/manifest.md) and of the report (src/eval/report.c), without the CLI: the text a source
 * gives is what every writer stores (GGUF key, Hugging Face shrink_manifest.json) and what
 * shrink_manifest_read returns, byte for byte; a text that is not a JSON object is refused
 * before anything is written; no source, no manifest; verify finds match / changed / missing
 * against SHA-256s computed here by the FIPS-tested shrink_sha256 over the file bytes; every
 * allocation of read, verify and report failing in turn gives SHRINK_ERR_NOMEM without a leak.
 */
#include "test_util.h"

#include "../src/core/core.h"

#include <unistd.h>

static char dir[] = "/tmp/test_manifest_lib.XXXXXX";
static char text[4096];

static const char *source(void *user) { return (const char *)user; }

static void path_in(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", dir, name); }

static int write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fputs(s, f);
    return fclose(f) == 0;
}

static void hex_of_string(const char *s, char hex[65]) {
    uint8_t d[32];
    shrink_sha256(s, strlen(s), d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static void test_write_read(const char *cfg) {
    char gguf[300], hf[300], bad[300];
    path_in(gguf, sizeof gguf, "m.gguf");
    path_in(hf, sizeof hf, "hf");
    path_in(bad, sizeof bad, "bad.gguf");
    shrink_init_params ip = shrink_init_params_default();
    ip.config_path = cfg;
    ip.seed = 3;
    /* no source: no manifest */
    shrink_set_manifest_source(NULL, NULL);
    shrink_manifest *m = (shrink_manifest *)1;
    CHECK(shrink_model_init(gguf, &ip, NULL) == SHRINK_OK, "init: %s", shrink_last_error());
    CHECK(shrink_manifest_read(gguf, &m) == SHRINK_OK && m == NULL, "a manifest without a source");
    /* a source: the same bytes back, from GGUF and from a HF folder */
    char in1[300], hex[65];
    path_in(in1, sizeof in1, "calib.txt");
    CHECK(write_file(in1, "one two three\n"), "write %s", in1);
    hex_of_string("one two three\n", hex);
    snprintf(text, sizeof text,
             "{\"manifest_version\":1,\"version\":\"9.9\",\"command\":[\"shrink\",\"x\"],"
             "\"date\":\"1970-01-01T00:00:00Z\",\"threads\":3,\"seeds\":{\"--seed\":5},"
             "\"inputs\":[{\"arg\":\"--calib\",\"path\":\"%s\",\"bytes\":14,\"sha256\":\"%s\"},"
             "{\"arg\":\"IN\",\"path\":\"%s/none\",\"bytes\":1,\"sha256\":\"%s\"}],"
             "\"quality\":{\"kl\":0.25}}", in1, hex, dir, hex);
    shrink_set_manifest_source(source, text);
    CHECK(shrink_model_init(gguf, &ip, NULL) == SHRINK_OK, "init: %s", shrink_last_error());
    shrink_convert_params cp = shrink_convert_params_default();
    CHECK(shrink_convert(gguf, hf, &cp, NULL) == SHRINK_OK, "convert: %s", shrink_last_error());
    const char *paths[2] = {gguf, hf};
    for (int k = 0; k < 2; k++) {
        m = NULL;
        CHECK(shrink_manifest_read(paths[k], &m) == SHRINK_OK && m, "%s: %s", paths[k], shrink_last_error());
        if (!m) continue;
        CHECK(!strcmp(m->json, text), "%s: stored text differs", paths[k]);
        CHECK(!strcmp(m->version, "9.9") && m->threads == 3 && m->n_command == 2 &&
                  !strcmp(m->command[1], "x") && m->n_inputs == 2 && m->n_seeds == 1 &&
                  m->seeds[0].value == 5 && m->n_quality == 1 && m->quality[0].value == 0.25,
              "%s: fields", paths[k]);
        int32_t bad_n = -1;
        CHECK(shrink_manifest_verify(m, &bad_n) == SHRINK_OK && bad_n == 1 &&
                  m->inputs[0].state == SHRINK_INPUT_MATCH && m->inputs[1].state == SHRINK_INPUT_MISSING,
              "%s: verify %d, states %s %s", paths[k], bad_n, shrink_input_state_name(m->inputs[0].state),
              shrink_input_state_name(m->inputs[1].state));
        shrink_manifest_free(m);
    }
    /* the input changes */
    CHECK(write_file(in1, "one two thre3\n"), "rewrite");
    m = NULL;
    int32_t nb = 0;
    CHECK(shrink_manifest_read(gguf, &m) == SHRINK_OK && m && shrink_manifest_verify(m, &nb) == SHRINK_OK &&
              m->inputs[0].state == SHRINK_INPUT_CHANGED && m->inputs[0].now_bytes == 14 && nb == 2,
          "changed input not found");
    shrink_manifest_free(m);
    /* not an object: refused, nothing written */
    shrink_set_manifest_source(source, "[1, 2]");
    CHECK(shrink_model_init(bad, &ip, NULL) == SHRINK_ERR_ARG && strstr(shrink_last_error(), bad),
          "a non-object manifest: %s", shrink_last_error());
    CHECK(access(bad, F_OK) != 0, "a refused write left %s", bad);
    shrink_set_manifest_source(source, text);
}

/* ---- out of memory ------------------------------------------------------------------------ */

typedef shrink_status (*call_fn)(void *user);

static shrink_status call_read_verify(void *user) {
    shrink_manifest *m = NULL;
    shrink_status st = shrink_manifest_read((const char *)user, &m);
    if (!st && m) st = shrink_manifest_verify(m, NULL);
    shrink_manifest_free(m);
    return st;
}

static shrink_status call_report(void *user) {
    char out[300];
    path_in(out, sizeof out, "r.html");
    const char *in[1] = {(const char *)user};
    shrink_report_params p = {0};
    p.title = "t";
    return shrink_report(in, 1, out, &p, NULL);
}

/* Every allocation of fn failing in turn: NOMEM (or success), never a leak. */
static void fail_each(const char *name, call_fn fn, void *user) {
    const size_t live = sk_alloc_bytes_live();
    long n = 1;
    for (; n < 5000; n++) {
        sk_alloc_fail_after(n);
        shrink_status st = fn(user);
        int hit = sk_alloc_failed();
        sk_alloc_fail_after(0);
        CHECK(!hit || st == SHRINK_ERR_NOMEM || st == SHRINK_OK, "%s #%ld: %s", name, n, shrink_last_error());
        CHECK(sk_alloc_bytes_live() == live, "%s #%ld: leak", name, n);
        if (!hit) {
            CHECK(st == SHRINK_OK, "%s: %s", name, shrink_last_error());
            break;
        }
        if (test_failed > 10) break;
    }
    CHECK(n > 1, "%s allocates nothing", name);
}

int main(void) {
    if (!mkdtemp(dir)) return test_summary("test_manifest_lib");
    char cfg[300], cmpj[300], gguf[300];
    path_in(cfg, sizeof cfg, "config.json");
    CHECK(write_file(cfg, "{\"model_type\": \"llama\", \"hidden_size\": 32, \"intermediate_size\": 64,"
                          " \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
                          " \"num_key_value_heads\": 2, \"vocab_size\": 64,"
                          " \"max_position_embeddings\": 32}"), "config");
    test_write_read(cfg);
    path_in(gguf, sizeof gguf, "m.gguf");
    path_in(cmpj, sizeof cmpj, "c.json");
    char cj[1200];
    snprintf(cj, sizeof cj, "{\"models\":[{\"name\":\"a\",\"path\":\"%s\",\"is_base\":true,\"file_bytes\":10,"
             "\"kl_mean\":0,\"tg_tokens_per_s\":5},{\"name\":\"b\",\"path\":\"/x\",\"file_bytes\":5,"
             "\"kl_mean\":0.1,\"pp_tokens_per_s\":9}]}", gguf);
    CHECK(write_file(cmpj, cj), "c.json");
    shrink_report_result r;
    char out[300];
    path_in(out, sizeof out, "r.html");
    const char *in[1] = {cmpj};
    CHECK(shrink_report(in, 1, out, NULL, &r) == SHRINK_OK && r.n_points == 2 && r.n_pareto == 2 &&
              r.n_bars == 2, "report: %s (%d %d %d)", shrink_last_error(), r.n_points, r.n_pareto, r.n_bars);
    fail_each("shrink_manifest_read + verify", call_read_verify, gguf);
    fail_each("shrink_report", call_report, cmpj);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("test_manifest_lib: could not remove %s\n", dir);
    return test_summary("test_manifest_lib");
}
