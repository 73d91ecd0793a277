/*
 * train_api.c - the public face of training (include/shrink.h): shrink_tokenize_file and
 * shrink_train, which opens the model and the data, builds the fp32 parameter table
 * (train.h), runs the loop (loop.c) with checkpoints (checkpoint.c) and writes the final
 * model through the format writers (formats.h). Options and files: docs/training.md.
 */
#include "optim.h"

#include "../model/model.h"

#include "../tokenizer/tokenizer.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <sys/stat.h>
#include <unistd.h>

shrink_status shrink_tokenize_file(const shrink_tokenizer *tok, const char *text_path,
                                   const char *out, bool add_bos, int64_t *n_tokens) {
    if (!tok || !text_path || !out)
        return sk_error(SHRINK_ERR_ARG, "tokenize: a text, a tokenizer and an output are needed");
    if (sk_same_file(text_path, out))
        return sk_error(SHRINK_ERR_ARG, "%s: is the text file %s; refusing to overwrite an "
                        "input", out, text_path);
    sk_tokens t;
    shrink_status st = sk_tokens_open(&t, text_path, tok, add_bos,
                                      shrink_tokenizer_vocab_size(tok));
    if (st) return st;
    if (!t.ids) {
        sk_tokens_close(&t);
        return sk_error(SHRINK_ERR_ARG, "%s: is a token file already, not text", text_path);
    }
    st = sk_tokfile_write(out, t.ids, t.n, t.vocab_size);
    if (!st && n_tokens) *n_tokens = t.n;
    sk_tokens_close(&t);
    return st;
}

shrink_train_params shrink_train_params_default(void) {
    sk_train_opts o = sk_train_opts_default();
    return (shrink_train_params){
        .steps        = o.steps,
        .batch        = o.batch,
        .ctx          = o.ctx,
        .accum        = o.accum,
        .lr           = o.sched.lr,
        .clip         = o.clip,
        .eval_windows = o.eval_windows,
        .alpha        = 0.5,
        .temperature  = 1.0,
    };
}

/* ==== options ============================================================================= */

static shrink_status make_opts(const shrink_train_params *p, sk_train_opts *o) {
    *o = sk_train_opts_default();
    int sched = p->schedule ? sk_sched_parse(p->schedule) : SK_SCHED_COSINE;
    int optim = p->optimizer ? sk_optim_parse(p->optimizer) : SK_OPTIM_ADAMW;
    if (sched < 0)
        return sk_error(SHRINK_ERR_ARG, "train: schedule '%s' is not constant, cosine or "
                        "linear", p->schedule);
    if (optim < 0)
        return sk_error(SHRINK_ERR_ARG, "train: optimizer '%s' is not adamw or sgd",
                        p->optimizer);
    if (!(p->lr > 0) || p->lr_min < 0 || p->wd < 0 || p->clip < 0 || p->momentum < 0 ||
        p->warmup < 0 || p->eval_every < 0 || p->save_every < 0)
        return sk_error(SHRINK_ERR_ARG, "train: lr %g, lr_min %g, wd %g, clip %g, "
                        "momentum %g, warmup %" PRId64 ": none may be negative (lr > 0)", p->lr,
                        p->lr_min, p->wd, p->clip, p->momentum, p->warmup);
    o->steps          = p->steps;
    o->batch          = p->batch;
    o->ctx            = p->ctx;
    o->accum          = p->accum;
    o->sched.kind     = (sk_sched_kind)sched;
    o->sched.lr       = p->lr;
    o->sched.lr_min   = p->lr_min;
    o->sched.warmup   = p->warmup;
    o->optim.kind     = (sk_optim_kind)optim;
    o->optim.wd       = p->wd;
    o->optim.momentum = p->momentum;
    o->clip           = p->clip;
    o->seed           = p->seed;
    o->sequential     = p->sequential;
    o->eval_every     = p->eval_every;
    o->eval_windows   = p->eval_windows > 0 ? p->eval_windows : 16;
    o->save_every     = p->save_every;
    o->log            = p->log;
    o->user           = p->user;
    const shrink_train_comm *c = p->comm && p->comm->n_ranks > 1 ? p->comm : NULL;
    if (c) {
        if (o->accum <= 1) o->accum = c->n_ranks;   /* one micro-batch per rank */
        o->comm = c;
        if (c->rank != 0) o->log = NULL;            /* rank 0 reports */
    }
    return SHRINK_OK;
}

/* Data parallelism: every rank must run the same options on the same inputs. The hash covers
 * the trajectory-defining options (the checkpoint's config text) and each input's path, size
 * and modification time. */
static shrink_status ranks_agree(const sk_train_opts *o, const sk_trainer *tr,
                                 const char *model_path, const shrink_train_params *p) {
    if (!o->comm || !o->comm->agree) return SHRINK_OK;
    uint64_t h = sk_hash_str(SK_HASH64_INIT, tr->config);
    const char *in[4] = {model_path, p->data, p->valid, p->teacher};
    for (int i = 0; i < 4; i++) h = sk_hash_file_id(h, in[i]);
    return o->comm->agree(o->comm->user, h);
}

/* The output format: --to, else the input's ("safetensors" is a Hugging Face folder). */
static shrink_status out_format(const shrink_train_params *p, const struct shrink_model *m,
                                sk_format *fmt) {
    if (p->qat && p->to && strcmp(p->to, "gguf"))
        return sk_error(SHRINK_ERR_ARG, "train: --qat writes the real quantized model, and only "
                        "GGUF holds its types: --to %s cannot", p->to);
    const char *name = p->qat ? "gguf" : p->to ? p->to : !strcmp(m->format, "safetensors") ? "hf"
                                                                                   : m->format;
    int f = sk_format_parse(name);
    if (f < 0)
        return sk_error(SHRINK_ERR_ARG, "train: output format '%s' is not gguf, hf or "
                        "llama2c", name);
    *fmt = (sk_format)f;
    return SHRINK_OK;
}

/* Creates the output folder if missing; *listed is then its slot in the table of temporaries
 * (out.h), so that a signal removes it while it is still empty. */
static shrink_status make_dir(const char *dir, int *created, int *listed) {
    if (sk_dir_exists(dir)) return SHRINK_OK;
    if (mkdir(dir, 0777) != 0)
        return sk_error(SHRINK_ERR_IO, "%s: cannot create the folder: %s", dir, strerror(errno));
    *created = 1;
    *listed = sk_tmp_list(dir, 1);
    return SHRINK_OK;
}

/* ==== the final model ===================================================================== */

/* A llama2.c .bin holds no tokenizer: copy the input's tokenizer .bin beside the output (as
 * <out_dir>/tokenizer.bin) so the model loads with it. Nothing to do for other tokenizers. */
static shrink_status copy_llama2c_tokenizer(const struct shrink_model *m, const char *out_dir) {
    const char *from = m->tok ? m->tok->what : NULL;
    size_t      len  = from ? strlen(from) : 0;
    if (len < 4 || strcmp(from + len - 4, ".bin") || !sk_file_exists(from)) return SHRINK_OK;
    char  *data;
    size_t n;
    shrink_status st = sk_read_file(from, (size_t)1 << 30, &data, &n);
    if (st) return st;
    char *to = sk_path_join(out_dir, "tokenizer.bin");
    sk_out o;
    if (!to) st = sk_error(SHRINK_ERR_NOMEM, "train: out of memory");
    else if (!sk_same_file(from, to) && !(st = sk_out_open(&o, to, NULL, 0)) &&
             !(st = sk_out_write(&o, data, n)))
        st = sk_out_commit(&o);
    sk_free(to);
    sk_free(data);
    return st;
}

static shrink_status save_model(const sk_train_model *tm, const struct shrink_model *m,
                                const char *out_dir, sk_format fmt, shrink_train_result *r) {
    static const char *const names[SK_FORMAT_COUNT] = {
        [SK_FORMAT_GGUF] = "model.gguf", [SK_FORMAT_HF] = "model",
        [SK_FORMAT_LLAMA2C] = "model.bin"};
    char *out = sk_path_join(out_dir, names[fmt]);
    char *dir = m->path ? (sk_dir_exists(m->path) ? sk_strdup(m->path) : sk_path_dir(m->path))
                        : NULL;
    if (!out || (m->path && !dir)) {
        sk_free(out);
        sk_free(dir);
        return sk_error(SHRINK_ERR_NOMEM, "train: out of memory");
    }
    sk_source src;
    sk_train_source(tm, &src);
    src.tok = m->tok;
    if (dir && !strcmp(m->format, "safetensors")) src.tok_dir = dir;
    const char *inputs[2] = {m->path, dir};
    src.inputs   = inputs;
    src.n_inputs = dir ? 2 : 0;
    sk_write_opts wo = sk_write_opts_default();
    if (tm->qat) sk_qat_write_opts(tm, &wo); /* the real quantized model */
    shrink_status st = sk_write(&src, out, fmt, &wo);
    if (!st && fmt == SK_FORMAT_LLAMA2C) st = copy_llama2c_tokenizer(m, out_dir);
    snprintf(r->model_out, sizeof r->model_out, "%s", out);
    r->format = sk_format_name(fmt);
    sk_free(out);
    sk_free(dir);
    return st;
}

/* ==== shrink_train ======================================================================== */

typedef struct run {
    struct shrink_model *teacher;
    sk_distill_opts      dopts;
    sk_tcache            tcache;
    struct shrink_model *m;
    sk_train_model      *tm;
    sk_tokens            train, valid;
    sk_trainer          *tr;
    char                *ckpt;
    int                  dir_created;  /* run_open created the output folder */
    int                  dir_listed;   /* its slot in the table of temporaries (out.h) */
    struct sk_lora_train *lora;        /* LoRA training (lora.c), or NULL */
    char                 lora_cfg[224];
    char                 extra[512];    /* the checkpoint's extra options text */
    uint8_t             *keep_mask;    /* keep_sparsity: 1 = trainable, per linear matrix */
    int64_t              kept_zeros;
    double               sparsity;
} run;

static void run_free(run *r) {
    sk_trainer_free(r->tr);
    sk_free(r->keep_mask);
    sk_lora_train_free(r->lora);
    sk_tokens_close(&r->valid);
    sk_tokens_close(&r->train);
    sk_train_free(r->tm);
    shrink_model_free(r->m);
    shrink_model_free(r->teacher);
    sk_tcache_close(&r->tcache);
    sk_free(r->ckpt);
}

/* Teacher and student must share the vocabulary and (when both have one) the tokenizer:
 * every token's bytes, BOS and EOS. */
static shrink_status same_tokenizer(const struct shrink_model *t, const struct shrink_model *s,
                                    const char *tpath, const char *spath) {
    if (t->cfg.vocab_size != s->cfg.vocab_size)
        return sk_error(SHRINK_ERR_ARG, "distill: the teacher %s has %d tokens, the student %s "
                        "%d: they must share the tokenizer", tpath, t->cfg.vocab_size, spath,
                        s->cfg.vocab_size);
    const shrink_tokenizer *a = t->tok, *b = s->tok;
    if (!a || !b) return SHRINK_OK; /* token files: the vocabulary size is all we can check */
    if (shrink_tokenizer_vocab_size(a) != shrink_tokenizer_vocab_size(b))
        return sk_error(SHRINK_ERR_ARG, "distill: the tokenizers of %s and %s have %d and %d "
                        "tokens", tpath, spath, shrink_tokenizer_vocab_size(a),
                        shrink_tokenizer_vocab_size(b));
    char pa[256], pb[256];
    for (int32_t id = 0; id < shrink_tokenizer_vocab_size(a); id++) {
        int32_t na = shrink_tokenizer_piece(a, -1, id, pa, sizeof pa - 1);
        int32_t nb = shrink_tokenizer_piece(b, -1, id, pb, sizeof pb - 1);
        if (na < 0 || nb < 0) return na < 0 ? (shrink_status)na : (shrink_status)nb;
        if (na > (int32_t)sizeof pa - 1) na = (int32_t)sizeof pa - 1;
        if (nb > (int32_t)sizeof pb - 1) nb = (int32_t)sizeof pb - 1;
        pa[na] = pb[nb] = 0;
        if (na != nb || memcmp(pa, pb, (size_t)na))
            return sk_error(SHRINK_ERR_ARG, "distill: the tokenizers differ at token %d: "
                            "\"%s\" in the teacher %s, \"%s\" in the student %s", id, pa, tpath,
                            pb, spath);
    }
    if (shrink_tokenizer_bos(a) != shrink_tokenizer_bos(b) ||
        shrink_tokenizer_eos(a) != shrink_tokenizer_eos(b))
        return sk_error(SHRINK_ERR_ARG, "distill: BOS/EOS ids differ: %d/%d in the teacher %s, "
                        "%d/%d in the student %s", shrink_tokenizer_bos(a),
                        shrink_tokenizer_eos(a), tpath, shrink_tokenizer_bos(b),
                        shrink_tokenizer_eos(b), spath);
    return SHRINK_OK;
}

/* FNV-1a 64 (sk_hash64) of the frozen parameters' weights as f32, in table order (a matrix
 * held stored hashed a widened row at a time: the same value as its f32 copy would give). */
static shrink_status frozen_fingerprint(const sk_train_model *tm, uint64_t *out) {
    uint64_t h = SK_HASH64_INIT;
    for (int64_t i = 0; i < tm->n_params; i++) {
        const sk_train_param *p = &tm->params[i];
        if (!p->frozen) continue;
        if (!p->stored.data) {
            h = sk_hash64(h, p->w, (size_t)p->n * sizeof(float));
            continue;
        }
        float *row = sk_malloc((size_t)p->t.cols * sizeof(float));
        if (!row) return sk_error(SHRINK_ERR_NOMEM, "train: out of memory");
        for (int64_t k = 0; k < p->t.rows; k++) {
            sk_mat_row_f32(&p->stored, k, row);
            h = sk_hash64(h, row, (size_t)p->t.cols * sizeof(float));
        }
        sk_free(row);
    }
    *out = h;
    return SHRINK_OK;
}

/* QAT: the scheme, targets and scales of p onto the parameter table (qat.c). */
static shrink_status qat_attach(sk_train_model *tm, const shrink_train_params *p) {
    sk_qat_opts q = {.scheme = p->qat, .scale_lr = p->qat_scale_lr, .lr = p->lr};
    if (p->qat_scales && strcmp(p->qat_scales, "recompute") && strcmp(p->qat_scales, "learned"))
        return sk_error(SHRINK_ERR_ARG, "QAT: scales '%s' are not recompute or learned",
                        p->qat_scales);
    q.learned = p->qat_scales && !strcmp(p->qat_scales, "learned");
    shrink_status st = sk_qat_parse_targets(p->qat_targets, &q.targets);
    if (st) return st;
    return sk_qat_attach_opts(tm, &q);
}

/* The linear matrices a pruning method zeroes (src/prune): their exact zeros are the mask. */
static int is_linear(const sk_train_param *p) {
    switch (p->t.role) {
    case SK_ROLE_WQ: case SK_ROLE_WK: case SK_ROLE_WV: case SK_ROLE_WQKV: case SK_ROLE_WO:
    case SK_ROLE_W_GATE: case SK_ROLE_W_UP: case SK_ROLE_W_DOWN:
        return p->t.n_dims == 2;
    default:
        return 0;
    }
}

/* keep_sparsity (shrink_train_params): masks the exact zeros of the linear matrices (mask_u8
 * = 0 there: no gradient, no update) when asked, or by default when >= 10 % are zeros. */
static shrink_status keep_sparsity(run *r, const char *model_path, int32_t want) {
    sk_train_model *tm = r->tm;
    int64_t n = 0, z = 0, mats = 0;
    for (int64_t i = 0; i < tm->n_params; i++) {
        const sk_train_param *p = &tm->params[i];
        if (!is_linear(p)) continue;
        mats++;
        n += p->n;
        for (int64_t j = 0; j < p->n; j++) z += p->w[j] == 0.0f;
    }
    r->sparsity = n ? (double)z / (double)n : 0.0;
    if (want < 0 || z == 0 || (want == 0 && r->sparsity < 0.10)) return SHRINK_OK;
    if (!(r->keep_mask = sk_malloc((size_t)tm->n_elems)))
        return sk_error(SHRINK_ERR_NOMEM, "train: out of memory for the sparsity mask");
    for (int64_t i = 0; i < tm->n_params; i++) {
        sk_train_param *p = &tm->params[i];
        if (!is_linear(p)) continue;
        uint8_t *mk = r->keep_mask + p->offset;
        for (int64_t j = 0; j < p->n; j++) mk[j] = p->w[j] != 0.0f;
        p->mask_u8 = mk;
    }
    r->kept_zeros = z;
    if (want == 0)
        sk_log("train: %s: %.1f%% of the weights of its %lld linear matrices are exact zeros "
               "(a pruned model): keeping them zero (--no-keep-sparsity trains them)",
               model_path, 100.0 * r->sparsity, (long long)mats);
    return SHRINK_OK;
}

/* Model, parameter table, data, trainer. */
static shrink_status run_open(run *r, const char *model_path, const shrink_train_params *p,
                              const sk_train_opts *o, const sk_lora_opts *lo) {
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = p->tokenizer_path;
    /* LoRA: the base is loaded (bound) and stays frozen in its stored dtype; with --qat /
     * --load-as SCHEME it is quantized while loading (QLoRA on a quantized copy in memory) */
    if (lo) lp.load_as = p->qat;
    if (p->qat_scales && strcmp(p->qat_scales, "recompute") && (!p->qat || lo))
        return sk_error(SHRINK_ERR_ARG, "QAT: %s scales need QAT of trainable weights (%s)",
                        p->qat_scales, lo ? "LoRA's base is frozen: its scales are the "
                        "quantizer's" : "no QAT scheme given");
    shrink_status st = lo ? shrink_model_load(&r->m, model_path, &lp)
                          : sk_model_open(&r->m, model_path, &lp);
    if (st && !p->tokenizer_path) {   /* token files need no tokenizer */
        lp.no_tokenizer = true;
        st = lo ? shrink_model_load(&r->m, model_path, &lp)
                : sk_model_open(&r->m, model_path, &lp);
    }
    if (st) return st;
    if (p->teacher) {
        if (!(p->alpha >= 0 && p->alpha <= 1))
            return sk_error(SHRINK_ERR_ARG, "distill: alpha %g is not in [0, 1]", p->alpha);
        if (!(p->temperature > 0) || !isfinite(p->temperature))
            return sk_error(SHRINK_ERR_ARG, "distill: temperature %g must be > 0",
                            p->temperature);
        if (p->top_k < 0)
            return sk_error(SHRINK_ERR_ARG, "distill: top-k %d must be >= 0", p->top_k);
        shrink_load_params tp = shrink_load_params_default();
        st = shrink_model_load(&r->teacher, p->teacher, &tp);
        if (st && !r->m->tok) {
            tp.no_tokenizer = true;
            st = shrink_model_load(&r->teacher, p->teacher, &tp);
        }
        if (st) return st;
        if ((st = same_tokenizer(r->teacher, r->m, p->teacher, model_path))) return st;
        r->dopts = (sk_distill_opts){.teacher = r->teacher, .teacher_id = p->teacher,
                                     .alpha = (float)p->alpha, .tau = (float)p->temperature,
                                     .top_k = p->top_k, .weak = p->weak,
                                     .threads = p->teacher_threads};
        if (p->teacher_threads < 0)
            return sk_error(SHRINK_ERR_ARG, "distill: teacher threads %d must be >= 0",
                            (int)p->teacher_threads);
    }
    if ((st = lo ? sk_train_create_frozen(&r->tm, r->m)
                 : sk_train_create_from_model(&r->tm, r->m)))
        return st;
    r->tm->recompute = p->gradient_checkpointing;
    if (!lo && (st = keep_sparsity(r, model_path, p->keep_sparsity))) return st;
    if (lo && (st = sk_lora_attach(r->tm, lo, &r->lora))) return st;
    if (p->qat && !lo && (st = qat_attach(r->tm, p))) return st;
    const sk_config *c = &r->m->cfg;
    if ((st = sk_tokens_open(&r->train, p->data, r->m->tok, c->add_bos, c->vocab_size)))
        return st;
    if (p->valid &&
        (st = sk_tokens_open(&r->valid, p->valid, r->m->tok, c->add_bos, c->vocab_size)))
        return st;
    if (p->teacher && p->teacher_cache) {
        const int32_t K = p->weak ? 1 : p->top_k;
        const int nth = omp_get_max_threads(); /* the cache is the teacher's pass */
        if (p->teacher_threads > 0) omp_set_num_threads(p->teacher_threads);
        st = sk_tcache_open(&r->tcache, p->teacher_cache, r->teacher, &r->train, o->ctx, K,
                            p->cache_progress, p->user);
        omp_set_num_threads(nth);
        if (st) return st;
        r->dopts.cache = &r->tcache;
    }
    const bool writer = !o->comm || o->comm->rank == 0;   /* data parallel: rank 0 writes */
    if (writer && (st = make_dir(p->out_dir, &r->dir_created, &r->dir_listed))) return st;
    if (!(r->ckpt = sk_path_join(p->out_dir, "checkpoint.bin")))
        return sk_error(SHRINK_ERR_NOMEM, "train: out of memory");
    sk_train_opts oo = *o;
    oo.ckpt_path = writer ? r->ckpt : NULL;
    if (p->teacher) oo.distill = &r->dopts;
    if (lo) {
        /* the checkpoint holds no frozen weights: their fingerprint refuses another base */
        uint64_t fp = 0;
        if ((st = frozen_fingerprint(r->tm, &fp))) return st;
        snprintf(r->lora_cfg, sizeof r->lora_cfg, "lora_rank=%lld\nlora_alpha=%.17g\n"
                 "lora_targets=%d\nlora_dropout=%.17g\nrslora=%d\nbase_fnv=%016llx\n",
                 (long long)lo->rank, lo->alpha, lo->targets, lo->dropout, (int)lo->rslora,
                 (unsigned long long)fp);
        oo.config_extra = r->lora_cfg;
    }
    if (p->qat) {
        snprintf(r->extra, sizeof r->extra, "%sqat=%s\nqat_targets=%s\n", r->lora_cfg, p->qat,
                 p->qat_targets ? p->qat_targets : "all");
        if (r->tm->qat_lsq) { /* learned scales: their options too */
            size_t len = strlen(r->extra);
            snprintf(r->extra + len, sizeof r->extra - len, "qat_scales=learned\n"
                     "qat_scale_lr=%.17g\n", p->qat_scale_lr);
        }
        oo.config_extra = r->extra;
    }
    if ((st = sk_trainer_create(&r->tr, r->tm, &r->train, p->valid ? &r->valid : NULL, &oo)))
        return st;
    if (!writer) r->tr->n_valid = 0;   /* rank 0 validates */
    return ranks_agree(&oo, r->tr, model_path, p);
}

shrink_status shrink_train(const char *model_path, const shrink_train_params *p,
                           shrink_train_result *result) {
    return sk_train_run(model_path, p, NULL, NULL, result, NULL, NULL);
}

shrink_status sk_train_run(const char *model_path, const shrink_train_params *p,
                           const sk_lora_opts *lo, const char *adapter_out,
                           shrink_train_result *result, int64_t *n_trainable, int64_t *n_all) {
    shrink_train_result dummy;
    shrink_train_result *res = result ? result : &dummy;
    memset(res, 0, sizeof *res);
    res->resumed_from = -1;
    if (!model_path || !p || !p->data || !p->out_dir)
        return sk_error(SHRINK_ERR_ARG, "train: a model, data and an output folder are needed");
    sk_train_opts o;
    shrink_status st = make_opts(p, &o);
    if (st) return st;
    double t0 = shrink_time();
    run r = {0};
    sk_format fmt = SK_FORMAT_GGUF;
    if ((st = run_open(&r, model_path, p, &o, lo)) || (st = out_format(p, r.m, &fmt))) goto out;
    if (p->resume_dir) {
        char *path = sk_path_join(p->resume_dir, "checkpoint.bin");
        st = path ? sk_ckpt_load(r.tr, path) : sk_error(SHRINK_ERR_NOMEM, "out of memory");
        sk_free(path);
        if (st) goto out;
        res->resumed_from = r.tr->step;
        sk_lora_train_set_calls(r.lora, r.tr->step * o.accum);
    }
    int64_t first = r.tr->step;
    res->val_loss_start = NAN;
    res->val_kl_start = NAN;
    if (r.tr->n_valid &&
        (st = sk_trainer_eval(r.tr, &res->val_loss_start, &res->val_kl_start)))
        goto out;
    if ((st = sk_trainer_run(r.tr))) goto out;
    if (o.comm && o.comm->rank != 0) goto done;   /* data parallel: rank 0 writes */
    if (r.tr->step == first && (st = sk_ckpt_save(r.tr, r.ckpt))) goto out;
    if (r.lora) {
        const char *inputs[3] = {model_path, p->data, p->valid};
        if ((st = sk_lora_train_save(r.lora, adapter_out, inputs, p->valid ? 3 : 2))) goto out;
        snprintf(res->model_out, sizeof res->model_out, "%s", adapter_out);
        size_t an = strlen(adapter_out);
        res->format = an >= 5 && !strcmp(adapter_out + an - 5, ".gguf") ? "gguf-lora" : "peft";
        if (n_trainable) *n_trainable = sk_lora_train_params(r.lora);
    } else if ((st = save_model(r.tm, r.m, p->out_dir, fmt, res)))
        goto out;
done:
    res->step         = r.tr->step;
    res->loss         = r.tr->loss;
    res->val_loss     = r.tr->val_loss;
    res->val_kl       = r.tr->val_kl;
    res->n_params     = r.lora ? sk_lora_train_params(r.lora) : r.tm->n_elems;
    if (n_all) {
        *n_all = 0;
        for (int64_t i = 0; i < r.tm->n_params; i++) *n_all += r.tm->params[i].n;
    }
    if (r.tcache.path) {
        snprintf(res->teacher_cache, sizeof res->teacher_cache, "%s", r.tcache.path);
        res->teacher_cache_built = r.tcache.built;
    }
    res->kept_sparsity = r.keep_mask != NULL;
    res->kept_zeros   = r.kept_zeros;
    res->sparsity     = r.sparsity;
    res->train_tokens = r.train.n;
    res->valid_tokens = p->valid ? r.valid.n : 0;
    res->seconds      = shrink_time() - t0;
    res->tok_per_s    = (double)(r.tr->step - first) * o.accum * o.batch * o.ctx /
                        (res->seconds > 0 ? res->seconds : 1);
out:
    run_free(&r);
    /* a failed run leaves no empty output folder behind (rmdir keeps a non-empty one: a
     * checkpoint written before the failure is what --resume needs) */
    if (st && r.dir_created) (void)rmdir(p->out_dir);
    sk_tmp_unlist(r.dir_listed);
    return st;
}
