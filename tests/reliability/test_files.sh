#!/bin/sh
# tests/reliability/test_files.sh - what shrink promises about the user's files
# (docs/reliability.md), end to end through the `shrink` command (POSIX sh; run from the
# repository root by tests/run_all.sh with the path of the binary):
#
#   sh tests/reliability/test_files.sh build/shrink
#
#   1. an output never replaces an input of the same command, whatever the spelling (same
#      path, "..", hard link, symbolic link, an input inside an output folder, a file of an
#      input model folder, train's --out holding the model): exit 1, a message naming both
#      arguments, the input byte for byte as before;
#   2. an existing output that is not a regular file (FIFO, symbolic link) is refused;
#   3. a Hugging Face folder written over an existing one holds exactly the new model;
#   4. SIGINT, SIGTERM and SIGHUP during a write leave no temporary and exit 128 + signal;
#      after SIGKILL nothing is left with O_TMPFILE, and with named temporaries
#      (SHRINK_NO_TMPFILE=1) the next command writing in that folder removes the stale one and
#      says so; both write the same bytes; a failed `train` leaves no empty --out;
#   5. /dev/zero and a FIFO as a text, token, calibration, tokenizer, teacher, checkpoint or
#      adapter input get a message naming the option at once (no endless read, no wait for a
#      writer); "no such file" only when there is none;
#   6. NaN/Inf weights (f32, and a forged NaN q8_0 block scale) refused at load, convert and
#      quantize naming the tensor, counted by info, allowed with --allow-nonfinite;
#   7. a tokenizer smaller than the vocabulary refused at load, naming the option; no
#      internal function in messages.
#
# Needs stories260K (../shared or the copies in tests/fixtures/ and models/stories260K/).
# Ends with "test_files: N passed, N failed, N skipped"; exit 1 on any failure, 77 if the
# assets are missing everywhere.
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-reliab.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM

model=$(asset models/stories260K/stories260K.bin) || model=
tok=$(asset models/stories260K/tok512.bin) || tok=
hf=$(asset models/stories260K-hf) || hf=
if [ -z "$model" ] || [ -z "$tok" ]; then
    if [ -d "$shared" ]; then echo "test_files: stories260K missing from $shared"; exit 1; fi
    echo "test_files: SKIPPED: stories260K not found (no shared folder $shared)"; exit 77
fi
[ -n "$hf" ] || missing "models/stories260K-hf"

# run CMD...: stdout in $tmp/out, stderr in $tmp/err, exit status in rc (a 60 s limit).
run() {
    timeout 60 "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

# refused DESC PATTERN...: rc 1 (not 0, not a crash, not a timeout), stderr holds every
# PATTERN (fixed strings), stdout is empty.
refused() {
    desc=$1
    shift
    if [ $rc -ne 1 ]; then bad "$desc: exit $rc, expected 1 ($(head -c 300 "$tmp/err"))"; return 1; fi
    for p in "$@"; do
        if ! grep -qF -- "$p" "$tmp/err"; then
            bad "$desc: stderr lacks '$p': $(head -c 300 "$tmp/err")"; return 1
        fi
    done
    if [ -s "$tmp/out" ]; then bad "$desc: stdout not empty"; return 1; fi
    ok
}

# same DESC ORIG FILE: FILE still has the bytes of ORIG (else it is restored for the next case).
same() {
    if cmp -s "$2" "$3"; then ok; else bad "$1: $3 changed"; rm -rf "$3"; cp "$2" "$3"; fi
}

# ==== 1. no output replaces an input ========================================================
d=$tmp/clobber
mkdir -p "$d/sub"
printf 'Once upon a time there was a little cat. It liked to play in the sun.\n' >"$d/a.txt"
cp "$d/a.txt" "$d/a.orig"
cp "$tok" "$d/tok.bin"

run "$bin" tokenize "$d/a.txt" "$d/a.txt" --tokenizer "$tok"
refused "tokenize TEXT TEXT" "OUT" "TEXT" "$d/a.txt"; same "tokenize TEXT TEXT" "$d/a.orig" "$d/a.txt"
run "$bin" tokenize "$d/a.txt" "$d/sub/../a.txt" --tokenizer "$tok"
refused "tokenize TEXT sub/../TEXT" "OUT" "TEXT"; same "tokenize TEXT sub/../TEXT" "$d/a.orig" "$d/a.txt"
ln "$d/a.txt" "$d/hard.txt"
run "$bin" tokenize "$d/a.txt" "$d/hard.txt" --tokenizer "$tok"
refused "tokenize TEXT hard-link" "OUT" "TEXT"; same "tokenize TEXT hard-link" "$d/a.orig" "$d/a.txt"
run "$bin" tokenize "$d/a.txt" "$d/tok.bin" --tokenizer "$d/tok.bin"
refused "tokenize OUT = --tokenizer" "OUT" "--tokenizer"; same "tokenize OUT = --tokenizer" "$tok" "$d/tok.bin"
run "$bin" convert "$model" "$d/tok.bin" --tokenizer "$d/tok.bin"
refused "convert OUT = --tokenizer" "OUT" "--tokenizer" "$d/tok.bin"; same "convert OUT = --tokenizer" "$tok" "$d/tok.bin"
cp "$model" "$d/m.bin"
run "$bin" quantize "$d/m.bin" "$d/m.bin" --scheme q8_0 --tokenizer "$tok"
refused "quantize IN IN" "OUT" "IN"; same "quantize IN IN" "$model" "$d/m.bin"
run "$bin" quantize "$d/m.bin" "$d/a.txt" --scheme w8a8_static --calib "$d/a.txt" --tokenizer "$tok"
refused "quantize OUT = --calib" "OUT" "--calib"; same "quantize OUT = --calib" "$d/a.orig" "$d/a.txt"
# prune: onto its --calib text, onto its input through a symbolic link
printf 'Once upon a time there was a little cat.\n' >"$d/c.gguf"
cp "$d/c.gguf" "$d/c.orig"
run "$bin" prune "$d/m.bin" "$d/c.gguf" --method wanda --sparsity 0.5 --calib "$d/c.gguf" --tokenizer "$tok"
refused "prune OUT = --calib" "OUT" "--calib"; same "prune OUT = --calib" "$d/c.orig" "$d/c.gguf"
ln -s m.bin "$d/ml.gguf"
run "$bin" prune "$d/ml.gguf" "$d/m.bin" --method magnitude --sparsity 0.5
refused "prune IN via a link = OUT" "OUT" "IN"; same "prune IN via a link = OUT" "$model" "$d/m.bin"
# merge: onto one of its --lora adapters (checked before the base is loaded); a FIFO adapter
ada=$(asset fixtures/lora/mix-llama-14m-lora-f32.gguf) || ada=
base14=$(asset models/mix-llama-14m) || base14=
if [ -n "$ada" ] && [ -n "$base14" ]; then
    cp "$ada" "$d/ad.gguf"
    run "$bin" merge "$base14" --lora "$d/ad.gguf" -o "$d/sub/../ad.gguf"
    refused "merge -o = --lora" "-o" "--lora"; same "merge -o = --lora" "$ada" "$d/ad.gguf"
    mkfifo "$d/ad.fifo"
    run "$bin" merge "$base14" --lora "$d/ad.fifo" -o "$d/merged.gguf"
    refused "merge --lora FIFO" "--lora" "FIFO"
    if [ ! -e "$d/merged.gguf" ]; then ok; else bad "merge with a FIFO adapter wrote its output"; fi
else
    missing "fixtures/lora/mix-llama-14m-lora-f32.gguf or models/mix-llama-14m"
fi
run "$bin" eval --make-lambada "$d/a.txt" "$d/sub/../a.txt"
refused "eval --make-lambada TEXT TEXT" "OUT" "--make-lambada"; same "eval --make-lambada TEXT TEXT" "$d/a.orig" "$d/a.txt"
# a HF output folder holding the input, or being the input folder
run "$bin" convert "$d/m.bin" "$d" --to hf --tokenizer "$tok"
refused "convert IN into its own folder as HF" "OUT" "IN"; same "convert IN into its own folder" "$model" "$d/m.bin"
if [ -n "$hf" ]; then
    cp -r "$hf" "$d/hf"
    run "$bin" convert "$d/hf" "$d/hf" --to hf
    refused "convert HF folder onto itself" "OUT" "IN"; same "convert HF onto itself" "$hf/model.safetensors" "$d/hf/model.safetensors"
    run "$bin" convert "$d/hf/" "$d/hf/../hf" --to hf --dtype f16
    refused "convert HF folder onto itself (other spelling)" "OUT" "IN"; same "convert HF onto itself (spelling)" "$hf/model.safetensors" "$d/hf/model.safetensors"
    run "$bin" convert "$d/hf" "$d/hf/model.safetensors" --to gguf
    refused "convert onto a file of the input model folder" "OUT" "IN"; same "convert onto a file of the input folder" "$hf/model.safetensors" "$d/hf/model.safetensors"
    run "$bin" quantize "$d/hf" "$d/hf/config.json" --scheme q8_0
    refused "quantize onto config.json of the input folder" "OUT" "IN"; same "quantize onto config.json" "$hf/config.json" "$d/hf/config.json"
fi
# train: the model inside --out where the final model goes
mkdir -p "$d/run"
run "$bin" convert "$model" "$d/run/model.gguf" --tokenizer "$tok"
if [ $rc -eq 0 ]; then
    cp "$d/run/model.gguf" "$d/model.gguf.orig"
    run "$bin" train "$d/run/model.gguf" --data "$d/a.txt" --out "$d/run" --steps 1 --batch 1 --ctx 8
    refused "train MODEL inside --out" "--out" "MODEL"; same "train MODEL inside --out" "$d/model.gguf.orig" "$d/run/model.gguf"
    run "$bin" train "$model" --tokenizer "$tok" --data "$d/run/checkpoint.bin" --out "$d/run" --steps 1 --batch 1 --ctx 8 --to gguf
    if [ $rc -ne 0 ] || [ -f "$d/run/checkpoint.bin" ]; then ok; else bad "train --data = --out checkpoint ran"; fi
    printf 'SKTOKENS' >"$d/run/checkpoint.bin"
    cp "$d/run/checkpoint.bin" "$d/ck.orig"
    run "$bin" train "$model" --tokenizer "$tok" --data "$d/run/checkpoint.bin" --out "$d/run" --steps 1 --batch 1 --ctx 8 --to gguf
    refused "train --data = the checkpoint it writes" "--data"; same "train --data = checkpoint" "$d/ck.orig" "$d/run/checkpoint.bin"
else
    bad "convert to gguf for the train case: $(head -c 300 "$tmp/err")"
fi

# ==== 2. outputs are regular files ==========================================================
mkfifo "$d/fifo"
run "$bin" tokenize "$d/a.txt" "$d/fifo" --tokenizer "$tok"
refused "tokenize into a FIFO" "FIFO"
if [ -p "$d/fifo" ]; then ok; else bad "the FIFO output was replaced"; fi
ln -s "$d/a.txt" "$d/link.tok"
run "$bin" tokenize "$d/a.txt" "$d/link.tok" --tokenizer "$tok"
refused "tokenize onto a symbolic link" "symbolic link"
if [ -L "$d/link.tok" ]; then ok; else bad "the symbolic link output was replaced"; fi
same "tokenize onto a link: its target" "$d/a.orig" "$d/a.txt"
run "$bin" convert "$model" "$d/a.txt" --to hf --tokenizer "$tok"
refused "HF folder output onto a file" "$d/a.txt"; same "HF output onto a file" "$d/a.orig" "$d/a.txt"

# ==== 3. a HF folder written as a whole =====================================================
if [ -n "$hf" ]; then
    h=$tmp/hfout
    run "$bin" convert "$hf" "$h" --to hf
    run "$bin" convert "$hf" "$h" --to hf --dtype f16 --shard-size 300000
    if [ $rc -eq 0 ] && [ ! -e "$h/model.safetensors" ] && [ -f "$h/model.safetensors.index.json" ]; then ok
    else bad "HF over HF: old model.safetensors left beside the new shards ($(ls "$h" | tr '\n' ' '))"; fi
    left=$(ls -a "$tmp" | grep -c 'shrink-')
    if [ "$left" -eq 0 ]; then ok; else bad "HF over HF: temporaries left: $(ls -a "$tmp")"; fi
    run "$bin" info "$h" --json
    if grep -q '"f16"' "$tmp/out"; then ok; else bad "HF over HF: the new (f16) model is not what loads"; fi
fi

# ==== 4. interrupted runs leave nothing =====================================================
# writing PID DIR: 0 if process PID has a temporary open in DIR: a named one (".name...")
# or an unnamed O_TMPFILE file (its /proc/PID/fd link reads "DIR/#inode (deleted)").
writing() {
    ls -A "$2" | grep -q '^\.' && return 0
    ls -l "/proc/$1/fd" 2>/dev/null | grep -qF -- "$2/#"
}
# start_init DIR OUT...: `shrink init` of a 250 MB model in the background, until it is
# writing a temporary in DIR (up to 20 s); sets pid, and seen=1 if the write was seen.
start_init() {
    sd=$1
    shift
    # a background job of a script starts with SIGINT ignored (and shrink keeps it so):
    # give it the default action back, as an interactive command has
    $defsig "$bin" init --preset gpt2 --dtype f16 "$@" >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    i=0
    seen=0
    while [ $i -lt 200 ]; do
        if writing $pid "$sd"; then seen=1; return 0; fi
        sleep 0.1
        i=$((i + 1))
    done
    return 0
}
defsig=
if env --default-signal=INT true 2>/dev/null; then defsig="env --default-signal=INT"; fi
for sig in INT TERM HUP; do
    if [ $sig = INT ] && [ -z "$defsig" ]; then
        skip=$((skip + 1)); echo "SKIP: SIGINT (no env --default-signal here)"; continue
    fi
    case $sig in INT) code=130 ;; TERM) code=143 ;; HUP) code=129 ;; esac
    s=$tmp/sig$sig
    mkdir -p "$s"
    if [ $sig = HUP ]; then start_init "$s" "$s/model" --to hf; else start_init "$s" "$s/model.gguf"; fi
    [ $seen = 1 ] || bad "SIG$sig: no write seen in $s (the test did not interrupt a write)"
    kill -$sig $pid
    wait $pid
    rc=$?
    if [ $rc -eq $code ]; then ok; else bad "SIG$sig: exit $rc, expected $code"; fi
    if [ -z "$(ls -A "$s")" ]; then ok; else bad "SIG$sig: left behind: $(ls -a "$s" | tr '\n' ' ')"; fi
done
# SIGKILL with the named temporaries (SHRINK_NO_TMPFILE=1, as on a file system without
# O_TMPFILE): the next run recognises the stale one
s=$tmp/sigKILL
mkdir -p "$s"
export SHRINK_NO_TMPFILE=1
start_init "$s" "$s/model.gguf"
unset SHRINK_NO_TMPFILE
kill -KILL $pid
wait $pid 2>/dev/null
stale=$(ls -A "$s" | grep '^\.' | head -n 1)
if [ -n "$stale" ]; then
    ok
    # a temporary is stale once its process is gone and it is a minute old
    touch -d '2 minutes ago' "$s/$stale"
    run "$bin" tokenize "$d/a.txt" "$s/a.tok" --tokenizer "$tok"
    if [ $rc -eq 0 ] && grep -qF "$stale" "$tmp/err" && [ ! -e "$s/$stale" ]; then ok
    else bad "stale temporary $stale not removed by the next run (rc $rc): $(head -c 300 "$tmp/err")"; fi
else
    bad "SIGKILL: no temporary seen (the test did not interrupt a write)"
fi
# SIGKILL with unnamed temporaries (O_TMPFILE + linkat, the default where the file system
# has it): nothing at all is left in the folder
s=$tmp/sigKILL2
mkdir -p "$s"
start_init "$s" "$s/model.gguf"
named=$(ls -A "$s")   # a named temporary here: this file system has no O_TMPFILE
kill -KILL $pid
wait $pid 2>/dev/null
if [ $seen = 0 ]; then
    bad "SIGKILL with O_TMPFILE: no write seen (the test did not interrupt a write)"
elif [ -n "$named" ]; then
    echo "note: no O_TMPFILE under $tmp (shrink used $named): only named temporaries tested"
elif [ -z "$(ls -A "$s")" ]; then ok
else bad "SIGKILL with O_TMPFILE: left $(ls -A "$s" | tr '\n' ' ')"; fi
# both kinds of temporaries write the same bytes, new and over an existing file
run "$bin" tokenize "$d/a.txt" "$d/tf1.tok" --tokenizer "$tok"
rc1=$rc
export SHRINK_NO_TMPFILE=1
run "$bin" tokenize "$d/a.txt" "$d/tf2.tok" --tokenizer "$tok"
unset SHRINK_NO_TMPFILE
if [ $rc1 -eq 0 ] && [ $rc -eq 0 ] && cmp -s "$d/tf1.tok" "$d/tf2.tok"; then ok
else bad "tokenize with and without SHRINK_NO_TMPFILE differ (exit $rc1, $rc)"; fi
run "$bin" tokenize "$d/a.txt" "$d/tf2.tok" --tokenizer "$tok"
if [ $rc -eq 0 ] && cmp -s "$d/tf1.tok" "$d/tf2.tok" && [ -z "$(ls -A "$d" | grep '^\.')" ]; then ok
else bad "tokenize over an existing file (exit $rc): $(ls -A "$d" | tr '\n' ' ')"; fi
# a failed train leaves no empty --out
run "$bin" train "$model" --tokenizer "$tok" --data "$d/a.txt" --out "$tmp/trainout" --ctx 100000 --steps 1
if [ $rc -eq 1 ] && [ ! -e "$tmp/trainout" ]; then ok; else bad "failed train: exit $rc, --out left: $(ls -a "$tmp/trainout" 2>&1 | tr '\n' ' ')"; fi

# ==== 5. bounded reads ======================================================================
(
    # an address-space limit in case the read grows without bound (not under ASan, whose
    # shadow memory needs terabytes of address space)
    grep -q __asan_init "$bin" 2>/dev/null || ulimit -v 4000000 2>/dev/null
    timeout 30 "$bin" ppl "$model" /dev/zero --tokenizer "$tok" >"$tmp/out" 2>"$tmp/err"
    echo $? >"$tmp/rc"
)
rc=$(cat "$tmp/rc")
refused "ppl /dev/zero" "/dev/zero" "character device"
run "$bin" tokenize "$d/fifo" "$d/f.tok" --tokenizer "$tok"
refused "tokenize a FIFO" "$d/fifo" "FIFO"
run "$bin" train "$model" --tokenizer "$tok" --data "$d/fifo" --out "$tmp/trf" --steps 1
refused "train --data FIFO" "$d/fifo" "FIFO"
run "$bin" compare "$model" "$model" --text /dev/zero --tokenizer "$tok"
refused "compare --text /dev/zero" "/dev/zero" "character device"
run "$bin" tokenize "$d/a.txt" "$d/t.tok" --tokenizer "$d/fifo"
refused "--tokenizer FIFO" "$d/fifo" "FIFO"
if grep -q "no such" "$tmp/err"; then bad "--tokenizer FIFO said 'no such'"; else ok; fi
run "$bin" info "$d/fifo"
refused "info FIFO" "$d/fifo" "FIFO"
# every input of every writing command (cli_check_io), and --lora: a message naming the
# option at once
mkdir -p "$d/rs"
mkfifo "$d/rs/checkpoint.bin"
for c in "quantize|--calib|$d/fifo|quantize $d/m.bin $d/q.gguf --scheme w8a8_static --tokenizer $tok --calib" \
         "quantize|--calib|/dev/zero|quantize $d/m.bin $d/q.gguf --scheme w8a8_static --tokenizer $tok --calib" \
         "prune|--calib|/dev/zero|prune $d/m.bin $d/p.gguf --method wanda --sparsity 0.5 --tokenizer $tok --calib" \
         "prune|--tokenizer|$d/fifo|prune $d/m.bin $d/p.gguf --method magnitude --sparsity 0.5 --tokenizer" \
         "convert|--tokenizer|/dev/zero|convert $d/m.bin $d/cv.gguf --tokenizer" \
         "tokenize|TEXT|/dev/zero|tokenize $d/t.tok --tokenizer $tok" \
         "train|--valid|$d/fifo|train $model --tokenizer $tok --data $d/a.txt --out $d/tv --steps 1 --valid" \
         "train|--resume|$d/fifo|train $model --tokenizer $tok --data $d/a.txt --out $d/tr --steps 1 --resume" \
         "train|--resume|$d/rs/checkpoint.bin|train $model --tokenizer $tok --data $d/a.txt --out $d/tr --steps 1 --ctx 8 --batch 1 --resume $d/rs #" \
         "lora|--resume|$d/fifo|lora $model --tokenizer $tok --data $d/a.txt -o $d/tl.gguf --steps 1 --resume" \
         "lora|--data|/dev/zero|lora $model --tokenizer $tok -o $d/tl.gguf --steps 1 --data" \
         "distill|--teacher|/dev/zero|distill $model --tokenizer $tok --data $d/a.txt --out $d/td --steps 1 --teacher" \
         "eval|--make-lambada|$d/fifo|eval $d/lam.jsonl --make-lambada" \
         "ppl|--lora|$d/fifo|ppl $model $d/a.txt --tokenizer $tok --lora" \
         "generate|--lora|/dev/zero|generate $model -p Once -n 2 --tokenizer $tok --lora"; do
    name=${c%%|*}; rest=${c#*|}; opt=${rest%%|*}; rest=${rest#*|}; path=${rest%%|*}; args=${rest#*|}
    # shellcheck disable=SC2086
    case $name in
        tokenize) run "$bin" tokenize "$path" "$d/t.tok" --tokenizer "$tok" ;;
        eval) run "$bin" eval --make-lambada "$path" "$d/lam.jsonl" ;;
        *) case $args in *'#') run "$bin" ${args%#} ;; *) run "$bin" $args "$path" ;; esac ;;
    esac
    refused "$name $opt $path" "$path"
    if grep -qiE 'FIFO|character device' "$tmp/err"; then ok; else bad "$name $opt $path: the message does not say what it is: $(head -c 300 "$tmp/err")"; fi
done
for o in q.gguf p.gguf cv.gguf t.tok tv tr td tl.gguf tl.gguf.ckpt lam.jsonl; do
    if [ -e "$d/$o" ]; then bad "a refused input left $d/$o"; fi
done
run "$bin" tokenize "$d/a.txt" "$d/t.tok" --tokenizer "$d/absent.bin"
refused "--tokenizer absent" "$d/absent.bin" "no such"

# ==== 6. NaN never silently accepted ========================================================
# stories260K with a NaN as the first weight of layer 0's attention norm (llama2.c layout:
# 28-byte header, then the 512 x 64 f32 embeddings)
cp "$model" "$d/nan.bin"
printf '\000\000\300\177' | dd of="$d/nan.bin" bs=1 seek=131100 conv=notrunc 2>/dev/null
run "$bin" generate "$d/nan.bin" -p "Once" -n 4 --tokenizer "$tok"
refused "generate a NaN model" "$d/nan.bin" "NaN" "--allow-nonfinite"
run "$bin" generate "$d/nan.bin" -p "Once" -n 4 --tokenizer "$tok" --allow-nonfinite
if [ $rc -eq 0 ]; then ok; else bad "--allow-nonfinite: exit $rc"; fi
run "$bin" info "$d/nan.bin" --tokenizer "$tok" --json
if [ $rc -eq 0 ] && grep -q '"nonfinite_values":1,' "$tmp/out"; then ok; else bad "info counts NaN: $(head -c 300 "$tmp/out")"; fi
run "$bin" compare "$model" "$d/nan.bin" --text "$d/a.txt" --tokenizer "$tok" --allow-nonfinite
refused "compare with a NaN model" "$d/nan.bin" "NaN"
run "$bin" quantize "$d/nan.bin" "$d/nan.gguf" --scheme q4_0 --tokenizer "$tok"
refused "quantize a NaN model" "$d/nan.bin" "NaN"
if [ ! -e "$d/nan.gguf" ]; then ok; else bad "quantize a NaN model wrote its output"; fi
# a quantized model whose first q8_0 block scale (token_embd.weight) is NaN: two q8_0 copies,
# one made from weights whose first value is 100, differ first at that block's f16 scale
mkdir -p "$d/qa" "$d/qb"
cp "$model" "$d/qa/m.bin"; cp "$model" "$d/qb/m.bin"
printf '\000\000\310\102' | dd of="$d/qb/m.bin" bs=1 seek=28 conv=notrunc 2>/dev/null
# (--no-manifest: the manifests, which name each input, would differ first; docs/manifest.md)
"$bin" quantize "$d/qa/m.bin" "$d/qa/q.gguf" --scheme q8_0 --tokenizer "$tok" --no-manifest >/dev/null 2>&1
"$bin" quantize "$d/qb/m.bin" "$d/qb/q.gguf" --scheme q8_0 --tokenizer "$tok" --no-manifest >/dev/null 2>&1
at=$(cmp "$d/qa/q.gguf" "$d/qb/q.gguf" 2>/dev/null | sed -n 's/.* byte \([0-9]*\),.*/\1/p')
if [ -n "$at" ]; then
    cp "$d/qa/q.gguf" "$d/qnan.gguf"
    printf '\000\176' | dd of="$d/qnan.gguf" bs=1 seek=$((at - 1)) conv=notrunc 2>/dev/null
    run "$bin" generate "$d/qnan.gguf" -p "Once" -n 4
    refused "generate with a NaN q8_0 scale" "$d/qnan.gguf" "token_embd.weight" "NaN"
    run "$bin" info "$d/qnan.gguf" --json
    if [ $rc -eq 0 ] && grep -q '"nonfinite_values":32,' "$tmp/out"; then ok
    else bad "info counts a NaN q8_0 block: $(head -c 300 "$tmp/out") $(head -c 300 "$tmp/err")"; fi
    run "$bin" convert "$d/qnan.gguf" "$d/qnan-conv.gguf"
    refused "convert a NaN q8_0 scale" "$d/qnan.gguf" "token_embd.weight" "--allow-nonfinite"
    if [ ! -e "$d/qnan-conv.gguf" ]; then ok; else bad "convert of a NaN scale wrote its output"; fi
    run "$bin" convert "$d/qnan.gguf" "$d/qnan-conv.gguf" --allow-nonfinite
    if [ $rc -eq 0 ] && [ -f "$d/qnan-conv.gguf" ]; then ok; else bad "convert --allow-nonfinite: exit $rc"; fi
    run "$bin" quantize "$d/qnan.gguf" "$d/qnan-q4.gguf" --scheme q4_0
    refused "quantize a NaN q8_0 scale" "$d/qnan.gguf" "token_embd.weight"
    if [ ! -e "$d/qnan-q4.gguf" ]; then ok; else bad "quantize of a NaN scale wrote its output"; fi
else
    bad "the two q8_0 copies do not differ (quantize failed?)"
fi

# ==== 7. checks up front, messages naming the file and the option ==========================
big=$(asset models/mix-llama-14m) || big=
spm=$(asset models/stories260K/tok512.model) || spm=
if [ -n "$big" ] && [ -n "$spm" ]; then
    # a 512-piece tokenizer with a 32000-token model: refused at load, not mid-generation
    run "$bin" generate "$big" -p "Once upon a time" -n 8 --tokenizer "$spm"
    refused "a tokenizer smaller than the vocabulary" "$spm" "--tokenizer" "32000"
    if grep -q 'shrink_[a-z_]*:' "$tmp/err"; then bad "message names an internal function: $(cat "$tmp/err")"; else ok; fi
else
    missing "models/mix-llama-14m or models/stories260K/tok512.model"
fi

echo "test_files: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
