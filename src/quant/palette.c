/*
 * palette.c - the k-means of the palette types (palette.h here; the storage and kernels are
 * src/kernels/palette.h, q_palette.c). Float64 throughout; deterministic.
 */
#include "palette.h"

#include <math.h>
#include <omp.h>

typedef struct kv {
    double x, w;
} kv;

static int cmp_kv(const void *a, const void *b) {
    const kv *p = a, *q = b;
    return p->x < q->x ? -1 : p->x > q->x;
}

static int cmp_dbl(const void *a, const void *b) {
    double p = *(const double *)a, q = *(const double *)b;
    return p < q ? -1 : p > q;
}

/* first index i in [0, n) with v[i].x > b (n if none) */
static int64_t upper(const kv *v, int64_t n, double b) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (v[mid].x > b) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

int sk_kmeans1d(const float *x, const float *w, int64_t n, int k, int max_iter, double *cent) {
    if (n <= 0) {
        for (int e = 0; e < k; e++) cent[e] = 0.0;
        return 1;
    }
    kv *v = sk_malloc((size_t)n * sizeof *v);
    double *W = sk_malloc((size_t)(n + 1) * sizeof *W), *S = sk_malloc((size_t)(n + 1) * sizeof *S);
    int64_t *hi = sk_malloc((size_t)k * sizeof *hi), *prev = sk_malloc((size_t)k * sizeof *prev);
    if (!v || !W || !S || !hi || !prev) {
        sk_free(v); sk_free(W); sk_free(S); sk_free(hi); sk_free(prev);
        return -1;
    }
    double wsum = 0.0;
    for (int64_t i = 0; i < n; i++) wsum += w ? (double)w[i] : 1.0;
    const int unit = !(wsum > 0.0) || !isfinite(wsum);
    for (int64_t i = 0; i < n; i++) v[i] = (kv){x[i], w && !unit ? (double)w[i] : 1.0};
    qsort(v, (size_t)n, sizeof *v, cmp_kv);
    W[0] = S[0] = 0.0;
    for (int64_t i = 0; i < n; i++) {
        W[i + 1] = W[i] + v[i].w;
        S[i + 1] = S[i] + v[i].w * v[i].x;
    }
    /* weighted quantiles (e + 1/2) / k: the first value whose cumulative weight reaches it */
    int64_t i = 0;
    for (int e = 0; e < k; e++) {
        double q = ((double)e + 0.5) / (double)k * W[n];
        while (i < n - 1 && W[i + 1] < q) i++;
        cent[e] = v[i].x;
    }
    for (int e = 0; e < k; e++) prev[e] = -1;
    int it = 0;
    while (it < max_iter) {
        it++;
        /* clusters: runs between midpoints (ties to the lower centroid) */
        for (int e = 0; e < k; e++)
            hi[e] = e == k - 1 ? n : upper(v, n, 0.5 * (cent[e] + cent[e + 1]));
        int same = 1;
        for (int e = 0; e < k; e++) same &= hi[e] == prev[e];
        if (same) break;
        for (int e = 0; e < k; e++) {
            int64_t lo = e ? hi[e - 1] : 0;
            double ww = W[hi[e]] - W[lo];
            if (hi[e] > lo && ww > 0.0) cent[e] = (S[hi[e]] - S[lo]) / ww;
            prev[e] = hi[e];
        }
        qsort(cent, (size_t)k, sizeof *cent, cmp_dbl);
    }
    sk_free(v); sk_free(W); sk_free(S); sk_free(hi); sk_free(prev);
    return it;
}

shrink_status sk_palette_fit(shrink_dtype t, const float *x, int64_t rows, int64_t cols,
                             const float *imatrix, float *pal) {
    const int k = sk_pal_k(t);
    SHRINK_ASSERT(k > 0);
    const int64_t ng = (rows + k - 1) / k;
    int nomem = 0;
    #pragma omp parallel reduction(| : nomem)
    {
        float *wbuf = imatrix ? sk_malloc((size_t)k * (size_t)cols * sizeof(float)) : NULL;
        double cent[256];
        if (imatrix && !wbuf) nomem = 1;
        #pragma omp for schedule(dynamic, 1)
        for (int64_t gi = 0; gi < ng; gi++) {
            if (nomem) continue;
            const int64_t r0 = gi * k;
            const int g = (int)(rows - r0 < k ? rows - r0 : k);
            const int64_t n = (int64_t)g * cols;
            for (int64_t r = 0; wbuf && r < g; r++) /* element (r, c) weighs imatrix[c] */
                memcpy(wbuf + r * cols, imatrix, (size_t)cols * sizeof(float));
            if (sk_kmeans1d(x + r0 * cols, wbuf, n, g, 100, cent) < 0) {
                nomem = 1;
                continue;
            }
            for (int e = 0; e < g; e++) pal[gi * k + e] = (float)cent[e];
        }
        sk_free(wbuf);
    }
    return nomem ? sk_error(SHRINK_ERR_NOMEM, "palette: out of memory for the k-means") : SHRINK_OK;
}
