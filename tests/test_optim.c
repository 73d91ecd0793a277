/*
 * test_optim.c - the training loop's parts that need no model: AdamW and SGD against
 * double-precision reference loops on a quadratic, freeze flags and element masks, the global
 * gradient norm and clip factor, the learning-rate schedules at hand-computed points, token
 * files (round trip at both widths, one broken file per way to break it) and the window
 * loader.
 */
#include "test_util.h"

#include "train/optim.h"

#include <unistd.h>

/* ==== optimizers ========================================================================== */

enum { NQ = 37 };

/* f(w) = 1/2 sum a_i (w_i - c_i)^2, gradient a_i (w_i - c_i) */
static void quad_grad(const float *w, float *g, const double *a, const double *c, int n) {
    for (int i = 0; i < n; i++) g[i] = (float)(a[i] * ((double)w[i] - c[i]));
}

static void test_adamw_quadratic(void) {
    double a[NQ], c[NQ], wr[NQ], mr[NQ] = {0}, vr[NQ] = {0};
    float  w[NQ], g[NQ];
    for (int i = 0; i < NQ; i++) {
        a[i]  = 0.5 + 0.1 * i;
        c[i]  = sin(i * 1.7);
        wr[i] = w[i] = (float)cos(i * 0.3);
    }
    sk_optim_params p = sk_optim_params_default();
    p.wd = 0.1;
    sk_opt_param  prm = {.w = w, .g = g, .n = NQ, .decay = true};
    sk_optim     *o;
    CHECK(sk_optim_create(&o, &p, &prm, 1) == SHRINK_OK, "sk_optim_create");
    /* one trajectory in double from the same start, compared at the end */
    double lr = 0.05, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1, scale = 0.5, maxrel = 0;
    for (int t = 1; t <= 200; t++) {
        quad_grad(w, g, a, c, NQ);
        sk_optim_step(o, &prm, 1, lr, scale);
        for (int i = 0; i < NQ; i++) {
            double gi = a[i] * (wr[i] - c[i]) * scale;
            mr[i] = b1 * mr[i] + (1 - b1) * gi;
            vr[i] = b2 * vr[i] + (1 - b2) * gi * gi;
            double mh = mr[i] / (1 - pow(b1, t)), vh = vr[i] / (1 - pow(b2, t));
            wr[i] -= lr * wd * wr[i];
            wr[i] -= lr * mh / (sqrt(vh) + eps);
        }
    }
    for (int i = 0; i < NQ; i++) {
        double d = fabs((double)w[i] - wr[i]);
        if (d > maxrel) maxrel = d;
    }
    CHECK(maxrel < 2e-4, "AdamW vs double reference after 200 steps: max |dw| %.3g", maxrel);
    CHECK(o->t == 200, "AdamW t = %lld", (long long)o->t);
    /* the minimum of f + decay lies near c: the optimizer got there */
    double far = 0;
    for (int i = 0; i < NQ; i++) far = fmax(far, fabs((double)w[i] - c[i]));
    CHECK(far < 0.2, "AdamW did not approach the minimum: max |w - c| %.3g", far);
    sk_optim_free(o);
}

static void test_sgd_momentum(void) {
    double a[NQ], c[NQ], wr[NQ], br[NQ] = {0};
    float  w[NQ], g[NQ];
    for (int i = 0; i < NQ; i++) {
        a[i]  = 0.5 + 0.05 * i;
        c[i]  = sin(i * 0.7);
        wr[i] = w[i] = (float)cos(i * 0.9);
    }
    for (int mom = 0; mom < 2; mom++) {
        sk_optim_params p = sk_optim_params_default();
        p.kind     = SK_OPTIM_SGD;
        p.momentum = mom ? 0.9 : 0.0;
        p.wd       = 0.01;
        sk_opt_param prm = {.w = w, .g = g, .n = NQ, .decay = true};
        sk_optim    *o;
        CHECK(sk_optim_create(&o, &p, &prm, 1) == SHRINK_OK, "sk_optim_create sgd");
        CHECK((o->m != NULL) == (mom != 0) && o->v == NULL, "SGD state arrays");
        double lr = 0.05, maxd = 0;
        for (int t = 1; t <= 100; t++) {
            quad_grad(w, g, a, c, NQ);
            sk_optim_step(o, &prm, 1, lr, 1.0);
            for (int i = 0; i < NQ; i++) {
                double gi = a[i] * (wr[i] - c[i]);
                double d  = gi;
                if (mom) d = br[i] = 0.9 * br[i] + gi;
                wr[i] -= lr * 0.01 * wr[i];
                wr[i] -= lr * d;
            }
        }
        for (int i = 0; i < NQ; i++) maxd = fmax(maxd, fabs((double)w[i] - wr[i]));
        CHECK(maxd < 1e-4, "SGD (momentum %d) vs double reference: max |dw| %.3g", mom, maxd);
        sk_optim_free(o);
    }
}

static void test_masks(void) {
    float w0[8] = {1, 2, 3, 4, 5, 6, 7, 8}, w1[4] = {1, 1, 1, 1};
    float g0[8] = {1, 1, 1, 1, 1, 1, 1, 1}, g1[4] = {1, 1, 1, 1};
    uint8_t mask[8] = {1, 0, 1, 0, 1, 0, 1, 0};
    float   fmask[8] = {1, 1, 0, 1, 1, 1, 1, 1};
    sk_opt_param prm[2] = {
        {.w = w0, .g = g0, .n = 8, .mask = mask, .mask_f32 = fmask, .decay = true},
        {.w = w1, .g = g1, .n = 4, .frozen = true},
    };
    sk_optim_params p = sk_optim_params_default();
    p.wd = 0.5;
    sk_optim *o;
    CHECK(sk_optim_create(&o, &p, prm, 2) == SHRINK_OK, "create");
    CHECK(o->total == 8 && o->off[1] == 8, "state layout: %lld elements (the frozen tensor has "
          "no state)", (long long)o->total);
    /* grad norm: trainable elements of tensor 0 are 0, 4, 6 -> sqrt(3) */
    double nrm = sk_grad_norm(prm, 2, 2.0);
    CHECK(fabs(nrm - 2.0 * sqrt(3.0)) < 1e-12, "grad norm %.17g", nrm);
    sk_optim_step(o, prm, 2, 0.1, 1.0);
    for (int i = 0; i < 8; i++) {
        bool held = !mask[i] || fmask[i] == 0;
        CHECK(held == (w0[i] == (float)(i + 1)), "element %d %s (w %g)", i,
              held ? "moved although masked" : "did not move", w0[i]);
        CHECK(held == (o->m[i] == 0 && o->v[i] == 0), "state of element %d", i);
    }
    for (int i = 0; i < 4; i++) CHECK(w1[i] == 1, "frozen tensor moved");
    sk_optim_free(o);
    CHECK(sk_clip_factor(10.0, 1.0) == 0.1, "clip 10 -> 1");
    CHECK(sk_clip_factor(0.5, 1.0) == 1.0, "no clip below");
    CHECK(sk_clip_factor(10.0, 0.0) == 1.0, "clip 0 = off");
}

/* ==== schedules =========================================================================== */

static void test_schedules(void) {
    sk_schedule s = {.kind = SK_SCHED_COSINE, .lr = 1.0, .lr_min = 0.1, .warmup = 10,
                     .steps = 111};
    CHECK(fabs(sk_schedule_lr(&s, 0) - 0.1) < 1e-15, "warmup step 0");
    CHECK(fabs(sk_schedule_lr(&s, 9) - 1.0) < 1e-15, "warmup step 9");
    CHECK(fabs(sk_schedule_lr(&s, 10) - 1.0) < 1e-15, "cosine start");
    CHECK(fabs(sk_schedule_lr(&s, 60) - 0.55) < 1e-12, "cosine middle %.17g",
          sk_schedule_lr(&s, 60));
    CHECK(fabs(sk_schedule_lr(&s, 110) - 0.1) < 1e-12, "cosine end");
    s.kind = SK_SCHED_LINEAR;
    CHECK(fabs(sk_schedule_lr(&s, 35) - 0.775) < 1e-12, "linear quarter %.17g",
          sk_schedule_lr(&s, 35));
    CHECK(fabs(sk_schedule_lr(&s, 110) - 0.1) < 1e-12, "linear end");
    s.kind = SK_SCHED_CONSTANT;
    CHECK(sk_schedule_lr(&s, 4) == 0.5 && sk_schedule_lr(&s, 100) == 1.0, "constant");
    s.warmup = 0;
    CHECK(sk_schedule_lr(&s, 0) == 1.0, "no warmup");
    CHECK(sk_sched_parse("cosine") == SK_SCHED_COSINE && sk_sched_parse("x") == -1, "parse");
}

/* ==== token files and loader ============================================================== */

static void test_tokfile(void) {
    char dir[] = "/tmp/shrink-test-optim.XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256];
    snprintf(path, sizeof path, "%s/t.tok", dir);
    int32_t ids[1000];
    for (int i = 0; i < 1000; i++) ids[i] = (i * 7919) % 512;
    for (int wide = 0; wide < 2; wide++) {
        int32_t vocab = wide ? 70000 : 512;
        if (wide) ids[3] = 69999;
        CHECK(sk_tokfile_write(path, ids, 1000, vocab) == SHRINK_OK, "write: %s",
              shrink_last_error());
        sk_tokens t;
        CHECK(sk_tokens_open(&t, path, NULL, false, 70000) == SHRINK_OK, "open: %s",
              shrink_last_error());
        CHECK(t.n == 1000 && t.width == (wide ? 4 : 2) && t.vocab_size == vocab, "header");
        int same = 1;
        for (int i = 0; i < 1000; i++) same &= sk_tokens_at(&t, i) == ids[i];
        CHECK(same, "round trip (width %d)", t.width);
        CHECK(t.map.size == SK_TOKFILE_HEADER + 1000u * t.width, "file size %zu", t.map.size);
        /* a model with a smaller vocabulary refuses the file */
        sk_tokens t2;
        if (wide) CHECK(sk_tokens_open(&t2, path, NULL, false, 512) == SHRINK_ERR_RANGE,
                        "token past the model's vocabulary");
        sk_tokens_close(&t);
    }
    ids[3] = 3;
    CHECK(sk_tokfile_write(path, (int32_t[]){1, 600}, 2, 512) == SHRINK_ERR_RANGE,
          "write refuses a token past the vocabulary");

    /* broken files, one per way to break the header */
    uint8_t good[SK_TOKFILE_HEADER + 8] = "SKTOKENS";
    good[8] = 1; good[12] = 2; good[17] = 1; good[24] = 4;   /* v1, u16, vocab 256, 4 tokens */
    sk_tokens t;
    CHECK(sk_tokens_parse(good, sizeof good, "good", &t) == SHRINK_OK, "good header: %s",
          shrink_last_error());
    struct { int off; uint8_t val; shrink_status want; const char *what; } bad[] = {
        {0, 'X', SHRINK_ERR_FORMAT, "magic"},
        {8, 2, SHRINK_ERR_UNSUPPORTED, "version"},
        {12, 3, SHRINK_ERR_FORMAT, "width"},
        {24, 5, SHRINK_ERR_FORMAT, "count past the data"},
        {31, 0x80, SHRINK_ERR_FORMAT, "huge count"},
        {17, 0, SHRINK_ERR_FORMAT, "vocabulary 0"},
        {SK_TOKFILE_HEADER + 1, 7, SHRINK_ERR_FORMAT, "token past the vocabulary"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t b[sizeof good];
        memcpy(b, good, sizeof b);
        b[bad[i].off] = bad[i].val;
        CHECK(sk_tokens_parse(b, sizeof b, "bad", &t) == bad[i].want, "broken %s", bad[i].what);
    }
    CHECK(sk_tokens_parse(good, 20, "short", &t) == SHRINK_ERR_FORMAT, "truncated header");
    unlink(path);
    rmdir(dir);
}

static void test_loader(void) {
    int32_t ids[100];
    for (int i = 0; i < 100; i++) ids[i] = i;
    sk_tokens t = {.n = 100, .vocab_size = 100, .ids = ids};
    sk_loader l;
    int32_t   w[3 * 11];
    CHECK(sk_loader_init(&l, &t, 10, true, 0, "t") == SHRINK_OK, "init");
    sk_loader_next(&l, 3, w);
    CHECK(w[0] == 0 && w[10] == 10 && w[11] == 10 && w[22] == 20 && w[32] == 30,
          "sequential windows overlap by one token");
    for (int k = 0; k < 6; k++) sk_loader_next(&l, 1, w);  /* starts 30..80 */
    sk_loader_next(&l, 1, w);
    CHECK(w[0] == 0, "sequential wraps when fewer than T + 1 tokens are left (start %d)", w[0]);
    sk_loader a, b;
    sk_loader_init(&a, &t, 10, false, 42, "t");
    sk_loader_init(&b, &t, 10, false, 42, "t");
    int32_t wa[8 * 11], wb[8 * 11];
    int ok = 1, inrange = 1;
    for (int k = 0; k < 50; k++) {
        sk_loader_next(&a, 8, wa);
        sk_loader_next(&b, 8, wb);
        ok &= !memcmp(wa, wb, sizeof wa);
        for (int j = 0; j < 8; j++) inrange &= wa[j * 11] <= 89 && wa[j * 11 + 10] == wa[j * 11] + 10;
    }
    CHECK(ok, "equal seeds give equal windows");
    CHECK(inrange, "random windows inside the data");
    CHECK(sk_loader_init(&l, &t, 100, false, 0, "t") == SHRINK_ERR_ARG, "too few tokens");
    CHECK(sk_valid_windows(&t, 10, 100) == 9 && sk_valid_windows(&t, 10, 4) == 4, "windows");
}

int main(void) {
    test_adamw_quadratic();
    test_sgd_momentum();
    test_masks();
    test_schedules();
    test_tokfile();
    test_loader();
    return test_summary("test_optim");
}
