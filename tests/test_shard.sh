#!/bin/sh
# test_shard.sh - sweeps split over machines (issue 20, point 3): `shrink sensitivity
# --shard I/N` measures every N-th unit, `shrink merge-results` joins the shards' --json files
# (POSIX sh; run from the repository root by tests/run_all.sh with the path of the binary):
#
#   sh tests/test_shard.sh build/shrink
#
# Reference: the unsharded run. The joined table (text) and JSON (all but "seconds") equal it
# byte for byte, for 1, 2 and 3 shards given in any order. The same for `shrink compare
# --shard I/N` (shares of the windows, per-token values joined) against `compare --no-speed`,
# 2 and 3 shards. Bad input: a shard missing, given
# twice, from another sweep (other tokens), a file that is not a sensitivity result, a --shard
# that is not I/N with 0 <= I < N: a message naming the problem, exit 1 or 2, nothing on stdout.
# Needs models/stories260K (in the repository) and ../shared/data/corpus/: missing, they are a
# failure when the shared folder is present, a counted skip (exit 77) when it is absent.
# Ends with "test_shard: N passed, N failed, N skipped"; exit 1 on any failure.
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-shard.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM

model=$(asset models/stories260K/stories260K.bin) || model=""
text=$(asset data/corpus/tinystories_val_subset.txt) || text=""
if [ -z "$model" ] || [ -z "$text" ]; then
    missing "stories260K or data/corpus/tinystories_val_subset.txt"
    sh_finish test_shard
fi
sens() { "$bin" sensitivity "$model" --calib "$text" --unit head --calib-tokens 96 "$@"; }
noseconds() { sed 's/"seconds":[^,]*,//' "$1"; }

# shard_files P N CMD...: CMD --shard i/N for every i into $tmp/P<i>-N.json; $files lists them,
# the last first (the order given does not matter)
shard_files() {
    p=$1 n=$2
    shift 2
    files=""
    i=0
    while [ $i -lt "$n" ]; do
        expect_ok "$p: --shard $i/$n" "$@" --shard $i/$n && cp "$tmp/out" "$tmp/$p$i-$n.json"
        files="$tmp/$p$i-$n.json $files"
        i=$((i + 1))
    done
}
# joined DESC REF.txt REF.json NORM: merge-results of $files equals one run, text and JSON
# (NORM drops what may differ: the seconds)
joined() {
    # shellcheck disable=SC2086
    expect_ok "merge-results $1" "$bin" merge-results $files &&
        { cmp -s "$tmp/out" "$2" && ok || bad "$1: merge differs from one run: $(diff "$tmp/out" "$2" | head -5)"; }
    # shellcheck disable=SC2086
    expect_ok "merge-results $1 --json" "$bin" merge-results $files --json &&
        { $4 "$tmp/out" | cmp -s - "$3" && ok || bad "$1: merge --json differs from one run"; }
}

expect_ok "sensitivity (reference)" sens && cp "$tmp/out" "$tmp/full.txt"
expect_ok "sensitivity --json (reference)" sens --json && noseconds "$tmp/out" > "$tmp/full.json"
for n in 1 2 3; do
    shard_files s $n sens --json
    joined "sensitivity, $n shards" "$tmp/full.txt" "$tmp/full.json" noseconds
done
grep -q '"shard":1,"shards":3,"units_total":40' "$tmp/s1-3.json" && ok ||
    bad "a shard's JSON does not say which share it holds: $(head -c 300 "$tmp/s1-3.json")"

# bad input
expect_fail "a shard missing" "shard 2 of 3 is missing" \
    "$bin" merge-results "$tmp/s0-3.json" "$tmp/s1-3.json"
expect_fail "a shard twice" "given twice" \
    "$bin" merge-results "$tmp/s0-3.json" "$tmp/s1-3.json" "$tmp/s1-3.json" "$tmp/s2-3.json"
expect_ok "sensitivity --shard 1/2, other tokens" sens --json --shard 1/2 --calib-tokens 64 &&
    cp "$tmp/out" "$tmp/other.json"
expect_fail "shards of two sweeps" "calib_tokens differs" \
    "$bin" merge-results "$tmp/s0-2.json" "$tmp/other.json"
echo '{"a":1}' > "$tmp/not.json"
expect_fail "not a sensitivity result" "not the --json output of shrink sensitivity" \
    "$bin" merge-results "$tmp/not.json"
expect_fail "merge-results of a missing file" "$tmp/none.json" \
    "$bin" merge-results "$tmp/none.json"
for s in 3/3 1/0 x 1 -1/2 1/2/3; do
    expect_fail "--shard $s" "--shard '$s'" sens --shard "$s"
done

# compare --shard I/N: shares of the windows; merge-results joins the per-token values into the
# unsharded `compare --no-speed` output (text, and JSON but for eval_seconds and threads) for 2
# and 3 shards given in any order
"$bin" quantize "$model" "$tmp/q.gguf" q4_0 >/dev/null 2>&1 || bad "quantize for compare"
cmpr() { "$bin" compare "$model" "$tmp/q.gguf" --text "$text" --tokens 300 --ctx 64 "$@"; }
norm() { sed 's/"eval_seconds":[^,]*,//g; s/"threads":[^,]*,//' "$1"; }
expect_ok "compare (reference)" cmpr --no-speed && cp "$tmp/out" "$tmp/cfull.txt"
expect_ok "compare --json (reference)" cmpr --no-speed --json && norm "$tmp/out" > "$tmp/cfull.json"
for n in 2 3; do
    shard_files c $n cmpr
    joined "compare, $n shards" "$tmp/cfull.txt" "$tmp/cfull.json" norm
done
grep -q '"windows_total":9,"windows":3,"shard":1,"shards":3' "$tmp/c1-3.json" && ok ||
    bad "a compare shard does not say which share it holds: $(head -c 300 "$tmp/c1-3.json")"
expect_fail "compare: a shard missing" "shard 1 of 3 is missing" \
    "$bin" merge-results "$tmp/c0-3.json" "$tmp/c2-3.json"
expect_fail "compare: a shard twice" "given twice" \
    "$bin" merge-results "$tmp/c0-2.json" "$tmp/c1-2.json" "$tmp/c0-2.json"
expect_fail "compare: shards of two comparisons" "number of shards differs" \
    "$bin" merge-results "$tmp/c0-2.json" "$tmp/c1-3.json"
sh_finish test_shard
