/*
 * alloc.c - counted allocation. Every allocation in src/ goes through these so live bytes
 * can be reported and a test can make the n-th allocation fail (SHRINK_FAIL_ALLOC=n).
 * A small header before each block records its size.
 */
#include "core.h"

#include <stdatomic.h>

#define SK_HDR 64 /* keeps user pointers 64-byte aligned when the base is */

static atomic_size_t sk_live;
static atomic_long   sk_fail_countdown = -2; /* -2: not read yet, -1: never fail */
static atomic_int    sk_fail_hit;             /* an injected failure happened */

static int sk_should_fail(void) {
    long c = atomic_load(&sk_fail_countdown);
    if (c == -2) {
        const char *e = getenv("SHRINK_FAIL_ALLOC");
        long v = e ? atol(e) : -1;
        atomic_store(&sk_fail_countdown, v > 0 ? v : -1);
        c = atomic_load(&sk_fail_countdown);
    }
    if (c < 0) return 0;
    if (atomic_fetch_sub(&sk_fail_countdown, 1) != 1) return 0;
    atomic_store(&sk_fail_hit, 1);
    return 1;
}

void *sk_aligned_alloc(size_t align, size_t n) {
    if (align < SK_HDR) align = SK_HDR;
    if (n > SIZE_MAX - align - SK_HDR || sk_should_fail()) return NULL;
    void *base = NULL;
    if (posix_memalign(&base, align, n + align) != 0) return NULL;
    uint8_t *p = (uint8_t *)base + align;
    size_t meta[2] = {n, align};
    memcpy(p - sizeof meta, meta, sizeof meta);
    atomic_fetch_add(&sk_live, n);
    return p;
}

void *sk_malloc(size_t n) { return sk_aligned_alloc(SK_HDR, n ? n : 1); }

void *sk_calloc(size_t n, size_t size) {
    uint64_t total;
    if (!sk_mul_ok(n, size, &total) || total > SIZE_MAX) return NULL;
    void *p = sk_malloc((size_t)total);
    if (p) memset(p, 0, (size_t)total);
    return p;
}

void sk_free(void *p) {
    if (!p) return;
    size_t meta[2];
    memcpy(meta, (uint8_t *)p - sizeof meta, sizeof meta);
    atomic_fetch_sub(&sk_live, meta[0]);
    free((uint8_t *)p - meta[1]);
}

void *sk_realloc(void *p, size_t n) {
    if (!p) return sk_malloc(n);
    size_t meta[2];
    memcpy(meta, (uint8_t *)p - sizeof meta, sizeof meta);
    void *q = sk_malloc(n);
    if (!q) return NULL;
    memcpy(q, p, meta[0] < n ? meta[0] : n);
    sk_free(p);
    return q;
}

char *sk_strndup(const char *s, size_t n) {
    char *d = sk_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *sk_strdup(const char *s) { return sk_strndup(s, strlen(s)); }

size_t sk_alloc_bytes_live(void) { return atomic_load(&sk_live); }

void sk_alloc_fail_after(long n) {
    atomic_store(&sk_fail_hit, 0);
    atomic_store(&sk_fail_countdown, n > 0 ? n : -1);
}

int sk_alloc_failed(void) { return atomic_load(&sk_fail_hit); }

shrink_status sk_scratch_reserve(sk_scratch *s, size_t bytes) {
    SHRINK_ASSERT(s->used == 0);
    bytes = sk_scratch_round(bytes);
    if (bytes <= s->cap) return SHRINK_OK;
    uint8_t *p = sk_aligned_alloc(64, bytes);
    if (!p)
        return sk_error(SHRINK_ERR_NOMEM, "out of memory for %zu bytes of kernel scratch", bytes);
    sk_free(s->base);
    s->base = p;
    s->cap = bytes;
    return SHRINK_OK;
}

void sk_scratch_free(sk_scratch *s) {
    sk_free(s->base);
    s->base = NULL;
    s->cap = s->used = 0;
}

void shrink_free(void *p) { sk_free(p); }
