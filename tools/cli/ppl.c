/*
 * ppl.c - `shrink ppl MODEL TEXTFILE`: perplexity of a model on a text file.
 *
 * Reads the file (rejecting bytes that are not UTF-8, with their offset), tokenizes it whole
 * (BOS first when the model's tokenizer adds one) and scores it with shrink_perplexity:
 *   - sliding (default): the Hugging Face "perplexity of fixed-length models" window; windows of
 *     ctx tokens start every stride tokens, each token is scored once, in the first window that
 *     reaches it, with the tokens before it in that window as context;
 *   - --llama-cpp: llama-perplexity's method (non-overlapping chunks of ctx, BOS first in each,
 *     only the second half of each chunk scored).
 * Defaults: ctx = min(model context, 512), stride = ctx / 2.
 *
 * Error bars: ± the standard error of the mean NLL over the scored tokens (their sample sd /
 * sqrt(n)), propagated to the perplexity as ppl * se (llama-perplexity's "PPL = x +/- y").
 *
 * Bits per byte = total NLL of the scored tokens in bits / the bytes of text those tokens
 * cover, with the bytes per token of the whole file:
 *     bpb = nll / ln 2 * n_text_tokens / file_bytes
 * where n_text_tokens excludes BOS. When every text token is scored (sliding with BOS), this is
 * exactly total bits / file bytes.
 */
#include "cli.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct ppl_opts {
    int32_t ctx;
    int32_t stride;
    bool    llama_cpp;
} ppl_opts;

#define O(field) offsetof(ppl_opts, field)
static const cli_opt ppl_rows[] = {
    {"--ctx",       "-c", CLI_OPT_INT,  O(ctx),       "N", 0, 1 << 24,
     "window length in tokens (default min(model context, 512))"},
    {"--stride",    NULL, CLI_OPT_INT,  O(stride),    "S", 0, 1 << 24,
     "sliding window step (default ctx/2; = ctx: non-overlapping windows)"},
    {"--llama-cpp", NULL, CLI_OPT_FLAG, O(llama_cpp), NULL, 0, 0,
     "llama-perplexity's method: chunks of ctx, BOS each, 2nd half scored"},
    {"--file",      "-f", CLI_OPT_POS,  1,            "TEXTFILE", 0, 0,
     "the text, as llama-perplexity spells it (same as the 2nd argument)"},
};
#undef O

static const cli_spec spec = {
    .name        = "ppl",
    .synopsis    = "MODEL TEXTFILE [--ctx N] [--stride S] [--llama-cpp] [options]",
    .description = "Tokenizes TEXTFILE whole (BOS first if the model uses one) and prints the\n"
                   "perplexity and the mean NLL (nats/token), each ± its standard error (the\n"
                   "per-token NLL's sd / sqrt(tokens), times ppl for the perplexity, as\n"
                   "llama-perplexity), bits per byte, tokens scored, time and tokens/s.\n"
                   "TEXTFILE must be UTF-8.",
    .opts        = ppl_rows,
    .n_opts      = sizeof ppl_rows / sizeof ppl_rows[0],
    .n_pos_min   = 2,
    .n_pos_max   = 2,
    .model       = true,
    .load_as     = true,
    .lora        = true,
};

typedef struct ppl_report {
    const char       *model;
    const char       *text;
    size_t            text_bytes;
    int32_t           ctx;
    int32_t           stride;
    bool              llama_cpp;  /* the method: llama-perplexity's instead of sliding */
    double            bpb;
    shrink_ppl_result r;
} ppl_report;

static const char *method_name(const ppl_report *p) {
    return p->llama_cpp ? "llama.cpp" : "sliding";
}

static void print_json(const ppl_report *p) {
    cli_json j;
    cli_json_begin(&j, stdout);
    cli_json_key(&j, "model");          cli_json_str(&j, p->model);
    cli_json_key(&j, "text");           cli_json_str(&j, p->text);
    cli_json_key(&j, "ppl");            cli_json_num(&j, p->r.ppl);
    cli_json_key(&j, "ppl_se");         cli_json_num(&j, p->r.ppl_se);
    cli_json_key(&j, "nll");            cli_json_num(&j, p->r.nll);
    cli_json_key(&j, "nll_se");         cli_json_num(&j, p->r.nll_se);
    cli_json_key(&j, "bpb");            cli_json_num(&j, p->bpb);
    cli_json_key(&j, "tokens_scored");  cli_json_int(&j, p->r.tokens_scored);
    cli_json_key(&j, "n_tokens");       cli_json_int(&j, p->r.n_tokens);
    cli_json_key(&j, "text_bytes");     cli_json_u64(&j, p->text_bytes);
    cli_json_key(&j, "windows");        cli_json_int(&j, p->r.windows);
    cli_json_key(&j, "ctx");            cli_json_int(&j, p->ctx);
    cli_json_key(&j, "stride");         cli_json_int(&j, p->stride);
    cli_json_key(&j, "method");         cli_json_str(&j, method_name(p));
    cli_json_key(&j, "seconds");        cli_json_num(&j, p->r.seconds);
    cli_json_key(&j, "tokens_per_s");   cli_json_num(&j, p->r.tok_per_s);
    cli_json_key(&j, "threads");        cli_json_int(&j, shrink_get_threads());
    cli_json_key(&j, "peak_rss_bytes"); cli_json_u64(&j, shrink_peak_rss());
    cli_json_end(&j);
}

static void print_text(const ppl_report *p) {
    char b[32];
    printf("perplexity:     %.4f ± %.4f\n", p->r.ppl, p->r.ppl_se);
    printf("nll:            %.6f ± %.6f nats/token\n", p->r.nll, p->r.nll_se);
    printf("bits per byte:  %.4f\n", p->bpb);
    printf("tokens scored:  %lld of %lld (%lld window%s, ctx %d, stride %d, %s)\n",
           (long long)p->r.tokens_scored, (long long)p->r.n_tokens, (long long)p->r.windows,
           cli_s(p->r.windows), p->ctx, p->stride, method_name(p));
    printf("time:           %.2f s, %.1f tokens/s, %d thread%s\n", p->r.seconds, p->r.tok_per_s,
           shrink_get_threads(), cli_s(shrink_get_threads()));
    printf("peak RSS:       %s\n", cli_fmt_bytes(b, sizeof b, shrink_peak_rss()));
}

/* Tokenizes and scores; fills p->r and p->bpb. */
static int score(shrink_model *m, const shrink_model_info *mi, const char *text, size_t len,
                 const cli_common *common, ppl_report *p) {
    int32_t        *ids = NULL;
    size_t          n   = 0;
    shrink_context *ctx = NULL;
    int             rc  = CLI_OK;
    shrink_status   st  = shrink_tokenizer_encode(shrink_model_tokenizer(m), text, len,
                                                  mi->add_bos, &ids, &n);
    if (st != SHRINK_OK) return cli_fail("%s: %s", p->text, shrink_last_error());
    size_t n_text = n - (mi->add_bos && n > 0 ? 1 : 0);
    if (n < 2 || n_text < 1) {
        rc = cli_fail("%s: %zu tokens: too few to score", p->text, n_text);
        goto out_ids;
    }
    if ((st = shrink_context_create(&ctx, m, p->ctx, p->ctx)) != SHRINK_OK) {
        rc = cli_fail_status(st);
        goto out_ids;
    }
    cli_progress       prog;
    shrink_ppl_params  pp = shrink_ppl_params_default();
    pp.method   = p->llama_cpp ? SHRINK_PPL_LLAMA_CPP : SHRINK_PPL_SLIDING;
    pp.n_ctx    = p->ctx;
    pp.stride   = p->stride;
    pp.progress = cli_progress_cb;
    pp.user     = &prog;
    cli_progress_start(&prog, "ppl windows", common);
    st = shrink_perplexity(ctx, ids, (int64_t)n, &pp, &p->r);
    cli_progress_end(&prog);
    if (st != SHRINK_OK) rc = cli_fail_status(st);
    else p->bpb = p->r.nll / log(2.0) * (double)n_text / (double)p->text_bytes;
    shrink_context_free(ctx);
out_ids:
    shrink_free(ids);
    return rc;
}

int cmd_ppl(int argc, char **argv) {
    cli_common    common;
    char         *pos[2];
    int           n_pos;
    char         *text = NULL;
    shrink_model *m    = NULL;
    ppl_report    p    = {0};

    ppl_opts      opts = {0};
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    p.model = pos[0];
    p.text  = pos[1];
    p.llama_cpp = opts.llama_cpp;
    if ((rc = cli_read_text(p.text, &text, &p.text_bytes)) != CLI_OK) return rc;
    if ((rc = cli_load_model(p.model, &common, CLI_TOK_NEED, &m)) != CLI_OK) goto out_text;

    shrink_model_info mi;
    shrink_model_get_info(m, &mi);
    p.ctx = opts.ctx ? opts.ctx : (mi.max_seq_len < 512 ? mi.max_seq_len : 512);
    if (p.ctx > mi.max_seq_len) {
        rc = cli_fail("--ctx %d is larger than the model's context %d", p.ctx, mi.max_seq_len);
        goto out_model;
    }
    p.stride = opts.llama_cpp ? p.ctx : (opts.stride ? opts.stride : p.ctx / 2);
    if (p.stride < 1 || p.stride > p.ctx) {
        rc = cli_fail("--stride %d must be in [1, ctx = %d]", p.stride, p.ctx);
        goto out_model;
    }
    rc = score(m, &mi, text, p.text_bytes, &common, &p);
    if (rc == CLI_OK && common.json) print_json(&p);
    else if (rc == CLI_OK) print_text(&p);
out_model:
    shrink_model_free(m);
out_text:
    free(text);
    return rc;
}
