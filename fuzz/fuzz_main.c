/*
 * fuzz_main.c - replays inputs through a fuzz target without libFuzzer (as stb's
 * tests/fuzz_main.c): link it with one fuzz/fuzz_<format>.c and the library, any compiler,
 * any sanitizer, then
 *
 *     replay_<format> FILE|DIR...
 *
 * runs LLVMFuzzerTestOneInput once per file (a directory: every regular file in it, sorted
 * order not guaranteed), each from its own malloc'd buffer of exactly the file's size so
 * ASan sees a read past the end. Prints one line per input; exits 1 if a file can't be read.
 * A crash is the sanitizer's report and exit status. `make fuzz` builds build-fuzz/replay_*;
 * tests/test_fuzz_regress.c replays fuzz/regress/ and fuzz/corpus/ in the normal test suite.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return 1;
    }
    size_t   cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (size_t r; buf && (r = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += r;
        if (n == cap) {
            uint8_t *p = realloc(buf, cap *= 2);
            if (!p) free(buf);
            buf = p;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (!buf || err) {
        free(buf);
        fprintf(stderr, "replay: cannot read %s\n", path);
        return 1;
    }
    /* an exact-size copy: one byte past the input is outside the allocation */
    uint8_t *in = malloc(n ? n : 1);
    if (!in) {
        free(buf);
        return 1;
    }
    memcpy(in, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(in, n);
    free(in);
    printf("replay: %s (%zu bytes) ok\n", path, n);
    return 0;
}

int main(int argc, char **argv) {
    int bad = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            if (!d) {
                fprintf(stderr, "replay: cannot open %s\n", argv[i]);
                bad = 1;
                continue;
            }
            for (struct dirent *e; (e = readdir(d));) {
                char p[4096];
                if (e->d_name[0] == '.') continue;
                snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
                if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) bad |= replay_file(p);
            }
            closedir(d);
        } else {
            bad |= replay_file(argv[i]);
        }
    }
    return bad;
}
