#!/bin/sh
# test_lora_cli.sh - end-to-end tests of `shrink lora` and `shrink merge` (POSIX sh; run from
# the repository root by tests/run_all.sh with the path of the binary):
#
#   sh tests/test_lora_cli.sh build/shrink
#
# Base: stories260K. Covers: `shrink lora` trains an adapter (GGUF and PEFT folder) that lowers
# the validation loss, prints PEFT's "trainable params" line and --json; the adapter applies
# with --lora; `shrink merge` of it gives the run-time perplexity; bad input (rank 0, a rank
# larger than a projection, an unknown target, an adapter of another base, a quantized base
# merged without --dtype, no --lora): a message naming the problem, a non-zero exit, no output.
# Needs models/stories260K and ../shared/data/corpus/: missing, they are a failure when the
# shared folder ($SHRINK_SHARED, else ../shared) is present, a counted skip (exit 77) when it is
# absent. Ends with "test_lora_cli: N passed, N failed, N skipped"; exit 1 on any failure.
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-lora-cli.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM

run() { expect_ok "$@"; }  # run DESC CMD...: CMD exits 0, no sanitizer report

# refuse DESC WORD OUT cmd...: non-zero exit, WORD in the message, nothing at OUT.
refuse() {
    desc=$1
    word=$2
    out=$3
    shift 3
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if grep -q -e 'Sanitizer' -e 'runtime error:' "$tmp/err"; then
        bad "$desc: sanitizer report"
    elif [ $rc -eq 0 ] || [ $rc -ge 128 ]; then
        bad "$desc: exit $rc (expected 1 or 2)"
    elif ! grep -q -- "$word" "$tmp/err"; then
        bad "$desc: message does not say '$word': $(head -c 300 "$tmp/err")"
    elif [ -e "$out" ]; then
        bad "$desc: left $out behind"
    else
        ok
    fi
}

base=$(asset models/stories260K/stories260K.bin) || base=""
tok=$(asset models/stories260K/tok512.bin) || tok=""
corpus=$(asset data/corpus/train.txt) || corpus=""
test_text=$(asset data/corpus/test.txt) || test_text=""
other=$(asset fixtures/lora/mix-llama-14m-peft) || other=""
if [ -z "$base" ] || [ -z "$tok" ] || [ -z "$corpus" ] || [ -z "$test_text" ] || [ -z "$other" ]; then
    missing "stories260K, data/corpus/train.txt, test.txt or fixtures/lora"
    sh_finish test_lora_cli
fi
head -c 8000 "$test_text" > "$tmp/valid.txt"
M="$base --tokenizer $tok"
opts="--data $corpus --valid $tmp/valid.txt --steps 10 --batch 4 --ctx 32 --lr 5e-3 --eval-windows 8 --rank 4 --alpha 8"

# ==== training: GGUF adapter (--json), PEFT folder (text with the trainable line) ==========
if run "lora gguf" "$bin" lora $M $opts -o "$tmp/a.gguf" --json; then
    v0=$(json_num val_loss_start "$tmp/out")
    v1=$(json_num val_loss "$tmp/out")
    tp=$(json_num trainable_params "$tmp/out")
    if lt "$v1" "$v0" && [ "${tp:-0}" -gt 0 ] && [ -f "$tmp/a.gguf" ]; then ok
    else bad "lora gguf: val_loss $v0 -> $v1, trainable $tp, adapter $(ls "$tmp")"; fi
fi
if run "lora peft" "$bin" lora $M $opts --targets q,v -o "$tmp/peft"; then
    if grep -q '^trainable params: [0-9,]* || all params: [0-9,]* || trainable%: ' "$tmp/out" &&
       grep -q '"r": 4' "$tmp/peft/adapter_config.json" &&
       grep -q '"target_modules": \["q_proj", "v_proj"\]' "$tmp/peft/adapter_config.json" &&
       [ -f "$tmp/peft/adapter_model.safetensors" ]; then ok
    else bad "lora peft: $(cat "$tmp/out") $(cat "$tmp/peft/adapter_config.json" 2>&1)"; fi
fi

# ==== the adapter at run time and merged: the same perplexity ==============================
if run "ppl --lora" "$bin" ppl $M "$tmp/valid.txt" -c 64 --lora "$tmp/a.gguf"; then
    p_run=$(sed -n 's/^perplexity: *//p' "$tmp/out")
    if run "merge" "$bin" merge $M --lora "$tmp/a.gguf" -o "$tmp/merged.gguf" --dtype f32 &&
       run "ppl merged" "$bin" ppl "$tmp/merged.gguf" "$tmp/valid.txt" -c 64; then
        p_m=$(sed -n 's/^perplexity: *//p' "$tmp/out")
        [ -n "$p_run" ] && [ "$p_run" = "$p_m" ] && ok || bad "merged ppl $p_m vs run-time $p_run"
    fi
fi

# ==== bad input ============================================================================
refuse "rank 0" "rank" "$tmp/r0.gguf" "$bin" lora $M $opts --rank 0 -o "$tmp/r0.gguf"
refuse "rank above a side" "rank" "$tmp/r1.gguf" "$bin" lora $M $opts --rank 1000 -o "$tmp/r1.gguf"
refuse "unknown target" "qq" "$tmp/r2.gguf" "$bin" lora $M $opts --targets q,qq -o "$tmp/r2.gguf"
refuse "adapter of another base" "does not fit" "$tmp/m1.gguf" \
    "$bin" merge $M --lora "$other" -o "$tmp/m1.gguf"
refuse "no --lora" "--lora" "$tmp/m2.gguf" "$bin" merge $M -o "$tmp/m2.gguf"
if run "convert q8_0" "$bin" convert $M "$tmp/q8.gguf" --dtype q8_0; then
    refuse "quantized base without --dtype" "--dtype" "$tmp/m3.gguf" \
        "$bin" merge "$tmp/q8.gguf" --lora "$tmp/a.gguf" -o "$tmp/m3.gguf"
fi
sh_finish test_lora_cli
