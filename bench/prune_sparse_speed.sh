#!/bin/sh
# prune_sparse_speed.sh - decode speed of unstructured-sparse storage (sparse_f16, sparse_i8)
# against dense f16, 2:4 (sparse24_f16) and q4_K_M, all in one `shrink compare` run (indicative:
# speed is only meaningful as ratios within one run; docs/pruning.md, "Sparse storage").
#
#   sh bench/prune_sparse_speed.sh [MODEL] [OUTDIR]      (default ../shared/models/mix-llama-22m)
#
# Models (magnitude pruning per output row, so every row of a matrix keeps the same count and
# the 50 % matrices fit the sparse types' half-row capacity):
#   d70  70 % dense f16            s70 70 % sparse_f16       s70i8 70 % sparse_i8
#   d50  50 % dense f16            s50 50 % sparse_f16
#   s24  2:4 sparse24_f16          q4km the unpruned model as q4_K_M
#   s70i8q8 70 % sparse_i8 with a q8_0 embedding/head (the head as q4_K_M has it)
# Environment: TOKENS (scored tokens, 512), TG (decode tokens, 64), REPS (3), THREADS (0: all).
set -eu
bin=${SHRINK:-build/shrink}
model=${1:-../shared/models/mix-llama-22m}
out=${2:-/tmp/sparse_speed}
text=${TEXT:-../shared/data/corpus/test.txt}
mkdir -p "$out"
pr() { name=$1; shift; [ -f "$out/$name.gguf" ] || nice -n 10 "$bin" prune "$model" "$out/$name.gguf" \
      --method magnitude "$@" >"$out/$name.log" 2>&1 || { cat "$out/$name.log" >&2; exit 1; }; }
pr d70 --sparsity 0.7 --per row --dtype f16
pr s70 --sparsity 0.7 --per row --dtype f16 --store sparse
pr s70i8 --sparsity 0.7 --per row --dtype f16 --store sparse_i8
pr s70i8q8 --sparsity 0.7 --per row --dtype q8_0 --store sparse_i8
pr d50 --sparsity 0.5 --per row --dtype f16
pr s50 --sparsity 0.5 --per row --dtype f16 --store sparse
pr s24 --pattern 2:4 --dtype f16 --store sparse24
[ -f "$out/q4km.gguf" ] || nice -n 10 "$bin" quantize "$model" "$out/q4km.gguf" --scheme q4_K_M >/dev/null 2>&1
uptime
nice -n 10 "$bin" compare "$model" "$out/d70.gguf" "$out/s70.gguf" "$out/s70i8.gguf" \
    "$out/s70i8q8.gguf" "$out/d50.gguf" "$out/s50.gguf" "$out/s24.gguf" "$out/q4km.gguf" \
    --text "$text" --tokens "${TOKENS:-512}" --pp 0 --tg "${TG:-64}" --reps "${REPS:-3}" \
    --threads "${THREADS:-0}" | tee "$out/compare.txt"
uptime
echo "$out/compare.txt"

# Interleaved decode speed: the compare run above measures each model in turn, so a change of
# the machine's load during the run shows as a trend across the table. ROUNDS rounds of
# `shrink bench --reps 1` over every model in turn; medians per model (what docs quote).
rounds=${ROUNDS:-5}
jget() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" "$2" | head -n 1; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
set -- d70 s70 s70i8 s70i8q8 d50 s50 s24 q4km
for m in "$@"; do : >"$out/$m.tg"; done
echo "interleaved: $rounds rounds, tg ${TG:-64}, ${THREADS:-2} threads; load $(cut -d' ' -f1-3 /proc/loadavg)"
i=0
while [ $i -lt "$rounds" ]; do
    for m in "$@"; do
        nice -n 10 "$bin" bench "$out/$m.gguf" --pp 0 --tg "${TG:-64}" --reps 1 \
            --threads "${THREADS:-2}" --json >"$out/b.json" 2>/dev/null
        jget tg_tokens_per_s "$out/b.json" >>"$out/$m.tg"
    done
    i=$((i + 1))
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
base=$(median <"$out/d70.tg")
echo "| model | tg tok/s (median of $rounds) | vs dense f16 (d70) | runs |"
echo "| --- | ---: | ---: | --- |"
for m in "$@"; do
    med=$(median <"$out/$m.tg")
    echo "| $m | $med | $(awk -v a="$med" -v b="$base" 'BEGIN { printf "%.2f", a / b }') | $(tr '\n' ' ' <"$out/$m.tg") |"
done
