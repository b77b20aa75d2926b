# pyarena — `make` builds build/libpyarena.so (+ build/libpyarena.a for the unit tests),
# `make test` runs every test tier, `make run` installs what is missing, builds and runs
# python3 under the preload, `make bench` runs the benchmark suite.
#
# Switches (make VAR=value), one line each:
#   CC=clang               compiler (default cc)
#   SAN=address,undefined  build the tests and the libraries they link with those sanitizers,
#                          into build-san/, and run the tiers that can run sanitized (unit,
#                          handle); the preload library itself is never sanitized
#   QUICK=1                `make bench`: a short run (about two minutes)
#   DURATION=seconds       `make stress`: how long the stress test runs (60)
#   STRESS_SECONDS=seconds `make test`: how long its stress tier runs (20; CI runs 60)
#
# Each folder contributes its own rules in a fragment (<folder>/<folder>.mk); a fragment adds
# its test runners to TEST_TARGETS so that `make test` runs them all.

CC      ?= cc
BUILD   ?= build
# Debian's interpreter when present: a python3 found first on PATH may be a wrapper script
# (pyenv) whose helper processes would each inherit the preload and print their own report.
PYTHON  ?= $(firstword $(wildcard /usr/bin/python3) python3)

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS  ?= -O2 -g
# -ftls-model=initial-exec: the preload's thread state must never make glibc allocate.
# -fno-plt and -fno-semantic-interposition keep internal calls direct.
LIBFLAGS := -std=gnu11 $(WARN) -fPIC -fvisibility=hidden -ftls-model=initial-exec \
            -fno-semantic-interposition -fno-plt -Iinclude -Iallocator -Istats \
            -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc

# The preload library carries Debian's jemalloc inside (libjemalloc_pic.a from libjemalloc-dev)
# instead of loading libjemalloc.so.2, which drags libstdc++ and libm into every process (1.5 MiB
# of RSS in a C program) and exports a second malloc and operator new. A build-time copy of the
# archive has jemalloc's malloc-family symbols made local to its own object file (weakening
# them instead would let --exclude-libs hide pyarena's too), but for malloc, free, calloc and
# posix_memalign, renamed pa_jemalloc_*: the large path calls them, jemalloc's short ways through
# its thread cache, where mallocx and dallocx take its general one (1 KiB pairs within the
# cache: 310.6 to 165.6 instructions; 64-byte aligned 256-byte ones 117 to 91 in jemalloc);
# --exclude-libs keeps every other jemalloc symbol out of libpyarena.so's dynamic table. The unit
# tests and fuzzers link the same copy (LINK_CORE).
JEMALLOC_PIC := $(shell $(CC) -print-file-name=libjemalloc_pic.a)
JEMALLOC_LOCAL := aligned_alloc memalign valloc pvalloc malloc_usable_size realloc
JEMALLOC_FAST  := malloc free calloc posix_memalign
# Nor libm (jemalloc's profiler calls log, exp and round: allocator/jemalloc_math.c has them) or
# libgcc_s (its unwinder is linked in with -static-libgcc): 0.4 MiB less RSS in every process.
JEMALLOC_MATH := log exp round

JEMALLOC_ARCHIVE = $(BUILD)/jemalloc/libjemalloc_pyarena.a
LINK_CORE = -Wl,--start-group $(BUILD)/libpyarena.a $(JEMALLOC_ARCHIVE) -Wl,--end-group -lpthread

ifneq ($(SAN),)
BUILD     := build-san
SANFLAGS  := -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

# The static archive holds everything but the exported symbols, so that unit tests link the
# allocator without replacing their own malloc.
EXPORT_SRCS  := preload/malloc.c preload/cxx.c preload/extras.c preload/atfork.c
CORE_SRCS    := $(wildcard allocator/*.c) $(wildcard stats/*.c) \
                $(filter-out $(EXPORT_SRCS),$(wildcard preload/*.c))
PRELOAD_SRCS := $(EXPORT_SRCS)
CORE_OBJS    := $(CORE_SRCS:%.c=$(BUILD)/obj/%.o)
PRELOAD_OBJS := $(PRELOAD_SRCS:%.c=$(BUILD)/obj/%.o)
# Under SAN= the archive (what the unit tests link) is built again with the sanitizers.
ARCHIVE_OBJS := $(if $(SAN),$(CORE_SRCS:%.c=$(BUILD)/obj-san/%.o),$(CORE_OBJS))

all: $(BUILD)/libpyarena.so $(BUILD)/libpyarena.a

# C++ exceptions thrown by a new_handler or std::bad_alloc unwind through operator new.
$(BUILD)/obj/preload/cxx.o: LIBFLAGS += -fexceptions

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj-san/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAGS) $(CFLAGS) $(SANFLAGS) -MMD -MP -c $< -o $@

# The preload library is built without sanitizers even under SAN=: a sanitizer runtime
# cannot sit underneath its own malloc.
$(BUILD)/jemalloc/libjemalloc_pyarena.a: $(JEMALLOC_PIC) Makefile
	@mkdir -p $(dir $@)
	objcopy $(JEMALLOC_LOCAL:%=--localize-symbol=%) \
	  $(foreach f,$(JEMALLOC_MATH) $(JEMALLOC_FAST),--redefine-sym $(f)=pa_jemalloc_$(f)) \
	  $< $@

$(BUILD)/libpyarena.so: $(CORE_OBJS) $(PRELOAD_OBJS) $(BUILD)/jemalloc/libjemalloc_pyarena.a
	$(CC) -shared -Wl,-soname,libpyarena.so -Wl,-z,now -Wl,--no-undefined -Wl,--exclude-libs,ALL \
	  -o $@ $(CORE_OBJS) $(PRELOAD_OBJS) $(BUILD)/jemalloc/libjemalloc_pyarena.a -lpthread \
	  -static-libgcc

$(BUILD)/libpyarena.a: $(ARCHIVE_OBJS)
	@rm -f $@
	ar rcs $@ $^

# Fragments add their test runners to TEST_TARGETS, and to SAN_TEST_TARGETS those whose code
# can run under the sanitizers (tiers that preload libpyarena.so cannot).
TEST_TARGETS :=
SAN_TEST_TARGETS :=
include $(sort $(wildcard */*.mk */*/*.mk))

test: $(if $(SAN),$(SAN_TEST_TARGETS),$(TEST_TARGETS))
	@echo "make test$(if $(SAN), SAN=$(SAN)): all tiers passed"

deps:
	@bash .ci/deps

# Quick start: install what is missing, build, and run a real program under the preload.
run: deps all
	@echo "== python3 (PYTHONMALLOC=malloc) under LD_PRELOAD=$(BUILD)/libpyarena.so"
	PYARENA_STATS=1 PYTHONMALLOC=malloc LD_PRELOAD=$(abspath $(BUILD)/libpyarena.so) $(PYTHON) -c \
	  'import collections; d = collections.defaultdict(list); [d[i % 97].append(str(i)) for i in range(200000)]; print("python3 ran under pyarena:", sum(map(len, d.values())), "strings")'

clean:
	rm -rf build build-san

.PHONY: all test deps run clean
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
