# tests/fuzz/fuzz.mk — the libFuzzer targets fuzz_alloc (the allocator) and fuzz_handle
# (libpyarena_handle on top of it): the sources compiled again with clang and coverage
# instrumentation into $(BUILD)/fuzz/ (never the gcc archive).
#
#   make fuzz [FUZZ_SECONDS=60]   fuzz_alloc for that long, from the committed seed corpus
#   make fuzz-handle [FUZZ_SECONDS=60]   the same for fuzz_handle
#   make fuzz-ci                  both, 60 seconds each
#   make fuzz-seed                rewrite tests/fuzz/corpus/alloc/ from it and the scratch
#                                 corpus (maintainers only, after a fuzz run; commit the result)
#   make fuzz-seed-handle         the same for tests/fuzz/corpus/handle/
#   FUZZ_SAN=address,undefined    sanitizers for the target and the allocator objects (the
#                                 default; FUZZ_SAN= builds $(BUILD)/fuzz/fuzz_alloc-plain)
#
# New corpus entries go to $(BUILD)/fuzz/corpus/ (fuzz_handle: corpus-handle/), crashes to
# $(BUILD)/fuzz/artifacts/ (handle-*); rerun one with `$(BUILD)/fuzz/fuzz_alloc <file>` or
# `$(BUILD)/fuzz/fuzz_handle <file>` (PYARENA_* settings apply, e.g. PYARENA_CHECK=2).
# fuzz_handle gets pyarena_malloc & co. from tests/fuzz/pyarena_shim.c (the real pools, plus a
# free hook and an ASan-poisoned quarantine); FUZZ_HANDLE_STRICT_GARBAGE=1 also requires every
# uncollectable object to still hang off an object without clear (see fuzz_handle.c).
# Not in TEST_TARGETS: fuzzing time is chosen by CI.

FUZZ_CC      := clang
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_SEEDS   := tests/fuzz/corpus/alloc
FUZZ_SECONDS ?= 60
FUZZ_SAN     ?= address,undefined
FUZZ_COMMA   := ,
# "-fsanitize=fuzzer" + this when linking, "-fsanitize=fuzzer-no-link" + this for the objects
FUZZ_SANX    := $(if $(FUZZ_SAN),$(FUZZ_COMMA)$(FUZZ_SAN) -fno-sanitize-recover=all -fno-omit-frame-pointer)
# objects and binary per sanitizer set, so that changing FUZZ_SAN rebuilds
FUZZ_VARIANT := $(subst $(FUZZ_COMMA),-,$(or $(FUZZ_SAN),plain))
FUZZ_BIN     := $(FUZZ_DIR)/fuzz_alloc$(if $(filter address$(FUZZ_COMMA)undefined,$(FUZZ_SAN)),,-$(FUZZ_VARIANT))
FUZZ_OBJS    := $(CORE_SRCS:%.c=$(FUZZ_DIR)/obj-$(FUZZ_VARIANT)/%.o)
FUZZ_OPTS    := -max_len=4096 -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
                -artifact_prefix=$(FUZZ_DIR)/artifacts/

# Library objects: the Makefile's flags, coverage without libFuzzer's main.
$(FUZZ_DIR)/obj-$(FUZZ_VARIANT)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(LIBFLAGS) $(CFLAGS) -fsanitize=fuzzer-no-link$(FUZZ_SANX) \
	  -MMD -MP -c $< -o $@

# fuzz_handle: the handle library's sources (HANDLE_SRCS, handle/handle.mk) and the shim.
FUZZ_H_BIN   := $(FUZZ_DIR)/fuzz_handle$(if $(filter address$(FUZZ_COMMA)undefined,$(FUZZ_SAN)),,-$(FUZZ_VARIANT))
FUZZ_H_OBJS  := $(HANDLE_SRCS:%.c=$(FUZZ_DIR)/obj-$(FUZZ_VARIANT)/%.o) \
                $(FUZZ_DIR)/obj-$(FUZZ_VARIANT)/tests/fuzz/pyarena_shim.o
FUZZ_H_SEEDS := tests/fuzz/corpus/handle
FUZZ_H_OPTS  := $(subst artifacts/,artifacts/handle-,$(FUZZ_OPTS))

$(FUZZ_BIN): tests/fuzz/fuzz_alloc.c tests/fuzz/fuzz_input.h $(FUZZ_OBJS) $(JEMALLOC_ARCHIVE)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=gnu11 $(WARN) $(CFLAGS) -fsanitize=fuzzer$(FUZZ_SANX) -Iinclude -Iallocator -Istats \
	  -o $@ $< -Wl,--start-group $(FUZZ_OBJS) $(JEMALLOC_ARCHIVE) -Wl,--end-group -lpthread

$(FUZZ_H_BIN): tests/fuzz/fuzz_handle.c tests/fuzz/fuzz_input.h $(FUZZ_H_OBJS) $(FUZZ_OBJS) \
               $(JEMALLOC_ARCHIVE)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=gnu11 $(WARN) $(CFLAGS) -fsanitize=fuzzer$(FUZZ_SANX) -Iinclude \
	  -o $@ $< $(FUZZ_H_OBJS) -Wl,--start-group $(FUZZ_OBJS) $(JEMALLOC_ARCHIVE) -Wl,--end-group \
	  -lpthread

fuzz-build: $(FUZZ_BIN) $(FUZZ_H_BIN)

fuzz: $(FUZZ_BIN)
	@mkdir -p $(FUZZ_DIR)/corpus $(FUZZ_DIR)/artifacts
	$(FUZZ_BIN) $(FUZZ_OPTS) -max_total_time=$(FUZZ_SECONDS) $(FUZZ_DIR)/corpus $(FUZZ_SEEDS)

fuzz-handle: $(FUZZ_H_BIN)
	@mkdir -p $(FUZZ_DIR)/corpus-handle $(FUZZ_DIR)/artifacts $(FUZZ_H_SEEDS)
	$(FUZZ_H_BIN) $(FUZZ_H_OPTS) -max_total_time=$(FUZZ_SECONDS) $(FUZZ_DIR)/corpus-handle $(FUZZ_H_SEEDS)

fuzz-ci:
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=60
	$(MAKE) --no-print-directory fuzz-handle FUZZ_SECONDS=60

# The seed corpus: an edge-minimal merge (every edge, tiny inputs) plus the 100 largest inputs
# of a full merge (long operation sequences reach deeper heap states).
fuzz-seed: $(FUZZ_BIN)
	@mkdir -p $(FUZZ_DIR)/corpus
	rm -rf $(FUZZ_DIR)/seed-edges $(FUZZ_DIR)/seed-full
	mkdir -p $(FUZZ_DIR)/seed-edges $(FUZZ_DIR)/seed-full
	$(FUZZ_BIN) -merge=1 -use_counters=0 $(FUZZ_DIR)/seed-edges $(FUZZ_SEEDS) $(FUZZ_DIR)/corpus
	$(FUZZ_BIN) -merge=1 $(FUZZ_DIR)/seed-full $(FUZZ_SEEDS) $(FUZZ_DIR)/corpus
	rm -rf $(FUZZ_SEEDS) && mkdir -p $(FUZZ_SEEDS)
	cp $(FUZZ_DIR)/seed-edges/* $(FUZZ_SEEDS)/
	cd $(FUZZ_DIR)/seed-full && cp $$(ls -S | head -n 100) $(CURDIR)/$(FUZZ_SEEDS)/
	@echo "$(FUZZ_SEEDS): $$(ls $(FUZZ_SEEDS) | wc -l) files, $$(cat $(FUZZ_SEEDS)/* | wc -c) bytes"

# fuzz_handle's seeds: an edge-minimal merge of the 150 largest inputs (long operation
# sequences, each covering much), then whatever edges the other inputs add; small inputs that
# each add one edge would otherwise make up most of the set. Fuzzing with -len_control=0 first
# gives longer inputs and a smaller set.
fuzz-seed-handle: $(FUZZ_H_BIN)
	@mkdir -p $(FUZZ_DIR)/corpus-handle $(FUZZ_H_SEEDS)
	rm -rf $(FUZZ_DIR)/seed-h-big $(FUZZ_DIR)/seed-h
	mkdir -p $(FUZZ_DIR)/seed-h-big $(FUZZ_DIR)/seed-h
	cp $$(ls -S $(FUZZ_H_SEEDS)/* $(FUZZ_DIR)/corpus-handle/* 2>/dev/null | head -n 150) $(FUZZ_DIR)/seed-h-big/
	$(FUZZ_H_BIN) -merge=1 -use_counters=0 $(FUZZ_DIR)/seed-h $(FUZZ_DIR)/seed-h-big
	$(FUZZ_H_BIN) -merge=1 -use_counters=0 $(FUZZ_DIR)/seed-h $(FUZZ_H_SEEDS) $(FUZZ_DIR)/corpus-handle
	rm -rf $(FUZZ_H_SEEDS) && mkdir -p $(FUZZ_H_SEEDS)
	cp $(FUZZ_DIR)/seed-h/* $(FUZZ_H_SEEDS)/
	@echo "$(FUZZ_H_SEEDS): $$(ls $(FUZZ_H_SEEDS) | wc -l) files, $$(cat $(FUZZ_H_SEEDS)/* | wc -c) bytes"

.PHONY: fuzz fuzz-ci fuzz-build fuzz-seed fuzz-handle fuzz-seed-handle
