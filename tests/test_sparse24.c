/*
 * test_sparse24.c - the 2:4 sparse types (src/kernels/sparse24.c) and their storage by
 * shrink_prune (--store):
 *   1. the layout, decoded here independently of sparse24.c (positions 2 bits per value in the
 *      little-endian u32, values f16 decoded with ldexp / int8 times the row's f32 d): a 2:4
 *      row is stored exactly (f16 values) or to the int8 grid (|x - d*q| <= d/2), the pruned
 *      positions dequantize to exact zeros, p_{2g} < p_{2g+1}; a row that is not 2:4 keeps the
 *      two largest |x| of each group; sk_sparse24_row_ok;
 *   2. every level's dot and dequantizer against the scalar reference on 2:4 rows (random
 *      data, 1..9 blocks: the AVX-512 loop's tail of one block; rows at odd addresses): the
 *      dequantizers bit for bit, the dots within 1e-5 * sum |w x| of a float64 dot
 *      (test_qdot and test_dequant cover the generic cases for every dtype);
 *   3. a 2:4-pruned model (tiny-llama-gqa, magnitude 2:4) written with --store sparse24_f16
 *      gives the logits of the same model written dense (relative 1e-5; ffn_down, 176 inputs,
 *      stays dense), sparse24_i8 within int8 rounding, and the tensors have the types;
 *   4. bad input: unstructured 50 % asked to be stored 2:4 -> SHRINK_ERR_ARG naming the tensor
 *      and the option, no output file;
 *   5. recovery (shrink_train keep_sparsity): stories260K pruned 50 % (magnitude), trained 6
 *      steps with weight decay: with the default (auto) every zero of every linear matrix is
 *      still exactly 0 afterwards, the other weights moved, the validation loss dropped and
 *      the result says so; with keep_sparsity = -1 the zeros are trained (fewer remain).
 */
#include "kernels/kernels.h"
#include "kernels/shrink_quants.h"
#include "model/model.h"
#include "test_util.h"

#include <stdint.h>
#include <unistd.h>

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static double rng_u(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static float rng_normal(void) {
    double u = rng_u() + 1e-12, v = rng_u();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* a 2:4 row of f16-representable values: in each group 0, 1 or 2 non-zeros */
static void make_row24(float *x, int64_t n) {
    for (int64_t g = 0; g < n; g += 4) {
        for (int j = 0; j < 4; j++) x[g + j] = 0.0f;
        int nz = (int)(rng_u() * 3.0); /* 0, 1, 2 */
        int a = (int)(rng_u() * 4.0), b = (a + 1 + (int)(rng_u() * 3.0)) % 4;
        if (nz >= 1) x[g + a] = sk_f16_to_f32(sk_f32_to_f16(rng_normal()));
        if (nz >= 2) x[g + b] = sk_f16_to_f32(sk_f32_to_f16(rng_normal()));
    }
}

/* ==== 1. layout ============================================================================= */

static void test_layout(void) {
    const int64_t n = 256;
    float x[256], y[256];
    make_row24(x, n);
    CHECK(sk_sparse24_row_ok(x, n), "a 2:4 row is ok");
    uint8_t w[SK_HEAD_D + 8 * SK_S24_F16_BYTES];
    const sk_dtype_traits *f = sk_dtype(SHRINK_DTYPE_SPARSE24_F16);
    CHECK(f->block == 32 && f->bytes == 36 && f->row_head == 0 && f->act == SK_ACT_F32 &&
              shrink_dtype_bits(SHRINK_DTYPE_SPARSE24_F16) == 9.0,
          "sparse24_f16: block 32, 36 bytes, 9 bits");
    const sk_dtype_traits *i8 = sk_dtype(SHRINK_DTYPE_SPARSE24_I8);
    CHECK(i8->block == 32 && i8->bytes == 20 && i8->row_head == 4 &&
              shrink_dtype_bits(SHRINK_DTYPE_SPARSE24_I8) == 5.0,
          "sparse24_i8: block 32, 20 bytes, head 4, 5 bits");
    f->from_f32(x, w, n);
    int bad_pos = 0, bad_val = 0;
    double dec[256];
    for (int64_t b = 0; b < n / 32; b++) {
        const uint8_t *blk = w + b * 36;
        uint32_t pos = (uint32_t)blk[0] | (uint32_t)blk[1] << 8 | (uint32_t)blk[2] << 16 |
                       (uint32_t)blk[3] << 24;
        for (int j = 0; j < 32; j++) dec[b * 32 + j] = 0.0;
        for (int i = 0; i < 16; i++) {
            int p = (int)(pos >> (2 * i) & 3);
            if (i % 2 == 1 && p <= (int)(pos >> (2 * (i - 1)) & 3)) bad_pos++;
            dec[b * 32 + 4 * (i / 2) + p] = test_f16_decode(blk + 4 + 2 * i);
        }
    }
    for (int64_t k = 0; k < n; k++) bad_val += dec[k] != (double)x[k];
    CHECK(!bad_pos && !bad_val, "f16 layout: %d positions out of order, %d values differ",
          bad_pos, bad_val);
    f->to_f32(w, y, n);
    int diff = 0;
    for (int64_t k = 0; k < n; k++) diff += memcmp(&x[k], &y[k], 4) != 0 && !(x[k] == 0 && y[k] == 0);
    CHECK(!diff, "f16: a 2:4 row round-trips exactly (%d differ)", diff);
    /* int8 */
    i8->from_f32(x, w, n);
    float d;
    memcpy(&d, w, 4);
    double amax = 0;
    for (int64_t k = 0; k < n; k++) amax = fmax(amax, fabs(x[k]));
    CHECK(fabs(d - amax / 127.0) <= 1e-6 * amax, "i8: d = absmax/127 (%g vs %g)", d, amax / 127);
    i8->to_f32(w, y, n);
    int far = 0, zeros = 0;
    for (int64_t b = 0; b < n / 32; b++) {
        const uint8_t *blk = w + 4 + b * 20;
        uint32_t pos = (uint32_t)blk[0] | (uint32_t)blk[1] << 8 | (uint32_t)blk[2] << 16 |
                       (uint32_t)blk[3] << 24;
        for (int j = 0; j < 32; j++) dec[b * 32 + j] = 0.0;
        for (int i = 0; i < 16; i++)
            dec[b * 32 + 4 * (i / 2) + (pos >> (2 * i) & 3)] = (double)(d * (float)(int8_t)blk[4 + i]);
    }
    for (int64_t k = 0; k < n; k++) {
        far += fabs(dec[k] - x[k]) > 0.5001 * d || dec[k] != (double)y[k];
        zeros += x[k] == 0.0f && y[k] != 0.0f;
    }
    CHECK(!far && !zeros, "i8: %d values off the grid or the decoder, %d zeros lost", far, zeros);
    /* not 2:4: the two largest |x| of each group stay */
    float z[32] = {1, -4, 3, 2, 0, 0, 0, 5, 1, 1, 1, 1};
    for (int j = 12; j < 32; j++) z[j] = (float)(j % 5) - 2.0f;
    CHECK(!sk_sparse24_row_ok(z, 32), "a dense row is not 2:4");
    f->from_f32(z, w, 32);
    f->to_f32(w, y, 32);
    CHECK(y[0] == 0 && y[1] == -4 && y[2] == 3 && y[3] == 0, "group 0 keeps -4, 3: %g %g %g %g",
          y[0], y[1], y[2], y[3]);
    CHECK(y[7] == 5 && y[4] == 0 && y[5] == 0 && y[6] == 0, "group 1 keeps 5");
    CHECK(y[8] == 1 && y[9] == 1 && y[10] == 0 && y[11] == 0, "ties: the lower indices");
}

/* ==== 2. kernels against the scalar twins ==================================================== */

static void test_kernels(void) {
    static const shrink_dtype types[] = {SHRINK_DTYPE_SPARSE24_F16, SHRINK_DTYPE_SPARSE24_I8};
    for (size_t ti = 0; ti < 2; ti++) {
        const shrink_dtype t = types[ti];
        const sk_dtype_traits *d = sk_dtype(t);
        for (int64_t nb = 1; nb <= 9; nb++) {
            const int64_t n = nb * 32;
            float *x = malloc((size_t)n * 4), *a = malloc((size_t)n * 4), *wd = malloc((size_t)n * 4);
            float *ref = malloc((size_t)n * 4), *got = malloc((size_t)n * 4);
            make_row24(x, n);
            for (int64_t k = 0; k < n; k++) a[k] = rng_normal();
            const uint64_t rb = sk_dtype_row_bytes(t, n);
            uint8_t *buf = malloc(rb + 3), *w = buf + 3; /* odd address */
            d->from_f32(x, w, n);
            d->to_f32(w, wd, n);
            double exact = 0, mag = 0;
            for (int64_t k = 0; k < n; k++) {
                exact += (double)wd[k] * a[k];
                mag += fabs((double)wd[k] * a[k]);
            }
            float r = d->vec_dot_ref(n, w, a);
            CHECK(fabs(r - exact) <= 1e-5 * mag + 1e-30, "%s n=%lld: ref dot %g vs %g", d->name,
                  (long long)n, r, exact);
            sk_dequant_ref(t, w, 0, n, ref);
            for (int l = 1; l < SK_ISA_COUNT; l++) {
                if (!sk_kernels_get((sk_isa)l)) continue;
                sk_vec_dot_fn fn = sk_vec_dot_get((sk_isa)l, t);
                CHECK(fn && fn != d->vec_dot_ref, "%s level %d: a SIMD dot", d->name, l);
                float g = fn(n, w, a);
                CHECK(fabs(g - exact) <= 1e-5 * mag + 1e-30, "%s n=%lld level %d: dot %g vs %g",
                      d->name, (long long)n, l, g, exact);
                sk_dequant_fn dq = sk_dequant_get((sk_isa)l, t);
                CHECK(dq != NULL, "%s level %d: a SIMD dequantizer", d->name, l);
                if (!dq) continue;
                dq(w, 0, n, got);
                CHECK(!memcmp(ref, got, (size_t)n * 4), "%s n=%lld level %d: dequantized rows "
                      "differ from the reference", d->name, (long long)n, l);
            }
            free(buf); free(x); free(a); free(wd); free(ref); free(got);
        }
    }
}

/* ==== 3, 4. prune --store ==================================================================== */

static char tmp_dir[] = "/tmp/test_sparse24_XXXXXX";

static void test_store(void) {
    static char buf[2048];
    const char *model = test_need_model(buf, sizeof buf, "tiny-llama-gqa");
    if (!model) return;
    if (!mkdtemp(tmp_dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    char dense[64], f16[64], i8[64], badp[64];
    snprintf(dense, sizeof dense, "%s/dense.gguf", tmp_dir);
    snprintf(f16, sizeof f16, "%s/s24.gguf", tmp_dir);
    snprintf(i8, sizeof i8, "%s/s24i8.gguf", tmp_dir);
    snprintf(badp, sizeof badp, "%s/bad.gguf", tmp_dir);
    shrink_prune_params p = shrink_prune_params_default();
    p.method = "magnitude";
    p.pattern_n = 2;
    p.pattern_m = 4;
    p.dtype = SHRINK_DTYPE_F16; /* the same f16 values dense and sparse */
    shrink_prune_result r;
    CHECK(shrink_prune(model, dense, &p, &r) == SHRINK_OK, "dense: %s", shrink_last_error());
    shrink_prune_result_free(&r);
    p.store = SHRINK_DTYPE_SPARSE24_F16;
    CHECK(shrink_prune(model, f16, &p, &r) == SHRINK_OK, "sparse24_f16: %s", shrink_last_error());
    int n_sparse = 0, n_dense_pruned = 0;
    for (int64_t i = 0; i < r.n_tensors; i++) {
        n_sparse += r.tensors[i].dtype == SHRINK_DTYPE_SPARSE24_F16;
        n_dense_pruned += r.tensors[i].pruned && r.tensors[i].dtype != SHRINK_DTYPE_SPARSE24_F16;
    }
    CHECK(n_sparse == 12 && n_dense_pruned == 2, "2 layers x q,k,v,o,gate,up sparse (%d), "
          "ffn_down (176 inputs) dense (%d)", n_sparse, n_dense_pruned);
    shrink_prune_result_free(&r);
    p.store = SHRINK_DTYPE_SPARSE24_I8;
    CHECK(shrink_prune(model, i8, &p, &r) == SHRINK_OK, "sparse24_i8: %s", shrink_last_error());
    shrink_prune_result_free(&r);

    const double worst = test_logits6_rel(dense, f16, 512), worst_i8 = test_logits6_rel(dense, i8, 512);
    if (worst >= 0 && worst_i8 >= 0) {
        printf("  logits sparse24_f16 vs dense: max |diff| / max |logit| = %.3g; sparse24_i8 %.3g\n",
               worst, worst_i8);
        CHECK(worst <= 1e-5, "sparse24_f16 logits differ from dense: %.3g", worst);
        CHECK(worst_i8 <= 0.05 && worst_i8 > 0, "sparse24_i8 logits: %.3g", worst_i8);
    } else {
        CHECK(0, "a pruned model does not load or run: %s", shrink_last_error());
    }
    /* the model's zeros: 50 % of every pruned matrix, whatever the storage */
    shrink_model *m = NULL;
    shrink_load_params lp = shrink_load_params_default();
    if (shrink_model_load(&m, f16, &lp) == SHRINK_OK) {
        shrink_model_info mi;
        shrink_model_get_info(m, &mi);
        int half = 0;
        for (int64_t i = 0; i < mi.n_tensors; i++) {
            shrink_tensor_info t;
            shrink_model_tensor(m, i, &t);
            if (t.dtype == SHRINK_DTYPE_SPARSE24_F16)
                half += shrink_model_zeros(m, i) * 2 == t.shape[0] * t.shape[1];
        }
        CHECK(half == 12, "shrink_model_zeros: %d of 12 sparse tensors at 50%%", half);
        shrink_model_free(m);
    }

    /* bad input: unstructured 50 % is not 2:4 */
    shrink_prune_params b = shrink_prune_params_default();
    b.method = "magnitude";
    b.sparsity = 0.5;
    b.store = SHRINK_DTYPE_SPARSE24_F16;
    shrink_status st = shrink_prune(model, badp, &b, &r);
    CHECK(st == SHRINK_ERR_ARG && strstr(shrink_last_error(), "not 2:4") &&
              strstr(shrink_last_error(), "--pattern 2:4") && strstr(shrink_last_error(), model),
          "unstructured --store: %s", shrink_last_error());
    CHECK(access(badp, F_OK) != 0, "unstructured --store left %s", badp);
    if (!st) shrink_prune_result_free(&r);
    b = shrink_prune_params_default();
    b.method = "magnitude";
    b.pattern_n = 2;
    b.pattern_m = 4;
    b.store = SHRINK_DTYPE_Q4_0;
    CHECK(shrink_prune(model, badp, &b, &r) == SHRINK_ERR_ARG && access(badp, F_OK) != 0,
          "store q4_0 refused: %s", shrink_last_error());
    remove(dense);
    remove(f16);
    remove(i8);
    rmdir(tmp_dir);
}

/* ==== 5. recovery keeps the zeros ============================================================ */

/* the linear matrices of a loaded model as f32 (in file order), concatenated */
static float *linear_values(const char *path, int64_t *n_out) {
    shrink_model *m = NULL;
    shrink_load_params lp = shrink_load_params_default();
    if (shrink_model_load(&m, path, &lp) != SHRINK_OK) return NULL;
    int64_t n = 0;
    float *all = NULL;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const sk_tensor *t = &m->tensors[i];
        if (t->n_dims != 2 || !strstr(t->name, "blk.")) continue;
        const int64_t rows = t->shape[0], cols = t->shape[1];
        float *grown = realloc(all, (size_t)(n + rows * cols) * sizeof *all);
        if (!grown) break;
        all = grown;
        const uint64_t rb = sk_dtype_row_bytes(t->dtype, cols);
        for (int64_t r = 0; r < rows; r++)
            sk_dtype(t->dtype)->to_f32((const uint8_t *)t->data + r * rb, all + n + r * cols, cols);
        n += rows * cols;
    }
    shrink_model_free(m);
    *n_out = n;
    return all;
}

static void test_recovery(void) {
    static char buf[2048];
    const char *model = test_need_model(buf, sizeof buf, "stories260K/stories260K.bin");
    char text[1024];
    if (!model || !test_need_asset(text, sizeof text, "prune/calib.txt")) return;
    char dir[] = "/tmp/test_sparse24_train_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    char pruned[128], out1[128], out2[128], m1[160], m2[160];
    snprintf(pruned, sizeof pruned, "%s/p50.gguf", dir);
    snprintf(out1, sizeof out1, "%s/keep", dir);
    snprintf(out2, sizeof out2, "%s/free", dir);
    snprintf(m1, sizeof m1, "%s/model.gguf", out1);
    snprintf(m2, sizeof m2, "%s/model.gguf", out2);
    shrink_prune_params pp = shrink_prune_params_default();
    pp.method = "magnitude";
    pp.sparsity = 0.5;
    shrink_prune_result pr;
    if (shrink_prune(model, pruned, &pp, &pr) != SHRINK_OK) {
        CHECK(0, "prune stories260K: %s", shrink_last_error());
        rmdir(dir);
        return;
    }
    shrink_prune_result_free(&pr);
    shrink_train_params tp = shrink_train_params_default();
    tp.data = text;
    tp.valid = text;
    tp.out_dir = out1;
    tp.steps = 6;
    tp.batch = 2;
    tp.ctx = 32;
    tp.lr = 3e-3;
    tp.wd = 0.1; /* decay must not move a held zero either */
    tp.eval_windows = 4;
    shrink_train_result tr;
    shrink_status st = shrink_train(pruned, &tp, &tr);
    CHECK(st == SHRINK_OK, "train the pruned model: %s", shrink_last_error());
    if (st == SHRINK_OK) {
        CHECK(tr.kept_sparsity && fabs(tr.sparsity - 0.5) < 1e-3 && tr.kept_zeros > 0,
              "auto keep: kept %d, sparsity %g, zeros %lld", (int)tr.kept_sparsity, tr.sparsity,
              (long long)tr.kept_zeros);
        CHECK(tr.val_loss < tr.val_loss_start - 0.05, "the loss drops: %g -> %g",
              tr.val_loss_start, tr.val_loss);
        printf("  masked training: val loss %.4f -> %.4f, %lld zeros kept\n", tr.val_loss_start,
               tr.val_loss, (long long)tr.kept_zeros);
        int64_t n0 = 0, n1 = 0;
        float *w0 = linear_values(pruned, &n0), *w1 = linear_values(m1, &n1);
        if (w0 && w1 && n0 == n1 && n0 > 0) {
            int64_t zeros = 0, lost = 0, moved = 0;
            for (int64_t k = 0; k < n0; k++) {
                if (w0[k] == 0.0f) {
                    zeros++;
                    lost += w1[k] != 0.0f;
                } else {
                    moved += w1[k] != w0[k];
                }
            }
            CHECK(zeros * 2 >= n0 - 64 && lost == 0, "%lld of %lld zeros lost", (long long)lost,
                  (long long)zeros);
            CHECK(moved > (n0 - zeros) / 2, "only %lld of %lld weights moved", (long long)moved,
                  (long long)(n0 - zeros));
        } else {
            CHECK(0, "cannot read the models back: %s", shrink_last_error());
        }
        free(w0);
        free(w1);
    }
    tp.out_dir = out2;
    tp.steps = 3;
    tp.keep_sparsity = -1;
    st = shrink_train(pruned, &tp, &tr);
    CHECK(st == SHRINK_OK && !tr.kept_sparsity, "train with keep_sparsity -1: %s",
          shrink_last_error());
    if (st == SHRINK_OK) {
        int64_t n = 0, z = 0;
        float *w = linear_values(m2, &n);
        for (int64_t k = 0; w && k < n; k++) z += w[k] == 0.0f;
        CHECK(w && z * 4 < n, "keep_sparsity -1 trains the zeros: %lld of %lld still 0",
              (long long)z, (long long)n);
        free(w);
    }
    char ck[200];
    const char *outs[2] = {out1, out2};
    for (int i = 0; i < 2; i++) {
        snprintf(ck, sizeof ck, "%s/checkpoint.bin", outs[i]);
        remove(ck);
        snprintf(ck, sizeof ck, "%s/model.gguf", outs[i]);
        remove(ck);
        rmdir(outs[i]);
    }
    remove(pruned);
    rmdir(dir);
}

int main(void) {
    test_layout();
    test_kernels();
    test_store();
    test_recovery();
    return test_summary("test_sparse24");
}
