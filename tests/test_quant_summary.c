/*
 * test_quant_summary.c - what shrink_quantize reports about what it wrote, through the public
 * API only (include/shrink.h):
 *
 *   1. params.tensor_done is called once per output tensor, in writing order (i = 0..n-1),
 *      with exactly what result.tensors[i] holds afterwards (name, shape, dtype, bytes,
 *      rel_rms, fallback, wanted), before shrink_quantize returns; and the result's tensors
 *      agree with the file read back (shrink_model_tensor: name, dtype, bytes);
 *   2. fallbacks name the type the scheme chose (wanted != dtype exactly when fallback);
 *   3. the scheme table (shrink_quantize_scheme_get): every scheme's name is
 *      shrink_quantize_scheme_name(i), llama_cpp is NULL exactly for shrink's own types, KL and
 *      bits come with a reference; shrink_dtype_bits / _block_size of the llama.cpp block
 *      types against ggml's block sizes (block bytes * 8 / block elements).
 */
#include "shrink.h"
#include "test_util.h"

#include <string.h>

typedef struct seen {
    int64_t                n, next;
    int                    in_order;
    shrink_quantize_tensor t[64];
} seen;

static void on_tensor(void *user, const shrink_quantize_tensor *t, int64_t i, int64_t n) {
    seen *s = user;
    s->in_order &= i == s->next && n > 0;
    s->next = i + 1;
    s->n = n;
    if (i >= 0 && i < 64) s->t[i] = *t;
}

static void test_tensor_done(void) {
    char src[1024];
    if (!test_need_asset(src, sizeof src, "models/stories260K/stories260K.bin")) return;
    char dir[] = "/tmp/shrink_qsum_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    char out[64];
    snprintf(out, sizeof out, "%s/q.gguf", dir);
    static const char *const schemes[] = {"q4_K_M", "q2_K_M", "nf4"};
    for (size_t k = 0; k < sizeof schemes / sizeof schemes[0]; k++) {
        seen s = {.in_order = 1};
        shrink_quantize_params p = shrink_quantize_params_default();
        p.scheme = schemes[k];
        p.tensor_stats = true;
        p.tensor_done = on_tensor;
        p.user = &s;
        shrink_quantize_result r;
        shrink_status st = shrink_quantize(src, out, &p, &r);
        CHECK(st == SHRINK_OK, "%s: %s", schemes[k], shrink_last_error());
        if (st) continue;
        CHECK(s.in_order && s.n == r.n_tensors && s.next == r.n_tensors && r.n_tensors <= 64,
              "%s: tensor_done called %lld times (n %lld) for %lld tensors, in order %d",
              schemes[k], (long long)s.next, (long long)s.n, (long long)r.n_tensors, s.in_order);
        int64_t n_fb = 0;
        for (int64_t i = 0; i < r.n_tensors && i < 64; i++) {
            const shrink_quantize_tensor *a = &s.t[i], *b = &r.tensors[i];
            CHECK(!strcmp(a->name, b->name) && a->dtype == b->dtype && a->bytes == b->bytes &&
                      a->shape[0] == b->shape[0] && a->shape[1] == b->shape[1] &&
                      a->rel_rms == b->rel_rms && a->fallback == b->fallback &&
                      a->wanted == b->wanted,
                  "%s: tensor %lld: tensor_done saw %s %s, the result holds %s %s", schemes[k],
                  (long long)i, a->name, shrink_dtype_name(a->dtype), b->name,
                  shrink_dtype_name(b->dtype));
            CHECK((b->wanted != b->dtype) == b->fallback, "%s: %s wanted %s, wrote %s, fallback %d",
                  schemes[k], b->name, shrink_dtype_name(b->wanted), shrink_dtype_name(b->dtype),
                  b->fallback);
            n_fb += b->fallback;
        }
        CHECK(n_fb == r.n_fallback && n_fb > 0, "%s: %lld fallbacks, result says %lld",
              schemes[k], (long long)n_fb, (long long)r.n_fallback);
        /* the file read back */
        shrink_load_params lp = shrink_load_params_default();
        lp.no_tokenizer = true;
        shrink_model *m;
        if (shrink_model_load(&m, out, &lp) == SHRINK_OK) {
            shrink_model_info info;
            shrink_model_get_info(m, &info);
            int same = info.n_tensors == r.n_tensors;
            for (int64_t i = 0; same && i < info.n_tensors; i++) {
                shrink_tensor_info ti;
                same = shrink_model_tensor(m, i, &ti) == SHRINK_OK;
                for (int64_t k2 = 0; same && k2 < r.n_tensors; k2++)
                    if (!strcmp(r.tensors[k2].name, ti.name))
                        same = r.tensors[k2].dtype == ti.dtype && r.tensors[k2].bytes == ti.bytes;
            }
            CHECK(same, "%s: the result's tensors differ from the file's", schemes[k]);
            shrink_model_free(m);
        } else {
            CHECK(0, "%s: reload %s: %s", schemes[k], out, shrink_last_error());
        }
        shrink_quantize_result_free(&r);
        remove(out);
    }
    remove(dir);
}

static void test_scheme_table(void) {
    int32_t n = shrink_quantize_scheme_count();
    CHECK(n >= 33, "%d schemes", (int)n);
    int found_q2km = 0;
    for (int32_t i = 0; i < n; i++) {
        shrink_quantize_scheme_info si;
        CHECK(shrink_quantize_scheme_get(i, &si) == SHRINK_OK, "scheme %d", (int)i);
        CHECK(!strcmp(si.name, shrink_quantize_scheme_name(i)), "scheme %d: %s", (int)i, si.name);
        CHECK((si.llama_cpp == NULL) == shrink_dtype_is_own(si.dtype),
              "%s: llama_cpp '%s' for a %s type", si.name, si.llama_cpp ? si.llama_cpp : "-",
              shrink_dtype_is_own(si.dtype) ? "shrink-only" : "llama.cpp");
        CHECK(si.use && *si.use && (si.ref_kl < 0 || (si.ref && si.ref_bits_per_weight > 0)),
              "%s: use and reference", si.name);
        CHECK(si.ref_bits_per_weight == 0 || si.ref_bits_per_weight >= shrink_dtype_bits(si.dtype) - 0.01,
              "%s: %.2f bits/weight below its type's %.2f", si.name, si.ref_bits_per_weight,
              shrink_dtype_bits(si.dtype));
        if (!strcmp(si.name, "q2_K_M"))
            found_q2km = si.mix && si.dtype == SHRINK_DTYPE_Q2_K && !strcmp(si.llama_cpp, "Q2_K");
    }
    CHECK(found_q2km, "q2_K_M is llama-quantize's Q2_K mix");
    shrink_quantize_scheme_info si;
    CHECK(shrink_quantize_scheme_get(n, &si) != SHRINK_OK, "scheme past the end");
    /* ggml's block sizes: (block elements, block bytes) */
    static const struct { shrink_dtype t; int64_t block, bytes; } g[] = {
        {SHRINK_DTYPE_Q8_0, 32, 34},   {SHRINK_DTYPE_Q4_0, 32, 18},   {SHRINK_DTYPE_Q2_K, 256, 84},
        {SHRINK_DTYPE_Q3_K, 256, 110}, {SHRINK_DTYPE_Q4_K, 256, 144}, {SHRINK_DTYPE_Q6_K, 256, 210},
        {SHRINK_DTYPE_IQ4_NL, 32, 18}, {SHRINK_DTYPE_F16, 1, 2},
    };
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
        CHECK(shrink_dtype_block_size(g[i].t) == g[i].block &&
                  shrink_dtype_bits(g[i].t) == 8.0 * (double)g[i].bytes / (double)g[i].block,
              "%s: block %lld, %.4f bits", shrink_dtype_name(g[i].t),
              (long long)shrink_dtype_block_size(g[i].t), shrink_dtype_bits(g[i].t));
}

int main(void) {
    test_tensor_done();
    test_scheme_table();
    return test_summary("test_quant_summary");
}
