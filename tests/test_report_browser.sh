#!/bin/sh
# test_report_browser.sh - `shrink report`'s page rendered by a real browser: Debian's chromium,
# headless (POSIX sh; run from the repository root by tests/run_all.sh with the binary):
#
#   sh tests/test_report_browser.sh build/shrink
#
# When chromium is missing it is installed (tools/deps.sh browser: apt-get as root). If it
# still cannot run, that is a failure (a check whose tool is missing fails), with the reason:
# the apt-get output, or that this machine cannot install it (not root, or no apt-get).
#
# A real report (stories260K, its q8_0 and q4_0 copies, compare with a short speed test, and a
# plan of stories260K: its --json) is rendered three ways:
#   1. --dump-dom of the page plus a probe script appended to a copy (the page itself has no
#      script): after layout it counts the SVG points, the speed bars, the memory bars, the
#      per-tensor error bars, the heatmap cells and the table rows, and checks that every
#      point, bar and cell lies inside its plot; the counts must equal those read from the
#      compare and plan JSON (json_get), and the table must show each variant's KL as the
#      JSON has it (6 decimals);
#   2. the page as it is with the browser's console log on stderr: no console error, no
#      uncaught exception. The detector is checked first on a page whose script throws
#      (it must see that error), so a silent browser cannot pass this;
#   3. --screenshot: a PNG of the expected size (its IHDR width and height), not blank.
set -u
bin=${1:-build/shrink}
[ -f tests/sh_lib.sh ] || { echo "test_report_browser: run from the repository root"; exit 1; }
. tests/sh_lib.sh
finish() { sh_finish test_report_browser; }
jg=$(dirname "$bin")/tests/json_get
[ -x "$jg" ] || { echo "test_report_browser: $jg is not an executable (make $jg)"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shrink-rbrowser.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

find_browser() {
    for c in chromium chromium-browser google-chrome; do
        if command -v "$c" >/dev/null 2>&1; then browser=$(command -v "$c"); return 0; fi
    done
    return 1
}
browser=""
if ! find_browser; then
    echo "test_report_browser: chromium missing: installing it (sh tools/deps.sh browser)"
    sh tools/deps.sh browser >"$tmp/deps.log" 2>&1
    if ! find_browser; then
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
            bad "chromium could not be installed with apt-get: $(tail -n 3 "$tmp/deps.log")"
        else
            bad "chromium is missing and cannot be installed here (not root, or no apt-get): $(tail -n 2 "$tmp/deps.log")"
        fi
        finish
    fi
fi
# headless, no sandbox (root in CI containers), its own profile; a watchdog: a browser that
# hangs is a failure, not a hung test suite
chrome() {
    timeout 120 "$browser" --headless --no-sandbox --disable-gpu --no-first-run \
        --disable-dev-shm-usage --user-data-dir="$tmp/profile" --hide-scrollbars "$@"
}

# ---- a real report ---------------------------------------------------------------------------
model=models/stories260K/stories260K.bin
text=tests/fixtures/fixtures/stories260K/ppl_text.txt
"$bin" quantize "$model" "$tmp/q8.gguf" --scheme q8_0 --threads 1 >/dev/null 2>&1 &&
"$bin" quantize "$model" "$tmp/q4.gguf" --scheme q4_0 --threads 1 >/dev/null 2>&1 &&
"$bin" compare "$model" "$tmp/q8.gguf" "$tmp/q4.gguf" --text "$text" --ctx 64 --tokens 128 \
    --pp 16 --tg 8 --reps 1 --threads 1 --json >"$tmp/compare.json" 2>"$tmp/err" ||
    { bad "quantize/compare failed: $(head -c 300 "$tmp/err")"; finish; }
"$bin" plan "$model" --calib "$text" --calib-tokens 64 --types q4_0,q8_0,f16 --bytes 290000 \
    --threads 1 --json >"$tmp/plan.json" 2>"$tmp/err" || { bad "plan failed: $(head -c 300 "$tmp/err")"; finish; }
expect_ok "report" "$bin" report "$tmp/compare.json" "$tmp/plan.json" -o "$tmp/report.html" \
    --title "browser test" || finish
# the plan's matrices (error bars), those of the blocks (heatmap cells), the models whose
# speed test measured a peak RSS (memory bars): counted from the JSON
nt=$("$jg" "$tmp/plan.json" 'tensors.#')
nerr=0 ncell=0 i=0
while [ "$i" -lt "$nt" ]; do
    if [ "$("$jg" "$tmp/plan.json" "tensors.$i.shape.#")" = 2 ]; then
        nerr=$((nerr + 1))
        case $("$jg" "$tmp/plan.json" "tensors.$i.name") in blk.*) ncell=$((ncell + 1)) ;; esac
    fi
    i=$((i + 1))
done
n=$("$jg" "$tmp/compare.json" 'models.#')
nbars=0 nmem=0
i=0
while [ "$i" -lt "$n" ]; do
    [ "$("$jg" "$tmp/compare.json" "models.$i.tg_tokens_per_s")" != null ] && nbars=$((nbars + 1))
    [ "$("$jg" "$tmp/compare.json" "models.$i.pp_tokens_per_s")" != null ] && nbars=$((nbars + 1))
    [ "$("$jg" "$tmp/compare.json" "models.$i.peak_rss_bytes")" != null ] && nmem=$((nmem + 1))
    i=$((i + 1))
done

# ---- 1. the rendered DOM, measured by a probe after layout ------------------------------------
cp "$tmp/report.html" "$tmp/probe.html"
cat >>"$tmp/probe.html" <<'EOF'
<script>
(function () {
  var pts = document.querySelectorAll('circle.point'), inside = 0;
  for (var i = 0; i < pts.length; i++) {
    var r = pts[i].getBoundingClientRect(), s = pts[i].ownerSVGElement.getBoundingClientRect();
    if (r.width > 0 && r.left >= s.left - 0.5 && r.right <= s.right + 0.5 &&
        r.top >= s.top - 0.5 && r.bottom <= s.bottom + 0.5) inside++;
  }
  var within = function (sel) {   /* drawn, and inside its own plot */
    var els = document.querySelectorAll(sel), k = 0;
    for (var i = 0; i < els.length; i++) {
      var r = els[i].getBoundingClientRect(), s = els[i].ownerSVGElement.getBoundingClientRect();
      if (r.width > 0 && r.height > 0 && r.left >= s.left - 0.5 && r.right <= s.right + 0.5 &&
          r.top >= s.top - 0.5 && r.bottom <= s.bottom + 0.5) k++;
    }
    return els.length + '/' + k;
  };
  var svgs = document.querySelectorAll('svg'), shown = 0;
  for (var k = 0; k < svgs.length; k++) {
    var b = svgs[k].getBoundingClientRect();
    if (b.width > 100 && b.height > 50) shown++;
  }
  var p = document.createElement('pre');
  p.id = 'probe';
  p.textContent = 'points=' + pts.length + ' inside=' + inside + ' svgs=' + svgs.length +
    ' shown=' + shown + ' bars=' + document.querySelectorAll('rect.bar').length +
    ' rows=' + document.querySelectorAll('table tr').length + ' errbars=' + within('rect.errbar') +
    ' cells=' + within('rect.cell') + ' membars=' + within('rect.membar') + ' end';
  document.body.appendChild(p);
})();
</script>
EOF
chrome --dump-dom "file://$tmp/probe.html" >"$tmp/dom.html" 2>"$tmp/dom.err"
probe=$(grep -o 'points=[0-9]* inside=[0-9]* svgs=[0-9]* shown=[0-9]* bars=[0-9]* rows=[0-9]* errbars=[0-9/]* cells=[0-9/]* membars=[0-9/]* end' "$tmp/dom.html")
if [ -z "$probe" ]; then
    bad "no probe result in the rendered DOM: $(head -c 300 "$tmp/dom.err")"
else
    val() { echo " $probe" | sed "s/.* $1=\([0-9/]*\).*/\1/"; }
    [ "$(val points)" -eq "$n" ] && ok || bad "rendered points $(val points), JSON has $n variants"
    [ "$(val inside)" -eq "$n" ] && ok || bad "only $(val inside) of $n points inside their plot"
    [ "$(val shown)" -ge 2 ] && [ "$(val shown)" -eq "$(val svgs)" ] && ok ||
        bad "plots shown: $(val shown) of $(val svgs) (want every one, at least 2)"
    [ "$(val bars)" -eq "$nbars" ] && ok || bad "rendered bars $(val bars), JSON has $nbars speeds"
    [ "$(val rows)" -ge $((n + 1)) ] && ok || bad "table rows $(val rows) < $n variants + header"
    # per-tensor error bars, heatmap cells, memory bars: as many as the JSON has, each drawn
    # inside its plot (N/N: found / inside)
    [ "$(val errbars)" = "$nerr/$nerr" ] && [ "$nerr" -gt 10 ] && ok ||
        bad "error bars rendered/inside $(val errbars), the plan has $nerr matrices"
    [ "$(val cells)" = "$ncell/$ncell" ] && [ "$ncell" -gt 10 ] && ok ||
        bad "heatmap cells rendered/inside $(val cells), the plan has $ncell block matrices"
    [ "$(val membars)" = "$nmem/$nmem" ] && [ "$nmem" -ge 1 ] && ok ||
        bad "memory bars rendered/inside $(val membars), the compare measured $nmem peak RSS"
fi
# the table's values as the browser has them: each variant's KL with 6 decimals
i=0
while [ "$i" -lt "$n" ]; do
    kl=$("$jg" "$tmp/compare.json" "models.$i.kl_mean")
    want=$(awk -v k="$kl" 'BEGIN { printf "%.6f", k }')
    grep -q "<td[^>]*>$want</td>" "$tmp/dom.html" && ok || bad "KL $want of variant $i not in a table cell"
    i=$((i + 1))
done
grep -q '<title>browser test</title>' "$tmp/dom.html" && ok || bad "title not in the DOM"

# ---- 2. console errors: the detector sees a throwing page, then the real page has none --------
console_errors() {   # the browser's console errors and uncaught exceptions for a page
    chrome --enable-logging=stderr --v=0 --dump-dom "file://$1" >/dev/null 2>"$tmp/console.err"
    grep -E 'CONSOLE.*(Uncaught|Error)|Uncaught' "$tmp/console.err"
}
printf '<!DOCTYPE html><html><body><p>x</p><script>noSuchFunction();</script></body></html>\n' \
    >"$tmp/throws.html"
[ -n "$(console_errors "$tmp/throws.html")" ] && ok ||
    bad "the console detector missed a throwing script: $(head -c 300 "$tmp/console.err")"
errs=$(console_errors "$tmp/report.html")
[ -z "$errs" ] && ok || bad "console errors on the report: $errs"

# ---- 3. a screenshot of the expected size, not blank -----------------------------------------
chrome --screenshot="$tmp/shot.png" --window-size=900,700 "file://$tmp/report.html" \
    >/dev/null 2>"$tmp/shot.err"
if [ -s "$tmp/shot.png" ]; then
    # PNG: 8-byte signature, IHDR length and type, then width and height, big-endian
    wh=$(od -An -tu1 -j16 -N8 "$tmp/shot.png" | awk '{ printf "%d %d", $1*16777216+$2*65536+$3*256+$4, $5*16777216+$6*65536+$7*256+$8 }')
    [ "$wh" = "900 700" ] && ok || bad "screenshot is $wh, not 900 700"
    # a blank page compresses to almost nothing; the plots and table do not
    [ "$(wc -c <"$tmp/shot.png")" -gt 8000 ] && ok || bad "screenshot looks blank ($(wc -c <"$tmp/shot.png") bytes)"
else
    bad "no screenshot: $(head -c 300 "$tmp/shot.err")"
fi
finish
