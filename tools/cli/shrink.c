/*
 * shrink.c - main() of the `shrink` command: the table of subcommands and `shrink help`.
 *
 * Each subcommand lives in its own file (info.c, generate.c, ppl.c, bench.c, version.c) and
 * parses its own options with cli_parse (cli.c). Exit codes: 0 success, 1 runtime error,
 * 2 usage error (see cli.h). docs/cli.md documents every command, option and JSON key.
 */
#include "cli.h"

#include <string.h>

static int cmd_help(int argc, char **argv);

static const cli_command commands[] = {
    {"info",     "show a model's architecture, config, tensors and memory needs", cmd_info},
    {"generate", "generate text from a prompt, streaming tokens as they come",    cmd_generate},
    {"ppl",      "perplexity and bits per byte of a model on a text file",        cmd_ppl},
    {"bench",    "prompt-processing and decode speed, memory, roofline fraction", cmd_bench},
    {"compare",  "ppl, KL divergence, top-1, speed, RSS of models against a base", cmd_compare},
    {"eval",     "task accuracy: lambada, multiple choice, generation; models side by side", cmd_eval},
    {"convert",  "convert a model between GGUF, Hugging Face and llama2.c",       cmd_convert},
    {"quantize", "quantize a model to GGUF: q4_K_M, q8_0, int4_g128, nf4, w8a8, ...", cmd_quantize},
    {"prune",    "prune linear layers: threshold, magnitude, wanda, sparsegpt, 2:4", cmd_prune},
    {"imatrix",  "llama.cpp's importance matrix of a model on a calibration text", cmd_imatrix},
    {"sensitivity", "KL / ppl when each layer, head or neuron block is removed", cmd_sensitivity},
    {"merge-results", "join the --json files of a sweep run in shards (--shard I/N)", cmd_merge_results},
    {"init",     "write a random-weight model of a preset or config.json shape",  cmd_init},
    {"tokenize", "encode a text file into a token file for training",            cmd_tokenize},
    {"train",    "train a model: AdamW/SGD, checkpoints, exact resume",           cmd_train},
    {"distill",  "train a student on a teacher's distribution (KL + CE)",         cmd_distill},
    {"lora",     "train a LoRA adapter on a frozen base (PEFT / llama.cpp files)", cmd_lora},
    {"merge",    "merge LoRA adapters into a base model (GGUF, HF, llama2.c)",    cmd_merge},
    {"student",  "cut a student from a teacher: fewer layers, heads, FFN neurons",  cmd_student},
    {"synth",    "sample synthetic training tokens from a teacher (token file)",  cmd_synth},
    {"pipeline", "run a recipe: teacher-student-4bit (cut, distill, quantize, compare)", cmd_pipeline},
    {"recipe",   "run a recipe file: steps, gates, OUT/step-N-NAME, --resume (docs/recipes.md)", cmd_recipe},
    {"verify",   "re-hash the inputs a model's manifest names: match, changed, missing", cmd_verify},
    {"report",   "one HTML page from compare --json outputs: size-vs-KL Pareto plot, speed", cmd_report},
    {"drop-layers", "remove whole decoder layers (by measured KL, influence, last)", cmd_drop_layers},
    {"lowrank",  "low-rank factorization of the linear layers: svd, asvd, whiten", cmd_lowrank},
    {"plan",     "one quantization type per matrix for a size budget, from measured KL", cmd_plan},
    {"version",  "version, CPU kernels and threads",                              cmd_version},
    {"help",     "help on a command: shrink help COMMAND",                        cmd_help},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static const cli_command *find_command(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(commands[i].name, name)) return &commands[i];
    return NULL;
}

static void print_usage(FILE *f) {
    fprintf(f, "usage: shrink COMMAND [options]\n\n"
               "Loads, runs and measures language models on the CPU.\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'shrink COMMAND --help' shows a command's options; docs/cli.md has them all.\n");
}

/* An unknown command: one line, with the nearest command when one is close (edit distance
 * <= 2, or the only command the name starts with; llama.cpp's "perplexity" is ppl). */
static int unknown_command(const char *name) {
    const char *best = !strcmp(name, "perplexity") ? "ppl" : NULL;
    int         best_d = 3, n_prefix = 0;
    const char *prefix = NULL;
    size_t      len = strlen(name);
    for (int i = 0; i < N_COMMANDS && !best; i++) {
        const char *c = commands[i].name;
        int         d = cli_edit_distance(name, len, c, strlen(c));
        if (d < best_d && d < (int)len) best_d = d, best = c;
        if (len >= 2 && !strncmp(c, name, len)) prefix = c, n_prefix++;
    }
    if (!best && n_prefix == 1) best = prefix;
    if (best) fprintf(stderr, "shrink: unknown command '%s'; did you mean %s?\n", name, best);
    else fprintf(stderr, "shrink: unknown command '%s' (shrink help lists the commands)\n", name);
    return CLI_USAGE;
}

/* shrink help [COMMAND]: the overview, or COMMAND --help. */
static int cmd_help(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        print_usage(stdout);
        return CLI_OK;
    }
    const cli_command *c = find_command(argv[1]);
    if (!c) return unknown_command(argv[1]);
    if (c->run == cmd_help) {
        print_usage(stdout);
        return CLI_OK;
    }
    char *sub[] = {(char *)c->name, "--help", NULL};
    return c->run(2, sub);
}

/* The library's diagnostics (e.g. a bad SHRINK_KERNELS) on stderr, as "shrink: <msg>". */
static void log_to_stderr(const char *msg, void *user) {
    (void)user;
    fprintf(stderr, "shrink: %s\n", msg);
}

int main(int argc, char **argv) {
    shrink_set_log_callback(log_to_stderr, NULL);
    if (argc < 2) {
        print_usage(stderr);
        return CLI_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        print_usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(argv[1], "--version")) return cmd_version(1, argv + 1);
    const cli_command *c = find_command(argv[1]);
    if (!c) return unknown_command(argv[1]);
    cli_install_signals();
    cli_manifest_begin(argc, argv);
    return c->run(argc - 1, argv + 1);
}
