/*
 * test_debug_exit.c - unit tests for isa-debug-exit and the PM1a power-off
 * register (vmm/devices/debug_exit.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/bus.h"
#include "vmm/devices/debug_exit.h"

static struct bus bus;
static struct debug_exit dbg;

static int setup(void **st)
{
	(void)st;
	bus_init(&bus, "pio");
	debug_exit_init(&dbg);
	assert_int_equal(debug_exit_register(&dbg, &bus), 0);
	return 0;
}

static void out(uint16_t port, uint64_t v, unsigned size)
{
	uint8_t d[8];

	bus_le_put(d, size, v);
	assert_int_equal(bus_access(&bus, port, d, size, true, NULL), BUS_OK);
}

static uint64_t in(uint16_t port, unsigned size)
{
	uint8_t d[8];

	memset(d, 0x5a, sizeof(d));
	assert_int_equal(bus_access(&bus, port, d, size, false, NULL), BUS_OK);
	return bus_le_get(d, size);
}

static void test_nothing_requested(void **st)
{
	uint32_t v = 1234;

	(void)st;
	assert_false(debug_exit_requested(&dbg, &v));
	assert_int_equal(v, 1234);
	assert_false(poweroff_requested(&dbg));
	assert_false(debug_exit_requested(&dbg, NULL));
}

static void test_exit_byte(void **st)
{
	uint32_t v = 0;

	(void)st;
	out(0xf4, 0x2a, 1);
	assert_true(debug_exit_requested(&dbg, &v));
	assert_int_equal(v, 0x2a);
	assert_false(poweroff_requested(&dbg));
}

static void test_exit_word_and_dword(void **st)
{
	uint32_t v = 0;

	(void)st;
	out(0xf4, 0xbeef, 2);
	assert_true(debug_exit_requested(&dbg, &v));
	assert_int_equal(v, 0xbeef);
	setup(NULL);
	out(0xf4, 0xdeadbeef, 4);
	assert_true(debug_exit_requested(&dbg, &v));
	assert_int_equal(v, 0xdeadbeef);
	/* Value 0 is a request too (status 1). */
	setup(NULL);
	out(0xf4, 0, 1);
	assert_true(debug_exit_requested(&dbg, &v));
	assert_int_equal(v, 0);
}

static void test_first_request_wins(void **st)
{
	uint32_t v = 0;

	(void)st;
	out(0xf4, 3, 1);
	out(0xf4, 5, 1);
	assert_true(debug_exit_requested(&dbg, &v));
	assert_int_equal(v, 3);
}

static void test_other_offsets_and_reads(void **st)
{
	(void)st;
	out(0xf5, 1, 1);
	out(0xf6, 0xffff, 2);
	out(0xf7, 7, 1);
	assert_false(debug_exit_requested(&dbg, NULL));
	assert_int_equal(in(0xf4, 1), 0xff);
	assert_int_equal(in(0xf4, 4), 0xffffffff);
	assert_int_equal(in(0xf6, 2), 0xffff);
	assert_false(debug_exit_requested(&dbg, NULL));
	/* 8 bytes would run past the 4-port region: refused by the bus. */
	uint8_t d[8] = { 0 };
	assert_int_equal(bus_access(&bus, 0xf4, d, 8, true, NULL), BUS_STRADDLE);
	assert_false(debug_exit_requested(&dbg, NULL));
}

static void test_poweroff_word(void **st)
{
	(void)st;
	out(0x604, 0x0000, 2);
	assert_false(poweroff_requested(&dbg));
	out(0x604, 0x1c00, 2); /* SLP_TYP only */
	assert_false(poweroff_requested(&dbg));
	out(0x604, 0x2000, 2); /* SLP_EN */
	assert_true(poweroff_requested(&dbg));
	assert_false(debug_exit_requested(&dbg, NULL));
	assert_int_equal(in(0x604, 2), 0);
	assert_int_equal(in(0x605, 1), 0);
}

static void test_poweroff_bytewise(void **st)
{
	(void)st;
	out(0x604, 0xff, 1); /* low byte: bit 13 is not in it */
	assert_false(poweroff_requested(&dbg));
	out(0x605, 0xdf, 1); /* high byte without bit 5 */
	assert_false(poweroff_requested(&dbg));
	out(0x605, 0x20, 1);
	assert_true(poweroff_requested(&dbg));
	/* SLP_EN does not stay set in the register. */
	assert_int_equal(dbg.state.pm1a_cnt & 0x2000, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_nothing_requested, setup),
		cmocka_unit_test_setup(test_exit_byte, setup),
		cmocka_unit_test_setup(test_exit_word_and_dword, setup),
		cmocka_unit_test_setup(test_first_request_wins, setup),
		cmocka_unit_test_setup(test_other_offsets_and_reads, setup),
		cmocka_unit_test_setup(test_poweroff_word, setup),
		cmocka_unit_test_setup(test_poweroff_bytewise, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
