#!/bin/sh
# imatrix_vs_llamacpp.sh - calibrated quantization against llama.cpp, side by side in one run:
# one f16 GGUF source (shrink convert), an importance matrix from each tool on the SAME
# calibration text and chunk length (llama-imatrix -c CTX; shrink imatrix -c CTX), then for
# each type: llama-quantize without and with llama-imatrix's file, shrink quantize without an
# importance matrix (its default block search), with shrink's file and with llama-imatrix's file,
# and shrink's --ggml-exact with llama-imatrix's file (must be llama-quantize --imatrix's bytes).
# Every file is scored by ONE scorer, `shrink compare` against the f16 source, on held-out text
# (not the calibration text): KL(f16 || quantized) mean and p99 per token, delta-ppl, top-1.
#
#   LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin sh bench/imatrix_vs_llamacpp.sh [MODEL] [TEXT]
#   defaults: ../shared/models/mix-llama-14m and ../shared/data/corpus/test.txt
#   env: CALIB (../shared/fixtures/imatrix/calib.txt), CTX (256, calibration chunks and compare
#        windows), TOKENS (8192 scored), THREADS (2), TYPES (q4_0 q4_K_M)
#
# Both tools write the same type per tensor (llama-quantize's Q4_0 file type keeps the output
# matrix, here the tied token embedding, at q6_K; shrink is given --output-q6k for the single
# types), so the sizes are equal.
# Prints markdown; never asserts (docs/quantization.md records its output).
set -eu
bin=${LLAMA_CPP_BIN:?set LLAMA_CPP_BIN to llama.cpp build/bin}
shrink=${SHRINK:-build/shrink}
json_get=${JSON_GET:-build/tests/json_get}
model=${1:-../shared/models/mix-llama-14m}
text=${2:-../shared/data/corpus/test.txt}
calib=${CALIB:-../shared/fixtures/imatrix/calib.txt}
ctx=${CTX:-256}
tokens=${TOKENS:-8192}
threads=${THREADS:-2}
types=${TYPES:-q4_0 q4_K_M}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/kl_rows.sh"
export LD_LIBRARY_PATH="$bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

"$shrink" convert "$model" "$tmp/f16.gguf" --dtype f16 >/dev/null
t0=$(date +%s.%N)
"$bin/llama-imatrix" -m "$tmp/f16.gguf" -f "$calib" -c "$ctx" -t "$threads" --no-ppl \
    -o "$tmp/l.imatrix" >"$tmp/li.log" 2>&1
t1=$(date +%s.%N)
"$shrink" imatrix "$tmp/f16.gguf" --calib "$calib" -c "$ctx" -t "$threads" -o "$tmp/s.imatrix" \
    >"$tmp/si.log" 2>&1
t2=$(date +%s.%N)
echo "model: $model; calibration: $calib (chunks of $ctx); scored: $text, first $tokens tokens,"
echo "ctx $ctx stride $((ctx / 2)); llama-imatrix $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s,"
echo "shrink imatrix $(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.1f", b-a}') s ($(cat "$tmp/si.log"))"
echo

for t in $types; do
    case $t in
    q4_K_M | q5_K_M) lt=$(echo "$t" | tr a-z A-Z); o= ;;
    q4_K) lt=Q4_K_S; o=--output-q6k ;;
    q5_K) lt=Q5_K_S; o=--output-q6k ;;
    *) lt=$(echo "$t" | tr a-z A-Z); o=--output-q6k ;;
    esac
    "$bin/llama-quantize" "$tmp/f16.gguf" "$tmp/l-rtn.gguf" "$lt" "$threads" >/dev/null 2>&1
    "$bin/llama-quantize" --imatrix "$tmp/l.imatrix" "$tmp/f16.gguf" "$tmp/l-im.gguf" "$lt" \
        "$threads" >/dev/null 2>&1
    "$shrink" quantize "$tmp/f16.gguf" "$tmp/s-rtn.gguf" --scheme "$t" $o >/dev/null
    "$shrink" quantize "$tmp/f16.gguf" "$tmp/s-im.gguf" --scheme "$t" $o \
        --imatrix "$tmp/s.imatrix" >/dev/null
    "$shrink" quantize "$tmp/f16.gguf" "$tmp/s-lim.gguf" --scheme "$t" $o \
        --imatrix "$tmp/l.imatrix" >/dev/null
    "$shrink" quantize "$tmp/f16.gguf" "$tmp/s-exact.gguf" --scheme "$t" $o \
        --imatrix "$tmp/l.imatrix" --ggml-exact >/dev/null
    "$shrink" compare "$tmp/f16.gguf" "$tmp/l-rtn.gguf" "$tmp/l-im.gguf" "$tmp/s-rtn.gguf" \
        "$tmp/s-im.gguf" "$tmp/s-lim.gguf" "$tmp/s-exact.gguf" --text "$text" --ctx "$ctx" \
        --tokens "$tokens" --no-speed -t "$threads" --json >"$tmp/c.json" 2>/dev/null
    echo "### $t"
    echo
    printf '%s\n' "llama-quantize" "llama-quantize --imatrix (llama-imatrix)" \
        "shrink quantize (search, no imatrix)" "shrink quantize --imatrix (shrink imatrix)" \
        "shrink quantize --imatrix (llama-imatrix)" \
        "shrink --ggml-exact --imatrix (llama-imatrix)" | kl_rows "$tmp/c.json"
    echo
    rm -f "$tmp"/l-*.gguf "$tmp"/s-*.gguf
done
