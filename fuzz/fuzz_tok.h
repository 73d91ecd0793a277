/*
 * fuzz_tok.h - what the tokenizer fuzz targets do with a tokenizer a hostile file produced:
 * encode a fixed text (ASCII, spaces, newlines, multi-byte characters, a control piece's
 * spelling), decode the ids back, and ask for the pieces of the first ids and of every id
 * the encode gave. A tokenizer the loader accepted must survive all of it.
 */
#ifndef FUZZ_TOK_H
#define FUZZ_TOK_H

#include "tokenizer/tokenizer.h"

#include <string.h>

static void fuzz_tok_exercise(shrink_tokenizer *t) {
    static const char text[] = "Hello world, it's  a test.\n\n<s> caf\xc3\xa9 \xe2\x96\x81x "
                               "\xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 123  \t end ";
    int32_t *ids = NULL;
    size_t   n   = 0;
    char     buf[64];
    int32_t  v   = shrink_tokenizer_vocab_size(t);
    for (int32_t id = -1; id < v && id < 300; id++)
        (void)shrink_tokenizer_piece(t, shrink_tokenizer_bos(t), id, buf, sizeof buf);
    (void)shrink_tokenizer_piece(t, 0, v, buf, sizeof buf);
    if (shrink_tokenizer_encode(t, text, strlen(text), true, &ids, &n) == SHRINK_OK) {
        char  *s   = NULL;
        size_t len = 0;
        for (size_t i = 0; i < n; i++)
            (void)shrink_tokenizer_piece(t, i ? ids[i - 1] : -1, ids[i], buf, sizeof buf);
        if (shrink_tokenizer_decode(t, ids, n, &s, &len) == SHRINK_OK) shrink_free(s);
        shrink_free(ids);
    }
}

#endif /* FUZZ_TOK_H */
