/*
 * shrink_quants.h - shrink's own quantized storage layouts (enum values 11..24, GGUF type ids
 * 1000..1013) and the scalar reference functions of their dtype rows (q_shrink.c).
 *
 * The specification is /docs/formats.md, "shrink's own quantized types". In short (G = group,
 * all scales little-endian, f16 = IEEE half, "row head" = bytes before a row's first element):
 *   int8_ch       head f32 d            x = d*q, q int8 in [-127, 127], d = absmax(row)/127
 *   int8_ch_asym  head f32 d, f32 m     x = m + d*q, q uint8, m = min(row), d = (max-min)/255
 *   int8_t        as int8_ch with the tensor's absmax (the same d in every row)
 *   int8_t_asym   as int8_ch_asym with the tensor's min and max
 *   int4_gG       blocks {f16 d; u8 qs[G/2]}          x = d*(q-8), d = absmax/7, q in 1..15
 *   int4_gG_asym  blocks {f16 d; f16 m; u8 qs[G/2]}   x = d*q + m, q 0..15, d = (max-min)/15
 *   nf4           blocks of 64 {f16 d; u8 qs[32]}     x = d*NF4[q], d = absmax(block)
 *   nf4_dq        head f32 D, blocks {u8 s; u8 qs[32]}  x = (D*s)*NF4[q], D = max absmax/255
 *   w8a8          as int8_ch (activations: int8 per token, dynamic)
 *   w8a8_static   head f32 d, f32 a: int8_ch weights, a = calibrated activation scale
 * Nibbles of a 4-bit block of G: byte j (j < G/2) holds element j in its low nibble and
 * element j + G/2 in its high nibble (as q4_0). Row heads are not aligned (a row of int8_ch
 * is 4 + n bytes), so they are read and written with memcpy.
 *
 * Rounding is half away from zero (roundf); a zero scale puts every q at the zero code (0 for
 * int8, 8 for int4, 0 for the asym types, which then give m; NF4 code 7 = 0.0). The 4-bit
 * types and nf4 choose q against the stored (f16-rounded) scale, so dequantization is exactly
 * the formula on the stored fields; nf4_dq against the rounded block scale D*s.
 */
#ifndef SK_SHRINK_QUANTS_H
#define SK_SHRINK_QUANTS_H

#include "kernels.h"
#include "ggml_quants.h" /* sk_half */

#include <assert.h>
#include <stdint.h>

/* ---- block layouts ------------------------------------------------------------------------ */

typedef struct sk_block_int4_g32 {
    sk_half d;
    uint8_t qs[32 / 2];
} sk_block_int4_g32;
static_assert(sizeof(sk_block_int4_g32) == 18, "wrong int4_g32 block size/padding");

typedef struct sk_block_int4_g64 {
    sk_half d;
    uint8_t qs[64 / 2];
} sk_block_int4_g64;
static_assert(sizeof(sk_block_int4_g64) == 34, "wrong int4_g64 block size/padding");

typedef struct sk_block_int4_g128 {
    sk_half d;
    uint8_t qs[128 / 2];
} sk_block_int4_g128;
static_assert(sizeof(sk_block_int4_g128) == 66, "wrong int4_g128 block size/padding");

typedef struct sk_block_int4_g32_asym {
    sk_half d;
    sk_half m;
    uint8_t qs[32 / 2];
} sk_block_int4_g32_asym;
static_assert(sizeof(sk_block_int4_g32_asym) == 20, "wrong int4_g32_asym block size/padding");

typedef struct sk_block_int4_g64_asym {
    sk_half d;
    sk_half m;
    uint8_t qs[64 / 2];
} sk_block_int4_g64_asym;
static_assert(sizeof(sk_block_int4_g64_asym) == 36, "wrong int4_g64_asym block size/padding");

typedef struct sk_block_int4_g128_asym {
    sk_half d;
    sk_half m;
    uint8_t qs[128 / 2];
} sk_block_int4_g128_asym;
static_assert(sizeof(sk_block_int4_g128_asym) == 68, "wrong int4_g128_asym block size/padding");

#define SK_QK_NF4 64
typedef struct sk_block_nf4 {
    sk_half d;                 /* absmax of the block */
    uint8_t qs[SK_QK_NF4 / 2]; /* NF4 code indices */
} sk_block_nf4;
static_assert(sizeof(sk_block_nf4) == 34, "wrong nf4 block size/padding");

typedef struct sk_block_nf4_dq {
    uint8_t s;                 /* block scale = D * s (D: the row head) */
    uint8_t qs[SK_QK_NF4 / 2];
} sk_block_nf4_dq;
static_assert(sizeof(sk_block_nf4_dq) == 33, "wrong nf4_dq block size/padding");

/* Row heads (bytes before each row): f32 fields in this order. */
#define SK_HEAD_D    4 /* int8_ch, int8_t, w8a8: f32 d */
#define SK_HEAD_DM   8 /* int8_ch_asym, int8_t_asym: f32 d, f32 m; w8a8_static: f32 d, f32 a */
#define SK_HEAD_NF4D 4 /* nf4_dq: f32 D */

/* The 16 NF4 code values, ascending: bitsandbytes' get_4bit_type("nf4") / kernels.cu
 * (QLoRA, Dettmers et al. 2023), as float. NF4[7] = 0. */
SK_HIDDEN extern const float sk_nf4_values[16];

/* ---- reference functions (the dtype rows; see kernels.h for the contracts) ----------------
 * Row-head types take whole rows (n = the row's length) in to_f32/from_f32/quantize.
 * from_f32 uses row-local statistics: int8_t/int8_t_asym without tensor parameters therefore
 * behave like int8_ch/int8_ch_asym (a per-row scale that happens to be stored in the per-tensor
 * layout), and w8a8_static without parameters stores a = 0 ("not calibrated"). quantize() takes
 * the tensor-level parameters: tensor_range (tmin, tmax) for int8_t*, act_scale for
 * w8a8_static. The importance matrix (sk_qparams.imatrix) is ignored by every type for now
 * (round to nearest); imatrix-weighted scale search is future work. */
/* int8_ch (to_f32 and to_f32_range shared by int8_t and w8a8: the same layout) */
SK_HIDDEN void sk_int8_ch_to_f32(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_int8_ch_to_f32_range(const void *row, int64_t k0, int64_t n, float *dst);
SK_HIDDEN void sk_int8_ch_from_f32(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_int8_ch_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p);
/* int8_ch_asym (to_f32 and to_f32_range shared by int8_t_asym) */
SK_HIDDEN void sk_int8_ch_asym_to_f32(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_int8_ch_asym_to_f32_range(const void *row, int64_t k0, int64_t n, float *dst);
SK_HIDDEN void sk_int8_ch_asym_from_f32(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_int8_ch_asym_quantize(const float *src, void *dst, int64_t n,
                                        const sk_qparams *p);
/* int8_t, int8_t_asym: p->tensor_range gives the tensor's [tmin, tmax] */
SK_HIDDEN void sk_int8_t_from_f32(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_int8_t_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p);
SK_HIDDEN void sk_int8_t_asym_from_f32(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_int8_t_asym_quantize(const float *src, void *dst, int64_t n,
                                       const sk_qparams *p);
/* w8a8 (weights as int8_ch); w8a8_static: p->act_scale is stored as the head's a */
SK_HIDDEN void sk_w8a8_from_f32(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_w8a8_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p);
SK_HIDDEN void sk_w8a8_static_to_f32(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_w8a8_static_to_f32_range(const void *row, int64_t k0, int64_t n, float *dst);
SK_HIDDEN void sk_w8a8_static_from_f32(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_w8a8_static_quantize(const float *src, void *dst, int64_t n,
                                       const sk_qparams *p);

/* the block types (no row head) */
#define SK_SHRINK_QUANT_DECL(t)                                                                \
    SK_HIDDEN void sk_##t##_to_f32(const void *src, float *dst, int64_t n);                    \
    SK_HIDDEN void sk_##t##_from_f32(const float *src, void *dst, int64_t n);                  \
    SK_HIDDEN void sk_##t##_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p);
SK_SHRINK_QUANT_DECL(int4_g32)
SK_SHRINK_QUANT_DECL(int4_g64)
SK_SHRINK_QUANT_DECL(int4_g128)
SK_SHRINK_QUANT_DECL(int4_g32_asym)
SK_SHRINK_QUANT_DECL(int4_g64_asym)
SK_SHRINK_QUANT_DECL(int4_g128_asym)
SK_SHRINK_QUANT_DECL(nf4)
#undef SK_SHRINK_QUANT_DECL

/* nf4_dq */
SK_HIDDEN void sk_nf4_dq_to_f32(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_nf4_dq_to_f32_range(const void *row, int64_t k0, int64_t n, float *dst);
SK_HIDDEN void sk_nf4_dq_from_f32(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_nf4_dq_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p);

/* qdot.c: reference dots (vec_dot_ref) against the rows' activation formats (kernels.h) */
SK_HIDDEN float sk_int8_dot_ref(int64_t n, const void *w, const void *xa);      /* int8_ch, int8_t */
SK_HIDDEN float sk_int8_asym_dot_ref(int64_t n, const void *w, const void *xa); /* *_asym */
SK_HIDDEN float sk_int4_g32_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_int4_g64_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_int4_g128_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_int4_g32_asym_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_int4_g64_asym_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_int4_g128_asym_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_nf4_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_nf4_dq_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_w8a8_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_w8a8_static_dot_ref(int64_t n, const void *w, const void *xa);

/* ---- 2:4 sparse types (sparse24.c; enum 28, 29, GGUF type ids 1014, 1015) -----------------
 *   sparse24_f16  blocks of 32 {u8 pos[4]; f16 v[16]}                 36 bytes: 9 bits/weight
 *   sparse24_i8   row head f32 d; blocks of 32 {u8 pos[4]; i8 q[16]}  20 bytes: 5 bits/weight
 * Value i (< 16) is element 4*(i/2) + p_i of the block, p_i = bits 2i..2i+1 of the u32 pos
 * (little-endian); x = v (f16) or d*q (i8); the other elements are 0. Activations: f32. */
#define SK_QK_S24        32
#define SK_S24_F16_BYTES 36
#define SK_S24_I8_BYTES  20
SK_HIDDEN void sk_sparse24_f16_to_f32(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_sparse24_f16_from_f32(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_sparse24_f16_quantize(const float *src, void *dst, int64_t n,
                                        const sk_qparams *p);
SK_HIDDEN float sk_sparse24_f16_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN void sk_sparse24_i8_to_f32(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_sparse24_i8_to_f32_range(const void *row, int64_t k0, int64_t n, float *dst);
SK_HIDDEN void sk_sparse24_i8_from_f32(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_sparse24_i8_quantize(const float *src, void *dst, int64_t n,
                                       const sk_qparams *p);
SK_HIDDEN float sk_sparse24_i8_dot_ref(int64_t n, const void *w, const void *xa);


/* ---- unstructured sparse types (sparse_bm.c; enum 33, 34, GGUF type ids 1019, 1020) --------
 *   sparse_f16  head {u32 nnz; u32 nb}       u64 bitmap[nb]; f16 v[32 nb]   9 + 64/n bits/weight
 *   sparse_i8   head {u32 nnz; u32 nb; f32 d} u64 bitmap[nb]; i8 q[32 nb]    5 + 96/n bits/weight
 * nb = n/64. Bit j of bitmap b (little-endian u64) set: input 64b + j is stored; the row's
 * stored values are the first nnz slots, in input order (x = v, or d*q); unused slots are 0,
 * every other input is 0. A row keeps at most n/2 values (the capacity is fixed so that the
 * row has a fixed size, as every dtype row must): sk_sparse_bm_row_fits says whether a row
 * fits. sk_sparse_bm_check validates a whole tensor (the GGUF reader calls it): popcount of
 * the bitmaps == nnz <= n/2 and nb == n/64 in every row, so no kernel reads past a row. */
#define SK_QK_SBM        64
#define SK_SBM_HEAD_F16  8
#define SK_SBM_HEAD_I8   12
#define SK_SBM_F16_BYTES 72 /* per 64 inputs: 8 bytes of bitmap + 32 f16 slots */
#define SK_SBM_I8_BYTES  40 /* per 64 inputs: 8 bytes of bitmap + 32 i8 slots */
SK_HIDDEN void sk_sparse_f16_to_f32(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_sparse_f16_to_f32_range(const void *row, int64_t k0, int64_t n, float *dst);
SK_HIDDEN void sk_sparse_f16_from_f32(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_sparse_f16_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p);
SK_HIDDEN float sk_sparse_f16_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN void sk_sparse_i8_to_f32(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_sparse_i8_to_f32_range(const void *row, int64_t k0, int64_t n, float *dst);
SK_HIDDEN void sk_sparse_i8_from_f32(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_sparse_i8_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p);
SK_HIDDEN float sk_sparse_i8_dot_ref(int64_t n, const void *w, const void *xa);
/* the SIMD dots' table: byte i of entry m (a byte of a bitmap) is the number of set bits of m
 * below bit i (the slot of lane i relative to the byte's first value) */
SK_HIDDEN extern const uint64_t sk_sbm_idx8[256];

#endif /* SK_SHRINK_QUANTS_H */
