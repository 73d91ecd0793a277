/*
 * test_fuzz_regress.c - replays every input under fuzz/regress/<format>/ (inputs that once
 * crashed a parser, or hostile sizes, kept forever) and fuzz/corpus/<format>/ (the seeds)
 * through the fuzz targets, in the normal test suite: plain, and under ASan + UBSan with leak
 * detection by `make test`. The targets are included here with their entry point renamed, so
 * no libFuzzer is needed (fuzz/fuzz_main.c does the same for one target at a time).
 *
 * A parser bug shows up as a crash or a sanitizer report; the test itself checks that each
 * input returns within seconds, leaves no library allocation behind (the counted allocator)
 * and does not raise the peak RSS by 64 MB or more (hostile sizes must fail before they
 * allocate; regression inputs run before the seeds, so a jump names its input). Tests run
 * from the repository root.
 */
#include "test_util.h"

#include "core/core.h"

#include <dirent.h>
#include <stdint.h>
#include <sys/resource.h>
#include <time.h>

#define LLVMFuzzerTestOneInput fuzz_safetensors
#include "../fuzz/fuzz_safetensors.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_llama2c
#include "../fuzz/fuzz_llama2c.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_config
#include "../fuzz/fuzz_config.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_json
#include "../fuzz/fuzz_json.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_tokenizer_json
#include "../fuzz/fuzz_tokenizer_json.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_tokenizer_model
#include "../fuzz/fuzz_tokenizer_model.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_tokenizer_bin
#include "../fuzz/fuzz_tokenizer_bin.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_gguf
#include "../fuzz/fuzz_gguf.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_tokens
#include "../fuzz/fuzz_tokens.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_ckpt
#include "../fuzz/fuzz_ckpt.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_recipe
#include "../fuzz/fuzz_recipe.c"
#undef LLVMFuzzerTestOneInput

typedef int (*fuzz_fn)(const uint8_t *, size_t);

static const struct {
    const char *name; /* fuzz/<dir>/<name>/ */
    fuzz_fn     fn;
} targets[] = {
    {"safetensors", fuzz_safetensors},
    {"llama2c", fuzz_llama2c},
    {"config", fuzz_config},
    {"json", fuzz_json},
    {"tokenizer_json", fuzz_tokenizer_json},
    {"tokenizer_model", fuzz_tokenizer_model},
    {"tokenizer_bin", fuzz_tokenizer_bin},
    {"gguf", fuzz_gguf},
    {"tokens", fuzz_tokens},
    {"ckpt", fuzz_ckpt},
    {"recipe", fuzz_recipe},
};

/* Peak resident set of this process so far, in MB. */
static double peak_rss_mb(void) {
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Reads path into an exact-size malloc'd buffer (a read one past the end is an ASan report). */
static uint8_t *slurp_exact(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *p = NULL;
    long     l = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (l >= 0 && fseek(f, 0, SEEK_SET) == 0 && (p = malloc(l ? (size_t)l : 1)) &&
        fread(p, 1, (size_t)l, f) != (size_t)l) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *n = l >= 0 ? (size_t)l : 0;
    return p;
}

/* Replays every regular file of dir through fn; returns how many. */
static int replay_dir(const char *dir, const char *target, fuzz_fn fn) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int count = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char        path[2048];
        struct stat st;
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        size_t   n    = 0;
        uint8_t *data = slurp_exact(path, &n);
        CHECK(data != NULL, "%s: cannot read", path);
        if (!data) continue;
        size_t live = sk_alloc_bytes_live();
        double rss0 = peak_rss_mb(), t0 = now_s();
        fn(data, n);
        double dt = now_s() - t0, grew = peak_rss_mb() - rss0;
        CHECK(sk_alloc_bytes_live() == live, "%s (%s): %zu library bytes left allocated", path,
              target, sk_alloc_bytes_live() - live);
        /* generous: sanitizer builds on a shared machine; a hostile size must fail fast */
        CHECK(dt < 20.0, "%s (%s): took %.1f s", path, target, dt);
        /* the peak only grows: an input that allocates and touches much more than its size
         * (a hostile length or count believed) shows up here, in the input that did it */
        CHECK(grew < 64.0, "%s (%s): peak RSS grew by %.0f MB", path, target, grew);
        free(data);
        count++;
    }
    closedir(d);
    return count;
}

int main(void) {
    if (!test_is_dir("fuzz/corpus")) test_skip("test_fuzz_regress", "no fuzz/corpus (run from "
                                                "the repository root)");
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        char dir[256];
        snprintf(dir, sizeof dir, "fuzz/regress/%s", targets[i].name);
        int nr = replay_dir(dir, targets[i].name, targets[i].fn);
        snprintf(dir, sizeof dir, "fuzz/corpus/%s", targets[i].name);
        int nc = replay_dir(dir, targets[i].name, targets[i].fn);
        CHECK(nc > 0, "fuzz/corpus/%s: no seeds", targets[i].name);
        printf("  %-16s %3d regression inputs, %3d seeds\n", targets[i].name, nr, nc);
    }
    sk_clear_error();
    return test_summary("test_fuzz_regress");
}
