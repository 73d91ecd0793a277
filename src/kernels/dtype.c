/*
 * dtype.c - THE dtype table: one row per shrink_dtype, and the scalar f16/bf16 conversions.
 * Everything that needs to know about a dtype (readers, writers, kernels, tests) looks here.
 */
#include "kernels.h"
#include "ggml_quants.h"
#include "shrink_quants.h"
#include "q_search.h"
#include "palette.h"

float sk_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t man = h & 0x3FF;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalize */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3FF;
            u = sign | exp << 23 | man << 13;
        }
    } else if (exp == 31) {
        u = sign | 0x7F800000u | man << 13; /* inf / nan */
    } else {
        u = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t sk_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t exp = (u >> 23) & 0xFF;
    uint32_t man = u & 0x7FFFFF;
    if (exp == 0xFF) return (uint16_t)(sign | 0x7C00 | (man ? 0x200 | (man >> 13) : 0));
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7C00);
    if (e <= 0) { /* subnormal or zero in half */
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | (uint32_t)e << 10 | man >> 13;
    uint32_t rem = man & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* may carry into exp: ok */
    return (uint16_t)half;
}

float sk_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t sk_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)((u >> 16) | 0x40); /* quiet nan */
    u += 0x7FFF + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static void f32_to_f32(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}
static void f32_from_f32(const float *src, void *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}
static void f16_to_f32_row(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = sk_f16_to_f32(s[i]);
}
static void f16_from_f32_row(const float *src, void *dst, int64_t n) {
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = sk_f32_to_f16(src[i]);
}
static void bf16_to_f32_row(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = sk_bf16_to_f32(s[i]);
}
static void bf16_from_f32_row(const float *src, void *dst, int64_t n) {
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = sk_f32_to_bf16(src[i]);
}

static const sk_dtype_traits sk_dtypes[SHRINK_DTYPE_COUNT] = {
    [SHRINK_DTYPE_F32]  = {.name = "f32",  .st_name = "F32",  .block = 1, .bytes = 4,
                           .to_f32 = f32_to_f32,      .from_f32 = f32_from_f32,
                           .tol_rel = 0},
    [SHRINK_DTYPE_F16]  = {.name = "f16",  .st_name = "F16",  .block = 1, .bytes = 2,
                           .to_f32 = f16_to_f32_row,  .from_f32 = f16_from_f32_row,
                           .tol_rel = 4.9e-4},
    [SHRINK_DTYPE_BF16] = {.name = "bf16", .st_name = "BF16", .block = 1, .bytes = 2,
                           .to_f32 = bf16_to_f32_row, .from_f32 = bf16_from_f32_row,
                           .tol_rel = 3.9e-3},
    /* block types: tol_rel is the RMS error of a round trip relative to the RMS of
     * normally distributed data (tests/test_quants.c) */
    [SHRINK_DTYPE_Q8_0] = {.name = "q8_0", .block = SK_QK8_0, .bytes = sizeof(block_q8_0),
                           .to_f32 = sk_q8_0_dequant_ref, .from_f32 = sk_q8_0_quant_ref,
                           .act = SK_ACT_Q8_32, .vec_dot_ref = sk_q8_0_dot_ref,
                           .tol_rel = 6e-3},
    [SHRINK_DTYPE_Q4_0] = {.name = "q4_0", .block = SK_QK4_0, .bytes = sizeof(block_q4_0),
                           .to_f32 = sk_q4_0_dequant_ref, .from_f32 = sk_q4_0_quant_ref,
                           .quantize = sk_q4_0_search, /* q_search.c */
                           .act = SK_ACT_Q8_32, .vec_dot_ref = sk_q4_0_dot_ref,
                           .tol_rel = 0.11},
    [SHRINK_DTYPE_Q4_1] = {.name = "q4_1", .block = SK_QK4_1, .bytes = sizeof(block_q4_1),
                           .to_f32 = sk_q4_1_dequant_ref, .from_f32 = sk_q4_1_quant_ref,
                           .quantize = sk_q4_1_search, /* q_search.c */
                           .act = SK_ACT_Q8_32, .vec_dot_ref = sk_q4_1_dot_ref,
                           .tol_rel = 0.09},
    [SHRINK_DTYPE_Q5_0] = {.name = "q5_0", .block = SK_QK5_0, .bytes = sizeof(block_q5_0),
                           .to_f32 = sk_q5_0_dequant_ref, .from_f32 = sk_q5_0_quant_ref,
                           .quantize = sk_q5_0_search, /* q_search.c */
                           .act = SK_ACT_Q8_32, .vec_dot_ref = sk_q5_0_dot_ref,
                           .tol_rel = 0.055},
    [SHRINK_DTYPE_Q5_1] = {.name = "q5_1", .block = SK_QK5_1, .bytes = sizeof(block_q5_1),
                           .to_f32 = sk_q5_1_dequant_ref, .from_f32 = sk_q5_1_quant_ref,
                           .quantize = sk_q5_1_search, /* q_search.c */
                           .act = SK_ACT_Q8_32, .vec_dot_ref = sk_q5_1_dot_ref,
                           .tol_rel = 0.045},
    [SHRINK_DTYPE_Q4_K] = {.name = "q4_K", .block = SK_QK_K, .bytes = sizeof(block_q4_K),
                           .to_f32 = sk_q4_K_dequant_ref, .from_f32 = sk_q4_K_quant_ref,
                           .act = SK_ACT_Q8_K, .vec_dot_ref = sk_q4_K_dot_ref,
                           .tol_rel = 0.09},
    [SHRINK_DTYPE_Q5_K] = {.name = "q5_K", .block = SK_QK_K, .bytes = sizeof(block_q5_K),
                           .to_f32 = sk_q5_K_dequant_ref, .from_f32 = sk_q5_K_quant_ref,
                           .act = SK_ACT_Q8_K, .vec_dot_ref = sk_q5_K_dot_ref,
                           .tol_rel = 0.045},
    [SHRINK_DTYPE_Q6_K] = {.name = "q6_K", .block = SK_QK_K, .bytes = sizeof(block_q6_K),
                           .to_f32 = sk_q6_K_dequant_ref, .from_f32 = sk_q6_K_quant_ref,
                           .act = SK_ACT_Q8_K, .vec_dot_ref = sk_q6_K_dot_ref,
                           .tol_rel = 0.025},
    [SHRINK_DTYPE_Q2_K] = {.name = "q2_K", .block = SK_QK_K, .bytes = sizeof(block_q2_K),
                           .to_f32 = sk_q2_K_dequant_ref, .from_f32 = sk_q2_K_quant_ref,
                           .act = SK_ACT_Q8_K, .vec_dot_ref = sk_q2_K_dot_ref,
                           .tol_rel = 0.31},
    [SHRINK_DTYPE_Q3_K] = {.name = "q3_K", .block = SK_QK_K, .bytes = sizeof(block_q3_K),
                           .to_f32 = sk_q3_K_dequant_ref, .from_f32 = sk_q3_K_quant_ref,
                           .act = SK_ACT_Q8_K, .vec_dot_ref = sk_q3_K_dot_ref,
                           .tol_rel = 0.16},
    [SHRINK_DTYPE_IQ4_NL] = {.name = "iq4_nl", .block = SK_QK4_NL, .bytes = sizeof(block_iq4_nl),
                             .to_f32 = sk_iq4_nl_dequant_ref, .from_f32 = sk_iq4_nl_quant_ref,
                             .quantize = sk_iq4_nl_quantize,
                             .act = SK_ACT_Q8_32, .vec_dot_ref = sk_iq4_nl_dot_ref,
                             .tol_rel = 0.08},
    /* shrink's own types (shrink_quants.h, docs/formats.md). Row-head types: to_f32, from_f32
     * and quantize take whole rows; from_f32 uses the row's own statistics (so int8_t and
     * int8_t_asym without tensor parameters behave like int8_ch / int8_ch_asym, and w8a8_static
     * stores a = 0, "not calibrated"); quantize() takes the tensor-level parameters.
     * tol_rel: measured RMS round-trip error on normal data (tests/test_qshrink.c) + margin. */
#define ROW_HEAD_FUNCS(t, deq) .to_f32 = sk_##deq##_to_f32, .from_f32 = sk_##t##_from_f32,       \
                               .quantize = sk_##t##_quantize, .to_f32_range = sk_##deq##_to_f32_range
#define BLOCK_FUNCS(t) .to_f32 = sk_##t##_to_f32, .from_f32 = sk_##t##_from_f32,                 \
                       .quantize = sk_##t##_search /* q_search.c */
#define BLOCK_FUNCS_S24(t) .to_f32 = sk_##t##_to_f32, .from_f32 = sk_##t##_from_f32,             \
                           .quantize = sk_##t##_quantize
    [SHRINK_DTYPE_INT8_CH]        = {.name = "int8_ch", .block = 1, .bytes = 1,
                                     .row_head = SK_HEAD_D, ROW_HEAD_FUNCS(int8_ch, int8_ch),
                                     .act = SK_ACT_Q8_32,
                                     .vec_dot_ref = sk_int8_dot_ref, .tol_rel = 9.5e-3},
    [SHRINK_DTYPE_INT8_CH_ASYM]   = {.name = "int8_ch_asym", .block = 1, .bytes = 1,
                                     .row_head = SK_HEAD_DM,
                                     ROW_HEAD_FUNCS(int8_ch_asym, int8_ch_asym),
                                     .act = SK_ACT_Q8_32,
                                     .vec_dot_ref = sk_int8_asym_dot_ref, .tol_rel = 9e-3},
    [SHRINK_DTYPE_INT8_T]         = {.name = "int8_t", .block = 1, .bytes = 1,
                                     .row_head = SK_HEAD_D, ROW_HEAD_FUNCS(int8_t, int8_ch),
                                     .act = SK_ACT_Q8_32,
                                     .vec_dot_ref = sk_int8_dot_ref, .tol_rel = 9.5e-3},
    [SHRINK_DTYPE_INT8_T_ASYM]    = {.name = "int8_t_asym", .block = 1, .bytes = 1,
                                     .row_head = SK_HEAD_DM,
                                     ROW_HEAD_FUNCS(int8_t_asym, int8_ch_asym),
                                     .act = SK_ACT_Q8_32,
                                     .vec_dot_ref = sk_int8_asym_dot_ref, .tol_rel = 9e-3},
    [SHRINK_DTYPE_INT4_G32]       = {.name = "int4_g32", .block = 32,
                                     .bytes = sizeof(sk_block_int4_g32), BLOCK_FUNCS(int4_g32),
                                     .act = SK_ACT_Q8_32,
                                     .vec_dot_ref = sk_int4_g32_dot_ref, .tol_rel = 0.11},
    [SHRINK_DTYPE_INT4_G64]       = {.name = "int4_g64", .block = 64,
                                     .bytes = sizeof(sk_block_int4_g64), BLOCK_FUNCS(int4_g64),
                                     .act = SK_ACT_Q8_32,
                                     .vec_dot_ref = sk_int4_g64_dot_ref, .tol_rel = 0.125},
    [SHRINK_DTYPE_INT4_G128]      = {.name = "int4_g128", .block = 128,
                                     .bytes = sizeof(sk_block_int4_g128), BLOCK_FUNCS(int4_g128),
                                     .act = SK_ACT_Q8_32,
                                     .vec_dot_ref = sk_int4_g128_dot_ref, .tol_rel = 0.135},
    [SHRINK_DTYPE_INT4_G32_ASYM]  = {.name = "int4_g32_asym", .block = 32,
                                     .bytes = sizeof(sk_block_int4_g32_asym),
                                     BLOCK_FUNCS(int4_g32_asym),
                                     .act = SK_ACT_Q8_32,
                                     .vec_dot_ref = sk_int4_g32_asym_dot_ref, .tol_rel = 0.09},
    [SHRINK_DTYPE_INT4_G64_ASYM]  = {.name = "int4_g64_asym", .block = 64,
                                     .bytes = sizeof(sk_block_int4_g64_asym),
                                     BLOCK_FUNCS(int4_g64_asym),
                                     .act = SK_ACT_Q8_32,
                                     .vec_dot_ref = sk_int4_g64_asym_dot_ref, .tol_rel = 0.105},
    [SHRINK_DTYPE_INT4_G128_ASYM] = {.name = "int4_g128_asym", .block = 128,
                                     .bytes = sizeof(sk_block_int4_g128_asym),
                                     BLOCK_FUNCS(int4_g128_asym),
                                     .act = SK_ACT_Q8_32,
                                     .vec_dot_ref = sk_int4_g128_asym_dot_ref, .tol_rel = 0.115},
    [SHRINK_DTYPE_NF4]            = {.name = "nf4", .block = SK_QK_NF4,
                                     .bytes = sizeof(sk_block_nf4), BLOCK_FUNCS(nf4),
                                     .act = SK_ACT_F32,
                                     .vec_dot_ref = sk_nf4_dot_ref, .tol_rel = 0.105},
    [SHRINK_DTYPE_NF4_DQ]         = {.name = "nf4_dq", .block = SK_QK_NF4,
                                     .bytes = sizeof(sk_block_nf4_dq),
                                     .row_head = SK_HEAD_NF4D, .to_f32 = sk_nf4_dq_to_f32,
                                     .from_f32 = sk_nf4_dq_from_f32,
                                     .quantize = sk_nf4_dq_search, /* q_search.c */
                                     .to_f32_range = sk_nf4_dq_to_f32_range,
                                     .act = SK_ACT_F32,
                                     .vec_dot_ref = sk_nf4_dq_dot_ref, .tol_rel = 0.105},
    [SHRINK_DTYPE_W8A8]           = {.name = "w8a8", .block = 1, .bytes = 1,
                                     .row_head = SK_HEAD_D, ROW_HEAD_FUNCS(w8a8, int8_ch),
                                     .act = SK_ACT_I8_TOKEN,
                                     .vec_dot_ref = sk_w8a8_dot_ref, .tol_rel = 9.5e-3},
    [SHRINK_DTYPE_W8A8_STATIC]    = {.name = "w8a8_static", .block = 1, .bytes = 1,
                                     .row_head = SK_HEAD_DM,
                                     ROW_HEAD_FUNCS(w8a8_static, w8a8_static),
                                     .act = SK_ACT_I8_STATIC,
                                     .vec_dot_ref = sk_w8a8_static_dot_ref, .tol_rel = 9.5e-3},
    /* 2:4 sparse (sparse24.c): tol_rel is that of normal data, which loses 2 of every 4 */
    [SHRINK_DTYPE_SPARSE24_F16]   = {.name = "sparse24_f16", .block = SK_QK_S24,
                                     .bytes = SK_S24_F16_BYTES, BLOCK_FUNCS_S24(sparse24_f16),
                                     .act = SK_ACT_F32,
                                     .vec_dot_ref = sk_sparse24_f16_dot_ref, .tol_rel = 0.38},
    [SHRINK_DTYPE_SPARSE24_I8]    = {.name = "sparse24_i8", .block = SK_QK_S24,
                                     .bytes = SK_S24_I8_BYTES, .row_head = SK_HEAD_D,
                                     ROW_HEAD_FUNCS(sparse24_i8, sparse24_i8),
                                     .act = SK_ACT_F32,
                                     .vec_dot_ref = sk_sparse24_i8_dot_ref, .tol_rel = 0.38},
    /* palettes (palette.h): the row head is the row's entry of its group's palette, so
     * from_f32 of a lone row is a group of one (the mean); shrink quantize runs the k-means
     * (src/quant/palette.c) and gives each row its group's palette through quantize().
     * tol_rel: of quantize() with the k-means palette on normal data (tests/test_palette.c) */
#define PAL_FUNCS(t) .to_f32 = sk_##t##_to_f32, .from_f32 = sk_##t##_from_f32,                   \
                     .quantize = sk_##t##_quantize, .to_f32_range = sk_##t##_to_f32_range,       \
                     .act = SK_ACT_F32, .vec_dot_ref = sk_##t##_dot_ref,                      \
                     .check_rows = sk_pal_check,                                                 \
                     .check_what = "its head names a palette group outside the tensor, or a "    \
                                   "wrong row length"
    [SHRINK_DTYPE_PAL16]          = {.name = "pal16", .block = SK_QK_PAL, .bytes = 16,
                                     .row_head = SK_HEAD_PAL, PAL_FUNCS(pal16), .tol_rel = 0.12},
    [SHRINK_DTYPE_PAL256]         = {.name = "pal256", .block = SK_QK_PAL, .bytes = 32,
                                     .row_head = SK_HEAD_PAL, PAL_FUNCS(pal256), .tol_rel = 0.016},
    [SHRINK_DTYPE_PAL4]           = {.name = "pal4", .block = SK_QK_PAL, .bytes = 8,
                                     .row_head = SK_HEAD_PAL, PAL_FUNCS(pal4), .tol_rel = 0.4},
    /* unstructured sparse (sparse_bm.c): tol_rel of normal data, whose smaller half is lost */
#define SBM_CHECK .check_rows = sk_sparse_bm_check,                                              \
                  .check_what = "its bitmaps do not count the stored values, more than half "  \
                                "the row is stored, or a wrong row length"
    [SHRINK_DTYPE_SPARSE_F16]     = {.name = "sparse_f16", .block = SK_QK_SBM,
                                     .bytes = SK_SBM_F16_BYTES, .row_head = SK_SBM_HEAD_F16,
                                     ROW_HEAD_FUNCS(sparse_f16, sparse_f16), .act = SK_ACT_F32,
                                     .vec_dot_ref = sk_sparse_f16_dot_ref, .tol_rel = 0.3,
                                     SBM_CHECK},
    [SHRINK_DTYPE_SPARSE_I8]      = {.name = "sparse_i8", .block = SK_QK_SBM,
                                     .bytes = SK_SBM_I8_BYTES, .row_head = SK_SBM_HEAD_I8,
                                     ROW_HEAD_FUNCS(sparse_i8, sparse_i8), .act = SK_ACT_F32,
                                     .vec_dot_ref = sk_sparse_i8_dot_ref, .tol_rel = 0.3,
                                     SBM_CHECK},
#undef PAL_FUNCS
#undef SBM_CHECK
#undef ROW_HEAD_FUNCS
#undef BLOCK_FUNCS
#undef BLOCK_FUNCS_S24
};

const sk_dtype_traits *sk_dtype(shrink_dtype t) {
    SHRINK_ASSERT((unsigned)t < SHRINK_DTYPE_COUNT);
    return &sk_dtypes[t];
}

uint64_t sk_dtype_row_bytes(shrink_dtype t, int64_t n) {
    const sk_dtype_traits *d = sk_dtype(t);
    return d->row_head + (uint64_t)n / d->block * d->bytes;
}

uint64_t sk_dtype_tensor_bytes(shrink_dtype t, int64_t rows, int64_t cols) {
    return (uint64_t)rows * sk_dtype_row_bytes(t, cols);
}

int sk_dtype_own(shrink_dtype t) {
    return (t >= SHRINK_DTYPE_INT8_CH && t <= SHRINK_DTYPE_W8A8_STATIC) || sk_dtype_sparse24(t) ||
           sk_pal_k(t) > 0 || sk_dtype_sparse_bm(t);
}

int sk_dtype_sparse24(shrink_dtype t) {
    return t == SHRINK_DTYPE_SPARSE24_F16 || t == SHRINK_DTYPE_SPARSE24_I8;
}

int sk_dtype_sparse_bm(shrink_dtype t) {
    return t == SHRINK_DTYPE_SPARSE_F16 || t == SHRINK_DTYPE_SPARSE_I8;
}

int sk_dtype_quantized(shrink_dtype t) {
    const sk_dtype_traits *d = sk_dtype(t);
    return d->block > 1 || d->row_head > 0;
}

double shrink_dtype_bits(shrink_dtype t) {
    if ((unsigned)t >= SHRINK_DTYPE_COUNT) return 0.0;
    return 8.0 * (double)sk_dtypes[t].bytes / (double)sk_dtypes[t].block;
}

int64_t shrink_dtype_block_size(shrink_dtype t) {
    return (unsigned)t < SHRINK_DTYPE_COUNT ? (int64_t)sk_dtypes[t].block : 0;
}

bool shrink_dtype_is_own(shrink_dtype t) {
    return (unsigned)t < SHRINK_DTYPE_COUNT && sk_dtype_own(t);
}

const char *shrink_dtype_name(shrink_dtype t) {
    return (unsigned)t < SHRINK_DTYPE_COUNT ? sk_dtypes[t].name : "?";
}

shrink_status shrink_dtype_parse(const char *name, shrink_dtype *out) {
    static const struct { const char *s; shrink_dtype t; } alias[] = {
        {"fp32", SHRINK_DTYPE_F32},  {"float32", SHRINK_DTYPE_F32}, {"fp16", SHRINK_DTYPE_F16},
        {"float16", SHRINK_DTYPE_F16}, {"half", SHRINK_DTYPE_F16},  {"bfloat16", SHRINK_DTYPE_BF16},
    };
    /* the table's names (case-insensitive, '-' for '_': "int4-g128", "w8a8-static") */
    char norm[32];
    size_t len = strlen(name);
    if (len < sizeof norm) {
        for (size_t i = 0; i <= len; i++) norm[i] = name[i] == '-' ? '_' : name[i];
        for (int t = 0; t < SHRINK_DTYPE_COUNT; t++)
            if (strcasecmp(norm, sk_dtypes[t].name) == 0) {
                *out = (shrink_dtype)t;
                return SHRINK_OK;
            }
    }
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
        if (strcasecmp(name, alias[i].s) == 0) {
            *out = alias[i].t;
            return SHRINK_OK;
        }
    return sk_error(SHRINK_ERR_ARG, "unknown dtype '%s' (allowed: f32, f16, bf16; GGUF only: "
                    "q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, q6_K, iq4_nl; GGUF only, shrink's own "
                    "types: int8_ch, int8_ch_asym, int8_t, int8_t_asym, int4_g32, int4_g64, "
                    "int4_g128, int4_g32_asym, int4_g64_asym, int4_g128_asym, nf4, nf4_dq, "
                    "w8a8, w8a8_static, sparse24_f16, sparse24_i8, pal4, pal16, pal256, sparse_f16, sparse_i8; '-' may "
                    "replace '_')", name);
}
