/*
 * recipe_parse.h - the syntax of a recipe file (docs/recipes.md), libc only so that the fuzz
 * target (fuzz/fuzz_recipe.c) compiles it alone. recipe.c gives the words their meaning
 * (steps, options, gates) and checks them against the commands' option tables.
 *
 * A recipe is UTF-8 text, one statement per line:
 *     # a comment, to the end of the line (outside a quoted value)
 *     KEYWORD WORD... KEY=VALUE...
 *     gate EXPRESSION
 * Words are separated by spaces or tabs; a value may be "double quoted" (\" and \\ inside).
 * A word holding '=' is KEY=VALUE. After `gate` the rest of the line is kept as one
 * expression: METRIC OP VALUE with OP one of < <= > >= and VALUE a number (with an optional
 * unit: K M G = 1e3.., KiB MiB GiB = 2^10.., %), `base`, `NUMBER * base`, `base * NUMBER`,
 * `base + NUMBER` or `base - NUMBER` (base: the same metric of the recipe's input model).
 */
#ifndef SHRINK_RECIPE_PARSE_H
#define SHRINK_RECIPE_PARSE_H

#include <stdbool.h>
#include <stddef.h>

enum { RP_MAX_WORDS = 64, RP_MAX_STMTS = 1024, RP_MAX_LINE = 65536 };

typedef struct rp_word {
    char *key;      /* the word, or the KEY of KEY=VALUE (unquoted, malloc'd) */
    char *val;      /* the VALUE of KEY=VALUE (unquoted, malloc'd), NULL for a plain word */
    int   col;      /* 1-based column (bytes) of the word */
    int   vcol;     /* column of the value */
} rp_word;

typedef enum rp_op { RP_LT, RP_LE, RP_GT, RP_GE } rp_op;

typedef struct rp_gate {
    char   metric[32];
    int    mcol;          /* column of the metric */
    rp_op  op;
    double a, b;          /* limit = a * base + b */
    bool   uses_base;     /* a != 0 */
    int    vcol;          /* column of the value */
} rp_gate;

typedef struct rp_stmt {
    int      line;
    rp_word *w;           /* w[0] is the keyword */
    int      n;
    char    *gate_text;   /* `gate`: the expression as written (malloc'd), else NULL */
    rp_gate  gate;
} rp_stmt;

typedef struct rp_file {
    rp_stmt *st;
    int      n;
} rp_file;

/* Parses src[0..len) (a NUL byte is an error). On failure returns false with
 * "NAME:LINE:COL: problem" in err and nothing allocated in *out. */
bool rp_parse(const char *src, size_t len, const char *name, rp_file *out, char *err,
              size_t errcap);
void rp_free(rp_file *f);
/* The text of an operator: "<", "<=", ">", ">=". */
const char *rp_op_name(rp_op op);
/* Whether value v passes the gate with the base's value base. */
bool rp_gate_pass(const rp_gate *g, double v, double base);
double rp_gate_limit(const rp_gate *g, double base);

#endif /* SHRINK_RECIPE_PARSE_H */
