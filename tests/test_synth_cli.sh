#!/bin/sh
# test_synth_cli.sh - end-to-end tests of `shrink synth` (POSIX sh; run from the repository root
# by tests/run_all.sh with the binary):
#
#   sh tests/test_synth_cli.sh build/shrink
#
# On stories260K: the token file has the header and exactly --tokens tokens; the same seed
# gives the same bytes with 2 threads / batch 2 and 1 thread / batch 3; another seed other
# bytes; --temp 0 without prompts starts with BOS and then exactly `shrink generate --temp 0`'s
# tokens (an independent path: one context, streaming); with --prompts the file starts with
# the prompt's ids as generate encodes them; shrink train reads the file (--data). Bad input:
# no --tokens, an empty or non-UTF-8 prompts file, --top-p 0: a message, non-zero exit, no
# output.
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-synth-cli.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM
finish() { sh_finish test_synth_cli; }

model=$(asset models/stories260K/stories260K.bin) || model=""
if [ -z "$model" ]; then
    missing "models/stories260K/stories260K.bin"
    finish
fi
# the ids of a token file (2-byte tokens after the 32-byte header), one per line
ids() { od -An -v -tu2 -j32 "$1" | tr -s ' ' '\n' | grep -v '^$'; }

if expect_ok "synth 2 threads batch 2" "$bin" synth "$model" "$tmp/a.tok" --tokens 1500 --seed 7 --threads 2 --batch 2 --max-len 200 --json; then
    grep -q '"n_tokens":1500' "$tmp/out" && ok || bad "n_tokens: $(cat "$tmp/out")"
fi
head -c 8 "$tmp/a.tok" | grep -q SKTOKENS && ok || bad "no SKTOKENS header"
[ "$(ids "$tmp/a.tok" | wc -l)" -eq 1500 ] && ok || bad "$(ids "$tmp/a.tok" | wc -l) ids, want 1500"
expect_ok "synth 1 thread batch 3" "$bin" synth "$model" "$tmp/b.tok" --tokens 1500 --seed 7 --threads 1 --batch 3 --max-len 200
cmp -s "$tmp/a.tok" "$tmp/b.tok" && ok || bad "same seed, other threads/batch: other bytes"
expect_ok "synth seed 8" "$bin" synth "$model" "$tmp/c.tok" --tokens 1500 --seed 8 --max-len 200
cmp -s "$tmp/a.tok" "$tmp/c.tok" && bad "another seed: the same bytes" || ok

# greedy from BOS = shrink generate --temp 0
expect_ok "synth greedy" "$bin" synth "$model" "$tmp/g.tok" --tokens 60 --temp 0
ids "$tmp/g.tok" >"$tmp/g.ids"
if expect_ok "generate greedy" "$bin" generate "$model" -n 59 --temp 0 --json; then
    { echo 1; sed 's/.*"tokens":\[\([0-9,]*\)\].*/\1/' "$tmp/out" | tr ',' '\n'; } >"$tmp/gen.ids"
    cmp -s "$tmp/g.ids" "$tmp/gen.ids" && ok || bad "greedy synth != generate: $(diff "$tmp/g.ids" "$tmp/gen.ids" | head -5)"
fi

# prompts: the file starts with the prompt's ids (as generate encodes them)
printf 'Once upon a time\n\nThe dog\n' >"$tmp/prompts.txt"
expect_ok "synth --prompts" "$bin" synth "$model" "$tmp/p.tok" --tokens 400 --prompts "$tmp/prompts.txt" --max-len 100
if expect_ok "generate prompt ids" "$bin" generate "$model" -p "Once upon a time" -n 1 --json; then
    sed 's/.*"prompt_tokens":\[\([0-9,]*\)\].*/\1/' "$tmp/out" | tr ',' '\n' >"$tmp/pp.ids"
    n=$(wc -l <"$tmp/pp.ids")
    ids "$tmp/p.tok" | head -n "$n" >"$tmp/p.ids"
    cmp -s "$tmp/p.ids" "$tmp/pp.ids" && ok || bad "the file does not start with the prompt's ids"
fi

# shrink train reads it
expect_ok "train --data on the synthetic file" "$bin" train "$model" --data "$tmp/a.tok" --steps 1 --batch 1 --ctx 16 --out "$tmp/tr" --threads 1

# bad input
expect_fail "no --tokens" "--tokens" "$bin" synth "$model" "$tmp/x1.tok"
: >"$tmp/empty.txt"
expect_fail "empty prompts" "no prompt" "$bin" synth "$model" "$tmp/x2.tok" --tokens 10 --prompts "$tmp/empty.txt"
printf 'ab\377cd\n' >"$tmp/bin.txt"
expect_fail "non-UTF-8 prompts" "UTF-8" "$bin" synth "$model" "$tmp/x3.tok" --tokens 10 --prompts "$tmp/bin.txt"
expect_fail "--top-p 0" "top-p" "$bin" synth "$model" "$tmp/x4.tok" --tokens 10 --top-p 0
for i in 1 2 3 4; do
    [ -e "$tmp/x$i.tok" ] && bad "x$i.tok written on bad input" || ok
done
expect_ok "--help" "$bin" synth --help
finish
