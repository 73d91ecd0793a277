/*
 * test_dequant.c - the SIMD row dequantizers (src/kernels/dequant.c, x86/dequant_<isa>.c) and
 * the prompt GEMM that packs with them (matmul.c, pack_w_blocks), for every quantized dtype
 * and every level this CPU runs:
 *   1. each level's dequantizer against the reference (sk_dequant_ref: the dtype row's to_f32 /
 *      to_f32_range), BIT FOR BIT (NaN only where the reference gives NaN): rows from the
 *      quantizer and rows of random bytes (any scale bits, subnormal, negative, NaN), several
 *      lengths (1..8 blocks; odd lengths for the per-row types), ranges starting inside the
 *      row, rows and outputs at odd addresses; nothing written past n. Catches a wrong
 *      nibble, 5th/6th bit or scale, an operation order that rounds differently, a fused
 *      multiply-add, a misread head;
 *   2. sk_matmul at T > 1 with each GEMM set: bit-identical to the same set on the matrix
 *      dequantized to f32 (cols a multiple of 256: the same K blocks), so the packed panels
 *      are exactly the dequantized weights (row and token tails included); and within
 *      1e-5 * sum |w x| of sk_matmul_ref where the K blocks are rounded to whole
 *      quantization blocks (cols = 288, 416: blocks of 32 across a K-block seam).
 */
#include "kernels/kernels.h"
#include "kernels/palette.h"
#include "test_util.h"

#include <stdint.h>

static int same_float(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

/* One row of `cols` elements of dtype t: quantized normal data, or random bytes. */
static uint8_t *make_row(shrink_dtype t, int64_t cols, int random_bytes) {
    uint64_t rb = sk_dtype_row_bytes(t, cols);
    uint8_t *row = malloc(rb);
    if (random_bytes) {
        for (uint64_t i = 0; i < rb; i++) row[i] = (uint8_t)(test_rng_u() * 256.0);
        if (sk_pal_k(t)) { /* palettes: a lone row is a group of one (palette.h) */
            row[2] = row[3] = 0;
            row[4] = (uint8_t)(cols / 32);
            row[5] = (uint8_t)(cols / 32 >> 8);
        }
        if (sk_dtype_sparse_bm(t)) { /* a sound index (the GGUF reader refuses others) */
            const size_t hb = sk_dtype(t)->row_head;
            uint32_t nnz = 0, nb = (uint32_t)(cols / 64);
            for (int64_t b = 0; b < cols / 8; b++) {
                row[hb + b] &= (uint8_t)(test_rng_u() * 256.0); /* about a quarter set */
                nnz += (uint32_t)__builtin_popcount(row[hb + b]);
            }
            memcpy(row, &nnz, 4);
            memcpy(row + 4, &nb, 4);
        }
    } else {
        float *x = malloc((size_t)cols * sizeof(float));
        for (int64_t i = 0; i < cols; i++) x[i] = test_rng_normal() * (i % 7 == 0 ? 3.0f : 1.0f);
        sk_dtype(t)->from_f32(x, row, cols);
        free(x);
    }
    return row;
}

/* fn against the reference on elements [k0, k0 + n) of a row of cols, at byte offset `off` */
static void check_range(const char *isa, shrink_dtype t, sk_dequant_fn fn, int64_t cols,
                        int64_t k0, int64_t n, int random_bytes, int off) {
    uint8_t *row = make_row(t, cols, random_bytes);
    uint64_t rb = sk_dtype_row_bytes(t, cols);
    uint8_t *odd = malloc(rb + 8);
    memcpy(odd + off, row, rb);
    float *ref = malloc((size_t)n * sizeof(float));
    float *out = malloc((size_t)(n + 2) * sizeof(float));
    for (int64_t i = 0; i < n + 2; i++) out[i] = -12345.0f;
    sk_dequant_ref(t, row, k0, n, ref);
    fn(odd + off, k0, n, out + 1); /* out + 1: not 8-byte aligned either */
    int64_t bad = -1;
    for (int64_t i = 0; i < n && bad < 0; i++)
        if (!same_float(ref[i], out[1 + i])) bad = i;
    CHECK(bad < 0, "%s %s: cols %lld k0 %lld n %lld %s off %d: element %lld is %.9g, ref %.9g",
          isa, shrink_dtype_name(t), (long long)cols, (long long)k0, (long long)n,
          random_bytes ? "random bytes" : "quantized", off, (long long)bad,
          bad >= 0 ? out[1 + bad] : 0.0, bad >= 0 ? ref[bad] : 0.0);
    CHECK(out[0] == -12345.0f && out[n + 1] == -12345.0f, "%s %s: wrote outside [0, %lld)", isa,
          shrink_dtype_name(t), (long long)n);
    free(out);
    free(ref);
    free(odd);
    free(row);
}

static void test_rows(void) {
    static const int64_t nblk[] = {1, 2, 3, 5, 8};
    static const int64_t nodd[] = {1, 7, 15, 16, 17, 33, 77, 300};
    for (int l = SK_ISA_AVX2; l < SK_ISA_COUNT; l++) {
        if ((sk_isa)l > sk_cpu_isa()) continue;
        const char *isa = l == SK_ISA_AVX2 ? "avx2" : "avx512";
        for (int d = 0; d < SHRINK_DTYPE_COUNT; d++) {
            shrink_dtype t = (shrink_dtype)d;
            if (!sk_dtype_quantized(t)) {
                CHECK(sk_dequant_get((sk_isa)l, t) == NULL, "%s: %s has a dequantizer", isa,
                      shrink_dtype_name(t));
                continue;
            }
            sk_dequant_fn fn = l == SK_ISA_AVX2 ? sk_dequant_avx2(t) : sk_dequant_avx512(t);
            CHECK(fn != NULL, "%s: no dequantizer for %s", isa, shrink_dtype_name(t));
            CHECK(sk_dequant_get((sk_isa)l, t) == fn, "%s %s: sk_dequant_get", isa,
                  shrink_dtype_name(t));
            if (!fn) continue;
            const int64_t bl = (int64_t)sk_dtype(t)->block;
            const int per_elem = bl == 1;
            const int nlen = per_elem ? 8 : 5;
            for (int li = 0; li < nlen; li++) {
                int64_t n = per_elem ? nodd[li] : nblk[li] * bl;
                for (int rnd = 0; rnd < 2; rnd++)
                    for (int off = 0; off < 4; off += 1 + 2 * (off == 0)) { /* 0, 1, 3 */
                        check_range(isa, t, fn, n, 0, n, rnd, off);
                        int64_t k0 = per_elem ? 5 : 2 * bl; /* a range inside a longer row */
                        check_range(isa, t, fn, k0 + n + (per_elem ? 3 : bl), k0, n, rnd, off);
                    }
            }
        }
    }
    CHECK(sk_dequant_get(SK_ISA_REF, SHRINK_DTYPE_Q4_K) == NULL, "ref level: no SIMD dequantizer");
}

/* ---- the prompt GEMM ------------------------------------------------------------------------ */

static void check_gemm(const sk_kernel_set *ks, shrink_dtype t, int64_t rows, int64_t cols,
                       int64_t T) {
    const uint64_t rb = sk_dtype_row_bytes(t, cols);
    uint8_t *wq = malloc((size_t)(rb * (uint64_t)rows));
    float *wf = malloc((size_t)(rows * cols) * sizeof(float));
    float *x = malloc((size_t)(T * cols) * sizeof(float));
    float *y = malloc((size_t)(T * rows) * sizeof(float));
    float *yf = malloc((size_t)(T * rows) * sizeof(float));
    float *yr = malloc((size_t)(T * rows) * sizeof(float));
    float *tmp = malloc((size_t)cols * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t k = 0; k < cols; k++) tmp[k] = test_rng_normal();
        sk_dtype(t)->from_f32(tmp, wq + (uint64_t)r * rb, cols);
        sk_dequant_ref(t, wq + (uint64_t)r * rb, 0, cols, wf + r * cols);
    }
    for (int64_t i = 0; i < T * cols; i++) x[i] = test_rng_normal();
    sk_mat mq = {.dtype = t, .rows = rows, .cols = cols, .data = wq};
    sk_mat mf = {.dtype = SHRINK_DTYPE_F32, .rows = rows, .cols = cols, .data = wf};
    sk_matmul_with(ks, &mq, x, T, y, rows);
    sk_matmul_ref(&mf, x, T, yr, rows);
    int64_t bad = -1;
    double worst = 0;
    for (int64_t tt = 0; tt < T; tt++)
        for (int64_t r = 0; r < rows; r++) {
            double mag = 0;
            for (int64_t k = 0; k < cols; k++) mag += fabs((double)wf[r * cols + k] * x[tt * cols + k]);
            double e = fabs((double)y[tt * rows + r] - yr[tt * rows + r]) / (mag + 1e-30);
            if (e > worst) worst = e;
        }
    CHECK(worst <= 1e-5, "%s %s %lldx%lld T %lld: vs sk_matmul_ref %.3g * sum|wx|", ks->name,
          shrink_dtype_name(t), (long long)rows, (long long)cols, (long long)T, worst);
    if (cols % 256 == 0) { /* the same K blocks as f32: the same panels, the same bits */
        sk_matmul_with(ks, &mf, x, T, yf, rows);
        for (int64_t i = 0; i < T * rows && bad < 0; i++)
            if (memcmp(&y[i], &yf[i], sizeof(float)) != 0) bad = i;
        CHECK(bad < 0, "%s %s %lldx%lld T %lld: output %lld differs from the f32 GEMM of the "
              "dequantized matrix (%.9g vs %.9g)", ks->name, shrink_dtype_name(t),
              (long long)rows, (long long)cols, (long long)T, (long long)bad,
              bad >= 0 ? y[bad] : 0.0, bad >= 0 ? yf[bad] : 0.0);
    }
    free(tmp);
    free(yr);
    free(yf);
    free(y);
    free(x);
    free(wf);
    free(wq);
}

static void test_gemm(void) {
    for (int l = SK_ISA_AVX2; l < SK_ISA_COUNT; l++) {
        const sk_kernel_set *ks = sk_kernels_get((sk_isa)l);
        if (!ks || !ks->tile) continue;
        for (int d = 0; d < SHRINK_DTYPE_COUNT; d++) {
            shrink_dtype t = (shrink_dtype)d;
            const sk_dtype_traits *dt = sk_dtype(t);
            if (!sk_dtype_quantized(t) || dt->act == SK_ACT_I8_TOKEN || dt->act == SK_ACT_I8_STATIC)
                continue; /* w8a8*: the int8 GEMM (test_gemm_i8) */
            sk_mat probe = {.dtype = t, .rows = 70, .cols = 512, .data = NULL};
            if (sk_matmul_q8_scratch_bytes((sk_isa)l, &probe, 13) > 0)
                continue; /* the integer GEMM of q8_0 / q4_0 / q4_K (test_gemm_q8) */
            check_gemm(ks, t, 70, 512, 13);
            if (dt->block <= 32) {
                check_gemm(ks, t, 37, 288, 5); /* K blocks of 160 + 128 */
                check_gemm(ks, t, 33, 416, 17);
            } else if (dt->block <= 128) {
                check_gemm(ks, t, 37, 384, 5); /* 128-blocks: K blocks of 256 + 128 */
            }
        }
    }
}

int main(void) {
    if (sk_cpu_isa() < SK_ISA_AVX2) test_skip("test_dequant", "no AVX2 on this CPU");
    test_rows();
    test_gemm();
    return test_summary("test_dequant");
}
