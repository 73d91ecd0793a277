#!/bin/sh
# test_eval_cli.sh - end-to-end tests of `shrink eval` (POSIX sh; run from the repository root
# by tests/run_all.sh with the path of the binary):
#
#   sh tests/test_eval_cli.sh build/shrink
#
# Covers: --help; the markdown table of two models side by side (base first, "±"); --json
# (one object, keys, per-item results equal to the library's, checked against the float64
# fixture tests/fixtures/eval/ref_stories260K.json with python3 when it is installed);
# --make-lambada / --make-choice: the same seed gives the same bytes, the fixture task files
# are their first items; the generate task with --stop; bad input: malformed JSONL (line and
# field named), a label outside the choices, an empty context, a missing file, an unknown task,
# models with different tokenizers side by side, truncation reported: a message on stderr,
# nothing on stdout, exit 1 (2 for usage errors), no crash.
# Needs models/stories260K (in the repository); the parts with ../shared are skipped without.
# Ends with "test_eval_cli: N passed, N failed, N skipped"; exit 1 on any failure.
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-eval-cli.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM

# The JSON reader (tests/json_get.c), built by `make check` beside the tests of this build.
jget=$(dirname "$bin")/tests/json_get

# expect_fail DESC CODE WANT CMD...: exit CODE, stdout empty, stderr contains WANT.
expect_fail() {
    desc=$1
    code=$2
    want=$3
    shift 3
    run "$@"
    sanitized "$desc" || return 1
    if [ $rc -ne "$code" ]; then bad "$desc: exit $rc (want $code): $(head -c 300 "$tmp/err")"; return 1; fi
    if [ -s "$tmp/out" ]; then bad "$desc: stdout not empty: $(head -c 200 "$tmp/out")"; return 1; fi
    if ! grep -qF -- "$want" "$tmp/err"; then
        bad "$desc: stderr does not mention '$want': $(head -c 400 "$tmp/err")"
        return 1
    fi
    ok
}

if [ ! -x "$bin" ]; then
    echo "test_eval_cli: $bin is not an executable; build it with make"
    exit 1
fi

s260=$(asset models/stories260K/stories260K.bin) || { echo "test_eval_cli: no stories260K"; exit 1; }
fx=tests/fixtures/eval
[ -x "$jget" ] || { echo "test_eval_cli: $jget not found; build it with make check"; exit 1; }

# ==== help, usage ============================================================================
expect_ok "eval --help" "$bin" eval --help
grep -q -- "--make-lambada" "$tmp/out" && ok || bad "eval --help does not list --make-lambada"
expect_fail "no --task" 2 "missing --task" "$bin" eval "$s260" --data $fx/lambada.jsonl
expect_fail "no --data" 2 "missing --data" "$bin" eval "$s260" --task lambada
expect_fail "unknown task" 2 "unknown task 'mmlu'" "$bin" eval "$s260" --task mmlu --data $fx/lambada.jsonl
expect_fail "make without OUT" 2 "missing arguments" "$bin" eval --make-lambada $fx/lambada.jsonl

# ==== side by side, markdown and JSON ========================================================
expect_ok "lambada, two models" "$bin" eval "$s260" "$s260" --task lambada --data $fx/lambada.jsonl
head -n 1 "$tmp/out" | grep -q '^| model | acc % |' && ok || bad "lambada table header: $(head -n 1 "$tmp/out")"
[ "$(grep -c '^| stories260K.bin' "$tmp/out")" -eq 2 ] && ok || bad "two rows wanted"
grep -q '^| stories260K.bin (base) | 41.67 ± 10.28 |' "$tmp/out" && ok ||
    bad "lambada base row (acc 10/24 of the float64 fixture, se sqrt(p(1-p)/23)): $(sed -n 3p "$tmp/out")"

expect_ok "choice --json" "$bin" eval "$s260" --task choice --data $fx/choice.jsonl --json
if [ "$(wc -l <"$tmp/out")" -eq 1 ] && grep -q '"acc_norm":' "$tmp/out" && grep -q '"per_item":' "$tmp/out"; then ok
else bad "choice --json: $(head -c 300 "$tmp/out")"; fi
# --json against the float64 fixture: accuracies, and per item the prediction and the
# log-likelihood of the labelled ending (within 1e-5 + 1e-6 |ref|, docs/eval.md)
jv() { "$jget" "$1" "$2" 2>/dev/null; }
if [ "$(jv "$tmp/out" models.0.acc)" = "$(jv $fx/ref_stories260K.json choice.acc)" ] &&
   [ "$(jv "$tmp/out" models.0.acc_norm)" = "$(jv $fx/ref_stories260K.json choice.acc_norm)" ]; then ok
else bad "choice --json accuracies differ from the float64 fixture"; fi
n=$(jv "$tmp/out" models.0.per_item.#)
[ -n "$n" ] && [ "$n" -eq "$(grep -c . $fx/choice.jsonl)" ] && ok || bad "choice --json: $n items"
i=0; worst=ok
while [ -n "$n" ] && [ $i -lt "$n" ]; do
    sed -n "$((i + 1))p" $fx/choice.jsonl >"$tmp/item.json"
    label=$(jv "$tmp/item.json" label)
    a=$(jv "$tmp/out" models.0.per_item.$i.loglik); r=$(jv $fx/ref_stories260K.json choice.items.$i.loglik.$label)
    pa=$(jv "$tmp/out" models.0.per_item.$i.pred); pr=$(jv $fx/ref_stories260K.json choice.items.$i.pred)
    awk -v a="$a" -v r="$r" 'BEGIN { d = a - r; if (d < 0) d = -d; m = r < 0 ? -r : r;
        exit !(a != "" && r != "" && d <= 1e-5 + 1e-6 * m) }' && [ -n "$pa" ] && [ "$pa" = "$pr" ] ||
        worst="item $i: loglik $a vs $r, pred $pa vs $pr"
    i=$((i + 1))
done
[ "$worst" = ok ] && ok || bad "choice --json disagrees with the float64 fixture: $worst"

expect_ok "generate --stop" "$bin" eval "$s260" --task generate --data $fx/generate.jsonl --max-new 8 --stop . --json
grep -q '"generation":"Max"' "$tmp/out" && grep -q '"exact_match":0.125' "$tmp/out" && ok ||
    bad "generate: $(head -c 400 "$tmp/out")"

# ==== --make-lambada / --make-choice ==========================================================
corpus=$(asset data/corpus/tinystories_val_subset.txt) || corpus=
if [ -n "$corpus" ]; then
    expect_ok "make-lambada" "$bin" eval --make-lambada "$corpus" "$tmp/l1.jsonl" --seed 7
    expect_ok "make-lambada again" "$bin" eval --make-lambada "$corpus" "$tmp/l2.jsonl" --seed 7 --json
    grep -q '"items":' "$tmp/out" && ok || bad "make --json: $(cat "$tmp/out")"
    cmp -s "$tmp/l1.jsonl" "$tmp/l2.jsonl" && ok || bad "--make-lambada is not deterministic"
    head -n 24 "$tmp/l1.jsonl" | cmp -s - $fx/lambada.jsonl && ok || bad "fixture lambada.jsonl is not the first 24 items"
    expect_ok "make-choice" "$bin" eval --make-choice "$corpus" "$tmp/c1.jsonl" --seed 7 --limit 16
    cmp -s "$tmp/c1.jsonl" $fx/choice.jsonl && ok || bad "--make-choice --limit 16 --seed 7 differs from the fixture"
else
    missing "data/corpus/tinystories_val_subset.txt (--make-* determinism)"
fi
printf 'no sentence at all\n' >"$tmp/none.txt"
expect_fail "make from a text without items" 1 "none.txt" "$bin" eval --make-lambada "$tmp/none.txt" "$tmp/x.jsonl"
[ ! -e "$tmp/x.jsonl" ] && ok || bad "a failed --make-lambada left its output"

# ==== bad input ===============================================================================
printf '{"context": "a", "choices": [" b", " c"], "label": 0}\n{"context": "a", "choices": [" b"\n' >"$tmp/bad1.jsonl"
expect_fail "malformed JSONL" 1 "bad1.jsonl:2" "$bin" eval "$s260" --task choice --data "$tmp/bad1.jsonl"
printf '{"context": "a", "choices": [" b", " c"], "label": 5}\n' >"$tmp/bad2.jsonl"
expect_fail "label outside" 1 'bad2.jsonl:1: field "label" is 5' "$bin" eval "$s260" --task choice --data "$tmp/bad2.jsonl"
printf '{"context": "", "choices": [" b", " c"], "label": 0}\n' >"$tmp/bad3.jsonl"
expect_fail "empty context" 1 'bad3.jsonl:1: field "context" is empty' "$bin" eval "$s260" --task choice --data "$tmp/bad3.jsonl"
expect_fail "lambada file as choice" 1 'missing field "context"' "$bin" eval "$s260" --task choice --data $fx/lambada.jsonl
expect_fail "missing data file" 1 "nope.jsonl" "$bin" eval "$s260" --task lambada --data "$tmp/nope.jsonl"
expect_fail "missing model" 1 "no-model.bin" "$bin" eval "$tmp/no-model.bin" --task lambada --data $fx/lambada.jsonl
expect_fail "ctx too large" 1 "--ctx 100000" "$bin" eval "$s260" --task lambada --data $fx/lambada.jsonl --ctx 100000
run "$bin" eval "$s260" --task lambada --data $fx/lambada.jsonl --ctx 24
sanitized "truncation" && { [ $rc -eq 0 ] && grep -q "items were truncated from the left" "$tmp/err" && ok ||
    bad "truncation not reported: exit $rc, $(head -c 300 "$tmp/err")"; }
mix=$(asset models/mix-llama-14m) || mix=
if [ -n "$mix" ]; then
    expect_fail "tokenizer mismatch" 1 "tokenizes" "$bin" eval "$s260" "$mix" --task lambada --data $fx/lambada.jsonl --limit 2
else
    missing "models/mix-llama-14m (tokenizer mismatch)"
fi

sh_finish test_eval_cli
