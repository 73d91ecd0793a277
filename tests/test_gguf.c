/*
 * test_gguf.c - the GGUF reader and writer.
 *
 *   1. handcrafted broken files, one enum row per way to break one (llama.cpp's
 *      tests/test-gguf.cpp idea): each must fail at once with a message naming the file;
 *      every truncation of a valid file fails too;
 *   2. llama.cpp's files (../shared/fixtures/gguf): every kv type of ggml-gguf-kv-types.gguf,
 *      stories260K.gguf's greedy text equals llama2.c's, the Q4_K_M file loads;
 *   3. llama.cpp's vocab test vectors (../shared/fixtures/tokenizers/llama.cpp): the tokenizer
 *      built from GGUF metadata encodes all 46 inputs of each vocab exactly;
 *   4. what shrink writes parses back (keys, aligned offsets) and loads.
 */
#include "test_util.h"

#include "formats/formats.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>
#include <time.h>
#include <unistd.h>

/* ==== a tiny GGUF builder ================================================================ */

typedef struct gb {
    uint8_t *p;
    size_t   n, cap;
} gb;

static void put(gb *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void u32(gb *b, uint32_t v) { put(b, &v, 4); }
static void u64(gb *b, uint64_t v) { put(b, &v, 8); }
static void str(gb *b, const char *s) {
    u64(b, strlen(s));
    put(b, s, strlen(s));
}

/* One row per breakage. */
typedef enum breakage {
    BRK_NONE,
    BRK_BAD_MAGIC,
    BRK_VERSION_1,
    BRK_VERSION_4,
    BRK_N_TENSORS_1E18,
    BRK_N_KV_1E18,
    BRK_KEY_LEN_100GB,
    BRK_STRING_LEN_100GB,
    BRK_ARRAY_LEN_1E18,
    BRK_ARRAY_BAD_TYPE,
    BRK_ARRAYS_TOO_DEEP,
    BRK_KV_BAD_TYPE,
    BRK_KV_DUPLICATE,
    BRK_BOOL_NOT_01,
    BRK_ALIGN_NOT_POW2,
    BRK_ALIGN_ZERO,
    BRK_ALIGN_WRONG_TYPE,
    BRK_N_DIMS_0,
    BRK_N_DIMS_5,
    BRK_DIMS_OVERFLOW,
    BRK_NAME_TOO_LONG,
    BRK_NAME_DUPLICATE,
    BRK_TYPE_UNKNOWN,
    BRK_TYPE_REMOVED,
    BRK_ROW_NOT_BLOCKS,
    BRK_OFFSET_UNALIGNED,
    BRK_OFFSET_OUT_OF_RANGE,
    BRK_OFFSETS_OVERLAP,
    BRK_DATA_TRUNCATED,
    BRK_COUNT
} breakage;

static const char *const breakage_names[BRK_COUNT] = {
    "none", "bad magic", "version 1", "version 4", "n_tensors 1e18", "n_kv 1e18",
    "key length 100 GB", "string length 100 GB", "array length 1e18", "array element type 13",
    "arrays nested 9 deep", "kv type 13", "duplicate key", "bool value 2", "alignment 48",
    "alignment 0", "alignment as a string", "n_dims 0", "n_dims 5", "dims overflow",
    "tensor name 64 bytes", "duplicate tensor name", "ggml type 99", "ggml type 4 (removed)",
    "q4_0 row of 8", "offset not aligned", "offset out of range", "overlapping tensors",
    "data section truncated",
};

/* A GGUF with 4 key/values and 2 f32 tensors, "a" (2, 8) at 0 and "b" (4) at 64, broken as
 * row k says. */
static gb build(breakage k) {
    gb b = {0};
    put(&b, k == BRK_BAD_MAGIC ? "GGUX" : "GGUF", 4);
    u32(&b, k == BRK_VERSION_1 ? 1 : k == BRK_VERSION_4 ? 4 : 3);
    u64(&b, k == BRK_N_TENSORS_1E18 ? 1000000000000000000ull : 2);
    u64(&b, k == BRK_N_KV_1E18 ? 1000000000000000000ull : 4);
    /* kv 1: a string */
    if (k == BRK_KEY_LEN_100GB) {
        u64(&b, 100000000000ull);
        put(&b, "general.architecture", 20);
    } else {
        str(&b, "general.architecture");
    }
    u32(&b, SK_GGUF_STRING);
    if (k == BRK_STRING_LEN_100GB) {
        u64(&b, 100000000000ull);
        put(&b, "llama", 5);
    } else {
        str(&b, "llama");
    }
    /* kv 2: an array (or nested arrays) */
    str(&b, "some.array");
    u32(&b, SK_GGUF_ARRAY);
    if (k == BRK_ARRAYS_TOO_DEEP) {
        for (int d = 0; d < 9; d++) {
            u32(&b, SK_GGUF_ARRAY);
            u64(&b, 1);
        }
        u32(&b, SK_GGUF_UINT8);
        u64(&b, 1);
        uint8_t x = 7;
        put(&b, &x, 1);
    } else {
        u32(&b, k == BRK_ARRAY_BAD_TYPE ? 13 : SK_GGUF_UINT32);
        u64(&b, k == BRK_ARRAY_LEN_1E18 ? 1000000000000000000ull : 3);
        u32(&b, 1);
        u32(&b, 2);
        u32(&b, 3);
    }
    /* kv 3: a bool */
    str(&b, k == BRK_KV_DUPLICATE ? "some.array" : "some.flag");
    u32(&b, k == BRK_KV_BAD_TYPE ? 13 : SK_GGUF_BOOL);
    uint8_t flag = k == BRK_BOOL_NOT_01 ? 2 : 1;
    put(&b, &flag, 1);
    /* kv 4: the alignment */
    str(&b, "general.alignment");
    if (k == BRK_ALIGN_WRONG_TYPE) {
        u32(&b, SK_GGUF_STRING);
        str(&b, "32");
    } else {
        u32(&b, SK_GGUF_UINT32);
        u32(&b, k == BRK_ALIGN_NOT_POW2 ? 48 : k == BRK_ALIGN_ZERO ? 0 : 32);
    }
    /* tensor a */
    str(&b, k == BRK_NAME_TOO_LONG ? "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                   : "a");
    u32(&b, k == BRK_N_DIMS_0 ? 0 : k == BRK_N_DIMS_5 ? 5 : 2);
    if (k == BRK_DIMS_OVERFLOW) {
        u64(&b, 1ull << 40);
        u64(&b, 1ull << 40);
    } else if (k != BRK_N_DIMS_0) {
        u64(&b, 8);
        u64(&b, 2);
        if (k == BRK_N_DIMS_5) {
            u64(&b, 1);
            u64(&b, 1);
            u64(&b, 1);
        }
    }
    u32(&b, k == BRK_TYPE_UNKNOWN ? 99 : k == BRK_TYPE_REMOVED ? 4 : k == BRK_ROW_NOT_BLOCKS ? 2 : 0);
    u64(&b, 0);
    /* tensor b */
    str(&b, k == BRK_NAME_DUPLICATE ? "a" : "b");
    u32(&b, 1);
    u64(&b, 4);
    u32(&b, 0);
    u64(&b, k == BRK_OFFSET_UNALIGNED ? 68 : k == BRK_OFFSET_OUT_OF_RANGE ? (1ull << 40)
             : k == BRK_OFFSETS_OVERLAP ? 32 : 64);
    while (b.n % 32) put(&b, "", 1);
    float data[24];
    for (int i = 0; i < 24; i++) data[i] = (float)i;
    put(&b, data, k == BRK_DATA_TRUNCATED ? 70 : 80);
    return b;
}

static void test_hostile(void) {
    gb ok = build(BRK_NONE);
    sk_gguf *g = NULL;
    shrink_status st = sk_gguf_parse(ok.p, ok.n, "hostile.gguf", &g);
    CHECK(st == SHRINK_OK, "valid handcrafted file: %s", shrink_last_error());
    if (g) {
        CHECK(g->n_kv == 4 && g->n_tensors == 2 && g->alignment == 32, "counts");
        const sk_gguf_kv *kv = sk_gguf_find(g, "some.array");
        CHECK(kv && kv->val.arr_type == SK_GGUF_UINT32 && kv->val.arr_n == 3, "array kv");
        CHECK(g->tensors[1].offset == 64 && g->tensors[1].bytes == 16, "tensor b");
        sk_gguf_free(g);
    }
    for (int k = 1; k < BRK_COUNT; k++) {
        gb b = build((breakage)k);
        size_t live = sk_alloc_bytes_live();
        double t0 = shrink_time();
        g = NULL;
        st = sk_gguf_parse(b.p, b.n, "hostile.gguf", &g);
        double dt = shrink_time() - t0;
        CHECK(st != SHRINK_OK && !g, "row '%s' parsed", breakage_names[k]);
        CHECK(strstr(shrink_last_error(), "hostile.gguf") != NULL, "row '%s': message '%s' does "
              "not name the file", breakage_names[k], shrink_last_error());
        CHECK(dt < 0.05, "row '%s' took %.3f s", breakage_names[k], dt);
        CHECK(sk_alloc_bytes_live() == live, "row '%s' leaks", breakage_names[k]);
        if (getenv("VERBOSE")) printf("  %-26s %s\n", breakage_names[k], shrink_last_error());
        sk_gguf_free(g);
        free(b.p);
    }
    /* every truncation of the valid file fails */
    int bad = 0;
    for (size_t n = 0; n < ok.n; n++) {
        g = NULL;
        if (sk_gguf_parse(ok.p, n, "hostile.gguf", &g) == SHRINK_OK) bad++;
        sk_gguf_free(g);
    }
    CHECK(bad == 0, "%d truncations of a %zu-byte file parsed", bad, ok.n);
    free(ok.p);
}

/* ==== llama.cpp's files ================================================================== */

static void test_kv_types(void) {
    char path[1024];
    if (!test_need_shared(path, sizeof path, "fixtures/gguf/ggml-gguf-kv-types.gguf")) return;
    sk_map mp;
    if (sk_map_file(path, &mp) != SHRINK_OK) {
        CHECK(0, "%s: %s", path, shrink_last_error());
        return;
    }
    sk_gguf *g;
    shrink_status st = sk_gguf_parse(mp.data, mp.size, path, &g);
    CHECK(st == SHRINK_OK, "%s: %s", path, shrink_last_error());
    if (st) {
        sk_unmap(&mp);
        return;
    }
    const sk_gguf_kv *kv;
#define KV(key) (kv = sk_gguf_find(g, "some.parameter." key))
    CHECK(KV("uint8") && kv->val.type == SK_GGUF_UINT8 && kv->val.v.u == 0x12, "uint8");
    CHECK(KV("int8") && kv->val.type == SK_GGUF_INT8 && kv->val.v.i == -0x13, "int8");
    CHECK(KV("uint16") && kv->val.type == SK_GGUF_UINT16 && kv->val.v.u == 0x1234, "uint16");
    CHECK(KV("int16") && kv->val.type == SK_GGUF_INT16 && kv->val.v.i == -0x1235, "int16");
    CHECK(KV("uint32") && kv->val.type == SK_GGUF_UINT32 && kv->val.v.u == 0x12345678, "uint32");
    CHECK(KV("int32") && kv->val.type == SK_GGUF_INT32 && kv->val.v.i == -0x12345679, "int32");
    CHECK(KV("float32") && kv->val.type == SK_GGUF_FLOAT32 &&
          (float)kv->val.v.f == 0.123456789f, "float32");
    CHECK(KV("uint64") && kv->val.type == SK_GGUF_UINT64 && kv->val.v.u == 0x123456789abcdef0ull,
          "uint64");
    CHECK(KV("int64") && kv->val.type == SK_GGUF_INT64 && kv->val.v.i == -0x123456789abcdef1ll,
          "int64");
    CHECK(KV("float64") && kv->val.type == SK_GGUF_FLOAT64 &&
          kv->val.v.f == 0.1234567890123456789, "float64");
    CHECK(KV("bool") && kv->val.type == SK_GGUF_BOOL && kv->val.v.u == 1, "bool");
    CHECK(KV("string") && kv->val.type == SK_GGUF_STRING && kv->val.v.s.len == 11 &&
          !memcmp(kv->val.v.s.s, "hello world", 11), "string");
    CHECK(KV("arr.i16") && kv->val.arr_type == SK_GGUF_INT16 && kv->val.arr_n == 4 &&
          kv->val.arr_data[6] == 4, "arr.i16");
    CHECK(KV("arr.f32") && kv->val.arr_type == SK_GGUF_FLOAT32 && kv->val.arr_n == 3 &&
          sk_rd_f32(kv->val.arr_data + 4) == 2.718f, "arr.f32");
    if (KV("arr.str") && kv->val.arr_n == 3) {
        uint64_t pos = 0;
        sk_gguf_str a = sk_gguf_array_next_str(&kv->val, &pos);
        sk_gguf_str b = sk_gguf_array_next_str(&kv->val, &pos);
        sk_gguf_str c = sk_gguf_array_next_str(&kv->val, &pos);
        CHECK(a.len == 5 && !memcmp(a.s, "hello", 5) && b.len == 5 && c.len == 1 && c.s[0] == '!',
              "arr.str");
    } else {
        CHECK(0, "arr.str missing");
    }
#undef KV
    static const uint64_t offs[10] = {0, 3040, 3072, 9792, 9824, 10208, 10272, 10304, 10528,
                                      10560};
    CHECK(g->n_tensors == 10 && g->data_offset == 1216, "10 tensors, data at %" PRIu64,
          g->data_offset);
    for (int64_t i = 0; i < g->n_tensors && i < 10; i++) {
        const sk_gguf_tensor *t = &g->tensors[i];
        CHECK(t->offset == offs[i], "tensor %" PRId64 " offset %" PRIu64, i, t->offset);
        float v = sk_rd_f32(t->data), w = sk_rd_f32(t->data + t->bytes - 4);
        CHECK(v == 100.0f + (float)i && w == v, "tensor_%" PRId64 " holds %g", i, (double)v);
    }
    sk_gguf_free(g);
    sk_unmap(&mp);
}

/* Greedy decoding from BOS (as test_decoder does) must give llama2.c's text. */
static void test_stories_gguf(void) {
    char path[1024], ref[1024];
    if (!test_need_shared(path, sizeof path, "fixtures/gguf/stories260K.gguf") ||
        !test_need_asset(ref, sizeof ref, "fixtures/stories260K/greedy200.txt"))
        return;
    shrink_model *m;
    shrink_status st = shrink_model_load(&m, path, NULL);
    CHECK(st == SHRINK_OK, "%s: %s", path, shrink_last_error());
    if (st) return;
    shrink_model_info mi;
    shrink_model_get_info(m, &mi);
    CHECK(!strcmp(mi.format, "gguf") && mi.tied_embeddings && mi.rope_interleaved &&
          mi.max_seq_len == 128 && mi.n_kv_heads == 4, "stories260K.gguf config");
    const shrink_tokenizer *tok = shrink_model_tokenizer(m);
    CHECK(tok && shrink_tokenizer_vocab_size(tok) == 512, "GGUF tokenizer");
    shrink_context *ctx;
    char *text = NULL;
    size_t tlen = 0, rlen;
    if (shrink_context_create(&ctx, m, 128, 1) == SHRINK_OK && tok) {
        float *logits = malloc(512 * sizeof *logits);
        int32_t id = 1, prev = 1;
        char buf[64], out[4096];
        size_t n = 0;
        for (int pos = 0; pos < 127; pos++) {
            shrink_context_eval(ctx, &id, 1, pos, logits, 1);
            int32_t best = 0;
            for (int v = 1; v < 512; v++)
                if (logits[v] > logits[best]) best = v;
            int32_t k = shrink_tokenizer_piece(tok, prev, best, buf, sizeof buf);
            if (k > 0 && n + (size_t)k < sizeof out) {
                memcpy(out + n, buf, (size_t)k);
                n += (size_t)k;
            }
            prev = id = best;
        }
        sk_read_file(ref, 1 << 20, &text, &rlen);
        tlen = n;
        CHECK(text && n > 300 && n <= rlen && !memcmp(out, text, n),
              "stories260K.gguf greedy text differs from greedy200.txt:\n%.*s", (int)n, out);
        free(logits);
        shrink_context_free(ctx);
    }
    (void)tlen;
    sk_free(text);
    shrink_model_free(m);
}

/* llama.cpp's block types load (their kernels and fixture checks: test_quants.c). */
static void test_quantized_refused(void) {
    char path[1024];
    if (!test_need_shared(path, sizeof path, "fixtures/gguf/mix-llama-14m-Q4_K_M.gguf")) return;
    shrink_model *m;
    shrink_status st = shrink_model_load(&m, path, NULL);
    CHECK(st == SHRINK_OK, "Q4_K_M: status %d, '%s'", st, shrink_last_error());
    if (st) return;
    shrink_model_info mi;
    shrink_model_get_info(m, &mi);
    CHECK(mi.n_layers == 6, "Q4_K_M: %d layers", (int)mi.n_layers);
    shrink_model_free(m);
}

/* ==== llama.cpp's vocab tests ============================================================ */

static void vocab_case(const char *name) {
    char path[1024], inp[1040], outp[1040], rel[256];
    snprintf(rel, sizeof rel, "fixtures/tokenizers/llama.cpp/%s", name);
    if (!test_need_shared(path, sizeof path, rel)) return;
    snprintf(inp, sizeof inp, "%s.inp", path);
    snprintf(outp, sizeof outp, "%s.out", path);
    sk_map mp;
    char *in = NULL, *out = NULL;
    size_t in_len, out_len;
    if (sk_map_file(path, &mp) || sk_read_file(inp, 1 << 20, &in, &in_len) ||
        sk_read_file(outp, 1 << 20, &out, &out_len)) {
        CHECK(0, "%s: %s", name, shrink_last_error());
        return;
    }
    sk_gguf *g;
    shrink_tokenizer *tok = NULL;
    shrink_status st = sk_gguf_parse(mp.data, mp.size, path, &g);
    if (!st) {
        st = sk_gguf_tokenizer(g, path, &tok);
        sk_gguf_free(g);
    }
    CHECK(st == SHRINK_OK && tok, "%s: %s", name, shrink_last_error());
    int cases = 0, good = 0;
    const char *sep = "\n__ggml_vocab_test__\n";
    char *p = in, *o = out;
    while (tok && p < in + in_len) {
        char *e = strstr(p, sep);
        if (!e) break;
        char *nl = strchr(o, '\n');
        if (!nl) break;
        *nl = '\0';
        int32_t want[512];
        int nw = 0;
        for (char *q = o; *q;) {
            char *end;
            long v = strtol(q, &end, 10);
            if (end == q) break;
            if (nw < 512) want[nw++] = (int32_t)v;
            q = end;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        st = shrink_tokenizer_encode(tok, p, (size_t)(e - p), false, &ids, &n);
        int same = st == SHRINK_OK && (int)n == nw && (!n || !memcmp(ids, want, n * 4));
        cases++;
        good += same;
        if (!same && getenv("VERBOSE"))
            printf("  %s case %d: '%.*s' gave %zu ids, want %d\n", name, cases, (int)(e - p), p,
                   n, nw);
        shrink_free(ids);
        p = e + strlen(sep);
        o = nl + 1;
    }
    printf("  %-28s %d/%d cases\n", name, good, cases);
    CHECK(cases == 46 && good == cases, "%s: %d of %d cases", name, good, cases);
    shrink_tokenizer_free(tok);
    sk_free(in);
    sk_free(out);
    sk_unmap(&mp);
}

/* ==== writing ============================================================================ */

static void test_write_parse(void) {
    char path[2048];
    if (!test_need_model(path, sizeof path, "tiny-llama-gqa")) return;
    char dir[] = "/tmp/shrink_gguf_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    if (strstr(dir, "XXXXXX")) return;
    char out[2100];
    snprintf(out, sizeof out, "%s/t.gguf", dir);
    shrink_convert_params cp = shrink_convert_params_default();
    cp.dtype = SHRINK_DTYPE_F16;
    shrink_status st = shrink_convert(path, out, &cp, NULL);
    CHECK(st == SHRINK_OK, "convert: %s", shrink_last_error());
    sk_map mp;
    if (!st && !sk_map_file(out, &mp)) {
        sk_gguf *g;
        st = sk_gguf_parse(mp.data, mp.size, out, &g);
        CHECK(st == SHRINK_OK, "parse written file: %s", shrink_last_error());
        if (!st) {
            const sk_gguf_kv *a = sk_gguf_find(g, "general.architecture");
            const sk_gguf_kv *ft = sk_gguf_find(g, "general.file_type");
            const sk_gguf_kv *kv = sk_gguf_find(g, "llama.attention.head_count_kv");
            CHECK(a && a->val.v.s.len == 5 && !memcmp(a->val.v.s.s, "llama", 5), "architecture");
            CHECK(ft && ft->val.type == SK_GGUF_UINT32 && ft->val.v.u == 1, "file_type f16");
            CHECK(kv && kv->val.v.u == 2, "head_count_kv");
            CHECK(sk_gguf_find(g, "tokenizer.ggml.tokens") && sk_gguf_find(g, "tokenizer.ggml.scores"),
                  "tokenizer arrays");
            for (int64_t i = 0; i < g->n_tensors; i++) {
                const sk_gguf_tensor *t = &g->tensors[i];
                CHECK((g->data_offset + t->offset) % 32 == 0, "tensor %" PRId64 " unaligned", i);
                CHECK(t->type == (t->n_dims == 1 ? 0u : 1u), "tensor %" PRId64 " type %u", i,
                      t->type);
            }
            CHECK(g->n_tensors == 3 + 2 * 9, "%" PRId64 " tensors", g->n_tensors);
            sk_gguf_free(g);
        }
        sk_unmap(&mp);
    }
    unlink(out);
    rmdir(dir);
}

int main(void) {
    test_hostile();
    /* each fixture case: a failure if its file is missing with ../shared present, a counted
     * skip (exit 77) without ../shared */
    test_kv_types();
    test_stories_gguf();
    test_quantized_refused();
    vocab_case("ggml-vocab-llama-spm.gguf");
    vocab_case("ggml-vocab-gpt-2.gguf");
    vocab_case("ggml-vocab-phi-3.gguf");
    test_write_parse();
    return test_summary("test_gguf");
}
