/*
 * merge.c - shrink_merge: W' = W + scale * B A of one or more LoRA adapters (model/lora.h)
 * merged into a base model, written through the format writers (GGUF, Hugging Face folder,
 * llama2.c) like shrink_convert. The base is opened without binding its weights; a source
 * wraps the model's own: the rows of an adapted projection are read as f32, the adapters'
 * B[rows] A added, and the block converted to the output dtype. Nothing holds the whole model.
 *
 * An adapter of scale 0 changes nothing and is skipped, so the output is then exactly what
 * shrink_convert writes. A quantized base needs an explicit output dtype: merging into it
 * would otherwise widen the weights to f32 silently.
 */
#include "../model/lora.h"
#include "../model/source.h"

#include <math.h>
#include <strings.h>
#include <unistd.h>

shrink_merge_params shrink_merge_params_default(void) {
    shrink_merge_params p;
    memset(&p, 0, sizeof p);
    p.dtype = -1;
    return p;
}

/* Forwards progress and remembers the bytes written. */
typedef struct merge_progress {
    const shrink_merge_params *p;
    int64_t                    done;
} merge_progress;

static void merge_progress_cb(void *user, int64_t done, int64_t total) {
    merge_progress *c = user;
    c->done = done;
    if (c->p->progress) c->p->progress(c->p->user, done, total);
}

/* The base opened without binding its weights (*m) and the adapters read and checked against
 * it (*list): what both merges start from. */
static shrink_status open_adapted(const char *base, const shrink_merge_params *p,
                                  struct shrink_model **m, sk_lora **list) {
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = p->tokenizer_path;
    shrink_status st = sk_model_open(m, base, &lp);
    if (!st) st = sk_lora_read_list(p->adapters, p->scales, p->n_adapters, &(*m)->cfg, list);
    return st;
}

/* ==== merge, then quantize ================================================================= */

static void q_progress_fwd(void *user, int phase, int64_t done, int64_t total) {
    const shrink_merge_params *p = user;
    if (p->progress && phase == 1) p->progress(p->user, done, total);
}

/* Is `scheme` one dtype for every matrix (not a llama.cpp mix)? Its dtype in *dt. */
static int single_scheme(const char *scheme, shrink_dtype *dt) {
    for (int32_t i = 0; i < shrink_quantize_scheme_count(); i++) {
        shrink_quantize_scheme_info info;
        if (shrink_quantize_scheme_get(i, &info) || strcasecmp(info.name, scheme)) continue;
        *dt = info.dtype;
        return !info.mix;
    }
    return 0;
}

/* Base (as stored) + adapters at run time, or quantized in memory to load_as first. */
static shrink_status load_adapted(shrink_model **out, const char *base,
                                  const shrink_merge_params *p, const char *load_as) {
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = p->tokenizer_path;
    lp.load_as = load_as;
    shrink_status st = shrink_model_load(out, base, &lp);
    for (int i = 0; !st && i < p->n_adapters; i++)
        st = shrink_model_add_lora(*out, p->adapters[i], p->scales ? p->scales[i] : 1.0);
    if (st) {
        shrink_model_free(*out);
        *out = NULL;
    }
    return st;
}

/* The merged-then-quantized error on p->eval_text: reference = base + adapters at run time;
 * scored with shrink_compare against the output and (a float base, a single-type scheme) the
 * base quantized to the scheme in memory with the adapters unmerged. */
static shrink_status merge_eval(const char *base, const char *out, const shrink_merge_params *p,
                                int base_quantized, shrink_merge_result *r) {
    shrink_model *ms[3] = {NULL, NULL, NULL};
    shrink_context *cs[3] = {NULL, NULL, NULL};
    char *text = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0, len = 0;
    int n = 2;
    shrink_status st = load_adapted(&ms[0], base, p, NULL);
    if (!st) {
        shrink_load_params lp = shrink_load_params_default();
        lp.tokenizer_path = p->tokenizer_path;
        st = shrink_model_load(&ms[1], out, &lp);
    }
    shrink_dtype dt;
    if (!st && !base_quantized && single_scheme(p->scheme, &dt)) {
        st = load_adapted(&ms[2], base, p, shrink_dtype_name(dt));
        n = 3;
    }
    if (!st) st = sk_read_file(p->eval_text, (size_t)1 << 30, &text, &len);
    shrink_model_info info;
    if (!st) {
        shrink_model_get_info(ms[0], &info);
        st = shrink_tokenizer_encode(shrink_model_tokenizer(ms[0]), text, len, info.add_bos,
                                     &ids, &n_ids);
        if (st) st = sk_error(st, "%s: %s", p->eval_text, shrink_last_error());
    }
    int32_t n_ctx = p->eval_ctx > 0 ? p->eval_ctx : 256;
    if (!st && n_ctx > info.max_seq_len) n_ctx = info.max_seq_len;
    for (int i = 0; !st && i < n; i++) st = shrink_context_create(&cs[i], ms[i], n_ctx, 0);
    shrink_compare_result cr[3];
    if (!st) {
        shrink_compare_params cp = shrink_compare_params_default();
        cp.n_ctx = n_ctx;
        cp.max_tokens = p->eval_tokens > 0 ? p->eval_tokens : 1024;
        st = shrink_compare(cs, n, ids, (int64_t)n_ids, &cp, cr);
    }
    if (!st) {
        r->eval_tokens = cr[0].tokens_scored;
        r->ppl_ref = cr[0].ppl;
        r->ppl_merged = cr[1].ppl;
        r->kl_merged = cr[1].kl_mean;
        r->kl_merged_se = cr[1].kl_mean_se;
        r->top1_merged = cr[1].top1_same;
        if (n == 3) {
            r->ppl_unmerged = cr[2].ppl;
            r->kl_unmerged = cr[2].kl_mean;
            r->kl_unmerged_se = cr[2].kl_mean_se;
            r->top1_unmerged = cr[2].top1_same;
        }
    }
    for (int i = 0; i < 3; i++) {
        shrink_context_free(cs[i]);
        shrink_model_free(ms[i]);
    }
    shrink_free(ids);
    sk_free(text);
    return st;
}

/* shrink_merge with a scheme: shrink_quantize with the adapters merged into the rows it reads;
 * then the weight error of the merged matrices from its tensor statistics, and the error on
 * eval_text. */
static shrink_status merge_requantize(const char *base, const char *out,
                                      const shrink_merge_params *p, shrink_merge_result *r) {
    if (p->dtype >= 0)
        return sk_error(SHRINK_ERR_ARG, "merge: give an output dtype or a scheme, not both");
    if ((p->to && sk_format_parse(p->to) != SK_FORMAT_GGUF) ||
        (!p->to && sk_format_from_path(out) != SK_FORMAT_GGUF))
        return sk_error(SHRINK_ERR_ARG, "%s: a re-quantized model is written as GGUF; name the "
                        "output *.gguf", out);
    if (p->keep_sparsity)
        return sk_error(SHRINK_ERR_ARG, "merge: keeping a pruned base's zeros is not done with "
                        "a scheme; merge with a dtype, then quantize");
    double t0 = shrink_time();
    /* the adapters are checked against the base before anything is written */
    struct shrink_model *m = NULL;
    sk_lora *list = NULL;
    shrink_quantize_result qr;
    memset(&qr, 0, sizeof qr);
    int base_quantized = 0;
    shrink_status st = open_adapted(base, p, &m, &list);
    if (st) goto out;
    for (int64_t i = 0; i < m->n_tensors; i++)
        base_quantized |= m->tensors[i].n_dims == 2 && sk_dtype_quantized(m->tensors[i].dtype);
    shrink_quantize_params qp = shrink_quantize_params_default();
    qp.scheme = p->scheme;
    qp.tokenizer_path = p->tokenizer_path;
    qp.tensor_stats = true;
    qp.allow_requantize = true; /* a QLoRA base: dequantized, merged, quantized again */
    qp.progress = q_progress_fwd;
    qp.user = (void *)(uintptr_t)p;
    qp.lora = p->adapters;
    qp.lora_scales = p->scales;
    qp.n_lora = p->n_adapters;
    if ((st = shrink_quantize(base, out, &qp, &qr))) goto out;
    r->format = sk_format_name(SK_FORMAT_GGUF);
    r->scheme = qr.scheme;
    r->bits_per_weight = qr.bits_per_weight;
    r->tensor_bytes = qr.tensor_bytes;
    r->n_merged = sk_lora_n_adapted(list, &m->cfg);
    for (const sk_lora *a = list; a; a = a->next) r->n_adapter_params += a->n_params;
    shrink_dtype dt;
    r->dtype = single_scheme(p->scheme, &dt) ? dt : SHRINK_DTYPE_COUNT;
    int64_t k = 0;
    for (int64_t i = 0; qr.tensors && i < qr.n_tensors; i++) {
        int layer, which = sk_lora_gguf_linear(qr.tensors[i].name, &layer);
        if (which < 0 || !sk_lora_adapted(list, layer, which)) continue;
        double e = qr.tensors[i].rel_rms;
        r->wrel_mean += e;
        if (e > r->wrel_max) r->wrel_max = e;
        k++;
    }
    if (k) r->wrel_mean /= (double)k;
    r->eval_tokens = 0;
    r->ppl_ref = r->ppl_merged = r->ppl_unmerged = NAN;
    r->kl_merged = r->kl_unmerged = r->kl_merged_se = r->kl_unmerged_se = NAN;
    r->top1_merged = r->top1_unmerged = NAN;
    if (p->eval_text && (st = merge_eval(base, out, p, base_quantized, r))) {
        unlink(out); /* no partial result: the error was asked for */
        goto out;
    }
    r->seconds = shrink_time() - t0;
out:
    shrink_quantize_result_free(&qr);
    sk_lora_free(list);
    shrink_model_free(m);
    return st;
}

shrink_status shrink_merge(const char *base, const char *out, const shrink_merge_params *p,
                           shrink_merge_result *r) {
    if (r) memset(r, 0, sizeof *r);
    if (!base || !*base || !out || !*out || !p)
        return sk_error(SHRINK_ERR_ARG, "merge: base, output and parameters are required");
    if (p->n_adapters < 1 || !p->adapters)
        return sk_error(SHRINK_ERR_ARG, "merge: no adapter given (--lora FILE[:SCALE])");
    int fmt = p->to ? sk_format_parse(p->to) : (int)sk_format_from_path(out);
    if (fmt < 0)
        return sk_error(SHRINK_ERR_ARG, "merge: unknown output format '%s' (gguf, hf, "
                        "llama2c)", p->to);
    if (p->dtype < -1 || p->dtype >= SHRINK_DTYPE_COUNT)
        return sk_error(SHRINK_ERR_ARG, "merge: bad dtype %d", (int)p->dtype);
    if (p->dtype >= 0 && sk_dtype_sparse24((shrink_dtype)p->dtype))
        return sk_error(SHRINK_ERR_ARG, "%s: %s stores 2:4-pruned matrices only; write it with "
                        "shrink prune --pattern 2:4 --store %s", out, sk_dtype((shrink_dtype)p->dtype)->name,
                        sk_dtype((shrink_dtype)p->dtype)->name);
    if (p->dtype >= 0 && sk_dtype_sparse_bm((shrink_dtype)p->dtype))
        return sk_error(SHRINK_ERR_ARG, "%s: %s stores pruned matrices only; write it with "
                        "shrink prune --store %s", out, sk_dtype((shrink_dtype)p->dtype)->name,
                        sk_dtype((shrink_dtype)p->dtype)->name);
    if (sk_same_file(base, out))
        return sk_error(SHRINK_ERR_ARG, "%s: is the base model; refusing to overwrite it", out);
    if (p->scheme) {
        shrink_merge_result tmp;
        if (!r) r = &tmp;
        return merge_requantize(base, out, p, r);
    }
    double t0 = shrink_time();
    struct shrink_model *m = NULL;
    sk_lora *list = NULL;
    sk_lora_merge ms;
    memset(&ms, 0, sizeof ms);
    shrink_status st = open_adapted(base, p, &m, &list);
    if (st) goto out;
    if (p->dtype < 0 && fmt != SK_FORMAT_LLAMA2C)
        for (int64_t i = 0; i < m->n_tensors; i++)
            if (m->tensors[i].n_dims == 2 && sk_dtype_quantized(m->tensors[i].dtype)) {
                st = sk_error(SHRINK_ERR_ARG, "%s: the base is quantized (tensor '%s' is %s): "
                              "merging would widen it; give the output dtype (--dtype f16, "
                              "f32, q8_0, ...)", base, m->tensors[i].name,
                              shrink_dtype_name(m->tensors[i].dtype));
                goto out;
            }
    sk_source base_src, src;
    if ((st = sk_source_from_model(m, &base_src))) goto out;
    sk_lora_merge_source(&ms, &base_src, list, p->keep_sparsity, &src);
    sk_write_opts o = sk_write_opts_default();
    o.dtype = p->dtype;
    merge_progress mp = {p, 0};
    o.progress = merge_progress_cb;
    o.progress_user = &mp;
    if ((st = sk_model_write_source(m, &src, out, (sk_format)fmt, &o))) goto out;
    if (r) {
        r->format = sk_format_name((sk_format)fmt);
        r->dtype = fmt == SK_FORMAT_LLAMA2C ? SHRINK_DTYPE_F32
                   : p->dtype >= 0          ? (shrink_dtype)p->dtype
                                            : base_src.dtype;
        r->n_merged = sk_lora_n_adapted(list, &m->cfg);
        r->tensor_bytes = (uint64_t)mp.done;
        for (const sk_lora *a = list; a; a = a->next) r->n_adapter_params += a->n_params;
        r->seconds = shrink_time() - t0;
    }
out:
    sk_lora_merge_free(&ms);
    sk_lora_free(list);
    shrink_model_free(m);
    return st;
}
