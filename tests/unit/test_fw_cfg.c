/*
 * test_fw_cfg.c - unit tests for the legacy fw_cfg interface
 * (vmm/devices/fw_cfg.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/bus.h"
#include "vmm/devices/fw_cfg.h"

static struct bus bus;
static struct fw_cfg fw;

static int setup(void **st)
{
	(void)st;
	bus_init(&bus, "pio");
	fw_cfg_init(&fw, 0x123456789aULL, 3);
	assert_int_equal(fw_cfg_register(&fw, &bus), 0);
	return 0;
}

static void select_item(uint16_t key)
{
	uint8_t d[2];

	bus_le_put(d, 2, key);
	assert_int_equal(bus_access(&bus, 0x510, d, 2, true, NULL), BUS_OK);
}

static uint8_t data(void)
{
	uint8_t d = 0x5a;

	assert_int_equal(bus_access(&bus, 0x511, &d, 1, false, NULL), BUS_OK);
	return d;
}

static void read_n(uint8_t *buf, int n)
{
	for (int i = 0; i < n; i++)
		buf[i] = data();
}

static void test_signature(void **st)
{
	uint8_t buf[8];

	(void)st;
	select_item(0x0000);
	read_n(buf, 8);
	assert_memory_equal(buf, "QEMU\0\0\0\0", 8); /* then zeros past the end */
	/* Reselecting rewinds. */
	select_item(0x0000);
	assert_int_equal(data(), 'Q');
	assert_int_equal(data(), 'E');
}

static void test_default_selector_is_signature(void **st)
{
	(void)st;
	assert_int_equal(data(), 'Q');
}

static void test_id_ram_cpus_dir(void **st)
{
	uint8_t buf[10];

	(void)st;
	select_item(0x0001);
	read_n(buf, 5);
	assert_memory_equal(buf, "\x01\x00\x00\x00\x00", 5);
	select_item(0x0003);
	read_n(buf, 10);
	assert_memory_equal(buf, "\x9a\x78\x56\x34\x12\x00\x00\x00\x00\x00", 10);
	select_item(0x0005);
	read_n(buf, 3);
	assert_memory_equal(buf, "\x03\x00\x00", 3);
	select_item(0x000f);
	read_n(buf, 3);
	assert_memory_equal(buf, "\x03\x00\x00", 3);
	select_item(0x0019);
	read_n(buf, 5);
	assert_memory_equal(buf, "\x00\x00\x00\x00\x00", 5);
}

static void test_unknown_and_high_bits(void **st)
{
	(void)st;
	select_item(0x0002);
	assert_int_equal(data(), 0);
	select_item(0x8000); /* arch-local 0: not the signature */
	assert_int_equal(data(), 0);
	select_item(0x4000); /* write channel of item 0 */
	assert_int_equal(data(), 0);
	select_item(0xffff);
	assert_int_equal(data(), 0);
}

static void test_past_end_does_not_wrap(void **st)
{
	(void)st;
	select_item(0x0005);
	for (int i = 0; i < 100000; i++)
		data();
	assert_int_equal(fw.state.offset, 2); /* stops at the end */
	assert_int_equal(data(), 0);
}

static void test_odd_accesses(void **st)
{
	uint8_t d[2] = { 0, 0 };

	(void)st;
	select_item(0x0000);
	/* A byte read at 0x510 is a data read, as in QEMU's combined region. */
	assert_int_equal(bus_access(&bus, 0x510, d, 1, false, NULL), BUS_OK);
	assert_int_equal(d[0], 'Q');
	/* A 16-bit read is refused: all ones, no byte consumed. */
	assert_int_equal(bus_access(&bus, 0x510, d, 2, false, NULL), BUS_OK);
	assert_int_equal(d[0], 0xff);
	assert_int_equal(d[1], 0xff);
	assert_int_equal(data(), 'E');
	/* Byte writes (data writes) are ignored; the selector is unchanged. */
	d[0] = 0x03;
	assert_int_equal(bus_access(&bus, 0x510, d, 1, true, NULL), BUS_OK);
	assert_int_equal(bus_access(&bus, 0x511, d, 1, true, NULL), BUS_OK);
	assert_int_equal(data(), 'M');
	assert_int_equal(fw.state.selector, 0);
	/* Nothing at the DMA ports. */
	assert_null(bus_find(&bus, 0x514));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_signature, setup),
		cmocka_unit_test_setup(test_default_selector_is_signature, setup),
		cmocka_unit_test_setup(test_id_ram_cpus_dir, setup),
		cmocka_unit_test_setup(test_unknown_and_high_bits, setup),
		cmocka_unit_test_setup(test_past_end_does_not_wrap, setup),
		cmocka_unit_test_setup(test_odd_accesses, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
