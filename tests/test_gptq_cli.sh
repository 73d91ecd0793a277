#!/bin/sh
# test_gptq_cli.sh - end-to-end tests of `shrink quantize --method gptq` (POSIX sh; run from
# the repository root by tests/run_all.sh with the path of the binary):
#
#   sh tests/test_gptq_cli.sh build/shrink
#
# Model: tiny-llama-gqa (../shared; 64-wide, ffn 176: ffn_down falls back to f16 and is not
# GPTQ'd); calibration text tests/fixtures/prune/calib.txt. Covers: q4_0 with GPTQ (12 matrices)
# and with --act-order --block 32, with --gptq-head (the tied head: 13), int4_g32 (int8_ch for the 176-wide rows), each reloaded by
# `shrink ppl`; on the calibration text GPTQ's mean KL from the original (shrink compare) is
# below round to nearest's. Bad input, each with a message, a non-zero exit and no output file:
# a calibration text shorter than asked (saying how many tokens it gave), a scheme GPTQ cannot
# write (a K-type mix), no --calib, an unknown method, an importance matrix with it.
# Needs models/tiny-llama-gqa: missing, it is a failure when the shared folder is present, a
# counted skip (exit 77) when it is absent.
# Ends with "test_gptq_cli: N passed, N failed, N skipped"; exit 1 on any failure.
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-gptq-cli.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM

# no_file DESC FILE: FILE must not exist
no_file() { if [ -e "$2" ]; then bad "$1: $2 was written"; else ok; fi; }

model=$(asset models/tiny-llama-gqa) || model=""
calib=tests/fixtures/prune/calib.txt
if [ -z "$model" ]; then
    missing "models/tiny-llama-gqa"
    sh_finish test_gptq_cli
fi

# ==== quantize, reload, quality ===============================================================

expect_ok "q4_0 rtn" "$bin" quantize "$model" "$tmp/r.gguf" --scheme q4_0
if expect_ok "q4_0 gptq" "$bin" quantize "$model" "$tmp/g.gguf" --scheme q4_0 --method gptq \
    --calib "$calib" --calib-tokens 256 --calib-ctx 64 --json; then
    n=$(json_num gptq_matrices)
    [ "$n" = 12 ] && ok || bad "q4_0 gptq: $n matrices GPTQ'd, want 12 (q k v o gate up x 2)"
    [ "$(json_num calib_tokens)" = 256 ] && ok || bad "q4_0 gptq: calib_tokens $(json_num calib_tokens)"
fi
expect_ok "q4_0 gptq act-order" "$bin" quantize "$model" "$tmp/ga.gguf" --scheme q4_0 \
    --method gptq --calib "$calib" --calib-tokens 256 --calib-ctx 64 --act-order --block 32 \
    --damp 0.05
if expect_ok "q4_0 gptq --gptq-head" "$bin" quantize "$model" "$tmp/gh.gguf" --scheme q4_0 \
    --method gptq --calib "$calib" --calib-tokens 256 --calib-ctx 64 --gptq-head --json; then
    n=$(json_num gptq_matrices)
    [ "$n" = 13 ] && ok || bad "--gptq-head: $n matrices GPTQ'd, want 13 (the tied head too)"
fi
expect_ok "int4_g32 gptq" "$bin" quantize "$model" "$tmp/gi.gguf" --scheme int4_g32 \
    --method gptq --calib "$calib" --calib-tokens 256 --calib-ctx 64
for f in g ga gh gi; do
    if expect_ok "ppl $f" "$bin" ppl "$tmp/$f.gguf" "$calib" --json; then
        p=$(json_num ppl)
        lt "$p" 100000 && ok || bad "ppl $f: $p"
    fi
done
if expect_ok "compare" "$bin" compare "$model" "$tmp/r.gguf" "$tmp/g.gguf" "$tmp/ga.gguf" \
    --text "$calib" --no-speed --json; then
    # one "kl_mean" per model, the base first
    kls=$(tr ',' '\n' <"$tmp/out" | sed -n 's/.*"kl_mean":\([0-9.eE+-]*\).*/\1/p')
    set -- $kls
    if [ $# -eq 4 ]; then
        lt "$3" "$2" && ok || bad "GPTQ's KL $3 not below round to nearest's $2"
        lt "$4" "$2" && ok || bad "GPTQ act-order's KL $4 not below round to nearest's $2"
    else
        bad "compare: $# kl_mean values: $(head -c 300 "$tmp/out")"
    fi
fi

# ==== bad input ===============================================================================

expect_fail "short calibration text" "gives" "$bin" quantize "$model" "$tmp/b1.gguf" \
    --scheme q4_0 --method gptq --calib "$calib" --calib-tokens 100000
grep -q "were asked (--calib-tokens)" "$tmp/err" && ok || bad "short text: $(cat "$tmp/err")"
no_file "short calibration text" "$tmp/b1.gguf"
expect_fail "K-type mix" "cannot write scheme q4_K_M" "$bin" quantize "$model" "$tmp/b2.gguf" \
    --scheme q4_K_M --method gptq --calib "$calib"
no_file "K-type mix" "$tmp/b2.gguf"
expect_fail "no --calib" "needs a calibration text" "$bin" quantize "$model" "$tmp/b3.gguf" \
    --scheme q4_0 --method gptq
no_file "no --calib" "$tmp/b3.gguf"
expect_fail "unknown method" "unknown quantization method 'gptx'" "$bin" quantize "$model" \
    "$tmp/b4.gguf" --scheme q4_0 --method gptx --calib "$calib"
no_file "unknown method" "$tmp/b4.gguf"

sh_finish test_gptq_cli
