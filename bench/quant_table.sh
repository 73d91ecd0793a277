#!/bin/sh
# quant_table.sh - the results tables of docs/dev/quantization-log.md: every `shrink quantize --scheme`
# of each model, scored against the original (f32 / f16) model by `shrink compare --no-speed`
# on each text: bits/weight and file size (from `shrink quantize --json`), ppl, delta-ppl %,
# KL(P_original || P_quantized) mean and p99, same-top-1 %, and which tensors fell back to
# another type because the scheme's block does not divide their rows.
#
#   sh bench/quant_table.sh [MODELS_DIR [CORPUS_DIR]]
#       (defaults: $SHRINK_MODELS, else ../shared/models; ../shared/data/corpus)
#   env: TOKENS (8192 scored tokens per text), CTX (256, capped at the model's context),
#        STRIDE (CTX - 1: consecutive windows share one token, so every token after the first
#        is scored exactly once, at the cost of no overlap; STRIDE = CTX would leave the first
#        token of each window unscored and trips an assertion in shrink compare),
#        MODELS ("stories260K/stories260K.bin mix-llama-14m mix-llama-22m mix-gpt2-30m"),
#        TEXTS ("test.txt tinystories_val_subset.txt wikitext2_test.raw"), SCHEMES (all),
#        CALIB (CORPUS_DIR/train.txt, for w8a8_static; must not be an evaluation text),
#        CALIB_TOKENS (4096), QUANT_FLAGS (extra quantize flags, e.g. --ggml-exact), THREADS (0 = one per core), SHRINK (build/shrink),
#        PROGRESS (1: compare's progress with ETA on stderr)
#
# Never asserts; prints markdown on stdout, one model at a time, as each is finished; a line
# per step on stderr. `shrink compare` takes at most 15 models, so the schemes are scored in
# chunks of 12, each chunk against the same original (identical windows, so its rows are
# identical in every chunk). Quantized files go to a temporary directory removed at exit.
set -u
shrink=${SHRINK:-build/shrink}
models=${1:-${SHRINK_MODELS:-../shared/models}}
corpus=${2:-../shared/data/corpus}
tokens=${TOKENS:-8192}
ctx_want=${CTX:-256}
threads=${THREADS:-0}
calib=${CALIB:-$corpus/train.txt}
calib_tokens=${CALIB_TOKENS:-4096}
model_list=${MODELS:-"stories260K/stories260K.bin mix-llama-14m mix-llama-22m mix-gpt2-30m"}
texts=${TEXTS:-"test.txt tinystories_val_subset.txt wikitext2_test.raw"}
schemes=${SCHEMES:-"q8_0 q4_0 q4_1 q5_0 q5_1 q4_K q5_K q6_K q4_K_M q5_K_M int8_ch int8_ch_asym
  int8_t int8_t_asym int4_g32 int4_g64 int4_g128 int4_g32_asym int4_g64_asym int4_g128_asym
  nf4 nf4_dq w8a8 w8a8_static"}
progress=""; [ "${PROGRESS:-0}" = 1 ] && progress=--progress
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

say() { echo "$(date -u +%H:%M:%S) $*" >&2; }
jget() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" "$2" | head -1; }
# one JSON object per line: {"name":... objects (compare's models, quantize's tensors)
split_objs() { sed 's/{"name":/\
{"name":/g' "$1"; }

# fallback summary of a quantize --verbose --json: "q4_K→q5_0 on 64-wide rows (30 of 36
# matrices); q4_K→f16 on 172-wide rows (5 of 36 matrices)", or "—". For the mixes the
# intended type is inferred from llama.cpp's fallback (q5_0 from q4_K, q5_1 from q5_K, q8_0
# from q6_K); f16 is the last resort of every type.
fallbacks() { # scheme json
    split_objs "$2" | awk -v scheme="$1" '
    function get(s, k,   m) {
        if (!match(s, "\"" k "\":(\"[^\"]*\"|[^,}]*)")) return ""
        m = substr(s, RSTART + length(k) + 3, RLENGTH - length(k) - 3); gsub(/"/, "", m); return m
    }
    /^\{"name":/ {
        if (!match($0, /"shape":\[[0-9,]*\]/)) next
        sh = substr($0, RSTART + 9, RLENGTH - 10); nd = split(sh, d, ",")
        if (nd < 2) next
        nmat++
        if (get($0, "fallback") != "true") next
        key = get($0, "dtype") SUBSEP d[nd]
        if (!(key in cnt)) order[++nk] = key
        cnt[key]++
    }
    END {
        mix = (scheme ~ /_M$/)
        from["q5_0"] = "q4_K"; from["q5_1"] = "q5_K"; from["q8_0"] = "q6_K"
        out = ""
        for (i = 1; i <= nk; i++) {
            split(order[i], p, SUBSEP)
            src = mix ? ((p[1] in from) ? from[p[1]] : "") : scheme
            out = out (out == "" ? "" : "; ") src "→" p[1] " on " p[2] "-wide rows (" cnt[order[i]] \
                  " of " nmat " matrices)"
        }
        print (out == "" ? "—" : out)
    }'
}

echo "Schemes scored against the original model with \`shrink compare --no-speed\`:" \
     "up to $tokens tokens scored per text, windows of CTX tokens (below) with stride ${STRIDE:-CTX - 1}," \
     "$threads threads (0 = one per core). bits/weight and file MB (10^6 bytes) are" \
     "\`shrink quantize --json\`'s (every tensor of the file: norms, embeddings and fallbacks" \
     "included). KL = KL(P_original ‖ P_quantized) per scored token in nats." \
     "w8a8_static is calibrated on $(basename "$calib") ($calib_tokens tokens)."
for m in $model_list; do
    name=$(basename "$m" .bin)
    mdir="$tmp/$name"; mkdir -p "$mdir"
    base="$models/$m"
    "$shrink" info "$base" --json > "$mdir/info.json" 2>/dev/null ||
        { echo; echo "### $name"; echo; echo "\`shrink info $base\` failed"; continue; }
    seq=$(jget max_seq_len "$mdir/info.json")
    ctx=$ctx_want; [ -n "$seq" ] && [ "$seq" -lt "$ctx" ] && ctx=$seq
    stride=${STRIDE:-$((ctx - 1))}
    ok=""
    for s in $schemes; do
        say "$name: quantize $s"
        calibargs=""
        [ "$s" = w8a8_static ] && calibargs="--calib $calib --calib-tokens $calib_tokens"
        # shellcheck disable=SC2086
        if "$shrink" quantize "$base" "$mdir/$s.gguf" --scheme "$s" $calibargs ${QUANT_FLAGS:-} --threads "$threads" \
               --verbose --json > "$mdir/$s.q.json" 2> "$mdir/$s.q.err"; then
            ok="$ok $s"
        else
            say "$name: quantize $s failed: $(head -c 300 "$mdir/$s.q.err")"
        fi
    done
    # chunks of at most 12 quantized models per compare
    chunks=$(echo "$ok" | awk '{ for (i = 1; i <= NF; i++) printf "%s%s", $i, (i % 12 == 0 || i == NF) ? "\n" : " " }')
    echo
    echo "### $name ($(jget n_params "$mdir/info.json" | awk '{ printf "%.2fM", $1 / 1e6 }') parameters; ctx $ctx, stride $stride)"
    for t in $texts; do
        i=0
        echo "$chunks" | while read -r chunk; do
            [ -n "$chunk" ] || continue
            i=$((i + 1))
            files=""; for s in $chunk; do files="$files $mdir/$s.gguf"; done
            say "$name: compare on $t, chunk $i: $chunk"
            # shellcheck disable=SC2086
            "$shrink" compare "$base" $files --text "$corpus/$t" --tokens "$tokens" --ctx "$ctx" \
                --stride "$stride" --no-speed --threads "$threads" --json $progress \
                > "$mdir/c.$t.$i.json" 2> "$mdir/c.$t.$i.err" ||
                say "$name: compare on $t, chunk $i failed: $(head -c 300 "$mdir/c.$t.$i.err")"
        done
        cat "$mdir"/c."$t".*.json 2>/dev/null > "$mdir/c.$t.all"
        echo
        printf '#### %s on %s: ' "$name" "$t"
        head -1 "$mdir/c.$t.all" | awk '{
            n = ""; w = ""
            if (match($0, /"tokens_scored":[0-9]+/)) n = substr($0, RSTART + 16, RLENGTH - 16)
            if (match($0, /"windows":[0-9]+/)) w = substr($0, RSTART + 10, RLENGTH - 10)
            printf "%s tokens scored, %s windows\n", n, w }'
        echo
        echo "| scheme | bits/weight | file MB | ppl | Δppl % | KL mean | KL p99 | same top-1 % | fallbacks |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        split_objs "$mdir/c.$t.all" > "$mdir/rows"
        row() { # label bpw bytes json-line fallbacks
            awk -v label="$1" -v bpw="$2" -v bytes="$3" -v fb="$5" '
            function get(s, k) {
                if (!match(s, "\"" k "\":[^,}]*")) return ""
                return substr(s, RSTART + length(k) + 3, RLENGTH - length(k) - 3)
            }
            { printf "| %s | %.2f | %.2f | %.4f | %+.3f | %.6f | %.6f | %.2f | %s |\n", label, bpw,
                     bytes / 1e6, get($0, "ppl"), get($0, "delta_ppl_pct"), get($0, "kl_mean"),
                     get($0, "kl_p99"), get($0, "top1_same_pct"), fb; exit }' "$4"
        }
        grep '"is_base":true' "$mdir/rows" | head -1 > "$mdir/row"
        if [ -s "$mdir/row" ]; then
            row "original ($(sed -n 's/.*"scheme":"\([^"]*\)".*/\1/p' "$mdir/row"))" \
                "$(jget bits_per_weight "$mdir/row")" "$(jget file_bytes "$mdir/row")" "$mdir/row" "—"
        fi
        for s in $schemes; do
            grep "^{\"name\":\"$s.gguf\"" "$mdir/rows" | head -1 > "$mdir/row"
            if [ -s "$mdir/row" ]; then
                row "$s" "$(jget bits_per_weight "$mdir/$s.q.json")" "$(jget out_file_bytes "$mdir/$s.q.json")" \
                    "$mdir/row" "$(fallbacks "$s" "$mdir/$s.q.json")"
            else
                echo "| $s | failed (see stderr) | | | | | | | |"
            fi
        done
    done
    rm -f "$mdir"/*.gguf
done
