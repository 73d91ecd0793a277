/*
 * fuzz_recipe.c - libFuzzer target: the recipe file parser (tools/cli/recipe_parse.c: lines,
 * words, KEY=VALUE, quoted values, gate expressions; docs/recipes.md), which reads a file the
 * user or anyone else wrote. Checks what the parser promises: on success every statement has a
 * keyword, every word a text, every gate its expression; on failure an error message with a
 * line and column and nothing allocated (leaks are ASan findings).
 */
#include "../tools/cli/recipe_parse.c"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rp_file f;
    char    err[700];
    if (rp_parse((const char *)data, size, "fuzz.recipe", &f, err, sizeof err)) {
        volatile size_t sink = 0;
        for (int i = 0; i < f.n; i++) {
            const rp_stmt *st = &f.st[i];
            if (st->n < 1 || !st->w[0].key || st->line < 1) __builtin_trap();
            for (int k = 0; k < st->n; k++) {
                sink += strlen(st->w[k].key) + (st->w[k].val ? strlen(st->w[k].val) : 0);
                if (st->w[k].col < 1) __builtin_trap();
            }
            if (!strcmp(st->w[0].key, "gate") && st->w[0].val == NULL) {
                if (!st->gate_text || !st->gate.metric[0]) __builtin_trap();
                sink += rp_gate_pass(&st->gate, 1.0, 2.0) + strlen(rp_op_name(st->gate.op));
            }
        }
        (void)sink;
        rp_free(&f);
    } else if (strncmp(err, "fuzz.recipe:", 12) != 0) {
        __builtin_trap();   /* every error names the file (and line:col) */
    }
    return 0;
}
