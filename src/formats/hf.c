/*
 * hf.c - writer of Hugging Face model folders (what transformers' save_pretrained writes).
 *
 * A folder OUT/ gets:
 *   config.json            architectures, model_type, sizes, eps, rope_theta, tie_word_embeddings,
 *                          bos/eos ids, torch_dtype (LlamaConfig / GPT2Config keys, as config.c
 *                          reads them);
 *   model.safetensors      every tensor in one dtype (the --dtype, else the source's), names
 *                          sorted; or, when the tensors exceed the shard size, shards
 *                          model-0000i-of-0000n.safetensors plus model.safetensors.index.json
 *                          ({"metadata": {"total_size": N}, "weight_map": {name: shard}});
 *   tokenizer files        copied as they are from the source folder (tokenizer.json,
 *                          tokenizer.model, vocab.json, merges.txt, tokenizer_config.json,
 *                          special_tokens_map.json) when the source is a Hugging Face folder;
 *                          otherwise generated from the loaded tokenizer: a sentencepiece
 *                          tokenizer.model (pieces, scores, types; BPE, byte fallback, identity
 *                          normalizer) for Llama vocabularies, vocab.json + merges.txt for
 *                          GPT-2 ones, and a tokenizer_config.json (add_bos_token, special
 *                          tokens, tokenizer_class).
 * Layouts: Llama q/k rows in rotate-half order (permuted back from interleaved sources),
 * GPT-2 Conv1D weights (c_attn, c_proj, c_fc) stored (in, out) under "transformer.".
 * Safetensors layout: u64 header length, JSON header padded with spaces to a multiple of 8,
 * data (see safetensors.c).
 *
 * Atomicity: every file is written to a temporary in OUT/ and fsync'd; only when all are
 * complete are they renamed into place. On failure the temporaries are removed, and OUT/ too
 * if this call created it. OUT must not be the source's folder.
 */
#include "formats.h"

#include "../tokenizer/tokenizer.h"

#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

/* ==== a text buffer ====================================================================== */

typedef struct tbuf {
    char  *p;
    size_t n, cap;
    int    oom;
} tbuf;

static void tb_put(tbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->n + n + 1) nc *= 2;
        char *q = sk_realloc(b->p, nc);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void tb_printf(tbuf *b, const char *fmt, ...) SK_PRINTF(2, 3);
static void tb_printf(tbuf *b, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        tb_put(b, small, (size_t)n);
        return;
    }
    char *big = sk_malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    tb_put(b, big, (size_t)n);
    sk_free(big);
}

/* A JSON string literal. */
static void tb_json_str(tbuf *b, const char *s, size_t n) {
    tb_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"') tb_put(b, "\\\"", 2);
        else if (c == '\\') tb_put(b, "\\\\", 2);
        else if (c == '\n') tb_put(b, "\\n", 2);
        else if (c == '\t') tb_put(b, "\\t", 2);
        else if (c == '\r') tb_put(b, "\\r", 2);
        else if (c < 0x20 || c == 0x7F) tb_printf(b, "\\u%04x", c);
        else tb_put(b, (const char *)&c, 1);
    }
    tb_put(b, "\"", 1);
}

/* The shortest decimal that reads back as the same float. */
static void tb_float(tbuf *b, float f) {
    char s[48];
    for (int p = 6; p <= 9; p++) {
        snprintf(s, sizeof s, "%.*g", p, (double)f);
        if (strtof(s, NULL) == f) break;
    }
    /* JSON needs a digit after a leading '.', and "1e-05" is fine as it is */
    tb_put(b, s, strlen(s));
    if (!strpbrk(s, ".eEn")) tb_put(b, ".0", 2);
}

/* ==== the group of output files ========================================================== */

typedef struct outset {
    sk_out  *f;
    int      n, cap;
    const sk_source *src;
} outset;

static shrink_status set_open(outset *s, const char *dir, const char *name, sk_out **out) {
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 8;
        sk_out *g = sk_realloc(s->f, (size_t)nc * sizeof *g);
        if (!g) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", dir);
        s->f = g;
        s->cap = nc;
    }
    char *p = sk_path_join(dir, name);
    if (!p) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", dir);
    shrink_status st = sk_out_open(&s->f[s->n], p, s->src->inputs, s->src->n_inputs);
    sk_free(p);
    if (st) return st;
    *out = &s->f[s->n++];
    return SHRINK_OK;
}

static void set_abort(outset *s) {
    for (int i = 0; i < s->n; i++) sk_out_abort(&s->f[i]);
    sk_free(s->f);
    s->f = NULL;
    s->n = 0;
}

/* A whole small file. */
static shrink_status set_file(outset *s, const char *dir, const char *name, const void *p,
                              size_t n) {
    sk_out *f;
    shrink_status st = set_open(s, dir, name, &f);
    if (!st) st = sk_out_write(f, p, n);
    if (!st) st = sk_out_finish(f);
    return st;
}

/* ==== config.json ======================================================================== */

/* The size keys of each Hugging Face family (config.c reads the same keys). */
static void keys_gpt2(tbuf *b, const sk_config *c) {
    tb_printf(b, "  \"vocab_size\": %d,\n  \"n_embd\": %d,\n  \"n_layer\": %d,\n"
                 "  \"n_head\": %d,\n  \"n_inner\": %d,\n  \"n_positions\": %d,\n"
                 "  \"n_ctx\": %d,\n  \"activation_function\": \"gelu_new\",\n"
                 "  \"layer_norm_epsilon\": ",
              c->vocab_size, c->dim, c->n_layers, c->n_heads, c->ffn_dim, c->max_seq_len,
              c->max_seq_len);
    tb_float(b, c->norm_eps);
    tb_put(b, ",\n", 2);
}

static void keys_llama(tbuf *b, const sk_config *c) {
    tb_printf(b, "  \"vocab_size\": %d,\n  \"hidden_size\": %d,\n"
                 "  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
                 "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n"
                 "  \"head_dim\": %d,\n  \"max_position_embeddings\": %d,\n"
                 "  \"hidden_act\": \"silu\",\n  \"attention_bias\": %s,\n"
                 "  \"mlp_bias\": false,\n  \"rms_norm_eps\": ",
              c->vocab_size, c->dim, c->ffn_dim, c->n_layers, c->n_heads, c->n_kv_heads,
              c->head_dim, c->max_seq_len, c->qkv_bias ? "true" : "false");
    tb_float(b, c->norm_eps);
    tb_put(b, ",\n  \"rope_theta\": ", 18);
    tb_float(b, c->rope_theta);
    tb_put(b, ",\n  \"rope_scaling\": null,\n", 26);
}

static void (*const family_keys[SK_HF_FAMILIES])(tbuf *, const sk_config *) = {
    [SK_HF_LLAMA] = keys_llama,
    [SK_HF_GPT2]  = keys_gpt2,
};

static void config_json(tbuf *b, const sk_source *src, shrink_dtype dt) {
    const sk_config *c = &src->cfg;
    static const char *const torch[] = {"float32", "float16", "bfloat16"};
    tb_printf(b, "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n",
              c->arch->hf_class, c->arch->name);
    family_keys[c->arch->hf](b, c);
    tb_printf(b, "  \"tie_word_embeddings\": %s,\n", c->tied ? "true" : "false");
    if (c->bos_id >= 0) tb_printf(b, "  \"bos_token_id\": %d,\n", c->bos_id);
    else tb_put(b, "  \"bos_token_id\": null,\n", 24);
    if (c->eos_id >= 0) tb_printf(b, "  \"eos_token_id\": %d,\n", c->eos_id);
    else tb_put(b, "  \"eos_token_id\": null,\n", 24);
    tb_printf(b, "  \"torch_dtype\": \"%s\"\n}\n", torch[dt]);
}

/* ==== tokenizer files ==================================================================== */

static const char *const tok_files[] = {"tokenizer.json", "tokenizer.model", "vocab.json",
                                        "merges.txt", "tokenizer_config.json",
                                        "special_tokens_map.json", NULL};

/* Copies the tokenizer files found in dir; *n_copied counts them. */
static shrink_status copy_tok_files(outset *s, const char *out, const char *dir,
                                    int *n_copied) {
    *n_copied = 0;
    for (int i = 0; tok_files[i]; i++) {
        char *p = sk_path_join(dir, tok_files[i]);
        if (!p) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", out);
        if (!sk_file_exists(p)) {
            sk_free(p);
            continue;
        }
        char *text;
        size_t len;
        shrink_status st = sk_read_file(p, 1u << 30, &text, &len);
        sk_free(p);
        if (st) return st;
        st = set_file(s, out, tok_files[i], text, len);
        sk_free(text);
        if (st) return st;
        (*n_copied)++;
    }
    return SHRINK_OK;
}

/* The piece of id i as a file wants it (llama2.c's "\n<s>\n" control pieces become "<s>"). */
static void clean_piece(const shrink_tokenizer *t, int32_t i, const char **s, size_t *n) {
    *s = sk_tok_piece_str(t, i);
    *n = t->piece_len[i];
    if (t->types[i] == SK_PIECE_CONTROL && *n >= 2 && (*s)[0] == '\n' && (*s)[*n - 1] == '\n') {
        (*s)++;
        *n -= 2;
    }
}

/* protobuf helpers (wire format: varint keys, length-delimited messages) */
static void pb_varint(tbuf *b, uint64_t v) {
    char x[10];
    size_t n = 0;
    do {
        x[n++] = (char)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
    tb_put(b, x, n);
}

static void pb_key(tbuf *b, uint32_t field, uint32_t wire) { pb_varint(b, field << 3 | wire); }

static void pb_bytes(tbuf *b, uint32_t field, const char *s, size_t n) {
    pb_key(b, field, 2);
    pb_varint(b, n);
    tb_put(b, s, n);
}

static void pb_int(tbuf *b, uint32_t field, int64_t v) {
    pb_key(b, field, 0);
    pb_varint(b, (uint64_t)v); /* negative int32 values take 10 bytes, as protobuf does */
}

/* sentencepiece ModelProto (sentencepiece_model.proto) of a Llama vocabulary. */
static shrink_status spm_model(const shrink_tokenizer *t, tbuf *out) {
    tbuf piece = {0};
    for (int32_t i = 0; i < t->n_vocab && !out->oom && !piece.oom; i++) {
        const char *s;
        size_t n;
        clean_piece(t, i, &s, &n);
        piece.n = 0;
        pb_bytes(&piece, 1, s, n);
        pb_key(&piece, 2, 5);
        uint32_t u;
        memcpy(&u, &t->scores[i], 4);
        char f[4] = {(char)u, (char)(u >> 8), (char)(u >> 16), (char)(u >> 24)};
        tb_put(&piece, f, 4);
        pb_int(&piece, 3, t->types[i] ? t->types[i] : SK_PIECE_NORMAL);
        pb_bytes(out, 1, piece.p, piece.n);
    }
    tbuf ts = {0};
    pb_int(&ts, 3, 2);                      /* model_type BPE */
    pb_int(&ts, 4, t->n_vocab);             /* vocab_size */
    pb_int(&ts, 35, t->byte_fallback != 0); /* byte_fallback */
    pb_int(&ts, 40, t->unk);
    pb_int(&ts, 41, t->bos);
    pb_int(&ts, 42, t->eos);
    pb_int(&ts, 43, -1);                    /* pad_id */
    pb_bytes(out, 2, ts.p ? ts.p : "", ts.n);
    tbuf ns = {0};
    pb_bytes(&ns, 1, "identity", 8);
    pb_int(&ns, 3, t->add_dummy_prefix != 0);
    pb_int(&ns, 4, t->remove_extra_ws != 0);
    pb_int(&ns, 5, t->escape_ws != 0);
    pb_bytes(out, 3, ns.p ? ns.p : "", ns.n);
    int oom = piece.oom || ts.oom || ns.oom || out->oom;
    sk_free(piece.p);
    sk_free(ts.p);
    sk_free(ns.p);
    return oom ? sk_error(SHRINK_ERR_NOMEM, "out of memory for tokenizer.model") : SHRINK_OK;
}

static void special_json(tbuf *b, const shrink_tokenizer *t, const char *key, int32_t id) {
    tb_printf(b, "  \"%s\": ", key);
    if (id < 0) {
        tb_put(b, "null", 4);
    } else {
        const char *s;
        size_t n;
        clean_piece(t, id, &s, &n);
        tb_json_str(b, s, n);
    }
    tb_put(b, ",\n", 2);
}

static shrink_status write_tokenizer(outset *s, const char *out, const sk_source *src) {
    const shrink_tokenizer *t = src->tok;
    tbuf b = {0};
    shrink_status st;
    if (t->kind == SK_TOK_SPM) {
        if ((st = spm_model(t, &b))) goto out;
        if ((st = set_file(s, out, "tokenizer.model", b.p, b.n))) goto out;
    } else {
        tb_put(&b, "{", 1);
        for (int32_t i = 0; i < t->n_vocab; i++) {
            if (i) tb_put(&b, ",", 1);
            tb_json_str(&b, sk_tok_piece_str(t, i), t->piece_len[i]);
            tb_printf(&b, ":%d", i);
        }
        tb_put(&b, "}", 1);
        if (b.oom) goto out_nomem;
        if ((st = set_file(s, out, "vocab.json", b.p, b.n))) goto out;
        b.n = 0;
        char **m;
        size_t *ml;
        int64_t nm;
        if ((st = sk_tok_merges_list(t, &m, &ml, &nm))) goto out;
        tb_put(&b, "#version: 0.2\n", 14);
        for (int64_t i = 0; i < nm; i++) {
            tb_put(&b, m[i], ml[i]);
            tb_put(&b, "\n", 1);
            sk_free(m[i]);
        }
        sk_free(m);
        sk_free(ml);
        if (b.oom) goto out_nomem;
        if ((st = set_file(s, out, "merges.txt", b.p, b.n))) goto out;
    }
    b.n = 0;
    int spm = t->kind == SK_TOK_SPM;
    tb_printf(&b, "{\n  \"tokenizer_class\": \"%s\",\n  \"add_bos_token\": %s,\n"
                  "  \"add_eos_token\": false,\n",
              spm ? "LlamaTokenizer" : "GPT2Tokenizer", src->cfg.add_bos ? "true" : "false");
    special_json(&b, t, "bos_token", t->bos);
    special_json(&b, t, "eos_token", t->eos);
    special_json(&b, t, "unk_token", spm ? t->unk : t->eos);
    if (spm) tb_put(&b, "  \"legacy\": true,\n", 18);
    tb_printf(&b, "  \"model_max_length\": %d\n}\n", src->cfg.max_seq_len);
    if (b.oom) goto out_nomem;
    st = set_file(s, out, "tokenizer_config.json", b.p, b.n);
    goto out;
out_nomem:
    st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory for the tokenizer files", out);
out:
    sk_free(b.p);
    return st;
}

/* ==== safetensors ======================================================================== */

/* One tensor of the output: its file name, shape and layout. */
typedef struct htensor {
    sk_wtensor w;
    char       name[112];
    int        transposed;  /* Conv1D: stored (in, out) */
    uint64_t   bytes;
    int        shard;
} htensor;

static int cmp_hname(const void *a, const void *b) {
    return strcmp(((const htensor *)a)->name, ((const htensor *)b)->name);
}

static shrink_status write_shard(outset *s, const char *out, const char *fname,
                                 const sk_source *src, const htensor *ht, int64_t n, int shard,
                                 shrink_dtype dt, sk_write_progress *pr) {
    static const char *const st_names[] = {"F32", "F16", "BF16"};
    tbuf h = {0};
    uint64_t off = 0;
    tb_put(&h, "{\"__metadata__\":{\"format\":\"pt\"}", 31);
    for (int64_t i = 0; i < n; i++) {
        if (ht[i].shard != shard) continue;
        const sk_wtensor *w = &ht[i].w;
        tb_printf(&h, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", ht[i].name, st_names[dt]);
        if (w->n_dims == 1) tb_printf(&h, "%" PRId64, w->rows);
        else if (ht[i].transposed) tb_printf(&h, "%" PRId64 ",%" PRId64, w->cols, w->rows);
        else tb_printf(&h, "%" PRId64 ",%" PRId64, w->rows, w->cols);
        tb_printf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + ht[i].bytes);
        off += ht[i].bytes;
    }
    tb_put(&h, "}", 1);
    while (h.n % 8) tb_put(&h, " ", 1);
    if (h.oom) {
        sk_free(h.p);
        return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", out);
    }
    sk_out *f;
    shrink_status st = set_open(s, out, fname, &f);
    uint8_t len[8];
    for (int k = 0; k < 8; k++) len[k] = (uint8_t)((uint64_t)h.n >> (8 * k));
    if (!st) st = sk_out_write(f, len, 8);
    if (!st) st = sk_out_write(f, h.p, h.n);
    sk_free(h.p);
    for (int64_t i = 0; i < n && !st; i++) {
        if (ht[i].shard != shard) continue;
        st = sk_write_stream(src, &ht[i].w, f, dt, ht[i].transposed, SK_ROPE_HALF, pr);
    }
    if (!st) st = sk_out_finish(f);
    return st;
}

/* The output tensors: names, layouts, sizes, shards. */
static shrink_status plan(const sk_source *src, shrink_dtype dt, uint64_t shard_bytes,
                          htensor **out, int64_t *n_out, int *n_shards, uint64_t *total) {
    sk_wtensor *ws;
    int64_t n;
    shrink_status st = sk_wtensors(&src->cfg, &ws, &n);
    if (st) return st;
    htensor *ht = sk_calloc((size_t)n, sizeof *ht);
    if (!ht) {
        sk_free(ws);
        return sk_error(SHRINK_ERR_NOMEM, "out of memory");
    }
    const sk_arch *a = src->cfg.arch;
    *total = 0;
    for (int64_t i = 0; i < n; i++) {
        ht[i].w = ws[i];
        const sk_trole *r = sk_trole_at(ws[i].role);
        snprintf(ht[i].name, sizeof ht[i].name, "%s%s", r->top ? "" : a->hf_prefix, ws[i].name);
        ht[i].transposed = ws[i].n_dims == 2 && sk_trole_conv1d(r, a);
        ht[i].bytes = (uint64_t)ws[i].rows * (uint64_t)ws[i].cols * sk_dtype(dt)->bytes;
        *total += ht[i].bytes;
    }
    sk_free(ws);
    qsort(ht, (size_t)n, sizeof *ht, cmp_hname);
    int shard = 0;
    uint64_t in_shard = 0;
    for (int64_t i = 0; i < n; i++) {
        if (in_shard > 0 && in_shard + ht[i].bytes > shard_bytes) {
            shard++;
            in_shard = 0;
        }
        ht[i].shard = shard;
        in_shard += ht[i].bytes;
    }
    *out = ht;
    *n_out = n;
    *n_shards = shard + 1;
    return SHRINK_OK;
}

static shrink_status write_index(outset *s, const char *out, const htensor *ht, int64_t n,
                                 int n_shards, uint64_t total) {
    tbuf b = {0};
    tb_printf(&b, "{\n  \"metadata\": {\n    \"total_size\": %" PRIu64 "\n  },\n"
                  "  \"weight_map\": {\n", total);
    for (int64_t i = 0; i < n; i++)
        tb_printf(&b, "    \"%s\": \"model-%05d-of-%05d.safetensors\"%s\n", ht[i].name,
                  ht[i].shard + 1, n_shards, i + 1 < n ? "," : "");
    tb_put(&b, "  }\n}\n", 6);
    shrink_status st = b.oom ? sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", out)
                             : set_file(s, out, "model.safetensors.index.json", b.p, b.n);
    sk_free(b.p);
    return st;
}

/* ==== the folder ========================================================================= */

shrink_status sk_hf_write(const sk_source *src, const char *out_path, const sk_write_opts *o) {
    shrink_dtype dt = o->dtype >= 0 ? (shrink_dtype)o->dtype : src->dtype;
    uint64_t shard_bytes = o->shard_bytes ? o->shard_bytes : SK_SHARD_DEFAULT;
    for (int i = 0; i < src->n_inputs; i++)
        if (src->inputs[i] && (sk_same_file(out_path, src->inputs[i]) ||
                               sk_path_within(src->inputs[i], out_path)))
            return sk_error(SHRINK_ERR_ARG, "%s: is or holds the input %s; write the Hugging "
                            "Face folder somewhere else", out_path, src->inputs[i]);
    if (sk_file_exists(out_path))
        return sk_error(SHRINK_ERR_ARG, "%s: exists and is a file; a Hugging Face output is a "
                        "folder", out_path);
    /* the files go to a temporary sibling folder swapped in for out_path when complete */
    sk_outdir od;
    shrink_status st = sk_outdir_open(&od, out_path);
    if (st) return st;
    const char *out = od.tmp;
    outset s = {.src = src};
    htensor *ht = NULL;
    int64_t n = 0;
    int n_shards = 0;
    uint64_t total = 0;
    tbuf cfg = {0};
    st = plan(src, dt, shard_bytes, &ht, &n, &n_shards, &total);
    if (st) goto fail;
    sk_write_progress pr = {0, (int64_t)total, o->progress, o->progress_user};
    for (int sh = 0; sh < n_shards && !st; sh++) {
        char fname[64];
        if (n_shards == 1) snprintf(fname, sizeof fname, "model.safetensors");
        else snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", sh + 1, n_shards);
        st = write_shard(&s, out, fname, src, ht, n, sh, dt, &pr);
    }
    if (!st && n_shards > 1) st = write_index(&s, out, ht, n, n_shards, total);
    if (st) goto fail;
    config_json(&cfg, src, dt);
    if (cfg.oom) {
        st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", out);
        goto fail;
    }
    if ((st = set_file(&s, out, "config.json", cfg.p, cfg.n))) goto fail;
    if (o->manifest &&
        (st = set_file(&s, out, SHRINK_MANIFEST_FILE, o->manifest, strlen(o->manifest))))
        goto fail;
    int copied = 0;
    if (src->tok_dir && (st = copy_tok_files(&s, out, src->tok_dir, &copied))) goto fail;
    if (!copied && src->tok && (st = write_tokenizer(&s, out, src))) goto fail;
    /* everything is complete: move it into place */
    for (int i = 0; i < s.n && !st; i++) st = sk_out_rename(&s.f[i]);
    if (!st) st = sk_outdir_commit(&od);
    if (st) goto fail;
    sk_free(s.f);
    sk_free(ht);
    sk_free(cfg.p);
    return SHRINK_OK;
fail:
    set_abort(&s);
    sk_free(ht);
    sk_free(cfg.p);
    sk_outdir_abort(&od);
    return st;
}
