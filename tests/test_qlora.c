/*
 * test_qlora.c - LoRA on a frozen base held in its stored dtype (sk_train_create_frozen: QLoRA
 * on nf4 / q4_K / int4 / q8_0 bases, LoRA on f16 / bf16 ones), against independent references:
 *   - the input gradient through a stored matrix, dX += dY·W (sk_matmul_backward, the panels
 *     dequantized a row's blocks at a time), at every kernel level (ref, avx2, avx512 where
 *     the CPU has them) and on 1 and 2 threads: against a float64 product with the weights
 *     dequantized by the dtype row's scalar to_f32, and bit for bit against the same product on
 *     the widened f32 matrix (the path that held an f32 copy); the forward product likewise;
 *   - a tiny random Llama written as GGUF and loaded as each type (f16 file, bf16 file,
 *     --load-as q8_0, q4_K, nf4, int4_g128; tied and untied heads): every base matrix is held
 *     in that type (no f32 copy: the parameter block holds the vectors and the adapter only),
 *     the adapter's gradients match central finite differences of the quantized forward
 *     (within 2 %), and loss and gradients equal those of the f32 master copy of the same
 *     dequantized weights (bit for bit for f16/bf16, to f32 rounding otherwise: the block types'
 *     forward K blocking follows the quantization block);
 *   - activation checkpointing (sk_train_model.recompute) gives the same loss and gradients bit
 *     for bit: QLoRA on nf4 with adapter dropout, and a full f32 model.
 */
#include "formats/formats.h"
#include "convert/init.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "train/train.h"
#include "test_util.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

static float rnd_unit(void) { return (float)(2.0 * test_rng_u() - 1.0); }

/* A (rows, cols) matrix of type dt from random f32 values; *deq gets its dequantized values
 * through the dtype row's scalar to_f32 (the reference). */
static void *make_mat(shrink_dtype dt, int64_t rows, int64_t cols, float **deq) {
    float *f = malloc(sizeof(float) * (size_t)(rows * cols));
    for (int64_t i = 0; i < rows * cols; i++) f[i] = rnd_unit();
    const uint64_t rb = sk_dtype_row_bytes(dt, cols);
    uint8_t *q = sk_aligned_alloc(64, (size_t)(rb * (uint64_t)rows));
    CHECK(sk_convert_rows(f, SHRINK_DTYPE_F32, q, dt, rows, cols) == SHRINK_OK, "quantize %s",
          shrink_dtype_name(dt));
    for (int64_t r = 0; r < rows; r++) sk_dtype(dt)->to_f32(q + r * rb, f + r * cols, cols);
    *deq = f;
    return q;
}

static double rel_err(const float *a, const double *ref, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return sqrt(num / (den + 1e-30));
}

/* dX += dY W and Y = X W^T with W stored in dt, against float64 and the widened matrix. */
static void check_products(shrink_dtype dt) {
    const int N = 37, in = 512, out = 96;
    float *Wd = NULL;
    void *Wq = make_mat(dt, out, in, &Wd);
    float *dY = malloc(sizeof(float) * N * out), *X = malloc(sizeof(float) * N * in);
    for (int i = 0; i < N * out; i++) dY[i] = rnd_unit();
    for (int i = 0; i < N * in; i++) X[i] = rnd_unit();
    float *dX0 = malloc(sizeof(float) * N * in); /* an existing gradient: the product adds */
    for (int i = 0; i < N * in; i++) dX0[i] = 0.25f * rnd_unit();
    double *ref = malloc(sizeof(double) * N * in), *yref = malloc(sizeof(double) * N * out);
    for (int n = 0; n < N; n++) {
        for (int i = 0; i < in; i++) {
            double acc = dX0[n * in + i];
            for (int o = 0; o < out; o++) acc += (double)dY[n * out + o] * Wd[o * in + i];
            ref[n * in + i] = acc;
        }
        for (int o = 0; o < out; o++) {
            double acc = 0;
            for (int i = 0; i < in; i++) acc += (double)X[n * in + i] * Wd[o * in + i];
            yref[n * out + o] = acc;
        }
    }
    const sk_mat Ws = {.dtype = dt, .rows = out, .cols = in, .data = Wq};
    const sk_mat Wf = {.dtype = SHRINK_DTYPE_F32, .rows = out, .cols = in, .data = Wd};
    float *dXs = malloc(sizeof(float) * N * in), *dXf = malloc(sizeof(float) * N * in);
    float *Ys = malloc(sizeof(float) * N * out);
    const sk_isa isas[3] = {SK_ISA_REF, SK_ISA_AVX2, SK_ISA_AVX512};
    const sk_isa top = sk_cpu_isa(), chosen = sk_kernels()->isa;
    const int threads = omp_get_max_threads();
    double worst = 0, worst_y = 0;
    for (int li = 0; li < 3; li++) {
        if (isas[li] > top) continue;
        sk_kernels_force(isas[li]);
        for (int th = 1; th <= 2; th++) {
            omp_set_num_threads(th);
            sk_scratch s = {0}; /* plenty for these products (the layers size it exactly) */
            CHECK(sk_scratch_reserve(&s, (size_t)16 << 20) == SHRINK_OK, "scratch");
            memcpy(dXs, dX0, sizeof(float) * N * in);
            memcpy(dXf, dX0, sizeof(float) * N * in);
            CHECK(sk_matmul_backward(dXs, NULL, NULL, dY, X, &Ws, N, in, out, &s) == SHRINK_OK,
                  "%s backward: %s", shrink_dtype_name(dt), shrink_last_error());
            CHECK(sk_matmul_backward(dXf, NULL, NULL, dY, X, &Wf, N, in, out, &s) == SHRINK_OK,
                  "f32 backward: %s", shrink_last_error());
            CHECK(memcmp(dXs, dXf, sizeof(float) * N * in) == 0,
                  "%s (%s, %d threads): dX through the stored matrix differs from the widened "
                  "one's", shrink_dtype_name(dt), sk_kernels_isa(), th);
            const double e = rel_err(dXs, ref, (int64_t)N * in);
            CHECK(e < 1e-5, "%s (%s, %d threads): dX relative error %.3g to float64",
                  shrink_dtype_name(dt), sk_kernels_isa(), th, e);
            worst = e > worst ? e : worst;
            CHECK(sk_matmul_forward(Ys, X, &Ws, NULL, N, in, out, &s) == SHRINK_OK, "forward");
            const double ey = rel_err(Ys, yref, (int64_t)N * out);
            CHECK(ey < 1e-5, "%s (%s): Y relative error %.3g to float64", shrink_dtype_name(dt),
                  sk_kernels_isa(), ey);
            worst_y = ey > worst_y ? ey : worst_y;
            sk_scratch_free(&s);
        }
    }
    sk_kernels_force(chosen); /* as SHRINK_KERNELS chose */
    omp_set_num_threads(threads);
    printf("  %-10s dX = dY W: = widened f32 bit for bit, rel err to float64 %.1e (Y %.1e)\n",
           shrink_dtype_name(dt), worst, worst_y);
    free(dY), free(X), free(dX0), free(ref), free(yref), free(dXs), free(dXf), free(Ys), free(Wd);
    sk_free(Wq);
}

/* ---- a tiny model, written and loaded in each type ---------------------------------------- */

enum { B = 2, T = 7, V = 64 };

static int write_model(const char *path, int tied, shrink_dtype dt) {
    sk_init_params ip = {.seed = 17, .init_range = 0.05f, .dtype = SHRINK_DTYPE_F32};
    sk_config *c = &ip.cfg;
    c->arch = sk_arch_find("llama");
    c->dim = 256;
    c->n_layers = 2;
    c->n_heads = 4;
    c->n_kv_heads = 2;
    c->head_dim = 64;
    c->ffn_dim = 512;
    c->vocab_size = V;
    c->max_seq_len = 16;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->rope_layout = SK_ROPE_INTERLEAVED; /* GGUF's order: the file's rows are the model's */
    c->tied = tied;
    c->bos_id = 1;
    c->eos_id = 2;
    sk_source src;
    sk_init_source(&ip, &src);
    sk_write_opts wo = sk_write_opts_default();
    wo.dtype = dt;
    shrink_status st = sk_write(&src, path, SK_FORMAT_GGUF, &wo);
    CHECK(st == SHRINK_OK, "write %s: %s", path, shrink_last_error());
    return st == SHRINK_OK;
}

/* LoRA on tm (same seed: same A), B set to the same random values. */
static struct sk_lora_train *attach(sk_train_model *tm, int64_t *n_base) {
    *n_base = tm->n_params;
    sk_lora_opts o = {.rank = 4, .alpha = 8, .targets = 0x7f, .seed = 9};
    struct sk_lora_train *lt = NULL;
    CHECK(sk_lora_attach(tm, &o, &lt) == SHRINK_OK, "attach: %s", shrink_last_error());
    test_rng_seed(77);
    for (int64_t i = *n_base + 1; lt && i < tm->n_params; i += 2)
        for (int64_t j = 0; j < tm->params[i].n; j++) tm->params[i].w[j] = 0.3f * rnd_unit();
    return lt;
}

static void check_model(const char *dir, const char *what, shrink_dtype file_dt,
                        const char *load_as, shrink_dtype want, int tied) {
    char path[512];
    snprintf(path, sizeof path, "%s/base-%s-%d.gguf", dir, shrink_dtype_name(file_dt), tied);
    if (access(path, F_OK) != 0 && !write_model(path, tied, file_dt)) return;
    shrink_model *m = NULL;
    shrink_load_params lp = shrink_load_params_default();
    lp.no_tokenizer = true;
    lp.load_as = load_as;
    CHECK(shrink_model_load(&m, path, &lp) == SHRINK_OK, "load %s as %s: %s", path,
          load_as ? load_as : "stored", shrink_last_error());
    if (!m) return;
    sk_train_model *ts = NULL, *tf = NULL;
    CHECK(sk_train_create_frozen(&ts, m) == SHRINK_OK, "create frozen: %s", shrink_last_error());
    if (!ts) goto out;
    /* the f32 master copy of the same (dequantized) weights, read through ts's source */
    sk_source src;
    sk_train_source(ts, &src);
    CHECK(sk_train_create(&tf, &src) == SHRINK_OK, "create: %s", shrink_last_error());
    if (!tf) goto out;
    /* every matrix held in its stored type, no f32 copy of any */
    int64_t mats = 0, typed = 0, vec_floats = 0, mat_elems = 0;
    for (int64_t i = 0; i < ts->n_params; i++) {
        const sk_train_param *p = &ts->params[i];
        if (p->t.n_dims == 2) {
            mats++;
            mat_elems += p->n;
            typed += p->stored.data && p->stored.dtype == want && !p->w && !p->g && p->frozen;
        } else {
            vec_floats += (p->n + 15) & ~15;
        }
    }
    CHECK(typed == mats && mats == 2 * 7 + 1 + !tied, "%s: %lld of %lld matrices held as %s",
          what, (long long)typed, (long long)mats, shrink_dtype_name(want));
    CHECK(ts->n_elems == vec_floats, "%s: %lld floats in the parameter block, the vectors "
          "take %lld", what, (long long)ts->n_elems, (long long)vec_floats);
    int64_t nb_s, nb_f;
    struct sk_lora_train *ls = attach(ts, &nb_s), *lf = attach(tf, &nb_f);
    if (!ls || !lf) goto out2;
    int64_t adapter = 0;
    for (int64_t i = nb_s; i < ts->n_params; i++) adapter += (ts->params[i].n + 15) & ~15;
    CHECK(ts->n_elems == vec_floats + adapter, "%s: %lld floats after attaching, want %lld", what,
          (long long)ts->n_elems, (long long)(vec_floats + adapter));
    test_rng_seed(5);
    int32_t tok[B * (T + 1)];
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)(test_rng_u32() % V);
    float l_s = NAN, l_f = NAN;
    sk_train_zero_grad(ts);
    sk_train_zero_grad(tf);
    CHECK(sk_train_forward_backward(ts, tok, B, T, &l_s) == SHRINK_OK, "%s step: %s", what,
          shrink_last_error());
    CHECK(sk_train_forward_backward(tf, tok, B, T, &l_f) == SHRINK_OK, "step: %s",
          shrink_last_error());
    /* the same as the f32 master copy of the dequantized weights */
    const int exact = want == SHRINK_DTYPE_F16 || want == SHRINK_DTYPE_BF16;
    double gnum = 0, gden = 0;
    int same = l_s == l_f;
    for (int64_t i = nb_s; i < ts->n_params; i++) {
        const sk_train_param *a = &ts->params[i], *b = &tf->params[i];
        same &= memcmp(a->g, b->g, sizeof(float) * (size_t)a->n) == 0;
        for (int64_t j = 0; j < a->n; j++) {
            gnum += ((double)a->g[j] - b->g[j]) * ((double)a->g[j] - b->g[j]);
            gden += (double)b->g[j] * b->g[j];
        }
    }
    const double grel = sqrt(gnum / (gden + 1e-30));
    if (exact)
        CHECK(same, "%s: loss %.9g vs %.9g or adapter gradients differ from the f32 copy's",
              what, l_s, l_f);
    CHECK(fabsf(l_s - l_f) <= 1e-5f * fabsf(l_f) && grel < 1e-4, "%s: loss %.9g vs the f32 "
          "copy's %.9g, gradients relative difference %.3g", what, l_s, l_f, grel);
    /* central finite differences of the quantized forward */
    float *g = malloc(sizeof(float) * (size_t)ts->n_elems);
    memcpy(g, ts->g_all, sizeof(float) * (size_t)ts->n_elems);
    double worst = 0;
    const float eps = 1e-2f; /* the loss is smooth in the adapter: f32 noise matters more */
    test_rng_seed(11);
    for (int64_t i = nb_s; i < ts->n_params; i += 4) { /* a quarter of the adapter tensors */
        sk_train_param *p = &ts->params[i];
        double num = 0, den = 0;
        for (int k = 0; k < 3; k++) {
            const int64_t j = (int64_t)(test_rng_u32() % (uint32_t)p->n);
            const float w0 = p->w[j];
            float lp_ = NAN, lm_ = NAN;
            p->w[j] = w0 + eps;
            sk_train_loss(ts, tok, B, T, &lp_);
            p->w[j] = w0 - eps;
            sk_train_loss(ts, tok, B, T, &lm_);
            p->w[j] = w0;
            const double fd = ((double)lp_ - lm_) / (2.0 * eps), an = g[p->offset + j];
            num += (fd - an) * (fd - an);
            den += fd * fd + an * an;
        }
        const double rel = sqrt(num) / (sqrt(den / 2) + 1e-4);
        CHECK(rel < 2e-2, "%s: '%s' finite-difference relative error %.3g", what, p->t.name, rel);
        worst = rel > worst ? rel : worst;
    }
    free(g);
    printf("  %-22s %s head: base in %s, %lld floats held (vectors + adapter), loss %.6f "
           "(f32 copy %.6f%s), grad rel diff %.1e, fd worst %.1e\n", what,
           tied ? "tied" : "untied", shrink_dtype_name(want), (long long)ts->n_elems, l_s, l_f,
           same ? ", identical" : "", grel, worst);
out2:
    sk_lora_train_free(ls);
    sk_lora_train_free(lf);
out:
    sk_train_free(ts);
    sk_train_free(tf);
    shrink_model_free(m);
}

/* Activation checkpointing (tm->recompute) gives the same loss and gradients, bit for bit: a
 * QLoRA base with adapter dropout (the masks of the recomputed layers must be the pass's) and a
 * full f32 model with every parameter training. */
static int grads_equal_recomputed(sk_train_model *tm, struct sk_lora_train *lt, const char *what) {
    int32_t tok[B * (T + 1)];
    test_rng_seed(23);
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)(test_rng_u32() % V);
    float l0 = NAN, l1 = NAN;
    float *g = malloc(sizeof(float) * (size_t)tm->n_elems);
    tm->recompute = 0;
    sk_train_zero_grad(tm);
    if (lt) sk_lora_train_set_calls(lt, 3);
    CHECK(sk_train_forward_backward(tm, tok, B, T, &l0) == SHRINK_OK, "%s: %s", what,
          shrink_last_error());
    memcpy(g, tm->g_all, sizeof(float) * (size_t)tm->n_elems);
    tm->recompute = 1;
    sk_train_zero_grad(tm);
    if (lt) sk_lora_train_set_calls(lt, 3);
    CHECK(sk_train_forward_backward(tm, tok, B, T, &l1) == SHRINK_OK, "%s recompute: %s", what,
          shrink_last_error());
    const int same = l0 == l1 && !memcmp(g, tm->g_all, sizeof(float) * (size_t)tm->n_elems);
    CHECK(same, "%s: with activation checkpointing loss %.9g vs %.9g or gradients differ", what,
          l1, l0);
    float lv1 = NAN, lv0 = NAN; /* validation passes (no backward) too */
    CHECK(sk_train_loss(tm, tok, B, T, &lv1) == SHRINK_OK, "loss: %s", shrink_last_error());
    tm->recompute = 0;
    CHECK(sk_train_loss(tm, tok, B, T, &lv0) == SHRINK_OK && lv0 == lv1,
          "%s: validation loss %.9g with activation checkpointing, %.9g without", what, lv1, lv0);
    free(g);
    printf("  %-22s activation checkpointing: loss %.7f and %lld gradients bit for bit\n", what,
           l1, (long long)tm->n_elems);
    return same;
}

static void check_recompute(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/base-%s-%d.gguf", dir, shrink_dtype_name(SHRINK_DTYPE_F32), 1);
    if (access(path, F_OK) != 0 && !write_model(path, 1, SHRINK_DTYPE_F32)) return;
    shrink_model *m = NULL;
    shrink_load_params lp = shrink_load_params_default();
    lp.no_tokenizer = true;
    lp.load_as = "nf4";
    CHECK(shrink_model_load(&m, path, &lp) == SHRINK_OK, "load: %s", shrink_last_error());
    sk_train_model *ts = NULL, *tf = NULL;
    if (m) CHECK(sk_train_create_frozen(&ts, m) == SHRINK_OK, "create: %s", shrink_last_error());
    if (ts) {
        sk_lora_opts o = {.rank = 4, .alpha = 8, .targets = 0x7f, .seed = 9, .dropout = 0.25};
        struct sk_lora_train *lt = NULL;
        CHECK(sk_lora_attach(ts, &o, &lt) == SHRINK_OK, "attach: %s", shrink_last_error());
        for (int64_t i = 0; lt && i < ts->n_params; i++) /* B != 0: A gets gradients */
            if (!ts->params[i].frozen && strstr(ts->params[i].t.name, "lora_b"))
                for (int64_t j = 0; j < ts->params[i].n; j++)
                    ts->params[i].w[j] = 0.3f * rnd_unit();
        if (lt) grads_equal_recomputed(ts, lt, "QLoRA nf4, dropout");
        sk_lora_train_free(lt);
    }
    /* a full model (every parameter trains), f32 */
    sk_source src;
    if (ts) {
        sk_train_source(ts, &src);
        CHECK(sk_train_create(&tf, &src) == SHRINK_OK, "create: %s", shrink_last_error());
    }
    if (tf) grads_equal_recomputed(tf, NULL, "full f32 model");
    sk_train_free(ts);
    sk_train_free(tf);
    shrink_model_free(m);
}

int main(void) {
    const shrink_dtype kdt[] = {SHRINK_DTYPE_F16,  SHRINK_DTYPE_BF16,    SHRINK_DTYPE_Q8_0,
                                SHRINK_DTYPE_Q4_0, SHRINK_DTYPE_Q4_K,    SHRINK_DTYPE_Q6_K,
                                SHRINK_DTYPE_NF4,  SHRINK_DTYPE_INT4_G128, SHRINK_DTYPE_INT8_CH,
                                SHRINK_DTYPE_NF4_DQ, SHRINK_DTYPE_IQ4_NL};
    for (size_t i = 0; i < sizeof kdt / sizeof kdt[0]; i++) check_products(kdt[i]);
    char dir[128];
    snprintf(dir, sizeof dir, "/tmp/test_qlora_%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    CHECK(system(cmd) == 0, "mkdir");
    check_model(dir, "f16 file", SHRINK_DTYPE_F16, NULL, SHRINK_DTYPE_F16, 1);
    check_model(dir, "bf16 file", SHRINK_DTYPE_BF16, NULL, SHRINK_DTYPE_BF16, 0);
    check_model(dir, "--load-as q8_0", SHRINK_DTYPE_F32, "q8_0", SHRINK_DTYPE_Q8_0, 0);
    check_model(dir, "--load-as q4_K", SHRINK_DTYPE_F32, "q4_K", SHRINK_DTYPE_Q4_K, 1);
    check_model(dir, "--load-as nf4", SHRINK_DTYPE_F32, "nf4", SHRINK_DTYPE_NF4, 0);
    check_model(dir, "--load-as int4_g128", SHRINK_DTYPE_F32, "int4_g128",
                SHRINK_DTYPE_INT4_G128, 1);
    check_recompute(dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return test_summary("test_qlora");
}
