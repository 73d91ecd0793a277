/*
 * test_tensors.c - the tensor table (src/formats/tensors.c) against what the readers produce
 * and what the writers write.
 *
 *   1. the table itself: every role a config of each architecture has is named in its
 *      Hugging Face family and (if the arch is written as GGUF) in GGUF; names are unique per
 *      format and map back to their role; llama2.c positions are unique;
 *   2. every tensor of every model of ../shared (and the repository's fixtures) is a table row
 *      with the table's shape, every role the config needs is there, and the model binds;
 *   3. tiny random models of every architecture written as GGUF, Hugging Face and llama2.c
 *      load back with exactly the canonical tensors.
 *
 * Built a second time with -DSK_TEST_EXTRA_ROLE (test_tensors_extra: only tensors.c and this
 * file recompiled), where the table has one more row, a per-layer vector present while
 * sk_test_extra_role is set: 4. proves that the writers, the loader and convert carry that
 * tensor and that every other path is unchanged, i.e. a new tensor kind is one row.
 */
#include "convert/init.h"
#include "formats/formats.h"
#include "model/model.h"
#include "model/source.h"
#include "test_util.h"

#include <unistd.h>

#ifdef SK_TEST_EXTRA_ROLE
#define NAME "test_tensors_extra"
#else
#define NAME "test_tensors"
#endif

static char tmpdir[256];

/* A small config of architecture `arch` (GQA where the family has it). */
static sk_config tiny_config(const sk_arch *a) {
    sk_config c;
    memset(&c, 0, sizeof c);
    c.arch = a;
    c.dim = 16;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = a->fused_qkv ? 4 : 2;
    c.head_dim = 4;
    c.ffn_dim = 32;
    c.vocab_size = 64;
    c.max_seq_len = 32;
    c.norm_eps = 1e-5f;
    c.rope_theta = a->pos == SK_POS_ROPE ? 10000.0f : 0;
    c.rope_layout = SK_ROPE_HALF;
    c.tied = a->tied;
    c.qkv_bias = a->qkv_bias;
    c.bos_id = 1;
    c.eos_id = 2;
    c.add_bos = a->add_bos;
    return c;
}

/* The role and layer of file tensor `name` of a config-c model (its format's names), -1 if
 * none: sk_trole_find, checked against a search written out here. */
static int role_of(const sk_config *c, int gguf, const char *name, int *layer) {
    int n, found = -1, found_l = -2;
    const sk_trole *roles = sk_troles(&n);
    for (int i = 0; i < n && found < 0; i++) {
        const sk_trole *r = &roles[i];
        for (int l = r->layer ? 0 : -1; l < (r->layer ? c->n_layers : 0) && found < 0; l++) {
            char base[128], full[160];
            if (!sk_trole_name(r, c->arch, gguf ? SK_TNAME_GGUF : SK_TNAME_HF, l, base,
                               sizeof base))
                break;
            const char *pre[] = {gguf || r->top ? "" : c->arch->hf_prefix, ""};
            for (int p = 0; p < 2; p++) {
                snprintf(full, sizeof full, "%s%s", pre[p], base);
                if (strcmp(full, name) == 0) {
                    found = i;
                    found_l = l;
                }
            }
        }
    }
    int l2 = -2, r2 = sk_trole_find(c->arch, gguf ? SK_TNAME_GGUF : SK_TNAME_HF, name,
                                    c->n_layers, &l2);
    CHECK(r2 == found && (found < 0 || l2 == found_l), "sk_trole_find('%s') = %d, want %d",
          name, r2, found);
    *layer = found_l;
    return found;
}

/* ==== 1. the table ======================================================================= */

static void test_table(void) {
    int n;
    const sk_trole *roles = sk_troles(&n);
#ifdef SK_TEST_EXTRA_ROLE
    CHECK(n == SK_ROLE_COUNT + 1, "the test build has one more row (%d rows)", n);
#else
    CHECK(n == SK_ROLE_COUNT, "%d rows, %d named roles", n, SK_ROLE_COUNT);
#endif
    for (int i = 0; i < n; i++) {
        const sk_trole *r = &roles[i];
        /* a per-layer name has the layer in it, a model name has none */
        const char *pats[] = {r->hf[SK_HF_LLAMA], r->hf[SK_HF_GPT2], r->gguf};
        for (int k = 0; k < 3; k++)
            if (pats[k])
                CHECK((strstr(pats[k], "%d") != NULL) == (r->layer != 0),
                      "row %d: name '%s' and per-layer flag disagree", i, pats[k]);
        CHECK(r->gguf, "row %d has a GGUF name", i);
        CHECK(!r->l2c || r->hf[SK_HF_LLAMA], "row %d: a llama2.c array has a Llama name", i);
        for (int j = 0; j < i; j++) {
            CHECK(!r->l2c || r->l2c != roles[j].l2c, "rows %d and %d: same llama2.c position",
                  i, j);
            CHECK(strcmp(r->gguf, roles[j].gguf) != 0, "rows %d and %d: same GGUF name", i, j);
            for (int f = 0; f < SK_HF_FAMILIES; f++)
                CHECK(!r->hf[f] || !roles[j].hf[f] || strcmp(r->hf[f], roles[j].hf[f]) != 0,
                      "rows %d and %d: same HF name", i, j);
        }
    }
    /* per architecture: names of every role a config has, and the round trip
     * GGUF name -> role -> HF name -> role */
    for (int ai = 0; sk_arch_at(ai); ai++) {
        const sk_arch *a = sk_arch_at(ai);
        sk_config c = tiny_config(a);
        CHECK(sk_config_validate(&c, a->name) == SHRINK_OK, "%s: tiny config", a->name);
        sk_wtensor *ts;
        int64_t nt;
        if (sk_wtensors(&c, &ts, &nt) != SHRINK_OK) {
            CHECK(0, "%s: sk_wtensors", a->name);
            continue;
        }
        int64_t want = 0;
        for (int i = 0; i < n; i++)
            if (sk_trole_need(&roles[i], &c) == 1) want += roles[i].layer ? c.n_layers : 1;
        CHECK(nt == want, "%s: %lld canonical tensors, table says %lld", a->name,
              (long long)nt, (long long)want);
        for (int64_t i = 0; i < nt; i++) {
            const sk_trole *r = sk_trole_at(ts[i].role);
            char hf[96], gg[96];
            int l = -2;
            CHECK(sk_trole_name(r, a, SK_TNAME_HF, ts[i].layer, hf, sizeof hf) &&
                      strcmp(hf, ts[i].name) == 0,
                  "%s: '%s' is its HF name", a->name, ts[i].name);
            CHECK(role_of(&c, 0, ts[i].name, &l) == (int)ts[i].role && l == ts[i].layer,
                  "%s: HF '%s' maps back to its role", a->name, ts[i].name);
            if (!a->gguf_write) continue;
            sk_trole_name(r, a, SK_TNAME_GGUF, ts[i].layer, gg, sizeof gg);
            CHECK(role_of(&c, 1, gg, &l) == (int)ts[i].role && l == ts[i].layer,
                  "%s: GGUF '%s' maps back to '%s'", a->name, gg, ts[i].name);
            CHECK(ts[i].rows == sk_tdim_value(&c, r->rows) &&
                      ts[i].cols == sk_tdim_value(&c, r->cols) &&
                      ts[i].n_dims == (r->cols == SK_TD_1 ? 1 : 2),
                  "%s: '%s' has the table's shape", a->name, ts[i].name);
        }
        sk_free(ts);
    }
}

/* ==== 2. the models the readers read ===================================================== */

/* Every file tensor of `path` is a table row with the table's shape; every needed role is
 * present; the model binds. */
static void check_model(const char *path) {
    shrink_load_params lp = shrink_load_params_default();
    lp.no_tokenizer = true;
    shrink_model *m = NULL;
    if (sk_model_open(&m, path, &lp) != SHRINK_OK) {
        CHECK(0, "%s: open: %s", path, shrink_last_error());
        return;
    }
    const sk_config *c = &m->cfg;
    int gguf = strcmp(m->format, "gguf") == 0, n;
    const sk_trole *roles = sk_troles(&n);
    int64_t found = 0, needed = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const sk_tensor *t = &m->tensors[i];
        int l = -2, ri = role_of(c, gguf, t->name, &l);
        CHECK(ri >= 0, "%s: tensor '%s' is a row of the tensor table", path, t->name);
        if (ri < 0) continue;
        const sk_trole *r = &roles[ri];
        int64_t rows = sk_tdim_value(c, r->rows), cols = sk_tdim_value(c, r->cols);
        int conv = !gguf && sk_trole_conv1d(r, c->arch);
        int ok = r->cols == SK_TD_1 ? t->n_dims == 1 && t->shape[0] == rows
                                    : t->n_dims == 2 && t->shape[0] == (conv ? cols : rows) &&
                                          t->shape[1] == (conv ? rows : cols);
        CHECK(ok, "%s: '%s' has the table's shape", path, t->name);
        found += sk_trole_need(r, c) == 1;
    }
    for (int i = 0; i < n; i++)
        if (sk_trole_need(&roles[i], c) == 1) needed += roles[i].layer ? c->n_layers : 1;
    CHECK(found == needed, "%s: %lld of the %lld tensors the config needs", path,
          (long long)found, (long long)needed);
    shrink_model_free(m);
    m = NULL;
    CHECK(shrink_model_load(&m, path, &lp) == SHRINK_OK, "%s: binds: %s", path,
          shrink_last_error());
    shrink_model_free(m);
}

static void test_models(void) {
    static const char *const shared_models[] = {
        "models/stories260K/stories260K.bin", "models/stories260K-hf", "models/tiny-gpt2",
        "models/tiny-llama-gqa", "models/mix-llama-14m", "models/mix-gpt2-30m",
        "fixtures/gguf/stories260K.gguf", "fixtures/gguf/mix-llama-14m-Q4_K_M.gguf",
    };
    char buf[1024];
    for (size_t i = 0; i < sizeof shared_models / sizeof shared_models[0]; i++)
        if (test_need_shared(buf, sizeof buf, shared_models[i])) check_model(buf);
    /* the repository's own models (the fuzz corpus's GGUF models, the embedded stories260K) */
    static const char *const repo_models[] = {
        "models/stories260K/stories260K.bin", "fuzz/corpus/gguf/gpt2-tiny.gguf",
        "fuzz/corpus/gguf/llama-tiny-f32.gguf", "fuzz/corpus/gguf/llama-tiny-f16-untied.gguf",
    };
    for (size_t i = 0; i < sizeof repo_models / sizeof repo_models[0]; i++) {
        CHECK(access(repo_models[i], R_OK) == 0, "%s exists", repo_models[i]);
        check_model(repo_models[i]);
    }
}

/* ==== 3. written models read back ======================================================== */

/* Writes a random model of config c as `fmt` and loads it back: the file holds exactly the
 * canonical tensors (GGUF: plus a repeated tied head where the arch wants it). Returns the
 * loaded model (NULL on failure). */
static shrink_model *write_and_load(const sk_config *c, sk_format fmt, const char *out) {
    sk_init_params ip = {.cfg = *c, .seed = 7, .init_range = 0.02f,
                         .dtype = SHRINK_DTYPE_F32};
    sk_source src;
    sk_init_source(&ip, &src);
    sk_write_opts o = sk_write_opts_default();
    if (sk_write(&src, out, fmt, &o) != SHRINK_OK) {
        CHECK(0, "%s: write: %s", out, shrink_last_error());
        return NULL;
    }
    shrink_load_params lp = shrink_load_params_default();
    lp.no_tokenizer = true;
    shrink_model *m = NULL;
    if (shrink_model_load(&m, out, &lp) != SHRINK_OK) {
        CHECK(0, "%s: load: %s", out, shrink_last_error());
        return NULL;
    }
    sk_wtensor *ts;
    int64_t nt;
    if (sk_wtensors(c, &ts, &nt) != SHRINK_OK) {
        shrink_model_free(m);
        return NULL;
    }
    int gguf = fmt == SK_FORMAT_GGUF;
    CHECK(m->n_tensors == nt, "%s: %lld tensors, %lld canonical", out,
          (long long)m->n_tensors, (long long)nt);
    for (int64_t i = 0; i < nt; i++) {
        char name[96], full[160];
        const sk_trole *r = sk_trole_at(ts[i].role);
        sk_trole_name(r, c->arch, gguf ? SK_TNAME_GGUF : SK_TNAME_HF, ts[i].layer, name,
                      sizeof name);
        snprintf(full, sizeof full, "%s%s", gguf || r->top || fmt == SK_FORMAT_LLAMA2C
                                                ? "" : c->arch->hf_prefix, name);
        int found = 0;
        for (int64_t k = 0; k < m->n_tensors; k++) found += strcmp(m->tensors[k].name, full) == 0;
        CHECK(found == 1, "%s: '%s' written once", out, full);
    }
    sk_free(ts);
    return m;
}

static void test_written(void) {
    for (int ai = 0; sk_arch_at(ai); ai++) {
        const sk_arch *a = sk_arch_at(ai);
        for (int tied = 0; tied < 2; tied++) {
            sk_config c = tiny_config(a);
            c.tied = tied;
            char out[512];
            shrink_model *m;
            snprintf(out, sizeof out, "%s/%s-%d-hf", tmpdir, a->name, tied);
            if ((m = write_and_load(&c, SK_FORMAT_HF, out))) shrink_model_free(m);
            if (a->gguf_write && !(c.qkv_bias && !a->fused_qkv)) {
                snprintf(out, sizeof out, "%s/%s-%d.gguf", tmpdir, a->name, tied);
                if ((m = write_and_load(&c, SK_FORMAT_GGUF, out))) shrink_model_free(m);
            }
            if (!c.qkv_bias && a->ffn == SK_FFN_SWIGLU) {
                snprintf(out, sizeof out, "%s/%s-%d.bin", tmpdir, a->name, tied);
                c.rope_layout = SK_ROPE_HALF;
                if ((m = write_and_load(&c, SK_FORMAT_LLAMA2C, out))) shrink_model_free(m);
            }
        }
    }
}

/* ==== 4. one more row ==================================================================== */

#ifdef SK_TEST_EXTRA_ROLE
static void test_extra_role(void) {
    int n;
    sk_troles(&n);
    const sk_trole *x = sk_trole_at(n - 1);
    const sk_arch *archs[] = {sk_arch_find("llama"), sk_arch_find("gpt2")};
    for (int ai = 0; ai < 2; ai++) {
        sk_config c = tiny_config(archs[ai]);
        sk_wtensor *ts;
        int64_t n_off, n_on;
        sk_test_extra_role = 0;
        sk_wtensors(&c, &ts, &n_off);
        sk_free(ts);
        sk_test_extra_role = 1;
        sk_wtensors(&c, &ts, &n_on);
        sk_free(ts);
        CHECK(n_on == n_off + c.n_layers, "%s: the flag adds one tensor per layer",
              c.arch->name);

        static const sk_format fmts[] = {SK_FORMAT_GGUF, SK_FORMAT_HF};
        for (int f = 0; f < 2; f++) {
            char out[512], conv[512], name[96], full[160];
            int gguf = fmts[f] == SK_FORMAT_GGUF;
            snprintf(out, sizeof out, "%s/extra-%s.%s", tmpdir, c.arch->name,
                     gguf ? "gguf" : "hf");
            sk_test_extra_role = 1;
            shrink_model *m = write_and_load(&c, fmts[f], out);
            if (!m) continue;
            sk_trole_name(x, c.arch, gguf ? SK_TNAME_GGUF : SK_TNAME_HF, 1, name, sizeof name);
            snprintf(full, sizeof full, "%s%s", gguf ? "" : c.arch->hf_prefix, name);
            const sk_tensor *t = NULL;
            for (int64_t k = 0; k < m->n_tensors; k++)
                if (strcmp(m->tensors[k].name, full) == 0) t = &m->tensors[k];
            CHECK(t && t->n_dims == 1 && t->shape[0] == c.dim && t->dtype == SHRINK_DTYPE_F32,
                  "%s: '%s' read back as a (D) vector", out, full);
            int ones = t != NULL;
            for (int64_t k = 0; t && k < c.dim; k++) {
                float v;
                memcpy(&v, (const uint8_t *)t->data + 4 * k, 4);
                ones &= v == 1.0f;
            }
            CHECK(ones, "%s: '%s' holds init's ones", out, full);
            int64_t with = m->n_params;
            shrink_model_free(m);

            /* convert to the other format: the tensor comes along */
            snprintf(conv, sizeof conv, "%s/extra-%s-conv.%s", tmpdir, c.arch->name,
                     gguf ? "hf" : "gguf");
            shrink_load_params lp = shrink_load_params_default();
            lp.no_tokenizer = true;
            sk_write_opts o = sk_write_opts_default();
            m = NULL;
            CHECK(sk_model_open(&m, out, &lp) == SHRINK_OK &&
                      sk_model_write(m, conv, gguf ? SK_FORMAT_HF : SK_FORMAT_GGUF, &o) ==
                          SHRINK_OK,
                  "%s: convert: %s", conv, shrink_last_error());
            shrink_model_free(m);
            m = NULL;
            sk_trole_name(x, c.arch, gguf ? SK_TNAME_HF : SK_TNAME_GGUF, 0, name, sizeof name);
            snprintf(full, sizeof full, "%s%s", gguf ? c.arch->hf_prefix : "", name);
            int found = 0;
            if (shrink_model_load(&m, conv, &lp) == SHRINK_OK) {
                for (int64_t k = 0; k < m->n_tensors; k++)
                    found += strcmp(m->tensors[k].name, full) == 0;
                CHECK(m->n_params == with, "%s: %lld parameters, %lld before", conv,
                      (long long)m->n_params, (long long)with);
            }
            CHECK(found == 1, "%s: '%s' converted", conv, full);
            shrink_model_free(m);

            /* without the flag the file still loads: the extra tensor is not bound */
            sk_test_extra_role = 0;
            m = NULL;
            CHECK(shrink_model_load(&m, out, &lp) == SHRINK_OK &&
                      m->n_params == with - (int64_t)c.n_layers * c.dim,
                  "%s: without the flag, loaded without the extra tensor", out);
            shrink_model_free(m);
        }
        /* llama2.c has no place for it: refused, naming it */
        if (c.arch->ffn == SK_FFN_SWIGLU) {
            sk_test_extra_role = 1;
            char out[512];
            snprintf(out, sizeof out, "%s/extra.bin", tmpdir);
            sk_init_params ip = {.cfg = c, .seed = 7, .init_range = 0.02f,
                                 .dtype = SHRINK_DTYPE_F32};
            sk_source src;
            sk_init_source(&ip, &src);
            sk_write_opts o = sk_write_opts_default();
            CHECK(sk_write(&src, out, SK_FORMAT_LLAMA2C, &o) == SHRINK_ERR_UNSUPPORTED &&
                      strstr(shrink_last_error(), "extra"),
                  "llama2.c refuses the extra tensor: %s", shrink_last_error());
        }
    }
    sk_test_extra_role = 0;
}
#endif

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/" NAME "-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    printf("  the table: names, shapes, round trips\n");
    test_table();
    printf("  every tensor of the models read binds through the table\n");
    test_models();
    printf("  written models read back with the canonical tensors\n");
    test_written();
#ifdef SK_TEST_EXTRA_ROLE
    printf("  one more row: written, read, converted; llama2.c refuses it\n");
    test_extra_role();
#endif
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary(NAME);
}
