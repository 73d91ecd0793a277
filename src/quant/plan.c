/*
 * plan.c - shrink_plan: one quantization type per matrix, chosen from measured sensitivity to
 * meet a size budget (docs/plan.md).
 *
 *   1. lists the output's tensors as shrink_quantize writes them (sk_xf_open) and the
 *      candidate types of every matrix (those whose block divides its rows: no fallbacks);
 *      a dry run of the writer gives the file's fixed part (header, metadata, manifest,
 *      norms, positions), so a budget below the smallest possible file is refused before
 *      anything is measured;
 *   2. runs the original model over the calibration text (windows from position 0) keeping
 *      its next-token probabilities and, through the decoder's observer, the mean x^2 of
 *      every input column of every matrix product (llama.cpp's importance, the head's too);
 *   3. for every matrix and candidate: binds that matrix alone, quantized to the candidate
 *      by shrink_quantize's own importance-weighted quantizer, and measures the mean KL of
 *      the model's next-token distribution from the original's (one forward pass each);
 *   4. solves the multiple-choice knapsack (shrink_plan_solve: least summed KL, bytes within
 *      the budget): the KL of several quantized matrices is taken as the sum of their KLs;
 *   5. with params->out writes the model in the chosen types through shrink_quantize
 *      (sk_quantize_with: per-tensor types and the measured importance) and measures the
 *      written file's KL on the same text.
 *
 * Deterministic: the KL of each token is computed by one thread and summed in token order,
 * the importance accumulated in token order, ties of the knapsack broken by index.
 */
#include "quant.h"
#include "imatrix.h"

#include "../model/model.h"
#include "../model/transform.h"
#include "../eval/ppl.h"
#include "../kernels/palette.h"
#include "../core/out.h"

#include <math.h>
#include <omp.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ==== the knapsack ======================================================================= */

#define SOLVE_MAX_CELLS (1 << 18) /* budget cells of the dynamic programme */

shrink_status shrink_plan_solve(int64_t n, int32_t k, const uint64_t *bytes, const double *kl,
                                uint64_t budget, int32_t *choice) {
    if (n < 0 || k < 1 || (n > 0 && (!bytes || !kl || !choice)))
        return sk_error(SHRINK_ERR_ARG, "plan: %lld items of %d options: nothing to solve",
                        (long long)n, (int)k);
    /* the smallest total: every item at its fewest bytes */
    uint64_t min_total = 0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t lo = UINT64_MAX;
        for (int32_t j = 0; j < k; j++) {
            const uint64_t b = bytes[i * k + j];
            if (b != UINT64_MAX && !(kl[i * k + j] >= 0.0 && isfinite(kl[i * k + j])))
                return sk_error(SHRINK_ERR_ARG, "plan: item %lld option %d has KL %g (must be "
                                "finite and >= 0)", (long long)i, (int)j, kl[i * k + j]);
            if (b < lo) lo = b;
        }
        if (lo == UINT64_MAX)
            return sk_error(SHRINK_ERR_ARG, "plan: item %lld has no option", (long long)i);
        min_total += lo;
    }
    if (min_total > budget)
        return sk_error(SHRINK_ERR_ARG, "plan: the budget of %llu bytes is below the smallest "
                        "choice, %llu bytes", (unsigned long long)budget,
                        (unsigned long long)min_total);
    if (n == 0) return SHRINK_OK;
    /* costs in cells of g bytes, rounded up, so that cells within C fit the budget */
    const uint64_t g = budget > SOLVE_MAX_CELLS ? (budget + SOLVE_MAX_CELLS - 1) / SOLVE_MAX_CELLS
                                                : 1;
    const int64_t C = (int64_t)(budget / g);
    double *dp = sk_malloc((size_t)(C + 1) * sizeof *dp);
    double *nx = sk_malloc((size_t)(C + 1) * sizeof *nx);
    uint8_t *ch = sk_malloc((size_t)n * (size_t)(C + 1));
    int64_t *w = sk_malloc((size_t)k * sizeof *w);
    if (!dp || !nx || !ch || !w) {
        sk_free(dp);
        sk_free(nx);
        sk_free(ch);
        sk_free(w);
        return sk_error(SHRINK_ERR_NOMEM, "plan: out of memory for the knapsack (%lld x %lld)",
                        (long long)n, (long long)C);
    }
    for (int64_t c = 0; c <= C; c++) dp[c] = 0.0;
    for (int64_t i = 0; i < n; i++) {
        for (int32_t j = 0; j < k; j++) {
            const uint64_t b = bytes[i * k + j];
            w[j] = b == UINT64_MAX || (b + g - 1) / g > (uint64_t)C ? -1
                   : (int64_t)((b + g - 1) / g);
        }
        uint8_t *ci = ch + (size_t)i * (size_t)(C + 1);
        for (int64_t c = 0; c <= C; c++) {
            double best = INFINITY;
            int32_t bj = 0;
            for (int32_t j = 0; j < k; j++) {
                if (w[j] < 0 || w[j] > c) continue;
                const double v = dp[c - w[j]] + kl[i * k + j];
                if (v < best) {
                    best = v;
                    bj = j;
                }
            }
            nx[c] = best;
            ci[c] = (uint8_t)bj;
        }
        double *t = dp;
        dp = nx;
        nx = t;
    }
    /* back from the full budget (rounded costs fit it: min_total fits, so dp[C] is finite
     * unless rounding made it infeasible, which the cheapest choice then answers) */
    if (isfinite(dp[C])) {
        int64_t c = C;
        for (int64_t i = n - 1; i >= 0; i--) {
            const int32_t j = ch[(size_t)i * (size_t)(C + 1) + (size_t)c];
            choice[i] = j;
            c -= (int64_t)((bytes[i * k + j] + g - 1) / g);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            int32_t bj = 0;
            for (int32_t j = 1; j < k; j++)
                if (bytes[i * k + j] < bytes[i * k + bj]) bj = j;
            choice[i] = bj;
        }
    }
    sk_free(dp);
    sk_free(nx);
    sk_free(ch);
    sk_free(w);
    /* the slack the rounding left: the upgrade of most KL saved per byte that fits, again */
    uint64_t used = 0;
    for (int64_t i = 0; i < n; i++) used += bytes[i * k + choice[i]];
    for (;;) {
        double best = 0.0;
        int64_t bi = -1;
        int32_t bj = 0;
        for (int64_t i = 0; i < n; i++) {
            const uint64_t b0 = bytes[i * k + choice[i]];
            const double k0 = kl[i * k + choice[i]];
            for (int32_t j = 0; j < k; j++) {
                const uint64_t b = bytes[i * k + j];
                if (b == UINT64_MAX || kl[i * k + j] >= k0) continue;
                if (b > b0 && b - b0 > budget - used) continue;
                const double gain = (k0 - kl[i * k + j]) / (double)(b > b0 ? b - b0 : 1);
                if (gain > best) {
                    best = gain;
                    bi = i;
                    bj = j;
                }
            }
        }
        if (bi < 0) break;
        used = used - bytes[bi * k + choice[bi]] + bytes[bi * k + bj];
        choice[bi] = bj;
    }
    return SHRINK_OK;
}

/* ==== the candidates ===================================================================== */

/* params->assign ("NAME=TYPE,...") into each planned tensor's choice: every tensor named once,
 * each TYPE one of its candidates; the candidates' KL unknown (NaN). */
static shrink_status assign_types(shrink_plan_result *r, const char *list) {
    for (int64_t i = 0; i < r->n_tensors; i++) {
        r->tensors[i].choice = -1;
        for (int j = 0; j < r->tensors[i].n_cands; j++) r->tensors[i].cands[j].kl = NAN;
    }
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ','), *eq = strchr(p, '=');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (!eq || eq >= p + len || eq == p)
            return sk_error(SHRINK_ERR_ARG, "plan: --assign '%.*s': expected NAME=TYPE",
                            (int)len, p);
        const size_t nl = (size_t)(eq - p), tl = len - nl - 1;
        char type[32];
        if (tl == 0 || tl >= sizeof type)
            return sk_error(SHRINK_ERR_ARG, "plan: --assign '%.*s': no type", (int)len, p);
        memcpy(type, eq + 1, tl);
        type[tl] = 0;
        shrink_dtype d;
        if (shrink_dtype_parse(type, &d) != SHRINK_OK)
            return sk_error(SHRINK_ERR_ARG, "plan: --assign: unknown type '%s'", type);
        int64_t t = -1;
        for (int64_t i = 0; i < r->n_tensors && t < 0; i++)
            if (strlen(r->tensors[i].name) == nl && !strncmp(r->tensors[i].name, p, nl)) t = i;
        if (t < 0)
            return sk_error(SHRINK_ERR_ARG, "plan: --assign: '%.*s' is not a matrix the plan "
                            "covers", (int)nl, p);
        shrink_plan_tensor *pt = &r->tensors[t];
        if (pt->choice >= 0)
            return sk_error(SHRINK_ERR_ARG, "plan: --assign: '%s' given twice", pt->name);
        for (int j = 0; j < pt->n_cands; j++)
            if (pt->cands[j].dtype == d) pt->choice = j;
        if (pt->choice < 0)
            return sk_error(SHRINK_ERR_ARG, "plan: --assign: %s is not a candidate of '%s' "
                            "(its rows of %lld values, or not in --types)", type, pt->name,
                            (long long)pt->cols);
        p += len + (e != NULL);
    }
    for (int64_t i = 0; i < r->n_tensors; i++)
        if (r->tensors[i].choice < 0)
            return sk_error(SHRINK_ERR_ARG, "plan: --assign gives no type for '%s'",
                            r->tensors[i].name);
    return SHRINK_OK;
}

static const shrink_dtype default_types[] = {
    SHRINK_DTYPE_Q2_K, SHRINK_DTYPE_Q3_K, SHRINK_DTYPE_Q4_K, SHRINK_DTYPE_Q5_K,
    SHRINK_DTYPE_Q6_K, SHRINK_DTYPE_Q4_0, SHRINK_DTYPE_Q4_1, SHRINK_DTYPE_Q5_0,
    SHRINK_DTYPE_Q5_1, SHRINK_DTYPE_IQ4_NL, SHRINK_DTYPE_Q8_0, SHRINK_DTYPE_F16,
};

/* The candidate types params->types names (or the default set) into t[], *n of them. */
static shrink_status parse_types(const char *list, shrink_dtype *t, int *n) {
    *n = 0;
    if (!list) {
        for (size_t i = 0; i < sizeof default_types / sizeof default_types[0]; i++)
            t[(*n)++] = default_types[i];
        return SHRINK_OK;
    }
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char name[32];
        if (len == 0 || len >= sizeof name)
            return sk_error(SHRINK_ERR_ARG, "plan: type list '%s': an empty or overlong name",
                            list);
        memcpy(name, p, len);
        name[len] = 0;
        shrink_dtype d;
        if (shrink_dtype_parse(name, &d) != SHRINK_OK)
            return sk_error(SHRINK_ERR_ARG, "plan: unknown type '%s' (llama.cpp's q2_K ... q8_0, "
                            "iq4_nl, f16, f32, bf16 or shrink's own, as shrink convert --dtype)",
                            name);
        const sk_dtype_traits *tr = sk_dtype(d);
        if (d == SHRINK_DTYPE_W8A8_STATIC || d == SHRINK_DTYPE_INT8_T ||
            d == SHRINK_DTYPE_INT8_T_ASYM || sk_pal_k(d) || !tr->from_f32 ||
            d == SHRINK_DTYPE_SPARSE24_F16 || d == SHRINK_DTYPE_SPARSE24_I8 ||
            d == SHRINK_DTYPE_SPARSE_F16 || d == SHRINK_DTYPE_SPARSE_I8)
            return sk_error(SHRINK_ERR_ARG, "plan: type '%s' cannot be planned (it needs a "
                            "calibration or a whole-tensor pass of its own)", name);
        for (int i = 0; i < *n; i++)
            if (t[i] == d)
                return sk_error(SHRINK_ERR_ARG, "plan: type '%s' is listed twice", name);
        if (*n >= SHRINK_PLAN_MAX_CANDS)
            return sk_error(SHRINK_ERR_ARG, "plan: more than %d candidate types",
                            SHRINK_PLAN_MAX_CANDS);
        t[(*n)++] = d;
        p += len;
        if (*p == ',') p++;
    }
    if (*n == 0) return sk_error(SHRINK_ERR_ARG, "plan: the type list is empty");
    return SHRINK_OK;
}

/* ==== the measuring model ================================================================ */

/* One planned matrix: the model's views it is (GPT-2's fused q|k|v: three), the observed
 * input it multiplies (-1: none, a lookup-only embedding). */
typedef struct unit {
    sk_mat *mats[3];
    sk_mat  orig[3];
    int     n_mats;
    int     also_head;   /* the tied token embedding: the head too */
    int64_t obs;         /* index of its input in the observer's table, or -1 */
    float  *imp;         /* (cols) mean x^2 of its input, or NULL */
} unit;

typedef struct meas {
    shrink_model *m;
    int32_t      *ids;
    int64_t       n;        /* calibration tokens */
    int32_t       n_ctx, n_batch;
    int           V, L;
    float        *base_p;   /* (n, V) the original's next-token probabilities */
    double       *negent;   /* (n) sum p log p */
    double       *kl_tok;   /* (n) */
    float        *logits;   /* (n_ctx, V) */
    /* the observer's sums: (L + 1) x SK_LIN_COUNT inputs, sums of x^2 per column */
    double      **sq;
    int64_t      *sq_cols, *sq_rows;
} meas;

static int64_t obs_index(int L, int layer, sk_linear which) {
    return (int64_t)(layer < 0 ? L : layer) * SK_LIN_COUNT + which;
}

static void observe(void *user, int layer, sk_linear which, const float *X, int64_t T,
                    int64_t cols) {
    meas *s = user;
    if (which != SK_LIN_Q && which != SK_LIN_O && which != SK_LIN_UP && which != SK_LIN_DOWN &&
        which != SK_LIN_HEAD)
        return; /* K, V, gate: the same input as Q, up */
    const int64_t k = obs_index(s->L, layer, which);
    if (!s->sq[k]) {
        s->sq[k] = sk_calloc((size_t)cols, sizeof(double));
        s->sq_cols[k] = cols;
        if (!s->sq[k]) return;
    }
    if (s->sq_cols[k] != cols) return;
    double *a = s->sq[k];
    #pragma omp parallel for schedule(static) if (cols >= 256)
    for (int64_t c = 0; c < cols; c++) {
        double v = 0.0;
        for (int64_t t = 0; t < T; t++) v += (double)X[t * cols + c] * X[t * cols + c];
        a[c] += v;
    }
    s->sq_rows[k] += T;
}

/* The model over the calibration tokens: base keeps the probabilities; else *kl gets the mean
 * KL from them. */
static shrink_status pass(meas *s, shrink_model *m, int base, double *kl) {
    shrink_context *ctx = NULL;
    shrink_status st = shrink_context_create(&ctx, m, s->n_ctx, s->n_batch);
    if (st) return st;
    if (base) sk_context_set_observer(ctx, observe, s);
    const int V = s->V;
    for (int64_t w0 = 0; w0 < s->n && !st; w0 += s->n_ctx) {
        const int32_t wl = (int32_t)(s->n - w0 < s->n_ctx ? s->n - w0 : s->n_ctx);
        if ((st = shrink_context_eval(ctx, s->ids + w0, wl, 0, s->logits, wl))) break;
        #pragma omp parallel for schedule(static)
        for (int32_t t = 0; t < wl; t++) {
            const float *z = s->logits + (size_t)t * V;
            const double lse = sk_logits_lse(z, V);
            float *b = s->base_p + (size_t)(w0 + t) * V;
            if (base) {
                s->negent[w0 + t] = sk_logits_keep(z, V, lse, b);
            } else {
                const double k = sk_logits_kl(z, V, lse, b, s->negent[w0 + t]);
                s->kl_tok[w0 + t] = k > 0.0 ? k : 0.0;
            }
        }
    }
    shrink_context_free(ctx);
    if (st || base) return st;
    double sum = 0.0;
    for (int64_t t = 0; t < s->n; t++) sum += s->kl_tok[t];
    *kl = sum / (double)s->n;
    return SHRINK_OK;
}

static void meas_free(meas *s) {
    for (int64_t k = 0; s->sq && k < (int64_t)(s->L + 1) * SK_LIN_COUNT; k++) sk_free(s->sq[k]);
    sk_free(s->sq);
    sk_free(s->sq_cols);
    sk_free(s->sq_rows);
    sk_free(s->base_p);
    sk_free(s->negent);
    sk_free(s->kl_tok);
    sk_free(s->logits);
    shrink_free(s->ids);
    shrink_model_free(s->m);
    memset(s, 0, sizeof *s);
}

/* The model's views of output tensor x (role and layer of the tensor table). */
static int unit_bind(struct shrink_model *m, const sk_xf_tensor *x, unit *u) {
    memset(u, 0, sizeof *u);
    u->obs = -1;
    const int l = x->t.layer, L = m->cfg.n_layers;
    sk_layer *ly = l >= 0 && l < L ? &m->layers[l] : NULL;
    switch (x->t.role) {
    case SK_ROLE_TOK_EMB:
        u->mats[u->n_mats++] = &m->tok_emb;
        if (m->cfg.tied) {
            u->also_head = 1;
            u->obs = obs_index(L, -1, SK_LIN_HEAD);
        }
        break;
    case SK_ROLE_HEAD: u->mats[u->n_mats++] = &m->head; u->obs = obs_index(L, -1, SK_LIN_HEAD);
        break;
    default:
        if (!ly) return 0;
        switch (x->t.role) {
        case SK_ROLE_WQ: u->mats[u->n_mats++] = &ly->wq; break;
        case SK_ROLE_WK: u->mats[u->n_mats++] = &ly->wk; break;
        case SK_ROLE_WV: u->mats[u->n_mats++] = &ly->wv; break;
        case SK_ROLE_WQKV:
            u->mats[u->n_mats++] = &ly->wq;
            u->mats[u->n_mats++] = &ly->wk;
            u->mats[u->n_mats++] = &ly->wv;
            break;
        case SK_ROLE_WO: u->mats[u->n_mats++] = &ly->wo; u->obs = obs_index(L, l, SK_LIN_O);
            break;
        case SK_ROLE_W_GATE: u->mats[u->n_mats++] = &ly->w_gate; break;
        case SK_ROLE_W_UP: u->mats[u->n_mats++] = &ly->w_up; break;
        case SK_ROLE_W_DOWN:
            u->mats[u->n_mats++] = &ly->w_down;
            u->obs = obs_index(L, l, SK_LIN_DOWN);
            break;
        default: return 0;
        }
        if (x->t.role == SK_ROLE_WQ || x->t.role == SK_ROLE_WK || x->t.role == SK_ROLE_WV ||
            x->t.role == SK_ROLE_WQKV)
            u->obs = obs_index(L, l, SK_LIN_Q);
        if (x->t.role == SK_ROLE_W_GATE || x->t.role == SK_ROLE_W_UP)
            u->obs = obs_index(L, l, SK_LIN_UP);
    }
    for (int i = 0; i < u->n_mats; i++) {
        u->orig[i] = *u->mats[i];
        if (!u->orig[i].data || u->orig[i].cols != x->t.cols) return 0;
    }
    return 1;
}

/* Binds the unit's matrices quantized to t (bufs: one per view, filled here), or restores
 * the originals (bufs NULL). */
static shrink_status unit_quantize(struct shrink_model *m, unit *u, shrink_dtype t,
                                   uint8_t **bufs, float *rowbuf, int64_t row_floats) {
    for (int i = 0; i < u->n_mats; i++) {
        if (!bufs) {
            *u->mats[i] = u->orig[i];
            continue;
        }
        const sk_mat *W = &u->orig[i];
        const size_t rb = (size_t)sk_dtype_row_bytes(t, W->cols);
        int bad = 0;
        #pragma omp parallel for schedule(static) reduction(| : bad)
        for (int64_t r = 0; r < W->rows; r++) {
            float *x = rowbuf + (size_t)omp_get_thread_num() * (size_t)row_floats;
            sk_mat_row_f32(W, r, x);
            for (int64_t c = 0; c < W->cols; c++) bad |= !isfinite(x[c]);
            sk_quantize_row_im(t, x, bufs[i] + (size_t)r * rb, W->cols, u->imp);
        }
        if (bad)
            return sk_error(SHRINK_ERR_RANGE, "plan: the model's weights hold NaN or an "
                            "infinity: a quantized copy would hide the damage");
        *u->mats[i] = (sk_mat){t, W->rows, W->cols, bufs[i], NULL};
    }
    if (u->also_head) m->head = bufs ? *u->mats[0] : u->orig[0];
    return SHRINK_OK;
}

/* The importance-weighted squared error of the unit's matrices quantized to t, relative to
 * the weights' own (sum imp (q - w)^2 / sum imp w^2); per-row sums added in row order. */
static double unit_err(const unit *u, shrink_dtype t, uint8_t *qrow, float *rowbuf,
                       int64_t row_floats, double *rerr, double *rref) {
    double e = 0.0, w2 = 0.0;
    for (int i = 0; i < u->n_mats; i++) {
        const sk_mat *W = &u->orig[i];
        const int64_t cols = W->cols;
        const size_t rb = (size_t)sk_dtype_row_bytes(t, cols);
        #pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < W->rows; r++) {
            const int th = omp_get_thread_num();
            float *x = rowbuf + (size_t)th * (size_t)row_floats * 2, *y = x + row_floats;
            uint8_t *q = qrow + (size_t)th * (rb + 64);
            sk_mat_row_f32(W, r, x);
            sk_quantize_row_im(t, x, q, cols, u->imp);
            sk_dtype(t)->to_f32(q, y, cols);
            double a = 0.0, b = 0.0;
            for (int64_t c = 0; c < cols; c++) {
                const double im = u->imp ? (double)u->imp[c] : 1.0;
                const double d = (double)y[c] - (double)x[c];
                a += im * d * d;
                b += im * (double)x[c] * x[c];
            }
            rerr[r] = a;
            rref[r] = b;
        }
        for (int64_t r = 0; r < W->rows; r++) {
            e += rerr[r];
            w2 += rref[r];
        }
    }
    return w2 > 0.0 ? e / w2 : 0.0;
}

/* The candidate measured by a pass when not every one is: the first (fewest bytes) of at
 * least 4.5 bits per weight that is not the input's own type, else the largest below. */
static int32_t anchor_of(const shrink_plan_tensor *pt, shrink_dtype own) {
    int32_t below = -1;
    for (int32_t j = 0; j < pt->n_cands; j++) {
        const shrink_plan_cand *c = &pt->cands[j];
        if (c->dtype == own) continue;
        if (8.0 * (double)c->bytes >= 4.5 * (double)(pt->rows * pt->cols)) return j;
        below = j;
    }
    return below;
}

/* --max-kl: the smallest file (r->budget_bytes) whose solved KL is at most max_kl, by bisection
 * between the smallest and the largest file (the least summed KL does not grow with the
 * budget), to 1/10000 of the largest file. */
static shrink_status budget_for_kl(shrink_plan_result *r, int32_t K, const uint64_t *cb,
                                   const double *ck, int32_t *choice, uint64_t overhead,
                                   double max_kl) {
    uint64_t hi = overhead;
    for (int64_t i = 0; i < r->n_tensors; i++)
        hi += r->tensors[i].cands[r->tensors[i].n_cands - 1].bytes; /* the most bytes */
    uint64_t lo = r->min_bytes;
    for (int pass = 0;; pass++) {
        const uint64_t b = pass == 0 ? hi : lo + (hi - lo) / 2;
        shrink_status st = shrink_plan_solve(r->n_tensors, K, cb, ck, b - overhead, choice);
        if (st) return st;
        double kl = 0.0;
        for (int64_t i = 0; i < r->n_tensors; i++) kl += ck[i * K + choice[i]];
        if (pass == 0) {
            if (kl > max_kl)
                return sk_error(SHRINK_ERR_ARG, "plan: no plan within a KL of %g: the least the "
                                "candidates give is %.3e, at %llu bytes", max_kl, kl,
                                (unsigned long long)hi);
        } else if (kl <= max_kl) {
            hi = b;
        } else {
            lo = b;
        }
        if (hi - lo <= hi / 10000 + 1) break;
    }
    r->budget_bytes = hi;
    return SHRINK_OK;
}

/* ==== shrink_plan ======================================================================== */

shrink_plan_params shrink_plan_params_default(void) {
    shrink_plan_params p;
    memset(&p, 0, sizeof p);
    p.calib_tokens = 1024;
    return p;
}

void shrink_plan_result_free(shrink_plan_result *r) {
    if (!r) return;
    sk_free(r->tensors);
    r->tensors = NULL;
    r->n_tensors = 0;
}

static uint64_t pad32(uint64_t b) { return (b + 31) / 32 * 32; }

/* The file shrink_quantize writes for per-tensor types `types` of the planned tensors: to
 * `out`, or its size only (dry non-NULL). */
static shrink_status write_plan(const char *in, const char *out, const shrink_plan_params *p,
                                const shrink_plan_result *r, const shrink_dtype *types,
                                const sk_imatrix *im, uint64_t *dry) {
    const char **names = sk_calloc((size_t)r->n_tensors + 1, sizeof *names);
    if (!names) return sk_error(SHRINK_ERR_NOMEM, "plan: out of memory");
    /* general.file_type: llama.cpp's "mostly" type, from the type holding most bytes */
    uint64_t by[SHRINK_DTYPE_COUNT] = {0};
    for (int64_t i = 0; i < r->n_tensors; i++) {
        names[i] = r->tensors[i].name;
        by[types[i]] += r->tensors[i].cands[r->tensors[i].choice].bytes;
    }
    int most = SHRINK_DTYPE_F16;
    for (int d = 0; d < SHRINK_DTYPE_COUNT; d++)
        if (by[d] > by[most]) most = d;
    shrink_quantize_params qp = shrink_quantize_params_default();
    qp.scheme = shrink_dtype_name((shrink_dtype)most);
    if (!sk_scheme_find(qp.scheme)) qp.scheme = "q8_0";
    qp.tokenizer_path = p->tokenizer_path;
    sk_quant_override ov = {.n = r->n_tensors, .names = names, .types = types, .im = im,
                            .file_type = -1, .dry_bytes = dry};
    shrink_quantize_result qr;
    shrink_status st = sk_quantize_with(in, out, &qp, &ov, &qr);
    if (!st && !dry) shrink_quantize_result_free(&qr);
    sk_free(names);
    return st;
}

/* The measured importance as an importance matrix (entries by GGUF name) for the writer. */
static shrink_status make_imatrix(const shrink_plan_result *r, const unit *us, sk_imatrix **out) {
    *out = NULL;
    sk_imatrix *im = sk_calloc(1, sizeof *im);
    if (!im) return sk_error(SHRINK_ERR_NOMEM, "plan: out of memory");
    im->e = sk_calloc((size_t)r->n_tensors + 1, sizeof *im->e);
    if (!im->e) {
        sk_free(im);
        return sk_error(SHRINK_ERR_NOMEM, "plan: out of memory");
    }
    for (int64_t i = 0; i < r->n_tensors; i++) {
        if (!us[i].imp) continue;
        sk_imatrix_entry *e = &im->e[im->n];
        e->name = sk_strdup(r->tensors[i].name);
        e->v = sk_malloc((size_t)r->tensors[i].cols * sizeof(float));
        e->n = r->tensors[i].cols;
        e->ncall = 1;
        im->n++;
        if (!e->name || !e->v) {
            sk_imatrix_free(im);
            return sk_error(SHRINK_ERR_NOMEM, "plan: out of memory");
        }
        memcpy(e->v, us[i].imp, (size_t)e->n * sizeof(float));
    }
    *out = im;
    return SHRINK_OK;
}

shrink_status shrink_plan(const char *in, const shrink_plan_params *pp, shrink_plan_result *r) {
    shrink_plan_params def = shrink_plan_params_default();
    const shrink_plan_params *p = pp ? pp : &def;
    shrink_plan_result tmp;
    if (!r) r = &tmp;
    memset(r, 0, sizeof *r);
    r->measured_kl = NAN;
    const double t0 = shrink_time();
    if (!in || !*in) return sk_error(SHRINK_ERR_ARG, "plan: no input model");
    if (!p->calib_path || !*p->calib_path)
        return sk_error(SHRINK_ERR_ARG, "plan: a calibration text is required (--calib FILE): "
                        "the KL of every candidate is measured on it");
    const int by_kl = p->max_kl > 0.0;
    if (p->max_kl < 0.0 || !isfinite(p->max_kl))
        return sk_error(SHRINK_ERR_ARG, "plan: a KL bound of %g: give one above 0", p->max_kl);
    const int by_assign = p->assign != NULL;
    if ((p->budget_bytes != 0) + (p->budget_bits > 0.0) + by_kl + by_assign != 1 ||
        !(p->budget_bits >= 0.0 && isfinite(p->budget_bits)))
        return sk_error(SHRINK_ERR_ARG, "plan: give one budget: file bytes (--bytes), bits per "
                        "weight (--bits) or a KL bound (--max-kl), above 0; or the types "
                        "(--assign)");
    if (p->calib_tokens < 2)
        return sk_error(SHRINK_ERR_ARG, "plan: %lld calibration tokens; need at least 2",
                        (long long)p->calib_tokens);
    shrink_dtype types[SHRINK_PLAN_MAX_CANDS];
    int n_types = 0;
    shrink_status st = parse_types(p->types, types, &n_types);
    if (st) return st;
    const char *dry_out = p->out && *p->out ? p->out : "plan.gguf";
    if (p->out && sk_same_file(in, p->out))
        return sk_error(SHRINK_ERR_ARG, "%s: is the input; refusing to overwrite it", p->out);

    sk_xf xf;
    memset(&xf, 0, sizeof xf);
    meas s;
    memset(&s, 0, sizeof s);
    unit *us = NULL;
    shrink_dtype *chosen = NULL;
    uint8_t *bufs[3] = {NULL, NULL, NULL};
    float *rowbuf = NULL;
    sk_imatrix *im = NULL;
    uint64_t *cb = NULL;
    double *ck = NULL;
    int32_t *choice = NULL;
    double *rerr = NULL;
    float *ebuf = NULL;
    uint8_t *qrow = NULL;

    /* ---- 1. the tensors, their candidates and the fixed part of the file ---- */
    if ((st = sk_xf_open(&xf, in, p->tokenizer_path, "plan"))) goto out;
    r->tensors = sk_calloc((size_t)xf.n + 1, sizeof *r->tensors);
    us = sk_calloc((size_t)xf.n + 1, sizeof *us);
    chosen = sk_calloc((size_t)xf.n + 1, sizeof *chosen);
    if (!r->tensors || !us || !chosen) {
        st = sk_error(SHRINK_ERR_NOMEM, "plan: out of memory");
        goto out;
    }
    int64_t max_cols = 1, max_rows_bytes = 0;
    for (int64_t i = 0; i < xf.n; i++) {
        const sk_xf_tensor *x = &xf.ts[i];
        r->n_params += x->t.n_dims == 1 ? x->t.rows : x->t.rows * x->t.cols;
        if (x->t.n_dims != 2 || x->t.role == SK_ROLE_POS_EMB) continue;
        if (sk_dtype(x->in_dtype)->block > 1 || sk_dtype(x->in_dtype)->row_head) {
            st = sk_error(SHRINK_ERR_ARG, "%s holds quantized tensors ('%s' is %s): plan the "
                          "original weights (f32, f16 or bf16)", in, x->name,
                          shrink_dtype_name(x->in_dtype));
            goto out;
        }
        shrink_plan_tensor *pt = &r->tensors[r->n_tensors];
        snprintf(pt->name, sizeof pt->name, "%s", x->name);
        pt->rows = x->t.rows;
        pt->cols = x->t.cols;
        for (int j = 0; j < n_types; j++) {
            const sk_dtype_traits *d = sk_dtype(types[j]);
            if (d->block == 0 || x->t.cols % (int64_t)d->block != 0) continue;
            shrink_plan_cand c = {types[j], pad32(sk_dtype_tensor_bytes(types[j], x->t.rows,
                                                                          x->t.cols)), -1.0, 0.0, false};
            int at = pt->n_cands; /* ascending bytes, then the list's order */
            while (at > 0 && pt->cands[at - 1].bytes > c.bytes) {
                pt->cands[at] = pt->cands[at - 1];
                at--;
            }
            pt->cands[at] = c;
            pt->n_cands++;
        }
        if (pt->n_cands == 0) {
            st = sk_error(SHRINK_ERR_ARG, "plan: no candidate type fits '%s' (rows of %lld "
                          "values): add a type whose block divides them (q8_0, q4_0: 32; f16: "
                          "any)", x->name, (long long)x->t.cols);
            goto out;
        }
        if (x->t.cols > max_cols) max_cols = x->t.cols;
        const int64_t rb = (int64_t)sk_dtype_tensor_bytes(SHRINK_DTYPE_F32, x->t.rows, x->t.cols);
        if (rb > max_rows_bytes) max_rows_bytes = rb;
        r->n_tensors++;
    }
    /* the smallest file: every matrix in its fewest bytes (a dry run of the writer) */
    for (int64_t i = 0; i < r->n_tensors; i++) chosen[i] = r->tensors[i].cands[0].dtype;
    uint64_t min_file = 0;
    if ((st = write_plan(in, dry_out, p, r, chosen, NULL, &min_file))) goto out;
    uint64_t cheapest = 0;
    for (int64_t i = 0; i < r->n_tensors; i++) cheapest += r->tensors[i].cands[0].bytes;
    const uint64_t overhead = min_file - cheapest; /* header + tensors not planned */
    for (int64_t i = 0; i < xf.n; i++) {
        const sk_xf_tensor *x = &xf.ts[i];
        if (x->t.n_dims == 1) r->fixed_bytes += pad32((uint64_t)x->t.rows * 4);
        else if (x->t.role == SK_ROLE_POS_EMB)
            r->fixed_bytes += pad32(sk_dtype_tensor_bytes(x->in_dtype, x->t.rows, x->t.cols));
    }
    r->header_bytes = overhead > r->fixed_bytes ? overhead - r->fixed_bytes : 0;
    r->min_bytes = min_file;
    if (by_assign) {
        if ((st = assign_types(r, p->assign))) goto out;
        r->budget_bytes = UINT64_MAX; /* the assigned file's size, below */
    } else if (p->budget_bytes)
        r->budget_bytes = p->budget_bytes;
    else if (by_kl)
        r->budget_bytes = min_file; /* found after the measurements */
    else
        r->budget_bytes = r->header_bytes +
                          (uint64_t)floor(p->budget_bits * (double)r->n_params / 8.0);
    if (r->budget_bytes < min_file) {
        st = sk_error(SHRINK_ERR_ARG, "plan: the budget of %llu bytes%s is below the smallest "
                      "file the candidate types allow: %llu bytes (%.3f bits/weight: every "
                      "matrix in its smallest type)", (unsigned long long)r->budget_bytes,
                      p->budget_bytes ? "" : " (from --bits)", (unsigned long long)min_file,
                      8.0 * (double)(min_file - r->header_bytes) / (double)r->n_params);
        goto out;
    }
    sk_xf_close(&xf);

    /* ---- 2. the original over the text: probabilities and importance ---- */
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = p->tokenizer_path;
    if ((st = shrink_model_load(&s.m, in, &lp))) goto out;
    struct shrink_model *m = s.m;
    s.V = m->cfg.vocab_size;
    s.L = m->cfg.n_layers;
    size_t n_ids = 0;
    if ((st = sk_calib_encode(m, p->calib_path, p->calib_tokens, &s.ids, &n_ids))) goto out;
    if ((int64_t)n_ids < p->calib_tokens) {
        st = sk_error(SHRINK_ERR_ARG, "%s: the calibration text gives %zu tokens, fewer than "
                      "the %lld asked for (--calib-tokens)", p->calib_path, n_ids,
                      (long long)p->calib_tokens);
        goto out;
    }
    s.n = p->calib_tokens;
    r->calib_tokens = s.n;
    s.n_ctx = p->calib_ctx > 0 ? p->calib_ctx : 512;
    if (s.n_ctx > m->cfg.max_seq_len) s.n_ctx = m->cfg.max_seq_len;
    s.n_batch = s.n_ctx < 256 ? s.n_ctx : 256;
    const size_t nslots = (size_t)(s.L + 1) * SK_LIN_COUNT;
    s.sq = sk_calloc(nslots, sizeof *s.sq);
    s.sq_cols = sk_calloc(nslots, sizeof *s.sq_cols);
    s.sq_rows = sk_calloc(nslots, sizeof *s.sq_rows);
    s.base_p = sk_malloc((size_t)s.n * (size_t)s.V * sizeof(float));
    s.negent = sk_malloc((size_t)s.n * sizeof(double));
    s.kl_tok = sk_malloc((size_t)s.n * sizeof(double));
    s.logits = sk_malloc((size_t)s.n_ctx * (size_t)s.V * sizeof(float));
    const int nth = omp_get_max_threads();
    rowbuf = sk_malloc((size_t)nth * (size_t)max_cols * sizeof(float));
    for (int i = 0; i < 3; i++) bufs[i] = sk_malloc((size_t)max_rows_bytes + 64);
    if (!s.sq || !s.sq_cols || !s.sq_rows || !s.base_p || !s.negent || !s.kl_tok || !s.logits ||
        !rowbuf || !bufs[0] || !bufs[1] || !bufs[2]) {
        st = sk_error(SHRINK_ERR_NOMEM, "plan: out of memory for %lld calibration tokens of a "
                      "%d-token vocabulary", (long long)s.n, s.V);
        goto out;
    }
    if ((st = pass(&s, m, 1, NULL))) goto out;

    /* the units: the model's views of every planned tensor, with their importance */
    if ((st = sk_xf_open(&xf, in, p->tokenizer_path, "plan"))) goto out;
    {
        int64_t k = 0;
        for (int64_t i = 0; i < xf.n && k < r->n_tensors; i++) {
            const sk_xf_tensor *x = &xf.ts[i];
            if (strcmp(x->name, r->tensors[k].name) != 0) continue;
            if (!unit_bind(m, x, &us[k])) {
                st = sk_error(SHRINK_ERR_UNSUPPORTED, "plan: tensor '%s' is not a matrix the "
                              "decoder multiplies by: it cannot be measured", x->name);
                goto out;
            }
            unit *u = &us[k];
            if (!p->no_imatrix && u->obs >= 0 && s.sq[u->obs] && s.sq_cols[u->obs] == x->t.cols &&
                s.sq_rows[u->obs] > 0) {
                u->imp = sk_malloc((size_t)x->t.cols * sizeof(float));
                if (!u->imp) {
                    st = sk_error(SHRINK_ERR_NOMEM, "plan: out of memory");
                    goto out;
                }
                for (int64_t c = 0; c < x->t.cols; c++)
                    u->imp[c] = (float)(s.sq[u->obs][c] / (double)s.sq_rows[u->obs]);
            }
            k++;
        }
        if (k != r->n_tensors) {
            st = sk_error(SHRINK_ERR_UNSUPPORTED, "plan: %s: the model's tensors changed while "
                          "planning", in);
            goto out;
        }
    }
    sk_xf_close(&xf);

    /* ---- 3. the table: every matrix alone in every candidate (or its anchor) ---- */
    int64_t total = 0, done = 0, max_rows = 1;
    for (int64_t i = 0; i < r->n_tensors; i++) {
        total += p->measure_all ? r->tensors[i].n_cands : 1;
        if (r->tensors[i].rows > max_rows) max_rows = r->tensors[i].rows;
    }
    rerr = sk_malloc((size_t)max_rows * 2 * sizeof *rerr);
    ebuf = sk_malloc((size_t)nth * (size_t)max_cols * 2 * sizeof *ebuf);
    qrow = sk_malloc((size_t)nth * ((size_t)max_cols * 4 + 64));
    if (!rerr || !ebuf || !qrow) {
        st = sk_error(SHRINK_ERR_NOMEM, "plan: out of memory");
        goto out;
    }
    for (int64_t i = 0; i < r->n_tensors && !st && !by_assign; i++) {
        shrink_plan_tensor *pt = &r->tensors[i];
        const shrink_dtype own = us[i].orig[0].dtype;
        for (int j = 0; j < pt->n_cands; j++)
            pt->cands[j].err = pt->cands[j].dtype == own ? 0.0
                               : unit_err(&us[i], pt->cands[j].dtype, qrow, ebuf, max_cols,
                                          rerr, rerr + max_rows);
        pt->anchor = anchor_of(pt, own);
        for (int j = 0; j < pt->n_cands && !st; j++) {
            shrink_plan_cand *c = &pt->cands[j];
            c->kl = 0.0;
            if (c->dtype == own) continue; /* the input's own type: no change */
            if (!p->measure_all && j != pt->anchor) continue;
            st = unit_quantize(m, &us[i], c->dtype, bufs, rowbuf, max_cols);
            if (!st) st = pass(&s, m, 0, &c->kl);
            unit_quantize(m, &us[i], c->dtype, NULL, NULL, 0);
            c->measured = true;
            r->n_measured++;
            if (p->progress) p->progress(p->user, ++done, total);
        }
        if (p->measure_all || pt->anchor < 0 || st) continue;
        const shrink_plan_cand *a = &pt->cands[pt->anchor];
        for (int j = 0; j < pt->n_cands; j++) {
            shrink_plan_cand *c = &pt->cands[j];
            if (c->measured || c->dtype == own) continue;
            c->kl = a->err > 0.0 ? a->kl * c->err / a->err : a->kl;
        }
    }
    if (st) goto out;

    /* ---- 4. the knapsack ---- */
    const int32_t K = SHRINK_PLAN_MAX_CANDS;
    cb = sk_malloc((size_t)r->n_tensors * K * sizeof *cb + 1);
    ck = sk_malloc((size_t)r->n_tensors * K * sizeof *ck + 1);
    choice = sk_malloc((size_t)r->n_tensors * sizeof *choice + 1);
    if (!cb || !ck || !choice) {
        st = sk_error(SHRINK_ERR_NOMEM, "plan: out of memory");
        goto out;
    }
    for (int64_t i = 0; i < r->n_tensors; i++)
        for (int j = 0; j < K; j++) {
            const int ok = j < r->tensors[i].n_cands;
            cb[i * K + j] = ok ? r->tensors[i].cands[j].bytes : UINT64_MAX;
            ck[i * K + j] = ok ? r->tensors[i].cands[j].kl : 0.0;
        }
    if (by_kl && (st = budget_for_kl(r, K, cb, ck, choice, overhead, p->max_kl))) goto out;
    if (by_assign)
        for (int64_t i = 0; i < r->n_tensors; i++) choice[i] = r->tensors[i].choice;
    else if ((st = shrink_plan_solve(r->n_tensors, K, cb, ck, r->budget_bytes - overhead, choice)))
        goto out;
    r->file_bytes = overhead;
    r->tensor_bytes = 0;
    for (int64_t i = 0; i < r->n_tensors; i++) {
        shrink_plan_tensor *pt = &r->tensors[i];
        pt->choice = choice[i];
        chosen[i] = pt->cands[pt->choice].dtype;
        r->file_bytes += pt->cands[pt->choice].bytes;
        r->tensor_bytes += sk_dtype_tensor_bytes(chosen[i], pt->rows, pt->cols);
        r->predicted_kl += pt->cands[pt->choice].kl;
    }
    if (by_assign) {
        r->budget_bytes = r->file_bytes;
        r->predicted_kl = NAN; /* nothing measured alone */
    }
    /* the tensors not planned, unpadded */
    if ((st = sk_xf_open(&xf, in, p->tokenizer_path, "plan"))) goto out;
    for (int64_t i = 0; i < xf.n; i++) {
        const sk_xf_tensor *x = &xf.ts[i];
        if (x->t.n_dims == 1) r->tensor_bytes += (uint64_t)x->t.rows * 4;
        else if (x->t.role == SK_ROLE_POS_EMB)
            r->tensor_bytes += sk_dtype_tensor_bytes(x->in_dtype, x->t.rows, x->t.cols);
    }
    sk_xf_close(&xf);
    r->bits_per_weight = 8.0 * (double)r->tensor_bytes / (double)r->n_params;

    /* ---- 5. the file, and its KL on the same text ---- */
    if (p->out && *p->out) {
        if (!p->no_imatrix && (st = make_imatrix(r, us, &im))) goto out;
        if ((st = write_plan(in, p->out, p, r, chosen, im, NULL))) goto out;
        struct stat sb;
        if (stat(p->out, &sb) == 0) r->file_bytes = (uint64_t)sb.st_size;
        shrink_model *w = NULL;
        if ((st = shrink_model_load(&w, p->out, &lp))) goto out;
        st = pass(&s, w, 0, &r->measured_kl);
        shrink_model_free(w);
        if (st) goto out;
    }
    r->seconds = shrink_time() - t0;
out:
    sk_xf_close(&xf);
    for (int64_t i = 0; us && i < r->n_tensors; i++) sk_free(us[i].imp);
    sk_free(us);
    sk_free(chosen);
    for (int i = 0; i < 3; i++) sk_free(bufs[i]);
    sk_free(rowbuf);
    sk_free(cb);
    sk_free(ck);
    sk_free(choice);
    sk_free(rerr);
    sk_free(ebuf);
    sk_free(qrow);
    sk_imatrix_free(im);
    meas_free(&s);
    if (st || r == &tmp) shrink_plan_result_free(r);
    return st;
}
