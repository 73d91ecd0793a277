/*
 * bench_lowrank.c - decode (T = 1) speed of one decoder layer of a 1.1B Llama (TinyLlama: dim
 * 2048, 32 heads of 64, 4 KV heads, ffn 5632; the seven matrices q, k, v, o, gate, up, down)
 * stored dense against the same layer stored as low-rank factors (docs/lowrank.md, "Factored
 * storage"), both in one dtype (f16 and q8_0), as ratios measured side by side: each round
 * times the layer's seven GEMVs (sk_matmul, T = 1) of every variant in turn (interleaved, so a
 * busy shared host slows them alike); one measurement decodes the layer once from each of its
 * copies (together >= --mib MiB, beyond the caches) and is divided by the copies. The
 * ideal speed-up is bytes(dense) / bytes(factored) (decode reads every weight byte once); the
 * table gives the measured speed-up (median over rounds of t(dense) / t(factored)) and its
 * fraction of the ideal. Ranks: floor(P m n / (m + n)) rounded down to a multiple of 32 (q8_0
 * blocks), P = --ratio. A matrix whose factors are not smaller stays dense (the k/v matrices
 * at P >= 0.5: 256 x 2048). Never asserts; prints a markdown table.
 *
 * usage: bench_lowrank [--rounds N] [--ratio P]... [--mib M]  (default 15 rounds, P 0.5 and
 *        0.8, >= 160 MiB per variant)
 */
#include "kernels/kernels.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float frand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 11) / 9007199254740992.0 - 0.5);
}

static void *make(shrink_dtype dt, int64_t rows, int64_t cols, uint64_t seed) {
    const uint64_t rb = sk_dtype_row_bytes(dt, cols);
    uint8_t *w = sk_aligned_alloc(64, (size_t)(rb * (uint64_t)rows));
    float *x = malloc((size_t)cols * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < cols; i++) x[i] = frand(&seed) * 0.05f;
        sk_dtype(dt)->from_f32(x, w + r * rb, cols);
    }
    free(x);
    return w;
}

enum { NM = 7 };
static const struct { const char *name; int64_t rows, cols; } shapes[NM] = {
    {"q", 2048, 2048}, {"k", 256, 2048}, {"v", 256, 2048}, {"o", 2048, 2048},
    {"gate", 5632, 2048}, {"up", 5632, 2048}, {"down", 2048, 5632},
};

/* One stored layer: NM matrices (dense or factored), with its factor pairs. */
typedef struct layer {
    sk_mat   m[NM];
    sk_mat   f[NM][2];
    uint64_t bytes;
} layer;

static void layer_make(layer *L, shrink_dtype dt, double ratio, uint64_t seed) {
    L->bytes = 0;
    for (int i = 0; i < NM; i++) {
        const int64_t r = shapes[i].rows, c = shapes[i].cols;
        int64_t k = ratio > 0 ? (int64_t)(ratio * (double)r * (double)c / (double)(r + c)) : 0;
        k = k / 32 * 32;
        if (ratio > 0 && k >= 32 && k * (r + c) < r * c) {
            L->f[i][0] = (sk_mat){.dtype = dt, .rows = k, .cols = c, .data = make(dt, k, c, seed + i)};
            L->f[i][1] = (sk_mat){.dtype = dt, .rows = r, .cols = k,
                                  .data = make(dt, r, k, seed + 100 + i)};
            L->m[i] = (sk_mat){.dtype = dt, .rows = r, .cols = c, .data = NULL, .lr = L->f[i]};
        } else {
            L->m[i] = (sk_mat){.dtype = dt, .rows = r, .cols = c, .data = make(dt, r, c, seed + i)};
        }
        L->bytes += sk_mat_bytes(&L->m[i]);
    }
}

static void layer_free(layer *L) {
    for (int i = 0; i < NM; i++) {
        if (L->m[i].lr) {
            sk_free((void *)L->f[i][0].data);
            sk_free((void *)L->f[i][1].data);
        } else {
            sk_free((void *)L->m[i].data);
        }
    }
}

int main(int argc, char **argv) {
    int rounds = 15;
    double mib = 160, ratios[8];
    int n_ratios = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mib") && i + 1 < argc) mib = atof(argv[++i]);
        else if (!strcmp(argv[i], "--ratio") && i + 1 < argc && n_ratios < 8)
            ratios[n_ratios++] = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--rounds N] [--ratio P]... [--mib M]\n", argv[0]);
            return 2;
        }
    }
    if (!n_ratios) {
        ratios[0] = 0.5;
        ratios[1] = 0.8;
        n_ratios = 2;
    }
    if (rounds < 3) rounds = 3;
    sk_kernels_init();
    printf("# bench_lowrank\n\nkernels: %s, %d threads, %d rounds; load average at start: ",
           sk_kernels_isa(), omp_get_max_threads(), rounds);
    FILE *la = fopen("/proc/loadavg", "r");
    char buf[64] = "?";
    if (la && fgets(buf, sizeof buf, la)) buf[strcspn(buf, " ")] = 0;
    if (la) fclose(la);
    printf("%s\n\n| dtype | ratio P | MiB dense | MiB factored | ideal speed-up | median ms "
           "dense | median ms factored | speed-up (median of ratios) | of ideal |\n"
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n", buf);
    static const shrink_dtype dts[] = {SHRINK_DTYPE_F16, SHRINK_DTYPE_Q8_0};
    for (size_t di = 0; di < sizeof dts / sizeof dts[0]; di++) {
        const shrink_dtype dt = dts[di];
        const int NV = 1 + n_ratios; /* variant 0 dense */
        layer *L[9];
        int nc[9];
        for (int v = 0; v < NV; v++) {
            layer tmp;
            layer_make(&tmp, dt, v ? ratios[v - 1] : 0.0, 11);
            nc[v] = (int)(mib * 1048576.0 / (double)tmp.bytes) + 1;
            L[v] = malloc((size_t)nc[v] * sizeof(layer));
            L[v][0] = tmp;
            for (int c = 1; c < nc[v]; c++) layer_make(&L[v][c], dt, v ? ratios[v - 1] : 0.0, 11);
        }
        for (int v = 0; v < NV; v++) /* the copies' factor pointers: their own */
            for (int c = 0; c < nc[v]; c++)
                for (int i = 0; i < NM; i++)
                    if (L[v][c].m[i].lr) L[v][c].m[i].lr = L[v][c].f[i];
        size_t need = 0;
        for (int v = 0; v < NV; v++)
            for (int i = 0; i < NM; i++) {
                size_t b = sk_matmul_scratch_bytes(sk_kernels(), &L[v][0].m[i], 1);
                need = b > need ? b : need;
            }
        sk_scratch s = {0};
        if (sk_scratch_reserve(&s, need)) return 1;
        float *x = malloc(5632 * sizeof(float)), *y = malloc(5632 * sizeof(float));
        uint64_t seed = 3;
        for (int64_t i = 0; i < 5632; i++) x[i] = frand(&seed);
        double *t = calloc((size_t)(NV * rounds), sizeof(double));
        double *ratio = calloc((size_t)(NV * rounds), sizeof(double));
        for (int r = -1; r < rounds; r++) /* round -1: warm-up */
            for (int v = 0; v < NV; v++) {
                /* one measurement: the layer decoded once from each of its copies (>= --mib
                 * MiB streamed, long enough to average over the host's scheduling), per layer */
                double t0 = shrink_time();
                for (int cpy = 0; cpy < nc[v]; cpy++) {
                    layer *ly = &L[v][cpy];
                    for (int i = 0; i < NM; i++)
                        if (sk_matmul(&ly->m[i], x, 1, y, ly->m[i].rows, &s) != SHRINK_OK) {
                            fprintf(stderr, "%s\n", shrink_last_error());
                            return 1;
                        }
                }
                if (r >= 0) t[v * rounds + r] = (shrink_time() - t0) / nc[v];
            }
        for (int v = 0; v < NV; v++) {
            for (int r = 0; r < rounds; r++) ratio[v * rounds + r] = t[r] / t[v * rounds + r];
            qsort(t + v * rounds, (size_t)rounds, sizeof(double), cmp_double);
            qsort(ratio + v * rounds, (size_t)rounds, sizeof(double), cmp_double);
        }
        for (int v = 1; v < NV; v++) {
            const double ideal = (double)L[0][0].bytes / (double)L[v][0].bytes;
            const double sp = ratio[v * rounds + rounds / 2];
            printf("| %s | %.2f | %.1f | %.1f | %.2fx | %.2f | %.2f | %.2fx | %.2f |\n",
                   shrink_dtype_name(dt), ratios[v - 1], (double)L[0][0].bytes / 1048576.0,
                   (double)L[v][0].bytes / 1048576.0, ideal, t[rounds / 2] * 1e3,
                   t[v * rounds + rounds / 2] * 1e3, sp, sp / ideal);
            fflush(stdout);
        }
        for (int v = 0; v < NV; v++) {
            for (int c = 0; c < nc[v]; c++) layer_free(&L[v][c]);
            free(L[v]);
        }
        sk_scratch_free(&s);
        free(t); free(ratio); free(x); free(y);
    }
    return 0;
}
