/*
 * bench_kernels.c - sk_matmul speed for every dtype x kernel set this CPU has, at the shapes
 * of mix-llama-22m (dim 384, ffn 1024, vocab 32000, 6 heads of 64, 2 kv heads), with 1 and 2
 * threads. Never asserts; prints markdown tables.
 *
 *   GEMV (T = 1): GB/s of weights streamed. Two regimes: "ram" cycles through enough
 *     copies of the matrix to exceed L3 (>= 256 MiB), "cache" repeats one matrix (L2/L3
 *     resident where it fits). In "ram" each call is paired with a plain vector read of
 *     another copy of the same size at the same moment ("% of read": the GEMV's roofline
 *     fraction, robust on a shared host), and min GB/s is also compared with the memory
 *     bandwidth measured at the start (shrink_measure_bandwidth or a vector read, the larger).
 *   GEMM (T = 512 by default): GFLOP/s (2 rows cols T / time) and % of the 2-thread fp32
 *     peak of docs (190 GFLOP/s; 95 with 1 thread), and of the micro-kernel's own
 *     throughput on L1-resident data measured in this run ("tile peak").
 *
 *   Quantized decode (qgemv): every dtype with a dot kernel (and f16, the dense baseline of the
 *     2:4 sparse types; the unstructured sparse types are made $BENCH_SPARSITY sparse, 0.7) against f32 at 1B shapes (2048 x 2048, 5632 x 2048, 2048 x 5632) with
 *     the chosen kernel set and all threads, ram regime: GB/s, % of a plain read, speed-up
 *     over f32 (--dtype NAME[,NAME...] picks some).
 *
 *   Quantized prompt processing (qgemm): f32, weight-only types (f32 GEMM over panels the SIMD
 *     dequantizers fill: q8_0, q4_0, q4_K, q6_K, int8_ch, int4_g128, nf4 by default; --dtype
 *     NAME[,NAME...] or all), w8a8 and w8a8_static (int8 GEMM, gemm_i8.c) at the 1B shapes,
 *     T tokens, every kernel set
 *     with a GEMM, all threads: GFLOP/s-equivalent (2 rows cols T / time, whatever the
 *     arithmetic) and the speed-up over f32 of the same set; plus the int8 micro-kernel's
 *     throughput on L1-resident panels (GOP/s, 2 per multiply-add).
 *
 * usage: bench_kernels [--quick] [--T N] [--isa ref|avx2|avx512] [--dtype NAME]
 *                      [--only gemv|qgemv|gemm|qgemm]
 */
#include "kernels/kernels.h"
#include "kernels/palette.h"

#include <math.h>
#include <omp.h>

static double min_time = 0.25; /* seconds per measurement (at least 3 reps) */

typedef struct timing { double min, median, mean; } timing;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* name is one of the comma-separated names of list */
static int name_listed(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (!strncmp(p, name, n) && (p[n] == ',' || p[n] == '\0')) return 1;
    return 0;
}

static float frand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static void *make_w(shrink_dtype dt, int64_t rows, int64_t cols, uint64_t seed) {
    size_t n = (size_t)(rows * cols);
    float *tmp = sk_aligned_alloc(64, n * sizeof(float));
    uint64_t rb = sk_dtype_row_bytes(dt, cols);
    void *w = sk_aligned_alloc(64, (size_t)((uint64_t)rows * rb));
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        uint64_t s = seed + (uint64_t)r * 7919;
        for (int64_t k = 0; k < cols; k++) tmp[r * cols + k] = frand(&s);
    }
    /* unstructured sparse types: the weights with |x| < S zeroed first (uniform in [-1, 1]: a
     * fraction S of zeros; S = $BENCH_SPARSITY, default 0.7), as a pruned matrix would be */
    const char *sp = getenv("BENCH_SPARSITY");
    const float cut = sp ? (float)atof(sp) : 0.7f;
    for (size_t i = 0; sk_dtype_sparse_bm(dt) && i < n; i++)
        if (fabsf(tmp[i]) < cut) tmp[i] = 0.0f;
    for (int64_t r = 0; r < rows; r++) /* row by row: row-head types scale each row */
        sk_dtype(dt)->from_f32(tmp + r * cols, (uint8_t *)w + (uint64_t)r * rb, cols);
    const int64_t k = sk_pal_k(dt);
    for (int64_t r = 0; k && r < rows; r++) { /* palettes: groups of k rows, as quantize's */
        uint8_t *h = (uint8_t *)w + (uint64_t)r * rb;
        h[2] = (uint8_t)(r % k);
        h[3] = (uint8_t)((rows - r / k * k < k ? rows - r / k * k : k) - 1);
    }
    sk_free(tmp);
    return w;
}

#define MAX_REPS 20000

typedef float v16f __attribute__((vector_size(64)));

/* Sums n bytes (a multiple of 128) at p with the OpenMP threads, independent vector lanes
 * (GCC vector extension: SSE in this baseline file), so it is bound by memory, not by an
 * add chain. The plain read a GEMV is compared with. */
static float read_sum(const void *p, size_t bytes) {
    const v16f *b = p;
    size_t n = bytes / sizeof(v16f);
    float total = 0;
    #pragma omp parallel
    {
        v16f a0 = {0}, a1 = {0};
        #pragma omp for schedule(static) nowait
        for (size_t i = 0; i < n / 2; i++) {
            a0 += b[2 * i];
            a1 += b[2 * i + 1];
        }
        a0 += a1;
        float s = 0;
        for (int k = 0; k < 16; k++) s += a0[k];
        #pragma omp atomic
        total += s;
    }
    return total;
}

static timing summarize(double *times, int reps, double total) {
    qsort(times, (size_t)reps, sizeof(double), cmp_double);
    timing tm = {times[0], times[reps / 2], total / reps};
    return tm;
}

/* Runs sk_matmul_with over the ncopies matrices in turn until min_time has passed (at least
 * 3 calls). The median is robust against the other tenants of a shared host. If rd is not
 * NULL, each call is preceded by a plain read of the same matrix (read_sum), timed into *rd:
 * the two see the same moment of the machine. */
static timing run(const sk_kernel_set *ks, sk_mat *mats, int ncopies, const float *X, int64_t T,
                  float *Y, timing *rd) {
    static double times[MAX_REPS], rtimes[MAX_REPS];
    int reps = 0;
    double total = 0, rtotal = 0;
    volatile float sink = 0;
    if (ncopies == 1) sk_matmul_with(ks, &mats[0], X, T, Y, mats[0].rows); /* warm up */
    while ((reps < 3 || total < min_time) && reps < MAX_REPS) {
        for (int c = 0; c < ncopies && reps < MAX_REPS; c++) {
            if (rd) {
                int r2 = (c + ncopies / 2) % ncopies; /* not the one read next */
                size_t bytes = (size_t)sk_dtype_tensor_bytes(mats[r2].dtype, mats[r2].rows, mats[r2].cols);
                double t0 = shrink_time();
                sink += read_sum(mats[r2].data, bytes & ~(size_t)127);
                double dt = shrink_time() - t0;
                rtimes[reps] = dt * (double)bytes / (double)(bytes & ~(size_t)127);
                rtotal += rtimes[reps];
            }
            double t0 = shrink_time();
            sk_matmul_with(ks, &mats[c], X, T, Y, mats[c].rows);
            double dt = shrink_time() - t0;
            times[reps++] = dt;
            total += dt;
        }
    }
    if (rd) *rd = summarize(rtimes, reps, rtotal);
    return summarize(times, reps, total);
}

/* A/B of two matrices of the same shape: calls alternate (a, b, a, b, ...) until min_time has
 * passed (at least 5 pairs); returns the median of the per-pair time ratios a / b (the speed-up
 * of b over a, robust against a shared host's load changing during the run) and the median
 * times of each. */
static double run_pair(const sk_kernel_set *ks, sk_mat *a, sk_mat *b, const float *X, int64_t T,
                       float *Y, double *ta_med, double *tb_med) {
    enum { MAXP = 1000 };
    static double ta[MAXP], tb[MAXP], ratio[MAXP];
    int n = 0;
    double total = 0;
    sk_matmul_with(ks, a, X, T, Y, a->rows); /* warm up */
    sk_matmul_with(ks, b, X, T, Y, b->rows);
    while ((n < 5 || total < 2 * min_time) && n < MAXP) {
        double t0 = shrink_time();
        sk_matmul_with(ks, a, X, T, Y, a->rows);
        double t1 = shrink_time();
        sk_matmul_with(ks, b, X, T, Y, b->rows);
        double t2 = shrink_time();
        ta[n] = t1 - t0;
        tb[n] = t2 - t1;
        ratio[n] = ta[n] / tb[n];
        total += t2 - t0;
        n++;
    }
    qsort(ta, (size_t)n, sizeof(double), cmp_double);
    qsort(tb, (size_t)n, sizeof(double), cmp_double);
    qsort(ratio, (size_t)n, sizeof(double), cmp_double);
    *ta_med = ta[n / 2];
    *tb_med = tb[n / 2];
    return ratio[n / 2];
}

/* Read bandwidth with independent vector lanes (GCC vector extension: SSE in this baseline
 * file, 4 independent 16-byte adds per cache line, so it is bound by memory, not by an add
 * chain). Best of reps, bytes/s. */
static double read_bandwidth(size_t bytes, int reps) {
    size_t n = bytes / sizeof(v16f);
    v16f *buf = sk_aligned_alloc(64, n * sizeof(v16f));
    if (!buf) return 0;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) buf[i] = (v16f){0} + (float)(i & 7);
    double best = 0;
    volatile float sink = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = shrink_time();
        #pragma omp parallel
        {
            v16f a0 = {0}, a1 = {0};
            #pragma omp for schedule(static) nowait
            for (size_t i = 0; i < n / 2; i++) {
                a0 += buf[2 * i];
                a1 += buf[2 * i + 1];
            }
            a0 += a1;
            float s = 0;
            for (int k = 0; k < 16; k++) s += a0[k];
            #pragma omp atomic
            sink += s;
        }
        double dt = shrink_time() - t0;
        if ((double)bytes / dt > best) best = (double)bytes / dt;
    }
    sk_free(buf);
    return best;
}

typedef struct shape { const char *name; int64_t rows, cols; } shape;

static const shape shapes[] = {
    {"wq/wo 384x384", 384, 384},     {"wk/wv 128x384", 128, 384}, {"w1/w3 1024x384", 1024, 384},
    {"w2 384x1024", 384, 1024},      {"cls 32000x384", 32000, 384},
};
#define NSHAPES (int)(sizeof shapes / sizeof shapes[0])

/* The decode-GEMV comparison of the quantized types: TinyLlama-1.1B's matrices (dim 2048,
 * ffn 5632), where weights stream from RAM. */
static const shape qshapes[] = {
    {"wq/wo 2048x2048", 2048, 2048}, {"w1/w3 5632x2048", 5632, 2048}, {"w2 2048x5632", 2048, 5632},
};
#define NQSHAPES (int)(sizeof qshapes / sizeof qshapes[0])

/* GFLOP/s of the micro-kernel alone on L1-resident panels (kc = 256), nth threads. */
static double tile_peak(const sk_kernel_set *ks, int nth) {
    if (!ks->tile) return 0;
    const int64_t kc = 256;
    double best = 0;
    #pragma omp parallel num_threads(nth) reduction(max : best)
    {
        float *wp = sk_aligned_alloc(64, (size_t)(kc * ks->mr) * sizeof(float));
        float *xp = sk_aligned_alloc(64, (size_t)(kc * ks->nr) * sizeof(float));
        float *y = sk_aligned_alloc(64, (size_t)(ks->nr * ks->mr) * sizeof(float));
        for (int64_t i = 0; i < kc * ks->mr; i++) wp[i] = 0.001f * (float)(i % 7);
        for (int64_t i = 0; i < kc * ks->nr; i++) xp[i] = 0.001f * (float)(i % 5);
        /* many short runs, best of: robust against other processes on a shared host */
        const int iters = 500;
        for (int rep = 0; rep < 200; rep++) {
            double t0 = shrink_time();
            for (int i = 0; i < iters; i++)
                ks->tile(kc, wp, xp, y, ks->mr, ks->nr, ks->mr, i & 1);
            double dt = shrink_time() - t0;
            double gf = 2.0 * (double)kc * ks->mr * ks->nr * iters / dt / 1e9;
            if (gf > best) best = gf;
        }
        sk_free(wp); sk_free(xp); sk_free(y);
    }
    return best * nth; /* per-thread best x threads */
}

/* GOP/s of the int8 GEMM micro-kernel alone on L1-resident panels (kc = 512), nth threads. */
static double tile_i8_peak(const sk_i8_gemm *g, int nth) {
    const int64_t ng = 128;
    double best = 0;
    #pragma omp parallel num_threads(nth) reduction(max : best)
    {
        uint8_t *wp = sk_aligned_alloc(64, (size_t)(ng * g->mr * g->wgb));
        uint8_t *xp = sk_aligned_alloc(64, (size_t)(ng * g->nr * g->xgb));
        float *y = sk_aligned_alloc(64, (size_t)(g->nr * g->mr) * sizeof(float));
        float *dv = sk_aligned_alloc(64, (size_t)(g->mr + g->nr) * sizeof(float));
        int32_t xs[64] = {0};
        for (int64_t i = 0; i < ng * g->mr * g->wgb; i++) wp[i] = (uint8_t)(i % 7);
        for (int64_t i = 0; i < ng * g->nr * g->xgb; i++) xp[i] = (uint8_t)(i % 5);
        for (int i = 0; i < g->mr + g->nr; i++) dv[i] = 0.001f;
        const int iters = 500;
        for (int rep = 0; rep < 200; rep++) {
            double t0 = shrink_time();
            for (int i = 0; i < iters; i++)
                g->tile(ng, wp, xp, y, g->mr, g->nr, g->mr, SK_I8_FINISH, dv, dv + g->mr, xs);
            double dt = shrink_time() - t0;
            double gop = 2.0 * (double)(4 * ng) * g->mr * g->nr * iters / dt / 1e9;
            if (gop > best) best = gop;
        }
        sk_free(wp); sk_free(xp); sk_free(y); sk_free(dv);
    }
    return best * nth;
}

int main(int argc, char **argv) {
    int64_t Tgemm = 512;
    const char *only_isa = NULL, *only_dt = NULL, *only_op = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) min_time = 0.05;
        else if (strcmp(argv[i], "--T") == 0 && i + 1 < argc) Tgemm = atoll(argv[++i]);
        else if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) only_isa = argv[++i];
        else if (strcmp(argv[i], "--dtype") == 0 && i + 1 < argc) only_dt = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) only_op = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--quick] [--T N] [--isa ref|avx2|avx512] [--dtype NAME] [--only gemv|qgemv|gemm|qgemm]\n", argv[0]);
            return 2;
        }
    }
    int maxth = omp_get_max_threads();
    int thr[2] = {1, maxth >= 2 ? 2 : 1};
    int nthr = maxth >= 2 ? 2 : 1;

    printf("# bench_kernels\n\nkernels: %s; omp max threads %d\n\n", shrink_kernels_name(), maxth);
    /* the roofline: the larger of shrink_measure_bandwidth and a vector read of our own */
    double bw[2];
    for (int i = 0; i < nthr; i++) {
        omp_set_num_threads(thr[i]);
        double a = shrink_measure_bandwidth((size_t)512 << 20, 5);
        double b = read_bandwidth((size_t)512 << 20, 5);
        bw[i] = a > b ? a : b;
        printf("memory read bandwidth, %d thread(s): shrink_measure_bandwidth %.1f GB/s, "
               "vector read %.1f GB/s\n", thr[i], a / 1e9, b / 1e9);
    }
    printf("\n%% of bw below is of the larger figure.\n\n");

    /* inputs */
    int64_t maxcols = 1024;
    float *X = sk_aligned_alloc(64, (size_t)(Tgemm * maxcols) * sizeof(float));
    float *Y = sk_aligned_alloc(64, (size_t)(Tgemm * 32000) * sizeof(float));
    uint64_t s = 42;
    for (int64_t i = 0; i < Tgemm * maxcols; i++) X[i] = frand(&s);

    /* ---- GEMV ---- */
    if (!only_op || strcmp(only_op, "gemv") == 0) {
    printf("## GEMV (T = 1)\n\n");
    printf("| shape | dtype | isa | threads | regime | MiB | min us | median us | GB/s (min) | GB/s (median) | %% of bw (min) | read GB/s (median) | %% of read (median) |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (int d = 0; d < SHRINK_DTYPE_COUNT; d++) {
        shrink_dtype dt = (shrink_dtype)d;
        if (only_dt && strcmp(only_dt, shrink_dtype_name(dt))) continue;
        for (int si = 0; si < NSHAPES; si++) {
            const shape *sh = &shapes[si];
            if (sh->cols % (int64_t)sk_dtype(dt)->block) continue; /* e.g. q4_K at 384 */
            uint64_t bytes = sk_dtype_tensor_bytes(dt, sh->rows, sh->cols);
            int ncopies = (int)(((uint64_t)256 << 20) / bytes) + 1;
            sk_mat *mats = calloc((size_t)ncopies, sizeof *mats);
            for (int c = 0; c < ncopies; c++)
                mats[c] = (sk_mat){.dtype = dt, .rows = sh->rows, .cols = sh->cols,
                                   .data = make_w(dt, sh->rows, sh->cols, (uint64_t)c + 1)};
            for (int l = 0; l < SK_ISA_COUNT; l++) {
                const sk_kernel_set *ks = sk_kernels_get((sk_isa)l);
                if (!ks || (only_isa && strcmp(only_isa, ks->name))) continue;
                for (int ti = 0; ti < nthr; ti++) {
                    omp_set_num_threads(thr[ti]);
                    for (int regime = 0; regime < 2; regime++) {
                        if (regime == 1 && bytes > ((uint64_t)48 << 20)) continue; /* no cache regime */
                        timing rd;
                        timing tm = run(ks, mats, regime == 0 ? ncopies : 1, X, 1, Y,
                                        regime == 0 ? &rd : NULL);
                        double gmin = (double)bytes / tm.min / 1e9;
                        double gmed = (double)bytes / tm.median / 1e9;
                        if (regime == 0)
                            printf("| %s | %s | %s | %d | ram | %.2f | %.1f | %.1f | %.1f | %.1f | %.0f%% | %.1f | %.0f%% |\n",
                                   sh->name, shrink_dtype_name(dt), ks->name, thr[ti],
                                   (double)bytes / (1 << 20), tm.min * 1e6, tm.median * 1e6, gmin,
                                   gmed, 100.0 * gmin * 1e9 / bw[ti],
                                   (double)bytes / rd.median / 1e9, 100.0 * rd.median / tm.median);
                        else
                            printf("| %s | %s | %s | %d | cache | %.2f | %.1f | %.1f | %.1f | %.1f | | | |\n",
                                   sh->name, shrink_dtype_name(dt), ks->name, thr[ti],
                                   (double)bytes / (1 << 20), tm.min * 1e6, tm.median * 1e6, gmin, gmed);
                        fflush(stdout);
                    }
                }
            }
            for (int c = 0; c < ncopies; c++) sk_free((void *)mats[c].data);
            free(mats);
        }
    }

    }

    /* ---- quantized decode vs f32 at 1B shapes ---- */
    if (!only_op || strcmp(only_op, "qgemv") == 0) {
    const int nth = thr[nthr - 1];
    omp_set_num_threads(nth);
    const sk_kernel_set *ks = sk_kernels();
    printf("\n## Decode GEMV of the quantized types vs f32 (T = 1, %s, %d threads, ram)\n\n"
           "Activations are quantized once per call (docs/kernels.md); speed-up = f32 median "
           "time / this dtype's median time on the same shape; %% of read = a plain read of "
           "the same bytes at the same moment / the GEMV time.\n\n", ks->name, nth);
    printf("| shape | dtype | bits/weight | MiB | median us | GB/s (median) | %% of read | speed-up vs f32 |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (int si = 0; si < NQSHAPES; si++) {
        const shape *sh = &qshapes[si];
        double t_f32 = 0;
        float *Xq = sk_aligned_alloc(64, (size_t)sh->cols * sizeof(float));
        float *Yq = sk_aligned_alloc(64, (size_t)sh->rows * sizeof(float));
        for (int64_t k = 0; k < sh->cols; k++) Xq[k] = frand(&s);
        for (int d = 0; d < SHRINK_DTYPE_COUNT; d++) {
            shrink_dtype dt = (shrink_dtype)d;
            const sk_dtype_traits *tr = sk_dtype(dt);
            /* f16: the dense baseline of the 2:4 sparse types */
            if (dt != SHRINK_DTYPE_F32 && dt != SHRINK_DTYPE_F16 && !tr->vec_dot_ref) continue;
            if (only_dt && dt != SHRINK_DTYPE_F32 && !name_listed(only_dt, shrink_dtype_name(dt)))
                continue;
            if (sh->cols % (int64_t)tr->block) continue;
            uint64_t bytes = sk_dtype_tensor_bytes(dt, sh->rows, sh->cols);
            int ncopies = (int)(((uint64_t)256 << 20) / bytes) + 1;
            sk_mat *mats = calloc((size_t)ncopies, sizeof *mats);
            for (int c = 0; c < ncopies; c++)
                mats[c] = (sk_mat){.dtype = dt, .rows = sh->rows, .cols = sh->cols,
                                   .data = make_w(dt, sh->rows, sh->cols, (uint64_t)c + 1)};
            timing rd;
            timing tm = run(ks, mats, ncopies, Xq, 1, Yq, &rd);
            if (dt == SHRINK_DTYPE_F32) t_f32 = tm.median;
            printf("| %s | %s | %.2f | %.2f | %.1f | %.1f | %.0f%% | %.2fx |\n", sh->name,
                   shrink_dtype_name(dt), 8.0 * (double)bytes / (double)(sh->rows * sh->cols),
                   (double)bytes / (1 << 20), tm.median * 1e6, (double)bytes / tm.median / 1e9,
                   100.0 * rd.median / tm.median, t_f32 > 0 ? t_f32 / tm.median : 0.0);
            fflush(stdout);
            for (int c = 0; c < ncopies; c++) sk_free((void *)mats[c].data);
            free(mats);
        }
        sk_free(Xq);
        sk_free(Yq);
    }
    }

    /* ---- GEMM ---- */
    if (!only_op || strcmp(only_op, "gemm") == 0) {
    printf("\n## GEMM (T = %" PRId64 ")\n\n", Tgemm);
    for (int l = 0; l < SK_ISA_COUNT; l++) {
        const sk_kernel_set *ks = sk_kernels_get((sk_isa)l);
        if (!ks || !ks->tile || (only_isa && strcmp(only_isa, ks->name))) continue;
        for (int ti = 0; ti < nthr; ti++)
            printf("micro-kernel %s (%dx%d) on L1 data, %d thread(s): %.1f GFLOP/s\n", ks->name,
                   ks->mr, ks->nr, thr[ti], tile_peak(ks, thr[ti]));
    }
    printf("\n| shape | dtype | isa | threads | min ms | median ms | GFLOP/s (min) | GFLOP/s (median) | %% of peak (95/thread, min) |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (int d = 0; d < SHRINK_DTYPE_COUNT; d++) {
        shrink_dtype dt = (shrink_dtype)d;
        if (only_dt && strcmp(only_dt, shrink_dtype_name(dt))) continue;
        for (int si = 0; si < NSHAPES; si++) {
            const shape *sh = &shapes[si];
            if (sh->cols % (int64_t)sk_dtype(dt)->block) continue;
            sk_mat m = {.dtype = dt, .rows = sh->rows, .cols = sh->cols,
                        .data = make_w(dt, sh->rows, sh->cols, 99)};
            for (int l = 0; l < SK_ISA_COUNT; l++) {
                const sk_kernel_set *ks = sk_kernels_get((sk_isa)l);
                if (!ks || (only_isa && strcmp(only_isa, ks->name))) continue;
                /* the scalar reference is ~100x slower: only the small shapes */
                if (!ks->tile && sh->rows * sh->cols > 400000) continue;
                for (int ti = 0; ti < nthr; ti++) {
                    omp_set_num_threads(thr[ti]);
                    double save = min_time;
                    if (!ks->tile) min_time = 0;
                    timing tm = run(ks, &m, 1, X, Tgemm, Y, NULL);
                    min_time = save;
                    double flop = 2.0 * (double)sh->rows * sh->cols * Tgemm;
                    double gf = flop / tm.min / 1e9;
                    printf("| %s | %s | %s | %d | %.2f | %.2f | %.1f | %.1f | %.0f%% |\n", sh->name,
                           shrink_dtype_name(dt), ks->name, thr[ti], tm.min * 1e3,
                           tm.median * 1e3, gf, flop / tm.median / 1e9,
                           100.0 * gf / (95.0 * thr[ti]));
                    fflush(stdout);
                }
            }
            sk_free((void *)m.data);
        }
    }
    }
    /* ---- quantized prompt processing (int8 GEMM of the W8A8 types) vs f32 at 1B shapes ---- */
    if (!only_op || strcmp(only_op, "qgemm") == 0) {
    const int nth = thr[nthr - 1];
    omp_set_num_threads(nth);
    printf("\n## Prompt processing of the W8A8 types vs f32 (T = %" PRId64 ", %d threads)\n\n"
           "GFLOP/s-equivalent = 2 rows cols T / median time (int8 or f32 arithmetic alike); "
           "speed-up = median over alternating f32 / dtype call pairs of the time ratio, same "
           "kernel set (f32's own median in brackets). int8_ch: weight-only, "
           "f32 GEMM over dequantized panels; w8a8*: int8 GEMM (gemm_i8.c).\n\n", Tgemm, nth);
    for (int l = 0; l < SK_ISA_COUNT; l++) {
        const sk_i8_gemm *g = sk_kernels_get((sk_isa)l) ? sk_i8_gemm_get((sk_isa)l) : NULL;
        if (!g || (only_isa && strcmp(only_isa, sk_kernels_get((sk_isa)l)->name))) continue;
        for (int ti = 0; ti < nthr; ti++)
            printf("micro-kernels of level %s on L1 data, %d thread(s): int8 %s (%dx%d) %.1f GOP/s, "
                   "f32 (%dx%d) %.1f GFLOP/s\n", sk_kernels_get((sk_isa)l)->name, thr[ti], g->name,
                   g->mr, g->nr, tile_i8_peak(g, thr[ti]), sk_kernels_get((sk_isa)l)->mr,
                   sk_kernels_get((sk_isa)l)->nr, tile_peak(sk_kernels_get((sk_isa)l), thr[ti]));
    }
    printf("\n| shape | dtype | isa | median ms | GFLOP/s-equiv (median) | speed-up vs f32 |\n");
    printf("| --- | --- | --- | --- | --- | --- |\n");
    /* f32 first (the yardstick), then the chosen types: --dtype NAME[,NAME...] or "all" (every
     * quantized type); by default weight-only types of each family and the W8A8 types */
    static const shrink_dtype qdef[] = {SHRINK_DTYPE_Q8_0, SHRINK_DTYPE_Q4_0, SHRINK_DTYPE_Q4_K,
                                        SHRINK_DTYPE_Q6_K, SHRINK_DTYPE_INT8_CH,
                                        SHRINK_DTYPE_INT4_G128, SHRINK_DTYPE_NF4,
                                        SHRINK_DTYPE_W8A8, SHRINK_DTYPE_W8A8_STATIC};
    shrink_dtype qdts[SHRINK_DTYPE_COUNT + 1] = {SHRINK_DTYPE_F32};
    int nq = 1;
    for (int d = 0; d < SHRINK_DTYPE_COUNT; d++) {
        int want = 0;
        if (!sk_dtype_quantized((shrink_dtype)d)) continue;
        if (only_dt && strcmp(only_dt, "all") == 0) {
            want = 1;
        } else if (only_dt) { /* a comma-separated list of names */
            const char *nm = shrink_dtype_name((shrink_dtype)d);
            size_t ln = strlen(nm);
            for (const char *p = only_dt; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
                if (strncmp(p, nm, ln) == 0 && (p[ln] == ',' || p[ln] == 0)) want = 1;
        } else {
            for (size_t i = 0; i < sizeof qdef / sizeof qdef[0]; i++) want |= (int)qdef[i] == d;
        }
        if (want) qdts[nq++] = (shrink_dtype)d;
    }
    for (int si = 0; si < NQSHAPES; si++) {
        const shape *sh = &qshapes[si];
        float *Xq = sk_aligned_alloc(64, (size_t)(Tgemm * sh->cols) * sizeof(float));
        float *Yq = sk_aligned_alloc(64, (size_t)(Tgemm * sh->rows) * sizeof(float));
        for (int64_t i = 0; i < Tgemm * sh->cols; i++) Xq[i] = frand(&s);
        /* each type A/B against f32 (alternating calls, median ratio of the pairs) */
        sk_mat mf = {.dtype = SHRINK_DTYPE_F32, .rows = sh->rows, .cols = sh->cols,
                     .data = make_w(SHRINK_DTYPE_F32, sh->rows, sh->cols, 7)};
        const double flop = 2.0 * (double)sh->rows * sh->cols * Tgemm;
        for (int d = 1; d < nq; d++) {
            if (sh->cols % (int64_t)sk_dtype(qdts[d])->block) continue;
            sk_mat m = {.dtype = qdts[d], .rows = sh->rows, .cols = sh->cols,
                        .data = make_w(qdts[d], sh->rows, sh->cols, 7)};
            for (int l = 0; l < SK_ISA_COUNT; l++) {
                const sk_kernel_set *ks = sk_kernels_get((sk_isa)l);
                if (!ks || !ks->tile || (only_isa && strcmp(only_isa, ks->name))) continue;
                double tf, tq, sp = run_pair(ks, &mf, &m, Xq, Tgemm, Yq, &tf, &tq);
                printf("| %s | %s | %s | %.2f (f32 %.2f) | %.1f (f32 %.1f) | %.2fx |\n",
                       sh->name, shrink_dtype_name(qdts[d]), ks->name, tq * 1e3, tf * 1e3,
                       flop / tq / 1e9, flop / tf / 1e9, sp);
                fflush(stdout);
            }
            sk_free((void *)m.data);
        }
        sk_free((void *)mf.data);
        sk_free(Xq);
        sk_free(Yq);
    }
    }
    sk_free(X);
    sk_free(Y);
    return 0;
}
