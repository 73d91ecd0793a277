#!/bin/sh
# test_docs.sh - every command in the documentation runs as written (POSIX sh; run from the
# repository root by tests/run_all.sh with the path of the binary):
#
#   sh tests/test_docs.sh build/shrink [FILE.md...]
#
# The fence of a code block says what it is (README.md, "Documentation that runs"):
#   ```sh           commands: run by this test
#   ```sh-slow      commands that take minutes, install, or need root: not run
#   ```sh-llamacpp  commands that need llama.cpp's tools: not run
#   ```console      a session with "$ " prompts and its output: not run
#   ```text / ```   usage lines, output, formulas: not run
#   ```c            C source; a block whose first line is "/* NAME.c */" is written to NAME.c
#                   in the scratch folder before the doc's sh blocks run (README's app.c)
# Every ```sh block of README.md and docs/**/*.md (or of the FILEs given) runs with `sh -e` in
# a scratch folder of its document, the blocks of one document in order in the same folder
# (a later block may use a file an earlier one wrote). The folder holds links to the
# repository's build (the folder of the binary, as build/), models/, tests/, include/, recipes/ and
# docs/, with the shared folder linked as ../shared, and `shrink` on the PATH, so a block may
# write `shrink ...` or `build/shrink ...`, `models/...`, `tests/fixtures/...` and
# `../shared/...`. A block fails when a command fails (non-zero exit) or it runs over 120 s;
# the failure names the file and line of the block and shows its stderr.
#
# The shared folder is $SHRINK_SHARED, else ../shared: the docs use it, so without it the test
# exits 77 (skipped). Under sanitizers (ASAN_OPTIONS/UBSAN_OPTIONS set: make asan-check) it
# exits 77 too: the documentation does not change between builds and the plain `make check`
# runs every block. Ends with "test_docs: N passed, N failed (M blocks not run: sh-slow,
# sh-llamacpp)"; exit 1 on any failure. VERBOSE=1 prints each block's wall time.
set -u
bin=${1:-build/shrink}
[ $# -gt 0 ] && shift
notrun=0

root=$(pwd)
[ -f "$root/README.md" ] && [ -d "$root/docs" ] || { echo "test_docs: run from the repository root"; exit 1; }
. tests/sh_lib.sh
[ -x "$bin" ] || { echo "test_docs: $bin is not an executable; build it with make"; exit 1; }
if [ ! -d "$shared" ]; then
    echo "test_docs: the documentation's commands use the shared folder $shared, which is absent"
    exit 77
fi
if [ -n "${ASAN_OPTIONS:-}${UBSAN_OPTIONS:-}" ]; then
    echo "test_docs: not under sanitizers (the plain make check runs every documentation block)"
    exit 77
fi
shared=$(cd "$shared" && pwd)
bindir=$(cd "$(dirname "$bin")" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-docs.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM
mkdir -p "$tmp/path"
ln -s "$bindir/$(basename "$bin")" "$tmp/path/shrink"

if [ $# -gt 0 ]; then
    files="$*"
else
    files="README.md $(find docs -name '*.md' | sort)"
fi

# extract FILE DIR: writes each ```sh block of FILE to DIR/NNN.sh (first line "# FILE:LINE"),
# each ```c block that starts with "/* NAME.c */" to DIR/NAME.c; prints the blocks not run.
extract() {
    awk -v dir="$2" -v file="$1" '
        function close_block() { if (out != "") close(out); out = ""; inblock = 0 }
        !inblock && /^```/ {
            lang = substr($0, 4); sub(/[ \t]+$/, "", lang)
            inblock = 1; out = ""; first = 1
            if (lang == "sh") {
                n++; out = sprintf("%s/%03d.sh", dir, n)
                printf "# %s:%d\n", file, NR > out
            } else if (lang == "sh-slow" || lang == "sh-llamacpp") {
                skipped++
            } else if (lang == "c") {
                cblock = 1
            }
            next
        }
        inblock && /^```[ \t]*$/ { close_block(); cblock = 0; next }
        inblock {
            if (cblock && first) {
                if (match($0, /^\/\* [A-Za-z0-9_.-]+\.c \*\/$/)) {
                    name = $2; out = dir "/" name
                }
            }
            first = 0
            if (out != "") print > out
        }
        END { print skipped + 0 }
    ' "$1"
}

for f in $files; do
    [ -f "$f" ] || { bad "$f: no such file"; continue; }
    name=$(echo "$f" | tr '/' '_')
    blocks="$tmp/blocks/$name"
    work="$tmp/run/$name/work"
    mkdir -p "$blocks" "$work"
    ln -s "$shared" "$tmp/run/$name/shared"
    ln -s "$bindir" "$work/build"
    for d in models tests include docs recipes; do ln -s "$root/$d" "$work/$d"; done
    n_not=$(extract "$f" "$blocks")
    notrun=$((notrun + n_not))
    for c in "$blocks"/*.c; do [ -f "$c" ] && cp "$c" "$work/"; done
    for b in "$blocks"/*.sh; do
        [ -f "$b" ] || continue
        where=$(head -n 1 "$b" | sed 's/^# //')
        t0=$(date +%s)
        ( cd "$work" && PATH="$tmp/path:$PATH" timeout 120 sh -e "$b" ) >"$tmp/out" 2>"$tmp/err"
        rc=$?
        [ -n "${VERBOSE:-}" ] && echo "$where: $(($(date +%s) - t0)) s"
        if [ $rc -eq 0 ]; then
            ok
        else
            bad "$where: exit $rc$( [ $rc -eq 124 ] && echo ' (over 120 s: mark the block sh-slow or make it smaller)'):
$(sed -n '2,$p' "$b" | head -n 8)
--- stderr:
$(tail -n 8 "$tmp/err")"
        fi
    done
done

echo "test_docs: $pass passed, $fail failed ($notrun blocks not run: sh-slow, sh-llamacpp)"
[ $fail -eq 0 ]
