/*
 * test_json.c - the strict JSON parser (src/core/json.c): valid documents, escapes and
 * surrogate pairs, big integers, and one row per way to break a document.
 */
#include "core/json.h"
#include "test_util.h"

#include <time.h>

static sk_json *parse_ok(const char *s) {
    sk_json *j = NULL;
    shrink_status st = sk_json_parse(s, strlen(s), "t.json", &j);
    CHECK(st == SHRINK_OK && j, "parse failed for %s: %s", s, shrink_last_error());
    return j;
}

static void test_valid(void) {
    sk_json *j = parse_ok(" {\"a\": 1, \"b\": [true, false, null], \"c\": \"x\", \"d\": -2.5e1,"
                          " \"e\": {}, \"f\": [], \"a\": 2} ");
    if (!j) return;
    int64_t i;
    double d;
    int b;
    CHECK(j->type == SK_JSON_OBJECT && j->len == 7, "object with 7 members");
    CHECK(sk_json_get_int(j, "a", &i) && i == 1, "first duplicate wins");
    const sk_json *arr = sk_json_get(j, "b");
    CHECK(arr && arr->type == SK_JSON_ARRAY && arr->len == 3, "array of 3");
    CHECK(arr && arr->items[0].type == SK_JSON_BOOL && arr->items[0].boolean == 1, "true");
    CHECK(arr && arr->items[2].type == SK_JSON_NULL, "null");
    CHECK(sk_json_get_str(j, "c") && strcmp(sk_json_get_str(j, "c"), "x") == 0, "string");
    CHECK(sk_json_get_num(j, "d", &d) && d == -25.0, "double %g", d);
    CHECK(!sk_json_get_int(j, "d", &i), "-2.5e1 is not an int");
    CHECK(!sk_json_get_bool(j, "a", &b), "number is not a bool");
    CHECK(sk_json_get(j, "missing") == NULL, "missing key");
    CHECK(sk_json_get_str(j, "a") == NULL, "number is not a string");
    sk_json_free(j);

    const char *scalars[] = {"0", "-0", "1.5", "\"\"", "true", "null", "[[[]]]", "1E+2", "1e-2"};
    for (size_t k = 0; k < sizeof scalars / sizeof *scalars; k++) sk_json_free(parse_ok(scalars[k]));
}

static void test_escapes(void) {
    sk_json *j = parse_ok("[\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\", \"\\u00e9\\u20AC\", "
                          "\"\\ud83d\\ude00\", \"x\\u0000y\", \"\xc3\xa9\xf0\x9f\x98\x80\"]");
    if (!j) return;
    CHECK(strcmp(j->items[0].str, "a\"b\\c/d\b\f\n\r\t") == 0, "simple escapes");
    CHECK(strcmp(j->items[1].str, "\xc3\xa9\xe2\x82\xac") == 0, "\\u00e9\\u20AC");
    CHECK(strcmp(j->items[2].str, "\xf0\x9f\x98\x80") == 0, "surrogate pair -> U+1F600");
    CHECK(j->items[3].len == 3 && memcmp(j->items[3].str, "x\0y", 3) == 0, "embedded NUL");
    CHECK(strcmp(j->items[4].str, "\xc3\xa9\xf0\x9f\x98\x80") == 0, "raw UTF-8 kept");
    sk_json_free(j);

    j = parse_ok("{\"k\\u0041\": 1}");
    if (j) CHECK(j->key_lens[0] == 2 && strcmp(j->keys[0], "kA") == 0, "escaped key");
    sk_json_free(j);
}

static void test_numbers(void) {
    sk_json *j = parse_ok("[9223372036854775807, -9223372036854775808, 18446744073709551615,"
                          " 18446744073709551616, 12345678901234567, 1.0, -0]");
    if (!j) return;
    CHECK(j->items[0].is_int && j->items[0].integer == INT64_MAX, "INT64_MAX");
    CHECK(j->items[1].is_int && j->items[1].integer == INT64_MIN, "INT64_MIN");
    CHECK(!j->items[1].is_uint, "negative is not uint");
    CHECK(!j->items[2].is_int && j->items[2].is_uint && j->items[2].uinteger == UINT64_MAX,
          "UINT64_MAX");
    CHECK(!j->items[3].is_int && !j->items[3].is_uint, "2^64 does not fit");
    CHECK(j->items[3].number == 18446744073709551616.0, "2^64 as double");
    CHECK(j->items[4].is_int && j->items[4].integer == 12345678901234567LL, "exact beyond 2^53");
    CHECK(!j->items[5].is_int && j->items[5].number == 1.0, "1.0 is not an int");
    CHECK(j->items[6].is_int && j->items[6].integer == 0, "-0");
    sk_json_free(j);
}

typedef enum bad_doc {
    BAD_EMPTY,
    BAD_TRUNCATED_OBJECT,
    BAD_TRUNCATED_STRING,
    BAD_TRUNCATED_ARRAY,
    BAD_TRUNCATED_LITERAL,
    BAD_MISSING_COLON,
    BAD_TRAILING_COMMA,
    BAD_TRAILING_GARBAGE,
    BAD_LEADING_ZERO,
    BAD_BARE_MINUS,
    BAD_DOT_NO_DIGITS,
    BAD_EXP_NO_DIGITS,
    BAD_NAN,
    BAD_SINGLE_QUOTE,
    BAD_UNQUOTED_KEY,
    BAD_CONTROL_CHAR,
    BAD_ESCAPE,
    BAD_SHORT_U,
    BAD_LONE_HIGH,
    BAD_LONE_LOW,
    BAD_HIGH_THEN_ASCII,
    BAD_UTF8_CONT,
    BAD_UTF8_OVERLONG,
    BAD_UTF8_SURROGATE,
    BAD_UTF8_TRUNC,
    BAD_COMMENT,
    BAD_COUNT
} bad_doc;

static const char *bad_docs[BAD_COUNT] = {
    [BAD_EMPTY]             = "   ",
    [BAD_TRUNCATED_OBJECT]  = "{\"a\": 1",
    [BAD_TRUNCATED_STRING]  = "\"abc",
    [BAD_TRUNCATED_ARRAY]   = "[1, 2",
    [BAD_TRUNCATED_LITERAL] = "tru",
    [BAD_MISSING_COLON]     = "{\"a\" 1}",
    [BAD_TRAILING_COMMA]    = "[1, 2,]",
    [BAD_TRAILING_GARBAGE]  = "{} x",
    [BAD_LEADING_ZERO]      = "012",
    [BAD_BARE_MINUS]        = "-",
    [BAD_DOT_NO_DIGITS]     = "1.",
    [BAD_EXP_NO_DIGITS]     = "1e+",
    [BAD_NAN]               = "NaN",
    [BAD_SINGLE_QUOTE]      = "'a'",
    [BAD_UNQUOTED_KEY]      = "{a: 1}",
    [BAD_CONTROL_CHAR]      = "\"a\tb\"",
    [BAD_ESCAPE]            = "\"\\x\"",
    [BAD_SHORT_U]           = "\"\\u12\"",
    [BAD_LONE_HIGH]         = "\"\\ud800\"",
    [BAD_LONE_LOW]          = "\"\\udc00\"",
    [BAD_HIGH_THEN_ASCII]   = "\"\\ud800\\u0041\"",
    [BAD_UTF8_CONT]         = "\"\x80\"",
    [BAD_UTF8_OVERLONG]     = "\"\xc0\xaf\"",
    [BAD_UTF8_SURROGATE]    = "\"\xed\xa0\x80\"",
    [BAD_UTF8_TRUNC]        = "\"\xe2\x82\"",
    [BAD_COMMENT]           = "[1] // c",
};

static void test_bad(void) {
    for (int k = 0; k < BAD_COUNT; k++) {
        sk_json *j = (sk_json *)1;
        shrink_status st = sk_json_parse(bad_docs[k], strlen(bad_docs[k]), "bad.json", &j);
        CHECK(st == SHRINK_ERR_FORMAT && j == NULL, "bad doc %d (%s) accepted", k, bad_docs[k]);
        const char *msg = shrink_last_error();
        CHECK(msg && strstr(msg, "bad.json: JSON error at byte "), "bad doc %d message: %s", k,
              msg ? msg : "(null)");
    }
    /* Truncating a valid document anywhere must fail, never crash. */
    const char *doc = "{\"a\": [1, 2.5, \"\\u00e9\\ud83d\\ude00\"], \"b\": {\"c\": null}}";
    size_t n = strlen(doc);
    for (size_t k = 0; k < n; k++) {
        sk_json *j = NULL;
        char *cut = malloc(k + 1);
        memcpy(cut, doc, k); /* not NUL-terminated on purpose beyond k */
        shrink_status st = sk_json_parse(cut, k, "cut.json", &j);
        CHECK(st == SHRINK_ERR_FORMAT && !j, "truncated at %zu accepted", k);
        free(cut);
    }
    /* An error position points at the culprit. */
    sk_json *j = NULL;
    sk_json_parse("{\"a\" 1}", 7, "config.json", &j);
    CHECK(strstr(shrink_last_error(), "config.json: JSON error at byte 5: expected ':'") != NULL,
          "message: %s", shrink_last_error());
}

static void test_depth(void) {
    char buf[600];
    for (int depth = 127; depth <= 129; depth++) {
        int n = 0;
        for (int k = 0; k < depth; k++) buf[n++] = '[';
        for (int k = 0; k < depth; k++) buf[n++] = ']';
        sk_json *j = NULL;
        shrink_status st = sk_json_parse(buf, (size_t)n, "deep.json", &j);
        if (depth <= 128) CHECK(st == SHRINK_OK, "depth %d rejected", depth);
        else CHECK(st == SHRINK_ERR_FORMAT && strstr(shrink_last_error(), "nesting"),
                   "depth %d accepted", depth);
        sk_json_free(j);
    }
    /* 100k opening brackets: rejected quickly, no stack overflow */
    size_t big = 100000;
    char *deep = malloc(big);
    memset(deep, '{', big);
    sk_json *j = NULL;
    CHECK(sk_json_parse(deep, big, "deep.json", &j) == SHRINK_ERR_FORMAT, "very deep");
    free(deep);
}

/* A 50k-key vocabulary must parse in linear time. */
static void test_big(void) {
    size_t cap = 4 << 20, n = 0;
    char *s = malloc(cap);
    n += (size_t)sprintf(s + n, "{");
    for (int k = 0; k < 50000; k++)
        n += (size_t)sprintf(s + n, "%s\"tok\\u00e9n_%d\": %d", k ? ", " : "", k, k);
    n += (size_t)sprintf(s + n, "}");
    size_t live = sk_alloc_bytes_live();
    double t0 = shrink_time();
    sk_json *j = NULL;
    shrink_status st = sk_json_parse(s, n, "vocab.json", &j);
    double dt = shrink_time() - t0;
    CHECK(st == SHRINK_OK && j && j->len == 50000, "50k keys");
    CHECK(dt < 1.0, "50k keys took %.3f s", dt);
    if (j) {
        int64_t v;
        CHECK(sk_json_get_int(j, "tok\xc3\xa9n_49999", &v) && v == 49999, "last key");
    }
    sk_json_free(j);
    CHECK(sk_alloc_bytes_live() == live, "leak: %zu bytes", sk_alloc_bytes_live() - live);
    free(s);
}

int main(void) {
    test_valid();
    test_escapes();
    test_numbers();
    test_bad();
    test_depth();
    test_big();
    return test_summary("test_json");
}
