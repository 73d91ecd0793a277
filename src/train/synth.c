/*
 * synth.c - shrink_synth: synthetic training text sampled from a teacher into a token file
 * (the format `shrink train --data` reads, data.c), for distillation without a corpus
 * (docs/distillation.md).
 *
 * Sequence j (j = 0, 1, 2, ...) is BOS (when the model has one) + prompt line j mod n_prompts
 * (or nothing) + tokens sampled until EOS/BOS or max_len tokens, with its own sampler seeded
 * from (seed, j). Sequences are sampled `batch` at a time, one per thread, each in its own run
 * state (the decoder runs single-threaded inside the parallel loop), and appended in order of
 * j until n_tokens are written (the last one cut). So the file is a function of the model,
 * the options and the seed only: neither the thread count nor the batch size changes it, and
 * with temperature 0 and no prompt sequence 0 is `shrink generate`'s greedy output.
 */
#include "optim.h"

#include "../model/model.h"

#include <omp.h>

shrink_synth_params shrink_synth_params_default(void) {
    shrink_synth_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 1.0f;
    p.top_p = 1.0f;
    p.seed = 1;
    return p;
}

/* The prompts: one per non-empty line of the file, encoded (BOS first when the model has one).
 * *ids holds them one after another, starts[i]..starts[i+1] prompt i. */
static shrink_status read_prompts(const shrink_model *m, const char *path, int32_t bos,
                                  int32_t max_len, int32_t **ids, int64_t **starts,
                                  int64_t *n_prompts) {
    *ids = NULL;
    *starts = NULL;
    *n_prompts = 0;
    const shrink_tokenizer *tok = shrink_model_tokenizer(m);
    char *text = NULL;
    size_t len = 0;
    shrink_status st;
    if (path && !tok)
        return sk_error(SHRINK_ERR_ARG, "%s: the model has no tokenizer to encode the prompts "
                        "(give --tokenizer)", path);
    if (path && (st = sk_read_file(path, (size_t)1 << 30, &text, &len))) return st;
    size_t bad = 0;
    if (text && !sk_utf8_valid(text, len, &bad)) {
        sk_free(text);
        return sk_error(SHRINK_ERR_ARG, "%s: not UTF-8 (byte %zu)", path, bad);
    }
    int64_t cap = 1, n = 0, cap_ids = 1, n_ids = 0;
    for (size_t i = 0; text && i < len; i++) cap += text[i] == '\n';
    *starts = sk_malloc((size_t)(cap + 1) * sizeof **starts);
    *ids = sk_malloc(sizeof **ids);
    if (!*starts || !*ids) {
        sk_free(text);
        return sk_error(SHRINK_ERR_NOMEM, "synth: out of memory for the prompts");
    }
    (*starts)[0] = 0;
    for (size_t a = 0; text && a < len;) {
        size_t b = a;
        while (b < len && text[b] != '\n') b++;
        size_t e = b;
        if (e > a && text[e - 1] == '\r') e--;
        if (e > a) {
            int32_t *p = NULL;
            size_t np = 0;
            if ((st = shrink_tokenizer_encode(tok, text + a, e - a, bos >= 0, &p, &np))) {
                sk_free(text);
                return st;
            }
            if ((int64_t)np >= max_len) {
                shrink_free(p);
                sk_free(text);
                return sk_error(SHRINK_ERR_ARG, "%s: prompt %lld has %zu tokens, not fewer "
                                "than the %d of a sequence", path, (long long)(n + 1), np,
                                max_len);
            }
            if (n_ids + (int64_t)np > cap_ids) {
                cap_ids = 2 * (n_ids + (int64_t)np);
                int32_t *t = sk_realloc(*ids, (size_t)cap_ids * sizeof *t);
                if (!t) {
                    shrink_free(p);
                    sk_free(text);
                    return sk_error(SHRINK_ERR_NOMEM, "synth: out of memory for the prompts");
                }
                *ids = t;
            }
            memcpy(*ids + n_ids, p, np * sizeof *p);
            shrink_free(p);
            n_ids += (int64_t)np;
            (*starts)[++n] = n_ids;
        }
        a = b + 1;
    }
    sk_free(text);
    if (path && n == 0) return sk_error(SHRINK_ERR_ARG, "%s: no prompt (every line is empty)",
                                        path);
    *n_prompts = n;
    return SHRINK_OK;
}

/* One sequence's state. */
typedef struct sseq {
    shrink_context *ctx;
    shrink_sampler *smp;
    float          *logits;
    int32_t        *ids;   /* (max_len) */
    int32_t         n;
} sseq;

/* Samples sequence j into q->ids (prompt first). */
static shrink_status sample_seq(sseq *q, const shrink_synth_params *p, int64_t j,
                                const int32_t *pids, const int64_t *starts, int64_t n_prompts,
                                int32_t bos, int32_t eos, int32_t max_len, int32_t vocab,
                                int64_t *counter) {
    q->n = 0;
    if (n_prompts) {
        const int64_t k = j % n_prompts;
        q->n = (int32_t)(starts[k + 1] - starts[k]);
        memcpy(q->ids, pids + starts[k], (size_t)q->n * sizeof *q->ids);
    } else {
        q->ids[q->n++] = bos;
    }
    shrink_sampler_params sp = {.temperature = p->temperature, .top_k = p->top_k,
                                .top_p = p->top_p, .seed = p->seed};
    uint64_t s = p->seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(j + 1));
    if (j > 0) sp.seed = sk_rng_next(&s); /* sequence 0: the seed itself, as generate */
    shrink_sampler_free(q->smp);
    q->smp = NULL;
    shrink_status st = shrink_sampler_create(&q->smp, vocab, &sp);
    if (st) return st;
    if ((st = shrink_context_eval(q->ctx, q->ids, q->n, 0, q->logits, 1))) return st;
    while (q->n < max_len) {
        const int32_t id = shrink_sampler_sample(q->smp, q->logits);
        if (id == eos || id == bos) break;
        q->ids[q->n++] = id;
        #pragma omp atomic
        (*counter)++;
        if (q->n == max_len) break;
        if ((st = shrink_context_eval(q->ctx, &id, 1, q->n - 1, q->logits, 1))) return st;
    }
    return SHRINK_OK;
}

shrink_status shrink_synth(const char *model, const char *out, const shrink_synth_params *params,
                           shrink_synth_result *r) {
    shrink_synth_params def = shrink_synth_params_default();
    const shrink_synth_params *p = params ? params : &def;
    shrink_synth_result tmp;
    if (!r) r = &tmp;
    memset(r, 0, sizeof *r);
    if (!model || !*model || !out || !*out)
        return sk_error(SHRINK_ERR_ARG, "synth: model and output paths are required");
    if (p->n_tokens < 1)
        return sk_error(SHRINK_ERR_ARG, "synth: %lld tokens asked (--tokens must be >= 1)",
                        (long long)p->n_tokens);
    if (!(p->temperature >= 0.0f) || !(p->top_p > 0.0f && p->top_p <= 1.0f) || p->top_k < 0)
        return sk_error(SHRINK_ERR_ARG, "synth: temperature %g must be >= 0, top-p %g in (0, "
                        "1], top-k %d >= 0", (double)p->temperature, (double)p->top_p,
                        p->top_k);
    if (p->batch < 0 || p->max_len < 0)
        return sk_error(SHRINK_ERR_ARG, "synth: negative batch or sequence length");
    const double t0 = shrink_time();
    shrink_model *m = NULL;
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = p->tokenizer_path;
    shrink_status st = shrink_model_load(&m, model, &lp);
    if (st) return st;
    shrink_model_info mi;
    shrink_model_get_info(m, &mi);
    const shrink_tokenizer *tok = shrink_model_tokenizer(m);
    const int32_t bos = mi.bos_id >= 0 ? mi.bos_id : tok ? shrink_tokenizer_bos(tok) : -1;
    const int32_t eos = mi.eos_id >= 0 ? mi.eos_id : tok ? shrink_tokenizer_eos(tok) : -1;
    const int32_t max_len = p->max_len > 0 && p->max_len < mi.max_seq_len ? p->max_len
                                                                          : mi.max_seq_len;
    const int B = p->batch > 0 ? p->batch : shrink_get_threads();
    int32_t *pids = NULL, *all = NULL;
    int64_t *starts = NULL, n_prompts = 0, n_all = 0, counter = 0, j0 = 0;
    sseq *q = sk_calloc((size_t)B, sizeof *q);
    shrink_status *sts = sk_calloc((size_t)B, sizeof *sts);
    if ((st = read_prompts(m, p->prompts_path, bos, max_len, &pids, &starts, &n_prompts)))
        goto out;
    if (!n_prompts && bos < 0) {
        st = sk_error(SHRINK_ERR_ARG, "%s: the model has no BOS token to start a sequence from: "
                      "give prompts (--prompts FILE)", model);
        goto out;
    }
    all = sk_malloc((size_t)p->n_tokens * sizeof *all);
    if (!q || !sts || !all) {
        st = sk_error(SHRINK_ERR_NOMEM, "synth: out of memory for %lld tokens",
                      (long long)p->n_tokens);
        goto out;
    }
    for (int b = 0; b < B; b++) {
        q[b].logits = sk_malloc((size_t)mi.vocab_size * sizeof(float));
        q[b].ids = sk_malloc((size_t)max_len * sizeof(int32_t));
        if (!q[b].logits || !q[b].ids) {
            st = sk_error(SHRINK_ERR_NOMEM, "synth: out of memory for %d sequences", B);
            goto out;
        }
        if ((st = shrink_context_create(&q[b].ctx, m, max_len, 0))) goto out;
    }
    while (n_all < p->n_tokens) {
        #pragma omp parallel for schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            sts[b] = sample_seq(&q[b], p, j0 + b, pids, starts, n_prompts, bos, eos, max_len,
                                mi.vocab_size, &counter);
            if (p->progress && omp_get_thread_num() == 0) {
                int64_t c;
                #pragma omp atomic read
                c = counter;
                p->progress(p->user, n_all + c < p->n_tokens ? n_all + c : p->n_tokens,
                            p->n_tokens);
            }
        }
        for (int b = 0; b < B && n_all < p->n_tokens; b++) {
            if ((st = sts[b])) goto out;
            const int64_t k = q[b].n < p->n_tokens - n_all ? q[b].n : p->n_tokens - n_all;
            memcpy(all + n_all, q[b].ids, (size_t)k * sizeof *all);
            n_all += k;
            r->n_sequences++;
            r->n_generated += q[b].n - (n_prompts ? starts[(j0 + b) % n_prompts + 1] -
                                        starts[(j0 + b) % n_prompts] : 1);
        }
        counter = 0;
        j0 += B;
        if (p->progress) p->progress(p->user, n_all, p->n_tokens);
    }
    if ((st = sk_tokfile_write(out, all, n_all, mi.vocab_size))) goto out;
    r->n_tokens = n_all;
    r->vocab_size = mi.vocab_size;
    r->batch = B;
    r->max_len = max_len;
    r->seconds = shrink_time() - t0;
out:
    for (int b = 0; q && b < B; b++) {
        shrink_context_free(q[b].ctx);
        shrink_sampler_free(q[b].smp);
        sk_free(q[b].logits);
        sk_free(q[b].ids);
    }
    sk_free(q);
    sk_free(sts);
    sk_free(pids);
    sk_free(starts);
    sk_free(all);
    shrink_model_free(m);
    return st;
}
