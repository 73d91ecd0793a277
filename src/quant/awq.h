/*
 * awq.h - scales folded into the weights before quantization (awq.c): AWQ (Lin et al. 2023,
 * activation-aware weight quantization) and SmoothQuant (Xiao et al. 2023).
 *
 * Both rescale the input channels of the linear layers that share an input: W -> W diag(s)
 * and x -> diag(s)^-1 x, where the division is folded into what produced x (the RMSNorm /
 * LayerNorm weight and bias before q/k/v and gate/up, v's rows before o, up's rows before
 * down), so the output model runs no extra operation and any tool loads it. AWQ searches s =
 * mean|x|^alpha over a grid of alpha for the least output error of the quantized group, then
 * clips each quantization group's weights; SmoothQuant takes s = max|x|^a / max|w|^(1-a) so
 * that int8 activations lose less.
 *
 * The result is an sk_wfold per tensor of the transform (sk_xf), applied to the f32 rows as
 * they stream to the quantizer (sk_wfold_apply).
 */
#ifndef SK_QUANT_AWQ_H
#define SK_QUANT_AWQ_H

#include "../model/transform.h"

/* What happens to one tensor's f32 rows before they are quantized. */
typedef struct sk_wfold {
    float  *mul;       /* (cols; a vector's elements) every row times mul, or NULL */
    float  *rdiv;      /* (rows) row r divided by rdiv[r], or NULL */
    float  *clip;      /* (rows * ceil(cols / group)) |w| <= clip[r * ng + g] afterwards, or NULL */
    int64_t group;     /* columns per clip group */
    int64_t clip_row0; /* rows before this are not clipped (GPT-2's q|k part of qkv) */
} sk_wfold;

typedef enum sk_fold_kind { SK_FOLD_AWQ = 1, SK_FOLD_SMOOTH = 2 } sk_fold_kind;

typedef struct sk_fold_params {
    sk_fold_kind kind;
    double       alpha;       /* SmoothQuant's migration strength in [0, 1] */
    int          grid;        /* AWQ: alpha = i / grid, i = 0..grid (default 20) */
    int          clip;        /* AWQ: search the clipping of each quantization group */
    int          exact;       /* the reference quantizers (from_f32) in the searches */
    const char  *calib_path;
    int64_t      calib_tokens;
    int32_t      calib_ctx;   /* tokens per window (0: 512, at most the model's context) */
    const char  *tokenizer_path;
    void       (*progress)(void *user, int64_t done, int64_t total);
    void        *user;
} sk_fold_params;

typedef struct sk_fold_info {
    int64_t tokens;       /* calibration tokens run */
    int32_t n_inputs;     /* inputs whose scales were folded */
    double  mean_alpha;   /* AWQ: mean chosen alpha over them */
    int64_t n_clipped;    /* AWQ: clip groups whose max was lowered */
    float  *act_absmax;   /* SmoothQuant: (n_layers * 2) max |x / s| of the attention and FFN
                             inputs after smoothing (for w8a8_static), malloc'd, or NULL */
} sk_fold_info;

/* Runs the model at `in` over the calibration text (xf: the same model opened for writing,
 * its tensors planned: x->dtype is what each will be written in) and returns one sk_wfold per
 * tensor of xf in *out (sk_wfold_free). */
SK_HIDDEN shrink_status sk_fold_compute(sk_xf *xf, const char *in, const sk_fold_params *p,
                                        sk_wfold **out, sk_fold_info *info);
SK_HIDDEN void sk_wfold_free(sk_wfold *f, int64_t n);

/* Applies f to k rows (row0.. of the tensor; a vector is one row of `cols` elements). */
SK_HIDDEN void sk_wfold_apply(const sk_wfold *f, int64_t row0, int64_t k, float *rows,
                              int64_t cols);

/* AWQ's scale search for one input shared by n_lin matrices W[i] (rows[i] x cols, f32)
 * written in dt[i]: for alpha = a / grid (a = 0..grid), s = max(xmean^alpha, 1e-4) normalised
 * by sqrt(max(s) * min(s)), loss = sum over the matrices and rows of d^T H d with
 * d = w - Q(w * s) / s (H: cols x cols, f32, the input's X^T X / T). The first alpha of least
 * loss wins: *alpha, s (cols), losses (grid + 1 values, may be NULL). exact: Q is the dtype's
 * reference quantizer (from_f32). */
SK_HIDDEN shrink_status sk_awq_search(const float *const *W, const int64_t *rows,
                                      const shrink_dtype *dt, int n_lin, int64_t cols,
                                      const double *xmean, const float *H, int grid, int exact,
                                      float *s, double *alpha, double *losses);

/* AWQ's clipping search on W (rows x cols, f32, written in dt, input X^T X / T = H): for each
 * row from row0 and each group of `group` columns, the max |w| m0 of the group is tried at
 * m0 * (1 - i / 20), i = 0..9, keeping the least d^T H_gg d with d = Q(clamp(w, +-m)) - w.
 * clip: (rows * ceil(cols / group)); rows before row0 get +inf. *n_lowered: groups with i > 0. */
SK_HIDDEN shrink_status sk_awq_clip(const float *W, int64_t rows, int64_t cols, int64_t row0,
                                    shrink_dtype dt, int exact, const float *H, int64_t group,
                                    float *clip, int64_t *n_lowered);

/* The clip group of dtype dt for rows of `cols`: its block when blocks stand alone, else cols. */
SK_HIDDEN int64_t sk_awq_group(shrink_dtype dt, int64_t cols);

/* Writes the model at `in` with the folds of p (clipping off; the searches quantize matrices as
 * q4_0) into `out` (GGUF, every tensor f32): the transformed model before quantization, for
 * tests of exactness. info (may be NULL): what sk_fold_compute said, act_absmax NULL. */
SK_HIDDEN shrink_status sk_fold_write_f32(const char *in, const char *out,
                                          const sk_fold_params *p, sk_fold_info *info);

#endif /* SK_QUANT_AWQ_H */
