/*
 * file.c - read-only file mapping, small-file reading, paths, UTF-8 validation.
 */
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

const char *sk_file_kind(unsigned mode) {
    mode_t m = (mode_t)mode;
    return S_ISDIR(m)    ? "a folder"
           : S_ISREG(m)  ? "a regular file"
           : S_ISLNK(m)  ? "a symbolic link"
           : S_ISFIFO(m) ? "a FIFO (named pipe)"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
                         : "not a regular file";
}

shrink_status sk_open_regular(const char *path, int *fd_out, uint64_t *size) {
    *fd_out = -1;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below) */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return sk_error(SHRINK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sk_error(SHRINK_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sk_error(SHRINK_ERR_IO, "%s: is %s, not a regular file (shrink reads its inputs "
                        "from regular files only)", path, sk_file_kind((unsigned)st.st_mode));
    }
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    *fd_out = fd;
    *size = (uint64_t)st.st_size;
    return SHRINK_OK;
}

shrink_status sk_error_not_found(const char *path, const char *what) {
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return sk_error(SHRINK_ERR_IO, "%s: no such %s", path, what);
        return sk_error(SHRINK_ERR_IO, "%s: cannot read the %s: %s", path, what, strerror(errno));
    }
    return sk_error(SHRINK_ERR_IO, "%s: is %s, not a %s", path, sk_file_kind((unsigned)st.st_mode),
                    what);
}

FILE *sk_fopen_regular(const char *path) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0) return NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return NULL;
    }
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) close(fd);
    return f;
}

shrink_status sk_map_file(const char *path, sk_map *out) {
    out->data = NULL;
    out->size = 0;
    int fd;
    uint64_t size;
    shrink_status rs = sk_open_regular(path, &fd, &size);
    if (rs) return rs;
    struct stat st;
    st.st_size = (off_t)size;
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return sk_error(SHRINK_ERR_IO, "%s: cannot mmap %lld bytes: %s", path,
                            (long long)st.st_size, strerror(e));
        }
        out->data = p;
        out->size = (size_t)st.st_size;
    }
    close(fd);
    return SHRINK_OK;
}

void sk_unmap(sk_map *m) {
    if (m && m->data) munmap((void *)m->data, m->size);
    if (m) {
        m->data = NULL;
        m->size = 0;
    }
}

shrink_status sk_read_file(const char *path, size_t max_bytes, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    int fd;
    uint64_t size;
    shrink_status rs = sk_open_regular(path, &fd, &size);
    if (rs) return rs;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        close(fd);
        return sk_error(SHRINK_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    struct stat st;
    st.st_size = (off_t)size;
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return sk_error(SHRINK_ERR_FORMAT, "%s: %lld bytes, more than the %zu allowed", path,
                        (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = sk_malloc(n + 1);
    if (!buf) {
        fclose(f);
        return sk_error(SHRINK_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
    }
    size_t got = n ? fread(buf, 1, n, f) : 0;
    int err = ferror(f);
    fclose(f);
    if (got != n || err) {
        sk_free(buf);
        return sk_error(SHRINK_ERR_IO, "%s: read %zu of %zu bytes", path, got, n);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return SHRINK_OK;
}

int sk_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int sk_dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *sk_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = sk_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

char *sk_path_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return sk_strdup(".");
    if (slash == path) return sk_strdup("/");
    return sk_strndup(path, (size_t)(slash - path));
}

int sk_utf8_valid(const char *str, size_t n, size_t *bad_at) {
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; }
        else goto bad;
        if (n - i < k + 1) goto bad;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) goto bad;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            goto bad;
        i += k + 1;
    }
    return 1;
bad:
    if (bad_at) *bad_at = i;
    return 0;
}

void sk_map_release(const void *p, uint64_t n) {
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0 || n == 0) return;
    uintptr_t a = (uintptr_t)p, e = a + (uintptr_t)n;
    a = (a + (uintptr_t)pg - 1) / (uintptr_t)pg * (uintptr_t)pg; /* only whole pages inside */
    e = e / (uintptr_t)pg * (uintptr_t)pg;
    if (e > a) (void)madvise((void *)a, e - a, MADV_DONTNEED);
}
