/*
 * test_tokenizer.c - tokenizers against the reference fixtures, streaming pieces, and broken
 * files.
 *
 *   fixtures/tokenizers/{tok512,llama2,gpt2}.jsonl   encode(text) == ids, decode(ids) == text
 *     with tok512.bin + tok512.model, llama2 tokenizer.bin + tokenizer.model, the gpt2 folder
 *   fixtures/stories260K/greedy200.{json,txt}         run.c's printing of piece(prev, id)
 *   fixtures/stories260K/ppl_tokens.json              [BOS] + encode(ppl_text.txt)
 *   handcrafted broken tokenizer.bin / tokenizer.model / tokenizer.json / vocab files
 *
 * Assets are looked up in $SHRINK_SHARED (else ../shared), then in tests/fixtures/ under the
 * same relative path; the test skips when neither has them.
 */
#include "test_util.h"

#include "core/core.h"
#include "core/json.h"
#include "tokenizer/tokenizer.h"

#include <ctype.h>
#include <time.h>
#include <unistd.h>

/* Files read with slurp() are freed with sk_free(). */

/* <shared>/rel, tests/fixtures/rel or rel if one exists; else NULL after test_missing() (a
 * failure with ../shared present, a counted skip without). */
static const char *asset(char *buf, size_t cap, const char *rel) {
    return test_need_asset(buf, cap, rel);
}

static char *slurp(const char *path, size_t *len) {
    char  *text = NULL;
    size_t n    = 0;
    if (sk_read_file(path, (size_t)1 << 30, &text, &n) != SHRINK_OK) return NULL;
    if (len) *len = n;
    return text;
}

static shrink_tokenizer *load(const char *path) {
    shrink_tokenizer *t  = NULL;
    shrink_status     st = shrink_tokenizer_load(&t, path);
    CHECK(st == SHRINK_OK, "load %s: %s", path, shrink_last_error());
    return st == SHRINK_OK ? t : NULL;
}

/* ids of a JSON array of integers into a malloc'd array. */
static int32_t *json_ids(const sk_json *a, size_t *n) {
    *n = 0;
    if (!a || a->type != SK_JSON_ARRAY) return NULL;
    int32_t *v = malloc((a->len ? a->len : 1) * sizeof *v);
    for (size_t i = 0; i < a->len; i++) v[i] = (int32_t)a->items[i].integer;
    *n = a->len;
    return v;
}

static void print_ids(const char *label, const int32_t *v, size_t n) {
    fprintf(stderr, "    %s (%zu):", label, n);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", v[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* ==== fixture cases ======================================================================== */

static void check_jsonl(const char *tok_path, const char *jsonl) {
    shrink_tokenizer *t = load(tok_path);
    size_t            len;
    char             *text = slurp(jsonl, &len);
    CHECK(text != NULL, "read %s", jsonl);
    if (!t || !text) {
        shrink_tokenizer_free(t);
        sk_free(text);
        return;
    }
    int cases = 0, enc_ok = 0, dec_ok = 0;
    for (char *line = text; line < text + len;) {
        char  *nl = memchr(line, '\n', (size_t)(text + len - line));
        size_t n  = nl ? (size_t)(nl - line) : (size_t)(text + len - line);
        if (n == 0) {
            line += 1;
            continue;
        }
        sk_json *j = NULL;
        CHECK(sk_json_parse(line, n, jsonl, &j) == SHRINK_OK, "%s: %s", jsonl, shrink_last_error());
        line += n + 1;
        if (!j) continue;
        const sk_json *tx = sk_json_get(j, "text");
        size_t         n_want;
        int32_t       *want = json_ids(sk_json_get(j, "ids"), &n_want);
        int64_t        id   = -1;
        sk_json_get_int(j, "id", &id);
        cases++;
        int32_t *got   = NULL;
        size_t   n_got = 0;
        shrink_status st = shrink_tokenizer_encode(t, tx->str, tx->len, false, &got, &n_got);
        int ok = st == SHRINK_OK && n_got == n_want &&
                 (n_want == 0 || memcmp(got, want, n_want * sizeof *got) == 0);
        enc_ok += ok;
        CHECK(ok, "%s on %s case %" PRId64 ": encode differs (%s)", tok_path, jsonl, id,
              st ? shrink_last_error() : "ids");
        if (!ok && st == SHRINK_OK) {
            print_ids("want", want, n_want);
            print_ids("got ", got, n_got);
        }
        char  *dec = NULL;
        size_t dl  = 0;
        st = shrink_tokenizer_decode(t, want, n_want, &dec, &dl);
        ok = st == SHRINK_OK && dl == tx->len && memcmp(dec, tx->str, dl) == 0;
        dec_ok += ok;
        CHECK(ok, "%s on %s case %" PRId64 ": decode gives \"%.80s\", want \"%.80s\"", tok_path,
              jsonl, id, dec ? dec : shrink_last_error(), tx->str);
        shrink_free(dec);
        shrink_free(got);
        free(want);
        sk_json_free(j);
    }
    printf("  %-60s %s: %d cases, encode %d ok, decode %d ok\n", tok_path,
           strrchr(jsonl, '/') + 1, cases, enc_ok, dec_ok);
    sk_free(text);
    shrink_tokenizer_free(t);
}

static void test_fixtures(void) {
    static const struct {
        const char *tok;   /* under <shared>/ */
        const char *jsonl; /* under <shared>/ */
    } cases[] = {
        {"models/stories260K/tok512.bin", "fixtures/tokenizers/tok512.jsonl"},
        {"models/stories260K/tok512.model", "fixtures/tokenizers/tok512.jsonl"},
        {"models/tokenizers/llama2/tokenizer.bin", "fixtures/tokenizers/llama2.jsonl"},
        {"models/tokenizers/llama2/tokenizer.model", "fixtures/tokenizers/llama2.jsonl"},
        {"models/tokenizers/gpt2", "fixtures/tokenizers/gpt2.jsonl"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char a[1024], b[1024];
        if (!asset(a, sizeof a, cases[i].tok) || !asset(b, sizeof b, cases[i].jsonl)) continue;
        check_jsonl(a, b);
    }
}

/* ==== streaming pieces: llama2.c run.c's printing ========================================== */

/* run.c's safe_printf: a piece that is a single byte which is neither printable nor
 * whitespace is not printed. */
static int printable_piece(const char *p, int32_t n) {
    if (n == 1) {
        unsigned char c = (unsigned char)p[0];
        return isprint(c) || isspace(c);
    }
    return 1;
}

static void test_greedy_pieces(void) {
    char tp[1024], jp[1024], xp[1024];
    if (!asset(tp, sizeof tp, "models/stories260K/tok512.bin") ||
        !asset(jp, sizeof jp, "fixtures/stories260K/greedy200.json") ||
        !asset(xp, sizeof xp, "fixtures/stories260K/greedy200.txt"))
        return;
    shrink_tokenizer *t = load(tp);
    size_t  jl, xl;
    char   *js = slurp(jp, &jl), *want = slurp(xp, &xl);
    sk_json *j = NULL;
    if (!t || !js || !want || sk_json_parse(js, jl, jp, &j) != SHRINK_OK) {
        CHECK(0, "greedy200 fixtures unreadable: %s", shrink_last_error());
        goto out;
    }
    size_t   n;
    int32_t *ids = json_ids(sk_json_get(j, "ids"), &n);
    CHECK(n > 1 && ids[0] == shrink_tokenizer_bos(t), "greedy200: ids start with BOS");
    char  *got = malloc(n * 64 + 1);
    size_t gl  = 0;
    for (size_t i = 1; i < n; i++) {
        char    piece[64];
        int32_t k = shrink_tokenizer_piece(t, ids[i - 1], ids[i], piece, sizeof piece);
        CHECK(k >= 0 && k <= (int32_t)sizeof piece, "piece(%d, %d) = %d", ids[i - 1], ids[i], k);
        if (k < 0 || k > (int32_t)sizeof piece || !printable_piece(piece, k)) continue;
        memcpy(got + gl, piece, (size_t)k);
        gl += (size_t)k;
    }
    got[gl] = '\0';
    CHECK(gl == xl && memcmp(got, want, xl) == 0, "greedy200: streamed text differs:\n%s\n---\n%s",
          got, want);
    free(got);
    free(ids);
out:
    sk_json_free(j);
    sk_free(js);
    sk_free(want);
    shrink_tokenizer_free(t);
}

static void test_ppl_tokens(void) {
    static const char *const toks[] = {"models/stories260K/tok512.bin",
                                       "models/stories260K/tok512.model"};
    char xp[1024], jp[1024];
    if (!asset(xp, sizeof xp, "fixtures/stories260K/ppl_text.txt") ||
        !asset(jp, sizeof jp, "fixtures/stories260K/ppl_tokens.json"))
        return;
    size_t   xl, jl;
    char    *text = slurp(xp, &xl), *js = slurp(jp, &jl);
    sk_json *j    = NULL;
    CHECK(text && js && sk_json_parse(js, jl, jp, &j) == SHRINK_OK, "ppl fixtures: %s",
          shrink_last_error());
    const sk_json *arr = sk_json_get(j, "ids");
    if (!arr && j && j->type == SK_JSON_ARRAY) arr = j;
    size_t   n_want;
    int32_t *want = json_ids(arr, &n_want);
    for (size_t k = 0; want && k < sizeof toks / sizeof toks[0]; k++) {
        char tp[1024];
        if (!asset(tp, sizeof tp, toks[k])) continue;
        shrink_tokenizer *t = load(tp);
        int32_t *got = NULL;
        size_t   n   = 0;
        if (t && shrink_tokenizer_encode(t, text, xl, true, &got, &n) == SHRINK_OK) {
            int ok = n == n_want && memcmp(got, want, n * sizeof *got) == 0;
            CHECK(ok, "%s: [BOS] + encode(ppl_text.txt): %zu ids, want %zu", tp, n, n_want);
            printf("  %-60s ppl_text.txt: %zu ids %s\n", tp, n, ok ? "ok" : "DIFFER");
        } else {
            CHECK(0, "%s: encode ppl_text.txt: %s", tp, shrink_last_error());
        }
        shrink_free(got);
        shrink_tokenizer_free(t);
    }
    free(want);
    sk_json_free(j);
    sk_free(text);
    sk_free(js);
}

/* ==== hand-made tokenizers and broken files ================================================ */

/* A llama2.c tokenizer.bin in memory: max_len, then (score, len, bytes) per piece. */
typedef struct bin_buf {
    uint8_t b[4096];
    size_t  n;
} bin_buf;

static void put32(bin_buf *o, uint32_t v) {
    for (int i = 0; i < 4; i++) o->b[o->n++] = (uint8_t)(v >> (8 * i));
}

static void put_piece(bin_buf *o, float score, const char *s) {
    uint32_t u;
    memcpy(&u, &score, 4);
    put32(o, u);
    put32(o, (uint32_t)strlen(s));
    memcpy(o->b + o->n, s, strlen(s));
    o->n += strlen(s);
}

/* <unk> <s> </s>, the 256 byte pieces, then a few merges. */
static void tiny_bin(bin_buf *o) {
    o->n = 0;
    put32(o, 8);
    put_piece(o, 0, "<unk>");
    put_piece(o, 0, "\n<s>\n");
    put_piece(o, 0, "\n</s>\n");
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        put_piece(o, 0, s);
    }
    static const char *const pieces[] = {" a", "ab", " ab", "a", "b", " ", "c"};
    for (int i = 0; i < 7; i++) put_piece(o, -(float)i, pieces[i]);
}

static shrink_status load_bin_mem(const bin_buf *o, size_t n, shrink_tokenizer **t) {
    return sk_tok_load_llama2c_mem(o->b, n, "tiny.bin", t);
}

static void test_tiny_bin(void) {
    bin_buf o;
    tiny_bin(&o);
    shrink_tokenizer *t = NULL;
    CHECK(load_bin_mem(&o, o.n, &t) == SHRINK_OK, "tiny.bin: %s", shrink_last_error());
    if (!t) return;
    CHECK(shrink_tokenizer_vocab_size(t) == 3 + 256 + 7, "tiny vocab size");
    CHECK(shrink_tokenizer_bos(t) == 1 && shrink_tokenizer_eos(t) == 2, "tiny bos/eos");
    int32_t *ids = NULL;
    size_t   n   = 0;
    /* "ab c\n": ▁ab ▁ c <0x0A> (▁ab beats ▁a: score -2 vs -0, merged after "ab" -1) */
    CHECK(shrink_tokenizer_encode(t, "ab c\n", 5, true, &ids, &n) == SHRINK_OK, "encode");
    int32_t want[] = {1, 259 + 2, 259 + 5, 259 + 6, 3 + '\n'};
    CHECK(n == 5 && memcmp(ids, want, sizeof want) == 0, "tiny encode: got %zu ids", n);
    char  *s = NULL;
    size_t l = 0;
    CHECK(shrink_tokenizer_decode(t, ids, n, &s, &l) == SHRINK_OK && l == 5 &&
              strcmp(s, "ab c\n") == 0, "tiny decode: \"%s\"", s ? s : "");
    shrink_free(s);
    shrink_free(ids);
    /* invalid UTF-8 is an argument error naming the byte offset */
    CHECK(shrink_tokenizer_encode(t, "ab\xff", 3, false, &ids, &n) == SHRINK_ERR_ARG &&
              strstr(shrink_last_error(), "offset 2"), "bad UTF-8: %s", shrink_last_error());
    CHECK(ids == NULL && n == 0, "bad UTF-8 leaves no ids");
    /* decode: out-of-range ids; byte pieces that are not UTF-8 become U+FFFD */
    int32_t bad[] = {5, 100000};
    CHECK(shrink_tokenizer_decode(t, bad, 2, &s, &l) == SHRINK_ERR_RANGE && !s, "decode range");
    int32_t bytes[] = {3 + 0xE2, 3 + 0x82, 3 + 'x'};
    CHECK(shrink_tokenizer_decode(t, bytes, 3, &s, &l) == SHRINK_OK &&
              strcmp(s, "\xef\xbf\xbd\xef\xbf\xbdx") == 0, "decode bad bytes");
    shrink_free(s);
    char    p[8];
    int32_t k = shrink_tokenizer_piece(t, 1, 259 + 2, p, sizeof p); /* " ab" after BOS */
    CHECK(k == 2 && memcmp(p, "ab", 2) == 0, "piece after BOS drops the space (%d)", k);
    k = shrink_tokenizer_piece(t, 259 + 6, 259 + 2, p, sizeof p);
    CHECK(k == 3 && memcmp(p, " ab", 3) == 0, "piece keeps the space (%d)", k);
    CHECK(shrink_tokenizer_piece(t, 0, 3 + 0xFF, p, sizeof p) == 1 && (uint8_t)p[0] == 0xFF,
          "byte piece");
    CHECK(shrink_tokenizer_piece(t, 0, 1, p, sizeof p) == 0, "BOS prints nothing");
    CHECK(shrink_tokenizer_piece(t, 0, -1, p, sizeof p) < 0, "piece of a bad id");
    shrink_tokenizer_free(t);
}

static void expect_fail(shrink_status st, shrink_status want, const char *name,
                        const char *needle) {
    const char *msg = shrink_last_error();
    CHECK(st == want && strstr(msg, needle) != NULL, "%s: status %d (want %d), message \"%s\" "
          "should contain \"%s\"", name, st, want, msg, needle);
}

static void test_broken_bin(void) {
    bin_buf o;
    tiny_bin(&o);
    shrink_tokenizer *t = NULL;
    /* every truncation fails cleanly (never crashes), except at piece boundaries */
    int fails = 0, oks = 0;
    for (size_t n = 0; n < o.n; n++) {
        shrink_status st = load_bin_mem(&o, n, &t);
        if (st == SHRINK_OK) {
            oks++;
            shrink_tokenizer_free(t);
            t = NULL;
        } else {
            fails++;
            CHECK(strstr(shrink_last_error(), "tiny.bin") != NULL, "names file");
        }
    }
    CHECK(fails > 0, "truncated tokenizer.bin fails");
    expect_fail(load_bin_mem(&o, 2, &t), SHRINK_ERR_FORMAT, "2 bytes", "truncated");
    expect_fail(load_bin_mem(&o, 4 + 8 + 2, &t), SHRINK_ERR_FORMAT, "cut piece", "length 5");
    expect_fail(load_bin_mem(&o, 4 + 5, &t), SHRINK_ERR_FORMAT, "cut header", "truncated");
    bin_buf h = o;
    h.b[8] = 0xff, h.b[9] = 0xff, h.b[10] = 0xff, h.b[11] = 0x7f; /* piece 0 length 2^31-1 */
    expect_fail(load_bin_mem(&h, h.n, &t), SHRINK_ERR_FORMAT, "huge length", "2147483647");
    h = o;
    h.b[11] = 0x80; /* negative length */
    expect_fail(load_bin_mem(&h, h.n, &t), SHRINK_ERR_FORMAT, "negative length", "length -");
    h = o;
    h.b[3] = 0x80; /* max_token_length < 0 */
    expect_fail(load_bin_mem(&h, h.n, &t), SHRINK_ERR_FORMAT, "max len", "max_token_length");
    CHECK(t == NULL, "failed loads leave *out NULL");
}

/* A protobuf ModelProto in memory. */
static void pb_varint(bin_buf *o, uint64_t v) {
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        o->b[o->n++] = b | (v ? 0x80 : 0);
    } while (v);
}

static void pb_bytes(bin_buf *o, uint32_t field, const void *s, size_t n) {
    pb_varint(o, field << 3 | 2);
    pb_varint(o, n);
    memcpy(o->b + o->n, s, n);
    o->n += n;
}

static void pb_piece(bin_buf *o, const char *s, float score, int type) {
    bin_buf p = {.n = 0};
    pb_bytes(&p, 1, s, strlen(s));
    pb_varint(&p, 2 << 3 | 5);
    memcpy(p.b + p.n, &score, 4);
    p.n += 4;
    pb_varint(&p, 3 << 3 | 0);
    pb_varint(&p, (uint64_t)type);
    pb_bytes(o, 1, p.b, p.n);
}

static void tiny_model(bin_buf *o, int model_type) {
    o->n = 0;
    pb_piece(o, "<unk>", 0, 2);
    pb_piece(o, "<s>", 0, 3);
    pb_piece(o, "</s>", 0, 3);
    pb_piece(o, "<0x0A>", 0, 6);
    pb_piece(o, "\xe2\x96\x81", -1, 1);
    pb_piece(o, "a", -2, 1);
    pb_piece(o, "\xe2\x96\x81" "a", -0.5f, 1);
    bin_buf tr = {.n = 0};
    pb_varint(&tr, 3 << 3), pb_varint(&tr, (uint64_t)model_type);
    pb_varint(&tr, 35 << 3), pb_varint(&tr, 1);
    pb_varint(&tr, 43 << 3), pb_varint(&tr, (uint64_t)(int64_t)-1); /* pad_id -1: 10 bytes */
    pb_bytes(o, 2, tr.b, tr.n);
    bin_buf nm = {.n = 0};
    pb_bytes(&nm, 1, "identity", 8);
    pb_varint(&nm, 4 << 3), pb_varint(&nm, 0); /* remove_extra_whitespaces false */
    pb_bytes(o, 3, nm.b, nm.n);
}

static void test_model_proto(void) {
    bin_buf o;
    tiny_model(&o, 2);
    shrink_tokenizer *t = NULL;
    CHECK(sk_tok_load_spm_model_mem(o.b, o.n, "tiny.model", &t) == SHRINK_OK, "tiny.model: %s",
          shrink_last_error());
    if (t) {
        int32_t *ids = NULL;
        size_t   n   = 0;
        CHECK(shrink_tokenizer_encode(t, " a\n", 3, false, &ids, &n) == SHRINK_OK, "encode");
        int32_t want[] = {4, 6, 3}; /* ▁ ▁a <0x0A> */
        CHECK(n == 3 && memcmp(ids, want, sizeof want) == 0, "tiny.model encode (%zu ids)", n);
        char  *s = NULL;
        size_t l = 0;
        CHECK(shrink_tokenizer_decode(t, ids, n, &s, &l) == SHRINK_OK && strcmp(s, " a\n") == 0,
              "tiny.model decode \"%s\"", s ? s : "");
        shrink_free(s);
        shrink_free(ids);
        shrink_tokenizer_free(t);
        t = NULL;
    }
    for (size_t n = 0; n < o.n; n++) { /* truncations never crash */
        if (sk_tok_load_spm_model_mem(o.b, n, "tiny.model", &t) == SHRINK_OK)
            shrink_tokenizer_free(t), t = NULL;
    }
    bin_buf u;
    tiny_model(&u, 1);
    expect_fail(sk_tok_load_spm_model_mem(u.b, u.n, "tiny.model", &t), SHRINK_ERR_UNSUPPORTED,
                "unigram", "unigram");
    uint8_t varint[12] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    expect_fail(sk_tok_load_spm_model_mem(varint, sizeof varint, "bad.model", &t),
                SHRINK_ERR_FORMAT, "bad varint", "varint longer than 10 bytes");
    uint8_t runs[3] = {0x0a, 0x80, 0x80};
    expect_fail(sk_tok_load_spm_model_mem(runs, sizeof runs, "bad.model", &t), SHRINK_ERR_FORMAT,
                "varint past end", "past the end");
    uint8_t huge[8] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00};
    expect_fail(sk_tok_load_spm_model_mem(huge, sizeof huge, "bad.model", &t), SHRINK_ERR_FORMAT,
                "huge length", "bad.model: protobuf: length 4294967295 past the end");
    uint8_t group[2] = {0x0b, 0x00};
    expect_fail(sk_tok_load_spm_model_mem(group, sizeof group, "bad.model", &t),
                SHRINK_ERR_FORMAT, "group", "wire type");
    CHECK(t == NULL, "failed loads leave *out NULL");
}

static void test_json_variants(void) {
    shrink_tokenizer *t = NULL;
    /* a tiny Llama-type tokenizer.json: merges by rank */
    static const char llama_json[] =
        "{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"unk_token\": \"<unk>\","
        " \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, \"<0x0A>\": 3, \"\xe2\x96\x81\": 4,"
        " \"a\": 5, \"b\": 6, \"ab\": 7, \"\xe2\x96\x81" "ab\": 8},"
        " \"merges\": [\"a b\", \"\xe2\x96\x81 ab\"]},"
        " \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": ["
        "   {\"type\": \"Prepend\", \"prepend\": \"\xe2\x96\x81\"},"
        "   {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\xe2\x96\x81\"}]},"
        " \"added_tokens\": [{\"id\": 1, \"content\": \"<s>\", \"special\": true},"
        "                    {\"id\": 2, \"content\": \"</s>\", \"special\": true}]}";
    CHECK(sk_tok_load_hf_json_mem(llama_json, strlen(llama_json), "llama.json", &t) == SHRINK_OK,
          "llama tokenizer.json: %s", shrink_last_error());
    if (t) {
        int32_t *ids = NULL;
        size_t   n   = 0;
        CHECK(shrink_tokenizer_encode(t, "ab ab\n", 6, true, &ids, &n) == SHRINK_OK, "encode");
        int32_t want[] = {1, 8, 8, 3};
        CHECK(n == 4 && memcmp(ids, want, sizeof want) == 0, "llama.json encode (%zu ids)", n);
        char *s = NULL;
        CHECK(shrink_tokenizer_decode(t, ids, n, &s, NULL) == SHRINK_OK &&
                  strcmp(s, "ab ab\n") == 0, "llama.json decode \"%s\"", s ? s : "");
        shrink_free(s);
        shrink_free(ids);
        shrink_tokenizer_free(t);
        t = NULL;
    }
    static const char unigram[] = "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}";
    expect_fail(sk_tok_load_hf_json_mem(unigram, strlen(unigram), "u.json", &t),
                SHRINK_ERR_UNSUPPORTED, "unigram json", "u.json");
    static const char badmerge[] =
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]},"
        " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}";
    expect_fail(sk_tok_load_hf_json_mem(badmerge, strlen(badmerge), "m.json", &t),
                SHRINK_ERR_FORMAT, "merge not in vocab", "m.json");
    static const char badid[] =
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 99999999999}, \"merges\": []},"
        " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}";
    expect_fail(sk_tok_load_hf_json_mem(badid, strlen(badid), "id.json", &t), SHRINK_ERR_FORMAT,
                "huge id", "id.json");
    static const char trunc[] = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0";
    expect_fail(sk_tok_load_hf_json_mem(trunc, strlen(trunc), "t.json", &t), SHRINK_ERR_FORMAT,
                "truncated json", "t.json");
    static const char bad_merges_txt[] = "#version: 0.2\na\n";
    static const char vocab[]          = "{\"a\": 0}";
    expect_fail(sk_tok_load_gpt2_mem(vocab, strlen(vocab), bad_merges_txt, strlen(bad_merges_txt),
                                     "gpt2dir", &t),
                SHRINK_ERR_FORMAT, "merges.txt line", "gpt2dir/merges.txt: line 2");
    expect_fail(shrink_tokenizer_load(&t, "/nonexistent/tokenizer.bin"), SHRINK_ERR_IO,
                "missing file", "/nonexistent/tokenizer.bin");
    CHECK(t == NULL, "failed loads leave *out NULL");
}

/* ==== tokenizer.json built from the other files ============================================ */

typedef struct strbuf {
    char  *p;
    size_t n, cap;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p   = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_str(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_json_str(strbuf *b, const char *s, size_t n) {
    sb_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char          e[8];
        if (c == '"' || c == '\\') {
            e[0] = '\\', e[1] = (char)c;
            sb_put(b, e, 2);
        } else if (c < 0x20) {
            snprintf(e, sizeof e, "\\u%04x", c);
            sb_put(b, e, 6);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

/* The Hugging Face tokenizer.json of a GPT-2 folder: vocab.json as model.vocab, merges.txt
 * lines as model.merges, a ByteLevel pre-tokenizer. */
static char *gpt2_json(const char *dir) {
    char   vp[1100], mp[1100];
    size_t vl, ml;
    snprintf(vp, sizeof vp, "%s/vocab.json", dir);
    snprintf(mp, sizeof mp, "%s/merges.txt", dir);
    char  *v = slurp(vp, &vl), *m = slurp(mp, &ml);
    strbuf b = {0};
    if (v && m) {
        sb_str(&b, "{\"version\": \"1.0\", \"pre_tokenizer\": {\"type\": \"ByteLevel\", "
                   "\"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true},"
                   " \"decoder\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", "
                   "\"vocab\": ");
        sb_put(&b, v, vl);
        sb_str(&b, ", \"merges\": [");
        int first = 1;
        for (char *line = m; line < m + ml;) {
            char  *nl = memchr(line, '\n', (size_t)(m + ml - line));
            size_t n  = nl ? (size_t)(nl - line) : (size_t)(m + ml - line);
            if (n && strncmp(line, "#version", 8) != 0) {
                if (!first) sb_str(&b, ", ");
                sb_json_str(&b, line, n);
                first = 0;
            }
            line += n + 1;
        }
        sb_str(&b, "]}}");
    }
    sk_free(v);
    sk_free(m);
    return b.p;
}

/* The Hugging Face tokenizer.json of a sentencepiece model, as transformers' LlamaConverter
 * makes it: merges (a, b) for every mergeable piece a+b with a, b in the vocabulary, ordered by
 * the score of a+b (higher first), then by the ids of a and b. */
typedef struct hf_merge {
    float   score;
    int32_t a, b, seq;
} hf_merge;

static int hf_merge_cmp(const void *x, const void *y) {
    const hf_merge *p = x, *q = y;
    if (p->score != q->score) return p->score > q->score ? -1 : 1;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    if (p->b != q->b) return p->b < q->b ? -1 : 1;
    return p->seq - q->seq;
}

static char *spm_json(const shrink_tokenizer *t) {
    size_t    cap = 0, n = 0;
    hf_merge *m   = NULL;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (t->types[i] != SK_PIECE_NORMAL) continue;
        const char *s = sk_tok_piece_str(t, i);
        size_t      l = t->piece_len[i];
        for (size_t k = 1; k < l; k++) {
            if (((unsigned char)s[k] & 0xC0) == 0x80) continue; /* split between characters */
            int32_t a = sk_tok_find(t, s, k), b = sk_tok_find(t, s + k, l - k);
            if (a < 0 || b < 0) continue;
            if (n == cap) m = realloc(m, (cap = cap ? cap * 2 : 1024) * sizeof *m);
            m[n] = (hf_merge){t->scores[i], a, b, (int32_t)n};
            n++;
        }
    }
    qsort(m, n, sizeof *m, hf_merge_cmp);
    strbuf b = {0};
    sb_str(&b, "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", "
               "\"special\": true}, {\"id\": 1, \"content\": \"<s>\", \"special\": true}, "
               "{\"id\": 2, \"content\": \"</s>\", \"special\": true}], \"normalizer\": "
               "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": "
               "\"\xe2\x96\x81\"}, {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, "
               "\"content\": \"\xe2\x96\x81\"}]}, \"pre_tokenizer\": null, \"decoder\": "
               "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\"}, "
               "{\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, {\"type\": \"Strip\"}]}, "
               "\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"byte_fallback\": true, "
               "\"fuse_unk\": true, \"vocab\": {");
    for (int32_t i = 0; i < t->n_vocab; i++) {
        char num[32];
        if (i) sb_str(&b, ", ");
        sb_json_str(&b, sk_tok_piece_str(t, i), t->piece_len[i]);
        snprintf(num, sizeof num, ": %d", i);
        sb_str(&b, num);
    }
    sb_str(&b, "}, \"merges\": [");
    for (size_t i = 0; i < n; i++) {
        if (i) sb_str(&b, ", ");
        sb_str(&b, "[");
        sb_json_str(&b, sk_tok_piece_str(t, m[i].a), t->piece_len[m[i].a]);
        sb_str(&b, ", ");
        sb_json_str(&b, sk_tok_piece_str(t, m[i].b), t->piece_len[m[i].b]);
        sb_str(&b, "]");
    }
    sb_str(&b, "]}}");
    free(m);
    return b.p;
}

/* Writes json to a temporary tokenizer.json and runs the fixture cases through it. */
static void check_json_tokenizer(const char *json, const char *label, const char *jsonl) {
    char dir[] = "/tmp/shrink_tok_XXXXXX";
    if (!json || !mkdtemp(dir)) {
        CHECK(0, "%s: could not make a tokenizer.json", label);
        return;
    }
    char path[sizeof dir + 32];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(json, 1, strlen(json), f) == strlen(json), "write %s", path);
    if (f) fclose(f);
    printf("  (%s as tokenizer.json)\n", label);
    check_jsonl(path, jsonl);
    remove(path);
    rmdir(dir);
}

static void test_json_from_files(void) {
    char a[1024], b[1024];
    if (asset(a, sizeof a, "models/tokenizers/gpt2") &&
        asset(b, sizeof b, "fixtures/tokenizers/gpt2.jsonl")) {
        char *json = gpt2_json(a);
        check_json_tokenizer(json, "gpt2 vocab.json + merges.txt", b);
        free(json);
    }
    static const struct {
        const char *model, *jsonl;
    } spm[] = {
        {"models/stories260K/tok512.model", "fixtures/tokenizers/tok512.jsonl"},
        {"models/tokenizers/llama2/tokenizer.model", "fixtures/tokenizers/llama2.jsonl"},
    };
    for (size_t i = 0; i < sizeof spm / sizeof spm[0]; i++) {
        if (!asset(a, sizeof a, spm[i].model) || !asset(b, sizeof b, spm[i].jsonl)) continue;
        shrink_tokenizer *t = load(a);
        if (!t) continue;
        char *json = spm_json(t);
        check_json_tokenizer(json, spm[i].model, b);
        free(json);
        shrink_tokenizer_free(t);
    }
}

/* ==== speed ================================================================================ */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Encodes the 1.2 MB WikiText-2 test split (a speed check, printed; the bound is generous so
 * sanitizer builds pass) and checks that decode gives the text back. */
static void test_speed(void) {
    static const char *const toks[] = {"models/tokenizers/llama2/tokenizer.model",
                                       "models/tokenizers/gpt2"};
    char xp[1024];
    if (!asset(xp, sizeof xp, "data/corpus/wikitext2_test.raw")) return;
    size_t xl;
    char  *text = slurp(xp, &xl);
    for (size_t k = 0; text && k < sizeof toks / sizeof toks[0]; k++) {
        char tp[1024];
        if (!asset(tp, sizeof tp, toks[k])) continue;
        shrink_tokenizer *t = load(tp);
        int32_t *ids = NULL;
        size_t   n   = 0;
        double   t0  = now_s();
        shrink_status st = t ? shrink_tokenizer_encode(t, text, xl, false, &ids, &n) : 1;
        double   dt  = now_s() - t0;
        CHECK(st == SHRINK_OK, "encode wikitext2: %s", shrink_last_error());
        printf("  %-60s wikitext2_test.raw: %zu bytes -> %zu ids in %.3f s (%.1f MB/s)\n", tp, xl,
               n, dt, (double)xl / dt / 1e6);
        CHECK(dt < 20.0, "encode took %.1f s", dt);
        char  *s = NULL;
        size_t l = 0;
        CHECK(st == SHRINK_OK && shrink_tokenizer_decode(t, ids, n, &s, &l) == SHRINK_OK &&
                  l == xl && memcmp(s, text, xl) == 0, "%s: wikitext2 round trip", tp);
        shrink_free(s);
        shrink_free(ids);
        shrink_tokenizer_free(t);
    }
    sk_free(text);
}

int main(void) {
    test_tiny_bin();
    test_broken_bin();
    test_model_proto();
    test_json_variants();
    test_fixtures();
    test_greedy_pieces();
    test_ppl_tokens();
    test_json_from_files();
    test_speed();
    return test_summary("test_tokenizer");
}
