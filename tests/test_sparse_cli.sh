#!/bin/sh
# test_sparse_cli.sh - end-to-end tests of 2:4 sparse storage and of training a pruned model
# (POSIX sh; run from the repository root by tests/run_all.sh with the binary):
#
#   sh tests/test_sparse_cli.sh build/shrink
#
# On stories260K (dim 64: q/k/v/o/gate/up are stored 2:4, ffn_down with 172 inputs stays dense):
# prune --pattern 2:4 --store sparse24 / sparse24_i8 writes the types (info --json: dtype and
# "sparsity" 0.5 per pruned tensor, 0 elsewhere), ppl and generate run on them and sparse24
# gives the dense model's perplexity; convert writes it dense again, byte-identical to the
# dense prune (both --no-manifest), and as a Hugging Face folder; bad input (unstructured 50 % with --store, an
# unknown --store, convert --dtype sparse24_f16) exits non-zero with a message and no output. Training: a 50 % pruned model
# is kept sparse by default with a note on stderr (the trained model still 50 % zeros),
# --no-keep-sparsity trains the zeros (no note, fewer zeros); a LoRA adapter merged into the
# pruned model fills the zeros, merge --keep-sparsity keeps them. The kernels, the logits and the
# exact positions of the zeros are checked in tests/test_sparse24.c. Unstructured: prune 70 % per
# row --store sparse writes sparse_f16 (info: dtype, sparsity 44/64), ffn_down stays f16 with a
# store_note in --json, ppl equals the dense prune's, generate runs, sparse_i8 runs, convert
# writes it dense byte-identical to the dense prune; 50 % per matrix notes the matrices left
# dense; convert --dtype sparse_f16 is refused (tests/test_sparse_bm.c: kernels, logits, index).
# Missing assets: a failure when the shared folder ($SHRINK_SHARED, else ../shared) is present,
# a counted skip (exit 77) when it is absent.
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-sparse-cli.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM
finish() { sh_finish test_sparse_cli; }

model=$(asset models/stories260K/stories260K.bin) || model=""
text=$(asset prune/calib.txt) || text=""
if [ -z "$model" ] || [ -z "$text" ]; then
    missing "stories260K or prune/calib.txt"
    finish
fi

# the "sparsity" of tensor NAME in $tmp/out (info --json)
sparsity_of() {
    tr '{' '\n' <"$tmp/out" | grep "\"name\":\"$1\"" | sed -n 's/.*"sparsity":\([0-9.e+-]*\).*/\1/p'
}
dtype_of() {
    tr '{' '\n' <"$tmp/out" | grep "\"name\":\"$1\"" | sed -n 's/.*"dtype":"\([^"]*\)".*/\1/p'
}

# ---- storage --------------------------------------------------------------------------------
expect_ok "prune 2:4 dense" "$bin" prune "$model" "$tmp/dense.gguf" --method magnitude \
    --pattern 2:4 --dtype f16 --no-manifest
expect_ok "prune 2:4 --store sparse24" "$bin" prune "$model" "$tmp/s24.gguf" --method magnitude \
    --pattern 2:4 --dtype f16 --store sparse24
expect_ok "prune 2:4 --store sparse24_i8" "$bin" prune "$model" "$tmp/s24i8.gguf" \
    --method magnitude --pattern 2:4 --store sparse24_i8
if expect_ok "info --json of sparse24" "$bin" info "$tmp/s24.gguf" --json; then
    [ "$(dtype_of blk.0.attn_q.weight)" = sparse24_f16 ] && ok || bad "attn_q: $(dtype_of blk.0.attn_q.weight)"
    [ "$(dtype_of blk.0.ffn_down.weight)" = f16 ] && ok || bad "ffn_down (172 inputs) not dense f16"
    [ "$(sparsity_of blk.1.ffn_up.weight)" = 0.5 ] && ok || bad "ffn_up sparsity $(sparsity_of blk.1.ffn_up.weight)"
    [ "$(sparsity_of blk.0.ffn_down.weight)" = 0.5 ] && ok || bad "ffn_down sparsity $(sparsity_of blk.0.ffn_down.weight)"
    [ "$(sparsity_of token_embd.weight)" = 0 ] && ok || bad "token_embd sparsity $(sparsity_of token_embd.weight)"
fi
expect_ok "info text shows zeros" "$bin" info "$tmp/s24i8.gguf" &&
    grep -q "sparse24_i8 .* 50.00%" "$tmp/out" && ok || bad "info: no 'sparse24_i8 ... 50.00%' row"
ppl_of() { sed -n 's/.*"ppl":\([0-9.e+-]*\).*/\1/p' "$tmp/out" | head -n 1; }
expect_ok "ppl dense" "$bin" ppl "$tmp/dense.gguf" -f "$text" --ctx 64 --json && p_dense=$(ppl_of)
expect_ok "ppl sparse24" "$bin" ppl "$tmp/s24.gguf" -f "$text" --ctx 64 --json && p_s24=$(ppl_of)
expect_ok "ppl sparse24_i8" "$bin" ppl "$tmp/s24i8.gguf" -f "$text" --ctx 64 --json
awk -v a="${p_dense:-x}" -v b="${p_s24:-y}" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d <= 1e-4 * a) }' &&
    ok || bad "ppl sparse24 ${p_s24:-?} vs dense ${p_dense:-?}"
expect_ok "generate sparse24" "$bin" generate "$tmp/s24.gguf" -p "Once upon" -n 8 --temp 0
expect_ok "convert sparse24 -> gguf (dense)" "$bin" convert "$tmp/s24.gguf" "$tmp/back.gguf" \
    --no-manifest
cmp -s "$tmp/back.gguf" "$tmp/dense.gguf" && ok || bad "convert of sparse24 is not the dense prune"
expect_ok "convert sparse24 -> hf" "$bin" convert "$tmp/s24.gguf" "$tmp/back_hf"
[ -f "$tmp/back_hf/model.safetensors" ] && ok || bad "no HF model.safetensors"

# ---- unstructured sparse (sparse_f16, sparse_i8) ---------------------------------------------
expect_ok "prune 70% per row dense" "$bin" prune "$model" "$tmp/u_dense.gguf" --method magnitude \
    --sparsity 0.7 --per row --dtype f16 --no-manifest
if expect_ok "prune 70% per row --store sparse" "$bin" prune "$model" "$tmp/u_sp.gguf" \
    --method magnitude --sparsity 0.7 --per row --dtype f16 --store sparse --json; then
    tr '{' '\n' <"$tmp/out" | grep '"name":"blk.0.ffn_down.weight"' | grep -q '"store_note":"stays f16: 172 inputs' &&
        ok || bad "prune --json: no store_note for ffn_down (172 inputs)"
fi
if expect_ok "info --json of sparse_f16" "$bin" info "$tmp/u_sp.gguf" --json; then
    [ "$(dtype_of blk.0.attn_q.weight)" = sparse_f16 ] && ok || bad "attn_q: $(dtype_of blk.0.attn_q.weight)"
    [ "$(dtype_of blk.0.ffn_down.weight)" = f16 ] && ok || bad "ffn_down not dense f16"
    [ "$(sparsity_of blk.1.ffn_up.weight)" = 0.6875 ] && ok || bad "ffn_up sparsity $(sparsity_of blk.1.ffn_up.weight) (44 of 64)"
fi
expect_ok "ppl dense 70%" "$bin" ppl "$tmp/u_dense.gguf" -f "$text" --ctx 64 --json && p_ud=$(ppl_of)
expect_ok "ppl sparse_f16" "$bin" ppl "$tmp/u_sp.gguf" -f "$text" --ctx 64 --json && p_us=$(ppl_of)
awk -v a="${p_ud:-x}" -v b="${p_us:-y}" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d <= 1e-4 * a) }' &&
    ok || bad "ppl sparse_f16 ${p_us:-?} vs dense ${p_ud:-?}"
expect_ok "generate sparse_f16" "$bin" generate "$tmp/u_sp.gguf" -p "Once upon" -n 8 --temp 0
expect_ok "prune --store sparse_i8" "$bin" prune "$model" "$tmp/u_i8.gguf" --method magnitude \
    --sparsity 0.7 --per row --store sparse_i8
expect_ok "ppl sparse_i8" "$bin" ppl "$tmp/u_i8.gguf" -f "$text" --ctx 64
expect_ok "convert sparse_f16 -> gguf (dense)" "$bin" convert "$tmp/u_sp.gguf" "$tmp/u_back.gguf" \
    --no-manifest
cmp -s "$tmp/u_back.gguf" "$tmp/u_dense.gguf" && ok || bad "convert of sparse_f16 is not the dense prune"
expect_ok "prune 50% per matrix --store sparse" "$bin" prune "$model" "$tmp/u_m.gguf" \
    --method magnitude --sparsity 0.5 --store sparse
grep -q "a row keeps .* (sparse_f16 holds at most half)" "$tmp/out" && ok ||
    bad "50% per matrix: no note for a matrix with a row above half"
expect_fail "convert --dtype sparse_f16" "shrink prune --store sparse_f16" "$bin" convert \
    "$model" "$tmp/bad.gguf" --dtype sparse_f16
[ -e "$tmp/bad.gguf" ] && bad "bad.gguf left behind" || ok

# ---- bad input -------------------------------------------------------------------------------
expect_fail "unstructured 50% --store sparse24" "not 2:4" "$bin" prune "$model" "$tmp/bad.gguf" \
    --method magnitude --sparsity 0.5 --store sparse24
[ -e "$tmp/bad.gguf" ] && bad "bad.gguf left behind" || ok
expect_fail "--store unknown" "--store" "$bin" prune "$model" "$tmp/bad.gguf" \
    --method magnitude --pattern 2:4 --store bitmap
[ -e "$tmp/bad.gguf" ] && bad "bad.gguf left behind" || ok
expect_fail "convert --dtype sparse24_f16" "shrink prune --pattern 2:4" "$bin" convert "$model" \
    "$tmp/bad.gguf" --dtype sparse24_f16
[ -e "$tmp/bad.gguf" ] && bad "bad.gguf left behind" || ok

# ---- training keeps the zeros ----------------------------------------------------------------
expect_ok "prune 50%" "$bin" prune "$model" "$tmp/p50.gguf" --method magnitude --sparsity 0.5
if expect_ok "train the pruned model" "$bin" train "$tmp/p50.gguf" --data "$text" \
    --out "$tmp/keep" --steps 3 --batch 2 --ctx 32 --lr 3e-3 --wd 0.1; then
    grep -q "keeping them zero" "$tmp/err" && ok || bad "no keep-sparsity note on stderr"
    expect_ok "info of the trained model" "$bin" info "$tmp/keep/model.gguf" --json &&
        { [ "$(sparsity_of blk.2.attn_v.weight)" = 0.5 ] && ok || bad "trained attn_v sparsity $(sparsity_of blk.2.attn_v.weight)"; }
fi
if expect_ok "train --no-keep-sparsity" "$bin" train "$tmp/p50.gguf" --data "$text" \
    --out "$tmp/free" --steps 2 --batch 2 --ctx 32 --lr 3e-3 --no-keep-sparsity; then
    grep -q "keeping them zero" "$tmp/err" && bad "note with --no-keep-sparsity" || ok
    expect_ok "info of the freely trained model" "$bin" info "$tmp/free/model.gguf" --json &&
        { lt "$(sparsity_of blk.2.attn_v.weight)" 0.1 && ok || bad "--no-keep-sparsity: attn_v sparsity $(sparsity_of blk.2.attn_v.weight)"; }
fi
# LoRA: the frozen base keeps its zeros; merge fills them unless --keep-sparsity
if expect_ok "lora on the pruned model" "$bin" lora "$tmp/p50.gguf" --data "$text" \
    --steps 2 --batch 2 --ctx 32 --lr 1e-2 --rank 4 -o "$tmp/a.gguf"; then
    expect_ok "merge --keep-sparsity" "$bin" merge "$tmp/p50.gguf" --lora "$tmp/a.gguf" \
        -o "$tmp/mk.gguf" --keep-sparsity
    expect_ok "info merged keep" "$bin" info "$tmp/mk.gguf" --json &&
        { [ "$(sparsity_of blk.1.attn_q.weight)" = 0.5 ] && ok || bad "merge --keep-sparsity: attn_q sparsity $(sparsity_of blk.1.attn_q.weight)"; }
    expect_ok "merge" "$bin" merge "$tmp/p50.gguf" --lora "$tmp/a.gguf" -o "$tmp/mf.gguf"
    expect_ok "info merged" "$bin" info "$tmp/mf.gguf" --json &&
        { lt "$(sparsity_of blk.1.attn_q.weight)" 0.1 && ok || bad "merge: attn_q sparsity $(sparsity_of blk.1.attn_q.weight)"; }
fi
expect_fail "both keep flags" "contradict" "$bin" train "$tmp/p50.gguf" --data "$text" \
    --out "$tmp/x" --keep-sparsity --no-keep-sparsity
finish
