/*
 * test_decoder.c - the forward pass against the float64 PyTorch reference (tools/ref in
 * ../shared): log-probabilities of every model with a fixture (max abs error < 1e-4), batched
 * prompt processing against token-by-token decoding, greedy generation of stories260K against
 * greedy200.json, perplexity against ppl.json (4 significant digits), sampler determinism.
 */
#include "formats/formats.h"
#include "core/json.h"
#include "test_util.h"
#include "test_fixture.h"

#include <math.h>

/* ---- fixture helpers -------------------------------------------------------------- */

/* fixture_open / fixture_get / fixture_close: tests/test_fixture.h */

static void log_softmax(float *x, int n) {
    double mx = x[0], s = 0;
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < n; i++) s += exp(x[i] - mx);
    double lse = mx + log(s);
    for (int i = 0; i < n; i++) x[i] = (float)(x[i] - lse);
}

/* ---- log-probabilities ------------------------------------------------------------ */

static void check_logprobs(const char *model_rel, const char *fixture_rel, int widen) {
    char mp[1024], fp[1024];
    if (!test_need_asset(mp, sizeof mp, model_rel)) return;
    if (!test_need_asset(fp, sizeof fp, fixture_rel)) return;
    shrink_load_params lp = shrink_load_params_default();
    lp.no_tokenizer = true;
    lp.widen_f32 = widen;
    shrink_model *m = NULL;
    shrink_status st = shrink_model_load(&m, mp, &lp);
    CHECK(st == SHRINK_OK, "load %s: %s", mp, shrink_last_error());
    if (st != SHRINK_OK) return;
    fixture f;
    CHECK(fixture_open(&f, fp), "fixture %s: %s", fp, shrink_last_error());
    const sk_st_raw *tok = fixture_get(&f, "tokens"), *lpr = fixture_get(&f, "logprobs");
    CHECK(tok && lpr && strcmp(tok->dtype, "I32") == 0 && strcmp(lpr->dtype, "F32") == 0,
          "fixture %s layout", fp);
    if (!tok || !lpr) goto out;

    shrink_model_info info;
    shrink_model_get_info(m, &info);
    const int T = (int)tok->shape[0], V = info.vocab_size;
    CHECK(lpr->shape[1] == V, "%s vocab %d vs fixture %" PRId64, model_rel, V, lpr->shape[1]);
    int32_t *ids = malloc(sizeof(int32_t) * T);
    float *ref = malloc(sizeof(float) * (size_t)T * V);
    float *batch = malloc(sizeof(float) * (size_t)T * V);
    float *step = malloc(sizeof(float) * V);
    memcpy(ids, tok->data, sizeof(int32_t) * T);
    memcpy(ref, lpr->data, sizeof(float) * (size_t)T * V);

    /* whole prompt at once (matrix-matrix path), in batches of 7 to cross piece borders */
    shrink_context *ctx = NULL;
    CHECK(shrink_context_create(&ctx, m, T, 7) == SHRINK_OK, "context: %s", shrink_last_error());
    st = shrink_context_eval(ctx, ids, T, 0, batch, T);
    CHECK(st == SHRINK_OK, "eval: %s", shrink_last_error());
    double maxerr = 0;
    for (int t = 0; t < T; t++) {
        log_softmax(batch + (size_t)t * V, V);
        for (int i = 0; i < V; i++) {
            double e = fabs(batch[(size_t)t * V + i] - ref[(size_t)t * V + i]);
            if (e > maxerr) maxerr = e;
        }
    }
    CHECK(maxerr < 1e-4, "%s%s: batched max |logprob error| %.3g >= 1e-4", model_rel,
          widen ? " (f32)" : "", maxerr);

    /* token by token (matrix-vector path) must agree with the batch */
    double maxdiff = 0;
    for (int t = 0; t < T; t++) {
        st = shrink_context_eval(ctx, ids + t, 1, t, step, 1);
        CHECK(st == SHRINK_OK, "eval step %d: %s", t, shrink_last_error());
        log_softmax(step, V);
        for (int i = 0; i < V; i++) {
            /* relative to the value: log-probabilities near -200 have an ulp of 1.5e-5, and
             * the GEMV and GEMM kernels sum in different orders */
            double e = fabs(step[i] - batch[(size_t)t * V + i]) / (1.0 + fabs(step[i]) / 16);
            if (e > maxdiff) maxdiff = e;
        }
    }
    CHECK(maxdiff < 2e-5, "%s: token-by-token vs batch max scaled diff %.3g", model_rel, maxdiff);
    printf("  %-36s T=%-3d V=%-6d max err %.2e, step vs batch %.2e\n", model_rel, T, V,
           maxerr, maxdiff);
    shrink_context_free(ctx);
    free(ids);
    free(ref);
    free(batch);
    free(step);
out:
    fixture_close(&f);
    shrink_model_free(m);
}

/* ---- JSON fixture helpers --------------------------------------------------------- */

static sk_json *load_json(const char *rel) {
    char p[1024];
    if (!test_need_asset(p, sizeof p, rel)) return NULL;
    char *text = NULL;
    size_t len = 0;
    shrink_status st = sk_read_file(p, 1 << 26, &text, &len);
    CHECK(st == SHRINK_OK, "read %s: %s", p, shrink_last_error());
    if (st != SHRINK_OK) return NULL;
    sk_json *j = NULL;
    if (sk_json_parse(text, len, p, &j) != SHRINK_OK) j = NULL;
    CHECK(j != NULL, "parse %s: %s", p, shrink_last_error());
    sk_free(text);
    return j;
}

static shrink_model *load_stories(void) {
    char mp[1024];
    if (!test_need_asset(mp, sizeof mp, "models/stories260K/stories260K.bin")) return NULL;
    shrink_load_params lp = shrink_load_params_default();
    lp.no_tokenizer = true;
    shrink_model *m = NULL;
    CHECK(shrink_model_load(&m, mp, &lp) == SHRINK_OK, "load %s: %s", mp, shrink_last_error());
    return m;
}

/* ---- greedy generation ------------------------------------------------------------ */

static void check_greedy(void) {
    sk_json *j = load_json("fixtures/stories260K/greedy200.json");
    shrink_model *m = load_stories();
    if (!j || !m) { /* counted by test_need_asset / CHECK in load_json, load_stories */
        sk_json_free(j);
        shrink_model_free(m);
        return;
    }
    const sk_json *ids = sk_json_get(j, "ids");
    CHECK(ids && ids->type == SK_JSON_ARRAY && ids->len == 201, "greedy200.json ids");
    if (!ids || ids->len != 201) goto out;
    shrink_context *ctx = NULL;
    CHECK(shrink_context_create(&ctx, m, 0, 0) == SHRINK_OK, "ctx: %s", shrink_last_error());
    shrink_sampler *s = NULL;
    shrink_sampler_params sp = shrink_sampler_params_default(); /* greedy */
    CHECK(shrink_sampler_create(&s, 512, &sp) == SHRINK_OK, "sampler");
    float logits[512];
    int32_t tok = 1, mismatches = 0, first_bad = -1;
    for (int i = 1; i <= 200; i++) {
        if (shrink_context_eval(ctx, &tok, 1, i - 1, logits, 1) != SHRINK_OK) break;
        tok = shrink_sampler_sample(s, logits);
        if (tok != (int32_t)ids->items[i].integer) {
            if (first_bad < 0) first_bad = i;
            mismatches++;
            tok = (int32_t)ids->items[i].integer; /* keep following the reference */
        }
    }
    CHECK(mismatches == 0, "greedy200: %d of 200 tokens differ, first at %d", mismatches,
          first_bad);
    shrink_sampler_free(s);
    shrink_context_free(ctx);
out:
    sk_json_free(j);
    shrink_model_free(m);
}

/* ---- perplexity ------------------------------------------------------------------- */

static void check_ppl(void) {
    sk_json *ref = load_json("fixtures/stories260K/ppl.json");
    sk_json *tok = load_json("fixtures/stories260K/ppl_tokens.json");
    shrink_model *m = load_stories();
    if (!ref || !tok || !m) goto out; /* counted in load_json / load_stories */
    const sk_json *ids = tok->type == SK_JSON_ARRAY ? tok : sk_json_get(tok, "ids");
    CHECK(ids && ids->type == SK_JSON_ARRAY, "ppl_tokens.json: ids array");
    if (!ids || ids->type != SK_JSON_ARRAY) goto out;
    int64_t n = (int64_t)ids->len;
    int32_t *v = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) v[i] = (int32_t)ids->items[i].integer;
    shrink_context *ctx = NULL;
    CHECK(shrink_context_create(&ctx, m, 128, 0) == SHRINK_OK, "ctx");

    struct { const sk_json *o; int32_t stride; } cases[] = {
        {ref, 64}, {sk_json_get(ref, "non_overlapping"), 128}};
    for (int c = 0; c < 2; c++) {
        double want_ppl = 0;
        int64_t want_scored = 0, want_windows = 0;
        sk_json_get_num(cases[c].o, "ppl", &want_ppl);
        sk_json_get_int(cases[c].o, "tokens_scored", &want_scored);
        sk_json_get_int(cases[c].o, "windows", &want_windows);
        shrink_ppl_params pp = shrink_ppl_params_default();
        pp.n_ctx = 128;
        pp.stride = cases[c].stride;
        shrink_ppl_result r;
        CHECK(shrink_perplexity(ctx, v, n, &pp, &r) == SHRINK_OK, "ppl: %s", shrink_last_error());
        CHECK(fabs(r.ppl - want_ppl) / want_ppl < 5e-5, "ppl stride %d: %.6f vs reference %.6f",
              cases[c].stride, r.ppl, want_ppl);
        CHECK(r.tokens_scored == want_scored, "tokens scored %" PRId64 " vs %" PRId64,
              r.tokens_scored, want_scored);
        CHECK(r.windows == want_windows, "windows %" PRId64 " vs %" PRId64, r.windows,
              want_windows);
        printf("  ppl stride %-3d %.6f (reference %.6f), %" PRId64 " tokens scored\n",
               cases[c].stride, r.ppl, want_ppl, r.tokens_scored);
    }
    /* llama.cpp method: chunks of 128, second half scored -> 63 tokens per chunk */
    shrink_ppl_params pp = shrink_ppl_params_default();
    pp.method = SHRINK_PPL_LLAMA_CPP;
    pp.n_ctx = 128;
    shrink_ppl_result r;
    CHECK(shrink_perplexity(ctx, v, n, &pp, &r) == SHRINK_OK, "ppl llama.cpp");
    CHECK(r.tokens_scored == (n / 128) * 63, "llama.cpp method scored %" PRId64, r.tokens_scored);
    CHECK(r.ppl > 1 && r.ppl < 10, "llama.cpp method ppl %.3f", r.ppl);
    shrink_context_free(ctx);
    free(v);
out:
    sk_json_free(ref);
    sk_json_free(tok);
    shrink_model_free(m);
}

/* ---- sampler ---------------------------------------------------------------------- */

static void check_sampler(void) {
    enum { V = 100 };
    float base[V], l[V];
    for (int i = 0; i < V; i++) base[i] = (float)((i * 37) % 11) * 0.3f;
    shrink_sampler_params p = shrink_sampler_params_default();
    p.temperature = 1.0f;
    p.top_k = 1;
    shrink_sampler *s = NULL;
    shrink_sampler_create(&s, V, &p);
    int argmax = 0;
    for (int i = 1; i < V; i++) argmax = base[i] > base[argmax] ? i : argmax;
    memcpy(l, base, sizeof l);
    CHECK(shrink_sampler_sample(s, l) == argmax, "top-k 1 must be the argmax");
    shrink_sampler_free(s);

    /* same seed -> same sequence; frequencies follow the softmax */
    p.top_k = 0;
    p.seed = 7;
    shrink_sampler *a = NULL, *b = NULL;
    shrink_sampler_create(&a, V, &p);
    shrink_sampler_create(&b, V, &p);
    int same = 1, hits = 0;
    const int N = 20000;
    for (int k = 0; k < N; k++) {
        memcpy(l, base, sizeof l);
        int x = shrink_sampler_sample(a, l);
        memcpy(l, base, sizeof l);
        int y = shrink_sampler_sample(b, l);
        same &= x == y;
        hits += x == argmax;
    }
    double z = 0;
    for (int i = 0; i < V; i++) z += exp(base[i] - base[argmax]);
    CHECK(same, "same seed must give the same tokens");
    double expect = (double)N / z; /* probability of one argmax token */
    CHECK(fabs(hits - expect) < 5 * sqrt(expect), "argmax drawn %d times, expected %.0f", hits,
          expect);
    /* top-p small keeps only the most likely token(s) */
    shrink_sampler_free(a);
    p.top_p = 1e-6f;
    shrink_sampler_create(&a, V, &p);
    memcpy(l, base, sizeof l);
    int x = shrink_sampler_sample(a, l);
    CHECK(base[x] == base[argmax], "top-p 1e-6 must pick a most likely token");
    shrink_sampler_free(a);
    shrink_sampler_free(b);
}

int main(void) {
    shrink_set_threads(0);
    static const struct { const char *model, *fixture; } cases[] = {
        {"models/stories260K/stories260K.bin", "fixtures/stories260K/logprobs.safetensors"},
        {"models/stories260K-hf", "fixtures/stories260K-hf/logprobs.safetensors"},
        {"models/tiny-gpt2", "fixtures/tiny-gpt2/logprobs.safetensors"},
        {"models/tiny-llama-gqa", "fixtures/tiny-llama-gqa/logprobs.safetensors"},
        {"models/mix-llama-14m", "fixtures/mix-llama-14m/logprobs.safetensors"},
        {"models/mix-llama-22m", "fixtures/mix-llama-22m/logprobs.safetensors"},
        {"models/mix-gpt2-30m", "fixtures/mix-gpt2-30m/logprobs.safetensors"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_logprobs(cases[i].model, cases[i].fixture, 0);
    check_logprobs("models/mix-llama-22m", "fixtures/mix-llama-22m/logprobs.safetensors", 1);
    check_greedy();
    check_ppl();
    check_sampler();
    return test_summary("test_decoder");
}
