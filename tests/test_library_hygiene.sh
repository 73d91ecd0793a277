#!/bin/sh
# test_library_hygiene.sh BUILD - what the library must never do (issue 10):
#   1. src/ calls no printf/fprintf/puts/perror/exit/abort (nor names stdout/stderr) outside
#      the single assertion handler (sk_abort in src/core/status.c); comments and string
#      literals are stripped first, so prose does not count;
#   2. BUILD/libshrink.a defines only shrink_* and sk_* global symbols (nm), and
#      BUILD/libshrink.so exports only shrink_* dynamic symbols;
#   3. no string literal in src/ (the messages a user reads) names an internal function:
#      none holds a shrink_* or sk_* identifier, and none starts with the name of a function
#      defined or called in src/ followed by ':' or '(' ("gemm_acc: ..."); messages name the
#      file, option or value the user gave (issue 17). #include lines are exempt.
# Each check first proves on planted violations that it can fail; a missing tool (cc, nm) is
# a failure, never a pass. Exit 0 = all good, 1 = a violation or a broken check.
build=${1:-build}
CC=${CC:-cc}
NM=${NM:-nm}
fails=0
fail() { echo "test_library_hygiene: FAIL: $*"; fails=$((fails + 1)); }

tmp=$(mktemp -d) || { echo "test_library_hygiene: FAIL: mktemp"; exit 1; }
trap 'rm -rf "$tmp"' EXIT

# ---- 1. no printing or exiting in src/ ----------------------------------------------------

# a call of one of these, or any use of the standard streams
CALLS='(printf|vprintf|fprintf|vfprintf|dprintf|puts|fputs|putchar|perror'
CALLS="$CALLS"'|exit|_exit|_Exit|quick_exit|abort)[[:space:]]*\('
STREAMS='(stdout|stderr)([^A-Za-z0-9_]|$)'

# Prints the lines of $2 (if any), each after the prefix $1; returns 1 if there were any.
report_hits() {
    [ -n "$2" ] || return 0
    printf '%s\n' "$2" | sed "s|^|$1|"
    return 1
}

# The code of C file $1 without comments (the compiler's own lexer: -fpreprocessed removes
# comments and expands nothing) and without string and character literals.
strip_c() {
    "$CC" -fpreprocessed -dD -E -P -x c "$1" 2>/dev/null > "$tmp/stripped" || return 1
    sed -E -e 's/"([^"\\]|\\.)*"/""/g' -e "s/'([^'\\\\]|\\\\.)*'/''/g" "$tmp/stripped"
}

# Prints "file: line" for every forbidden call in the files given; returns 1 if any (or if a
# file cannot be read). The body of sk_abort (the assertion handler) is exempt.
check_calls() {
    bad=0
    for f in "$@"; do
        code=$(strip_c "$f") ||
            { echo "$f: cannot strip comments (is $CC there?)"; bad=1; continue; }
        hits=$(printf '%s\n' "$code" | awk '
            /^_Noreturn void sk_abort\(/ { skip = 1 }
            !skip { print }
            skip && /^}/ { skip = 0 }' | grep -nE "(^|[^A-Za-z0-9_.>])($CALLS|$STREAMS)")
        report_hits "$f (comments stripped), line " "$hits" || bad=1
    done
    return $bad
}

# self-test: planted calls must be found, and prose, strings and lookalikes must not
cat > "$tmp/planted.c" <<'EOF'
#include <stdio.h>
void f(int x) { if (x) printf("%d\n", x); }
EOF
cat > "$tmp/planted_exit.c" <<'EOF'
/* a comment may say printf("x") and exit(1) */
static void g(void) { exit (2); }
EOF
cat > "$tmp/planted_stream.c" <<'EOF'
#include <stdio.h>
void k(const char *m) { fwrite(m, 1, 1, stderr); }
EOF
cat > "$tmp/clean.c" <<'EOF'
/* printf(); abort(); exit(1); in a comment
 * over lines */
// puts("x") in a line comment
static const char *s = "call printf(\"x\") or abort()";
static void sk_out_abort(void) {}
static void tb_printf(const char *f) { (void)f; }
__attribute__((format(printf, 1, 2))) void h(const char *fmt, ...);
int my_stderr_count, exit_code;
static int n(void) { char b[8]; sk_out_abort(); tb_printf("x"); return snprintf(b, 8, "e"); }
_Noreturn void sk_abort(const char *file, int line, const char *expr) {
    fprintf(stderr, "%s:%d: %s\n", file, line, expr);
    abort();
}
EOF
check_calls "$tmp/planted.c" > /dev/null && fail "self-test: a planted printf was not found"
check_calls "$tmp/planted_exit.c" > /dev/null && fail "self-test: a planted exit was not found"
check_calls "$tmp/planted_stream.c" > /dev/null && fail "self-test: a planted stderr was not found"
check_calls "$tmp/clean.c" > "$tmp/out" || { cat "$tmp/out"; fail "self-test: clean code flagged"; }
CC=/nonexistent/cc check_calls "$tmp/clean.c" > /dev/null && fail "self-test: no compiler passed"

# the library itself
files=$(find src -name '*.[ch]' | sort)
[ -n "$files" ] || fail "no sources under src/ (run from the repository root)"
# shellcheck disable=SC2086
check_calls $files > "$tmp/out" || { cat "$tmp/out"; fail "src/ prints or exits (above)"; }

# ---- 3. messages never name an internal function ------------------------------------------

# The function names used in files $@ (identifiers with an underscore followed by '(' in the
# code without comments and string literals), one per line.
func_names() {
    for f in "$@"; do
        strip_c "$f" || { echo "$f: cannot strip comments" >&2; return 1; }
    done | grep -oE '[A-Za-z_][A-Za-z0-9]*_[A-Za-z0-9_]*[[:space:]]*\(' |
        sed -E 's/[[:space:]]*\($//' | sort -u
}

# Prints "file: literal" for every string literal in files $2... that names an internal
# function; $1 is the file of function names. Returns 1 if any (or a file cannot be read).
check_messages() {
    names=$1; shift
    bad=0
    for f in "$@"; do
        "$CC" -fpreprocessed -dD -E -P -x c "$f" 2>/dev/null > "$tmp/msg_code" ||
            { echo "$f: cannot strip comments (is $CC there?)"; bad=1; continue; }
        grep -vE '^[[:space:]]*#[[:space:]]*include' "$tmp/msg_code" |
            grep -oE '"([^"\\]|\\.)*"' > "$tmp/msg_lits"
        hits=$(grep -E '(^|[^A-Za-z0-9_])(shrink|sk)_[A-Za-z0-9_]*[A-Za-z0-9]' "$tmp/msg_lits")
        for n in $(sed -nE 's/^"([A-Za-z_][A-Za-z0-9]*_[A-Za-z0-9_]*)[:(].*/\1/p' \
                   "$tmp/msg_lits" | sort -u); do
            grep -qxF "$n" "$names" && hits="$hits
$(grep -E "^\"$n[:(]" "$tmp/msg_lits")"
        done
        hits=$(printf '%s\n' "$hits" | sed '/^$/d' | sort -u)
        report_hits "$f: " "$hits" || bad=1
    done
    return $bad
}

# self-test: planted messages must be found; file names, options and prose must not
cat > "$tmp/msg_bad1.c" <<'EOF'
int sk_error(int, const char *, ...);
int f(int id) { return sk_error(1, "shrink_context_eval: token id %d", id); }
EOF
cat > "$tmp/msg_bad2.c" <<'EOF'
int sk_error(int, const char *, ...);
static int g(int n) { return n ? sk_error(1, "%s: %d bytes", "sk_train_loss", n) : 0; }
EOF
cat > "$tmp/msg_bad3.c" <<'EOF'
int sk_error(int, const char *, ...);
static int gemm_acc(int n) { return sk_error(1, "gemm_acc: %d bytes left", n); }
EOF
cat > "$tmp/msg_ok.c" <<'EOF'
#include "shrink_quants.h"
int sk_error(int, const char *, ...);
/* a comment may say shrink_model_load: failed */
static int h(const char *p, int n_ctx) {
    return sk_error(1, "%s: n_ctx %d exceeds the context (--ctx); .shrink-tmp and "
                    "SHRINK_KERNELS=ref are fine, so is model.safetensors", p, n_ctx);
}
EOF
func_names "$tmp/msg_bad3.c" "$tmp/msg_ok.c" > "$tmp/msg_names" ||
    fail "self-test: cannot list the function names"
grep -qxF gemm_acc "$tmp/msg_names" || fail "self-test: gemm_acc not among the function names"
for b in 1 2 3; do
    check_messages "$tmp/msg_names" "$tmp/msg_bad$b.c" > /dev/null &&
        fail "self-test: the planted message msg_bad$b.c was not found"
done
check_messages "$tmp/msg_names" "$tmp/msg_ok.c" > "$tmp/out" ||
    { cat "$tmp/out"; fail "self-test: clean messages flagged"; }
CC=/nonexistent/cc check_messages "$tmp/msg_names" "$tmp/msg_ok.c" > /dev/null &&
    fail "self-test: no compiler passed the message check"

# the library itself
# shellcheck disable=SC2086
func_names $files > "$tmp/names" || fail "cannot list the function names of src/"
[ -s "$tmp/names" ] || fail "no function names found in src/"
# shellcheck disable=SC2086
check_messages "$tmp/names" $files > "$tmp/out" || { cat "$tmp/out"
    fail "src/ messages name internal functions (above): name the file, option or value"; }

# ---- 2. exported symbols ------------------------------------------------------------------

# Global symbols defined in archive/object $1 that are not shrink_* or sk_*; returns 1 on
# any (or when nm fails or lists no shrink_ symbol at all: a check that sees nothing fails).
check_static() {
    syms=$("$NM" -g --defined-only "$1" 2>/dev/null) || { echo "$NM failed on $1"; return 1; }
    # ASan's ODR indicators (__odr_asan.<global>) count as the global they stand for
    names=$(printf '%s\n' "$syms" | awk 'NF >= 3 { sub(/^__odr_asan\./, "", $3); print $3 }')
    printf '%s\n' "$names" | grep -q '^shrink_' || { echo "$1: no shrink_ symbol seen"; return 1; }
    other=$(printf '%s\n' "$names" | grep -v '^\(shrink_\|sk_\)' | sort -u)
    [ -z "$other" ] || { printf '%s: %s\n' "$1" $other; return 1; }
}

# Dynamic symbols exported by shared object $1 that are not shrink_*.
check_dynamic() {
    syms=$("$NM" -D --defined-only "$1" 2>/dev/null) || { echo "$NM failed on $1"; return 1; }
    names=$(printf '%s\n' "$syms" | awk 'NF >= 3 { print $3 }')
    printf '%s\n' "$names" | grep -q '^shrink_' || { echo "$1: no shrink_ symbol seen"; return 1; }
    other=$(printf '%s\n' "$names" | grep -v '^shrink_' | sort -u)
    [ -z "$other" ] || { printf '%s: %s\n' "$1" $other; return 1; }
}

# self-test: a planted unprefixed global and a planted hidden-less sk_ export must fail
cat > "$tmp/syms.c" <<'EOF'
int shrink_fine(void);
int shrink_fine(void) { return 1; }
int sk_fine_internal(void);
int sk_fine_internal(void) { return 2; }
int matmul_forward(void);
int matmul_forward(void) { return 3; }
EOF
cat > "$tmp/syms_ok.c" <<'EOF'
int shrink_fine(void);
int shrink_fine(void) { return 1; }
int sk_fine_internal(void);
int sk_fine_internal(void) { return 2; }
EOF
if "$CC" -c -fPIC -o "$tmp/syms.o" "$tmp/syms.c" 2>/dev/null &&
   "$CC" -shared -o "$tmp/libsyms.so" "$tmp/syms.o" 2>/dev/null; then
    check_static "$tmp/syms.o" > /dev/null && fail "self-test: planted matmul_forward passed nm"
    check_dynamic "$tmp/libsyms.so" > /dev/null && fail "self-test: planted .so exports passed"
    NM=/nonexistent/nm check_static "$tmp/syms.o" > /dev/null &&
        fail "self-test: a missing nm passed"
    if "$CC" -c -fPIC -o "$tmp/syms_ok.o" "$tmp/syms_ok.c" 2>/dev/null; then
        check_static "$tmp/syms_ok.o" > "$tmp/out" ||
            { cat "$tmp/out"; fail "self-test: only shrink_/sk_ symbols, yet flagged"; }
    else
        fail "self-test: cannot compile the clean symbols with $CC"
    fi
else
    fail "self-test: cannot compile the planted symbols with $CC"
fi

command -v "$NM" > /dev/null 2>&1 || fail "$NM not found (binutils): the symbol checks cannot run"
for lib in "$build/libshrink.a" "$build/libshrink.so"; do
    [ -f "$lib" ] || { fail "$lib missing (make lib first)"; continue; }
done
[ -f "$build/libshrink.a" ] && { check_static "$build/libshrink.a" > "$tmp/out" ||
    { cat "$tmp/out"; fail "libshrink.a defines symbols outside shrink_*/sk_* (above)"; }; }
[ -f "$build/libshrink.so" ] && { check_dynamic "$build/libshrink.so" > "$tmp/out" ||
    { cat "$tmp/out"; fail "libshrink.so exports symbols outside shrink_* (above)"; }; }

if [ $fails -ne 0 ]; then exit 1; fi
echo "test_library_hygiene: ok (src/ prints and exits nowhere, its messages name no"
echo "  internal function; only shrink_*/sk_* symbols)"
exit 0
