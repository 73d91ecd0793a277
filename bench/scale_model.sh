#!/bin/sh
# scale_model.sh - the time-per-step model of data-parallel training (docs/scale.md, "Time per
# step"): compute per token measured here, all-reduce bytes counted by the ranks, predicted
# time per step against the number of ranks at stated network bandwidths; and the check
# against real runs with 1, 2 and 4 ranks on this machine (bytes per step counted, the model
# bit-identical to one process, wall and CPU time as measured).
#
#   sh bench/scale_model.sh [build/shrink] [build-mpi/shrink]
#
# Environment (defaults): MODEL (models/stories260K/stories260K.bin), DATA (the shared
# tinystories_val_subset.txt), B (4) sequences per micro-batch, T (64) tokens per sequence,
# A (4) micro-batches per step in the check runs, S (20) steps, G (64) micro-batches per step
# in the prediction, BW ("1.25e9 12.5e9": bytes/s, 10 and 100 Gbit/s), LAT (5e-6 s per
# message), CHECK (1: run the 1/2/4-rank check; 0: measure and predict only).
#
# Compute per token: CPU seconds (user + sys of /usr/bin/time), not wall, since this machine
# is shared: per step u(A) = (cpu(S steps) - cpu(1 step)) / (S - 1) at --accum A and at
# --accum 1; c = (u(A) - u(1)) / ((A - 1) B T) per token and t_opt = u(1) - B T c per step
# (the optimizer step and the gradient clearing, which every rank repeats). One thread.
#
# The model, R ranks on R machines, N trainable parameters, G micro-batches per step:
#   compute  (G / R) B T c + t_opt
#   chain    (R - 1) LAT + (4N + (R - 2) 4P) / BW      (pipelined in pieces of P = 256K floats)
#   bcast    ceil(log2 R) (LAT + 4N / BW)              (binomial tree, an upper bound)
#   step     compute + chain + bcast;  bytes sent per rank per step: 4N + 8 (counted)
set -u
bin=${1:-build/shrink}
mbin=${2:-build-mpi/shrink}
M=${MODEL:-models/stories260K/stories260K.bin}
D=${DATA:-${SHRINK_SHARED:-../shared}/data/corpus/tinystories_val_subset.txt}
B=${B:-4} T=${T:-64} A=${A:-4} S=${S:-20} G=${G:-64}
BW=${BW:-"1.25e9 12.5e9"} LAT=${LAT:-5e-6} CHECK=${CHECK:-1}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-scale.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
for f in "$bin" "$M" "$D"; do [ -e "$f" ] || { echo "scale_model: $f missing" >&2; exit 1; }; done

# run NAME STEPS ACCUM [mpirun -np R]: cpu and wall seconds of one training run -> NAME.t
run() {
    name=$1 steps=$2 acc=$3
    shift 3
    exe=$bin
    [ $# -gt 0 ] && exe=$mbin
    /usr/bin/time -f "%e %U %S" -o "$tmp/$name.t" "$@" "$exe" train "$M" --data "$D" \
        --out "$tmp/$name" --steps "$steps" --batch "$B" --ctx "$T" --accum "$acc" \
        --threads 1 --seed 1 --no-manifest --json > "$tmp/$name.json" 2> "$tmp/$name.err" ||
        { echo "scale_model: $name failed: $(tail -n 3 "$tmp/$name.err")" >&2; exit 1; }
}
cpu() { awk '{ print $2 + $3 }' "$tmp/$1.t"; }
wall() { awk '{ print $1 }' "$tmp/$1.t"; }
key() { sed -n "s/.*\"$1\":\\([0-9.eE+-]*\\).*/\\1/p" "$tmp/$2.json" | tail -n 1; }

run a1 1 "$A"; run aS "$S" "$A"; run o1 1 1; run oS "$S" 1
N=$(key n_params aS)
c_and_opt=$(awk -v a1="$(cpu a1)" -v aS="$(cpu aS)" -v o1="$(cpu o1)" -v oS="$(cpu oS)" \
    -v S="$S" -v A="$A" -v B="$B" -v T="$T" 'BEGIN {
        uA = (aS - a1) / (S - 1); u1 = (oS - o1) / (S - 1)
        c = (uA - u1) / ((A - 1) * B * T); opt = u1 - B * T * c
        if (opt < 0) opt = 0
        printf "%.4g %.4g", c, opt }')
c=${c_and_opt% *} opt=${c_and_opt#* }
echo "model $M: N = $N trainable parameters; B = $B, T = $T; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "measured (CPU time, 1 thread): c = $c s per token, t_opt = $opt s per step"
echo

if [ "$CHECK" = 1 ]; then
    echo "check: --accum $A, $S steps, 1 process vs mpirun -np R (oversubscribed on $(nproc) cores)"
    echo
    echo "| ranks | bytes sent per rank per step (counted) | 4N + 8 | model = 1 process | wall s/step | CPU s/step (all ranks) | predicted compute s/step per rank |"
    echo "| ---: | ---: | ---: | :---: | ---: | ---: | ---: |"
    for R in 1 2 4; do
        if [ $R = 1 ]; then name=aS; bytes=0
        else
            run r$R "$S" "$A" timeout 600 mpirun -np $R
            name=r$R
            bytes=$(key allreduce_bytes_per_step r$R)
        fi
        same=yes   # the final model (model.bin / model.gguf / the folder model/), not the checkpoint
        [ $R = 1 ] || diff -r -q -x checkpoint.bin "$tmp/aS" "$tmp/r$R" >/dev/null || same=NO
        awk -v R=$R -v b="$bytes" -v N="$N" -v same=$same -v w="$(wall $name)" \
            -v u="$(cpu $name)" -v S="$S" -v A="$A" -v B="$B" -v T="$T" -v c="$c" -v o="$opt" \
            'BEGIN { printf "| %d | %s | %d | %s | %.3f | %.3f | %.4f |\n", R, (R > 1 ? b : "-"),
                     (R > 1 ? 4 * N + 8 : 0), (R > 1 ? same : "-"), w / S, u / S,
                     A / R * B * T * c + o }'
    done
    echo
fi

echo "predicted time per step, $G micro-batches of $B x $T tokens per step ($((G * B * T)) tokens), R ranks on R machines:"
echo
printf "| ranks | compute s |"
for bw in $BW; do printf " comm s @ %s B/s | step s @ %s | speed-up @ %s |" "$bw" "$bw" "$bw"; done
echo
printf "| ---: | ---: |"
for bw in $BW; do printf " ---: | ---: | ---: |"; done
echo
for R in 1 2 4 8 16 32 64; do
    [ $R -le "$G" ] || continue
    awk -v R=$R -v G="$G" -v B="$B" -v T="$T" -v c="$c" -v o="$opt" -v N="$N" -v lat="$LAT" \
        -v bws="$BW" 'BEGIN {
        comp = G / R * B * T * c + o
        one = G * B * T * c + o
        printf "| %d | %.4g |", R, comp
        n = split(bws, bw, " ")
        for (i = 1; i <= n; i++) {
            P = 4 * 262144; if (P > 4 * N) P = 4 * N
            chain = R > 1 ? (R - 1) * lat + (4 * N + (R - 2) * P) / bw[i] : 0
            lg = 0; for (k = 1; k < R; k *= 2) lg++
            bc = lg * (lat + 4 * N / bw[i])
            t = comp + chain + bc
            printf " %.3g | %.4g | %.2f |", chain + bc, t, one / t
        }
        printf "\n" }'
done
