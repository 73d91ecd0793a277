/*
 * test_util.h - the tiny test harness every tests/test_<module>.c uses.
 *
 * CHECK(cond, fmt, ...) records a failure with file:line and a message and goes on;
 * a test file ends with `return test_summary("name");`, which prints "name: N passed, N failed"
 * and returns non-zero on any failure. A test that needs ../shared and finds none calls
 * test_skip(), which prints why and exits 77 (tests/run_all.sh counts it as skipped).
 *
 * Paths: shared assets are found in $SHRINK_SHARED, else ../shared (tests run from the
 * repository root); models in $SHRINK_MODELS, else <shared>/models. test_asset() also falls
 * back to the copies in tests/fixtures/ and models/stories260K/ for a clone without ../shared.
 */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int test_passed, test_failed;

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

/* <shared>/<rel> into buf, or NULL if there is no shared folder. */
static inline const char *test_shared(char *buf, size_t cap, const char *rel) {
    const char *root = getenv("SHRINK_SHARED");
    if (!root || !*root) root = "../shared";
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
 * into buf: the first that exists of $SHRINK_SHARED/REL, ../shared/REL, tests/fixtures/REL (a
 * copy of the small assets, same layout) and REL under the repository root (the embedded model
 * models/stories260K/). NULL if none exists. Tests run from the repository root. */
static inline const char *test_asset(char *buf, size_t cap, const char *rel) {
    const char *env     = getenv("SHRINK_SHARED");
    const char *roots[] = {env && *env ? env : NULL, "../shared", "tests/fixtures", "."};
    struct stat st;
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        if (!roots[i]) continue;
        snprintf(buf, cap, "%s/%s", roots[i], rel);
        if (stat(buf, &st) == 0) return buf;
    }
    return NULL;
}

#endif
