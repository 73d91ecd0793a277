/*
 * test_student.c - students cut from a teacher (shrink_student, src/prune/student.c) against
 * the teacher itself: every tensor of the student equals, bit for bit, the teacher's slice it
 * was cut from (the kept layers; within them the kept query heads' rows of W_q and columns of
 * W_o, the kept neurons' rows of W_gate / W_up and columns of W_down; norms, embeddings and
 * head whole), for tiny-llama-gqa (HF in, HF out: a listed layer, 2 of 4 heads, 16 of 176
 * neurons, the first ones by index) and stories260K (llama2.c in, GGUF out: every other layer
 * of 5 -> layers 0, 2, 4). The student loads and its logits are finite. --pick kld keeps the
 * layers that shrink_sensitivity (computed separately here) ranks most sensitive. A student
 * as big as or bigger than its teacher, a layer outside it or listed twice, heads that are not
 * a multiple of the K/V groups: SHRINK_ERR_ARG and no output.
 * --hidden (tiny-llama-gqa, hidden 64 -> 40 with 16 neurons, HF out): the kept residual
 * dimensions are the 40 of largest token-embedding column norm (computed here in double), and
 * every tensor is the teacher's sub-matrix on them (embedding / head / W_q,k,v,gate,up
 * columns, W_o / W_down rows, the norms' entries); the student loads, has head_dim 16 with
 * dim 40, and runs with finite logits; a hidden size of 65 is refused.
 */
#include "model/model.h"
#include "test_util.h"

#include <unistd.h>

static char tmp_dir[] = "/tmp/shrink_student_XXXXXX";

/* Row r of W, or column c (col >= 0) as a vector, into dst. */
static void mat_row(const sk_mat *W, int64_t r, float *dst) { sk_mat_row_f32(W, r, dst); }

/* Student rows [0, n) of Ws == teacher rows rmap[i] of Wt (all columns). */
static int rows_equal(const sk_mat *Ws, const sk_mat *Wt, const int64_t *rmap, int64_t n) {
    float *a = malloc((size_t)Ws->cols * sizeof *a), *b = malloc((size_t)Wt->cols * sizeof *b);
    int ok = Ws->rows == n && Ws->cols == Wt->cols;
    for (int64_t i = 0; ok && i < n; i++) {
        mat_row(Ws, i, a);
        mat_row(Wt, rmap ? rmap[i] : i, b);
        ok = memcmp(a, b, (size_t)Ws->cols * sizeof *a) == 0;
    }
    free(a);
    free(b);
    return ok;
}

/* Student columns [0, n) of Ws == teacher columns cmap[j] of Wt (all rows). */
static int cols_equal(const sk_mat *Ws, const sk_mat *Wt, const int64_t *cmap, int64_t n) {
    float *a = malloc((size_t)Ws->cols * sizeof *a), *b = malloc((size_t)Wt->cols * sizeof *b);
    int ok = Ws->cols == n && Ws->rows == Wt->rows;
    for (int64_t r = 0; ok && r < Ws->rows; r++) {
        mat_row(Ws, r, a);
        mat_row(Wt, r, b);
        for (int64_t j = 0; ok && j < n; j++) ok = a[j] == b[cmap[j]];
    }
    free(a);
    free(b);
    return ok;
}

static int vec_equal(const float *a, const float *b, int64_t n) {
    if (!a || !b) return a == b;
    return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

/* Checks student s against teacher t: kept layers lmap, kept query heads qmap (per layer the
 * same), the first F_s neurons. */
static void check_slices(const char *what, shrink_model *s, shrink_model *t, const int *lmap,
                         const int *qmap) {
    const sk_config *cs = &s->cfg, *ct = &t->cfg;
    const int hd = ct->head_dim, Hs = cs->n_heads, Fs = cs->ffn_dim;
    CHECK(rows_equal(&s->tok_emb, &t->tok_emb, NULL, ct->vocab_size), "%s: token embeddings",
          what);
    CHECK(rows_equal(&s->head, &t->head, NULL, ct->vocab_size), "%s: head", what);
    CHECK(vec_equal(s->final_norm, t->final_norm, ct->dim), "%s: final norm", what);
    int64_t *qr = malloc((size_t)Hs * hd * sizeof *qr), *fr = malloc((size_t)Fs * sizeof *fr);
    for (int h = 0; h < Hs; h++)
        for (int i = 0; i < hd; i++) qr[h * hd + i] = (int64_t)qmap[h] * hd + i;
    for (int i = 0; i < Fs; i++) fr[i] = i;
    for (int l = 0; l < cs->n_layers; l++) {
        const sk_layer *a = &s->layers[l], *b = &t->layers[lmap[l]];
        CHECK(vec_equal(a->attn_norm, b->attn_norm, ct->dim), "%s: layer %d attn norm", what, l);
        CHECK(vec_equal(a->ffn_norm, b->ffn_norm, ct->dim), "%s: layer %d ffn norm", what, l);
        CHECK(rows_equal(&a->wq, &b->wq, qr, (int64_t)Hs * hd), "%s: layer %d W_q", what, l);
        CHECK(rows_equal(&a->wk, &b->wk, NULL, b->wk.rows), "%s: layer %d W_k", what, l);
        CHECK(rows_equal(&a->wv, &b->wv, NULL, b->wv.rows), "%s: layer %d W_v", what, l);
        CHECK(cols_equal(&a->wo, &b->wo, qr, (int64_t)Hs * hd), "%s: layer %d W_o", what, l);
        CHECK(rows_equal(&a->w_gate, &b->w_gate, fr, Fs), "%s: layer %d W_gate", what, l);
        CHECK(rows_equal(&a->w_up, &b->w_up, fr, Fs), "%s: layer %d W_up", what, l);
        CHECK(cols_equal(&a->w_down, &b->w_down, fr, Fs), "%s: layer %d W_down", what, l);
    }
    free(qr);
    free(fr);
    /* it runs */
    shrink_context *ctx = NULL;
    int32_t ids[8] = {1, 5, 9, 40, 3, 7, 100, 2};
    float *z = malloc((size_t)8 * cs->vocab_size * sizeof *z);
    int finite = shrink_context_create(&ctx, s, 8, 8) == SHRINK_OK &&
                 shrink_context_eval(ctx, ids, 8, 0, z, 8) == SHRINK_OK;
    for (int64_t i = 0; finite && i < (int64_t)8 * cs->vocab_size; i++) finite = isfinite(z[i]);
    CHECK(finite, "%s: the student runs with finite logits", what);
    free(z);
    shrink_context_free(ctx);
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

static void rm_out(const char *p) {
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    if (system(cmd)) fprintf(stderr, "rm %s failed\n", p);
}

static shrink_model *load(const char *p) {
    shrink_model *m = NULL;
    return shrink_model_load(&m, p, NULL) == SHRINK_OK ? m : NULL;
}

static void bad(const char *teacher, const char *what, const shrink_student_params *p) {
    char out[4200];
    snprintf(out, sizeof out, "%s/bad.gguf", tmp_dir);
    shrink_status st = shrink_student(teacher, out, p, NULL);
    CHECK(st == SHRINK_ERR_ARG, "%s: status %d (%s)", what, (int)st, shrink_last_error());
    CHECK(!exists(out), "%s: output left behind", what);
}

/* Ws[i][j] == Wt[rmap[i]][cmap[j]] for i < nr, j < nc (NULL map: the identity). */
static int sub_equal(const sk_mat *Ws, const sk_mat *Wt, const int64_t *rmap, int64_t nr,
                     const int64_t *cmap, int64_t nc) {
    if (Ws->rows != nr || Ws->cols != nc) return 0;
    float *a = malloc((size_t)Ws->cols * sizeof *a), *b = malloc((size_t)Wt->cols * sizeof *b);
    int ok = 1;
    for (int64_t i = 0; ok && i < nr; i++) {
        mat_row(Ws, i, a);
        mat_row(Wt, rmap ? rmap[i] : i, b);
        for (int64_t j = 0; ok && j < nc; j++) ok = a[j] == b[cmap ? cmap[j] : j];
    }
    free(a);
    free(b);
    return ok;
}

static int vec_sub_equal(const float *a, const float *b, const int64_t *map, int64_t n) {
    if (!a || !b) return a == b;
    for (int64_t i = 0; i < n; i++)
        if (a[i] != b[map[i]]) return 0;
    return 1;
}

/* --hidden D: the D residual dimensions of largest token-embedding column norm, ascending. */
static void check_hidden(const char *model) {
    enum { D = 40, F = 16 };
    char out[4200];
    snprintf(out, sizeof out, "%s/hidden", tmp_dir);
    shrink_student_params p = shrink_student_params_default();
    p.hidden = D;
    p.ffn = F;
    shrink_structured_result r;
    shrink_status s = shrink_student(model, out, &p, &r);
    CHECK(s == SHRINK_OK, "hidden student: %s", shrink_last_error());
    shrink_model *t = load(model), *m = s ? NULL : load(out);
    CHECK(m != NULL, "hidden student loads: %s", shrink_last_error());
    if (!s) {
        CHECK(r.dim_in == 64 && r.dim == D, "hidden: result dim %d -> %d", r.dim_in, r.dim);
        shrink_structured_result_free(&r);
    }
    if (m && t) {
        const sk_config *ct = &t->cfg, *cs = &m->cfg;
        CHECK(cs->dim == D && cs->head_dim == ct->head_dim && cs->n_heads == ct->n_heads &&
              cs->ffn_dim == F && cs->n_layers == ct->n_layers, "hidden: config dim %d "
              "head_dim %d heads %d ffn %d layers %d", cs->dim, cs->head_dim, cs->n_heads,
              cs->ffn_dim, cs->n_layers);
        /* the reference choice: column norms of the embedding, the D largest (ties: lower) */
        const int64_t V = ct->vocab_size, Dt = ct->dim;
        double *nrm = calloc((size_t)Dt, sizeof *nrm);
        float *row = malloc((size_t)Dt * sizeof *row);
        for (int64_t v = 0; v < V; v++) {
            mat_row(&t->tok_emb, v, row);
            for (int64_t d = 0; d < Dt; d++) nrm[d] += (double)row[d] * row[d];
        }
        int64_t dmap[D], fr[F], *qr = malloc((size_t)ct->n_heads * ct->head_dim * sizeof *qr);
        int n = 0;
        for (int64_t d = 0; d < Dt; d++) {
            int above = 0; /* dims ranked before d */
            for (int64_t e = 0; e < Dt; e++) above += nrm[e] > nrm[d] || (nrm[e] == nrm[d] && e < d);
            if (above < D) dmap[n++] = d;
        }
        CHECK(n == D, "hidden: reference kept %d dims", n);
        for (int i = 0; i < F; i++) fr[i] = i;
        const int64_t Q = (int64_t)ct->n_heads * ct->head_dim;
        for (int64_t i = 0; i < Q; i++) qr[i] = i;
        if (cs->dim == D && n == D && cs->ffn_dim == F) {
            CHECK(sub_equal(&m->tok_emb, &t->tok_emb, NULL, V, dmap, D), "hidden: embeddings");
            CHECK(sub_equal(&m->head, &t->head, NULL, V, dmap, D), "hidden: head");
            CHECK(vec_sub_equal(m->final_norm, t->final_norm, dmap, D), "hidden: final norm");
            for (int l = 0; l < cs->n_layers; l++) {
                const sk_layer *a = &m->layers[l], *b = &t->layers[l];
                CHECK(vec_sub_equal(a->attn_norm, b->attn_norm, dmap, D) &&
                      vec_sub_equal(a->ffn_norm, b->ffn_norm, dmap, D), "hidden: layer %d norms", l);
                CHECK(sub_equal(&a->wq, &b->wq, qr, Q, dmap, D) &&
                      sub_equal(&a->wk, &b->wk, NULL, b->wk.rows, dmap, D) &&
                      sub_equal(&a->wv, &b->wv, NULL, b->wv.rows, dmap, D),
                      "hidden: layer %d W_q, W_k, W_v", l);
                CHECK(sub_equal(&a->wo, &b->wo, dmap, D, qr, Q), "hidden: layer %d W_o", l);
                CHECK(sub_equal(&a->w_gate, &b->w_gate, fr, F, dmap, D) &&
                      sub_equal(&a->w_up, &b->w_up, fr, F, dmap, D) &&
                      sub_equal(&a->w_down, &b->w_down, dmap, D, fr, F),
                      "hidden: layer %d FFN", l);
            }
            shrink_context *ctx = NULL;
            int32_t ids[8] = {1, 5, 9, 40, 3, 7, 100, 2};
            float *z = malloc((size_t)8 * V * sizeof *z);
            int finite = shrink_context_create(&ctx, m, 8, 8) == SHRINK_OK &&
                         shrink_context_eval(ctx, ids, 8, 0, z, 8) == SHRINK_OK;
            for (int64_t i = 0; finite && i < 8 * V; i++) finite = isfinite(z[i]);
            CHECK(finite, "hidden: the student runs with finite logits");
            free(z);
            shrink_context_free(ctx);
        }
        free(nrm); free(row); free(qr);
    }
    shrink_model_free(m);
    shrink_model_free(t);
    rm_out(out);
    shrink_student_params q = shrink_student_params_default();
    q.hidden = 65;
    bad(model, "hidden 65 of 64", &q);
}

/* GPT-2 (fused q|k|v in the file, learned positions, LayerNorm with biases, biased matrices):
 * a student of the teacher's layer 1 only (tiny-gpt2, HF -> GGUF) holds every tensor of that
 * layer and every global bit for bit, and runs. */
static int fvec_equal(const float *a, const float *b, int64_t n) {
    if (!a || !b) return a == b;
    return vec_equal(a, b, n);
}

static void check_gpt2(const char *model) {
    char out[4200];
    snprintf(out, sizeof out, "%s/gpt2.gguf", tmp_dir);
    shrink_student_params p = shrink_student_params_default();
    const int32_t keep[1] = {1};
    p.layer_list = keep;
    p.n_layer_list = 1;
    shrink_status s = shrink_student(model, out, &p, NULL);
    CHECK(s == SHRINK_OK, "gpt2 student: %s", shrink_last_error());
    shrink_model *t = load(model), *m = s ? NULL : load(out);
    CHECK(m != NULL && t != NULL, "gpt2 student loads: %s", shrink_last_error());
    if (m && t && m->cfg.n_layers == 1 && m->cfg.dim == t->cfg.dim) {
        const sk_config *c = &t->cfg;
        const int64_t D = c->dim, Q = (int64_t)c->n_heads * c->head_dim,
                      KV = (int64_t)c->n_kv_heads * c->head_dim, F = c->ffn_dim;
        CHECK(rows_equal(&m->tok_emb, &t->tok_emb, NULL, c->vocab_size), "gpt2: token embeddings");
        CHECK(m->pos_emb.data && rows_equal(&m->pos_emb, &t->pos_emb, NULL, t->pos_emb.rows),
              "gpt2: position embeddings");
        CHECK(fvec_equal(m->final_norm, t->final_norm, D) &&
              fvec_equal(m->final_norm_b, t->final_norm_b, D), "gpt2: final norm");
        const sk_layer *a = &m->layers[0], *b = &t->layers[1];
        CHECK(b->bq && b->attn_norm_b && b->b_up, "gpt2: the teacher has biases");
        CHECK(fvec_equal(a->attn_norm, b->attn_norm, D) && fvec_equal(a->attn_norm_b, b->attn_norm_b, D),
              "gpt2: attn norm");
        CHECK(fvec_equal(a->ffn_norm, b->ffn_norm, D) && fvec_equal(a->ffn_norm_b, b->ffn_norm_b, D),
              "gpt2: ffn norm");
        CHECK(rows_equal(&a->wq, &b->wq, NULL, Q) && rows_equal(&a->wk, &b->wk, NULL, KV) &&
              rows_equal(&a->wv, &b->wv, NULL, KV), "gpt2: W_q, W_k, W_v of layer 1");
        CHECK(fvec_equal(a->bq, b->bq, Q) && fvec_equal(a->bk, b->bk, KV) &&
              fvec_equal(a->bv, b->bv, KV), "gpt2: q, k, v biases of layer 1");
        CHECK(rows_equal(&a->wo, &b->wo, NULL, D) && fvec_equal(a->bo, b->bo, D), "gpt2: W_o");
        CHECK(rows_equal(&a->w_up, &b->w_up, NULL, F) && fvec_equal(a->b_up, b->b_up, F) &&
              rows_equal(&a->w_down, &b->w_down, NULL, D) && fvec_equal(a->b_down, b->b_down, D),
              "gpt2: FFN of layer 1");
        shrink_context *ctx = NULL;
        int32_t ids[8] = {50256, 5, 9, 40, 3, 7, 100, 2};
        float *z = malloc((size_t)8 * c->vocab_size * sizeof *z);
        int finite = z && shrink_context_create(&ctx, m, 8, 8) == SHRINK_OK &&
                     shrink_context_eval(ctx, ids, 8, 0, z, 8) == SHRINK_OK;
        for (int64_t i = 0; finite && i < (int64_t)8 * c->vocab_size; i++) finite = isfinite(z[i]);
        CHECK(finite, "gpt2: the student runs with finite logits");
        free(z);
        shrink_context_free(ctx);
    } else if (m && t) {
        CHECK(0, "gpt2 student: %d layers, dim %d", m->cfg.n_layers, m->cfg.dim);
    }
    shrink_model_free(m);
    shrink_model_free(t);
    rm_out(out);
}

int main(void) {
    static char gqa[2048], st260[2048], calib[2048], gpt2[2048];
    if (!mkdtemp(tmp_dir)) {
        CHECK(0, "mkdtemp");
        return test_summary("test_student");
    }
    const char *model = test_need_model(gqa, sizeof gqa, "tiny-llama-gqa");
    const char *g2 = test_need_model(gpt2, sizeof gpt2, "tiny-gpt2");
    if (g2) check_gpt2(g2);
    const char *st = test_need_model(st260, sizeof st260, "stories260K/stories260K.bin");
    const char *text = test_need_asset(calib, sizeof calib, "fixtures/stories260K/ppl_text.txt");
    char out[4200];
    if (model) {
        shrink_student_params p = shrink_student_params_default();
        const int32_t keep[1] = {1};
        p.layer_list = keep;
        p.n_layer_list = 1;
        p.heads = 2; /* of 4 in 2 K/V groups: the first of each group, heads 0 and 2 */
        p.ffn = 16;
        snprintf(out, sizeof out, "%s/gqa", tmp_dir);
        shrink_structured_result r;
        shrink_status s = shrink_student(model, out, &p, &r);
        CHECK(s == SHRINK_OK, "gqa student: %s", shrink_last_error());
        shrink_model *t = load(model), *m = s ? NULL : load(out);
        CHECK(m != NULL, "gqa student loads: %s", shrink_last_error());
        if (m && t) {
            CHECK(m->cfg.n_layers == 1 && m->cfg.n_heads == 2 && m->cfg.n_kv_heads == 2 &&
                  m->cfg.ffn_dim == 16, "gqa student config %d %d %d %d", m->cfg.n_layers,
                  m->cfg.n_heads, m->cfg.n_kv_heads, m->cfg.ffn_dim);
            const int lmap[1] = {1}, qmap[2] = {0, 2};
            if (m->cfg.n_layers == 1 && m->cfg.n_heads == 2 && m->cfg.ffn_dim == 16)
                check_slices("gqa", m, t, lmap, qmap);
        }
        if (!s) shrink_structured_result_free(&r);
        shrink_model_free(m);
        rm_out(out);
        /* bad requests */
        shrink_student_params q = shrink_student_params_default();
        q.layers = 3;
        bad(model, "3 layers of 2", &q);
        q.layers = 2;
        bad(model, "the teacher itself", &q);
        q.layers = 0;
        q.heads = 8;
        bad(model, "8 heads of 4", &q);
        q.heads = 3;
        bad(model, "3 heads in 2 groups", &q);
        q.heads = 0;
        q.ffn = 177;
        bad(model, "ffn 177 of 176", &q);
        q.ffn = 0;
        const int32_t far[1] = {2}, twice[2] = {0, 0};
        q.layer_list = far;
        q.n_layer_list = 1;
        bad(model, "layer 2 of 2", &q);
        q.layer_list = twice;
        q.n_layer_list = 2;
        bad(model, "layer 0 twice", &q);
        shrink_model_free(t);
        check_hidden(model);
    }
    if (st) {
        shrink_student_params p = shrink_student_params_default();
        p.layers = 3; /* every other of 5: 0, 2, 4 */
        snprintf(out, sizeof out, "%s/st.gguf", tmp_dir);
        shrink_status s = shrink_student(st, out, &p, NULL);
        CHECK(s == SHRINK_OK, "stories260K student: %s", shrink_last_error());
        shrink_model *t = load(st), *m = s ? NULL : load(out);
        CHECK(m != NULL, "stories260K student loads: %s", shrink_last_error());
        if (m && t && m->cfg.n_layers == 3) {
            const int lmap[3] = {0, 2, 4}, qmap[8] = {0, 1, 2, 3, 4, 5, 6, 7};
            check_slices("stories260K", m, t, lmap, qmap);
        } else {
            CHECK(0, "stories260K student: %d layers", m ? m->cfg.n_layers : -1);
        }
        shrink_model_free(m);
        rm_out(out);
        if (text) { /* kld: the 2 layers of largest measured KL */
            shrink_sensitivity_params sp = shrink_sensitivity_params_default();
            sp.calib_path = text;
            sp.calib_tokens = 64;
            shrink_sensitivity_result sr;
            s = shrink_sensitivity(st, &sp, &sr);
            CHECK(s == SHRINK_OK, "sensitivity: %s", shrink_last_error());
            p.layers = 2;
            p.pick = SHRINK_PICK_KLD;
            p.calib_path = text;
            p.calib_tokens = 64;
            shrink_structured_result r;
            s = s ? s : shrink_student(st, out, &p, &r);
            CHECK(s == SHRINK_OK, "kld student: %s", shrink_last_error());
            if (!s) {
                int kept = 0;
                for (int l = 0; l < 5; l++) {
                    int removed = 0;
                    for (int k = 0; k < 3; k++) removed |= r.removed_layers[k] == l;
                    if (!removed) kept |= 1 << l;
                }
                int want = 0;
                for (int64_t i = 0; i < sr.n; i++)
                    if (sr.entries[i].rank >= 3) want |= 1 << sr.entries[i].layer;
                CHECK(kept == want, "kld: kept layers mask %x, most sensitive %x", kept, want);
                shrink_structured_result_free(&r);
                shrink_sensitivity_result_free(&sr);
            }
            rm_out(out);
            p.calib_path = NULL;
            bad(st, "kld without a calibration text", &p);
        }
        shrink_model_free(t);
    }
    rmdir(tmp_dir);
    return test_summary("test_student");
}
