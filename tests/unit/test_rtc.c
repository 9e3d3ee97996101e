/*
 * test_rtc.c - unit tests for the CMOS RTC (vmm/devices/rtc.c).  Boot is
 * fixed at 2024-02-29 23:59:58.5 UTC (a leap day, two seconds before a
 * month change); virtual time is a test variable and clock reads are
 * counted.  Expected dates were computed independently (Python calendar).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/bus.h"
#include "vmm/devices/rtc.h"

#define BOOT_S 1709251198ULL /* 2024-02-29 23:59:58 UTC, a Thursday */
#define SEC 1000000000ULL

static uint64_t now_ns;
static int clock_calls;

static uint64_t fake_clock(struct nd *nd)
{
	(void)nd;
	clock_calls++;
	return now_ns;
}

static const struct nd_ops fake_ops = { .clock_ns = fake_clock };
static struct nd nd = { .ops = &fake_ops, .boot_epoch_ns = BOOT_S * SEC + SEC / 2 };
static struct bus bus;
static struct rtc rtc;
static int irq_calls;

static void rec_set(void *router, unsigned gsi, int level)
{
	(void)router;
	(void)gsi;
	(void)level;
	irq_calls++;
}

static void init_with(uint64_t mem)
{
	now_ns = 0;
	clock_calls = 0;
	irq_calls = 0;
	bus_init(&bus, "pio");
	rtc_init(&rtc, &nd, (struct irq_line){ rec_set, NULL, 8 }, mem);
	assert_int_equal(rtc_register(&rtc, &bus), 0);
}

static int setup(void **st)
{
	(void)st;
	init_with(512ULL << 20);
	return 0;
}

static uint8_t rd(uint8_t reg)
{
	uint8_t d = reg;

	assert_int_equal(bus_access(&bus, 0x70, &d, 1, true, NULL), BUS_OK);
	assert_int_equal(bus_access(&bus, 0x71, &d, 1, false, NULL), BUS_OK);
	return d;
}

static void wr(uint8_t reg, uint8_t v)
{
	assert_int_equal(bus_access(&bus, 0x70, &reg, 1, true, NULL), BUS_OK);
	assert_int_equal(bus_access(&bus, 0x71, &v, 1, true, NULL), BUS_OK);
}

/* sec, min, hour, wday, mday, mon, year, century as the guest reads them. */
static void expect_time(const uint8_t want[8])
{
	static const uint8_t regs[8] = { 0, 2, 4, 6, 7, 8, 9, 0x32 };

	for (int i = 0; i < 8; i++) {
		uint8_t got = rd(regs[i]);

		if (got != want[i])
			fail_msg("register 0x%02x: got 0x%02x, want 0x%02x",
				 regs[i], got, want[i]);
	}
}

static void test_bcd_24h_and_rollover(void **st)
{
	(void)st;
	assert_int_equal(rd(0x0b), 0x02);
	assert_int_equal(rd(0x0a), 0x26);
	assert_int_equal(rd(0x0d), 0x80);
	clock_calls = 0;
	expect_time((const uint8_t[]){ 0x58, 0x59, 0x23, 0x05, 0x29, 0x02, 0x24, 0x20 });
	assert_int_equal(clock_calls, 8); /* one per clock register read */
	now_ns = 3 * SEC / 2; /* 2024-03-01 00:00:00.0, a Friday */
	expect_time((const uint8_t[]){ 0x00, 0x00, 0x00, 0x06, 0x01, 0x03, 0x24, 0x20 });
	now_ns = 3 * SEC / 2 - 1;
	assert_int_equal(rd(0x00), 0x59);
	assert_int_equal(irq_calls, 0);
}

static void test_binary_and_12h(void **st)
{
	(void)st;
	wr(0x0b, 0x06); /* binary, 24 h */
	expect_time((const uint8_t[]){ 58, 59, 23, 5, 29, 2, 24, 20 });
	wr(0x0b, 0x00); /* BCD, 12 h */
	assert_int_equal(rd(0x04), 0x91); /* 11 PM */
	now_ns = 2 * SEC;
	assert_int_equal(rd(0x04), 0x12); /* 12 AM */
	now_ns = 2 * SEC + 12 * 3600 * SEC;
	assert_int_equal(rd(0x04), 0x92); /* 12 PM */
	now_ns = 2 * SEC + 13 * 3600 * SEC;
	assert_int_equal(rd(0x04), 0x81); /* 1 PM */
	wr(0x0b, 0x04); /* binary, 12 h */
	assert_int_equal(rd(0x04), 0x81);
	now_ns = 2 * SEC + 11 * 3600 * SEC;
	assert_int_equal(rd(0x04), 11);
}

static void test_uip_window(void **st)
{
	(void)st;
	/* Boot is at .5 s: the update is 0.5 s in; UIP for its last 244 us. */
	now_ns = SEC / 2 - 244000 - 1;
	assert_int_equal(rd(0x0a), 0x26);
	now_ns = SEC / 2 - 244000;
	assert_int_equal(rd(0x0a), 0xa6);
	now_ns = SEC / 2 - 1;
	assert_int_equal(rd(0x0a), 0xa6);
	now_ns = SEC / 2;
	assert_int_equal(rd(0x0a), 0x26);
	/* UIP is read-only; the other bits of A are stored. */
	wr(0x0a, 0xff);
	assert_int_equal(rd(0x0a), 0x7f);
	/* With SET, no update happens: UIP clear and no clock needed. */
	wr(0x0a, 0x26);
	now_ns = SEC / 2 - 1000;
	wr(0x0b, 0x82);
	clock_calls = 0;
	assert_int_equal(rd(0x0a), 0x26);
	assert_int_equal(clock_calls, 0);
}

static void test_c_d_and_ram(void **st)
{
	(void)st;
	clock_calls = 0;
	assert_int_equal(rd(0x0c), 0x00);
	wr(0x0c, 0xff);
	assert_int_equal(rd(0x0c), 0x00);
	wr(0x0d, 0x00);
	assert_int_equal(rd(0x0d), 0x80);
	/* Alarm bytes and general RAM are plain storage. */
	wr(0x01, 0x11);
	wr(0x03, 0x22);
	wr(0x05, 0x33);
	wr(0x40, 0xa5);
	wr(0x7f, 0x5a);
	assert_int_equal(rd(0x01), 0x11);
	assert_int_equal(rd(0x03), 0x22);
	assert_int_equal(rd(0x05), 0x33);
	assert_int_equal(rd(0x40), 0xa5);
	assert_int_equal(rd(0x7f), 0x5a);
	/* Bit 7 of the index is the NMI mask: kept, not part of the index. */
	assert_int_equal(rd(0xc0), 0xa5);
	assert_int_equal(rtc.state.nmi_disabled, 1);
	assert_int_equal(rd(0x40), 0xa5);
	assert_int_equal(rtc.state.nmi_disabled, 0);
	/* The index port reads as all ones. */
	uint8_t d = 0;
	assert_int_equal(bus_access(&bus, 0x70, &d, 1, false, NULL), BUS_OK);
	assert_int_equal(d, 0xff);
	assert_int_equal(clock_calls, 0);
	assert_int_equal(irq_calls, 0);
}

static void test_write_fields(void **st)
{
	(void)st;
	wr(0x02, 0x30); /* minutes := 30 */
	assert_int_equal(rtc.state.offset_ns, -29LL * 60 * SEC);
	expect_time((const uint8_t[]){ 0x58, 0x30, 0x23, 0x05, 0x29, 0x02, 0x24, 0x20 });
	/* The sub-second phase is kept: the next second starts at 0.5 s. */
	now_ns = SEC / 2 - 1;
	assert_int_equal(rd(0x00), 0x58);
	now_ns = SEC / 2;
	assert_int_equal(rd(0x00), 0x59);
	now_ns = 0;
	wr(0x09, 0x99);
	assert_int_equal(rd(0x09), 0x99);
	assert_int_equal(rd(0x32), 0x20);
	assert_int_equal(rd(0x06), 0x01); /* 2099-02-29 is no date: Mar 1, a Sunday */
	assert_int_equal(rd(0x08), 0x03);
	wr(0x32, 0x19);
	assert_int_equal(rd(0x09), 0x99);
	assert_int_equal(rd(0x32), 0x19);
	/* Day of week is computed: a write to it changes nothing. */
	int64_t off = rtc.state.offset_ns;
	clock_calls = 0;
	wr(0x06, 0x03);
	assert_int_equal(clock_calls, 0);
	assert_int_equal(rtc.state.offset_ns, off);
	/* Hour in 12 h binary: 0x81 = 1 PM. */
	wr(0x0b, 0x04);
	wr(0x04, 0x81);
	wr(0x0b, 0x06);
	assert_int_equal(rd(0x04), 13);
	/* Before 1970 works (signed wall time). */
	wr(0x32, 19);
	wr(0x09, 50);
	wr(0x08, 2);
	wr(0x07, 28);
	expect_time((const uint8_t[]){ 58, 30, 13, 3, 28, 2, 50, 19 });
}

static void test_clamp(void **st)
{
	(void)st;
	wr(0x32, 0x25); /* 2599: clamped to the last second of 2199 */
	expect_time((const uint8_t[]){ 0x59, 0x59, 0x23, 0x03, 0x31, 0x12, 0x99, 0x21 });
	wr(0x32, 0x18); /* 1899: clamped to 1900-01-01 00:00:00 */
	expect_time((const uint8_t[]){ 0x00, 0x00, 0x00, 0x02, 0x01, 0x01, 0x00, 0x19 });
	/* Every byte in every clock register: never crashes, stays in range. */
	for (int reg = 0; reg < 10; reg++)
		for (int v = 0; v < 256; v++) {
			wr((uint8_t)reg, (uint8_t)v);
			wr(0x32, (uint8_t)v);
		}
	assert_true(rd(0x08) >= 0x01 && rd(0x08) <= 0x12);
}

static void test_set_freezes(void **st)
{
	(void)st;
	wr(0x0b, 0x92); /* SET + UIE: setting SET clears UIE */
	assert_int_equal(rd(0x0b), 0x82);
	now_ns = 100 * SEC;
	clock_calls = 0;
	expect_time((const uint8_t[]){ 0x58, 0x59, 0x23, 0x05, 0x29, 0x02, 0x24, 0x20 });
	assert_int_equal(clock_calls, 0);
	/* Set 2030-06-15 05:20:10 while frozen. */
	wr(0x00, 0x10);
	wr(0x02, 0x20);
	wr(0x04, 0x05);
	wr(0x07, 0x15);
	wr(0x08, 0x06);
	wr(0x09, 0x30);
	assert_int_equal(clock_calls, 0);
	assert_int_equal(rd(0x00), 0x10); /* raw bytes while frozen */
	now_ns = 10 * SEC + SEC / 4; /* old wall time: .75 s into a second */
	wr(0x0b, 0x02);
	assert_int_equal(clock_calls, 1);
	expect_time((const uint8_t[]){ 0x10, 0x20, 0x05, 0x07, 0x15, 0x06, 0x30, 0x20 });
	now_ns += SEC / 4 - 1;
	assert_int_equal(rd(0x00), 0x10);
	now_ns += 1;
	assert_int_equal(rd(0x00), 0x11);
}

static void test_set_normalises_bad_fields(void **st)
{
	(void)st;
	wr(0x0b, 0x82);
	wr(0x08, 0x13); /* month 13 of 2024: January 2025 */
	wr(0x07, 0x00); /* day 0: the last day of the month before */
	wr(0x0b, 0x02);
	/* 2025-01-00 is 2024-12-31, a Tuesday. */
	expect_time((const uint8_t[]){ 0x58, 0x59, 0x23, 0x03, 0x31, 0x12, 0x24, 0x20 });
	/* Bad BCD digits count for their value: 0x1f = 25 minutes. */
	wr(0x0b, 0x82);
	wr(0x02, 0x1f);
	wr(0x0b, 0x02);
	assert_int_equal(rd(0x02), 0x25);
}

static void test_memory_bytes(void **st)
{
	(void)st;
	/* 512 MiB */
	assert_int_equal(rd(0x15), 0x80);
	assert_int_equal(rd(0x16), 0x02);
	assert_int_equal(rd(0x17), 0xff);
	assert_int_equal(rd(0x18), 0xff);
	assert_int_equal(rd(0x30), 0xff);
	assert_int_equal(rd(0x31), 0xff);
	assert_int_equal(rd(0x34), 0x00);
	assert_int_equal(rd(0x35), 0x1f);
	assert_int_equal(rd(0x5b), 0);
	assert_int_equal(rd(0x5c), 0);
	assert_int_equal(rd(0x5d), 0);
	/* 6 GiB: 3 GiB below the hole, 3 GiB above 4 GiB. */
	init_with(6ULL << 30);
	assert_int_equal(rd(0x34), 0x00);
	assert_int_equal(rd(0x35), 0xbf);
	assert_int_equal(rd(0x5b), 0x00);
	assert_int_equal(rd(0x5c), 0xc0);
	assert_int_equal(rd(0x5d), 0x00);
	/* 8 MiB: nothing above 16 MiB. */
	init_with(8ULL << 20);
	assert_int_equal(rd(0x17), 0x00);
	assert_int_equal(rd(0x18), 0x1c);
	assert_int_equal(rd(0x34), 0);
	assert_int_equal(rd(0x35), 0);
	/* 512 KiB: base memory below 640 KiB. */
	init_with(512ULL << 10);
	assert_int_equal(rd(0x15), 0x00);
	assert_int_equal(rd(0x16), 0x02);
	assert_int_equal(rd(0x17), 0);
}

static void test_wide_access(void **st)
{
	uint8_t d[2];

	(void)st;
	/* 16-bit write at 0x70: index, then data. */
	d[0] = 0x41;
	d[1] = 0x77;
	assert_int_equal(bus_access(&bus, 0x70, d, 2, true, NULL), BUS_OK);
	assert_int_equal(rd(0x41), 0x77);
	/* 16-bit read at 0x70: the write-only index, then data. */
	assert_int_equal(bus_access(&bus, 0x70, d, 2, false, NULL), BUS_OK);
	assert_int_equal(d[0], 0xff);
	assert_int_equal(d[1], 0x77);
	/* 16-bit write at 0x71 would straddle: the bus refuses it. */
	assert_int_equal(bus_access(&bus, 0x71, d, 2, true, NULL), BUS_STRADDLE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_bcd_24h_and_rollover, setup),
		cmocka_unit_test_setup(test_binary_and_12h, setup),
		cmocka_unit_test_setup(test_uip_window, setup),
		cmocka_unit_test_setup(test_c_d_and_ram, setup),
		cmocka_unit_test_setup(test_write_fields, setup),
		cmocka_unit_test_setup(test_clamp, setup),
		cmocka_unit_test_setup(test_set_freezes, setup),
		cmocka_unit_test_setup(test_set_normalises_bad_fields, setup),
		cmocka_unit_test_setup(test_memory_bytes, setup),
		cmocka_unit_test_setup(test_wide_access, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
