/*
 * qmix.c - llama.cpp's quantization mixes (qmix.h): llama_tensor_get_type's per-tensor rules for
 * Q2_K, Q3_K_S/M/L, Q4_K_S/M, Q5_K_S/M (src/llama-quant.cpp at the commit of
 * ../shared/fixtures/gguf: c392e50, build 4748), one table row per mix (mix_rows). Used by
 * `shrink quantize` (src/quant/quantize.c) and QAT (src/train/qat.c).
 */
#include "qmix.h"
#include "tensors.h"

#include <strings.h>

/* llama.cpp's use_more_bits: the first and last eighth of the layers and every third between */
static int use_more_bits(int i_layer, int n_layers) {
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 ||
           (i_layer - n_layers / 8) % 3 == 2;
}

/* llama.cpp's per-tensor rules of its mixes (llama_tensor_get_type), one row per mix. A rule
 * gives a role `hit` where its condition holds for the tensor's layer i of n, else `miss`
 * (KEEP: the mix's base type). */
typedef enum { W_NEVER = 0, W_ALWAYS, W_MORE_BITS, W_FIRST, W_FIRST_FRAC, W_GQA } mix_when;
#define KEEP SHRINK_DTYPE_COUNT
typedef struct mix_rule {
    mix_when     when;
    int          arg;        /* W_FIRST: i < arg; W_FIRST_FRAC: i < n / arg; W_GQA: n_gqa >= arg */
    shrink_dtype hit, miss;
} mix_rule;
typedef struct mix_row {
    sk_mix       mix;
    const char  *name;       /* `shrink quantize --scheme`'s */
    int64_t      file_type;  /* llama_ftype (llama.h) */
    shrink_dtype base;
    mix_rule     attn_v, ffn_down, attn_output, attn_qkv;
} mix_row;

#define Q(t) SHRINK_DTYPE_##t
static const mix_row mix_rows[] = {
    /* mix          base     attn_v                           ffn_down
     *              attn_output                    attn_qkv */
    {SK_MIX_Q2_K, "q2_K_M", 10,   Q(Q2_K), {W_GQA, 4, Q(Q4_K), Q(Q3_K)},    {W_ALWAYS, 0, Q(Q3_K), KEEP},
                    {W_ALWAYS, 0, Q(Q3_K), KEEP},  {W_NEVER, 0, KEEP, KEEP}},
    {SK_MIX_Q3_K_S, "q3_K_S", 11, Q(Q3_K), {W_NEVER, 0, KEEP, KEEP},        {W_NEVER, 0, KEEP, KEEP},
                    {W_NEVER, 0, KEEP, KEEP},      {W_NEVER, 0, KEEP, KEEP}},
    {SK_MIX_Q3_K_M, "q3_K_M", 12, Q(Q3_K), {W_FIRST, 2, Q(Q5_K), Q(Q4_K)},  {W_FIRST_FRAC, 16, Q(Q5_K), Q(Q4_K)},
                    {W_ALWAYS, 0, Q(Q4_K), KEEP},  {W_ALWAYS, 0, Q(Q4_K), KEEP}},
    {SK_MIX_Q3_K_L, "q3_K_L", 13, Q(Q3_K), {W_ALWAYS, 0, Q(Q5_K), KEEP},    {W_ALWAYS, 0, Q(Q5_K), KEEP},
                    {W_ALWAYS, 0, Q(Q5_K), KEEP},  {W_ALWAYS, 0, Q(Q4_K), KEEP}},
    {SK_MIX_Q4_K_S, "q4_K_S", 14, Q(Q4_K), {W_FIRST, 4, Q(Q5_K), KEEP},     {W_FIRST_FRAC, 8, Q(Q5_K), KEEP},
                    {W_NEVER, 0, KEEP, KEEP},      {W_NEVER, 0, KEEP, KEEP}},
    {SK_MIX_Q4_K_M, "q4_K_M", 15, Q(Q4_K), {W_MORE_BITS, 0, Q(Q6_K), KEEP}, {W_MORE_BITS, 0, Q(Q6_K), KEEP},
                    {W_NEVER, 0, KEEP, KEEP},      {W_ALWAYS, 0, Q(Q5_K), KEEP}},
    {SK_MIX_Q5_K_S, "q5_K_S", 16, Q(Q5_K), {W_NEVER, 0, KEEP, KEEP},        {W_NEVER, 0, KEEP, KEEP},
                    {W_NEVER, 0, KEEP, KEEP},      {W_NEVER, 0, KEEP, KEEP}},
    {SK_MIX_Q5_K_M, "q5_K_M", 17, Q(Q5_K), {W_MORE_BITS, 0, Q(Q6_K), KEEP}, {W_MORE_BITS, 0, Q(Q6_K), KEEP},
                    {W_NEVER, 0, KEEP, KEEP},      {W_ALWAYS, 0, Q(Q6_K), KEEP}},
};
#undef Q

static shrink_dtype apply_rule(const mix_rule *r, shrink_dtype base, int i, int n, int n_gqa) {
    int hit = r->when == W_ALWAYS || (r->when == W_MORE_BITS && use_more_bits(i, n)) ||
              (r->when == W_FIRST && i < r->arg) || (r->when == W_FIRST_FRAC && i < n / r->arg) ||
              (r->when == W_GQA && n_gqa >= r->arg);
    shrink_dtype t = hit ? r->hit : r->miss;
    return t == KEEP ? base : t;
}


static const mix_row *row_of(sk_mix mix) {
    for (size_t k = 0; k < sizeof mix_rows / sizeof mix_rows[0]; k++)
        if (mix_rows[k].mix == mix) return &mix_rows[k];
    return NULL;
}

sk_mix sk_mix_find(const char *name) {
    char buf[32];
    size_t n = name ? strlen(name) : sizeof buf;
    if (n >= sizeof buf) return SK_MIX_NONE;
    for (size_t i = 0; i <= n; i++) buf[i] = name[i] == '-' ? '_' : name[i];
    for (size_t k = 0; k < sizeof mix_rows / sizeof mix_rows[0]; k++)
        if (strcasecmp(buf, mix_rows[k].name) == 0) return mix_rows[k].mix;
    return SK_MIX_NONE;
}

const char *sk_mix_name(sk_mix mix) {
    const mix_row *m = row_of(mix);
    return m ? m->name : NULL;
}

shrink_dtype sk_mix_base(sk_mix mix) {
    const mix_row *m = row_of(mix);
    return m ? m->base : SHRINK_DTYPE_F16;
}

int64_t sk_mix_file_type(sk_mix mix) {
    const mix_row *m = row_of(mix);
    return m ? m->file_type : -1;
}

void sk_mix_facts(const sk_config *c, int *is_70b, int *n_gqa) {
    /* llama.cpp's 70B rule (80 layers with GQA: only the Llama family has GQA) */
    *is_70b = c->n_layers == 80 && c->n_heads != c->n_kv_heads;
    *n_gqa = c->n_kv_heads > 0 ? c->n_heads / c->n_kv_heads : 1;
}

int sk_mix_role(const char *gguf_name, int n_layer) {
    int layer;
    return sk_trole_find(NULL, SK_TNAME_GGUF, gguf_name, n_layer, &layer);
}

shrink_dtype sk_mix_want(sk_mix mix, int role, int64_t ne0, int i_layer, int n_layer,
                         int has_output, int is_70b, int n_gqa) {
    const mix_row *m = row_of(mix);
    if (!m) return SHRINK_DTYPE_Q4_K; /* not a mix */
    const shrink_dtype base = m->base;
    shrink_dtype t = base;
    if (role == SK_ROLE_HEAD || (!has_output && role == SK_ROLE_TOK_EMB)) {
        /* the output matrix (or the embedding that serves as one): q6_K, q8_0 if the K-quant
         * block does not divide its rows */
        t = ne0 % (int64_t)sk_dtype(base)->block != 0 ? SHRINK_DTYPE_Q8_0 : SHRINK_DTYPE_Q6_K;
    } else if (role == SK_ROLE_WV) {
        t = apply_rule(&m->attn_v, base, i_layer, n_layer, n_gqa);
        if (is_70b && (t == SHRINK_DTYPE_Q3_K || t == SHRINK_DTYPE_Q4_K)) t = SHRINK_DTYPE_Q5_K;
    } else if (role == SK_ROLE_W_DOWN) {
        t = apply_rule(&m->ffn_down, base, i_layer, n_layer, n_gqa);
    } else if (role == SK_ROLE_WO) {
        t = apply_rule(&m->attn_output, base, i_layer, n_layer, n_gqa);
    } else if (role == SK_ROLE_WQKV) {
        t = apply_rule(&m->attn_qkv, base, i_layer, n_layer, n_gqa);
    }
    /* every other matrix (token embedding, q, k, gate, up): the base type */
    return t;
}

shrink_dtype sk_mix_type(sk_mix mix, int role, int64_t ne0, int i_layer, int n_layer,
                         int has_output, int is_70b, int n_gqa, int *fallback) {
    /* llama.cpp's convert_incompatible_tensor: q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0,
     * q2_K / q3_K -> iq4_nl, then f16; q8_0 has no fallback there (it refuses the model), f16
     * here */
    shrink_dtype want = sk_mix_want(mix, role, ne0, i_layer, n_layer, has_output, is_70b, n_gqa);
    shrink_dtype got = sk_gguf_fallback(want, ne0);
    if (fallback && got != want) *fallback = 1;
    return got;
}
