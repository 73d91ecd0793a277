#!/bin/sh
# test_lora_compare_cli.sh - `shrink compare --lora / --base-lora` and `shrink merge --scheme`
# end to end (POSIX sh; run from the repository root by tests/run_all.sh):
#
#   sh tests/test_lora_compare_cli.sh build/shrink
#
# On mix-llama-14m and the PEFT adapter of ../shared/fixtures/lora:
#   - compare BASE BASE --lora A gives the candidate the perplexity, KL and same-top-1 of
#     compare BASE MERGED (MERGED = merge --dtype f32), within 1e-4 relative (KL: 1e-4 of the
#     KL + 1e-7); compare MERGED BASE --base-lora A gives a KL of (nearly) 0;
#   - merge --scheme q4_0 writes the bytes of merge --dtype f32 followed by quantize --scheme
#     q4_0 (both --no-manifest), and its --text KL equals compare's KL of the output against
#     BASE --base-lora A on the same windows (a separate process and code path);
#   - bad input: --scheme with --dtype, --text without --scheme, an unknown scheme, a
#     non-GGUF output with --scheme, a truncated adapter (merge --scheme, compare --lora), an
#     adapter of another base on --base-lora.
# Missing assets: a failure when the shared folder is present, exit 77 when it is absent.
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-lora-compare.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM

# model_num KEY FILE: KEY of the first non-base model of a `compare --json` object
model_num() {
    tr '{' '\n' <"$2" | grep '"is_base":false' | head -n 1 >"$tmp/row"
    json_num "$1" "$tmp/row"
}
# close A B TOL: |A - B| <= TOL * |B| + 1e-7
close() {
    awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b
        exit !(a != "" && b != "" && d <= t * m + 1e-7) }'
}

base=$(asset models/mix-llama-14m) || missing "models/mix-llama-14m"
ad=$(asset fixtures/lora/mix-llama-14m-peft) || missing "fixtures/lora/mix-llama-14m-peft"
text=$(asset fixtures/lora/text.txt) || missing "fixtures/lora/text.txt"
if [ -z "${base:-}" ] || [ -z "${ad:-}" ] || [ -z "${text:-}" ]; then
    sh_finish test_lora_compare_cli
fi
cmp_opts="--text $text -n 192 -c 128 --no-speed -t 1 --json"

# merged f32 model (the reference of the run-time adapter)
expect_ok "merge f32" "$bin" merge "$base" --lora "$ad" -o "$tmp/m32.gguf" --dtype f32 \
    --no-manifest -t 1

# compare with --lora on the candidate == compare against the merged model
if expect_ok "compare --lora" "$bin" compare "$base" "$base" --lora "$ad" $cmp_opts; then
    cp "$tmp/out" "$tmp/lora.json"
    if expect_ok "compare merged" "$bin" compare "$base" "$tmp/m32.gguf" $cmp_opts; then
        cp "$tmp/out" "$tmp/merged.json"
        for k in ppl kl_mean kl_p99 top1_same_pct; do
            a=$(model_num "$k" "$tmp/lora.json")
            b=$(model_num "$k" "$tmp/merged.json")
            if close "$a" "$b" 1e-4; then ok; else bad "compare --lora $k $a vs merged $b"; fi
        done
    fi
    grep -q '"lora":\["[^"]*mix-llama-14m-peft"\]' "$tmp/lora.json" && ok ||
        bad "compare --json does not list the candidate's adapter"
fi
# --base-lora: the merged model against BASE + adapter: KL ~ 0
if expect_ok "compare --base-lora" "$bin" compare "$base" "$tmp/m32.gguf" --base-lora "$ad" \
    $cmp_opts; then
    kl=$(model_num kl_mean "$tmp/out")
    if lt "$kl" 1e-6; then ok; else bad "merged vs base --base-lora: KL $kl (want < 1e-6)"; fi
fi

# merge --scheme == merge f32 + quantize, byte for byte
expect_ok "merge --scheme" "$bin" merge "$base" --lora "$ad" -o "$tmp/mq.gguf" --scheme q4_0 \
    --no-manifest -t 1
expect_ok "quantize merged" "$bin" quantize "$tmp/m32.gguf" "$tmp/q.gguf" --scheme q4_0 \
    --no-manifest -t 1
if cmp -s "$tmp/mq.gguf" "$tmp/q.gguf"; then ok; else bad "merge --scheme q4_0 differs from merge f32 + quantize"; fi

# merge --scheme --text: its KL is compare's (BASE + adapter vs the output, same windows)
if expect_ok "merge --scheme --text" "$bin" merge "$base" --lora "$ad" "$tmp/mq2.gguf" \
    --scheme q4_0 --text "$text" -n 127 -c 128 -t 1 --json; then
    klm=$(json_num kl_merged)
    klu=$(json_num kl_unmerged)
    wr=$(json_num weight_rel_rms_mean)
    if expect_ok "compare the merged q4_0" "$bin" compare "$base" "$tmp/mq2.gguf" --base-lora "$ad" \
        --text "$text" -n 127 -c 128 --no-speed -t 1 --json; then
        klc=$(model_num kl_mean "$tmp/out")
        if close "$klm" "$klc" 1e-6; then ok; else bad "merge --text KL $klm vs compare $klc"; fi
    fi
    if lt 0 "$klu" && lt 0.01 "$wr" && lt "$wr" 0.2; then ok
    else bad "merge --json: kl_unmerged '$klu', weight_rel_rms_mean '$wr'"; fi
fi

# bad input
expect_fail "--scheme and --dtype" "not both" "$bin" merge "$base" --lora "$ad" -o "$tmp/x.gguf" \
    --scheme q4_0 --dtype f16
expect_fail "--text without --scheme" "--scheme" "$bin" merge "$base" --lora "$ad" \
    -o "$tmp/x.gguf" --text "$text"
expect_refused "unknown scheme" "q4_7" "$tmp/x.gguf" "$bin" merge "$base" --lora "$ad" \
    -o "$tmp/x.gguf" --scheme q4_7
expect_refused "non-GGUF output" "GGUF" "$tmp/x-hf" "$bin" merge "$base" --lora "$ad" \
    -o "$tmp/x-hf" --scheme q4_0
gad=$(asset fixtures/lora/mix-llama-14m-lora-f32.gguf) || missing "fixtures/lora/mix-llama-14m-lora-f32.gguf"
if [ -n "${gad:-}" ]; then
    head -c 600000 "$gad" >"$tmp/trunc.gguf"
    expect_refused "truncated adapter" "trunc.gguf" "$tmp/x.gguf" "$bin" merge "$base" \
        --lora "$tmp/trunc.gguf" -o "$tmp/x.gguf" --scheme q4_0
    expect_fail "compare --lora truncated" "trunc.gguf" "$bin" compare "$base" "$base" \
        --lora "$tmp/trunc.gguf" --text "$text" -n 64 --no-speed
fi
other=$(asset models/stories260K-hf) || missing "models/stories260K-hf"
if [ -n "${other:-}" ]; then
    expect_fail "--base-lora of another base" "does not fit" "$bin" compare "$other" "$other" \
        --base-lora "$ad" --text "$text" -n 64 --no-speed
fi
sh_finish test_lora_compare_cli
