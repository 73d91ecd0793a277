/*
 * layers.c - every layer of the decoder as a forward/backward pair (llm.c style): the forward
 * computes what the decoder computes (same formulas as decoder.c, so a trained model runs the
 * same in inference) and saves exactly what its backward needs, named in its comment; the
 * backward sits right below it.
 *
 * Shapes as in train.h: N = B*T rows (row n = sequence n / T, position n % T), D = dim,
 * H / KV heads of hd, F = ffn_dim, V = vocab. Activations are f32 row-major.
 *
 * Parameter gradients are always ADDED (so micro-batches accumulate); a NULL gradient pointer
 * means "not wanted" (frozen) and skips that work. Input gradients are added or written as
 * each comment says. Loops are threaded over rows with OpenMP; reductions over rows (weight
 * and bias gradients of norms) are threaded over columns instead, so no two threads write
 * the same float and results do not depend on the thread count.
 */
#include "train.h"

#include <math.h>
#include <omp.h>

/* ==== helpers ================================================================================ */

/* y += x over n floats. */
static void add_to(float *y, const float *x, size_t n) {
    #pragma omp parallel for schedule(static) if (n > 32768)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

/* ==== token and position embedding ========================================================= */

/* out[n] = wte[tok[n]] (+ wpe[n % T]); wte in any dtype (a frozen base's stored one: the row
 * is widened into out). Saves nothing: the backward needs only the tokens. */
void sk_encoder_forward(float *out, const int32_t *tok, const sk_mat *wte, const float *wpe, int N,
                     int T, int D) {
    SHRINK_ASSERT(wte->cols == D);
    #pragma omp parallel for schedule(static) if ((size_t)N * D > 32768)
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * D;
        if (wte->dtype == SHRINK_DTYPE_F32)
            memcpy(o, (const float *)wte->data + (size_t)tok[n] * D, (size_t)D * sizeof(float));
        else
            sk_mat_row_f32(wte, tok[n], o);
        if (wpe) {
            const float *p = wpe + (size_t)(n % T) * D;
            for (int i = 0; i < D; i++) o[i] += p[i];
        }
    }
}

/* dwte[tok[n]] += dout[n] (rows may repeat: threaded over column blocks), dwpe[t] += sum over
 * the sequences of dout[b*T + t]. */
void sk_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tok, int N,
                      int T, int D) {
    if (dwte) {
        const int cb = 64, nb = (D + cb - 1) / cb;
        #pragma omp parallel for schedule(static) if (N * D > 65536)
        for (int b = 0; b < nb; b++) {
            int i0 = b * cb, i1 = i0 + cb < D ? i0 + cb : D;
            for (int n = 0; n < N; n++) {
                float *g = dwte + (size_t)tok[n] * D;
                const float *d = dout + (size_t)n * D;
                for (int i = i0; i < i1; i++) g[i] += d[i];
            }
        }
    }
    if (dwpe) {
        #pragma omp parallel for schedule(static) if (N * D > 65536)
        for (int t = 0; t < T; t++)
            for (int n = t; n < N; n += T) {
                float *g = dwpe + (size_t)t * D;
                const float *d = dout + (size_t)n * D;
                for (int i = 0; i < D; i++) g[i] += d[i];
            }
    }
}

/* ==== LayerNorm ============================================================================== */

/* out = (x - mean) * rstd * w + b, biased variance (torch.nn.LayerNorm), statistics in double
 * as decoder.c. Saves mean and rstd (N each) "to be used later in the backward pass". */
void sk_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int N, int D, float eps) {
    #pragma omp parallel for schedule(static) if ((size_t)N * D > 32768)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * D;
        float *o = out + (size_t)n * D;
        double m = 0.0, v = 0.0;
        for (int i = 0; i < D; i++) m += x[i];
        m /= D;
        for (int i = 0; i < D; i++) v += ((double)x[i] - m) * ((double)x[i] - m);
        v /= D;
        float s = (float)(1.0 / sqrt(v + eps));
        for (int i = 0; i < D; i++) o[i] = (float)(x[i] - m) * s * w[i] + (b ? b[i] : 0.f);
        mean[n] = (float)m;
        rstd[n] = s;
    }
}

/* dinp += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = dout * w,
 * norm = (x - mean) * rstd; dw += sum_n dout * norm, db += sum_n dout. */
void sk_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int N, int D) {
    if (dinp) {
        #pragma omp parallel for schedule(static) if ((size_t)N * D > 32768)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * D, *dy = dout + (size_t)n * D;
            float *dx = dinp + (size_t)n * D;
            const float m = mean[n], s = rstd[n];
            double a = 0.0, c = 0.0;
            for (int i = 0; i < D; i++) {
                float dn = dy[i] * w[i];
                a += dn;
                c += (double)dn * ((x[i] - m) * s);
            }
            const float ma = (float)(a / D), mc = (float)(c / D);
            for (int i = 0; i < D; i++) {
                float nrm = (x[i] - m) * s;
                dx[i] += s * (dy[i] * w[i] - ma - nrm * mc);
            }
        }
    }
    if (dw || db) {
        const int cb = 16, nb = (D + cb - 1) / cb;
        #pragma omp parallel for schedule(static) if (N * D > 65536)
        for (int b = 0; b < nb; b++) {
            int i0 = b * cb, i1 = i0 + cb < D ? i0 + cb : D;
            float aw[16] = {0}, ab[16] = {0};
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * D, *dy = dout + (size_t)n * D;
                for (int i = i0; i < i1; i++) {
                    aw[i - i0] += dy[i] * ((x[i] - mean[n]) * rstd[n]);
                    ab[i - i0] += dy[i];
                }
            }
            for (int i = i0; i < i1; i++) {
                if (dw) dw[i] += aw[i - i0];
                if (db) db[i] += ab[i - i0];
            }
        }
    }
}

/* ==== RMSNorm ================================================================================ */

/* out = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps) (Hugging Face LlamaRMSNorm), sum of
 * squares in double as decoder.c. Saves rstd (N). */
void sk_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int D,
                     float eps) {
    #pragma omp parallel for schedule(static) if ((size_t)N * D > 32768)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * D;
        float *o = out + (size_t)n * D;
        double ss = 0.0;
        for (int i = 0; i < D; i++) ss += (double)x[i] * x[i];
        float s = (float)(1.0 / sqrt(ss / D + eps));
        for (int i = 0; i < D; i++) o[i] = x[i] * s * w[i];
        rstd[n] = s;
    }
}

/* dinp += rstd * dout * w - x * rstd^3 * mean(dout * w * x); dw += sum_n dout * x * rstd. */
void sk_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                      const float *w, const float *rstd, int N, int D) {
    if (dinp) {
        #pragma omp parallel for schedule(static) if ((size_t)N * D > 32768)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * D, *dy = dout + (size_t)n * D;
            float *dx = dinp + (size_t)n * D;
            const float s = rstd[n];
            double c = 0.0;
            for (int i = 0; i < D; i++) c += (double)dy[i] * w[i] * x[i];
            const float k = (float)(c / D) * s * s * s;
            for (int i = 0; i < D; i++) dx[i] += s * dy[i] * w[i] - k * x[i];
        }
    }
    if (dw) {
        const int cb = 16, nb = (D + cb - 1) / cb;
        #pragma omp parallel for schedule(static) if (N * D > 65536)
        for (int b = 0; b < nb; b++) {
            int i0 = b * cb, i1 = i0 + cb < D ? i0 + cb : D;
            float aw[16] = {0};
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * D, *dy = dout + (size_t)n * D;
                for (int i = i0; i < i1; i++) aw[i - i0] += dy[i] * x[i] * rstd[n];
            }
            for (int i = i0; i < i1; i++) dw[i] += aw[i - i0];
        }
    }
}

/* ==== linear layers ========================================================================== */

/* Y (N, out) = X (N, in) W^T (+ bias), W (out, in) f32 or a frozen matrix in its stored
 * dtype, through the GEMM kernels with f32 activations (kernels.h: sk_matmul_f32x: never the
 * integer kernels that quantize X, whose output is not differentiable). Saves nothing: the backward
 * needs X (the caller keeps it) and W. */
shrink_status sk_matmul_forward(float *Y, const float *X, const sk_mat *W, const float *bias,
                                int N, int in, int out, sk_scratch *s) {
    SHRINK_ASSERT(W->rows == out && W->cols == in);
    shrink_status st = sk_matmul_f32x(W, X, N, Y, out, s); /* f32 activations: differentiable */
    if (st || !bias) return st;
    #pragma omp parallel for schedule(static) if ((size_t)N * out > 32768)
    for (int n = 0; n < N; n++)
        for (int o = 0; o < out; o++) Y[(size_t)n * out + o] += bias[o];
    return SHRINK_OK;
}

/* ---- accumulating GEMM for the backward products ---------------------------------------
 *
 * C[t*ldc + r] += sum_k A(k, t) B(k, r) for t < nt, r < nr_, k < K, with A(k, t) =
 * A[k*ak + t*at] and B(k, r) = B[k*bk + r] (B's r contiguous). Both backward products of a
 * linear layer have this form without any transposed copy:
 *   dW (out, in) += dY^T X:  t = o, r = i, k = n:  A = dY (ak = out, at = 1), B = X;
 *   dX (N, in)  += dY W:     t = n, r = i, k = o:  A = dY (ak = 1, at = out), B = W.
 * B may instead be a matrix Bq (K rows of nr_) held in a stored dtype (a frozen base: f16,
 * bf16, q4_K, nf4, ...): its rows are dequantized as the panels are packed, a row's needed
 * blocks at a time into a per-thread row buffer (the level's dequantizer, bit-identical to the
 * reference), so the product is exactly the one on the widened matrix and the matrix is never
 * widened whole.
 * It runs on the GEMM micro-kernel of the kernel set (kernels.h: `tile` with accumulate).
 * One parallel region, no barrier inside: the threads form a grid over (tiles of nr t's) x
 * (panels of mr r's); each thread, for each block of GEMM_KC k's, packs its own B panels
 * ([k][mr], slices of B's rows) and, tile by tile, its A tile ([k][nr]), then sweeps its
 * panels. Every C element is owned by one thread, so no reduction is needed and the sums do
 * not depend on the thread count. The reference kernel set (no tile) runs plain loops. */
#define GEMM_KC 128

/* The thread grid of gemm_acc (tg groups of tiles x pg groups of panels, pan_per panels per
 * group) and the floats of its per-thread packing buffers. */
typedef struct gemm_acc_plan {
    int64_t npan, ntile, pan_per;
    int     tg, pg;
    size_t  per;    /* one thread's floats: B panels, A tile, and Bq's row buffer */
    size_t  floats; /* all threads' */
} gemm_acc_plan;

/* Floats of a row buffer of Bq for n columns starting anywhere: whole blocks around them. */
static size_t bq_row_floats(const sk_mat *Bq, int64_t n) {
    return Bq ? (size_t)n + 2 * sk_dtype(Bq->dtype)->block : 0;
}

static gemm_acc_plan gemm_acc_plan_of(const sk_kernel_set *ks, int64_t nt, int64_t nr_,
                                      int64_t K, const sk_mat *Bq) {
    const int mr = ks->mr, nr = ks->nr;
    gemm_acc_plan p = {.npan = (nr_ + mr - 1) / mr, .ntile = (nt + nr - 1) / nr};
    int nth = omp_get_max_threads();
    if ((int64_t)nth > p.ntile * p.npan) nth = (int)(p.ntile * p.npan);
    if (nt * nr_ * K < 32768) nth = 1;
    /* grid: tg groups of tiles x pg groups of panels, tg * pg <= nth. Each thread packs the
     * B panels of its panel group and the A tiles of its tile group, so B is packed tg times
     * and A pg times: choose the split that packs fewer floats. */
    int tg = 1, pg = 1;
    double best = -1;
    for (int a = 1; a <= nth; a++) {
        const int b = nth / a;
        if (a > p.ntile || b > p.npan) continue;
        const double cost = (double)a * (double)nr_ + (double)b * (double)nt;
        if (best < 0 || cost < best || (cost == best && a * b > tg * pg)) {
            best = cost;
            tg = a;
            pg = b;
        }
    }
    p.tg = tg;
    p.pg = pg;
    p.pan_per = (p.npan + pg - 1) / pg;
    p.per = ((size_t)p.pan_per * mr + nr) * GEMM_KC + bq_row_floats(Bq, p.pan_per * mr);
    p.per = (p.per + 15) & ~(size_t)15; /* each thread's buffers 64-byte aligned */
    p.floats = (size_t)tg * pg * p.per;
    return p;
}

/* Threads of the reference loops with a stored Bq (each with a row buffer of nr_). */
static int gemm_acc_ref_threads(int64_t nt, int64_t nr_, int64_t K) {
    int nth = nt * nr_ * K > 65536 ? omp_get_max_threads() : 1;
    if (nth > nt) nth = (int)nt;
    return nth < 1 ? 1 : nth;
}

/* Scratch bytes of gemm_acc (0 for the reference kernel set with an f32 B). */
static size_t gemm_acc_bytes(int64_t nt, int64_t nr_, int64_t K, const sk_mat *Bq) {
    const sk_kernel_set *ks = sk_kernels();
    if (nt <= 0 || nr_ <= 0 || K <= 0) return 0;
    if (!ks->tile)
        return Bq ? sk_scratch_round((size_t)gemm_acc_ref_threads(nt, nr_, K) *
                                     bq_row_floats(Bq, nr_) * sizeof(float))
                  : 0;
    const gemm_acc_plan p = gemm_acc_plan_of(ks, nt, nr_, K, Bq);
    return sk_scratch_round(p.floats * sizeof(float));
}

/* Columns [c0, c1) of row k of Bq as f32: the blocks holding them dequantized into buf (the
 * level's dequantizer, else the reference); returns the address of column c0 in buf. */
static const float *bq_row(const sk_mat *Bq, sk_dequant_fn deq, int64_t k, int64_t c0,
                           int64_t c1, float *buf) {
    const int64_t bl = (int64_t)sk_dtype(Bq->dtype)->block;
    const int64_t a = c0 / bl * bl, b = (c1 + bl - 1) / bl * bl;
    const uint8_t *row = (const uint8_t *)Bq->data +
                         (size_t)k * (size_t)sk_dtype_row_bytes(Bq->dtype, Bq->cols);
    if (deq) deq(row, a, b - a, buf);
    else sk_dequant_ref(Bq->dtype, row, a, b - a, buf);
    return buf + (c0 - a);
}

static shrink_status gemm_acc(float *C, int64_t ldc, int64_t nt, int64_t nr_, int64_t K,
                              const float *A, int64_t ak, int64_t at, const float *Bm,
                              int64_t bk, const sk_mat *Bq, sk_scratch *s) {
    const sk_kernel_set *ks = sk_kernels();
    SHRINK_ASSERT(!Bq || (Bq->rows == K && Bq->cols == nr_));
    const sk_dequant_fn deq = Bq ? sk_kernel_table(ks->isa)->dtype[Bq->dtype].dequant : NULL;
    if (!ks->tile && !Bq) {
        #pragma omp parallel for schedule(static) if (nt * nr_ * K > 65536)
        for (int64_t t = 0; t < nt; t++)
            for (int64_t k = 0; k < K; k++) {
                const float a = A[k * ak + t * at];
                const float *b = Bm + k * bk;
                float *c = C + t * ldc;
                for (int64_t r = 0; r < nr_; r++) c[r] += a * b[r];
            }
        return SHRINK_OK;
    }
    const size_t need = gemm_acc_bytes(nt, nr_, K, Bq);
    const size_t mark = s ? s->used : 0;
    float *buf = sk_scratch_take(s, need);
    if (!buf)
        return sk_error(SHRINK_ERR_ARG, "training step: %zu bytes of scratch left, %zu needed",
                        sk_scratch_left(s), need);
    if (!ks->tile) {
        /* the reference loops with a stored B: each thread its own t's, B's rows dequantized
         * once per thread; every C element sums its k's in order, as the loop above */
        const int nth = gemm_acc_ref_threads(nt, nr_, K);
        const size_t rb = bq_row_floats(Bq, nr_);
        #pragma omp parallel num_threads(nth) if (nth > 1)
        {
            int64_t t0, t1;
            sk_split(nt, omp_get_thread_num(), omp_get_num_threads(), &t0, &t1);
            float *row = buf + (size_t)omp_get_thread_num() * rb;
            for (int64_t k = 0; k < K && t0 < t1; k++) {
                const float *b = bq_row(Bq, NULL, k, 0, nr_, row);
                for (int64_t t = t0; t < t1; t++) {
                    const float a = A[k * ak + t * at];
                    float *c = C + t * ldc;
                    for (int64_t r = 0; r < nr_; r++) c[r] += a * b[r];
                }
            }
        }
        s->used = mark;
        return SHRINK_OK;
    }
    const int mr = ks->mr, nr = ks->nr;
    const gemm_acc_plan pl = gemm_acc_plan_of(ks, nt, nr_, K, Bq);
    const int64_t npan = pl.npan, ntile = pl.ntile, pan_per = pl.pan_per;
    const int tg = pl.tg, pg = pl.pg;
    #pragma omp parallel num_threads(tg * pg)
    {
        const int id = omp_get_thread_num(), ti = id / pg, pi = id % pg;
        float *bp = buf + (size_t)id * pl.per;
        float *ap = bp + (size_t)pan_per * mr * GEMM_KC;
        float *rowbuf = ap + (size_t)nr * GEMM_KC;
        const int64_t j0 = ntile * ti / tg, j1 = ntile * (ti + 1) / tg;
        const int64_t p0 = pan_per * pi, p1 = p0 + pan_per < npan ? p0 + pan_per : npan;
        for (int64_t k0 = 0; k0 < K && p0 < p1; k0 += GEMM_KC) {
            const int64_t kc = K - k0 < GEMM_KC ? K - k0 : GEMM_KC;
            if (Bq) { /* a row at a time: this thread's columns, then into its panels */
                const int64_t c0 = p0 * mr, c1 = p1 * mr < nr_ ? p1 * mr : nr_;
                for (int64_t k = 0; k < kc; k++) {
                    const float *b = bq_row(Bq, deq, k0 + k, c0, c1, rowbuf);
                    for (int64_t p = p0; p < p1; p++) {
                        float *dk = bp + (size_t)(p - p0) * kc * mr + k * mr;
                        const int64_t r0 = p * mr, mrows = nr_ - r0 < mr ? nr_ - r0 : mr;
                        memcpy(dk, b + (r0 - c0), (size_t)mrows * sizeof(float));
                        for (int64_t i = mrows; i < mr; i++) dk[i] = 0.0f;
                    }
                }
            } else
                for (int64_t p = p0; p < p1; p++) {
                    float *d = bp + (size_t)(p - p0) * kc * mr;
                    const int64_t r0 = p * mr, mrows = nr_ - r0 < mr ? nr_ - r0 : mr;
                    for (int64_t k = 0; k < kc; k++) {
                        float *dk = d + k * mr;
                        memcpy(dk, Bm + (k0 + k) * bk + r0, (size_t)mrows * sizeof(float));
                        for (int64_t i = mrows; i < mr; i++) dk[i] = 0.0f;
                    }
                }
            for (int64_t j = j0; j < j1; j++) {
                const int64_t t0 = j * nr, tn = nt - t0 < nr ? nt - t0 : nr;
                if (ak == 1) /* A's rows are t's: the kernel set's own token packing */
                    ks->pack_x(A, at, nt, t0, k0, kc, ap);
                else
                    for (int64_t k = 0; k < kc; k++) {
                        const float *src = A + (k0 + k) * ak + t0 * at;
                        float *dk = ap + k * nr;
                        if (at == 1) memcpy(dk, src, (size_t)tn * sizeof(float));
                        else
                            for (int64_t t = 0; t < tn; t++) dk[t] = src[t * at];
                        for (int64_t t = tn; t < nr; t++) dk[t] = 0.0f;
                    }
                for (int64_t p = p0; p < p1; p++) {
                    const int64_t r0 = p * mr, mrows = nr_ - r0 < mr ? nr_ - r0 : mr;
                    ks->tile(kc, bp + (size_t)(p - p0) * kc * mr, ap, C + t0 * ldc + r0, ldc,
                             (int)tn, (int)mrows, 1);
                }
            }
        }
    }
    s->used = mark;
    return SHRINK_OK;
}

/* dbias[o] += sum_n dY[n, o] (threaded over column blocks). */
static void bias_backward(float *dbias, const float *dY, int N, int out) {
    const int cb = 64, nb = (out + cb - 1) / cb;
    #pragma omp parallel for schedule(static) if ((size_t)N * out > 65536)
    for (int b = 0; b < nb; b++) {
        const int o0 = b * cb, o1 = o0 + cb < out ? o0 + cb : out;
        float acc[64] = {0};
        for (int n = 0; n < N; n++)
            for (int o = o0; o < o1; o++) acc[o - o0] += dY[(size_t)n * out + o];
        for (int o = o0; o < o1; o++) dbias[o] += acc[o - o0];
    }
}

/* W as gemm_acc's B: f32 rows in place (NULL), or the stored matrix itself. */
static const sk_mat *stored_b(const sk_mat *W) {
    return W->dtype == SHRINK_DTYPE_F32 ? NULL : W;
}

/* dX += dY W; dW += dY^T X; dbias += sum_n dY. Any of dX, dW, dbias may be NULL; dW only for
 * an f32 W (a stored one is frozen). */
shrink_status sk_matmul_backward(float *dX, float *dW, float *dbias, const float *dY,
                                 const float *X, const sk_mat *W, int N, int in, int out,
                                 sk_scratch *s) {
    SHRINK_ASSERT(W->rows == out && W->cols == in && (!dW || W->dtype == SHRINK_DTYPE_F32));
    const sk_mat *Bq = stored_b(W);
    shrink_status st = SHRINK_OK;
    if (dX && (st = gemm_acc(dX, in, N, in, out, dY, 1, out, Bq ? NULL : W->data, in, Bq, s)))
        return st;
    if (dW && (st = gemm_acc(dW, in, out, in, N, dY, out, 1, X, in, NULL, s))) return st;
    if (dbias) bias_backward(dbias, dY, N, out);
    return SHRINK_OK;
}

/* The largest scratch of a linear layer's forward and backward products (W's data unused). */
static size_t linear_bytes(int N, const sk_mat *W) {
    size_t a = sk_matmul_f32x_scratch_bytes(sk_kernels(), W, N);
    size_t b = gemm_acc_bytes(N, W->cols, W->rows, stored_b(W));
    size_t c = W->dtype == SHRINK_DTYPE_F32 ? gemm_acc_bytes(W->rows, W->cols, N, NULL) : 0;
    a = a > b ? a : b;
    return a > c ? a : c;
}

/* ==== rotary position embedding ============================================================== */

/* Rotates every head of every row in place (q or k): pairs (i, i + hd/2) (rotate-half) or
 * (2i, 2i+1) (interleaved) by the angle of position n % T. Saves nothing: the rotation is
 * orthogonal, its backward is the inverse rotation. */
void sk_rope_forward(float *x, const float *cos_t, const float *sin_t, int N, int T, int nh, int hd,
                  sk_rope_layout layout) {
    const int half = hd / 2;
    const int stride = layout == SK_ROPE_HALF ? 1 : 2, off = layout == SK_ROPE_HALF ? half : 1;
    #pragma omp parallel for schedule(static) if ((size_t)N * nh * hd > 32768)
    for (int n = 0; n < N; n++) {
        const float *cs = cos_t + (size_t)(n % T) * half, *sn = sin_t + (size_t)(n % T) * half;
        for (int h = 0; h < nh; h++) {
            float *v = x + ((size_t)n * nh + h) * hd;
            for (int i = 0; i < half; i++) {
                int i0 = i * stride, i1 = i0 + off;
                float a = v[i0], b = v[i1];
                v[i0] = a * cs[i] - b * sn[i];
                v[i1] = b * cs[i] + a * sn[i];
            }
        }
    }
}

/* d(before) = R^T d(after): da = da' cos + db' sin, db = db' cos - da' sin. */
void sk_rope_backward(float *dx, const float *cos_t, const float *sin_t, int N, int T, int nh,
                   int hd, sk_rope_layout layout) {
    const int half = hd / 2;
    const int stride = layout == SK_ROPE_HALF ? 1 : 2, off = layout == SK_ROPE_HALF ? half : 1;
    #pragma omp parallel for schedule(static) if ((size_t)N * nh * hd > 32768)
    for (int n = 0; n < N; n++) {
        const float *cs = cos_t + (size_t)(n % T) * half, *sn = sin_t + (size_t)(n % T) * half;
        for (int h = 0; h < nh; h++) {
            float *v = dx + ((size_t)n * nh + h) * hd;
            for (int i = 0; i < half; i++) {
                int i0 = i * stride, i1 = i0 + off;
                float a = v[i0], b = v[i1];
                v[i0] = a * cs[i] + b * sn[i];
                v[i1] = b * cs[i] - a * sn[i];
            }
        }
    }
}

/* ==== causal attention (grouped-query heads) ================================================= */

/* For each sequence b, head h (kv head g = h / (H / KV)) and position t:
 *   p = softmax_j<=t (q[t] . k[j] / sqrt(hd)),  out[t] = sum_j p_j v[j].
 * Saves att (B, H, T, T): the probabilities (zeros above the diagonal) for the backward,
 * which also needs q, k, v (the caller keeps them). */
void sk_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                       int B, int T, int H, int KV, int hd) {
    const sk_kernel_set *ks = sk_kernels(); /* single-threaded SIMD dot / axpy */
    const int group = H / KV;
    const size_t qs = (size_t)H * hd, kvs = (size_t)KV * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    #pragma omp parallel for collapse(3) schedule(dynamic, 8) \
        if ((size_t)B * H * T * T * hd > 262144)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const int g = h / group;
                const float *qt = q + ((size_t)b * T + t) * qs + (size_t)h * hd;
                const float *kb = k + (size_t)b * T * kvs + (size_t)g * hd;
                const float *vb = v + (size_t)b * T * kvs + (size_t)g * hd;
                float *p = att + (((size_t)b * H + h) * T + t) * T;
                float mx = -INFINITY;
                for (int j = 0; j <= t; j++) {
                    p[j] = ks->dot_f32(qt, kb + (size_t)j * kvs, hd) * scale;
                    if (p[j] > mx) mx = p[j];
                }
                const float inv = 1.0f / ks->exp_sum_f32(p, t + 1, mx);
                for (int j = 0; j <= t; j++) p[j] *= inv;
                for (int j = t + 1; j < T; j++) p[j] = 0.0f;
                float *o = out + ((size_t)b * T + t) * qs + (size_t)h * hd;
                memset(o, 0, (size_t)hd * sizeof(float));
                for (int j = 0; j <= t; j++) ks->axpy_f32(hd, p[j], vb + (size_t)j * kvs, o);
            }
}

/* dv[j] += p_tj dout[t]; dp_tj = dout[t] . v[j]; ds = p (dp - sum_j p dp);
 * dq[t] = scale sum_j ds_tj k[j]; dk[j] += scale ds_tj q[t]. Threaded over (b, kv head) so
 * the query heads sharing a kv head add into its dk/dv one after the other. dq, dk, dv are
 * written. work: omp_get_max_threads() * T floats. */
void sk_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                        const float *k, const float *v, const float *att, int B, int T, int H,
                        int KV, int hd, float *work) {
    const sk_kernel_set *ks = sk_kernels();
    const int group = H / KV;
    const size_t qs = (size_t)H * hd, kvs = (size_t)KV * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    #pragma omp parallel for collapse(2) schedule(dynamic, 1) \
        if ((size_t)B * H * T * T * hd > 131072)
    for (int b = 0; b < B; b++)
        for (int g = 0; g < KV; g++) {
            float *ds = work + (size_t)omp_get_thread_num() * T;
            const float *kb = k + (size_t)b * T * kvs + (size_t)g * hd;
            const float *vb = v + (size_t)b * T * kvs + (size_t)g * hd;
            float *dkb = dk + (size_t)b * T * kvs + (size_t)g * hd;
            float *dvb = dv + (size_t)b * T * kvs + (size_t)g * hd;
            for (int j = 0; j < T; j++) {
                memset(dkb + (size_t)j * kvs, 0, (size_t)hd * sizeof(float));
                memset(dvb + (size_t)j * kvs, 0, (size_t)hd * sizeof(float));
            }
            for (int h = g * group; h < (g + 1) * group; h++)
                for (int t = 0; t < T; t++) {
                    const float *p = att + (((size_t)b * H + h) * T + t) * T;
                    const float *dot = dout + ((size_t)b * T + t) * qs + (size_t)h * hd;
                    const float *qt = q + ((size_t)b * T + t) * qs + (size_t)h * hd;
                    float *dqt = dq + ((size_t)b * T + t) * qs + (size_t)h * hd;
                    float dsum = 0.0f;
                    for (int j = 0; j <= t; j++) {
                        ds[j] = ks->dot_f32(dot, vb + (size_t)j * kvs, hd);
                        ks->axpy_f32(hd, p[j], dot, dvb + (size_t)j * kvs);
                        dsum += p[j] * ds[j];
                    }
                    memset(dqt, 0, (size_t)hd * sizeof(float));
                    for (int j = 0; j <= t; j++) {
                        const float d = p[j] * (ds[j] - dsum) * scale;
                        ks->axpy_f32(hd, d, kb + (size_t)j * kvs, dqt);
                        ks->axpy_f32(hd, d, qt, dkb + (size_t)j * kvs);
                    }
                }
        }
}

/* ==== feed-forward activations =============================================================== */

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

/* GELU, tanh approximation, through 0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u)) as decoder.c.
 * Saves nothing: the backward needs the input (the caller keeps it). */
void sk_gelu_forward(float *out, const float *inp, size_t n) {
    #pragma omp parallel for schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = x / (1.0f + expf(-2.0f * GELU_K * (x + 0.044715f * x * x * x)));
    }
}

/* d/dx 0.5 x (1 + tanh u) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx. dinp is written. */
void sk_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    #pragma omp parallel for schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_K * (x + 0.044715f * x * x * x);
        float th = tanhf(u);
        float du = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = dout[i] * (0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du);
    }
}

/* out = silu(gate) * up, silu(x) = x / (1 + exp(-x)). Saves nothing: the backward needs
 * gate and up (the caller keeps them). */
void sk_swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    #pragma omp parallel for schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* dgate = dout up silu'(gate), silu' = sig (1 + x (1 - sig)); dup = dout silu(gate).
 * Written. */
void sk_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, size_t n) {
    #pragma omp parallel for schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) {
        float x = gate[i], sg = 1.0f / (1.0f + expf(-x));
        dgate[i] = dout[i] * up[i] * sg * (1.0f + x * (1.0f - sg));
        dup[i] = dout[i] * x * sg;
    }
}

/* ==== residual =============================================================================== */

/* x += y. The backward of a residual is the identity: the gradient of the sum flows unchanged
 * into both branches (the caller passes the same buffer on). */
void sk_residual_forward(float *x, const float *y, size_t n) { add_to(x, y, n); }

/* ==== fused classifier: logits, softmax, cross-entropy, and their backward =================== */

size_t sk_classifier_work_floats(int D, int V, int chunk) { return (size_t)chunk * V + 64; }

size_t sk_layers_scratch_bytes(const sk_config *c, int N, int chunk, const shrink_dtype *dts,
                               int n_dts) {
    const int D = c->dim, F = c->ffn_dim, Q = c->n_heads * c->head_dim;
    const int K = c->n_kv_heads * c->head_dim, V = c->vocab_size;
    const int lin[5][2] = {{D, Q}, {D, K}, {Q, D}, {D, F}, {F, D}}; /* in, out */
    size_t need = 0;
    for (int d = -1; d < n_dts; d++) { /* f32, then each stored dtype of a frozen base */
        const shrink_dtype dt = d < 0 ? SHRINK_DTYPE_F32 : dts[d];
        for (int i = 0; i < 5; i++) {
            const sk_mat W = {.dtype = dt, .rows = lin[i][1], .cols = lin[i][0]};
            const size_t b = linear_bytes(N, &W);
            need = b > need ? b : need;
        }
        /* the classifier: chunks of at most `chunk` rows (and the last, shorter one) */
        const int last = N % chunk;
        const int rows[2] = {N < chunk ? N : chunk, last};
        const sk_mat H = {.dtype = dt, .rows = V, .cols = D};
        for (int i = 0; i < 2; i++) {
            if (rows[i] <= 0) continue;
            const size_t b = linear_bytes(rows[i], &H);
            need = b > need ? b : need;
        }
    }
    return need;
}

/* For rows in chunks of `chunk`: logits (c, V) = X head^T; loss += logsumexp - logit[target]
 * (in double); then, when dX or dhead is wanted, the logits become scale * (softmax - onehot)
 * in place and go through the head's backward at once (dX += dlogits head,
 * dhead += dlogits^T X). Only one chunk of logits exists at a time; nothing is saved. */
shrink_status sk_classifier_forward_backward(double *loss_out, float *dX, float *dhead,
                                             const float *X, const sk_mat *head,
                                             const int32_t *targets, int N, int D, int V,
                                             float scale, float *work, int chunk,
                                             sk_scratch *scratch) {
    shrink_status st;
    const sk_kernel_set *ks = sk_kernels();
    float *logits = work; /* (chunk, V) */
    SHRINK_ASSERT(head->rows == V && head->cols == D &&
                  (!dhead || head->dtype == SHRINK_DTYPE_F32));
    const sk_mat *Hq = stored_b(head);
    double loss = 0.0;
    for (int n0 = 0; n0 < N; n0 += chunk) {
        const int c = N - n0 < chunk ? N - n0 : chunk;
        if ((st = sk_matmul_f32x(head, X + (size_t)n0 * D, c, logits, V, scratch))) return st;
        double part = 0.0;
        #pragma omp parallel for schedule(static) reduction(+ : part) if (c > 1)
        for (int r = 0; r < c; r++) {
            float *l = logits + (size_t)r * V;
            const int tgt = targets[n0 + r];
            const float lt = l[tgt];
            float mx = -INFINITY;
            for (int i = 0; i < V; i++) mx = l[i] > mx ? l[i] : mx;
            const float s = ks->exp_sum_f32(l, V, mx); /* l[i] = exp(l[i] - mx) */
            part += (double)mx + log((double)s) - (double)lt;
            if (dX || dhead) {
                const float k = scale / s;
                for (int i = 0; i < V; i++) l[i] *= k;
                l[tgt] -= scale;
            }
        }
        loss += part;
        const float *xc = X + (size_t)n0 * D;
        if (dX && (st = gemm_acc(dX + (size_t)n0 * D, D, c, D, V, logits, 1, V,
                                 Hq ? NULL : head->data, D, Hq, scratch)))
            return st;
        if (dhead && (st = gemm_acc(dhead, D, V, D, c, logits, V, 1, xc, D, NULL, scratch)))
            return st;
    }
    *loss_out = loss;
    return SHRINK_OK;
}
