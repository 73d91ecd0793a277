#!/bin/sh
# calib_vs_llama.sh - issue 14's quality target side by side with llama.cpp: at the same type
# and the same calibration text, shrink's calibrated methods against llama-quantize with and
# without llama-imatrix, all scored by ONE scorer (`shrink compare` against the f16 original)
# on held-out text (data/corpus/test.txt; the calibration text is the start of train.txt).
#
#   LLAMA_CPP_BIN=/work/llama.cpp/build/bin sh bench/calib_vs_llama.sh [MODEL]
#   default model ../shared/models/mix-llama-22m
#   env: TYPES (q4_0 q4_K_M q3_K_M), CTX (256: calibration chunks / windows and compare
#        windows), CALIB_TOKENS (4096 = 16 chunks of 256, for every method of both tools),
#        TOKENS (8192 scored), THREADS (1), SHRINK (build/shrink), OUT (keep the files there)
#
# Per type, the files (each holds the same type per tensor; llama-quantize's Q4_0 file type
# keeps the output matrix, here the tied token embedding, at q6_K, so shrink's q4_0 rows get
# --output-q6k; its Q4_K_M / Q3_K_M are shrink's q4_K_M / q3_K_M mixes):
#   llama-quantize, llama-quantize --imatrix (llama-imatrix's file),
#   shrink round to nearest, shrink --imatrix (shrink imatrix's file), shrink --method awq,
#   and where GPTQ serves the type (q4_0): shrink --method gptq --gptq-head.
# The last column is the ratio to llama-quantize --imatrix's mean KL (target: <= 0.8 for the
# best shrink row). Prints markdown; never asserts (docs/quantization.md records its output).
set -eu
bin=${LLAMA_CPP_BIN:?set LLAMA_CPP_BIN to llama.cpp build/bin}
shrink=${SHRINK:-build/shrink}
json_get=${JSON_GET:-build/tests/json_get}
model=${1:-../shared/models/mix-llama-22m}
corpus=${CORPUS:-../shared/data/corpus}
ctx=${CTX:-256}
ctok=${CALIB_TOKENS:-4096}
tokens=${TOKENS:-8192}
threads=${THREADS:-1}
types=${TYPES:-q4_0 q4_K_M q3_K_M}
if [ -n "${OUT:-}" ]; then tmp=$OUT; mkdir -p "$tmp"; else
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
fi
export LD_LIBRARY_PATH="$bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
chunks=$((ctok / ctx))
# the calibration text: the start of train.txt, long enough for $ctok tokens (about 4 bytes each)
head -c $((ctok * 8)) "$corpus/train.txt" >"$tmp/calib.txt"

secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b-a}'; }
"$shrink" convert "$model" "$tmp/f16.gguf" --dtype f16 >/dev/null
t0=$(date +%s.%N)
"$bin/llama-imatrix" -m "$tmp/f16.gguf" -f "$tmp/calib.txt" -c "$ctx" --chunks "$chunks" \
    -t "$threads" --no-ppl -o "$tmp/l.imatrix" >"$tmp/li.log" 2>&1
t1=$(date +%s.%N)
"$shrink" imatrix "$tmp/f16.gguf" --calib "$tmp/calib.txt" -c "$ctx" --calib-tokens "$ctok" \
    -t "$threads" -o "$tmp/s.imatrix" >"$tmp/si.log" 2>&1
t2=$(date +%s.%N)
echo "model: $model; calibration: first $ctok tokens of $corpus/train.txt ($chunks chunks of $ctx,"
echo "both tools); scored: $corpus/test.txt, first $tokens tokens, ctx $ctx, stride $((ctx / 2));"
echo "llama-imatrix $(secs "$t0" "$t1") s, shrink imatrix $(secs "$t1" "$t2") s ($(cat "$tmp/si.log"))"
echo

cal="--calib $tmp/calib.txt --calib-tokens $ctok --calib-ctx $ctx"
for t in $types; do
    case $t in
    q4_K_M | q5_K_M | q3_K_M | q3_K_S | q3_K_L | q4_K_S | q5_K_S) lt=$(echo "$t" | tr a-z A-Z); o= ;;
    q2_K_M) lt=Q2_K; o= ;;
    *) lt=$(echo "$t" | tr a-z A-Z); o=--output-q6k ;;
    esac
    "$bin/llama-quantize" "$tmp/f16.gguf" "$tmp/l-rtn.gguf" "$lt" "$threads" >/dev/null 2>&1
    "$bin/llama-quantize" --imatrix "$tmp/l.imatrix" "$tmp/f16.gguf" "$tmp/l-im.gguf" "$lt" \
        "$threads" >/dev/null 2>&1
    files="$tmp/l-rtn.gguf $tmp/l-im.gguf"
    names="llama-quantize|llama-quantize --imatrix (llama-imatrix)"
    q() { # q NAME FILE ARGS...: one shrink file, its seconds in the name
        n=$1 f=$2
        shift 2
        a=$(date +%s.%N)
        if "$shrink" quantize "$tmp/f16.gguf" "$f" --scheme "$t" $o -t "$threads" "$@" \
            >"$tmp/q.log" 2>&1; then
            files="$files $f"
            names="$names|$n ($(secs "$a" "$(date +%s.%N)") s)"
        else
            echo "($n: failed: $(tail -1 "$tmp/q.log"))"
        fi
    }
    q "shrink, round to nearest" "$tmp/s-rtn.gguf"
    q "shrink --imatrix (shrink imatrix)" "$tmp/s-im.gguf" --imatrix "$tmp/s.imatrix"
    q "shrink --method awq" "$tmp/s-awq.gguf" --method awq $cal
    case $t in
    q4_0 | q4_1 | q5_0 | q5_1 | q8_0 | int4_*)
        q "shrink --method gptq --gptq-head" "$tmp/s-gptq.gguf" --method gptq --gptq-head $cal ;;
    esac
    # shellcheck disable=SC2086
    "$shrink" compare "$tmp/f16.gguf" $files --text "$corpus/test.txt" --ctx "$ctx" \
        --tokens "$tokens" --no-speed -t "$threads" --json >"$tmp/c-$t.json" 2>/dev/null
    echo "### $t"
    echo
    echo "| file | bits/weight | KL mean | KL p99 | Δppl % | same top-1 % | KL / llama-quantize --imatrix |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    ref=$("$json_get" "$tmp/c-$t.json" models.2.kl_mean)
    i=1
    echo "$names" | tr '|' '\n' | while IFS= read -r name; do
        set -- $("$json_get" "$tmp/c-$t.json" models.$i.bits_per_weight models.$i.kl_mean \
            models.$i.kl_p99 models.$i.delta_ppl_pct models.$i.top1_same_pct)
        awk -v n="$name" -v b="$1" -v k="$2" -v p="$3" -v d="$4" -v s="$5" -v r="$ref" \
            'BEGIN { printf "| %s | %.2f | %.6f | %.5f | %+.3f | %.2f | %.3f |\n", n, b, k, p, d, s, k / r }'
        i=$((i + 1))
    done
    echo
    [ -n "${OUT:-}" ] || rm -f "$tmp"/l-*.gguf "$tmp"/s-*.gguf
done
