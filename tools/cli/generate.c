/*
 * generate.c - `shrink generate MODEL -p TEXT -n N`: encodes the prompt (BOS first when the
 * model's tokenizer adds one; an empty prompt is just BOS), evaluates it in one
 * shrink_context_eval call, then samples up to N tokens, streaming each token's piece to stdout
 * as it comes. Stops at EOS or BOS, after N tokens or when the context is full.
 *
 * Printing follows llama2.c's run.c: a piece is shrink_tokenizer_piece(prev, id) (no leading
 * space right after BOS, <0xNN> pieces as raw bytes), and a one-byte piece that is neither
 * printable nor whitespace is skipped (run.c's safe_printf). The prompt is echoed first; a final
 * newline is printed only when stdout is a terminal, so `shrink generate M -n 200 --temp 0 > f`
 * writes exactly the text (tests/fixtures/.../greedy200.txt). Statistics go to stderr.
 */
#include "cli.h"

#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct gen_opts {
    const char *prompt;
    int32_t     n_predict;
    double      temp;
    int32_t     top_k;
    double      top_p;
    uint64_t    seed;
    int32_t     ctx;
} gen_opts;

#define O(field) offsetof(gen_opts, field)
static const cli_opt gen_rows[] = {
    {"--prompt",    "-p", CLI_OPT_STR,   O(prompt),    "TEXT", 0, 0,
     "the prompt (default empty: start from BOS)"},
    {"--n-predict", "-n", CLI_OPT_INT,   O(n_predict), "N",    0, 1 << 24,
     "tokens to generate (default 128)"},
    {"--temp",      NULL, CLI_OPT_FLOAT, O(temp),      "T",    0, 100,
     "temperature; 0 = greedy argmax (default 0)"},
    {"--top-k",     NULL, CLI_OPT_INT,   O(top_k),     "K",    0, 1 << 30,
     "sample from the K most likely tokens; 0 = off (default 0)"},
    {"--top-p",     NULL, CLI_OPT_FLOAT, O(top_p),     "P",    0, 1,
     "nucleus sampling threshold; 1 = off (default 1)"},
    {"--seed",      "-s", CLI_OPT_U64,   O(seed),      "S",    0, 0,
     "random seed of the sampler (default 42)"},
    {"--ctx",       "-c", CLI_OPT_INT,   O(ctx),       "N",    0, 1 << 24,
     "context length (default: the model's)"},
};
#undef O

static const cli_spec spec = {
    .name        = "generate",
    .synopsis    = "MODEL [-p TEXT] [-n N] [--temp T --top-k K --top-p P --seed S] [--ctx N]",
    .description = "Generates up to N tokens after the prompt and streams them to stdout (the\n"
                   "prompt is echoed first). Stops at EOS/BOS, after N tokens or when the context\n"
                   "is full. Speeds go to stderr; --json prints one object at the end instead.\n"
                   "A final newline is printed only when stdout is a terminal.",
    .opts        = gen_rows,
    .n_opts      = sizeof gen_rows / sizeof gen_rows[0],
    .n_pos_min   = 1,
    .n_pos_max   = 1,
    .model       = true,
    .load_as     = true,
    .lora        = true,
};

/* ==== output ============================================================================== */

/* The generated text and ids, kept for --json. */
typedef struct gen_out {
    char    *text;
    size_t   len, cap;
    int32_t *ids;
    size_t   n_ids, cap_ids;
    bool     stream;      /* print pieces to stdout as they come */
} gen_out;

static bool out_append(gen_out *o, const char *s, size_t n, int32_t id) {
    if (o->len + n + 1 > o->cap) {
        size_t cap = (o->len + n + 1) * 2;
        char  *t   = realloc(o->text, cap);
        if (!t) return false;
        o->text = t;
        o->cap  = cap;
    }
    if (o->n_ids + 1 > o->cap_ids) {
        size_t   cap = o->cap_ids ? o->cap_ids * 2 : 256;
        int32_t *t   = realloc(o->ids, cap * sizeof *t);
        if (!t) return false;
        o->ids     = t;
        o->cap_ids = cap;
    }
    memcpy(o->text + o->len, s, n);
    o->len += n;
    o->text[o->len] = '\0';
    o->ids[o->n_ids++] = id;
    return true;
}

/* Emits the piece of `id` after `prev`; returns CLI_OK or CLI_ERR. */
static int emit(const shrink_tokenizer *tok, gen_out *o, int32_t prev, int32_t id) {
    char    small[256];
    char   *buf = small;
    int32_t n   = shrink_tokenizer_piece(tok, prev, id, small, sizeof small);
    if (n < 0) return cli_fail_status((shrink_status)n);
    if ((size_t)n > sizeof small) {   /* a long piece: ask again with room for it */
        buf = malloc((size_t)n);
        if (!buf) return cli_fail("out of memory");
        shrink_tokenizer_piece(tok, prev, id, buf, (size_t)n);
    }
    /* run.c's safe_printf: skip a single byte that is neither printable nor whitespace */
    bool skip = n == 1 && !isprint((unsigned char)buf[0]) && !isspace((unsigned char)buf[0]);
    if (skip) n = 0;
    if (o->stream && n > 0) {
        fwrite(buf, 1, (size_t)n, stdout);
        fflush(stdout);
    }
    bool ok = out_append(o, buf, (size_t)n, id);
    if (buf != small) free(buf);
    return ok ? CLI_OK : cli_fail("out of memory");
}

/* ==== generation ========================================================================== */

typedef struct gen_stats {
    size_t      n_prompt;
    double      pp_seconds;
    double      decode_seconds;
    const char *stop;          /* "eos", "bos", "length", "context" */
} gen_stats;

/* The prompt's token ids (malloc'd by the library: free with shrink_free). An empty prompt
 * is encoded with BOS even for models that add none (GPT-2 then starts from <|endoftext|>). */
static int encode_prompt(const shrink_model *m, const shrink_model_info *mi, const char *prompt,
                         int32_t **ids, size_t *n) {
    const shrink_tokenizer *tok = shrink_model_tokenizer(m);
    const char             *p   = prompt ? prompt : "";
    shrink_status st = shrink_tokenizer_encode(tok, p, strlen(p), mi->add_bos || !*p, ids, n);
    if (st != SHRINK_OK) return cli_fail_status(st);
    if (*n == 0) {
        shrink_free(*ids);
        *ids = NULL;
        return cli_fail("the prompt is empty and the tokenizer has no BOS token to start from");
    }
    return CLI_OK;
}

static int run(shrink_context *ctx, const shrink_model *m, const shrink_model_info *mi,
               shrink_sampler *smp, const int32_t *ids, int32_t n_predict, gen_out *o,
               gen_stats *gs) {
    const shrink_tokenizer *tok = shrink_model_tokenizer(m);
    int32_t n_ctx = shrink_context_n_ctx(ctx);
    int32_t eos   = mi->eos_id >= 0 ? mi->eos_id : shrink_tokenizer_eos(tok);
    int32_t bos   = mi->bos_id >= 0 ? mi->bos_id : shrink_tokenizer_bos(tok);
    float  *logits = malloc((size_t)mi->vocab_size * sizeof *logits);
    int     rc     = CLI_OK;
    if (!logits) return cli_fail("out of memory");

    double        t0 = shrink_time();
    shrink_status st = shrink_context_eval(ctx, ids, (int32_t)gs->n_prompt, 0, logits, 1);
    gs->pp_seconds   = shrink_time() - t0;
    if (st != SHRINK_OK) {
        free(logits);
        return cli_fail_status(st);
    }
    int32_t pos  = (int32_t)gs->n_prompt;
    int32_t prev = ids[gs->n_prompt - 1];
    gs->stop     = "length";
    t0           = shrink_time();
    for (int32_t g = 0; g < n_predict; g++) {
        int32_t id = shrink_sampler_sample(smp, logits);
        if (id == eos || id == bos) {
            gs->stop = id == eos ? "eos" : "bos";
            break;
        }
        if ((rc = emit(tok, o, prev, id)) != CLI_OK) break;
        prev = id;
        if (g + 1 == n_predict) break;
        if (pos >= n_ctx) {
            gs->stop = "context";
            break;
        }
        st = shrink_context_eval(ctx, &id, 1, pos++, logits, 1);
        if (st != SHRINK_OK) {
            rc = cli_fail_status(st);
            break;
        }
    }
    gs->decode_seconds = shrink_time() - t0;
    free(logits);
    return rc;
}

static void print_json(const gen_opts *opt, const gen_out *o, const int32_t *ids,
                       const gen_stats *gs) {
    cli_json j;
    cli_json_begin(&j, stdout);
    cli_json_key(&j, "prompt");         cli_json_str(&j, opt->prompt ? opt->prompt : "");
    cli_json_key(&j, "text");           cli_json_strn(&j, o->text ? o->text : "", o->len);
    cli_json_key(&j, "prompt_tokens");
    cli_json_arr_begin(&j);
    for (size_t i = 0; i < gs->n_prompt; i++) cli_json_int(&j, ids[i]);
    cli_json_arr_end(&j);
    cli_json_key(&j, "tokens");
    cli_json_arr_begin(&j);
    for (size_t i = 0; i < o->n_ids; i++) cli_json_int(&j, o->ids[i]);
    cli_json_arr_end(&j);
    cli_json_key(&j, "n_prompt");       cli_json_int(&j, (int64_t)gs->n_prompt);
    cli_json_key(&j, "n_generated");    cli_json_int(&j, (int64_t)o->n_ids);
    cli_json_key(&j, "stop");           cli_json_str(&j, gs->stop);
    cli_json_key(&j, "pp_seconds");     cli_json_num(&j, gs->pp_seconds);
    cli_json_key(&j, "pp_tokens_per_s"); cli_json_num(&j, (double)gs->n_prompt / gs->pp_seconds);
    cli_json_key(&j, "tg_seconds");     cli_json_num(&j, gs->decode_seconds);
    cli_json_key(&j, "tg_tokens_per_s");
    cli_json_num(&j, o->n_ids ? (double)o->n_ids / gs->decode_seconds : 0.0);
    cli_json_key(&j, "temp");           cli_json_num(&j, opt->temp);
    cli_json_key(&j, "top_k");          cli_json_int(&j, opt->top_k);
    cli_json_key(&j, "top_p");          cli_json_num(&j, opt->top_p);
    cli_json_key(&j, "seed");           cli_json_u64(&j, opt->seed);
    cli_json_key(&j, "threads");        cli_json_int(&j, shrink_get_threads());
    cli_json_key(&j, "peak_rss_bytes"); cli_json_u64(&j, shrink_peak_rss());
    cli_json_end(&j);
}

static void print_stats(const gen_out *o, const gen_stats *gs) {
    /* end the text's line: on a terminal with a newline on stdout; otherwise stdout must stay
     * exactly the text, and the newline goes to stderr in case both streams are one file */
    bool tty = isatty(STDOUT_FILENO);
    if (tty) putchar('\n');
    fflush(stdout);
    fprintf(stderr,
            "%sprompt: %zu tokens, %.1f tok/s | generated: %zu tokens, %.1f tok/s | stop: %s | "
            "threads %d\n",
            tty ? "" : "\n", gs->n_prompt, (double)gs->n_prompt / gs->pp_seconds, o->n_ids,
            o->n_ids ? (double)o->n_ids / gs->decode_seconds : 0.0, gs->stop,
            shrink_get_threads());
}

int cmd_generate(int argc, char **argv) {
    cli_common      common;
    char           *pos[1];
    int             n_pos;
    shrink_model   *m   = NULL;
    shrink_context *ctx = NULL;
    shrink_sampler *smp = NULL;
    int32_t        *ids = NULL;
    gen_out         o   = {0};
    gen_stats       gs  = {0};

    gen_opts        opts = {.n_predict = 128, .top_p = 1.0, .seed = 42};
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    rc = cli_load_model(pos[0], &common, CLI_TOK_NEED, &m);
    if (rc != CLI_OK) return rc;

    shrink_model_info mi;
    shrink_model_get_info(m, &mi);
    if ((rc = encode_prompt(m, &mi, opts.prompt, &ids, &gs.n_prompt)) != CLI_OK) goto out_model;

    shrink_status st = shrink_context_create(&ctx, m, opts.ctx, 0);
    if (st != SHRINK_OK) {
        rc = cli_fail_status(st);
        goto out_ids;
    }
    if (gs.n_prompt > (size_t)shrink_context_n_ctx(ctx)) {
        rc = cli_fail("the prompt has %zu tokens but the context holds %d (--ctx)", gs.n_prompt,
                      shrink_context_n_ctx(ctx));
        goto out_ctx;
    }
    shrink_sampler_params sp = shrink_sampler_params_default();
    sp.temperature = (float)opts.temp;
    sp.top_k       = opts.top_k;
    sp.top_p       = (float)opts.top_p;
    sp.seed        = opts.seed;
    if ((st = shrink_sampler_create(&smp, mi.vocab_size, &sp)) != SHRINK_OK) {
        rc = cli_fail_status(st);
        goto out_ctx;
    }

    o.stream = !common.json;
    if (o.stream && opts.prompt) {
        fputs(opts.prompt, stdout);
        fflush(stdout);
    }
    rc = run(ctx, m, &mi, smp, ids, opts.n_predict, &o, &gs);
    if (rc == CLI_OK && common.json) print_json(&opts, &o, ids, &gs);
    else if (rc == CLI_OK) print_stats(&o, &gs);

    shrink_sampler_free(smp);
out_ctx:
    shrink_context_free(ctx);
out_ids:
    shrink_free(ids);
out_model:
    shrink_model_free(m);
    free(o.text);
    free(o.ids);
    return rc;
}
