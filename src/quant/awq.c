/*
 * awq.c - AWQ and SmoothQuant scales, folded into the preceding norm or linear (awq.h).
 *
 * Calibration: the model runs over the first calib_tokens tokens of the text in windows of
 * calib_ctx tokens from position 0 (as w8a8_static's calibration), with an observer on the
 * decoder (sk_context_set_observer) that accumulates, for the four inputs of each layer
 * (attn_norm output -> q/k/v; attention output -> o; ffn_norm output -> gate/up; the
 * up * act(gate) product -> down): sum |x| and max |x| per column and, for AWQ, X^T X (one
 * f32 Gram per observed piece by sk_matmul, added in double). The pass is the layer-by-layer
 * one (src/model/layerwise.h, observe only): layer l runs over the kept calibration stream,
 * then its searches run (fold_after) while only its X^T X (D^2 or F^2 doubles per input) is
 * held, and its mapped pages are dropped.
 *
 * AWQ per layer, on the original weights read as f32 from the transform's source:
 *   q/k/v (or GPT-2's qkv) after attn_norm, gate/up after ffn_norm: s searched
 *     (sk_awq_search), W's columns times s, the norm's weight (and bias) divided by s;
 *   o after v: v's rows (and bias) divided by s; with grouped-query attention the query
 *     heads of one kv head read the same v rows, so their scales are tied (s from the mean
 *     of their mean |x|; GPT-2's fused qkv has no GQA);
 *   down after up * silu(gate) (SwiGLU only: GELU(up) is not linear in up): up's rows divided.
 * Then every matrix but q and k (whose rounding the softmax sees through RoPE: AutoAWQ skips
 * them too) gets the clipping search (sk_awq_clip) on its scaled weights with the scaled input
 * statistics diag(1/s) H diag(1/s). Losses use H = X^T X / T, so a search is exact in the
 * calibration tokens and costs no pass over them.
 *
 * SmoothQuant per layer (q/k/v and gate/up only, the inputs that follow a norm): s_j =
 * max|x_j|^a / max|w_j|^(1-a) (w over the rows of all matrices of the input; 1 where either
 * is 0), folded as AWQ's; act_absmax gets max_j max|x_j| / s_j for w8a8_static.
 */
#include "awq.h"
#include "quant.h"

#include "../model/model.h"
#include "../model/layerwise.h"
#include "../kernels/kernels.h"

#include <math.h>
#include <omp.h>

#define CLIP_STEPS 10                      /* AutoAWQ: max_shrink 0.5 over a grid of 20 */

enum { IN_ATTN, IN_O, IN_FFN, IN_DOWN, IN_COUNT };

/* ==== small helpers ====================================================================== */

void sk_wfold_free(sk_wfold *f, int64_t n) {
    if (!f) return;
    for (int64_t i = 0; i < n; i++) {
        sk_free(f[i].mul);
        sk_free(f[i].rdiv);
        sk_free(f[i].clip);
    }
    sk_free(f);
}

void sk_wfold_apply(const sk_wfold *f, int64_t row0, int64_t k, float *rows, int64_t cols) {
    if (!f) return;
    const int64_t ng = f->clip && f->group > 0 ? (cols + f->group - 1) / f->group : 0;
    for (int64_t i = 0; i < k; i++) {
        float *r = rows + i * cols;
        if (f->mul)
            for (int64_t c = 0; c < cols; c++) r[c] *= f->mul[c];
        if (f->rdiv) {
            const float d = f->rdiv[row0 + i];
            for (int64_t c = 0; c < cols; c++) r[c] /= d;
        }
        if (f->clip && row0 + i >= f->clip_row0) {
            const float *cl = f->clip + (row0 + i) * ng;
            for (int64_t c = 0; c < cols; c++) {
                const float m = cl[c / f->group];
                r[c] = r[c] > m ? m : r[c] < -m ? -m : r[c];
            }
        }
    }
}

int64_t sk_awq_group(shrink_dtype dt, int64_t cols) {
    const sk_dtype_traits *d = sk_dtype(dt);
    if (d->row_head == 0 && d->block > 1 && cols % (int64_t)d->block == 0) return (int64_t)d->block;
    return cols;
}

/* dst = dequant(quant(src)) of n values in dtype dt (buf: sk_dtype_row_bytes(dt, n) bytes). */
static void round_trip(shrink_dtype dt, int exact, const float *src, int64_t n, uint8_t *buf,
                       float *dst) {
    const sk_dtype_traits *d = sk_dtype(dt);
    if (!exact && d->quantize) {
        sk_qparams qp;
        memset(&qp, 0, sizeof qp);
        d->quantize(src, buf, n, &qp);
    } else {
        d->from_f32(src, buf, n);
    }
    d->to_f32(buf, dst, n);
}

typedef struct rdbuf {
    float  *w;
    int64_t cols;
} rdbuf;

static shrink_status read_chunk(void *user, int tid, int64_t r, int64_t k, float *rows) {
    (void)tid;
    rdbuf *b = user;
    memcpy(b->w + r * b->cols, rows, (size_t)(k * b->cols) * sizeof(float));
    return SHRINK_OK;
}

/* Tensor x of xf as f32 (rows x cols; a vector: rows values). */
static shrink_status read_f32(sk_xf *xf, const sk_xf_tensor *x, float **out) {
    const int vec = x->t.n_dims == 1;
    const int64_t cols = vec ? x->t.rows : x->t.cols, rows = vec ? 1 : x->t.rows;
    float *w = sk_aligned_alloc(64, (size_t)(rows * cols) * sizeof *w);
    if (!w) return sk_error(SHRINK_ERR_NOMEM, "quantize: out of memory for '%s'", x->name);
    rdbuf b = {w, cols};
    shrink_status st = sk_xf_map_rows(xf, x, 0, rows, read_chunk, &b);
    if (st) {
        sk_free(w);
        return st;
    }
    *out = w;
    return SHRINK_OK;
}

/* The tensor of role r in layer l, or -1. */
static int64_t find_role(const sk_xf *xf, int l, sk_role r) {
    for (int64_t i = 0; i < xf->n; i++)
        if (xf->ts[i].t.role == r && xf->ts[i].t.layer == l) return i;
    return -1;
}

/* ==== the searches ======================================================================= */

shrink_status sk_awq_search(const float *const *W, const int64_t *rows, const shrink_dtype *dt,
                            int n_lin, int64_t cols, const double *xmean, const float *H,
                            int grid, int exact, float *s, double *alpha, double *losses) {
    int64_t R = 0;
    size_t qbytes = 0;
    for (int i = 0; i < n_lin; i++) {
        R += rows[i];
        size_t b = (size_t)sk_dtype_row_bytes(dt[i], cols);
        if (b > qbytes) qbytes = b;
    }
    const int nt = omp_get_max_threads();
    const sk_mat Hm = {SHRINK_DTYPE_F32, cols, cols, H, NULL};
    float *D = sk_aligned_alloc(64, (size_t)(R * cols) * sizeof(float));
    float *Y = sk_aligned_alloc(64, (size_t)(R * cols) * sizeof(float));
    float *cs = sk_malloc((size_t)cols * sizeof(float));
    float *deq = sk_malloc((size_t)nt * (size_t)cols * 2 * sizeof(float));
    uint8_t *qb = sk_malloc((size_t)nt * qbytes);
    sk_scratch sc = {0};
    shrink_status st = SHRINK_OK;
    if (!D || !Y || !cs || !deq || !qb) {
        st = sk_error(SHRINK_ERR_NOMEM, "awq: out of memory for a %lld x %lld search",
                      (long long)R, (long long)cols);
        goto out;
    }
    if ((st = sk_scratch_reserve(&sc, sk_matmul_scratch_bytes(sk_kernels(), &Hm, R)))) goto out;
    double best = INFINITY;
    *alpha = 0.0;
    for (int64_t j = 0; j < cols; j++) s[j] = 1.0f;
    for (int a = 0; a <= grid; a++) {
        const double al = grid > 0 ? (double)a / grid : 0.0;
        double mx = 0.0, mn = INFINITY;
        for (int64_t j = 0; j < cols; j++) {
            double v = pow(xmean[j], al);
            if (!(v >= 1e-4)) v = 1e-4;
            cs[j] = (float)v;
            if (cs[j] > mx) mx = cs[j];
            if (cs[j] < mn) mn = cs[j];
        }
        const float nrm = (float)sqrt(mx * mn);
        for (int64_t j = 0; j < cols; j++) cs[j] /= nrm;
        /* D = W - Q(W diag(s)) diag(s)^-1, all matrices stacked */
        int64_t r0 = 0;
        for (int i = 0; i < n_lin; i++) {
            const float *Wi = W[i];
            const shrink_dtype di = dt[i];
            float *Di = D + r0 * cols;
            #pragma omp parallel for schedule(dynamic, 4) if (rows[i] * cols > 16384)
            for (int64_t r = 0; r < rows[i]; r++) {
                const int tid = omp_get_thread_num();
                float *ws = deq + (size_t)tid * (size_t)cols * 2, *qd = ws + cols;
                const float *w = Wi + r * cols;
                for (int64_t j = 0; j < cols; j++) ws[j] = w[j] * cs[j];
                round_trip(di, exact, ws, cols, qb + (size_t)tid * qbytes, qd);
                for (int64_t j = 0; j < cols; j++) Di[r * cols + j] = w[j] - qd[j] / cs[j];
            }
            r0 += rows[i];
        }
        sc.used = 0;
        if ((st = sk_matmul(&Hm, D, R, Y, cols, &sc))) goto out;
        double loss = 0.0;
        #pragma omp parallel for reduction(+ : loss) schedule(static) if (R * cols > 65536)
        for (int64_t r = 0; r < R; r++) {
            double e = 0.0;
            for (int64_t j = 0; j < cols; j++) e += (double)D[r * cols + j] * Y[r * cols + j];
            loss += e;
        }
        if (losses) losses[a] = loss;
        if (loss < best) {
            best = loss;
            *alpha = al;
            memcpy(s, cs, (size_t)cols * sizeof(float));
        }
    }
out:
    sk_scratch_free(&sc);
    sk_free(D);
    sk_free(Y);
    sk_free(cs);
    sk_free(deq);
    sk_free(qb);
    return st;
}

shrink_status sk_awq_clip(const float *W, int64_t rows, int64_t cols, int64_t row0,
                          shrink_dtype dt, int exact, const float *H, int64_t group, float *clip,
                          int64_t *n_lowered) {
    const int64_t ng = (cols + group - 1) / group;
    const int nt = omp_get_max_threads();
    const size_t qbytes = (size_t)sk_dtype_row_bytes(dt, group);
    float *buf = sk_malloc((size_t)nt * (size_t)group * 4 * sizeof(float));
    uint8_t *qb = sk_malloc((size_t)nt * qbytes);
    if (!buf || !qb) {
        sk_free(buf);
        sk_free(qb);
        return sk_error(SHRINK_ERR_NOMEM, "awq: out of memory for the clipping search");
    }
    int64_t lowered = 0;
    for (int64_t i = 0; i < row0 * ng; i++) clip[i] = INFINITY;
    #pragma omp parallel for schedule(dynamic, 1) reduction(+ : lowered)
    for (int64_t r = row0; r < rows; r++) {
        const int tid = omp_get_thread_num();
        float *wc = buf + (size_t)tid * (size_t)group * 4, *qd = wc + group, *d = qd + group,
              *y = d + group;
        uint8_t *q = qb + (size_t)tid * qbytes;
        for (int64_t g = 0; g < ng; g++) {
            const int64_t c0 = g * group, n = cols - c0 < group ? cols - c0 : group;
            const float *w = W + r * cols + c0;
            float m0 = 0.0f;
            for (int64_t j = 0; j < n; j++) m0 = fabsf(w[j]) > m0 ? fabsf(w[j]) : m0;
            float *cl = &clip[r * ng + g];
            *cl = INFINITY;
            if (m0 == 0.0f || n != group) continue;
            double best = INFINITY;
            int bi = 0;
            for (int i = 0; i < CLIP_STEPS; i++) {
                const float m = m0 * (1.0f - (float)i / 20.0f);
                for (int64_t j = 0; j < n; j++) wc[j] = w[j] > m ? m : w[j] < -m ? -m : w[j];
                round_trip(dt, exact, wc, n, q, qd);
                for (int64_t j = 0; j < n; j++) {
                    d[j] = qd[j] - w[j];
                    y[j] = 0.0f;
                }
                /* y = H_gg d, column by column (H symmetric): vectorizes without reordering */
                for (int64_t a = 0; a < n; a++) {
                    const float *ha = H + (c0 + a) * cols + c0;
                    const float da = d[a];
                    for (int64_t b = 0; b < n; b++) y[b] += ha[b] * da;
                }
                double e = 0.0;
                for (int64_t a = 0; a < n; a++) e += (double)y[a] * d[a];
                if (e < best) {
                    best = e;
                    bi = i;
                }
            }
            if (bi > 0) {
                *cl = m0 * (1.0f - (float)bi / 20.0f);
                lowered++;
            }
        }
    }
    sk_free(buf);
    sk_free(qb);
    if (n_lowered) *n_lowered += lowered;
    return SHRINK_OK;
}

/* ==== calibration statistics ============================================================= */

typedef struct fstats {
    int      L, l0, l1;        /* layers; the ones observed in this pass */
    int      want_h;
    int64_t  cols[IN_COUNT];
    double  *sabs[IN_COUNT];   /* (L * cols) sum |x| */
    float   *amax[IN_COUNT];   /* (L * cols) max |x| */
    double  *H[IN_COUNT];      /* ((l1 - l0) * cols * cols) sum x x^T, allocated per pass */
    float   *xt, *g;           /* one input transposed (cols x T), one Gram (cols x cols) */
    int64_t  t_max;
    sk_scratch sc;
    shrink_status err;
} fstats;

static int input_of(sk_linear w) {
    switch (w) {
    case SK_LIN_Q: return IN_ATTN;
    case SK_LIN_O: return IN_O;
    case SK_LIN_UP: return IN_FFN;
    case SK_LIN_DOWN: return IN_DOWN;
    default: return -1; /* K, V, gate: Q's and up's input again */
    }
}

static void fstats_observe(void *user, int layer, sk_linear which, const float *X, int64_t T,
                           int64_t cols) {
    fstats *f = user;
    const int in = input_of(which);
    if (in < 0 || layer < f->l0 || layer >= f->l1 || cols != f->cols[in] || f->err) return;
    double *sa = f->sabs[in] + (int64_t)layer * cols;
    float *am = f->amax[in] + (int64_t)layer * cols;
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < cols; j++) {
            const float v = fabsf(X[t * cols + j]);
            sa[j] += v;
            if (v > am[j]) am[j] = v;
        }
    if (!f->want_h) return;
    double *H = f->H[in] + (int64_t)(layer - f->l0) * cols * cols;
    for (int64_t t0 = 0; t0 < T; t0 += f->t_max) {
        const int64_t n = T - t0 < f->t_max ? T - t0 : f->t_max;
        for (int64_t t = 0; t < n; t++)
            for (int64_t j = 0; j < cols; j++) f->xt[j * n + t] = X[(t0 + t) * cols + j];
        const sk_mat Xm = {SHRINK_DTYPE_F32, cols, n, f->xt, NULL};
        f->sc.used = 0;
        shrink_status st = sk_matmul(&Xm, f->xt, cols, f->g, cols, &f->sc);
        if (st) {
            f->err = st;
            return;
        }
        #pragma omp parallel for schedule(static) if (cols * cols > 65536)
        for (int64_t i = 0; i < cols * cols; i++) H[i] += f->g[i];
    }
}

static void fstats_free(fstats *f) {
    for (int i = 0; i < IN_COUNT; i++) {
        sk_free(f->sabs[i]);
        sk_free(f->amax[i]);
        sk_free(f->H[i]);
    }
    sk_free(f->xt);
    sk_free(f->g);
    sk_scratch_free(&f->sc);
}

/* ==== the folds of one layer ============================================================= */

typedef struct fjob {
    sk_xf               *xf;
    const sk_fold_params *p;
    const sk_config      *cfg;
    sk_wfold             *folds;
    fstats                st;
    int64_t               n_tokens;
    sk_fold_info         *info;
    double                alpha_sum;
    int64_t               want;   /* calibration tokens (progress units per layer) */
} fjob;

/* fold[i].mul (n values) = v (or 1 / v with inv), allocating it; i < 0: nothing. A second
 * call multiplies. */
static shrink_status fold_mul(fjob *j, int64_t i, const float *v, int64_t off, int64_t n,
                              int64_t len, int inv) {
    if (i < 0) return SHRINK_OK;
    sk_wfold *f = &j->folds[i];
    if (!f->mul) {
        f->mul = sk_malloc((size_t)len * sizeof(float));
        if (!f->mul) return sk_error(SHRINK_ERR_NOMEM, "quantize: out of memory");
        for (int64_t k = 0; k < len; k++) f->mul[k] = 1.0f;
    }
    for (int64_t k = 0; k < n; k++) f->mul[off + k] *= inv ? 1.0f / v[k] : v[k];
    return SHRINK_OK;
}

static shrink_status fold_rdiv(fjob *j, int64_t i, const float *v, int64_t off, int64_t n,
                               int64_t len) {
    if (i < 0) return SHRINK_OK;
    sk_wfold *f = &j->folds[i];
    if (!f->rdiv) {
        f->rdiv = sk_malloc((size_t)len * sizeof(float));
        if (!f->rdiv) return sk_error(SHRINK_ERR_NOMEM, "quantize: out of memory");
        for (int64_t k = 0; k < len; k++) f->rdiv[k] = 1.0f;
    }
    for (int64_t k = 0; k < n; k++) f->rdiv[off + k] *= v[k];
    return SHRINK_OK;
}

/* The matrices of input `in` in layer l (tensor indices into idx, at most 3), and, when the
 * input's scale can be folded, where to: norm weight / bias (ATTN, FFN), or the producing
 * matrix's rows [prow0, prow0 + cols) and its bias (O: v; DOWN: up). Returns the count; 0
 * when the input cannot be folded. */
typedef struct fgroup {
    int      n;
    int      rep;                 /* O: query heads per kv head (their scales are tied) */
    int64_t  hd;                  /* O: head_dim */
    int64_t  idx[3];
    int64_t  norm, norm_b;        /* vectors divided by s */
    int64_t  prod, prod_b, prow0; /* matrix whose rows [prow0, +cols) are divided, its bias */
} fgroup;

static int group_of(const fjob *j, int l, int in, fgroup *g) {
    const sk_xf *xf = j->xf;
    const sk_config *c = j->cfg;
    memset(g, 0, sizeof *g);
    g->norm = g->norm_b = g->prod = g->prod_b = -1;
    int64_t t;
    static const sk_role attn[4] = {SK_ROLE_WQKV, SK_ROLE_WQ, SK_ROLE_WK, SK_ROLE_WV};
    static const sk_role ffn[2] = {SK_ROLE_W_GATE, SK_ROLE_W_UP};
    const int at = in == IN_ATTN;
    switch (in) {
    case IN_ATTN: case IN_FFN:
        /* the matrices after a norm (GPT-2's qkv, else q, k, v; gate, up) */
        for (int k = 0; k < (at ? 4 : 2) && !(at && k == 1 && g->n); k++)
            if ((t = find_role(xf, l, at ? attn[k] : ffn[k])) >= 0) g->idx[g->n++] = t;
        g->norm = find_role(xf, l, at ? SK_ROLE_ATTN_NORM : SK_ROLE_FFN_NORM);
        g->norm_b = find_role(xf, l, at ? SK_ROLE_ATTN_NORM_B : SK_ROLE_FFN_NORM_B);
        if (g->norm < 0) g->n = 0;
        break;
    case IN_O:
        if (c->n_kv_heads < 1 || c->n_heads % c->n_kv_heads ||
            (t = find_role(xf, l, SK_ROLE_WO)) < 0)
            return 0;
        g->idx[g->n++] = t;
        g->rep = c->n_heads / c->n_kv_heads;
        g->hd = c->head_dim;
        if ((g->prod = find_role(xf, l, SK_ROLE_WQKV)) >= 0) {
            if (g->rep != 1) g->n = 0;
            g->prow0 = 2 * (int64_t)c->n_heads * c->head_dim;
            g->prod_b = find_role(xf, l, SK_ROLE_BQKV);
        } else {
            g->prod = find_role(xf, l, SK_ROLE_WV);
            g->prod_b = find_role(xf, l, SK_ROLE_BV);
        }
        if (g->prod < 0) g->n = 0;
        break;
    case IN_DOWN:
        if (c->arch->ffn != SK_FFN_SWIGLU || (t = find_role(xf, l, SK_ROLE_W_DOWN)) < 0) return 0;
        g->idx[g->n++] = t;
        g->prod = find_role(xf, l, SK_ROLE_W_UP);
        g->prod_b = find_role(xf, l, SK_ROLE_B_UP);
        if (g->prod < 0) g->n = 0;
        break;
    default: break;
    }
    return g->n;
}

/* Folds s (cols) of group g into the fold table. With grouped-query attention (O, rep > 1)
 * query head h reads kv head h / rep: s is equal over the query heads of a kv head, and v's
 * rows take the first one's. */
static shrink_status fold_group(fjob *j, const fgroup *g, const float *s, int64_t cols) {
    const sk_xf *xf = j->xf;
    shrink_status st = SHRINK_OK;
    for (int k = 0; k < g->n && !st; k++) st = fold_mul(j, g->idx[k], s, 0, cols, cols, 0);
    if (!st) st = fold_mul(j, g->norm, s, 0, cols, cols, 1);
    if (!st) st = fold_mul(j, g->norm_b, s, 0, cols, cols, 1);
    const float *sp = s;
    float *sv = NULL;
    int64_t pc = cols;
    if (g->rep > 1) {
        pc = cols / g->rep;
        sv = sk_malloc((size_t)pc * sizeof *sv);
        if (!sv) return sk_error(SHRINK_ERR_NOMEM, "quantize: out of memory");
        for (int64_t kv = 0; kv < pc / g->hd; kv++)
            for (int64_t d = 0; d < g->hd; d++)
                sv[kv * g->hd + d] = s[(kv * g->rep) * g->hd + d];
        sp = sv;
    }
    if (!st && g->prod >= 0)
        st = fold_rdiv(j, g->prod, sp, g->prow0, pc, xf->ts[g->prod].t.rows);
    if (!st && g->prod_b >= 0)
        st = fold_mul(j, g->prod_b, sp, g->prow0, pc, xf->ts[g->prod_b].t.rows, 1);
    sk_free(sv);
    return st;
}

/* H of input `in` in layer l as f32 X^T X / T into out (cols x cols), optionally scaled
 * by 1 / (s_a s_b). */
static void gram_f32(const fjob *j, int l, int in, const float *s, float *out) {
    const int64_t cols = j->st.cols[in];
    const double *H = j->st.H[in] + (int64_t)(l - j->st.l0) * cols * cols;
    const double inv = 1.0 / (double)j->n_tokens;
    for (int64_t a = 0; a < cols; a++)
        for (int64_t b = 0; b < cols; b++) {
            double v = H[a * cols + b] * inv;
            if (s) v /= (double)s[a] * (double)s[b];
            out[a * cols + b] = (float)v;
        }
}

static shrink_status awq_layer(fjob *j, int l) {
    sk_xf *xf = j->xf;
    const int nin = IN_COUNT;
    float *W[IN_COUNT][3] = {{0}};
    float *S[IN_COUNT] = {0};
    float *Hf = NULL;
    double *xm = NULL;
    fgroup G[IN_COUNT];
    shrink_status st = SHRINK_OK;
    int64_t maxc = 0;
    for (int in = 0; in < nin; in++)
        if (j->st.cols[in] > maxc) maxc = j->st.cols[in];
    Hf = sk_malloc((size_t)(maxc * maxc) * sizeof(float));
    xm = sk_malloc((size_t)maxc * sizeof(double));
    if (!Hf || !xm) {
        st = sk_error(SHRINK_ERR_NOMEM, "quantize: out of memory for AWQ");
        goto out;
    }
    /* the scales, from the original weights */
    for (int in = 0; in < nin && !st; in++) {
        if (!group_of(j, l, in, &G[in])) continue;
        const int64_t cols = j->st.cols[in];
        int64_t rows[3];
        shrink_dtype dt[3];
        for (int k = 0; k < G[in].n && !st; k++) {
            const sk_xf_tensor *x = &xf->ts[G[in].idx[k]];
            if (x->t.cols != cols) {
                st = sk_error(SHRINK_ERR_FORMAT, "quantize: '%s' has rows of %lld, its input "
                              "%lld", x->name, (long long)x->t.cols, (long long)cols);
                break;
            }
            rows[k] = x->t.rows;
            dt[k] = x->dtype;
            st = read_f32(xf, x, &W[in][k]);
        }
        if (st) break;
        const double *sa = j->st.sabs[in] + (int64_t)l * cols;
        for (int64_t c = 0; c < cols; c++) xm[c] = sa[c] / (double)j->n_tokens;
        if (G[in].rep > 1) /* tied over the query heads of a kv head: their mean */
            for (int64_t kv = 0; kv < cols / G[in].hd / G[in].rep; kv++)
                for (int64_t d = 0; d < G[in].hd; d++) {
                    double m = 0.0;
                    for (int r = 0; r < G[in].rep; r++)
                        m += xm[(kv * G[in].rep + r) * G[in].hd + d];
                    for (int r = 0; r < G[in].rep; r++)
                        xm[(kv * G[in].rep + r) * G[in].hd + d] = m / G[in].rep;
                }
        gram_f32(j, l, in, NULL, Hf);
        S[in] = sk_malloc((size_t)cols * sizeof(float));
        if (!S[in]) {
            st = sk_error(SHRINK_ERR_NOMEM, "quantize: out of memory for AWQ");
            break;
        }
        double al;
        st = sk_awq_search((const float *const *)W[in], rows, dt, G[in].n, cols, xm, Hf,
                           j->p->grid > 0 ? j->p->grid : 20, j->p->exact, S[in], &al, NULL);
        if (st) break;
        j->alpha_sum += al;
        j->info->n_inputs++;
        st = fold_group(j, &G[in], S[in], cols);
    }
    if (st || !j->p->clip) goto out;
    /* clipping, on the weights as they will be quantized */
    for (int in = 0; in < nin && !st; in++) {
        if (!S[in]) continue;
        const int64_t cols = j->st.cols[in];
        gram_f32(j, l, in, S[in], Hf);
        for (int k = 0; k < G[in].n && !st; k++) {
            const int64_t i = G[in].idx[k];
            const sk_xf_tensor *x = &xf->ts[i];
            const int role = x->t.role;
            if (role == SK_ROLE_WQ || role == SK_ROLE_WK) continue;
            sk_wfold *f = &j->folds[i];
            f->clip_row0 = role == SK_ROLE_WQKV ? 2 * (int64_t)j->cfg->n_heads * j->cfg->head_dim
                                                : 0;
            f->group = sk_awq_group(x->dtype, cols);
            const int64_t ng = (cols + f->group - 1) / f->group;
            f->clip = sk_malloc((size_t)(x->t.rows * ng) * sizeof(float));
            if (!f->clip) {
                st = sk_error(SHRINK_ERR_NOMEM, "quantize: out of memory for AWQ");
                break;
            }
            /* the scaled weights: apply the fold without its (unset) clip */
            float *cl = f->clip;
            f->clip = NULL;
            sk_wfold_apply(f, 0, x->t.rows, W[in][k], cols);
            f->clip = cl;
            st = sk_awq_clip(W[in][k], x->t.rows, cols, f->clip_row0, x->dtype, j->p->exact,
                             Hf, f->group, f->clip, &j->info->n_clipped);
        }
    }
out:
    for (int in = 0; in < nin; in++) {
        for (int k = 0; k < 3; k++) sk_free(W[in][k]);
        sk_free(S[in]);
    }
    sk_free(Hf);
    sk_free(xm);
    return st;
}

static shrink_status smooth_layer(fjob *j, int l) {
    static const int ins[2] = {IN_ATTN, IN_FFN};
    shrink_status st = SHRINK_OK;
    for (int q = 0; q < 2 && !st; q++) {
        const int in = ins[q];
        fgroup g;
        if (!group_of(j, l, in, &g)) continue;
        const int64_t cols = j->st.cols[in];
        float *wmax = sk_calloc((size_t)cols, sizeof(float));
        float *s = sk_malloc((size_t)cols * sizeof(float));
        if (!wmax || !s) st = sk_error(SHRINK_ERR_NOMEM, "quantize: out of memory");
        for (int k = 0; k < g.n && !st; k++) {
            const sk_xf_tensor *x = &j->xf->ts[g.idx[k]];
            float *w = NULL;
            if ((st = read_f32(j->xf, x, &w))) break;
            for (int64_t r = 0; r < x->t.rows; r++)
                for (int64_t c = 0; c < cols; c++) {
                    const float v = fabsf(w[r * cols + c]);
                    if (v > wmax[c]) wmax[c] = v;
                }
            sk_free(w);
        }
        if (!st) {
            const float *am = j->st.amax[in] + (int64_t)l * cols;
            float after = 0.0f;
            for (int64_t c = 0; c < cols; c++) {
                double v = am[c] > 0.0f && wmax[c] > 0.0f
                               ? pow(am[c], j->p->alpha) / pow(wmax[c], 1.0 - j->p->alpha)
                               : 1.0;
                if (!isfinite(v)) v = 1.0;
                else if (v < 1e-5) v = 1e-5;
                s[c] = (float)v;
                if (am[c] / s[c] > after) after = am[c] / s[c];
            }
            j->info->act_absmax[(int64_t)l * 2 + q] = after;
            j->info->n_inputs++;
            st = fold_group(j, &g, s, cols);
        }
        sk_free(wmax);
        sk_free(s);
    }
    return st;
}

/* The observer of the layer-by-layer pass (user: the fjob). */
static void fold_observe(void *user, int layer, sk_linear which, const float *X, int64_t T,
                         int64_t cols) {
    fjob *j = user;
    fstats_observe(&j->st, layer, which, X, T, cols);
}

/* Layer l observed: its searches, then the statistics ready for layer l + 1. */
static shrink_status fold_after(void *user, int l) {
    fjob *j = user;
    fstats *f = &j->st;
    const sk_fold_params *p = j->p;
    if (f->err) return f->err;
    shrink_status st = p->kind == SK_FOLD_AWQ ? awq_layer(j, l) : smooth_layer(j, l);
    if (p->progress) p->progress(p->user, (int64_t)(l + 1) * j->want, (int64_t)f->L * j->want);
    f->l0 = l + 1;
    f->l1 = l + 2;
    for (int i = 0; i < IN_COUNT && f->want_h; i++)
        memset(f->H[i], 0, (size_t)(f->cols[i] * f->cols[i]) * sizeof(double));
    return st;
}

/* ==== the driver ========================================================================= */

shrink_status sk_fold_compute(sk_xf *xf, const char *in, const sk_fold_params *p,
                              sk_wfold **out, sk_fold_info *info) {
    *out = NULL;
    memset(info, 0, sizeof *info);
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = p->tokenizer_path;
    shrink_model *m = NULL;
    int32_t *ids = NULL;
    fjob j;
    memset(&j, 0, sizeof j);
    j.xf = xf;
    j.p = p;
    j.info = info;
    j.folds = sk_calloc((size_t)xf->n, sizeof *j.folds);
    if (!j.folds) return sk_error(SHRINK_ERR_NOMEM, "quantize: out of memory");
    shrink_status st = shrink_model_load(&m, in, &lp);
    if (st) goto out;
    const sk_config *cfg = &m->cfg;
    j.cfg = &xf->base.cfg;
    const int L = cfg->n_layers;
    const int64_t want = p->calib_tokens > 0 ? p->calib_tokens : 4096;
    int64_t n_calib = 0;
    if ((st = sk_calib_tokens(m, p->calib_path, want, "--calib-tokens", &ids, &n_calib)))
        goto out;
    j.n_tokens = want;
    int32_t n_ctx = p->calib_ctx > 0 ? p->calib_ctx : 512;
    if (n_ctx > cfg->max_seq_len) n_ctx = cfg->max_seq_len;
    const int32_t piece = n_ctx < 256 ? n_ctx : 256;
    fstats *f = &j.st;
    f->L = L;
    f->want_h = p->kind == SK_FOLD_AWQ;
    f->cols[IN_ATTN] = cfg->dim;
    f->cols[IN_O] = (int64_t)cfg->n_heads * cfg->head_dim;
    f->cols[IN_FFN] = cfg->dim;
    f->cols[IN_DOWN] = cfg->ffn_dim;
    f->t_max = piece;
    int64_t maxc = 0;
    for (int i = 0; i < IN_COUNT; i++) {
        f->sabs[i] = sk_calloc((size_t)(L * f->cols[i]), sizeof(double));
        f->amax[i] = sk_calloc((size_t)(L * f->cols[i]), sizeof(float));
        if (!f->sabs[i] || !f->amax[i]) {
            st = sk_error(SHRINK_ERR_NOMEM, "quantize: out of memory for calibration");
            goto out;
        }
        if (f->cols[i] > maxc) maxc = f->cols[i];
    }
    const int per_pass = 1; /* the layer-by-layer pass: one layer's X^T X at a time */
    if (f->want_h) {
        f->xt = sk_malloc((size_t)(maxc * f->t_max) * sizeof(float));
        f->g = sk_malloc((size_t)(maxc * maxc) * sizeof(float));
        const sk_mat Xm = {SHRINK_DTYPE_F32, maxc, f->t_max, NULL, NULL};
        if (!f->xt || !f->g) {
            st = sk_error(SHRINK_ERR_NOMEM, "quantize: out of memory for calibration");
            goto out;
        }
        if ((st = sk_scratch_reserve(&f->sc, sk_matmul_scratch_bytes(sk_kernels(), &Xm, maxc))))
            goto out;
        for (int i = 0; i < IN_COUNT; i++) {
            f->H[i] = sk_malloc((size_t)per_pass * (size_t)(f->cols[i] * f->cols[i]) *
                                sizeof(double));
            if (!f->H[i]) {
                st = sk_error(SHRINK_ERR_NOMEM, "quantize: out of memory for calibration");
                goto out;
            }
        }
    }
    if (p->kind == SK_FOLD_SMOOTH) {
        info->act_absmax = sk_calloc((size_t)L * 2, sizeof(float));
        if (!info->act_absmax) {
            st = sk_error(SHRINK_ERR_NOMEM, "quantize: out of memory");
            goto out;
        }
    }
    /* one layer at a time (src/model/layerwise.h): the statistics of layer l, then its
     * searches (the same sums as a whole-model forward per window: the same pieces in order) */
    f->l0 = 0;
    f->l1 = 1;
    for (int i = 0; i < IN_COUNT && f->want_h; i++)
        memset(f->H[i], 0, (size_t)(f->cols[i] * f->cols[i]) * sizeof(double));
    j.want = want;
    sk_layerwise lw = {.model = m, .ids = ids, .n = want, .n_ctx = n_ctx, .n_batch = piece,
                       .observe = fold_observe, .after = fold_after, .user = &j};
    st = sk_layerwise_run(&lw);
    if (!st) st = f->err;
    if (st) goto out;
    info->tokens = want;
    info->mean_alpha = info->n_inputs ? j.alpha_sum / info->n_inputs : 0.0;
    *out = j.folds;
    j.folds = NULL;
out:
    if (st) {
        sk_free(info->act_absmax);
        info->act_absmax = NULL;
    }
    sk_wfold_free(j.folds, xf->n);
    fstats_free(&j.st);
    shrink_free(ids);
    shrink_model_free(m);
    return st;
}

/* ==== the folded model in f32 (tests) ==================================================== */

typedef struct f32job {
    const sk_wfold *folds;
    shrink_dtype    search;
    int             planned;
} f32job;

static shrink_status f32_plan(void *user, sk_xf *xf, sk_xf_tensor *x) {
    f32job *j = user;
    x->user = (void *)(j->folds ? &j->folds[x - xf->ts] : NULL);
    x->dtype = j->planned ? SHRINK_DTYPE_F32
               : x->t.n_dims == 2 ? sk_quant_fallback(j->search, x->t.cols, NULL)
                                  : SHRINK_DTYPE_F32;
    return SHRINK_OK;
}

static shrink_status f32_rows(void *user, sk_xf_tensor *x, int tid, int64_t row0, int64_t k,
                              float *rows, uint8_t *dst) {
    (void)user;
    (void)tid;
    const int64_t cols = x->t.n_dims == 1 ? x->t.rows : x->t.cols;
    sk_wfold_apply(x->user, row0, k, rows, cols);
    memcpy(dst, rows, (size_t)(k * cols) * sizeof(float));
    return SHRINK_OK;
}

shrink_status sk_fold_write_f32(const char *in, const char *out, const sk_fold_params *p,
                                sk_fold_info *info_out) {
    sk_xf xf;
    memset(&xf, 0, sizeof xf);
    sk_wfold *folds = NULL;
    sk_fold_info info;
    memset(&info, 0, sizeof info);
    shrink_status st = sk_xf_open(&xf, in, p->tokenizer_path, "fold");
    f32job fj = {NULL, SHRINK_DTYPE_Q4_0, 0};
    if (!st)
        for (int64_t i = 0; i < xf.n; i++) f32_plan(&fj, &xf, &xf.ts[i]);
    sk_fold_params q = *p;
    q.clip = 0;
    if (!st) st = sk_fold_compute(&xf, in, &q, &folds, &info);
    if (!st) {
        fj.folds = folds;
        fj.planned = 1;
        sk_xf_method m = {.plan = f32_plan, .rows = f32_rows, .user = &fj};
        sk_xf_opts o = {.dtype = SHRINK_DTYPE_F32, .file_type = -1};
        st = sk_xf_write(&xf, out, &m, &o);
    }
    sk_free(info.act_absmax);
    info.act_absmax = NULL;
    if (info_out) *info_out = info;
    sk_wfold_free(folds, xf.n);
    sk_xf_close(&xf);
    return st;
}
