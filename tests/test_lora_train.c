/*
 * test_lora_train.c - LoRA training (src/train/lora.c) against independent references:
 *   - central finite differences of the loss for every A and B of tiny random Llama models
 *     (both RoPE layouts, GQA), with B made nonzero so A gets a gradient; the frozen base's
 *     gradients stay exactly zero;
 *   - the same with dropout, the mask pinned by the pass counter (training passes);
 *   - the LoRA forward equals the loss of the base with W + s B A merged by hand (s = alpha/r,
 *     and alpha/sqrt(r) with rsLoRA);
 *   - bad options (rank 0, rank above a projection's side, unknown target) refused;
 *   - QLoRA: shrink_lora_train on NF4 and Q4_K GGUF bases of stories260K runs and lowers the
 *     validation loss; a run stopped at a checkpoint and resumed ends bit for bit as the
 *     uninterrupted run (loss and adapter bytes); the checkpoint holds the adapter's tensors
 *     and their AdamW moments only (no frozen base); the adapter loads with --lora.
 */
#include "formats/formats.h"
#include "convert/init.h"
#include "train/train.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static uint64_t rng_state = 0x1234567887654321ull;
static uint32_t rnd(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}
static float rnd_unit(void) { return (float)rnd() / 2147483648.0f - 1.0f; }

static void tiny(sk_config *c, sk_rope_layout layout, int tied) {
    memset(c, 0, sizeof *c);
    c->arch = sk_arch_find("llama");
    c->dim = 16;
    c->n_layers = 2;
    c->n_heads = 4;
    c->n_kv_heads = 2;
    c->head_dim = 4;
    c->ffn_dim = 24;
    c->vocab_size = 37;
    c->max_seq_len = 16;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->rope_layout = layout;
    c->tied = tied;
    c->bos_id = 1;
    c->eos_id = 2;
}

static sk_train_model *tiny_model(sk_rope_layout layout, int tied) {
    sk_init_params ip = {.seed = 5, .init_range = 0.3f, .dtype = SHRINK_DTYPE_F32};
    tiny(&ip.cfg, layout, tied);
    sk_source src;
    sk_init_source(&ip, &src);
    sk_train_model *tm = NULL;
    CHECK(sk_train_create(&tm, &src) == SHRINK_OK, "create: %s", shrink_last_error());
    return tm;
}

enum { B = 2, T = 7 };

/* loss of a training pass with the dropout stream at `calls` (gradients into g, discarded) */
static float train_loss(sk_train_model *tm, struct sk_lora_train *lt, const int32_t *tok,
                        int64_t calls) {
    float l = NAN;
    sk_lora_train_set_calls(lt, calls);
    sk_train_forward_backward(tm, tok, B, T, &l);
    return l;
}

static void check_fd(sk_rope_layout layout, int tied, double dropout, bool rslora) {
    sk_train_model *tm = tiny_model(layout, tied);
    if (!tm) return;
    const int64_t n_base = tm->n_params;
    sk_lora_opts o = {.rank = 3, .alpha = 6, .targets = 0x7f, .dropout = dropout, .seed = 9,
                      .rslora = rslora};
    struct sk_lora_train *lt = NULL;
    CHECK(sk_lora_attach(tm, &o, &lt) == SHRINK_OK, "attach: %s", shrink_last_error());
    if (!lt) {
        sk_train_free(tm);
        return;
    }
    CHECK(tm->n_params == n_base + 2 * 7 * 2, "params %lld", (long long)tm->n_params);
    /* PEFT's init: B zero, A within 1/sqrt(in) */
    int init_ok = 1;
    for (int64_t i = n_base; i < tm->n_params; i += 2) {
        for (int64_t j = 0; j < tm->params[i + 1].n; j++) init_ok &= tm->params[i + 1].w[j] == 0;
        for (int64_t j = 0; j < tm->params[i].n; j++)
            init_ok &= fabsf(tm->params[i].w[j]) <= 1.0f / sqrtf((float)tm->params[i].t.cols);
    }
    CHECK(init_ok, "LoRA init is not PEFT's (B = 0, |A| <= 1/sqrt(in))");
    for (int64_t i = n_base + 1; i < tm->n_params; i += 2)
        for (int64_t j = 0; j < tm->params[i].n; j++) tm->params[i].w[j] = 0.3f * rnd_unit();
    int32_t tok[B * (T + 1)];
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)(rnd() % 37);

    sk_train_zero_grad(tm);
    const float l0 = train_loss(tm, lt, tok, 0);
    float *g = malloc(sizeof(float) * (size_t)tm->n_elems);
    memcpy(g, tm->g_all, sizeof(float) * (size_t)tm->n_elems);
    int base_zero = 1;
    for (int64_t i = 0; i < n_base; i++)
        for (int64_t j = 0; j < tm->params[i].n; j++)
            base_zero &= g[tm->params[i].offset + j] == 0.f;
    CHECK(base_zero, "a frozen base parameter got a gradient");
    double worst = 0;
    const float eps = 2e-3f;
    for (int64_t i = n_base; i < tm->n_params; i++) {
        sk_train_param *p = &tm->params[i];
        double num = 0, den = 0;
        for (int s = 0; s < 6; s++) {
            int64_t j = (int64_t)(rnd() % (uint32_t)p->n);
            const float w0 = p->w[j];
            p->w[j] = w0 + eps;
            double lp = train_loss(tm, lt, tok, 0);
            p->w[j] = w0 - eps;
            double lm = train_loss(tm, lt, tok, 0);
            p->w[j] = w0;
            double fd = (lp - lm) / (2.0 * eps), an = g[p->offset + j];
            num += (fd - an) * (fd - an);
            den += fd * fd + an * an;
        }
        double rel = sqrt(num) / (sqrt(den / 2) + 1e-4);
        CHECK(rel < 2e-2, "'%s' (dropout %g) finite-difference relative error %.3g", p->t.name,
              dropout, rel);
        if (rel > worst) worst = rel;
    }
    printf("  fd %s%s%s dropout %.2f: loss %.4f, %lld LoRA tensors, worst rel err %.2e\n",
           layout == SK_ROPE_HALF ? "rotate-half" : "interleaved", tied ? " tied" : "",
           rslora ? " rsLoRA" : "", dropout,
           l0, (long long)(tm->n_params - n_base), worst);

    if (dropout == 0) {
        /* the forward with the adapter = the base with W + s B A merged, no adapter */
        float la = 0;
        CHECK(sk_train_loss(tm, tok, B, T, &la) == SHRINK_OK, "loss");
        sk_train_model *tb = tiny_model(layout, tied);
        if (tb) {
            const float s = (float)(o.alpha / (rslora ? sqrt((double)o.rank) : (double)o.rank));
            for (int64_t i = n_base; i < tm->n_params; i += 2) {
                const sk_train_param *A = &tm->params[i], *Bm = &tm->params[i + 1];
                static const int roles[7] = {SK_ROLE_WQ, SK_ROLE_WK, SK_ROLE_WV, SK_ROLE_WO,
                                             SK_ROLE_W_GATE, SK_ROLE_W_UP, SK_ROLE_W_DOWN};
                int w = (int)((i - n_base) / 2) % 7;
                sk_train_param *W = NULL;
                for (int64_t k = 0; k < tb->n_params; k++)
                    if ((int)tb->params[k].t.role == roles[w] && tb->params[k].t.layer == A->t.layer)
                        W = &tb->params[k];
                for (int64_t r = 0; W && r < W->t.rows; r++)
                    for (int64_t c = 0; c < W->t.cols; c++) {
                        double acc = 0;
                        for (int64_t k = 0; k < A->t.rows; k++)
                            acc += (double)Bm->w[r * A->t.rows + k] * A->w[k * A->t.cols + c];
                        W->w[r * W->t.cols + c] += (float)(s * acc);
                    }
            }
            float lm = 0;
            CHECK(sk_train_loss(tb, tok, B, T, &lm) == SHRINK_OK, "loss");
            CHECK(fabsf(lm - la) < 1e-5f * fabsf(lm), "adapter loss %.7f vs merged %.7f", la, lm);
            sk_train_free(tb);
        }
    }
    free(g);
    sk_lora_train_free(lt);
    sk_train_free(tm);
}

static void check_bad_options(void) {
    sk_train_model *tm = tiny_model(SK_ROPE_HALF, 0);
    if (!tm) return;
    struct sk_lora_train *lt = NULL;
    sk_lora_opts o = {.rank = 0, .alpha = 1, .targets = 1};
    CHECK(sk_lora_attach(tm, &o, &lt) == SHRINK_ERR_ARG && strstr(shrink_last_error(), "rank"),
          "rank 0: %s", shrink_last_error());
    o.rank = 9; /* k is (8, 16) */
    o.targets = 1 << SK_LIN_K;
    CHECK(sk_lora_attach(tm, &o, &lt) == SHRINK_ERR_ARG && strstr(shrink_last_error(), "attn_k"),
          "rank 9 > 8: %s", shrink_last_error());
    o.rank = 2;
    o.dropout = 1;
    CHECK(sk_lora_attach(tm, &o, &lt) == SHRINK_ERR_ARG, "dropout 1");
    CHECK(tm->hook == NULL && lt == NULL, "a refused attach changed the model");
    sk_train_free(tm);
    shrink_train_params tp = shrink_train_params_default();
    shrink_lora_params lp = shrink_lora_params_default();
    tp.data = "/nonexistent";
    tp.out_dir = "/tmp";
    lp.out = "/tmp/x.gguf";
    lp.targets = "q,kk";
    CHECK(shrink_lora_train("/nonexistent", &tp, &lp, NULL) == SHRINK_ERR_ARG &&
          strstr(shrink_last_error(), "'kk'"), "unknown target: %s", shrink_last_error());
}

/* ---- QLoRA on stories260K ----------------------------------------------------------------- */

/* A LoRA checkpoint holds the adapter only: every stored tensor is a lora_a / lora_b with its
 * two AdamW moments, nothing of the frozen base (docs/training.md's layout, parsed here). */
static void check_ckpt_adapter_only(const char *path, int64_t n_trainable) {
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL, "%s: cannot open", path);
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc((size_t)size);
    size_t got = d ? fread(d, 1, (size_t)size, f) : 0;
    fclose(f);
    CHECK(d && got == (size_t)size && size > 84, "%s: read", path);
    if (!d || got != (size_t)size || size <= 84) {
        free(d);
        return;
    }
    uint32_t n = sk_rd_u32(d + 12), arrays = sk_rd_u32(d + 36), clen = sk_rd_u32(d + 72);
    size_t at = 76 + clen;
    int64_t elems = 0, non_lora = 0;
    for (uint32_t i = 0; i < n && at + 12 <= (size_t)size; i++) {
        uint32_t len = sk_rd_u32(d + at);
        char name[128] = "";
        memcpy(name, d + at + 4, len < 127 ? len : 127);
        uint64_t cnt = sk_rd_u64(d + at + 4 + len);
        non_lora += !strstr(name, ".lora_a") && !strstr(name, ".lora_b");
        elems += (int64_t)cnt;
        at += 4 + len + 8 + (size_t)cnt * 4 * (1 + arrays);
    }
    CHECK(arrays == 2, "%s: %u state arrays (AdamW: m and v)", path, arrays);
    CHECK(non_lora == 0, "%s: %lld tensors of the frozen base stored", path, (long long)non_lora);
    CHECK(elems == n_trainable, "%s: %lld elements stored, the adapter has %lld", path,
          (long long)elems, (long long)n_trainable);
    CHECK(at + 8 == (size_t)size, "%s: %zu bytes parsed of %ld", path, at + 8, size);
    printf("  checkpoint %s: %u adapter tensors, %lld elements x 3 (w, m, v), %ld bytes\n", path,
           n, (long long)elems, size);
    free(d);
}

static void check_qlora(void) {
    char mp[4096], tp_[4096], dp[4096];
    if (!test_need_model(mp, sizeof mp, "stories260K/stories260K.bin")) return;
    if (!test_need_model(tp_, sizeof tp_, "stories260K/tok512.bin")) return;
    if (!test_need_shared(dp, sizeof dp, "data/corpus/train.txt")) return;
    char dir[256], base[2][300], val[300];
    snprintf(dir, sizeof dir, "/tmp/test_lora_train_%d", (int)getpid());
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && head -c 12000 '%s' > '%s/valid.txt'", dir, dp, dir);
    CHECK(system(cmd) == 0, "setup");
    snprintf(val, sizeof val, "%s/valid.txt", dir);
    const shrink_dtype dts[2] = {SHRINK_DTYPE_NF4, SHRINK_DTYPE_Q4_K};
    for (int i = 0; i < 2; i++) {
        snprintf(base[i], sizeof base[i], "%s/base-%s.gguf", dir, shrink_dtype_name(dts[i]));
        shrink_convert_params cp = shrink_convert_params_default();
        cp.dtype = dts[i];
        cp.tokenizer_path = tp_;
        CHECK(shrink_convert(mp, base[i], &cp, NULL) == SHRINK_OK, "convert: %s",
              shrink_last_error());
    }
    for (int i = 0; i < 2; i++) {
        char ad[3][320], ck[3][320];
        for (int k = 0; k < 3; k++) {
            snprintf(ad[k], sizeof ad[k], "%s/a%d-%d.gguf", dir, i, k);
            snprintf(ck[k], sizeof ck[k], "%s/ck%d-%d", dir, i, k);
        }
        shrink_train_params tp = shrink_train_params_default();
        tp.data = dp;
        tp.valid = val;
        tp.steps = 12;
        tp.batch = 4;
        tp.ctx = 32;
        tp.lr = 1e-2;
        tp.seed = 3;
        tp.save_every = 6;
        tp.eval_windows = 8;
        shrink_lora_params lp = shrink_lora_params_default();
        lp.rank = 4;
        lp.alpha = 8;
        lp.dropout = 0.1;
        shrink_lora_result r[3];
        char from[400], to[400];
        snprintf(from, sizeof from, "%s/checkpoint.bin", ck[0]);
        snprintf(to, sizeof to, "%s/checkpoint.bin", ck[2]);
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", ck[2]);
        CHECK(system(cmd) == 0, "mkdir");
        test_copy_at c = {from, to, 6, 0};
        tp.out_dir = ck[0];
        tp.log = test_copy_ckpt;
        tp.user = &c;
        lp.out = ad[0];
        CHECK(shrink_lora_train(base[i], &tp, &lp, &r[0]) == SHRINK_OK, "%s: %s", base[i],
              shrink_last_error());
        printf("  QLoRA on %s: val loss %.4f -> %.4f, trainable %lld of %lld\n",
               shrink_dtype_name(dts[i]), r[0].train.val_loss_start, r[0].train.val_loss,
               (long long)r[0].n_trainable, (long long)r[0].n_all);
        CHECK(r[0].train.val_loss < r[0].train.val_loss_start - 0.05,
              "%s: validation loss did not fall: %.4f -> %.4f", base[i],
              r[0].train.val_loss_start, r[0].train.val_loss);
        CHECK(c.copied, "no checkpoint at step 6");
        check_ckpt_adapter_only(to, r[0].n_trainable);
        /* resumed from step 6 = uninterrupted */
        tp.log = NULL;
        tp.out_dir = ck[2];
        tp.resume_dir = ck[2];
        lp.out = ad[2];
        CHECK(shrink_lora_train(base[i], &tp, &lp, &r[2]) == SHRINK_OK, "resume: %s",
              shrink_last_error());
        CHECK(r[2].train.resumed_from == 6, "resumed from %lld", (long long)r[2].train.resumed_from);
        CHECK(r[2].train.loss == r[0].train.loss && r[2].train.val_loss == r[0].train.val_loss,
              "resumed loss %.9g/%.9g vs %.9g/%.9g", r[2].train.loss, r[2].train.val_loss,
              r[0].train.loss, r[0].train.val_loss);
        CHECK(test_same_file(ad[0], ad[2]), "resumed adapter differs");
        /* the adapter applies at run time: the loaded base + adapter has the trained loss */
        shrink_model *m = NULL;
        shrink_load_params lpp = shrink_load_params_default();
        CHECK(shrink_model_load(&m, base[i], &lpp) == SHRINK_OK, "load: %s", shrink_last_error());
        if (m) {
            CHECK(shrink_model_add_lora(m, ad[0], 1.0) == SHRINK_OK, "add: %s",
                  shrink_last_error());
            shrink_model_free(m);
        }
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
}

int main(void) {
    check_fd(SK_ROPE_HALF, 0, 0.0, false);
    check_fd(SK_ROPE_INTERLEAVED, 1, 0.0, false);
    check_fd(SK_ROPE_HALF, 0, 0.25, false);
    check_fd(SK_ROPE_INTERLEAVED, 0, 0.0, true); /* scale alpha / sqrt(r) */
    check_bad_options();
    check_qlora();
    return test_summary("test_lora_train");
}
