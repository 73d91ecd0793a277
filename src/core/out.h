/*
 * out.h - atomic output files: every file shrink writes (models, checkpoints, data caches)
 * appears at its path only when complete. Nothing outside src/ includes this.
 *
 * Bytes go to an unnamed file in the target folder (O_TMPFILE, where the file system has it
 * and SHRINK_NO_TMPFILE is not set): nothing is visible while it is written, and a SIGKILL or
 * a power loss leaves nothing behind. At the commit it is fsync'd and linked in (linkat) —
 * directly at the target when that does not exist, else at a temporary name renamed over the
 * target at once. Elsewhere bytes go to "<dir>/.<name>.shrink-<pid>.tmp-XXXXXX" (same file
 * system, so the rename is atomic), which is fsync'd and renamed over the target. Either way
 * the folder is fsync'd after. Any failure removes the temporary. An output that resolves to one of
 * the inputs (same device and inode) is refused before anything is written, and so is an
 * existing path that is not a regular file (a FIFO, a device, a symbolic link).
 *
 * Every live temporary is listed in a process-wide table that shrink_remove_temporaries()
 * (async-signal-safe, called by the CLI's signal handler) empties; a temporary left by a
 * process that died (SIGKILL, power loss) carries that process's id in its name, so
 * shrink_remove_stale_temporaries() recognises it on the next run in that folder.
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
    int      slot;       /* 1 + index in the table of live temporaries, 0 if not listed */
    int      anon;       /* 1: fd is an unnamed O_TMPFILE file (tmp is NULL until linked) */
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
 * sk_out_rename once all are complete); an unnamed file stays open until sk_out_rename. */
SK_HIDDEN shrink_status sk_out_finish(sk_out *o);
SK_HIDDEN shrink_status sk_out_rename(sk_out *o);
/* Closes and unlinks the temporary; frees o's strings. Safe on a committed/aborted/zeroed o. */
SK_HIDDEN void sk_out_abort(sk_out *o);

/* A folder written as a whole (a Hugging Face model): the files go into a temporary sibling
 * folder "<parent>/.<name>.shrink-<pid>.tmp-XXXXXX" (listed for the signal handler), which
 * sk_outdir_commit swaps in for `path` (renameat2 RENAME_EXCHANGE, else two renames), then
 * removes the old folder: `path` holds exactly the new files, never a mix of two models. */
typedef struct sk_outdir {
    char *path;   /* final folder (malloc'd) */
    char *tmp;    /* the temporary folder the files go to (malloc'd) */
    int   slot;   /* 1 + slot in the table of temporaries, 0 if not listed */
} sk_outdir;

SK_HIDDEN shrink_status sk_outdir_open(sk_outdir *d, const char *path);
SK_HIDDEN shrink_status sk_outdir_commit(sk_outdir *d);
/* Removes the temporary folder and what it holds; safe on a committed/zeroed d. */
SK_HIDDEN void sk_outdir_abort(sk_outdir *d);
/* Removes a file or a folder tree of files; 0 on success. */
SK_HIDDEN int sk_remove_tree(const char *path);
/* 1 if existing path `inner` is the folder `outer` or lies inside it (after resolving links
 * and ".."), else 0. */
SK_HIDDEN int sk_path_within(const char *inner, const char *outer);

/* 1 if paths a and b name the same existing file (device + inode), else 0. */
SK_HIDDEN int sk_same_file(const char *a, const char *b);

/* SHRINK_OK if `path` does not exist or is a regular file (want_dir 0) / a folder (want_dir
 * 1); else SHRINK_ERR_ARG with a message naming the path and what it is. */
SK_HIDDEN shrink_status sk_out_check_kind(const char *path, int want_dir);

/* Lists `path` (a temporary file, or a folder shrink created) as removed by
 * shrink_remove_temporaries(); returns 1 + its slot (0 if the table is full or the path too
 * long: the stale-temporary sweep still finds it). sk_tmp_unlist(slot) takes it off. */
SK_HIDDEN int  sk_tmp_list(const char *path, int is_dir);
SK_HIDDEN void sk_tmp_unlist(int slot);
/* "<dir>/.<base><suffix>.shrink-<pid>.tmp-XXXXXX" as a mkstemp/mkdtemp template (malloc'd). */
SK_HIDDEN char *sk_tmp_template(const char *path, const char *suffix);
/* A temporary is stale when its process is gone and it was not modified for this long. */
#define SK_STALE_SECONDS 60

#endif /* SK_OUT_H */
