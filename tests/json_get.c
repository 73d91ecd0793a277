/*
 * json_get.c - the JSON reader of the shell tests (tests/test_cli.sh), over the library's own
 * strict parser (src/core/json.c), so the CLI's --json output is checked on every machine
 * without python3 or jq. Built with the tests (build/tests/json_get; not a test itself).
 *
 *   json_get FILE             exit 0 if FILE holds exactly one valid JSON value, else 1 and
 *                             the parser's message on stderr
 *   json_get FILE PATH...     prints the value at each PATH on its own line: members joined by
 *                             '.', array items by index ("models.1.kl_mean"); "#" as the last
 *                             part prints an array's or object's length. Numbers print with 17
 *                             significant digits (integers exactly), strings raw, true/false,
 *                             null. A missing PATH prints nothing for it and exits 2.
 */
#include "core/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const sk_json *walk(const sk_json *j, const char *path, int *count) {
    char part[256];
    *count = 0;
    while (j && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof part) return NULL;
        memcpy(part, path, n);
        part[n] = 0;
        path += n + (path[n] == '.');
        if (!strcmp(part, "#") && !*path) {
            if (j->type != SK_JSON_ARRAY && j->type != SK_JSON_OBJECT) return NULL;
            *count = 1;
            return j;
        }
        if (j->type == SK_JSON_OBJECT) {
            j = sk_json_get(j, part);
        } else if (j->type == SK_JSON_ARRAY) {
            char *end;
            unsigned long i = strtoul(part, &end, 10);
            if (!*part || *end || i >= j->len) return NULL;
            j = &j->items[i];
        } else {
            return NULL;
        }
    }
    return j;
}

static void print(const sk_json *j, int count) {
    if (count) {
        printf("%zu\n", j->len);
        return;
    }
    switch (j->type) {
    case SK_JSON_NULL: puts("null"); break;
    case SK_JSON_BOOL: puts(j->boolean ? "true" : "false"); break;
    case SK_JSON_NUMBER:
        if (j->is_int) printf("%" PRId64 "\n", j->integer);
        else printf("%.17g\n", j->number);
        break;
    case SK_JSON_STRING:
        fwrite(j->str, 1, j->len, stdout);
        putchar('\n');
        break;
    case SK_JSON_ARRAY: printf("[array of %zu]\n", j->len); break;
    case SK_JSON_OBJECT: printf("{object of %zu}\n", j->len); break;
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: json_get FILE [PATH...]\n");
        return 2;
    }
    char  *text = NULL;
    size_t len  = 0;
    if (sk_read_file(argv[1], (size_t)1 << 30, &text, &len) != SHRINK_OK) {
        fprintf(stderr, "json_get: %s\n", shrink_last_error());
        return 1;
    }
    sk_json *j = NULL;
    if (sk_json_parse(text, len, argv[1], &j) != SHRINK_OK) {
        fprintf(stderr, "json_get: %s\n", shrink_last_error());
        sk_free(text);
        return 1;
    }
    int rc = 0;
    for (int a = 2; a < argc; a++) {
        int count;
        const sk_json *v = walk(j, argv[a], &count);
        if (!v) {
            fprintf(stderr, "json_get: %s: no %s\n", argv[1], argv[a]);
            rc = 2;
            continue;
        }
        print(v, count);
    }
    sk_json_free(j);
    sk_free(text);
    return rc;
}
