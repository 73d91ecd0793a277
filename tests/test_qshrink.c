/*
 * test_qshrink.c - shrink's own quantized types (int8_ch ... w8a8_static, enum 11..24):
 *
 *   1. the dtype rows against the layouts of docs/formats.md ("shrink's own quantized types"):
 *      block, bytes, row head, act format, functions; names and dash spellings parse;
 *   2. round trips on normal data within the row's tol_rel (relative RMS error);
 *   3. the formula in float64: every dequantized value equals d*q (etc.) recomputed here from
 *      the stored bytes with an independent decoder (f16 decoded with ldexp), and every stored
 *      code is the nearest one (clamped codes only at the range ends);
 *   4. per-tensor types share one scale across rows (tensor_range); without it they are
 *      per-channel; asym types hit min and max; nf4 values are exactly NF4[q]*d and the code
 *      table is bitsandbytes'; w8a8_static stores the given activation scale; zeros stay zeros
 *      at the zero code; to_f32_range equals the slice of to_f32;
 *   5. sk_matmul of every kernel set against sk_matmul_ref (dequantizing path);
 *   6. GGUF: hostile tensor infos with type ids 1000+ are refused with a message (row not a
 *      multiple of the block, unknown id, row count overflow); a valid one sizes rows * (head +
 *      row); shrink_convert to each type (stories260K): fallbacks where the group does not
 *      divide the rows, tensors byte-identical to direct row-by-row quantization of the f32
 *      source, the file reloads and generates greedily.
 */
#include "formats/formats.h"
#include "kernels/kernels.h"
#include "kernels/shrink_quants.h"
#include "model/model.h"
#include "test_util.h"

#include <stdint.h>

#define FIRST_OWN SHRINK_DTYPE_INT8_CH
#define N_OWN     (SHRINK_DTYPE_W8A8_STATIC - SHRINK_DTYPE_INT8_CH + 1)

/* ==== the agreed layouts (layouts.md), written out independently of the dtype table ======= */

typedef enum kind {
    K_I8,       /* head f32 d [, f32 a]; int8 q; x = d*q */
    K_U8,       /* head f32 d, f32 m; uint8 q; x = m + d*q */
    K_I4,       /* {f16 d; qs}: x = d*(q-8) */
    K_U4,       /* {f16 d; f16 m; qs}: x = d*q + m */
    K_NF4,      /* {f16 d; qs}: x = d*NF4[q] */
    K_NF4DQ,    /* head f32 D; {u8 s; qs}: x = (D*s)*NF4[q] */
} kind;

static const struct layout {
    shrink_dtype  dt;
    const char   *name;
    const char   *dash;     /* a dash spelling that must parse */
    size_t        block, bytes, head;
    kind          k;
    sk_act_format act;
    int           per_tensor; /* int8_t*: one scale in every row */
} L[N_OWN] = {
    {SHRINK_DTYPE_INT8_CH, "int8_ch", "INT8-CH", 1, 1, 4, K_I8, SK_ACT_Q8_32, 0},
    {SHRINK_DTYPE_INT8_CH_ASYM, "int8_ch_asym", "int8-ch-asym", 1, 1, 8, K_U8, SK_ACT_Q8_32, 0},
    {SHRINK_DTYPE_INT8_T, "int8_t", "int8-t", 1, 1, 4, K_I8, SK_ACT_Q8_32, 1},
    {SHRINK_DTYPE_INT8_T_ASYM, "int8_t_asym", "int8-t-asym", 1, 1, 8, K_U8, SK_ACT_Q8_32, 1},
    {SHRINK_DTYPE_INT4_G32, "int4_g32", "int4-g32", 32, 18, 0, K_I4, SK_ACT_Q8_32, 0},
    {SHRINK_DTYPE_INT4_G64, "int4_g64", "int4-g64", 64, 34, 0, K_I4, SK_ACT_Q8_32, 0},
    {SHRINK_DTYPE_INT4_G128, "int4_g128", "int4-g128", 128, 66, 0, K_I4, SK_ACT_Q8_32, 0},
    {SHRINK_DTYPE_INT4_G32_ASYM, "int4_g32_asym", "int4-g32-asym", 32, 20, 0, K_U4, SK_ACT_Q8_32, 0},
    {SHRINK_DTYPE_INT4_G64_ASYM, "int4_g64_asym", "int4-g64-asym", 64, 36, 0, K_U4, SK_ACT_Q8_32, 0},
    {SHRINK_DTYPE_INT4_G128_ASYM, "int4_g128_asym", "Int4-G128-Asym", 128, 68, 0, K_U4, SK_ACT_Q8_32, 0},
    {SHRINK_DTYPE_NF4, "nf4", "NF4", 64, 34, 0, K_NF4, SK_ACT_F32, 0},
    {SHRINK_DTYPE_NF4_DQ, "nf4_dq", "nf4-dq", 64, 33, 4, K_NF4DQ, SK_ACT_F32, 0},
    {SHRINK_DTYPE_W8A8, "w8a8", "W8A8", 1, 1, 4, K_I8, SK_ACT_I8_TOKEN, 0},
    {SHRINK_DTYPE_W8A8_STATIC, "w8a8_static", "w8a8-static", 1, 1, 8, K_I8, SK_ACT_I8_STATIC, 0},
};

/* bitsandbytes functional.py get_4bit_type("nf4"), as printed there (float64 literals) */
static const double NF4_BNB[16] = {
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
};

/* ==== an independent decoder (float64) ===================================================== */

static double half_to_double(const uint8_t *p) {
    unsigned h = (unsigned)p[0] | (unsigned)p[1] << 8;
    int e = (int)(h >> 10) & 31;
    unsigned man = h & 1023;
    double v = e == 0 ? ldexp((double)man, -24) : ldexp((double)(man | 1024), e - 25);
    if (e == 31) v = man ? NAN : INFINITY;
    return h & 0x8000 ? -v : v;
}

static double f32_at(const uint8_t *p) {
    float f;
    memcpy(&f, p, 4);
    return f;
}

/* Row decoded from its bytes: value[k], scale (the step of code k: d, or D*s, or d for nf4),
 * offset m (asym), code q[k]; `mag` = |m| + |scale * code term|, the size the f32 roundings
 * scale with. */
typedef struct decoded {
    double x, step, m, mag;
    int    q;
} decoded;

static decoded decode_at(const struct layout *l, const uint8_t *row, int64_t k) {
    decoded o = {0};
    if (l->k == K_I8 || l->k == K_U8) {
        o.step = f32_at(row);
        o.m = l->k == K_U8 ? f32_at(row + 4) : 0.0;
        o.q = l->k == K_U8 ? row[l->head + (size_t)k] : (int8_t)row[l->head + (size_t)k];
        o.x = o.m + o.step * o.q;
        o.mag = fabs(o.m) + fabs(o.step * o.q);
        return o;
    }
    int64_t g = (int64_t)l->block, b = k / g, j = k % g;
    const uint8_t *blk = row + l->head + (size_t)b * l->bytes;
    size_t qs_off = l->k == K_U4 ? 4 : l->k == K_NF4DQ ? 1 : 2;
    uint8_t byte = blk[qs_off + (size_t)(j % (g / 2))];
    o.q = j < g / 2 ? byte & 15 : byte >> 4;
    switch (l->k) {
    case K_I4:
        o.step = half_to_double(blk);
        o.x = o.step * (o.q - 8);
        break;
    case K_U4:
        o.step = half_to_double(blk);
        o.m = half_to_double(blk + 2);
        o.x = o.step * o.q + o.m;
        break;
    case K_NF4:
        o.step = half_to_double(blk);
        o.x = o.step * NF4_BNB[o.q];
        break;
    case K_NF4DQ:
        o.step = f32_at(row) * blk[0]; /* D*s, rounded to f32 as the format says */
        o.step = (float)o.step;
        o.x = o.step * NF4_BNB[o.q];
        break;
    default:
        break;
    }
    o.mag = fabs(o.m) + fabs(o.x - o.m);
    return o;
}

/* ==== data ================================================================================= */


/* rows x cols quantized row by row (p: tensor-level parameters or NULL) */
static uint8_t *quant_rows(shrink_dtype dt, const float *x, int64_t rows, int64_t cols,
                           const sk_qparams *p) {
    const sk_dtype_traits *d = sk_dtype(dt);
    uint64_t rb = sk_dtype_row_bytes(dt, cols);
    uint8_t *q = malloc((size_t)(rows * (int64_t)rb) + 1);
    for (int64_t r = 0; r < rows; r++) {
        if (p) d->quantize(x + r * cols, q + (size_t)r * rb, cols, p);
        else d->from_f32(x + r * cols, q + (size_t)r * rb, cols);
    }
    return q;
}

/* ==== 1. the table ========================================================================= */

static void test_table(void) {
    CHECK(SHRINK_DTYPE_INT8_CH == 11 && SHRINK_DTYPE_W8A8_STATIC == 24 &&
              SHRINK_DTYPE_COUNT == 35,
          "enum values 11..24 (then q2_K, q3_K, iq4_nl, sparse24_f16, sparse24_i8, pal16, pal256, pal4: test_palette.c, sparse_f16, sparse_i8: test_sparse_bm.c)");
    for (int i = 0; i < N_OWN; i++) {
        const struct layout *l = &L[i];
        CHECK((int)l->dt == (int)FIRST_OWN + i, "%s: enum order", l->name);
        const sk_dtype_traits *d = sk_dtype(l->dt);
        CHECK(!strcmp(d->name, l->name) && !strcmp(shrink_dtype_name(l->dt), l->name),
              "%s: name '%s'", l->name, d->name);
        CHECK(d->block == l->block && d->bytes == l->bytes && d->row_head == l->head,
              "%s: block %zu bytes %zu head %zu, layouts.md: %zu %zu %zu", l->name, d->block,
              d->bytes, d->row_head, l->block, l->bytes, l->head);
        CHECK(d->act == l->act, "%s: act format %d", l->name, (int)d->act);
        CHECK(d->to_f32 && d->from_f32 && d->quantize && (d->to_f32_range != NULL) == (l->head > 0),
              "%s: functions", l->name);
        CHECK(d->tol_rel > 0 && d->tol_rel < 0.2, "%s: tol_rel %g", l->name, d->tol_rel);
        CHECK(sk_dtype_quantized(l->dt), "%s: quantized", l->name);
        CHECK(sk_dtype_row_bytes(l->dt, 256) == l->head + 256 / l->block * l->bytes &&
                  sk_dtype_tensor_bytes(l->dt, 3, 256) == 3 * sk_dtype_row_bytes(l->dt, 256),
              "%s: row and tensor bytes", l->name);
        shrink_dtype got = SHRINK_DTYPE_F32;
        CHECK(shrink_dtype_parse(l->name, &got) == SHRINK_OK && got == l->dt, "parse %s",
              l->name);
        got = SHRINK_DTYPE_F32;
        CHECK(shrink_dtype_parse(l->dash, &got) == SHRINK_OK && got == l->dt, "parse %s",
              l->dash);
        CHECK(!strcmp(sk_ggml_type_name(SK_GGUF_TYPE_OWN + (uint32_t)i), l->name),
              "GGUF type %u is %s", SK_GGUF_TYPE_OWN + (uint32_t)i, l->name);
    }
    CHECK(!sk_dtype_quantized(SHRINK_DTYPE_F16) && sk_dtype_quantized(SHRINK_DTYPE_Q4_0),
          "sk_dtype_quantized of f16, q4_0");
    shrink_dtype got;
    CHECK(shrink_dtype_parse("int4_g16", &got) == SHRINK_ERR_ARG &&
              strstr(shrink_last_error(), "int4_g16") && strstr(shrink_last_error(), "nf4_dq") &&
              strstr(shrink_last_error(), "w8a8_static") &&
              strstr(shrink_last_error(), "int4_g128_asym"),
          "unknown dtype message lists the names: %s", shrink_last_error());
    CHECK(shrink_dtype_parse("a-very-long-name-that-is-not-a-dtype-at-all", &got) ==
              SHRINK_ERR_ARG, "long unknown name");
    for (int i = 0; i < 16; i++)
        CHECK(sk_nf4_values[i] == (float)NF4_BNB[i], "NF4[%d] = %.9g, bitsandbytes %.17g", i,
              (double)sk_nf4_values[i], NF4_BNB[i]);
}

/* ==== 2-3. round trips and the formula ===================================================== */

static void test_round_trip(void) {
    const int64_t rows = 16, cols = 1024;
    float *x = malloc((size_t)(rows * cols) * sizeof(float));
    float *y = malloc((size_t)(rows * cols) * sizeof(float));
    for (int64_t i = 0; i < rows * cols; i++) x[i] = 0.05f * test_rng_normal();
    for (int i = 0; i < N_OWN; i++) {
        const struct layout *l = &L[i];
        const sk_dtype_traits *d = sk_dtype(l->dt);
        uint64_t rb = sk_dtype_row_bytes(l->dt, cols);
        uint8_t *q = quant_rows(l->dt, x, rows, cols, NULL);
        double e2 = 0, x2 = 0;
        int64_t bad_formula = -1, bad_code = -1;
        for (int64_t r = 0; r < rows; r++) {
            const uint8_t *row = q + (size_t)r * rb;
            d->to_f32(row, y + r * cols, cols);
            for (int64_t k = 0; k < cols; k++) {
                double xv = x[r * cols + k], yv = y[r * cols + k];
                e2 += (yv - xv) * (yv - xv);
                x2 += xv * xv;
                decoded o = decode_at(l, row, k);
                /* dequantization = the formula on the stored fields (f32 roundings only) */
                if (!(fabs(yv - o.x) <= 2.5e-7 * o.mag + 1e-30) && bad_formula < 0)
                    bad_formula = r * cols + k;
                /* the stored code is the nearest one */
                double err = fabs(xv - o.x), ok;
                if (l->k == K_NF4 || l->k == K_NF4DQ) {
                    double v = o.step ? xv / o.step : 0, best = 1e300;
                    for (int c = 0; c < 16; c++) best = fmin(best, fabs(v - NF4_BNB[c]));
                    ok = o.step == 0 || fabs(v - NF4_BNB[o.q]) <= best + 1e-6;
                } else {
                    /* half a step, plus the clamp at the range end (scales rounded to f16) */
                    double slack = l->k == K_I4 ? 7 * o.step / 1024 : l->k == K_U4
                                   ? (fabs(o.m) + 15 * o.step) / 1024 : 1e-6 * o.mag;
                    ok = err <= 0.5 * o.step * (1 + 1e-6) + slack + 1e-30;
                }
                if (!ok && bad_code < 0) bad_code = r * cols + k;
            }
        }
        double rel = sqrt(e2 / x2);
        CHECK(rel <= d->tol_rel && rel > d->tol_rel / 4, "%s round trip: relative RMS error %g "
              "(tol_rel %g)", l->name, rel, d->tol_rel);
        if (getenv("VERBOSE")) printf("  %-15s rel RMS %.5f\n", l->name, rel);
        CHECK(bad_formula < 0, "%s: element %" PRId64 " = %.9g differs from the formula on its "
              "stored fields", l->name, bad_formula, bad_formula < 0 ? 0.0 : (double)y[bad_formula]);
        CHECK(bad_code < 0, "%s: element %" PRId64 " (%.9g) does not have the nearest code",
              l->name, bad_code, bad_code < 0 ? 0.0 : (double)x[bad_code]);
        /* to_f32_range = the slice of to_f32 */
        if (d->to_f32_range) {
            const int64_t ks[][2] = {{0, 1024}, {0, 64}, {64, 128}, {512, 512}, {960, 64}};
            for (size_t s = 0; s < sizeof ks / sizeof ks[0]; s++) {
                float part[1024];
                d->to_f32_range(q + rb, ks[s][0], ks[s][1], part);
                CHECK(!memcmp(part, y + cols + ks[s][0], (size_t)ks[s][1] * sizeof(float)),
                      "%s: to_f32_range(%" PRId64 ", %" PRId64 ") differs from to_f32", l->name,
                      ks[s][0], ks[s][1]);
            }
        }
        free(q);
    }
    free(x);
    free(y);
}

/* zeros (and a constant row for asym types) */
static void test_zeros(void) {
    float z[256] = {0}, y[256];
    uint8_t q[2048];
    for (int i = 0; i < N_OWN; i++) {
        const struct layout *l = &L[i];
        const sk_dtype_traits *d = sk_dtype(l->dt);
        memset(q, 0xAB, sizeof q);
        d->from_f32(z, q, 256);
        d->to_f32(q, y, 256);
        int nz = 0, bad_code = 0;
        for (int k = 0; k < 256; k++) {
            nz += y[k] != 0.0f;
            decoded o = decode_at(l, q, k);
            int zero = l->k == K_I8 || l->k == K_U8 || l->k == K_U4 ? 0 : l->k == K_I4 ? 8 : 7;
            bad_code += o.q != zero;
        }
        CHECK(nz == 0 && bad_code == 0, "%s: zeros give %d non-zeros, %d codes off the zero code",
              l->name, nz, bad_code);
        if (l->k == K_U8 || l->k == K_U4) {
            float c[256];
            for (int k = 0; k < 256; k++) c[k] = 0.375f;
            d->from_f32(c, q, 256);
            d->to_f32(q, y, 256);
            int off = 0;
            for (int k = 0; k < 256; k++) off += y[k] != 0.375f;
            CHECK(off == 0, "%s: a constant row is not exact (%d off)", l->name, off);
        }
    }
}

/* ==== 4. per-tensor scales, asym ends, nf4 values, the activation scale ==================== */

static void test_params(void) {
    const int64_t rows = 6, cols = 256;
    float x[6 * 256];
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < cols; k++) x[r * cols + k] = (float)(r + 1) * 0.1f * test_rng_normal();
    float tmin = x[0], tmax = x[0];
    for (int64_t i = 0; i < rows * cols; i++) {
        tmin = fminf(tmin, x[i]);
        tmax = fmaxf(tmax, x[i]);
    }
    sk_qparams p = {.tensor_range = 1, .tmin = tmin, .tmax = tmax};
    for (int asym = 0; asym < 2; asym++) {
        shrink_dtype dt = asym ? SHRINK_DTYPE_INT8_T_ASYM : SHRINK_DTYPE_INT8_T;
        shrink_dtype ch = asym ? SHRINK_DTYPE_INT8_CH_ASYM : SHRINK_DTYPE_INT8_CH;
        uint64_t rb = sk_dtype_row_bytes(dt, cols);
        uint8_t *q = quant_rows(dt, x, rows, cols, &p);
        float d0 = asym ? (tmax - tmin) / 255.0f : fmaxf(fabsf(tmin), fabsf(tmax)) / 127.0f;
        int same = 1;
        for (int64_t r = 0; r < rows; r++) {
            same &= (float)f32_at(q + (size_t)r * rb) == d0;
            if (asym) same &= (float)f32_at(q + (size_t)r * rb + 4) == tmin;
        }
        CHECK(same, "%s: every row holds the tensor's scale %g%s", sk_dtype(dt)->name,
              (double)d0, asym ? " and min" : "");
        /* the extremes of the tensor are reproduced; every element within half a step */
        float *y = malloc((size_t)(rows * cols) * sizeof(float));
        for (int64_t r = 0; r < rows; r++)
            sk_dtype(dt)->to_f32(q + (size_t)r * rb, y + r * cols, cols);
        double worst = 0;
        for (int64_t i = 0; i < rows * cols; i++) worst = fmax(worst, fabs((double)y[i] - x[i]));
        CHECK(worst <= 0.5 * d0 * (1 + 1e-5), "%s: worst error %g > half step %g",
              sk_dtype(dt)->name, worst, 0.5 * d0);
        free(y);
        /* without tensor parameters: per channel, the same bytes as the _ch type */
        uint8_t *a = quant_rows(dt, x, rows, cols, NULL), *b = quant_rows(ch, x, rows, cols, NULL);
        CHECK(!memcmp(a, b, (size_t)(rows * (int64_t)rb)), "%s without tensor_range = %s",
              sk_dtype(dt)->name, sk_dtype(ch)->name);
        CHECK(f32_at(a) != f32_at(a + (rb * 5)), "%s without tensor_range: per-row scales",
              sk_dtype(dt)->name);
        free(a);
        free(b);
        free(q);
    }

    /* asym: min and max of each row (int8) / block (int4) are hit within rounding */
    static const shrink_dtype asyms[] = {SHRINK_DTYPE_INT8_CH_ASYM, SHRINK_DTYPE_INT4_G32_ASYM,
                                         SHRINK_DTYPE_INT4_G64_ASYM, SHRINK_DTYPE_INT4_G128_ASYM};
    for (size_t a = 0; a < sizeof asyms / sizeof asyms[0]; a++) {
        const sk_dtype_traits *d = sk_dtype(asyms[a]);
        float row[256], y[256];
        for (int k = 0; k < 256; k++) row[k] = 0.3f + 0.02f * test_rng_normal(); /* offset: m != 0 */
        uint8_t q[512];
        d->from_f32(row, q, 256);
        d->to_f32(q, y, 256);
        int64_t g = d->block > 1 ? (int64_t)d->block : 256;
        int bad = 0;
        for (int64_t b0 = 0; b0 < 256; b0 += g) {
            int64_t imin = b0, imax = b0;
            for (int64_t k = b0; k < b0 + g; k++) {
                if (row[k] < row[imin]) imin = k;
                if (row[k] > row[imax]) imax = k;
            }
            /* f32 scales (int8): ~1 ulp; f16 scales (int4): half an f16 ulp of m and 15*d */
            double tol = d->block > 1 ? (fabs(row[imin]) + fabs(row[imax])) / 1024 : 1e-6;
            bad += fabs((double)y[imin] - row[imin]) > tol ||
                   fabs((double)y[imax] - row[imax]) > tol;
            if (d->block == 1) bad += y[imin] != row[imin]; /* m = min exactly */
        }
        CHECK(bad == 0, "%s: min/max not hit (%d)", d->name, bad);
    }

    /* nf4: every value is exactly NF4[q] * d (f32 product) for the stored code and scale */
    {
        float row[256], y[256];
        for (int k = 0; k < 256; k++) row[k] = test_rng_normal();
        uint8_t q[512];
        for (int t = 0; t < 2; t++) {
            shrink_dtype dt = t ? SHRINK_DTYPE_NF4_DQ : SHRINK_DTYPE_NF4;
            const struct layout *l = &L[dt - FIRST_OWN];
            sk_dtype(dt)->from_f32(row, q, 256);
            sk_dtype(dt)->to_f32(q, y, 256);
            int bad = 0, used[16] = {0};
            for (int k = 0; k < 256; k++) {
                decoded o = decode_at(l, q, k);
                bad += y[k] != (float)o.step * sk_nf4_values[o.q];
                used[o.q] = 1;
            }
            int n_used = 0;
            for (int c = 0; c < 16; c++) n_used += used[c];
            CHECK(bad == 0 && n_used >= 14, "%s: %d values are not NF4[q]*scale (%d codes used)",
                  l->name, bad, n_used);
        }
        /* nf4_dq: D = row absmax / 255, s >= 1 for a non-zero block, s = 255 for the largest */
        float row2[128];
        for (int k = 0; k < 128; k++) row2[k] = k < 64 ? 1e-6f * test_rng_normal() : test_rng_normal();
        sk_dtype(SHRINK_DTYPE_NF4_DQ)->from_f32(row2, q, 128);
        CHECK(q[4] >= 1 && q[4 + 33] == 255, "nf4_dq: block scales %u, %u", q[4], q[4 + 33]);
    }

    /* w8a8_static stores the activation scale given (0 without one) in every row */
    {
        sk_qparams pa = {.act_scale = 0.0123f};
        uint64_t rb = sk_dtype_row_bytes(SHRINK_DTYPE_W8A8_STATIC, cols);
        uint8_t *q = quant_rows(SHRINK_DTYPE_W8A8_STATIC, x, rows, cols, &pa);
        uint8_t *c = quant_rows(SHRINK_DTYPE_INT8_CH, x, rows, cols, NULL);
        int ok = 1;
        for (int64_t r = 0; r < rows; r++) {
            ok &= (float)f32_at(q + (size_t)r * rb + 4) == 0.0123f;
            /* the weights are int8_ch's: same d, same codes */
            ok &= !memcmp(q + (size_t)r * rb, c + (size_t)r * (rb - 4), 4) &&
                  !memcmp(q + (size_t)r * rb + 8, c + (size_t)r * (rb - 4) + 4, (size_t)cols);
        }
        CHECK(ok, "w8a8_static: act scale 0.0123 and int8_ch weights in every row");
        free(q);
        q = quant_rows(SHRINK_DTYPE_W8A8_STATIC, x, 1, cols, NULL);
        CHECK(f32_at(q + 4) == 0.0, "w8a8_static without params: a = 0");
        free(q);
        free(c);
    }
}

/* ==== 5. matmul ============================================================================ */

static void check_matmul(shrink_dtype dt, int64_t rows, int64_t cols, int64_t T) {
    const sk_dtype_traits *d = sk_dtype(dt);
    float *wf = malloc((size_t)(rows * cols) * sizeof(float));
    for (int64_t i = 0; i < rows * cols; i++) wf[i] = test_rng_normal();
    float *X = malloc((size_t)(T * cols) * sizeof(float));
    for (int64_t i = 0; i < T * cols; i++) X[i] = test_rng_normal();
    /* w8a8_static: the activation scale calibrated on X (absmax / 127) */
    float amax = 0;
    for (int64_t i = 0; i < T * cols; i++) amax = fmaxf(amax, fabsf(X[i]));
    sk_qparams p = {.act_scale = amax / 127.0f};
    uint8_t *w = quant_rows(dt, wf, rows, cols, &p);
    uint64_t rb = sk_dtype_row_bytes(dt, cols);
    for (int64_t r = 0; r < rows; r++) d->to_f32(w + (size_t)r * rb, wf + r * cols, cols);
    /* int8 activations (w8a8*: any T) or a quantized-activation dot (T == 1 with vec_dot_ref
     * when the act block divides cols): the activation rounding bounds the difference (test_qdot
     * checks those kernels); otherwise the dequantizing GEMV/GEMM, as exact as f32 */
    int qact = d->act == SK_ACT_I8_TOKEN || d->act == SK_ACT_I8_STATIC ||
               (T == 1 && d->vec_dot_ref && cols % sk_act_block(d->act) == 0);
    float *Y = malloc((size_t)(T * rows) * sizeof(float)), *R = malloc((size_t)(T * rows) * 4);
    sk_mat W = {.dtype = dt, .rows = rows, .cols = cols, .data = w};
    sk_matmul_ref(&W, X, T, R, rows);
    int bad = 0;
    /* the reference against the f32 widening (row heads and offsets right) */
    for (int64_t t = 0; t < T && !bad; t++)
        for (int64_t r = 0; r < rows && !bad; r++) {
            double acc = 0, mag = 0;
            for (int64_t k = 0; k < cols; k++) {
                acc += (double)wf[r * cols + k] * X[t * cols + k];
                mag += fabs((double)wf[r * cols + k] * X[t * cols + k]);
            }
            bad = !(fabs(acc - R[t * rows + r]) <= 1e-5 * mag + 1e-30);
        }
    CHECK(!bad, "matmul_ref %s %" PRId64 "x%" PRId64 " T=%" PRId64 " vs float64", d->name, rows,
          cols, T);
    for (int l = 0; l < SK_ISA_COUNT; l++) {
        const sk_kernel_set *ks = sk_kernels_get((sk_isa)l);
        if (!ks) continue;
        sk_matmul_with(ks, &W, X, T, Y, rows);
        bad = 0;
        for (int64_t t = 0; t < T && !bad; t++)
            for (int64_t r = 0; r < rows && !bad; r++) {
                double mag = 0;
                for (int64_t k = 0; k < cols; k++)
                    mag += fabs((double)wf[r * cols + k] * X[t * cols + k]);
                double err = fabs((double)Y[t * rows + r] - R[t * rows + r]);
                /* with a quantized-activation dot (vec_dot_ref set): that kernel's own tests;
                 * here the activation rounding bounds it */
                double tol = qact ? 2e-2 * mag + 1e-30 : 1e-5 * mag + 1e-30;
                if (!(err <= tol)) {
                    bad = 1;
                    fprintf(stderr, "  %s %s: Y[%" PRId64 ",%" PRId64 "] = %g, ref %g\n",
                            ks->name, d->name, t, r, (double)Y[t * rows + r],
                            (double)R[t * rows + r]);
                }
            }
        CHECK(!bad, "matmul %s %s %" PRId64 "x%" PRId64 " T=%" PRId64, ks->name, d->name, rows,
              cols, T);
    }
    free(wf); free(w); free(X); free(Y); free(R);
}

static void test_matmul(void) {
    static const int64_t shapes[][3] = {
        {1, 256, 1}, {17, 256, 1}, {33, 512, 3}, {70, 768, 1}, {40, 2304, 1}, {35, 768, 20},
        {9, 4352, 2}, {21, 384, 5},
    };
    /* rows not a multiple of 32 (block-1 types): the dequantizing GEMV through to_f32_range,
     * a second 2048-element chunk at k0 = 2048 */
    static const int64_t odd[][3] = {{7, 100, 1}, {5, 2100, 1}, {6, 2100, 3}, {3, 33, 2}};
    for (int i = 0; i < N_OWN; i++) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            check_matmul(L[i].dt, shapes[s][0], shapes[s][1], shapes[s][2]);
        for (size_t s = 0; L[i].block == 1 && s < sizeof odd / sizeof odd[0]; s++)
            check_matmul(L[i].dt, odd[s][0], odd[s][1], odd[s][2]);
    }
}

/* ==== 6. GGUF ============================================================================== */

typedef struct gb {
    uint8_t p[4096];
    size_t  n;
} gb;
static void put(gb *b, const void *x, size_t n) {
    memcpy(b->p + b->n, x, n);
    b->n += n;
}
static void u32(gb *b, uint32_t v) { put(b, &v, 4); }
static void u64(gb *b, uint64_t v) { put(b, &v, 8); }

/* A GGUF with one tensor "w" of `type` and dims ne[0..n_dims), data `data_bytes` long. */
static gb one_tensor(uint32_t type, int n_dims, const uint64_t *ne, size_t data_bytes) {
    gb b = {.n = 0};
    u32(&b, SK_GGUF_MAGIC);
    u32(&b, 3);
    u64(&b, 1);
    u64(&b, 0);
    u64(&b, 1);
    put(&b, "w", 1);
    u32(&b, (uint32_t)n_dims);
    for (int d = 0; d < n_dims; d++) u64(&b, ne[d]);
    u32(&b, type);
    u64(&b, 0);
    while (b.n % 32) put(&b, "", 1);
    memset(b.p + b.n, 0, data_bytes);
    b.n += data_bytes;
    return b;
}

static void test_gguf_hostile(void) {
    static const struct {
        uint32_t    type;
        int         n_dims;
        uint64_t    ne[3];
        size_t      data;
        const char *want; /* in the message; NULL: valid */
        uint64_t    bytes;
    } rows[] = {
        {1000, 2, {10, 3}, 42, NULL, 3 * (4 + 10)},               /* int8_ch: 3 rows of 4+10 */
        {1001, 2, {10, 3}, 54, NULL, 3 * (8 + 10)},               /* int8_ch_asym */
        {1011, 2, {128, 2}, 2 * (4 + 66), NULL, 2 * (4 + 2 * 33)}, /* nf4_dq */
        {1006, 2, {256, 2}, 264, NULL, 2 * 2 * 66},               /* int4_g128 */
        {1011, 1, {128}, 4 + 66, NULL, 4 + 66},                   /* a vector is one row */
        {1004, 2, {48, 2}, 64, "not a multiple of the int4_g32 block size 32", 0},
        {1006, 2, {64, 2}, 64, "not a multiple of the int4_g128 block size 128", 0},
        {1011, 2, {100, 1}, 64, "not a multiple of the nf4_dq block size 64", 0},
        {1021, 2, {16, 1}, 64, "unknown ggml type 1021", 0}, /* after the sparse24, pal, sparse types */
        {999, 2, {16, 1}, 64, "unknown ggml type 999", 0},
        {1000, 3, {0, 1ull << 62, 1ull << 62}, 0, "row count overflows", 0},
        {1000, 2, {10, 3}, 41, "outside the data section", 0},    /* one byte short */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        gb b = one_tensor(rows[i].type, rows[i].n_dims, rows[i].ne, rows[i].data);
        sk_gguf *g = NULL;
        size_t live = sk_alloc_bytes_live();
        shrink_status st = sk_gguf_parse(b.p, b.n, "own.gguf", &g);
        if (!rows[i].want) {
            CHECK(st == SHRINK_OK && g && g->tensors[0].bytes == rows[i].bytes,
                  "row %zu (type %u): %s, bytes %llu (want %llu)", i, rows[i].type,
                  st ? shrink_last_error() : "ok",
                  g ? (unsigned long long)g->tensors[0].bytes : 0ull,
                  (unsigned long long)rows[i].bytes);
        } else {
            CHECK(st != SHRINK_OK && !g && strstr(shrink_last_error(), "own.gguf") &&
                      strstr(shrink_last_error(), rows[i].want),
                  "row %zu (type %u): want '%s', got '%s'", i, rows[i].type, rows[i].want,
                  st ? shrink_last_error() : "ok");
        }
        sk_gguf_free(g);
        CHECK(sk_alloc_bytes_live() == live, "row %zu leaks", i);
    }
}

/* The dtype a matrix with rows of `cols` is written in when `want` is asked for (docs/formats.md,
 * written out here independently of gguf.c). */
static shrink_dtype want_fallback(shrink_dtype want, int64_t cols) {
    static const struct { shrink_dtype from, to; } chain[] = {
        {SHRINK_DTYPE_INT4_G128, SHRINK_DTYPE_INT4_G64},
        {SHRINK_DTYPE_INT4_G64, SHRINK_DTYPE_INT4_G32},
        {SHRINK_DTYPE_INT4_G32, SHRINK_DTYPE_INT8_CH},
        {SHRINK_DTYPE_INT4_G128_ASYM, SHRINK_DTYPE_INT4_G64_ASYM},
        {SHRINK_DTYPE_INT4_G64_ASYM, SHRINK_DTYPE_INT4_G32_ASYM},
        {SHRINK_DTYPE_INT4_G32_ASYM, SHRINK_DTYPE_INT8_CH_ASYM},
        {SHRINK_DTYPE_NF4, SHRINK_DTYPE_INT4_G32},
        {SHRINK_DTYPE_NF4_DQ, SHRINK_DTYPE_INT4_G32},
    };
    while (cols % (int64_t)L[want - FIRST_OWN].block) {
        size_t c = 0;
        while (chain[c].from != want) c++;
        want = chain[c].to;
    }
    return want;
}

static const sk_tensor *find_t(const struct shrink_model *m, const char *name) {
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

/* The first n greedy tokens from BOS; 0 on an error or a non-finite logit. */
static int greedy(shrink_model *m, int32_t *ids, int n) {
    shrink_context *ctx;
    if (shrink_context_create(&ctx, m, 64, 1) != SHRINK_OK) return 0;
    float logits[512];
    int32_t id = 1;
    int ok = 1;
    for (int pos = 0; pos < n && ok; pos++) {
        if (shrink_context_eval(ctx, &id, 1, pos, logits, 1) != SHRINK_OK) ok = 0;
        int32_t best = 0;
        for (int v = 0; v < 512 && ok; v++) {
            if (!isfinite(logits[v])) ok = 0;
            if (logits[v] > logits[best]) best = v;
        }
        ids[pos] = id = best;
    }
    shrink_context_free(ctx);
    return ok;
}

static void test_gguf_convert(void) {
    char src[1024];
    if (!test_need_asset(src, sizeof src, "fixtures/gguf/stories260K.gguf")) return;
    char dir[] = "/tmp/shrink_qshrink_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    if (strstr(dir, "XXXXXX")) return;
    shrink_model *f;
    if (shrink_model_load(&f, src, NULL) != SHRINK_OK) {
        CHECK(0, "load %s: %s", src, shrink_last_error());
        return;
    }
    int32_t ref[8];
    CHECK(greedy(f, ref, 8), "f32 greedy");
    for (int i = 0; i < N_OWN; i++) {
        const struct layout *l = &L[i];
        char out[1100];
        snprintf(out, sizeof out, "%s/%s.gguf", dir, l->name);
        shrink_convert_params cp = shrink_convert_params_default();
        cp.dtype = l->dt;
        shrink_status st = shrink_convert(src, out, &cp, NULL);
        CHECK(st == SHRINK_OK, "convert to %s: %s", out, shrink_last_error());
        shrink_model *m;
        if (st || shrink_model_load(&m, out, NULL) != SHRINK_OK) {
            CHECK(0, "reload %s: %s", out, shrink_last_error());
            continue;
        }
        /* every matrix: the expected (fallback) dtype, bytes = row-by-row from_f32 of the f32
         * source; vectors stay f32 */
        int n_mat = 0, n_fallback = 0;
        for (int64_t t = 0; t < f->n_tensors; t++) {
            const sk_tensor *a = &f->tensors[t], *b = find_t(m, a->name);
            if (!b && f->cfg.tied && !strcmp(a->name, "output.weight")) continue; /* tied */
            if (!b) {
                CHECK(0, "%s: no tensor %s", out, a->name);
                continue;
            }
            if (a->n_dims == 1) {
                CHECK(b->dtype == SHRINK_DTYPE_F32 && b->bytes == a->bytes &&
                          !memcmp(a->data, b->data, (size_t)a->bytes),
                      "%s: vector %s", out, a->name);
                continue;
            }
            int64_t rows = a->shape[0], cols = a->shape[1];
            shrink_dtype want = want_fallback(l->dt, cols);
            n_mat++;
            n_fallback += want != l->dt;
            CHECK(a->dtype == SHRINK_DTYPE_F32 && b->dtype == want, "%s: %s is %s, want %s", out,
                  a->name, shrink_dtype_name(b->dtype), shrink_dtype_name(want));
            float *tmp = malloc((size_t)(rows * cols) * sizeof(float));
            memcpy(tmp, a->data, (size_t)(rows * cols) * sizeof(float));
            uint8_t *q = quant_rows(want, tmp, rows, cols, NULL);
            uint64_t tb = sk_dtype_tensor_bytes(want, rows, cols);
            CHECK(b->bytes == tb && !memcmp(q, b->data, (size_t)tb),
                  "%s: %s bytes differ from direct quantization", out, a->name);
            free(q);
            free(tmp);
        }
        CHECK(n_mat > 0 && (l->block == 1 ? n_fallback == 0 : n_fallback > 0),
              "%s: %d matrices, %d fallbacks", out, n_mat, n_fallback);
        int32_t ids[8];
        CHECK(greedy(m, ids, 8), "%s: greedy generation", out);
        if (getenv("VERBOSE")) {
            int same = 0;
            for (int k = 0; k < 8; k++) same += ids[k] == ref[k];
            printf("  %-15s %d/8 greedy tokens as f32\n", l->name, same);
        }
        shrink_model_free(m);
        remove(out);
    }
    shrink_model_free(f);
    remove(dir);
}

int main(void) {
    test_table();
    test_round_trip();
    test_zeros();
    test_params();
    test_matmul();
    test_gguf_hostile();
    test_gguf_convert();
    return test_summary("test_qshrink");
}
