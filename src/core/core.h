/*
 * core.h - internal services shared by all of src/: error reporting, counted allocation,
 * overflow-checked arithmetic, file mapping, timing. Nothing outside src/ includes this.
 *
 * Errors: a failing function calls sk_error(status, fmt, ...) which records a thread-local
 * message (readable through shrink_last_error()) and returns the status, so the idiom is
 *     return sk_error(SHRINK_ERR_FORMAT, "%s: header length %" PRIu64 " past end", path, n);
 * Messages name the file (or function) and the bad value.
 */
#ifndef SK_CORE_H
#define SK_CORE_H

#include "shrink.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define SK_HIDDEN __attribute__((visibility("hidden")))
#define SK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SK_HIDDEN
#define SK_PRINTF(a, b)
#endif

/* ---- errors ---------------------------------------------------------------------------- */

SK_HIDDEN shrink_status sk_error(shrink_status st, const char *fmt, ...) SK_PRINTF(2, 3);
SK_HIDDEN void sk_clear_error(void);

/* Broken invariants (bugs, not bad input) abort with file, line and expression. */
#define SHRINK_ASSERT(x)                                                                   \
    do {                                                                                   \
        if (!(x)) sk_abort(__FILE__, __LINE__, #x);                                        \
    } while (0)
SK_HIDDEN _Noreturn void sk_abort(const char *file, int line, const char *expr);

/* ---- allocation (counted; tests may inject failure) ------------------------------------ */

SK_HIDDEN void *sk_malloc(size_t n);                 /* NULL on failure or n == 0 -> 1 byte */
SK_HIDDEN void *sk_calloc(size_t n, size_t size);    /* zeroed; NULL on overflow/failure */
SK_HIDDEN void *sk_realloc(void *p, size_t n);
SK_HIDDEN void *sk_aligned_alloc(size_t align, size_t n); /* free with sk_free */
SK_HIDDEN void  sk_free(void *p);
SK_HIDDEN char *sk_strdup(const char *s);
SK_HIDDEN char *sk_strndup(const char *s, size_t n);
SK_HIDDEN size_t sk_alloc_bytes_live(void);          /* bytes currently allocated */

/* ---- checked arithmetic ---------------------------------------------------------------- */

/* *out = a * b; false if it overflows. */
static inline int sk_mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
    if (a != 0 && b > UINT64_MAX / a) return 0;
    *out = a * b;
    return 1;
}
static inline int sk_add_ok(uint64_t a, uint64_t b, uint64_t *out) {
    if (b > UINT64_MAX - a) return 0;
    *out = a + b;
    return 1;
}

/* ---- files ----------------------------------------------------------------------------- */

typedef struct sk_map {
    const uint8_t *data; /* read-only mapping of the whole file (NULL for an empty file) */
    size_t         size;
} sk_map;

/* Opens `path` for reading, refusing (with a message naming the path and what it is) anything
 * but a regular file, without blocking on a FIFO; *size is the file's size. */
SK_HIDDEN shrink_status sk_open_regular(const char *path, int *fd, uint64_t *size);
/* The error for a path that is not the regular file (or folder) expected: "no such <what>"
 * only when nothing is there, else what it is ("a FIFO (named pipe)") or why it cannot be
 * seen ("Permission denied"). Returns SHRINK_ERR_IO. */
SK_HIDDEN shrink_status sk_error_not_found(const char *path, const char *what);
/* fopen(path, "rb") of a regular file; NULL (no error recorded) for anything else. */
SK_HIDDEN FILE *sk_fopen_regular(const char *path);
/* "a folder", "a FIFO (named pipe)", "a character device", ... of a st_mode. */
SK_HIDDEN const char *sk_file_kind(unsigned mode);
/* Maps `path` read-only. Fails with a message naming the path. */
SK_HIDDEN shrink_status sk_map_file(const char *path, sk_map *out);
SK_HIDDEN void sk_unmap(sk_map *m);
/* Drops the whole pages inside [p, p + n) of a read-only file mapping from this process
 * (madvise MADV_DONTNEED: they are read again from the page cache if touched). Only for
 * sk_map mappings, never heap memory. Best effort. */
SK_HIDDEN void sk_map_release(const void *p, uint64_t n);

/* Reads a whole (small) file into a malloc'd, NUL-terminated buffer; refuses files larger
 * than max_bytes with a message naming the file. */
SK_HIDDEN shrink_status sk_read_file(const char *path, size_t max_bytes, char **out,
                                     size_t *len);
SK_HIDDEN int sk_file_exists(const char *path);      /* regular file */
SK_HIDDEN int sk_dir_exists(const char *path);
/* dir + "/" + name into a malloc'd string. */
SK_HIDDEN char *sk_path_join(const char *dir, const char *name);
/* The folder part of a path ("." if none), malloc'd. */
SK_HIDDEN char *sk_path_dir(const char *path);

/* ---- UTF-8 ----------------------------------------------------------------------------- */

/* Returns 1 if s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF); else 0 and
 * *bad_at = offset of the first bad byte. */
SK_HIDDEN int sk_utf8_valid(const char *s, size_t n, size_t *bad_at);

/* ---- little-endian readers ------------------------------------------------------------- */

static inline uint32_t sk_rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t sk_rd_u64(const uint8_t *p) {
    return (uint64_t)sk_rd_u32(p) | (uint64_t)sk_rd_u32(p + 4) << 32;
}
static inline float sk_rd_f32(const uint8_t *p) {
    uint32_t u = sk_rd_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif /* SK_CORE_H */
