#!/bin/sh
# plan_vs_llamacpp.sh - issue 19's target for `shrink plan`, side by side in one run: for each
# llama.cpp mix (Q4_K_M, Q3_K_M), llama-quantize writes it from an f16 GGUF of the model
# (shrink convert), then `shrink plan --bytes` that file's exact size (calibrated on CALIB)
# writes a planned file, and ONE scorer, `shrink compare` against the original, measures both
# on held-out TEXT (not the calibration text): KL mean, p99, delta-ppl, top-1. Prints one
# markdown row per file and the ratio plan KL / llama-quantize KL with the target (<= 0.8).
#
#   LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin sh bench/plan_vs_llamacpp.sh [MODEL] [TEXT]
#   defaults: ../shared/models/mix-llama-22m and ../shared/data/corpus/test.txt
#   env: CALIB (../shared/data/corpus/train.txt), CALIB_TOKENS (1024), TOKENS (4096 scored),
#        THREADS (1), MIXES (Q4_K_M Q3_K_M)
#
# Prints markdown; the last line says whether every ratio met the target (exit 0 either way:
# a benchmark, not a test; docs/plan.md records its output).
set -eu
bin=${LLAMA_CPP_BIN:?set LLAMA_CPP_BIN to llama.cpp build/bin}
shrink=${SHRINK:-build/shrink}
model=${1:-../shared/models/mix-llama-22m}
text=${2:-../shared/data/corpus/test.txt}
calib=${CALIB:-../shared/data/corpus/train.txt}
calib_tokens=${CALIB_TOKENS:-1024}
tokens=${TOKENS:-4096}
threads=${THREADS:-1}
mixes=${MIXES:-Q4_K_M Q3_K_M}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export LD_LIBRARY_PATH="$bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

"$shrink" convert "$model" "$tmp/f16.gguf" --dtype f16 >/dev/null
files=""
for mx in $mixes; do
    "$bin/llama-quantize" "$tmp/f16.gguf" "$tmp/llama-$mx.gguf" "$mx" "$threads" >/dev/null 2>&1
    b=$(wc -c <"$tmp/llama-$mx.gguf" | tr -d ' ')
    "$shrink" plan "$model" --calib "$calib" --calib-tokens "$calib_tokens" --bytes "$b" \
        --threads "$threads" --to "$tmp/plan-$mx.gguf" >"$tmp/plan-$mx.txt"
    files="$files $tmp/llama-$mx.gguf $tmp/plan-$mx.gguf"
done
# shellcheck disable=SC2086
"$shrink" compare "$model" $files --text "$text" --tokens "$tokens" --no-speed \
    --threads "$threads" --json >"$tmp/c.json"
echo "model: $model; plan calibrated on $calib_tokens tokens of $calib; scored on $tokens tokens of $text"
echo "$("$shrink" --version 2>/dev/null | head -1), $(git rev-parse --short HEAD 2>/dev/null || echo '?'); llama.cpp $bin"
echo
echo "| file | bytes | KL mean | KL p99 | dppl % | same top-1 % | KL / llama-quantize's |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
# one row per model: name, bytes, KL, p99, dppl, top-1 (compare's JSON, one object per line)
tr '{' '\n' <"$tmp/c.json" | grep '"is_base":false' | awk -v t="$tmp/" '
    function num(k,   s) { if (!match($0, "\"" k "\":[-0-9.e+]*")) return ""; s = substr($0, RSTART, RLENGTH); sub(/.*:/, "", s); return s }
    function str(k,   s) { if (!match($0, "\"" k "\":\"[^\"]*\"")) return ""; s = substr($0, RSTART, RLENGTH); sub(/^[^:]*:"/, "", s); sub(/"$/, "", s); return s }
    { p = str("path"); sub(t, "", p); kl = num("kl_mean")
      if (p ~ /^llama-/) { ref = kl; r = 1 } else { r = kl / ref; if (r > 0.8) miss++ }
      printf "| %s | %s | %.6f | %.6f | %+.3f | %.2f | %.2f |\n", p, num("file_bytes"), kl,
             num("kl_p99"), num("delta_ppl_pct"), num("top1_same_pct"), r }
    END { print ""; print (miss ? "target (plan KL <= 0.8 x llama-quantize at its size) MISSED for " miss " mix(es)" : "target (plan KL <= 0.8 x llama-quantize at its size) met for every mix") }'
