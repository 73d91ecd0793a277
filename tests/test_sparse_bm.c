/*
 * test_sparse_bm.c - the unstructured sparse types sparse_f16 / sparse_i8
 * (src/kernels/sparse_bm.c) and their storage by shrink_prune (--store sparse / sparse_i8):
 *   1. the layout, decoded here independently of sparse_bm.c (docs/formats.md: head u32 nnz,
 *      u32 nb [, f32 d], nb little-endian u64 bitmaps, n/2 value slots in input order, f16
 *      decoded with ldexp): rows of 0 %, 30 %, 50 % density are stored exactly (f16) or to the
 *      int8 grid, unused slots are 0, the row size is the table's; a row with more than half
 *      non-zero keeps its n/2 largest |x| (ties: the lower index); sk_sparse_bm_row_fits;
 *   2. every level's dot and dequantizer against the scalar reference on 1..9 blocks of 64
 *      at densities 0, 3 %, 30 %, 50 % (full rows: the AVX2 tail path), rows at odd addresses
 *      allocated to their last byte (ASan sees any read past a row): dequantizers bit for
 *      bit, dots within 1e-5 * sum |w x| of a float64 dot;
 *   3. tiny-llama-gqa pruned 60 % per row (magnitude) written with --store sparse_f16 gives the
 *      logits of the same model written dense (relative 1e-5; prompt and decode), sparse_i8
 *      within int8 rounding; ffn_down (176 inputs) stays dense with a note; 50 % per matrix:
 *      the matrices with a row above half stay dense, each with a note, the others sparse;
 *   4. bad input: a file whose index is corrupt (a row's nnz one more than its bitmaps count,
 *      a bitmap with more than half the row set) or truncated -> an error naming the file and
 *      the tensor, no crash; --store of a non-sparse type refused.
 */
#include "kernels/kernels.h"
#include "kernels/shrink_quants.h"
#include "model/model.h"
#include "test_util.h"

#include <stdint.h>
#include <unistd.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double rng_u(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static float rng_normal(void) {
    double u = rng_u() + 1e-12, v = rng_u();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* independent f16 decoder */
static double f16_dec(const uint8_t *p) {
    unsigned h = (unsigned)p[0] | (unsigned)p[1] << 8;
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
    return h & 0x8000 ? -v : v;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* a row of f16-representable values with exactly `nz` non-zeros at random inputs */
static void make_row(float *x, int64_t n, int64_t nz) {
    for (int64_t i = 0; i < n; i++) x[i] = 0.0f;
    for (int64_t k = 0; k < nz;) {
        int64_t i = (int64_t)(rng_u() * (double)n);
        if (x[i] != 0.0f) continue;
        float v = sk_f16_to_f32(sk_f32_to_f16(rng_normal()));
        if (v == 0.0f) continue;
        x[i] = v;
        k++;
    }
}

/* decode a row as docs/formats.md says: dec[n] (values as doubles), returns 0 if the head or
 * the unused slots are wrong */
static int decode(shrink_dtype t, const uint8_t *r, int64_t n, double *dec) {
    const int i8 = t == SHRINK_DTYPE_SPARSE_I8;
    const int64_t hb = i8 ? 12 : 8, nb = n / 64, vs = i8 ? 1 : 2;
    const uint32_t nnz = le32(r), nbf = le32(r + 4);
    float d = 1.0f;
    if (i8) memcpy(&d, r + 8, 4);
    if (nbf != (uint32_t)nb) return 0;
    const uint8_t *bm = r + hb, *v = bm + 8 * nb;
    int64_t s = 0;
    for (int64_t i = 0; i < n; i++) {
        dec[i] = 0.0;
        if (bm[i / 8] >> (i % 8) & 1) {
            dec[i] = i8 ? (double)(d * (float)(int8_t)v[s]) : f16_dec(v + 2 * s);
            s++;
        }
    }
    if (s != (int64_t)nnz || s > n / 2) return 0;
    for (int64_t k = s * vs; k < n / 2 * vs; k++)
        if (v[k]) return 0;
    return 1;
}

/* ==== 1. layout ============================================================================= */

static void test_layout(void) {
    const int64_t n = 256;
    float x[256], y[256];
    double dec[256];
    uint8_t w[12 + 4 * 72];
    const sk_dtype_traits *f = sk_dtype(SHRINK_DTYPE_SPARSE_F16), *q = sk_dtype(SHRINK_DTYPE_SPARSE_I8);
    CHECK(f->block == 64 && f->bytes == 72 && f->row_head == 8 && f->act == SK_ACT_F32 &&
              shrink_dtype_bits(SHRINK_DTYPE_SPARSE_F16) == 9.0 &&
              sk_dtype_row_bytes(SHRINK_DTYPE_SPARSE_F16, n) == 8 + 4 * 72,
          "sparse_f16: block 64, 72 bytes, head 8, 9 bits");
    CHECK(q->block == 64 && q->bytes == 40 && q->row_head == 12 &&
              shrink_dtype_bits(SHRINK_DTYPE_SPARSE_I8) == 5.0,
          "sparse_i8: block 64, 40 bytes, head 12, 5 bits");
    shrink_dtype parsed;
    CHECK(shrink_dtype_parse("sparse-f16", &parsed) == SHRINK_OK && parsed == SHRINK_DTYPE_SPARSE_F16 &&
              shrink_dtype_is_own(SHRINK_DTYPE_SPARSE_I8),
          "names parse, own types");
    static const int64_t nzs[] = {0, 77, 128};
    for (int c = 0; c < 3; c++) {
        make_row(x, n, nzs[c]);
        CHECK(sk_sparse_bm_row_fits(x, n), "%lld non-zeros of 256 fit", (long long)nzs[c]);
        memset(w, 0xAB, sizeof w);
        f->from_f32(x, w, n);
        int ok = decode(SHRINK_DTYPE_SPARSE_F16, w, n, dec), diff = 0;
        for (int64_t i = 0; i < n; i++) diff += dec[i] != (double)x[i];
        CHECK(ok && !diff && le32(w) == (uint32_t)nzs[c], "f16 %lld non-zeros: head/slots %s, "
              "%d values differ", (long long)nzs[c], ok ? "ok" : "wrong", diff);
        f->to_f32(w, y, n);
        diff = 0;
        for (int64_t i = 0; i < n; i++) diff += y[i] != x[i];
        CHECK(!diff, "f16 round trip: %d differ", diff);
        memset(w, 0xAB, sizeof w);
        q->from_f32(x, w, n);
        ok = decode(SHRINK_DTYPE_SPARSE_I8, w, n, dec);
        float d;
        memcpy(&d, w + 8, 4);
        double amax = 0;
        for (int64_t i = 0; i < n; i++) amax = fmax(amax, fabs(x[i]));
        int far = 0, lost = 0;
        q->to_f32(w, y, n);
        for (int64_t i = 0; i < n; i++) {
            far += fabs(dec[i] - x[i]) > 0.5001 * d || dec[i] != (double)y[i];
            lost += x[i] == 0.0f && y[i] != 0.0f;
        }
        CHECK(ok && !far && !lost && fabs(d - amax / 127.0) <= 1e-6 * amax + 1e-30,
              "i8 %lld non-zeros: head %s, %d off the grid, %d zeros lost, d %g",
              (long long)nzs[c], ok ? "ok" : "wrong", far, lost, d);
    }
    /* more than half non-zero: the 32 largest |x| of 64 stay, ties to the lower index */
    float z[64];
    for (int i = 0; i < 64; i++) z[i] = (float)(i % 8) * (i % 2 ? -1.0f : 1.0f); /* 0..7 */
    CHECK(!sk_sparse_bm_row_fits(z, 64), "56 of 64 non-zero do not fit");
    f->from_f32(z, w, 64);
    f->to_f32(w, y, 64);
    int kept = 0, wrong = 0;
    for (int i = 0; i < 64; i++) {
        const int m = i % 8; /* 8 each of |x| = 0..7: 7, 6, 5, 4 (32 values) stay */
        kept += y[i] != 0.0f;
        wrong += (m >= 4) != (y[i] != 0.0f) || (y[i] != 0.0f && y[i] != z[i]);
    }
    CHECK(kept == 32 && !wrong, "a full row keeps its 32 largest: %d kept, %d wrong", kept, wrong);
    for (int i = 0; i < 64; i++) z[i] = 1.0f;
    f->from_f32(z, w, 64);
    f->to_f32(w, y, 64);
    wrong = 0;
    for (int i = 0; i < 64; i++) wrong += (y[i] != 0.0f) != (i < 32);
    CHECK(!wrong, "ties: the lower 32 inputs stay (%d wrong)", wrong);
}

/* ==== 2. kernels against the scalar twins ==================================================== */

static void test_kernels(void) {
    static const shrink_dtype types[] = {SHRINK_DTYPE_SPARSE_F16, SHRINK_DTYPE_SPARSE_I8};
    static const double dens[] = {0.0, 0.03, 0.3, 0.5};
    for (size_t ti = 0; ti < 2; ti++) {
        const shrink_dtype t = types[ti];
        const sk_dtype_traits *d = sk_dtype(t);
        for (int di = 0; di < 4; di++)
            for (int64_t nb = 1; nb <= 9; nb += (di == 3 ? 1 : 2)) {
                const int64_t n = nb * 64;
                float *x = malloc((size_t)n * 4), *a = malloc((size_t)n * 4);
                float *wd = malloc((size_t)n * 4), *ref = malloc((size_t)n * 4);
                float *got = malloc((size_t)n * 4);
                make_row(x, n, (int64_t)(dens[di] * (double)n));
                for (int64_t k = 0; k < n; k++) a[k] = rng_normal();
                const uint64_t rb = sk_dtype_row_bytes(t, n);
                uint8_t *buf = malloc(rb + 3), *w = buf + 3; /* odd address, ends at the row */
                d->from_f32(x, w, n);
                d->to_f32(w, wd, n);
                double exact = 0, mag = 0;
                for (int64_t k = 0; k < n; k++) {
                    exact += (double)wd[k] * a[k];
                    mag += fabs((double)wd[k] * a[k]);
                }
                float r = d->vec_dot_ref(n, w, a);
                CHECK(fabs(r - exact) <= 1e-5 * mag + 1e-30, "%s n=%lld: ref dot %g vs %g",
                      d->name, (long long)n, r, exact);
                sk_dequant_ref(t, w, 0, n, ref);
                /* a part of the row (to_f32_range from block 1) */
                if (nb >= 3) {
                    d->to_f32_range(w, 64, 128, got);
                    CHECK(!memcmp(got, ref + 64, 128 * 4), "%s: to_f32_range of blocks 1..2",
                          d->name);
                }
                for (int l = 1; l < SK_ISA_COUNT; l++) {
                    if (!sk_kernels_get((sk_isa)l)) continue;
                    sk_vec_dot_fn fn = sk_vec_dot_get((sk_isa)l, t);
                    CHECK(fn && fn != d->vec_dot_ref, "%s level %d: a SIMD dot", d->name, l);
                    if (fn) {
                        float g = fn(n, w, a);
                        CHECK(fabs(g - exact) <= 1e-5 * mag + 1e-30, "%s n=%lld density %g "
                              "level %d: dot %g vs %g", d->name, (long long)n, dens[di], l, g,
                              exact);
                    }
                    sk_dequant_fn dq = sk_dequant_get((sk_isa)l, t);
                    CHECK(dq != NULL, "%s level %d: a dequantizer", d->name, l);
                    if (!dq) continue;
                    dq(w, 0, n, got);
                    CHECK(!memcmp(ref, got, (size_t)n * 4), "%s n=%lld level %d: dequantized "
                          "rows differ from the reference", d->name, (long long)n, l);
                    if (nb >= 3) {
                        dq(w, 128, 64, got);
                        CHECK(!memcmp(ref + 128, got, 64 * 4), "%s level %d: block 2 alone",
                              d->name, l);
                    }
                }
                free(buf); free(x); free(a); free(wd); free(ref); free(got);
            }
    }
}

/* ==== 3, 4. prune --store ==================================================================== */

static char tmp_dir[] = "/tmp/test_sparse_bm_XXXXXX";

static int logits_of(const char *path, float *out) {
    shrink_model *m = NULL;
    shrink_context *ctx = NULL;
    shrink_load_params lp = shrink_load_params_default();
    shrink_status st = shrink_model_load(&m, path, &lp);
    if (!st) st = shrink_context_create(&ctx, m, 16, 16);
    int32_t ids[6] = {1, 50, 120, 7, 300, 42};
    if (!st) st = shrink_context_eval(ctx, ids, 5, 0, out, 5);            /* prompt: panels */
    if (!st) st = shrink_context_eval(ctx, ids + 5, 1, 5, out + 5 * 512, 1); /* decode: dots */
    shrink_context_free(ctx);
    shrink_model_free(m);
    return st == SHRINK_OK;
}

static int count_type(const shrink_prune_result *r, shrink_dtype t, int *noted) {
    int n = 0;
    *noted = 0;
    for (int64_t i = 0; i < r->n_tensors; i++) {
        n += r->tensors[i].dtype == t;
        *noted += r->tensors[i].pruned && r->tensors[i].dtype != t &&
                  r->tensors[i].store_note[0] != 0;
    }
    return n;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

static int spit(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(b, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* corruptions of the first row of blk.0.attn_q.weight (64 inputs) found by its bytes */
static void test_corrupt(const char *good, const char *bad) {
    shrink_model *m = NULL;
    shrink_load_params lp = shrink_load_params_default();
    if (shrink_model_load(&m, good, &lp) != SHRINK_OK) {
        CHECK(0, "load %s: %s", good, shrink_last_error());
        return;
    }
    uint8_t row[16];
    int found = 0;
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, "blk.0.attn_q.weight") &&
            m->tensors[i].dtype == SHRINK_DTYPE_SPARSE_F16) {
            memcpy(row, m->tensors[i].data, 16);
            found = 1;
        }
    shrink_model_free(m);
    size_t n = 0;
    uint8_t *b = slurp(good, &n);
    uint8_t *at = found && b ? memmem(b, n, row, 16) : NULL;
    CHECK(at != NULL, "the first row of blk.0.attn_q.weight in %s", good);
    if (!at) {
        free(b);
        return;
    }
    for (int c = 0; c < 3; c++) {
        uint8_t *copy = malloc(n);
        memcpy(copy, b, n);
        size_t len = n;
        uint8_t *r = copy + (at - b);
        if (c == 0) r[0]++;                   /* nnz one more than the bitmap counts */
        else if (c == 1) memset(r + 8, 0xFF, 8); /* 64 of 64 set: more than the slots */
        else len = (size_t)(at - b) + 100;    /* truncated inside the tensor data */
        CHECK(spit(bad, copy, len), "write %s", bad);
        shrink_status st = shrink_model_load(&m, bad, &lp);
        const char *e = shrink_last_error();
        CHECK(st != SHRINK_OK && strstr(e, bad) &&
                  (c == 2 || (strstr(e, "blk.0.attn_q.weight") && strstr(e, "corrupt"))),
              "corruption %d: %s", c, st ? e : "loaded");
        if (!st) shrink_model_free(m);
        printf("  corruption %d: %s\n", c, e);
        free(copy);
    }
    remove(bad);
    free(b);
}

static void test_store(void) {
    static char buf[2048];
    const char *model = test_need_model(buf, sizeof buf, "tiny-llama-gqa");
    if (!model) return;
    if (!mkdtemp(tmp_dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    char dense[64], f16[64], i8[64], mat[64], badp[64];
    snprintf(dense, sizeof dense, "%s/dense.gguf", tmp_dir);
    snprintf(f16, sizeof f16, "%s/sf16.gguf", tmp_dir);
    snprintf(i8, sizeof i8, "%s/si8.gguf", tmp_dir);
    snprintf(mat, sizeof mat, "%s/mat.gguf", tmp_dir);
    snprintf(badp, sizeof badp, "%s/bad.gguf", tmp_dir);
    shrink_prune_params p = shrink_prune_params_default();
    p.method = "magnitude";
    p.sparsity = 0.6;
    p.per_row = true;
    p.dtype = SHRINK_DTYPE_F16; /* the same f16 values dense and sparse */
    shrink_prune_result r;
    int noted = 0;
    CHECK(shrink_prune(model, dense, &p, &r) == SHRINK_OK, "dense: %s", shrink_last_error());
    shrink_prune_result_free(&r);
    p.store = SHRINK_DTYPE_SPARSE_F16;
    CHECK(shrink_prune(model, f16, &p, &r) == SHRINK_OK, "sparse_f16: %s", shrink_last_error());
    int n_sp = count_type(&r, SHRINK_DTYPE_SPARSE_F16, &noted);
    CHECK(n_sp == 12 && noted == 2, "q,k,v,o,gate,up x 2 layers sparse (%d), ffn_down (176 "
          "inputs) dense with a note (%d)", n_sp, noted);
    for (int64_t i = 0; i < r.n_tensors; i++)
        if (r.tensors[i].store_note[0]) printf("  %s: %s\n", r.tensors[i].name, r.tensors[i].store_note);
    shrink_prune_result_free(&r);
    p.store = SHRINK_DTYPE_SPARSE_I8;
    CHECK(shrink_prune(model, i8, &p, &r) == SHRINK_OK, "sparse_i8: %s", shrink_last_error());
    shrink_prune_result_free(&r);

    const int32_t V = 512;
    float *ld = malloc(6 * (size_t)V * 4), *ls = malloc(6 * (size_t)V * 4),
          *li = malloc(6 * (size_t)V * 4);
    if (logits_of(dense, ld) && logits_of(f16, ls) && logits_of(i8, li)) {
        double worst = 0, worst_i8 = 0, amax = 0;
        for (int64_t k = 0; k < 6 * (int64_t)V; k++) amax = fmax(amax, fabs(ld[k]));
        for (int64_t k = 0; k < 6 * (int64_t)V; k++) {
            worst = fmax(worst, fabs((double)ls[k] - ld[k]) / amax);
            worst_i8 = fmax(worst_i8, fabs((double)li[k] - ld[k]) / amax);
        }
        printf("  logits sparse_f16 vs dense: max |diff| / max |logit| = %.3g; sparse_i8 %.3g\n",
               worst, worst_i8);
        CHECK(worst <= 1e-5, "sparse_f16 logits differ from dense: %.3g", worst);
        CHECK(worst_i8 <= 0.05 && worst_i8 > 0, "sparse_i8 logits: %.3g", worst_i8);
    } else {
        CHECK(0, "a pruned model does not load or run: %s", shrink_last_error());
    }
    free(ld); free(ls); free(li);
    /* the zeros of the sparse tensors: 60 % of each row (floor(0.6 * 64) = 38 of 64) */
    shrink_model *m = NULL;
    shrink_load_params lp = shrink_load_params_default();
    if (shrink_model_load(&m, f16, &lp) == SHRINK_OK) {
        int right = 0;
        for (int64_t i = 0; i < m->n_tensors; i++)
            if (m->tensors[i].dtype == SHRINK_DTYPE_SPARSE_F16)
                right += shrink_model_zeros(m, i) >= m->tensors[i].shape[0] * 38;
        CHECK(right == 12, "shrink_model_zeros: %d of 12 sparse tensors >= 60 %%", right);
        shrink_model_free(m);
    }
    /* 50 % per matrix: rows vary around half; the ones above stay dense, noted */
    p.per_row = false;
    p.sparsity = 0.5;
    p.store = SHRINK_DTYPE_SPARSE_F16;
    CHECK(shrink_prune(model, mat, &p, &r) == SHRINK_OK, "50 %% per matrix: %s",
          shrink_last_error());
    n_sp = count_type(&r, SHRINK_DTYPE_SPARSE_F16, &noted);
    int all_pruned = 0;
    for (int64_t i = 0; i < r.n_tensors; i++) all_pruned += r.tensors[i].pruned;
    printf("  50 %% per matrix: %d sparse, %d dense with a note of %d pruned\n", n_sp, noted,
           all_pruned);
    CHECK(n_sp + noted == all_pruned && noted > 2, "every pruned matrix sparse or noted");
    shrink_prune_result_free(&r);

    /* SparseGPT 70 %: its rows are known only when pruned; the few above half are trimmed, and
     * the result's zero count (trim included) is the file's */
    char calib[1024];
    if (test_need_asset(calib, sizeof calib, "prune/calib.txt")) {
        shrink_prune_params g = shrink_prune_params_default();
        g.method = "sparsegpt";
        g.sparsity = 0.7;
        g.calib_path = calib;
        g.calib_tokens = 256;
        g.calib_ctx = 64;
        g.store = SHRINK_DTYPE_SPARSE_F16;
        shrink_status st = shrink_prune(model, mat, &g, &r);
        CHECK(st == SHRINK_OK, "sparsegpt 70 %% --store sparse_f16: %s", shrink_last_error());
        if (st == SHRINK_OK) {
            int64_t zr = 0, zf = 0;
            int sparse = 0;
            for (int64_t i = 0; i < r.n_tensors; i++) {
                if (r.tensors[i].pruned) zr += r.tensors[i].n_zero;
                sparse += r.tensors[i].dtype == SHRINK_DTYPE_SPARSE_F16;
                if (r.tensors[i].store_note[0])
                    printf("  sparsegpt %s: %s\n", r.tensors[i].name, r.tensors[i].store_note);
            }
            shrink_prune_result_free(&r);
            if (shrink_model_load(&m, mat, &lp) == SHRINK_OK) {
                for (int64_t i = 0; i < m->n_tensors; i++)
                    if (m->tensors[i].n_dims == 2 && strstr(m->tensors[i].name, "blk."))
                        zf += shrink_model_zeros(m, i);
                shrink_model_free(m);
            }
            CHECK(sparse == 12 && zr == zf, "sparsegpt: %d sparse tensors, zeros %lld reported, "
                  "%lld in the file", sparse, (long long)zr, (long long)zf);
        }
    }

    test_corrupt(f16, badp);

    shrink_prune_params b = shrink_prune_params_default();
    b.method = "magnitude";
    b.sparsity = 0.7;
    b.store = SHRINK_DTYPE_Q4_0;
    CHECK(shrink_prune(model, badp, &b, &r) == SHRINK_ERR_ARG && access(badp, F_OK) != 0,
          "store q4_0 refused: %s", shrink_last_error());
    remove(dense);
    remove(f16);
    remove(i8);
    remove(mat);
    rmdir(tmp_dir);
}

int main(void) {
    test_layout();
    test_kernels();
    test_store();
    return test_summary("test_sparse_bm");
}
