/*
 * test_convert.c - conversions between formats (shrink_convert, sk_write), in a mktemp folder.
 *
 *   1. round trips are lossless: llama2.c -> GGUF -> llama2.c and HF -> GGUF -> HF give every
 *      tensor back bit for bit (same names, dtype, shape, bytes), for stories260K.bin,
 *      stories260K-hf, tiny-llama-gqa (GQA, untied) and tiny-gpt2 (Conv1D, fused qkv);
 *      a tied head is written once (tiny-gpt2's GGUF has no output.weight, is smaller by the
 *      embedding than one repeating it, same logits);
 *      a quantized GGUF passes through byte for byte; another dtype or a HF output is refused
 *      without allow_requantize (no output), allowed with it;
 *   2. the converted models compute what the originals do: logits of a few tokens agree
 *      (exactly when the layout is the same, to 1e-5 across RoPE layouts), perplexity too;
 *   3. dtype conversion (f32 -> f16 -> f32 is the f16 rounding of the original), sharded HF
 *      output (index + shards) loads and matches;
 *   4. tokenizers survive: the GGUF and HF outputs encode like the source's tokenizer;
 *   5. atomic outputs: the input is never overwritten, a failing write (a source that fails
 *      midway, an unwritable folder) leaves neither the output nor a temporary behind.
 */
#include "test_util.h"

#include "model/source.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/shrink_convert_XXXXXX";

static void tmp_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static void rm_rf(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            rm_rf(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Number of entries in a folder (without . and ..). */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* ==== comparing tensor tables ============================================================ */

/* Every tensor of a appears in b with the same dtype, shape and bytes (and vice versa when
 * `both`). Returns the number of mismatches. */
static int compare_models(const char *pa, const char *pb, int both) {
    struct shrink_model *a = NULL, *b = NULL;
    shrink_load_params lp = shrink_load_params_default();
    lp.no_tokenizer = true;
    if (sk_model_open(&a, pa, &lp) || sk_model_open(&b, pb, &lp)) {
        CHECK(0, "open %s / %s: %s", pa, pb, shrink_last_error());
        shrink_model_free(a);
        shrink_model_free(b);
        return 1;
    }
    int bad = 0;
    for (int64_t i = 0; i < a->n_tensors; i++) {
        const sk_tensor *x = &a->tensors[i], *y = NULL;
        for (int64_t j = 0; j < b->n_tensors && !y; j++)
            if (!strcmp(b->tensors[j].name, x->name)) y = &b->tensors[j];
        int same = y && y->dtype == x->dtype && y->n_dims == x->n_dims && y->bytes == x->bytes &&
                   !memcmp(y->shape, x->shape, sizeof x->shape[0] * (size_t)x->n_dims) &&
                   !memcmp(y->data, x->data, (size_t)x->bytes);
        if (!same) {
            bad++;
            if (bad < 5) fprintf(stderr, "  %s: tensor '%s' %s in %s\n", pa, x->name,
                                 y ? "differs" : "missing", pb);
        }
    }
    if (both && a->n_tensors != b->n_tensors) {
        fprintf(stderr, "  %s has %" PRId64 " tensors, %s %" PRId64 "\n", pa, a->n_tensors, pb,
                b->n_tensors);
        bad++;
    }
    CHECK(a->cfg.tied == b->cfg.tied && a->cfg.vocab_size == b->cfg.vocab_size &&
          a->cfg.n_kv_heads == b->cfg.n_kv_heads && a->cfg.norm_eps == b->cfg.norm_eps &&
          a->cfg.rope_theta == b->cfg.rope_theta && a->cfg.bos_id == b->cfg.bos_id,
          "config of %s differs from %s", pb, pa);
    shrink_model_free(a);
    shrink_model_free(b);
    return bad;
}

/* Logits of a few tokens of both models; max relative difference (0 = identical). */
static double logits_diff(const char *pa, const char *pb) {
    shrink_model *ma = NULL, *mb = NULL;
    shrink_load_params lp = shrink_load_params_default();
    lp.no_tokenizer = true;
    double worst = -1;
    if (shrink_model_load(&ma, pa, &lp) || shrink_model_load(&mb, pb, &lp)) {
        CHECK(0, "load %s / %s: %s", pa, pb, shrink_last_error());
        goto out;
    }
    shrink_model_info ia, ib;
    shrink_model_get_info(ma, &ia);
    shrink_model_get_info(mb, &ib);
    int32_t toks[6] = {1, 7, 100, 33, 250, 5};
    int32_t V = ia.vocab_size;
    float *la = malloc(sizeof(float) * 6 * (size_t)V), *lb = malloc(sizeof(float) * 6 * (size_t)V);
    shrink_context *ca = NULL, *cb = NULL;
    if (shrink_context_create(&ca, ma, 16, 8) || shrink_context_create(&cb, mb, 16, 8) ||
        shrink_context_eval(ca, toks, 6, 0, la, 6) || shrink_context_eval(cb, toks, 6, 0, lb, 6)) {
        CHECK(0, "eval: %s", shrink_last_error());
    } else {
        worst = 0;
        double scale = 0;
        for (size_t i = 0; i < 6 * (size_t)V; i++) scale = fmax(scale, fabs(la[i]));
        for (size_t i = 0; i < 6 * (size_t)V; i++)
            worst = fmax(worst, fabs((double)la[i] - lb[i]) / (scale > 0 ? scale : 1));
    }
    shrink_context_free(ca);
    shrink_context_free(cb);
    free(la);
    free(lb);
out:
    shrink_model_free(ma);
    shrink_model_free(mb);
    return worst;
}

static shrink_status conv(const char *in, const char *out, int dtype) {
    shrink_convert_params p = shrink_convert_params_default();
    p.dtype = dtype;
    shrink_status st = shrink_convert(in, out, &p, NULL);
    CHECK(st == SHRINK_OK, "convert %s -> %s: %s", in, out, shrink_last_error());
    return st;
}

/* ==== round trips ======================================================================== */

/* src -> a.gguf -> back (same format as src), both directions compared. */
static void round_trip(const char *model, const char *back_name) {
    char src[2048], gg[4200], back[4200];
    if (!test_need_model(src, sizeof src, model)) return;
    char name[256];
    snprintf(name, sizeof name, "%s.gguf", back_name);
    tmp_path(gg, sizeof gg, name);
    tmp_path(back, sizeof back, back_name);
    if (conv(src, gg, -1) || conv(gg, back, -1)) return;
    int bad = compare_models(src, back, 1);
    CHECK(bad == 0, "%s -> GGUF -> %s: %d tensors differ", model, back_name, bad);
    double d = logits_diff(src, back);
    CHECK(d == 0, "%s: logits of the round trip differ by %g", model, d);
    d = logits_diff(src, gg);
    CHECK(d >= 0 && d < 1e-5, "%s: logits of the GGUF differ by %g", model, d);
    printf("  %-34s -> GGUF -> %-12s tensors bit for bit; GGUF logits within %.1e\n", model,
           back_name, d);
}

/* A tied head is written once: tiny-gpt2's GGUF has no output.weight and is smaller than the
 * one repeating the head (head_copy, what older llama.cpp builds need) by exactly the
 * embedding's bytes (32-byte padded); both give the HF original's logits. */
static void tied_head(void) {
    char src[2048], one[4200], two[4200];
    if (!test_need_model(src, sizeof src, "tiny-gpt2")) return;
    tmp_path(one, sizeof one, "tied1.gguf");
    tmp_path(two, sizeof two, "tied2.gguf");
    if (conv(src, one, -1)) return;
    struct shrink_model *m = NULL;
    shrink_status st = sk_model_open(&m, src, NULL);
    CHECK(st == SHRINK_OK, "open %s: %s", src, shrink_last_error());
    if (st) return;
    sk_write_opts o = sk_write_opts_default();
    o.head_copy = 1;
    st = sk_model_write(m, two, SK_FORMAT_GGUF, &o);
    CHECK(st == SHRINK_OK && m->cfg.tied, "write %s (tied %d): %s", two, m->cfg.tied,
          shrink_last_error());
    uint64_t emb = 0;
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (strstr(m->tensors[i].name, "wte.weight")) emb = (m->tensors[i].bytes + 31) / 32 * 32;
    shrink_model_free(m);
    if (st) return;
    shrink_model *a = NULL, *b = NULL;
    shrink_load_params lp = shrink_load_params_default();
    lp.no_tokenizer = true;
    if (shrink_model_load(&a, one, &lp) == SHRINK_OK && shrink_model_load(&b, two, &lp) ==
        SHRINK_OK) {
        int ha = 0, hb = 0;
        for (int64_t i = 0; i < a->n_tensors; i++) ha += !strcmp(a->tensors[i].name, "output.weight");
        for (int64_t i = 0; i < b->n_tensors; i++) hb += !strcmp(b->tensors[i].name, "output.weight");
        CHECK(ha == 0 && hb == 1 && a->n_tensors + 1 == b->n_tensors && a->cfg.tied && b->cfg.tied,
              "output.weight: %d in %s, %d in %s", ha, one, hb, two);
    } else {
        CHECK(0, "load %s / %s: %s", one, two, shrink_last_error());
    }
    shrink_model_free(a);
    shrink_model_free(b);
    struct stat f1, f2;
    int ok = stat(one, &f1) == 0 && stat(two, &f2) == 0;
    uint64_t s1 = ok ? (uint64_t)f1.st_size : 0, s2 = ok ? (uint64_t)f2.st_size : 0;
    CHECK(ok && emb > 0 && s2 > s1, "sizes of %s, %s", one, two);
    /* the header differs by one tensor info: name, dims, shape, type, offset */
    uint64_t info = 8 + strlen("output.weight") + 4 + 2 * 8 + 4 + 8;
    CHECK(s2 - s1 >= emb && s2 - s1 <= emb + info + 32, "tied GGUF %llu bytes, with the head "
          "%llu: %llu apart, the embedding is %llu", (unsigned long long)s1,
          (unsigned long long)s2, (unsigned long long)(s2 - s1), (unsigned long long)emb);
    double d1 = logits_diff(src, one), d2 = logits_diff(one, two);
    CHECK(d1 >= 0 && d1 < 1e-5 && d2 == 0, "tiny-gpt2 logits: HF vs tied GGUF %g, tied vs "
          "repeated head %g", d1, d2);
    printf("  tiny-gpt2 GGUF: head written once %llu bytes, repeated %llu; logits within %.1e\n",
           (unsigned long long)s1, (unsigned long long)s2, d1);
}

/* Do two files hold the same bytes? */
static int same_file(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int same = !sk_read_file(a, 1u << 26, &x, &nx) && !sk_read_file(b, 1u << 26, &y, &ny) &&
               nx == ny && !memcmp(x, y, nx);
    sk_free(x);
    sk_free(y);
    return same;
}

/* A quantized GGUF: passed through byte for byte without a dtype (or with its own type);
 * another dtype, or a HF output, only with allow_requantize (the message names the tensor's
 * type and the option; no output left). */
static void quantized_input(void) {
    char src[2048], q8[4200], out[4200], hf[4200];
    if (!test_need_model(src, sizeof src, "stories260K/stories260K.bin")) return;
    tmp_path(q8, sizeof q8, "q8.gguf");
    if (conv(src, q8, SHRINK_DTYPE_Q8_0)) return;
    tmp_path(out, sizeof out, "q8-again.gguf");
    tmp_path(hf, sizeof hf, "q8-hf");
    if (!conv(q8, out, -1))
        CHECK(same_file(q8, out), "q8_0 GGUF converted without a dtype: bytes changed");
    remove(out);
    if (!conv(q8, out, SHRINK_DTYPE_Q8_0))
        CHECK(same_file(q8, out), "q8_0 GGUF converted to q8_0: bytes changed");
    remove(out);
    shrink_convert_params p = shrink_convert_params_default();
    p.dtype = SHRINK_DTYPE_F16;
    shrink_status st = shrink_convert(q8, out, &p, NULL);
    const char *e = shrink_last_error();
    CHECK(st == SHRINK_ERR_ARG && strstr(e, "q8_0") && strstr(e, "--allow-requantize") &&
          access(out, F_OK) != 0, "q8_0 -> f16 without allow_requantize: %d %s", (int)st, e);
    p.dtype = -1;
    st = shrink_convert(q8, hf, &p, NULL);
    e = shrink_last_error();
    CHECK(st == SHRINK_ERR_ARG && strstr(e, "q8_0") && strstr(e, "--allow-requantize") &&
          access(hf, F_OK) != 0, "q8_0 -> HF without allow_requantize: %d %s", (int)st, e);
    p.dtype = SHRINK_DTYPE_F16;
    p.allow_requantize = true;
    st = shrink_convert(q8, out, &p, NULL);
    CHECK(st == SHRINK_OK, "q8_0 -> f16 with allow_requantize: %s", shrink_last_error());
    double d = st ? -1 : logits_diff(q8, out);
    /* q8_0 quantizes the activations per 32 (decode and prompt, as llama.cpp): ~1 % here */
    CHECK(d >= 0 && d < 2e-2, "q8_0 -> f16: logits differ by %g", d);
    printf("  q8_0 GGUF -> GGUF byte for byte; -> f16 or HF refused without allow_requantize\n");
}

/* Perplexity on a fixed text of the original and the GGUF conversion. */
static void ppl_equal(void) {
    char src[2048], gg[4200], textp[1024];
    if (!test_need_model(src, sizeof src, "stories260K-hf") ||
        !test_need_asset(textp, sizeof textp, "fixtures/stories260K/ppl_text.txt"))
        return;
    tmp_path(gg, sizeof gg, "ppl.gguf");
    if (conv(src, gg, -1)) return;
    char *text;
    size_t len;
    if (sk_read_file(textp, 1 << 20, &text, &len)) return;
    if (len > 4000) len = 4000;
    double ppl[2] = {0, 0};
    const char *paths[2] = {src, gg};
    for (int k = 0; k < 2; k++) {
        shrink_model *m;
        if (shrink_model_load(&m, paths[k], NULL)) {
            CHECK(0, "%s: %s", paths[k], shrink_last_error());
            continue;
        }
        int32_t *ids;
        size_t n;
        shrink_context *ctx;
        shrink_ppl_params pp = shrink_ppl_params_default();
        pp.n_ctx = 128;
        shrink_ppl_result r;
        if (!shrink_tokenizer_encode(shrink_model_tokenizer(m), text, len, true, &ids, &n)) {
            if (!shrink_context_create(&ctx, m, 128, 128)) {
                if (!shrink_perplexity(ctx, ids, (int64_t)n, &pp, &r)) ppl[k] = r.ppl;
                shrink_context_free(ctx);
            }
            shrink_free(ids);
        }
        shrink_model_free(m);
    }
    CHECK(ppl[0] > 1 && fabs(ppl[0] - ppl[1]) < 1e-5 * ppl[0],
          "perplexity HF %.6f vs GGUF %.6f", ppl[0], ppl[1]);
    printf("  perplexity stories260K-hf %.6f, its GGUF %.6f\n", ppl[0], ppl[1]);
    sk_free(text);
}

/* f32 -> f16 GGUF -> f32 HF equals the f16 rounding of each original tensor. */
static void dtype_and_shards(void) {
    char src[2048], gg[4200], hf[4200], sh[4200];
    if (!test_need_model(src, sizeof src, "tiny-llama-gqa")) return;
    tmp_path(gg, sizeof gg, "f16.gguf");
    tmp_path(hf, sizeof hf, "f16-hf");
    tmp_path(sh, sizeof sh, "sharded");
    if (conv(src, gg, SHRINK_DTYPE_F16) || conv(gg, hf, SHRINK_DTYPE_F32)) return;
    struct shrink_model *a = NULL, *b = NULL;
    shrink_load_params lp = shrink_load_params_default();
    lp.no_tokenizer = true;
    int bad = 0;
    if (!sk_model_open(&a, src, &lp) && !sk_model_open(&b, hf, &lp)) {
        for (int64_t i = 0; i < a->n_tensors; i++) {
            const sk_tensor *x = &a->tensors[i];
            const sk_tensor *y = NULL;
            for (int64_t j = 0; j < b->n_tensors; j++)
                if (!strcmp(b->tensors[j].name, x->name)) y = &b->tensors[j];
            if (!y || y->bytes != x->bytes) {
                bad++;
                continue;
            }
            const float *xf = x->data, *yf = y->data;
            for (uint64_t k = 0; k < x->bytes / 4; k++) {
                /* vectors stay f32 in GGUF; matrices go through f16 */
                float want = x->n_dims == 1 ? xf[k] : sk_f16_to_f32(sk_f32_to_f16(xf[k]));
                if (memcmp(&want, &yf[k], 4)) {
                    bad++;
                    break;
                }
            }
        }
    }
    CHECK(bad == 0, "f16 round trip: %d tensors differ", bad);
    shrink_model_free(a);
    shrink_model_free(b);

    shrink_convert_params p = shrink_convert_params_default();
    p.shard_bytes = 100000; /* tiny-llama-gqa is 634 KB: 7 or so shards */
    shrink_status st = shrink_convert(src, sh, &p, NULL);
    CHECK(st == SHRINK_OK, "sharded: %s", shrink_last_error());
    char idx[4300];
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", sh);
    CHECK(sk_file_exists(idx), "no index in the sharded output");
    int n = count_entries(sh);
    CHECK(n >= 8, "sharded output has %d files", n);
    CHECK(compare_models(src, sh, 1) == 0, "sharded output differs");
    CHECK(logits_diff(src, sh) == 0, "sharded output computes differently");
    printf("  tiny-llama-gqa f32 -> f16 GGUF -> f32 HF: f16 rounding exactly; %d-file sharded "
           "copy bit for bit\n", n);
}

/* ==== tokenizers ========================================================================= */

static int same_ids(const shrink_tokenizer *a, const shrink_tokenizer *b, const char *text) {
    int32_t *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int ok = !shrink_tokenizer_encode(a, text, strlen(text), true, &x, &nx) &&
             !shrink_tokenizer_encode(b, text, strlen(text), true, &y, &ny) && nx == ny &&
             !memcmp(x, y, nx * sizeof *x);
    shrink_free(x);
    shrink_free(y);
    return ok;
}

static void tokenizers(void) {
    static const char *const texts[] = {
        "Once upon a time, there was a little girl named Lily.",
        "  leading spaces and\ttabs\nnewlines  ", "unicode: héllo wörld ✓ 日本語 🙂", "",
    };
    static const struct {
        const char *model;
        const char *out;
    } cases[] = {
        {"stories260K/stories260K.bin", "tok-l2c.gguf"}, /* tok512.bin -> GGUF metadata */
        {"stories260K-hf", "tok-hf.gguf"},               /* tokenizer.model -> GGUF */
        {"tiny-gpt2", "tok-gpt2.gguf"},                  /* vocab.json + merges -> GGUF */
        {"tok-l2c.gguf", "tok-l2c-hf"},                  /* GGUF -> generated tokenizer.model */
        {"tok-gpt2.gguf", "tok-gpt2-hf"},                /* GGUF -> vocab.json + merges.txt */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char src[4200], out[4200];
        if (strstr(cases[c].model, ".gguf")) tmp_path(src, sizeof src, cases[c].model);
        else if (!test_need_model(src, sizeof src, cases[c].model)) return;
        tmp_path(out, sizeof out, cases[c].out);
        if (conv(src, out, -1)) continue;
        shrink_model *a = NULL, *b = NULL;
        if (shrink_model_load(&a, src, NULL) || shrink_model_load(&b, out, NULL)) {
            CHECK(0, "load: %s", shrink_last_error());
        } else {
            const shrink_tokenizer *ta = shrink_model_tokenizer(a), *tb = shrink_model_tokenizer(b);
            CHECK(ta && tb, "%s: no tokenizer", out);
            int good = 0, n = (int)(sizeof texts / sizeof texts[0]);
            for (int i = 0; ta && tb && i < n; i++) good += same_ids(ta, tb, texts[i]);
            CHECK(good == n, "%s -> %s: %d of %d texts encode alike", cases[c].model,
                  cases[c].out, good, n);
            shrink_model_info ia, ib;
            shrink_model_get_info(a, &ia);
            shrink_model_get_info(b, &ib);
            CHECK(ia.bos_id == ib.bos_id && ia.eos_id == ib.eos_id && ia.add_bos == ib.add_bos,
                  "%s: special ids differ", cases[c].out);
        }
        shrink_model_free(a);
        shrink_model_free(b);
    }
    printf("  tokenizers: llama2.c/.model/GPT-2 -> GGUF metadata -> HF files encode alike\n");
}

/* ==== atomic outputs ===================================================================== */

/* A source over a model that fails at canonical tensor `fail_at`. */
typedef struct failing {
    sk_source inner;
    int64_t   calls;
    int64_t   fail_at;
} failing;

static shrink_status failing_fill(void *user, const sk_wtensor *t, int64_t r0, int64_t n,
                                  int tr, shrink_dtype dt, void *dst) {
    failing *f = user;
    if (r0 == 0 && f->calls++ == f->fail_at)
        return sk_error(SHRINK_ERR_IO, "test: simulated read failure at '%s'", t->name);
    return f->inner.fill(f->inner.user, t, r0, n, tr, dt, dst);
}

static void atomic_outputs(void) {
    char src[2048], path[4400], sub[4200];
    if (!test_need_model(src, sizeof src, "stories260K/stories260K.bin")) return;
    /* the input is never the output */
    shrink_status st = shrink_convert(src, src, NULL, NULL);
    CHECK(st == SHRINK_ERR_ARG, "converting onto the input: %d", st);
    char link[4200];
    tmp_path(link, sizeof link, "alias.bin");
    char real[4096];
    if (realpath(src, real) && symlink(real, link) == 0) {
        st = shrink_convert(link, src, NULL, NULL);
        CHECK(st == SHRINK_ERR_ARG, "converting onto the input through a link: %d", st);
        unlink(link);
    }
    char hf[2048];
    if (test_need_model(hf, sizeof hf, "stories260K-hf")) {
        st = shrink_convert(hf, hf, NULL, NULL);
        CHECK(st == SHRINK_ERR_ARG, "HF folder onto itself: %d", st);
    }

    /* failing sources leave nothing behind, in every format */
    tmp_path(sub, sizeof sub, "atomic");
    mkdir(sub, 0755);
    struct shrink_model *m;
    shrink_load_params lp = shrink_load_params_default();
    if (sk_model_open(&m, src, &lp)) {
        CHECK(0, "%s", shrink_last_error());
        return;
    }
    static const char *const outs[] = {"x.gguf", "x-hf", "x.bin"};
    static const sk_format fmts[] = {SK_FORMAT_GGUF, SK_FORMAT_HF, SK_FORMAT_LLAMA2C};
    for (int k = 0; k < 3; k++) {
        for (int64_t at = 0; at < 12; at += 5) {
            failing f = {.fail_at = at};
            sk_source_from_model(m, &f.inner);
            sk_source s = f.inner;
            s.fill = failing_fill;
            s.user = &f;
            snprintf(path, sizeof path, "%s/%s", sub, outs[k]);
            st = sk_write(&s, path, fmts[k], NULL);
            CHECK(st == SHRINK_ERR_IO && strstr(shrink_last_error(), "simulated"),
                  "%s: failing source gave %d", outs[k], st);
            CHECK(count_entries(sub) == 0, "%s: failing at tensor %" PRId64 " left %d files",
                  outs[k], at, count_entries(sub));
        }
    }
    /* an existing output survives a failed rewrite untouched */
    snprintf(path, sizeof path, "%s/keep.gguf", sub);
    FILE *fp = fopen(path, "wb");
    if (fp) {
        fputs("old contents", fp);
        fclose(fp);
    }
    failing f = {.fail_at = 3};
    sk_source_from_model(m, &f.inner);
    sk_source s = f.inner;
    s.fill = failing_fill;
    s.user = &f;
    st = sk_write(&s, path, SK_FORMAT_GGUF, NULL);
    char *old = NULL;
    size_t ol = 0;
    sk_read_file(path, 100, &old, &ol);
    CHECK(st != SHRINK_OK && old && ol == 12 && !memcmp(old, "old contents", 12),
          "a failed rewrite changed the existing file");
    CHECK(count_entries(sub) == 1, "a failed rewrite left %d files", count_entries(sub));
    sk_free(old);
    unlink(path);
    /* an output folder that does not exist: a clean error */
    st = shrink_convert(src, "/nonexistent-dir/x.gguf", NULL, NULL);
    CHECK(st == SHRINK_ERR_IO && strstr(shrink_last_error(), "/nonexistent-dir/x.gguf"),
          "unwritable output: %d %s", st, shrink_last_error());
    /* llama2.c cannot hold GPT-2: refused before anything is written */
    char g2[2048];
    if (test_need_model(g2, sizeof g2, "tiny-gpt2")) {
        snprintf(path, sizeof path, "%s/g.bin", sub);
        st = shrink_convert(g2, path, NULL, NULL);
        CHECK(st == SHRINK_ERR_UNSUPPORTED && count_entries(sub) == 0, "gpt2 -> llama2.c: %d",
              st);
    }
    shrink_model_free(m);
    rmdir(sub);
    printf("  atomic outputs: input refused, failing writes leave nothing, old file kept\n");
}

int main(void) {
    /* stories260K is in the repository: those cases run always; a missing shared model fails
     * with ../shared present, is a counted skip (exit 77) without */
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    round_trip("stories260K/stories260K.bin", "stories.bin");
    round_trip("stories260K-hf", "stories-hf");
    round_trip("tiny-llama-gqa", "gqa-hf");
    round_trip("tiny-gpt2", "gpt2-hf");
    tied_head();
    quantized_input();
    ppl_equal();
    dtype_and_shards();
    tokenizers();
    atomic_outputs();
    if (!getenv("KEEP_TMP")) rm_rf(tmpdir);
    else printf("  outputs kept in %s\n", tmpdir);
    return test_summary("test_convert");
}
