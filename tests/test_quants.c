/*
 * test_quants.c - llama.cpp's block types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K,
 * Q5_K, Q6_K;
 * Q8_K through its reference functions):
 *
 *   1. ggml's own vectors (../shared/fixtures/ggml/ggml_quant_vectors.safetensors): the
 *      dequantization of ggml's bytes equals ggml's floats bit for bit (with and without an
 *      importance matrix), and quantizing ggml's source rows gives ggml's bytes (the
 *      round-to-nearest references without an importance matrix; with the fixture's
 *      importance weights, the importance-weighted searches of q_imatrix.c);
 *   2. round trips on normal data within the dtype row's tol_rel (relative RMS error), and
 *      block layouts against the fixture's bytes_per_block;
 *   3. sk_matmul of every kernel set against sk_matmul_ref for every block type (GEMV and
 *      GEMM shapes; tolerance as test_kernels: 1e-5 * sum |w x|);
 *   4. llama.cpp's Q4_K_M GGUF files load; stories260K-Q4_K_M's first 60 greedy tokens equal
 *      those of the f32 file (as llama.cpp's do, fixtures/gguf/README.md);
 *   5. GGUF written with a block dtype (shrink convert --dtype q8_0 ...): quantized bytes,
 *      llama.cpp's per-tensor fallbacks, reload.
 */
#include "kernels/ggml_quants.h"
#include "kernels/kernels.h"
#include "kernels/q_imatrix.h"
#include "model/model.h"
#include "test_util.h"

#include <stdint.h>

/* ==== the fixture (safetensors, read by hand: F32 and U8 tensors) ========================== */

typedef struct fixture {
    uint8_t *file;
    size_t   size;
    char    *header; /* NUL-terminated copy of the JSON */
    size_t   data;   /* offset of the data section */
} fixture;

static int fixture_open(fixture *fx, const char *path) {
    memset(fx, 0, sizeof *fx);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    fx->file = malloc((size_t)sz);
    fx->size = fread(fx->file, 1, (size_t)sz, f);
    fclose(f);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | fx->file[i];
    fx->header = malloc(n + 1);
    memcpy(fx->header, fx->file + 8, n);
    fx->header[n] = 0;
    fx->data = 8 + n;
    return 1;
}

static void fixture_close(fixture *fx) {
    free(fx->file);
    free(fx->header);
}

/* Pointer to tensor `name` and its byte size, or NULL. */
static const void *fixture_get(const fixture *fx, const char *name, size_t *bytes) {
    char key[128];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *p = strstr(fx->header, key);
    if (!p) return NULL;
    const char *o = strstr(p, "\"data_offsets\"");
    unsigned long long a, b;
    if (!o || sscanf(o, "\"data_offsets\":[%llu,%llu]", &a, &b) != 2) return NULL;
    if (fx->data + b > fx->size) return NULL;
    *bytes = (size_t)(b - a);
    return fx->file + fx->data + a;
}

/* A metadata string value ("" if absent). */
static const char *fixture_meta(const fixture *fx, const char *key, char *buf, size_t cap) {
    char k[128];
    snprintf(k, sizeof k, "\"%s\":\"", key);
    const char *p = strstr(fx->header, k);
    buf[0] = 0;
    if (!p) return buf;
    p += strlen(k);
    size_t i = 0;
    while (p[i] && p[i] != '"' && i + 1 < cap) {
        buf[i] = p[i];
        i++;
    }
    buf[i] = 0;
    return buf;
}

/* ==== the types under test ================================================================ */

typedef struct qtype {
    const char *ggml_name; /* fixture name */
    int         dtype;     /* shrink_dtype, or -1 (q8_K: reference functions only) */
    size_t      block, bytes;
    void (*dequant)(const void *, float *, int64_t);
    void (*quant)(const float *, void *, int64_t);
} qtype;

static const qtype qtypes[] = {
    {"q8_0", SHRINK_DTYPE_Q8_0, 32, sizeof(block_q8_0), sk_q8_0_dequant_ref, sk_q8_0_quant_ref},
    {"q4_0", SHRINK_DTYPE_Q4_0, 32, sizeof(block_q4_0), sk_q4_0_dequant_ref, sk_q4_0_quant_ref},
    {"q4_1", SHRINK_DTYPE_Q4_1, 32, sizeof(block_q4_1), sk_q4_1_dequant_ref, sk_q4_1_quant_ref},
    {"q5_0", SHRINK_DTYPE_Q5_0, 32, sizeof(block_q5_0), sk_q5_0_dequant_ref, sk_q5_0_quant_ref},
    {"q5_1", SHRINK_DTYPE_Q5_1, 32, sizeof(block_q5_1), sk_q5_1_dequant_ref, sk_q5_1_quant_ref},
    {"iq4_nl", SHRINK_DTYPE_IQ4_NL, 32, sizeof(block_iq4_nl), sk_iq4_nl_dequant_ref,
     sk_iq4_nl_quant_ref},
    {"q2_K", SHRINK_DTYPE_Q2_K, 256, sizeof(block_q2_K), sk_q2_K_dequant_ref, sk_q2_K_quant_ref},
    {"q3_K", SHRINK_DTYPE_Q3_K, 256, sizeof(block_q3_K), sk_q3_K_dequant_ref, sk_q3_K_quant_ref},
    {"q4_K", SHRINK_DTYPE_Q4_K, 256, sizeof(block_q4_K), sk_q4_K_dequant_ref, sk_q4_K_quant_ref},
    {"q5_K", SHRINK_DTYPE_Q5_K, 256, sizeof(block_q5_K), sk_q5_K_dequant_ref, sk_q5_K_quant_ref},
    {"q6_K", SHRINK_DTYPE_Q6_K, 256, sizeof(block_q6_K), sk_q6_K_dequant_ref, sk_q6_K_quant_ref},
    {"q8_K", -1, 256, sizeof(block_q8_K), sk_q8_K_dequant_ref, sk_q8_K_quant_ref},
};
enum { N_QTYPES = sizeof qtypes / sizeof qtypes[0] };

static void test_table(void) {
    for (int i = 0; i < N_QTYPES; i++) {
        const qtype *q = &qtypes[i];
        if (q->dtype < 0) continue;
        const sk_dtype_traits *d = sk_dtype((shrink_dtype)q->dtype);
        CHECK(d->block == q->block && d->bytes == q->bytes && d->to_f32 == q->dequant &&
                  d->from_f32 == q->quant && !strcmp(d->name, q->ggml_name),
              "dtype row %s", q->ggml_name);
        CHECK(!strcmp(shrink_dtype_name((shrink_dtype)q->dtype), q->ggml_name), "name %s",
              q->ggml_name);
    }
}

/* ==== 1. ggml's vectors ===================================================================== */

static int bits_equal(const float *a, const float *b, int64_t n, int64_t *first) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4)) {
            *first = i;
            return 0;
        }
    return 1;
}

/* Types whose `quantize` hook is ggml's weighted search with an importance matrix (iq4_nl):
 * row r of the source quantized with the fixture's imatrix gives ggml's imatrix bytes. */
static void check_imatrix_quant(const fixture *fx, const qtype *q, int64_t N, int r, float *al,
                                const uint8_t *want, int64_t rb) {
    if (q->dtype != SHRINK_DTYPE_IQ4_NL) return;
    char name[96];
    size_t ns, nw;
    snprintf(name, sizeof name, "%s.n%d.src", q->ggml_name, (int)N);
    const uint8_t *src = fixture_get(fx, name, &ns);
    snprintf(name, sizeof name, "imatrix.n%d.weights", (int)N);
    const uint8_t *w = fixture_get(fx, name, &nw);
    CHECK(src && w && nw == (size_t)N * 4, "fixture %s", name);
    if (!src || !w || nw != (size_t)N * 4) return;
    float im[512];
    uint8_t qb[512];
    memcpy(al, src + (size_t)r * (size_t)N * 4, (size_t)N * 4);
    memcpy(im, w, (size_t)N * 4);
    sk_qparams p = {.imatrix = im};
    sk_dtype((shrink_dtype)q->dtype)->quantize(al, qb, N, &p);
    CHECK(!memcmp(qb, want, (size_t)rb), "%s n%d row %d: quantized with the imatrix, bytes differ "
          "from ggml's", q->ggml_name, (int)N, r);
}

static void test_fixture(void) {
    char path[1024], meta[64], name[96];
    if (!test_need_shared(path, sizeof path, "fixtures/ggml/ggml_quant_vectors.safetensors"))
        return;
    fixture fx;
    if (!fixture_open(&fx, path)) {
        CHECK(0, "cannot read %s", path);
        return;
    }
    for (int i = 0; i < N_QTYPES; i++) {
        const qtype *q = &qtypes[i];
        snprintf(name, sizeof name, "%s.bytes_per_block", q->ggml_name);
        CHECK((size_t)atoi(fixture_meta(&fx, name, meta, sizeof meta)) == q->bytes,
              "%s: bytes per block %s vs sizeof %zu", q->ggml_name, meta, q->bytes);
        snprintf(name, sizeof name, "%s.block_size", q->ggml_name);
        CHECK((size_t)atoi(fixture_meta(&fx, name, meta, sizeof meta)) == q->block,
              "%s: block size %s", q->ggml_name, meta);
        static const int64_t Ns[] = {256, 512};
        for (int s = 0; s < 2; s++) {
            int64_t N = Ns[s], rb = N / (int64_t)q->block * (int64_t)q->bytes;
            size_t nsrc, nby, ndeq;
            snprintf(name, sizeof name, "%s.n%d.src", q->ggml_name, (int)N);
            const float *src = fixture_get(&fx, name, &nsrc);
            for (int im = 0; im < 2; im++) {
                snprintf(name, sizeof name, "%s.n%d%s.bytes", q->ggml_name, (int)N,
                         im ? ".imatrix" : "");
                const uint8_t *by = fixture_get(&fx, name, &nby);
                snprintf(name, sizeof name, "%s.n%d%s.deq", q->ggml_name, (int)N,
                         im ? ".imatrix" : "");
                const float *deq = fixture_get(&fx, name, &ndeq);
                if (im && !by) continue; /* q8_0, q8_K: no imatrix variant */
                CHECK(src && nsrc == 4 * (size_t)N * 4 && by && nby == 4 * (size_t)rb && deq &&
                          ndeq == nsrc,
                      "fixture tensors of %s n%d", q->ggml_name, (int)N);
                if (!src || !by || !deq || nby != 4 * (size_t)rb || ndeq != nsrc) continue;
                float *out = malloc((size_t)N * sizeof(float));
                uint8_t *qb = malloc((size_t)rb);
                for (int r = 0; r < 4; r++) {
                    int64_t at = 0;
                    float al[512], dl[512]; /* the fixture's data may be unaligned */
                    memcpy(dl, (const uint8_t *)deq + (size_t)r * (size_t)N * 4, (size_t)N * 4);
                    q->dequant(by + r * rb, out, N);
                    CHECK(bits_equal(out, dl, N, &at), "%s n%d%s row %d: dequant differs at %"
                          PRId64 ": %.9g vs ggml %.9g", q->ggml_name, (int)N,
                          im ? " imatrix" : "", r, at, (double)out[at], (double)dl[at]);
                    if (im && !sk_qim_has((shrink_dtype)q->dtype)) {
                        check_imatrix_quant(&fx, q, N, r, al, by + r * rb, rb);
                        continue;
                    }
                    memcpy(al, (const uint8_t *)src + (size_t)r * (size_t)N * 4, (size_t)N * 4);
                    memset(qb, 0, (size_t)rb);
                    if (im) {
                        /* ggml's importance-weighted search (src/kernels/q_imatrix.c) */
                        float qw[512];
                        size_t nw = 0;
                        snprintf(name, sizeof name, "imatrix.n%d.weights", (int)N);
                        const void *wv = fixture_get(&fx, name, &nw);
                        CHECK(wv && nw == (size_t)N * 4, "fixture tensor %s", name);
                        if (!wv || nw != (size_t)N * 4) continue;
                        memcpy(qw, wv, (size_t)N * 4);
                        sk_qim_quantize((shrink_dtype)q->dtype, al, qb, N, qw);
                    } else {
                        q->quant(al, qb, N);
                    }
                    int64_t nd = 0, first = -1;
                    for (int64_t k = 0; k < rb; k++)
                        if (qb[k] != by[r * rb + k]) {
                            if (first < 0) first = k;
                            nd++;
                        }
                    CHECK(nd == 0, "%s n%d%s row %d: quantized bytes differ from ggml's: %"
                          PRId64 " of %" PRId64 " (first at byte %" PRId64 ")", q->ggml_name,
                          (int)N, im ? " imatrix" : "", r, nd, rb, first);
                }
                free(out);
                free(qb);
            }
        }
    }
    fixture_close(&fx);
}

/* ==== 2. round trips ======================================================================== */


static void test_round_trip(void) {
    const int64_t n = 256 * 64;
    float *x = malloc((size_t)n * sizeof(float)), *y = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = 0.05f * test_rng_normal();
    for (int d = 0; d < SHRINK_DTYPE_COUNT; d++) {
        const sk_dtype_traits *t = sk_dtype((shrink_dtype)d);
        if (t->block == 1 || t->row_head) continue; /* row heads: test_qshrink.c */
        uint8_t *q = malloc(sk_dtype_row_bytes((shrink_dtype)d, n));
        t->from_f32(x, q, n);
        t->to_f32(q, y, n);
        double e2 = 0, x2 = 0;
        for (int64_t i = 0; i < n; i++) {
            e2 += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
            x2 += (double)x[i] * x[i];
        }
        double rel = sqrt(e2 / x2);
        CHECK(rel <= t->tol_rel && rel > t->tol_rel / 4, "%s round trip: relative RMS error %g "
              "(tol_rel %g)", t->name, rel, t->tol_rel);
        /* an all-zero input stays zero */
        float z[256] = {0}, zz[256];
        t->from_f32(z, q, 256);
        t->to_f32(q, zz, 256);
        int nz = 0;
        for (int i = 0; i < 256; i++) nz += zz[i] != 0.0f;
        CHECK(nz == 0, "%s: zeros round trip to %d non-zeros", t->name, nz);
        free(q);
    }
    free(x);
    free(y);
}

/* ==== 3. matmul ============================================================================= */

static void check_matmul(shrink_dtype dt, int64_t rows, int64_t cols, int64_t T) {
    const sk_dtype_traits *d = sk_dtype(dt);
    float *wf = malloc((size_t)(rows * cols) * sizeof(float));
    for (int64_t i = 0; i < rows * cols; i++) wf[i] = test_rng_normal();
    void *w = malloc(sk_dtype_row_bytes(dt, rows * cols));
    d->from_f32(wf, w, rows * cols);
    d->to_f32(w, wf, rows * cols);
    float *X = malloc((size_t)(T * cols) * sizeof(float));
    for (int64_t i = 0; i < T * cols; i++) X[i] = test_rng_normal();
    float *Y = malloc((size_t)(T * rows) * sizeof(float)), *R = malloc((size_t)(T * rows) * 4);
    sk_mat W = {.dtype = dt, .rows = rows, .cols = cols, .data = w};
    sk_matmul_ref(&W, X, T, R, rows);
    /* decode (T == 1) quantizes x to the row's act format (tests/test_qdot.c), and so does
     * the integer prompt GEMM of q8_0 / q4_0 / q4_K (test_gemm_q8.c): allow for it */
    float *Xd = malloc((size_t)(T * cols) * sizeof(float));
    memcpy(Xd, X, (size_t)(T * cols) * sizeof(float));
    if ((T == 1 || dt == SHRINK_DTYPE_Q8_0 || dt == SHRINK_DTYPE_Q4_0 || dt == SHRINK_DTYPE_Q4_K) &&
        d->vec_dot_ref) {
        void *xa = malloc(sk_act_bytes(d->act, cols));
        for (int64_t t = 0; t < T; t++) {
            sk_act_quantize_ref(d->act, X + t * cols, cols, xa, 0.0f);
            sk_act_dequantize(d->act, xa, cols, Xd + t * cols);
        }
        free(xa);
    }
    for (int l = 0; l < SK_ISA_COUNT; l++) {
        const sk_kernel_set *ks = sk_kernels_get((sk_isa)l);
        if (!ks) continue;
        sk_matmul_with(ks, &W, X, T, Y, rows);
        int bad = 0;
        for (int64_t t = 0; t < T && !bad; t++)
            for (int64_t r = 0; r < rows && !bad; r++) {
                double mag = 0, qerr = 0;
                for (int64_t k = 0; k < cols; k++) {
                    mag += fabs((double)wf[r * cols + k] * X[t * cols + k]);
                    qerr += fabs((double)wf[r * cols + k] * (X[t * cols + k] - Xd[t * cols + k]));
                }
                double err = fabs((double)Y[t * rows + r] - R[t * rows + r]);
                if (!(err <= 1e-5 * mag + 1.0001 * qerr + 1e-30)) {
                    bad = 1;
                    fprintf(stderr, "  %s %s: Y[%" PRId64 ",%" PRId64 "] = %g, ref %g\n",
                            ks->name, d->name, t, r, (double)Y[t * rows + r],
                            (double)R[t * rows + r]);
                }
            }
        CHECK(!bad, "matmul %s %s %" PRId64 "x%" PRId64 " T=%" PRId64, ks->name, d->name, rows,
              cols, T);
    }
    free(wf); free(w); free(X); free(Xd); free(Y); free(R);
}

static void test_matmul(void) {
    static const int64_t shapes[][3] = {
        {1, 256, 1}, {17, 256, 1}, {33, 512, 3}, {70, 768, 1}, {40, 2304, 1}, {35, 768, 20},
        {9, 4352, 2},
    };
    for (int d = 0; d < SHRINK_DTYPE_COUNT; d++) {
        if (sk_dtype((shrink_dtype)d)->block == 1 || sk_dtype((shrink_dtype)d)->row_head)
            continue; /* row-head types: test_qshrink.c */
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            check_matmul((shrink_dtype)d, shapes[s][0], shapes[s][1], shapes[s][2]);
        if (sk_dtype((shrink_dtype)d)->block == 32) check_matmul((shrink_dtype)d, 21, 96, 5);
    }
}

/* ==== 4. llama.cpp's quantized GGUF files ================================================== */

/* The first n greedy tokens from BOS. */
static int greedy(shrink_model *m, int32_t *ids, int n) {
    shrink_context *ctx;
    if (shrink_context_create(&ctx, m, 128, 1) != SHRINK_OK) return 0;
    float logits[512];
    int32_t id = 1;
    for (int pos = 0; pos < n; pos++) {
        if (shrink_context_eval(ctx, &id, 1, pos, logits, 1) != SHRINK_OK) break;
        int32_t best = 0;
        for (int v = 1; v < 512; v++)
            if (logits[v] > logits[best]) best = v;
        ids[pos] = id = best;
    }
    shrink_context_free(ctx);
    return 1;
}

static void test_gguf_files(void) {
    char path[1024], fpath[1024];
    if (test_need_shared(path, sizeof path, "fixtures/gguf/mix-llama-14m-Q4_K_M.gguf")) {
        shrink_model *m;
        shrink_status st = shrink_model_load(&m, path, NULL);
        CHECK(st == SHRINK_OK, "%s: %s", path, shrink_last_error());
        if (!st) shrink_model_free(m);
    }
    if (!test_need_shared(path, sizeof path, "fixtures/gguf/stories260K-Q4_K_M.gguf") ||
        !test_need_shared(fpath, sizeof fpath, "fixtures/gguf/stories260K.gguf"))
        return;
    shrink_model *q, *f;
    shrink_status st = shrink_model_load(&q, path, NULL);
    CHECK(st == SHRINK_OK, "%s: %s", path, shrink_last_error());
    if (st) return;
    st = shrink_model_load(&f, fpath, NULL);
    CHECK(st == SHRINK_OK, "%s: %s", fpath, shrink_last_error());
    if (st == SHRINK_OK) {
        int32_t a[60] = {0}, b[60] = {0};
        CHECK(greedy(q, a, 60) && greedy(f, b, 60) && !memcmp(a, b, sizeof a),
              "stories260K-Q4_K_M: the first 60 greedy tokens differ from the f32 file's");
        shrink_model_free(f);
    }
    shrink_model_free(q);
}

/* shrink convert --dtype <block type> writes GGUF: each matrix quantized by the row's from_f32
 * (bytes = quantize(source f32)), fallbacks where the block does not divide the rows, and the
 * file reloads. stories260K: rows of 64 (q4_K -> q5_0) and ffn_down rows of 172 (-> f16). */
static const sk_tensor *find_t(const struct shrink_model *m, const char *name) {
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

static void test_gguf_write(void) {
    char src[1024];
    if (!test_need_shared(src, sizeof src, "fixtures/gguf/stories260K.gguf")) return;
    char dir[] = "/tmp/shrink_quants_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    if (strstr(dir, "XXXXXX")) return;
    static const struct { shrink_dtype dt, q, down; uint32_t ft; } cases[] = {
        {SHRINK_DTYPE_Q8_0, SHRINK_DTYPE_Q8_0, SHRINK_DTYPE_F16, 7},
        {SHRINK_DTYPE_Q4_K, SHRINK_DTYPE_Q5_0, SHRINK_DTYPE_F16, 15},
        {SHRINK_DTYPE_Q6_K, SHRINK_DTYPE_Q8_0, SHRINK_DTYPE_F16, 18},
    };
    shrink_model *f;
    shrink_status fst = shrink_model_load(&f, src, NULL);
    CHECK(fst == SHRINK_OK, "load %s: %s", src, shrink_last_error());
    if (fst != SHRINK_OK) return;
    const sk_tensor *fq = find_t(f, "blk.1.attn_q.weight");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char out[1100];
        snprintf(out, sizeof out, "%s/%s.gguf", dir, shrink_dtype_name(cases[c].dt));
        shrink_convert_params cp = shrink_convert_params_default();
        cp.dtype = cases[c].dt;
        shrink_status st = shrink_convert(src, out, &cp, NULL);
        CHECK(st == SHRINK_OK, "convert to %s: %s", out, shrink_last_error());
        shrink_model *m;
        if (st || shrink_model_load(&m, out, NULL) != SHRINK_OK) {
            CHECK(0, "reload %s: %s", out, shrink_last_error());
            continue;
        }
        const sk_tensor *q = find_t(m, "blk.1.attn_q.weight");
        const sk_tensor *d = find_t(m, "blk.1.ffn_down.weight");
        const sk_tensor *n = find_t(m, "blk.1.attn_norm.weight");
        CHECK(q && d && n && q->dtype == cases[c].q && d->dtype == cases[c].down &&
                  n->dtype == SHRINK_DTYPE_F32,
              "%s: tensor dtypes %s %s", out, q ? shrink_dtype_name(q->dtype) : "-",
              d ? shrink_dtype_name(d->dtype) : "-");
        if (q && fq && fq->dtype == SHRINK_DTYPE_F32) {
            int64_t ne = fq->shape[0] * fq->shape[1];
            uint64_t rb = sk_dtype_row_bytes(q->dtype, ne);
            uint8_t *want = malloc(rb);
            float *tmp = malloc((size_t)ne * sizeof(float));
            memcpy(tmp, fq->data, (size_t)ne * sizeof(float));
            sk_dtype(q->dtype)->from_f32(tmp, want, ne);
            CHECK(q->bytes == rb && !memcmp(q->data, want, rb), "%s: attn_q bytes", out);
            free(want);
            free(tmp);
        }
        int32_t a[40] = {0}, b[40] = {0};
        if (cases[c].dt == SHRINK_DTYPE_Q8_0)
            CHECK(greedy(m, a, 40) && greedy(f, b, 40) && !memcmp(a, b, sizeof a),
                  "%s: greedy tokens differ from f32", out);
        shrink_model_free(m);
        remove(out);
    }
    shrink_model_free(f);
    remove(dir);
}

int main(void) {
    test_rng_seed(0x2545F4914F6CDD1Dull);
    test_table();
    test_fixture();
    test_round_trip();
    test_matmul();
    test_gguf_files();
    test_gguf_write();
    return test_summary("test_quants");
}
