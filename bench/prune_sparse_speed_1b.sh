#!/bin/sh
# prune_sparse_speed_1b.sh - decode speed of unstructured sparse storage on the 1.1B shape
# (`shrink init --preset tinyllama-1.1b`, random f16 weights: only bytes and kernels matter for
# speed): the dense f16 model, 70 % magnitude per row stored sparse_f16 and sparse_i8, 2:4
# stored sparse24_f16, and the model as q4_K_M; ROUNDS alternating rounds of
# `shrink bench --pp 0 --tg TG --reps 1`, medians (ratios within one run are what mean anything
# on a shared host).
#
#   sh bench/prune_sparse_speed_1b.sh [DIR]
#   env: SHRINK (build/shrink), THREADS (2), ROUNDS (3), TG (8),
#        MODELS ("dense s70 s70i8 s24 q4km": which of them to make and run; each prune of the
#        1.1B shape takes minutes on a loaded machine)
set -eu
bin=${SHRINK:-build/shrink}
dir=${1:-/tmp/sparse_speed_1b}
threads=${THREADS:-2}; rounds=${ROUNDS:-3}; tg=${TG:-8}
mkdir -p "$dir"
dense="$dir/dense.gguf"
[ -f "$dense" ] || nice -n 10 "$bin" init --preset tinyllama-1.1b --dtype f16 --to gguf "$dense" >/dev/null
pr() { name=$1; shift; [ -f "$dir/$name.gguf" ] || nice -n 10 "$bin" prune "$dense" "$dir/$name.gguf" \
      --method magnitude "$@" >"$dir/$name.log" 2>&1 || { cat "$dir/$name.log" >&2; exit 1; }; }
models=${MODELS:-dense s70 s70i8 s24 q4km}
for m in $models; do
    case $m in
    s70) pr s70 --sparsity 0.7 --per row --store sparse ;;
    s70i8) pr s70i8 --sparsity 0.7 --per row --store sparse_i8 ;;
    s24) pr s24 --pattern 2:4 --store sparse24 ;;
    q4km) [ -f "$dir/q4km.gguf" ] ||
        nice -n 10 "$bin" quantize "$dense" "$dir/q4km.gguf" --scheme q4_K_M >/dev/null 2>&1 ;;
    esac
done
jget() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" "$2" | head -n 1; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
set -- $models
for m in "$@"; do : >"$dir/$m.tg"; done
echo "commit $(git rev-parse --short HEAD 2>/dev/null); $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'); $threads threads; tg $tg; $rounds rounds; load $(cut -d' ' -f1-3 /proc/loadavg)"
i=0
while [ $i -lt "$rounds" ]; do
    for m in "$@"; do
        nice -n 10 "$bin" bench "$dir/$m.gguf" --pp 0 --tg "$tg" --reps 1 --threads "$threads" \
            --json >"$dir/b.json" 2>/dev/null
        jget tg_tokens_per_s "$dir/b.json" >>"$dir/$m.tg"
    done
    i=$((i + 1))
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
base=$(median <"$dir/dense.tg")
echo "| model | file GiB | tg tok/s (median) | vs dense f16 | runs |"
echo "| --- | ---: | ---: | ---: | --- |"
for m in "$@"; do
    med=$(median <"$dir/$m.tg")
    echo "| $m | $(awk -v b="$(wc -c <"$dir/$m.gguf")" 'BEGIN { printf "%.2f", b / 2^30 }') | $med | $(awk -v a="$med" -v b="$base" 'BEGIN { printf "%.2f", a / b }') | $(tr '\n' ' ' <"$dir/$m.tg") |"
done
