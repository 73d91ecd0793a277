#!/bin/sh
# demo.sh - the main job of shrink on the default model: info, a short generation, perplexity,
# then quantization (q8_0, q4_K_M, nf4) and a side-by-side comparison of the quantized models.
#
#   sh tools/demo.sh [path/to/shrink]        (`make demo` builds first and passes build/shrink)
#
# The default model is the first folder that holds stories260K.bin of:
#   $SHRINK_MODELS/stories260K, ../shared/models/stories260K, models/stories260K (embedded copy).
# The perplexity text is fixtures/stories260K/ppl_text.txt from ../shared or tests/fixtures.
set -eu
cd "$(dirname "$0")/.."
bin=${1:-build/shrink}
[ -x "$bin" ] || { echo "demo: $bin not found; run 'make' first" >&2; exit 1; }

model=""
for d in ${SHRINK_MODELS:+"$SHRINK_MODELS/stories260K"} ../shared/models/stories260K models/stories260K; do
    if [ -f "$d/stories260K.bin" ]; then model="$d/stories260K.bin"; break; fi
done
if [ -z "$model" ]; then
    cat >&2 <<'MSG'
demo: no default model found. Looked in $SHRINK_MODELS/stories260K, ../shared/models/stories260K
and models/stories260K. Get stories260K from the Hugging Face repository karpathy/tinyllamas:
files stories260K/stories260K.bin and stories260K/tok512.bin, put both in one folder and set
SHRINK_MODELS to the folder above it (e.g. SHRINK_MODELS=$HOME/models with
$HOME/models/stories260K/stories260K.bin).
MSG
    exit 1
fi
text=""
for d in ${SHRINK_SHARED:+"$SHRINK_SHARED"} ../shared tests/fixtures; do
    if [ -f "$d/fixtures/stories260K/ppl_text.txt" ]; then text="$d/fixtures/stories260K/ppl_text.txt"; break; fi
done

run() {
    printf '\n$'
    for a in "$@"; do
        case "$a" in *" "*) printf ' "%s"' "$a" ;; *) printf ' %s' "$a" ;; esac
    done
    printf '\n'
    "$@"
}

echo "== shrink demo on $model"
run "$bin" info "$model"
run "$bin" generate "$model" -p "Once upon a time" -n 64
echo
if [ -n "$text" ]; then
    run "$bin" ppl "$model" "$text" --ctx 128 --stride 64
    echo "(reference for these settings, fixtures/stories260K/ppl.json: perplexity 3.9489)"
else
    echo "demo: no ppl_text.txt found (../shared or tests/fixtures); skipping ppl" >&2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for s in q8_0 q4_K_M nf4; do
    run "$bin" quantize "$model" "$tmp/stories260K-$s.gguf" --scheme "$s"
done
if [ -n "$text" ]; then
    run "$bin" compare "$model" "$tmp/stories260K-q8_0.gguf" "$tmp/stories260K-q4_K_M.gguf" \
        "$tmp/stories260K-nf4.gguf" --text "$text" --ctx 128 --stride 64 --reps 1
fi
