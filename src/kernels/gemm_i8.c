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

static void gemm_i8_blocked(const sk_i8_gemm *g, const sk_mat *W, const uint8_t *xa,
                            size_t xab, int64_t T, float *Y, int64_t ldy, int nth) {
    const int mr = g->mr, nr = g->nr;
    const int64_t rows = W->rows, cols = W->cols;
    const size_t head = sk_dtype(W->dtype)->row_head;
    const uint64_t rb = sk_dtype_row_bytes(W->dtype, cols);
    const int64_t ntiles = (T + nr - 1) / nr;
    const int64_t npanels = (rows + mr - 1) / mr;
    /* balanced K blocks, multiples of 4 (<= kc_max); the count recomputed after the rounding
     * (the same for every cols <= SK_I8_MAX_COLS, checked; kept so no block can be empty) */
    const int64_t nkb0 = (cols + g->kc_max - 1) / g->kc_max;
    const int64_t kcb = ((cols + nkb0 - 1) / nkb0 + 3) / 4 * 4;
    const int64_t nkb = (cols + kcb - 1) / kcb;
    const int64_t ngt = (cols + 3) / 4;                      /* groups of 4 k in a row */
    const int64_t mcp = SK_I8_MC_ROWS / mr > 0 ? SK_I8_MC_ROWS / mr : 1;
    const size_t xtile = (size_t)nr * (size_t)g->xgb;        /* bytes of a group of a tile */
    const size_t wpan = (size_t)mr * (size_t)g->wgb;         /* bytes of a group of a panel */
    if (nth > npanels * ntiles) nth = (int)(npanels * ntiles);
    if (nth < 1) nth = 1;

    uint8_t *xp = sk_aligned_alloc(64, (size_t)(ntiles * ngt) * xtile);
    size_t wsz = ((size_t)mcp * (size_t)((kcb + 3) / 4) * wpan + 63) / 64 * 64;
    uint8_t *wp_all = sk_aligned_alloc(64, (size_t)nth * wsz);
    float *dw = sk_calloc((size_t)(npanels * mr), sizeof(float));         /* d_w per row */
    float *dx = sk_calloc((size_t)(ntiles * nr), sizeof(float));          /* d_x per token */
    int32_t *xsum = sk_calloc((size_t)(ntiles * nr), sizeof(int32_t));    /* sum q per token */
    SHRINK_ASSERT(xp && wp_all && dw && dx && xsum);

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
    sk_free(xsum);
    sk_free(dx);
    sk_free(dw);
    sk_free(wp_all);
    sk_free(xp);
}

int sk_matmul_i8(sk_isa isa, const sk_mat *W, const float *X, int64_t T, float *Y,
                 int64_t ldy) {
    const sk_act_format f = sk_dtype(W->dtype)->act;
    if ((f != SK_ACT_I8_TOKEN && f != SK_ACT_I8_STATIC) || W->cols > SK_I8_MAX_COLS) return 0;
    SHRINK_ASSERT(T >= 1 && W->rows >= 1 && W->cols >= 1 && (T == 1 || ldy >= W->rows));
    const int64_t cols = W->cols;
    const size_t xab = sk_act_bytes(f, cols);
    float ss = 0.0f; /* SK_ACT_I8_STATIC: the calibrated scale in row 0's head (kernels.h) */
    if (f == SK_ACT_I8_STATIC)
        memcpy(&ss, (const uint8_t *)W->data + SK_ACT_STATIC_OFF, sizeof ss);
    const sk_isa_table *tb = sk_kernel_table(isa);
    const sk_i8_gemm *g = tb->i8;
    const sk_act_quant_fn q = tb->act_quant[f]; /* the reference's at the ref level (g NULL) */
    int nth = sk_threads_for((double)W->rows * (double)cols * (double)T, SK_I8_PAR_MIN);

    /* every token quantized once (sk_act_i8 each, xab bytes apart) */
    uint8_t *xa = sk_malloc((size_t)T * xab);
    SHRINK_ASSERT(xa != NULL);
    #pragma omp parallel for num_threads(nth) schedule(static) if (nth > 1)
    for (int64_t t = 0; t < T; t++) q(X + t * cols, cols, xa + t * xab, ss);

    if (g) gemm_i8_blocked(g, W, xa, xab, T, Y, ldy, nth);
    else gemm_i8_ref(W, xa, xab, T, Y, ldy, nth);
    sk_free(xa);
    return 1;
}
