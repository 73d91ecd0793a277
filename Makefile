# shrink - make targets (GNU make). Each target says why it exists.
#
#   make            build libshrink.a, libshrink.so and the shrink CLI into build/
#   make demo       install missing Debian packages (as root), build, run info/generate/ppl/quantize/compare
#   make test       every test: unit tests with dispatched kernels and with SHRINK_KERNELS=ref,
#                   CLI tests, then the same suite under ASan + UBSan
#   make check      the unit + CLI tests once (quick loop while developing); also builds bench/
#                   so the benchmarks cannot break unnoticed
#   make asan       build the ASan + UBSan variant into build-asan/
#   make bench      build the benchmarks (bench/), see docs/perf.md
#   make install    install library, header, CLI and pkg-config file under $(PREFIX)
#   make clean      remove build outputs

PREFIX  ?= /usr/local
BUILD   ?= build
CC      ?= cc
OPT     ?= -O2
WERROR  ?= -Werror
SAN     ?=

# make MPI=1: the same build plus the CLI's data-parallel training (tools/cli/mpi.c) in
# build-mpi/, compiled by Open MPI's mpicc (tools/deps.sh mpi installs Debian's openmpi-bin and
# libopenmpi-dev when missing); run as mpirun -np R build-mpi/shrink train ... (docs/scale.md).
# The default build has no MPI anywhere.
ifeq ($(MPI),1)
BUILD        := build-mpi
CC           := mpicc
EXTRA_CFLAGS += -DSHRINK_MPI
MPI_DEPS      = mpi-deps
endif

WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter $(WERROR)
BASE_CFLAGS = -std=c11 $(OPT) -g -fPIC -fvisibility=hidden -fopenmp -D_GNU_SOURCE -Iinclude \
              $(WARN) $(SAN) $(EXTRA_CFLAGS)
LDLIBS   = -fopenmp -lm -lpthread $(SAN)

# ISA-specific flags apply to the files under src/kernels/x86/ only.
AVX2_FLAGS   = -mavx2 -mfma -mf16c
AVX512_FLAGS = -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 -mfma -mf16c

LIB_SRC  = $(wildcard src/*/*.c)
ISA_SRC  = $(wildcard src/kernels/x86/*.c)
CLI_SRC  = $(wildcard tools/cli/*.c)
TEST_SRC = $(wildcard tests/test_*.c)
BENCH_SRC= $(wildcard bench/bench_*.c)

LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o) $(ISA_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  = $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%) $(BUILD)/tests/test_tensors_extra
BENCHES  = $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
# Helpers of the shell tests (not tests themselves: run_all.sh runs only tests/test_*).
TEST_TOOLS = $(BUILD)/tests/json_get

.PHONY: all lib cli demo test check asan asan-check mpi-deps mpi-check bench bench-blas install uninstall clean deps fuzz
all: lib cli

lib: $(BUILD)/libshrink.a $(BUILD)/libshrink.so
cli: $(BUILD)/shrink
$(LIB_OBJ) $(CLI_OBJ): | $(MPI_DEPS)
mpi-deps:
	@sh tools/deps.sh mpi

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/src/kernels/x86/%_avx2.o: src/kernels/x86/%_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(AVX2_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/src/kernels/x86/%_avx512.o: src/kernels/x86/%_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(AVX512_FLAGS) -MMD -MP -c $< -o $@

# The llama.cpp block-type quantizers must not fuse multiply-adds (ggml's bytes).
$(BUILD)/src/kernels/q_legacy.o $(BUILD)/src/kernels/kquants.o $(BUILD)/src/kernels/q_imatrix.o: EXTRA_CFLAGS += -ffp-contract=off
# The SIMD dequantizers give the references' floats bit for bit: no fused multiply-adds.
$(BUILD)/src/kernels/x86/dequant_avx2.o $(BUILD)/src/kernels/x86/dequant_avx512.o: EXTRA_CFLAGS += -ffp-contract=off
$(BUILD)/src/kernels/x86/gemm_q8_avx2.o $(BUILD)/src/kernels/x86/gemm_q8_avx512.o: EXTRA_CFLAGS += -ffp-contract=off

$(BUILD)/libshrink.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libshrink.so: $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(LDLIBS) -Wl,-soname,libshrink.so.0

$(BUILD)/shrink: $(CLI_OBJ) $(BUILD)/libshrink.a
	$(CC) -o $@ $(CLI_OBJ) $(BUILD)/libshrink.a $(LDLIBS)

# Tests link the static library and may include internal headers (src/...).
$(BUILD)/tests/%: tests/%.c tests/test_util.h tests/test_fixture.h $(BUILD)/libshrink.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Isrc -o $@ $< $(BUILD)/libshrink.a $(LDLIBS)

# The tensor table with one more row (-DSK_TEST_EXTRA_ROLE): only tensors.c is rebuilt, its
# symbols take the place of the library's (tests/test_tensors.c, "adding a role is one row").
$(BUILD)/tests/test_tensors_extra: tests/test_tensors.c src/formats/tensors.c tests/test_util.h $(BUILD)/libshrink.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Isrc -DSK_TEST_EXTRA_ROLE -o $@ tests/test_tensors.c src/formats/tensors.c $(BUILD)/libshrink.a $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libshrink.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Isrc -o $@ $< $(BUILD)/libshrink.a $(LDLIBS)

# The Debian packages the build and the tests need (gcc with OpenMP, make). python3 is NOT
# needed: tests are C and sh only (the CLI test's JSON checks use tests/json_get.c).
deps:
	@sh tools/deps.sh

# The main job on the default model: info, a short generation, perplexity.
demo: deps all
	@sh tools/demo.sh $(BUILD)/shrink

# Quick loop: unit tests (dispatched kernels, then the scalar references) and CLI tests; the
# benchmarks are compiled too (blas_peak, which needs OpenBLAS, stays in bench-blas).
check: all $(TESTS) $(TEST_TOOLS) $(BENCHES)
	@sh tests/run_all.sh $(BUILD)

# Sanitizer build: the same tests under ASan + UBSan (no recovery: any report fails).
asan:
	$(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" all build-asan-tests
build-asan-tests: $(TESTS) $(TEST_TOOLS)
asan-check: asan
	@ASAN_OPTIONS=detect_leaks=1 sh tests/run_all.sh build-asan

# Everything CI runs.
test: deps check asan-check mpi-check

# The data-parallel path: `make MPI=1` (installs Open MPI when missing), then mpirun -np 2
# against one process with the same global batch (tests/test_mpi.sh).
mpi-check: all
	$(MAKE) MPI=1 all
	@sh tests/test_mpi.sh build-mpi/shrink $(BUILD)/shrink

bench: all $(BENCHES)

# The machine's fp32 GEMM ceiling with OpenBLAS (needs libopenblas-dev; not a dependency of
# shrink, only the yardstick of docs/perf.md).
bench-blas: $(BUILD)/bench/blas_peak
$(BUILD)/bench/blas_peak: bench/blas_peak.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -D_GNU_SOURCE -o $@ $< -lopenblas

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin \
	           $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(BUILD)/libshrink.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libshrink.so $(DESTDIR)$(PREFIX)/lib/libshrink.so.0
	ln -sf libshrink.so.0 $(DESTDIR)$(PREFIX)/lib/libshrink.so
	install -m 644 include/shrink.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(BUILD)/shrink $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|g' shrink.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/shrink.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libshrink.a $(DESTDIR)$(PREFIX)/lib/libshrink.so* \
	      $(DESTDIR)$(PREFIX)/include/shrink.h $(DESTDIR)$(PREFIX)/bin/shrink \
	      $(DESTDIR)$(PREFIX)/lib/pkgconfig/shrink.pc

clean:
	rm -rf build build-asan build-mpi

# Fuzzing (docs/style.md section 12): the libFuzzer targets fuzz/fuzz_<format>.c, built with
# clang, ASan + UBSan (no recovery) and coverage, against the library compiled the same way,
# into build-fuzz/fuzz/; beside each a replay_<format> (fuzz/fuzz_main.c: runs files through
# the target without libFuzzer). fuzz/run.sh runs them; `make fuzz-run` runs each for
# FUZZ_SECONDS (CI: 60). tests/test_fuzz_regress.c replays fuzz/regress/ and fuzz/corpus/ in
# every `make check`. WERROR is off here: clang warns where gcc does not (omp simd hints).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SRC      = $(filter-out fuzz/fuzz_main.c,$(wildcard fuzz/fuzz_*.c))
FUZZ_BINS     = $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz/%) $(FUZZ_SRC:fuzz/fuzz_%.c=$(BUILD)/fuzz/replay_%)
fuzz:
	@sh tools/deps.sh fuzz
	$(MAKE) BUILD=build-fuzz CC=$(FUZZ_CC) OPT=-O1 WERROR= EXTRA_CFLAGS=-fsanitize=fuzzer-no-link \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	    fuzz-build
fuzz-build: $(FUZZ_BINS)
fuzz-run: fuzz
	@sh fuzz/run.sh $(FUZZ_SECONDS)
$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_tok.h $(BUILD)/libshrink.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Isrc -fsanitize=fuzzer -o $@ $< $(BUILD)/libshrink.a $(LDLIBS)
$(BUILD)/fuzz/replay_%: fuzz/fuzz_%.c fuzz/fuzz_main.c fuzz/fuzz_tok.h $(BUILD)/libshrink.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Isrc -o $@ $< fuzz/fuzz_main.c $(BUILD)/libshrink.a $(LDLIBS)
$(BUILD)/tests/test_fuzz_regress: $(wildcard fuzz/fuzz_*.c fuzz/*.h)
.PHONY: fuzz-build fuzz-run fuzz-clean
clean: fuzz-clean
fuzz-clean:
	rm -rf build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
