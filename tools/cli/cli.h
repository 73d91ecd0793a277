/*
 * cli.h - what the subcommands of the `shrink` command share: the option table and its parser,
 * model loading with the common options, error reporting, a small JSON writer, progress lines
 * with an ETA, and the text-file reader of `ppl`.
 *
 * The CLI uses the public API (include/shrink.h) only. It is the one place that turns a
 * shrink_status into a message and an exit code:
 *   CLI_OK    (0) success,
 *   CLI_ERR   (1) a runtime error: "shrink: <message>" on stderr (the library's
 *                 shrink_last_error() for library failures),
 *   CLI_USAGE (2) a usage error: the message and the command's usage on stderr.
 * Nothing but results ever goes to stdout; messages, statistics and progress go to stderr.
 * Every option, output and JSON key is documented in docs/cli.md.
 */
#ifndef SHRINK_CLI_H
#define SHRINK_CLI_H

#include "shrink.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { CLI_OK = 0, CLI_ERR = 1, CLI_USAGE = 2 };

/* ==== subcommands ========================================================================= */

typedef struct cli_command {
    const char *name;
    const char *summary;                 /* one line for `shrink help` */
    int (*run)(int argc, char **argv);   /* argv[0] is the command name */
} cli_command;

int cmd_info(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_imatrix(int argc, char **argv);
int cmd_sensitivity(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_distill(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_lora(int argc, char **argv);
int cmd_drop_layers(int argc, char **argv);
int cmd_lowrank(int argc, char **argv);
int cmd_student(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_pipeline(int argc, char **argv);
int cmd_recipe(int argc, char **argv);
int cmd_plan(int argc, char **argv);
/* shrink recipe run --shard I/N outputs (tools/cli/recipe.c), joined by merge-results */
bool cli_recipe_is_shard(const char *path);
int  cli_recipe_merge(char *const *paths, int n, bool json);

/* mpi.c: data-parallel training in a `make MPI=1` build run by mpirun; in other builds (or one
 * rank) cli_mpi_comm is NULL. Call cli_mpi_comm after the arguments are checked; pass the
 * command's exit code through cli_mpi_end (a failing rank stops every rank). */
const shrink_train_comm *cli_mpi_comm(void);
int     cli_mpi_end(int rc);
int     cli_mpi_ranks(void);
int64_t cli_mpi_bytes_sent(void);   /* bytes this rank sent summing gradients and losses */
int cmd_merge_results(int argc, char **argv);

/* sensitivity.c: a sensitivity result as `shrink sensitivity` prints it (also merge-results) */
int cli_print_sensitivity(const char *input, const char *calib,
                          const shrink_sensitivity_result *r, bool json, int top);
/* "I/N" (0 <= I < N) of --shard into *i, *n; CLI_USAGE with a message naming `cmd` if not. */
int cli_parse_shard(const char *cmd, const char *text, int32_t *i, int32_t *n);
/* Prints joined compare shards as `shrink compare --no-speed` prints one run (JSON or table). */
int cli_compare_print_merged(const shrink_compare_merged *m, bool json);

/* ==== options ============================================================================= */

typedef enum cli_opt_kind {
    CLI_OPT_FLAG,   /* bool, no argument */
    CLI_OPT_INT,    /* int32_t in [min, max] */
    CLI_OPT_U64,    /* uint64_t */
    CLI_OPT_FLOAT,  /* double in [min, max] */
    CLI_OPT_STR,    /* const char * (points into argv) */
    CLI_OPT_LIST,   /* cli_list: repeatable, each value points into argv */
    CLI_OPT_POS,    /* the value is positional argument number `offset` (llama.cpp's -m MODEL,
                     * -f FILE): pos[offset]; the other positionals fill the other places */
} cli_opt_kind;

#define CLI_LIST_MAX 16
typedef struct cli_list {
    const char *v[CLI_LIST_MAX];
    int         n;
} cli_list;

/* One row per option of a command. The value goes to the variable at `offset` in the
 * command's options struct (or in cli_common for the common options), of the kind's type. */
typedef struct cli_opt {
    const char  *name;      /* "--temp" */
    const char  *alias;     /* "-t" or NULL */
    cli_opt_kind kind;
    size_t       offset;    /* offsetof(<options struct>, <field>) */
    const char  *metavar;   /* "T" (NULL for flags) */
    double       min;       /* allowed range of INT and FLOAT values */
    double       max;
    const char  *help;
} cli_opt;

/* The options every command takes. */
typedef struct cli_common {
    int32_t     threads;    /* --threads N (0 = one per core) */
    bool        json;       /* --json */
    const char *tokenizer;  /* --tokenizer FILE */
    bool        f32;        /* --f32: widen f16/bf16 weights to f32 at load */
    bool        progress;   /* --progress: progress lines even if stderr is not a terminal */
    bool        help;       /* --help */
    bool        allow_nonfinite; /* --allow-nonfinite: load weights holding NaN or Inf */
    cli_list    lora;       /* --lora FILE[:SCALE], repeatable (commands with spec.lora) */
    const char *load_as;    /* --load-as SCHEME (commands with spec.load_as) */
    bool        no_manifest; /* --no-manifest: outputs carry no manifest (docs/manifest.md) */
} cli_common;

/* What a command tells the parser about itself. */
typedef struct cli_spec {
    const char    *name;         /* "generate" */
    const char    *synopsis;     /* "MODEL -p TEXT -n N [options]" */
    const char    *description;  /* a paragraph for --help */
    const cli_opt *opts;         /* the command's own options */
    int            n_opts;
    int            n_pos_min;    /* positional arguments required */
    int            n_pos_max;
    bool           model;        /* the command loads a model: --tokenizer and --f32 apply */
    bool           lora;         /* --lora applies (cli_load_model adds the adapters) */
    void         (*epilog)(FILE *f); /* more help after the options (--help only), or NULL */
    bool           load_as;      /* --load-as applies (cli_load_model quantizes at load) */
} cli_spec;

/* Parses argv[1..argc) (argv[0] is the command name) into the command's options struct `opts`
 * (which holds the defaults on entry), `common` and pos[0..*n_pos). Accepts "--opt VALUE" and "--opt=VALUE"; "--" ends options.
 * Returns CLI_OK, or CLI_USAGE after printing the problem and the usage on stderr. When
 * --help was given, prints the help on stdout and sets common->help (the caller returns 0). */
int cli_parse(const cli_spec *spec, int argc, char **argv, void *opts, cli_common *common,
              char **pos, int *n_pos);
void cli_usage(const cli_spec *spec, FILE *f);   /* the full help text of a command */
/* The recipe runner (recipe.c) learns a command's options by setting cli_probe and calling
 * the command with no arguments: cli_parse stores its spec in *cli_probe and returns as after
 * --help, printing nothing. */
extern const cli_spec **cli_probe;
/* The option `name` (len bytes, with its dashes) of spec or a common option that applies to
 * it (*common says which), or NULL; and the closest one for "did you mean" (dashes ignored). */
const cli_opt *cli_find_opt(const cli_spec *spec, const char *name, size_t len, bool *common);
const cli_opt *cli_closest_opt(const cli_spec *spec, const char *name, size_t len);
/* Edit distance (Damerau-Levenshtein: insert, delete, replace, swap two neighbours) of
 * a[0..n) and b[0..m); both at most 63 bytes (longer: a large number). For "did you mean". */
int cli_edit_distance(const char *a, size_t n, const char *b, size_t m);

/* ==== errors ============================================================================== */

/* "shrink: <message>\n" on stderr; returns CLI_ERR. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "shrink: <shrink_last_error() or the status name>\n" on stderr; returns CLI_ERR. */
int cli_fail_status(shrink_status st);
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ==== models ============================================================================== */

typedef enum cli_tok_mode {
    CLI_TOK_NEED,       /* a model without a tokenizer is an error */
    CLI_TOK_OPTIONAL,   /* if the tokenizer does not load, warn and load the model without it */
    CLI_TOK_NONE,       /* do not load a tokenizer */
} cli_tok_mode;

/* --load-as / --qat SCHEME (`opt` names the option in messages): the dtype name of a
 * single-type scheme of `shrink quantize` (or a quantized dtype's name) into *dtype; CLI_OK, or
 * CLI_ERR after a message (mixes such as q4_K_M, f16, w8a8 are refused). */
int cli_scheme_dtype(const char *opt, const char *scheme, const char **dtype);
/* The same for --qat, which also takes llama.cpp's mixes (q4_K_M, ...): *name = the scheme's. */
int cli_qat_scheme(const char *opt, const char *scheme, const char **name);

/* Applies --threads, then loads `path` with --tokenizer and --f32, then adds the --lora
 * adapters (FILE or FILE:SCALE, scale 1 by default). Returns CLI_OK, or CLI_ERR
 * after printing "shrink: <message>" (the library's message names the file and the problem). */
/* Splits "FILE[:SCALE]" (SCALE a finite number; else the whole argument is the file). */
int cli_split_scale(const char *arg, char *file, size_t cap, double *scale);
int cli_load_model(const char *path, const cli_common *common, cli_tok_mode mode,
                   shrink_model **out);

/* ==== inputs and outputs (docs/reliability.md) ============================================ */

typedef enum cli_io_role {
    CLI_IN,          /* a file or folder the command reads */
    CLI_OUT,         /* a file the command writes (it replaces it as a whole when complete) */
    CLI_OUT_DIR,     /* a folder the command writes as a whole (a Hugging Face model) */
    CLI_OUT_IN_DIR,  /* a folder the command writes files into (train --out) */
} cli_io_role;

/* One path argument of a command: what the user called it ("OUT", "--tokenizer"), the path
 * (NULL: not given, skipped) and its role. */
typedef struct cli_io {
    const char *arg;
    const char *path;
    cli_io_role role;
} cli_io;

/* The one check every command that writes runs before any work: no output may be, contain or
 * replace one of the inputs, whatever the spelling (same device and inode, symbolic links,
 * "..", an input inside an output folder, a file of an input model folder); an existing output
 * path must be a regular file (a folder for CLI_OUT_DIR / CLI_OUT_IN_DIR), and an existing
 * input a regular file or a folder (a FIFO or /dev/zero gets a message naming its option at
 * once, before any work: no endless read, no wait for a writer). Removes the stale
 * temporaries of dead shrink processes in the outputs' folders, saying so on stderr. Returns
 * CLI_OK, or CLI_ERR after printing a message naming both arguments. */
int cli_check_io(const cli_io *io, int n);
/* Whether an output of format `to` ("gguf", "hf", "llama2c" or NULL: from the extension,
 * .gguf -> gguf, .bin -> llama2c, else a Hugging Face folder) is a folder. */
bool cli_out_is_folder(const char *to, const char *path);

/* Installs the SIGINT/SIGTERM/SIGHUP handler: removes the temporaries being written
 * (shrink_remove_temporaries) and exits with 128 + the signal. */
void cli_install_signals(void);

/* ==== a command in a child process ======================================================== */

/* Runs run(argc, argv) (argv NULL-terminated, argv[0] the command) in a forked child, stdout
 * into out_file (NULL: this stdout), and returns its exit code. The same function as typing
 * the command, in a fresh process: OpenMP's threads do not survive fork, so a command that
 * forks itself (compare) hangs if an earlier command started them in the same process; each
 * step of a recipe or pipeline runs this way. The child dies with the parent
 * (PR_SET_PDEATHSIG): a parent killed with SIGKILL leaves no command running behind it. */
int cli_run_child(int (*run)(int argc, char **argv), int argc, char **argv, const char *out_file);

/* ==== text files ========================================================================== */

/* The largest text file cli_read_text reads (1 GiB). */
#define CLI_TEXT_MAX ((size_t)1 << 30)
/* Reads a whole regular file of at most CLI_TEXT_MAX bytes into a malloc'd, NUL-terminated
 * buffer (free with free()) and checks that it is UTF-8; prints "shrink: FILE: ..." (not a
 * regular file, too large, or the byte offset of bad UTF-8) and returns CLI_ERR on failure. */
int cli_read_text(const char *path, char **text, size_t *len);
/* Byte offset of the first invalid UTF-8 sequence in s[0..n), or n if it is all valid
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF). */
size_t cli_utf8_valid_prefix(const char *s, size_t n);

/* ==== JSON output ========================================================================= */

/* A streaming writer of one JSON object on one line: cli_json_begin(f), keys and values,
 * cli_json_end(). Strings are escaped; bytes that are not valid UTF-8 become U+FFFD. */
typedef struct cli_json {
    FILE *f;
    int   depth;
    bool  first[8];     /* no value written yet at this depth */
} cli_json;

void cli_json_begin(cli_json *j, FILE *f);
void cli_json_end(cli_json *j);                       /* closes the object and prints '\n' */
void cli_json_key(cli_json *j, const char *key);      /* then exactly one value */
void cli_json_str(cli_json *j, const char *s);
void cli_json_strn(cli_json *j, const char *s, size_t n);
void cli_json_int(cli_json *j, int64_t v);
void cli_json_u64(cli_json *j, uint64_t v);
void cli_json_num(cli_json *j, double v);             /* non-finite values become null */
void cli_json_bool(cli_json *j, bool v);
void cli_json_null(cli_json *j);
void cli_json_obj_begin(cli_json *j);
void cli_json_obj_end(cli_json *j);
void cli_json_arr_begin(cli_json *j);
void cli_json_arr_end(cli_json *j);

/* ==== progress ============================================================================ */

/* A line on stderr, "label  done/total  12.3 s  ETA 4.5 s", redrawn at most 10 times a second;
 * enabled when stderr is a terminal or with --progress. */
typedef struct cli_progress {
    bool        enabled;
    bool        tty;        /* redraw in place with '\r' */
    const char *label;
    double      t0;
    double      t_last;
} cli_progress;

void cli_progress_start(cli_progress *p, const char *label, const cli_common *common);
void cli_progress_update(cli_progress *p, int64_t done, int64_t total);
void cli_progress_end(cli_progress *p);
/* Progress of a calibrate-then-write command (quantize, prune): phase 0 counts `calib_label`
 * units, phase 1 bytes written, shown as whole MiB under `write_label`. Set phase = last = -1
 * and the labels; pass cli_phase_progress_cb as the library's progress and user = this; call
 * cli_phase_progress_end after the library call. */
typedef struct cli_phase_progress {
    cli_progress      calib, write;
    int               phase;   /* -1: none yet */
    int64_t           last;    /* MiB last shown */
    const char       *calib_label, *write_label;
    const cli_common *common;
} cli_phase_progress;
void cli_phase_progress_cb(void *user, int phase, int64_t done, int64_t total);
void cli_phase_progress_end(cli_phase_progress *q);
/* Adapter for shrink_ppl_params.progress (user = the cli_progress). */
void cli_progress_cb(void *user, int64_t done, int64_t total);

/* ==== formatting ========================================================================== */

/* "1.01 MiB", "4.2 GiB", "512 B" into buf. */
const char *cli_fmt_bytes(char *buf, size_t cap, uint64_t bytes);

/* Bits per weight of a model's tensors as stored: 8 x tensor bytes / tensor elements, over
 * every tensor (the JSON key bits_per_weight of info and compare). */
double cli_bits_per_weight(const shrink_model *m);

/* "" for 1, "s" otherwise: "%d thread%s", n, cli_s(n). */
const char *cli_s(long long n);

/* One speed test of shrink_bench ("pp" or "tg") in the shared JSON vocabulary (docs/cli.md):
 * <test>_tokens_per_s (the median), <test>_tokens_per_s_mean, _sd, _min, _max; all null when
 * !have (test skipped or --no-speed). */
void cli_json_speed(cli_json *j, const char *test, bool have, double median, double mean,
                    double sd, double min, double max);
/* Relative spread of a speed test (sd / median, 0 if the median is 0); above
 * CLI_SPREAD_WARN a warning line on stderr names the test and what to do. Returns true when
 * it warned. */
#define CLI_SPREAD_WARN 0.10
bool cli_speed_spread_warn(const char *who, const char *test, double median, double sd,
                           int reps);

/* ==== what was written (written.c) ======================================================== */

/* Tensors per type written, bits per weight, fallbacks (requested type -> written type for
 * rows its block does not divide) and shrink's own types, for quantize and convert. */
enum { CLI_WRITTEN_MAX_FB = 16 };
typedef struct cli_written_fb {
    shrink_dtype want, got;
    int64_t      cols;       /* row length */
    int64_t      n;          /* tensors */
} cli_written_fb;
typedef struct cli_written {
    const char    *requested;      /* scheme or dtype name asked for */
    double         requested_bits; /* its nominal bits/weight (0: not one type) */
    const char    *base;           /* a mix's base type (printed beside the bits), or NULL */
    int64_t        count[SHRINK_DTYPE_COUNT];
    int64_t        n_tensors, n_elems, own;
    uint64_t       bytes;
    cli_written_fb fb[CLI_WRITTEN_MAX_FB];
    int            n_fb;
} cli_written;
void cli_written_init(cli_written *w, const char *requested, double requested_bits);
void cli_written_add(cli_written *w, shrink_dtype got, shrink_dtype want, int64_t cols,
                     uint64_t bytes, int64_t n_elems);
/* Every tensor of the model file at `path` (read back: what is really there); want: the dtype
 * asked for the matrices, -1 for none. */
shrink_status cli_written_from_file(cli_written *w, const char *path, int want);
double cli_written_bits(const cli_written *w);
/* "asked q4_K_M (4.50 bits/weight); wrote q4_K 20, q6_K 5, f32 9: 5.10 bits/weight" and one
 * line per fallback with its reason. */
void cli_written_print(const cli_written *w, FILE *f);
/* On stderr: a NOTICE naming shrink's own types if the file holds any. */
void cli_written_notice(const cli_written *w, const char *out);
/* Keys requested, requested_bits_per_weight, written_types {type: count}, fallbacks [...],
 * llama_cpp_readable into an open JSON object. */
void cli_written_json(const cli_written *w, cli_json *j);

/* ==== the manifest of the files written (manifest.c, docs/manifest.md) ==================== */

/* main(): records argv and gives the library the manifest source. */
void cli_manifest_begin(int argc, char **argv);
/* An input a command reads (a file, or a model/adapter folder: the files shrink reads in it),
 * named by its option ("IN", "--calib"); cli_check_io and cli_load_model call it. */
void cli_manifest_input(const char *arg, const char *path);
/* A seed (cli_parse records every INT/U64 option named *seed*) and a measured quality. */
void cli_manifest_seed(const char *name, uint64_t v);
void cli_manifest_quality(const char *name, double v);
void cli_manifest_disable(void);   /* --no-manifest */
/* A new command run in the same process (a recipe step): forgets the inputs, seeds and
 * quality recorded so far and records argv as the command; manifests on again. */
void cli_manifest_restart(int argc, char **argv);
/* A manifest as text lines (info, verify) and as a JSON object value (after a key). */
void cli_manifest_print(const shrink_manifest *m, FILE *f);
void cli_manifest_json(const shrink_manifest *m, cli_json *j);
int cmd_verify(int argc, char **argv);
int cmd_report(int argc, char **argv);

#endif /* SHRINK_CLI_H */
