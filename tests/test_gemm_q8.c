/*
 * test_gemm_q8.c - the integer prompt processing of q8_0, q4_0, q4_K (src/kernels/gemm_q8.c,
 * x86/gemm_q8_<isa>.c): sk_matmul at T > 1 with every kernel set this CPU runs (ref, avx2,
 * avx512), against
 *   1. the scalar integer reference, BIT FOR BIT: each token quantized by
 *      sk_act_quantize_ref (SK_ACT_Q8_32, q4_K: SK_ACT_Q8_K), Y[t, r] = vec_dot_ref(row r,
 *      token t), itself
 *      checked against a sum recomputed here from int64 block sums (catches a lost k, a wrong
 *      offset correction, a wrong nibble, a wrong scale, a tile seam, padding tokens);
 *   2. the f32 specification sk_matmul_ref (dequantized weights, f32 X) within the
 *      activation quantization bound sum_k |w_k| |x_k - xq_k| plus 1e-5 * sum |w x|
 *      (the bound test_qdot uses for decode).
 * Shapes with tails everywhere: rows not multiples of the row tiles (2, 4) or of the row
 * blocks (48), T not multiples of the token tiles (16, 32) and below one vector (8, 16),
 * one and many 32-blocks; weights quantized from normal data and raw random code bytes
 * (q8_0 with -128 codes, every q4_0 nibble, any q4_K scale and min); 1 and 2 threads (same
 * bits); the padding
 * between rows of Y (ldy > rows) left alone.
 */
#include "kernels/kernels.h"
#include "kernels/ggml_quants.h"
#include "test_util.h"

#include <omp.h>
#include <stdint.h>

typedef struct tcase {
    shrink_dtype dt;
    int64_t rows, cols, T;
    uint64_t rb;
    size_t xab;
    uint8_t *w;    /* rows x rb */
    float *wd;     /* dequantized weights */
    float *X, *Xd; /* X and its quantized-dequantized copy */
    uint8_t *xa;   /* the reference quantizer's tokens */
} tcase;

static void tcase_make(tcase *c, shrink_dtype dt, int64_t rows, int64_t cols, int64_t T,
                       int raw_codes) {
    const sk_dtype_traits *d = sk_dtype(dt);
    c->dt = dt;
    c->rows = rows;
    c->cols = cols;
    c->T = T;
    c->rb = sk_dtype_row_bytes(dt, cols);
    c->xab = sk_act_bytes(d->act, cols);
    c->w = malloc((size_t)(rows * c->rb));
    c->wd = malloc((size_t)(rows * cols) * sizeof(float));
    c->X = malloc((size_t)(T * cols) * sizeof(float));
    c->Xd = malloc((size_t)(T * cols) * sizeof(float));
    c->xa = malloc((size_t)T * c->xab);
    float *wf = malloc((size_t)cols * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *row = c->w + r * c->rb;
        for (int64_t k = 0; k < cols; k++) wf[k] = test_rng_normal() * (k % 37 == 0 ? 4.0f : 1.0f);
        d->from_f32(wf, row, cols);
        if (raw_codes) /* any code byte; the f16 scales stay those of the quantizer */
            for (int64_t b = 0; b < cols / (int64_t)d->block; b++)
                for (size_t j = dt == SHRINK_DTYPE_Q4_K ? 4 : 2; j < d->bytes; j++)
                    row[b * d->bytes + j] = (uint8_t)test_rng_u32();
        d->to_f32(row, c->wd + r * cols, cols);
    }
    free(wf);
    for (int64_t i = 0; i < T * cols; i++) /* some blocks all zero (d = 0) */
        c->X[i] = (i / 32) % 23 == 5 ? 0.0f : test_rng_normal() * (i % 41 == 0 ? 5.0f : 1.0f) + 0.1f;
    for (int64_t t = 0; t < T; t++) {
        sk_act_quantize_ref(d->act, c->X + t * cols, cols, c->xa + t * c->xab, 0.0f);
        sk_act_dequantize(d->act, c->xa + t * c->xab, cols, c->Xd + t * cols);
    }
}

static void tcase_free(tcase *c) {
    free(c->w); free(c->wd); free(c->X); free(c->Xd); free(c->xa);
}

/* code j of block b of a row, zero point removed */
static int code(shrink_dtype dt, const uint8_t *row, int64_t b, int j) {
    if (dt == SHRINK_DTYPE_Q8_0) return (int8_t)row[b * 34 + 2 + j];
    const uint8_t *qs = row + b * 18 + 2;
    return (j < 16 ? qs[j] & 15 : qs[j - 16] >> 4) - 8;
}

/* q4_K, recomputed here: 6-bit scale (mn = 0) or min (mn = 1) of sub-block j */
static int q4k_six(const uint8_t *sc, int j, int mn) {
    if (j < 4) return sc[j + 4 * mn] & 63;
    return mn ? (sc[j + 4] >> 4) | (sc[j] >> 6) << 4 : (sc[j + 4] & 15) | (sc[j - 4] >> 6) << 4;
}

static float q4k_recompute(const uint8_t *row, const uint8_t *xt, int64_t cols) {
    float want = 0.0f;
    for (int64_t b = 0; b < cols / 256; b++) {
        const uint8_t *blk = row + b * 144;
        block_q8_K xb;
        memcpy(&xb, xt + b * sizeof xb, sizeof xb);
        uint16_t hd, hm;
        memcpy(&hd, blk, 2);
        memcpy(&hm, blk + 2, 2);
        int64_t isum = 0, imin = 0;
        for (int e = 0; e < 256; e++) {
            int j = e / 32, q = blk[16 + 32 * (j / 2) + e % 32] >> (4 * (j % 2)) & 15;
            isum += (int64_t)q4k_six(blk + 4, j, 0) * q * xb.qs[e];
            imin += (int64_t)q4k_six(blk + 4, j, 1) * xb.qs[e];
        }
        want += (float)isum * (sk_f16_to_f32(hd) * xb.d) - (float)imin * (sk_f16_to_f32(hm) * xb.d);
    }
    return want;
}

/* vec_dot_ref per token and row, checked against int64 block sums recomputed here */
static float *reference(const tcase *c) {
    const sk_dtype_traits *d = sk_dtype(c->dt);
    float *R = malloc((size_t)(c->T * c->rows) * sizeof(float));
    int bad = 0;
    for (int64_t r = 0; r < c->rows; r++) {
        const uint8_t *row = c->w + r * c->rb;
        for (int64_t t = 0; t < c->T; t++) {
            const uint8_t *xt = c->xa + t * c->xab;
            R[t * c->rows + r] = d->vec_dot_ref(c->cols, row, xt);
            float want = 0.0f;
            if (c->dt == SHRINK_DTYPE_Q4_K) want = q4k_recompute(row, xt, c->cols);
            else
                for (int64_t b = 0; b < c->cols / 32; b++) {
                    sk_act_q8_32 xb;
                    memcpy(&xb, xt + b * sizeof xb, sizeof xb);
                    uint16_t h;
                    memcpy(&h, row + b * d->bytes, 2);
                    int64_t isum = 0;
                    for (int j = 0; j < 32; j++) isum += (int64_t)code(c->dt, row, b, j) * xb.qs[j];
                    want += (float)isum * (sk_f16_to_f32(h) * xb.d);
                }
            if (want != R[t * c->rows + r] && !bad++)
                fprintf(stderr, "  %s ref [%" PRId64 ",%" PRId64 "] %.9g vs recomputed %.9g\n",
                        d->name, t, r, (double)R[t * c->rows + r], (double)want);
        }
    }
    CHECK(!bad, "%s vec_dot_ref vs int64 block sums %" PRId64 "x%" PRId64, d->name, c->rows,
          c->cols);
    return R;
}

static const float SENTINEL = -12345.5f;

static void check_case(const tcase *c, const float *R, const float *F, int nthreads) {
    const int64_t ldy = c->rows + 3;
    float *Y = malloc((size_t)(c->T * ldy) * sizeof(float));
    sk_mat W = {.dtype = c->dt, .rows = c->rows, .cols = c->cols, .data = c->w};
    omp_set_num_threads(nthreads);
    for (int l = 0; l < SK_ISA_COUNT; l++) {
        const sk_kernel_set *ks = sk_kernels_get((sk_isa)l);
        if (!ks) continue;
        const sk_q8_gemm *g = sk_q8_gemm_get((sk_isa)l);
        const int taken = sk_matmul_q8_scratch_bytes((sk_isa)l, &W, c->T) > 0;
        /* AVX2 has no q4_K kernel: the f32 GEMM then, checked against the f32 bound only */
        const int integer = c->dt != SHRINK_DTYPE_Q4_K || !g || g->mr[SK_Q8G_Q4_K] > 0;
        CHECK(taken == integer, "%s: %s taken by the integer GEMM: %d", ks->name,
              sk_dtype(c->dt)->name, taken);
        for (int64_t i = 0; i < c->T * ldy; i++) Y[i] = SENTINEL;
        CHECK(sk_matmul_with(ks, &W, c->X, c->T, Y, ldy) == SHRINK_OK, "sk_matmul_with");
        int64_t nbits = 0, nfar = 0, npad = 0;
        for (int64_t t = 0; t < c->T; t++) {
            for (int64_t r = 0; r < c->rows; r++) {
                float y = Y[t * ldy + r], want = R[t * c->rows + r];
                if (integer && !(y == want) && !nbits++)
                    fprintf(stderr, "  %s/%s %s: Y[%" PRId64 ",%" PRId64 "] = %.9g, integer ref "
                            "%.9g\n", ks->name, g ? g->name : "ref", sk_dtype(c->dt)->name, t,
                            r, (double)y, (double)want);
                double qerr = 0, mag = 0;
                for (int64_t k = 0; k < c->cols; k++) {
                    double wk = fabs((double)c->wd[r * c->cols + k]);
                    qerr += wk * fabs((double)c->X[t * c->cols + k] - c->Xd[t * c->cols + k]);
                    mag += wk * fabs((double)c->X[t * c->cols + k]);
                }
                double tol = qerr * (1 + 1e-5) + 1e-5 * mag + 1e-30;
                if (!(fabs((double)y - F[t * c->rows + r]) <= tol) && !nfar++)
                    fprintf(stderr, "  %s %s: Y[%" PRId64 ",%" PRId64 "] = %.9g, f32 reference "
                            "%.9g (tol %.3g)\n", ks->name, sk_dtype(c->dt)->name, t, r,
                            (double)y, (double)F[t * c->rows + r], tol);
            }
            for (int64_t r = c->rows; r < ldy; r++) npad += Y[t * ldy + r] != SENTINEL;
        }
        CHECK(nbits == 0 && nfar == 0 && npad == 0,
              "%s (%s) %s %" PRId64 "x%" PRId64 " T=%" PRId64 " %d thread(s): %" PRId64
              " outputs not bit-identical to the integer reference, %" PRId64 " beyond the f32 "
              "bound, %" PRId64 " padding floats written", ks->name, g ? g->name : "ref dots",
              sk_dtype(c->dt)->name, c->rows, c->cols, c->T, nthreads, nbits, nfar, npad);
    }
    free(Y);
}

static void run_case(shrink_dtype dt, int64_t rows, int64_t cols, int64_t T, int raw) {
    tcase c;
    tcase_make(&c, dt, rows, cols, T, raw);
    float *R = reference(&c);
    float *F = malloc((size_t)(T * rows) * sizeof(float));
    sk_mat Wf = {.dtype = SHRINK_DTYPE_F32, .rows = rows, .cols = cols, .data = c.wd};
    sk_matmul_ref(&Wf, c.X, T, F, rows);
    check_case(&c, R, F, 2);
    if (rows * cols * T >= (1 << 16)) check_case(&c, R, F, 1); /* threaded or not: same bits */
    free(F);
    free(R);
    tcase_free(&c);
}

int main(void) {
    test_rng_seed(0x9E3779B97F4A7C15ull);
    for (int l = 0; l < SK_ISA_COUNT; l++)
        if (sk_kernels_get((sk_isa)l)) {
            const sk_q8_gemm *g = sk_q8_gemm_get((sk_isa)l);
            printf("  level %d: q8_0/q4_0/q4_K prompt GEMM %s\n", l,
                   g ? g->name : "ref (vec_dot_ref per token)");
        }
    static const shrink_dtype dts[] = {SHRINK_DTYPE_Q8_0, SHRINK_DTYPE_Q4_0};
    static const int64_t rows_[] = {1, 3, 4, 5, 47, 49, 97};
    static const int64_t T_[] = {2, 7, 8, 9, 16, 17, 31, 32, 33, 50};
    static const int64_t cols_[] = {32, 64, 96, 288, 1024};
    int n = 0;
    for (size_t di = 0; di < 2; di++)
        for (size_t ci = 0; ci < sizeof cols_ / sizeof cols_[0]; ci++)
            for (int s = 0; s < 4; s++, n++) {
                int64_t rows = rows_[(size_t)(n * 5 + s) % (sizeof rows_ / sizeof rows_[0])];
                int64_t T = T_[(size_t)(n * 3 + s) % (sizeof T_ / sizeof T_[0])];
                run_case(dts[di], rows, cols_[ci], T, s % 2);
            }
    /* the 1B shapes' widths, rows over both threads and several row blocks */
    run_case(SHRINK_DTYPE_Q8_0, 130, 2048, 40, 0);
    run_case(SHRINK_DTYPE_Q4_0, 101, 2048, 37, 1);
    run_case(SHRINK_DTYPE_Q4_0, 20, 5632, 19, 0);
    /* q4_K: one and several super-blocks, the 1B widths */
    static const int64_t kcols[] = {256, 512, 768};
    for (size_t ci = 0; ci < 3; ci++)
        for (int s = 0; s < 4; s++, n++) {
            int64_t rows = rows_[(size_t)(n * 5 + s) % (sizeof rows_ / sizeof rows_[0])];
            int64_t T = T_[(size_t)(n * 3 + s) % (sizeof T_ / sizeof T_[0])];
            run_case(SHRINK_DTYPE_Q4_K, rows, kcols[ci], T, s % 2);
        }
    run_case(SHRINK_DTYPE_Q4_K, 99, 2048, 35, 1);
    run_case(SHRINK_DTYPE_Q4_K, 7, 5632, 18, 0);
    /* other types are not taken */
    sk_mat W = {.dtype = SHRINK_DTYPE_Q6_K, .rows = 4, .cols = 256, .data = NULL};
    CHECK(sk_matmul_q8_scratch_bytes(sk_cpu_isa(), &W, 8) == 0, "q6_K taken by the q8 GEMM");
    return test_summary("test_gemm_q8");
}
