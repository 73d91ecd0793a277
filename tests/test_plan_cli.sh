#!/bin/sh
# test_plan_cli.sh - end-to-end tests of `shrink plan` (POSIX sh; run from the repository root by
# tests/run_all.sh with the path of the binary):
#
#   sh tests/test_plan_cli.sh build/shrink
#
# Model: stories260K (in the repository); calibration text written here. Covers: the written
# file is at most --bytes (its size on disk) and holds the plan's types (shrink info), the
# text and --json outputs, --bits (--bpw), two runs byte-identical (same relative output name from two
# folders, SOURCE_DATE_EPOCH fixed: the manifests agree too); bad input, each with a message,
# a non-zero exit and no output: a budget below the smallest possible file (the message gives
# that size, and that size itself is accepted), an unknown type, a type no matrix can take,
# both budgets, none, no --calib, the output being the model, a quantized input, an output
# that is not GGUF, a calibration text shorter than --calib-tokens.
# Needs models/stories260K: missing, it is a failure when the shared folder ($SHRINK_SHARED,
# else ../shared) is present, a counted skip (exit 77) when it is absent.
# Ends with "test_plan_cli: N passed, N failed, N skipped"; exit 1 on any failure.
set -u
bin=${1:-build/shrink}
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-plan-cli.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM

model=$(asset models/stories260K/stories260K.bin) || model=""
if [ -z "$model" ]; then
    missing "models/stories260K"
    sh_finish test_plan_cli
fi
case $model in /*) ;; *) model=$(pwd)/$model ;; esac
story_text "$tmp/calib.txt" 12
C="--calib $tmp/calib.txt --calib-tokens 64 --calib-ctx 64 --types q4_0,q5_0,q8_0,f16 --threads 1"

# ==== bad input first (cheap: refused before anything is measured) ============================

# the probe's command line is as long as the run at the minimum (a 6-digit budget, x.gguf /
# y.gguf): the manifest records it, so a longer one can move the file by an alignment step
expect_refused "budget of 100000 bytes" "smallest file the candidate types allow" "$tmp/x.gguf" \
    "$bin" plan "$model" $C --bytes 100000 --to "$tmp/x.gguf"
min=$(sed -n 's/.*allow: \([0-9]*\) bytes.*/\1/p' "$tmp/err")
[ -n "$min" ] && ok || bad "no smallest size in: $(cat "$tmp/err")"
min=${min:-100000}
expect_refused "budget of the smallest file - 1" "smallest" "$tmp/x.gguf" \
    "$bin" plan "$model" $C --bytes $((min - 1)) --to "$tmp/x.gguf"
expect_refused "unknown type" "unknown type 'q9_K'" "$tmp/x.gguf" \
    "$bin" plan "$model" --calib "$tmp/calib.txt" --types q4_0,q9_K --bytes 900000 --to "$tmp/x.gguf"
expect_refused "a type no matrix can take" "no candidate type fits" "$tmp/x.gguf" \
    "$bin" plan "$model" --calib "$tmp/calib.txt" --types q4_K --bytes 900000 --to "$tmp/x.gguf"
expect_fail "both budgets" "not both" "$bin" plan "$model" $C --bytes 900000 --bits 6
expect_fail "no budget" "a budget is required" "$bin" plan "$model" $C
expect_fail "no --calib" "--calib FILE is required" "$bin" plan "$model" --bytes 900000
expect_fail "output is the model" "" "$bin" plan "$model" $C --bytes 900000 --to "$model"
"$bin" convert "$model" "$tmp/q8.gguf" --dtype q8_0 --no-manifest >/dev/null 2>&1
expect_refused "a quantized input" "holds quantized tensors" "$tmp/x.gguf" \
    "$bin" plan "$tmp/q8.gguf" $C --bytes 900000 --to "$tmp/x.gguf"
expect_refused "an output that is not GGUF" "GGUF" "$tmp/x.bin" \
    "$bin" plan "$model" $C --bytes 900000 --to "$tmp/x.bin"
printf 'Once upon a time.\n' >"$tmp/short.txt"
expect_refused "a calibration text too short" "tokens, fewer than" "$tmp/x.gguf" \
    "$bin" plan "$model" --calib "$tmp/short.txt" --types q8_0,f16 --bytes 900000 --to "$tmp/x.gguf"

# ==== the smallest file is accepted; a larger budget is used and respected ===================

if expect_ok "plan at the smallest file" "$bin" plan "$model" $C --bytes "$min" --to "$tmp/y.gguf"; then
    sz=$(wc -c <"$tmp/y.gguf")
    [ "$sz" -le "$min" ] && ok || bad "smallest plan: $sz bytes > $min"
fi
budget=$((min + min / 5))
mkdir "$tmp/a" "$tmp/b"
if (cd "$tmp/a" && SOURCE_DATE_EPOCH=0 "$bin" plan "$model" $C --bytes $budget --to p.gguf \
        >"$tmp/out" 2>"$tmp/err"); then
    ok
    sz=$(wc -c <"$tmp/a/p.gguf")
    [ "$sz" -le "$budget" ] && ok || bad "plan: $sz bytes > --bytes $budget"
    for w in "predicted KL" "measured KL" "token_embd.weight" "bits/weight" "types:"; do
        grep -q "$w" "$tmp/out" && ok || bad "plan output has no '$w': $(head -c 300 "$tmp/out")"
    done
    # the file holds the plan's type of every matrix (shrink info's tensor table)
    "$bin" info "$tmp/a/p.gguf" >"$tmp/info" 2>&1
    n=0; bad_n=0
    while read -r name shape x cols type bytes kl; do
        case $name in *.weight) ;; *) continue ;; esac
        n=$((n + 1))
        grep -Fw -- "$name" "$tmp/info" | grep -qw "$type" || bad_n=$((bad_n + 1))
    done <"$tmp/out"
    [ $n -gt 30 ] && [ $bad_n -eq 0 ] && ok || bad "info: $bad_n of $n planned types not in the file"
else
    bad "plan --bytes $budget: exit $?: $(head -c 400 "$tmp/err")"
fi
if (cd "$tmp/b" && SOURCE_DATE_EPOCH=0 "$bin" plan "$model" $C --bytes $budget --to p.gguf \
        >"$tmp/out2" 2>"$tmp/err"); then
    cmp -s "$tmp/a/p.gguf" "$tmp/b/p.gguf" && ok || bad "two runs wrote different files"
    cmp -s "$tmp/out" "$tmp/out2" && ok || bad "two runs printed different plans"
else
    bad "second plan: $(head -c 400 "$tmp/err")"
fi

if expect_ok "plan --max-kl" "$bin" plan "$model" $C --max-kl 0.002; then
    grep -q "predicted KL" "$tmp/out" && ok || bad "--max-kl: $(head -c 300 "$tmp/out")"
fi
expect_fail "--max-kl no plan reaches" "no plan within a KL" "$bin" plan "$model" $C --max-kl 1e-20

# ==== --json and --bits (spelled --bpw, as the issue does) =======================================================================

if expect_ok "plan --bpw --json" "$bin" plan "$model" $C --bpw 8 --json; then
    for k in budget_bytes min_bytes file_bytes tensor_bytes bits_per_weight predicted_kl \
             measured_kl tensors candidates measured; do
        grep -q "\"$k\":" "$tmp/out" && ok || bad "plan --json: no \"$k\""
    done
    b=$(json_num bits_per_weight)
    awk -v b="$b" 'BEGIN { exit !(b > 7 && b <= 8) }' && ok || bad "--bits 8: $b bits/weight"
    grep -q '"measured_kl":null' "$tmp/out" && ok || bad "measured_kl without --to is not null"
fi
sh_finish test_plan_cli
