/*
 * tokenizer.c - the piece table, hash maps, BPE merge engine, loader dispatch and the public
 * tokenizer API. The two tokenizer families live in tok_spm.c (sentencepiece BPE) and
 * tok_bpe.c (GPT-2 byte-level BPE); tokenizer.h describes the shared structure.
 *
 * The merge engine follows sentencepiece's bpe_model.cc and Hugging Face tokenizers' BPE
 * word merge: symbols form a doubly linked list over the text; every adjacent pair that can
 * merge sits in a max-heap keyed by (piece score | -merge rank, leftmost first); popping a
 * pair that is still current merges it and pushes the two new neighbour pairs. Stale heap
 * entries are recognised by the lengths of the two symbols they were made for. This equals
 * llama2.c's encode() (repeatedly merge the best-scoring pair, leftmost on ties) in
 * O(n log n) instead of O(n^2).
 */
#include "tokenizer.h"

#include "../core/json.h"

/* ==== piece table ========================================================================== */

shrink_tokenizer *sk_tok_new(sk_tok_kind kind, const char *what) {
    shrink_tokenizer *t = sk_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->kind = kind;
    t->what = sk_strdup(what ? what : "tokenizer");
    if (!t->what) {
        sk_free(t);
        return NULL;
    }
    t->bos = t->eos = t->unk = -1;
    for (int b = 0; b < 256; b++) t->byte_ids[b] = -1;
    t->add_dummy_prefix = 1;
    t->escape_ws        = 1;
    t->byte_fallback    = 1;
    return t;
}

void shrink_tokenizer_free(shrink_tokenizer *t) {
    if (!t) return;
    sk_free(t->what);
    sk_free(t->blob);
    sk_free(t->piece_off);
    sk_free(t->piece_len);
    sk_free(t->scores);
    sk_free(t->types);
    sk_free(t->is_set);
    sk_free(t->dec_blob);
    sk_free(t->dec_off);
    sk_free(t->dec_len);
    sk_free(t->pieces.slots);
    sk_free(t->merges.slots);
    sk_free(t->bigrams);
    sk_free(t);
}

shrink_status sk_tok_vocab_init(shrink_tokenizer *t, int64_t n_vocab) {
    if (n_vocab <= 0 || n_vocab > SK_TOK_MAX_VOCAB)
        return sk_error(SHRINK_ERR_FORMAT, "%s: vocabulary size %" PRId64 " not in [1, %d]",
                        t->what, n_vocab, SK_TOK_MAX_VOCAB);
    size_t n = (size_t)n_vocab;
    t->n_vocab   = (int32_t)n_vocab;
    t->piece_off = sk_calloc(n, sizeof *t->piece_off);
    t->piece_len = sk_calloc(n, sizeof *t->piece_len);
    t->scores    = sk_calloc(n, sizeof *t->scores);
    t->types     = sk_calloc(n, sizeof *t->types);
    t->is_set    = sk_calloc(n, 1);
    if (!t->piece_off || !t->piece_len || !t->scores || !t->types || !t->is_set)
        return sk_error(SHRINK_ERR_NOMEM, "%s: no memory for %zu pieces", t->what, n);
    return SHRINK_OK;
}

static shrink_status blob_append(shrink_tokenizer *t, const char *s, size_t len, uint32_t *off) {
    size_t need = t->blob_len + len + 1;
    if (need > UINT32_MAX)
        return sk_error(SHRINK_ERR_FORMAT, "%s: pieces exceed 4 GiB", t->what);
    if (need > t->blob_cap) {
        size_t cap = t->blob_cap ? t->blob_cap : 4096;
        while (cap < need) cap *= 2;
        char *nb = sk_realloc(t->blob, cap);
        if (!nb) return sk_error(SHRINK_ERR_NOMEM, "%s: no memory for pieces", t->what);
        t->blob     = nb;
        t->blob_cap = cap;
    }
    *off = (uint32_t)t->blob_len;
    if (len) memcpy(t->blob + t->blob_len, s, len);
    t->blob[t->blob_len + len] = '\0';
    t->blob_len = need;
    return SHRINK_OK;
}

shrink_status sk_tok_vocab_set(shrink_tokenizer *t, int32_t id, const char *s, size_t len,
                               float score, sk_piece_type type) {
    if (id < 0 || id >= t->n_vocab)
        return sk_error(SHRINK_ERR_FORMAT, "%s: piece id %" PRId32 " not in [0, %" PRId32 ")",
                        t->what, id, t->n_vocab);
    if (t->is_set[id])
        return sk_error(SHRINK_ERR_FORMAT, "%s: piece id %" PRId32 " given twice", t->what, id);
    shrink_status st = blob_append(t, s, len, &t->piece_off[id]);
    if (st) return st;
    t->piece_len[id] = (uint32_t)len;
    t->scores[id]    = score;
    t->types[id]     = (uint8_t)type;
    t->is_set[id]    = 1;
    return SHRINK_OK;
}

/* ---- piece string -> id ---------------------------------------------------------------- */

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h ^ (h >> 15);
}

static uint32_t pow2_at_least(size_t n) {
    uint32_t c = 16;
    while (c < n) c *= 2;
    return c;
}

shrink_status sk_tok_vocab_index(shrink_tokenizer *t, int allow_gaps) {
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (t->is_set[i]) continue;
        if (!allow_gaps)
            return sk_error(SHRINK_ERR_FORMAT, "%s: no piece for id %" PRId32, t->what, i);
        shrink_status st = sk_tok_vocab_set(t, i, "", 0, 0.0f, SK_PIECE_UNUSED);
        if (st) return st;
    }
    uint32_t cap = pow2_at_least((size_t)t->n_vocab * 2);
    t->pieces.cap   = cap;
    t->pieces.slots = sk_malloc((size_t)cap * sizeof *t->pieces.slots);
    if (!t->pieces.slots) return sk_error(SHRINK_ERR_NOMEM, "%s: no memory for piece map", t->what);
    for (uint32_t h = 0; h < cap; h++) t->pieces.slots[h].id = -1;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        const char *s = sk_tok_piece_str(t, i);
        size_t      n = t->piece_len[i];
        if (n == 0) continue; /* empty pieces (gaps) are never looked up */
        uint32_t hash = hash_bytes(s, n), h = hash & (cap - 1);
        for (;;) {
            sk_strmap_slot *slot = &t->pieces.slots[h];
            if (slot->id < 0) {
                slot->id   = i;
                slot->hash = hash;
                break;
            }
            if (slot->hash == hash && t->piece_len[slot->id] == n &&
                memcmp(sk_tok_piece_str(t, slot->id), s, n) == 0)
                break; /* a repeated piece keeps its first id */
            h = (h + 1) & (cap - 1);
        }
    }
    return SHRINK_OK;
}

int32_t sk_tok_find(const shrink_tokenizer *t, const char *s, size_t len) {
    if (!t->pieces.cap || len == 0) return -1;
    uint32_t mask = t->pieces.cap - 1;
    uint32_t hash = hash_bytes(s, len), h = hash & mask;
    for (;;) {
        const sk_strmap_slot *slot = &t->pieces.slots[h];
        int32_t               j    = slot->id;
        if (j < 0) return -1;
        if (slot->hash == hash && t->piece_len[j] == len &&
            memcmp(t->blob + t->piece_off[j], s, len) == 0)
            return j;
        h = (h + 1) & mask;
    }
}

/* ---- (left, right) -> merge ------------------------------------------------------------ */

static uint32_t hash_pair(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k;
}

shrink_status sk_tok_merges_init(shrink_tokenizer *t, size_t n) {
    if (n >= (1u << 24)) /* ranks become heap keys in a float: exact below 2^24 */
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: %zu merges, at most %u supported", t->what,
                        n, (1u << 24) - 1);
    uint32_t cap = pow2_at_least(n * 2 + 1);
    t->merges.slots = sk_malloc((size_t)cap * sizeof *t->merges.slots);
    if (!t->merges.slots) return sk_error(SHRINK_ERR_NOMEM, "%s: no memory for merges", t->what);
    for (uint32_t i = 0; i < cap; i++) t->merges.slots[i].key = UINT64_MAX;
    t->merges.cap   = cap;
    t->merges.count = 0;
    t->use_ranks    = 1;
    return SHRINK_OK;
}

static const sk_pairmap_slot *pair_find(const sk_pairmap *m, int32_t a, int32_t b) {
    if (!m->cap) return NULL;
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint32_t h   = hash_pair(key) & (m->cap - 1);
    for (;;) {
        const sk_pairmap_slot *s = &m->slots[h];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
        h = (h + 1) & (m->cap - 1);
    }
}

shrink_status sk_tok_merge_add(shrink_tokenizer *t, const char *a, size_t a_len, const char *b,
                               size_t b_len, int32_t rank) {
    int32_t ia = sk_tok_find(t, a, a_len);
    int32_t ib = sk_tok_find(t, b, b_len);
    if (ia < 0 || ib < 0)
        return sk_error(SHRINK_ERR_FORMAT, "%s: merge %" PRId32 " (\"%.*s\" \"%.*s\") uses a "
                        "piece not in the vocabulary", t->what, rank, (int)(a_len > 64 ? 64 : a_len),
                        a, (int)(b_len > 64 ? 64 : b_len), b);
    char   small[256];
    size_t n  = a_len + b_len;
    char  *ab = n <= sizeof small ? small : sk_malloc(n);
    if (!ab) return sk_error(SHRINK_ERR_NOMEM, "%s: no memory", t->what);
    memcpy(ab, a, a_len);
    memcpy(ab + a_len, b, b_len);
    int32_t id = sk_tok_find(t, ab, n);
    if (ab != small) sk_free(ab);
    if (id < 0)
        return sk_error(SHRINK_ERR_FORMAT, "%s: merge %" PRId32 ": \"%.*s%.*s\" is not in the "
                        "vocabulary", t->what, rank, (int)(a_len > 64 ? 64 : a_len), a,
                        (int)(b_len > 64 ? 64 : b_len), b);
    sk_pairmap *m = &t->merges;
    SHRINK_ASSERT(m->cap && m->count < m->cap / 2);
    uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
    uint32_t h   = hash_pair(key) & (m->cap - 1);
    while (m->slots[h].key != UINT64_MAX) {
        if (m->slots[h].key == key) return SHRINK_OK; /* repeated pair: first rank wins */
        h = (h + 1) & (m->cap - 1);
    }
    m->slots[h].key  = key;
    m->slots[h].rank = rank;
    m->slots[h].id   = id;
    m->count++;
    return SHRINK_OK;
}

/* ==== finishing ============================================================================ */

static int is_mergeable(const shrink_tokenizer *t, int32_t id) {
    return t->types[id] == SK_PIECE_NORMAL || t->types[id] == SK_PIECE_USER;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The byte of a "<0xNN>" piece, or -1. */
static int byte_piece_value(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* "▁" (U+2581) in UTF-8. */
static const char SPM_SPACE[] = "\xe2\x96\x81";

/* Decoded form of a SPM piece: "▁" -> " ", byte pieces -> their byte, control -> nothing,
 * unknown -> " ⁇ " (sentencepiece's unk surface). Writes to out (room for len bytes + 3). */
static size_t spm_decoded(const shrink_tokenizer *t, int32_t id, char *out) {
    const char *s = sk_tok_piece_str(t, id);
    size_t      n = t->piece_len[id], o = 0;
    switch (t->types[id]) {
    case SK_PIECE_CONTROL: return 0;
    case SK_PIECE_UNKNOWN: memcpy(out, " \xe2\x81\x87 ", 5); return 5;
    case SK_PIECE_BYTE: {
        int v = byte_piece_value(s, n);
        if (v >= 0) {
            out[0] = (char)v;
            return 1;
        }
        break;
    }
    default: break;
    }
    for (size_t i = 0; i < n;) {
        if (i + 3 <= n && memcmp(s + i, SPM_SPACE, 3) == 0) {
            out[o++] = ' ';
            i += 3;
        } else {
            out[o++] = s[i++];
        }
    }
    return o;
}

SK_HIDDEN size_t sk_gpt2_unmap(const char *s, size_t n, char *out); /* tok_bpe.c */

static shrink_status build_decoded(shrink_tokenizer *t) {
    size_t V = (size_t)t->n_vocab, total = 0;
    for (size_t i = 0; i < V; i++) total += t->piece_len[i] + 5;
    t->dec_blob = sk_malloc(total);
    t->dec_off  = sk_calloc(V, sizeof *t->dec_off);
    t->dec_len  = sk_calloc(V, sizeof *t->dec_len);
    if (!t->dec_blob || !t->dec_off || !t->dec_len)
        return sk_error(SHRINK_ERR_NOMEM, "%s: no memory for decoded pieces", t->what);
    size_t o = 0;
    for (size_t i = 0; i < V; i++) {
        size_t n;
        if (t->kind == SK_TOK_GPT2)
            n = sk_gpt2_unmap(sk_tok_piece_str(t, (int32_t)i), t->piece_len[i], t->dec_blob + o);
        else
            n = spm_decoded(t, (int32_t)i, t->dec_blob + o);
        t->dec_off[i] = (uint32_t)o;
        t->dec_len[i] = (uint32_t)n;
        o += n;
    }
    return SHRINK_OK;
}

/* ---- bigrams ---------------------------------------------------------------------------- */

static void bigram_insert(shrink_tokenizer *t, uint64_t key) {
    uint32_t mask = t->bigram_cap - 1, h = hash_pair(key) & mask;
    while (t->bigrams[h] != UINT64_MAX) {
        if (t->bigrams[h] == key) return;
        h = (h + 1) & mask;
    }
    t->bigrams[h] = key;
}

int sk_tok_bigram(const shrink_tokenizer *t, uint32_t a, uint32_t b) {
    uint64_t key  = (uint64_t)a << 32 | b;
    uint32_t mask = t->bigram_cap - 1, h = hash_pair(key) & mask;
    for (;;) {
        uint64_t k = t->bigrams[h];
        if (k == key) return 1;
        if (k == UINT64_MAX) return 0;
        h = (h + 1) & mask;
    }
}

/* Whether piece id can be the result of a merge: by score, a normal or user-defined piece;
 * by rank, the result of some merge rule. */
static void mark_merge_results(const shrink_tokenizer *t, uint8_t *res) {
    if (!t->use_ranks) {
        for (int32_t i = 0; i < t->n_vocab; i++) res[i] = is_mergeable(t, i);
        return;
    }
    for (uint32_t i = 0; i < t->merges.cap; i++)
        if (t->merges.slots[i].key != UINT64_MAX) res[t->merges.slots[i].id] = 1;
}

static shrink_status find_bigrams(shrink_tokenizer *t) {
    uint8_t *res = sk_calloc((size_t)t->n_vocab, 1);
    if (!res) return sk_error(SHRINK_ERR_NOMEM, "%s: no memory", t->what);
    mark_merge_results(t, res);
    size_t total = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (res[i]) total += t->piece_len[i];
    t->bigram_cap = pow2_at_least(total * 2 + 1);
    t->bigrams    = sk_malloc((size_t)t->bigram_cap * sizeof *t->bigrams);
    if (!t->bigrams) {
        sk_free(res);
        return sk_error(SHRINK_ERR_NOMEM, "%s: no memory for %u bigrams", t->what, t->bigram_cap);
    }
    memset(t->bigrams, 0xff, (size_t)t->bigram_cap * sizeof *t->bigrams);
    for (int32_t i = 0; i < t->n_vocab; i++) {
        const char *s = sk_tok_piece_str(t, i);
        size_t      n = t->piece_len[i], l, bad;
        /* a piece that is not valid UTF-8 never equals a span of (valid) text */
        if (!res[i] || n < 2 || !sk_utf8_valid(s, n, &bad)) continue;
        uint32_t prev = sk_utf8_get(s, n, &l);
        for (size_t k = l; k < n; k += l) {
            uint32_t cp = sk_utf8_get(s + k, n - k, &l);
            bigram_insert(t, (uint64_t)prev << 32 | cp);
            prev = cp;
        }
    }
    sk_free(res);
    return SHRINK_OK;
}

static shrink_status check_special(shrink_tokenizer *t, int32_t *id, const char *name) {
    if (*id >= t->n_vocab)
        return sk_error(SHRINK_ERR_FORMAT, "%s: %s id %" PRId32 " not in [0, %" PRId32 ")",
                        t->what, name, *id, t->n_vocab);
    if (*id < 0) *id = -1;
    return SHRINK_OK;
}

shrink_status sk_tok_finish(shrink_tokenizer *t) {
    shrink_status st;
    if ((st = check_special(t, &t->bos, "BOS")) || (st = check_special(t, &t->eos, "EOS")) ||
        (st = check_special(t, &t->unk, "unk")))
        return st;
    if (t->kind == SK_TOK_SPM) {
        for (int32_t i = 0; i < t->n_vocab; i++) {
            if (t->types[i] != SK_PIECE_BYTE) continue;
            int v = byte_piece_value(sk_tok_piece_str(t, i), t->piece_len[i]);
            if (v < 0)
                return sk_error(SHRINK_ERR_FORMAT, "%s: byte piece %" PRId32 " is \"%.16s\", "
                                "not <0xNN>", t->what, i, sk_tok_piece_str(t, i));
            if (t->byte_ids[v] < 0) t->byte_ids[v] = i;
        }
    } else {
        for (int b = 0; b < 256; b++)
            if (t->byte_ids[b] < 0)
                return sk_error(SHRINK_ERR_FORMAT, "%s: no piece for byte 0x%02X (a byte-level "
                                "vocabulary needs all 256)", t->what, b);
    }
    if ((st = build_decoded(t))) return st;
    if (t->kind == SK_TOK_SPM && (st = find_bigrams(t))) return st;
    sk_free(t->is_set);
    t->is_set = NULL;
    return SHRINK_OK;
}

/* ==== merge engine ========================================================================= */

typedef struct bpe_sym {
    int32_t  prev, next; /* neighbours in the segment, -1 at the ends */
    uint32_t start;      /* byte offset in the text */
    uint32_t len;        /* bytes; 0 once merged into its left neighbour */
    int32_t  id;         /* piece id, -1 if the bytes are no piece */
} bpe_sym;

typedef struct bpe_cand {
    float    key;   /* score, or -rank: higher pops first */
    int32_t  id;    /* the merged piece */
    int32_t  left;  /* left symbol; ties pop the leftmost first */
    uint32_t len_l; /* lengths when pushed: a mismatch later means the entry is stale */
    uint32_t len_r;
} bpe_cand;

/* A segment already merged in this call: text[off..off+len) gave ids arena[ids..ids+n). */
typedef struct bpe_cached {
    uint32_t hash;
    uint32_t off, len; /* 0 len = empty slot */
    uint32_t ids, n;
} bpe_cached;

#define BPE_CACHE_SLOTS   (1u << 15)
#define BPE_CACHE_MAX_LEN 64 /* longer segments are rare and not worth keeping */

struct sk_bpe_work {
    bpe_sym    *sym;
    size_t      n, cap;
    bpe_cand   *heap;
    size_t      hn, hcap;
    bpe_cached *cache;   /* (BPE_CACHE_SLOTS) or NULL; words repeat, merging them again does
                            not pay */
    uint32_t    cache_used;
    sk_ids      arena;   /* the cached ids */
};

sk_bpe_work *sk_bpe_work_new(void) {
    sk_bpe_work *w = sk_calloc(1, sizeof(sk_bpe_work));
    if (w) w->cache = sk_calloc(BPE_CACHE_SLOTS, sizeof *w->cache); /* NULL: no caching */
    return w;
}

void sk_bpe_work_free(sk_bpe_work *w) {
    if (!w) return;
    sk_free(w->sym);
    sk_free(w->heap);
    sk_free(w->cache);
    sk_free(w->arena.v);
    sk_free(w);
}

/* The slot of segment text[off..off+len): the one holding it, or the empty one for it. */
static bpe_cached *cache_slot(sk_bpe_work *w, const char *text, uint32_t off, uint32_t len,
                              uint32_t hash) {
    uint32_t h = hash & (BPE_CACHE_SLOTS - 1);
    for (;;) {
        bpe_cached *c = &w->cache[h];
        if (c->len == 0) return c;
        if (c->hash == hash && c->len == len && memcmp(text + c->off, text + off, len) == 0)
            return c;
        h = (h + 1) & (BPE_CACHE_SLOTS - 1);
    }
}

int sk_bpe_cached(sk_bpe_work *w, const char *text, size_t off, size_t len, sk_ids *out) {
    if (!w->cache || len < 2 || len > BPE_CACHE_MAX_LEN) return 0;
    bpe_cached *c = cache_slot(w, text, (uint32_t)off, (uint32_t)len,
                               hash_bytes(text + off, len));
    if (c->len == 0) return 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (sk_ids_push(out, w->arena.v[c->ids + i])) return -1;
    return 1;
}

/* Remembers that segment text[off..off+len) gave out->v[from..out->n). */
static void cache_put(sk_bpe_work *w, const char *text, uint32_t off, uint32_t len,
                      const sk_ids *out, size_t from) {
    if (!w->cache || len < 2 || len > BPE_CACHE_MAX_LEN ||
        w->cache_used >= BPE_CACHE_SLOTS / 4 * 3)
        return;
    bpe_cached *c = cache_slot(w, text, off, len, hash_bytes(text + off, len));
    if (c->len) return;
    size_t ids = w->arena.n;
    for (size_t i = from; i < out->n; i++)
        if (sk_ids_push(&w->arena, out->v[i])) return; /* no memory: just do not cache */
    c->hash = hash_bytes(text + off, len);
    c->off  = off;
    c->len  = len;
    c->ids  = (uint32_t)ids;
    c->n    = (uint32_t)(out->n - from);
    w->cache_used++;
}

shrink_status sk_ids_push(sk_ids *a, int32_t id) {
    if (a->n == a->cap) {
        size_t   cap = a->cap ? a->cap * 2 : 256;
        int32_t *v   = sk_realloc(a->v, cap * sizeof *v);
        if (!v) return sk_error(SHRINK_ERR_NOMEM, "tokenizer: no memory for %zu ids", cap);
        a->v   = v;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return SHRINK_OK;
}

shrink_status sk_bpe_sym_add(sk_bpe_work *w, uint32_t start, uint32_t len, int32_t id) {
    if (w->n == w->cap) {
        size_t   cap = w->cap ? w->cap * 2 : 256;
        bpe_sym *s   = sk_realloc(w->sym, cap * sizeof *s);
        if (!s) return sk_error(SHRINK_ERR_NOMEM, "tokenizer: no memory for %zu symbols", cap);
        w->sym = s;
        w->cap = cap;
    }
    bpe_sym *s = &w->sym[w->n];
    s->prev    = (int32_t)w->n - 1;
    s->next    = -1;
    s->start   = start;
    s->len     = len;
    s->id      = id;
    if (w->n) w->sym[w->n - 1].next = (int32_t)w->n;
    w->n++;
    return SHRINK_OK;
}

static int cand_before(const bpe_cand *a, const bpe_cand *b) {
    return a->key > b->key || (a->key == b->key && a->left < b->left);
}

static shrink_status heap_push(sk_bpe_work *w, bpe_cand c) {
    if (w->hn == w->hcap) {
        size_t    cap = w->hcap ? w->hcap * 2 : 256;
        bpe_cand *h   = sk_realloc(w->heap, cap * sizeof *h);
        if (!h) return sk_error(SHRINK_ERR_NOMEM, "tokenizer: no memory for the merge heap");
        w->heap = h;
        w->hcap = cap;
    }
    size_t i = w->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_before(&c, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i          = p;
    }
    w->heap[i] = c;
    return SHRINK_OK;
}

static bpe_cand heap_pop(sk_bpe_work *w) {
    bpe_cand top  = w->heap[0];
    bpe_cand last = w->heap[--w->hn];
    size_t   i = 0, n = w->hn;
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        const bpe_cand *bc = &last;
        if (l < n && cand_before(&w->heap[l], bc)) best = l, bc = &w->heap[l];
        if (l + 1 < n && cand_before(&w->heap[l + 1], bc)) best = l + 1;
        if (best == i) break;
        w->heap[i] = w->heap[best];
        i          = best;
    }
    if (n) w->heap[i] = last;
    return top;
}

/* The piece symbols l and its right neighbour r would merge into: its id (or -1) and key. */
static int32_t merge_of(const shrink_tokenizer *t, const sk_bpe_work *w, const char *text,
                        int32_t l, int32_t r, float *key) {
    const bpe_sym *a = &w->sym[l], *b = &w->sym[r];
    if (t->use_ranks) {
        if (a->id < 0 || b->id < 0) return -1;
        const sk_pairmap_slot *m = pair_find(&t->merges, a->id, b->id);
        if (!m) return -1;
        *key = -(float)m->rank;
        return m->id;
    }
    int32_t id = sk_tok_find(t, text + a->start, (size_t)a->len + b->len);
    if (id < 0 || !is_mergeable(t, id)) return -1;
    *key = t->scores[id];
    return id;
}

static shrink_status push_pair(const shrink_tokenizer *t, sk_bpe_work *w, const char *text,
                               int32_t l) {
    if (l < 0) return SHRINK_OK;
    int32_t r = w->sym[l].next;
    float   key;
    int32_t id;
    if (r < 0 || (id = merge_of(t, w, text, l, r, &key)) < 0) return SHRINK_OK;
    bpe_cand c = {key, id, l, w->sym[l].len, w->sym[r].len};
    return heap_push(w, c);
}

static shrink_status emit_symbol(const shrink_tokenizer *t, const bpe_sym *s, const char *text,
                                 sk_ids *out) {
    if (s->id >= 0) return sk_ids_push(out, s->id);
    if (!t->byte_fallback) return sk_ids_push(out, t->unk >= 0 ? t->unk : 0);
    for (uint32_t k = 0; k < s->len; k++) {
        int32_t b  = t->byte_ids[(unsigned char)text[s->start + k]];
        int32_t id = b >= 0 ? b : (t->unk >= 0 ? t->unk : 0);
        shrink_status st = sk_ids_push(out, id);
        if (st) return st;
    }
    return SHRINK_OK;
}

shrink_status sk_bpe_merge(const shrink_tokenizer *t, sk_bpe_work *w, const char *text,
                           sk_ids *out) {
    shrink_status st   = SHRINK_OK;
    size_t        from = out->n;
    uint32_t      off  = w->n ? w->sym[0].start : 0; /* the segment, before merging */
    uint32_t      len  = w->n ? w->sym[w->n - 1].start + w->sym[w->n - 1].len - off : 0;
    w->hn = 0;
    for (size_t i = 0; i + 1 < w->n && !st; i++) st = push_pair(t, w, text, (int32_t)i);
    while (w->hn && !st) {
        bpe_cand c = heap_pop(w);
        bpe_sym *a = &w->sym[c.left];
        if (a->len != c.len_l || a->next < 0) continue;
        bpe_sym *b = &w->sym[a->next];
        if (b->len != c.len_r) continue;
        a->id   = c.id; /* same symbols, same lengths: the same merge as when pushed */
        a->len += b->len;
        a->next = b->next;
        if (b->next >= 0) w->sym[b->next].prev = c.left;
        b->len = 0;
        st     = push_pair(t, w, text, a->prev);
        if (!st) st = push_pair(t, w, text, c.left);
    }
    for (int32_t i = w->n ? 0 : -1; i >= 0 && !st; i = w->sym[i].next)
        st = emit_symbol(t, &w->sym[i], text, out);
    if (!st) cache_put(w, text, off, len, out, from);
    w->n = 0;
    return st;
}

/* ==== Hugging Face JSON ==================================================================== */

/* Most ids a JSON vocabulary may leave unused (they become empty UNUSED pieces). */
#define SK_TOK_MAX_GAPS (1 << 16)

static shrink_status json_id(const sk_json *v, const char *what, const char *key, int32_t *id) {
    if (!v || v->type != SK_JSON_NUMBER || !v->is_int || v->integer < 0 ||
        v->integer >= SK_TOK_MAX_VOCAB)
        return sk_error(SHRINK_ERR_FORMAT, "%s: id of \"%.64s\" is not an integer in [0, %d)",
                        what, key, SK_TOK_MAX_VOCAB);
    *id = (int32_t)v->integer;
    return SHRINK_OK;
}

shrink_status sk_tok_vocab_from_json(shrink_tokenizer *t, const sk_json *vocab,
                                     const sk_json *added, const char *what) {
    if (!vocab || vocab->type != SK_JSON_OBJECT)
        return sk_error(SHRINK_ERR_FORMAT, "%s: no vocabulary object", what);
    if (added && added->type != SK_JSON_ARRAY) added = NULL;
    int32_t       id = 0, max_id = -1;
    shrink_status st;
    for (size_t i = 0; i < vocab->len; i++) {
        if ((st = json_id(&vocab->items[i], what, vocab->keys[i], &id))) return st;
        if (id > max_id) max_id = id;
    }
    for (size_t i = 0; added && i < added->len; i++) {
        const sk_json *a = &added->items[i];
        const char    *c = sk_json_get_str(a, "content");
        if (!c)
            return sk_error(SHRINK_ERR_FORMAT, "%s: added_tokens[%zu] has no content", what, i);
        if ((st = json_id(sk_json_get(a, "id"), what, c, &id))) return st;
        if (id > max_id) max_id = id;
    }
    /* The table has max_id + 1 rows whatever the number of pieces: one piece with id 2^24 - 1
     * would make a 100-byte file allocate ~1 GB. Ids may leave gaps, but only a few. */
    size_t n_given = vocab->len + (added ? added->len : 0);
    if ((uint64_t)max_id >= (uint64_t)n_given + SK_TOK_MAX_GAPS)
        return sk_error(SHRINK_ERR_FORMAT, "%s: ids go up to %" PRId32 " but only %zu pieces are "
                        "given (more than %d ids missing)", what, max_id, n_given,
                        SK_TOK_MAX_GAPS);
    if ((st = sk_tok_vocab_init(t, (int64_t)max_id + 1))) return st;
    for (size_t i = 0; i < vocab->len; i++) {
        id = (int32_t)vocab->items[i].integer;
        if ((st = sk_tok_vocab_set(t, id, vocab->keys[i], vocab->key_lens[i], 0.0f,
                                   SK_PIECE_NORMAL)))
            return st;
    }
    for (size_t i = 0; added && i < added->len; i++) {
        const sk_json *a       = &added->items[i];
        const sk_json *content = sk_json_get(a, "content");
        int            special = 0;
        sk_json_get_bool(a, "special", &special);
        id = (int32_t)sk_json_get(a, "id")->integer;
        if (!t->is_set[id] &&
            (st = sk_tok_vocab_set(t, id, content->str, content->len, 0.0f, SK_PIECE_NORMAL)))
            return st;
        if (special) t->types[id] = SK_PIECE_CONTROL;
        else if (t->types[id] == SK_PIECE_NORMAL) t->types[id] = SK_PIECE_USER;
    }
    return sk_tok_vocab_index(t, 1);
}

shrink_status sk_tok_merges_from_json(shrink_tokenizer *t, const sk_json *merges,
                                      const char *what) {
    if (!merges || merges->type != SK_JSON_ARRAY)
        return sk_error(SHRINK_ERR_FORMAT, "%s: model.merges is not an array", what);
    shrink_status st = sk_tok_merges_init(t, merges->len);
    for (size_t i = 0; i < merges->len && !st; i++) {
        const sk_json *m = &merges->items[i];
        const char    *a = NULL, *b = NULL;
        size_t         an = 0, bn = 0;
        if (m->type == SK_JSON_STRING) { /* "a b" */
            const char *sp = memchr(m->str, ' ', m->len);
            if (sp) {
                a = m->str, an = (size_t)(sp - m->str);
                b = sp + 1, bn = m->len - an - 1;
            }
        } else if (m->type == SK_JSON_ARRAY && m->len == 2 &&
                   m->items[0].type == SK_JSON_STRING && m->items[1].type == SK_JSON_STRING) {
            a = m->items[0].str, an = m->items[0].len;
            b = m->items[1].str, bn = m->items[1].len;
        }
        if (!a || !an || !bn || memchr(b, ' ', bn) != NULL)
            return sk_error(SHRINK_ERR_FORMAT, "%s: merges[%zu] is not \"a b\" or [\"a\", \"b\"]",
                            what, i);
        st = sk_tok_merge_add(t, a, an, b, bn, (int32_t)i);
    }
    return st;
}

static int json_has_type(const sk_json *j, const char *type) {
    if (!j) return 0;
    if (j->type == SK_JSON_ARRAY) {
        for (size_t i = 0; i < j->len; i++)
            if (json_has_type(&j->items[i], type)) return 1;
        return 0;
    }
    if (j->type != SK_JSON_OBJECT) return 0;
    const char *ty = sk_json_get_str(j, "type");
    if (ty && strcmp(ty, type) == 0) return 1;
    return json_has_type(sk_json_get(j, "normalizers"), type) ||
           json_has_type(sk_json_get(j, "pretokenizers"), type) ||
           json_has_type(sk_json_get(j, "decoders"), type);
}

shrink_status sk_tok_load_hf_json_mem(const char *text, size_t len, const char *what,
                                      shrink_tokenizer **out) {
    *out          = NULL;
    sk_json      *root = NULL;
    shrink_status st   = sk_json_parse(text, len, what, &root);
    if (st) return st;
    const sk_json *model = sk_json_get(root, "model");
    const char    *type  = sk_json_get_str(model, "type");
    if (!model || model->type != SK_JSON_OBJECT) {
        st = sk_error(SHRINK_ERR_FORMAT, "%s: no \"model\" object (not a tokenizer.json?)", what);
    } else if (!type || strcmp(type, "BPE") != 0) {
        st = sk_error(SHRINK_ERR_UNSUPPORTED, "%s: model.type \"%s\"; only \"BPE\" is supported",
                      what, type ? type : "(none)");
    } else if (json_has_type(sk_json_get(root, "pre_tokenizer"), "ByteLevel") ||
               json_has_type(sk_json_get(root, "decoder"), "ByteLevel")) {
        st = sk_tok_hf_gpt2_from_json(root, what, out);
    } else if (json_has_type(sk_json_get(root, "pre_tokenizer"), "Metaspace") ||
               json_has_type(sk_json_get(root, "normalizer"), "Prepend") ||
               json_has_type(sk_json_get(root, "normalizer"), "Replace") ||
               json_has_type(sk_json_get(root, "decoder"), "ByteFallback")) {
        st = sk_tok_hf_spm_from_json(root, what, out);
    } else {
        st = sk_error(SHRINK_ERR_UNSUPPORTED, "%s: BPE without a ByteLevel (GPT-2) or Metaspace "
                      "(Llama) pre-tokenizer is not supported", what);
    }
    sk_json_free(root);
    return st;
}

/* ==== public API =========================================================================== */

static shrink_status load_file(const char *path, shrink_tokenizer **out) {
    const char *dot  = strrchr(path, '.');
    const char *base = strrchr(path, '/');
    base             = base ? base + 1 : path;
    shrink_status st;
    if (dot && strcmp(dot, ".json") == 0 && strcmp(base, "vocab.json") != 0) {
        char  *text = NULL;
        size_t len  = 0;
        if ((st = sk_read_file(path, (size_t)1 << 30, &text, &len))) return st;
        st = sk_tok_load_hf_json_mem(text, len, path, out);
        sk_free(text);
        return st;
    }
    if (strcmp(base, "vocab.json") == 0 || (dot && strcmp(dot, ".txt") == 0)) {
        char *dir = sk_path_dir(path);
        if (!dir) return sk_error(SHRINK_ERR_NOMEM, "%s: no memory", path);
        st = shrink_tokenizer_load(out, dir);
        sk_free(dir);
        return st;
    }
    sk_map m;
    if ((st = sk_map_file(path, &m))) return st;
    if (dot && strcmp(dot, ".model") == 0)
        st = sk_tok_load_spm_model_mem(m.data, m.size, path, out);
    else if (dot && strcmp(dot, ".bin") == 0)
        st = sk_tok_load_llama2c_mem(m.data, m.size, path, out);
    else
        st = sk_error(SHRINK_ERR_UNSUPPORTED, "%s: unknown tokenizer file type (expected .bin, "
                      ".model, tokenizer.json, vocab.json or a folder)", path);
    sk_unmap(&m);
    return st;
}

static shrink_status load_gpt2_dir(const char *vocab, const char *merges, const char *dir,
                                   shrink_tokenizer **out) {
    char  *vt = NULL, *mt = NULL;
    size_t vl = 0, ml = 0;
    shrink_status st = sk_read_file(vocab, (size_t)1 << 30, &vt, &vl);
    if (st) return st;
    st = sk_read_file(merges, (size_t)1 << 30, &mt, &ml);
    if (!st) st = sk_tok_load_gpt2_mem(vt, vl, mt, ml, dir, out);
    sk_free(vt);
    sk_free(mt);
    return st;
}

static shrink_status load_dir(const char *dir, shrink_tokenizer **out) {
    static const char *const single[] = {"tokenizer.json", "tokenizer.model", NULL};
    shrink_status st;
    for (int i = 0; single[i]; i++) {
        char *p = sk_path_join(dir, single[i]);
        if (!p) return sk_error(SHRINK_ERR_NOMEM, "%s: no memory", dir);
        int found = sk_file_exists(p);
        st        = found ? load_file(p, out) : SHRINK_OK;
        sk_free(p);
        if (found) return st;
    }
    char *vocab  = sk_path_join(dir, "vocab.json");
    char *merges = sk_path_join(dir, "merges.txt");
    char *bin    = sk_path_join(dir, "tokenizer.bin");
    if (!vocab || !merges || !bin)
        st = sk_error(SHRINK_ERR_NOMEM, "%s: no memory", dir);
    else if (sk_file_exists(vocab) && sk_file_exists(merges))
        st = load_gpt2_dir(vocab, merges, dir, out);
    else if (sk_file_exists(bin))
        st = load_file(bin, out);
    else
        st = sk_error(SHRINK_ERR_IO, "%s: no tokenizer.json, tokenizer.model, vocab.json + "
                      "merges.txt or tokenizer.bin in this folder", dir);
    sk_free(vocab);
    sk_free(merges);
    sk_free(bin);
    return st;
}

shrink_status shrink_tokenizer_load(shrink_tokenizer **out, const char *path) {
    if (!out) return sk_error(SHRINK_ERR_ARG, "loading a tokenizer: no result given");
    *out = NULL;
    if (!path) return sk_error(SHRINK_ERR_ARG, "loading a tokenizer: no path given");
    if (sk_dir_exists(path)) return load_dir(path, out);
    if (!sk_file_exists(path)) return sk_error_not_found(path, "tokenizer file");
    return load_file(path, out);
}

int32_t shrink_tokenizer_vocab_size(const shrink_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t shrink_tokenizer_bos(const shrink_tokenizer *t) { return t ? t->bos : -1; }
int32_t shrink_tokenizer_eos(const shrink_tokenizer *t) { return t ? t->eos : -1; }

shrink_status shrink_tokenizer_encode(const shrink_tokenizer *t, const char *text, size_t len,
                                      bool add_bos, int32_t **ids, size_t *n_ids) {
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!t || !ids || !n_ids || (!text && len))
        return sk_error(SHRINK_ERR_ARG, "encoding a text: no tokenizer, text or result given");
    if (len > (size_t)INT32_MAX / 4)
        return sk_error(SHRINK_ERR_ARG, "a text of %zu bytes is too long "
                        "(at most %d)", len, INT32_MAX / 4);
    size_t bad = 0;
    if (len && !sk_utf8_valid(text, len, &bad))
        return sk_error(SHRINK_ERR_ARG, "the text is not valid UTF-8 at "
                        "byte offset %zu", bad);
    sk_ids        out = {0};
    shrink_status st  = SHRINK_OK;
    if (add_bos && t->bos >= 0) st = sk_ids_push(&out, t->bos);
    if (!st && len) {
        st = t->kind == SK_TOK_GPT2 ? sk_tok_encode_gpt2(t, text, len, &out)
                                    : sk_tok_encode_spm(t, text, len, &out);
    }
    if (st) {
        sk_free(out.v);
        return st;
    }
    if (!out.v) { /* an empty result is still a valid array */
        out.v = sk_malloc(sizeof(int32_t));
        if (!out.v) return sk_error(SHRINK_ERR_NOMEM, "out of memory encoding a text");
    }
    *ids   = out.v;
    *n_ids = out.n;
    return SHRINK_OK;
}

/* ---- decoding ---------------------------------------------------------------------------- */

typedef struct sk_buf {
    char  *p;
    size_t n, cap;
} sk_buf;

static shrink_status buf_put(sk_buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = sk_realloc(b->p, cap);
        if (!p) return sk_error(SHRINK_ERR_NOMEM, "out of memory decoding tokens");
        b->p   = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return SHRINK_OK;
}

static const char REPLACEMENT[] = "\xef\xbf\xbd"; /* U+FFFD */

/* Number of bytes of a valid UTF-8 character at s[0..n) (0 if invalid), and in *prefix the
 * length of its maximal valid prefix (at least 1) - Unicode's "maximal subpart". */
static size_t utf8_char(const unsigned char *s, size_t n, size_t *prefix) {
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    *prefix = 1;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) need = 2;
    else if (c >= 0xF0 && c <= 0xF4) need = 3;
    else return 0;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    for (size_t k = 1; k <= need; k++) {
        if (k >= n || s[k] < lo || s[k] > hi) return 0;
        lo = 0x80, hi = 0xBF;
        *prefix = k + 1;
    }
    return need + 1;
}

/* Appends bytes with invalid UTF-8 replaced by U+FFFD: one per byte (sentencepiece) or one per
 * maximal subpart (Python's errors="replace", the GPT-2 reference). */
static shrink_status put_utf8(sk_buf *b, const char *s, size_t n, int per_subpart) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t prefix, k = utf8_char(u + i, n - i, &prefix);
        shrink_status st;
        if (k) {
            size_t j = i + k; /* copy a run of valid characters at once */
            while (j < n && (k = utf8_char(u + j, n - j, &prefix)) != 0) j += k;
            st = buf_put(b, s + i, j - i);
            i  = j;
        } else {
            st = buf_put(b, REPLACEMENT, 3);
            i += per_subpart ? prefix : 1;
        }
        if (st) return st;
    }
    return SHRINK_OK;
}

static int starts_with_space_symbol(const shrink_tokenizer *t, int32_t id) {
    return t->piece_len[id] >= 3 && memcmp(sk_tok_piece_str(t, id), SPM_SPACE, 3) == 0;
}

/* sentencepiece's SentencePieceProcessor::Decode: byte pieces are gathered and turned into
 * UTF-8 (one U+FFFD per bad byte); the first piece of the text loses one leading "▁". */
static shrink_status decode_spm(const shrink_tokenizer *t, const int32_t *ids, size_t n,
                                sk_buf *b) {
    size_t run_len   = 0;
    char  *bytes     = sk_malloc(n ? n : 1); /* the current run of byte pieces */
    int    is_bos_ws = 1, bos_ws_seen = 0;
    shrink_status st = SHRINK_OK;
    if (!bytes) return sk_error(SHRINK_ERR_NOMEM, "out of memory decoding tokens");
    for (size_t i = 0; i < n && !st; i++) {
        int32_t id = ids[i];
        if (t->types[id] == SK_PIECE_BYTE) {
            bytes[run_len++] = t->dec_blob[t->dec_off[id]];
            continue;
        }
        st      = put_utf8(b, bytes, run_len, 0);
        run_len = 0;
        if (bos_ws_seen || b->n > 0) is_bos_ws = 0;
        bos_ws_seen = 0;
        const char *s = t->dec_blob + t->dec_off[id];
        size_t      l = t->dec_len[id];
        if (t->types[id] == SK_PIECE_CONTROL) continue;
        if (t->types[id] != SK_PIECE_UNKNOWN && is_bos_ws &&
            (t->add_dummy_prefix || t->remove_extra_ws) && starts_with_space_symbol(t, id)) {
            s++, l--;
            bos_ws_seen = !t->remove_extra_ws;
        }
        if (!st) st = buf_put(b, s, l);
    }
    if (!st) st = put_utf8(b, bytes, run_len, 0);
    sk_free(bytes);
    return st;
}

static shrink_status decode_gpt2(const shrink_tokenizer *t, const int32_t *ids, size_t n,
                                 sk_buf *b) {
    sk_buf        raw = {0};
    shrink_status st  = buf_put(&raw, "", 0);
    for (size_t i = 0; i < n && !st; i++)
        st = buf_put(&raw, t->dec_blob + t->dec_off[ids[i]], t->dec_len[ids[i]]);
    if (!st) st = put_utf8(b, raw.p, raw.n, 1);
    sk_free(raw.p);
    return st;
}

shrink_status shrink_tokenizer_decode(const shrink_tokenizer *t, const int32_t *ids, size_t n_ids,
                                      char **text, size_t *len) {
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!t || !text || (!ids && n_ids))
        return sk_error(SHRINK_ERR_ARG, "decoding tokens: no tokenizer or tokens given");
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return sk_error(SHRINK_ERR_RANGE, "token id %" PRId32 " at %zu "
                            "not in [0, %" PRId32 ")", ids[i], i, t->n_vocab);
    sk_buf        b  = {0};
    shrink_status st = buf_put(&b, "", 0);
    if (!st) st = t->kind == SK_TOK_GPT2 ? decode_gpt2(t, ids, n_ids, &b)
                                         : decode_spm(t, ids, n_ids, &b);
    if (st) {
        sk_free(b.p);
        return st;
    }
    *text = b.p;
    if (len) *len = b.n;
    return SHRINK_OK;
}

int32_t shrink_tokenizer_piece(const shrink_tokenizer *t, int32_t prev, int32_t id, char *buf,
                               size_t cap) {
    if (!t || (!buf && cap))
        return sk_error(SHRINK_ERR_ARG, "token piece: no tokenizer given");
    if (id < 0 || id >= t->n_vocab)
        return sk_error(SHRINK_ERR_RANGE, "token id %" PRId32 " not in [0, %"
                        PRId32 ")", id, t->n_vocab);
    const char *s = t->dec_blob + t->dec_off[id];
    size_t      n = t->dec_len[id];
    /* llama2.c run.c decode(): after BOS, sentencepiece strips the piece's leading space. */
    if (t->kind == SK_TOK_SPM && prev >= 0 && prev == t->bos && n && s[0] == ' ' &&
        t->types[id] != SK_PIECE_BYTE)
        s++, n--;
    if (n > (size_t)INT32_MAX) n = INT32_MAX;
    memcpy(buf, s, n < cap ? n : cap);
    return (int32_t)n;
}

/* ==== merges as a list (writers) =========================================================== */

static int cmp_rank(const void *a, const void *b) {
    const sk_pairmap_slot *x = *(const sk_pairmap_slot *const *)a;
    const sk_pairmap_slot *y = *(const sk_pairmap_slot *const *)b;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

shrink_status sk_tok_merges_list(const shrink_tokenizer *t, char ***merges, size_t **lens,
                                 int64_t *n_out) {
    *merges = NULL;
    *lens = NULL;
    *n_out = 0;
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->merges.cap; i++) n += t->merges.slots[i].key != UINT64_MAX;
    const sk_pairmap_slot **s = sk_malloc((size_t)(n ? n : 1) * sizeof *s);
    char **m = sk_calloc(n ? n : 1, sizeof *m);
    size_t *l = sk_malloc((size_t)(n ? n : 1) * sizeof *l);
    if (!s || !m || !l) goto out_nomem;
    n = 0;
    for (uint32_t i = 0; i < t->merges.cap; i++)
        if (t->merges.slots[i].key != UINT64_MAX) s[n++] = &t->merges.slots[i];
    qsort(s, n, sizeof *s, cmp_rank);
    for (uint32_t i = 0; i < n; i++) {
        int32_t a = (int32_t)(s[i]->key >> 32), b = (int32_t)(s[i]->key & 0xFFFFFFFFu);
        size_t la = t->piece_len[a], lb = t->piece_len[b];
        m[i] = sk_malloc(la + lb + 2);
        if (!m[i]) goto out_nomem;
        memcpy(m[i], sk_tok_piece_str(t, a), la);
        m[i][la] = ' ';
        memcpy(m[i] + la + 1, sk_tok_piece_str(t, b), lb);
        m[i][la + lb + 1] = '\0';
        l[i] = la + lb + 1;
    }
    sk_free(s);
    *merges = m;
    *lens = l;
    *n_out = n;
    return SHRINK_OK;
out_nomem:
    for (uint32_t i = 0; m && i < n; i++) sk_free(m[i]);
    sk_free(m);
    sk_free(l);
    sk_free(s);
    return sk_error(SHRINK_ERR_NOMEM, "%s: no memory for the merge list", t->what);
}
