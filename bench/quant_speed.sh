#!/bin/sh
# quant_speed.sh - the quantized speed table of docs/perf.md (issue 4): one model quantized to
# every scheme by `shrink quantize` (wall time and peak RSS of the quantizer from /usr/bin/time),
# then `shrink bench` on each file in the same run: prompt (pp) and decode (tg) tokens/s, the
# decode speed-up over the same model in f32, and decode bytes/s as a fraction of the memory
# roofline (weights read per token x tok/s over the read bandwidth shrink measures at the start).
#
#   sh bench/quant_speed.sh MODEL [SCHEMES...]
#   env: THREADS (2), REPS (3), PP (512), TG (128), BW (GB/s; default: measured once here)
#
# MODEL is anything shrink loads (the f32 reference is MODEL loaded with --f32). Prints markdown,
# never asserts. The machine is shared: read the ratios of one run, not absolute figures.
set -u
shrink=${SHRINK:-build/shrink}
model=${1:?usage: quant_speed.sh MODEL [SCHEMES...]}
shift
schemes=${*:-q8_0 q4_0 q4_1 q5_0 q5_1 q4_K q5_K q6_K q4_K_M q5_K_M int8_ch int8_ch_asym int8_t int8_t_asym int4_g32 int4_g64 int4_g128 int4_g32_asym int4_g64_asym int4_g128_asym nf4 nf4_dq w8a8}
threads=${THREADS:-2}; reps=${REPS:-3}; pp=${PP:-512}; tg=${TG:-128}
tmp=$(mktemp -d ${TMPDIR:-/tmp}/qspeed.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
jget() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" "$2" | head -1; }

if [ -z "${BW:-}" ]; then
    "$shrink" bench "$model" --pp 0 --tg 1 --reps 1 --threads "$threads" --json > "$tmp/bw.json" 2>/dev/null
    BW=$(jget bandwidth_bytes_s "$tmp/bw.json" | awk '{printf "%.2f", $1 / 1e9}')
fi
echo "model: $model; $threads threads; pp$pp, tg$tg, $reps reps; read bandwidth $BW GB/s; $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| scheme | quantize s | quantize peak RSS MiB | weights MiB | pp$pp tok/s | pp vs f32 | tg$tg tok/s | tg vs f32 | decode GB/s | % of roofline |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
bench() { # file label qs qrss [flags]
    f=$1; label=$2; qs=$3; qrss=$4; shift 4
    if ! "$shrink" bench "$f" --pp "$pp" --tg "$tg" --reps "$reps" --threads "$threads" --bandwidth "$BW" \
            "$@" --json > "$tmp/r.json" 2>"$tmp/r.err"; then
        echo "| $label | bench failed: $(head -c 120 "$tmp/r.err") |"; return
    fi
    wb=$(jget weight_bytes "$tmp/r.json"); p=$(jget pp_tokens_per_s "$tmp/r.json"); t=$(jget tg_tokens_per_s "$tmp/r.json")
    rf=$(jget roofline_fraction "$tmp/r.json")
    [ "$label" = f32 ] && { P0=$p; T0=$t; }
    awk -v l="$label" -v qs="$qs" -v qr="$qrss" -v wb="$wb" -v p="$p" -v t="$t" -v rf="$rf" \
        -v p0="${P0:-0}" -v t0="${T0:-0}" 'BEGIN {
        printf "| %s | %s | %s | %.1f | %.0f | %.2fx | %.1f | %.2fx | %.2f | %.0f%% |\n", l, qs, qr,
            wb / 1048576, p, (p0 > 0 ? p / p0 : 0), t, (t0 > 0 ? t / t0 : 0), wb * t / 1e9, 100 * rf }'
}
bench "$model" f32 - - --f32
for s in $schemes; do
    /usr/bin/time -f "%e %M" -o "$tmp/time" "$shrink" quantize "$model" "$tmp/q.gguf" --scheme "$s" \
        --threads "$threads" >/dev/null 2>"$tmp/q.err" || { echo "| $s | quantize failed: $(tail -1 "$tmp/q.err") |"; continue; }
    qs=$(awk '{print $1}' "$tmp/time"); qrss=$(awk '{printf "%.0f", $2 / 1024}' "$tmp/time")
    bench "$tmp/q.gguf" "$s" "$qs" "$qrss"
    rm -f "$tmp/q.gguf"
done
