# bgfm: build, dependencies, demo, tests, sanitizers, benchmarks, install.
# Sources are found by wildcard: pipeline/*.c and stages/*/*.c make libbgfm.a;
# pipeline/main.c makes build/bgfm; tests/unit/test_*.c each make a cmocka binary.

PREFIX   ?= /usr/local
BUILD    ?= build
CC       := mpicc
ARCH     ?= -march=native
OPT      ?= -O2
WERROR   ?= -Werror
WARN     := -Wall -Wextra -Wpedantic -Wshadow -Wformat=2 -Wstrict-prototypes \
            -Wmissing-prototypes -Wvla -Wno-unused-parameter -Wnull-dereference \
            -Wdouble-promotion -Wcast-qual $(WERROR)
PKGS     := hdf5-openmpi yaml-0.1 openblas libisal zlib
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GITREV   := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
CFLAGS   ?= $(OPT) -g $(ARCH)
ALL_CFLAGS = -std=c17 -D_GNU_SOURCE $(WARN) -Iinclude -I/usr/include/nifti $(PKG_CFLAGS) \
             -DBGFM_VERSION='"$(VERSION)"' -DBGFM_GITREV='"$(GITREV)"' $(CFLAGS)
LDLIBS   = $(PKG_LIBS) -llapacke -lnifti2 -lm
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

LIB_SRC  := $(filter-out pipeline/main.c,$(wildcard pipeline/*.c)) $(wildcard stages/*/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SRC := $(wildcard tests/unit/test_*.c)
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all deps test check demo bench install clean docs-check fuzz
all: $(BUILD)/bgfm $(TEST_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	@$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libbgfm.a: $(LIB_OBJ)
	@rm -f $@
	@echo "  AR    $@"
	@ar rcs $@ $^

$(BUILD)/bgfm: $(BUILD)/obj/pipeline/main.o $(BUILD)/libbgfm.a
	@echo "  LD    $@"
	@$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libbgfm.a
	@mkdir -p $(dir $@)
	@echo "  TEST  $@"
	@$(CC) $(ALL_CFLAGS) -Itests/lib -o $@ $< $(BUILD)/libbgfm.a $(LDLIBS) -lcmocka

-include $(LIB_OBJ:.o=.d) $(BUILD)/obj/pipeline/main.d

# Installs missing Debian packages (non-interactive when root, else prints the line).
deps:
	@./scripts/deps.sh

test: all
	@OPENBLAS_NUM_THREADS=1 ./tests/run.sh

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer.
check:
	$(MAKE) BUILD=build-san CFLAGS="$(SAN_FLAGS)" ARCH= all
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  OPENBLAS_NUM_THREADS=1 BGFM_BUILD=build-san ./tests/run.sh

demo: deps all
	@./scripts/demo.sh

bench: all
	@./bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BUILD)/bgfm $(DESTDIR)$(PREFIX)/bin/bgfm

clean:
	rm -rf $(BUILD) build-san
