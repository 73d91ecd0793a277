/*
 * lora_merge.c - the merging tensor source (lora.h): rows of an adapted projection are read
 * from the wrapped source as f32, every adapter's scale * B[rows] A is added, and the block
 * is converted to the dtype asked for. shrink_merge (src/lora/) writes it through the format
 * writers; shrink_quantize with adapters (src/quant/) quantizes its rows, so a merged and
 * re-quantized model is streamed like any quantization, with nothing holding a whole model.
 */
#include "lora.h"
#include "source.h"

shrink_status sk_lora_read_list(const char *const *paths, const double *scales, int n,
                                const sk_config *cfg, sk_lora **out) {
    *out = NULL;
    sk_lora **end = out;
    for (int i = 0; i < n; i++) {
        shrink_status st = sk_lora_read(paths[i], cfg, cfg->rope_layout, scales ? scales[i] : 1.0,
                                        end);
        if (st) {
            sk_lora_free(*out);
            *out = NULL;
            return st;
        }
        end = &(*end)->next;
    }
    return SHRINK_OK;
}

int sk_lora_role_linear(int role) {
    switch (role) {
    case SK_ROLE_WQ: return SK_LIN_Q;
    case SK_ROLE_WK: return SK_LIN_K;
    case SK_ROLE_WV: return SK_LIN_V;
    case SK_ROLE_WO: return SK_LIN_O;
    case SK_ROLE_W_GATE: return SK_LIN_GATE;
    case SK_ROLE_W_UP: return SK_LIN_UP;
    case SK_ROLE_W_DOWN: return SK_LIN_DOWN;
    default: return -1;
    }
}


int sk_lora_adapted(const sk_lora *list, int l, int which) {
    for (const sk_lora *a = list; a; a = a->next)
        if (a->scale != 0.f && l < a->n_layers &&
            a->pairs[(size_t)l * SK_LORA_N_LIN + which].A)
            return 1;
    return 0;
}

int64_t sk_lora_n_adapted(const sk_lora *list, const sk_config *cfg) {
    int64_t n = 0;
    for (int l = 0; l < cfg->n_layers; l++)
        for (int w = 0; w < SK_LORA_N_LIN; w++) n += sk_lora_adapted(list, l, w);
    return n;
}

static shrink_status merge_fill(void *user, const sk_wtensor *t, int64_t row0, int64_t n_rows,
                                int transposed, shrink_dtype dt, void *dst) {
    sk_lora_merge *ms = user;
    int which = t->n_dims == 2 ? sk_lora_role_linear(t->role) : -1;
    if (which < 0 || t->layer < 0 || !sk_lora_adapted(ms->list, t->layer, which))
        return ms->base.fill(ms->base.user, t, row0, n_rows, transposed, dt, dst);
    if (transposed)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "merge: '%s': the output format asks "
                        "the merged matrix transposed", t->name);
    size_t need = (size_t)n_rows * (size_t)t->cols;
    float *w = dt == SHRINK_DTYPE_F32 ? dst : NULL;
    if (!w) {
        if (need > ms->tmp_n) {
            sk_free(ms->tmp);
            ms->tmp = sk_aligned_alloc(64, need * sizeof(float));
            ms->tmp_n = ms->tmp ? need : 0;
            if (!ms->tmp)
                return sk_error(SHRINK_ERR_NOMEM, "merge: '%s': out of memory", t->name);
        }
        w = ms->tmp;
    }
    shrink_status st = ms->base.fill(ms->base.user, t, row0, n_rows, 0, SHRINK_DTYPE_F32, w);
    if (st) return st;
    const int64_t cols = t->cols;
    for (const sk_lora *a = ms->list; a; a = a->next) {
        const sk_lora_pair *p = &a->pairs[(size_t)t->layer * SK_LORA_N_LIN + which];
        if (!p->A || a->scale == 0.f) continue;
        const float s = a->scale;
        const int64_t r = p->r;
        #pragma omp parallel for schedule(static) if (n_rows * cols * r > 65536)
        for (int64_t i = 0; i < n_rows; i++) {
            const float *b = p->B + (row0 + i) * r;
            float *row = w + i * cols;
            for (int64_t c = 0; c < cols; c++) {
                if (ms->keep_zeros && row[c] == 0.0f) continue; /* a pruned weight */
                float acc = 0.f;
                for (int64_t k = 0; k < r; k++) acc += b[k] * p->A[k * cols + c];
                row[c] += s * acc;
            }
        }
    }
    if (w != dst) return sk_convert_rows(w, SHRINK_DTYPE_F32, dst, dt, n_rows, cols);
    return SHRINK_OK;
}

void sk_lora_merge_source(sk_lora_merge *ms, const sk_source *base, const sk_lora *list,
                          int keep_zeros, sk_source *out) {
    memset(ms, 0, sizeof *ms);
    ms->base = *base;
    ms->list = list;
    ms->keep_zeros = keep_zeros;
    *out = *base;
    out->fill = merge_fill;
    out->user = ms;
}

void sk_lora_merge_free(sk_lora_merge *ms) {
    if (!ms) return;
    sk_free(ms->tmp);
    ms->tmp = NULL;
    ms->tmp_n = 0;
}
