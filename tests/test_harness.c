/*
 * test_harness.c - the test harness's own rules (tests/test_util.h), so that a test cannot pass
 * by skipping:
 *
 *   - a missing fixture is a FAILURE when the shared folder ($SHRINK_SHARED, else ../shared) is
 *     present, and a counted skip only when it is absent;
 *   - test_summary() exits 77 (skipped) when something was skipped and nothing failed, 1 on a
 *     failure, 0 only when everything ran;
 *   - the test sources look fixtures up only through the test_need_* helpers (or gate the whole
 *     program with test_skip()), and print no "skipped" of their own: tests/test_skip_rule.sh.
 *
 * The reference is the rule as written above, checked against an empty temporary folder (a
 * shared folder that is present but lacks every file) and a path that does not exist.
 */
#include "test_util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* stderr to /dev/null while the wanted failure messages are printed (so that a log searched
 * for "FAIL" shows only real ones); quiet(1) silences, quiet(0) restores */
static void quiet(int on) {
    static int saved = -1;
    fflush(stderr);
    if (on && saved < 0) {
        int null = open("/dev/null", O_WRONLY);
        saved    = dup(2);
        if (null >= 0 && saved >= 0) dup2(null, 2);
        if (null >= 0) close(null);
    } else if (!on && saved >= 0) {
        dup2(saved, 2);
        close(saved);
        saved = -1;
    }
}

int main(void) {
    char dir[] = "/tmp/shrink_harness_XXXXXX", buf[1024];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    if (strstr(dir, "XXXXXX")) return test_summary("test_harness");
    const char *old = getenv("SHRINK_SHARED");
    char *saved = old ? strdup(old) : NULL;

    /* a present shared folder without the file: a failure, no skip */
    setenv("SHRINK_SHARED", dir, 1);
    quiet(1); /* the three failure messages below are wanted */
    int f0 = test_failed, s0 = test_skipped;
    const char *got = test_need_asset(buf, sizeof buf, "fixtures/no/such/file.safetensors");
    int f1 = test_failed, s1 = test_skipped;
    const char *got2 = test_need_shared(buf, sizeof buf, "fixtures/no/such/file");
    char mb[2048]; /* the models root alone may take 1023 bytes */
    const char *got3 = test_need_model(mb, sizeof mb, "no-such-model");
    int f2 = test_failed, s2 = test_skipped;
    quiet(0);
    test_failed = f0; /* the three failures above were wanted */
    CHECK(got == NULL && got2 == NULL && got3 == NULL, "a missing file was returned");
    CHECK(f1 == f0 + 1 && s1 == s0, "with a shared folder present, a missing fixture must fail");
    CHECK(f2 == f0 + 3 && s2 == s0, "test_need_shared/test_need_model: %d failures, want 3",
          f2 - f0);
    CHECK(test_have_shared(), "%s is a folder: the shared folder is present", dir);

    /* a file that is there is found, without failure or skip */
    snprintf(buf, sizeof buf, "%s/present.txt", dir);
    FILE *f = fopen(buf, "w");
    CHECK(f != NULL, "create %s", buf);
    if (f) fclose(f);
    char b2[1024];
    f0 = test_failed;
    CHECK(test_need_shared(b2, sizeof b2, "present.txt") && !strcmp(b2, buf) &&
              test_need_asset(b2, sizeof b2, "present.txt") && test_failed == f0 &&
              test_skipped == s0,
          "an existing file in the shared folder is not found");
    remove(buf);

    /* no shared folder: a counted skip, and test_summary() says 77 */
    setenv("SHRINK_SHARED", "/nonexistent/shrink-shared", 1);
    f0 = test_failed;
    got = test_need_asset(buf, sizeof buf, "fixtures/no/such/file.safetensors");
    CHECK(got == NULL && test_failed == f0 && test_skipped == s0 + 1 && !test_have_shared(),
          "without a shared folder a missing fixture must be a counted skip");
    /* test_summary's exit status for each outcome (its counters saved and restored) */
    int p = test_passed, fl = test_failed, sk = test_skipped;
    test_passed = 5, test_failed = 0, test_skipped = 1;
    int rc_skip = test_summary("  (harness: skip case)");
    test_passed = 5, test_failed = 1, test_skipped = 1;
    int rc_fail = test_summary("  (harness: fail case)");
    test_passed = 5, test_failed = 0, test_skipped = 0;
    int rc_pass = test_summary("  (harness: pass case)");
    test_passed = p, test_failed = fl, test_skipped = sk - 1; /* the wanted skip above */
    CHECK(rc_skip == 77, "skipped and nothing failed: exit %d, want 77", rc_skip);
    CHECK(rc_fail == 1, "a failure with skips: exit %d, want 1", rc_fail);
    CHECK(rc_pass == 0, "everything ran: exit %d, want 0", rc_pass);

    if (saved) setenv("SHRINK_SHARED", saved, 1);
    else unsetenv("SHRINK_SHARED");
    free(saved);
    rmdir(dir);
    return test_summary("test_harness");
}
