#!/bin/sh
# bench/vs_llama.sh - shrink bench and llama-bench on the same GGUF files, in alternation.
#
#   LLAMA_BENCH=/path/to/llama-bench [SHRINK=build/shrink] [OLD=/path/to/older/shrink] \
#   [PP=512] [TG=128] [REPS=2] [ROUNDS=2] [THREADS=2] sh bench/vs_llama.sh FILE.gguf ...
#
# For each round and each file: `shrink bench FILE --pp PP --tg TG --reps REPS --threads
# THREADS` (and OLD's, when given), then `llama-bench -m FILE -p PP -n TG -r REPS -t THREADS`.
# Prints one line per measurement, "round file program test tok/s ± sd", plus the load
# average before each file: compare the ratios within a round (docs/perf.md).
set -eu
: "${LLAMA_BENCH:?set LLAMA_BENCH to llama.cpp's llama-bench}"
SHRINK=${SHRINK:-build/shrink}
PP=${PP:-512}; TG=${TG:-128}; REPS=${REPS:-2}; ROUNDS=${ROUNDS:-2}; THREADS=${THREADS:-2}
[ $# -ge 1 ] || { echo "usage: LLAMA_BENCH=... sh bench/vs_llama.sh FILE.gguf ..." >&2; exit 2; }
run_shrink() { # program label file
    "$1" bench "$3" --pp "$PP" --tg "$TG" --reps "$REPS" --threads "$THREADS" 2>/dev/null |
        awk -v r="$round" -v f="$(basename "$3")" -v p="$2" -F'|' \
            '$6 ~ /pp|tg/ { gsub(/ /, "", $6); print r, f, p, $6, $7 }'
}
round=1
while [ "$round" -le "$ROUNDS" ]; do
    for f in "$@"; do
        echo "# round $round $(basename "$f") $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
        run_shrink "$SHRINK" shrink "$f"
        [ -n "${OLD:-}" ] && run_shrink "$OLD" shrink-old "$f"
        "$LLAMA_BENCH" -m "$f" -p "$PP" -n "$TG" -r "$REPS" -t "$THREADS" 2>/dev/null |
            awk -v r="$round" -v f="$(basename "$f")" -F'|' \
                'NF >= 4 && $(NF-2) ~ /pp|tg/ { t = $(NF-2); gsub(/ /, "", t); print r, f, "llama.cpp", t, $(NF-1) }'
    done
    round=$((round + 1))
done
