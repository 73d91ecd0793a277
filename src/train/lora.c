/*
 * lora.c - LoRA training on a frozen base (train.h: sk_lora_attach; include/shrink.h:
 * shrink_lora_train). Every base parameter is frozen; for each target projection of each
 * layer two trainable parameters are appended to the table - A (r, in) and B (out, r), named
 * "<gguf name>.lora_a" / ".lora_b" - so the optimizer, checkpoints and --resume of the
 * training loop handle them like any other. A linear hook (train.h) adds, after the base
 * product of an adapted projection,
 *     Y += s B (A drop(X))          s = alpha / r (alpha / sqrt(r) with rsLoRA)
 * and in the backward pass
 *     U = A drop(X)ᵀ, dB += s dYᵀ U, dU = s dY B, dA += dUᵀ drop(X), dX += drop'(dU A).
 * Initialization as PEFT: A Kaiming-uniform (a = sqrt(5): U(-1/sqrt(in), 1/sqrt(in))), B = 0.
 * Dropout (PEFT's lora_dropout, on the adapter's input only) draws its mask from a hash of
 * (seed, training pass, layer, projection, element), so the backward pass regenerates it and a
 * resumed run draws the same masks. Every sum runs in a fixed order per output element, so
 * results do not depend on the thread count.
 */
#include "optim.h"
#include "../model/lora.h"

#include <math.h>

static const char *const lin_name[SK_LORA_N_LIN] = {"attn_q", "attn_k", "attn_v",
                                                     "attn_output", "ffn_gate", "ffn_up",
                                                     "ffn_down"};

struct sk_lora_train {
    sk_train_hook   hook;      /* first: the hook pointer is the state's */
    sk_train_model *tm;
    sk_lora_opts    o;
    float           scale;
    int64_t        *ia;        /* (L * 7) index of A in tm->params, -1: not adapted */
    int64_t         n_trainable;
    float          *xd;        /* dropped-out input (N * max in) */
    float          *u, *du;    /* (N * r) */
    size_t          cap_x, cap_u, cap_du;
};

/* (out, in) of projection w. */
static void shape_of(const sk_config *c, int w, int64_t *out, int64_t *in) {
    int64_t D = c->dim, Q = (int64_t)c->n_heads * c->head_dim;
    int64_t K = (int64_t)c->n_kv_heads * c->head_dim, F = c->ffn_dim;
    static const int8_t o_is[7] = {0, 1, 1, 2, 3, 3, 2}, i_is[7] = {2, 2, 2, 0, 2, 2, 3};
    const int64_t v[4] = {Q, K, D, F};
    *out = v[o_is[w]];
    *in = v[i_is[w]];
}

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static shrink_status grow(float **p, size_t *cap, size_t n) {
    if (n <= *cap) return SHRINK_OK;
    sk_free(*p);
    *p = sk_aligned_alloc(64, n * sizeof(float));
    *cap = *p ? n : 0;
    return *p ? SHRINK_OK : sk_error(SHRINK_ERR_NOMEM, "LoRA training: out of memory");
}

/* The dropout threshold of p: an element is dropped when its hash is below it. */
static uint64_t drop_thr(double p) {
    double x = ldexp(p, 64);
    return x >= 0x1p64 ? UINT64_MAX : (uint64_t)x;
}

/* The key of this pass's mask on projection w of layer l. */
static uint64_t drop_key(const struct sk_lora_train *lt, int l, int w) {
    return mix(lt->o.seed ^ mix((uint64_t)lt->hook.passes * 0x9E3779B97F4A7C15ull +
                                (uint64_t)(l * SK_LORA_N_LIN + w)));
}

static int is_dropped(uint64_t key, uint64_t thr, int64_t i) {
    return mix(key + (uint64_t)i * 0x9E3779B97F4A7C15ull) < thr;
}

/* X with the dropout of this pass applied (scaled by 1/(1-p)), or X itself. */
static shrink_status dropped(struct sk_lora_train *lt, int l, int w, const float *X, int N,
                             int64_t in, const float **out) {
    *out = X;
    if (!lt->hook.training || lt->o.dropout <= 0) return SHRINK_OK;
    shrink_status st = grow(&lt->xd, &lt->cap_x, (size_t)N * (size_t)in);
    if (st) return st;
    const uint64_t thr = drop_thr(lt->o.dropout), key = drop_key(lt, l, w);
    const float keep = (float)(1.0 / (1.0 - lt->o.dropout));
    float *xd = lt->xd;
    const int64_t n = (int64_t)N * in;
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) xd[i] = is_dropped(key, thr, i) ? 0.f : X[i] * keep;
    *out = xd;
    return SHRINK_OK;
}

/* U (N, r) = Xd Aᵀ */
static void x_at(float *U, const float *Xd, const float *A, int N, int64_t in, int64_t r) {
    #pragma omp parallel for schedule(static) if ((int64_t)N * r * in > 65536)
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < r; k++)
            U[n * r + k] = sk_vec_dot_f32(A + k * in, Xd + n * in, in);
}

static const sk_train_param *pa(const struct sk_lora_train *lt, int l, int w) {
    int64_t i = lt->ia[(size_t)l * SK_LORA_N_LIN + w];
    return i < 0 ? NULL : &lt->tm->params[i];
}

/* One adapted projection in a pass: its A and B, shapes, the adapter's input Xd (X, or X with
 * this pass's dropout) and U = Xd Aᵀ (N, r). ps->A is NULL when (l, which) is not adapted. */
typedef struct lora_pass {
    const sk_train_param *A, *B;
    int64_t               r, in, out;
    const float          *Xd;
    float                *U;
} lora_pass;

static shrink_status prepare(struct sk_lora_train *lt, int l, sk_linear which, const float *X,
                             int N, lora_pass *ps) {
    memset(ps, 0, sizeof *ps);
    if (which >= SK_LORA_N_LIN || !(ps->A = pa(lt, l, which))) return SHRINK_OK;
    ps->B = ps->A + 1;
    ps->r = ps->A->t.rows;
    ps->in = ps->A->t.cols;
    ps->out = ps->B->t.rows;
    shrink_status st = dropped(lt, l, which, X, N, ps->in, &ps->Xd);
    if (!st) st = grow(&lt->u, &lt->cap_u, (size_t)N * (size_t)ps->r);
    if (st) return st;
    ps->U = lt->u;
    x_at(ps->U, ps->Xd, ps->A->w, N, ps->in, ps->r);
    return SHRINK_OK;
}

static shrink_status hook_forward(sk_train_hook *h, int l, sk_linear which, const float *X,
                                  int N, float *Y) {
    struct sk_lora_train *lt = (struct sk_lora_train *)h;
    lora_pass ps;
    shrink_status st = prepare(lt, l, which, X, N, &ps);
    if (st || !ps.A) return st;
    const int64_t r = ps.r, out = ps.out;
    const float s = lt->scale, *b = ps.B->w, *U = ps.U;
    #pragma omp parallel for schedule(static) if ((int64_t)N * out * r > 65536)
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < out; o++) {
            float acc = 0.f;
            for (int64_t k = 0; k < r; k++) acc += b[o * r + k] * U[n * r + k];
            Y[n * out + o] += s * acc;
        }
    return SHRINK_OK;
}

static shrink_status hook_backward(sk_train_hook *h, int l, sk_linear which, const float *X,
                                   const float *dY, int N, float *dX) {
    struct sk_lora_train *lt = (struct sk_lora_train *)h;
    lora_pass ps;
    shrink_status st = prepare(lt, l, which, X, N, &ps);
    if (st || !ps.A) return st;
    if ((st = grow(&lt->du, &lt->cap_du, (size_t)N * (size_t)ps.r))) return st;
    const sk_train_param *A = ps.A, *B = ps.B;
    const int64_t r = ps.r, in = ps.in, out = ps.out;
    const float *Xd = ps.Xd, *U = ps.U;
    float *dU = lt->du;
    const float s = lt->scale;
    const float *a = A->w, *b = B->w;
    float *ga = A->g, *gb = B->g;
    /* dB[o][k] += s sum_n dY[n][o] U[n][k] */
    #pragma omp parallel for schedule(static) if ((int64_t)N * out * r > 65536)
    for (int64_t o = 0; o < out; o++)
        for (int64_t k = 0; k < r; k++) {
            float acc = 0.f;
            for (int64_t n = 0; n < N; n++) acc += dY[n * out + o] * U[n * r + k];
            gb[o * r + k] += s * acc;
        }
    /* dU[n][k] = s sum_o dY[n][o] B[o][k] */
    #pragma omp parallel for schedule(static) if ((int64_t)N * out * r > 65536)
    for (int64_t n = 0; n < N; n++) {
        float acc[64];
        for (int64_t k0 = 0; k0 < r; k0 += 64) {
            int64_t kn = r - k0 < 64 ? r - k0 : 64;
            for (int64_t k = 0; k < kn; k++) acc[k] = 0.f;
            for (int64_t o = 0; o < out; o++) {
                const float g = dY[n * out + o];
                for (int64_t k = 0; k < kn; k++) acc[k] += g * b[o * r + k0 + k];
            }
            for (int64_t k = 0; k < kn; k++) dU[n * r + k0 + k] = s * acc[k];
        }
    }
    /* dA[k][i] += sum_n dU[n][k] Xd[n][i] */
    #pragma omp parallel for schedule(static) if ((int64_t)N * in * r > 65536)
    for (int64_t k = 0; k < r; k++)
        for (int64_t i = 0; i < in; i++) {
            float acc = 0.f;
            for (int64_t n = 0; n < N; n++) acc += dU[n * r + k] * Xd[n * in + i];
            ga[k * in + i] += acc;
        }
    /* dX[n][i] += drop'(sum_k dU[n][k] A[k][i]): the mask of Xd, scaled as it is */
    const int drop = Xd != X;
    const float keep = drop ? (float)(1.0 / (1.0 - lt->o.dropout)) : 1.f;
    const uint64_t thr = drop ? drop_thr(lt->o.dropout) : 0, key = drop ? drop_key(lt, l, which) : 0;
    #pragma omp parallel for schedule(static) if ((int64_t)N * in * r > 65536)
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < in; i++) {
            if (drop && is_dropped(key, thr, n * in + i)) continue;
            float acc = 0.f;
            for (int64_t k = 0; k < r; k++) acc += dU[n * r + k] * a[k * in + i];
            dX[n * in + i] += keep * acc;
        }
    return SHRINK_OK;
}

shrink_status sk_lora_attach(sk_train_model *tm, const sk_lora_opts *o,
                             struct sk_lora_train **out) {
    *out = NULL;
    const sk_config *c = &tm->cfg;
    if (c->arch->fused_qkv)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "LoRA training on a %s base (fused q|k|v) is "
                        "not supported yet", c->arch->name);
    if (o->rank < 1) return sk_error(SHRINK_ERR_ARG, "LoRA: rank %lld must be >= 1",
                                     (long long)o->rank);
    if (!(o->alpha > 0) || !isfinite(o->alpha))
        return sk_error(SHRINK_ERR_ARG, "LoRA: alpha %g must be > 0", o->alpha);
    if (!(o->dropout >= 0 && o->dropout < 1))
        return sk_error(SHRINK_ERR_ARG, "LoRA: dropout %g is not in [0, 1)", o->dropout);
    if (!(o->targets & ((1 << SK_LORA_N_LIN) - 1)))
        return sk_error(SHRINK_ERR_ARG, "LoRA: no target projection");
    if ((o->targets >> SK_LIN_GATE & 1) && c->arch->ffn != SK_FFN_SWIGLU)
        return sk_error(SHRINK_ERR_ARG, "LoRA: the base model has no gate projection");
    for (int w = 0; w < SK_LORA_N_LIN; w++) {
        int64_t ro, ri;
        shape_of(c, w, &ro, &ri);
        if ((o->targets >> w & 1) && o->rank > (ro < ri ? ro : ri))
            return sk_error(SHRINK_ERR_ARG, "LoRA: rank %lld exceeds %s's smaller side (%lld x "
                            "%lld)", (long long)o->rank, lin_name[w], (long long)ro,
                            (long long)ri);
    }
    struct sk_lora_train *lt = sk_calloc(1, sizeof *lt);
    if (!lt) return sk_error(SHRINK_ERR_NOMEM, "LoRA: out of memory");
    lt->tm = tm;
    lt->o = *o;
    lt->scale = (float)(o->alpha / (o->rslora ? sqrt((double)o->rank) : (double)o->rank));
    lt->hook.forward = hook_forward;
    lt->hook.backward = hook_backward;
    const int L = c->n_layers;
    lt->ia = sk_malloc((size_t)L * SK_LORA_N_LIN * sizeof *lt->ia);
    int64_t n_new = 0, elems = 0;
    for (int w = 0; w < SK_LORA_N_LIN; w++) n_new += 2 * L * (o->targets >> w & 1);
    sk_train_param *np = sk_calloc((size_t)(tm->n_params + n_new), sizeof *np);
    if (!lt->ia || !np) goto nomem;
    memcpy(np, tm->params, (size_t)tm->n_params * sizeof *np);
    int64_t off = tm->n_elems, j = tm->n_params;
    for (int64_t i = 0; i < tm->n_params; i++) np[i].frozen = 1;
    for (int l = 0; l < L; l++)
        for (int w = 0; w < SK_LORA_N_LIN; w++) {
            lt->ia[(size_t)l * SK_LORA_N_LIN + w] = -1;
            if (!(o->targets >> w & 1)) continue;
            int64_t ro, ri;
            shape_of(c, w, &ro, &ri);
            lt->ia[(size_t)l * SK_LORA_N_LIN + w] = j;
            for (int ab = 0; ab < 2; ab++, j++) {
                sk_train_param *p = &np[j];
                snprintf(p->t.name, sizeof p->t.name, "blk.%d.%s.lora_%c", l, lin_name[w],
                         ab ? 'b' : 'a');
                p->t.role = SK_ROLE_COUNT; /* no role: the layers' slots ignore it */
                p->t.layer = l;
                p->t.n_dims = 2;
                p->t.rows = ab ? ro : o->rank;
                p->t.cols = ab ? o->rank : ri;
                p->n = p->t.rows * p->t.cols;
                p->offset = off;
                p->dtype = SHRINK_DTYPE_F32;
                off += (p->n + 15) & ~(int64_t)15;
                elems += p->n;
            }
        }
    const int64_t first = tm->n_params;
    if (sk_train_append(tm, np, n_new, off)) goto nomem;
    /* PEFT's init: A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_, a = sqrt(5)), B = 0 */
    uint64_t rng = o->seed ^ 0x4C6F5241ull; /* "LoRA" */
    for (int64_t i = first; i < first + n_new; i += 2) {
        sk_train_param *pa_i = &tm->params[i];
        const double bound = 1.0 / sqrt((double)pa_i->t.cols);
        for (int64_t e = 0; e < pa_i->n; e++)
            pa_i->w[e] = (float)((2.0 * (double)(sk_rng_next(&rng) >> 11) * 0x1p-53 - 1.0) * bound);
    }
    tm->hook = &lt->hook;
    lt->n_trainable = elems;
    *out = lt;
    return SHRINK_OK;
nomem:
    sk_free(np);
    sk_lora_train_free(lt);
    return sk_error(SHRINK_ERR_NOMEM, "LoRA: out of memory");
}

void sk_lora_train_free(struct sk_lora_train *lt) {
    if (!lt) return;
    if (lt->tm && lt->tm->hook == &lt->hook) lt->tm->hook = NULL;
    sk_free(lt->ia);
    sk_free(lt->xd);
    sk_free(lt->u);
    sk_free(lt->du);
    sk_free(lt);
}

int64_t sk_lora_train_params(const struct sk_lora_train *lt) { return lt ? lt->n_trainable : 0; }

void sk_lora_train_set_calls(struct sk_lora_train *lt, int64_t calls) {
    if (lt) lt->hook.passes = calls;
}

shrink_status sk_lora_train_save(const struct sk_lora_train *lt, const char *path,
                                 const char *const *inputs, int n_inputs) {
    const sk_train_model *tm = lt->tm;
    const sk_config *c = &tm->cfg;
    sk_lora a = {0};
    a.format = "trained";
    a.r = lt->o.rank;
    a.alpha = lt->o.alpha;
    a.user_scale = 1.0;
    a.scale = lt->scale;
    a.layout = c->rope_layout;
    a.n_layers = c->n_layers;
    a.pairs = sk_calloc((size_t)c->n_layers * SK_LORA_N_LIN, sizeof *a.pairs);
    if (!a.pairs) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    for (int l = 0; l < c->n_layers; l++)
        for (int w = 0; w < SK_LORA_N_LIN; w++) {
            const sk_train_param *A = pa(lt, l, w);
            if (!A) continue;
            sk_lora_pair *p = &a.pairs[(size_t)l * SK_LORA_N_LIN + w];
            p->A = A->w;          /* borrowed: a is not freed with sk_lora_free */
            p->B = (A + 1)->w;
            p->r = A->t.rows;
            p->in = A->t.cols;
            p->out = (A + 1)->t.rows;
            a.n_pairs++;
            a.n_params += A->n + (A + 1)->n;
        }
    shrink_status st = sk_lora_write(&a, c, path, inputs, n_inputs);
    sk_free(a.pairs);
    return st;
}

/* "q,k,v,o,gate,up,down" (also q_proj, ..., and "all") -> bitmask over sk_linear; -1 and
 * *bad set on an unknown name. */
static int parse_targets(const char *s, char *bad, size_t cap) {
    static const char *const shortn[SK_LORA_N_LIN] = {"q", "k", "v", "o", "gate", "up", "down"};
    static const char *const peftn[SK_LORA_N_LIN] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                      "gate_proj", "up_proj", "down_proj"};
    int m = 0;
    while (s && *s) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        int found = -1;
        if (n == 3 && !strncmp(s, "all", 3)) found = 99;
        for (int w = 0; w < SK_LORA_N_LIN && found < 0; w++)
            if ((strlen(shortn[w]) == n && !strncmp(s, shortn[w], n)) ||
                (strlen(peftn[w]) == n && !strncmp(s, peftn[w], n)) ||
                (strlen(lin_name[w]) == n && !strncmp(s, lin_name[w], n)))
                found = w;
        if (found < 0) {
            snprintf(bad, cap, "%.*s", (int)(n < 64 ? n : 64), s);
            return -1;
        }
        m |= found == 99 ? (1 << SK_LORA_N_LIN) - 1 : 1 << found;
        s = e ? e + 1 : NULL;
    }
    return m;
}

/* ---- public API ------------------------------------------------------------------------ */

shrink_lora_params shrink_lora_params_default(void) {
    shrink_lora_params p = {.rank = 8, .alpha = 16, .targets = "q,k,v,o,gate,up,down",
                            .dropout = 0, .rslora = false, .out = NULL};
    return p;
}

shrink_status shrink_lora_train(const char *model_path, const shrink_train_params *tp,
                                const shrink_lora_params *lp, shrink_lora_result *r) {
    shrink_lora_result dummy;
    if (!r) r = &dummy;
    memset(r, 0, sizeof *r);
    if (!tp || !lp || !lp->out || !*lp->out)
        return sk_error(SHRINK_ERR_ARG, "lora training: training parameters and an adapter "
                        "output path are required");
    if (lp->rank < 1)
        return sk_error(SHRINK_ERR_ARG, "lora training: rank %lld must be >= 1",
                        (long long)lp->rank);
    char bad[80];
    int targets = parse_targets(lp->targets ? lp->targets : "q,k,v,o,gate,up,down", bad,
                                sizeof bad);
    if (targets < 0)
        return sk_error(SHRINK_ERR_ARG, "lora training: unknown target '%s' (q, k, v, o, "
                        "gate, up, down, or all)", bad);
    if (!targets) return sk_error(SHRINK_ERR_ARG, "lora training: no target given");
    sk_lora_opts o = {.rank = lp->rank, .alpha = lp->alpha, .targets = targets,
                      .dropout = lp->dropout, .rslora = lp->rslora, .seed = tp->seed};
    return sk_train_run(model_path, tp, &o, lp->out, &r->train, &r->n_trainable, &r->n_all);
}
