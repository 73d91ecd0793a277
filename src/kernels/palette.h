/*
 * palette.h - shrink's palette types (k-means weight sharing): pal4, pal16, pal256.
 *
 * A row of n elements (n a multiple of SK_QK_PAL, n / 32 < 65536) is a 6-byte head then n
 * codes of log2(k) bits in blocks of 32 elements. The k values the codes index (the "palette") are shared by a
 * group of up to k consecutive rows of the tensor: entry e of the group's palette is the f16 in
 * the head of the group's row e. Head: bytes 0-1 f16 entry, byte 2 j (this row's index in its
 * group), byte 3 g - 1 (rows in the group), bytes 4-5 u16 n / 32 (the row length: the stride
 * to the group's other rows, which a dequantizer of part of a row needs). A group of g < k rows (the tensor's last) has g
 * entries; entries e >= g read as 0. So a row is NOT self-contained: its palette lies in the
 * heads of rows r - j .. r - j + g - 1, which every reader takes in place (the tensor in memory);
 * sk_pal_check validates the heads of a whole tensor (the GGUF reader calls it), so no kernel
 * reads outside the tensor.
 *
 * Codes in a block of 32 elements:
 *   pal4   8 bytes: byte i holds elements i, i + 8, i + 16, i + 24 (bits 0-1, 2-3, 4-5, 6-7)
 *   pal16 16 bytes: byte i holds elements i (low nibble) and i + 16 (high nibble)
 *   pal256 32 bytes: byte i is element i
 * x = palette[code]. docs/palettes.md has the format and the k-means (src/quant/palette.c).
 */
#ifndef SK_PALETTE_H
#define SK_PALETTE_H

#include "kernels.h"

#define SK_QK_PAL   32
#define SK_HEAD_PAL 6

/* k of a palette type (4, 16, 256), 0 for any other dtype */
SK_HIDDEN int sk_pal_k(shrink_dtype t);
/* lut[0..k) = the palette of the row at `row`: entries past the group's rows 0 */
SK_HIDDEN void sk_pal_table(shrink_dtype t, const void *row, float *lut);
/* The row's codes, one byte each: codes[0..n) */
SK_HIDDEN void sk_pal_codes(shrink_dtype t, const void *row, int64_t n, uint8_t *codes);
/* dst[0..n) = lut[code] of elements [k0, k0 + n) of the row at `row`, the palette given
 * (the dequantizer without reading other rows' heads) */
SK_HIDDEN void sk_pal_decode(shrink_dtype t, const void *row, int64_t k0, int64_t n,
                             const float *lut, float *dst);
/* -1 if every row head of a (rows, cols) tensor of palette type t at data names a group inside
 * the tensor (j <= g - 1 < k, r - j >= 0, r - j + g <= rows, n / 32 = cols / 32), else the first bad row */
SK_HIDDEN int64_t sk_pal_check(shrink_dtype t, const void *data, int64_t rows, int64_t cols);
/* Writes row j of a group of g rows whose palette is pal[0..g) (f32; stored as f16): the head
 * holds f16(pal[j]), each code is the nearest stored (f16) entry of the g, ties to the lower
 * index (the palette need not be sorted). */
SK_HIDDEN void sk_pal_write_row(shrink_dtype t, const float *src, void *dst, int64_t n,
                                const float *pal, int j, int g);

/* dtype-row functions (kernels.h): from_f32 of a lone row is a group of one row whose palette
 * is the row's mean (use shrink quantize, which runs the k-means over each group); quantize
 * takes the group's palette from p->palette (p->pal_j, p->pal_g) */
SK_HIDDEN void sk_pal4_from_f32(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_pal16_from_f32(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_pal256_from_f32(const float *src, void *dst, int64_t n);
SK_HIDDEN void sk_pal4_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p);
SK_HIDDEN void sk_pal16_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p);
SK_HIDDEN void sk_pal256_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p);
SK_HIDDEN void sk_pal4_to_f32(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_pal16_to_f32(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_pal256_to_f32(const void *src, float *dst, int64_t n);
SK_HIDDEN void sk_pal4_to_f32_range(const void *row, int64_t k0, int64_t n, float *dst);
SK_HIDDEN void sk_pal16_to_f32_range(const void *row, int64_t k0, int64_t n, float *dst);
SK_HIDDEN void sk_pal256_to_f32_range(const void *row, int64_t k0, int64_t n, float *dst);
/* reference dots with f32 activations (SK_ACT_F32): sum in index order of lut[code] * x */
SK_HIDDEN float sk_pal4_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_pal16_dot_ref(int64_t n, const void *w, const void *xa);
SK_HIDDEN float sk_pal256_dot_ref(int64_t n, const void *w, const void *xa);

#endif /* SK_PALETTE_H */
