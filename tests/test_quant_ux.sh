#!/bin/sh
# test_quant_ux.sh - what `shrink quantize` and `shrink convert --dtype` say they wrote
# (POSIX sh; run from the repository root by tests/run_all.sh with the path of the binary):
#
#   sh tests/test_quant_ux.sh build/shrink
#
# 1. The summary (text "asked ...; wrote T N, ...: B bits/weight" and --json written_types,
#    bits_per_weight, requested, fallbacks) against the GGUF's own tensor types read back by
#    `shrink info --json`: for llama.cpp's mixes (q4_K_M, q2_K_M, q3_K_M on a model whose rows
#    fit the 256-blocks; q4_K_M on stories260K, where they fall back), and convert --dtype.
# 2. `quantize --list` (text and --json) and `quantize --help` list every scheme with its
#    bits/weight, use and measured KL; the new types and mixes are there.
# 3. A NOTICE on stderr when the file holds shrink's own types (nf4), none for llama.cpp types.
# 4. The same type name gives the same file from convert --dtype and quantize --scheme (q8_0,
#    q4_K, q6_K, q2_K, q3_K, iq4_nl; q4_0 with --ggml-exact, whose default quantize searches).
# Needs models/stories260K (in the repository) only; the model with 256-wide rows is made by
# `shrink init`. JSON is read with build/tests/json_get (no python3).
# Ends with "test_quant_ux: N passed, N failed, N skipped"; exit 1 on any failure.
set -u
bin=${1:-build/shrink}
jget=$(dirname "$bin")/tests/json_get
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-quant-ux.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM
. tests/sh_lib.sh
finish() { sh_finish test_quant_ux; }
[ -x "$jget" ] || { echo "test_quant_ux: $jget is not an executable (make build/tests/json_get)"; exit 1; }

run() { expect_ok "$@"; } # DESC CMD...: stdout in $tmp/out, stderr in $tmp/err

model=models/stories260K/stories260K.bin
tok=models/stories260K/tok512.bin
[ -f "$model" ] && [ -f "$tok" ] || { bad "$model or $tok missing from the repository"; finish; }

# a random model whose every matrix row is a multiple of 256 (no fallbacks for the K-quants)
printf '{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":256,"num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":1,"intermediate_size":512,"vocab_size":512,"max_position_embeddings":256,"rms_norm_eps":1e-5,"rope_theta":10000.0,"tie_word_embeddings":false,"bos_token_id":1,"eos_token_id":2}\n' >"$tmp/config.json"
run "init a 256-wide model" "$bin" init --config "$tmp/config.json" --tokenizer "$tok" --seed 3 "$tmp/w256.gguf" ||
    finish

# info_types FILE: "type count" lines of the GGUF's tensors, sorted (from shrink info --json)
info_types() {
    "$bin" info "$1" --json >"$tmp/info.json" 2>"$tmp/info.err" || { echo "info failed"; return; }
    n=$("$jget" "$tmp/info.json" tensors.#)
    i=0
    while [ "$i" -lt "$n" ]; do
        "$jget" "$tmp/info.json" "tensors.$i.dtype"
        i=$((i + 1))
    done | sort | uniq -c | awk '{ print $2, $1 }'
}

# json_types FILE: the same from the command's --json written_types
json_types() {
    for t in f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_K q3_K q4_K q5_K q6_K iq4_nl int8_ch \
        int8_ch_asym int8_t int8_t_asym int4_g32 int4_g64 int4_g128 int4_g32_asym \
        int4_g64_asym int4_g128_asym nf4 nf4_dq w8a8 w8a8_static; do
        c=$("$jget" "$1" "written_types.$t" 2>/dev/null) && echo "$t $c"
    done | sort
}

# text_types: the same from the text summary line "asked ...; wrote T N, T N: B bits/weight"
text_types() {
    sed -n 's/^asked [^;]*; wrote \(.*\): [0-9.]* bits\/weight$/\1/p' "$tmp/out" | tr ',' '\n' |
        awk 'NF == 2 { print $1, $2 }' | sort
}

check_summary() { # LABEL OUT.gguf: $tmp/out.json (--json run) and $tmp/out.txt (text run)
    info_types "$2" >"$tmp/t_info"
    json_types "$tmp/out.json" >"$tmp/t_json"
    cp "$tmp/out.txt" "$tmp/out"
    text_types >"$tmp/t_text"
    if [ -s "$tmp/t_info" ] && cmp -s "$tmp/t_info" "$tmp/t_json" && cmp -s "$tmp/t_info" "$tmp/t_text"; then
        ok
    else
        bad "$1: types written per the summary differ from the file's: info [$(tr '\n' ' ' <"$tmp/t_info")] json [$(tr '\n' ' ' <"$tmp/t_json")] text [$(tr '\n' ' ' <"$tmp/t_text")]"
    fi
    # bits/weight of the summary = 8 * tensor bytes / elements of the file (shrink info)
    bpw=$("$jget" "$tmp/out.json" bits_per_weight)
    "$bin" info "$2" --json >"$tmp/info.json" 2>/dev/null
    wb=$("$jget" "$tmp/info.json" weight_bytes)
    np=$("$jget" "$tmp/info.json" n_params)
    awk -v b="$bpw" -v w="$wb" -v n="$np" 'BEGIN { d = b - 8 * w / n; if (d < 0) d = -d; exit !(n > 0 && d < 0.01) }' &&
        ok || bad "$1: bits_per_weight $bpw, file: 8 * $wb / $np"
    grep -Eq "^asked .*: $(printf '%.2f' "$bpw") bits/weight$" "$tmp/out.txt" && ok ||
        bad "$1: text summary $(grep '^asked' "$tmp/out.txt")"
}

quant_both() { # LABEL IN OUT SCHEME [FLAGS]: a --json run and a text run of the same quantize
    label=$1 in=$2 out=$3 scheme=$4
    shift 4
    run "$label --json" "$bin" quantize "$in" "$out" --scheme "$scheme" --json "$@" || return 1
    cp "$tmp/out" "$tmp/out.json"
    cp "$tmp/err" "$tmp/err.json"
    rm -f "$out"
    run "$label" "$bin" quantize "$in" "$out" --scheme "$scheme" "$@" || return 1
    cp "$tmp/out" "$tmp/out.txt"
}

# ==== 1. the summary against the file ===========================================================

for s in q4_K_M q2_K_M q3_K_M q3_K_L q4_K_S q5_K_S; do
    if quant_both "quantize 256-wide $s" "$tmp/w256.gguf" "$tmp/w-$s.gguf" "$s"; then
        check_summary "quantize 256-wide $s" "$tmp/w-$s.gguf"
        [ "$("$jget" "$tmp/out.json" requested)" = "$s" ] && ok || bad "$s: requested"
        [ "$("$jget" "$tmp/out.json" fallbacks.#)" = 0 ] && ok || bad "$s: fallbacks on 256-wide rows"
    fi
done
# q2_K_M: llama.cpp's Q2_K rules (attn_v q3_K with 4 heads per kv head... here n_gqa 4: q4_K;
# ffn_down and attn_output q3_K; the output q6_K; the rest q2_K)
"$bin" quantize "$tmp/w256.gguf" "$tmp/w-q2.gguf" --scheme q2_K_M --verbose >"$tmp/out" 2>&1
grep -Eq '^blk\.1\.attn_v\.weight .* q4_K ' "$tmp/out" && grep -Eq '^blk\.1\.ffn_down\.weight .* q3_K ' "$tmp/out" &&
    grep -Eq '^blk\.1\.attn_output\.weight .* q3_K ' "$tmp/out" && grep -Eq '^output\.weight .* q6_K ' "$tmp/out" &&
    grep -Eq '^blk\.1\.ffn_up\.weight .* q2_K ' "$tmp/out" && ok || bad "q2_K_M types: $(head -c 600 "$tmp/out")"

# stories260K: 64- and 172-wide rows, fallbacks with their reason
if quant_both "quantize stories260K q4_K_M" "$model" "$tmp/s-q4km.gguf" q4_K_M; then
    check_summary "quantize stories260K q4_K_M" "$tmp/s-q4km.gguf"
    grep -Eq '^  fallback q4_K -> q5_0: [0-9]+ tensor\(s\) with 64-wide rows \(q4_K blocks of 256 do not divide them\)$' "$tmp/out.txt" &&
        ok || bad "q4_K_M fallback reason: $(cat "$tmp/out.txt")"
    [ "$("$jget" "$tmp/out.json" fallbacks.0.from)" = q4_K ] && [ "$("$jget" "$tmp/out.json" fallbacks.0.row_length)" = 64 ] &&
        ok || bad "q4_K_M --json fallbacks"
    tail -n 1 "$tmp/out.txt" | grep -Eq '^f32 [0-9.]+ [KMG]iB -> q4_K_M [0-9.]+ [KMG]iB' && ok || bad "footprint line last"
fi
run "quantize --verbose fallback line" "$bin" quantize "$model" "$tmp/v.gguf" --scheme q4_K --verbose &&
    { grep -Eq '^blk\.0\.attn_q\.weight +64 x 64 +q5_0 .*\(fallback from q4_K: rows of 64, blocks of 256\)' "$tmp/out" &&
      ok || bad "--verbose fallback line: $(grep attn_q "$tmp/out" | head -n 2)"; }

# convert --dtype: the same summary, read back from the file
run "convert --dtype q4_K --json" "$bin" convert "$model" "$tmp/c-q4k.gguf" --dtype q4_K --json &&
    cp "$tmp/out" "$tmp/out.json" && rm -f "$tmp/c-q4k.gguf" &&
    run "convert --dtype q4_K" "$bin" convert "$model" "$tmp/c-q4k.gguf" --dtype q4_K &&
    cp "$tmp/out" "$tmp/out.txt" && check_summary "convert --dtype q4_K" "$tmp/c-q4k.gguf"

# ==== 2. --list and --help =======================================================================

run "quantize --list" "$bin" quantize --list && {
    for s in q4_K_M q5_K_M q4_K_S q5_K_S q3_K_S q3_K_M q3_K_L q2_K_M q2_K q3_K iq4_nl q8_0 nf4 w8a8_static; do
        grep -Eq "^  $s +~?[0-9.]+ +([0-9.]+|-) +" "$tmp/out" || bad "--list: no row for $s"
    done
    grep -Eq '^  q4_K_M +5\.77 +0\.000286 +Q4_K_M +' "$tmp/out" && ok || bad "--list q4_K_M row: $(grep q4_K_M "$tmp/out")"
    grep -q '^reference: mix-llama-14m' "$tmp/out" && ok || bad "--list: no reference line"
}
run "quantize --list --json" "$bin" quantize --list --json && {
    "$jget" "$tmp/out" && ok || bad "--list --json is not JSON"
    n=$("$jget" "$tmp/out" schemes.#)
    [ "${n:-0}" -ge 33 ] && ok || bad "--list --json: $n schemes"
    [ "$("$jget" "$tmp/out" schemes.0.name)" = q4_K_M ] && [ "$("$jget" "$tmp/out" schemes.0.kl_mean)" = 0.00028600000000000001 ] &&
        ok || bad "--list --json first row: $("$jget" "$tmp/out" schemes.0.name schemes.0.kl_mean)"
}
run "quantize --help" "$bin" quantize --help &&
    { grep -Eq '^  q3_K_M +' "$tmp/out" && grep -q 'KL' "$tmp/out" && ok || bad "--help has no scheme table"; }

# ==== 3. NOTICE for shrink's own types ============================================================

if run "quantize nf4" "$bin" quantize "$model" "$tmp/nf4.gguf" --scheme nf4; then
    grep -q "^NOTICE: .*nf4.gguf uses shrink's own tensor types (nf4.*llama.cpp" "$tmp/err" && ok ||
        bad "nf4: no NOTICE: $(cat "$tmp/err")"
fi
run "quantize nf4 --json" "$bin" quantize "$model" "$tmp/nf4j.gguf" --scheme nf4 --json &&
    { [ "$("$jget" "$tmp/out" llama_cpp_readable)" = false ] && ok || bad "nf4 --json llama_cpp_readable"; }
run "quantize q4_K_M (no notice)" "$bin" quantize "$model" "$tmp/q.gguf" --scheme q4_K_M &&
    { ! grep -q NOTICE "$tmp/err" && ok || bad "q4_K_M: a NOTICE: $(cat "$tmp/err")"; }
run "convert --dtype int4_g32" "$bin" convert "$model" "$tmp/i4.gguf" --dtype int4_g32 &&
    { grep -q "^NOTICE: .*int4_g32" "$tmp/err" && ok || bad "convert int4_g32: no NOTICE"; }

# ==== 4. one type name, one file ===================================================================

# (stories260K's 64-wide rows fall back to q5_0 / q5_1, searched by quantize: --ggml-exact there)
for t in q8_0 q4_K q6_K q2_K q3_K iq4_nl q4_0; do
    for m in "$model" "$tmp/w256.gguf"; do
        flags=""
        [ "$t" = q4_0 ] || [ "$m" = "$model" ] && flags=--ggml-exact
        rm -f "$tmp/cv.gguf" "$tmp/qz.gguf"
        "$bin" convert "$m" "$tmp/cv.gguf" --dtype "$t" --no-manifest >/dev/null 2>&1 &&
            "$bin" quantize "$m" "$tmp/qz.gguf" --scheme "$t" $flags --no-manifest >/dev/null 2>&1 &&
            cmp -s "$tmp/cv.gguf" "$tmp/qz.gguf" && ok ||
            bad "$t on $m: convert --dtype and quantize --scheme $flags write different files ($(cmp "$tmp/cv.gguf" "$tmp/qz.gguf" 2>&1 | head -n 1))"
    done
done

finish
