/*
 * util.c - time, peak memory, threads, memory bandwidth measurement.
 */
#include "core.h"

#include <omp.h>
#include <sys/resource.h>
#include <time.h>

double shrink_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint64_t shrink_peak_rss(void) {
    /* VmHWM from /proc is exact; getrusage's ru_maxrss (KiB) is the fallback. */
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f)) {
            unsigned long long kb;
            if (sscanf(line, "VmHWM: %llu kB", &kb) == 1) {
                fclose(f);
                return (uint64_t)kb * 1024;
            }
        }
        fclose(f);
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) return (uint64_t)ru.ru_maxrss * 1024;
    return 0;
}

static int sk_threads = 0;

void shrink_set_threads(int n_threads) {
    if (n_threads <= 0) n_threads = omp_get_num_procs();
    sk_threads = n_threads;
    omp_set_num_threads(n_threads);
}

int shrink_get_threads(void) { return sk_threads > 0 ? sk_threads : omp_get_max_threads(); }

/* A 64-byte vector of floats (GCC vector extension; SSE code in this baseline file): two
 * independent accumulators of four 16-byte lanes each, so the loop is bound by memory and not
 * by a chain of dependent adds. */
typedef float sk_v16f __attribute__((vector_size(64)));

double shrink_measure_bandwidth(size_t bytes, int reps) {
    size_t n = bytes / sizeof(sk_v16f);
    if (n < 1024) n = 1024;
    n &= ~(size_t)1;
    sk_v16f *buf = sk_aligned_alloc(64, n * sizeof(sk_v16f));
    if (!buf) return 0;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) buf[i] = (sk_v16f){0} + (float)(i & 7);
    double best = 0;
    volatile float sink = 0;
    for (int r = 0; r < (reps > 0 ? reps : 1); r++) {
        float total = 0;
        double t0 = shrink_time();
        #pragma omp parallel
        {
            sk_v16f a0 = {0}, a1 = {0};
            #pragma omp for schedule(static) nowait
            for (size_t i = 0; i < n / 2; i++) {
                a0 += buf[2 * i];
                a1 += buf[2 * i + 1];
            }
            a0 += a1;
            float s = 0;
            for (int k = 0; k < 16; k++) s += a0[k];
            #pragma omp atomic
            total += s;
        }
        double dt = shrink_time() - t0;
        sink += total;
        double bw = (double)(n * sizeof(sk_v16f)) / dt;
        if (bw > best) best = bw;
    }
    (void)sink;
    sk_free(buf);
    return best;
}
