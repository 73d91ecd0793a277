/*
 * convert.c - shrink_convert: any model shrink reads -> GGUF, a Hugging Face folder or a
 * llama2.c .bin, streaming tensor by tensor through the format writers (sk_model_write), with
 * the dtype asked for. The output appears only when complete.
 */
#include "../model/source.h"
#include "../kernels/palette.h"

shrink_convert_params shrink_convert_params_default(void) {
    shrink_convert_params p = {.to = NULL, .dtype = -1, .shard_bytes = 0,
                               .tokenizer_path = NULL, .progress = NULL, .user = NULL,
                               .allow_nonfinite = false, .head_copy = false,
                               .allow_requantize = false};
    return p;
}

/* GGUF pass-through of a quantized input: every matrix in the type its file stores it in
 * (byte for byte: same-type rows are copied), vectors f32 as always. */
static shrink_dtype keep_dtype(void *user, const sk_wtensor *t, int64_t i) {
    int d = sk_model_file_dtype(user, t);
    return t->n_dims == 1 || d < 0 ? SHRINK_DTYPE_F32 : (shrink_dtype)d;
}

/* The input's quantized tensors: the first one (NULL if none), the first whose type differs
 * from `want` (-1: any), and the quantized type holding the most bytes. */
typedef struct quant_scan {
    const sk_tensor *first, *differs;
    shrink_dtype     main;
} quant_scan;

static quant_scan scan_quantized(const struct shrink_model *m, int want) {
    quant_scan q = {NULL, NULL, SHRINK_DTYPE_F32};
    uint64_t bytes[SHRINK_DTYPE_COUNT] = {0}, best = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const sk_tensor *t = &m->tensors[i];
        /* sparse24_f16 widens to f16 exactly: written dense like a float type */
        if (!sk_dtype_quantized(t->dtype) || t->dtype == SHRINK_DTYPE_SPARSE24_F16 ||
            t->dtype == SHRINK_DTYPE_SPARSE_F16)
            continue;
        if (!q.first) q.first = t;
        if (!q.differs && (want < 0 || (int)t->dtype != want)) q.differs = t;
        bytes[t->dtype] += t->bytes;
    }
    for (int d = 0; d < SHRINK_DTYPE_COUNT; d++)
        if (bytes[d] > best) best = bytes[d], q.main = (shrink_dtype)d;
    return q;
}

/* general.file_type of a GGUF input (-1 if none or not a GGUF): a pass-through keeps it. */
static int64_t input_file_type(const struct shrink_model *m) {
    if (strcmp(m->format, "gguf") != 0 || m->n_maps != 1) return -1;
    sk_gguf *g;
    if (sk_gguf_parse(m->maps[0].data, m->maps[0].size, m->path, &g) != SHRINK_OK) return -1;
    const sk_gguf_kv *kv = sk_gguf_find(g, "general.file_type");
    int64_t ft = !kv ? -1 : kv->val.type == SK_GGUF_UINT32 ? (int64_t)kv->val.v.u
                 : kv->val.type == SK_GGUF_INT32 ? kv->val.v.i : -1;
    sk_gguf_free(g);
    return ft;
}

/* Requantizing (or widening) a quantized input only when asked, as llama-quantize does. */
static shrink_status check_requantize(const struct shrink_model *m, const char *in, int fmt,
                                      const shrink_convert_params *p, const quant_scan *q) {
    if (!q->first || p->allow_requantize) return SHRINK_OK;
    const sk_tensor *t = q->differs;
    if (p->dtype >= 0 && t)
        return sk_error(SHRINK_ERR_ARG, "%s: tensor '%s' is already %s; converting it to %s "
                        "would requantize it: add --allow-requantize, or leave out --dtype to "
                        "pass the quantized tensors through unchanged", in, t->name,
                        sk_dtype(t->dtype)->name, sk_dtype((shrink_dtype)p->dtype)->name);
    if (p->dtype < 0 && fmt != SK_FORMAT_GGUF)
        return sk_error(SHRINK_ERR_ARG, "%s: tensor '%s' is %s, which %s files cannot hold: "
                        "add --allow-requantize to write it widened to f32 (or --dtype f16 "
                        "--allow-requantize)", in, q->first->name, sk_dtype(q->first->dtype)->name,
                        fmt == SK_FORMAT_HF ? "Hugging Face" : "llama2.c");
    (void)m;
    return SHRINK_OK;
}

/* Forwards progress to the caller and remembers the bytes written. */
typedef struct conv_progress {
    const shrink_convert_params *p;
    int64_t                      done;
} conv_progress;

static void conv_progress_cb(void *user, int64_t done, int64_t total) {
    conv_progress *c = user;
    c->done = done;
    if (c->p->progress) c->p->progress(c->p->user, done, total);
}

shrink_status shrink_convert(const char *in, const char *out, const shrink_convert_params *p,
                             shrink_convert_result *r) {
    shrink_convert_params def = shrink_convert_params_default();
    if (!p) p = &def;
    if (r) memset(r, 0, sizeof *r);
    if (!in || !*in || !out || !*out)
        return sk_error(SHRINK_ERR_ARG, "convert: input and output paths are required");
    int fmt = p->to ? sk_format_parse(p->to) : (int)sk_format_from_path(out);
    if (fmt < 0)
        return sk_error(SHRINK_ERR_ARG, "convert: unknown output format '%s' (gguf, hf, "
                        "llama2c)", p->to);
    if (p->dtype < -1 || p->dtype >= SHRINK_DTYPE_COUNT)
        return sk_error(SHRINK_ERR_ARG, "convert: unknown output type %d", (int)p->dtype);
    if (p->dtype >= 0 && sk_dtype_sparse24((shrink_dtype)p->dtype))
        return sk_error(SHRINK_ERR_ARG, "%s: %s stores 2:4-pruned matrices only; write it with "
                        "shrink prune --pattern 2:4 --store %s", out, sk_dtype((shrink_dtype)p->dtype)->name,
                        sk_dtype((shrink_dtype)p->dtype)->name);
    if (p->dtype >= 0 && sk_dtype_sparse_bm((shrink_dtype)p->dtype))
        return sk_error(SHRINK_ERR_ARG, "%s: %s stores pruned matrices only; write it with "
                        "shrink prune --store %s", out, sk_dtype((shrink_dtype)p->dtype)->name,
                        sk_dtype((shrink_dtype)p->dtype)->name);
    if (p->dtype >= 0 && sk_pal_k(p->dtype))
        return sk_error(SHRINK_ERR_ARG, "convert: %s needs a k-means palette per group of "
                        "rows, which convert does not compute; use shrink quantize --scheme %s",
                        shrink_dtype_name(p->dtype), shrink_dtype_name(p->dtype));
    if (sk_same_file(in, out))
        return sk_error(SHRINK_ERR_ARG, "%s: is the input; refusing to overwrite it", out);
    double t0 = shrink_time();
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = p->tokenizer_path;
    struct shrink_model *m;
    shrink_status st = sk_model_open(&m, in, &lp);
    if (st) return st;
    if (!p->allow_nonfinite &&
        (st = sk_model_check_finite(m, "--allow-nonfinite converts it anyway"))) {
        shrink_model_free(m);
        return st;
    }
    quant_scan q = scan_quantized(m, p->dtype);
    if ((st = check_requantize(m, in, fmt, p, &q))) {
        shrink_model_free(m);
        return st;
    }
    sk_write_opts o = sk_write_opts_default();
    o.dtype = p->dtype;
    if (q.first && p->dtype < 0 && fmt == SK_FORMAT_GGUF) {
        /* pass through; general.file_type the input's, else from the type holding most bytes */
        o.tensor_dtype = keep_dtype;
        o.tensor_user = m;
        o.dtype = q.main;
        o.file_type = input_file_type(m);
    }
    o.shard_bytes = p->shard_bytes;
    o.head_copy = p->head_copy;
    conv_progress cp = {p, 0};
    o.progress = conv_progress_cb;
    o.progress_user = &cp;
    st = sk_model_write(m, out, (sk_format)fmt, &o);
    if (!st && r) {
        sk_source src;
        sk_source_from_model(m, &src);
        r->format = sk_format_name((sk_format)fmt);
        r->dtype = fmt == SK_FORMAT_LLAMA2C ? SHRINK_DTYPE_F32
                   : o.dtype >= 0           ? (shrink_dtype)o.dtype
                                            : src.dtype;
        r->n_tensors = m->n_tensors;
        r->tensor_bytes = (uint64_t)cp.done;
        sk_wtensor *ts;
        int64_t n;
        if (sk_wtensors(&m->cfg, &ts, &n) == SHRINK_OK) {
            for (int64_t i = 0; i < n; i++) r->n_params += ts[i].rows * ts[i].cols;
            sk_free(ts);
        }
        r->seconds = shrink_time() - t0;
    }
    shrink_model_free(m);
    return st;
}
