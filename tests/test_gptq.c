/*
 * test_gptq.c - GPTQ for one matrix (src/quant/gptq.c) against the float64 reference of
 * tools/ref_check/gptq_ref.py (numpy, no lazy batches, numpy's inverse and Cholesky), whose
 * results are committed as tests/fixtures/gptq/gptq_ref.bin:
 *   1. W and X are regenerated here with the reference's splitmix64 generator (bit-identical
 *      inputs), H = X^T X in double; for each case of the fixture (q4_0, q4_1, q5_0, q5_1,
 *      q8_0, int4_g128 and int4_g32_asym, int8_ch; act-order with static groups; blocks of
 *      32..128; damping 0.01 and 0.1; dead inputs) sk_gptq_quantize's output, dequantized by
 *      the dtype row's own to_f32, must equal the reference's values (same codes: at most
 *      0.5 % of the entries may differ by rounding of the sums, today none do) and the relative
 *      layer error ||(W - Q) X^T|| / ||W X^T|| must equal the reference's to 1e-6 relative;
 *      the values GPTQ tracked (Q) equal the written file's dequantization exactly;
 *   2. GPTQ's layer error is below round-to-nearest's for every case;
 *   3. the lazy block width does not change the result (blocks of 1, 17 and 256 columns);
 *   4. a Hessian that is not positive definite (negative diagonal) is retried with more
 *      damping and says how often; a type GPTQ cannot write is an error.
 */
#include "quant/gptq.h"
#include "model/hessian.h"
#include "kernels/kernels.h"
#include "test_util.h"

static const char *FIX = "tests/fixtures/gptq/gptq_ref.bin";

typedef struct sm { uint64_t s; } sm;
static uint64_t sm_next(sm *g) {
    uint64_t z = (g->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double sm_uniform(sm *g) {
    return (double)(sm_next(g) >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0;
}

static int rows, cols, T;
static double *W, *X, *H0;

static void make_inputs(uint64_t seed) {
    sm g = {seed};
    W = malloc(sizeof(double) * (size_t)(rows * cols));
    X = malloc(sizeof(double) * (size_t)(T * cols));
    double *X1 = malloc(sizeof(double) * (size_t)(T * cols));
    double *s = malloc(sizeof(double) * (size_t)cols);
    for (int i = 0; i < rows * cols; i++) W[i] = sm_uniform(&g);
    for (int c = 0; c < cols; c++) s[c] = (double)(1u << (sm_next(&g) % 4));
    for (int t = 0; t < T; t++)
        for (int c = 0; c < cols; c++) {
            double z1 = sm_uniform(&g), z2 = sm_uniform(&g);
            X1[t * cols + c] = c % 61 == 5 ? 0.0 : s[c] * (z1 + z2 * 0.5);
        }
    for (int t = 0; t < T; t++)
        for (int c = 0; c < cols; c++) {
            double v = X1[t * cols + c];
            if (c > 0) v = v + X1[t * cols + c - 1] * 0.5;
            X[t * cols + c] = c % 61 == 5 ? 0.0 : v;
        }
    H0 = calloc((size_t)(cols * cols), sizeof(double));
    for (int t = 0; t < T; t++)
        for (int a = 0; a < cols; a++)
            for (int b = 0; b < cols; b++) H0[a * cols + b] += X[t * cols + a] * X[t * cols + b];
    free(X1);
    free(s);
}

/* H (n x n, full) to its upper triangle packed by rows, in place (sk_gptq_prepare's form). */
static void pack_upper(double *H, int64_t n) {
    for (int64_t a = 0; a < n; a++)
        memmove(H + sk_hessian_up(a, n), H + a * n + a, (size_t)(n - a) * sizeof *H);
}

/* ||(W - Q) X^T|| / ||W X^T|| */
static double layer_err(const float *Q) {
    double e = 0, r = 0;
    for (int i = 0; i < rows; i++)
        for (int t = 0; t < T; t++) {
            double a = 0, b = 0;
            for (int c = 0; c < cols; c++) {
                a += W[i * cols + c] * X[t * cols + c];
                b += (double)Q[i * cols + c] * X[t * cols + c];
            }
            e += (a - b) * (a - b);
            r += a * a;
        }
    return sqrt(e / r);
}

/* GPTQ of W into dtype t; Qf: the file's values, Qt: what GPTQ tracked. */
static int run(shrink_dtype t, int act, int64_t block, double damp, float *Qf, double *Qt,
               int *retries) {
    double *H = malloc(sizeof(double) * (size_t)(cols * cols));
    memcpy(H, H0, sizeof(double) * (size_t)(cols * cols));
    float *Wf = malloc(sizeof(float) * (size_t)(rows * cols));
    for (int i = 0; i < rows * cols; i++) Wf[i] = (float)W[i];
    sk_gptq_opts o = {.damp = damp, .act_order = act, .block = block, .search = 0};
    sk_gptq_factor f;
    size_t rb = (size_t)sk_dtype_row_bytes(t, cols);
    uint8_t *out = malloc(rb * (size_t)rows);
    pack_upper(H, cols);
    int ok = sk_gptq_prepare(H, cols, &o, &f, "test") == SHRINK_OK;
    if (ok) ok = sk_gptq_quantize(Wf, rows, &f, t, &o, out, Qt) == SHRINK_OK;
    if (retries) *retries = f.retries;
    if (ok)
        for (int r = 0; r < rows; r++) sk_dtype(t)->to_f32(out + rb * (size_t)r, Qf + r * cols, cols);
    sk_gptq_factor_free(&f);
    free(H);
    free(Wf);
    free(out);
    return ok;
}

static void check_cases(FILE *fp, int n_cases) {
    float *Qr = malloc(sizeof(float) * (size_t)(rows * cols));
    float *Qf = malloc(sizeof(float) * (size_t)(rows * cols));
    float *Qb = malloc(sizeof(float) * (size_t)(rows * cols));
    float *Qn = malloc(sizeof(float) * (size_t)(rows * cols));
    double *Qt = malloc(sizeof(double) * (size_t)(rows * cols));
    for (int k = 0; k < n_cases; k++) {
        char name[17] = {0};
        int32_t act, block;
        double damp, rel_ref;
        if (fread(name, 1, 16, fp) != 16 || fread(&act, 4, 1, fp) != 1 ||
            fread(&block, 4, 1, fp) != 1 || fread(&damp, 8, 1, fp) != 1 ||
            fread(&rel_ref, 8, 1, fp) != 1 ||
            fread(Qr, sizeof(float), (size_t)(rows * cols), fp) != (size_t)(rows * cols)) {
            CHECK(0, "%s: truncated at case %d", FIX, k);
            break;
        }
        shrink_dtype t = SHRINK_DTYPE_F32;
        int known = shrink_dtype_parse(name, &t) == SHRINK_OK && sk_gptq_serves(t, cols);
        CHECK(known, "case %s: unknown or not served", name);
        if (!known) continue;
        if (!run(t, act, block, damp, Qf, Qt, NULL)) {
            CHECK(0, "case %s: %s", name, shrink_last_error());
            continue;
        }
        int diff = 0, track = 0;
        for (int i = 0; i < rows * cols; i++) {
            diff += fabsf(Qf[i] - Qr[i]) > 1e-6f * (fabsf(Qr[i]) + 1e-3f);
            track += (float)Qt[i] != Qf[i];
        }
        double rel = layer_err(Qf), rel_ref2 = layer_err(Qr);
        CHECK(diff <= rows * cols / 200, "%s act=%d: %d of %d values differ from the reference",
              name, act, diff, rows * cols);
        CHECK(fabs(rel - rel_ref) <= 1e-6 * rel_ref, "%s act=%d: layer error %.9g vs reference "
              "%.9g", name, act, rel, rel_ref);
        CHECK(fabs(rel_ref2 - rel_ref) <= 1e-6 * rel_ref, "%s: the fixture's error %.9g vs its Q "
              "%.9g", name, rel_ref, rel_ref2);
        CHECK(track == 0, "%s: %d tracked values differ from the file's", name, track);
        /* round to nearest with the same formulas: GPTQ must beat it */
        size_t rb = (size_t)sk_dtype_row_bytes(t, cols);
        uint8_t *row = malloc(rb);
        float *wr = malloc(sizeof(float) * (size_t)cols);
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) wr[c] = c % 61 == 5 ? 0.0f : (float)W[r * cols + c];
            sk_dtype(t)->from_f32(wr, row, cols);
            sk_dtype(t)->to_f32(row, Qn + r * cols, cols);
        }
        free(row);
        free(wr);
        double rtn = layer_err(Qn);
        CHECK(rel < rtn, "%s: GPTQ layer error %g not below round-to-nearest's %g", name, rel, rtn);
        printf("  %-14s act_order=%d block=%3d: layer error %.6g (reference %.6g, RTN %.6g), "
               "%d values differ\n", name, act, block, rel, rel_ref, rtn, diff);
        /* the lazy block width changes nothing but the rounding of the sums */
        if (k == 0 || k == 4)
            for (int bi = 0; bi < 3; bi++) {
                const int64_t bw[3] = {1, 17, 256};
                run(t, act, bw[bi], damp, Qb, Qt, NULL);
                int d2 = 0;
                for (int i = 0; i < rows * cols; i++) d2 += Qb[i] != Qf[i];
                CHECK(d2 <= rows * cols / 200, "%s: block %lld changes %d values", name,
                      (long long)bw[bi], d2);
            }
    }
    free(Qr);
    free(Qf);
    free(Qb);
    free(Qn);
    free(Qt);
}

static void check_bad(void) {
    /* not positive definite: a negative diagonal larger than the damping can fix at 0.01 */
    double *save = malloc(sizeof(double) * (size_t)(cols * cols));
    memcpy(save, H0, sizeof(double) * (size_t)(cols * cols));
    double mean = 0;
    for (int c = 0; c < cols; c++) mean += H0[c * cols + c];
    mean /= cols;
    H0[3 * cols + 3] = -0.3 * mean;
    float *Qf = malloc(sizeof(float) * (size_t)(rows * cols));
    int retries = -1;
    int ok = run(SHRINK_DTYPE_Q4_0, 0, 128, 0.01, Qf, NULL, &retries);
    CHECK(ok && retries >= 1, "a Hessian with a negative diagonal: ok %d, %d retries (%s)", ok,
          retries, shrink_last_error());
    memcpy(H0, save, sizeof(double) * (size_t)(cols * cols));
    CHECK(!sk_gptq_serves(SHRINK_DTYPE_Q4_K, cols) && !sk_gptq_serves(SHRINK_DTYPE_F16, cols) &&
          !sk_gptq_serves(SHRINK_DTYPE_Q4_0, 48), "served types");
    sk_gptq_factor f;
    sk_gptq_opts o = {.damp = 0.01, .block = 128};
    memcpy(save, H0, sizeof(double) * (size_t)(cols * cols));
    pack_upper(save, cols);
    if (sk_gptq_prepare(save, cols, &o, &f, "test") == SHRINK_OK) {
        uint8_t buf[64];
        float w[256] = {0};
        CHECK(sk_gptq_quantize(w, 0, &f, SHRINK_DTYPE_F16, &o, buf, NULL) != SHRINK_OK &&
              strstr(shrink_last_error(), "f16"), "f16 must be refused with a message");
        sk_gptq_factor_free(&f);
    }
    free(Qf);
    free(save);
}

int main(void) {
    FILE *fp = fopen(FIX, "rb");
    CHECK(fp != NULL, "%s missing (tools/ref_check/gptq_ref.py makes it)", FIX);
    if (!fp) return test_summary("test_gptq");
    char magic[8];
    int32_t hdr[4];
    uint64_t seed;
    if (fread(magic, 1, 8, fp) != 8 || memcmp(magic, "GPTQREF1", 8) || fread(hdr, 4, 4, fp) != 4 ||
        fread(&seed, 8, 1, fp) != 1) {
        CHECK(0, "%s: bad header", FIX);
        fclose(fp);
        return test_summary("test_gptq");
    }
    rows = hdr[0];
    cols = hdr[1];
    T = hdr[2];
    make_inputs(seed);
    check_cases(fp, hdr[3]);
    fclose(fp);
    check_bad();
    free(W);
    free(X);
    free(H0);
    return test_summary("test_gptq");
}
