/*
 * sparse24.c - the 2:4 sparse types (semi-structured sparsity: in every group of 4
 * consecutive weights of a row at most 2 are non-zero): the scalar references of their dtype
 * rows (dequantize, quantize, dot with f32 activations). SIMD versions: x86/qdot_*.c and
 * x86/dequant_*.c; layouts: shrink_quants.h and docs/formats.md.
 *
 *   sparse24_f16  blocks of 32 {u8 pos[4]; f16 v[16]}                 9 bits per weight
 *   sparse24_i8   row head f32 d; blocks of 32 {u8 pos[4]; i8 q[16]}  5 bits per weight, x = d*q
 *
 * Value i of a block (i < 16) belongs to group i/2 (elements 4*(i/2) .. 4*(i/2) + 3) and sits at
 * element 4*(i/2) + p_i, p_i = bits 2i..2i+1 of the little-endian u32 pos. The quantizer keeps
 * the two largest |x| of each group (the lower index on ties) with p_{2g} < p_{2g+1}, so a row
 * that is already 2:4 is stored exactly (f16: its f16 values; i8: to the int8 grid). Other
 * rows lose their two smallest weights per group: sk_sparse24_check says which rows are 2:4.
 * Dequantizing writes zeros, then v_i at its element in order i = 0..15 (a later value wins
 * where a malformed file repeats a position).
 */
#include "shrink_quants.h"

#include <math.h>

/* the two kept elements of a group of 4: the two largest |x| (lower index on ties), ascending */
static void keep2(const float *x, int *p0, int *p1) {
    int a = 0, b = -1;
    for (int j = 1; j < 4; j++)
        if (fabsf(x[j]) > fabsf(x[a])) a = j;
    for (int j = 0; j < 4; j++)
        if (j != a && (b < 0 || fabsf(x[j]) > fabsf(x[b]))) b = j;
    *p0 = a < b ? a : b;
    *p1 = a < b ? b : a;
}

static uint32_t rd_pos(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr_pos(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* positions of a block of 32 and the kept values (kept[i] = x[4*(i/2) + p_i]) */
static uint32_t block_select(const float *x, float kept[16]) {
    uint32_t pos = 0;
    for (int g = 0; g < 8; g++) {
        int p0, p1;
        keep2(x + 4 * g, &p0, &p1);
        pos |= (uint32_t)p0 << (4 * g) | (uint32_t)p1 << (4 * g + 2);
        kept[2 * g] = x[4 * g + p0];
        kept[2 * g + 1] = x[4 * g + p1];
    }
    return pos;
}

int sk_sparse24_row_ok(const float *x, int64_t n) {
    if (n % 4) return 0;
    for (int64_t g = 0; g < n; g += 4) {
        int nz = (x[g] != 0.0f) + (x[g + 1] != 0.0f) + (x[g + 2] != 0.0f) + (x[g + 3] != 0.0f);
        if (nz > 2) return 0;
    }
    return 1;
}

/* ==== sparse24_f16 ========================================================================= */

void sk_sparse24_f16_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t k = 0; k < n; k += SK_QK_S24, b += SK_S24_F16_BYTES) {
        float kept[16];
        wr_pos(b, block_select(src + k, kept));
        for (int i = 0; i < 16; i++) {
            uint16_t h = sk_f32_to_f16(kept[i]);
            memcpy(b + 4 + 2 * i, &h, 2);
        }
    }
}

void sk_sparse24_f16_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p) {
    (void)p;
    sk_sparse24_f16_from_f32(src, dst, n);
}

/* one block's 16 values (f32) into 32 elements */
static void block_scatter(uint32_t pos, const float v[16], float *y) {
    for (int j = 0; j < SK_QK_S24; j++) y[j] = 0.0f;
    for (int i = 0; i < 16; i++) y[4 * (i / 2) + (int)(pos >> (2 * i) & 3)] = v[i];
}

void sk_sparse24_f16_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t k = 0; k < n; k += SK_QK_S24, b += SK_S24_F16_BYTES) {
        float v[16];
        for (int i = 0; i < 16; i++) {
            uint16_t h;
            memcpy(&h, b + 4 + 2 * i, 2);
            v[i] = sk_f16_to_f32(h);
        }
        block_scatter(rd_pos(b), v, dst + k);
    }
}

float sk_sparse24_f16_dot_ref(int64_t n, const void *w, const void *xa) {
    const uint8_t *b = w;
    const float *x = xa;
    float acc = 0.0f;
    for (int64_t k = 0; k < n; k += SK_QK_S24, b += SK_S24_F16_BYTES) {
        uint32_t pos = rd_pos(b);
        for (int i = 0; i < 16; i++) {
            uint16_t h;
            memcpy(&h, b + 4 + 2 * i, 2);
            acc += sk_f16_to_f32(h) * x[k + 4 * (i / 2) + (pos >> (2 * i) & 3)];
        }
    }
    return acc;
}

/* ==== sparse24_i8 (row head f32 d) ========================================================= */

void sk_sparse24_i8_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *row = dst;
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(src[i]));
    const float d = amax / 127.0f;
    memcpy(row, &d, 4);
    uint8_t *b = row + SK_HEAD_D;
    for (int64_t k = 0; k < n; k += SK_QK_S24, b += SK_S24_I8_BYTES) {
        float kept[16];
        wr_pos(b, block_select(src + k, kept));
        for (int i = 0; i < 16; i++) {
            float q = d != 0.0f ? kept[i] / d : 0.0f;
            q = q >= -127.0f ? (q <= 127.0f ? q : 127.0f) : -127.0f; /* NaN: -127 */
            b[4 + i] = (uint8_t)(int8_t)roundf(q);
        }
    }
}

void sk_sparse24_i8_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p) {
    (void)p;
    sk_sparse24_i8_from_f32(src, dst, n);
}

void sk_sparse24_i8_to_f32_range(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *r = row;
    const float d = sk_rd_f32(r);
    const uint8_t *b = r + SK_HEAD_D + k0 / SK_QK_S24 * SK_S24_I8_BYTES;
    for (int64_t k = 0; k < n; k += SK_QK_S24, b += SK_S24_I8_BYTES) {
        float v[16];
        for (int i = 0; i < 16; i++) v[i] = d * (float)(int8_t)b[4 + i];
        block_scatter(rd_pos(b), v, dst + k);
    }
}

void sk_sparse24_i8_to_f32(const void *src, float *dst, int64_t n) {
    sk_sparse24_i8_to_f32_range(src, 0, n, dst);
}

/* d * sum q x (the sum in f32, in index order) */
float sk_sparse24_i8_dot_ref(int64_t n, const void *w, const void *xa) {
    const uint8_t *r = w;
    const float d = sk_rd_f32(r);
    const uint8_t *b = r + SK_HEAD_D;
    const float *x = xa;
    float acc = 0.0f;
    for (int64_t k = 0; k < n; k += SK_QK_S24, b += SK_S24_I8_BYTES) {
        uint32_t pos = rd_pos(b);
        for (int i = 0; i < 16; i++)
            acc += (float)(int8_t)b[4 + i] * x[k + 4 * (i / 2) + (pos >> (2 * i) & 3)];
    }
    return d * acc;
}
