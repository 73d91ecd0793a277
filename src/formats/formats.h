/*
 * formats.h - the internal reader interface of src/formats/ (and the Hugging Face config
 * reader in src/model/config.c). Nothing outside src/ includes this.
 *
 * Every reader has a from-memory entry point (bytes + length + a name used in messages) so
 * fuzzers and tests need no files, and a file entry point that maps the file(s) into a model.
 * Tensors produced by the readers are sk_tensor rows (model.h): `name` is malloc'd, `data`
 * is a borrowed view into the bytes that were parsed (it may be unaligned). Release a table
 * with sk_tensors_free().
 */
#ifndef SK_FORMATS_H
#define SK_FORMATS_H

#include "../model/model.h"

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
 * shard once, looked up beside the index), into m->maps and appends their tensors to
 * m->tensors / m->n_tensors. Tensor names must be unique across shards. Adds the files'
 * sizes to m->file_bytes. On failure m keeps what it already owns (shrink_model_free
 * releases it). */
SK_HIDDEN shrink_status sk_safetensors_open(struct shrink_model *m, const char *path);

/* ---- llama2.c legacy checkpoints (llama2c.c) ------------------------------------------- */

/* Parses a llama2.c legacy checkpoint held in data[0..len): the 7 int32 header fields are
 * validated one by one, then the file size must equal exactly the size the header implies.
 * Fills *cfg (Llama row, interleaved RoPE, theta 10000, eps 1e-5, BOS 1, EOS 2, add_bos) and a
 * tensor table with Hugging Face names, one tensor per layer and matrix
 * ("model.layers.N.self_attn.q_proj.weight", ...; freq_cis tables are skipped; lm_head.weight
 * only when the classifier is untied), data pointing into `data`. */
SK_HIDDEN shrink_status sk_llama2c_parse(const uint8_t *data, size_t len, const char *name,
                                         sk_config *cfg, sk_tensor **out, int64_t *n_out);

/* Maps a llama2.c .bin into m->maps, fills m->cfg and m->tensors, sets m->file_bytes. */
SK_HIDDEN shrink_status sk_llama2c_open(struct shrink_model *m, const char *path);

/* ---- Hugging Face config.json (src/model/config.c) ------------------------------------ */

/* Parses config.json text into *cfg (architecture row from model_type, sizes, eps, rope,
 * tied embeddings, biases, bos/eos). `tok_config` is the text of tokenizer_config.json or
 * NULL; its add_bos_token sets cfg->add_bos (default: Llama yes, GPT-2 no). Unknown or
 * unsupported values give an error naming `name` and the field; the result is validated with
 * sk_config_validate(). rope_layout is SK_ROPE_HALF (Hugging Face). */
SK_HIDDEN shrink_status sk_config_parse(const char *text, size_t len, const char *name,
                                        const char *tok_config, size_t tok_len,
                                        sk_config *cfg);

/* Reads <dir>/config.json (and <dir>/tokenizer_config.json if present) into *cfg. */
SK_HIDDEN shrink_status sk_config_load(const char *dir, sk_config *cfg);

#endif /* SK_FORMATS_H */
