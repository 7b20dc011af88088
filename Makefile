# bgfm: build, dependencies, demo, tests, sanitizers, benchmarks, install.
# Sources are found by wildcard: pipeline/<room>/*.c (engine, io, runtime, commands:
# docs/architecture.md) and stages/<kind>/*.c make libbgfm.a; pipeline/engine/main.c makes
# build/bgfm; tests/unit/test_*.c each make a cmocka binary.

PREFIX   ?= /usr/local
BUILD    ?= build
CC       := mpicc
ARCH     ?= -march=native
OPT      ?= -O2
WERROR   ?= -Werror
WARN     := -Wall -Wextra -Wpedantic -Wshadow -Wformat=2 -Wstrict-prototypes \
            -Wmissing-prototypes -Wvla -Wno-unused-parameter -Wnull-dereference \
            -Wdouble-promotion -Wcast-qual $(WERROR)
comma    := ,
PKGS     := hdf5-openmpi yaml-0.1 openblas libisal zlib
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GITREV   := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
CFLAGS   ?= $(OPT) -g $(ARCH)
# -pthread: reader threads (graphs.c, prefetch.c, ckpt.c) and the thread team (par.c)
ALL_CFLAGS = -std=c17 -D_GNU_SOURCE -pthread $(WARN) -Iinclude -I/usr/include/nifti $(PKG_CFLAGS) \
             -DBGFM_VERSION='"$(VERSION)"' -DBGFM_GITREV='"$(GITREV)"' $(CFLAGS)
# HDF5 and LAPACKE are linked from their static archives where Debian ships them (it
# does, in libhdf5-openmpi-dev and liblapacke-dev). The shared libhdf5_openmpi pulls in
# libcurl and about 30 more libraries for a remote-file driver bgfm never uses, and
# liblapacke its own reference LAPACK and BLAS: loading and relocating them cost about
# 11 ms of every bgfm start, a fifth of `bgfm export` (docs/performance.md, "Export").
# With the archives only the objects bgfm calls are linked, `--as-needed` drops the
# libraries they do not need, and the LAPACK routines come from OpenBLAS.
# Recursive (=), not simple (:=), so that `make demo` sees what its own `deps` step
# installed; libmpi comes from mpicc, after the archive that needs it.
HDF5_LIBDIR = $(patsubst -L%,%,$(filter -L%/hdf5/openmpi,$(shell pkg-config --libs-only-L hdf5-openmpi 2>/dev/null)))
HDF5_A      = $(wildcard $(HDF5_LIBDIR)/libhdf5.a)
HDF5_EXTRA  = $(shell sed -n 's/^ *Extra libraries: *//p' $(HDF5_LIBDIR)/libhdf5.settings 2>/dev/null)
LAPACKE_A   = $(wildcard $(shell pkg-config --variable=libdir lapacke 2>/dev/null)/liblapacke.a)
LINK_HDF5   = $(if $(HDF5_A),$(HDF5_A) -Wl$(comma)--push-state$(comma)--as-needed $(HDF5_EXTRA) -Wl$(comma)--pop-state)
LINK_PKGS   = $(if $(HDF5_A),$(shell pkg-config --libs $(filter-out hdf5-openmpi,$(PKGS)) 2>/dev/null),$(PKG_LIBS))
LDLIBS   = $(or $(LAPACKE_A),-llapacke) $(LINK_HDF5) $(LINK_PKGS) -lnifti2 -lm -pthread
# The program alone also takes OpenBLAS from its archive (1.5 ms less start-up: the
# shared library's 12,000 symbol relocations; +26 MB of kernels for every CPU type in
# the binary); the test programs keep the shared library, to keep the build small.
OPENBLAS_A  = $(wildcard $(shell pkg-config --variable=libdir openblas 2>/dev/null)/libopenblas.a)
LDLIBS_BGFM = $(if $(OPENBLAS_A),$(patsubst -lopenblas,$(OPENBLAS_A) -lgfortran,$(LDLIBS)),$(LDLIBS))
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

MAIN_SRC := pipeline/engine/main.c
LIB_SRC  := $(filter-out $(MAIN_SRC),$(wildcard pipeline/*/*.c)) $(wildcard stages/*/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SRC := $(wildcard tests/unit/test_*.c)
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all bgfm deps deps-test test check demo bench install clean docs-check fuzz fuzz-build
all: $(BUILD)/bgfm $(TEST_BIN) $(BUILD)/tests/bgfm-test
# the program alone (no cmocka needed): what `make demo` and `make install` build
bgfm: $(BUILD)/bgfm

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	@$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libbgfm.a: $(LIB_OBJ)
	@rm -f $@
	@echo "  AR    $@"
	@ar rcs $@ $^

$(BUILD)/bgfm: $(BUILD)/obj/pipeline/engine/main.o $(BUILD)/libbgfm.a
	@echo "  LD    $@"
	@$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_BGFM)

$(BUILD)/tests/%: tests/unit/%.c $(wildcard tests/lib/*.h) $(BUILD)/libbgfm.a
	@mkdir -p $(dir $@)
	@echo "  TEST  $@"
	@$(CC) $(ALL_CFLAGS) -Itests/lib -o $@ $< $(BUILD)/libbgfm.a $(LDLIBS) -lcmocka

# The test driver: build/bgfm's commands with the test hooks of ctx.h set from BGFM_TEST_*
# variables (tests/lib/bgfm_test.c); the product binary never reads them.
$(BUILD)/tests/bgfm-test: tests/lib/bgfm_test.c $(BUILD)/libbgfm.a
	@mkdir -p $(dir $@)
	@echo "  TEST  $@"
	@$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libbgfm.a $(LDLIBS)

-include $(LIB_OBJ:.o=.d) $(BUILD)/obj/pipeline/engine/main.d

# The sources that write BGFM_GITREV into outputs (manifests, exports, --version) are
# rebuilt when the checked-out commit changes: $(BUILD)/gitrev is rewritten only then.
VERSIONED := $(shell grep -l 'BGFM_GITREV\|BGFM_VERSION' $(MAIN_SRC) $(LIB_SRC) 2>/dev/null)
$(shell mkdir -p $(BUILD) && { [ "$$(cat $(BUILD)/gitrev 2>/dev/null)" = "$(GITREV)" ] || echo "$(GITREV)" >$(BUILD)/gitrev; })
$(VERSIONED:%.c=$(BUILD)/obj/%.o): $(BUILD)/gitrev

# Installs missing Debian packages (non-interactive when root, else prints the apt-get
# line): `deps` what building and running needs, `deps-test` what testing needs on top
# (scripts/deps.sh lists both).
deps:
	@./scripts/deps.sh run

deps-test: deps
	@./scripts/deps.sh test

# Tests at a time (tests/run.sh; the Slurm and network-namespace tests never beside each other).
TEST_JOBS ?= 2
test: deps-test all
	@OPENBLAS_NUM_THREADS=1 TEST_JOBS=$(TEST_JOBS) ./tests/run.sh

# The suite under AddressSanitizer + UndefinedBehaviorSanitizer (leak detection on for the
# unit tests, off for mpirun'd programs: Open MPI leaks by design; the shell tests of
# SAN_SKIP are left out), the unit tests under valgrind memcheck (built for x86-64-v3 =
# AVX2, not -march=native: valgrind 3.19 cannot decode AVX-512, and without AVX the vector
# kernels do not compile; two at a time, tests/valgrind.sh), then a 30 s smoke run of every
# fuzz target. docs/reliability.md.
SAN_ENV  := UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 OPENBLAS_NUM_THREADS=1 \
            BGFM_BUILD=build-san TEST_JOBS=$(TEST_JOBS)
# Unit tests that call MPI_Init run without leak detection (Open MPI's init allocations
# have no usable stacks for suppressions); every other unit test runs with it.
SAN_MPI_UNIT := $(basename $(notdir $(shell grep -l MPI_Init $(TEST_SRC) 2>/dev/null)))
SAN_EMPTY    :=
SAN_BAR       = $(subst $(SAN_EMPTY) $(SAN_EMPTY),|,$(strip $(1)))
SAN_LEAK_PAT  = build-san/tests/($(call SAN_BAR,$(filter-out $(SAN_MPI_UNIT),$(TEST_SRC:tests/unit/%.c=%))))$$
SAN_MPI_PAT   = build-san/tests/($(call SAN_BAR,$(SAN_MPI_UNIT)))$$
# Shell tests that check 2/4 does not run again under the sanitizers (`make test` runs every
# one of them): they run no bgfm C code of their own, or only paths that the sanitized tests
# named here run as well. Each with its reason:
#   e2e/docs_commands  documentation: the commands of README.md and docs/ as written, on the
#                      demo cohort (the slowest test under the sanitizers, about 380 s); every
#                      subcommand it runs has its own sanitized test (engine, config_errors,
#                      connectivity_pipeline, export, scale, report_html, report_adapt,
#                      finetune_pipeline, prompt_pipeline, corpus_pipeline, synth, yaml_doc,
#                      model_torch, slurm_submit), real-size atlases run in scale (AAL through
#                      pretrain), parcellate_ranks and parcellate_extract
#   e2e/deps           package lists read from `make -n` and scripts/deps.sh; no bgfm program
#   e2e/structure      the shape of the source tree (scripts/sizes.py, scripts/cycles.py on
#                      the objects' symbols); no bgfm program
#   e2e/export_python  the unit tests of python/bgfm_torch; no bgfm program
#   e2e/slurm_local, e2e/slurm_requeue, e2e/slurm_cluster
#                      Slurm's daemons, job scripts and requeue; bgfm's side of them is
#                      sanitized in unit/test_submit and e2e/slurm_submit (the scripts
#                      `bgfm submit` writes), e2e/pretrain_signal (SIGUSR1/SIGTERM: checkpoint,
#                      exit 75, bitwise resume), mpi/pretrain_resume and mpi/pretrain_ranks;
#                      slurm_local's one-allocation job (jobs/slurm/pipeline.sbatch) ran
#                      build/bgfm, not build-san/bgfm, under this check as well
#   e2e/cluster_netns  Open MPI over TCP between network namespaces: the same bgfm code as
#                      mpi/pretrain_ranks (4 ranks, BGFM_DEBUG_SYNC) and, for the SIGKILLed
#                      rank and the resume, faults/kill_and_paths and mpi/pretrain_resume
SAN_SKIP      := tests/e2e/(docs_commands|deps|structure|export_python|slurm_local|slurm_requeue|slurm_cluster|cluster_netns)\.sh$$
VG_ARCH  := -march=x86-64-v3
VALGRIND := valgrind -q --num-callers=50 --error-exitcode=1 --leak-check=full \
            --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
            --suppressions=tests/valgrind.supp --gen-suppressions=all
check: deps-test
	@fail=""; \
	$(MAKE) BUILD=build-san CFLAGS="$(SAN_FLAGS) $(ARCH)" WERROR= all || exit 1; \
	echo "== check 1/4: unit tests under ASan+UBSan, leak detection on"; \
	$(SAN_ENV) ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 ./tests/run.sh '$(SAN_LEAK_PAT)' \
	  || fail="$$fail asan-unit"; \
	echo "== check 2/4: MPI unit tests and shell tests (but SAN_SKIP's) under ASan+UBSan, leak detection off"; \
	$(SAN_ENV) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 ./tests/run.sh '$(SAN_MPI_PAT)|^tests/' '$(SAN_SKIP)' \
	  || fail="$$fail asan-suite"; \
	echo "== check 3/4: unit tests under valgrind memcheck"; \
	$(MAKE) BUILD=build-vg ARCH=$(VG_ARCH) all || exit 1; \
	VALGRIND="$(VALGRIND)" ./tests/valgrind.sh || fail="$$fail valgrind"; \
	echo "== check 4/4: every fuzz target for 30 s"; \
	$(MAKE) fuzz FUZZ_TIME=30 || fail="$$fail fuzz"; \
	if [ -n "$$fail" ]; then echo "check FAILED:$$fail"; exit 1; fi; echo "check passed"

# ---- fuzzing: clang + libFuzzer + ASan/UBSan. The library sources are compiled again
# with clang (coverage-instrumented) into build-fuzz; MPI flags come from mpicc.
FUZZ_CC    ?= clang
FUZZ_BUILD := build-fuzz
FUZZ_TIME  ?= 600
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
MPI_CFLAGS  = $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS    = $(shell mpicc --showme:link 2>/dev/null)
FUZZ_CFLAGS = -std=c17 -D_GNU_SOURCE -Iinclude -I/usr/include/nifti $(PKG_CFLAGS) $(MPI_CFLAGS) \
              -DBGFM_VERSION='"$(VERSION)"' -DBGFM_GITREV='"$(GITREV)"' -O1 -g $(FUZZ_SAN) \
              '-DCMPLX(x,y)=__builtin_complex((double)(x),(double)(y))'
FUZZ_OBJ   := $(LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_BIN   := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  FZCC  $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_XFLAGS) $(filter-out -Werror,$(WARN)) \
	  -Wno-psabi -Wno-double-promotion -Wno-format-nonliteral -Werror=implicit-function-declaration \
	  -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

# clang 14 has no "sha" for __builtin_cpu_supports: the fuzz build hashes portably
# (and glibc defines CMPLX only for gcc: FUZZ_CFLAGS gives it to clang).
$(FUZZ_BUILD)/obj/pipeline/io/sha256.o: FUZZ_XFLAGS := '-D__builtin_cpu_supports(x)=0'

$(FUZZ_BUILD)/libbgfm.a: $(FUZZ_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h tests/lib/*.h) $(FUZZ_BUILD)/libbgfm.a
	@echo "  FUZZ  $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -Itests/lib $(WARN) -fsanitize=fuzzer -o $@ $< $(FUZZ_BUILD)/libbgfm.a \
	  $(LDLIBS) $(MPI_LIBS) -lz -lpthread

-include $(FUZZ_OBJ:.o=.d)

fuzz-build: $(FUZZ_BIN)

# Every fuzz target for FUZZ_TIME seconds (two at a time), then reports figures.
fuzz: fuzz-build
	@FUZZ_TIME=$(FUZZ_TIME) ./tests/fuzz/run.sh

demo: deps bgfm
	@./scripts/demo.sh

bench: deps-test all
	@./bench/run.sh

install: bgfm
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BUILD)/bgfm $(DESTDIR)$(PREFIX)/bin/bgfm

clean:
	rm -rf $(BUILD) build-san build-vg build-fuzz
