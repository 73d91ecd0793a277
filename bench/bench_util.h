/*
 * bench_util.h - small helpers the bench programs share: the qsort comparison of doubles (for
 * medians) and a deterministic uniform float in [-0.5, 0.5) (an LCG).
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdint.h>

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline float bench_frand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 11) / 9007199254740992.0 - 0.5);
}

#endif /* BENCH_UTIL_H */
