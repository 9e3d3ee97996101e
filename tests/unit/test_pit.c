/*
 * test_pit.c - unit tests for the 8254 model and port 0x61
 * (vmm/devices/pit.c).  Virtual time is a variable of the test; the fake
 * gateway counts clock reads so the tests can check the model only reads
 * the clock when the answer depends on time.  Expected times were computed
 * independently: a count of N ticks ends ceil(N * 1e9 / 1193182) ns after
 * the load.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/bootinfo.h"
#include "vmm/bus.h"
#include "vmm/devices/pit.h"

static uint64_t now_ns;
static int clock_calls;
static int irq_rises, irq_falls, irq_level;
static uint64_t irq_times[64];

static uint64_t fake_clock(struct nd *nd)
{
	(void)nd;
	clock_calls++;
	return now_ns;
}

static const struct nd_ops fake_ops = { .clock_ns = fake_clock };
static struct nd nd = { .ops = &fake_ops };

static void rec_set(void *router, unsigned gsi, int level)
{
	(void)router;
	assert_int_equal(gsi, 0);
	assert_int_not_equal(level, irq_level); /* a pulse: 1 then 0 */
	irq_level = level;
	if (level) {
		if (irq_rises < 64)
			irq_times[irq_rises] = now_ns;
		irq_rises++;
	} else {
		irq_falls++;
	}
}

static struct bus bus;
static struct pit pit;
static struct vtimer_set timers;

static int setup(void **st)
{
	(void)st;
	now_ns = 0;
	clock_calls = 0;
	irq_rises = irq_falls = irq_level = 0;
	bus_init(&bus, "pio");
	memset(&timers, 0, sizeof(timers));
	pit_init(&pit, &nd, (struct irq_line){ rec_set, NULL, 0 }, &timers);
	assert_int_equal(pit_register(&pit, &bus), 0);
	return 0;
}

static uint8_t in8(uint16_t port)
{
	uint8_t d = 0;

	assert_int_equal(bus_access(&bus, port, &d, 1, false, NULL), BUS_OK);
	return d;
}

static void out8(uint16_t port, uint8_t v)
{
	assert_int_equal(bus_access(&bus, port, &v, 1, true, NULL), BUS_OK);
}

/* The first virtual time at which `ticks` ticks have elapsed since t0. */
static uint64_t at_tick(uint64_t t0, uint64_t ticks)
{
	return t0 + (uint64_t)(((unsigned __int128)ticks * 1000000000u + PIT_HZ - 1) / PIT_HZ);
}

static void load16(int ch, uint16_t count)
{
	out8(0x40 + ch, count & 0xff);
	out8(0x40 + ch, count >> 8);
}

static uint16_t latch_read(int ch)
{
	uint16_t v;

	out8(0x43, (uint8_t)(ch << 6)); /* counter latch */
	v = in8(0x40 + ch);
	v |= (uint16_t)in8(0x40 + ch) << 8;
	return v;
}

static uint8_t read_status(int ch)
{
	out8(0x43, (uint8_t)(0xe0 | (2 << ch))); /* read-back: status only */
	return in8(0x40 + ch);
}

/* Advance time to t and run the due timers, as the run loop does. */
static int run_to(uint64_t t)
{
	now_ns = t;
	return vtimer_run_due(&timers, t);
}

static uint64_t next_deadline(void)
{
	uint64_t d = 0;

	assert_true(vtimer_next(&timers, &d));
	return d;
}

static void test_reset_no_clock(void **st)
{
	(void)st;
	assert_int_equal(in8(0x40), 0x00); /* 65536, not loaded */
	assert_int_equal(in8(0x40), 0x00);
	assert_int_equal(in8(0x43), 0xff); /* control port is write-only */
	assert_int_equal(in8(0x61), 0x20); /* OUT2 high, refresh 0 */
	assert_int_equal(in8(0x61), 0x30); /* refresh toggles on each read */
	assert_int_equal(in8(0x61), 0x20);
	out8(0x43, 0x34);
	out8(0x43, 0xb0);
	assert_int_equal(read_status(0), 0xf4); /* OUT high, null count, lo/hi, mode 2 */
	assert_int_equal(read_status(2), 0x70); /* mode 0: OUT low */
	assert_int_equal(clock_calls, 0);
	assert_false(vtimer_next(&timers, &(uint64_t){ 0 }));
	assert_int_equal(irq_rises, 0);
}

static void test_mode2_periodic_irq(void **st)
{
	(void)st;
	now_ns = 1000;
	out8(0x43, 0x34);
	out8(0x40, 1193 & 0xff);
	assert_int_equal(clock_calls, 0); /* half a count: nothing loaded */
	out8(0x40, 1193 >> 8);
	assert_int_equal(clock_calls, 1);
	assert_int_equal(pit.state.ch[0].load_time_ns, 1000);
	assert_int_equal(next_deadline(), 1000 + 999848);
	assert_int_equal(run_to(1000 + 999847), 0);
	assert_int_equal(irq_rises, 0);
	assert_int_equal(run_to(1000 + 999848), 1);
	assert_int_equal(irq_rises, 1);
	assert_int_equal(irq_falls, 1);
	assert_int_equal(irq_level, 0);
	assert_int_equal(next_deadline(), 1000 + 1999695);
	assert_int_equal(pit.state.next_irq_ns, 1000 + 1999695);
	/* Late by several periods: one pulse, next boundary after now. */
	assert_int_equal(run_to(1000 + 10500000), 1);
	assert_int_equal(irq_rises, 2);
	assert_int_equal(next_deadline(), 1000 + 10998323);
	/* Firing never reads the clock: `now` comes from the run loop. */
	assert_int_equal(clock_calls, 1);
	/* A new control word stops the channel. */
	out8(0x43, 0x34);
	assert_false(vtimer_next(&timers, &(uint64_t){ 0 }));
	assert_int_equal(run_to(1000 + 20000000), 0);
	assert_int_equal(irq_rises, 2);
	assert_int_equal(pit.state.next_irq_ns, 0);
}

static void test_mode2_counts(void **st)
{
	(void)st;
	now_ns = 5000;
	out8(0x43, 0x34);
	load16(0, 1000);
	now_ns = 5000 + 100000; /* 119 ticks */
	clock_calls = 0;
	assert_int_equal(latch_read(0), 881);
	assert_int_equal(clock_calls, 1);
	/* Exactly at the boundary of tick 1000 the count reloads. */
	now_ns = at_tick(5000, 999);
	assert_int_equal(latch_read(0), 1);
	now_ns = at_tick(5000, 1000) - 1;
	assert_int_equal(latch_read(0), 1);
	now_ns = at_tick(5000, 1000);
	assert_int_equal(latch_read(0), 1000);
	now_ns = at_tick(5000, 1001);
	assert_int_equal(latch_read(0), 999);
	/* OUT is low only while the count is 1. */
	now_ns = at_tick(5000, 1999);
	assert_int_equal(read_status(0) & 0x80, 0);
	now_ns = at_tick(5000, 2000);
	assert_int_equal(read_status(0) & 0x80, 0x80);
	assert_int_equal(read_status(0), 0xb4); /* OUT, lo/hi, mode 2, loaded */
}

static void test_latch_semantics(void **st)
{
	(void)st;
	out8(0x43, 0x34);
	load16(0, 1000);
	now_ns = at_tick(0, 100);
	out8(0x43, 0x00);
	now_ns = at_tick(0, 300);
	out8(0x43, 0x00); /* ignored: the first latch is not read yet */
	assert_int_equal(in8(0x40), 900 & 0xff);
	now_ns = at_tick(0, 400);
	assert_int_equal(in8(0x40), 900 >> 8);
	/* Unlatched lo/hi reads read the counter afresh for each byte. */
	clock_calls = 0;
	now_ns = at_tick(0, 500);
	assert_int_equal(in8(0x40), 500 & 0xff);
	now_ns = at_tick(0, 600);
	assert_int_equal(in8(0x40), 400 >> 8);
	assert_int_equal(clock_calls, 2);
	/* A latch between a lo/hi read pair. */
	assert_int_equal(latch_read(0), 400);
}

static void test_readback(void **st)
{
	(void)st;
	out8(0x43, 0x34);
	load16(0, 1000);
	out8(0x43, 0xb6); /* ch2 mode 3, gate low */
	load16(2, 50);
	now_ns = at_tick(0, 10);
	clock_calls = 0;
	/* Count and status of channels 0 and 2, in one access: one clock read. */
	out8(0x43, 0xc0 | 0x02 | 0x08);
	assert_int_equal(clock_calls, 1);
	now_ns = at_tick(0, 20);
	assert_int_equal(in8(0x40), 0xb4); /* status first */
	assert_int_equal(in8(0x40), 990 & 0xff);
	assert_int_equal(in8(0x40), 990 >> 8);
	assert_int_equal(in8(0x42), 0xb6); /* gate low: OUT high, stopped */
	assert_int_equal(in8(0x42), 50);
	assert_int_equal(in8(0x42), 0);
	/* Status only, then a later status latch is ignored until read. */
	out8(0x43, 0xe2);
	out8(0x43, 0x36); /* new control word drops the latches */
	assert_int_equal(read_status(0), 0xf6);
	/* Count only. */
	load16(0, 77);
	out8(0x43, 0xd2);
	assert_int_equal(in8(0x40), 77);
	assert_int_equal(in8(0x40), 0);
	/* Read-back naming no channel does nothing. */
	out8(0x43, 0xc0);
	assert_int_equal(in8(0x40), 77);
}

static void test_mode0_one_shot(void **st)
{
	(void)st;
	now_ns = 7;
	out8(0x43, 0x30);
	out8(0x40, 100);
	assert_int_equal(pit.state.ch[0].armed, 0); /* first byte stops mode 0 */
	out8(0x40, 0);
	assert_int_equal(next_deadline(), 7 + 83810);
	assert_int_equal(read_status(0) & 0x80, 0);
	assert_int_equal(run_to(7 + 83809), 0);
	assert_int_equal(run_to(7 + 83810), 1);
	assert_int_equal(irq_rises, 1);
	assert_int_equal(irq_times[0], 7 + 83810);
	assert_false(vtimer_next(&timers, &(uint64_t){ 0 }));
	assert_int_equal(read_status(0) & 0x80, 0x80);
	/* The counter wraps past 0 and keeps counting. */
	now_ns = at_tick(7, 150);
	assert_int_equal(latch_read(0), (uint16_t)(100 - 150));
	assert_int_equal(run_to(at_tick(7, 100000)), 0);
	assert_int_equal(irq_rises, 1);
	/* Reloading restarts the one-shot. */
	now_ns = 1000000;
	load16(0, 10);
	assert_int_equal(next_deadline(), at_tick(1000000, 10));
	/* Writing the first byte of a new count cancels it. */
	out8(0x40, 5);
	assert_false(vtimer_next(&timers, &(uint64_t){ 0 }));
	assert_int_equal(read_status(0) & 0x80, 0);
}

static void test_mode3_channel0_irq_and_count(void **st)
{
	(void)st;
	out8(0x43, 0x36);
	load16(0, 100);
	now_ns = at_tick(0, 10);
	assert_int_equal(latch_read(0), 80); /* decrements by two */
	now_ns = at_tick(0, 49);
	assert_int_equal(read_status(0) & 0x80, 0x80);
	now_ns = at_tick(0, 50);
	assert_int_equal(read_status(0) & 0x80, 0);
	assert_int_equal(latch_read(0), 100); /* second half reloads */
	for (int k = 1; k <= 5; k++) {
		assert_int_equal(next_deadline(), at_tick(0, 100u * k));
		assert_int_equal(run_to(next_deadline()), 1);
	}
	assert_int_equal(irq_rises, 5);
	assert_int_equal(irq_times[4], at_tick(0, 500));
}

static void test_count_zero_is_65536(void **st)
{
	(void)st;
	out8(0x43, 0x34);
	load16(0, 0);
	assert_int_equal(latch_read(0), 0);
	assert_int_equal(next_deadline(), 54925402);
	now_ns = at_tick(0, 1);
	assert_int_equal(latch_read(0), 65535);
}

static void test_access_modes(void **st)
{
	(void)st;
	out8(0x43, 0x14); /* ch0 lobyte only, mode 2 */
	out8(0x40, 200);
	assert_int_equal(next_deadline(), at_tick(0, 200));
	now_ns = at_tick(0, 1);
	assert_int_equal(in8(0x40), 199);
	assert_int_equal(in8(0x40), 199); /* no toggle */
	out8(0x43, 0x24); /* hibyte only */
	out8(0x40, 2);
	now_ns = at_tick(now_ns, 0);
	assert_int_equal(pit.state.ch[0].reload, 512);
	assert_int_equal(in8(0x40), 2);
	out8(0x43, 0x00); /* latch in hibyte mode: one byte, the MSB */
	now_ns += 1000000;
	assert_int_equal(in8(0x40), 2);
	assert_int_equal(pit.state.ch[0].latched, 0);
	/* BCD is accepted, reported and counts in binary. */
	out8(0x43, 0x35);
	assert_int_equal(read_status(0) & 1, 1);
	load16(0, 0x1000);
	now_ns += 0;
	assert_int_equal(latch_read(0), 0x1000);
}

static void test_portb_gate_and_out2(void **st)
{
	(void)st;
	out8(0x61, 0xff);
	assert_int_equal(in8(0x61) & 0xef, 0x2f); /* bits 0-3, OUT2; 6-7 read 0 */
	out8(0x61, 0x00);
	/* Mode 0 on channel 2, gate high: OUT rises at terminal count. */
	out8(0x43, 0xb0);
	out8(0x61, 0x01);
	now_ns = 100;
	clock_calls = 0;
	load16(2, 100);
	assert_int_equal(clock_calls, 1);
	now_ns = at_tick(100, 99);
	assert_int_equal(in8(0x61) & 0x20, 0);
	now_ns = at_tick(100, 100);
	assert_int_equal(in8(0x61) & 0x20, 0x20);
	assert_int_equal(clock_calls, 3);
	assert_int_equal(irq_rises, 0); /* channel 2 raises no IRQ */
	assert_false(vtimer_next(&timers, &(uint64_t){ 0 }));
}

static void test_gate_pauses_mode0(void **st)
{
	(void)st;
	out8(0x43, 0xb0);
	out8(0x61, 0x01);
	load16(2, 1000);
	now_ns = at_tick(0, 100);
	out8(0x61, 0x00); /* pause */
	now_ns = at_tick(0, 5000);
	clock_calls = 0;
	assert_int_equal(latch_read(2), 900); /* frozen, and no clock needed */
	assert_int_equal(in8(0x61) & 0x20, 0);
	assert_int_equal(clock_calls, 0);
	out8(0x61, 0x01); /* resume from 900 */
	now_ns = at_tick(now_ns, 899);
	assert_int_equal(latch_read(2), 1);
	assert_int_equal(in8(0x61) & 0x20, 0);
	now_ns += 2000;
	assert_int_equal(in8(0x61) & 0x20, 0x20);
	/* Loading while the gate is low: no clock read, counts from the rise. */
	out8(0x61, 0x00);
	clock_calls = 0;
	load16(2, 10);
	assert_int_equal(clock_calls, 0);
	assert_int_equal(latch_read(2), 10);
	uint64_t t0 = now_ns = 50000000;
	out8(0x61, 0x01);
	now_ns = at_tick(t0, 3);
	assert_int_equal(latch_read(2), 7);
}

static void test_gate_mode3_restart(void **st)
{
	(void)st;
	out8(0x43, 0xb6);
	out8(0x61, 0x01);
	load16(2, 100);
	now_ns = at_tick(0, 60);
	assert_int_equal(in8(0x61) & 0x20, 0); /* second half: low */
	out8(0x61, 0x00); /* gate low forces OUT high */
	assert_int_equal(in8(0x61) & 0x20, 0x20);
	uint64_t t1 = now_ns = at_tick(0, 1000);
	out8(0x61, 0x01); /* rising edge restarts the period */
	now_ns = at_tick(t1, 10);
	assert_int_equal(latch_read(2), 80);
	now_ns = at_tick(t1, 50);
	assert_int_equal(in8(0x61) & 0x20, 0);
	/* Writing the same gate level again is no edge. */
	out8(0x61, 0x01);
	assert_int_equal(latch_read(2), 100);
}

static void test_mode1_and_mode5_need_trigger(void **st)
{
	(void)st;
	out8(0x43, 0xb2); /* ch2 mode 1 */
	load16(2, 50);
	now_ns = 1000000;
	assert_int_equal(in8(0x61) & 0x20, 0x20);
	assert_int_equal(latch_read(2), 50);
	uint64_t t0 = now_ns;
	out8(0x61, 0x01); /* trigger */
	now_ns = at_tick(t0, 49);
	assert_int_equal(in8(0x61) & 0x20, 0);
	assert_int_equal(latch_read(2), 1);
	now_ns = at_tick(t0, 50);
	assert_int_equal(in8(0x61) & 0x20, 0x20);
	/* Mode 1 on channel 0 (gate tied high) never starts. */
	out8(0x43, 0x32);
	load16(0, 50);
	now_ns += 10000000;
	assert_int_equal(latch_read(0), 50);
	assert_false(vtimer_next(&timers, &(uint64_t){ 0 }));
	/* Mode 5: a one-tick low strobe at terminal count after the trigger. */
	out8(0x61, 0x00);
	out8(0x43, 0xba);
	load16(2, 20);
	t0 = now_ns;
	out8(0x61, 0x01);
	now_ns = at_tick(t0, 19);
	assert_int_equal(in8(0x61) & 0x20, 0x20);
	now_ns = at_tick(t0, 20);
	assert_int_equal(in8(0x61) & 0x20, 0);
	now_ns = at_tick(t0, 21);
	assert_int_equal(in8(0x61) & 0x20, 0x20);
}

static void test_mode4_strobe(void **st)
{
	(void)st;
	out8(0x43, 0x38); /* ch0 mode 4: no IRQ modelled */
	load16(0, 30);
	assert_false(vtimer_next(&timers, &(uint64_t){ 0 }));
	now_ns = at_tick(0, 29);
	assert_int_equal(read_status(0) & 0x80, 0x80);
	now_ns = at_tick(0, 30);
	assert_int_equal(read_status(0) & 0x80, 0);
	now_ns = at_tick(0, 31);
	assert_int_equal(read_status(0) & 0x80, 0x80);
	assert_int_equal(latch_read(0), 65535);
}

static void test_large_times(void **st)
{
	(void)st;
	out8(0x43, 0x34);
	load16(0, 1000);
	/* 1e18 ns: the product overflows 64 bits unless done in 128. */
	now_ns = 1000000000000000000ull;
	assert_int_equal(latch_read(0), 1000); /* 1193182e9 ticks: a boundary */
	now_ns += 1000000;
	assert_int_equal(latch_read(0), 1000 - 193); /* +1193.182 ticks */
	assert_int_equal(run_to(now_ns), 1);
	assert_true(next_deadline() > now_ns);
	/* Near the end of time the deadline saturates instead of wrapping. */
	now_ns = UINT64_MAX - 10;
	load16(0, 1000);
	assert_int_equal(next_deadline(), UINT64_MAX);
	assert_int_equal(latch_read(0), 1000);
}

static void test_wide_and_garbage(void **st)
{
	uint8_t d[4];

	(void)st;
	/* 16-bit write at 0x42: the byte for ch2, then the control word. */
	d[0] = 0x00;
	d[1] = 0x34;
	assert_int_equal(bus_access(&bus, 0x42, d, 2, true, NULL), BUS_OK);
	assert_int_equal(pit.state.ch[0].mode, 2);
	assert_int_equal(pit.state.ch[2].write_lsb_next, 0);
	/* 32-bit read: counters 0..2 and the write-only control port. */
	assert_int_equal(bus_access(&bus, 0x40, d, 4, false, NULL), BUS_OK);
	assert_int_equal(d[3], 0xff);
	assert_int_equal(clock_calls, 0);
	/* Every control byte and data byte: the model never breaks. */
	for (int v = 0; v < 256; v++) {
		now_ns += 12345;
		out8(0x43, (uint8_t)v);
		for (int ch = 0; ch < 3; ch++) {
			out8(0x40 + ch, (uint8_t)v);
			out8(0x40 + ch, (uint8_t)(v * 7));
			in8(0x40 + ch);
		}
		out8(0x61, (uint8_t)v);
		in8(0x61);
		vtimer_run_due(&timers, now_ns);
	}
	assert_true(pit.state.ch[0].mode <= 5);
	assert_true(pit.state.ch[2].reload >= 1 && pit.state.ch[2].reload <= 65536);
}

static void test_state_restore(void **st)
{
	struct pit_state saved;

	(void)st;
	out8(0x43, 0x34);
	load16(0, 500);
	saved = pit.state;
	uint64_t due = next_deadline();
	/* A fresh device with the saved state has no timer until resynced. */
	memset(&timers, 0, sizeof(timers));
	pit_init(&pit, &nd, (struct irq_line){ rec_set, NULL, 0 }, &timers);
	pit.state = saved;
	assert_false(vtimer_next(&timers, &(uint64_t){ 0 }));
	pit_state_restored(&pit);
	assert_int_equal(next_deadline(), due);
	assert_int_equal(run_to(due), 1);
	assert_int_equal(irq_rises, 1);
	/* And a state with no pending edge disarms. */
	pit.state.next_irq_ns = 0;
	pit_state_restored(&pit);
	assert_false(vtimer_next(&timers, &(uint64_t){ 0 }));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_reset_no_clock, setup),
		cmocka_unit_test_setup(test_mode2_periodic_irq, setup),
		cmocka_unit_test_setup(test_mode2_counts, setup),
		cmocka_unit_test_setup(test_latch_semantics, setup),
		cmocka_unit_test_setup(test_readback, setup),
		cmocka_unit_test_setup(test_mode0_one_shot, setup),
		cmocka_unit_test_setup(test_mode3_channel0_irq_and_count, setup),
		cmocka_unit_test_setup(test_count_zero_is_65536, setup),
		cmocka_unit_test_setup(test_access_modes, setup),
		cmocka_unit_test_setup(test_portb_gate_and_out2, setup),
		cmocka_unit_test_setup(test_gate_pauses_mode0, setup),
		cmocka_unit_test_setup(test_gate_mode3_restart, setup),
		cmocka_unit_test_setup(test_mode1_and_mode5_need_trigger, setup),
		cmocka_unit_test_setup(test_mode4_strobe, setup),
		cmocka_unit_test_setup(test_large_times, setup),
		cmocka_unit_test_setup(test_wide_and_garbage, setup),
		cmocka_unit_test_setup(test_state_restore, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
