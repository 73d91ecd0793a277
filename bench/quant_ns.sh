#!/bin/sh
# quant_ns.sh - CPU time per weight of `shrink quantize` (docs/dev/quantization-log.md "Speed and
# memory"): for each scheme, the user + system seconds /usr/bin/time reports for one quantize
# run with one thread, divided by the model's parameter count (`shrink info --json`). The time
# includes loading (mmap) and writing, so it is an upper bound on the quantizer's own cost.
#
#   sh bench/quant_ns.sh MODEL [SCHEMES...]
#   env: FLAGS (extra quantize flags, e.g. --ggml-exact), SHRINK (build/shrink)
#
# Prints a markdown table and the commit, machine and time it ran on; never asserts.
set -u
shrink=${SHRINK:-build/shrink}
model=${1:?usage: quant_ns.sh MODEL [SCHEMES...]}
shift
schemes=${*:-q8_0 q4_0 q4_K q5_K q6_K int4_g128 nf4 nf4_dq}
[ -x /usr/bin/time ] || { echo "quant_ns: /usr/bin/time not found (Debian package time)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/qns.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
"$shrink" info "$model" --json >"$tmp/info.json" || exit 1
n=$(sed -n 's/.*"n_params":\([0-9]*\).*/\1/p' "$tmp/info.json" | head -n 1)
echo "model: $model ($n parameters); 1 thread; flags: ${FLAGS:-none};" \
    "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown);" \
    "$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1);" \
    "load average $(cut -d ' ' -f 1 /proc/loadavg 2>/dev/null); $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| scheme | CPU s | ns/weight |"
echo "| --- | ---: | ---: |"
for s in $schemes; do
    # shellcheck disable=SC2086
    if /usr/bin/time -f '%U %S' -o "$tmp/time" "$shrink" quantize "$model" "$tmp/q.gguf" \
        --scheme "$s" --threads 1 ${FLAGS:-} >/dev/null 2>"$tmp/err"; then
        awk -v s="$s" -v n="$n" '{ c = $1 + $2; printf "| %s | %.2f | %.1f |\n", s, c, c / n * 1e9 }' "$tmp/time"
    else
        echo "| $s | failed: $(head -c 200 "$tmp/err" | tr '\n' ' ') | |"
    fi
    rm -f "$tmp/q.gguf"
done
