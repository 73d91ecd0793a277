#!/bin/sh
# test_recipe_try.sh - recipe steps that search (issue 19): `try` lines (alternatives, the
# smallest model passing the gates kept), the `plan` step, `shrink plan --recipe`, and
# `shrink recipe run --shard I/N` joined by `shrink merge-results` (issue 20, point 3). POSIX
# sh, run from the repository root by tests/run_all.sh with the binary:
#
#   sh tests/test_recipe_try.sh build/shrink
#
# References, each independent of the runner's choice: every alternative's KL re-measured by
# its own `shrink compare` and its size by `wc -c` (the kept one must be the smallest that
# passes, computed here in awk); the shards' join against the unsharded run's sweep.json (cmp);
# a run killed (SIGKILL) after an alternative and resumed against the uninterrupted run (cmp of
# every model); the recipe printed by `shrink plan --recipe`, run by `shrink recipe run`,
# against `shrink plan --to` of the same options (every tensor's type, from `shrink info`).
# Bad input: no alternative passing, a try of a step that writes no model, --shard without a
# try step or out of range, a shard missing, twice, or of another recipe, a plan budget below
# the smallest possible file: a clear message, exit 1 or 2.
# Everything runs on the repository's stories260K in a few seconds.
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-rtry.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM
finish() { sh_finish test_recipe_try; }

model=models/stories260K/stories260K.bin
text=tests/fixtures/fixtures/stories260K/ppl_text.txt
for f in "$model" "$text"; do
    [ -f "$f" ] || { bad "$f missing (part of the repository)"; finish; }
done
export SOURCE_DATE_EPOCH=1700000000
R=$tmp/try.recipe
cat >"$R" <<EOF
input  $model
text   $text
tokens 128

try quantize scheme=q4_0
try quantize scheme=q8_0
try quantize scheme=q5_0
try plan calib=$text calib-tokens=64 types=q4_0,q8_0,f16 bytes=290000
gate kl < 0.05
step compare no-speed
EOF
alts="alt-1-quantize alt-2-quantize alt-3-quantize alt-4-plan"

# ---- a whole run: every alternative measured, the smallest passing kept --------------------------
if expect_ok "try run" "$bin" recipe run "$R" "$tmp/ra" --threads 1 --json; then
    mv "$tmp/ra" "$tmp/ref"   # the kill-and-resume run below writes into $tmp/ra again (the same
    ra=$tmp/ref               # paths: the manifests name them)
    grep -q '"status":"done"' "$tmp/out" && ok || bad "status not done: $(head -c 300 "$tmp/out")"
    # the choice recomputed: each alternative's KL by an independent compare, its size by wc -c
    : >"$tmp/table"
    j=0
    for a in $alts; do
        j=$((j + 1))
        m=$ra/step-1-try/$a/model.gguf
        [ -s "$m" ] || { bad "no $a/model.gguf"; continue; }
        "$bin" compare "$model" "$m" --text "$text" --tokens 128 --no-speed --json --threads 1 \
            >"$tmp/c.json" 2>/dev/null
        kl=$(sed 's/.*"is_base":false//' "$tmp/c.json" | grep -o '"kl_mean":[-0-9.e+]*' | head -1 |
             sed 's/.*://')
        echo "$j $(wc -c <"$m") $kl" >>"$tmp/table"
    done
    want=$(awk '$3 < 0.05 && (best == "" || $2 < bb) { best = $1; bb = $2 } END { print best }' \
           "$tmp/table")
    got=$(grep -o '"chosen":[0-9]*' "$ra/step-1-try/step.json" | sed 's/.*://')
    kept=$got
    [ -n "$want" ] && [ "$want" = "$got" ] && ok ||
        bad "kept alternative $got, the smallest passing is $want: $(cat "$tmp/table")"
    # not trivially the first or the smallest: a smaller one failed (q4_0), a passing larger one
    # was not kept
    awk '$1 == 1 && $3 >= 0.05 { f = 1 } END { exit !f }' "$tmp/table" && ok ||
        bad "the test wants alternative 1 to fail its gate: $(cat "$tmp/table")"
    grep -q "\"chosen\":$got" "$ra/step-1-try/sweep.json" && ok || bad "sweep.json: chosen"
    [ "$(grep -c '^{"alt":' "$ra/step-1-try/sweep.json")" -eq 4 ] && ok || bad "sweep.json: not 4 records"
    grep -q "^| $want (kept) |" "$tmp/err" && ok || bad "the run's table does not mark the kept one"
    # the compare step holds the input and every alternative: 5 models
    [ "$(grep -o '"is_base":' "$ra/step-2-compare/compare.json" | wc -l)" -eq 5 ] && ok ||
        bad "compare step: not the input and 4 alternatives"
    # the kept model's manifest: its own command, the recipe an input
    "$bin" info "$ra/step-1-try/alt-${want}-"*/model.gguf >"$tmp/info" 2>&1
    grep -q '^input: *RECIPE .*try.recipe' "$tmp/info" && ok || bad "recipe not an input of the kept model"
    "$bin" verify "$ra/step-1-try/alt-${want}-"*/model.gguf >/dev/null 2>&1 && ok ||
        bad "shrink verify of the kept model"
fi

# ---- resume after kill -9 between two alternatives: the same bytes ------------------------------
ra=$tmp/ref
rm -rf "$tmp/ra"
SHRINK_RECIPE_KILL=1:alt2 "$bin" recipe run "$R" "$tmp/ra" --threads 1 >/dev/null 2>&1
rc=$?
[ $rc -eq 137 ] && ok || bad "kill after alternative 2: exit $rc, not 137"
[ -e "$tmp/ra/step-1-try/alt-3-quantize" ] && bad "kill after alternative 2: alternative 3 ran" || ok
if expect_ok "resume inside a try step" "$bin" recipe run "$R" "$tmp/ra" --resume; then
    [ "$(grep -c 'done before, kept' "$tmp/err")" -eq 2 ] && ok || bad "resume did not keep alternatives 1 and 2"
    for a in $alts; do
        cmp -s "$tmp/ra/step-1-try/$a/model.gguf" "$ra/step-1-try/$a/model.gguf" 2>/dev/null ||
            { bad "resume: $a/model.gguf differs"; continue; }
        ok
    done
    cmp -s "$tmp/ra/step-1-try/sweep.json" "$ra/step-1-try/sweep.json" && ok || bad "resume: sweep.json differs"
fi
if expect_ok "resume of a finished run" "$bin" recipe run "$R" "$tmp/ra" --resume; then
    grep -q 'step-1-try done before, kept' "$tmp/err" && ok || bad "finished try step not kept"
fi

# ---- shards: merge-results of the shards = the unsharded sweep (OUT paths of equal length: the
# manifests name them, and so the files' sizes depend on their length) ---------------------------
for n in 2 3; do
    files=""
    i=0
    while [ $i -lt $n ]; do
        if expect_ok "--shard $i/$n" "$bin" recipe run "$R" "$tmp/s$i" --threads 1 --shard $i/$n; then
            cp "$tmp/out" "$tmp/sh$i-$n.json"
            [ -e "$tmp/s$i/step-2-compare" ] && bad "shard $i/$n ran the step after the try" || ok
        fi
        files="$tmp/sh$i-$n.json $files"
        rm -rf "$tmp/s$i"
        i=$((i + 1))
    done
    # shellcheck disable=SC2086
    if expect_ok "merge-results of $n shards" "$bin" merge-results $files --json; then
        sed 's/"recipe":"[^"]*",//' "$tmp/out" >"$tmp/m.json"
        sed 's/"recipe":"[^"]*",//' "$ra/step-1-try/sweep.json" | cmp -s - "$tmp/m.json" && ok ||
            bad "$n shards joined differ from the unsharded sweep: $(diff "$tmp/m.json" "$ra/step-1-try/sweep.json" | head -4)"
    fi
done
# shellcheck disable=SC2086
expect_ok "merge-results text" "$bin" merge-results $files &&
    { grep -q "^kept: alternative ${got:-none}," "$tmp/out" && ok || bad "merge text: $(cat "$tmp/out")"; }
grep -q '"shard":1,"shards":3,"n_alternatives":4' "$tmp/sh1-3.json" && ok ||
    bad "a shard's JSON does not say which share it holds"
[ "$(grep -c '^{"alt":' "$tmp/sh1-3.json")" -eq 1 ] && ok || bad "shard 1/3 holds not 1 alternative"
expect_fail "a shard missing" "shard 2 of 3 not given" \
    "$bin" merge-results "$tmp/sh0-3.json" "$tmp/sh1-3.json"
expect_fail "a shard twice" "given twice" \
    "$bin" merge-results "$tmp/sh0-3.json" "$tmp/sh1-3.json" "$tmp/sh1-3.json" "$tmp/sh2-3.json"
expect_fail "shards of two splits" "another split" \
    "$bin" merge-results "$tmp/sh0-3.json" "$tmp/sh1-2.json"
sed 's/"recipe_sha256":"./"recipe_sha256":"x/' "$tmp/sh1-2.json" >"$tmp/other.json"
expect_fail "a shard of another recipe" "another recipe" \
    "$bin" merge-results "$tmp/sh0-2.json" "$tmp/other.json"
# hostile shard files: no crash (exit < 128), and a record without its verdicts is not kept
for cut in 's/"pass":[a-z]*,*//g' 's/"gates":.*$/}/' 's/^{"alt":\([0-9]\)/{"alt":9\1/'; do
    sed "$cut" "$tmp/sh0-2.json" >"$tmp/hostile.json"
    "$bin" merge-results "$tmp/hostile.json" "$tmp/sh1-2.json" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ $rc -lt 128 ] && sanitized "merge of a hostile shard ($cut)" && ok || bad "merge of a hostile shard ($cut): exit $rc"
done
for s in 2/2 x -1/2; do
    expect_fail "--shard $s" "--shard '$s'" "$bin" recipe run "$R" "$tmp/sx" --shard "$s"
done
printf 'input %s\nstep quantize scheme=q8_0\n' "$model" >"$tmp/plain.recipe"
expect_fail "--shard without a try step" "has none" \
    "$bin" recipe run "$tmp/plain.recipe" "$tmp/sx" --shard 0/2
[ -e "$tmp/sx" ] && bad "refused --shard created OUT" || ok

# a shard's OUT finished unsharded with --resume: its alternatives kept, the others run, the
# same bytes as one run
rm -rf "$tmp/ra"
"$bin" recipe run "$R" "$tmp/ra" --threads 1 --shard 0/2 >/dev/null 2>&1
if expect_ok "resume a shard's OUT unsharded" "$bin" recipe run "$R" "$tmp/ra" --resume; then
    [ "$(grep -c 'done before, kept' "$tmp/err")" -eq 2 ] && ok || bad "the shard's 2 alternatives not kept"
    for a in $alts; do
        cmp -s "$tmp/ra/step-1-try/$a/model.gguf" "$ra/step-1-try/$a/model.gguf" 2>/dev/null && ok ||
            bad "shard then resume: $a/model.gguf differs"
    done
    cmp -s "$tmp/ra/step-1-try/sweep.json" "$ra/step-1-try/sweep.json" && ok || bad "shard then resume: sweep.json differs"
fi

# ---- no alternative passes: the run stops, every alternative's measure kept -----------------------
printf 'input %s\ntext %s\ntokens 64\ntry quantize scheme=q4_0\ntry quantize scheme=q4_1\ngate kl < 1e-9\nstep convert\n' \
    "$model" "$text" >"$tmp/none.recipe"
expect_fail "no alternative passes" "no alternative of step 1 passed every gate" \
    "$bin" recipe run "$tmp/none.recipe" "$tmp/none" --threads 1
[ -s "$tmp/none/step-1-try/sweep.json" ] && grep -q '"chosen":null' "$tmp/none/step-1-try/sweep.json" &&
    ok || bad "no sweep.json with chosen null"
[ -e "$tmp/none/step-1-try/step.json" ] || [ -e "$tmp/none/step-2-convert" ] &&
    bad "a failed try step recorded or the next step ran" || ok

# ---- bad try and plan steps ----------------------------------------------------------------------
printf 'input %s\ntry lora steps=2\n' "$model" >"$tmp/bad.recipe"
expect_fail "try of a step without a model" "bad.recipe:2:5: try lora: an alternative must write a model" \
    "$bin" recipe run "$tmp/bad.recipe" "$tmp/bo"
printf 'input %s\ntry quantize sheme=q4_0\n' "$model" >"$tmp/bad.recipe"
expect_fail "unknown option of an alternative" "bad.recipe:2:14: quantize has no option 'sheme'; did you mean scheme?" \
    "$bin" recipe run "$tmp/bad.recipe" "$tmp/bo"
printf 'input %s\nstep plan calib=%s calib-tokens=64 bytes=1000 to=x.gguf\n' "$model" "$text" >"$tmp/bad.recipe"
expect_fail "plan step with its output" "option 'to' is set by the recipe run" \
    "$bin" recipe run "$tmp/bad.recipe" "$tmp/bo"
[ -e "$tmp/bo" ] && bad "a bad recipe created OUT" || ok
printf 'input %s\nstep plan calib=%s calib-tokens=64 bytes=1000\n' "$model" "$text" >"$tmp/small.recipe"
expect_fail "a budget below the smallest file" "smallest" \
    "$bin" recipe run "$tmp/small.recipe" "$tmp/small" --threads 1
[ -e "$tmp/small/step-1-plan/step.json" ] || [ -e "$tmp/small/step-1-plan/model.gguf" ] &&
    bad "a refused plan step left a model or a record" || ok

# ---- shrink plan --recipe: the printed recipe runs and writes the plan's types ------------------
popts="--calib $text --calib-tokens 64 --types q4_0,q5_0,q8_0,f16 --bytes 290000 --threads 1"
# shellcheck disable=SC2086
if expect_ok "plan --recipe" "$bin" plan "$model" $popts --recipe; then
    cp "$tmp/out" "$tmp/plan.recipe"
    grep -q '^step plan calib=.* assign=token_embd.weight=' "$tmp/plan.recipe" && ok || bad "plan recipe: $(cat "$tmp/plan.recipe")"
    if expect_ok "the plan's recipe runs" "$bin" recipe run "$tmp/plan.recipe" "$tmp/pr" --threads 1; then
        # shellcheck disable=SC2086
        "$bin" plan "$model" $popts --to "$tmp/direct.gguf" >/dev/null 2>&1
        types() { "$bin" info "$1" | awk '/^name /{f=1; next} f && NF {print $1, $(NF-2)}'; }
        types "$tmp/direct.gguf" >"$tmp/t1"
        types "$tmp/pr/step-1-plan/model.gguf" >"$tmp/t2"
        [ -s "$tmp/t1" ] && cmp -s "$tmp/t1" "$tmp/t2" && ok ||
            bad "the recipe's plan has other types than plan --to: $(diff "$tmp/t1" "$tmp/t2" | head -4)"
        # the types it printed in comments are the file's
        grep '^#   [^ ]*\.weight ' "$tmp/plan.recipe" | awk '{print $2, $3}' | sort >"$tmp/t3"
        grep -v ' f32$' "$tmp/t2" | sort | cmp -s - "$tmp/t3" && ok || bad "the recipe's comments are not the file's types"
    fi
fi

# --assign: each matrix once, each type a candidate
expect_fail "--assign without a matrix" "gives no type for 'blk.4.ffn_down.weight'" \
    "$bin" plan "$model" --calib "$text" --calib-tokens 64 --threads 1 \
    --assign "$(grep -o 'assign=[^ ]*' "$tmp/plan.recipe" | sed 's/^assign=//; s/,blk.4.ffn_down.weight=[^,]*//')"
expect_fail "--assign of a type the rows refuse" "q4_K is not a candidate" \
    "$bin" plan "$model" --calib "$text" --calib-tokens 64 --threads 1 --assign token_embd.weight=q4_K
expect_fail "--assign and a budget" "not both" \
    "$bin" plan "$model" --calib "$text" --bytes 300000 --assign token_embd.weight=q8_0

# ---- gates on every metric the issue names (max KL, max dppl, min tok/s, max bytes); the
# values against an independent compare and wc -c; the next step's manifest records them ------
cat >"$tmp/g.recipe" <<EOF
input  $model
text   $text
tokens 64
step quantize scheme=q8_0
gate kl < 0.01
gate dppl_pct < 50
gate dppl < 1
gate tg_tokens_per_s > 1
gate pp_tokens_per_s > 1
gate bytes <= 400KiB
step convert
EOF
if expect_ok "gates on kl, dppl, tok/s, bytes" "$bin" recipe run "$tmp/g.recipe" "$tmp/g" --threads 1 --json; then
    q=$tmp/g/step-1-quantize
    "$bin" compare "$model" "$q/model.gguf" --text "$text" --tokens 64 --no-speed --json --threads 1 \
        >"$tmp/gc.json" 2>/dev/null
    gate_value() { grep -o "\"metric\":\"$1\",\"value\":[-0-9.e+]*" "$q/step.json" | sed 's/.*://'; }
    for pair in kl:kl_mean dppl_pct:delta_ppl_pct dppl:delta_ppl; do
        want=$(sed 's/.*"is_base":false//' "$tmp/gc.json" | grep -o "\"${pair#*:}\":[-0-9.e+]*" | head -1 | sed 's/.*://')
        got=$(gate_value "${pair%%:*}")
        awk -v a="$want" -v b="$got" 'BEGIN { d = a - b; if (d < 0) d = -d; m = a < 0 ? -a : a
            exit !(a != "" && b != "" && d <= 1e-9 * m + 1e-12) }' && ok ||
            bad "gate ${pair%%:*} = $got, compare says $want"
    done
    [ "$(gate_value bytes)" = "$(wc -c <"$q/model.gguf" | tr -d ' ')" ] && ok || bad "bytes gate != wc -c"
    lt 1 "$(gate_value tg_tokens_per_s)" && lt 1 "$(gate_value pp_tokens_per_s)" && ok || bad "speed gates not measured"
    "$bin" info "$tmp/g/step-2-convert/model.gguf" >"$tmp/info" 2>&1
    for m in kl dppl_pct dppl tg_tokens_per_s pp_tokens_per_s bytes; do
        grep -q "^quality: *gate1\.$m " "$tmp/info" && ok || bad "manifest lacks gate1.$m"
    done
    expect_ok "shrink verify of a recipe's model" "$bin" verify "$tmp/g/step-2-convert/model.gguf"
fi
sed 's/gate tg_tokens_per_s > 1$/gate tg_tokens_per_s > 1e12/' "$tmp/g.recipe" >"$tmp/g2.recipe"
expect_fail "a min tok/s gate failing" "gate 'tg_tokens_per_s > 1e12' failed after step 1" \
    "$bin" recipe run "$tmp/g2.recipe" "$tmp/g2" --threads 1

# ---- the report of a recipe folder: its recipe and the steps' gates --------------------------
if [ -d "$ra" ] && expect_ok "report of a try run" "$bin" report "$ra" -o "$tmp/ra.html"; then
    grep -q '<pre class="recipe">' "$tmp/ra.html" && grep -q "try quantize scheme=q4_0" "$tmp/ra.html" && ok ||
        bad "the report does not show the recipe"
    grep -q "alternative $kept kept" "$tmp/ra.html" && ok || bad "the report does not name the kept alternative"
    # the plan alternative's measured table (plan.json): its error bars and heatmap on the page
    n_pt=$(grep -o '"name":"[^"]*","shape":\[[0-9]*,[0-9]*\]' "$ra/step-1-try/alt-4-plan/plan.json" | wc -l)
    [ "$n_pt" -gt 10 ] && [ "$(grep -c '<rect class="errbar"' "$tmp/ra.html")" -eq "$n_pt" ] && ok ||
        bad "the report's error bars are not the plan's $n_pt matrices"
    [ "$(grep -c '<rect class="cell"' "$tmp/ra.html")" -eq "$(grep -o '"name":"blk\.[^"]*","shape":\[[0-9]*,[0-9]*\]' "$ra/step-1-try/alt-4-plan/plan.json" | wc -l)" ] &&
        ok || bad "the report's heatmap cells are not the plan's block matrices"
fi

# ---- the shipped search recipe checks ----------------------------------------------------------
expect_ok "recipe check smallest-within-kl" "$bin" recipe check recipes/smallest-within-kl.recipe
grep -q '^  try 1 (line' "$tmp/out" && ok || bad "check does not list the alternatives"
finish
