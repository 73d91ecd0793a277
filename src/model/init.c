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
#include "../formats/formats.h"

#include <math.h>
#include <omp.h>

/* ==== presets ============================================================================== */

/* Shapes copied from each model's config.json on the Hugging Face hub (`source`). n_params is
 * the published count where one is published to the parameter (gpt2, gpt2-medium,
 * smollm-135m, llama-3.2-1b, tinyllama-1.1b); the stories rows give the count of their shape
 * (llama2.c's shared classifier, i.e. tied), which the model names round ("15M"). */
static const sk_preset sk_presets[] = {
    /* name              arch     D     L   H   KV  F     V       S       eps    theta   tied bos     eos     params          source */
    {"gpt2",            "gpt2",  768,  12, 12, 12, 3072, 50257,  1024,   1e-5f, 0,       1, 50256,  50256,  124439808LL,  "openai-community/gpt2"},
    {"gpt2-medium",     "gpt2",  1024, 24, 16, 16, 4096, 50257,  1024,   1e-5f, 0,       1, 50256,  50256,  354823168LL,  "openai-community/gpt2-medium"},
    {"smollm-135m",     "llama", 576,  30, 9,  3,  1536, 49152,  2048,   1e-5f, 10000,   1, 0,      0,      134515008LL,  "HuggingFaceTB/SmolLM-135M"},
    {"llama-3.2-1b",    "llama", 2048, 16, 32, 8,  8192, 128256, 131072, 1e-5f, 500000,  1, 128000, 128001, 1235814400LL, "meta-llama/Llama-3.2-1B (without rope_scaling)"},
    {"tinyllama-1.1b",  "llama", 2048, 22, 32, 4,  5632, 32000,  2048,   1e-5f, 10000,   0, 1,      2,      1100048384LL, "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T"},
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
    out->add_bos     = out->arch->names != SK_NAMES_GPT2;
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

/* ==== the tensor table ===================================================================== */

typedef enum init_dim { ID_NONE, ID_D, ID_F, ID_V, ID_S, ID_Q, ID_KV, ID_QKV } init_dim;

typedef enum init_need {
    IN_ALWAYS,
    IN_QKV_BIAS,  /* cfg.qkv_bias */
    IN_OUT_BIAS,  /* arch.out_bias, or Llama's attention_bias (q/k/v and o_proj together) */
    IN_MLP_BIAS,  /* arch.mlp_bias */
    IN_NORM_BIAS, /* arch.norm_bias */
    IN_SWIGLU,    /* arch.ffn == SWIGLU */
    IN_LEARNED,   /* arch.pos == LEARNED */
    IN_UNTIED,    /* the head is not tied */
} init_need;

typedef struct init_row {
    const char  *name;    /* %d = layer index */
    int          layer;   /* 1: once per layer */
    init_dim     d0, d1;  /* file shape; d1 ID_NONE for vectors */
    sk_init_kind kind;
    init_need    need;
    int          resid;   /* GPT-2 residual projection: std / sqrt(2 L) */
} init_row;

/* LlamaForCausalLM (llama, mistral, qwen2). */
static const init_row rows_llama[] = {
    {"model.embed_tokens.weight",                       0, ID_V,  ID_D,    SK_INIT_NORMAL, IN_ALWAYS,   0},
    {"model.layers.%d.input_layernorm.weight",          1, ID_D,  ID_NONE, SK_INIT_ONES,   IN_ALWAYS,   0},
    {"model.layers.%d.self_attn.q_proj.weight",         1, ID_Q,  ID_D,    SK_INIT_NORMAL, IN_ALWAYS,   0},
    {"model.layers.%d.self_attn.q_proj.bias",           1, ID_Q,  ID_NONE, SK_INIT_ZEROS,  IN_QKV_BIAS, 0},
    {"model.layers.%d.self_attn.k_proj.weight",         1, ID_KV, ID_D,    SK_INIT_NORMAL, IN_ALWAYS,   0},
    {"model.layers.%d.self_attn.k_proj.bias",           1, ID_KV, ID_NONE, SK_INIT_ZEROS,  IN_QKV_BIAS, 0},
    {"model.layers.%d.self_attn.v_proj.weight",         1, ID_KV, ID_D,    SK_INIT_NORMAL, IN_ALWAYS,   0},
    {"model.layers.%d.self_attn.v_proj.bias",           1, ID_KV, ID_NONE, SK_INIT_ZEROS,  IN_QKV_BIAS, 0},
    {"model.layers.%d.self_attn.o_proj.weight",         1, ID_D,  ID_Q,    SK_INIT_NORMAL, IN_ALWAYS,   0},
    {"model.layers.%d.self_attn.o_proj.bias",           1, ID_D,  ID_NONE, SK_INIT_ZEROS,  IN_OUT_BIAS, 0},
    {"model.layers.%d.post_attention_layernorm.weight", 1, ID_D,  ID_NONE, SK_INIT_ONES,   IN_ALWAYS,   0},
    {"model.layers.%d.mlp.gate_proj.weight",            1, ID_F,  ID_D,    SK_INIT_NORMAL, IN_SWIGLU,   0},
    {"model.layers.%d.mlp.up_proj.weight",              1, ID_F,  ID_D,    SK_INIT_NORMAL, IN_ALWAYS,   0},
    {"model.layers.%d.mlp.down_proj.weight",            1, ID_D,  ID_F,    SK_INIT_NORMAL, IN_ALWAYS,   0},
    {"model.norm.weight",                               0, ID_D,  ID_NONE, SK_INIT_ONES,   IN_ALWAYS,   0},
    {"lm_head.weight",                                  0, ID_V,  ID_D,    SK_INIT_NORMAL, IN_UNTIED,   0},
    {NULL, 0, 0, 0, 0, 0, 0},
};

/* GPT2LMHeadModel: Conv1D weights are stored (in, out). */
static const init_row rows_gpt2[] = {
    {"transformer.wte.weight",              0, ID_V, ID_D,    SK_INIT_NORMAL, IN_ALWAYS,    0},
    {"transformer.wpe.weight",              0, ID_S, ID_D,    SK_INIT_NORMAL, IN_LEARNED,   0},
    {"transformer.h.%d.ln_1.weight",        1, ID_D, ID_NONE, SK_INIT_ONES,   IN_ALWAYS,    0},
    {"transformer.h.%d.ln_1.bias",          1, ID_D, ID_NONE, SK_INIT_ZEROS,  IN_NORM_BIAS, 0},
    {"transformer.h.%d.attn.c_attn.weight", 1, ID_D, ID_QKV,  SK_INIT_NORMAL, IN_ALWAYS,    0},
    {"transformer.h.%d.attn.c_attn.bias",   1, ID_QKV, ID_NONE, SK_INIT_ZEROS, IN_QKV_BIAS, 0},
    {"transformer.h.%d.attn.c_proj.weight", 1, ID_Q, ID_D,    SK_INIT_NORMAL, IN_ALWAYS,    1},
    {"transformer.h.%d.attn.c_proj.bias",   1, ID_D, ID_NONE, SK_INIT_ZEROS,  IN_OUT_BIAS,  0},
    {"transformer.h.%d.ln_2.weight",        1, ID_D, ID_NONE, SK_INIT_ONES,   IN_ALWAYS,    0},
    {"transformer.h.%d.ln_2.bias",          1, ID_D, ID_NONE, SK_INIT_ZEROS,  IN_NORM_BIAS, 0},
    {"transformer.h.%d.mlp.c_fc.weight",    1, ID_D, ID_F,    SK_INIT_NORMAL, IN_ALWAYS,    0},
    {"transformer.h.%d.mlp.c_fc.bias",      1, ID_F, ID_NONE, SK_INIT_ZEROS,  IN_MLP_BIAS,  0},
    {"transformer.h.%d.mlp.c_proj.weight",  1, ID_F, ID_D,    SK_INIT_NORMAL, IN_ALWAYS,    1},
    {"transformer.h.%d.mlp.c_proj.bias",    1, ID_D, ID_NONE, SK_INIT_ZEROS,  IN_MLP_BIAS,  0},
    {"transformer.ln_f.weight",             0, ID_D, ID_NONE, SK_INIT_ONES,   IN_ALWAYS,    0},
    {"transformer.ln_f.bias",               0, ID_D, ID_NONE, SK_INIT_ZEROS,  IN_NORM_BIAS, 0},
    {"lm_head.weight",                      0, ID_V, ID_D,    SK_INIT_NORMAL, IN_UNTIED,    0},
    {NULL, 0, 0, 0, 0, 0, 0},
};

static int64_t dim_of(const sk_config *c, init_dim d) {
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    switch (d) {
    case ID_NONE: return 0;
    case ID_D:    return c->dim;
    case ID_F:    return c->ffn_dim;
    case ID_V:    return c->vocab_size;
    case ID_S:    return c->max_seq_len;
    case ID_Q:    return q;
    case ID_KV:   return kv;
    case ID_QKV:  return q + 2 * kv;
    }
    return 0;
}

static int needed(const sk_config *c, init_need n) {
    const sk_arch *a = c->arch;
    switch (n) {
    case IN_ALWAYS:    return 1;
    case IN_QKV_BIAS:  return c->qkv_bias;
    case IN_OUT_BIAS:  return a->out_bias || (c->qkv_bias && !a->qkv_bias);
    case IN_MLP_BIAS:  return a->mlp_bias;
    case IN_NORM_BIAS: return a->norm_bias;
    case IN_SWIGLU:    return a->ffn == SK_FFN_SWIGLU;
    case IN_LEARNED:   return a->pos == SK_POS_LEARNED;
    case IN_UNTIED:    return !c->tied;
    }
    return 1;
}

/* FNV-1a of a name: the stream a tensor's values come from. */
static uint64_t name_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
    return h;
}

/* Visits every tensor of config c in order; with out != NULL fills out[0..). Returns the
 * number of tensors. */
static int64_t walk(const sk_config *c, float init_range, sk_init_tensor *out) {
    const init_row *rows = c->arch->names == SK_NAMES_GPT2 ? rows_gpt2 : rows_llama;
    float resid_std = init_range / sqrtf(2.0f * (float)c->n_layers);
    int64_t n = 0;
    /* rows in table order, the per-layer block repeated for each layer */
    const init_row *first_layer = rows;
    while (first_layer->name && !first_layer->layer) first_layer++;
    const init_row *after_layers = first_layer;
    while (after_layers->name && after_layers->layer) after_layers++;

    for (int pass = 0; pass < 3; pass++) {
        const init_row *lo = pass == 0 ? rows : pass == 1 ? first_layer : after_layers;
        const init_row *hi = pass == 0 ? first_layer : pass == 1 ? after_layers : NULL;
        int n_rep = pass == 1 ? c->n_layers : 1;
        for (int l = 0; l < n_rep; l++) {
            for (const init_row *r = lo; r->name && r != hi; r++) {
                if (!needed(c, r->need)) continue;
                if (out) {
                    sk_init_tensor *t = &out[n];
                    memset(t, 0, sizeof *t);
                    snprintf(t->name, sizeof t->name, r->name, l);
                    t->n_dims = r->d1 == ID_NONE ? 1 : 2;
                    t->shape[0] = dim_of(c, r->d0);
                    t->shape[1] = r->d1 == ID_NONE ? 0 : dim_of(c, r->d1);
                    t->n_elems = t->shape[0] * (t->n_dims == 2 ? t->shape[1] : 1);
                    t->kind = r->kind;
                    t->std = r->kind != SK_INIT_NORMAL ? 0 : r->resid ? resid_std : init_range;
                    t->key = name_hash(t->name);
                }
                n++;
            }
        }
    }
    return n;
}

shrink_status sk_init_tensors(const sk_config *c, float init_range, sk_init_tensor **out,
                              int64_t *n_out) {
    *out = NULL;
    *n_out = 0;
    shrink_status st = sk_config_validate(c, "sk_init_tensors");
    if (st) return st;
    if (!(init_range >= 0 && isfinite(init_range)))
        return sk_error(SHRINK_ERR_ARG, "sk_init_tensors: initializer range %g must be finite "
                        "and >= 0", (double)init_range);
    int64_t n = walk(c, init_range, NULL);
    sk_init_tensor *t = sk_calloc((size_t)n, sizeof *t);
    if (!t) return sk_error(SHRINK_ERR_NOMEM, "sk_init_tensors: out of memory for %" PRId64
                            " tensors", n);
    walk(c, init_range, t);
    *out = t;
    *n_out = n;
    return SHRINK_OK;
}

int64_t sk_init_n_params(const sk_config *c) {
    sk_init_tensor *t;
    int64_t n, sum = 0;
    if (sk_init_tensors(c, 0.02f, &t, &n)) return -1;
    for (int64_t i = 0; i < n; i++) sum += t[i].n_elems;
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

/* Box–Muller on pair p of a stream: two independent standard normals from the uniforms of
 * counters 2p and 2p + 1. u1 is in (0, 1] (never 0, so the log is finite), u2 in [0, 1). */
static inline void normal_pair(uint64_t key, uint64_t p, double *z0, double *z1) {
    double u1 = ((double)(stream_bits(key, 2 * p) >> 11) + 1.0) * 0x1p-53;
    double u2 = (double)(stream_bits(key, 2 * p + 1) >> 11) * 0x1p-53;
    double r = sqrt(-2.0 * log(u1));
    double a = 2.0 * M_PI * u2;
    *z0 = r * cos(a);
    *z1 = r * sin(a);
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

#define SK_INIT_CHUNK 8192   /* elements per parallel work item */

void sk_init_fill(const sk_init_tensor *t, uint64_t seed, int64_t start, int64_t n, float *dst) {
    SHRINK_ASSERT(start >= 0 && n >= 0 && start + n <= t->n_elems);
    if (t->kind != SK_INIT_NORMAL) {
        float v = t->kind == SK_INIT_ONES ? 1.0f : 0.0f;
        for (int64_t k = 0; k < n; k++) dst[k] = v;
        return;
    }
    uint64_t key = mix64(seed ^ mix64(t->key));
    double std = t->std;
    int64_t n_chunks = (n + SK_INIT_CHUNK - 1) / SK_INIT_CHUNK;
    #pragma omp parallel for schedule(static) if (n_chunks > 4 && !omp_in_parallel())
    for (int64_t ch = 0; ch < n_chunks; ch++) {
        int64_t lo = ch * SK_INIT_CHUNK;
        int64_t m = n - lo < SK_INIT_CHUNK ? n - lo : SK_INIT_CHUNK;
        fill_normal(key, (float)std, start + lo, m, dst + lo);
    }
}
