/*
 * out.c - atomic output files (out.h): a temporary beside the target, fsync, rename, fsync
 * of the folder; any failure removes the temporary.
 */
#include "out.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int sk_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

shrink_status sk_out_open(sk_out *o, const char *path, const char *const *inputs,
                          int n_inputs) {
    memset(o, 0, sizeof *o);
    o->fd = -1;
    if (!path || !*path) return sk_error(SHRINK_ERR_ARG, "sk_out_open: no output path");
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i] && sk_same_file(path, inputs[i]))
            return sk_error(SHRINK_ERR_ARG, "%s: is the input file %s; refusing to overwrite "
                            "an input", path, inputs[i]);
    if (sk_dir_exists(path))
        return sk_error(SHRINK_ERR_ARG, "%s: is a folder, expected a file path", path);
    char *dir = sk_path_dir(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t n = (dir ? strlen(dir) : 0) + strlen(base) + 32;
    o->path = sk_strdup(path);
    o->tmp = sk_malloc(n);
    if (!dir || !o->path || !o->tmp) {
        sk_free(dir);
        sk_free(o->tmp); /* not a file name yet: sk_out_abort must not unlink it */
        o->tmp = NULL;
        sk_out_abort(o);
        return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(o->tmp, n, "%s/.%s.tmp-XXXXXX", dir, base);
    sk_free(dir);
    o->fd = mkostemp(o->tmp, O_CLOEXEC);
    if (o->fd < 0) {
        int e = errno;
        sk_free(o->tmp); /* nothing was created */
        o->tmp = NULL;
        sk_out_abort(o);
        return sk_error(SHRINK_ERR_IO, "%s: cannot create a temporary file beside it: %s", path,
                        strerror(e));
    }
    /* mkostemp creates 0600; give the file the usual permissions (umask applies) */
    mode_t um = umask(0);
    umask(um);
    if (fchmod(o->fd, 0666 & ~um) != 0) { /* not fatal */
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
    if (o->fd < 0) return sk_error(SHRINK_ERR_ARG, "sk_out_finish: file not open");
    if (fsync(o->fd) != 0 && errno != EINVAL) {
        int e = errno;
        shrink_status st = sk_error(SHRINK_ERR_IO, "%s: fsync failed: %s", o->path, strerror(e));
        sk_out_abort(o);
        return st;
    }
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
    if (!o->tmp) return sk_error(SHRINK_ERR_ARG, "sk_out_rename: nothing to rename");
    if (rename(o->tmp, o->path) != 0) {
        int e = errno;
        shrink_status st = sk_error(SHRINK_ERR_IO, "%s: rename from %s failed: %s", o->path,
                                    o->tmp, strerror(e));
        sk_out_abort(o);
        return st;
    }
    sync_dir_of(o->path);
    sk_free(o->tmp);
    o->tmp = NULL;
    sk_free(o->path);
    o->path = NULL;
    return SHRINK_OK;
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
    sk_free(o->tmp);
    sk_free(o->path);
    o->tmp = NULL;
    o->path = NULL;
}
