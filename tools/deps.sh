#!/bin/sh
# deps.sh - checks that the Debian packages shrink needs to build and test are installed.
#
#   gcc        the C11 compiler (gcc-12 brings libgcc-12-dev, hence libgomp1, libasan8,
#              libubsan1 on Debian 12)
#   make       the build
#   libc6-dev  libc headers and crt files (only "Recommended" by gcc)
#   libgomp1   OpenMP runtime (-fopenmp)
#   libasan8, libubsan1   ASan + UBSan runtimes of `make test` (Debian 12 names)
#   libxml2-utils  xmllint: tests/test_report.sh checks the report's page is well-formed
# With the argument `fuzz` (run by `make fuzz`), also:
#   clang               clang 14 on Debian 12, the compiler of the libFuzzer targets
#   libclang-rt-14-dev  libFuzzer and clang's ASan/UBSan runtimes (only "Recommended" by clang)
#   libomp-14-dev       OpenMP for clang (omp.h, libomp): the library is built with -fopenmp
# With the argument `browser` (run by tests/test_report_browser.sh when chromium is missing):
#   chromium            Debian's headless-capable browser, to render `shrink report`'s page
# With the argument `mpi` (run by `make MPI=1`), also:
#   openmpi-bin, libopenmpi-dev   Open MPI's mpirun and mpicc (data-parallel training)
#
# If something is missing: as root, runs apt-get update && apt-get install -y ...; otherwise
# prints the exact apt-get line and exits 1. On a system without dpkg it only checks that a
# C compiler and make (and clang for `fuzz`) are on PATH.
set -u
pkgs="gcc make libc6-dev libgomp1 libasan8 libubsan1 libxml2-utils"
tools="cc make"
if [ "${1:-}" = fuzz ]; then
    pkgs="$pkgs clang libclang-rt-14-dev libomp-14-dev"
    tools="$tools clang"
fi
if [ "${1:-}" = browser ]; then
    pkgs="chromium"
    tools="chromium"
fi
if [ "${1:-}" = mpi ]; then
    pkgs="$pkgs openmpi-bin libopenmpi-dev"
    tools="$tools mpicc mpirun"
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
    for c in $tools; do
        command -v "$c" >/dev/null 2>&1 || { echo "deps: '$c' not found; install a C11 compiler with OpenMP and make (fuzzing: clang with libFuzzer)" >&2; exit 1; }
    done
    exit 0
fi

missing=""
for p in $pkgs; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)
    case "$st" in
        *" installed") ;;
        *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

line="apt-get update && apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -eq 0 ]; then
    echo "deps: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update && apt-get install -y --no-install-recommends $missing || {
        echo "deps: installing failed; run: $line" >&2; exit 1; }
    exit 0
fi
echo "deps: missing Debian packages:$missing" >&2
echo "deps: run as root:" >&2
echo "    $line" >&2
exit 1
