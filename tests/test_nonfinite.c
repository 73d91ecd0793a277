/*
 * test_nonfinite.c - NaN and infinities in quantized weights (docs/reliability.md section 6;
 * self-contained, no assets). A tiny llama (dim 256, one layer: every matrix row is a whole
 * number of q4_K's 256-element blocks) is written by shrink_model_init and quantized by
 * shrink_quantize to q8_0, q4_K and shrink's own int4_g32; then the f16 scale of one block of
 * one quantized matrix is forged to NaN (or +Inf) in a copy. The reference is the block format
 * itself: a block's elements are its scale times its integers, so a NaN or infinite scale
 * makes all `block` elements of that block non-finite, and nothing else.
 *
 *   - the clean quantized models load, and every tensor counts 0 (no false alarm);
 *   - the forged model: shrink_model_load refuses it naming the file and the tensor;
 *     with allow_nonfinite it loads, and shrink_model_nonfinite (what `shrink info` prints)
 *     counts exactly one block of that tensor and 0 elsewhere;
 *   - shrink_convert refuses it naming the tensor and writes nothing; allow_nonfinite
 *     converts it;
 *   - shrink_quantize (a requantization) refuses it naming the tensor and writes nothing.
 */
#include "test_util.h"

#include "model/model.h"

#include <shrink.h>
#include <unistd.h>

static char root[] = "/tmp/test_nonfinite_XXXXXX";

static int write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

/* Writes a copy of model `in` to `out` with the f16 at byte 0 of block `blk` of tensor
 * `name` set to `bits` (the scale d of q8_0, q4_K and int4_g*). Returns the tensor's block
 * size in elements, 0 on failure. */
static int forge(const char *in, const char *out, const char *name, int64_t blk,
                 uint16_t bits) {
    shrink_load_params lp = shrink_load_params_default();
    lp.allow_nonfinite = true;
    lp.no_tokenizer = true;
    shrink_model *m = NULL;
    if (shrink_model_load(&m, in, &lp) != SHRINK_OK) return 0;
    const sk_tensor *t = NULL;
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) t = &m->tensors[i];
    size_t n = 0;
    char *b = NULL;
    if (sk_read_file(in, (size_t)1 << 28, &b, &n) != SHRINK_OK) b = NULL;
    int block = 0;
    if (t && b) {
        const sk_dtype_traits *d = sk_dtype(t->dtype);
        /* the tensor's bytes are a view into the file: find them there */
        char *at = memmem(b, n, t->data, (size_t)t->bytes);
        if (at && d && (uint64_t)(blk + 1) * d->bytes <= t->bytes && d->row_head == 0) {
            memcpy(at + (size_t)blk * d->bytes, &bits, 2);
            if (write_file(out, b, n) == 0) block = (int)d->block;
        }
    }
    sk_free(b);
    shrink_model_free(m);
    return block;
}

/* Non-finite counts of every tensor of `path` (loaded with allow_nonfinite): the total, and
 * that of tensor `name` in *named. -1 if it does not load. */
static int64_t count_all(const char *path, const char *name, int64_t *named) {
    shrink_load_params lp = shrink_load_params_default();
    lp.allow_nonfinite = true;
    lp.no_tokenizer = true;
    shrink_model *m = NULL;
    if (shrink_model_load(&m, path, &lp) != SHRINK_OK) return -1;
    shrink_model_info mi;
    shrink_model_get_info(m, &mi);
    int64_t sum = 0;
    *named = -1;
    for (int64_t i = 0; i < mi.n_tensors; i++) {
        shrink_tensor_info ti;
        if (shrink_model_tensor(m, i, &ti) != SHRINK_OK) continue;
        int64_t k = shrink_model_nonfinite(m, i);
        sum += k;
        if (!strcmp(ti.name, name)) *named = k;
    }
    shrink_model_free(m);
    return sum;
}

static int has(const char *s) { return strstr(shrink_last_error(), s) != NULL; }

static void one_scheme(const char *base, const char *scheme, const char *tensor,
                       uint16_t bits) {
    char q[512], bad[512], conv[512], req[512];
    snprintf(q, sizeof q, "%s/%s.gguf", root, scheme);
    snprintf(bad, sizeof bad, "%s/%s-nan.gguf", root, scheme);
    snprintf(conv, sizeof conv, "%s/%s-conv.gguf", root, scheme);
    snprintf(req, sizeof req, "%s/%s-req.gguf", root, scheme);
    shrink_quantize_params qp = shrink_quantize_params_default();
    qp.scheme = scheme;
    shrink_status st = shrink_quantize(base, q, &qp, NULL);
    CHECK(st == SHRINK_OK, "%s: quantize: %s", scheme, shrink_last_error());
    if (st) return;

    /* clean: loads, counts nothing */
    shrink_load_params lp = shrink_load_params_default();
    lp.no_tokenizer = true;
    shrink_model *m = NULL;
    CHECK(shrink_model_load(&m, q, &lp) == SHRINK_OK, "%s: clean model refused: %s", scheme,
          shrink_last_error());
    shrink_model_free(m);
    int64_t named;
    CHECK(count_all(q, tensor, &named) == 0 && named == 0, "%s: clean model counts non-finite",
          scheme);

    /* block 3 of the tensor gets a non-finite scale */
    int block = forge(q, bad, tensor, 3, bits);
    CHECK(block > 0, "%s: cannot forge %s", scheme, tensor);
    if (!block) return;
    m = NULL;
    st = shrink_model_load(&m, bad, &lp);
    CHECK(st == SHRINK_ERR_FORMAT && !m && has(bad) && has(tensor) && has("NaN") &&
              has("--allow-nonfinite"),
          "%s: load of a NaN scale: %d %s", scheme, (int)st, shrink_last_error());
    shrink_model_free(m);
    int64_t total = count_all(bad, tensor, &named);
    CHECK(total == block && named == block, "%s: counted %lld (%lld in %s), expected one block "
          "of %d", scheme, (long long)total, (long long)named, tensor, block);

    /* convert: refused unless allowed; nothing written */
    shrink_convert_params cp = shrink_convert_params_default();
    st = shrink_convert(bad, conv, &cp, NULL);
    CHECK(st == SHRINK_ERR_FORMAT && has(tensor) && !exists(conv), "%s: convert of a NaN scale: "
          "%d %s", scheme, (int)st, shrink_last_error());
    cp.allow_nonfinite = true;
    st = shrink_convert(bad, conv, &cp, NULL);
    CHECK(st == SHRINK_OK && exists(conv), "%s: convert --allow-nonfinite: %s", scheme,
          shrink_last_error());
    if (st == SHRINK_OK)
        CHECK(count_all(conv, tensor, &named) == block, "%s: the converted copy lost the NaN",
              scheme);

    /* quantize (requantizing the forged model): refused, nothing written */
    qp.scheme = "q8_0";
    st = shrink_quantize(bad, req, &qp, NULL);
    CHECK(st != SHRINK_OK && has(tensor) && !exists(req), "%s: requantize of a NaN scale: %d %s",
          scheme, (int)st, shrink_last_error());
}

int main(void) {
    if (!mkdtemp(root)) {
        CHECK(0, "mkdtemp");
        return test_summary("test_nonfinite");
    }
    char cfg[512], base[512];
    snprintf(cfg, sizeof cfg, "%s/config.json", root);
    const char *json = "{\"model_type\": \"llama\", \"hidden_size\": 256, \"intermediate_size\": "
                       "512, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, "
                       "\"num_key_value_heads\": 4, \"vocab_size\": 256, "
                       "\"max_position_embeddings\": 64}";
    CHECK(write_file(cfg, json, strlen(json)) == 0, "write %s", cfg);
    snprintf(base, sizeof base, "%s/base.gguf", root);
    shrink_init_params ip = shrink_init_params_default();
    ip.config_path = cfg;
    ip.seed = 7;
    shrink_status st = shrink_model_init(base, &ip, NULL);
    CHECK(st == SHRINK_OK, "init: %s", shrink_last_error());
    if (st == SHRINK_OK) {
        one_scheme(base, "q8_0", "blk.0.attn_q.weight", 0x7e00);     /* NaN */
        one_scheme(base, "q4_K", "blk.0.ffn_up.weight", 0x7c00);     /* +Inf */
        one_scheme(base, "int4_g32", "blk.0.attn_v.weight", 0x7e00); /* NaN, shrink's own */
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    return test_summary("test_nonfinite");
}
