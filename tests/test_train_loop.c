/*
 * test_train_loop.c - the training loop on tiny random models (convert/init.h sources) and in
 * memory data: a model overfits a few hundred random tokens to near-zero loss; a run stopped
 * at a checkpoint and resumed in a fresh trainer ends with the same weights and loss, bit for
 * bit, as the uninterrupted run; two runs with one seed are identical; gradient accumulation
 * matches one large batch; frozen tensors and masked elements do not move; checkpoints from
 * other options, and corrupt ones, are refused; two ranks (two processes joined by pipes, the
 * data-parallel path `mpirun -np 2` takes) end bit-identical to one process with --accum 2 and
 * send 4 bytes per trainable parameter per step. Under sanitizers the runs are shorter.
 */
#include "test_util.h"

#include "convert/init.h"
#include "train/optim.h"

#include <sys/wait.h>
#include <unistd.h>

static int slow; /* sanitizers: fewer steps */

static sk_init_params tiny_params(void) {
    sk_init_params ip = {.seed = 5, .init_range = 0.02f, .dtype = SHRINK_DTYPE_F32};
    sk_config *c = &ip.cfg;
    c->arch        = sk_arch_find("llama");
    c->dim         = 32;
    c->n_layers    = 2;
    c->n_heads     = 4;
    c->n_kv_heads  = 2;
    c->head_dim    = 8;
    c->ffn_dim     = 64;
    c->vocab_size  = 64;
    c->max_seq_len = 32;
    c->norm_eps    = 1e-5f;
    c->rope_theta  = 10000.0f;
    c->rope_layout = SK_ROPE_HALF;
    c->bos_id      = 1;
    c->eos_id      = 2;
    return ip;
}

static sk_train_model *tiny_model(void) {
    sk_init_params ip = tiny_params();
    sk_source src;
    sk_init_source(&ip, &src);
    sk_train_model *tm = NULL;
    CHECK(sk_train_create(&tm, &src) == SHRINK_OK, "sk_train_create: %s", shrink_last_error());
    return tm;
}

/* n pseudo-random tokens in [0, 64) */
static void random_ids(int32_t *ids, int n, uint64_t seed) {
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(sk_rng_next(&seed) % 64);
}

typedef struct copy_at {
    const char *from, *to;
    int64_t     step;
} copy_at;

/* log callback: copies the checkpoint file when `step` is reached */
static void copy_checkpoint(void *user, const shrink_train_log *l) {
    const copy_at *c = user;
    if (l->step != c->step) return;
    CHECK(l->saved, "a checkpoint at step %lld", (long long)l->step);
    FILE *in = fopen(c->from, "rb"), *out = fopen(c->to, "wb");
    CHECK(in && out, "copy the checkpoint");
    char buf[65536];
    size_t n;
    while (in && out && (n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    if (in) fclose(in);
    if (out) fclose(out);
}

/* Trains a fresh tiny model; returns it (the caller frees) and the trainer's final loss. */
static sk_train_model *train_run(const sk_train_opts *o, const sk_tokens *data,
                                 const char *resume, double *loss) {
    sk_train_model *tm = tiny_model();
    if (!tm) return NULL;
    sk_trainer *tr = NULL;
    CHECK(sk_trainer_create(&tr, tm, data, NULL, o) == SHRINK_OK, "trainer: %s",
          shrink_last_error());
    if (!tr) return tm;
    if (resume) CHECK(sk_ckpt_load(tr, resume) == SHRINK_OK, "resume: %s", shrink_last_error());
    CHECK(sk_trainer_run(tr) == SHRINK_OK, "run: %s", shrink_last_error());
    *loss = tr->loss;
    sk_trainer_free(tr);
    return tm;
}

/* ==== overfitting ========================================================================= */

static void test_overfit(void) {
    int32_t ids[256];
    random_ids(ids, 256, 1);
    sk_tokens data = {.n = 256, .vocab_size = 64, .ids = ids};
    sk_train_opts o = sk_train_opts_default();
    o.steps        = slow ? 60 : 200;
    o.batch        = 8;
    o.ctx          = 32;
    o.sched.kind   = SK_SCHED_CONSTANT;
    o.sched.lr     = 1e-2;
    o.sched.warmup = 10;
    o.sequential   = true;
    double loss = NAN;
    sk_train_model *tm = train_run(&o, &data, NULL, &loss);
    double want = slow ? 0.2 : 0.05;
    CHECK(loss < want, "overfit 256 tokens in %lld steps: loss %.4f (want < %g; ln 64 = 4.16)",
          (long long)o.steps, loss, want);
    printf("overfit: loss %.4f after %lld steps\n", loss, (long long)o.steps);
    sk_train_free(tm);
}

/* ==== resume, determinism ================================================================= */

static void test_resume(const char *dir) {
    int32_t ids[2000];
    random_ids(ids, 2000, 2);
    sk_tokens data = {.n = 2000, .vocab_size = 64, .ids = ids};
    char ckpt[512], copy[512];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.bin", dir);
    snprintf(copy, sizeof copy, "%s/step6.bin", dir);
    sk_train_opts o = sk_train_opts_default();
    o.steps        = 12;
    o.batch        = 3;
    o.ctx          = 16;
    o.sched.lr     = 3e-3;
    o.sched.warmup = 2;
    o.optim.wd     = 0.1;
    o.seed         = 9;
    o.save_every   = 6;
    o.ckpt_path    = ckpt;
    copy_at ca     = {ckpt, copy, 6};
    o.log          = copy_checkpoint;
    o.user         = &ca;
    double la = NAN, lb = NAN, lc = NAN;
    sk_train_model *a = train_run(&o, &data, NULL, &la);
    o.log = NULL;
    o.ckpt_path = NULL;
    sk_train_model *b = train_run(&o, &data, copy, &lb);
    sk_train_model *c = train_run(&o, &data, NULL, &lc);
    if (a && b && c) {
        size_t bytes = (size_t)a->n_elems * sizeof(float);
        CHECK(!memcmp(a->w_all, b->w_all, bytes) && !memcmp(&la, &lb, sizeof la),
              "resumed at step 6 differs from the uninterrupted run (loss %.9g vs %.9g)", lb, la);
        CHECK(!memcmp(a->w_all, c->w_all, bytes) && !memcmp(&la, &lc, sizeof la),
              "two runs with one seed differ (loss %.9g vs %.9g)", lc, la);
        /* the run moved the weights */
        sk_train_model *z = tiny_model();
        CHECK(z && memcmp(a->w_all, z->w_all, bytes), "training changed nothing");
        sk_train_free(z);
    }
    /* a checkpoint of a run with other options, or a corrupt one, is refused */
    sk_trainer *tr = NULL;
    o.sched.lr = 1e-3;
    if (b && sk_trainer_create(&tr, b, &data, NULL, &o) == SHRINK_OK) {
        CHECK(sk_ckpt_load(tr, copy) == SHRINK_ERR_ARG, "other options accepted");
        FILE *f = fopen(copy, "r+b");
        if (f) {
            fseek(f, 200, SEEK_SET);
            fputc(0x5a, f);
            fclose(f);
        }
        CHECK(sk_ckpt_load(tr, copy) == SHRINK_ERR_FORMAT, "a corrupt checkpoint accepted");
        sk_trainer_free(tr);
    }
    sk_train_free(a);
    sk_train_free(b);
    sk_train_free(c);
    unlink(ckpt);
    unlink(copy);
}

/* ==== accumulation, freezing, masks ======================================================= */

static void test_accum_freeze(void) {
    int32_t ids[600];
    random_ids(ids, 600, 3);
    sk_tokens data = {.n = 600, .vocab_size = 64, .ids = ids};
    sk_train_opts o = sk_train_opts_default();
    o.steps      = 4;
    o.ctx        = 16;
    o.sequential = true;
    o.sched.lr   = 1e-3;
    o.batch      = 4;
    double l1 = NAN, l2 = NAN;
    sk_train_model *one = train_run(&o, &data, NULL, &l1);
    o.batch = 2;
    o.accum = 2;
    sk_train_model *two = train_run(&o, &data, NULL, &l2);
    if (one && two) {
        double maxd = 0;
        for (int64_t i = 0; i < one->n_elems; i++)
            maxd = fmax(maxd, fabs((double)one->w_all[i] - two->w_all[i]));
        CHECK(fabs(l1 - l2) < 1e-5 * fabs(l1) && maxd < 1e-5,
              "accum 2 x batch 2 vs batch 4: loss %.9g vs %.9g, max |dw| %.3g", l2, l1, maxd);
    }
    sk_train_free(one);
    sk_train_free(two);

    /* frozen tensor and masked elements */
    sk_train_model *tm = tiny_model();
    if (!tm) return;
    sk_train_model *ref = tiny_model();
    sk_train_param *fz = &tm->params[1], *mk = &tm->params[2];
    fz->frozen = 1;
    uint8_t *mask = calloc((size_t)mk->n, 1);
    for (int64_t i = 0; i < mk->n; i += 2) mask[i] = 1;
    mk->mask_u8 = mask;
    o.accum = 1;
    o.batch = 2;
    sk_trainer *tr = NULL;
    CHECK(sk_trainer_create(&tr, tm, &data, NULL, &o) == SHRINK_OK, "trainer");
    if (tr) CHECK(sk_trainer_run(tr) == SHRINK_OK, "run: %s", shrink_last_error());
    CHECK(!memcmp(fz->w, ref->params[1].w, (size_t)fz->n * 4), "frozen tensor %s moved",
          fz->t.name);
    int held = 1, moved = 0;
    for (int64_t i = 0; i < mk->n; i++) {
        if (!mask[i]) held &= mk->w[i] == ref->params[2].w[i];
        else moved |= mk->w[i] != ref->params[2].w[i];
    }
    CHECK(held && moved, "masked elements of %s (held %d, others moved %d)", mk->t.name, held,
          moved);
    sk_trainer_free(tr);
    free(mask);
    sk_train_free(tm);
    sk_train_free(ref);
}

/* ==== data parallelism over two processes ================================================= */

/* Two ranks joined by pipes: rank 0 sends its x to rank 1, which adds it (x_0 + x_1, rank
 * order) and sends the sum back: the chain the MPI build runs (tools/cli/mpi.c). */
typedef struct pipe_comm {
    int     rd, wr;      /* this rank's ends */
    int     rank;
    int64_t sent;        /* bytes this rank wrote in sums */
} pipe_comm;

static int full_io(int fd, void *buf, size_t n, int wr) {
    uint8_t *p = buf;
    while (n) {
        ssize_t k = wr ? write(fd, p, n) : read(fd, p, n);
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The ordered sum of k parts per rank: rank 0 adds its parts and sends the sum; rank 1 adds
 * its parts one by one to it and sends the total back. */
static shrink_status pipe_sum(pipe_comm *c, void *const *xs, int32_t k, int64_t n,
                              size_t esize, int f64) {
    size_t bytes = (size_t)n * esize;
    void  *other = malloc(bytes ? bytes : 1);
    void  *x     = xs[0];
    int    bad   = !other;
    for (int32_t p = c->rank == 0 ? 1 : 0; !bad && p < k; p++) {
        const void *a = p == 0 ? other : x;
        if (p == 0) bad = full_io(c->rd, other, bytes, 0);
        for (int64_t i = 0; !bad && i < n; i++) {
            if (f64) ((double *)x)[i] = ((const double *)a)[i] + ((double *)xs[p])[i];
            else ((float *)x)[i] = ((const float *)a)[i] + ((float *)xs[p])[i];
        }
    }
    if (!bad && c->rank == 0) bad = full_io(c->wr, x, bytes, 1) || full_io(c->rd, x, bytes, 0);
    else if (!bad) bad = full_io(c->wr, x, bytes, 1);
    c->sent += (int64_t)bytes;
    free(other);
    return bad ? SHRINK_ERR_IO : SHRINK_OK;
}
static shrink_status pipe_sum_f32(void *u, float *const *x, int32_t k, int64_t n) {
    return pipe_sum(u, (void *const *)x, k, n, sizeof(float), 0);
}
static shrink_status pipe_sum_f64(void *u, double *const *x, int32_t k, int64_t n) {
    return pipe_sum(u, (void *const *)x, k, n, sizeof(double), 1);
}

static uint64_t fnv_bytes(const void *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ ((const uint8_t *)p)[i]) * 0x100000001b3ull;
    return h;
}

static sk_train_opts ranks_opts(int32_t accum) {
    sk_train_opts o = sk_train_opts_default();
    o.steps      = 5;
    o.ctx        = 16;
    o.batch      = 2;
    o.accum      = accum;
    o.sched.lr   = 3e-3;
    return o;
}

/* Two ranks with accum 2 (one micro-batch each) and accum 4 (two each: rank 1 keeps its two
 * gradients apart for the chain) against one process with the same accum. Both rank runs come
 * first, before anything else in main (no OpenMP state to fork). */
static void test_ranks(void) {
    enum { NA = 2 };
    static const int32_t accums[NA] = {2, 4};
    static int32_t ids[800];
    random_ids(ids, 800, 7);
    sk_tokens data = {.n = 800, .vocab_size = 64, .ids = ids};
    int p01[2], p10[2], res[2];
    if (pipe(p01) || pipe(p10) || pipe(res)) {
        CHECK(0, "pipe");
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        CHECK(0, "fork");
        return;
    }
    const int rank = pid == 0 ? 1 : 0;
    pipe_comm pc = {.rd = rank ? p01[0] : p10[0], .wr = rank ? p10[1] : p01[1], .rank = rank};
    shrink_train_comm comm = {.rank = rank, .n_ranks = 2, .sum_f32 = pipe_sum_f32,
                              .sum_f64 = pipe_sum_f64, .user = &pc};
    sk_train_model *tm[NA];
    double          loss[NA];
    int64_t         sent[NA];
    /* rank 1's report per run: its weights' hash, loss and bytes sent */
    uint64_t msg[NA][3];
    memset(msg, 0, sizeof msg);
    for (int i = 0; i < NA; i++) {
        sk_train_opts o = ranks_opts(accums[i]);
        o.comm = &comm;
        loss[i] = NAN;
        pc.sent = 0;
        tm[i] = train_run(&o, &data, NULL, &loss[i]);
        sent[i] = pc.sent;
        msg[i][0] = tm[i] ? fnv_bytes(tm[i]->w_all, (size_t)tm[i]->n_elems * 4) : 0;
        memcpy(&msg[i][1], &loss[i], sizeof loss[i]);
        msg[i][2] = (uint64_t)sent[i];
    }
    if (rank == 1) {   /* the child reports and ends */
        int bad = full_io(res[1], msg, sizeof msg, 1);
        for (int i = 0; i < NA; i++) sk_train_free(tm[i]);
        _exit(bad || test_failed ? 1 : 0);
    }
    int status = 0;
    CHECK(full_io(res[0], msg, sizeof msg, 0) == 0, "rank 1 reported nothing");
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "rank 1 failed (status %d)", status);
    for (int i = 0; i < NA; i++) {
        const int32_t accum = accums[i];
        double loss1;
        memcpy(&loss1, &msg[i][1], sizeof loss1);
        /* the reference: one process, the same micro-batches per step */
        sk_train_opts one = ranks_opts(accum);
        double loss_one = NAN;
        sk_train_model *ref = train_run(&one, &data, NULL, &loss_one);
        if (tm[i] && ref) {
            const size_t bytes = (size_t)ref->n_elems * 4;
            CHECK(!memcmp(tm[i]->w_all, ref->w_all, bytes), "rank 0's weights differ from one "
                  "process with accum %d", accum);
            CHECK(msg[i][0] == fnv_bytes(ref->w_all, bytes), "rank 1's weights differ from one "
                  "process with accum %d", accum);
            CHECK(loss[i] == loss_one && loss1 == loss_one, "accum %d: losses: rank 0 %.17g, "
                  "rank 1 %.17g, one process %.17g", accum, loss[i], loss1, loss_one);
            /* per step: one float per trainable parameter (and the loss, a double) each way,
             * whatever the micro-batches per rank */
            const int64_t per_step = ref->n_elems * 4 + 8;
            CHECK(sent[i] == one.steps * per_step && (int64_t)msg[i][2] == one.steps * per_step,
                  "accum %d: bytes sent: rank 0 %lld, rank 1 %lld, want %lld (4 per parameter "
                  "+ 8 per step)", accum, (long long)sent[i], (long long)msg[i][2],
                  (long long)(one.steps * per_step));
            printf("2 ranks = 1 process with accum %d, bit for bit (%lld parameters, %lld bytes "
                   "sent per rank per step)\n", accum, (long long)ref->n_elems,
                   (long long)per_step);
        }
        sk_train_free(tm[i]);
        sk_train_free(ref);
    }
    close(p01[0]); close(p01[1]); close(p10[0]); close(p10[1]); close(res[0]); close(res[1]);
}

int main(void) {
    slow = getenv("ASAN_OPTIONS") || getenv("UBSAN_OPTIONS");
    test_ranks();
    shrink_set_threads(1); /* tiny models: threads only add waiting on a busy machine */
    char dir[] = "/tmp/shrink-test-loop.XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return test_summary("test_train_loop");
    }
    test_overfit();
    test_resume(dir);
    test_accum_freeze();
    rmdir(dir);
    return test_summary("test_train_loop");
}
