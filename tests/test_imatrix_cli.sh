#!/bin/sh
# test_imatrix_cli.sh - end-to-end tests of `shrink imatrix` and `shrink quantize --imatrix`
# (POSIX sh; run from the repository root by tests/run_all.sh with the path of the binary):
#
#   sh tests/test_imatrix_cli.sh build/shrink
#
# Model: stories260K (in the repository); calibration text written here. Covers: imatrix
# writes a file quantize --imatrix reads (text and --json), --calib on the fly gives the same
# bytes as the file, --ggml-exact with it differs from without; bad input, each with a message
# naming the problem, a non-zero exit and no output file: a calibration text shorter than asked
# (saying how many tokens it has), --calib-ctx over the model's context, an imatrix of another
# model (another width; fewer layers), a truncated imatrix, a NaN in it, a quantized input
# without --allow-requantize; q3_K and q2_K with the importance matrix (ggml's bytes change, the
# search differs from them) and the q3_K_M / q2_K_M mixes by imatrix and AWQ, reloaded and run.
# Needs models/stories260K: missing, it is a failure when the shared folder ($SHRINK_SHARED,
# else ../shared) is present, a counted skip (exit 77) when it is absent.
# Ends with "test_imatrix_cli: N passed, N failed, N skipped"; exit 1 on any failure.
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-imatrix-cli.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM

# expect_fail DESC WANT OUTFILE CMD...: exit in [1, 127], stderr contains WANT, OUTFILE absent
expect_fail() { expect_refused "$@"; }

model=$(asset models/stories260K/stories260K.bin) || model=""
tok=$(asset models/stories260K/tok512.bin) || tok=""
if [ -z "$model" ] || [ -z "$tok" ]; then
    missing "models/stories260K"
    sh_finish test_imatrix_cli
fi

story_text "$tmp/calib.txt" 12

# ==== the file and its use ====================================================================

if expect_ok "imatrix" "$bin" imatrix "$model" --calib "$tmp/calib.txt" -c 64 -o "$tmp/s.imatrix"; then
    grep -q "35 entries from .* chunks of 64 tokens" "$tmp/out" && ok ||
        bad "imatrix: summary $(cat "$tmp/out")"
fi
if expect_ok "imatrix --json" "$bin" imatrix "$model" --calib "$tmp/calib.txt" -c 64 \
    --calib-tokens 256 -o "$tmp/j.imatrix" --json; then
    for k in n_entries n_chunks calib_ctx n_tokens seconds; do
        grep -q "\"$k\":" "$tmp/out" && ok || bad "imatrix --json: no $k: $(cat "$tmp/out")"
    done
    grep -q '"n_chunks":4,' "$tmp/out" && ok || bad "imatrix --calib-tokens 256 -c 64: not 4 chunks"
fi
# (--no-manifest: the manifests record different commands and inputs; docs/manifest.md)
expect_ok "quantize --imatrix" "$bin" quantize "$model" "$tmp/q.gguf" --scheme q4_0 \
    --imatrix "$tmp/s.imatrix" --no-manifest
expect_ok "quantize --calib (on the fly)" "$bin" quantize "$model" "$tmp/qc.gguf" --scheme q4_0 \
    --calib "$tmp/calib.txt" --calib-ctx 64 --calib-tokens 832 --no-manifest
cmp -s "$tmp/q.gguf" "$tmp/qc.gguf" && ok ||
    bad "quantize --calib differs from quantize --imatrix with the same text and chunks"
expect_ok "quantize --imatrix --ggml-exact" "$bin" quantize "$model" "$tmp/qe.gguf" --scheme q4_0 \
    --imatrix "$tmp/s.imatrix" --ggml-exact --no-manifest
expect_ok "quantize --ggml-exact" "$bin" quantize "$model" "$tmp/qr.gguf" --scheme q4_0 --ggml-exact --no-manifest
cmp -s "$tmp/qe.gguf" "$tmp/qr.gguf" && bad "--imatrix did not change the --ggml-exact bytes" || ok

# ==== bad input ===============================================================================

expect_fail "imatrix: text shorter than asked" "gives" "$tmp/x.imatrix" \
    "$bin" imatrix "$model" --calib "$tmp/calib.txt" --calib-tokens 1000000 -o "$tmp/x.imatrix"
grep -Eq "gives [0-9]+ tokens but 1000000 were asked" "$tmp/err" && ok ||
    bad "imatrix: short text message does not say how many tokens: $(cat "$tmp/err")"
expect_fail "imatrix: --calib-ctx over the context" "--calib-ctx" "$tmp/x.imatrix" \
    "$bin" imatrix "$model" --calib "$tmp/calib.txt" -c 4096 -o "$tmp/x.imatrix"
expect_fail "imatrix: without --calib" "--calib" "$tmp/x.imatrix" \
    "$bin" imatrix "$model" -o "$tmp/x.imatrix"
expect_fail "quantize --calib: text shorter than asked" "were asked" "$tmp/x.gguf" \
    "$bin" quantize "$model" "$tmp/x.gguf" --scheme q4_0 --calib "$tmp/calib.txt" \
    --calib-tokens 1000000

# another model: the same tokenizer, other sizes (width 32) and fewer layers (2)
config() {  # HIDDEN LAYERS
    printf '{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":%s,' "$1"
    printf '"num_hidden_layers":%s,"num_attention_heads":8,"num_key_value_heads":4,' "$2"
    printf '"intermediate_size":172,"vocab_size":512,"max_position_embeddings":512,'
    printf '"rms_norm_eps":1e-5,"rope_theta":10000.0,"tie_word_embeddings":true,'
    printf '"bos_token_id":1,"eos_token_id":2}\n'
}
config 32 5 >"$tmp/c1.json"
config 64 2 >"$tmp/c2.json"
expect_ok "init width 32" "$bin" init --config "$tmp/c1.json" --tokenizer "$tok" --seed 1 "$tmp/w32.gguf"
expect_ok "init 2 layers" "$bin" init --config "$tmp/c2.json" --tokenizer "$tok" --seed 1 "$tmp/l2.gguf"
expect_fail "quantize: imatrix of another width" "another model" "$tmp/x.gguf" \
    "$bin" quantize "$tmp/w32.gguf" "$tmp/x.gguf" --scheme q4_0 --imatrix "$tmp/s.imatrix"
expect_fail "quantize: imatrix of more layers" "names no matrix" "$tmp/x.gguf" \
    "$bin" quantize "$tmp/l2.gguf" "$tmp/x.gguf" --scheme q4_0 --imatrix "$tmp/s.imatrix"
size=$(wc -c <"$tmp/s.imatrix" | tr -d ' ')
head -c $((size / 2)) "$tmp/s.imatrix" >"$tmp/trunc.imatrix"
expect_fail "quantize: truncated imatrix" "truncated" "$tmp/x.gguf" \
    "$bin" quantize "$model" "$tmp/x.gguf" --scheme q4_0 --imatrix "$tmp/trunc.imatrix"
grep -q "trunc.imatrix" "$tmp/err" && ok || bad "truncated imatrix: the file is not named"
# a NaN as the first value of the first entry (4 + 4 + name + 4 + 4 bytes in)
cp "$tmp/s.imatrix" "$tmp/nan.imatrix"
nl=$(od -An -tu4 -j4 -N4 "$tmp/s.imatrix" | tr -d ' ')
printf '\000\000\300\177' | dd of="$tmp/nan.imatrix" bs=1 seek=$((16 + nl)) conv=notrunc 2>/dev/null
expect_fail "quantize: NaN in the imatrix" "NaN" "$tmp/x.gguf" \
    "$bin" quantize "$model" "$tmp/x.gguf" --scheme q4_0 --imatrix "$tmp/nan.imatrix"
expect_fail "quantize: missing imatrix" "none.imatrix" "$tmp/x.gguf" \
    "$bin" quantize "$model" "$tmp/x.gguf" --scheme q4_0 --imatrix "$tmp/none.imatrix"
expect_fail "quantize: a quantized input without --allow-requantize" "--allow-requantize" \
    "$tmp/x.gguf" "$bin" quantize "$tmp/q.gguf" "$tmp/x.gguf" --scheme q8_0
expect_ok "quantize: --allow-requantize" "$bin" quantize "$tmp/q.gguf" "$tmp/x.gguf" \
    --scheme q8_0 --allow-requantize
grep -q "quantized again" "$tmp/err" && ok || bad "--allow-requantize: no warning"

# ==== q3_K / q2_K with the importance matrix (a random 256-wide model: K-type rows) ===========

config 256 1 | sed 's/"intermediate_size":172/"intermediate_size":512/' >"$tmp/c3.json"
if expect_ok "init width 256" "$bin" init --config "$tmp/c3.json" --tokenizer "$tok" --seed 2 \
    "$tmp/w256.gguf" &&
    expect_ok "imatrix width 256" "$bin" imatrix "$tmp/w256.gguf" --calib "$tmp/calib.txt" -c 64 \
        -o "$tmp/w.imatrix"; then
    for s in q3_K q2_K; do
        # ggml's importance-weighted quantizer must see the matrix (bytes of llama-quantize
        # --imatrix: tests/test_quants.c), and the default search is another quantizer
        expect_ok "$s --ggml-exact" "$bin" quantize "$tmp/w256.gguf" "$tmp/$s-e.gguf" --scheme $s \
            --ggml-exact --no-manifest
        expect_ok "$s --imatrix --ggml-exact" "$bin" quantize "$tmp/w256.gguf" "$tmp/$s-ei.gguf" \
            --scheme $s --imatrix "$tmp/w.imatrix" --ggml-exact --no-manifest
        expect_ok "$s --imatrix" "$bin" quantize "$tmp/w256.gguf" "$tmp/$s-i.gguf" --scheme $s \
            --imatrix "$tmp/w.imatrix" --no-manifest
        # cmp exits 2 on a missing file: only two written files that differ pass
        cmp -s "$tmp/$s-e.gguf" "$tmp/$s-ei.gguf"
        [ $? -eq 1 ] && ok || bad "$s: --imatrix did not change the bytes (or a file is missing)"
        cmp -s "$tmp/$s-ei.gguf" "$tmp/$s-i.gguf"
        [ $? -eq 1 ] && ok || bad "$s: the search wrote ggml's bytes (or a file is missing)"
    done
    # the mixes of those types with each calibrated method that serves them: saved, reloaded, run
    expect_ok "q3_K_M --imatrix" "$bin" quantize "$tmp/w256.gguf" "$tmp/m-i.gguf" --scheme q3_K_M \
        --imatrix "$tmp/w.imatrix" --no-manifest
    expect_ok "q3_K_M --method awq" "$bin" quantize "$tmp/w256.gguf" "$tmp/m-a.gguf" \
        --scheme q3_K_M --method awq --calib "$tmp/calib.txt" --calib-tokens 256 --calib-ctx 64 \
        --no-manifest
    expect_ok "q2_K_M --imatrix" "$bin" quantize "$tmp/w256.gguf" "$tmp/m-2.gguf" --scheme q2_K_M \
        --imatrix "$tmp/w.imatrix" --no-manifest
    if expect_ok "compare the q3_K_M / q2_K_M files" "$bin" compare "$tmp/w256.gguf" \
        "$tmp/m-i.gguf" "$tmp/m-a.gguf" "$tmp/m-2.gguf" --text "$tmp/calib.txt" --ctx 64 \
        --tokens 128 --no-speed --json; then
        for i in 1 2 3; do
            k=$("$(dirname "$bin")/tests/json_get" "$tmp/out" "models.$i.kl_mean" 2>/dev/null)
            lt 0 "$k" && lt "$k" 10 && ok || bad "compare: model $i KL '$k' not in (0, 10)"
        done
    fi
fi

sh_finish test_imatrix_cli
