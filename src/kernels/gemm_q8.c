/*
 * gemm_q8.c - prompt processing (T > 1) of the weight-only 32-block types q8_0 and q4_0 in
 * integers: the driver over x86/gemm_q8_<isa>.c and its reference (docs/kernels.md).
 *
 * Every token row is quantized once per call into SK_ACT_Q8_32 (the quantizer decode uses:
 * per 32 elements d = absmax / 127, q = round(x / d)), then
 *
 *     Y[t, r] = sum over blocks b, in index order, of (float)isum_b * (d_w[r, b] * d_x[t, b])
 *
 * with isum_b the exact int32 sum of the block's weight codes (q8_0: int8; q4_0: nibble - 8)
 * times the token's int8: the specification is vec_dot_ref of the dtype row (qdot.c) for
 * every (t, r), which the ref level runs; the SIMD levels give the same bits (same integer
 * sums, same two f32 products, same order of the f32 additions). So prompt and decode of
 * these types compute the same function of each token.
 *
 * Blocking: the tokens are packed once per call into tiles of nt tokens (sk_q8_gemm, shared
 * by the threads); the weights are not packed: their 4-byte groups are broadcast from the
 * rows in place. Each thread owns a contiguous range of rows, walks it by blocks of
 * SK_Q8G_RB rows (their weights stay in L2; their f32 block scales are widened once per
 * block), and for each token tile runs the micro-kernel over groups of mr rows on the whole K
 * (the f32 sums stay in registers), then writes the mr x nt results into Y.
 */
#include "kernels.h"
#include "ggml_quants.h"

#include <omp.h>

#define SK_Q8G_PAR_MIN (1 << 16) /* as matmul.c: the fork costs more below */
#define SK_Q8G_RB 48             /* rows per block of a thread */
#define SK_Q8G_MAX_OUT 512       /* mr * nt of every kernel (checked) */

const sk_q8_gemm *sk_q8_gemm_get(sk_isa isa) { return sk_kernel_table(isa)->q8; }

static int q8g_kind(shrink_dtype t) {
    switch (t) {
    case SHRINK_DTYPE_Q8_0: return SK_Q8G_Q8_0;
    case SHRINK_DTYPE_Q4_0: return SK_Q8G_Q4_0;
    case SHRINK_DTYPE_Q4_K: return SK_Q8G_Q4_K;
    default:                return -1;
    }
}

/* W's kind when this level (g: its kernels, NULL: the reference) takes it, else -1 */
static int q8g_takes(const sk_q8_gemm *g, const sk_mat *W) {
    const int kind = q8g_kind(W->dtype);
    if (kind < 0 || W->rows < 1 || W->cols < 1) return -1;
    const sk_dtype_traits *d = sk_dtype(W->dtype);
    if (W->cols % (int64_t)d->block != 0 || W->cols % sk_act_block(d->act) != 0) return -1;
    return g && g->mr[kind] == 0 ? -1 : kind;
}

/* The plan of the blocked driver: threads, tiles, bytes. */
typedef struct q8g_plan {
    int     nth, mr;
    int64_t nb, ntiles, np;  /* weight blocks per row, token tiles, prepared floats per block */
    size_t  xab;             /* one token's activations in the act format */
    size_t  xblk;            /* one weight block's part of a tile */
} q8g_plan;

static q8g_plan q8g_plan_of(const sk_q8_gemm *g, sk_q8g_kind kind, const sk_mat *W, int64_t T) {
    q8g_plan p;
    p.mr = g->mr[kind];
    p.nb = W->cols / (int64_t)sk_dtype(W->dtype)->block;
    p.np = sk_q8g_prep(kind);
    p.ntiles = (T + g->nt - 1) / g->nt;
    p.xab = sk_act_bytes(sk_dtype(W->dtype)->act, W->cols);
    p.xblk = sk_q8g_xblock(kind, g->nt);
    int nth = sk_threads_for((double)W->rows * (double)W->cols * (double)T, SK_Q8G_PAR_MIN);
    const int64_t units = (W->rows + p.mr - 1) / p.mr;
    if (nth > units) nth = (int)units;
    p.nth = nth < 1 ? 1 : nth;
    return p;
}

size_t sk_matmul_q8_scratch_bytes(sk_isa isa, const sk_mat *W, int64_t T) {
    const sk_q8_gemm *g = sk_kernel_table(isa)->q8;
    const int kind = q8g_takes(g, W);
    if (kind < 0 || T < 1) return 0;
    if (!g) return sk_scratch_round((size_t)T * sk_act_bytes(sk_dtype(W->dtype)->act, W->cols));
    const q8g_plan p = q8g_plan_of(g, (sk_q8g_kind)kind, W, T);
    return sk_scratch_round((size_t)p.nth * p.xab) +
           sk_scratch_round((size_t)(p.ntiles * p.nb) * p.xblk) +
           sk_scratch_round((size_t)p.nth * SK_Q8G_RB * (size_t)(p.nb * p.np) * sizeof(float));
}

/* ---- the reference: decode's quantizer and dot for every token and row ----------------- */

static void q8g_ref(const sk_mat *W, const float *X, int64_t T, float *Y, int64_t ldy, int nth,
                    sk_scratch *s) {
    const sk_dtype_traits *d = sk_dtype(W->dtype);
    const int64_t cols = W->cols;
    const size_t xab = sk_act_bytes(d->act, cols);
    const uint64_t rb = sk_dtype_row_bytes(W->dtype, cols);
    uint8_t *xa = sk_scratch_take(s, (size_t)T * xab);
    #pragma omp parallel num_threads(nth) if (nth > 1)
    {
        #pragma omp for schedule(static)
        for (int64_t t = 0; t < T; t++)
            sk_act_quantize_ref(d->act, X + t * cols, cols, xa + t * xab, 0.0f);
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < W->rows; r++) {
            const uint8_t *row = (const uint8_t *)W->data + (uint64_t)r * rb;
            for (int64_t t = 0; t < T; t++) Y[t * ldy + r] = d->vec_dot_ref(cols, row, xa + t * xab);
        }
    }
}

/* ---- the blocked driver ---------------------------------------------------------------- */

/* token t's activations (nb blocks of the kind's act format at a, or zeros when a is NULL)
 * into lane tt of the tile at xt (nb blocks of xblk bytes; layout in kernels.h) */
static void q8g_pack_token(sk_q8g_kind kind, const uint8_t *a, int64_t nb, int nt, int tt,
                           uint8_t *xt, size_t xblk) {
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *o = xt + (size_t)b * xblk;
        if (kind == SK_Q8G_Q4_K) {
            block_q8_K blk;
            if (a) memcpy(&blk, a + (size_t)b * sizeof blk, sizeof blk);
            else memset(&blk, 0, sizeof blk);
            for (int g = 0; g < 64; g++) memcpy(o + ((size_t)g * nt + tt) * 4, blk.qs + 4 * g, 4);
            for (int j = 0; j < 8; j++) {
                int32_t sum = blk.bsums[2 * j] + blk.bsums[2 * j + 1];
                memcpy(o + (size_t)256 * nt + ((size_t)j * nt + tt) * 4, &sum, 4);
            }
            memcpy(o + (size_t)288 * nt + (size_t)tt * 4, &blk.d, 4);
            continue;
        }
        sk_act_q8_32 blk;
        if (a) memcpy(&blk, a + (size_t)b * sizeof blk, sizeof blk);
        else memset(&blk, 0, sizeof blk);
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) sum += blk.qs[j];
        for (int g = 0; g < 8; g++) memcpy(o + ((size_t)g * nt + tt) * 4, blk.qs + 4 * g, 4);
        memcpy(o + (size_t)32 * nt + (size_t)tt * 4, &sum, 4);
        memcpy(o + (size_t)36 * nt + (size_t)tt * 4, &blk.d, 4);
    }
}

/* 6-bit scale and min of sub-block j (< 8) of q4_K (as kquants.c's scale_min_k4) */
static void q4k_scale_min(int j, const uint8_t *q, int32_t *sc, int32_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0F) | (q[j - 4] >> 6) << 4;
        *m = (q[j + 4] >> 4) | (q[j] >> 6) << 4;
    }
}

/* the prepared scales of one weight block (sk_q8g_prep(kind) floats at p) */
static void q8g_prep_block(sk_q8g_kind kind, const uint8_t *blk, float *p) {
    uint16_t h;
    if (kind != SK_Q8G_Q4_K) {
        memcpy(&h, blk, sizeof h);
        p[0] = sk_f16_to_f32(h);
        return;
    }
    block_q4_K b;
    memcpy(&b, blk, sizeof b);
    for (int j = 0; j < 8; j++) {
        int32_t sc, m;
        q4k_scale_min(j, b.scales, &sc, &m);
        memcpy(p + j, &sc, 4);
        memcpy(p + 8 + j, &m, 4);
    }
    p[16] = sk_f16_to_f32(b.d);
    p[17] = sk_f16_to_f32(b.dmin);
}

static void q8g_blocked(const sk_q8_gemm *g, sk_q8g_kind kind, sk_act_quant_fn quant,
                        const sk_mat *W, const float *X, int64_t T, float *Y, int64_t ldy,
                        sk_scratch *s) {
    const q8g_plan pl = q8g_plan_of(g, kind, W, T);
    const int64_t nb = pl.nb, np = pl.np, ntiles = pl.ntiles, rows = W->rows, cols = W->cols;
    const int nt = g->nt, mr = pl.mr, nth = pl.nth;
    const size_t xab = pl.xab, xblk = pl.xblk, bs = sk_dtype(W->dtype)->bytes;
    const uint64_t rb = sk_dtype_row_bytes(W->dtype, cols);
    SHRINK_ASSERT(mr * nt <= SK_Q8G_MAX_OUT);
    uint8_t *abuf = sk_scratch_take(s, (size_t)nth * xab);
    uint8_t *xp = sk_scratch_take(s, (size_t)(ntiles * nb) * xblk);
    float *prep_all = sk_scratch_take(s, (size_t)nth * SK_Q8G_RB * (size_t)(nb * np) * sizeof(float));

    #pragma omp parallel num_threads(nth) if (nth > 1)
    {
        const int me = omp_get_thread_num(), n = omp_get_num_threads();
        uint8_t *a = abuf + (size_t)me * xab;
        #pragma omp for schedule(static)
        for (int64_t t = 0; t < ntiles * nt; t++) {
            const uint8_t *src = NULL;
            if (t < T) {
                quant(X + t * cols, cols, a, 0.0f);
                src = a;
            }
            q8g_pack_token(kind, src, nb, nt, (int)(t % nt), xp + (size_t)(t / nt * nb) * xblk,
                           xblk);
        }
        /* implicit barrier: xp is complete */

        const int64_t units = (rows + mr - 1) / mr;
        int64_t lo, hi;
        sk_split(units, me, n, &lo, &hi);
        lo *= mr;
        hi = hi * mr < rows ? hi * mr : rows;
        float *prep = prep_all + (size_t)me * SK_Q8G_RB * (size_t)(nb * np);
        _Alignas(64) float out[SK_Q8G_MAX_OUT];
        for (int64_t r0 = lo; r0 < hi; r0 += SK_Q8G_RB) {
            const int64_t nrb = hi - r0 < SK_Q8G_RB ? hi - r0 : SK_Q8G_RB;
            const uint8_t *w0 = (const uint8_t *)W->data + (uint64_t)r0 * rb;
            for (int64_t i = 0; i < nrb; i++) /* the block scales, prepared once */
                for (int64_t b = 0; b < nb; b++)
                    q8g_prep_block(kind, w0 + (uint64_t)i * rb + (uint64_t)b * bs,
                                   prep + (i * nb + b) * np);
            for (int64_t j = 0; j < ntiles; j++) {
                const int64_t t0 = j * nt;
                const int ntj = T - t0 < nt ? (int)(T - t0) : nt;
                const uint8_t *xt = xp + (size_t)(j * nb) * xblk;
                for (int64_t i0 = 0; i0 < nrb; i0 += mr) {
                    const int mrows = nrb - i0 < mr ? (int)(nrb - i0) : mr;
                    g->tile(kind, nb, w0 + (uint64_t)i0 * rb, rb, mrows, ntj,
                            prep + i0 * nb * np, nb * np, xt, out);
                    for (int t = 0; t < ntj; t++)
                        for (int i = 0; i < mrows; i++)
                            Y[(t0 + t) * ldy + r0 + i0 + i] = out[i * nt + t];
                }
            }
        }
    }
}

int sk_matmul_q8(sk_isa isa, const sk_mat *W, const float *X, int64_t T, float *Y,
                 int64_t ldy, sk_scratch *s) {
    const sk_isa_table *tb = sk_kernel_table(isa);
    const int kind = q8g_takes(tb->q8, W);
    if (kind < 0) return 0;
    SHRINK_ASSERT(T >= 1 && (T == 1 || ldy >= W->rows));
    SHRINK_ASSERT(sk_scratch_left(s) >= sk_matmul_q8_scratch_bytes(isa, W, T));
    if (tb->q8)
        q8g_blocked(tb->q8, (sk_q8g_kind)kind, tb->act_quant[sk_dtype(W->dtype)->act], W, X, T,
                    Y, ldy, s);
    else
        q8g_ref(W, X, T, Y, ldy,
                sk_threads_for((double)W->rows * (double)W->cols * (double)T, SK_Q8G_PAR_MIN), s);
    return 1;
}
