/*
 * json.h - a strict RFC 8259 JSON parser into a read-only tree (for config.json, safetensors
 * headers, tokenizer.json, vocab.json). Input is untrusted: depth is limited, strings are
 * validated UTF-8, \uXXXX escapes (with surrogate pairs) are decoded, numbers keep their text
 * so integers up to 2^64 are exact. Object members keep file order; duplicate keys are kept
 * (sk_json_get returns the first).
 */
#ifndef SK_JSON_H
#define SK_JSON_H

#include "core.h"

typedef enum sk_json_type {
    SK_JSON_NULL,
    SK_JSON_BOOL,
    SK_JSON_NUMBER,
    SK_JSON_STRING,
    SK_JSON_ARRAY,
    SK_JSON_OBJECT,
} sk_json_type;

typedef struct sk_json sk_json;
struct sk_json {
    sk_json_type type;
    int          boolean;   /* SK_JSON_BOOL */
    double       number;    /* SK_JSON_NUMBER */
    int          is_int;    /* number written without fraction/exponent and fits int64 */
    int64_t      integer;   /* valid when is_int */
    uint64_t     uinteger;  /* valid when is_int and non-negative (up to 2^64-1 also here) */
    int          is_uint;   /* number is a non-negative integer fitting uint64 */
    char        *str;       /* SK_JSON_STRING: decoded, NUL-terminated (may hold NULs) */
    size_t       len;       /* string length in bytes; array/object: number of items */
    sk_json     *items;     /* ARRAY / OBJECT values, len of them */
    char       **keys;      /* OBJECT keys (decoded, NUL-terminated), len of them */
    size_t      *key_lens;  /* OBJECT key lengths */
};

/* Parses text[0..len). `what` names the source (a file name) for error messages:
 * "config.json: JSON error at byte 17: expected ':'". On success *out owns the tree. */
SK_HIDDEN shrink_status sk_json_parse(const char *text, size_t len, const char *what,
                                      sk_json **out);
SK_HIDDEN void sk_json_free(sk_json *j);
/* The file at `path` (at most max_bytes) parsed into *out (messages name the path). */
SK_HIDDEN shrink_status sk_json_read_file(const char *path, size_t max_bytes, sk_json **out);

/* Member `key` of an object (NULL if j is not an object or has no such key). */
SK_HIDDEN const sk_json *sk_json_get(const sk_json *j, const char *key);
/* Typed getters: return 1 and set *out if present with the right type, 0 otherwise. */
SK_HIDDEN int sk_json_get_int(const sk_json *j, const char *key, int64_t *out);
SK_HIDDEN int sk_json_get_num(const sk_json *j, const char *key, double *out);
SK_HIDDEN int sk_json_get_bool(const sk_json *j, const char *key, int *out);
SK_HIDDEN const char *sk_json_get_str(const sk_json *j, const char *key); /* NULL if absent */

#endif /* SK_JSON_H */
