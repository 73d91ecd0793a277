/*
 * recipe.c - `shrink recipe run RECIPE [IN] OUT [--resume]` and `shrink recipe check RECIPE
 * [IN]`: a recipe file (docs/recipes.md; syntax in recipe_parse.c) is an ordered list of
 * shrink commands with their options, and gates on measured metrics after any of them.
 *
 * Each step runs through the same function as typing the command (cmd_student, cmd_distill,
 * cmd_quantize, ...), in a forked child (no exec), with the previous step's model as its input and
 * OUT/step-N-NAME/ as its output folder; its stdout goes to a file there, so the model, its
 * manifest (command = the step's command line, the recipe among the inputs) and the step's
 * record step.json sit together. A gate runs `shrink compare` (same code path) of the step's
 * model against the recipe's input on the recipe's text, or reads the step's file size or the
 * training metrics in its manifest; a failing gate stops the run with the measured value.
 *
 * OUT/run.json names the run (recipe SHA-256, input path, threads, the date every manifest
 * carries); an OUT holding another run, or files but no run, is refused. step.json is written
 * last (atomically): a step without it is redone from its start on --resume, so a run killed
 * at any point and resumed writes the same bytes as one never interrupted.
 * SHRINK_RECIPE_KILL=N:start|output|done raises SIGKILL at that point of step N (tests).
 */
#include "cli.h"
#include "recipe_parse.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ==== the steps =========================================================================== */

typedef enum layout {
    L_IN_OUT,    /* cmd IN OUT/model.gguf */
    L_TRAIN,     /* train IN --out DIR --to gguf -> DIR/model.gguf */
    L_DISTILL,   /* distill --teacher T --student IN --out DIR --to gguf -> DIR/model.gguf */
    L_LORA,      /* lora IN -o DIR/adapter.gguf (the model stays IN) */
    L_MERGE,     /* merge IN --lora ADAPTER -o DIR/model.gguf */
    L_COMPARE,   /* compare INPUT MODELS... --text TEXT --json > DIR/compare.json */
    L_TO,        /* plan IN --to DIR/model.gguf */
    L_TRY,       /* consecutive `try` lines: alternatives, the smallest passing its gates kept */
} layout;

typedef struct step_kind {
    const char *name;
    int (*run)(int argc, char **argv);
    layout      lay;
    const char *reserved;   /* options the runner sets, space separated */
} step_kind;

static const step_kind kinds[] = {
    {"student",     cmd_student,     L_IN_OUT,  "--to"},
    {"distill",     cmd_distill,     L_DISTILL, "--teacher --student --out --to --resume"},
    {"train",       cmd_train,       L_TRAIN,   "--out --to --resume"},
    {"prune",       cmd_prune,       L_IN_OUT,  "--to"},
    {"quantize",    cmd_quantize,    L_IN_OUT,  "--to --list"},
    {"lowrank",     cmd_lowrank,     L_IN_OUT,  "--to"},
    {"drop-layers", cmd_drop_layers, L_IN_OUT,  "--to"},
    {"convert",     cmd_convert,     L_IN_OUT,  "--to"},
    {"lora",        cmd_lora,        L_LORA,    "--out --resume --ckpt-dir"},
    {"merge",       cmd_merge,       L_MERGE,   "--output --to"},
    {"compare",     cmd_compare,     L_COMPARE, ""},
    {"plan",        cmd_plan,        L_TO,      "--to --recipe"},
};
static const step_kind try_kind = {"try", NULL, L_TRY, ""};
enum { N_KINDS = sizeof kinds / sizeof kinds[0] };
/* set for every step by the runner */
static const char *const always_reserved = "--threads --json --help --model --no-manifest --lora";

/* The gates' metrics: from `shrink compare --json` (the model's row; key, scale), the file's
 * size, or the step's manifest (train, distill, lora). */
typedef enum msrc { M_COMPARE, M_FILE, M_MANIFEST } msrc;
typedef struct metric {
    const char *name;
    msrc        src;
    const char *key;     /* compare JSON key or manifest quality key */
    double      scale;
    bool        speed;   /* needs compare's speed test */
    const char *what;
} metric;

static const metric metrics[] = {
    {"kl",         M_COMPARE,  "kl_mean",         1,    false, "mean KL(input || model), nats"},
    {"kl_p99",     M_COMPARE,  "kl_p99",          1,    false, "99th percentile of the KL"},
    {"kl_max",     M_COMPARE,  "kl_max",          1,    false, "largest per-token KL"},
    {"ppl",        M_COMPARE,  "ppl",             1,    false, "perplexity on the text"},
    {"dppl",       M_COMPARE,  "delta_ppl",       1,    false, "ppl - the input's ppl"},
    {"dppl_pct",   M_COMPARE,  "delta_ppl_pct",   1,    false, "100 (ppl / input's ppl - 1)"},
    {"top1",       M_COMPARE,  "top1_same_pct",   0.01, false, "top-1 agreement, a fraction"},
    {"bpw",        M_COMPARE,  "bits_per_weight", 1,    false, "bits per weight as stored"},
    {"tg_tokens_per_s", M_COMPARE, "tg_tokens_per_s", 1, true, "decode tokens/s (median)"},
    {"pp_tokens_per_s", M_COMPARE, "pp_tokens_per_s", 1, true, "prompt tokens/s (median)"},
    {"bytes",      M_FILE,     NULL,              1,    false, "size of the model on disk"},
    {"val_loss",   M_MANIFEST, "val_loss",        1,    false, "last validation loss"},
    {"val_kl",     M_MANIFEST, "val_kl",          1,    false, "last validation KL"},
    {"train_loss", M_MANIFEST, "train_loss",      1,    false, "last training loss"},
};
enum { N_METRICS = sizeof metrics / sizeof metrics[0] };

enum { MAX_STEPS = 64, MAX_GATES = 16, MAX_OPTS = 128, MAX_ALTS = 64 };

typedef struct rgate {
    rp_gate        g;
    const metric  *m;
    const char    *text;   /* as written */
    int            line;
} rgate;

typedef struct rstep {
    const step_kind *k;
    int              line;
    const char      *opt[MAX_OPTS];   /* "--scheme", "q4_K_M", ... (point into the parse) */
    int              n_opt;
    rgate            gate[MAX_GATES];
    int              n_gate;
    int              lora_step;        /* merge: the lora step it merges (index) */
    char             dir[64];          /* "step-3-quantize"; an alternative: "alt-2-plan" */
    int              alt0, n_alt;      /* try: its alternatives, recipe.alt[alt0 .. +n_alt) */
} rstep;

typedef struct recipe {
    const char *path;
    rp_file     f;
    const char *input, *teacher, *text;
    int64_t     tokens;
    rstep       step[MAX_STEPS];
    int         n;
    rstep       alt[MAX_ALTS];   /* the alternatives of the try steps */
    int         n_alt;
} recipe;

/* ==== checking a recipe =================================================================== */

static int rfail(const recipe *r, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int rfail(const recipe *r, int line, int col, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "shrink recipe: %s:%d:%d: ", r->path, line, col);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_ERR;
}

/* The nearest of names[0..n) (stride bytes apart) to s, or NULL if none is close. */
static const char *nearest(const char *s, const void *names, int n, size_t stride) {
    const char *best = NULL;
    int         best_d = 1 << 20;
    size_t      len = strlen(s);
    for (int i = 0; i < n; i++) {
        const char *c = *(const char *const *)((const char *)names + (size_t)i * stride);
        int         d = cli_edit_distance(s, len, c, strlen(c));
        if (d < best_d) best_d = d, best = c;
    }
    int lim = len / 3 > 2 ? (int)(len / 3) : 2;
    return best && best_d <= lim && best_d < (int)len ? best : NULL;
}

static bool word_in(const char *list, const char *w) {
    size_t n = strlen(w);
    for (const char *p = list; (p = strstr(p, w)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0)) return true;
    return false;
}

/* The option table of a command (cli_probe: the command answers as to --help, silently). */
static const cli_spec *spec_of(const step_kind *k) {
    const cli_spec *s = NULL;
    char *argv[] = {(char *)k->name, NULL};
    cli_probe = &s;
    k->run(1, argv);
    cli_probe = NULL;
    return s;
}

static bool value_ok(const cli_opt *o, const char *v) {
    char *end;
    errno = 0;
    switch (o->kind) {
    case CLI_OPT_INT: {
        long long x = strtoll(v, &end, 10);
        return !errno && end != v && !*end && x >= (long long)o->min && x <= (long long)o->max;
    }
    case CLI_OPT_U64:
        strtoull(v, &end, 10);
        return !errno && end != v && !*end && !strchr(v, '-');
    case CLI_OPT_FLOAT: {
        double x = strtod(v, &end);
        return !errno && end != v && !*end && isfinite(x) && x >= o->min && x <= o->max;
    }
    default:
        return true;
    }
}

static int check_step_opts(recipe *r, rstep *s, const rp_stmt *st) {
    const cli_spec *sp = spec_of(s->k);
    if (!sp) return rfail(r, st->line, st->w[1].col, "internal: no option table for %s", s->k->name);
    for (int i = 2; i < st->n; i++) {
        const rp_word *w = &st->w[i];
        char name[80];
        if (strlen(w->key) > 60 || !*w->key)
            return rfail(r, st->line, w->col, "'%s' is not an option name", w->key);
        snprintf(name, sizeof name, "--%s", w->key + strspn(w->key, "-"));
        for (char *p = name + 2; *p; p++)
            if (*p == '_') *p = '-';
        bool common;
        const cli_opt *o = cli_find_opt(sp, name, strlen(name), &common);
        if (!o || o->name[1] != '-') {
            const cli_opt *c = cli_closest_opt(sp, name + 2, strlen(name + 2));
            if (c) return rfail(r, st->line, w->col, "%s has no option '%s'; did you mean %s?",
                                s->k->name, w->key, c->name + 2);
            return rfail(r, st->line, w->col,
                         "%s has no option '%s' (shrink %s --help lists them)", s->k->name,
                         w->key, s->k->name);
        }
        if (word_in(always_reserved, o->name) || word_in(s->k->reserved, o->name) ||
            o->kind == CLI_OPT_POS)
            return rfail(r, st->line, w->col,
                         "%s: option '%s' is set by the recipe run (inputs, outputs, threads)",
                         s->k->name, o->name + 2);
        if (o->kind == CLI_OPT_FLAG && w->val)
            return rfail(r, st->line, w->vcol, "%s: option '%s' is a flag: write it alone, "
                         "without '=%s'", s->k->name, o->name + 2, w->val);
        if (o->kind != CLI_OPT_FLAG && !w->val)
            return rfail(r, st->line, w->col, "%s: option '%s' needs a value: %s=%s",
                         s->k->name, o->name + 2, o->name + 2, o->metavar ? o->metavar : "VALUE");
        if (w->val && !value_ok(o, w->val)) {
            if (o->kind == CLI_OPT_FLOAT)
                return rfail(r, st->line, w->vcol, "%s: %s='%s' is not a number in [%g, %g]",
                             s->k->name, o->name + 2, w->val, o->min, o->max);
            return rfail(r, st->line, w->vcol, "%s: %s='%s' is not an integer%s", s->k->name,
                         o->name + 2, w->val, o->kind == CLI_OPT_U64 ? " >= 0" : " in range");
        }
        if (s->n_opt + 2 > MAX_OPTS) return rfail(r, st->line, w->col, "too many options");
        s->opt[s->n_opt++] = o->name;
        if (w->val) s->opt[s->n_opt++] = w->val;
    }
    return CLI_OK;
}

static bool step_has_model(const rstep *s) {
    return s->k->lay != L_LORA && s->k->lay != L_COMPARE;
}

/* Whether step s (every alternative of a try step) is train or distill, or, lora too: the
 * steps whose manifest records the training metrics. */
static bool step_trains(const recipe *r, const rstep *s) {
    if (s->k->lay == L_TRY) {
        for (int j = 0; j < s->n_alt; j++)
            if (!step_trains(r, &r->alt[s->alt0 + j])) return false;
        return s->n_alt > 0;
    }
    const char *n = s->k->name;
    return !strcmp(n, "train") || !strcmp(n, "distill") || !strcmp(n, "lora");
}

static int check_gate(recipe *r, const rp_stmt *st) {
    const rp_gate *g = &st->gate;
    const char *names[N_METRICS];
    for (int i = 0; i < N_METRICS; i++) names[i] = metrics[i].name;
    const metric *m = NULL;
    for (int i = 0; i < N_METRICS; i++)
        if (!strcmp(metrics[i].name, g->metric)) m = &metrics[i];
    if (!m) {
        const char *c = nearest(g->metric, names, N_METRICS, sizeof names[0]);
        if (c) return rfail(r, st->line, g->mcol, "unknown metric '%s'; did you mean %s?",
                            g->metric, c);
        return rfail(r, st->line, g->mcol, "unknown metric '%s' (the metrics: kl, kl_p99, "
                     "kl_max, ppl, dppl, dppl_pct, top1, bpw, tg_tokens_per_s, "
                     "pp_tokens_per_s, bytes, val_loss, val_kl, train_loss)", g->metric);
    }
    if (!r->n) return rfail(r, st->line, 1, "a gate checks the step before it: this one comes "
                            "before the first step");
    rstep *s = &r->step[r->n - 1];
    if (m->src == M_MANIFEST) {
        const char *n = s->k->name;
        if (!step_trains(r, s))
            return rfail(r, st->line, g->mcol, "gate %s: step %d (%s) does not measure %s; "
                         "train, distill and lora record it%s", m->name, r->n, n, m->name,
                         s->k->lay == L_TRY ? " (every alternative must)" : "");
        if (g->uses_base)
            return rfail(r, st->line, g->vcol, "gate %s: the input model has no %s to "
                         "compare with: give a number", m->name, m->name);
    } else {
        if (!step_has_model(s))
            return rfail(r, st->line, g->mcol, "gate %s: step %d (%s) writes no model to "
                         "measure; put the gate after a step that does%s", m->name, r->n,
                         s->k->name, s->k->lay == L_LORA ? " (merge)" : "");
        if (m->src == M_COMPARE && !r->text)
            return rfail(r, st->line, g->mcol, "gate %s is measured by shrink compare on a "
                         "text: add a line `text FILE` before it", m->name);
    }
    if (s->n_gate >= MAX_GATES) return rfail(r, st->line, 1, "more than %d gates", MAX_GATES);
    rgate *rg = &s->gate[s->n_gate++];
    rg->g = *g;
    rg->m = m;
    rg->text = st->gate_text;
    rg->line = st->line;
    return CLI_OK;
}

static const char *const settings[] = {"input", "teacher", "text", "tokens", "step", "gate",
                                       "try"};

/* Parses and checks the recipe at path; in_override replaces its `input`. */
static int recipe_load(recipe *r, const char *path, const char *in_override) {
    char  *src = NULL;
    size_t len = 0;
    char   err[700];
    memset(r, 0, sizeof *r);
    r->path = path;
    r->tokens = 4096;
    int rc = cli_read_text(path, &src, &len);
    if (rc != CLI_OK) return rc;
    bool ok = rp_parse(src, len, path, &r->f, err, sizeof err);
    free(src);
    if (!ok) {
        fprintf(stderr, "shrink recipe: %s\n", err);
        return CLI_ERR;
    }
    for (int i = 0; i < r->f.n; i++) {
        const rp_stmt *st = &r->f.st[i];
        const char    *kw = st->w[0].key;
        if (st->w[0].val) return rfail(r, st->line, 1, "a line starts with a keyword");
        if (!strcmp(kw, "gate")) {
            if ((rc = check_gate(r, st)) != CLI_OK) return rc;
            continue;
        }
        if (!strcmp(kw, "step") || !strcmp(kw, "try")) {
            bool alt = !strcmp(kw, "try");
            if (st->n < 2 || st->w[1].val)
                return rfail(r, st->line, st->n < 2 ? (int)strlen(kw) + 2 : st->w[1].col,
                             "%s needs a command name: %s quantize scheme=q4_K_M", kw, kw);
            const step_kind *k = NULL;
            for (int j = 0; j < N_KINDS; j++)
                if (!strcmp(kinds[j].name, st->w[1].key)) k = &kinds[j];
            if (!k) {
                const char *c = nearest(st->w[1].key, kinds, N_KINDS, sizeof kinds[0]);
                if (c) return rfail(r, st->line, st->w[1].col, "unknown step '%s'; did you "
                                    "mean %s?", st->w[1].key, c);
                return rfail(r, st->line, st->w[1].col, "unknown step '%s' (the steps: student, "
                             "distill, train, prune, quantize, lowrank, drop-layers, convert, "
                             "lora, merge, compare, plan)", st->w[1].key);
            }
            if (alt && (k->lay == L_LORA || k->lay == L_MERGE || k->lay == L_COMPARE))
                return rfail(r, st->line, st->w[1].col, "try %s: an alternative must write a "
                             "model from the previous one (not lora, merge or compare)", k->name);
            /* consecutive try lines are one step: a new one after anything else */
            bool more = alt && i > 0 && !strcmp(r->f.st[i - 1].w[0].key, "try");
            if (!more && r->n >= MAX_STEPS)
                return rfail(r, st->line, 1, "more than %d steps", MAX_STEPS);
            if (alt && r->n_alt >= MAX_ALTS)
                return rfail(r, st->line, 1, "more than %d alternatives", MAX_ALTS);
            if (alt && !more) {
                rstep *t = &r->step[r->n];
                t->k = &try_kind;
                t->line = st->line;
                t->lora_step = -1;
                t->alt0 = r->n_alt;
                snprintf(t->dir, sizeof t->dir, "step-%d-try", r->n + 1);
                r->n++;
            }
            rstep *s = alt ? &r->alt[r->n_alt] : &r->step[r->n];
            s->k = k;
            s->line = st->line;
            s->lora_step = -1;
            if (alt)
                snprintf(s->dir, sizeof s->dir, "alt-%d-%s", r->step[r->n - 1].n_alt + 1, k->name);
            else
                snprintf(s->dir, sizeof s->dir, "step-%d-%s", r->n + 1, k->name);
            if ((rc = check_step_opts(r, s, st)) != CLI_OK) return rc;
            if (k->lay == L_MERGE) {
                for (int j = r->n - 1; j >= 0 && s->lora_step < 0; j--)
                    if (r->step[j].k->lay == L_LORA) s->lora_step = j;
                if (s->lora_step < 0)
                    return rfail(r, st->line, st->w[1].col, "merge merges the adapter of a "
                                 "lora step before it: there is none");
            }
            if (k->lay == L_COMPARE && !r->text) {
                bool has_text = false;
                for (int j = 0; j < s->n_opt; j++) has_text |= !strcmp(s->opt[j], "--text");
                if (!has_text)
                    return rfail(r, st->line, st->w[1].col, "compare needs a text: a line "
                                 "`text FILE` before it, or text=FILE");
            }
            if (alt) {
                r->n_alt++;
                r->step[r->n - 1].n_alt++;
            } else {
                r->n++;
            }
            continue;
        }
        const char **slot = !strcmp(kw, "input") ? &r->input : !strcmp(kw, "teacher") ? &r->teacher
                            : !strcmp(kw, "text") ? &r->text : NULL;
        if (slot || !strcmp(kw, "tokens")) {
            if (st->n != 2 || st->w[1].val)
                return rfail(r, st->line, st->n > 2 ? st->w[2].col : 1,
                             "%s takes one value: %s %s", kw, kw,
                             !strcmp(kw, "tokens") ? "N" : "PATH");
            if (r->n && slot != &r->text)
                return rfail(r, st->line, 1, "%s comes before the first step", kw);
            if (slot) {
                if (*slot) return rfail(r, st->line, 1, "%s given twice", kw);
                *slot = st->w[1].key;
            } else {
                char *end;
                errno = 0;
                long long v = strtoll(st->w[1].key, &end, 10);
                if (errno || *end || v < 1)
                    return rfail(r, st->line, st->w[1].col, "tokens: '%s' is not a positive "
                                 "integer", st->w[1].key);
                r->tokens = v;
            }
            continue;
        }
        const char *c = nearest(kw, settings, 7, sizeof settings[0]);
        if (c) return rfail(r, st->line, 1, "unknown keyword '%s'; did you mean %s?", kw, c);
        return rfail(r, st->line, 1, "unknown keyword '%s' (input, teacher, text, tokens, step, "
                     "try, gate)", kw);
    }
    if (in_override) r->input = in_override;
    if (!r->input)
        return rfail(r, 1, 1, "no input model: a line `input PATH`, or IN on the command line");
    if (!r->n) return rfail(r, 1, 1, "no steps (a line `step COMMAND OPTION=VALUE...`)");
    return CLI_OK;
}

/* ==== files of a run ====================================================================== */

static char *pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *pathf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *p = NULL;
    if (vasprintf(&p, fmt, ap) < 0) p = NULL;
    va_end(ap);
    return p;
}

/* Writes text to path atomically (temporary, fsync, rename). */
static int write_atomic(const char *path, const char *text) {
    char *tmp = pathf("%s.tmp", path);
    if (!tmp) return cli_fail("out of memory");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    size_t n = strlen(text);
    bool ok = fd >= 0 && write(fd, text, n) == (ssize_t)n;
    ok = fd >= 0 && fsync(fd) == 0 && ok;
    if (fd >= 0) ok = close(fd) == 0 && ok;
    ok = ok && rename(tmp, path) == 0;
    int e = errno;
    if (!ok) unlink(tmp);
    free(tmp);
    return ok ? CLI_OK : cli_fail("%s: cannot write: %s", path, strerror(e));
}

/* A JSON record built in memory (open_memstream) and written atomically to path. */
typedef struct memjson {
    char    *buf;
    size_t   len;
    FILE    *f;
    cli_json j;
} memjson;

static bool memjson_begin(memjson *m) {
    memset(m, 0, sizeof *m);
    if (!(m->f = open_memstream(&m->buf, &m->len))) return false;
    cli_json_begin(&m->j, m->f);
    return true;
}

static int memjson_write(memjson *m, char *path) {
    cli_json_end(&m->j);
    fclose(m->f);
    int rc = path && m->buf ? write_atomic(path, m->buf) : cli_fail("out of memory");
    free(path);
    free(m->buf);
    return rc;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char  *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4097 > cap) {
            char *b = realloc(buf, cap = (cap + 4097) * 2);
            if (!b) break;
            buf = b;
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (!k) break;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    return buf;
}

/* The number after "key": in text from `from` on; NAN if absent or null. */
static double json_num_after(const char *text, const char *key) {
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = text ? strstr(text, pat) : NULL;
    if (!p) return NAN;
    p += strlen(pat);
    while (*p == ' ') p++;
    char *end;
    double v = strtod(p, &end);
    return end == p ? NAN : v;
}

/* The string after "key": (no escapes expected: paths and hashes written by this file). */
static bool json_str_after(const char *text, const char *key, char *out, size_t cap) {
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = text ? strstr(text, pat) : NULL;
    if (!p) return false;
    p += strlen(pat);
    size_t i = 0;
    while (*p && *p != '"' && i + 1 < cap) {
        if (*p == '\\' && p[1]) p++;
        out[i++] = *p++;
    }
    out[i] = 0;
    return *p == '"';
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static int remove_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return errno == ENOENT ? CLI_OK : cli_fail("%s: %s", path, strerror(errno));
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return cli_fail("%s: cannot remove the unfinished step: %s", path, strerror(errno));
    return CLI_OK;
}

static uint64_t path_bytes(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) return 0;
    if (!S_ISDIR(sb.st_mode)) return (uint64_t)sb.st_size;
    uint64_t total = 0;
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p = pathf("%s/%s", path, e->d_name);
        if (p && stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) total += (uint64_t)sb.st_size;
        free(p);
    }
    closedir(d);
    return total;
}

static bool dir_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return false;
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = false;
    closedir(d);
    return empty;
}

static double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void kill_hook(int step, const char *point) {
    const char *k = getenv("SHRINK_RECIPE_KILL");
    char want[64];
    snprintf(want, sizeof want, "%d:%s", step, point);
    if (k && !strcmp(k, want)) {
        fflush(stdout);
        fflush(stderr);
        raise(SIGKILL);
    }
}

/* ==== running ============================================================================= */

#define MAX_ARGV (MAX_OPTS + 48)
typedef struct argvec {
    char *v[MAX_ARGV];
    int   n;
} argvec;

static void av_add(argvec *a, const char *s) {
    if (a->n < MAX_ARGV - 1) a->v[a->n++] = strdup(s ? s : "");
}
static void av_free(argvec *a) {
    for (int i = 0; i < a->n; i++) free(a->v[i]);
    a->n = 0;
}
static bool av_ok(const argvec *a) {
    for (int i = 0; i < a->n; i++)
        if (!a->v[i]) return false;
    return a->n < MAX_ARGV - 1;
}

static int run_captured(int (*run)(int, char **), argvec *a, const char *out_file) {
    a->v[a->n] = NULL;
    return cli_run_child(run, a->n, a->v, out_file);
}

static void echo(const char *label, const argvec *a) {
    fprintf(stderr, "%s: $ shrink", label);
    for (int i = 0; i < a->n; i++) {
        bool q = !*a->v[i] || strpbrk(a->v[i], " \t'\"$`\\*?;&|<>()");
        fprintf(stderr, q ? " '%s'" : " %s", a->v[i]);
    }
    fputc('\n', stderr);
}

typedef struct run_state {
    const recipe *r;
    const char   *out;
    const char   *input;      /* as given */
    const char   *teacher;
    int           threads;
    bool          progress;     /* --progress: passed to every step */
    char         *model[MAX_STEPS];     /* each step's model (NULL: none) */
    char         *adapter[MAX_STEPS];
    char         *alt_model[MAX_ALTS];  /* each alternative's model (NULL: not run) */
    double        gate_value[MAX_STEPS][MAX_GATES];
    double        gate_limit[MAX_STEPS][MAX_GATES];
    bool          gate_pass[MAX_STEPS][MAX_GATES];
    bool          resumed[MAX_STEPS];
    bool          measured[MAX_STEPS];  /* its gates were measured (or read back on resume) */
    int           chosen[MAX_STEPS];    /* try: the alternative kept (0-based) */
    double        seconds[MAX_STEPS];
} run_state;

static void add_threads(argvec *a, int threads, bool progress) {
    char b[16];
    snprintf(b, sizeof b, "%d", threads);
    av_add(a, "--threads");
    av_add(a, b);
    if (progress) av_add(a, "--progress");
}

/* The command line of step i (its model input `in`), into a; *model, *adapter: what it writes.
 * s: the step, or one of its alternatives (a try step). */
static void build_cmd(run_state *rs, const rstep *s, int i, const char *in, const char *dir,
                      argvec *a, char **model, char **adapter) {
    *model = *adapter = NULL;
    av_add(a, s->k->name);
    switch (s->k->lay) {
    case L_IN_OUT:
        *model = pathf("%s/model.gguf", dir);
        av_add(a, in);
        av_add(a, *model);
        break;
    case L_TO:   /* its JSON (the measured table) into plan.json, for shrink report */
        *model = pathf("%s/model.gguf", dir);
        av_add(a, in);
        av_add(a, "--to");
        av_add(a, *model);
        av_add(a, "--json");
        break;
    case L_TRY:   /* not a command: run_try builds each alternative's */
        break;
    case L_TRAIN:
    case L_DISTILL:
        *model = pathf("%s/model.gguf", dir);
        if (s->k->lay == L_DISTILL) {
            av_add(a, "--teacher");
            av_add(a, rs->teacher);
            av_add(a, "--student");
        }
        av_add(a, in);
        av_add(a, "--out");
        av_add(a, dir);
        av_add(a, "--to");
        av_add(a, "gguf");
        break;
    case L_LORA:
        *adapter = pathf("%s/adapter.gguf", dir);
        av_add(a, in);
        av_add(a, "--out");
        av_add(a, *adapter);
        break;
    case L_MERGE:
        *model = pathf("%s/model.gguf", dir);
        av_add(a, in);
        av_add(a, "--lora");
        av_add(a, rs->adapter[s->lora_step]);
        av_add(a, "--output");
        av_add(a, *model);
        break;
    case L_COMPARE:
        av_add(a, rs->input);
        for (int j = 0; j < i; j++) {
            const rstep *t = &rs->r->step[j];
            for (int k = 0; t->k->lay == L_TRY && k < t->n_alt; k++)   /* every alternative */
                if (rs->alt_model[t->alt0 + k]) av_add(a, rs->alt_model[t->alt0 + k]);
            if (rs->model[j] && t->k->lay != L_TRY) av_add(a, rs->model[j]);
        }
        if (rs->r->text) {
            av_add(a, "--text");
            av_add(a, rs->r->text);
        }
        char b[32];
        snprintf(b, sizeof b, "%lld", (long long)rs->r->tokens);
        av_add(a, "--tokens");
        av_add(a, b);
        av_add(a, "--json");
        break;
    }
    for (int k = 0; k < s->n_opt; k++) av_add(a, s->opt[k]);
    add_threads(a, rs->threads, rs->progress);
}

/* Measures the gates of step i on its model (or adapter); fills rs->gate_*. Returns CLI_OK,
 * or CLI_ERR when a measurement failed. */
static int measure_gates(run_state *rs, int i, const char *dir) {
    const rstep *s = &rs->r->step[i];
    bool need_cmp = false, need_speed = false;
    for (int g = 0; g < s->n_gate; g++) {
        need_cmp |= s->gate[g].m->src == M_COMPARE;
        need_speed |= s->gate[g].m->speed;
    }
    char *cmp = NULL;
    shrink_manifest *mf = NULL;
    int rc = CLI_OK;
    if (need_cmp) {
        argvec a = {0};
        char b[32];
        char *file = pathf("%s/gates-compare.json", dir);
        av_add(&a, "compare");
        av_add(&a, rs->input);
        av_add(&a, rs->model[i]);
        av_add(&a, "--text");
        av_add(&a, rs->r->text);
        snprintf(b, sizeof b, "%lld", (long long)rs->r->tokens);
        av_add(&a, "--tokens");
        av_add(&a, b);
        av_add(&a, "--json");
        if (!need_speed) av_add(&a, "--no-speed");
        add_threads(&a, rs->threads, rs->progress);
        if (!file || !av_ok(&a)) rc = cli_fail("out of memory");
        if (rc == CLI_OK) {
            char label[96];
            snprintf(label, sizeof label, "recipe step %d gates", i + 1);
            echo(label, &a);
            rc = run_captured(cmd_compare, &a, file);
            if (rc == CLI_OK && !(cmp = slurp(file))) rc = cli_fail("%s: cannot read", file);
        }
        av_free(&a);
        free(file);
    }
    for (int g = 0; g < s->n_gate && rc == CLI_OK; g++) {
        const rgate *rg = &s->gate[g];
        double v = NAN, base = NAN;
        if (rg->m->src == M_COMPARE) {
            const char *second = cmp ? strstr(cmp, "\"is_base\":false") : NULL;
            const char *first = cmp ? strstr(cmp, "\"is_base\":true") : NULL;
            v = json_num_after(second, rg->m->key) * rg->m->scale;
            base = json_num_after(first, rg->m->key) * rg->m->scale;
        } else if (rg->m->src == M_FILE) {
            v = (double)path_bytes(rs->model[i]);
            base = (double)path_bytes(rs->input);
        } else {
            const char *p = rs->model[i] ? rs->model[i] : rs->adapter[i];
            if (!mf && (shrink_manifest_read(p, &mf) != SHRINK_OK || !mf)) {
                rc = cli_fail("%s: gate %s: no manifest to read it from (was the step run with "
                              "--no-manifest?)", p, rg->m->name);
                break;
            }
            for (int32_t q = 0; q < mf->n_quality; q++)
                if (!strcmp(mf->quality[q].key, rg->m->key)) v = mf->quality[q].value;
        }
        rs->gate_value[i][g] = v;
        rs->gate_limit[i][g] = rp_gate_limit(&rg->g, base);
        rs->gate_pass[i][g] = rp_gate_pass(&rg->g, v, base);
        if (isnan(v))
            rc = cli_fail("recipe %s:%d: gate %s: step %d did not report %s", rs->r->path,
                          rg->line, rg->text, i + 1, rg->m->name);
    }
    shrink_manifest_free(mf);
    free(cmp);
    return rc;
}

static void json_gates(cli_json *j, const run_state *rs, int i) {
    const rstep *s = &rs->r->step[i];
    cli_json_key(j, "gates");
    cli_json_arr_begin(j);
    for (int g = 0; g < s->n_gate; g++) {
        cli_json_obj_begin(j);
        cli_json_key(j, "gate");   cli_json_str(j, s->gate[g].text);
        cli_json_key(j, "line");   cli_json_int(j, s->gate[g].line);
        cli_json_key(j, "metric"); cli_json_str(j, s->gate[g].m->name);
        cli_json_key(j, "value");  cli_json_num(j, rs->gate_value[i][g]);
        cli_json_key(j, "limit");  cli_json_num(j, rs->gate_limit[i][g]);
        cli_json_key(j, "pass");   cli_json_bool(j, rs->gate_pass[i][g]);
        cli_json_obj_end(j);
    }
    cli_json_arr_end(j);
}

/* step.json: the record of a finished step, written last. */
static int write_step_json(const run_state *rs, int i, const char *dir, const argvec *a) {
    memjson m;
    if (!memjson_begin(&m)) return cli_fail("out of memory");
    cli_json *j = &m.j;
    char sha[65] = "";
    uint64_t bytes = 0;
    const char *out = rs->model[i] ? rs->model[i] : rs->adapter[i];
    struct stat sb;
    if (out && stat(out, &sb) == 0 && S_ISREG(sb.st_mode)) shrink_sha256_file(out, sha, &bytes);
    cli_json_key(j, "step");    cli_json_int(j, i + 1);
    cli_json_key(j, "name");    cli_json_str(j, rs->r->step[i].k->name);
    cli_json_key(j, "line");    cli_json_int(j, rs->r->step[i].line);
    cli_json_key(j, "command");
    cli_json_arr_begin(j);
    cli_json_str(j, "shrink");
    for (int k = 0; k < a->n; k++) cli_json_str(j, a->v[k]);
    cli_json_arr_end(j);
    cli_json_key(j, "output");  if (out) cli_json_str(j, out); else cli_json_null(j);
    cli_json_key(j, "bytes");   cli_json_u64(j, out ? path_bytes(out) : 0);
    cli_json_key(j, "sha256");  cli_json_str(j, sha);
    cli_json_key(j, "seconds"); cli_json_num(j, rs->seconds[i]);
    json_gates(j, rs, i);   /* a try step: the chosen alternative's, first */
    if (rs->r->step[i].k->lay == L_TRY) {
        cli_json_key(j, "chosen");
        cli_json_int(j, rs->chosen[i] + 1);
        cli_json_key(j, "sweep");
        cli_json_str(j, "sweep.json");
    }
    return memjson_write(&m, pathf("%s/step.json", dir));
}

/* ==== run.json: which run an OUT folder holds ============================================= */

typedef struct run_id {
    char     recipe_sha[65];
    char     input[PATH_MAX];
    int      threads;
    long long date_epoch;
} run_id;

static int write_run_json(const char *out, const recipe *r, const run_id *id) {
    memjson m;
    if (!memjson_begin(&m)) return cli_fail("out of memory");
    cli_json *j = &m.j;
    cli_json_key(j, "shrink_recipe_run"); cli_json_int(j, 1);
    cli_json_key(j, "recipe");            cli_json_str(j, r->path);
    cli_json_key(j, "recipe_sha256");     cli_json_str(j, id->recipe_sha);
    cli_json_key(j, "input");             cli_json_str(j, id->input);
    cli_json_key(j, "threads");           cli_json_int(j, id->threads);
    cli_json_key(j, "date_epoch");        cli_json_int(j, id->date_epoch);
    cli_json_key(j, "version");           cli_json_str(j, SHRINK_VERSION);
    return memjson_write(&m, pathf("%s/run.json", out));
}

static bool read_run_json(const char *out, run_id *id) {
    char *p = pathf("%s/run.json", out);
    char *t = p ? slurp(p) : NULL;
    free(p);
    if (!t) return false;
    memset(id, 0, sizeof *id);
    bool ok = strstr(t, "\"shrink_recipe_run\":1") &&
              json_str_after(t, "recipe_sha256", id->recipe_sha, sizeof id->recipe_sha) &&
              json_str_after(t, "input", id->input, sizeof id->input);
    double th = json_num_after(t, "threads"), de = json_num_after(t, "date_epoch");
    ok = ok && !isnan(th) && !isnan(de);
    id->threads = ok ? (int)th : 0;
    id->date_epoch = ok ? (long long)de : 0;
    free(t);
    return ok;
}

/* ==== running a step's command, and try steps ============================================= */

/* Runs the command a of step i (or of one of its alternatives) in a child, its stdout into
 * log, with the step's manifest: the command line, the recipe among the inputs, the gates
 * measured so far as quality keys ("gate2.kl"). */
static int run_command(run_state *rs, int i, const rstep *s, argvec *a, const char *log,
                       bool no_manifest) {
    const recipe *r = rs->r;
    char *mfargv[MAX_ARGV + 1];   /* without --progress: the bytes do not depend on it */
    int   n_mf = 0;
    mfargv[n_mf++] = "shrink";
    for (int k = 0; k < a->n; k++)
        if (strcmp(a->v[k], "--progress")) mfargv[n_mf++] = a->v[k];
    cli_manifest_restart(n_mf, mfargv);
    if (no_manifest) cli_manifest_disable();
    cli_manifest_input("RECIPE", r->path);
    for (int j = 0; j < i; j++)   /* the gates measured so far: "gate2.kl" */
        for (int g = 0; g < r->step[j].n_gate; g++) {
            char key[64];
            snprintf(key, sizeof key, "gate%d.%s", j + 1, r->step[j].gate[g].m->name);
            cli_manifest_quality(key, rs->gate_value[j][g]);
        }
    double t0 = now_sec();
    int rc = run_captured(s->k->run, a, log);
    rs->seconds[i] += now_sec() - t0;
    cli_manifest_restart(0, NULL);
    return rc;
}

/* An alternative as the recipe wrote it, without inputs and outputs: "quantize --scheme q4_0". */
static char *alt_text(const rstep *t) {
    size_t n = strlen(t->k->name) + 1;
    for (int k = 0; k < t->n_opt; k++) n += strlen(t->opt[k]) + 1;
    char *p = malloc(n);
    if (!p) return NULL;
    strcpy(p, t->k->name);
    for (int k = 0; k < t->n_opt; k++) strcat(strcat(p, " "), t->opt[k]);
    return p;
}

/* A sweep (the alternatives of a try step) from their records, one JSON line each (alt.json):
 *   {"alt":J,"line":L,"step":"quantize --scheme q4_0","output":"step-1-try/alt-1-quantize/
 *    model.gguf","bytes":B,"pass":true,"gates":[...]}
 * The kept one: the smallest passing every gate, the first of equal sizes. */
static int sweep_choose(char *const *lines, int n) {
    int best = -1;
    double best_bytes = 0;
    for (int j = 0; j < n; j++) {
        if (!lines[j] || !strstr(lines[j], "\"pass\":true,\"gates\"")) continue;
        double b = json_num_after(lines[j], "bytes");
        if (best < 0 || b < best_bytes) best = j, best_bytes = b;
    }
    return best;
}

/* The sweep's JSON: a header, then the alternatives' records one per line (those of a shard,
 * or all), so that joined shards and one run give the same bytes. kind: "recipe_shard" or
 * "recipe_sweep"; chosen < 0: none (or a shard: not chosen). */
static void sweep_json(FILE *f, const char *kind, const char *recipe_path, const char *sha,
                       const char *input, int step, int line, int shard, int shards,
                       char *const *lines, int n) {
    cli_json j;
    cli_json_begin(&j, f);
    cli_json_key(&j, kind);            cli_json_bool(&j, true);
    cli_json_key(&j, "recipe");        cli_json_str(&j, recipe_path);
    cli_json_key(&j, "recipe_sha256"); cli_json_str(&j, sha);
    cli_json_key(&j, "input");         cli_json_str(&j, input);
    cli_json_key(&j, "step");          cli_json_int(&j, step);
    cli_json_key(&j, "line");          cli_json_int(&j, line);
    if (shards) {
        cli_json_key(&j, "shard");     cli_json_int(&j, shard);
        cli_json_key(&j, "shards");    cli_json_int(&j, shards);
    }
    cli_json_key(&j, "n_alternatives"); cli_json_int(&j, n);
    if (!shards) {
        int c = sweep_choose(lines, n);
        cli_json_key(&j, "chosen");
        if (c >= 0) cli_json_int(&j, c + 1); else cli_json_null(&j);
    }
    fflush(f);
    fprintf(f, ",\"alternatives\":[");   /* the records as they are, one per line */
    bool first = true;
    for (int k = 0; k < n; k++) {
        if (!lines[k]) continue;
        size_t l = strlen(lines[k]);
        while (l && lines[k][l - 1] == '\n') l--;
        fprintf(f, "%s\n%.*s", first ? "" : ",", (int)l, lines[k]);
        first = false;
    }
    fprintf(f, "\n]}\n");
}

/* The sweep as a table (stderr of a run, stdout of merge-results). */
static void sweep_text(FILE *f, char *const *lines, int n) {
    fprintf(f, "| alt | line | step | size | gates |\n|---:|---:|---|---:|---|\n");
    int c = sweep_choose(lines, n);
    for (int k = 0; k < n; k++) {
        if (!lines[k]) continue;
        char what[512] = "", b[32];
        json_str_after(lines[k], "step", what, sizeof what);
        fprintf(f, "| %d%s | %.0f | %s | %s | ", k + 1, k == c ? " (kept)" : "",
                json_num_after(lines[k], "line"), what,
                cli_fmt_bytes(b, sizeof b, (uint64_t)json_num_after(lines[k], "bytes")));
        const char *p = strstr(lines[k], "\"gates\":");
        bool any = false;
        while (p && (p = strstr(p, "{\"gate\":\""))) {
            char g[256] = "";
            json_str_after(p, "gate", g, sizeof g);
            fprintf(f, "%s%s: %.6g (limit %.6g) %s", any ? "; " : "", g,
                    json_num_after(p, "value"), json_num_after(p, "limit"),
                    strncmp(strstr(p, "\"pass\":") + 7, "true", 4) ? "FAIL" : "pass");
            any = true;
            p++;
        }
        fprintf(f, " |\n");
    }
    if (c >= 0) fprintf(f, "kept: alternative %d, the smallest that passed every gate\n", c + 1);
    else fprintf(f, "kept: none (no alternative passed every gate)\n");
}

/* The model paths of the alternatives of try step i; with the record t of the finished step
 * (step.json), the chosen one's as the step's model. false: the record does not fit. */
static bool keep_try(run_state *rs, int i, const char *in, const char *dir, const char *t) {
    const recipe *r = rs->r;
    const rstep *s = &r->step[i];
    double c = json_num_after(t, "chosen");
    if (!(c >= 1 && c <= s->n_alt)) return false;
    for (int j = 0; j < s->n_alt; j++) {
        argvec a = {0};
        char *m = NULL, *ad = NULL, *adir = pathf("%s/%s", dir, r->alt[s->alt0 + j].dir);
        if (adir) build_cmd(rs, &r->alt[s->alt0 + j], i, in, adir, &a, &m, &ad);
        av_free(&a);
        free(ad), free(adir);
        free(rs->alt_model[s->alt0 + j]);
        rs->alt_model[s->alt0 + j] = m && access(m, R_OK) == 0 ? m : (free(m), NULL);
    }
    rs->chosen[i] = (int)c - 1;
    free(rs->model[i]);
    rs->model[i] = rs->alt_model[s->alt0 + (int)c - 1] ? strdup(rs->alt_model[s->alt0 + (int)c - 1])
                                                        : NULL;
    return rs->model[i] != NULL;
}

/* Runs the alternatives of try step i (those of shard I/N: index % N == I), each from the
 * previous model `in` into DIR/alt-J-NAME/, measures the step's gates on each and records
 * them (alt.json, written last: a finished alternative is kept on resume when keep), then
 * keeps the smallest that passed every gate (unsharded) as the step's model, writing
 * DIR/sweep.json; a shard prints its alternatives' JSON on stdout instead. */
static int run_try(run_state *rs, int i, const char *in, const char *dir, bool keep,
                   int32_t shard, int32_t n_shards, const char **status) {
    const recipe *r = rs->r;
    const rstep *s = &r->step[i];
    char *lines[MAX_ALTS] = {0};
    int rc = CLI_OK;
    if (!keep && (rc = remove_tree(dir)) != CLI_OK) return rc;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return cli_fail("%s: cannot create the folder: %s", dir, strerror(errno));
    for (int j = 0; j < s->n_alt && rc == CLI_OK; j++) {
        if (n_shards > 1 && j % n_shards != shard) continue;
        const rstep *t = &r->alt[s->alt0 + j];
        char *adir = pathf("%s/%s", dir, t->dir);
        char *rec = adir ? pathf("%s/alt.json", adir) : NULL;
        char *log = adir ? pathf("%s/%s", adir, t->k->lay == L_TO ? "plan.json" : "output.txt")
                         : NULL;
        char *model = NULL, *adapter = NULL, *what = alt_text(t);
        argvec a = {0};
        char label[128];
        if (!adir || !rec || !log || !what) {
            rc = cli_fail("out of memory");
            goto next;
        }
        build_cmd(rs, t, i, in, adir, &a, &model, &adapter);
        free(rs->alt_model[s->alt0 + j]);
        rs->alt_model[s->alt0 + j] = model;
        if (!av_ok(&a) || !model) {
            rc = cli_fail("out of memory");
            goto next;
        }
        snprintf(label, sizeof label, "recipe step %d/%d try %d/%d (%s:%d)", i + 1, r->n, j + 1,
                 s->n_alt, r->path, t->line);
        char *old = keep ? slurp(rec) : NULL;
        if (old && access(model, R_OK) == 0) {
            fprintf(stderr, "%s: %s/%s done before, kept\n", label, s->dir, t->dir);
            lines[j] = old;
            goto next;
        }
        free(old);
        if ((rc = remove_tree(adir)) != CLI_OK) goto next;
        if (mkdir(adir, 0777) != 0) {
            rc = cli_fail("%s: cannot create the folder: %s", adir, strerror(errno));
            goto next;
        }
        echo(label, &a);
        if ((rc = run_command(rs, i, t, &a, log, false)) != CLI_OK) {
            cli_fail("recipe %s:%d: step %d, alternative %d (%s) failed (exit %d; its stdout: %s)",
                     r->path, t->line, i + 1, j + 1, t->k->name, rc, log);
            rc = CLI_ERR;
            *status = "step failed";
            goto next;
        }
        rs->model[i] = model;   /* the gates measure it */
        rc = measure_gates(rs, i, adir);
        rs->model[i] = NULL;
        if (rc != CLI_OK) {
            *status = "gate not measured";
            goto next;
        }
        bool pass = true;
        for (int g = 0; g < s->n_gate; g++) {
            fprintf(stderr, "%s: gate %s: %s = %.6g, limit %.6g: %s\n", label, s->gate[g].text,
                    s->gate[g].m->name, rs->gate_value[i][g], rs->gate_limit[i][g],
                    rs->gate_pass[i][g] ? "pass" : "FAIL");
            pass &= rs->gate_pass[i][g];
        }
        {
            memjson m;
            if (!memjson_begin(&m)) {
                rc = cli_fail("out of memory");
                goto next;
            }
            char *rel = pathf("%s/%s/model.gguf", s->dir, t->dir);
            cli_json_key(&m.j, "alt");    cli_json_int(&m.j, j + 1);
            cli_json_key(&m.j, "line");   cli_json_int(&m.j, t->line);
            cli_json_key(&m.j, "step");   cli_json_str(&m.j, what);
            cli_json_key(&m.j, "output"); cli_json_str(&m.j, rel ? rel : "");
            cli_json_key(&m.j, "bytes");  cli_json_u64(&m.j, path_bytes(model));
            cli_json_key(&m.j, "pass");   cli_json_bool(&m.j, pass);
            json_gates(&m.j, rs, i);
            free(rel);
            if ((rc = memjson_write(&m, pathf("%s", rec))) != CLI_OK) goto next;
            lines[j] = slurp(rec);
            if (!lines[j]) rc = cli_fail("%s: cannot read", rec);
        }
        {
            char point[32];
            snprintf(point, sizeof point, "alt%d", j + 1);
            kill_hook(i + 1, point);
        }
    next:
        av_free(&a);
        free(adapter), free(what), free(adir), free(rec), free(log);
    }
    if (rc == CLI_OK) {
        run_id id;
        char *file = pathf("%s/sweep.json", dir);
        read_run_json(rs->out, &id);
        if (n_shards) {   /* a shard: its records on stdout, no choice */
            sweep_json(stdout, "recipe_shard", r->path, id.recipe_sha, id.input, i + 1, s->line,
                       shard, n_shards, lines, s->n_alt);
        } else {
            memjson m;
            FILE *f = NULL;
            char *buf = NULL;
            size_t len = 0;
            (void)m;
            if (!(f = open_memstream(&buf, &len))) rc = cli_fail("out of memory");
            if (f) {
                sweep_json(f, "recipe_sweep", r->path, id.recipe_sha, id.input, i + 1, s->line,
                           0, 0, lines, s->n_alt);
                fclose(f);
                rc = file && buf ? write_atomic(file, buf) : cli_fail("out of memory");
                free(buf);
            }
            sweep_text(stderr, lines, s->n_alt);
            int c = sweep_choose(lines, s->n_alt);
            if (rc == CLI_OK && c < 0) {
                cli_fail("recipe %s:%d: no alternative of step %d passed every gate; the run "
                         "stops here (their models and measures: %s)", r->path, s->line, i + 1,
                         dir);
                rc = CLI_ERR;
                *status = "gate failed";
            } else if (rc == CLI_OK) {   /* the kept one's gates are the step's */
                rs->chosen[i] = c;
                rs->model[i] = strdup(rs->alt_model[s->alt0 + c]);
                const char *p = lines[c];
                for (int g = 0; g < s->n_gate; g++) {
                    p = strstr(p + 1, "\"metric\":");
                    rs->gate_value[i][g] = json_num_after(p, "value");
                    rs->gate_limit[i][g] = json_num_after(p, "limit");
                    rs->gate_pass[i][g] = true;
                }
                if (!rs->model[i]) rc = cli_fail("out of memory");
            }
        }
        free(file);
    }
    for (int j = 0; j < s->n_alt; j++) free(lines[j]);
    return rc;
}

/* ==== merging the shards of a sweep (shrink merge-results) =============================== */

bool cli_recipe_is_shard(const char *path) {
    char  head[32] = "";
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    size_t n = fread(head, 1, sizeof head - 1, f);
    fclose(f);
    head[n] = '\0';
    return strncmp(head, "{\"recipe_shard\":true", 20) == 0;
}

int cli_recipe_merge(char *const *paths, int n, bool json) {
    char *lines[MAX_ALTS] = {0};
    char  sha[65] = "", input[PATH_MAX] = "", recipe_path[PATH_MAX] = "";
    int   rc = CLI_OK, shards = 0, n_alt = 0, step = 0, line = 0;
    bool  seen[MAX_ALTS] = {0};
    for (int f = 0; f < n && rc == CLI_OK; f++) {
        char *t = slurp(paths[f]);
        if (!t) {
            rc = cli_fail("%s: %s", paths[f], strerror(errno));
            break;
        }
        char s2[65] = "", in2[PATH_MAX] = "", rp2[PATH_MAX] = "";
        double sh = json_num_after(t, "shard"), nsh = json_num_after(t, "shards");
        double na = json_num_after(t, "n_alternatives"), st = json_num_after(t, "step");
        if (!cli_recipe_is_shard(paths[f]) || !json_str_after(t, "recipe_sha256", s2, sizeof s2) ||
            !json_str_after(t, "input", in2, sizeof in2) || !json_str_after(t, "recipe", rp2, sizeof rp2) ||
            !(nsh >= 1 && nsh <= MAX_ALTS && sh >= 0 && sh < nsh) || !(na >= 1 && na <= MAX_ALTS) ||
            !(st >= 1)) {
            rc = cli_fail("%s: not the output of shrink recipe run --shard I/N", paths[f]);
        } else if (f == 0) {
            memcpy(sha, s2, sizeof sha);
            memcpy(input, in2, sizeof input);
            memcpy(recipe_path, rp2, sizeof recipe_path);
            shards = (int)nsh, n_alt = (int)na, step = (int)st;
            line = (int)json_num_after(t, "line");
        } else if (strcmp(sha, s2)) {
            rc = cli_fail("%s: a shard of another recipe (sha256 %.12s..., not %.12s... of %s)",
                          paths[f], s2, sha, paths[0]);
        } else if (strcmp(input, in2)) {
            rc = cli_fail("%s: a shard of a run on another input (%s, not %s)", paths[f], in2,
                          input);
        } else if ((int)nsh != shards || (int)na != n_alt || (int)st != step) {
            rc = cli_fail("%s: the shards of another split (shards %d, step %d; %s: %d, %d)",
                          paths[f], (int)nsh, (int)st, paths[0], shards, step);
        }
        for (int k = 0; k < f && rc == CLI_OK; k++) {
            char *u = slurp(paths[k]);
            if (u && json_num_after(u, "shard") == sh)
                rc = cli_fail("%s: shard %d/%d given twice (also %s)", paths[f], (int)sh, shards,
                              paths[k]);
            free(u);
        }
        /* the records: one per line, each {"alt":J,... */
        for (char *p = strstr(t, "\n{\"alt\":"); p && rc == CLI_OK; p = strstr(p + 1, "\n{\"alt\":")) {
            int j = (int)json_num_after(p, "alt") - 1;
            char *e = strchr(p + 1, '\n');
            size_t l = e ? (size_t)(e - p - 1) : strlen(p + 1);
            if (l && p[l] == ',') l--;   /* the separator after the record */
            if (j < 0 || j >= n_alt || j % shards != (int)sh) {
                rc = cli_fail("%s: alternative %d is not one of shard %d/%d", paths[f], j + 1,
                              (int)sh, shards);
            } else if (seen[j]) {
                rc = cli_fail("%s: alternative %d given twice", paths[f], j + 1);
            } else if (!(lines[j] = malloc(l + 2))) {
                rc = cli_fail("out of memory");
            } else {
                memcpy(lines[j], p + 1, l);
                lines[j][l] = '\n';
                lines[j][l + 1] = 0;
                seen[j] = true;
            }
        }
        free(t);
    }
    for (int j = 0; j < n_alt && rc == CLI_OK; j++)
        if (!seen[j])
            rc = cli_fail("alternative %d of step %d is missing: shard %d of %d not given "
                          "(or not finished)", j + 1, step, j % shards, shards);
    if (rc == CLI_OK) {
        if (json) sweep_json(stdout, "recipe_sweep", recipe_path, sha, input, step, line, 0, 0,
                             lines, n_alt);
        else sweep_text(stdout, lines, n_alt);
    }
    for (int j = 0; j < MAX_ALTS; j++) free(lines[j]);
    return rc;
}

/* ==== the command ========================================================================= */

typedef struct recipe_opts {
    bool        resume;
    const char *shard;
} recipe_opts;

static const cli_opt recipe_rows[] = {
    {"--resume", NULL, CLI_OPT_FLAG, offsetof(recipe_opts, resume), NULL, 0, 0,
     "continue the run in OUT from its first unfinished step"},
    {"--shard", NULL, CLI_OPT_STR, offsetof(recipe_opts, shard), "I/N", 0, 0,
     "run only the alternatives J of the first try step with J % N = I (0-based) and print\n"
     "their measures as JSON, for shrink merge-results (the steps before it run in every shard)"},
};

static void epilog(FILE *f) {
    fprintf(f, "\nsteps (the options of `shrink STEP --help`, without dashes: scheme=q4_K_M):\n ");
    for (int i = 0; i < N_KINDS; i++) fprintf(f, " %s", kinds[i].name);
    fprintf(f, "\ngate metrics (gate METRIC < <= > >= VALUE, VALUE: a number, base, X * base, "
               "base + X):\n");
    for (int i = 0; i < N_METRICS; i++) fprintf(f, "  %-16s %s\n", metrics[i].name, metrics[i].what);
}

static const cli_spec spec = {
    .epilog      = epilog,
    .name        = "recipe",
    .synopsis    = "run RECIPE [IN] OUT [--resume] [--threads N] [--json] [--shard I/N]\n"
                   "       check RECIPE [IN]",
    .description = "Runs a recipe file (docs/recipes.md): its steps (shrink commands with their\n"
                   "options) in order, each writing OUT/step-N-NAME/ (the model with its\n"
                   "manifest, the command's output, step.json), and its gates (gate kl < 0.05,\n"
                   "gate ppl <= 1.1 * base, ...) measured by shrink compare against the input on\n"
                   "the recipe's text after the step they follow: a failing gate stops the run.\n"
                   "IN replaces the recipe's `input`. --resume continues an interrupted run from\n"
                   "its first unfinished step (same threads: byte-identical outputs). An OUT that\n"
                   "holds another run is refused. `check` parses and checks the recipe and\n"
                   "prints the steps' command lines without running them.",
    .opts        = recipe_rows,
    .n_opts      = sizeof recipe_rows / sizeof recipe_rows[0],
    .n_pos_min   = 2,
    .n_pos_max   = 4,
    .model       = false,
};

static int usage_error(const char *msg) {
    fprintf(stderr, "shrink recipe: %s\n\n", msg);
    cli_usage(&spec, stderr);
    return CLI_USAGE;
}

/* The run's table (stdout when it finished, stderr when it stopped), or its JSON on stdout. */
static void print_summary(const run_state *rs, int done, bool json, const char *status,
                          const char *final) {
    const recipe *r = rs->r;
    FILE *f = strcmp(status, "done") ? stderr : stdout;
    if (json) {
        cli_json j;
        cli_json_begin(&j, stdout);
        cli_json_key(&j, "recipe"); cli_json_str(&j, r->path);
        cli_json_key(&j, "input");  cli_json_str(&j, rs->input);
        cli_json_key(&j, "out");    cli_json_str(&j, rs->out);
        cli_json_key(&j, "status"); cli_json_str(&j, status);
        cli_json_key(&j, "final");  if (final) cli_json_str(&j, final); else cli_json_null(&j);
        cli_json_key(&j, "steps");
        cli_json_arr_begin(&j);
        for (int i = 0; i < done; i++) {
            const char *o = rs->model[i] ? rs->model[i] : rs->adapter[i];
            cli_json_obj_begin(&j);
            cli_json_key(&j, "step");    cli_json_int(&j, i + 1);
            cli_json_key(&j, "name");    cli_json_str(&j, r->step[i].k->name);
            cli_json_key(&j, "output");  if (o) cli_json_str(&j, o); else cli_json_null(&j);
            cli_json_key(&j, "bytes");   cli_json_u64(&j, o ? path_bytes(o) : 0);
            cli_json_key(&j, "resumed"); cli_json_bool(&j, rs->resumed[i]);
            cli_json_key(&j, "seconds"); cli_json_num(&j, rs->seconds[i]);
            if (rs->measured[i]) json_gates(&j, rs, i);
            cli_json_obj_end(&j);
        }
        cli_json_arr_end(&j);
        cli_json_end(&j);
        return;
    }
    fprintf(f, "| step | output | size | time | gates |\n|---|---|---:|---:|---|\n");
    for (int i = 0; i < done; i++) {
        const char *o = rs->model[i] ? rs->model[i] : rs->adapter[i];
        char b[32];
        fprintf(f, "| %d %s | %s | %s | %.1f s%s | ", i + 1, r->step[i].k->name, o ? o : "-",
               o ? cli_fmt_bytes(b, sizeof b, path_bytes(o)) : "-", rs->seconds[i],
               rs->resumed[i] ? " (earlier run)" : "");
        if (!rs->measured[i] && r->step[i].n_gate) fprintf(f, "not measured");
        for (int g = 0; g < r->step[i].n_gate && rs->measured[i]; g++)
            fprintf(f, "%s%s: %.6g (limit %.6g) %s", g ? "; " : "", r->step[i].gate[g].text,
                   rs->gate_value[i][g], rs->gate_limit[i][g],
                   rs->gate_pass[i][g] ? "pass" : "FAIL");
        fprintf(f, " |\n");
    }
    fprintf(f, "status: %s%s%s\n", status, final ? "; final model " : "", final ? final : "");
}

static int cmd_check(const recipe *r) {
    run_state rs = {.r = r, .out = "OUT", .input = r->input,
                    .teacher = r->teacher ? r->teacher : r->input, .threads = 0};
    int rc = CLI_OK;
    const char *in = r->input;
    for (int i = 0; i < r->n; i++) {
        argvec a = {0};
        char *dir = pathf("OUT/%s", r->step[i].dir);
        const rstep *s = &r->step[i];
        build_cmd(&rs, s, i, in, dir, &a, &rs.model[i], &rs.adapter[i]);
        if (s->k->lay == L_TRY) {
            printf("step %d (line %d): the smallest passing its gates of\n", i + 1, s->line);
            for (int j = 0; j < s->n_alt; j++) {
                argvec b = {0};
                char *m = NULL, *ad = NULL, *adir = pathf("%s/%s", dir, r->alt[s->alt0 + j].dir);
                build_cmd(&rs, &r->alt[s->alt0 + j], i, in, adir, &b, &m, &ad);
                printf("  try %d (line %d): shrink", j + 1, r->alt[s->alt0 + j].line);
                for (int k = 0; k < b.n; k++) printf(" %s", b.v[k]);
                printf("\n");
                if (j == 0) rs.model[i] = m; else free(m);
                free(ad), free(adir);
                av_free(&b);
            }
        } else {
            printf("step %d (line %d): shrink", i + 1, s->line);
            for (int k = 0; k < a.n; k++) printf(" %s", a.v[k]);
            printf("\n");
        }
        for (int g = 0; g < r->step[i].n_gate; g++)
            printf("  gate (line %d): %s  [%s]\n", r->step[i].gate[g].line, r->step[i].gate[g].text,
                   r->step[i].gate[g].m->what);
        if (rs.model[i]) in = rs.model[i];
        av_free(&a);
        free(dir);
    }
    for (int i = 0; i < r->n; i++) free(rs.model[i]), free(rs.adapter[i]);
    return rc;
}

static int run_recipe(const recipe *r, const char *out, bool resume, const cli_common *common,
                      int32_t shard, int32_t n_shards) {
    cli_io io[] = {{"RECIPE", r->path, CLI_IN},
                   {"IN", r->input, CLI_IN},
                   {"teacher", r->teacher, CLI_IN},
                   {"text", r->text, CLI_IN},
                   {"OUT", out, CLI_OUT_IN_DIR}};
    int rc = cli_check_io(io, 5);
    if (rc != CLI_OK) return rc;
    for (int i = 0; i < 4; i++)
        if (io[i].path && access(io[i].path, R_OK) != 0)
            return cli_fail("%s: %s (%s of the recipe)", io[i].path, strerror(errno), io[i].arg);
    run_id id = {0}, old;
    uint64_t rb;
    if (shrink_sha256_file(r->path, id.recipe_sha, &rb) != SHRINK_OK) return cli_fail_status(SHRINK_ERR_IO);
    if (!realpath(r->input, id.input)) return cli_fail("%s: %s", r->input, strerror(errno));
    shrink_set_threads(common->threads);
    id.threads = shrink_get_threads();
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    id.date_epoch = sde && *sde ? atoll(sde) : (long long)time(NULL);

    struct stat sb;
    bool fresh = true;
    if (stat(out, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) return cli_fail("%s: OUT exists and is not a folder", out);
        if (read_run_json(out, &old)) {
            if (strcmp(old.recipe_sha, id.recipe_sha))
                return cli_fail("%s holds a run of another recipe (sha256 %.12s..., this one "
                                "%.12s...): nothing overwritten; give a new OUT", out,
                                old.recipe_sha, id.recipe_sha);
            if (strcmp(old.input, id.input))
                return cli_fail("%s holds a run of this recipe on another input (%s, not %s): "
                                "nothing overwritten; give a new OUT", out, old.input, id.input);
            if (!resume)
                return cli_fail("%s holds a run of this recipe already: --resume continues it "
                                "(or give a new OUT)", out);
            if (common->threads && old.threads != id.threads)
                return cli_fail("%s was started with --threads %d: resume with the same count "
                                "(the steps' outputs depend on it)", out, old.threads);
            shrink_set_threads(old.threads);
            id.threads = old.threads;
            id.date_epoch = old.date_epoch;
            fresh = false;
        } else if (!dir_empty(out)) {
            return cli_fail("%s holds files but no recipe run (no run.json): nothing "
                            "overwritten; give an empty or new OUT", out);
        }
    } else if (mkdir(out, 0777) != 0) {
        return cli_fail("%s: cannot create the folder: %s", out, strerror(errno));
    }
    if (fresh && (rc = write_run_json(out, r, &id)) != CLI_OK) return rc;
    char epoch[32];
    snprintf(epoch, sizeof epoch, "%lld", id.date_epoch);
    setenv("SOURCE_DATE_EPOCH", epoch, 1);   /* every manifest of the run: the run's date */

    run_state *rs = calloc(1, sizeof *rs);
    if (!rs) return cli_fail("out of memory");
    rs->r = r;
    rs->out = out;
    rs->input = r->input;
    rs->teacher = r->teacher ? r->teacher : r->input;
    rs->threads = id.threads;
    rs->progress = common->progress;
    const char *in = r->input, *status = "done", *final = NULL;
    bool redo = false;   /* a step was (re)run: every later one is rerun too */
    int i = 0, chosen = -1;
    for (; i < r->n && rc == CLI_OK; i++) {
        const rstep *s = &r->step[i];
        char *dir = pathf("%s/%s", out, s->dir), *rec = dir ? pathf("%s/step.json", dir) : NULL;
        char *log = dir ? pathf("%s/%s", dir, s->k->lay == L_COMPARE ? "compare.json"
                                              : s->k->lay == L_TO ? "plan.json" : "output.txt")
                        : NULL;
        argvec a = {0};
        if (!dir || !rec || !log) {
            rc = cli_fail("out of memory");
            goto next;
        }
        build_cmd(rs, s, i, in, dir, &a, &rs->model[i], &rs->adapter[i]);
        if (!av_ok(&a) || (s->k->lay != L_COMPARE && s->k->lay != L_TRY && !rs->model[i] &&
                           !rs->adapter[i])) {
            rc = cli_fail("out of memory");
            goto next;
        }
        char label[96];
        snprintf(label, sizeof label, "recipe step %d/%d (%s:%d)", i + 1, r->n, r->path, s->line);
        char *t = !redo ? slurp(rec) : NULL;
        if (t && s->k->lay == L_TRY && !keep_try(rs, i, in, dir, t)) {
            free(t);
            t = NULL;
        }
        const char *o = rs->model[i] ? rs->model[i] : rs->adapter[i];
        if (t && (!o || access(o, R_OK) == 0)) {   /* finished before: take its gates */
            for (int g = 0; g < s->n_gate; g++) {
                const char *p = t;
                for (int k = 0; k <= g && p; k++) p = strstr(p + 1, "\"metric\":");
                rs->gate_value[i][g] = json_num_after(p, "value");
                rs->gate_limit[i][g] = json_num_after(p, "limit");
                rs->gate_pass[i][g] = true;
            }
            rs->seconds[i] = json_num_after(t, "seconds");
            rs->resumed[i] = true;
            rs->measured[i] = true;
            fprintf(stderr, "%s: %s done before, kept\n", label, s->dir);
            free(t);
            goto next;
        }
        free(t);
        bool was_redo = redo;
        redo = true;
        if (s->k->lay != L_TRY && (rc = remove_tree(dir)) != CLI_OK) goto next;
        if (s->k->lay != L_TRY && mkdir(dir, 0777) != 0) {
            rc = cli_fail("%s: cannot create the folder: %s", dir, strerror(errno));
            goto next;
        }
        kill_hook(i + 1, "start");
        if (s->k->lay == L_TRY) {
            rc = run_try(rs, i, in, dir, !was_redo, shard, n_shards, &status);
            if (rc == CLI_OK && n_shards) {   /* a shard: its alternatives only, then stop */
                status = "shard done";
                i++;
                av_free(&a);
                free(dir), free(rec), free(log);
                break;
            }
            if (rc != CLI_OK) goto next;
            rs->measured[i] = true;
            chosen = rs->chosen[i];
            goto record;
        }
        echo(label, &a);
        rc = run_command(rs, i, s, &a, log, common->no_manifest);
        if (rc != CLI_OK) {
            cli_fail("recipe %s:%d: step %d (%s) failed (exit %d; its stdout: %s)",
                     r->path, s->line, i + 1, s->k->name, rc, log);
            rc = CLI_ERR;
            status = "step failed";
            goto next;
        }
        kill_hook(i + 1, "output");
        if ((rc = measure_gates(rs, i, dir)) != CLI_OK) {
            status = "gate not measured";
            goto next;
        }
        rs->measured[i] = true;
        for (int g = 0; g < s->n_gate; g++)
            fprintf(stderr, "%s: gate %s: %s = %.6g, limit %.6g: %s\n", label, s->gate[g].text,
                    s->gate[g].m->name, rs->gate_value[i][g], rs->gate_limit[i][g],
                    rs->gate_pass[i][g] ? "pass" : "FAIL");
        for (int g = 0; g < s->n_gate; g++) {
            if (!rs->gate_pass[i][g] && rc == CLI_OK) {
                cli_fail("recipe %s:%d: gate '%s' failed after step %d (%s): %s = %.6g, limit "
                         "%.6g; the run stops here (the step's model: %s)", r->path,
                         s->gate[g].line, s->gate[g].text, i + 1, s->k->name, s->gate[g].m->name,
                         rs->gate_value[i][g], rs->gate_limit[i][g], o);
                rc = CLI_ERR;
                status = "gate failed";
            }
        }
    record:
        if (rc == CLI_OK && s->k->lay == L_TRY) {   /* the record names the chosen one */
            char *m2 = NULL, *a2 = NULL, *adir = pathf("%s/%s", dir, r->alt[s->alt0 + chosen].dir);
            av_free(&a);
            build_cmd(rs, &r->alt[s->alt0 + chosen], i, in, adir, &a, &m2, &a2);
            free(m2), free(a2), free(adir);
        }
        if (rc == CLI_OK) rc = write_step_json(rs, i, dir, &a);
        if (rc == CLI_OK) kill_hook(i + 1, "done");
    next:
        if (rc == CLI_OK && rs->model[i]) in = rs->model[i];
        (void)chosen;
        av_free(&a);
        free(dir);
        free(rec);
        free(log);
    }
    for (int k = 0; k < r->n; k++)
        if (rs->model[k]) final = rs->model[k];
    if (n_shards) status = rc == CLI_OK ? "shard done" : status;
    print_summary(rs, i, common->json && !n_shards, rc == CLI_OK && !n_shards ? "done" : status,
                  rc == CLI_OK && !n_shards ? final : NULL);
    for (int k = 0; k < r->n; k++) free(rs->model[k]), free(rs->adapter[k]);
    for (int k = 0; k < r->n_alt; k++) free(rs->alt_model[k]);
    free(rs);
    return rc;
}

int cmd_recipe(int argc, char **argv) {
    cli_common  common;
    char       *pos[4];
    int         n_pos;
    recipe_opts o = {0};
    int rc = cli_parse(&spec, argc, argv, &o, &common, pos, &n_pos);
    if (rc != CLI_OK || common.help) return rc;
    bool run = !strcmp(pos[0], "run"), check = !strcmp(pos[0], "check");
    if (!run && !check)
        return usage_error("the first argument is run or check");
    if (run && n_pos < 3) return usage_error("run needs RECIPE and OUT (and IN if the recipe "
                                              "names no input)");
    if (check && n_pos > 3) return usage_error("check takes RECIPE [IN]");
    const char *in = run ? (n_pos == 4 ? pos[2] : NULL) : (n_pos == 3 ? pos[2] : NULL);
    recipe *r = calloc(1, sizeof *r);
    if (!r) return cli_fail("out of memory");
    rc = recipe_load(r, pos[1], in);
    int32_t shard = 0, n_shards = 0;
    if (rc == CLI_OK && o.shard) {
        bool has_try = false;
        for (int i = 0; i < r->n; i++) has_try |= r->step[i].k->lay == L_TRY;
        if (!run) rc = usage_error("--shard splits a run: recipe run RECIPE OUT --shard I/N");
        else if ((rc = cli_parse_shard("recipe", o.shard, &shard, &n_shards)) != CLI_OK) {}
        else if (!has_try)
            rc = cli_fail("%s: --shard splits the alternatives of a try step, and this recipe has "
                          "none", r->path);
    }
    if (rc == CLI_OK)
        rc = run ? run_recipe(r, pos[n_pos - 1], o.resume, &common, shard, n_shards) : cmd_check(r);
    rp_free(&r->f);
    free(r);
    return rc;
}
