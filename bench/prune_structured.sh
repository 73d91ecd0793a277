#!/bin/sh
# prune_structured.sh - structured pruning of one model by sensitivity, by activation and at
# random (docs/pruning.md "Structured removal"): 25 % of the query heads, 25 % of the FFN
# neurons, 2 layers, and all three at once; then one `shrink compare` run of the dense model and
# every pruned one on held-out text (ppl, KL, top-1, file size, pp / tg tok/s in the same run:
# read the ratios, the machine is shared), and, if llama.cpp's llama-perplexity is there, its
# perplexity of every pruned GGUF beside `shrink ppl --llama-cpp`'s.
#
#   sh bench/prune_structured.sh [MODEL] [OUTDIR]
#   env: SHRINK (build/shrink), CALIB (train.txt), TEXT (test.txt), CALIB_TOKENS (256),
#        NEURON_BLOCK (128: neurons measured together by --by sensitivity),
#        TOKENS (4096, scored by compare), THREADS (2), LLAMA (/work/llama.cpp/build/bin),
#        SPECS ("heads=25% neurons=25% layers=2 heads=25%,neurons=25%,layers=2"), BY
set -u
shrink=${SHRINK:-build/shrink}
model=${1:-../shared/models/mix-llama-22m-long}
out=${2:-/tmp/prune_structured}
calib=${CALIB:-../shared/data/corpus/train.txt}
text=${TEXT:-../shared/data/corpus/test.txt}
ctok=${CALIB_TOKENS:-256}
nblock=${NEURON_BLOCK:-128}
tokens=${TOKENS:-4096}
threads=${THREADS:-2}
llama=${LLAMA:-/work/llama.cpp/build/bin}
specs=${SPECS:-"heads=25% neurons=25% layers=2 heads=25%,neurons=25%,layers=2"}
bys=${BY:-"sensitivity activation random"}
mkdir -p "$out"

echo "commit $(git rev-parse --short HEAD 2>/dev/null); cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1);" \
     "$threads threads; load $(cut -d' ' -f1-3 /proc/loadavg)"
models=""
for spec in $specs; do
    tag=$(echo "$spec" | tr -d '%' | tr ',=' '-_')
    for by in $bys; do
        f="$out/$tag-$by.gguf"
        t0=$(date +%s)
        "$shrink" prune "$model" "$f" --structured "$spec" --by "$by" --calib "$calib" \
            --calib-tokens "$ctok" --neuron-block "$nblock" --threads "$threads" >"$out/$tag-$by.txt" 2>/dev/null || {
            echo "prune $spec by $by failed"; continue; }
        echo "$spec by $by: $(head -n 2 "$out/$tag-$by.txt" | tr '\n' ' ') [$(( $(date +%s) - t0 )) s]"
        models="$models $f"
    done
done
echo
# shellcheck disable=SC2086
"$shrink" compare "$model" $models --text "$text" --tokens "$tokens" --threads "$threads" \
    --reps 3 --json >"$out/compare.json" 2>/dev/null || echo "compare failed"
# one row per model: name, MB, ppl, dppl %, KL mean, top-1 %, pp and tg tok/s and their ratios
awk 'BEGIN { RS = "{\"name\":"; FS = "," }
     NR > 1 {
        n = $1; gsub(/"/, "", n)
        for (i = 1; i <= NF; i++) { split($i, kv, ":"); k = kv[1]; gsub(/"/, "", k); v[k] = kv[2] }
        if (NR == 2) { bpp = v["pp_tokens_per_s"]; btg = v["tg_tokens_per_s"] }
        printf "| %s | %.2f | %.2f | %+.1f | %.4f | %.1f | %.0f | %.2f | %.0f | %.2f |\n", n,
               v["file_bytes"] / 1048576, v["ppl"], v["delta_ppl_pct"], v["kl_mean"],
               v["top1_same_pct"], v["pp_tokens_per_s"], v["pp_tokens_per_s"] / bpp, v["tg_tokens_per_s"],
               v["tg_tokens_per_s"] / btg
     }
     BEGIN { print "| model | file MiB | ppl | Δppl % | KL mean | same top-1 % | pp tok/s | pp ×dense | tg tok/s | tg ×dense |"
             print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" }' \
    "$out/compare.json"

if [ -x "$llama/llama-perplexity" ]; then
    echo
    head -c 40000 "$text" >"$out/ppl_text.txt"
    echo "| model | shrink ppl --llama-cpp (ctx 256) | llama-perplexity (ctx 256) | rel. diff |"
    echo "| --- | ---: | ---: | ---: |"
    for f in $models; do
        a=$("$shrink" ppl "$f" "$out/ppl_text.txt" --llama-cpp --ctx 256 --threads "$threads" --json 2>/dev/null |
            sed -n 's/.*"ppl":\([0-9.e+-]*\).*/\1/p')
        b=$("$llama/llama-perplexity" -m "$f" -f "$out/ppl_text.txt" -c 256 -t "$threads" 2>&1 |
            sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
        echo "| $(basename "$f") | $a | ${b:-failed} | $(awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2e", (a - b) / b; else print "-" }') |"
    done
fi
