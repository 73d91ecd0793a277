/*
 * test_lowrank.c - the linear algebra of shrink_lowrank (src/lowrank/lowrank.h) against
 * independent references:
 *   - tests/fixtures/lowrank/ref.safetensors (tools/ref_check/lowrank_ref.py: numpy's LAPACK
 *     SVD in float64): plain SVD, ASVD scaling and SVD-LLM whitening at rank 4 of a 10 x 16
 *     and a 16 x 10 matrix (the two code paths: W C W^T and T^T W^T W T), reconstruction and
 *     singular values to 1e-6 relative;
 *   - the eigensolver on random symmetric matrices: A z = w z and Z Z^T = I recomputed here;
 *   - the factors multiply back to the reconstruction; rank by energy and by parameter ratio
 *     from the reference's singular values; bad ranks and energies refused; a rank whose
 *     factors would not be smaller keeps the matrix as it is.
 */
#include "lowrank/lowrank.h"
#include "formats/formats.h"
#include "test_util.h"
#include "test_fixture.h"

static double *f64_of(const sk_st_raw *t) {
    double *v = malloc(t->n_elems * sizeof *v);
    memcpy(v, t->data, t->n_elems * sizeof *v);
    return v;
}

static double urand(void) { return 2.0 * test_rng_u() - 1.0; }

static void test_eigen(int64_t n) {
    double *A = malloc((size_t)(n * n) * sizeof *A), *A0 = malloc((size_t)(n * n) * sizeof *A);
    double *Z = malloc((size_t)(n * n) * sizeof *Z), *w = malloc((size_t)n * sizeof *w);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j <= i; j++) A0[i * n + j] = A0[j * n + i] = urand();
    memcpy(A, A0, (size_t)(n * n) * sizeof *A);
    CHECK(sk_sym_eigen(A, n, w, Z) == SHRINK_OK, "eigen %lld", (long long)n);
    double res = 0.0, orth = 0.0, sorted = 1;
    for (int64_t i = 0; i < n; i++) {
        if (i && w[i] > w[i - 1]) sorted = 0;
        for (int64_t r = 0; r < n; r++) {
            double s = 0.0;
            for (int64_t c = 0; c < n; c++) s += A0[r * n + c] * Z[i * n + c];
            res = fmax(res, fabs(s - w[i] * Z[i * n + r]));
        }
        for (int64_t j = 0; j < n; j++) {
            double s = 0.0;
            for (int64_t c = 0; c < n; c++) s += Z[i * n + c] * Z[j * n + c];
            orth = fmax(orth, fabs(s - (i == j)));
        }
    }
    CHECK(res < 1e-10 * n && orth < 1e-12 * n && sorted,
          "eigen n=%lld: residual %g, orthogonality %g, sorted %d", (long long)n, res, orth,
          (int)sorted);
    free(A);
    free(A0);
    free(Z);
    free(w);
}

static void test_fixture(void) {
    char buf[1024];
    fixture f;
    /* committed in tests/fixtures (tools/ref_check/lowrank_ref.py makes it) */
    if (!test_need_asset(buf, sizeof buf, "lowrank/ref.safetensors")) return;
    const int opened = fixture_open(&f, buf);
    CHECK(opened, "%s: not a readable safetensors file", buf);
    if (!opened) return;
    const char *tags[2] = {"a", "b"};
    const char *methods[3] = {"svd", "asvd", "whiten"};
    for (int ti = 0; ti < 2; ti++) {
        char name[64];
        snprintf(name, sizeof name, "W%s", tags[ti]);
        const sk_st_raw *tw = fixture_get(&f, name);
        snprintf(name, sizeof name, "X%s", tags[ti]);
        const sk_st_raw *tx = fixture_get(&f, name);
        CHECK(tw && tx && tw->n_dims == 2 && tx->n_dims == 2, "fixture W/X %s", tags[ti]);
        if (!tw || !tx) continue;
        const int64_t m = tw->shape[0], n = tw->shape[1], T = tx->shape[0], k = m < n ? m : n;
        double *Wd = f64_of(tw), *X = f64_of(tx);
        float *W = malloc((size_t)(m * n) * sizeof *W), *Wr = malloc((size_t)(m * n) * sizeof *Wr);
        for (int64_t i = 0; i < m * n; i++) W[i] = (float)Wd[i];
        /* the metrics, computed here from X as the reference does */
        double *s = calloc((size_t)n, sizeof *s), *C = calloc((size_t)(n * n), sizeof *C);
        double tr = 0.0;
        for (int64_t j = 0; j < n; j++) {
            for (int64_t t = 0; t < T; t++) s[j] += fabs(X[t * n + j]);
            s[j] = sqrt(s[j] / (double)T);
            for (int64_t q = 0; q < n; q++)
                for (int64_t t = 0; t < T; t++) C[j * n + q] += X[t * n + j] * X[t * n + q];
            tr += C[j * n + j];
        }
        for (int64_t j = 0; j < n; j++) C[j * n + j] += 1e-3 * tr / (double)n;
        for (int mi = 0; mi < 3; mi++) {
            sk_lr_metric met = {mi == 1 ? s : NULL, mi == 2 ? C : NULL};
            snprintf(name, sizeof name, "%s%s.recon", methods[mi], tags[ti]);
            const sk_st_raw *tr_ = fixture_get(&f, name);
            snprintf(name, sizeof name, "%s%s.sigma", methods[mi], tags[ti]);
            const sk_st_raw *ts = fixture_get(&f, name);
            CHECK(tr_ && ts, "fixture %s", name);
            if (!tr_ || !ts) continue;
            const double *R = tr_->data, *S = ts->data; /* F64, 8-aligned in the file */
            double *sig = malloc((size_t)k * sizeof *sig);
            double *Y = malloc((size_t)(m * k) * sizeof *Y), *Z = malloc((size_t)(k * n) * sizeof *Z);
            sk_lr_rank how = {.rank = 4};
            sk_lr_out o;
            shrink_status st = sk_lowrank_matrix(W, m, n, &met, &how, Wr, sig, Y, Z, &o);
            CHECK(st == SHRINK_OK && o.rank == 4 && !o.dense, "%s %s: status %d rank %lld",
                  methods[mi], tags[ti], (int)st, (long long)o.rank);
            double num = 0.0, den = 0.0, fac = 0.0, sig_err = 0.0, kept = 0.0, tot = 0.0;
            for (int64_t i = 0; i < m * n; i++) {
                num += (Wr[i] - R[i]) * (Wr[i] - R[i]);
                den += R[i] * R[i];
            }
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) {
                    double p = 0.0;
                    for (int64_t c = 0; c < 4; c++) p += Y[i * 4 + c] * Z[c * n + j];
                    fac = fmax(fac, fabs(p - R[i * n + j]));
                }
            for (int64_t i = 0; i < k; i++) {
                if (i < 4) sig_err = fmax(sig_err, fabs(sig[i] - S[i]) / S[i]);
                tot += S[i] * S[i];
                if (i < 4) kept += S[i] * S[i];
            }
            /* f32 output: 6e-8 of each value */
            CHECK(sqrt(num / den) < 1e-6, "%s %s: reconstruction differs by %g relative",
                  methods[mi], tags[ti], sqrt(num / den));
            CHECK(sig_err < 1e-6, "%s %s: kept singular values differ by %g relative",
                  methods[mi], tags[ti], sig_err);
            CHECK(fac < 1e-9 * sqrt(den), "%s %s: Y Z differs from the reference by %g",
                  methods[mi], tags[ti], fac);
            CHECK(fabs(o.energy - kept / tot) < 1e-9, "%s %s: energy %g, want %g", methods[mi],
                  tags[ti], o.energy, kept / tot);
            /* rank by energy: the smallest r keeping the reference's fraction */
            const double e = 0.5 * (kept / tot) + 0.5 * ((kept - S[3] * S[3]) / tot);
            sk_lr_rank he = {.energy = e};
            st = sk_lowrank_matrix(W, m, n, &met, &he, Wr, NULL, NULL, NULL, &o);
            CHECK(st == SHRINK_OK && o.rank == 4, "%s %s: energy %g gave rank %lld, want 4",
                  methods[mi], tags[ti], e, (long long)o.rank);
            free(sig);
            free(Y);
            free(Z);
        }
        /* ratio: floor(P m n / (m + n)) */
        sk_lr_rank hr = {.ratio = 0.5};
        sk_lr_out o;
        CHECK(sk_lowrank_matrix(W, m, n, NULL, &hr, Wr, NULL, NULL, NULL, &o) == SHRINK_OK &&
                  o.rank == (int64_t)(0.5 * (double)(m * n) / (double)(m + n)),
              "ratio 0.5: rank %lld", (long long)o.rank);
        /* bad input */
        sk_lr_rank bad[5] = {{.rank = 0}, {.rank = k + 1}, {.energy = 1.5}, {.energy = -0.1},
                             {.ratio = 1.0}};
        for (int b = 0; b < 5; b++)
            CHECK(sk_lowrank_matrix(W, m, n, NULL, &bad[b], Wr, NULL, NULL, NULL, &o) ==
                      SHRINK_ERR_ARG,
                  "bad rank choice %d accepted", b);
        /* factors not smaller: r (m + n) >= m n keeps W */
        sk_lr_rank big = {.rank = 7};
        CHECK(sk_lowrank_matrix(W, m, n, NULL, &big, Wr, NULL, NULL, NULL, &o) == SHRINK_OK &&
                  o.dense && memcmp(W, Wr, (size_t)(m * n) * sizeof *W) == 0,
              "rank 7 of %lld x %lld: dense %d", (long long)m, (long long)n, o.dense);
        free(Wd);
        free(X);
        free(W);
        free(Wr);
        free(s);
        free(C);
    }
    fixture_close(&f);
}

int main(void) {
    test_eigen(1);
    test_eigen(7);
    test_eigen(60);
    test_fixture();
    return test_summary("test_lowrank");
}
