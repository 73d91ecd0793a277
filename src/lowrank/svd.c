/*
 * svd.c - the linear algebra of low-rank factorization (lowrank.h): a symmetric eigensolver
 * (Householder tridiagonalisation + implicit QL, after EISPACK's tred2 / tql2 as in the public
 * domain JAMA library), Cholesky, and the truncation of one matrix in the metric of an input
 * transform (plain SVD, ASVD scaling, SVD-LLM whitening). All in double; the matrices of the
 * models shrink handles have min(rows, cols) of a few thousand at most, where an O(k^3)
 * eigensolver on the k x k Gram matrix is cheap next to reading the model.
 */
#include "lowrank.h"

#include <math.h>

/* ---- symmetric eigensolver ---------------------------------------------------------------- */

/* Householder reduction of V (n x n, symmetric, row-major) to tridiagonal form: d diagonal,
 * e sub-diagonal (e[0] = 0), V the accumulated orthogonal transform (columns). */
static void tred2(double *V, int64_t n, double *d, double *e) {
#define v(i, j) V[(i) * n + (j)]
    for (int64_t j = 0; j < n; j++) d[j] = v(n - 1, j);
    for (int64_t i = n - 1; i > 0; i--) {
        double scale = 0.0, h = 0.0;
        for (int64_t k = 0; k < i; k++) scale += fabs(d[k]);
        if (scale == 0.0) {
            e[i] = d[i - 1];
            for (int64_t j = 0; j < i; j++) {
                d[j] = v(i - 1, j);
                v(i, j) = 0.0;
                v(j, i) = 0.0;
            }
        } else {
            for (int64_t k = 0; k < i; k++) {
                d[k] /= scale;
                h += d[k] * d[k];
            }
            double f = d[i - 1], g = sqrt(h);
            if (f > 0) g = -g;
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for (int64_t j = 0; j < i; j++) e[j] = 0.0;
            for (int64_t j = 0; j < i; j++) {
                f = d[j];
                v(j, i) = f;
                g = e[j] + v(j, j) * f;
                for (int64_t k = j + 1; k <= i - 1; k++) {
                    g += v(k, j) * d[k];
                    e[k] += v(k, j) * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for (int64_t j = 0; j < i; j++) {
                e[j] /= h;
                f += e[j] * d[j];
            }
            const double hh = f / (h + h);
            for (int64_t j = 0; j < i; j++) e[j] -= hh * d[j];
            for (int64_t j = 0; j < i; j++) {
                f = d[j];
                g = e[j];
                for (int64_t k = j; k <= i - 1; k++) v(k, j) -= (f * e[k] + g * d[k]);
                d[j] = v(i - 1, j);
                v(i, j) = 0.0;
            }
        }
        d[i] = h;
    }
    for (int64_t i = 0; i < n - 1; i++) {
        v(n - 1, i) = v(i, i);
        v(i, i) = 1.0;
        const double h = d[i + 1];
        if (h != 0.0) {
            for (int64_t k = 0; k <= i; k++) d[k] = v(k, i + 1) / h;
            for (int64_t j = 0; j <= i; j++) {
                double g = 0.0;
                for (int64_t k = 0; k <= i; k++) g += v(k, i + 1) * v(k, j);
                for (int64_t k = 0; k <= i; k++) v(k, j) -= g * d[k];
            }
        }
        for (int64_t k = 0; k <= i; k++) v(k, i + 1) = 0.0;
    }
    for (int64_t j = 0; j < n; j++) {
        d[j] = v(n - 1, j);
        v(n - 1, j) = 0.0;
    }
    v(n - 1, n - 1) = 1.0;
    e[0] = 0.0;
#undef v
}

/* Implicit QL on the tridiagonal (d, e); Z (n x n) holds the transform transposed (row i =
 * eigenvector i), rotated in place. */
static shrink_status tql2(double *Z, int64_t n, double *d, double *e) {
    for (int64_t i = 1; i < n; i++) e[i - 1] = e[i];
    e[n - 1] = 0.0;
    double f = 0.0, tst1 = 0.0;
    const double eps = 0x1p-52;
    for (int64_t l = 0; l < n; l++) {
        tst1 = fmax(tst1, fabs(d[l]) + fabs(e[l]));
        int64_t m = l;
        while (m < n - 1 && fabs(e[m]) > eps * tst1) m++;
        if (m > l) {
            int iter = 0;
            do {
                if (++iter > 60)
                    return sk_error(SHRINK_ERR_RANGE, "low-rank: the eigensolver did not "
                                    "converge (%lld x %lld Gram matrix)", (long long)n,
                                    (long long)n);
                double g = d[l];
                double p = (d[l + 1] - g) / (2.0 * e[l]);
                double r = hypot(p, 1.0);
                if (p < 0) r = -r;
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                const double dl1 = d[l + 1];
                double h = g - d[l];
                for (int64_t i = l + 2; i < n; i++) d[i] -= h;
                f += h;
                p = d[m];
                double c = 1.0, c2 = c, c3 = c, s = 0.0, s2 = 0.0;
                const double el1 = e[l + 1];
                for (int64_t i = m - 1; i >= l; i--) {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = hypot(p, e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    double *zi = Z + i * n, *zj = Z + (i + 1) * n;
                    for (int64_t k = 0; k < n; k++) {
                        const double hk = zj[k];
                        zj[k] = s * zi[k] + c * hk;
                        zi[k] = c * zi[k] - s * hk;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
            } while (fabs(e[l]) > eps * tst1);
        }
        d[l] += f;
        e[l] = 0.0;
    }
    return SHRINK_OK;
}

shrink_status sk_sym_eigen(double *A, int64_t n, double *w, double *Z) {
    if (n <= 0) return SHRINK_OK;
    double *e = sk_malloc((size_t)n * sizeof *e);
    if (!e) return sk_error(SHRINK_ERR_NOMEM, "low-rank: out of memory");
    tred2(A, n, w, e);
    for (int64_t i = 0; i < n; i++) /* Z = V^T */
        for (int64_t k = 0; k < n; k++) Z[i * n + k] = A[k * n + i];
    shrink_status st = tql2(Z, n, w, e);
    sk_free(e);
    if (st) return st;
    /* descending, rows of Z along (selection sort: n swaps of rows at most) */
    for (int64_t i = 0; i < n - 1; i++) {
        int64_t k = i;
        for (int64_t j = i + 1; j < n; j++)
            if (w[j] > w[k]) k = j;
        if (k != i) {
            const double t = w[i];
            w[i] = w[k];
            w[k] = t;
            for (int64_t j = 0; j < n; j++) {
                const double u = Z[i * n + j];
                Z[i * n + j] = Z[k * n + j];
                Z[k * n + j] = u;
            }
        }
    }
    return SHRINK_OK;
}

shrink_status sk_cholesky(double *A, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        double s = A[j * n + j];
        for (int64_t k = 0; k < j; k++) s -= A[j * n + k] * A[j * n + k];
        if (!(s > 0.0))
            return sk_error(SHRINK_ERR_RANGE, "low-rank: the activation covariance is not "
                            "positive definite (column %lld)", (long long)j);
        const double d = sqrt(s);
        A[j * n + j] = d;
        #pragma omp parallel for schedule(static) if (n - j > 256)
        for (int64_t i = j + 1; i < n; i++) {
            double t = A[i * n + j];
            for (int64_t k = 0; k < j; k++) t -= A[i * n + k] * A[j * n + k];
            A[i * n + j] = t / d;
        }
        for (int64_t i = 0; i < j; i++) A[i * n + j] = 0.0;
    }
    return SHRINK_OK;
}

/* ---- one matrix --------------------------------------------------------------------------- */

static double dotd(const double *a, const double *b, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static shrink_status choose_rank(const sk_lr_rank *how, const double *w, int64_t m, int64_t n,
                                 int64_t *r_out) {
    const int64_t k = m < n ? m : n;
    const int set = (how->rank != 0) + (how->energy != 0.0) + (how->ratio != 0.0);
    if (set != 1)
        return sk_error(SHRINK_ERR_ARG, "low-rank: give exactly one of a rank, an energy or a "
                        "parameter ratio");
    if (how->rank) {
        if (how->rank < 1 || how->rank > k)
            return sk_error(SHRINK_ERR_ARG, "low-rank: rank %lld is not in [1, %lld] for a %lld "
                            "x %lld matrix", (long long)how->rank, (long long)k, (long long)m,
                            (long long)n);
        *r_out = how->rank;
    } else if (how->energy != 0.0) {
        if (!(how->energy > 0.0 && how->energy <= 1.0))
            return sk_error(SHRINK_ERR_ARG, "low-rank: energy %g is not in (0, 1]", how->energy);
        double total = 0.0, acc = 0.0;
        for (int64_t i = 0; i < k; i++) total += w[i] > 0 ? w[i] : 0.0;
        int64_t r = 0;
        while (r < k) {
            acc += w[r] > 0 ? w[r] : 0.0;
            r++;
            if (acc >= how->energy * total * (1.0 - 1e-12)) break;
        }
        *r_out = r;
    } else {
        if (!(how->ratio > 0.0 && how->ratio < 1.0))
            return sk_error(SHRINK_ERR_ARG, "low-rank: parameter ratio %g is not in (0, 1)",
                            how->ratio);
        int64_t r = (int64_t)floor(how->ratio * (double)m * (double)n / (double)(m + n));
        *r_out = r < 1 ? 1 : r > k ? k : r;
    }
    return SHRINK_OK;
}

shrink_status sk_lowrank_matrix(const float *W, int64_t m, int64_t n, const sk_lr_metric *metric,
                                const sk_lr_rank *how, float *Wr, double *sigma, double *Yo,
                                double *Zo, sk_lr_out *out) {
    static const sk_lr_metric none = {NULL, NULL};
    if (!metric) metric = &none;
    memset(out, 0, sizeof *out);
    if (m < 1 || n < 1) return sk_error(SHRINK_ERR_ARG, "low-rank: empty matrix");
    const int right = n <= m;
    const int64_t k = right ? n : m;
    const int64_t o = right ? m : n; /* the other dimension */
    shrink_status st = SHRINK_OK;
    double *A = sk_malloc((size_t)(m * n) * sizeof *A);   /* right: W T; left: W C */
    double *At = sk_malloc((size_t)(m * n) * sizeof *At); /* right: (W T)^T; left: W */
    double *G = sk_malloc((size_t)(k * k) * sizeof *G);
    double *Z = sk_malloc((size_t)(k * k) * sizeof *Z);
    double *w = sk_malloc((size_t)k * sizeof *w);
    double *L = metric->cov && right ? sk_malloc((size_t)(n * n) * sizeof *L) : NULL;
    double *Y = sk_malloc((size_t)(m * k) * sizeof *Y), *F = sk_malloc((size_t)(k * n) * sizeof *F);
    if (!A || !At || !G || !Z || !w || !Y || !F || (metric->cov && right && !L)) {
        st = sk_error(SHRINK_ERR_NOMEM, "low-rank: out of memory for a %lld x %lld matrix",
                      (long long)m, (long long)n);
        goto out;
    }
    if (L) { /* L L^T = C */
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++)
                L[i * n + j] = j <= i ? metric->cov[i * n + j] : 0.0;
        if ((st = sk_cholesky(L, n))) goto out;
    }
    /* A */
    #pragma omp parallel for schedule(static) if (m * n > 65536)
    for (int64_t i = 0; i < m; i++) {
        const float *wi = W + i * n;
        double *ai = A + i * n;
        if (metric->cov && right) {
            for (int64_t j = 0; j < n; j++) { /* (W L)_ij = sum_{q >= j} W_iq L_qj */
                double s = 0.0;
                for (int64_t q = j; q < n; q++) s += (double)wi[q] * L[q * n + j];
                ai[j] = s;
            }
        } else if (metric->cov) { /* left: W C, C symmetric from its lower triangle */
            for (int64_t j = 0; j < n; j++) {
                double s = 0.0;
                for (int64_t q = 0; q < n; q++)
                    s += (double)wi[q] * (q >= j ? metric->cov[q * n + j] : metric->cov[j * n + q]);
                ai[j] = s;
            }
        } else if (metric->scale) { /* right: W S; left: W S^2 */
            for (int64_t j = 0; j < n; j++)
                ai[j] = (double)wi[j] * metric->scale[j] * (right ? 1.0 : metric->scale[j]);
        } else {
            for (int64_t j = 0; j < n; j++) ai[j] = wi[j];
        }
    }
    /* the Gram matrix G = rows of P times rows of Q, P = Q = A^T (right) or P = A, Q = W */
    if (right) {
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) At[j * m + i] = A[i * n + j];
    } else {
        for (int64_t i = 0; i < m * n; i++) At[i] = W[i];
    }
    const double *P = right ? At : A, *Q = At;
    #pragma omp parallel for schedule(dynamic, 4) if (k * k * o > 1000000)
    for (int64_t a = 0; a < k; a++)
        for (int64_t b = 0; b <= a; b++) {
            const double g = dotd(P + a * o, Q + b * o, o);
            G[a * k + b] = g;
            G[b * k + a] = g;
        }
    if (!right) /* W C W^T is symmetric in exact arithmetic; make it so */
        for (int64_t a = 0; a < k; a++)
            for (int64_t b = 0; b < a; b++) {
                const double g = 0.5 * (G[a * k + b] + G[b * k + a]);
                G[a * k + b] = G[b * k + a] = g;
            }
    if ((st = sk_sym_eigen(G, k, w, Z))) goto out;
    int64_t r;
    if ((st = choose_rank(how, w, m, n, &r))) goto out;
    double total = 0.0, kept = 0.0;
    for (int64_t i = 0; i < k; i++) {
        const double v = w[i] > 0 ? w[i] : 0.0;
        total += v;
        if (i < r) kept += v;
        if (sigma) sigma[i] = sqrt(v);
    }
    out->rank = r;
    out->energy = total > 0 ? kept / total : 1.0;
    if (r * (m + n) >= m * n) { /* the factors would not be smaller: keep W */
        out->dense = 1;
        if (Wr != W) memcpy(Wr, W, (size_t)(m * n) * sizeof *Wr);
        goto out;
    }
    /* the factors Y (m x r), F (r x n) */
    if (right) {
        #pragma omp parallel for schedule(static) if (m * n * r > 1000000)
        for (int64_t i = 0; i < m; i++)
            for (int64_t c = 0; c < r; c++) Y[i * r + c] = dotd(A + i * n, Z + c * n, n);
        for (int64_t c = 0; c < r; c++) {
            const double *v = Z + c * n;
            double *f = F + c * n;
            if (L) { /* f L = v: back substitution with L^T */
                for (int64_t j = n - 1; j >= 0; j--) {
                    double s = v[j];
                    for (int64_t q = j + 1; q < n; q++) s -= f[q] * L[q * n + j];
                    f[j] = s / L[j * n + j];
                }
            } else {
                for (int64_t j = 0; j < n; j++)
                    f[j] = metric->scale ? v[j] / metric->scale[j] : v[j];
            }
        }
    } else {
        for (int64_t i = 0; i < m; i++)
            for (int64_t c = 0; c < r; c++) Y[i * r + c] = Z[c * m + i];
        #pragma omp parallel for schedule(static) if (m * n * r > 1000000)
        for (int64_t c = 0; c < r; c++) {
            double *f = F + c * n;
            for (int64_t j = 0; j < n; j++) f[j] = 0.0;
            for (int64_t i = 0; i < m; i++) {
                const double u = Z[c * m + i];
                const float *wi = W + i * n;
                for (int64_t j = 0; j < n; j++) f[j] += u * wi[j];
            }
        }
    }
    /* W' = Y F and the error */
    double num = 0.0, den = 0.0;
    #pragma omp parallel for schedule(static) reduction(+ : num, den) if (m * n * r > 1000000)
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            double s = 0.0;
            for (int64_t c = 0; c < r; c++) s += Y[i * r + c] * F[c * n + j];
            const double d = (double)W[i * n + j] - s;
            num += d * d;
            den += (double)W[i * n + j] * W[i * n + j];
            At[i * n + j] = s;
        }
    }
    for (int64_t i = 0; i < m * n; i++) Wr[i] = (float)At[i];
    out->rel_err = den > 0 ? sqrt(num / den) : 0.0;
    if (Yo) memcpy(Yo, Y, (size_t)(m * r) * sizeof *Y);
    if (Zo) memcpy(Zo, F, (size_t)(r * n) * sizeof *F);
out:
    sk_free(A);
    sk_free(At);
    sk_free(G);
    sk_free(Z);
    sk_free(w);
    sk_free(L);
    sk_free(Y);
    sk_free(F);
    return st;
}
