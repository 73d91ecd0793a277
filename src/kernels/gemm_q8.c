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
    default:                return -1;
    }
}

static int q8g_takes(const sk_mat *W) {
    return q8g_kind(W->dtype) >= 0 && sk_dtype(W->dtype)->act == SK_ACT_Q8_32 &&
           W->cols % 32 == 0 && W->rows >= 1 && W->cols >= 32;
}

static int q8g_threads(const sk_mat *W, int64_t T) {
    return sk_threads_for((double)W->rows * (double)W->cols * (double)T, SK_Q8G_PAR_MIN);
}

/* The plan of the blocked driver: threads, tiles, bytes. */
typedef struct q8g_plan {
    int     nth;
    int64_t nb, ntiles;
    size_t  xab;     /* one token's activations (nb sk_act_q8_32) */
    size_t  xblk;    /* one 32-block of a tile */
} q8g_plan;

static q8g_plan q8g_plan_of(const sk_q8_gemm *g, const sk_mat *W, int64_t T) {
    q8g_plan p;
    p.nb = W->cols / 32;
    p.ntiles = (T + g->nt - 1) / g->nt;
    p.xab = sk_act_bytes(SK_ACT_Q8_32, W->cols);
    p.xblk = sk_q8g_xblock(g->nt);
    int nth = q8g_threads(W, T);
    const int64_t units = (W->rows + g->mr - 1) / g->mr;
    if (nth > units) nth = (int)units;
    p.nth = nth < 1 ? 1 : nth;
    return p;
}

size_t sk_matmul_q8_scratch_bytes(sk_isa isa, const sk_mat *W, int64_t T) {
    if (!q8g_takes(W) || T < 1) return 0;
    const sk_q8_gemm *g = sk_kernel_table(isa)->q8;
    if (!g) return sk_scratch_round((size_t)T * sk_act_bytes(SK_ACT_Q8_32, W->cols));
    const q8g_plan p = q8g_plan_of(g, W, T);
    return sk_scratch_round((size_t)p.nth * p.xab) +
           sk_scratch_round((size_t)(p.ntiles * p.nb) * p.xblk) +
           sk_scratch_round((size_t)p.nth * SK_Q8G_RB * (size_t)p.nb * sizeof(float));
}

/* ---- the reference: decode's quantizer and dot for every token and row ----------------- */

static void q8g_ref(const sk_mat *W, const float *X, int64_t T, float *Y, int64_t ldy, int nth,
                    sk_scratch *s) {
    const sk_dtype_traits *d = sk_dtype(W->dtype);
    const int64_t cols = W->cols;
    const size_t xab = sk_act_bytes(SK_ACT_Q8_32, cols);
    const uint64_t rb = sk_dtype_row_bytes(W->dtype, cols);
    uint8_t *xa = sk_scratch_take(s, (size_t)T * xab);
    #pragma omp parallel num_threads(nth) if (nth > 1)
    {
        #pragma omp for schedule(static)
        for (int64_t t = 0; t < T; t++)
            sk_act_quantize_ref(SK_ACT_Q8_32, X + t * cols, cols, xa + t * xab, 0.0f);
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < W->rows; r++) {
            const uint8_t *row = (const uint8_t *)W->data + (uint64_t)r * rb;
            for (int64_t t = 0; t < T; t++) Y[t * ldy + r] = d->vec_dot_ref(cols, row, xa + t * xab);
        }
    }
}

/* ---- the blocked driver ---------------------------------------------------------------- */

/* token t's activations (nb sk_act_q8_32 at a, or zeros when a is NULL) into lane tt of the
 * tile at xt (nb blocks of xblk bytes) */
static void q8g_pack_token(const uint8_t *a, int64_t nb, int nt, int tt, uint8_t *xt,
                           size_t xblk) {
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *o = xt + (size_t)b * xblk;
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

static void q8g_blocked(const sk_q8_gemm *g, sk_q8g_kind kind, sk_act_quant_fn quant,
                        const sk_mat *W, const float *X, int64_t T, float *Y, int64_t ldy,
                        sk_scratch *s) {
    const q8g_plan pl = q8g_plan_of(g, W, T);
    const int64_t nb = pl.nb, ntiles = pl.ntiles, rows = W->rows, cols = W->cols;
    const int nt = g->nt, mr = g->mr, nth = pl.nth;
    const size_t xab = pl.xab, xblk = pl.xblk, bs = sk_dtype(W->dtype)->bytes;
    const uint64_t rb = sk_dtype_row_bytes(W->dtype, cols);
    SHRINK_ASSERT(mr * nt <= SK_Q8G_MAX_OUT);
    uint8_t *abuf = sk_scratch_take(s, (size_t)nth * xab);
    uint8_t *xp = sk_scratch_take(s, (size_t)(ntiles * nb) * xblk);
    float *dw_all = sk_scratch_take(s, (size_t)nth * SK_Q8G_RB * (size_t)nb * sizeof(float));

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
            q8g_pack_token(src, nb, nt, (int)(t % nt), xp + (size_t)(t / nt * nb) * xblk, xblk);
        }
        /* implicit barrier: xp is complete */

        const int64_t units = (rows + mr - 1) / mr;
        int64_t lo, hi;
        sk_split(units, me, n, &lo, &hi);
        lo *= mr;
        hi = hi * mr < rows ? hi * mr : rows;
        float *dw = dw_all + (size_t)me * SK_Q8G_RB * (size_t)nb;
        _Alignas(64) float out[SK_Q8G_MAX_OUT];
        for (int64_t r0 = lo; r0 < hi; r0 += SK_Q8G_RB) {
            const int64_t nrb = hi - r0 < SK_Q8G_RB ? hi - r0 : SK_Q8G_RB;
            const uint8_t *w0 = (const uint8_t *)W->data + (uint64_t)r0 * rb;
            for (int64_t i = 0; i < nrb; i++) /* the block scales, widened once */
                for (int64_t b = 0; b < nb; b++) {
                    uint16_t h;
                    memcpy(&h, w0 + (uint64_t)i * rb + (uint64_t)b * bs, sizeof h);
                    dw[i * nb + b] = sk_f16_to_f32(h);
                }
            for (int64_t j = 0; j < ntiles; j++) {
                const int64_t t0 = j * nt;
                const int ntj = T - t0 < nt ? (int)(T - t0) : nt;
                const uint8_t *xt = xp + (size_t)(j * nb) * xblk;
                for (int64_t i0 = 0; i0 < nrb; i0 += mr) {
                    const int mrows = nrb - i0 < mr ? (int)(nrb - i0) : mr;
                    g->tile(kind, nb, w0 + (uint64_t)i0 * rb, rb, mrows, ntj, dw + i0 * nb, nb, xt,
                            out);
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
    if (!q8g_takes(W)) return 0;
    SHRINK_ASSERT(T >= 1 && (T == 1 || ldy >= W->rows));
    SHRINK_ASSERT(sk_scratch_left(s) >= sk_matmul_q8_scratch_bytes(isa, W, T));
    const sk_isa_table *tb = sk_kernel_table(isa);
    if (tb->q8)
        q8g_blocked(tb->q8, (sk_q8g_kind)q8g_kind(W->dtype), tb->act_quant[SK_ACT_Q8_32], W, X,
                    T, Y, ldy, s);
    else
        q8g_ref(W, X, T, Y, ldy, q8g_threads(W, T), s);
    return 1;
}
