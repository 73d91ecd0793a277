/*
 * test_lora_requant.c - shrink_merge with a scheme (merge, then quantize; src/lora/merge.c,
 * model/lora_merge.c, the adapters hook of src/quant/quantize.c) against independent
 * references, on ../shared/fixtures/lora (mix-llama-14m and its PEFT adapter):
 *   - the output equals, byte for byte, shrink_merge to f32 followed by shrink_quantize of
 *     that file (q4_0, the q4_K_M mix), and for a quantized (QLoRA) q8_0 base into nf4;
 *   - the reported weight error of the merged matrices equals ||Q(W') - W'|| / ||W'|| computed
 *     here in double from the two files (the merged f32 and the quantized one);
 *   - the reported KL divergences equal KL(P_ref || P_model) computed here in double from the
 *     logits of one window: ref = base + adapter at run time, model = the output, and the
 *     base loaded as q4_0 with the adapter unmerged;
 *   - bad input: a scheme and a dtype, an unknown scheme, a non-GGUF output, an adapter of
 *     another base, adapters with a calibrated method: refused, nothing written.
 */
#include "test_util.h"
#include "lora_fixture.h"

#include "../include/shrink.h"
#include "model/source.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static shrink_status merge_s(const char *base, const char *out, const char *ad, int dtype,
                             const char *scheme, const char *text, shrink_merge_result *r) {
    shrink_merge_params p = shrink_merge_params_default();
    const char *ads[1] = {ad};
    p.adapters = ads;
    p.n_adapters = 1;
    p.dtype = dtype;
    p.scheme = scheme;
    p.eval_text = text;
    p.eval_ctx = 64;
    p.eval_tokens = 63; /* one window: positions 1..63 scored */
    return shrink_merge(base, out, &p, r);
}

static shrink_status quantize_s(const char *in, const char *out, const char *scheme) {
    shrink_quantize_params q = shrink_quantize_params_default();
    q.scheme = scheme;
    q.allow_requantize = true;
    return shrink_quantize(in, out, &q, NULL);
}

/* Rows of file tensor t as f32 (dequantized) into a malloc'd array. */
static float *tensor_f32(const sk_tensor *t) {
    const int64_t rows = t->shape[0], cols = t->shape[1];
    float *w = malloc((size_t)(rows * cols) * sizeof *w);
    const size_t rb = (size_t)(t->bytes / (uint64_t)rows);
    for (int64_t r = 0; w && r < rows; r++)
        sk_dtype(t->dtype)->to_f32((const uint8_t *)t->data + rb * (size_t)r, w + r * cols, cols);
    return w;
}

/* ||Q - W|| / ||W|| over the adapted matrices (blk.N.<7 projections>.weight): mean and max. */
static int weight_error(const char *merged_f32, const char *quant, double *mean, double *mx) {
    struct shrink_model *a = NULL, *b = NULL;
    int k = 0;
    *mean = *mx = 0;
    if (sk_model_open(&a, merged_f32, NULL) || sk_model_open(&b, quant, NULL)) goto out;
    static const char *const mods[] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                       "ffn_gate", "ffn_up", "ffn_down"};
    for (int64_t i = 0; i < b->n_tensors; i++) {
        const sk_tensor *q = &b->tensors[i];
        int is = 0;
        for (int m = 0; m < 7; m++) {
            char suf[48];
            snprintf(suf, sizeof suf, ".%s.weight", mods[m]);
            size_t ls = strlen(suf), ln = strlen(q->name);
            is |= ln > ls && !strcmp(q->name + ln - ls, suf);
        }
        if (!is) continue;
        const sk_tensor *w = NULL;
        for (int64_t j = 0; j < a->n_tensors; j++)
            if (!strcmp(a->tensors[j].name, q->name)) w = &a->tensors[j];
        if (!w || w->dtype != SHRINK_DTYPE_F32) continue;
        float *qv = tensor_f32(q), *wv = tensor_f32(w);
        double se = 0, sw = 0;
        for (int64_t e = 0; qv && wv && e < q->shape[0] * q->shape[1]; e++) {
            double d = (double)qv[e] - (double)wv[e];
            se += d * d;
            sw += (double)wv[e] * wv[e];
        }
        double rel = sw > 0 ? sqrt(se / sw) : 0;
        *mean += rel;
        if (rel > *mx) *mx = rel;
        k++;
        free(qv);
        free(wv);
    }
    if (k) *mean /= k;
out:
    shrink_model_free(a);
    shrink_model_free(b);
    return k;
}

/* Logits of ids[0..n) (one window from position 0) for the model at path (+ adapter, or
 * loaded as load_as), n x vocab, malloc'd. */
static float *window_logits(const char *path, const char *lora, const char *load_as,
                            const int32_t *ids, int n, int *vocab) {
    shrink_load_params lp = shrink_load_params_default();
    lp.load_as = load_as;
    shrink_model *m = NULL;
    shrink_context *x = NULL;
    float *lg = NULL;
    if (shrink_model_load(&m, path, &lp) != SHRINK_OK) return NULL;
    shrink_model_info info;
    shrink_model_get_info(m, &info);
    *vocab = info.vocab_size;
    if ((!lora || shrink_model_add_lora(m, lora, 1.0) == SHRINK_OK) &&
        shrink_context_create(&x, m, n, n) == SHRINK_OK) {
        lg = malloc((size_t)n * (size_t)info.vocab_size * sizeof *lg);
        if (lg && shrink_context_eval(x, ids, n, 0, lg, n) != SHRINK_OK) {
            free(lg);
            lg = NULL;
        }
    }
    shrink_context_free(x);
    shrink_model_free(m);
    return lg;
}

/* Mean over rows 0..n-2 (the positions that predict tokens 1..n-1) of KL(P || Q), double. */
static double mean_kl(const float *p, const float *q, int n, int v) {
    double sum = 0;
    for (int t = 0; t < n - 1; t++) {
        const float *a = p + (size_t)t * v, *b = q + (size_t)t * v;
        double ma = a[0], mb = b[0], za = 0, zb = 0, kl = 0;
        for (int i = 1; i < v; i++) {
            if (a[i] > ma) ma = a[i];
            if (b[i] > mb) mb = b[i];
        }
        for (int i = 0; i < v; i++) {
            za += exp(a[i] - ma);
            zb += exp(b[i] - mb);
        }
        const double la = ma + log(za), lb = mb + log(zb);
        for (int i = 0; i < v; i++) {
            double lpa = a[i] - la, lpb = b[i] - lb;
            kl += exp(lpa) * (lpa - lpb);
        }
        sum += kl;
    }
    return sum / (n - 1);
}

int main(void) {
    char mp[4096], tp[4096], pp[4096];
    const char *model = test_need_model(mp, sizeof mp, "mix-llama-14m");
    const char *text = test_need_shared(tp, sizeof tp, "fixtures/lora/text.txt");
    const char *peft = test_need_shared(pp, sizeof pp, "fixtures/lora/mix-llama-14m-peft");
    if (!model || !text || !peft) return test_summary("test_lora_requant");
    (void)ppl_of; /* lora_fixture.h's; this test scores by hand */
    (void)tokens_to_score;
    shrink_set_threads(1); /* small model: one thread does it without spinning the others */

    char dir[256], f32[512], q[512], q2[512], qb[512];
    snprintf(dir, sizeof dir, "/tmp/test_lora_requant_%d", (int)getpid());
    mkdir(dir, 0700);
    snprintf(f32, sizeof f32, "%s/merged-f32.gguf", dir);
    snprintf(q, sizeof q, "%s/merged-q.gguf", dir);
    snprintf(q2, sizeof q2, "%s/ref-q.gguf", dir);
    snprintf(qb, sizeof qb, "%s/base-q8_0.gguf", dir);

    shrink_merge_result r;
    CHECK(merge_s(model, f32, peft, SHRINK_DTYPE_F32, NULL, NULL, &r) == SHRINK_OK,
          "merge f32: %s", shrink_last_error());

    /* byte for byte: merge --scheme S == merge --dtype f32, then quantize --scheme S */
    const char *schemes[] = {"q4_0", "q4_K_M"};
#if defined(__SANITIZE_ADDRESS__)
    const int n_schemes = 1; /* the mix once in the plain build is enough */
#else
    const int n_schemes = 2;
#endif
    for (int i = 0; i < n_schemes; i++) {
        CHECK(merge_s(model, q, peft, -1, schemes[i], NULL, &r) == SHRINK_OK, "merge %s: %s",
              schemes[i], shrink_last_error());
        CHECK(r.n_merged == 42 && r.scheme && !strcmp(r.scheme, schemes[i]) &&
              r.bits_per_weight > 4 && r.bits_per_weight < 6, "%s: %lld merged, %.3f bpw",
              schemes[i], (long long)r.n_merged, r.bits_per_weight);
        CHECK(quantize_s(f32, q2, schemes[i]) == SHRINK_OK, "quantize: %s", shrink_last_error());
        CHECK(test_same_file(q, q2), "%s: merge --scheme differs from merge f32 + quantize",
              schemes[i]);
        if (i == 1) break;
        /* the weight error, recomputed from the two files */
        double mean, mx;
        int k = weight_error(f32, q, &mean, &mx);
        printf("  %s: weight error mean %.6f (reported %.6f), max %.6f (%.6f), %d matrices\n",
               schemes[i], mean, r.wrel_mean, mx, r.wrel_max, k);
        CHECK(k == 42 && fabs(mean / r.wrel_mean - 1) < 1e-4 && fabs(mx / r.wrel_max - 1) < 1e-4,
              "%s: weight error %.7f / %.7f vs reported %.7f / %.7f", schemes[i], mean, mx,
              r.wrel_mean, r.wrel_max);
    }

    /* a quantized (QLoRA) base: dequantized, merged, quantized again == the same by hand */
    CHECK(quantize_s(model, qb, "q8_0") == SHRINK_OK, "q8_0 base: %s", shrink_last_error());
    CHECK(merge_s(qb, q, peft, -1, "nf4", NULL, &r) == SHRINK_OK, "merge into q8_0: %s",
          shrink_last_error());
    CHECK(merge_s(qb, f32, peft, SHRINK_DTYPE_F32, NULL, NULL, NULL) == SHRINK_OK,
          "merge q8_0 -> f32: %s", shrink_last_error());
    CHECK(quantize_s(f32, q2, "nf4") == SHRINK_OK, "quantize: %s", shrink_last_error());
    CHECK(test_same_file(q, q2), "q8_0 base: merge --scheme differs from merge f32 + quantize");

    /* the KL figures, recomputed on one window of 64 tokens */
    shrink_model *m = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(shrink_model_load(&m, model, NULL) == SHRINK_OK, "load");
    if (m) CHECK(text_ids(m, text, &ids, &n) == SHRINK_OK && n >= 64, "encode");
    shrink_model_free(m);
    CHECK(merge_s(model, q, peft, -1, "q4_0", text, &r) == SHRINK_OK, "merge q4_0 --text: %s",
          shrink_last_error());
    int v = 0;
    float *lr = ids ? window_logits(model, peft, NULL, ids, 64, &v) : NULL;
    float *lm = ids ? window_logits(q, NULL, NULL, ids, 64, &v) : NULL;
    float *lu = ids ? window_logits(model, peft, "q4_0", ids, 64, &v) : NULL;
    CHECK(lr && lm && lu, "logits");
    if (lr && lm && lu) {
        double km = mean_kl(lr, lm, 64, v), ku = mean_kl(lr, lu, 64, v);
        printf("  KL merged %.7f (reported %.7f), unmerged %.7f (%.7f), %lld tokens\n", km,
               r.kl_merged, ku, r.kl_unmerged, (long long)r.eval_tokens);
        CHECK(r.eval_tokens == 63, "scored %lld tokens", (long long)r.eval_tokens);
        CHECK(fabs(km - r.kl_merged) <= 1e-5 * km + 1e-9, "KL merged %.9f vs reported %.9f", km,
              r.kl_merged);
        CHECK(fabs(ku - r.kl_unmerged) <= 1e-5 * ku + 1e-9, "KL unmerged %.9f vs %.9f", ku,
              r.kl_unmerged);
        CHECK(km > 0 && ku > 0, "KL 0");
    }
    free(lr);
    free(lm);
    free(lu);
    /* a quantized base: the unmerged figure is not measured (the reference is that model) */
    CHECK(merge_s(qb, q, peft, -1, "q4_0", text, &r) == SHRINK_OK && r.kl_merged > 0 &&
          isnan(r.kl_unmerged), "q8_0 base --text: %s", shrink_last_error());

    /* bad input: refused, nothing written */
    remove(q);
    CHECK(merge_s(model, q, peft, SHRINK_DTYPE_F16, "q4_0", NULL, NULL) == SHRINK_ERR_ARG,
          "scheme and dtype: %s", shrink_last_error());
    CHECK(merge_s(model, q, peft, -1, "q4_7", NULL, NULL) == SHRINK_ERR_ARG &&
          strstr(shrink_last_error(), "q4_7"), "unknown scheme: %s", shrink_last_error());
    char hf[512];
    snprintf(hf, sizeof hf, "%s/hf-out", dir);
    CHECK(merge_s(model, hf, peft, -1, "q4_0", NULL, NULL) == SHRINK_ERR_ARG &&
          strstr(shrink_last_error(), "GGUF"), "HF output: %s", shrink_last_error());
    CHECK(access(q, F_OK) != 0 && access(hf, F_OK) != 0, "a refused merge wrote something");
    char op[4096];
    const char *o = test_need_model(op, sizeof op, "mix-llama-22m");
    if (o) {
        CHECK(merge_s(o, q, peft, -1, "q4_0", NULL, NULL) == SHRINK_ERR_FORMAT &&
              strstr(shrink_last_error(), "does not fit"), "wrong base: %s", shrink_last_error());
        CHECK(access(q, F_OK) != 0, "a refused merge left %s", q);
    }
    shrink_quantize_params qp = shrink_quantize_params_default();
    const char *ads[1] = {peft};
    qp.scheme = "q4_0";
    qp.lora = ads;
    qp.n_lora = 1;
    qp.method = "gptq";
    qp.calib_path = text;
    CHECK(shrink_quantize(model, q, &qp, NULL) == SHRINK_ERR_ARG &&
          strstr(shrink_last_error(), "unmerged"), "gptq + adapters: %s", shrink_last_error());
    CHECK(access(q, F_OK) != 0, "a refused quantize left %s", q);

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    shrink_free(ids);
    return test_summary("test_lora_requant");
}
