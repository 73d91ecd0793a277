/*
 * fuzz_tokenizer_json.c - libFuzzer target: a Hugging Face tokenizer.json (Llama/sentencepiece
 * BPE or GPT-2 byte-level BPE) through sk_tok_load_hf_json_mem; a tokenizer it accepts then
 * encodes and decodes a fixed text (fuzz_tok.h).
 */
#include "fuzz_tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    shrink_tokenizer *t = NULL;
    if (sk_tok_load_hf_json_mem((const char *)data, size, "fuzz/tokenizer.json", &t) ==
        SHRINK_OK) {
        fuzz_tok_exercise(t);
        shrink_tokenizer_free(t);
    }
    return 0;
}
