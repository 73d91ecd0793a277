/*
 * tokenize.c - `shrink tokenize TEXT OUT (--model MODEL | --tokenizer FILE)`: encodes a UTF-8
 * text file into a token file for `shrink train` (shrink_tokenize_file; the format is in
 * docs/training.md). BOS is prepended when the model's tokenizer adds one (--no-bos: not).
 */
#include "cli.h"

#include <stddef.h>
#include <stdlib.h>

typedef struct tokenize_opts {
    const char *model;
    bool        no_bos;
} tokenize_opts;

static const cli_opt tokenize_rows[] = {
    {"--model", "-m", CLI_OPT_STR, offsetof(tokenize_opts, model), "MODEL", 0, 0,
     "take the tokenizer (and whether it adds BOS) from this model"},
    {"--no-bos", NULL, CLI_OPT_FLAG, offsetof(tokenize_opts, no_bos), NULL, 0, 0,
     "do not prepend BOS"},
};

static const cli_spec spec = {
    .name        = "tokenize",
    .synopsis    = "TEXT OUT (--model MODEL | --tokenizer FILE) [--no-bos]",
    .description = "Writes the tokens of a UTF-8 text file to OUT: a 32-byte header (\"SKTOKENS\",\n"
                   "version, token width, vocabulary size, count) and uint16 tokens (uint32 when\n"
                   "the vocabulary is larger than 65536). OUT appears only when complete.",
    .opts        = tokenize_rows,
    .n_opts      = sizeof tokenize_rows / sizeof tokenize_rows[0],
    .n_pos_min   = 2,
    .n_pos_max   = 2,
    .model       = true,
};

int cmd_tokenize(int argc, char **argv) {
    cli_common    common;
    char         *pos[2];
    int           n_pos;
    tokenize_opts opts = {0};
    int rc = cli_parse(&spec, argc, argv, &opts, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    if (!opts.model == !common.tokenizer) {
        fprintf(stderr, "shrink tokenize: give one of --model and --tokenizer\n\n");
        cli_usage(&spec, stderr);
        return CLI_USAGE;
    }
    cli_io io[] = {{"TEXT", pos[0], CLI_IN},
                   {"--model", opts.model, CLI_IN},
                   {"--tokenizer", common.tokenizer, CLI_IN},
                   {"OUT", pos[1], CLI_OUT}};
    if ((rc = cli_check_io(io, 4)) != CLI_OK) return rc;
    shrink_model     *m   = NULL;
    shrink_tokenizer *own = NULL;
    const shrink_tokenizer *tok;
    bool add_bos;
    double t0 = shrink_time();
    if (opts.model) {
        if ((rc = cli_load_model(opts.model, &common, CLI_TOK_NEED, &m)) != CLI_OK) return rc;
        shrink_model_info info;
        shrink_model_get_info(m, &info);
        tok     = shrink_model_tokenizer(m);
        add_bos = info.add_bos;
    } else {
        shrink_status st = shrink_tokenizer_load(&own, common.tokenizer);
        if (st != SHRINK_OK) return cli_fail_status(st);
        tok     = own;
        add_bos = shrink_tokenizer_bos(own) >= 0;
    }
    add_bos = add_bos && !opts.no_bos;
    int64_t n = 0;
    shrink_status st = shrink_tokenize_file(tok, pos[0], pos[1], add_bos, &n);
    int32_t vocab = shrink_tokenizer_vocab_size(tok);
    shrink_model_free(m);
    shrink_tokenizer_free(own);
    if (st != SHRINK_OK) return cli_fail_status(st);
    double sec = shrink_time() - t0;
    if (common.json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_key(&j, "input");       cli_json_str(&j, pos[0]);
        cli_json_key(&j, "output");      cli_json_str(&j, pos[1]);
        cli_json_key(&j, "tokens");      cli_json_int(&j, n);
        cli_json_key(&j, "vocab_size");  cli_json_int(&j, vocab);
        cli_json_key(&j, "token_bytes"); cli_json_int(&j, vocab <= 65536 ? 2 : 4);
        cli_json_key(&j, "bos");         cli_json_bool(&j, add_bos);
        cli_json_key(&j, "seconds");     cli_json_num(&j, sec);
        cli_json_end(&j);
    } else {
        printf("tokenized: %s -> %s: %lld tokens (uint%d, vocabulary %d%s), %.2f s\n", pos[0],
               pos[1], (long long)n, vocab <= 65536 ? 16 : 32, vocab, add_bos ? ", BOS first" : "",
               sec);
    }
    return CLI_OK;
}
