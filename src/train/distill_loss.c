/*
 * distill_loss.c - the knowledge-distillation loss (train.h): alpha tau^2 KL(p_t || softmax(z /
 * tau)) + (1 - alpha) CE(z, y), fused with the classifier like classifier_forward_backward (only
 * chunk x V student logits exist at a time), and the teacher side: one row of teacher logits
 * turned into log-probabilities at tau over the vocabulary or over its top K.
 * Formulas and gradient: train.h; checked by tests/test_distill.c against a float64 reference
 * (tools/ref_check/distill_ref.py) and central finite differences.
 */
#include "train.h"

#include <math.h>
#include <omp.h>
#include <string.h>

void sk_distill_teacher_row(const float *z, int V, float tau, int K, int32_t *idx, float *logp) {
    if (K >= V) {
        double mx = -INFINITY, s = 0.0;
        for (int i = 0; i < V; i++) mx = z[i] > mx ? z[i] : mx;
        for (int i = 0; i < V; i++) s += exp(((double)z[i] - mx) / tau);
        const double ls = log(s);
        for (int i = 0; i < V; i++) logp[i] = (float)(((double)z[i] - mx) / tau - ls);
        return;
    }
    sk_distill_top_k(z, V, K, idx, logp);
    sk_distill_top_k_logp(logp, K, tau);
}

void sk_distill_top_k(const float *z, int V, int K, int32_t *idx, float *zk) {
    /* top K by insertion into idx (sorted by decreasing logit, ties: lower id first) */
    int n = 0;
    for (int i = 0; i < V; i++) {
        if (n == K && !(z[i] > z[idx[K - 1]])) continue;
        int j = n < K ? n++ : K - 1;
        while (j > 0 && z[i] > z[idx[j - 1]]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    for (int k = 0; k < K; k++) zk[k] = z[idx[k]];
}

void sk_distill_top_k_logp(float *zk, int K, float tau) {
    const double mx = zk[0];
    double s = 0.0;
    for (int k = 0; k < K; k++) s += exp(((double)zk[k] - mx) / tau);
    const double ls = log(s);
    for (int k = 0; k < K; k++) zk[k] = (float)(((double)zk[k] - mx) / tau - ls);
}

shrink_status sk_distill_classifier_forward_backward(double *loss_out, float *dX, float *dhead,
                                                     const float *X, const float *head,
                                                     const int32_t *targets,
                                                     const sk_distill_rows *t, int N, int D,
                                                     int V, float scale, float *work, int chunk,
                                                     sk_scratch *scratch, double *ce_sum,
                                                     double *kl_sum) {
    shrink_status st;
    float *logits = work; /* (chunk, V) */
    const sk_mat Hm = {.dtype = SHRINK_DTYPE_F32, .rows = V, .cols = D, .data = head};
    const double a = t->alpha, tau = t->tau, itau = 1.0 / tau;
    const int K = t->K;
    const sk_kernel_set *ks = sk_kernels();
    double loss = 0.0, ce_all = 0.0, kl_all = 0.0;
    for (int n0 = 0; n0 < N; n0 += chunk) {
        const int c = N - n0 < chunk ? N - n0 : chunk;
        const int32_t *cidx = t->idx ? t->idx + (size_t)n0 * K : NULL; /* the chunk's rows */
        const float   *clogp = t->logp ? t->logp + (size_t)n0 * K : NULL;
        if (t->fill && (st = t->fill(t->fill_ctx, n0, c, &cidx, &clogp))) return st;
        if ((st = sk_matmul(&Hm, X + (size_t)n0 * D, c, logits, V, scratch))) return st;
        double ce_part = 0.0, kl_part = 0.0;
        if (tau == 1.0) { /* one softmax: the cross-entropy's float kernel, in place */
            #pragma omp parallel for schedule(static) reduction(+ : ce_part, kl_part) if (c > 1)
            for (int r = 0; r < c; r++) {
                float *l = logits + (size_t)r * V;
                const int32_t *ix = cidx ? cidx + (size_t)r * K : NULL;
                const float *lp = clogp + (size_t)r * K;
                const int tgt = targets[n0 + r];
                const float lt = l[tgt];
                float mx = -INFINITY;
                for (int i = 0; i < V; i++) mx = l[i] > mx ? l[i] : mx;
                /* KL = sum p (lp - (z - mx)) + log s sum p, before l becomes exp(z - mx) */
                double kl = 0.0, psum = 0.0;
                for (int k = 0; k < K; k++) {
                    const double pk = exp((double)lp[k]);
                    if (pk > 0) {
                        kl += pk * ((double)lp[k] - ((double)l[ix ? ix[k] : k] - mx));
                        psum += pk;
                    }
                }
                const float sf = ks->exp_sum_f32(l, V, mx); /* l[i] = exp(l[i] - mx) */
                const double ls = log((double)sf);
                ce_part += (double)mx + ls - (double)lt;
                kl_part += kl + ls * psum;
                if (dX || dhead) {
                    /* g = scale (alpha + 1 - alpha) softmax(z) - scale alpha p - scale (1 - alpha) [y]:
                     * at alpha 0 the cross-entropy's own floats */
                    const double ka = scale * a, kc = scale * (1.0 - a);
                    const float kf = (float)(ka + kc) / sf;
                    for (int i = 0; i < V; i++) l[i] *= kf;
                    if (ka != 0.0)
                        for (int k = 0; k < K; k++)
                            l[ix ? ix[k] : k] -= (float)(ka * exp((double)lp[k]));
                    l[tgt] -= (float)kc;
                }
            }
        } else
        #pragma omp parallel for schedule(static) reduction(+ : ce_part, kl_part) if (c > 1)
        for (int r = 0; r < c; r++) {
            float *l = logits + (size_t)r * V;
            const int64_t row = n0 + r;
            const int tgt = targets[row];
            const int32_t *ix = cidx ? cidx + (size_t)r * K : NULL;
            const float *lp = clogp + (size_t)r * K;
            float mx = -INFINITY;
            for (int i = 0; i < V; i++) mx = l[i] > mx ? l[i] : mx;
            double s1 = 0.0, stau = 0.0; /* tau != 1: two softmaxes, in double */
            for (int i = 0; i < V; i++) {
                const double d = (double)l[i] - mx;
                s1 += exp(d);
                stau += exp(d * itau);
            }
            const double ls1 = log(s1), lst = log(stau);
            /* CE = mx + log s1 - z_y;  KL = sum_S p (log p - log q), log q_i = (z_i - mx)/tau - lst */
            ce_part += (double)mx + ls1 - (double)l[tgt];
            double kl = 0.0;
            for (int k = 0; k < K; k++) {
                const int i = ix ? ix[k] : k;
                const double p = exp((double)lp[k]);
                if (p > 0) kl += p * ((double)lp[k] - (((double)l[i] - mx) * itau - lst));
            }
            kl_part += kl;
            if (dX || dhead) {
                /* g_j = scale (alpha tau q_j + (1 - alpha) s_j) - scale alpha tau p_j - scale (1 - alpha) [j = y] */
                const double ka = scale * a * tau, kc = scale * (1.0 - a);
                for (int i = 0; i < V; i++) {
                    const double d = (double)l[i] - mx;
                    l[i] = (float)(ka * exp(d * itau - lst) + kc * exp(d - ls1));
                }
                for (int k = 0; k < K; k++) {
                    const int i = ix ? ix[k] : k;
                    l[i] -= (float)(ka * exp((double)lp[k]));
                }
                l[tgt] -= (float)kc;
            }
        }
        ce_all += ce_part;
        kl_all += kl_part;
        if ((dX || dhead) &&
            (st = sk_matmul_backward(dX ? dX + (size_t)n0 * D : NULL, dhead, NULL, logits,
                                     X + (size_t)n0 * D, &Hm, c, D, V, scratch)))
            return st;
    }
    loss = a * tau * tau * kl_all + (1.0 - a) * ce_all;
    if (ce_sum) *ce_sum = ce_all;
    if (kl_sum) *kl_sum = kl_all;
    *loss_out = loss;
    return SHRINK_OK;
}

int64_t sk_distill_feed_cap(int N, int T, int V) {
    const int64_t c = (int64_t)sk_classifier_chunk(N, V) + T;
    return c < N ? c : N;
}

shrink_status sk_distill_feed_rows(void *feed, int64_t r0, int n, const int32_t **idx,
                                   const float **logp) {
    sk_distill_feed *f = feed;
    const int T = f->T, V = f->V, K = f->K;
    if (r0 < f->base || r0 > f->base + f->have || n < 0 || r0 + n > f->n_rows)
        return sk_error(SHRINK_ERR_ARG, "distill: teacher rows [%lld, %lld) asked out of order",
                        (long long)r0, (long long)(r0 + n));
    const int64_t drop = r0 - f->base; /* rows the classifier is done with */
    if (drop) {
        f->have -= drop;
        memmove(f->logp, f->logp + drop * K, (size_t)f->have * K * sizeof(float));
        if (K < V) memmove(f->idx, f->idx + drop * K, (size_t)f->have * K * sizeof(int32_t));
        f->base = r0;
    }
    while (f->base + f->have < r0 + n) {
        if (f->have + T > f->cap)
            return sk_error(SHRINK_ERR_ARG, "distill: %d teacher rows asked at once, %lld held",
                            n, (long long)f->cap);
        const int64_t j = (f->base + f->have) / T; /* base + have ends a window */
        float *z = K == V ? f->logp + f->have * V : f->z;
        shrink_status st = f->window(f->ctx, j, z);
        if (st) return st;
        for (int t = 0; t < T; t++) {
            const int64_t row = f->have + t;
            sk_distill_teacher_row(z + (size_t)t * V, V, f->tau, K,
                                   K < V ? f->idx + row * K : NULL, f->logp + row * K);
        }
        f->have += T;
    }
    *idx  = K < V ? f->idx + (r0 - f->base) * K : NULL;
    *logp = f->logp + (r0 - f->base) * K;
    return SHRINK_OK;
}
