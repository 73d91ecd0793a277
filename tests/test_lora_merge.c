/*
 * test_lora_merge.c - shrink_merge (src/lora/merge.c) against independent references: the
 * merged model's perplexity equals the run-time adapter's (model/lora.c) and ref.json's float64
 * merged value (../shared/fixtures/lora, tools/ref/make_lora_fixture.py) to 1e-5 relative;
 * scale 0 writes exactly the bytes shrink_convert writes; the GGUF adapter merged into a HF
 * folder gives the PEFT merge's perplexity; a quantized base without a dtype is refused and
 * leaves nothing behind. Adapter writers (src/lora/adapter.c): each fixture adapter written
 * back out by shrink as a PEFT folder and as a llama.cpp GGUF adapter, read again, gives the
 * identical perplexity.
 */
#include "test_util.h"
#include "lora_fixture.h"

#include "../include/shrink.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static double ppl_path(const char *path, const char *lora, const int32_t *ids, size_t n) {
    shrink_model *m = NULL;
    if (shrink_model_load(&m, path, NULL) != SHRINK_OK) return -2;
    if (lora && shrink_model_add_lora(m, lora, 1.0) != SHRINK_OK) {
        shrink_model_free(m);
        return -3;
    }
    double p = ppl_of(m, ids, n);
    shrink_model_free(m);
    return p;
}

static int same_bytes(const char *a, const char *b) {
    FILE *f = fopen(a, "rb"), *g = fopen(b, "rb");
    int same = f && g;
    while (same) {
        int x = fgetc(f), y = fgetc(g);
        if (x != y) same = 0;
        if (x == EOF || y == EOF) break;
    }
    if (f) fclose(f);
    if (g) fclose(g);
    return same;
}

static int merge1(const char *base, const char *out, const char *ad, double scale, int dtype,
                  shrink_merge_result *r) {
    shrink_merge_params p = shrink_merge_params_default();
    const char *ads[1] = {ad};
    p.adapters = ads;
    p.scales = &scale;
    p.n_adapters = 1;
    p.dtype = dtype;
    return shrink_merge(base, out, &p, r);
}

int main(void) {
    char mp[4096], tp[4096], pp[4096], gp[4096];
    const char *model = test_need_model(mp, sizeof mp, "mix-llama-14m");
    const char *text = test_need_shared(tp, sizeof tp, "fixtures/lora/text.txt");
    const char *peft = test_need_shared(pp, sizeof pp, "fixtures/lora/mix-llama-14m-peft");
    const char *gguf = test_need_shared(gp, sizeof gp, "fixtures/lora/mix-llama-14m-lora-f32.gguf");
    if (!model || !text || !peft || !gguf) return test_summary("test_lora_merge");
    const double ref_merged = 253.80264238901893; /* ref.json, float64 */

    shrink_model *m = NULL;
    CHECK(shrink_model_load(&m, model, NULL) == SHRINK_OK, "load: %s", shrink_last_error());
    if (!m) return test_summary("test_lora_merge");
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(text_ids(m, text, &ids, &n) == SHRINK_OK, "encode");
    shrink_model_free(m);
    const int full = tokens_to_score(n) == n;
    n = tokens_to_score(n);

    char dir[256], out[512], out2[512], hf[512];
    snprintf(dir, sizeof dir, "/tmp/test_lora_merge_%d", (int)getpid());
    mkdir(dir, 0700);
    snprintf(out, sizeof out, "%s/merged.gguf", dir);
    snprintf(out2, sizeof out2, "%s/other.gguf", dir);
    snprintf(hf, sizeof hf, "%s/merged-hf", dir);

    /* PEFT merged into f32: the run-time adapter's perplexity and float64's */
    shrink_merge_result r;
    CHECK(merge1(model, out, peft, 1.0, SHRINK_DTYPE_F32, &r) == SHRINK_OK, "merge: %s",
          shrink_last_error());
    CHECK(r.n_merged == 42 && r.dtype == SHRINK_DTYPE_F32, "merged %lld matrices",
          (long long)r.n_merged);
    /* the float64 value needs every token; the self-agreements take the first ns */
    const size_t ns = n < 768 ? n : 768;
    if (full) {
        double pf = ppl_path(out, NULL, ids, n);
        printf("  merged %.6f  float64 %.6f\n", pf, ref_merged);
        CHECK(fabs(pf / ref_merged - 1) < 1e-5, "merged %.6f vs float64 %.6f", pf, ref_merged);
    }
    double pm = ppl_path(out, NULL, ids, ns), pr = ppl_path(model, peft, ids, ns);
    printf("  first %zu tokens: merged %.6f  run-time %.6f\n", ns, pm, pr);
    CHECK(pm > 0 && fabs(pm / pr - 1) < 1e-5, "merged %.6f vs run-time %.6f", pm, pr);

    /* llama.cpp's GGUF adapter (q/k rows permuted) merged into a HF folder: the same model */
    CHECK(merge1(model, hf, gguf, 1.0, SHRINK_DTYPE_F32, NULL) == SHRINK_OK, "merge gguf->hf: %s",
          shrink_last_error());
    double ph = ppl_path(hf, NULL, ids, ns);
    CHECK(fabs(ph / pm - 1) < 1e-6, "gguf adapter into HF %.6f vs peft %.6f", ph, pm);

    /* scale 0: exactly what shrink_convert writes */
    CHECK(merge1(model, out, gguf, 0.0, -1, &r) == SHRINK_OK && r.n_merged == 0, "scale 0: %s",
          shrink_last_error());
    CHECK(shrink_convert(model, out2, NULL, NULL) == SHRINK_OK, "convert: %s", shrink_last_error());
    CHECK(same_bytes(out, out2), "scale 0 merge differs from the converted base");

    /* a quantized base without a dtype: refused, nothing written */
    shrink_convert_params cp = shrink_convert_params_default();
    cp.dtype = SHRINK_DTYPE_Q8_0;
    CHECK(shrink_convert(model, out2, &cp, NULL) == SHRINK_OK, "convert q8_0: %s",
          shrink_last_error());
    char q[512];
    snprintf(q, sizeof q, "%s/q.gguf", dir);
    CHECK(merge1(out2, q, peft, 1.0, -1, NULL) == SHRINK_ERR_ARG &&
          strstr(shrink_last_error(), "quantized") && strstr(shrink_last_error(), "--dtype"),
          "quantized base: %s", shrink_last_error());
    CHECK(access(q, F_OK) != 0, "a refused merge left %s", q);
    CHECK(merge1(out2, q, peft, 1.0, SHRINK_DTYPE_Q8_0, NULL) == SHRINK_OK, "merge into q8_0: %s",
          shrink_last_error());

    /* an adapter of another base: refused, nothing written */
    char op[4096];
    const char *o = test_need_model(op, sizeof op, "mix-llama-22m");
    if (o) {
        remove(q);
        CHECK(merge1(o, q, peft, 1.0, -1, NULL) == SHRINK_ERR_FORMAT &&
              strstr(shrink_last_error(), "does not fit"), "wrong base: %s", shrink_last_error());
        CHECK(access(q, F_OK) != 0, "a refused merge left %s", q);
    }
    /* round trips: fixture -> shrink's PEFT folder / GGUF adapter -> the same perplexity */
    const char *ads[2] = {peft, gguf};
    for (int i = 0; i < 2; i++) {
        shrink_model *a = NULL;
        CHECK(shrink_model_load(&a, model, NULL) == SHRINK_OK, "load");
        if (!a) break;
        CHECK(shrink_model_add_lora(a, ads[i], 1.0) == SHRINK_OK, "add: %s", shrink_last_error());
        double p0 = ppl_of(a, ids, ns);
        char rt[2][512];
        snprintf(rt[0], sizeof rt[0], "%s/rt%d-peft", dir, i);
        snprintf(rt[1], sizeof rt[1], "%s/rt%d.gguf", dir, i);
        for (int k = 0; k < 2; k++) {
            CHECK(shrink_model_save_lora(a, 0, rt[k]) == SHRINK_OK, "save %s: %s", rt[k],
                  shrink_last_error());
            double p1 = ppl_path(model, rt[k], ids, ns);
            CHECK(p1 == p0, "%s -> %s: ppl %.9f vs %.9f", ads[i], rt[k], p1, p0);
        }
        /* the adapter's own file is refused as the output */
        CHECK(shrink_model_save_lora(a, 0, ads[i]) != SHRINK_OK, "overwrote %s", ads[i]);
        shrink_model_free(a);
    }

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    shrink_free(ids);
    return test_summary("test_lora_merge");
}
