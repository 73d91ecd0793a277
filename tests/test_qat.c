/*
 * test_qat.c - quantization-aware training (src/train/qat.c) against independent references:
 *   - straight-through gradient: with QAT the gradient of the latent weights W equals, bit for
 *     bit, the gradient of a plain model whose weights are the fake-quantized Ŵ, and that
 *     gradient agrees with central finite differences of the plain model's loss (the
 *     fake-quantized forward with the quantization held fixed), for q4_0, nf4, int4_g32, q4_K
 *     on tiny random Llamas (rotate-half untied, interleaved tied);
 *   - export: the real quantized GGUF written from the latent weights (sk_qat_write_opts),
 *     loaded back and dequantized, holds exactly Ŵ, and its training forward gives the QAT
 *     forward's loss exactly (logits equal to f32 rounding: the same f32 forward on the same
 *     weights), for q4_0, q8_0, int4_g32, int4_g128, nf4, q4_K, q6_K and int8_t;
 *   - `shrink_train` with qat on stories260K: a run stopped at a checkpoint and resumed ends
 *     bit for bit as the uninterrupted one (loss and model bytes); bad QAT options refused.
 */
#include "formats/formats.h"
#include "convert/init.h"
#include "train/train.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

static sk_train_model *random_model(int dim, int ffn, int vocab, sk_rope_layout layout,
                                    int tied, uint64_t seed) {
    sk_init_params ip = {.seed = seed, .init_range = 0.3f, .dtype = SHRINK_DTYPE_F32};
    sk_config *c = &ip.cfg;
    c->arch = sk_arch_find("llama");
    c->dim = dim;
    c->n_layers = 2;
    c->n_heads = 4;
    c->n_kv_heads = 2;
    c->head_dim = dim / 4;
    c->ffn_dim = ffn;
    c->vocab_size = vocab;
    c->max_seq_len = 16;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->rope_layout = layout;
    c->tied = tied;
    c->bos_id = 1;
    c->eos_id = 2;
    sk_source src;
    sk_init_source(&ip, &src);
    sk_train_model *tm = NULL;
    CHECK(sk_train_create(&tm, &src) == SHRINK_OK, "create: %s", shrink_last_error());
    return tm;
}

enum { B = 2, T = 7 };

static void check_ste(shrink_dtype dt, sk_rope_layout layout, int tied) {
    const int V = 37;
    sk_train_model *tq = random_model(64, 128, V, layout, tied, 11);
    sk_train_model *tp = random_model(64, 128, V, layout, tied, 11);
    if (!tq || !tp) goto out;
    CHECK(sk_qat_attach(tq, dt, SK_QAT_ALL) == SHRINK_OK, "attach: %s", shrink_last_error());
    int32_t tok[B * (T + 1)];
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)(rnd() % (uint32_t)V);
    float lq = NAN, lp = NAN, l_plain = NAN;
    CHECK(sk_train_loss(tp, tok, B, T, &l_plain) == SHRINK_OK, "loss");
    sk_train_zero_grad(tq);
    CHECK(sk_train_forward_backward(tq, tok, B, T, &lq) == SHRINK_OK, "qat step: %s",
          shrink_last_error());
    /* the plain model gets the fake-quantized weights */
    int64_t n_q = 0, changed = 0;
    for (int64_t i = 0; i < tq->n_params; i++) {
        const sk_train_param *p = &tq->params[i];
        if (!p->wq) continue;
        n_q++;
        for (int64_t j = 0; j < p->n; j++) changed += p->wq[j] != p->w[j];
        memcpy(tp->params[i].w, p->wq, (size_t)p->n * sizeof(float));
    }
    CHECK(n_q == 2 * 7 + 1 + !tied, "%s: %lld QAT tensors", shrink_dtype_name(dt),
          (long long)n_q);
    CHECK(changed > 0, "%s: fake quantization changed nothing", shrink_dtype_name(dt));
    sk_train_zero_grad(tp);
    CHECK(sk_train_forward_backward(tp, tok, B, T, &lp) == SHRINK_OK, "plain step");
    CHECK(lq == lp, "%s: QAT loss %.9g != the loss on the fake-quantized weights %.9g",
          shrink_dtype_name(dt), lq, lp);
    CHECK(lq != l_plain, "%s: the QAT loss equals the unquantized one", shrink_dtype_name(dt));
    CHECK(!memcmp(tq->g_all, tp->g_all, (size_t)tq->n_elems * sizeof(float)),
          "%s: dL/dW (QAT) differs from dL/dŴ", shrink_dtype_name(dt));
    /* central finite differences of the fake-quantized forward, quantization held fixed */
    double worst = 0;
    const float eps = 2e-3f;
    for (int64_t i = 0; i < tp->n_params; i++) {
        sk_train_param *p = &tp->params[i];
        if (!tq->params[i].wq) continue;
        double num = 0, den = 0;
        for (int s = 0; s < 5; s++) {
            int64_t j = (int64_t)(rnd() % (uint32_t)p->n);
            if (s == 0) /* and the largest gradient */
                for (int64_t k = 0; k < p->n; k++)
                    if (fabsf(p->g[k]) > fabsf(p->g[j])) j = k;
            const float w0 = p->w[j];
            float a = 0, b = 0;
            p->w[j] = w0 + eps;
            sk_train_loss(tp, tok, B, T, &a);
            p->w[j] = w0 - eps;
            sk_train_loss(tp, tok, B, T, &b);
            p->w[j] = w0;
            double fd = ((double)a - b) / (2.0 * eps), an = tq->params[i].g[j];
            num += (fd - an) * (fd - an);
            den += fd * fd + an * an;
        }
        double rel = sqrt(num) / (sqrt(den / 2) + 1e-4);
        CHECK(rel < 2e-2, "%s '%s': finite-difference relative error %.3g",
              shrink_dtype_name(dt), p->t.name, rel);
        if (rel > worst) worst = rel;
    }
    printf("  STE %-8s %s%s: loss %.4f (unquantized %.4f), %lld tensors, fd worst rel %.2e\n",
           shrink_dtype_name(dt), layout == SK_ROPE_HALF ? "rotate-half" : "interleaved",
           tied ? " tied" : "", lq, l_plain, (long long)n_q, worst);
out:
    sk_train_free(tq);
    sk_train_free(tp);
}

/* The real quantized GGUF of a QAT model dequantizes to Ŵ and runs to the same loss. */
static void check_export(shrink_dtype dt, const char *dir) {
    const int V = 64;
    /* interleaved q/k rows: GGUF's order, so the file's rows are the model's (a rotate-half
     * model's q/k rows would be permuted, its forward rounding differently) */
    sk_train_model *tm = random_model(256, 512, V, SK_ROPE_INTERLEAVED, 0, 21);
    if (!tm) return;
    CHECK(sk_qat_attach(tm, dt, SK_QAT_ALL) == SHRINK_OK, "attach: %s", shrink_last_error());
    int32_t tok[B * (T + 1)];
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)(rnd() % (uint32_t)V);
    float lq = NAN, le = NAN;
    CHECK(sk_train_loss(tm, tok, B, T, &lq) == SHRINK_OK, "loss: %s", shrink_last_error());
    char path[400];
    snprintf(path, sizeof path, "%s/qat-%s.gguf", dir, shrink_dtype_name(dt));
    sk_source src;
    sk_train_source(tm, &src);
    sk_write_opts wo = sk_write_opts_default();
    sk_qat_write_opts(tm, &wo);
    CHECK(sk_write(&src, path, SK_FORMAT_GGUF, &wo) == SHRINK_OK, "write %s: %s", path,
          shrink_last_error());
    shrink_model *m = NULL;
    shrink_load_params lp = shrink_load_params_default();
    lp.no_tokenizer = true;
    CHECK(shrink_model_load(&m, path, &lp) == SHRINK_OK, "load %s: %s", path,
          shrink_last_error());
    sk_train_model *te = NULL;
    if (m) CHECK(sk_train_create_from_model(&te, m) == SHRINK_OK, "create: %s",
                 shrink_last_error());
    if (te) {
        int64_t bad = 0, typed = 0;
        uint64_t want_bytes = 0;
        for (int64_t i = 0; i < tm->n_params; i++) {
            const sk_train_param *p = &tm->params[i], *q = &te->params[i];
            const float *want = p->wq ? p->wq : p->w;
            typed += p->wq != NULL;
            want_bytes += p->wq ? sk_dtype_tensor_bytes((shrink_dtype)p->qat_dtype, p->t.rows,
                                                        p->t.cols)
                                : (uint64_t)p->n * 4;
            bad += memcmp(want, q->w, (size_t)p->n * sizeof(float)) != 0;
        }
        CHECK(bad == 0, "%s: %lld tensors of the file differ from the fake-quantized weights",
              shrink_dtype_name(dt), (long long)bad);
        CHECK(typed == 2 * 7 + 2, "%s: %lld QAT tensors", shrink_dtype_name(dt), (long long)typed);
        /* the file holds the quantized types: its size is their bytes (+ header, alignment) */
        FILE *f = fopen(path, "rb");
        long size = -1;
        if (f && fseek(f, 0, SEEK_END) == 0) size = ftell(f);
        if (f) fclose(f);
        CHECK(size >= (long)want_bytes && size < (long)want_bytes + 65536, "%s: file of %ld "
              "bytes, the quantized tensors take %llu", shrink_dtype_name(dt), size,
              (unsigned long long)want_bytes);
        CHECK(sk_train_loss(te, tok, B, T, &le) == SHRINK_OK, "loss");
        CHECK(le == lq, "%s: the file's loss %.9g != the QAT forward's %.9g",
              shrink_dtype_name(dt), le, lq);
        printf("  export %-9s: %lld tensors typed, loss %.7f = %.7f\n", shrink_dtype_name(dt),
               (long long)typed, le, lq);
    }
    sk_train_free(te);
    shrink_model_free(m);
    sk_train_free(tm);
    unlink(path);
}

static void check_resume(const char *dir) {
    char mp[4096], dp[4096];
    if (!test_need_model(mp, sizeof mp, "stories260K/stories260K.bin")) return;
    if (!test_need_shared(dp, sizeof dp, "data/corpus/train.txt")) return;
    char val[400], ck[2][400], cmd[9000], from[500], to[500], mo[2][500];
    snprintf(cmd, sizeof cmd, "head -c 12000 '%s' > '%s/valid.txt'", dp, dir);
    CHECK(system(cmd) == 0, "setup");
    snprintf(val, sizeof val, "%s/valid.txt", dir);
    for (int k = 0; k < 2; k++) {
        snprintf(ck[k], sizeof ck[k], "%s/run%d", dir, k);
        snprintf(mo[k], sizeof mo[k], "%s/model.gguf", ck[k]);
    }
    shrink_train_params tp = shrink_train_params_default();
    tp.data = dp;
    tp.valid = val;
    tp.steps = 6;
    tp.batch = 4;
    tp.ctx = 32;
    tp.lr = 2e-3;
    tp.seed = 3;
    tp.save_every = 3;
    tp.eval_windows = 4;
    tp.qat = "q4_0";
    tp.qat_targets = "q,k,v,o,gate,up,down,embed";
    snprintf(from, sizeof from, "%s/checkpoint.bin", ck[0]);
    snprintf(to, sizeof to, "%s/checkpoint.bin", ck[1]);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", ck[1]);
    CHECK(system(cmd) == 0, "mkdir");
    test_copy_at c = {from, to, 3, 0};
    tp.out_dir = ck[0];
    tp.log = test_copy_ckpt;
    tp.user = &c;
    shrink_train_result r[2];
    CHECK(shrink_train(mp, &tp, &r[0]) == SHRINK_OK, "qat train: %s", shrink_last_error());
    CHECK(c.copied, "no checkpoint at step 3");
    tp.log = NULL;
    tp.out_dir = ck[1];
    tp.resume_dir = ck[1];
    CHECK(shrink_train(mp, &tp, &r[1]) == SHRINK_OK, "resume: %s", shrink_last_error());
    CHECK(r[1].resumed_from == 3, "resumed from %lld", (long long)r[1].resumed_from);
    CHECK(r[1].loss == r[0].loss && r[1].val_loss == r[0].val_loss,
          "resumed loss %.9g/%.9g vs %.9g/%.9g", r[1].loss, r[1].val_loss, r[0].loss,
          r[0].val_loss);
    CHECK(test_same_file(mo[0], mo[1]), "resumed QAT model differs");
    printf("  resume: q4_0 QAT on stories260K val %.4f -> %.4f, resumed run identical\n",
           r[0].val_loss_start, r[0].val_loss);
    /* a resume with another QAT type is refused */
    tp.qat = "q8_0";
    CHECK(shrink_train(mp, &tp, &r[1]) != SHRINK_OK, "resume with another --qat accepted");
    /* bad options */
    tp.resume_dir = NULL;
    tp.qat = "f16";
    CHECK(shrink_train(mp, &tp, &r[1]) == SHRINK_ERR_ARG, "qat f16 accepted");
    tp.qat = "q4_0";
    tp.qat_targets = "q,zz";
    CHECK(shrink_train(mp, &tp, &r[1]) == SHRINK_ERR_ARG, "qat target zz accepted");
    tp.qat_targets = NULL;
    tp.to = "hf";
    CHECK(shrink_train(mp, &tp, &r[1]) == SHRINK_ERR_ARG, "qat to hf accepted");
}

int main(void) {
    const shrink_dtype ste[] = {SHRINK_DTYPE_Q4_0, SHRINK_DTYPE_NF4, SHRINK_DTYPE_INT4_G32,
                                SHRINK_DTYPE_Q4_K};
    for (size_t i = 0; i < sizeof ste / sizeof ste[0]; i++)
        check_ste(ste[i], i % 2 ? SK_ROPE_INTERLEAVED : SK_ROPE_HALF, (int)(i % 2));
    char dir[256], cmd[400];
    snprintf(dir, sizeof dir, "/tmp/test_qat_%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    CHECK(system(cmd) == 0, "mkdir");
    const shrink_dtype ex[] = {SHRINK_DTYPE_Q4_0, SHRINK_DTYPE_Q8_0, SHRINK_DTYPE_INT4_G32,
                               SHRINK_DTYPE_INT4_G128, SHRINK_DTYPE_NF4, SHRINK_DTYPE_Q4_K,
                               SHRINK_DTYPE_Q6_K, SHRINK_DTYPE_INT8_T};
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) check_export(ex[i], dir);
    check_resume(dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return test_summary("test_qat");
}
