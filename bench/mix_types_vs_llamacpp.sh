#!/bin/sh
# mix_types_vs_llamacpp.sh - does `shrink quantize --scheme MIX` choose, tensor by tensor, the
# types llama-quantize chooses for the same llama.cpp file type? One f16 GGUF source written by
# `shrink convert`, quantized by both tools; the per-tensor types (shrink info --json) compared,
# and both files read back by llama.cpp (llama-perplexity on a short text: proof that llama.cpp
# loads shrink's q2_K / q3_K tensors, and how close the two files score).
#
#   LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin sh bench/mix_types_vs_llamacpp.sh [MODEL] [TEXT]
#   defaults: ../shared/models/mix-llama-14m and ../shared/data/corpus/test.txt
#   env: SCHEMES (all below), CTX (256), CHUNKS (4), THREADS (2)
#
# Prints markdown; never asserts (docs/dev/quantization-log.md records its output).
set -eu
bin=${LLAMA_CPP_BIN:?set LLAMA_CPP_BIN to llama.cpp build/bin}
shrink=${SHRINK:-build/shrink}
model=${1:-../shared/models/mix-llama-14m}
text=${2:-../shared/data/corpus/test.txt}
threads=${THREADS:-2}
schemes=${SCHEMES:-q2_K_M q3_K_S q3_K_M q3_K_L q4_K_S q4_K_M q5_K_S q5_K_M q2_K q3_K}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

types() { # name=type lines of a GGUF, sorted
    "$shrink" info "$1" --json | tr '{' '\n' | sed -n 's/.*"name":"\([^"]*\)".*"dtype":"\([^"]*\)".*/\1=\2/p' | sort
}
ppl() {
    "$bin/llama-perplexity" -m "$1" -f "$text" -c "${CTX:-256}" -t "$threads" --chunks "${CHUNKS:-4}" \
        2>&1 | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p'
}

"$shrink" convert "$model" "$tmp/src-f16.gguf" --dtype f16 >/dev/null
echo "model: $model; llama-perplexity -c ${CTX:-256} --chunks ${CHUNKS:-4} on $text"
echo
echo "| scheme | llama-quantize type | tensors | same type | differ | llama.cpp ppl of llama-quantize's file | of shrink's file |"
echo "| --- | --- | ---: | ---: | --- | ---: | ---: |"
for s in $schemes; do
    case $s in
    q2_K_M) lt=Q2_K; pure= ;;
    q2_K|q3_K) lt=$(echo "$s" | tr a-z A-Z); pure=--pure ;;
    *) lt=$(echo "$s" | tr a-z A-Z | sed 's/_K_/_K_/'); pure= ;;
    esac
    "$bin/llama-quantize" $pure "$tmp/src-f16.gguf" "$tmp/l.gguf" "$lt" "$threads" >"$tmp/lq.log" 2>&1 || { echo "| $s | $lt | llama-quantize failed |"; continue; }
    "$shrink" quantize "$tmp/src-f16.gguf" "$tmp/s.gguf" --scheme "$s" --ggml-exact >/dev/null 2>"$tmp/sq.log"
    types "$tmp/l.gguf" >"$tmp/lt"
    types "$tmp/s.gguf" >"$tmp/st"
    n=$(wc -l <"$tmp/lt"); same=$(comm -12 "$tmp/lt" "$tmp/st" | wc -l)
    diff=$(comm -13 "$tmp/lt" "$tmp/st" | head -3 | tr '\n' ' ')
    printf '| %s | %s %s | %s | %s | %s | %s | %s |\n' "$s" "$lt" "$pure" "$n" "$same" "${diff:--}" "$(ppl "$tmp/l.gguf")" "$(ppl "$tmp/s.gguf")"
    rm -f "$tmp/l.gguf" "$tmp/s.gguf"
done
