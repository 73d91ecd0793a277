#!/bin/sh
# test_lowrank_cli.sh - end-to-end tests of `shrink drop-layers` and `shrink lowrank` (POSIX sh;
# run from the repository root by tests/run_all.sh with the binary):
#
#   sh tests/test_lowrank_cli.sh build/shrink
#
# drop-layers on stories260K (5 layers) with its perplexity text: --by kld removes the layer
# `shrink sensitivity` (an independent run of the measurement) ranks least sensitive; --layers
# and --by last write GGUF and a Hugging Face folder with the new layer count (info --json,
# config.json), reload and run ppl; --layers 4 (GGUF) and --by last --remove 1 (HF) give the
# same perplexity (to 1e-6). lowrank (when built) on tiny-llama-gqa: svd / asvd / whiten write, reload and
# run ppl; a full-rank factorization keeps the model (same perplexity). Bad input: every layer,
# a layer that does not exist, a bad list, rank 0 or above min(rows, cols), energy outside
# (0, 1]: a message, a non-zero exit, no output left.
# Missing assets: a failure when the shared folder ($SHRINK_SHARED, else ../shared) is present,
# a counted skip (exit 77) when it is absent.
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-lowrank-cli.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM
finish() { sh_finish test_lowrank_cli; }

# no_output DESC PATH: PATH must not exist after a refused command
no_output() { [ ! -e "$2" ] && ok || bad "$1: $2 left behind"; }
# close A B TOL: |A - B| <= TOL * |B|, both non-empty
close() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b
                                                   exit !(a != "" && b != "" && d <= t * m) }'; }
# ppl_of FILE: the perplexity printed by `shrink ppl --json`
ppl_of() { "$bin" ppl "$1" "$tmp/prefix.txt" -c 64 --json 2>/dev/null | sed -n 's/.*"ppl":\([0-9.eE+-]*\).*/\1/p'; }

model=$(asset models/stories260K/stories260K.bin) || model=""
text=$(asset fixtures/stories260K/ppl_text.txt) || text=""
gqa=$(asset models/tiny-llama-gqa) || gqa=""
if [ -z "$model" ] || [ -z "$text" ] || [ -z "$gqa" ]; then
    if [ -d "$shared" ]; then
        bad "stories260K, tiny-llama-gqa or fixtures/stories260K/ppl_text.txt not found, but $shared is present"
        finish
    fi
    echo "test_lowrank_cli: SKIPPED: stories260K / tiny-llama-gqa / ppl_text.txt absent (no $shared)"
    exit 77
fi
head -c 3000 "$text" >"$tmp/prefix.txt"

# ---- drop-layers --------------------------------------------------------------------------
if expect_ok "sensitivity" "$bin" sensitivity "$model" --calib "$text" --calib-tokens 48 --json; then
    # the layer of rank 0 (least KL)
    least=$(tr '{' '\n' <"$tmp/out" | grep '"rank":0[,}]' | sed -n 's/.*"layer":\([0-9]*\).*/\1/p')
    if expect_ok "drop-layers --by kld --json" "$bin" drop-layers "$model" "$tmp/kld.gguf" \
        --remove 1 --by kld --text "$text" --calib-tokens 48 --json --progress; then
        for k in input output by n_layers_in n_layers removed_layers params_in params_out \
            out_file_bytes; do
            grep -q "\"$k\":" "$tmp/out" && ok || bad "drop-layers --json: no key $k"
        done
        grep -q "\"removed_layers\":\[$least\]" "$tmp/out" && ok ||
            bad "drop-layers --by kld removed $(cat "$tmp/out"), sensitivity ranks layer '$least' least"
        grep -q "layers measured" "$tmp/err" && ok || bad "drop-layers: no progress on stderr"
    fi
fi
if expect_ok "drop-layers --layers 1,3 (GGUF)" "$bin" drop-layers "$model" "$tmp/l13.gguf" \
    --layers 1,3; then
    grep -q "removed layers: 1 3" "$tmp/out" && ok || bad "drop-layers --layers: $(cat "$tmp/out")"
    expect_ok "info on the result" "$bin" info "$tmp/l13.gguf" --json &&
        { [ "$(json_num n_layers)" = 3 ] && ok || bad "n_layers $(json_num n_layers), want 3"; }
    p=$(ppl_of "$tmp/l13.gguf")
    [ -n "$p" ] && ok || bad "ppl does not run on the layer-reduced GGUF"
fi
if expect_ok "drop-layers --by last (HF)" "$bin" drop-layers "$model" "$tmp/last-hf" \
    --remove 1 --by last; then
    grep -q '"num_hidden_layers": *4' "$tmp/last-hf/config.json" && ok ||
        bad "HF config.json: $(grep layers "$tmp/last-hf/config.json")"
    expect_ok "drop-layers --layers 4" "$bin" drop-layers "$model" "$tmp/l4.gguf" --layers 4
    a=$(ppl_of "$tmp/last-hf"); b=$(ppl_of "$tmp/l4.gguf")
    close "$a" "$b" 1e-6 && ok || bad "--by last ppl '$a' != --layers 4 ppl '$b'"
fi
expect_fail "drop-layers every layer" "at least one must stay" \
    "$bin" drop-layers "$model" "$tmp/bad.gguf" --layers 0-4
no_output "every layer" "$tmp/bad.gguf"
expect_fail "drop-layers --remove 5" "at least one must stay" \
    "$bin" drop-layers "$model" "$tmp/bad.gguf" --remove 5 --by last
expect_fail "drop-layers layer 7" "layer 7 does not exist" \
    "$bin" drop-layers "$model" "$tmp/bad.gguf" --layers 2,7
expect_fail "drop-layers bad list" "expected layer indices" \
    "$bin" drop-layers "$model" "$tmp/bad.gguf" --layers 1,x
expect_fail "drop-layers twice" "listed twice" \
    "$bin" drop-layers "$model" "$tmp/bad.gguf" --layers 1,1
expect_fail "drop-layers kld without text" "need --text" \
    "$bin" drop-layers "$model" "$tmp/bad.gguf" --remove 1
no_output "bad input" "$tmp/bad.gguf"


# ---- lowrank ------------------------------------------------------------------------------
# kl_of MODEL: the mean KL of MODEL from tiny-llama-gqa on the prefix (shrink compare --json)
kl_of() { "$bin" compare "$gqa" "$1" --text "$tmp/prefix.txt" -c 64 --no-speed --json 2>/dev/null |
          sed 's/.*"models":\[//' | tr '{' '\n' | tail -n 1 | sed -n 's/.*"kl_mean":\([0-9.eE+-]*\).*/\1/p'; }
if expect_ok "lowrank svd --rank 8 --json" "$bin" lowrank "$gqa" "$tmp/svd.gguf" --rank 8 --json; then
    for k in input output method n_matrices n_dense min_rank max_rank params_target \
        params_lowrank mean_energy mean_rel_err calib_tokens out_file_bytes seconds; do
        grep -q "\"$k\":" "$tmp/out" && ok || bad "lowrank --json: no key $k"
    done
    [ "$(json_num n_matrices)" = 14 ] && [ "$(json_num min_rank)" = 8 ] && ok ||
        bad "lowrank --rank 8: $(cat "$tmp/out")"
    [ -n "$(ppl_of "$tmp/svd.gguf")" ] && ok || bad "ppl does not run on the low-rank GGUF"
fi
errs=""
for m in svd asvd whiten; do
    if expect_ok "lowrank $m --ratio 0.5 (HF)" "$bin" lowrank "$gqa" "$tmp/$m-hf" --ratio 0.5 \
        --method $m --calib "$text" --calib-tokens 256 --json; then
        errs="$errs $(json_num mean_rel_err)"
        grep -q '"num_hidden_layers": *2' "$tmp/$m-hf/config.json" && ok || bad "$m: HF config.json"
    fi
done
# plain SVD minimises ||W - W'||_F: its error is the smallest of the three
set -- $errs
if [ $# -eq 3 ]; then
    awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN { exit !(a <= b * (1 + 1e-9) && a <= c * (1 + 1e-9)) }' &&
        ok || bad "svd's weight error $1 is not the smallest (asvd $2, whiten $3)"
    # whitening minimises the layers' output error on the calibration text: a smaller KL
    ks=$(kl_of "$tmp/svd-hf"); kw=$(kl_of "$tmp/whiten-hf")
    lt "$kw" "$ks" && ok || bad "whiten KL '$kw' is not below svd KL '$ks'"
fi
# energy 1: full rank, every matrix kept dense, the model unchanged
if expect_ok "lowrank --energy 1" "$bin" lowrank "$gqa" "$tmp/full.gguf" --energy 1; then
    grep -q "14 of 14 matrices kept dense" "$tmp/err" && ok || bad "--energy 1: $(cat "$tmp/err")"
    expect_ok "convert" "$bin" convert "$gqa" "$tmp/orig.gguf"
    a=$(ppl_of "$tmp/full.gguf"); b=$(ppl_of "$tmp/orig.gguf")
    [ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "--energy 1 ppl '$a' != input ppl '$b'"
fi
expect_fail "lowrank --rank 0" "at least 1" "$bin" lowrank "$gqa" "$tmp/bad.gguf" --rank 0
expect_fail "lowrank --rank 33" "above min(rows, cols) = 32" \
    "$bin" lowrank "$gqa" "$tmp/bad.gguf" --rank 33
expect_fail "lowrank --energy 0" "(0, 1]" "$bin" lowrank "$gqa" "$tmp/bad.gguf" --energy 0
expect_fail "lowrank --energy 1.5" "(0, 1]" "$bin" lowrank "$gqa" "$tmp/bad.gguf" --energy 1.5
expect_fail "lowrank --ratio 1" "(0, 1)" "$bin" lowrank "$gqa" "$tmp/bad.gguf" --ratio 1
expect_fail "lowrank two choices" "one of" "$bin" lowrank "$gqa" "$tmp/bad.gguf" --rank 4 --ratio 0.5
expect_fail "lowrank whiten without --calib" "need --calib" \
    "$bin" lowrank "$gqa" "$tmp/bad.gguf" --rank 4 --method whiten
expect_fail "lowrank unknown target" "unknown target 'x'" \
    "$bin" lowrank "$gqa" "$tmp/bad.gguf" --rank 4 --targets q,x
expect_fail "lowrank unknown method" "unknown low-rank method" \
    "$bin" lowrank "$gqa" "$tmp/bad.gguf" --rank 4 --method pca
no_output "lowrank bad input" "$tmp/bad.gguf"

# --store factored: the same factorization as two tensors per matrix; the file is smaller and
# runs with the perplexity of the merged-dense file (f32: equal to 4 significant digits)
if expect_ok "lowrank --store factored" "$bin" lowrank "$gqa" "$tmp/fac.gguf" --ratio 0.5 \
        --dtype f32 --store factored --json &&
   expect_ok "lowrank --store dense" "$bin" lowrank "$gqa" "$tmp/den.gguf" --ratio 0.5 --dtype f32; then
    [ "$(wc -c < "$tmp/fac.gguf")" -lt "$(wc -c < "$tmp/den.gguf")" ] && ok ||
        bad "factored file not smaller than the dense one"
    a=$(ppl_of "$tmp/fac.gguf"); b=$(ppl_of "$tmp/den.gguf")
    [ -n "$a" ] && awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-4 * b) }' &&
        ok || bad "factored ppl '$a' != merged-dense ppl '$b'"
    expect_ok "info lists the factors" "$bin" info "$tmp/fac.gguf"
    grep -q "blk.0.ffn_down.weight.lr_b" "$tmp/out" && ok || bad "info: no blk.0.ffn_down.weight.lr_b"
fi
expect_fail "lowrank --store factored to a folder" "GGUF" \
    "$bin" lowrank "$gqa" "$tmp/bad-hf" --rank 4 --store factored
expect_fail "lowrank --store bad" "one of dense, factored" \
    "$bin" lowrank "$gqa" "$tmp/bad.gguf" --rank 4 --store packed
no_output "lowrank bad store" "$tmp/bad.gguf"
[ -e "$tmp/bad-hf" ] && bad "a folder was left for --store factored" || ok
expect_fail "lowrank --choose without --calib" "needs a budget --ratio P and a calibration" \
    "$bin" lowrank "$gqa" "$tmp/bad.gguf" --ratio 0.5 --choose sensitivity
expect_fail "lowrank --choose with --rank" "needs a budget --ratio P" \
    "$bin" lowrank "$gqa" "$tmp/bad.gguf" --rank 4 --choose sensitivity --calib "$text"
expect_fail "lowrank --choose bad" "one of uniform, sensitivity" \
    "$bin" lowrank "$gqa" "$tmp/bad.gguf" --ratio 0.5 --choose best
no_output "lowrank bad choose" "$tmp/bad.gguf"

finish
