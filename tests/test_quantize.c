/*
 * test_quantize.c - shrink_quantize (src/quant/quantize.c):
 *
 *   1. the q4_K_M rules (sk_mix_type) give, tensor by tensor, the types llama-quantize chose in
 *      ../shared/fixtures/gguf/{stories260K,mix-llama-14m}-Q4_K_M.gguf (written by llama.cpp);
 *   2. end to end: shrink_quantize of mix-llama-14m (HF, f16) with q4_K_M writes exactly the
 *      fixture's tensor types; of stories260K.bin likewise, except that shrink writes no
 *      separate output.weight for the tied model, so token_embd takes the output's rule (q8_0,
 *      the type llama-quantize gave the fixture's output.weight);
 *   3. the bytes written equal the dtype row's quantizer applied to the source rows read
 *      independently from the input file (llama2.c f32 rows; GPT-2's Conv1D weights transposed
 *      here by hand), for llama.cpp types, a mix, per-channel and per-tensor int8 (min/max
 *      computed here), int4 groups and nf4; the reported relative RMS error equals the one
 *      recomputed in double from the file;
 *   4. w8a8_static: the activation scale stored with blk.0.attn_q equals absmax/127 of
 *      RMSNorm(embedding) over the calibration tokens, computed here without the decoder;
 *   5. errors: unknown scheme (lists the schemes), w8a8_static without a calibration text,
 *      output == input, missing input, non-GGUF output: an error and no output file;
 *   6. Q4_K/Q5_K/Q6_K: the quantizers' lane-parallel scale search gives the scalar one's bytes
 *      on 2048 random super-blocks (normal, one-signed, flat and zero sub-blocks, outliers,
 *      tiny values) - ggml's own vectors are checked in test_quants;
 *   7. the searched quantizers (q4_0, q4_1, q5_0, q5_1, int4_*, nf4, nf4_dq): no block's
 *      error above the reference's on normal, heavy-tailed, outlier, zero and constant data,
 *      a smaller error overall, codes in the layouts' ranges; --ggml-exact (section 3) gives
 *      the references' bytes.
 */
#include "formats/formats.h"
#include "kernels/ggml_quants.h"
#include "kernels/kernels.h"
#include "kernels/q_search.h"
#include "model/model.h"
#include "quant/quant.h"
#include "test_util.h"

#include <unistd.h>

static char tmpdir[] = "/tmp/shrink_quantize_XXXXXX";

static struct shrink_model *open_file(const char *path) {
    struct shrink_model *m = NULL;
    shrink_load_params lp = shrink_load_params_default();
    lp.no_tokenizer = true;
    if (sk_model_open(&m, path, &lp) != SHRINK_OK) {
        CHECK(0, "open %s: %s", path, shrink_last_error());
        return NULL;
    }
    return m;
}

static const sk_tensor *find_t(const struct shrink_model *m, const char *name) {
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

static int layer_of(const char *name) {
    int l = -1;
    return sscanf(name, "blk.%d.", &l) == 1 ? l : -1;
}

static int64_t n_elems(const sk_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= t->shape[d];
    return n;
}

/* ==== 1. the mix rules against llama-quantize's choices =================================== */

static void test_mix_rules(const char *fixture) {
    char path[2048];
    if (!test_need_shared(path, sizeof path, fixture)) return;
    struct shrink_model *f = open_file(path);
    if (!f) return;
    int has_output = find_t(f, "output.weight") != NULL;
    int checked = 0;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const sk_tensor *t = &f->tensors[i];
        shrink_dtype want;
        if (t->n_dims == 1) {
            want = SHRINK_DTYPE_F32;
        } else {
            want = sk_mix_type(SK_MIX_Q4_K_M, sk_mix_role(t->name, f->cfg.n_layers),
                               t->shape[t->n_dims - 1], layer_of(t->name), f->cfg.n_layers,
                               has_output, 0, 1, NULL);
        }
        CHECK(want == t->dtype, "%s: %s: rules give %s, llama-quantize wrote %s", fixture,
              t->name, shrink_dtype_name(want), shrink_dtype_name(t->dtype));
        checked++;
    }
    CHECK(checked == f->n_tensors && checked > 0, "%s: %d tensors checked", fixture, checked);
    shrink_model_free(f);
}

/* ==== 2. end to end: the types of a q4_K_M file =========================================== */

static void test_mix_file(const char *model_rel, const char *fixture_rel, int tied_llama) {
    char src[2048], fx[2048], out[2200];
    if (!test_need_asset(src, sizeof src, model_rel) ||
        !test_need_shared(fx, sizeof fx, fixture_rel))
        return;
    snprintf(out, sizeof out, "%s/mix.gguf", tmpdir);
    shrink_quantize_params p = shrink_quantize_params_default();
    p.scheme = "q4_K_M";
    shrink_status st = shrink_quantize(src, out, &p, NULL);
    CHECK(st == SHRINK_OK, "quantize %s q4_K_M: %s", src, shrink_last_error());
    if (st) return;
    struct shrink_model *m = open_file(out), *f = open_file(fx);
    if (m && f) {
        int same = 0;
        for (int64_t i = 0; i < f->n_tensors; i++) {
            const sk_tensor *ft = &f->tensors[i];
            const sk_tensor *mt = find_t(m, ft->name);
            if (tied_llama && !strcmp(ft->name, "output.weight")) {
                CHECK(!mt, "%s: output.weight written for a tied model", out);
                const sk_tensor *e = find_t(m, "token_embd.weight");
                CHECK(e && e->dtype == ft->dtype, "%s: token_embd %s, fixture's output %s", out,
                      e ? shrink_dtype_name(e->dtype) : "-", shrink_dtype_name(ft->dtype));
                continue;
            }
            if (tied_llama && !strcmp(ft->name, "token_embd.weight")) continue;
            CHECK(mt && mt->dtype == ft->dtype, "%s: %s is %s, llama-quantize wrote %s", out,
                  ft->name, mt ? shrink_dtype_name(mt->dtype) : "missing",
                  shrink_dtype_name(ft->dtype));
            same += mt && mt->dtype == ft->dtype;
        }
        CHECK(same == f->n_tensors - 2 * tied_llama, "%s: %d of %lld tensor types equal", out,
              same, (long long)f->n_tensors);
        CHECK(m->n_tensors == f->n_tensors - tied_llama, "%s: %lld tensors, fixture %lld", out,
              (long long)m->n_tensors, (long long)f->n_tensors);
    }
    shrink_model_free(m);
    shrink_model_free(f);
    remove(out);
}

/* ==== 3. bytes = the dtype row's quantizer of the source ================================== */

/* GGUF name of the llama2.c / HF file tensor `name` (llama names), or NULL. */
static int gguf_to_src(const char *gguf, int gpt2, char *buf, size_t cap) {
    int layer = layer_of(gguf), n;
    const sk_arch *a = sk_arch_find(gpt2 ? "gpt2" : "llama");
    const sk_trole *roles = sk_troles(&n);
    for (int r = 0; r < n; r++) {
        char name[128];
        if (!sk_trole_name(&roles[r], a, SK_TNAME_GGUF, layer, name, sizeof name) ||
            strcmp(name, gguf) != 0)
            continue;
        return sk_trole_name(&roles[r], a, SK_TNAME_HF, layer, buf, cap) != NULL;
    }
    return 0;
}

/* Expected bytes of `rows` rows of `cols` f32 values quantized as dt (per-tensor min/max
 * for int8_t*) into a malloc'd buffer: the row's quantize hook (the searched quantizers), or
 * with `exact` (--ggml-exact) from_f32 wherever the hook needs no tensor parameters. */
static uint8_t *expected_bytes(const float *w, int64_t rows, int64_t cols, shrink_dtype dt,
                               int exact) {
    const sk_dtype_traits *d = sk_dtype(dt);
    size_t rb = (size_t)sk_dtype_row_bytes(dt, cols);
    uint8_t *out = malloc(rows * rb);
    sk_qparams qp;
    memset(&qp, 0, sizeof qp);
    if (dt == SHRINK_DTYPE_INT8_T || dt == SHRINK_DTYPE_INT8_T_ASYM) {
        qp.tensor_range = 1;
        qp.tmin = qp.tmax = w[0];
        for (int64_t i = 0; i < rows * cols; i++) {
            if (w[i] < qp.tmin) qp.tmin = w[i];
            if (w[i] > qp.tmax) qp.tmax = w[i];
        }
    }
    for (int64_t r = 0; r < rows; r++) {
        int tensor_params = dt == SHRINK_DTYPE_INT8_T || dt == SHRINK_DTYPE_INT8_T_ASYM ||
                            dt == SHRINK_DTYPE_W8A8_STATIC;
        if (d->quantize && (!exact || tensor_params))
            d->quantize(w + r * cols, out + r * rb, cols, &qp);
        else d->from_f32(w + r * cols, out + r * rb, cols);
    }
    return out;
}

/* ||dequant(q) - w|| / ||w|| in double */
static double rel_rms(const uint8_t *q, const float *w, int64_t rows, int64_t cols,
                      shrink_dtype dt) {
    size_t rb = (size_t)sk_dtype_row_bytes(dt, cols);
    float *row = malloc((size_t)cols * sizeof(float));
    double e = 0, n = 0;
    for (int64_t r = 0; r < rows; r++) {
        sk_dtype(dt)->to_f32(q + r * rb, row, cols);
        for (int64_t c = 0; c < cols; c++) {
            double dx = (double)row[c] - w[r * cols + c];
            e += dx * dx;
            n += (double)w[r * cols + c] * w[r * cols + c];
        }
    }
    free(row);
    return n > 0 ? sqrt(e / n) : 0;
}

static void test_bytes_llama2c(void) {
    char src[2048], out[2200];
    if (!test_need_asset(src, sizeof src, "models/stories260K/stories260K.bin")) return;
    static const char *const schemes[] = {"q8_0", "q4_K_M", "q6_K", "int8_ch", "int8_t",
                                          "int8_t_asym", "int4_g32", "int4_g64_asym", "nf4",
                                          "nf4_dq", "w8a8", "q4_0", "q5_1", "q4_0", "q4_1",
                                          "int4_g128_asym", "nf4_dq"};
    /* --ggml-exact for the last four: the reference quantizers' bytes */
    const size_t n_schemes = sizeof schemes / sizeof schemes[0], first_exact = n_schemes - 4;
    struct shrink_model *s = open_file(src);
    if (!s) return;
    for (size_t k = 0; k < n_schemes; k++) {
        if (!sk_scheme_find(schemes[k])) {
            CHECK(0, "scheme %s not available", schemes[k]);
            continue;
        }
        snprintf(out, sizeof out, "%s/%s.gguf", tmpdir, schemes[k]);
        shrink_quantize_params p = shrink_quantize_params_default();
        p.scheme = schemes[k];
        p.tensor_stats = true;
        p.ggml_exact = k >= first_exact;
        shrink_quantize_result r;
        shrink_status st = shrink_quantize(src, out, &p, &r);
        CHECK(st == SHRINK_OK, "quantize %s: %s", schemes[k], shrink_last_error());
        if (st) continue;
        struct shrink_model *m = open_file(out);
        int compared = 0;
        uint64_t tensor_bytes = 0;
        for (int64_t i = 0; m && i < m->n_tensors; i++) {
            const sk_tensor *t = &m->tensors[i];
            tensor_bytes += t->bytes;
            char name[128];
            const sk_tensor *st2 = gguf_to_src(t->name, 0, name, sizeof name) ? find_t(s, name)
                                                                              : NULL;
            CHECK(st2 && st2->dtype == SHRINK_DTYPE_F32 && n_elems(st2) == n_elems(t),
                  "%s: %s: no f32 source tensor %s", out, t->name, name);
            if (!st2 || n_elems(st2) != n_elems(t)) continue;
            int64_t cols = t->shape[t->n_dims - 1], rows = n_elems(t) / cols;
            float *w = malloc((size_t)n_elems(t) * sizeof(float));
            memcpy(w, st2->data, (size_t)n_elems(t) * sizeof(float));
            uint8_t *want = expected_bytes(w, rows, cols, t->dtype, (int)p.ggml_exact);
            uint64_t nb = (uint64_t)rows * sk_dtype_row_bytes(t->dtype, cols);
            CHECK(t->bytes == nb && !memcmp(t->data, want, nb), "%s: %s (%s%s): bytes differ "
                  "from the dtype row's quantizer of the source", out, t->name,
                  shrink_dtype_name(t->dtype), p.ggml_exact ? ", --ggml-exact" : "");
            /* the reported error, recomputed from the file */
            for (int64_t j = 0; j < r.n_tensors; j++) {
                if (strcmp(r.tensors[j].name, t->name)) continue;
                double e = rel_rms(t->data, w, rows, cols, t->dtype);
                CHECK(fabs(r.tensors[j].rel_rms - e) <= 1e-9 + 1e-6 * e, "%s: %s rel_rms %g, "
                      "recomputed %g", out, t->name, r.tensors[j].rel_rms, e);
                CHECK(r.tensors[j].dtype == t->dtype && r.tensors[j].bytes == t->bytes,
                      "%s: %s: result table disagrees with the file", out, t->name);
            }
            compared++;
            free(w);
            free(want);
        }
        CHECK(m && compared == m->n_tensors && compared == r.n_tensors,
              "%s: %d tensors compared", out, compared);
        CHECK(r.tensor_bytes == tensor_bytes, "%s: tensor_bytes %llu, file %llu", out,
              (unsigned long long)r.tensor_bytes, (unsigned long long)tensor_bytes);
        struct stat sb;
        CHECK(stat(out, &sb) == 0 && (uint64_t)sb.st_size == r.out_file_bytes &&
                  r.out_file_bytes > r.tensor_bytes,
              "%s: out_file_bytes %llu", out, (unsigned long long)r.out_file_bytes);
        CHECK(fabs(r.bits_per_weight - 8.0 * (double)r.tensor_bytes / (double)r.n_params) < 1e-9,
              "%s: bits/weight", out);
        shrink_model_free(m);
        shrink_quantize_result_free(&r);
        remove(out);
    }
    shrink_model_free(s);
}

/* GPT-2: c_fc is stored (in, out) as Conv1D; the output's blk.0.ffn_up rows are its columns. */
static void test_bytes_gpt2(void) {
    char src[2048], out[2200];
    if (!test_need_model(src, sizeof src, "tiny-gpt2")) return;
    snprintf(out, sizeof out, "%s/gpt2.gguf", tmpdir);
    shrink_quantize_params p = shrink_quantize_params_default();
    p.scheme = "q8_0";
    shrink_status st = shrink_quantize(src, out, &p, NULL);
    CHECK(st == SHRINK_OK, "quantize tiny-gpt2: %s", shrink_last_error());
    if (st) return;
    struct shrink_model *s = open_file(src), *m = open_file(out);
    const sk_tensor *fc = NULL;
    for (int64_t i = 0; s && i < s->n_tensors; i++) {
        const char *n = s->tensors[i].name;
        size_t L = strlen(n), k = strlen("h.0.mlp.c_fc.weight");
        if (L >= k && !strcmp(n + L - k, "h.0.mlp.c_fc.weight") && (L == k || n[L - k - 1] == '.'))
            fc = &s->tensors[i];
    }
    const sk_tensor *up = m ? find_t(m, "blk.0.ffn_up.weight") : NULL;
    CHECK(fc && up && fc->n_dims == 2, "tiny-gpt2: c_fc or blk.0.ffn_up missing");
    if (fc && up) {
        int64_t in = fc->shape[0], outf = fc->shape[1];
        float *all = malloc((size_t)(in * outf) * sizeof(float));
        float *w = malloc((size_t)(in * outf) * sizeof(float));
        sk_dtype(fc->dtype)->to_f32(fc->data, all, in * outf);
        for (int64_t r = 0; r < outf; r++)
            for (int64_t c = 0; c < in; c++) w[r * in + c] = all[c * outf + r];
        CHECK(up->shape[0] == outf && up->shape[1] == in, "ffn_up shape");
        shrink_dtype dt = up->dtype;
        CHECK(dt == SHRINK_DTYPE_Q8_0 || in % 32, "ffn_up is %s", shrink_dtype_name(dt));
        uint8_t *want = expected_bytes(w, outf, in, dt, 0);
        CHECK(!memcmp(up->data, want, (size_t)outf * sk_dtype_row_bytes(dt, in)),
              "tiny-gpt2: ffn_up bytes differ from q8_0 of the transposed Conv1D weight");
        free(want);
        free(all);
        free(w);
    }
    /* tied: the head is token_embd, written once (llama.cpp ties a missing output.weight) */
    CHECK(m && !find_t(m, "output.weight") && find_t(m, "token_embd.weight"),
          "tiny-gpt2: output.weight written for a tied head");
    shrink_model_free(s);
    shrink_model_free(m);
    remove(out);
}

/* ==== 4. w8a8_static calibration ========================================================== */

static void test_w8a8_static(void) {
    char src[2048], text[2048], out[2200];
    if (!test_need_asset(src, sizeof src, "models/stories260K/stories260K.bin") ||
        !test_need_asset(text, sizeof text, "fixtures/stories260K/ppl_text.txt"))
        return;
    if (!sk_scheme_find("w8a8_static")) {
        CHECK(0, "w8a8_static not available");
        return;
    }
    snprintf(out, sizeof out, "%s/static.gguf", tmpdir);
    shrink_quantize_params p = shrink_quantize_params_default();
    p.scheme = "w8a8_static";
    p.calib_path = text;
    p.calib_tokens = 300;
    shrink_quantize_result r;
    shrink_status st = shrink_quantize(src, out, &p, &r);
    CHECK(st == SHRINK_OK, "quantize w8a8_static: %s", shrink_last_error());
    if (st) return;
    CHECK(r.calib_tokens == 300, "calib_tokens %lld", (long long)r.calib_tokens);
    shrink_model *ref = NULL;
    struct shrink_model *m = open_file(out);
    if (shrink_model_load(&ref, src, NULL) != SHRINK_OK || !m) {
        CHECK(0, "load %s", src);
        shrink_model_free(m);
        return;
    }
    /* absmax of RMSNorm(embedding) * attn_norm over the first 300 tokens, in double */
    char *txt;
    size_t len;
    int32_t *ids;
    size_t n_ids;
    CHECK(sk_read_file(text, 1 << 30, &txt, &len) == SHRINK_OK, "read %s", text);
    CHECK(shrink_tokenizer_encode(shrink_model_tokenizer(ref), txt, len, true, &ids, &n_ids) ==
              SHRINK_OK && n_ids >= 300, "encode");
    const struct shrink_model *rm = ref;
    const int D = rm->cfg.dim;
    const sk_tensor *emb = find_t(m, "token_embd.weight");
    const float *e = rm->tok_emb.data, *nw = rm->layers[0].attn_norm;
    double amax = 0;
    for (size_t t = 0; t < 300; t++) {
        const float *x = e + (size_t)ids[t] * D;
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)x[i] * x[i];
        float sc = (float)(1.0 / sqrt(ss / D + rm->cfg.norm_eps));
        for (int i = 0; i < D; i++) amax = fmax(amax, fabs((double)(x[i] * sc * nw[i])));
    }
    const sk_tensor *q = find_t(m, "blk.0.attn_q.weight");
    CHECK(q && q->dtype == SHRINK_DTYPE_W8A8_STATIC, "blk.0.attn_q is not w8a8_static");
    CHECK(emb && emb->dtype == SHRINK_DTYPE_W8A8_STATIC, "token_embd (tied head) is %s",
          emb ? shrink_dtype_name(emb->dtype) : "-");
    if (q && q->dtype == SHRINK_DTYPE_W8A8_STATIC) {
        size_t rb = (size_t)sk_dtype_row_bytes(q->dtype, q->shape[1]);
        float a0, a1;
        memcpy(&a0, (const uint8_t *)q->data + 4, 4); /* row head: f32 d, f32 a */
        memcpy(&a1, (const uint8_t *)q->data + rb * (size_t)(q->shape[0] - 1) + 4, 4);
        double want = amax / 127.0;
        CHECK(fabs(a0 - want) <= 1e-5 * want && a0 == a1, "blk.0.attn_q activation scale %.9g "
              "(last row %.9g), absmax/127 of its input %.9g", a0, a1, want);
    }
    shrink_free(ids);
    sk_free(txt);
    shrink_model_free(ref);
    shrink_model_free(m);
    remove(out);
}

/* ==== 6. the vector scale search of Q4_K/Q5_K/Q6_K = the scalar one ====================== */


static void test_k_lanes(void) {
    const int64_t nb = 2048, n = nb * 256;
    float *x = malloc((size_t)n * sizeof(float));
    /* super-blocks of varied kinds: normal-ish, all positive, all negative, constant (a flat
     * sub-block: the scalar search returns early), zeros, one outlier, tiny values */
    for (int64_t b = 0; b < nb; b++) {
        float *y = x + b * 256;
        int kind = (int)(b % 7);
        for (int i = 0; i < 256; i++) {
            double u = test_rng_u() - 0.5, v = test_rng_u() - 0.5;
            float g = (float)((u + v) * (1 + 10 * test_rng_u()));
            y[i] = kind == 1 ? fabsf(g) : kind == 2 ? -fabsf(g) : kind == 3 ? 0.25f
                 : kind == 4 ? 0.0f : kind == 6 ? g * 1e-12f : g;
        }
        if (kind == 5) y[(b * 37) % 256] = 40.0f;
        if (kind == 3) for (int i = 64; i < 96; i++) y[i] = (float)i; /* one sub-block not flat */
    }
    const shrink_dtype ts[] = {SHRINK_DTYPE_Q4_K, SHRINK_DTYPE_Q5_K, SHRINK_DTYPE_Q6_K};
    for (int k = 0; k < 3; k++) {
        size_t bytes = (size_t)sk_dtype_row_bytes(ts[k], n);
        uint8_t *a = malloc(bytes), *b = malloc(bytes);
        sk_dtype(ts[k])->from_f32(x, a, n);
        sk_k_quant_scalar(ts[k], x, b, n);
        int64_t first = -1;
        for (size_t i = 0; i < bytes && first < 0; i++)
            if (a[i] != b[i]) first = (int64_t)i;
        CHECK(first < 0, "%s: lane-parallel scale search differs from the scalar one at byte "
              "%lld (super-block %lld)", shrink_dtype_name(ts[k]), (long long)first,
              (long long)(first / (int64_t)sk_dtype(ts[k])->bytes));
        free(a);
        free(b);
    }
    free(x);
}

/* ==== 7. searched quantizers (src/kernels/q_search.c) ===================================== */


/* Rows of `cols` of a kind: 0 normal, 1 heavy-tailed (normal^3), 2 Student-t-like
 * (normal / sqrt(u)), 3 blocks with one outlier, zero blocks and constant blocks. */
static void fill_rows(float *x, int64_t rows, int64_t cols, int kind) {
    for (int64_t i = 0; i < rows * cols; i++) {
        float g = test_rng_normal() * 0.02f;
        x[i] = kind == 1 ? g * g * g * 2500.0f : kind == 2 ? g / sqrtf(0.05f + (float)test_rng_u()) : g;
    }
    if (kind == 3)
        for (int64_t b = 0; b < rows * cols / 32; b++) {
            float *y = x + b * 32;
            if (b % 5 == 0) y[(b * 7) % 32] = 0.5f;
            if (b % 5 == 1) memset(y, 0, 32 * sizeof(float));
            if (b % 5 == 2) for (int j = 0; j < 32; j++) y[j] = -0.01f;
        }
}

/* The test's own error weights of a row (q_search.h: 1 uniform, 2 sqrt(mean x^2 + x^2)). */
static void row_weights(const float *x, int64_t n, int mode, float *w) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    float sigma2 = (float)(s / (double)n);
    for (int64_t i = 0; i < n; i++) w[i] = mode == 2 ? sqrtf(sigma2 + x[i] * x[i]) : 1.0f;
}

/* Every searched type: per block, the weighted squared error of the quantize hook's bytes
 * (decoded by to_f32, the dequantizer llama.cpp shares for its types) is at most the
 * reference's (from_f32); over all data it is smaller; the int4 symmetric codes stay in
 * 1..15 and nf4_dq's block scales >= 1, as the layouts say. */
static void test_search(void) {
    const int64_t rows = 16, cols = 1024;
    const int mode = sk_qsearch_mode();
    CHECK(mode == 1 || mode == 2 || mode == 0, "SHRINK_QSEARCH mode %d", mode);
    float *x = malloc((size_t)(rows * cols) * sizeof(float));
    float *w = malloc((size_t)cols * sizeof(float));
    float *ya = malloc((size_t)cols * sizeof(float)), *yb = malloc((size_t)cols * sizeof(float));
    for (int t = 0; t < SHRINK_DTYPE_COUNT; t++) {
        if (!sk_quantize_searches((shrink_dtype)t)) continue;
        const sk_dtype_traits *d = sk_dtype((shrink_dtype)t);
        CHECK(d->quantize != NULL, "%s: no searched hook", d->name);
        const size_t rb = (size_t)sk_dtype_row_bytes((shrink_dtype)t, cols);
        uint8_t *qa = malloc(rb), *qb = malloc(rb);
        double tot_s = 0, tot_r = 0;
        int64_t worse = 0, better = 0, bad_codes = 0;
        for (int kind = 0; kind < 4; kind++) {
            fill_rows(x, rows, cols, kind);
            for (int64_t r = 0; r < rows; r++) {
                const float *xr = x + r * cols;
                d->quantize(xr, qa, cols, NULL);
                d->from_f32(xr, qb, cols);
                d->to_f32(qa, ya, cols);
                d->to_f32(qb, yb, cols);
                row_weights(xr, cols, mode ? mode : 1, w);
                for (int64_t b = 0; b < cols / (int64_t)d->block; b++) {
                    double es = 0, er = 0;
                    for (int64_t j = b * (int64_t)d->block; j < (b + 1) * (int64_t)d->block; j++) {
                        double ds = (double)ya[j] - xr[j], dr = (double)yb[j] - xr[j];
                        es += (double)w[j] * ds * ds;
                        er += (double)w[j] * dr * dr;
                    }
                    worse += es > er * (1 + 1e-9) + 1e-30;
                    better += es < er;
                    tot_s += es;
                    tot_r += er;
                }
                if (t >= SHRINK_DTYPE_INT4_G32 && t <= SHRINK_DTYPE_INT4_G128) {
                    const size_t bb = d->bytes;
                    for (size_t b = 0; b < rb / bb; b++)
                        for (size_t j = 2; j < bb; j++)
                            bad_codes += (qa[b * bb + j] & 15) == 0 || (qa[b * bb + j] >> 4) == 0;
                }
                if (t == SHRINK_DTYPE_NF4_DQ)
                    for (int64_t b = 0; b < cols / 64; b++) {
                        const uint8_t *blk = qa + d->row_head + (size_t)b * d->bytes;
                        float amax = 0;
                        for (int j = 0; j < 64; j++) amax = fmaxf(amax, fabsf(xr[b * 64 + j]));
                        bad_codes += amax > 0 && blk[0] == 0;
                    }
            }
        }
        CHECK(worse == 0, "%s: %lld blocks with a larger error than the reference", d->name,
              (long long)worse);
        CHECK(bad_codes == 0, "%s: %lld codes/scales outside the layout's range", d->name,
              (long long)bad_codes);
        if (mode)
            CHECK(better > 0 && tot_s < 0.97 * tot_r, "%s: searched error %g vs reference %g "
                  "(%lld blocks better)", d->name, tot_s, tot_r, (long long)better);
        else
            CHECK(!memcmp(qa, qb, rb), "%s: SHRINK_QSEARCH=0 is not the reference", d->name);
        free(qa);
        free(qb);
    }
    free(x);
    free(w);
    free(ya);
    free(yb);
}

/* ==== 5. errors =========================================================================== */

static void test_errors(void) {
    char src[2048], out[2200];
    if (!test_need_asset(src, sizeof src, "models/stories260K/stories260K.bin")) return;
    snprintf(out, sizeof out, "%s/err.gguf", tmpdir);
    shrink_quantize_params p = shrink_quantize_params_default();
    p.scheme = "q3_K_XL";
    CHECK(shrink_quantize(src, out, &p, NULL) == SHRINK_ERR_ARG &&
              strstr(shrink_last_error(), "q4_K_M") && strstr(shrink_last_error(), "q3_K_XL"),
          "unknown scheme: %s", shrink_last_error());
    p.scheme = "w8a8_static";
    CHECK(shrink_quantize(src, out, &p, NULL) == SHRINK_ERR_ARG &&
              strstr(shrink_last_error(), "--calib"),
          "w8a8_static without calibration: %s", shrink_last_error());
    p.scheme = "Q4-K-M"; /* case and dashes are accepted */
    CHECK(shrink_quantize(src, src, &p, NULL) == SHRINK_ERR_ARG, "output == input accepted");
    char missing[2200];
    snprintf(missing, sizeof missing, "%s/none.bin", tmpdir);
    CHECK(shrink_quantize(missing, out, &p, NULL) != SHRINK_OK &&
              strstr(shrink_last_error(), "none.bin"),
          "missing input: %s", shrink_last_error());
    char hf[2200];
    snprintf(hf, sizeof hf, "%s/hf_out", tmpdir);
    CHECK(shrink_quantize(src, hf, &p, NULL) == SHRINK_ERR_ARG, "non-GGUF output accepted");
    CHECK(access(out, F_OK) != 0 && access(hf, F_OK) != 0, "an output file was left behind");
}

int main(void) {
    /* the self-contained checks (stories260K is in the repository, test_k_lanes, test_search)
     * run always; a missing ../shared fixture is a counted skip, a failure with ../shared */
    if (!mkdtemp(tmpdir)) return 1;
    shrink_set_threads(2);
    test_mix_rules("fixtures/gguf/stories260K-Q4_K_M.gguf");
    test_mix_rules("fixtures/gguf/mix-llama-14m-Q4_K_M.gguf");
    test_mix_file("models/mix-llama-14m", "fixtures/gguf/mix-llama-14m-Q4_K_M.gguf", 0);
    test_mix_file("models/stories260K/stories260K.bin", "fixtures/gguf/stories260K-Q4_K_M.gguf", 1);
    test_bytes_llama2c();
    test_bytes_gpt2();
    test_w8a8_static();
    test_errors();
    test_k_lanes();
    test_search();
    rmdir(tmpdir);
    return test_summary("test_quantize");
}
