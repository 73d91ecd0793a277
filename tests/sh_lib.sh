# sh_lib.sh - the pieces every shell test repeats, to be sourced (`. tests/sh_lib.sh`) after
# setting nothing: counters and verdicts, the shared folder and the skip rule (a missing asset
# is a failure when the shared folder is present, a counted skip, exit 77, when it is absent),
# and the asset lookup of tests/test_util.h. POSIX sh.
#
#   ok / bad MSG / skipped MSG      count a pass, a failure (printed), a skip (printed)
#   missing DESC                    an asset is missing: bad or skipped by the rule above
#   asset REL                       prints the first existing of <shared>/REL,
#                                   tests/fixtures/REL, ./REL; status 1 if none
#   llama_tool TOOL                 sets $ltool to llama.cpp's TOOL ($LLAMA_CPP_BIN, else
#                                   /work/llama.cpp/build/bin); not built: a counted skip,
#                                   status 1 (llama.cpp cannot be built offline, e.g. in CI)
#   sh_finish NAME                  prints "NAME: N passed, N failed, N skipped" and exits
#                                   1 on a failure, 77 if an asset was absent, else 0
pass=0
fail=0
skip=0
absent=0
shared=${SHRINK_SHARED:-../shared}

ok()      { pass=$((pass + 1)); }
bad()     { fail=$((fail + 1)); echo "FAIL: $*"; }
skipped() { skip=$((skip + 1)); echo "SKIP: $*"; }

missing() {
    if [ -d "$shared" ]; then bad "$*: not found, but the shared folder $shared is present"
    else skipped "$*: not found (no shared folder $shared)"; absent=1; fi
}

asset() {
    for root in "$shared" tests/fixtures .; do
        if [ -e "$root/$1" ]; then echo "$root/$1"; return 0; fi
    done
    return 1
}

llama_tool() {
    ltool="${LLAMA_CPP_BIN:-/work/llama.cpp/build/bin}/$1"
    [ -x "$ltool" ] && return 0
    skipped "llama.cpp's $1 is not built here (set LLAMA_CPP_BIN): its check is not run"
    return 1
}

sh_finish() {
    echo "$1: $pass passed, $fail failed, $skip skipped"
    [ $fail -gt 0 ] && exit 1
    [ $absent -eq 1 ] && exit 77
    exit 0
}

# The helpers below read and write $tmp/out and $tmp/err: set tmp before calling them.
#   run CMD...                      stdout in $tmp/out, stderr in $tmp/err; sets rc
#   sanitized DESC                  a failure (status 1) if $tmp/err holds an ASan/UBSan/LSan report
#   expect_ok DESC CMD...           CMD exits 0 with no sanitizer report: ok, else bad (status 1)
#   expect_fail DESC WANT CMD...    CMD exits in [1, 127], stdout empty, stderr contains WANT
#   json_num KEY [FILE]             the number after "KEY": - the first in $tmp/out, or the
#                                   last line of FILE holding it
#   lt A B                          A < B as numbers, both non-empty
run() {
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

sanitized() {
    if grep -q -e 'Sanitizer' -e 'runtime error:' "$tmp/err"; then
        bad "$1: sanitizer report: $(grep -m 3 -e 'Sanitizer' -e 'runtime error:' "$tmp/err")"
        return 1
    fi
    return 0
}

expect_ok() {
    desc=$1
    shift
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    sanitized "$desc" || return 1
    if [ $rc -ne 0 ]; then bad "$desc: exit $rc: $(head -c 400 "$tmp/err")"; return 1; fi
    ok
}

expect_fail() {
    desc=$1
    want=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    sanitized "$desc" || return 1
    if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then bad "$desc: exit $rc (want 1..127)"; return 1; fi
    if [ -s "$tmp/out" ]; then bad "$desc: stdout not empty: $(head -c 200 "$tmp/out")"; return 1; fi
    if ! grep -qF -- "$want" "$tmp/err"; then
        bad "$desc: stderr does not mention '$want': $(head -c 400 "$tmp/err")"
        return 1
    fi
    ok
}

json_num() {
    if [ $# -ge 2 ]; then
        grep "\"$1\":" "$2" | tail -n 1 | sed -n "s/.*\"$1\":\\(-\\{0,1\\}[0-9.eE+-]*\\).*/\\1/p"
    else
        sed -n "s/.*\"$1\":\\(-\\{0,1\\}[0-9.eE+-]*\\).*/\\1/p" "$tmp/out" | head -n 1
    fi
}

lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0 && a != "" && b != "") }'; }

# expect_refused DESC WANT OUTFILE CMD...: CMD exits in [1, 127] with no sanitizer report,
# stderr contains WANT and OUTFILE was not written (stdout may hold text)
expect_refused() {
    desc=$1
    want=$2
    outf=$3
    shift 3
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    sanitized "$desc" || return 1
    if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then bad "$desc: exit $rc (want 1..127)"; return 1; fi
    if ! grep -qF -- "$want" "$tmp/err"; then
        bad "$desc: stderr does not mention '$want': $(head -c 400 "$tmp/err")"
        return 1
    fi
    if [ -e "$outf" ]; then bad "$desc: $outf was written"; return 1; fi
    ok
}

# story_text FILE N: N numbered lines of a short story in FILE (a calibration text for
# stories260K)
story_text() {
    i=0
    : >"$1"
    while [ $i -lt "$2" ]; do
        printf 'Once upon a time, there was a little girl named Lily. She liked to play in the park with her dog Max. One day %d birds sang a song, and Lily laughed and ran home to tell her mom.\n' "$i" >>"$1"
        i=$((i + 1))
    done
}

# kill_at_checkpoint PID DIR: as soon as DIR/checkpoint.bin appears, freezes the background run
# PID (SIGSTOP, so it cannot reach its last step first), then kills it (SIGKILL) and reaps it.
# Sets stopped (1 if it was frozen) and ck_step (the checkpoint's step: u64 little-endian at
# byte 16, src/train/checkpoint.c; empty if none).
kill_at_checkpoint() {
    kpid=$1
    kdir=$2
    i=0
    stopped=0
    while [ $i -lt 12000 ]; do
        if [ -f "$kdir/checkpoint.bin" ]; then
            kill -STOP "$kpid" 2>/dev/null && stopped=1
            break
        fi
        kill -0 "$kpid" 2>/dev/null || break
        sleep 0.01
        i=$((i + 1))
    done
    ck_step=$(od -An -t u8 -j 16 -N 8 "$kdir/checkpoint.bin" 2>/dev/null | tr -d ' ')
    kill -9 "$kpid" 2>/dev/null
    wait "$kpid" 2>/dev/null
}
