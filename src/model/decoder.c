/*
 * decoder.c - the forward pass of every supported architecture, and the run state
 * (shrink_context: KV cache + activations).
 *
 * Shapes: T = tokens in the batch, D = dim, H = n_heads, KV = n_kv_heads, hd = head_dim,
 * F = ffn_dim, V = vocab_size, C = n_ctx (positions the cache holds), L = n_layers.
 *
 * One implementation serves Llama and GPT-2: the decoder branches on the architecture row
 * (norm kind, FFN kind, positional encoding) and on which biases the model has, never on the
 * architecture's name. Reads like llama2.c's forward(), but every step runs on the whole batch
 * of T tokens, so the projections are matrix-matrix products (prompt processing) and T = 1 is
 * decoding.
 *
 * Numerics follow the references: RMSNorm  x / sqrt(mean(x^2) + eps) * w (Hugging Face
 * LlamaRMSNorm); LayerNorm with biased variance (torch.nn.LayerNorm); GELU with the tanh
 * approximation (gelu_new); RoPE frequencies theta^(-2i/hd) computed in double.
 */
#include "model.h"
#include "lora.h"

#include <math.h>
#include <omp.h>

struct shrink_context {
    const struct shrink_model *model;
    int32_t n_ctx;   /* C */
    int32_t n_batch; /* max T per forward */
    int32_t n_past;  /* positions held by the cache */

    float *k_cache;  /* (cache_layers, KV, C, hd) */
    float *v_cache;  /* (cache_layers, KV, C, hd) */
    int32_t cache_layers; /* L, or 1: a context for one layer at a time (sk_context_layer) */
    float *rope_cos; /* (C, hd/2) */
    float *rope_sin; /* (C, hd/2) */

    float *x;        /* (T, D) residual stream */
    float *xn;       /* (T, D) normalized input of a sub-layer */
    float *tmp;      /* (T, D) sub-layer output before the residual add */
    float *q;        /* (T, H*hd) */
    float *kv;       /* (T, 2*KV*hd) new keys | new values before they go to the cache */
    float *att;      /* (T, H*hd) attention output, heads concatenated */
    float *hb;       /* (T, F) */
    float *hb2;      /* (T, F) */
    float *scratch;  /* (threads, attn_scratch_floats) attention work space, one per thread */
    size_t scratch_floats;
    int    n_threads_scores;
    sk_scratch mm;              /* the matrix products' work memory (sk_matmul) */
    int    mm_threads;          /* the thread count and kernel set mm is sized for */
    const sk_kernel_set *mm_set;

    sk_observe_fn observe; /* NULL, or called with the input of every matrix product */
    void         *observe_user;
};

void sk_context_set_observer(shrink_context *x, sk_observe_fn fn, void *user) {
    x->observe = fn;
    x->observe_user = user;
}

/* Shows the input X (T, cols) of matrix `which` of layer l to the observer, if any. */
static void observe(const shrink_context *x, int l, sk_linear which, const float *X, int T,
                    int64_t cols) {
    if (x->observe) x->observe(x->observe_user, l, which, X, T, cols);
}

/* Where layer l's keys and values are in the cache: a one-layer context reuses its slot. */
static size_t cache_at(const shrink_context *x, int l) {
    return x->cache_layers == 1 ? 0 : (size_t)l;
}

/* ==== small ops ================================================================ */

static void rmsnorm(float *out, const float *x, const float *w, int n, float eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float s = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) out[i] = x[i] * s * w[i];
}

static void layernorm(float *out, const float *x, const float *w, const float *b, int n,
                      float eps) {
    double mean = 0.0, var = 0.0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
    var /= n;
    float rstd = (float)(1.0 / sqrt(var + eps));
    for (int i = 0; i < n; i++) out[i] = (float)(x[i] - mean) * rstd * w[i] + (b ? b[i] : 0.f);
}

/* Small loops (decode, T = 1) run outside any parallel region rather than with an `if`
 * clause: libgomp enters GOMP_parallel for `if (0)` too, and allocates and frees a team for
 * every region, even a one-thread one (malloc, futex wakes at its barriers). */

static void norm_row(const sk_config *c, float *out, const float *x, const float *w,
                     const float *b) {
    if (c->arch->norm == SK_NORM_RMS) rmsnorm(out, x, w, c->dim, c->norm_eps);
    else layernorm(out, x, w, b, c->dim, c->norm_eps);
}

/* xn[t] = norm(x[t]) for every token, by the architecture's norm kind. */
static void norm_rows(const struct shrink_model *m, float *xn, const float *x, int T,
                      const float *w, const float *b) {
    const sk_config *c = &m->cfg;
    const int D = c->dim;
    if (T <= 8) { /* decode: no parallel region (above) */
        for (int t = 0; t < T; t++) norm_row(c, xn + (size_t)t * D, x + (size_t)t * D, w, b);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) norm_row(c, xn + (size_t)t * D, x + (size_t)t * D, w, b);
}

/* Y = X W^T (+ bias per row), the product's work memory from the context's scratch. */
static shrink_status linear(shrink_context *x, const sk_mat *W, const float *bias,
                            const float *X, int T, float *Y, int64_t ldy) {
    shrink_status st = sk_matmul(W, X, T, Y, ldy, &x->mm);
    if (st || !bias) return st;
    if (T <= 8) {
        for (int t = 0; t < T; t++)
            for (int64_t r = 0; r < W->rows; r++) Y[t * ldy + r] += bias[r];
        return SHRINK_OK;
    }
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++)
        for (int64_t r = 0; r < W->rows; r++) Y[t * ldy + r] += bias[r];
    return SHRINK_OK;
}

/* x += y over n floats (threads share the work when n is large). */
static void add_rows(float *x, const float *y, size_t n) {
    if (n <= 16384) {
        for (size_t i = 0; i < n; i++) x[i] += y[i];
        return;
    }
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* GELU, tanh approximation: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), computed
 * through the identity 0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u)) (libm's tanhf is 5x slower). */
static float gelu_tanh(float x) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    return x / (1.0f + expf(-2.0f * k * (x + 0.044715f * x * x * x)));
}

static float silu(float x) { return x / (1.0f + expf(-x)); }

/* Rotates one head vector in place at position pos. */
static void rope_head(float *v, int hd, const float *cs, const float *sn, sk_rope_layout lay) {
    const int half = hd / 2;
    if (lay == SK_ROPE_HALF) {
        for (int i = 0; i < half; i++) {
            float a = v[i], b = v[i + half];
            v[i]        = a * cs[i] - b * sn[i];
            v[i + half] = b * cs[i] + a * sn[i];
        }
    } else {
        for (int i = 0; i < half; i++) {
            float a = v[2 * i], b = v[2 * i + 1];
            v[2 * i]     = a * cs[i] - b * sn[i];
            v[2 * i + 1] = b * cs[i] + a * sn[i];
        }
    }
}

/* ==== context ================================================================== */

/* The blocked attention of prompt processing supports GEMM micro-tiles up to this size. */
#define SK_ATTN_MAX_MR 32
#define SK_ATTN_MAX_NR 16

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Floats of one thread's attention work space: query block, its packed copy, packed keys,
 * scores / probabilities, their packed copy, a packed value panel (see attention_blocked). */
static size_t attn_scratch_floats(size_t C, size_t hd) {
    const size_t mr = SK_ATTN_MAX_MR, nr = SK_ATTN_MAX_NR;
    return round16(nr * hd) + round16(hd * nr) + round16((C + mr) * hd) + round16(nr * C) +
           round16(C * nr) + round16(C * mr) + 16;
}

/* Sizes the matrix products' scratch for the largest product of a forward (1 or n_batch
 * tokens, every matrix) with the current kernels and threads; done at create and again only
 * when the thread count or the kernel set changed since. SHRINK_ERR_NOMEM on failure. */
static shrink_status reserve_matmul_scratch(shrink_context *x) {
    const sk_kernel_set *ks = sk_kernels();
    const int nth = omp_get_max_threads();
    if (x->mm_set == ks && x->mm_threads == nth) return SHRINK_OK;
    const struct shrink_model *m = x->model;
    const int64_t Ts[2] = {1, x->n_batch};
    size_t need = 0;
    for (int i = 0; i < 2; i++) {
        size_t b = sk_matmul_scratch_bytes(ks, &m->head, Ts[i]);
        need = b > need ? b : need;
        for (int l = 0; l < m->cfg.n_layers; l++) {
            const sk_layer *w = &m->layers[l];
            const sk_mat *mats[7] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w_gate, &w->w_up,
                                     &w->w_down};
            for (int j = 0; j < 7; j++) {
                b = sk_matmul_scratch_bytes(ks, mats[j], Ts[i]);
                need = b > need ? b : need;
            }
        }
    }
    shrink_status st = sk_scratch_reserve(&x->mm, need);
    if (st) return st;
    x->mm_set = ks;
    x->mm_threads = nth;
    return SHRINK_OK;
}

static shrink_status context_create(shrink_context **out, const shrink_model *model,
                                    int32_t n_ctx, int32_t n_batch, int one_layer) {
    *out = NULL;
    if (!model) return sk_error(SHRINK_ERR_ARG, "creating a context: no model given");
    const sk_config *c = &model->cfg;
    if (n_ctx <= 0) n_ctx = c->max_seq_len;
    if (n_ctx > c->max_seq_len)
        return sk_error(SHRINK_ERR_ARG,
                        "a context of %d tokens exceeds the model's context length %d",
                        n_ctx, c->max_seq_len);
    if (n_batch <= 0) n_batch = 512;
    if (n_batch > n_ctx) n_batch = n_ctx;

    shrink_context *x = sk_calloc(1, sizeof *x);
    if (!x) return sk_error(SHRINK_ERR_NOMEM, "out of memory for a context");
    x->model = model;
    x->n_ctx = n_ctx;
    x->n_batch = n_batch;
    x->cache_layers = one_layer ? 1 : c->n_layers;
    const size_t L = (size_t)x->cache_layers, KV = (size_t)c->n_kv_heads;
    const size_t hd = (size_t)c->head_dim;
    const size_t D = (size_t)c->dim, H = (size_t)c->n_heads, F = (size_t)c->ffn_dim;
    const size_t C = (size_t)n_ctx, T = (size_t)n_batch;
    x->n_threads_scores = omp_get_max_threads();
    if (x->n_threads_scores < 1) x->n_threads_scores = 1;

    x->k_cache = sk_calloc(L * KV * C * hd, sizeof(float));
    x->v_cache = sk_calloc(L * KV * C * hd, sizeof(float));
    x->rope_cos = sk_calloc(C * (hd / 2 + 1), sizeof(float));
    x->rope_sin = sk_calloc(C * (hd / 2 + 1), sizeof(float));
    x->x = sk_calloc(T * D, sizeof(float));
    x->xn = sk_calloc(T * D, sizeof(float));
    x->tmp = sk_calloc(T * D, sizeof(float));
    x->q = sk_calloc(T * H * hd, sizeof(float));
    x->kv = sk_calloc(T * 2 * KV * hd, sizeof(float));
    x->att = sk_calloc(T * H * hd, sizeof(float));
    x->hb = sk_calloc(T * F, sizeof(float));
    x->hb2 = sk_calloc(T * F, sizeof(float));
    x->scratch_floats = attn_scratch_floats(C, hd);
    x->scratch = sk_aligned_alloc(64, (size_t)x->n_threads_scores * x->scratch_floats *
                                          sizeof(float));
    if (!x->k_cache || !x->v_cache || !x->rope_cos || !x->rope_sin || !x->x || !x->xn ||
        !x->tmp || !x->q || !x->kv || !x->att || !x->hb || !x->hb2 || !x->scratch ||
        reserve_matmul_scratch(x) != SHRINK_OK) {
        shrink_context_free(x);
        return sk_error(SHRINK_ERR_NOMEM,
                        "out of memory for a context of %d tokens "
                        "(%" PRIu64 " bytes)",
                        n_ctx, shrink_model_state_bytes(model, n_ctx, n_batch));
    }
    if (c->arch->pos == SK_POS_ROPE) {
        const size_t half = hd / 2;
        for (size_t p = 0; p < C; p++)
            for (size_t i = 0; i < half; i++) {
                double freq = pow((double)c->rope_theta, -(double)(2 * i) / (double)hd);
                double ang = (double)p * freq;
                x->rope_cos[p * half + i] = (float)cos(ang);
                x->rope_sin[p * half + i] = (float)sin(ang);
            }
    }
    *out = x;
    return SHRINK_OK;
}

shrink_status shrink_context_create(shrink_context **out, const shrink_model *model,
                                    int32_t n_ctx, int32_t n_batch) {
    return context_create(out, model, n_ctx, n_batch, 0);
}

shrink_status sk_context_create_layer(shrink_context **out, const shrink_model *model,
                                      int32_t n_ctx, int32_t n_batch) {
    return context_create(out, model, n_ctx, n_batch, 1);
}

void shrink_context_free(shrink_context *x) {
    if (!x) return;
    sk_free(x->k_cache);
    sk_free(x->v_cache);
    sk_free(x->rope_cos);
    sk_free(x->rope_sin);
    sk_free(x->x);
    sk_free(x->xn);
    sk_free(x->tmp);
    sk_free(x->q);
    sk_free(x->kv);
    sk_free(x->att);
    sk_free(x->hb);
    sk_free(x->hb2);
    sk_free(x->scratch);
    sk_scratch_free(&x->mm);
    sk_free(x);
}

int32_t shrink_context_n_ctx(const shrink_context *x) { return x ? x->n_ctx : 0; }

const struct shrink_model *sk_context_model(const shrink_context *x) { return x->model; }

uint64_t shrink_model_state_bytes(const shrink_model *m, int32_t n_ctx, int32_t n_batch) {
    const sk_config *c = &m->cfg;
    if (n_ctx <= 0 || n_ctx > c->max_seq_len) n_ctx = c->max_seq_len;
    if (n_batch <= 0) n_batch = 512;
    if (n_batch > n_ctx) n_batch = n_ctx;
    uint64_t C = (uint64_t)n_ctx, T = (uint64_t)n_batch, hd = (uint64_t)c->head_dim;
    uint64_t cache = 2ull * c->n_layers * c->n_kv_heads * C * hd;
    uint64_t rope = 2ull * C * (hd / 2 + 1);
    uint64_t act = T * (3ull * c->dim + 2ull * c->n_heads * hd + 2ull * c->n_kv_heads * hd +
                        2ull * c->ffn_dim);
    uint64_t scores = (uint64_t)omp_get_max_threads() * attn_scratch_floats(C, hd);
    return 4 * (cache + rope + act + scores);
}

/* ==== attention ================================================================ */

/* att[t, h] = softmax(q[t,h] . K[g, 0..p] / sqrt(hd)) V[g, 0..p], p = pos + t, g = h's kv
 * head: causal attention with grouped-query heads over the cache. */
static void attention_head(shrink_context *x, const sk_kernel_set *ks, int l, int t, int h,
                           int pos, float *sc) {
    const sk_config *c = &x->model->cfg;
    const int H = c->n_heads, hd = c->head_dim, C = x->n_ctx;
    const int group = H / c->n_kv_heads;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t head_stride = (size_t)C * hd;
    const float *kl = x->k_cache + cache_at(x, l) * c->n_kv_heads * head_stride;
    const float *vl = x->v_cache + cache_at(x, l) * c->n_kv_heads * head_stride;
    const float *qv = x->q + ((size_t)t * H + h) * hd;
    const float *K = kl + (size_t)(h / group) * head_stride;
    const float *V = vl + (size_t)(h / group) * head_stride;
    const int n = pos + t + 1; /* keys 0 .. pos+t */
    /* scores: the keys are the rows of a (n, hd) f32 matrix, q the vector */
    const sk_mat Km = {.dtype = SHRINK_DTYPE_F32, .rows = n, .cols = hd, .data = K};
    if (ks->gemv)
        ks->gemv(&Km, qv, sc, 0, n);
    else /* the reference set has no gemv */
        for (int j = 0; j < n; j++) sc[j] = ks->dot_f32(qv, K + (size_t)j * hd, hd);
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) {
        sc[j] *= scale;
        if (sc[j] > mx) mx = sc[j];
    }
    float sum = 0.0f;
    for (int j = 0; j < n; j++) {
        sc[j] = expf(sc[j] - mx);
        sum += sc[j];
    }
    const float inv = 1.0f / sum;
    float *o = x->att + ((size_t)t * H + h) * hd;
    for (int i = 0; i < hd; i++) o[i] = 0.0f;
    for (int j = 0; j < n; j++) ks->axpy_f32(hd, sc[j] * inv, V + (size_t)j * hd, o);
}

static void attention(shrink_context *x, int l, int T, int pos) {
    const sk_config *c = &x->model->cfg;
    const int H = c->n_heads, hd = c->head_dim;
    const sk_kernel_set *ks = sk_kernels(); /* single-threaded SIMD kernels */

    if ((double)T * H * (pos + T) * hd <= 32768.0) { /* no parallel region (above) */
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) attention_head(x, ks, l, t, h, pos, x->scratch);
        return;
    }
    #pragma omp parallel for collapse(2) schedule(dynamic, 4) num_threads(x->n_threads_scores)
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++)
            attention_head(x, ks, l, t, h, pos,
                           x->scratch + (size_t)omp_get_thread_num() * x->scratch_floats);
}

/* Softmax of row s[0..n) scaled by `scale`, over the first `valid` entries; the rest -> 0. */
static void softmax_causal(const sk_kernel_set *ks, float *s, int n, int valid, float scale) {
    float mx = -INFINITY;
    for (int j = 0; j < valid; j++) {
        s[j] *= scale;
        if (s[j] > mx) mx = s[j];
    }
    const float inv = 1.0f / ks->exp_sum_f32(s, valid, mx);
    for (int j = 0; j < valid; j++) s[j] *= inv;
    for (int j = valid; j < n; j++) s[j] = 0.0f;
}

/* The same attention as attention() for a batch (prompt processing), by blocks of nr queries
 * of one head: S = Qb K^T and O = P V are computed with the GEMM micro-kernels of the kernel
 * set (pack_x, pack_w, tile), so every key and value row is read once per block of queries
 * rather than once per query. Keys past a query's position get probability 0. */
static void attention_blocked(shrink_context *x, const sk_kernel_set *ks, int l, int T,
                              int pos) {
    const sk_config *c = &x->model->cfg;
    const int H = c->n_heads, hd = c->head_dim, C = x->n_ctx, mr = ks->mr, nr = ks->nr;
    const int group = H / c->n_kv_heads;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t head_stride = (size_t)C * hd;
    const float *kl = x->k_cache + cache_at(x, l) * c->n_kv_heads * head_stride;
    const float *vl = x->v_cache + cache_at(x, l) * c->n_kv_heads * head_stride;
    const int nblocks = (T + nr - 1) / nr;
    const int vpanels = (hd + mr - 1) / mr;

    #pragma omp parallel for collapse(2) schedule(dynamic, 1) num_threads(x->n_threads_scores)
    for (int h = 0; h < H; h++) {
        for (int b = 0; b < nblocks; b++) {
            float *w = x->scratch + (size_t)omp_get_thread_num() * x->scratch_floats;
            float *qb = w;                                        /* (nr, hd) queries */
            float *xp = qb + round16((size_t)SK_ATTN_MAX_NR * hd); /* packed queries */
            float *kp = xp + round16((size_t)hd * SK_ATTN_MAX_NR); /* packed key panels */
            float *sp = kp + round16((size_t)(C + SK_ATTN_MAX_MR) * hd); /* (nr, C) S, P */
            float *pp = sp + round16((size_t)SK_ATTN_MAX_NR * C); /* packed P */
            float *vp = pp + round16((size_t)C * SK_ATTN_MAX_NR); /* packed value panel */
            const int t0 = b * nr, nt = T - t0 < nr ? T - t0 : nr;
            const int n = pos + t0 + nt; /* keys seen by the block's last query */
            const float *K = kl + (size_t)(h / group) * head_stride;
            const float *V = vl + (size_t)(h / group) * head_stride;

            /* S (nt, n) = Qb K^T: the keys are the rows of a (n, hd) weight matrix */
            for (int j = 0; j < nt; j++)
                memcpy(qb + (size_t)j * hd, x->q + ((size_t)(t0 + j) * H + h) * hd,
                       (size_t)hd * sizeof(float));
            ks->pack_x(qb, hd, nt, 0, 0, hd, xp);
            const sk_mat Km = {.dtype = SHRINK_DTYPE_F32, .rows = n, .cols = hd, .data = K};
            ks->pack_w(&Km, 0, n, 0, hd, kp);
            for (int r = 0; r < n; r += mr)
                ks->tile(hd, kp + (size_t)r * hd, xp, sp + r, C, nt, n - r < mr ? n - r : mr, 0);

            /* P = causal softmax of each row */
            for (int j = 0; j < nt; j++)
                softmax_causal(ks, sp + (size_t)j * C, n, pos + t0 + j + 1, scale);

            /* O (nt, hd) = P V: V^T is a (hd, n) weight matrix whose packed panels are slices
             * of V's rows */
            ks->pack_x(sp, C, nt, 0, 0, n, pp);
            float *out = x->att + ((size_t)t0 * H + h) * hd;
            for (int p = 0; p < vpanels; p++) {
                const int i0 = p * mr, mrows = hd - i0 < mr ? hd - i0 : mr;
                for (int k = 0; k < n; k++) {
                    memcpy(vp + (size_t)k * mr, V + (size_t)k * hd + i0,
                           (size_t)mrows * sizeof(float));
                    for (int i = mrows; i < mr; i++) vp[(size_t)k * mr + i] = 0.0f;
                }
                ks->tile(n, vp, pp, out + i0, (int64_t)H * hd, nt, mrows, 0);
            }
        }
    }
}

/* ==== the forward pass ========================================================= */

/* Token t of the batch (position pos + t): RoPE on its q and k, then its k and v into the
 * cache of layer l. */
static void rope_store(shrink_context *x, int l, int t, int pos) {
    const sk_config *c = &x->model->cfg;
    const int H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim, C = x->n_ctx;
    const int half = hd / 2, p = pos + t;
    const size_t kvd = (size_t)KV * hd;
    float *kt = x->kv + (size_t)t * 2 * kvd;
    if (c->arch->pos == SK_POS_ROPE) {
        const float *cs = x->rope_cos + (size_t)p * half;
        const float *sn = x->rope_sin + (size_t)p * half;
        for (int h = 0; h < H; h++)
            rope_head(x->q + ((size_t)t * H + h) * hd, hd, cs, sn, c->rope_layout);
        for (int g = 0; g < KV; g++) rope_head(kt + (size_t)g * hd, hd, cs, sn, c->rope_layout);
    }
    for (int g = 0; g < KV; g++) {
        size_t at = ((cache_at(x, l) * KV + g) * C + p) * hd;
        memcpy(x->k_cache + at, kt + (size_t)g * hd, (size_t)hd * sizeof(float));
        memcpy(x->v_cache + at, kt + kvd + (size_t)g * hd, (size_t)hd * sizeof(float));
    }
}

/* The token embedding (+ learned position embedding) of T tokens at positions pos.. into
 * x->x. */
static void embed(shrink_context *x, const int32_t *tokens, int T, int pos) {
    const struct shrink_model *m = x->model;
    const sk_config *c = &m->cfg;
    const int D = c->dim;
    for (int t = 0; t < T; t++) {
        float *xt = x->x + (size_t)t * D;
        sk_mat_row_f32(&m->tok_emb, tokens[t], xt);
        if (c->arch->pos == SK_POS_LEARNED) {
            sk_mat_row_f32(&m->pos_emb, pos + t, x->tmp);
            add_rows(xt, x->tmp, (size_t)D);
        }
    }
}

/* Decoder layer l on the residual stream x->x of T tokens at positions pos.. (its keys and
 * values go to the cache). */
static shrink_status layer_forward(shrink_context *x, int l, int T, int pos) {
    const struct shrink_model *m = x->model;
    const sk_config *c = &m->cfg;
    const int D = c->dim, H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim;
    const int F = c->ffn_dim;
    const size_t kvd = (size_t)KV * hd;
    shrink_status st;
    {
        const sk_layer *w = &m->layers[l];
        observe(x, l, SK_LIN_RESID, x->x, T, D);

        /* attention: xn = norm(x); q, k, v projections */
        norm_rows(m, x->xn, x->x, T, w->attn_norm, w->attn_norm_b);
        observe(x, l, SK_LIN_Q, x->xn, T, D);
        observe(x, l, SK_LIN_K, x->xn, T, D);
        observe(x, l, SK_LIN_V, x->xn, T, D);
        if ((st = linear(x, &w->wq, w->bq, x->xn, T, x->q, (int64_t)H * hd))) return st;
        sk_lora_apply(m->lora, l, SK_LIN_Q, x->xn, T, x->q, (int64_t)H * hd);
        if ((st = linear(x, &w->wk, w->bk, x->xn, T, x->kv, (int64_t)(2 * kvd)))) return st;
        sk_lora_apply(m->lora, l, SK_LIN_K, x->xn, T, x->kv, (int64_t)(2 * kvd));
        if ((st = linear(x, &w->wv, w->bv, x->xn, T, x->kv + kvd, (int64_t)(2 * kvd)))) return st;
        sk_lora_apply(m->lora, l, SK_LIN_V, x->xn, T, x->kv + kvd, (int64_t)(2 * kvd));

        /* rotary position embedding of q and k, then k and v into the cache */
        if (T <= 8) {
            for (int t = 0; t < T; t++) rope_store(x, l, t, pos);
        } else {
            #pragma omp parallel for schedule(static)
            for (int t = 0; t < T; t++) rope_store(x, l, t, pos);
        }

        const sk_kernel_set *ks = sk_kernels();
        if (T >= 4 && ks->tile && ks->mr <= SK_ATTN_MAX_MR && ks->nr <= SK_ATTN_MAX_NR)
            attention_blocked(x, ks, l, T, pos);
        else
            attention(x, l, T, pos);

        /* output projection and residual */
        observe(x, l, SK_LIN_O, x->att, T, (int64_t)H * hd);
        if ((st = linear(x, &w->wo, w->bo, x->att, T, x->tmp, D))) return st;
        sk_lora_apply(m->lora, l, SK_LIN_O, x->att, T, x->tmp, D);
        add_rows(x->x, x->tmp, (size_t)T * D);

        /* feed-forward: xn = norm(x); SwiGLU or GELU MLP; residual */
        norm_rows(m, x->xn, x->x, T, w->ffn_norm, w->ffn_norm_b);
        if (c->arch->ffn == SK_FFN_SWIGLU) observe(x, l, SK_LIN_GATE, x->xn, T, D);
        observe(x, l, SK_LIN_UP, x->xn, T, D);
        if (c->arch->ffn == SK_FFN_SWIGLU) {
            if ((st = linear(x, &w->w_gate, NULL, x->xn, T, x->hb, F))) return st;
            sk_lora_apply(m->lora, l, SK_LIN_GATE, x->xn, T, x->hb, F);
            if ((st = linear(x, &w->w_up, w->b_up, x->xn, T, x->hb2, F))) return st;
            sk_lora_apply(m->lora, l, SK_LIN_UP, x->xn, T, x->hb2, F);
            if (T <= 8) {
                for (size_t i = 0; i < (size_t)T * F; i++) x->hb[i] = silu(x->hb[i]) * x->hb2[i];
            } else {
                #pragma omp parallel for schedule(static)
                for (size_t i = 0; i < (size_t)T * F; i++) x->hb[i] = silu(x->hb[i]) * x->hb2[i];
            }
        } else {
            if ((st = linear(x, &w->w_up, w->b_up, x->xn, T, x->hb, F))) return st;
            sk_lora_apply(m->lora, l, SK_LIN_UP, x->xn, T, x->hb, F);
            if (T <= 8) {
                for (size_t i = 0; i < (size_t)T * F; i++) x->hb[i] = gelu_tanh(x->hb[i]);
            } else {
                #pragma omp parallel for schedule(static)
                for (size_t i = 0; i < (size_t)T * F; i++) x->hb[i] = gelu_tanh(x->hb[i]);
            }
        }
        observe(x, l, SK_LIN_DOWN, x->hb, T, F);
        if ((st = linear(x, &w->w_down, w->b_down, x->hb, T, x->tmp, D))) return st;
        sk_lora_apply(m->lora, l, SK_LIN_DOWN, x->hb, T, x->tmp, D);
        add_rows(x->x, x->tmp, (size_t)T * D);
    }
    return SHRINK_OK;
}

/* Runs T <= n_batch tokens at positions pos.. through every layer, leaving the last layer's
 * output in x->x. */
static shrink_status forward(shrink_context *x, const int32_t *tokens, int T, int pos) {
    const sk_config *c = &x->model->cfg;
    shrink_status st;
    embed(x, tokens, T, pos);
    for (int l = 0; l < c->n_layers; l++)
        if ((st = layer_forward(x, l, T, pos))) return st;
    observe(x, c->n_layers, SK_LIN_RESID, x->x, T, c->dim);
    return SHRINK_OK;
}

/* ---- one layer at a time (layerwise.c) ---- */

/* The checks of a call on T tokens at positions pos.. of a one-layer step. */
static shrink_status step_check(shrink_context *x, int32_t T, int32_t pos) {
    if (T < 1 || T > x->n_batch || pos < 0 || (int64_t)pos + T > x->n_ctx)
        return sk_error(SHRINK_ERR_RANGE, "a layer step of %d tokens at position %d does not fit "
                        "a context of %d tokens in batches of %d", T, pos, x->n_ctx, x->n_batch);
    return reserve_matmul_scratch(x);
}

shrink_status sk_context_embed(shrink_context *x, const int32_t *tokens, int32_t T, int32_t pos,
                               float *out) {
    shrink_status st = step_check(x, T, pos);
    if (st) return st;
    for (int32_t i = 0; i < T; i++)
        if (tokens[i] < 0 || tokens[i] >= x->model->cfg.vocab_size)
            return sk_error(SHRINK_ERR_RANGE, "token id %d is not in the model's vocabulary of %d "
                            "tokens", tokens[i], x->model->cfg.vocab_size);
    embed(x, tokens, T, pos);
    memcpy(out, x->x, (size_t)T * (size_t)x->model->cfg.dim * sizeof(float));
    return SHRINK_OK;
}

shrink_status sk_context_layer(shrink_context *x, int l, const float *in, float *out, int32_t T,
                               int32_t pos) {
    shrink_status st = step_check(x, T, pos);
    if (st) return st;
    const size_t n = (size_t)T * (size_t)x->model->cfg.dim;
    memcpy(x->x, in, n * sizeof(float));
    if ((st = layer_forward(x, l, T, pos))) return st;
    if (out) memcpy(out, x->x, n * sizeof(float));
    return SHRINK_OK;
}

shrink_status sk_context_head_input(shrink_context *x, const float *in, int32_t T) {
    shrink_status st = step_check(x, T, 0);
    if (st) return st;
    const struct shrink_model *m = x->model;
    norm_rows(m, x->xn, in, T, m->final_norm, m->final_norm_b);
    observe(x, -1, SK_LIN_HEAD, x->xn, T, m->cfg.dim);
    return SHRINK_OK;
}

shrink_status shrink_context_eval(shrink_context *x, const int32_t *tokens, int32_t n,
                                  int32_t pos, float *logits, int32_t n_logits) {
    if (!x || (!tokens && n > 0))
        return sk_error(SHRINK_ERR_ARG, "evaluating tokens: no context or no tokens given");
    const struct shrink_model *m = x->model;
    const sk_config *c = &m->cfg;
    if (n <= 0) return sk_error(SHRINK_ERR_ARG, "evaluating %d tokens: at least one is needed", n);
    if (pos < 0 || pos > x->n_past)
        return sk_error(SHRINK_ERR_RANGE,
                        "evaluating at position %d but the cache holds %d positions",
                        pos, x->n_past);
    if ((int64_t)pos + n > x->n_ctx)
        return sk_error(SHRINK_ERR_RANGE,
                        "positions %d..%d exceed the context of %d",
                        pos, pos + n - 1, x->n_ctx);
    if (logits && (n_logits < 1 || n_logits > n))
        return sk_error(SHRINK_ERR_ARG, "%d logits asked for a batch of tokens; not in [1, %d]",
                        n_logits, n);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return sk_error(SHRINK_ERR_RANGE, "%s: token id %d (at position %d) is not in the "
                            "model's vocabulary of %d tokens", x->model->path ? x->model->path
                            : "model", tokens[i], pos + i, c->vocab_size);
    if (!logits) n_logits = 0;
    shrink_status st = reserve_matmul_scratch(x); /* a no-op unless threads or kernels changed */
    if (st) return st;

    const int D = c->dim, V = c->vocab_size;
    const int first_logit = n - n_logits; /* index in the call of the first logits row */
    for (int32_t done = 0; done < n;) {
        int T = n - done < x->n_batch ? n - done : x->n_batch;
        if ((st = forward(x, tokens + done, T, pos + done))) return st;
        x->n_past = pos + done + T;
        /* logits of the rows of this piece that are among the last n_logits of the call */
        int lo = first_logit > done ? first_logit - done : 0;
        if (n_logits > 0 && lo < T) {
            int nl = T - lo;
            float *hx = x->x + (size_t)lo * D;
            norm_rows(m, x->xn, hx, nl, m->final_norm, m->final_norm_b);
            observe(x, -1, SK_LIN_HEAD, x->xn, nl, D);
            st = sk_matmul(&m->head, x->xn, nl, logits + (size_t)(done + lo - first_logit) * V,
                           V, &x->mm);
            if (st) return st;
        }
        done += T;
    }
    return SHRINK_OK;
}
