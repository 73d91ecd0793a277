#!/bin/sh
# test_recipe_cli.sh - `shrink recipe` end to end (POSIX sh; run from the repository root by
# tests/run_all.sh with the binary):
#
#   sh tests/test_recipe_cli.sh build/shrink
#
# recipes/stories260K-small.recipe (student -> distill -> q8_0 -> compare, gates on bytes,
# train_loss, kl and ppl) runs end to end on the repository's stories260K: every step folder
# holds its model, step.json and output; the gates' values are the ones `shrink compare` prints
# for the same pair (independent run). Resume: the run is killed (SIGKILL) at the start of a
# step, after a step wrote its model (before its gates and record), after a step finished, and
# once at an arbitrary moment from outside; each resumed run's models are byte-identical (cmp)
# to an uninterrupted run's. Bad input: an OUT holding another run, files but no run, or this
# run without --resume, and recipes with an unknown step, option, metric or keyword (line and
# column, the nearest name), a gate on a metric the step does not measure, a gate failing
# (exit 1, the value, no record for that step, the later steps not run).
set -u
bin=${1:-build/shrink}
. tests/sh_lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-recipe.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT INT TERM
finish() { sh_finish test_recipe_cli; }
jget=build/tests/json_get
[ -x "$jget" ] || { bad "$jget missing (make check builds it)"; finish; }

R=recipes/stories260K-small.recipe
model=models/stories260K/stories260K.bin
text=tests/fixtures/fixtures/stories260K/ppl_text.txt
for f in "$R" "$model" "$text"; do
    [ -f "$f" ] || { bad "$f missing (part of the repository)"; finish; }
done
export SOURCE_DATE_EPOCH=1700000000
steps="step-1-student step-2-distill step-3-quantize"

# ---- a whole run -----------------------------------------------------------------------------
if expect_ok "recipe run" "$bin" recipe run "$R" "$tmp/r" --threads 1 --json; then
    mv "$tmp/r" "$tmp/ref"   # the kill-and-resume runs below write into $tmp/r again (same paths)
    for s in $steps; do
        [ -s "$tmp/ref/$s/model.gguf" ] && ok || bad "no $s/model.gguf"
        [ -s "$tmp/ref/$s/step.json" ] && ok || bad "no $s/step.json"
    done
    [ -s "$tmp/ref/step-4-compare/compare.json" ] && ok || bad "no compare.json"
    grep -q '"status":"done"' "$tmp/out" && ok || bad "status not done: $(head -c 300 "$tmp/out")"
    [ "$(grep -c 'recipe step [0-9]/4 (.*): \$ shrink' "$tmp/err")" -eq 4 ] && ok ||
        bad "not 4 steps echoed"
    grep -q 'gate kl < 2: kl = .*: pass' "$tmp/err" && ok || bad "kl gate not reported"
    # the manifest of a step's model: the step's command, the recipe among its inputs
    "$bin" info "$tmp/ref/step-3-quantize/model.gguf" >"$tmp/info" 2>&1
    grep -q '^command: *shrink quantize .*step-2-distill/model.gguf' "$tmp/info" && ok ||
        bad "quantize manifest command"
    grep -q '^input: *RECIPE .*stories260K-small.recipe' "$tmp/info" && ok || bad "recipe not an input"
    # the kl gate's value equals an independent `shrink compare` of the same two models
    if [ -n "$jget" ]; then
        "$bin" compare "$model" "$tmp/ref/step-3-quantize/model.gguf" --text "$text" --tokens 256 \
            --json --no-speed --threads 1 >"$tmp/cmp.json" 2>/dev/null
        want=$("$jget" "$tmp/cmp.json" models.1.kl_mean)
        got=$(grep -o '"metric":"kl","value":[-0-9.e+]*' "$tmp/ref/step-3-quantize/step.json" |
              sed 's/.*"value"://')
        [ -n "$want" ] && awk -v a="$want" -v b="$got" 'BEGIN { d = a - b; if (d < 0) d = -d;
            exit !(d <= 1e-9 * (a < 0 ? -a : a) + 1e-12) }' && ok ||
            bad "kl gate $got != compare's $want"
    fi
fi

# shrink report of the run's folder: its compare step's input and three models, four points
if [ -d "$tmp/ref" ] && expect_ok "report of a recipe OUT" "$bin" report "$tmp/ref" -o "$tmp/ref.html"; then
    [ "$(grep -c '<circle class="point' "$tmp/ref.html")" -eq 4 ] && ok || bad "report: not 4 points"
fi
expect_fail "report of a folder without a run" "not a recipe run" "$bin" report "$tmp" -o "$tmp/x.html"

# ---- resume after kill -9: byte-identical models ----------------------------------------------
same_models() {
    for s in $steps; do
        cmp -s "$1/$s/model.gguf" "$tmp/ref/$s/model.gguf" || { bad "$2: $s/model.gguf differs"; return; }
    done
    ok
}
for kp in 2:start 2:output 3:done; do
    out="$tmp/r"
    rm -rf "$out"
    SHRINK_RECIPE_KILL=$kp "$bin" recipe run "$R" "$out" --threads 1 >/dev/null 2>&1
    rc=$?
    [ $rc -eq 137 ] && ok || bad "kill at $kp: exit $rc, not 137 (SIGKILL)"
    n=${kp%%:*}
    ls -d "$out/step-$((n + 1))-"* >/dev/null 2>&1 && bad "kill at $kp: a later step ran" || ok
    if expect_ok "resume after kill at $kp" "$bin" recipe run "$R" "$out" --resume; then
        same_models "$out" "kill at $kp"
        if [ "$kp" = 1:start ]; then # killed before any step finished: nothing to keep
            grep -q 'done before, kept' "$tmp/err" && bad "resume after $kp kept a step" || ok
        else
            grep -q 'done before, kept' "$tmp/err" && ok || bad "resume after $kp kept nothing"
        fi
    fi
done
# a kill from outside at whatever moment the distill step is in
out="$tmp/r"
rm -rf "$out"
"$bin" recipe run "$R" "$out" --threads 1 >/dev/null 2>&1 &
pid=$!
i=0
while [ $i -lt 300 ] && [ ! -e "$out/step-2-distill" ] && kill -0 $pid 2>/dev/null; do
    sleep 0.05; i=$((i + 1))
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
if expect_ok "resume after an outside kill -9" "$bin" recipe run "$R" "$out" --resume; then
    same_models "$out" "outside kill"
fi

# ---- an OUT holding something else -------------------------------------------------------------
sed 's/scheme=q8_0/scheme=q4_0/' "$R" >"$tmp/other.recipe"
cp "$tmp/ref/run.json" "$tmp/run.before"
expect_fail "another recipe into OUT" "holds a run of another recipe" \
    "$bin" recipe run "$tmp/other.recipe" "$tmp/ref" --resume
cmp -s "$tmp/run.before" "$tmp/ref/run.json" && same_models "$tmp/ref" "after refusal" ||
    bad "refused run changed OUT"
expect_fail "same run without --resume" "--resume continues it" "$bin" recipe run "$R" "$tmp/ref"
expect_fail "another input" "on another input" \
    "$bin" recipe run "$R" "$tmp/ref/step-1-student/model.gguf" "$tmp/ref" --resume
expect_fail "other thread count" "--threads 1" "$bin" recipe run "$R" "$tmp/r" --resume \
    --threads 2
mkdir "$tmp/foreign" && echo keep >"$tmp/foreign/notes.txt"
expect_fail "OUT with foreign files" "no recipe run" "$bin" recipe run "$R" "$tmp/foreign"
[ "$(cat "$tmp/foreign/notes.txt")" = keep ] && [ "$(ls "$tmp/foreign")" = notes.txt ] && ok ||
    bad "foreign OUT touched"

# ---- bad recipes: line and column, the nearest name, nothing written -----------------------------
bad_recipe() {   # DESC WANT RECIPE-TEXT
    printf '%s\n' "$3" >"$tmp/bad.recipe"
    expect_fail "$1" "$2" "$bin" recipe run "$tmp/bad.recipe" "$tmp/badout" --threads 1
    [ -e "$tmp/badout" ] && { bad "$1: OUT created"; rm -rf "$tmp/badout"; } || ok
}
head="input $model
text $text"
bad_recipe "unknown step" "bad.recipe:3:6: unknown step 'quantise'; did you mean quantize?" \
    "$head
step quantise scheme=q8_0"
bad_recipe "unknown option" "bad.recipe:3:15: quantize has no option 'schem'; did you mean scheme?" \
    "$head
step quantize schem=q8_0"
bad_recipe "unknown metric" "bad.recipe:4:6: unknown metric 'kld'; did you mean kl?" \
    "$head
step quantize scheme=q8_0
gate kld < 0.1"
bad_recipe "metric the step does not measure" "bad.recipe:4:6: gate val_loss: step 1 (quantize) does not measure val_loss" \
    "$head
step quantize scheme=q8_0
gate val_loss < 3"
bad_recipe "gate before any step" "bad.recipe:3:1: a gate checks the step before it" \
    "$head
gate kl < 0.1"
bad_recipe "unknown keyword" "bad.recipe:1:1: unknown keyword 'inptu'; did you mean input?" \
    "inptu $model
step quantize scheme=q8_0"
bad_recipe "option set by the run" "bad.recipe:3:27: quantize: option 'threads' is set by the recipe run" \
    "$head
step quantize scheme=q8_0 threads=4"
bad_recipe "flag with a value" "bad.recipe:3:35: quantize: option 'verbose' is a flag" \
    "$head
step quantize scheme=q8_0 verbose=yes"
bad_recipe "bad number" "bad.recipe:3:20: distill: steps='ten' is not an integer" \
    "$head
step distill steps=ten data=$text"
bad_recipe "unterminated quote" "bad.recipe:3:22: unterminated quoted value" \
    "$head
step quantize scheme=\"q8_0"
bad_recipe "bad gate operator" "bad.recipe:4:9: expected < <= > or >=" \
    "$head
step quantize scheme=q8_0
gate kl = 0.1"
bad_recipe "kl gate without a text" "add a line \`text FILE\`" \
    "input $model
step quantize scheme=q8_0
gate kl < 0.1"
bad_recipe "merge without lora" "merge merges the adapter of a lora step" \
    "$head
step merge"
bad_recipe "no steps" "no steps" "$head"

# ---- a failing gate stops the run ------------------------------------------------------------
printf 'input %s\ntext %s\ntokens 128\nstep quantize scheme=q4_0\ngate kl < 1e-6\nstep convert\n' \
    "$model" "$text" >"$tmp/gate.recipe"
expect_fail "failing gate" "gate 'kl < 1e-6' failed after step 1 (quantize): kl = " \
    "$bin" recipe run "$tmp/gate.recipe" "$tmp/gate" --threads 1
[ -s "$tmp/gate/step-1-quantize/model.gguf" ] && ok || bad "gate: the step's model is gone"
[ -e "$tmp/gate/step-1-quantize/step.json" ] && bad "gate: failed step recorded as done" || ok
[ -e "$tmp/gate/step-2-convert" ] && bad "gate: the next step ran" || ok

# ---- every shipped recipe parses and checks (their steps, options and gates) ------------------
for f in recipes/*.recipe; do
    expect_ok "recipe check $f" "$bin" recipe check "$f"
done

# ---- two threads: a step that ran OpenMP's threads, then compare (which forks) for the gate -----
printf 'input %s\ntext %s\ntokens 64\nstep convert dtype=f16\nstep quantize scheme=q4_0\ngate kl < 1\n' \
    "$model" "$text" >"$tmp/t2.recipe"
expect_ok "two threads (timeout 300 s: a hang is a failure)" timeout 300 "$bin" recipe run \
    "$tmp/t2.recipe" "$tmp/t2" --threads 2

# ---- check prints the command lines -----------------------------------------------------------
if expect_ok "recipe check" "$bin" recipe check "$R"; then
    grep -q '^step 3 (line 16): shrink quantize OUT/step-2-distill/model.gguf OUT/step-3-quantize/model.gguf --scheme q8_0' \
        "$tmp/out" && ok || bad "check: quantize line: $(cat "$tmp/out")"
fi
finish
