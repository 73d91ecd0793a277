/*
 * fuzz_ckpt.c - libFuzzer target: training checkpoints (docs/training.md) through
 * sk_ckpt_load_mem into the trainer of a tiny random Llama (the shape of
 * tests/test_train_loop.c), and, when one is accepted, the rest of the run (two steps).
 *
 * A checksum guards the file, so random bytes stop at the first check. To reach the fields
 * behind it, every input is tried three ways:
 *   1. as it is;
 *   2. with its last 8 bytes replaced by the right checksum (a forged checkpoint);
 *   3. as patches to a valid checkpoint of the tiny model (made once, through sk_ckpt_save):
 *      5-byte records (u32 offset modulo the size, u8 xor), checksum fixed afterwards.
 * Accepted checkpoints must then train without a crash or a sanitizer report: non-finite
 * weights or moments, negative second moments and out-of-range steps are refused at load.
 */
#include "convert/init.h"
#include "train/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int32_t ck_ids[512];

static sk_init_params ck_params(void) {
    sk_init_params ip = {.seed = 5, .init_range = 0.02f, .dtype = SHRINK_DTYPE_F32};
    sk_config *c = &ip.cfg;
    c->arch        = sk_arch_find("llama");
    c->dim         = 16;
    c->n_layers    = 1;
    c->n_heads     = 2;
    c->n_kv_heads  = 1;
    c->head_dim    = 8;
    c->ffn_dim     = 32;
    c->vocab_size  = 32;
    c->max_seq_len = 16;
    c->norm_eps    = 1e-5f;
    c->rope_theta  = 10000.0f;
    c->rope_layout = SK_ROPE_HALF;
    c->bos_id      = 1;
    c->eos_id      = 2;
    return ip;
}

static sk_train_opts ck_opts(void) {
    sk_train_opts o = sk_train_opts_default();
    o.steps      = 2;
    o.batch      = 1;
    o.ctx        = 8;
    o.sched.lr   = 1e-3;
    o.save_every = 0;
    return o;
}

/* A fresh model and trainer over ck_ids. */
static sk_trainer *ck_trainer(sk_train_model **tm, sk_tokens *data) {
    sk_init_params ip = ck_params();
    sk_source src;
    sk_init_source(&ip, &src);
    *tm = NULL;
    if (sk_train_create(tm, &src) != SHRINK_OK) return NULL;
    for (int i = 0; i < 512; i++) ck_ids[i] = (int32_t)((i * 7 + 3) % 32);
    *data = (sk_tokens){.n = 512, .vocab_size = 32, .ids = ck_ids};
    sk_train_opts o = ck_opts();
    sk_trainer *tr = NULL;
    if (sk_trainer_create(&tr, *tm, data, NULL, &o) != SHRINK_OK) return NULL;
    return tr;
}

/* The bytes of a valid checkpoint after one step (plain malloc: kept for the process). */
static uint8_t *valid;
static size_t   valid_n;

static void make_valid(void) {
    sk_train_model *tm;
    sk_tokens data;
    sk_trainer *tr = ck_trainer(&tm, &data);
    const char *dir = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/shrink-fuzz-ckpt-%ld.bin", dir && *dir ? dir : "/tmp",
             (long)getpid());
    if (tr && sk_ckpt_save(tr, path) == SHRINK_OK) {
        FILE *f = fopen(path, "rb");
        if (f && fseek(f, 0, SEEK_END) == 0) {
            long n = ftell(f);
            rewind(f);
            valid = n > 0 ? malloc((size_t)n) : NULL;
            if (valid && fread(valid, 1, (size_t)n, f) == (size_t)n) valid_n = (size_t)n;
        }
        if (f) fclose(f);
    }
    remove(path);
    sk_trainer_free(tr);
    sk_train_free(tm);
}

static void fix_checksum(uint8_t *d, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n - 8; i++) h = (h ^ d[i]) * 0x100000001b3ull;
    for (int k = 0; k < 8; k++) d[n - 8 + (size_t)k] = (uint8_t)(h >> (8 * k));
}

/* What an accepted checkpoint promises (sk_ckpt_load_mem): finite weights and moments, second
 * moments >= 0, the optimizer's step count within the run's. A breach aborts: a finding. */
static void check_accepted(const sk_trainer *tr) {
    const sk_optim *o = tr->opt;
    for (int64_t i = 0; i < tr->tm->n_params; i++)
        for (int64_t k = 0; k < tr->tm->params[i].n; k++) {
            float w = tr->tm->params[i].w[k];
            float m = o->m ? o->m[o->off[i] + k] : 0.0f, v = o->v ? o->v[o->off[i] + k] : 0.0f;
            if (!isfinite(w) || !isfinite(m) || !isfinite(v) || v < 0.0f) abort();
        }
    if (o->t < 0 || o->t > tr->step || tr->step > tr->o.steps) abort();
}

static void try_load(const uint8_t *d, size_t n) {
    sk_train_model *tm;
    sk_tokens data;
    sk_trainer *tr = ck_trainer(&tm, &data);
    if (tr && sk_ckpt_load_mem(tr, d, n, "fuzz.ckpt") == SHRINK_OK) {
        check_accepted(tr);
        (void)sk_trainer_run(tr);
    }
    sk_trainer_free(tr);
    sk_train_free(tm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!valid) make_valid();
    try_load(data, size);
    if (size >= 84) {
        uint8_t *c = malloc(size);
        if (!c) return 0;
        memcpy(c, data, size);
        fix_checksum(c, size);
        try_load(c, size);
        free(c);
    }
    if (valid_n >= 84 && size >= 5) {
        uint8_t *c = malloc(valid_n);
        if (!c) return 0;
        memcpy(c, valid, valid_n);
        for (size_t i = 0; i + 5 <= size; i += 5) {
            uint32_t off = (uint32_t)data[i] | (uint32_t)data[i + 1] << 8 |
                           (uint32_t)data[i + 2] << 16 | (uint32_t)data[i + 3] << 24;
            c[off % (valid_n - 8)] ^= data[i + 4];
        }
        fix_checksum(c, valid_n);
        try_load(c, valid_n);
        free(c);
    }
    return 0;
}
