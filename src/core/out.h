/*
 * out.h - atomic output files: every file shrink writes (models, checkpoints, data caches)
 * appears at its path only when complete. Nothing outside src/ includes this.
 *
 * Bytes go to "<dir>/.<name>.tmp-XXXXXX" in the target folder (same file system, so the
 * rename is atomic), which is fsync'd, renamed over the target and followed by an fsync of
 * the folder. Any failure unlinks the temporary. An output that resolves to one of the inputs
 * (same device and inode) is refused before anything is written.
 */
#ifndef SK_OUT_H
#define SK_OUT_H

#include "core.h"

/* A file being written: bytes go to a temporary "<dir>/.<name>.tmp-XXXXXX" in the target
 * folder; sk_out_commit fsyncs it and renames it over `path`; sk_out_abort (or any failing
 * sk_out_* call) removes it. `path` is never touched before the commit. */
typedef struct sk_out {
    int      fd;         /* -1 when closed */
    char    *path;       /* final path (malloc'd) */
    char    *tmp;        /* temporary path (malloc'd) */
    uint64_t written;    /* bytes written so far */
} sk_out;

/* Opens a temporary file for `path`. Refuses (SHRINK_ERR_ARG) when `path` resolves to one of
 * inputs[0..n_inputs) (same device and inode, or the same canonical path) or is a folder. */
SK_HIDDEN shrink_status sk_out_open(sk_out *o, const char *path, const char *const *inputs,
                                    int n_inputs);
/* Writes n bytes (retrying short writes); on failure aborts o. */
SK_HIDDEN shrink_status sk_out_write(sk_out *o, const void *p, size_t n);
/* Writes zero bytes up to the next multiple of `align` of o->written. */
SK_HIDDEN shrink_status sk_out_pad(sk_out *o, uint64_t align);
/* Writes n bytes at absolute offset `off` (a header filled in after the data). */
SK_HIDDEN shrink_status sk_out_pwrite(sk_out *o, const void *p, size_t n, uint64_t off);
/* fsync, close, rename to path, fsync the folder. On failure the temporary is removed. */
SK_HIDDEN shrink_status sk_out_commit(sk_out *o);
/* fsync + close without renaming yet (for a group of files committed together with
 * sk_out_rename once all are complete). */
SK_HIDDEN shrink_status sk_out_finish(sk_out *o);
SK_HIDDEN shrink_status sk_out_rename(sk_out *o);
/* Closes and unlinks the temporary; frees o's strings. Safe on a committed/aborted/zeroed o. */
SK_HIDDEN void sk_out_abort(sk_out *o);

/* 1 if paths a and b name the same existing file (device + inode), else 0. */
SK_HIDDEN int sk_same_file(const char *a, const char *b);

#endif /* SK_OUT_H */
