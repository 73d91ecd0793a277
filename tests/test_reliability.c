/*
 * test_reliability.c - the library side of docs/reliability.md (self-contained, no assets):
 *
 *   - linear-time parsing: a GGUF file with 200,000 distinct keys parses in well under the
 *     limit (the pairwise duplicate-key check took minutes), and a key given twice, at the two
 *     ends of that list, is still refused;
 *   - temporaries: sk_out_open lists its temporary, shrink_remove_temporaries() (what the
 *     CLI's signal handler calls) removes it and leaves the target untouched; a folder listed
 *     as created is removed only while empty; the stale sweep removes the temporaries of a
 *     process that no longer runs and keeps those of running ones and unrelated files;
 *   - unnamed temporaries (O_TMPFILE + linkat): nothing is visible in the folder while a file
 *     is written, the committed file holds the bytes (new path, and over an existing file),
 *     an aborted one leaves the old file as it was, and after a SIGKILL mid-write the folder
 *     holds nothing new; SHRINK_NO_TMPFILE=1 (the named temporaries, tested above) writes
 *     the same bytes;
 *   - outputs are regular files: sk_out_open refuses a FIFO and a symbolic link;
 *   - NaN and infinities: every dtype's from_f32 (the quantizers) takes rows holding NaN and
 *     Inf without undefined behaviour (the UBSan run of `make test` fails on a float-to-int
 *     cast of NaN), and the blocks without them come out as they do from a clean row.
 *
 * The CLI side (inputs never clobbered, signals, bounded reads) is tests/reliability/.
 */
#include "test_util.h"

#include "core/out.h"
#include "formats/formats.h"
#include "kernels/kernels.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct buf {
    uint8_t *p;
    size_t   n, cap;
} buf;

static void put(buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void put_u32(buf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}
static void put_u64(buf *b, uint64_t v) {
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

/* A GGUF v3 file with no tensors and n u32 keys "key.NNNNNNN"; the last key repeats the
 * first when dup. */
static buf many_keys(int n, int dup) {
    buf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, 0);
    put_u64(&b, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        char k[32];
        int len = snprintf(k, sizeof k, "key.%07d", dup && i == n - 1 ? 0 : i);
        put_u64(&b, (uint64_t)len);
        put(&b, k, (size_t)len);
        put_u32(&b, 4); /* GGUF_TYPE_UINT32 */
        put_u32(&b, (uint32_t)i);
    }
    return b;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void test_gguf_keys(void) {
    enum { N = 200000 };
    buf ok = many_keys(N, 0), twice = many_keys(N, 1);
    sk_gguf *g = NULL;
    double t0 = now();
    shrink_status st = sk_gguf_parse(ok.p, ok.n, "keys.gguf", &g);
    double sec = now() - t0;
    CHECK(st == SHRINK_OK, "200000 distinct keys: %s", shrink_last_error());
    CHECK(g && g->n_kv == N, "n_kv %lld", g ? (long long)g->n_kv : -1LL);
    /* linear: a few ms here; the pairwise check needed about 2e10 comparisons */
    CHECK(sec < 2.0, "200000 keys parsed in %.2f s (must be linear in the keys)", sec);
    sk_gguf_free(g);
    g = NULL;
    st = sk_gguf_parse(twice.p, twice.n, "keys.gguf", &g);
    CHECK(st == SHRINK_ERR_FORMAT && strstr(shrink_last_error(), "key.0000000") &&
              strstr(shrink_last_error(), "twice"),
          "a repeated key: status %d, '%s'", st, shrink_last_error());
    sk_gguf_free(g);
    free(ok.p);
    free(twice.p);
}

/* Number of entries of dir whose name starts with prefix. */
static int count_prefix(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
    if (d) closedir(d);
    return n;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fputs(text, f);
    fclose(f);
}

static int removed_count;
static void on_removed(void *user, const char *path) {
    (void)user;
    (void)path;
    removed_count++;
}

static void test_temporaries(const char *dir) {
    char target[512], sub[512], path[600];
    setenv("SHRINK_NO_TMPFILE", "1", 1); /* the named temporaries */
    snprintf(target, sizeof target, "%s/model.gguf", dir);
    write_file(target, "old");
    sk_out o;
    CHECK(sk_out_open(&o, target, NULL, 0) == SHRINK_OK, "open: %s", shrink_last_error());
    CHECK(sk_out_write(&o, "new bytes", 9) == SHRINK_OK, "write");
    CHECK(count_prefix(dir, ".model.gguf.shrink-") == 1, "the temporary carries the pid");
    /* what the signal handler does */
    shrink_remove_temporaries();
    CHECK(count_prefix(dir, ".model.gguf") == 0, "the temporary is gone after "
          "shrink_remove_temporaries");
    char *text = NULL;
    size_t len = 0;
    CHECK(sk_read_file(target, 100, &text, &len) == SHRINK_OK && len == 3 && !memcmp(text, "old", 3),
          "the target is untouched");
    sk_free(text);
    sk_out_abort(&o);

    /* a created folder is removed while empty, kept once it holds a file */
    snprintf(sub, sizeof sub, "%s/out", dir);
    CHECK(mkdir(sub, 0777) == 0, "mkdir");
    int slot = sk_tmp_list(sub, 1);
    CHECK(slot > 0, "listed");
    shrink_remove_temporaries();
    CHECK(!test_is_dir(sub), "an empty created folder is removed");
    CHECK(mkdir(sub, 0777) == 0, "mkdir");
    snprintf(path, sizeof path, "%s/checkpoint.bin", sub);
    write_file(path, "x");
    shrink_remove_temporaries();
    CHECK(test_is_dir(sub), "a folder holding a file stays");
    sk_tmp_unlist(slot);

    /* stale temporaries: a dead process's go, a running one's and other files stay */
    pid_t child = fork();
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0);
    snprintf(path, sizeof path, "%s/.model.gguf.shrink-%ld.tmp-AbC123", dir, (long)child);
    write_file(path, "stale");
    snprintf(path, sizeof path, "%s/.model.shrink-%ld.tmp-XyZ789", dir, (long)child);
    CHECK(mkdir(path, 0777) == 0, "mkdir stale folder");
    snprintf(path, sizeof path, "%s/.model.shrink-%ld.tmp-XyZ789/model.safetensors", dir,
             (long)child);
    write_file(path, "stale");
    snprintf(path, sizeof path, "%s/.model.gguf.shrink-%ld.tmp-Live01", dir, (long)getppid());
    write_file(path, "live");
    snprintf(path, sizeof path, "%s/.model.gguf.tmp-Other1", dir);
    write_file(path, "not ours");
    /* a dead process's temporary modified just now is kept (another pid namespace) */
    snprintf(path, sizeof path, "%s/.fresh.gguf.shrink-%ld.tmp-Fresh1", dir, (long)child);
    write_file(path, "fresh");
    /* the others were last modified two minutes ago */
    static const char *const old[] = {".model.gguf.shrink-%ld.tmp-AbC123",
                                      ".model.shrink-%ld.tmp-XyZ789"};
    for (int k = 0; k < 2; k++) {
        char name[128];
        snprintf(name, sizeof name, old[k], (long)child);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        struct timespec ts[2];
        clock_gettime(CLOCK_REALTIME, &ts[0]);
        ts[0].tv_sec -= 120;
        ts[1] = ts[0];
        CHECK(utimensat(AT_FDCWD, path, ts, 0) == 0, "backdate %s", path);
    }
    removed_count = 0;
    int n = shrink_remove_stale_temporaries(dir, on_removed, NULL);
    CHECK(n == 2 && removed_count == 2, "stale: %d removed (2 expected)", n);
    CHECK(count_prefix(dir, ".model.gguf.shrink-") == 1, "the live process's temporary stays");
    CHECK(count_prefix(dir, ".model.shrink-") == 0, "the stale folder is gone");
    CHECK(count_prefix(dir, ".model.gguf.tmp-") == 1, "an unrelated file stays");
    CHECK(count_prefix(dir, ".fresh.gguf.shrink-") == 1, "a fresh temporary stays");
    unsetenv("SHRINK_NO_TMPFILE");
}

/* Entries of dir (without "." and ".."). */
static int count_entries(const char *dir) {
    return count_prefix(dir, "") - 2;
}

/* Writes `text` to path through sk_out (unnamed temporaries unless no_tmpfile); 0 on success.
 * *visible: entries of dir seen while the file was open. */
static int out_write(const char *dir, const char *path, const char *text, int no_tmpfile,
                     int *visible) {
    if (no_tmpfile) setenv("SHRINK_NO_TMPFILE", "1", 1);
    else unsetenv("SHRINK_NO_TMPFILE");
    sk_out o;
    int rc = sk_out_open(&o, path, NULL, 0) || sk_out_write(&o, text, strlen(text));
    if (visible) *visible = count_entries(dir);
    if (!rc) rc = sk_out_commit(&o) != SHRINK_OK;
    unsetenv("SHRINK_NO_TMPFILE");
    return rc;
}

/* 1 if the file system of dir takes O_TMPFILE. */
static int has_tmpfile(const char *dir) {
    int fd = open(dir, O_TMPFILE | O_RDWR, 0600);
    if (fd < 0) return 0;
    close(fd);
    return 1;
}

static void test_tmpfile(const char *root) {
    char dir[512], a[600], b[600];
    snprintf(dir, sizeof dir, "%s/tmpfile", root);
    CHECK(mkdir(dir, 0777) == 0, "mkdir %s", dir);
    if (!has_tmpfile(dir)) {
        /* (overlayfs before Linux 6.6, some network file systems): shrink falls back to the
         * named temporaries, tested above; try a tmpfs */
        char shm[] = "/dev/shm/shrink-reliab.XXXXXX";
        if (!mkdtemp(shm) || !has_tmpfile(shm)) {
            printf("  note: no O_TMPFILE under %s or /dev/shm: unnamed temporaries not tested\n",
                   root);
            return;
        }
        snprintf(dir, sizeof dir, "%s", shm);
    }
    snprintf(a, sizeof a, "%s/a.bin", dir);
    snprintf(b, sizeof b, "%s/b.bin", dir);
    /* new path: nothing visible while written, then exactly the bytes */
    int vis = -1;
    CHECK(out_write(dir, a, "first version", 0, &vis) == 0, "O_TMPFILE write: %s",
          shrink_last_error());
    CHECK(vis == 0, "%d entries visible while an unnamed temporary was written", vis);
    char *text = NULL;
    size_t len = 0;
    CHECK(sk_read_file(a, 100, &text, &len) == SHRINK_OK && len == 13 &&
              !memcmp(text, "first version", 13), "the linked file holds the bytes");
    sk_free(text);
    /* over an existing file: replaced, no temporary left */
    CHECK(out_write(dir, a, "second", 0, &vis) == 0 && vis == 1, "O_TMPFILE over a file: %s, "
          "%d visible", shrink_last_error(), vis);
    CHECK(sk_read_file(a, 100, &text, &len) == SHRINK_OK && len == 6 && !memcmp(text, "second", 6),
          "the replaced file holds the new bytes");
    sk_free(text);
    /* the named path writes the same bytes */
    CHECK(out_write(dir, b, "second", 1, NULL) == 0, "named write: %s", shrink_last_error());
    CHECK(sk_read_file(b, 100, &text, &len) == SHRINK_OK && len == 6 && !memcmp(text, "second", 6),
          "SHRINK_NO_TMPFILE=1 writes the same bytes");
    sk_free(text);
    CHECK(count_entries(dir) == 2, "%d entries after the writes (a.bin and b.bin)",
          count_entries(dir));
    /* aborted: the old file untouched, nothing left */
    sk_out o;
    CHECK(sk_out_open(&o, a, NULL, 0) == SHRINK_OK && sk_out_write(&o, "junk", 4) == SHRINK_OK,
          "open: %s", shrink_last_error());
    CHECK(o.anon == 1, "the file system here (%s) takes O_TMPFILE", dir);
    sk_out_finish(&o);
    sk_out_abort(&o);
    CHECK(sk_read_file(a, 100, &text, &len) == SHRINK_OK && len == 6, "abort kept the old file");
    sk_free(text);
    CHECK(count_entries(dir) == 2, "abort left %d entries", count_entries(dir));
    /* SIGKILL in the middle of a write: nothing is left */
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    pid_t child = fork();
    if (child == 0) {
        sk_out c;
        char c1 = 'x';
        if (sk_out_open(&c, a, NULL, 0) || sk_out_write(&c, "partial", 7)) _exit(3);
        if (write(p[1], &c1, 1) != 1) _exit(4);
        for (;;) pause();
    }
    char got = 0;
    CHECK(read(p[0], &got, 1) == 1 && got == 'x', "the child started writing");
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    close(p[0]);
    close(p[1]);
    CHECK(count_entries(dir) == 2, "after SIGKILL mid-write %d entries (2: nothing new)",
          count_entries(dir));
    CHECK(sk_read_file(a, 100, &text, &len) == SHRINK_OK && len == 6, "the target survived");
    sk_free(text);
    if (strncmp(dir, "/dev/shm/", 9) == 0) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
}

static void test_output_kinds(const char *dir) {
    char fifo[512], link[512], target[512];
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    snprintf(link, sizeof link, "%s/link", dir);
    snprintf(target, sizeof target, "%s/target", dir);
    write_file(target, "keep");
    CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    CHECK(symlink(target, link) == 0, "symlink");
    sk_out o;
    shrink_status st = sk_out_open(&o, fifo, NULL, 0);
    CHECK(st == SHRINK_ERR_ARG && strstr(shrink_last_error(), "FIFO"), "FIFO output: %d '%s'",
          st, shrink_last_error());
    st = sk_out_open(&o, link, NULL, 0);
    CHECK(st == SHRINK_ERR_ARG && strstr(shrink_last_error(), "symbolic link"),
          "link output: %d '%s'", st, shrink_last_error());
    struct stat sb;
    CHECK(lstat(fifo, &sb) == 0 && S_ISFIFO(sb.st_mode), "the FIFO is still there");
    CHECK(lstat(link, &sb) == 0 && S_ISLNK(sb.st_mode), "the link is still there");
    /* inputs: a FIFO is refused at once (no wait for a writer), naming what it is */
    sk_map m;
    st = sk_map_file(fifo, &m);
    CHECK(st == SHRINK_ERR_IO && strstr(shrink_last_error(), "FIFO"), "FIFO input: '%s'",
          shrink_last_error());
    char *text;
    size_t len;
    st = sk_read_file("/dev/zero", 1 << 20, &text, &len);
    CHECK(st == SHRINK_ERR_IO && strstr(shrink_last_error(), "character device"),
          "/dev/zero input: '%s'", shrink_last_error());
}

static void test_quantizers_nan(void) {
    enum { N = 1024 };
    static float clean[N], dirty[N];
    static uint8_t a[N * 8], b[N * 8];
    for (int i = 0; i < N; i++) clean[i] = dirty[i] = sinf(0.37f * (float)i) * (1.0f + (float)(i % 7));
    /* NaN and infinities in the first 256 elements only */
    dirty[3] = NAN;
    dirty[40] = INFINITY;
    dirty[200] = -INFINITY;
    int tested = 0;
    for (int t = 0; t < SHRINK_DTYPE_COUNT; t++) {
        const sk_dtype_traits *d = sk_dtype((shrink_dtype)t);
        if (!d || !d->from_f32 || N % (int)d->block) continue;
        uint64_t bytes = sk_dtype_row_bytes((shrink_dtype)t, N);
        if (bytes > sizeof a) continue;
        memset(a, 0, sizeof a);
        memset(b, 0, sizeof b);
        d->from_f32(clean, a, N);
        d->from_f32(dirty, b, N);   /* must not be undefined behaviour */
        tested++;
        /* per-block types: the blocks past element 256 are independent of the dirty ones */
        if (d->row_head == 0 && d->block <= 256) {
            uint64_t off = sk_dtype_row_bytes((shrink_dtype)t, 256);
            CHECK(!memcmp(a + off, b + off, (size_t)(bytes - off)),
                  "%s: clean blocks changed by NaN elsewhere in the row", d->name);
        }
    }
    CHECK(tested >= 20, "only %d dtypes quantized", tested);
}

int main(void) {
    char dir[] = "/tmp/shrink-reliab.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_gguf_keys();
    test_temporaries(dir);
    test_tmpfile(dir);
    test_output_kinds(dir);
    test_quantizers_nan();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary("test_reliability");
}
