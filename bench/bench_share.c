/*
 * bench_share.c - how close the same matrix of different layers is (issue 15, cross-layer
 * sharing: a layer could point to another layer's stored copy, optionally plus a low-rank
 * delta, only if the two are close). For every matrix kind (q, k, v, o, gate, up, down) and
 * layer i > 0 it finds the earlier layer j nearest in relative Frobenius distance
 * ||W_i - W_j|| / ||W_i||, and the distance left after the best rank-r correction of the
 * difference (r = --rank, plain SVD of W_i - W_j, so W_i ~ W_j + B A); for scale, the same for
 * two independent random matrices of W_i's size and norm is sqrt(2) = 1.414 without a delta,
 * 1 is dropping W_i, and the last column is W_i's own rank-r truncation (no sharing, the same
 * r (rows + cols) parameters as the delta): sharing pays only below it.
 * Prints a markdown table (median and best over the layers per kind). Measures; never asserts.
 *
 * usage: bench_share MODEL [--rank R]   (default rank 32)
 */
#include "lowrank/lowrank.h"
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float *mat_f32(const sk_mat *W) {
    float *w = malloc((size_t)(W->rows * W->cols) * sizeof *w);
    for (int64_t r = 0; r < W->rows; r++) sk_mat_row_f32(W, r, w + r * W->cols);
    return w;
}

static double fro(const float *a, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * a[i];
    return sqrt(s);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [--rank R]\n", argv[0]);
        return 2;
    }
    int64_t rank = 32;
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--rank") && i + 1 < argc) rank = atoll(argv[++i]);
    shrink_load_params lp = shrink_load_params_default();
    lp.no_tokenizer = true;
    shrink_model *m = NULL;
    if (shrink_model_load(&m, argv[1], &lp) != SHRINK_OK) {
        fprintf(stderr, "%s\n", shrink_last_error());
        return 1;
    }
    const sk_config *c = &m->cfg;
    static const char *const kinds[] = {"q", "k", "v", "o", "gate", "up", "down"};
    printf("# bench_share %s (%d layers), delta rank %lld\n\n| matrix | shape | nearest earlier "
           "layer: median rel. distance | best | after a rank-%lld delta: median | best | W_i's own "
           "rank-%lld truncation: median |\n"
           "| --- | --- | --- | --- | --- | --- | --- |\n", argv[1], c->n_layers, (long long)rank,
           (long long)rank, (long long)rank);
    for (int kd = 0; kd < 7; kd++) {
        if (c->n_layers < 2) break;
        double *d0 = calloc((size_t)c->n_layers, sizeof *d0), *d1 = calloc((size_t)c->n_layers,
                                                                           sizeof *d1);
        double *d2 = calloc((size_t)c->n_layers, sizeof *d2);
        int64_t rows = 0, cols = 0;
        int n = 0;
        for (int i = 1; i < c->n_layers; i++) {
            const sk_mat *mi[7] = {&m->layers[i].wq, &m->layers[i].wk, &m->layers[i].wv,
                                   &m->layers[i].wo, &m->layers[i].w_gate, &m->layers[i].w_up,
                                   &m->layers[i].w_down};
            if (!mi[kd]->data) continue;
            rows = mi[kd]->rows;
            cols = mi[kd]->cols;
            float *wi = mat_f32(mi[kd]);
            const double ni = fro(wi, rows * cols);
            double best = INFINITY;
            float *bestd = NULL;
            for (int j = 0; j < i; j++) {
                const sk_mat *mj[7] = {&m->layers[j].wq, &m->layers[j].wk, &m->layers[j].wv,
                                       &m->layers[j].wo, &m->layers[j].w_gate,
                                       &m->layers[j].w_up, &m->layers[j].w_down};
                float *wj = mat_f32(mj[kd]);
                for (int64_t e = 0; e < rows * cols; e++) wj[e] = wi[e] - wj[e];
                const double d = fro(wj, rows * cols) / ni;
                if (d < best) {
                    best = d;
                    free(bestd);
                    bestd = wj;
                } else {
                    free(wj);
                }
            }
            /* the rank-r delta: the difference minus its best rank-r approximation */
            const int64_t k = rows < cols ? rows : cols;
            const sk_lr_rank how = {.rank = rank < k ? rank : k, .energy = 0, .ratio = 0};
            float *approx = malloc((size_t)(rows * cols) * sizeof *approx);
            sk_lr_out o;
            double after = best;
            if (sk_lowrank_matrix(bestd, rows, cols, NULL, &how, approx, NULL, NULL, NULL, &o) ==
                SHRINK_OK) {
                for (int64_t e = 0; e < rows * cols; e++) approx[e] = bestd[e] - approx[e];
                after = o.dense ? 0.0 : fro(approx, rows * cols) / ni;
            }
            d2[n] = 1.0; /* W_i alone at rank r */
            if (sk_lowrank_matrix(wi, rows, cols, NULL, &how, approx, NULL, NULL, NULL, &o) ==
                SHRINK_OK)
                d2[n] = o.dense ? 0.0 : o.rel_err;
            d0[n] = best;
            d1[n] = after;
            n++;
            free(approx);
            free(bestd);
            free(wi);
        }
        if (n) {
            qsort(d0, (size_t)n, sizeof *d0, cmp_double);
            qsort(d1, (size_t)n, sizeof *d1, cmp_double);
            qsort(d2, (size_t)n, sizeof *d2, cmp_double);
            printf("| %s | %lld x %lld | %.3f | %.3f | %.3f | %.3f | %.3f |\n", kinds[kd],
                   (long long)rows, (long long)cols, d0[n / 2], d0[0], d1[n / 2], d1[0],
                   d2[n / 2]);
            fflush(stdout);
        }
        free(d0);
        free(d1);
        free(d2);
    }
    shrink_model_free(m);
    return 0;
}
