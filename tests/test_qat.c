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
 *     bit for bit as the uninterrupted one (loss and model bytes), with recomputed and with
 *     learned scales; bad QAT options refused;
 *   - learned scales (qat_lsq.c): the QAT forward equals a plain model holding Ŵ; the weight
 *     gradient is dL/dŴ where v = x/d is inside the grid and 0 where clipped, the scale
 *     gradient equals a float64 evaluation of LSQ's formula from that dL/dŴ, and its
 *     codes-fixed part sum G L matches central finite differences of the loss in d (q4_0,
 *     q8_0, int4_g32, int4_g64, nf4); the GGUF written with the learned scales dequantizes to
 *     Ŵ exactly and gives the QAT forward's loss and logits (q4_0, q8_0, int4_g128, nf4);
 *   - llama.cpp mixes (q4_K_M tied and untied, q3_K_M, q2_K_M): every matrix
 *     is fake-quantized to the type `shrink quantize --scheme MIX` writes for it: the QAT GGUF
 *     written before any step has the same tensor types and the same bytes as shrink_quantize's
 *     file of the same weights, dequantizes to Ŵ and gives the QAT forward's loss.
 */
#include "formats/formats.h"
#include "formats/qmix.h"
#include "model/model.h"
#include "kernels/kernels.h"
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

static void check_resume(const char *dir, const char *scales) {
    char mp[4096], dp[4096];
    if (!test_need_model(mp, sizeof mp, "stories260K/stories260K.bin")) return;
    if (!test_need_shared(dp, sizeof dp, "data/corpus/train.txt")) return;
    char val[400], ck[2][400], cmd[9000], from[500], to[500], mo[2][500];
    const char *tag = scales ? scales : "";
    snprintf(cmd, sizeof cmd, "head -c 12000 '%s' > '%s/valid.txt'", dp, dir);
    CHECK(system(cmd) == 0, "setup");
    snprintf(val, sizeof val, "%s/valid.txt", dir);
    for (int k = 0; k < 2; k++) {
        snprintf(ck[k], sizeof ck[k], "%.300s/run%d%.20s", dir, k, tag);
        snprintf(mo[k], sizeof mo[k], "%.400s/model.gguf", ck[k]);
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
    tp.qat_scales = scales;
    if (scales) tp.qat_scale_lr = 5e-3;
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
    printf("  resume: q4_0 QAT (%s scales) on stories260K val %.4f -> %.4f, resumed run "
           "identical\n", scales ? scales : "recomputed", r[0].val_loss_start, r[0].val_loss);
    if (scales) {
        /* learned scales: the checkpoint holds them; a resume without them is refused; the
         * scales moved away from the quantizer's */
        tp.qat_scales = NULL;
        tp.qat_scale_lr = 0;
        CHECK(shrink_train(mp, &tp, &r[1]) != SHRINK_OK, "resume of learned scales with "
              "recomputed ones accepted");
        tp.qat_scales = "learned";
        tp.resume_dir = NULL;
        tp.qat = "q4_K";
        CHECK(shrink_train(mp, &tp, &r[1]) == SHRINK_ERR_ARG, "learned q4_K accepted");
        tp.qat = "q4_K_M";
        CHECK(shrink_train(mp, &tp, &r[1]) == SHRINK_ERR_ARG, "learned q4_K_M accepted");
        tp.qat = NULL;
        CHECK(shrink_train(mp, &tp, &r[1]) == SHRINK_ERR_ARG, "learned without qat accepted");
        tp.qat = "q4_0";
        tp.qat_scales = "sometimes";
        CHECK(shrink_train(mp, &tp, &r[1]) == SHRINK_ERR_ARG, "qat scales 'sometimes' accepted");
        return;
    }
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


/* ==== learned scales ======================================================================= */

/* The level and whether v = x / d is inside the grid, in float64 from the stored bytes' rule. */
static void lsq_ref(shrink_dtype dt, float x, float d, double *level, int *inside, double *v) {
    double lo, hi;
    switch (dt) {
    case SHRINK_DTYPE_Q4_0: lo = -8; hi = 7; break;
    case SHRINK_DTYPE_Q8_0: lo = -127; hi = 127; break;
    case SHRINK_DTYPE_NF4: lo = -1; hi = 1; break;
    default: lo = -7; hi = 7; break;
    }
    if (d == 0.0f) {
        *v = 0;
        *inside = 0;
        *level = x > 0 ? hi : x < 0 ? lo : 0;
        return;
    }
    float vf = x / d; /* the engine's v (float), compared in double */
    *v = vf;
    *inside = vf >= lo && vf <= hi;
    if (dt == SHRINK_DTYPE_NF4) {
        extern const float sk_nf4_values[16];
        int q = 0;
        for (int i = 0; i < 15; i++) q += vf > 0.5f * (sk_nf4_values[i] + sk_nf4_values[i + 1]);
        *level = sk_nf4_values[q];
    } else {
        double c = vf < lo ? lo : vf > hi ? hi : vf;
        *level = c >= 0 ? floor(c + 0.5) : -floor(-c + 0.5); /* half away from zero */
    }
}

static int lsq_block(shrink_dtype dt) { return (int)sk_dtype(dt)->block; }
static double lsq_qp(shrink_dtype dt) {
    return dt == SHRINK_DTYPE_Q8_0 ? 127 : dt == SHRINK_DTYPE_NF4 ? 1 : 7;
}

/* Scales moved off the quantizer's (x 0.55 .. 1.25) so that some values clip. */
static void jitter_scales(sk_train_model *tm) {
    for (int64_t i = 0; i < tm->n_params; i++) {
        const sk_train_param *p = &tm->params[i];
        if (!p->qat_sp) continue;
        sk_train_param *s = &tm->params[p->qat_sp - 1];
        for (int64_t j = 0; j < s->n; j++) s->w[j] *= 0.55f + 0.7f * (float)(rnd() % 1000) / 1000;
    }
}

static sk_train_model *lsq_model(shrink_dtype dt, int dim, int ffn, int V, sk_rope_layout lay,
                                 int tied, uint64_t seed) {
    sk_train_model *tm = random_model(dim, ffn, V, lay, tied, seed);
    if (!tm) return NULL;
    sk_qat_opts o = {.scheme = shrink_dtype_name(dt), .targets = SK_QAT_ALL, .learned = 1};
    CHECK(sk_qat_attach_opts(tm, &o) == SHRINK_OK, "attach %s learned: %s",
          shrink_dtype_name(dt), shrink_last_error());
    jitter_scales(tm);
    return tm;
}

static void check_lsq_grad(shrink_dtype dt, sk_rope_layout layout, int tied) {
    const int V = 37;
    sk_train_model *tq = lsq_model(dt, 64, 128, V, layout, tied, 13);
    sk_train_model *tp = random_model(64, 128, V, layout, tied, 13);
    if (!tq || !tp) goto out;
    int32_t tok[B * (T + 1)];
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)(rnd() % (uint32_t)V);
    float lq = NAN, lp = NAN;
    sk_train_zero_grad(tq);
    CHECK(sk_train_forward_backward(tq, tok, B, T, &lq) == SHRINK_OK, "lsq step: %s",
          shrink_last_error());
    for (int64_t i = 0; i < tp->n_params; i++)
        if (tq->params[i].wq)
            memcpy(tp->params[i].w, tq->params[i].wq, (size_t)tp->params[i].n * sizeof(float));
    sk_train_zero_grad(tp);
    CHECK(sk_train_forward_backward(tp, tok, B, T, &lp) == SHRINK_OK, "plain step");
    CHECK(lq == lp, "%s learned: QAT loss %.9g != the loss on Ŵ %.9g", shrink_dtype_name(dt),
          lq, lp);
    const int G = lsq_block(dt);
    const double gs = 1.0 / sqrt(G * lsq_qp(dt));
    int64_t n_q = 0, clipped = 0, bad_w = 0, blocks = 0;
    double worst_s = 0, worst_fd = 0;
    for (int64_t i = 0; i < tp->n_params; i++) {
        const sk_train_param *q = &tq->params[i], *pp = &tp->params[i];
        if (!q->wq) {
            bad_w += memcmp(q->g, pp->g, (size_t)q->n * sizeof(float)) != 0;
            continue;
        }
        n_q++;
        CHECK(q->qat_sp > 0, "%s: no scales", q->t.name);
        if (!q->qat_sp) continue;
        const sk_train_param *sp = &tq->params[q->qat_sp - 1];
        const int64_t nb = q->t.cols / G;
        CHECK(sp->n == q->t.rows * nb, "%s: %lld scales", q->t.name, (long long)sp->n);
        int64_t fd_b = -1;
        double fd_gl = 0, fd_got = 0, fd_gv = 0;
        for (int64_t b = 0; b < sp->n; b++) {
            const int64_t o = (b / nb) * q->t.cols + (b % nb) * G;
            const float d = sk_f16_to_f32(sk_f32_to_f16(sp->w[b]));
            double acc = 0, gl = 0, gv = 0;
            for (int j = 0; j < G; j++) {
                double level, v;
                int in;
                lsq_ref(dt, q->w[o + j], d, &level, &in, &v);
                const float Gj = pp->g[o + j];
                const float want = in ? Gj : 0.0f;
                bad_w += q->g[o + j] != want;
                clipped += !in;
                acc += in ? Gj * (level - v) : Gj * level;
                gl += Gj * level;
                gv += in ? Gj * v : 0;
                /* the forward's weight is d * level */
                bad_w += fabs(q->wq[o + j] - d * level) > 1e-6 * fabs(d * level) + 1e-30;
            }
            const double ref = gs * acc, got = sp->g[b];
            const double e = fabs(got - ref) / (fabs(ref) + 1e-7);
            if (e > worst_s) worst_s = e;
            blocks++;
            if (fabs(gl) > fabs(fd_gl)) {
                fd_b = b;
                fd_gl = gl;
                fd_got = got;
                fd_gv = gv;
            }
        }
        /* central finite differences of the loss in d with the codes held fixed (the block of
         * the tensor with the largest sum G L): that derivative is sum G L, which the engine's
         * scale gradient holds besides its straight-through part -sum G v */
        if (fd_b >= 0) {
            const int64_t o = (fd_b / nb) * q->t.cols + (fd_b % nb) * G;
            const float d = sk_f16_to_f32(sk_f32_to_f16(sp->w[fd_b]));
            sk_train_param *pw = &tp->params[i];
            float save[128];
            memcpy(save, pw->w + o, (size_t)G * sizeof(float));
            const double h = 2e-3 / lsq_qp(dt); /* every weight moves by <= 2e-3 */
            float la = 0, lb = 0;
            for (int sgn = 0; sgn < 2; sgn++) {
                const double dd = d + (sgn ? -h : h);
                for (int j = 0; j < G; j++) {
                    double level, v;
                    int in;
                    lsq_ref(dt, q->w[o + j], d, &level, &in, &v);
                    pw->w[o + j] = (float)(dd * level);
                }
                sk_train_loss(tp, tok, B, T, sgn ? &lb : &la);
            }
            memcpy(pw->w + o, save, (size_t)G * sizeof(float));
            const double fd = ((double)la - lb) / (2 * h);
            const double eng = fd_got / gs + fd_gv;
            const double efd = fabs(eng - fd) / (fabs(fd) + fabs(eng) + 1e-3);
            CHECK(efd < 2e-2, "%s '%s' block %lld: scale gradient's sum G L %.6g vs finite "
                  "difference %.6g", shrink_dtype_name(dt), q->t.name, (long long)fd_b, eng, fd);
            if (efd > worst_fd) worst_fd = efd;
        }
    }
    CHECK(bad_w == 0, "%s learned: %lld weight gradients / weights differ from the reference",
          shrink_dtype_name(dt), (long long)bad_w);
    CHECK(worst_s < 1e-5, "%s learned: scale gradient relative error %.3g vs float64 LSQ",
          shrink_dtype_name(dt), worst_s);
    CHECK(clipped > 0, "%s learned: no value clipped (the test would not see the mask)",
          shrink_dtype_name(dt));
    printf("  LSQ %-9s %s%s: %lld tensors, %lld blocks, %lld clipped, scale grad rel %.1e, fd "
           "worst %.1e\n", shrink_dtype_name(dt),
           layout == SK_ROPE_HALF ? "rotate-half" : "interleaved", tied ? " tied" : "",
           (long long)n_q, (long long)blocks, (long long)clipped, worst_s, worst_fd);
out:
    sk_train_free(tq);
    sk_train_free(tp);
}

/* Writes tm's QAT GGUF to path, loads it back: Ŵ bit for bit, the same loss and logits. */
static void check_file_is_qat(sk_train_model *tm, const char *path, const char *what,
                              const int32_t *tok) {
    float lq = NAN, le = NAN;
    CHECK(sk_train_loss(tm, tok, B, T, &lq) == SHRINK_OK, "loss: %s", shrink_last_error());
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
        for (int64_t i = 0; i < te->n_params; i++) {
            const sk_train_param *p = &tm->params[i], *q = &te->params[i];
            typed += p->wq != NULL;
            bad += memcmp(p->wq ? p->wq : p->w, q->w, (size_t)p->n * sizeof(float)) != 0;
        }
        CHECK(bad == 0, "%s: %lld tensors of the file differ from the fake-quantized weights",
              what, (long long)bad);
        CHECK(sk_train_loss(te, tok, B, T, &le) == SHRINK_OK, "loss");
        CHECK(le == lq, "%s: the file's loss %.9g != the QAT forward's %.9g", what, le, lq);
        /* logits: the file run by inference (weights widened to f32 while loading) against an
         * f32 file of the weights the QAT forward used (te's, = Ŵ): equal to f32 rounding */
        char pp[512];
        snprintf(pp, sizeof pp, "%s.plain.gguf", path);
        sk_source s2;
        sk_train_source(te, &s2);
        sk_write_opts w2 = sk_write_opts_default();
        w2.dtype = SHRINK_DTYPE_F32;
        CHECK(sk_write(&s2, pp, SK_FORMAT_GGUF, &w2) == SHRINK_OK, "write %s: %s", pp,
              shrink_last_error());
        shrink_model *mw = NULL, *mp = NULL;
        shrink_load_params l2 = shrink_load_params_default();
        l2.no_tokenizer = true;
        CHECK(shrink_model_load(&mp, pp, &l2) == SHRINK_OK, "load %s", pp);
        l2.widen_f32 = true;
        CHECK(shrink_model_load(&mw, path, &l2) == SHRINK_OK, "load %s widened", path);
        shrink_context *cx = NULL, *cp = NULL;
        const int V = te->cfg.vocab_size;
        float *za = sk_malloc((size_t)T * V * sizeof(float));
        float *zb = sk_malloc((size_t)T * V * sizeof(float));
        if (mw && mp && za && zb && shrink_context_create(&cx, mw, T, 0) == SHRINK_OK &&
            shrink_context_create(&cp, mp, T, 0) == SHRINK_OK) {
            CHECK(shrink_context_eval(cx, tok, T, 0, za, T) == SHRINK_OK &&
                  shrink_context_eval(cp, tok, T, 0, zb, T) == SHRINK_OK, "eval: %s",
                  shrink_last_error());
            double worst = 0;
            for (int64_t k = 0; k < (int64_t)T * V; k++) {
                double e = fabs((double)za[k] - zb[k]) / (fabs((double)zb[k]) + 1.0);
                if (e > worst) worst = e;
            }
            CHECK(worst < 1e-5, "%s: logits of the file vs f32 Ŵ differ by %.3g", what, worst);
            printf("  %-28s: file = Ŵ, loss %.7f = %.7f, logits vs f32 Ŵ %.1e\n", what, le, lq,
                   worst);
        } else {
            CHECK(0, "%s: contexts: %s", what, shrink_last_error());
        }
        sk_free(za);
        sk_free(zb);
        shrink_context_free(cx);
        shrink_context_free(cp);
        shrink_model_free(mw);
        shrink_model_free(mp);
        unlink(pp);
    }
    sk_train_free(te);
    shrink_model_free(m);
}

static void check_lsq_export(shrink_dtype dt, const char *dir) {
    const int V = 64;
    sk_train_model *tm = lsq_model(dt, 256, 512, V, SK_ROPE_INTERLEAVED, 0, 23);
    if (!tm) return;
    int32_t tok[B * (T + 1)];
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)(rnd() % (uint32_t)V);
    char path[400], what[64];
    snprintf(path, sizeof path, "%s/lsq-%s.gguf", dir, shrink_dtype_name(dt));
    snprintf(what, sizeof what, "export learned %s", shrink_dtype_name(dt));
    check_file_is_qat(tm, path, what, tok);
    sk_train_free(tm);
    unlink(path);
}

/* ==== llama.cpp mixes ====================================================================== */

static void check_mix(const char *mix, int tied, const char *dir) {
    const int V = 64;
    sk_train_model *tm = random_model(256, 512, V, SK_ROPE_INTERLEAVED, tied, 31);
    if (!tm) return;
    char orig[400], ref[400], path[400], what[64];
    snprintf(orig, sizeof orig, "%s/mix-orig-%d.gguf", dir, tied);
    snprintf(ref, sizeof ref, "%s/mix-ref-%s-%d.gguf", dir, mix, tied);
    snprintf(path, sizeof path, "%s/mix-qat-%s-%d.gguf", dir, mix, tied);
    snprintf(what, sizeof what, "mix %s%s", mix, tied ? " tied" : "");
    /* the original weights as f32, quantized by shrink_quantize */
    sk_source src;
    sk_train_source(tm, &src);
    sk_write_opts wo = sk_write_opts_default();
    CHECK(sk_write(&src, orig, SK_FORMAT_GGUF, &wo) == SHRINK_OK, "write %s: %s", orig,
          shrink_last_error());
    shrink_quantize_params qp = shrink_quantize_params_default();
    qp.scheme = mix;
    shrink_quantize_result qr;
    memset(&qr, 0, sizeof qr);
    CHECK(shrink_quantize(orig, ref, &qp, &qr) == SHRINK_OK, "quantize %s: %s", mix,
          shrink_last_error());
    shrink_quantize_result_free(&qr);
    sk_qat_opts o = {.scheme = mix, .targets = SK_QAT_ALL};
    CHECK(sk_qat_attach_opts(tm, &o) == SHRINK_OK, "attach %s: %s", mix, shrink_last_error());
    int32_t tok[B * (T + 1)];
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)(rnd() % (uint32_t)V);
    check_file_is_qat(tm, path, what, tok);
    /* the QAT file's tensors: the same types and bytes as shrink quantize's */
    shrink_load_params lp = shrink_load_params_default();
    lp.no_tokenizer = true;
    struct shrink_model *a = NULL, *b = NULL;
    CHECK(sk_model_open(&a, path, &lp) == SHRINK_OK && sk_model_open(&b, ref, &lp) == SHRINK_OK,
          "open: %s", shrink_last_error());
    if (a && b) {
        CHECK(a->n_tensors == b->n_tensors, "%s: %lld vs %lld tensors", what,
              (long long)a->n_tensors, (long long)b->n_tensors);
        int64_t same_t = 0, same_b = 0, kinds = 0;
        uint32_t seen = 0;
        for (int64_t i = 0; i < a->n_tensors && i < b->n_tensors; i++) {
            const sk_tensor *x = &a->tensors[i];
            const sk_tensor *y = NULL;
            for (int64_t k = 0; k < b->n_tensors && !y; k++)
                if (!strcmp(b->tensors[k].name, x->name)) y = &b->tensors[k];
            CHECK(y != NULL, "%s: %s missing in quantize's file", what, x->name);
            if (!y) continue;
            CHECK(x->dtype == y->dtype, "%s: %s is %s, shrink quantize wrote %s", what, x->name,
                  shrink_dtype_name(x->dtype), shrink_dtype_name(y->dtype));
            same_t += x->dtype == y->dtype;
            if (x->dtype == y->dtype && x->bytes == y->bytes &&
                !memcmp(x->data, y->data, (size_t)x->bytes))
                same_b++;
            else CHECK(0, "%s: %s's bytes differ from shrink quantize's", what, x->name);
            if (x->n_dims == 2 && !(seen >> (x->dtype & 31) & 1)) {
                seen |= 1u << (x->dtype & 31);
                kinds++;
            }
        }
        CHECK(kinds >= 2, "%s: only %lld matrix types: not a mix", what, (long long)kinds);
        printf("  %-28s: %lld tensors, types and bytes = shrink quantize's (%lld matrix types)\n",
               what, (long long)same_b, (long long)kinds);
        (void)same_t;
    }
    shrink_model_free(a);
    shrink_model_free(b);
    sk_train_free(tm);
    unlink(orig);
    unlink(ref);
    unlink(path);
}

/* The mixes QAT knows are those of shrink quantize, with the same base type and file type. */
static void check_mix_names(void) {
    int n = 0;
    for (int32_t i = 0; i < shrink_quantize_scheme_count(); i++) {
        shrink_quantize_scheme_info in;
        if (shrink_quantize_scheme_get(i, &in) != SHRINK_OK || !in.mix) continue;
        sk_mix m = sk_mix_find(in.name);
        CHECK(m != SK_MIX_NONE, "mix %s unknown to QAT", in.name);
        CHECK(sk_mix_base(m) == in.dtype, "mix %s: base %s vs %s", in.name,
              shrink_dtype_name(sk_mix_base(m)), shrink_dtype_name(in.dtype));
        CHECK(!strcmp(sk_mix_name(m), in.name), "mix %s named %s", in.name, sk_mix_name(m));
        n++;
    }
    CHECK(n == SK_MIX_COUNT - 1, "%d mix schemes, %d mixes", n, SK_MIX_COUNT - 1);
    CHECK(sk_mix_find("q4_0") == SK_MIX_NONE && sk_mix_find("Q4-K-M") == SK_MIX_Q4_K_M,
          "mix names");
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
    const shrink_dtype lg[] = {SHRINK_DTYPE_Q4_0, SHRINK_DTYPE_Q8_0, SHRINK_DTYPE_INT4_G32,
                               SHRINK_DTYPE_INT4_G64, SHRINK_DTYPE_NF4};
    for (size_t i = 0; i < sizeof lg / sizeof lg[0]; i++)
        check_lsq_grad(lg[i], i % 2 ? SK_ROPE_INTERLEAVED : SK_ROPE_HALF, (int)(i % 2));
    const shrink_dtype le[] = {SHRINK_DTYPE_Q4_0, SHRINK_DTYPE_Q8_0, SHRINK_DTYPE_INT4_G128,
                               SHRINK_DTYPE_NF4};
    for (size_t i = 0; i < sizeof le / sizeof le[0]; i++) check_lsq_export(le[i], dir);
    check_mix_names();
    const char *mixes[] = {"q4_K_M", "q3_K_M", "q2_K_M"};
    for (size_t i = 0; i < sizeof mixes / sizeof mixes[0]; i++) check_mix(mixes[i], i == 0, dir);
    check_mix("q4_K_M", 0, dir);
    check_resume(dir, NULL);
    check_resume(dir, "learned");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return test_summary("test_qat");
}
