/*
 * ggml_quants.h - llama.cpp's block-quantized storage layouts (ggml-common.h), bit for bit,
 * and the scalar reference functions of shrink's rows for them (q_legacy.c, kquants.c).
 *
 * A row of n elements (n a multiple of the block) is n / block consecutive blocks. fp16
 * fields are IEEE half (sk_f16_to_f32). Element order inside a block is ggml's
 * dequantize_row_<type> order (docs/formats.md, "llama.cpp block types"):
 *   q8_0   x[j] = d * qs[j]
 *   q4_0   x[j] = d * ((qs[j] & 15) - 8), x[j + 16] = d * ((qs[j] >> 4) - 8)       (j < 16)
 *   q4_1   as q4_0 with x = d * q + m (no offset 8)
 *   q5_0   q4_0's nibbles plus a 5th bit: bit j of the little-endian u32 qh for element j;
 *          x = d * (q - 16)
 *   q5_1   x = d * q + m
 *   q2_K   16 sub-blocks of 16 with 4-bit scales and mins; x = d*sc*q - dmin*m, q 2 bits
 *   q3_K   16 sub-blocks of 16 with 6-bit scales (offset 32); x = d*sc*q, q 3 bits in [-4, 3]
 *   iq4_nl q4_0's nibbles as indices into a fixed grid of 16 int8: x = d * grid[q]
 *   q4_K   8 sub-blocks of 32 with 6-bit scales and mins; x = d*sc*q - dmin*m
 *   q5_K   q4_K plus a 5th bit per element in qh
 *   q6_K   16 sub-blocks of 16 with int8 scales; x = d * sc * (q - 32), q = 4 low + 2 high bits
 *   q8_K   activation format of K-quant dot products (not a GGUF weight type here)
 *
 * Quantizers are ggml's round-to-nearest references (quantize_row_<type>_ref), without an
 * importance matrix. They must be compiled without FMA contraction (-ffp-contract=off, as
 * the Makefile does for these files) to give ggml's bytes.
 */
#ifndef SK_GGML_QUANTS_H
#define SK_GGML_QUANTS_H

#include "../core/core.h"

#include <assert.h>
#include <stdint.h>

#define SK_QK4_0 32
#define SK_QK4_1 32
#define SK_QK5_0 32
#define SK_QK5_1 32
#define SK_QK8_0 32
#define SK_QK4_NL 32
#define SK_QK_K 256
#define SK_K_SCALE_SIZE 12

typedef uint16_t sk_half; /* IEEE binary16 bits */

typedef struct block_q4_0 {
    sk_half d;
    uint8_t qs[SK_QK4_0 / 2];
} block_q4_0;
static_assert(sizeof(block_q4_0) == 2 + SK_QK4_0 / 2, "wrong q4_0 block size/padding");

typedef struct block_q4_1 {
    sk_half d;
    sk_half m;
    uint8_t qs[SK_QK4_1 / 2];
} block_q4_1;
static_assert(sizeof(block_q4_1) == 4 + SK_QK4_1 / 2, "wrong q4_1 block size/padding");

typedef struct block_q5_0 {
    sk_half d;
    uint8_t qh[4];
    uint8_t qs[SK_QK5_0 / 2];
} block_q5_0;
static_assert(sizeof(block_q5_0) == 2 + 4 + SK_QK5_0 / 2, "wrong q5_0 block size/padding");

typedef struct block_q5_1 {
    sk_half d;
    sk_half m;
    uint8_t qh[4];
    uint8_t qs[SK_QK5_1 / 2];
} block_q5_1;
static_assert(sizeof(block_q5_1) == 4 + 4 + SK_QK5_1 / 2, "wrong q5_1 block size/padding");

typedef struct block_q8_0 {
    sk_half d;
    int8_t  qs[SK_QK8_0];
} block_q8_0;
static_assert(sizeof(block_q8_0) == 2 + SK_QK8_0, "wrong q8_0 block size/padding");

typedef struct block_iq4_nl {
    sk_half d;
    uint8_t qs[SK_QK4_NL / 2];        /* 4-bit indices into sk_iq4_nl_grid, q4_0's order */
} block_iq4_nl;
static_assert(sizeof(block_iq4_nl) == 2 + SK_QK4_NL / 2, "wrong iq4_nl block size/padding");

typedef struct block_q2_K {
    uint8_t scales[SK_QK_K / 16];     /* 4-bit scale (low nibble) and min (high) per 16 */
    uint8_t qs[SK_QK_K / 4];          /* 2-bit quants */
    sk_half d;                        /* super-block scale of the quantized scales */
    sk_half dmin;                     /* super-block scale of the quantized mins */
} block_q2_K;
static_assert(sizeof(block_q2_K) == SK_QK_K / 16 + SK_QK_K / 4 + 4,
              "wrong q2_K block size/padding");

typedef struct block_q3_K {
    uint8_t hmask[SK_QK_K / 8];       /* 3rd bit of each quant */
    uint8_t qs[SK_QK_K / 4];          /* low 2 bits */
    uint8_t scales[12];               /* 16 six-bit scales, offset 32 */
    sk_half d;
} block_q3_K;
static_assert(sizeof(block_q3_K) == SK_QK_K / 8 + SK_QK_K / 4 + 12 + 2,
              "wrong q3_K block size/padding");

typedef struct block_q4_K {
    sk_half d;                        /* super-block scale of the quantized scales */
    sk_half dmin;                     /* super-block scale of the quantized mins */
    uint8_t scales[SK_K_SCALE_SIZE];  /* 8 scales and 8 mins, 6 bits each */
    uint8_t qs[SK_QK_K / 2];          /* 4-bit quants */
} block_q4_K;
static_assert(sizeof(block_q4_K) == 4 + SK_K_SCALE_SIZE + SK_QK_K / 2,
              "wrong q4_K block size/padding");

typedef struct block_q5_K {
    sk_half d;
    sk_half dmin;
    uint8_t scales[SK_K_SCALE_SIZE];
    uint8_t qh[SK_QK_K / 8];          /* 5th bit of each quant */
    uint8_t qs[SK_QK_K / 2];          /* low 4 bits */
} block_q5_K;
static_assert(sizeof(block_q5_K) == 4 + SK_K_SCALE_SIZE + SK_QK_K / 8 + SK_QK_K / 2,
              "wrong q5_K block size/padding");

typedef struct block_q6_K {
    uint8_t ql[SK_QK_K / 2];          /* low 4 bits */
    uint8_t qh[SK_QK_K / 4];          /* high 2 bits */
    int8_t  scales[SK_QK_K / 16];     /* 8-bit scales of 16 sub-blocks */
    sk_half d;
} block_q6_K;
static_assert(sizeof(block_q6_K) == SK_QK_K / 2 + SK_QK_K / 4 + SK_QK_K / 16 + 2,
              "wrong q6_K block size/padding");

typedef struct block_q8_K {
    float   d;
    int8_t  qs[SK_QK_K];
    int16_t bsums[SK_QK_K / 16];      /* sums of 16 quants */
} block_q8_K;
static_assert(sizeof(block_q8_K) == 4 + SK_QK_K + SK_QK_K / 16 * 2,
              "wrong q8_K block size/padding");

/* ---- scalar references (the specification). n is a multiple of the type's block. ---- */

/* q_legacy.c */
SK_HIDDEN void sk_q8_0_dequant_ref(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_q8_0_quant_ref(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_q4_0_dequant_ref(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_q4_0_quant_ref(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_q4_1_dequant_ref(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_q4_1_quant_ref(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_q5_0_dequant_ref(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_q5_0_quant_ref(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_q5_1_dequant_ref(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_q5_1_quant_ref(const float *src, void *dst, int64_t n);
/* the iq4_nl grid (ggml's kvalues_iq4nl); the quantizer searches the scale with weights x^2
 * (as ggml, which has no round-to-nearest iq4_nl); _quantize takes p->imatrix */
extern SK_HIDDEN const int8_t sk_iq4_nl_grid[16];
SK_HIDDEN void sk_iq4_nl_dequant_ref(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_iq4_nl_quant_ref(const float *src, void *dst, int64_t n);
struct sk_qparams;
SK_HIDDEN void sk_iq4_nl_quantize(const float *src, void *dst, int64_t n,
                                  const struct sk_qparams *p);

/* kquants.c */
SK_HIDDEN void sk_q2_K_dequant_ref(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_q2_K_quant_ref(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_q3_K_dequant_ref(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_q3_K_quant_ref(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_q4_K_dequant_ref(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_q4_K_quant_ref(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_q5_K_dequant_ref(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_q5_K_quant_ref(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_q6_K_dequant_ref(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_q6_K_quant_ref(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_q8_K_dequant_ref(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_q8_K_quant_ref(const float *src, void *dst, int64_t n);
/* Q4_K / Q5_K / Q6_K quantized with the one-sub-block-at-a-time scale search (the _ref
 * functions search 4 sub-blocks at a time in vector lanes, bit-identically); for tests. */
SK_HIDDEN void sk_k_quant_scalar(shrink_dtype t, const float *src, void *dst, int64_t n);

/* qdot.c: reference dots (vec_dot_ref) against quantized activations: the 32-blocks with
 * sk_act_q8_32, the K-quants with block_q8_K (kernels.h, sk_act_format) */
SK_HIDDEN float sk_q8_0_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_q4_0_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_q4_1_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_q5_0_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_q5_1_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_iq4_nl_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_q2_K_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_q3_K_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_q4_K_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_q5_K_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_q6_K_dot_ref(int64_t n, const void *w, const void *xa);

/* Pieces of the K-quant quantizers (kquants.c) that q_imatrix.c shares: the 6-bit scale and
 * min of sub-block j from the 12 packed bytes and their packing; the codes L (0..15, 0..31,
 * 0..63) of a super-block into its qs/qh/ql bytes. */
SK_HIDDEN void sk_k4_scale_min(int j, const uint8_t *q, int *sc, int *m);
SK_HIDDEN void sk_k4_pack_scales(const int ls[8], const int lm[8], uint8_t q[SK_K_SCALE_SIZE]);
SK_HIDDEN void sk_q4_K_pack(block_q4_K *b, const uint8_t L[SK_QK_K]);
SK_HIDDEN void sk_q5_K_pack(block_q5_K *b, const uint8_t L[SK_QK_K]);
SK_HIDDEN void sk_q6_K_pack(block_q6_K *b, const int8_t L[SK_QK_K]);
/* q2_K: the 2-bit codes L (0..3) into qs; q3_K: the codes L (0..7) into hmask and qs. */
SK_HIDDEN void sk_q2_K_pack(block_q2_K *b, const uint8_t L[SK_QK_K]);
SK_HIDDEN void sk_q3_K_pack(block_q3_K *b, const int8_t L[SK_QK_K]);

#endif /* SK_GGML_QUANTS_H */
