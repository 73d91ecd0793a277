/*
 * init.c - random-weight models (`shrink init`): the preset table, the tensor table of a
 * config with each tensor's initializer, and the counter-based normal generator (init.h).
 *
 * What it does not do: write files. The writers (src/formats/) pull tensor data from
 * sk_init_fill range by range, so a model is never held in memory as a whole.
 *
 * The initializers are those of Hugging Face transformers' _init_weights
 * (modeling_llama.py LlamaPreTrainedModel, modeling_gpt2.py GPT2PreTrainedModel):
 * nn.Linear / Conv1D / nn.Embedding weights normal_(0, initializer_range), biases zero_(),
 * RMSNorm / LayerNorm weights fill_(1) (LayerNorm biases zero), and for GPT-2 the
 * "Scale the weights of residual layers at initialization" rule: every "c_proj.weight" gets
 * normal_(0, initializer_range / sqrt(2 * n_layer)).
 * The numbers are ours, not PyTorch's (torch.normal_ is not reproducible outside PyTorch):
 * the distribution is the same, the values are not.
 */
#include "init.h"

#include "../core/json.h"
#include "../model/source.h"

#include <math.h>
#include <omp.h>

/* ==== presets ============================================================================== */

/* Shapes copied from each model's config.json on the Hugging Face hub (`source`). n_params is
 * the published count where one is published to the parameter (gpt2, gpt2-medium,
 * smollm-135m, llama-3.2-1b, tinyllama-1.1b, llama-2-7b); the stories rows give the count of their shape
 * (llama2.c's shared classifier, i.e. tied), which the model names round ("15M"). */
static const sk_preset sk_presets[] = {
    /* name              arch     D     L   H   KV  F     V       S       eps    theta   tied bos     eos     params          source */
    {"gpt2",            "gpt2",  768,  12, 12, 12, 3072, 50257,  1024,   1e-5f, 0,       1, 50256,  50256,  124439808LL,  "openai-community/gpt2"},
    {"gpt2-medium",     "gpt2",  1024, 24, 16, 16, 4096, 50257,  1024,   1e-5f, 0,       1, 50256,  50256,  354823168LL,  "openai-community/gpt2-medium"},
    {"smollm-135m",     "llama", 576,  30, 9,  3,  1536, 49152,  2048,   1e-5f, 10000,   1, 0,      0,      134515008LL,  "HuggingFaceTB/SmolLM-135M"},
    {"llama-3.2-1b",    "llama", 2048, 16, 32, 8,  8192, 128256, 131072, 1e-5f, 500000,  1, 128000, 128001, 1235814400LL, "meta-llama/Llama-3.2-1B (without rope_scaling)"},
    {"tinyllama-1.1b",  "llama", 2048, 22, 32, 4,  5632, 32000,  2048,   1e-5f, 10000,   0, 1,      2,      1100048384LL, "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T"},
    {"llama-2-7b",      "llama", 4096, 32, 32, 32, 11008, 32000, 4096,   1e-5f, 10000,   0, 1,      2,      6738415616LL, "meta-llama/Llama-2-7b-hf"},
    {"stories260K",     "llama", 64,   5,  8,  4,  172,  512,    512,    1e-5f, 10000,   1, 1,      2,      260032LL,     "karpathy/tinyllamas stories260K"},
    {"stories15M",      "llama", 288,  6,  6,  6,  768,  32000,  256,    1e-5f, 10000,   1, 1,      2,      15191712LL,   "karpathy/tinyllamas stories15M"},
    {"stories42M",      "llama", 512,  8,  8,  8,  1376, 32000,  1024,   1e-5f, 10000,   1, 1,      2,      41689600LL,   "karpathy/tinyllamas stories42M"},
    {"stories110M",     "llama", 768,  12, 12, 12, 2048, 32000,  1024,   1e-5f, 10000,   1, 1,      2,      109529856LL,  "karpathy/tinyllamas stories110M"},
};

#define SK_N_PRESETS ((int)(sizeof sk_presets / sizeof sk_presets[0]))

const sk_preset *sk_preset_at(int i) {
    return i >= 0 && i < SK_N_PRESETS ? &sk_presets[i] : NULL;
}

const sk_preset *sk_preset_find(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < SK_N_PRESETS; i++)
        if (strcmp(sk_presets[i].name, name) == 0) return &sk_presets[i];
    return NULL;
}

shrink_status sk_preset_config(const sk_preset *p, sk_config *out) {
    memset(out, 0, sizeof *out);
    out->arch = sk_arch_find(p->arch);
    SHRINK_ASSERT(out->arch != NULL);
    out->dim         = p->dim;
    out->n_layers    = p->n_layers;
    out->n_heads     = p->n_heads;
    out->n_kv_heads  = p->n_kv_heads;
    out->head_dim    = p->dim / p->n_heads;
    out->ffn_dim     = p->ffn_dim;
    out->vocab_size  = p->vocab_size;
    out->max_seq_len = p->max_seq_len;
    out->norm_eps    = p->norm_eps;
    out->rope_theta  = p->rope_theta;
    out->rope_layout = SK_ROPE_HALF;
    out->tied        = p->tied;
    out->qkv_bias    = out->arch->qkv_bias;
    out->bos_id      = p->bos_id;
    out->eos_id      = p->eos_id;
    out->add_bos     = out->arch->add_bos;
    return sk_config_validate(out, p->name);
}

/* ==== config.json ========================================================================== */

#define SK_INIT_MAX_CONFIG (16u << 20)

/* initializer_range of config.json text (0.02 when absent or null). */
static shrink_status parse_init_range(const char *text, size_t len, const char *name,
                                      float *out) {
    sk_json *j;
    shrink_status st = sk_json_parse(text, len, name, &j);
    if (st) return st;
    *out = 0.02f;
    const sk_json *v = sk_json_get(j, "initializer_range");
    if (v && v->type != SK_JSON_NULL) {
        if (v->type != SK_JSON_NUMBER || !isfinite(v->number) || v->number < 0 ||
            v->number > 1e3)
            st = sk_error(SHRINK_ERR_FORMAT, "%s: initializer_range must be a number in "
                          "[0, 1000]", name);
        else
            *out = (float)v->number;
    }
    sk_json_free(j);
    return st;
}

shrink_status sk_init_config_load(const char *path, sk_config *cfg, float *init_range) {
    char *file = sk_dir_exists(path) ? sk_path_join(path, "config.json") : sk_strdup(path);
    char *text = NULL;
    size_t len = 0;
    shrink_status st;
    if (!file) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    if ((st = sk_read_file(file, SK_INIT_MAX_CONFIG, &text, &len))) goto out;
    if (sk_dir_exists(path)) st = sk_config_load(path, cfg);   /* with tokenizer_config.json */
    else st = sk_config_parse(text, len, file, NULL, 0, cfg);
    if (st) goto out;
    st = parse_init_range(text, len, file, init_range);
out:
    sk_free(text);
    sk_free(file);
    return st;
}

/* ==== initializers ======================================================================== */

/* FNV-1a of a name: the stream a tensor's values come from. */
static uint64_t name_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
    return h;
}

sk_init_spec sk_init_spec_of(const sk_config *c, float init_range, const sk_wtensor *t) {
    /* the tensor table's init columns: what _init_weights does to a tensor of that role */
    const sk_trole *r = sk_trole_at(t->role);
    SHRINK_ASSERT(r);
    sk_init_spec s = {.kind = r->init, .std = 0, .key = name_hash(t->name)};
    if (s.kind == SK_INIT_NORMAL) {
        s.std = init_range;
        /* GPT-2's "Scale the weights of residual layers at initialization" (HF's
         * GPT2PreTrainedModel matches every parameter named "c_proj.weight"; Llama: none) */
        if (r->resid && c->arch->resid_scale)
            s.std = init_range / sqrtf(2.0f * (float)c->n_layers);
    }
    return s;
}

int64_t sk_init_n_params(const sk_config *c) {
    sk_wtensor *t;
    int64_t n, sum = 0;
    if (sk_config_validate(c, "model configuration") || sk_wtensors(c, &t, &n)) return -1;
    for (int64_t i = 0; i < n; i++) sum += t[i].rows * (t[i].n_dims == 2 ? t[i].cols : 1);
    sk_free(t);
    return sum;
}

/* ==== the generator ======================================================================== */

/* splitmix64 (Steele, Lea, Flood 2014; Vigna's reference splitmix64.c): output number c of
 * the generator whose state starts at `key` is mix(key + (c + 1) * golden). A counter-based
 * generator: any output is computed directly from its index. */
#define SK_GOLDEN 0x9E3779B97F4A7C15ULL

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t stream_bits(uint64_t key, uint64_t c) {
    return mix64(key + (c + 1) * SK_GOLDEN);
}

/* ln x for x in (0, 1] (never subnormal here): x = m 2^e with m in [sqrt(1/2), sqrt(2)),
 * ln m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = (m - 1) / (m + 1), |s| <= 0.1716;
 * the terms up to s^19 leave a relative error below 1e-16. Our own code rather than libm's
 * log so the values are the same with every C library, and 3x faster. */
static inline double ln_unit(double x) {
    uint64_t b;
    memcpy(&b, &x, 8);
    int64_t e = (int64_t)(b >> 52) - 1023;
    b = (b & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL;   /* m in [1, 2) */
    double m;
    memcpy(&m, &b, 8);
    int big = m > 1.4142135623730951;
    m = big ? 0.5 * m : m;
    e += big;
    double s = (m - 1.0) / (m + 1.0), s2 = s * s;
    double p = 1.0 / 19;
    p = 1.0 / 17 + s2 * p;
    p = 1.0 / 15 + s2 * p;
    p = 1.0 / 13 + s2 * p;
    p = 1.0 / 11 + s2 * p;
    p = 1.0 / 9 + s2 * p;
    p = 1.0 / 7 + s2 * p;
    p = 1.0 / 5 + s2 * p;
    p = 1.0 / 3 + s2 * p;
    return (double)e * 0.6931471805599453 + 2.0 * s * (1.0 + s2 * p);
}

/* sin and cos of t in [-pi/4, pi/4] by their Taylor series (to t^15 and t^16: error below
 * 1e-16). */
static inline void sincos_quarter(double t, double *s, double *c) {
    double t2 = t * t;
    double ps = -1.0 / 1307674368000.0;                /* -1/15! */
    ps = 1.0 / 6227020800.0 + t2 * ps;                 /*  1/13! */
    ps = -1.0 / 39916800.0 + t2 * ps;                  /* -1/11! */
    ps = 1.0 / 362880.0 + t2 * ps;                     /*  1/9!  */
    ps = -1.0 / 5040.0 + t2 * ps;
    ps = 1.0 / 120.0 + t2 * ps;
    ps = -1.0 / 6.0 + t2 * ps;
    double pc = 1.0 / 20922789888000.0;                /*  1/16! */
    pc = -1.0 / 87178291200.0 + t2 * pc;               /* -1/14! */
    pc = 1.0 / 479001600.0 + t2 * pc;                  /*  1/12! */
    pc = -1.0 / 3628800.0 + t2 * pc;                   /* -1/10! */
    pc = 1.0 / 40320.0 + t2 * pc;
    pc = -1.0 / 720.0 + t2 * pc;
    pc = 1.0 / 24.0 + t2 * pc;
    pc = -0.5 + t2 * pc;
    *s = t + t * t2 * ps;
    *c = 1.0 + t2 * pc;
}

/* Box–Muller on pair p of a stream: two independent standard normals
 *     z0 = r cos(phi), z1 = r sin(phi),  r = sqrt(-2 ln u1),  phi uniform in a period,
 * from the 64-bit words of counters 2p and 2p + 1:
 *     u1 = (top 53 bits of word 2p + 1) / 2^53, in (0, 1] (never 0: the log is finite);
 *     phi = q pi/2 + (f - 1/2) pi/2, q = top 2 bits of word 2p + 1, f = its next 52 bits
 *     / 2^52 in [0, 1): a quadrant and an angle in [-pi/4, pi/4) within it. */
static inline void normal_pair(uint64_t key, uint64_t p, double *z0, double *z1) {
    uint64_t w0 = stream_bits(key, 2 * p), w1 = stream_bits(key, 2 * p + 1);
    double u1 = ((double)(w0 >> 11) + 1.0) * 0x1p-53;
    double r = sqrt(-2.0 * ln_unit(u1));
    unsigned q = (unsigned)(w1 >> 62);
    double f = (double)((w1 >> 10) & 0xFFFFFFFFFFFFFULL) * 0x1p-52;
    double s, c;
    sincos_quarter((f - 0.5) * 1.5707963267948966, &s, &c);
    /* rotate (cos, sin) by q quarter turns */
    double cq = (q & 1) ? s : c, sq = (q & 1) ? c : s;
    *z0 = r * ((q == 1 || q == 2) ? -cq : cq);
    *z1 = r * ((q >= 2) ? -sq : sq);
}

/* Elements [start, start + n) of a normal(0, std) stream: element 2p is z0 of pair p,
 * element 2p + 1 is z1, so the result is the same however the range is cut. */
static void fill_normal(uint64_t key, float std, int64_t start, int64_t n, float *dst) {
    int64_t i = start, end = start + n;
    double z0, z1;
    if (i < end && (i & 1)) {
        normal_pair(key, (uint64_t)i / 2, &z0, &z1);
        dst[i++ - start] = (float)(std * z1);
    }
    for (; i + 1 < end; i += 2) {
        normal_pair(key, (uint64_t)i / 2, &z0, &z1);
        dst[i - start] = (float)(std * z0);
        dst[i + 1 - start] = (float)(std * z1);
    }
    if (i < end) {
        normal_pair(key, (uint64_t)i / 2, &z0, &z1);
        dst[i - start] = (float)(std * z0);
    }
}

/* Element i of a stream: element 2p is z0 of pair p, 2p + 1 is z1. */
static inline float normal_at(uint64_t key, float std, uint64_t i) {
    double z0, z1;
    normal_pair(key, i / 2, &z0, &z1);
    return (float)(std * ((i & 1) ? z1 : z0));
}

static inline uint64_t stream_key(const sk_init_spec *s, uint64_t seed) {
    return mix64(seed ^ mix64(s->key));
}

#define SK_INIT_CHUNK 8192   /* elements per parallel work item */

/* A block of a tensor as the writer asks for it: output element k is canonical element
 * start + k, or (transposed) canonical element (k % rows) * cols + col0 + k / rows. */
typedef struct init_block {
    sk_init_spec s;
    uint64_t     key;         /* stream_key(s, seed) */
    int          transposed;
    int64_t      start;       /* not transposed */
    int64_t      rows, cols;  /* transposed: the canonical shape */
    int64_t      col0;
} init_block;

/* Output elements [k0, k0 + m) of block b into out[0..m) as f32. */
static void block_f32(const init_block *b, int64_t k0, int64_t m, float *out) {
    if (b->s.kind != SK_INIT_NORMAL) {
        float v = b->s.kind == SK_INIT_ONES ? 1.0f : 0.0f;
        for (int64_t k = 0; k < m; k++) out[k] = v;
    } else if (!b->transposed) {
        fill_normal(b->key, b->s.std, b->start + k0, m, out);
    } else {
        /* one element at a time (each costs a whole Box–Muller pair): only GPT-2's Conv1D
         * weights in a Hugging Face file are asked for this way */
        for (int64_t k = k0; k < k0 + m; k++) {
            int64_t j = k / b->rows, r = k % b->rows;
            out[k - k0] = normal_at(b->key, b->s.std, (uint64_t)(r * b->cols + b->col0 + j));
        }
    }
}

/* n output elements of block b into dst as `dtype`: chunks of SK_INIT_CHUNK over the threads,
 * each generated in f32 (in place for f32, else in a per-chunk buffer) and narrowed. */
static void block_fill(const init_block *b, int64_t n, shrink_dtype dtype, void *dst) {
    const sk_dtype_traits *d = sk_dtype(dtype);
    int64_t n_chunks = (n + SK_INIT_CHUNK - 1) / SK_INIT_CHUNK;
    #pragma omp parallel for schedule(static) if (n_chunks > 4 && !omp_in_parallel())
    for (int64_t ch = 0; ch < n_chunks; ch++) {
        float buf[SK_INIT_CHUNK];
        int64_t k0 = ch * SK_INIT_CHUNK;
        int64_t m = n - k0 < SK_INIT_CHUNK ? n - k0 : SK_INIT_CHUNK;
        if (dtype == SHRINK_DTYPE_F32) {
            block_f32(b, k0, m, (float *)dst + k0);
        } else {
            block_f32(b, k0, m, buf);
            d->from_f32(buf, (uint8_t *)dst + (size_t)k0 * d->bytes, m);
        }
    }
}

void sk_init_fill(const sk_init_spec *s, uint64_t seed, int64_t start, int64_t n, float *dst) {
    SHRINK_ASSERT(start >= 0 && n >= 0);
    init_block b = {.s = *s, .key = stream_key(s, seed), .start = start};
    block_fill(&b, n, SHRINK_DTYPE_F32, dst);
}

void sk_init_fill_cols(const sk_init_spec *s, uint64_t seed, int64_t rows, int64_t cols,
                       int64_t col0, int64_t n_cols, float *dst) {
    SHRINK_ASSERT(col0 >= 0 && n_cols >= 0 && col0 + n_cols <= cols);
    init_block b = {.s = *s, .key = stream_key(s, seed), .transposed = 1, .rows = rows,
                    .cols = cols, .col0 = col0};
    block_fill(&b, rows * n_cols, SHRINK_DTYPE_F32, dst);
}

/* ==== the tensor source ==================================================================== */

/* sk_fill_fn: rows [row0, row0 + n_rows) of tensor t (or of its transpose), generated
 * straight into dst: no buffer beyond one chunk per thread. */
static shrink_status init_fill(void *user, const sk_wtensor *t, int64_t row0, int64_t n_rows,
                               int transposed, shrink_dtype dtype, void *dst) {
    const sk_init_params *p = user;
    sk_init_spec s = sk_init_spec_of(&p->cfg, p->init_range, t);
    int64_t cols = t->n_dims == 2 ? t->cols : 1;
    init_block b = {.s = s, .key = stream_key(&s, p->seed), .transposed = transposed,
                    .start = row0 * cols, .rows = t->rows, .cols = cols, .col0 = row0};
    block_fill(&b, n_rows * (transposed ? t->rows : cols), dtype, dst);
    return SHRINK_OK;
}

void sk_init_source(const sk_init_params *p, sk_source *src) {
    memset(src, 0, sizeof *src);
    src->cfg   = p->cfg;
    src->dtype = p->dtype;
    src->fill  = init_fill;
    src->user  = (void *)p;
    src->name  = "shrink init";
}

/* ==== public API =========================================================================== */

int32_t shrink_preset_count(void) { return SK_N_PRESETS; }

shrink_status shrink_preset_get(int32_t i, shrink_preset_info *info) {
    const sk_preset *p = sk_preset_at(i);
    if (!p || !info)
        return sk_error(SHRINK_ERR_RANGE, "preset index %" PRId32 " not in [0, %d)",
                        i, SK_N_PRESETS);
    sk_config c;
    shrink_status st = sk_preset_config(p, &c);
    if (st) return st;
    memset(info, 0, sizeof *info);
    info->name            = p->name;
    info->arch            = p->arch;
    info->source          = p->source;
    info->dim             = p->dim;
    info->n_layers        = p->n_layers;
    info->n_heads         = p->n_heads;
    info->n_kv_heads      = p->n_kv_heads;
    info->ffn_dim         = p->ffn_dim;
    info->vocab_size      = p->vocab_size;
    info->max_seq_len     = p->max_seq_len;
    info->tied_embeddings = p->tied != 0;
    info->n_params        = sk_init_n_params(&c);
    return SHRINK_OK;
}

shrink_init_params shrink_init_params_default(void) {
    shrink_init_params p;
    memset(&p, 0, sizeof p);
    p.dtype = SHRINK_DTYPE_F32;
    return p;
}

/* The config and initializer range that params ask for. */
static shrink_status init_config(const shrink_init_params *params, sk_config *cfg,
                                 float *init_range) {
    if (!params->preset == !params->config_path)
        return sk_error(SHRINK_ERR_ARG, "init: give exactly one of a preset and a "
                        "config.json");
    if (params->config_path) return sk_init_config_load(params->config_path, cfg, init_range);
    const sk_preset *p = sk_preset_find(params->preset);
    if (!p) {
        char names[512];
        size_t k = 0;
        names[0] = '\0';
        for (int i = 0; i < SK_N_PRESETS && k < sizeof names; i++)
            k += (size_t)snprintf(names + k, sizeof names - k, "%s%s", i ? ", " : "",
                                  sk_presets[i].name);
        return sk_error(SHRINK_ERR_ARG, "unknown preset '%.64s' (presets: %s)", params->preset,
                        names);
    }
    *init_range = 0.02f;
    return sk_preset_config(p, cfg);
}

/* A tokenizer carried into the output: its size must fit the model's vocabulary, and its
 * BOS/EOS become the model's. */
static shrink_status init_tokenizer(const char *path, sk_config *cfg, shrink_tokenizer **out) {
    shrink_status st = shrink_tokenizer_load(out, path);
    if (st) return st;
    int32_t tv = shrink_tokenizer_vocab_size(*out);
    if (tv > cfg->vocab_size) {
        shrink_tokenizer_free(*out);
        *out = NULL;
        return sk_error(SHRINK_ERR_ARG, "%s: the tokenizer has %" PRId32 " tokens but the "
                        "model's vocabulary only %" PRId32, path, tv, cfg->vocab_size);
    }
    int32_t bos = shrink_tokenizer_bos(*out), eos = shrink_tokenizer_eos(*out);
    if (bos >= 0) cfg->bos_id = bos;
    if (eos >= 0) cfg->eos_id = eos;
    return SHRINK_OK;
}

/* Passes the writer's progress on and keeps the bytes written. */
typedef struct init_progress {
    int64_t done;
    void  (*fn)(void *user, int64_t done, int64_t total);
    void   *user;
} init_progress;

static void progress_relay(void *user, int64_t done, int64_t total) {
    init_progress *p = user;
    p->done = done;
    if (p->fn) p->fn(p->user, done, total);
}

shrink_status shrink_model_init(const char *out, const shrink_init_params *params,
                                shrink_init_result *result) {
    if (!out || !*out || !params)
        return sk_error(SHRINK_ERR_ARG, "init: no output path or no parameters given");
    if ((unsigned)params->dtype >= SHRINK_DTYPE_COUNT)
        return sk_error(SHRINK_ERR_ARG, "init: unknown type %d", (int)params->dtype);
    if (sk_dtype_quantized(params->dtype))
        return sk_error(SHRINK_ERR_ARG, "init: %s is a quantized type; init writes "
                        "f32, f16 or bf16 (quantize the result with shrink quantize or convert)",
                        shrink_dtype_name(params->dtype));
    sk_init_params ip = {.seed = params->seed, .dtype = params->dtype};
    shrink_status st = init_config(params, &ip.cfg, &ip.init_range);
    if (st) return st;

    sk_format fmt = sk_format_from_path(out);
    if (params->to) {
        int f = sk_format_parse(params->to);
        if (f < 0)
            return sk_error(SHRINK_ERR_ARG, "unknown output format '%.32s' (allowed: gguf, hf, "
                            "llama2c)", params->to);
        fmt = (sk_format)f;
    }
    shrink_tokenizer *tok = NULL;
    if (params->tokenizer_path && (st = init_tokenizer(params->tokenizer_path, &ip.cfg, &tok)))
        return st;

    sk_source src;
    sk_init_source(&ip, &src);
    src.tok = tok;
    src.tok_dir = params->tokenizer_path;
    sk_write_opts wo = sk_write_opts_default();
    wo.dtype = (int)params->dtype;
    init_progress pr = {0, params->progress, params->user};
    wo.progress = progress_relay;
    wo.progress_user = &pr;
    double t0 = shrink_time();
    st = sk_write(&src, out, fmt, &wo);
    shrink_tokenizer_free(tok);
    if (st) return st;
    if (result) {
        sk_wtensor *t;
        int64_t n = 0;
        memset(result, 0, sizeof *result);
        if (sk_wtensors(&ip.cfg, &t, &n) == SHRINK_OK) sk_free(t);
        result->n_params  = sk_init_n_params(&ip.cfg);
        result->tensor_bytes = (uint64_t)pr.done;
        result->arch         = ip.cfg.arch->name;
        result->format       = sk_format_name(fmt);
        result->n_tensors    = n;
        result->seconds      = shrink_time() - t0;
    }
    return SHRINK_OK;
}
