/*
 * test_imatrix.c - importance matrices (src/quant/imatrix.c):
 *
 *   1. llama.cpp agrees: shrink_imatrix of mix-llama-14m on ../shared/fixtures/imatrix/calib.txt
 *      in chunks of 256 tokens gives the entries llama-imatrix wrote there (same names, same
 *      call counts, every value within a relative 1e-3);
 *   2. the written file is llama.cpp's legacy layout, parsed here byte by byte (not through
 *      the reader): entry count, names, calls, values = mean * calls, chunk count, dataset;
 *   3. an independent value: blk.0.attn_q of stories260K is the mean over the tokens of
 *      (RMSNorm(embedding) * attn_norm)^2, computed here from the llama2.c file in double;
 *      computed with the chunks in groups of one (sk_imatrix_stream_bytes), every value is
 *      the same bit for bit;
 *   4. the GGUF form (a file built here by hand: <name>.in_sum2, <name>.counts) reads as
 *      in_sum2 / counts;
 *   5. broken files: truncated, NaN, a duplicate entry, a GGUF without entries; an imatrix of
 *      another model (names and row lengths) is refused by sk_imatrix_check;
 *   6. the searched types with an importance matrix: no block's importance-weighted error above
 *      that of ggml's importance-weighted block (q4_0/q4_1/q5_0/q5_1, and the K types'
 *      sk_qim_search; shrink's int4/nf4: their reference), smaller overall (ggml's bytes
 *      themselves: test_quants against ggml's vectors);
 *   7. end to end: shrink_quantize --imatrix writes, for blk.0.attn_v of stories260K, the bytes
 *      of ggml's weighted quantizer (--ggml-exact) or of the search (default) applied to the
 *      rows read here from the llama2.c file with the entry's importance.
 */
#include "formats/formats.h"
#include "kernels/q_imatrix.h"
#include "kernels/q_search.h"
#include "model/model.h"
#include "quant/imatrix.h"
#include "test_util.h"

#include <unistd.h>

static char tmpdir[] = "/tmp/shrink_imatrix_XXXXXX";

static int write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    fclose(f);
    return w == n ? 0 : -1;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

static int32_t le32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* 1 and 2 */
static void test_llama_cpp(void) {
    char model[2048], calib[1024], ref[1024], out[1200];
    if (!test_need_model(model, sizeof model, "mix-llama-14m")) return;
    if (!test_need_shared(calib, sizeof calib, "fixtures/imatrix/calib.txt")) return;
    if (!test_need_shared(ref, sizeof ref, "fixtures/imatrix/mix-llama-14m.imatrix")) return;
    snprintf(out, sizeof out, "%s/mix.imatrix", tmpdir);
    shrink_imatrix_params p = shrink_imatrix_params_default();
    p.calib_path = calib;
    p.calib_ctx = 256;
    shrink_imatrix_result r;
    shrink_status st = shrink_imatrix(model, out, &p, &r);
    CHECK(st == SHRINK_OK, "shrink_imatrix: %s", shrink_last_error());
    if (st) return;
    CHECK(r.n_chunks == 65 && r.n_tokens == 65 * 256, "%lld chunks, %lld tokens (llama-imatrix:"
          " 65 chunks of 256)", (long long)r.n_chunks, (long long)r.n_tokens);
    sk_imatrix *a = NULL, *b = NULL;
    CHECK(sk_imatrix_read(out, &a) == SHRINK_OK, "read ours: %s", shrink_last_error());
    CHECK(sk_imatrix_read(ref, &b) == SHRINK_OK, "read llama.cpp's: %s", shrink_last_error());
    if (a && b) {
        CHECK(a->n == b->n && a->n == 42, "%lld entries, llama.cpp %lld", (long long)a->n,
              (long long)b->n);
        CHECK(b->chunks == 65 && a->chunks == 65, "chunks %d / %d", a->chunks, b->chunks);
        double worst = 0;
        const char *wname = "";
        for (int64_t i = 0; i < b->n; i++) {
            const sk_imatrix_entry *eb = &b->e[i], *ea = sk_imatrix_find(a, eb->name);
            CHECK(ea != NULL, "no entry '%s' in shrink's file", eb->name);
            if (!ea) continue;
            CHECK(ea->n == eb->n && ea->ncall == eb->ncall, "'%s': %lld values %d calls, "
                  "llama.cpp %lld %d", eb->name, (long long)ea->n, ea->ncall, (long long)eb->n,
                  eb->ncall);
            if (ea->n != eb->n) continue;
            for (int64_t k = 0; k < eb->n; k++) {
                double d = fabs((double)ea->v[k] - eb->v[k]) / fabs((double)eb->v[k]);
                if (d > worst) {
                    worst = d;
                    wname = eb->name;
                }
            }
        }
        CHECK(worst < 1e-3, "largest relative difference from llama-imatrix %.3e (%s)", worst,
              wname);
        printf("  mix-llama-14m: largest relative difference from llama-imatrix %.2e (%s)\n",
               worst, wname);
    }
    /* 2: the bytes, parsed here */
    size_t n;
    uint8_t *f = slurp(out, &n);
    CHECK(f != NULL, "read %s", out);
    if (f && a) {
        size_t at = 4;
        int ok = le32(f) == (int32_t)a->n;
        for (int64_t i = 0; i < a->n && ok; i++) {
            int32_t nl = le32(f + at);
            ok = nl == (int32_t)strlen(a->e[i].name) && !memcmp(f + at + 4, a->e[i].name,
                                                                 (size_t)nl);
            at += 4 + (size_t)nl;
            int32_t nc = le32(f + at), nv = le32(f + at + 4);
            ok = ok && nc == 65 && nv == a->e[i].n;
            at += 8;
            for (int32_t k = 0; k < nv && ok; k++) {
                float v;
                memcpy(&v, f + at + 4 * (size_t)k, 4);
                ok = fabsf(v / 65.0f - a->e[i].v[k]) <= 1e-6f * a->e[i].v[k];
            }
            at += 4 * (size_t)nv;
        }
        ok = ok && le32(f + at) == 65 && le32(f + at + 4) == (int32_t)strlen(calib) &&
             at + 8 + strlen(calib) == n && !memcmp(f + at + 8, calib, strlen(calib));
        CHECK(ok, "the legacy layout of %s (entries, calls 65, values = mean * 65, chunk count, "
              "dataset name)", out);
    }
    free(f);
    sk_imatrix_free(a);
    sk_imatrix_free(b);
}

/* 3: blk.0.attn_q of stories260K from the llama2.c file, in double */
static void test_independent(void) {
    char model[2048], out[1200], text[1200];
    if (!test_need_model(model, sizeof model, "stories260K/stories260K.bin")) return;
    snprintf(text, sizeof text, "%s/calib.txt", tmpdir);
    const char *calib = "One day, a little girl named Lily found a needle in her room. She knew it "
                        "was difficult to play with it because it was sharp. Lily wanted to share "
                        "the needle with her mom, so she could sew a button on her shirt.\n";
    CHECK(write_file(text, calib, strlen(calib)) == 0, "write %s", text);
    snprintf(out, sizeof out, "%s/s.imatrix", tmpdir);
    shrink_imatrix_params p = shrink_imatrix_params_default();
    p.calib_path = text;
    p.calib_ctx = 16;
    p.calib_tokens = 32;
    shrink_imatrix_result r;
    shrink_status st = shrink_imatrix(model, out, &p, &r);
    CHECK(st == SHRINK_OK, "shrink_imatrix: %s", shrink_last_error());
    if (st) return;
    sk_imatrix *a = NULL;
    CHECK(sk_imatrix_read(out, &a) == SHRINK_OK, "read: %s", shrink_last_error());
    shrink_model *m = NULL;
    CHECK(shrink_model_load(&m, model, NULL) == SHRINK_OK, "load: %s", shrink_last_error());
    size_t n;
    uint8_t *f = slurp(model, &n);
    if (a && m && f) {
        const sk_config *c = &m->cfg;
        int32_t *ids = NULL;
        size_t n_ids = 0;
        CHECK(shrink_tokenizer_encode(shrink_model_tokenizer(m), calib, strlen(calib),
                                      c->add_bos, &ids, &n_ids) == SHRINK_OK, "encode");
        /* llama2.c legacy header: 7 int32, then token embedding (vocab, dim), then the
         * attention norms (layers, dim) */
        const float *emb = (const float *)(f + 28);
        const float *norm = emb + (size_t)c->vocab_size * c->dim;
        const int D = c->dim;
        double *s = calloc((size_t)D, sizeof(double));
        for (int chunk = 0; chunk < 2 && ids && n_ids >= 32; chunk++)
            for (int t = 0; t < 16; t++) {
                int32_t tok = t == 0 ? c->bos_id : ids[chunk * 16 + t];
                const float *x = emb + (size_t)tok * D;
                double ss = 0;
                for (int j = 0; j < D; j++) ss += (double)x[j] * x[j];
                double inv = 1.0 / sqrt(ss / D + c->norm_eps);
                for (int j = 0; j < D; j++) {
                    double v = x[j] * inv * norm[j];
                    s[j] += v * v;
                }
            }
        const sk_imatrix_entry *e = sk_imatrix_find(a, "blk.0.attn_q.weight");
        CHECK(e && e->n == D && e->ncall == 2, "blk.0.attn_q.weight: %lld values, %d calls",
              e ? (long long)e->n : -1LL, e ? e->ncall : -1);
        double worst = 0;
        for (int j = 0; e && j < D; j++) {
            double d = fabs(e->v[j] - s[j] / 32.0) / (s[j] / 32.0);
            worst = d > worst ? d : worst;
        }
        CHECK(e && worst < 1e-5, "blk.0.attn_q against RMSNorm(embedding)^2 in double: %.3e",
              worst);
        /* the chunks one group each (the layer-by-layer pass run twice): the same values */
        const size_t keep = sk_imatrix_stream_bytes;
        sk_imatrix_stream_bytes = 1;
        sk_imatrix *b = NULL;
        CHECK(sk_imatrix_compute(model, &p, &b, NULL) == SHRINK_OK, "groups of one chunk: %s",
              shrink_last_error());
        sk_imatrix_stream_bytes = keep;
        int same = b && b->n == a->n;
        for (int64_t i = 0; same && i < a->n; i++)
            same = strcmp(a->e[i].name, b->e[i].name) == 0 && a->e[i].n == b->e[i].n &&
                   a->e[i].ncall == b->e[i].ncall &&
                   memcmp(a->e[i].v, b->e[i].v, (size_t)a->e[i].n * sizeof(float)) == 0;
        CHECK(same, "an importance matrix computed in groups of one chunk differs from one "
              "computed in one group");
        sk_imatrix_free(b);
        CHECK(sk_imatrix_find(a, "blk.4.ffn_down.weight") && a->n == 5 * 7,
              "every linear of the 5 layers (%lld entries)", (long long)a->n);
        free(s);
        shrink_free(ids);
    }
    free(f);
    shrink_model_free(m);
    sk_imatrix_free(a);
}

/* 4: a GGUF-form imatrix built by hand */
static size_t put_str(uint8_t *b, const char *s) {
    uint64_t n = strlen(s);
    memcpy(b, &n, 8);
    memcpy(b + 8, s, n);
    return 8 + n;
}

static size_t put_tensor_info(uint8_t *b, const char *name, int nd, int64_t ne0, int64_t ne1,
                              uint64_t off) {
    size_t at = put_str(b, name);
    uint32_t u = (uint32_t)nd;
    memcpy(b + at, &u, 4);
    at += 4;
    int64_t ne[2] = {ne0, ne1};
    for (int d = 0; d < nd; d++) {
        memcpy(b + at, &ne[d], 8);
        at += 8;
    }
    u = 0; /* F32 */
    memcpy(b + at, &u, 4);
    memcpy(b + at + 4, &off, 8);
    return at + 12;
}

static size_t build_gguf(uint8_t *b, const float *sums, float count, int with_counts) {
    size_t at = 0;
    uint32_t u = SK_GGUF_MAGIC;
    memcpy(b, &u, 4);
    u = 3;
    memcpy(b + 4, &u, 4);
    uint64_t nt = with_counts ? 2 : 1, nkv = 1;
    memcpy(b + 8, &nt, 8);
    memcpy(b + 16, &nkv, 8);
    at = 24;
    at += put_str(b + at, "imatrix.chunk_count");
    u = SK_GGUF_UINT32;
    memcpy(b + at, &u, 4);
    u = 7;
    memcpy(b + at + 4, &u, 4);
    at += 8;
    at += put_tensor_info(b + at, "blk.0.ffn_up.weight.in_sum2", 2, 8, 1, 0);
    if (with_counts) at += put_tensor_info(b + at, "blk.0.ffn_up.weight.counts", 2, 1, 1, 32);
    at = (at + 31) / 32 * 32;
    memcpy(b + at, sums, 32);
    memcpy(b + at + 32, &count, 4);
    return at + 64;
}

static void test_gguf_form(void) {
    char path[1200];
    snprintf(path, sizeof path, "%s/im.gguf", tmpdir);
    uint8_t b[1024];
    memset(b, 0, sizeof b);
    float sums[8] = {4, 8, 12, 16, 0, 2, 40, 1};
    size_t n = build_gguf(b, sums, 4.0f, 1);
    CHECK(write_file(path, b, n) == 0, "write %s", path);
    sk_imatrix *m = NULL;
    shrink_status st = sk_imatrix_read(path, &m);
    CHECK(st == SHRINK_OK, "GGUF imatrix: %s", shrink_last_error());
    if (m) {
        const sk_imatrix_entry *e = sk_imatrix_find(m, "blk.0.ffn_up.weight");
        CHECK(m->n == 1 && e && e->n == 8 && m->chunks == 7, "one entry of 8, 7 chunks");
        for (int k = 0; e && k < 8; k++)
            CHECK(e->v[k] == sums[k] / 4.0f, "value %d: %g, want %g", k, e->v[k], sums[k] / 4);
    }
    sk_imatrix_free(m);
    /* no counts tensor; NaN sum */
    n = build_gguf(b, sums, 4.0f, 0);
    write_file(path, b, n);
    m = NULL;
    CHECK(sk_imatrix_read(path, &m) == SHRINK_ERR_FORMAT && !m &&
          strstr(shrink_last_error(), "counts"), "a GGUF entry without counts: %s",
          shrink_last_error());
    sums[3] = NAN;
    n = build_gguf(b, sums, 4.0f, 1);
    write_file(path, b, n);
    CHECK(sk_imatrix_read(path, &m) == SHRINK_ERR_FORMAT && strstr(shrink_last_error(), "NaN"),
          "a NaN in a GGUF imatrix: %s", shrink_last_error());
}

/* 5 */
static void test_broken(void) {
    char path[1200];
    snprintf(path, sizeof path, "%s/bad.imatrix", tmpdir);
    /* a valid two-entry file, then broken copies of it */
    uint8_t b[256];
    size_t at = 0;
    int32_t v = 2;
    memcpy(b, &v, 4);
    at = 4;
    const char *names[2] = {"blk.0.attn_q.weight", "blk.0.attn_k.weight"};
    for (int i = 0; i < 2; i++) {
        v = (int32_t)strlen(names[i]);
        memcpy(b + at, &v, 4);
        memcpy(b + at + 4, names[i], (size_t)v);
        at += 4 + (size_t)v;
        int32_t hdr[2] = {2, 4};
        memcpy(b + at, hdr, 8);
        at += 8;
        float vals[4] = {2, 4, 6, 8};
        memcpy(b + at, vals, 16);
        at += 16;
    }
    size_t full = at;
    write_file(path, b, full);
    sk_imatrix *m = NULL;
    CHECK(sk_imatrix_read(path, &m) == SHRINK_OK && m && m->n == 2 && m->e[1].v[3] == 4.0f,
          "a file without the trailer reads (values / calls): %s", shrink_last_error());
    sk_imatrix_free(m);
    m = NULL;
    write_file(path, b, full - 3);
    CHECK(sk_imatrix_read(path, &m) == SHRINK_ERR_FORMAT && !m &&
          strstr(shrink_last_error(), "truncated") && strstr(shrink_last_error(), path),
          "truncated: %s", shrink_last_error());
    float nan = NAN;
    memcpy(b + full - 8, &nan, 4);
    write_file(path, b, full);
    CHECK(sk_imatrix_read(path, &m) == SHRINK_ERR_FORMAT && strstr(shrink_last_error(), "NaN") &&
          strstr(shrink_last_error(), "blk.0.attn_k.weight"), "NaN: %s", shrink_last_error());
    memcpy(b + full - 43, "blk.0.attn_q.weight", 19); /* second name = first */
    float ok = 1.0f;
    memcpy(b + full - 8, &ok, 4);
    write_file(path, b, full);
    CHECK(sk_imatrix_read(path, &m) == SHRINK_ERR_FORMAT && strstr(shrink_last_error(), "twice"),
          "duplicate entry: %s", shrink_last_error());
    write_file(path, "\x01\x00\x00\x00", 4);
    CHECK(sk_imatrix_read(path, &m) == SHRINK_ERR_FORMAT, "4 bytes: %s", shrink_last_error());

    /* another model: mix-llama-14m's imatrix against stories260K */
    char model[2048], ref[1024];
    if (!test_need_model(model, sizeof model, "stories260K/stories260K.bin")) return;
    if (!test_need_shared(ref, sizeof ref, "fixtures/imatrix/mix-llama-14m.imatrix")) return;
    CHECK(sk_imatrix_read(ref, &m) == SHRINK_OK, "read: %s", shrink_last_error());
    sk_xf xf;
    memset(&xf, 0, sizeof xf);
    CHECK(sk_xf_open(&xf, model, NULL, "test") == SHRINK_OK, "open: %s", shrink_last_error());
    if (m && xf.model) {
        shrink_status st = sk_imatrix_check(m, &xf, ref);
        CHECK(st == SHRINK_ERR_ARG && strstr(shrink_last_error(), "another model") &&
              strstr(shrink_last_error(), ref), "another model: %s", shrink_last_error());
    }
    sk_xf_close(&xf);
    sk_imatrix_free(m);
}


/* 6 */

static void test_search(void) {
    const int64_t rows = 16, cols = 1024;
    const int mode = sk_qsearch_mode();
    float *x = malloc((size_t)(rows * cols) * sizeof(float)), *qw = malloc((size_t)cols * 4);
    float *w = malloc((size_t)cols * 4), *ya = malloc((size_t)cols * 4);
    float *yb = malloc((size_t)cols * 4);
    for (int64_t j = 0; j < cols; j++) qw[j] = (float)(0.05 + 4.0 * test_rng_u() * test_rng_u());
    for (int t = 0; t < SHRINK_DTYPE_COUNT; t++) {
        const int kq = t == SHRINK_DTYPE_Q4_K || t == SHRINK_DTYPE_Q5_K ||
                       t == SHRINK_DTYPE_Q2_K || t == SHRINK_DTYPE_Q3_K;
        if (!sk_quantize_searches((shrink_dtype)t) && !kq) continue;
        const sk_dtype_traits *d = sk_dtype((shrink_dtype)t);
        const size_t rb = (size_t)sk_dtype_row_bytes((shrink_dtype)t, cols);
        uint8_t *qa = malloc(rb), *qb = malloc(rb);
        double tot_s = 0, tot_r = 0;
        int64_t worse = 0;
        sk_qparams qp;
        memset(&qp, 0, sizeof qp);
        qp.imatrix = qw;
        for (int kind = 0; kind < 3; kind++) {
            for (int64_t i = 0; i < rows * cols; i++) {
                float g = test_rng_normal() * 0.02f;
                x[i] = kind == 1 ? g * g * g * 2500.0f : kind == 2 && i % 97 == 0 ? 0.5f : g;
            }
            for (int64_t r = 0; r < rows; r++) {
                const float *xr = x + r * cols;
                if (kq) sk_qim_search((shrink_dtype)t, xr, qa, cols, qw);
                else d->quantize(xr, qa, cols, &qp);
                if (sk_qim_has((shrink_dtype)t)) sk_qim_quantize((shrink_dtype)t, xr, qb, cols, qw);
                else d->from_f32(xr, qb, cols);
                d->to_f32(qa, ya, cols);
                d->to_f32(qb, yb, cols);
                double s2 = 0;
                for (int64_t j = 0; j < cols; j++) s2 += (double)xr[j] * xr[j];
                for (int64_t j = 0; j < cols; j++)
                    w[j] = qw[j] * (mode == 2 && !kq ? sqrtf((float)(s2 / cols) + xr[j] * xr[j])
                                                     : 1.0f);
                for (int64_t b = 0; b < cols / (int64_t)d->block; b++) {
                    double es = 0, er = 0;
                    for (int64_t j = b * (int64_t)d->block; j < (b + 1) * (int64_t)d->block; j++) {
                        double ds = (double)ya[j] - xr[j], dr = (double)yb[j] - xr[j];
                        es += (double)w[j] * ds * ds;
                        er += (double)w[j] * dr * dr;
                    }
                    worse += es > er * (1 + 1e-9) + 1e-30;
                    tot_s += es;
                    tot_r += er;
                }
            }
        }
        CHECK(worse == 0, "%s with an importance matrix: %lld blocks with a larger weighted error "
              "than %s", d->name, (long long)worse, sk_qim_has((shrink_dtype)t) ?
              "ggml's importance-weighted block" : "the reference");
        if (mode)
            CHECK(tot_s < 0.99 * tot_r,
                  "%s: weighted error %g, ggml's/reference %g", d->name,
                  tot_s, tot_r);
        printf("  %-16s importance-weighted error: search / %s = %.3f\n", d->name,
               sk_qim_has((shrink_dtype)t) ? "ggml --imatrix" : "reference", tot_s / tot_r);
        free(qa);
        free(qb);
    }
    free(x);
    free(qw);
    free(w);
    free(ya);
    free(yb);
}

/* 7: stories260K's blk.0.attn_v rows from the llama2.c file (wq and wk of every layer before
 * wv), quantized here with the entry's importance, against the file shrink_quantize wrote */
static void test_quantize_imatrix(void) {
    char model[2048], im[1200], out[1200], text[1200];
    if (!test_need_model(model, sizeof model, "stories260K/stories260K.bin")) return;
    snprintf(text, sizeof text, "%s/calib.txt", tmpdir);
    snprintf(im, sizeof im, "%s/s.imatrix", tmpdir); /* written by test_independent */
    shrink_model *m = NULL;
    CHECK(shrink_model_load(&m, model, NULL) == SHRINK_OK, "load: %s", shrink_last_error());
    sk_imatrix *a = NULL;
    CHECK(sk_imatrix_read(im, &a) == SHRINK_OK, "read %s: %s", im, shrink_last_error());
    size_t n;
    uint8_t *f = slurp(model, &n);
    const sk_imatrix_entry *e = sk_imatrix_find(a, "blk.0.attn_v.weight");
    if (!m || !a || !f || !e) goto out;
    const sk_config *c = &m->cfg;
    const int64_t D = c->dim, L = c->n_layers, kvd = (int64_t)c->n_kv_heads * c->head_dim;
    const float *wv = (const float *)(f + 28) + (size_t)(c->vocab_size * D + L * D + L * D * D +
                                                         L * kvd * D);
    for (int exact = 0; exact < 2; exact++) {
        shrink_quantize_params p = shrink_quantize_params_default();
        p.scheme = "q4_0";
        p.imatrix_path = im;
        p.ggml_exact = exact;
        snprintf(out, sizeof out, "%s/q%d.gguf", tmpdir, exact);
        shrink_quantize_result r;
        shrink_status st = shrink_quantize(model, out, &p, &r);
        CHECK(st == SHRINK_OK, "quantize --imatrix: %s", shrink_last_error());
        if (st) continue;
        /* ffn_down's rows of 172 fall back to f16: the other 30 matrices use their entry */
        CHECK(r.imatrix_entries == 35 && r.imatrix_used == 30, "%lld entries, %lld used",
              (long long)r.imatrix_entries, (long long)r.imatrix_used);
        shrink_quantize_result_free(&r);
        size_t gn;
        uint8_t *g = slurp(out, &gn);
        sk_gguf *gg = NULL;
        CHECK(g && sk_gguf_parse(g, gn, out, &gg) == SHRINK_OK, "parse %s", out);
        const sk_gguf_tensor *t = NULL;
        for (int64_t i = 0; gg && i < gg->n_tensors; i++)
            if (gg->tensors[i].name.len == 19 && !memcmp(gg->tensors[i].name.s,
                                                         "blk.0.attn_v.weight", 19))
                t = &gg->tensors[i];
        const size_t rb = (size_t)sk_dtype_row_bytes(SHRINK_DTYPE_Q4_0, D);
        CHECK(t && t->bytes == (uint64_t)kvd * rb, "blk.0.attn_v.weight in %s", out);
        uint8_t *mine = malloc((size_t)kvd * rb);
        sk_qparams qp;
        memset(&qp, 0, sizeof qp);
        qp.imatrix = e->v;
        for (int64_t r0 = 0; t && r0 < kvd; r0++) {
            float row[1024];
            memcpy(row, wv + r0 * D, (size_t)D * 4);
            if (exact) sk_qim_quantize(SHRINK_DTYPE_Q4_0, row, mine + r0 * rb, D, e->v);
            else sk_dtype(SHRINK_DTYPE_Q4_0)->quantize(row, mine + r0 * rb, D, &qp);
        }
        CHECK(t && !memcmp(mine, t->data, (size_t)kvd * rb), "blk.0.attn_v %s: bytes differ "
              "from the importance-weighted quantizer on the source rows", exact ?
              "--ggml-exact" : "search");
        free(mine);
        sk_gguf_free(gg);
        free(g);
    }
out:
    free(f);
    sk_imatrix_free(a);
    shrink_model_free(m);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_independent();
    test_quantize_imatrix();
    test_search();
    test_gguf_form();
    test_broken();
    test_llama_cpp();
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary("test_imatrix");
}
