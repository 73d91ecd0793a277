/*
 * blas_peak.c - the fp32 GEMM ceiling of this machine, measured with OpenBLAS's sgemm, so
 * shrink's prompt-processing GFLOP/s can be reported as a fraction of it in the same run.
 *
 * Not part of shrink and not built by `make bench`: it needs libopenblas-dev, which shrink
 * does not depend on. Build and run (docs/perf.md):
 *     make bench-blas && build/bench/blas_peak
 * Prints GFLOP/s (best of 5) for square n = 1024, 2048, 4096 with 1 and 2 threads.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

extern void openblas_set_num_threads(int n);

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void) {
    const int sizes[] = {1024, 2048, 4096};
    printf("| threads | n | sgemm GFLOP/s (best of 5) |\n| ---: | ---: | ---: |\n");
    for (int th = 1; th <= 2; th++) {
        openblas_set_num_threads(th);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            int n = sizes[s];
            float *a = malloc(sizeof(float) * (size_t)n * n);
            float *b = malloc(sizeof(float) * (size_t)n * n);
            float *c = malloc(sizeof(float) * (size_t)n * n);
            if (!a || !b || !c) return 1;
            for (size_t i = 0; i < (size_t)n * n; i++) {
                a[i] = (float)(i % 7) * 0.1f;
                b[i] = (float)(i % 5) * 0.1f;
            }
            double best = 0;
            for (int r = 0; r < 5; r++) {
                double t0 = now();
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n,
                            0.0f, c, n);
                double g = 2.0 * n * n * (double)n / (now() - t0) / 1e9;
                if (g > best) best = g;
            }
            printf("| %d | %d | %.1f |\n", th, n, best);
            free(a);
            free(b);
            free(c);
        }
    }
    return 0;
}
