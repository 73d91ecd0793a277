/*
 * test_distill.c - the distillation loss of src/train/distill_loss.c:
 *   1. against the float64 reference tools/ref_check/distill_ref.py (fixture
 *      fixtures/distill/loss_ref.txt: whole vocabulary, top-K, weak, alpha 1, alpha 0, and at
 *      tau 1 (the one-softmax float path) whole vocabulary and top-K): loss,
 *      CE and KL rel 1e-5, ||dX - ref|| / ||ref|| and the same for dhead < 1e-4 (the reference
 *      gradient is a float64 central difference, not the closed form), computed in chunks of 3
 *      rows so the chunking is exercised;
 *   2. central finite differences of the C loss itself with respect to X (double loss sums);
 *   3. teacher rows: top-K ids sorted, log-probabilities renormalized (sum of p = 1);
 *   4. through a tiny random model: alpha 0 gives sk_train_forward_backward's loss and
 *      gradients (at tau 1 bit for bit: the same float kernel); central finite differences of the model-level distillation loss (top-5
 *      teacher rows) on three weights of every parameter tensor;
 *   5. teacher rows on demand (sk_distill_feed, the training loop's way: a chunk and a window
 *      of rows held, never all N): loss, dX and dhead bit for bit those of all rows made
 *      first, whole vocabulary and top 3, chunks of 5 rows across windows of 6.
 */
#include "formats/formats.h"
#include "convert/init.h"
#include "train/train.h"
#include "test_util.h"

#include <math.h>

/* ---- 1. the float64 reference ------------------------------------------------------------ */

static int read_vec(FILE *f, const char *key, double *out, int n) {
    char k[32];
    if (fscanf(f, "%31s", k) != 1 || strcmp(k, key)) return 0;
    for (int i = 0; i < n; i++)
        if (fscanf(f, "%lf", &out[i]) != 1) return 0;
    return 1;
}

static double rel_err(const float *a, const double *ref, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        num += (a[i] - ref[i]) * (a[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return sqrt(num) / (sqrt(den) + 1e-30);
}

static sk_scratch scratch;

/* The loss (summed over rows) of sk_distill_classifier_forward_backward. */
static double dloss(float *dX, float *dhead, const float *X, const float *head,
                    const int32_t *targets, const sk_distill_rows *t, int N, int D, int V,
                    float scale, float *work, int chunk, double *ce, double *kl) {
    double l = NAN;
    shrink_status st = sk_distill_classifier_forward_backward(&l, dX, dhead, X, head, targets, t,
                                                              N, D, V, scale, work, chunk,
                                                              &scratch, ce, kl);
    CHECK(st == SHRINK_OK, "distill classifier: %s", shrink_last_error());
    return l;
}

static void check_reference(void) {
    char path[1024];
    if (!test_need_asset(path, sizeof path, "fixtures/distill/loss_ref.txt")) return;
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "open %s", path);
    if (!f) return;
    char name[32];
    int N, D, V, K, cases = 0;
    double alpha, tau;
    while (fscanf(f, " case %31s %d %d %d %d %lf %lf", name, &N, &D, &V, &K, &alpha, &tau) == 7) {
        double *X = malloc(sizeof(double) * N * D), *H = malloc(sizeof(double) * V * D);
        double *tg = malloc(sizeof(double) * N), *TL = malloc(sizeof(double) * N * V);
        double *dX = malloc(sizeof(double) * N * D), *dH = malloc(sizeof(double) * V * D);
        double loss, ce, kl;
        int ok = read_vec(f, "X", X, N * D) && read_vec(f, "head", H, V * D) &&
                 read_vec(f, "targets", tg, N) && read_vec(f, "teacher", TL, N * V) &&
                 read_vec(f, "loss", &loss, 1) && read_vec(f, "ce", &ce, 1) &&
                 read_vec(f, "kl", &kl, 1) && read_vec(f, "dX", dX, N * D) &&
                 read_vec(f, "dhead", dH, V * D);
        CHECK(ok, "%s: fixture case %s unreadable", path, name);
        if (ok) {
            float *Xf = malloc(sizeof(float) * N * D), *Hf = malloc(sizeof(float) * V * D);
            float *zt = malloc(sizeof(float) * V), *logp = malloc(sizeof(float) * N * K);
            float *gX = calloc((size_t)N * D, sizeof(float)), *gH = calloc((size_t)V * D, sizeof(float));
            int32_t *t32 = malloc(sizeof(int32_t) * N), *idx = malloc(sizeof(int32_t) * N * K);
            const int chunk = 3;
            float *work = malloc(sizeof(float) * sk_classifier_work_floats(D, V, chunk));
            for (int i = 0; i < N * D; i++) Xf[i] = (float)X[i];
            for (int i = 0; i < V * D; i++) Hf[i] = (float)H[i];
            for (int n = 0; n < N; n++) {
                t32[n] = (int32_t)tg[n];
                for (int v = 0; v < V; v++) zt[v] = (float)TL[(size_t)n * V + v];
                sk_distill_teacher_row(zt, V, (float)tau, K, idx + (size_t)n * K, logp + (size_t)n * K);
            }
            sk_distill_rows rows = {.alpha = (float)alpha, .tau = (float)tau, .K = K,
                                    .idx = K < V ? idx : NULL, .logp = logp};
            double c_ce, c_kl;
            double c_loss = dloss(gX, gH, Xf, Hf, t32, &rows, N, D,
                                                                V, 1.0f / N, work, chunk,
                                                                &c_ce, &c_kl) / N;
            c_ce /= N;
            c_kl /= N;
            CHECK(fabs(c_loss - loss) <= 1e-5 * fabs(loss) + 1e-7, "%s: loss %.9g, ref %.9g",
                  name, c_loss, loss);
            CHECK(fabs(c_ce - ce) <= 1e-5 * fabs(ce) + 1e-7, "%s: ce %.9g, ref %.9g", name, c_ce, ce);
            CHECK(fabs(c_kl - kl) <= 1e-5 * fabs(kl) + 1e-7, "%s: kl %.9g, ref %.9g", name, c_kl, kl);
            double ex = rel_err(gX, dX, N * D), eh = rel_err(gH, dH, V * D);
            CHECK(ex < 1e-4, "%s: dX rel err %.3g", name, ex);
            CHECK(eh < 1e-4, "%s: dhead rel err %.3g", name, eh);
            /* the loss alone (no gradient wanted) is the same number */
            double l2 = dloss(NULL, NULL, Xf, Hf, t32, &rows, N, D,
                                                            V, 1.0f / N, work, chunk, NULL, NULL) / N;
            CHECK(l2 == c_loss, "%s: loss without gradient %.9g != %.9g", name, l2, c_loss);

            /* 2. central differences of the C loss with respect to X */
            double worst = 0;
            for (int i = 0; i < N * D; i += 3) {
                const float x0 = Xf[i], h = 1e-2f;
                Xf[i] = x0 + h;
                double lp = dloss(NULL, NULL, Xf, Hf, t32, &rows, N,
                                                                D, V, 1.0f, work, chunk, NULL, NULL) / N;
                Xf[i] = x0 - h;
                double lm = dloss(NULL, NULL, Xf, Hf, t32, &rows, N,
                                                                D, V, 1.0f, work, chunk, NULL, NULL) / N;
                Xf[i] = x0;
                double fd = (lp - lm) / (2.0 * h), e = fabs(fd - gX[i]) / (fabs(fd) + 1e-2);
                worst = e > worst ? e : worst;
            }
            CHECK(worst < 2e-3, "%s: finite differences vs dX: worst rel err %.3g", name, worst);
            /* 3. teacher rows */
            for (int n = 0; n < N; n++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += exp(logp[(size_t)n * K + k]);
                CHECK(fabs(s - 1) < 1e-5, "%s: row %d teacher probabilities sum to %.9g", name, n, s);
                if (K < V)
                    for (int k = 1; k < K; k++)
                        CHECK(TL[(size_t)n * V + idx[n * K + k - 1]] >= TL[(size_t)n * V + idx[n * K + k]],
                              "%s: row %d top-K not sorted", name, n);
            }
            free(Xf); free(Hf); free(zt); free(logp); free(gX); free(gH); free(t32); free(idx);
            free(work);
            cases++;
        }
        free(X); free(H); free(tg); free(TL); free(dX); free(dH);
        if (!ok) break;
    }
    fclose(f);
    CHECK(cases == 7, "%s: %d cases read, 7 expected", path, cases);
}

/* ---- 4. through a model ------------------------------------------------------------------ */

static uint32_t rs = 99;
static uint32_t rnd(void) { rs = rs * 1664525u + 1013904223u; return rs >> 8; }

static sk_train_model *tiny_model(uint64_t seed) {
    sk_init_params ip = {.seed = seed, .init_range = 0.3f, .dtype = SHRINK_DTYPE_F32};
    sk_config *c = &ip.cfg;
    memset(c, 0, sizeof *c);
    c->arch = sk_arch_find("llama");
    c->dim = 16; c->n_layers = 2; c->n_heads = 4; c->n_kv_heads = 2; c->head_dim = 4;
    c->ffn_dim = 24; c->vocab_size = 37; c->max_seq_len = 16; c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f; c->rope_layout = SK_ROPE_HALF; c->bos_id = 1; c->eos_id = 2;
    sk_source src;
    sk_init_source(&ip, &src);
    sk_train_model *tm = NULL;
    if (sk_train_create(&tm, &src) != SHRINK_OK) return NULL;
    return tm;
}

/* alpha 0 against the plain CE pass; finite differences of the distillation loss through the
 * whole model (random teacher rows, top 5, alpha 0.6, tau 2). */
static void check_model(void) {
    sk_train_model *tm = tiny_model(5);
    CHECK(tm != NULL, "tiny model: %s", shrink_last_error());
    if (!tm) return;
    enum { B = 2, T = 6, V = 37 };
    const int N = B * T;
    int32_t tok[B * (T + 1)];
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)(rnd() % V);
    /* random teacher rows */
    float *zt = malloc(sizeof(float) * V), *logp = malloc(sizeof(float) * N * V);
    for (int n = 0; n < N; n++) {
        for (int v = 0; v < V; v++) zt[v] = (float)((int)(rnd() % 2001) - 1000) / 300.0f;
        sk_distill_teacher_row(zt, V, 2.0f, V, NULL, logp + (size_t)n * V);
    }
    sk_distill_rows rows = {.alpha = 0.0f, .tau = 2.0f, .K = V, .idx = NULL, .logp = logp};
    float l_ce, l_d;
    sk_train_zero_grad(tm);
    CHECK(sk_train_forward_backward(tm, tok, B, T, &l_ce) == SHRINK_OK, "fb: %s", shrink_last_error());
    float *g_ce = malloc(sizeof(float) * tm->n_elems);
    memcpy(g_ce, tm->g_all, sizeof(float) * tm->n_elems);
    sk_train_zero_grad(tm);
    double ce, kl;
    CHECK(sk_train_forward_backward_distill(tm, tok, B, T, &rows, &l_d, &ce, &kl) == SHRINK_OK,
          "fb distill: %s", shrink_last_error());
    CHECK(fabsf(l_d - l_ce) <= 1e-6f * fabsf(l_ce), "alpha 0: loss %.9g, CE %.9g", l_d, l_ce);
    double e = 0, n2 = 0;
    for (int64_t i = 0; i < tm->n_elems; i++) {
        e += (tm->g_all[i] - g_ce[i]) * (double)(tm->g_all[i] - g_ce[i]);
        n2 += (double)g_ce[i] * g_ce[i];
    }
    CHECK(sqrt(e / n2) < 1e-5, "alpha 0: gradient rel err %.3g vs plain CE", sqrt(e / n2));

    /* alpha 0 at tau 1 (the one-softmax path): the cross-entropy's own floats, bit for bit */
    for (int n = 0; n < N; n++) {
        for (int v = 0; v < V; v++) zt[v] = (float)((int)(rnd() % 2001) - 1000) / 300.0f;
        sk_distill_teacher_row(zt, V, 1.0f, V, NULL, logp + (size_t)n * V);
    }
    sk_distill_rows r1 = {.alpha = 0.0f, .tau = 1.0f, .K = V, .idx = NULL, .logp = logp};
    sk_train_zero_grad(tm);
    CHECK(sk_train_forward_backward_distill(tm, tok, B, T, &r1, &l_d, NULL, NULL) == SHRINK_OK,
          "fb distill tau 1: %s", shrink_last_error());
    CHECK(l_d == l_ce && !memcmp(tm->g_all, g_ce, sizeof(float) * tm->n_elems),
          "alpha 0, tau 1: loss %.9g vs CE %.9g, gradients %s", l_d, l_ce,
          memcmp(tm->g_all, g_ce, sizeof(float) * tm->n_elems) ? "differ" : "equal");

    /* finite differences of the model-level loss (alpha 0.6, tau 2, top-5 teacher rows) */
    int32_t *idx = malloc(sizeof(int32_t) * N * 5);
    float *lp5 = malloc(sizeof(float) * N * 5);
    for (int n = 0; n < N; n++) {
        for (int v = 0; v < V; v++) zt[v] = (float)((int)(rnd() % 2001) - 1000) / 300.0f;
        sk_distill_teacher_row(zt, V, 2.0f, 5, idx + n * 5, lp5 + n * 5);
    }
    sk_distill_rows r5 = {.alpha = 0.6f, .tau = 2.0f, .K = 5, .idx = idx, .logp = lp5};
    sk_train_zero_grad(tm);
    float l0;
    CHECK(sk_train_forward_backward_distill(tm, tok, B, T, &r5, &l0, NULL, NULL) == SHRINK_OK,
          "fb top-5: %s", shrink_last_error());
    double worst = 0;
    int checked = 0;
    for (int64_t pi = 0; pi < tm->n_params; pi++) {
        sk_train_param *p = &tm->params[pi];
        for (int j = 0; j < 3; j++) {
            int64_t k = (int64_t)(rnd() % (uint32_t)p->n);
            const float w0 = p->w[k], h = 1e-2f;
            float lp, lm;
            p->w[k] = w0 + h;
            sk_train_loss_distill(tm, tok, B, T, &r5, &lp, NULL, NULL);
            p->w[k] = w0 - h;
            sk_train_loss_distill(tm, tok, B, T, &r5, &lm, NULL, NULL);
            p->w[k] = w0;
            double fd = ((double)lp - lm) / (2.0 * h);
            double err = fabs(fd - p->g[k]) / (fabs(fd) + fabs(p->g[k]) + 1e-3);
            worst = err > worst ? err : worst;
            checked++;
        }
    }
    CHECK(worst < 3e-2, "model finite differences: worst rel err %.3g over %d weights", worst, checked);
    free(idx); free(lp5); free(zt); free(logp); free(g_ce);
    sk_train_free(tm);
}

/* ---- 5. rows on demand ------------------------------------------------------------------- */

static const float *feed_z;  /* (N, V) teacher logits the fake teacher serves */
static int feed_calls;

static shrink_status fake_window(void *ctx, int64_t j, float *z) {
    const int *TV = ctx;
    memcpy(z, feed_z + (size_t)j * TV[0] * TV[1], sizeof(float) * TV[0] * TV[1]);
    feed_calls++;
    return SHRINK_OK;
}

static void check_feed(void) {
    enum { T = 6, W = 3, N = T * W, D = 8, V = 37, CH = 5 };
    int TV[2] = {T, V};
    float *zt = malloc(sizeof(float) * N * V), *X = malloc(sizeof(float) * N * D),
          *H = malloc(sizeof(float) * V * D);
    int32_t tg[N];
    for (int i = 0; i < N * V; i++) zt[i] = (float)((int)(rnd() % 2001) - 1000) / 300.0f;
    for (int i = 0; i < N * D; i++) X[i] = (float)((int)(rnd() % 2001) - 1000) / 1000.0f;
    for (int i = 0; i < V * D; i++) H[i] = (float)((int)(rnd() % 2001) - 1000) / 1000.0f;
    for (int i = 0; i < N; i++) tg[i] = (int32_t)(rnd() % V);
    feed_z = zt;
    float *work = malloc(sizeof(float) * sk_classifier_work_floats(D, V, CH));
    for (int kk = 0; kk < 2; kk++) {
        const int K = kk ? 3 : V;
        /* all rows first */
        float *lp = malloc(sizeof(float) * N * K);
        int32_t *ix = malloc(sizeof(int32_t) * N * K);
        for (int n = 0; n < N; n++)
            sk_distill_teacher_row(zt + (size_t)n * V, V, 1.5f, K, K < V ? ix + n * K : NULL,
                                   lp + (size_t)n * K);
        sk_distill_rows all = {.alpha = 0.7f, .tau = 1.5f, .K = K, .idx = K < V ? ix : NULL,
                               .logp = lp};
        float dXa[N * D] = {0}, dHa[V * D] = {0}, dXf[N * D] = {0}, dHf[V * D] = {0};
        double cea, kla, cef, klf;
        const double la = dloss(dXa, dHa, X, H, tg, &all, N, D, V, 0.25f, work, CH, &cea, &kla);
        /* on demand: cap = a chunk + a window */
        const int cap = CH + T;
        float *flp = malloc(sizeof(float) * cap * V), *fz = malloc(sizeof(float) * T * V);
        int32_t *fix = malloc(sizeof(int32_t) * cap * K);
        sk_distill_feed f = {.window = fake_window, .ctx = TV, .T = T, .V = V, .K = K,
                             .tau = 1.5f, .n_rows = N, .cap = cap, .logp = flp, .idx = fix,
                             .z = fz};
        sk_distill_rows fed = {.alpha = 0.7f, .tau = 1.5f, .K = K, .fill = sk_distill_feed_rows,
                               .fill_ctx = &f};
        feed_calls = 0;
        const double lf = dloss(dXf, dHf, X, H, tg, &fed, N, D, V, 0.25f, work, CH, &cef, &klf);
        CHECK(lf == la && cef == cea && klf == kla, "feed K=%d: loss %.17g vs %.17g", K, lf, la);
        CHECK(!memcmp(dXf, dXa, sizeof dXa) && !memcmp(dHf, dHa, sizeof dHa),
              "feed K=%d: gradients differ from all rows first", K);
        CHECK(feed_calls == W, "feed K=%d: %d teacher windows run, %d expected", K, feed_calls, W);
        /* out of order is an error, not a wrong row */
        const int32_t *pi;
        const float *pl;
        CHECK(sk_distill_feed_rows(&f, 0, 5, &pi, &pl) != SHRINK_OK, "feed: a row asked twice");
        free(lp); free(ix); free(flp); free(fz); free(fix);
    }
    CHECK(sk_distill_feed_cap(4 * 64, 64, 32000) == 131 + 64, "feed cap at V 32000: %lld",
          (long long)sk_distill_feed_cap(4 * 64, 64, 32000));
    free(zt); free(X); free(H); free(work);
}

int main(void) {
    if (sk_scratch_reserve(&scratch, (size_t)64 << 20) != SHRINK_OK) {
        fprintf(stderr, "scratch: %s\n", shrink_last_error());
        return 1;
    }
    check_reference();
    check_model();
    check_feed();
    sk_scratch_free(&scratch);
    return test_summary("test_distill");
}
