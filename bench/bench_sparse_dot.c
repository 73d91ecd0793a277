/*
 * bench_sparse_dot.c - decode (T = 1) time of the sparse types against dense f16 on one thread,
 * A/B interleaved: calls alternate (f16, other, f16, other, ...) and the median of the per-pair
 * time ratios is reported, which stays meaningful on a shared, loaded host where absolute
 * times do not (one thread: no barrier waiting for a descheduled partner). The matrix is one
 * 2048 x 2048 (the 1.1B shape's wq) kept in cache, so this is the kernels' compute cost per
 * row; a memory-bound decode gains at most the bytes ratio. Never asserts.
 *
 *   bench_sparse_dot [SECONDS per pair, default 1] [ISA ref|avx2|avx512, default the CPU's]
 *
 * Weights uniform in [-1, 1]; sparse_f16 / sparse_i8 at 50 %, 70 % and 90 % zeros (|w| below
 * the cut zeroed), sparse24 types at 2:4, q4_K / q8_0 dense.
 */
#include "kernels/kernels.h"

#include <math.h>
#include <omp.h>

static float frand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static void *make_w(shrink_dtype dt, int64_t rows, int64_t cols, float cut) {
    float *tmp = malloc((size_t)cols * sizeof *tmp);
    const uint64_t rb = sk_dtype_row_bytes(dt, cols);
    uint8_t *w = sk_aligned_alloc(64, (size_t)(rows * (int64_t)rb));
    uint64_t s = 12345;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t k = 0; k < cols; k++) {
            tmp[k] = frand(&s);
            if (fabsf(tmp[k]) < cut) tmp[k] = 0.0f;
        }
        sk_dtype(dt)->from_f32(tmp, w + (uint64_t)r * rb, cols);
    }
    free(tmp);
    return w;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const double secs = argc > 1 ? atof(argv[1]) : 1.0;
    const sk_kernel_set *ks = sk_kernels();
    if (argc > 2) {
        for (int l = 0; l < SK_ISA_COUNT; l++)
            if (sk_kernels_get((sk_isa)l) && !strcmp(sk_kernels_get((sk_isa)l)->name, argv[2]))
                ks = sk_kernels_get((sk_isa)l);
    }
    sk_kernels_force(ks->isa);
    omp_set_num_threads(1);
    const int64_t rows = 2048, cols = 2048;
    static const struct { shrink_dtype t; float cut; const char *what; } cases[] = {
        {SHRINK_DTYPE_SPARSE_F16, 0.5f, "50 % zeros"}, {SHRINK_DTYPE_SPARSE_F16, 0.7f, "70 %"},
        {SHRINK_DTYPE_SPARSE_F16, 0.9f, "90 %"},       {SHRINK_DTYPE_SPARSE_I8, 0.5f, "50 %"},
        {SHRINK_DTYPE_SPARSE_I8, 0.7f, "70 %"},        {SHRINK_DTYPE_SPARSE_I8, 0.9f, "90 %"},
        {SHRINK_DTYPE_SPARSE24_F16, 0.0f, "2:4"},      {SHRINK_DTYPE_SPARSE24_I8, 0.0f, "2:4"},
        {SHRINK_DTYPE_Q4_K, 0.0f, "dense"},            {SHRINK_DTYPE_Q8_0, 0.0f, "dense"},
    };
    float *x = sk_aligned_alloc(64, (size_t)cols * sizeof *x), *y = sk_aligned_alloc(64, (size_t)rows * sizeof *y);
    uint64_t s = 7;
    for (int64_t k = 0; k < cols; k++) x[k] = frand(&s);
    sk_mat f16 = {.dtype = SHRINK_DTYPE_F16, .rows = rows, .cols = cols,
                  .data = make_w(SHRINK_DTYPE_F16, rows, cols, 0.0f)};
    printf("kernels %s, 1 thread, %lld x %lld in cache, A/B pairs for %.1f s each\n\n", ks->name,
           (long long)rows, (long long)cols, secs);
    printf("| dtype | weights | bits/weight | us per call (median) | f16 us (same pairs) | speed vs f16 (median of pair ratios) |\n");
    printf("| --- | --- | ---: | ---: | ---: | ---: |\n");
    enum { MAXP = 20000 };
    static double ta[MAXP], tb[MAXP], ratio[MAXP];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sk_mat m = {.dtype = cases[c].t, .rows = rows, .cols = cols,
                    .data = make_w(cases[c].t, rows, cols, cases[c].cut)};
        sk_matmul_with(ks, &f16, x, 1, y, rows);
        sk_matmul_with(ks, &m, x, 1, y, rows);
        int n = 0;
        const double t_end = shrink_time() + secs;
        while (n < MAXP && (n < 9 || shrink_time() < t_end)) {
            double t0 = shrink_time();
            sk_matmul_with(ks, &f16, x, 1, y, rows);
            double t1 = shrink_time();
            sk_matmul_with(ks, &m, x, 1, y, rows);
            double t2 = shrink_time();
            ta[n] = t1 - t0;
            tb[n] = t2 - t1;
            ratio[n] = ta[n] / tb[n];
            n++;
        }
        qsort(ta, (size_t)n, sizeof(double), cmp_double);
        qsort(tb, (size_t)n, sizeof(double), cmp_double);
        qsort(ratio, (size_t)n, sizeof(double), cmp_double);
        printf("| %s | %s | %.2f | %.1f | %.1f | %.2fx |\n", shrink_dtype_name(cases[c].t),
               cases[c].what, shrink_dtype_bits(cases[c].t) + 8.0 * (double)sk_dtype(cases[c].t)->row_head / (double)cols,
               tb[n / 2] * 1e6, ta[n / 2] * 1e6, ratio[n / 2]);
        fflush(stdout);
        sk_free((void *)m.data);
    }
    sk_free((void *)f16.data);
    sk_free(x);
    sk_free(y);
    return 0;
}
