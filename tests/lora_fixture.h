/*
 * lora_fixture.h - what the LoRA tests against ../shared/fixtures/lora share (test_lora.c,
 * test_lora_merge.c): the fixture's perplexity method (Hugging Face sliding window, ctx 256,
 * stride 128, as ref.json), how many tokens a run scores, and the text's tokens.
 */
#ifndef LORA_FIXTURE_H
#define LORA_FIXTURE_H

#include "../include/shrink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double ppl_of(shrink_model *m, const int32_t *ids, size_t n) {
    shrink_context *x = NULL;
    shrink_ppl_params pp = shrink_ppl_params_default();
    shrink_ppl_result r;
    pp.n_ctx = 256;
    pp.stride = 128;
    if (shrink_context_create(&x, m, 256, 256) != SHRINK_OK) return -1;
    shrink_status st = shrink_perplexity(x, ids, (int64_t)n, &pp, &r);
    shrink_context_free(x);
    return st == SHRINK_OK ? r.ppl : -1;
}

/* The float64 comparisons score all 5492 tokens (a 32000-word vocabulary): they run with the
 * dispatched kernels and no sanitizer. The SHRINK_KERNELS=ref and ASan + UBSan runs score the
 * first 300 tokens, where the same code must still agree with itself; reading and bad input
 * are checked in full. */
static size_t tokens_to_score(size_t n) {
#if defined(__SANITIZE_ADDRESS__)
    (void)n;
    return 300;
#else
    const char *k = getenv("SHRINK_KERNELS");
    return k && !strcmp(k, "ref") ? 300 : n;
#endif
}

/* The tokens of the text file at `path` (BOS first) with m's tokenizer; SHRINK_OK or not. */
static shrink_status text_ids(const shrink_model *m, const char *path, int32_t **ids, size_t *n) {
    FILE *f = fopen(path, "rb");
    static char buf[1 << 16];
    size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    *ids = NULL;
    *n = 0;
    return shrink_tokenizer_encode(shrink_model_tokenizer(m), buf, len, true, ids, n);
}

#endif /* LORA_FIXTURE_H */
