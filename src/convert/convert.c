/*
 * convert.c - shrink_convert: any model shrink reads -> GGUF, a Hugging Face folder or a
 * llama2.c .bin, streaming tensor by tensor through the format writers (sk_model_write), with
 * the dtype asked for. The output appears only when complete.
 */
#include "../model/source.h"

shrink_convert_params shrink_convert_params_default(void) {
    shrink_convert_params p = {.to = NULL, .dtype = -1, .shard_bytes = 0,
                               .tokenizer_path = NULL, .progress = NULL, .user = NULL,
                               .allow_nonfinite = false};
    return p;
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
    sk_write_opts o = sk_write_opts_default();
    o.dtype = p->dtype;
    o.shard_bytes = p->shard_bytes;
    conv_progress cp = {p, 0};
    o.progress = conv_progress_cb;
    o.progress_user = &cp;
    st = sk_model_write(m, out, (sk_format)fmt, &o);
    if (!st && r) {
        sk_source src;
        sk_source_from_model(m, &src);
        r->format = sk_format_name((sk_format)fmt);
        r->dtype = fmt == SK_FORMAT_LLAMA2C ? SHRINK_DTYPE_F32
                   : p->dtype >= 0          ? (shrink_dtype)p->dtype
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
