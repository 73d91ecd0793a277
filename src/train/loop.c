/*
 * loop.c - the training loop: micro-batches through train.h's forward_backward with gradient
 * accumulation, global-norm clipping, the optimizer step at the scheduled learning rate,
 * validation every N steps over fixed windows, checkpoints every K steps, and the logs.
 * Printing belongs to the caller (a log callback gets every step's numbers).
 *
 * A step is a pure function of (weights, optimizer state, loader state, step number), all of
 * which the checkpoint holds, so a resumed run repeats an uninterrupted one bit for bit (with
 * the same thread count: forward_backward's sums follow the threads' split).
 */
#include "optim.h"

#include "../model/model.h"

#include <math.h>
#include <omp.h>

sk_train_opts sk_train_opts_default(void) {
    return (sk_train_opts){
        .steps        = 100,
        .batch        = 4,
        .ctx          = 64,
        .accum        = 1,
        .sched        = {.kind = SK_SCHED_COSINE, .lr = 3e-4, .lr_min = 0.0, .warmup = 0},
        .optim        = sk_optim_params_default(),
        .clip         = 1.0,
        .seed         = 0,
        .eval_every   = 0,
        .eval_windows = 16,
    };
}

/* ==== setup =============================================================================== */

static shrink_status check_opts(const sk_train_opts *o, const sk_train_model *tm) {
    if (o->steps < 1) return sk_error(SHRINK_ERR_ARG, "train: steps %" PRId64 " < 1", o->steps);
    if (o->batch < 1 || o->accum < 1)
        return sk_error(SHRINK_ERR_ARG, "train: batch %d and accum %d must be >= 1", o->batch,
                        o->accum);
    if (o->ctx < 1 || o->ctx > tm->cfg.max_seq_len)
        return sk_error(SHRINK_ERR_ARG, "train: context %d not in [1, %d] (the model's)",
                        o->ctx, tm->cfg.max_seq_len);
    if (o->sched.warmup < 0 || (unsigned)o->sched.kind >= SK_SCHED_COUNT)
        return sk_error(SHRINK_ERR_ARG, "train: bad schedule");
    if ((unsigned)o->optim.kind >= SK_OPTIM_COUNT)
        return sk_error(SHRINK_ERR_ARG, "train: bad optimizer");
    const shrink_train_comm *c = o->comm;
    if (c && (c->n_ranks < 1 || c->rank < 0 || c->rank >= c->n_ranks || !c->sum_f32 ||
              !c->sum_f64 || (c->n_ranks > 1 && o->accum % c->n_ranks)))
        return sk_error(SHRINK_ERR_ARG, "train: %d ranks need a multiple of %d micro-batches "
                        "per step (--accum), not %d", c ? c->n_ranks : 0, c ? c->n_ranks : 0,
                        o->accum);
    const sk_distill_opts *d = o->distill;
    if (d) {
        if (!d->teacher) return sk_error(SHRINK_ERR_ARG, "distill: no teacher");
        if (!(d->alpha >= 0 && d->alpha <= 1))
            return sk_error(SHRINK_ERR_ARG, "distill: alpha %g is not in [0, 1]", d->alpha);
        if (!(d->tau > 0) || !isfinite(d->tau))
            return sk_error(SHRINK_ERR_ARG, "distill: temperature %g must be > 0", d->tau);
        if (d->top_k < 0)
            return sk_error(SHRINK_ERR_ARG, "distill: top-k %d < 0", d->top_k);
        if (d->teacher->cfg.vocab_size != tm->cfg.vocab_size)
            return sk_error(SHRINK_ERR_ARG, "distill: the teacher's vocabulary has %d tokens, "
                            "the student's %d", d->teacher->cfg.vocab_size, tm->cfg.vocab_size);
        if (o->ctx > d->teacher->cfg.max_seq_len)
            return sk_error(SHRINK_ERR_ARG, "distill: context %d exceeds the teacher's %d",
                            o->ctx, d->teacher->cfg.max_seq_len);
    }
    return SHRINK_OK;
}

/* The options that decide the trajectory, as "key=value" lines: a checkpoint only resumes a
 * run whose text is equal. Doubles in their shortest exact form (shrink_fmt_double: 3e-4 is
 * "0.0003"), so the lines that differ read as the user wrote the options. */
static char *config_text(const sk_train_opts *o, const sk_train_model *tm, const sk_tokens *d) {
    char *s = sk_malloc(2048);
    if (!s) return NULL;
    char v[8][40];
    const double num[8] = {o->sched.lr, o->sched.lr_min, o->optim.beta1, o->optim.beta2,
                           o->optim.eps, o->optim.wd, o->optim.momentum, o->clip};
    for (int i = 0; i < 8; i++) shrink_fmt_double(v[i], sizeof v[i], num[i]);
    snprintf(s, 2048,
             "steps=%" PRId64 "\nbatch=%d\nctx=%d\naccum=%d\nschedule=%s\nlr=%s\n"
             "lr_min=%s\nwarmup=%" PRId64 "\noptim=%s\nbeta1=%s\nbeta2=%s\n"
             "eps=%s\nwd=%s\nmomentum=%s\nclip=%s\nseed=%" PRIu64 "\n"
             "sequential=%d\ndecay_vectors=%d\nparams=%" PRId64 "\ntrain_tokens=%" PRId64 "\n",
             o->steps, o->batch, o->ctx, o->accum, sk_sched_name(o->sched.kind), v[0], v[1],
             o->sched.warmup, o->optim.kind == SK_OPTIM_ADAMW ? "adamw" : "sgd", v[2], v[3],
             v[4], v[5], v[6], v[7], o->seed, o->sequential, o->decay_vectors, tm->n_elems,
             d->n);
    if (o->config_extra) {
        size_t len = strlen(s);
        snprintf(s + len, 2048 - len, "%s", o->config_extra);
    }
    if (o->distill) {
        const sk_distill_opts *x = o->distill;
        size_t len = strlen(s);
        char a[40], t[40];
        snprintf(s + len, 2048 - len, "teacher=%s\nalpha=%s\ntemperature=%s\ntop_k=%d\n"
                 "weak=%d\n", x->teacher_id ? x->teacher_id : "?",
                 shrink_fmt_double(a, sizeof a, x->alpha), shrink_fmt_double(t, sizeof t, x->tau),
                 x->top_k, x->weak);
        if (x->cache && !o->sequential) { /* random windows at multiples of T only */
            len = strlen(s);
            snprintf(s + len, 2048 - len, "aligned_windows=1\n");
        }
    }
    return s;
}

/* The optimizer's view of tm's table (pointers, so later freeze/mask edits need a rebuild). */
static void bind_params(sk_trainer *tr) {
    for (int64_t i = 0; i < tr->tm->n_params; i++) {
        const sk_train_param *p = &tr->tm->params[i];
        tr->op[i] = (sk_opt_param){
            .w = p->w, .g = p->g, .mask = p->mask_u8, .mask_f32 = p->mask_f32, .n = p->n,
            .frozen = p->frozen != 0,
            .decay  = !p->no_decay && (p->t.n_dims == 2 || tr->o.decay_vectors),
            .lr_mult = p->lr_mult,
        };
    }
}

static int train_k(const sk_trainer *tr);
static int teacher_threads(const sk_distill_opts *d);

shrink_status sk_trainer_create(sk_trainer **out, sk_train_model *tm, const sk_tokens *train,
                                const sk_tokens *valid, const sk_train_opts *o) {
    *out = NULL;
    shrink_status st = check_opts(o, tm);
    if (st) return st;
    sk_trainer *tr = sk_calloc(1, sizeof *tr);
    if (!tr) return sk_error(SHRINK_ERR_NOMEM, "train: out of memory");
    tr->o              = *o;
    tr->o.sched.steps  = o->steps;
    tr->tm             = tm;
    tr->valid          = valid;
    tr->loss           = NAN;
    tr->val_loss       = NAN;
    tr->n_valid        = valid ? sk_valid_windows(valid, o->ctx, o->eval_windows) : 0;
    tr->op             = sk_calloc((size_t)tm->n_params, sizeof *tr->op);
    tr->tokens         = sk_calloc((size_t)o->batch * ((size_t)o->ctx + 1), sizeof(int32_t));
    tr->config         = config_text(o, tm, train);
    if (!tr->op || !tr->tokens || !tr->config) {
        st = sk_error(SHRINK_ERR_NOMEM, "train: out of memory");
        goto out_free;
    }
    bind_params(tr);
    if ((st = sk_loader_init(&tr->train, train, o->ctx, o->sequential, o->seed, "train data")))
        goto out_free;
    if (valid && !tr->n_valid) {
        st = sk_error(SHRINK_ERR_ARG, "validation data: %" PRId64 " tokens, a window of context "
                      "%d needs %d", valid->n, o->ctx, o->ctx + 1);
        goto out_free;
    }
    if ((st = sk_optim_create(&tr->opt, &o->optim, tr->op, (int)tm->n_params))) goto out_free;
    if ((st = sk_train_reserve(tm, o->batch, o->ctx))) goto out_free;
    tr->val_kl = NAN;
    if (o->distill) {
        const size_t V = (size_t)tm->cfg.vocab_size, N = (size_t)o->batch * o->ctx;
        const int nth = teacher_threads(o->distill); /* its scratch: for the teacher's threads */
        st = shrink_context_create(&tr->tctx, o->distill->teacher, o->ctx, o->ctx);
        omp_set_num_threads(nth);
        if (st) goto out_free;
        /* the teacher's rows: a classifier chunk and a window (feed_rows), or with the cache
         * the batch's top K (cached_rows); the logits of one window when K < V */
        const size_t K = (size_t)train_k(tr);
        tr->feed_rows = sk_distill_feed_cap((int)N, o->ctx, (int)V);
        const size_t lp = (size_t)tr->feed_rows * V, lk = N * K;
        tr->tlogits = K < V ? sk_malloc((size_t)o->ctx * V * sizeof(float)) : NULL;
        tr->tlogp   = sk_malloc((lp > lk ? lp : lk) * sizeof(float));
        tr->tidx    = sk_malloc(N * K * sizeof(int32_t));
        if ((K < V && !tr->tlogits) || !tr->tlogp || !tr->tidx) {
            st = sk_error(SHRINK_ERR_NOMEM, "distill: out of memory for the teacher's logits");
            goto out_free;
        }
        const sk_tcache *c = o->distill->cache;
        if (c) {
            if (c->T != o->ctx || c->K != train_k(tr)) {
                st = sk_error(SHRINK_ERR_ARG, "distill: the teacher cache %s holds context %d, "
                              "top %d; this run needs %d, %d", c->path, c->T, c->K, o->ctx,
                              train_k(tr));
                goto out_free;
            }
            if (!(tr->wstart = sk_malloc((size_t)o->batch * sizeof *tr->wstart))) {
                st = sk_error(SHRINK_ERR_NOMEM, "distill: out of memory");
                goto out_free;
            }
            tr->train.aligned = !o->sequential;
            tr->train.starts = tr->wstart;
        }
    }
    *out = tr;
    return SHRINK_OK;
out_free:
    sk_trainer_free(tr);
    return st;
}

void sk_trainer_free(sk_trainer *tr) {
    if (!tr) return;
    sk_optim_free(tr->opt);
    sk_free(tr->op);
    sk_free(tr->tokens);
    sk_free(tr->config);
    shrink_context_free(tr->tctx);
    sk_free(tr->tlogits);
    sk_free(tr->tlogp);
    sk_free(tr->tidx);
    sk_free(tr->wstart);
    for (int32_t i = 0; i < tr->n_accbuf; i++) sk_free(tr->acc[i]);
    sk_free(tr->acc);
    sk_free(tr->acc_loss);
    sk_free(tr->acc_lp);
    sk_free(tr);
}

/* ==== validation ========================================================================== */

/* Switches OpenMP to the teacher's thread budget (d->threads > 0); returns the count to
 * restore with omp_set_num_threads. */
static int teacher_threads(const sk_distill_opts *d) {
    const int nth = omp_get_max_threads();
    if (d->threads > 0) omp_set_num_threads(d->threads);
    return nth;
}

/* The teacher's logits (T, V) of window j of tr->tokens (T + 1 tokens each) into z. */
static shrink_status teacher_window(void *ctx, int64_t j, float *z) {
    sk_trainer *tr = ctx;
    const int32_t T = tr->o.ctx;
    const int nth = teacher_threads(tr->o.distill);
    shrink_status st =
        shrink_context_eval(tr->tctx, tr->tokens + (size_t)j * (T + 1), T, 0, z, T);
    omp_set_num_threads(nth);
    return st;
}

/* The teacher's rows for b windows of tr->tokens, made on demand by a feed (train.h): a
 * classifier chunk and a window of rows at a time, never the B T V logits of the batch. */
static void teacher_rows(sk_trainer *tr, int32_t b, float tau, int K, sk_distill_feed *f,
                         sk_distill_rows *rows) {
    const int32_t V = tr->tm->cfg.vocab_size;
    *f = (sk_distill_feed){.window = teacher_window, .ctx = tr, .T = tr->o.ctx, .V = V,
                           .K = K < V ? K : V, .tau = tau, .n_rows = (int64_t)b * tr->o.ctx,
                           .cap = tr->feed_rows, .logp = tr->tlogp, .idx = tr->tidx,
                           .z = tr->tlogits};
    rows->tau      = tau;
    rows->K        = f->K;
    rows->fill     = sk_distill_feed_rows;
    rows->fill_ctx = f;
}

/* The teacher's rows for the b windows of tr->tokens from the cache (their starts in
 * tr->wstart, multiples of T): the same floats as teacher_rows' top-K path. */
static void cached_rows(sk_trainer *tr, int32_t b, float tau, sk_distill_rows *rows) {
    const sk_tcache *c = tr->o.distill->cache;
    const int32_t T = tr->o.ctx, K = c->K;
    for (int32_t j = 0; j < b; j++) {
        const int64_t w = tr->wstart[j] / T;
        for (int32_t t = 0; t < T; t++) {
            const size_t row = (size_t)j * T + t;
            const uint8_t *r = sk_tcache_row(c, w, t);
            memcpy(tr->tidx + row * K, r, (size_t)K * 4u);
            memcpy(tr->tlogp + row * K, r + (size_t)K * 4u, (size_t)K * 4u);
            sk_distill_top_k_logp(tr->tlogp + row * K, K, tau);
        }
    }
    rows->tau  = tau;
    rows->K    = K;
    rows->idx  = tr->tidx;
    rows->logp = tr->tlogp;
}

/* K of the training rows: 1 (weak), top_k, or V. */
static int train_k(const sk_trainer *tr) {
    const sk_distill_opts *d = tr->o.distill;
    const int V = tr->tm->cfg.vocab_size;
    return d->weak ? 1 : d->top_k > 0 && d->top_k < V ? d->top_k : V;
}

shrink_status sk_trainer_eval(sk_trainer *tr, double *loss, double *kl) {
    int32_t T = tr->o.ctx, B = tr->o.batch;
    double  sum = 0.0, kl_sum = 0.0;
    *loss = NAN;
    if (kl) *kl = NAN;
    if (!tr->n_valid) return sk_error(SHRINK_ERR_ARG, "train: no validation data");
    for (int64_t w0 = 0; w0 < tr->n_valid; w0 += B) {
        int32_t b = (int32_t)(tr->n_valid - w0 < B ? tr->n_valid - w0 : B);
        for (int32_t j = 0; j < b; j++)
            for (int32_t i = 0; i <= T; i++)
                tr->tokens[j * (T + 1) + i] = sk_tokens_at(tr->valid, (w0 + j) * T + i);
        float l;
        shrink_status st;
        if (tr->o.distill) {
            /* alpha 1, tau 1, the whole vocabulary: ce = the plain loss, kl = KL to the teacher */
            sk_distill_rows rows = {.alpha = 1.0f};
            sk_distill_feed f;
            double ce, k;
            teacher_rows(tr, b, 1.0f, tr->tm->cfg.vocab_size, &f, &rows);
            if ((st = sk_train_loss_distill(tr->tm, tr->tokens, b, T, &rows, &l, &ce, &k)))
                return st;
            l = (float)ce;
            kl_sum += k * b;
        } else if ((st = sk_train_loss(tr->tm, tr->tokens, b, T, &l)))
            return st;
        sum += (double)l * b;
    }
    *loss = sum / (double)tr->n_valid;
    if (kl && tr->o.distill) *kl = kl_sum / (double)tr->n_valid;
    return SHRINK_OK;
}

/* ==== the loop ============================================================================ */

/* Micro-batch a's gradient (added to tm's g) and loss, on tr->tokens loaded by the caller. */
static shrink_status micro_batch(sk_trainer *tr, float *l) {
    const sk_train_opts *o = &tr->o;
    if (o->distill) {
        sk_distill_rows rows = {.alpha = o->distill->alpha};
        sk_distill_feed f;
        if (o->distill->cache) cached_rows(tr, o->batch, o->distill->tau, &rows);
        else teacher_rows(tr, o->batch, o->distill->tau, train_k(tr), &f, &rows);
        return sk_train_forward_backward_distill(tr->tm, tr->tokens, o->batch, o->ctx, &rows, l,
                                                 NULL, NULL);
    }
    return sk_train_forward_backward(tr->tm, tr->tokens, o->batch, o->ctx, l);
}

/* The trainable gradients against buf, in parameter order: PACK_COUNT only counts them,
 * PACK_COPY copies them into buf, PACK_ADD adds them to buf, PACK_BACK copies buf into them.
 * Returns the elements. */
enum { PACK_COUNT, PACK_COPY, PACK_ADD, PACK_BACK };
static int64_t pack_grads(sk_trainer *tr, float *buf, int mode) {
    int64_t k = 0;
    for (int64_t i = 0; i < tr->tm->n_params; i++) {
        sk_train_param *p = &tr->tm->params[i];
        if (p->frozen || !p->g) continue;
        float *b = buf ? buf + k : NULL;
        if (mode == PACK_COPY) memcpy(b, p->g, (size_t)p->n * sizeof(float));
        else if (mode == PACK_BACK) memcpy(p->g, b, (size_t)p->n * sizeof(float));
        else if (mode == PACK_ADD)
            for (int64_t j = 0; j < p->n; j++) b[j] += p->g[j];
        k += p->n;
    }
    return k;
}

/* With A > 1 micro-batches (or ranks), each micro-batch's gradient starts from zero and the
 * step's gradient is their sum in micro-batch order, S = ((g_0 + g_1) + g_2) + ...: across R
 * ranks (comm) rank r computes the contiguous block g_{rK} .. g_{rK+K-1} (K = A / R), rank 0
 * adds its block as one process does, a later rank keeps its K gradients apart and the chain
 * adds them one by one to the running sum of the ranks before it: the same additions in the
 * same order, so one process with --accum A and R ranks give bit-identical runs. */
static shrink_status accumulate(sk_trainer *tr, double *loss) {
    const sk_train_opts *o = &tr->o;
    const shrink_train_comm *c = o->comm && o->comm->n_ranks > 1 ? o->comm : NULL;
    const int32_t K = c ? o->accum / c->n_ranks : o->accum;
    const int32_t lo = c ? c->rank * K : 0;
    const int32_t nbuf = c && c->rank > 0 ? K : 1;   /* gradients kept apart */
    if (!tr->acc) {
        tr->n_acc = pack_grads(tr, NULL, PACK_COUNT);
        tr->acc      = sk_calloc((size_t)nbuf, sizeof *tr->acc);
        tr->acc_loss = sk_calloc((size_t)nbuf, sizeof *tr->acc_loss);
        tr->acc_lp   = sk_calloc((size_t)nbuf, sizeof *tr->acc_lp);
        if (!tr->acc || !tr->acc_loss || !tr->acc_lp)
            return sk_error(SHRINK_ERR_NOMEM, "train: out of memory");
        tr->n_accbuf = nbuf;
        for (int32_t i = 0; i < nbuf; i++) {
            tr->acc[i] = sk_malloc((size_t)(tr->n_acc ? tr->n_acc : 1) * sizeof(float));
            if (!tr->acc[i]) return sk_error(SHRINK_ERR_NOMEM, "train: out of memory for the "
                                             "gradient sum of %d micro-batches", o->accum);
        }
    }
    double   sum = 0.0;
    double **lp  = tr->acc_lp;
    for (int32_t a = 0; a < o->accum; a++) {
        sk_loader_next(&tr->train, o->batch, tr->tokens);   /* every rank: the same windows */
        if (a < lo || a >= lo + K) continue;
        /* the pass number seeds LoRA's dropout: the one this micro-batch has in one process */
        if (tr->tm->hook) tr->tm->hook->passes = tr->step * o->accum + a;
        sk_train_zero_grad(tr->tm);
        float l;
        shrink_status st = micro_batch(tr, &l);
        if (st) return st;
        const int32_t i = a - lo;
        if (nbuf > 1) {   /* kept apart for the chain */
            pack_grads(tr, tr->acc[i], PACK_COPY);
            tr->acc_loss[i] = l;
            lp[i] = &tr->acc_loss[i];
            continue;
        }
        pack_grads(tr, tr->acc[0], i == 0 ? PACK_COPY : PACK_ADD);
        sum = i == 0 ? l : sum + l;
    }
    if (c) {
        shrink_status st;
        const int32_t k = nbuf;
        if (k == 1) lp[0] = &sum;
        if ((st = c->sum_f32(c->user, tr->acc, k, tr->n_acc)) ||
            (st = c->sum_f64(c->user, lp, k, 1)))
            return st;
        sum = *lp[0];
    }
    pack_grads(tr, tr->acc[0], PACK_BACK);
    *loss = sum;
    return SHRINK_OK;
}

/* One optimizer step: A micro-batches, clip, update. Fills lg's loss, lr and grad norm. */
static shrink_status train_step(sk_trainer *tr, shrink_train_log *lg) {
    const sk_train_opts *o = &tr->o;
    sk_train_model *tm = tr->tm;
    tm->grad_scale = 1.0f / (float)o->accum;
    double loss = 0.0;
    shrink_status st;
    if (o->accum > 1) {
        if ((st = accumulate(tr, &loss))) return st;
    } else {
        sk_train_zero_grad(tm);
        sk_loader_next(&tr->train, o->batch, tr->tokens);
        float l;
        if ((st = micro_batch(tr, &l))) return st;
        loss = l;
    }
    lg->loss      = loss / o->accum;
    lg->grad_norm = sk_grad_norm(tr->op, (int)tm->n_params, 1.0);
    lg->lr        = sk_schedule_lr(&o->sched, tr->step);
    if (!isfinite(lg->loss) || !isfinite(lg->grad_norm))
        return sk_error(SHRINK_ERR_RANGE, "train: step %" PRId64 ": loss %g, gradient norm %g "
                        "(diverged; lower --lr)", tr->step + 1, lg->loss, lg->grad_norm);
    sk_optim_step(tr->opt, tr->op, (int)tm->n_params, lg->lr,
                  sk_clip_factor(lg->grad_norm, o->clip));
    tr->step++;
    tr->loss = lg->loss;
    return SHRINK_OK;
}

shrink_status sk_trainer_run(sk_trainer *tr) {
    const sk_train_opts *o = &tr->o;
    double  t0     = shrink_time();
    int64_t first  = tr->step;
    int64_t tokens = 0;
    bind_params(tr);
    while (tr->step < o->steps) {
        shrink_train_log lg = {.steps = o->steps, .val_loss = NAN, .val_kl = NAN};
        shrink_status st = train_step(tr, &lg);
        if (st) return st;
        lg.step = tr->step;
        tokens += (int64_t)o->accum * o->batch * o->ctx;
        bool last = tr->step == o->steps;
        if (tr->n_valid && ((o->eval_every && tr->step % o->eval_every == 0) || last)) {
            if ((st = sk_trainer_eval(tr, &lg.val_loss, &lg.val_kl))) return st;
            tr->val_loss = lg.val_loss;
            tr->val_kl   = lg.val_kl;
        }
        if (o->ckpt_path && ((o->save_every && tr->step % o->save_every == 0) || last)) {
            if ((st = sk_ckpt_save(tr, o->ckpt_path))) return st;
            lg.saved = true;
        }
        lg.seconds = shrink_time() - t0;
        lg.tok_per_s   = lg.seconds > 0 ? (double)tokens / lg.seconds : 0.0;
        lg.eta     = lg.seconds / (double)(tr->step - first) * (double)(o->steps - tr->step);
        if (o->log) o->log(o->user, &lg);
    }
    return SHRINK_OK;
}
