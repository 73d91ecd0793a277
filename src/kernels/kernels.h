/*
 * kernels.h - the dtype table and the compute kernels the decoder calls.
 *
 * Shapes: a weight matrix W is (rows = out features, cols = in features), row-major, each row
 * `cols` contiguous elements of W->dtype. Activations are f32, row-major, one row per token.
 *
 * Every kernel has a scalar reference (`*_ref`, in matmul.c) that is its specification;
 * SIMD versions live in x86/<family>_<isa>.c and are chosen once at init by dispatch.c
 * (SHRINK_KERNELS=ref forces the references). Design notes: docs/kernels.md.
 */
#ifndef SK_KERNELS_H
#define SK_KERNELS_H

#include "../core/core.h"

/* ---- the dtype table ------------------------------------------------------------------- */

/* Tensor-level inputs of a quantizer (sk_dtype_traits.quantize). Zeroed = row-local RTN. */
typedef struct sk_qparams {
    const float *imatrix;  /* n importance weights (mean x^2 of each input column), or NULL */
    int   tensor_range;    /* per-tensor types: 1 = use [tmin, tmax], the whole tensor's range */
    float tmin, tmax;
    float act_scale;       /* w8a8_static: the calibrated activation scale (absmax / 127) */
    const float *palette;  /* palette types: the row's group palette (pal_g values), or NULL */
    int   pal_j, pal_g;    /* palette types: the row's index in its group, the group's rows */
} sk_qparams;

/* What sk_matmul turns a token's activations into before calling a row's vec_dot
 * (the kernels' "vec_dot type", as in ggml). Layouts: docs/kernels.md. */
typedef enum sk_act_format {
    SK_ACT_F32 = 0,   /* f32 as is (dequantizing kernels, e.g. nf4) */
    SK_ACT_Q8_32,     /* sk_act_q8_32 blocks of 32: int8 with f32 scale d and s = d*sum(q) */
    SK_ACT_Q8_K,      /* ggml's block_q8_K (256 int8, f32 d, 16 sums of 16) */
    SK_ACT_I8_TOKEN,  /* sk_act_i8 header + n int8: one scale per token (W8A8 dynamic) */
    SK_ACT_I8_STATIC, /* as SK_ACT_I8_TOKEN, the scale read from the weight (W8A8 static) */
    SK_ACT_COUNT
} sk_act_format;

typedef struct sk_act_q8_32 {
    float  d;      /* scale: x ~ d * q */
    float  s;      /* d * sum(q) (for kernels of offset/min types) */
    int8_t qs[32];
} sk_act_q8_32;

typedef struct sk_act_i8 {
    float   d;     /* scale of the whole token */
    int32_t sum;   /* sum(q) */
    /* followed by n int8 */
} sk_act_i8;

/* dot of one weight row (n elements, w at the row's first byte, head included) with one
 * token's activations in the row's act format */
typedef float (*sk_vec_dot_fn)(int64_t n, const void *w, const void *xa);

typedef struct sk_dtype_traits {
    const char *name;       /* "f32" */
    const char *st_name;    /* safetensors spelling: "F32" */
    size_t      block;      /* elements per block */
    size_t      bytes;      /* bytes per block */
    size_t      row_head;   /* bytes before each row's first block (per-row scales); 0 mostly.
                             * For row_head > 0, to_f32/from_f32/quantize take whole rows
                             * (src/dst at the head) and to_f32_range reads part of one. */
    /* dst[0..n) = src widened to f32 (n a multiple of block) */
    void (*to_f32)(const void *src, float *dst, int64_t n);
    /* dst = src narrowed (round to nearest even); n a multiple of block */
    void (*from_f32)(const float *src, void *dst, int64_t n);
    /* quantize one row with tensor-level parameters (NULL: as from_f32); NULL: from_f32 */
    void (*quantize)(const float *src, void *dst, int64_t n, const sk_qparams *p);
    /* row_head > 0 only: dst[0..n) = elements [k0, k0 + n) of the row at `row` (k0 and n
     * multiples of block) */
    void (*to_f32_range)(const void *row, int64_t k0, int64_t n, float *dst);
    sk_act_format act;      /* activations for vec_dot */
    sk_vec_dot_fn vec_dot_ref; /* the scalar reference dot (NULL: dequantize + f32 dot) */
    double tol_rel;         /* tests: relative error of a round trip */
    /* types whose row heads index into the row (palettes, unstructured sparse): the first
     * row of a tensor whose head does not fit, or -1 (the GGUF reader runs it on every tensor
     * of the type, so no kernel reads outside a row); check_what: what such a row breaks.
     * NULL: nothing to check */
    int64_t (*check_rows)(shrink_dtype t, const void *data, int64_t rows, int64_t cols);
    const char *check_what;
} sk_dtype_traits;

SK_HIDDEN const sk_dtype_traits *sk_dtype(shrink_dtype t);
/* Bytes of a row of n elements of dtype t (n a multiple of the block), head included.
 * NOT an offset inside a row for row_head > 0 types. */
SK_HIDDEN uint64_t sk_dtype_row_bytes(shrink_dtype t, int64_t n);
/* Bytes of a (rows, cols) matrix of dtype t: rows * sk_dtype_row_bytes(t, cols) (every row
 * has its own head). Use this, not sk_dtype_row_bytes(t, rows * cols), for whole tensors. */
SK_HIDDEN uint64_t sk_dtype_tensor_bytes(shrink_dtype t, int64_t rows, int64_t cols);
/* 1 if t is quantized (block > 1 or a row head): not addressable element by element (no
 * transposes, no per-element copies, whole rows only for row-head types); 0 for f32/f16/bf16. */
SK_HIDDEN int sk_dtype_quantized(shrink_dtype t);
/* 1 if t is one of shrink's own types (int8_*, int4_*, nf4*, w8a8*): no ggml type, llama.cpp
 * cannot read a GGUF file that holds it; 0 for f32/f16/bf16 and llama.cpp's block types. */
SK_HIDDEN int sk_dtype_own(shrink_dtype t);
/* 1 if t is one of the 2:4 sparse types (sparse24_f16, sparse24_i8; sparse24.c). */
SK_HIDDEN int sk_dtype_sparse24(shrink_dtype t);
/* 1 if every group of 4 consecutive elements of x[0..n) has at most 2 non-zeros (n % 4 == 0):
 * the row is stored exactly (up to the values' rounding) by the sparse24 types. */
SK_HIDDEN int sk_sparse24_row_ok(const float *x, int64_t n);
/* 1 if t is one of the unstructured sparse types (sparse_f16, sparse_i8; sparse_bm.c). */
SK_HIDDEN int sk_dtype_sparse_bm(shrink_dtype t);
/* 1 if x[0..n) has at most n/2 non-zeros (n % 64 == 0): the row is stored exactly (up to the
 * values' rounding) by the sparse_bm types. */
SK_HIDDEN int sk_sparse_bm_row_fits(const float *x, int64_t n);
/* Zeroes all but the n/2 largest |x| of a row with more non-zeros (the lower index stays on
 * ties), as the sparse_bm quantizers keep them; returns the count zeroed (0 if it fits). */
SK_HIDDEN int64_t sk_sparse_bm_trim(float *x, int64_t n);
/* The first row of a sparse_bm tensor (rows x cols at data) whose head disagrees with its
 * bitmaps (popcount != nnz, or nnz > cols/2), or -1 if every row is sound. */
SK_HIDDEN int64_t sk_sparse_bm_check(shrink_dtype t, const void *data, int64_t rows,
                                     int64_t cols);

/* Scalar conversions (IEEE half, bfloat16); round to nearest even, NaN/Inf preserved. */
SK_HIDDEN float    sk_f16_to_f32(uint16_t h);
SK_HIDDEN uint16_t sk_f32_to_f16(float f);
SK_HIDDEN float    sk_bf16_to_f32(uint16_t h);
SK_HIDDEN uint16_t sk_f32_to_bf16(float f);

/* ---- dtype conversion (convert_dtype.c) ------------------------------------------------ */

/* Dtype conversion of n elements (any pair of F32/F16/BF16; equal dtypes copy). Block types
 * need n a multiple of the block; row-head types (int8_ch, ...) one row: use sk_convert_rows. */
SK_HIDDEN void sk_convert(const void *src, shrink_dtype sdt, void *dst, shrink_dtype ddt,
                          int64_t n);
/* Dtype conversion of `rows` rows of `cols` elements, row-major, each row with its own head for
 * row-head types (quantizing one row at a time with the row's own statistics). Any pair of
 * dtypes (cols a multiple of both blocks). SHRINK_ERR_NOMEM if a row buffer is unavailable. */
SK_HIDDEN shrink_status sk_convert_rows(const void *src, shrink_dtype sdt, void *dst,
                                        shrink_dtype ddt, int64_t rows, int64_t cols);

/* ---- matrices -------------------------------------------------------------------------- */

typedef struct sk_mat {
    shrink_dtype dtype;
    int64_t      rows;  /* out features */
    int64_t      cols;  /* in features */
    const void  *data;  /* rows * cols elements, row-major */
    /* A low-rank matrix stored as two factors (issue 15, docs/lowrank.md): NULL for a dense
     * one. Else W = B A with lr[0] = A (rank x cols) and lr[1] = B (rows x rank), each in any
     * dtype; data is NULL and dtype that of A. sk_matmul (and _f32x, _ref) run it as two
     * products, X A^T then (X A^T) B^T, through the kernels of each factor's dtype; code that
     * reads W's rows itself (sk_mat_row_f32, the training's f32 W) must check sk_mat_lowrank. */
    const struct sk_mat *lr;
} sk_mat;

/* W is stored as two factors (W->lr). */
static inline int sk_mat_lowrank(const sk_mat *W) { return W->lr != NULL; }
/* Bytes of W's weights (both factors of a low-rank W). */
SK_HIDDEN uint64_t sk_mat_bytes(const sk_mat *W);

/* Y[t*ldy + r] = sum_k W[r, k] * X[t*cols + k]   for t < T, r < W->rows.
 * (Y = X W^T, as torch.nn.functional.linear without bias.) Accumulates in f32.
 * Uses the library's threads (OpenMP); call from outside a parallel region.
 * T == 1 is the decode (matrix-vector) case; T > 1 prompt processing (matrix-matrix).
 * Work memory comes from the scratch s (core.h), which must have
 * sk_matmul_scratch_bytes(sk_kernels(), W, T) bytes left (the caller sizes it once at setup
 * for its largest call and the thread count; NULL when that is 0); nothing is allocated.
 * SHRINK_ERR_ARG (with a message) if the scratch is too small, else SHRINK_OK. */
SK_HIDDEN shrink_status sk_matmul(const sk_mat *W, const float *X, int64_t T, float *Y,
                                  int64_t ldy, sk_scratch *s);

/* sk_matmul with the activations kept in f32 whatever W's dtype (training through a frozen
 * quantized matrix: the product its backward differentiates): W's rows dequantized into the
 * f32 GEMM (T > 1) or GEMV (T == 1), never the kernels that quantize X (decode's vec_dot, the
 * integer prompt GEMMs of q8_0 / q4_0 / q4_K); w8a8 types keep their fake-quantized X. The
 * same as sk_matmul for f32/f16/bf16 and the types without integer kernels. Scratch:
 * sk_matmul_f32x_scratch_bytes(sk_kernels(), W, T). */
SK_HIDDEN shrink_status sk_matmul_f32x(const sk_mat *W, const float *X, int64_t T, float *Y,
                                       int64_t ldy, sk_scratch *s);

/* The scalar reference of sk_matmul (single-threaded): the specification, used by tests.
 * Allocates a row (SHRINK_ERR_NOMEM on failure); the library does not call it. */
SK_HIDDEN shrink_status sk_matmul_ref(const sk_mat *W, const float *X, int64_t T, float *Y,
                                      int64_t ldy);

/* Row r of W as f32 (dst has W->cols floats). Used for embedding lookups. */
SK_HIDDEN void sk_mat_row_f32(const sk_mat *W, int64_t r, float *dst);

/* ---- vector helpers (dispatched; the _ref versions are the specification) -------------- */

/* sum_i a[i] * b[i], accumulated in f32 (the ref in index order; SIMD in lanes). */
SK_HIDDEN float sk_vec_dot_f32(const float *a, const float *b, int64_t n);
SK_HIDDEN float sk_vec_dot_f32_ref(const float *a, const float *b, int64_t n);
/* x[i] = expf(x[i] - sub); returns their sum (in index order). SIMD versions use a polynomial
 * accurate to a few ulp and may sum in lanes. */
SK_HIDDEN float sk_vec_exp_sum_f32_ref(float *x, int64_t n, float sub);
/* y[i] += alpha * x[i] */
SK_HIDDEN void sk_vec_axpy_f32(int64_t n, float alpha, const float *x, float *y);
SK_HIDDEN void sk_vec_axpy_f32_ref(int64_t n, float alpha, const float *x, float *y);

/* ---- kernel sets (one per ISA) ------------------------------------------------------------
 *
 * sk_matmul is one driver (matmul.c) over a set of small kernels:
 *   T == 1: `gemv` computes y[r] for a range of rows, streaming each weight row once;
 *           the driver splits the rows across the OpenMP threads.
 *   T >  1: GotoBLAS-style blocking. The driver packs X into token tiles of `nr` tokens
 *           ([k][nr] f32, zero padded) with `pack_x`, each thread packs its weight rows block by block
 *           into panels of `mr` rows ([k][mr] f32, widened from f16/bf16, zero padded) with
 *           `pack_w`, and `tile` computes an nt x mrows block of Y from one panel and one
 *           token tile (mr*nr accumulators in registers, X broadcast, W loaded as vectors).
 * The ref set has no gemv/pack_w/tile: the driver then runs sk_matmul_ref's loop over row
 * ranges (bit-identical to sk_matmul_ref), or, where activations are quantized (T == 1 with
 * a dtype that has vec_dot_ref; w8a8 prompts), the reference quantizers and dots. */
typedef enum sk_isa { SK_ISA_REF = 0, SK_ISA_AVX2 = 1, SK_ISA_AVX512 = 2, SK_ISA_COUNT } sk_isa;

typedef struct sk_kernel_set {
    const char *name; /* "ref", "avx2", "avx512" */
    sk_isa isa;       /* the level of the set */
    int mr, nr;       /* GEMM micro-tile: mr weight rows x nr tokens */
    /* y[r - r0] = sum_k W[r, k] x[k] for r in [r0, r1) */
    void (*gemv)(const sk_mat *W, const float *x, float *y, int64_t r0, int64_t r1);
    /* dst[p][k][mr] = W[r0 + p*mr + i, k0 + k] for i < mr, k < kc, p < ceil(nrows/mr);
     * rows past nrows are zero. dst is 64-byte aligned. */
    void (*pack_w)(const sk_mat *W, int64_t r0, int64_t nrows, int64_t k0, int64_t kc,
                   float *dst);
    /* dst[k*nr + j] = X[(t0 + j)*cols + k0 + k] for k < kc, j < nr; zero where t0 + j >= T. */
    void (*pack_x)(const float *X, int64_t cols, int64_t T, int64_t t0, int64_t k0, int64_t kc,
                   float *dst);
    /* For t < nt, i < mrows: Y[t*ldy + i] (+)= sum_{k<kc} wp[k*mr + i] * xp[k*nr + t]
     * (accumulate != 0: add to Y; else overwrite). nt <= nr, mrows <= mr. */
    void (*tile)(int64_t kc, const float *wp, const float *xp, float *Y, int64_t ldy, int nt,
                 int mrows, int accumulate);
    float (*dot_f32)(const float *a, const float *b, int64_t n);
    void (*axpy_f32)(int64_t n, float alpha, const float *x, float *y);
    /* x[i] = exp(x[i] - sub) for i < n; returns the sum of the new x (softmax numerators) */
    float (*exp_sum_f32)(float *x, int64_t n, float sub);
} sk_kernel_set;

SK_HIDDEN extern const sk_kernel_set sk_kernels_ref;    /* matmul.c */
SK_HIDDEN extern const sk_kernel_set sk_kernels_avx2;   /* x86/matmul_avx2.c */
SK_HIDDEN extern const sk_kernel_set sk_kernels_avx512; /* x86/matmul_avx512.c */

/* Threading helpers shared by the matmul drivers (matmul.c, gemm_i8.c):
 * the library's thread count, or 1 below min_work multiply-adds (a fork costs more); */
SK_HIDDEN int sk_threads_for(double work, double min_work);
/* [lo, hi) of n units for thread i of nth (static, contiguous, balanced); */
SK_HIDDEN void sk_split(int64_t n, int i, int nth, int64_t *lo, int64_t *hi);
/* the GEMM thread grid: weight panels split over min(n, npanels) threads, token tiles over the
 * n / that of each (tokens are only split when there are fewer panels than threads); threads
 * outside the grid get empty ranges. */
SK_HIDDEN void sk_gemm_grid(int64_t npanels, int64_t ntiles, int me, int n, int64_t *p_lo,
                            int64_t *p_hi, int64_t *j_lo, int64_t *j_hi);

/* Scratch bytes sk_matmul takes for W and T tokens with kernel set ks at the current thread
 * count (omp_get_max_threads()): 0 for most decode calls. */
SK_HIDDEN size_t sk_matmul_scratch_bytes(const sk_kernel_set *ks, const sk_mat *W, int64_t T);
/* The same for sk_matmul_f32x. */
SK_HIDDEN size_t sk_matmul_f32x_scratch_bytes(const sk_kernel_set *ks, const sk_mat *W, int64_t T);
/* sk_matmul with a given kernel set and scratch. */
SK_HIDDEN shrink_status sk_matmul_in(const sk_kernel_set *ks, const sk_mat *W, const float *X,
                                     int64_t T, float *Y, int64_t ldy, sk_scratch *s);
/* sk_matmul_in with a scratch of its own, allocated and freed in the call (SHRINK_ERR_NOMEM):
 * for tests and benchmarks that compare the sets; the library does not call it. */
SK_HIDDEN shrink_status sk_matmul_with(const sk_kernel_set *ks, const sk_mat *W,
                                       const float *X, int64_t T, float *Y, int64_t ldy);

/* ---- row dequantizers of the quantized dtypes (dequant.c, x86/dequant_<isa>.c) ----------
 *
 * Prompt processing (T > 1) of the weight-only quantized types packs f32 panels of the weights
 * (matmul.c, pack_w_blocks): each row's K block through the level's dequantizer, then the
 * set's f32 pack_w interleaves the rows into panels. The SIMD dequantizers give the reference's
 * floats bit for bit (tests/test_dequant.c), so every level packs the same panels. */
/* dst[0..n) = elements [k0, k0 + n) of the row at `row` (the row's first byte, head included;
 * k0 and n multiples of the block). Any address. */
typedef void (*sk_dequant_fn)(const void *row, int64_t k0, int64_t n, float *dst);
/* The reference: the dtype row's to_f32_range (row-head types) or to_f32 from k0's block. */
SK_HIDDEN void sk_dequant_ref(shrink_dtype t, const void *row, int64_t k0, int64_t n,
                              float *dst);
/* The SIMD dequantizer of dtype t for a level (clamped to the CPU), NULL where there is none
 * (the ref level, f32/f16/bf16): callers then use sk_dequant_ref. A read of the kernel table
 * (sk_kernel_table(isa)->dtype[t].dequant), for tests and benchmarks. */
SK_HIDDEN sk_dequant_fn sk_dequant_get(sk_isa isa, shrink_dtype t);
/* x86/dequant_<isa>.c: that ISA's dequantizers, NULL where it has none. */
SK_HIDDEN sk_dequant_fn sk_dequant_avx2(shrink_dtype t);
SK_HIDDEN sk_dequant_fn sk_dequant_avx512(shrink_dtype t);

/* ---- dispatch -------------------------------------------------------------------------- */

/* Fills the dispatch table once (thread-safe, idempotent). Called by sk_matmul itself.
 * SHRINK_KERNELS=ref|avx2|avx512 forces a level (never above what the CPU has). */
SK_HIDDEN void sk_kernels_init(void);
/* "avx512", "avx2" or "ref". */
SK_HIDDEN const char *sk_kernels_isa(void);
/* The highest level this CPU and OS support. */
SK_HIDDEN sk_isa sk_cpu_isa(void);
/* The kernel set of a level, or NULL if this CPU cannot run it. */
SK_HIDDEN const sk_kernel_set *sk_kernels_get(sk_isa isa);
/* The chosen set. */
SK_HIDDEN const sk_kernel_set *sk_kernels(void);
/* Tests and benchmarks: choose a level (clamped to sk_cpu_isa()); returns the level set.
 * Not to be called while kernels run on other threads. */
SK_HIDDEN sk_isa sk_kernels_force(sk_isa isa);

/* ---- quantized activations and dot kernels (qdot.c, x86/qdot_<isa>.c) ---------------------
 *
 * Decode (T == 1) with a block or int8 weight type: sk_matmul quantizes x once into the row's
 * act format, then calls the row's vec_dot per weight row. Layouts and the reference dot
 * semantics: docs/formats.md (the block and shrink type layouts) and docs/kernels.md
 * ("Quantized decode").
 *   SK_ACT_Q8_32     n % 32 == 0: n/32 sk_act_q8_32, d = absmax/127, q = roundf(x/d)
 *   SK_ACT_Q8_K      n % 256 == 0: n/256 block_q8_K (ggml's quantize_row_q8_K_ref)
 *   SK_ACT_I8_TOKEN  sk_act_i8 + n int8, d = absmax/127, q = roundf(x/d)
 *   SK_ACT_I8_STATIC sk_act_i8 + n int8, d = static_scale, q = clamp(roundf(x/d), -127, 127);
 *                    the scale is the f32 at byte SK_ACT_STATIC_OFF of the weight's row head
 *                    (the same in every row); 0 ("not calibrated"): as SK_ACT_I8_TOKEN
 *   SK_ACT_F32       n f32 (a copy) */
#define SK_ACT_STATIC_OFF 4

/* Bytes of the activations of n elements in format f (n a multiple of the format's block). */
SK_HIDDEN size_t sk_act_bytes(sk_act_format f, int64_t n);
/* Elements per block of format f (32, 256, 1). */
SK_HIDDEN int64_t sk_act_block(sk_act_format f);
typedef void (*sk_act_quant_fn)(const float *x, int64_t n, void *dst, float static_scale);
/* dst (sk_act_bytes(f, n) bytes, any alignment) = x[0..n) in format f. _ref: the scalar
 * specification; sk_act_quantize: the chosen ISA's (byte-identical to the ref). */
SK_HIDDEN void sk_act_quantize_ref(sk_act_format f, const float *x, int64_t n, void *dst,
                                   float static_scale);
SK_HIDDEN void sk_act_quantize(sk_act_format f, const float *x, int64_t n, void *dst,
                               float static_scale);
/* The quantizer of format f for a level (clamped to the CPU; the ref where none exists).
 * A read of sk_kernel_table(isa)->act_quant[f]. */
SK_HIDDEN sk_act_quant_fn sk_act_quant_get(sk_isa isa, sk_act_format f);
/* dst[0..n) = the f32 values the activations stand for (d * q). Tests and fake quantization. */
SK_HIDDEN void sk_act_dequantize(sk_act_format f, const void *src, int64_t n, float *dst);
/* The dot kernel of dtype t for a level: the SIMD kernel when one exists for that ISA (or a
 * lower one) and this CPU runs it, else sk_dtype(t)->vec_dot_ref (NULL: no dot kernel).
 * A read of sk_kernel_table(isa)->dtype[t].vec_dot. */
SK_HIDDEN sk_vec_dot_fn sk_vec_dot_get(sk_isa isa, shrink_dtype t);
/* x86/qdot_<isa>.c: that ISA's kernels, NULL where it has none. */
SK_HIDDEN sk_vec_dot_fn sk_qdot_avx2(shrink_dtype t);
SK_HIDDEN sk_vec_dot_fn sk_qdot_avx512(shrink_dtype t);
SK_HIDDEN sk_act_quant_fn sk_act_quant_avx2(sk_act_format f);
SK_HIDDEN sk_act_quant_fn sk_act_quant_avx512(sk_act_format f);
/* AVX-512 VNNI (vpdpbusd) present: the avx512 dot kernels need it (dispatch.c). */
SK_HIDDEN int sk_cpu_has_vnni(void);

/* ---- int8 GEMM of the W8A8 types (gemm_i8.c, x86/gemm_i8_<isa>.c) ---------------------------
 *
 * Prompt processing (T > 1) of w8a8 / w8a8_static: each token quantized once (the act
 * format's quantizer, as decode), int8 weight panels x int8 token tiles with int32
 * accumulators, then Y[t, r] = (float)isum * (d_w[r] * d_x[t]): bit-identical to the decode
 * dot (vec_dot_ref) of every token. K runs in groups of 4 consecutive k (one dword per row or
 * token, the shape of vpdpbusd's operands); each ISA chooses the packed element type (int8
 * with an offset, int16) and says so in wgb / xgb. The driver's blocking is gemm_threaded's. */
#define SK_I8_ACC    1 /* tile: add to the int32 partial sums kept in Y's bytes (else from 0) */
#define SK_I8_FINISH 2 /* tile: last K block: Y = (float)isum * (dw[i] * dx[t]) as f32 */
/* Widest row of the int8 GEMM: |sum w x| <= 128 * 127 * 2^17 < 2^31 (exact in int32, even
 * with -128 weight codes a file may hold). Wider rows take the fake-quantized f32 GEMM. */
#define SK_I8_MAX_COLS 131072
typedef struct sk_i8_gemm {
    const char *name;  /* "avx2", "avx512" */
    int mr, nr;        /* micro-tile: mr weight rows x nr tokens */
    int wgb, xgb;      /* bytes of one group of 4 k: per row of a panel, per token of a tile */
    int kc_max;        /* K block, a multiple of 4 */
    /* Panels of mr rows, ceil(kc/4) groups each ([g][mr] x wgb bytes), from rows [0, nrows)
     * (row i's int8 at w + i*rb), k in [k0, k0 + kc); rows >= nrows and k >= kc as 0.
     * Reads no byte of a row past k0 + kc. dst is 64-byte aligned. */
    void (*pack_w)(const int8_t *w, uint64_t rb, int64_t nrows, int64_t k0, int64_t kc,
                   void *dst);
    /* One tile ([g][nr] x xgb bytes) of tokens [0, nt) (token j's int8 at x + j*xs), k in
     * [k0, k0 + kc); tokens >= nt and k >= kc as 0. dst is 64-byte aligned. */
    void (*pack_x)(const int8_t *x, size_t xs, int nt, int64_t k0, int64_t kc, void *dst);
    /* For t < nt, i < mrows: isum = sum over ng groups of panel row i x tile token t (plus
     * the int32 stored at Y[t*ldy + i] with SK_I8_ACC); with SK_I8_FINISH Y[t*ldy + i] =
     * (float)isum * (dw[i] * dx[t]), else the int32 isum is stored in Y's bytes. xsum[t]: the
     * token's sum of q over its whole row (kernels that offset an operand correct with it).
     * dw has mr floats, dx and xsum nr entries (padding 0). */
    void (*tile)(int64_t ng, const void *wp, const void *xp, float *Y, int64_t ldy, int nt,
                 int mrows, int flags, const float *dw, const float *dx, const int32_t *xsum);
} sk_i8_gemm;

SK_HIDDEN extern const sk_i8_gemm sk_i8_gemm_avx2;   /* x86/gemm_i8_avx2.c: int16 x madd */
SK_HIDDEN extern const sk_i8_gemm sk_i8_gemm_avx512; /* x86/gemm_i8_avx512.c: VNNI */
/* The int8 GEMM kernels of a level (clamped to the CPU; avx512 needs VNNI, else avx2's);
 * NULL for the ref level. A read of sk_kernel_table(isa)->i8. */
SK_HIDDEN const sk_i8_gemm *sk_i8_gemm_get(sk_isa isa);
/* Y = X W^T for T > 1 and W of an SK_ACT_I8_* type with the level's int8 GEMM (ref: the
 * reference quantizer and vec_dot_ref per token and row). Returns 0 without touching Y (or s)
 * when W's type has no int8 activations or W->cols > SK_I8_MAX_COLS, else 1. Threads as
 * sk_matmul; takes sk_matmul_i8_scratch_bytes from s (which must have them: sk_matmul checks). */
SK_HIDDEN int sk_matmul_i8(sk_isa isa, const sk_mat *W, const float *X, int64_t T, float *Y,
                           int64_t ldy, sk_scratch *s);
/* Scratch bytes of sk_matmul_i8 (0: it declines W). */
SK_HIDDEN size_t sk_matmul_i8_scratch_bytes(sk_isa isa, const sk_mat *W, int64_t T);

/* ---- integer GEMM of weight-only block types (gemm_q8.c, x86/gemm_q8_<isa>.c) -------------
 *
 * Prompt processing (T > 1) of q8_0, q4_0 and q4_K: every token quantized once per call into
 * the dtype's act format (decode's quantizer: SK_ACT_Q8_32, SK_ACT_Q8_K), then per weight
 * block and token the integer sums of the block in int32 and the f32 block term of the
 * dtype's vec_dot_ref, blocks accumulated in index order: bit-identical to decode's
 * vec_dot_ref of every token (what the ref level runs). The weights are read in place (no
 * packing): each 4-byte group of a block is broadcast and multiplied with a vector of tokens.
 * The tokens are packed once per call into tiles of `nt` tokens, per weight block:
 *   32-blocks (q8_0, q4_0): [8 groups][nt][4 int8], nt int32 sums of q, nt f32 d;
 *   q4_K (256):             [64 groups][nt][4 int8], [8][nt] int32 sums of q per 32, nt f32 d.
 * Per weight row and block the driver prepares sk_q8g_prep(kind) floats: d (32-blocks), or
 * q4_K's 8 scales and 8 mins (int32 bits), d and dmin. */
typedef enum sk_q8g_kind { SK_Q8G_Q8_0 = 0, SK_Q8G_Q4_0, SK_Q8G_Q4_K, SK_Q8G_COUNT } sk_q8g_kind;
/* bytes of one weight block's part of a tile of nt tokens */
#define sk_q8g_xblock(kind, nt) ((size_t)(nt) * ((kind) == SK_Q8G_Q4_K ? 292u : 40u))
/* floats prepared per weight row and block */
#define sk_q8g_prep(kind) ((kind) == SK_Q8G_Q4_K ? 18 : 1)
typedef struct sk_q8_gemm {
    const char *name;       /* "avx2", "avx512" */
    int mr[SK_Q8G_COUNT];   /* rows per tile call (at most) per kind; 0: kind not supported */
    int nt;                 /* tokens per x tile */
    /* For i < mrows, t < ntv (the tile's tokens; out[] of the others is left undefined):
     * out[i*nt + t] = the dtype's vec_dot_ref of row i (at w + i*rb, nb blocks) and token t
     * of the x tile xp (64-byte aligned; padding tokens zero), with row i's prepared scales
     * at prep + i*preps (sk_q8g_prep(kind) floats per block). */
    void (*tile)(sk_q8g_kind kind, int64_t nb, const uint8_t *w, uint64_t rb, int mrows,
                 int ntv, const float *prep, int64_t preps, const uint8_t *xp, float *out);
} sk_q8_gemm;

SK_HIDDEN extern const sk_q8_gemm sk_q8_gemm_avx2;   /* x86/gemm_q8_avx2.c: maddubs */
SK_HIDDEN extern const sk_q8_gemm sk_q8_gemm_avx512; /* x86/gemm_q8_avx512.c: VNNI */
/* The level's kernels (avx512 needs VNNI, else avx2's); NULL at the ref level. */
SK_HIDDEN const sk_q8_gemm *sk_q8_gemm_get(sk_isa isa);
/* Y = X W^T for T > 1 and W of q8_0 / q4_0 / q4_K with the level's kernels
 * (ref: the reference quantizer and vec_dot_ref per token and row). Returns 0 without
 * touching Y or s for other types, else 1. Threads as sk_matmul; takes
 * sk_matmul_q8_scratch_bytes from s. */
SK_HIDDEN int sk_matmul_q8(sk_isa isa, const sk_mat *W, const float *X, int64_t T, float *Y,
                           int64_t ldy, sk_scratch *s);
SK_HIDDEN size_t sk_matmul_q8_scratch_bytes(sk_isa isa, const sk_mat *W, int64_t T);

/* ---- the kernel table: what each level runs for each dtype ---------------------------------
 *
 * One table per level, filled once at init (dispatch.c, with each family's fill function) from
 * the x86 files' lookups; the drivers read their function pointers from it (no lookup per
 * call). A level above the CPU's holds the CPU level's kernels (as the getters above clamp). */
typedef struct sk_dtype_kernels {
    sk_dequant_fn   dequant;   /* SIMD row dequantizer; NULL: sk_dequant_ref (the ref level,
                                * f32/f16/bf16, types without one) */
    sk_vec_dot_fn   vec_dot;   /* dot of a row with the dtype's act format (the SIMD kernel,
                                * else vec_dot_ref); NULL: no dot kernel */
    sk_act_quant_fn act_quant; /* quantizer into the dtype's act format (byte-identical to
                                * sk_act_quantize_ref) */
} sk_dtype_kernels;

typedef struct sk_isa_table {
    sk_isa               isa;  /* the level these kernels run at (clamped to the CPU) */
    const sk_kernel_set *set;  /* that level's f32 kernels */
    const sk_i8_gemm    *i8;   /* int8 GEMM of the w8a8 prompts (avx512 needs VNNI, else
                                * avx2's); NULL at the ref level */
    const sk_q8_gemm    *q8;   /* integer GEMM of the q8_0 / q4_0 / q4_K prompts (likewise) */
    sk_act_quant_fn      act_quant[SK_ACT_COUNT];   /* quantizer of each act format */
    sk_dtype_kernels     dtype[SHRINK_DTYPE_COUNT];
} sk_isa_table;

/* The table of a level (clamped to the CPU); initializes the dispatch on first use. */
SK_HIDDEN const sk_isa_table *sk_kernel_table(sk_isa isa);
/* Fill functions, called once by dispatch.c for each level (tb->isa already clamped):
 * dequant.c fills dtype[].dequant, qdot.c act_quant[] and dtype[].vec_dot / act_quant. */
SK_HIDDEN void sk_dequant_fill(sk_isa_table *tb);
SK_HIDDEN void sk_qdot_fill(sk_isa_table *tb, int vnni);

/* ---- double-precision tile update (gemm_f64.c, x86/gemm_f64_avx2.c) -----------------------
 * The one product the second-order methods need (GPTQ's lazy block update, the blocked
 * Cholesky factor and triangular inverse, the Hessian X^T X; src/model/hessian.c): for rows
 * i < m (m <= 4) and columns j < n,
 *     acc = zero ? 0 : C[i][j];  for k = 0 .. K-1: acc = acc +/- A[i][k * ak] * B[k][j]
 *     C[i][j] = zero ? C[i][j] + acc : acc
 * (sub: -, else +), each element's products taken in order of k. A[i], B[k], C[i] are row
 * pointers (any stride between them). The ref level rounds each product, then the sum; the
 * avx2 level fuses them (FMA): the same bits when every product is exact in double (products
 * of floats, as in X^T X), else equal within rounding (tests/test_gemm_f64.c). */
typedef void (*sk_f64_tile_fn)(int64_t m, int64_t n, int64_t K, const double *const *A,
                               int64_t ak, const double *const *B, double *const *C, int sub,
                               int zero);
SK_HIDDEN void sk_f64_tile_ref(int64_t m, int64_t n, int64_t K, const double *const *A,
                               int64_t ak, const double *const *B, double *const *C, int sub,
                               int zero);
SK_HIDDEN void sk_f64_tile_avx2(int64_t m, int64_t n, int64_t K, const double *const *A,
                                int64_t ak, const double *const *B, double *const *C, int sub,
                                int zero);
/* The tile of the chosen level (SHRINK_KERNELS=ref: the reference). */
SK_HIDDEN sk_f64_tile_fn sk_f64_tile_get(void);

#endif /* SK_KERNELS_H */
