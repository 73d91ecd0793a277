/*
 * fuzz_gguf.c - libFuzzer target: a GGUF file through sk_gguf_parse (every key/value, string
 * arrays walked, every tensor touched at its first and last byte), the tokenizer in its
 * metadata (sk_gguf_tokenizer; one it accepts encodes and decodes a fixed text, fuzz_tok.h),
 * and, when the parse succeeds and names an architecture, the whole model load of that file
 * (shrink_model_load: config from the arch keys, tensor binding, tokenizer), through a
 * temporary file in $TMPDIR (or /tmp) since models are loaded from paths.
 */
#include "formats/formats.h"
#include "fuzz_tok.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_gguf_load(const uint8_t *data, size_t size) {
    const char *dir = getenv("TMPDIR");
    char        path[512];
    snprintf(path, sizeof path, "%s/shrink-fuzz-%ld.gguf", dir && *dir ? dir : "/tmp",
             (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return;
    int ok = fwrite(data, 1, size, f) == size;
    if (fclose(f) == 0 && ok) {
        shrink_model *m = NULL;
        if (shrink_model_load(&m, path, NULL) == SHRINK_OK) {
            const shrink_tokenizer *t = shrink_model_tokenizer(m);
            if (t) fuzz_tok_exercise((shrink_tokenizer *)t);
            shrink_model_free(m);
        }
    }
    remove(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    volatile uint8_t sink = 0;
    sk_gguf         *g    = NULL;
    if (sk_gguf_parse(data, size, "fuzz.gguf", &g) != SHRINK_OK) return 0;
    for (int64_t i = 0; i < g->n_kv; i++) {
        const sk_gguf_kv *kv = &g->kv[i];
        if (kv->key.len) sink ^= (uint8_t)kv->key.s[kv->key.len - 1];
        if (kv->val.type == SK_GGUF_STRING && kv->val.v.s.len)
            sink ^= (uint8_t)kv->val.v.s.s[kv->val.v.s.len - 1];
        if (kv->val.type == SK_GGUF_ARRAY && kv->val.arr_bytes)
            sink ^= kv->val.arr_data[kv->val.arr_bytes - 1];
        if (kv->val.type == SK_GGUF_ARRAY && kv->val.arr_type == SK_GGUF_STRING) {
            uint64_t pos = 0;
            for (uint64_t k = 0; k < kv->val.arr_n; k++) {
                sk_gguf_str s = sk_gguf_array_next_str(&kv->val, &pos);
                if (s.len) sink ^= (uint8_t)s.s[s.len - 1];
            }
        }
    }
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const sk_gguf_tensor *t = &g->tensors[i];
        if (t->bytes) sink ^= t->data[0] ^ t->data[t->bytes - 1];
    }
    shrink_tokenizer *tok = NULL;
    if (sk_gguf_tokenizer(g, "fuzz.gguf", &tok) == SHRINK_OK && tok) {
        fuzz_tok_exercise(tok);
        shrink_tokenizer_free(tok);
    }
    int has_arch = sk_gguf_find(g, "general.architecture") != NULL;
    sk_gguf_free(g);
    if (has_arch) fuzz_gguf_load(data, size);
    (void)sink;
    return 0;
}
