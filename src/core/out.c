/*
 * out.c - atomic output files (out.h): an unnamed O_TMPFILE file in the target's folder
 * linked in when complete, or a named temporary beside the target renamed over it; fsync of
 * the file and the folder; any failure removes the temporary. The table of live temporaries (emptied
 * by shrink_remove_temporaries on a signal) and the sweep of stale ones.
 */
#include "out.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ==== the table of live temporaries ====================================================== */

/* A slot is 0 (free), 1 (being filled), 2 (a file) or 3 (a folder). Claimed with a
 * compare-and-swap, read by the signal handler without locks. */
enum { TMP_SLOTS = 256, TMP_PATH = 1024 };
static struct {
    atomic_int state;
    char       path[TMP_PATH];
} tmp_table[TMP_SLOTS];

int sk_tmp_list(const char *path, int is_dir) {
    size_t n = strlen(path);
    if (n >= TMP_PATH) return 0;
    for (int i = 0; i < TMP_SLOTS; i++) {
        int expect = 0;
        if (atomic_compare_exchange_strong(&tmp_table[i].state, &expect, 1)) {
            memcpy(tmp_table[i].path, path, n + 1);
            atomic_store(&tmp_table[i].state, is_dir ? 3 : 2);
            return i + 1;
        }
    }
    return 0;
}

void sk_tmp_unlist(int slot) {
    if (slot > 0 && slot <= TMP_SLOTS) atomic_store(&tmp_table[slot - 1].state, 0);
}

void shrink_remove_temporaries(void) {
    /* files first, then the folders (rmdir removes only empty ones: a folder shrink created
     * that holds nothing else); a few passes for nested folders */
    for (int i = TMP_SLOTS - 1; i >= 0; i--)
        if (atomic_load(&tmp_table[i].state) == 2) (void)unlink(tmp_table[i].path);
    for (int pass = 0; pass < 4; pass++)
        for (int i = TMP_SLOTS - 1; i >= 0; i--)
            if (atomic_load(&tmp_table[i].state) == 3) (void)rmdir(tmp_table[i].path);
}

char *sk_tmp_template(const char *path, const char *suffix) {
    char *dir = sk_path_dir(path);
    if (!dir) return NULL;
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--; /* "out/" names the folder "out" */
    const char *base = path + len;
    while (base > path && base[-1] != '/') base--;
    size_t n = strlen(dir) + (size_t)(path + len - base) + strlen(suffix) + 64;
    char *t = sk_malloc(n);
    if (t)
        snprintf(t, n, "%s/.%.*s%s.shrink-%ld.tmp-XXXXXX", dir, (int)(path + len - base), base,
                 suffix, (long)getpid());
    sk_free(dir);
    return t;
}

/* The process id in a temporary's name ".<name>.shrink-<pid>.tmp-XXXXXX", or -1 if the name
 * is not one of shrink's temporaries. */
static long tmp_pid(const char *name) {
    size_t n = strlen(name);
    if (name[0] != '.' || n < 20) return -1;
    const char *tmp = name + n - 11;                 /* ".tmp-XXXXXX" */
    if (strncmp(tmp, ".tmp-", 5) != 0) return -1;
    const char *p = tmp;
    while (p > name && p[-1] >= '0' && p[-1] <= '9') p--;
    if (p == tmp || p - name < 8 || strncmp(p - 8, ".shrink-", 8) != 0) return -1;
    long pid = strtol(p, NULL, 10);
    return pid > 0 ? pid : -1;
}

/* Removes a file or a folder tree (temporaries only: shrink's folders hold files). */
static int remove_tree(const char *path, int depth) {
    if (unlink(path) == 0) return 0;
    if (errno != EISDIR && errno != EPERM) return -1;
    DIR *d = depth < 8 ? opendir(path) : NULL;
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = sk_path_join(path, e->d_name);
        if (p) (void)remove_tree(p, depth + 1);
        sk_free(p);
    }
    closedir(d);
    return rmdir(path);
}

int sk_remove_tree(const char *path) { return remove_tree(path, 0); }

int sk_path_within(const char *inner, const char *outer) {
    char *a = realpath(inner, NULL), *b = realpath(outer, NULL);
    int r = 0;
    if (a && b) {
        size_t n = strlen(b);
        r = !strncmp(a, b, n) && (a[n] == '\0' || a[n] == '/' || (n == 1 && b[0] == '/'));
    }
    free(a);
    free(b);
    return r;
}

int shrink_remove_stale_temporaries(const char *dir, void (*removed)(void *user, const char *path),
                                    void *user) {
    DIR *d = opendir(dir && *dir ? dir : ".");
    if (!d) return 0;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid = tmp_pid(e->d_name);
        if (pid < 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* still running (or not ours) */
        char *p = sk_path_join(dir && *dir ? dir : ".", e->d_name);
        /* untouched for a minute too: a writer in another pid namespace sharing the folder
         * (a container, another host) keeps its temporary's mtime fresh while it writes */
        struct stat sb;
        if (p && (lstat(p, &sb) != 0 || time(NULL) - sb.st_mtime < SK_STALE_SECONDS)) {
            sk_free(p);
            continue;
        }
        if (p && remove_tree(p, 0) == 0) {
            count++;
            if (removed) removed(user, p);
        }
        sk_free(p);
    }
    closedir(d);
    return count;
}

/* ==== output files ======================================================================= */

/* The process's umask (read once: umask() can only be read by setting it). */
static mode_t sk_umask(void) {
    static atomic_int cached = -1;
    int v = atomic_load(&cached);
    if (v < 0) {
        mode_t um = umask(0);
        umask(um);
        v = (int)um;
        atomic_store(&cached, v);
    }
    return (mode_t)v;
}

shrink_status sk_out_check_kind(const char *path, int want_dir) {
    struct stat st;
    if (lstat(path, &st) != 0) return SHRINK_OK; /* a new path */
    if (want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode)) return SHRINK_OK;
    const char *what = S_ISDIR(st.st_mode)    ? "a folder"
                       : S_ISREG(st.st_mode)  ? "a file"
                       : S_ISLNK(st.st_mode)  ? "a symbolic link"
                       : S_ISFIFO(st.st_mode) ? "a FIFO (named pipe)"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    return sk_error(SHRINK_ERR_ARG, "%s: exists and is %s; shrink writes its output only as a "
                    "new %s or over one it can replace (give another path)", path, what,
                    want_dir ? "folder" : "regular file");
}

int sk_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* 1 if outputs may be unnamed O_TMPFILE files: not disabled by SHRINK_NO_TMPFILE (set and
 * not "0": forces the named temporaries, for tests and odd file systems), and linkable into
 * place through /proc/self/fd. */
static int tmpfile_wanted(void) {
    const char *e = getenv("SHRINK_NO_TMPFILE");
    if (e && *e && strcmp(e, "0") != 0) return 0;
    return access("/proc/self/fd", X_OK) == 0;
}

/* Gives the unnamed file open at fd the name `path` (which must not exist: EEXIST). */
static int link_fd(int fd, const char *path) {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
}

/* Replaces the "XXXXXX" that ends t with letters and digits (as mkstemp would). */
static void fill_random(char *t, unsigned attempt) {
    static const char az[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static atomic_uint counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t v = (uint64_t)ts.tv_nsec * 2654435761u ^ (uint64_t)getpid() << 20 ^
                 (uint64_t)atomic_fetch_add(&counter, 1) << 40 ^ attempt * 0x9e3779b97f4a7c15u;
    char *x = t + strlen(t) - 6;
    for (int i = 0; i < 6; i++, v /= 62) x[i] = az[v % 62];
}

/* Links the finished unnamed file of o into place: directly at o->path when nothing is
 * there (atomic: the file appears complete), else at a temporary name (listed for the signal
 * handler) that is then renamed over o->path. */
static shrink_status link_anon(sk_out *o) {
    if (link_fd(o->fd, o->path) == 0) {
        close(o->fd);
        o->fd = -1;
        o->anon = 0;
        return SHRINK_OK;
    }
    int e = errno;
    if (e == EEXIST) {
        o->tmp = sk_tmp_template(o->path, "");
        if (!o->tmp) {
            sk_out_abort(o);
            return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", o->path);
        }
        for (unsigned i = 0; i < 100; i++) {
            fill_random(o->tmp, i);
            if (link_fd(o->fd, o->tmp) == 0) {
                o->slot = sk_tmp_list(o->tmp, 0);
                close(o->fd);
                o->fd = -1;
                o->anon = 0;
                return SHRINK_OK; /* the caller renames it */
            }
            if ((e = errno) != EEXIST) break;
        }
        sk_free(o->tmp); /* never linked: nothing to unlink */
        o->tmp = NULL;
    }
    shrink_status st = sk_error(SHRINK_ERR_IO, "%s: cannot link the finished file into its "
                                "folder: %s (SHRINK_NO_TMPFILE=1 uses named temporaries)",
                                o->path, strerror(e));
    sk_out_abort(o);
    return st;
}

shrink_status sk_out_open(sk_out *o, const char *path, const char *const *inputs,
                          int n_inputs) {
    memset(o, 0, sizeof *o);
    o->fd = -1;
    if (!path || !*path) return sk_error(SHRINK_ERR_ARG, "no output path given");
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i] && sk_same_file(path, inputs[i]))
            return sk_error(SHRINK_ERR_ARG, "%s: is the input file %s; refusing to overwrite "
                            "an input", path, inputs[i]);
    if (sk_dir_exists(path))
        return sk_error(SHRINK_ERR_ARG, "%s: is a folder, expected a file path", path);
    shrink_status kind = sk_out_check_kind(path, 0);
    if (kind) return kind;
    o->path = sk_strdup(path);
    if (o->path && tmpfile_wanted()) {
        /* an unnamed file in the target's folder: invisible while written, gone on a crash */
        char *dir = sk_path_dir(path);
        o->fd = dir ? open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0666) : -1;
        sk_free(dir);
        if (o->fd >= 0) {
            o->anon = 1;
            return SHRINK_OK;
        }
        /* EOPNOTSUPP (file system), EISDIR/EINVAL (old kernel), ...: a named temporary */
    }
    o->tmp = sk_tmp_template(path, "");
    if (!o->path || !o->tmp) {
        sk_free(o->tmp); /* not a file name yet: sk_out_abort must not unlink it */
        o->tmp = NULL;
        sk_out_abort(o);
        return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    }
    o->fd = mkostemp(o->tmp, O_CLOEXEC);
    if (o->fd < 0) {
        int e = errno;
        sk_free(o->tmp); /* nothing was created */
        o->tmp = NULL;
        sk_out_abort(o);
        return sk_error(SHRINK_ERR_IO, "%s: cannot create a temporary file beside it: %s", path,
                        strerror(e));
    }
    o->slot = sk_tmp_list(o->tmp, 0);
    /* mkostemp creates 0600; give the file the usual permissions (umask applies) */
    if (fchmod(o->fd, 0666 & ~sk_umask()) != 0) { /* not fatal */
    }
    return SHRINK_OK;
}

shrink_status sk_out_write(sk_out *o, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(o->fd, b, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            shrink_status st = sk_error(SHRINK_ERR_IO, "%s: write failed after %" PRIu64
                                        " bytes: %s", o->path, o->written, strerror(e));
            sk_out_abort(o);
            return st;
        }
        b += w;
        n -= (size_t)w;
        o->written += (uint64_t)w;
    }
    return SHRINK_OK;
}

shrink_status sk_out_pad(sk_out *o, uint64_t align) {
    static const uint8_t zeros[256];
    uint64_t pad = (align - o->written % align) % align;
    while (pad > 0) {
        size_t k = pad > sizeof zeros ? sizeof zeros : (size_t)pad;
        shrink_status st = sk_out_write(o, zeros, k);
        if (st) return st;
        pad -= k;
    }
    return SHRINK_OK;
}

shrink_status sk_out_pwrite(sk_out *o, const void *p, size_t n, uint64_t off) {
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = pwrite(o->fd, b, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            shrink_status st = sk_error(SHRINK_ERR_IO, "%s: write failed: %s", o->path,
                                        strerror(e));
            sk_out_abort(o);
            return st;
        }
        b += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return SHRINK_OK;
}

shrink_status sk_out_finish(sk_out *o) {
    if (o->fd < 0) return sk_error(SHRINK_ERR_ARG, "writing an output that is not open");
    if (fsync(o->fd) != 0 && errno != EINVAL) {
        int e = errno;
        shrink_status st = sk_error(SHRINK_ERR_IO, "%s: fsync failed: %s", o->path, strerror(e));
        sk_out_abort(o);
        return st;
    }
    if (o->anon) return SHRINK_OK; /* closing would lose it: linked by sk_out_rename */
    int rc = close(o->fd);
    o->fd = -1;
    if (rc != 0) {
        int e = errno;
        shrink_status st = sk_error(SHRINK_ERR_IO, "%s: close failed: %s", o->path, strerror(e));
        sk_out_abort(o);
        return st;
    }
    return SHRINK_OK;
}

/* fsyncs the folder holding path (makes a rename durable); errors are ignored. */
static void sync_dir_of(const char *path) {
    char *dir = sk_path_dir(path);
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    sk_free(dir);
}

shrink_status sk_out_rename(sk_out *o) {
    if (o->anon && o->fd >= 0) {
        shrink_status st = link_anon(o);
        if (st) return st;
    }
    if (!o->tmp && o->path) { /* linked directly at its path */
        sync_dir_of(o->path);
        sk_free(o->path);
        o->path = NULL;
        return SHRINK_OK;
    }
    if (!o->tmp) return sk_error(SHRINK_ERR_ARG, "no finished output to move into place");
    if (rename(o->tmp, o->path) != 0) {
        int e = errno;
        shrink_status st = sk_error(SHRINK_ERR_IO, "%s: rename from %s failed: %s", o->path,
                                    o->tmp, strerror(e));
        sk_out_abort(o);
        return st;
    }
    sync_dir_of(o->path);
    sk_tmp_unlist(o->slot);
    o->slot = 0;
    sk_free(o->tmp);
    o->tmp = NULL;
    sk_free(o->path);
    o->path = NULL;
    return SHRINK_OK;
}

/* ==== output folders ====================================================================== */

shrink_status sk_outdir_open(sk_outdir *d, const char *path) {
    memset(d, 0, sizeof *d);
    if (!path || !*path) return sk_error(SHRINK_ERR_ARG, "no output folder given");
    shrink_status kind = sk_out_check_kind(path, 1);
    if (kind) return kind;
    d->path = sk_strdup(path);
    d->tmp = sk_tmp_template(path, "");
    if (!d->path || !d->tmp) {
        sk_free(d->tmp); /* not a folder yet: sk_outdir_abort must not remove it */
        d->tmp = NULL;
        sk_outdir_abort(d);
        return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    }
    if (!mkdtemp(d->tmp)) {
        int e = errno;
        sk_free(d->tmp);
        d->tmp = NULL;
        sk_outdir_abort(d);
        return sk_error(SHRINK_ERR_IO, "%s: cannot create a temporary folder beside it: %s",
                        path, strerror(e));
    }
    (void)chmod(d->tmp, 0777 & ~sk_umask());
    d->slot = sk_tmp_list(d->tmp, 1);
    return SHRINK_OK;
}

shrink_status sk_outdir_commit(sk_outdir *d) {
    if (!d->tmp) return sk_error(SHRINK_ERR_ARG, "no finished output folder to move into place");
    struct stat st;
    int exists = lstat(d->path, &st) == 0;
    if (exists && !S_ISDIR(st.st_mode)) {
        shrink_status k = sk_out_check_kind(d->path, 1);
        sk_outdir_abort(d);
        return k;
    }
    if (!exists) {
        if (rename(d->tmp, d->path) != 0) {
            int e = errno;
            shrink_status s = sk_error(SHRINK_ERR_IO, "%s: rename from %s failed: %s", d->path,
                                       d->tmp, strerror(e));
            sk_outdir_abort(d);
            return s;
        }
    } else if (renameat2(AT_FDCWD, d->tmp, AT_FDCWD, d->path, RENAME_EXCHANGE) != 0) {
        /* no atomic exchange here: move the old folder aside, then the new one in */
        char *old = sk_tmp_template(d->path, ".old");
        if (!old || !mkdtemp(old) || rmdir(old) != 0 || rename(d->path, old) != 0) {
            int e = errno;
            sk_free(old);
            shrink_status s = sk_error(SHRINK_ERR_IO, "%s: cannot move the old folder aside: %s",
                                       d->path, strerror(e));
            sk_outdir_abort(d);
            return s;
        }
        if (rename(d->tmp, d->path) != 0) {
            int e = errno;
            (void)rename(old, d->path); /* put the old one back */
            sk_free(old);
            shrink_status s = sk_error(SHRINK_ERR_IO, "%s: rename from %s failed: %s", d->path,
                                       d->tmp, strerror(e));
            sk_outdir_abort(d);
            return s;
        }
        sk_free(d->tmp);
        d->tmp = old;   /* what is left to remove */
    }
    /* d->tmp now names the old folder (or nothing): remove it */
    sync_dir_of(d->path);
    sk_tmp_unlist(d->slot);
    d->slot = 0;
    if (exists) (void)sk_remove_tree(d->tmp);
    sk_free(d->tmp);
    sk_free(d->path);
    d->tmp = d->path = NULL;
    return SHRINK_OK;
}

void sk_outdir_abort(sk_outdir *d) {
    if (!d) return;
    if (d->tmp) (void)sk_remove_tree(d->tmp);
    sk_tmp_unlist(d->slot);
    d->slot = 0;
    sk_free(d->tmp);
    sk_free(d->path);
    d->tmp = d->path = NULL;
}

shrink_status sk_out_commit(sk_out *o) {
    shrink_status st = sk_out_finish(o);
    if (st) return st;
    return sk_out_rename(o);
}

void sk_out_abort(sk_out *o) {
    if (!o) return;
    if (o->fd >= 0) close(o->fd);
    o->fd = -1;
    if (o->tmp) unlink(o->tmp);
    sk_tmp_unlist(o->slot);
    o->slot = 0;
    o->anon = 0;
    sk_free(o->tmp);
    sk_free(o->path);
    o->tmp = NULL;
    o->path = NULL;
}
