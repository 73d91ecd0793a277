/*
 * test_sha256.c - SHA-256 (src/core/sha256.c) against two independent references: the
 * example vectors of FIPS 180-4 (NIST's "SHA256.pdf" examples and the one-million-'a' vector
 * of FIPS 180-2 appendix B.3), and the system's sha256sum on files written here (empty,
 * 55/56/64 bytes around the padding edges, and 1.5 MiB); one message fed in odd-sized pieces
 * must hash as it does in one piece.
 */
#include "core/sha256.h"
#include "test_util.h"

#include <unistd.h>

static void hex_of(const void *p, size_t n, char hex[65]) {
    uint8_t d[32];
    shrink_sha256(p, n, d);
    sk_sha256_hex(d, hex);
}

static void test_vectors(void) {
    static const struct { const char *msg, *hex; } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
         "lmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    char hex[65];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        hex_of(v[i].msg, strlen(v[i].msg), hex);
        CHECK(!strcmp(hex, v[i].hex), "sha256(\"%.20s...\") = %s, want %s", v[i].msg, hex, v[i].hex);
    }
    /* one million 'a', fed in pieces of 1..997 bytes */
    static char a[1000];
    memset(a, 'a', sizeof a);
    sk_sha256 s;
    sk_sha256_init(&s);
    size_t left = 1000000, k = 1;
    while (left) {
        size_t n = k % 997 + 1 < left ? k % 997 + 1 : left;
        sk_sha256_update(&s, a, n);
        left -= n;
        k = k * 31 + 7;
    }
    uint8_t d[32];
    sk_sha256_final(&s, d);
    sk_sha256_hex(d, hex);
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
          "sha256(10^6 x 'a') = %s", hex);
}

/* The file's hash by sha256sum, or "" when sha256sum is not there. */
static void sha256sum_of(const char *path, char hex[65]) {
    char cmd[512];
    hex[0] = 0;
    snprintf(cmd, sizeof cmd, "sha256sum '%s' 2>/dev/null", path);
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (fscanf(p, "%64s", hex) != 1) hex[0] = 0;
    pclose(p);
}

static void test_files(void) {
    char dir[] = "/tmp/test_sha256.XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp failed");
        return;
    }
    static const size_t sizes[] = {0, 1, 55, 56, 63, 64, 65, 1000, (3u << 20) / 2 + 17};
    int compared = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/f%zu", dir, i);
        FILE *f = fopen(path, "wb");
        CHECK(f != NULL, "cannot write %s", path);
        if (!f) continue;
        test_rng_seed(100 + i);
        uint8_t *buf = malloc(sizes[i] + 1);
        for (size_t k = 0; k < sizes[i]; k++) buf[k] = (uint8_t)test_rng_u32();
        fwrite(buf, 1, sizes[i], f);
        fclose(f);
        char got[65], mem[65], ref[65];
        uint64_t bytes = 99;
        shrink_status st = shrink_sha256_file(path, got, &bytes);
        CHECK(st == SHRINK_OK && bytes == sizes[i], "%s: %s (bytes %llu)", path,
              shrink_last_error(), (unsigned long long)bytes);
        hex_of(buf, sizes[i], mem);
        CHECK(!strcmp(got, mem), "%zu bytes: file hash %s != in-memory hash %s", sizes[i], got, mem);
        sha256sum_of(path, ref);
        if (ref[0]) {
            compared++;
            CHECK(!strcmp(got, ref), "%zu bytes: %s, sha256sum says %s", sizes[i], got, ref);
        }
        free(buf);
        unlink(path);
    }
    if (!compared) printf("test_sha256: sha256sum not found; compared with FIPS vectors only\n");
    /* not a regular file: an error naming it */
    char hex[65];
    CHECK(shrink_sha256_file(dir, hex, NULL) != SHRINK_OK && strstr(shrink_last_error(), dir),
          "hashing a folder: %s", shrink_last_error());
    CHECK(shrink_sha256_file("/nonexistent/x", hex, NULL) != SHRINK_OK, "missing file hashed");
    rmdir(dir);
}

int main(void) {
    test_vectors();
    test_files();
    return test_summary("test_sha256");
}
