/*
 * test_prune_structured.c - structured pruning (shrink_prune_structured, src/prune/
 * structured.c) against its independent reference: the ORIGINAL model with the same units
 * masked by hand here (the removed heads' columns of W_o and the removed neurons' columns of
 * W_down zeroed; a removed layer's W_o, W_down and their biases zeroed, which skips it).
 * The smaller model written to disk (new n_heads / n_kv_heads / ffn_dim / n_layers) must give
 * the same logits to 1e-5, for tiny-llama-gqa (HF folder in, GGUF and HF out) and stories260K
 * (llama2.c in, GGUF out), removing query heads within K/V groups, whole K/V groups, neurons
 * and layers.
 *
 * Sensitivity: the KL shrink_sensitivity reports for a layer equals the KL, computed here in
 * float64, between the original and the model written with that layer removed; structured
 * pruning by sensitivity removes the layer ranked least sensitive. Bad requests (more heads
 * than exist, every layer, heads not a multiple of the K/V groups, an unknown unit) fail with
 * SHRINK_ERR_ARG and leave no output.
 */
#include "model/model.h"
#include "test_util.h"

#include <unistd.h>

static char tmp_dir[] = "/tmp/shrink_pstruct_XXXXXX";
#define NTOK 40

static void test_ids(int32_t *ids, int n, int vocab, int bos) {
    for (int i = 0; i < n; i++) ids[i] = (int32_t)((i * 7919 + 11) % vocab);
    if (bos >= 0) ids[0] = bos;
}

/* Logits (n x V) of the model at path, or of the loaded model m (masked) if path is NULL. */
static float *logits_of(shrink_model *m, const int32_t *ids, int n) {
    shrink_context *ctx = NULL;
    if (shrink_context_create(&ctx, m, n, n)) return NULL;
    float *z = malloc((size_t)n * (size_t)m->cfg.vocab_size * sizeof *z);
    if (z && shrink_context_eval(ctx, ids, n, 0, z, n)) {
        free(z);
        z = NULL;
    }
    shrink_context_free(ctx);
    return z;
}

/* An f32 copy of W bound in its place (owned by the model). */
static float *bind_f32(shrink_model *m, sk_mat *W) {
    float *w = malloc((size_t)(W->rows * W->cols) * sizeof *w);
    for (int64_t r = 0; r < W->rows; r++) sk_mat_row_f32(W, r, w + r * W->cols);
    *W = (sk_mat){SHRINK_DTYPE_F32, W->rows, W->cols, w, NULL};
    return w;
}

/* The original with r's units masked: its logits. */
static float *masked_logits(const char *in, const shrink_structured_result *r,
                            const int32_t *ids, int n) {
    shrink_model *m = NULL;
    if (shrink_model_load(&m, in, NULL)) return NULL;
    const int hd = m->cfg.head_dim, D = m->cfg.dim, HD = m->cfg.n_heads * hd,
              F = m->cfg.ffn_dim;
    const int rh = r->n_heads_in - r->n_heads, rf = r->ffn_dim_in - r->ffn_dim,
              rl = r->n_layers_in - r->n_layers;
    float **own = calloc((size_t)m->cfg.n_layers * 2, sizeof *own);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        sk_layer *Ly = &m->layers[l];
        float *wo = own[2 * l] = bind_f32(m, &Ly->wo);
        float *wd = own[2 * l + 1] = bind_f32(m, &Ly->w_down);
        int gone = 0;
        for (int i = 0; i < rl; i++) gone |= r->removed_layers[i] == l;
        if (gone) {
            memset(wo, 0, (size_t)D * HD * sizeof *wo);
            memset(wd, 0, (size_t)D * F * sizeof *wd);
            Ly->bo = NULL;
            Ly->b_down = NULL;
            continue;
        }
        for (int i = 0; i < rh; i++) {
            int h = r->removed_heads[(size_t)l * rh + i];
            for (int row = 0; row < D; row++)
                memset(wo + (size_t)row * HD + (size_t)h * hd, 0, (size_t)hd * sizeof *wo);
        }
        for (int i = 0; i < rf; i++) {
            int k = r->removed_neurons[(size_t)l * rf + i];
            for (int row = 0; row < D; row++) wd[(size_t)row * F + k] = 0.0f;
        }
    }
    float *z = logits_of(m, ids, n);
    shrink_model_free(m);
    for (int i = 0; i < 2 * r->n_layers_in; i++) free(own[i]);
    free(own);
    return z;
}

static double max_abs_diff(const float *a, const float *b, size_t n, double *scale) {
    double d = 0.0, s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        d = e > d ? e : d;
        s = fabs(a[i]) > s ? fabs(a[i]) : s;
    }
    *scale = s;
    return d;
}

/* Prunes `in` with p into out and checks the smaller model against the masked original. */
static void check_removal(const char *name, const char *in, const char *out,
                          const shrink_structured_params *p) {
    shrink_structured_result r;
    shrink_status st = shrink_prune_structured(in, out, p, &r);
    CHECK(st == SHRINK_OK, "%s: shrink_prune_structured: %s", name, shrink_last_error());
    if (st) return;
    shrink_model *pm = NULL;
    st = shrink_model_load(&pm, out, NULL);
    CHECK(st == SHRINK_OK, "%s: load %s: %s", name, out, shrink_last_error());
    if (!st) {
        const sk_config *c = &pm->cfg;
        CHECK(c->n_layers == r.n_layers_in - p->layers && c->n_layers == r.n_layers,
              "%s: n_layers %d", name, c->n_layers);
        CHECK(c->n_heads == r.n_heads && c->n_kv_heads == r.n_kv_heads &&
              c->ffn_dim == r.ffn_dim_in - p->neurons,
              "%s: config %d heads, %d kv, ffn %d", name, c->n_heads, c->n_kv_heads, c->ffn_dim);
        CHECK(r.n_heads == r.n_heads_in - p->heads - p->kv_heads * (r.n_heads_in /
              r.n_kv_heads_in), "%s: %d heads left of %d", name, r.n_heads, r.n_heads_in);
        CHECK(r.params_out < r.params_in, "%s: params %lld !< %lld", name,
              (long long)r.params_out, (long long)r.params_in);
        int32_t ids[NTOK];
        test_ids(ids, NTOK, c->vocab_size, c->bos_id);
        float *a = logits_of(pm, ids, NTOK);
        float *b = masked_logits(in, &r, ids, NTOK);
        CHECK(a && b, "%s: logits", name);
        if (a && b) {
            double scale;
            double d = max_abs_diff(a, b, (size_t)NTOK * c->vocab_size, &scale);
            CHECK(d <= 1e-5 * (scale > 1 ? scale : 1), "%s: removed vs masked logits differ "
                  "by %.3g (max |logit| %.3g)", name, d, scale);
            /* and the removal changed something: not a vacuous comparison */
            shrink_model *om = NULL;
            if (!shrink_model_load(&om, in, NULL)) {
                float *o = logits_of(om, ids, NTOK);
                double d2 = o ? max_abs_diff(a, o, (size_t)NTOK * c->vocab_size, &scale) : 0;
                CHECK(d2 > 1e-3, "%s: pruning changed the logits by only %.3g", name, d2);
                free(o);
                shrink_model_free(om);
            }
        }
        free(a);
        free(b);
        shrink_model_free(pm);
    }
    shrink_structured_result_free(&r);
}

static void rm_out(const char *p) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    if (system(cmd)) {}
}

/* float64 KL(P || Q) per token, mean, from two logits arrays (n x V). */
static double kl_mean(const float *p, const float *q, int n, int V) {
    double kl = 0.0;
    for (int t = 0; t < n; t++) {
        const float *a = p + (size_t)t * V, *b = q + (size_t)t * V;
        double ma = -INFINITY, mb = -INFINITY, sa = 0, sb = 0;
        for (int v = 0; v < V; v++) {
            ma = a[v] > ma ? a[v] : ma;
            mb = b[v] > mb ? b[v] : mb;
        }
        for (int v = 0; v < V; v++) {
            sa += exp(a[v] - ma);
            sb += exp(b[v] - mb);
        }
        for (int v = 0; v < V; v++) {
            double la = a[v] - ma - log(sa), lb = b[v] - mb - log(sb);
            kl += exp(la) * (la - lb);
        }
    }
    return kl / n;
}

static void check_sensitivity(const char *in, const char *calib) {
    char out[4200];
    snprintf(out, sizeof out, "%s/sens.gguf", tmp_dir);
    const int n = 64;
    shrink_sensitivity_params sp = shrink_sensitivity_params_default();
    sp.unit = SHRINK_UNIT_LAYER;
    sp.calib_path = calib;
    sp.calib_tokens = n;
    sp.calib_ctx = n;
    shrink_sensitivity_result sr;
    shrink_status st = shrink_sensitivity(in, &sp, &sr);
    CHECK(st == SHRINK_OK, "sensitivity: %s", shrink_last_error());
    if (st) return;
    int least = -1;
    for (int64_t i = 0; i < sr.n; i++) {
        if (sr.entries[i].rank == 0) least = sr.entries[i].layer;
        CHECK(sr.entries[i].kl > 0 && sr.entries[i].ppl > 0, "layer %d: kl %g ppl %g",
              sr.entries[i].layer, sr.entries[i].kl, sr.entries[i].ppl);
        CHECK(sr.entries[i].proxy >= 0 && sr.entries[i].proxy <= 2, "block influence %g",
              sr.entries[i].proxy);
    }
    shrink_structured_params p = shrink_structured_params_default();
    p.layers = 1;
    p.by = SHRINK_RANK_SENSITIVITY;
    p.calib_path = calib;
    p.calib_tokens = n;
    p.calib_ctx = n;
    shrink_structured_result r;
    st = shrink_prune_structured(in, out, &p, &r);
    CHECK(st == SHRINK_OK, "prune by sensitivity: %s", shrink_last_error());
    if (!st) {
        CHECK(r.removed_layers[0] == least, "removed layer %d, least sensitive %d",
              r.removed_layers[0], least);
        /* the calibration tokens, as the library encodes them */
        shrink_model *om = NULL, *pm = NULL;
        if (!shrink_model_load(&om, in, NULL) && !shrink_model_load(&pm, out, NULL)) {
            char *text = NULL;
            FILE *f = fopen(calib, "rb");
            text = malloc(1 << 20);
            size_t len = f ? fread(text, 1, (1 << 20) - 1, f) : 0;
            if (f) fclose(f);
            int32_t *ids = NULL;
            size_t n_ids = 0;
            if (!shrink_tokenizer_encode(shrink_model_tokenizer(om), text, len, om->cfg.add_bos,
                                         &ids, &n_ids) && n_ids >= (size_t)n) {
                float *a = logits_of(om, ids, n), *b = logits_of(pm, ids, n);
                if (a && b) {
                    double kl = kl_mean(a, b, n, om->cfg.vocab_size);
                    double rep = sr.entries[least].kl;
                    CHECK(fabs(kl - rep) <= 1e-4 * (kl > 1 ? kl : 1), "KL of layer %d "
                          "removed: sensitivity %.6g, float64 of the written model %.6g",
                          least, rep, kl);
                }
                free(a);
                free(b);
            } else {
                CHECK(0, "encode %s", calib);
            }
            shrink_free(ids);
            free(text);
        }
        shrink_model_free(om);
        shrink_model_free(pm);
        shrink_structured_result_free(&r);
    }
    shrink_sensitivity_result_free(&sr);
    rm_out(out);
}

static void check_bad(const char *in) {
    char out[4200];
    snprintf(out, sizeof out, "%s/bad.gguf", tmp_dir);
    const struct { int heads, kv, neurons, layers; } bad[] = {
        {4, 0, 0, 0},   /* all 4 heads */
        {9, 0, 0, 0},   /* more than exist */
        {1, 0, 0, 0},   /* not a multiple of the 2 K/V groups */
        {0, 2, 0, 0},   /* every K/V group */
        {0, 0, 176, 0}, /* every neuron */
        {0, 0, 0, 2},   /* every layer */
        {0, 0, 0, 0},   /* nothing */
        {2, 1, 0, 0},   /* heads and kv-heads */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        shrink_structured_params p = shrink_structured_params_default();
        p.by = SHRINK_RANK_RANDOM;
        p.heads = bad[i].heads;
        p.kv_heads = bad[i].kv;
        p.neurons = bad[i].neurons;
        p.layers = bad[i].layers;
        shrink_status st = shrink_prune_structured(in, out, &p, NULL);
        CHECK(st == SHRINK_ERR_ARG, "bad case %zu: status %d (%s)", i, st, shrink_last_error());
        CHECK(access(out, F_OK) != 0, "bad case %zu left %s", i, out);
    }
    shrink_structured_params p = shrink_structured_params_default();
    p.heads = 2;
    p.by = SHRINK_RANK_ACTIVATION; /* needs --calib */
    CHECK(shrink_prune_structured(in, out, &p, NULL) == SHRINK_ERR_ARG, "activation w/o calib");
    shrink_unit u;
    CHECK(shrink_unit_parse("neuron-block", &u) == SHRINK_OK && u == SHRINK_UNIT_NEURON_BLOCK,
          "unit parse");
    CHECK(shrink_unit_parse("tensor", &u) == SHRINK_ERR_ARG &&
          strstr(shrink_last_error(), "tensor"), "unknown unit");
}

/* Every allocation of a call failing in turn: SHRINK_ERR_NOMEM with a message, no leak, no
 * output (as tests/test_nomem.c does for the other operations). */
typedef struct nm_args {
    const char *in, *out, *calib;
    int         sens;
} nm_args;

static shrink_status nm_call(const nm_args *a) {
    if (a->sens) {
        shrink_sensitivity_params sp = shrink_sensitivity_params_default();
        sp.calib_path = a->calib;
        sp.calib_tokens = 8;
        sp.unit = SHRINK_UNIT_LAYER;
        shrink_sensitivity_result r;
        shrink_status st = shrink_sensitivity(a->in, &sp, &r);
        if (!st) shrink_sensitivity_result_free(&r);
        return st;
    }
    shrink_structured_params p = shrink_structured_params_default();
    p.heads = 4;
    p.neurons = 10;
    p.layers = 1;
    p.by = SHRINK_RANK_RANDOM; /* the scoring's allocations: the shrink_sensitivity sweep */
    shrink_structured_result r;
    shrink_status st = shrink_prune_structured(a->in, a->out, &p, &r);
    if (!st) shrink_structured_result_free(&r);
    return st;
}

static void check_nomem(const nm_args *a, const char *name) {
    const size_t live = sk_alloc_bytes_live();
    long n = 1;
    for (; n < 20000; n++) {
        sk_alloc_fail_after(n);
        shrink_status st = nm_call(a);
        const int hit = sk_alloc_failed();
        sk_alloc_fail_after(0);
        if (hit) {
            CHECK(st == SHRINK_ERR_NOMEM || st == SHRINK_OK, "%s, allocation %ld failing: %s",
                  name, n, shrink_last_error());
            if (!a->sens && st) CHECK(access(a->out, F_OK) != 0, "%s, allocation %ld: output "
                                      "left", name, n);
        }
        CHECK(sk_alloc_bytes_live() == live, "%s, allocation %ld failing: %zd bytes leaked",
              name, n, (ssize_t)(sk_alloc_bytes_live() - live));
        if (!hit) {
            CHECK(st == SHRINK_OK, "%s: %s", name, shrink_last_error());
            break;
        }
        if (!st) rm_out(a->out); /* a failure the call may absorb: start clean */
        if (test_failed > 20) break;
    }
    CHECK(n > 1, "%s allocates nothing?", name);
    printf("  %s: %ld allocations, each failing once\n", name, n - 1);
    rm_out(a->out);
}

int main(void) {
    static char gqa[2048], st260[2048], calib[2048];
    if (!mkdtemp(tmp_dir)) {
        CHECK(0, "mkdtemp");
        return test_summary("test_prune_structured");
    }
    const char *model = test_need_model(gqa, sizeof gqa, "tiny-llama-gqa");
    const char *st = test_need_model(st260, sizeof st260, "stories260K/stories260K.bin");
    const char *text = test_need_asset(calib, sizeof calib, "fixtures/stories260K/ppl_text.txt");
    char out[4200];
    if (model) {
        shrink_structured_params p = shrink_structured_params_default();
        p.by = SHRINK_RANK_RANDOM;
        p.seed = 5;
        p.heads = 2;     /* one query head from each of the 2 K/V groups */
        p.neurons = 44;  /* 25 % */
        snprintf(out, sizeof out, "%s/gqa_heads.gguf", tmp_dir);
        check_removal("tiny-llama-gqa heads+neurons -> gguf", model, out, &p);
        rm_out(out);
        p.heads = 0;
        p.kv_heads = 1;  /* a whole K/V group with its 2 query heads */
        p.layers = 1;
        p.seed = 9;
        snprintf(out, sizeof out, "%s/gqa_kv", tmp_dir);
        check_removal("tiny-llama-gqa kv-head+layer -> HF", model, out, &p);
        rm_out(out);
        check_bad(model);
    }
    if (st) {
        shrink_structured_params p = shrink_structured_params_default();
        p.by = SHRINK_RANK_RANDOM;
        p.seed = 3;
        p.heads = 4;     /* 8 heads in 4 groups of 2: one from each */
        p.neurons = 43;
        p.layers = 2;    /* of 5 */
        snprintf(out, sizeof out, "%s/st.gguf", tmp_dir);
        check_removal("stories260K heads+neurons+layers -> gguf", st, out, &p);
        rm_out(out);
        if (text) {
            p.by = SHRINK_RANK_ACTIVATION;
            p.calib_path = text;
            p.calib_tokens = 64;
            snprintf(out, sizeof out, "%s/st_act.gguf", tmp_dir);
            check_removal("stories260K by activation", st, out, &p);
            rm_out(out);
            p.by = SHRINK_RANK_SENSITIVITY;
            p.layers = 1;
            p.block = 43;
            check_removal("stories260K by sensitivity", st, out, &p);
            rm_out(out);
            check_sensitivity(st, text);
            /* the allocation paths do not depend on the kernels: once, not again under
             * SHRINK_KERNELS=ref (tests/run_all.sh runs every test twice) */
            const char *kern = getenv("SHRINK_KERNELS");
            if (!kern || strcmp(kern, "ref") != 0) {
                snprintf(out, sizeof out, "%s/nomem.gguf", tmp_dir);
                nm_args a = {st, out, text, 0};
                check_nomem(&a, "shrink_prune_structured");
                a.sens = 1;
                check_nomem(&a, "shrink_sensitivity");
            }
        }
    }
    rmdir(tmp_dir);
    return test_summary("test_prune_structured");
}
