/*
 * bench.c - shrink_bench: prompt-processing and decode speed, as llama-bench measures them.
 *
 *   pp: pp tokens evaluated in one shrink_context_eval call from position 0 (logits of the last
 *       token only, as llama-bench);
 *   tg: tg single-token evaluations at positions 0, 1, ... (decode from an empty context);
 * each test runs once to warm up, then reps times; the result is the median, mean, sample
 * standard deviation, min and max of tokens/s. Token ids are fixed, (i * 7919) % vocab. Used
 * by `shrink bench` and `shrink compare` (tools/cli), which report these numbers.
 *
 * Pinning (params.pin): in one parallel region of the runs' thread count, thread i binds itself
 * (sched_setaffinity on its own tid) to the i-th CPU of the process's allowed set, wrapping;
 * libgomp keeps its pool threads for the regions that follow, so the runs' regions run on the
 * same CPUs. Afterwards every thread gets the allowed set back.
 */
#include "../model/model.h"

#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdlib.h>

shrink_bench_params shrink_bench_params_default(void) {
    shrink_bench_params p = {.pp = 512, .tg = 128, .reps = 5, .progress = NULL, .user = NULL,
                             .pin = true};
    return p;
}

/* One run: n tokens at once (batch) or one at a time; *seconds gets its wall time. */
static shrink_status run_once(shrink_context *ctx, const int32_t *ids, int32_t n, bool batch,
                              float *logits, double *seconds) {
    double        t0 = shrink_time();
    shrink_status st = SHRINK_OK;
    if (batch) st = shrink_context_eval(ctx, ids, n, 0, logits, 1);
    for (int32_t i = 0; !batch && i < n && st == SHRINK_OK; i++)
        st = shrink_context_eval(ctx, &ids[i], 1, i, logits, 1);
    *seconds = shrink_time() - t0;
    return st;
}

typedef struct bench_stat {
    double mean, sd, median, min, max;
} bench_stat;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Binds thread i of a team of n to the i-th CPU of `allowed` (wrapping); returns the threads
 * bound. With restore, gives every thread `allowed` back instead. */
static int32_t pin_threads(const cpu_set_t *allowed, int n, bool restore) {
    int cpus[CPU_SETSIZE], n_cpus = 0, pinned = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, allowed)) cpus[n_cpus++] = c;
    if (n_cpus == 0) return 0;
    #pragma omp parallel num_threads(n) reduction(+ : pinned)
    {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpus[omp_get_thread_num() % n_cpus], &one);
        pinned += sched_setaffinity(0, sizeof(cpu_set_t), restore ? allowed : &one) == 0;
    }
    return restore ? 0 : pinned;
}

/* Warm-up + reps runs of one test: statistics of tokens/s (rate has room for reps values). */
static shrink_status measure(shrink_context *ctx, const int32_t *ids, int32_t n, bool batch,
                             const shrink_bench_params *p, float *logits, double *rate,
                             int64_t *done, int64_t total, bench_stat *b) {
    double *mean = &b->mean, *sd = &b->sd;
    *mean = *sd = 0.0;
    for (int r = -1; r < p->reps; r++) {
        double        s;
        shrink_status st = run_once(ctx, ids, n, batch, logits, &s);
        if (st != SHRINK_OK) return st;
        if (r >= 0) rate[r] = s > 0 ? (double)n / s : 0.0;
        if (p->progress) p->progress(p->user, ++*done, total);
    }
    for (int r = 0; r < p->reps; r++) *mean += rate[r] / p->reps;
    for (int r = 0; r < p->reps && p->reps > 1; r++)
        *sd += (rate[r] - *mean) * (rate[r] - *mean) / (p->reps - 1);
    *sd = sqrt(*sd);
    qsort(rate, (size_t)p->reps, sizeof *rate, cmp_double);
    b->min    = rate[0];
    b->max    = rate[p->reps - 1];
    b->median = p->reps % 2 ? rate[p->reps / 2]
                            : 0.5 * (rate[p->reps / 2 - 1] + rate[p->reps / 2]);
    return SHRINK_OK;
}

shrink_status shrink_bench(const shrink_model *m, const shrink_bench_params *params,
                           shrink_bench_result *res) {
    memset(res, 0, sizeof *res);
    shrink_bench_params p   = params ? *params : shrink_bench_params_default();
    const int32_t       V   = m->cfg.vocab_size;
    const int32_t       max = m->cfg.max_seq_len;
    if (p.pp < 0 || p.tg < 0 || p.pp > max || p.tg > max)
        return sk_error(SHRINK_ERR_ARG, "bench: pp %d / tg %d: the model's context holds %d "
                        "tokens", p.pp, p.tg, max);
    if (p.pp == 0 && p.tg == 0) return sk_error(SHRINK_ERR_ARG, "bench: pp 0 and tg 0");
    if (p.reps < 1) return sk_error(SHRINK_ERR_ARG, "bench: reps %d < 1", p.reps);

    int32_t         n   = p.pp > p.tg ? p.pp : p.tg;
    shrink_context *ctx = NULL;
    shrink_status   st  = shrink_context_create(&ctx, m, n, p.pp > 0 ? p.pp : 1);
    if (st != SHRINK_OK) return st;
    int32_t *ids    = sk_malloc((size_t)n * sizeof *ids);
    float   *logits = sk_malloc((size_t)V * sizeof *logits);
    double  *rate   = sk_malloc((size_t)p.reps * sizeof *rate);
    if (!ids || !logits || !rate) {
        st = sk_error(SHRINK_ERR_NOMEM, "bench: out of memory");
        goto out_free;
    }
    for (int32_t i = 0; i < n; i++) ids[i] = (int32_t)(((int64_t)i * 7919) % V);

    int64_t    done  = 0;
    int64_t    total = (int64_t)(p.reps + 1) * ((p.pp > 0) + (p.tg > 0));
    bench_stat bp = {0}, bt = {0};
    cpu_set_t  allowed;
    bool       pin = p.pin && sched_getaffinity(0, sizeof allowed, &allowed) == 0;
    res->threads = omp_get_max_threads();
    if (pin) res->pinned = pin_threads(&allowed, res->threads, false);
    if (p.pp > 0) st = measure(ctx, ids, p.pp, true, &p, logits, rate, &done, total, &bp);
    if (st == SHRINK_OK && p.tg > 0)
        st = measure(ctx, ids, p.tg, false, &p, logits, rate, &done, total, &bt);
    if (pin) pin_threads(&allowed, res->threads, true);
    res->pp_tok_s = bp.mean;
    res->pp_tok_s_sd = bp.sd;
    res->pp_tok_s_median = bp.median;
    res->pp_tok_s_min = bp.min;
    res->pp_tok_s_max = bp.max;
    res->tg_tok_s = bt.mean;
    res->tg_tok_s_sd = bt.sd;
    res->tg_tok_s_median = bt.median;
    res->tg_tok_s_min = bt.min;
    res->tg_tok_s_max = bt.max;
out_free:
    sk_free(ids);
    sk_free(logits);
    sk_free(rate);
    shrink_context_free(ctx);
    return st;
}
