# sh_lib.sh - the pieces every shell test repeats, to be sourced (`. tests/sh_lib.sh`) after
# setting nothing: counters and verdicts, the shared folder and the skip rule (a missing asset
# is a failure when the shared folder is present, a counted skip, exit 77, when it is absent),
# and the asset lookup of tests/test_util.h. POSIX sh.
#
#   ok / bad MSG / skipped MSG      count a pass, a failure (printed), a skip (printed)
#   missing DESC                    an asset is missing: bad or skipped by the rule above
#   asset REL                       prints the first existing of <shared>/REL,
#                                   tests/fixtures/REL, ./REL; status 1 if none
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

sh_finish() {
    echo "$1: $pass passed, $fail failed, $skip skipped"
    [ $fail -gt 0 ] && exit 1
    [ $absent -eq 1 ] && exit 77
    exit 0
}
