# Unit tier: Criterion tests of the internals, linked against the static archive (the test
# binary keeps its own malloc; the allocator under test is reached through pa_* names).
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(BUILD)/tests/unit

$(UNIT_BIN): $(UNIT_SRCS) tests/unit/helpers.h $(BUILD)/libpyarena.a $(JEMALLOC_ARCHIVE)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(CFLAGS) $(SANFLAGS) -Wall -Wextra -Wno-unused-parameter -Iinclude -Iallocator -Istats \
	  -o $@ $(UNIT_SRCS) $(LINK_CORE) -lcriterion -lm

test-unit: $(UNIT_BIN)
	$(UNIT_BIN) --jobs 2

TEST_TARGETS += test-unit
SAN_TEST_TARGETS += test-unit
.PHONY: test-unit
