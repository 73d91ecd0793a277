/*
 * info.c - `shrink info MODEL`: architecture, config values, parameter count, the per-tensor
 * table (name / shape / dtype / bytes), file size, the memory needed to run (weights + the
 * run state of a context, from shrink_model_state_bytes) and the tokenizer's vocabulary.
 * A model whose tokenizer does not load is still shown, with a warning.
 */
#include "cli.h"

#include <stddef.h>
#include <string.h>

typedef struct info_opts {
    int32_t ctx;    /* context of the memory estimate; 0 = the model's */
} info_opts;

#define O(field) offsetof(info_opts, field)
static const cli_opt info_rows[] = {
    {"--ctx", "-c", CLI_OPT_INT, O(ctx), "N", 0, 1 << 24,
     "context length for the run-state estimate (default: the model's)"},
};
#undef O

static const cli_spec spec = {
    .name        = "info",
    .synopsis    = "MODEL [options]",
    .description = "Shows the architecture, config, parameters, every tensor (name, shape,\n"
                   "dtype, bytes), the file size and the memory needed to run MODEL (weights +\n"
                   "KV cache and activations for a context of --ctx tokens, batch min(512, ctx)).\n"
                   "MODEL is a llama2.c .bin checkpoint or a Hugging Face folder.",
    .opts        = info_rows,
    .n_opts      = sizeof info_rows / sizeof info_rows[0],
    .n_pos_min   = 1,
    .n_pos_max   = 1,
    .model       = true,
};

/* The model's manifest (docs/manifest.md), NULL if it has none. */
static shrink_manifest *info_manifest;

/* What `info` reports besides shrink_model_info. */
typedef struct info_memory {
    int32_t  ctx;
    int32_t  batch;
    uint64_t state_bytes;
    int32_t  tok_vocab;   /* -1 without a tokenizer */
    size_t   name_width;  /* longest tensor name */
    int64_t  nonfinite;   /* NaN/Inf values in the weights */
    int64_t  nonfinite_tensors;
    int64_t  first_bad;   /* index of the first tensor holding some, -1 if none */
} info_memory;

static void shape_str(const shrink_tensor_info *t, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = '\0';
    for (int d = 0; d < t->n_dims && d < 4 && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", d ? " x " : "", (long long)t->shape[d]);
    if (t->n_dims == 0) snprintf(buf, cap, "scalar");
}

static void print_json(const char *path, const shrink_model *m, const shrink_model_info *mi,
                      const info_memory *mem) {
    cli_json j;
    cli_json_begin(&j, stdout);
    cli_json_key(&j, "model");            cli_json_str(&j, path);
    cli_json_key(&j, "arch");             cli_json_str(&j, mi->arch);
    cli_json_key(&j, "format");           cli_json_str(&j, mi->format);
    cli_json_key(&j, "dim");              cli_json_int(&j, mi->dim);
    cli_json_key(&j, "n_layers");         cli_json_int(&j, mi->n_layers);
    cli_json_key(&j, "n_heads");          cli_json_int(&j, mi->n_heads);
    cli_json_key(&j, "n_kv_heads");       cli_json_int(&j, mi->n_kv_heads);
    cli_json_key(&j, "head_dim");         cli_json_int(&j, mi->head_dim);
    cli_json_key(&j, "ffn_dim");          cli_json_int(&j, mi->ffn_dim);
    cli_json_key(&j, "vocab_size");       cli_json_int(&j, mi->vocab_size);
    cli_json_key(&j, "max_seq_len");      cli_json_int(&j, mi->max_seq_len);
    cli_json_key(&j, "norm_eps");         cli_json_num(&j, mi->norm_eps);
    cli_json_key(&j, "rope_theta");       cli_json_num(&j, mi->rope_theta);
    cli_json_key(&j, "rope_interleaved"); cli_json_bool(&j, mi->rope_interleaved);
    cli_json_key(&j, "tied_embeddings");  cli_json_bool(&j, mi->tied_embeddings);
    cli_json_key(&j, "bos_id");           cli_json_int(&j, mi->bos_id);
    cli_json_key(&j, "eos_id");           cli_json_int(&j, mi->eos_id);
    cli_json_key(&j, "add_bos");          cli_json_bool(&j, mi->add_bos);
    cli_json_key(&j, "n_params");         cli_json_int(&j, mi->n_params);
    cli_json_key(&j, "n_tensors");        cli_json_int(&j, mi->n_tensors);
    cli_json_key(&j, "file_bytes");       cli_json_u64(&j, mi->file_bytes);
    cli_json_key(&j, "weight_bytes");     cli_json_u64(&j, mi->weight_bytes);
    cli_json_key(&j, "bits_per_weight");  cli_json_num(&j, cli_bits_per_weight(m));
    cli_json_key(&j, "state_ctx");        cli_json_int(&j, mem->ctx);
    cli_json_key(&j, "state_batch");      cli_json_int(&j, mem->batch);
    cli_json_key(&j, "state_bytes");      cli_json_u64(&j, mem->state_bytes);
    cli_json_key(&j, "mem_bytes");        cli_json_u64(&j, mi->weight_bytes + mem->state_bytes);
    cli_json_key(&j, "nonfinite_values");  cli_json_int(&j, mem->nonfinite);
    cli_json_key(&j, "nonfinite_tensors"); cli_json_int(&j, mem->nonfinite_tensors);
    cli_json_key(&j, "tokenizer_vocab");
    if (mem->tok_vocab >= 0) cli_json_int(&j, mem->tok_vocab);
    else cli_json_null(&j);
    cli_json_key(&j, "tensors");
    cli_json_arr_begin(&j);
    for (int64_t i = 0; i < mi->n_tensors; i++) {
        shrink_tensor_info t;
        shrink_model_tensor(m, i, &t);   /* checked by check_tensors */
        cli_json_obj_begin(&j);
        cli_json_key(&j, "name");  cli_json_str(&j, t.name);
        cli_json_key(&j, "shape");
        cli_json_arr_begin(&j);
        for (int d = 0; d < t.n_dims && d < 4; d++) cli_json_int(&j, t.shape[d]);
        cli_json_arr_end(&j);
        cli_json_key(&j, "dtype"); cli_json_str(&j, shrink_dtype_name(t.dtype));
        cli_json_key(&j, "bytes"); cli_json_u64(&j, t.bytes);
        cli_json_obj_end(&j);
    }
    cli_json_arr_end(&j);
    cli_json_key(&j, "manifest");
    if (info_manifest) cli_manifest_json(info_manifest, &j);
    else cli_json_null(&j);
    cli_json_end(&j);
}

/* Reads every tensor's info once before anything is printed (so a failure leaves stdout
 * empty) and finds the width of the name column. */
static int check_tensors(const shrink_model *m, const shrink_model_info *mi, info_memory *mem) {
    mem->name_width = 4;
    for (int64_t i = 0; i < mi->n_tensors; i++) {
        shrink_tensor_info t;
        shrink_status      st = shrink_model_tensor(m, i, &t);
        if (st != SHRINK_OK) return cli_fail_status(st);
        if (strlen(t.name) > mem->name_width) mem->name_width = strlen(t.name);
    }
    return CLI_OK;
}

static void print_tensors(const shrink_model *m, const shrink_model_info *mi,
                          const info_memory *mem) {
    int w = (int)mem->name_width, dw = 5; /* dtype column: "dtype", wider for "int4_g128" */
    for (int64_t i = 0; i < mi->n_tensors; i++) {
        shrink_tensor_info t;
        shrink_model_tensor(m, i, &t);
        int n = (int)strlen(shrink_dtype_name(t.dtype));
        if (n > dw) dw = n;
    }
    printf("\n%-*s  %-20s  %-*s  %12s\n", w, "name", "shape", dw, "dtype", "bytes");
    for (int64_t i = 0; i < mi->n_tensors; i++) {
        shrink_tensor_info t;
        char               shape[96];
        shrink_model_tensor(m, i, &t);
        shape_str(&t, shape, sizeof shape);
        printf("%-*s  %-20s  %-*s  %12llu\n", w, t.name, shape, dw, shrink_dtype_name(t.dtype),
               (unsigned long long)t.bytes);
    }
}

static void print_text(const char *path, const shrink_model *m, const shrink_model_info *mi,
                      const info_memory *mem) {
    char b1[32], b2[32], b3[32], b4[32];
    printf("model:         %s\n", path);
    printf("architecture:  %s (%s)\n", mi->arch, mi->format);
    printf("config:        dim %d, n_layers %d, n_heads %d, n_kv_heads %d, head_dim %d, "
           "ffn_dim %d\n", mi->dim, mi->n_layers, mi->n_heads, mi->n_kv_heads, mi->head_dim,
           mi->ffn_dim);
    printf("               vocab_size %d, max_seq_len %d, norm_eps %g, rope_theta %g%s, "
           "tied_embeddings %s\n", mi->vocab_size, mi->max_seq_len, mi->norm_eps, mi->rope_theta,
           mi->rope_theta > 0 ? (mi->rope_interleaved ? " (interleaved)" : " (rotate-half)")
                              : " (learned positions)",
           mi->tied_embeddings ? "yes" : "no");
    printf("special ids:   bos %d, eos %d, add_bos %s\n", mi->bos_id, mi->eos_id,
           mi->add_bos ? "yes" : "no");
    printf("parameters:    %lld (%.3f M), %.2f bits/weight\n", (long long)mi->n_params,
           (double)mi->n_params / 1e6, cli_bits_per_weight(m));
    printf("file size:     %s (%llu bytes)\n", cli_fmt_bytes(b1, sizeof b1, mi->file_bytes),
           (unsigned long long)mi->file_bytes);
    printf("memory to run: %s = weights %s + run state %s (context %d, batch %d)\n",
           cli_fmt_bytes(b2, sizeof b2, mi->weight_bytes + mem->state_bytes),
           cli_fmt_bytes(b3, sizeof b3, mi->weight_bytes),
           cli_fmt_bytes(b4, sizeof b4, mem->state_bytes), mem->ctx, mem->batch);
    if (mem->tok_vocab >= 0) printf("tokenizer:     vocab %d\n", mem->tok_vocab);
    else printf("tokenizer:     none\n");
    if (info_manifest) cli_manifest_print(info_manifest, stdout);
    else printf("manifest:      none\n");
    printf("tensors:       %lld\n", (long long)mi->n_tensors);
    if (mem->nonfinite) {
        shrink_tensor_info t;
        shrink_model_tensor(m, mem->first_bad, &t);
        printf("non-finite:    %lld NaN/Inf values in %lld tensor(s), the first in %s: the "
               "weights are broken\n", (long long)mem->nonfinite,
               (long long)mem->nonfinite_tensors, t.name);
    } else {
        printf("non-finite:    none\n");
    }
    print_tensors(m, mi, mem);
}

int cmd_info(int argc, char **argv) {
    cli_common   common;
    char        *pos[1];
    int          n_pos;
    shrink_model *m = NULL;
    info_opts    opts = {0};
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    common.allow_nonfinite = true;   /* info is where NaN/Inf weights are counted */
    rc = cli_load_model(pos[0], &common, CLI_TOK_OPTIONAL, &m);
    if (rc != CLI_OK) return rc;

    shrink_model_info mi;
    info_memory       mem;
    shrink_model_get_info(m, &mi);
    mem.ctx = opts.ctx > 0 ? opts.ctx : mi.max_seq_len;
    mem.batch = mem.ctx < 512 ? mem.ctx : 512;
    mem.state_bytes = shrink_model_state_bytes(m, mem.ctx, mem.batch);
    const shrink_tokenizer *tok = shrink_model_tokenizer(m);
    mem.tok_vocab = tok ? shrink_tokenizer_vocab_size(tok) : -1;
    mem.nonfinite = mem.nonfinite_tensors = 0;
    mem.first_bad = -1;
    for (int64_t i = 0; i < mi.n_tensors; i++) {
        int64_t n = shrink_model_nonfinite(m, i);
        if (n && mem.first_bad < 0) mem.first_bad = i;
        mem.nonfinite += n;
        mem.nonfinite_tensors += n > 0;
    }

    if (shrink_manifest_read(pos[0], &info_manifest) != SHRINK_OK)
        cli_warn("%s", shrink_last_error());   /* the model is still shown */
    rc = check_tensors(m, &mi, &mem);
    if (rc == CLI_OK && common.json) print_json(pos[0], m, &mi, &mem);
    else if (rc == CLI_OK) print_text(pos[0], m, &mi, &mem);
    shrink_model_free(m);
    shrink_manifest_free(info_manifest);
    info_manifest = NULL;
    return rc;
}
