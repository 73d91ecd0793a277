/*
 * quantize.c - shrink_quantize: any model shrink reads -> a quantized GGUF file, streaming.
 *
 * What it does, in order:
 *   1. finds the scheme (one dtype for every matrix, or llama.cpp's q4_K_M / q5_K_M mix);
 *   2. w8a8_static only: runs the model in f32 over a calibration text with an observer on
 *      the decoder (sk_context_set_observer) that records, for the input of every linear
 *      layer, absmax over all tokens; the tensor's activation scale is absmax / 127;
 *   3. opens the input through the tensor transform (src/model/transform.h: sk_model_open, no
 *      copy of any weight) and plans the type of every tensor the GGUF writer lists (rules
 *      below, docs/quantization.md);
 *   4. lets the transform stream the model into the GGUF writer: for each block of rows the
 *      writer asks for, the rows come as f32 (dequantizing a quantized input, transposing
 *      GPT-2's Conv1D weights to (out, in)) on the OpenMP threads, q_rows quantizes them row
 *      by row with the dtype row's quantizer (per-tensor types get the whole tensor's min/max
 *      from a first pass, q_begin) and measures the error of the round trip. Memory: one
 *      staging chunk of f32 rows per thread (1 MiB or one row) plus the writer's block;
 *      nothing holds a whole model.
 *
 * Per-tensor rules (every scheme): vectors (norms, biases) f32; --keep globs at keep_dtype;
 * position embeddings keep the input's float type (as llama-quantize leaves them); a row length
 * the type's block does not divide falls back (sk_quant_fallback). Mixes: sk_mix_type, which
 * follows llama.cpp's llama_tensor_get_type (src/llama-quant.cpp at the commit of
 * ../shared/fixtures/gguf: c392e50, build 4748) for Q4_K_M / Q5_K_M. Single dtypes: every
 * matrix in the dtype, embeddings and head included (llama-quantize --pure), except for
 * w8a8 / w8a8_static, whose token embedding is int8_ch when it is only a lookup table (a
 * separate output.weight exists): activation quantization applies to matrix products only.
 *
 * Not here: the storage layouts and quantizers (src/kernels, the dtype table), the GGUF layout
 * (src/formats/gguf.c).
 */
#include "quant.h"
#include "imatrix.h"

#include "../model/transform.h"
#include "../model/model.h"

#include "../tokenizer/tokenizer.h"
#include "../kernels/q_search.h"
#include "../kernels/q_imatrix.h"

#include <math.h>
#include <omp.h>
#include <strings.h>
#include <sys/stat.h>

/* ==== schemes ============================================================================ */

/* llama_ftype values (llama.h) of the mixes */
enum { FTYPE_Q4_K_M = 15, FTYPE_Q5_K_M = 17 };

static const sk_scheme schemes[] = {
    {"q8_0",           SHRINK_DTYPE_Q8_0,           SK_MIX_NONE,   -1},
    {"q4_0",           SHRINK_DTYPE_Q4_0,           SK_MIX_NONE,   -1},
    {"q4_1",           SHRINK_DTYPE_Q4_1,           SK_MIX_NONE,   -1},
    {"q5_0",           SHRINK_DTYPE_Q5_0,           SK_MIX_NONE,   -1},
    {"q5_1",           SHRINK_DTYPE_Q5_1,           SK_MIX_NONE,   -1},
    {"q4_K",           SHRINK_DTYPE_Q4_K,           SK_MIX_NONE,   14}, /* MOSTLY_Q4_K_S */
    {"q5_K",           SHRINK_DTYPE_Q5_K,           SK_MIX_NONE,   16}, /* MOSTLY_Q5_K_S */
    {"q6_K",           SHRINK_DTYPE_Q6_K,           SK_MIX_NONE,   -1},
    {"q4_K_M",         SHRINK_DTYPE_Q4_K,           SK_MIX_Q4_K_M, FTYPE_Q4_K_M},
    {"q5_K_M",         SHRINK_DTYPE_Q5_K,           SK_MIX_Q5_K_M, FTYPE_Q5_K_M},
    {"int8_ch",        SHRINK_DTYPE_INT8_CH,        SK_MIX_NONE,   -1},
    {"int8_ch_asym",   SHRINK_DTYPE_INT8_CH_ASYM,   SK_MIX_NONE,   -1},
    {"int8_t",         SHRINK_DTYPE_INT8_T,         SK_MIX_NONE,   -1},
    {"int8_t_asym",    SHRINK_DTYPE_INT8_T_ASYM,    SK_MIX_NONE,   -1},
    {"int4_g32",       SHRINK_DTYPE_INT4_G32,       SK_MIX_NONE,   -1},
    {"int4_g64",       SHRINK_DTYPE_INT4_G64,       SK_MIX_NONE,   -1},
    {"int4_g128",      SHRINK_DTYPE_INT4_G128,      SK_MIX_NONE,   -1},
    {"int4_g32_asym",  SHRINK_DTYPE_INT4_G32_ASYM,  SK_MIX_NONE,   -1},
    {"int4_g64_asym",  SHRINK_DTYPE_INT4_G64_ASYM,  SK_MIX_NONE,   -1},
    {"int4_g128_asym", SHRINK_DTYPE_INT4_G128_ASYM, SK_MIX_NONE,   -1},
    {"nf4",            SHRINK_DTYPE_NF4,            SK_MIX_NONE,   -1},
    {"nf4_dq",         SHRINK_DTYPE_NF4_DQ,         SK_MIX_NONE,   -1},
    {"w8a8",           SHRINK_DTYPE_W8A8,           SK_MIX_NONE,   -1},
    {"w8a8_static",    SHRINK_DTYPE_W8A8_STATIC,    SK_MIX_NONE,   -1},
};
enum { N_SCHEMES = sizeof schemes / sizeof schemes[0] };

/* A scheme is available when the dtype table has its row (quantizer and dequantizer). */
static int scheme_available(const sk_scheme *s) {
    const sk_dtype_traits *d = sk_dtype(s->dtype);
    return d->block > 0 && d->to_f32 && d->from_f32 && d->name;
}

int32_t sk_scheme_count(void) {
    int32_t n = 0;
    for (int i = 0; i < N_SCHEMES; i++) n += scheme_available(&schemes[i]);
    return n;
}

const sk_scheme *sk_scheme_at(int32_t i) {
    for (int k = 0; k < N_SCHEMES; k++) {
        if (!scheme_available(&schemes[k])) continue;
        if (i-- == 0) return &schemes[k];
    }
    return NULL;
}

const sk_scheme *sk_scheme_find(const char *name) {
    if (!name) return NULL;
    char buf[32];
    size_t n = strlen(name);
    if (n >= sizeof buf) return NULL;
    for (size_t i = 0; i <= n; i++) buf[i] = name[i] == '-' ? '_' : name[i];
    for (int i = 0; i < N_SCHEMES; i++)
        if (strcasecmp(buf, schemes[i].name) == 0 && scheme_available(&schemes[i]))
            return &schemes[i];
    return NULL;
}

int32_t shrink_quantize_scheme_count(void) { return sk_scheme_count(); }

const char *shrink_quantize_scheme_name(int32_t i) {
    const sk_scheme *s = sk_scheme_at(i);
    return s ? s->name : NULL;
}

/* ==== per-tensor types =================================================================== */

shrink_dtype sk_quant_fallback(shrink_dtype want, int64_t cols, int *fallback) {
    shrink_dtype got = sk_gguf_fallback(want, cols);
    if (fallback && got != want) *fallback = 1;
    return got;
}

/* llama.cpp's use_more_bits: the first and last eighth of the layers and every third between */
static int use_more_bits(int i_layer, int n_layers) {
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 ||
           (i_layer - n_layers / 8) % 3 == 2;
}

shrink_dtype sk_mix_type(sk_mix mix, const char *name, int64_t ne0, int i_layer, int n_layer,
                         int has_output, int is_70b, int *fallback) {
    const shrink_dtype base = mix == SK_MIX_Q5_K_M ? SHRINK_DTYPE_Q5_K : SHRINK_DTYPE_Q4_K;
    shrink_dtype t = base;
    if (mix == SK_MIX_NONE) return sk_quant_fallback(base, ne0, fallback);
    /* the role of the GGUF name (llama.cpp's rules go by name; the table maps it) */
    int layer, role = sk_trole_find(NULL, SK_TNAME_GGUF, name, n_layer, &layer);
    if (role == SK_ROLE_HEAD || (!has_output && role == SK_ROLE_TOK_EMB)) {
        /* the output matrix (or the embedding that serves as one): q6_K, q8_0 if the base
         * type's block does not divide its rows */
        t = ne0 % (int64_t)sk_dtype(base)->block != 0 ? SHRINK_DTYPE_Q8_0 : SHRINK_DTYPE_Q6_K;
    } else if (role == SK_ROLE_WV) {
        if (use_more_bits(i_layer, n_layer)) t = SHRINK_DTYPE_Q6_K;
        if (is_70b && t == SHRINK_DTYPE_Q4_K) t = SHRINK_DTYPE_Q5_K;
    } else if (role == SK_ROLE_W_DOWN) {
        if (use_more_bits(i_layer, n_layer)) t = SHRINK_DTYPE_Q6_K;
    } else if (role == SK_ROLE_WQKV) {
        t = mix == SK_MIX_Q4_K_M ? SHRINK_DTYPE_Q5_K : SHRINK_DTYPE_Q6_K;
    }
    /* every other matrix (token embedding, q, k, attention output, gate, up): the base type
     * (other file types change some of these) */
    /* llama.cpp's convert_incompatible_tensor: q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0, then
     * f16; q8_0 has no fallback there (it refuses the model), f16 here */
    return sk_quant_fallback(t, ne0, fallback);
}

/* ==== the plan =========================================================================== */

/* What quantize keeps per output tensor (its sk_xf_tensor's user). */
typedef struct qtensor {
    int          fallback;
    int          kept;
    int          need_range;   /* per-tensor types: the whole tensor's min/max first */
    sk_qparams   qp;
    double       err2, ref2;   /* sum (dequant(q) - w)^2, sum w^2 */
} qtensor;


/* The calibrated input of the matrix a role stands for: index into the absmax table
 * ((n_layers + 1) x SK_LIN_COUNT, the head in the last row); -1 if none. */
static int64_t act_index(const sk_config *c, sk_role role, int layer, int has_output) {
    int which = -1;
    switch (role) {
    case SK_ROLE_WQ: case SK_ROLE_WQKV: which = SK_LIN_Q; break;
    case SK_ROLE_WK:     which = SK_LIN_K; break;
    case SK_ROLE_WV:     which = SK_LIN_V; break;
    case SK_ROLE_WO:     which = SK_LIN_O; break;
    case SK_ROLE_W_GATE: which = SK_LIN_GATE; break;
    case SK_ROLE_W_UP:   which = SK_LIN_UP; break;
    case SK_ROLE_W_DOWN: which = SK_LIN_DOWN; break;
    case SK_ROLE_HEAD:   which = SK_LIN_HEAD; break;
    case SK_ROLE_TOK_EMB: which = has_output ? -1 : SK_LIN_HEAD; break; /* tied: the head */
    default: break;
    }
    if (which < 0) return -1;
    int64_t row = which == SK_LIN_HEAD ? c->n_layers : layer;
    return row * SK_LIN_COUNT + which;
}

/* Per-thread sums of a pass over rows (padded to a cache line: threads update their own). */
typedef struct qacc {
    double e2, r2;
    float  lo, hi;
    char   pad[64 - 2 * sizeof(double) - 2 * sizeof(float)];
} qacc;

/* The quantizing method over the tensor transform (src/model/transform.h). */
typedef struct qjob {
    const sk_scheme              *scheme;
    const shrink_quantize_params *p;
    const float                  *absmax;  /* w8a8_static calibration, or NULL */
    int                           has_output;
    qtensor  *qs;            /* (xf->n), one per output tensor */
    float    *deq;           /* (n_threads, deq_cols) one dequantized row per thread */
    int64_t   deq_cols;
    qacc     *acc;           /* (n_threads) */
    int64_t   range_cols;    /* row length of the tensor in the range pass */
    const sk_imatrix *im;    /* importance matrix, or NULL */
} qjob;

/* The importance of x's columns when it has an entry and its type uses one: ggml's weighted
 * quantizers (q_imatrix.c) and the searched types (q_search.c, shrink's own int4/nf4). */
static void plan_imatrix(const qjob *j, const sk_xf_tensor *x, qtensor *q) {
    const sk_imatrix_entry *e = sk_imatrix_find(j->im, x->name);
    if (!e || x->t.n_dims != 2 || e->n != x->t.cols) return;
    if (sk_qim_has(x->dtype) || sk_quantize_searches(x->dtype)) q->qp.imatrix = e->v;
}

/* llama-quantize's rule for the output matrix (output.weight, or the token embedding of a
 * model without one) under its single-type file types q4_0 .. q5_K: q6_K, or q8_0 where 256
 * does not divide the rows (its q6_K fallback). With params->pure, or a type of 6 bits or
 * more, or shrink's own types: t unchanged. */
static shrink_dtype output_type(const qjob *j, const sk_xf_tensor *x, shrink_dtype t) {
    const int role = x->t.role;
    if (j->p->pure || !(role == SK_ROLE_HEAD || (role == SK_ROLE_TOK_EMB && !j->has_output)))
        return t;
    switch (t) {
    case SHRINK_DTYPE_Q4_0: case SHRINK_DTYPE_Q4_1: case SHRINK_DTYPE_Q5_0:
    case SHRINK_DTYPE_Q5_1: case SHRINK_DTYPE_Q4_K: case SHRINK_DTYPE_Q5_K:
        return sk_quant_fallback(SHRINK_DTYPE_Q6_K, x->t.cols, NULL);
    default:
        return t;
    }
}

static shrink_status plan_tensor(void *user, sk_xf *xf, sk_xf_tensor *x) {
    qjob *in = user;
    qtensor *q = &in->qs[x - xf->ts];
    x->user = q;
    const sk_wtensor *t = &x->t;
    const sk_config *c = &xf->base.cfg;
    const sk_scheme *s = in->scheme;
    if (t->n_dims == 1) {
        x->dtype = SHRINK_DTYPE_F32;
    } else if (sk_glob_list_match(in->p->keep, x->name)) {
        q->kept = 1;
        x->dtype = sk_quant_fallback((shrink_dtype)in->p->keep_dtype, t->cols, &q->fallback);
    } else if (t->role == SK_ROLE_POS_EMB) {
        shrink_dtype d = x->in_dtype;
        x->dtype = sk_dtype(d)->block == 1 && d <= SHRINK_DTYPE_BF16 ? d : SHRINK_DTYPE_F32;
    } else if (s->mix != SK_MIX_NONE) {
        /* llama.cpp's 70B rule (80 layers with GQA: only the Llama family has GQA) */
        int is_70b = c->n_layers == 80 && c->n_heads != c->n_kv_heads;
        x->dtype = sk_mix_type(s->mix, x->name, t->cols, t->layer, c->n_layers, in->has_output,
                               is_70b, &q->fallback);
    } else {
        shrink_dtype want = s->dtype;
        int w8a8 = want == SHRINK_DTYPE_W8A8 || want == SHRINK_DTYPE_W8A8_STATIC;
        if (w8a8 && t->role == SK_ROLE_TOK_EMB && in->has_output) want = SHRINK_DTYPE_INT8_CH;
        x->dtype = sk_quant_fallback(want, t->cols, &q->fallback);
        x->dtype = output_type(in, x, x->dtype);
    }
    q->need_range = x->dtype == SHRINK_DTYPE_INT8_T || x->dtype == SHRINK_DTYPE_INT8_T_ASYM;
    plan_imatrix(in, x, q);
    if (x->dtype == SHRINK_DTYPE_W8A8_STATIC) {
        int64_t k = act_index(c, t->role, t->layer, in->has_output);
        float a = in->absmax && k >= 0 ? in->absmax[k] / 127.0f : 0.0f;
        q->qp.act_scale = a > 0 && isfinite(a) ? a : 1.0f / 127.0f; /* an input never seen */
    }
    return SHRINK_OK;
}

/* ==== quantizing rows ==================================================================== */

/* Per-thread sums back to zero (ranges to empty) before a pass. */
static void acc_reset(qjob *j, int n_threads) {
    for (int i = 0; i < n_threads; i++) {
        j->acc[i].e2 = j->acc[i].r2 = 0.0;
        j->acc[i].lo = INFINITY;
        j->acc[i].hi = -INFINITY;
    }
}

/* A chunk of the range pass: folds its values into the thread's min and max. */
static shrink_status range_chunk(void *user, int tid, int64_t r, int64_t k, float *x) {
    qjob *j = user;
    qacc *a = &j->acc[tid];
    float lo = a->lo, hi = a->hi;
    for (int64_t i = 0; i < k * j->range_cols; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    a->lo = lo;
    a->hi = hi;
    return SHRINK_OK;
}

/* Before a tensor's rows: per-tensor types need the whole tensor's min and max. */
static shrink_status q_begin(void *user, sk_xf *xf, sk_xf_tensor *x) {
    qjob *j = user;
    qtensor *q = x->user;
    acc_reset(j, xf->n_threads);
    if (!q->need_range) return SHRINK_OK;
    const int vec = x->t.n_dims == 1;
    q->qp.tensor_range = 1;
    q->qp.tmin = INFINITY;
    q->qp.tmax = -INFINITY;
    j->range_cols = vec ? x->t.rows : x->t.cols;
    shrink_status st = sk_xf_map_rows(xf, x, 0, vec ? 1 : x->t.rows, range_chunk, j);
    if (st) return st;
    for (int i = 0; i < xf->n_threads; i++) {
        if (j->acc[i].lo < q->qp.tmin) q->qp.tmin = j->acc[i].lo;
        if (j->acc[i].hi > q->qp.tmax) q->qp.tmax = j->acc[i].hi;
    }
    if (!(q->qp.tmin <= q->qp.tmax)) q->qp.tmin = q->qp.tmax = 0.0f;
    acc_reset(j, xf->n_threads);
    return SHRINK_OK;
}

/* One row: with an importance matrix ggml's weighted quantizer (--ggml-exact), else the search
 * (q_search.c for the 32-blocks, sk_qim_search for the K types; both start from ggml's
 * weighted blocks); without one the dtype row's search, or its reference with --ggml-exact. */
static void quantize_row(const qjob *j, const sk_xf_tensor *x, const qtensor *q, const float *xr,
                         uint8_t *y, int64_t cols) {
    const sk_dtype_traits *d = sk_dtype(x->dtype);
    const int searches = sk_quantize_searches(x->dtype);
    if (q->qp.imatrix && sk_qim_has(x->dtype) && (j->p->ggml_exact || !searches)) {
        if (j->p->ggml_exact || sk_qsearch_mode() == 0)
            sk_qim_quantize(x->dtype, xr, y, cols, q->qp.imatrix);
        else sk_qim_search(x->dtype, xr, y, cols, q->qp.imatrix); /* the K types */
    }
    else if (d->quantize && !(j->p->ggml_exact && searches))
        d->quantize(xr, y, cols, &q->qp);
    else d->from_f32(xr, y, cols);
}

/* Quantizes k rows with the dtype row's quantizer (the reference one with --ggml-exact) and
 * adds the round trip's squared error to the thread's sums. */
static shrink_status q_rows(void *user, sk_xf_tensor *x, int tid, int64_t row0, int64_t k,
                            float *rows, uint8_t *dst) {
    qjob *j = user;
    qtensor *q = x->user;
    const int64_t cols = x->t.n_dims == 1 ? x->t.rows : x->t.cols;
    const sk_dtype_traits *d = sk_dtype(x->dtype);
    const size_t row_bytes = (size_t)sk_dtype_row_bytes(x->dtype, cols);
    float *tmp = j->deq + (size_t)tid * (size_t)j->deq_cols;
    qacc *a = &j->acc[tid];
    for (int64_t i = 0; i < k; i++) {
        const float *xr = rows + (size_t)i * (size_t)cols;
        uint8_t *y = dst + (size_t)i * row_bytes;
        for (int64_t m = 0; m < cols; m++)
            if (!isfinite(xr[m]))
                return sk_error(SHRINK_ERR_RANGE, "tensor '%s' holds %s at row %" PRId64
                                ", column %" PRId64 ": a quantized copy would hide the damage; "
                                "the input model is broken", x->name, isnan(xr[m]) ? "NaN"
                                : "an infinity", row0 + i, m);
        quantize_row(j, x, q, xr, y, cols);
        d->to_f32(y, tmp, cols);
        double e = 0.0, r = 0.0;
        for (int64_t m = 0; m < cols; m++) {
            double dx = (double)tmp[m] - (double)xr[m];
            e += dx * dx;
            r += (double)xr[m] * (double)xr[m];
        }
        a->e2 += e;
        a->r2 += r;
    }
    return SHRINK_OK;
}

/* After each block: the threads' sums into the tensor's (in thread order). */
static shrink_status q_end_block(void *user, sk_xf *xf, sk_xf_tensor *x, int64_t row0,
                                 int64_t n_rows) {
    qjob *j = user;
    qtensor *q = x->user;
    double e2 = 0.0, r2 = 0.0;
    for (int i = 0; i < xf->n_threads; i++) {
        e2 += j->acc[i].e2;
        r2 += j->acc[i].r2;
    }
    q->err2 += e2;
    q->ref2 += r2;
    acc_reset(j, xf->n_threads);
    return SHRINK_OK;
}

/* Progress of the writing phase (phase 1; calibration is phase 0). */
static void q_progress(void *user, int64_t done, int64_t total) {
    const shrink_quantize_params *p = user;
    if (p->progress) p->progress(p->user, 1, done, total);
}

/* ==== calibration (w8a8_static) ========================================================== */

typedef struct calib {
    int    n_layers;
    float *absmax; /* ((n_layers + 1) x SK_LIN_COUNT) */
} calib;

static void calib_observe(void *user, int layer, sk_linear which, const float *X, int64_t T,
                          int64_t cols) {
    calib *c = user;
    int64_t row = layer < 0 ? c->n_layers : layer;
    float *a = &c->absmax[row * SK_LIN_COUNT + which];
    float mx = *a;
    int64_t n = T * cols;
    #pragma omp parallel for reduction(max : mx) schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float v = fabsf(X[i]);
        if (v > mx) mx = v;
    }
    *a = mx;
}

/* Runs the model at `in` over the first params->calib_tokens tokens of the calibration text
 * and returns the absmax of every linear layer's input in *out ((L + 1) x SK_LIN_COUNT,
 * malloc'd). */
static shrink_status calibrate(const char *in, const shrink_quantize_params *p, float **out,
                               int64_t *n_used) {
    *out = NULL;
    *n_used = 0;
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = p->tokenizer_path;
    shrink_model *m = NULL;
    shrink_context *ctx = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    calib c = {0, NULL};
    shrink_status st = shrink_model_load(&m, in, &lp);
    if (st) return st;
    /* a prefix long enough for the tokens wanted (the whole text if it is too short) */
    int64_t want = p->calib_tokens > 0 ? p->calib_tokens : 4096;
    const struct shrink_model *mm = m;
    size_t n_ids = 0;
    if ((st = sk_calib_encode(m, p->calib_path, want, &ids, &n_ids))) goto out;
    if (n_ids < 2) {
        st = sk_error(SHRINK_ERR_ARG, "%s: the calibration text gives %zu tokens; need at least 2",
                      p->calib_path, n_ids);
        goto out;
    }
    int64_t n = (int64_t)n_ids < want ? (int64_t)n_ids : want;
    int32_t n_ctx = mm->cfg.max_seq_len < 512 ? mm->cfg.max_seq_len : 512;
    const int32_t piece = 64, V = mm->cfg.vocab_size;
    if ((st = shrink_context_create(&ctx, m, n_ctx, piece))) goto out;
    c.n_layers = mm->cfg.n_layers;
    c.absmax = sk_calloc((size_t)(c.n_layers + 1) * SK_LIN_COUNT, sizeof(float));
    logits = sk_malloc((size_t)piece * (size_t)V * sizeof(float));
    if (!c.absmax || !logits) {
        st = sk_error(SHRINK_ERR_NOMEM, "shrink_quantize: out of memory for calibration");
        goto out;
    }
    sk_context_set_observer(ctx, calib_observe, &c);
    /* windows of n_ctx tokens from position 0, in pieces of `piece` tokens whose logits are
     * all asked for, so the head's input is observed for every token */
    for (int64_t w = 0; w < n && !st; w += n_ctx) {
        int32_t wl = (int32_t)(n - w < n_ctx ? n - w : n_ctx);
        for (int32_t o = 0; o < wl && !st; o += piece) {
            int32_t k = wl - o < piece ? wl - o : piece;
            st = shrink_context_eval(ctx, ids + w + o, k, o, logits, k);
            if (p->progress) p->progress(p->user, 0, w + o + k, n);
        }
    }
    if (st) goto out;
    *out = c.absmax;
    c.absmax = NULL;
    *n_used = n;
out:
    sk_free(c.absmax);
    sk_free(logits);
    shrink_free(ids);
    shrink_context_free(ctx);
    shrink_model_free(m);
    return st;
}

/* ==== importance matrix ================================================================== */

static void im_progress(void *user, int64_t done, int64_t total) {
    const shrink_quantize_params *p = user;
    if (p->progress) p->progress(p->user, 0, done, total);
}

/* The importance matrix params ask for, before the model is opened: read from imatrix_path,
 * or computed on imatrix_calib (calib_tokens tokens in chunks of imatrix_ctx); NULL if none. */
static shrink_status quant_imatrix(const char *in, const shrink_quantize_params *p,
                                   sk_imatrix **out, int64_t *calib_tokens) {
    *out = NULL;
    if (p->imatrix_path && *p->imatrix_path) return sk_imatrix_read(p->imatrix_path, out);
    if (!p->imatrix_calib || !*p->imatrix_calib) return SHRINK_OK;
    shrink_imatrix_params ip = shrink_imatrix_params_default();
    ip.calib_path = p->imatrix_calib;
    ip.calib_tokens = p->calib_tokens;
    if (p->imatrix_ctx > 0) ip.calib_ctx = p->imatrix_ctx;
    ip.tokenizer_path = p->tokenizer_path;
    ip.progress = im_progress;
    ip.user = (void *)(uintptr_t)p;
    shrink_imatrix_result ir;
    shrink_status st = sk_imatrix_compute(in, &ip, out, &ir);
    *calib_tokens = ir.n_tokens;
    if (!st) st = sk_imatrix_roundtrip(out, p->imatrix_calib);
    return st;
}

/* ==== shrink_quantize ==================================================================== */

shrink_quantize_params shrink_quantize_params_default(void) {
    shrink_quantize_params p = {.scheme = NULL, .keep = NULL, .keep_dtype = SHRINK_DTYPE_F16,
                                .calib_path = NULL, .calib_tokens = 4096,
                                .tokenizer_path = NULL, .tensor_stats = false,
                                .ggml_exact = false,
                                .progress = NULL, .user = NULL};
    return p;
}

void shrink_quantize_result_free(shrink_quantize_result *r) {
    if (!r) return;
    sk_free(r->tensors);
    r->tensors = NULL;
}

/* "q8_0, q4_0, ..." into buf: the schemes this build has. */
static const char *scheme_list(char *buf, size_t cap) {
    size_t at = 0;
    buf[0] = 0;
    for (int32_t i = 0; i < sk_scheme_count() && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%s", i ? ", " : "", sk_scheme_at(i)->name);
    return buf;
}

/* The name of the dtype holding at least 90% of the elements of the input's matrices, else
 * "mixed"; *quantized: whether any tensor is of a block type. */
static const char *input_dtype(const struct shrink_model *m, int *quantized) {
    int64_t count[SHRINK_DTYPE_COUNT] = {0};
    *quantized = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const sk_tensor *t = &m->tensors[i];
        if (sk_dtype(t->dtype)->block > 1) *quantized = 1;
        if (t->n_dims < 2) continue;
        int64_t e = 1;
        for (int d = 0; d < t->n_dims; d++) e *= t->shape[d];
        count[t->dtype] += e;
    }
    int best = 0;
    int64_t all = count[0];
    for (int d = 1; d < SHRINK_DTYPE_COUNT; d++) {
        all += count[d];
        if (count[d] > count[best]) best = d;
    }
    return count[best] >= all - all / 10 ? shrink_dtype_name((shrink_dtype)best) : "mixed";
}

static shrink_status check_params(const char *in, const char *out,
                                  const shrink_quantize_params *p, const sk_scheme **s) {
    char list[512];
    if (!in || !*in || !out || !*out)
        return sk_error(SHRINK_ERR_ARG, "shrink_quantize: input and output paths are required");
    if (!p->scheme)
        return sk_error(SHRINK_ERR_ARG, "shrink_quantize: no scheme (one of: %s)",
                        scheme_list(list, sizeof list));
    *s = sk_scheme_find(p->scheme);
    if (!*s)
        return sk_error(SHRINK_ERR_ARG, "unknown scheme '%s' (one of: %s)", p->scheme,
                        scheme_list(list, sizeof list));
    if (p->keep_dtype < 0 || p->keep_dtype >= SHRINK_DTYPE_COUNT ||
        !sk_dtype((shrink_dtype)p->keep_dtype)->name ||
        !sk_dtype((shrink_dtype)p->keep_dtype)->block)
        return sk_error(SHRINK_ERR_ARG, "shrink_quantize: bad keep dtype %d", (int)p->keep_dtype);
    if ((*s)->dtype == SHRINK_DTYPE_W8A8_STATIC && (!p->calib_path || !*p->calib_path))
        return sk_error(SHRINK_ERR_ARG, "scheme w8a8_static needs a calibration text: the "
                        "activation scale of every matrix is measured by running the model over "
                        "it (give --calib FILE; w8a8 needs none)");
    if (p->calib_tokens < 0)
        return sk_error(SHRINK_ERR_ARG, "shrink_quantize: calib_tokens %lld < 0",
                        (long long)p->calib_tokens);
    if (sk_same_file(in, out))
        return sk_error(SHRINK_ERR_ARG, "%s: is the input; refusing to overwrite it", out);
    if (sk_format_from_path(out) != SK_FORMAT_GGUF)
        return sk_error(SHRINK_ERR_ARG, "%s: quantized models are written as GGUF; name the "
                        "output *.gguf", out);
    return SHRINK_OK;
}

static void fill_result(shrink_quantize_result *r, const sk_scheme *s, const sk_xf *xf,
                        const shrink_quantize_params *p) {
    const int64_t n = xf->n;
    r->scheme = s->name;
    r->n_tensors = n;
    for (int64_t i = 0; i < n; i++) {
        const sk_xf_tensor *x = &xf->ts[i];
        const qtensor *q = x->user;
        r->tensor_bytes += x->bytes;
        r->n_params += x->t.n_dims == 1 ? x->t.rows : x->t.rows * x->t.cols;
        r->n_fallback += q->fallback;
    }
    r->bits_per_weight = r->n_params ? 8.0 * (double)r->tensor_bytes / (double)r->n_params : 0;
    if (!p->tensor_stats) return;
    r->tensors = sk_calloc((size_t)n, sizeof *r->tensors);
    if (!r->tensors) return;
    for (int64_t i = 0; i < n; i++) {
        const sk_xf_tensor *x = &xf->ts[i];
        const qtensor *q = x->user;
        shrink_quantize_tensor *o = &r->tensors[i];
        snprintf(o->name, sizeof o->name, "%s", x->name);
        o->n_dims = x->t.n_dims;
        o->shape[0] = x->t.rows;
        o->shape[1] = x->t.n_dims == 1 ? 0 : x->t.cols;
        o->dtype = x->dtype;
        o->bytes = x->bytes;
        o->rel_rms = q->ref2 > 0 ? sqrt(q->err2 / q->ref2) : 0.0;
        o->fallback = q->fallback;
        o->kept = q->kept;
    }
}

shrink_status shrink_quantize(const char *in, const char *out, const shrink_quantize_params *p,
                              shrink_quantize_result *r) {
    shrink_quantize_params def = shrink_quantize_params_default();
    if (!p) p = &def;
    shrink_quantize_result tmp;
    if (!r) r = &tmp;
    memset(r, 0, sizeof *r);
    double t0 = shrink_time();
    const sk_scheme *s = NULL;
    shrink_status st = check_params(in, out, p, &s);
    if (st) return st;

    float *absmax = NULL;
    if (s->dtype == SHRINK_DTYPE_W8A8_STATIC &&
        (st = calibrate(in, p, &absmax, &r->calib_tokens)))
        return st;

    sk_imatrix *im = NULL;
    sk_xf xf;
    memset(&xf, 0, sizeof xf);
    qjob j;
    memset(&j, 0, sizeof j);
    j.scheme = s;
    j.p = p;
    j.absmax = absmax;
    if ((st = quant_imatrix(in, p, &im, &r->calib_tokens))) goto out;
    j.im = im;
    if ((st = sk_xf_open(&xf, in, p->tokenizer_path, "shrink_quantize"))) goto out;
    const struct shrink_model *m = xf.model;
    int quantized;
    r->in_dtype = input_dtype(m, &quantized);
    r->requantized = quantized;
    if (quantized && !p->allow_requantize) {
        st = sk_error(SHRINK_ERR_ARG, "%s holds quantized tensors (%s): quantizing it again "
                      "rounds twice and loses more than quantizing the original weights; give "
                      "--allow-requantize to do it anyway", in, r->in_dtype);
        goto out;
    }
    if (im && (st = sk_imatrix_check(im, &xf, p->imatrix_path && *p->imatrix_path
                                               ? p->imatrix_path : p->imatrix_calib)))
        goto out;
    r->in_file_bytes = m->file_bytes;
    /* output.weight is written unless the head is the token embedding */
    j.has_output = !m->cfg.tied || m->cfg.arch->gguf_head;
    /* one dequantized row of the longest tensor row per thread, and per-thread sums */
    for (int64_t i = 0; i < xf.n; i++) {
        int64_t cols = xf.ts[i].t.n_dims == 1 ? xf.ts[i].t.rows : xf.ts[i].t.cols;
        if (cols > j.deq_cols) j.deq_cols = cols;
    }
    j.qs = sk_calloc((size_t)xf.n, sizeof *j.qs);
    j.deq = sk_aligned_alloc(64, (size_t)xf.n_threads * (size_t)j.deq_cols * sizeof(float));
    j.acc = sk_aligned_alloc(64, (size_t)xf.n_threads * sizeof *j.acc);
    if (!j.qs || !j.deq || !j.acc) {
        st = sk_error(SHRINK_ERR_NOMEM, "shrink_quantize: out of memory");
        goto out;
    }
    sk_xf_method method = {.plan = plan_tensor, .begin = q_begin, .rows = q_rows,
                           .end_block = q_end_block, .user = &j};
    sk_xf_opts o = {.dtype = s->dtype, .file_type = s->file_type, .progress = q_progress,
                    .progress_user = (void *)(uintptr_t)p};
    if ((st = sk_xf_write(&xf, out, &method, &o))) goto out;

    fill_result(r, s, &xf, p);
    for (int64_t i = 0; i < xf.n; i++)
        r->imatrix_used += ((const qtensor *)xf.ts[i].user)->qp.imatrix != NULL;
    r->imatrix_entries = im ? im->n : 0;
    struct stat sb;
    if (stat(out, &sb) == 0) r->out_file_bytes = (uint64_t)sb.st_size;
    r->seconds = shrink_time() - t0;
out:
    sk_free(j.qs);
    sk_free(j.deq);
    sk_free(j.acc);
    sk_free(absmax);
    sk_imatrix_free(im);
    sk_xf_close(&xf);
    return st;
}
