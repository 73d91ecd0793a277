/*
 * written.c - "say what was written": the summary quantize and convert print after writing a
 * model: tensors per type actually in the file, bits per weight beside the requested type's,
 * the fallbacks with their reason, and a NOTICE when the file holds shrink's own types that
 * llama.cpp cannot read. Text on stdout / stderr, or keys of the command's JSON object.
 */
#include "cli.h"

#include <string.h>

void cli_written_init(cli_written *w, const char *requested, double requested_bits) {
    memset(w, 0, sizeof *w);
    w->requested = requested;
    w->requested_bits = requested_bits;
}

void cli_written_add(cli_written *w, shrink_dtype got, shrink_dtype want, int64_t cols,
                     uint64_t bytes, int64_t n_elems) {
    if ((unsigned)got >= SHRINK_DTYPE_COUNT) return;
    w->count[got]++;
    w->n_tensors++;
    w->bytes += bytes;
    w->n_elems += n_elems;
    if (shrink_dtype_is_own(got)) w->own += 1;
    if (want == got || (unsigned)want >= SHRINK_DTYPE_COUNT) return;
    for (int i = 0; i < w->n_fb; i++)
        if (w->fb[i].want == want && w->fb[i].got == got && w->fb[i].cols == cols) {
            w->fb[i].n++;
            return;
        }
    if (w->n_fb < CLI_WRITTEN_MAX_FB)
        w->fb[w->n_fb++] = (cli_written_fb){want, got, cols, 1};
}

shrink_status cli_written_from_file(cli_written *w, const char *path, int want) {
    shrink_load_params lp = shrink_load_params_default();
    lp.no_tokenizer = true;
    lp.allow_nonfinite = true;
    shrink_model *m;
    shrink_status st = shrink_model_load(&m, path, &lp);
    if (st != SHRINK_OK) return st;
    shrink_model_info info;
    shrink_model_get_info(m, &info);
    for (int64_t i = 0; i < info.n_tensors; i++) {
        shrink_tensor_info t;
        if (shrink_model_tensor(m, i, &t) != SHRINK_OK) continue;
        int64_t n = 1;
        for (int d = 0; d < t.n_dims; d++) n *= t.shape[d];
        /* the requested type applies to matrices; vectors stay f32 by design */
        shrink_dtype wt = want >= 0 && t.n_dims >= 2 ? (shrink_dtype)want : t.dtype;
        cli_written_add(w, t.dtype, wt, t.shape[t.n_dims - 1], t.bytes, n);
    }
    shrink_model_free(m);
    return SHRINK_OK;
}

double cli_written_bits(const cli_written *w) {
    return w->n_elems ? 8.0 * (double)w->bytes / (double)w->n_elems : 0.0;
}

/* the types written, most tensors first (ties in dtype order) */
static int written_order(const cli_written *w, shrink_dtype *order) {
    int n = 0;
    for (int t = 0; t < SHRINK_DTYPE_COUNT; t++)
        if (w->count[t]) order[n++] = (shrink_dtype)t;
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && w->count[order[k]] > w->count[order[k - 1]]; k--) {
            shrink_dtype s = order[k];
            order[k] = order[k - 1];
            order[k - 1] = s;
        }
    return n;
}

void cli_written_print(const cli_written *w, FILE *f) {
    shrink_dtype order[SHRINK_DTYPE_COUNT];
    int n = written_order(w, order);
    if (w->requested_bits > 0 && w->base && strcmp(w->base, w->requested))
        fprintf(f, "asked %s (base %s, %.2f bits/weight); wrote", w->requested, w->base,
                w->requested_bits);
    else if (w->requested_bits > 0)
        fprintf(f, "asked %s (%.2f bits/weight); wrote", w->requested, w->requested_bits);
    else
        fprintf(f, "asked %s; wrote", w->requested);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s %s %lld", i ? "," : "", shrink_dtype_name(order[i]),
                (long long)w->count[order[i]]);
    fprintf(f, ": %.2f bits/weight\n", cli_written_bits(w));
    for (int i = 0; i < w->n_fb; i++) {
        const cli_written_fb *b = &w->fb[i];
        fprintf(f, "  fallback %s -> %s: %lld tensor(s) with %lld-wide rows (%s blocks of %.0f "
                "do not divide them)\n", shrink_dtype_name(b->want), shrink_dtype_name(b->got),
                (long long)b->n, (long long)b->cols, shrink_dtype_name(b->want),
                (double)shrink_dtype_block_size(b->want));
    }
}

void cli_written_notice(const cli_written *w, const char *out) {
    if (!w->own) return;
    shrink_dtype order[SHRINK_DTYPE_COUNT];
    int n = written_order(w, order);
    char list[256];
    size_t at = 0;
    list[0] = 0;
    for (int i = 0; i < n && at < sizeof list; i++)
        if (shrink_dtype_is_own(order[i]))
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", at ? ", " : "",
                                   shrink_dtype_name(order[i]));
    fprintf(stderr, "NOTICE: %s uses shrink's own tensor types (%s): llama.cpp, ollama and other "
            "GGUF tools cannot load it; shrink runs it (generate, ppl, bench, eval, compare, and "
            "libshrink). For a file llama.cpp reads, use a llama.cpp type (q8_0, q4_K_M, ...: "
            "shrink quantize --list).\n", out, list);
}

void cli_written_json(const cli_written *w, cli_json *j) {
    shrink_dtype order[SHRINK_DTYPE_COUNT];
    int n = written_order(w, order);
    cli_json_key(j, "requested");                 cli_json_str(j, w->requested);
    cli_json_key(j, "requested_bits_per_weight"); cli_json_num(j, w->requested_bits);
    cli_json_key(j, "written_types");
    cli_json_obj_begin(j);
    for (int i = 0; i < n; i++) {
        cli_json_key(j, shrink_dtype_name(order[i]));
        cli_json_int(j, w->count[order[i]]);
    }
    cli_json_obj_end(j);
    cli_json_key(j, "fallbacks");
    cli_json_arr_begin(j);
    for (int i = 0; i < w->n_fb; i++) {
        cli_json_obj_begin(j);
        cli_json_key(j, "from");       cli_json_str(j, shrink_dtype_name(w->fb[i].want));
        cli_json_key(j, "to");         cli_json_str(j, shrink_dtype_name(w->fb[i].got));
        cli_json_key(j, "row_length"); cli_json_int(j, w->fb[i].cols);
        cli_json_key(j, "tensors");    cli_json_int(j, w->fb[i].n);
        cli_json_obj_end(j);
    }
    cli_json_arr_end(j);
    cli_json_key(j, "llama_cpp_readable"); cli_json_bool(j, w->own == 0);
}
