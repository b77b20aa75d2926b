# bench/bench.mk — the benchmark suite (see bench/run.py for what is measured).
#
#   make bench           build the benchmark programs and run the full suite (< 20 min)
#   make bench QUICK=1   a short run (about two minutes)
#   make bench-build     only build the programs, into $(BUILD)/bench/
#
# The programs are plain C11 that call malloc; the runner swaps the allocator with LD_PRELOAD.
# handle_refs and handle_trees link libpyarena_handle instead (and run with and without the
# preload); the runner also runs $(BUILD)/handle/gc_bench, built here too.
# They are not tests: nothing here is added to TEST_TARGETS.

BENCH_DIR     := $(BUILD)/bench
BENCH_PROGS   := bench_micro bench_threads bench_rss bench_fastpath
BENCH_BINS    := $(BENCH_PROGS:%=$(BENCH_DIR)/%)
# Programs of the handle shim rows: they link libpyarena_handle (and libpyarena.so) as
# handle/handle.mk's programs do; the runner also uses $(BUILD)/handle/gc_bench.
BENCH_HANDLE_PROGS := handle_refs handle_trees
BENCH_HANDLE_BINS  := $(BENCH_HANDLE_PROGS:%=$(BENCH_DIR)/%)
BENCH_CFLAGS  := -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -pthread
BENCH_PYTHON  ?= $(PYTHON)

# Build libpyarena.so first once its sources exist; until then the runner compares the peers
# against glibc and says that pyarena was skipped.
BENCH_LIB_DEP := $(if $(PRELOAD_SRCS),$(BUILD)/libpyarena.so)

$(BENCH_DIR)/%: bench/%.c bench/common.h
	@mkdir -p $(BENCH_DIR)
	$(CC) $(BENCH_CFLAGS) $< -o $@

$(BENCH_HANDLE_BINS): $(BENCH_DIR)/%: bench/%.c bench/common.h bench/handle_common.h \
                     include/pyarena/handle.h $(BUILD)/libpyarena_handle.so
	@mkdir -p $(BENCH_DIR)
	$(CC) $(BENCH_CFLAGS) -Iinclude $< -o $@ $(HANDLE_LINK)

bench-build: $(BENCH_BINS) $(BENCH_HANDLE_BINS) $(BUILD)/handle/gc_bench

bench: bench-build $(BENCH_LIB_DEP)
	$(BENCH_PYTHON) bench/run.py --bin-dir $(BENCH_DIR) --lib $(BUILD)/libpyarena.so \
	  $(if $(filter-out 0,$(QUICK)),--quick)

.PHONY: bench bench-build
