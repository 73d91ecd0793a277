#!/bin/sh
# test_mpi.sh - data-parallel training across processes (issue 20, point 1): a `make MPI=1`
# build run by `mpirun -np 2` against one process of the default build with the same global
# batch (--accum 2), both with one thread per process (POSIX sh; run by `make mpi-check`):
#
#   sh tests/test_mpi.sh build-mpi/shrink build/shrink
#
# Reference: the one-process run. train, distill and lora (with dropout: the dropout stream
# follows the micro-batch) end with the same model / adapter bytes and the same final line;
# a 2-rank run resumed from a 2-rank checkpoint ends as the uninterrupted one-process run; each
# rank sends 4 bytes per trainable parameter per step (+ 8 for the loss), counted. Bad input:
# ranks started with different options (mpirun's MPMD form), --accum that is not a multiple
# of the ranks: a message, a non-zero exit, every rank stopped. --accum 4 over 2 ranks (two
# micro-batches each) equals one process with --accum 4. Calibration: `shrink imatrix` over 2
# and 3 ranks writes the one-process file byte for byte; more ranks than chunks is refused;
# `shrink quantize --method gptq` likewise (the windows' Hessians summed in window order).
# Needs mpirun (Open MPI; `make MPI=1` installs it): missing, that is a failure, since the
# test only runs after `make MPI=1`. Needs models/stories260K (in the repository) and
# ../shared/data/corpus/ (failure when the shared folder is present, counted skip if absent).
# Ends with "test_mpi: N passed, N failed, N skipped"; exit 1 on any failure.
set -u
mbin=${1:-build-mpi/shrink}
bin=${2:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-mpi.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM

if ! command -v mpirun >/dev/null 2>&1 || [ ! -x "$mbin" ]; then
    bad "mpirun or $mbin missing (make MPI=1 builds it and installs Open MPI)"
    sh_finish test_mpi
fi
model=$(asset models/stories260K/stories260K.bin) || model=""
data=$(asset data/corpus/tinystories_val_subset.txt) || data=""
if [ -z "$model" ] || [ -z "$data" ]; then
    missing "stories260K or data/corpus/tinystories_val_subset.txt"
    sh_finish test_mpi
fi
# CI runs as root; two ranks on however many cores there are
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mpi2() { timeout 300 mpirun -np 2 "$mbin" "$@"; }
common="--data $data --steps 4 --batch 2 --ctx 32 --threads 1 --seed 3"

# final LINE FILE: the run's "final:" line (the losses at %.9g)
final() { grep '^final:' "$1"; }

# same DESC ONE TWO FILE: ONE/FILE and TWO/FILE are the same bytes and so are the final lines
same() {
    if cmp -s "$2/$4" "$3/$4" && [ -n "$(final "$2.out")" ] &&
        [ "$(final "$2.out")" = "$(final "$3.out")" ]; then ok
    else bad "$1: 2 ranks differ from 1 process: $(final "$2.out") vs $(final "$3.out")"; fi
}

for cmd in train distill lora; do
    extra=""
    file=model.bin
    case $cmd in
        distill) extra="--teacher $model --alpha 0.5 --temperature 2" ;;
        # (--no-manifest: the adapters' manifests record the two command lines; docs/manifest.md)
        lora) extra="--no-manifest --rank 4 --dropout 0.1 -o" file=adapter.gguf ;;
    esac
    one=$tmp/$cmd-1 two=$tmp/$cmd-2
    if [ $cmd = lora ]; then
        mkdir -p "$one" "$two"
        # shellcheck disable=SC2086
        expect_ok "lora, 1 process" "$bin" lora "$model" $common --accum 2 $extra "$one/$file" --ckpt-dir "$one" &&
            cp "$tmp/out" "$one.out"
        # shellcheck disable=SC2086
        expect_ok "lora, 2 ranks" mpi2 lora "$model" $common $extra "$two/$file" --ckpt-dir "$two" &&
            cp "$tmp/out" "$two.out"
    else
        # shellcheck disable=SC2086
        expect_ok "$cmd, 1 process" "$bin" $cmd "$model" $common --accum 2 $extra --out "$one" &&
            cp "$tmp/out" "$one.out"
        # shellcheck disable=SC2086
        expect_ok "$cmd, 2 ranks" mpi2 $cmd "$model" $common $extra --out "$two" &&
            cp "$tmp/out" "$two.out"
    fi
    same "$cmd" "$one" "$two" $file
done

# two micro-batches per rank (--accum 4 over 2 ranks): rank 1 adds its two gradients one by one
# to rank 0's sum, as one process with --accum 4 does
# shellcheck disable=SC2086
expect_ok "train --accum 4, 1 process" "$bin" train "$model" $common --accum 4 --out "$tmp/a1" &&
    cp "$tmp/out" "$tmp/a1.out"
# shellcheck disable=SC2086
expect_ok "train --accum 4, 2 ranks" mpi2 train "$model" $common --accum 4 --out "$tmp/a2" &&
    cp "$tmp/out" "$tmp/a2.out"
same "train --accum 4" "$tmp/a1" "$tmp/a2" model.bin

# bytes per step, counted by the ranks
# shellcheck disable=SC2086
if expect_ok "train --json, 2 ranks" mpi2 train "$model" $common --out "$tmp/j" --json; then
    n=$(json_num n_params "$tmp/out")
    b=$(json_num allreduce_bytes_per_step "$tmp/out")
    [ -n "$n" ] && [ "$b" = "$((4 * n + 8))" ] && ok ||
        bad "bytes per step $b, want 4 x $n parameters + 8"
fi

# kill -9 and resume with 2 ranks: ends as the uninterrupted one-process run. As soon as rank 0
# has written its first checkpoint the ranks are frozen (SIGSTOP), then killed with mpirun.
# The processes are matched by this run's own output folder (--out TMP/k), not by name alone.
steps=12
c="--data $data --steps $steps --batch 2 --ctx 32 --threads 1 --seed 5 --save-every 2"
# shellcheck disable=SC2086
expect_ok "train $steps steps, 1 process" "$bin" train "$model" $c --accum 2 --out "$tmp/u" &&
    final "$tmp/out" > "$tmp/u.final"
# shellcheck disable=SC2086
mpi2 train "$model" $c --out "$tmp/k" >/dev/null 2>"$tmp/k.err" &
pid=$!
i=0
stopped=0
while [ $i -lt 6000 ]; do
    if [ -f "$tmp/k/checkpoint.bin" ]; then
        pkill -STOP -f -- "--out $tmp/k\$" && stopped=1
        break
    fi
    kill -0 $pid 2>/dev/null || break
    sleep 0.01
    i=$((i + 1))
done
pkill -9 -f -- "--out $tmp/k\$"
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
# step: u64 little-endian at byte 16 of the checkpoint (src/train/checkpoint.c), read once
# every rank is dead (a rank scheduled late can still rename a newer one before it stops)
ck_step=$(od -An -t u8 -j 16 -N 8 "$tmp/k/checkpoint.bin" 2>/dev/null | tr -d ' ')
if [ $stopped -ne 1 ] || [ -z "$ck_step" ] || [ "$ck_step" -lt 1 ] || [ "$ck_step" -ge $steps ]; then
    bad "resume: could not stop the ranks strictly before the last step (stopped $stopped, checkpoint step '${ck_step}')"
# shellcheck disable=SC2086
elif expect_ok "resume with 2 ranks" mpi2 train "$model" $c --out "$tmp/k" --resume "$tmp/k"; then
    grep -q "^resumed: *from step $ck_step\$" "$tmp/out" && ok ||
        bad "resumed from '$(grep resumed "$tmp/out")', the checkpoint holds step $ck_step"
    [ -s "$tmp/u.final" ] && [ "$(final "$tmp/out")" = "$(cat "$tmp/u.final")" ] && ok ||
        bad "killed + resumed: $(final "$tmp/out") vs uninterrupted $(cat "$tmp/u.final")"
    cmp -s "$tmp/k/model.bin" "$tmp/u/model.bin" && ok || bad "killed + resumed: models differ"
    echo "resume: 2 ranks killed at checkpoint step $ck_step of $steps, resumed: identical"
fi

# calibration over ranks: imatrix's 5 chunks shared by 2 ranks (2 + 3) and by 3 (1 + 2 + 2:
# ranks 1 and 2 keep two chunks' sums apart), the file byte for byte the one-process file;
# more ranks than chunks is refused
ic="--calib $data --calib-ctx 32 --calib-tokens 160 --threads 1"
# shellcheck disable=SC2086
expect_ok "imatrix, 1 process" "$bin" imatrix "$model" $ic -o "$tmp/im1.dat"
for n in 2 3; do
    # shellcheck disable=SC2086
    if expect_ok "imatrix, $n ranks" timeout 300 mpirun -np $n "$mbin" imatrix "$model" $ic \
        -o "$tmp/im$n.dat" --json; then
        cmp -s "$tmp/im1.dat" "$tmp/im$n.dat" && ok || bad "imatrix: $n ranks differ from 1 process"
        [ "$(json_num ranks "$tmp/out")" = $n ] && [ "$(json_num n_chunks "$tmp/out")" = 5 ] && ok ||
            bad "imatrix, $n ranks: $(cat "$tmp/out")"
    fi
done
# shellcheck disable=SC2086
timeout 300 mpirun -np 3 "$mbin" imatrix "$model" --calib $data --calib-ctx 32 --calib-tokens 64 \
    --threads 1 -o "$tmp/im-bad.dat" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "2 chunks of 32 tokens cannot be shared by 3 ranks" "$tmp/err" &&
    [ ! -e "$tmp/im-bad.dat" ] && ok || bad "imatrix, 3 ranks, 2 chunks: exit $rc: $(head -c 300 "$tmp/err")"

# GPTQ over ranks: 150 tokens = 5 windows of 32 (the last 22) shared by 2 ranks (2 + 3) and
# by 3 (1 + 2 + 2: ranks 1 and 2 keep two windows' Hessians apart), the file rank 0 writes
# byte for byte the one-process file (--no-manifest: the manifest records the command line);
# more ranks than windows is refused
gc="--scheme q4_0 --method gptq --calib $data --calib-ctx 32 --calib-tokens 150 --threads 1 --no-manifest"
# shellcheck disable=SC2086
expect_ok "gptq, 1 process" "$bin" quantize "$model" "$tmp/g1.gguf" $gc
for n in 2 3; do
    # shellcheck disable=SC2086
    if expect_ok "gptq, $n ranks" timeout 300 mpirun -np $n "$mbin" quantize "$model" \
        "$tmp/g$n.gguf" $gc --json; then
        cmp -s "$tmp/g1.gguf" "$tmp/g$n.gguf" && ok || bad "gptq: $n ranks differ from 1 process"
        [ "$(json_num ranks "$tmp/out")" = $n ] && [ "$(json_num gptq_matrices "$tmp/out")" -gt 0 ] &&
            ok || bad "gptq, $n ranks: $(cat "$tmp/out")"
    fi
done
# shellcheck disable=SC2086
timeout 300 mpirun -np 3 "$mbin" quantize "$model" "$tmp/g-bad.gguf" --scheme q4_0 --method gptq \
    --calib $data --calib-ctx 32 --calib-tokens 64 --threads 1 >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "2 calibration windows of 32 tokens cannot be shared by 3 ranks" "$tmp/err" &&
    [ ! -e "$tmp/g-bad.gguf" ] && ok || bad "gptq, 3 ranks, 2 windows: exit $rc: $(head -c 300 "$tmp/err")"

# bad input: ranks with different options (MPMD), --accum that is not a multiple of the ranks
# shellcheck disable=SC2086
timeout 300 mpirun -np 1 "$mbin" train "$model" $common --lr 1e-3 --out "$tmp/b1" : \
    -np 1 "$mbin" train "$model" $common --lr 2e-3 --out "$tmp/b1" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "differ from rank 0's" "$tmp/err" && ok ||
    bad "ranks with different --lr: exit $rc: $(head -c 300 "$tmp/err")"
[ -e "$tmp/b1/model.bin" ] && bad "ranks with different options wrote a model" || ok
# shellcheck disable=SC2086
timeout 300 mpirun -np 2 "$mbin" train "$model" $common --accum 3 --out "$tmp/b2" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "2 ranks need a multiple of 2 micro-batches per step" "$tmp/err" && ok ||
    bad "2 ranks with --accum 3: exit $rc: $(head -c 300 "$tmp/err")"
sh_finish test_mpi
