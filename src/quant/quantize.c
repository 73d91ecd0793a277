/*
 * quantize.c - shrink_quantize: any model shrink reads -> a quantized GGUF file, streaming.
 *
 * What it does, in order:
 *   1. finds the scheme (one dtype for every matrix, or llama.cpp's q4_K_M / q5_K_M mix);
 *   2. w8a8_static only: runs the model in f32 over a calibration text with an observer on
 *      the decoder (sk_context_set_observer) that records, for the input of every linear
 *      layer, absmax over all tokens; the tensor's activation scale is absmax / 127;
 *   3. opens the input without binding it (sk_model_open: no copy of any weight) and plans
 *      the type of every tensor the GGUF writer lists (rules below, docs/quantization.md);
 *   4. hands sk_gguf_write a source that wraps the model's: for each block of rows the writer
 *      asks for, it reads the rows as f32 (dequantizing a quantized input, transposing GPT-2's
 *      Conv1D weights to (out, in)), quantizes them row by row on the OpenMP threads with the
 *      dtype row's quantizer (per-tensor types get the whole tensor's min/max from a first
 *      pass), and measures the error of the round trip. Memory: one staging chunk of f32 rows
 *      (4 MiB or one row) plus the writer's block; nothing holds a whole model.
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

#include "../tokenizer/tokenizer.h"
#include "../kernels/q_search.h"

#include <fnmatch.h>
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
    if (strcmp(name, "output.weight") == 0 ||
        (!has_output && strcmp(name, "token_embd.weight") == 0)) {
        /* the output matrix (or the embedding that serves as one): q6_K, q8_0 if the base
         * type's block does not divide its rows */
        t = ne0 % (int64_t)sk_dtype(base)->block != 0 ? SHRINK_DTYPE_Q8_0 : SHRINK_DTYPE_Q6_K;
    } else if (strcmp(name, "token_embd.weight") == 0) {
        /* the base type */
    } else if (strstr(name, "attn_v.weight")) {
        if (use_more_bits(i_layer, n_layer)) t = SHRINK_DTYPE_Q6_K;
        if (is_70b && t == SHRINK_DTYPE_Q4_K) t = SHRINK_DTYPE_Q5_K;
    } else if (strstr(name, "attn_k.weight") || strstr(name, "attn_q.weight")) {
        /* the base type (other file types change these) */
    } else if (strstr(name, "ffn_down")) {
        if (use_more_bits(i_layer, n_layer)) t = SHRINK_DTYPE_Q6_K;
    } else if (strstr(name, "attn_output.weight")) {
        /* the base type */
    } else if (strstr(name, "attn_qkv.weight")) {
        t = mix == SK_MIX_Q4_K_M ? SHRINK_DTYPE_Q5_K : SHRINK_DTYPE_Q6_K;
    }
    /* llama.cpp's convert_incompatible_tensor: q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0, then
     * f16; q8_0 has no fallback there (it refuses the model), f16 here */
    return sk_quant_fallback(t, ne0, fallback);
}

/* ==== the plan =========================================================================== */

/* One tensor of the output, in writing order. */
typedef struct qtensor {
    sk_wtensor   t;            /* as the GGUF writer lists it */
    char         name[64];     /* GGUF name */
    shrink_dtype dtype;
    int          fallback;
    int          kept;
    int          need_range;   /* per-tensor types: the whole tensor's min/max first */
    sk_qparams   qp;
    uint64_t     bytes;
    double       err2, ref2;   /* sum (dequant(q) - w)^2, sum w^2 */
} qtensor;

/* The tensors sk_gguf_write writes: the canonical list, plus output.weight for a tied GPT-2
 * (gguf.c's gguf_list). */
static shrink_status list_tensors(const sk_config *c, qtensor **out, int64_t *n_out) {
    sk_wtensor *ts;
    int64_t n;
    shrink_status st = sk_wtensors(c, &ts, &n);
    if (st) return st;
    int extra = c->arch->names == SK_NAMES_GPT2 && c->tied;
    qtensor *q = sk_calloc((size_t)(n + extra), sizeof *q);
    if (!q) {
        sk_free(ts);
        return sk_error(SHRINK_ERR_NOMEM, "shrink_quantize: out of memory");
    }
    for (int64_t i = 0; i < n; i++) q[i].t = ts[i];
    if (extra) {
        q[n].t = ts[0];
        q[n].t.role = SK_ROLE_HEAD;
        snprintf(q[n].t.name, sizeof q[n].t.name, "lm_head.weight");
    }
    sk_free(ts);
    for (int64_t i = 0; i < n + extra; i++) {
        const char *pat = sk_role_name(q[i].t.role, 1, 0);
        snprintf(q[i].name, sizeof q[i].name, pat ? pat : "?", q[i].t.layer);
    }
    *out = q;
    *n_out = n + extra;
    return SHRINK_OK;
}

/* Does `name` match one of the comma-separated globs of `list`? */
static int keep_match(const char *list, const char *name) {
    if (!list) return 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char pat[256];
        if (n > 0 && n < sizeof pat) {
            memcpy(pat, p, n);
            pat[n] = 0;
            if (fnmatch(pat, name, 0) == 0) return 1;
        }
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

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

typedef struct plan_in {
    const sk_scheme              *scheme;
    const shrink_quantize_params *p;
    const sk_source              *base;
    const float                  *absmax; /* w8a8_static calibration, or NULL */
    int                           has_output;
} plan_in;

static void plan_tensor(const plan_in *in, qtensor *q) {
    const sk_wtensor *t = &q->t;
    const sk_config *c = &in->base->cfg;
    const sk_scheme *s = in->scheme;
    if (t->n_dims == 1) {
        q->dtype = SHRINK_DTYPE_F32;
    } else if (keep_match(in->p->keep, q->name)) {
        q->kept = 1;
        q->dtype = sk_quant_fallback((shrink_dtype)in->p->keep_dtype, t->cols, &q->fallback);
    } else if (t->role == SK_ROLE_POS_EMB) {
        shrink_dtype d = in->base->dtype_of ? in->base->dtype_of(in->base->user, t)
                                            : in->base->dtype;
        q->dtype = sk_dtype(d)->block == 1 && d <= SHRINK_DTYPE_BF16 ? d : SHRINK_DTYPE_F32;
    } else if (s->mix != SK_MIX_NONE) {
        int is_70b = c->arch->names == SK_NAMES_LLAMA && c->n_layers == 80 &&
                     c->n_heads != c->n_kv_heads;
        q->dtype = sk_mix_type(s->mix, q->name, t->cols, t->layer, c->n_layers, in->has_output,
                               is_70b, &q->fallback);
    } else {
        shrink_dtype want = s->dtype;
        int w8a8 = want == SHRINK_DTYPE_W8A8 || want == SHRINK_DTYPE_W8A8_STATIC;
        if (w8a8 && t->role == SK_ROLE_TOK_EMB && in->has_output) want = SHRINK_DTYPE_INT8_CH;
        q->dtype = sk_quant_fallback(want, t->cols, &q->fallback);
    }
    q->need_range = q->dtype == SHRINK_DTYPE_INT8_T || q->dtype == SHRINK_DTYPE_INT8_T_ASYM;
    if (q->dtype == SHRINK_DTYPE_W8A8_STATIC) {
        int64_t k = act_index(c, t->role, t->layer, in->has_output);
        float a = in->absmax && k >= 0 ? in->absmax[k] / 127.0f : 0.0f;
        q->qp.act_scale = a > 0 && isfinite(a) ? a : 1.0f / 127.0f; /* an input never seen */
    }
    int64_t rows = t->n_dims == 1 ? 1 : t->rows, cols = t->n_dims == 1 ? t->rows : t->cols;
    q->bytes = (uint64_t)rows * sk_dtype_row_bytes(q->dtype, cols);
}

/* ==== the quantizing source ============================================================== */

#define STAGE_FLOATS (1u << 18) /* f32 rows staged per thread and step (1 MiB, >= one row) */

typedef struct qjob {
    sk_source base;          /* the model's source: fills f32 rows (thread-safe for disjoint
                                rows: it reads the mapping and converts) */
    qtensor  *ts;
    int64_t   n;
    int64_t   cur;           /* tensor being written (-1 before the first) */
    int       n_threads;
    float    *stage;         /* (n_threads, stage_floats) f32 rows, one slice per thread */
    size_t    stage_floats;
    float    *deq;           /* (n_threads, deq_cols) one dequantized row per thread */
    int64_t   deq_cols;
    uint64_t  done, total;   /* tensor bytes written / to write */
    shrink_status err;       /* first failure on a thread, and its message */
    char      err_msg[512];
    const shrink_quantize_params *p;
} qjob;

static shrink_dtype q_tensor_dtype(void *user, const sk_wtensor *t, int64_t i) {
    qjob *j = user;
    SHRINK_ASSERT(i >= 0 && i < j->n && j->ts[i].t.role == t->role &&
                  j->ts[i].t.layer == t->layer);
    return j->ts[i].dtype;
}

/* Room for at least one row of cols f32 per thread, staged and dequantized. */
static shrink_status ensure_buffers(qjob *j, int64_t cols) {
    size_t need = (size_t)cols > STAGE_FLOATS ? (size_t)cols : STAGE_FLOATS;
    if (need > j->stage_floats) {
        sk_free(j->stage);
        j->stage = sk_aligned_alloc(64, (size_t)j->n_threads * need * sizeof(float));
        j->stage_floats = j->stage ? need : 0;
        if (!j->stage) return sk_error(SHRINK_ERR_NOMEM, "shrink_quantize: out of memory");
    }
    if (cols > j->deq_cols) {
        sk_free(j->deq);
        j->deq = sk_aligned_alloc(64, (size_t)j->n_threads * (size_t)cols * sizeof(float));
        j->deq_cols = j->deq ? cols : 0;
        if (!j->deq) return sk_error(SHRINK_ERR_NOMEM, "shrink_quantize: out of memory");
    }
    return SHRINK_OK;
}

/* Records the first failure of a thread (its message is thread-local). */
static void thread_fail(qjob *j, shrink_status st) {
    #pragma omp critical
    if (!j->err) {
        j->err = st;
        snprintf(j->err_msg, sizeof j->err_msg, "%s", shrink_last_error());
    }
}

/* The failure of a parallel region as this thread's status. */
static shrink_status region_status(qjob *j) {
    if (!j->err) return SHRINK_OK;
    shrink_status st = j->err;
    j->err = SHRINK_OK;
    return sk_error(st, "%s", j->err_msg);
}

/* What one step of a thread does with rows [r0, r0 + k) of the tensor, staged in x. */
typedef enum step_kind { STEP_RANGE, STEP_QUANTIZE } step_kind;

/* Streams rows [row0, row0 + n_rows) of matrix t through the threads: each thread fills
 * chunks of rows into its own staging slice (chunks dealt round-robin) and either folds them
 * into the min/max (STEP_RANGE) or quantizes them into dst (row_bytes each, dst's row 0 is
 * row0) and adds the round trip's squared error. Vectors come as one row of t->rows. */
static shrink_status stream_rows(qjob *j, qtensor *q, const sk_wtensor *t, int64_t row0,
                                 int64_t n_rows, step_kind kind, uint8_t *dst) {
    const int vec = t->n_dims == 1;
    const int64_t cols = vec ? t->rows : t->cols;
    shrink_status st = ensure_buffers(j, cols);
    if (st) return st;
    const int64_t per = (int64_t)(j->stage_floats / (size_t)cols);
    const int64_t n_chunks = (n_rows + per - 1) / per;
    const sk_dtype_traits *d = sk_dtype(q->dtype);
    const size_t row_bytes = (size_t)sk_dtype_row_bytes(q->dtype, cols);
    double e2 = 0.0, r2 = 0.0;
    float lo = q->qp.tmin, hi = q->qp.tmax;
    int nt = n_chunks < j->n_threads ? (int)n_chunks : j->n_threads;
    if ((double)n_rows * (double)cols < 32768.0) nt = 1;
    #pragma omp parallel num_threads(nt) reduction(+ : e2, r2) reduction(min : lo) \
        reduction(max : hi)
    {
        const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        float *x = j->stage + (size_t)tid * j->stage_floats;
        float *tmp = j->deq + (size_t)tid * (size_t)j->deq_cols;
        for (int64_t c = tid; c < n_chunks && !j->err; c += nth) {
            const int64_t r0 = c * per, k = n_rows - r0 < per ? n_rows - r0 : per;
            shrink_status s2 = vec ? j->base.fill(j->base.user, t, 0, t->rows, 0,
                                                  SHRINK_DTYPE_F32, x)
                                   : j->base.fill(j->base.user, t, row0 + r0, k, 0,
                                                  SHRINK_DTYPE_F32, x);
            if (s2) {
                thread_fail(j, s2);
                break;
            }
            if (kind == STEP_RANGE) {
                for (int64_t i = 0; i < k * cols; i++) {
                    if (x[i] < lo) lo = x[i];
                    if (x[i] > hi) hi = x[i];
                }
                continue;
            }
            for (int64_t i = 0; i < k; i++) {
                const float *xr = x + (size_t)i * (size_t)cols;
                uint8_t *y = dst + (size_t)(r0 + i) * row_bytes;
                if (d->quantize && !(j->p->ggml_exact && sk_quantize_searches(q->dtype)))
                    d->quantize(xr, y, cols, &q->qp);
                else d->from_f32(xr, y, cols);
                d->to_f32(y, tmp, cols);
                double e = 0.0, r = 0.0;
                for (int64_t m = 0; m < cols; m++) {
                    double dx = (double)tmp[m] - (double)xr[m];
                    e += dx * dx;
                    r += (double)xr[m] * (double)xr[m];
                }
                e2 += e;
                r2 += r;
            }
        }
    }
    if ((st = region_status(j))) return st;
    if (kind == STEP_RANGE) {
        q->qp.tmin = lo;
        q->qp.tmax = hi;
    } else {
        q->err2 += e2;
        q->ref2 += r2;
    }
    return SHRINK_OK;
}

static shrink_status q_fill(void *user, const sk_wtensor *t, int64_t row0, int64_t n_rows,
                            int transposed, shrink_dtype dt, void *dst) {
    qjob *j = user;
    shrink_status st;
    if (row0 == 0) j->cur++;
    SHRINK_ASSERT(j->cur >= 0 && j->cur < j->n && !transposed);
    qtensor *q = &j->ts[j->cur];
    SHRINK_ASSERT(dt == q->dtype);
    const int vec = t->n_dims == 1;
    if (vec && (row0 != 0 || n_rows != t->rows))
        return sk_error(SHRINK_ERR_ARG, "shrink_quantize: '%s' asked in pieces", q->name);
    if (row0 == 0 && q->need_range) {
        /* per-tensor types: the whole tensor's min and max first */
        q->qp.tensor_range = 1;
        q->qp.tmin = INFINITY;
        q->qp.tmax = -INFINITY;
        if ((st = stream_rows(j, q, t, 0, vec ? 1 : t->rows, STEP_RANGE, NULL))) return st;
        if (!(q->qp.tmin <= q->qp.tmax)) q->qp.tmin = q->qp.tmax = 0.0f;
    }
    if ((st = stream_rows(j, q, t, row0, vec ? 1 : n_rows, STEP_QUANTIZE, dst))) return st;
    const int64_t cols = vec ? t->rows : t->cols;
    j->done += (uint64_t)(vec ? 1 : n_rows) * sk_dtype_row_bytes(dt, cols);
    if (j->p->progress) j->p->progress(j->p->user, 1, (int64_t)j->done, (int64_t)j->total);
    return SHRINK_OK;
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
    char *text = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    calib c = {0, NULL};
    shrink_status st = shrink_model_load(&m, in, &lp);
    if (st) return st;
    const shrink_tokenizer *tok = shrink_model_tokenizer(m);
    if (!tok) {
        st = sk_error(SHRINK_ERR_ARG, "%s: the model has no tokenizer to encode the calibration "
                      "text %s (give one with --tokenizer)", in, p->calib_path);
        goto out;
    }
    size_t len;
    if ((st = sk_read_file(p->calib_path, (size_t)1 << 31, &text, &len))) goto out;
    size_t bad;
    if (!sk_utf8_valid(text, len, &bad)) {
        st = sk_error(SHRINK_ERR_FORMAT, "%s: not UTF-8 text: invalid byte 0x%02X at byte offset "
                      "%zu", p->calib_path, (unsigned char)text[bad], bad);
        goto out;
    }
    /* encode a prefix long enough for the tokens wanted (whole text if it is too short) */
    int64_t want = p->calib_tokens > 0 ? p->calib_tokens : 4096;
    size_t pre = (size_t)want * 16 + 4096;
    if (pre >= len) pre = len;
    while (pre < len && ((unsigned char)text[pre] & 0xC0) == 0x80) pre--;
    const struct shrink_model *mm = m;
    size_t n_ids = 0;
    for (;;) {
        if ((st = shrink_tokenizer_encode(tok, text, pre, mm->cfg.add_bos, &ids, &n_ids)))
            goto out;
        if ((int64_t)n_ids >= want || pre == len) break;
        sk_free(ids);
        ids = NULL;
        pre = len;
    }
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
    sk_free(text);
    shrink_context_free(ctx);
    shrink_model_free(m);
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

static void fill_result(shrink_quantize_result *r, const sk_scheme *s, const qtensor *ts,
                        int64_t n, const shrink_quantize_params *p) {
    r->scheme = s->name;
    r->n_tensors = n;
    for (int64_t i = 0; i < n; i++) {
        const qtensor *q = &ts[i];
        r->tensor_bytes += q->bytes;
        r->n_params += q->t.n_dims == 1 ? q->t.rows : q->t.rows * q->t.cols;
        r->n_fallback += q->fallback;
    }
    r->bits_per_weight = r->n_params ? 8.0 * (double)r->tensor_bytes / (double)r->n_params : 0;
    if (!p->tensor_stats) return;
    r->tensors = sk_calloc((size_t)n, sizeof *r->tensors);
    if (!r->tensors) return;
    for (int64_t i = 0; i < n; i++) {
        const qtensor *q = &ts[i];
        shrink_quantize_tensor *o = &r->tensors[i];
        snprintf(o->name, sizeof o->name, "%s", q->name);
        o->n_dims = q->t.n_dims;
        o->shape[0] = q->t.rows;
        o->shape[1] = q->t.n_dims == 1 ? 0 : q->t.cols;
        o->dtype = q->dtype;
        o->bytes = q->bytes;
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

    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = p->tokenizer_path;
    struct shrink_model *m = NULL;
    qjob j;
    memset(&j, 0, sizeof j);
    j.cur = -1;
    j.p = p;
    if ((st = sk_model_open(&m, in, &lp))) goto out;
    if ((st = sk_source_from_model(m, &j.base))) goto out;
    int quantized;
    r->in_dtype = input_dtype(m, &quantized);
    r->requantized = quantized;
    r->in_file_bytes = m->file_bytes;
    if ((st = list_tensors(&m->cfg, &j.ts, &j.n))) goto out;
    plan_in pin = {s, p, &j.base, absmax,
                   /* output.weight is written unless the head is the token embedding */
                   !m->cfg.tied || m->cfg.arch->names == SK_NAMES_GPT2};
    for (int64_t i = 0; i < j.n; i++) {
        plan_tensor(&pin, &j.ts[i]);
        j.total += j.ts[i].bytes;
    }
    j.n_threads = omp_get_max_threads();
    if (j.n_threads < 1) j.n_threads = 1;

    sk_source src = j.base;
    src.fill = q_fill;
    src.user = &j;
    src.dtype_of = NULL;
    src.dtype = s->dtype;
    sk_write_opts o = sk_write_opts_default();
    o.dtype = s->dtype;
    o.tensor_dtype = q_tensor_dtype;
    o.tensor_user = &j;
    o.file_type = s->file_type;
    if ((st = sk_model_write_source(m, &src, out, SK_FORMAT_GGUF, &o))) goto out;
    SHRINK_ASSERT(j.cur == j.n - 1);

    fill_result(r, s, j.ts, j.n, p);
    struct stat sb;
    if (stat(out, &sb) == 0) r->out_file_bytes = (uint64_t)sb.st_size;
    r->seconds = shrink_time() - t0;
out:
    sk_free(j.stage);
    sk_free(j.deq);
    sk_free(j.ts);
    sk_free(absmax);
    shrink_model_free(m);
    return st;
}
