/*
 * optim.h - the training loop's parts that are not backward passes: optimizers (adamw.c),
 * learning-rate schedules (schedule.c), token files and window loaders (data.c), checkpoints
 * (checkpoint.c) and the loop that ties them to train.h's forward_backward (loop.c).
 * Nothing outside src/ (and tests/) includes this.
 *
 * Shapes: B = batch (windows per micro-batch), T = context (tokens per window, each window
 * holds T + 1 tokens: T inputs and T targets), A = gradient-accumulation micro-batches.
 *
 * Determinism: every reduction here runs in a fixed order (per-tensor sums in double, tensors
 * in table order), and element-wise updates do not depend on how they are split between
 * threads, so a run is a function of (model, data, config, seed) and of whatever
 * forward_backward does with the thread count. docs/training.md describes the file formats.
 */
#ifndef SK_TRAIN_OPTIM_H
#define SK_TRAIN_OPTIM_H

#include "train.h"

#include <stdbool.h>

/* ==== random numbers ======================================================================
 * splitmix64 (Steele, Lea, Flood 2014): one u64 of state, so checkpoints carry it exactly. */

static inline uint64_t sk_rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ==== learning-rate schedules (schedule.c) ================================================ */

typedef enum sk_sched_kind {
    SK_SCHED_CONSTANT, /* lr after the warmup */
    SK_SCHED_COSINE,   /* warmup, then lr_min + (lr - lr_min) (1 + cos(pi p)) / 2 */
    SK_SCHED_LINEAR,   /* warmup, then lr - (lr - lr_min) p */
    SK_SCHED_COUNT
} sk_sched_kind;

typedef struct sk_schedule {
    sk_sched_kind kind;
    double        lr;      /* peak learning rate */
    double        lr_min;  /* reached at the last step (cosine, linear) */
    int64_t       warmup;  /* steps of linear warmup from lr / warmup to lr */
    int64_t       steps;   /* total optimizer steps */
} sk_schedule;

/* "constant", "cosine", "linear"; -1 if unknown. */
SK_HIDDEN int         sk_sched_parse(const char *name);
SK_HIDDEN const char *sk_sched_name(sk_sched_kind k);
/* The learning rate of optimizer step `step` (0-based): during warmup (step < warmup)
 * lr (step + 1) / warmup; after it p = (step - warmup) / max(1, steps - warmup - 1) in
 * [0, 1] drives the decay. */
SK_HIDDEN double sk_schedule_lr(const sk_schedule *s, int64_t step);

/* ==== optimizers (adamw.c) ================================================================ */

typedef enum sk_optim_kind { SK_OPTIM_ADAMW, SK_OPTIM_SGD, SK_OPTIM_COUNT } sk_optim_kind;

typedef struct sk_optim_params {
    sk_optim_kind kind;
    double        beta1;     /* AdamW (default 0.9) */
    double        beta2;     /* AdamW (default 0.999) */
    double        eps;       /* AdamW (default 1e-8) */
    double        wd;        /* decoupled weight decay (AdamW and SGD; default 0) */
    double        momentum;  /* SGD (0 = plain SGD, no state) */
} sk_optim_params;

SK_HIDDEN sk_optim_params sk_optim_params_default(void);
SK_HIDDEN int sk_optim_parse(const char *name);   /* "adamw", "sgd"; -1 if unknown */

/* One trainable tensor as the optimizer sees it. The weights and gradients belong to the
 * caller (train.h's parameter table); the optimizer owns only its state. */
typedef struct sk_opt_param {
    float         *w;        /* (n) fp32 master weights, updated in place */
    const float   *g;        /* (n) accumulated gradient (scaled by the step's grad_scale) */
    const uint8_t *mask;     /* (n) 1 = trainable element, 0 = held; NULL: all trainable */
    const float   *mask_f32; /* (n) gradient factors; an element whose factor is 0 is held
                                too; NULL: none */
    int64_t        n;
    bool           frozen;   /* the whole tensor is held: no update, no state (sk_optim_create
                                gives it none; checkpoints do not hold it) */
    bool           decay;    /* weight decay applies (matrices yes, norms and biases no) */
    float          lr_mult;  /* learning rate factor (0: 1) */
} sk_opt_param;

/* Optimizer state: one block of m (and v) for all tensors, pointed into (AdamW: m, v;
 * SGD with momentum: m only). */
typedef struct sk_optim {
    sk_optim_params p;
    int             n_params;
    int64_t        *off;      /* (n_params) offset of tensor i in m / v */
    int64_t         total;    /* elements of all tensors not frozen at creation */
    float          *m;        /* (total) first moment / momentum buffer, or NULL */
    float          *v;        /* (total) second moment, or NULL */
    int64_t         t;        /* optimizer steps taken (bias correction uses t) */
} sk_optim;

/* Creates zeroed state for tensors params[0..n) (their sizes only are read). Free with
 * sk_optim_free. */
SK_HIDDEN shrink_status sk_optim_create(sk_optim **out, const sk_optim_params *p,
                                        const sk_opt_param *params, int n);
SK_HIDDEN void sk_optim_free(sk_optim *o);

/* sqrt(sum of g^2 * grad_scale^2) over the trainable elements of the non-frozen tensors:
 * each tensor summed in double in index order, tensors in table order. */
SK_HIDDEN double sk_grad_norm(const sk_opt_param *params, int n, double grad_scale);

/* The clip factor: min(1, clip / norm) (clip <= 0: no clipping -> 1). */
SK_HIDDEN double sk_clip_factor(double norm, double clip);

/* One optimizer step at learning rate lr with the gradient g * grad_scale (grad_scale folds
 * in 1 / accumulation steps and the clip factor). AdamW (Loshchilov & Hutter 2019, PyTorch's
 * torch.optim.AdamW):
 *     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *     w -= lr wd w  (decay tensors);  w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * SGD: with momentum mu, buf = mu buf + g (torch.optim.SGD, dampening 0), w -= lr wd w,
 *     w -= lr buf. Elements with mask 0 and frozen tensors are not touched (nor their state).
 * Arithmetic in float per element except the bias corrections (double, then float). */
SK_HIDDEN void sk_optim_step(sk_optim *o, const sk_opt_param *params, int n, double lr,
                             double grad_scale);

/* ==== token files and windows (data.c) ====================================================
 * A token file: a 32-byte header (docs/training.md), then `count` tokens of 2 or 4 bytes,
 * little-endian:
 *   0  magic "SKTOKENS" (8 bytes)       16 vocab_size u32
 *   8  version u32 (1)                  20 reserved u32 (0)
 *  12  token bytes u32 (2 or 4)         24 count u64
 */

#define SK_TOKFILE_MAGIC   "SKTOKENS"
#define SK_TOKFILE_VERSION 1
#define SK_TOKFILE_HEADER  32

/* Writes ids[0..n) to `path` atomically: uint16 tokens when vocab_size <= 65536, else
 * uint32. Every id must be in [0, vocab_size). */
SK_HIDDEN shrink_status sk_tokfile_write(const char *path, const int32_t *ids, int64_t n,
                                         int32_t vocab_size);

/* Tokens for training: from a token file (mapped) or a text tokenized at open. */
typedef struct sk_tokens {
    int64_t        n;          /* tokens */
    int32_t        vocab_size; /* of the file's header, or of the tokenizer */
    int            width;      /* 2 or 4 bytes per token in `data`, or 0: `ids` */
    const uint8_t *data;       /* view of the token file's tokens (width != 0) */
    int32_t       *ids;        /* (n) owned ids (text input) */
    sk_map         map;
} sk_tokens;

/* Parses a token file held in data[0..len) (validates magic, version, width, that count
 * fits the bytes, and every token < vocab_size). `t` borrows data. */
SK_HIDDEN shrink_status sk_tokens_parse(const uint8_t *data, size_t len, const char *name,
                                        sk_tokens *t);
/* Opens `path`: a token file (by its magic), else UTF-8 text encoded with `tok` (BOS first
 * when add_bos). Tokens must be < vocab_size (the model's). */
SK_HIDDEN shrink_status sk_tokens_open(sk_tokens *t, const char *path,
                                       const struct shrink_tokenizer *tok, bool add_bos,
                                       int32_t vocab_size);
SK_HIDDEN void sk_tokens_close(sk_tokens *t);
static inline int32_t sk_tokens_at(const sk_tokens *t, int64_t i) {
    if (t->width == 2) return (int32_t)(t->data[2 * i] | t->data[2 * i + 1] << 8);
    if (t->width == 4) return (int32_t)sk_rd_u32(t->data + 4 * i);
    return t->ids[i];
}

/* Where the next windows come from; saved in checkpoints. */
typedef struct sk_loader {
    const sk_tokens *tok;
    int32_t          T;          /* window = T + 1 tokens */
    bool             sequential; /* false: random starts from rng */
    uint64_t         rng;        /* random mode state */
    int64_t          pos;        /* sequential mode: start of the next window */
    bool             aligned;    /* random mode: starts at multiples of T only (teacher cache) */
    int64_t         *starts;     /* if not NULL: (B) the starts of the last windows given */
} sk_loader;

/* Needs tok->n >= T + 1 (SHRINK_ERR_ARG naming `what` otherwise). */
SK_HIDDEN shrink_status sk_loader_init(sk_loader *l, const sk_tokens *tok, int32_t T,
                                       bool sequential, uint64_t seed, const char *what);
/* Fills out (B, T + 1) with the next B windows: random starts uniform in [0, n - T - 1], or
 * consecutive windows advancing by T tokens (the last target of one window is the first
 * input of the next), wrapping to 0 when fewer than T + 1 tokens are left. */
SK_HIDDEN void sk_loader_next(sk_loader *l, int32_t B, int32_t *out);

/* The number of fixed validation windows: min(max_windows, (n - 1) / T) consecutive windows
 * of `tok`, window w starting at w T (0 if tok has fewer than T + 1 tokens). */
SK_HIDDEN int64_t sk_valid_windows(const sk_tokens *tok, int32_t T, int64_t max_windows);

/* ==== the loop (loop.c) ================================================================== */


/* Distillation (docs/distillation.md): a teacher model run through the decoder on every
 * micro-batch, its next-token distribution at temperature tau (whole vocabulary, top K, or its
 * top 1 with `weak`) becoming the soft targets of train.h's distillation loss. */
typedef struct sk_distill_opts {
    const struct shrink_model *teacher;  /* borrowed; same vocabulary as the student */
    const char *teacher_id;  /* names the teacher in the checkpoint's config (its path) */
    float       alpha;       /* weight of the KL term, in [0, 1] */
    float       tau;         /* temperature > 0 */
    int32_t     top_k;       /* 0: the whole vocabulary; K: the teacher's top K, renormalized */
    bool        weak;        /* the teacher's top-1 token only (K = 1) */
    const struct sk_tcache *cache; /* the teacher's top K per aligned window, or NULL */
    int32_t     threads;     /* threads of the teacher's forward (0: the student's) */
} sk_distill_opts;

/* The teacher cache (tcache.c, docs/distillation.md): for every aligned window w of the
 * training data (tokens [w T, w T + T], w < (n - 1) / T) and each of its T positions, the
 * teacher's top K ids (int32) and logits (float32), as the decoder gives them for that window
 * run from position 0 (the training loop's own teacher pass, bit for bit). One file per
 * (teacher, data, T, K) in a folder, named by their hashes:
 *   0 magic "SKTCACHE"   8 version u32 (1)   12 K u32   16 T u32   20 vocab u32
 *  24 windows u64       32 teacher hash u64  40 data hash u64   48 data tokens u64
 *  56 FNV-1a 64 checksum of bytes [0, 56) and of the rows
 *  64 rows: windows x T x (K ids, K logits)
 * Opened mapped; a file whose header, size or checksum is wrong is an error (never rebuilt
 * over silently). */
typedef struct sk_tcache {
    int32_t        K, T, V;
    int64_t        n_windows;
    const uint8_t *rows;
    sk_map         map;
    bool           built;       /* written by this process (else reused) */
    char          *path;
} sk_tcache;

/* Opens the cache for (teacher, data, T, K) in folder dir, building it first when absent
 * (the folder is created; progress(user, windows done, total) may be NULL). */
SK_HIDDEN shrink_status sk_tcache_open(sk_tcache *c, const char *dir,
                                       const struct shrink_model *teacher, const sk_tokens *data,
                                       int32_t T, int32_t K,
                                       void (*progress)(void *, int64_t, int64_t), void *user);
SK_HIDDEN void sk_tcache_close(sk_tcache *c);
/* Row of position t of window w: K ids then K logits. */
static inline const uint8_t *sk_tcache_row(const sk_tcache *c, int64_t w, int32_t t) {
    return c->rows + ((size_t)w * (size_t)c->T + (size_t)t) * (size_t)c->K * 8u;
}

typedef struct sk_train_opts {
    int64_t         steps;        /* optimizer steps */
    int32_t         batch;        /* B */
    int32_t         ctx;          /* T */
    int32_t         accum;        /* A micro-batches per step */
    sk_schedule     sched;        /* .steps is set from `steps` */
    sk_optim_params optim;
    double          clip;         /* global gradient norm limit; <= 0: none */
    uint64_t        seed;         /* of the random windows */
    bool            sequential;   /* sequential windows instead of random */
    bool            decay_vectors;/* weight decay on vectors (norms, biases) too */
    int64_t         eval_every;   /* validation every N steps (and at the last); 0: never */
    int64_t         eval_windows; /* validation windows (fixed, from the start of the data) */
    int64_t         save_every;   /* checkpoint every K steps (and at the last); 0: last only */
    const char     *ckpt_path;    /* checkpoint file; NULL: none written */
    const sk_distill_opts *distill; /* NULL: plain training (cross-entropy) */
    const char     *config_extra; /* appended to the checkpoint's options text (LoRA), or NULL */
    const struct shrink_train_comm *comm; /* data parallelism (accum a multiple of n_ranks), or NULL */
    void          (*log)(void *user, const shrink_train_log *l);  /* after every step; may be NULL */
    void           *user;
} sk_train_opts;

SK_HIDDEN sk_train_opts sk_train_opts_default(void);

/* A training run over a parameter table: optimizer, loader, step counter. It borrows tm and
 * the token sets (which must outlive it). */
typedef struct sk_trainer {
    sk_train_opts    o;
    sk_train_model  *tm;
    sk_opt_param    *op;         /* (tm->n_params) the optimizer's view of tm->params */
    sk_optim        *opt;
    sk_loader        train;
    const sk_tokens *valid;      /* may be NULL */
    int64_t          n_valid;    /* validation windows */
    int32_t         *tokens;     /* (B, T + 1) */
    int64_t          step;       /* optimizer steps done */
    double           loss;       /* loss of the last step (NAN before any) */
    double           val_loss;   /* last validation loss (NAN if none) */
    char            *config;     /* the run's trajectory-defining options, as text */
    /* distillation (o.distill != NULL) */
    struct shrink_context *tctx; /* the teacher's run state (T positions) */
    float           *tlogits;    /* (T, V) teacher logits of one sequence (K < V), or NULL */
    int32_t         *tidx;       /* (B T, K) top-K ids (K < V) */
    float           *tlogp;      /* (feed_rows, V) or (B T, K) teacher log-probabilities */
    int64_t          feed_rows;  /* rows of the teacher held at once: a classifier chunk + T */
    double           val_kl;     /* last validation KL(teacher || student) at tau 1, NAN if none */
    int64_t         *wstart;     /* (B) window starts (teacher cache) */
    /* when A > 1: (trainable elements) the step's gradient sum in acc[0]; with ranks, a rank
     * other than 0 keeps each of its A / R micro-batches' gradients (acc[0..A/R)) until the
     * chain brings the sum of the ranks before it */
    float          **acc;
    double          *acc_loss;   /* (n_accbuf) their losses */
    double         **acc_lp;     /* (n_accbuf) pointers to them */
    int32_t          n_accbuf;
    int64_t          n_acc;
} sk_trainer;

/* Validates the options (messages name the option), builds the optimizer state and loader. */
SK_HIDDEN shrink_status sk_trainer_create(sk_trainer **out, sk_train_model *tm,
                                          const sk_tokens *train, const sk_tokens *valid,
                                          const sk_train_opts *o);
SK_HIDDEN void sk_trainer_free(sk_trainer *tr);
/* Runs steps until o.steps, logging each, validating and checkpointing as configured. */
SK_HIDDEN shrink_status sk_trainer_run(sk_trainer *tr);
/* Mean loss over the validation windows (batches of B): the cross-entropy, also when
 * distilling; then *kl (may be NULL) gets the mean KL(teacher || student) at temperature 1 over
 * the whole vocabulary (NAN without a teacher). */
SK_HIDDEN shrink_status sk_trainer_eval(sk_trainer *tr, double *loss, double *kl);

/* ==== checkpoints (checkpoint.c) ========================================================== *
 * One file, written atomically (temporary + fsync + rename): magic, step, optimizer step
 * count, loader state, last losses, the run's config text, every parameter's fp32 weights and
 * optimizer state by name, and a 64-bit FNV-1a checksum of all that (docs/training.md). */

#define SK_CKPT_MAGIC   "SKCKPT\0\0"
#define SK_CKPT_VERSION 1

/* Writes tr's state (tm weights, optimizer state, loader, step, config) to path. */
SK_HIDDEN shrink_status sk_ckpt_save(const sk_trainer *tr, const char *path);
/* Restores tr's state from path. The config text must equal tr->config and every parameter
 * must match by name and size (else SHRINK_ERR_ARG naming the difference). */
SK_HIDDEN shrink_status sk_ckpt_load(sk_trainer *tr, const char *path);
/* The same from a checkpoint held in data[0..size) (`path` names it in messages): the
 * from-memory entry point of the checkpoint fuzzer. Values are checked too (finite weights and
 * moments, second moments >= 0, steps and data position in range). */
SK_HIDDEN shrink_status sk_ckpt_load_mem(sk_trainer *tr, const uint8_t *data, size_t size,
                                         const char *path);

#endif /* SK_TRAIN_OPTIM_H */
