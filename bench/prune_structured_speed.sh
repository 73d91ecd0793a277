#!/bin/sh
# prune_structured_speed.sh - decode and prompt speed of a dense model and its structurally
# pruned copy (25 % of the query heads and 25 % of the FFN neurons removed at random: the
# shape and bytes are what matter for speed, not which units) on the 1.1B shape of issue 11's
# target (random weights, f16), alternating runs so both see the same machine state; medians.
#
#   sh bench/prune_structured_speed.sh [DIR]
#   env: SHRINK (build/shrink), THREADS (2), ROUNDS (3), PP (64), TG (8), PRESET (tinyllama-1.1b)
set -u
shrink=${SHRINK:-build/shrink}
dir=${1:-/tmp/prune_structured_1b}
threads=${THREADS:-2}; rounds=${ROUNDS:-3}; pp=${PP:-64}; tg=${TG:-8}
preset=${PRESET:-tinyllama-1.1b}
mkdir -p "$dir"
dense="$dir/$preset.gguf"; pruned="$dir/$preset-h25-n25.gguf"
[ -f "$dense" ] || "$shrink" init --preset "$preset" --dtype f16 --to gguf "$dense" >/dev/null
[ -f "$pruned" ] || "$shrink" prune "$dense" "$pruned" --structured heads=25%,neurons=25% \
    --by random >/dev/null
jget() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" "$2" | head -n 1; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "commit $(git rev-parse --short HEAD 2>/dev/null); cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1);" \
     "$threads threads; pp $pp, tg $tg; $rounds alternating rounds of --reps 1; load $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$dir/d.pp"; : >"$dir/d.tg"; : >"$dir/p.pp"; : >"$dir/p.tg"
i=0
while [ $i -lt "$rounds" ]; do
    for m in d p; do
        f=$dense; [ $m = p ] && f=$pruned
        "$shrink" bench "$f" --pp "$pp" --tg "$tg" --reps 1 --threads "$threads" --json \
            >"$dir/b.json" 2>/dev/null
        jget pp_tokens_per_s "$dir/b.json" >>"$dir/$m.pp"
        jget tg_tokens_per_s "$dir/b.json" >>"$dir/$m.tg"
    done
    i=$((i + 1))
done
dpp=$(median <"$dir/d.pp"); dtg=$(median <"$dir/d.tg")
ppp=$(median <"$dir/p.pp"); ptg=$(median <"$dir/p.tg")
echo "| model | file GiB | pp tok/s | tg tok/s |"
echo "| --- | ---: | ---: | ---: |"
echo "| $preset f16 dense | $(awk -v b="$(wc -c <"$dense")" 'BEGIN { printf "%.2f", b / 2^30 }') | $dpp | $dtg |"
echo "| heads −25 %, neurons −25 % | $(awk -v b="$(wc -c <"$pruned")" 'BEGIN { printf "%.2f", b / 2^30 }') | $ppp | $ptg |"
awk -v a="$ppp" -v b="$dpp" -v c="$ptg" -v d="$dtg" 'BEGIN { printf "pruned / dense: pp %.2fx, tg %.2fx\n", a / b, c / d }'
