/*
 * test_prune.c - shrink_prune (src/prune/) against the float64 reference of
 * tools/ref_check/prune_ref.py (PyTorch model of ../shared/tools/ref, sentencepiece, forward
 * hooks; the papers' algorithms written independently), whose results on tiny-llama-gqa are
 * committed as tests/fixtures/prune/ (safetensors):
 *   1. every case of the reference (threshold, magnitude per matrix / per row / 2:4, wanda
 *      unstructured / 4:8, sparsegpt unstructured / 2:4 with blocks of 32) is pruned by
 *      shrink_prune into f32 GGUF; the zeros of each pruned tensor must be the reference's
 *      mask (exactly for the methods without activations; for wanda and sparsegpt, whose
 *      activations are f32 here and f64 there, at most 0.2% of the entries may differ; today none do), the
 *      weights kept by threshold / magnitude / wanda must be the input's values bit for bit (read
 *      from model.safetensors with the raw safetensors parser, q/k rows permuted here), and
 *      sparsegpt's updated weights must match the reference's to a relative Frobenius error of
 *      1e-4 per tensor (today 2.5e-7); the calibration token ids equal the reference's (sentencepiece);
 *      the result's per-tensor zero counts equal the file's; untouched tensors equal the input;
 *   2. N:M holds in every group of every pruned row (tiny-gpt2, fused qkv, 2:4 wanda), the
 *      output loads and runs (finite logits);
 *   3. bad input: sparsity 1 and -0.5, a pattern that does not divide a row, a pattern that
 *      contradicts the sparsity, wanda without calibration, a calibration text shorter than
 *      asked, threshold without a threshold, a non-GGUF output, an unknown method: each an
 *      error with a message and no output file.
 * The models come from ../shared (test_need_model: missing is a failure when ../shared is
 * present, a counted skip without it); the fixtures are in the repository.
 */
#include "prune/prune.h"
#include "formats/formats.h"
#include "model/model.h"
#include "test_util.h"
#include "test_fixture.h"

#include <unistd.h>

static char tmp_dir[] = "/tmp/test_prune_XXXXXX";
static const char *FIX_MASKS = "tests/fixtures/prune/tiny-llama-gqa-masks.safetensors";
static const char *FIX_SGPT = "tests/fixtures/prune/tiny-llama-gqa-sparsegpt.safetensors";
static const char *CALIB = "tests/fixtures/prune/calib.txt";

static const sk_gguf_tensor *gguf_find_t(const sk_gguf *g, const char *name) {
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].name.len == strlen(name) &&
            !memcmp(g->tensors[i].name.s, name, g->tensors[i].name.len))
            return &g->tensors[i];
    return NULL;
}

typedef struct gg {
    sk_map   map;
    sk_gguf *g;
} gg;

static int gg_open(gg *o, const char *path) {
    memset(o, 0, sizeof *o);
    return sk_map_file(path, &o->map) == SHRINK_OK &&
           sk_gguf_parse(o->map.data, o->map.size, path, &o->g) == SHRINK_OK;
}

static void gg_close(gg *o) {
    sk_gguf_free(o->g);
    sk_unmap(&o->map);
}

static const char *LIN_GGUF[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate",
                                  "ffn_up", "ffn_down"};
static const char *LIN_HF[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj",
                                "mlp.down_proj"};

/* The input's value of GGUF row r, col c of linear k of a layer (HF file, q/k rows permuted
 * from rotate-half to interleaved as the GGUF writer does; head_dim 16). */
static float input_value(const sk_st_raw *t, int k, int64_t r, int64_t c) {
    const int64_t cols = t->shape[1], hd = 16;
    int64_t src = r;
    if (k <= 1) { /* interleaved row h0 + 2i + s <- half row h0 + s*hd/2 + i */
        int64_t h0 = r / hd * hd, j = r - h0, i = j / 2, s = j % 2;
        src = h0 + s * (hd / 2) + i;
    }
    float v;
    memcpy(&v, (const uint8_t *)t->data + 4 * (size_t)(src * cols + c), 4);
    return v;
}

typedef struct pcase {
    const char *name;
    const char *method;
    double      sparsity, threshold;
    bool        per_row;
    int         n, m, block;
} pcase;

static const pcase CASES[] = {
    {"threshold_0.05", "threshold", -1, 0.05, false, 0, 0, 128},
    {"magnitude_0.5", "magnitude", 0.5, -1, false, 0, 0, 128},
    {"magnitude_row_0.7", "magnitude", 0.7, -1, true, 0, 0, 128},
    {"magnitude_2of4", "magnitude", -1, -1, false, 2, 4, 128},
    {"wanda_0.5", "wanda", 0.5, -1, false, 0, 0, 128},
    {"wanda_4of8", "wanda", -1, -1, false, 4, 8, 128},
    {"sparsegpt_0.5", "sparsegpt", 0.5, -1, false, 0, 0, 128},
    {"sparsegpt_2of4_b32", "sparsegpt", -1, -1, false, 2, 4, 32},
};

static void run_case(const pcase *pc, const char *model, const fixture *fm, const fixture *fs,
                     const fixture *fin) {
    char out[512];
    snprintf(out, sizeof out, "%s/%s.gguf", tmp_dir, pc->name);
    shrink_prune_params p = shrink_prune_params_default();
    p.method = pc->method;
    p.sparsity = pc->sparsity;
    p.threshold = pc->threshold;
    p.per_row = pc->per_row;
    p.pattern_n = pc->n;
    p.pattern_m = pc->m;
    p.block_size = pc->block;
    p.dtype = SHRINK_DTYPE_F32;
    p.calib_path = CALIB;
    p.calib_tokens = 256;
    p.calib_ctx = 64;
    shrink_prune_result r;
    shrink_status st = shrink_prune(model, out, &p, &r);
    CHECK(st == SHRINK_OK, "%s: %s", pc->name, shrink_last_error());
    if (st) return;
    const int calibrated = !strcmp(pc->method, "wanda") || !strcmp(pc->method, "sparsegpt");
    CHECK(r.n_pruned == 14, "%s: %lld tensors pruned, want 14", pc->name, (long long)r.n_pruned);
    CHECK(r.calib_tokens == (calibrated ? 256 : 0), "%s: calib tokens %lld", pc->name,
          (long long)r.calib_tokens);
    gg o;
    if (!gg_open(&o, out)) {
        CHECK(0, "%s: cannot read %s: %s", pc->name, out, shrink_last_error());
        shrink_prune_result_free(&r);
        return;
    }
    int64_t zeros_all = 0, worst_diff = 0;
    double worst_rel = 0.0;
    for (int l = 0; l < 2; l++) {
        for (int k = 0; k < 7; k++) {
            char name[96], key[160], hf[96];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, LIN_GGUF[k]);
            snprintf(key, sizeof key, "%s/%s", pc->name, name);
            snprintf(hf, sizeof hf, "model.layers.%d.%s.weight", l, LIN_HF[k]);
            const sk_gguf_tensor *t = gguf_find_t(o.g, name);
            const sk_st_raw *mk = fixture_get(fm, key);
            const sk_st_raw *w0 = fixture_get(fin, hf);
            if (!t || t->type != 0 || !mk || !w0 || w0->n_dims != 2 || strcmp(w0->dtype, "F32")) {
                CHECK(0, "%s: %s missing (output %p, mask %p, input %p) or not f32", pc->name,
                      name, (const void *)t, (const void *)mk, (const void *)w0);
                continue;
            }
            const int64_t cols = t->ne[0], rows = t->ne[1], n = rows * cols;
            CHECK(w0->shape[0] == rows && w0->shape[1] == cols && mk->n_elems == (uint64_t)(n + 7) / 8,
                  "%s: %s shapes differ", pc->name, name);
            const float *v = (const float *)t->data;
            const uint8_t *bits = mk->data;
            int64_t diff = 0, zeros = 0, changed = 0;
            for (int64_t i = 0; i < n; i++) {
                const int want = (bits[i / 8] >> (i % 8)) & 1, got = v[i] == 0.0f;
                diff += want != got;
                zeros += got;
                if (strcmp(pc->method, "sparsegpt") && !got) {
                    float a = input_value(w0, k, i / cols, i % cols);
                    changed += memcmp(&a, &v[i], 4) != 0;
                }
            }
            zeros_all += zeros;
            if (diff > worst_diff) worst_diff = diff;
            const int64_t allowed = calibrated ? n / 500 : 0;
            CHECK(diff <= allowed, "%s: %s: %lld of %lld mask entries differ from the float64 "
                  "reference (allowed %lld)", pc->name, name, (long long)diff, (long long)n,
                  (long long)allowed);
            CHECK(changed == 0, "%s: %s: %lld kept weights differ from the input", pc->name,
                  name, (long long)changed);
            if (!strcmp(pc->method, "sparsegpt")) {
                const sk_st_raw *wr = fixture_get(fs, key);
                if (!wr || wr->n_elems != (uint64_t)n) {
                    CHECK(0, "%s: %s: no reference weights", pc->name, name);
                    continue;
                }
                double e2 = 0, r2 = 0;
                for (int64_t i = 0; i < n; i++) {
                    float ref;
                    memcpy(&ref, (const uint8_t *)wr->data + 4 * i, 4);
                    e2 += ((double)v[i] - ref) * ((double)v[i] - ref);
                    r2 += (double)ref * ref;
                }
                double rel = sqrt(e2 / (r2 > 0 ? r2 : 1));
                if (rel > worst_rel) worst_rel = rel;
                CHECK(rel <= 1e-4, "%s: %s: weights differ from the reference's by %.3e "
                      "(relative Frobenius, allowed 1e-4)", pc->name, name, rel);
            }
            for (int64_t i = 0; i < r.n_tensors; i++)
                if (!strcmp(r.tensors[i].name, name))
                    CHECK(r.tensors[i].pruned && r.tensors[i].n_zero == zeros,
                          "%s: %s: the result counts %lld zeros, the file has %lld", pc->name,
                          name, (long long)r.tensors[i].n_zero, (long long)zeros);
        }
    }
    printf("  %-20s sparsity %.4f, most mask entries differing in a tensor %lld, worst "
           "relative weight error %.2e\n", pc->name, r.sparsity, (long long)worst_diff,
           worst_rel);
    CHECK(r.n_zero == zeros_all, "%s: result n_zero %lld, file %lld", pc->name,
          (long long)r.n_zero, (long long)zeros_all);
    /* untouched: the token embedding and the head equal the input */
    const sk_gguf_tensor *emb = gguf_find_t(o.g, "token_embd.weight");
    const sk_st_raw *emb0 = fixture_get(fin, "model.embed_tokens.weight");
    CHECK(emb && emb0 && emb->bytes == emb0->bytes && !memcmp(emb->data, emb0->data, emb->bytes),
          "%s: token_embd changed", pc->name);
    const sk_gguf_tensor *head = gguf_find_t(o.g, "output.weight");
    const sk_st_raw *head0 = fixture_get(fin, "lm_head.weight");
    CHECK(head && head0 && head->bytes == head0->bytes &&
          !memcmp(head->data, head0->data, head->bytes), "%s: output.weight changed", pc->name);
    gg_close(&o);
    shrink_prune_result_free(&r);
    remove(out);
}

static void check_calib_ids(const char *model, const fixture *fm) {
    const sk_st_raw *ids = fixture_get(fm, "calib_ids");
    shrink_model *m = NULL;
    shrink_load_params lp = shrink_load_params_default();
    if (!ids || shrink_model_load(&m, model, &lp) != SHRINK_OK) {
        CHECK(0, "calib ids: fixture or model missing: %s", shrink_last_error());
        return;
    }
    char *text = NULL;
    size_t len = 0;
    int32_t *got = NULL;
    size_t n = 0;
    if (sk_read_file(CALIB, 1 << 20, &text, &len) == SHRINK_OK &&
        shrink_tokenizer_encode(shrink_model_tokenizer(m), text, len, true, &got, &n) ==
            SHRINK_OK) {
        int64_t diff = 0;
        for (uint64_t i = 0; i < ids->n_elems && i < n; i++) {
            int32_t want;
            memcpy(&want, (const uint8_t *)ids->data + 4 * i, 4);
            diff += want != got[i];
        }
        CHECK(n >= ids->n_elems && diff == 0, "calib ids: %lld of %llu differ from "
              "sentencepiece's", (long long)diff, (unsigned long long)ids->n_elems);
    } else {
        CHECK(0, "calib ids: %s", shrink_last_error());
    }
    shrink_free(got);
    sk_free(text);
    shrink_model_free(m);
}

/* 2:4 wanda on tiny-gpt2 (fused qkv, Conv1D weights): every group of 4 has >= 2 zeros, and the
 * output runs. */
static void check_gpt2(const char *model) {
    char out[512];
    snprintf(out, sizeof out, "%s/gpt2.gguf", tmp_dir);
    shrink_prune_params p = shrink_prune_params_default();
    p.method = "wanda";
    p.pattern_n = 2;
    p.pattern_m = 4;
    p.calib_path = CALIB;
    p.calib_tokens = 128;
    shrink_prune_result r;
    shrink_status st = shrink_prune(model, out, &p, &r);
    CHECK(st == SHRINK_OK, "gpt2: %s", shrink_last_error());
    if (st) return;
    CHECK(r.n_pruned == 8, "gpt2: %lld pruned tensors, want 8 (qkv, o, up, down x 2)",
          (long long)r.n_pruned);
    gg o;
    if (gg_open(&o, out)) {
        int64_t bad = 0, groups = 0;
        for (int64_t i = 0; i < o.g->n_tensors; i++) {
            const sk_gguf_tensor *t = &o.g->tensors[i];
            if (t->n_dims != 2 || !memmem(t->name.s, t->name.len, "blk.", 4) || t->type != 0)
                continue;
            const float *v = (const float *)t->data;
            for (int64_t g = 0; g < t->ne[0] * t->ne[1]; g += 4) {
                int z = (v[g] == 0) + (v[g + 1] == 0) + (v[g + 2] == 0) + (v[g + 3] == 0);
                bad += z < 2;
                groups++;
            }
        }
        CHECK(groups > 0 && bad == 0, "gpt2: %lld of %lld groups of 4 have fewer than 2 zeros",
              (long long)bad, (long long)groups);
        gg_close(&o);
    } else {
        CHECK(0, "gpt2: cannot read the output");
    }
    shrink_model *m = NULL;
    shrink_context *ctx = NULL;
    shrink_load_params lp = shrink_load_params_default();
    st = shrink_model_load(&m, out, &lp);
    if (!st) st = shrink_context_create(&ctx, m, 16, 16);
    float *logits = NULL;
    if (!st) {
        int32_t ids[4] = {10, 20, 30, 40};
        const int32_t V = m->cfg.vocab_size;
        logits = malloc((size_t)V * sizeof *logits);
        st = shrink_context_eval(ctx, ids, 4, 0, logits, 1);
        int finite = 1;
        for (int32_t i = 0; !st && i < V; i++) finite &= isfinite(logits[i]) != 0;
        CHECK(!st && finite, "gpt2: the pruned model does not run: %s", shrink_last_error());
    } else {
        CHECK(0, "gpt2: the pruned model does not load: %s", shrink_last_error());
    }
    free(logits);
    shrink_context_free(ctx);
    shrink_model_free(m);
    shrink_prune_result_free(&r);
    remove(out);
}

static void bad(const char *what, const char *model, shrink_prune_params p, const char *out,
                const char *needle) {
    shrink_prune_result r;
    shrink_status st = shrink_prune(model, out, &p, &r);
    CHECK(st != SHRINK_OK, "%s: accepted", what);
    CHECK(st == SHRINK_OK || strstr(shrink_last_error(), needle), "%s: message '%s' lacks '%s'",
          what, shrink_last_error(), needle);
    CHECK(access(out, F_OK) != 0, "%s: %s was left behind", what, out);
    if (!st) shrink_prune_result_free(&r);
    remove(out);
}

static void check_bad(const char *model) {
    char out[512], txt[512];
    snprintf(out, sizeof out, "%s/bad.gguf", tmp_dir);
    snprintf(txt, sizeof txt, "%s/bad.safetensors", tmp_dir);
    shrink_prune_params d = shrink_prune_params_default(), p;
    p = d; p.method = "magnitude"; p.sparsity = 1.0;
    bad("sparsity 1", model, p, out, "outside [0, 1)");
    p = d; p.method = "magnitude"; p.sparsity = -0.5;
    bad("sparsity -0.5", model, p, out, "outside [0, 1)");
    p = d; p.method = "magnitude";
    bad("no sparsity", model, p, out, "needs a sparsity");
    p = d; p.method = "magnitude"; p.pattern_n = 1; p.pattern_m = 32;
    bad("1:32 on 176 inputs", model, p, out, "does not divide");
    p = d; p.method = "magnitude"; p.pattern_n = 2; p.pattern_m = 4; p.sparsity = 0.7;
    bad("2:4 at 0.7", model, p, out, "contradicts");
    p = d; p.method = "magnitude"; p.pattern_n = 4; p.pattern_m = 4;
    bad("4:4", model, p, out, "N < M");
    p = d; p.method = "wanda"; p.sparsity = 0.5;
    bad("wanda without text", model, p, out, "calibration text");
    p = d; p.method = "sparsegpt"; p.sparsity = 0.5; p.calib_path = CALIB;
    p.calib_tokens = 100000;
    bad("short calibration text", model, p, out, "100000 were asked");
    p = d; p.method = "threshold";
    bad("threshold without a value", model, p, out, "threshold >= 0");
    p = d; p.method = "magnitude"; p.sparsity = 0.5;
    bad("safetensors output", model, p, txt, "GGUF");
    p = d; p.method = "random"; p.sparsity = 0.5;
    bad("unknown method", model, p, out, "unknown pruning method");
}

/* A small N:M and selection check on plain arrays: ties go to the lower index. */
static void check_algo(void) {
    double s[6] = {3, 1, 2, 1, 5, 0};
    uint8_t mk[6];
    CHECK(sk_prune_select(s, 6, 3, mk) == SHRINK_OK && mk[5] && mk[1] && mk[3] && !mk[0] &&
          !mk[2] && !mk[4], "select: the 3 smallest of {3,1,2,1,5,0} are indices 5, 1, 3");
    CHECK(sk_prune_select(s, 6, 2, mk) == SHRINK_OK && mk[5] && mk[1] && !mk[3],
          "select: a tie goes to the lower index");
    float w[8] = {0.1f, -0.4f, 0.3f, -0.2f, 1, 1, 1, 1};
    CHECK(sk_prune_rows(w, 1, 8, NULL, 0, 2, 4) == SHRINK_OK && w[0] == 0 && w[3] == 0 &&
          w[1] == -0.4f && w[2] == 0.3f && w[4] == 0 && w[5] == 0 && w[6] == 1 && w[7] == 1,
          "2:4 on one row: the two smallest |w| of each group (ties: lower index)");
}

/* sk_prune_matrix (k-th |w| by quickselect, ties by index) against sk_prune_select's sorted
 * (score, index) pairs, on values with many ties (a few levels, signs, zeros) and without:
 * the same zeros, and the zeroed squares summed as tensor_stats sums them. */
static void check_matrix_ties(void) {
    const int64_t rows = 37, cols = 29, n = rows * cols;
    float *w = malloc(sizeof(float) * (size_t)n), *v = malloc(sizeof(float) * (size_t)n);
    double *s = malloc(sizeof(double) * (size_t)n);
    uint8_t *mask = malloc((size_t)n);
    for (int rep = 0; rep < 3; rep++)
        for (int si = 0; si < 5; si++) {
            const double sp[5] = {0.0, 0.1, 0.5, 0.77, 1.0};
            for (int64_t i = 0; i < n; i++)
                w[i] = rep == 2 ? test_rng_normal()
                                : (float)((int)(test_rng_u() * (rep ? 3 : 7)) - (rep ? 1 : 3)) * 0.25f;
            memcpy(v, w, sizeof(float) * (size_t)n);
            double e2 = -1.0, e2r = 0.0;
            CHECK(sk_prune_matrix(v, rows, cols, sp[si], &e2) == SHRINK_OK, "prune_matrix");
            for (int64_t i = 0; i < n; i++) s[i] = fabs((double)w[i]);
            sk_prune_select(s, n, (int64_t)floor((double)n * sp[si]), mask);
            int diff = 0;
            for (int64_t i = 0; i < n; i++) {
                const float want = mask[i] ? 0.0f : w[i];
                diff += memcmp(&v[i], &want, sizeof want) != 0 && !(v[i] == 0 && want == 0);
                const double d = (double)want - (double)w[i];
                e2r += d * d;
            }
            CHECK(diff == 0 && e2 == e2r, "prune_matrix, values %d, sparsity %g: %d differ from "
                  "the sorted selection, e2 %.17g vs %.17g", rep, sp[si], diff, e2, e2r);
        }
    free(w);
    free(v);
    free(s);
    free(mask);
}

int main(void) {
    check_algo();
    check_matrix_ties();
    static char buf[2048], gpt2[2048];
    if (!mkdtemp(tmp_dir)) {
        CHECK(0, "mkdtemp");
        return test_summary("test_prune");
    }
    const char *model = test_need_model(buf, sizeof buf, "tiny-llama-gqa");
    const char *g2 = test_need_model(gpt2, sizeof gpt2, "tiny-gpt2");
    if (model) {
        fixture fm, fs, fin;
        char inpath[2200];
        snprintf(inpath, sizeof inpath, "%s/model.safetensors", model);
        int ok_m = fixture_open(&fm, FIX_MASKS), ok_s = fixture_open(&fs, FIX_SGPT),
            ok_in = fixture_open(&fin, inpath);
        CHECK(ok_m && ok_s, "fixtures %s / %s missing (tools/ref_check/prune_ref.py makes them)",
              FIX_MASKS, FIX_SGPT);
        CHECK(ok_in, "cannot read %s", inpath);
        if (ok_m && ok_s && ok_in) {
            check_calib_ids(model, &fm);
            for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
                run_case(&CASES[i], model, &fm, &fs, &fin);
        }
        if (ok_m) fixture_close(&fm);
        if (ok_s) fixture_close(&fs);
        if (ok_in) fixture_close(&fin);
        check_bad(model);
    }
    if (g2) check_gpt2(g2);
    rmdir(tmp_dir);
    return test_summary("test_prune");
}
