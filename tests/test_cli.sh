#!/bin/sh
# test_cli.sh - end-to-end tests of the `shrink` command (POSIX sh; run from the repository root
# by tests/run_all.sh with the path of the binary):
#
#   sh tests/test_cli.sh build/shrink
#
# Covers: --help of every command (exit 0), usage errors (exit 2, usage on stderr, stdout
# empty), greedy generation of stories260K equal to fixtures/stories260K/greedy200.txt byte for
# byte, `shrink ppl` equal to fixtures/stories260K/ppl.json to 4 significant digits (sliding and
# non-overlapping), --json output of every command (one object; keys checked with grep, validity
# and values with tests/json_get.c over the library's JSON parser, built beside the tests as
# BUILD/tests/json_get: no python3 needed), and bad input: broken model files, configs and
# text files built in a temporary folder from the real ones must give a non-zero exit below 128,
# a message on stderr naming the file, no sanitizer report and nothing on stdout.
#
# Assets come from $SHRINK_SHARED, ../shared, then the copies in tests/fixtures/ and
# models/stories260K/ (see tests/fixtures/README.md). A missing asset is a failure when the
# shared folder ($SHRINK_SHARED, else ../shared) is present, a counted skip when it is absent
# (then the script exits 77 if nothing failed). KEEP_TMP=1 keeps the temporary folder of broken
# files.
# Ends with "test_cli: N passed, N failed, N skipped"; exit 1 on any failure.
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-cli.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM

# The JSON reader (tests/json_get.c), built by `make check` beside the tests of this build.
jget=$(dirname "$bin")/tests/json_get

# json_has DESC KEY...: $tmp/out is one line holding one JSON object with these keys.
json_has() {
    desc=$1
    shift
    if [ "$(wc -l <"$tmp/out")" -ne 1 ] || ! grep -q '^{.*}$' "$tmp/out"; then
        bad "$desc: not one JSON object on one line: $(head -c 200 "$tmp/out")"
        return 1
    fi
    for k in "$@"; do
        if ! grep -q "\"$k\":" "$tmp/out"; then bad "$desc: no key \"$k\""; return 1; fi
    done
    if ! "$jget" "$tmp/out" 2>"$tmp/jerr"; then
        bad "$desc: invalid JSON: $(cat "$tmp/jerr")"
        return 1
    fi
    ok
}

# jcheck EXPR PATH...: the values at PATH... of the JSON in $tmp/out (json_get's paths, e.g.
# models.1.kl_mean; models.# is the array's length) are v[1], v[2], ... of the awk expression
# EXPR, with N(i) the i-th as a number (a value that is not a number, e.g. null, fails the
# check) and S(i) as a string; true if EXPR holds. A missing path fails.
jcheck() {
    jexpr=$1
    shift
    jvals=$("$jget" "$tmp/out" "$@" 2>"$tmp/jerr") || return 1
    printf '%s\n' "$jvals" | awk -v n=$# '
        function N(i) { if (v[i] !~ /^-?[0-9][0-9.]*([eE][-+]?[0-9]+)?$/) nonnum = 1; return v[i] + 0 }
        function S(i) { return v[i] "" }
        { v[NR] = $0 }
        END { if (NR != n) exit 1; okay = ('"$jexpr"'); exit !(okay && !nonnum) }'
}

# same4 A B: A and B agree to 4 significant digits (relative difference below 5e-5).
same4() {
    awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b != 0 && d / b < 5e-5) }'
}

if [ ! -x "$bin" ]; then
    echo "test_cli: $bin is not an executable; build it with make"
    exit 1
fi
if [ ! -x "$jget" ]; then
    echo "test_cli: $jget is not an executable; build it with make check (or make $jget)"
    exit 1
fi

# ==== help and usage ==========================================================================

# every command that `shrink help` lists
commands=$("$bin" help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }')
for c in info generate ppl bench version help; do
    case " $(echo $commands) " in *" $c "*) ok ;; *) bad "shrink help does not list $c" ;; esac
done
for c in $commands; do
    expect_ok "$c --help" "$bin" "$c" --help && {
        grep -q "usage: shrink" "$tmp/out" && ok || bad "$c --help: no usage on stdout"
    }
done
expect_ok "shrink --help" "$bin" --help
expect_ok "shrink help ppl" "$bin" help ppl
expect_ok "shrink version" "$bin" version
for c in $commands; do
    [ "$c" = help ] && continue
    # an unknown option: exit 2 and one line naming it (not the whole usage)
    run "$bin" "$c" --no-such-option
    [ $rc -eq 2 ] && [ ! -s "$tmp/out" ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] &&
        grep -q "^shrink $c: unknown option '--no-such-option'" "$tmp/err" && ok ||
        bad "$c --no-such-option: exit $rc (want 2 and one line on stderr): $(head -c 300 "$tmp/err")"
done
# did you mean: the nearest option of the command's table, with the value when it takes one
run "$bin" quantize in.bin out.gguf --schem q4_K_M
[ $rc -eq 2 ] && [ "$(cat "$tmp/err")" = "shrink quantize: unknown option '--schem'; did you mean --scheme q4_K_M?" ] &&
    ok || bad "quantize --schem: $(cat "$tmp/err")"
run "$bin" ppl m.bin t.txt --strdie=64
[ $rc -eq 2 ] && [ "$(cat "$tmp/err")" = "shrink ppl: unknown option '--strdie'; did you mean --stride 64?" ] &&
    ok || bad "ppl --strdie=64: $(cat "$tmp/err")"
run "$bin" bench m.bin --no-pinn
[ $rc -eq 2 ] && [ "$(cat "$tmp/err")" = "shrink bench: unknown option '--no-pinn'; did you mean --no-pin?" ] &&
    ok || bad "bench --no-pinn: $(cat "$tmp/err")"
run "$bin" compare a b --tex t.txt
[ $rc -eq 2 ] && grep -q "did you mean --text t.txt?" "$tmp/err" && ok || bad "compare --tex: $(cat "$tmp/err")"
run "$bin" generate m.bin --jsn
[ $rc -eq 2 ] && grep -q "did you mean --json?" "$tmp/err" && ok || bad "generate --jsn: $(cat "$tmp/err")"
run "$bin" quantize in.bin out.gguf --calib-tok 5
[ $rc -eq 2 ] && grep -q "did you mean --calib-tokens 5?" "$tmp/err" && ok ||
    bad "quantize --calib-tok (a prefix): $(cat "$tmp/err")"
run "$bin"
[ $rc -eq 2 ] && ok || bad "shrink without a command: exit $rc (want 2)"
run "$bin" no-such-command
[ $rc -eq 2 ] && ok || bad "unknown command: exit $rc (want 2)"
run "$bin" quantise m.bin out.gguf q8_0
[ $rc -eq 2 ] && [ "$(cat "$tmp/err")" = "shrink: unknown command 'quantise'; did you mean quantize?" ] &&
    ok || bad "shrink quantise: exit $rc: $(cat "$tmp/err")"
run "$bin" perplexity -m m.bin -f t.txt
[ $rc -eq 2 ] && grep -q "did you mean ppl?" "$tmp/err" && ok || bad "shrink perplexity: $(cat "$tmp/err")"
run "$bin" ppl only-a-model
[ $rc -eq 2 ] && ok || bad "ppl with one argument: exit $rc (want 2)"
run "$bin" generate m -n
[ $rc -eq 2 ] && ok || bad "generate -n without a value: exit $rc (want 2)"
run "$bin" generate m --threads abc
[ $rc -eq 2 ] && ok || bad "--threads abc: exit $rc (want 2)"
run "$bin" generate m --top-p 1.5
[ $rc -eq 2 ] && ok || bad "--top-p 1.5: exit $rc (want 2)"
run "$bin" version --json
json_has "version --json" version kernels threads

# ==== stories260K: generation and perplexity ===================================================

model=$(asset models/stories260K/stories260K.bin) || model=""
greedy=$(asset fixtures/stories260K/greedy200.txt) || greedy=""
text=$(asset fixtures/stories260K/ppl_text.txt) || text=""
ppljson=$(asset fixtures/stories260K/ppl.json) || ppljson=""

if [ -z "$model" ] || [ -z "$greedy" ]; then
    missing "greedy200: stories260K or greedy200.txt"
else
    if expect_ok "generate greedy200" "$bin" generate "$model" -n 200 --temp 0; then
        cmp -s "$tmp/out" "$greedy" && ok ||
            bad "generate -n 200 --temp 0 differs from $greedy: $(cmp "$tmp/out" "$greedy" 2>&1)"
    fi
    expect_ok "generate --json" "$bin" generate "$model" -n 16 --json &&
        json_has "generate --json" text tokens prompt_tokens n_prompt n_generated stop pp_tokens_per_s \
            tg_tokens_per_s peak_rss_bytes
    expect_ok "generate --temp 0.9 (1)" "$bin" generate "$model" -p "Once upon a time" -n 40 \
        --temp 0.9 --top-p 0.9 --top-k 40 --seed 7 && cp "$tmp/out" "$tmp/sample1"
    expect_ok "generate --temp 0.9 (2)" "$bin" generate "$model" -p "Once upon a time" -n 40 \
        --temp 0.9 --top-p 0.9 --top-k 40 --seed 7 --threads 1 &&
        { cmp -s "$tmp/out" "$tmp/sample1" && ok || bad "sampling with one seed is not reproducible"; }
    grep -q '^Once upon a time' "$tmp/sample1" && ok || bad "generate does not echo the prompt"
    expect_ok "info" "$bin" info "$model" &&
        { grep -q "parameters:" "$tmp/out" && grep -q "memory to run:" "$tmp/out" && ok ||
            bad "info: no parameters / memory lines"; }
    expect_ok "info --json" "$bin" info "$model" --json &&
        json_has "info --json" arch format dim n_layers n_heads n_kv_heads vocab_size max_seq_len \
            n_params n_tensors file_bytes weight_bytes state_bytes mem_bytes tokenizer_vocab tensors
    expect_ok "bench --json" "$bin" bench "$model" --pp 32 --tg 8 --reps 2 --bandwidth 20 --json &&
        json_has "bench --json" pp_tokens_per_s pp_tokens_per_s_sd tg_tokens_per_s \
            tg_tokens_per_s_sd tg_tokens_per_s_mean tg_tokens_per_s_min tg_tokens_per_s_max \
            pp_gflops roofline_fraction bandwidth_bytes_s threads threads_pinned spread_warning \
            peak_rss_bytes weight_bytes
    expect_ok "bench" "$bin" bench "$model" --pp 16 --tg 4 --reps 1 --bandwidth 20 &&
        { grep -q '^| model' "$tmp/out" && grep -q '| tg4 |' "$tmp/out" && ok ||
            bad "bench: no markdown table"; }
fi

if [ -z "$model" ] || [ -z "$text" ] || [ -z "$ppljson" ]; then
    missing "ppl: stories260K, ppl_text.txt or ppl.json"
elif [ -n "${ASAN_OPTIONS:-}${UBSAN_OPTIONS:-}" ]; then
    # A sanitizer run (make asan-check) is 15x slower: score a 3 KB prefix to exercise every
    # path; the plain run checks the numbers against the reference.
    head -c 3000 "$text" >"$tmp/prefix.txt"
    for m in "--stride 64" "--stride 128" "--llama-cpp"; do
        # shellcheck disable=SC2086
        expect_ok "ppl prefix --ctx 128 $m" "$bin" ppl "$model" "$tmp/prefix.txt" --ctx 128 $m --json &&
            json_has "ppl prefix $m --json" ppl nll bpb tokens_scored
    done
    skipped "ppl reference values: checked in the run without sanitizers"
else
    ref=$(awk '/"non_overlapping"/ { no = 1 } /"ppl":/ { gsub(/[ ,]/, "", $2); if (!no) print $2 }' "$ppljson")
    ref_no=$(awk '/"non_overlapping"/ { no = 1 } /"ppl":/ { gsub(/[ ,]/, "", $2); if (no) print $2 }' "$ppljson")
    if expect_ok "ppl --ctx 128 --stride 64" "$bin" ppl "$model" "$text" --ctx 128 --stride 64 \
        --json --progress; then
        json_has "ppl --json" ppl nll bpb tokens_scored n_tokens windows ctx stride method seconds \
            tokens_per_s peak_rss_bytes
        got=$(json_num ppl)
        same4 "$got" "$ref" && ok || bad "ppl ctx 128 stride 64: $got, reference $ref"
        [ "$(json_num tokens_scored)" = 9651 ] && ok ||
            bad "ppl tokens_scored $(json_num tokens_scored), reference 9651"
        grep -q "ppl windows" "$tmp/err" && ok || bad "ppl --progress: no progress on stderr"
    fi
    if expect_ok "ppl --stride 128" "$bin" ppl "$model" "$text" --ctx 128 --stride 128 --json; then
        got=$(json_num ppl)
        same4 "$got" "$ref_no" && ok || bad "ppl non-overlapping: $got, reference $ref_no"
    fi
    expect_ok "ppl --llama-cpp" "$bin" ppl "$model" "$text" --ctx 128 --llama-cpp &&
        { grep -q "perplexity:" "$tmp/out" && ok || bad "ppl --llama-cpp: no perplexity line"; }
fi

# ==== llama.cpp spellings =====================================================================

if [ -z "$model" ] || [ -z "$text" ]; then
    missing "llama.cpp spellings: stories260K or ppl_text.txt"
else
    head -c 1500 "$text" >"$tmp/ll.txt"
    expect_ok "ppl MODEL TEXT" "$bin" ppl "$model" "$tmp/ll.txt" --ctx 64 --json && want=$(json_num ppl)
    # -m MODEL -f FILE (llama-perplexity), in either order, and -f before the model
    for args in "-m $model -f $tmp/ll.txt" "-f $tmp/ll.txt -m $model" "-f $tmp/ll.txt $model"; do
        # shellcheck disable=SC2086
        expect_ok "ppl $args" "$bin" ppl $args --ctx 64 --json &&
            { [ "$(json_num ppl)" = "$want" ] && ok || bad "ppl $args: ppl $(json_num ppl), want $want"; }
    done
    run "$bin" ppl -f "$tmp/ll.txt" --ctx 64
    [ $rc -eq 2 ] && grep -q "missing arguments" "$tmp/err" && ok || bad "ppl -f without a model: exit $rc"
    # bench -p/-n (llama-bench), -m on any command that loads a model
    expect_ok "bench -m -p -n -r" "$bin" bench -m "$model" -p 16 -n 4 -r 1 --bandwidth 20 --json &&
        jcheck 'N(1) == 16 && N(2) == 4 && N(3) == 1' pp tg reps && ok || bad "bench -p 16 -n 4: $(head -c 300 "$tmp/out")"
    expect_ok "info -m" "$bin" info -m "$model" --json && json_has "info -m --json" n_params
    # compare -f FILE
    expect_ok "compare -f" "$bin" compare "$model" "$model" -f "$tmp/ll.txt" --ctx 64 --no-speed --json &&
        json_has "compare -f --json" kl_mean
    # quantize IN OUT TYPE (llama-quantize's order): the same bytes as --scheme TYPE (the
    # manifests would differ: they record the command line, docs/manifest.md)
    mkdir -p "$tmp/pq"
    if expect_ok "quantize IN OUT TYPE" "$bin" quantize "$model" "$tmp/pq/a.gguf" q8_0 --no-manifest &&
        expect_ok "quantize IN OUT --scheme" "$bin" quantize "$model" "$tmp/pq/b.gguf" --scheme q8_0 --no-manifest; then
        cmp -s "$tmp/pq/a.gguf" "$tmp/pq/b.gguf" && ok || bad "quantize IN OUT q8_0 differs from --scheme q8_0"
    fi
    expect_ok "quantize -m IN OUT TYPE" "$bin" quantize -m "$model" "$tmp/pq/c.gguf" Q8_0 --no-manifest &&
        { cmp -s "$tmp/pq/a.gguf" "$tmp/pq/c.gguf" && ok || bad "quantize -m IN OUT Q8_0 differs"; }
    # llama-quantize's Q2_K is its mix: shrink's q2_K_M, not q2_K (every matrix q2_K)
    if expect_ok "quantize IN OUT Q2_K" "$bin" quantize "$model" "$tmp/pq/e.gguf" Q2_K --no-manifest &&
        expect_ok "quantize --scheme q2_K_M" "$bin" quantize "$model" "$tmp/pq/f.gguf" --scheme q2_K_M --no-manifest; then
        cmp -s "$tmp/pq/e.gguf" "$tmp/pq/f.gguf" && ok || bad "quantize IN OUT Q2_K differs from --scheme q2_K_M"
    fi
    # and its Q4_K is its alias of Q4_K_M
    if expect_ok "quantize IN OUT Q4_K" "$bin" quantize "$model" "$tmp/pq/g.gguf" Q4_K --no-manifest &&
        expect_ok "quantize --scheme q4_K_M" "$bin" quantize "$model" "$tmp/pq/h.gguf" --scheme q4_K_M --no-manifest; then
        cmp -s "$tmp/pq/g.gguf" "$tmp/pq/h.gguf" && ok || bad "quantize IN OUT Q4_K differs from --scheme q4_K_M"
    fi
    # compare names two models of the same file name by their folders (a/model.gguf, b/model.gguf)
    mkdir -p "$tmp/pq/x" "$tmp/pq/y"
    cp "$tmp/pq/a.gguf" "$tmp/pq/x/model.gguf"; cp "$tmp/pq/e.gguf" "$tmp/pq/y/model.gguf"
    if expect_ok "compare same file names" "$bin" compare "$model" "$tmp/pq/x/model.gguf" \
        "$tmp/pq/y/model.gguf" --text "$tmp/ll.txt" --ctx 64 --no-speed --json; then
        [ "$("$jget" "$tmp/out" models.1.name)" = x/model.gguf ] &&
            [ "$("$jget" "$tmp/out" models.2.name)" = y/model.gguf ] && ok ||
            bad "compare same file names: $(head -c 400 "$tmp/out")"
    fi
    run "$bin" quantize "$model" "$tmp/pq/d.gguf" q8_0 --scheme q4_0
    [ $rc -eq 2 ] && grep -q "the scheme is given twice" "$tmp/err" && [ ! -e "$tmp/pq/d.gguf" ] && ok ||
        bad "quantize with two different schemes: exit $rc: $(cat "$tmp/err")"
fi

# ==== compare ==================================================================================

if [ -z "$model" ] || [ -z "$text" ]; then
    missing "compare: stories260K or ppl_text.txt"
else
    head -c 3000 "$text" >"$tmp/cmp.txt"
    # a model against itself: KL 0, delta-ppl 0, top-1 100 %, one row per model
    if expect_ok "compare self" "$bin" compare "$model" "$model" --text "$tmp/cmp.txt" --ctx 64 \
        --tokens 256 --pp 16 --tg 4 --reps 1; then
        grep -q '^| model | scheme | bpw | size | ppl | Δppl % | KL mean | KL p99 | same top-1 % | pp16 t/s | tg4 t/s | peak RSS |$' "$tmp/out" &&
            ok || bad "compare: no markdown header: $(head -n 1 "$tmp/out")"
        [ "$(grep -c '^| stories260K.bin' "$tmp/out")" = 2 ] && ok || bad "compare: not 2 model rows"
        grep '^| stories260K.bin |' "$tmp/out" | grep -q '| ~+0.000 ± 0.000 | ~0.000000 ± 0.000000 | 0.000000 | ~100.00 ± 0.00 |' &&
            ok || bad "compare self: KL/delta/top-1 not 0/0/100: $(grep '^| stories260K.bin |' "$tmp/out")"
        grep -q '256 tokens scored' "$tmp/out" && ok || bad "compare --tokens 256: $(tail -n 4 "$tmp/out")"
    fi
    if expect_ok "compare self --json" "$bin" compare "$model" "$model" --text "$tmp/cmp.txt" \
        --ctx 64 --tokens 256 --pp 16 --tg 4 --reps 1 --json; then
        json_has "compare --json" base text ctx stride method tokens_scored models name scheme \
            bits_per_weight file_bytes ppl ppl_se delta_ppl delta_ppl_se delta_ppl_pct \
            delta_ppl_pct_se kl_mean kl_mean_se kl_p99 top1_same_pct top1_same_pct_se \
            pp_tokens_per_s tg_tokens_per_s peak_rss_bytes
        jcheck 'N(1) == 2 && N(2) == 0 && N(3) == 0 && N(4) == 0 && N(5) == 100 && N(6) == 256 &&
                N(7) > 0 && N(8) > 0 && N(9) > 0 && S(10) == "f32" && N(11) == 32 &&
                N(12) > 0 && N(13) > 0 && N(14) > 0 && S(15) == "f32" && N(16) == 32' \
            models.# models.1.kl_mean models.1.kl_p99 models.1.delta_ppl_pct \
            models.1.top1_same_pct tokens_scored \
            models.0.pp_tokens_per_s models.0.tg_tokens_per_s models.0.peak_rss_bytes models.0.scheme \
            models.0.bits_per_weight \
            models.1.pp_tokens_per_s models.1.tg_tokens_per_s models.1.peak_rss_bytes models.1.scheme \
            models.1.bits_per_weight &&
            ok || bad "compare self --json: $(head -c 600 "$tmp/out")"
    fi
    # the base's perplexity equals shrink ppl's with the same windows
    for m in "--stride 32" "--stride 64" "--llama-cpp"; do
        # shellcheck disable=SC2086
        expect_ok "ppl $m" "$bin" ppl "$model" "$tmp/cmp.txt" --ctx 64 $m --json && want=$(json_num ppl)
        # shellcheck disable=SC2086
        if expect_ok "compare --no-speed $m" "$bin" compare "$model" "$model" --text "$tmp/cmp.txt" \
            --ctx 64 $m --no-speed --json; then
            got=$(sed -n 's/.*"models":\[{[^}]*"ppl":\([0-9.eE+-]*\).*/\1/p' "$tmp/out")
            awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b > 0 && d / b < 1e-9) }' &&
                ok || bad "compare $m: base ppl $got, shrink ppl $want"
            jcheck 'N(1) == 2 && S(2) == "null" && S(3) == "null" && S(4) == "null" && S(5) == "null"' \
                models.# models.0.pp_tokens_per_s models.0.peak_rss_bytes models.1.pp_tokens_per_s \
                models.1.peak_rss_bytes &&
                ok || bad "compare --no-speed: speed or RSS reported"
        fi
    done
    gq=$(asset fixtures/gguf/stories260K-Q4_K_M.gguf) || { gq=""; missing "compare f32 vs Q4_K_M: fixtures/gguf/stories260K-Q4_K_M.gguf"; }
    if [ -n "$gq" ] && expect_ok "compare f32 vs Q4_K_M" "$bin" compare "$model" "$gq" \
        --text "$tmp/cmp.txt" --ctx 64 --tokens 256 --no-speed --json; then
        jcheck 'N(1) > 1e-4 && N(2) < 100 && S(3) == "f16/q8_0/q5_0" && 4 < N(4) && N(4) < 16' \
            models.1.kl_mean models.1.top1_same_pct models.1.scheme models.1.bits_per_weight &&
            ok || bad "compare f32 vs Q4_K_M: $(head -c 800 "$tmp/out")"
    fi

    # hostile input
    : >"$tmp/empty.txt"
    expect_fail "compare empty text" "empty.txt" "$bin" compare "$model" "$model" --text "$tmp/empty.txt" --no-speed
    expect_fail "compare missing text" "$tmp/none.txt" "$bin" compare "$model" "$model" --text "$tmp/none.txt"
    expect_fail "compare missing model" "$tmp/none.bin" "$bin" compare "$model" "$tmp/none.bin" --text "$tmp/cmp.txt"
    run "$bin" compare "$model" "$model"
    [ $rc -eq 2 ] && [ ! -s "$tmp/out" ] && grep -q -- "--text" "$tmp/err" && ok ||
        bad "compare without --text: exit $rc (want 2, --text named)"
    run "$bin" compare "$model" --text "$tmp/cmp.txt"
    [ $rc -eq 2 ] && ok || bad "compare with the base only: exit $rc (want 2)"
    mix=$(asset models/mix-llama-14m/config.json) || { mix=""; missing "compare different vocabularies: models/mix-llama-14m"; }
    if [ -n "$mix" ]; then
        expect_fail "compare different vocabularies" "vocabulary" "$bin" compare "$model" \
            "$(dirname "$mix")" --text "$tmp/cmp.txt" --no-speed
    fi
fi

# mix-llama-14m (Hugging Face, f16) against llama.cpp's Q4_K_M of it: KL > 0, a plausible
# perplexity equal to `shrink ppl`'s on the GGUF (skipped under sanitizers: 32000-token vocabulary)
mixd=$(asset models/mix-llama-14m/config.json) || mixd=""
mixq=$(asset fixtures/gguf/mix-llama-14m-Q4_K_M.gguf) || mixq=""
corpus=$(asset data/corpus/test.txt) || corpus=""
if [ -z "$mixd" ] || [ -z "$mixq" ] || [ -z "$corpus" ]; then
    missing "compare mix-llama-14m vs Q4_K_M: assets"
elif [ -n "${ASAN_OPTIONS:-}${UBSAN_OPTIONS:-}" ]; then
    skipped "compare mix-llama-14m vs Q4_K_M: checked in the run without sanitizers"
else
    head -c 1200 "$corpus" >"$tmp/mix.txt"
    expect_ok "ppl Q4_K_M" "$bin" ppl "$mixq" "$tmp/mix.txt" --ctx 128 --json && want=$(json_num ppl)
    if expect_ok "compare mix-llama-14m vs Q4_K_M" "$bin" compare "$(dirname "$mixd")" "$mixq" \
        --text "$tmp/mix.txt" --ctx 128 --pp 16 --tg 4 --reps 1 --json; then
        jcheck 'N(1) > 1e-5 && N(2) >= N(1) && 50 < N(3) && N(3) < 2000 && -10 < N(4) &&
                N(4) < 10 && S(5) == "q4_K/q6_K" && S(6) == "f16" && 4.5 < N(7) && N(7) < 7' \
            models.1.kl_mean models.1.kl_p99 models.0.ppl models.1.delta_ppl_pct \
            models.1.scheme models.0.scheme models.1.bits_per_weight &&
            ok || bad "compare mix-llama-14m vs Q4_K_M: $(head -c 1200 "$tmp/out")"
        got=$("$jget" "$tmp/out" models.1.ppl)
        awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && b > 0 && d / b < 1e-9) }' &&
            ok || bad "compare: Q4_K_M ppl $got, shrink ppl $want"
    fi
fi

# ==== bad input ================================================================================

if [ -z "$model" ]; then
    missing "bad input (llama2.c): stories260K"
else
    d="$tmp/bad"
    mkdir -p "$d"
    cp "$(dirname "$model")/tok512.bin" "$d/tok512.bin"
    size=$(wc -c <"$model")
    # patch FILE OFFSET BYTES-as-printf-escapes: overwrite bytes in place
    patch() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null; }

    head -c 100000 "$model" >"$d/truncated.bin"
    expect_fail "truncated checkpoint" "truncated.bin" "$bin" info "$d/truncated.bin"
    head -c $((size - 4)) "$model" >"$d/short4.bin"
    expect_fail "checkpoint 4 bytes short" "short4.bin" "$bin" generate "$d/short4.bin" -n 4
    head -c 12 "$model" >"$d/header12.bin"
    expect_fail "12-byte checkpoint" "header12.bin" "$bin" info "$d/header12.bin"
    : >"$d/empty.bin"
    expect_fail "empty checkpoint" "empty.bin" "$bin" info "$d/empty.bin"
    printf 'GGUF\003\000\000\000' >"$d/magic.bin"
    tail -c +9 "$model" >>"$d/magic.bin"
    expect_fail "wrong magic (GGUF bytes)" "magic.bin" "$bin" info "$d/magic.bin"
    cp "$model" "$d/negdim.bin"
    patch "$d/negdim.bin" 0 '\377\377\377\377'
    expect_fail "config dim -1" "negdim.bin" "$bin" info "$d/negdim.bin"
    cp "$model" "$d/layers.bin"
    patch "$d/layers.bin" 8 '\000\000\001\000'
    expect_fail "n_layers 65536 (sizes past the end)" "layers.bin" "$bin" info "$d/layers.bin"
    cp "$model" "$d/heads.bin"
    patch "$d/heads.bin" 12 '\007\000\000\000'
    expect_fail "n_heads 7 (does not divide dim)" "heads.bin" "$bin" generate "$d/heads.bin" -n 4
    cp "$model" "$d/huge.bin"
    patch "$d/huge.bin" 0 '\377\377\377\177'
    patch "$d/huge.bin" 4 '\377\377\377\177'
    expect_fail "dim and ffn 2^31-1 (products overflow)" "huge.bin" "$bin" bench "$d/huge.bin"
    expect_fail "missing model folder" "$tmp/no/such/dir" "$bin" info "$tmp/no/such/dir"
    expect_fail "missing model file" "$d/none.bin" "$bin" generate "$d/none.bin"
    expect_fail "tokenizer missing" "$d/none.model" "$bin" generate "$model" --tokenizer "$d/none.model"
    head -c 100 "$(dirname "$model")/tok512.bin" >"$d/tok_trunc.bin"
    expect_fail "truncated tokenizer" "tok_trunc.bin" "$bin" generate "$model" --tokenizer "$d/tok_trunc.bin"
    if [ -n "$text" ]; then
        printf 'Once upon a time \377 there was' >"$d/latin1.txt"
        expect_fail "non-UTF-8 text" "latin1.txt: not UTF-8 text: invalid byte 0xFF at byte offset 17" \
            "$bin" ppl "$model" "$d/latin1.txt"
        printf 'caf\303' >"$d/cut.txt"
        expect_fail "text ending inside a UTF-8 sequence" "offset 3" "$bin" ppl "$model" "$d/cut.txt"
        printf '\355\240\200' >"$d/surrogate.txt"
        expect_fail "UTF-8 surrogate" "surrogate.txt" "$bin" ppl "$model" "$d/surrogate.txt"
        expect_fail "missing text file" "$d/none.txt" "$bin" ppl "$model" "$d/none.txt"
        expect_fail "text is a directory" "$d" "$bin" ppl "$model" "$d"
    fi
fi

hf=$(asset models/stories260K-hf/config.json) || hf=""
if [ -z "$hf" ]; then
    missing "bad input (Hugging Face folder): models/stories260K-hf"
else
    src=$(dirname "$hf")
    mk() { mkdir -p "$tmp/$1" && cp "$src"/* "$tmp/$1/" && chmod -R u+w "$tmp/$1"; }
    expect_ok "hf folder loads" "$bin" info "$src"

    mk hf_neg
    sed 's/"hidden_size": *[0-9]*/"hidden_size": -64/' "$src/config.json" >"$tmp/hf_neg/config.json"
    expect_fail "config hidden_size -64" "hf_neg" "$bin" info "$tmp/hf_neg"
    mk hf_heads
    sed 's/"num_attention_heads": *[0-9]*/"num_attention_heads": 7/' "$src/config.json" >"$tmp/hf_heads/config.json"
    expect_fail "config num_attention_heads 7" "hf_heads" "$bin" info "$tmp/hf_heads"
    mk hf_layers
    sed 's/"num_hidden_layers": *[0-9]*/"num_hidden_layers": 9/' "$src/config.json" >"$tmp/hf_layers/config.json"
    expect_fail "config num_hidden_layers 9 (tensors missing)" "hf_layers" "$bin" info "$tmp/hf_layers"
    mk hf_json
    printf '{"model_type": "llama", "hidden_size": 64,' >"$tmp/hf_json/config.json"
    expect_fail "config.json cut short" "hf_json" "$bin" info "$tmp/hf_json"
    mk hf_arch
    sed 's/LlamaForCausalLM/MambaForCausalLM/; s/"model_type": *"llama"/"model_type": "mamba"/' \
        "$src/config.json" >"$tmp/hf_arch/config.json"
    expect_fail "unsupported architecture" "hf_arch" "$bin" info "$tmp/hf_arch"

    st="$src/model.safetensors"
    mk hf_hdr
    printf '\377\377\377\377\000\000\000\000' | dd of="$tmp/hf_hdr/model.safetensors" bs=1 conv=notrunc 2>/dev/null
    expect_fail "safetensors header length past the end" "hf_hdr" "$bin" info "$tmp/hf_hdr"
    mk hf_magic
    printf 'X' | dd of="$tmp/hf_magic/model.safetensors" bs=1 seek=8 conv=notrunc 2>/dev/null
    expect_fail "safetensors header not JSON (wrong magic)" "hf_magic" "$bin" info "$tmp/hf_magic"
    mk hf_trunc
    head -c $(($(wc -c <"$st") - 100)) "$st" >"$tmp/hf_trunc/model.safetensors"
    expect_fail "safetensors truncated" "hf_trunc" "$bin" info "$tmp/hf_trunc"
    mk hf_missing
    LC_ALL=C sed 's/model\.norm\.weight/model.norm.weighX/' "$st" >"$tmp/hf_missing/model.safetensors"
    expect_fail "tensor model.norm.weight missing" "hf_missing" "$bin" info "$tmp/hf_missing"
    mk hf_shape
    LC_ALL=C sed 's/"shape":\[512,64\]/"shape":[512,65]/' "$st" >"$tmp/hf_shape/model.safetensors"
    if cmp -s "$st" "$tmp/hf_shape/model.safetensors"; then
        bad "safetensors shape edit: pattern not found in the header"
    else
        expect_fail "safetensors shape does not match the data" "hf_shape" "$bin" info "$tmp/hf_shape"
    fi
    # header edits that change its length: rewrite the u64 length in front of the JSON
    hlen=$(od -An -t u8 -N 8 "$st" | tr -d ' ')
    le64() {
        n=$1
        i=0
        while [ $i -lt 8 ]; do
            printf "\\$(printf '%03o' $((n % 256)))"
            n=$((n / 256))
            i=$((i + 1))
        done
    }
    # st_edit DIR SED-EXPRESSION: DIR/model.safetensors = the model with its header edited
    st_edit() {
        mk "$1"
        tail -c +9 "$st" | head -c "$hlen" | LC_ALL=C sed "$2" >"$tmp/hdr.json"
        { le64 "$(wc -c <"$tmp/hdr.json")"; cat "$tmp/hdr.json"; tail -c +$((9 + hlen)) "$st"; } \
            >"$tmp/$1/model.safetensors"
    }
    st_edit hf_same 's/x/x/'
    cmp -s "$st" "$tmp/hf_same/model.safetensors" && ok || bad "st_edit does not rebuild the file"
    st_edit hf_overflow 's/"shape":\[512,64\]/"shape":[4611686018427387904,4611686018427387904]/'
    expect_fail "safetensors shape product overflows" "hf_overflow" "$bin" info "$tmp/hf_overflow"
    st_edit hf_offsets 's/"data_offsets":\[0,131072\]/"data_offsets":[0,99999999999]/'
    expect_fail "safetensors data offsets past the end" "hf_offsets" "$bin" info "$tmp/hf_offsets"
    st_edit hf_dtype 's/"dtype":"F32","shape":\[512,64\]/"dtype":"I32","shape":[512,64]/'
    expect_fail "safetensors unsupported dtype" "hf_dtype" "$bin" info "$tmp/hf_dtype"
    st_edit hf_hdrjson 's/^{/{"oops"/'
    expect_fail "safetensors header JSON broken" "hf_hdrjson" "$bin" info "$tmp/hf_hdrjson"

    mk hf_nofile
    rm "$tmp/hf_nofile/model.safetensors"
    expect_fail "folder without model.safetensors" "hf_nofile" "$bin" info "$tmp/hf_nofile"
fi

# ==== shrink's own types through convert ======================================================

# convert --dtype with a dash spelling; info names the types (stories260K's rows of 64 and 172:
# int4_g128 falls back to int4_g64, ffn_down to int8_ch); an unknown dtype lists the names.
if [ -z "$model" ]; then
    missing "convert --dtype int4-g128: stories260K"
else
    expect_ok "convert --dtype int4-g128" "$bin" convert "$model" "$tmp/own.gguf" --dtype int4-g128
    if expect_ok "info of an int4_g128 GGUF" "$bin" info "$tmp/own.gguf"; then
        grep -q ' int4_g64 ' "$tmp/out" && grep -q ' int8_ch ' "$tmp/out" && ok ||
            bad "info does not name int4_g64 and int8_ch: $(head -c 300 "$tmp/out")"
    fi
    expect_fail "convert --dtype int4_g16 lists the types" "w8a8_static" \
        "$bin" convert "$model" "$tmp/own2.gguf" --dtype int4_g16
    [ ! -e "$tmp/own2.gguf" ] && ok || bad "convert --dtype int4_g16 left a file"
    # a quantized input: passed through byte for byte without --dtype (or with `same`);
    # another dtype needs --allow-requantize, naming the tensor's type and the option
    if expect_ok "convert --dtype q8_0" "$bin" convert "$model" "$tmp/q8.gguf" --dtype q8_0 --no-manifest &&
        expect_ok "convert a q8_0 GGUF --dtype same" "$bin" convert "$tmp/q8.gguf" "$tmp/q8b.gguf" \
            --dtype same --no-manifest; then
        cmp -s "$tmp/q8.gguf" "$tmp/q8b.gguf" && ok || bad "convert of a q8_0 GGUF changed it"
        expect_fail "convert q8_0 -> f16 without --allow-requantize" "q8_0; converting it to f16 would requantize it: add --allow-requantize" \
            "$bin" convert "$tmp/q8.gguf" "$tmp/q8f16.gguf" --dtype f16
        [ ! -e "$tmp/q8f16.gguf" ] && ok || bad "a refused requantization left a file"
        expect_ok "convert q8_0 -> f16 --allow-requantize" "$bin" convert "$tmp/q8.gguf" \
            "$tmp/q8f16.gguf" --dtype f16 --allow-requantize
    fi
fi

# ==== quantize =================================================================================

# footprint FILE: the footprint line on stdout names FILE's size (cli_fmt_bytes: B, or KiB/MiB/GiB
# with 2 decimals, powers of 1024)
footprint() {
    line=$(tail -n 1 "$tmp/out")
    got=$(echo "$line" | awk '{ print $6 }')
    unit=$(echo "$line" | awk '{ sub(/,$/, "", $7); print $7 }')
    size=$(wc -c <"$1")
    awk -v g="$got" -v u="$unit" -v s="$size" 'BEGIN {
            m = u == "B" ? 1 : u == "KiB" ? 1024 : u == "MiB" ? 1048576 : u == "GiB" ? 1073741824 : 0
            d = g - s / m; if (d < 0) d = -d; exit !(m > 0 && d <= 0.0051) }' &&
        echo "$line" | grep -Eq '^[a-z0-9_]+ [0-9.]+ (B|KiB|MiB|GiB) -> [a-zA-Z0-9_]+ [0-9.]+ (B|KiB|MiB|GiB), [0-9.]+x (smaller|larger), [0-9.]+ bits/weight$' &&
        ok || bad "quantize footprint '$line' vs $1 of $size bytes"
}

qdir="$tmp/quant"
mkdir -p "$qdir"
if [ -z "$model" ] || [ -z "$text" ]; then
    missing "quantize: stories260K or ppl_text.txt"
else
    head -c 2000 "$text" >"$qdir/prefix.txt"
    pplq() { "$bin" ppl "$1" "$qdir/prefix.txt" --ctx 128 --stride 128 --threads 1 --json; }
    expect_ok "ppl of stories260K f32 (baseline)" pplq "$model"
    base=$(json_num ppl)
    [ -n "$base" ] || base=0
    for s in q8_0 q4_K_M q4_0 q6_K int8_ch int8_t int4_g128 int4_g32_asym nf4 nf4_dq w8a8; do
        if expect_ok "quantize stories260K $s" "$bin" quantize "$model" "$qdir/$s.gguf" --scheme "$s"; then
            footprint "$qdir/$s.gguf"
            expect_ok "info of quantized $s" "$bin" info "$qdir/$s.gguf"
            if expect_ok "ppl of quantized $s" pplq "$qdir/$s.gguf"; then
                # 8-bit within 2% of f32, 4-bit within 25% (stories260K is tiny: 64-wide rows)
                case $s in q8_0|q6_K|int8*|w8a8*) lim=1.02 ;; *) lim=1.25 ;; esac
                awk -v q="$(json_num ppl)" -v b="$base" -v l="$lim" 'BEGIN { exit !(q > 0 && q < b * l) }' &&
                    ok || bad "quantize $s: ppl $(json_num ppl), f32 $base (limit x$lim)"
            fi
        fi
    done
    if expect_ok "quantize w8a8_static --calib" "$bin" quantize "$model" "$qdir/static.gguf" \
        --scheme w8a8_static --calib "$text" --calib-tokens 512 --json; then
        json_has "quantize w8a8_static --json" calib_tokens
        [ "$(json_num calib_tokens)" = 512 ] && ok || bad "w8a8_static: calib_tokens $(json_num calib_tokens)"
        expect_ok "ppl of w8a8_static" pplq "$qdir/static.gguf"
    fi
    if expect_ok "quantize --keep" "$bin" quantize "$model" "$qdir/keep.gguf" --scheme q4_0 \
        --keep 'blk.*.attn_v.*,token_embd.weight' --verbose; then
        grep -Eq '^blk\.3\.attn_v\.weight +32 x 64 +f16 .*\(kept\)' "$tmp/out" &&
            grep -Eq '^blk\.3\.attn_q\.weight +64 x 64 +q4_0 ' "$tmp/out" &&
            grep -Eq '^token_embd\.weight .* f16 ' "$tmp/out" && ok ||
            bad "quantize --keep: table $(head -c 300 "$tmp/out")"
    fi
    if expect_ok "quantize --json --verbose" "$bin" quantize "$model" "$qdir/j.gguf" --scheme q5_1 \
        --json --verbose --progress; then
        json_has "quantize --json" input output scheme in_dtype in_file_bytes out_file_bytes \
            tensor_bytes n_params bits_per_weight ratio n_tensors n_fallback requantized seconds \
            peak_rss_bytes tensors rel_rms
        [ "$(json_num out_file_bytes)" = "$(wc -c <"$qdir/j.gguf" | tr -d ' ')" ] && ok ||
            bad "quantize --json: out_file_bytes $(json_num out_file_bytes) != file size"
        awk -v b="$(json_num bits_per_weight)" -v t="$(json_num tensor_bytes)" -v n="$(json_num n_params)" \
            'BEGIN { d = b - 8 * t / n; if (d < 0) d = -d; exit !(d < 1e-9) }' && ok ||
            bad "quantize --json: bits_per_weight != 8 tensor_bytes / n_params"
        grep -q "quantize MiB" "$tmp/err" && ok || bad "quantize --progress: no progress on stderr"
    fi
    # a quantized GGUF in: refused without --allow-requantize (as llama-quantize), else
    # dequantized, quantized again, with a warning
    expect_fail "requantize without --allow-requantize" "--allow-requantize" \
        "$bin" quantize "$qdir/q4_K_M.gguf" "$qdir/re.gguf" --scheme q8_0
    [ ! -e "$qdir/re.gguf" ] && ok || bad "requantize refused but $qdir/re.gguf written"
    if expect_ok "requantize a GGUF" "$bin" quantize "$qdir/q4_K_M.gguf" "$qdir/re.gguf" --scheme q8_0 \
        --allow-requantize; then
        grep -q "quantized again" "$tmp/err" && ok || bad "requantize: no warning"
        footprint "$qdir/re.gguf"
    fi

    # bad input: a non-zero exit, the problem named, and no output file
    expect_fail "quantize: unknown scheme lists the schemes" "q4_K_M" \
        "$bin" quantize "$model" "$qdir/bad1.gguf" --scheme q3_K_XL
    expect_fail "quantize: w8a8_static without --calib" "--calib" \
        "$bin" quantize "$model" "$qdir/bad2.gguf" --scheme w8a8_static
    expect_fail "quantize: missing input" "$qdir/none.bin" \
        "$bin" quantize "$qdir/none.bin" "$qdir/bad3.gguf" --scheme q8_0
    head -c 100000 "$model" >"$qdir/trunc.bin"
    expect_fail "quantize: truncated input" "trunc.bin" \
        "$bin" quantize "$qdir/trunc.bin" "$qdir/bad4.gguf" --scheme q8_0
    cp "$qdir/q8_0.gguf" "$qdir/same.gguf"
    expect_fail "quantize: OUT is IN" "is the input" \
        "$bin" quantize "$qdir/same.gguf" "$qdir/same.gguf" --scheme q4_0
    cmp -s "$qdir/q8_0.gguf" "$qdir/same.gguf" && ok || bad "quantize OUT=IN changed the input"
    expect_fail "quantize: missing calibration text" "$qdir/none.txt" \
        "$bin" quantize "$model" "$qdir/bad5.gguf" --scheme w8a8_static --calib "$qdir/none.txt"
    run "$bin" quantize "$model" "$qdir/bad6.gguf"
    [ $rc -eq 2 ] && ok || bad "quantize without --scheme: exit $rc (want 2)"
    for f in bad1 bad2 bad3 bad4 bad5 bad6; do
        [ ! -e "$qdir/$f.gguf" ] && ok || bad "quantize left $qdir/$f.gguf behind"
    done
    [ -z "$(ls -A "$qdir" | grep '^\.')" ] && ok || bad "quantize left temporaries: $(ls -A "$qdir" | grep '^\.')"
fi

m14=$(asset models/mix-llama-14m/config.json) || m14=""
if [ -z "$m14" ]; then
    missing "quantize mix-llama-14m: model"
elif [ -n "${ASAN_OPTIONS:-}${UBSAN_OPTIONS:-}" ]; then
    skipped "quantize mix-llama-14m: only in the run without sanitizers"
else
    m14=$(dirname "$m14")
    for s in q4_K_M q5_K_M q8_0 int4_g128; do
        if expect_ok "quantize mix-llama-14m $s" "$bin" quantize "$m14" "$qdir/m14-$s.gguf" --scheme "$s" --threads 2; then
            footprint "$qdir/m14-$s.gguf"
            expect_ok "info mix-llama-14m $s" "$bin" info "$qdir/m14-$s.gguf" --json &&
                json_has "info of quantized mix-llama-14m $s" tensors
        fi
    done
    [ -f "$qdir/m14-q4_K_M.gguf" ] && head -c 4000 "$(asset data/corpus/test.txt || echo "$text")" >"$qdir/p14.txt" &&
        expect_ok "ppl of mix-llama-14m q4_K_M" "$bin" ppl "$qdir/m14-q4_K_M.gguf" "$qdir/p14.txt" --ctx 256
fi

# ==== prune ====================================================================================

pdir="$tmp/prune"
mkdir -p "$pdir"
if [ -z "$model" ] || [ -z "$text" ]; then
    missing "prune: stories260K or ppl_text.txt"
else
    if expect_ok "prune magnitude --json" "$bin" prune "$model" "$pdir/mag.gguf" --method magnitude \
        --sparsity 0.5 --json; then
        json_has "prune --json" input output method pattern sparsity n_pruned_params n_zero \
            n_params n_tensors n_pruned in_file_bytes out_file_bytes tensor_bytes calib_tokens \
            seconds peak_rss_bytes tensors rel_err
        jcheck 'N(1) >= 0.49 && N(1) <= 0.5 && N(2) / N(3) - N(1) < 1e-9 && N(1) - N(2) / N(3) < 1e-9 && N(4) == 0.5' \
            sparsity n_zero n_pruned_params tensors.2.sparsity && ok ||
            bad "prune magnitude 0.5: sparsity / n_zero / tensors.2.pruned: $(head -c 300 "$tmp/out")"
        [ "$(json_num out_file_bytes)" = "$(wc -c <"$pdir/mag.gguf")" ] && ok ||
            bad "prune --json: out_file_bytes != file size"
        head -c 3000 "$text" >"$pdir/prefix.txt"
        expect_ok "ppl of a pruned model" "$bin" ppl "$pdir/mag.gguf" "$pdir/prefix.txt" --ctx 64
    fi
    if expect_ok "prune wanda 2:4 --calib --progress" "$bin" prune "$model" "$pdir/w24.gguf" \
        --method wanda --pattern 2:4 --calib "$text" --calib-tokens 256 --progress; then
        grep -q "calibrated layers" "$tmp/err" && ok || bad "prune --progress: no calibration progress"
        grep -q "^wanda: 50.00% of" "$tmp/out" && ok || bad "prune 2:4 line: $(cat "$tmp/out")"
    fi
    expect_ok "prune sparsegpt --verbose" "$bin" prune "$model" "$pdir/sg.gguf" --method sparsegpt \
        --sparsity 0.3 --calib "$text" --calib-tokens 128 --verbose --keep 'blk.0.*' --dtype f16
    grep -q "blk.0.attn_q.weight .* (kept)" "$tmp/out" && ok || bad "prune --keep: blk.0 not kept"
    expect_fail "prune: sparsity 1.5" "outside [0, 1)" \
        "$bin" prune "$model" "$pdir/bad1.gguf" --method magnitude --sparsity 1.5
    expect_fail "prune: 4:8 on 172 inputs" "does not divide" \
        "$bin" prune "$model" "$pdir/bad2.gguf" --method magnitude --pattern 4:8
    expect_fail "prune: short calibration text" "were asked" \
        "$bin" prune "$model" "$pdir/bad3.gguf" --method wanda --sparsity 0.5 --calib "$text" \
        --calib-tokens 10000000
    ltok=$(asset models/tokenizers/llama2/tokenizer.model) || ltok=""
    if [ -n "$ltok" ]; then
        expect_fail "prune: calibration tokenizer of another vocabulary" "32000 tokens" \
            "$bin" prune "$model" "$pdir/bad7.gguf" --method wanda --sparsity 0.5 \
            --calib "$text" --tokenizer "$ltok"
    else
        missing "prune: models/tokenizers/llama2/tokenizer.model"
    fi
    expect_fail "prune: wanda without --calib" "--calib" \
        "$bin" prune "$model" "$pdir/bad4.gguf" --method wanda --sparsity 0.5
    expect_fail "prune: OUT is IN" "is the input" \
        "$bin" prune "$pdir/mag.gguf" "$pdir/mag.gguf" --method magnitude --sparsity 0.5
    run "$bin" prune "$model" "$pdir/bad5.gguf" --method magnitude --pattern two:four
    [ $rc -eq 2 ] && ok || bad "prune --pattern two:four: exit $rc (want 2)"
    run "$bin" prune "$model" "$pdir/bad6.gguf" --sparsity 0.5
    [ $rc -eq 2 ] && ok || bad "prune without --method: exit $rc (want 2)"
    for f in bad1 bad2 bad3 bad4 bad5 bad6 bad7; do
        [ ! -e "$pdir/$f.gguf" ] && ok || bad "prune left $pdir/$f.gguf behind"
    done
    [ -z "$(ls -A "$pdir" | grep '^\.')" ] && ok || bad "prune left temporaries: $(ls -A "$pdir" | grep '^\.')"
fi

sh_finish test_cli
