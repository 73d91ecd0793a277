/*
 * bench_palette.c - decode (T = 1) speed of the palette types against q4_0 and int4_g128 at the
 * matrix shapes of a 1.1B Llama (TinyLlama: dim 2048, ffn 5632), as ratios measured side by
 * side: each round times one GEMV of every dtype in turn (interleaved, so a busy shared host
 * slows them alike), over enough copies of each matrix to exceed the caches (ram regime); the
 * median over rounds of t(q4_0) / t(dtype) is the speed relative to q4_0. Weights: normal data,
 * palettes with real groups of k rows (the k-means of shrink quantize), q4_0 / int4_g128 from
 * their quantizers. Never asserts; prints a markdown table.
 *
 * usage: bench_palette [--rounds N] [--mib M]   (default 30 rounds, >= 96 MiB per dtype)
 */
#include "kernels/kernels.h"
#include "kernels/palette.h"
#include "quant/palette.h"

#include "bench_util.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* one (rows, cols) matrix of type dt from random data */
static void *make(shrink_dtype dt, int64_t rows, int64_t cols, uint64_t seed) {
    float *x = malloc((size_t)(rows * cols) * sizeof(float));
    for (int64_t i = 0; i < rows * cols; i++) x[i] = bench_frand(&seed) * 0.05f;
    const uint64_t rb = sk_dtype_row_bytes(dt, cols);
    uint8_t *w = sk_aligned_alloc(64, (size_t)(rb * (uint64_t)rows));
    const int k = sk_pal_k(dt);
    float *pal = k ? malloc((size_t)((rows + k - 1) / k * k) * sizeof(float)) : NULL;
    if (k) sk_palette_fit(dt, x, rows, cols, NULL, pal);
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        if (k) {
            int64_t g0 = r / k * k;
            sk_qparams p = {.palette = pal + g0, .pal_j = (int)(r - g0),
                            .pal_g = (int)(rows - g0 < k ? rows - g0 : k)};
            sk_dtype(dt)->quantize(x + r * cols, w + r * rb, cols, &p);
        } else {
            sk_dtype(dt)->from_f32(x + r * cols, w + r * rb, cols);
        }
    }
    free(pal);
    free(x);
    return w;
}

int main(int argc, char **argv) {
    int rounds = 30;
    double mib = 96;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mib") && i + 1 < argc) mib = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--rounds N] [--mib M]\n", argv[0]);
            return 2;
        }
    }
    if (rounds < 3) rounds = 3;
    static const shrink_dtype dts[] = {SHRINK_DTYPE_Q4_0, SHRINK_DTYPE_INT4_G128,
                                       SHRINK_DTYPE_PAL16, SHRINK_DTYPE_PAL4,
                                       SHRINK_DTYPE_PAL256};
    enum { ND = sizeof dts / sizeof dts[0] };
    static const struct { const char *name; int64_t rows, cols; } shapes[] = {
        {"wq/wo 2048x2048", 2048, 2048}, {"gate/up 5632x2048", 5632, 2048},
        {"down 2048x5632", 2048, 5632},
    };
    sk_kernels_init();
    printf("# bench_palette\n\nkernels: %s, %d threads, %d rounds; load average at start: ",
           sk_kernels_isa(), omp_get_max_threads(), rounds);
    FILE *la = fopen("/proc/loadavg", "r");
    char buf[64] = "?";
    if (la && fgets(buf, sizeof buf, la)) buf[strcspn(buf, " ")] = 0;
    if (la) fclose(la);
    printf("%s\n\n| shape | dtype | bits/weight | median us | GB/s | speed vs q4_0 (median of ratios) |\n"
           "| --- | --- | --- | --- | --- | --- |\n", buf);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t rows = shapes[s].rows, cols = shapes[s].cols;
        void **w[ND];
        int nc[ND];
        sk_mat m[ND];
        for (int d = 0; d < ND; d++) {
            uint64_t bytes = sk_dtype_tensor_bytes(dts[d], rows, cols);
            nc[d] = (int)(mib * 1048576.0 / (double)bytes) + 1;
            w[d] = malloc((size_t)nc[d] * sizeof(void *));
            w[d][0] = make(dts[d], rows, cols, 7 + (uint64_t)s);
            for (int c = 1; c < nc[d]; c++) { /* copies: the same bytes elsewhere in memory */
                w[d][c] = sk_aligned_alloc(64, (size_t)bytes);
                memcpy(w[d][c], w[d][0], (size_t)bytes);
            }
            m[d] = (sk_mat){.dtype = dts[d], .rows = rows, .cols = cols};
        }
        float *x = malloc((size_t)cols * sizeof(float)), *y = malloc((size_t)rows * sizeof(float));
        uint64_t seed = 3;
        for (int64_t i = 0; i < cols; i++) x[i] = bench_frand(&seed);
        double *t = calloc((size_t)(ND * rounds), sizeof(double));
        double *ratio = calloc((size_t)(ND * rounds), sizeof(double));
        for (int r = -1; r < rounds; r++) /* round -1: warm-up */
            for (int d = 0; d < ND; d++) {
                m[d].data = w[d][(r + 1) % nc[d]];
                double t0 = shrink_time();
                if (sk_matmul(&m[d], x, 1, y, rows, NULL) != SHRINK_OK) {
                    fprintf(stderr, "%s: %s\n", shrink_dtype_name(dts[d]), shrink_last_error());
                    return 1;
                }
                double dt = shrink_time() - t0;
                if (r >= 0) t[d * rounds + r] = dt;
            }
        for (int d = 0; d < ND; d++) {
            for (int r = 0; r < rounds; r++) ratio[d * rounds + r] = t[r] / t[d * rounds + r];
            qsort(t + d * rounds, (size_t)rounds, sizeof(double), bench_cmp_double);
            qsort(ratio + d * rounds, (size_t)rounds, sizeof(double), bench_cmp_double);
            double med = t[d * rounds + rounds / 2];
            uint64_t bytes = sk_dtype_tensor_bytes(dts[d], rows, cols);
            printf("| %s | %s | %.3f | %.1f | %.2f | %.2fx |\n", shapes[s].name,
                   shrink_dtype_name(dts[d]), 8.0 * (double)bytes / (double)(rows * cols),
                   med * 1e6, (double)bytes / med / 1e9, ratio[d * rounds + rounds / 2]);
            fflush(stdout);
        }
        for (int d = 0; d < ND; d++) {
            for (int c = 0; c < nc[d]; c++) sk_free(w[d][c]);
            free(w[d]);
        }
        free(t); free(ratio); free(x); free(y);
    }
    return 0;
}
