#!/bin/sh
# test_train_cli.sh - end-to-end tests of `shrink tokenize` and `shrink train` (POSIX sh; run
# from the repository root by tests/run_all.sh with the path of the binary):
#
#   sh tests/test_train_cli.sh build/shrink
#
# Covers: a token file's header; fine-tuning stories260K on TinyStories text (a few dozen
# steps) lowers its validation loss on held-out text, with one JSON object per step and a
# GGUF output that loads; two runs with one seed and thread count give the same final loss
# text and the same model bytes; a run killed with SIGKILL at a checkpoint strictly before its
# last step (stopped with SIGSTOP as soon as the first checkpoint appears, its step read from the
# checkpoint's header) and resumed starts from that step and ends with the same final loss text
# and model bytes as the uninterrupted run (a kill that cannot be placed before the last step is
# a failure, never a pass); usage errors.
# Needs models/stories260K (in the repository) and ../shared/data/corpus/: missing, they are a
# failure when the shared folder ($SHRINK_SHARED, else ../shared) is present, a counted skip
# (exit 77) when it is absent.
# Under sanitizers (ASAN_OPTIONS / UBSAN_OPTIONS set) the runs are shorter.
# Ends with "test_train_cli: N passed, N failed, N skipped"; exit 1 on any failure.
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-train-cli.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM

finish() { sh_finish test_train_cli; }

# run DESC CMD...: stdout in $tmp/out, stderr in $tmp/err; counts a failure on a non-zero
# exit or a sanitizer report; returns non-zero then.
run() { expect_ok "$@"; }

model=$(asset models/stories260K/stories260K.bin) || model=""
corpus=$(asset data/corpus/tinystories_val_subset.txt) || corpus=""
if [ -z "$model" ] || [ -z "$corpus" ]; then
    missing "stories260K or data/corpus/tinystories_val_subset.txt"
    finish
fi
if [ -n "${ASAN_OPTIONS:-}${UBSAN_OPTIONS:-}" ]; then steps=8; every=2; ft=6; else
    steps=30; every=4; ft=24; fi

# ==== usage ===================================================================================

"$bin" train "$model" --out "$tmp/x" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "missing --data" "$tmp/err" && ok || bad "train without --data: want exit 2"
"$bin" tokenize a b >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ] && ok || bad "tokenize without --model/--tokenizer: want exit 2"
"$bin" train "$model" --data x --out "$tmp/x" --schedule nope >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ] && ok || bad "train --schedule nope: want exit 2"

# ==== tokenize ================================================================================

head -c 290000 "$corpus" >"$tmp/train.txt"   # the last 6000 bytes are held out
tail -c 6000 "$corpus" >"$tmp/valid.txt"
if run "tokenize" "$bin" tokenize "$tmp/train.txt" "$tmp/train.tok" --model "$model" --json; then
    [ "$(head -c 8 "$tmp/train.tok")" = SKTOKENS ] && ok || bad "token file: no SKTOKENS magic"
    n=$(json_num tokens "$tmp/out")
    size=$(wc -c <"$tmp/train.tok")
    [ "$size" -eq $((32 + 2 * n)) ] && ok || bad "token file: $size bytes for $n uint16 tokens"
fi
"$bin" train "$model" --data "$tmp/valid.txt" --out "$tmp/x" --ctx 100000 >"$tmp/out" 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "context" "$tmp/err" && ok || bad "train --ctx past the model: want exit 1"

# ==== fine-tuning lowers the validation loss ==================================================

if run "fine-tune" "$bin" train "$model" --data "$tmp/train.tok" --valid "$tmp/valid.txt" \
    --steps $ft --batch 8 --ctx 64 --lr 3e-4 --warmup 2 --eval-every 8 --to gguf \
    --out "$tmp/ft" --threads 1 --json; then
    lines=$(grep -c '"step":' "$tmp/out")
    [ "$lines" -eq $((ft + 1)) ] && ok || bad "fine-tune --json: $lines lines, want $((ft + 1))"
    v0=$(json_num val_loss_start "$tmp/out")
    v1=$(json_num val_loss "$tmp/out")
    awk -v a="$v0" -v b="$v1" 'BEGIN { exit !(b < a) }' && ok ||
        bad "fine-tuning did not lower the validation loss: $v0 -> $v1"
    echo "fine-tune: validation loss $v0 -> $v1 after $ft steps, $(json_num tokens_per_s "$tmp/out") tok/s"
    run "info on the fine-tuned GGUF" "$bin" info "$tmp/ft/model.gguf"
fi

# ==== same seed and threads -> identical; kill -9 and resume -> identical =====================

opts="--data $tmp/train.tok --steps $steps --batch 4 --ctx 64 --lr 1e-3 --warmup 3 --wd 0.1 \
--seed 7 --save-every $every --threads 1"
# shellcheck disable=SC2086
run "run 1" "$bin" train "$model" $opts --out "$tmp/r1" && grep '^final:' "$tmp/out" >"$tmp/final1"
# shellcheck disable=SC2086
run "run 2" "$bin" train "$model" $opts --out "$tmp/r2" && grep '^final:' "$tmp/out" >"$tmp/final2"
cmp -s "$tmp/final1" "$tmp/final2" && [ -s "$tmp/final1" ] && ok ||
    bad "two runs with one seed: $(cat "$tmp/final1") vs $(cat "$tmp/final2")"
cmp -s "$tmp/r1/model.bin" "$tmp/r2/model.bin" && ok || bad "two runs with one seed: models differ"
run "generate with the trained llama2.c model (tokenizer.bin copied beside it)" \
    "$bin" generate "$tmp/r1/model.bin" -n 8 --temp 0

# shellcheck disable=SC2086
"$bin" train "$model" $opts --out "$tmp/r3" >"$tmp/out3" 2>"$tmp/err3" &
# frozen at its first checkpoint so it cannot reach its last step before the SIGKILL; the
# checkpoint then in place is the one the resume must start from
kill_at_checkpoint $! "$tmp/r3"
killed_at=$(grep -c '^step' "$tmp/err3")
if [ $stopped -ne 1 ] || [ -z "$ck_step" ] || [ "$ck_step" -lt 1 ] || [ "$ck_step" -ge "$steps" ]; then
    bad "resume: could not kill the run strictly before its last step (stopped: $stopped, checkpoint step '${ck_step}', $killed_at steps logged, $steps steps): no resume was tested"
# shellcheck disable=SC2086
elif run "resume" "$bin" train "$model" $opts --out "$tmp/r3" --resume "$tmp/r3"; then
    from=$(sed -n 's/^resumed: *from step \([0-9]*\).*/\1/p' "$tmp/out")
    [ "$from" = "$ck_step" ] && ok ||
        bad "resume: resumed from step '${from}', the checkpoint holds step $ck_step"
    grep '^final:' "$tmp/out" >"$tmp/final3"
    cmp -s "$tmp/final1" "$tmp/final3" && [ -s "$tmp/final3" ] && ok ||
        bad "killed + resumed: $(cat "$tmp/final3") vs uninterrupted $(cat "$tmp/final1")"
    cmp -s "$tmp/r1/model.bin" "$tmp/r3/model.bin" && ok || bad "killed + resumed: models differ"
    echo "resume: killed at checkpoint step $ck_step of $steps ($killed_at steps logged), resumed from step $from"
fi
# a checkpoint refuses other options
# shellcheck disable=SC2086
"$bin" train "$model" $opts --lr 5e-4 --out "$tmp/r4" --resume "$tmp/r1" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "other options" "$tmp/err" && ok || bad "resume with another --lr accepted"
# ... naming only the option that differs, as the user wrote it (lr 5e-4, not 0.00050000000000000001)
grep -q "other options: lr 0.0005 (checkpoint 0.001); resume" "$tmp/err" && ok ||
    bad "resume with another --lr: the message does not name just lr: $(cat "$tmp/err")"

finish
