/*
 * test_awq.c - AWQ and SmoothQuant (src/quant/awq.c).
 *
 *   1. the scale search against the float64 reference tools/ref_check/awq_ref.py: on its random
 *      layer (tests/fixtures/awq/search.txt) the same alpha, the same scales (relative 1e-6)
 *      and the same loss per alpha (relative 1e-4);
 *   2. the clipping search never chooses a loss above no clipping's (its first candidate),
 *      measured independently as d^T H d in double;
 *   3. folding is exact: the model with the AWQ and the SmoothQuant scales folded in (f32, no
 *      clipping) gives the original's logits (max abs difference <= 1e-4) on tiny-llama-gqa
 *      (RMSNorm, GQA: o folded into v with tied scales, down folded into up) and tiny-gpt2 (LayerNorm with bias,
 *      fused qkv: o folded into v's rows and bias), and the scales are not all 1.
 * The models come from ../shared (a missing one is a failure when ../shared is present).
 */
#include "quant/awq.h"
#include "model/model.h"
#include "kernels/kernels.h"
#include "test_util.h"

#include <unistd.h>

static char tmp_dir[] = "/tmp/test_awq_XXXXXX";
static const char *FIX = "tests/fixtures/awq/search.txt";
static const char *CALIB = "tests/fixtures/prune/calib.txt";

static int read_hex(FILE *f, float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        unsigned u;
        if (fscanf(f, "%8x", &u) != 1) return 0;
        uint32_t b = u;
        memcpy(&v[i], &b, 4);
    }
    return 1;
}

static void check_reference(void) {
    FILE *f = fopen(FIX, "r");
    CHECK(f != NULL, "%s missing (tools/ref_check/awq_ref.py writes it)", FIX);
    if (!f) return;
    char line[256];
    int T = 0, cols = 0, nl = 0, r[2] = {0, 0}, grid = 0, ai = -1;
    if (!fgets(line, sizeof line, f) || !fgets(line, sizeof line, f) ||
        fscanf(f, "%d %d %d %d %d %d", &T, &cols, &nl, &r[0], &r[1], &grid) != 6 || nl != 2 ||
        T < 1 || cols < 1 || grid < 1 || grid > 100) {
        CHECK(0, "%s: bad header", FIX);
        fclose(f);
        return;
    }
    float *X = malloc((size_t)T * cols * sizeof *X);
    float *W0 = malloc((size_t)r[0] * cols * sizeof *W0);
    float *W1 = malloc((size_t)r[1] * cols * sizeof *W1);
    float *want_s = malloc((size_t)cols * sizeof *want_s), *s = malloc((size_t)cols * sizeof *s);
    float *H = malloc((size_t)cols * cols * sizeof *H);
    double *xm = calloc((size_t)cols, sizeof *xm), want_l[101], loss[101];
    int ok = X && W0 && W1 && want_s && s && H && xm && read_hex(f, X, (int64_t)T * cols) &&
             read_hex(f, W0, (int64_t)r[0] * cols) && read_hex(f, W1, (int64_t)r[1] * cols) &&
             fscanf(f, "%d", &ai) == 1 && read_hex(f, want_s, cols);
    for (int a = 0; ok && a <= grid; a++) ok = fscanf(f, "%lf", &want_l[a]) == 1;
    CHECK(ok, "%s: truncated", FIX);
    if (ok) {
        for (int a = 0; a < cols; a++) {
            for (int t = 0; t < T; t++) xm[a] += fabs((double)X[t * cols + a]);
            xm[a] /= T;
            for (int b = 0; b < cols; b++) {
                double h = 0.0;
                for (int t = 0; t < T; t++) h += (double)X[t * cols + a] * X[t * cols + b];
                H[a * cols + b] = (float)(h / T);
            }
        }
        const float *W[2] = {W0, W1};
        int64_t rows[2] = {r[0], r[1]};
        shrink_dtype dt[2] = {SHRINK_DTYPE_INT4_G32, SHRINK_DTYPE_INT4_G32};
        double alpha = -1;
        shrink_status st = sk_awq_search(W, rows, dt, 2, cols, xm, H, grid, 1, s, &alpha, loss);
        CHECK(st == SHRINK_OK, "search: %s", shrink_last_error());
        CHECK(fabs(alpha - (double)ai / grid) < 1e-12, "alpha %.3f, the reference %.3f", alpha,
              (double)ai / grid);
        double es = 0.0, el = 0.0;
        for (int j = 0; j < cols; j++) {
            double e = fabs((double)s[j] - want_s[j]) / fabs((double)want_s[j]);
            es = e > es ? e : es;
        }
        for (int a = 0; a <= grid; a++) {
            double e = fabs(loss[a] - want_l[a]) / want_l[a];
            el = e > el ? e : el;
        }
        CHECK(es <= 1e-6, "scales differ from the reference by %.3g (relative)", es);
        CHECK(el <= 1e-4, "losses differ from the reference by %.3g (relative)", el);
        CHECK(ai > 0 && want_l[ai] < 0.9 * want_l[0], "the fixture's search should beat alpha 0");

        /* clipping on the same layer: never worse than its first candidate (no clip) */
        const int64_t ng = cols / 32;
        float *clip = malloc((size_t)(r[0] * ng) * sizeof *clip);
        int64_t lowered = 0;
        st = clip ? sk_awq_clip(W0, r[0], cols, 1, SHRINK_DTYPE_INT4_G32, 1, H, 32, clip,
                                &lowered)
                  : SHRINK_ERR_NOMEM;
        CHECK(st == SHRINK_OK, "clip: %s", shrink_last_error());
        int worse = 0, row0_ok = 1;
        for (int64_t rr = 0; !st && rr < r[0]; rr++)
            for (int64_t g = 0; g < ng; g++) {
                const float *w = W0 + rr * cols + g * 32;
                float wc[32], qd[32];
                uint8_t qb[64];
                double e[2];
                for (int k = 0; k < 2; k++) {
                    const float m = k ? clip[rr * ng + g] : INFINITY;
                    for (int j = 0; j < 32; j++) wc[j] = w[j] > m ? m : w[j] < -m ? -m : w[j];
                    sk_dtype(SHRINK_DTYPE_INT4_G32)->from_f32(wc, qb, 32);
                    sk_dtype(SHRINK_DTYPE_INT4_G32)->to_f32(qb, qd, 32);
                    e[k] = 0.0;
                    for (int a = 0; a < 32; a++)
                        for (int b = 0; b < 32; b++)
                            e[k] += ((double)qd[a] - w[a]) *
                                    H[(g * 32 + a) * cols + g * 32 + b] * ((double)qd[b] - w[b]);
                }
                worse += e[1] > e[0] * (1 + 1e-9);
                if (rr == 0) row0_ok &= isinf(clip[g]) != 0;
            }
        CHECK(!st && worse == 0, "clipping made %d groups worse", worse);
        CHECK(row0_ok, "rows before row0 must not be clipped");
        CHECK(lowered > 0, "no group was clipped on a random layer");
        free(clip);
    }
    fclose(f);
    free(X);
    free(W0);
    free(W1);
    free(want_s);
    free(s);
    free(H);
    free(xm);
}

/* Logits of the first 12 tokens at every position of the model at `path`. */
static float *logits_of(const char *path, int32_t *V_out) {
    shrink_model *m = NULL;
    shrink_context *ctx = NULL;
    shrink_load_params lp = shrink_load_params_default();
    float *lg = NULL;
    shrink_status st = shrink_model_load(&m, path, &lp);
    if (!st) st = shrink_context_create(&ctx, m, 16, 16);
    if (!st) {
        int32_t ids[12];
        const int32_t V = m->cfg.vocab_size;
        for (int i = 0; i < 12; i++) ids[i] = (int32_t)((i * 37 + 5) % V);
        lg = malloc((size_t)V * 12 * sizeof *lg);
        if (lg) st = shrink_context_eval(ctx, ids, 12, 0, lg, 12);
        *V_out = V;
    }
    CHECK(!st, "%s: %s", path, shrink_last_error());
    shrink_context_free(ctx);
    shrink_model_free(m);
    if (st) {
        free(lg);
        return NULL;
    }
    return lg;
}

static void check_fold(const char *model, const char *name, sk_fold_kind kind) {
    char out[512];
    snprintf(out, sizeof out, "%s/%s-%d.gguf", tmp_dir, name, (int)kind);
    sk_fold_params p = {.kind = kind, .alpha = 0.5, .grid = 20, .clip = 0, .exact = 0,
                        .calib_path = CALIB, .calib_tokens = 256, .calib_ctx = 64};
    sk_fold_info info;
    shrink_status st = sk_fold_write_f32(model, out, &p, &info);
    CHECK(st == SHRINK_OK, "%s: fold: %s", name, shrink_last_error());
    if (st) return;
    /* llama: attn + o (GQA: tied scales) + ffn + down; gpt2: attn + o + ffn (GELU: no down) */
    const int want = kind == SK_FOLD_SMOOTH ? 2 * 2 : (strcmp(name, "llama") ? 3 : 4) * 2;
    CHECK(info.n_inputs == want, "%s: %d inputs folded, expected %d", name, (int)info.n_inputs,
          want);
    CHECK(kind == SK_FOLD_SMOOTH || info.mean_alpha > 0.0, "%s: AWQ chose alpha 0 everywhere "
          "(the folds would be trivial)", name);
    int32_t V = 0, V2 = 0;
    float *a = logits_of(model, &V), *b = logits_of(out, &V2);
    if (a && b && V == V2) {
        double mx = 0.0;
        for (int64_t i = 0; i < (int64_t)V * 12; i++) {
            double d = fabs((double)a[i] - b[i]);
            mx = d > mx ? d : mx;
        }
        CHECK(mx <= 1e-4, "%s (%s): logits differ by %.3g after folding", name,
              kind == SK_FOLD_AWQ ? "awq" : "smooth", mx);
    } else {
        CHECK(0, "%s: no logits to compare", name);
    }
    free(a);
    free(b);
    remove(out);
}

int main(void) {
    check_reference();
    if (!mkdtemp(tmp_dir)) {
        CHECK(0, "mkdtemp");
        return test_summary("test_awq");
    }
    static char b1[2048], b2[2048];
    const char *llama = test_need_model(b1, sizeof b1, "tiny-llama-gqa");
    const char *gpt2 = test_need_model(b2, sizeof b2, "tiny-gpt2");
    for (int k = SK_FOLD_AWQ; k <= SK_FOLD_SMOOTH; k++) {
        if (llama) check_fold(llama, "llama", (sk_fold_kind)k);
        if (gpt2) check_fold(gpt2, "gpt2", (sk_fold_kind)k);
    }
    rmdir(tmp_dir);
    return test_summary("test_awq");
}
