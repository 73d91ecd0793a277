/*
 * tokenizer.h - the in-memory tokenizer behind the opaque shrink_tokenizer.
 *
 * Two families, one table of pieces and one merge engine:
 *   SK_TOK_SPM   sentencepiece-style BPE with byte fallback (tok_spm.c): llama2.c
 *                tokenizer.bin, sentencepiece tokenizer.model, Hugging Face tokenizer.json of
 *                Llama type. Text is normalized ("▁" dummy prefix, spaces -> "▁") and the
 *                whole text is merged, highest piece score first (.bin/.model) or lowest merge
 *                rank first (tokenizer.json).
 *   SK_TOK_GPT2  GPT-2 byte-level BPE (tok_bpe.c): vocab.json + merges.txt or tokenizer.json
 *                with a ByteLevel pre-tokenizer. Text is cut by the GPT-2 regex, bytes are
 *                mapped to printable code points, each pre-token is merged by rank.
 *
 * tokenizer.c owns the shared parts: the piece table (id -> piece string, score, type, the
 * bytes the piece decodes to), the hash maps (piece -> id, (left id, right id) -> merge rank),
 * the merge engine (a heap over a linked list of symbols: O(n log n) in the text length),
 * loader dispatch and the public API.
 *
 * Loaders read bytes, not paths (sk_tok_load_*_mem), so tests and fuzzers need no files; the
 * `what` argument names the source in error messages.
 */
#ifndef SK_TOKENIZER_H
#define SK_TOKENIZER_H

#include "../core/core.h"

typedef enum sk_tok_kind {
    SK_TOK_SPM,  /* sentencepiece BPE (Llama) */
    SK_TOK_GPT2, /* byte-level BPE */
} sk_tok_kind;

/* sentencepiece's ModelProto.SentencePiece.Type values. */
typedef enum sk_piece_type {
    SK_PIECE_NORMAL  = 1,
    SK_PIECE_UNKNOWN = 2,
    SK_PIECE_CONTROL = 3, /* <s>, </s>: never produced by encode, decode to nothing */
    SK_PIECE_USER    = 4, /* user-defined */
    SK_PIECE_UNUSED  = 5,
    SK_PIECE_BYTE    = 6, /* <0xNN> */
} sk_piece_type;

/* Open-addressing hash map from piece strings to ids; the strings live in the tokenizer. */
typedef struct sk_strmap_slot {
    int32_t  id;   /* -1 = empty */
    uint32_t hash; /* of the piece: most probes are settled without touching the piece */
} sk_strmap_slot;

typedef struct sk_strmap {
    sk_strmap_slot *slots; /* (cap) */
    uint32_t        cap;   /* power of two */
} sk_strmap;

/* Open-addressing hash map from (left id, right id) to a merge: rank and merged id. */
typedef struct sk_pairmap_slot {
    uint64_t key;   /* (uint64)left << 32 | right; UINT64_MAX = empty */
    int32_t  rank;
    int32_t  id;    /* the merged piece */
} sk_pairmap_slot;

typedef struct sk_pairmap {
    sk_pairmap_slot *slots; /* (cap) */
    uint32_t         cap;   /* power of two; 0 = no merges */
    uint32_t         count;
} sk_pairmap;

struct shrink_tokenizer {
    sk_tok_kind kind;
    char       *what;           /* source path, for messages */
    int32_t     n_vocab;        /* V */

    /* ---- the piece table ---- */
    char       *blob;           /* piece strings back to back, each NUL-terminated */
    size_t      blob_len;
    size_t      blob_cap;
    uint32_t   *piece_off;      /* (V) offset of piece i in blob */
    uint32_t   *piece_len;      /* (V) its length in bytes */
    float      *scores;         /* (V) merge priority of SPM score mode (higher first) */
    uint8_t    *types;          /* (V) sk_piece_type */
    uint8_t    *is_set;         /* (V) loaders: piece i was given (catches gaps/duplicates) */
    char       *dec_blob;       /* the bytes each id decodes to, back to back */
    uint32_t   *dec_off;        /* (V) */
    uint32_t   *dec_len;        /* (V) */

    sk_strmap   pieces;         /* piece string -> id (first id if a string repeats) */
    sk_pairmap  merges;         /* rank mode: (left, right) -> (rank, merged) */
    int         use_ranks;      /* SPM: merge by rank (tokenizer.json) instead of by score */

    /* ---- special ids ---- */
    int32_t     bos;            /* -1 if none */
    int32_t     eos;            /* -1 if none */
    int32_t     unk;            /* -1 if none */
    int32_t     byte_ids[256];  /* SPM: id of <0xNN> (-1 if absent); GPT-2: id of byte b's
                                   code point piece */

    /* ---- SPM normalizer settings (sentencepiece NormalizerSpec / TrainerSpec) ---- */
    int         add_dummy_prefix;   /* prepend "▁" to a non-empty text */
    int         remove_extra_ws;    /* strip leading/trailing spaces, collapse runs */
    int         escape_ws;          /* spaces -> "▁" */
    int         byte_fallback;      /* unknown characters -> <0xNN> pieces (else unk) */

    /* ---- GPT-2 settings ---- */
    int         add_prefix_space;   /* ByteLevel pre-tokenizer option: prepend " " */

    /* SPM: the code point pairs (a, b) that stand next to each other inside some piece a merge
     * can produce. No merge can ever join two neighbouring characters that are not such a pair,
     * so the encoder cuts the text there into chunks merged independently: the same result as
     * merging the whole text, with heaps the size of a word instead of the text. */
    uint64_t   *bigrams;        /* (bigram_cap) (uint64)a << 32 | b; UINT64_MAX = empty */
    uint32_t    bigram_cap;     /* power of two */
};

/* Vocabularies beyond this are certainly hostile (the largest real ones are ~256k). */
#define SK_TOK_MAX_VOCAB (1 << 24)

/* ---- building the piece table (loaders) ---------------------------------------------- */

/* Allocates the table for n_vocab pieces, all unset. */
SK_HIDDEN shrink_status sk_tok_vocab_init(shrink_tokenizer *t, int64_t n_vocab);
/* Sets piece `id` (copied); a second piece for the same id is a format error. */
SK_HIDDEN shrink_status sk_tok_vocab_set(shrink_tokenizer *t, int32_t id, const char *s,
                                         size_t len, float score, sk_piece_type type);
/* Builds the piece map; pieces never set become empty UNUSED pieces if allow_gaps, else it
 * is a format error. Must run before sk_tok_merge_add and sk_tok_finish. */
SK_HIDDEN shrink_status sk_tok_vocab_index(shrink_tokenizer *t, int allow_gaps);
/* Id of piece s[0..len), or -1. */
SK_HIDDEN int32_t sk_tok_find(const shrink_tokenizer *t, const char *s, size_t len);
/* Whether code points a, b stand next to each other in a piece a merge can produce (SPM). */
SK_HIDDEN int sk_tok_bigram(const shrink_tokenizer *t, uint32_t a, uint32_t b);
static inline const char *sk_tok_piece_str(const shrink_tokenizer *t, int32_t id) {
    return t->blob + t->piece_off[id];
}

/* Rank mode: sizes the merge map for up to n merges. */
SK_HIDDEN shrink_status sk_tok_merges_init(shrink_tokenizer *t, size_t n);
/* Adds merge `rank`: pieces a and b merge into the piece a+b (which must be in the vocab).
 * A repeated pair keeps its first (lowest) rank. */
SK_HIDDEN shrink_status sk_tok_merge_add(shrink_tokenizer *t, const char *a, size_t a_len,
                                         const char *b, size_t b_len, int32_t rank);

/* Finishes loading: byte ids, decoded forms, bigrams, checks special ids. */
SK_HIDDEN shrink_status sk_tok_finish(shrink_tokenizer *t);

/* An empty tokenizer of `kind` named `what` (copied), or NULL when out of memory. */
SK_HIDDEN shrink_tokenizer *sk_tok_new(sk_tok_kind kind, const char *what);

/* ---- loaders (tok_spm.c, tok_bpe.c); on success *out owns a finished tokenizer ---------- */

SK_HIDDEN shrink_status sk_tok_load_llama2c_mem(const uint8_t *data, size_t size,
                                                const char *what, shrink_tokenizer **out);
SK_HIDDEN shrink_status sk_tok_load_spm_model_mem(const uint8_t *data, size_t size,
                                                  const char *what, shrink_tokenizer **out);
/* tokenizer.json text (either family, chosen from its content). */
SK_HIDDEN shrink_status sk_tok_load_hf_json_mem(const char *text, size_t len, const char *what,
                                                shrink_tokenizer **out);
/* vocab.json text + merges.txt text (GPT-2). */
SK_HIDDEN shrink_status sk_tok_load_gpt2_mem(const char *vocab_json, size_t vocab_len,
                                             const char *merges_txt, size_t merges_len,
                                             const char *what, shrink_tokenizer **out);

/* A vocabulary given as arrays (GGUF tokenizer.ggml.* metadata, or any other container):
 * pieces are views (not NUL-terminated) and are copied. */
typedef struct sk_tok_arrays {
    int64_t            n_vocab;
    const char *const *pieces;      /* (n_vocab) sentencepiece pieces ("▁" for spaces) or
                                       byte-level pieces */
    const uint64_t    *piece_lens;  /* (n_vocab) */
    const float       *scores;      /* (n_vocab) or NULL (SPM: merge priority; default 0) */
    const int32_t     *types;       /* (n_vocab) sk_piece_type values or NULL (all NORMAL) */
    int64_t            n_merges;    /* GPT-2: merges "a b" in rank order */
    const char *const *merges;
    const uint64_t    *merge_lens;
    int32_t            bos, eos, unk;      /* -1: none (GPT-2: <|endoftext|> if present) */
    int                add_space_prefix;   /* SPM dummy prefix: 1/0, -1 = default (yes) */
} sk_tok_arrays;

/* Sentencepiece BPE (score mode, byte fallback) from arrays (tok_spm.c). */
SK_HIDDEN shrink_status sk_tok_load_spm_arrays(const sk_tok_arrays *a, const char *what,
                                               shrink_tokenizer **out);
/* GPT-2 byte-level BPE from arrays: pieces + merges (tok_bpe.c). */
SK_HIDDEN shrink_status sk_tok_load_gpt2_arrays(const sk_tok_arrays *a, const char *what,
                                                shrink_tokenizer **out);
/* The merges of a rank-mode tokenizer as "a b" strings in rank order (tokenizer.c): *merges
 * and each string malloc'd (free each, then the arrays, with sk_free). */
SK_HIDDEN shrink_status sk_tok_merges_list(const shrink_tokenizer *t, char ***merges,
                                           size_t **lens, int64_t *n);

/* Loader parts tok_spm.c and tok_bpe.c share for tokenizer.json. */
typedef struct sk_json sk_json;
SK_HIDDEN shrink_status sk_tok_hf_spm_from_json(const sk_json *root, const char *what,
                                                shrink_tokenizer **out);
SK_HIDDEN shrink_status sk_tok_hf_gpt2_from_json(const sk_json *root, const char *what,
                                                 shrink_tokenizer **out);
/* Fills the vocab from a JSON object piece -> id plus, if not NULL, a Hugging Face
 * "added_tokens" array ({"id", "content", "special"}: special ones become CONTROL pieces);
 * ids missing from both become empty UNUSED pieces. Then builds the piece map. */
SK_HIDDEN shrink_status sk_tok_vocab_from_json(shrink_tokenizer *t, const sk_json *vocab,
                                               const sk_json *added, const char *what);
/* The merges (rank mode) from a JSON array of "a b" strings or ["a", "b"] pairs. */
SK_HIDDEN shrink_status sk_tok_merges_from_json(shrink_tokenizer *t, const sk_json *merges,
                                                const char *what);

/* ---- encoding internals --------------------------------------------------------------- */

/* A growable id array. */
typedef struct sk_ids {
    int32_t *v;
    size_t   n;
    size_t   cap;
} sk_ids;
SK_HIDDEN shrink_status sk_ids_push(sk_ids *a, int32_t id);

/* The merge engine's reusable buffers. */
typedef struct sk_bpe_work sk_bpe_work;
SK_HIDDEN sk_bpe_work *sk_bpe_work_new(void);
SK_HIDDEN void sk_bpe_work_free(sk_bpe_work *w);

/* If segment text[off..off+len) was merged before in this work's life, appends its ids to
 * out and returns 1; 0 if not cached (then add its symbols and merge); -1 out of memory.
 * Segments must be cut the same way every time (the same text gives the same ids). */
SK_HIDDEN int sk_bpe_cached(sk_bpe_work *w, const char *text, size_t off, size_t len,
                            sk_ids *out);
/* Initial symbols of a segment: byte spans of `text` with their ids (-1: not a piece). */
SK_HIDDEN shrink_status sk_bpe_sym_add(sk_bpe_work *w, uint32_t start, uint32_t len,
                                       int32_t id);
/* Merges the symbols added since the last call (they form one segment of text) and appends
 * the ids of the result to out; symbols with id -1 go through `fallback` (byte pieces or
 * unk). Clears the symbols. */
SK_HIDDEN shrink_status sk_bpe_merge(const shrink_tokenizer *t, sk_bpe_work *w,
                                     const char *text, sk_ids *out);

SK_HIDDEN shrink_status sk_tok_encode_spm(const shrink_tokenizer *t, const char *text,
                                          size_t len, sk_ids *out);
SK_HIDDEN shrink_status sk_tok_encode_gpt2(const shrink_tokenizer *t, const char *text,
                                           size_t len, sk_ids *out);

/* ---- UTF-8 helpers ---------------------------------------------------------------------- */

/* Length of the UTF-8 character starting at s[0] (s holds n >= 1 valid bytes). */
static inline size_t sk_utf8_len(const char *s, size_t n) {
    unsigned char c = (unsigned char)s[0];
    size_t l = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    return l <= n ? l : n;
}

/* Code point at s[0..n) (valid UTF-8, n >= 1) and its length in *len. */
static inline uint32_t sk_utf8_get(const char *str, size_t n, size_t *len) {
    const unsigned char *s = (const unsigned char *)str;
    size_t l = sk_utf8_len(str, n);
    *len     = l;
    switch (l) {
    case 1: return s[0];
    case 2: return (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    case 3: return (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    default:
        return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
               (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
    }
}

#endif /* SK_TOKENIZER_H */
