/*
 * bench_qim.c - CPU time per weight of the importance-weighted quantizers (src/kernels/
 * q_imatrix.c) for the K types, one thread: ggml's (what llama-quantize --imatrix
 * and shrink --ggml-exact --imatrix write), shrink's default search (sk_qim_search: ggml's block
 * plus further candidates, never a worse one) and the reference without an importance matrix.
 * Interleaved in rounds (each round times every quantizer of every type once, so a busy shared
 * host slows them alike); prints the median ns/weight of each and the ratio search / ggml.
 * Data: normal rows (sd 0.02) of 2048 columns, importance 0.05 + 4 u1 u2 per column. Never
 * asserts; prints a markdown table.
 *
 * usage: bench_qim [--rounds N] [--rows R]   (default 5 rounds of 256 rows)
 */
#include "kernels/kernels.h"
#include "kernels/q_imatrix.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double urand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return ((double)(*s >> 11) + 0.5) / 9007199254740992.0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int rounds = 5;
    int64_t rows = 256;
    const int64_t cols = 2048;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rows")) rows = atoll(argv[i + 1]);
    }
    if (rounds < 1 || rounds > 1000 || rows < 1) {
        fprintf(stderr, "usage: bench_qim [--rounds N (1..1000)] [--rows R]\n");
        return 2;
    }
    static const shrink_dtype types[] = {SHRINK_DTYPE_Q2_K, SHRINK_DTYPE_Q3_K,
                                         SHRINK_DTYPE_Q4_K, SHRINK_DTYPE_Q5_K, SHRINK_DTYPE_Q6_K};
    enum { NT = sizeof types / sizeof types[0] };
    float *x = malloc((size_t)(rows * cols) * sizeof(float)), *qw = malloc((size_t)cols * 4);
    uint8_t *y = malloc((size_t)(rows * cols) * 2);
    double *t = calloc((size_t)(NT * 3 * rounds), sizeof(double));
    if (!x || !qw || !y || !t) return 1;
    uint64_t s = 1;
    for (int64_t i = 0; i < rows * cols; i++)
        x[i] = (float)(0.02 * sqrt(-2 * log(urand(&s))) * cos(6.283185307179586 * urand(&s)));
    for (int64_t j = 0; j < cols; j++) qw[j] = (float)(0.05 + 4 * urand(&s) * urand(&s));
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < NT; k++) {
            const shrink_dtype ty = types[k];
            const size_t rb = (size_t)sk_dtype_row_bytes(ty, cols);
            for (int m = 0; m < 3; m++) {
                double a = cpu_now();
                for (int64_t i = 0; i < rows; i++) {
                    const float *xr = x + i * cols;
                    if (m == 0) sk_qim_quantize(ty, xr, y + i * rb, cols, qw);
                    else if (m == 1) sk_qim_search(ty, xr, y + i * rb, cols, qw);
                    else sk_dtype(ty)->from_f32(xr, y + i * rb, cols);
                }
                t[(k * 3 + m) * rounds + r] = (cpu_now() - a) * 1e9 / (double)(rows * cols);
            }
        }
    printf("| type | ggml --imatrix ns/weight | shrink search ns/weight | search / ggml | "
           "reference (no imatrix) ns/weight |\n| --- | ---: | ---: | ---: | ---: |\n");
    for (int k = 0; k < NT; k++) {
        double med[3];
        for (int m = 0; m < 3; m++) {
            double *v = t + (k * 3 + m) * rounds;
            qsort(v, (size_t)rounds, sizeof *v, cmp_double);
            med[m] = v[rounds / 2];
        }
        printf("| %s | %.1f | %.1f | %.2f | %.1f |\n", sk_dtype(types[k])->name, med[0], med[1],
               med[1] / med[0], med[2]);
    }
    printf("\n%d rounds of %lld x %lld, one thread, median CPU time per weight\n", rounds,
           (long long)rows, (long long)cols);
    free(x);
    free(qw);
    free(y);
    free(t);
    return 0;
}
