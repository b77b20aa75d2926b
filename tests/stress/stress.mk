# tests/stress/stress.mk — the stress tier: stress (threads churning and freeing each other's
# blocks, threads exiting, fork) and oom (out of memory under RLIMIT_AS), both plain programs
# run under LD_PRELOAD=$(BUILD)/libpyarena.so by tests/stress/run.sh, never sanitized.
#
#   make stress [DURATION=60]   the stress program alone, for DURATION seconds
#   make test-stress            stress for STRESS_SECONDS (20; CI sets 60) and oom (part of
#                               `make test`)

STRESS_OUT    := $(BUILD)/stress
STRESS_BINS   := $(STRESS_OUT)/stress $(STRESS_OUT)/oom
STRESS_CFLAGS := -std=c11 $(CFLAGS) $(WARN) -Wformat=2 -pthread
DURATION      ?= 60
STRESS_SECONDS ?= 20

$(STRESS_OUT)/%: tests/stress/%.c
	@mkdir -p $(dir $@)
	$(CC) $(STRESS_CFLAGS) -o $@ $<

stress-build: $(STRESS_BINS)

stress: $(BUILD)/libpyarena.so $(STRESS_BINS)
	tests/stress/run.sh $(BUILD)/libpyarena.so $(STRESS_OUT) $(DURATION) stress

test-stress: $(BUILD)/libpyarena.so $(STRESS_BINS)
	tests/stress/run.sh $(BUILD)/libpyarena.so $(STRESS_OUT) $(STRESS_SECONDS) stress oom

TEST_TARGETS += test-stress
.PHONY: stress stress-build test-stress
