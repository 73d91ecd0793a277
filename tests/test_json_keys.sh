#!/bin/sh
# test_json_keys.sh - one vocabulary of JSON keys: every key of the "JSON keys" table of
# docs/cli.md is printed by every command its row names (POSIX sh; run from the repository
# root by tests/run_all.sh with the path of the binary):
#
#   sh tests/test_json_keys.sh build/shrink
#
# The table is read from the documentation itself (rows "| `key`, `key2` | meaning | cmd, cmd |"
# between "**JSON keys.**" and the next blank line after it; a key with "*" is a pattern and
# not checked), so a key renamed in a command, or documented for a command that does not print
# it, fails here. Each command runs once on stories260K with small sizes (--json) in a temporary
# folder; a key counts as printed when `"key":` occurs in its output (nested objects included:
# compare's models[], train's step lines). Also checked: no command prints the retired
# spellings of these quantities (tok_s, decode_tok_s, *_tok_s_sd).
# Ends with "test_json_keys: N passed, N failed, N skipped"; exit 1 on any failure, 77 when
# the model or the text is missing and the shared folder is absent.
set -u
bin=${1:-build/shrink}
[ -f tests/sh_lib.sh ] || { echo "test_json_keys: run from the repository root"; exit 1; }
. tests/sh_lib.sh
finish() { sh_finish test_json_keys; }

[ -f docs/cli.md ] || { echo "test_json_keys: run from the repository root"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-keys.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

# The table: "key cmd" pairs, one per line.
awk '
    /^\*\*JSON keys\.\*\*/ { on = 1; next }
    on && /^\|/ { seen = 1
        n = split($0, col, "|")
        if (n < 5 || col[2] ~ /^ *key *$/ || col[2] ~ /^ *---/) next
        keys = col[2]; cmds = col[4]
        gsub(/ /, "", cmds); m = split(cmds, c, ",")
        while (match(keys, /`[^`]*`/)) {
            k = substr(keys, RSTART + 1, RLENGTH - 2); keys = substr(keys, RSTART + RLENGTH)
            if (k ~ /^[a-z0-9_]+$/) for (i = 1; i <= m; i++) if (c[i] != "") print k, c[i]
        }
        next }
    on && seen && !/^\|/ { exit }
' docs/cli.md >"$tmp/table"
[ -s "$tmp/table" ] && ok || { bad "docs/cli.md: no JSON keys table"; finish; }

model=$(asset models/stories260K/stories260K.bin) || { missing "models/stories260K/stories260K.bin"; finish; }
text=$(asset fixtures/stories260K/ppl_text.txt) || { missing "fixtures/stories260K/ppl_text.txt"; finish; }
lambada=$(asset eval/lambada.jsonl) || { missing "eval/lambada.jsonl"; finish; }
tok=$(dirname "$model")/tok512.bin
head -c 3000 "$text" >"$tmp/t.txt"
cat >"$tmp/config.json" <<'EOF'
{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":32,"num_hidden_layers":1,
 "num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":64,"vocab_size":512,
 "max_position_embeddings":64,"rms_norm_eps":1e-5,"rope_theta":10000.0,"tie_word_embeddings":true,
 "bos_token_id":1,"eos_token_id":2}
EOF

# run CMD: the command's --json output into $tmp/CMD.json; fails the command's keys on error.
run() {
    c=$1
    shift
    if "$@" --json >"$tmp/$c.json" 2>"$tmp/$c.err"; then ok
    else bad "$c --json: exit $?: $(head -c 300 "$tmp/$c.err")"; : >"$tmp/$c.json"; fi
}
run version  "$bin" version
run info     "$bin" info "$model"
run generate "$bin" generate "$model" -n 4
run ppl      "$bin" ppl "$model" "$tmp/t.txt" --ctx 64
run bench    "$bin" bench "$model" --pp 16 --tg 4 --reps 1 --bandwidth 20
run compare  "$bin" compare "$model" "$model" --text "$tmp/t.txt" --ctx 64 --tokens 64 --pp 16 --tg 4 --reps 1
run convert  "$bin" convert "$model" "$tmp/c.gguf"
run init     "$bin" init --config "$tmp/config.json" --tokenizer "$tok" --seed 1 "$tmp/i.gguf"
run quantize "$bin" quantize "$model" "$tmp/q.gguf" q8_0
run verify   "$bin" verify "$tmp/q.gguf"
run prune    "$bin" prune "$model" "$tmp/p.gguf" --method magnitude --sparsity 0.5
run tokenize "$bin" tokenize "$tmp/t.txt" "$tmp/t.tok" --model "$model"
run train    "$bin" train "$model" --data "$tmp/t.tok" --steps 2 --batch 2 --ctx 32 --threads 1 --out "$tmp/tr"
run distill  "$bin" distill --teacher "$model" --student "$tmp/i.gguf" --data "$tmp/t.tok" --steps 2 \
                 --batch 2 --ctx 32 --threads 1 --out "$tmp/di"
run eval     "$bin" eval "$model" --task lambada --data "$lambada" --limit 4
run plan     "$bin" plan "$model" --calib "$tmp/t.txt" --calib-tokens 32 --calib-ctx 32 --bits 8 \
                 --types q4_0,q8_0,f16

while read -r key cmd; do
    if [ ! -f "$tmp/$cmd.json" ]; then
        bad "docs/cli.md JSON keys: '$key' is documented for '$cmd', which this test does not run"
    elif grep -q "\"$key\":" "$tmp/$cmd.json"; then ok
    elif [ -s "$tmp/$cmd.json" ]; then bad "$cmd --json has no \"$key\" (docs/cli.md JSON keys)"
    fi
done <"$tmp/table"

# the retired spellings of the same quantities
for f in "$tmp"/*.json; do
    c=$(basename "$f" .json)
    if grep -Eq '"(tok_s|decode_tok_s|pp_tok_s|tg_tok_s)(_sd)?":' "$f"; then
        bad "$c --json uses a retired key: $(grep -Eo '"(tok_s|decode_tok_s|pp_tok_s|tg_tok_s)(_sd)?":' "$f" | head -n 1)"
    else ok; fi
done
finish
