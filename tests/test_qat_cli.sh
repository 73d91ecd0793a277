#!/bin/sh
# test_qat_cli.sh - end-to-end tests of `--load-as SCHEME` and `--qat SCHEME` (POSIX sh; run
# from the repository root by tests/run_all.sh with the path of the binary):
#
#   sh tests/test_qat_cli.sh build/shrink
#
# Base: stories260K (f32). Covers: `ppl --load-as S` equals, digit for digit, `ppl` on the file
# `shrink quantize --scheme S` writes (q4_0, nf4, int4_g32), `generate --load-as` the same
# greedy text as on that file; `shrink train --qat q4_0` writes a q4_0 GGUF that loads and runs;
# `train --qat q4_K_M` writes the per-tensor types `quantize --scheme q4_K_M` writes;
# `--qat-scales learned` writes q4_0 and is refused for K-quants, mixes and without --qat;
# `shrink lora --load-as nf4` trains, as on the nf4 file, and with --gradient-checkpointing to the
# same losses; bad input (a mix for --load-as / lora --qat, f16, a quantized model loaded as, --qat
# with --to hf): a message naming the problem, a non-zero exit, no output.
# Needs models/stories260K and ../shared/data/corpus/: missing, they are a failure when the
# shared folder ($SHRINK_SHARED, else ../shared) is present, a counted skip (exit 77) when it is
# absent. Ends with "test_qat_cli: N passed, N failed, N skipped"; exit 1 on any failure.
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-qat-cli.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM

base=$(asset models/stories260K/stories260K.bin) || base=""
tok=$(asset models/stories260K/tok512.bin) || tok=""
corpus=$(asset data/corpus/tinystories_val_subset.txt) || corpus=""
if [ -z "$base" ] || [ -z "$tok" ] || [ -z "$corpus" ]; then
    missing "stories260K or data/corpus/tinystories_val_subset.txt"
    sh_finish test_qat_cli
fi
head -c 40000 "$corpus" > "$tmp/train.txt"
tail -c 3000 "$corpus" > "$tmp/valid.txt"
M="$base --tokenizer $tok"

# ==== --load-as: the in-memory model is the file shrink quantize writes ====================
for s in q4_0 nf4 int4_g32; do
    expect_ok "quantize $s" "$bin" quantize $M "$tmp/$s.gguf" --scheme $s || continue
    expect_ok "ppl $s file" "$bin" ppl "$tmp/$s.gguf" "$tmp/valid.txt" -c 64 --json || continue
    p_file=$(json_num ppl)
    expect_ok "ppl --load-as $s" "$bin" ppl $M "$tmp/valid.txt" -c 64 --load-as $s --json || continue
    p_mem=$(json_num ppl)
    [ -n "$p_file" ] && [ "$p_file" = "$p_mem" ] && ok || bad "$s: ppl --load-as $p_mem, file $p_file"
done
if expect_ok "generate file" "$bin" generate "$tmp/q4_0.gguf" -p "Once upon a time" -n 24 --temp 0; then
    cp "$tmp/out" "$tmp/gen_file"
    if expect_ok "generate --load-as" "$bin" generate $M -p "Once upon a time" -n 24 --temp 0 \
        --load-as q4_0; then
        cmp -s "$tmp/out" "$tmp/gen_file" && ok || bad "generate --load-as q4_0 differs from the file's"
    fi
fi
expect_fail "--load-as a mix" "single-type" "$bin" ppl $M "$tmp/valid.txt" --load-as q4_K_M
expect_fail "--load-as f16" "--load-as f16" "$bin" ppl $M "$tmp/valid.txt" --load-as f16
expect_fail "--load-as a quantized model" "already" "$bin" ppl "$tmp/q4_0.gguf" "$tmp/valid.txt" \
    --load-as nf4

# ==== --qat: the final model is the real quantized GGUF ===================================
opts="--data $tmp/train.txt --valid $tmp/valid.txt --steps 3 --batch 4 --ctx 32 --lr 1e-3 --eval-windows 4"
if expect_ok "train --qat" "$bin" train $M $opts --qat q4_0 --out "$tmp/run" --json; then
    if [ -f "$tmp/run/model.gguf" ] && expect_ok "info" "$bin" info "$tmp/run/model.gguf" &&
       grep -q 'q4_0' "$tmp/out"; then ok
    else bad "train --qat: no q4_0 model.gguf: $(ls "$tmp/run") $(head -c 300 "$tmp/out")"; fi
    expect_ok "ppl of the QAT model" "$bin" ppl "$tmp/run/model.gguf" "$tmp/valid.txt" -c 32
fi
# a llama.cpp mix: each matrix fake-quantized to, and written in, the type shrink quantize's mix
# gives it (stories260K's 64-wide rows make q4_K fall back to q5_0, q6_K to q8_0, 172 to f16)
types() { "$bin" info "$1" | awk '/^(token_embd|blk\.|output)/ {print $1, $(NF-2)}'; }
if expect_ok "quantize q4_K_M" "$bin" quantize $M "$tmp/q4km.gguf" --scheme q4_K_M &&
   expect_ok "train --qat q4_K_M" "$bin" train $M $opts --qat q4_K_M --out "$tmp/rm"; then
    types "$tmp/q4km.gguf" > "$tmp/types_q"
    types "$tmp/rm/model.gguf" > "$tmp/types_t"
    n_kinds=$(awk '{print $2}' "$tmp/types_q" | sort -u | wc -l)
    [ -s "$tmp/types_q" ] && [ "$n_kinds" -ge 4 ] && cmp -s "$tmp/types_q" "$tmp/types_t" && ok ||
        bad "train --qat q4_K_M: tensor types differ from quantize's: $(diff "$tmp/types_q" "$tmp/types_t" | head -5)"
fi
expect_fail "lora --qat a mix" "single-type" "$bin" lora $M $opts --qat q4_K_M -o "$tmp/r1.gguf"
[ -e "$tmp/r1.gguf" ] && bad "lora --qat a mix left $tmp/r1.gguf" || ok
# learned scales (LSQ): a q4_0 GGUF; refused for K-quants and mixes, and without --qat
if expect_ok "train --qat-scales learned" "$bin" train $M $opts --qat q4_0 --qat-scales learned \
    --qat-scale-lr 2e-3 --out "$tmp/rl" --json; then
    types "$tmp/rl/model.gguf" | grep -q 'attn_q.weight q4_0' && ok ||
        bad "train --qat-scales learned: no q4_0 tensors"
    expect_ok "ppl of the learned-scales model" "$bin" ppl "$tmp/rl/model.gguf" "$tmp/valid.txt" -c 32
fi
expect_fail "learned q4_K" "learned scales" "$bin" train $M $opts --qat q4_K --qat-scales learned \
    --out "$tmp/r4"
[ -e "$tmp/r4/model.gguf" ] && bad "learned q4_K left a model" || ok
expect_fail "learned q4_K_M" "learned scales" "$bin" train $M $opts --qat q4_K_M \
    --qat-scales learned --out "$tmp/r5"
expect_fail "--qat-scales without --qat" "--qat" "$bin" train $M $opts --qat-scales learned \
    --out "$tmp/r6"
expect_fail "--qat-scales bad" "recompute or learned" "$bin" train $M $opts --qat q4_0 \
    --qat-scales maybe --out "$tmp/r7"
expect_fail "--qat --to hf" "GGUF" "$bin" train $M $opts --qat q4_0 --to hf --out "$tmp/r2"
expect_fail "--qat-targets zz" "zz" "$bin" train $M $opts --qat q4_0 --qat-targets q,zz \
    --out "$tmp/r3"
[ -e "$tmp/r3/model.gguf" ] && bad "--qat-targets zz left a model" || ok

# ==== lora --load-as: QLoRA on a base quantized at load ===================================
expect_ok "lora --load-as nf4" "$bin" lora $M $opts --rank 2 --alpha 4 --load-as nf4 \
    -o "$tmp/a.gguf"
# the base is held in nf4 either way (docs/adapters.md, "QLoRA"): quantized at load or read from
# the file `shrink quantize` wrote, the run is the same to the last digit, and
# --gradient-checkpointing (activations recomputed in the backward) changes only the memory
lora_losses() { # DESC ARGS...: "loss val_loss" of a --json run
    desc=$1
    shift
    expect_ok "$desc" "$bin" lora "$@" $opts --rank 2 --alpha 4 --json -o "$tmp/q.gguf" &&
        echo "$(json_num loss "$tmp/out") $(json_num val_loss "$tmp/out")"
}
l_mem=$(lora_losses "lora --load-as nf4 --json" $M --load-as nf4)
l_file=$(lora_losses "lora on the nf4 file" "$tmp/nf4.gguf")
l_gc=$(lora_losses "lora --gradient-checkpointing" $M --load-as nf4 --gradient-checkpointing)
[ -n "$l_mem" ] && [ "$l_mem" = "$l_file" ] && ok || bad "lora: --load-as nf4 '$l_mem', nf4 file '$l_file'"
echo "  lora losses: --load-as nf4 $l_mem, file $l_file, checkpointed $l_gc"
[ -n "$l_mem" ] && [ "$l_mem" = "$l_gc" ] && ok || bad "lora: '$l_mem', checkpointed '$l_gc'"
sh_finish test_qat_cli
