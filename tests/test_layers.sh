#!/bin/sh
# test_layers.sh - the layer rule of docs/architecture.md, checked over the `#include "..."`
# lines of src/**: a folder may include its own files and those of LOWER levels only. It fails
# (and prints file:line) when a lower folder includes a higher one, when two folders of the
# same level include each other (operations stay independent), or when a folder under src/ has
# no level yet (give it one below and in docs/architecture.md).
#
#   sh tests/test_layers.sh              self-test on synthetic trees, then the check of ./src
#   sh tests/test_layers.sh --root DIR   the check of DIR/src only
#
# POSIX sh, find, grep and sed only. Exit 0: clean; 1: violations (or the self-test failed).

# The levels, lowest first: one line per level, the folders of src/ on it. This list and the
# diagram in docs/architecture.md are the same; change both together.
LEVELS='core
kernels
tokenizer
formats
model
eval
convert quant train prune distill lora lowrank recipes'

# The level (line number in LEVELS) of folder $1; empty if it has none.
level_of() {
    printf '%s\n' "$LEVELS" | grep -n -w -- "$1" | sed 's/:.*//'
}

# Removes "dir/../" and "/./" from a path.
normalize() {
    printf '%s\n' "$1" | sed -e 's|/\./|/|g' -e ':a' -e 's|[^/][^/]*/\.\./||' -e 'ta'
}

# Checks DIR/src; prints one line per violation; returns 1 if there is any.
check_tree() {
    root=$1
    out=$(mktemp) || return 1
    (
        cd "$root" || exit 1
        find src -type f \( -name '*.c' -o -name '*.h' \) | sort | while read -r f; do
            from=$(printf '%s\n' "$f" | sed 's|^src/\([^/]*\)/.*|\1|')
            from_level=$(level_of "$from")
            if [ -z "$from_level" ]; then
                echo "$f: folder src/$from has no level (add it to LEVELS in tests/test_layers.sh and to docs/architecture.md)"
                continue
            fi
            dir=$(dirname "$f")
            grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
                sed 's/^\([0-9]*\):.*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1 \2/' |
                while read -r line inc; do
                    target=$(normalize "$dir/$inc")
                    [ -f "$target" ] || continue          # not under src/ (include/shrink.h, ...)
                    case "$target" in src/*/*) ;; *) continue ;; esac
                    to=$(printf '%s\n' "$target" | sed 's|^src/\([^/]*\)/.*|\1|')
                    [ "$to" = "$from" ] && continue
                    to_level=$(level_of "$to")
                    if [ -z "$to_level" ]; then
                        echo "$f:$line: includes $inc, in src/$to which has no level"
                    elif [ "$to_level" -gt "$from_level" ]; then
                        echo "$f:$line: $from (level $from_level) includes $inc of $to (level $to_level): a lower folder must not include a higher one"
                    elif [ "$to_level" -eq "$from_level" ]; then
                        echo "$f:$line: $from includes $inc of $to, on the same level (level $to_level): folders of one level must not include each other"
                    fi
                done
        done
    ) >"$out"
    rc=0
    if [ -s "$out" ]; then
        cat "$out"
        rc=1
    fi
    rm -f "$out"
    return $rc
}

# Synthetic trees: the check must pass a clean one and fail each kind of violation.
self_test() {
    tmp=$(mktemp -d) || return 1
    fails=0
    mk() { mkdir -p "$tmp/$1/src/$(dirname "$2")" && printf '%s\n' "$3" >"$tmp/$1/src/$2"; }
    # clean: model includes formats and core, quant includes model, same-folder includes
    mk clean core/core.h '#include "shrink.h"'
    mk clean formats/formats.h '#include "../core/core.h"'
    mk clean model/model.h '#include "../formats/formats.h"'
    mk clean kernels/x86/k.c '#include "../../core/core.h"'
    mk clean quant/q.c '#include "q.h"
#include "../model/model.h"'
    mk clean quant/q.h '#include "../core/core.h"'
    # upward: formats includes model
    mk up core/core.h ''
    mk up model/model.h '#include "../core/core.h"'
    mk up formats/f.h '/* a reader */
#include "../model/model.h"'
    # sideways: two operations
    mk side core/core.h ''
    mk side convert/c.c '#include "../quant/q.h"'
    mk side quant/q.h '#include "../core/core.h"'
    # a folder without a level
    mk nolevel core/core.h ''
    mk nolevel newthing/n.c '#include "../core/core.h"'

    if ! check_tree "$tmp/clean" >"$tmp/out"; then
        echo "self-test: a clean tree failed:"; cat "$tmp/out"; fails=1
    fi
    for case in "up:src/formats/f.h:2:" "side:src/convert/c.c:1:" "nolevel:src/newthing/n.c:"; do
        name=${case%%:*}
        want=${case#*:}
        if check_tree "$tmp/$name" >"$tmp/out"; then
            echo "self-test: tree '$name' passed, expected a violation at $want"; fails=1
        elif ! grep -q "^$want" "$tmp/out"; then
            echo "self-test: tree '$name' failed without naming $want:"; cat "$tmp/out"; fails=1
        fi
    done
    rm -rf "$tmp"
    return $fails
}

if [ "$1" = "--root" ]; then
    check_tree "$2"
    exit $?
fi
if ! self_test; then
    echo "test_layers.sh: self-test FAILED"
    exit 1
fi
if ! check_tree .; then
    echo "test_layers.sh: FAILED (layers: docs/architecture.md)"
    exit 1
fi
echo "test_layers.sh: the includes of src/ only point down"
exit 0
