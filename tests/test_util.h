/*
 * test_util.h - the tiny test harness every tests/test_<module>.c uses.
 *
 * CHECK(cond, fmt, ...) records a failure with file:line and a message and goes on;
 * a test file ends with `return test_summary("name");`, which prints "name: N passed, N failed"
 * and returns non-zero on any failure. A test that needs ../shared and finds none calls
 * test_skip(), which prints why and exits 77 (tests/run_all.sh counts it as skipped).
 *
 * Paths: the shared folder is $SHRINK_SHARED if set, else ../shared (tests run from the
 * repository root); models are in $SHRINK_MODELS, else <shared>/models. test_asset() also falls
 * back to the copies in tests/fixtures/ and models/stories260K/ for a clone without ../shared.
 *
 * The rule for a fixture case whose file is missing (test_need_asset / test_need_shared /
 * test_need_model, all through test_missing): when the shared folder is present, the file
 * should be there, so it is a FAILURE; only when the shared folder is absent is it a counted
 * skip. test_summary() then exits 77 if something was skipped and nothing failed, so
 * tests/run_all.sh reports the program as skipped rather than passed.
 * (To see the no-shared behaviour: SHRINK_SHARED=/nonexistent build/tests/test_X.)
 */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shrink.h"

static int test_passed, test_failed, test_skipped;

/* Deterministic test data: one xorshift64 generator for every test (each test program has its
 * own state; test_rng_seed() picks another stream). test_rng_u() is uniform in (0, 1), never 0
 * or 1, so log() of it is finite; test_rng_u32() is a uniform 32-bit integer; test_rng_normal() is a standard normal (Box-Muller). */
static uint64_t test_rng_state = 0x9E3779B97F4A7C15ull;
static inline void test_rng_seed(uint64_t s) { test_rng_state = s ? s : 0x9E3779B97F4A7C15ull; }
static inline double test_rng_u(void) {
    test_rng_state ^= test_rng_state << 13;
    test_rng_state ^= test_rng_state >> 7;
    test_rng_state ^= test_rng_state << 17;
    return ((double)(test_rng_state >> 11) + 0.5) / 9007199254740992.0;
}
static inline uint32_t test_rng_u32(void) { return (uint32_t)(test_rng_u() * 4294967296.0); }
static inline float test_rng_normal(void) {
    return (float)(sqrt(-2.0 * log(test_rng_u())) * cos(6.283185307179586 * test_rng_u()));
}

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (cond) {                                                                        \
            test_passed++;                                                                 \
        } else {                                                                           \
            test_failed++;                                                                 \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                           \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
        }                                                                                  \
    } while (0)

static inline int test_summary(const char *name) {
    if (test_skipped) {
        printf("%s: %d passed, %d failed, %d skipped (no shared folder)\n", name, test_passed,
               test_failed, test_skipped);
        return test_failed ? 1 : 77;
    }
    printf("%s: %d passed, %d failed\n", name, test_passed, test_failed);
    return test_failed ? 1 : 0;
}

static inline void test_skip(const char *name, const char *why) {
    printf("%s: SKIPPED: %s\n", name, why);
    exit(77);
}

static inline int test_is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The shared folder: $SHRINK_SHARED if set and not empty, else ../shared. */
static inline const char *test_shared_root(void) {
    const char *root = getenv("SHRINK_SHARED");
    return root && *root ? root : "../shared";
}

/* 1 if the shared folder exists (then every fixture a test names must be there). */
static inline int test_have_shared(void) { return test_is_dir(test_shared_root()); }

/* <shared>/<rel> into buf, or NULL if there is no shared folder (the file may not exist). */
static inline const char *test_shared(char *buf, size_t cap, const char *rel) {
    const char *root = test_shared_root();
    if (!test_is_dir(root)) return NULL;
    snprintf(buf, cap, "%s/%s", root, rel);
    return buf;
}

/* <models>/<rel> into buf, or NULL if there is no models folder. */
static inline const char *test_model(char *buf, size_t cap, const char *rel) {
    const char *root = getenv("SHRINK_MODELS");
    char tmp[1024];
    if (!root || !*root) {
        if (!test_shared(tmp, sizeof tmp, "models")) return NULL;
        root = tmp;
    }
    if (!test_is_dir(root)) return NULL;
    snprintf(buf, cap, "%s/%s", root, rel);
    return buf;
}

/* The asset REL (a path relative to the shared folder, e.g. "fixtures/stories260K/ppl.json")
 * into buf: the first that exists of <shared>/REL, tests/fixtures/REL (a copy of the small
 * assets, same layout) and REL under the repository root (the embedded model
 * models/stories260K/). NULL if none exists. Tests run from the repository root. */
static inline const char *test_asset(char *buf, size_t cap, const char *rel) {
    const char *roots[] = {test_shared_root(), "tests/fixtures", "."};
    struct stat st;
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        snprintf(buf, cap, "%s/%s", roots[i], rel);
        if (stat(buf, &st) == 0) return buf;
    }
    return NULL;
}

/* A file a fixture case needs is missing: a failure when the shared folder is present, a
 * counted skip when it is absent (see the top of this file). WHAT names the file. */
static inline void test_missing(const char *what) {
    if (test_have_shared()) {
        test_failed++;
        fprintf(stderr, "FAIL: %s not found, but the shared folder %s is present\n", what,
                test_shared_root());
    } else {
        test_skipped++;
        printf("  skip: %s not found (no shared folder %s)\n", what, test_shared_root());
    }
}

/* test_asset(), applying test_missing() when REL is not found. */
static inline const char *test_need_asset(char *buf, size_t cap, const char *rel) {
    if (test_asset(buf, cap, rel)) return buf;
    test_missing(rel);
    return NULL;
}

/* <shared>/REL if it exists; else test_missing() and NULL. */
static inline const char *test_need_shared(char *buf, size_t cap, const char *rel) {
    struct stat st;
    if (test_shared(buf, cap, rel) && stat(buf, &st) == 0) return buf;
    test_missing(rel);
    return NULL;
}

/* <models>/REL if it exists, else models/REL of the repository (the embedded stories260K);
 * else test_missing() and NULL. */
static inline const char *test_need_model(char *buf, size_t cap, const char *rel) {
    struct stat st;
    if (test_model(buf, cap, rel) && stat(buf, &st) == 0) return buf;
    snprintf(buf, cap, "models/%s", rel);
    if (stat(buf, &st) == 0) return buf;
    test_missing(rel);
    return NULL;
}

/* Training tests (shrink_train_params.log = test_copy_ckpt, .user = a test_copy_at): copies the
 * checkpoint `from` to `to` when the step `step` has saved one (copied = 1), to resume from it. */
typedef struct test_copy_at {
    const char *from, *to;
    int64_t     step;
    int         copied;
} test_copy_at;

static inline void test_copy_ckpt(void *user, const shrink_train_log *l) {
    test_copy_at *c = (test_copy_at *)user;
    if (!c || !l->saved || l->step != c->step) return;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", c->from, c->to);
    c->copied = system(cmd) == 0;
}

/* Files a and b hold the same bytes. */
static inline int test_same_file(const char *a, const char *b) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

/* An IEEE half at p (little-endian) decoded with ldexp: independent of the library's
 * converters (the sparse types' layout tests). */
static inline double test_f16_decode(const uint8_t *p) {
    unsigned h = (unsigned)p[0] | (unsigned)p[1] << 8;
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
    return h & 0x8000 ? -v : v;
}

/* The logits of a fixed 6-token input (vocabulary V) from the model at path: positions 0..4 by
 * prompt processing (T > 1) into out[0 .. 5V), position 5 by decode (T = 1) into out[5V ..).
 * 1 on success. */
static inline int test_logits6(const char *path, float *out, int32_t V) {
    shrink_model *m = NULL;
    shrink_context *ctx = NULL;
    shrink_load_params lp = shrink_load_params_default();
    shrink_status st = shrink_model_load(&m, path, &lp);
    if (!st) st = shrink_context_create(&ctx, m, 16, 16);
    int32_t ids[6] = {1, 50, 120, 7, 300, 42};
    if (!st) st = shrink_context_eval(ctx, ids, 5, 0, out, 5);
    if (!st) st = shrink_context_eval(ctx, ids + 5, 1, 5, out + 5 * (size_t)V, 1);
    shrink_context_free(ctx);
    shrink_model_free(m);
    return st == SHRINK_OK;
}

/* max |logit_got - logit_ref| / max |logit_ref| over test_logits6's 6 positions of two models
 * with vocabulary V, or -1 if either does not load or run. */
static inline double test_logits6_rel(const char *ref, const char *got, int32_t V) {
    float *a = (float *)malloc(6 * (size_t)V * sizeof *a), *b = (float *)malloc(6 * (size_t)V * sizeof *b);
    double worst = -1;
    if (a && b && test_logits6(ref, a, V) && test_logits6(got, b, V)) {
        double amax = 0;
        worst = 0;
        for (int64_t k = 0; k < 6 * (int64_t)V; k++) amax = fmax(amax, fabs(a[k]));
        for (int64_t k = 0; k < 6 * (int64_t)V; k++) worst = fmax(worst, fabs((double)b[k] - a[k]) / amax);
    }
    free(a);
    free(b);
    return worst;
}

#endif
