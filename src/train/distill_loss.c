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
    double loss = 0.0, ce_all = 0.0, kl_all = 0.0;
    for (int n0 = 0; n0 < N; n0 += chunk) {
        const int c = N - n0 < chunk ? N - n0 : chunk;
        if ((st = sk_matmul(&Hm, X + (size_t)n0 * D, c, logits, V, scratch))) return st;
        double ce_part = 0.0, kl_part = 0.0;
        #pragma omp parallel for schedule(static) reduction(+ : ce_part, kl_part) if (c > 1)
        for (int r = 0; r < c; r++) {
            float *l = logits + (size_t)r * V;
            const int64_t row = n0 + r;
            const int tgt = targets[row];
            const int32_t *ix = t->idx ? t->idx + row * K : NULL;
            const float *lp = t->logp + row * K;
            float mx = -INFINITY;
            for (int i = 0; i < V; i++) mx = l[i] > mx ? l[i] : mx;
            double s1 = 0.0, stau = 0.0;
            if (tau == 1.0) { /* exp(d * itau) == exp(d): one exponential per logit */
                for (int i = 0; i < V; i++) s1 += exp((double)l[i] - mx);
                stau = s1;
            } else {
                for (int i = 0; i < V; i++) {
                    const double d = (double)l[i] - mx;
                    s1 += exp(d);
                    stau += exp(d * itau);
                }
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
                if (tau == 1.0) { /* the same values, one exponential */
                    for (int i = 0; i < V; i++) {
                        const double e = exp((double)l[i] - mx - ls1);
                        l[i] = (float)(ka * e + kc * e);
                    }
                } else {
                    for (int i = 0; i < V; i++) {
                        const double d = (double)l[i] - mx;
                        l[i] = (float)(ka * exp(d * itau - lst) + kc * exp(d - ls1));
                    }
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
