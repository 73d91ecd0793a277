/*
 * test_init.c - random-weight models (src/convert/init.c, `shrink init`):
 *   - the generator: against its specification written with libm (splitmix64 words,
 *     Box–Muller); same seed same bits with 1 and 2 threads and any cut of a tensor; other
 *     seeds and other tensors other values; mean, standard deviation, kurtosis, tails and
 *     lag correlations of 4M values; three pinned values;
 *   - the initializers of the canonical tensors (norms 1, biases 0, GPT-2 c_proj scaled,
 *     Llama not, tied heads absent) and the tensor source (blocks, transposed blocks, f16 and
 *     bf16 rounding);
 *   - every preset's parameter count against its published count (from the config only: the
 *     big ones are never written here); config.json with initializer_range, rope_scaling
 *     refused;
 *   - written models in a mktemp folder: stories260K-shaped (equal seeds equal bytes, other
 *     seeds other bytes, loads, norms 1, embedding statistics, runs; the GGUF and llama2.c
 *     files of the same seed give the Hugging Face folder's logits; bf16), a small GPT-2 from
 *     a config.json (biases 0, LayerNorms 1, scaled c_proj, runs), a tokenizer carried over
 *     (needs ../shared), bad requests leaving nothing behind.
 */
#include "convert/init.h"
#include "formats/formats.h"
#include "model/model.h"
#include "test_util.h"

#include <dirent.h>
#include <omp.h>
#include <unistd.h>

/* ---- the generator --------------------------------------------------------------------- */

static void test_generator(void) {
    const int64_t n = 1 << 22;
    sk_init_spec t = {.kind = SK_INIT_NORMAL, .std = 0.02f, .key = 12345};
    float *a = malloc((size_t)n * sizeof(float));
    float *b = malloc((size_t)n * sizeof(float));
    float *c = malloc((size_t)n * sizeof(float));
    SHRINK_ASSERT(a && b && c);

    /* same seed: identical bits, whatever the thread count and the cut */
    shrink_set_threads(2);
    sk_init_fill(&t, 7, 0, n, a);
    shrink_set_threads(1);
    sk_init_fill(&t, 7, 0, n, b);
    CHECK(memcmp(a, b, (size_t)n * sizeof(float)) == 0, "1 thread vs 2 threads differ");
    int64_t cuts[] = {0, 1, 2, 3, 4097, 8191, 8192, 8193, 100001, n - 3, n};
    for (size_t k = 0; k + 1 < sizeof cuts / sizeof cuts[0]; k++)
        sk_init_fill(&t, 7, cuts[k], cuts[k + 1] - cuts[k], c + cuts[k]);
    CHECK(memcmp(a, c, (size_t)n * sizeof(float)) == 0, "filled in odd ranges differs");
    shrink_set_threads(0);

    /* another seed, another tensor key: different values */
    sk_init_fill(&t, 8, 0, n, b);
    int64_t same = 0;
    for (int64_t i = 0; i < n; i++) same += a[i] == b[i];
    CHECK(same < n / 1000, "seed 7 and 8 agree on %lld of %lld values", (long long)same,
          (long long)n);
    sk_init_spec t2 = t;
    t2.key = 12346;
    sk_init_fill(&t2, 7, 0, n, b);
    same = 0;
    for (int64_t i = 0; i < n; i++) same += a[i] == b[i];
    CHECK(same < n / 1000, "tensor keys 12345 and 12346 agree on %lld values", (long long)same);

    /* statistics: mean 0 (sd of the mean = 0.02 / 2048 ~ 1e-5), std 0.02, normal tails */
    double sum = 0, sum2 = 0, sum4 = 0;
    int64_t beyond2 = 0, beyond3 = 0;
    int finite = 1;
    for (int64_t i = 0; i < n; i++) {
        double x = a[i];
        finite &= isfinite(x);
        sum += x;
        sum2 += x * x;
        sum4 += x * x * x * x;
        beyond2 += fabs(x) > 2 * 0.02;
        beyond3 += fabs(x) > 3 * 0.02;
    }
    double mean = sum / (double)n, var = sum2 / (double)n - mean * mean;
    double kurt = sum4 / (double)n / (var * var);
    CHECK(finite, "non-finite values");
    CHECK(fabs(mean) < 6e-5, "mean %g, want 0 +- 6e-5", mean);
    CHECK(fabs(sqrt(var) - 0.02) < 0.02 * 2e-3, "std %.7f, want 0.02 +- 0.2%%", sqrt(var));
    CHECK(fabs(kurt - 3.0) < 0.03, "kurtosis %g, want 3 (normal)", kurt);
    /* P(|z| > 2) = 0.0455, P(|z| > 3) = 0.0027 */
    CHECK(fabs((double)beyond2 / (double)n - 0.0455) < 0.001, "P(|z|>2) = %g",
          (double)beyond2 / (double)n);
    CHECK(fabs((double)beyond3 / (double)n - 0.0027) < 0.0003, "P(|z|>3) = %g",
          (double)beyond3 / (double)n);
    /* neighbours are independent (Box–Muller pairs included): lag-1 and lag-2 correlation */
    double c1 = 0, c2 = 0;
    for (int64_t i = 0; i + 2 < n; i++) {
        c1 += (double)a[i] * a[i + 1];
        c2 += (double)a[i] * a[i + 2];
    }
    c1 /= (double)(n - 2) * var;
    c2 /= (double)(n - 2) * var;
    CHECK(fabs(c1) < 3e-3 && fabs(c2) < 3e-3, "correlation lag 1 %g, lag 2 %g", c1, c2);

    /* the first values of seed 7, key 12345, pinned: a change of the generator shows here
     * (the generator uses no libm function but sqrt, so they are the same everywhere) */
    static const float pinned[3] = {-0.000386038271f, -0.0133024128f, 0.00372359366f};
    for (int i = 0; i < 3; i++)
        CHECK(a[i] == pinned[i], "value %d is %.9g, was %.9g", i, a[i], pinned[i]);
    free(a);
    free(b);
    free(c);
}

/* The specification of the generator, written with libm: splitmix64 words, Box–Muller. */
static uint64_t ref_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double ref_normal(uint64_t seed, uint64_t name_key, uint64_t i) {
    uint64_t k = ref_mix(seed ^ ref_mix(name_key)), p = i / 2;
    uint64_t w0 = ref_mix(k + (2 * p + 1) * 0x9E3779B97F4A7C15ULL);
    uint64_t w1 = ref_mix(k + (2 * p + 2) * 0x9E3779B97F4A7C15ULL);
    double u1 = ((double)(w0 >> 11) + 1) / 9007199254740992.0;                 /* 2^53 */
    double f = (double)((w1 >> 10) & 0xFFFFFFFFFFFFFULL) / 4503599627370496.0; /* 2^52 */
    double phi = (double)(w1 >> 62) * M_PI / 2 + (f - 0.5) * M_PI / 2;
    double r = sqrt(-2 * log(u1));
    return (i & 1) ? r * sin(phi) : r * cos(phi);
}

static void test_generator_ref(void) {
    enum { N = 200000 };
    static float z[N];
    sk_init_spec s = {.kind = SK_INIT_NORMAL, .std = 1.0f, .key = 777};
    sk_init_fill(&s, 42, 0, N, z);
    int bad = 0;
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double r = ref_normal(42, 777, (uint64_t)i), d = fabs(z[i] - r);
        /* z[i] is the reference rounded to float: within half an ulp, plus the ~1e-16 of the
         * polynomials */
        if (d > fabs(r) * 0x1p-24 * 1.0001 + 1e-15) bad++;
        if (d / (fabs(r) + 1e-300) > worst) worst = d / (fabs(r) + 1e-300);
    }
    CHECK(bad == 0, "%d of %d values differ from the libm Box–Muller (worst rel. %g)", bad, N,
          worst);
}

/* Columns of a matrix as rows of its transpose: the same values as the row-major fill. */
static void test_fill_cols(void) {
    const int64_t rows = 37, cols = 1001;
    sk_init_spec s = {.kind = SK_INIT_NORMAL, .std = 1.0f, .key = 99};
    float *a = malloc((size_t)(rows * cols) * sizeof(float));
    float *t = malloc((size_t)(rows * cols) * sizeof(float));
    SHRINK_ASSERT(a && t);
    sk_init_fill(&s, 3, 0, rows * cols, a);
    sk_init_fill_cols(&s, 3, rows, cols, 0, 500, t);
    sk_init_fill_cols(&s, 3, rows, cols, 500, cols - 500, t + 500 * rows);
    int same = 1;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) same &= a[r * cols + c] == t[c * rows + r];
    CHECK(same, "sk_init_fill_cols is not the transpose of sk_init_fill");
    free(a);
    free(t);
}

/* ---- initializers of the canonical tensors --------------------------------------------- */

typedef struct table {
    sk_config   c;
    sk_wtensor *t;
    int64_t     n;
} table;

static int table_of(const char *preset, table *tb) {
    memset(tb, 0, sizeof *tb);
    if (sk_preset_config(sk_preset_find(preset), &tb->c) != SHRINK_OK ||
        sk_wtensors(&tb->c, &tb->t, &tb->n) != SHRINK_OK) {
        CHECK(0, "%s: %s", preset, shrink_last_error());
        return 0;
    }
    return 1;
}

static const sk_wtensor *find(const table *tb, const char *name) {
    for (int64_t i = 0; i < tb->n; i++)
        if (!strcmp(tb->t[i].name, name)) return &tb->t[i];
    return NULL;
}

/* The initializer of tensor `name`; kind -1 if there is no such tensor. */
static sk_init_spec spec_of(const table *tb, const char *name) {
    const sk_wtensor *w = find(tb, name);
    sk_init_spec s = {.kind = (sk_init_kind)-1};
    return w ? sk_init_spec_of(&tb->c, 0.02f, w) : s;
}

static void test_specs_gpt2(void) {
    table tb;
    if (!table_of("gpt2", &tb)) return;
    float resid = 0.02f / sqrtf(24.0f);
    CHECK(tb.n == 2 + 12 * 12 + 2, "gpt2 has %lld tensors, want 148", (long long)tb.n);
    sk_init_spec s = spec_of(&tb, "h.3.attn.c_proj.weight");
    CHECK(s.kind == SK_INIT_NORMAL && s.std == resid, "attn.c_proj std %g, want %g",
          (double)s.std, (double)resid);
    s = spec_of(&tb, "h.11.mlp.c_proj.weight");
    CHECK(s.kind == SK_INIT_NORMAL && s.std == resid, "mlp.c_proj std %g", (double)s.std);
    s = spec_of(&tb, "h.0.attn.c_attn.weight");
    CHECK(s.kind == SK_INIT_NORMAL && s.std == 0.02f, "c_attn std 0.02");
    s = spec_of(&tb, "h.0.mlp.c_fc.weight");
    CHECK(s.kind == SK_INIT_NORMAL && s.std == 0.02f, "c_fc std 0.02");
    CHECK(spec_of(&tb, "h.0.attn.c_attn.bias").kind == SK_INIT_ZEROS, "c_attn bias zeros");
    CHECK(spec_of(&tb, "h.7.mlp.c_proj.bias").kind == SK_INIT_ZEROS, "mlp.c_proj bias zeros");
    CHECK(spec_of(&tb, "ln_f.weight").kind == SK_INIT_ONES, "ln_f weight ones");
    CHECK(spec_of(&tb, "ln_f.bias").kind == SK_INIT_ZEROS, "ln_f bias zeros");
    s = spec_of(&tb, "wpe.weight");
    CHECK(s.kind == SK_INIT_NORMAL && s.std == 0.02f, "wpe normal(0, 0.02)");
    CHECK(!find(&tb, "lm_head.weight"), "tied gpt2 has no lm_head");
    /* every tensor gets its own stream */
    int distinct = 1;
    for (int64_t i = 0; i < tb.n; i++)
        for (int64_t j = i + 1; j < tb.n; j++)
            distinct &= sk_init_spec_of(&tb.c, 0.02f, &tb.t[i]).key !=
                        sk_init_spec_of(&tb.c, 0.02f, &tb.t[j]).key;
    CHECK(distinct, "two tensors share a stream key");
    sk_free(tb.t);
}

static void test_specs_llama(void) {
    table tb;
    if (!table_of("tinyllama-1.1b", &tb)) return;
    CHECK(tb.n == 1 + 22 * 9 + 2, "tinyllama has %lld tensors, want 201", (long long)tb.n);
    const sk_wtensor *k = find(&tb, "model.layers.21.self_attn.k_proj.weight");
    CHECK(k && k->rows == 256 && k->cols == 2048, "k_proj (256, 2048)");
    sk_init_spec s = spec_of(&tb, "model.layers.21.self_attn.o_proj.weight");
    CHECK(s.kind == SK_INIT_NORMAL && s.std == 0.02f, "llama o_proj is not scaled");
    s = spec_of(&tb, "model.layers.3.mlp.down_proj.weight");
    CHECK(s.kind == SK_INIT_NORMAL && s.std == 0.02f, "llama down_proj is not scaled");
    CHECK(spec_of(&tb, "lm_head.weight").kind == SK_INIT_NORMAL, "untied head normal");
    s = spec_of(&tb, "model.layers.0.post_attention_layernorm.weight");
    CHECK(s.kind == SK_INIT_ONES, "rms norm ones");
    float v[2048];
    sk_init_fill(&s, 1, 0, 2048, v);
    int ones = 1;
    for (int i = 0; i < 2048; i++) ones &= v[i] == 1.0f;
    CHECK(ones, "norm weights are exactly 1");
    int64_t zeros = 0;
    for (int64_t i = 0; i < tb.n; i++)
        zeros += sk_init_spec_of(&tb.c, 0.02f, &tb.t[i]).kind == SK_INIT_ZEROS;
    CHECK(zeros == 0, "llama has no biases");
    sk_free(tb.t);

    /* qwen2: q/k/v biases, zero */
    tb.c.arch = sk_arch_find("qwen2");
    tb.c.qkv_bias = 1;
    CHECK(sk_wtensors(&tb.c, &tb.t, &tb.n) == SHRINK_OK, "qwen2 tensors");
    s = spec_of(&tb, "model.layers.0.self_attn.v_proj.bias");
    sk_init_fill(&s, 1, 0, 256, v);
    int zero = 1;
    for (int i = 0; i < 256; i++) zero &= v[i] == 0.0f;
    CHECK(s.kind == SK_INIT_ZEROS && zero, "qwen2 biases are exactly 0");
    sk_free(tb.t);
}

/* The tensor source: blocks, transposed blocks and narrowed dtypes give the generator's
 * values. */
static void test_source(void) {
    sk_init_params ip = {.seed = 5, .init_range = 0.02f, .dtype = SHRINK_DTYPE_F32};
    CHECK(sk_preset_config(sk_preset_find("stories260K"), &ip.cfg) == SHRINK_OK, "config");
    sk_source src;
    sk_init_source(&ip, &src);
    sk_wtensor *t;
    int64_t n;
    if (sk_wtensors(&ip.cfg, &t, &n) != SHRINK_OK) {
        CHECK(0, "sk_wtensors: %s", shrink_last_error());
        return;
    }
    const sk_wtensor *w = NULL;
    for (int64_t i = 0; i < n; i++)
        if (!strcmp(t[i].name, "model.layers.2.mlp.down_proj.weight")) w = &t[i];
    SHRINK_ASSERT(w && w->rows == 64 && w->cols == 172);
    float whole[64 * 172], block[10 * 172], tr[7 * 64];
    uint16_t half[10 * 172];
    sk_init_spec s = sk_init_spec_of(&ip.cfg, ip.init_range, w);
    sk_init_fill(&s, ip.seed, 0, 64 * 172, whole);
    CHECK(src.fill(src.user, w, 20, 10, 0, SHRINK_DTYPE_F32, block) == SHRINK_OK, "fill");
    CHECK(!memcmp(block, whole + 20 * 172, sizeof block), "rows 20..29 differ");
    CHECK(src.fill(src.user, w, 100, 7, 1, SHRINK_DTYPE_F32, tr) == SHRINK_OK, "fill T");
    int same = 1;
    for (int j = 0; j < 7; j++)
        for (int r = 0; r < 64; r++) same &= tr[j * 64 + r] == whole[r * 172 + 100 + j];
    CHECK(same, "transposed rows differ");
    CHECK(src.fill(src.user, w, 20, 10, 0, SHRINK_DTYPE_BF16, half) == SHRINK_OK, "fill bf16");
    same = 1;
    for (int i = 0; i < 10 * 172; i++) same &= half[i] == sk_f32_to_bf16(whole[20 * 172 + i]);
    CHECK(same, "bf16 block is not the rounded f32 block");
    CHECK(src.fill(src.user, w, 20, 10, 0, SHRINK_DTYPE_F16, half) == SHRINK_OK, "fill f16");
    same = 1;
    for (int i = 0; i < 10 * 172; i++) same &= half[i] == sk_f32_to_f16(whole[20 * 172 + i]);
    CHECK(same, "f16 block is not the rounded f32 block");
    sk_free(t);
}

/* ---- presets --------------------------------------------------------------------------- */

static void test_presets(void) {
    int n_presets = 0;
    for (int i = 0; sk_preset_at(i); i++, n_presets++) {
        const sk_preset *p = sk_preset_at(i);
        sk_config c;
        CHECK(sk_preset_config(p, &c) == SHRINK_OK, "%s: %s", p->name, shrink_last_error());
        CHECK(sk_preset_find(p->name) == p, "%s: find", p->name);
        int64_t got = sk_init_n_params(&c);
        CHECK(got == p->n_params, "%s: %lld parameters, published %lld", p->name,
              (long long)got, (long long)p->n_params);
    }
    CHECK(n_presets == 10, "%d presets", n_presets);
    /* the published counts, written out here once more (not read from the table) */
    static const struct { const char *name; int64_t n; } published[] = {
        {"gpt2", 124439808LL},          {"gpt2-medium", 354823168LL},
        {"smollm-135m", 134515008LL},   {"llama-3.2-1b", 1235814400LL},
        {"tinyllama-1.1b", 1100048384LL}, {"llama-2-7b", 6738415616LL},
    };
    for (size_t i = 0; i < sizeof published / sizeof published[0]; i++) {
        sk_config c;
        const sk_preset *p = sk_preset_find(published[i].name);
        CHECK(p && sk_preset_config(p, &c) == SHRINK_OK && sk_init_n_params(&c) == published[i].n,
              "%s: parameter count is not %lld", published[i].name, (long long)published[i].n);
    }
    CHECK(sk_preset_find("gpt3") == NULL, "unknown preset");
    const sk_preset *l = sk_preset_find("llama-3.2-1b");
    CHECK(l && l->rope_theta == 500000.0f && l->tied && l->n_kv_heads == 8, "llama-3.2-1b row");
}

/* ---- config.json ----------------------------------------------------------------------- */

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fputs(text, f);
    return fclose(f) == 0;
}

static void test_config(void) {
    char dir[] = "/tmp/test_init_XXXXXX", path[256];
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(path, "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 128,"
                     " \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
                     " \"num_key_value_heads\": 2, \"vocab_size\": 100,"
                     " \"initializer_range\": 0.05}");
    sk_config c;
    float r = 0;
    CHECK(sk_init_config_load(path, &c, &r) == SHRINK_OK, "config: %s", shrink_last_error());
    CHECK(r == 0.05f && c.dim == 64 && c.n_kv_heads == 2 && c.max_seq_len == 2048,
          "read initializer_range %g dim %d", (double)r, c.dim);
    CHECK(sk_init_config_load(dir, &c, &r) == SHRINK_OK && r == 0.05f, "folder: %s",
          shrink_last_error());
    write_file(path, "{\"model_type\": \"gpt2\", \"n_embd\": 32, \"n_layer\": 2, \"n_head\": 4,"
                     " \"vocab_size\": 50}");
    CHECK(sk_init_config_load(path, &c, &r) == SHRINK_OK && r == 0.02f && c.ffn_dim == 128,
          "gpt2 defaults: %s", shrink_last_error());
    write_file(path, "{\"model_type\": \"gpt2\", \"n_embd\": 32, \"n_layer\": 2, \"n_head\": 4,"
                     " \"initializer_range\": \"big\"}");
    CHECK(sk_init_config_load(path, &c, &r) == SHRINK_ERR_FORMAT &&
          strstr(shrink_last_error(), "initializer_range"), "bad initializer_range: %s",
          shrink_last_error());
    write_file(path, "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 128,"
                     " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 100,"
                     " \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 32.0}}");
    CHECK(sk_init_config_load(path, &c, &r) == SHRINK_ERR_UNSUPPORTED &&
          strstr(shrink_last_error(), "rope_scaling"), "rope_scaling refused: %s",
          shrink_last_error());
    remove(path);
    rmdir(dir);
}

/* ---- written models --------------------------------------------------------------------- */

static char tmp_root[] = "/tmp/test_init_XXXXXX";

/* Removes a file or a folder with its files (one level: the writers' outputs). */
static void rm_path(const char *path) {
    DIR *d = opendir(path);
    if (!d) {
        remove(path);
        return;
    }
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            remove(p);
        }
    closedir(d);
    rmdir(path);
}

/* Bytes of a file into a malloc'd buffer (NULL if it does not exist). */
static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    *len = b ? fread(b, 1, (size_t)n, f) : 0;
    fclose(f);
    return b;
}

/* 1 if files a and b exist and hold the same bytes. */
static int same_bytes(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static shrink_status init_to(const char *name, const char *preset, const char *config,
                             uint64_t seed, shrink_dtype dt, const char *fmt, const char *tok,
                             char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", tmp_root, name);
    shrink_init_params p = shrink_init_params_default();
    p.preset = preset;
    p.config_path = config;
    p.seed = seed;
    p.dtype = dt;
    p.to = fmt;
    p.tokenizer_path = tok;
    shrink_init_result r;
    shrink_status st = shrink_model_init(out, &p, &r);
    CHECK(st == SHRINK_OK, "init %s: %s", name, shrink_last_error());
    return st;
}

/* Logits of a few tokens (the last position), in out[vocab]; 0 on failure. */
static int run_logits(const char *path, float *out, int32_t vocab) {
    shrink_model *m = NULL;
    shrink_context *x = NULL;
    int ok = 0;
    shrink_load_params lp = shrink_load_params_default();
    lp.no_tokenizer = true;
    if (shrink_model_load(&m, path, &lp) != SHRINK_OK) {
        CHECK(0, "load %s: %s", path, shrink_last_error());
        return 0;
    }
    shrink_model_info mi;
    shrink_model_get_info(m, &mi);
    int32_t ids[5] = {1, 7, 42 % vocab, 300 % vocab, 11};
    if (mi.vocab_size == vocab && shrink_context_create(&x, m, 16, 8) == SHRINK_OK &&
        shrink_context_eval(x, ids, 5, 0, out, 1) == SHRINK_OK)
        ok = 1;
    CHECK(ok, "run %s: %s", path, shrink_last_error());
    shrink_context_free(x);
    shrink_model_free(m);
    return ok;
}

static void check_logits(const float *l, int32_t vocab, const char *what) {
    int finite = 1;
    float lo = l[0], hi = l[0];
    for (int32_t i = 0; i < vocab; i++) {
        finite &= isfinite(l[i]);
        lo = l[i] < lo ? l[i] : lo;
        hi = l[i] > hi ? l[i] : hi;
    }
    CHECK(finite && hi > lo, "%s: logits not finite or all equal", what);
}

/* stories260K's shape: equal seeds give equal bytes (also with 1 thread), other seeds other
 * bytes; the model loads, its weights are what the initializers say, and it runs. */
static void test_write_stories(void) {
    char a[512], b[512], c[512], fa[600], fb[600], fc[600];
    if (init_to("a", "stories260K", NULL, 1, SHRINK_DTYPE_F32, "hf", NULL, a, sizeof a)) return;
    shrink_set_threads(1);
    init_to("b", "stories260K", NULL, 1, SHRINK_DTYPE_F32, "hf", NULL, b, sizeof b);
    shrink_set_threads(0);
    init_to("c", "stories260K", NULL, 2, SHRINK_DTYPE_F32, "hf", NULL, c, sizeof c);
    snprintf(fa, sizeof fa, "%s/model.safetensors", a);
    snprintf(fb, sizeof fb, "%s/model.safetensors", b);
    snprintf(fc, sizeof fc, "%s/model.safetensors", c);
    CHECK(same_bytes(fa, fb), "seed 1 twice (2 threads, 1 thread): different bytes");
    CHECK(!same_bytes(fa, fc), "seeds 1 and 2: the same bytes");
    snprintf(fa, sizeof fa, "%s/config.json", a);
    snprintf(fc, sizeof fc, "%s/config.json", c);
    CHECK(same_bytes(fa, fc), "config.json depends on the seed");

    shrink_model *m = NULL;
    shrink_load_params lp = shrink_load_params_default();
    if (shrink_model_load(&m, a, &lp) != SHRINK_OK) {
        CHECK(0, "load %s: %s", a, shrink_last_error());
        return;
    }
    shrink_model_info mi;
    shrink_model_get_info(m, &mi);
    CHECK(mi.n_params == 260032 && mi.dim == 64 && mi.n_kv_heads == 4 && mi.tied_embeddings,
          "loaded: %lld params, dim %d", (long long)mi.n_params, mi.dim);
    CHECK(shrink_model_tokenizer(m) == NULL, "a model without a tokenizer has none");
    int ones = 1;
    for (int l = 0; l < 5; l++)
        for (int i = 0; i < 64; i++)
            ones &= m->layers[l].attn_norm[i] == 1.0f && m->layers[l].ffn_norm[i] == 1.0f;
    for (int i = 0; i < 64; i++) ones &= m->final_norm[i] == 1.0f;
    CHECK(ones, "norm weights are not all 1");
    /* the embedding (512 x 64 = 32768 values): mean 0, std 0.02 */
    const float *e = m->tok_emb.data;
    double s1 = 0, s2 = 0;
    for (int i = 0; i < 512 * 64; i++) {
        s1 += e[i];
        s2 += (double)e[i] * e[i];
    }
    double mean = s1 / 32768, sd = sqrt(s2 / 32768 - mean * mean);
    CHECK(fabs(mean) < 5e-4 && fabs(sd - 0.02) < 0.02 * 0.02, "embedding mean %g std %g", mean,
          sd);
    shrink_model_free(m);

    float la[512], lb[512];
    if (run_logits(a, la, 512)) check_logits(la, 512, "stories260K hf");
    /* the same model as GGUF and as llama2.c (q/k rows permuted by the writers): same logits */
    if (!init_to("a.gguf", "stories260K", NULL, 1, SHRINK_DTYPE_F32, NULL, NULL, b, sizeof b) &&
        run_logits(b, lb, 512)) {
        float d = 0;
        for (int i = 0; i < 512; i++) d = fmaxf(d, fabsf(la[i] - lb[i]));
        CHECK(d < 1e-4f, "gguf logits differ from hf by %g", (double)d);
    }
    if (!init_to("a.bin", "stories260K", NULL, 1, SHRINK_DTYPE_F32, "llama2c", NULL, b,
                 sizeof b) &&
        run_logits(b, lb, 512)) {
        float d = 0;
        for (int i = 0; i < 512; i++) d = fmaxf(d, fabsf(la[i] - lb[i]));
        CHECK(d < 1e-4f, "llama2.c logits differ from hf by %g", (double)d);
    }
    /* bf16 */
    if (!init_to("bf16", "stories260K", NULL, 1, SHRINK_DTYPE_BF16, "hf", NULL, b, sizeof b) &&
        run_logits(b, lb, 512))
        check_logits(lb, 512, "stories260K bf16");
    rm_path(a);
    rm_path(c);
    snprintf(b, sizeof b, "%s/b", tmp_root);
    rm_path(b);
    snprintf(b, sizeof b, "%s/bf16", tmp_root);
    rm_path(b);
    snprintf(b, sizeof b, "%s/a.gguf", tmp_root);
    rm_path(b);
    snprintf(b, sizeof b, "%s/a.bin", tmp_root);
    rm_path(b);
}

/* A small GPT-2 from a config.json: biases 0, LayerNorms 1, runs. */
static void test_write_config(void) {
    char cfg[512], out[512];
    snprintf(cfg, sizeof cfg, "%s/tiny-gpt2.json", tmp_root);
    FILE *f = fopen(cfg, "wb");
    SHRINK_ASSERT(f);
    fputs("{\"model_type\": \"gpt2\", \"n_embd\": 48, \"n_layer\": 3, \"n_head\": 4,"
          " \"n_positions\": 64, \"vocab_size\": 300, \"initializer_range\": 0.05}", f);
    fclose(f);
    if (init_to("gpt2", NULL, cfg, 9, SHRINK_DTYPE_F32, "hf", NULL, out, sizeof out)) return;
    shrink_model *m = NULL;
    shrink_load_params lp = shrink_load_params_default();
    if (shrink_model_load(&m, out, &lp) != SHRINK_OK) {
        CHECK(0, "load %s: %s", out, shrink_last_error());
        return;
    }
    int ok = 1;
    for (int l = 0; l < 3; l++) {
        const sk_layer *y = &m->layers[l];
        for (int i = 0; i < 48; i++)
            ok &= y->attn_norm[i] == 1 && y->ffn_norm[i] == 1 && y->attn_norm_b[i] == 0 &&
                  y->ffn_norm_b[i] == 0 && y->bq[i] == 0 && y->bk[i] == 0 && y->bv[i] == 0 &&
                  y->bo[i] == 0 && y->b_down[i] == 0;
        for (int i = 0; i < 192; i++) ok &= y->b_up[i] == 0;
    }
    CHECK(ok, "gpt2: norms not 1 or biases not 0");
    /* the position embedding (64 x 48) has std 0.05, the residual projections 0.05/sqrt(6) */
    const float *pe = m->pos_emb.data;
    double s2 = 0;
    for (int i = 0; i < 64 * 48; i++) s2 += (double)pe[i] * pe[i];
    CHECK(fabs(sqrt(s2 / (64 * 48)) - 0.05) < 0.05 * 0.05, "wpe std %g", sqrt(s2 / (64 * 48)));
    const float *wd = m->layers[1].w_down.data;
    s2 = 0;
    for (int i = 0; i < 48 * 192; i++) s2 += (double)wd[i] * wd[i];
    double want = 0.05 / sqrt(6.0);
    CHECK(fabs(sqrt(s2 / (48 * 192)) - want) < want * 0.05, "mlp.c_proj std %g, want %g",
          sqrt(s2 / (48 * 192)), want);
    shrink_model_free(m);
    float l[300];
    if (run_logits(out, l, 300)) check_logits(l, 300, "gpt2 from config");
    rm_path(out);
    remove(cfg);
}

/* --tokenizer: carried into the output, which then loads with it. */
static void test_write_tokenizer(void) {
    char tok[2048], out[512];
    if (!test_need_asset(tok, sizeof tok, "models/stories260K/tok512.bin")) return;
    if (init_to("tok", "stories260K", NULL, 1, SHRINK_DTYPE_F32, "hf", tok, out, sizeof out))
        return;
    shrink_model *m = NULL;
    shrink_load_params lp = shrink_load_params_default();
    CHECK(shrink_model_load(&m, out, &lp) == SHRINK_OK, "load %s: %s", out, shrink_last_error());
    const shrink_tokenizer *t = m ? shrink_model_tokenizer(m) : NULL;
    CHECK(t && shrink_tokenizer_vocab_size(t) == 512, "the tokenizer was not carried over");
    if (t) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK(shrink_tokenizer_encode(t, "Once upon a time", 16, true, &ids, &n) == SHRINK_OK &&
              n > 2 && ids[0] == 1, "encode with the carried tokenizer");
        shrink_free(ids);
    }
    shrink_model_free(m);
    rm_path(out);
}

/* Bad requests fail with a message and leave nothing behind. */
static void test_write_errors(void) {
    char out[512];
    snprintf(out, sizeof out, "%s/bad", tmp_root);
    shrink_init_params p = shrink_init_params_default();
    p.preset = "gpt-5";
    CHECK(shrink_model_init(out, &p, NULL) == SHRINK_ERR_ARG &&
          strstr(shrink_last_error(), "gpt-5"), "unknown preset: %s", shrink_last_error());
    p.preset = "gpt2";
    p.config_path = "config.json";
    CHECK(shrink_model_init(out, &p, NULL) == SHRINK_ERR_ARG, "preset and config");
    p.config_path = NULL;
    p.to = "onnx";
    CHECK(shrink_model_init(out, &p, NULL) == SHRINK_ERR_ARG &&
          strstr(shrink_last_error(), "onnx"), "unknown format: %s", shrink_last_error());
    CHECK(access(out, F_OK) != 0, "a failed init left %s", out);
}

int main(void) {
    test_generator();
    test_generator_ref();
    test_fill_cols();
    test_specs_gpt2();
    test_specs_llama();
    test_source();
    test_presets();
    test_config();
    if (!mkdtemp(tmp_root)) {
        CHECK(0, "mkdtemp %s", tmp_root);
        return test_summary("test_init");
    }
    test_write_stories();
    test_write_config();
    test_write_tokenizer();
    test_write_errors();
    rmdir(tmp_root);
    return test_summary("test_init");
}
