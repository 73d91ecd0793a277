/*
 * student.c - shrink_student: a student cut from its teacher (docs/distillation.md). The cut
 * itself is shrink_prune_structured (structured.c); this file turns "keep N layers, H heads,
 * F neurons" into its removal counts and rankings: every other layer (every_other below),
 * the layers the user lists, or the layers of largest measured KL (sensitivity); heads and
 * neurons by measured KL, activation importance or index (the first ones stay).
 */
#include "prune.h"

#include "../model/source.h"

shrink_student_params shrink_student_params_default(void) {
    shrink_student_params p;
    memset(&p, 0, sizeof p);
    p.pick = SHRINK_PICK_EVERY_OTHER;
    p.calib_tokens = 512;
    p.dtype = -1;
    return p;
}

/* Kept layer i of n out of L: every (L / n)-th from layer 0 when n divides L (every other
 * one at n = L / 2), else spread evenly from the first layer to the last. */
static int every_other(int i, int n, int L) {
    if (L % n == 0) return i * (L / n);
    if (n == 1) return 0;
    return (int)(((int64_t)2 * i * (L - 1) + (n - 1)) / (2 * (n - 1)));
}

/* The student's removal counts and layer ranking from p and the teacher's config c. */
static shrink_status student_plan(const char *teacher, const shrink_student_params *p,
                                  const sk_config *c, shrink_structured_params *sp,
                                  double *layer_scores) {
    const int L = c->n_layers, H = c->n_heads, KV = c->n_kv_heads, F = c->ffn_dim;
    const int keep_l = p->n_layer_list > 0 ? p->n_layer_list : p->layers > 0 ? p->layers : L;
    if (p->layers < 0 || p->heads < 0 || p->ffn < 0 || p->n_layer_list < 0 || p->hidden < 0)
        return sk_error(SHRINK_ERR_ARG, "student: negative layers, heads, FFN or hidden size");
    if (p->hidden > c->dim)
        return sk_error(SHRINK_ERR_ARG, "%s: a student of hidden size %d is bigger than its "
                        "teacher (%d)", teacher, p->hidden, c->dim);
    if (keep_l > L)
        return sk_error(SHRINK_ERR_ARG, "%s: a student of %d layers is bigger than its teacher "
                        "(%d layers)", teacher, keep_l, L);
    if (p->heads > H)
        return sk_error(SHRINK_ERR_ARG, "%s: a student with %d heads is bigger than its teacher "
                        "(%d heads per layer)", teacher, p->heads, H);
    if (p->ffn > F)
        return sk_error(SHRINK_ERR_ARG, "%s: a student with an FFN of %d is bigger than its "
                        "teacher's (%d)", teacher, p->ffn, F);
    if (p->heads && p->heads % KV)
        return sk_error(SHRINK_ERR_ARG, "%s: %d heads is not a multiple of the teacher's %d K/V "
                        "groups (each group keeps the same number of query heads)", teacher,
                        p->heads, KV);
    sp->layers = L - keep_l;
    sp->heads = p->heads ? H - p->heads : 0;
    sp->neurons = p->ffn ? F - p->ffn : 0;
    sp->dims = p->hidden ? c->dim - p->hidden : 0;
    if (!sp->layers && !sp->heads && !sp->neurons && !sp->dims)
        return sk_error(SHRINK_ERR_ARG, "%s: the student would be the teacher itself (%d layers, "
                        "%d heads, FFN %d, hidden %d): keep fewer layers, heads, neurons or "
                        "dimensions", teacher, L, H, F, c->dim);
    if (p->n_layer_list > 0) {
        for (int l = 0; l < L; l++) layer_scores[l] = 0.0;
        for (int i = 0; i < p->n_layer_list; i++) {
            const int32_t l = p->layer_list[i];
            if (l < 0 || l >= L)
                return sk_error(SHRINK_ERR_ARG, "%s: layer %d is not in the teacher (layers 0 "
                                "to %d)", teacher, l, L - 1);
            if (layer_scores[l] != 0.0)
                return sk_error(SHRINK_ERR_ARG, "%s: layer %d is listed twice", teacher, l);
            layer_scores[l] = 1.0;
        }
        sp->layer_scores = layer_scores;
    } else if (p->pick == SHRINK_PICK_EVERY_OTHER) {
        for (int l = 0; l < L; l++) layer_scores[l] = 0.0;
        for (int i = 0; i < keep_l; i++) layer_scores[every_other(i, keep_l, L)] = 1.0;
        sp->layer_scores = layer_scores;
    }
    if (p->pick == SHRINK_PICK_KLD) {
        if (!p->calib_path || !*p->calib_path)
            return sk_error(SHRINK_ERR_ARG, "student: picking by measured KL needs a "
                            "calibration text (--calib FILE)");
        sp->by = SHRINK_RANK_SENSITIVITY;
    } else {
        sp->by = p->calib_path && *p->calib_path ? SHRINK_RANK_ACTIVATION : SHRINK_RANK_INDEX;
    }
    return SHRINK_OK;
}

shrink_status shrink_student(const char *teacher, const char *out,
                             const shrink_student_params *params, shrink_structured_result *r) {
    shrink_student_params def = shrink_student_params_default();
    const shrink_student_params *p = params ? params : &def;
    if (r) memset(r, 0, sizeof *r);
    if (!teacher || !*teacher || !out || !*out)
        return sk_error(SHRINK_ERR_ARG, "student: teacher and output paths are required");
    struct shrink_model *m = NULL;
    shrink_load_params lp = shrink_load_params_default();
    lp.tokenizer_path = p->tokenizer_path;
    shrink_status st = sk_model_open(&m, teacher, &lp);
    if (st) return st;
    const sk_config c = m->cfg;
    shrink_model_free(m);
    double *scores = sk_calloc((size_t)c.n_layers, sizeof *scores);
    if (!scores) return sk_error(SHRINK_ERR_NOMEM, "student: out of memory");
    shrink_structured_params sp = shrink_structured_params_default();
    if (!(st = student_plan(teacher, p, &c, &sp, scores))) {
        sp.calib_path = p->calib_path;
        sp.calib_tokens = p->calib_tokens;
        sp.calib_ctx = p->calib_ctx;
        sp.tokenizer_path = p->tokenizer_path;
        sp.dtype = p->dtype;
        sp.progress = p->progress;
        sp.user = p->user;
        st = shrink_prune_structured(teacher, out, &sp, r);
    }
    sk_free(scores);
    return st;
}
