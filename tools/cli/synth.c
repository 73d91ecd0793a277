/*
 * synth.c - `shrink synth MODEL OUT.tokens --tokens N [--prompts FILE] [--temp T] [--top-k K]
 * [--top-p P] [--seed S] [--batch B] [--max-len L]`: samples synthetic training text from a
 * teacher into a token file through shrink_synth (the library does the work; this file
 * parses options and prints). stdout: one line, or with --json one object. stderr: progress
 * (tokens, ETA).
 */
#include "cli.h"

#include <stddef.h>
#include <string.h>

typedef struct synth_opts {
    int64_t     tokens;
    const char *prompts;
    double      temp;
    int32_t     top_k;
    double      top_p;
    uint64_t    seed;
    int32_t     batch;
    int32_t     max_len;
} synth_opts;

#define O(f) offsetof(synth_opts, f)
static const cli_opt synth_rows[] = {
    {"--tokens", "-n", CLI_OPT_U64, O(tokens), "N", 0, 0, "tokens to write (required)"},
    {"--prompts", NULL, CLI_OPT_STR, O(prompts), "FILE", 0, 0,
     "UTF-8 text, one prompt per line, used in turn (default:\n"
     "                         every sequence starts from BOS)"},
    {"--temp", NULL, CLI_OPT_FLOAT, O(temp), "T", 0, 100, "temperature; 0 = greedy (default 1)"},
    {"--top-k", NULL, CLI_OPT_INT, O(top_k), "K", 0, 1 << 30, "the K most likely only (0 = off)"},
    {"--top-p", NULL, CLI_OPT_FLOAT, O(top_p), "P", 1e-9, 1, "nucleus threshold (default 1 = off)"},
    {"--seed", "-s", CLI_OPT_U64, O(seed), "S", 0, 0, "random seed (default 42, as generate)"},
    {"--batch", "-b", CLI_OPT_INT, O(batch), "B", 1, 1 << 16,
     "sequences sampled at once, one per thread (default: the\n"
     "                         threads); does not change the output"},
    {"--max-len", NULL, CLI_OPT_INT, O(max_len), "L", 2, 1 << 24,
     "tokens per sequence, prompt included (default: the\n"
     "                         model's context)"},
};
#undef O

static const cli_spec spec = {
    .name        = "synth",
    .synopsis    = "MODEL OUT.tokens --tokens N [--prompts FILE] [--temp T] [--top-k K]\n"
                   "       [--top-p P] [--seed S] [--batch B] [--max-len L]",
    .description = "Samples synthetic training text from a model (a teacher) into a token file\n"
                   "for shrink train / shrink distill --data: sequences of BOS, a prompt, and\n"
                   "tokens sampled until EOS or --max-len, one after another, N tokens in all.\n"
                   "The file depends on the model, options and seed only (not on --threads or\n"
                   "--batch); sequence 0 uses --seed itself, so --temp 0 without prompts\n"
                   "starts with shrink generate's greedy output. OUT appears when complete.",
    .opts        = synth_rows,
    .n_opts      = sizeof synth_rows / sizeof synth_rows[0],
    .n_pos_min   = 2,
    .n_pos_max   = 2,
    .model       = true,
};

int cmd_synth(int argc, char **argv) {
    cli_common common;
    char *pos[2];
    int n_pos;
    synth_opts o = {.temp = 1.0, .top_p = 1.0, .seed = 42};
    int rc = cli_parse(&spec, argc, argv, &o, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    if (o.tokens < 1) {
        fprintf(stderr, "shrink synth: --tokens N (N >= 1) is required\n\n");
        cli_usage(&spec, stderr);
        return CLI_USAGE;
    }
    cli_io io[] = {{"MODEL", pos[0], CLI_IN},
                   {"--tokenizer", common.tokenizer, CLI_IN},
                   {"--prompts", o.prompts, CLI_IN},
                   {"OUT", pos[1], CLI_OUT}};
    if ((rc = cli_check_io(io, 4)) != CLI_OK) return rc;
    shrink_set_threads(common.threads);
    cli_install_signals();
    shrink_synth_params p = shrink_synth_params_default();
    p.n_tokens = o.tokens;
    p.prompts_path = o.prompts;
    p.temperature = (float)o.temp;
    p.top_k = o.top_k;
    p.top_p = (float)o.top_p;
    p.seed = o.seed;
    p.batch = o.batch;
    p.max_len = o.max_len;
    p.tokenizer_path = common.tokenizer;
    cli_progress pr;
    cli_progress_start(&pr, "tokens", &common);
    p.progress = cli_progress_cb;
    p.user = &pr;
    shrink_synth_result r;
    shrink_status st = shrink_synth(pos[0], pos[1], &p, &r);
    cli_progress_end(&pr);
    if (st) return cli_fail_status(st);
    const double tps = r.seconds > 0 ? (double)r.n_generated / r.seconds : 0.0;
    if (common.json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_key(&j, "input");          cli_json_str(&j, pos[0]);
        cli_json_key(&j, "output");         cli_json_str(&j, pos[1]);
        cli_json_key(&j, "n_tokens");       cli_json_int(&j, r.n_tokens);
        cli_json_key(&j, "n_sequences");    cli_json_int(&j, r.n_sequences);
        cli_json_key(&j, "n_generated");    cli_json_int(&j, r.n_generated);
        cli_json_key(&j, "vocab_size");     cli_json_int(&j, r.vocab_size);
        cli_json_key(&j, "batch");          cli_json_int(&j, r.batch);
        cli_json_key(&j, "max_len");        cli_json_int(&j, r.max_len);
        cli_json_key(&j, "temp");           cli_json_num(&j, o.temp);
        cli_json_key(&j, "top_k");          cli_json_int(&j, o.top_k);
        cli_json_key(&j, "top_p");          cli_json_num(&j, o.top_p);
        cli_json_key(&j, "seed");           cli_json_u64(&j, o.seed);
        cli_json_key(&j, "threads");        cli_json_int(&j, shrink_get_threads());
        cli_json_key(&j, "seconds");        cli_json_num(&j, r.seconds);
        cli_json_key(&j, "tokens_per_s");   cli_json_num(&j, tps);
        cli_json_key(&j, "peak_rss_bytes"); cli_json_u64(&j, shrink_peak_rss());
        cli_json_end(&j);
    } else {
        printf("%lld tokens (%lld sequence%s, %lld sampled) -> %s in %.1f s (%.0f tok/s, %d "
               "thread%s, batch %d)\n", (long long)r.n_tokens, (long long)r.n_sequences,
               cli_s(r.n_sequences), (long long)r.n_generated, pos[1], r.seconds, tps,
               shrink_get_threads(), cli_s(shrink_get_threads()), r.batch);
    }
    return CLI_OK;
}
