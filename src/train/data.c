/*
 * data.c - training data: token files (write, parse, map), text tokenized at open, the window
 * loader (random or sequential windows of T + 1 tokens) and the fixed validation windows.
 * The token file layout is in optim.h and docs/training.md. Token files are trusted no more
 * than model files: the header is read field by field, the count is checked against the
 * bytes present, and every token against the vocabulary size.
 */
#include "optim.h"

#include "../formats/formats.h"

/* ==== token files ========================================================================= */

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

shrink_status sk_tokfile_write(const char *path, const int32_t *ids, int64_t n,
                               int32_t vocab_size) {
    if (vocab_size <= 0 || n < 0)
        return sk_error(SHRINK_ERR_ARG, "%s: vocabulary size %d, %" PRId64 " tokens", path,
                        vocab_size, n);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab_size)
            return sk_error(SHRINK_ERR_RANGE, "%s: token %" PRId64 " is %d, not in [0, %d)",
                            path, i, ids[i], vocab_size);
    int     width = vocab_size <= 65536 ? 2 : 4;
    uint8_t h[SK_TOKFILE_HEADER] = {0};
    memcpy(h, SK_TOKFILE_MAGIC, 8);
    put_u32(h + 8, SK_TOKFILE_VERSION);
    put_u32(h + 12, (uint32_t)width);
    put_u32(h + 16, (uint32_t)vocab_size);
    put_u64(h + 24, (uint64_t)n);
    sk_out o;
    shrink_status st = sk_out_open(&o, path, NULL, 0);
    if (st) return st;
    if ((st = sk_out_write(&o, h, sizeof h))) return st;
    uint8_t buf[4096];
    size_t  fill = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int b = 0; b < width; b++) buf[fill++] = (uint8_t)(v >> (8 * b));
        if (fill == sizeof buf) {
            if ((st = sk_out_write(&o, buf, fill))) return st;
            fill = 0;
        }
    }
    if (fill && (st = sk_out_write(&o, buf, fill))) return st;
    return sk_out_commit(&o);
}

shrink_status sk_tokens_parse(const uint8_t *data, size_t len, const char *name,
                              sk_tokens *t) {
    memset(t, 0, sizeof *t);
    if (len < SK_TOKFILE_HEADER || memcmp(data, SK_TOKFILE_MAGIC, 8) != 0)
        return sk_error(SHRINK_ERR_FORMAT, "%s: not a token file (no %s header)", name,
                        SK_TOKFILE_MAGIC);
    uint32_t version = sk_rd_u32(data + 8);
    uint32_t width   = sk_rd_u32(data + 12);
    uint32_t vocab   = sk_rd_u32(data + 16);
    uint64_t count   = sk_rd_u64(data + 24);
    if (version != SK_TOKFILE_VERSION)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: token file version %" PRIu32 " (this "
                        "shrink reads %d)", name, version, SK_TOKFILE_VERSION);
    if (width != 2 && width != 4)
        return sk_error(SHRINK_ERR_FORMAT, "%s: token width %" PRIu32 " bytes, must be 2 or 4",
                        name, width);
    if (vocab == 0 || vocab > INT32_MAX || (width == 2 && vocab > 65536))
        return sk_error(SHRINK_ERR_FORMAT, "%s: vocabulary size %" PRIu32 " does not fit %"
                        PRIu32 "-byte tokens", name, vocab, width);
    if (count > (len - SK_TOKFILE_HEADER) / width || count * width != len - SK_TOKFILE_HEADER)
        return sk_error(SHRINK_ERR_FORMAT, "%s: header says %" PRIu64 " tokens of %" PRIu32
                        " bytes but %zu bytes follow it", name, count, width,
                        len - SK_TOKFILE_HEADER);
    t->n          = (int64_t)count;
    t->vocab_size = (int32_t)vocab;
    t->width      = (int)width;
    t->data       = data + SK_TOKFILE_HEADER;
    for (int64_t i = 0; i < t->n; i++) {
        int32_t id = sk_tokens_at(t, i);
        if (id < 0 || id >= t->vocab_size)   /* a 4-byte token >= 2^31 reads as negative */
            return sk_error(SHRINK_ERR_FORMAT, "%s: token %" PRId64 " is %d, past the "
                            "vocabulary size %d", name, i, id, t->vocab_size);
    }
    return SHRINK_OK;
}

/* Text at path, encoded with tok. */
static shrink_status tokens_from_text(sk_tokens *t, const char *path,
                                      const struct shrink_tokenizer *tok, bool add_bos) {
    if (!tok)
        return sk_error(SHRINK_ERR_ARG, "%s: not a token file, and the model has no tokenizer "
                        "to encode it as text", path);
    char  *text;
    size_t len;
    shrink_status st = sk_read_file(path, (size_t)1 << 31, &text, &len);
    if (st) return st;
    size_t n_ids = 0;
    st = shrink_tokenizer_encode(tok, text, len, add_bos, &t->ids, &n_ids);
    sk_free(text);
    if (st) return st;
    t->n          = (int64_t)n_ids;
    t->vocab_size = shrink_tokenizer_vocab_size(tok);
    return SHRINK_OK;
}

shrink_status sk_tokens_open(sk_tokens *t, const char *path, const struct shrink_tokenizer *tok,
                             bool add_bos, int32_t vocab_size) {
    memset(t, 0, sizeof *t);
    sk_map m;
    shrink_status st = sk_map_file(path, &m);
    if (st) return st;
    if (m.size >= 8 && !memcmp(m.data, SK_TOKFILE_MAGIC, 8)) {
        st = sk_tokens_parse(m.data, m.size, path, t);
        t->map = m;
        if (st) goto out_close;
    } else {
        sk_unmap(&m);
        if ((st = tokens_from_text(t, path, tok, add_bos))) goto out_close;
    }
    if (t->vocab_size > vocab_size) {
        /* the header's vocabulary may be larger than the model's: check the tokens */
        for (int64_t i = 0; i < t->n; i++)
            if (sk_tokens_at(t, i) >= vocab_size) {
                st = sk_error(SHRINK_ERR_RANGE, "%s: token %" PRId64 " is %d, past the model's "
                              "vocabulary size %d", path, i, sk_tokens_at(t, i), vocab_size);
                goto out_close;
            }
    }
    return SHRINK_OK;
out_close:
    sk_tokens_close(t);
    return st;
}

void sk_tokens_close(sk_tokens *t) {
    if (!t) return;
    sk_unmap(&t->map);
    sk_free(t->ids);
    memset(t, 0, sizeof *t);
}

/* ==== windows ============================================================================= */

shrink_status sk_loader_init(sk_loader *l, const sk_tokens *tok, int32_t T, bool sequential,
                             uint64_t seed, const char *what) {
    memset(l, 0, sizeof *l);
    if (T < 1 || tok->n < (int64_t)T + 1)
        return sk_error(SHRINK_ERR_ARG, "%s: %" PRId64 " tokens, a window of context %d needs "
                        "%d", what, tok->n, T, T + 1);
    l->tok        = tok;
    l->T          = T;
    l->sequential = sequential;
    l->rng        = seed;
    return SHRINK_OK;
}

void sk_loader_next(sk_loader *l, int32_t B, int32_t *out) {
    int64_t n = l->tok->n, T = l->T;
    for (int32_t b = 0; b < B; b++) {
        int64_t start;
        if (l->sequential) {
            if (l->pos + T + 1 > n) l->pos = 0;
            start = l->pos;
            l->pos += T;
        } else if (l->aligned) { /* a multiple of T: one of the (n - 1) / T cached windows */
            start = T * (int64_t)(sk_rng_next(&l->rng) % (uint64_t)((n - 1) / T));
        } else {
            /* uniform in [0, n - T - 1]; the modulo bias is below 2^-40 for any real file */
            start = (int64_t)(sk_rng_next(&l->rng) % (uint64_t)(n - T));
        }
        if (l->starts) l->starts[b] = start;
        for (int64_t i = 0; i <= T; i++) out[b * (T + 1) + i] = sk_tokens_at(l->tok, start + i);
    }
}

int64_t sk_valid_windows(const sk_tokens *tok, int32_t T, int64_t max_windows) {
    if (T < 1 || tok->n < (int64_t)T + 1) return 0;
    int64_t w = (tok->n - 1) / T;
    return w < max_windows ? w : max_windows;
}
