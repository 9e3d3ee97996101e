# detvm - top-level build.  `make` builds build/detvm and the guests;
# `make test` runs every test; `make demo` runs the demo.  Both first install
# the Debian packages we need when they are missing (scripts/deps.sh).

CC      ?= gcc
BUILD   := build
CFLAGS  := -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -I. -MMD -MP
LDLIBS  := -lzstd -lxxhash -lsqlite3 -lnettle -lpthread -lm

LIB_SRCS  := $(sort $(wildcard common/*.c vmm/*.c vmm/devices/*.c trace-format/*.c \
                recorder/*.c replayer/*.c inspector/*.c checkpoint/*.c))
CLI_SRCS  := $(sort $(wildcard cli/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
CLI_OBJS  := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps test unit e2e demo clean guests bench soak bins sanitize sanitize-bins
all: $(BUILD)/detvm guests $(UNIT_BINS)
bins: $(BUILD)/detvm $(UNIT_BINS)

# The sanitizer builds of detvm and the unit tests: build/san with
# AddressSanitizer, LeakSanitizer and UBSan, build/tsan with
# ThreadSanitizer (which does not model the fences virtio_mmio.c uses for
# guest memory: a warning, not an error).  `make test` runs the tests
# against both too (scripts/run-sanitized.sh).
SAN_FLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
TSAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer -Wno-error=tsan

deps:
	@scripts/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libdetvm.a: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/detvm: $(CLI_OBJS) $(BUILD)/libdetvm.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libdetvm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libdetvm.a $(LDLIBS) -lcmocka

include guests/guests.mk

unit: $(UNIT_BINS)
	@scripts/run-unit.sh $(UNIT_BINS)

e2e: $(BUILD)/detvm guests
	@tests/e2e/run.sh

test: deps
	@$(MAKE) --no-print-directory all sanitize-bins
	@scripts/run-tests.sh

sanitize-bins:
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/san CFLAGS="$(CFLAGS:-O2=-O1) $(SAN_FLAGS)" bins
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/tsan CFLAGS="$(CFLAGS:-O2=-O1) $(TSAN_FLAGS)" bins

# The sanitizer stages of `make test` alone.
sanitize: deps
	@$(MAKE) --no-print-directory all sanitize-bins
	@scripts/run-sanitized.sh $(BUILD)/san asan; a=$$?; \
	 scripts/run-sanitized.sh $(BUILD)/tsan tsan && [ $$a -eq 0 ]

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh

bench: all
	@bench/run.sh

# Minutes: every guest recorded under bad host timing, replayed (not in test).
soak: all
	@tests/soak/soak.sh

clean:
	rm -rf $(BUILD)

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d)
