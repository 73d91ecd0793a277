/*
 * sampler.c - picking the next token from logits: greedy (argmax), temperature, top-k, top-p
 * (nucleus), seeded and reproducible (xorshift64* random numbers; same seed, same tokens).
 *
 * Order of operations (as llama2.c's sample() and Hugging Face's warpers): logits / T,
 * softmax, keep the k most likely, keep the smallest prefix whose mass reaches p,
 * renormalize, draw.
 */
#include "../core/core.h"

#include <math.h>

struct shrink_sampler {
    int32_t               vocab;
    shrink_sampler_params p;
    uint64_t              rng;
    struct cand { float p; int32_t id; } *cand; /* (vocab) */
};

shrink_sampler_params shrink_sampler_params_default(void) {
    shrink_sampler_params p = {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .seed = 42};
    return p;
}

shrink_status shrink_sampler_create(shrink_sampler **out, int32_t vocab,
                                    const shrink_sampler_params *params) {
    *out = NULL;
    shrink_sampler_params p = params ? *params : shrink_sampler_params_default();
    if (vocab <= 0) return sk_error(SHRINK_ERR_ARG, "sampler: vocabulary size %d", vocab);
    if (!(p.temperature >= 0.0f) || !isfinite(p.temperature))
        return sk_error(SHRINK_ERR_ARG, "sampler: temperature %g must be >= 0", p.temperature);
    if (p.top_k < 0) return sk_error(SHRINK_ERR_ARG, "sampler: top-k %d must be >= 0", p.top_k);
    if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
        return sk_error(SHRINK_ERR_ARG, "sampler: top-p %g must be in (0, 1]", p.top_p);
    shrink_sampler *s = sk_calloc(1, sizeof *s);
    if (!s) return sk_error(SHRINK_ERR_NOMEM, "sampler: out of memory");
    s->cand = sk_calloc((size_t)vocab, sizeof *s->cand);
    if (!s->cand) {
        sk_free(s);
        return sk_error(SHRINK_ERR_NOMEM, "sampler: out of memory");
    }
    s->vocab = vocab;
    s->p = p;
    s->rng = p.seed ? p.seed : 0x9E3779B97F4A7C15ull;
    *out = s;
    return SHRINK_OK;
}

void shrink_sampler_free(shrink_sampler *s) {
    if (!s) return;
    sk_free(s->cand);
    sk_free(s);
}

static float next_uniform(uint64_t *state) { /* xorshift64*, in [0, 1) */
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return (float)((*state * 0x2545F4914F6CDD1Dull) >> 40) / 16777216.0f;
}

static int cand_desc(const void *a, const void *b) {
    const struct cand *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

int32_t shrink_sampler_sample(shrink_sampler *s, float *logits) {
    const int32_t V = s->vocab;
    int32_t best = 0;
    for (int32_t i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i; /* first maximum, as torch.argmax */
    if (s->p.temperature == 0.0f) return best;

    /* softmax of logits / T */
    const float mx = logits[best];
    double sum = 0.0;
    for (int32_t i = 0; i < V; i++) {
        float e = expf((logits[i] - mx) / s->p.temperature);
        s->cand[i].p = e;
        s->cand[i].id = i;
        sum += e;
    }
    int32_t n = V;
    if (s->p.top_k > 0 || s->p.top_p < 1.0f) {
        qsort(s->cand, (size_t)V, sizeof *s->cand, cand_desc);
        if (s->p.top_k > 0 && s->p.top_k < n) n = s->p.top_k;
        double kept = 0.0;
        for (int32_t i = 0; i < n; i++) kept += s->cand[i].p;
        if (s->p.top_p < 1.0f) {
            double acc = 0.0;
            for (int32_t i = 0; i < n; i++) {
                acc += s->cand[i].p;
                if (acc >= s->p.top_p * kept) {
                    n = i + 1;
                    break;
                }
            }
        }
        sum = 0.0;
        for (int32_t i = 0; i < n; i++) sum += s->cand[i].p;
    }
    double r = (double)next_uniform(&s->rng) * sum, acc = 0.0;
    for (int32_t i = 0; i < n; i++) {
        acc += s->cand[i].p;
        if (r < acc) return s->cand[i].id;
    }
    return s->cand[n - 1].id;
}
