#!/bin/sh
# test_awq_cli.sh - end-to-end tests of `shrink quantize --method awq` and `--smooth` (POSIX sh;
# run from the repository root by tests/run_all.sh with the path of the binary):
#
#   sh tests/test_awq_cli.sh build/shrink
#
# Model: stories260K (in the repository, a trained model); calibration text written here.
# Covers: q4_0 with --method awq quantizes (--json says how many inputs were folded), reloads,
# `shrink ppl` runs on it, and its mean KL from the original on the calibration text (shrink
# compare) is at most round-to-nearest's; w8a8_static with --smooth 0.5 quantizes and runs.
# Bad input, each with a message naming the problem, a non-zero exit and no output file:
# --smooth outside [0, 1], a calibration text shorter than asked (saying how many tokens it
# has), --method awq for w8a8 (a scheme it cannot serve), --smooth for q4_0, --method awq
# without --calib, an unknown method.
# Needs models/stories260K: missing, it is a failure when the shared folder ($SHRINK_SHARED,
# else ../shared) is present, a counted skip (exit 77) when it is absent.
# Ends with "test_awq_cli: N passed, N failed, N skipped"; exit 1 on any failure.
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-awq-cli.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM

model=$(asset models/stories260K/stories260K.bin) || model=""
tok=$(asset models/stories260K/tok512.bin) || tok=""
if [ -z "$model" ] || [ -z "$tok" ]; then
    missing "models/stories260K"
    sh_finish test_awq_cli
fi

story_text "$tmp/calib.txt" 12
q="$bin quantize $model --tokenizer $tok"

# ==== AWQ against round to nearest ============================================================

expect_ok "rtn q4_0" $q "$tmp/rtn.gguf" --scheme q4_0
if expect_ok "awq q4_0" $q "$tmp/awq.gguf" --scheme q4_0 --method awq --calib "$tmp/calib.txt" \
    --calib-tokens 512 --json; then
    n=$(json_num fold_inputs)
    # stories260K: 5 layers, SwiGLU, 8 query heads on 4 kv heads: q/k/v, o (tied over the
    # query heads of a kv head), gate/up and down folded in each layer
    [ "$n" = 20 ] && ok || bad "awq: $n inputs folded, expected 20"
fi
expect_ok "ppl of the awq model" "$bin" ppl "$tmp/awq.gguf" "$tmp/calib.txt" --tokenizer "$tok"
if expect_ok "compare" "$bin" compare "$model" "$tmp/rtn.gguf" "$tmp/awq.gguf" --tokenizer "$tok" \
    --text "$tmp/calib.txt" --no-speed --json; then
    kls=$(tr ',' '\n' <"$tmp/out" | sed -n 's/^"kl_mean":\([0-9.eE+-]*\)$/\1/p')
    rtn=$(echo "$kls" | sed -n 2p)
    awq=$(echo "$kls" | sed -n 3p)
    if [ -n "$rtn" ] && [ -n "$awq" ] && awk -v a="$awq" -v r="$rtn" 'BEGIN { exit !(a <= r && r > 0) }'; then
        ok
    else
        bad "awq's mean KL $awq is above round-to-nearest's $rtn"
    fi
fi

# ==== SmoothQuant =============================================================================

if expect_ok "w8a8_static --smooth" $q "$tmp/sq.gguf" --scheme w8a8_static --smooth 0.5 \
    --calib "$tmp/calib.txt" --calib-tokens 512 --json; then
    n=$(json_num fold_inputs)
    [ "$n" = 10 ] && ok || bad "smooth: $n inputs folded, expected 10"
    expect_ok "ppl of the smoothed model" "$bin" ppl "$tmp/sq.gguf" "$tmp/calib.txt" --tokenizer "$tok"
fi

# ==== bad input ===============================================================================

expect_refused "--smooth 1.5" "--smooth" "$tmp/b1.gguf" \
    $q "$tmp/b1.gguf" --scheme w8a8 --smooth 1.5 --calib "$tmp/calib.txt"
expect_refused "short calibration text" "gives" "$tmp/b2.gguf" \
    $q "$tmp/b2.gguf" --scheme q4_0 --method awq --calib "$tmp/calib.txt" --calib-tokens 100000
grep -q "tokens but 100000 were asked" "$tmp/err" && ok || bad "short text: $(cat "$tmp/err")"
expect_refused "awq for w8a8" "cannot serve scheme w8a8" "$tmp/b3.gguf" \
    $q "$tmp/b3.gguf" --scheme w8a8 --method awq --calib "$tmp/calib.txt"
expect_refused "--smooth for q4_0" "--smooth applies to" "$tmp/b4.gguf" \
    $q "$tmp/b4.gguf" --scheme q4_0 --smooth 0.5 --calib "$tmp/calib.txt"
expect_refused "awq without --calib" "needs a calibration text" "$tmp/b5.gguf" \
    $q "$tmp/b5.gguf" --scheme q4_0 --method awq
expect_refused "unknown method" "unknown quantization method 'foo'" "$tmp/b6.gguf" \
    $q "$tmp/b6.gguf" --scheme q4_0 --method foo --calib "$tmp/calib.txt"

sh_finish test_awq_cli
