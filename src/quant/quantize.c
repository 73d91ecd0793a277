/*
 * quantize.c - shrink_quantize: any model shrink reads -> a quantized GGUF file, streaming.
 *
 * What it does, in order:
 *   1. finds the scheme (one dtype for every matrix, or one of llama.cpp's mixes, mix_rows);
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
 * the type's block does not divide falls back (sk_quant_fallback). Mixes: sk_mix_type
 * (src/formats/qmix.c, shared with QAT), which
 * follows llama.cpp's llama_tensor_get_type (src/llama-quant.cpp at the commit of
 * ../shared/fixtures/gguf: c392e50, build 4748) for Q2_K, Q3_K_S/M/L, Q4_K_S/M, Q5_K_S/M
 * (mix_rows: one row per mix). Single dtypes: every
 * matrix in the dtype, embeddings and head included (llama-quantize --pure), except for
 * w8a8 / w8a8_static, whose token embedding is int8_ch when it is only a lookup table (a
 * separate output.weight exists): activation quantization applies to matrix products only.
 *
 * Not here: the storage layouts and quantizers (src/kernels, the dtype table), the GGUF layout
 * (src/formats/gguf.c).
 */
#include "quant.h"
#include "imatrix.h"
#include "palette.h"
#include "awq.h"
#include "gptq.h"

#include "../model/transform.h"
#include "../model/model.h"
#include "../model/lora.h"

#include "../tokenizer/tokenizer.h"
#include "../kernels/q_search.h"
#include "../kernels/q_imatrix.h"

#include <math.h>
#include <omp.h>
#include <strings.h>
#include <sys/stat.h>

/* ==== schemes ============================================================================ */

/* llama_ftype values (llama.h) of the mixes */
enum {
    FTYPE_Q2_K = 10, FTYPE_Q3_K_S = 11, FTYPE_Q3_K_M = 12, FTYPE_Q3_K_L = 13, FTYPE_Q4_K_S = 14,
    FTYPE_Q4_K_M = 15, FTYPE_Q5_K_S = 16, FTYPE_Q5_K_M = 17
};

/* Where the ref_bpw / ref_kl of a scheme row were measured (docs/dev/quantization-log.md,
 * the results tables): `shrink compare` of the quantized file against the original,
 * 2048 tokens of test.txt, ctx 256. */
static const char *const scheme_refs[] = {
    "mix-llama-14m, test.txt, 2048 tokens, commit 7c59448",
    "mix-llama-14m, test.txt, 2048 tokens, commit d3cb7f1",
};

#define SINGLE(n, t, ft, ll, use, bpw, kl, ref) {n, SHRINK_DTYPE_##t, SK_MIX_NONE, ft, ll, use, bpw, kl, ref}
#define MIX(n, t, m, ll, use, bpw, kl, ref) {n, SHRINK_DTYPE_##t, SK_MIX_##m, FTYPE_##m, ll, use, bpw, kl, ref}
static const sk_scheme schemes[] = {
    /* llama.cpp's mixes (mix_rows): llama-quantize's per-tensor types */
    MIX("q4_K_M", Q4_K, Q4_K_M, "Q4_K_M", "the usual choice: small, little loss", 5.77, 0.000286, 0),
    MIX("q5_K_M", Q5_K, Q5_K_M, "Q5_K_M", "closer to the original at 6 bits", 6.15, 0.000170, 0),
    MIX("q4_K_S", Q4_K, Q4_K_S, "Q4_K_S", "a little smaller than q4_K_M", 5.69, 0.000238, 1),
    MIX("q5_K_S", Q5_K, Q5_K_S, "Q5_K_S", "a little smaller than q5_K_M", 6.11, 0.000171, 1),
    MIX("q3_K_L", Q3_K, Q3_K_L, "Q3_K_L", "3-bit base, 5-bit attn_v/ffn_down/attn_output", 5.55, 0.000578, 1),
    MIX("q3_K_M", Q3_K, Q3_K_M, "Q3_K_M", "3-bit: small, noticeable loss", 5.39, 0.000583, 1),
    MIX("q3_K_S", Q3_K, Q3_K_S, "Q3_K_S", "3-bit everywhere but the output", 5.21, 0.000969, 1),
    /* llama-quantize's Q2_K is q2_K_M here: q2_K is every matrix q2_K, as every type name */
    MIX("q2_K_M", Q2_K, Q2_K, "Q2_K", "smallest llama.cpp mix: large loss", 4.99, 0.003076, 1),
    /* one type for every matrix (llama-quantize --pure) */
    SINGLE("q8_0", Q8_0, -1, "Q8_0", "near lossless, half of f16", 8.51, 0.000010, 0),
    SINGLE("q6_K", Q6_K, -1, "Q6_K --pure", "near lossless at 6.6 bits", 6.57, 0.000103, 0),
    SINGLE("q5_K", Q5_K, -1, "Q5_K_S --pure", "every matrix q5_K", 5.51, 0.000486, 0),
    SINGLE("q4_K", Q4_K, -1, "Q4_K_S --pure", "every matrix q4_K", 4.51, 0.001525, 0),
    SINGLE("q3_K", Q3_K, -1, "Q3_K_S --pure", "every matrix q3_K", 3.44, 0.008221, 1),
    SINGLE("q2_K", Q2_K, -1, "Q2_K --pure", "every matrix q2_K: large loss", 2.63, 0.030817, 1),
    SINGLE("q5_1", Q5_1, -1, "Q5_1 --pure", "legacy 32-blocks with a min", 6.01, 0.000334, 0),
    SINGLE("q5_0", Q5_0, -1, "Q5_0 --pure", "legacy 32-blocks", 5.51, 0.000415, 0),
    SINGLE("q4_1", Q4_1, -1, "Q4_1 --pure", "legacy 32-blocks with a min", 5.01, 0.001465, 0),
    SINGLE("q4_0", Q4_0, -1, "Q4_0 --pure", "legacy 32-blocks, fast to decode", 4.51, 0.002013, 0),
    SINGLE("iq4_nl", IQ4_NL, -1, "IQ4_NL --pure", "4.5 bits on a non-linear grid", 4.51, 0.001798, 1),
    /* shrink's own types: llama.cpp cannot read these files */
    SINGLE("int8_ch", INT8_CH, -1, NULL, "int8 per output channel", 8.12, 0.000015, 0),
    SINGLE("int8_ch_asym", INT8_CH_ASYM, -1, NULL, "uint8 per channel with a zero point", 8.24, 0.000015, 0),
    SINGLE("int8_t", INT8_T, -1, NULL, "int8, one scale per tensor", 8.12, 0.000077, 0),
    SINGLE("int8_t_asym", INT8_T_ASYM, -1, NULL, "uint8, one scale and zero per tensor", 8.24, 0.000063, 0),
    SINGLE("int4_g32", INT4_G32, -1, NULL, "int4 groups of 32 (GPTQ-style, no search)", 4.51, 0.002569, 0),
    SINGLE("int4_g64", INT4_G64, -1, NULL, "int4 groups of 64", 4.26, 0.002831, 0),
    SINGLE("int4_g128", INT4_G128, -1, NULL, "int4 groups of 128", 4.13, 0.003480, 0),
    SINGLE("int4_g32_asym", INT4_G32_ASYM, -1, NULL, "uint4 groups of 32 with a min", 5.01, 0.001465, 0),
    SINGLE("int4_g64_asym", INT4_G64_ASYM, -1, NULL, "uint4 groups of 64 with a min", 4.51, 0.002338, 0),
    SINGLE("int4_g128_asym", INT4_G128_ASYM, -1, NULL, "uint4 groups of 128 with a min", 4.26, 0.002695, 0),
    SINGLE("nf4", NF4, -1, NULL, "QLoRA's NormalFloat4, groups of 64", 4.26, 0.003102, 0),
    SINGLE("nf4_dq", NF4_DQ, -1, NULL, "nf4 with 8-bit block scales", 4.25, 0.003342, 0),
    SINGLE("w8a8", W8A8, -1, NULL, "int8 weights and activations (per token)", 8.12, 0.000045, 0),
    SINGLE("w8a8_static", W8A8_STATIC, -1, NULL, "int8, calibrated activation scales (--calib)", 8.24, 0.000152, 0),
    /* palettes: k-means per group of k rows (src/quant/palette.c), weighted by --imatrix */
    SINGLE("pal16", PAL16, -1, NULL, "k-means palette of 16 values per 16 rows (4-bit codes)", 0, -1, 0),
    SINGLE("pal256", PAL256, -1, NULL, "k-means palette of 256 values per 256 rows (8-bit codes)", 0, -1, 0),
    SINGLE("pal4", PAL4, -1, NULL, "k-means palette of 4 values per 4 rows (2-bit codes)", 0, -1, 0),
};
#undef SINGLE
#undef MIX
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

shrink_status shrink_quantize_scheme_get(int32_t i, shrink_quantize_scheme_info *info) {
    const sk_scheme *s = sk_scheme_at(i);
    if (!s || !info) return sk_error(SHRINK_ERR_RANGE, "no quantization scheme %d", (int)i);
    info->name = s->name;
    info->dtype = s->dtype;
    info->mix = s->mix != SK_MIX_NONE;
    info->llama_cpp = s->llama_cpp;
    info->use = s->use;
    info->ref_bits_per_weight = s->ref_bpw;
    info->ref_kl = s->ref_kl;
    info->ref = s->ref_kl >= 0 ? scheme_refs[s->ref] : NULL;
    return SHRINK_OK;
}

/* llama-quantize's own (upper-case) spelling names its file: Q2_K is its Q2_K mix (shrink's
 * q2_K_M), where shrink's q2_K puts every matrix in q2_K; Q3_K, Q4_K and Q5_K are its aliases of
 * the _M mixes. */
static const char *const llama_cpp_alias[][2] = {{"Q3_K", "Q3_K_M"}, {"Q4_K", "Q4_K_M"},
                                                 {"Q5_K", "Q5_K_M"}};

const char *shrink_quantize_scheme_for_llama_cpp(const char *type) {
    if (!type) return NULL;
    for (size_t i = 0; i < sizeof llama_cpp_alias / sizeof llama_cpp_alias[0]; i++)
        if (strcmp(type, llama_cpp_alias[i][0]) == 0) type = llama_cpp_alias[i][1];
    for (int32_t i = 0; i < sk_scheme_count(); i++) {
        const sk_scheme *s = sk_scheme_at(i);
        if (s && s->llama_cpp && strcmp(s->llama_cpp, type) == 0) return s->name;
    }
    return NULL;
}

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

/* ==== the plan =========================================================================== */

/* What quantize keeps per output tensor (its sk_xf_tensor's user). */
typedef struct qtensor {
    int          fallback;
    int          kept;
    int          need_range;   /* per-tensor types: the whole tensor's min/max first */
    sk_qparams   qp;
    float       *pal;          /* palette types: the k-means palettes, k per group of k rows */
    double       err2, ref2;   /* sum (dequant(q) - w)^2, sum w^2 */
    shrink_dtype want;         /* the type the scheme chose before a fallback */
    const sk_wfold *fold;      /* awq / smooth: scales folded into the rows first, or NULL */
    const uint8_t *gptq_rows;  /* --method gptq: the tensor's rows as GPTQ wrote them */
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
    float    *whole;         /* palette types: the tensor as f32 (rows x range_cols), in the
                              * file's row order */
    const sk_config  *cfg;   /* palette types: the input's config and the tensor being read */
    const sk_wtensor *cur;
    const sk_wfold   *cur_fold; /* palette types: that tensor's awq / smooth fold, or NULL */
    const sk_imatrix *im;    /* importance matrix, or NULL */
    const sk_wfold   *folds; /* (xf->n) awq / smooth, or NULL */
    sk_gptq_run *gptq;       /* --method gptq (begun at the first tensor, then advanced a layer
                              * at a time as the writer reaches each layer's tensors) */
    uint8_t  *gptq_sel;      /* (xf->n) the tensors GPTQ may change */
    const sk_quant_override *ov; /* shrink_plan's per-tensor types, or NULL */
} qjob;

/* Whether type t's quantizer uses an importance: ggml's weighted quantizers (q_imatrix.c) and
 * the searched types (q_search.c, shrink's own int4/nf4), palettes. */
static int uses_imatrix(shrink_dtype t) {
    return sk_qim_has(t) || sk_quantize_searches(t) || sk_pal_k(t);
}

/* The importance of x's columns when it has an entry and its type uses one. */
static void plan_imatrix(const qjob *j, const sk_xf_tensor *x, qtensor *q) {
    const sk_imatrix_entry *e = sk_imatrix_find(j->im, x->name);
    if (!e || x->t.n_dims != 2 || e->n != x->t.cols) return;
    if (uses_imatrix(x->dtype)) q->qp.imatrix = e->v;
}

/* The type shrink_plan chose for tensor `name` (-1: none). */
static int ov_type(const sk_quant_override *ov, const char *name) {
    for (int64_t k = 0; ov && k < ov->n; k++)
        if (strcmp(ov->names[k], name) == 0) return (int)ov->types[k];
    return -1;
}

/* llama-quantize's rule for the output matrix (output.weight, or the token embedding of a
 * model without one) under its single-type file types q4_0 .. q5_K: q6_K, or q8_0 where 256
 * does not divide the rows (its q6_K fallback), when params->output_q6_K asks for it; else,
 * for a type of 6 bits or more, or shrink's own types: t unchanged. */
static shrink_dtype output_type(const qjob *j, const sk_xf_tensor *x, shrink_dtype t) {
    const int role = x->t.role;
    if (!j->p->output_q6_K ||
        !(role == SK_ROLE_HEAD || (role == SK_ROLE_TOK_EMB && !j->has_output)))
        return t;
    switch (t) {
    case SHRINK_DTYPE_Q4_0: case SHRINK_DTYPE_Q4_1: case SHRINK_DTYPE_Q5_0:
    case SHRINK_DTYPE_Q5_1: case SHRINK_DTYPE_Q4_K: case SHRINK_DTYPE_Q5_K:
        return sk_quant_fallback(SHRINK_DTYPE_Q6_K, x->t.cols, NULL);
    default:
        return t;
    }
}

/* The type the scheme's rules chose for a tensor before any fallback (x->dtype if none). */
static shrink_dtype tensor_want(const qjob *in, const sk_xf *xf, const sk_xf_tensor *x,
                                const qtensor *q) {
    const sk_wtensor *t = &x->t;
    const sk_config *c = &xf->base.cfg;
    if (!q->fallback || t->n_dims == 1) return x->dtype;
    if (q->kept) return (shrink_dtype)in->p->keep_dtype;
    if (ov_type(in->ov, x->name) >= 0) return (shrink_dtype)ov_type(in->ov, x->name);
    if (in->scheme->mix != SK_MIX_NONE) {
        int is_70b, n_gqa;
        sk_mix_facts(c, &is_70b, &n_gqa);
        return sk_mix_want(in->scheme->mix, sk_mix_role(x->name, c->n_layers), t->cols, t->layer,
                           c->n_layers, in->has_output, is_70b, n_gqa);
    }
    shrink_dtype want = in->scheme->dtype;
    int w8a8 = want == SHRINK_DTYPE_W8A8 || want == SHRINK_DTYPE_W8A8_STATIC;
    return w8a8 && t->role == SK_ROLE_TOK_EMB && in->has_output ? SHRINK_DTYPE_INT8_CH : want;
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
    } else if (ov_type(in->ov, x->name) >= 0) {
        x->dtype = sk_quant_fallback((shrink_dtype)ov_type(in->ov, x->name), t->cols,
                                     &q->fallback);
    } else if (s->mix != SK_MIX_NONE) {
        int is_70b, n_gqa;
        sk_mix_facts(c, &is_70b, &n_gqa);
        x->dtype = sk_mix_type(s->mix, sk_mix_role(x->name, c->n_layers), t->cols, t->layer,
                               c->n_layers, in->has_output, is_70b, n_gqa, &q->fallback);
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
    q->want = tensor_want(in, xf, x, q);
    q->fold = in->folds ? &in->folds[x - xf->ts] : NULL;
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

/* Where row r lands in the GGUF file (q/k rows move to the interleaved RoPE order after
 * quantizing): palette groups are runs of rows of the file. */
static int64_t file_row(const sk_config *c, const sk_wtensor *t, int64_t r) {
    return sk_write_row_pos(c, t, SK_ROPE_INTERLEAVED, r);
}

/* A chunk of the palette pass: its rows into the whole tensor, in the file's order. */
static shrink_status whole_chunk(void *user, int tid, int64_t r, int64_t k, float *x) {
    qjob *j = user;
    if (j->cur_fold) sk_wfold_apply(j->cur_fold, r, k, x, j->range_cols); /* as q_rows */
    for (int64_t i = 0; i < k; i++)
        memcpy(j->whole + file_row(j->cfg, j->cur, r + i) * j->range_cols, x + i * j->range_cols,
               (size_t)j->range_cols * sizeof(float));
    return SHRINK_OK;
}

/* Palette types: the tensor as f32, then the k-means palette of each group of rows. */
static shrink_status palette_begin(qjob *j, sk_xf *xf, sk_xf_tensor *x, qtensor *q) {
    const int64_t rows = x->t.rows, cols = x->t.cols, k = sk_pal_k(x->dtype);
    j->range_cols = cols;
    j->cfg = &xf->base.cfg;
    j->cur = &x->t;
    j->cur_fold = q->fold;
    j->whole = sk_malloc((size_t)(rows * cols) * sizeof(float));
    q->pal = sk_calloc((size_t)((rows + k - 1) / k * k), sizeof(float));
    shrink_status st = SHRINK_OK;
    if (!j->whole || !q->pal)
        st = sk_error(SHRINK_ERR_NOMEM, "quantize: out of memory for the palettes of '%s'",
                      x->name);
    if (!st) st = sk_xf_map_rows(xf, x, 0, rows, whole_chunk, j);
    if (!st) st = sk_palette_fit(x->dtype, j->whole, rows, cols, q->qp.imatrix, q->pal);
    sk_free(j->whole);
    j->whole = NULL;
    return st;
}

/* --method gptq (gptq.c): the layer-by-layer pass is begun at the first tensor and run up to
 * the layer of each GPTQ'd tensor when the writer reaches it; its rows are then copied by
 * q_rows instead of quantized (kept tensors, embeddings, head: round to nearest) and freed
 * once written (q_end_block). */
static shrink_status gptq_tensor(qjob *j, sk_xf *xf, sk_xf_tensor *x) {
    shrink_status st;
    if (!j->gptq_sel) {
        j->gptq_sel = sk_malloc((size_t)xf->n);
        if (!j->gptq_sel) return sk_error(SHRINK_ERR_NOMEM, "quantize: out of memory");
        for (int64_t i = 0; i < xf->n; i++) j->gptq_sel[i] = !j->qs[i].kept;
        j->gptq->sel = j->gptq_sel;
        if ((st = sk_gptq_begin(xf, j->gptq))) return st;
    }
    const int64_t i = x - xf->ts;
    const int l = sk_gptq_layer_of(j->gptq, i);
    if (l < 0) return SHRINK_OK;
    if ((st = sk_gptq_upto(j->gptq, l))) return st;
    j->qs[i].gptq_rows = j->gptq->bytes[i];
    return SHRINK_OK;
}

/* Ranks other than 0 (p->comm): the GPTQ pass without the writer, layer after layer. */
static shrink_status gptq_rank_pass(qjob *j, sk_xf *xf) {
    shrink_status st = SHRINK_OK;
    for (int64_t i = 0; i < xf->n && !st; i++)
        if (!j->gptq_sel) st = gptq_tensor(j, xf, &xf->ts[i]);
    for (int l = 0; !st && j->gptq->st && l < j->gptq->layers_total; l++) {
        st = sk_gptq_upto(j->gptq, l);
        for (int64_t i = 0; i < xf->n; i++) {
            const int li = sk_gptq_layer_of(j->gptq, i);
            if (li >= 0 && li <= l) sk_gptq_release(j->gptq, i);
        }
    }
    return st;
}

/* Before a tensor's rows: per-tensor types need the whole tensor's min and max, palettes
 * their k-means. */
static shrink_status q_begin(void *user, sk_xf *xf, sk_xf_tensor *x) {
    qjob *j = user;
    qtensor *q = x->user;
    if (j->gptq) {
        shrink_status st = gptq_tensor(j, xf, x);
        if (st) return st;
    }
    acc_reset(j, xf->n_threads);
    if (sk_pal_k(x->dtype) && x->t.n_dims == 2) return palette_begin(j, xf, x, q);
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
static void quant_row(shrink_dtype t, const sk_qparams *qp, int exact, const float *xr,
                      uint8_t *y, int64_t cols) {
    const sk_dtype_traits *d = sk_dtype(t);
    const int searches = sk_quantize_searches(t);
    if (qp->imatrix && sk_qim_has(t) && (exact || !searches)) {
        if (exact || sk_qsearch_mode() == 0) sk_qim_quantize(t, xr, y, cols, qp->imatrix);
        else sk_qim_search(t, xr, y, cols, qp->imatrix); /* the K types */
    }
    else if (d->quantize && !(exact && searches))
        d->quantize(xr, y, cols, qp);
    else d->from_f32(xr, y, cols);
}

static void quantize_row(const qjob *j, const sk_xf_tensor *x, const qtensor *q, const float *xr,
                         uint8_t *y, int64_t cols) {
    quant_row(x->dtype, &q->qp, j->p->ggml_exact, xr, y, cols);
}

void sk_quantize_row_im(shrink_dtype t, const float *x, uint8_t *y, int64_t cols,
                        const float *im) {
    sk_qparams qp;
    memset(&qp, 0, sizeof qp);
    if (im && uses_imatrix(t)) qp.imatrix = im;
    quant_row(t, &qp, 0, x, y, cols);
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
    if (q->fold) sk_wfold_apply(q->fold, row0, k, rows, cols);
    for (int64_t i = 0; i < k; i++) {
        const float *xr = rows + (size_t)i * (size_t)cols;
        uint8_t *y = dst + (size_t)i * row_bytes;
        for (int64_t m = 0; m < cols; m++)
            if (!isfinite(xr[m]))
                return sk_error(SHRINK_ERR_RANGE, "tensor '%s' holds %s at row %" PRId64
                                ", column %" PRId64 ": a quantized copy would hide the damage; "
                                "the input model is broken", x->name, isnan(xr[m]) ? "NaN"
                                : "an infinity", row0 + i, m);
        if (q->pal) { /* the row's group palette; the round trip without the other rows */
            const int64_t r = file_row(j->cfg, &x->t, row0 + i), kk = sk_pal_k(x->dtype);
            const int64_t g0 = r / kk * kk;
            sk_qparams qp = q->qp;
            qp.palette = q->pal + g0;
            qp.pal_j = (int)(r - g0);
            qp.pal_g = (int)(x->t.rows - g0 < kk ? x->t.rows - g0 : kk);
            d->quantize(xr, y, cols, &qp);
            float lut[256] = {0};
            for (int e = 0; e < qp.pal_g; e++)
                lut[e] = sk_f16_to_f32(sk_f32_to_f16(qp.palette[e]));
            sk_pal_decode(x->dtype, y, 0, cols, lut, tmp);
        } else {
            if (q->gptq_rows) memcpy(y, q->gptq_rows + (size_t)(row0 + i) * row_bytes, row_bytes);
            else quantize_row(j, x, q, xr, y, cols);
            d->to_f32(y, tmp, cols);
        }
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

/* What the result says of output tensor x (shrink_quantize_tensor). */
static void tensor_info(const sk_xf_tensor *x, shrink_quantize_tensor *o) {
    const qtensor *q = x->user;
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", x->name);
    o->n_dims = x->t.n_dims;
    o->shape[0] = x->t.rows;
    o->shape[1] = x->t.n_dims == 1 ? 0 : x->t.cols;
    o->dtype = x->dtype;
    o->bytes = x->bytes;
    o->rel_rms = q->ref2 > 0 ? sqrt(q->err2 / q->ref2) : 0.0;
    o->fallback = q->fallback;
    o->kept = q->kept;
    o->wanted = q->want;
}

/* The caller's tensor_done, once tensor x is complete. */
static void tensor_done(const qjob *j, const sk_xf *xf, const sk_xf_tensor *x) {
    if (!j->p->tensor_done) return;
    shrink_quantize_tensor t;
    tensor_info(x, &t);
    j->p->tensor_done(j->p->user, &t, x - xf->ts, xf->n);
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
    if (row0 + n_rows >= (x->t.n_dims == 1 ? 1 : x->t.rows)) {
        sk_free(q->pal);
        q->pal = NULL;
        if (j->gptq) sk_gptq_release(j->gptq, x - xf->ts);
        q->gptq_rows = NULL;
        tensor_done(j, xf, x);
    }
    return SHRINK_OK;
}

/* Progress of the writing phase (phase 1; calibration is phase 0). */
static void q_progress(void *user, int64_t done, int64_t total) {
    const qjob *j = user;
    const shrink_quantize_params *p = j->p;
    /* GPTQ's layers are the calibration phase's progress until the last is done */
    if (j->gptq && j->gptq->layers_done < j->gptq->layers_total) return;
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
        st = sk_error(SHRINK_ERR_NOMEM, "quantize: out of memory for calibration");
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

/* ==== AWQ and SmoothQuant (awq.c) ======================================================= */

/* The calibrated method params->method names: 0 round to nearest, 1 AWQ; -1 unknown. */
enum { QM_RTN, QM_AWQ, QM_GPTQ };
static int quant_method(const shrink_quantize_params *p) {
    if (!p->method || !*p->method || strcasecmp(p->method, "rtn") == 0) return QM_RTN;
    if (strcasecmp(p->method, "awq") == 0) return QM_AWQ;
    if (strcasecmp(p->method, "gptq") == 0) return QM_GPTQ;
    return -1;
}

/* --method awq / --smooth: plans every tensor (the searches quantize in the planned types),
 * computes the folds into j->folds and, for w8a8_static, the smoothed inputs' activation
 * ranges into absmax. */
static shrink_status quant_fold(qjob *j, sk_xf *xf, const char *in,
                                const shrink_quantize_params *p, float *absmax,
                                shrink_quantize_result *r) {
    const int awq = quant_method(p) == QM_AWQ;
    if (!awq && !p->smooth) return SHRINK_OK;
    shrink_status st = SHRINK_OK;
    for (int64_t i = 0; i < xf->n && !st; i++) st = plan_tensor(j, xf, &xf->ts[i]);
    if (st) return st;
    sk_fold_params fp = {.kind = awq ? SK_FOLD_AWQ : SK_FOLD_SMOOTH, .alpha = p->smooth_alpha,
                         .grid = 20, .clip = !p->awq_no_clip, .exact = p->ggml_exact,
                         .calib_path = p->calib_path, .calib_tokens = p->calib_tokens,
                         .calib_ctx = p->calib_ctx > 0 ? p->calib_ctx : p->imatrix_ctx,
                         .tokenizer_path = p->tokenizer_path,
                         .progress = im_progress, .user = (void *)(uintptr_t)p};
    sk_wfold *folds = NULL;
    sk_fold_info fi;
    if ((st = sk_fold_compute(xf, in, &fp, &folds, &fi))) return st;
    j->folds = folds;
    const int L = xf->base.cfg.n_layers;
    if (fi.act_absmax && absmax)
        for (int l = 0; l < L; l++) {
            static const sk_linear att[3] = {SK_LIN_Q, SK_LIN_K, SK_LIN_V};
            static const sk_linear ffn[2] = {SK_LIN_GATE, SK_LIN_UP};
            const float a = fi.act_absmax[l * 2], f = fi.act_absmax[l * 2 + 1];
            for (int k = 0; k < 3 && a > 0.0f; k++) absmax[l * SK_LIN_COUNT + att[k]] = a;
            for (int k = 0; k < 2 && f > 0.0f; k++) absmax[l * SK_LIN_COUNT + ffn[k]] = f;
        }
    sk_free(fi.act_absmax);
    r->calib_tokens = fi.tokens;
    r->fold_inputs = fi.n_inputs;
    r->awq_mean_alpha = fi.mean_alpha;
    r->awq_clipped = fi.n_clipped;
    return SHRINK_OK;
}

/* ==== shrink_quantize ==================================================================== */

shrink_quantize_params shrink_quantize_params_default(void) {
    shrink_quantize_params p = {.scheme = NULL, .keep = NULL, .keep_dtype = SHRINK_DTYPE_F16,
                                .calib_path = NULL, .calib_tokens = 4096,
                                .tokenizer_path = NULL, .tensor_stats = false,
                                .ggml_exact = false,
                                .progress = NULL, .user = NULL, .smooth_alpha = 0.5,
                                .gptq_damp = 0.01, .gptq_block = 128};
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

/* --method awq and --smooth: what they serve and need. */
static shrink_status check_method(const shrink_quantize_params *p, const sk_scheme *s) {
    const int mth = quant_method(p);
    const shrink_dtype d = s->dtype;
    const int w8a8 = d == SHRINK_DTYPE_W8A8 || d == SHRINK_DTYPE_W8A8_STATIC;
    if (mth < 0)
        return sk_error(SHRINK_ERR_ARG, "unknown quantization method '%s' (rtn, awq, gptq)",
                        p->method);
    if (mth == QM_AWQ) {
        if (w8a8 || d == SHRINK_DTYPE_INT8_T || d == SHRINK_DTYPE_INT8_T_ASYM)
            return sk_error(SHRINK_ERR_ARG, "--method awq cannot serve scheme %s: its scales "
                            "are searched per quantization group or row%s", s->name,
                            w8a8 ? " of weights; for w8a8 use --smooth (SmoothQuant)" : "");
        if ((p->imatrix_path && *p->imatrix_path) || (p->imatrix_calib && *p->imatrix_calib))
            return sk_error(SHRINK_ERR_ARG, "--method awq and an importance matrix: the "
                            "importance describes the unscaled inputs; give one of them");
        if (!p->calib_path || !*p->calib_path)
            return sk_error(SHRINK_ERR_ARG, "--method awq needs a calibration text (--calib "
                            "FILE): the scales are searched on the model's activations");
    }
    if (p->smooth) {
        if (mth == QM_GPTQ)
            return sk_error(SHRINK_ERR_ARG, "--smooth and --method gptq do not combine: GPTQ "
                            "rounds the unsmoothed weights");
        if (!w8a8)
            return sk_error(SHRINK_ERR_ARG, "--smooth applies to the schemes w8a8 and "
                            "w8a8_static (int8 activations), not %s", s->name);
        if (!(p->smooth_alpha >= 0.0 && p->smooth_alpha <= 1.0))
            return sk_error(SHRINK_ERR_ARG, "--smooth %g: the migration strength must be in "
                            "[0, 1]", p->smooth_alpha);
        if (!p->calib_path || !*p->calib_path)
            return sk_error(SHRINK_ERR_ARG, "--smooth needs a calibration text (--calib FILE): "
                            "the activation ranges are measured on it");
    }
    return SHRINK_OK;
}

/* Adapters merged before quantizing: round to nearest only (a calibration pass would run the
 * unmerged model). */
static shrink_status check_lora(const shrink_quantize_params *p, const sk_scheme *s) {
    if (p->n_lora < 0 || (p->n_lora > 0 && !p->lora))
        return sk_error(SHRINK_ERR_ARG, "quantize: bad adapter list (%d adapters)", (int)p->n_lora);
    if (p->n_lora == 0) return SHRINK_OK;
    const char *what = quant_method(p) != QM_RTN                   ? "--method"
                       : p->smooth                                 ? "--smooth"
                       : p->imatrix_path && *p->imatrix_path       ? "--imatrix"
                       : p->imatrix_calib && *p->imatrix_calib     ? "--imatrix-calib"
                       : s->dtype == SHRINK_DTYPE_W8A8_STATIC      ? "scheme w8a8_static"
                                                                   : NULL;
    if (what)
        return sk_error(SHRINK_ERR_ARG, "%s and LoRA adapters merged while quantizing: the "
                        "calibration would run the unmerged model; merge first (--dtype f32), "
                        "then quantize the merged file", what);
    return SHRINK_OK;
}

/* --method: rtn, or gptq with what it needs (a calibration text, a scheme it serves). */
static shrink_status check_gptq(const shrink_quantize_params *p, const sk_scheme *s) {
    if (!p->method || strcasecmp(p->method, "gptq") != 0) return SHRINK_OK; /* check_method */
    if (s->mix != SK_MIX_NONE || !sk_gptq_serves(s->dtype, 0))
        return sk_error(SHRINK_ERR_ARG, "--method gptq cannot write scheme %s (%s): it writes "
                        "q4_0, q4_1, q5_0, q5_1, q8_0, int4_g32/g64/g128 (and _asym), int8_ch "
                        "and w8a8", s->name, s->mix != SK_MIX_NONE ? "a mix of K-types"
                        : shrink_dtype_name(s->dtype));
    if (!p->calib_path || !*p->calib_path)
        return sk_error(SHRINK_ERR_ARG, "--method gptq needs a calibration text (--calib FILE): "
                        "it rounds every matrix against the Hessian of its inputs on that text");
    if (p->imatrix_path || p->imatrix_calib)
        return sk_error(SHRINK_ERR_ARG, "--method gptq does not take an importance matrix "
                        "(--imatrix): GPTQ weighs the rounding by the full Hessian instead");
    if (p->calib_tokens < 1)
        return sk_error(SHRINK_ERR_ARG, "--method gptq: calibration tokens %lld < 1",
                        (long long)p->calib_tokens);
    if (!(p->gptq_damp > 0.0) || !isfinite(p->gptq_damp))
        return sk_error(SHRINK_ERR_ARG, "--method gptq: damping %g must be > 0 (a fraction of "
                        "the Hessian's mean diagonal: 0.01 is 1 %%)", p->gptq_damp);
    if (p->gptq_block < 1 || p->calib_ctx < 0)
        return sk_error(SHRINK_ERR_ARG, "--method gptq: block %d and calibration window %d must "
                        "be positive", p->gptq_block, p->calib_ctx);
    return SHRINK_OK;
}

static void gptq_progress(void *user, int64_t done, int64_t total) {
    const shrink_quantize_params *p = user;
    if (p->progress) p->progress(p->user, 0, done, total);
}

static shrink_status check_params(const char *in, const char *out,
                                  const shrink_quantize_params *p, const sk_scheme **s) {
    char list[512];
    if (!in || !*in || !out || !*out)
        return sk_error(SHRINK_ERR_ARG, "quantize: input and output paths are required");
    if (!p->scheme)
        return sk_error(SHRINK_ERR_ARG, "quantize: no scheme (one of: %s)",
                        scheme_list(list, sizeof list));
    *s = sk_scheme_find(p->scheme);
    if (!*s && !strncasecmp(p->scheme, "pal", 3) && p->scheme[3] >= '0' && p->scheme[3] <= '9') {
        long k = strtol(p->scheme + 3, NULL, 10);
        return sk_error(SHRINK_ERR_ARG, "scheme '%s': a palette of k = %ld entries %s; the "
                        "palettes are pal4, pal16 and pal256 (k a power of two, at most 256)",
                        p->scheme, k, k > 256 ? "is larger than 256"
                                  : (k & (k - 1)) || k < 2 ? "is not a power of two"
                                                           : "has no type yet");
    }
    if (!*s)
        return sk_error(SHRINK_ERR_ARG, "unknown scheme '%s' (one of: %s)", p->scheme,
                        scheme_list(list, sizeof list));
    if (p->keep_dtype < 0 || p->keep_dtype >= SHRINK_DTYPE_COUNT ||
        !sk_dtype((shrink_dtype)p->keep_dtype)->name ||
        !sk_dtype((shrink_dtype)p->keep_dtype)->block)
        return sk_error(SHRINK_ERR_ARG, "quantize: unknown type %d for kept tensors",
                        (int)p->keep_dtype);
    if ((*s)->dtype == SHRINK_DTYPE_W8A8_STATIC && (!p->calib_path || !*p->calib_path))
        return sk_error(SHRINK_ERR_ARG, "scheme w8a8_static needs a calibration text: the "
                        "activation scale of every matrix is measured by running the model over "
                        "it (give --calib FILE; w8a8 needs none)");
    if (p->calib_tokens < 0)
        return sk_error(SHRINK_ERR_ARG, "quantize: a calibration token count of %lld is negative",
                        (long long)p->calib_tokens);
    shrink_status st = check_method(p, *s);
    if (!st) st = check_gptq(p, *s);
    if (!st) st = check_lora(p, *s);
    if (st) return st;
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
    for (int64_t i = 0; i < n; i++) tensor_info(&xf->ts[i], &r->tensors[i]);
}

shrink_status shrink_quantize(const char *in, const char *out, const shrink_quantize_params *p,
                              shrink_quantize_result *r) {
    return sk_quantize_with(in, out, p, NULL, r);
}

shrink_status sk_quantize_with(const char *in, const char *out, const shrink_quantize_params *p,
                               const sk_quant_override *ov, shrink_quantize_result *r) {
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
    sk_lora *lora = NULL;
    sk_lora_merge lm;
    memset(&lm, 0, sizeof lm);
    sk_xf xf;
    memset(&xf, 0, sizeof xf);
    qjob j;
    memset(&j, 0, sizeof j);
    j.scheme = s;
    j.p = p;
    j.absmax = absmax;
    j.ov = ov;
    sk_gptq_run gr;
    memset(&gr, 0, sizeof gr);
    if (p->method && strcasecmp(p->method, "gptq") == 0) {
        gr = (sk_gptq_run){.in = in, .tokenizer_path = p->tokenizer_path,
                           .calib_path = p->calib_path, .calib_tokens = p->calib_tokens,
                           .calib_ctx = p->calib_ctx, .head = p->gptq_head,
                           .o = {.damp = p->gptq_damp, .act_order = p->gptq_act_order,
                                 .block = p->gptq_block, .search = !p->ggml_exact},
                           .progress = gptq_progress, .user = (void *)(uintptr_t)p,
                           .comm = p->comm};
        j.gptq = &gr;
    }
    if (ov && ov->im) j.im = ov->im;
    else if ((st = quant_imatrix(in, p, &im, &r->calib_tokens))) goto out;
    else j.im = im;
    if ((st = sk_xf_open(&xf, in, p->tokenizer_path, "quantize"))) goto out;
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
    if (p->n_lora > 0) {
        if ((st = sk_lora_read_list(p->lora, p->lora_scales, p->n_lora, &xf.base.cfg, &lora)))
            goto out;
        sk_lora_merge_source(&lm, &xf.base, lora, 0, &xf.base);
    }
    if (im && (st = sk_imatrix_check(im, &xf, p->imatrix_path && *p->imatrix_path
                                               ? p->imatrix_path : p->imatrix_calib)))
        goto out;
    r->in_file_bytes = m->file_bytes;
    /* output.weight is written unless the head is the token embedding */
    j.has_output = !m->cfg.tied;
    /* one dequantized row of the longest tensor row per thread, and per-thread sums */
    for (int64_t i = 0; i < xf.n; i++) {
        int64_t cols = xf.ts[i].t.n_dims == 1 ? xf.ts[i].t.rows : xf.ts[i].t.cols;
        if (cols > j.deq_cols) j.deq_cols = cols;
    }
    j.qs = sk_calloc((size_t)xf.n, sizeof *j.qs);
    j.deq = sk_aligned_alloc(64, (size_t)xf.n_threads * (size_t)j.deq_cols * sizeof(float));
    j.acc = sk_aligned_alloc(64, (size_t)xf.n_threads * sizeof *j.acc);
    if (!j.qs || !j.deq || !j.acc) {
        st = sk_error(SHRINK_ERR_NOMEM, "quantize: out of memory");
        goto out;
    }
    if ((st = quant_fold(&j, &xf, in, p, absmax, r))) goto out;
    sk_xf_method method = {.plan = plan_tensor, .begin = q_begin, .rows = q_rows,
                           .end_block = q_end_block, .user = &j};
    sk_xf_opts o = {.dtype = s->dtype, .file_type = s->file_type, .progress = q_progress,
                    .progress_user = &j};
    if (ov) {
        if (ov->file_type >= 0) o.file_type = ov->file_type;
        o.dry_bytes = ov->dry_bytes;
    }
    if (j.gptq && p->comm && p->comm->n_ranks > 1 && p->comm->rank > 0) {
        /* a rank other than 0 plans the tensors (nothing written), runs its share of the
         * GPTQ pass and frees each layer once the next one has run */
        uint64_t dry = 0;
        o.dry_bytes = &dry;
        if ((st = sk_xf_write(&xf, out, &method, &o))) goto out;
        st = gptq_rank_pass(&j, &xf);
        if (!st) {
            r->calib_tokens = gr.n_tokens;
            r->gptq_matrices = gr.n_matrices;
        }
        goto out;
    }
    if ((st = sk_xf_write(&xf, out, &method, &o))) goto out;
    if (o.dry_bytes) goto out;

    fill_result(r, s, &xf, p);
    for (int64_t i = 0; i < xf.n; i++)
        r->imatrix_used += ((const qtensor *)xf.ts[i].user)->qp.imatrix != NULL;
    r->imatrix_entries = im ? im->n : 0;
    if (j.gptq) {
        r->calib_tokens = gr.n_tokens;
        r->gptq_matrices = gr.n_matrices;
        r->gptq_damp_raised = gr.damp_raised;
        r->gptq_max_damp = gr.max_damp;
    }
    struct stat sb;
    if (stat(out, &sb) == 0) r->out_file_bytes = (uint64_t)sb.st_size;
    r->seconds = shrink_time() - t0;
out:
    for (int64_t i = 0; j.qs && i < xf.n; i++) sk_free(j.qs[i].pal);
    sk_wfold_free((sk_wfold *)j.folds, xf.n);
    sk_free(j.qs);
    sk_free(j.deq);
    sk_free(j.acc);
    sk_free(absmax);
    sk_imatrix_free(im);
    sk_gptq_run_free(&gr, xf.n);
    sk_free(j.gptq_sel);
    sk_xf_close(&xf);
    sk_lora_merge_free(&lm);
    sk_lora_free(lora);
    return st;
}
