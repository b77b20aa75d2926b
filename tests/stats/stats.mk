# Stats tier: programs with a known allocation pattern run under the preload; the report is
# parsed (JSON with python3's json module) and checked figure by figure; and a setuid copy
# of a -lpyarena program (when run as root) must write no stats file.
STATS_BIN := $(BUILD)/tests/stats_pattern $(BUILD)/tests/stats_link

$(BUILD)/tests/stats_pattern: tests/stats/stats_pattern.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(CFLAGS) -Wall -Wextra -pthread -o $@ $<

$(BUILD)/tests/stats_link: tests/stats/stats_link.c $(BUILD)/libpyarena.so
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(CFLAGS) -Wall -Wextra -Iinclude -o $@ $< -L$(BUILD) -lpyarena \
	  -Wl,-rpath,$(abspath $(BUILD))

test-stats: $(STATS_BIN) $(BUILD)/libpyarena.so
	$(PYTHON) tests/stats/check_stats.py $(BUILD) $(BUILD)/libpyarena.so

TEST_TARGETS += test-stats
.PHONY: test-stats
