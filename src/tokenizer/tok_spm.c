/*
 * tok_spm.c - sentencepiece-style BPE with byte fallback (the Llama tokenizer).
 *
 * Readers:
 *   llama2.c tokenizer.bin   int32 max_token_length, then per piece until the end of the file:
 *                            f32 score, int32 len, len bytes (spaces where sentencepiece has
 *                            "▁"; BOS/EOS pieces are "\n<s>\n" / "\n</s>\n"). llama2.c's
 *                            tokenizer.py export writes it.
 *   tokenizer.model          a protobuf sentencepiece ModelProto (sentencepiece_model.proto):
 *                              1 repeated SentencePiece { 1 piece, 2 score (f32), 3 type }
 *                              2 TrainerSpec { 3 model_type (2 = BPE), 35 byte_fallback,
 *                                              40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id }
 *                              3 NormalizerSpec { 1 name, 2 precompiled_charsmap,
 *                                                 3 add_dummy_prefix, 4 remove_extra_whitespaces,
 *                                                 5 escape_whitespaces }
 *                            read with a minimal bounds-checked wire-format reader; every other
 *                            field is skipped. Only BPE models with an identity normalizer
 *                            (no precompiled character map) are accepted.
 *   tokenizer.json           Hugging Face, model.type "BPE" with Metaspace / Prepend("▁") +
 *                            Replace(" ", "▁") (Llama): vocab, merges (ranks), byte_fallback.
 *
 * Encoding (sentencepiece bpe_model.cc, llama2.c encode()): normalize (dummy "▁" prefix, spaces
 * -> "▁"), split into UTF-8 characters, merge (tokenizer.c's engine: by piece score for .bin and
 * .model, by merge rank for tokenizer.json), then pieces not in the vocabulary become their
 * bytes' <0xNN> pieces. Not supported: unigram models, normalization rules (charsmaps),
 * user-defined symbols matched as a whole, sampling/dropout.
 */
#include "tokenizer.h"

#include "../core/json.h"

/* ==== llama2.c tokenizer.bin =============================================================== */

/* sentencepiece piece for a llama2.c piece: spaces back to "▁". out has room for 3*n bytes. */
static size_t llama2c_piece(const uint8_t *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            memcpy(out + o, "\xe2\x96\x81", 3);
            o += 3;
        } else {
            out[o++] = (char)s[i];
        }
    }
    return o;
}

static sk_piece_type llama2c_type(const uint8_t *s, size_t n, int *special) {
    *special = 0;
    if (n == 5 && memcmp(s, "<unk>", 5) == 0) return SK_PIECE_UNKNOWN;
    if ((n == 3 && memcmp(s, "<s>", 3) == 0) || (n == 5 && memcmp(s, "\n<s>\n", 5) == 0)) {
        *special = 1;
        return SK_PIECE_CONTROL;
    }
    if ((n == 4 && memcmp(s, "</s>", 4) == 0) || (n == 6 && memcmp(s, "\n</s>\n", 6) == 0)) {
        *special = 2;
        return SK_PIECE_CONTROL;
    }
    if (n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>') return SK_PIECE_BYTE;
    return SK_PIECE_NORMAL;
}

/* Walks the pieces; with t == NULL only counts them (*count). */
static shrink_status llama2c_walk(const uint8_t *data, size_t size, const char *what,
                                  shrink_tokenizer *t, int32_t *count) {
    size_t  o = 4;
    int32_t i = 0;
    char   *buf = NULL;
    while (o < size) {
        if (size - o < 8) {
            sk_free(buf);
            return sk_error(SHRINK_ERR_FORMAT, "%s: truncated: piece %" PRId32 " at byte %zu "
                            "needs an 8-byte header, %zu bytes left", what, i, o, size - o);
        }
        float   score = sk_rd_f32(data + o);
        int32_t len   = (int32_t)sk_rd_u32(data + o + 4);
        o += 8;
        if (len < 0 || (size_t)len > size - o) {
            sk_free(buf);
            return sk_error(SHRINK_ERR_FORMAT, "%s: piece %" PRId32 " at byte %zu: length %"
                            PRId32 " but %zu bytes left", what, i, o - 4, len, size - o);
        }
        if (i == SK_TOK_MAX_VOCAB) {
            sk_free(buf);
            return sk_error(SHRINK_ERR_FORMAT, "%s: more than %d pieces", what,
                            SK_TOK_MAX_VOCAB);
        }
        if (t) {
            int           special;
            sk_piece_type type = llama2c_type(data + o, (size_t)len, &special);
            char         *nb   = sk_realloc(buf, (size_t)len * 3 + 1);
            if (!nb) {
                sk_free(buf);
                return sk_error(SHRINK_ERR_NOMEM, "%s: no memory", what);
            }
            buf = nb;
            size_t n = type == SK_PIECE_NORMAL ? llama2c_piece(data + o, (size_t)len, buf)
                                               : (memcpy(buf, data + o, (size_t)len), (size_t)len);
            shrink_status st = sk_tok_vocab_set(t, i, buf, n, score, type);
            if (st) {
                sk_free(buf);
                return st;
            }
            if (special == 1 && t->bos < 0) t->bos = i;
            if (special == 2 && t->eos < 0) t->eos = i;
            if (type == SK_PIECE_UNKNOWN && t->unk < 0) t->unk = i;
        }
        o += (size_t)len;
        i++;
    }
    sk_free(buf);
    *count = i;
    return SHRINK_OK;
}

shrink_status sk_tok_load_llama2c_mem(const uint8_t *data, size_t size, const char *what,
                                      shrink_tokenizer **out) {
    *out = NULL;
    if (size < 4)
        return sk_error(SHRINK_ERR_FORMAT, "%s: truncated: %zu bytes, no max_token_length",
                        what, size);
    int32_t max_len = (int32_t)sk_rd_u32(data);
    if (max_len <= 0 || max_len > (1 << 20))
        return sk_error(SHRINK_ERR_FORMAT, "%s: max_token_length %" PRId32 " not in [1, %d]",
                        what, max_len, 1 << 20);
    int32_t       n = 0;
    shrink_status st = llama2c_walk(data, size, what, NULL, &n);
    if (st) return st;
    if (n == 0) return sk_error(SHRINK_ERR_FORMAT, "%s: no pieces", what);
    shrink_tokenizer *t = sk_tok_new(SK_TOK_SPM, what);
    if (!t) return sk_error(SHRINK_ERR_NOMEM, "%s: no memory", what);
    if (!(st = sk_tok_vocab_init(t, n)) && !(st = llama2c_walk(data, size, what, t, &n)) &&
        !(st = sk_tok_vocab_index(t, 0)) && !(st = sk_tok_finish(t))) {
        *out = t;
        return SHRINK_OK;
    }
    shrink_tokenizer_free(t);
    return st;
}

/* ==== protobuf wire format ================================================================= */

typedef struct pb_reader {
    const uint8_t *base; /* start of the file, for offsets in messages */
    const uint8_t *p;
    const uint8_t *end;
    const char    *what;
} pb_reader;

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

static shrink_status pb_fail(const pb_reader *r, const char *problem) {
    return sk_error(SHRINK_ERR_FORMAT, "%s: protobuf: %s at byte %zu", r->what, problem,
                    (size_t)(r->p - r->base));
}

static shrink_status pb_varint(pb_reader *r, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) return pb_fail(r, "varint runs past the end");
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return SHRINK_OK;
        }
        if (shift == 63) break;
    }
    return pb_fail(r, "varint longer than 10 bytes");
}

static shrink_status pb_key(pb_reader *r, uint32_t *field, uint32_t *wire) {
    uint64_t k;
    shrink_status st = pb_varint(r, &k);
    if (st) return st;
    *field = (uint32_t)(k >> 3);
    *wire  = (uint32_t)(k & 7);
    if (*field == 0 || k >> 32) return pb_fail(r, "bad field number");
    return SHRINK_OK;
}

static shrink_status pb_len(pb_reader *r, const uint8_t **s, size_t *n) {
    uint64_t l;
    shrink_status st = pb_varint(r, &l);
    if (st) return st;
    if (l > (uint64_t)(r->end - r->p)) {
        char msg[96];
        snprintf(msg, sizeof msg, "length %" PRIu64 " past the end (%zu bytes left)", l,
                 (size_t)(r->end - r->p));
        return pb_fail(r, msg);
    }
    *s = r->p;
    *n = (size_t)l;
    r->p += l;
    return SHRINK_OK;
}

static shrink_status pb_f32(pb_reader *r, float *f) {
    if (r->end - r->p < 4) return pb_fail(r, "fixed32 runs past the end");
    *f = sk_rd_f32(r->p);
    r->p += 4;
    return SHRINK_OK;
}

static shrink_status pb_skip(pb_reader *r, uint32_t wire) {
    uint64_t       v;
    const uint8_t *s;
    size_t         n;
    switch (wire) {
    case PB_VARINT: return pb_varint(r, &v);
    case PB_LEN: return pb_len(r, &s, &n);
    case PB_I64:
        if (r->end - r->p < 8) return pb_fail(r, "fixed64 runs past the end");
        r->p += 8;
        return SHRINK_OK;
    case PB_I32:
        if (r->end - r->p < 4) return pb_fail(r, "fixed32 runs past the end");
        r->p += 4;
        return SHRINK_OK;
    default: return pb_fail(r, "unsupported wire type (groups are not used by ModelProto)");
    }
}

/* A field of the expected wire type, else a format error naming it. */
static shrink_status pb_expect(pb_reader *r, uint32_t field, uint32_t wire, uint32_t want) {
    if (wire == want) return SHRINK_OK;
    char msg[80];
    snprintf(msg, sizeof msg, "field %u has wire type %u, expected %u", field, wire, want);
    return pb_fail(r, msg);
}

/* ==== sentencepiece tokenizer.model ======================================================== */

typedef struct spm_spec {
    int64_t model_type;       /* TrainerSpec.model_type: 1 unigram (default), 2 BPE, ... */
    int     byte_fallback;
    int64_t unk_id, bos_id, eos_id;
    int     add_dummy_prefix; /* NormalizerSpec; proto defaults are all true */
    int     remove_extra_ws;
    int     escape_ws;
    size_t  charsmap_len;
    char    norm_name[32];
} spm_spec;

static shrink_status parse_trainer(pb_reader *r, spm_spec *sp) {
    while (r->p < r->end) {
        uint32_t f, w;
        uint64_t v;
        shrink_status st = pb_key(r, &f, &w);
        if (st) return st;
        int64_t *dst = f == 3 ? &sp->model_type : f == 40 ? &sp->unk_id : f == 41 ? &sp->bos_id
                     : f == 42 ? &sp->eos_id : NULL;
        if (dst || f == 35) {
            if ((st = pb_expect(r, f, w, PB_VARINT)) || (st = pb_varint(r, &v))) return st;
            if (dst) *dst = (int64_t)(int32_t)(uint32_t)v; /* int32 fields: sign-extended */
            else sp->byte_fallback = v != 0;
        } else if ((st = pb_skip(r, w))) {
            return st;
        }
    }
    return SHRINK_OK;
}

static shrink_status parse_normalizer(pb_reader *r, spm_spec *sp) {
    while (r->p < r->end) {
        uint32_t       f, w;
        uint64_t       v;
        const uint8_t *s;
        size_t         n;
        shrink_status  st = pb_key(r, &f, &w);
        if (st) return st;
        if (f == 1 || f == 2) {
            if ((st = pb_expect(r, f, w, PB_LEN)) || (st = pb_len(r, &s, &n))) return st;
            if (f == 2) sp->charsmap_len = n;
            else snprintf(sp->norm_name, sizeof sp->norm_name, "%.*s", (int)(n > 31 ? 31 : n), s);
        } else if (f >= 3 && f <= 5) {
            if ((st = pb_expect(r, f, w, PB_VARINT)) || (st = pb_varint(r, &v))) return st;
            int *dst = f == 3 ? &sp->add_dummy_prefix : f == 4 ? &sp->remove_extra_ws
                                                              : &sp->escape_ws;
            *dst = v != 0;
        } else if ((st = pb_skip(r, w))) {
            return st;
        }
    }
    return SHRINK_OK;
}

/* One ModelProto.SentencePiece. */
static shrink_status parse_piece(pb_reader *r, const uint8_t **s, size_t *n, float *score,
                                 uint64_t *type) {
    *s     = NULL;
    *n     = 0;
    *score = 0.0f;
    *type  = SK_PIECE_NORMAL;
    while (r->p < r->end) {
        uint32_t f, w;
        shrink_status st = pb_key(r, &f, &w);
        if (st) return st;
        if (f == 1) {
            if (!(st = pb_expect(r, f, w, PB_LEN))) st = pb_len(r, s, n);
        } else if (f == 2) {
            if (!(st = pb_expect(r, f, w, PB_I32))) st = pb_f32(r, score);
        } else if (f == 3) {
            if (!(st = pb_expect(r, f, w, PB_VARINT))) st = pb_varint(r, type);
        } else {
            st = pb_skip(r, w);
        }
        if (st) return st;
    }
    if (*type < SK_PIECE_NORMAL || *type > SK_PIECE_BYTE)
        return pb_fail(r, "piece type not in [1, 6]");
    return SHRINK_OK;
}

/* Pass 1 (t == NULL): counts pieces and reads the specs. Pass 2: fills the piece table. */
static shrink_status spm_walk(const uint8_t *data, size_t size, const char *what,
                              shrink_tokenizer *t, spm_spec *sp, int64_t *count) {
    pb_reader r = {data, data, data + size, what};
    int64_t   i = 0;
    while (r.p < r.end) {
        uint32_t       f, w;
        const uint8_t *s;
        size_t         n;
        shrink_status  st = pb_key(&r, &f, &w);
        if (st) return st;
        if (f < 1 || f > 3) {
            if ((st = pb_skip(&r, w))) return st;
            continue;
        }
        if ((st = pb_expect(&r, f, w, PB_LEN)) || (st = pb_len(&r, &s, &n))) return st;
        pb_reader sub = {data, s, s + n, what};
        if (f == 1) {
            if (t) {
                const uint8_t *ps;
                size_t         pn;
                float          score;
                uint64_t       type;
                if ((st = parse_piece(&sub, &ps, &pn, &score, &type))) return st;
                if ((st = sk_tok_vocab_set(t, (int32_t)i, (const char *)ps, pn, score,
                                           (sk_piece_type)type)))
                    return st;
            }
            i++;
        } else if (!t) {
            st = f == 2 ? parse_trainer(&sub, sp) : parse_normalizer(&sub, sp);
            if (st) return st;
        }
    }
    *count = i;
    return SHRINK_OK;
}

static shrink_status spm_check_spec(const spm_spec *sp, const char *what, int64_t n) {
    if (n == 0) return sk_error(SHRINK_ERR_FORMAT, "%s: no pieces (not a sentencepiece model?)",
                                what);
    if (sp->model_type != 2)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: sentencepiece model_type %" PRId64 " (%s); "
                        "only BPE (2) is supported", what, sp->model_type,
                        sp->model_type == 1 ? "unigram" : sp->model_type == 3 ? "word"
                        : sp->model_type == 4 ? "char" : "unknown");
    if (sp->charsmap_len)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: normalizer \"%s\" has a %zu-byte character "
                        "map; only the identity normalizer is supported", what, sp->norm_name,
                        sp->charsmap_len);
    return SHRINK_OK;
}

shrink_status sk_tok_load_spm_model_mem(const uint8_t *data, size_t size, const char *what,
                                        shrink_tokenizer **out) {
    *out        = NULL;
    spm_spec sp = {.model_type = 1, .unk_id = 0, .bos_id = 1, .eos_id = 2,
                   .add_dummy_prefix = 1, .remove_extra_ws = 1, .escape_ws = 1};
    int64_t       n  = 0;
    shrink_status st = spm_walk(data, size, what, NULL, &sp, &n);
    if (st || (st = spm_check_spec(&sp, what, n))) return st;
    shrink_tokenizer *t = sk_tok_new(SK_TOK_SPM, what);
    if (!t) return sk_error(SHRINK_ERR_NOMEM, "%s: no memory", what);
    t->add_dummy_prefix = sp.add_dummy_prefix;
    t->remove_extra_ws  = sp.remove_extra_ws;
    t->escape_ws        = sp.escape_ws;
    t->byte_fallback    = sp.byte_fallback;
    if (!(st = sk_tok_vocab_init(t, n)) && !(st = spm_walk(data, size, what, t, &sp, &n)) &&
        !(st = sk_tok_vocab_index(t, 0))) {
        /* ids outside the vocabulary or of the wrong kind mean "none", as in sentencepiece */
        t->bos = sp.bos_id >= 0 && sp.bos_id < n && t->types[sp.bos_id] == SK_PIECE_CONTROL
                     ? (int32_t)sp.bos_id : -1;
        t->eos = sp.eos_id >= 0 && sp.eos_id < n && t->types[sp.eos_id] == SK_PIECE_CONTROL
                     ? (int32_t)sp.eos_id : -1;
        t->unk = sp.unk_id >= 0 && sp.unk_id < n && t->types[sp.unk_id] == SK_PIECE_UNKNOWN
                     ? (int32_t)sp.unk_id : -1;
        st = sk_tok_finish(t);
    }
    if (st) {
        shrink_tokenizer_free(t);
        return st;
    }
    *out = t;
    return SHRINK_OK;
}

/* ==== Hugging Face tokenizer.json (Llama type) ============================================= */

static int str_is(const char *s, const char *want) { return s && strcmp(s, want) == 0; }

/* Whether a normalizer / pre-tokenizer (or a Sequence of them) prepends "▁": Prepend("▁"), or
 * Metaspace with add_prefix_space / prepend_scheme "always" or "first". -1: says nothing. */
static int hf_prefix_of(const sk_json *j) {
    if (!j || j->type != SK_JSON_OBJECT) return -1;
    const char *type = sk_json_get_str(j, "type");
    if (str_is(type, "Sequence")) {
        const sk_json *list = sk_json_get(j, "normalizers");
        if (!list) list = sk_json_get(j, "pretokenizers");
        int r = -1;
        for (size_t i = 0; list && list->type == SK_JSON_ARRAY && i < list->len; i++) {
            int x = hf_prefix_of(&list->items[i]);
            if (x >= 0) r = x;
        }
        return r;
    }
    if (str_is(type, "Prepend")) return str_is(sk_json_get_str(j, "prepend"), "\xe2\x96\x81");
    if (str_is(type, "Metaspace")) {
        int         b;
        const char *scheme = sk_json_get_str(j, "prepend_scheme");
        if (scheme) return !str_is(scheme, "never");
        if (sk_json_get_bool(j, "add_prefix_space", &b)) return b;
        return 1;
    }
    return -1;
}

shrink_status sk_tok_hf_spm_from_json(const sk_json *root, const char *what,
                                      shrink_tokenizer **out) {
    *out                 = NULL;
    const sk_json *model = sk_json_get(root, "model");
    int            bf    = 0;
    sk_json_get_bool(model, "byte_fallback", &bf);
    shrink_tokenizer *t = sk_tok_new(SK_TOK_SPM, what);
    if (!t) return sk_error(SHRINK_ERR_NOMEM, "%s: no memory", what);
    int pre = hf_prefix_of(sk_json_get(root, "pre_tokenizer"));
    int nor = hf_prefix_of(sk_json_get(root, "normalizer"));
    t->add_dummy_prefix = nor > 0 || pre > 0;
    t->remove_extra_ws  = 0;
    t->byte_fallback    = bf;
    shrink_status st    = sk_tok_vocab_from_json(t, sk_json_get(model, "vocab"),
                                                 sk_json_get(root, "added_tokens"), what);
    if (!st) {
        for (int32_t i = 0; i < t->n_vocab; i++) {
            const char *s = sk_tok_piece_str(t, i);
            size_t      n = t->piece_len[i];
            if (t->types[i] == SK_PIECE_NORMAL && n == 6 && memcmp(s, "<0x", 3) == 0 &&
                s[5] == '>')
                t->types[i] = SK_PIECE_BYTE;
        }
        const char *unk = sk_json_get_str(model, "unk_token");
        t->unk = unk ? sk_tok_find(t, unk, strlen(unk)) : -1;
        if (t->unk >= 0) t->types[t->unk] = SK_PIECE_UNKNOWN;
        t->bos = sk_tok_find(t, "<s>", 3);
        t->eos = sk_tok_find(t, "</s>", 4);
        st     = sk_tok_merges_from_json(t, sk_json_get(model, "merges"), what);
    }
    if (!st) st = sk_tok_finish(t);
    if (st) {
        shrink_tokenizer_free(t);
        return st;
    }
    *out = t;
    return SHRINK_OK;
}

/* ==== encoding ============================================================================= */

/* sentencepiece's normalizer with the identity rule: optional removal of extra spaces, the
 * dummy "▁" prefix, spaces -> "▁". *out is malloc'd; *out_len may be 0. */
static shrink_status spm_normalize(const shrink_tokenizer *t, const char *s, size_t n,
                                   char **out, size_t *out_len) {
    const char *sp    = t->escape_ws ? "\xe2\x96\x81" : " ";
    size_t      sp_n  = t->escape_ws ? 3 : 1;
    size_t      begin = 0, end = n;
    if (t->remove_extra_ws) {
        while (begin < end && s[begin] == ' ') begin++;
        while (end > begin && s[end - 1] == ' ') end--;
    }
    *out     = NULL;
    *out_len = 0;
    char *o = sk_malloc((end - begin) * 3 + 4);
    if (!o) return sk_error(SHRINK_ERR_NOMEM, "out of memory encoding a text");
    size_t k = 0;
    if (begin < end && t->add_dummy_prefix) {
        memcpy(o, sp, sp_n);
        k = sp_n;
    }
    for (size_t i = begin; i < end; i++) {
        if (s[i] != ' ') {
            o[k++] = s[i];
            continue;
        }
        if (t->remove_extra_ws && i > begin && s[i - 1] == ' ') continue;
        memcpy(o + k, sp, sp_n);
        k += sp_n;
    }
    *out     = o;
    *out_len = k;
    return SHRINK_OK;
}

/* The initial symbol(s) of the character s[pos..pos+len). */
static shrink_status spm_add_char(const shrink_tokenizer *t, sk_bpe_work *w, const char *s,
                                  uint32_t pos, uint32_t len) {
    int32_t id = sk_tok_find(t, s + pos, len);
    if (id >= 0 || !t->use_ranks) return sk_bpe_sym_add(w, pos, len, id); /* -1: by string */
    /* rank mode (Hugging Face): an unknown character becomes its byte pieces at once */
    if (!t->byte_fallback) return sk_bpe_sym_add(w, pos, len, t->unk);
    for (uint32_t k = 0; k < len; k++) {
        shrink_status st = sk_bpe_sym_add(w, pos + k, 1, t->byte_ids[(unsigned char)s[pos + k]]);
        if (st) return st;
    }
    return SHRINK_OK;
}

shrink_status sk_tok_encode_spm(const shrink_tokenizer *t, const char *text, size_t len,
                                sk_ids *out) {
    char  *s = NULL;
    size_t n = 0;
    shrink_status st = spm_normalize(t, text, len, &s, &n);
    if (st) return st;
    sk_bpe_work *w = sk_bpe_work_new();
    if (!w) {
        sk_free(s);
        return sk_error(SHRINK_ERR_NOMEM, "out of memory encoding a text");
    }
    /* Cut between two characters no piece has side by side: no merge can join them, so the
     * chunks merge independently to the same result (see bigrams in tokenizer.h). By rank,
     * a character that is no piece starts as byte pieces; never cut next to one. */
    for (size_t i = 0; i < n && !st;) {
        size_t   a = i, l;
        uint32_t cp    = sk_utf8_get(s + i, n - i, &l);
        int      known = !t->use_ranks || sk_tok_find(t, s + i, l) >= 0;
        for (i += l; i < n; i += l) {
            uint32_t cp2    = sk_utf8_get(s + i, n - i, &l);
            int      known2 = !t->use_ranks || sk_tok_find(t, s + i, l) >= 0;
            if (!sk_tok_bigram(t, cp, cp2) && known && known2) break;
            cp    = cp2;
            known = known2;
        }
        int cached = sk_bpe_cached(w, s, a, i - a, out);
        if (cached < 0) st = sk_error(SHRINK_ERR_NOMEM, "out of memory encoding a text");
        if (cached) continue;
        for (size_t k = a; k < i && !st; k += l) {
            l  = sk_utf8_len(s + k, n - k);
            st = spm_add_char(t, w, s, (uint32_t)k, (uint32_t)l);
        }
        if (!st) st = sk_bpe_merge(t, w, s, out);
    }
    sk_bpe_work_free(w);
    sk_free(s);
    return st;
}

/* ==== from arrays (GGUF metadata) ========================================================== */

shrink_status sk_tok_load_spm_arrays(const sk_tok_arrays *a, const char *what,
                                     shrink_tokenizer **out) {
    *out = NULL;
    shrink_tokenizer *t = sk_tok_new(SK_TOK_SPM, what);
    if (!t) return sk_error(SHRINK_ERR_NOMEM, "%s: no memory", what);
    shrink_status st = sk_tok_vocab_init(t, a->n_vocab);
    for (int64_t i = 0; i < a->n_vocab && !st; i++) {
        int32_t ty = a->types ? a->types[i] : SK_PIECE_NORMAL;
        if (ty < SK_PIECE_NORMAL || ty > SK_PIECE_BYTE) ty = SK_PIECE_NORMAL;
        if (a->piece_lens[i] > UINT32_MAX) {
            st = sk_error(SHRINK_ERR_FORMAT, "%s: piece %" PRId64 " is too long", what, i);
            break;
        }
        st = sk_tok_vocab_set(t, (int32_t)i, a->pieces[i], (size_t)a->piece_lens[i],
                              a->scores ? a->scores[i] : 0.0f, (sk_piece_type)ty);
        if (!st && ty == SK_PIECE_UNKNOWN && t->unk < 0) t->unk = (int32_t)i;
    }
    if (!st) st = sk_tok_vocab_index(t, 0);
    if (!st) {
        if (a->bos >= 0) t->bos = a->bos;
        if (a->eos >= 0) t->eos = a->eos;
        if (a->unk >= 0) t->unk = a->unk;
        if (a->add_space_prefix >= 0) t->add_dummy_prefix = a->add_space_prefix;
        st = sk_tok_finish(t);
    }
    if (st) {
        shrink_tokenizer_free(t);
        return st;
    }
    *out = t;
    return SHRINK_OK;
}
