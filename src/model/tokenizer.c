/*
 * tokenizer.c - tokenizer entry points (stub: every function reports SHRINK_ERR_UNSUPPORTED
 * until the sentencepiece and GPT-2 byte-level BPE tokenizers land).
 */
#include "../core/core.h"

struct shrink_tokenizer {
    int32_t vocab_size;
};

shrink_status shrink_tokenizer_load(shrink_tokenizer **out, const char *path) {
    if (out) *out = NULL;
    return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: tokenizers not implemented yet", path);
}

void shrink_tokenizer_free(shrink_tokenizer *tok) { sk_free(tok); }

int32_t shrink_tokenizer_vocab_size(const shrink_tokenizer *tok) {
    return tok ? tok->vocab_size : 0;
}

int32_t shrink_tokenizer_bos(const shrink_tokenizer *tok) { (void)tok; return -1; }
int32_t shrink_tokenizer_eos(const shrink_tokenizer *tok) { (void)tok; return -1; }

shrink_status shrink_tokenizer_encode(const shrink_tokenizer *tok, const char *text, size_t len,
                                      bool add_bos, int32_t **ids, size_t *n_ids) {
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    return sk_error(SHRINK_ERR_UNSUPPORTED, "shrink_tokenizer_encode: not implemented yet");
}

shrink_status shrink_tokenizer_decode(const shrink_tokenizer *tok, const int32_t *ids,
                                      size_t n_ids, char **text, size_t *len) {
    if (text) *text = NULL;
    if (len) *len = 0;
    return sk_error(SHRINK_ERR_UNSUPPORTED, "shrink_tokenizer_decode: not implemented yet");
}

int32_t shrink_tokenizer_piece(const shrink_tokenizer *tok, int32_t prev, int32_t id, char *buf,
                               size_t cap) {
    return SHRINK_ERR_UNSUPPORTED;
}
