#!/bin/sh
# run.sh - runs the libFuzzer targets built by `make fuzz` (build-fuzz/fuzz/fuzz_<format>).
#
#   sh fuzz/run.sh [SECONDS [TARGET...]]     (default: 60 seconds, every target)
#
# Each target starts from a scratch copy of its corpus (build-fuzz/corpus/<format>/, where new
# inputs go; the committed seeds fuzz/corpus/<format>/ and fuzz/regress/<format>/ are read
# only) with its dictionary fuzz/<format>.dict, and runs for SECONDS under limits that make a
# hostile size a finding: -rss_limit_mb=512 (peak RSS) and -malloc_limit_mb=256 (any single
# allocation), -timeout=10 (any single input). FUZZ_JOBS targets run at once (default: the
# number of CPUs); logs go to build-fuzz/logs/<format>.log, crashing inputs to
# build-fuzz/artifacts/<format>/. Prints one line per target (runs, exec/s, coverage) and
# exits 1 if any target found a crash, a leak, a timeout or an out-of-memory.
#
# A finding is reproduced with build-fuzz/fuzz/replay_<format> FILE (no libFuzzer) or
# build-fuzz/fuzz/fuzz_<format> FILE; once the parser is fixed, the input goes to
# fuzz/regress/<format>/ where tests/test_fuzz_regress.c replays it in every `make test`.
set -u
cd "$(dirname "$0")/.."
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-}
if [ -z "$targets" ]; then
    for f in fuzz/fuzz_*.c; do
        t=${f#fuzz/fuzz_}; t=${t%.c}
        [ "$t" = main ] || targets="$targets $t"
    done
fi
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
out=build-fuzz
mkdir -p "$out/logs"

run_one() {
    t=$1
    bin=$out/fuzz/fuzz_$t
    if [ ! -x "$bin" ]; then
        echo "fuzz: $bin missing (make fuzz)" > "$out/logs/$t.log"
        return 1
    fi
    rm -rf "$out/corpus/$t" "$out/artifacts/$t"
    mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
    dict=""
    [ -f "fuzz/$t.dict" ] && dict="-dict=fuzz/$t.dict"
    dirs="fuzz/corpus/$t"
    [ -d "fuzz/regress/$t" ] && dirs="$dirs fuzz/regress/$t"
    # leaks are findings too (LeakSanitizer at exit and per input, -detect_leaks=1). ASan keeps
    # freed memory in a quarantine (256 MiB by default) that counts toward the 512 MiB RSS limit:
    # a parser making many small allocations per input (safetensors JSON headers) reached 533 MiB
    # after ~90k inputs with 24 MiB live (CI, stop 24), so the quarantine is held at 64 MiB.
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:quarantine_size_mb=64} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
        "$bin" -max_total_time="$secs" -rss_limit_mb=512 -malloc_limit_mb=256 -timeout=10 \
        -max_len=65536 -print_final_stats=1 $dict -artifact_prefix="$out/artifacts/$t/" \
        "$out/corpus/$t" $dirs > "$out/logs/$t.log" 2>&1
}

start=$(date +%s)
pids=""; names=""; n=0
status=0
wait_all() {
    set -- $names
    for p in $pids; do
        t=$1; shift
        if wait "$p"; then rc=0; else rc=$?; fi
        log=$out/logs/$t.log
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
        if [ "$rc" -eq 0 ]; then
            printf 'fuzz: %-16s ok     %9s runs %6s exec/s  %s\n' "$t" "${runs:-?}" "${eps:-?}" "$cov"
        else
            status=1
            printf 'fuzz: %-16s FAILED (exit %s) after %s runs; log %s, inputs in %s\n' "$t" "$rc" \
                "${runs:-?}" "$log" "$out/artifacts/$t/"
            grep -m1 -E 'ERROR: |runtime error|SUMMARY' "$log" | sed 's/^/      /'
        fi
    done
    pids=""; names=""; n=0
}
for t in $targets; do
    run_one "$t" &
    pids="$pids $!"; names="$names $t"; n=$((n + 1))
    [ "$n" -ge "$jobs" ] && wait_all
done
[ -n "$pids" ] && wait_all
echo "fuzz: $(echo $targets | wc -w) targets x ${secs} s, $jobs at a time: $(( $(date +%s) - start )) s"
exit $status
