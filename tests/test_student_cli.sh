#!/bin/sh
# test_student_cli.sh - end-to-end tests of `shrink student` (POSIX sh; run from the repository
# root by tests/run_all.sh with the binary):
#
#   sh tests/test_student_cli.sh build/shrink
#
# On stories260K (5 layers): every other layer into GGUF (kept layers 0 2 4 in --json, the new
# config in info --json, it generates), a list into llama2.c .bin, --init random (same seed:
# the same bytes; another seed: other bytes; the cut config), llama.cpp's llama-perplexity
# loads the GGUF student when llama.cpp is built (/work/llama.cpp or $LLAMA_CPP_BIN); bad
# input: a student bigger than its teacher, bad --layers / --pick / --init, heads that are
# not a multiple of the K/V groups: a message, non-zero exit, no output. The tensors
# themselves are checked against the teacher's slices in tests/test_student.c.
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-student-cli.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM
finish() { sh_finish test_student_cli; }

model=$(asset models/stories260K/stories260K.bin) || model=""
if [ -z "$model" ]; then
    missing "models/stories260K/stories260K.bin"
    finish
fi

if expect_ok "every other layer -> gguf" "$bin" student "$model" "$tmp/s.gguf" --layers 3 --json
then
    grep -q '"kept_layers":\[0,2,4\]' "$tmp/out" && ok || bad "kept layers: $(cat "$tmp/out")"
    grep -q '"n_layers":3' "$tmp/out" && ok || bad "n_layers: $(cat "$tmp/out")"
fi
if expect_ok "info on the student" "$bin" info "$tmp/s.gguf" --json; then
    grep -q '"n_layers":3' "$tmp/out" && ok || bad "info n_layers: $(head -c 300 "$tmp/out")"
fi
expect_ok "the student generates" "$bin" generate "$tmp/s.gguf" -p "Once" -n 8 --temp 0
if expect_ok "a list -> llama2.c" "$bin" student "$model" "$tmp/l.bin" --layers 1,3; then
    grep -q 'layers 5 -> 2 \[1 3\]' "$tmp/out" && ok || bad "list: $(cat "$tmp/out")"
fi
expect_ok "the llama2.c student loads" "$bin" info "$tmp/l.bin"
expect_ok "random init seed 4" "$bin" student "$model" "$tmp/r1.gguf" --layers 2 --init random --seed 4 --no-manifest
expect_ok "random init seed 4 again" "$bin" student "$model" "$tmp/r2.gguf" --layers 2 --init random --seed 4 --no-manifest
expect_ok "random init seed 5" "$bin" student "$model" "$tmp/r3.gguf" --layers 2 --init random --seed 5 --no-manifest
cmp -s "$tmp/r1.gguf" "$tmp/r2.gguf" && ok || bad "random init: the same seed gives other bytes"
cmp -s "$tmp/r1.gguf" "$tmp/r3.gguf" && bad "random init: another seed gives the same bytes" || ok
if expect_ok "info on the random student" "$bin" info "$tmp/r1.gguf" --json; then
    grep -q '"n_layers":2' "$tmp/out" && ok || bad "random n_layers: $(head -c 300 "$tmp/out")"
fi
ls "$tmp" | grep -q 'student-cut' && bad "random init left its temporary cut" || ok

# llama.cpp loads the GGUF student (when built)
text=$(asset fixtures/stories260K/ppl_text.txt) || { text=""; missing "fixtures/stories260K/ppl_text.txt"; }
if [ -n "$text" ] && llama_tool llama-perplexity; then
    head -c 4000 "$text" >"$tmp/ppl.txt"
    if "$ltool" -m "$tmp/s.gguf" -f "$tmp/ppl.txt" -c 64 -b 64 -t 1 \
        >"$tmp/lc.out" 2>&1; then
        grep -q 'Final estimate: PPL' "$tmp/lc.out" && ok || bad "llama-perplexity: no estimate"
    else
        bad "llama-perplexity does not load the student: $(tail -5 "$tmp/lc.out")"
    fi
fi

# bad input: message, non-zero exit, no output
expect_fail "bigger than the teacher" "bigger than its teacher" "$bin" student "$model" "$tmp/b1.gguf" --layers 6
[ -e "$tmp/b1.gguf" ] && bad "bigger student: output written" || ok
expect_fail "more heads than the teacher" "bigger than its teacher" "$bin" student "$model" "$tmp/b2.gguf" --heads 16
expect_fail "the teacher itself" "teacher itself" "$bin" student "$model" "$tmp/b3.gguf" --layers 5
expect_fail "heads not a multiple of the groups" "multiple" "$bin" student "$model" "$tmp/b4.gguf" --heads 3
expect_fail "layer outside" "not in the teacher" "$bin" student "$model" "$tmp/b5.gguf" --layers 0,7
expect_fail "bad --layers" "--layers" "$bin" student "$model" "$tmp/b6.gguf" --layers 2,x
expect_fail "bad --pick" "--pick" "$bin" student "$model" "$tmp/b7.gguf" --layers 2 --pick best
expect_fail "bad --init" "--init" "$bin" student "$model" "$tmp/b8.gguf" --layers 2 --init zeros
expect_fail "kld without --calib" "calib" "$bin" student "$model" "$tmp/b9.gguf" --layers 2 --pick kld
expect_fail "nothing to cut" "nothing to cut" "$bin" student "$model" "$tmp/b10.gguf"
for i in 2 3 4 5 6 7 8 9 10; do
    [ -e "$tmp/b$i.gguf" ] && bad "b$i.gguf: output written on bad input" || ok
done
expect_ok "--help" "$bin" student --help
finish
