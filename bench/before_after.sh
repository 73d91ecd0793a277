#!/bin/sh
# before_after.sh - decode and prompt speed of two shrink binaries side by side, in one run
# (docs/perf.md "Before and after"): for a refactor that must not slow anything down.
#
#   sh bench/before_after.sh OLD_SHRINK NEW_SHRINK [MODELS_DIR]
#   env: THREADS (2), ROUNDS (5), PP (256), TG (64), SCHEMES ("f16 q8_0 q4_K_M")
#
# Each model is written once per scheme by NEW's `quantize` (f16 = the stored weights), then
# OLD and NEW run `bench --reps 1` alternately ROUNDS times (old, new, old, new, ...) so both see
# the same machine state; the table gives the median tok/s of each and new/old. Never asserts:
# the machine is shared, read the ratios.
set -u
old=$1; new=$2
models=${3:-${SHRINK_MODELS:-../shared/models}}
threads=${THREADS:-2}; rounds=${ROUNDS:-5}; pp=${PP:-256}; tg=${TG:-64}
schemes=${SCHEMES:-"f16 q8_0 q4_K_M"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

jget() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" "$2"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "old: $old ($("$old" version 2>/dev/null | head -1)); new: $new ($("$new" version 2>/dev/null | head -1))"
echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); $threads threads;" \
     "pp $pp, tg $tg, $rounds alternating rounds of --reps 1, medians"
echo
echo "| model | weights | old pp tok/s | new pp tok/s | new/old | old tg tok/s | new tg tok/s | new/old |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for m in mix-llama-22m mix-gpt2-30m; do
    for s in $schemes; do
        f="$models/$m"
        if [ "$s" != f16 ]; then
            f="$tmp/$m-$s.gguf"
            "$new" quantize "$models/$m" "$f" --scheme "$s" >/dev/null 2>&1 ||
                { echo "| $m | $s | quantize failed |"; continue; }
        fi
        : > "$tmp/old.pp"; : > "$tmp/new.pp"; : > "$tmp/old.tg"; : > "$tmp/new.tg"
        r=0
        while [ $r -lt "$rounds" ]; do
            for who in old new; do
                eval bin=\$$who
                "$bin" bench "$f" --pp "$pp" --tg "$tg" --reps 1 --threads "$threads" \
                    --bandwidth 1 --json > "$tmp/r.json" 2>/dev/null || continue
                jget pp_tokens_per_s "$tmp/r.json" >> "$tmp/$who.pp"
                jget tg_tokens_per_s "$tmp/r.json" >> "$tmp/$who.tg"
            done
            r=$((r + 1))
        done
        awk -v m="$m" -v s="$s" -v op="$(median < "$tmp/old.pp")" -v np="$(median < "$tmp/new.pp")" \
            -v ot="$(median < "$tmp/old.tg")" -v nt="$(median < "$tmp/new.tg")" \
            'BEGIN { printf "| %s | %s | %.0f | %.0f | %.3f | %.1f | %.1f | %.3f |\n",
                     m, s, op, np, (op > 0 ? np / op : 0), ot, nt, (ot > 0 ? nt / ot : 0) }'
        [ "$s" != f16 ] && rm -f "$f"
    done
done
