#!/bin/sh
# test_manifest.sh - the manifest of the files shrink writes (docs/manifest.md), `info` showing
# it and `verify` re-hashing its inputs (POSIX sh; run from the repository root by
# tests/run_all.sh with the path of the binary):
#
#   sh tests/test_manifest.sh build/shrink
#
# References: the hashes are compared with sha256sum (coreutils), the argv with the command as
# run; verify must fail naming the input after the input is changed or removed, and must say
# "no manifest" on a file written with --no-manifest. Runs on stories260K copied into a scratch
# folder (the copy is what gets modified). A few seconds.
set -u
bin=${1:-build/shrink}
[ -f tests/sh_lib.sh ] || { echo "test_manifest: run from the repository root"; exit 1; }
. tests/sh_lib.sh
finish() { sh_finish test_manifest; }
jg=$(dirname "$bin")/tests/json_get
[ -x "$jg" ] || { echo "test_manifest: $jg is not an executable (make $jg)"; exit 1; }

model=$(asset models/stories260K/stories260K.bin) || { missing "models/stories260K/stories260K.bin"; finish; }
text=$(asset fixtures/stories260K/ppl_text.txt) || { missing "fixtures/stories260K/ppl_text.txt"; finish; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-manifest.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir "$tmp/m"
cp "$model" "$tmp/m/stories260K.bin"
cp "$(dirname "$model")/tok512.bin" "$tmp/m/"
head -c 4000 "$text" >"$tmp/calib.txt"
m=$tmp/m/stories260K.bin
have_sum=1
command -v sha256sum >/dev/null 2>&1 || { have_sum=0; echo "test_manifest: no sha256sum; hashes compared with verify only"; }
sum() { sha256sum "$1" | cut -c1-64; }

# ==== a quantized GGUF carries the command, the inputs' hashes, threads and date ==============
if expect_ok "quantize --calib" "$bin" quantize "$m" "$tmp/q.gguf" --scheme q4_0 --calib "$tmp/calib.txt" \
    --calib-ctx 64 --calib-tokens 256 --threads 1; then
    expect_ok "info --json" "$bin" info "$tmp/q.gguf" --json && cp "$tmp/out" "$tmp/info.json"
    g() { "$jg" "$tmp/info.json" "$@"; }
    [ "$(g manifest.command.1)" = quantize ] && [ "$(g manifest.command.2)" = "$m" ] &&
        [ "$(g manifest.command.#)" = 14 ] && ok || bad "manifest command: $(g manifest.command.1) $(g manifest.command.2) ($(g manifest.command.#) words)"
    [ "$(g manifest.threads)" = 1 ] && ok || bad "manifest threads: $(g manifest.threads)"
    [ "$(g manifest.inputs.#)" = 2 ] && ok || bad "manifest: $(g manifest.inputs.#) inputs, want 2 (IN, --calib)"
    [ "$(g manifest.inputs.0.arg)" = IN ] && [ "$(g manifest.inputs.1.arg)" = --calib ] && ok ||
        bad "manifest input args: $(g manifest.inputs.0.arg) $(g manifest.inputs.1.arg)"
    [ "$(g manifest.inputs.0.bytes)" = "$(wc -c <"$m" | tr -d ' ')" ] && ok || bad "manifest: model bytes $(g manifest.inputs.0.bytes)"
    if [ $have_sum = 1 ]; then
        [ "$(g manifest.inputs.0.sha256)" = "$(sum "$m")" ] && ok || bad "model sha256 $(g manifest.inputs.0.sha256) != sha256sum $(sum "$m")"
        [ "$(g manifest.inputs.1.sha256)" = "$(sum "$tmp/calib.txt")" ] && ok || bad "calib sha256 differs from sha256sum"
    fi
    date=$(g manifest.date)
    case $date in 20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]Z) ok ;; *) bad "manifest date '$date'" ;; esac
    expect_ok "info (text)" "$bin" info "$tmp/q.gguf" &&
        { grep -q "^input: *--calib $tmp/calib.txt" "$tmp/out" && ok || bad "info does not show the --calib input: $(grep -e manifest -e input "$tmp/out")"; }

    # verify: all match
    expect_ok "verify" "$bin" verify "$tmp/q.gguf" && { grep -q "all 2 inputs match" "$tmp/out" && ok || bad "verify: $(cat "$tmp/out")"; }
    expect_ok "verify --json" "$bin" verify "$tmp/q.gguf" --json &&
        { [ "$("$jg" "$tmp/out" verified)" = true ] && [ "$("$jg" "$tmp/out" n_match)" = 2 ] &&
          [ "$("$jg" "$tmp/out" manifest.inputs.1.state)" = match ] && ok || bad "verify --json: $(cat "$tmp/out")"; }
    # the calibration text changes by one byte: verify fails naming it
    printf x >>"$tmp/calib.txt"
    "$bin" verify "$tmp/q.gguf" >"$tmp/out" 2>"$tmp/err"
    [ $? -eq 1 ] && grep -q -- "--calib $tmp/calib.txt changed" "$tmp/err" && grep -q "1 of 2 inputs do not match" "$tmp/err" && ok ||
        bad "verify after changing the calibration text: $(cat "$tmp/err")"
    "$bin" verify "$tmp/q.gguf" --json >"$tmp/out" 2>"$tmp/err"
    [ $? -eq 1 ] && [ "$("$jg" "$tmp/out" verified)" = false ] && [ "$("$jg" "$tmp/out" n_changed)" = 1 ] &&
        [ "$("$jg" "$tmp/out" manifest.inputs.1.state)" = changed ] && ok || bad "verify --json after a change: $(cat "$tmp/out")"
    # the model is gone: missing
    mv "$m" "$tmp/moved.bin"
    "$bin" verify "$tmp/q.gguf" >"$tmp/out" 2>"$tmp/err"
    [ $? -eq 1 ] && grep -q "input IN $m is missing" "$tmp/err" && ok || bad "verify with the model moved: $(cat "$tmp/err")"
    mv "$tmp/moved.bin" "$m"
fi

# ==== a chain: a model made from a model with a manifest carries that one under "parents" ======
if [ -f "$tmp/q.gguf" ] && expect_ok "convert of a GGUF with a manifest" "$bin" convert "$tmp/q.gguf" "$tmp/chain.gguf"; then
    expect_ok "info --json of the chain" "$bin" info "$tmp/chain.gguf" --json
    [ "$("$jg" "$tmp/out" manifest.command.1)" = convert ] && [ "$("$jg" "$tmp/out" manifest.parents.#)" = 1 ] &&
        [ "$("$jg" "$tmp/out" manifest.parents.0.path)" = "$tmp/q.gguf" ] &&
        [ "$("$jg" "$tmp/out" manifest.parents.0.command.1)" = quantize ] && ok ||
        bad "chain: $(grep -o '"parents":.*' "$tmp/out" | head -c 400)"
    expect_ok "info of the chain" "$bin" info "$tmp/chain.gguf" &&
        { grep -q "^made from: *IN $tmp/q.gguf, written .* quantize $m $tmp/q.gguf" "$tmp/out" && ok ||
          bad "info does not show the parent: $(grep '^made' "$tmp/out")"; }
fi

# ==== no manifest: --no-manifest, llama2.c files =============================================
expect_ok "quantize --no-manifest" "$bin" quantize "$m" "$tmp/n.gguf" q8_0 --no-manifest
expect_fail "verify without a manifest" "n.gguf: has no manifest" "$bin" verify "$tmp/n.gguf"
expect_ok "info without a manifest" "$bin" info "$tmp/n.gguf" --json &&
    { [ "$("$jg" "$tmp/out" manifest)" = null ] && ok || bad "info --json of a file without a manifest: manifest is not null"; }
expect_fail "verify of a llama2.c model" "has no manifest" "$bin" verify "$m"
expect_fail "verify of a missing file" "nothing.gguf" "$bin" verify "$tmp/nothing.gguf"

# ==== SOURCE_DATE_EPOCH: the same command twice gives the same bytes ==========================
SOURCE_DATE_EPOCH=86400 "$bin" quantize "$m" "$tmp/s.gguf" q8_0 >/dev/null 2>&1 && cp "$tmp/s.gguf" "$tmp/s1.gguf" &&
    SOURCE_DATE_EPOCH=86400 "$bin" quantize "$m" "$tmp/s.gguf" q8_0 >/dev/null 2>&1 &&
    cmp -s "$tmp/s.gguf" "$tmp/s1.gguf" && ok || bad "two runs with SOURCE_DATE_EPOCH differ"
expect_ok "info --json (SOURCE_DATE_EPOCH)" "$bin" info "$tmp/s.gguf" --json &&
    { [ "$("$jg" "$tmp/out" manifest.date)" = 1970-01-02T00:00:00Z ] && ok || bad "SOURCE_DATE_EPOCH=86400: date $("$jg" "$tmp/out" manifest.date)"; }

# ==== Hugging Face folders: shrink_manifest.json out; each file of an input folder in =========
if expect_ok "convert to a HF folder" "$bin" convert "$m" "$tmp/hf"; then
    [ -f "$tmp/hf/shrink_manifest.json" ] && [ -f "$tmp/hf/config.json" ] && "$jg" "$tmp/hf/shrink_manifest.json" && ok ||
        bad "no valid shrink_manifest.json beside config.json: $(ls "$tmp/hf")"
    expect_ok "verify a HF folder" "$bin" verify "$tmp/hf"
    if expect_ok "convert a HF folder to GGUF" "$bin" convert "$tmp/hf" "$tmp/fromhf.gguf"; then
        expect_ok "info of the GGUF from a folder" "$bin" info "$tmp/fromhf.gguf" --json
        files=$(grep -o '"path":"[^"]*"' "$tmp/out" | sed 's/.*\///; s/"$//' | tr '\n' ' ')
        case $files in *config.json*model.safetensors*) ok ;; *) bad "inputs of a HF folder: $files" ;; esac
        case $files in *shrink_manifest.json*) bad "the input folder's manifest is listed as an input: $files" ;; *) ok ;; esac
    fi
    printf '{"inputs": 3}' >"$tmp/hf/shrink_manifest.json"
    expect_fail "verify a broken shrink_manifest.json" "$tmp/hf/shrink_manifest.json: manifest key \"inputs\" is not an array" \
        "$bin" verify "$tmp/hf"
    printf '{"inputs": [' >"$tmp/hf/shrink_manifest.json"
    expect_fail "verify a truncated shrink_manifest.json" "shrink_manifest.json" "$bin" verify "$tmp/hf"
    expect_ok "info with a broken manifest still shows the model" "$bin" info "$tmp/hf" &&
        { grep -q "warning: .*shrink_manifest.json" "$tmp/err" && grep -q "^manifest: *none" "$tmp/out" && ok ||
          bad "info with a broken manifest: $(cat "$tmp/err")"; }
fi

# ==== seeds ====================================================================================
cat >"$tmp/config.json" <<'EOC'
{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":32,"num_hidden_layers":1,
 "num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":64,"vocab_size":512,
 "max_position_embeddings":64,"rms_norm_eps":1e-5,"rope_theta":10000.0,"tie_word_embeddings":true,
 "bos_token_id":1,"eos_token_id":2}
EOC
expect_ok "init --seed 5" "$bin" init --config "$tmp/config.json" --tokenizer "$tmp/m/tok512.bin" --seed 5 "$tmp/i.gguf" &&
    expect_ok "info of init" "$bin" info "$tmp/i.gguf" --json &&
    { [ "$("$jg" "$tmp/out" manifest.seeds.--seed)" = 5 ] && ok || bad "init --seed 5: manifest seeds $(grep -o '"seeds":{[^}]*}' "$tmp/out")"; }

# ==== measured quality: train records its last step's loss =====================================
if expect_ok "tokenize" "$bin" tokenize "$tmp/calib.txt" "$tmp/t.tok" --model "$m" &&
    expect_ok "train --json" "$bin" train "$m" --data "$tmp/t.tok" --steps 2 --batch 2 --ctx 32 --threads 1 \
        --seed 3 --to gguf --out "$tmp/tr" --json; then
    tail -n 1 "$tmp/out" >"$tmp/train.json"
    expect_ok "info of the trained model" "$bin" info "$tmp/tr/model.gguf" --json
    [ "$("$jg" "$tmp/out" manifest.quality.train_loss)" = "$("$jg" "$tmp/train.json" loss)" ] &&
        [ "$("$jg" "$tmp/out" manifest.quality.step)" = 2 ] && [ "$("$jg" "$tmp/out" manifest.seeds.--seed)" = 3 ] && ok ||
        bad "train: manifest quality $(grep -o '"quality":{[^}]*}' "$tmp/out"), final loss $("$jg" "$tmp/train.json" loss)"
    case $(grep -o '"arg":"[^"]*"' "$tmp/out" | tr '\n' ' ') in *'"--data"'*) ok ;; *) bad "train: --data not among the inputs" ;; esac
fi
finish
