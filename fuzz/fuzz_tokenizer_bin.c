/*
 * fuzz_tokenizer_bin.c - libFuzzer target: a llama2.c tokenizer.bin (max_token_length, then
 * per piece: f32 score, i32 length, bytes) through sk_tok_load_llama2c_mem; a tokenizer it
 * accepts then encodes and decodes a fixed text (fuzz_tok.h).
 */
#include "fuzz_tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    shrink_tokenizer *t = NULL;
    if (sk_tok_load_llama2c_mem(data, size, "fuzz/tokenizer.bin", &t) == SHRINK_OK) {
        fuzz_tok_exercise(t);
        shrink_tokenizer_free(t);
    }
    return 0;
}
