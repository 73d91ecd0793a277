/*
 * test_train_grad.c - the training forward/backward pass (src/train) against the float64
 * PyTorch gradients of ../shared/fixtures/<model>/grads.safetensors (loss rel 1e-5, every
 * parameter's gradient ||g - g_ref|| / ||g_ref|| < 1e-4) for tiny-gpt2, tiny-llama-gqa and
 * stories260K; the training forward against the decoder's logits; and central finite
 * differences on tiny random models of every architecture row (both RoPE layouts, tied and
 * untied heads, biases), with freeze flags, masks, accumulation and the saving source.
 */
#include "formats/formats.h"
#include "convert/init.h"
#include "train/train.h"
#include "test_util.h"
#include "test_fixture.h"

#include <math.h>

/* ---- fixtures -------------------------------------------------------------------------- */

/* fixture_open / fixture_get / fixture_close: tests/test_fixture.h */

static double f64_at(const sk_st_raw *t, uint64_t i) {
    double d;
    memcpy(&d, (const uint8_t *)t->data + i * 8, 8);
    return d;
}

/* Mean cross-entropy of the decoder's logits over the same predictions (one context per
 * sequence), in double. */
static double decoder_loss(const shrink_model *m, const int32_t *tok, int B, int T, int V) {
    shrink_context *ctx = NULL;
    if (shrink_context_create(&ctx, m, T, T) != SHRINK_OK) return NAN;
    float *logits = malloc(sizeof(float) * (size_t)T * V);
    double sum = 0;
    for (int b = 0; b < B; b++) {
        const int32_t *row = tok + (size_t)b * (T + 1);
        if (shrink_context_eval(ctx, row, T, 0, logits, T) != SHRINK_OK) sum = NAN;
        for (int t = 0; t < T; t++) {
            const float *l = logits + (size_t)t * V;
            double mx = l[0], s = 0;
            for (int i = 1; i < V; i++) mx = l[i] > mx ? l[i] : mx;
            for (int i = 0; i < V; i++) s += exp(l[i] - mx);
            sum += mx + log(s) - l[row[t + 1]];
        }
    }
    free(logits);
    shrink_context_free(ctx);
    return sum / (B * T);
}

static void check_fixture(const char *name, const char *model_rel) {
    char mp[1024], fp[1024], frel[256];
    snprintf(frel, sizeof frel, "fixtures/%s/grads.safetensors", name);
    if (!test_need_asset(mp, sizeof mp, model_rel)) return;
    if (!test_need_asset(fp, sizeof fp, frel)) return;
    shrink_load_params lp = shrink_load_params_default();
    lp.no_tokenizer = true;
    shrink_model *m = NULL;
    sk_train_model *tm = NULL;
    fixture f;
    CHECK(shrink_model_load(&m, mp, &lp) == SHRINK_OK, "load %s: %s", mp, shrink_last_error());
    if (!m) return;
    if (!fixture_open(&f, fp)) {
        CHECK(0, "fixture %s: %s", fp, shrink_last_error());
        shrink_model_free(m);
        return;
    }
    const sk_st_raw *tok = fixture_get(&f, "tokens"), *lref = fixture_get(&f, "loss");
    CHECK(tok && lref && tok->n_dims == 2 && strcmp(lref->dtype, "F64") == 0, "%s layout", fp);
    if (!tok || !lref) goto out;
    CHECK(sk_train_create_from_model(&tm, m) == SHRINK_OK, "%s: %s", name, shrink_last_error());
    if (!tm) goto out;
    const int B = (int)tok->shape[0], T = (int)tok->shape[1] - 1;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * (T + 1));
    memcpy(ids, tok->data, sizeof(int32_t) * (size_t)B * (T + 1));

    double t0 = shrink_time();
    float loss = 0, loss2 = 0;
    shrink_status st = sk_train_forward_backward(tm, ids, B, T, &loss);
    double secs = shrink_time() - t0;
    CHECK(st == SHRINK_OK, "%s forward_backward: %s", name, shrink_last_error());
    const double ref = f64_at(lref, 0);
    CHECK(fabs(loss - ref) / ref < 1e-5, "%s: loss %.8f vs reference %.8f", name, loss, ref);
    CHECK(sk_train_loss(tm, ids, B, T, &loss2) == SHRINK_OK && loss2 == loss,
          "%s: sk_train_loss %.8f vs %.8f", name, loss2, loss);
    const double dl = decoder_loss(m, ids, B, T, tm->cfg.vocab_size);
    CHECK(fabs(dl - loss) / ref < 1e-5, "%s: decoder loss %.8f vs training %.8f", name, dl,
          loss);

    /* every gradient of the fixture, by name and layout */
    double worst = 0;
    const char *worst_name = "";
    int compared = 0;
    for (int64_t i = 0; i < f.n; i++) {
        const sk_st_raw *r = &f.t[i];
        if (!strcmp(r->name, "tokens") || !strcmp(r->name, "loss")) continue;
        sk_train_param *p = sk_train_find(tm, r->name);
        CHECK(p != NULL, "%s: no parameter for fixture tensor '%s'", name, r->name);
        if (!p) continue;
        CHECK((int64_t)r->n_elems == p->n, "%s: '%s' has %" PRIu64 " elements, param %" PRId64,
              name, r->name, r->n_elems, p->n);
        if ((int64_t)r->n_elems != p->n) continue;
        double num = 0, den = 0;
        for (int64_t j = 0; j < p->n; j++) {
            /* a Conv1D gradient is stored (in, out) = (cols, rows) */
            int64_t at = j;
            if (p->conv1d) at = (j % p->t.cols) * p->t.rows + j / p->t.cols;
            double g = p->g[j], gr = f64_at(r, (uint64_t)at);
            num += (g - gr) * (g - gr);
            den += gr * gr;
        }
        double rel = sqrt(num) / (sqrt(den) > 0 ? sqrt(den) : 1);
        CHECK(rel < 1e-4, "%s: '%s' gradient relative error %.3g", name, r->name, rel);
        if (rel > worst) {
            worst = rel;
            worst_name = r->name;
        }
        compared++;
    }
    CHECK(compared == tm->n_params, "%s: compared %d gradients, model has %" PRId64, name,
          compared, tm->n_params);
    printf("  %-16s loss %.7f (ref %.7f), %d gradients, worst rel err %.2e (%s), %.1f ms\n",
           name, loss, ref, compared, worst, worst_name, secs * 1e3);

    /* accumulation: a second call adds the same gradient again */
    sk_train_param *p0 = &tm->params[tm->n_params - 1];
    float before = p0->g[0];
    CHECK(sk_train_forward_backward(tm, ids, B, T, &loss2) == SHRINK_OK, "second call");
    CHECK(fabsf(p0->g[0] - 2 * before) <= 1e-6f * fabsf(before) + 1e-12f,
          "%s: accumulated %g vs 2 x %g", name, p0->g[0], before);
    free(ids);
out:
    sk_train_free(tm);
    fixture_close(&f);
    shrink_model_free(m);
}

/* ---- finite differences on tiny random models ------------------------------------------- */

static float rnd_unit(void) { return (float)(2.0 * test_rng_u() - 1.0); } /* (-1, 1) */

typedef struct tiny_case {
    const char    *what;
    const char    *arch;
    int            dim, n_layers, n_heads, n_kv_heads, ffn_dim, vocab;
    int            tied, qkv_bias;
    sk_rope_layout layout;
} tiny_case;

static const tiny_case tiny_cases[] = {
    {"llama gqa rotate-half untied", "llama", 16, 2, 4, 2, 24, 37, 0, 0, SK_ROPE_HALF},
    {"llama interleaved tied", "llama", 16, 2, 4, 1, 20, 29, 1, 0, SK_ROPE_INTERLEAVED},
    {"qwen2 (q/k/v biases)", "qwen2", 16, 1, 2, 2, 24, 31, 0, 1, SK_ROPE_HALF},
    {"gpt2 tied", "gpt2", 16, 2, 2, 2, 64, 41, 1, 1, SK_ROPE_HALF},
    {"gpt2 untied", "gpt2", 12, 1, 3, 3, 48, 23, 0, 1, SK_ROPE_HALF},
};

static void tiny_config(const tiny_case *tc, sk_config *c) {
    memset(c, 0, sizeof *c);
    c->arch = sk_arch_find(tc->arch);
    c->dim = tc->dim;
    c->n_layers = tc->n_layers;
    c->n_heads = tc->n_heads;
    c->n_kv_heads = tc->n_kv_heads;
    c->head_dim = tc->dim / tc->n_heads;
    c->ffn_dim = tc->ffn_dim;
    c->vocab_size = tc->vocab;
    c->max_seq_len = 16;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->rope_layout = tc->layout;
    c->tied = tc->tied;
    c->qkv_bias = tc->qkv_bias;
    c->bos_id = 1;
    c->eos_id = 2;
}

static void check_finite_differences(const tiny_case *tc) {
    sk_init_params ip = {.seed = 11, .init_range = 0.3f, .dtype = SHRINK_DTYPE_F32};
    tiny_config(tc, &ip.cfg);
    CHECK(ip.cfg.arch != NULL, "arch %s", tc->arch);
    if (!ip.cfg.arch) return;
    sk_source src;
    sk_init_source(&ip, &src);
    sk_train_model *tm = NULL;
    CHECK(sk_train_create(&tm, &src) == SHRINK_OK, "%s: %s", tc->what, shrink_last_error());
    if (!tm) return;
    /* norm weights around 1, biases around 0, not exactly: every path gets a gradient */
    for (int64_t i = 0; i < tm->n_params; i++) {
        sk_train_param *p = &tm->params[i];
        if (p->t.n_dims == 1)
            for (int64_t j = 0; j < p->n; j++) p->w[j] += 0.2f * rnd_unit();
    }
    enum { B = 2, T = 7 };
    int32_t tok[B * (T + 1)];
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)(test_rng_u32() % (uint32_t)tc->vocab);

    sk_train_zero_grad(tm);
    float loss = 0;
    CHECK(sk_train_forward_backward(tm, tok, B, T, &loss) == SHRINK_OK, "%s: %s", tc->what,
          shrink_last_error());
    double worst = 0;
    const char *worst_name = "";
    const float eps = 2e-3f;
    for (int64_t i = 0; i < tm->n_params; i++) {
        sk_train_param *p = &tm->params[i];
        double num = 0, den = 0;
        for (int s = 0; s < 4; s++) {
            int64_t j = (int64_t)(test_rng_u32() % (uint32_t)p->n);
            /* an embedding row that no token uses has a zero gradient: pick a used one */
            if (p->t.role == SK_ROLE_TOK_EMB && s % 2 == 0)
                j = (int64_t)tok[test_rng_u32() % (B * T)] * p->t.cols + (int64_t)(test_rng_u32() % p->t.cols);
            const float w0 = p->w[j];
            float lp = 0, lm = 0;
            p->w[j] = w0 + eps;
            sk_train_loss(tm, tok, B, T, &lp);
            p->w[j] = w0 - eps;
            sk_train_loss(tm, tok, B, T, &lm);
            p->w[j] = w0;
            double fd = ((double)lp - lm) / (2.0 * eps);
            num += (fd - p->g[j]) * (fd - p->g[j]);
            den += fd * fd + (double)p->g[j] * p->g[j];
        }
        /* symmetric relative error; a floor for tensors whose sampled gradients are ~0 */
        double rel = sqrt(num) / (sqrt(den / 2) + 1e-4);
        CHECK(rel < 2e-2, "%s: '%s' finite-difference relative error %.3g", tc->what,
              p->t.name, rel);
        if (rel > worst) {
            worst = rel;
            worst_name = p->t.name;
        }
    }
    printf("  fd %-30s %2" PRId64 " tensors, loss %.4f, worst rel err %.2e (%s)\n", tc->what,
           tm->n_params, loss, worst, worst_name);
    sk_train_free(tm);
}

/* Freeze flags, masks and the saving source on a tiny model. */
static void check_freeze_masks_source(void) {
    sk_init_params ip = {.seed = 3, .init_range = 0.3f, .dtype = SHRINK_DTYPE_F32};
    tiny_config(&tiny_cases[0], &ip.cfg);
    sk_source src;
    sk_init_source(&ip, &src);
    sk_train_model *tm = NULL;
    CHECK(sk_train_create(&tm, &src) == SHRINK_OK, "create: %s", shrink_last_error());
    if (!tm) return;
    enum { B = 2, T = 5 };
    int32_t tok[B * (T + 1)];
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)(test_rng_u32() % 37);
    float loss;
    sk_train_zero_grad(tm);
    sk_train_forward_backward(tm, tok, B, T, &loss);
    float *full = malloc(sizeof(float) * (size_t)tm->n_elems);
    memcpy(full, tm->g_all, sizeof(float) * (size_t)tm->n_elems);

    sk_train_param *fz = sk_train_find(tm, "model.layers.0.self_attn.q_proj.weight");
    sk_train_param *mk = sk_train_find(tm, "model.layers.1.mlp.up_proj.weight");
    sk_train_param *mu = sk_train_find(tm, "lm_head.weight");
    CHECK(fz && mk && mu, "find parameters");
    if (!fz || !mk || !mu) goto out;
    float *mf = malloc(sizeof(float) * (size_t)mk->n);
    uint8_t *m8 = malloc((size_t)mu->n);
    for (int64_t j = 0; j < mk->n; j++) mf[j] = (float)(j % 3) * 0.5f;
    for (int64_t j = 0; j < mu->n; j++) m8[j] = (uint8_t)(j % 2);
    fz->frozen = 1;
    mk->mask_f32 = mf;
    mu->mask_u8 = m8;
    sk_train_zero_grad(tm);
    sk_train_forward_backward(tm, tok, B, T, &loss);
    int ok_fz = 1, ok_mk = 1, ok_mu = 1, ok_rest = 1;
    for (int64_t j = 0; j < fz->n; j++) ok_fz &= fz->g[j] == 0.0f;
    for (int64_t j = 0; j < mk->n; j++)
        ok_mk &= fabsf(mk->g[j] - mf[j] * full[mk->offset + j]) <= 1e-6f * fabsf(full[mk->offset + j]);
    for (int64_t j = 0; j < mu->n; j++)
        ok_mu &= mu->g[j] == (m8[j] ? full[mu->offset + j] : 0.0f);
    for (int64_t i = 0; i < tm->n_params; i++) {
        sk_train_param *p = &tm->params[i];
        if (p == fz || p == mk || p == mu) continue;
        for (int64_t j = 0; j < p->n; j++) ok_rest &= p->g[j] == full[p->offset + j];
    }
    CHECK(ok_fz, "frozen tensor got a gradient");
    CHECK(ok_mk, "float mask not applied");
    CHECK(ok_mu, "uint8 mask not applied");
    CHECK(ok_rest, "freezing/masking changed other gradients");
    free(mf);
    free(m8);

    /* the saving source gives back the master weights, transposed on request */
    sk_source ts;
    sk_train_source(tm, &ts);
    sk_train_param *p = sk_train_find(tm, "model.layers.0.mlp.down_proj.weight");
    float *rows = malloc(sizeof(float) * (size_t)p->n), *cols = malloc(sizeof(float) * (size_t)p->n);
    CHECK(ts.fill(ts.user, &p->t, 0, p->t.rows, 0, SHRINK_DTYPE_F32, rows) == SHRINK_OK &&
              ts.fill(ts.user, &p->t, 0, p->t.cols, 1, SHRINK_DTYPE_F32, cols) == SHRINK_OK,
          "source fill");
    int same = 1;
    for (int64_t r = 0; r < p->t.rows; r++)
        for (int64_t c = 0; c < p->t.cols; c++)
            same &= rows[r * p->t.cols + c] == p->w[r * p->t.cols + c] &&
                    cols[c * p->t.rows + r] == p->w[r * p->t.cols + c];
    CHECK(same, "source fill differs from the master weights");
    free(rows);
    free(cols);

    /* bad input */
    tok[3] = 37;
    CHECK(sk_train_forward_backward(tm, tok, B, T, &loss) == SHRINK_ERR_RANGE, "bad token");
    CHECK(sk_train_forward_backward(tm, tok, 1, 17, &loss) != SHRINK_OK, "T > context");
out:
    free(full);
    sk_train_free(tm);
}

int main(void) {
    /* the finite differences run ~800 tiny forward passes: one thread (no barriers) */
    shrink_set_threads(1);
    for (size_t i = 0; i < sizeof tiny_cases / sizeof tiny_cases[0]; i++)
        check_finite_differences(&tiny_cases[i]);
    shrink_set_threads(2);
    check_freeze_masks_source();
    /* a missing fixture fails with ../shared present, is a counted skip without it */
    check_fixture("tiny-gpt2", "models/tiny-gpt2");
    check_fixture("tiny-llama-gqa", "models/tiny-llama-gqa");
    check_fixture("stories260K", "models/stories260K/stories260K.bin");
    return test_summary("test_train_grad");
}
