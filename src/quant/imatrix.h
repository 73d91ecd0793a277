/*
 * imatrix.h - importance matrices (imatrix.c): llama.cpp's per-column mean of x^2 over a
 * calibration text for every linear layer of the blocks, computed by running the model
 * (shrink_imatrix), read from llama.cpp's files (the legacy binary .dat and the newer GGUF
 * form) and matched against a model's tensors before quantizing with it.
 */
#ifndef SK_QUANT_IMATRIX_H
#define SK_QUANT_IMATRIX_H

#include "../model/transform.h"

typedef struct sk_imatrix_entry {
    char    *name;   /* GGUF tensor name, "blk.0.attn_q.weight" */
    int64_t  n;      /* values: the tensor's row length (times experts for 3-D ones) */
    int32_t  ncall;  /* llama.cpp's call count (legacy files store mean * ncall) */
    float   *v;      /* (n) the importance: mean x^2 of each input column */
} sk_imatrix_entry;

typedef struct sk_imatrix {
    int64_t           n;
    sk_imatrix_entry *e;
    int32_t           chunks;  /* chunks the calibration ran (0 if the file does not say) */
    char             *dataset; /* the calibration file's name as stored, or NULL */
} sk_imatrix;

/* Reads a llama.cpp imatrix file (legacy binary or GGUF form, told apart by the magic);
 * every count, length, value (finite, >= 0) and duplicate name is checked; a broken file is
 * SHRINK_ERR_FORMAT naming the file and the entry. */
SK_HIDDEN shrink_status sk_imatrix_read(const char *path, sk_imatrix **out);
SK_HIDDEN void sk_imatrix_free(sk_imatrix *m);
/* The entry called `name`, or NULL. */
SK_HIDDEN const sk_imatrix_entry *sk_imatrix_find(const sk_imatrix *m, const char *name);

/* Runs the model at `in` over the calibration text and returns its importance matrix in
 * *out (entries in the model's order); r may be NULL. */
/* The calibration stream the layer-by-layer pass of sk_imatrix_compute keeps at once: the
 * chunks run in groups of at most this many bytes of activations (256 MiB; the result does
 * not depend on it: tests set it small). */
SK_HIDDEN extern size_t sk_imatrix_stream_bytes;

SK_HIDDEN shrink_status sk_imatrix_compute(const char *in, const shrink_imatrix_params *p,
                                           sk_imatrix **out, shrink_imatrix_result *r);

/* *m replaced by what writing it as a legacy file and reading that back gives (`what` names it
 * in messages): the importance used on the fly then equals the file's bit for bit. */
SK_HIDDEN shrink_status sk_imatrix_roundtrip(sk_imatrix **m, const char *what);

/* Checks m against the tensors of the opened model xf (`what`: the file's name for messages):
 * every entry must name a matrix of the model with rows of entry->n values. */
SK_HIDDEN shrink_status sk_imatrix_check(const sk_imatrix *m, const sk_xf *xf, const char *what);

#endif /* SK_QUANT_IMATRIX_H */
