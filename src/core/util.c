/*
 * util.c - time, peak memory, threads, memory bandwidth measurement, number formatting.
 */
#include "core.h"

#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
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

const char *shrink_fmt_double(char *buf, size_t cap, double v) {
    if (!buf || cap == 0) return buf;
    if (!isfinite(v)) {
        snprintf(buf, cap, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
        return buf;
    }
    char tmp[40];
    int  prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    /* whole numbers below 1e15 as digits: 100, not 1e+02 (exact: integers < 2^53 are doubles) */
    snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
    int e = atoi(strchr(tmp, 'e') + 1);
    if (e >= prec && e < 15) prec = e + 1;
    snprintf(tmp, sizeof tmp, "%.*g", prec, v);
    snprintf(buf, cap, "%s", tmp);
    return buf;
}

static int sk_threads = 0;

void shrink_set_threads(int n_threads) {
    if (n_threads <= 0) n_threads = omp_get_num_procs();
    sk_threads = n_threads;
    omp_set_num_threads(n_threads);
}

int shrink_get_threads(void) { return sk_threads > 0 ? sk_threads : omp_get_max_threads(); }

int sk_glob_list_match(const char *list, const char *name) {
    if (!list) return 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char pat[256];
        if (n > 0 && n < sizeof pat) {
            memcpy(pat, p, n);
            pat[n] = 0;
            if (fnmatch(pat, name, 0) == 0) return 1;
        }
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

/* ---- sk_bytes ------------------------------------------------------------------------------ */

void sk_bytes_put(sk_bytes *b, const void *p, size_t n) {
    if (b->oom || !n) return;
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->n + n) nc *= 2;
        uint8_t *q = sk_realloc(b->p, nc);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

void sk_bytes_printf(sk_bytes *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || b->oom) return;
    char *t = sk_malloc((size_t)n + 1);
    if (!t) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(t, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sk_bytes_put(b, t, (size_t)n);
    sk_free(t);
}

uint64_t sk_hash64(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
    }
    for (; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

uint64_t sk_hash_str(uint64_t h, const char *s) {
    if (!s) s = "";
    return sk_hash64(h, s, strlen(s) + 1);
}

uint64_t sk_hash_file_id(uint64_t h, const char *path) {
    char buf[64] = "";
    struct stat sb;
    if (path && stat(path, &sb) == 0)
        snprintf(buf, sizeof buf, "%lld:%lld", (long long)sb.st_size, (long long)sb.st_mtime);
    return sk_hash_str(sk_hash_str(h, path), buf);
}

int sk_name_find(const char *const *names, int n, const char *name) {
    for (int i = 0; name && i < n; i++)
        if (strcasecmp(name, names[i]) == 0) return i;
    return -1;
}
