/*
 * test_palette.c - the palette types pal4, pal16, pal256 (src/kernels/palette.h) and their
 * k-means (src/quant/palette.c):
 *
 *   1. the dtype rows (block, bytes, row head, bits, names, GGUF ids 1014..1016);
 *   2. rows written with k-means palettes: the heads hold each group's palette, every code is
 *      the nearest stored (f16) entry (recomputed here in float64 from the palette), the round
 *      trip is within the row's tol_rel, sk_pal_check accepts the tensor and catches every kind
 *      of bad head (j past the group, a group past the tensor, a wrong row length);
 *   3. every SIMD kernel against its scalar twin: dequantizers bit for bit (all ranges), dots
 *      within f32 rounding (row lengths 32 .. 4096), sk_matmul of every kernel set against
 *      sk_matmul_ref and float64 for T = 1 (decode) and T > 1 (GEMM), tail groups included;
 *   4. round trip (stories260K): shrink_quantize --scheme pal16 / pal256 / pal4 of the f32 GGUF
 *      writes, for every palette tensor, the bytes of sk_palette_fit + the row quantizer on the
 *      f32 source (no RoPE permutation: GGUF in, GGUF out); the same model as a Hugging Face
 *      folder (q/k rows permuted to rotate-half and back by the writer) gives the same bytes;
 *      the file reloads and its logits equal those of its own f32 widening (shrink_convert);
 *      bad schemes (k not a power of two, > 256) are refused with the reason;
 *   5. sk_kmeans1d against the float64 reference tools/ref_check/kmeans_ref.py through the
 *      committed fixture tests/fixtures/palette/kmeans_ref.txt (same data, same quantile init:
 *      the same centroids to 1e-6), weighted and unweighted; and that it never does worse than
 *      its start (the k-means objective goes down from the quantile init).
 */
#include "formats/formats.h"
#include "kernels/kernels.h"
#include "kernels/palette.h"
#include "quant/palette.h"
#include "model/model.h"
#include "test_util.h"

#include <inttypes.h>
#include <stdint.h>

#define rng_u      test_rng_u
#define rng_normal() ((float)test_rng_normal())

static const shrink_dtype PALS[] = {SHRINK_DTYPE_PAL4, SHRINK_DTYPE_PAL16, SHRINK_DTYPE_PAL256};
enum { N_PALS = 3 };

/* f16 -> double, independently of the library (ldexp) */
static double half(const uint8_t *p) {
    unsigned h = (unsigned)p[0] | (unsigned)p[1] << 8;
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return h & 0x8000 ? -v : v;
}

/* A (rows, cols) tensor of type t with k-means palettes (weighted by w when given). */
static uint8_t *pal_tensor(shrink_dtype t, const float *x, int64_t rows, int64_t cols,
                           const float *w, float **pal_out) {
    const int k = sk_pal_k(t);
    const uint64_t rb = sk_dtype_row_bytes(t, cols);
    uint8_t *q = malloc((size_t)(rb * (uint64_t)rows));
    float *pal = calloc((size_t)((rows + k - 1) / k * k), sizeof(float));
    CHECK(sk_palette_fit(t, x, rows, cols, w, pal) == SHRINK_OK, "fit %s", shrink_dtype_name(t));
    for (int64_t r = 0; r < rows; r++) {
        int64_t g0 = r / k * k;
        sk_qparams p = {.palette = pal + g0, .pal_j = (int)(r - g0),
                        .pal_g = (int)(rows - g0 < k ? rows - g0 : k)};
        sk_dtype(t)->quantize(x + r * cols, q + (size_t)r * rb, cols, &p);
    }
    if (pal_out) *pal_out = pal;
    else free(pal);
    return q;
}

/* ==== 1. the table ========================================================================= */

static void test_table(void) {
    static const struct { shrink_dtype t; const char *name; int k; size_t bytes; unsigned id; } L[] = {
        {SHRINK_DTYPE_PAL4, "pal4", 4, 8, 1018},
        {SHRINK_DTYPE_PAL16, "pal16", 16, 16, 1016},
        {SHRINK_DTYPE_PAL256, "pal256", 256, 32, 1017},
    };
    for (int i = 0; i < 3; i++) {
        const sk_dtype_traits *d = sk_dtype(L[i].t);
        CHECK(!strcmp(d->name, L[i].name) && sk_pal_k(L[i].t) == L[i].k, "%s: name, k", L[i].name);
        CHECK(d->block == 32 && d->bytes == L[i].bytes && d->row_head == 6, "%s: layout",
              L[i].name);
        CHECK(d->act == SK_ACT_F32 && d->vec_dot_ref && d->to_f32_range && d->quantize,
              "%s: functions", L[i].name);
        CHECK(sk_dtype_own(L[i].t) && sk_dtype_quantized(L[i].t), "%s: own, quantized", L[i].name);
        CHECK(sk_dtype_row_bytes(L[i].t, 256) == 6 + 8 * L[i].bytes, "%s: row bytes", L[i].name);
        shrink_dtype got;
        CHECK(shrink_dtype_parse(L[i].name, &got) == SHRINK_OK && got == L[i].t, "parse %s",
              L[i].name);
        CHECK(!strcmp(sk_ggml_type_name(L[i].id), L[i].name), "GGUF type %u is %s", L[i].id,
              L[i].name);
    }
    /* 16 entries in 16 rows of 256: 4 + 48/256 bits per weight */
    CHECK(fabs(8.0 * (double)sk_dtype_tensor_bytes(SHRINK_DTYPE_PAL16, 16, 256) / (16 * 256) -
               4.1875) < 1e-12, "pal16 bits per weight at 256 columns");
    CHECK(sk_pal_k(SHRINK_DTYPE_Q4_0) == 0 && sk_pal_k(SHRINK_DTYPE_NF4) == 0, "k of non-palettes");
}

/* ==== 2. rows, heads, codes ================================================================ */

static void check_rows(shrink_dtype t, int64_t rows, int64_t cols, int weighted) {
    const int k = sk_pal_k(t);
    const char *nm = shrink_dtype_name(t);
    const uint64_t rb = sk_dtype_row_bytes(t, cols);
    float *x = malloc((size_t)(rows * cols) * sizeof(float));
    float *w = weighted ? malloc((size_t)cols * sizeof(float)) : NULL;
    for (int64_t i = 0; i < rows * cols; i++) x[i] = 0.05f * rng_normal();
    for (int64_t c = 0; weighted && c < cols; c++) w[c] = (float)(0.01 + 4.0 * rng_u() * rng_u());
    float *pal;
    uint8_t *q = pal_tensor(t, x, rows, cols, w, &pal);
    CHECK(sk_pal_check(t, q, rows, cols) == -1, "%s %" PRId64 "x%" PRId64 ": heads valid", nm,
          rows, cols);
    float *y = malloc((size_t)cols * sizeof(float));
    uint8_t *codes = malloc((size_t)cols);
    double e2 = 0, x2 = 0;
    int64_t bad_head = -1, bad_code = -1, bad_val = -1;
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = q + (size_t)r * rb;
        int64_t g0 = r / k * k;
        int g = (int)(rows - g0 < k ? rows - g0 : k);
        if (row[2] != r - g0 || row[3] != g - 1 || (row[4] | row[5] << 8) != cols / 32 ||
            half(row) != (double)sk_f16_to_f32(sk_f32_to_f16(pal[r])))
            bad_head = bad_head < 0 ? r : bad_head;
        sk_dtype(t)->to_f32(row, y, cols);
        sk_pal_codes(t, row, cols, codes);
        for (int64_t c = 0; c < cols; c++) {
            /* the stored palette, read from the group's heads here */
            double v = (double)x[r * cols + c], best = INFINITY;
            int bi = -1;
            for (int e = 0; e < g; e++) {
                double s = half(q + (size_t)(g0 + e) * rb), dd = fabs(v - s);
                if (dd < best) { best = dd; bi = e; }
            }
            if (codes[c] != bi && fabs(v - half(q + (size_t)(g0 + codes[c]) * rb)) > best)
                bad_code = bad_code < 0 ? r * cols + c : bad_code;
            if ((double)y[c] != half(q + (size_t)(g0 + codes[c]) * rb))
                bad_val = bad_val < 0 ? r * cols + c : bad_val;
            e2 += ((double)y[c] - v) * ((double)y[c] - v);
            x2 += v * v;
        }
    }
    CHECK(bad_head < 0, "%s: head of row %" PRId64, nm, bad_head);
    CHECK(bad_code < 0, "%s: code of element %" PRId64 " is not the nearest entry", nm, bad_code);
    CHECK(bad_val < 0, "%s: value of element %" PRId64 " is not palette[code]", nm, bad_val);
    double rel = sqrt(e2 / x2);
    if (!weighted && rows % k == 0)
        CHECK(rel <= sk_dtype(t)->tol_rel && rel > sk_dtype(t)->tol_rel / 4,
              "%s %" PRId64 "x%" PRId64 ": round trip %.4g, tol_rel %.4g", nm, rows, cols, rel,
              sk_dtype(t)->tol_rel);
    /* bad heads: each caught */
    if (rows >= 2) {
        uint8_t save[6];
        uint8_t *last = q + (size_t)(rows - 1) * rb;
        memcpy(save, last, 6);
        last[2] = (uint8_t)(last[3] + 1); /* j past its group */
        CHECK(sk_pal_check(t, q, rows, cols) == rows - 1, "%s: j >= g caught", nm);
        memcpy(last, save, 6);
        q[3] = (uint8_t)(rows < k ? rows : k - 1); /* row 0: a group past the tensor */
        if (rows < k) CHECK(sk_pal_check(t, q, rows, cols) == 0, "%s: group past the end", nm);
        q[3] = save[3];
        memcpy(q + 3, (const uint8_t *)q + (size_t)rb + 3, 1);
        last[4] ^= 1; /* the row length */
        CHECK(sk_pal_check(t, q, rows, cols) >= 0, "%s: wrong row length caught", nm);
        memcpy(last, save, 6);
        memcpy(save, q, 6);
        q[2] = 1; /* row 0 as the second of its group: the group starts before the tensor */
        q[3] = q[3] ? q[3] : 1;
        CHECK(sk_pal_check(t, q, rows, cols) == 0, "%s: group before the tensor caught", nm);
        memcpy(q, save, 6);
    }
    free(codes); free(y); free(pal); free(q); free(x); free(w);
}

static void test_rows(void) {
    for (int i = 0; i < N_PALS; i++) {
        int k = sk_pal_k(PALS[i]);
        check_rows(PALS[i], k, 256, 0);
        check_rows(PALS[i], 2 * k + 3, 96, 0); /* a tail group of 3 rows */
        check_rows(PALS[i], k, 1024, 1);       /* weighted */
    }
    /* a lone row (from_f32): a group of one, its mean */
    float x[64];
    uint8_t q[6 + 32];
    double m = 0;
    for (int i = 0; i < 64; i++) m += x[i] = (float)i;
    sk_dtype(SHRINK_DTYPE_PAL16)->from_f32(x, q, 64);
    CHECK(q[2] == 0 && q[3] == 0 && half(q) == m / 64 && sk_pal_check(SHRINK_DTYPE_PAL16, q, 1, 64) == -1,
          "lone row: group of one at the mean");
}

/* ==== 3. kernels against their scalar twins ================================================ */

static void check_kernels(shrink_dtype t, int64_t rows, int64_t cols) {
    const char *nm = shrink_dtype_name(t);
    const sk_dtype_traits *d = sk_dtype(t);
    const uint64_t rb = sk_dtype_row_bytes(t, cols);
    float *x = malloc((size_t)(rows * cols) * sizeof(float));
    for (int64_t i = 0; i < rows * cols; i++) x[i] = rng_normal();
    uint8_t *q = pal_tensor(t, x, rows, cols, NULL, NULL);
    float *wf = malloc((size_t)(rows * cols) * sizeof(float));
    for (int64_t r = 0; r < rows; r++) d->to_f32(q + (size_t)r * rb, wf + r * cols, cols);
    float *a = malloc((size_t)cols * sizeof(float)), *b = malloc((size_t)cols * sizeof(float));
    for (int l = SK_ISA_AVX2; l < SK_ISA_COUNT; l++) {
        if ((sk_isa)l > sk_cpu_isa()) continue;
        sk_dequant_fn fn = sk_dequant_get((sk_isa)l, t);
        sk_vec_dot_fn dot = sk_vec_dot_get((sk_isa)l, t);
        CHECK(fn && dot && dot != d->vec_dot_ref, "%s level %d: SIMD kernels", nm, l);
        if (!fn || !dot) continue;
        int bad = 0;
        for (int64_t r = 0; r < rows && !bad; r++)
            for (int64_t k0 = 0; k0 < cols && !bad; k0 += 32)
                for (int64_t n = 32; k0 + n <= cols && !bad; n += 32 * (1 + n / 96)) {
                    sk_dequant_ref(t, q + (size_t)r * rb, k0, n, a);
                    fn(q + (size_t)r * rb, k0, n, b);
                    bad = memcmp(a, b, (size_t)n * sizeof(float)) != 0;
                }
        CHECK(!bad, "%s level %d %" PRId64 "x%" PRId64 ": dequantizer = reference bit for bit",
              nm, l, rows, cols);
        bad = 0;
        for (int64_t r = 0; r < rows && !bad; r++) {
            const float *xr = x + ((r + 1) % rows) * cols;
            double mag = 0;
            for (int64_t c = 0; c < cols; c++) mag += fabs((double)wf[r * cols + c] * xr[c]);
            float s = dot(cols, q + (size_t)r * rb, xr), sr = d->vec_dot_ref(cols, q + (size_t)r * rb, xr);
            bad = !(fabs((double)s - sr) <= 2e-6 * mag + 1e-30);
        }
        CHECK(!bad, "%s level %d %" PRId64 "x%" PRId64 ": dot = reference", nm, l, rows, cols);
    }
    /* sk_matmul of every set: decode and prompt */
    static const int64_t Ts[] = {1, 3, 17};
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
        int64_t T = Ts[ti];
        float *X = malloc((size_t)(T * cols) * sizeof(float));
        for (int64_t i = 0; i < T * cols; i++) X[i] = rng_normal();
        float *Y = malloc((size_t)(T * rows) * sizeof(float)), *R = malloc((size_t)(T * rows) * 4);
        sk_mat W = {.dtype = t, .rows = rows, .cols = cols, .data = q};
        CHECK(sk_matmul_ref(&W, X, T, R, rows) == SHRINK_OK, "matmul_ref");
        for (int l = 0; l < SK_ISA_COUNT; l++) {
            const sk_kernel_set *ks = sk_kernels_get((sk_isa)l);
            if (!ks) continue;
            sk_matmul_with(ks, &W, X, T, Y, rows);
            int bad = 0;
            for (int64_t tt = 0; tt < T && !bad; tt++)
                for (int64_t r = 0; r < rows && !bad; r++) {
                    double acc = 0, mag = 0;
                    for (int64_t c = 0; c < cols; c++) {
                        acc += (double)wf[r * cols + c] * X[tt * cols + c];
                        mag += fabs((double)wf[r * cols + c] * X[tt * cols + c]);
                    }
                    bad = !(fabs((double)Y[tt * rows + r] - R[tt * rows + r]) <= 1e-5 * mag + 1e-30 &&
                            fabs(acc - R[tt * rows + r]) <= 1e-5 * mag + 1e-30);
                }
            CHECK(!bad, "matmul %s %s %" PRId64 "x%" PRId64 " T=%" PRId64, ks->name, nm, rows,
                  cols, T);
        }
        free(X); free(Y); free(R);
    }
    free(a); free(b); free(wf); free(q); free(x);
}

static void test_kernels(void) {
    for (int i = 0; i < N_PALS; i++) {
        int k = sk_pal_k(PALS[i]);
        check_kernels(PALS[i], k + 5, 32);   /* one block; a tail group */
        check_kernels(PALS[i], 2 * k, 96);
        check_kernels(PALS[i], k, 544);
        if (k <= 16) check_kernels(PALS[i], 40, 4096);
    }
}

/* ==== 4. k-means against the float64 reference ============================================= */

static void test_kmeans_ref(void) {
    char path[512];
    snprintf(path, sizeof path, "tests/fixtures/palette/kmeans_ref.txt");
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "%s missing (tools/ref_check/kmeans_ref.py makes it)", path);
    if (!f) return;
    int cases = 0;
    long n;
    int k, weighted;
    while (fscanf(f, " case %ld %d %d", &n, &k, &weighted) == 3) {
        float *x = malloc((size_t)n * sizeof(float)), *w = malloc((size_t)n * sizeof(float));
        double *ref = malloc((size_t)k * sizeof(double)), *got = malloc((size_t)k * sizeof(double));
        int ok = 1;
        for (long i = 0; i < n && ok; i++) ok = fscanf(f, "%f", &x[i]) == 1;
        for (long i = 0; i < n && ok && weighted; i++) ok = fscanf(f, "%f", &w[i]) == 1;
        for (int e = 0; e < k && ok; e++) ok = fscanf(f, "%la", &ref[e]) == 1;
        CHECK(ok, "%s: case %d truncated", path, cases);
        if (!ok) { free(x); free(w); free(ref); free(got); break; }
        int it = sk_kmeans1d(x, weighted ? w : NULL, n, k, 100, got);
        double worst = 0, scale = 0;
        for (int e = 0; e < k; e++) scale = fmax(scale, fabs(ref[e]));
        for (int e = 0; e < k; e++) worst = fmax(worst, fabs(got[e] - ref[e]));
        CHECK(it >= 1 && worst <= 1e-6 * scale, "k-means case %d (n %ld, k %d%s): max |c - ref| "
              "%.3g (scale %.3g), %d iterations", cases, n, k, weighted ? ", weighted" : "",
              worst, scale, it);
        cases++;
        free(x); free(w); free(ref); free(got);
    }
    fclose(f);
    CHECK(cases >= 6, "%d k-means cases in the fixture", cases);
}

/* the objective goes down from the quantile start (1 iteration = the start's clusters' means) */
static void test_kmeans_descends(void) {
    const int64_t n = 5000;
    float *x = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = rng_normal() * rng_normal();
    double c1[16], c2[16];
    sk_kmeans1d(x, NULL, n, 16, 1, c1);
    sk_kmeans1d(x, NULL, n, 16, 100, c2);
    double o1 = 0, o2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double b1 = INFINITY, b2 = INFINITY;
        for (int e = 0; e < 16; e++) {
            b1 = fmin(b1, (x[i] - c1[e]) * (x[i] - c1[e]));
            b2 = fmin(b2, (x[i] - c2[e]) * (x[i] - c2[e]));
        }
        o1 += b1;
        o2 += b2;
    }
    CHECK(o2 < o1, "k-means objective %.6g after 100 iterations, %.6g after 1", o2, o1);
    for (int e = 1; e < 16; e++) CHECK(c2[e - 1] <= c2[e], "centroids ascending");
    free(x);
}

/* ==== 4. round trip ======================================================================= */

static const sk_tensor *find_t(const struct shrink_model *m, const char *name) {
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

/* logits of tokens 1, 5, 9, ... (n of them) at every position */
static float *logits_of(const char *path, int n, int *V) {
    shrink_model *m;
    if (shrink_model_load(&m, path, NULL) != SHRINK_OK) {
        CHECK(0, "load %s: %s", path, shrink_last_error());
        return NULL;
    }
    shrink_context *ctx;
    *V = m->cfg.vocab_size;
    float *lg = malloc((size_t)n * (size_t)*V * sizeof(float));
    int32_t ids[32];
    for (int i = 0; i < n; i++) ids[i] = 1 + 4 * i;
    CHECK(shrink_context_create(&ctx, m, 64, n) == SHRINK_OK &&
              shrink_context_eval(ctx, ids, n, 0, lg, n) == SHRINK_OK,
          "%s: eval: %s", path, shrink_last_error());
    shrink_context_free(ctx);
    shrink_model_free(m);
    return lg;
}

static void test_round_trip(void) {
    char src[1024];
    if (!test_need_asset(src, sizeof src, "fixtures/gguf/stories260K.gguf")) return;
    char dir[] = "/tmp/shrink_palette_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    if (strstr(dir, "XXXXXX")) return;
    char hf[1100];
    snprintf(hf, sizeof hf, "%s/hf", dir);
    shrink_convert_params cp = shrink_convert_params_default();
    cp.dtype = SHRINK_DTYPE_F32;
    CHECK(shrink_convert(src, hf, &cp, NULL) == SHRINK_OK, "to HF: %s", shrink_last_error());
    shrink_model *f;
    if (shrink_model_load(&f, src, NULL) != SHRINK_OK) {
        CHECK(0, "load %s: %s", src, shrink_last_error());
        return;
    }
    for (int i = 0; i < N_PALS; i++) {
        const shrink_dtype t = PALS[i];
        const char *nm = shrink_dtype_name(t);
        char out[1100], out2[1100], wide[1100];
        snprintf(out, sizeof out, "%s/%s.gguf", dir, nm);
        snprintf(out2, sizeof out2, "%s/%s-hf.gguf", dir, nm);
        snprintf(wide, sizeof wide, "%s/%s-f32.gguf", dir, nm);
        shrink_quantize_params qp = shrink_quantize_params_default();
        qp.scheme = nm;
        CHECK(shrink_quantize(src, out, &qp, NULL) == SHRINK_OK, "quantize %s: %s", nm,
              shrink_last_error());
        CHECK(shrink_quantize(hf, out2, &qp, NULL) == SHRINK_OK, "quantize HF %s: %s", nm,
              shrink_last_error());
        shrink_model *m, *m2;
        if (shrink_model_load(&m, out, NULL) != SHRINK_OK) {
            CHECK(0, "reload %s: %s", out, shrink_last_error());
            continue;
        }
        if (shrink_model_load(&m2, out2, NULL) != SHRINK_OK) {
            CHECK(0, "reload %s: %s", out2, shrink_last_error());
            shrink_model_free(m);
            continue;
        }
        int n_pal = 0;
        for (int64_t ti = 0; ti < m->n_tensors; ti++) {
            const sk_tensor *b = &m->tensors[ti], *a = find_t(f, b->name), *c = find_t(m2, b->name);
            if (b->dtype != t) continue;
            n_pal++;
            CHECK(a && c && c->dtype == t && c->bytes == b->bytes &&
                      !memcmp(c->data, b->data, (size_t)b->bytes),
                  "%s: %s from the HF folder differs", nm, b->name);
            if (!a || a->dtype != SHRINK_DTYPE_F32) continue;
            int64_t rows = a->shape[0], cols = a->shape[1];
            CHECK(sk_pal_check(t, b->data, rows, cols) == -1, "%s %s: heads", nm, b->name);
            uint8_t *q = pal_tensor(t, a->data, rows, cols, NULL, NULL);
            CHECK(b->bytes == sk_dtype_tensor_bytes(t, rows, cols) &&
                      !memcmp(q, b->data, (size_t)b->bytes),
                  "%s: %s differs from sk_palette_fit + quantize", nm, b->name);
            free(q);
        }
        CHECK(n_pal >= 10, "%s: %d palette tensors", nm, n_pal);
        shrink_model_free(m);
        shrink_model_free(m2);
        /* the logits of the file and of its f32 widening */
        shrink_convert_params wp = cp;
        wp.allow_requantize = true; /* widening: dequantized in place, nothing rounded */
        CHECK(shrink_convert(out, wide, &wp, NULL) == SHRINK_OK, "widen %s: %s", out,
              shrink_last_error());
        int V1 = 0, V2 = 0;
        float *l1 = logits_of(out, 7, &V1), *l2 = logits_of(wide, 7, &V2);
        if (l1 && l2 && V1 == V2) {
            double worst = 0, mag = 0;
            for (int64_t k = 0; k < 7 * (int64_t)V1; k++) {
                worst = fmax(worst, fabs((double)l1[k] - l2[k]));
                mag = fmax(mag, fabs((double)l2[k]));
            }
            CHECK(worst <= 1e-4 * mag, "%s: logits differ from the f32 widening by %.3g (max "
                  "|logit| %.3g)", nm, worst, mag);
        }
        free(l1);
        free(l2);
    }
    shrink_model_free(f);
    /* k not a power of two, or too large: refused with the reason */
    static const char *bad[] = {"pal17", "pal512", "pal0"};
    for (int i = 0; i < 3; i++) {
        char out[1100];
        snprintf(out, sizeof out, "%s/bad.gguf", dir);
        shrink_quantize_params qp = shrink_quantize_params_default();
        qp.scheme = bad[i];
        CHECK(shrink_quantize(src, out, &qp, NULL) == SHRINK_ERR_ARG &&
                  strstr(shrink_last_error(), bad[i]) &&
                  (strstr(shrink_last_error(), "power of two") ||
                   strstr(shrink_last_error(), "larger than 256")),
              "scheme %s: %s", bad[i], shrink_last_error());
        struct stat sb;
        CHECK(stat(out, &sb) != 0, "scheme %s: no output", bad[i]);
    }
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "rm %s", dir);
}

int main(void) {
    test_table();
    test_rows();
    test_kernels();
    test_round_trip();
    test_kmeans_descends();
    test_kmeans_ref();
    return test_summary("test_palette");
}
