/*
 * tok_bpe.c - GPT-2 byte-level BPE (openai/gpt-2 encoder.py; the reference this project
 * checks against is ../shared/tools/ref/gpt2_bpe.py).
 *
 * Files: vocab.json (piece -> id) + merges.txt ("#version" line, then "a b" per line, rank =
 * line order), or a Hugging Face tokenizer.json with a ByteLevel pre-tokenizer.
 *
 * Encoding: the text is cut into pre-tokens by the GPT-2 regex
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * (implemented by hand below, with the Unicode classes of unicode_tables.h); each pre-token's
 * bytes start as the pieces of their byte_to_unicode characters and are merged lowest rank
 * first (tokenizer.c's engine). Special tokens in the text (<|endoftext|>) are NOT matched:
 * they are encoded as ordinary text, like the reference.
 * Decoding maps each piece's characters back to bytes; invalid UTF-8 becomes U+FFFD per
 * maximal subpart (Python's errors="replace").
 */
#include "tokenizer.h"

#include "../core/json.h"
#include "unicode_tables.h"

/* ==== byte <-> unicode ===================================================================== */

/* GPT-2's bytes_to_unicode(): printable latin-1 bytes (0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF) map
 * to themselves; the other 68 (0x00-0x20, 0x7F-0xA0, 0xAD) to U+0100.. in increasing order. */
static uint32_t gpt2_b2u(unsigned b) {
    if (b <= 0x20) return 0x100 + b;
    if (b >= 0x7F && b <= 0xA0) return 0x100 + 33 + (b - 0x7F);
    if (b == 0xAD) return 0x100 + 67;
    return b;
}

/* The byte of code point cp under byte_to_unicode, or -1. */
static int gpt2_u2b(uint32_t cp) {
    if (cp < 0x100) return gpt2_b2u(cp) == cp ? (int)cp : -1;
    if (cp < 0x100 + 33) return (int)(cp - 0x100);
    if (cp < 0x100 + 67) return (int)(cp - 0x100 - 33 + 0x7F);
    if (cp == 0x100 + 67) return 0xAD;
    return -1;
}

static size_t utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The bytes piece s[0..n) stands for; characters outside the table (added tokens) are kept
 * as UTF-8. out has room for n bytes. Used by tokenizer.c to build the decoded forms. */
SK_HIDDEN size_t sk_gpt2_unmap(const char *s, size_t n, char *out);
size_t sk_gpt2_unmap(const char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t   l;
        uint32_t cp = sk_utf8_get(s + i, n - i, &l);
        int      b  = gpt2_u2b(cp);
        if (b >= 0) {
            out[o++] = (char)b;
        } else {
            memcpy(out + o, s + i, l);
            o += l;
        }
        i += l;
    }
    return o;
}

/* Sets byte_ids (each byte's one-character piece), BOS/EOS (<|endoftext|>) and finishes. */
static shrink_status gpt2_finish(shrink_tokenizer *t) {
    for (unsigned b = 0; b < 256; b++) {
        char   u[4];
        size_t l       = utf8_put(gpt2_b2u(b), u);
        t->byte_ids[b] = sk_tok_find(t, u, l);
    }
    t->bos = t->eos = sk_tok_find(t, "<|endoftext|>", 13);
    return sk_tok_finish(t);
}

/* ==== loaders ============================================================================== */

/* merges.txt: ranks in line order, "#version" and empty lines skipped, "\r\n" accepted. */
static shrink_status gpt2_merges_txt(shrink_tokenizer *t, const char *s, size_t n,
                                     const char *what) {
    size_t lines = 1;
    for (size_t i = 0; i < n; i++) lines += s[i] == '\n';
    shrink_status st = sk_tok_merges_init(t, lines);
    int32_t rank = 0;
    size_t  line = 0;
    for (size_t i = 0; i < n && !st;) {
        const char *nl  = memchr(s + i, '\n', n - i);
        size_t      end = nl ? (size_t)(nl - s) : n, e = end;
        line++;
        if (e > i && s[e - 1] == '\r') e--;
        if (e > i && !(e - i >= 8 && memcmp(s + i, "#version", 8) == 0)) {
            const char *sp = memchr(s + i, ' ', e - i);
            if (!sp || sp == s + i || sp + 1 == s + e || memchr(sp + 1, ' ', (size_t)(s + e - sp - 1)))
                return sk_error(SHRINK_ERR_FORMAT, "%s: line %zu is not \"a b\"", what,
                                line);
            st = sk_tok_merge_add(t, s + i, (size_t)(sp - (s + i)), sp + 1,
                                  (size_t)(s + e - sp - 1), rank++);
        }
        i = end + 1;
    }
    return st;
}

shrink_status sk_tok_load_gpt2_mem(const char *vocab_json, size_t vocab_len,
                                   const char *merges_txt, size_t merges_len, const char *what,
                                   shrink_tokenizer **out) {
    *out                = NULL;
    sk_json      *root  = NULL;
    char         *vname = sk_path_join(what, "vocab.json");
    char         *mname = sk_path_join(what, "merges.txt");
    shrink_tokenizer *t = sk_tok_new(SK_TOK_GPT2, what);
    shrink_status st    = SHRINK_OK;
    if (!vname || !mname || !t) st = sk_error(SHRINK_ERR_NOMEM, "%s: no memory", what);
    if (!st) st = sk_json_parse(vocab_json, vocab_len, vname, &root);
    if (!st) st = sk_tok_vocab_from_json(t, root, NULL, vname);
    if (!st) st = gpt2_merges_txt(t, merges_txt, merges_len, mname);
    if (!st) st = gpt2_finish(t);
    sk_json_free(root);
    sk_free(vname);
    sk_free(mname);
    if (st) {
        shrink_tokenizer_free(t);
        return st;
    }
    *out = t;
    return SHRINK_OK;
}

/* ByteLevel's add_prefix_space, wherever the pre-tokenizer (or a Sequence) has it. */
static int hf_add_prefix_space(const sk_json *j) {
    if (!j || j->type != SK_JSON_OBJECT) return 0;
    const sk_json *list = sk_json_get(j, "pretokenizers");
    for (size_t i = 0; list && list->type == SK_JSON_ARRAY && i < list->len; i++)
        if (hf_add_prefix_space(&list->items[i])) return 1;
    const char *type = sk_json_get_str(j, "type");
    int         b    = 0;
    return type && strcmp(type, "ByteLevel") == 0 && sk_json_get_bool(j, "add_prefix_space", &b) &&
           b;
}

shrink_status sk_tok_hf_gpt2_from_json(const sk_json *root, const char *what,
                                       shrink_tokenizer **out) {
    *out                 = NULL;
    const sk_json *model = sk_json_get(root, "model");
    shrink_tokenizer *t  = sk_tok_new(SK_TOK_GPT2, what);
    if (!t) return sk_error(SHRINK_ERR_NOMEM, "%s: no memory", what);
    t->add_prefix_space = hf_add_prefix_space(sk_json_get(root, "pre_tokenizer"));
    shrink_status st    = sk_tok_vocab_from_json(t, sk_json_get(model, "vocab"),
                                                 sk_json_get(root, "added_tokens"), what);
    if (!st) st = sk_tok_merges_from_json(t, sk_json_get(model, "merges"), what);
    if (!st) st = gpt2_finish(t);
    if (st) {
        shrink_tokenizer_free(t);
        return st;
    }
    *out = t;
    return SHRINK_OK;
}

/* ==== pre-tokenization ===================================================================== */

enum { CL_OTHER, CL_LETTER, CL_NUMBER, CL_SPACE };

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

#define N_RANGES(a) (sizeof(a) / sizeof((a)[0]))

static int char_class(uint32_t cp) {
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CL_LETTER;
        if (cp >= '0' && cp <= '9') return CL_NUMBER;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return CL_SPACE;
        return CL_OTHER;
    }
    if (in_ranges(sk_uni_letter, N_RANGES(sk_uni_letter), cp)) return CL_LETTER;
    if (in_ranges(sk_uni_number, N_RANGES(sk_uni_number), cp)) return CL_NUMBER;
    if (in_ranges(sk_uni_space, N_RANGES(sk_uni_space), cp)) return CL_SPACE;
    return CL_OTHER;
}

static int class_at(const char *s, size_t n, size_t i, size_t *len) {
    return char_class(sk_utf8_get(s + i, n - i, len));
}

/* End of the pre-token starting at s[i] (i < n): the first alternative of the regex that
 * matches at i, as the regex engine picks it. */
static size_t gpt2_pretoken(const char *s, size_t n, size_t i) {
    if (s[i] == '\'' && i + 1 < n) { /* 's 't 're 've 'm 'll 'd */
        char c = s[i + 1], d = i + 2 < n ? s[i + 2] : 0;
        if (c == 's' || c == 't' || c == 'm' || c == 'd') return i + 2;
        if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l'))
            return i + 3;
    }
    size_t l, j = i;
    int    k = class_at(s, n, i, &l);
    if (s[i] == ' ' && i + 1 < n) { /* " ?" before a letter / number / other run */
        size_t l1;
        int    k1 = class_at(s, n, i + 1, &l1);
        if (k1 != CL_SPACE) {
            k = k1;
            j = i + 1;
            l = l1;
        }
    }
    if (k != CL_SPACE) { /* \p{L}+ | \p{N}+ | [^\s\p{L}\p{N}]+ */
        j += l;
        while (j < n && class_at(s, n, j, &l) == k) j += l;
        return j;
    }
    /* whitespace run: \s+(?!\S) leaves its last character for a following non-space, unless
     * the run is that one character (then \s+ takes it) */
    size_t last = i;
    j           = i;
    while (j < n && class_at(s, n, j, &l) == CL_SPACE) {
        last = j;
        j += l;
    }
    if (j == n || last == i) return j;
    return last;
}

shrink_status sk_tok_encode_gpt2(const shrink_tokenizer *t, const char *text, size_t len,
                                 sk_ids *out) {
    char *buf = NULL;
    if (t->add_prefix_space && text[0] != ' ') {
        buf = sk_malloc(len + 1);
        if (!buf) return sk_error(SHRINK_ERR_NOMEM, "out of memory encoding a text");
        buf[0] = ' ';
        memcpy(buf + 1, text, len);
        text = buf;
        len++;
    }
    sk_bpe_work *w = sk_bpe_work_new();
    shrink_status st = w ? SHRINK_OK : sk_error(SHRINK_ERR_NOMEM, "out of memory "
                                                "encoding a text");
    for (size_t i = 0; i < len && !st;) {
        size_t e      = gpt2_pretoken(text, len, i);
        int    cached = sk_bpe_cached(w, text, i, e - i, out);
        if (cached < 0) st = sk_error(SHRINK_ERR_NOMEM, "out of memory encoding a text");
        for (size_t k = i; k < e && !cached && !st; k++)
            st = sk_bpe_sym_add(w, (uint32_t)k, 1, t->byte_ids[(unsigned char)text[k]]);
        if (!st && !cached) st = sk_bpe_merge(t, w, text, out);
        i = e;
    }
    sk_bpe_work_free(w);
    sk_free(buf);
    return st;
}

/* ==== from arrays (GGUF metadata) ========================================================== */

shrink_status sk_tok_load_gpt2_arrays(const sk_tok_arrays *a, const char *what,
                                      shrink_tokenizer **out) {
    *out = NULL;
    shrink_tokenizer *t = sk_tok_new(SK_TOK_GPT2, what);
    if (!t) return sk_error(SHRINK_ERR_NOMEM, "%s: no memory", what);
    shrink_status st = sk_tok_vocab_init(t, a->n_vocab);
    for (int64_t i = 0; i < a->n_vocab && !st; i++) {
        int32_t ty = a->types ? a->types[i] : SK_PIECE_NORMAL;
        if (ty < SK_PIECE_NORMAL || ty > SK_PIECE_BYTE) ty = SK_PIECE_NORMAL;
        if (a->piece_lens[i] > UINT32_MAX) {
            st = sk_error(SHRINK_ERR_FORMAT, "%s: piece %" PRId64 " is too long", what, i);
            break;
        }
        st = sk_tok_vocab_set(t, (int32_t)i, a->pieces[i], (size_t)a->piece_lens[i], 0.0f,
                              (sk_piece_type)ty);
    }
    if (!st) st = sk_tok_vocab_index(t, 0);
    if (!st) st = sk_tok_merges_init(t, (size_t)a->n_merges + 1);
    for (int64_t i = 0; i < a->n_merges && !st; i++) {
        const char *m = a->merges[i];
        size_t n = (size_t)a->merge_lens[i];
        const char *sp = memchr(m, ' ', n);
        if (!sp || sp == m || sp + 1 == m + n)
            st = sk_error(SHRINK_ERR_FORMAT, "%s: merge %" PRId64 " is not \"a b\"", what, i);
        else
            st = sk_tok_merge_add(t, m, (size_t)(sp - m), sp + 1, (size_t)(m + n - sp - 1),
                                  (int32_t)i);
    }
    if (!st) st = gpt2_finish(t);
    if (!st && a->bos >= 0) t->bos = a->bos;
    if (!st && a->eos >= 0) t->eos = a->eos;
    if (st) {
        shrink_tokenizer_free(t);
        return st;
    }
    *out = t;
    return SHRINK_OK;
}
