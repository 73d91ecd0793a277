#!/bin/sh
# lowrank.sh - the measurements of docs/lowrank.md for one model: layer reduction (one sixth of
# the layers, rounded, removed by measured KL, by block influence and the last ones) and
# low-rank factorization (svd, asvd, whiten at a parameter ratio: 0.8 = 20 % fewer parameters
# in the attention and MLP matrices), each set compared with the dense model in one
# `shrink compare` run on held-out text (ppl, KL, top-1, size; no speed: the files are dense).
# Calibration on the training text, evaluation on the test text.
#
#   sh bench/lowrank.sh [MODEL] [OUTDIR]
#   env: SHRINK (build/shrink), CALIB (fixtures/imatrix/calib.txt: a prefix of train.txt),
#        TEXT (test.txt), CALIB_TOKENS (1024 for drop-layers; lowrank uses 2048), TOKENS (4096,
#        scored by compare), REMOVE (n_layers / 6), RATIO (0.8), THREADS (2)
set -u
shrink=${SHRINK:-build/shrink}
model=${1:-../shared/models/mix-llama-22m-long}
out=${2:-/tmp/lowrank_bench}
calib=${CALIB:-../shared/fixtures/imatrix/calib.txt}
text=${TEXT:-../shared/data/corpus/test.txt}
ctok=${CALIB_TOKENS:-1024}
tokens=${TOKENS:-4096}
ratio=${RATIO:-0.8}
threads=${THREADS:-2}
name=$(basename "$model")
mkdir -p "$out"
echo "commit $(git rev-parse --short HEAD 2>/dev/null); cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1);" \
     "$threads threads; load $(cut -d' ' -f1-3 /proc/loadavg)"
layers=$("$shrink" info "$model" --json | sed -n 's/.*"n_layers":\([0-9]*\).*/\1/p')
remove=${REMOVE:-$((layers / 6))}
[ "$remove" -ge 1 ] || remove=1
for by in kld influence last; do
    "$shrink" drop-layers "$model" "$out/$name-drop-$by.gguf" --remove "$remove" --by "$by" \
        --text "$calib" --calib-tokens "$ctok" -t "$threads" || exit 1
done
"$shrink" compare "$model" "$out/$name-drop-kld.gguf" "$out/$name-drop-influence.gguf" \
    "$out/$name-drop-last.gguf" --text "$text" --ctx 256 --tokens "$tokens" --no-speed \
    -t "$threads" || exit 1
for m in svd asvd whiten; do
    calib_opt=""
    [ "$m" = svd ] || calib_opt="--calib $calib"
    # shellcheck disable=SC2086
    "$shrink" lowrank "$model" "$out/$name-lr-$m.gguf" --ratio "$ratio" --method "$m" \
        $calib_opt -t "$threads" || exit 1
done
"$shrink" compare "$model" "$out/$name-lr-svd.gguf" "$out/$name-lr-asvd.gguf" \
    "$out/$name-lr-whiten.gguf" --text "$text" --ctx 256 --tokens "$tokens" --no-speed \
    -t "$threads"
