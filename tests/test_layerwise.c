/*
 * test_layerwise.c - the layer-by-layer calibration pass (src/model/layerwise.c) against the
 * whole-model forward it replaces: on tiny-llama-gqa (GQA, untied) and tiny-gpt2 (LayerNorm,
 * learned positions, fused qkv), over windows of 50 tokens in batches of 16 (a short last
 * window and a short last batch), with layer 0's attention input matrix changed by the
 * layer function (so the next layers must read the changed layer's outputs),
 *   - the Hessian of layer 1's attention input, of its ffn_down input, and of the head's input
 *     equal, bit for bit, H = sum_t x_t x_t^T accumulated here in double from an observer on
 *     (each element's sum over a window from zero in token order, then added to H)
 *     shrink_context_eval over the same windows of a second copy of the model with the same
 *     change bound (every layer run per window, as the pass did before it kept the stream);
 *   - with diag (Wanda's statistics) layer 1's sums of x^2 equal the same way;
 *   - packed (GPTQ's form: the upper triangle by rows) the same numbers;
 *   - two ranks (threads joined by an ordered sum as tools/cli/mpi.c's chain), each running
 *     its windows, give both the one-process packed Hessians bit for bit.
 */
#include "model/layerwise.h"
#include "model/hessian.h"
#include "model/model.h"
#include "test_util.h"

#include <pthread.h>

#define NTOK 180
#define NCTX 50
#define NBATCH 16

typedef struct ref {
    int     layer;              /* the layer observed (n_layers: the head) */
    int     n_layers, diag, packed;
    int64_t cols[SK_IN_COUNT];
    double *h[SK_IN_COUNT];
    double *hw[SK_IN_COUNT];    /* the current window's sums (H), added to h at its end */
} ref;

/* The end of a window: each element's window sum (from zero, in token order) added to H. */
static void ref_flush(ref *r) {
    for (int i = 0; i < SK_IN_COUNT && !r->diag; i++) {
        const int64_t n = r->cols[i] * r->cols[i];
        for (int64_t k = 0; r->h[i] && r->hw[i] && k < n; k++) {
            r->h[i][k] += r->hw[i][k];
            r->hw[i][k] = 0.0;
        }
    }
}

static void ref_observe(void *user, int layer, sk_linear which, const float *X, int64_t T,
                        int64_t cols) {
    ref *r = user;
    int in;
    if (which == SK_LIN_HEAD) {
        if (r->layer != r->n_layers) return;
        in = SK_IN_ATTN;
    } else {
        if (layer != r->layer) return;
        if (which == SK_LIN_Q) in = SK_IN_ATTN;
        else if (which == SK_LIN_O) in = SK_IN_O;
        else if (which == SK_LIN_UP) in = SK_IN_FFN;
        else if (which == SK_LIN_DOWN) in = SK_IN_DOWN;
        else return;
    }
    double *h = r->h[in];
    if (!h || !r->hw[in] || cols != r->cols[in]) return;
    for (int64_t t = 0; t < T; t++)
        for (int64_t a = 0; a < cols; a++) {
            const double xa = X[t * cols + a];
            if (r->diag) {
                h[a] += xa * xa;
                continue;
            }
            if (xa == 0.0) continue;
            for (int64_t b = a; b < cols; b++)
                r->hw[in][a * cols + b] += xa * (double)X[t * cols + b];
        }
}

/* Layer 0's attention input matrix (wq, or the fused qkv's rows) halved, as f32. */
static float *changed_wq(const struct shrink_model *m) {
    const sk_mat *w = &m->layers[0].wq;
    float *f = malloc((size_t)(w->rows * w->cols) * sizeof *f);
    for (int64_t r = 0; f && r < w->rows; r++) {
        sk_mat_row_f32(w, r, f + r * w->cols);
        for (int64_t c = 0; c < w->cols; c++) f[r * w->cols + c] *= 0.5f;
    }
    return f;
}

typedef struct got {
    ref    *want;      /* the layer and inputs to keep */
    float  *wq;        /* bound at layer 0 */
    double *h[SK_IN_COUNT];
} got;

static shrink_status got_layer(void *user, struct shrink_model *m, int l,
                               double *const stat[SK_IN_COUNT], const int64_t cols[SK_IN_COUNT]) {
    got *g = user;
    if (l == 0) sk_bind_linear(m, SK_ROLE_WQ, 0, SHRINK_DTYPE_F32, m->layers[0].wq.rows,
                               m->layers[0].wq.cols, g->wq);
    if (l != g->want->layer) return SHRINK_OK;
    for (int i = 0; i < SK_IN_COUNT; i++) {
        size_t n = g->want->diag ? (size_t)cols[i] : g->want->packed
                   ? sk_hessian_packed(cols[i]) : (size_t)(cols[i] * cols[i]);
        g->h[i] = malloc(n * sizeof(double));
        if (g->h[i]) memcpy(g->h[i], stat[i], n * sizeof(double));
    }
    return SHRINK_OK;
}

/* The reference: every layer per window with the observer, then the pass; compared. */
static void check(const char *model, int layer, int diag, int packed, const int32_t *ids) {
    shrink_model *m1 = NULL, *m2 = NULL;
    CHECK(shrink_model_load(&m1, model, NULL) == SHRINK_OK, "load %s: %s", model,
          shrink_last_error());
    CHECK(shrink_model_load(&m2, model, NULL) == SHRINK_OK, "load %s", model);
    if (!m1 || !m2) goto out;
    const sk_config *c = &m1->cfg;
    ref r = {.layer = layer, .n_layers = c->n_layers, .diag = diag, .packed = packed};
    r.cols[SK_IN_ATTN] = c->dim;
    r.cols[SK_IN_O] = (int64_t)c->n_heads * c->head_dim;
    r.cols[SK_IN_FFN] = c->dim;
    r.cols[SK_IN_DOWN] = c->ffn_dim;
    for (int i = 0; i < SK_IN_COUNT; i++)
        r.h[i] = calloc((size_t)(diag ? r.cols[i] : r.cols[i] * r.cols[i]), sizeof(double));
    for (int i = 0; i < SK_IN_COUNT; i++)
        r.hw[i] = calloc((size_t)(diag ? r.cols[i] : r.cols[i] * r.cols[i]), sizeof(double));
    float *wq1 = changed_wq(m1), *wq2 = changed_wq(m2);
    sk_bind_linear(m1, SK_ROLE_WQ, 0, SHRINK_DTYPE_F32, m1->layers[0].wq.rows,
                   m1->layers[0].wq.cols, wq1);
    shrink_context *ctx = NULL;
    CHECK(shrink_context_create(&ctx, m1, NCTX, NBATCH) == SHRINK_OK, "context");
    float *logits = malloc((size_t)NBATCH * (size_t)c->vocab_size * sizeof(float));
    sk_context_set_observer(ctx, ref_observe, &r);
    for (int64_t w0 = 0; ctx && logits && w0 < NTOK; w0 += NCTX) {
        int32_t wl = NTOK - w0 < NCTX ? (int32_t)(NTOK - w0) : NCTX;
        for (int32_t o = 0; o < wl; o += NBATCH) {
            int32_t k = wl - o < NBATCH ? wl - o : NBATCH;
            CHECK(shrink_context_eval(ctx, ids + w0 + o, k, o, logits, k) == SHRINK_OK, "eval");
        }
        ref_flush(&r);
    }
    got g = {.want = &r, .wq = wq2};
    sk_layerwise lw = {.model = m2, .ids = ids, .n = NTOK, .n_ctx = NCTX, .n_batch = NBATCH,
                       .diag = diag, .packed = packed, .layer = got_layer, .head = layer == c->n_layers,
                       .user = &g};
    CHECK(sk_layerwise_run(&lw) == SHRINK_OK, "layerwise: %s", shrink_last_error());
    const int ins[2] = {SK_IN_ATTN, SK_IN_DOWN};
    for (int k = 0; k < (layer == c->n_layers ? 1 : 2); k++) {
        const int i = ins[k];
        const int64_t n = r.cols[i];
        int same = g.h[i] != NULL;
        double worst = 0.0;
        for (int64_t a = 0; same && a < n; a++)
            for (int64_t b = diag ? 0 : a; b < (diag ? 1 : n); b++) {
                const int64_t at = diag ? a : a * n + b;
                const double v = packed ? g.h[i][sk_hessian_up(a, n) + (size_t)(b - a)]
                                        : g.h[i][at];
                if (v != r.h[i][at]) {
                    same = 0;
                    worst = fabs(v - r.h[i][at]);
                }
            }
        CHECK(same, "%s, %s %d, input %d: the layer-by-layer statistics differ from the "
              "whole-model forward's (%g)", model, layer == c->n_layers ? "head" : "layer",
              layer, i, worst);
        /* the mirrored lower triangle too */
        if (!diag && !packed) {
            int sym = g.h[i] != NULL;
            for (int64_t a = 0; sym && a < n; a++)
                for (int64_t b = 0; b < a; b++)
                    if (g.h[i][a * n + b] != g.h[i][b * n + a]) sym = 0;
            CHECK(sym, "%s: the Hessian of input %d is not symmetric", model, i);
        }
    }
    for (int i = 0; i < SK_IN_COUNT; i++) {
        free(r.h[i]);
        free(r.hw[i]);
        free(g.h[i]);
    }
    free(logits);
    shrink_context_free(ctx);
    shrink_model_free(m1);
    shrink_model_free(m2);
    free(wq1);
    free(wq2);
    return;
out:
    shrink_model_free(m1);
    shrink_model_free(m2);
}

/* ---- two ranks in one process: threads joined by the ordered sum ------------------------- */

typedef struct fake_comm {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    double *x0;      /* rank 0's total (its part 0) of the current call */
    int     posted;  /* calls rank 0 has posted / rank 1 has finished */
    int     done;
} fake_comm;

/* shrink_train_comm.sum_f64 for 2 ranks: rank 1 adds its parts one by one to rank 0's sum
 * (tools/cli/mpi.c's chain), and both get the total. */
static shrink_status fake_sum(fake_comm *f, int rank, double *const *x, int32_t k, int64_t n) {
    pthread_mutex_lock(&f->mu);
    if (rank == 0) {
        f->x0 = x[0];
        f->posted++;
        pthread_cond_broadcast(&f->cv);
        while (f->done < f->posted) pthread_cond_wait(&f->cv, &f->mu);
    } else {
        while (f->posted <= f->done) pthread_cond_wait(&f->cv, &f->mu);
        for (int64_t e = 0; e < n; e++) {
            double t = f->x0[e];
            for (int32_t p = 0; p < k; p++) t += x[p][e];
            x[0][e] = t;
            f->x0[e] = t;
        }
        f->done++;
        pthread_cond_broadcast(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
    return SHRINK_OK;
}
static fake_comm fc = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0};
static shrink_status sum0(void *u, double *const *x, int32_t k, int64_t n) {
    return fake_sum(u, 0, x, k, n);
}
static shrink_status sum1(void *u, double *const *x, int32_t k, int64_t n) {
    return fake_sum(u, 1, x, k, n);
}

typedef struct rank_job {
    const char     *model;
    const int32_t  *ids;
    int64_t         n;
    shrink_train_comm comm;
    ref             want;
    got             g;
    shrink_status   st;
} rank_job;

static void *rank_run(void *u) {
    rank_job *r = u;
    shrink_model *m = NULL;
    r->st = shrink_model_load(&m, r->model, NULL);
    if (r->st) return NULL;
    r->g.want = &r->want;
    r->g.wq = changed_wq(m);
    sk_layerwise lw = {.model = m, .ids = r->ids, .n = r->n, .n_ctx = NCTX, .n_batch = NBATCH,
                       .packed = 1, .layer = got_layer, .user = &r->g, .comm = &r->comm};
    r->st = sk_layerwise_run(&lw);
    shrink_model_free(m);
    free(r->g.wq);
    return NULL;
}

/* Layer `layer`'s packed Hessians from 2 ranks (windows 0-1 and 2-3 of NTOK = 180: 50, 50 |
 * 50, 30; rank 1 keeps its two windows apart) equal one process's bit for bit, on both ranks. */
static void check_ranks(const char *model, int layer, const int32_t *ids) {
    rank_job one = {.model = model, .ids = ids, .n = NTOK, .want = {.layer = layer, .packed = 1}};
    one.comm = (shrink_train_comm){.rank = 0, .n_ranks = 1};
    rank_run(&one);
    CHECK(one.st == SHRINK_OK, "one process: %s", shrink_last_error());
    rank_job r[2];
    pthread_t th[2];
    for (int k = 0; k < 2; k++) {
        r[k] = (rank_job){.model = model, .ids = ids + k * 2 * NCTX,
                          .n = k ? NTOK - 2 * NCTX : 2 * NCTX,
                          .want = {.layer = layer, .packed = 1}};
        r[k].comm = (shrink_train_comm){.rank = k, .n_ranks = 2, .sum_f64 = k ? sum1 : sum0,
                                        .user = &fc};
        pthread_create(&th[k], NULL, rank_run, &r[k]);
    }
    for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    shrink_model *m = NULL;
    if (shrink_model_load(&m, model, NULL) != SHRINK_OK) return;
    const int64_t cols[SK_IN_COUNT] = {m->cfg.dim, (int64_t)m->cfg.n_heads * m->cfg.head_dim,
                                       m->cfg.dim, m->cfg.ffn_dim};
    shrink_model_free(m);
    for (int k = 0; k < 2; k++) {
        CHECK(r[k].st == SHRINK_OK, "rank %d: %s", k, shrink_last_error());
        for (int i = 0; i < SK_IN_COUNT; i++) {
            const size_t P = sk_hessian_packed(cols[i]);
            int same = one.g.h[i] && r[k].g.h[i] &&
                       !memcmp(one.g.h[i], r[k].g.h[i], P * sizeof(double));
            CHECK(same, "%s layer %d input %d: rank %d of 2 differs from one process", model,
                  layer, i, k);
        }
    }
    for (int i = 0; i < SK_IN_COUNT; i++) {
        free(one.g.h[i]);
        free(r[0].g.h[i]);
        free(r[1].g.h[i]);
    }
}

int main(void) {
    char b1[2048], b2[2048];
    const char *llama = test_need_model(b1, sizeof b1, "tiny-llama-gqa");
    const char *gpt2 = test_need_model(b2, sizeof b2, "tiny-gpt2");
    int32_t ids[NTOK];
    test_rng_seed(7);
    if (llama) {
        shrink_model *m = NULL;
        if (shrink_model_load(&m, llama, NULL) == SHRINK_OK) {
            for (int i = 0; i < NTOK; i++) ids[i] = (int32_t)(test_rng_u32() % 
                                                              (uint32_t)m->cfg.vocab_size);
            const int L = m->cfg.n_layers;
            shrink_model_free(m);
            check(llama, 1, 0, 0, ids);
            check(llama, 1, 1, 0, ids);
            check(llama, L, 0, 0, ids);
            check(llama, 1, 0, 1, ids);
            check_ranks(llama, 1, ids);
        }
    }
    if (gpt2) {
        shrink_model *m = NULL;
        if (shrink_model_load(&m, gpt2, NULL) == SHRINK_OK) {
            for (int i = 0; i < NTOK; i++) ids[i] = (int32_t)(test_rng_u32() %
                                                              (uint32_t)m->cfg.vocab_size);
            const int L2 = m->cfg.n_layers;
            shrink_model_free(m);
            check(gpt2, 1, 0, 0, ids);
            check(gpt2, L2, 0, 1, ids);
        }
    }
    return test_summary("test_layerwise");
}
