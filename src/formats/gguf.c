/*
 * gguf.c - reader and writer of GGUF files (llama.cpp / ggml), version 3.
 *
 * Layout (ggml's include/gguf.h and docs/gguf.md; all little-endian):
 *   1. u32 magic "GGUF", u32 version (3; 2 is read too), u64 n_tensors, u64 n_kv;
 *   2. n_kv key/values: string key, u32 value type, value. A string is u64 length + bytes
 *      (no NUL); an array is u32 element type, u64 count, elements (arrays may nest);
 *   3. n_tensors tensor infos: string name, u32 n_dims (1..4), n_dims x i64 ne (ne[0] is the
 *      contiguous dimension: a PyTorch (out, in) matrix is ne = [in, out]), u32 ggml type,
 *      u64 offset (relative to the data section, a multiple of the alignment);
 *   4. padding to general.alignment (u32 key, default 32), then the data section.
 *
 * Reading (sk_gguf_parse) validates every count against the bytes that remain before it is
 * used, so a header claiming 10^18 tensors or a 100 GB string fails at once and nothing is
 * allocated for it; tables grow only as entries are actually read. Tensor data are checked
 * to be aligned, inside the data section and not overlapping. sk_gguf_open maps a model
 * (arch `llama` or `gpt2`, llama.cpp's tensor names, F32/F16/BF16 tensors) and
 * sk_gguf_tokenizer builds the tokenizer from tokenizer.ggml.* metadata.
 *
 * Writing (sk_gguf_write) produces what llama.cpp's convert_hf_to_gguf.py writes for the
 * same model: the keys of its LlamaModel / GPT2Model (set_gguf_parameters), the tokenizer
 * arrays, tensors named as in llama-arch.cpp, vectors in F32 and matrices in the chosen
 * dtype, q/k rows in the interleaved (Meta) RoPE order, data aligned to 32 bytes.
 * Not supported: quantized tensor types (read: listed in errors; written: never), big-endian
 * files, architectures other than llama and gpt2.
 */
#include "formats.h"
#include "../kernels/palette.h"

#include "../tokenizer/tokenizer.h"

#include <math.h>

/* ==== the ggml type table ================================================================ */

typedef struct ggml_type_row {
    const char *name;
    uint32_t    block;  /* elements per block (0: removed type) */
    uint32_t    bytes;  /* bytes per block */
    int         dtype;  /* shrink_dtype, or -1 if shrink cannot hold it yet */
} ggml_type_row;

/* ggml.h enum ggml_type; sizes as gguf-py's GGML_QUANT_SIZES. */
static const ggml_type_row ggml_types[] = {
    [0]  = {"f32", 1, 4, SHRINK_DTYPE_F32},     [1]  = {"f16", 1, 2, SHRINK_DTYPE_F16},
    [2]  = {"q4_0", 32, 18, SHRINK_DTYPE_Q4_0},  [3]  = {"q4_1", 32, 20, SHRINK_DTYPE_Q4_1},
    [6]  = {"q5_0", 32, 22, SHRINK_DTYPE_Q5_0},  [7]  = {"q5_1", 32, 24, SHRINK_DTYPE_Q5_1},
    [8]  = {"q8_0", 32, 34, SHRINK_DTYPE_Q8_0},                [9]  = {"q8_1", 32, 40, -1},
    [10] = {"q2_K", 256, 84, SHRINK_DTYPE_Q2_K}, [11] = {"q3_K", 256, 110, SHRINK_DTYPE_Q3_K},
    [12] = {"q4_K", 256, 144, SHRINK_DTYPE_Q4_K}, [13] = {"q5_K", 256, 176, SHRINK_DTYPE_Q5_K},
    [14] = {"q6_K", 256, 210, SHRINK_DTYPE_Q6_K},              [15] = {"q8_K", 256, 292, -1},
    [16] = {"iq2_xxs", 256, 66, -1},            [17] = {"iq2_xs", 256, 74, -1},
    [18] = {"iq3_xxs", 256, 98, -1},            [19] = {"iq1_s", 256, 50, -1},
    [20] = {"iq4_nl", 32, 18, SHRINK_DTYPE_IQ4_NL},              [21] = {"iq3_s", 256, 110, -1},
    [22] = {"iq2_s", 256, 82, -1},              [23] = {"iq4_xs", 256, 136, -1},
    [24] = {"i8", 1, 1, -1},                    [25] = {"i16", 1, 2, -1},
    [26] = {"i32", 1, 4, -1},                   [27] = {"i64", 1, 8, -1},
    [28] = {"f64", 1, 8, -1},                   [29] = {"iq1_m", 256, 56, -1},
    [30] = {"bf16", 1, 2, SHRINK_DTYPE_BF16},   [34] = {"tq1_0", 256, 54, -1},
    [35] = {"tq2_0", 256, 66, -1},
};
enum { N_GGML_TYPES = sizeof ggml_types / sizeof ggml_types[0] };

static const ggml_type_row *ggml_type(uint32_t t) {
    return t < N_GGML_TYPES && ggml_types[t].block ? &ggml_types[t] : NULL;
}

/* shrink's own types (docs/formats.md, "shrink's own quantized types"): GGUF type id
 * SK_GGUF_TYPE_OWN + i. ggml has no such types, so llama.cpp refuses these files. Block, bytes
 * and row head come from the dtype table (row i of a tensor is row_head + ne0/block*bytes). */
static const struct {
    const char  *name;
    shrink_dtype dtype;
} own_types[] = {
    {"int8_ch", SHRINK_DTYPE_INT8_CH},               /* 1000 */
    {"int8_ch_asym", SHRINK_DTYPE_INT8_CH_ASYM},     /* 1001 */
    {"int8_t", SHRINK_DTYPE_INT8_T},                 /* 1002 */
    {"int8_t_asym", SHRINK_DTYPE_INT8_T_ASYM},       /* 1003 */
    {"int4_g32", SHRINK_DTYPE_INT4_G32},             /* 1004 */
    {"int4_g64", SHRINK_DTYPE_INT4_G64},             /* 1005 */
    {"int4_g128", SHRINK_DTYPE_INT4_G128},           /* 1006 */
    {"int4_g32_asym", SHRINK_DTYPE_INT4_G32_ASYM},   /* 1007 */
    {"int4_g64_asym", SHRINK_DTYPE_INT4_G64_ASYM},   /* 1008 */
    {"int4_g128_asym", SHRINK_DTYPE_INT4_G128_ASYM}, /* 1009 */
    {"nf4", SHRINK_DTYPE_NF4},                       /* 1010 */
    {"nf4_dq", SHRINK_DTYPE_NF4_DQ},                 /* 1011 */
    {"w8a8", SHRINK_DTYPE_W8A8},                     /* 1012 */
    {"w8a8_static", SHRINK_DTYPE_W8A8_STATIC},       /* 1013 */
    {"sparse24_f16", SHRINK_DTYPE_SPARSE24_F16},     /* 1014 */
    {"sparse24_i8", SHRINK_DTYPE_SPARSE24_I8},       /* 1015 */
    {"pal16", SHRINK_DTYPE_PAL16},                   /* 1016 */
    {"pal256", SHRINK_DTYPE_PAL256},                 /* 1017 */
    {"pal4", SHRINK_DTYPE_PAL4},                     /* 1018 */
    {"sparse_f16", SHRINK_DTYPE_SPARSE_F16},         /* 1019 */
    {"sparse_i8", SHRINK_DTYPE_SPARSE_I8},           /* 1020 */
};
enum { N_OWN_TYPES = sizeof own_types / sizeof own_types[0] };

/* A GGUF tensor type: a ggml type or one of shrink's own. */
typedef struct tensor_type {
    const char *name;
    uint64_t    block;     /* elements per block */
    uint64_t    bytes;     /* bytes per block */
    uint64_t    row_head;  /* bytes before each row (ne0 elements) */
    int         dtype;     /* shrink_dtype, or -1 if shrink cannot hold it yet */
} tensor_type;

/* 1 and *out if t is a known type id, else 0 */
static int tensor_type_of(uint32_t t, tensor_type *out) {
    const ggml_type_row *g = ggml_type(t);
    if (g) {
        *out = (tensor_type){g->name, g->block, g->bytes, 0, g->dtype};
        return 1;
    }
    if (t < SK_GGUF_TYPE_OWN || t - SK_GGUF_TYPE_OWN >= N_OWN_TYPES) return 0;
    const sk_dtype_traits *d = sk_dtype(own_types[t - SK_GGUF_TYPE_OWN].dtype);
    *out = (tensor_type){own_types[t - SK_GGUF_TYPE_OWN].name, d->block, d->bytes, d->row_head,
                         (int)own_types[t - SK_GGUF_TYPE_OWN].dtype};
    return 1;
}

const char *sk_ggml_type_name(uint32_t type) {
    tensor_type tt;
    return tensor_type_of(type, &tt) ? tt.name : "?";
}

/* GGUF type id of a shrink dtype */
static uint32_t ggml_of_dtype(shrink_dtype d) {
    for (uint32_t t = 0; t < N_GGML_TYPES; t++)
        if (ggml_types[t].block && ggml_types[t].dtype == (int)d) return t;
    for (uint32_t i = 0; i < N_OWN_TYPES; i++)
        if (own_types[i].dtype == d) return SK_GGUF_TYPE_OWN + i;
    SHRINK_ASSERT(0 && "dtype without a GGUF type");
    return 0;
}

/* Fallbacks of shrink's own types whose block does not divide the rows: a smaller group of
 * the same kind, then 8 bits per channel (block 1, always possible):
 * int4_g128 -> int4_g64 -> int4_g32 -> int8_ch, the _asym ones -> int8_ch_asym,
 * nf4 / nf4_dq -> int4_g32 -> int8_ch, sparse24_f16 -> f16, sparse24_i8 -> int8_ch,
 * sparse_f16 -> f16, sparse_i8 -> int8_ch. */
static shrink_dtype own_fallback(shrink_dtype want, int64_t cols) {
    while (cols % (int64_t)sk_dtype(want)->block != 0) {
        switch (want) {
        case SHRINK_DTYPE_INT4_G128:      want = SHRINK_DTYPE_INT4_G64; break;
        case SHRINK_DTYPE_INT4_G64:       want = SHRINK_DTYPE_INT4_G32; break;
        case SHRINK_DTYPE_INT4_G128_ASYM: want = SHRINK_DTYPE_INT4_G64_ASYM; break;
        case SHRINK_DTYPE_INT4_G64_ASYM:  want = SHRINK_DTYPE_INT4_G32_ASYM; break;
        case SHRINK_DTYPE_INT4_G32_ASYM:  want = SHRINK_DTYPE_INT8_CH_ASYM; break;
        case SHRINK_DTYPE_NF4:
        case SHRINK_DTYPE_NF4_DQ:         want = SHRINK_DTYPE_INT4_G32; break;
        case SHRINK_DTYPE_SPARSE24_F16:   want = SHRINK_DTYPE_F16; break; /* zeros kept dense */
        case SHRINK_DTYPE_SPARSE_F16:     want = SHRINK_DTYPE_F16; break;
        default:                          want = SHRINK_DTYPE_INT8_CH; break;
        }
    }
    return want;
}

/* The dtype a matrix with rows of `cols` is written in when `want` is asked for: a block type
 * whose block does not divide the rows falls back as llama-quantize does (q4_K -> q5_0,
 * q5_K -> q5_1, q6_K -> q8_0, q2_K / q3_K -> iq4_nl), then to f16 (where llama-quantize refuses a legacy type);
 * shrink's own types as own_fallback says (never f16). */
shrink_dtype sk_gguf_fallback(shrink_dtype want, int64_t cols) {
    if (cols % (int64_t)sk_dtype(want)->block == 0) return want;
    if (sk_dtype_own(want)) return own_fallback(want, cols);
    shrink_dtype fb = want == SHRINK_DTYPE_Q4_K   ? SHRINK_DTYPE_Q5_0
                      : want == SHRINK_DTYPE_Q5_K ? SHRINK_DTYPE_Q5_1
                      : want == SHRINK_DTYPE_Q6_K ? SHRINK_DTYPE_Q8_0
                      : want == SHRINK_DTYPE_Q2_K || want == SHRINK_DTYPE_Q3_K
                          ? SHRINK_DTYPE_IQ4_NL
                                                  : SHRINK_DTYPE_F16;
    return cols % (int64_t)sk_dtype(fb)->block == 0 ? fb : SHRINK_DTYPE_F16;
}

/* llama_ftype of the matrices' dtype (general.file_type): every matrix in one type is what
 * llama-quantize --pure writes, q4_K / q5_K under MOSTLY_Q4_K_S / MOSTLY_Q5_K_S (the mixes set
 * their own through sk_write_opts.file_type) */
static uint32_t gguf_file_type(shrink_dtype d) {
    static const uint32_t ft[SHRINK_DTYPE_COUNT] = {
        [SHRINK_DTYPE_F32] = 0,   [SHRINK_DTYPE_F16] = 1,   [SHRINK_DTYPE_BF16] = 32,
        [SHRINK_DTYPE_Q8_0] = 7,  [SHRINK_DTYPE_Q4_0] = 2,  [SHRINK_DTYPE_Q4_1] = 3,
        [SHRINK_DTYPE_Q5_0] = 8,  [SHRINK_DTYPE_Q5_1] = 9,  [SHRINK_DTYPE_Q4_K] = 14,
        [SHRINK_DTYPE_Q5_K] = 16, [SHRINK_DTYPE_Q6_K] = 18, [SHRINK_DTYPE_Q2_K] = 10,
        [SHRINK_DTYPE_Q3_K] = 11, [SHRINK_DTYPE_IQ4_NL] = 25, /* MOSTLY_Q2_K, _Q3_K_S, _IQ4_NL */
    };
    /* shrink's own types have no llama_ftype: their GGUF type id (1000+) */
    if (sk_dtype_own(d)) return ggml_of_dtype(d);
    return ft[d];
}

/* ==== value types ======================================================================== */

static const struct {
    const char *name;
    uint32_t    size; /* 0: variable (string, array) */
} gguf_types[SK_GGUF_TYPE_COUNT] = {
    [SK_GGUF_UINT8] = {"u8", 1},     [SK_GGUF_INT8] = {"i8", 1},
    [SK_GGUF_UINT16] = {"u16", 2},   [SK_GGUF_INT16] = {"i16", 2},
    [SK_GGUF_UINT32] = {"u32", 4},   [SK_GGUF_INT32] = {"i32", 4},
    [SK_GGUF_FLOAT32] = {"f32", 4},  [SK_GGUF_BOOL] = {"bool", 1},
    [SK_GGUF_STRING] = {"str", 0},   [SK_GGUF_ARRAY] = {"arr", 0},
    [SK_GGUF_UINT64] = {"u64", 8},   [SK_GGUF_INT64] = {"i64", 8},
    [SK_GGUF_FLOAT64] = {"f64", 8},
};

const char *sk_gguf_type_name(sk_gguf_type t) {
    return (unsigned)t < SK_GGUF_TYPE_COUNT ? gguf_types[t].name : "?";
}

/* ==== reading ============================================================================ */

/* A cursor over the file's bytes; every read checks what is left. */
typedef struct rd {
    const uint8_t *p;
    size_t         len;
    size_t         off;
    const char    *name;
} rd;

static shrink_status rd_need(rd *r, uint64_t n, const char *what) {
    if (n > r->len - r->off)
        return sk_error(SHRINK_ERR_FORMAT, "%s: truncated: %s needs %" PRIu64 " bytes at offset "
                        "%zu, %zu left", r->name, what, n, r->off, r->len - r->off);
    return SHRINK_OK;
}

static shrink_status rd_u32(rd *r, uint32_t *v, const char *what) {
    shrink_status st = rd_need(r, 4, what);
    if (st) return st;
    *v = sk_rd_u32(r->p + r->off);
    r->off += 4;
    return SHRINK_OK;
}

static shrink_status rd_u64(rd *r, uint64_t *v, const char *what) {
    shrink_status st = rd_need(r, 8, what);
    if (st) return st;
    *v = sk_rd_u64(r->p + r->off);
    r->off += 8;
    return SHRINK_OK;
}

static shrink_status rd_str(rd *r, sk_gguf_str *s, const char *what) {
    uint64_t n;
    shrink_status st = rd_u64(r, &n, what);
    if (st) return st;
    if (n > r->len - r->off)
        return sk_error(SHRINK_ERR_FORMAT, "%s: %s: string length %" PRIu64 " at offset %zu "
                        "exceeds the %zu bytes left", r->name, what, n, r->off - 8,
                        r->len - r->off);
    s->s = (const char *)r->p + r->off;
    s->len = n;
    r->off += (size_t)n;
    return SHRINK_OK;
}

/* Skips (validating) one value of type t; depth counts array nesting. */
static shrink_status rd_skip_value(rd *r, uint32_t t, int depth, const char *key);

static shrink_status rd_array(rd *r, sk_gguf_value *v, int depth, const char *key) {
    uint32_t et;
    uint64_t n;
    shrink_status st;
    if (depth >= SK_GGUF_MAX_DEPTH)
        return sk_error(SHRINK_ERR_FORMAT, "%s: key '%s': arrays nested deeper than %d", r->name,
                        key, SK_GGUF_MAX_DEPTH);
    if ((st = rd_u32(r, &et, "array type")) || (st = rd_u64(r, &n, "array length"))) return st;
    if (et >= SK_GGUF_TYPE_COUNT)
        return sk_error(SHRINK_ERR_FORMAT, "%s: key '%s': array element type %" PRIu32 " is not "
                        "a GGUF type (0..%d)", r->name, key, et, SK_GGUF_TYPE_COUNT - 1);
    /* the smallest element: fixed size, or a string's / array's own header */
    uint64_t min = gguf_types[et].size ? gguf_types[et].size : et == SK_GGUF_STRING ? 8 : 12;
    if (n > (r->len - r->off) / min)
        return sk_error(SHRINK_ERR_FORMAT, "%s: key '%s': array of %" PRIu64 " %s elements "
                        "cannot fit in the %zu bytes left", r->name, key, n,
                        gguf_types[et].name, r->len - r->off);
    v->arr_type = (sk_gguf_type)et;
    v->arr_n = n;
    v->arr_data = r->p + r->off;
    size_t start = r->off;
    if (gguf_types[et].size) {
        r->off += (size_t)(n * gguf_types[et].size);
    } else {
        for (uint64_t i = 0; i < n; i++)
            if ((st = rd_skip_value(r, et, depth + 1, key))) return st;
    }
    v->arr_bytes = r->off - start;
    return SHRINK_OK;
}

static shrink_status rd_value(rd *r, uint32_t t, sk_gguf_value *v, int depth, const char *key) {
    shrink_status st;
    if (t >= SK_GGUF_TYPE_COUNT)
        return sk_error(SHRINK_ERR_FORMAT, "%s: key '%s': value type %" PRIu32 " is not a GGUF "
                        "type (0..%d)", r->name, key, t, SK_GGUF_TYPE_COUNT - 1);
    v->type = (sk_gguf_type)t;
    if (t == SK_GGUF_STRING) return rd_str(r, &v->v.s, key);
    if (t == SK_GGUF_ARRAY) return rd_array(r, v, depth, key);
    uint32_t size = gguf_types[t].size;
    if ((st = rd_need(r, size, key))) return st;
    const uint8_t *p = r->p + r->off;
    r->off += size;
    switch ((sk_gguf_type)t) {
    case SK_GGUF_UINT8:   v->v.u = p[0]; break;
    case SK_GGUF_BOOL:
        if (p[0] > 1)
            return sk_error(SHRINK_ERR_FORMAT, "%s: key '%s': bool value %u is not 0 or 1",
                            r->name, key, p[0]);
        v->v.u = p[0];
        break;
    case SK_GGUF_INT8:    v->v.i = (int8_t)p[0]; break;
    case SK_GGUF_UINT16:  v->v.u = (uint16_t)(p[0] | p[1] << 8); break;
    case SK_GGUF_INT16:   v->v.i = (int16_t)(uint16_t)(p[0] | p[1] << 8); break;
    case SK_GGUF_UINT32:  v->v.u = sk_rd_u32(p); break;
    case SK_GGUF_INT32:   v->v.i = (int32_t)sk_rd_u32(p); break;
    case SK_GGUF_FLOAT32: v->v.f = sk_rd_f32(p); break;
    case SK_GGUF_UINT64:  v->v.u = sk_rd_u64(p); break;
    case SK_GGUF_INT64:   v->v.i = (int64_t)sk_rd_u64(p); break;
    case SK_GGUF_FLOAT64: {
        uint64_t u = sk_rd_u64(p);
        memcpy(&v->v.f, &u, 8);
        break;
    }
    default: break;
    }
    return SHRINK_OK;
}

static shrink_status rd_skip_value(rd *r, uint32_t t, int depth, const char *key) {
    sk_gguf_value v;
    return rd_value(r, t, &v, depth, key);
}

/* Grows *arr (elements of `size` bytes) to hold at least n+1; doubling. */
static int grow(void **arr, int64_t *cap, int64_t n, size_t size) {
    if (n < *cap) return 1;
    int64_t nc = *cap ? *cap * 2 : 16;
    void *p = sk_realloc(*arr, (size_t)nc * size);
    if (!p) return 0;
    *arr = p;
    *cap = nc;
    return 1;
}

void sk_gguf_free(sk_gguf *g) {
    if (!g) return;
    sk_free(g->kv);
    sk_free(g->tensors);
    sk_free(g);
}

static int str_eq(sk_gguf_str s, const char *z) {
    size_t n = strlen(z);
    return s.len == n && memcmp(s.s, z, n) == 0;
}

const sk_gguf_kv *sk_gguf_find(const sk_gguf *g, const char *key) {
    for (int64_t i = 0; i < g->n_kv; i++)
        if (str_eq(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

sk_gguf_str sk_gguf_array_next_str(const sk_gguf_value *v, uint64_t *pos) {
    sk_gguf_str s = {"", 0};
    if (v->type != SK_GGUF_ARRAY || v->arr_type != SK_GGUF_STRING || *pos + 8 > v->arr_bytes)
        return s;
    uint64_t n = sk_rd_u64(v->arr_data + *pos);
    if (n > v->arr_bytes - *pos - 8) return s; /* cannot happen after a successful parse */
    s.s = (const char *)v->arr_data + *pos + 8;
    s.len = n;
    *pos += 8 + n;
    return s;
}

/* Key text for messages: at most 64 bytes, printable. */
static void key_text(sk_gguf_str k, char *buf, size_t cap) {
    size_t n = k.len < cap - 1 ? (size_t)k.len : cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k.s[i];
        buf[i] = c >= 0x20 && c < 0x7F ? (char)c : '?';
    }
    buf[n] = '\0';
}

/* Refuses a key given twice, in time linear in the keys: an open-addressing hash set of the
 * key indices (FNV-1a of the bytes), twice as many slots as keys. */
static shrink_status check_unique_keys(rd *r, const sk_gguf *g) {
    if (g->n_kv < 2) return SHRINK_OK;
    uint64_t cap = 4;
    while (cap < (uint64_t)g->n_kv * 2) cap *= 2;
    int64_t *slot = sk_malloc((size_t)cap * sizeof *slot);
    if (!slot) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", r->name);
    for (uint64_t i = 0; i < cap; i++) slot[i] = -1;
    shrink_status st = SHRINK_OK;
    for (int64_t i = 0; i < g->n_kv && !st; i++) {
        sk_gguf_str k = g->kv[i].key;
        uint64_t h = 1469598103934665603ull;
        for (uint64_t b = 0; b < k.len; b++) h = (h ^ (uint8_t)k.s[b]) * 1099511628211ull;
        for (uint64_t s = h & (cap - 1);; s = (s + 1) & (cap - 1)) {
            if (slot[s] < 0) {
                slot[s] = i;
                break;
            }
            sk_gguf_str o = g->kv[slot[s]].key;
            if (o.len == k.len && !memcmp(o.s, k.s, (size_t)k.len)) {
                char kt[72];
                key_text(k, kt, sizeof kt);
                st = sk_error(SHRINK_ERR_FORMAT, "%s: key '%s' appears twice", r->name, kt);
                break;
            }
        }
    }
    sk_free(slot);
    return st;
}

static shrink_status parse_kvs(rd *r, sk_gguf *g, uint64_t n_kv) {
    int64_t cap = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        if (!grow((void **)&g->kv, &cap, g->n_kv, sizeof *g->kv))
            return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", r->name);
        sk_gguf_kv *kv = &g->kv[g->n_kv];
        memset(kv, 0, sizeof *kv);
        char kt[72];
        uint32_t t;
        shrink_status st = rd_str(r, &kv->key, "key");
        if (st) return st;
        key_text(kv->key, kt, sizeof kt);
        if ((st = rd_u32(r, &t, kt)) || (st = rd_value(r, t, &kv->val, 0, kt))) return st;
        g->n_kv++;
    }
    shrink_status dup = check_unique_keys(r, g);
    if (dup) return dup;
    const sk_gguf_kv *al = sk_gguf_find(g, "general.alignment");
    g->alignment = SK_GGUF_ALIGNMENT;
    if (al) {
        if (al->val.type != SK_GGUF_UINT32)
            return sk_error(SHRINK_ERR_FORMAT, "%s: general.alignment has type %s, must be u32",
                            r->name, sk_gguf_type_name(al->val.type));
        uint64_t a = al->val.v.u;
        if (a == 0 || (a & (a - 1)) != 0)
            return sk_error(SHRINK_ERR_FORMAT, "%s: general.alignment is %" PRIu64 " but must be "
                            "a power of two", r->name, a);
        g->alignment = a;
    }
    return SHRINK_OK;
}

static shrink_status parse_tensor_info(rd *r, sk_gguf_tensor *t) {
    shrink_status st = rd_str(r, &t->name, "tensor name");
    if (st) return st;
    char nt[72];
    key_text(t->name, nt, sizeof nt);
    if (t->name.len >= SK_GGUF_MAX_NAME)
        return sk_error(SHRINK_ERR_FORMAT, "%s: tensor name '%s...' is %" PRIu64 " bytes, the "
                        "limit is %d", r->name, nt, t->name.len, SK_GGUF_MAX_NAME - 1);
    if (memchr(t->name.s, '\0', (size_t)t->name.len))
        return sk_error(SHRINK_ERR_FORMAT, "%s: tensor name with a NUL byte", r->name);
    if ((st = rd_u32(r, &t->n_dims, nt))) return st;
    if (t->n_dims < 1 || t->n_dims > 4)
        return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s' has %" PRIu32 " dimensions, must be "
                        "in [1, 4]", r->name, nt, t->n_dims);
    uint64_t n_elems = 1;
    for (uint32_t d = 0; d < 4; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        if ((st = rd_u64(r, &ne, nt))) return st;
        if (ne > (uint64_t)INT64_MAX || !sk_mul_ok(n_elems, ne, &n_elems) ||
            n_elems > (uint64_t)INT64_MAX)
            return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': dimension %" PRIu32 " (%" PRIu64
                            ") makes the element count overflow", r->name, nt, d, ne);
        t->ne[d] = (int64_t)ne;
    }
    if ((st = rd_u32(r, &t->type, nt))) return st;
    tensor_type tt;
    if (!tensor_type_of(t->type, &tt))
        return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s' has unknown ggml type %" PRIu32,
                        r->name, nt, t->type);
    const tensor_type *tr = &tt;
    if (t->ne[0] % (int64_t)tr->block != 0)
        return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': row length %" PRId64 " is not a "
                        "multiple of the %s block size %" PRIu64, r->name, nt, t->ne[0],
                        tr->name, tr->block);
    /* bytes = rows * (row_head + ne0/block * bytes); without a row head n_elems/block * bytes */
    uint64_t rows = 1, row_bytes;
    for (uint32_t d = 1; d < t->n_dims && tr->row_head; d++)
        if (!sk_mul_ok(rows, (uint64_t)t->ne[d], &rows))
            return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': row count overflows", r->name,
                            nt);
    if (!sk_mul_ok((uint64_t)t->ne[0] / tr->block, tr->bytes, &row_bytes) ||
        !sk_add_ok(row_bytes, tr->row_head, &row_bytes) ||
        !(tr->row_head ? sk_mul_ok(rows, row_bytes, &t->bytes)
                       : sk_mul_ok(n_elems / tr->block, tr->bytes, &t->bytes)))
        return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': byte size overflows", r->name, nt);
    return rd_u64(r, &t->offset, nt);
}

typedef struct off_idx {
    uint64_t off, end;
    int64_t  i;
} off_idx;

static int cmp_off(const void *a, const void *b) {
    const off_idx *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

static int cmp_tname(const void *a, const void *b) {
    const sk_gguf_tensor *x = *(sk_gguf_tensor *const *)a, *y = *(sk_gguf_tensor *const *)b;
    size_t n = x->name.len < y->name.len ? (size_t)x->name.len : (size_t)y->name.len;
    int c = memcmp(x->name.s, y->name.s, n);
    return c ? c : (x->name.len > y->name.len) - (x->name.len < y->name.len);
}

/* rows of a tensor: the product of its dimensions after the first (no overflow: its bytes were
 * checked to fit the file) */
static int64_t tensor_rows(const sk_gguf_tensor *t) {
    int64_t rows = 1;
    for (uint32_t d = 1; d < t->n_dims; d++) rows *= t->ne[d];
    return rows;
}

/* Types whose row heads index into the row (the dtype table's check_rows: palettes,
 * unstructured sparse): every row checked here, so no kernel reads outside it. */
static shrink_status check_rows(rd *r, const sk_gguf_tensor *t, const char *nt) {
    tensor_type tt;
    if (!tensor_type_of(t->type, &tt) || tt.dtype < 0) return SHRINK_OK;
    const sk_dtype_traits *d = sk_dtype((shrink_dtype)tt.dtype);
    if (!d->check_rows) return SHRINK_OK;
    int64_t bad = d->check_rows((shrink_dtype)tt.dtype, t->data, tensor_rows(t), t->ne[0]);
    if (bad < 0) return SHRINK_OK;
    return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s' (%s): row %" PRId64 " is corrupt (%s); "
                    "the file is damaged", r->name, nt, tt.name, bad, d->check_what);
}

/* Names unique, offsets aligned, data inside the section and not overlapping. */
static shrink_status check_tensors(rd *r, sk_gguf *g) {
    int64_t n = g->n_tensors;
    if (n == 0) return SHRINK_OK;
    uint64_t sec = r->len - g->data_offset;
    off_idx *o = sk_malloc((size_t)n * sizeof *o);
    sk_gguf_tensor **by_name = sk_malloc((size_t)n * sizeof *by_name);
    shrink_status st = SHRINK_OK;
    if (!o || !by_name) {
        st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", r->name);
        goto out;
    }
    for (int64_t i = 0; i < n && !st; i++) {
        sk_gguf_tensor *t = &g->tensors[i];
        char nt[72];
        key_text(t->name, nt, sizeof nt);
        if (t->offset % g->alignment != 0)
            st = sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': offset %" PRIu64 " is not a "
                          "multiple of the alignment %" PRIu64, r->name, nt, t->offset,
                          g->alignment);
        else if (t->offset > sec || t->bytes > sec - t->offset)
            st = sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': data [%" PRIu64 ", %" PRIu64 ") "
                          "is outside the data section (%" PRIu64 " bytes)", r->name, nt,
                          t->offset, t->offset + (t->bytes < sec ? t->bytes : sec), sec);
        if (st) break; /* no pointer to a rejected offset: past the input it is UB */
        o[i] = (off_idx){t->offset, t->offset + t->bytes, i};
        by_name[i] = t;
        t->data = r->p + g->data_offset + t->offset;
        st = check_rows(r, t, nt);
    }
    if (st) goto out;
    qsort(o, (size_t)n, sizeof *o, cmp_off);
    for (int64_t i = 1; i < n; i++) {
        if (o[i].off < o[i - 1].end) {
            char a[72], b[72];
            key_text(g->tensors[o[i - 1].i].name, a, sizeof a);
            key_text(g->tensors[o[i].i].name, b, sizeof b);
            st = sk_error(SHRINK_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap (offsets %" PRIu64
                          " and %" PRIu64 ")", r->name, a, b, o[i - 1].off, o[i].off);
            goto out;
        }
    }
    qsort(by_name, (size_t)n, sizeof *by_name, cmp_tname);
    for (int64_t i = 1; i < n; i++) {
        if (cmp_tname(&by_name[i - 1], &by_name[i]) == 0) {
            char a[72];
            key_text(by_name[i]->name, a, sizeof a);
            st = sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s' appears twice", r->name, a);
            goto out;
        }
    }
out:
    sk_free(o);
    sk_free(by_name);
    return st;
}

shrink_status sk_gguf_parse(const uint8_t *data, size_t len, const char *name, sk_gguf **out) {
    *out = NULL;
    rd r = {.p = data, .len = len, .off = 0, .name = name};
    uint32_t magic, version;
    uint64_t n_tensors, n_kv;
    shrink_status st;
    if (len < 4 || sk_rd_u32(data) != SK_GGUF_MAGIC)
        return sk_error(SHRINK_ERR_FORMAT, "%s: not a GGUF file (magic is not \"GGUF\")", name);
    if ((st = rd_u32(&r, &magic, "magic")) || (st = rd_u32(&r, &version, "version")))
        return st;
    if (version == 1 || version > SK_GGUF_VERSION || version == 0)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: GGUF version %" PRIu32 " is not supported "
                        "(2 and 3 are)", name, version);
    if ((st = rd_u64(&r, &n_tensors, "tensor count")) || (st = rd_u64(&r, &n_kv, "kv count")))
        return st;
    /* a tensor info is at least 8 (name length) + 4 + 8 + 4 + 8 bytes; a key/value 8 + 4 + 1 */
    if (n_tensors > (len - r.off) / 32)
        return sk_error(SHRINK_ERR_FORMAT, "%s: number of tensors is %" PRIu64 " but the %zu "
                        "bytes left hold at most %zu", name, n_tensors, len - r.off,
                        (len - r.off) / 32);
    if (n_kv > (len - r.off) / 13)
        return sk_error(SHRINK_ERR_FORMAT, "%s: number of key/values is %" PRIu64 " but the %zu "
                        "bytes left hold at most %zu", name, n_kv, len - r.off,
                        (len - r.off) / 13);
    sk_gguf *g = sk_calloc(1, sizeof *g);
    if (!g) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", name);
    g->version = version;
    if ((st = parse_kvs(&r, g, n_kv))) goto fail;
    int64_t cap = 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        if (!grow((void **)&g->tensors, &cap, g->n_tensors, sizeof *g->tensors)) {
            st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", name);
            goto fail;
        }
        sk_gguf_tensor *t = &g->tensors[g->n_tensors];
        memset(t, 0, sizeof *t);
        if ((st = parse_tensor_info(&r, t))) goto fail;
        g->n_tensors++;
    }
    uint64_t pad = (g->alignment - r.off % g->alignment) % g->alignment;
    if (n_tensors > 0 && pad > len - r.off) {
        st = sk_error(SHRINK_ERR_FORMAT, "%s: truncated: the data section should start at %"
                      PRIu64 " but the file is %zu bytes", name, (uint64_t)r.off + pad, len);
        goto fail;
    }
    g->data_offset = n_tensors > 0 || pad <= len - r.off ? r.off + pad : len;
    if ((st = check_tensors(&r, g))) goto fail;
    *out = g;
    return SHRINK_OK;
fail:
    sk_gguf_free(g);
    return st;
}

/* ==== typed metadata getters ============================================================= */

/* Integer value of key (any integer type, or bool); 0 absent, 1 found, <0 an error. */
static int get_int(const sk_gguf *g, const char *key, const char *name, int64_t *out,
                   shrink_status *st) {
    const sk_gguf_kv *kv = sk_gguf_find(g, key);
    if (!kv) return 0;
    switch (kv->val.type) {
    case SK_GGUF_UINT8: case SK_GGUF_UINT16: case SK_GGUF_UINT32: case SK_GGUF_UINT64:
    case SK_GGUF_BOOL:
        if (kv->val.v.u > (uint64_t)INT64_MAX) break;
        *out = (int64_t)kv->val.v.u;
        return 1;
    case SK_GGUF_INT8: case SK_GGUF_INT16: case SK_GGUF_INT32: case SK_GGUF_INT64:
        *out = kv->val.v.i;
        return 1;
    default: break;
    }
    *st = sk_error(SHRINK_ERR_FORMAT, "%s: key '%s' has type %s, expected an integer", name, key,
                   sk_gguf_type_name(kv->val.type));
    return -1;
}

static int get_float(const sk_gguf *g, const char *key, const char *name, double *out,
                     shrink_status *st) {
    const sk_gguf_kv *kv = sk_gguf_find(g, key);
    if (!kv) return 0;
    if (kv->val.type == SK_GGUF_FLOAT32 || kv->val.type == SK_GGUF_FLOAT64) {
        *out = kv->val.v.f;
        return 1;
    }
    int64_t i;
    int r = get_int(g, key, name, &i, st);
    if (r == 1) *out = (double)i;
    return r;
}

/* A string key copied into buf (NUL-terminated, truncated); 0 absent, 1 found, -1 error. */
static int get_str(const sk_gguf *g, const char *key, const char *name, char *buf, size_t cap,
                   shrink_status *st) {
    const sk_gguf_kv *kv = sk_gguf_find(g, key);
    if (!kv) return 0;
    if (kv->val.type != SK_GGUF_STRING) {
        *st = sk_error(SHRINK_ERR_FORMAT, "%s: key '%s' has type %s, expected a string", name,
                       key, sk_gguf_type_name(kv->val.type));
        return -1;
    }
    size_t n = kv->val.v.s.len < cap - 1 ? (size_t)kv->val.v.s.len : cap - 1;
    memcpy(buf, kv->val.v.s.s, n);
    buf[n] = '\0';
    return 1;
}

/* {arch}.suffix as an int into *out (def when absent); range-checked into int32. */
static shrink_status arch_i32(const sk_gguf *g, const char *arch, const char *suffix,
                              const char *name, int required, int32_t def, int32_t *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    shrink_status st = SHRINK_OK;
    int64_t v;
    int r = get_int(g, key, name, &v, &st);
    if (r < 0) return st;
    if (r == 0) {
        if (required) return sk_error(SHRINK_ERR_FORMAT, "%s: missing key '%s'", name, key);
        *out = def;
        return SHRINK_OK;
    }
    if (v < 0 || v > INT32_MAX)
        return sk_error(SHRINK_ERR_FORMAT, "%s: key '%s' is %" PRId64 ", out of range", name, key,
                        v);
    *out = (int32_t)v;
    return SHRINK_OK;
}

static shrink_status arch_f32(const sk_gguf *g, const char *arch, const char *suffix,
                              const char *name, float def, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    shrink_status st = SHRINK_OK;
    double v = 0;
    int r = get_float(g, key, name, &v, &st);
    if (r < 0) return st;
    *out = r ? (float)v : def;
    return SHRINK_OK;
}

/* ==== config and tensors ================================================================= */

static const sk_gguf_tensor *find_tensor(const sk_gguf *g, const char *name) {
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (str_eq(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

/* memcmp(a, b, n) == 0; on a file mapping in chunks whose pages are dropped once compared,
 * so comparing two large matrices does not make them both resident. */
static int same_bytes(const uint8_t *a, const uint8_t *b, uint64_t n, int mapped) {
    const uint64_t chunk = 8u << 20;
    for (uint64_t o = 0; o < n; o += chunk) {
        size_t k = (size_t)(n - o < chunk ? n - o : chunk);
        int eq = memcmp(a + o, b + o, k) == 0;
        if (mapped) {
            sk_map_release(a + o, k);
            sk_map_release(b + o, k);
        }
        if (!eq) return 0;
    }
    return 1;
}

/* The model config from the arch keys; `mapped`: the bytes are an sk_map mapping. */
static shrink_status gguf_config(const sk_gguf *g, const char *name, int mapped, sk_config *c) {
    char arch[32];
    shrink_status st = SHRINK_OK;
    memset(c, 0, sizeof *c);
    int r = get_str(g, "general.architecture", name, arch, sizeof arch, &st);
    if (r < 0) return st;
    if (r == 0) return sk_error(SHRINK_ERR_FORMAT, "%s: missing key 'general.architecture'", name);
    c->arch = sk_arch_find_gguf(arch);
    if (!c->arch)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported (llama, "
                        "gpt2)", name, arch);
    int rope = c->arch->pos == SK_POS_ROPE;
    if ((st = arch_i32(g, arch, "embedding_length", name, 1, 0, &c->dim)) ||
        (st = arch_i32(g, arch, "block_count", name, 1, 0, &c->n_layers)) ||
        (st = arch_i32(g, arch, "feed_forward_length", name, 1, 0, &c->ffn_dim)) ||
        (st = arch_i32(g, arch, "attention.head_count", name, 1, 0, &c->n_heads)) ||
        (st = arch_i32(g, arch, "attention.head_count_kv", name, 0, c->n_heads, &c->n_kv_heads)) ||
        (st = arch_i32(g, arch, "context_length", name, 1, 0, &c->max_seq_len)))
        return st;
    if (c->n_heads <= 0 || c->dim <= 0)
        return sk_error(SHRINK_ERR_FORMAT, "%s: %s.attention.head_count and embedding_length "
                        "must be positive", name, arch);
    if ((st = arch_i32(g, arch, "attention.key_length", name, 0, c->dim / c->n_heads,
                       &c->head_dim)))
        return st;
    int32_t vlen, rope_dim;
    if ((st = arch_i32(g, arch, "attention.value_length", name, 0, c->head_dim, &vlen)) ||
        (st = arch_i32(g, arch, "rope.dimension_count", name, 0, c->head_dim, &rope_dim)))
        return st;
    if (vlen != c->head_dim)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: %s.attention.value_length %" PRId32 " differs "
                        "from key_length %" PRId32, name, arch, vlen, c->head_dim);
    if (rope && rope_dim != c->head_dim)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: %s.rope.dimension_count %" PRId32 " is not "
                        "the head size %" PRId32 " (partial RoPE is not supported)", name, arch,
                        rope_dim, c->head_dim);
    char scaling[32];
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    r = get_str(g, key, name, scaling, sizeof scaling, &st);
    if (r < 0) return st;
    if (r > 0 && strcmp(scaling, "none") != 0)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: %s = '%s'; only unscaled RoPE is supported",
                        name, key, scaling);
    /* llama.cpp names the epsilon after the norm kind */
    const char *eps = c->arch->norm == SK_NORM_LAYER ? "attention.layer_norm_epsilon"
                                                     : "attention.layer_norm_rms_epsilon";
    if ((st = arch_f32(g, arch, eps, name, 1e-5f, &c->norm_eps))) return st;
    c->rope_theta = 0;
    if (rope && (st = arch_f32(g, arch, "rope.freq_base", name, 10000.0f, &c->rope_theta)))
        return st;
    /* q/k/v biases: always with a fused q|k|v (GPT-2), else when the file has layer 0's */
    char bq[96];
    sk_trole_name(sk_trole_at(SK_ROLE_BQ), c->arch, SK_TNAME_GGUF, 0, bq, sizeof bq);
    c->qkv_bias = c->arch->fused_qkv || find_tensor(g, bq) != NULL;
    c->rope_layout = SK_ROPE_INTERLEAVED;

    /* vocabulary: {arch}.vocab_size, else the token embedding's rows */
    char emb_name[96], head_name[96];
    sk_trole_name(sk_trole_at(SK_ROLE_TOK_EMB), c->arch, SK_TNAME_GGUF, -1, emb_name, 96);
    sk_trole_name(sk_trole_at(SK_ROLE_HEAD), c->arch, SK_TNAME_GGUF, -1, head_name, 96);
    const sk_gguf_tensor *emb = find_tensor(g, emb_name);
    int32_t vocab = 0;
    if ((st = arch_i32(g, arch, "vocab_size", name, 0, 0, &vocab))) return st;
    if (!vocab && emb && emb->n_dims == 2 && emb->ne[1] <= INT32_MAX) vocab = (int32_t)emb->ne[1];
    if (!vocab) return sk_error(SHRINK_ERR_FORMAT, "%s: no vocabulary size (no %s.vocab_size, "
                                "no token_embd.weight)", name, arch);
    c->vocab_size = vocab;

    /* tied: no output.weight, or one byte-identical to token_embd (llama2.c's converter and
     * convert_hf_to_gguf.py's GPT2Model write the shared matrix twice) */
    const sk_gguf_tensor *head = find_tensor(g, head_name);
    c->tied = !head || (emb && head->type == emb->type && head->bytes == emb->bytes &&
                        same_bytes(head->data, emb->data, head->bytes, mapped));

    int64_t v;
    c->bos_id = c->eos_id = -1;
    r = get_int(g, "tokenizer.ggml.bos_token_id", name, &v, &st);
    if (r < 0) return st;
    if (r && v >= 0 && v < vocab) c->bos_id = (int32_t)v;
    r = get_int(g, "tokenizer.ggml.eos_token_id", name, &v, &st);
    if (r < 0) return st;
    if (r && v >= 0 && v < vocab) c->eos_id = (int32_t)v;
    c->add_bos = c->arch->add_bos;
    r = get_int(g, "tokenizer.ggml.add_bos_token", name, &v, &st);
    if (r < 0) return st;
    if (r) c->add_bos = v != 0;
    return sk_config_validate(c, name);
}

/* The tensor table: names copied, shapes in PyTorch order (outermost first). */
static shrink_status gguf_tensors(const sk_gguf *g, const char *name, sk_tensor **out,
                                  int64_t *n_out) {
    *out = NULL;
    *n_out = 0;
    sk_tensor *t = sk_calloc(g->n_tensors ? (size_t)g->n_tensors : 1, sizeof *t);
    if (!t) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", name);
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const sk_gguf_tensor *gt = &g->tensors[i];
        tensor_type tt;
        SHRINK_ASSERT(tensor_type_of(gt->type, &tt)); /* checked by sk_gguf_parse */
        const tensor_type *tr = &tt;
        if (tr->dtype < 0) {
            char nt[72];
            key_text(gt->name, nt, sizeof nt);
            sk_tensors_free(t, i);
            return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: tensor '%s': unsupported tensor type %s "
                            "(shrink reads f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K..q6_K, "
                            "iq4_nl and its own types)", name, nt, tr->name);
        }
        t[i].name = sk_strndup(gt->name.s, (size_t)gt->name.len);
        if (!t[i].name) {
            sk_tensors_free(t, i);
            return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", name);
        }
        t[i].dtype = (shrink_dtype)tr->dtype;
        t[i].n_dims = (int32_t)gt->n_dims;
        for (uint32_t d = 0; d < gt->n_dims; d++) t[i].shape[d] = gt->ne[gt->n_dims - 1 - d];
        t[i].bytes = gt->bytes;
        t[i].data = gt->data;
    }
    *out = t;
    *n_out = g->n_tensors;
    return SHRINK_OK;
}

shrink_status sk_gguf_open(sk_files *f, const char *path, int want_tok) {
    sk_map *maps = sk_realloc(f->maps, (size_t)(f->n_maps + 1) * sizeof *maps);
    if (!maps) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    f->maps = maps;
    sk_map *mp = &f->maps[f->n_maps];
    shrink_status st = sk_map_file(path, mp);
    if (st) return st;
    f->n_maps++;
    f->file_bytes += mp->size;
    sk_gguf *g;
    if ((st = sk_gguf_parse(mp->data, mp->size, path, &g))) return st;
    if (!(st = gguf_config(g, path, 1, &f->cfg)) &&
        !(st = gguf_tensors(g, path, &f->tensors, &f->n_tensors)) && want_tok)
        st = sk_gguf_tokenizer(g, path, &f->tok);
    sk_gguf_free(g);
    /* the tied-head check and the metadata touched pages a converter may never read again */
    sk_map_release(mp->data, mp->size);
    return st;
}

/* ==== tokenizer ========================================================================== */

shrink_status sk_gguf_tokenizer(const sk_gguf *g, const char *name, shrink_tokenizer **out) {
    *out = NULL;
    char model[32];
    shrink_status st = SHRINK_OK;
    int r = get_str(g, "tokenizer.ggml.model", name, model, sizeof model, &st);
    if (r < 0) return st;
    if (r == 0 || strcmp(model, "none") == 0) return SHRINK_OK;
    int spm = strcmp(model, "llama") == 0, bpe = strcmp(model, "gpt2") == 0;
    if (!spm && !bpe)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model '%s' is not supported "
                        "(llama, gpt2)", name, model);
    const sk_gguf_kv *tok = sk_gguf_find(g, "tokenizer.ggml.tokens");
    const sk_gguf_kv *sc = sk_gguf_find(g, "tokenizer.ggml.scores");
    const sk_gguf_kv *ty = sk_gguf_find(g, "tokenizer.ggml.token_type");
    const sk_gguf_kv *mg = sk_gguf_find(g, "tokenizer.ggml.merges");
    if (!tok || tok->val.type != SK_GGUF_ARRAY || tok->val.arr_type != SK_GGUF_STRING)
        return sk_error(SHRINK_ERR_FORMAT, "%s: tokenizer.ggml.tokens missing or not an array of "
                        "strings", name);
    uint64_t n = tok->val.arr_n;
    if (n == 0 || n > SK_TOK_MAX_VOCAB)
        return sk_error(SHRINK_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %" PRIu64 " entries, "
                        "must be in [1, %d]", name, n, SK_TOK_MAX_VOCAB);
    if (sc && (sc->val.type != SK_GGUF_ARRAY || sc->val.arr_type != SK_GGUF_FLOAT32 ||
               sc->val.arr_n != n))
        return sk_error(SHRINK_ERR_FORMAT, "%s: tokenizer.ggml.scores must be %" PRIu64 " f32",
                        name, n);
    if (ty && (ty->val.type != SK_GGUF_ARRAY || ty->val.arr_type != SK_GGUF_INT32 ||
               ty->val.arr_n != n))
        return sk_error(SHRINK_ERR_FORMAT, "%s: tokenizer.ggml.token_type must be %" PRIu64
                        " i32", name, n);
    if (bpe && (!mg || mg->val.type != SK_GGUF_ARRAY || mg->val.arr_type != SK_GGUF_STRING))
        return sk_error(SHRINK_ERR_FORMAT, "%s: tokenizer.ggml.merges missing or not an array of "
                        "strings (needed by a gpt2 tokenizer)", name);
    uint64_t nm = bpe ? mg->val.arr_n : 0;
    const char **pieces = sk_malloc((size_t)n * sizeof *pieces);
    uint64_t *plens = sk_malloc((size_t)n * sizeof *plens);
    float *scores = sc ? sk_malloc((size_t)n * sizeof *scores) : NULL;
    int32_t *types = ty ? sk_malloc((size_t)n * sizeof *types) : NULL;
    const char **merges = nm ? sk_malloc((size_t)nm * sizeof *merges) : NULL;
    uint64_t *mlens = nm ? sk_malloc((size_t)nm * sizeof *mlens) : NULL;
    sk_tok_arrays a;
    memset(&a, 0, sizeof a);
    if (!pieces || !plens || (sc && !scores) || (ty && !types) || (nm && (!merges || !mlens))) {
        st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory for the vocabulary", name);
        goto out;
    }
    uint64_t pos = 0;
    for (uint64_t i = 0; i < n; i++) {
        sk_gguf_str s = sk_gguf_array_next_str(&tok->val, &pos);
        pieces[i] = s.s;
        plens[i] = s.len;
        if (sc) scores[i] = sk_rd_f32(sc->val.arr_data + 4 * i);
        if (ty) types[i] = (int32_t)sk_rd_u32(ty->val.arr_data + 4 * i);
    }
    pos = 0;
    for (uint64_t i = 0; i < nm; i++) {
        sk_gguf_str s = sk_gguf_array_next_str(&mg->val, &pos);
        merges[i] = s.s;
        mlens[i] = s.len;
    }
    a.n_vocab = (int64_t)n;
    a.pieces = pieces;
    a.piece_lens = plens;
    a.scores = scores;
    a.types = types;
    a.n_merges = (int64_t)nm;
    a.merges = merges;
    a.merge_lens = mlens;
    int64_t v;
    a.bos = a.eos = a.unk = -1;
    if (get_int(g, "tokenizer.ggml.bos_token_id", name, &v, &st) == 1 && v >= 0 &&
        (uint64_t)v < n)
        a.bos = (int32_t)v;
    if (get_int(g, "tokenizer.ggml.eos_token_id", name, &v, &st) == 1 && v >= 0 &&
        (uint64_t)v < n)
        a.eos = (int32_t)v;
    if (get_int(g, "tokenizer.ggml.unknown_token_id", name, &v, &st) == 1 && v >= 0 &&
        (uint64_t)v < n)
        a.unk = (int32_t)v;
    a.add_space_prefix = -1;
    if (get_int(g, "tokenizer.ggml.add_space_prefix", name, &v, &st) == 1)
        a.add_space_prefix = v != 0;
    st = spm ? sk_tok_load_spm_arrays(&a, name, out) : sk_tok_load_gpt2_arrays(&a, name, out);
out:
    sk_free(pieces);
    sk_free(plens);
    sk_free(scores);
    sk_free(types);
    sk_free(merges);
    sk_free(mlens);
    return st;
}

/* ==== writing ============================================================================ */

/* The header (metadata and tensor infos) is built in a growable byte buffer (core: sk_bytes). */
typedef sk_bytes wbuf;

static void wb_put(wbuf *b, const void *p, size_t n) { sk_bytes_put(b, p, n); }

static void wb_u32(wbuf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    wb_put(b, x, 4);
}

static void wb_u64(wbuf *b, uint64_t v) {
    wb_u32(b, (uint32_t)v);
    wb_u32(b, (uint32_t)(v >> 32));
}

static void wb_f32(wbuf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    wb_u32(b, u);
}

static void wb_str(wbuf *b, const char *s, size_t n) {
    wb_u64(b, n);
    wb_put(b, s, n);
}

static void kv_key(wbuf *b, const char *key, sk_gguf_type t, int64_t *n_kv) {
    wb_str(b, key, strlen(key));
    wb_u32(b, (uint32_t)t);
    (*n_kv)++;
}

static void kv_u32(wbuf *b, int64_t *n, const char *key, uint32_t v) {
    kv_key(b, key, SK_GGUF_UINT32, n);
    wb_u32(b, v);
}

static void kv_f32(wbuf *b, int64_t *n, const char *key, float v) {
    kv_key(b, key, SK_GGUF_FLOAT32, n);
    wb_f32(b, v);
}

static void kv_bool(wbuf *b, int64_t *n, const char *key, int v) {
    kv_key(b, key, SK_GGUF_BOOL, n);
    uint8_t x = v ? 1 : 0;
    wb_put(b, &x, 1);
}

static void kv_str(wbuf *b, int64_t *n, const char *key, const char *s) {
    kv_key(b, key, SK_GGUF_STRING, n);
    wb_str(b, s, strlen(s));
}

static void kv_arch_u32(wbuf *b, int64_t *n, const char *arch, const char *suffix, uint32_t v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    kv_u32(b, n, key, v);
}

static void kv_arch_f32(wbuf *b, int64_t *n, const char *arch, const char *suffix, float v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    kv_f32(b, n, key, v);
}

/* The pieces of the tokenizer as GGUF wants them (a llama2.c "\n<s>\n" becomes "<s>"). */
static void tok_piece(const shrink_tokenizer *t, int32_t i, const char **s, size_t *n) {
    *s = sk_tok_piece_str(t, i);
    *n = t->piece_len[i];
    if (t->kind == SK_TOK_SPM && t->types[i] == SK_PIECE_CONTROL && *n >= 2 && (*s)[0] == '\n' &&
        (*s)[*n - 1] == '\n') {
        (*s)++;
        *n -= 2;
    }
}

static void kv_tokenizer(wbuf *b, int64_t *n, const sk_source *src) {
    const shrink_tokenizer *t = src->tok;
    int spm = t->kind == SK_TOK_SPM;
    kv_str(b, n, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
    kv_str(b, n, "tokenizer.ggml.pre", spm ? "default" : "gpt-2");
    kv_key(b, "tokenizer.ggml.tokens", SK_GGUF_ARRAY, n);
    wb_u32(b, SK_GGUF_STRING);
    wb_u64(b, (uint64_t)t->n_vocab);
    for (int32_t i = 0; i < t->n_vocab; i++) {
        const char *s;
        size_t len;
        tok_piece(t, i, &s, &len);
        wb_str(b, s, len);
    }
    if (spm) {
        kv_key(b, "tokenizer.ggml.scores", SK_GGUF_ARRAY, n);
        wb_u32(b, SK_GGUF_FLOAT32);
        wb_u64(b, (uint64_t)t->n_vocab);
        for (int32_t i = 0; i < t->n_vocab; i++) wb_f32(b, t->scores[i]);
    }
    kv_key(b, "tokenizer.ggml.token_type", SK_GGUF_ARRAY, n);
    wb_u32(b, SK_GGUF_INT32);
    wb_u64(b, (uint64_t)t->n_vocab);
    for (int32_t i = 0; i < t->n_vocab; i++) wb_u32(b, t->types[i] ? t->types[i] : 1);
    if (!spm) {
        char **m = NULL;
        size_t *ml = NULL;
        int64_t nm = 0;
        if (sk_tok_merges_list(t, &m, &ml, &nm) != SHRINK_OK) {
            b->oom = 1;
            return;
        }
        kv_key(b, "tokenizer.ggml.merges", SK_GGUF_ARRAY, n);
        wb_u32(b, SK_GGUF_STRING);
        wb_u64(b, (uint64_t)nm);
        for (int64_t i = 0; i < nm; i++) wb_str(b, m[i], ml[i]);
        for (int64_t i = 0; i < nm; i++) sk_free(m[i]);
        sk_free(m);
        sk_free(ml);
    }
    if (t->bos >= 0) kv_u32(b, n, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos);
    if (t->eos >= 0) kv_u32(b, n, "tokenizer.ggml.eos_token_id", (uint32_t)t->eos);
    if (t->unk >= 0) kv_u32(b, n, "tokenizer.ggml.unknown_token_id", (uint32_t)t->unk);
    kv_bool(b, n, "tokenizer.ggml.add_bos_token", src->cfg.add_bos);
    kv_bool(b, n, "tokenizer.ggml.add_eos_token", 0);
}

/* GGUF tensor of a canonical tensor: name and type. */
static void gguf_name(const sk_config *c, const sk_wtensor *t, char *buf, size_t cap) {
    if (!sk_wtensor_name(t, c->arch, SK_TNAME_GGUF, buf, cap))
        snprintf(buf, cap, "?"); /* every role has a GGUF name (test_tensors checks it) */
}

/* The tensors written: the canonical list (a tied head is token_embd alone: llama.cpp ties a
 * missing output.weight), plus output.weight when asked (head_copy) for a tied model of an arch
 * older llama.cpp builds need it for (GPT-2 before PR 12456, as its converter wrote it then). */
static shrink_status gguf_list(const sk_source *src, const sk_write_opts *o, sk_wtensor **ts,
                               int64_t *n) {
    shrink_status st = sk_source_tensors(src, ts, n);
    if (st) return st;
    if (o->head_copy && src->cfg.arch->gguf_head && src->cfg.tied) {
        sk_wtensor *g = sk_realloc(*ts, (size_t)(*n + 1) * sizeof *g);
        if (!g) return sk_error(SHRINK_ERR_NOMEM, "out of memory");
        *ts = g;
        sk_wtensor *h = &g[*n];
        *h = g[0]; /* token embedding */
        h->role = SK_ROLE_HEAD;
        sk_trole_name(sk_trole_at(SK_ROLE_HEAD), src->cfg.arch, SK_TNAME_HF, -1, h->name,
                      sizeof h->name);
        (*n)++;
    }
    return SHRINK_OK;
}

/* Fill adapter: the head of a tied model is the token embedding. */
typedef struct head_alias {
    const sk_source *src;
} head_alias;

static shrink_status alias_fill(void *user, const sk_wtensor *t, int64_t r0, int64_t n, int tr,
                                shrink_dtype dt, void *dst) {
    const head_alias *h = user;
    sk_wtensor e = *t;
    if (e.role == SK_ROLE_HEAD && h->src->cfg.tied) {
        e.role = SK_ROLE_TOK_EMB;
        sk_trole_name(sk_trole_at(SK_ROLE_TOK_EMB), h->src->cfg.arch, SK_TNAME_HF, -1, e.name,
                      sizeof e.name);
    }
    return h->src->fill(h->src->user, &e, r0, n, tr, dt, dst);
}

shrink_status sk_gguf_write(const sk_source *src, const char *out, const sk_write_opts *o) {
    const sk_config *c = &src->cfg;
    const char *arch = c->arch->gguf_arch;
    if (!c->arch->fused_qkv && c->qkv_bias)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: a %s model with q/k/v biases cannot be "
                        "written as GGUF arch %s", out, c->arch->name, arch);
    if (!c->arch->gguf_write)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: %s models cannot be written as GGUF yet",
                        out, c->arch->name);
    int rope = c->arch->pos == SK_POS_ROPE;
    shrink_dtype mdt = o->dtype >= 0 ? (shrink_dtype)o->dtype : src->dtype;
    sk_wtensor *ts = NULL;
    int64_t n = 0;
    shrink_status st = gguf_list(src, o, &ts, &n);
    if (st) return st;

    /* ---- header: metadata ---- */
    wbuf kv = {0};
    int64_t n_kv = 0;
    kv_str(&kv, &n_kv, "general.architecture", arch);
    kv_str(&kv, &n_kv, "general.type", "model");
    kv_str(&kv, &n_kv, "general.name", src->name ? src->name : "shrink");
    /* the keys llama.cpp's converters write: RoPE models (llama) also carry the KV head
     * count, RoPE keys and head sizes; the epsilon is named after the norm kind */
    kv_arch_u32(&kv, &n_kv, arch, "block_count", (uint32_t)c->n_layers);
    kv_arch_u32(&kv, &n_kv, arch, "context_length", (uint32_t)c->max_seq_len);
    kv_arch_u32(&kv, &n_kv, arch, "embedding_length", (uint32_t)c->dim);
    kv_arch_u32(&kv, &n_kv, arch, "feed_forward_length", (uint32_t)c->ffn_dim);
    kv_arch_u32(&kv, &n_kv, arch, "attention.head_count", (uint32_t)c->n_heads);
    if (rope) {
        kv_arch_u32(&kv, &n_kv, arch, "attention.head_count_kv", (uint32_t)c->n_kv_heads);
        kv_arch_f32(&kv, &n_kv, arch, "rope.freq_base", c->rope_theta);
    }
    kv_arch_f32(&kv, &n_kv, arch, c->arch->norm == SK_NORM_LAYER
                                      ? "attention.layer_norm_epsilon"
                                      : "attention.layer_norm_rms_epsilon", c->norm_eps);
    if (rope && (int64_t)c->head_dim * c->n_heads != c->dim) {
        kv_arch_u32(&kv, &n_kv, arch, "attention.key_length", (uint32_t)c->head_dim);
        kv_arch_u32(&kv, &n_kv, arch, "attention.value_length", (uint32_t)c->head_dim);
    }
    /* general.file_type: llama_ftype ALL_F32 0, MOSTLY_F16 1, MOSTLY_BF16 32, MOSTLY_Q8_0 7,
     * ..., MOSTLY_Q4_K_S 14 (for q4_K), MOSTLY_Q5_K_S 16, MOSTLY_Q6_K 18; a mix's own */
    kv_u32(&kv, &n_kv, "general.file_type",
           o->file_type >= 0 ? (uint32_t)o->file_type : gguf_file_type(mdt));
    if (rope) {
        kv_arch_u32(&kv, &n_kv, arch, "vocab_size", (uint32_t)c->vocab_size);
        kv_arch_u32(&kv, &n_kv, arch, "rope.dimension_count", (uint32_t)c->head_dim);
    }
    if (src->tok) kv_tokenizer(&kv, &n_kv, src);
    kv_u32(&kv, &n_kv, "general.quantization_version", 2);
    if (o->manifest) kv_str(&kv, &n_kv, SHRINK_MANIFEST_KEY, o->manifest);

    /* ---- header: tensor infos (offsets from the sizes, 32-byte aligned) ---- */
    wbuf ti = {0};
    uint64_t off = 0, total = 0;
    shrink_dtype *dts = sk_malloc((size_t)n * sizeof *dts);
    if (!dts) {
        st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", out);
        goto out_free;
    }
    for (int64_t i = 0; i < n; i++) {
        const sk_wtensor *t = &ts[i];
        char name[SK_GGUF_MAX_NAME + 16];
        gguf_name(c, t, name, sizeof name);
        dts[i] = o->tensor_dtype       ? o->tensor_dtype(o->tensor_user, t, i)
                 : t->n_dims == 1      ? SHRINK_DTYPE_F32
                                       : sk_gguf_fallback(mdt, t->cols);
        wb_str(&ti, name, strlen(name));
        wb_u32(&ti, (uint32_t)t->n_dims);
        /* ne[0] is the contiguous dimension: [in, out] for an (out, in) matrix */
        if (t->n_dims == 2) wb_u64(&ti, (uint64_t)t->cols);
        wb_u64(&ti, (uint64_t)t->rows);
        wb_u32(&ti, ggml_of_dtype(dts[i]));
        wb_u64(&ti, off);
        if (t->n_dims == 1 && sk_dtype_quantized(dts[i])) {
            st = sk_error(SHRINK_ERR_UNSUPPORTED, "%s: vector '%s' cannot be %s (vectors are "
                          "written f32, f16 or bf16)", out, name, sk_dtype(dts[i])->name);
            goto out_free;
        }
        uint64_t bytes = sk_dtype_tensor_bytes(dts[i], t->rows, t->cols);
        off += (bytes + SK_GGUF_ALIGNMENT - 1) / SK_GGUF_ALIGNMENT * SK_GGUF_ALIGNMENT;
        total += bytes;
    }
    if (kv.oom || ti.oom) {
        st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory for the header", out);
        goto out_free;
    }
    if (o->dry_bytes) { /* the size only: magic, version, counts, header, aligned data */
        const uint64_t head = 24 + kv.n + ti.n;
        *o->dry_bytes = (head + SK_GGUF_ALIGNMENT - 1) / SK_GGUF_ALIGNMENT * SK_GGUF_ALIGNMENT + off;
        goto out_free;
    }

    sk_out f;
    if ((st = sk_out_open(&f, out, src->inputs, src->n_inputs))) goto out_free;
    wbuf hd = {0};
    wb_u32(&hd, SK_GGUF_MAGIC);
    wb_u32(&hd, SK_GGUF_VERSION);
    wb_u64(&hd, (uint64_t)n);
    wb_u64(&hd, (uint64_t)n_kv);
    if (hd.oom) {
        sk_out_abort(&f);
        st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", out);
        goto out_free;
    }
    if ((st = sk_out_write(&f, hd.p, hd.n)) || (st = sk_out_write(&f, kv.p, kv.n)) ||
        (st = sk_out_write(&f, ti.p, ti.n)) || (st = sk_out_pad(&f, SK_GGUF_ALIGNMENT))) {
        sk_free(hd.p);
        goto out_free;
    }
    sk_free(hd.p);

    /* ---- data ---- */
    head_alias ha = {src};
    sk_source s2 = *src;
    s2.fill = alias_fill;
    s2.user = &ha;
    sk_write_progress pr = {0, (int64_t)total, o->progress, o->progress_user};
    for (int64_t i = 0; i < n && !st; i++) {
        st = sk_write_stream(&s2, &ts[i], &f, dts[i], 0, SK_ROPE_INTERLEAVED, &pr);
        if (!st) st = sk_out_pad(&f, SK_GGUF_ALIGNMENT);
    }
    if (!st) st = sk_out_commit(&f);
    else sk_out_abort(&f);
out_free:
    sk_free(dts);
    sk_free(kv.p);
    sk_free(ti.p);
    sk_free(ts);
    return st;
}
