/*
 * transform.h - the tensor transform: what every compression operation (quantize today;
 * prune, low-rank, LoRA merge next) shares. It opens a model without binding its weights,
 * lists the tensors the output will hold, lets the operation choose each one's output dtype,
 * then streams the model through the format writer tensor by tensor: rows are read as f32
 * (dequantizing a quantized input, transposing GPT-2's Conv1D weights), handed to the
 * operation's row callback on the OpenMP threads, and written atomically (temporary file,
 * fsync, rename: src/core/out.h). Nothing holds a whole model: one staging chunk of f32 rows
 * per thread (SK_XF_STAGE_FLOATS, or one row) plus the writer's block.
 *
 * An operation supplies an sk_xf_method:
 *   plan   - the output dtype of each tensor (and its own per-tensor state in x->user);
 *   begin  - optional first pass over a tensor before its rows are written (a whole-tensor
 *            range, a pruning threshold): it may call sk_xf_map_rows;
 *   rows   - the transform of a chunk of rows: it may change the f32 values in place (prune),
 *            and writes them in x->dtype (quantize); NULL converts them as they are;
 *   end_block - optional, after each block the writer asked for (fold per-thread statistics).
 * Tensors the output adds (LoRA pairs, low-rank factors) are rows of the tensor table: the
 * writer lists them and the method fills them like any other.
 *
 * Output: GGUF only for now (per-tensor dtypes are a GGUF writer option; the Hugging Face
 * writer takes one dtype and asks GPT-2's Conv1D weights transposed).
 */
#ifndef SK_MODEL_TRANSFORM_H
#define SK_MODEL_TRANSFORM_H

#include "source.h"

#define SK_XF_STAGE_FLOATS (1u << 18) /* f32 rows staged per thread and step (1 MiB) */

/* One tensor of the output, in writing order. */
typedef struct sk_xf_tensor {
    sk_wtensor   t;          /* as the writer lists it (role, layer, shape) */
    char         name[64];   /* its GGUF name ("blk.3.attn_q.weight") */
    shrink_dtype in_dtype;   /* the model's dtype of it (a quantized input reads as f32) */
    shrink_dtype dtype;      /* output dtype, chosen by the method's plan */
    uint64_t     bytes;      /* output bytes (from dtype and shape, after the plan) */
    void        *user;       /* the method's per-tensor state */
} sk_xf_tensor;

typedef struct sk_xf sk_xf;

typedef struct sk_xf_method {
    /* Sets x->dtype (preset: f32 for vectors, the input's float type for matrices) and may
     * set x->user. Called once per tensor in writing order before anything is written. */
    shrink_status (*plan)(void *user, sk_xf *xf, sk_xf_tensor *x);
    /* Optional: called before the first rows of x are transformed. */
    shrink_status (*begin)(void *user, sk_xf *xf, sk_xf_tensor *x);
    /* Transforms rows [row0, row0 + k) of x, given as f32 in `rows` (k x cols, row-major; may
     * be changed in place), into k rows of x->dtype at dst. A vector is one row of t.rows
     * elements. Called concurrently on the threads for disjoint rows; tid (< xf->n_threads)
     * picks per-thread scratch. NULL: plain conversion (sk_convert_rows). */
    shrink_status (*rows)(void *user, sk_xf_tensor *x, int tid, int64_t row0, int64_t k,
                          float *rows, uint8_t *dst);
    /* Optional: called on the calling thread after each block of x (rows [row0, row0 +
     * n_rows) of the tensor; vectors: 0, 1) is transformed, e.g. to fold per-thread
     * statistics. */
    shrink_status (*end_block)(void *user, sk_xf *xf, sk_xf_tensor *x, int64_t row0,
                               int64_t n_rows);
    void *user;
} sk_xf_method;

typedef struct sk_xf_opts {
    int      dtype;      /* the output's dtype of matrices as a whole (GGUF file type when
                            file_type is -1) */
    int64_t  file_type;  /* GGUF general.file_type (llama_ftype); -1: from dtype */
    /* called after each block with tensor bytes written / to write; may be NULL */
    void   (*progress)(void *user, int64_t done, int64_t total);
    void    *progress_user;
    uint64_t *dry_bytes; /* non-NULL: plan only, write nothing; *dry_bytes = the file's size */
} sk_xf_opts;

struct sk_xf {
    struct shrink_model *model;   /* opened with sk_model_open (nothing bound) */
    sk_source      base;          /* the model as a tensor source */
    sk_xf_tensor  *ts;            /* the output's tensors, in writing order */
    int64_t        n;
    int            n_threads;     /* OpenMP threads the row callbacks run on */
    const char    *what;          /* the operation's name for messages ("quantize") */
    /* streaming state (transform.c) */
    const sk_xf_method *method;
    const sk_xf_opts   *opts;
    int64_t        cur;           /* tensor being written (-1 before the first) */
    float         *stage;         /* (n_threads, stage_floats) f32 rows, one slice per thread */
    size_t         stage_floats;
    uint64_t       done, total;   /* tensor bytes written / to write */
    shrink_status  err;           /* first failure on a thread, and its message */
    char           err_msg[512];
};

/* Opens the model at `in` (tokenizer_path: as shrink_load_params) and lists the output's
 * tensors for GGUF (the canonical list; a tied head is not repeated). `what` names
 * the operation in messages. On failure xf is left closable. */
SK_HIDDEN shrink_status sk_xf_open(sk_xf *xf, const char *in, const char *tokenizer_path,
                                   const char *what);
/* Plans every tensor with m->plan, then writes the transformed model to `out` (GGUF). */
SK_HIDDEN shrink_status sk_xf_write(sk_xf *xf, const char *out, const sk_xf_method *m,
                                    const sk_xf_opts *o);
/* Frees what sk_xf_open and sk_xf_write hold (the model too). Safe on a zeroed xf. */
SK_HIDDEN void sk_xf_close(sk_xf *xf);

/* Called for a chunk of k rows (row0 + r, r from the start of the mapped range) as f32. */
typedef shrink_status (*sk_xf_chunk_fn)(void *user, int tid, int64_t r, int64_t k, float *rows);
/* Reads rows [row0, row0 + n_rows) of x as f32 in chunks dealt round-robin to the threads and
 * calls fn on each (vectors: row0 0, n_rows 1). The first failure stops the others and is
 * returned with its message. For a begin callback's pass over a tensor, or a row callback. */
SK_HIDDEN shrink_status sk_xf_map_rows(sk_xf *xf, const sk_xf_tensor *x, int64_t row0,
                                       int64_t n_rows, sk_xf_chunk_fn fn, void *user);

/* The whole matrix x (t.rows x t.cols) as f32 in *out (sk_aligned_alloc'd: sk_free). */
SK_HIDDEN shrink_status sk_xf_read_f32(sk_xf *xf, const sk_xf_tensor *x, float **out);

#endif /* SK_MODEL_TRANSFORM_H */
