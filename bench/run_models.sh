#!/bin/sh
# run_models.sh - the model table of docs/perf.md: `shrink bench` (2 threads) on stories260K and
# the three trained models of ../shared/models, with the weights as stored (f32 / f16) and
# widened to f32 (--f32); with LLAMA_BENCH=/path/to/llama-bench also llama.cpp's llama-bench on
# an f32 GGUF that `shrink convert` writes of the same model, in the same run.
#
#   sh bench/run_models.sh [MODELS_DIR]      (default: $SHRINK_MODELS, else ../shared/models)
#   env: THREADS (2), REPS (5), GEMM_PEAK (GFLOP/s, for the "% of peak" column), LLAMA_BENCH
#
# Never asserts; prints markdown. The machine is shared: read ratios, not absolute figures.
set -u
shrink=${SHRINK:-build/shrink}
models=${1:-${SHRINK_MODELS:-../shared/models}}
threads=${THREADS:-2}
reps=${REPS:-5}
peak=${GEMM_PEAK:-0}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

jget() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" "$2"; }

"$shrink" bench "$models/stories260K/stories260K.bin" --pp 0 --tg 1 --reps 1 --threads "$threads" \
    --json > "$tmp/bw.json" 2>/dev/null
bw=$(jget bandwidth_bytes_s "$tmp/bw.json" | awk '{printf "%.1f", $1 / 1e9}')
echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), L3 $(getconf LEVEL3_CACHE_SIZE) bytes;" \
     "memory read bandwidth measured by shrink with $threads threads: $bw GB/s"
echo
echo "| model | weights in memory | MiB | pp512 tok/s | pp GFLOP/s | % of GEMM peak | tg128 tok/s | decode GB/s | % of bandwidth | peak RSS MiB |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for m in stories260K/stories260K.bin mix-llama-14m mix-llama-22m mix-gpt2-30m; do
    for mode in stored f32; do
        flag=""; [ "$mode" = f32 ] && flag=--f32
        "$shrink" bench "$models/$m" --threads "$threads" --reps "$reps" --bandwidth "$bw" \
            $flag --json > "$tmp/r.json" 2>/dev/null || { echo "| $m | $mode | failed |"; continue; }
        awk -v name="$(basename "$m" .bin)" -v mode="$mode" -v peak="$peak" \
            -v wb="$(jget weight_bytes "$tmp/r.json")" -v pp="$(jget pp_tokens_per_s "$tmp/r.json")" \
            -v ppsd="$(jget pp_tokens_per_s_sd "$tmp/r.json")" -v gf="$(jget pp_gflops "$tmp/r.json")" \
            -v tg="$(jget tg_tokens_per_s "$tmp/r.json")" -v tgsd="$(jget tg_tokens_per_s_sd "$tmp/r.json")" \
            -v rf="$(jget roofline_fraction "$tmp/r.json")" -v rss="$(jget peak_rss_bytes "$tmp/r.json")" \
            'BEGIN { printf "| %s | %s | %.1f | %.0f ± %.0f | %.1f | %s | %.1f ± %.1f | %.2f | %.0f%% | %.1f |\n",
                     name, mode, wb / 1048576, pp, ppsd, gf,
                     (peak > 0 ? sprintf("%.0f%%", 100 * gf / peak) : "-"),
                     tg, tgsd, wb * tg / 1e9, 100 * rf, rss / 1048576 }'
    done
done
if [ -n "${LLAMA_BENCH:-}" ]; then
    echo
    echo "llama.cpp's llama-bench on f32 GGUFs written by \`shrink convert --dtype f32\`, same threads:"
    echo
    echo "| model | test | tok/s |"
    echo "| --- | --- | ---: |"
    for m in stories260K/stories260K.bin mix-llama-14m mix-llama-22m mix-gpt2-30m; do
        name=$(basename "$m" .bin)
        "$shrink" convert "$models/$m" "$tmp/$name.gguf" --dtype f32 >/dev/null 2>&1 || continue
        "$LLAMA_BENCH" -m "$tmp/$name.gguf" -t "$threads" -p 512 -n 128 -r "$reps" 2>/dev/null |
            awk -F'|' -v n="$name" '/pp512|tg128/ { gsub(/ /, "", $7); printf "| %s | %s | %s |\n", n, $7, $8 }'
        rm -f "$tmp/$name.gguf"
    done
fi
