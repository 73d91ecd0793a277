/*
 * fuzz_tokens.c - libFuzzer target: a token file (`shrink tokenize`'s output, training data;
 * docs/training.md) through sk_tokens_parse, then every token read back: each must be in
 * [0, vocab_size) once the parse succeeds (a 4-byte token >= 2^31 once read as a negative
 * id and passed the check).
 */
#include "train/optim.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sk_tokens t;
    if (sk_tokens_parse(data, size, "fuzz.tok", &t) != SHRINK_OK) return 0;
    volatile int64_t sum = 0;
    for (int64_t i = 0; i < t.n; i++) {
        int32_t id = sk_tokens_at(&t, i);
        if (id < 0 || id >= t.vocab_size) abort();   /* the parse promised otherwise */
        sum += id;
    }
    (void)sum;
    return 0;
}
