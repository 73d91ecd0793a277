/*
 * test_formats.c - the readers (safetensors, sharded index, llama2.c, config.json) on
 * handcrafted files, one enum row per way to break each (llama.cpp tests/test-gguf.cpp
 * style), then whole folders in a temp dir, then the real models in ../shared/models.
 * Every failure must come with the right status and a message naming the file.
 */
#include "core/json.h"
#include "model/source.h"
#include "model/model.h"
#include "test_util.h"

#include <unistd.h>

/* ==== safetensors in memory =============================================================== */

/* A safetensors file: header text + data_len bytes of data (value i -> byte i). */
static uint8_t *st_build(const char *header, size_t data_len, uint64_t hlen_override,
                         size_t *len) {
    size_t h = strlen(header);
    *len = 8 + h + data_len;
    uint8_t *b = malloc(*len + 1);
    uint64_t hl = hlen_override ? hlen_override : h;
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(hl >> (8 * i));
    memcpy(b + 8, header, h);
    for (size_t i = 0; i < data_len; i++) b[8 + h + i] = (uint8_t)i;
    return b;
}

typedef enum st_case {
    ST_TOO_SHORT,
    ST_HEADER_PAST_END,
    ST_HEADER_HUGE,
    ST_GARBAGE,
    ST_BAD_JSON,
    ST_ENTRY_NOT_OBJECT,
    ST_MISSING_DTYPE,
    ST_MISSING_SHAPE,
    ST_NEGATIVE_DIM,
    ST_FRACTIONAL_DIM,
    ST_SHAPE_OVERFLOW,
    ST_BYTES_OVERFLOW,
    ST_OFFSETS_PAST_END,
    ST_OFFSETS_REVERSED,
    ST_OFFSETS_SIZE_MISMATCH,
    ST_OFFSETS_NOT_PAIR,
    ST_UNSUPPORTED_DTYPE,
    ST_UNKNOWN_DTYPE,
    ST_TOO_MANY_DIMS,
    ST_DUPLICATE_NAME,
    ST_COUNT
} st_case;

static const struct {
    const char   *header;
    size_t        data_len;
    uint64_t      hlen;      /* 0: the real length */
    shrink_status want;
    const char   *says;      /* the message contains this */
} st_cases[ST_COUNT] = {
    [ST_TOO_SHORT]             = {NULL, 0, 0, SHRINK_ERR_FORMAT, "too short"},
    [ST_HEADER_PAST_END]       = {"{}", 0, 1000, SHRINK_ERR_FORMAT, "past the end"},
    [ST_HEADER_HUGE]           = {"{}", 0, UINT64_MAX - 3, SHRINK_ERR_FORMAT, "past the end"},
    [ST_GARBAGE]               = {"GGUF\3\0\0\0", 16, 0, SHRINK_ERR_FORMAT, "not a safetensors"},
    [ST_BAD_JSON]              = {"{\"a\": {\"dtype\": \"F32\"", 0, 0, SHRINK_ERR_FORMAT,
                                  "JSON error"},
    [ST_ENTRY_NOT_OBJECT]      = {"{\"a\": 5}", 0, 0, SHRINK_ERR_FORMAT, "'a'"},
    [ST_MISSING_DTYPE]         = {"{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, 0,
                                  SHRINK_ERR_FORMAT, "dtype"},
    [ST_MISSING_SHAPE]         = {"{\"a\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4,
                                  0, SHRINK_ERR_FORMAT, "shape"},
    [ST_NEGATIVE_DIM]          = {"{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], "
                                  "\"data_offsets\": [0, 4]}}", 4, 0, SHRINK_ERR_FORMAT, "shape"},
    [ST_FRACTIONAL_DIM]        = {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1.5], "
                                  "\"data_offsets\": [0, 4]}}", 4, 0, SHRINK_ERR_FORMAT, "shape"},
    [ST_SHAPE_OVERFLOW]        = {"{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, "
                                  "4294967296, 16], \"data_offsets\": [0, 0]}}", 0, 0,
                                  SHRINK_ERR_FORMAT, "overflow"},
    [ST_BYTES_OVERFLOW]        = {"{\"w\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, "
                                  "2], \"data_offsets\": [0, 0]}}", 0, 0, SHRINK_ERR_FORMAT,
                                  "overflow"},
    [ST_OFFSETS_PAST_END]      = {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], "
                                  "\"data_offsets\": [4, 12]}}", 8, 0, SHRINK_ERR_FORMAT,
                                  "out of the data section"},
    [ST_OFFSETS_REVERSED]      = {"{\"a\": {\"dtype\": \"F32\", \"shape\": [0], "
                                  "\"data_offsets\": [8, 0]}}", 8, 0, SHRINK_ERR_FORMAT,
                                  "out of the data section"},
    [ST_OFFSETS_SIZE_MISMATCH] = {"{\"a\": {\"dtype\": \"F32\", \"shape\": [3], "
                                  "\"data_offsets\": [0, 8]}}", 16, 0, SHRINK_ERR_FORMAT,
                                  "need 12"},
    [ST_OFFSETS_NOT_PAIR]      = {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], "
                                  "\"data_offsets\": [0]}}", 4, 0, SHRINK_ERR_FORMAT,
                                  "data_offsets"},
    [ST_UNSUPPORTED_DTYPE]     = {"{\"tokens\": {\"dtype\": \"I32\", \"shape\": [2], "
                                  "\"data_offsets\": [0, 8]}}", 8, 0, SHRINK_ERR_UNSUPPORTED,
                                  "'tokens': unsupported dtype I32"},
    [ST_UNKNOWN_DTYPE]         = {"{\"x\": {\"dtype\": \"Q9_K\", \"shape\": [2], "
                                  "\"data_offsets\": [0, 8]}}", 8, 0, SHRINK_ERR_UNSUPPORTED,
                                  "unsupported dtype 'Q9_K'"},
    [ST_TOO_MANY_DIMS]         = {"{\"x\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1], "
                                  "\"data_offsets\": [0, 4]}}", 4, 0, SHRINK_ERR_UNSUPPORTED,
                                  "dimensions"},
    [ST_DUPLICATE_NAME]        = {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": "
                                  "[0, 4]}, \"a\": {\"dtype\": \"F32\", \"shape\": [1], "
                                  "\"data_offsets\": [4, 8]}}", 8, 0, SHRINK_ERR_FORMAT,
                                  "more than once"},
};

static void test_st_broken(void) {
    for (int c = 0; c < ST_COUNT; c++) {
        size_t len;
        uint8_t *b = st_cases[c].header
                         ? st_build(st_cases[c].header, st_cases[c].data_len, st_cases[c].hlen, &len)
                         : (len = 5, calloc(1, 5));
        sk_tensor *t = (sk_tensor *)1;
        int64_t n = -1;
        shrink_status st = sk_safetensors_parse(b, len, "broken.safetensors", &t, &n);
        const char *msg = shrink_last_error();
        CHECK(st == st_cases[c].want, "st case %d: status %d, want %d (%s)", c, st,
              st_cases[c].want, msg);
        CHECK(t == NULL && n == 0, "st case %d: outputs not cleared", c);
        CHECK(strstr(msg, "broken.safetensors") && strstr(msg, st_cases[c].says),
              "st case %d: message '%s' lacks '%s'", c, msg, st_cases[c].says);
        free(b);
    }
}

static void test_st_valid(void) {
    /* unaligned f32 data (header of odd length), metadata, f16/bf16, a scalar */
    const char *h = "{\"__metadata__\": {\"format\": \"pt\"}, "
                    "\"b\": {\"dtype\": \"F16\", \"shape\": [2, 3], \"data_offsets\": [4, 16]}, "
                    "\"a\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4]}, "
                    "\"c\": {\"dtype\": \"BF16\", \"shape\": [0, 5], \"data_offsets\": [16, 16]}} ";
    size_t len;
    uint8_t *b = st_build(h, 16, 0, &len);
    sk_tensor *t;
    int64_t n;
    shrink_status st = sk_safetensors_parse(b, len, "ok.safetensors", &t, &n);
    CHECK(st == SHRINK_OK, "valid file: %s", shrink_last_error());
    if (st == SHRINK_OK) {
        CHECK(n == 3, "3 tensors (metadata skipped), got %lld", (long long)n);
        CHECK(strcmp(t[0].name, "b") == 0 && t[0].dtype == SHRINK_DTYPE_F16 && t[0].n_dims == 2 &&
              t[0].shape[0] == 2 && t[0].shape[1] == 3 && t[0].bytes == 12, "tensor b");
        CHECK(t[0].data == b + 8 + strlen(h) + 4, "b data pointer");
        CHECK(t[1].n_dims == 0 && t[1].bytes == 4, "scalar a");
        CHECK(t[2].dtype == SHRINK_DTYPE_BF16 && t[2].bytes == 0, "empty c");
        sk_tensors_free(t, n);
    }
    /* the raw variant accepts any safetensors dtype (fixtures: I32 tokens, F64 grads) */
    const char *h2 = "{\"tokens\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                     " \"loss\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [8, 16]}}";
    uint8_t *b2 = st_build(h2, 16, 0, &len);
    sk_st_raw *r;
    st = sk_safetensors_parse_raw(b2, len, "raw.safetensors", &r, &n);
    CHECK(st == SHRINK_OK && n == 2, "raw parse: %s", shrink_last_error());
    if (st == SHRINK_OK) {
        CHECK(strcmp(r[0].dtype, "I32") == 0 && r[0].elem_bytes == 4 && r[0].n_elems == 2, "I32");
        CHECK(strcmp(r[1].dtype, "F64") == 0 && r[1].elem_bytes == 8, "F64");
        sk_st_raw_free(r, n);
    }
    free(b2);

    /* every truncation of a valid file fails cleanly */
    for (size_t k = 0; k < len; k++) {
        st = sk_safetensors_parse(b, k, "cut.safetensors", &t, &n);
        CHECK(st != SHRINK_OK && t == NULL, "truncated to %zu accepted", k);
    }
    free(b);
}

/* Deterministic mutations of a valid file: every parse must fail or succeed cleanly (ASan
 * and UBSan watch), never crash; outputs are consistent with the status. */
static void test_st_mutations(void) {
    const char *h = "{\"__metadata__\": {\"k\": \"v\"}, \"w\": {\"dtype\": \"F16\", \"shape\": "
                    "[2, 3], \"data_offsets\": [0, 12]}, \"v\": {\"dtype\": \"F32\", \"shape\": "
                    "[1], \"data_offsets\": [12, 16]}}";
    size_t len;
    uint8_t *orig = st_build(h, 16, 0, &len);
    uint8_t *b = malloc(len);
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    int failures = 0;
    for (int it = 0; it < 20000; it++) {
        memcpy(b, orig, len);
        int flips = 1 + it % 4;
        for (int f = 0; f < flips; f++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t at = (size_t)(rng % len);
            b[at] = (uint8_t)(rng >> 32);
        }
        sk_tensor *t;
        int64_t n;
        shrink_status st = sk_safetensors_parse(b, len, "mut.safetensors", &t, &n);
        if (st == SHRINK_OK) {
            for (int64_t i = 0; i < n; i++)
                failures += (const uint8_t *)t[i].data + t[i].bytes > b + len;
            sk_tensors_free(t, n);
        } else {
            failures += t != NULL || !strstr(shrink_last_error(), "mut.safetensors");
        }
    }
    CHECK(failures == 0, "%d inconsistent results on mutated files", failures);
    free(b);
    free(orig);
}

/* ==== sharded index ======================================================================= */

static void test_index(void) {
    const char *ok = "{\"metadata\": {\"total_size\": 8}, \"weight_map\": {\"a\": \"m-1.safetensors\","
                     " \"b\": \"m-2.safetensors\", \"c\": \"m-1.safetensors\"}}";
    char **f;
    int n;
    shrink_status st = sk_safetensors_index_parse(ok, strlen(ok), "idx.json", &f, &n);
    CHECK(st == SHRINK_OK && n == 2, "index: %s", shrink_last_error());
    if (st == SHRINK_OK) {
        CHECK(strcmp(f[0], "m-1.safetensors") == 0 && strcmp(f[1], "m-2.safetensors") == 0,
              "shards in first-appearance order, each once");
        sk_strings_free(f, n);
    }
    const char *bad[] = {
        "{\"weight_map\": {\"a\": \"../../etc/passwd\"}}",
        "{\"weight_map\": {\"a\": \"/abs.safetensors\"}}",
        "{\"weight_map\": {\"a\": 3}}",
        "{\"weight_map\": {}}",
        "{\"metadata\": {}}",
        "[1, 2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st = sk_safetensors_index_parse(bad[i], strlen(bad[i]), "idx.json", &f, &n);
        CHECK(st == SHRINK_ERR_FORMAT && f == NULL && strstr(shrink_last_error(), "idx.json"),
              "bad index %zu: %d %s", i, st, shrink_last_error());
    }
}

/* ==== llama2.c in memory ================================================================== */

/* A tiny checkpoint: D 8, F 12, L 2, H 2, KV 1, V 10 (negative: untied), S 4. Float k of the
 * body holds the value k. */
static uint8_t *l2c_build(const int32_t hdr[7], size_t *len) {
    int64_t D = hdr[0], F = hdr[1], L = hdr[2], H = hdr[3], KV = hdr[4];
    int64_t V = hdr[5] < 0 ? -(int64_t)hdr[5] : hdr[5], S = hdr[6];
    int64_t hd = D / H, kvd = KV * hd;
    int64_t n = V * D + L * D + L * D * D + 2 * L * kvd * D + L * D * D + L * D + 3 * L * F * D +
                D + S * hd + (hdr[5] < 0 ? V * D : 0);
    *len = 28 + (size_t)n * 4;
    uint8_t *b = malloc(*len);
    for (int i = 0; i < 7; i++) {
        uint32_t u = (uint32_t)hdr[i];
        for (int k = 0; k < 4; k++) b[4 * i + k] = (uint8_t)(u >> (8 * k));
    }
    for (int64_t k = 0; k < n; k++) {
        float f = (float)k;
        memcpy(b + 28 + 4 * k, &f, 4);
    }
    return b;
}

static const int32_t l2c_good[7] = {8, 12, 2, 2, 1, -10, 4};

static const sk_tensor *find(const sk_tensor *t, int64_t n, const char *name) {
    for (int64_t i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0) return &t[i];
    return NULL;
}

static float first_f32(const sk_tensor *t) {
    float f;
    memcpy(&f, t->data, 4);
    return f;
}

static void test_l2c_valid(void) {
    size_t len;
    uint8_t *b = l2c_build(l2c_good, &len);
    sk_config c;
    sk_tensor *t;
    int64_t n;
    shrink_status st = sk_llama2c_parse(b, len, "tiny.bin", &c, &t, &n);
    CHECK(st == SHRINK_OK, "tiny llama2c: %s", shrink_last_error());
    if (st == SHRINK_OK) {
        CHECK(c.dim == 8 && c.ffn_dim == 12 && c.n_layers == 2 && c.n_heads == 2 &&
              c.n_kv_heads == 1 && c.head_dim == 4 && c.vocab_size == 10 && c.max_seq_len == 4,
              "config sizes");
        CHECK(!c.tied && c.rope_layout == SK_ROPE_INTERLEAVED && c.bos_id == 1 && c.add_bos,
              "untied, interleaved rope");
        CHECK(n == 1 + 2 * 9 + 1 + 1, "tensor count %lld", (long long)n);
        /* offsets in floats: emb 80, att norms 16, wq 128, wk 64, wv 64, wo 128, ffn norms 16,
         * w1 192, w2 192, w3 192, final 8, freq 8 */
        const sk_tensor *x;
        x = find(t, n, "model.layers.1.self_attn.q_proj.weight");
        CHECK(x && x->shape[0] == 8 && x->shape[1] == 8 && first_f32(x) == 80 + 16 + 64,
              "wq[1] offset");
        x = find(t, n, "model.layers.0.self_attn.k_proj.weight");
        CHECK(x && x->shape[0] == 4 && x->shape[1] == 8 && first_f32(x) == 80 + 16 + 128,
              "wk[0] offset and shape (KVD, D)");
        x = find(t, n, "model.layers.1.mlp.down_proj.weight");
        CHECK(x && x->shape[0] == 8 && x->shape[1] == 12 &&
              first_f32(x) == 80 + 16 + 128 + 64 + 64 + 128 + 16 + 192 + 96, "w2[1] (D, F)");
        x = find(t, n, "model.norm.weight");
        CHECK(x && x->n_dims == 1 && first_f32(x) == 1072, "final norm");
        x = find(t, n, "lm_head.weight");
        CHECK(x && first_f32(x) == 1072 + 8 + 16, "wcls after the freq_cis tables");
        sk_tensors_free(t, n);
    }
    free(b);
}

typedef enum l2c_case {
    L2C_SHORT_HEADER,
    L2C_TRUNCATED,
    L2C_TRAILING_BYTES,
    L2C_ZERO_DIM,
    L2C_NEGATIVE_LAYERS,
    L2C_ZERO_HEADS,
    L2C_HEADS_NOT_DIVIDING_DIM,
    L2C_KV_NOT_DIVIDING_HEADS,
    L2C_KV_ABOVE_HEADS,
    L2C_ODD_HEAD_SIZE,
    L2C_VOCAB_ZERO,
    L2C_VOCAB_INT_MIN,
    L2C_HUGE_SIZES,
    L2C_MAGIC_AK42,
    L2C_COUNT
} l2c_case;

static void test_l2c_broken(void) {
    for (int c = 0; c < L2C_COUNT; c++) {
        int32_t h[7];
        memcpy(h, l2c_good, sizeof h);
        size_t len, cut = 0, extra = 0;
        shrink_status want = SHRINK_ERR_FORMAT;
        const char *says = NULL;
        switch ((l2c_case)c) {
        case L2C_SHORT_HEADER:           cut = 1; break; /* handled below */
        case L2C_TRUNCATED:              cut = 2; says = "implies"; break;
        case L2C_TRAILING_BYTES:         extra = 4; says = "implies"; break;
        case L2C_ZERO_DIM:               h[0] = 0; says = "dim"; break;
        case L2C_NEGATIVE_LAYERS:        h[2] = -3; says = "n_layers"; break;
        case L2C_ZERO_HEADS:             h[3] = 0; says = "n_heads"; break;
        case L2C_HEADS_NOT_DIVIDING_DIM: h[3] = 3; h[4] = 1; says = "n_heads"; break;
        case L2C_KV_NOT_DIVIDING_HEADS:  h[0] = 12; h[3] = 3; h[4] = 2; says = "n_kv_heads"; break;
        case L2C_KV_ABOVE_HEADS:         h[4] = 4; says = "n_kv_heads"; break;
        case L2C_ODD_HEAD_SIZE:          h[0] = 6; h[3] = 2; says = "head size"; break;
        case L2C_VOCAB_ZERO:             h[5] = 0; says = "vocab_size"; break;
        case L2C_VOCAB_INT_MIN:          h[5] = INT32_MIN; says = "vocab_size"; break;
        case L2C_HUGE_SIZES:             h[0] = 1 << 20; h[1] = 1 << 20; h[2] = 4096;
                                         h[3] = 1 << 10; h[4] = 1 << 10; says = "implies"; break;
        case L2C_MAGIC_AK42:             want = SHRINK_ERR_UNSUPPORTED; says = "ak42"; break;
        case L2C_COUNT:                  break;
        }
        uint8_t *b;
        int valid_sizes = h[0] > 0 && h[0] <= 64 && h[3] > 0 && h[2] > 0 && h[4] > 0 &&
                          h[5] != 0 && h[5] != INT32_MIN && h[0] % h[3] == 0;
        if (valid_sizes) {
            b = l2c_build(h, &len);
            b = realloc(b, len + extra);
            memset(b + len, 0, extra);
            len += extra;
        } else {
            len = 28 + 4096;
            b = calloc(1, len);
            for (int i = 0; i < 7; i++) memcpy(b + 4 * i, &h[i], 4); /* little-endian host */
        }
        if (c == L2C_MAGIC_AK42) memcpy(b, "24ka", 4);
        if (c == L2C_SHORT_HEADER) {
            len = 27;
            says = "too short";
        } else {
            len -= cut;
        }
        sk_config cfg;
        sk_tensor *t = (sk_tensor *)1;
        int64_t n = -1;
        shrink_status st = sk_llama2c_parse(b, len, "bad.bin", &cfg, &t, &n);
        const char *msg = shrink_last_error();
        CHECK(st == want, "l2c case %d: status %d want %d (%s)", c, st, want, msg);
        CHECK(t == NULL && n == 0, "l2c case %d: outputs set", c);
        CHECK(strstr(msg, "bad.bin") && (!says || strstr(msg, says)),
              "l2c case %d: message '%s' lacks '%s'", c, msg, says ? says : "");
        free(b);
    }
}

/* ==== config.json in memory ================================================================ */

/* %s: extra members placed first (the first of duplicate keys wins), as ", \"k\": v" */
static const char *cfg_llama =
    "{%s\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 176, "
    "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
    "\"vocab_size\": 512, \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-05, "
    "\"rope_theta\": 10000.0, \"tie_word_embeddings\": false, \"hidden_act\": \"silu\", "
    "\"torch_dtype\": \"float32\", \"bos_token_id\": 1, \"eos_token_id\": 2}";

/* ", \"k\": v" -> "\"k\": v, " */
static void extra_first(const char *extra, char *out, size_t cap) {
    if (strncmp(extra, ", ", 2) == 0) snprintf(out, cap, "%s, ", extra + 2);
    else snprintf(out, cap, "%s", extra);
}

static shrink_status cfg_try(const char *extra_or_full, int full, const char *tok, sk_config *c) {
    char buf[2048];
    if (full) snprintf(buf, sizeof buf, "%s", extra_or_full);
    else {
        char ex[1024];
        extra_first(extra_or_full, ex, sizeof ex);
        snprintf(buf, sizeof buf, cfg_llama, ex);
    }
    return sk_config_parse(buf, strlen(buf), "dir/config.json", tok, tok ? strlen(tok) : 0, c);
}

static void test_config_valid(void) {
    sk_config c;
    shrink_status st = cfg_try("", 0, NULL, &c);
    CHECK(st == SHRINK_OK, "llama config: %s", shrink_last_error());
    CHECK(c.arch == sk_arch_find("llama") && c.dim == 64 && c.n_kv_heads == 2 && c.head_dim == 16
          && c.ffn_dim == 176 && c.max_seq_len == 256 && !c.tied && c.add_bos &&
          c.rope_layout == SK_ROPE_HALF && c.rope_theta == 10000.0f && !c.qkv_bias,
          "llama values");

    /* transformers 5 spellings: rope_parameters, dtype; tokenizer_config add_bos_token */
    st = cfg_try(", \"rope_parameters\": {\"rope_theta\": 500000.0, \"rope_type\": \"default\"},"
                 " \"dtype\": \"bfloat16\", \"head_dim\": 32", 0, "{\"add_bos_token\": false}", &c);
    CHECK(st == SHRINK_OK && c.rope_theta == 500000.0f && c.head_dim == 32 && !c.add_bos,
          "rope_parameters / head_dim / add_bos: %s", shrink_last_error());

    /* qwen2 row: qkv biases; eos as a list */
    st = cfg_try("{\"model_type\": \"qwen2\", \"hidden_size\": 64, \"intermediate_size\": 128, "
                 "\"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"vocab_size\": 100, "
                 "\"eos_token_id\": [7, 8], \"bos_token_id\": null, \"sliding_window\": 32, "
                 "\"use_sliding_window\": false}", 1, NULL, &c);
    CHECK(st == SHRINK_OK && c.qkv_bias && c.n_kv_heads == 4 && c.eos_id == 7 && c.bos_id == -1,
          "qwen2: %s", shrink_last_error());

    /* gpt2 from architectures only, defaults */
    st = cfg_try("{\"architectures\": [\"GPT2LMHeadModel\"], \"n_embd\": 32, \"n_layer\": 2, "
                 "\"n_head\": 2, \"n_ctx\": 64, \"vocab_size\": 300}", 1, NULL, &c);
    CHECK(st == SHRINK_OK && c.arch == sk_arch_find("gpt2") && c.ffn_dim == 128 &&
          c.max_seq_len == 64 && c.tied && !c.add_bos && c.qkv_bias && c.head_dim == 16,
          "gpt2 defaults: %s", shrink_last_error());
    CHECK(c.bos_id == -1 && c.eos_id == -1, "GPT-2 default ids dropped when past the vocabulary");
}

typedef struct cfg_case {
    const char   *text;    /* extra members appended to cfg_llama, or a full doc if full */
    int           full;
    shrink_status want;
    const char   *says;
} cfg_case;

static const cfg_case cfg_cases[] = {
    {", \"num_hidden_layers\": -2", 0, SHRINK_ERR_FORMAT, "num_hidden_layers"},
    {"{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 1, "
     "\"num_hidden_layers\": -2, \"num_attention_heads\": 4, \"vocab_size\": 8}",
     1, SHRINK_ERR_FORMAT, "num_hidden_layers"},
    {"{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 16, "
     "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 3, "
     "\"vocab_size\": 8}", 1, SHRINK_ERR_FORMAT, "num_key_value_heads"},
    {"{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 16, "
     "\"num_hidden_layers\": 2, \"num_attention_heads\": 0, \"vocab_size\": 8}",
     1, SHRINK_ERR_FORMAT, "num_attention_heads"},
    {"{\"model_type\": \"llama\", \"hidden_size\": 4194304, \"intermediate_size\": 16, "
     "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 8}",
     1, SHRINK_ERR_FORMAT, "hidden_size"},
    {"{\"model_type\": \"llama\", \"intermediate_size\": 16, "
     "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 8}",
     1, SHRINK_ERR_FORMAT, "hidden_size"},
    {"{\"model_type\": \"llama\", \"hidden_size\": \"64\", \"intermediate_size\": 16, "
     "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 8}",
     1, SHRINK_ERR_FORMAT, "hidden_size"},
    {", \"rope_parameters\": {\"rope_theta\": 1e4, \"rope_type\": \"yarn\"}", 0,
     SHRINK_ERR_UNSUPPORTED, "rope_type"},
    {", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}", 0, SHRINK_ERR_UNSUPPORTED,
     "rope_scaling"},
    {", \"hidden_act\": \"gelu\"", 0, SHRINK_ERR_UNSUPPORTED, "hidden_act"},
    {", \"mlp_bias\": true", 0, SHRINK_ERR_UNSUPPORTED, "mlp_bias"},
    {", \"rms_norm_eps\": 0", 0, SHRINK_ERR_FORMAT, "rms_norm_eps"},
    {", \"rope_theta\": -1", 0, SHRINK_ERR_FORMAT, "rope_theta"},
    {", \"bos_token_id\": 999", 0, SHRINK_ERR_FORMAT, "bos_token_id"},
    {", \"tie_word_embeddings\": \"yes\"", 0, SHRINK_ERR_FORMAT, "tie_word_embeddings"},
    {", \"torch_dtype\": \"int8\"", 0, SHRINK_ERR_UNSUPPORTED, "torch_dtype"},
    {", \"head_dim\": 15", 0, SHRINK_ERR_FORMAT, "head_dim"},
    {"{\"model_type\": \"mistral\", \"hidden_size\": 64, \"intermediate_size\": 16, "
     "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 8, "
     "\"max_position_embeddings\": 4096, \"sliding_window\": 1024}",
     1, SHRINK_ERR_UNSUPPORTED, "sliding_window"},
    {"{\"model_type\": \"bert\"}", 1, SHRINK_ERR_UNSUPPORTED, "model_type"},
    {"{\"architectures\": [\"T5ForConditionalGeneration\"]}", 1, SHRINK_ERR_UNSUPPORTED,
     "architectures"},
    {"{\"hidden_size\": 64}", 1, SHRINK_ERR_FORMAT, "model_type"},
    {"{\"model_type\": \"gpt2\", \"n_embd\": 30, \"n_layer\": 2, \"n_head\": 4}", 1,
     SHRINK_ERR_FORMAT, "n_embd"},
    {"{\"model_type\": \"gpt2\", \"n_embd\": 32, \"n_layer\": 2, \"n_head\": 4, "
     "\"activation_function\": \"relu\"}", 1, SHRINK_ERR_UNSUPPORTED, "activation_function"},
    {"{\"model_type\": \"gpt2\", \"n_embd\": 32, \"n_layer\": 0, \"n_head\": 4}", 1,
     SHRINK_ERR_FORMAT, "n_layer"},
    {"{\"model_type\": \"gpt2\", \"n_embd\": 32, \"n_layer\": 2, \"n_head\": 4, "
     "\"layer_norm_epsilon\": -1e-5}", 1, SHRINK_ERR_FORMAT, "layer_norm_epsilon"},
    {"model_type = llama", 1, SHRINK_ERR_FORMAT, "JSON error"},
    {"", 1, SHRINK_ERR_FORMAT, "JSON error"},
    {"[1, 2]", 1, SHRINK_ERR_FORMAT, "not a JSON object"},
};

static void test_config_broken(void) {
    for (size_t i = 0; i < sizeof cfg_cases / sizeof cfg_cases[0]; i++) {
        sk_config c;
        shrink_status st = cfg_try(cfg_cases[i].text, cfg_cases[i].full, NULL, &c);
        const char *msg = shrink_last_error();
        CHECK(st == cfg_cases[i].want, "config case %zu: status %d want %d (%s)", i, st,
              cfg_cases[i].want, msg);
        CHECK(strstr(msg, "dir/config.json") && strstr(msg, cfg_cases[i].says),
              "config case %zu: message '%s' lacks '%s'", i, msg, cfg_cases[i].says);
    }
    /* a broken tokenizer_config.json is named too */
    sk_config c;
    shrink_status st = cfg_try("", 0, "{\"add_bos_token\": 1}", &c);
    CHECK(st == SHRINK_ERR_FORMAT && strstr(shrink_last_error(), "tokenizer_config.json") &&
          strstr(shrink_last_error(), "add_bos_token"), "tokenizer_config: %s",
          shrink_last_error());
}

/* ==== whole folders in a temp dir ========================================================== */

static char tmpdir[256];

static void write_file(const char *dir, const char *name, const void *data, size_t len) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return;
    fwrite(data, 1, len, f);
    fclose(f);
}

/* Tensors of the tiny Llama in cfg_llama (D 64, F 176, L 2, H 4, KV 2, hd 16, V 512). */
typedef struct tspec {
    char    name[96];
    int64_t shape[2];
    int     n_dims;
} tspec;

static int llama_specs(tspec *s, int untied) {
    int n = 0;
#define T2(nm, a, b) (snprintf(s[n].name, 96, "%s", nm), s[n].shape[0] = a, s[n].shape[1] = b, \
                      s[n].n_dims = 2, n++)
#define T1(nm, a) (snprintf(s[n].name, 96, "%s", nm), s[n].shape[0] = a, s[n].n_dims = 1, n++)
    T2("model.embed_tokens.weight", 512, 64);
    if (untied) T2("lm_head.weight", 512, 64);
    T1("model.norm.weight", 64);
    for (int l = 0; l < 2; l++) {
        char b[96];
#define L2(suffix, a, c) (snprintf(b, 96, "model.layers.%d.%s", l, suffix), T2(b, a, c))
#define L1(suffix, a) (snprintf(b, 96, "model.layers.%d.%s", l, suffix), T1(b, a))
        L1("input_layernorm.weight", 64);
        L2("self_attn.q_proj.weight", 64, 64);
        L2("self_attn.k_proj.weight", 32, 64);
        L2("self_attn.v_proj.weight", 32, 64);
        L2("self_attn.o_proj.weight", 64, 64);
        L1("post_attention_layernorm.weight", 64);
        L2("mlp.gate_proj.weight", 176, 64);
        L2("mlp.up_proj.weight", 176, 64);
        L2("mlp.down_proj.weight", 64, 176);
    }
    return n;
}

/* Writes a safetensors file holding specs[lo..hi) as F32 zeros. */
static void write_st(const char *dir, const char *name, const tspec *s, int lo, int hi) {
    size_t cap = 65536, hl = 0;
    char *h = malloc(cap);
    uint64_t off = 0;
    hl += (size_t)snprintf(h + hl, cap - hl, "{");
    for (int i = lo; i < hi; i++) {
        uint64_t e = (uint64_t)s[i].shape[0] * (uint64_t)(s[i].n_dims == 2 ? s[i].shape[1] : 1);
        if (s[i].n_dims == 2)
            hl += (size_t)snprintf(h + hl, cap - hl, "%s\"%s\": {\"dtype\": \"F32\", \"shape\": "
                                   "[%lld, %lld], \"data_offsets\": [%llu, %llu]}", i > lo ? ", " : "",
                                   s[i].name, (long long)s[i].shape[0], (long long)s[i].shape[1],
                                   (unsigned long long)off, (unsigned long long)(off + 4 * e));
        else
            hl += (size_t)snprintf(h + hl, cap - hl, "%s\"%s\": {\"dtype\": \"F32\", \"shape\": "
                                   "[%lld], \"data_offsets\": [%llu, %llu]}", i > lo ? ", " : "",
                                   s[i].name, (long long)s[i].shape[0], (unsigned long long)off,
                                   (unsigned long long)(off + 4 * e));
        off += 4 * e;
    }
    hl += (size_t)snprintf(h + hl, cap - hl, "}");
    size_t len = 8 + hl + off;
    uint8_t *b = calloc(1, len);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, h, hl);
    write_file(dir, name, b, len);
    free(b);
    free(h);
}

static void write_config(const char *dir, const char *extra) {
    char buf[2048], ex[1024];
    extra_first(extra, ex, sizeof ex);
    snprintf(buf, sizeof buf, cfg_llama, ex);
    write_file(dir, "config.json", buf, strlen(buf));
}

static shrink_status load_quiet(const char *path, shrink_model **m) {
    shrink_load_params p = shrink_load_params_default();
    p.no_tokenizer = true;
    return shrink_model_load(m, path, &p);
}

typedef enum dir_case {
    DIR_OK,
    DIR_OK_SHARDED,
    DIR_OK_FILE_PATH,
    DIR_MISSING_TENSOR,
    DIR_WRONG_SHAPE,
    DIR_MISSING_LM_HEAD,
    DIR_CONFIG_NOT_JSON,
    DIR_CONFIG_IMPOSSIBLE,
    DIR_NO_WEIGHTS,
    DIR_SHARD_MISSING,
    DIR_TRUNCATED_WEIGHTS,
    DIR_COUNT
} dir_case;

static void test_dirs(void) {
    static tspec specs[64];
    for (int c = 0; c < DIR_COUNT; c++) {
        char dir[512], path[600];
        snprintf(dir, sizeof dir, "%s/case%d", tmpdir, c);
        mkdir(dir, 0700);
        int n = llama_specs(specs, 1);
        snprintf(path, sizeof path, "%s", dir);
        shrink_status want = SHRINK_ERR_FORMAT;
        const char *says = "model.safetensors";
        write_config(dir, "");
        switch ((dir_case)c) {
        case DIR_OK:
            write_st(dir, "model.safetensors", specs, 0, n);
            want = SHRINK_OK;
            break;
        case DIR_OK_SHARDED:
        case DIR_SHARD_MISSING: {
            write_st(dir, "model-00001-of-00002.safetensors", specs, 0, n / 2);
            if (c == DIR_OK_SHARDED)
                write_st(dir, "model-00002-of-00002.safetensors", specs, n / 2, n);
            char idx[8192];
            size_t k = (size_t)snprintf(idx, sizeof idx, "{\"weight_map\": {");
            for (int i = 0; i < n; i++)
                k += (size_t)snprintf(idx + k, sizeof idx - k, "%s\"%s\": \"model-0000%d-of-00002."
                                      "safetensors\"", i ? ", " : "", specs[i].name,
                                      i < n / 2 ? 1 : 2);
            k += (size_t)snprintf(idx + k, sizeof idx - k, "}}");
            write_file(dir, "model.safetensors.index.json", idx, k);
            want = c == DIR_OK_SHARDED ? SHRINK_OK : SHRINK_ERR_IO;
            says = "model-00002-of-00002.safetensors";
            break;
        }
        case DIR_OK_FILE_PATH:
            write_st(dir, "weights.safetensors", specs, 0, n);
            snprintf(path, sizeof path, "%s/weights.safetensors", dir);
            want = SHRINK_OK;
            break;
        case DIR_MISSING_TENSOR:
            specs[5] = specs[n - 1]; /* drops layers.0.self_attn.k_proj.weight */
            write_st(dir, "model.safetensors", specs, 0, n - 1);
            says = "model.layers.0.self_attn.k_proj.weight";
            break;
        case DIR_WRONG_SHAPE:
            specs[6].shape[0] = 64; /* v_proj (32, 64) -> (64, 64) */
            write_st(dir, "model.safetensors", specs, 0, n);
            says = "model.layers.0.self_attn.v_proj.weight";
            break;
        case DIR_MISSING_LM_HEAD:
            n = llama_specs(specs, 0);
            write_st(dir, "model.safetensors", specs, 0, n);
            says = "lm_head.weight";
            break;
        case DIR_CONFIG_NOT_JSON:
            write_st(dir, "model.safetensors", specs, 0, n);
            write_file(dir, "config.json", "hidden_size: 64\n", 16);
            says = "config.json";
            break;
        case DIR_CONFIG_IMPOSSIBLE:
            write_st(dir, "model.safetensors", specs, 0, n);
            write_config(dir, ", \"num_key_value_heads\": 3");
            says = "num_key_value_heads";
            break;
        case DIR_NO_WEIGHTS:
            want = SHRINK_ERR_IO;
            says = "model.safetensors";
            break;
        case DIR_TRUNCATED_WEIGHTS: {
            write_st(dir, "model.safetensors", specs, 0, n);
            char p[600];
            snprintf(p, sizeof p, "%s/model.safetensors", dir);
            struct stat sb;
            if (stat(p, &sb) == 0 && truncate(p, sb.st_size - 1) != 0) CHECK(0, "truncate");
            says = "out of the data section";
            break;
        }
        case DIR_COUNT:
            break;
        }
        shrink_model *m = (shrink_model *)1;
        size_t live = sk_alloc_bytes_live();
        shrink_status st = load_quiet(path, &m);
        const char *msg = shrink_last_error();
        CHECK(st == want, "dir case %d: status %d want %d (%s)", c, st, want, msg);
        if (want == SHRINK_OK && st == SHRINK_OK) {
            shrink_model_info mi;
            shrink_model_get_info(m, &mi);
            CHECK(mi.n_tensors == n && mi.dim == 64 && !mi.tied_embeddings,
                  "dir case %d: info", c);
            CHECK(m->layers[1].wk.rows == 32 && m->layers[1].wk.cols == 64 &&
                  m->head.data != m->tok_emb.data, "dir case %d: binding", c);
            shrink_model_free(m);
        } else {
            CHECK(m == NULL, "dir case %d: *out not NULL on failure", c);
            CHECK(strstr(msg, dir) && strstr(msg, says), "dir case %d: message '%s' lacks '%s'",
                  c, msg, says);
        }
        CHECK(sk_alloc_bytes_live() == live, "dir case %d: %zd bytes leaked", c,
              (ssize_t)(sk_alloc_bytes_live() - live));
    }
    shrink_model *m;
    CHECK(load_quiet("/nonexistent/model", &m) == SHRINK_ERR_IO &&
          strstr(shrink_last_error(), "/nonexistent/model"), "missing path");

    /* a garbage .bin is read as llama2.c and rejected with its name */
    char p[600];
    snprintf(p, sizeof p, "%s/garbage.bin", tmpdir);
    write_file(tmpdir, "garbage.bin", "this is not a model at all, just some text\n", 44);
    CHECK(load_quiet(p, &m) == SHRINK_ERR_FORMAT && strstr(shrink_last_error(), "garbage.bin"),
          "garbage .bin: %s", shrink_last_error());
}

/* ==== real models ========================================================================= */

typedef struct real_model {
    const char *path;
    const char *arch;
    int32_t     dim, n_layers, n_heads, n_kv_heads, ffn, vocab, seq;
    int         tied, interleaved;
    int64_t     n_params;   /* 0: not checked */
} real_model;

static const real_model real_models[] = {
    {"stories260K/stories260K.bin", "llama", 64, 5, 8, 4, 172, 512, 512, 1, 1, 0},
    {"stories260K-hf", "llama", 64, 5, 8, 4, 172, 512, 512, 1, 0, 0},
    {"tiny-gpt2", "gpt2", 32, 2, 2, 2, 128, 50257, 128, 1, 0, 0},
    {"tiny-llama-gqa", "llama", 64, 2, 4, 2, 176, 512, 256, 0, 0, 0},
    {"mix-llama-14m", "llama", 256, 6, 4, 4, 1024, 32000, 512, 1, 0, 14486784},
    {"mix-llama-22m", "llama", 384, 6, 6, 2, 1024, 32000, 512, 1, 0, 21730176},
    {"mix-gpt2-30m", "gpt2", 384, 6, 6, 6, 1536, 50257, 512, 1, 0, 30142848},
};

static void test_real_models(void) {
    for (size_t i = 0; i < sizeof real_models / sizeof real_models[0]; i++) {
        const real_model *r = &real_models[i];
        char path[2048];
        if (!test_need_model(path, sizeof path, r->path)) continue;
        shrink_model *m;
        shrink_status st = load_quiet(path, &m);
        CHECK(st == SHRINK_OK, "%s: %s", r->path, shrink_last_error());
        if (st) continue;
        shrink_model_info mi;
        shrink_model_get_info(m, &mi);
        CHECK(strcmp(mi.arch, r->arch) == 0 && mi.dim == r->dim && mi.n_layers == r->n_layers &&
              mi.n_heads == r->n_heads && mi.n_kv_heads == r->n_kv_heads &&
              mi.ffn_dim == r->ffn && mi.vocab_size == r->vocab && mi.max_seq_len == r->seq &&
              mi.tied_embeddings == r->tied && mi.rope_interleaved == r->interleaved,
              "%s: config", r->path);
        CHECK(!r->n_params || mi.n_params == r->n_params, "%s: %lld params", r->path,
              (long long)mi.n_params);
        CHECK(mi.weight_bytes > 0 && mi.file_bytes > 0 && mi.n_tensors > 0, "%s: sizes", r->path);
        shrink_tensor_info ti;
        CHECK(shrink_model_tensor(m, mi.n_tensors, &ti) == SHRINK_ERR_RANGE, "tensor range");
        CHECK(shrink_model_tensor(m, 0, &ti) == SHRINK_OK && ti.name && ti.bytes > 0,
              "tensor 0");
        shrink_model_free(m);
    }
}

int main(void) {
    test_st_broken();
    test_st_valid();
    test_st_mutations();
    test_index();
    test_l2c_valid();
    test_l2c_broken();
    test_config_valid();
    test_config_broken();

    snprintf(tmpdir, sizeof tmpdir, "/tmp/shrink_test_formats_XXXXXX");
    if (mkdtemp(tmpdir)) {
        test_dirs();
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    } else {
        CHECK(0, "mkdtemp failed");
    }
    test_real_models(); /* a missing model fails with ../shared, is a counted skip without */
    return test_summary("test_formats");
}
