#!/bin/sh
# test_skip_rule.sh - a test cannot pass by skipping: checks the test sources (POSIX sh, grep):
#
#   sh tests/test_skip_rule.sh
#
# 1. tests/test_*.c look shared assets up only through tests/test_util.h's test_need_asset /
#    test_need_shared / test_need_model (a missing file is a failure when ../shared is present,
#    a counted skip when it is absent); a bare test_asset / test_shared / test_model is allowed
#    only on a line that gates the whole program with test_skip() (exit 77).
# 2. They print no "skip" of their own (a silent skip), except test_kernels.c's line for an
#    instruction set this CPU lacks (not a fixture).
# 3. The shell tests (tests/test_*.sh) report a missing asset through missing()
#    (same rule), never through skipped() with "not found".
# 4. No shell test needs python3 (the JSON checks use tests/json_get.c), and none returns
#    success when a tool it needs is missing (`command -v X || return 0`).
# The rule itself (failure vs skip, exit 77) is checked by tests/test_harness.c.
# Ends with "test_skip_rule: N passed, N failed"; exit 1 on any failure.
set -u
pass=0
fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

command -v grep >/dev/null 2>&1 || { echo "test_skip_rule: grep not found"; exit 1; }
ls tests/test_*.c >/dev/null 2>&1 || { echo "test_skip_rule: run from the repository root"; exit 1; }

hits=$(grep -nE '(^|[^_a-z])test_(asset|shared|model)\(' tests/test_*.c | grep -v 'test_skip(')
[ -z "$hits" ] && ok || bad "bare asset lookups (use test_need_*):
$hits"

hits=$(grep -niE 'printf\(.*skip' tests/test_*.c | grep -v 'not supported by this CPU')
[ -z "$hits" ] && ok || bad "tests printing their own skip:
$hits"

hits=$(grep -nE '^[[:space:]]*skipped "(.*not found|no \.\./shared)' tests/test_*.sh)
[ -z "$hits" ] && ok || bad "shell tests skipping a missing asset (use missing):
$hits"

hits=$(grep -nE 'python|command -v [^|]*\|\| *(return|exit) 0' tests/*.sh |
    grep -v '^tests/test_skip_rule.sh:' | grep -vE '^[^:]*:[0-9]+:[[:space:]]*#')
[ -z "$hits" ] && ok || bad "shell tests using python3 or passing without a tool:
$hits"

echo "test_skip_rule: $pass passed, $fail failed"
[ $fail -eq 0 ]
