/*
 * adamw.c - the optimizers: AdamW (decoupled weight decay, bias correction) and SGD with
 * optional momentum, over a table of fp32 tensors with freeze flags and per-element masks;
 * global gradient norm for clipping. The update formulas are in optim.h (they follow
 * torch.optim.AdamW and torch.optim.SGD, and llm.c's adamw_kernel). The state (m, v) is fp32,
 * one block for all tensors. Element-wise loops are split between threads; the result does
 * not depend on the split. The gradient norm is a fixed-order double sum.
 */
#include "optim.h"

#include <math.h>

/* Element j of tensor p is not trained (mask 0, or mask factor 0). */
#define HELD(p, j) (((p)->mask && !(p)->mask[j]) || ((p)->mask_f32 && (p)->mask_f32[j] == 0.0f))

sk_optim_params sk_optim_params_default(void) {
    return (sk_optim_params){.kind = SK_OPTIM_ADAMW, .beta1 = 0.9, .beta2 = 0.999,
                             .eps = 1e-8, .wd = 0.0, .momentum = 0.0};
}

int sk_optim_parse(const char *name) {
    if (name && !strcmp(name, "adamw")) return SK_OPTIM_ADAMW;
    if (name && !strcmp(name, "sgd")) return SK_OPTIM_SGD;
    return -1;
}

shrink_status sk_optim_create(sk_optim **out, const sk_optim_params *p,
                              const sk_opt_param *params, int n) {
    *out = NULL;
    sk_optim *o = sk_calloc(1, sizeof *o);
    if (!o) return sk_error(SHRINK_ERR_NOMEM, "out of memory for the optimizer");
    o->p        = *p;
    o->n_params = n;
    o->off      = sk_calloc(n > 0 ? (size_t)n : 1, sizeof *o->off);
    if (!o->off) goto out_nomem;
    for (int i = 0; i < n; i++) { /* a frozen tensor has no state (LoRA's base) */
        o->off[i] = o->total;
        if (!params[i].frozen) o->total += params[i].n;
    }
    int need_m = p->kind == SK_OPTIM_ADAMW || p->momentum != 0.0;
    int need_v = p->kind == SK_OPTIM_ADAMW;
    if (need_m && !(o->m = sk_calloc((size_t)o->total, sizeof(float)))) goto out_nomem;
    if (need_v && !(o->v = sk_calloc((size_t)o->total, sizeof(float)))) goto out_nomem;
    *out = o;
    return SHRINK_OK;
out_nomem:;
    const int64_t total = o ? o->total : 0;
    sk_optim_free(o);
    return sk_error(SHRINK_ERR_NOMEM, "optimizer: no memory for the state of %" PRId64
                    " parameters", total);
}

void sk_optim_free(sk_optim *o) {
    if (!o) return;
    sk_free(o->off);
    sk_free(o->m);
    sk_free(o->v);
    sk_free(o);
}

/* ==== gradient norm and clipping ========================================================== */

double sk_grad_norm(const sk_opt_param *params, int n, double grad_scale) {
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const sk_opt_param *p = &params[i];
        if (p->frozen) continue;
        double s = 0.0;
        for (int64_t j = 0; j < p->n; j++)
            if (!HELD(p, j)) s += (double)p->g[j] * (double)p->g[j];
        total += s;
    }
    return sqrt(total) * fabs(grad_scale);
}

double sk_clip_factor(double norm, double clip) {
    if (clip <= 0.0 || !(norm > clip)) return 1.0;
    return clip / norm;
}

/* ==== updates ============================================================================= */

/* AdamW on one tensor: m, v are its slices of the state. */
static void adamw_tensor(const sk_opt_param *p, float *m, float *v, float lr, float b1, float b2,
                         float eps, float wd, float c1, float c2, float scale) {
    #pragma omp parallel for schedule(static) if (p->n > 65536)
    for (int64_t j = 0; j < p->n; j++) {
        if (HELD(p, j)) continue;
        float g = p->g[j] * scale;
        m[j] = b1 * m[j] + (1.0f - b1) * g;
        v[j] = b2 * v[j] + (1.0f - b2) * g * g;
        float mhat = m[j] / c1;
        float vhat = v[j] / c2;
        float w = p->w[j];
        w -= lr * wd * w;
        w -= lr * mhat / (sqrtf(vhat) + eps);
        p->w[j] = w;
    }
}

/* SGD (momentum mu, buffer m or NULL) on one tensor. */
static void sgd_tensor(const sk_opt_param *p, float *m, float lr, float mu, float wd,
                       float scale) {
    #pragma omp parallel for schedule(static) if (p->n > 65536)
    for (int64_t j = 0; j < p->n; j++) {
        if (HELD(p, j)) continue;
        float d = p->g[j] * scale;
        if (m) d = m[j] = mu * m[j] + d;
        float w = p->w[j];
        w -= lr * wd * w;
        w -= lr * d;
        p->w[j] = w;
    }
}

void sk_optim_step(sk_optim *o, const sk_opt_param *params, int n, double lr,
                   double grad_scale) {
    SHRINK_ASSERT(n == o->n_params);
    o->t++;
    const sk_optim_params *op = &o->p;
    float c1 = (float)(1.0 - pow(op->beta1, (double)o->t));
    float c2 = (float)(1.0 - pow(op->beta2, (double)o->t));
    for (int i = 0; i < n; i++) {
        const sk_opt_param *p = &params[i];
        SHRINK_ASSERT((p->frozen ? 0 : p->n) == (i + 1 < n ? o->off[i + 1] : o->total) - o->off[i]);
        if (p->frozen) continue;
        float wd = p->decay ? (float)op->wd : 0.0f;
        float *m = o->m ? o->m + o->off[i] : NULL;
        const float lr_i = (float)lr * (p->lr_mult > 0 ? p->lr_mult : 1.0f);
        if (op->kind == SK_OPTIM_ADAMW)
            adamw_tensor(p, m, o->v + o->off[i], lr_i, (float)op->beta1, (float)op->beta2,
                         (float)op->eps, wd, c1, c2, (float)grad_scale);
        else
            sgd_tensor(p, m, lr_i, (float)op->momentum, wd, (float)grad_scale);
    }
}
