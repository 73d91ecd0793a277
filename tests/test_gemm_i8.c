/*
 * test_gemm_i8.c - the integer prompt processing of the W8A8 types (src/kernels/gemm_i8.c,
 * x86/gemm_i8_<isa>.c): sk_matmul at T > 1 for w8a8 and w8a8_static with every kernel set
 * this CPU runs (ref, avx2, avx512), against
 *   1. the scalar integer reference, BIT FOR BIT: each token quantized by
 *      sk_act_quantize_ref, Y[t, r] = vec_dot_ref(row r, token t), itself checked against an
 *      int64 sum recomputed here times (d_w * d_x) (catches a lost k, a wrong offset
 *      correction, a wrong scale, a K-block seam, a padding byte that is not zero);
 *   2. sk_matmul_ref on the fake-quantized X (the f32 specification), within 1e-5 * sum |w x|,
 *      and a float64 dot of the dequantized operands, within 1e-6 * sum |w x|.
 * Shapes with tails everywhere: rows not multiples of the panel (16, 32), T not multiples of
 * the tile (6, 12), cols odd, multiples of 4, of 64, several K blocks (512, 1024) with a
 * partial group of 4 at the end; weights with -128 codes (a file may hold them);
 * w8a8_static with and without a calibrated scale (clamping); 1 and 2 threads (same bits);
 * the extremes of int32 at SK_I8_MAX_COLS (all codes -128 or 127, all q = +-127);
 * the padding between rows of Y (ldy > rows) left alone. Rows wider than SK_I8_MAX_COLS
 * take the fake-quantized f32 GEMM: checked against the bound of test_qdot.
 */
#include "kernels/kernels.h"
#include "test_util.h"

#include <omp.h>
#include <stdint.h>


/* A W8A8 test case: weights (quantized), X, the reference quantized tokens. */
typedef struct tcase {
    shrink_dtype dt;
    int64_t rows, cols, T;
    uint8_t *w;    /* rows x row bytes */
    float *wd;     /* dequantized weights (rows x cols) */
    float *X, *Xd; /* X and its fake-quantized copy (T x cols) */
    uint8_t *xa;   /* T x sk_act_bytes: the reference quantizer's tokens */
    size_t xab;
    uint64_t rb;
} tcase;

static void tcase_derive(tcase *c);

static void tcase_make(tcase *c, shrink_dtype dt, int64_t rows, int64_t cols, int64_t T,
                       int calibrated, int min_codes) {
    const sk_dtype_traits *d = sk_dtype(dt);
    c->dt = dt;
    c->rows = rows;
    c->cols = cols;
    c->T = T;
    c->rb = sk_dtype_row_bytes(dt, cols);
    c->xab = sk_act_bytes(d->act, cols);
    float *wf = malloc((size_t)(rows * cols) * sizeof(float));
    c->X = malloc((size_t)(T * cols) * sizeof(float));
    c->Xd = malloc((size_t)(T * cols) * sizeof(float));
    c->wd = malloc((size_t)(rows * cols) * sizeof(float));
    c->w = malloc((size_t)(rows * c->rb));
    c->xa = malloc((size_t)T * c->xab);
    for (int64_t i = 0; i < rows * cols; i++) wf[i] = test_rng_normal() * (i % 89 == 0 ? 6.0f : 1.0f);
    float amax = 0.0f;
    for (int64_t i = 0; i < T * cols; i++) {
        c->X[i] = test_rng_normal() * (i % 41 == 0 ? 5.0f : 1.0f) + 0.2f;
        amax = fmaxf(amax, fabsf(c->X[i]));
    }
    sk_qparams p = {0};
    p.act_scale = calibrated ? amax / 127.0f * 0.6f : 0.0f; /* some tokens clamp */
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *row = c->w + r * c->rb;
        if (d->quantize) d->quantize(wf + r * cols, row, cols, &p);
        else d->from_f32(wf + r * cols, row, cols);
        if (min_codes) /* -128: a legal byte the quantizer never writes */
            for (int64_t k = r % 7; k < cols; k += 7) row[d->row_head + k] = 0x80;
    }
    free(wf);
    tcase_derive(c);
}

/* wd, xa, Xd from w and X */
static void tcase_derive(tcase *c) {
    const sk_dtype_traits *d = sk_dtype(c->dt);
    const int64_t cols = c->cols, T = c->T;
    for (int64_t r = 0; r < c->rows; r++) d->to_f32(c->w + r * c->rb, c->wd + r * cols, cols);
    float ss = 0.0f;
    if (d->act == SK_ACT_I8_STATIC) memcpy(&ss, c->w + SK_ACT_STATIC_OFF, sizeof ss);
    for (int64_t t = 0; t < T; t++) {
        sk_act_quantize_ref(d->act, c->X + t * cols, cols, c->xa + t * c->xab, ss);
        sk_act_dequantize(d->act, c->xa + t * c->xab, cols, c->Xd + t * cols);
    }
}

static void tcase_free(tcase *c) {
    free(c->w); free(c->wd); free(c->X); free(c->Xd); free(c->xa);
}

/* Y (ldy = rows) of the reference: vec_dot_ref per token and row; and check the reference
 * itself against an int64 sum recomputed here (same single f32 product, so the same bits). */
static float *reference(const tcase *c) {
    const sk_dtype_traits *d = sk_dtype(c->dt);
    float *R = malloc((size_t)(c->T * c->rows) * sizeof(float));
    int bad = 0;
    for (int64_t r = 0; r < c->rows; r++) {
        const uint8_t *row = c->w + r * c->rb;
        const int8_t *q = (const int8_t *)(row + d->row_head);
        float dw;
        memcpy(&dw, row, sizeof dw);
        for (int64_t t = 0; t < c->T; t++) {
            const uint8_t *xt = c->xa + t * c->xab;
            R[t * c->rows + r] = d->vec_dot_ref(c->cols, row, xt);
            sk_act_i8 h;
            memcpy(&h, xt, sizeof h);
            const int8_t *xq = (const int8_t *)(xt + sizeof h);
            int64_t isum = 0;
            for (int64_t k = 0; k < c->cols; k++) isum += (int64_t)q[k] * xq[k];
            float want = (float)isum * (dw * h.d);
            if (memcmp(&want, &R[t * c->rows + r], sizeof want) != 0 && !bad++)
                fprintf(stderr, "  %s ref [%" PRId64 ",%" PRId64 "] %.9g vs int64 %.9g\n",
                        d->name, t, r, (double)R[t * c->rows + r], (double)want);
        }
    }
    CHECK(!bad, "%s vec_dot_ref vs int64 recomputation %" PRId64 "x%" PRId64, d->name, c->rows,
          c->cols);
    return R;
}

static const float SENTINEL = -12345.5f;

/* sk_matmul_with every set (nthreads threads): bit-identical to R; padding untouched; within
 * 1e-6 * sum |w xd| of the float64 dot of the dequantized operands; and (f32_check) within
 * 1e-5 * sum |w xd| of sk_matmul_ref on the fake-quantized X (not for the extremes, where
 * the f32 reference's own index-order sum of 2^17 equal terms is off by more). */
static void check_case(const tcase *c, const float *R, int nthreads, int f32_check) {
    const int64_t ldy = c->rows + 3;
    float *Y = malloc((size_t)(c->T * ldy) * sizeof(float));
    float *F = malloc((size_t)(c->T * c->rows) * sizeof(float));
    sk_mat W = {.dtype = c->dt, .rows = c->rows, .cols = c->cols, .data = c->w};
    sk_mat Wf = {.dtype = SHRINK_DTYPE_F32, .rows = c->rows, .cols = c->cols, .data = c->wd};
    sk_matmul_ref(&Wf, c->Xd, c->T, F, c->rows);
    omp_set_num_threads(nthreads);
    for (int l = 0; l < SK_ISA_COUNT; l++) {
        const sk_kernel_set *ks = sk_kernels_get((sk_isa)l);
        if (!ks) continue;
        const sk_i8_gemm *g = sk_i8_gemm_get((sk_isa)l);
        for (int64_t i = 0; i < c->T * ldy; i++) Y[i] = SENTINEL;
        sk_matmul_with(ks, &W, c->X, c->T, Y, ldy);
        int64_t nbits = 0, nfar = 0, npad = 0, nf64 = 0;
        for (int64_t t = 0; t < c->T; t++) {
            for (int64_t r = 0; r < c->rows; r++) {
                float y = Y[t * ldy + r], want = R[t * c->rows + r];
                if (memcmp(&y, &want, sizeof y) != 0 && !nbits++)
                    fprintf(stderr, "  %s/%s %s: Y[%" PRId64 ",%" PRId64 "] = %.9g, integer ref "
                            "%.9g\n", ks->name, g ? g->name : "ref", sk_dtype(c->dt)->name, t,
                            r, (double)y, (double)want);
                double mag = 0, exact = 0;
                for (int64_t k = 0; k < c->cols; k++) {
                    double p = (double)c->wd[r * c->cols + k] * c->Xd[t * c->cols + k];
                    mag += fabs(p);
                    exact += p;
                }
                double tol = 1e-5 * mag + 1e-30;
                if (!(fabs((double)y - exact) <= 1e-6 * mag + 1e-30) && !nf64++)
                    fprintf(stderr, "  %s %s: Y[%" PRId64 ",%" PRId64 "] = %.9g, float64 %.9g\n",
                            ks->name, sk_dtype(c->dt)->name, t, r, (double)y, exact);
                if (f32_check && !(fabs((double)y - F[t * c->rows + r]) <= tol) && !nfar++)
                    fprintf(stderr, "  %s %s: Y[%" PRId64 ",%" PRId64 "] = %.9g, f32 ref on "
                            "fake-quantized X %.9g (tol %.3g)\n", ks->name,
                            sk_dtype(c->dt)->name, t, r, (double)y,
                            (double)F[t * c->rows + r], tol);
            }
            for (int64_t r = c->rows; r < ldy; r++) npad += Y[t * ldy + r] != SENTINEL;
        }
        CHECK(nbits == 0 && nfar == 0 && npad == 0 && nf64 == 0,
              "%s (%s) %s %" PRId64 "x%" PRId64 " T=%" PRId64 " %d thread(s): %" PRId64
              " outputs not bit-identical to the integer reference, %" PRId64 " beyond the f32 "
              "bound, %" PRId64 " off the float64 dot, %" PRId64 " padding floats written",
              ks->name, g ? g->name : "ref dots", sk_dtype(c->dt)->name, c->rows, c->cols, c->T,
              nthreads, nbits, nfar, nf64, npad);
    }
    free(Y);
    free(F);
}

static void run_case(shrink_dtype dt, int64_t rows, int64_t cols, int64_t T, int calibrated,
                     int min_codes) {
    tcase c;
    tcase_make(&c, dt, rows, cols, T, calibrated, min_codes);
    float *R = reference(&c);
    check_case(&c, R, 2, 1);
    if (rows * cols * T >= (1 << 16)) check_case(&c, R, 1, 1); /* threaded vs not: same bits */
    free(R);
    tcase_free(&c);
}

static void test_shapes(void) {
    static const shrink_dtype dts[] = {SHRINK_DTYPE_W8A8, SHRINK_DTYPE_W8A8_STATIC};
    /* rows: below, at and past the panels (16 avx2, 32 avx512); T: the tiles (6, 12) */
    static const int64_t rows_[] = {1, 15, 16, 33, 70, 131};
    static const int64_t T_[] = {2, 5, 6, 7, 12, 13, 30};
    /* cols: tiny and odd, multiples of 4 and of 64, K blocks of 512 (avx2) and 1024 (avx512)
     * with partial groups */
    static const int64_t cols_[] = {1, 3, 4, 17, 64, 77, 128, 255, 513, 1024, 1027, 2049};
    int n = 0;
    for (size_t di = 0; di < 2; di++)
        for (size_t ci = 0; ci < sizeof cols_ / sizeof cols_[0]; ci++) {
            /* a few (rows, T) pairs per width, walking the lists */
            for (int s = 0; s < 3; s++, n++) {
                int64_t rows = rows_[(size_t)(n * 5 + s) % (sizeof rows_ / sizeof rows_[0])];
                int64_t T = T_[(size_t)(n * 3 + s) % (sizeof T_ / sizeof T_[0])];
                run_case(dts[di], rows, cols_[ci], T, s != 1, n % 4 == 3);
            }
        }
    /* the thread grid splitting tokens (one panel, many tiles) and a larger threaded case */
    run_case(SHRINK_DTYPE_W8A8, 20, 2048, 40, 1, 0);
    run_case(SHRINK_DTYPE_W8A8_STATIC, 20, 2048, 40, 1, 1);
    run_case(SHRINK_DTYPE_W8A8, 300, 1100, 29, 1, 1);
    run_case(SHRINK_DTYPE_W8A8_STATIC, 257, 700, 64, 1, 0);
    /* near SK_I8_MAX_COLS: 128 / 256 K blocks */
    run_case(SHRINK_DTYPE_W8A8, 3, 130561, 2, 1, 1);
}

/* The int32 range at SK_I8_MAX_COLS: every weight code -128 (or 127) and every token q = 127
 * (or -127 / a mix): |sum| up to 128 * 127 * 2^17 = 2130706432 (and the AVX-512 offset sum
 * 128 * sum x as large), exact at every level. */
static void test_extremes(void) {
    static const struct { uint8_t wcode; float x; } ex[] = {
        {0x80, 1.0f}, {0x80, -1.0f}, {0x7F, 1.0f}, {0x7F, -1.0f}, {0x81, 1.0f},
    };
    for (size_t e = 0; e < sizeof ex / sizeof ex[0]; e++) {
        tcase c;
        tcase_make(&c, e % 2 ? SHRINK_DTYPE_W8A8_STATIC : SHRINK_DTYPE_W8A8, 2, SK_I8_MAX_COLS, 3,
                   0, 0);
        const size_t head = sk_dtype(c.dt)->row_head;
        for (int64_t r = 0; r < c.rows; r++)
            memset(c.w + r * c.rb + head, ex[e].wcode, (size_t)c.cols);
        for (int64_t i = 0; i < c.T * c.cols; i++) /* token 2: alternating signs */
            c.X[i] = i / c.cols == 2 && i % 2 ? -ex[e].x : ex[e].x;
        tcase_derive(&c);
        float *R = reference(&c);
        check_case(&c, R, 2, 0);
        free(R);
        tcase_free(&c);
    }
}

/* Rows wider than SK_I8_MAX_COLS: sk_matmul_i8 declines, sk_matmul runs the fake-quantized
 * f32 GEMM; its result is within 1e-5 * sum |w xd| of the integer reference. */
static void test_wide_fallback(void) {
    tcase c;
    tcase_make(&c, SHRINK_DTYPE_W8A8, 3, SK_I8_MAX_COLS + 5, 2, 1, 0);
    sk_mat W = {.dtype = c.dt, .rows = c.rows, .cols = c.cols, .data = c.w};
    float Y[6];
    for (int l = 0; l < SK_ISA_COUNT; l++)
        if (sk_kernels_get((sk_isa)l))
            CHECK(sk_matmul_i8((sk_isa)l, &W, c.X, c.T, Y, c.rows, NULL) == 0,
                  "sk_matmul_i8 level %d took a row of %" PRId64 " > SK_I8_MAX_COLS", l, c.cols);
    float *R = reference(&c);
    for (int l = 0; l < SK_ISA_COUNT; l++) {
        const sk_kernel_set *ks = sk_kernels_get((sk_isa)l);
        if (!ks) continue;
        sk_matmul_with(ks, &W, c.X, c.T, Y, c.rows);
        int bad = 0;
        for (int64_t t = 0; t < c.T; t++)
            for (int64_t r = 0; r < c.rows; r++) {
                double mag = 0;
                for (int64_t k = 0; k < c.cols; k++)
                    mag += fabs((double)c.wd[r * c.cols + k] * c.Xd[t * c.cols + k]);
                bad += !(fabs((double)Y[t * c.rows + r] - R[t * c.rows + r]) <= 1e-5 * mag);
            }
        CHECK(!bad, "%s: wide rows (fake-quantized f32 GEMM): %d outputs off", ks->name, bad);
    }
    free(R);
    tcase_free(&c);
}

int main(void) {
    test_rng_seed(0x2545F4914F6CDD1Dull);
    for (int l = 0; l < SK_ISA_COUNT; l++)
        if (sk_kernels_get((sk_isa)l)) {
            const sk_i8_gemm *g = sk_i8_gemm_get((sk_isa)l);
            printf("  level %d: int8 GEMM %s\n", l, g ? g->name : "ref (vec_dot_ref per token)");
        }
    test_shapes();
    test_extremes();
    test_wide_fallback();
    return test_summary("test_gemm_i8");
}
