/*
 * train.h - the training engine's internal interface: fp32 master parameters of a model, the
 * training forward pass and its backward pass (gradients of the mean cross-entropy), and the
 * layer functions they are made of (layers.c: <layer>_forward / <layer>_backward pairs).
 * Nothing outside src/ (and tests/) includes this.
 *
 * Shapes: B = sequences in a batch, T = positions per sequence, N = B*T rows, D = dim,
 * H = n_heads, KV = n_kv_heads, hd = head_dim, F = ffn_dim, V = vocab_size, L = n_layers.
 *
 * Parameters are the canonical tensors of the config (formats.h: sk_wtensors), one
 * sk_train_param each, in canonical order, in the decoder's layout: matrices (out, in)
 * row-major (GPT-2's Conv1D weights are (out, in) here although a Hugging Face GPT-2 file
 * stores them (in, out): `conv1d` says so), q/k rows in cfg.rope_layout order (a llama2.c
 * model keeps its interleaved rows). All weights live in one block (`w_all`), all gradients
 * in another (`g_all`), tensor by tensor in table order, so an optimizer may walk either the
 * table or the whole block. A tied head has no row of its own: the token embedding's
 * gradient includes the head's contribution.
 *
 * Typical use (the training loop):
 *     sk_train_model *tm;
 *     sk_train_create_from_model(&tm, model);     // or sk_train_create(&tm, &source)
 *     sk_train_zero_grad(tm);
 *     for (micro-batches) sk_train_forward_backward(tm, tokens, B, T, &loss);  // g +=
 *     ... optimizer step on tm->params[i].w with tm->params[i].g ...
 *     sk_source src; sk_train_source(tm, &src); src.tok = model->tok; sk_write(&src, ...);
 */
#ifndef SK_TRAIN_H
#define SK_TRAIN_H

#include "../model/source.h"

/* ==== parameters ============================================================================ */

typedef struct sk_train_param {
    sk_wtensor     t;        /* canonical name ("h.0.attn.c_attn.weight", no "transformer."
                                prefix), role, layer, shape: t.rows x t.cols (vectors: cols 1) */
    int64_t        n;        /* elements: t.rows * t.cols */
    int64_t        offset;   /* of w / g inside w_all / g_all (elements) */
    int            conv1d;   /* a Hugging Face GPT-2 file stores this matrix transposed,
                                (t.cols, t.rows): compare or save gradients accordingly */
    shrink_dtype   dtype;    /* the source's dtype of this tensor (f16/bf16 are widened) */
    float         *w;        /* (t.rows, t.cols) fp32 master weights (points into w_all) */
    float         *g;        /* same shape: gradients, accumulated (+=) (points into g_all) */
    /* Set by the caller, read by forward_backward (the pointers are borrowed): */
    int            frozen;   /* 1: its gradient is neither computed nor added (g untouched) */
    const float   *mask_f32; /* NULL, or n factors: g += mask * dloss/dw (LoRA, pruning) */
    const uint8_t *mask_u8;  /* NULL, or n flags: an element whose flag is 0 gets no gradient
                                (a masked tensor's gradient goes through a scratch buffer) */
    /* QAT (qat.c): NULL, or n floats, the fake-quantized weights the passes use instead of w
     * (refreshed from w by every pass); qat_dtype their type (valid when wq is set) */
    float         *wq;
    int            qat_dtype;
    /* QAT with learned scales: 1 + the index in params of this matrix's scale parameter
     * ("<name>.qat_scale", (rows, cols / block) floats, one per quantization block); 0: the
     * scales are recomputed from w */
    int64_t        qat_sp;
    /* Optimizer details of appended parameters: the learning rate times lr_mult (0: 1), no
     * weight decay when no_decay (QAT's scales) */
    float          lr_mult;
    int            no_decay;
    /* A frozen matrix held in its stored dtype (sk_train_create_frozen): stored.data set (a
     * view of the model's weights, borrowed), w and g NULL, offset -1, no floats in w_all. */
    sk_mat         stored;
} sk_train_param;

struct sk_train_state; /* activations and work buffers (model_grad.c) */

/* Computation beside each linear layer (LoRA, lora.c). forward: after the base product of
 * projection `which` of layer l, Y (N, out) += f(X (N, in)); backward: given dY, dX += the
 * input gradient of f and f's own parameter gradients added. `training` is set by the pass
 * (0: validation) and `passes` counts the training passes. NULL in sk_train_model: none. */
typedef struct sk_train_hook sk_train_hook;
struct sk_train_hook {
    shrink_status (*forward)(sk_train_hook *h, int layer, sk_linear which, const float *X,
                             int N, float *Y);
    shrink_status (*backward)(sk_train_hook *h, int layer, sk_linear which, const float *X,
                              const float *dY, int N, float *dX);
    int training;
    int64_t passes;  /* training passes begun (run() counts them) */
};

typedef struct sk_train_model {
    sk_config       cfg;
    shrink_dtype    dtype;     /* the source's dtype of the matrices (for saving) */
    sk_train_param *params;    /* n_params rows, canonical order */
    int64_t         n_params;
    int64_t         n_elems;   /* floats in w_all (and g_all) */
    float          *w_all;     /* owned */
    float          *g_all;     /* owned */
    /* Gradients accumulated are grad_scale * d(mean loss)/dw (default 1; a loop that
     * accumulates k micro-batches may set 1/k). */
    float           grad_scale;
    struct sk_train_state *st; /* owned; sized for the largest (B, T) seen so far */
    /* Activation checkpointing: 1 keeps only each layer's input (res) through the forward
     * pass and recomputes a layer's other activations in the backward, just before its own
     * backward (one more forward per layer but the last; the same floats, so the gradients are
     * bit-identical): the activations of one layer instead of all. Set before a pass. */
    int             recompute;
    sk_train_hook  *hook;      /* borrowed; NULL: none */
    /* QAT (qat.c): set by sk_qat_attach */
    int             qat;       /* some parameters have wq */
    int             qat_fresh; /* wq computed at least once */
    float          *wq_all;    /* owned: every wq */
    int             qat_mix;   /* sk_mix (formats/qmix.h) the types follow, 0: one dtype */
    int             qat_lsq;   /* learned scales (some parameters have qat_sp) */
} sk_train_model;

/* fp32 master parameters from any tensor source (formats.h): a loaded model
 * (sk_source_from_model), a random initialization (sk_init_source), ... Every canonical
 * tensor is read once through src->fill as f32. On success *out is owned by the caller
 * (sk_train_free); the source is not referenced afterwards. Activations are allocated on the
 * first forward_backward (or sk_train_reserve). */
SK_HIDDEN shrink_status sk_train_create(sk_train_model **out, const sk_source *src);
/* The same from a loaded (or sk_model_open'ed) model; the model may be freed afterwards. */
SK_HIDDEN shrink_status sk_train_create_from_model(sk_train_model **out,
                                                   const struct shrink_model *m);
/* A frozen base (LoRA, QLoRA) from a loaded model (shrink_model_load: weights bound): every
 * parameter frozen, each matrix a view of the model's own in its stored dtype (f32, f16, bf16,
 * q4_K, nf4, ...: sk_train_param.stored, nothing copied or widened), the vectors (norms,
 * biases) as f32 in w_all. The passes run the matrices through the quantized kernels
 * (sk_matmul forward, gemm_acc's dequantizing panels for the input gradient). m must outlive
 * *out. */
SK_HIDDEN shrink_status sk_train_create_frozen(sk_train_model **out,
                                               const struct shrink_model *m);
SK_HIDDEN void sk_train_free(sk_train_model *tm); /* NULL is a no-op */

/* The parameter called `name` (canonical name; a "transformer." prefix is ignored, so the
 * names of a Hugging Face GPT-2 file work too), NULL if none. */
SK_HIDDEN sk_train_param *sk_train_find(sk_train_model *tm, const char *name);

/* Allocates the activation arena for batches up to (B, T) now (forward_backward does it on
 * demand otherwise). T <= cfg.max_seq_len. */
SK_HIDDEN shrink_status sk_train_reserve(sk_train_model *tm, int B, int T);

/* The parameter holding tensor t (by role and layer; a tied head: the token embedding), NULL
 * if none. */
SK_HIDDEN const sk_train_param *sk_train_param_of(const sk_train_model *tm, const sk_wtensor *t);

/* g_all = 0. */
SK_HIDDEN void sk_train_zero_grad(sk_train_model *tm);

/* tokens: (B, T + 1) row-major; row b's inputs are tokens[b][0..T), its targets
 * tokens[b][1..T] (every sequence starts at position 0). *loss = mean cross-entropy over the
 * B*T predictions (natural log). Gradients of grad_scale * loss are ADDED to the g of every
 * parameter that is not frozen (masks applied). Uses the library's threads; call from outside
 * a parallel region. Errors: token ids out of range, T > max_seq_len (SHRINK_ERR_RANGE), out
 * of memory for the arena. */
SK_HIDDEN shrink_status sk_train_forward_backward(sk_train_model *tm, const int32_t *tokens,
                                                  int B, int T, float *loss);
/* The loss only (validation): the same forward pass, no gradient touched. */
SK_HIDDEN shrink_status sk_train_loss(sk_train_model *tm, const int32_t *tokens, int B, int T,
                                      float *loss);

/* A tensor source (formats.h) over the master weights, for sk_write: src->cfg = tm->cfg,
 * src->dtype = the original dtype (pass sk_write_opts.dtype to choose another), tensors
 * filled from w (transposed / q-k-permuted by the writers as each format wants). src borrows
 * tm; the caller sets src->tok / tok_dir / name / inputs. */
SK_HIDDEN void sk_train_source(const sk_train_model *tm, sk_source *src);

/* ==== layers (layers.c) =====================================================================
 *
 * Each backward ADDS its parameter gradients into dw/db (NULL: not wanted, e.g. frozen) and
 * ADDS or WRITES its input gradient as each comment says. Rows are independent unless said
 * otherwise; all functions thread over rows with OpenMP (call from outside a parallel region).
 */

/* out[n] = wte[tok[n]] (+ wpe[n % T] when wpe); wte (V, D) in any dtype. */
SK_HIDDEN void sk_encoder_forward(float *out, const int32_t *tok, const sk_mat *wte,
                               const float *wpe, int N, int T, int D);
/* dwte[tok[n]] += dout[n]; dwpe[n % T] += dout[n] (either may be NULL). */
SK_HIDDEN void sk_encoder_backward(float *dwte, float *dwpe, const float *dout,
                                const int32_t *tok, int N, int T, int D);

/* LayerNorm (biased variance); saves mean, rstd (N) for the backward. */
SK_HIDDEN void sk_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                 const float *w, const float *b, int N, int D, float eps);
/* dinp += ...; dw, db += ... */
SK_HIDDEN void sk_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                                  const float *inp, const float *w, const float *mean,
                                  const float *rstd, int N, int D);

/* RMSNorm x / sqrt(mean(x^2) + eps) * w; saves rstd (N). */
SK_HIDDEN void sk_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N,
                               int D, float eps);
SK_HIDDEN void sk_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                                const float *w, const float *rstd, int N, int D);

/* Y (N, out) = X (N, in) W^T (+ bias); W (out, in): f32, or a frozen matrix in its stored
 * dtype (f16, bf16, q4_K, nf4, ...: sk_matmul's kernels). */
SK_HIDDEN shrink_status sk_matmul_forward(float *Y, const float *X, const sk_mat *W,
                                          const float *bias, int N, int in, int out,
                                          sk_scratch *s);
/* dX (N, in) += dY W; dW += dY^T X; dbias += sum_n dY (any of the three may be NULL; dW only
 * for an f32 W). Both products run on the GEMM micro-kernel (no transposed copies); a W in a
 * stored dtype is dequantized a row's blocks at a time as its panels are packed (never whole),
 * giving exactly the product with the widened W. */
SK_HIDDEN shrink_status sk_matmul_backward(float *dX, float *dW, float *dbias, const float *dY,
                                           const float *X, const sk_mat *W, int N, int in,
                                           int out, sk_scratch *s);
/* The products' work memory (sk_matmul_forward, sk_matmul_backward and the classifier's take
 * it from the scratch s and give it back; nothing is allocated): the largest need of a model of
 * config c over N rows with classifier chunks of `chunk`, at the current kernels and thread
 * count, for f32 matrices and matrices of the n_dts stored dtypes dts (a frozen base's; may be
 * 0). SHRINK_ERR_ARG from a layer whose scratch is too small. */
SK_HIDDEN size_t sk_layers_scratch_bytes(const sk_config *c, int N, int chunk,
                                         const shrink_dtype *dts, int n_dts);

/* RoPE in place on (N, nh, hd) rows, position of row n = n % T; cos/sin tables (T, hd/2). */
SK_HIDDEN void sk_rope_forward(float *x, const float *cos_t, const float *sin_t, int N, int T,
                            int nh, int hd, sk_rope_layout layout);
/* In place: dx (the gradient w.r.t. the rotated values) becomes the gradient w.r.t. the
 * values before rotation (the inverse rotation). */
SK_HIDDEN void sk_rope_backward(float *dx, const float *cos_t, const float *sin_t, int N, int T,
                             int nh, int hd, sk_rope_layout layout);

/* Causal attention with grouped-query heads, B sequences of T positions.
 * q (N, H*hd), k, v (N, KV*hd) -> out (N, H*hd); saves att (B, H, T, T) probabilities. */
SK_HIDDEN void sk_attention_forward(float *out, float *att, const float *q, const float *k,
                                 const float *v, int B, int T, int H, int KV, int hd);
/* dq, dk, dv are WRITTEN (dk, dv sum the gradients of the query heads sharing a kv head).
 * work: omp_get_max_threads() * T floats. */
SK_HIDDEN void sk_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                  const float *q, const float *k, const float *v,
                                  const float *att, int B, int T, int H, int KV, int hd,
                                  float *work);

/* GELU, tanh approximation, elementwise over n. */
SK_HIDDEN void sk_gelu_forward(float *out, const float *inp, size_t n);
SK_HIDDEN void sk_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n); /* = */

/* SwiGLU: out = silu(gate) * up, elementwise over n. */
SK_HIDDEN void sk_swiglu_forward(float *out, const float *gate, const float *up, size_t n);
SK_HIDDEN void sk_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                               const float *up, size_t n); /* written (=) */

/* Residual: x += y (forward); the backward of a residual add is the identity: the caller
 * passes the same gradient to both branches. */
SK_HIDDEN void sk_residual_forward(float *x, const float *y, size_t n);

/* Fused classifier: for rows [0, N) in chunks of `chunk`, logits = X head^T (V columns),
 * loss += -log softmax(logits)[target], then (when dX or dhead) the logits are turned into
 * their gradient scale * (p - onehot) in place and pushed through the head at once:
 * dX += dlogits head, dhead += dlogits^T X (either NULL: not wanted; dhead only for an f32
 * head, which may otherwise be a frozen one in its stored dtype). Only chunk x V logits
 * exist at any time. *loss = the summed loss (double). work: sk_classifier_work_floats(D, V,
 * chunk) floats. */
SK_HIDDEN shrink_status sk_classifier_forward_backward(double *loss, float *dX, float *dhead,
                                                       const float *X, const sk_mat *head,
                                                       const int32_t *targets, int N, int D,
                                                       int V, float scale, float *work,
                                                       int chunk, sk_scratch *s);
SK_HIDDEN size_t sk_classifier_work_floats(int D, int V, int chunk);
/* Rows of logits the training classifiers hold at once for N rows of V logits (model_grad.c). */
SK_HIDDEN int sk_classifier_chunk(int N, int V);

/* ==== distillation loss (distill_loss.c) ====================================================
 *
 * Per row (one prediction) with student logits z, true next token y, temperature tau and weight
 * alpha in [0, 1]:
 *     loss = alpha tau^2 KL(p_t || softmax(z / tau)) + (1 - alpha) CE(z, y)
 * where p_t is the teacher's distribution at temperature tau over a set S of K tokens,
 * renormalized over S: the whole vocabulary (K = V, idx NULL), its top K (--top-k K), or its
 * top 1 ("weak" distillation: K = 1, p_t one-hot on the teacher's argmax, KL = -log q[argmax]).
 * d loss / d z_j = alpha tau (q_j - p_t,j) + (1 - alpha) (softmax(z)_j - [j = y]) (q = softmax(z
 * / tau); p_t,j = 0 outside S; this uses sum_S p_t = 1).
 */
typedef struct sk_distill_rows {
    float          alpha;  /* weight of the KL term, in [0, 1] */
    float          tau;    /* temperature > 0 */
    int            K;      /* entries per row; K == V with idx == NULL: the whole vocabulary */
    const int32_t *idx;    /* (N, K) token ids (distinct), or NULL (then K == V, ids 0..V-1) */
    const float   *logp;   /* (N, K) teacher log-probabilities at tau, normalized over the K */
    /* Or rows on demand (idx and logp unused): before the classifier uses rows [r0, r0 + n) it
     * calls fill, which points *idx (NULL when K == V) and *logp at those n rows; calls come in
     * increasing r0, each chunk once, so a feed holds a chunk and a window of rows, never all N
     * (the teacher's forward interleaved with the student's classifier: loop.c). */
    shrink_status (*fill)(void *ctx, int64_t r0, int n, const int32_t **idx, const float **logp);
    void          *fill_ctx;
} sk_distill_rows;

/* From one row of teacher logits z (V): log softmax(z / tau) over the whole vocabulary
 * (K >= V: idx untouched, logp has V entries) or over the K largest logits (ties: lower id
 * first), renormalized over those K; idx gets their ids in decreasing order. */
SK_HIDDEN void sk_distill_teacher_row(const float *z, int V, float tau, int K, int32_t *idx,
                                   float *logp);
/* The top-K part of sk_distill_teacher_row in two steps (the teacher cache stores what the
 * first gives, the second makes the same floats from it): sk_distill_top_k puts the K < V
 * largest logits' ids into idx (decreasing, ties: lower id first) and the logits into zk;
 * sk_distill_top_k_logp turns zk (K, decreasing) into logp in place: (z - z_0)/tau - log sum. */
SK_HIDDEN void sk_distill_top_k(const float *z, int V, int K, int32_t *idx, float *zk);
SK_HIDDEN void sk_distill_top_k_logp(float *zk, int K, float tau);

/* The fused classifier of sk_classifier_forward_backward with the loss above instead of the
 * cross-entropy: for rows [0, N) in chunks, logits = X head^T, the loss of each row added up,
 * then (dX or dhead) the logits become scale * d loss / d z in place and go through the head:
 * dX += dlogits head, dhead += dlogits^T X (either NULL: not wanted). *loss = the summed loss;
 * *ce_sum and *kl_sum (may be NULL) get the summed CE(z, y) and KL(p_t || q) (not weighted).
 * work: sk_classifier_work_floats(D, V, chunk) floats; scratch: as the classifier's
 * (sk_layers_scratch_bytes). */
SK_HIDDEN shrink_status sk_distill_classifier_forward_backward(
    double *loss, float *dX, float *dhead, const float *X, const float *head,
    const int32_t *targets, const sk_distill_rows *t, int N, int D, int V, float scale,
    float *work, int chunk, sk_scratch *scratch, double *ce_sum, double *kl_sum);

/* Teacher rows on demand (sk_distill_rows.fill = sk_distill_feed_rows, fill_ctx = the feed):
 * rows [base, base + have) held in logp (and idx when K < V), whole windows of T rows
 * appended at the end by running window(ctx, j, z) (the teacher's (T, V) logits of window j)
 * and turning each row into log-probabilities at tau over K entries (sk_distill_teacher_row);
 * with K == V the logits land in logp and become log-probabilities in place (z unused). Rows
 * the classifier is done with are dropped from the front. cap = sk_distill_feed_cap(N, T, V):
 * a classifier chunk plus a window (never all N rows of V floats). The rows are the floats of
 * making every row first. Start with base = have = 0. */
typedef struct sk_distill_feed {
    shrink_status (*window)(void *ctx, int64_t j, float *z);
    void    *ctx;
    int      T, V, K;
    float    tau;
    int64_t  n_rows;  /* windows x T */
    int64_t  cap;     /* rows logp and idx hold */
    float   *logp;    /* (cap, K) */
    int32_t *idx;     /* (cap, K) when K < V */
    float   *z;       /* (T, V) when K < V */
    int64_t  base, have;
} sk_distill_feed;
SK_HIDDEN int64_t sk_distill_feed_cap(int N, int T, int V);
SK_HIDDEN shrink_status sk_distill_feed_rows(void *feed, int64_t r0, int n, const int32_t **idx,
                                             const float **logp);

/* sk_train_forward_backward with the distillation loss: t holds B*T teacher rows, in the
 * order of the predictions (row b*T + p). *loss is the mean distillation loss; *ce and *kl (may
 * be NULL) the mean CE and KL. */
SK_HIDDEN shrink_status sk_train_forward_backward_distill(sk_train_model *tm,
                                                          const int32_t *tokens, int B, int T,
                                                          const sk_distill_rows *t, float *loss,
                                                          double *ce, double *kl);
/* The same without gradients (validation). */
SK_HIDDEN shrink_status sk_train_loss_distill(sk_train_model *tm, const int32_t *tokens, int B,
                                              int T, const sk_distill_rows *t, float *loss,
                                              double *ce, double *kl);

/* ==== LoRA on a frozen base (lora.c) =========================================================
 * sk_lora_attach freezes every parameter of tm, appends A (r, in) and B (out, r) for each
 * target projection of each layer ("blk.N.attn_q.lora_a" / "lora_b", trainable, A
 * Kaiming-uniform, B zero) and installs the hook; the loop, optimizer and checkpoints then
 * train them like any parameter. */
typedef struct sk_lora_opts {
    int64_t  rank;
    double   alpha;
    int      targets;   /* bit sk_linear set: projection adapted (SK_LIN_Q .. SK_LIN_DOWN) */
    double   dropout;   /* on the adapter's input, in [0, 1) */
    bool     rslora;    /* scale alpha / sqrt(r) instead of alpha / r */
    uint64_t seed;      /* of A's initialization and the dropout masks */
} sk_lora_opts;

struct sk_lora_train;
SK_HIDDEN shrink_status sk_lora_attach(sk_train_model *tm, const sk_lora_opts *o,
                                       struct sk_lora_train **out);
SK_HIDDEN void sk_lora_train_free(struct sk_lora_train *lt); /* unhooks tm */
SK_HIDDEN int64_t sk_lora_train_params(const struct sk_lora_train *lt); /* trainable elements */
/* The dropout stream's position: training forward passes done (a resumed run sets it). */
SK_HIDDEN void sk_lora_train_set_calls(struct sk_lora_train *lt, int64_t calls);
/* Writes the adapter (model/lora.h: sk_lora_write; .gguf or a PEFT folder). */
SK_HIDDEN shrink_status sk_lora_train_save(const struct sk_lora_train *lt, const char *path,
                                           const char *const *inputs, int n_inputs);

/* shrink_train (lo NULL) or LoRA training (train_api.c): with lo, the adapter is written to
 * adapter_out instead of a model, and *n_trainable / *n_all (may be NULL) get the adapter's and
 * the whole model's parameter counts. */
SK_HIDDEN shrink_status sk_train_run(const char *model_path, const shrink_train_params *p,
                                     const sk_lora_opts *lo, const char *adapter_out,
                                     shrink_train_result *res, int64_t *n_trainable,
                                     int64_t *n_all);

/* ==== quantization-aware training (qat.c) ==================================================
 * Targets: bits 1 << SK_LIN_Q .. 1 << SK_LIN_DOWN, SK_QAT_EMBED (token embedding), SK_QAT_HEAD
 * (the output matrix; a tied model's token embedding). */
#define SK_QAT_EMBED (1 << 12)
#define SK_QAT_HEAD  (1 << 13)
#define SK_QAT_ALL   (0x7f | SK_QAT_EMBED | SK_QAT_HEAD)
/* "q,k,v,o,gate,up,down,embed,output" or "all" (NULL: all) into target bits. */
SK_HIDDEN shrink_status sk_qat_parse_targets(const char *list, int *out);
/* Fake-quantizes the target matrices of tm to `dtype` in every pass from now on (each gets
 * sk_gguf_fallback(dtype, cols), as `shrink quantize` writes it; a matrix whose fallback is
 * f16 is left alone). */
SK_HIDDEN shrink_status sk_qat_attach(sk_train_model *tm, shrink_dtype dtype, int targets);
/* The general form: scheme = a dtype or single-type scheme ("q4_0", "int4_g128", ...) or one of
 * llama.cpp's mixes ("q4_K_M", "q3_K_S", ...: each matrix gets the type `shrink quantize
 * --scheme MIX` writes for it, by the rules of formats/qmix.h). learned: LSQ scales (below);
 * scale_lr their learning rate (0: the weights'), lr the weights' (for the ratio). */
typedef struct sk_qat_opts {
    const char *scheme;
    int         targets;
    int         learned;
    double      scale_lr, lr;
} sk_qat_opts;
SK_HIDDEN shrink_status sk_qat_attach_opts(sk_train_model *tm, const sk_qat_opts *o);
/* Learned scales (LSQ, Esser et al. 2020; qat_lsq.c) for the types whose blocks are one f16
 * scale d and codes on a fixed grid L (x = d L): q4_0 (L = -8..7), q8_0 (-127..127),
 * int4_g32/g64/g128 (-7..7), nf4 (NF4's 16 levels in [-1, 1]). Each block's scale s is a
 * trainable parameter (initialized from the scale the type's quantizer picks for the initial
 * weights); the forward stores d = f16(s), codes q = nearest level of v = x / d (clamped to
 * the grid) and x̂ = the type's dequantization of those bytes, so the written file holds
 * exactly the forward's weights. Backward, from G = dL/dx̂ of a block:
 *     dL/dx = G where v is inside the grid's range, 0 where it is clipped;
 *     dL/ds = gs * sum_j G_j (L_j - v_j) inside, G_j L_j clipped,  gs = 1 / sqrt(G Qp)
 * (LSQ's gradient scale, Qp = the largest level: 7, 7, 127, 1). Whether a dtype has that
 * form: */
SK_HIDDEN int sk_qat_lsq_supported(shrink_dtype dt);
/* Attaches a scale parameter to every QAT matrix of tm (sk_qat_attach first): appends them to
 * the table (trainable, no weight decay, lr_mult) and initializes them. */
SK_HIDDEN shrink_status sk_qat_lsq_attach(sk_train_model *tm, float lr_mult);
/* Forward: p->wq of LSQ parameter p from its w and scales (rows in parallel). */
SK_HIDDEN void sk_qat_lsq_refresh(const sk_train_model *tm, const sk_train_param *p);
/* Backward: G (p->n floats, dL/dŴ of one pass) into p->g (clip mask, and p's element mask if
 * any) and the scales' g (added). */
SK_HIDDEN void sk_qat_lsq_backward(sk_train_model *tm, const sk_train_param *p, const float *G);
/* The bytes of rows [row0, row0 + n) of LSQ parameter p with its learned scales. */
SK_HIDDEN void sk_qat_lsq_rows(const sk_train_model *tm, const sk_train_param *p, int64_t row0,
                               int64_t n, void *dst);
/* Recomputes every wq from w (run by each pass; frozen parameters only the first time). */
SK_HIDDEN shrink_status sk_qat_refresh(sk_train_model *tm);
/* Rows [row0, row0 + n_rows) of QAT parameter p quantized to p->qat_dtype into dst (the bytes
 * the real quantized model holds; dequantized, exactly p->wq's rows after a refresh). */
SK_HIDDEN shrink_status sk_qat_quantize_rows(const sk_train_model *tm,
                                             const sk_train_param *p, int64_t row0,
                                             int64_t n_rows, void *dst);
SK_HIDDEN int64_t sk_qat_elements(const sk_train_model *tm); /* floats in wq_all */
/* GGUF writer options (with sk_train_source) for the real quantized model: QAT matrices in
 * their type through sk_qat_quantize_rows, vectors f32, other matrices in the source's dtype;
 * general.file_type from the type of most QAT elements. */
SK_HIDDEN void sk_qat_write_opts(const sk_train_model *tm, sk_write_opts *o);

#endif /* SK_TRAIN_H */
