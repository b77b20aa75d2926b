# handle/handle.mk — libpyarena_handle (.so and .a), its example, its gc timing program and
# `make test-handle`. Objects and tests take $(SANFLAGS) (the library is sanitized with the
# tests under SAN=; libpyarena.so itself never is).
#
#   make test-handle     Criterion tests, example output check (shared and static), preload probe,
#                        the handles section of the stats report
#   make bench-handle    gc_bench (C) and gc_bench.py (CPython) at N=1e6; N=... to change

HANDLE_SRCS := handle/object.c handle/collect.c handle/weakref.c handle/lock.c handle/stats.c
HANDLE_OBJS := $(HANDLE_SRCS:%.c=$(BUILD)/handle-obj/%.o)
HANDLE_TESTS := $(sort $(wildcard tests/handle/test_*.c))
HANDLE_USERFLAGS := -std=gnu11 $(WARN) -Iinclude $(CFLAGS) $(SANFLAGS)
# -lc before -lpyarena: the programs get pyarena_* without pyarena's malloc interposing the
# process's malloc (libc comes first in the lookup order); LD_PRELOAD is what does that.
HANDLE_LINK := -L$(BUILD) -lpyarena_handle -lc -lpyarena -Wl,-rpath,$(abspath $(BUILD))
N ?= 1000000

$(BUILD)/handle-obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAGS) $(CFLAGS) $(SANFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libpyarena_handle.so: $(HANDLE_OBJS) $(BUILD)/libpyarena.so
	$(CC) -shared -Wl,-soname,libpyarena_handle.so -Wl,-z,now -Wl,--no-undefined $(SANFLAGS) \
	  -o $@ $(HANDLE_OBJS) -L$(BUILD) -lpyarena -Wl,-rpath,'$$ORIGIN' -lpthread

$(BUILD)/libpyarena_handle.a: $(HANDLE_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tests/handle/test_handle: $(HANDLE_TESTS) tests/handle/handle_test.h $(BUILD)/libpyarena_handle.so
	@mkdir -p $(dir $@)
	$(CC) $(HANDLE_USERFLAGS) -o $@ $(HANDLE_TESTS) -lcriterion $(HANDLE_LINK)

$(BUILD)/tests/handle/preload_probe: tests/handle/preload_probe.c $(BUILD)/libpyarena_handle.so
	@mkdir -p $(dir $@)
	$(CC) $(HANDLE_USERFLAGS) -o $@ $< -L$(BUILD) -lpyarena_handle -ldl -Wl,-rpath,$(abspath $(BUILD))

$(BUILD)/handle/example: handle/example.c $(BUILD)/libpyarena_handle.so
	@mkdir -p $(dir $@)
	$(CC) $(HANDLE_USERFLAGS) -o $@ $< $(HANDLE_LINK)

# The same program against the static archive (libpyarena.so stays shared: one allocator).
$(BUILD)/handle/example_static: handle/example.c $(BUILD)/libpyarena_handle.a $(BUILD)/libpyarena.so
	@mkdir -p $(dir $@)
	$(CC) $(HANDLE_USERFLAGS) -o $@ $< $(BUILD)/libpyarena_handle.a -lpthread -L$(BUILD) -lc -lpyarena \
	  -Wl,-rpath,$(abspath $(BUILD))

$(BUILD)/tests/handle/leak_report: tests/handle/leak_report.c $(BUILD)/libpyarena_handle.so
	@mkdir -p $(dir $@)
	$(CC) $(HANDLE_USERFLAGS) -o $@ $< $(HANDLE_LINK)

$(BUILD)/handle/gc_bench: handle/gc_bench.c $(BUILD)/libpyarena_handle.so
	@mkdir -p $(dir $@)
	$(CC) $(HANDLE_USERFLAGS) -o $@ $< $(HANDLE_LINK)

test-handle: $(BUILD)/tests/handle/test_handle $(BUILD)/tests/handle/preload_probe \
             $(BUILD)/handle/example $(BUILD)/handle/example_static $(BUILD)/handle/gc_bench \
             $(BUILD)/tests/handle/leak_report
	$(BUILD)/tests/handle/test_handle
	$(BUILD)/handle/example | diff -u tests/handle/example.expected -
	$(BUILD)/handle/example_static | diff -u tests/handle/example.expected -
	sh tests/handle/preload_test.sh $(BUILD) "$(SAN)"
	$(BUILD)/handle/gc_bench 20000 > /dev/null
	$(PYTHON) tests/handle/check_report.py $(BUILD)/tests/handle/leak_report
	@echo "test-handle: passed"

bench-handle: $(BUILD)/handle/gc_bench
	$(BUILD)/handle/gc_bench $(N)
	$(PYTHON) handle/gc_bench.py $(N)

TEST_TARGETS += test-handle
SAN_TEST_TARGETS += test-handle
.PHONY: test-handle bench-handle
