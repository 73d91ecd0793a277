/*
 * sparse_bm.c - the unstructured sparse types (any pattern, at most half of each row kept):
 * the scalar references of their dtype rows (dequantize, quantize, dot with f32 activations)
 * and the validation of a tensor's index. SIMD versions: x86/qdot_*.c and x86/dequant_x86.h;
 * layouts: shrink_quants.h and docs/formats.md.
 *
 *   sparse_f16  head {u32 nnz; u32 nb}         u64 bitmap[nb]; f16 v[32 nb]   9 + 64/n bits
 *   sparse_i8   head {u32 nnz; u32 nb; f32 d}  u64 bitmap[nb]; i8  q[32 nb]   5 + 96/n bits
 * (nb = n/64)
 *
 * Bit j of bitmap b set: input 64b + j holds the next stored value (values in input order,
 * slots nnz .. n/2 - 1 zero). The quantizer stores every non-zero of a row that has at most
 * n/2 (exactly: f16 values, i8 to the int8 grid x = d*q, d = absmax/127); a row with more keeps
 * its n/2 largest |x| (the lower index on ties), so from_f32 is defined for any row.
 */
#include "shrink_quants.h"

#include <math.h>

#include "sparse_bm_lut.h"

static uint32_t rd_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t rd_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

int sk_sparse_bm_row_fits(const float *x, int64_t n) {
    if (n % SK_QK_SBM) return 0;
    int64_t nz = 0;
    for (int64_t i = 0; i < n; i++) nz += x[i] != 0.0f;
    return nz <= n / 2;
}

/* |x| as an ordered key (NaN above +inf) */
static uint32_t mag_key(float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    return u & 0x7FFFFFFFu;
}

/* For a row with more than cap = n/2 non-zeros: the key T of its cap-th largest |x| (the largest
 * T with count(key >= T) >= cap, by a binary search on the key) and how many inputs with key T
 * stay (the first ones): the kept inputs are key > T, then the first *ties of key == T. */
static uint32_t cut_key(const float *x, int64_t n, int64_t *ties) {
    const int64_t cap = n / 2;
    uint32_t lo = 1, hi = 0xFFFFFFFFu >> 1; /* count(key >= 1) = non-zeros > cap */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        int64_t c = 0;
        for (int64_t i = 0; i < n; i++) c += mag_key(x[i]) >= mid;
        if (c >= cap) lo = mid;
        else hi = mid - 1;
    }
    int64_t above = 0;
    for (int64_t i = 0; i < n; i++) above += mag_key(x[i]) > lo;
    *ties = cap - above;
    return lo;
}

/* The bitmaps of the kept inputs of x[0..n): every non-zero when they are at most n/2, else
 * the n/2 largest |x| (the lower index on ties). Returns the count kept. */
static int64_t select_kept(const float *x, int64_t n, uint8_t *bm) {
    int64_t nz = 0, kept = 0, ties = 0;
    for (int64_t i = 0; i < n; i++) nz += x[i] != 0.0f;
    memset(bm, 0, (size_t)(n / 8));
    const uint32_t t = nz > n / 2 ? cut_key(x, n, &ties) : 0;
    for (int64_t i = 0; i < n; i++) {
        const uint32_t k = mag_key(x[i]);
        if (nz > n / 2 ? (k > t || (k == t && ties-- > 0)) : x[i] != 0.0f) {
            bm[i / 8] |= (uint8_t)(1u << (i % 8));
            kept++;
        }
    }
    return kept;
}

int64_t sk_sparse_bm_trim(float *x, int64_t n) {
    int64_t nz = 0, ties = 0, zeroed = 0;
    for (int64_t i = 0; i < n; i++) nz += x[i] != 0.0f;
    if (nz <= n / 2) return 0;
    const uint32_t t = cut_key(x, n, &ties);
    for (int64_t i = 0; i < n; i++) {
        const uint32_t k = mag_key(x[i]);
        if (!(k > t || (k == t && ties-- > 0)) && x[i] != 0.0f) {
            x[i] = 0.0f;
            zeroed++;
        }
    }
    return zeroed;
}

/* ==== common ================================================================================ */

/* head, bitmaps and value slots of a row of n inputs at r (head bytes hb) */
static void put_head(uint8_t *r, uint32_t nnz, int64_t n) {
    const uint32_t nb = (uint32_t)(n / SK_QK_SBM);
    memcpy(r, &nnz, 4);
    memcpy(r + 4, &nb, 4);
}

/* the slot of input k0 of a row (the set bits of the bitmaps before it; k0 % 64 == 0) */
static int64_t slot_of(const uint8_t *bm, int64_t k0) {
    int64_t s = 0;
    for (int64_t b = 0; b < k0 / SK_QK_SBM; b++) s += __builtin_popcountll(rd_u64(bm + 8 * b));
    return s;
}

/* inputs [k0, k0 + n) of a row with head size hb: value i (f16 or d * int8) at its input */
static void range_to_f32(const uint8_t *r, size_t hb, int is_i8, float d, int64_t k0, int64_t n,
                         float *dst) {
    const int64_t nb = rd_u32(r + 4);
    const uint8_t *bm = r + hb, *v = bm + 8 * nb;
    int64_t s = slot_of(bm, k0);
    for (int64_t i = 0; i < n; i++) dst[i] = 0.0f;
    for (int64_t b = k0 / SK_QK_SBM; b < (k0 + n) / SK_QK_SBM; b++) {
        uint64_t m = rd_u64(bm + 8 * b);
        while (m) {
            const int j = __builtin_ctzll(m);
            m &= m - 1;
            float x;
            if (is_i8) {
                x = d * (float)(int8_t)v[s];
            } else {
                uint16_t h;
                memcpy(&h, v + 2 * s, 2);
                x = sk_f16_to_f32(h);
            }
            s++;
            dst[b * SK_QK_SBM + j - k0] = x;
        }
    }
}

/* ==== sparse_f16 ============================================================================ */

void sk_sparse_f16_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *r = dst, *bm = r + SK_SBM_HEAD_F16, *v = bm + n / 8;
    put_head(r, (uint32_t)select_kept(src, n, bm), n);
    memset(v, 0, (size_t)n); /* n/2 slots of 2 bytes */
    int64_t s = 0;
    for (int64_t i = 0; i < n; i++)
        if (bm[i / 8] >> (i % 8) & 1) {
            uint16_t h = sk_f32_to_f16(src[i]);
            memcpy(v + 2 * s++, &h, 2);
        }
}

void sk_sparse_f16_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p) {
    (void)p;
    sk_sparse_f16_from_f32(src, dst, n);
}

void sk_sparse_f16_to_f32_range(const void *row, int64_t k0, int64_t n, float *dst) {
    range_to_f32(row, SK_SBM_HEAD_F16, 0, 0.0f, k0, n, dst);
}

void sk_sparse_f16_to_f32(const void *src, float *dst, int64_t n) {
    sk_sparse_f16_to_f32_range(src, 0, n, dst);
}

/* sum v_i x_i over the stored values in input order, in f32 */
float sk_sparse_f16_dot_ref(int64_t n, const void *w, const void *xa) {
    const uint8_t *bm = (const uint8_t *)w + SK_SBM_HEAD_F16, *v = bm + n / 8;
    const float *x = xa;
    float acc = 0.0f;
    int64_t s = 0;
    for (int64_t b = 0; b < n / SK_QK_SBM; b++) {
        uint64_t m = rd_u64(bm + 8 * b);
        while (m) {
            const int j = __builtin_ctzll(m);
            m &= m - 1;
            uint16_t h;
            memcpy(&h, v + 2 * s++, 2);
            acc += sk_f16_to_f32(h) * x[b * SK_QK_SBM + j];
        }
    }
    return acc;
}

/* ==== sparse_i8 ============================================================================= */

void sk_sparse_i8_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *r = dst, *bm = r + SK_SBM_HEAD_I8, *v = bm + n / 8;
    put_head(r, (uint32_t)select_kept(src, n, bm), n);
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++)
        if (bm[i / 8] >> (i % 8) & 1) amax = fmaxf(amax, fabsf(src[i]));
    const float d = amax / 127.0f;
    memcpy(r + 8, &d, 4);
    memset(v, 0, (size_t)(n / 2));
    int64_t s = 0;
    for (int64_t i = 0; i < n; i++)
        if (bm[i / 8] >> (i % 8) & 1) {
            float q = d != 0.0f ? src[i] / d : 0.0f;
            q = q >= -127.0f ? (q <= 127.0f ? q : 127.0f) : -127.0f; /* NaN: -127 */
            v[s++] = (uint8_t)(int8_t)roundf(q);
        }
}

void sk_sparse_i8_quantize(const float *src, void *dst, int64_t n, const sk_qparams *p) {
    (void)p;
    sk_sparse_i8_from_f32(src, dst, n);
}

void sk_sparse_i8_to_f32_range(const void *row, int64_t k0, int64_t n, float *dst) {
    const uint8_t *r = row;
    float d;
    memcpy(&d, r + 8, 4);
    range_to_f32(r, SK_SBM_HEAD_I8, 1, d, k0, n, dst);
}

void sk_sparse_i8_to_f32(const void *src, float *dst, int64_t n) {
    sk_sparse_i8_to_f32_range(src, 0, n, dst);
}

/* d * sum q_i x_i (the sum in f32, in input order) */
float sk_sparse_i8_dot_ref(int64_t n, const void *w, const void *xa) {
    const uint8_t *r = w, *bm = r + SK_SBM_HEAD_I8, *v = bm + n / 8;
    float d;
    memcpy(&d, r + 8, 4);
    const float *x = xa;
    float acc = 0.0f;
    int64_t s = 0;
    for (int64_t b = 0; b < n / SK_QK_SBM; b++) {
        uint64_t m = rd_u64(bm + 8 * b);
        while (m) {
            const int j = __builtin_ctzll(m);
            m &= m - 1;
            acc += (float)(int8_t)v[s++] * x[b * SK_QK_SBM + j];
        }
    }
    return d * acc;
}

/* ==== validation ============================================================================ */

int64_t sk_sparse_bm_check(shrink_dtype t, const void *data, int64_t rows, int64_t cols) {
    const uint64_t rb = sk_dtype_row_bytes(t, cols);
    const size_t hb = sk_dtype(t)->row_head;
    const uint8_t *r = data;
    for (int64_t i = 0; i < rows; i++, r += rb) {
        int64_t pc = 0;
        if (cols % SK_QK_SBM || rd_u32(r + 4) != (uint64_t)(cols / SK_QK_SBM)) return i;
        for (int64_t b = 0; b < cols / SK_QK_SBM; b++)
            pc += __builtin_popcountll(rd_u64(r + hb + 8 * b));
        if (pc != (int64_t)rd_u32(r) || pc > cols / 2) return i;
    }
    return -1;
}
