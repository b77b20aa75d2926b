# tests/integration/integration.mk — the integration tier: real programs run with
# LD_PRELOAD=$(BUILD)/libpyarena.so (python3, threaded C, fork, RSS burst, C++ new/delete, malloc
# API semantics, shell tools and gcc, exported symbols, bad input). The test programs never link pyarena;
# they are built without sanitizers even under SAN= (a sanitizer runtime cannot run under a
# preloaded malloc). `make test-integration` builds them and runs tests/integration/run.sh.

INTEG_SRC := tests/integration
INTEG_OUT := $(BUILD)/integration
INTEG_CFLAGS := -std=c11 -O2 -g -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
                -Wformat=2 -pthread
INTEG_CXXFLAGS := -std=c++17 -O2 -g -Wall -Wextra -Wshadow -pthread
INTEG_C_PROGS := xthread forkthreads burst arena_path api bad_input handover idle_threads \
                 large_decay large_reuse fork_handlers fork_register remote_reclaim
INTEG_BINS := $(INTEG_C_PROGS:%=$(INTEG_OUT)/%) $(INTEG_OUT)/cxx_new $(INTEG_OUT)/fork_register_cxx

$(INTEG_OUT)/%: $(INTEG_SRC)/%.c $(INTEG_SRC)/probe.h
	@mkdir -p $(dir $@)
	$(CC) $(INTEG_CFLAGS) -o $@ $< -ldl

$(INTEG_OUT)/cxx_new: $(INTEG_SRC)/cxx_new.cpp
	@mkdir -p $(dir $@)
	g++ $(INTEG_CXXFLAGS) -o $@ $< -ldl

$(INTEG_OUT)/fork_register_cxx: $(INTEG_SRC)/fork_register.c
	@mkdir -p $(dir $@)
	g++ -x c++ $(INTEG_CXXFLAGS) -o $@ $<

$(INTEG_OUT)/early_ctor.so: $(INTEG_SRC)/early_ctor.c
	@mkdir -p $(dir $@)
	$(CC) $(INTEG_CFLAGS) -fPIC -shared -o $@ $< -ldl

$(INTEG_OUT)/fork_handlers.so: $(INTEG_SRC)/fork_handlers.c
	@mkdir -p $(dir $@)
	$(CC) $(INTEG_CFLAGS) -DHANDLERS -fPIC -shared -o $@ $<

INTEG_BINS += $(INTEG_OUT)/early_ctor.so $(INTEG_OUT)/fork_handlers.so

integration-progs: $(INTEG_BINS)

test-integration: $(BUILD)/libpyarena.so $(INTEG_BINS)
	$(INTEG_SRC)/run.sh $(abspath $(BUILD)/libpyarena.so) $(abspath $(INTEG_OUT))

TEST_TARGETS += test-integration
.PHONY: integration-progs test-integration
