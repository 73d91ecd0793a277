/*
 * test_lowrank_factored.c - low-rank matrices stored as two factors (docs/lowrank.md,
 * "Factored storage") against independent references:
 *   - the kernels: a factored sk_mat (W = B A) through sk_matmul (decode T = 1 and a prompt
 *     T = 7), sk_matmul_f32x and the scalar sk_matmul_ref against the product of the factors
 *     recomputed here in double: f32 factors within f32 rounding; q8_0 factors against the
 *     double product of their dequantized values (the reference within f32 rounding, the
 *     SIMD kernels that quantize activations within q8_0's activation error);
 *   - the model (tiny-llama-gqa): shrink lowrank --store factored and --store dense of the same
 *     factorization (f32) give logits equal within f32 rounding, the factored file is smaller
 *     and holds <name>.lr_a / .lr_b instead of <name>; `convert` of the factored file keeps
 *     the factors and the logits bit for bit (reload, rewrite, run); q8_0 factors written by
 *     lowrank --dtype q8_0 load and run close to the f32 ones; a Hugging Face output of a
 *     factored model is refused;
 *   - training: a tiny random model whose seven linear kinds are two factors each trains them
 *     as two parameters: every gradient (the factors' included) against central finite
 *     differences of the loss; the training forward's loss equals the decoder's on the model
 *     it saves (a factored GGUF), within f32 rounding;
 *   - the sensitivity chooser (--choose sensitivity): the parameters it keeps stay within the
 *     budget and above the next smaller one's, its ranks differ between matrices, the factored
 *     and the merged-dense files of the same choice give the same logits (the ranks are the
 *     same in both modes), and no budget / no text is refused.
 */
#include "kernels/kernels.h"
#include "convert/init.h"
#include "train/train.h"
#include "test_util.h"

#include <unistd.h>

/* ---- kernels --------------------------------------------------------------------------- */

static void fill(float *v, int64_t n, double s) {
    for (int64_t i = 0; i < n; i++) v[i] = (float)(s * test_rng_normal());
}

/* max |y - ref| / max |ref| */
static double rel_diff(const float *y, const double *ref, int64_t n) {
    double d = 0.0, mx = 0.0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)y[i] - ref[i]));
        mx = fmax(mx, fabs(ref[i]));
    }
    return mx > 0 ? d / mx : d;
}

static void test_kernels(shrink_dtype dt, int64_t m, int64_t n, int64_t k) {
    const int64_t Ts[2] = {1, 7};
    float *A = malloc((size_t)(k * n) * sizeof *A), *B = malloc((size_t)(m * k) * sizeof *B);
    fill(A, k * n, 0.2);
    fill(B, m * k, 0.2);
    const sk_dtype_traits *d = sk_dtype(dt);
    const uint64_t ab = sk_dtype_tensor_bytes(dt, k, n), bb = sk_dtype_tensor_bytes(dt, m, k);
    uint8_t *qa = malloc(ab), *qb = malloc(bb);
    float *Ad = malloc((size_t)(k * n) * sizeof *Ad), *Bd = malloc((size_t)(m * k) * sizeof *Bd);
    for (int64_t r = 0; r < k; r++) { /* row by row: rows of the stored dtype */
        d->from_f32(A + r * n, qa + r * sk_dtype_row_bytes(dt, n), n);
        d->to_f32(qa + r * sk_dtype_row_bytes(dt, n), Ad + r * n, n);
    }
    for (int64_t r = 0; r < m; r++) {
        d->from_f32(B + r * k, qb + r * sk_dtype_row_bytes(dt, k), k);
        d->to_f32(qb + r * sk_dtype_row_bytes(dt, k), Bd + r * k, k);
    }
    sk_mat fac[2] = {{.dtype = dt, .rows = k, .cols = n, .data = qa},
                     {.dtype = dt, .rows = m, .cols = k, .data = qb}};
    const sk_mat W = {.dtype = dt, .rows = m, .cols = n, .data = NULL, .lr = fac};
    CHECK(sk_mat_bytes(&W) == ab + bb, "sk_mat_bytes of a factored matrix");
    const double q = dt == SHRINK_DTYPE_F32 ? 0.0 : 1.0;
    for (int i = 0; i < 2; i++) {
        const int64_t T = Ts[i];
        float *X = malloc((size_t)(T * n) * sizeof *X), *Y = malloc((size_t)(T * m) * sizeof *Y);
        double *ref = malloc((size_t)(T * m) * sizeof *ref), *mid = malloc((size_t)k * sizeof *mid);
        fill(X, T * n, 1.0);
        for (int64_t t = 0; t < T; t++) { /* (X A^T) B^T in double from the stored values */
            for (int64_t j = 0; j < k; j++) {
                double s = 0.0;
                for (int64_t c = 0; c < n; c++) s += (double)Ad[j * n + c] * X[t * n + c];
                mid[j] = s;
            }
            for (int64_t r = 0; r < m; r++) {
                double s = 0.0;
                for (int64_t j = 0; j < k; j++) s += (double)Bd[r * k + j] * mid[j];
                ref[t * m + r] = s;
            }
        }
        CHECK(sk_matmul_ref(&W, X, T, Y, m) == SHRINK_OK, "ref");
        double e = rel_diff(Y, ref, T * m);
        CHECK(e < 1e-5, "%s factored %lldx%lld rank %lld T=%lld: scalar reference off by %.3g",
              d->name, (long long)m, (long long)n, (long long)k, (long long)T, e);
        CHECK(sk_matmul_with(sk_kernels(), &W, X, T, Y, m) == SHRINK_OK, "matmul: %s",
              shrink_last_error());
        e = rel_diff(Y, ref, T * m);
        /* q8_0: the kernels quantize the activations (both products' inputs) to 8 bits */
        CHECK(e < 1e-5 + q * 2e-2, "%s factored T=%lld: sk_matmul off by %.3g", d->name,
              (long long)T, e);
        sk_scratch s = {0};
        CHECK(sk_scratch_reserve(&s, sk_matmul_f32x_scratch_bytes(sk_kernels(), &W, T)) == 0,
              "scratch");
        CHECK(sk_matmul_f32x(&W, X, T, Y, m, &s) == SHRINK_OK, "f32x");
        sk_scratch_free(&s);
        e = rel_diff(Y, ref, T * m);
        CHECK(e < 1e-5, "%s factored T=%lld: sk_matmul_f32x off by %.3g", d->name, (long long)T,
              e);
        /* too little scratch: an error, not an overrun */
        sk_scratch s2 = {0};
        const size_t need = sk_matmul_scratch_bytes(sk_kernels(), &W, T);
        CHECK(need >= (size_t)(T * k) * sizeof(float), "scratch holds the intermediate");
        CHECK(sk_matmul(&W, X, T, Y, m, &s2) == SHRINK_ERR_ARG, "no scratch refused");
        sk_scratch_free(&s2);
        free(X);
        free(Y);
        free(ref);
        free(mid);
    }
    free(A);
    free(B);
    free(qa);
    free(qb);
    free(Ad);
    free(Bd);
}

/* ---- the model ------------------------------------------------------------------------- */

static float *logits_of(const char *path, const int32_t *ids, int n, int *V) {
    shrink_model *m = NULL;
    shrink_context *c = NULL;
    float *lg = NULL;
    if (shrink_model_load(&m, path, NULL) != SHRINK_OK) {
        CHECK(0, "load %s: %s", path, shrink_last_error());
        return NULL;
    }
    shrink_model_info info;
    shrink_model_get_info(m, &info);
    *V = info.vocab_size;
    lg = malloc((size_t)n * (size_t)*V * sizeof *lg);
    if (shrink_context_create(&c, m, 0, 0) != SHRINK_OK ||
        shrink_context_eval(c, ids, n, 0, lg, n) != SHRINK_OK) {
        CHECK(0, "run %s: %s", path, shrink_last_error());
        free(lg);
        lg = NULL;
    }
    shrink_context_free(c);
    shrink_model_free(m);
    return lg;
}

static double logit_diff(const float *a, const float *b, int64_t n) {
    double d = 0.0, mx = 0.0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        mx = fmax(mx, fabs((double)b[i]));
    }
    return mx > 0 ? d / mx : d;
}

/* How many tensors of the file end in `suffix`, and of them how many are `dt` (-1: any). */
static int count_tensors(const char *path, const char *suffix, int dt, int *n_dt) {
    shrink_model *m = NULL;
    int n = 0;
    *n_dt = 0;
    if (shrink_model_load(&m, path, NULL) != SHRINK_OK) return -1;
    shrink_model_info info;
    shrink_model_get_info(m, &info);
    for (int64_t i = 0; i < info.n_tensors; i++) {
        shrink_tensor_info t;
        if (shrink_model_tensor(m, i, &t) != SHRINK_OK) break;
        const size_t a = strlen(t.name), b = strlen(suffix);
        if (a >= b && strcmp(t.name + a - b, suffix) == 0) {
            n++;
            *n_dt += dt < 0 || (int)t.dtype == dt;
        }
    }
    shrink_model_free(m);
    return n;
}

static long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static void test_factored_model(void) {
    char mp[2048];
    if (!test_need_model(mp, sizeof mp, "tiny-llama-gqa")) return;
    char dense[256], fact[256], fq[256], conv[256], hf[256];
    const int pid = (int)getpid();
    snprintf(dense, sizeof dense, "/tmp/shrink_lrf_%d_dense.gguf", pid);
    snprintf(fact, sizeof fact, "/tmp/shrink_lrf_%d_fact.gguf", pid);
    snprintf(fq, sizeof fq, "/tmp/shrink_lrf_%d_q8.gguf", pid);
    snprintf(conv, sizeof conv, "/tmp/shrink_lrf_%d_conv.gguf", pid);
    snprintf(hf, sizeof hf, "/tmp/shrink_lrf_%d_hf", pid);
    shrink_lowrank_params p = shrink_lowrank_params_default();
    p.ratio = 0.5;
    p.dtype = SHRINK_DTYPE_F32;
    shrink_lowrank_result rd, rf, rq;
    CHECK(shrink_lowrank(mp, dense, &p, &rd) == SHRINK_OK, "dense: %s", shrink_last_error());
    p.factored = 1;
    CHECK(shrink_lowrank(mp, fact, &p, &rf) == SHRINK_OK, "factored: %s", shrink_last_error());
    CHECK(rd.n_factored == 0 && rf.n_factored == rf.n_matrices - rf.n_dense && rf.n_factored > 0,
          "factored %lld of %lld", (long long)rf.n_factored, (long long)rf.n_matrices);
    CHECK(rf.params_lowrank == rd.params_lowrank && rf.min_rank == rd.min_rank &&
          rf.max_rank == rd.max_rank, "the same factorization");
    CHECK(file_size(fact) > 0 && file_size(fact) < file_size(dense), "factored %ld < dense %ld",
          file_size(fact), file_size(dense));
    int n_f32;
    CHECK(count_tensors(fact, ".lr_a", SHRINK_DTYPE_F32, &n_f32) == rf.n_factored &&
          count_tensors(fact, ".lr_b", -1, &n_f32) == rf.n_factored, "a pair per matrix");
    CHECK(count_tensors(dense, ".lr_a", -1, &n_f32) == 0, "the dense file has no factors");
    /* quantized factors */
    p.dtype = SHRINK_DTYPE_Q8_0;
    CHECK(shrink_lowrank(mp, fq, &p, &rq) == SHRINK_OK, "q8_0 factors: %s", shrink_last_error());
    int n_q8;
    CHECK(count_tensors(fq, ".lr_a", SHRINK_DTYPE_Q8_0, &n_q8) == rq.n_factored && n_q8 > 0,
          "q8_0 factors A: %d", n_q8);
    /* convert keeps the factors */
    shrink_convert_params cp = shrink_convert_params_default();
    CHECK(shrink_convert(fact, conv, &cp, NULL) == SHRINK_OK, "convert: %s", shrink_last_error());
    CHECK(count_tensors(conv, ".lr_b", -1, &n_f32) == rf.n_factored, "convert keeps factors");
    cp.to = "hf";
    CHECK(shrink_convert(fact, hf, &cp, NULL) == SHRINK_ERR_UNSUPPORTED, "HF output refused");
    CHECK(!test_is_dir(hf), "no HF output left");
    p.dtype = -1;
    CHECK(shrink_lowrank(mp, hf, &p, NULL) == SHRINK_ERR_UNSUPPORTED && !test_is_dir(hf),
          "lowrank --store factored to a folder refused");

    int32_t ids[24];
    for (int i = 0; i < 24; i++) ids[i] = (int32_t)((i * 37 + 5) % 500);
    int V = 0, V2 = 0, V3 = 0, V4 = 0;
    float *ld = logits_of(dense, ids, 24, &V);
    float *lf = logits_of(fact, ids, 24, &V2);
    float *lc = logits_of(conv, ids, 24, &V3);
    float *lq = logits_of(fq, ids, 24, &V4);
    if (ld && lf && lc && lq && V == V2 && V == V3 && V == V4) {
        const double e = logit_diff(lf, ld, 24 * (int64_t)V);
        CHECK(e < 2e-5, "factored vs merged dense logits: %.3g relative", e);
        CHECK(memcmp(lf, lc, (size_t)24 * V * sizeof *lf) == 0, "converted factored: same logits");
        const double eq = logit_diff(lq, lf, 24 * (int64_t)V);
        int finite = 1;
        for (int64_t i = 0; i < 24 * (int64_t)V; i++) finite &= isfinite(lq[i]) != 0;
        CHECK(finite && eq < 0.05 && eq > 0.0, "q8_0 factors vs f32 factors: %.3g relative", eq);
    } else {
        CHECK(0, "logits");
    }
    free(ld);
    free(lf);
    free(lc);
    free(lq);
    unlink(dense);
    unlink(fact);
    unlink(fq);
    unlink(conv);
}

/* ---- training ------------------------------------------------------------------------- */

typedef struct fsrc {
    sk_source base;
    int64_t   k;
} fsrc;

static int64_t f_rank_of(void *user, const sk_wtensor *t) { return ((fsrc *)user)->k; }

/* the base's tensors; factors: deterministic values of about the base matrix's scale */
static shrink_status f_fill(void *user, const sk_wtensor *t, int64_t row0, int64_t n, int tr,
                            shrink_dtype dt, void *dst) {
    fsrc *f = user;
    if (!t->factor) return f->base.fill(f->base.user, t, row0, n, tr, dt, dst);
    float *o = dst;
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < t->cols; c++) {
            const uint64_t h = (uint64_t)(row0 + r) * 7919u + (uint64_t)c * 104729u +
                               (uint64_t)t->factor * 31u + (uint64_t)t->role * 1009u +
                               (uint64_t)(t->layer + 1) * 65537u;
            o[r * t->cols + c] = (float)((double)(h % 2001u) / 1000.0 - 1.0) * 0.5f;
        }
    return SHRINK_OK;
}

static double decoder_loss(const char *path, const int32_t *tok, int B, int T) {
    shrink_load_params lp = shrink_load_params_default();
    lp.no_tokenizer = true;
    shrink_model *m = NULL;
    shrink_context *ctx = NULL;
    if (shrink_model_load(&m, path, &lp) != SHRINK_OK ||
        shrink_context_create(&ctx, m, T, T) != SHRINK_OK) {
        CHECK(0, "load %s: %s", path, shrink_last_error());
        shrink_model_free(m);
        return NAN;
    }
    shrink_model_info info;
    shrink_model_get_info(m, &info);
    const int V = info.vocab_size;
    float *lg = malloc(sizeof(float) * (size_t)T * V);
    double sum = 0;
    for (int b = 0; b < B; b++) {
        const int32_t *row = tok + (size_t)b * (T + 1);
        if (shrink_context_eval(ctx, row, T, 0, lg, T) != SHRINK_OK) sum = NAN;
        for (int t = 0; t < T; t++) {
            const float *l = lg + (size_t)t * V;
            double mx = l[0], e = 0;
            for (int i = 1; i < V; i++) mx = l[i] > mx ? l[i] : mx;
            for (int i = 0; i < V; i++) e += exp(l[i] - mx);
            sum += mx + log(e) - l[row[t + 1]];
        }
    }
    free(lg);
    shrink_context_free(ctx);
    shrink_model_free(m);
    return sum / (B * T);
}

static void test_training(const char *arch, int recompute) {
    sk_init_params ip = {.seed = 5, .init_range = 0.3f, .dtype = SHRINK_DTYPE_F32};
    sk_config *c = &ip.cfg;
    c->arch = sk_arch_find(arch);
    c->dim = 16;
    c->n_layers = 2;
    c->n_heads = 4;
    c->n_kv_heads = strcmp(arch, "llama") ? 4 : 2;
    c->head_dim = 4;
    c->ffn_dim = 24;
    c->vocab_size = 29;
    c->max_seq_len = 16;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->rope_layout = SK_ROPE_INTERLEAVED;
    c->bos_id = 1;
    c->eos_id = 2;
    c->qkv_bias = strcmp(arch, "llama") != 0;
    fsrc f;
    sk_init_source(&ip, &f.base);
    f.k = 3;
    sk_source src = f.base;
    src.fill = f_fill;
    src.user = &f;
    src.rank_of = f_rank_of;
    src.rank_user = &f;
    sk_train_model *tm = NULL;
    CHECK(sk_train_create(&tm, &src) == SHRINK_OK, "%s: %s", arch, shrink_last_error());
    if (!tm) return;
    tm->recompute = recompute;
    int n_fa = 0, n_fb = 0;
    for (int64_t i = 0; i < tm->n_params; i++) {
        n_fa += tm->params[i].t.factor == 1 && tm->params[i].t.rows == 3;
        n_fb += tm->params[i].t.factor == 2 && tm->params[i].t.cols == 3;
        CHECK(!sk_trole_at(tm->params[i].t.role)->lowrank || tm->params[i].t.factor,
              "%s: no dense parameter of a factored matrix ('%s')", arch, tm->params[i].t.name);
    }
    const int kinds = strcmp(arch, "llama") ? 3 : 7; /* gpt2: q|k|v fused (not factored) */
    CHECK(n_fa == kinds * 2 && n_fb == kinds * 2, "%s: %d A and %d B factors", arch, n_fa, n_fb);
    enum { B = 2, T = 6 };
    int32_t tok[B * (T + 1)];
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)(test_rng_u32() % 29u);
    sk_train_zero_grad(tm);
    float loss = 0;
    CHECK(sk_train_forward_backward(tm, tok, B, T, &loss) == SHRINK_OK, "%s: %s", arch,
          shrink_last_error());
    /* directional derivatives, which carry far more signal than one element in f32: along
     * the gradient itself (FD = |g|) and along a random direction r (FD = g . r) */
    const double eps = 1e-2;
    double worst = 0;
    float *w0 = malloc(sizeof(float) * (size_t)tm->n_elems), *dir = NULL;
    for (int64_t i = 0; i < tm->n_params; i++) {
        sk_train_param *p = &tm->params[i];
        if (!p->t.factor && p->t.n_dims == 2 && i % 3) continue; /* the factors, and some others */
        dir = realloc(dir, sizeof(float) * (size_t)p->n);
        memcpy(w0, p->w, sizeof(float) * (size_t)p->n);
        for (int d = 0; d < 2; d++) {
            double nn = 0, gd = 0;
            for (int64_t j = 0; j < p->n; j++) {
                dir[j] = d == 0 ? p->g[j] : (float)test_rng_normal();
                nn += (double)dir[j] * dir[j];
            }
            nn = sqrt(nn);
            for (int64_t j = 0; j < p->n; j++) {
                dir[j] = (float)(dir[j] / nn);
                gd += (double)p->g[j] * dir[j];
            }
            float lp = 0, lm = 0;
            for (int64_t j = 0; j < p->n; j++) p->w[j] = w0[j] + (float)eps * dir[j];
            sk_train_loss(tm, tok, B, T, &lp);
            for (int64_t j = 0; j < p->n; j++) p->w[j] = w0[j] - (float)eps * dir[j];
            sk_train_loss(tm, tok, B, T, &lm);
            memcpy(p->w, w0, sizeof(float) * (size_t)p->n);
            const double fd = ((double)lp - lm) / (2.0 * eps);
            const double rel = fabs(fd - gd) / (fabs(fd) + fabs(gd) + 1e-3);
            CHECK(rel < 2e-2, "%s: '%s' %s: finite difference %.6g, gradient %.6g", arch,
                  p->t.name, d ? "random direction" : "along g", fd, gd);
            worst = rel > worst ? rel : worst;
        }
    }
    free(w0);
    free(dir);
    printf("  fd %s factored (recompute %d): loss %.4f, worst rel err %.2e\n", arch, recompute,
           loss, worst);
    /* saved as a factored GGUF, the decoder's loss is the training forward's */
    char out[256];
    snprintf(out, sizeof out, "/tmp/shrink_lrf_%d_train_%s.gguf", (int)getpid(), arch);
    sk_source ts;
    sk_train_source(tm, &ts);
    sk_write_opts o = sk_write_opts_default();
    o.dtype = SHRINK_DTYPE_F32;
    CHECK(sk_write(&ts, out, SK_FORMAT_GGUF, &o) == SHRINK_OK, "save: %s", shrink_last_error());
    int n;
    CHECK(count_tensors(out, ".lr_a", SHRINK_DTYPE_F32, &n) == kinds * 2, "saved factors");
    const double dl = decoder_loss(out, tok, B, T);
    CHECK(fabs(dl - loss) < 1e-5 * fabs(dl) + 1e-6, "%s: decoder loss %.7f vs training %.7f",
          arch, dl, (double)loss);
    unlink(out);
    sk_train_free(tm);
}

/* ---- the sensitivity chooser ------------------------------------------------------------ */

static void test_chooser(void) {
    char mp[2048], cal[2048];
    if (!test_need_model(mp, sizeof mp, "tiny-llama-gqa")) return;
    if (!test_need_asset(cal, sizeof cal, "fixtures/imatrix/calib.txt")) return;
    char a[256], b[256], fa[256];
    const int pid = (int)getpid();
    snprintf(a, sizeof a, "/tmp/shrink_lrf_%d_ch_a.gguf", pid);
    snprintf(b, sizeof b, "/tmp/shrink_lrf_%d_ch_b.gguf", pid);
    snprintf(fa, sizeof fa, "/tmp/shrink_lrf_%d_ch_f.gguf", pid);
    shrink_lowrank_params p = shrink_lowrank_params_default();
    p.ratio = 0.5;
    p.dtype = SHRINK_DTYPE_F32;
    p.choose = 1;
    p.calib_path = cal;
    p.choose_tokens = 32;
    shrink_lowrank_result r1, r3;
    CHECK(shrink_lowrank(mp, a, &p, &r1) == SHRINK_OK, "choose: %s", shrink_last_error());
    CHECK(r1.params_lowrank <= (int64_t)(0.5 * (double)r1.params_target) &&
          r1.params_lowrank > (int64_t)(0.4 * (double)r1.params_target),
          "budget: %lld of %lld", (long long)r1.params_lowrank, (long long)r1.params_target);
    CHECK(r1.choose_passes > 0 && r1.choose_kl_sum > 0.0, "passes %lld, kl %g",
          (long long)r1.choose_passes, r1.choose_kl_sum);
    CHECK(r1.min_rank < r1.max_rank || r1.n_dense > 0, "ranks vary between matrices");
    p.factored = 1;
    CHECK(shrink_lowrank(mp, fa, &p, &r3) == SHRINK_OK, "choose factored: %s",
          shrink_last_error());
    CHECK(r3.params_lowrank == r1.params_lowrank && r3.n_factored == r1.n_matrices - r1.n_dense,
          "factored: the same choice (%lld factored, %lld dense)", (long long)r3.n_factored,
          (long long)r1.n_dense);
    int32_t ids[16];
    for (int i = 0; i < 16; i++) ids[i] = (int32_t)((i * 53 + 7) % 500);
    int V1 = 0, V2 = 0;
    float *la = logits_of(a, ids, 16, &V1), *lf = logits_of(fa, ids, 16, &V2);
    if (la && lf && V1 == V2) {
        const double e = logit_diff(lf, la, 16 * (int64_t)V1);
        CHECK(e < 2e-5, "chosen factored vs merged dense logits: %.3g relative", e);
    } else {
        CHECK(0, "chosen: no logits of the merged or factored file: %s", shrink_last_error());
    }
    free(la);
    free(lf);
    p.factored = 0;
    p.calib_path = NULL;
    CHECK(shrink_lowrank(mp, b, &p, NULL) == SHRINK_ERR_ARG, "no text refused");
    p.calib_path = cal;
    p.ratio = 0.0;
    p.rank = 4;
    CHECK(shrink_lowrank(mp, b, &p, NULL) == SHRINK_ERR_ARG, "no budget refused");
    unlink(a);
    unlink(b);
    unlink(fa);
}

int main(void) {
    test_rng_seed(15);
    test_kernels(SHRINK_DTYPE_F32, 48, 64, 12);
    test_kernels(SHRINK_DTYPE_F32, 40, 24, 24);
    test_kernels(SHRINK_DTYPE_Q8_0, 64, 96, 32);
    test_factored_model();
    test_training("llama", 0);
    test_training("llama", 1);
    test_training("gpt2", 0);
    test_chooser();
    return test_summary("test_lowrank_factored");
}
