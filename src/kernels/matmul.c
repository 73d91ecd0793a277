/*
 * matmul.c - Y = X W^T for f32/f16/bf16 and block-quantized weights: the scalar reference (the specification)
 * and the threaded driver that runs a kernel set (see kernels.h and docs/kernels.md).
 */
#include "kernels.h"

#include <math.h>

#include <omp.h>

uint64_t sk_mat_bytes(const sk_mat *W) {
    if (W->lr) return sk_mat_bytes(&W->lr[0]) + sk_mat_bytes(&W->lr[1]);
    return sk_dtype_tensor_bytes(W->dtype, W->rows, W->cols);
}

void sk_mat_row_f32(const sk_mat *W, int64_t r, float *dst) {
    SHRINK_ASSERT(!W->lr); /* embeddings and heads are never factored */
    const uint8_t *row = (const uint8_t *)W->data + (uint64_t)r * sk_dtype_row_bytes(W->dtype, W->cols);
    sk_dtype(W->dtype)->to_f32(row, dst, W->cols);
}

/* Reference over rows [r0, r1): widen each weight row to f32, dot with each token row,
 * accumulate in f32 in index order. */
static void matmul_ref_rows(const sk_mat *W, const float *X, int64_t T, float *Y, int64_t ldy,
                            int64_t r0, int64_t r1, float *wrow) {
    for (int64_t r = r0; r < r1; r++) {
        sk_mat_row_f32(W, r, wrow);
        for (int64_t t = 0; t < T; t++) {
            const float *x = X + t * W->cols;
            float acc = 0.0f;
            for (int64_t k = 0; k < W->cols; k++) acc += wrow[k] * x[k];
            Y[t * ldy + r] = acc;
        }
    }
}

shrink_status sk_matmul_ref(const sk_mat *W, const float *X, int64_t T, float *Y,
                            int64_t ldy) {
    if (W->lr) { /* the two products, through a (T, rank) f32 intermediate */
        const int64_t k = W->lr[0].rows;
        float *mid = sk_malloc((size_t)(T * k > 0 ? T * k : 1) * sizeof(float));
        if (!mid) return sk_error(SHRINK_ERR_NOMEM, "out of memory for a matrix product");
        shrink_status st = sk_matmul_ref(&W->lr[0], X, T, mid, k);
        if (!st) st = sk_matmul_ref(&W->lr[1], mid, T, Y, ldy);
        sk_free(mid);
        return st;
    }
    float *wrow = sk_malloc((size_t)W->cols * sizeof(float));
    if (!wrow) return sk_error(SHRINK_ERR_NOMEM, "out of memory for a matrix product");
    matmul_ref_rows(W, X, T, Y, ldy, 0, W->rows, wrow);
    sk_free(wrow);
    return SHRINK_OK;
}

float sk_vec_dot_f32_ref(const float *a, const float *b, int64_t n) {
    float acc = 0.0f;
    for (int64_t i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}

void sk_vec_axpy_f32_ref(int64_t n, float alpha, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

float sk_vec_exp_sum_f32_ref(float *x, int64_t n, float sub) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - sub);
        sum += x[i];
    }
    return sum;
}

const sk_kernel_set sk_kernels_ref = {
    .name = "ref", .isa = SK_ISA_REF, .mr = 1, .nr = 1,
    .gemv = NULL, .pack_w = NULL, .pack_x = NULL, .tile = NULL,
    .dot_f32 = sk_vec_dot_f32_ref, .axpy_f32 = sk_vec_axpy_f32_ref,
    .exp_sum_f32 = sk_vec_exp_sum_f32_ref,
};

/* ---- the driver ------------------------------------------------------------------------ */

/* Below this many multiply-adds a call runs on one thread (the fork costs more). A GEMV
 * is memory-bound: two threads stream faster even for small matrices. */
#define SK_PAR_MIN_WORK (1 << 16)
#define SK_PAR_MIN_GEMV (1 << 14)
/* K block of the GEMM: an X tile (kc x nr floats) stays in L1 while weight panels
 * (kc x mr) stream from L2. */
#define SK_KC_MAX 256
/* Weight rows packed per block (per thread): mc_rows x kc floats (<= 256 KiB, in L2). */
#define SK_MC_ROWS 256

int sk_threads_for(double work, double min_work) {
    int n = omp_get_max_threads();
    if (work < min_work || n < 1) n = 1;
    return n;
}

void sk_split(int64_t n, int i, int nth, int64_t *lo, int64_t *hi) {
    *lo = n * i / nth;
    *hi = n * (i + 1) / nth;
}

void sk_gemm_grid(int64_t npanels, int64_t ntiles, int me, int n, int64_t *p_lo, int64_t *p_hi,
                  int64_t *j_lo, int64_t *j_hi) {
    int nr_th = npanels >= n ? n : (int)npanels;
    int nt_th = n / nr_th;
    *p_lo = *p_hi = *j_lo = *j_hi = 0;
    if (me < nr_th * nt_th) {
        sk_split(npanels, me % nr_th, nr_th, p_lo, p_hi);
        sk_split(ntiles, me / nr_th, nt_th, j_lo, j_hi);
    }
}


/* Threads of the reference driver; each widens its rows into its own f32 row (scratch). */
static int ref_threads(const sk_mat *W, int64_t T) {
    int nth = sk_threads_for((double)W->rows * (double)W->cols * (double)T, SK_PAR_MIN_WORK);
    if (nth > W->rows) nth = (int)W->rows;
    return nth < 1 ? 1 : nth;
}

static size_t ref_scratch_bytes(const sk_mat *W, int64_t T) {
    return sk_scratch_round((size_t)ref_threads(W, T) * (size_t)W->cols * sizeof(float));
}

static void matmul_ref_threaded(const sk_mat *W, const float *X, int64_t T, float *Y,
                                int64_t ldy, sk_scratch *s) {
    const int nth = ref_threads(W, T);
    float *wrows = sk_scratch_take(s, (size_t)nth * (size_t)W->cols * sizeof(float));
    #pragma omp parallel num_threads(nth)
    {
        int i = omp_get_thread_num(), n = omp_get_num_threads();
        int64_t lo, hi;
        sk_split(W->rows, i, n, &lo, &hi);
        matmul_ref_rows(W, X, T, Y, ldy, lo, hi, wrows + (size_t)i * (size_t)W->cols);
    }
}

/* ---- quantized types (q8_0, q4_K, int8_ch, ...): rows dequantized through the dtype row -- */

/* Elements dequantized at a time: a multiple of every block (256), 8 KiB of f32 on the stack. */
#define SK_DEQ_CHUNK 2048

/* gemv for a block type (rows the act format's block does not divide): each row dequantized a
 * chunk at a time (the level's dequantizer) and dotted with x by the set's f32 dot (the sum of
 * the chunk dots, so not bit-identical to the reference). */
static void gemv_blocks(const sk_kernel_set *ks, const sk_mat *W, const float *x, float *y,
                        int64_t r0, int64_t r1) {
    const sk_dequant_fn deq = sk_kernel_table(ks->isa)->dtype[W->dtype].dequant;
    const uint64_t rb = sk_dtype_row_bytes(W->dtype, W->cols);
    float buf[SK_DEQ_CHUNK];
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)W->data + (uint64_t)r * rb;
        float acc = 0.0f;
        for (int64_t k = 0; k < W->cols; k += SK_DEQ_CHUNK) {
            int64_t n = W->cols - k < SK_DEQ_CHUNK ? W->cols - k : SK_DEQ_CHUNK;
            if (deq) deq(row, k, n, buf);
            else sk_dequant_ref(W->dtype, row, k, n, buf);
            acc += ks->dot_f32(buf, x + k, n);
        }
        y[r - r0] = acc;
    }
}

/* pack_w for a quantized type: per panel, each row's K block [k0, k0 + kc) dequantized by the
 * level's SIMD dequantizer (the reference's floats; the reference itself for the ref level)
 * into `scratch` (mr rows of kc floats, L1/L2), then the set's own f32 pack_w interleaves the
 * rows into the [k][mr] panel with its in-register transposes. k0 and kc are multiples of the
 * block (gemm_threaded cuts K blocks of whole quantization blocks). */
static void pack_w_blocks(const sk_kernel_set *ks, const sk_mat *W, int64_t r0, int64_t nrows,
                          int64_t k0, int64_t kc, float *dst, float *scratch) {
    const int mr = ks->mr;
    const int64_t bl = (int64_t)sk_dtype(W->dtype)->block;
    const uint64_t rb = sk_dtype_row_bytes(W->dtype, W->cols);
    const sk_dequant_fn deq = sk_kernel_table(ks->isa)->dtype[W->dtype].dequant;
    SHRINK_ASSERT(k0 % bl == 0 && kc % bl == 0);
    for (int64_t p = 0; p * mr < nrows; p++) {
        int mrows = nrows - p * mr < mr ? (int)(nrows - p * mr) : mr;
        for (int i = 0; i < mrows; i++) {
            const uint8_t *row = (const uint8_t *)W->data + (uint64_t)(r0 + p * mr + i) * rb;
            if (deq) deq(row, k0, kc, scratch + i * kc);
            else sk_dequant_ref(W->dtype, row, k0, kc, scratch + i * kc);
        }
        sk_mat panel = {.dtype = SHRINK_DTYPE_F32, .rows = mrows, .cols = kc, .data = scratch};
        ks->pack_w(&panel, 0, mrows, 0, kc, dst + p * kc * mr);
    }
}

static void gemv_rows(const sk_kernel_set *ks, const sk_mat *W, const float *x, float *y,
                      int64_t r0, int64_t r1) {
    if (sk_dtype_quantized(W->dtype)) gemv_blocks(ks, W, x, y, r0, r1);
    else ks->gemv(W, x, y, r0, r1);
}

/* T == 1: rows split across threads in chunks of 16 (whole cache lines of y). */
static void gemv_threaded(const sk_kernel_set *ks, const sk_mat *W, const float *x, float *y) {
    int64_t chunks = (W->rows + 15) / 16;
    int nth = sk_threads_for((double)W->rows * (double)W->cols, SK_PAR_MIN_GEMV);
    if (nth > chunks) nth = (int)chunks;
    if (nth <= 1) {
        gemv_rows(ks, W, x, y, 0, W->rows);
        return;
    }
    #pragma omp parallel num_threads(nth)
    {
        int64_t lo, hi;
        sk_split(chunks, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        lo *= 16;
        hi *= 16;
        if (hi > W->rows) hi = W->rows;
        if (lo < hi) gemv_rows(ks, W, x, y + lo, lo, hi);
    }
}

/* The blocking of gemm_threaded for W and T tokens, and the floats of its buffers. */
typedef struct gemm_plan {
    int64_t ntiles, npanels; /* token tiles of nr, weight panels of mr */
    int64_t nkb, kcb;        /* K blocks and their width */
    int64_t mcp;             /* panels packed per block */
    int     nth, quant;
    size_t  xp_floats;       /* packed X, shared */
    size_t  wsz, ssz;        /* per thread: packed weight panels; dequantized rows (quant) */
} gemm_plan;

static gemm_plan gemm_plan_of(const sk_kernel_set *ks, const sk_mat *W, int64_t T) {
    const int mr = ks->mr, nr = ks->nr;
    const int64_t rows = W->rows, cols = W->cols;
    gemm_plan p = {.ntiles = (T + nr - 1) / nr, .npanels = (rows + mr - 1) / mr};
    p.nkb = (cols + SK_KC_MAX - 1) / SK_KC_MAX;
    p.kcb = (cols + p.nkb - 1) / p.nkb;                     /* balanced K blocks */
    p.quant = sk_dtype_quantized(W->dtype);
    if (p.quant) { /* K blocks of whole quantization blocks: each is dequantized once */
        const int64_t bl = (int64_t)sk_dtype(W->dtype)->block;
        p.kcb = (p.kcb + bl - 1) / bl * bl;
        p.nkb = (cols + p.kcb - 1) / p.kcb;
    }
    p.mcp = SK_MC_ROWS / mr > 0 ? SK_MC_ROWS / mr : 1;

    p.nth = sk_threads_for((double)rows * (double)cols * (double)T, SK_PAR_MIN_WORK);
    if (p.nth > p.npanels * p.ntiles) p.nth = (int)(p.npanels * p.ntiles);
    if (p.nth < 1) p.nth = 1;
    p.xp_floats = (size_t)(p.ntiles * nr * cols);
    p.wsz = (size_t)(p.mcp * mr * p.kcb);
    /* quantized types: mr dequantized rows of a K block per thread (pack_w_blocks) */
    p.ssz = p.quant ? (size_t)(mr * p.kcb) : 0;
    return p;
}

static size_t gemm_scratch_bytes(const gemm_plan *p) {
    return sk_scratch_round(p->xp_floats * sizeof(float)) +
           sk_scratch_round((size_t)p->nth * p->wsz * sizeof(float)) +
           sk_scratch_round((size_t)p->nth * p->ssz * sizeof(float));
}

/* T > 1. Layout of the packed X (shared by all threads): for each K block b (offset k0,
 * width kc), tiles of nr tokens, each kc x nr: xp + k0*ntiles*nr + tile*kc*nr. Buffers come
 * from the scratch (gemm_scratch_bytes). */
static void gemm_threaded(const sk_kernel_set *ks, const sk_mat *W, const float *X, int64_t T,
                          float *Y, int64_t ldy, sk_scratch *s) {
    const gemm_plan pl = gemm_plan_of(ks, W, T);
    const int mr = ks->mr, nr = ks->nr;
    const int64_t rows = W->rows, cols = W->cols;
    const int64_t ntiles = pl.ntiles, npanels = pl.npanels, nkb = pl.nkb, kcb = pl.kcb;
    const int64_t mcp = pl.mcp;
    const int quant = pl.quant, nth = pl.nth;
    const size_t wsz = pl.wsz, ssz = pl.ssz;

    float *xp = sk_scratch_take(s, pl.xp_floats * sizeof(float));
    float *wp_all = sk_scratch_take(s, (size_t)nth * wsz * sizeof(float));
    float *scratch_all = quant ? sk_scratch_take(s, (size_t)nth * ssz * sizeof(float)) : NULL;

    #pragma omp parallel num_threads(nth)
    {
        /* pack X: every (K block, tile) pair once, shared */
        #pragma omp for schedule(static) collapse(2)
        for (int64_t b = 0; b < nkb; b++)
            for (int64_t j = 0; j < ntiles; j++) {
                int64_t k0 = b * kcb, kc = cols - k0 < kcb ? cols - k0 : kcb;
                ks->pack_x(X, cols, T, j * nr, k0, kc, xp + k0 * ntiles * nr + j * kc * nr);
            }
        /* implicit barrier: xp is complete */

        /* Threads form a grid: the panels (output rows) are split statically over nr_th
         * threads, the token tiles over the nth / nr_th of each; tokens are only split when
         * there are fewer panels than threads (e.g. 32 rows x 512 tokens). */
        int me = omp_get_thread_num(), n = omp_get_num_threads();
        float *wp = wp_all + (size_t)me * wsz;
        int64_t p_lo, p_hi, j_lo, j_hi;
        sk_gemm_grid(npanels, ntiles, me, n, &p_lo, &p_hi, &j_lo, &j_hi);
        for (int64_t b = 0; b < nkb; b++) {
            int64_t k0 = b * kcb, kc = cols - k0 < kcb ? cols - k0 : kcb;
            const float *xb = xp + k0 * ntiles * nr;
            for (int64_t p0 = p_lo; p0 < p_hi; p0 += mcp) {
                int64_t p1 = p0 + mcp < p_hi ? p0 + mcp : p_hi;
                int64_t r0 = p0 * mr, r1 = p1 * mr < rows ? p1 * mr : rows;
                if (quant)
                    pack_w_blocks(ks, W, r0, r1 - r0, k0, kc, wp, scratch_all + (size_t)me * ssz);
                else ks->pack_w(W, r0, r1 - r0, k0, kc, wp);
                for (int64_t j = j_lo; j < j_hi; j++) {
                    int nt = T - j * nr < nr ? (int)(T - j * nr) : nr;
                    const float *xt = xb + j * kc * nr;
                    float *yt = Y + j * nr * ldy;
                    for (int64_t p = p0; p < p1; p++) {
                        int64_t r = p * mr;
                        int mrows = rows - r < mr ? (int)(rows - r) : mr;
                        ks->tile(kc, wp + (p - p0) * kc * mr, xt, yt + r, ldy, nt, mrows,
                                 b > 0);
                    }
                }
            }
        }
    }
}

/* ---- quantized decode: x quantized once, one vec_dot per weight row ------------------- */

/* SK_ACT_I8_STATIC: the calibrated activation scale in row 0's head (kernels.h) */
static float act_static_scale(const sk_mat *W) {
    float a = 0.0f;
    if (sk_dtype(W->dtype)->act == SK_ACT_I8_STATIC)
        memcpy(&a, (const uint8_t *)W->data + SK_ACT_STATIC_OFF, sizeof a);
    return a;
}

/* Activations of up to this many bytes live on the stack (a 8192-wide f32 row); larger ones
 * in the scratch. */
#define SK_ACT_STACK 32768

static size_t qdot_scratch_bytes(const sk_mat *W) {
    const sk_act_format f = sk_dtype(W->dtype)->act;
    const size_t nbytes = sk_act_bytes(f, W->cols);
    return f != SK_ACT_F32 && nbytes > SK_ACT_STACK ? sk_scratch_round(nbytes) : 0;
}

/* T == 1 for a dtype with a dot kernel: x in the row's act format (the set's quantizer; the
 * references for the ref set), quantized once by the calling thread (O(cols), against the
 * O(rows * cols) dots: no barrier inside the parallel region), then rows split across
 * threads in chunks of 16 as in gemv_threaded, y[r] = vec_dot(row r, xa). One thread (the
 * thresholds of gemv_threaded) runs without entering a parallel region: libgomp allocates
 * and frees a team for every region, even a one-thread one. */
static void gemv_qdot(const sk_kernel_set *ks, const sk_mat *W, const float *x, float *y,
                      sk_scratch *s) {
    const sk_dtype_traits *d = sk_dtype(W->dtype);
    const sk_dtype_kernels *dk = &sk_kernel_table(ks->isa)->dtype[W->dtype];
    const sk_vec_dot_fn dot = dk->vec_dot;          /* vec_dot_ref at the ref level */
    const sk_act_quant_fn quant = dk->act_quant;    /* the reference's at the ref level */
    const int64_t rows = W->rows, cols = W->cols, chunks = (rows + 15) / 16;
    const size_t nbytes = sk_act_bytes(d->act, cols);
    _Alignas(64) uint8_t stack[SK_ACT_STACK];
    uint8_t *buf = NULL;
    if (d->act != SK_ACT_F32) {
        buf = nbytes <= sizeof stack ? stack : (uint8_t *)sk_scratch_take(s, nbytes);
        const float ss = act_static_scale(W);
        quant(x, cols, buf, ss);
    }
    const void *xa = buf ? (const void *)buf : (const void *)x;
    const uint64_t rb = sk_dtype_row_bytes(W->dtype, cols);
    const uint8_t *w = W->data;
    int nth = sk_threads_for((double)rows * (double)cols, SK_PAR_MIN_GEMV);
    if (nth > chunks) nth = (int)chunks;
    if (nth <= 1) {
        for (int64_t r = 0; r < rows; r++) y[r] = dot(cols, w + (uint64_t)r * rb, xa);
    } else {
        #pragma omp parallel num_threads(nth)
        {
            int64_t lo, hi;
            sk_split(chunks, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
            lo *= 16;
            hi = hi * 16 < rows ? hi * 16 : rows;
            for (int64_t r = lo; r < hi; r++) y[r] = dot(cols, w + (uint64_t)r * rb, xa);
        }
    }
}

/* Prompt processing for the int8-activation types (w8a8*) with rows too wide for the int8
 * GEMM (cols > SK_I8_MAX_COLS; gemm_i8.c does the others): X as the scheme sees it, each
 * token row quantized and dequantized (fake quantization), so the f32 GEMM computes what the
 * decode kernels compute up to f32 rounding. Returns NULL for the other types (X as is).
 * Xq and one token's activations per thread come from the scratch (fake_quant_bytes). */
static int fake_quant_threads(const sk_mat *W, int64_t T) {
    int nth = sk_threads_for((double)T * (double)W->cols, SK_PAR_MIN_WORK);
    return nth > T ? (int)T : nth;
}

static size_t fake_quant_bytes(const sk_mat *W, int64_t T) {
    const sk_act_format f = sk_dtype(W->dtype)->act;
    if (f != SK_ACT_I8_TOKEN && f != SK_ACT_I8_STATIC) return 0;
    return sk_scratch_round((size_t)(T * W->cols) * sizeof(float)) +
           sk_scratch_round((size_t)fake_quant_threads(W, T) * sk_act_bytes(f, W->cols));
}

static float *fake_quant_x(const sk_kernel_set *ks, const sk_mat *W, const float *X,
                           int64_t T, sk_scratch *s) {
    const sk_act_format f = sk_dtype(W->dtype)->act;
    if (f != SK_ACT_I8_TOKEN && f != SK_ACT_I8_STATIC) return NULL;
    const int64_t cols = W->cols;
    const size_t nb = sk_act_bytes(f, cols);
    const int nth = fake_quant_threads(W, T);
    float *Xq = sk_scratch_take(s, (size_t)(T * cols) * sizeof(float));
    uint8_t *bufs = sk_scratch_take(s, (size_t)nth * nb); /* one token's activations per thread */
    const sk_act_quant_fn q = sk_kernel_table(ks->isa)->act_quant[f];
    const float ss = act_static_scale(W);
    #pragma omp parallel num_threads(nth) if (nth > 1)
    {
        uint8_t *buf = bufs + (size_t)omp_get_thread_num() * nb;
        #pragma omp for schedule(static)
        for (int64_t t = 0; t < T; t++) {
            q(X + t * cols, cols, buf, ss);
            sk_act_dequantize(f, buf, cols, Xq + t * cols);
        }
    }
    return Xq;
}

/* T == 1 with a dot kernel for the dtype: quantized decode (gemv_qdot) */
static int takes_qdot(const sk_mat *W, int64_t T) {
    const sk_dtype_traits *d = sk_dtype(W->dtype);
    return T == 1 && d->vec_dot_ref != NULL && W->cols % sk_act_block(d->act) == 0;
}

/* f32x: the activations stay f32 (sk_matmul_f32x): none of the kernels that quantize X */
static size_t matmul_scratch(const sk_kernel_set *ks, const sk_mat *W, int64_t T, int f32x) {
    if (W->rows <= 0 || W->cols <= 0 || T <= 0) return 0;
    if (W->lr) { /* the (T, rank) intermediate, then the larger of the two products' needs */
        const size_t a = matmul_scratch(ks, &W->lr[0], T, f32x);
        const size_t b = matmul_scratch(ks, &W->lr[1], T, f32x);
        return sk_scratch_round((size_t)T * (size_t)W->lr[0].rows * sizeof(float)) +
               (a > b ? a : b);
    }
    if (!f32x && takes_qdot(W, T)) return qdot_scratch_bytes(W);
    const size_t i8 = T > 1 && !f32x ? sk_matmul_i8_scratch_bytes(ks->isa, W, T) : 0;
    if (i8 > 0) return i8;
    const size_t q8 = T > 1 && !f32x ? sk_matmul_q8_scratch_bytes(ks->isa, W, T) : 0;
    if (q8 > 0) return q8;
    const size_t fq = fake_quant_bytes(W, T);
    if (ks->tile == NULL) return fq + ref_scratch_bytes(W, T);
    if (T == 1) return fq;
    const gemm_plan p = gemm_plan_of(ks, W, T);
    return fq + gemm_scratch_bytes(&p);
}

size_t sk_matmul_scratch_bytes(const sk_kernel_set *ks, const sk_mat *W, int64_t T) {
    return matmul_scratch(ks, W, T, 0);
}

size_t sk_matmul_f32x_scratch_bytes(const sk_kernel_set *ks, const sk_mat *W, int64_t T) {
    return matmul_scratch(ks, W, T, 1);
}

static shrink_status matmul_run(const sk_kernel_set *ks, const sk_mat *W, const float *X,
                                int64_t T, float *Y, int64_t ldy, sk_scratch *s, int f32x) {
    SHRINK_ASSERT(W->rows >= 0 && W->cols >= 0 && T >= 0 && (T <= 1 || ldy >= W->rows));
    if (W->rows == 0 || T == 0) return SHRINK_OK;
    if (W->cols == 0) {
        for (int64_t t = 0; t < T; t++)
            for (int64_t r = 0; r < W->rows; r++) Y[t * ldy + r] = 0.0f;
        return SHRINK_OK;
    }
    const size_t need = matmul_scratch(ks, W, T, f32x);
    if (need > sk_scratch_left(s))
        return sk_error(SHRINK_ERR_ARG,
                        "matrix product: %zu bytes of scratch left, %zu needed (%s, %" PRId64
                        " x %" PRId64 ", %" PRId64 " tokens)",
                        sk_scratch_left(s), need, sk_dtype(W->dtype)->name, W->rows, W->cols, T);
    const size_t mark = s ? s->used : 0;
    if (W->lr) { /* low-rank: mid = X A^T (T, rank), then Y = mid B^T, each by its kernels */
        SHRINK_ASSERT(W->lr[0].cols == W->cols && W->lr[1].rows == W->rows &&
                      W->lr[1].cols == W->lr[0].rows);
        const int64_t k = W->lr[0].rows;
        float *mid = sk_scratch_take(s, (size_t)T * (size_t)k * sizeof(float));
        shrink_status st = matmul_run(ks, &W->lr[0], X, T, mid, k, s, f32x);
        if (!st) st = matmul_run(ks, &W->lr[1], mid, T, Y, ldy, s, f32x);
        s->used = mark;
        return st;
    }
    if (!f32x && takes_qdot(W, T)) {
        gemv_qdot(ks, W, X, Y, s);
    } else if (T > 1 && !f32x && sk_matmul_i8(ks->isa, W, X, T, Y, ldy, s)) {
        /* w8a8 prompts: done */
    } else if (T > 1 && !f32x && sk_matmul_q8(ks->isa, W, X, T, Y, ldy, s)) {
        /* q8_0 / q4_0 prompts: done */
    } else {
        float *Xq = fake_quant_x(ks, W, X, T, s);
        if (Xq) X = Xq;
        if (ks->tile == NULL)
            matmul_ref_threaded(W, X, T, Y, ldy, s);
        else if (T == 1)
            gemv_threaded(ks, W, X, Y);
        else
            gemm_threaded(ks, W, X, T, Y, ldy, s);
    }
    if (s) s->used = mark;
    return SHRINK_OK;
}

shrink_status sk_matmul_in(const sk_kernel_set *ks, const sk_mat *W, const float *X, int64_t T,
                           float *Y, int64_t ldy, sk_scratch *s) {
    return matmul_run(ks, W, X, T, Y, ldy, s, 0);
}

shrink_status sk_matmul_f32x(const sk_mat *W, const float *X, int64_t T, float *Y, int64_t ldy,
                             sk_scratch *s) {
    return matmul_run(sk_kernels(), W, X, T, Y, ldy, s, 1);
}

shrink_status sk_matmul(const sk_mat *W, const float *X, int64_t T, float *Y, int64_t ldy,
                        sk_scratch *s) {
    return sk_matmul_in(sk_kernels(), W, X, T, Y, ldy, s);
}

shrink_status sk_matmul_with(const sk_kernel_set *ks, const sk_mat *W, const float *X,
                             int64_t T, float *Y, int64_t ldy) {
    sk_scratch s = {0};
    shrink_status st = sk_scratch_reserve(&s, sk_matmul_scratch_bytes(ks, W, T));
    if (st == SHRINK_OK) st = sk_matmul_in(ks, W, X, T, Y, ldy, &s);
    sk_scratch_free(&s);
    return st;
}

float sk_vec_dot_f32(const float *a, const float *b, int64_t n) {
    return sk_kernels()->dot_f32(a, b, n);
}

void sk_vec_axpy_f32(int64_t n, float alpha, const float *x, float *y) {
    sk_kernels()->axpy_f32(n, alpha, x, y);
}
