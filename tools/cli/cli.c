/*
 * cli.c - the pieces every subcommand uses (see cli.h): option parsing from a table, errors,
 * model loading with the common options, reading and checking text files, JSON output,
 * progress lines, byte formatting. Uses include/shrink.h only.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ==== options ============================================================================= */

/* The options of every command, stored in a cli_common. */
enum { COMMON_THREADS, COMMON_JSON, COMMON_TOKENIZER, COMMON_F32, COMMON_LORA, COMMON_PROGRESS,
       COMMON_HELP, COMMON_NONFINITE, COMMON_MODEL, COMMON_NO_MANIFEST, COMMON_LOAD_AS,
       COMMON_COUNT };

#define COMMON(f) offsetof(cli_common, f)
static const cli_opt common_rows[COMMON_COUNT] = {
    [COMMON_THREADS]   = {"--threads", "-t", CLI_OPT_INT, COMMON(threads), "N", 0, 4096,
                          "threads for the kernels (default 0 = one per core)"},
    [COMMON_JSON]      = {"--json", NULL, CLI_OPT_FLAG, COMMON(json), NULL, 0, 0,
                          "print one JSON object on stdout instead of text"},
    [COMMON_TOKENIZER] = {"--tokenizer", NULL, CLI_OPT_STR, COMMON(tokenizer), "FILE", 0, 0,
                          "tokenizer file or folder (default: the one beside the model)"},
    [COMMON_F32]       = {"--f32", NULL, CLI_OPT_FLAG, COMMON(f32), NULL, 0, 0,
                          "convert f16/bf16 weights to f32 in memory at load"},
    [COMMON_LORA]      = {"--lora", NULL, CLI_OPT_LIST, COMMON(lora), "FILE[:SCALE]", 0, 0,
                          "apply a LoRA adapter (PEFT folder or llama.cpp GGUF) without merging; "
                          "repeatable"},
    [COMMON_PROGRESS]  = {"--progress", NULL, CLI_OPT_FLAG, COMMON(progress), NULL, 0, 0,
                          "progress on stderr even when it is not a terminal"},
    [COMMON_HELP]      = {"--help", "-h", CLI_OPT_FLAG, COMMON(help), NULL, 0, 0,
                          "show this help and exit"},
    [COMMON_NONFINITE] = {"--allow-nonfinite", NULL, CLI_OPT_FLAG, COMMON(allow_nonfinite), NULL,
                          0, 0, "load a model whose weights hold NaN or Inf (refused by default)"},
    /* llama.cpp's spelling of the first positional argument (a command's own -m wins) */
    [COMMON_MODEL]     = {"--model", "-m", CLI_OPT_POS, 0, "MODEL", 0, 0,
                          "the model, as llama.cpp spells it (same as the first argument)"},
    [COMMON_NO_MANIFEST] = {"--no-manifest", NULL, CLI_OPT_FLAG, COMMON(no_manifest), NULL, 0, 0,
                          "write no manifest (command, input hashes, date) into the output"},
    [COMMON_LOAD_AS]   = {"--load-as", NULL, CLI_OPT_STR, COMMON(load_as), "SCHEME", 0, 0,
                          "quantize an f32/f16/bf16 model in memory while loading (a single-type "
                          "scheme: q4_0, nf4, int4_g128, ...; no file written)"},
};
#undef COMMON

static bool common_applies(const cli_spec *spec, int row) {
    if (row == COMMON_LORA) return spec->lora;
    if (row == COMMON_LOAD_AS) return spec->load_as;
    return spec->model || (row != COMMON_TOKENIZER && row != COMMON_F32 &&
                           row != COMMON_NONFINITE && row != COMMON_MODEL);
}

static void print_opt(FILE *f, const cli_opt *o) {
    char left[64];
    snprintf(left, sizeof left, "%s%s%s%s%s", o->alias ? o->alias : "", o->alias ? ", " : "",
             o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
    fprintf(f, "  %-22s %s\n", left, o->help);
}

void cli_usage(const cli_spec *spec, FILE *f) {
    fprintf(f, "usage: shrink %s %s\n", spec->name, spec->synopsis);
    if (spec->description) fprintf(f, "\n%s\n", spec->description);
    fprintf(f, "\noptions:\n");
    for (int i = 0; i < spec->n_opts; i++) print_opt(f, &spec->opts[i]);
    for (int i = 0; i < COMMON_COUNT; i++)
        if (common_applies(spec, i)) print_opt(f, &common_rows[i]);
    if (spec->epilog && f == stdout) spec->epilog(f); /* not in usage errors */
}

static int usage_error(const cli_spec *spec, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int usage_error(const cli_spec *spec, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "shrink %s: ", spec->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n\n", stderr);
    cli_usage(spec, stderr);
    return CLI_USAGE;
}

/* Stores the text value `v` of option `o` into its field of `base`; returns CLI_OK or
 * CLI_USAGE. */
static int set_value(const cli_spec *spec, const cli_opt *o, void *base, const char *v) {
    void *dst = (char *)base + o->offset;
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case CLI_OPT_FLAG:
        *(bool *)dst = true;
        return CLI_OK;
    case CLI_OPT_POS:   /* placed by cli_parse */
        return CLI_OK;
    case CLI_OPT_STR:
        *(const char **)dst = v;
        return CLI_OK;
    case CLI_OPT_LIST: {
        cli_list *l = dst;
        if (l->n >= CLI_LIST_MAX)
            return usage_error(spec, "%s: at most %d times", o->name, CLI_LIST_MAX);
        l->v[l->n++] = v;
        return CLI_OK;
    }
    case CLI_OPT_INT: {
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end || x < (long long)o->min || x > (long long)o->max)
            return usage_error(spec, "%s: '%s' is not an integer in [%.0f, %.0f]", o->name, v,
                               o->min, o->max);
        *(int32_t *)dst = (int32_t)x;
        return CLI_OK;
    }
    case CLI_OPT_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || end == v || *end || strchr(v, '-'))
            return usage_error(spec, "%s: '%s' is not a non-negative integer", o->name, v);
        *(uint64_t *)dst = (uint64_t)x;
        return CLI_OK;
    }
    case CLI_OPT_FLOAT: {
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x) || x < o->min || x > o->max)
            return usage_error(spec, "%s: '%s' is not a number in [%g, %g]", o->name, v, o->min,
                               o->max);
        *(double *)dst = x;
        return CLI_OK;
    }
    }
    return CLI_USAGE;
}

/* The row of option `name` (len bytes), and in *common whether it is a common option. */
const cli_opt *cli_find_opt(const cli_spec *spec, const char *name, size_t len, bool *common) {
    for (int i = 0; i < spec->n_opts + COMMON_COUNT; i++) {
        *common = i >= spec->n_opts;
        const cli_opt *o = *common ? &common_rows[i - spec->n_opts] : &spec->opts[i];
        if (*common && !common_applies(spec, i - spec->n_opts)) continue;
        if ((strlen(o->name) == len && !strncmp(o->name, name, len)) ||
            (o->alias && strlen(o->alias) == len && !strncmp(o->alias, name, len)))
            return o;
    }
    return NULL;
}

int cli_edit_distance(const char *a, size_t n, const char *b, size_t m) {
    int d[64][64];
    if (n > 63 || m > 63) return 1 << 20;
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < c)
                c = d[i - 2][j - 2] + 1;
            d[i][j] = c;
        }
    return d[n][m];
}

/* The option of spec (or a common one that applies) closest to name[0..len): a unique one
 * name starts with, else the nearest by edit distance if at most max(2, len / 3); NULL if
 * none is close. Dashes are ignored, so "-scheme" and "scheme" find --scheme. */
const cli_opt *cli_closest_opt(const cli_spec *spec, const char *name, size_t len) {
    while (len > 0 && *name == '-') name++, len--;
    const cli_opt *best = NULL, *prefix = NULL;
    int            best_d = 1 << 20, n_prefix = 0;
    for (int i = 0; i < spec->n_opts + COMMON_COUNT; i++) {
        bool           common = i >= spec->n_opts;
        const cli_opt *o      = common ? &common_rows[i - spec->n_opts] : &spec->opts[i];
        if (common && !common_applies(spec, i - spec->n_opts)) continue;
        const char *on = o->name + 2;   /* without "--" */
        size_t      ol = strlen(on);
        if (len >= 2 && len < ol && !strncmp(on, name, len)) prefix = o, n_prefix++;
        int d = cli_edit_distance(name, len, on, ol);
        if (d < best_d) best_d = d, best = o;
    }
    if (n_prefix == 1) return prefix;
    return best && best_d <= (len / 3 > 2 ? (int)(len / 3) : 2) && best_d < (int)len ? best : NULL;
}

/* An unknown option: one line, with the nearest option ("did you mean --scheme q4_K_M?") when
 * one is close, instead of the whole usage. */
static int unknown_option(const cli_spec *spec, const char *a, size_t len, const char *next) {
    const cli_opt *o = cli_closest_opt(spec, a, len);
    const char    *v = a[len] == '=' ? a + len + 1 : next && next[0] != '-' ? next : NULL;
    if (o && o->kind != CLI_OPT_FLAG && v)
        fprintf(stderr, "shrink %s: unknown option '%.*s'; did you mean %s %s?\n", spec->name,
                (int)len, a, o->name, v);
    else if (o)
        fprintf(stderr, "shrink %s: unknown option '%.*s'; did you mean %s?\n", spec->name,
                (int)len, a, o->name);
    else
        fprintf(stderr, "shrink %s: unknown option '%.*s' (shrink %s --help lists the options)\n",
                spec->name, (int)len, a, spec->name);
    return CLI_USAGE;
}

/* Puts the arguments given as options (slot[k], CLI_OPT_POS) at their places and the plain
 * positional arguments bare[0..n_bare) in the other places, in order, into pos. */
static int place_positionals(const cli_spec *spec, char **slot, int n_slots, char **bare,
                             int n_bare, char **pos, int *n_pos) {
    int b = 0, k = 0;
    *n_pos = 0;
    for (; b < n_bare || k < n_slots; k++) {
        char *v = k < n_slots && slot[k] ? slot[k] : b < n_bare ? bare[b++] : NULL;
        if (!v) return usage_error(spec, "missing arguments");
        if (*n_pos >= spec->n_pos_max) return usage_error(spec, "unexpected argument '%s'", v);
        pos[(*n_pos)++] = v;
    }
    return CLI_OK;
}

#define CLI_SLOTS 4

/* The manifest (manifest.c): --no-manifest, and every seed option's value, given or default. */
static void record_manifest(const cli_spec *spec, const void *opts, const cli_common *common) {
    if (common->no_manifest) cli_manifest_disable();
    for (int i = 0; opts && i < spec->n_opts; i++) {
        const cli_opt *o = &spec->opts[i];
        const char    *p = (const char *)opts + o->offset;
        if (!strstr(o->name, "seed")) continue;
        if (o->kind == CLI_OPT_INT) cli_manifest_seed(o->name, (uint64_t)*(const int32_t *)p);
        if (o->kind == CLI_OPT_U64) cli_manifest_seed(o->name, *(const uint64_t *)p);
    }
}

const cli_spec **cli_probe;

int cli_parse(const cli_spec *spec, int argc, char **argv, void *opts, cli_common *common,
              char **pos, int *n_pos) {
    bool  options_done = false;
    char *slot[CLI_SLOTS] = {NULL};
    int   n_slots = 0, n_bare = 0;
    memset(common, 0, sizeof *common);
    *n_pos = 0;
    if (cli_probe) {   /* recipe.c asks for the option table: answer as --help, silently */
        *cli_probe = spec;
        common->help = true;
        return CLI_OK;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || a[1] == '\0') {
            if (n_bare >= spec->n_pos_max)
                return usage_error(spec, "unexpected argument '%s'", a);
            pos[n_bare++] = argv[i];   /* pos has n_pos_max places; moved at the end */
            continue;
        }
        if (!strcmp(a, "--")) {
            options_done = true;
            continue;
        }
        const char    *eq  = a[1] == '-' ? strchr(a, '=') : NULL;
        size_t         len = eq ? (size_t)(eq - a) : strlen(a);
        bool           is_common;
        const cli_opt *o = cli_find_opt(spec, a, len, &is_common);
        if (!o) return unknown_option(spec, a, len, i + 1 < argc ? argv[i + 1] : NULL);
        const char *v = NULL;
        if (o->kind == CLI_OPT_FLAG) {
            if (eq) return usage_error(spec, "option %s takes no value", o->name);
        } else if (eq) {
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            return usage_error(spec, "option %s needs a value (%s)", o->name, o->metavar);
        }
        if (o->kind == CLI_OPT_POS && o->offset < CLI_SLOTS) {
            slot[o->offset] = (char *)v;
            if ((int)o->offset + 1 > n_slots) n_slots = (int)o->offset + 1;
            continue;
        }
        int rc = set_value(spec, o, is_common ? (void *)common : opts, v);
        if (rc != CLI_OK) return rc;
    }
    if (n_slots > 0 && !common->help) {
        char *bare[64];
        if (n_bare > 64) return usage_error(spec, "too many arguments");
        memcpy(bare, pos, (size_t)n_bare * sizeof *bare);
        int rc = place_positionals(spec, slot, n_slots, bare, n_bare, pos, n_pos);
        if (rc != CLI_OK) return rc;
    } else {
        *n_pos = n_bare;
    }
    if (common->help) {
        cli_usage(spec, stdout);
        return CLI_OK;
    }
    if (*n_pos < spec->n_pos_min) return usage_error(spec, "missing arguments");
    record_manifest(spec, opts, common);
    return CLI_OK;
}

int cli_parse_shard(const char *cmd, const char *text, int32_t *i, int32_t *n) {
    char *end;
    long  a = strtol(text, &end, 10), b = 0;
    int   ok = end != text && *end == '/' && a >= 0;
    if (ok) {
        const char *q = end + 1;
        b = strtol(q, &end, 10);
        ok = end != q && *end == '\0' && b >= 1 && b <= (1L << 20) && a < b;
    }
    if (!ok) {
        fprintf(stderr, "shrink %s: --shard '%s': expected I/N with 0 <= I < N (e.g. 0/4)\n",
                cmd, text);
        return CLI_USAGE;
    }
    *i = (int32_t)a;
    *n = (int32_t)b;
    return CLI_OK;
}

/* ==== errors ============================================================================== */

int cli_fail(const char *fmt, ...) {
    va_list ap;
    fputs("shrink: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_ERR;
}

int cli_fail_status(shrink_status st) {
    const char *msg = shrink_last_error();
    return cli_fail("%s", msg && *msg ? msg : shrink_status_name(st));
}

void cli_warn(const char *fmt, ...) {
    va_list ap;
    fputs("shrink: warning: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* What an existing path is, for messages. */
static const char *kind_name(mode_t m) {
    return S_ISDIR(m)    ? "a folder"
           : S_ISREG(m)  ? "a regular file"
           : S_ISLNK(m)  ? "a symbolic link"
           : S_ISFIFO(m) ? "a FIFO (named pipe)"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
                         : "not a regular file";
}

/* ==== models ============================================================================== */

/* The library's message, prefixed with `path` unless it names it already. */
static int fail_naming(const char *path, shrink_status st) {
    const char *msg = shrink_last_error();
    if (!msg || !*msg) msg = shrink_status_name(st);
    if (strstr(msg, path)) return cli_fail("%s", msg);
    return cli_fail("%s: %s", path, msg);
}

int cli_split_scale(const char *arg, char *file, size_t cap, double *scale) {
    const char *colon = strrchr(arg, ':');
    char       *end   = NULL;
    *scale = 1.0;
    file[0] = 0;
    if (colon && colon[1]) {
        errno = 0;
        double x = strtod(colon + 1, &end);
        if (!errno && end != colon + 1 && !*end && isfinite(x)) {
            if ((size_t)(colon - arg) >= cap) return cli_fail("%s: path too long", arg);
            memcpy(file, arg, (size_t)(colon - arg));
            file[colon - arg] = 0;
            *scale = x;
            return CLI_OK;
        }
    }
    if (strlen(arg) >= cap) return cli_fail("%s: path too long", arg);
    strcpy(file, arg);
    return CLI_OK;
}

int cli_scheme_dtype(const char *opt, const char *scheme, const char **dtype) {
    for (int32_t i = 0; i < shrink_quantize_scheme_count(); i++) {
        shrink_quantize_scheme_info in;
        if (shrink_quantize_scheme_get(i, &in) != SHRINK_OK || strcasecmp(in.name, scheme))
            continue;
        if (in.mix)
            return cli_fail("%s %s: a mix of types by llama.cpp's rules; %s takes a single-type "
                            "scheme (e.g. %s)", opt, scheme, opt, shrink_dtype_name(in.dtype));
        *dtype = shrink_dtype_name(in.dtype);
        return CLI_OK;
    }
    shrink_dtype d;
    if (shrink_dtype_parse(scheme, &d) == SHRINK_OK && d > SHRINK_DTYPE_BF16 &&
        d != SHRINK_DTYPE_W8A8 && d != SHRINK_DTYPE_W8A8_STATIC) {
        *dtype = shrink_dtype_name(d);
        return CLI_OK;
    }
    return cli_fail("%s %s: not a weight quantization scheme of `shrink quantize --list` (q4_0, "
                    "q8_0, q4_K, int4_g128, nf4, ...)", opt, scheme);
}

int cli_qat_scheme(const char *opt, const char *scheme, const char **name) {
    for (int32_t i = 0; i < shrink_quantize_scheme_count(); i++) {
        shrink_quantize_scheme_info in;
        if (shrink_quantize_scheme_get(i, &in) == SHRINK_OK && in.mix &&
            !strcasecmp(in.name, scheme)) {
            *name = in.name; /* a mix: each matrix gets the type the mix writes for it */
            return CLI_OK;
        }
    }
    return cli_scheme_dtype(opt, scheme, name);
}

int cli_load_model(const char *path, const cli_common *common, cli_tok_mode mode,
                   shrink_model **out) {
    shrink_load_params lp = shrink_load_params_default();
    struct stat        st;
    *out = NULL;
    shrink_set_threads(common->threads);
    if (stat(path, &st) != 0) return cli_fail("%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return cli_fail("%s: is %s, not a model file or folder", path, kind_name(st.st_mode));
    lp.tokenizer_path = common->tokenizer;
    lp.widen_f32      = common->f32;
    lp.allow_nonfinite = common->allow_nonfinite;
    if (common->load_as) {
        int rc0 = cli_scheme_dtype("--load-as", common->load_as, &lp.load_as);
        if (rc0 != CLI_OK) return rc0;
    }
    lp.no_tokenizer   = mode == CLI_TOK_NONE;
    shrink_status rc  = shrink_model_load(out, path, &lp);
    if (rc != SHRINK_OK && mode == CLI_TOK_OPTIONAL && !common->tokenizer) {
        /* maybe only the tokenizer failed: keep its message if the model alone loads */
        char why[512];
        snprintf(why, sizeof why, "%s", shrink_last_error());
        lp.no_tokenizer = true;
        if (shrink_model_load(out, path, &lp) != SHRINK_OK) return fail_naming(path, rc);
        cli_warn("no tokenizer loaded: %s", why);
        cli_manifest_input("MODEL", path);
        return CLI_OK;
    }
    if (rc != SHRINK_OK) return fail_naming(path, rc);
    cli_manifest_input("MODEL", path);
    if (common->tokenizer) cli_manifest_input("--tokenizer", common->tokenizer);
    if (mode == CLI_TOK_NEED && !shrink_model_tokenizer(*out)) {
        shrink_model_free(*out);
        *out = NULL;
        return cli_fail("%s: no tokenizer found beside the model; give one with --tokenizer FILE",
                        path);
    }
    for (int i = 0; i < common->lora.n; i++) {
        char   file[4096];
        double scale;
        struct stat ls;
        int bad = cli_split_scale(common->lora.v[i], file, sizeof file, &scale) != CLI_OK;
        if (!bad && stat(file, &ls) != 0) {
            cli_fail("--lora '%s': %s", file, strerror(errno));
            bad = 1;
        } else if (!bad && !S_ISREG(ls.st_mode) && !S_ISDIR(ls.st_mode)) {
            cli_fail("--lora '%s' is %s, not an adapter (a PEFT folder or a llama.cpp GGUF file)",
                     file, kind_name(ls.st_mode));
            bad = 1;
        } else if (!bad && shrink_model_add_lora(*out, file, scale) != SHRINK_OK) {
            cli_fail("%s", shrink_last_error());
            bad = 1;
        }
        if (!bad) cli_manifest_input("--lora", file);
        if (bad) {
            shrink_model_free(*out);
            *out = NULL;
            return CLI_ERR;
        }
    }
    return CLI_OK;
}

/* ==== inputs and outputs ================================================================== */

static void on_signal(int sig) {
    shrink_remove_temporaries();   /* async-signal-safe */
    _exit(128 + sig);
}

void cli_install_signals(void) {
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction sa, old;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        /* a signal ignored at startup (nohup, a background job) stays ignored */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        sigaction(sigs[i], &sa, NULL);
    }
}

bool cli_out_is_folder(const char *to, const char *path) {
    if (to) return !strcmp(to, "hf");
    size_t n = strlen(path);
    return !(n >= 5 && !strcmp(path + n - 5, ".gguf")) && !(n >= 4 && !strcmp(path + n - 4, ".bin"));
}

/* The absolute path without symbolic links, "." or "..": realpath of the path, or of its
 * folder plus its name when it does not exist yet (malloc'd; NULL if neither resolves). */
static char *canon_path(const char *path) {
    char *r = realpath(path, NULL);
    if (r) return r;
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    const char *base = path + n;
    while (base > path && base[-1] != '/') base--;
    size_t dlen = (size_t)(base - path);
    char *dir = dlen ? strndup(path, dlen) : strdup(".");
    char *rd = dir ? realpath(dir, NULL) : NULL;
    free(dir);
    if (!rd) return NULL;
    size_t blen = (size_t)(path + n - base), rlen = strlen(rd);
    char *out = malloc(rlen + blen + 2);
    if (out) snprintf(out, rlen + blen + 2, "%s%s%.*s", rd, rlen > 1 ? "/" : "", (int)blen, base);
    free(rd);
    return out;
}

/* Whether path `inner` is `outer` or lies inside it (both canonical). */
static bool path_within(const char *inner, const char *outer) {
    size_t n = strlen(outer);
    if (strncmp(inner, outer, n) != 0) return false;
    return inner[n] == '\0' || inner[n] == '/' || (n == 1 && outer[0] == '/');
}

/* A name the model loader reads from a model folder (so an output there replaces the model). */
static bool model_file_name(const char *name) {
    static const char *const names[] = {"config.json", "generation_config.json",
                                        "tokenizer.json", "tokenizer.model",
                                        "tokenizer_config.json", "special_tokens_map.json",
                                        "vocab.json", "merges.txt", "added_tokens.json",
                                        "tokenizer.bin", NULL};
    for (int i = 0; names[i]; i++)
        if (!strcmp(name, names[i])) return true;
    size_t n = strlen(name);
    return (n > 12 && !strcmp(name + n - 12, ".safetensors")) ||
           (n > 23 && !strcmp(name + n - 23, ".safetensors.index.json"));
}

static void stale_removed(void *user, const char *path) {
    (void)user;
    cli_warn("removed %s, a temporary left by an interrupted shrink run", path);
}

/* The folder a temporary of output `path` goes to (malloc'd). */
static char *out_folder(const char *path, cli_io_role role) {
    if (role == CLI_OUT_IN_DIR) return strdup(path);
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    while (n > 0 && path[n - 1] != '/') n--;
    if (n == 0) return strdup(".");
    return n == 1 ? strdup("/") : strndup(path, n - 1);
}

static int check_pair(const cli_io *in, const cli_io *out) {
    struct stat si, so;
    if (stat(in->path, &si) != 0) return CLI_OK;   /* the command says "no such file" later */
    int rc = CLI_OK;
    char *ci = canon_path(in->path), *co = canon_path(out->path);
    if (!ci || !co) goto done;
    if (out->role == CLI_OUT) {
        bool same = stat(out->path, &so) == 0 && so.st_dev == si.st_dev && so.st_ino == si.st_ino;
        if (same || !strcmp(ci, co))
            rc = cli_fail("%s '%s' is the input %s '%s' (the same file): refusing to overwrite "
                          "an input (nothing was written)", out->arg, out->path, in->arg,
                          in->path);
        else if (S_ISDIR(si.st_mode)) {
            const char *slash = strrchr(co, '/');
            size_t dlen = slash ? (size_t)(slash - co) : 0;
            if (slash && strlen(ci) == (dlen ? dlen : 1) && !strncmp(ci, co, dlen ? dlen : 1) &&
                model_file_name(slash + 1) && stat(out->path, &so) == 0)
                rc = cli_fail("%s '%s' would replace a file of the model folder %s '%s': "
                              "refusing to overwrite an input (nothing was written)", out->arg,
                              out->path, in->arg, in->path);
        }
    } else if (out->role == CLI_OUT_DIR) {
        if (path_within(ci, co))
            rc = cli_fail("%s '%s' %s %s '%s': the output folder is replaced as a whole, "
                          "refusing to destroy an input (nothing was written)", out->arg,
                          out->path, !strcmp(ci, co) ? "is" : "holds", in->arg, in->path);
    }
done:
    free(ci);
    free(co);
    return rc;
}

int cli_check_io(const cli_io *io, int n) {
    for (int i = 0; i < n; i++) {
        struct stat sb;
        if (!io[i].path || io[i].role != CLI_IN || stat(io[i].path, &sb) != 0) continue;
        if (!S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode))
            return cli_fail("%s '%s' is %s; shrink reads its inputs only from regular files and "
                            "folders", io[i].arg, io[i].path, kind_name(sb.st_mode));
        cli_manifest_input(io[i].arg, io[i].path);
    }
    for (int o = 0; o < n; o++) {
        if (!io[o].path || io[o].role == CLI_IN) continue;
        struct stat sb;
        bool want_dir = io[o].role != CLI_OUT;
        if (!*io[o].path) return cli_fail("%s: empty path", io[o].arg);
        if (lstat(io[o].path, &sb) == 0 && (want_dir ? !S_ISDIR(sb.st_mode)
                                                      : !S_ISREG(sb.st_mode)))
            return cli_fail("%s '%s' exists and is %s; shrink writes %s only%s (give another "
                            "path)", io[o].arg, io[o].path, kind_name(sb.st_mode),
                            want_dir ? "a folder" : "regular files",
                            want_dir ? "" : ", never through a link, a FIFO or a device");
        for (int i = 0; i < n; i++) {
            if (!io[i].path || io[i].role != CLI_IN) continue;
            int rc = check_pair(&io[i], &io[o]);
            if (rc != CLI_OK) return rc;
        }
    }
    for (int o = 0; o < n; o++) {
        if (!io[o].path || io[o].role == CLI_IN) continue;
        char *dir = out_folder(io[o].path, io[o].role);
        if (dir) shrink_remove_stale_temporaries(dir, stale_removed, NULL);
        free(dir);
    }
    return CLI_OK;
}

/* ==== text files ========================================================================== */

/* Length of the valid UTF-8 sequence at s[0..n) (n >= 1), or 0 if it is not one. */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned c  = s[0];
    unsigned lo = 0x80, hi = 0xBF;  /* allowed range of the second byte */
    size_t   len;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) len = 3;
    else if (c >= 0xF0 && c <= 0xF4) len = 4;
    else return 0;
    if (c == 0xE0) lo = 0xA0;       /* overlong 3-byte forms */
    if (c == 0xED) hi = 0x9F;       /* UTF-16 surrogates */
    if (c == 0xF0) lo = 0x90;       /* overlong 4-byte forms */
    if (c == 0xF4) hi = 0x8F;       /* above U+10FFFF */
    if (len > n || s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k < len; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    return len;
}

size_t cli_utf8_valid_prefix(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t               i = 0;
    while (i < n) {
        size_t len = utf8_seq_len(s + i, n - i);
        if (len == 0) return i;
        i += len;
    }
    return n;
}

int cli_read_text(const char *path, char **text, size_t *len) {
    *text = NULL;
    *len  = 0;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return cli_fail("%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return cli_fail("%s: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return cli_fail("%s: is %s, not a text file (shrink reads text only from regular "
                        "files)", path, kind_name(sb.st_mode));
    }
    if ((uint64_t)sb.st_size > CLI_TEXT_MAX) {
        close(fd);
        return cli_fail("%s: %lld bytes, more than the %zu bytes a text file may have", path,
                        (long long)sb.st_size, CLI_TEXT_MAX);
    }
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    size_t cap = (size_t)sb.st_size + 1, n = 0;
    char  *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return cli_fail("%s: out of memory reading the file", path);
    }
    /* read at most the size fstat gave: a file that grows meanwhile is read up to there */
    while (n + 1 < cap) {
        ssize_t got = read(fd, buf + n, cap - 1 - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return cli_fail("%s: read error: %s", path, strerror(e));
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    close(fd);
    buf[n] = '\0';
    size_t bad = cli_utf8_valid_prefix(buf, n);
    if (bad < n) {
        unsigned byte = (unsigned char)buf[bad];
        free(buf);
        return cli_fail("%s: not UTF-8 text: invalid byte 0x%02X at byte offset %zu", path, byte,
                        bad);
    }
    const char *nul = memchr(buf, '\0', n);
    if (nul) {
        size_t at = (size_t)(nul - buf);
        free(buf);
        return cli_fail("%s: not a text file: NUL byte at byte offset %zu", path, at);
    }
    *text = buf;
    *len  = n;
    return CLI_OK;
}

/* ==== JSON output ========================================================================= */

static void json_sep(cli_json *j) {
    if (!j->first[j->depth]) fputc(',', j->f);
    j->first[j->depth] = false;
}

void cli_json_begin(cli_json *j, FILE *f) {
    memset(j, 0, sizeof *j);
    j->f = f;
    fputc('{', f);
    j->first[0] = true;
}

void cli_json_end(cli_json *j) {
    fputs("}\n", j->f);
    fflush(j->f);
}

/* A quoted, escaped string without a separator. */
static void json_write_str(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t len = utf8_seq_len((const unsigned char *)s + i, n - i);
            if (len == 0) {
                fputs("\\ufffd", f);
                i++;
            } else {
                fwrite(s + i, 1, len, f);
                i += len;
            }
            continue;
        }
        switch (c) {
        case '"':  fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20 || c == 0x7F) fprintf(f, "\\u%04x", c);
            else fputc(c, f);
        }
        i++;
    }
    fputc('"', f);
}

void cli_json_key(cli_json *j, const char *key) {
    json_sep(j);
    json_write_str(j->f, key, strlen(key));
    fputc(':', j->f);
    j->first[j->depth] = true;   /* the value that follows needs no comma */
}

void cli_json_strn(cli_json *j, const char *s, size_t n) {
    json_sep(j);
    json_write_str(j->f, s, n);
}

void cli_json_str(cli_json *j, const char *s) {
    if (!s) cli_json_null(j);
    else cli_json_strn(j, s, strlen(s));
}

void cli_json_int(cli_json *j, int64_t v) {
    json_sep(j);
    fprintf(j->f, "%lld", (long long)v);
}

void cli_json_u64(cli_json *j, uint64_t v) {
    json_sep(j);
    fprintf(j->f, "%llu", (unsigned long long)v);
}

void cli_json_num(cli_json *j, double v) {
    json_sep(j);
    char b[40];
    if (isfinite(v)) fputs(shrink_fmt_double(b, sizeof b, v), j->f);   /* shortest round trip */
    else fputs("null", j->f);
}

void cli_json_bool(cli_json *j, bool v) {
    json_sep(j);
    fputs(v ? "true" : "false", j->f);
}

void cli_json_null(cli_json *j) {
    json_sep(j);
    fputs("null", j->f);
}

static void json_open(cli_json *j, char c) {
    json_sep(j);
    fputc(c, j->f);
    if (j->depth + 1 < (int)(sizeof j->first / sizeof j->first[0])) j->depth++;
    j->first[j->depth] = true;
}

static void json_close(cli_json *j, char c) {
    fputc(c, j->f);
    if (j->depth > 0) j->depth--;
}

void cli_json_obj_begin(cli_json *j) { json_open(j, '{'); }
void cli_json_obj_end(cli_json *j) { json_close(j, '}'); }
void cli_json_arr_begin(cli_json *j) { json_open(j, '['); }
void cli_json_arr_end(cli_json *j) { json_close(j, ']'); }

/* ==== progress ============================================================================ */

void cli_progress_start(cli_progress *p, const char *label, const cli_common *common) {
    memset(p, 0, sizeof *p);
    p->tty     = isatty(STDERR_FILENO);
    p->enabled = p->tty || common->progress;
    p->label   = label;
    p->t0      = shrink_time();
    p->t_last  = -1;
}

void cli_progress_update(cli_progress *p, int64_t done, int64_t total) {
    if (!p->enabled) return;
    double now = shrink_time();
    /* at most 10 lines a second on a terminal, one a second into a file */
    double every = p->tty ? 0.1 : 1.0;
    if (done < total && p->t_last >= 0 && now - p->t_last < every) return;
    p->t_last = now;
    double el = now - p->t0;
    fprintf(stderr, "%s%s %lld/%lld  %.1f s", p->tty ? "\r" : "", p->label, (long long)done,
            (long long)total, el);
    if (done > 0 && done < total)
        fprintf(stderr, "  ETA %.1f s", el / (double)done * (double)(total - done));
    fputs(p->tty ? "\033[K" : "\n", stderr);
    fflush(stderr);
}

void cli_progress_end(cli_progress *p) {
    if (p->enabled && p->tty && p->t_last >= 0) fputc('\n', stderr);
    p->enabled = false;
}

void cli_progress_cb(void *user, int64_t done, int64_t total) {
    cli_progress_update((cli_progress *)user, done, total);
}

void cli_phase_progress_cb(void *user, int phase, int64_t done, int64_t total) {
    cli_phase_progress *q = user;
    if (phase != q->phase) {
        if (q->phase == 0) cli_progress_end(&q->calib);
        if (phase == 0) cli_progress_start(&q->calib, q->calib_label, q->common);
        else cli_progress_start(&q->write, q->write_label, q->common);
        q->phase = phase;
    }
    if (phase == 0) {
        cli_progress_update(&q->calib, done, total);
    } else {
        /* whole MiB done (the total rounded up; the last call shows total/total) */
        int64_t mib = 1 << 20, d = done >= total ? (total + mib - 1) / mib : done / mib;
        if (d == q->last) return;
        q->last = d;
        cli_progress_update(&q->write, d, (total + mib - 1) / mib);
    }
}

void cli_phase_progress_end(cli_phase_progress *q) {
    if (q->phase == 0) cli_progress_end(&q->calib);
    if (q->phase == 1) cli_progress_end(&q->write);
}

/* ==== formatting ========================================================================== */

const char *cli_fmt_bytes(char *buf, size_t cap, uint64_t bytes) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int    u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0) snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
    else snprintf(buf, cap, "%.2f %s", v, units[u]);
    return buf;
}

const char *cli_s(long long n) { return n == 1 ? "" : "s"; }

void cli_json_speed(cli_json *j, const char *test, bool have, double median, double mean,
                    double sd, double min, double max) {
    static const char *const suffix[] = {"", "_mean", "_sd", "_min", "_max"};
    const double             v[]      = {median, mean, sd, min, max};
    for (int k = 0; k < 5; k++) {
        char key[64];
        snprintf(key, sizeof key, "%s_tokens_per_s%s", test, suffix[k]);
        cli_json_key(j, key);
        if (have) cli_json_num(j, v[k]);
        else cli_json_null(j);
    }
}

bool cli_speed_spread_warn(const char *who, const char *test, double median, double sd,
                           int reps) {
    double rel = median > 0 ? sd / median : 0;
    if (rel <= CLI_SPREAD_WARN) return false;
    fprintf(stderr, "shrink: warning: %s%s%s: the %d runs spread by %.0f%% of the median "
            "(sd %.3g tokens/s, over %.0f%%): the machine was busy or the test is too short; "
            "rerun with more --reps or a longer test\n", who ? who : "", who ? " " : "", test,
            reps, 100 * rel, sd, 100 * CLI_SPREAD_WARN);
    return true;
}

double cli_bits_per_weight(const shrink_model *m) {
    shrink_model_info mi;
    double            bytes = 0, elems = 0;
    shrink_model_get_info(m, &mi);
    for (int64_t i = 0; i < mi.n_tensors; i++) {
        shrink_tensor_info t;
        if (shrink_model_tensor(m, i, &t) != SHRINK_OK) continue;
        double e = 1;
        for (int d = 0; d < t.n_dims; d++) e *= (double)t.shape[d];
        bytes += (double)t.bytes;
        elems += e;
    }
    return elems > 0 ? 8.0 * bytes / elems : 0.0;
}

/* ==== a command in a child process ======================================================== */

int cli_run_child(int (*run)(int argc, char **argv), int argc, char **argv, const char *out_file) {
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return cli_fail("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(CLI_ERR);
        if (out_file) {
            int fd = open(out_file, O_WRONLY | O_CREAT | O_TRUNC, 0666);
            if (fd < 0) {
                fprintf(stderr, "shrink: %s: cannot write: %s\n", out_file, strerror(errno));
                _exit(CLI_ERR);
            }
            dup2(fd, 1);
            close(fd);
        }
        int rc = run(argc, argv);
        fflush(stdout);
        fflush(stderr);
        _exit(rc);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return cli_fail("%s: wait: %s", argv[0], strerror(errno));
    if (WIFSIGNALED(status))
        return cli_fail("%s: the process died of signal %d (%s)", argv[0], WTERMSIG(status),
                        strsignal(WTERMSIG(status)));
    return WEXITSTATUS(status);
}
