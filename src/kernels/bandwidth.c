/*
 * bandwidth.c - memory read bandwidth as the kernels see it: each thread streams its part of
 * a large buffer through the dispatched SIMD dot product (a . a reads every cache line once),
 * so the figure is the read rate the GEMV kernels can reach on this machine, measured in the
 * same run as the decode speed it is compared with (shrink bench's roofline).
 */
#include "kernels.h"

#include <omp.h>

double shrink_measure_bandwidth(size_t bytes, int reps) {
    size_t n = bytes / sizeof(float);
    if (n < 4096) n = 4096;
    float *buf = sk_aligned_alloc(64, n * sizeof(float));
    if (!buf) return 0;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 7) * 0.125f;
    const sk_kernel_set *ks = sk_kernels();
    double best = 0;
    volatile float sink = 0;
    for (int r = 0; r < (reps > 0 ? reps : 1); r++) {
        float total = 0;
        double t0 = shrink_time();
        #pragma omp parallel reduction(+ : total)
        {
            int me = omp_get_thread_num(), nth = omp_get_num_threads();
            size_t lo = n * (size_t)me / (size_t)nth, hi = n * (size_t)(me + 1) / (size_t)nth;
            lo &= ~(size_t)15; /* whole cache lines per thread */
            if (me == nth - 1) hi = n;
            else hi &= ~(size_t)15;
            total += ks->dot_f32(buf + lo, buf + lo, (int64_t)(hi - lo));
        }
        double dt = shrink_time() - t0;
        sink += total;
        double bw = (double)(n * sizeof(float)) / dt;
        if (bw > best) best = bw;
    }
    (void)sink;
    sk_free(buf);
    return best;
}
