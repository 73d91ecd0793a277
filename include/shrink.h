/*
 * shrink.h - the only public header of libshrink.
 *
 * libshrink loads language models (llama2.c checkpoints, Hugging Face folders), tokenizes text
 * exactly like the reference tokenizers, runs the models on the CPU and measures them
 * (perplexity, speed, memory). Compression methods build on this API.
 *
 * Conventions (see docs/architecture.md):
 *   - every fallible function returns shrink_status; SHRINK_OK is 0, errors are negative;
 *     on failure shrink_last_error() holds a message naming the file/function and the problem;
 *   - results come back through out-parameters; whoever calls a creator owns the result and
 *     releases it with the matching _free (every _free accepts NULL);
 *   - the library never prints to stdout and never exits the process.
 */
#ifndef SHRINK_H
#define SHRINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SHRINK_API __attribute__((visibility("default")))
#else
#define SHRINK_API
#endif

#define SHRINK_VERSION "0.1.0"

/* ==== status ============================================================================== */

typedef enum shrink_status {
    SHRINK_OK              = 0,
    SHRINK_ERR_IO          = -1, /* open/read/write/mmap failed */
    SHRINK_ERR_FORMAT      = -2, /* the file is malformed (bad magic, truncated, bad sizes) */
    SHRINK_ERR_NOMEM       = -3, /* allocation failed */
    SHRINK_ERR_UNSUPPORTED = -4, /* well-formed but not something shrink can run */
    SHRINK_ERR_ARG         = -5, /* a bad argument from the caller */
    SHRINK_ERR_RANGE       = -6, /* a value out of its allowed range (token id, position) */
} shrink_status;

/* The message of the last error on this thread ("" if none). Valid until the next failing
 * call on the same thread. */
SHRINK_API const char *shrink_last_error(void);
SHRINK_API const char *shrink_status_name(shrink_status st);

/* Diagnostics that are not errors of a call (e.g. an unknown SHRINK_KERNELS value, read when
 * the kernels are first chosen) go to a log callback: one line of text without a trailing
 * newline, and the `user` pointer given here. The library never prints; without a callback
 * (the default) such messages are dropped. Set it before any other call (it is one global,
 * not synchronized with calls running on other threads); NULL removes it. */
typedef void (*shrink_log_fn)(const char *msg, void *user);
SHRINK_API void shrink_set_log_callback(shrink_log_fn fn, void *user);

/* ==== data types ========================================================================== */

typedef enum shrink_dtype {
    SHRINK_DTYPE_F32  = 0,
    SHRINK_DTYPE_F16  = 1,
    SHRINK_DTYPE_BF16 = 2,
    /* llama.cpp block types, their exact storage layouts (docs/formats.md) */
    SHRINK_DTYPE_Q8_0 = 3,
    SHRINK_DTYPE_Q4_0 = 4,
    SHRINK_DTYPE_Q4_1 = 5,
    SHRINK_DTYPE_Q5_0 = 6,
    SHRINK_DTYPE_Q5_1 = 7,
    SHRINK_DTYPE_Q4_K = 8,
    SHRINK_DTYPE_Q5_K = 9,
    SHRINK_DTYPE_Q6_K = 10,
    /* shrink's own types (docs/formats.md, "shrink's own quantized types"): GGUF type ids
     * 1000 + (value - 11); llama.cpp cannot read them. "row head": per-row f32 scales
     * stored before the row's elements. */
    SHRINK_DTYPE_INT8_CH        = 11, /* int8 per output channel: row head f32 d, x = d*q */
    SHRINK_DTYPE_INT8_CH_ASYM   = 12, /* uint8 per channel: row head f32 d, m; x = m + d*q */
    SHRINK_DTYPE_INT8_T         = 13, /* int8 per tensor: int8_ch with one d in every row */
    SHRINK_DTYPE_INT8_T_ASYM    = 14, /* uint8 per tensor: int8_ch_asym with one d, m */
    SHRINK_DTYPE_INT4_G32       = 15, /* int4 groups of 32, f16 scale: x = d*(q-8) */
    SHRINK_DTYPE_INT4_G64       = 16, /* int4 groups of 64 */
    SHRINK_DTYPE_INT4_G128      = 17, /* int4 groups of 128 */
    SHRINK_DTYPE_INT4_G32_ASYM  = 18, /* uint4 groups of 32, f16 scale and min: x = d*q + m */
    SHRINK_DTYPE_INT4_G64_ASYM  = 19, /* uint4 groups of 64 */
    SHRINK_DTYPE_INT4_G128_ASYM = 20, /* uint4 groups of 128 */
    SHRINK_DTYPE_NF4            = 21, /* NormalFloat4 (bitsandbytes), groups of 64, f16 absmax */
    SHRINK_DTYPE_NF4_DQ         = 22, /* nf4 with 8-bit block scales (row head f32 D) */
    SHRINK_DTYPE_W8A8           = 23, /* int8_ch weights, int8 activations per token */
    SHRINK_DTYPE_W8A8_STATIC    = 24, /* int8_ch weights, calibrated activation scale a */
    /* more llama.cpp block types (added after shrink's own, whose GGUF ids follow the enum) */
    SHRINK_DTYPE_Q2_K = 25,
    SHRINK_DTYPE_Q3_K = 26,
    SHRINK_DTYPE_IQ4_NL = 27, /* 4-bit non-linear grid, blocks of 32 */
    /* shrink's own 2:4 sparse types (GGUF type ids 1014, 1015; docs/formats.md) */
    SHRINK_DTYPE_SPARSE24_F16 = 28, /* 2 of every 4 weights kept: f16 values + positions */
    SHRINK_DTYPE_SPARSE24_I8  = 29, /* as sparse24_f16 with int8 values, row head f32 d */
    /* shrink's palettes (k-means weight sharing, docs/palettes.md): codes of log2(k) bits into
     * a table of k f16 values shared by a group of k rows, entry j in row j's head (6 bytes:
     * f16 entry, u8 j, u8 group rows - 1, u16 cols / 32); GGUF type ids 1016.. (after sparse24_i8) */
    SHRINK_DTYPE_PAL16 = 30,  /* 16 values per 16 rows, 4-bit codes */
    SHRINK_DTYPE_PAL256 = 31, /* 256 values per 256 rows, 8-bit codes */
    SHRINK_DTYPE_PAL4 = 32,   /* 4 values per 4 rows, 2-bit codes */
    /* shrink's unstructured sparse types (GGUF type ids 1019, 1020; docs/formats.md): a bitmap
     * per 64 inputs and the kept values packed, at most half of each row */
    SHRINK_DTYPE_SPARSE_F16 = 33, /* f16 values: 9 bits/weight (+ 64 bits per row) */
    SHRINK_DTYPE_SPARSE_I8 = 34,  /* int8 values, row scale f32 d: 5 bits/weight (+ 96 per row) */
    SHRINK_DTYPE_COUNT
} shrink_dtype;

SHRINK_API const char *shrink_dtype_name(shrink_dtype t);          /* "f32", "q4_K", "int4_g128" */
/* Parses a dtype name: "f32"/"f16"/"bf16" (also "float32", "F16", ...), the llama.cpp block
 * types ("q4_K") and shrink's own types ("int4_g128"; dashes may replace underscores:
 * "int4-g128", "w8a8-static"). Case-insensitive. Returns SHRINK_ERR_ARG if unknown. */
SHRINK_API shrink_status shrink_dtype_parse(const char *name, shrink_dtype *out);
/* Bits per weight of dtype t's storage (8 * block bytes / block elements; row heads, a few
 * bytes per row, not counted): f32 32, q8_0 8.5, q4_K 4.5, q2_K 2.625. */
SHRINK_API double shrink_dtype_bits(shrink_dtype t);
/* Elements per block of dtype t (1 for f32/f16/bf16 and the per-channel types, 32 for q4_0,
 * 256 for the K-quants): a row's length must be a multiple of it. */
SHRINK_API int64_t shrink_dtype_block_size(shrink_dtype t);
/* true for shrink's own types (int8_*, int4_*, nf4*, w8a8*): GGUF files holding them run in
 * shrink only; llama.cpp cannot read them. */
SHRINK_API bool shrink_dtype_is_own(shrink_dtype t);

/* ==== threads ============================================================================= */

/* Number of threads the library's kernels use (0 = one per core). Global, set once. */
SHRINK_API void shrink_set_threads(int n_threads);
SHRINK_API int  shrink_get_threads(void);
/* A description of the CPU features and the kernels chosen, e.g. "avx512 (avx512f, f16c)". */
SHRINK_API const char *shrink_kernels_name(void);

/* ==== models ============================================================================== */

typedef struct shrink_model shrink_model;     /* opaque */

typedef struct shrink_load_params {
    const char *tokenizer_path; /* NULL: look beside the model; else tokenizer.bin/.model/.json
                                   or a folder with vocab.json + merges.txt */
    bool        widen_f32;      /* true: convert f16/bf16 weights to f32 in memory at load */
    bool        no_tokenizer;   /* true: do not load a tokenizer (info on a bare file) */
    bool        allow_nonfinite;/* true: load weights holding NaN or Inf (default: refused,
                                   naming the tensor; shrink_model_nonfinite counts them) */
    /* quantize an f32/f16/bf16 model's matrices in memory while loading (bitsandbytes'
     * load_in_4bit; no file written): a dtype name ("q4_0", "nf4", "int4_g128", "q4_K", ...),
     * every matrix but the position embedding in it (its GGUF fallback where the block does
     * not divide the rows), through the quantizer `shrink quantize --scheme` uses, so the model
     * equals the file that writes. NULL: as stored. */
    const char *load_as;
} shrink_load_params;

SHRINK_API shrink_load_params shrink_load_params_default(void);

/* Loads a GGUF file (arch llama or gpt2, F32/F16/BF16 tensors, tokenizer from its metadata),
 * a llama2.c checkpoint (.bin; tokenizer.bin/tok*.bin beside it) or a Hugging Face
 * folder (config.json + model.safetensors or sharded with model.safetensors.index.json, or
 * the path of a .safetensors file inside such a folder). The weight files are memory-mapped
 * and validated (sizes, offsets, dtypes, shapes) before use.
 * On success *out owns the model; on failure *out is NULL and shrink_last_error() says what
 * was wrong and in which file. */
SHRINK_API shrink_status shrink_model_load(shrink_model **out, const char *path,
                                           const shrink_load_params *params);
SHRINK_API void shrink_model_free(shrink_model *model);
/* NaN and infinite values in tensor i (quantized tensors: in their dequantized rows, so a NaN
 * block scale counts its whole block); -1 if memory for a row cannot be had. */
SHRINK_API int64_t shrink_model_nonfinite(const shrink_model *model, int64_t i);
/* Exact zeros (== 0.0f, after dequantizing) in tensor i: its sparsity is this / elements
 * (`shrink info`); the positions a 2:4 sparse type does not store count. 0 for a bad index,
 * -1 when out of memory. */
SHRINK_API int64_t shrink_model_zeros(const shrink_model *model, int64_t i);

typedef struct shrink_model_info {
    const char *arch;           /* "llama" or "gpt2" */
    const char *format;         /* "llama2c", "safetensors" or "gguf" */
    int32_t     dim;            /* hidden size */
    int32_t     n_layers;
    int32_t     n_heads;
    int32_t     n_kv_heads;
    int32_t     head_dim;
    int32_t     ffn_dim;
    int32_t     vocab_size;
    int32_t     max_seq_len;    /* context length of the model */
    float       norm_eps;
    float       rope_theta;     /* 0 for learned positions */
    bool        tied_embeddings;
    bool        rope_interleaved;
    int32_t     bos_id;         /* -1 if none */
    int32_t     eos_id;         /* -1 if none */
    bool        add_bos;        /* the tokenizer prepends BOS to a text */
    int64_t     n_params;
    int64_t     n_tensors;
    uint64_t    weight_bytes;   /* bytes of weights as held in memory */
    uint64_t    file_bytes;     /* bytes of the weight file(s) */
} shrink_model_info;

SHRINK_API void shrink_model_get_info(const shrink_model *model, shrink_model_info *info);

/* ==== LoRA adapters ======================================================================= */

/* Reads the LoRA adapter at `path` - a PEFT folder (adapter_config.json +
 * adapter_model.safetensors), that folder's .safetensors, or a llama.cpp GGUF LoRA adapter
 * (.gguf, general.type = adapter) - and applies it to `model` at run time without merging:
 * every adapted projection computes W x + scale * (alpha / r) * B (A x) (alpha / sqrt(r) with
 * PEFT's use_rslora). Adapters stack in the order added. The adapter is checked against the
 * model (architecture, target modules, layers, shapes, rank, finite values) first; on failure
 * the model is unchanged and the message names the file and the tensor. Contexts already
 * created see the adapter too. Llama-family bases only (not GPT-2's fused q|k|v). */
SHRINK_API shrink_status shrink_model_add_lora(shrink_model *model, const char *path,
                                               double scale);

typedef struct shrink_lora_info {
    const char *path;
    const char *format;         /* "peft" or "gguf" */
    int64_t     rank;
    double      alpha;
    double      scale;          /* the user's scale */
    int64_t     n_pairs;        /* adapted projections */
    int64_t     n_params;       /* elements of the A and B matrices */
} shrink_lora_info;

/* Number of adapters added to the model, and adapter i (0 <= i < that). */
SHRINK_API int shrink_model_n_lora(const shrink_model *model);
SHRINK_API shrink_status shrink_model_lora(const shrink_model *model, int i,
                                           shrink_lora_info *info);

typedef struct shrink_tensor_info {
    const char  *name;          /* name in the file */
    shrink_dtype dtype;
    int32_t      n_dims;
    int64_t      shape[4];      /* outermost first, as in PyTorch */
    uint64_t     bytes;
} shrink_tensor_info;

/* Tensor i (0 <= i < n_tensors) in file order. Returns SHRINK_ERR_RANGE for a bad index. */
SHRINK_API shrink_status shrink_model_tensor(const shrink_model *model, int64_t i,
                                             shrink_tensor_info *info);

/* Bytes of run-time state (KV cache and activations) for a context of n_ctx tokens and a
 * batch of n_batch tokens processed at once. */
SHRINK_API uint64_t shrink_model_state_bytes(const shrink_model *model, int32_t n_ctx,
                                             int32_t n_batch);

/* ==== converting ========================================================================== */

typedef struct shrink_convert_params {
    const char *to;             /* "gguf", "hf" or "llama2c"; NULL: from the output path
                                   (.gguf -> gguf, .bin -> llama2c, anything else a HF folder) */
    int32_t     dtype;          /* shrink_dtype of the weight matrices, or -1 to keep the
                                   input's (GGUF keeps vectors in f32, llama2.c is all f32) */
    uint64_t    shard_bytes;    /* HF output: largest safetensors shard (0 = 2 GB) */
    const char *tokenizer_path; /* NULL: the input's own tokenizer (beside it / in the GGUF) */
    /* called as tensor bytes are written (done / total); may be NULL */
    void      (*progress)(void *user, int64_t done, int64_t total);
    void       *user;
    bool        allow_nonfinite;/* true: convert weights holding NaN or Inf (default: refused,
                                   naming the tensor, quantized tensors included) */
    bool        head_copy;      /* GGUF of a tied GPT-2: also write output.weight as a copy of
                                   token_embd (llama.cpp builds before March 2025 need it);
                                   default: the head is token_embd, written once */
    bool        allow_requantize;/* a quantized input to another dtype (or widened for HF /
                                   llama2.c output); default: refused, naming the tensor and
                                   its type. Without a dtype a GGUF output keeps every
                                   quantized tensor byte for byte */
} shrink_convert_params;

typedef struct shrink_convert_result {
    const char *format;         /* "gguf", "hf", "llama2c" (static string) */
    shrink_dtype dtype;         /* of the weight matrices written */
    int64_t     n_tensors;      /* tensors in the input */
    int64_t     n_params;
    uint64_t    tensor_bytes;   /* tensor data written */
    double      seconds;
} shrink_convert_result;

SHRINK_API shrink_convert_params shrink_convert_params_default(void);

/* Converts the model at `in` (any format shrink_model_load reads) to `out`, streaming: the
 * input is mapped, each tensor is read, converted and written block by block, so memory stays
 * far below the model's size. The output is written to a temporary beside it and renamed
 * when complete: a failure leaves nothing at `out`, and an output that is the input is
 * refused. `result` may be NULL. */
SHRINK_API shrink_status shrink_convert(const char *in, const char *out,
                                        const shrink_convert_params *params,
                                        shrink_convert_result *result);

/* ==== quantizing ========================================================================== */

struct shrink_quantize_tensor; /* below */

typedef struct shrink_quantize_params {
    const char *scheme;         /* a scheme of shrink_quantize_scheme_name(): "q4_K_M", "q8_0",
                                   "int4_g128", "w8a8_static", ... (required) */
    const char *keep;           /* comma-separated globs on GGUF tensor names kept at
                                   keep_dtype ("output.weight,*.attn_v.*"), or NULL */
    int32_t     keep_dtype;     /* shrink_dtype of kept tensors (default f16) */
    const char *calib_path;     /* w8a8_static: UTF-8 calibration text (required there) */
    int64_t     calib_tokens;   /* tokens of calib_path run through the model (default 4096) */
    const char *tokenizer_path; /* NULL: the input's own tokenizer */
    bool        tensor_stats;   /* fill shrink_quantize_result.tensors */
    bool        ggml_exact;     /* the round-to-nearest reference quantizers (from_f32): for
                                   llama.cpp types llama-quantize's bytes (no imatrix); default
                                   false: q4_0/q4_1/q5_0/q5_1, int4_g*, nf4* search each block's
                                   scale (same layouts, docs/quantization.md) */
    /* called as tensor bytes are written (done / total; calibration reports tokens first
     * with phase 0, then phase 1 is the writing); may be NULL */
    void      (*progress)(void *user, int phase, int64_t done, int64_t total);
    void       *user;
    /* importance matrix (docs/quantization.md, "Importance matrix"): a llama.cpp imatrix file
     * (legacy .dat or GGUF form) whose entries weight every block's scale search; entries must
     * match the model's tensors (names and row lengths). NULL: none, unless imatrix_calib */
    const char *imatrix_path;
    /* compute the importance matrix on the fly on this UTF-8 text (imatrix_ctx tokens per
     * chunk, calib_tokens tokens; 0 = the whole text) instead of reading imatrix_path */
    const char *imatrix_calib;
    int32_t     imatrix_ctx;    /* 0: 512 */
    bool        allow_requantize; /* an input holding quantized tensors is SHRINK_ERR_ARG
                                     unless set (as llama-quantize --allow-requantize) */
    bool        output_q6_K;    /* single llama.cpp types below 6 bits (q4_0 .. q5_K): the output
                                   matrix in q6_K (q8_0 if 256 does not divide its rows), as
                                   llama-quantize's file types (without --pure) do; default
                                   off: every matrix in the scheme's type */
    /* called (with `user`) as each tensor is complete, in writing order: tensor i of n, as
     * the result's tensors[i] will hold it (llama-quantize's line per tensor); may be NULL */
    void      (*tensor_done)(void *user, const struct shrink_quantize_tensor *t, int64_t i,
                             int64_t n);
    /* GPTQ (docs/quantization.md, "GPTQ"): method "gptq" rounds the matrices of the blocks
     * column by column against the Hessian of their inputs on calib_path (calib_tokens tokens
     * in windows of calib_ctx), layer by layer; single-type schemes GPTQ serves only */
    const char *method;         /* NULL or "rtn": round to nearest; "gptq" */
    int32_t     calib_ctx;      /* tokens per calibration window (0: min(512, the model's)) */
    double      gptq_damp;      /* damping, a fraction of the Hessian's mean diagonal (0.01) */
    bool        gptq_act_order; /* columns by descending Hessian diagonal (static groups) */
    int32_t     gptq_block;     /* columns per lazy update block (128) */
    bool        gptq_head;      /* also the output head (the token embedding when tied) */
    /* AWQ and SmoothQuant (docs/quantization.md, "AWQ and SmoothQuant"): method "awq" and
     * smooth run the model over calib_path (calib_tokens tokens, windows of calib_ctx) and fold
     * per-input-channel scales into the preceding norm or linear; "awq": AWQ's searched
     * scales and weight clipping (any scheme but w8a8* / int8_t*) */
    bool        smooth;         /* w8a8, w8a8_static: SmoothQuant before quantizing */
    double      smooth_alpha;   /* its migration strength in [0, 1] (default 0.5) */
    bool        awq_no_clip;    /* AWQ without the clipping search */
    /* LoRA adapters merged into the weights before they are quantized (shrink_merge with a
     * scheme; docs/adapters.md): n_lora paths as shrink_model_add_lora reads them, lora_scales
     * their user scales (NULL: all 1). Round to nearest only: with adapters, the calibrated
     * methods (imatrix, gptq, awq, smooth, w8a8_static) are SHRINK_ERR_ARG. */
    const char *const *lora;
    const double *lora_scales;
    int32_t     n_lora;
    /* method "gptq" under mpirun (docs/scale.md): the calibration windows shared by the ranks,
     * the Hessians summed in window order; rank 0 writes `out`, byte for byte the one-process
     * file; the other ranks write nothing. NULL: one process. */
    const struct shrink_train_comm *comm;
} shrink_quantize_params;

/* One tensor of the output. */
typedef struct shrink_quantize_tensor {
    char         name[64];      /* GGUF name: "blk.3.attn_v.weight" */
    int32_t      n_dims;
    int64_t      shape[2];      /* outermost first: (rows, cols) of a matrix, (n) of a vector */
    shrink_dtype dtype;         /* as written */
    uint64_t     bytes;
    double       rel_rms;       /* ||dequant(q) - w|| / ||w|| (0 for a tensor of zeros) */
    bool         fallback;      /* the scheme's type did not fit the rows: a fallback type */
    bool         kept;          /* matched --keep */
    shrink_dtype wanted;        /* the type the scheme chose; differs from dtype on a fallback */
} shrink_quantize_tensor;

typedef struct shrink_quantize_result {
    const char  *scheme;        /* canonical scheme name (static string) */
    const char  *in_dtype;      /* dtype of >= 90% of the input's matrix elements, else "mixed" */
    uint64_t     in_file_bytes; /* the input's weight file(s) */
    uint64_t     out_file_bytes;
    uint64_t     tensor_bytes;  /* tensor data written */
    int64_t      n_params;      /* elements of the tensors written */
    double       bits_per_weight; /* 8 * tensor_bytes / n_params */
    int64_t      n_tensors;
    int64_t      n_fallback;    /* tensors written in a fallback type */
    bool         requantized;   /* the input held quantized tensors (dequantized first) */
    int64_t      calib_tokens;  /* tokens run for calibration (w8a8_static) */
    double       seconds;
    shrink_quantize_tensor *tensors; /* (n_tensors) with tensor_stats, else NULL; owned by the
                                        result: release with shrink_quantize_result_free */
    int64_t      imatrix_used;  /* tensors quantized with an importance matrix entry */
    int64_t      imatrix_entries; /* entries of the importance matrix */
    int64_t      gptq_matrices; /* --method gptq: matrices GPTQ rounded */
    int32_t      gptq_damp_raised; /* inputs whose Hessian needed more damping */
    double       gptq_max_damp; /* the largest damping used */
    int32_t      fold_inputs;   /* awq / smooth: layer inputs whose scales were folded */
    double       awq_mean_alpha; /* awq: mean chosen alpha over them */
    int64_t      awq_clipped;   /* awq: quantization groups whose max was lowered */
} shrink_quantize_result;

SHRINK_API shrink_quantize_params shrink_quantize_params_default(void);

/* Scheme i (0 <= i < shrink_quantize_scheme_count()), its name ("q4_K_M"); NULL past the end. */
SHRINK_API int32_t     shrink_quantize_scheme_count(void);
SHRINK_API const char *shrink_quantize_scheme_name(int32_t i);

/* What scheme i is, for choosing one (shrink quantize --list). */
typedef struct shrink_quantize_scheme_info {
    const char  *name;                /* "q4_K_M" */
    shrink_dtype dtype;               /* every matrix's type; a mix's base type */
    bool         mix;                 /* per-tensor types by llama.cpp's rules */
    const char  *llama_cpp;           /* llama-quantize's type for the same file ("Q4_K_M",
                                         "Q4_K_S --pure"); NULL: llama.cpp cannot read it */
    const char  *use;                 /* what it is for, one line */
    double       ref_bits_per_weight; /* of the file on the reference model (0: not measured) */
    double       ref_kl;              /* mean KL(original || quantized) there; < 0: not measured */
    const char  *ref;                 /* the reference: model, text, tokens, commit; or NULL */
} shrink_quantize_scheme_info;
SHRINK_API shrink_status shrink_quantize_scheme_get(int32_t i, shrink_quantize_scheme_info *info);
/* The scheme whose file llama-quantize calls `type` (its spelling: "Q4_K_M", also its aliases
 * "Q4_K" ...), NULL if none: `shrink quantize IN OUT Q4_K_M` as with llama-quantize. */
SHRINK_API const char *shrink_quantize_scheme_for_llama_cpp(const char *type);

/* Quantizes the model at `in` (any format shrink_model_load reads; a quantized GGUF is
 * dequantized and quantized again) into the GGUF file `out` with params->scheme (per-tensor
 * rules: docs/quantization.md). Streams tensor by tensor: memory stays near one tensor plus a
 * block of output. Rows are quantized in parallel (shrink_set_threads). The output is written
 * to a temporary beside it and renamed when complete: on failure nothing is left at `out`,
 * and an output that is the input is refused. An unknown scheme is SHRINK_ERR_ARG listing the
 * schemes; w8a8_static without calib_path is SHRINK_ERR_ARG. `result` may be NULL; release it
 * with shrink_quantize_result_free. */
SHRINK_API shrink_status shrink_quantize(const char *in, const char *out,
                                         const shrink_quantize_params *params,
                                         shrink_quantize_result *result);
SHRINK_API void shrink_quantize_result_free(shrink_quantize_result *result);

/* ==== importance matrix (llama.cpp's imatrix) ============================================== */

/* The importance matrix of a model: per input column of every linear layer of the blocks
 * (GGUF names "blk.N.*.weight"; not the output head, as llama-imatrix), the mean over the
 * calibration tokens of x^2 (docs/quantization.md, "Importance matrix"). The text is cut into
 * chunks of calib_ctx tokens, each run from position 0 with its first token replaced by BOS
 * (when the model adds one), exactly as llama-imatrix -c calib_ctx does. */
typedef struct shrink_imatrix_params {
    const char *calib_path;     /* UTF-8 calibration text (required) */
    int64_t     calib_tokens;   /* tokens used, whole chunks (0: every whole chunk of the text;
                                   a text with fewer tokens is SHRINK_ERR_ARG) */
    int32_t     calib_ctx;      /* tokens per chunk (default 512, llama-imatrix's -c) */
    const char *tokenizer_path; /* NULL: the model's own tokenizer */
    void      (*progress)(void *user, int64_t done, int64_t total); /* tokens; may be NULL */
    void       *user;
    /* Ranks (docs/scale.md; NULL or n_ranks 1: one process): rank r runs the contiguous
     * chunks r n / R .. (r + 1) n / R - 1 of the n, the per-chunk sums of every column are
     * added in chunk order through comm->sum_f64 (the additions one process makes, so the
     * file is byte-identical), and only rank 0 writes it. */
    const struct shrink_train_comm *comm;
} shrink_imatrix_params;

typedef struct shrink_imatrix_result {
    int64_t n_entries;          /* matrices in the file */
    int64_t n_chunks;
    int64_t n_tokens;           /* tokens run (n_chunks * calib_ctx) */
    int64_t text_tokens;        /* tokens encoded: the whole text's without calib_tokens,
                                   else at least calib_tokens */
    double  seconds;
} shrink_imatrix_result;

SHRINK_API shrink_imatrix_params shrink_imatrix_params_default(void);

/* Computes the importance matrix of the model at `in` on params->calib_path and writes it to
 * `out` in llama.cpp's legacy imatrix format (what llama-quantize --imatrix reads: per entry
 * the name, the call count and mean(x^2) * calls per column; then the chunk count and the
 * calibration file's name), atomically. A text shorter than asked is SHRINK_ERR_ARG naming
 * how many tokens it has. `result` may be NULL. */
SHRINK_API shrink_status shrink_imatrix(const char *in, const char *out,
                                        const shrink_imatrix_params *params,
                                        shrink_imatrix_result *result);

/* ==== pruning ============================================================================= */

/* Unstructured and N:M pruning of the linear layers (docs/pruning.md). The pruned model is
 * written dense: pruned weights are exact zeros of the output dtype, so a later sparse
 * storage type or a masked fine-tuning can take each tensor's mask from its zeros. */
typedef struct shrink_prune_params {
    const char *method;         /* "threshold", "magnitude", "wanda", "sparsegpt" (required) */
    double      sparsity;       /* fraction of each pruned matrix zeroed, in [0, 1); < 0: unset
                                   (with a pattern: 1 - N/M; threshold: unused) */
    double      threshold;      /* threshold: |w| < threshold is zeroed */
    bool        per_row;        /* magnitude: the sparsity per output row (default: per
                                   matrix); wanda is always per row */
    /* N:M: in every group of M consecutive inputs of a row at most N stay nonzero (the M - N
     * smallest scores are zeroed); 0, 0: unstructured */
    int32_t     pattern_n;
    int32_t     pattern_m;
    const char *keep;           /* comma-separated globs on GGUF tensor names left untouched
                                   (embeddings, head and norms always are), or NULL */
    int32_t     dtype;          /* shrink_dtype of the output's matrices; -1: the input's */
    const char *calib_path;     /* wanda, sparsegpt: UTF-8 calibration text (required there) */
    int64_t     calib_tokens;   /* tokens of it run through the model (default 4096); a
                                   shorter text is an error */
    int32_t     calib_ctx;      /* tokens per calibration window from position 0 (0: the
                                   model's context, at most 512) */
    const char *tokenizer_path; /* NULL: the input's own tokenizer */
    double      damp;           /* sparsegpt: damping, fraction of mean(diag H) (0.01) */
    int32_t     block_size;     /* sparsegpt: columns per block (128; a multiple of M) */
    /* phase 0: calibrated layers done / total; phase 1: tensor bytes written; may be NULL */
    void      (*progress)(void *user, int phase, int64_t done, int64_t total);
    void       *user;
    /* storage of the pruned matrices: -1 dense (in dtype; default: llama.cpp and HF read it),
     * SHRINK_DTYPE_SPARSE24_F16 or SHRINK_DTYPE_SPARSE24_I8 (2:4 sparse, GGUF type ids 1014,
     * 1015; shrink only): every pruned matrix must then be 2:4 (at most 2 non-zeros in each
     * group of 4 inputs), else SHRINK_ERR_ARG naming the tensor and no output; one whose rows
     * are not a multiple of 32 (the types' block) stays dense. The other tensors are written
     * as dtype says. SHRINK_DTYPE_SPARSE_F16 or SHRINK_DTYPE_SPARSE_I8 (unstructured: a bitmap
     * and at most half of each row's values; GGUF type ids 1019, 1020; shrink only), any
     * method and pattern: a matrix stays dense (in dtype; the tensor's store_note says why)
     * when a row would keep more than half of its inputs, its rows are not a multiple of 64, or
     * the sparse type would not be smaller; SparseGPT's rows are known only when pruned: one
     * keeping more than half is trimmed to its half largest |w| (counted in n_zero, said in
     * store_note; rel_err is before the trim). */
    int32_t     store;
} shrink_prune_params;

/* One tensor of the output. */
typedef struct shrink_prune_tensor {
    char         name[64];      /* GGUF name: "blk.3.attn_v.weight" */
    int32_t      n_dims;
    int64_t      shape[2];      /* (rows, cols) of a matrix, (n) of a vector */
    shrink_dtype dtype;         /* as written */
    uint64_t     bytes;
    bool         pruned;        /* a linear layer the method pruned */
    bool         kept;          /* matched params->keep */
    int64_t      n_elems;
    int64_t      n_zero;        /* exact zeros in the pruned f32 values (before the dtype) */
    double       rel_err;       /* ||W' - W|| / ||W|| of a pruned tensor (0 otherwise) */
    char         store_note[96]; /* store sparse_f16 / sparse_i8: why this pruned matrix stays
                                    dense, or how many of its rows were trimmed to fit (SparseGPT);
                                    "" otherwise */
} shrink_prune_tensor;

typedef struct shrink_prune_result {
    const char  *method;        /* canonical name (static string) */
    uint64_t     in_file_bytes;
    uint64_t     out_file_bytes;
    uint64_t     tensor_bytes;
    int64_t      n_params;      /* elements of every tensor written */
    int64_t      n_pruned_params; /* elements of the pruned tensors */
    int64_t      n_zero;        /* exact zeros in the pruned tensors */
    double       sparsity;      /* n_zero / n_pruned_params */
    int64_t      n_tensors;
    int64_t      n_pruned;      /* tensors pruned */
    int64_t      calib_tokens;  /* tokens run per calibrated layer (wanda, sparsegpt) */
    double       seconds;
    shrink_prune_tensor *tensors; /* (n_tensors), owned: shrink_prune_result_free */
} shrink_prune_result;

SHRINK_API shrink_prune_params shrink_prune_params_default(void);

/* Prunes the linear layers (q, k, v, o, gate, up, down; GPT-2's fused qkv) of the model at `in`
 * with params->method and writes it dense to the GGUF file `out` (atomically; nothing at `out`
 * on failure; an output that is the input is refused). wanda and sparsegpt run the model over
 * the calibration text layer by layer, each layer seeing the already pruned layers before it.
 * Bad parameters (sparsity outside [0, 1), an N:M pattern that does not divide a pruned row, a
 * calibration text shorter than calib_tokens) are SHRINK_ERR_ARG. `result` may be NULL. */
SHRINK_API shrink_status shrink_prune(const char *in, const char *out,
                                      const shrink_prune_params *params,
                                      shrink_prune_result *result);
SHRINK_API void shrink_prune_result_free(shrink_prune_result *result);

/* ==== tokenizer =========================================================================== */

typedef struct shrink_tokenizer shrink_tokenizer;  /* opaque */

/* The model's tokenizer (owned by the model; NULL if it has none). */
SHRINK_API const shrink_tokenizer *shrink_model_tokenizer(const shrink_model *model);

/* Loads a tokenizer from tokenizer.bin (llama2.c), tokenizer.model (sentencepiece),
 * tokenizer.json (Hugging Face; Llama/sentencepiece-BPE or GPT-2 byte-level BPE), or a folder
 * holding one of those or vocab.json + merges.txt. */
SHRINK_API shrink_status shrink_tokenizer_load(shrink_tokenizer **out, const char *path);
SHRINK_API void shrink_tokenizer_free(shrink_tokenizer *tok);

SHRINK_API int32_t shrink_tokenizer_vocab_size(const shrink_tokenizer *tok);
SHRINK_API int32_t shrink_tokenizer_bos(const shrink_tokenizer *tok);   /* -1 if none */
SHRINK_API int32_t shrink_tokenizer_eos(const shrink_tokenizer *tok);   /* -1 if none */

/* Encodes text[0..len) (UTF-8; invalid UTF-8 gives SHRINK_ERR_ARG). With add_bos, BOS is
 * prepended. On success *ids is a malloc'd array of *n_ids ids that the caller frees with
 * shrink_free(). */
SHRINK_API shrink_status shrink_tokenizer_encode(const shrink_tokenizer *tok, const char *text,
                                                 size_t len, bool add_bos, int32_t **ids,
                                                 size_t *n_ids);

/* Decodes ids to UTF-8 text exactly as the reference tokenizer does (sentencepiece drops the
 * one dummy-prefix space at the start). *text is malloc'd and NUL-terminated; free with
 * shrink_free(); *len excludes the NUL. */
SHRINK_API shrink_status shrink_tokenizer_decode(const shrink_tokenizer *tok, const int32_t *ids,
                                                 size_t n_ids, char **text, size_t *len);

/* The bytes token `id` stands for when it follows token `prev` in a stream (byte tokens
 * <0xNN> become their byte; after BOS a sentencepiece piece loses its leading space, as
 * llama2.c's run.c prints). Writes at most cap bytes to buf, returns the number of bytes
 * of the piece, or a negative status for a bad id. */
SHRINK_API int32_t shrink_tokenizer_piece(const shrink_tokenizer *tok, int32_t prev, int32_t id,
                                          char *buf, size_t cap);

SHRINK_API void shrink_free(void *p);

/* ==== running a model ===================================================================== */

typedef struct shrink_context shrink_context;  /* opaque: KV cache + activations */

/* A run state for up to n_ctx positions (<= the model's max_seq_len; 0 = the model's) that
 * processes up to n_batch tokens per call (0 = 512). Owns its buffers. */
SHRINK_API shrink_status shrink_context_create(shrink_context **out, const shrink_model *model,
                                               int32_t n_ctx, int32_t n_batch);
SHRINK_API void shrink_context_free(shrink_context *ctx);
SHRINK_API int32_t shrink_context_n_ctx(const shrink_context *ctx);

/* Runs tokens[0..n) at positions pos..pos+n-1, appending them to the KV cache (which must hold
 * exactly pos positions already; pos = 0 restarts). The whole batch is processed as
 * matrix-matrix work. If logits is not NULL, writes the logits of the last `n_logits` tokens
 * of the batch (n_logits = 1 for decoding, n for scoring), row-major [n_logits, vocab].
 * n may exceed n_batch: the batch is then processed in pieces. */
SHRINK_API shrink_status shrink_context_eval(shrink_context *ctx, const int32_t *tokens,
                                             int32_t n, int32_t pos, float *logits,
                                             int32_t n_logits);

/* ==== sampling ============================================================================ */

typedef struct shrink_sampler_params {
    float    temperature; /* 0 = greedy (argmax) */
    int32_t  top_k;       /* 0 = off */
    float    top_p;       /* 1 = off */
    uint64_t seed;
} shrink_sampler_params;

SHRINK_API shrink_sampler_params shrink_sampler_params_default(void);

typedef struct shrink_sampler shrink_sampler;
SHRINK_API shrink_status shrink_sampler_create(shrink_sampler **out, int32_t vocab_size,
                                               const shrink_sampler_params *params);
SHRINK_API void shrink_sampler_free(shrink_sampler *s);
/* Picks a token from logits[0..vocab) (logits may be modified). Deterministic for a seed. */
SHRINK_API int32_t shrink_sampler_sample(shrink_sampler *s, float *logits);

/* ==== random-weight models ================================================================ */

/* A model with the shape of a published one (`shrink init --list`). */
typedef struct shrink_preset_info {
    const char *name;        /* "gpt2", "tinyllama-1.1b", ... */
    const char *arch;        /* "llama" or "gpt2" */
    const char *source;      /* the model whose config the preset copies */
    int32_t     dim;
    int32_t     n_layers;
    int32_t     n_heads;
    int32_t     n_kv_heads;
    int32_t     ffn_dim;
    int32_t     vocab_size;
    int32_t     max_seq_len;
    bool        tied_embeddings;
    int64_t     n_params;    /* counted from the shape */
} shrink_preset_info;

/* Preset i (0 <= i < shrink_preset_count()). Returns SHRINK_ERR_RANGE for a bad index. */
SHRINK_API int32_t       shrink_preset_count(void);
SHRINK_API shrink_status shrink_preset_get(int32_t i, shrink_preset_info *info);

typedef struct shrink_init_params {
    const char  *preset;         /* a preset name, or NULL */
    const char  *config_path;    /* or a Hugging Face config.json (file, or folder holding it) */
    uint64_t     seed;
    shrink_dtype dtype;          /* of the weights written (default f32) */
    const char  *to;             /* "gguf", "hf" or "llama2c"; NULL: from the output path
                                    (.gguf -> gguf, .bin -> llama2c, anything else a HF folder) */
    const char  *tokenizer_path; /* carried into the output; NULL: the model has no tokenizer */
    /* called after each block with bytes of tensor data written / total; may be NULL */
    void       (*progress)(void *user, int64_t done, int64_t total);
    void        *user;
} shrink_init_params;

typedef struct shrink_init_result {
    const char *arch;            /* "llama", "gpt2", ... (static string) */
    const char *format;          /* "gguf", "hf", "llama2c" (static string) */
    int64_t     n_tensors;
    int64_t     n_params;
    uint64_t    tensor_bytes;    /* tensor data written */
    double      seconds;
} shrink_init_result;

SHRINK_API shrink_init_params shrink_init_params_default(void);

/* Writes a model with random weights to `out`, initialized as Hugging Face transformers
 * initializes a new model: matrices and embeddings normal(0, initializer_range = 0.02 unless
 * the config says otherwise; GPT-2's c_proj weights / sqrt(2 n_layer)), norm weights 1,
 * biases 0. Exactly one of preset and config_path must be given. The weights are generated
 * block by block while they are written (peak memory a few tens of MB at any size), and the
 * bytes are a function of (config, seed, dtype, format) only, not of the thread count.
 * The output is written atomically (nothing is left at `out` on failure). result may be NULL. */
SHRINK_API shrink_status shrink_model_init(const char *out, const shrink_init_params *params,
                                           shrink_init_result *result);

/* ==== measuring =========================================================================== */

typedef enum shrink_ppl_method {
    SHRINK_PPL_SLIDING   = 0, /* Hugging Face "perplexity of fixed-length models" */
    SHRINK_PPL_LLAMA_CPP = 1, /* llama-perplexity: chunks of ctx, BOS first, 2nd half scored */
} shrink_ppl_method;

typedef struct shrink_ppl_params {
    shrink_ppl_method method;
    int32_t           n_ctx;    /* window length; 0 = min(model context, 512) */
    int32_t           stride;   /* sliding only; 0 = n_ctx / 2 */
    /* called after each window with windows done / total; may be NULL */
    void            (*progress)(void *user, int64_t done, int64_t total);
    void             *user;
} shrink_ppl_params;

typedef struct shrink_ppl_result {
    double  ppl;
    double  nll;           /* mean negative log-likelihood, nats per scored token */
    int64_t tokens_scored;
    int64_t n_tokens;      /* tokens in the text (with BOS if the model uses one) */
    int64_t windows;
    double  seconds;
    double  tok_per_s;     /* tokens evaluated (not only scored) per second */
    /* standard error of the mean NLL over the scored tokens (sample sd / sqrt(n)), and its
     * propagation to the perplexity, ppl * nll_se, as llama-perplexity prints "PPL = x +/- y" */
    double  nll_se;
    double  ppl_se;
} shrink_ppl_result;

SHRINK_API shrink_ppl_params shrink_ppl_params_default(void);

/* Scores token ids (ids[0] is BOS if the model uses one; the llama.cpp method puts BOS at the
 * start of each chunk itself). ctx must have n_ctx >= params->n_ctx. */
SHRINK_API shrink_status shrink_perplexity(shrink_context *ctx, const int32_t *ids, int64_t n_ids,
                                           const shrink_ppl_params *params,
                                           shrink_ppl_result *result);

/* Speed as llama-bench measures it: pp = pp tokens evaluated in one shrink_context_eval call
 * from position 0, tg = tg single-token evaluations at positions 0, 1, ...; each test runs once
 * to warm up, then reps times, and reports the median, mean, sample standard deviation, min and
 * max of tokens/s. With pin (the default) each OpenMP thread is bound to one CPU of the
 * process's allowed set during the runs (thread i to the i-th allowed CPU, wrapping), and the
 * process's affinity is restored afterwards. Token ids are fixed, (i * 7919) % vocab, so no
 * tokenizer is needed. */
typedef struct shrink_bench_params {
    int32_t pp;       /* prompt tokens (0 = skip); at most the model's context */
    int32_t tg;       /* decoded tokens (0 = skip); at most the model's context */
    int32_t reps;     /* measured repetitions (>= 1) */
    /* called after each run (warm-ups included) with runs done / total; may be NULL */
    void  (*progress)(void *user, int64_t done, int64_t total);
    void   *user;
    bool    pin;      /* bind each thread to one CPU during the runs (default true) */
} shrink_bench_params;

typedef struct shrink_bench_result {
    double pp_tok_s;      /* mean tokens/s of the pp runs (0 if skipped) */
    double pp_tok_s_sd;
    double tg_tok_s;      /* mean tokens/s of the tg runs (0 if skipped) */
    double tg_tok_s_sd;
    double pp_tok_s_median, pp_tok_s_min, pp_tok_s_max;
    double tg_tok_s_median, tg_tok_s_min, tg_tok_s_max;
    int32_t threads;      /* threads of the runs */
    int32_t pinned;       /* threads bound to one CPU each (0: not pinned, or it failed) */
} shrink_bench_result;

SHRINK_API shrink_bench_params shrink_bench_params_default(void);  /* pp 512, tg 128, reps 5 */
/* Measures the model's speed with the library's threads (creates and frees its own context of
 * max(pp, tg) positions). */
SHRINK_API shrink_status shrink_bench(const shrink_model *model, const shrink_bench_params *params,
                                      shrink_bench_result *result);

/* ==== comparing models ==================================================================== */

typedef struct shrink_compare_params {
    shrink_ppl_method method;     /* the windows of shrink_perplexity */
    int32_t           n_ctx;      /* 0 = min(base context, 512) */
    int32_t           stride;     /* sliding only; 0 = n_ctx / 2 */
    int64_t           max_tokens; /* > 0: only the first windows that score this many tokens */
    /* called after each window (all models) with windows done / total; may be NULL */
    void            (*progress)(void *user, int64_t done, int64_t total);
    void             *user;
    /* A share of the windows for a sweep over machines (docs/scale.md): n_shards > 1 scores
     * only windows shard W / n_shards .. (shard + 1) W / n_shards - 1 of the W, and results
     * are the share's; 0 or 1: all. */
    int32_t           shard, n_shards;
    /* Non-NULL: *per_token gets a shrink_free'd array of 3 x n_ctxs x tokens_scored doubles,
     * model i's per-token KL, NLL and same-top-1 (1 or 0) at (3 i + 0, 1, 2) x tokens_scored,
     * in token order; the shards' arrays joined in shard order give, through
     * shrink_compare_stats, the unsharded run's results bit for bit. */
    double          **per_token;
} shrink_compare_params;

typedef struct shrink_compare_result {
    double  ppl;           /* equals shrink_perplexity's with the same windows */
    double  nll;           /* mean NLL, nats per scored token */
    double  kl_mean;       /* mean over scored tokens of KL(P_base || P_model), nats */
    double  kl_p99;        /* 99th percentile of the per-token KL (linear interpolation) */
    double  kl_max;
    double  top1_same;     /* fraction of scored tokens whose argmax equals the base's */
    int64_t tokens_scored;
    int64_t windows;       /* scored (a shard's share, shrink_compare_params.n_shards) */
    int64_t windows_total; /* of the whole text */
    int64_t n_tokens;      /* tokens used (after max_tokens) */
    double  seconds;       /* evaluating this model and its statistics */
    /* Standard errors from the per-token values (sample sd / sqrt(n), as llama-perplexity
     * --kl-divergence): nll_se of the mean NLL, ppl_se = ppl * nll_se; dppl = ppl - ppl_base
     * and dppl_se its paired error, sqrt(var_m + var_b - 2 cov) with var = (ppl * nll_se)^2 and
     * cov the covariance of the two models' per-token NLL scaled by both ppls / n (0 for the
     * base); kl_mean_se of the mean KL; top1_same_se = sqrt(p (1 - p) / (n - 1)). */
    double  nll_se;
    double  ppl_se;
    double  dppl;
    double  dppl_se;
    double  kl_mean_se;
    double  top1_same_se;
} shrink_compare_result;

SHRINK_API shrink_compare_params shrink_compare_params_default(void);

/* Scores token ids with ctxs[0] (the base) and ctxs[1..n_ctxs) in lockstep, window by window
 * and piece by piece exactly as shrink_perplexity does (the same evaluation calls), and at
 * every scored position computes each model's NLL, the KL divergence
 *     KL(P_base || P_model) = sum_v p_base(v) (log p_base(v) - log p_model(v))
 * from the full log-softmax of both (in double, exponentials from the SIMD exp kernel), and
 * whether the two argmax tokens agree (llama-perplexity --kl-divergence's statistics).
 * results[i] is for ctxs[i]; results[0] has KL 0 and top1_same 1. Every model must have the
 * base's vocabulary size, BOS id and add_bos, and each context at least n_ctx positions;
 * otherwise SHRINK_ERR_ARG names the model. Memory: 3 x SK_PPL_PIECE(128) x vocab floats plus
 * one double per scored token and model (for the percentile). */
SHRINK_API shrink_status shrink_compare(shrink_context *const *ctxs, int32_t n_ctxs,
                                        const int32_t *ids, int64_t n_ids,
                                        const shrink_compare_params *params,
                                        shrink_compare_result *results);

/* The statistics of shrink_compare (all but windows, n_tokens and seconds, left as they are)
 * from n tokens' per-token values in the layout of shrink_compare_params.per_token: the same
 * sums in the same order as shrink_compare makes. */
SHRINK_API shrink_status shrink_compare_stats(const double *per_token, int32_t n_ctxs,
                                              int64_t n, shrink_compare_result *results);

/* Shards of one comparison joined (`shrink compare --shard i/N` outputs; shrink_compare_merge):
 * what the unsharded run reports, per model. */
typedef struct shrink_compare_merged_model {
    char                 *name, *path, *scheme;   /* owned */
    double                bits_per_weight;
    uint64_t              file_bytes;
    int64_t               n_params;
    shrink_compare_result r;
} shrink_compare_merged_model;

typedef struct shrink_compare_merged {
    char                        *base, *text, *method;   /* owned */
    int32_t                      ctx, stride;
    int32_t                      n_models;
    shrink_compare_merged_model *models;                 /* owned; [0] is the base */
} shrink_compare_merged;

/* Joins the --json files paths[0..n) of `shrink compare --shard i/N`: they must name the same
 * base, models, text, windows and number of shards and hold every shard 0..N-1 once; the
 * per-token values joined in shard order give the unsharded run's statistics (bit for bit;
 * seconds summed). Otherwise SHRINK_ERR_ARG / SHRINK_ERR_FORMAT names the file. */
SHRINK_API shrink_status shrink_compare_merge(const char *const *paths, int32_t n,
                                              shrink_compare_merged *merged);
SHRINK_API void shrink_compare_merged_free(shrink_compare_merged *merged);

/* ==== task accuracy (shrink eval; docs/eval.md) =========================================== */

typedef enum shrink_task_kind {
    SHRINK_TASK_LAMBADA  = 0, /* JSONL {"text"}: the last space-separated word is the target */
    SHRINK_TASK_CHOICE   = 1, /* JSONL {"context", "choices": [...], "label": k} */
    SHRINK_TASK_GENERATE = 2, /* JSONL {"prompt", "answer"} */
} shrink_task_kind;

/* One item of a task file (strings owned by the task). */
typedef struct shrink_task_item {
    int64_t  line;        /* 1-based line of the file */
    char    *context;     /* lambada: text before the last space; generate: the prompt */
    char   **choices;     /* lambada: the one target " word"; generate: the one answer */
    int32_t  n_choices;
    int32_t  label;       /* index of the right choice (0 for lambada and generate) */
} shrink_task_item;

typedef struct shrink_task {
    shrink_task_kind  kind;
    shrink_task_item *items;
    int64_t           n_items;
} shrink_task;

/* Reads a task file of `kind` (one JSON object per line; blank lines are skipped), at most
 * `limit` items when limit > 0. Malformed JSON, a missing or mistyped field, an empty context,
 * fewer than 2 choices or a label outside them are SHRINK_ERR_FORMAT naming the file, the line
 * and the field. A file without items is SHRINK_ERR_FORMAT. Release with shrink_task_free. */
SHRINK_API shrink_status shrink_task_load(shrink_task **out, const char *path,
                                          shrink_task_kind kind, int64_t limit);
SHRINK_API void shrink_task_free(shrink_task *task);
/* "lambada", "choice", "generate" -> kind; SHRINK_ERR_ARG if unknown. */
SHRINK_API shrink_status shrink_task_kind_parse(const char *name, shrink_task_kind *out);
SHRINK_API const char   *shrink_task_kind_name(shrink_task_kind kind);

/* The score of one ending after a context. */
typedef struct shrink_choice_score {
    double  loglik;      /* sum over the ending's tokens of log p(token | everything before) */
    int32_t n_tokens;
    bool    greedy;      /* every token of the ending is the most likely one (first argmax) */
} shrink_choice_score;

/* Scores endings[k][0..n_ending[k]) after context[0..n_context) (n_context >= 1): evaluates
 * the context once from position 0, keeps the logits of its last token, then evaluates each
 * ending from position n_context, so the context's KV cache is computed once for all endings.
 * Log-probabilities are a log-softmax in double of the float logits. Needs n_context +
 * max_k n_ending[k] - 1 <= the context's n_ctx, else SHRINK_ERR_RANGE. */
SHRINK_API shrink_status shrink_eval_choices(shrink_context *ctx, const int32_t *context,
                                             int32_t n_context, const int32_t *const *endings,
                                             const int32_t *n_ending, int32_t n_choices,
                                             shrink_choice_score *out);

/* lm-evaluation-harness's split of (context, continuation) into tokens: trailing whitespace of
 * the context moves to the continuation, context ids = encode(context) (BOS first when
 * add_bos), continuation ids = encode(context + continuation) past the context ids' length.
 * Both arrays are malloc'd (free with shrink_free). An empty continuation after the split is
 * SHRINK_ERR_ARG. */
SHRINK_API shrink_status shrink_task_encode_pair(const shrink_tokenizer *tok, bool add_bos,
                                                 const char *context, const char *continuation,
                                                 int32_t **ctx_ids, int32_t *n_ctx_ids,
                                                 int32_t **cont_ids, int32_t *n_cont_ids);

typedef struct shrink_task_params {
    int32_t     max_new;  /* generate: most tokens generated (default 32) */
    const char *stop;     /* generate: generation ends at the first occurrence (default "\n") */
    /* called after each item with items done / total; may be NULL */
    void      (*progress)(void *user, int64_t done, int64_t total);
    void       *user;
} shrink_task_params;

/* One item's result for one model. */
typedef struct shrink_task_item_result {
    int32_t  pred;        /* choice: argmax of loglik; lambada: 0; generate: 0 */
    int32_t  pred_norm;   /* choice: argmax of loglik / bytes of the choice */
    bool     correct;     /* lambada: greedy == target; choice: pred == label; generate: exact */
    bool     correct_norm;/* choice: pred_norm == label; generate: the answer is contained */
    double   loglik;      /* lambada / choice: loglik of the target / right choice */
    int32_t  truncated;   /* context tokens dropped from the left to fit */
    uint64_t ids_hash;    /* FNV-1a of every token id the item used (tokenizer check) */
    char    *generation;  /* generate: the text generated (up to the stop string) */
} shrink_task_item_result;

typedef struct shrink_task_result {
    int64_t n_items;
    double  acc, acc_se;           /* mean of correct, its standard error sqrt(p(1-p)/(n-1)) */
    double  acc_norm, acc_norm_se; /* choice: acc_norm; generate: contains; lambada: = acc */
    double  mean_loglik, mean_loglik_se; /* lambada/choice: of the target / right choice */
    double  ppl;                   /* lambada: exp(-mean loglik), as lm-evaluation-harness */
    int64_t n_truncated;           /* items whose context was truncated */
    int64_t tokens_evaluated;
    double  seconds;
    shrink_task_item_result *items; /* n_items of them; release with shrink_task_result_free */
} shrink_task_result;

SHRINK_API shrink_task_params shrink_task_params_default(void);

/* Scores every item of `task` with `model` on `ctx` (a context of that model; its n_ctx is the
 * length limit: longer items lose context tokens from the left, counted in n_truncated).
 * lambada and choice items go through shrink_task_encode_pair and shrink_eval_choices; a
 * generate item is a greedy generation from the prompt (BOS first when the model adds it) of
 * at most max_new tokens, ending at EOS or at the stop string (removed), compared with the
 * answer after stripping whitespace at both ends. */
SHRINK_API shrink_status shrink_eval_task(const shrink_model *model, shrink_context *ctx,
                                          const shrink_task *task,
                                          const shrink_task_params *params,
                                          shrink_task_result *result);
SHRINK_API void shrink_task_result_free(shrink_task_result *result);

/* Builds a task file from UTF-8 text (paragraphs separated by blank lines; rule in
 * docs/eval.md), deterministic for (text, seed): SHRINK_TASK_LAMBADA writes {"text"} lines
 * whose last word ends a sentence and occurs earlier in its paragraph; SHRINK_TASK_CHOICE
 * writes {"context", "choices", "label"} lines: the true next sentence of a paragraph among
 * three sentences of other paragraphs. At most `limit` items when limit > 0. The output is
 * written atomically; *n_items (may be NULL) gets the count. */
SHRINK_API shrink_status shrink_task_make(shrink_task_kind kind, const char *text_path,
                                          const char *out_path, uint64_t seed, int64_t limit,
                                          int64_t *n_items);

/* Peak resident set size of this process in bytes (0 if unknown). */
SHRINK_API uint64_t shrink_peak_rss(void);
/* Wall-clock seconds from a monotonic clock. */
SHRINK_API double shrink_time(void);
/* Measures memory read bandwidth in bytes/s with the library's threads (streams a buffer of
 * `bytes` bytes, best of `reps`). */
SHRINK_API double shrink_measure_bandwidth(size_t bytes, int reps);
/* Writes v with the fewest significant digits (1..17, %g style) that read back (strtod) as
 * exactly v: 3e-4 gives "0.0003", not "0.00029999999999999997"; 0.1 gives "0.1"; whole
 * numbers below 1e15 with their digits ("100", not "1e+02"). NaN and
 * infinities give "nan", "inf", "-inf". Returns buf (truncated to cap - 1 bytes if needed). */
SHRINK_API const char *shrink_fmt_double(char *buf, size_t cap, double v);

/* ==== training ============================================================================ */

/* Writes the tokens of the UTF-8 text file `text_path` (encoded with tok, BOS first when
 * add_bos) to a token file `out` (docs/training.md: "SKTOKENS" header, uint16 tokens when the
 * vocabulary has at most 65536 entries, else uint32), atomically. n_tokens may be NULL. */
SHRINK_API shrink_status shrink_tokenize_file(const shrink_tokenizer *tok, const char *text_path,
                                              const char *out, bool add_bos, int64_t *n_tokens);

/* What shrink_train reports after every optimizer step. */
typedef struct shrink_train_log {
    int64_t step;        /* optimizer steps done (1 after the first) */
    int64_t steps;       /* of the run */
    double  loss;        /* mean training loss of the step's micro-batches (nats/token) */
    double  val_loss;    /* validation loss at this step, NaN when not evaluated */
    double  lr;          /* learning rate of the step */
    double  grad_norm;   /* global gradient norm before clipping */
    double  tok_per_s;   /* training tokens per second in this process so far */
    double  seconds;     /* wall time of this process so far */
    double  eta;         /* seconds left at the current speed */
    bool    saved;       /* a checkpoint was written after this step */
    double  val_kl;      /* distillation: KL(teacher || student) on the validation windows at
                            this step (temperature 1), NaN when not evaluated or not distilling */
} shrink_train_log;

/* Data parallelism (docs/scale.md): processes ("ranks") that train one model together, each
 * on its share of every step's micro-batches. shrink's library holds no MPI: the caller (the
 * CLI of a `make MPI=1` build under mpirun) supplies the communication. */
typedef struct shrink_train_comm {
    int32_t rank, n_ranks;
    /* Ordered sum: x[0..k) are this rank's k >= 1 parts (arrays of n), in order; the parts of
     * all ranks, rank 0's first, are added one after another, (((x_00 + x_01) + ...) + x_10)
     * + ... (rank r adding its parts to the running sum rank r - 1 sends), and the total is
     * left in x[0] of every rank: the additions one process makes summing the parts in
     * order, so the result is bit-identical to it. */
    shrink_status (*sum_f32)(void *user, float *const *x, int32_t k, int64_t n);
    shrink_status (*sum_f64)(void *user, double *const *x, int32_t k, int64_t n);
    /* every rank passes the hash of its inputs and options; an error if any differs */
    shrink_status (*agree)(void *user, uint64_t hash);
    void *user;
} shrink_train_comm;

typedef struct shrink_train_params {
    const char *data;           /* training data: a token file or UTF-8 text (required) */
    const char *valid;          /* validation data, or NULL */
    const char *out_dir;        /* checkpoint.bin and the final model go here (required) */
    const char *to;             /* final model: "gguf", "hf", "llama2c"; NULL: the input's */
    const char *resume_dir;     /* continue from <resume_dir>/checkpoint.bin, or NULL */
    const char *tokenizer_path; /* NULL: the model's own */
    int64_t     steps;          /* optimizer steps (default 100) */
    int32_t     batch;          /* B sequences per micro-batch (default 4) */
    int32_t     ctx;            /* T positions per sequence (default 64) */
    int32_t     accum;          /* micro-batches per step (default 1) */
    const char *optimizer;      /* "adamw" (default) or "sgd" */
    const char *schedule;       /* "cosine" (default), "linear" or "constant" */
    double      lr;             /* peak learning rate (default 3e-4) */
    double      lr_min;         /* at the last step (cosine, linear; default 0) */
    int64_t     warmup;         /* steps of linear warmup (default 0) */
    double      wd;             /* decoupled weight decay of matrices (default 0) */
    double      momentum;       /* SGD momentum (default 0) */
    double      clip;           /* global gradient-norm limit, 0 = none (default 1) */
    uint64_t    seed;           /* of the random windows */
    bool        sequential;     /* sequential windows instead of random ones */
    int64_t     eval_every;     /* validation every N steps and at the end (0: at the end) */
    int64_t     eval_windows;   /* fixed validation windows of T + 1 tokens (default 16) */
    int64_t     save_every;     /* checkpoint every K steps and at the end (0: at the end) */
    void      (*log)(void *user, const shrink_train_log *l);  /* after every step; may be NULL */
    void       *user;
    /* Distillation (docs/distillation.md; `shrink distill`): with a teacher the loss is
     * alpha tau^2 KL(softmax(z_t / tau) || softmax(z_s / tau)) + (1 - alpha) CE(z_s, y), the
     * teacher (any format shrink_model_load reads) run through the decoder on every batch. It
     * must have the student's vocabulary and tokenizer (SHRINK_ERR_ARG names the first token
     * that differs). The validation loss stays the cross-entropy; val_kl is added. */
    const char *teacher;        /* NULL: plain training */
    double      alpha;          /* weight of the KL term, in [0, 1] */
    double      temperature;    /* tau > 0 */
    int32_t     top_k;          /* 0: the whole vocabulary; K: the teacher's top K, renormalized */
    bool        weak;           /* the teacher's top-1 token as the soft target (K = 1) */
    int32_t     teacher_threads; /* threads of the teacher's forward passes (0: the student's) */
    /* The teacher cache (top_k or weak only): the teacher's top K per position of every
     * aligned window (multiples of ctx) of the data, built once in this folder and reused;
     * random windows then start at multiples of ctx. cache_progress (windows done / total,
     * user as log's; may be NULL) while it is built. */
    const char *teacher_cache;
    void      (*cache_progress)(void *user, int64_t done, int64_t total);
    /* Quantization-aware training (docs/adapters.md, "QAT"): the target matrices are
     * quantized to this dtype ("q4_0", "q8_0", "q4_K", "int4_g128", "nf4", ...: a single-type
     * scheme of shrink_quantize) and dequantized in every forward pass, scales recomputed
     * from the current fp32 weights, the gradient passed straight through; the final model is
     * then the real quantized GGUF (<out_dir>/model.gguf; only GGUF holds these types). With
     * LoRA the frozen base is the target (quantized once). NULL: none. */
    const char *qat;
    const char *qat_targets;    /* "q,k,v,o,gate,up,down,embed,output" or "all" (NULL: all,
                                   every matrix shrink_quantize quantizes) */
    /* A pruned model's zeros (docs/pruning.md, "Recovery"): 0 = auto (the default): kept when
     * at least 10 % of the elements of the linear matrices (q, k, v, o, gate, up, down) are
     * exact zeros; 1 = always kept; -1 = trained like any weight. Kept zeros are masked: no
     * gradient, no optimizer update (nor weight decay), so every one is still 0.0 after each
     * step. The library reports an automatic choice through the log callback. Not with LoRA
     * (its frozen base keeps its zeros; a merged adapter fills them). */
    int32_t     keep_sparsity;
    /* Data parallelism: NULL or n_ranks 1: one process. Otherwise accum must be a multiple
     * of n_ranks (0 or 1: set to n_ranks): rank r runs micro-batches r K .. r K + K - 1 of
     * every step (K = accum / n_ranks), the gradients and losses are summed in micro-batch
     * order through comm (one process with the same accum makes the same additions: the runs
     * are bit-identical at equal threads per rank), every rank steps the
     * optimizer, and only rank 0 validates, logs and writes checkpoints and the model (all
     * ranks read --resume's checkpoint). */
    const shrink_train_comm *comm;
    /* Activation (gradient) checkpointing: only each layer's input is kept through the forward
     * pass, the backward recomputes the rest layer by layer: the activations of one layer
     * instead of all, for one more forward pass; the results are bit-identical. */
    bool        gradient_checkpointing;
    /* QAT's block scales (docs/adapters.md, "Learned scales"): NULL or "recompute" (from the
     * current weights in every pass), or "learned" (LSQ: one trainable scale per block,
     * initialized from the quantizer's, for q4_0, q8_0, int4_g32/g64/g128 and nf4), trained at
     * qat_scale_lr (0: lr) without weight decay; the written GGUF holds the learned scales. */
    const char *qat_scales;
    double      qat_scale_lr;
} shrink_train_params;

typedef struct shrink_train_result {
    int64_t step;               /* steps done (== steps) */
    int64_t resumed_from;       /* the checkpoint's step, or -1 */
    double  loss;               /* of the last step */
    double  val_loss;           /* last validation loss (NaN if none) */
    double  val_loss_start;     /* validation loss before this process's first step */
    double  val_kl;             /* distillation: last validation KL to the teacher (NaN if none) */
    double  val_kl_start;       /* distillation: the same before this process's first step */
    int64_t n_params;           /* trainable parameters */
    int64_t train_tokens;       /* tokens in the training data */
    int64_t valid_tokens;
    double  seconds;
    double  tok_per_s;
    char    model_out[1024];    /* the final model's path */
    const char *format;         /* its format (static string) */
    char    teacher_cache[1024]; /* the teacher cache file used ("" if none) */
    bool    teacher_cache_built; /* written by this run (else reused) */
    bool    kept_sparsity;      /* the linear matrices' zeros were held (keep_sparsity) */
    int64_t kept_zeros;         /* how many */
    double  sparsity;           /* exact zeros / elements of the linear matrices at the start */
} shrink_train_result;

SHRINK_API shrink_train_params shrink_train_params_default(void);

/* Trains all parameters of the model at `model_path` (any format shrink_model_load reads; f16
 * and bf16 weights are trained as fp32 master weights and written back in their dtype) on
 * params->data, writing <out_dir>/checkpoint.bin atomically every save_every steps and at the
 * end, then the final model to <out_dir>/model.gguf, <out_dir>/model (a Hugging Face folder)
 * or <out_dir>/model.bin. With resume_dir, the weights, optimizer state, data position and
 * step come from its checkpoint, whose options must equal these: the run then ends exactly
 * (bit for bit) as the uninterrupted run with the same threads would. result may be NULL. */
SHRINK_API shrink_status shrink_train(const char *model_path, const shrink_train_params *params,
                                      shrink_train_result *result);

/* ==== structured pruning and sensitivity (docs/pruning.md) ================================ */

/* Units of structured removal. A head is one query head (its columns of the output
 * projection; under grouped-query attention its K/V group stays); a kv-head is one K/V group
 * with all its query heads; a neuron block is `block` consecutive FFN neurons; a layer is a
 * whole decoder layer (removed = skipped: the residual passes through). */
typedef enum shrink_unit {
    SHRINK_UNIT_LAYER, SHRINK_UNIT_HEAD, SHRINK_UNIT_KV_HEAD, SHRINK_UNIT_NEURON_BLOCK,
    SHRINK_UNIT_COUNT
} shrink_unit;
/* "layer", "head", "kv-head", "neuron-block"; shrink_unit_parse: SHRINK_ERR_ARG if unknown. */
SHRINK_API const char *shrink_unit_name(shrink_unit u);
SHRINK_API shrink_status shrink_unit_parse(const char *name, shrink_unit *out);

typedef struct shrink_sensitivity_params {
    shrink_unit unit;
    const char *calib_path;     /* UTF-8 text the KL and perplexity are measured on */
    int64_t     calib_tokens;   /* tokens of it used (default 512) */
    int32_t     calib_ctx;      /* tokens per window (default min(context, 256)) */
    int32_t     block;          /* neurons per neuron block (0: ffn_dim / 16) */
    const char *tokenizer_path; /* as shrink_load_params */
    /* called after each unit measured with units done / total; may be NULL */
    void      (*progress)(void *user, int64_t done, int64_t total);
    void       *user;
    /* a share of the work for a sweep over machines: only the units k (in model order) with
     * k % n_shards == shard are measured; n_shards 0 or 1: all. The shards' JSON outputs are
     * joined by shrink_sensitivity_merge (`shrink merge-results`). */
    int32_t     shard, n_shards;
} shrink_sensitivity_params;

typedef struct shrink_sensitivity_entry {
    int32_t layer;       /* the unit's layer */
    int32_t index;       /* head, kv-head or neuron block within the layer; -1 for a layer */
    double  kl;          /* mean KL(original || unit removed) per token, nats */
    double  ppl;         /* perplexity with the unit removed */
    double  proxy;       /* the cheap score: layer: block influence 1 - cos(h_in, h_out);
                            head / kv-head: mean ||head output|| * ||W_o columns||_F;
                            neuron block: sum of mean |a_i| * ||W_down column i|| */
    int32_t rank;        /* 0 = least sensitive (smallest kl) */
} shrink_sensitivity_entry;

typedef struct shrink_sensitivity_result {
    shrink_unit unit;
    double      base_ppl;     /* perplexity of the model as it is */
    int64_t     n_tokens;     /* calibration tokens used */
    int32_t     block;        /* neurons per block (neuron-block) */
    int64_t     n;            /* entries, in model order (layer, index) */
    shrink_sensitivity_entry *entries; /* owned: shrink_sensitivity_result_free */
    double      seconds;
    int32_t     shard, n_shards;  /* the share measured (n_shards 1: all); ranks are within it */
    int64_t     n_total;      /* units of the whole model (n when n_shards is 1) */
    char       *input, *calib; /* shrink_sensitivity_merge: the model and text the shards name
                                  (owned); NULL from shrink_sensitivity */
} shrink_sensitivity_result;

SHRINK_API shrink_sensitivity_params shrink_sensitivity_params_default(void);
/* Measures, for every unit of params->unit, the KL divergence from the model's own
 * next-token distribution and the perplexity on the calibration text when that unit alone
 * is removed (masked: its output columns zeroed, which equals removing it), and the cheap
 * proxy score. */
SHRINK_API shrink_status shrink_sensitivity(const char *in,
                                            const shrink_sensitivity_params *params,
                                            shrink_sensitivity_result *result);
SHRINK_API void shrink_sensitivity_result_free(shrink_sensitivity_result *result);
/* Joins the shards of one sweep: `shrink sensitivity --json --shard i/N` outputs (files
 * paths[0..n)), which must name the same model, text, unit, tokens and block and hold every
 * shard 0..N-1 once; the result equals the unsharded run's (ranks over all units). */
SHRINK_API shrink_status shrink_sensitivity_merge(const char *const *paths, int32_t n,
                                                  shrink_sensitivity_result *result);

/* How structured pruning ranks units: by the measured KL of shrink_sensitivity, by the
 * activation proxies (Minitron's head / neuron importance, ShortGPT's block influence for
 * layers), or at random (seeded; a baseline). */
typedef enum shrink_rank_by {
    SHRINK_RANK_ACTIVATION, SHRINK_RANK_SENSITIVITY, SHRINK_RANK_RANDOM,
    SHRINK_RANK_INDEX /* keep the first units (the highest indices go first; no calibration) */
} shrink_rank_by;

typedef struct shrink_structured_params {
    int32_t        heads;      /* query heads removed per layer (a multiple of n_kv_heads:
                                  the same number from each K/V group) */
    int32_t        kv_heads;   /* K/V groups removed per layer, with their query heads */
    int32_t        neurons;    /* FFN neurons removed per layer */
    int32_t        layers;     /* whole layers removed */
    shrink_rank_by by;
    int32_t        block;      /* sensitivity: neurons per block (0: ffn_dim / 16) */
    uint64_t       seed;       /* random */
    const char    *calib_path; /* activation / sensitivity: calibration text */
    int64_t        calib_tokens;
    int32_t        calib_ctx;
    const char    *tokenizer_path;
    int            dtype;      /* shrink_dtype of the output's matrices, -1: the input's */
    /* phase 0: units scored (done / total); phase 1: tensor bytes written */
    void         (*progress)(void *user, int phase, int64_t done, int64_t total);
    void          *user;
    /* these input layers removed (layer reduction, shrink drop-layers) instead of `layers`
     * ranked by `by`; NULL / 0: none. Distinct, in [0, n_layers), fewer than n_layers. */
    const int32_t *layer_list;
    int32_t        n_layer_list;
    const double  *layer_scores; /* (n_layers) the caller's layer ranking, lowest removed
                                    first (shrink student's every-other / list); NULL: by */
    int32_t        dims;       /* residual-stream dimensions removed (a narrower hidden size:
                                  the columns of every matrix reading the stream, the rows of
                                  wo / down, the embeddings' columns, the norms); the kept ones
                                  are those of largest token-embedding column norm */
} shrink_structured_params;

typedef struct shrink_structured_result {
    int32_t  n_layers_in, n_heads_in, n_kv_heads_in, ffn_dim_in;
    int32_t  n_layers, n_heads, n_kv_heads, ffn_dim; /* the output's config */
    /* what was removed, indices in the input model (owned: shrink_structured_result_free) */
    int32_t *removed_layers;   /* (n_layers_in - n_layers) input layers, ascending */
    int32_t *removed_heads;    /* (n_layers_in x (n_heads_in - n_heads)) per input layer,
                                  ascending; rows of removed layers are -1 */
    int32_t *removed_neurons;  /* (n_layers_in x (ffn_dim_in - ffn_dim)) likewise */
    int64_t  params_in, params_out;
    uint64_t in_file_bytes, out_file_bytes;
    int64_t  calib_tokens;
    double   seconds;
    int32_t  dim_in, dim;      /* hidden size before and after */
} shrink_structured_result;

SHRINK_API shrink_structured_params shrink_structured_params_default(void);
/* Removes heads, K/V groups, FFN neurons and layers from the model at `in` and writes a
 * smaller model with the new config (GGUF for *.gguf, else a Hugging Face folder): the same
 * count per layer (the config has one n_heads / ffn_dim for all layers), the units of least
 * importance by params->by. Its logits equal the input's with those units masked. Removing
 * every head, neuron or layer, or heads that are not a multiple of n_kv_heads, is an error. */
SHRINK_API shrink_status shrink_prune_structured(const char *in, const char *out,
                                                 const shrink_structured_params *params,
                                                 shrink_structured_result *result);
SHRINK_API void shrink_structured_result_free(shrink_structured_result *result);
/* ==== LoRA: merge, adapter files, training (issue 13; src/lora/, docs/adapters.md) ======== */

typedef struct shrink_merge_params {
    const char *const *adapters; /* n_adapters adapter paths (as shrink_model_add_lora reads) */
    const double *scales;       /* n_adapters user scales, or NULL: all 1 */
    int32_t     n_adapters;
    int32_t     dtype;          /* shrink_dtype of the output's matrices; -1: the base's (a
                                   quantized base then is SHRINK_ERR_ARG: give a dtype) */
    const char *to;             /* "gguf", "hf", "llama2c"; NULL: from the output path */
    const char *tokenizer_path; /* NULL: the base's own */
    void      (*progress)(void *user, int64_t done, int64_t total); /* bytes; may be NULL */
    void       *user;
    bool        keep_sparsity;  /* the base's exact zeros stay 0 (a pruned base healed with
                                   LoRA); default false: B A fills them */
    /* Re-quantize (docs/adapters.md, "Merge and re-quantize"): a scheme of shrink_quantize
     * ("q4_0", "nf4", "q4_K_M", ...; round to nearest) instead of dtype; the merged rows are
     * quantized as they stream (shrink_quantize with the adapters), into GGUF. A quantized
     * base (QLoRA) is dequantized, merged and quantized again. NULL: dtype as above. */
    const char *scheme;
    /* With scheme: the merged-then-quantized error measured on this UTF-8 text (NULL: the
     * weight error only): the reference is the base as stored with the adapters applied at
     * run time (a float base: the merged model in f32; a quantized base: the model the
     * adapter was trained on), scored against the output and against the base quantized to
     * the scheme in memory with the adapters unmerged (shrink_compare's windows). */
    const char *eval_text;
    int64_t     eval_tokens;    /* scored tokens (0: 1024) */
    int32_t     eval_ctx;       /* window (0: min(256, the model's context)) */
} shrink_merge_params;

typedef struct shrink_merge_result {
    const char  *format;        /* static string */
    shrink_dtype dtype;         /* of the matrices written */
    int64_t      n_merged;      /* matrices changed */
    int64_t      n_adapter_params; /* elements of the adapters' A and B */
    uint64_t     tensor_bytes;
    double       seconds;
    /* with a scheme */
    const char  *scheme;        /* canonical name (static) */
    double       bits_per_weight;
    /* weight error of the merged matrices, ||Q(W') - W'|| / ||W'|| with W' = W + s B A in f32:
     * mean and largest over them */
    double       wrel_mean, wrel_max;
    /* with eval_text: reference (base + adapters at run time), the output (merged, then
     * quantized) and the base quantized in memory with the adapters unmerged (NaN when not
     * measured: a mix scheme, or a quantized base, whose reference is already that) */
    int64_t      eval_tokens;   /* tokens scored */
    double       ppl_ref, ppl_merged, ppl_unmerged;
    double       kl_merged, kl_unmerged;      /* mean KL(P_ref || P_model), nats per token */
    double       kl_merged_se, kl_unmerged_se;
    double       top1_merged, top1_unmerged;  /* fraction of tokens with the reference's argmax */
} shrink_merge_result;

SHRINK_API shrink_merge_params shrink_merge_params_default(void);

/* Writes the base model at `base` with W + scale * (alpha / r) * B A of every adapter merged
 * into its projections, to `out` (GGUF, a Hugging Face folder or llama2.c .bin; atomically,
 * nothing at `out` on failure). Adapters are checked against the base as
 * shrink_model_add_lora checks them; one of scale 0 changes nothing (the output is then what
 * shrink_convert writes). `result` may be NULL. */
SHRINK_API shrink_status shrink_merge(const char *base, const char *out,
                                      const shrink_merge_params *params,
                                      shrink_merge_result *result);

/* Writes adapter i of `model` (shrink_model_add_lora) to `out`: a llama.cpp GGUF LoRA adapter
 * when out ends in .gguf, else a PEFT folder (adapter_config.json + adapter_model.safetensors).
 * alpha is written as scale * alpha / r * r, so the file applies what the model applies
 * (the user's scale included). Atomic; the adapter's own file is refused as `out`. */
SHRINK_API shrink_status shrink_model_save_lora(const shrink_model *model, int i,
                                                const char *out);

/* LoRA training on a frozen base (`shrink lora`, docs/adapters.md). */
typedef struct shrink_lora_params {
    int64_t     rank;           /* r >= 1 (default 8), at most each target's smaller side */
    double      alpha;          /* lora_alpha > 0 (default 16): scale alpha / r */
    const char *targets;        /* comma list of q, k, v, o, gate, up, down (or q_proj ...,
                                   attn_q ..., all); default all seven */
    double      dropout;        /* lora_dropout in [0, 1) on the adapter's input (default 0) */
    bool        rslora;         /* scale alpha / sqrt(r) (rsLoRA) */
    const char *out;            /* the adapter: *.gguf (llama.cpp) or a PEFT folder (required) */
} shrink_lora_params;

typedef struct shrink_lora_result {
    shrink_train_result train;  /* model_out = the adapter; n_params = trainable parameters */
    int64_t     n_trainable;    /* elements of the A and B matrices */
    int64_t     n_all;          /* the base's parameters + n_trainable (PEFT's "all params") */
} shrink_lora_result;

SHRINK_API shrink_lora_params shrink_lora_params_default(void);

/* Trains a LoRA adapter on the frozen model at `model_path` with shrink_train's loop, options,
 * checkpoints (<out_dir>/checkpoint.bin) and bit-exact resume; A and B of every target
 * projection are the only trainable parameters (A Kaiming-uniform, B zero, as PEFT). The base
 * is read as shrink_train reads it (a quantized GGUF base trains on its dequantized values).
 * The adapter is written to lora->out at the end. Bad parameters (rank < 1 or larger than a
 * target, unknown target) are SHRINK_ERR_ARG before anything is written. result may be NULL. */
SHRINK_API shrink_status shrink_lora_train(const char *model_path,
                                           const shrink_train_params *train,
                                           const shrink_lora_params *lora,
                                           shrink_lora_result *result);

/* ==== low-rank factorization (issue 15; src/lowrank/, docs/lowrank.md) =================== */

/* How each matrix is approximated: plain truncated SVD; ASVD (input channels scaled by their
 * mean |activation|^alpha on the calibration text before the SVD, unscaled after); SVD-LLM's
 * whitening (the SVD of W L with L L^T = X^T X of the calibration inputs, then L^-1: the
 * truncation that minimises the error of the layer's output on those inputs). */
typedef enum shrink_lowrank_method {
    SHRINK_LOWRANK_SVD, SHRINK_LOWRANK_ASVD, SHRINK_LOWRANK_WHITEN, SHRINK_LOWRANK_COUNT
} shrink_lowrank_method;
/* "svd", "asvd", "whiten"; shrink_lowrank_method_parse: SHRINK_ERR_ARG if unknown. */
SHRINK_API const char *shrink_lowrank_method_name(shrink_lowrank_method m);
SHRINK_API shrink_status shrink_lowrank_method_parse(const char *name,
                                                     shrink_lowrank_method *out);

typedef struct shrink_lowrank_params {
    shrink_lowrank_method method;
    /* exactly one: a fixed rank per matrix; the kept fraction of the spectral energy (sum of
     * squared singular values) in (0, 1]; the fraction of each matrix's parameters its two
     * factors hold, in (0, 1): rank floor(ratio * rows * cols / (rows + cols)) */
    int32_t     rank;
    double      energy;
    double      ratio;
    const char *targets;        /* comma list of q, k, v, o, gate, up, down (GPT-2's fused
                                   q|k|v counts as q); NULL: all seven */
    const char *calib_path;     /* asvd, whiten: UTF-8 calibration text */
    int64_t     calib_tokens;   /* tokens of it (default 2048) */
    int32_t     calib_ctx;      /* tokens per window (default min(context, 256)) */
    double      alpha;          /* asvd: exponent of the activation scale (default 0.5) */
    double      damp;           /* whiten: added to the diagonal of X^T X, as a fraction of
                                   its mean (default 1e-3) */
    const char *tokenizer_path; /* as shrink_load_params */
    int         dtype;          /* shrink_dtype of the output's matrices, -1: the input's */
    /* phase 0: calibration tokens run (done / total); phase 1: tensor bytes written (the
     * factorization runs as each matrix is reached); may be NULL */
    void      (*progress)(void *user, int phase, int64_t done, int64_t total);
    void       *user;
    /* 1: each matrix whose factors are smaller is stored as its two factors (GGUF output only:
     * <name>.lr_a (rank x cols), <name>.lr_b (rows x rank), run by shrink as two products;
     * llama.cpp does not read them); 0 (default): the product merged back dense */
    int         factored;
    /* 0 (default): every matrix at the rank of `ratio` (or rank / energy); 1: per-matrix ranks
     * under the global budget `ratio` x the targeted parameters, chosen by measured
     * sensitivity: each matrix alone truncated to a few candidate ranks, the KL of the model's
     * next-token distribution from the original's on calib_path (choose_tokens tokens), then a
     * greedy allocation of the budget by KL saved per parameter (docs/lowrank.md) */
    int         choose;
    int64_t     choose_tokens;  /* tokens of calib_path the sensitivity is measured on (512) */
} shrink_lowrank_params;

typedef struct shrink_lowrank_result {
    int64_t  n_matrices;      /* matrices targeted */
    int64_t  n_dense;         /* of them kept dense: their factors would not be smaller */
    int64_t  n_factored;      /* of them stored as two factors (params.factored) */
    int64_t  choose_passes;   /* choose: forward passes measured */
    double   choose_kl_sum;   /* choose: sum of the chosen matrices' measured KL (nats) */
    int64_t  params_target;   /* parameters of the targeted matrices */
    int64_t  params_lowrank;  /* their parameters stored as factors r (rows + cols) (the
                                 dense ones: rows x cols) */
    int32_t  min_rank, max_rank;
    double   mean_energy;     /* mean kept spectral energy (of W, W S or W L) */
    double   mean_rel_err;    /* mean ||W - W'||_F / ||W||_F */
    int64_t  calib_tokens;
    uint64_t in_file_bytes, out_file_bytes;
    double   seconds;
} shrink_lowrank_result;

SHRINK_API shrink_lowrank_params shrink_lowrank_params_default(void);
/* Replaces every targeted matrix of the model at `in` by its rank-r approximation (the rank
 * from params) and writes the product merged back dense to `out` (GGUF for *.gguf, else a
 * Hugging Face folder): the model keeps its shape, so every reader runs it. A rank of 0 or
 * above min(rows, cols), an energy outside (0, 1], a ratio outside (0, 1), or asvd / whiten
 * without a calibration text: SHRINK_ERR_ARG before anything is written. A matrix whose
 * factors would not be smaller than it (r (rows + cols) >= rows x cols) is kept as it is and
 * counted in n_dense. result may be NULL. */
SHRINK_API shrink_status shrink_lowrank(const char *in, const char *out,
                                        const shrink_lowrank_params *params,
                                        shrink_lowrank_result *result);

/* ==== temporaries (docs/reliability.md) ================================================== */

/* Removes every temporary file and folder this process is writing (an output appears only
 * when complete, so nothing else is lost). Async-signal-safe: the CLI calls it from its
 * SIGINT/SIGTERM/SIGHUP handler before exiting with 128 + the signal. */
SHRINK_API void shrink_remove_temporaries(void);
/* Removes the temporaries in folder `dir` left by shrink processes that no longer run
 * (SIGKILL, power loss): their names carry the writer's process id; one modified less than a
 * minute ago is kept (a writer in another pid namespace may share the folder). Calls removed(user, path)
 * for each one removed (may be NULL). Returns how many were removed. */
SHRINK_API int shrink_remove_stale_temporaries(const char *dir,
                                               void (*removed)(void *user, const char *path),
                                               void *user);

/* ==== students cut from a teacher (issue 12; src/prune/student.c, docs/distillation.md) ==== */

typedef enum shrink_student_pick {
    SHRINK_PICK_EVERY_OTHER, /* layers i * L / N when N divides L (every other one at N = L/2),
                                else round(i * (L - 1) / (N - 1)): first to last, evenly */
    SHRINK_PICK_KLD          /* the N layers of largest measured KL (shrink_sensitivity) */
} shrink_student_pick;

typedef struct shrink_student_params {
    int32_t             layers;      /* layers kept (0: all), chosen by pick */
    const int32_t      *layer_list;  /* or exactly these layers (n_layer_list; any order) */
    int32_t             n_layer_list;
    shrink_student_pick pick;
    int32_t             heads;       /* query heads kept per layer (0: all); a multiple of the
                                        K/V groups: each group keeps heads / n_kv_heads */
    int32_t             ffn;         /* FFN neurons kept per layer (0: all) */
    int32_t             hidden;      /* residual width kept (0: all): the dims of largest
                                        token-embedding column norm (shrink_structured_params
                                        .dims) */
    /* heads and neurons kept: with pick KLD the least measured KL goes (needs calib_path);
     * with EVERY_OTHER the least activation importance (calib_path given) or the last ones */
    const char         *calib_path;
    int64_t             calib_tokens;
    int32_t             calib_ctx;
    const char         *tokenizer_path;
    int                 dtype;       /* shrink_dtype of the output's matrices, -1: the input's */
    void              (*progress)(void *user, int phase, int64_t done, int64_t total);
    void               *user;
} shrink_student_params;

SHRINK_API shrink_student_params shrink_student_params_default(void);
/* Writes to `out` (any format: .gguf, .bin llama2.c, else a Hugging Face folder) a student
 * cut from the teacher at `teacher`: the kept layers, heads and neurons with the teacher's
 * weights copied exactly (shrink_prune_structured does the cut). A student as big as or
 * bigger than its teacher, a layer outside it or listed twice is SHRINK_ERR_ARG and nothing
 * is written. result as shrink_prune_structured's (may be NULL). */
SHRINK_API shrink_status shrink_student(const char *teacher, const char *out,
                                        const shrink_student_params *params,
                                        shrink_structured_result *result);

/* ==== synthetic training text from a teacher (issue 12; src/train/synth.c) ================= */

typedef struct shrink_synth_params {
    int64_t     n_tokens;       /* tokens written (the last sequence is cut) */
    const char *prompts_path;   /* UTF-8 text, one prompt per non-empty line (sequence j uses
                                   line j mod lines); NULL: every sequence starts from BOS */
    float       temperature;    /* 1 by default; 0 = greedy */
    int32_t     top_k;          /* 0 = off */
    float       top_p;          /* 1 = off */
    uint64_t    seed;
    int32_t     batch;          /* sequences sampled at once, one per thread (0: the threads) */
    int32_t     max_len;        /* tokens per sequence, prompt included (0: the context) */
    const char *tokenizer_path; /* as shrink_load_params */
    void      (*progress)(void *user, int64_t done, int64_t total); /* tokens; may be NULL */
    void       *user;
} shrink_synth_params;

typedef struct shrink_synth_result {
    int64_t n_tokens, n_sequences, n_generated; /* written; sequences; sampled (no prompts) */
    int32_t vocab_size, batch, max_len;
    double  seconds;
} shrink_synth_result;

SHRINK_API shrink_synth_params shrink_synth_params_default(void);
/* Samples sequences from the model at `model` into the token file `out` (the format of
 * shrink_tokenize_file, read by shrink_train): BOS, the prompt, sampled tokens up to EOS or
 * max_len, one sequence after another. The file depends on (model, params, seed) only, not on
 * the thread count or the batch size. Written atomically. result may be NULL. */
SHRINK_API shrink_status shrink_synth(const char *model, const char *out,
                                      const shrink_synth_params *params,
                                      shrink_synth_result *result);
/* ==== SHA-256 and the manifest (docs/manifest.md) ======================================== */

/* SHA-256 (FIPS 180-4) of data[0..n). */
SHRINK_API void shrink_sha256(const void *data, size_t n, uint8_t digest[32]);
/* SHA-256 of the regular file at `path` as 64 lowercase hex digits (what sha256sum prints);
 * *bytes (may be NULL) its size. Anything but a regular file is an error naming the path. */
SHRINK_API shrink_status shrink_sha256_file(const char *path, char hex[65], uint64_t *bytes);

/* The manifest: every model file shrink writes (GGUF: the metadata string "shrink.manifest";
 * a Hugging Face folder: shrink_manifest.json beside config.json; llama2.c files have no place
 * for one) can carry a JSON object saying how it was made: shrink's version, the command, the
 * SHA-256 of every input, seeds, threads, date, measured quality (docs/manifest.md). The
 * library never builds one itself (it never sees argv): the caller registers a source that
 * the writers ask, at the moment they write, for the JSON text (NULL: no manifest). The text
 * must be a JSON object; it is copied into the file as it is. fn NULL removes the source. */
typedef const char *(*shrink_manifest_fn)(void *user);
SHRINK_API void shrink_set_manifest_source(shrink_manifest_fn fn, void *user);

#define SHRINK_MANIFEST_KEY  "shrink.manifest"      /* the GGUF metadata key */
#define SHRINK_MANIFEST_FILE "shrink_manifest.json" /* the file in a Hugging Face folder */

typedef enum shrink_input_state {
    SHRINK_INPUT_UNCHECKED = 0,  /* shrink_manifest_verify not run */
    SHRINK_INPUT_MATCH,          /* same size and SHA-256 as recorded */
    SHRINK_INPUT_CHANGED,        /* the file at the path differs */
    SHRINK_INPUT_MISSING,        /* nothing readable at the path */
} shrink_input_state;

typedef struct shrink_manifest_input {
    const char        *arg;        /* the option that named it: "IN", "--calib", "--lora" */
    const char        *path;       /* absolute path when it was read */
    const char        *sha256;     /* 64 hex digits */
    uint64_t           bytes;
    shrink_input_state state;      /* after shrink_manifest_verify */
    char               now_sha256[65]; /* what the file holds now ("" when missing) */
    uint64_t           now_bytes;
} shrink_manifest_input;

typedef struct shrink_manifest_value {
    const char *key;
    double      value;
} shrink_manifest_value;

typedef struct shrink_manifest {
    char                  *json;      /* the text as stored in the file */
    const char            *version;   /* shrink's version that wrote it ("" if absent) */
    const char            *date;      /* UTC, ISO 8601 ("" if absent) */
    const char           **command;   /* argv as run */
    int32_t                n_command;
    int32_t                threads;   /* -1 if absent */
    shrink_manifest_input *inputs;
    int32_t                n_inputs;
    shrink_manifest_value *seeds;     /* option name -> value */
    int32_t                n_seeds;
    shrink_manifest_value *quality;   /* measured quality: name -> value */
    int32_t                n_quality;
    /* the manifests of the inputs that carried one (the steps before this one), one level:
     * deeper ones are in `json` */
    struct shrink_manifest_parent *parents;
    int32_t                n_parents;
} shrink_manifest;

typedef struct shrink_manifest_parent {
    const char  *arg, *path;          /* the input that carried it */
    const char  *version, *date;      /* "" if absent */
    const char **command;
    int32_t      n_command;
} shrink_manifest_parent;

/* Reads the manifest of the model at `path` (a .gguf file, a Hugging Face folder or a file in
 * one). *out is NULL (and SHRINK_OK) when the model has none; a manifest that is not the JSON
 * object of docs/manifest.md is SHRINK_ERR_FORMAT naming the file. */
SHRINK_API shrink_status shrink_manifest_read(const char *path, shrink_manifest **out);
/* Re-hashes every input the manifest names that exists at its path and sets its state.
 * Returns SHRINK_OK when it could check (whatever the states); *n_bad (may be NULL) counts
 * the inputs not SHRINK_INPUT_MATCH. */
SHRINK_API shrink_status shrink_manifest_verify(shrink_manifest *m, int32_t *n_bad);
SHRINK_API void shrink_manifest_free(shrink_manifest *m);
SHRINK_API const char *shrink_input_state_name(shrink_input_state s); /* "match", ... */

/* ==== report (docs/report.md) ============================================================= */

typedef struct shrink_report_result {
    int32_t n_points;   /* variants plotted (a base shared by several inputs counts once) */
    int32_t n_pareto;   /* of them on the size-vs-KL Pareto front */
    int32_t n_bars;     /* speed bars (decode and prompt tokens/s that were measured) */
    int32_t n_mem_bars;    /* memory bars (compare's peak RSS, measured with its speed test) */
    int32_t n_tensor_bars; /* per-tensor error bars (plan and quantize --verbose JSON inputs) */
    int32_t n_cells;       /* cells of the per-layer sensitivity heatmaps (plan JSON inputs) */
} shrink_report_result;

typedef struct shrink_report_params {
    const char *title;  /* the page's title; NULL: "shrink report" */
    const char *svg;    /* NULL: the HTML page; "pareto", "speed", "memory", "tensors" or
                         * "heatmap": that plot alone, as an SVG file (for documents) */
    const char *recipe_run; /* a recipe run's folder (docs/recipes.md), or NULL: the page shows
                             * its recipe and each step's record (command, size, gates) */
} shrink_report_params;

/* Writes one self-contained HTML page (inline SVG, no script, nothing fetched) to `out` from
 * the JSON objects of `shrink compare --json` in json_paths[0..n_json): the size-vs-KL plot
 * with its Pareto front, decode/prompt speed bars, the table of variants and the manifest of
 * each model file that has one; or one of the plots as an SVG file (params->svg). A file that
 * is not such an object is SHRINK_ERR_FORMAT naming it. params and result may be NULL. */
SHRINK_API shrink_status shrink_report(const char *const *json_paths, int32_t n_json,
                                       const char *out, const shrink_report_params *params,
                                       shrink_report_result *result);

/* ==== plan: per-tensor types for a size budget (docs/plan.md) ============================= */

#define SHRINK_PLAN_MAX_CANDS 16

/* One candidate type of a planned tensor: what it costs and the KL it gives alone. */
typedef struct shrink_plan_cand {
    shrink_dtype dtype;
    uint64_t     bytes;      /* of the tensor in that type, padded to the GGUF alignment */
    double       kl;         /* mean KL(original || model with this tensor alone in dtype) on
                                the calibration text (0 for the input's own type): measured,
                                or the anchor's scaled by err / the anchor's err */
    double       err;        /* importance-weighted squared error of the round trip, relative
                                to the weights' (sum imp (q - w)^2 / sum imp w^2) */
    bool         measured;   /* kl was measured by a forward pass (else scaled from it) */
} shrink_plan_cand;

/* One matrix of the output (GGUF name) with its measured candidates and the chosen one. */
typedef struct shrink_plan_tensor {
    char             name[64];
    int64_t          rows, cols;
    int32_t          n_cands;    /* candidates whose block divides the rows, ascending bytes */
    shrink_plan_cand cands[SHRINK_PLAN_MAX_CANDS];
    int32_t          choice;     /* index into cands */
    int32_t          anchor;     /* the candidate measured when not every one is */
} shrink_plan_tensor;

typedef struct shrink_plan_params {
    const char *calib_path;      /* UTF-8 text the KL is measured on (required) */
    int64_t     calib_tokens;    /* tokens of it used (default 1024) */
    int32_t     calib_ctx;       /* tokens per window, each from position 0 (0: min(512, ctx)) */
    uint64_t    budget_bytes;    /* the output file's size at most (header and manifest
                                    included); 0: budget_bits */
    double      budget_bits;     /* else: bits per weight at most (8 x tensor bytes / elements
                                    of every tensor written, as shrink_quantize counts) */
    double      max_kl;          /* else: the smallest file whose predicted KL is at most this
                                    (budget_bytes and budget_bits 0) */
    const char *types;           /* comma-separated candidate types (NULL: llama.cpp's q2_K,
                                    q3_K, q4_K, q5_K, q6_K, q4_0, q4_1, q5_0, q5_1, iq4_nl,
                                    q8_0, f16) */
    bool        measure_all;     /* one forward pass per candidate (default: one per matrix,
                                    at its anchor type, the others scaled by their error) */
    bool        no_imatrix;      /* quantize without the importance of the inputs measured on
                                    the text (default: with it, the head's included) */
    const char *tokenizer_path;  /* NULL: the model's own */
    const char *out;             /* write the planned model here (GGUF), or NULL */
    void      (*progress)(void *user, int64_t done, int64_t total); /* measurements; may be NULL */
    void       *user;
    /* instead of a budget: the type of every planned matrix, "NAME=TYPE,NAME=TYPE,..." (the
     * plan a run chose, as `shrink plan --recipe` prints it): nothing is measured but the
     * importance and, with out, the written file's KL; each TYPE must be a candidate */
    const char *assign;
} shrink_plan_params;

typedef struct shrink_plan_result {
    int64_t             n_tensors;     /* planned matrices */
    shrink_plan_tensor *tensors;       /* (n_tensors), writing order; shrink_plan_result_free */
    uint64_t            budget_bytes;  /* the file-size budget that was solved for (max_kl: the
                                          smallest found, to 1/10000 of the largest file) */
    uint64_t            min_bytes;     /* the smallest file the candidates allow */
    uint64_t            file_bytes;    /* of the planned file (written or not) */
    uint64_t            header_bytes;  /* of it: header, metadata and manifest */
    uint64_t            fixed_bytes;   /* of it: tensors not planned (norms, positions) */
    uint64_t            tensor_bytes;  /* every tensor's data, unpadded */
    int64_t             n_params;      /* elements of every tensor written */
    double              bits_per_weight; /* 8 x tensor_bytes / n_params */
    double              predicted_kl;  /* sum of the chosen candidates' KL */
    double              measured_kl;   /* of the written file on the calibration text; NaN
                                          without out */
    int64_t             calib_tokens;  /* tokens the KL was measured on */
    int64_t             n_measured;    /* forward passes run for the table */
    double              seconds;
} shrink_plan_result;

SHRINK_API shrink_plan_params shrink_plan_params_default(void);
/* Measures, for every matrix of the model at `in` and every candidate type whose block divides
 * its rows, the KL on the calibration text when that matrix alone is quantized (the importance
 * weighted quantizer shrink_quantize uses; by default measured at one anchor type per matrix,
 * the first of at least 4.5 bits, and scaled to the other types by their weighted error), then chooses one type per matrix minimising the
 * summed KL under the budget (shrink_plan_solve), and with params->out writes the model so.
 * A pure function of its inputs. A budget below the smallest possible file is SHRINK_ERR_ARG
 * saying that size; an unknown or unusable type is SHRINK_ERR_ARG naming it. */
SHRINK_API shrink_status shrink_plan(const char *in, const shrink_plan_params *params,
                                     shrink_plan_result *result);
SHRINK_API void shrink_plan_result_free(shrink_plan_result *result);
/* The multiple-choice knapsack shrink_plan solves: n items of k options each (bytes[i*k + j],
 * UINT64_MAX: not available; kl[i*k + j]), one option per item, summed bytes <= budget, least
 * summed kl (exact when budget <= 2^20: costs are then not rounded; otherwise costs are
 * rounded up to budget / 2^20 and the slack refilled greedily). choice[i] gets the option;
 * ties go to the fewer bytes, then the lower index. SHRINK_ERR_ARG if no choice fits. */
SHRINK_API shrink_status shrink_plan_solve(int64_t n, int32_t k, const uint64_t *bytes,
                                           const double *kl, uint64_t budget, int32_t *choice);

#ifdef __cplusplus
}
#endif
#endif /* SHRINK_H */
