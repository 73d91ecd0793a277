/*
 * algo.c - the pruning algorithms (prune.h): selection, magnitude / Wanda per row or matrix,
 * N:M groups, SparseGPT. Plain arrays, no model: shrink_prune (prune.c) feeds them.
 */
#include "prune.h"

#include "../model/hessian.h"

#include <math.h>
#include <omp.h>

typedef struct scored {
    double  s;
    int64_t i;
} scored;

static int cmp_scored(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->s < y->s) return -1;
    if (x->s > y->s) return 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* The k smallest of score[0..n) into mask, with scratch room for n pairs. */
static void select_into(const double *score, int64_t n, int64_t k, uint8_t *mask, scored *tmp) {
    memset(mask, 0, (size_t)n);
    if (k <= 0) return;
    if (k >= n) {
        memset(mask, 1, (size_t)n);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        tmp[i].s = score[i];
        tmp[i].i = i;
    }
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_scored);
    for (int64_t i = 0; i < k; i++) mask[tmp[i].i] = 1;
}

/* m - n smallest of a group of m scores (m <= 64), by (score, index), into mask. */
static void select_group(const double *score, int m, int n, uint8_t *mask) {
    int order[64];
    for (int i = 0; i < m; i++) order[i] = i;
    for (int i = 1; i < m; i++) { /* insertion sort: stable */
        int v = order[i], j = i;
        while (j > 0 && score[order[j - 1]] > score[v]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
    for (int i = 0; i < m; i++) mask[i] = 0;
    for (int i = 0; i < m - n; i++) mask[order[i]] = 1;
}

shrink_status sk_prune_select(const double *score, int64_t n, int64_t k, uint8_t *mask) {
    scored *tmp = sk_malloc((size_t)(n > 0 ? n : 1) * sizeof *tmp);
    if (!tmp) return sk_error(SHRINK_ERR_NOMEM, "prune: out of memory sorting %lld scores",
                              (long long)n);
    select_into(score, n, k, mask, tmp);
    sk_free(tmp);
    return SHRINK_OK;
}

shrink_status sk_prune_rows(float *W, int64_t rows, int64_t cols, const double *scale,
                            double sparsity, int n, int m) {
    const int nt = omp_get_max_threads();
    const size_t per = (size_t)cols;
    double *score = sk_malloc((size_t)nt * per * sizeof *score);
    uint8_t *mask = sk_malloc((size_t)nt * per);
    scored *tmp = sk_malloc((size_t)nt * per * sizeof *tmp);
    if (!score || !mask || !tmp) {
        sk_free(score);
        sk_free(mask);
        sk_free(tmp);
        return sk_error(SHRINK_ERR_NOMEM, "prune: out of memory for rows of %lld",
                        (long long)cols);
    }
    const int64_t k = (int64_t)floor((double)cols * sparsity);
    #pragma omp parallel for schedule(static) num_threads(nt) if (rows * cols > 65536)
    for (int64_t r = 0; r < rows; r++) {
        const int tid = omp_get_thread_num();
        double *s = score + (size_t)tid * per;
        uint8_t *mk = mask + (size_t)tid * per;
        float *w = W + (size_t)r * per;
        for (int64_t c = 0; c < cols; c++)
            s[c] = fabs((double)w[c]) * (scale ? scale[c] : 1.0);
        if (n > 0) {
            for (int64_t c = 0; c < cols; c += m) select_group(s + c, m, n, mk + c);
        } else {
            select_into(s, cols, k, mk, tmp + (size_t)tid * per);
        }
        for (int64_t c = 0; c < cols; c++)
            if (mk[c]) w[c] = 0.0f;
    }
    sk_free(score);
    sk_free(mask);
    sk_free(tmp);
    return SHRINK_OK;
}

/* The k-th smallest (0-based) of a[0..n) (reordered): quickselect with a three-way partition
 * (many equal values, zeros of a pruned matrix, stay linear). */
static float kth_smallest(float *a, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        const float x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi];
        const float p = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);
        int64_t lt = lo, i = lo, gt = hi;
        while (i <= gt) {
            if (a[i] < p) {
                const float t = a[lt]; a[lt++] = a[i]; a[i++] = t;
            } else if (a[i] > p) {
                const float t = a[gt]; a[gt--] = a[i]; a[i] = t;
            } else {
                i++;
            }
        }
        if (k < lt) hi = lt - 1;
        else if (k > gt) lo = gt + 1;
        else return p;
    }
    return a[k];
}

shrink_status sk_prune_matrix(float *W, int64_t rows, int64_t cols, double sparsity,
                              double *e2) {
    const int64_t n = rows * cols, k = (int64_t)floor((double)n * sparsity);
    double e = 0.0;
    if (k >= n) {
        for (int64_t i = 0; i < n; i++) {
            e += (double)W[i] * (double)W[i];
            W[i] = 0.0f;
        }
    } else if (k > 0) {
        /* the k smallest by (|w|, index), as sk_prune_select orders them, from the k-th |w|
         * alone: n floats of scratch where sorting (score, index) pairs took 24 bytes each */
        float *a = sk_malloc((size_t)n * sizeof *a);
        if (!a)
            return sk_error(SHRINK_ERR_NOMEM, "prune: out of memory for a %lld x %lld matrix",
                            (long long)rows, (long long)cols);
        for (int64_t i = 0; i < n; i++) a[i] = fabsf(W[i]);
        const float t = kth_smallest(a, n, k - 1);
        sk_free(a);
        int64_t below = 0;
        for (int64_t i = 0; i < n; i++) below += fabsf(W[i]) < t;
        int64_t ties = k - below; /* of the |w| == t, the first by index */
        for (int64_t i = 0; i < n; i++) {
            const float v = fabsf(W[i]);
            if (v < t || (v == t && ties > 0)) {
                if (v == t) ties--;
                e += (double)W[i] * (double)W[i];
                W[i] = 0.0f;
            }
        }
    }
    if (e2) *e2 = e;
    return SHRINK_OK;
}

void sk_prune_threshold(float *W, int64_t n, double thr) {
    for (int64_t i = 0; i < n; i++)
        if (fabs((double)W[i]) < thr) W[i] = 0.0f;
}

/* ---- SparseGPT ---------------------------------------------------------------------------- */

shrink_status sk_sparsegpt_factor(double *H, int64_t n, double damp, double *U, uint8_t *dead) {
    return sk_hessian_factor(H, n, damp, U, dead, "sparsegpt");
}

shrink_status sk_sparsegpt(double *W, int64_t rows, int64_t cols, const double *U,
                           const uint8_t *dead, double sparsity, int n, int m, int64_t bs) {
    if (bs < 1) bs = 128;
    const int64_t bmax = bs < cols ? bs : cols;
    uint8_t *mask = sk_malloc((size_t)(rows * bmax));
    double *err = sk_malloc((size_t)(rows * bmax) * sizeof *err);
    double *score = n > 0 ? NULL : sk_malloc((size_t)(rows * bmax) * sizeof *score);
    scored *tmp = n > 0 ? NULL : sk_malloc((size_t)(rows * bmax) * sizeof *tmp);
    if (!mask || !err || (n == 0 && (!score || !tmp))) {
        sk_free(mask);
        sk_free(err);
        sk_free(score);
        sk_free(tmp);
        return sk_error(SHRINK_ERR_NOMEM, "sparsegpt: out of memory for a %lld x %lld block",
                        (long long)rows, (long long)bmax);
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            if (dead[c]) W[r * cols + c] = 0.0;
    for (int64_t i1 = 0; i1 < cols; i1 += bs) {
        const int64_t i2 = i1 + bs < cols ? i1 + bs : cols, cnt = i2 - i1;
        if (n == 0) { /* adaptive mask selection over the block */
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = 0; j < cnt; j++) {
                    const double w = W[r * cols + i1 + j], d = U[(i1 + j) * cols + i1 + j];
                    score[r * cnt + j] = w * w / (d * d);
                }
            select_into(score, rows * cnt, (int64_t)floor((double)(rows * cnt) * sparsity),
                        mask, tmp);
        }
        #pragma omp parallel for schedule(static) if (rows * cols > 65536)
        for (int64_t r = 0; r < rows; r++) {
            double *w = W + r * cols, *e = err + r * cnt;
            uint8_t *mk = mask + r * cnt;
            for (int64_t j = 0; j < cnt; j++) {
                const int64_t c = i1 + j;
                const double *u = U + c * cols;
                if (n > 0 && j % m == 0) {
                    double s[64];
                    for (int g = 0; g < m; g++) {
                        const double d = U[(c + g) * cols + c + g];
                        s[g] = w[c + g] * w[c + g] / (d * d);
                    }
                    select_group(s, m, n, mk + j);
                }
                const double q = mk[j] ? 0.0 : w[c];
                const double ej = (w[c] - q) / u[c];
                e[j] = ej;
                if (ej != 0.0)
                    for (int64_t k = c + 1; k < i2; k++) w[k] -= ej * u[k];
                w[c] = q;
            }
            /* the block's error onto the later columns */
            for (int64_t j = 0; j < cnt; j++) {
                const double ej = e[j];
                if (ej == 0.0) continue;
                const double *u = U + (i1 + j) * cols;
                for (int64_t k = i2; k < cols; k++) w[k] -= ej * u[k];
            }
        }
    }
    sk_free(mask);
    sk_free(err);
    sk_free(score);
    sk_free(tmp);
    return SHRINK_OK;
}
