/*
 * test_lora.c - LoRA adapters applied at run time (model/lora.c) against the independent
 * reference of ../shared/fixtures/lora: ref.json's float64 perplexity of the merged model
 * W + (alpha/r) B A (tools/ref/make_lora_fixture.py, Hugging Face sliding window, ctx 256,
 * stride 128), reproduced by the PEFT folder and by llama.cpp's own GGUF conversion of it;
 * and the bad-input rules (truncated file, a model given as an adapter, NaN, wrong base).
 */
#include "test_util.h"
#include "lora_fixture.h"

#include "../include/shrink.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Copies the first `keep` bytes of src to dst, with a NaN written at byte `nan_at` if >= 0. */
static int copy_bytes(const char *src, const char *dst, long keep, long nan_at) {
    FILE *f = fopen(src, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) { fclose(f); free(b); return -1; }
    fclose(f);
    if (keep < 0 || keep > n) keep = n;
    if (nan_at >= 0) { float v = NAN; memcpy(b + (n - nan_at), &v, 4); }
    FILE *o = fopen(dst, "wb");
    int ok = o && fwrite(b, 1, (size_t)keep, o) == (size_t)keep;
    if (o) fclose(o);
    free(b);
    return ok ? 0 : -1;
}

int main(void) {
    char mp[4096], tp[4096], pp[4096], gp[4096];
    const char *model = test_need_model(mp, sizeof mp, "mix-llama-14m");
    const char *text = test_need_shared(tp, sizeof tp, "fixtures/lora/text.txt");
    const char *peft = test_need_shared(pp, sizeof pp, "fixtures/lora/mix-llama-14m-peft");
    const char *gguf = test_need_shared(gp, sizeof gp, "fixtures/lora/mix-llama-14m-lora-f32.gguf");
    if (!model || !text || !peft || !gguf) return test_summary("test_lora");
    /* ref.json (float64): base 248.63052382882978, merged 253.80264238901893 */
    const double ref_base = 248.63052382882978, ref_merged = 253.80264238901893;

    shrink_model *m = NULL;
    CHECK(shrink_model_load(&m, model, NULL) == SHRINK_OK, "load: %s", shrink_last_error());
    if (!m) return test_summary("test_lora");
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(text_ids(m, text, &ids, &n) == SHRINK_OK, "encode");
    CHECK(n == 5492, "tokens %zu, ref.json says 5492", n);

    const int full = tokens_to_score(n) == n;
    if (!full) n = tokens_to_score(n);
    double b = ppl_of(m, ids, n);
    if (full) CHECK(fabs(b / ref_base - 1) < 1e-4, "base ppl %.6f vs float64 %.6f", b, ref_base);
    double p_first = 0;
    const char *ads[2] = {peft, gguf};
    for (int i = 0; i < 2; i++) {
        shrink_model *a = NULL;
        CHECK(shrink_model_load(&a, model, NULL) == SHRINK_OK, "load");
        CHECK(shrink_model_add_lora(a, ads[i], 1.0) == SHRINK_OK, "add %s: %s", ads[i],
              shrink_last_error());
        shrink_lora_info li;
        CHECK(shrink_model_lora(a, 0, &li) == SHRINK_OK && li.rank == 8 && li.alpha == 16 &&
              li.n_pairs == 42, "info: rank %lld alpha %g pairs %lld", (long long)li.rank,
              li.alpha, (long long)li.n_pairs);
        double p = ppl_of(a, ids, n);
        printf("  %s: ppl %.6f (float64 merged %.6f)\n", li.format, p, ref_merged);
        if (full)
            CHECK(fabs(p / ref_merged - 1) < 1e-4, "%s: ppl %.6f vs float64 %.6f", ads[i], p,
                  ref_merged);
        if (i == 0) p_first = p;
        else CHECK(fabs(p / p_first - 1) < 1e-6, "gguf %.6f vs peft %.6f", p, p_first);
        /* scale 0 is the base model */
        shrink_model *z = NULL;
        CHECK(shrink_model_load(&z, model, NULL) == SHRINK_OK, "load");
        CHECK(shrink_model_add_lora(z, ads[i], 0.0) == SHRINK_OK, "add scale 0");
        double pz = ppl_of(z, ids, n);
        CHECK(fabs(pz / b - 1) < 1e-6, "scale 0: %.6f vs base %.6f", pz, b);
        shrink_model_free(z);
        shrink_model_free(a);
    }

    /* bad input: truncated, NaN, a model given as adapter, a missing file */
    char tmp[256];
    snprintf(tmp, sizeof tmp, "/tmp/test_lora_%d.gguf", (int)getpid());
    CHECK(copy_bytes(gguf, tmp, 100000, -1) == 0, "copy");
    CHECK(shrink_model_add_lora(m, tmp, 1.0) == SHRINK_ERR_FORMAT &&
          strstr(shrink_last_error(), tmp), "truncated: %s", shrink_last_error());
    CHECK(copy_bytes(gguf, tmp, -1, 8) == 0, "copy");
    CHECK(shrink_model_add_lora(m, tmp, 1.0) == SHRINK_ERR_FORMAT &&
          strstr(shrink_last_error(), "not finite") && strstr(shrink_last_error(), "lora_"),
          "NaN: %s", shrink_last_error());
    remove(tmp);
    CHECK(shrink_model_add_lora(m, "/nonexistent/adapter.gguf", 1.0) != SHRINK_OK, "missing");
    CHECK(shrink_model_n_lora(m) == 0, "failed adds leave the model unchanged");
    double b2 = ppl_of(m, ids, n);
    CHECK(b2 == b, "model changed by failed adds: %.6f vs %.6f", b2, b);
    char other[4096];
    const char *o = test_need_model(other, sizeof other, "mix-llama-22m");
    if (o) {
        shrink_model *m22 = NULL;
        CHECK(shrink_model_load(&m22, o, NULL) == SHRINK_OK, "load 22m");
        if (m22) {
            CHECK(shrink_model_add_lora(m22, peft, 1.0) == SHRINK_ERR_FORMAT &&
                  strstr(shrink_last_error(), "does not fit"), "wrong base: %s",
                  shrink_last_error());
            shrink_model_free(m22);
        }
    }
    shrink_free(ids);
    shrink_model_free(m);
    return test_summary("test_lora");
}
