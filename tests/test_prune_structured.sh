#!/bin/sh
# test_prune_structured.sh - end-to-end tests of `shrink sensitivity` and `shrink prune
# --structured` (POSIX sh; run from the repository root by tests/run_all.sh with the binary):
#
#   sh tests/test_prune_structured.sh build/shrink
#
# On stories260K (5 layers, 8 heads in 4 K/V groups, ffn 172) with its perplexity text:
# sensitivity per layer and per head (--json keys, one entry per unit, ranks a permutation),
# structured removal by sensitivity / activation / random into GGUF and a Hugging Face folder
# (the new config in info --json and config.json, a smaller file, ppl runs on it, progress on
# stderr), and bad input: more heads than exist, every layer, heads not a multiple of the K/V
# groups, an unknown unit in the spec or --unit, --structured with --method, --by unknown:
# a message, exit 1 or 2, no output left. The logits themselves are checked against masking in
# tests/test_prune_structured.c.
# Missing assets: a failure when the shared folder ($SHRINK_SHARED, else ../shared) is present,
# a counted skip (exit 77) when it is absent.
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-pstruct-cli.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM

finish() { sh_finish test_prune_structured; }

# run DESC CMD...: CMD must exit 0 (stdout in $tmp/out, stderr in $tmp/err)
run() { expect_ok "$@"; }
# fails DESC CODE PATTERN CMD...: CMD must exit CODE with PATTERN on stderr
fails() {
    desc=$1; code=$2; pat=$3
    shift 3
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if grep -q -e 'Sanitizer' -e 'runtime error:' "$tmp/err"; then
        bad "$desc: sanitizer report"
        return 1
    fi
    [ $rc -eq "$code" ] && ok || bad "$desc: exit $rc (want $code): $(head -c 300 "$tmp/err")"
    grep -q -e "$pat" "$tmp/err" && ok || bad "$desc: no '$pat' in: $(head -c 300 "$tmp/err")"
}
has_keys() {
    for k in "$@"; do
        grep -q "\"$k\":" "$tmp/out" && ok || bad "--json: no key $k: $(head -c 200 "$tmp/out")"
    done
}

model=$(asset models/stories260K/stories260K.bin) || model=""
text=$(asset fixtures/stories260K/ppl_text.txt) || text=""
if [ -z "$model" ] || [ -z "$text" ]; then
    if [ -d "$shared" ]; then
        bad "stories260K or fixtures/stories260K/ppl_text.txt not found, but $shared is present"
        finish
    fi
    echo "test_prune_structured: SKIPPED: stories260K / ppl_text.txt absent (no $shared)"
    exit 77
fi
head -c 3000 "$text" >"$tmp/prefix.txt"

# ---- sensitivity --------------------------------------------------------------------------
if run "sensitivity layers --json" "$bin" sensitivity "$model" --calib "$text" \
    --calib-tokens 32 --json; then
    has_keys input calib unit calib_tokens base_ppl proxy_spearman units kl ppl proxy rank
    [ "$(grep -o '"layer":' "$tmp/out" | wc -l)" -eq 5 ] && ok || bad "sensitivity: not 5 layer units"
    ranks=$(grep -o '"rank":[0-9]*' "$tmp/out" | cut -d: -f2 | sort -n | tr '\n' ' ')
    [ "$ranks" = "0 1 2 3 4 " ] && ok || bad "sensitivity: ranks '$ranks'"
fi
if run "sensitivity heads (text, --progress)" "$bin" sensitivity "$model" --calib "$text" \
    --calib-tokens 32 --unit head --progress --top 5; then
    grep -q "40 head units" "$tmp/out" && ok || bad "sensitivity head: $(head -n 1 "$tmp/out")"
    [ "$(grep -c '^ *[0-9]' "$tmp/out")" -eq 5 ] && ok || bad "--top 5: $(cat "$tmp/out")"
    grep -q "units measured" "$tmp/err" && ok || bad "sensitivity: no progress on stderr"
fi
fails "sensitivity --unit tensor" 2 "unknown unit 'tensor'" \
    "$bin" sensitivity "$model" --calib "$text" --unit tensor
fails "sensitivity without --calib" 2 "calib" "$bin" sensitivity "$model"

# ---- prune --structured -------------------------------------------------------------------
if run "prune --structured by sensitivity --json" "$bin" prune "$model" "$tmp/s.gguf" \
    --structured heads=4,neurons=25%,layers=1 --by sensitivity --calib "$text" \
    --calib-tokens 48 --json --progress; then
    has_keys input output by n_layers n_heads n_kv_heads ffn_dim params_in params_out \
        in_file_bytes out_file_bytes removed_layers removed_heads removed_neurons
    [ "$(json_num n_heads)" = 4 ] && [ "$(json_num n_kv_heads)" = 4 ] &&
        [ "$(json_num ffn_dim)" = 129 ] && [ "$(json_num n_layers)" = 4 ] && ok ||
        bad "structured config: $(head -c 300 "$tmp/out")"
    [ "$(json_num out_file_bytes)" = "$(wc -c <"$tmp/s.gguf")" ] && ok ||
        bad "out_file_bytes != file size"
    grep -q "units measured" "$tmp/err" && ok || bad "prune --structured: no progress"
    if run "info of the pruned model" "$bin" info "$tmp/s.gguf" --json; then
        [ "$(json_num n_layers)" = 4 ] && [ "$(json_num ffn_dim)" = 129 ] && ok ||
            bad "info: $(head -c 300 "$tmp/out")"
    fi
    run "ppl of the pruned model" "$bin" ppl "$tmp/s.gguf" "$tmp/prefix.txt" --ctx 64
fi
if run "prune --structured by activation (text)" "$bin" prune "$model" "$tmp/a.gguf" \
    --structured kv-heads=1,layers=2 --calib "$text" --calib-tokens 48; then
    grep -q "^by activation: heads 8 -> 6 (kv 4 -> 3).*layers 5 -> 3" "$tmp/out" && ok ||
        bad "activation line: $(cat "$tmp/out")"
fi
if run "prune --structured random -> HF folder" "$bin" prune "$model" "$tmp/hf" \
    --structured neurons=40 --by random --seed 7; then
    grep -q '"intermediate_size": 132' "$tmp/hf/config.json" && ok ||
        bad "HF config.json: $(cat "$tmp/hf/config.json")"
    run "ppl of the HF output" "$bin" ppl "$tmp/hf" "$tmp/prefix.txt" --ctx 64
fi
fails "heads=9 of 8" 1 "cannot remove 9 heads" \
    "$bin" prune "$model" "$tmp/bad1.gguf" --structured heads=9 --by random
fails "every layer" 1 "at least one must stay" \
    "$bin" prune "$model" "$tmp/bad2.gguf" --structured layers=5 --by random
fails "heads=3 of 4 groups" 1 "not a multiple" \
    "$bin" prune "$model" "$tmp/bad3.gguf" --structured heads=3 --by random
fails "unknown unit in the spec" 2 "unknown unit 'blocks'" \
    "$bin" prune "$model" "$tmp/bad4.gguf" --structured blocks=2 --by random
fails "--structured with --method" 2 "no --method" \
    "$bin" prune "$model" "$tmp/bad5.gguf" --structured layers=1 --method magnitude
fails "--by unknown" 2 "activation, sensitivity or random" \
    "$bin" prune "$model" "$tmp/bad6.gguf" --structured layers=1 --by size
fails "activation without --calib" 1 "calib" \
    "$bin" prune "$model" "$tmp/bad7.gguf" --structured layers=1
for f in bad1 bad2 bad3 bad4 bad5 bad6 bad7; do
    [ ! -e "$tmp/$f.gguf" ] && ok || bad "left $tmp/$f.gguf behind"
done
[ -z "$(ls -A "$tmp" | grep '^\.')" ] && ok || bad "temporaries left: $(ls -A "$tmp" | grep '^\.')"
finish
