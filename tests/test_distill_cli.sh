#!/bin/sh
# test_distill_cli.sh - end-to-end tests of `shrink distill` (POSIX sh; run from the repository
# root by tests/run_all.sh with the path of the binary):
#
#   sh tests/test_distill_cli.sh build/shrink
#
# Teacher: stories260K (5 layers); student: a random 2-layer model of the same width and
# tokenizer (`shrink init --config`). Covers: distillation lowers the training loss and the
# validation KL to the teacher (soft targets at tau 2, top-K and weak modes, and a q8_0 GGUF
# teacher); two runs with one seed and thread count give the same final line and model
# bytes; a run killed with SIGKILL at a checkpoint strictly before its last step and resumed
# ends with the same final line and model bytes, in every mode (top-K, whole vocabulary, weak,
# top-K from the teacher cache, and on synthetic text from shrink synth); a checkpoint refuses
# another temperature;
# bad input (alpha outside [0, 1], tau <= 0, a tokenizer that differs at token 0, another
# vocabulary size, --teacher-threads -1): a message, exit 1 or 2, no output folder written;
# --teacher-threads 2 gives the run of the teacher on the student's one thread.
# Needs models/stories260K (in the repository) and ../shared/data/corpus/: missing, they are a
# failure when the shared folder ($SHRINK_SHARED, else ../shared) is present, a counted skip
# (exit 77) when it is absent.
# Ends with "test_distill_cli: N passed, N failed, N skipped"; exit 1 on any failure.
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-distill-cli.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM

finish() { sh_finish test_distill_cli; }

run() { expect_ok "$@"; }  # run DESC CMD...: CMD exits 0, no sanitizer report

# first_num KEY FILE: the number after "KEY": on the first line of FILE holding it (json_num
# of tests/sh_lib.sh takes the last).
first_num() {
    grep "\"$1\":" "$2" | head -n 1 | sed -n "s/.*\"$1\":\\(-\\{0,1\\}[0-9.eE+-]*\\).*/\\1/p"
}

teacher=$(asset models/stories260K/stories260K.bin) || teacher=""
tok=$(asset models/stories260K/tok512.bin) || tok=""
corpus=$(asset data/corpus/tinystories_val_subset.txt) || corpus=""
if [ -z "$teacher" ] || [ -z "$tok" ] || [ -z "$corpus" ]; then
    missing "stories260K or data/corpus/tinystories_val_subset.txt"
    finish
fi
if [ -n "${ASAN_OPTIONS:-}${UBSAN_OPTIONS:-}" ]; then steps=6; every=2; else steps=12; every=3; fi

# ==== the student: half the teacher's depth, same width and tokenizer ===========================

student_config() {  # VOCAB
    printf '{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":64,'
    printf '"num_hidden_layers":2,"num_attention_heads":8,"num_key_value_heads":4,'
    printf '"intermediate_size":172,"vocab_size":%s,"max_position_embeddings":512,' "$1"
    printf '"rms_norm_eps":1e-5,"rope_theta":10000.0,"tie_word_embeddings":true,'
    printf '"bos_token_id":1,"eos_token_id":2}\n'
}
student_config 512 >"$tmp/config.json"
run "init the student" "$bin" init --config "$tmp/config.json" --tokenizer "$tok" --seed 1 \
    "$tmp/student.gguf"
head -c 120000 "$corpus" >"$tmp/train.txt"
tail -c 4000 "$corpus" >"$tmp/valid.txt"
run "tokenize" "$bin" tokenize "$tmp/train.txt" "$tmp/train.tok" --model "$teacher"

# ==== usage and bad input ======================================================================

"$bin" distill --student "$tmp/student.gguf" --data "$tmp/train.tok" --out "$tmp/x" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "missing --teacher" "$tmp/err" && ok || bad "distill without --teacher: want exit 2"
"$bin" distill --teacher "$teacher" --data "$tmp/train.tok" --out "$tmp/x" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "missing --student" "$tmp/err" && ok || bad "distill without --student: want exit 2"
for a in -0.1 1.5; do
    "$bin" distill --teacher "$teacher" --student "$tmp/student.gguf" --data "$tmp/train.tok" \
        --out "$tmp/x" --alpha $a >"$tmp/out" 2>"$tmp/err"
    [ $? -eq 1 ] && grep -q "alpha" "$tmp/err" && ok || bad "--alpha $a accepted: $(cat "$tmp/err")"
done
for t in 0 -1; do
    "$bin" distill --teacher "$teacher" --student "$tmp/student.gguf" --data "$tmp/train.tok" \
        --out "$tmp/x" --temperature $t >"$tmp/out" 2>"$tmp/err"
    [ $? -eq 1 ] && grep -q "temperature" "$tmp/err" && ok || bad "--temperature $t accepted: $(cat "$tmp/err")"
done
"$bin" distill --teacher "$teacher" --student "$tmp/student.gguf" --data "$tmp/train.tok" \
    --out "$tmp/x" --mode nope >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ] && ok || bad "--mode nope: want exit 2"
# a tokenizer whose token 0 differs ("<unk>" -> "Xunk>"; tokenizer.bin: u32 max length, then
# per token f32 score, i32 length, bytes)
cp "$tok" "$tmp/tok_bad.bin"
printf 'X' | dd of="$tmp/tok_bad.bin" bs=1 seek=12 conv=notrunc 2>/dev/null
run "init a student with another tokenizer" "$bin" init --config "$tmp/config.json" \
    --tokenizer "$tmp/tok_bad.bin" --seed 1 "$tmp/student_badtok.gguf"
"$bin" distill --teacher "$teacher" --student "$tmp/student_badtok.gguf" --data "$tmp/train.tok" \
    --out "$tmp/x" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "differ at token 0" "$tmp/err" && ok ||
    bad "another tokenizer: want 'differ at token 0', got: $(cat "$tmp/err")"
student_config 600 >"$tmp/config600.json"
run "init a student with another vocabulary" "$bin" init --config "$tmp/config600.json" --seed 1 \
    "$tmp/student600.gguf"
"$bin" distill --teacher "$teacher" --student "$tmp/student600.gguf" --data "$tmp/train.tok" \
    --out "$tmp/x" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "tokens" "$tmp/err" && ok || bad "another vocabulary size accepted: $(cat "$tmp/err")"
[ ! -e "$tmp/x" ] && ok || bad "a refused run created its output folder"

# ==== distillation lowers the loss and the KL to the teacher ===================================

for mode in "soft" "topk" "weak"; do
    case $mode in
        soft) extra="--alpha 0.5 --temperature 2" ;;
        topk) extra="--alpha 0.8 --temperature 2 --top-k 16" ;;
        weak) extra="--alpha 0.5 --mode weak" ;;
    esac
    # shellcheck disable=SC2086
    if run "distill $mode" "$bin" distill --teacher "$teacher" --student "$tmp/student.gguf" \
        --data "$tmp/train.tok" --valid "$tmp/valid.txt" --steps $steps --batch 4 --ctx 32 \
        --lr 3e-3 --eval-windows 8 --out "$tmp/d_$mode" --threads 1 --json $extra; then
        l0=$(first_num loss "$tmp/out")
        l1=$(grep '"step":' "$tmp/out" | tail -n 3 | sed -n 's/.*"loss":\([0-9.eE+-]*\).*/\1/p' |
             awk '{ s += $1; n++ } END { if (n) print s / n }')
        k0=$(json_num val_kl_start "$tmp/out")
        k1=$(json_num val_kl "$tmp/out")
        lt "$l1" "$l0" && ok || bad "distill $mode: training loss did not fall: $l0 -> $l1 (mean of the last 3)"
        lt "$k1" "$k0" && ok || bad "distill $mode: validation KL to the teacher did not fall: $k0 -> $k1"
        echo "distill $mode: loss $l0 -> $l1, val_kl $k0 -> $k1 after $steps steps"
    fi
done

# ==== a quantized teacher (q8_0 GGUF) ==========================================================

if run "quantize the teacher" "$bin" quantize "$teacher" "$tmp/teacher_q8.gguf" --scheme q8_0; then
    if run "distill from the q8_0 teacher" "$bin" distill --teacher "$tmp/teacher_q8.gguf" \
        --student "$tmp/student.gguf" --data "$tmp/train.tok" --valid "$tmp/valid.txt" \
        --steps $steps --batch 4 --ctx 32 --lr 3e-3 --eval-windows 8 --out "$tmp/d_q8" \
        --threads 1 --json; then
        k0=$(json_num val_kl_start "$tmp/out")
        k1=$(json_num val_kl "$tmp/out")
        lt "$k1" "$k0" && ok || bad "q8_0 teacher: validation KL did not fall: $k0 -> $k1"
    fi
fi

# ==== same seed and threads -> identical; kill -9 and resume -> identical =====================

# (--no-manifest: the runs' manifests record their own --out and --resume; docs/manifest.md)
opts="--teacher $teacher --student $tmp/student.gguf --data $tmp/train.tok --steps $steps \
--batch 4 --ctx 32 --lr 3e-3 --alpha 0.7 --temperature 2 --top-k 32 --seed 7 \
--save-every $every --threads 1 --no-manifest"
# shellcheck disable=SC2086
run "run 1" "$bin" distill $opts --out "$tmp/r1" && grep '^final:' "$tmp/out" >"$tmp/final1"
# shellcheck disable=SC2086
run "run 2" "$bin" distill $opts --out "$tmp/r2" && grep '^final:' "$tmp/out" >"$tmp/final2"
cmp -s "$tmp/final1" "$tmp/final2" && [ -s "$tmp/final1" ] && ok ||
    bad "two runs with one seed: $(cat "$tmp/final1") vs $(cat "$tmp/final2")"
cmp -s "$tmp/r1/model.gguf" "$tmp/r2/model.gguf" && ok || bad "two runs with one seed: models differ"

# kill_resume NAME REF OPTIONS...: a run of OPTIONS stopped (SIGSTOP, then SIGKILL) as soon as
# its first checkpoint exists, strictly before its last step, then resumed: the same final line
# and model bytes as the uninterrupted run REF (a folder beside REF.final).
kill_resume() {
    kname=$1 kref=$2
    shift 2
    rm -rf "$tmp/k_$kname"
    "$bin" distill "$@" --out "$tmp/k_$kname" >"$tmp/out3" 2>"$tmp/err3" &
    kill_at_checkpoint $! "$tmp/k_$kname"
    if [ $stopped -ne 1 ] || [ -z "$ck_step" ] || [ "$ck_step" -lt 1 ] || [ "$ck_step" -ge "$steps" ]; then
        bad "resume $kname: could not kill the run strictly before its last step (stopped: $stopped, checkpoint step '${ck_step}'): no resume was tested"
    elif run "resume $kname" "$bin" distill "$@" --out "$tmp/k_$kname" --resume "$tmp/k_$kname"; then
        from=$(sed -n 's/^resumed: *from step \([0-9]*\).*/\1/p' "$tmp/out")
        [ "$from" = "$ck_step" ] && ok || bad "resume $kname: resumed from step '${from}', the checkpoint holds $ck_step"
        grep '^final:' "$tmp/out" >"$tmp/k_$kname.final"
        cmp -s "$kref.final" "$tmp/k_$kname.final" && [ -s "$tmp/k_$kname.final" ] && ok ||
            bad "resume $kname: killed + resumed: $(cat "$tmp/k_$kname.final") vs uninterrupted $(cat "$kref.final")"
        cmp -s "$kref/model.gguf" "$tmp/k_$kname/model.gguf" && ok || bad "resume $kname: killed + resumed: models differ"
        echo "resume $kname: killed at checkpoint step $ck_step of $steps, resumed from step $from"
    fi
}

cp "$tmp/final1" "$tmp/r1.final"
# shellcheck disable=SC2086
kill_resume topk "$tmp/r1" $opts

# every other mode: whole vocabulary (soft), weak, top-K from the teacher cache, and soft on
# synthetic text the teacher wrote (shrink synth): uninterrupted, then killed and resumed
run "synth" "$bin" synth "$teacher" "$tmp/syn.tok" --tokens 3000 --seed 1 --threads 1
base="--teacher $teacher --student $tmp/student.gguf --steps $steps --batch 4 --ctx 32 \
--lr 3e-3 --seed 7 --save-every $every --threads 1 --no-manifest"
for mode in soft weak cache synth; do
    case $mode in
        soft)  extra="--data $tmp/train.tok --alpha 0.7 --temperature 2" ;;
        weak)  extra="--data $tmp/train.tok --alpha 0.5 --mode weak" ;;
        cache) extra="--data $tmp/train.tok --alpha 0.7 --top-k 16 --teacher-cache $tmp/tc" ;;
        synth) extra="--data $tmp/syn.tok --alpha 0.9" ;;
    esac
    # shellcheck disable=SC2086
    run "uninterrupted $mode" "$bin" distill $base $extra --out "$tmp/u_$mode" || continue
    grep '^final:' "$tmp/out" >"$tmp/u_$mode.final"
    # shellcheck disable=SC2086
    kill_resume "$mode" "$tmp/u_$mode" $base $extra
done
# the teacher on its own thread budget: the same run (its logits do not depend on its thread
# count, and the student keeps --threads 1)
# shellcheck disable=SC2086
run "teacher threads" "$bin" distill $opts --teacher-threads 2 --out "$tmp/r5" &&
    grep '^final:' "$tmp/out" >"$tmp/final5"
cmp -s "$tmp/final1" "$tmp/final5" && cmp -s "$tmp/r1/model.gguf" "$tmp/r5/model.gguf" && ok ||
    bad "--teacher-threads 2: $(cat "$tmp/final5") vs $(cat "$tmp/final1")"
# shellcheck disable=SC2086
"$bin" distill $opts --teacher-threads -1 --out "$tmp/r6" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "teacher-threads" "$tmp/err" && [ ! -e "$tmp/r6" ] && ok ||
    bad "--teacher-threads -1 accepted: $(cat "$tmp/err")"
# a checkpoint refuses another temperature
# shellcheck disable=SC2086
"$bin" distill $opts --temperature 3 --out "$tmp/r4" --resume "$tmp/r1" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "other options" "$tmp/err" && ok || bad "resume with another --temperature accepted: $(cat "$tmp/err")"

finish
