/*
 * test_fmt.c - shrink_fmt_double (src/core/util.c): numbers printed as the user wrote them.
 *
 * The reference is strtod: the text must read back as exactly the same double, and no shorter
 * %g text does (each precision below the chosen one is tried and must not round-trip). Values:
 * whole numbers below 1e15 are written with their digits (100, not 1e+02); the ones users type (3e-4, 0.1, 1e-3, 2.5, 100), thirds and other 17-digit values, powers of
 * two, denormals, extremes, negative zero, and 20000 pseudo-random doubles of every exponent.
 */
#include "shrink.h"
#include "test_util.h"

#include <stdint.h>

/* Checks the text of v: round trip, and minimal (no precision p < the text's reads back). */
static void check_one(double v) {
    char b[64];
    shrink_fmt_double(b, sizeof b, v);
    double back = strtod(b, NULL);
    CHECK(back == v && signbit(back) == signbit(v), "%.17g -> '%s' -> %.17g", v, b, back);
    int digits = 0, zeros = 0;   /* significant digits in b (trailing zeros of a whole number not) */
    for (const char *p = b; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && (digits || *p != '0')) {
            digits++;
            zeros = *p == '0' ? zeros + 1 : 0;
        }
    if (!strchr(b, '.') && !strchr(b, 'e')) digits -= zeros;
    for (int p = 1; p < digits; p++) {
        char t[400];
        snprintf(t, sizeof t, "%.*g", p, v);
        CHECK(strtod(t, NULL) != v, "%.17g: '%s' (%d digits) reads back too, '%s' is longer", v,
              t, p, b);
    }
}

int main(void) {
    struct { double v; const char *want; } typed[] = {
        {3e-4, "0.0003"}, {0.1, "0.1"}, {1e-3, "0.001"}, {2.5, "2.5"}, {100, "100"},
        {0.9, "0.9"}, {1e-12, "1e-12"}, {-0.5, "-0.5"}, {0, "0"}, {5e-5, "5e-05"},
        {1.0 / 3.0, "0.3333333333333333"}, {0.1 + 0.2, "0.30000000000000004"},
    };
    for (size_t i = 0; i < sizeof typed / sizeof typed[0]; i++) {
        char b[64];
        shrink_fmt_double(b, sizeof b, typed[i].v);
        CHECK(strcmp(b, typed[i].want) == 0, "%.17g gives '%s', want '%s'", typed[i].v, b,
              typed[i].want);
        check_one(typed[i].v);
    }
    double special[] = {-0.0, 4.9e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                        1024.0, 0.5, 1e22, 123456789012345680.0};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) check_one(special[i]);
    char b[64];
    CHECK(!strcmp(shrink_fmt_double(b, sizeof b, NAN), "nan") &&
          !strcmp(shrink_fmt_double(b, sizeof b, INFINITY), "inf") &&
          !strcmp(shrink_fmt_double(b, sizeof b, -INFINITY), "-inf"), "non-finite: '%s'", b);
    CHECK(!strcmp(shrink_fmt_double(b, 4, 1.0 / 3.0), "0.3"), "truncated to cap: '%s'", b);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;   /* xorshift64 */
        double v;
        memcpy(&v, &x, sizeof v);
        if (isfinite(v)) check_one(v);
    }
    return test_summary("test_fmt");
}
