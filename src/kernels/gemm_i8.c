/*
 * gemm_i8.c - prompt processing (T > 1) of the W8A8 types (w8a8, w8a8_static) in integers:
 * the driver over the int8 GEMM kernels of x86/gemm_i8_<isa>.c and its reference.
 *
 * Shapes: W (rows = out features, cols = in features), int8 codes after each row's head
 * (f32 d_w [, f32 a]); X (T, cols) f32; Y[t*ldy + r]. Every token row is quantized once per
 * call into sk_act_i8 (d_x, sum q, cols int8) by the act format's quantizer - the one decode
 * uses - then
 *
 *     Y[t, r] = (float)(sum_k wq[r,k] * xq[t,k]) * (d_w[r] * d_x[t])
 *
 * with the integer sum exact: the specification is vec_dot_ref of the dtype row (qdot.c)
 * for every (t, r), which is what the ref level runs. The SIMD levels give the same bits
 * (int32 sums are exact for cols <= SK_I8_MAX_COLS, and the one f32 product is the same).
 * Not here: the fake-quantized f32 GEMM for wider rows (matmul.c).
 *
 * Blocking as gemm_threaded (docs/kernels.md): X packed once into tiles of nr tokens per K
 * block (shared), each thread packs its rows block by block into panels of mr rows and runs
 * the micro-kernel over (token tile, panel). K blocks are kc_max wide (4x the f32 GEMM's
 * elements for the same bytes); the int32 partial sums of the earlier K blocks live in Y's
 * own bytes until the last block converts them (no extra buffer).
 */
#include "kernels.h"

#include <omp.h>

/* the fork is not worth it below this many multiply-adds (as matmul.c) */
#define SK_I8_PAR_MIN (1 << 16)
/* weight rows packed per block per thread (as matmul.c's SK_MC_ROWS) */
#define SK_I8_MC_ROWS 256


const sk_i8_gemm *sk_i8_gemm_get(sk_isa isa) { return sk_kernel_table(isa)->i8; }

/* ---- the reference: decode's dot for every token and row ------------------------------- */

static void gemm_i8_ref(const sk_mat *W, const uint8_t *xa, size_t xab, int64_t T, float *Y,
                        int64_t ldy, int nth) {
    const sk_vec_dot_fn dot = sk_dtype(W->dtype)->vec_dot_ref;
    const uint64_t rb = sk_dtype_row_bytes(W->dtype, W->cols);
    #pragma omp parallel for num_threads(nth) schedule(static) if (nth > 1)
    for (int64_t r = 0; r < W->rows; r++) {
        const uint8_t *row = (const uint8_t *)W->data + (uint64_t)r * rb;
        for (int64_t t = 0; t < T; t++) Y[t * ldy + r] = dot(W->cols, row, xa + t * xab);
    }
}

/* ---- the blocked driver ---------------------------------------------------------------- */

/* The blocking of gemm_i8_blocked for W and T tokens, and the bytes of its buffers. */
typedef struct i8_plan {
    int64_t ntiles, npanels; /* token tiles of nr, weight panels of mr */
    int64_t kcb, nkb, ngt;   /* K block width and count; groups of 4 k in a row */
    int64_t mcp;             /* panels packed per block */
    size_t  xtile, wpan;     /* bytes of a group of a tile, of a panel */
    size_t  xp_bytes, wsz;   /* packed X (shared); packed panels per thread */
    int     nth;
} i8_plan;

static i8_plan i8_plan_of(const sk_i8_gemm *g, const sk_mat *W, int64_t T, int nth) {
    const int mr = g->mr, nr = g->nr;
    const int64_t rows = W->rows, cols = W->cols;
    i8_plan p = {.ntiles = (T + nr - 1) / nr, .npanels = (rows + mr - 1) / mr};
    /* balanced K blocks, multiples of 4 (<= kc_max); the count recomputed after the rounding
     * (the same for every cols <= SK_I8_MAX_COLS, checked; kept so no block can be empty) */
    const int64_t nkb0 = (cols + g->kc_max - 1) / g->kc_max;
    p.kcb = ((cols + nkb0 - 1) / nkb0 + 3) / 4 * 4;
    p.nkb = (cols + p.kcb - 1) / p.kcb;
    p.ngt = (cols + 3) / 4;
    p.mcp = SK_I8_MC_ROWS / mr > 0 ? SK_I8_MC_ROWS / mr : 1;
    p.xtile = (size_t)nr * (size_t)g->xgb;
    p.wpan = (size_t)mr * (size_t)g->wgb;
    if (nth > p.npanels * p.ntiles) nth = (int)(p.npanels * p.ntiles);
    p.nth = nth < 1 ? 1 : nth;
    p.xp_bytes = (size_t)(p.ntiles * p.ngt) * p.xtile;
    p.wsz = ((size_t)p.mcp * (size_t)((p.kcb + 3) / 4) * p.wpan + 63) / 64 * 64;
    return p;
}

/* xp, the panels of every thread, d_w per row, d_x and sum q per token */
static size_t i8_plan_bytes(const i8_plan *p, int mr, int nr) {
    return sk_scratch_round(p->xp_bytes) + sk_scratch_round((size_t)p->nth * p->wsz) +
           sk_scratch_round((size_t)(p->npanels * mr) * sizeof(float)) +
           2 * sk_scratch_round((size_t)(p->ntiles * nr) * sizeof(float));
}

static void gemm_i8_blocked(const sk_i8_gemm *g, const sk_mat *W, const uint8_t *xa,
                            size_t xab, int64_t T, float *Y, int64_t ldy, int nth_max,
                            sk_scratch *s) {
    const int mr = g->mr, nr = g->nr;
    const int64_t rows = W->rows, cols = W->cols;
    const size_t head = sk_dtype(W->dtype)->row_head;
    const uint64_t rb = sk_dtype_row_bytes(W->dtype, cols);
    const i8_plan pl = i8_plan_of(g, W, T, nth_max);
    const int64_t ntiles = pl.ntiles, npanels = pl.npanels, kcb = pl.kcb, nkb = pl.nkb;
    const int64_t mcp = pl.mcp;
    const size_t xtile = pl.xtile, wpan = pl.wpan, wsz = pl.wsz;
    const int nth = pl.nth;

    uint8_t *xp = sk_scratch_take(s, pl.xp_bytes);
    uint8_t *wp_all = sk_scratch_take(s, (size_t)nth * wsz);
    const size_t ndw = (size_t)(npanels * mr), ndx = (size_t)(ntiles * nr);
    float *dw = sk_scratch_take(s, ndw * sizeof(float));       /* d_w per row */
    float *dx = sk_scratch_take(s, ndx * sizeof(float));       /* d_x per token */
    int32_t *xsum = sk_scratch_take(s, ndx * sizeof(int32_t)); /* sum q per token */
    memset(dw, 0, ndw * sizeof(float)); /* the padding rows and tokens are 0 */
    memset(dx, 0, ndx * sizeof(float));
    memset(xsum, 0, ndx * sizeof(int32_t));

    #pragma omp parallel num_threads(nth)
    {
        #pragma omp for schedule(static) nowait
        for (int64_t r = 0; r < rows; r++)
            memcpy(&dw[r], (const uint8_t *)W->data + (uint64_t)r * rb, sizeof(float));
        #pragma omp for schedule(static) nowait
        for (int64_t t = 0; t < T; t++) {
            sk_act_i8 h;
            memcpy(&h, xa + t * xab, sizeof h);
            dx[t] = h.d;
            xsum[t] = h.sum;
        }
        /* X tiles: every (K block, tile) pair once, shared; xp + g0*ntiles*xtile for the
         * block starting at group g0, then tile j at j * (its groups) * xtile */
        #pragma omp for schedule(static) collapse(2)
        for (int64_t b = 0; b < nkb; b++)
            for (int64_t j = 0; j < ntiles; j++) {
                int64_t k0 = b * kcb, kc = cols - k0 < kcb ? cols - k0 : kcb;
                int nt = T - j * nr < nr ? (int)(T - j * nr) : nr;
                g->pack_x((const int8_t *)(xa + j * nr * xab + sizeof(sk_act_i8)), xab, nt, k0,
                          kc, xp + ((k0 / 4) * ntiles + j * ((kc + 3) / 4)) * xtile);
            }
        /* implicit barrier: xp, dw, dx, xsum complete */

        /* the thread grid of gemm_threaded: panels split over nr_th threads, token tiles over
         * the nth / nr_th of each */
        int me = omp_get_thread_num(), n = omp_get_num_threads();
        uint8_t *wp = wp_all + (size_t)me * wsz;
        int64_t p_lo, p_hi, j_lo, j_hi;
        sk_gemm_grid(npanels, ntiles, me, n, &p_lo, &p_hi, &j_lo, &j_hi);
        for (int64_t b = 0; b < nkb; b++) {
            int64_t k0 = b * kcb, kc = cols - k0 < kcb ? cols - k0 : kcb, ng = (kc + 3) / 4;
            int flags = (b > 0 ? SK_I8_ACC : 0) | (b == nkb - 1 ? SK_I8_FINISH : 0);
            const uint8_t *xb = xp + (k0 / 4) * ntiles * xtile;
            for (int64_t p0 = p_lo; p0 < p_hi; p0 += mcp) {
                int64_t p1 = p0 + mcp < p_hi ? p0 + mcp : p_hi;
                int64_t r0 = p0 * mr, r1 = p1 * mr < rows ? p1 * mr : rows;
                g->pack_w((const int8_t *)((const uint8_t *)W->data + (uint64_t)r0 * rb + head),
                          rb, r1 - r0, k0, kc, wp);
                for (int64_t j = j_lo; j < j_hi; j++) {
                    int nt = T - j * nr < nr ? (int)(T - j * nr) : nr;
                    const uint8_t *xt = xb + j * ng * xtile;
                    float *yt = Y + j * nr * ldy;
                    for (int64_t p = p0; p < p1; p++) {
                        int64_t r = p * mr;
                        int mrows = rows - r < mr ? (int)(rows - r) : mr;
                        g->tile(ng, wp + (size_t)((p - p0) * ng) * wpan, xt, yt + r, ldy, nt,
                                mrows, flags, dw + r, dx + j * nr, xsum + j * nr);
                    }
                }
            }
        }
    }
}

static int i8_takes(const sk_mat *W) {
    const sk_act_format f = sk_dtype(W->dtype)->act;
    return (f == SK_ACT_I8_TOKEN || f == SK_ACT_I8_STATIC) && W->cols <= SK_I8_MAX_COLS;
}

static int i8_threads(const sk_mat *W, int64_t T) {
    return sk_threads_for((double)W->rows * (double)W->cols * (double)T, SK_I8_PAR_MIN);
}

size_t sk_matmul_i8_scratch_bytes(sk_isa isa, const sk_mat *W, int64_t T) {
    if (!i8_takes(W) || T < 1 || W->rows < 1 || W->cols < 1) return 0;
    const size_t xa = sk_scratch_round((size_t)T * sk_act_bytes(sk_dtype(W->dtype)->act, W->cols));
    const sk_i8_gemm *g = sk_kernel_table(isa)->i8;
    if (!g) return xa;
    const i8_plan p = i8_plan_of(g, W, T, i8_threads(W, T));
    return xa + i8_plan_bytes(&p, g->mr, g->nr);
}

int sk_matmul_i8(sk_isa isa, const sk_mat *W, const float *X, int64_t T, float *Y,
                 int64_t ldy, sk_scratch *s) {
    const sk_act_format f = sk_dtype(W->dtype)->act;
    if (!i8_takes(W)) return 0;
    SHRINK_ASSERT(T >= 1 && W->rows >= 1 && W->cols >= 1 && (T == 1 || ldy >= W->rows));
    const int64_t cols = W->cols;
    const size_t xab = sk_act_bytes(f, cols);
    float ss = 0.0f; /* SK_ACT_I8_STATIC: the calibrated scale in row 0's head (kernels.h) */
    if (f == SK_ACT_I8_STATIC)
        memcpy(&ss, (const uint8_t *)W->data + SK_ACT_STATIC_OFF, sizeof ss);
    const sk_isa_table *tb = sk_kernel_table(isa);
    const sk_i8_gemm *g = tb->i8;
    const sk_act_quant_fn q = tb->act_quant[f]; /* the reference's at the ref level (g NULL) */
    const int nth = i8_threads(W, T);
    SHRINK_ASSERT(sk_scratch_left(s) >= sk_matmul_i8_scratch_bytes(isa, W, T));

    /* every token quantized once (sk_act_i8 each, xab bytes apart) */
    uint8_t *xa = sk_scratch_take(s, (size_t)T * xab);
    #pragma omp parallel for num_threads(nth) schedule(static) if (nth > 1)
    for (int64_t t = 0; t < T; t++) q(X + t * cols, cols, xa + t * xab, ss);

    if (g) gemm_i8_blocked(g, W, xa, xab, T, Y, ldy, nth, s);
    else gemm_i8_ref(W, xa, xab, T, Y, ldy, nth);
    return 1;
}
