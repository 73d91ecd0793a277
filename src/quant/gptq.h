/*
 * gptq.h - GPTQ (Frantar et al. 2023, "GPTQ: Accurate Post-Training Quantization for Generative
 * Pre-trained Transformers", github.com/IST-DASLab/gptq) for one weight matrix W (rows x cols,
 * y = W x) given the Hessian of its inputs H = sum_t x_t x_t^T (gptq.c).
 *
 * The matrix is rounded column by column; the rounding error of column j, divided by U[j][j],
 * is pushed onto the columns not yet rounded along row j of U, the upper Cholesky factor of the
 * damped inverse Hessian (src/model/hessian.h). Options:
 *   damp       fraction of mean(diag H) added to the diagonal (0.01); a Hessian that is not
 *              positive definite is retried with ten times the damping (three times at most)
 *              and the damping that worked is reported;
 *   act_order  columns in order of descending diag(H) (ties by index), with static groups:
 *              the scales of every group are chosen before rounding, from the matrix as given,
 *              so the groups stay the stored blocks of consecutive columns;
 *   block      the lazy-update width: errors are pushed within a block of columns at once and
 *              onto the later columns once per block (the result is the same for any width,
 *              up to the rounding of the sums);
 *   search     without act_order the scales of a group are chosen when its first column is
 *              reached, from the group's current (error-updated) values, by the dtype row's
 *              round-to-nearest quantizer (search = 0: from_f32, ggml's reference formulas) or
 *              its searched one (search = 1: sk_dtype_traits.quantize).
 * Dead inputs (H[c][c] == 0) get weight 0, as in the authors' code.
 *
 * Types served (sk_gptq_serves): q4_0, q4_1, q5_0, q5_1, q8_0, int4_g32/64/128 (and _asym),
 * int8_ch and w8a8 (the same weights). Codes against a fixed scale: sym q = clamp(round(x/d)),
 * asym q = clamp(round((x - m)/d), 0, top), with d and m as stored (f16, or f32 for int8_ch).
 */
#ifndef SK_QUANT_GPTQ_H
#define SK_QUANT_GPTQ_H

#include "../model/transform.h"

typedef struct sk_gptq_opts {
    double  damp;      /* 0.01 */
    int     act_order; /* 0 */
    int64_t block;     /* 128 */
    int     search;    /* 1: scales from the dtype's searched quantizer */
} sk_gptq_opts;

/* The factor of one input's Hessian, shared by the matrices reading that input. */
typedef struct sk_gptq_factor {
    int64_t  n;
    double  *U;      /* upper factor of the damped inverse of the permuted H, packed by rows
                        (src/model/hessian.h: n (n + 1) / 2 doubles) */
    int64_t *perm;   /* (n) column order (identity without act_order) */
    uint8_t *dead;   /* (n) original column c never sees a nonzero input */
    double   damp;   /* the damping that worked */
    int      retries;/* how many times the damping was raised */
} sk_gptq_factor;

/* Whether GPTQ can write dtype t (for rows of cols elements: the group must divide them;
 * cols <= 0: the type alone). */
SK_HIDDEN int sk_gptq_serves(shrink_dtype t, int64_t cols);

/* Factors H (the upper triangle of the symmetric n x n Hessian, packed by rows as
 * src/model/hessian.h says; dead diagonal entries set to 1) under o. Memory: H and two more
 * packed triangles (3 n (n + 1) / 2 doubles). `what` names the matrix in
 * messages. f is freed with sk_gptq_factor_free (also after an error). */
SK_HIDDEN shrink_status sk_gptq_prepare(double *H, int64_t n, const sk_gptq_opts *o,
                                        sk_gptq_factor *f, const char *what);
SK_HIDDEN void sk_gptq_factor_free(sk_gptq_factor *f);

/* GPTQ of W (rows x f->n, f32) into `out` (rows x sk_dtype_row_bytes(t, n) bytes, dtype t);
 * Q (rows x n doubles, may be NULL) gets the dequantized values as GPTQ tracked them. */
SK_HIDDEN shrink_status sk_gptq_quantize(const float *W, int64_t rows, const sk_gptq_factor *f,
                                         shrink_dtype t, const sk_gptq_opts *o, uint8_t *out,
                                         double *Q);

/* ---- a whole model ---------------------------------------------------------------------------
 * The layer-by-layer pass (src/model/layerwise.h) over the calibration text: for every layer,
 * the Hessians of its four inputs, then GPTQ of the selected matrices of that layer into
 * their planned dtype (xf->ts[i].dtype), whose quantized bytes are bound into the decoding
 * model so that the next layer is calibrated on the quantized layers' outputs. The caller
 * advances it a layer at a time (sk_gptq_upto) as the writer reaches each layer's tensors and
 * releases each tensor's bytes once written, so memory holds one layer (its Hessians, its
 * quantized bytes, the calibration stream), not the model. */
typedef struct sk_gptq_state sk_gptq_state;

typedef struct sk_gptq_run {
    const char    *in;            /* the model (as opened in xf) */
    const char    *tokenizer_path;
    const char    *calib_path;
    int64_t        calib_tokens;
    int32_t        calib_ctx;     /* 0: min(max_seq_len, 512) */
    sk_gptq_opts   o;
    const uint8_t *sel;           /* (xf->n) 1: GPTQ this tensor if GPTQ serves its dtype */
    int            head;          /* also the output head (the token embedding when tied), from
                                     the Hessian of its input, after the last layer */
    void         (*progress)(void *user, int64_t done, int64_t total); /* layers */
    void          *user;
    /* ranks (docs/scale.md): the calibration windows shared by the ranks, contiguous; the
     * Hessians summed in window order (src/model/layerwise.h), so every rank quantizes every
     * layer as one process does, byte for byte. NULL or one rank: one process. */
    const struct shrink_train_comm *comm;
    /* out */
    uint8_t      **bytes;         /* (xf->n) the rows of each GPTQ'd tensor, else NULL */
    int64_t        n_tokens;
    int64_t        n_matrices;
    int32_t        damp_raised;   /* inputs whose damping had to be raised */
    double         max_damp;      /* the largest damping used */
    int64_t        layers_done, layers_total; /* progress of the pass (the head counted) */
    sk_gptq_state *st;            /* between begin and free */
} sk_gptq_run;

/* Loads the model, encodes the calibration text and embeds it (r->sel must live until free).
 * Free with sk_gptq_run_free, also after an error. */
SK_HIDDEN shrink_status sk_gptq_begin(sk_xf *xf, sk_gptq_run *r);
/* Runs the layers up to `layer` (n_layers: the head too) that have not run yet. */
SK_HIDDEN shrink_status sk_gptq_upto(sk_gptq_run *r, int layer);
/* The layer at which tensor i is GPTQ'd (n_layers: the head), -1 if it is not. */
SK_HIDDEN int sk_gptq_layer_of(const sk_gptq_run *r, int64_t i);
/* Frees tensor i's bytes (written). */
SK_HIDDEN void sk_gptq_release(sk_gptq_run *r, int64_t i);
SK_HIDDEN void sk_gptq_run_free(sk_gptq_run *r, int64_t n);

#endif /* SK_QUANT_GPTQ_H */
