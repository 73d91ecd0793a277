/*
 * formats.h - the internal reader and writer interface of src/formats/. Nothing outside src/
 * includes this. The writers write through the atomic output files of src/core/out.h.
 *
 * Every reader has a from-memory entry point (bytes + length + a name used in messages) so
 * fuzzers and tests need no files, and a file entry point that maps the file(s) into a model.
 * Tensors produced by the readers are sk_tensor rows (tensors.h): `name` is malloc'd, `data`
 * is a borrowed view into the bytes that were parsed (it may be unaligned). Release a table
 * with sk_tensors_free().
 */
#ifndef SK_FORMATS_H
#define SK_FORMATS_H

#include "../core/out.h"
#include "tensors.h"

/* What a reader fills when it opens a model's files: the config, the file tensors (data pointing
 * into the mappings), the mappings themselves, their total size and, for GGUF, the tokenizer.
 * struct shrink_model (model/model.h) starts with exactly these fields, so the loader hands
 * the readers its own model as an sk_files. */
#define SK_FILES_FIELDS                                                                        \
    sk_config                cfg;                                                              \
    sk_tensor               *tensors;    /* file tensors, in file order */                     \
    int64_t                  n_tensors;                                                        \
    uint64_t                 file_bytes;                                                       \
    sk_map                  *maps;       /* mapped files */                                    \
    int                      n_maps;                                                           \
    struct shrink_tokenizer *tok;        /* NULL if none */
typedef struct sk_files {
    SK_FILES_FIELDS
} sk_files;

/* Frees the names and the array of a tensor table (not the data the tensors point into). */
SK_HIDDEN void sk_tensors_free(sk_tensor *t, int64_t n);

/* ---- safetensors (safetensors.c) ------------------------------------------------------- */

/* Largest JSON header accepted (bytes). */
#define SK_ST_MAX_HEADER (100u << 20)

/* Parses a safetensors file held in data[0..len): u64 LE header length, JSON header, data.
 * Validates every tensor's dtype (F32/F16/BF16; anything else is SHRINK_ERR_UNSUPPORTED
 * naming the tensor and `name`), shape (products checked for overflow), and data_offsets
 * (inside the data section, end - begin == product * element size). `__metadata__` is
 * ignored. On success *out is a table of *n_out tensors in file (header) order whose data
 * points into `data`; the caller frees it with sk_tensors_free(). */
SK_HIDDEN shrink_status sk_safetensors_parse(const uint8_t *data, size_t len, const char *name,
                                             sk_tensor **out, int64_t *n_out);

/* The same parse for files that are not model weights (test fixtures: I32 tokens, F64
 * gradients): any dtype the safetensors format names is accepted, up to SK_ST_MAX_DIMS
 * dimensions. Free with sk_st_raw_free(). */
#define SK_ST_MAX_DIMS 8
typedef struct sk_st_raw {
    char       *name;
    char        dtype[8];      /* safetensors spelling: "F32", "I32", "F64", "BF16", ... */
    size_t      elem_bytes;
    int32_t     n_dims;
    int64_t     shape[SK_ST_MAX_DIMS];
    uint64_t    n_elems;
    uint64_t    bytes;
    const void *data;          /* view into the parsed bytes, possibly unaligned */
} sk_st_raw;
SK_HIDDEN shrink_status sk_safetensors_parse_raw(const uint8_t *data, size_t len,
                                                 const char *name, sk_st_raw **out,
                                                 int64_t *n_out);
SK_HIDDEN void sk_st_raw_free(sk_st_raw *t, int64_t n);

/* Parses model.safetensors.index.json text: returns the distinct shard file names of its
 * weight_map in first-appearance order (*files malloc'd, each name malloc'd; free with
 * sk_strings_free). Shard names must be plain file names (no '/', not "." or ".."). */
SK_HIDDEN shrink_status sk_safetensors_index_parse(const char *text, size_t len,
                                                   const char *name, char ***files,
                                                   int *n_files);
SK_HIDDEN void sk_strings_free(char **s, int n);

/* Maps a .safetensors file, or every shard named by a model.safetensors.index.json (each
 * shard once, looked up beside the index), into f->maps and appends their tensors to
 * f->tensors / f->n_tensors. Tensor names must be unique across shards. Adds the files'
 * sizes to f->file_bytes. On failure f keeps what it already owns (shrink_model_free
 * releases it). */
SK_HIDDEN shrink_status sk_safetensors_open(sk_files *f, const char *path);

/* ---- llama2.c legacy checkpoints (llama2c.c) ------------------------------------------- */

/* Parses a llama2.c legacy checkpoint held in data[0..len): the 7 int32 header fields are
 * validated one by one, then the file size must equal exactly the size the header implies.
 * Fills *cfg (Llama row, interleaved RoPE, theta 10000, eps 1e-5, BOS 1, EOS 2, add_bos) and a
 * tensor table with Hugging Face names, one tensor per layer and matrix
 * ("model.layers.N.self_attn.q_proj.weight", ...; freq_cis tables are skipped; lm_head.weight
 * only when the classifier is untied), data pointing into `data`. */
SK_HIDDEN shrink_status sk_llama2c_parse(const uint8_t *data, size_t len, const char *name,
                                         sk_config *cfg, sk_tensor **out, int64_t *n_out);

/* Maps a llama2.c .bin into f->maps, fills f->cfg and f->tensors, sets f->file_bytes. */
SK_HIDDEN shrink_status sk_llama2c_open(sk_files *f, const char *path);

/* ==== writing ============================================================================
 *
 * Every writer streams: it asks a tensor source (sk_source) for one block of rows at a time,
 * converts it to the output dtype, lays it out as the format wants (q/k row permutation
 * between RoPE layouts, GPT-2 Conv1D transposes) and writes it. Peak memory is one block
 * (SK_WRITE_BLOCK_BYTES of output, at least one row) plus the file's header, whatever the
 * model's size; pages of mmap'd sources are released once their tensor is written.
 *
 * Canonical tensors. A source describes a model by its config only: the writer derives the
 * list of tensors (sk_wtensor, sk_wtensors in tensors.h) from the tensor table, the
 * architecture row and the config, and asks the source to fill each. Shapes are the
 * decoder's: matrices (out, in) row-major, vectors (n). Names are the Hugging Face names
 * without any "transformer." prefix (llama: "model.layers.3.self_attn.q_proj.weight"; gpt2:
 * "h.3.attn.c_attn.weight" with the fused q|k|v rows (3*D, D), i.e. already transposed from
 * Conv1D). q/k rows are in the order cfg.rope_layout says; the writer permutes as needed.
 */

/* Output formats. */
typedef enum sk_format {
    SK_FORMAT_GGUF,    /* one .gguf file (version 3) */
    SK_FORMAT_HF,      /* a Hugging Face folder: config.json, model.safetensors[+index], tokenizer */
    SK_FORMAT_LLAMA2C, /* a llama2.c legacy .bin (Llama with f32 weights only) */
    SK_FORMAT_COUNT
} sk_format;

SK_HIDDEN const char *sk_format_name(sk_format f);              /* "gguf", "hf", "llama2c" */
/* "gguf" / "hf" / "llama2c" (also "safetensors"); -1 if unknown. */
SK_HIDDEN int sk_format_parse(const char *name);
/* The format a path implies: .gguf -> GGUF, .bin -> llama2.c, anything else a HF folder. */
SK_HIDDEN sk_format sk_format_from_path(const char *path);

/* Fills dst with rows [row0, row0 + n_rows) of tensor t as `dtype` elements, row-major:
 *   transposed == 0: rows of the canonical (t->rows, t->cols) matrix (vectors: elements);
 *   transposed == 1: rows of its transpose, (t->cols, t->rows) (only asked for matrices).
 * q/k rows are in src->cfg.rope_layout order. dst holds n_rows * (transposed ? t->rows :
 * t->cols) elements, 64-byte aligned. Called once per block, tensors in canonical order,
 * blocks in row order; returns SHRINK_OK or an error status (after sk_error). */
typedef shrink_status (*sk_fill_fn)(void *user, const sk_wtensor *t, int64_t row0,
                                    int64_t n_rows, int transposed, shrink_dtype dtype,
                                    void *dst);

/* A model to write, described without holding its weights. */
typedef struct sk_source {
    sk_config    cfg;        /* architecture and sizes; rope_layout of q/k rows fill gives */
    shrink_dtype dtype;      /* the model's own dtype of matrices (output dtype by default) */
    /* optional: the model's dtype of tensor t if it differs from `dtype` (NULL: `dtype`) */
    shrink_dtype (*dtype_of)(void *user, const sk_wtensor *t);
    sk_fill_fn   fill;
    void        *user;
    /* tokenizer: written into GGUF metadata / tokenizer.json; may be NULL (no tokenizer) */
    const struct shrink_tokenizer *tok;
    /* folder (or file) holding the source's tokenizer files, copied as they are into a HF
     * output (tokenizer.json, tokenizer.model, vocab.json + merges.txt, tokenizer_config.json,
     * special_tokens_map.json); NULL: generated from `tok` */
    const char  *tok_dir;
    const char  *name;       /* general.name; NULL: "shrink" */
    /* optional (NULL: every matrix dense): the rank of matrix t when it is to be written as
     * two low-rank factors (a role with `lowrank`), 0: dense. The writer then lists t's two
     * factors (sk_wtensor.factor 1, 2) in its place and fill is asked for those. GGUF only. */
    int64_t    (*rank_of)(void *rank_user, const sk_wtensor *t);
    void        *rank_user;  /* its own user: a wrapper replacing `user` keeps the base's */
    /* files the output must not replace (the source's own files); may be NULL */
    const char *const *inputs;
    int          n_inputs;
} sk_source;

#define SK_WRITE_BLOCK_BYTES (16u << 20)   /* output bytes per block (at least one row) */
#define SK_SHARD_DEFAULT     (2000000000ull) /* HF: shard above 2 GB (transformers' "2GB") */

typedef struct sk_write_opts {
    int      dtype;          /* shrink_dtype of the matrices, or -1: the source's dtype */
    uint64_t shard_bytes;    /* HF: largest shard; 0 = SK_SHARD_DEFAULT */
    /* called after each block with bytes of tensor data written / total; may be NULL */
    void   (*progress)(void *user, int64_t done, int64_t total);
    void    *progress_user;
    /* GGUF only (shrink_quantize): the dtype of tensor i (writing order, t as listed) instead
     * of the default (vectors f32, matrices `dtype` with sk_gguf_fallback); NULL: default */
    shrink_dtype (*tensor_dtype)(void *user, const sk_wtensor *t, int64_t i);
    void    *tensor_user;
    int64_t  file_type;      /* GGUF general.file_type (llama_ftype); -1: from `dtype` */
    int      head_copy;      /* GGUF: a tied model of an arch with gguf_head also gets
                              * output.weight = token_embd (older llama.cpp); 0: written once */
    /* the manifest (a JSON object, docs/manifest.md): GGUF metadata "shrink.manifest", HF
     * shrink_manifest.json; NULL: sk_write asks the source of shrink_set_manifest_source */
    const char *manifest;
    /* GGUF only: when non-NULL nothing is written and *dry_bytes gets the size the file would
     * have (header, manifest and aligned tensor data): shrink_plan's budget */
    uint64_t   *dry_bytes;
} sk_write_opts;

SK_HIDDEN sk_write_opts sk_write_opts_default(void);


/* Writes the model `src` describes to `out` in format `fmt` (atomically: see sk_out_*).
 * On failure nothing is left at `out` (a folder this call created is removed again) and
 * the message names the output or the tensor. */
SK_HIDDEN shrink_status sk_write(const sk_source *src, const char *out, sk_format fmt,
                                 const sk_write_opts *o);

/* The manifest text the source of shrink_set_manifest_source gives now (*text NULL: none);
 * SHRINK_ERR_ARG naming `out` if it is not a JSON object (manifest.c). */
SK_HIDDEN shrink_status sk_manifest_for_write(const char *out, const char **text);

/* ---- shared by the writers (write.c) ---------------------------------------------------- */

/* The tensors src writes: the canonical list (sk_wtensors), a matrix src->rank_of factors
 * replaced by its two factors. *out: sk_free. */
SK_HIDDEN shrink_status sk_source_tensors(const sk_source *src, sk_wtensor **out, int64_t *n);
/* How many matrices src stores as low-rank factors (0 without rank_of; -1 out of memory). */
SK_HIDDEN int64_t sk_source_n_factored(const sk_source *src);

typedef struct sk_write_progress {
    int64_t done;    /* tensor bytes written */
    int64_t total;
    void  (*fn)(void *user, int64_t done, int64_t total);
    void   *user;
} sk_write_progress;

struct sk_out;
/* Where row r of tensor t (rows as src->cfg c gives them) lands in a file whose q/k rows are
 * in `layout` (GGUF: SK_ROPE_INTERLEAVED): r, or its place in the RoPE permutation. */
SK_HIDDEN int64_t sk_write_row_pos(const sk_config *c, const sk_wtensor *t,
                                   sk_rope_layout layout, int64_t r);
/* Streams tensor t of src into o block by block as `dt` (transposed: rows of the transpose),
 * with q/k rows permuted from src->cfg.rope_layout to `layout`. On failure aborts o. */
SK_HIDDEN shrink_status sk_write_stream(const sk_source *src, const sk_wtensor *t,
                                        struct sk_out *o, shrink_dtype dt, int transposed,
                                        sk_rope_layout layout, sk_write_progress *pr);

/* The writers sk_write dispatches to (gguf.c, hf.c, llama2c.c). */
SK_HIDDEN shrink_status sk_gguf_write(const sk_source *src, const char *out,
                                      const sk_write_opts *o);
SK_HIDDEN shrink_status sk_hf_write(const sk_source *src, const char *out,
                                    const sk_write_opts *o);
SK_HIDDEN shrink_status sk_llama2c_write(const sk_source *src, const char *out,
                                         const sk_write_opts *o);

/* ==== GGUF (gguf.c) ======================================================================
 * Version 3 (2 is read too), little-endian; layout in gguf.c's header and docs/formats.md.
 * The parse validates everything before returning: counts against the bytes left (a header
 * claiming 10^18 tensors or a 100 GB string fails at once, nothing is allocated for it),
 * value types, nesting depth of arrays, general.alignment (a power of two), tensor names
 * (unique, at most SK_GGUF_MAX_NAME bytes), dims (1..4, products overflow-checked), ggml
 * types (known: sizes from the ggml type table), data offsets (aligned, inside the data
 * section, not overlapping). Strings and array payloads are views into the parsed bytes. */

#define SK_GGUF_MAGIC     0x46554747u /* "GGUF" read as a little-endian u32 */
#define SK_GGUF_VERSION   3
#define SK_GGUF_ALIGNMENT 32          /* default general.alignment */
#define SK_GGUF_MAX_NAME  64          /* GGML_MAX_NAME: tensor names are shorter */
#define SK_GGUF_MAX_DEPTH 8           /* nesting of arrays of arrays */

typedef enum sk_gguf_type {
    SK_GGUF_UINT8 = 0, SK_GGUF_INT8 = 1, SK_GGUF_UINT16 = 2, SK_GGUF_INT16 = 3,
    SK_GGUF_UINT32 = 4, SK_GGUF_INT32 = 5, SK_GGUF_FLOAT32 = 6, SK_GGUF_BOOL = 7,
    SK_GGUF_STRING = 8, SK_GGUF_ARRAY = 9, SK_GGUF_UINT64 = 10, SK_GGUF_INT64 = 11,
    SK_GGUF_FLOAT64 = 12, SK_GGUF_TYPE_COUNT
} sk_gguf_type;

typedef struct sk_gguf_str {
    const char *s;   /* view, NOT NUL-terminated */
    uint64_t    len;
} sk_gguf_str;

typedef struct sk_gguf_value {
    sk_gguf_type type;
    union {
        uint64_t    u;     /* UINT8..UINT64, BOOL */
        int64_t     i;     /* INT8..INT64 */
        double      f;     /* FLOAT32, FLOAT64 */
        sk_gguf_str s;     /* STRING */
    } v;
    /* ARRAY: element type, count, and the raw payload (packed little-endian elements for
     * fixed-size types; for STRING/ARRAY elements, walk it with sk_gguf_array_str/_next) */
    sk_gguf_type   arr_type;
    uint64_t       arr_n;
    const uint8_t *arr_data;
    uint64_t       arr_bytes;
} sk_gguf_value;

typedef struct sk_gguf_kv {
    sk_gguf_str   key;
    sk_gguf_value val;
} sk_gguf_kv;

typedef struct sk_gguf_tensor {
    sk_gguf_str    name;
    uint32_t       n_dims;
    int64_t        ne[4];     /* ggml order: ne[0] is the innermost (contiguous) dimension */
    uint32_t       type;      /* ggml_type */
    uint64_t       offset;    /* relative to the data section */
    uint64_t       bytes;
    const uint8_t *data;      /* view */
} sk_gguf_tensor;

typedef struct sk_gguf {
    uint32_t        version;
    uint64_t        alignment;
    uint64_t        data_offset;  /* start of the data section in the file */
    int64_t         n_kv;
    sk_gguf_kv     *kv;           /* (n_kv) */
    int64_t         n_tensors;
    sk_gguf_tensor *tensors;      /* (n_tensors) */
} sk_gguf;

/* Parses a GGUF file held in data[0..len); `name` is used in messages. On success *out owns
 * the tables (views into data); free with sk_gguf_free. The from-memory entry point the GGUF
 * fuzzer calls. */
SK_HIDDEN shrink_status sk_gguf_parse(const uint8_t *data, size_t len, const char *name,
                                      sk_gguf **out);
SK_HIDDEN void sk_gguf_free(sk_gguf *g);
/* The key/value called `key` (NUL-terminated), NULL if absent. */
SK_HIDDEN const sk_gguf_kv *sk_gguf_find(const sk_gguf *g, const char *key);
/* Element i of a STRING array (i < arr_n); walks the payload (O(i)); use the iterator for
 * whole arrays: *pos starts at 0, each call returns the next string. */
SK_HIDDEN sk_gguf_str sk_gguf_array_next_str(const sk_gguf_value *v, uint64_t *pos);
SK_HIDDEN const char *sk_gguf_type_name(sk_gguf_type t);
/* ggml tensor type name ("f32", "q4_K", ...; "int4_g128" for shrink's own), "?" if unknown. */
SK_HIDDEN const char *sk_ggml_type_name(uint32_t type);
/* GGUF type id of SHRINK_DTYPE_INT8_CH; shrink's own types follow in enum order (1000..1013).
 * Not ggml types: llama.cpp cannot read files that use them (docs/formats.md). */
#define SK_GGUF_TYPE_OWN 1000u

/* The dtype a matrix with rows of `cols` elements is written in when `want` is asked for:
 * `want` if its block divides cols, else llama-quantize's fallback (q4_K -> q5_0, q5_K ->
 * q5_1, q6_K -> q8_0), else f16; shrink's own types: smaller groups, then 8 bits per channel
 * (gguf.c, own_fallback). */
SK_HIDDEN shrink_dtype sk_gguf_fallback(shrink_dtype want, int64_t cols);

/* Maps a .gguf file into f->maps, fills f->cfg (from the arch keys), f->tensors (PyTorch
 * order shapes, llama.cpp names), f->file_bytes and, if want_tok, f->tok from the metadata.
 * Non-f32/f16/bf16 tensors are SHRINK_ERR_UNSUPPORTED naming the tensor, its type and the
 * file. */
SK_HIDDEN shrink_status sk_gguf_open(sk_files *f, const char *path, int want_tok);
/* The tokenizer in a parsed GGUF's metadata (tokenizer.ggml.*): *out NULL if it has none. */
SK_HIDDEN shrink_status sk_gguf_tokenizer(const sk_gguf *g, const char *name,
                                          struct shrink_tokenizer **out);

#endif /* SK_FORMATS_H */
