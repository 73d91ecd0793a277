#!/bin/sh
# test_teacher_cache.sh - `shrink distill --teacher-cache DIR` (POSIX sh; run from the repository
# root by tests/run_all.sh with the binary):
#
#   sh tests/test_teacher_cache.sh build/shrink
#
# Teacher stories260K, student its 2-layer cut (shrink student), data 2500 bytes of its
# perplexity text.
# The reference is the run without the cache (the teacher run on every batch): with the cache
# built, and again reused, every step's loss is the same number and the final model the same
# bytes (top-K and weak modes, sequential windows); random windows with the cache (aligned at
# multiples of --ctx) give the same run twice and reuse the file. A cache with one byte of its
# rows changed, one cut short, one with a bad header: a message naming the problem, exit 1,
# no model written. --teacher-cache without --top-k / --mode weak: a usage error.
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-tcache.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM
finish() { sh_finish test_teacher_cache; }

model=$(asset models/stories260K/stories260K.bin) || model=""
text=$(asset fixtures/stories260K/ppl_text.txt) || text=""
if [ -z "$model" ] || [ -z "$text" ]; then
    missing "stories260K or fixtures/stories260K/ppl_text.txt"
    finish
fi
head -c 2500 "$text" >"$tmp/d.txt"  # about 800 tokens: 25 windows of 32 to cache
expect_ok "tokenize" "$bin" tokenize "$tmp/d.txt" "$tmp/d.tok" --model "$model" || finish
expect_ok "cut the student" "$bin" student "$model" "$tmp/s.gguf" --layers 2 || finish

# distill NAME [extra options]: the step losses in $tmp/NAME.loss, the model in $tmp/NAME/
distill() {
    name=$1
    shift
    "$bin" distill --teacher "$model" --student "$tmp/s.gguf" --data "$tmp/d.tok" \
        --out "$tmp/$name" --steps 5 --batch 2 --ctx 32 --threads 1 --lr 1e-3 --json --no-manifest "$@" \
        >"$tmp/out" 2>"$tmp/err"
    rc=$?
    sanitized "$name" || return 1
    if [ $rc -ne 0 ]; then bad "$name: exit $rc: $(head -c 300 "$tmp/err")"; return 1; fi
    grep '"step":' "$tmp/out" | grep -v '"output"' | sed 's/.*"loss":\([^,]*\),.*/\1/' >"$tmp/$name.loss"
    cp "$tmp/out" "$tmp/$name.json"
    ok
}
same_run() { # A B: the same losses and model bytes
    [ -s "$tmp/$1.loss" ] && cmp -s "$tmp/$1.loss" "$tmp/$2.loss" && ok ||
        bad "$1 / $2: other losses: $(paste "$tmp/$1.loss" "$tmp/$2.loss" | head -3)"
    cmp -s "$tmp/$1/model.gguf" "$tmp/$2/model.gguf" && ok || bad "$1 / $2: other model bytes"
}

for mode in "--top-k 8" "--mode weak"; do
    tag=$(echo "$mode" | tr -cd 'a-z0-9')
    distill "ref$tag" --sequential $mode
    distill "built$tag" --sequential $mode --teacher-cache "$tmp/tc"
    grep -q '"teacher_cache_built":true' "$tmp/built$tag.json" && ok || bad "$tag: cache not built"
    distill "reused$tag" --sequential $mode --teacher-cache "$tmp/tc"
    grep -q '"teacher_cache_built":false' "$tmp/reused$tag.json" && ok || bad "$tag: cache not reused"
    same_run "ref$tag" "built$tag"
    same_run "ref$tag" "reused$tag"
done
[ "$(ls "$tmp/tc" | wc -l)" -eq 2 ] && ok || bad "want 2 cache files (k8, k1): $(ls "$tmp/tc")"

# random windows (aligned) with the cache: deterministic, reused
distill rnd1 --top-k 8 --teacher-cache "$tmp/tc" --seed 3
distill rnd2 --top-k 8 --teacher-cache "$tmp/tc" --seed 3
same_run rnd1 rnd2

# a damaged cache: message, exit 1, no model
cache=$(ls "$tmp"/tc/*k8.tcache)
cp "$cache" "$tmp/good.tcache"
size=$(wc -c <"$cache")
printf '\001' | dd of="$cache" bs=1 seek=$((size - 100)) conv=notrunc 2>/dev/null
expect_fail "a changed byte" "checksum" "$bin" distill --teacher "$model" --student "$tmp/s.gguf" \
    --data "$tmp/d.tok" --out "$tmp/bad1" --steps 2 --batch 2 --ctx 32 --top-k 8 --teacher-cache "$tmp/tc"
[ -e "$tmp/bad1/model.gguf" ] && bad "a changed byte: a model was written" || ok
head -c $((size - 64)) "$tmp/good.tcache" >"$cache"
expect_fail "a short cache" "truncated" "$bin" distill --teacher "$model" --student "$tmp/s.gguf" \
    --data "$tmp/d.tok" --out "$tmp/bad2" --steps 2 --batch 2 --ctx 32 --top-k 8 --teacher-cache "$tmp/tc"
[ -e "$tmp/bad2/model.gguf" ] && bad "a short cache: a model was written" || ok
{ printf 'XXXXXXXX'; tail -c +9 "$tmp/good.tcache"; } >"$cache"
expect_fail "a bad header" "not a teacher cache" "$bin" distill --teacher "$model" --student "$tmp/s.gguf" \
    --data "$tmp/d.tok" --out "$tmp/bad3" --steps 2 --batch 2 --ctx 32 --top-k 8 --teacher-cache "$tmp/tc"
[ -e "$tmp/bad3/model.gguf" ] && bad "a bad header: a model was written" || ok
cp "$tmp/good.tcache" "$cache"
expect_fail "soft mode" "top-k" "$bin" distill --teacher "$model" --student "$tmp/s.gguf" \
    --data "$tmp/d.tok" --out "$tmp/bad4" --steps 2 --ctx 32 --teacher-cache "$tmp/tc"
finish
