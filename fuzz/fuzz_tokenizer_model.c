/*
 * fuzz_tokenizer_model.c - libFuzzer target: a sentencepiece tokenizer.model (ModelProto
 * protobuf) through sk_tok_load_spm_model_mem; a tokenizer it accepts then encodes and decodes
 * a fixed text (fuzz_tok.h).
 */
#include "fuzz_tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    shrink_tokenizer *t = NULL;
    if (sk_tok_load_spm_model_mem(data, size, "fuzz/tokenizer.model", &t) == SHRINK_OK) {
        fuzz_tok_exercise(t);
        shrink_tokenizer_free(t);
    }
    return 0;
}
