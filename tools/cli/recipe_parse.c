/*
 * recipe_parse.c - the syntax of recipe files (recipe_parse.h, docs/recipes.md): lines into
 * words with their columns, KEY=VALUE pairs, quoted values, and gate expressions. Every error
 * names the file, line and column. libc only (fuzz/fuzz_recipe.c compiles this file alone).
 */
#include "recipe_parse.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rp_ctx {
    const char *name;
    int         line;
    char       *err;
    size_t      errcap;
} rp_ctx;

static bool rp_fail(rp_ctx *c, int col, const char *fmt, ...) {
    char    msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errcap, "%s:%d:%d: %s", c->name, c->line, col, msg);
    return false;
}

static char *rp_dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static bool rp_is_space(char ch) { return ch == ' ' || ch == '\t'; }

/* A bare or quoted piece starting at s[*i]; ends at a space, '#' or (bare, stop_eq) '='.
 * Returns the unquoted text (malloc'd) or NULL after rp_fail(). */
static char *rp_piece(rp_ctx *c, const char *s, int n, int *i, bool stop_eq, bool *oom) {
    char *buf = malloc((size_t)n + 1);
    int   k = 0;
    *oom = buf == NULL;
    if (!buf) return NULL;
    if (s[*i] == '"') {
        int start = *i;
        (*i)++;
        for (;;) {
            if (*i >= n) {
                free(buf);
                rp_fail(c, start + 1, "unterminated quoted value (a '\"' is missing)");
                return NULL;
            }
            char ch = s[*i];
            if (ch == '"') {
                (*i)++;
                break;
            }
            if (ch == '\\') {
                char e = *i + 1 < n ? s[*i + 1] : 0;
                if (e != '"' && e != '\\') {
                    free(buf);
                    rp_fail(c, *i + 1, "unknown escape in a quoted value (only \\\" and \\\\)");
                    return NULL;
                }
                buf[k++] = e;
                *i += 2;
                continue;
            }
            buf[k++] = ch;
            (*i)++;
        }
        if (*i < n && !rp_is_space(s[*i]) && s[*i] != '#') {
            free(buf);
            rp_fail(c, *i + 1, "a space must follow a quoted value");
            return NULL;
        }
    } else {
        while (*i < n && !rp_is_space(s[*i]) && s[*i] != '#' && !(stop_eq && s[*i] == '=')) {
            if (s[*i] == '"') {
                free(buf);
                rp_fail(c, *i + 1, "a quote inside a word (quote the whole value: key=\"...\")");
                return NULL;
            }
            buf[k++] = s[(*i)++];
        }
    }
    buf[k] = 0;
    return buf;
}

static const char *const rp_op_names[] = {"<", "<=", ">", ">="};
const char *rp_op_name(rp_op op) { return rp_op_names[op]; }

double rp_gate_limit(const rp_gate *g, double base) {
    return g->uses_base ? g->a * base + g->b : g->b;
}

bool rp_gate_pass(const rp_gate *g, double v, double base) {
    double l = rp_gate_limit(g, base);
    if (!isfinite(v)) return false;
    switch (g->op) {
    case RP_LT: return v < l;
    case RP_LE: return v <= l;
    case RP_GT: return v > l;
    case RP_GE: return v >= l;
    }
    return false;
}

static void rp_skip_sp(const char *s, int n, int *i) {
    while (*i < n && rp_is_space(s[*i])) (*i)++;
}

/* A number with an optional unit at s[*i]. */
static bool rp_number(rp_ctx *c, const char *s, int n, int *i, double *v) {
    char buf[64];
    int  k = 0, start = *i;
    while (*i < n && k < 63 && (isdigit((unsigned char)s[*i]) || s[*i] == '.' || s[*i] == 'e' ||
                                s[*i] == 'E' ||
                                (s[*i] == '-' && k == 0) ||
                                ((s[*i] == '-' || s[*i] == '+') && k > 0 &&
                                 (buf[k - 1] == 'e' || buf[k - 1] == 'E'))))
        buf[k++] = s[(*i)++];
    buf[k] = 0;
    char *end;
    errno = 0;
    double x = k ? strtod(buf, &end) : 0;
    if (!k || errno || *end || !isfinite(x))
        return rp_fail(c, start + 1, "expected a number");
    static const struct { const char *u; double m; } units[] = {
        {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0},
        {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"%", 0.01}};
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        int l = (int)strlen(units[u].u);
        if (*i + l <= n && !strncmp(s + *i, units[u].u, (size_t)l) &&
            (*i + l == n || !isalnum((unsigned char)s[*i + l]))) {
            x *= units[u].m;
            *i += l;
            break;
        }
    }
    if (*i < n && isalpha((unsigned char)s[*i]))
        return rp_fail(c, *i + 1, "unknown unit (K M G, KiB MiB GiB or %%)");
    *v = x;
    return true;
}

static bool rp_word_base(const char *s, int n, int i) {
    return i + 4 <= n && !strncmp(s + i, "base", 4) &&
           (i + 4 == n || !(isalnum((unsigned char)s[i + 4]) || s[i + 4] == '_'));
}

/* METRIC OP VALUE in s[0..n); col0: the column of s[0]. */
static bool rp_parse_gate(rp_ctx *c, const char *s, int n, int col0, rp_gate *g) {
    int i = 0;
    memset(g, 0, sizeof *g);
    rp_skip_sp(s, n, &i);
    int m = 0;
    g->mcol = col0 + i;
    while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '/')) {
        if (m >= (int)sizeof g->metric - 1) return rp_fail(c, col0 + i, "metric name too long");
        g->metric[m++] = s[i++];
    }
    if (!m) return rp_fail(c, col0 + i, "expected a metric (gate METRIC OP VALUE, e.g. gate kl < 0.05)");
    rp_skip_sp(s, n, &i);
    if (i < n && s[i] == '<') g->op = RP_LT;
    else if (i < n && s[i] == '>') g->op = RP_GT;
    else return rp_fail(c, col0 + i, "expected < <= > or >= after the metric");
    i++;
    if (i < n && s[i] == '=') {
        g->op = g->op == RP_LT ? RP_LE : RP_GE;
        i++;
    }
    rp_skip_sp(s, n, &i);
    g->vcol = col0 + i;
    if (i >= n) return rp_fail(c, col0 + i, "expected a value after %s", rp_op_name(g->op));
    if (rp_word_base(s, n, i)) {
        i += 4;
        g->uses_base = true;
        g->a = 1;
        rp_skip_sp(s, n, &i);
        if (i < n && (s[i] == '*' || s[i] == '+' || s[i] == '-')) {
            char op = s[i++];
            double x;
            rp_skip_sp(s, n, &i);
            if (!rp_number(c, s, n, &i, &x)) return false;
            if (op == '*') g->a = x;
            else g->b = op == '+' ? x : -x;
        }
    } else {
        double x;
        if (!rp_number(c, s, n, &i, &x)) return false;
        rp_skip_sp(s, n, &i);
        if (i < n && s[i] == '*') {
            i++;
            rp_skip_sp(s, n, &i);
            if (!rp_word_base(s, n, i)) return rp_fail(c, col0 + i, "expected 'base' after '*'");
            i += 4;
            g->uses_base = true;
            g->a = x;
        } else {
            g->b = x;
        }
    }
    rp_skip_sp(s, n, &i);
    if (i < n) return rp_fail(c, col0 + i, "unexpected '%c' after the gate's value", s[i]);
    if (g->uses_base && g->a == 0) g->uses_base = false;
    return true;
}

static void rp_stmt_free(rp_stmt *st) {
    for (int k = 0; k < st->n; k++) {
        free(st->w[k].key);
        free(st->w[k].val);
    }
    free(st->w);
    free(st->gate_text);
}

void rp_free(rp_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) rp_stmt_free(&f->st[i]);
    free(f->st);
    f->st = NULL;
    f->n = 0;
}

/* One line s[0..n) (no newline) into *st; *empty when it holds no statement. */
static bool rp_parse_line(rp_ctx *c, const char *s, int n, rp_stmt *st, bool *empty, bool *oom) {
    memset(st, 0, sizeof *st);
    st->line = c->line;
    *empty = true;
    for (int i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 && s[i] != '\t')
            return rp_fail(c, i + 1, "control character 0x%02x", (unsigned char)s[i]);
    int i = 0;
    rp_skip_sp(s, n, &i);
    if (i >= n || s[i] == '#') return true;
    *empty = false;
    st->w = calloc(RP_MAX_WORDS, sizeof *st->w);
    if (!st->w) return *oom = true, false;
    while (i < n && s[i] != '#') {
        if (st->n >= RP_MAX_WORDS) return rp_fail(c, i + 1, "more than %d words", RP_MAX_WORDS);
        rp_word *w = &st->w[st->n];
        w->col = i + 1;
        if (s[i] == '=') return rp_fail(c, i + 1, "'=' without a name before it");
        w->key = rp_piece(c, s, n, &i, true, oom);
        if (!w->key) return false;
        st->n++;
        if (i < n && s[i] == '=') {
            if (st->n == 1) return rp_fail(c, w->col, "a line starts with a keyword, not NAME=VALUE");
            i++;
            w->vcol = i + 1;
            if (i >= n || rp_is_space(s[i]) || s[i] == '#')
                return rp_fail(c, i + 1, "'%s=' has no value", w->key);
            w->val = rp_piece(c, s, n, &i, false, oom);
            if (!w->val) return false;
        }
        if (st->n == 1 && !strcmp(w->key, "gate")) {
            int e = i;
            while (e < n && s[e] != '#') e++;
            if (!(st->gate_text = rp_dupn(s + i, (size_t)(e - i)))) return *oom = true, false;
            /* trim for display */
            char *t = st->gate_text;
            size_t tl = strlen(t);
            while (tl && rp_is_space(t[tl - 1])) t[--tl] = 0;
            size_t lead = strspn(t, " \t");
            memmove(t, t + lead, tl - lead + 1);
            return rp_parse_gate(c, s + i, e - i, i + 1, &st->gate);
        }
        rp_skip_sp(s, n, &i);
    }
    return true;
}

bool rp_parse(const char *src, size_t len, const char *name, rp_file *out, char *err,
              size_t errcap) {
    rp_ctx c = {.name = name, .line = 0, .err = err, .errcap = errcap};
    memset(out, 0, sizeof *out);
    if (errcap) err[0] = 0;
    size_t pos = 0;
    bool   oom = false;
    while (pos < len) {
        c.line++;
        size_t e = pos;
        while (e < len && src[e] != '\n') e++;
        size_t n = e - pos;
        if (n && src[pos + n - 1] == '\r') n--;
        if (memchr(src + pos, 0, n)) {
            rp_fail(&c, (int)((const char *)memchr(src + pos, 0, n) - (src + pos)) + 1,
                 "NUL byte (not a text file)");
            goto bad;
        }
        if (n > RP_MAX_LINE) {
            rp_fail(&c, RP_MAX_LINE + 1, "line longer than %d bytes", RP_MAX_LINE);
            goto bad;
        }
        rp_stmt st;
        bool    empty;
        if (!rp_parse_line(&c, src + pos, (int)n, &st, &empty, &oom)) {
            rp_stmt_free(&st);
            if (oom) snprintf(err, errcap, "%s: out of memory", name);
            goto bad;
        }
        if (!empty) {
            if (out->n >= RP_MAX_STMTS) {
                rp_stmt_free(&st);
                rp_fail(&c, 1, "more than %d statements", RP_MAX_STMTS);
                goto bad;
            }
            if (!out->st && !(out->st = calloc(RP_MAX_STMTS, sizeof *out->st))) {
                rp_stmt_free(&st);
                snprintf(err, errcap, "%s: out of memory", name);
                goto bad;
            }
            out->st[out->n++] = st;
        } else {
            rp_stmt_free(&st);
        }
        pos = e + 1;
    }
    return true;
bad:
    rp_free(out);
    return false;
}
