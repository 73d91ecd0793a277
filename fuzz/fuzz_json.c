/*
 * fuzz_json.c - libFuzzer target: the JSON parser (sk_json_parse, whose every consumer reads
 * untrusted files) with a walk over the whole tree and the typed getters, and the
 * model.safetensors.index.json reader (sk_safetensors_index_parse) on the same bytes.
 */
#include "core/json.h"
#include "formats/formats.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Touches every string and key of the tree (an object's keys also through sk_json_get). */
static size_t fuzz_json_walk(const sk_json *j) {
    size_t h = (size_t)j->type;
    switch (j->type) {
    case SK_JSON_STRING:
        if (j->len) h += (unsigned char)j->str[j->len - 1];
        h += (unsigned char)j->str[j->len]; /* the NUL terminator */
        break;
    case SK_JSON_ARRAY:
        for (size_t i = 0; i < j->len; i++) h += fuzz_json_walk(&j->items[i]);
        break;
    case SK_JSON_OBJECT:
        for (size_t i = 0; i < j->len; i++) {
            h += j->key_lens[i] + (unsigned char)j->keys[i][j->key_lens[i]];
            if (i < 8 && strlen(j->keys[i]) == j->key_lens[i] && !sk_json_get(j, j->keys[i]))
                __builtin_trap(); /* a key that is there must be found */
            h += fuzz_json_walk(&j->items[i]);
        }
        break;
    default: break;
    }
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sk_json *root = NULL;
    if (sk_json_parse((const char *)data, size, "fuzz.json", &root) == SHRINK_OK) {
        volatile size_t sink = fuzz_json_walk(root);
        int64_t i; double d; int b;
        sink += (size_t)sk_json_get_int(root, "a", &i) + (size_t)sk_json_get_num(root, "a", &d) +
                (size_t)sk_json_get_bool(root, "a", &b) + (sk_json_get_str(root, "a") != NULL);
        (void)sink;
        sk_json_free(root);
    }
    char **files = NULL;
    int    n     = 0;
    if (sk_safetensors_index_parse((const char *)data, size, "fuzz.index.json", &files, &n) ==
        SHRINK_OK)
        sk_strings_free(files, n);
    return 0;
}
