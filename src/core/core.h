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
/* A diagnostic that is not an error of the call (a bad environment value): one line, to the
 * callback of shrink_set_log_callback, dropped without one. The library never prints. */
SK_HIDDEN void sk_log(const char *fmt, ...) SK_PRINTF(1, 2);

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
/* Tests: the n-th allocation from now fails (n >= 1; each later one succeeds again); 0 turns
 * injected failures off. The same countdown as SHRINK_FAIL_ALLOC=n in the environment. */
SK_HIDDEN void sk_alloc_fail_after(long n);
/* 1 if an injected failure has happened since the last sk_alloc_fail_after. */
SK_HIDDEN int sk_alloc_failed(void);

/* ---- scratch arenas ---------------------------------------------------------------------
 *
 * Work memory a kernel needs during a call (packed panels, quantized activations), owned by
 * the caller's long-lived state (a decoder context, a training state) and sized at setup:
 * sk_scratch_reserve is the only allocation (it grows the arena; never called inside a
 * kernel), sk_scratch_take hands out 64-byte aligned pieces during a call, and the caller of
 * the kernel gives them all back by restoring `used`. Kernels say beforehand how many bytes
 * they take (e.g. sk_matmul_scratch_bytes), so a take never fails inside a kernel. */
typedef struct sk_scratch {
    uint8_t *base; /* 64-byte aligned, cap bytes */
    size_t   cap;
    size_t   used; /* bytes handed out by the call running now */
} sk_scratch;

/* Bytes a take of n bytes uses up (a multiple of 64). */
static inline size_t sk_scratch_round(size_t n) { return (n + 63) & ~(size_t)63; }
/* Makes room for `bytes` (cap >= bytes); keeps the arena when it is large enough. Not while a
 * call holds pieces (used must be 0). SHRINK_ERR_NOMEM (with a message) on failure. */
SK_HIDDEN shrink_status sk_scratch_reserve(sk_scratch *s, size_t bytes);
SK_HIDDEN void sk_scratch_free(sk_scratch *s);
/* n bytes (64-byte aligned) from the arena, NULL if fewer than sk_scratch_round(n) are left. */
static inline void *sk_scratch_take(sk_scratch *s, size_t n) {
    const size_t r = sk_scratch_round(n);
    if (!s || !s->base || r > s->cap - s->used) return NULL;
    void *p = s->base + s->used;
    s->used += r;
    return p;
}
/* Bytes not yet handed out. */
static inline size_t sk_scratch_left(const sk_scratch *s) { return s ? s->cap - s->used : 0; }

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
/* 1 if `name` matches one of the comma-separated globs (fnmatch) of `list` (NULL: none); a glob
 * of 255 bytes or more never matches. Quantize's and prune's --keep. */
SK_HIDDEN int sk_glob_list_match(const char *list, const char *name);
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

/* ---- a growable byte buffer (util.c) ---------------------------------------------------- */

/* Appends never fail loudly: `oom` sticks once an allocation failed, checked once at the end.
 * Zero-initialize; free p with sk_free. */
typedef struct sk_bytes {
    uint8_t *p;
    size_t   n, cap;
    int      oom;
} sk_bytes;
SK_HIDDEN void sk_bytes_put(sk_bytes *b, const void *p, size_t n);
SK_HIDDEN void sk_bytes_printf(sk_bytes *b, const char *fmt, ...) SK_PRINTF(2, 3);

/* The index of `name` in names[0..n) (case-insensitive), -1 if absent or name is NULL: the
 * lookup of a public enum's spelling (units, methods). */
SK_HIDDEN int sk_name_find(const char *const *names, int n, const char *name);
/* FNV-1a 64 of p[0..n) added to h (start from SK_HASH64_INIT), over 8-byte little-endian
 * words and the tail byte by byte: a fast checksum for identities and caches, not a
 * cryptographic hash (shrink_sha256 is). */
#define SK_HASH64_INIT 0xcbf29ce484222325ull
SK_HIDDEN uint64_t sk_hash64(uint64_t h, const void *p, size_t n);
/* h extended by the string s with its terminating zero (NULL as ""), so "ab" + "c" differs
 * from "a" + "bc". */
SK_HIDDEN uint64_t sk_hash_str(uint64_t h, const char *s);
/* h extended by an input's identity as ranks compare it (docs/scale.md): its path, then its
 * size and modification time (nothing for a file that cannot be read, or NULL). */
SK_HIDDEN uint64_t sk_hash_file_id(uint64_t h, const char *path);

#endif /* SK_CORE_H */
