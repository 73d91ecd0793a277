/*
 * qat.c - quantization-aware training (docs/adapters.md, "QAT"): fake quantization of chosen
 * weight matrices in the training forward pass.
 *
 * Each training or validation pass (sk_train_forward_backward, sk_train_loss, ...) first
 * quantizes the fp32 master ("latent") weights W of every QAT parameter row by row through the
 * dtype table's quantizer (the one `shrink quantize` uses without an importance matrix: the
 * row's `quantize`, else `from_f32`), block scales recomputed from the current weights, and
 * dequantizes them again into Ŵ (p->wq); the layers then run on Ŵ. The backward pass of a
 * product gives dX = dY·Ŵ and dW = dYᵀ·X, which does not involve the weights: that dW is
 * dL/dŴ, added to W's gradient unchanged (the straight-through estimator), and the optimizer
 * steps W. The final model is written from W through the same row quantizer
 * (sk_qat_quantize_rows), so its dequantized weights are Ŵ bit for bit.
 */
#include "train.h"
#include "../formats/qmix.h"

#include <math.h>
#include <omp.h>

/* The target bits of a parameter's role (SK_QAT_* of train.h); 0: never quantized. */
static int role_bits(sk_role r) {
    switch (r) {
    case SK_ROLE_WQ:     return 1 << SK_LIN_Q;
    case SK_ROLE_WK:     return 1 << SK_LIN_K;
    case SK_ROLE_WV:     return 1 << SK_LIN_V;
    case SK_ROLE_WQKV:   return (1 << SK_LIN_Q) | (1 << SK_LIN_K) | (1 << SK_LIN_V);
    case SK_ROLE_WO:     return 1 << SK_LIN_O;
    case SK_ROLE_W_GATE: return 1 << SK_LIN_GATE;
    case SK_ROLE_W_UP:   return 1 << SK_LIN_UP;
    case SK_ROLE_W_DOWN: return 1 << SK_LIN_DOWN;
    case SK_ROLE_HEAD:   return SK_QAT_HEAD;
    case SK_ROLE_TOK_EMB: return SK_QAT_EMBED;
    default:             return 0;
    }
}

shrink_status sk_qat_parse_targets(const char *list, int *out) {
    static const struct { const char *name; int bits; } names[] = {
        {"q", 1 << SK_LIN_Q}, {"k", 1 << SK_LIN_K}, {"v", 1 << SK_LIN_V},
        {"o", 1 << SK_LIN_O}, {"gate", 1 << SK_LIN_GATE}, {"up", 1 << SK_LIN_UP},
        {"down", 1 << SK_LIN_DOWN}, {"embed", SK_QAT_EMBED}, {"output", SK_QAT_HEAD},
        {"all", SK_QAT_ALL}};
    *out = 0;
    if (!list) {
        *out = SK_QAT_ALL;
        return SHRINK_OK;
    }
    const char *s = list;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        int bits = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0] && !bits; i++)
            if (strlen(names[i].name) == n && !strncmp(names[i].name, s, n)) bits = names[i].bits;
        if (!bits)
            return sk_error(SHRINK_ERR_ARG, "QAT targets '%s': '%.*s' is not one of q, k, v, o, "
                            "gate, up, down, embed, output, all", list, (int)n, s);
        *out |= bits;
        s += n + (e != NULL);
    }
    if (!*out) return sk_error(SHRINK_ERR_ARG, "QAT targets '%s': empty", list);
    return SHRINK_OK;
}

/* A tied model's token embedding is the head too: a target when either is. */
static int is_target(const sk_train_model *tm, const sk_train_param *p, int targets) {
    if (p->t.n_dims != 2) return 0;
    int bits = role_bits(p->t.role);
    if (p->t.role == SK_ROLE_TOK_EMB && tm->cfg.tied) bits |= SK_QAT_HEAD;
    return (bits & targets) != 0;
}

/* The type parameter p is fake-quantized to (the scheme's, or its fallback where the block does
 * not divide the rows, as `shrink quantize` writes it, f16 at the end of the chain; under a
 * mix, the mix's type for this matrix by the rules `shrink quantize --scheme MIX` applies:
 * formats/qmix.c), or -1: not a target. */
static int qat_type(const sk_train_model *tm, const sk_train_param *p, shrink_dtype dtype,
                    sk_mix mix, int targets) {
    if (!is_target(tm, p, targets)) return -1;
    shrink_dtype dt;
    if (mix != SK_MIX_NONE) {
        const sk_config *c = &tm->cfg;
        int is_70b, n_gqa;
        sk_mix_facts(c, &is_70b, &n_gqa);
        dt = sk_mix_type(mix, p->t.role, p->t.cols, p->t.layer, c->n_layers, !c->tied, is_70b,
                         n_gqa, NULL);
    } else {
        dt = sk_gguf_fallback(dtype, p->t.cols);
    }
    /* a fallback to f16 is what `shrink quantize` writes too: fake-quantized to f16 */
    return sk_dtype_quantized(dt) || dt == SHRINK_DTYPE_F16 ? (int)dt : -1;
}

static shrink_status attach(sk_train_model *tm, shrink_dtype dtype, sk_mix mix, int targets) {
    if (mix == SK_MIX_NONE &&
        ((int)dtype < 0 || dtype >= SHRINK_DTYPE_COUNT || !sk_dtype_quantized(dtype) ||
         dtype == SHRINK_DTYPE_W8A8 || dtype == SHRINK_DTYPE_W8A8_STATIC))
        return sk_error(SHRINK_ERR_ARG, "QAT: '%s' is not a weight quantization type (q4_0, "
                        "q8_0, q4_K, int4_g128, nf4, ...)",
                        (int)dtype >= 0 && dtype < SHRINK_DTYPE_COUNT ? sk_dtype(dtype)->name
                                                                     : "?");
    int64_t n = 0;
    for (int64_t i = 0; i < tm->n_params; i++)
        if (qat_type(tm, &tm->params[i], dtype, mix, targets) >= 0) n += tm->params[i].n;
    if (!n) return sk_error(SHRINK_ERR_ARG, "QAT: no matrix of the model is a target");
    sk_free(tm->wq_all);
    if (!(tm->wq_all = sk_aligned_alloc(64, (size_t)n * sizeof(float))))
        return sk_error(SHRINK_ERR_NOMEM, "QAT: out of memory for the fake-quantized weights "
                        "(%" PRId64 " floats)", n);
    float *w = tm->wq_all;
    for (int64_t i = 0; i < tm->n_params; i++) {
        sk_train_param *p = &tm->params[i];
        int dt = qat_type(tm, p, dtype, mix, targets);
        if (dt < 0) continue;
        p->qat_dtype = dt;
        p->wq = w;
        w += p->n;
    }
    tm->qat = 1;
    tm->qat_mix = (int)mix;
    tm->qat_fresh = 0;
    return SHRINK_OK;
}

shrink_status sk_qat_attach(sk_train_model *tm, shrink_dtype dtype, int targets) {
    return attach(tm, dtype, SK_MIX_NONE, targets);
}

shrink_status sk_qat_attach_opts(sk_train_model *tm, const sk_qat_opts *o) {
    sk_mix mix = sk_mix_find(o->scheme);
    shrink_dtype dt = SHRINK_DTYPE_F32;
    if (mix == SK_MIX_NONE && shrink_dtype_parse(o->scheme, &dt) != SHRINK_OK)
        return sk_error(SHRINK_ERR_ARG, "QAT: '%s' is not a dtype or scheme of shrink quantize "
                        "(q4_0, q8_0, q4_K, int4_g128, nf4, q4_K_M, ...)", o->scheme);
    if (o->learned && mix != SK_MIX_NONE)
        return sk_error(SHRINK_ERR_ARG, "QAT: learned scales are for q4_0, q8_0, int4_g32/g64/"
                        "g128 and nf4 (one f16 scale per block); %s is a mix of K-quants "
                        "(super-block scales): use --qat-scales recompute", o->scheme);
    if (o->learned && !sk_qat_lsq_supported(dt))
        return sk_error(SHRINK_ERR_ARG, "QAT: learned scales are for q4_0, q8_0, int4_g32/g64/"
                        "g128 and nf4 (one f16 scale per block), not %s: use --qat-scales "
                        "recompute", o->scheme);
    if (!(o->scale_lr >= 0) || !isfinite(o->scale_lr))
        return sk_error(SHRINK_ERR_ARG, "QAT: scale learning rate %g must be >= 0", o->scale_lr);
    shrink_status st = attach(tm, dt, mix, o->targets);
    if (st || !o->learned) return st;
    for (int64_t i = 0; i < tm->n_params; i++) {
        const sk_train_param *p = &tm->params[i];
        if (p->wq && p->qat_dtype != SHRINK_DTYPE_F16 &&
            !sk_qat_lsq_supported((shrink_dtype)p->qat_dtype))
            return sk_error(SHRINK_ERR_ARG, "QAT: learned scales: tensor '%s' (rows of %lld) "
                            "falls back to %s, which has no learned-scale form", p->t.name,
                            (long long)p->t.cols, sk_dtype(p->qat_dtype)->name);
        if (p->wq && p->frozen)
            return sk_error(SHRINK_ERR_ARG, "QAT: learned scales on a frozen matrix ('%s')",
                            p->t.name);
    }
    float mult = o->scale_lr > 0 && o->lr > 0 ? (float)(o->scale_lr / o->lr) : 1.0f;
    return sk_qat_lsq_attach(tm, mult);
}

/* Per-tensor types (int8_t) scale every row by the whole tensor's range. */
static void tensor_params(const float *w, int64_t n, shrink_dtype dt, sk_qparams *qp) {
    memset(qp, 0, sizeof *qp);
    if (dt != SHRINK_DTYPE_INT8_T && dt != SHRINK_DTYPE_INT8_T_ASYM) return;
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (w[i] < lo) lo = w[i];
        if (w[i] > hi) hi = w[i];
    }
    if (!(lo <= hi)) lo = hi = 0.0f;
    qp->tensor_range = 1;
    qp->tmin = lo;
    qp->tmax = hi;
}

/* One row as `shrink quantize` quantizes it without an importance matrix. */
static void quantize_row(shrink_dtype dt, const float *x, void *y, int64_t cols,
                         const sk_qparams *qp) {
    const sk_dtype_traits *d = sk_dtype(dt);
    if (d->quantize) d->quantize(x, y, cols, qp);
    else d->from_f32(x, y, cols);
}

shrink_status sk_qat_quantize_rows(const sk_train_model *tm, const sk_train_param *p,
                                   int64_t row0, int64_t n_rows, void *dst) {
    if (p->qat_sp) { /* learned scales */
        sk_qat_lsq_rows(tm, p, row0, n_rows, dst);
        return SHRINK_OK;
    }
    const shrink_dtype dt = (shrink_dtype)p->qat_dtype;
    const int64_t cols = p->t.cols;
    const size_t rb = (size_t)sk_dtype_row_bytes(dt, cols);
    sk_qparams qp;
    tensor_params(p->w, p->n, dt, &qp);
    for (int64_t r = 0; r < n_rows; r++)
        quantize_row(dt, p->w + (row0 + r) * cols, (uint8_t *)dst + (size_t)r * rb, cols, &qp);
    return SHRINK_OK;
}

shrink_status sk_qat_refresh(sk_train_model *tm) {
    if (!tm->qat) return SHRINK_OK;
    /* frozen weights (LoRA's base) do not change: quantized once */
    int all_frozen = 1;
    for (int64_t i = 0; i < tm->n_params; i++)
        if (tm->params[i].wq && !tm->params[i].frozen) all_frozen = 0;
    if (all_frozen && tm->qat_fresh) return SHRINK_OK;
    int64_t max_cols = 0;
    for (int64_t i = 0; i < tm->n_params; i++)
        if (tm->params[i].wq && tm->params[i].t.cols > max_cols) max_cols = tm->params[i].t.cols;
    const int nth = omp_get_max_threads();
    size_t rb_max = 0;
    for (int64_t i = 0; i < tm->n_params; i++) {
        const sk_train_param *p = &tm->params[i];
        if (!p->wq) continue;
        size_t rb = (size_t)sk_dtype_row_bytes((shrink_dtype)p->qat_dtype, p->t.cols);
        if (rb > rb_max) rb_max = rb;
    }
    uint8_t *buf = sk_malloc((size_t)nth * rb_max);
    if (!buf) return sk_error(SHRINK_ERR_NOMEM, "QAT: out of memory");
    for (int64_t i = 0; i < tm->n_params; i++) {
        const sk_train_param *p = &tm->params[i];
        if (!p->wq || (p->frozen && tm->qat_fresh)) continue;
        if (p->qat_sp) {
            sk_qat_lsq_refresh(tm, p);
            continue;
        }
        const shrink_dtype dt = (shrink_dtype)p->qat_dtype;
        const sk_dtype_traits *d = sk_dtype(dt);
        const int64_t rows = p->t.rows, cols = p->t.cols;
        sk_qparams qp;
        tensor_params(p->w, p->n, dt, &qp);
        #pragma omp parallel for schedule(static) num_threads(nth)
        for (int64_t r = 0; r < rows; r++) {
            uint8_t *y = buf + (size_t)omp_get_thread_num() * rb_max;
            quantize_row(dt, p->w + r * cols, y, cols, &qp);
            d->to_f32(y, p->wq + r * cols, cols);
        }
    }
    sk_free(buf);
    tm->qat_fresh = 1;
    return SHRINK_OK;
}

int64_t sk_qat_elements(const sk_train_model *tm) {
    int64_t n = 0;
    for (int64_t i = 0; i < tm->n_params; i++)
        if (tm->params[i].wq) n += tm->params[i].n;
    return n;
}

/* QAT's final GGUF: the type of tensor t (vectors f32; QAT matrices their type; other matrices
 * the source's dtype, with the GGUF fallback of its block). */
static shrink_dtype qat_tensor_dtype(void *user, const sk_wtensor *t, int64_t i) {
    (void)i;
    const sk_train_model *tm = user;
    if (t->n_dims == 1) return SHRINK_DTYPE_F32;
    const sk_train_param *p = sk_train_param_of(tm, t);
    if (p && p->wq) return (shrink_dtype)p->qat_dtype;
    shrink_dtype d = p ? p->dtype : tm->dtype;
    return sk_dtype(d)->block == 1 && d <= SHRINK_DTYPE_BF16 ? d
                                                              : sk_gguf_fallback(d, t->cols);
}

/* general.file_type of a QAT model: the type of most QAT elements. */
static int file_dtype(const sk_train_model *tm) {
    int64_t n[SHRINK_DTYPE_COUNT] = {0};
    int best = 0;
    for (int64_t i = 0; i < tm->n_params; i++)
        if (tm->params[i].wq) n[tm->params[i].qat_dtype] += tm->params[i].n;
    for (int d = 1; d < SHRINK_DTYPE_COUNT; d++)
        if (n[d] > n[best]) best = d;
    return best;
}

void sk_qat_write_opts(const sk_train_model *tm, sk_write_opts *o) {
    o->dtype = file_dtype(tm);
    if (tm->qat_mix) o->file_type = sk_mix_file_type((sk_mix)tm->qat_mix); /* as quantize */
    o->tensor_dtype = qat_tensor_dtype;
    o->tensor_user = (void *)(uintptr_t)tm;
}
