#!/bin/sh
# quant_vs_llamacpp.sh - quality of shrink's quantizers against llama.cpp's own llama-quantize,
# side by side in one run: one f16 GGUF source written by `shrink convert`, every llama.cpp type
# quantized from it by both tools, and both files scored by the SAME scorer, llama.cpp's
# llama-perplexity (same text, same context). Single types use llama-quantize --pure (every matrix
# the same type, as `shrink quantize --scheme q4_K` does); the mixes use llama-quantize's own rules.
#
#   LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin sh bench/quant_vs_llamacpp.sh [MODEL] [TEXT]
#   defaults: ../shared/models/mix-llama-14m and ../shared/data/corpus/test.txt
#   env: CTX (256), THREADS (2), CHUNKS (all), TYPES (all below)
#
# Prints markdown; never asserts (docs/dev/quantization-log.md records its output). llama.cpp is built by
# hand beside shrink (see docs/perf.md); this script does not build it.
set -eu
bin=${LLAMA_CPP_BIN:?set LLAMA_CPP_BIN to llama.cpp build/bin}
shrink=${SHRINK:-build/shrink}
model=${1:-../shared/models/mix-llama-14m}
text=${2:-../shared/data/corpus/test.txt}
ctx=${CTX:-256}
threads=${THREADS:-2}
types=${TYPES:-q8_0 q4_0 q4_1 q5_0 q5_1 q4_K q5_K q6_K q4_K_M q5_K_M}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ppl() {
    "$bin/llama-perplexity" -m "$1" -f "$text" -c "$ctx" -t "$threads" ${CHUNKS:+--chunks "$CHUNKS"} \
        2>&1 | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p'
}

"$shrink" convert "$model" "$tmp/src-f16.gguf" --dtype f16 >/dev/null
base=$(ppl "$tmp/src-f16.gguf")
echo "model: $model; text: $text; llama-perplexity -c $ctx; f16 source ppl $base"
echo
echo "| type | llama-quantize MB | llama-quantize ppl | shrink quantize MB | shrink quantize ppl | shrink − llama.cpp |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for t in $types; do
    case $t in
    q4_K_M) lt=Q4_K_M; pure= ;;
    q5_K_M) lt=Q5_K_M; pure= ;;
    q4_K) lt=Q4_K_S; pure=--pure ;;
    q5_K) lt=Q5_K_S; pure=--pure ;;
    *) lt=$(echo "$t" | tr a-z A-Z); pure=--pure ;;
    esac
    if "$bin/llama-quantize" $pure "$tmp/src-f16.gguf" "$tmp/l.gguf" "$lt" "$threads" >"$tmp/lq.log" 2>&1; then
        lp=$(ppl "$tmp/l.gguf"); lmb=$(stat -c %s "$tmp/l.gguf")
    else
        lp="refused"; lmb=0
    fi
    "$shrink" quantize "$tmp/src-f16.gguf" "$tmp/s.gguf" --scheme "$t" >/dev/null 2>"$tmp/sq.log"
    sp=$(ppl "$tmp/s.gguf"); smb=$(stat -c %s "$tmp/s.gguf")
    awk -v t="$t" -v lp="$lp" -v sp="$sp" -v lmb="$lmb" -v smb="$smb" 'BEGIN {
        d = (lp == "refused") ? "-" : sprintf("%+.4f", sp - lp)
        printf "| %s | %.2f | %s | %.2f | %s | %s |\n", t, lmb / 1e6, lp, smb / 1e6, sp, d }'
    rm -f "$tmp/l.gguf" "$tmp/s.gguf"
done
