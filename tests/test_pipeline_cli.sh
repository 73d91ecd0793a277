#!/bin/sh
# test_pipeline_cli.sh - `shrink pipeline teacher-student-4bit` end to end (POSIX sh; run from
# the repository root by tests/run_all.sh with the binary):
#
#   sh tests/test_pipeline_cli.sh build/shrink
#
# On stories260K and 3000 bytes of its perplexity text: the recipe writes OUT/student.gguf
# (3 of 5 layers, --student-hidden 48: dim 48), OUT/distill/model.gguf (--teacher-threads 1
# passed on) and OUT/student-q8_0.gguf, echoes each step's command
# line on stderr, and prints one compare table with the teacher (base), the student and its
# quantized copy (smaller than the student). Bad input: a student bigger than its teacher
# (step 1 fails: exit 1, the message, no OUT left), an unknown recipe, no --tokens (usage, 2).
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-pipeline.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM
finish() { sh_finish test_pipeline_cli; }

model=$(asset models/stories260K/stories260K.bin) || model=""
text=$(asset fixtures/stories260K/ppl_text.txt) || text=""
if [ -z "$model" ] || [ -z "$text" ]; then
    missing "stories260K or fixtures/stories260K/ppl_text.txt"
    finish
fi
head -c 3000 "$text" >"$tmp/d.txt"
if expect_ok "pipeline" "$bin" pipeline teacher-student-4bit "$model" "$tmp/pl" --student-layers 3 \
    --data "$tmp/d.txt" --tokens 512 --ctx 32 --eval "$tmp/d.txt" --eval-tokens 256 --no-speed \
    --scheme q8_0 --threads 1 --student-hidden 48 --teacher-threads 1; then
    for f in student.gguf distill/model.gguf student-q8_0.gguf; do
        [ -s "$tmp/pl/$f" ] && ok || bad "no $f"
    done
    [ "$(grep -c 'pipeline step' "$tmp/err")" -eq 4 ] && ok || bad "not 4 steps echoed"
    grep -q 'student .*--layers 3 --hidden 48' "$tmp/err" && grep -q 'distill .*--teacher-threads 1' "$tmp/err" &&
        ok || bad "--student-hidden / --teacher-threads not passed on: $(grep 'pipeline step' "$tmp/err")"
    "$bin" info "$tmp/pl/student-q8_0.gguf" >"$tmp/info" 2>&1
    grep -q 'config: *dim 48, n_layers 3,' "$tmp/info" && ok || bad "student config: $(grep config: "$tmp/info")"
    grep -q '| stories260K.bin (base) |' "$tmp/out" && ok || bad "no base row"
    grep -q '| model.gguf |' "$tmp/out" && ok || bad "no student row"
    grep -q '| student-q8_0.gguf |' "$tmp/out" && ok || bad "no quantized row"
    a=$(wc -c <"$tmp/pl/distill/model.gguf")
    b=$(wc -c <"$tmp/pl/student-q8_0.gguf")
    [ "$b" -lt "$a" ] && ok || bad "quantized student not smaller ($b >= $a)"
fi
# two threads: the distill step starts OpenMP's threads, then compare forks (each step runs in a
# process of its own since; before, this hung): a hang is a failure, not a stuck suite
expect_ok "pipeline --threads 2 (timeout 300 s)" timeout 300 "$bin" pipeline teacher-student-4bit \
    "$model" "$tmp/pl2" --student-layers 3 --data "$tmp/d.txt" --tokens 256 --ctx 32 \
    --eval "$tmp/d.txt" --eval-tokens 128 --no-speed --scheme q8_0 --threads 2
expect_fail "bigger student" "bigger than its teacher" "$bin" pipeline teacher-student-4bit "$model" \
    "$tmp/out2" --student-layers 9 --data "$tmp/d.txt" --tokens 512 --eval "$tmp/d.txt"
[ -e "$tmp/out2" ] && bad "bigger student: OUT left behind" || ok
expect_fail "unknown recipe" "recipe" "$bin" pipeline nope "$model" "$tmp/out3" --student-layers 2 \
    --data "$tmp/d.txt" --tokens 512 --eval "$tmp/d.txt"
expect_fail "no --tokens" "--tokens" "$bin" pipeline teacher-student-4bit "$model" "$tmp/out4" \
    --student-layers 2 --data "$tmp/d.txt" --eval "$tmp/d.txt"
finish
