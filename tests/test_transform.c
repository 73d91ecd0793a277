/*
 * test_transform.c - the tensor transform (src/model/transform.c), self-contained: small
 * random-weight models (a Llama with GQA, a tied GPT-2 whose Hugging Face file stores Conv1D
 * weights transposed) are written as Hugging Face folders in a mktemp folder, then
 * transformed into GGUF by methods written here:
 *   1. a pruning method (begin: the tensor's max |w| through sk_xf_map_rows; rows: values
 *      below a quarter of it set to zero in place; end_block: zeros counted per thread) gives
 *      exactly the generator's values pruned by hand here, tensor by tensor, f32 bit for bit,
 *      the tied GPT-2 without output.weight (its head is token_embd); the zero count and
 *      the progress (done == total at the end) agree;
 *   2. a method without a row callback (plain conversion) writing matrices as f16 gives
 *      sk_f32_to_f16 of the generator's values;
 *   3. a row callback that fails on one tensor: its status and message come back, and neither
 *      the output nor a temporary file is left; a non-GGUF output is refused.
 * The generator's rows are in llama2.c (interleaved) RoPE order, which is GGUF's, so q/k rows
 * compare without a permutation.
 */
#include "convert/init.h"
#include "model/transform.h"
#include "test_util.h"

#include <dirent.h>
#include <unistd.h>

static char tmp_root[] = "/tmp/test_transform_XXXXXX";

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fputs(text, f);
    return fclose(f) == 0;
}

/* Files in dir (to find temporaries left behind). */
static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))) n++;
    if (d) closedir(d);
    return n;
}

/* A random-weight model of config.json text `json` written as a HF folder `name`; *c, *ip
 * get its config and parameters. */
static int make_model(const char *name, const char *json, char *dir, size_t cap, sk_config *c,
                      sk_init_params *ip) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.json", tmp_root, name);
    float range = 0;
    if (!write_text(path, json) || sk_init_config_load(path, c, &range) != SHRINK_OK) {
        CHECK(0, "%s: config: %s", name, shrink_last_error());
        return 0;
    }
    c->rope_layout = SK_ROPE_INTERLEAVED; /* GGUF's row order: compare q/k as they are */
    memset(ip, 0, sizeof *ip);
    ip->cfg = *c;
    ip->seed = 11;
    ip->init_range = range;
    ip->dtype = SHRINK_DTYPE_F32;
    sk_source src;
    sk_init_source(ip, &src);
    snprintf(dir, cap, "%s/%s", tmp_root, name);
    if (sk_write(&src, dir, SK_FORMAT_HF, NULL) != SHRINK_OK) {
        CHECK(0, "%s: write: %s", name, shrink_last_error());
        return 0;
    }
    return 1;
}

/* The generator's values of output tensor x (a tied head is the token embedding). */
static float *ref_values(const sk_init_params *ip, const sk_xf *xf, const sk_xf_tensor *x) {
    const sk_wtensor *t = &x->t;
    sk_wtensor w = *t;
    if (t->role == SK_ROLE_HEAD && ip->cfg.tied) w = xf->ts[0].t; /* the embedding */
    int64_t n = t->rows * t->cols;
    float *v = malloc((size_t)n * sizeof *v);
    sk_init_spec s = sk_init_spec_of(&ip->cfg, ip->init_range, &w);
    sk_init_fill(&s, ip->seed, 0, n, v);
    return v;
}

/* The tensor called `name` in a parsed GGUF, NULL if absent. */
static const sk_gguf_tensor *gguf_find(const sk_gguf *g, const char *name) {
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].name.len == strlen(name) &&
            !memcmp(g->tensors[i].name.s, name, g->tensors[i].name.len))
            return &g->tensors[i];
    return NULL;
}

/* ---- a pruning method ------------------------------------------------------------------- */

typedef struct prune {
    float   thr;                /* of the tensor being written */
    int64_t cols;               /* its row length */
    float   tmax[64];           /* per-thread max |w| of the begin pass */
    int64_t zeros[64];          /* per-thread zeros made */
    int64_t total_zeros;
    int     fail_on;            /* index of a tensor whose rows fail, -1: none */
    int64_t last_done, last_total;
} prune;

static shrink_status prune_plan(void *user, sk_xf *xf, sk_xf_tensor *x) {
    x->dtype = SHRINK_DTYPE_F32;
    return SHRINK_OK;
}

static shrink_status max_chunk(void *user, int tid, int64_t r, int64_t k, float *rows) {
    prune *p = user;
    (void)r;
    for (int64_t i = 0; i < k * p->cols; i++)
        if (fabsf(rows[i]) > p->tmax[tid]) p->tmax[tid] = fabsf(rows[i]);
    return SHRINK_OK;
}

static shrink_status prune_begin(void *user, sk_xf *xf, sk_xf_tensor *x) {
    prune *p = user;
    const int vec = x->t.n_dims == 1;
    for (int i = 0; i < 64; i++) p->tmax[i] = 0.0f;
    p->cols = vec ? x->t.rows : x->t.cols;
    shrink_status st = sk_xf_map_rows(xf, x, 0, vec ? 1 : x->t.rows, max_chunk, p);
    float mx = 0.0f;
    for (int i = 0; i < xf->n_threads && i < 64; i++)
        if (p->tmax[i] > mx) mx = p->tmax[i];
    p->thr = 0.25f * mx;
    return st;
}

static shrink_status prune_rows(void *user, sk_xf_tensor *x, int tid, int64_t row0, int64_t k,
                                float *rows, uint8_t *dst) {
    prune *p = user;
    if (p->fail_on >= 0 && x->t.role == SK_ROLE_W_DOWN && x->t.layer == 1)
        return sk_error(SHRINK_ERR_IO, "prune: made to fail on '%s' row %lld", x->name,
                        (long long)row0);
    const int64_t cols = x->t.n_dims == 1 ? x->t.rows : x->t.cols;
    for (int64_t i = 0; i < k * cols; i++) {
        if (fabsf(rows[i]) < p->thr) {
            rows[i] = 0.0f;
            p->zeros[tid]++;
        }
    }
    memcpy(dst, rows, (size_t)(k * cols) * sizeof(float));
    return SHRINK_OK;
}

static shrink_status prune_end(void *user, sk_xf *xf, sk_xf_tensor *x, int64_t row0,
                               int64_t n_rows) {
    prune *p = user;
    for (int i = 0; i < 64; i++) {
        p->total_zeros += p->zeros[i];
        p->zeros[i] = 0;
    }
    return SHRINK_OK;
}

static void prune_progress(void *user, int64_t done, int64_t total) {
    prune *p = user;
    p->last_done = done;
    p->last_total = total;
}

/* Transforms the model in `dir` with the pruning method into out.gguf and checks every
 * tensor against the generator's values pruned here. */
static void check_prune(const char *name, const char *dir, const sk_init_params *ip) {
    char out[512];
    snprintf(out, sizeof out, "%s/%s-pruned.gguf", tmp_root, name);
    sk_xf xf;
    prune p;
    memset(&p, 0, sizeof p);
    p.fail_on = -1;
    shrink_status st = sk_xf_open(&xf, dir, NULL, "test_prune");
    CHECK(st == SHRINK_OK, "%s: open: %s", name, shrink_last_error());
    if (st) return;
    CHECK(xf.n_threads <= 64, "%d threads", xf.n_threads);
    sk_xf_method m = {.plan = prune_plan, .begin = prune_begin, .rows = prune_rows,
                      .end_block = prune_end, .user = &p};
    sk_xf_opts o = {.dtype = SHRINK_DTYPE_F32, .file_type = -1, .progress = prune_progress,
                    .progress_user = &p};
    st = sk_xf_write(&xf, out, &m, &o);
    CHECK(st == SHRINK_OK, "%s: write: %s", name, shrink_last_error());
    CHECK(p.last_total > 0 && p.last_done == p.last_total, "%s: progress %lld of %lld", name,
          (long long)p.last_done, (long long)p.last_total);
    sk_map map = {0};
    sk_gguf *g = NULL;
    if (!st && sk_map_file(out, &map) == SHRINK_OK &&
        sk_gguf_parse(map.data, map.size, out, &g) == SHRINK_OK) {
        CHECK(g->n_tensors == xf.n, "%s: %lld tensors written, %lld listed", name,
              (long long)g->n_tensors, (long long)xf.n);
        CHECK(!ip->cfg.tied || !gguf_find(g, "output.weight"), "%s: tied head written twice",
              name);
        int64_t zeros = 0, bad = 0;
        for (int64_t i = 0; i < xf.n; i++) {
            const sk_xf_tensor *x = &xf.ts[i];
            const sk_gguf_tensor *gt = gguf_find(g, x->name);
            int64_t n = x->t.rows * x->t.cols;
            if (!gt || gt->type != 0 || gt->bytes != (uint64_t)n * 4) {
                CHECK(0, "%s: %s missing or not f32 of %lld", name, x->name, (long long)n);
                continue;
            }
            float *v = ref_values(ip, &xf, x);
            float mx = 0.0f;
            for (int64_t k = 0; k < n; k++)
                if (fabsf(v[k]) > mx) mx = fabsf(v[k]);
            const float thr = 0.25f * mx;
            int64_t diff = 0;
            for (int64_t k = 0; k < n; k++) {
                float want = fabsf(v[k]) < thr ? 0.0f : v[k], got;
                zeros += fabsf(v[k]) < thr;
                memcpy(&got, gt->data + 4 * k, 4);
                diff += memcmp(&got, &want, 4) != 0;
            }
            CHECK(diff == 0, "%s: %s: %lld of %lld values differ from the pruned generator's",
                  name, x->name, (long long)diff, (long long)n);
            bad += diff != 0;
            free(v);
        }
        CHECK(p.total_zeros == zeros, "%s: the method counted %lld zeros, %lld by hand", name,
              (long long)p.total_zeros, (long long)zeros);
        CHECK(bad == 0, "%s: %lld tensors differ", name, (long long)bad);
    } else {
        CHECK(0, "%s: cannot read %s back: %s", name, out, shrink_last_error());
    }
    sk_gguf_free(g);
    sk_unmap(&map);
    sk_xf_close(&xf);
    remove(out);
}

/* ---- plain conversion, failures ---------------------------------------------------------- */

static shrink_status f16_plan(void *user, sk_xf *xf, sk_xf_tensor *x) {
    x->dtype = x->t.n_dims == 1 ? SHRINK_DTYPE_F32 : SHRINK_DTYPE_F16;
    return SHRINK_OK;
}

static void check_f16(const char *dir, const sk_init_params *ip) {
    char out[512];
    snprintf(out, sizeof out, "%s/f16.gguf", tmp_root);
    sk_xf xf;
    shrink_status st = sk_xf_open(&xf, dir, NULL, "test_f16");
    CHECK(st == SHRINK_OK, "f16: open: %s", shrink_last_error());
    sk_xf_method m = {.plan = f16_plan};
    sk_xf_opts o = {.dtype = SHRINK_DTYPE_F16, .file_type = -1};
    if (!st) st = sk_xf_write(&xf, out, &m, &o);
    CHECK(st == SHRINK_OK, "f16: write: %s", shrink_last_error());
    sk_map map = {0};
    sk_gguf *g = NULL;
    if (!st && sk_map_file(out, &map) == SHRINK_OK &&
        sk_gguf_parse(map.data, map.size, out, &g) == SHRINK_OK) {
        for (int64_t i = 0; i < xf.n; i++) {
            const sk_xf_tensor *x = &xf.ts[i];
            const sk_gguf_tensor *gt = gguf_find(g, x->name);
            int f16 = x->t.n_dims == 2;
            int64_t n = x->t.rows * x->t.cols;
            if (!gt || gt->type != (uint32_t)(f16 ? 1 : 0)) {
                CHECK(0, "f16: %s missing or of type %u", x->name, gt ? gt->type : 99u);
                continue;
            }
            float *v = ref_values(ip, &xf, x);
            int64_t diff = 0;
            for (int64_t k = 0; k < n; k++) {
                if (f16) {
                    uint16_t h = (uint16_t)(gt->data[2 * k] | gt->data[2 * k + 1] << 8);
                    diff += h != sk_f32_to_f16(v[k]);
                } else {
                    diff += memcmp(gt->data + 4 * k, &v[k], 4) != 0;
                }
            }
            CHECK(diff == 0, "f16: %s: %lld values differ", x->name, (long long)diff);
            free(v);
        }
    } else {
        CHECK(0, "f16: cannot read %s back: %s", out, shrink_last_error());
    }
    sk_gguf_free(g);
    sk_unmap(&map);
    sk_xf_close(&xf);
    remove(out);
}

static void check_failures(const char *dir) {
    char out[512];
    snprintf(out, sizeof out, "%s/fail.gguf", tmp_root);
    int before = count_files(tmp_root);
    sk_xf xf;
    prune p;
    memset(&p, 0, sizeof p);
    p.fail_on = 1;
    shrink_status st = sk_xf_open(&xf, dir, NULL, "test_prune");
    sk_xf_method m = {.plan = prune_plan, .begin = prune_begin, .rows = prune_rows,
                      .end_block = prune_end, .user = &p};
    sk_xf_opts o = {.dtype = SHRINK_DTYPE_F32, .file_type = -1};
    if (!st) st = sk_xf_write(&xf, out, &m, &o);
    CHECK(st == SHRINK_ERR_IO && strstr(shrink_last_error(), "made to fail on 'blk.1.ffn_down"),
          "a failing row callback: status %d, '%s'", (int)st, shrink_last_error());
    CHECK(access(out, F_OK) != 0, "the output exists after a failure");
    CHECK(count_files(tmp_root) == before, "files left in %s: %d, were %d", tmp_root,
          count_files(tmp_root), before);
    sk_xf_close(&xf);

    snprintf(out, sizeof out, "%s/out-hf", tmp_root);
    st = sk_xf_open(&xf, dir, NULL, "test_prune");
    p.fail_on = -1;
    if (!st) st = sk_xf_write(&xf, out, &m, &o);
    CHECK(st == SHRINK_ERR_UNSUPPORTED && access(out, F_OK) != 0, "a HF output: status %d",
          (int)st);
    sk_xf_close(&xf);
}

int main(void) {
    if (!mkdtemp(tmp_root)) {
        CHECK(0, "mkdtemp");
        return test_summary("test_transform");
    }
    char llama[512], gpt2[512];
    sk_config c;
    sk_init_params ipl, ipg;
    int ok_l = make_model("llama", "{\"model_type\": \"llama\", \"hidden_size\": 64, "
                          "\"intermediate_size\": 160, \"num_hidden_layers\": 2, "
                          "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
                          "\"vocab_size\": 96, \"max_position_embeddings\": 64}",
                          llama, sizeof llama, &c, &ipl);
    int ok_g = make_model("gpt2", "{\"model_type\": \"gpt2\", \"n_embd\": 64, \"n_layer\": 2, "
                          "\"n_head\": 4, \"vocab_size\": 96, \"n_positions\": 64}",
                          gpt2, sizeof gpt2, &c, &ipg);
    if (ok_l) {
        check_prune("llama", llama, &ipl);
        check_f16(llama, &ipl);
        check_failures(llama);
    }
    if (ok_g) {
        CHECK(ipg.cfg.tied, "the GPT-2 is tied");
        check_prune("gpt2", gpt2, &ipg);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_root);
    return test_summary("test_transform");
}
