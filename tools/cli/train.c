/*
 * train.c - `shrink train MODEL --data TRAIN --out DIR [options]`: trains every parameter of a
 * model (shrink_train) with AdamW or SGD, logging each step (step, loss, validation loss,
 * learning rate, gradient norm, tokens/s, ETA) on stderr, or with --json one JSON object per
 * step on stdout, then a summary. Checkpoints go to DIR/checkpoint.bin atomically; --resume
 * DIR continues a run bit for bit. docs/training.md documents the options and files.
 */
#include "cli.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct train_opts {
    const char *data;
    const char *valid;
    const char *out;
    const char *to;
    const char *resume;
    const char *schedule;
    const char *optimizer;
    int32_t     steps;
    int32_t     batch;
    int32_t     ctx;
    int32_t     accum;
    int32_t     warmup;
    int32_t     eval_every;
    int32_t     eval_windows;
    int32_t     save_every;
    double      lr;
    double      lr_min;
    double      wd;
    double      clip;
    double      momentum;
    uint64_t    seed;
    bool        sequential;
    bool        grad_ckpt;
    bool        keep_sparsity;
    bool        no_keep_sparsity;
    /* shrink distill */
    const char *teacher;
    const char *student;
    const char *mode;
    double      alpha;
    double      temperature;
    int32_t     top_k;
    const char *teacher_cache;
    int32_t     teacher_threads;
    /* shrink lora */
    const char *ckpt_dir;
    const char *targets;
    int32_t     rank;
    double      lora_alpha;
    double      dropout;
    bool        rslora;
    /* --qat (train, distill, lora) */
    const char *qat;
    const char *qat_targets;
    const char *qat_scales;
    double      qat_scale_lr;
} train_opts;

#define O(f) offsetof(train_opts, f)
#define TRAIN_ROWS \
    {"--out", "-o", CLI_OPT_STR, O(out), "DIR", 0, 0, "checkpoint and final model folder"}, \
    {"--to", NULL, CLI_OPT_STR, O(to), "FORMAT", 0, 0, "final model: gguf, hf or llama2c " \
     "(default: the input's)"}, \
    {"--keep-sparsity", NULL, CLI_OPT_FLAG, O(keep_sparsity), NULL, 0, 0, "keep the exact " \
     "zeros of the linear matrices zero (default when >= 10% are)"}, \
    {"--no-keep-sparsity", NULL, CLI_OPT_FLAG, O(no_keep_sparsity), NULL, 0, 0, "train a " \
     "pruned model's zeros like any weight"}, \
    TRAIN_LOOP_ROWS
#define TRAIN_LOOP_ROWS \
    {"--data", NULL, CLI_OPT_STR, O(data), "FILE", 0, 0, "training data: token file or text"}, \
    {"--valid", NULL, CLI_OPT_STR, O(valid), "FILE", 0, 0, "validation data: token file or text"}, \
    {"--resume", NULL, CLI_OPT_STR, O(resume), "DIR", 0, 0, "continue from DIR/checkpoint.bin"}, \
    {"--steps", "-n", CLI_OPT_INT, O(steps), "N", 1, 1e9, "optimizer steps (default 100)"}, \
    {"--batch", "-b", CLI_OPT_INT, O(batch), "B", 1, 65536, "sequences per micro-batch " \
     "(default 4)"}, \
    {"--ctx", "-c", CLI_OPT_INT, O(ctx), "T", 1, 1 << 20, "tokens per sequence (default 64)"}, \
    {"--accum", NULL, CLI_OPT_INT, O(accum), "A", 1, 65536, "micro-batches per step " \
     "(default 1; under mpirun a multiple of the ranks, default the ranks)"}, \
    {"--lr", NULL, CLI_OPT_FLOAT, O(lr), "LR", 1e-12, 10, "peak learning rate (default 3e-4)"}, \
    {"--lr-min", NULL, CLI_OPT_FLOAT, O(lr_min), "LR", 0, 10, "final learning rate (default 0)"}, \
    {"--warmup", NULL, CLI_OPT_INT, O(warmup), "N", 0, 1e9, "linear warmup steps (default 0)"}, \
    {"--schedule", NULL, CLI_OPT_STR, O(schedule), "S", 0, 0, "cosine (default), linear or " \
     "constant"}, \
    {"--optimizer", NULL, CLI_OPT_STR, O(optimizer), "OPT", 0, 0, "adamw (default) or sgd"}, \
    {"--wd", NULL, CLI_OPT_FLOAT, O(wd), "WD", 0, 10, "decoupled weight decay of matrices " \
     "(default 0)"}, \
    {"--momentum", NULL, CLI_OPT_FLOAT, O(momentum), "M", 0, 1, "SGD momentum (default 0)"}, \
    {"--clip", NULL, CLI_OPT_FLOAT, O(clip), "C", 0, 1e9, "gradient-norm limit, 0 = off " \
     "(default 1)"}, \
    {"--seed", "-s", CLI_OPT_U64, O(seed), "S", 0, 0, "seed of the random windows (default 0)"}, \
    {"--sequential", NULL, CLI_OPT_FLAG, O(sequential), NULL, 0, 0, "sequential windows " \
     "instead of random ones"}, \
    {"--gradient-checkpointing", NULL, CLI_OPT_FLAG, O(grad_ckpt), NULL, 0, 0, "keep one " \
     "layer's activations, recompute the others in the backward (less memory, one more " \
     "forward; the same result)"}, \
    {"--eval-every", NULL, CLI_OPT_INT, O(eval_every), "N", 0, 1e9, "validation loss every N " \
     "steps (and at the end)"}, \
    {"--eval-windows", NULL, CLI_OPT_INT, O(eval_windows), "W", 1, 1e6, "validation windows " \
     "(default 16)"}, \
    {"--save-every", NULL, CLI_OPT_INT, O(save_every), "K", 0, 1e9, "checkpoint every K steps " \
     "(and at the end)"}, \
    {"--qat", NULL, CLI_OPT_STR, O(qat), "SCHEME", 0, 0, "quantization-aware: fake-quantize " \
     "to a scheme of shrink quantize (q4_0, int4_g128, nf4, q4_K, or a mix: q4_K_M, ...) in " \
     "every forward pass"}, \
    {"--qat-targets", NULL, CLI_OPT_STR, O(qat_targets), "LIST", 0, 0, "QAT's matrices: q,k,v," \
     "o,gate,up,down,embed,output or all (default all)"}, \
    {"--qat-scales", NULL, CLI_OPT_STR, O(qat_scales), "HOW", 0, 0, "QAT's block scales: " \
     "recompute (from the weights, every pass; default) or learned (LSQ; q4_0, q8_0, int4_gN, " \
     "nf4)"}, \
    {"--qat-scale-lr", NULL, CLI_OPT_FLOAT, O(qat_scale_lr), "LR", 1e-12, 10, "learning rate " \
     "of learned QAT scales (default: --lr)"}, \

static const cli_opt train_rows[] = {TRAIN_ROWS};
static const cli_opt distill_rows[] = {
    {"--teacher", NULL, CLI_OPT_STR, O(teacher), "T", 0, 0, "teacher model (any format shrink "
     "loads; same tokenizer)"},
    {"--student", NULL, CLI_OPT_STR, O(student), "S", 0, 0, "student model to train (or the "
     "positional MODEL)"},
    {"--alpha", NULL, CLI_OPT_FLOAT, O(alpha), "A", -1e9, 1e9, "weight of the KL term in [0, 1] "
     "(default 0.5)"},
    {"--temperature", NULL, CLI_OPT_FLOAT, O(temperature), "TAU", -1e9, 1e9, "softening "
     "temperature > 0 (default 1)"},
    {"--top-k", NULL, CLI_OPT_INT, O(top_k), "K", 0, 1 << 24, "KL on the teacher's top K "
     "tokens, renormalized (default 0: all)"},
    {"--mode", NULL, CLI_OPT_STR, O(mode), "M", 0, 0, "soft (default) or weak (teacher's top-1 "
     "token as the target)"},
    {"--teacher-threads", NULL, CLI_OPT_INT, O(teacher_threads), "N", 0, 4096, "threads of the "
     "teacher's forward passes (default 0: --threads)"},
    {"--teacher-cache", NULL, CLI_OPT_STR, O(teacher_cache), "DIR", 0, 0, "keep the teacher's "
     "top K per position in DIR (built once,\n                         reused; --top-k or --mode "
     "weak; windows at multiples of --ctx)"},
    TRAIN_ROWS
};
static const cli_opt lora_rows[] = {
    {"--out", "-o", CLI_OPT_STR, O(out), "ADAPTER", 0, 0, "the adapter: *.gguf (llama.cpp "
     "LoRA) or a PEFT folder"},
    {"--ckpt-dir", NULL, CLI_OPT_STR, O(ckpt_dir), "DIR", 0, 0, "checkpoint folder (default "
     "ADAPTER.ckpt)"},
    {"--rank", "-r", CLI_OPT_INT, O(rank), "R", -1e9, 1e9, "LoRA rank r >= 1 (default 8)"},
    {"--alpha", NULL, CLI_OPT_FLOAT, O(lora_alpha), "A", -1e9, 1e9, "lora_alpha > 0: scale "
     "A/r (default 16)"},
    {"--targets", NULL, CLI_OPT_STR, O(targets), "LIST", 0, 0, "adapted projections: q,k,v,o,"
     "gate,up,down or all (default all)"},
    {"--dropout", NULL, CLI_OPT_FLOAT, O(dropout), "P", -1e9, 1e9, "lora_dropout on the "
     "adapter's input, in [0, 1) (default 0)"},
    {"--rslora", NULL, CLI_OPT_FLAG, O(rslora), NULL, 0, 0, "scale alpha/sqrt(r) (rsLoRA)"},
    TRAIN_LOOP_ROWS
};
#undef O

static const cli_spec spec = {
    .name        = "train",
    .synopsis    = "MODEL --data TRAIN --out DIR [--valid VALID] [--steps N] [--batch B] [--ctx T]\n"
                   "       [--lr LR] [--warmup N] [--schedule S] [--wd WD] [--clip C] [--accum A]\n"
                   "       [--seed S] [--eval-every N] [--save-every K] [--to FORMAT] "
                   "[--resume DIR]",
    .description = "Trains all parameters of MODEL (fp32 master weights, whatever its dtype) on\n"
                   "TRAIN (a token file from `shrink tokenize`, or text encoded with the model's\n"
                   "tokenizer). Writes DIR/checkpoint.bin (weights, optimizer state, data\n"
                   "position, step) atomically every K steps and at the end, and the final model\n"
                   "as DIR/model.gguf, DIR/model (Hugging Face) or DIR/model.bin. --resume DIR\n"
                   "continues a run given the same options: it ends bit for bit as the\n"
                   "uninterrupted run would (same --threads).",
    .opts        = train_rows,
    .n_opts      = sizeof train_rows / sizeof train_rows[0],
    .n_pos_min   = 1,
    .n_pos_max   = 1,
    .model       = true,
};

static const cli_spec distill_spec = {
    .name        = "distill",
    .synopsis    = "--teacher T --student S --data TRAIN --out DIR [--alpha A] [--temperature TAU]\n"
                   "       [--top-k K] [--mode soft|weak] [every option of shrink train]",
    .description = "Knowledge distillation: trains the student S like `shrink train` (same options,\n"
                   "checkpoints and bit-exact --resume) on the loss\n"
                   "  A TAU^2 KL(softmax(z_t/TAU) || softmax(z_s/TAU)) + (1 - A) CE(z_s, y)\n"
                   "where z_t are the logits of the teacher T run through the decoder on the same\n"
                   "batch. --top-k K keeps the teacher's K most likely tokens (renormalized);\n"
                   "--mode weak keeps its top-1 token only. Teacher and student must share the\n"
                   "tokenizer. The validation loss is the cross-entropy; val_kl is the KL to the\n"
                   "teacher at temperature 1. docs/distillation.md.",
    .opts        = distill_rows,
    .n_opts      = sizeof distill_rows / sizeof distill_rows[0],
    .n_pos_min   = 0,
    .n_pos_max   = 1,
    .model       = true,
};

static const cli_spec lora_spec = {
    .name        = "lora",
    .synopsis    = "BASE --data TRAIN -o ADAPTER [--valid VALID] [--rank R] [--alpha A]\n"
                   "       [--targets q,k,v,o,gate,up,down] [--dropout P] [--rslora]\n"
                   "       [--ckpt-dir DIR] [--resume DIR] [every loop option of shrink train]",
    .description = "Trains a LoRA adapter on the frozen BASE: for each target projection W of\n"
                   "every layer, W x + alpha/r B (A x) with A (r x in) Kaiming-uniform and B\n"
                   "(out x r) zero at the start, as PEFT initializes them; only A and B train.\n"
                   "Same loop, schedule, checkpoints (DIR/checkpoint.bin) and bit-exact --resume\n"
                   "as `shrink train`. ADAPTER is written at the end: a llama.cpp GGUF LoRA\n"
                   "adapter when it ends in .gguf, else a PEFT folder. The base stays frozen\n"
                   "in its stored dtype (f32/f16/bf16, or quantized: q4_K, nf4, int4, q8_0 ...,\n"
                   "QLoRA), never widened: forward and backward run through its kernels.\n"
                   "--load-as SCHEME (or --qat SCHEME) quantizes an f32/f16/bf16 BASE so while\n"
                   "loading. docs/adapters.md.",
    .opts        = lora_rows,
    .n_opts      = sizeof lora_rows / sizeof lora_rows[0],
    .n_pos_min   = 1,
    .n_pos_max   = 1,
    .model       = true,
    .load_as     = true,
};

typedef struct log_state {
    const cli_common *common;
    cli_progress      cache;    /* the teacher cache being built */
    bool              cache_on;
} log_state;

static void cache_progress(void *user, int64_t done, int64_t total) {
    log_state *s = user;
    if (!s->cache_on) {
        cli_progress_start(&s->cache, "teacher cache windows", s->common);
        s->cache_on = true;
    }
    cli_progress_update(&s->cache, done, total);
    if (done == total) cli_progress_end(&s->cache);
}

static void log_step(void *user, const shrink_train_log *l) {
    const log_state *s = user;
    /* the manifest of the model written at the end: the last step's loss (docs/manifest.md) */
    cli_manifest_quality("step", (double)l->step);
    cli_manifest_quality("train_loss", l->loss);
    if (!isnan(l->val_loss)) cli_manifest_quality("val_loss", l->val_loss);
    if (!isnan(l->val_kl)) cli_manifest_quality("val_kl", l->val_kl);
    if (s->common->json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_key(&j, "step");      cli_json_int(&j, l->step);
        cli_json_key(&j, "steps");     cli_json_int(&j, l->steps);
        cli_json_key(&j, "loss");      cli_json_num(&j, l->loss);
        cli_json_key(&j, "val_loss");  cli_json_num(&j, l->val_loss);
        if (!isnan(l->val_kl)) {
            cli_json_key(&j, "val_kl"); cli_json_num(&j, l->val_kl);
        }
        cli_json_key(&j, "lr");        cli_json_num(&j, l->lr);
        cli_json_key(&j, "grad_norm"); cli_json_num(&j, l->grad_norm);
        cli_json_key(&j, "tokens_per_s"); cli_json_num(&j, l->tok_per_s);
        cli_json_key(&j, "seconds");   cli_json_num(&j, l->seconds);
        cli_json_key(&j, "eta");       cli_json_num(&j, l->eta);
        cli_json_key(&j, "saved");     cli_json_bool(&j, l->saved);
        cli_json_end(&j);
        fflush(stdout);
        return;
    }
    char val[64] = "";
    if (!isnan(l->val_loss) && !isnan(l->val_kl))
        snprintf(val, sizeof val, "  val %.4f  kl %.4f", l->val_loss, l->val_kl);
    else if (!isnan(l->val_loss))
        snprintf(val, sizeof val, "  val %.4f", l->val_loss);
    fprintf(stderr, "step %lld/%lld  loss %.4f%s  lr %.3g  norm %.3g  %.0f tok/s  ETA %.1f s%s\n",
            (long long)l->step, (long long)l->steps, l->loss, val, l->lr, l->grad_norm,
            l->tok_per_s, l->eta, l->saved ? "  [saved]" : "");
}

static int usage(const cli_spec *sp, const char *msg) {
    fprintf(stderr, "shrink %s: %s\n\n", sp->name, msg);
    cli_usage(sp, stderr);
    return CLI_USAGE;
}

/* The inputs against what the run writes into --out: checkpoint.bin and the final model
 * (model.gguf, model.bin or the folder model, from --to or the input's format). The --resume
 * checkpoint is read whole before anything is written, so --resume DIR --out DIR is fine. */
static int check_io(const char *model, const train_opts *o, const cli_common *common) {
    size_t n = strlen(model);
    while (n > 1 && model[n - 1] == '/') n--;
    const char *to = o->to;
    if (!to) {
        struct stat sb;
        if (n >= 5 && !strncmp(model + n - 5, ".gguf", 5)) to = "gguf";
        else if ((stat(model, &sb) == 0 && S_ISDIR(sb.st_mode)) ||
                 (n >= 12 && !strncmp(model + n - 12, ".safetensors", 12)))
            to = "hf";
        else to = "llama2c";
    }
    const char *name = !strcmp(to, "gguf") ? "model.gguf" : !strcmp(to, "hf") ? "model"
                                                                             : "model.bin";
    size_t cap = strlen(o->out) + 32;
    char  *ckpt = malloc(cap), *final = malloc(cap);
    if (!ckpt || !final) {
        free(ckpt);
        free(final);
        return cli_fail("out of memory");
    }
    snprintf(ckpt, cap, "%s/checkpoint.bin", o->out);
    snprintf(final, cap, "%s/%s", o->out, name);
    cli_io io[] = {{"MODEL", model, CLI_IN},
                   {"--data", o->data, CLI_IN},
                   {"--valid", o->valid, CLI_IN},
                   {"--tokenizer", common->tokenizer, CLI_IN},
                   {"--teacher", o->teacher, CLI_IN},
                   {"--teacher-cache", o->teacher_cache, CLI_OUT_IN_DIR},
                   /* the folder only: its checkpoint.bin may be --out's (read whole first,
                    * then replaced atomically) */
                   {"--resume", o->resume, CLI_IN},
                   {"--out", o->out, CLI_OUT_IN_DIR},
                   {"--out checkpoint", ckpt, CLI_OUT},
                   {"--out model", final, strcmp(to, "hf") ? CLI_OUT : CLI_OUT_DIR}};
    int rc = cli_check_io(io, (int)(sizeof io / sizeof io[0]));
    free(ckpt);
    free(final);
    return rc;
}

/* The loop's options from the command line (train, distill, lora). */
static void fill_params(shrink_train_params *pp, const train_opts *op, const cli_common *cp,
                        log_state *lsp) {
    pp->data           = op->data;
    pp->valid          = op->valid;
    pp->out_dir        = op->out;
    pp->to             = op->to;
    pp->resume_dir     = op->resume;
    pp->tokenizer_path = cp->tokenizer;
    pp->steps          = op->steps;
    pp->batch          = op->batch;
    pp->ctx            = op->ctx;
    pp->accum          = op->accum;
    pp->optimizer      = op->optimizer;
    pp->schedule       = op->schedule;
    pp->lr             = op->lr;
    pp->lr_min         = op->lr_min;
    pp->warmup         = op->warmup;
    pp->wd             = op->wd;
    pp->momentum       = op->momentum;
    pp->clip           = op->clip;
    pp->seed           = op->seed;
    pp->sequential     = op->sequential;
    pp->gradient_checkpointing = op->grad_ckpt;
    pp->eval_every     = op->eval_every;
    pp->eval_windows   = op->eval_windows;
    pp->save_every     = op->save_every;
    pp->log            = log_step;
    pp->user           = lsp;
    pp->qat_targets    = op->qat_targets;
    pp->qat_scales     = op->qat_scales;
    pp->qat_scale_lr   = op->qat_scale_lr;
    pp->comm           = cli_mpi_comm();   /* mpirun -np R of a `make MPI=1` build */
}

/* With R ranks: how many, and the bytes each sent per step summing gradients and losses. */
static void json_ranks(cli_json *j, int64_t steps) {
    if (cli_mpi_ranks() < 2) return;
    cli_json_key(j, "ranks");                    cli_json_int(j, cli_mpi_ranks());
    cli_json_key(j, "allreduce_bytes_per_step"); cli_json_num(j, steps > 0 ?
        (double)cli_mpi_bytes_sent() / (double)steps : 0.0);
}

static int run_train(const cli_spec *sp, int argc, char **argv) {
    cli_common common;
    char      *pos[1] = {NULL};
    int        n_pos = 0;
    const bool distill = sp == &distill_spec;
    train_opts o = {.steps = 100, .batch = 4, .ctx = 64, .accum = 1, .lr = 3e-4, .clip = 1.0,
                    .eval_windows = 16, .alpha = 0.5, .temperature = 1.0};
    int rc = cli_parse(sp, argc, argv, &o, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    const char *model = pos[0];
    if (distill) {
        if (!o.teacher) return usage(sp, "missing --teacher T");
        if (o.student && model) return usage(sp, "give the student once: --student S or MODEL");
        if (!o.student && !model) return usage(sp, "missing --student S");
        if (o.student) model = o.student;
        if (o.mode && strcmp(o.mode, "soft") && strcmp(o.mode, "weak"))
            return usage(sp, "--mode: not soft or weak");
        if (!(o.alpha >= 0 && o.alpha <= 1))
            return cli_fail("--alpha %g: not in [0, 1]", o.alpha);
        if (!(o.temperature > 0)) return cli_fail("--temperature %g: must be > 0", o.temperature);
        if (o.mode && !strcmp(o.mode, "weak") && o.top_k)
            return usage(sp, "--mode weak uses the teacher's top 1: no --top-k");
    }
    if (!o.data) return usage(sp, "missing --data TRAIN");
    if (!o.out) return usage(sp, "missing --out DIR");
    if (o.to && strcmp(o.to, "gguf") && strcmp(o.to, "hf") && strcmp(o.to, "llama2c"))
        return usage(sp, "--to: not gguf, hf or llama2c");
    if (o.schedule && strcmp(o.schedule, "cosine") && strcmp(o.schedule, "linear") &&
        strcmp(o.schedule, "constant"))
        return usage(sp, "--schedule: not cosine, linear or constant");
    if (o.optimizer && strcmp(o.optimizer, "adamw") && strcmp(o.optimizer, "sgd"))
        return usage(sp, "--optimizer: not adamw or sgd");
    const char *qat = NULL;
    if (o.qat && (rc = cli_qat_scheme("--qat", o.qat, &qat)) != CLI_OK) return rc;
    if (o.qat_scales && strcmp(o.qat_scales, "recompute") && strcmp(o.qat_scales, "learned"))
        return usage(sp, "--qat-scales: not recompute or learned");
    if ((o.qat_scales || o.qat_scale_lr > 0) && !o.qat)
        return usage(sp, "--qat-scales and --qat-scale-lr need --qat SCHEME");
    if (o.qat_scale_lr > 0 && !(o.qat_scales && !strcmp(o.qat_scales, "learned")))
        return usage(sp, "--qat-scale-lr is the learning rate of --qat-scales learned");
    if (o.qat && o.to && strcmp(o.to, "gguf"))
        return usage(sp, "--qat writes the quantized model as GGUF: no --to hf/llama2c");
    if (o.qat) o.to = "gguf";
    if ((rc = check_io(model, &o, &common)) != CLI_OK) return rc;
    shrink_set_threads(common.threads);
    log_state ls = {.common = &common};
    shrink_train_params p = shrink_train_params_default();
    if (distill) {
        p.teacher     = o.teacher;
        p.alpha       = o.alpha;
        p.temperature = o.temperature;
        p.top_k       = o.top_k;
        p.weak        = o.mode && !strcmp(o.mode, "weak");
        p.teacher_threads = o.teacher_threads;
        if (o.teacher_cache && !p.weak && !o.top_k)
            return usage(sp, "--teacher-cache stores the teacher's top K: give --top-k K or "
                         "--mode weak");
    }
    fill_params(&p, &o, &common, &ls);
    if (distill && o.teacher_cache) {
        p.teacher_cache  = o.teacher_cache;
        p.cache_progress = cache_progress;
    }
    p.qat = qat;
    if (o.keep_sparsity && o.no_keep_sparsity)
        return usage(sp, "--keep-sparsity and --no-keep-sparsity contradict each other");
    p.keep_sparsity = o.keep_sparsity ? 1 : o.no_keep_sparsity ? -1 : 0;
    shrink_train_result r;
    shrink_status st = shrink_train(model, &p, &r);
    if (st != SHRINK_OK) return cli_fail_status(st);
    if (common.json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_key(&j, "output");         cli_json_str(&j, r.model_out);
        cli_json_key(&j, "format");         cli_json_str(&j, r.format);
        cli_json_key(&j, "step");           cli_json_int(&j, r.step);
        cli_json_key(&j, "resumed_from");   cli_json_int(&j, r.resumed_from);
        cli_json_key(&j, "loss");           cli_json_num(&j, r.loss);
        cli_json_key(&j, "val_loss");       cli_json_num(&j, r.val_loss);
        cli_json_key(&j, "val_loss_start"); cli_json_num(&j, r.val_loss_start);
        if (distill) {
            cli_json_key(&j, "teacher");      cli_json_str(&j, o.teacher);
            cli_json_key(&j, "val_kl");       cli_json_num(&j, r.val_kl);
            cli_json_key(&j, "val_kl_start"); cli_json_num(&j, r.val_kl_start);
            cli_json_key(&j, "teacher_cache");
            if (r.teacher_cache[0]) cli_json_str(&j, r.teacher_cache);
            else cli_json_null(&j);
            cli_json_key(&j, "teacher_cache_built"); cli_json_bool(&j, r.teacher_cache_built);
        }
        cli_json_key(&j, "n_params");       cli_json_int(&j, r.n_params);
        cli_json_key(&j, "train_tokens");   cli_json_int(&j, r.train_tokens);
        cli_json_key(&j, "valid_tokens");   cli_json_int(&j, r.valid_tokens);
        cli_json_key(&j, "seconds");        cli_json_num(&j, r.seconds);
        cli_json_key(&j, "tokens_per_s");   cli_json_num(&j, r.tok_per_s);
        cli_json_key(&j, "peak_rss_bytes"); cli_json_u64(&j, shrink_peak_rss());
        json_ranks(&j, r.step - (r.resumed_from > 0 ? r.resumed_from : 0));
        cli_json_end(&j);
    } else {
        if (r.resumed_from >= 0) printf("resumed:    from step %lld\n", (long long)r.resumed_from);
        /* %.9g: enough digits to tell any two floats apart (runs are compared on this line) */
        if (!isnan(r.val_loss_start))
            printf("start:      val_loss %.9g\n", r.val_loss_start);
        if (distill && !isnan(r.val_kl_start))
            printf("start:      val_kl %.9g\n", r.val_kl_start);
        printf("final:      step %lld loss %.9g val_loss %.9g\n", (long long)r.step, r.loss,
               r.val_loss);
        if (distill) printf("final:      val_kl %.9g\n", r.val_kl);
        if (r.teacher_cache[0])
            printf("cache:      %s (%s)\n", r.teacher_cache,
                   r.teacher_cache_built ? "built" : "reused");
        printf("model:      %s (%s), %lld parameters\n", r.model_out, r.format,
               (long long)r.n_params);
        printf("time:       %.2f s, %.0f tok/s\n", r.seconds, r.tok_per_s);
    }
    return CLI_OK;
}

/* PEFT's print_trainable_parameters() line. */
static void print_trainable(FILE *f, int64_t trainable, int64_t all) {
    char a[32], b[32];
    int64_t v[2] = {trainable, all};
    char *out[2] = {a, b};
    for (int i = 0; i < 2; i++) {      /* 1,179,648 */
        char digits[24];
        int n = snprintf(digits, sizeof digits, "%lld", (long long)v[i]), k = 0;
        for (int j = 0; j < n; j++) {
            if (j && (n - j) % 3 == 0) out[i][k++] = ',';
            out[i][k++] = digits[j];
        }
        out[i][k] = 0;
    }
    fprintf(f, "trainable params: %s || all params: %s || trainable%%: %.4f\n", a, b,
            all ? 100.0 * (double)trainable / (double)all : 0.0);
}

static int run_lora(int argc, char **argv) {
    const cli_spec *sp = &lora_spec;
    cli_common common;
    char      *pos[1] = {NULL};
    int        n_pos = 0;
    train_opts o = {.steps = 100, .batch = 4, .ctx = 64, .accum = 1, .lr = 3e-4, .clip = 1.0,
                    .eval_windows = 16, .rank = 8, .lora_alpha = 16};
    int rc = cli_parse(sp, argc, argv, &o, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    if (!o.data) return usage(sp, "missing --data TRAIN");
    if (!o.out) return usage(sp, "missing -o ADAPTER");
    if (o.rank < 1) return cli_fail("--rank %d: must be >= 1", (int)o.rank);
    if (!(o.lora_alpha > 0)) return cli_fail("--alpha %g: must be > 0", o.lora_alpha);
    if (!(o.dropout >= 0 && o.dropout < 1)) return cli_fail("--dropout %g: not in [0, 1)", o.dropout);
    if (o.schedule && strcmp(o.schedule, "cosine") && strcmp(o.schedule, "linear") &&
        strcmp(o.schedule, "constant"))
        return usage(sp, "--schedule: not cosine, linear or constant");
    if (o.optimizer && strcmp(o.optimizer, "adamw") && strcmp(o.optimizer, "sgd"))
        return usage(sp, "--optimizer: not adamw or sgd");
    const char *qat = NULL;
    if (o.qat && (rc = cli_scheme_dtype("--qat", o.qat, &qat)) != CLI_OK) return rc;
    if (common.load_as) { /* the frozen base quantized once: QAT of a frozen base is exactly that */
        const char *la = NULL;
        if ((rc = cli_scheme_dtype("--load-as", common.load_as, &la)) != CLI_OK) return rc;
        if (qat && strcmp(qat, la))
            return cli_fail("--load-as %s and --qat %s: the frozen base is quantized once, to "
                            "one type", common.load_as, o.qat);
        qat = la;
    }
    size_t n = strlen(o.out);
    char *ckdir = NULL, *ckpt = NULL;
    if (!o.ckpt_dir) {
        if (!(ckdir = malloc(n + 8))) return cli_fail("out of memory");
        snprintf(ckdir, n + 8, "%.*s.ckpt", (int)(n > 1 && o.out[n - 1] == '/' ? n - 1 : n), o.out);
    }
    const char *dir = o.ckpt_dir ? o.ckpt_dir : ckdir;
    size_t cap = strlen(dir) + 32;
    if (!(ckpt = malloc(cap))) {
        free(ckdir);
        return cli_fail("out of memory");
    }
    snprintf(ckpt, cap, "%s/checkpoint.bin", dir);
    const bool gguf = n >= 5 && !strcmp(o.out + n - 5, ".gguf");
    cli_io io[] = {{"BASE", pos[0], CLI_IN},
                   {"--data", o.data, CLI_IN},
                   {"--valid", o.valid, CLI_IN},
                   {"--tokenizer", common.tokenizer, CLI_IN},
                   {"--resume", o.resume, CLI_IN},
                   {"--ckpt-dir", dir, CLI_OUT_IN_DIR},
                   {"--ckpt-dir checkpoint", ckpt, CLI_OUT},
                   {"-o", o.out, gguf ? CLI_OUT : CLI_OUT_DIR}};
    rc = cli_check_io(io, (int)(sizeof io / sizeof io[0]));
    if (rc != CLI_OK) {
        free(ckdir);
        free(ckpt);
        return rc;
    }
    shrink_set_threads(common.threads);
    log_state ls = {.common = &common};
    shrink_train_params p = shrink_train_params_default();
    fill_params(&p, &o, &common, &ls);
    p.out_dir = dir;
    p.qat = qat;
    shrink_lora_params lp = shrink_lora_params_default();
    lp.rank = o.rank;
    lp.alpha = o.lora_alpha;
    if (o.targets) lp.targets = o.targets;
    lp.dropout = o.dropout;
    lp.rslora = o.rslora;
    lp.out = o.out;
    shrink_lora_result r;
    shrink_status st = shrink_lora_train(pos[0], &p, &lp, &r);
    free(ckdir);
    free(ckpt);
    if (st != SHRINK_OK) return cli_fail_status(st);
    const shrink_train_result *t = &r.train;
    if (common.json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_key(&j, "adapter");        cli_json_str(&j, t->model_out);
        cli_json_key(&j, "format");         cli_json_str(&j, t->format);
        cli_json_key(&j, "rank");           cli_json_int(&j, o.rank);
        cli_json_key(&j, "alpha");          cli_json_num(&j, o.lora_alpha);
        cli_json_key(&j, "step");           cli_json_int(&j, t->step);
        cli_json_key(&j, "resumed_from");   cli_json_int(&j, t->resumed_from);
        cli_json_key(&j, "loss");           cli_json_num(&j, t->loss);
        cli_json_key(&j, "val_loss");       cli_json_num(&j, t->val_loss);
        cli_json_key(&j, "val_loss_start"); cli_json_num(&j, t->val_loss_start);
        cli_json_key(&j, "trainable_params"); cli_json_int(&j, r.n_trainable);
        cli_json_key(&j, "all_params");     cli_json_int(&j, r.n_all);
        cli_json_key(&j, "trainable_pct");
        cli_json_num(&j, r.n_all ? 100.0 * (double)r.n_trainable / (double)r.n_all : 0.0);
        cli_json_key(&j, "train_tokens");   cli_json_int(&j, t->train_tokens);
        cli_json_key(&j, "valid_tokens");   cli_json_int(&j, t->valid_tokens);
        cli_json_key(&j, "seconds");        cli_json_num(&j, t->seconds);
        cli_json_key(&j, "tokens_per_s");   cli_json_num(&j, t->tok_per_s);
        cli_json_key(&j, "peak_rss_bytes"); cli_json_u64(&j, shrink_peak_rss());
        json_ranks(&j, t->step - (t->resumed_from > 0 ? t->resumed_from : 0));
        cli_json_end(&j);
    } else {
        print_trainable(stdout, r.n_trainable, r.n_all);
        if (t->resumed_from >= 0) printf("resumed:    from step %lld\n", (long long)t->resumed_from);
        if (!isnan(t->val_loss_start))
            printf("start:      val_loss %.9g\n", t->val_loss_start);
        printf("final:      step %lld loss %.9g val_loss %.9g\n", (long long)t->step, t->loss,
               t->val_loss);
        printf("adapter:    %s (%s, r %d, alpha %g)\n", t->model_out, t->format, (int)o.rank,
               o.lora_alpha);
        printf("time:       %.2f s, %.0f tok/s\n", t->seconds, t->tok_per_s);
    }
    return CLI_OK;
}

int cmd_train(int argc, char **argv) { return cli_mpi_end(run_train(&spec, argc, argv)); }

int cmd_lora(int argc, char **argv) { return cli_mpi_end(run_lora(argc, argv)); }

int cmd_distill(int argc, char **argv) {
    return cli_mpi_end(run_train(&distill_spec, argc, argv));
}
