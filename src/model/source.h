/*
 * source.h - where the model meets the file formats: reading a Hugging Face config.json
 * (config.c), opening a model for conversion without binding its weights (load.c), and the
 * model as a tensor source for the format writers (source.c). Nothing outside src/ (and the
 * tests) includes this.
 */
#ifndef SK_MODEL_SOURCE_H
#define SK_MODEL_SOURCE_H

#include "model.h"
#include "../formats/formats.h"

/* ---- Hugging Face config.json (config.c) ------------------------------------------------ */

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

/* ---- the model as a tensor source (load.c, source.c) ----------------------------------- */

/* A source that reads the tensors of a loaded (or sk_model_open'ed) model: from its file
 * tensors (m->tensors, by the file format's names and layouts), so nothing is copied.
 * `src` borrows m; it is valid while m lives. */
SK_HIDDEN shrink_status sk_source_from_model(const struct shrink_model *m, sk_source *src);

/* The dtype file tensor of canonical tensor t is stored in (quantized types included; a tied
 * head: the token embedding's), -1 if the file has none. */
SK_HIDDEN int sk_model_file_dtype(const struct shrink_model *m, const sk_wtensor *t);

/* Opens a model for conversion: like shrink_model_load (format detection, config, tensor
 * table, tokenizer) but binds nothing to the decoder, so no weight is copied, transposed or
 * widened; the result is for sk_source_from_model / sk_model_write / shrink_model_free only
 * (not for contexts). Implemented in load.c. */
SK_HIDDEN shrink_status sk_model_open(struct shrink_model **out, const char *path,
                                      const shrink_load_params *params);

/* sk_source_from_model + sk_write. */
SK_HIDDEN shrink_status sk_model_write(const struct shrink_model *m, const char *out,
                                       sk_format fmt, const sk_write_opts *o);
/* sk_write of `src` (a source over m, possibly wrapping sk_source_from_model's) with m's files
 * (and its folder) as the inputs the output must not replace. */
SK_HIDDEN shrink_status sk_model_write_source(const struct shrink_model *m, sk_source *src,
                                              const char *out, sk_format fmt,
                                              const sk_write_opts *o);

/* For a source that holds a whole matrix t as f32 (buf: t->rows x t->cols, row-major): its
 * rows [row0, row0 + n_rows) in dtype dt at dst, or with `transposed` (GPT-2's Conv1D in a
 * Hugging Face output) its columns [row0, row0 + n_rows) as rows of t->rows. *tr is a scratch
 * buffer it (re)allocates (sk_free it when done). `what` names the operation in messages. */
SK_HIDDEN shrink_status sk_source_serve_f32(const float *buf, const sk_wtensor *t, int64_t row0,
                                            int64_t n_rows, int transposed, shrink_dtype dt,
                                            void *dst, float **tr, const char *what);

#endif /* SK_MODEL_SOURCE_H */
