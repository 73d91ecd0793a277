#!/bin/sh
# test_report.sh - `shrink report`: the HTML page from `shrink compare --json` outputs
# (POSIX sh; run from the repository root by tests/run_all.sh with the path of the binary):
#
#   sh tests/test_report.sh build/shrink
#
# The reference for the plot is computed here, independently: the Pareto front of the
# (file_bytes, kl_mean) pairs read from the JSON inputs (json_get) by a plain O(n^2) awk
# dominance check, and the expected number of points and speed bars. The page must hold one
# <circle class="point"> per variant, class "pareto" exactly on the front, one bar per measured
# speed, no script and no URL but the SVG namespace; it must be well-formed XML (checked with
# xmllint when installed). Bad input: a JSON that is not compare's output names the file and
# writes nothing. A real compare of stories260K and two quantized copies runs too (seconds).
# The page rendered in a real browser: tests/test_report_browser.sh.
set -u
bin=${1:-build/shrink}
[ -f tests/sh_lib.sh ] || { echo "test_report: run from the repository root"; exit 1; }
. tests/sh_lib.sh
finish() { sh_finish test_report; }
jg=$(dirname "$bin")/tests/json_get
[ -x "$jg" ] || { echo "test_report: $jg is not an executable (make $jg)"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-report.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

# points FILE: the data-name of every plotted point, one per line, sorted; front FILE: of those
# on the front; bars FILE: the number of speed bars.
points() { grep -o '<circle class="point[^"]*"[^>]*data-name="[^"]*"' "$1" | sed 's/.*data-name="//; s/"$//' | sort; }
front()  { grep -o '<circle class="point pareto[^"]*"[^>]*data-name="[^"]*"' "$1" | sed 's/.*data-name="//; s/"$//' | sort; }
bars()   { grep -o '<rect class="bar \(tg\|pp\)"' "$1" | wc -l | tr -d ' '; }

# ref_front JSON...: the names on the front by the awk reference (a base shared by files once)
ref_front() {
    for f in "$@"; do
        n=$("$jg" "$f" 'models.#')
        i=0
        while [ "$i" -lt "$n" ]; do
            printf '%s\t%s\t%s\t%s\n' "$("$jg" "$f" "models.$i.path")" "$("$jg" "$f" "models.$i.file_bytes")" \
                "$("$jg" "$f" "models.$i.kl_mean")" "$("$jg" "$f" "models.$i.name")"
            i=$((i + 1))
        done
    done | awk -F '\t' 'BEGIN { n = 0 } !seen[$1]++ { p[n] = $1; b[n] = $2 + 0; k[n] = $3 + 0; nm[n] = $4; n++ }
        END { for (i = 0; i < n; i++) { d = 0
                  for (j = 0; j < n; j++) if (j != i && b[j] <= b[i] && k[j] <= k[i] && (b[j] < b[i] || k[j] < k[i])) d = 1
                  if (!d) print nm[i] } }' | sort
}

well_formed() {
    if command -v xmllint >/dev/null 2>&1; then
        xmllint --noout "$1" 2>"$tmp/xml.err" && ok || bad "$1 is not well-formed: $(head -c 300 "$tmp/xml.err")"
    else
        bad "xmllint not found (Debian's libxml2-utils): $1's well-formedness is not checked"
    fi
    ! grep -qi '<script' "$1" && ok || bad "$1 holds a script"
    [ -z "$(grep -o 'https\?://[^"]*' "$1" | grep -v '^http://www.w3.org/2000/svg$')" ] && ok ||
        bad "$1 names a URL: $(grep -o 'https\?://[^" ]*' "$1" | sort -u | head -n 3)"
}

# ==== hand-made inputs: a dominated variant, a shared base, a name to escape, no speed ==========
cat >"$tmp/a.json" <<'EOF2'
{"base":"b.gguf","models":[
 {"name":"base","path":"/m/base","is_base":true,"scheme":"f32","bits_per_weight":32,"file_bytes":4000000,"kl_mean":0,"ppl":5,"tg_tokens_per_s":100,"pp_tokens_per_s":900},
 {"name":"q8","path":"/m/q8","is_base":false,"scheme":"q8_0","bits_per_weight":8.5,"file_bytes":1100000,"kl_mean":0.001,"ppl":5.01,"tg_tokens_per_s":250,"pp_tokens_per_s":1200},
 {"name":"bad <mix> & \"co\"","path":"/m/bad","is_base":false,"scheme":"q4_K","bits_per_weight":9,"file_bytes":1200000,"kl_mean":0.05,"ppl":5.3,"tg_tokens_per_s":null,"pp_tokens_per_s":null}]}
EOF2
cat >"$tmp/b.json" <<'EOF2'
{"base":"b.gguf","models":[
 {"name":"base","path":"/m/base","is_base":true,"scheme":"f32","bits_per_weight":32,"file_bytes":4000000,"kl_mean":0,"ppl":5,"tg_tokens_per_s":100,"pp_tokens_per_s":900},
 {"name":"q4","path":"/m/q4","is_base":false,"scheme":"q4_K","bits_per_weight":4.8,"file_bytes":600000,"kl_mean":0.02,"ppl":5.2,"tg_tokens_per_s":400,"pp_tokens_per_s":1500},
 {"name":"q3","path":"/m/q3","is_base":false,"scheme":"q3_K","bits_per_weight":4,"file_bytes":500000,"kl_mean":0.09,"ppl":5.9}]}
EOF2
if expect_ok "report of two files" "$bin" report "$tmp/a.json" "$tmp/b.json" -o "$tmp/r.html" --json; then
    [ "$("$jg" "$tmp/out" n_points)" = 5 ] && [ "$("$jg" "$tmp/out" n_bars)" = 6 ] && ok ||
        bad "report --json: $(cat "$tmp/out") (want 5 points, 6 bars)"
    [ "$(points "$tmp/r.html" | wc -l | tr -d ' ')" = 5 ] && ok || bad "points in the page: $(points "$tmp/r.html" | tr '\n' ',')"
    [ "$(bars "$tmp/r.html")" = 6 ] && ok || bad "speed bars in the page: $(bars "$tmp/r.html"), want 6"
    ref_front "$tmp/a.json" "$tmp/b.json" | sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g; s/"/\&quot;/g' >"$tmp/want"
    front "$tmp/r.html" >"$tmp/got"
    cmp -s "$tmp/want" "$tmp/got" && [ "$(wc -l <"$tmp/got" | tr -d ' ')" = 4 ] && ok ||
        bad "Pareto front: page $(tr '\n' ',' <"$tmp/got"), reference $(tr '\n' ',' <"$tmp/want")"
    grep -q 'data-name="bad &lt;mix&gt; &amp; &quot;co&quot;"' "$tmp/r.html" && ok || bad "the name with <, & and \" is not escaped"
    well_formed "$tmp/r.html"
fi

# ==== one plot alone: --svg =====================================================================
if expect_ok "report --svg pareto" "$bin" report "$tmp/a.json" "$tmp/b.json" -o "$tmp/p.svg" --svg pareto; then
    head -c 200 "$tmp/p.svg" | grep -q '<svg id="pareto"' && ! grep -q '<html' "$tmp/p.svg" && ok || bad "--svg pareto: not an SVG file: $(head -c 200 "$tmp/p.svg")"
    [ "$(points "$tmp/p.svg" | wc -l | tr -d ' ')" = 5 ] && ok || bad "--svg pareto: $(points "$tmp/p.svg" | wc -l) points"
    front "$tmp/p.svg" >"$tmp/got_svg"
    cmp -s "$tmp/got" "$tmp/got_svg" && ok || bad "--svg pareto: another front than the page's"
    well_formed "$tmp/p.svg"
fi
expect_ok "report --svg speed" "$bin" report "$tmp/a.json" "$tmp/b.json" -o "$tmp/s.svg" --svg speed &&
    { [ "$(bars "$tmp/s.svg")" = 6 ] && ! grep -q '<circle' "$tmp/s.svg" && ok || bad "--svg speed: $(bars "$tmp/s.svg") bars"; }
expect_fail "report --svg bogus" "--svg 'table': the plots are pareto, speed, memory, tensors and heatmap" \
    "$bin" report "$tmp/a.json" -o "$tmp/t.svg" --svg table
[ ! -e "$tmp/t.svg" ] && ok || bad "--svg table left a file"

# ==== per-tensor error bars, the sensitivity heatmap, memory bars ===================================
# a hand-made plan: 2 layers x 2 roles plus the embedding; one vector (not drawn); the chosen
# type's err is squared (the bar: its square root), the heatmap the measured candidate's KL
cat >"$tmp/plan.json" <<'EOF2'
{"input":"m","tensors":[
 {"name":"token_embd.weight","shape":[512,64],"dtype":"q8_0","bytes":1,"kl":0.001,"candidates":[{"dtype":"q4_0","bytes":1,"kl":0.01,"err":0.04,"measured":true},{"dtype":"q8_0","bytes":2,"kl":0.001,"err":0.0001,"measured":false}]},
 {"name":"blk.0.attn_q.weight","shape":[64,64],"dtype":"q4_0","bytes":1,"kl":0.002,"candidates":[{"dtype":"q4_0","bytes":1,"kl":0.002,"err":0.0025,"measured":true}]},
 {"name":"blk.0.ffn_up.weight","shape":[172,64],"dtype":"q4_0","bytes":1,"kl":0.0003,"candidates":[{"dtype":"q4_0","bytes":1,"kl":0.0003,"err":0.0016,"measured":true}]},
 {"name":"blk.1.attn_q.weight","shape":[64,64],"dtype":"q8_0","bytes":1,"kl":0.00001,"candidates":[{"dtype":"q4_0","bytes":1,"kl":0.004,"err":0.0036,"measured":true},{"dtype":"q8_0","bytes":1,"kl":0.00001,"err":0.000009,"measured":false}]},
 {"name":"blk.1.ffn_up.weight","shape":[172,64],"dtype":"q4_0","bytes":1,"kl":0.0001,"candidates":[{"dtype":"q4_0","bytes":1,"kl":0.0001,"err":0.0004,"measured":true}]},
 {"name":"output_norm.weight","shape":[64],"dtype":"f32","bytes":1,"kl":0,"candidates":[]}]}
EOF2
cells() { grep -o '<rect class="cell"[^>]*data-tensor="[^"]*" data-layer="[0-9]*" data-kl="[^"]*"' "$1" | sed 's/.*data-tensor="\([^"]*\)" data-layer="\([0-9]*\)" data-kl="\([^"]*\)"/\1 \2 \3/'; }
errbars() { grep -o '<rect class="errbar"[^>]*data-tensor="[^"]*" data-err="[^"]*"' "$1" | sed 's/.*data-tensor="\([^"]*\)" data-err="\([^"]*\)"/\1 \2/'; }
if expect_ok "report of a plan" "$bin" report "$tmp/plan.json" "$tmp/a.json" -o "$tmp/pl.html" --json; then
    [ "$("$jg" "$tmp/out" n_tensor_bars)" = 5 ] && [ "$("$jg" "$tmp/out" n_cells)" = 4 ] &&
        [ "$("$jg" "$tmp/out" n_mem_bars)" = 0 ] && ok || bad "report of a plan --json: $(cat "$tmp/out")"
    # the reference: sqrt(err) of the chosen type; KL of the measured candidate, by layer
    printf '%s\n' "token_embd.weight 0.01" "blk.0.attn_q.weight 0.05" "blk.0.ffn_up.weight 0.04" \
        "blk.1.attn_q.weight 0.003" "blk.1.ffn_up.weight 0.02" >"$tmp/want"
    errbars "$tmp/pl.html" | awk '{ printf "%s %.6g\n", $1, $2 }' >"$tmp/got"
    cmp -s "$tmp/want" "$tmp/got" && ok || bad "error bars: $(tr '\n' ';' <"$tmp/got")"
    printf '%s\n' "blk.0.attn_q.weight 0 0.002" "blk.0.ffn_up.weight 0 0.0003" \
        "blk.1.attn_q.weight 1 0.004" "blk.1.ffn_up.weight 1 0.0001" >"$tmp/want"
    cells "$tmp/pl.html" | awk '{ printf "%s %s %.6g\n", $1, $2, $3 }' >"$tmp/got"
    cmp -s "$tmp/want" "$tmp/got" && ok || bad "heatmap cells: $(tr '\n' ';' <"$tmp/got")"
    # the bar lengths are proportional to the errors; the most sensitive cell is the darkest
    grep -o '<rect class="errbar"[^>]*width="[0-9.]*"' "$tmp/pl.html" | sed 's/.*width="//; s/"//' >"$tmp/w"
    awk 'NR == FNR { w[NR] = $1; next } { e[FNR] = $2 } END { for (i = 2; i <= 5; i++)
        if (w[i] / w[1] < 0.999 * e[i] / e[1] || w[i] / w[1] > 1.001 * e[i] / e[1] + 0.01) exit 1 }' \
        "$tmp/w" "$(errbars "$tmp/pl.html" >"$tmp/e"; echo "$tmp/e")" && ok || bad "bar widths not proportional to the errors"
    well_formed "$tmp/pl.html"
fi
expect_ok "report --svg heatmap" "$bin" report "$tmp/plan.json" -o "$tmp/h.svg" --svg heatmap &&
    { [ "$(cells "$tmp/h.svg" | wc -l | tr -d ' ')" = 4 ] && ! grep -q '<html' "$tmp/h.svg" && ok || bad "--svg heatmap"; }
expect_fail "report --svg heatmap of compare outputs" "none given" \
    "$bin" report "$tmp/a.json" -o "$tmp/h2.svg" --svg heatmap
# quantize --json --verbose: its rel_rms per matrix, the vectors left out
cat >"$tmp/qz.json" <<'EOF2'
{"scheme":"q4_0","tensors":[{"name":"token_embd.weight","shape":[512,64],"dtype":"q4_0","bytes":18432,"rel_rms":0.08},
 {"name":"blk.0.attn_norm.weight","shape":[64],"dtype":"f32","bytes":256,"rel_rms":0},
 {"name":"blk.0.attn_q.weight","shape":[64,64],"dtype":"q4_0","bytes":2304,"rel_rms":0.11}]}
EOF2
expect_ok "report of a quantize --json" "$bin" report "$tmp/qz.json" -o "$tmp/qz.html" --json &&
    { [ "$("$jg" "$tmp/out" n_tensor_bars)" = 2 ] && [ "$("$jg" "$tmp/out" n_cells)" = 0 ] && ok ||
      bad "report of quantize --json: $(cat "$tmp/out")"; }
# memory: one bar per model whose speed test measured its peak RSS
sed 's/"tg_tokens_per_s":100,/"tg_tokens_per_s":100,"peak_rss_bytes":52428800,/; s/"tg_tokens_per_s":250,/"tg_tokens_per_s":250,"peak_rss_bytes":20971520,/' \
    "$tmp/a.json" >"$tmp/mem.json"
expect_ok "report with memory" "$bin" report "$tmp/mem.json" -o "$tmp/mem.html" --json &&
    { [ "$("$jg" "$tmp/out" n_mem_bars)" = 2 ] &&
      [ "$(grep -c '<rect class="membar"[^>]*data-bytes="\(52428800\|20971520\)"' "$tmp/mem.html")" = 2 ] && ok ||
      bad "memory bars: $(cat "$tmp/out")"; }

# ==== bad input: named, nothing written ============================================================
printf '{"ppl": 3}' >"$tmp/ppl.json"
expect_fail "report of a ppl --json" "ppl.json: no \"models\" or \"tensors\" array" "$bin" report "$tmp/ppl.json" -o "$tmp/bad.html"
[ ! -e "$tmp/bad.html" ] && ok || bad "a failed report left $tmp/bad.html"
printf '{"models": [{"name": "x"}]}' >"$tmp/nokl.json"
expect_fail "report of a model without kl_mean" "nokl.json: models[0] lacks" "$bin" report "$tmp/nokl.json" -o "$tmp/bad.html"
printf '{"models": [' >"$tmp/trunc.json"
expect_fail "report of a truncated JSON" "trunc.json" "$bin" report "$tmp/trunc.json" -o "$tmp/bad.html"
expect_fail "report without -o" "-o FILE is required" "$bin" report "$tmp/a.json"
expect_fail "report over its input" "" "$bin" report "$tmp/a.json" -o "$tmp/a.json"
"$jg" "$tmp/a.json" 'models.#' >/dev/null && ok || bad "report -o INPUT changed the input"

# ==== a real compare ==============================================================================
model=$(asset models/stories260K/stories260K.bin) || { missing "models/stories260K/stories260K.bin"; finish; }
text=$(asset fixtures/stories260K/ppl_text.txt) || { missing "fixtures/stories260K/ppl_text.txt"; finish; }
head -c 3000 "$text" >"$tmp/t.txt"
if expect_ok "quantize q8_0" "$bin" quantize "$model" "$tmp/q8.gguf" q8_0 &&
    expect_ok "quantize q4_0" "$bin" quantize "$model" "$tmp/q4.gguf" q4_0 &&
    expect_ok "compare --json" "$bin" compare "$model" "$tmp/q8.gguf" "$tmp/q4.gguf" --text "$tmp/t.txt" \
        --ctx 64 --tokens 128 --pp 16 --tg 8 --reps 1 --threads 1 --json; then
    cp "$tmp/out" "$tmp/c.json"
    if expect_ok "report of a compare" "$bin" report "$tmp/c.json" -o "$tmp/c.html"; then
        [ "$(points "$tmp/c.html" | wc -l | tr -d ' ')" = 3 ] && ok || bad "real compare: $(points "$tmp/c.html" | wc -l) points, want 3"
        [ "$(bars "$tmp/c.html")" = 6 ] && ok || bad "real compare: $(bars "$tmp/c.html") bars, want 6"
        ref_front "$tmp/c.json" >"$tmp/want"
        front "$tmp/c.html" >"$tmp/got"
        cmp -s "$tmp/want" "$tmp/got" && ok || bad "real compare front: page $(tr '\n' ',' <"$tmp/got"), reference $(tr '\n' ',' <"$tmp/want")"
        grep -q '<summary>q8.gguf' "$tmp/c.html" && ok || bad "the page does not show q8.gguf's manifest"
        well_formed "$tmp/c.html"
    fi
fi
finish
