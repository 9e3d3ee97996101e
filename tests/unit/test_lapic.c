/*
 * test_lapic.c - unit tests for the local APIC model (vmm/devices/lapic.c).
 *
 * Time comes from a fake nondeterminism gateway whose clock the tests set and
 * whose calls they count: the model must sample time only where lapic.h says.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/devices/lapic.h"

static uint64_t fake_now;
static int clock_calls;

static uint64_t fake_clock(struct nd *nd)
{
	(void)nd;
	clock_calls++;
	return fake_now;
}

static void fake_entropy(struct nd *nd, void *buf, size_t len)
{
	(void)nd;
	memset(buf, 0, len);
}

static const struct nd_ops fake_ops = {
	.clock_ns = fake_clock,
	.entropy = fake_entropy,
};
static struct nd fake_nd = { .ops = &fake_ops };

static struct lapic l;
static struct vtimer_set timers;
static int eoi_calls;
static int eoi_vector;

static void eoi_cb(void *ctx, uint8_t vector)
{
	(void)ctx;
	eoi_calls++;
	eoi_vector = vector;
}

static int setup(void **state)
{
	(void)state;
	memset(&timers, 0, sizeof(timers));
	fake_now = 0;
	clock_calls = 0;
	eoi_calls = 0;
	eoi_vector = -1;
	lapic_init(&l, &fake_nd, &timers, eoi_cb, NULL);
	return 0;
}

static uint32_t rd(uint32_t off)
{
	uint8_t d[4];

	lapic_ops.read(&l, off, d, 4);
	return (uint32_t)bus_le_get(d, 4);
}

static void wr(uint32_t off, uint32_t v)
{
	uint8_t d[4];

	bus_le_put(d, 4, v);
	lapic_ops.write(&l, off, d, 4);
}

static void enable(void)
{
	wr(0xf0, 0x1ff);
}

static bool irr_has(unsigned v)
{
	return rd(0x200 + 0x10 * (v / 32)) & (1u << (v % 32));
}

static bool isr_has(unsigned v)
{
	return rd(0x100 + 0x10 * (v / 32)) & (1u << (v % 32));
}

static bool tmr_has(unsigned v)
{
	return rd(0x180 + 0x10 * (v / 32)) & (1u << (v % 32));
}

static uint64_t next_deadline(void)
{
	uint64_t d = 0;

	assert_true(vtimer_next(&timers, &d));
	return d;
}

static void test_reset_state(void **state)
{
	(void)state;
	assert_int_equal(rd(0x30), 0x00050014);
	assert_int_equal(rd(0xf0), 0xff);
	assert_int_equal(rd(0xe0), 0xffffffff);
	assert_int_equal(rd(0x320), 0x10000);
	assert_int_equal(rd(0x350), 0x700);
	assert_int_equal(rd(0x360), 0x10000);
	assert_int_equal(rd(0x370), 0x10000);
	assert_true(lapic_accepts_pic(&l));
	assert_int_equal(lapic_pending_vector(&l), -1);
	/* Reading a stopped timer needs no time. */
	assert_int_equal(rd(0x390), 0);
	assert_int_equal(clock_calls, 0);
}

static void test_priority_and_nesting(void **state)
{
	(void)state;
	enable();
	lapic_deliver(&l, 0x31, false);
	lapic_deliver(&l, 0x52, false);
	assert_true(irr_has(0x31) && irr_has(0x52));
	assert_int_equal(lapic_pending_vector(&l), 0x52);

	lapic_accept(&l, 0x52);
	assert_false(irr_has(0x52));
	assert_true(isr_has(0x52));
	assert_int_equal(rd(0xa0), 0x50);
	/* Lower class and same class wait for the EOI. */
	assert_int_equal(lapic_pending_vector(&l), -1);
	lapic_deliver(&l, 0x5f, false);
	assert_int_equal(lapic_pending_vector(&l), -1);

	/* A higher class nests. */
	lapic_deliver(&l, 0x61, false);
	assert_int_equal(lapic_pending_vector(&l), 0x61);
	lapic_accept(&l, 0x61);
	assert_int_equal(rd(0xa0), 0x60);

	wr(0xb0, 0);	/* EOI: the highest in service, 0x61 */
	assert_false(isr_has(0x61));
	assert_true(isr_has(0x52));
	assert_int_equal(rd(0xa0), 0x50);
	wr(0xb0, 0);
	assert_false(isr_has(0x52));
	assert_int_equal(rd(0xa0), 0);
	assert_int_equal(lapic_pending_vector(&l), 0x5f);
	/* Edge-triggered vectors do not call the EOI broadcast. */
	assert_int_equal(eoi_calls, 0);
	/* Accepting a vector that is not requested changes nothing. */
	lapic_accept(&l, 0x90);
	assert_false(isr_has(0x90));
}

static void test_tpr_masking(void **state)
{
	(void)state;
	enable();
	wr(0x80, 0x40);
	lapic_deliver(&l, 0x45, false);
	assert_int_equal(rd(0xa0), 0x40);
	assert_int_equal(lapic_pending_vector(&l), -1);
	lapic_deliver(&l, 0x50, false);
	assert_int_equal(lapic_pending_vector(&l), 0x50);
	/* Arbitration priority: max of TPR, ISR and IRR classes. */
	assert_int_equal(rd(0x90), 0x50);
	wr(0x80, 0x4f);
	assert_int_equal(rd(0xa0), 0x4f);
	assert_int_equal(rd(0x80), 0x4f);
	wr(0x80, 0x60);
	assert_int_equal(lapic_pending_vector(&l), -1);
	assert_int_equal(rd(0x90), 0x60);
	/* TPR above an in-service class sets PPR to TPR. */
	wr(0x80, 0);
	lapic_accept(&l, 0x50);
	wr(0x80, 0x70);
	assert_int_equal(rd(0xa0), 0x70);
	/* Same class as in service: PPR is TPR, low bits included. */
	wr(0x80, 0x5a);
	assert_int_equal(rd(0xa0), 0x5a);
	wr(0x80, 0x4f);
	assert_int_equal(rd(0xa0), 0x50);
	/* TPR keeps 8 bits only. */
	wr(0x80, 0x1ff);
	assert_int_equal(rd(0x80), 0xff);
}

static void test_eoi_level(void **state)
{
	(void)state;
	enable();
	/* EOI with nothing in service does nothing. */
	wr(0xb0, 0);
	assert_int_equal(eoi_calls, 0);

	lapic_deliver(&l, 0x40, true);
	assert_true(tmr_has(0x40));
	lapic_accept(&l, 0x40);
	wr(0xb0, 0);
	assert_int_equal(eoi_calls, 1);
	assert_int_equal(eoi_vector, 0x40);

	/* The same vector delivered edge-triggered clears TMR. */
	lapic_deliver(&l, 0x40, false);
	assert_false(tmr_has(0x40));
	lapic_accept(&l, 0x40);
	wr(0xb0, 0);
	assert_int_equal(eoi_calls, 1);
}

static void test_software_disabled(void **state)
{
	(void)state;
	/* Reset state is software-disabled: fixed interrupts are refused. */
	lapic_deliver(&l, 0x40, false);
	assert_false(irr_has(0x40));
	assert_int_equal(lapic_pending_vector(&l), -1);

	enable();
	wr(0x320, 0x40);
	assert_int_equal(rd(0x320), 0x40);
	wr(0x350, 0x700);
	wr(0xf0, 0xff);	/* disable: every LVT masked */
	assert_int_equal(rd(0x320), 0x10040);
	assert_int_equal(rd(0x350), 0x10700);
	assert_false(lapic_accepts_pic(&l));
	/* ... and stays masked while disabled. */
	wr(0x330, 0x41);
	assert_int_equal(rd(0x330), 0x10041);
	enable();
	wr(0x330, 0x41);
	assert_int_equal(rd(0x330), 0x41);
}

static void test_lvt_writable_bits(void **state)
{
	(void)state;
	enable();
	wr(0x320, 0xffffffff);
	assert_int_equal(rd(0x320), 0x700ff);
	wr(0x350, 0xffffffff);
	assert_int_equal(rd(0x350), 0x1a7ff);
	wr(0x370, 0xffffffff);
	assert_int_equal(rd(0x370), 0x100ff);
	/* Read-only registers ignore writes. */
	wr(0x30, 0);
	assert_int_equal(rd(0x30), 0x00050014);
	wr(0xa0, 0xff);
	assert_int_equal(rd(0xa0), 0);
	wr(0x200, 0xffffffff);
	assert_int_equal(rd(0x200), 0);
	/* LDR and DFR keep their defined bits. */
	wr(0xd0, 0x12345678);
	assert_int_equal(rd(0xd0), 0x12000000);
	wr(0xe0, 0x01234567);
	assert_int_equal(rd(0xe0), 0x0fffffff);
}

static void test_illegal_vector_esr(void **state)
{
	(void)state;
	enable();
	wr(0x370, 0x3f);	/* error LVT, unmasked */
	lapic_deliver(&l, 5, false);
	assert_false(irr_has(5));
	/* ESR shows errors only once latched by a write. */
	assert_int_equal(rd(0x280), 0);
	wr(0x280, 0);
	assert_int_equal(rd(0x280), 0x40);	/* receive illegal vector */
	assert_true(irr_has(0x3f));

	/* Self-IPI with an illegal vector: send illegal vector. */
	wr(0x300, (1u << 18) | 3);
	assert_false(irr_has(3));
	wr(0x280, 0);
	assert_int_equal(rd(0x280), 0x20);
	wr(0x280, 0);
	assert_int_equal(rd(0x280), 0);

	/* An illegal vector in the timer LVT is reported at expiry. */
	wr(0x3e0, 0xb);
	wr(0x320, 0x7);
	wr(0x380, 10);
	vtimer_run_due(&timers, 10);
	wr(0x280, 0);
	assert_int_equal(rd(0x280), 0x40);
}

static void test_self_ipi(void **state)
{
	(void)state;
	enable();
	wr(0x300, (1u << 18) | 0x45);	/* shorthand self */
	assert_true(irr_has(0x45));
	assert_int_equal(rd(0x300) & (1u << 12), 0);	/* idle */
	assert_int_equal(rd(0x300), (1u << 18) | 0x45);

	wr(0x310, 0);				/* physical, dest = own ID 0 */
	wr(0x300, 0x46);
	assert_true(irr_has(0x46));

	wr(0x310, 0x05000000);			/* another CPU: nobody */
	wr(0x300, 0x47);
	assert_false(irr_has(0x47));
	wr(0x280, 0);
	assert_int_equal(rd(0x280), 0x4);	/* send accept error */

	wr(0x300, (3u << 18) | 0x48);		/* all excluding self */
	assert_false(irr_has(0x48));
	wr(0x300, (2u << 18) | 0x49);		/* all including self */
	assert_true(irr_has(0x49));
	wr(0x300, (1u << 18) | (4u << 8) | 0x4a); /* NMI: not modelled */
	assert_false(irr_has(0x4a));
	wr(0x280, 0);
	assert_int_equal(rd(0x280), 0x4);

	/* Logical flat model: LDR bit matched by the destination. */
	wr(0xd0, 0x02000000);
	wr(0x310, 0x02000000);
	wr(0x300, (1u << 11) | 0x4b);
	assert_true(irr_has(0x4b));
	wr(0x310, 0x01000000);
	wr(0x300, (1u << 11) | 0x4c);
	assert_false(irr_has(0x4c));

	/* The ID register changes which physical destination is "self". */
	wr(0x20, 0x03000000);
	assert_int_equal(rd(0x20), 0x03000000);
	wr(0x310, 0x03000000);
	wr(0x300, 0x4d);
	assert_true(irr_has(0x4d));
}

static void test_unaligned_ignored(void **state)
{
	uint8_t d[8];

	(void)state;
	enable();
	wr(0x80, 0x20);
	memset(d, 0x55, sizeof(d));
	lapic_ops.write(&l, 0x81, d, 4);	/* misaligned */
	lapic_ops.write(&l, 0x80, d, 2);	/* narrow */
	lapic_ops.write(&l, 0x80, d, 1);
	lapic_ops.write(&l, 0x80, d, 8);	/* wide */
	lapic_ops.write(&l, 0x84, d, 4);	/* inside the register slot */
	assert_int_equal(rd(0x80), 0x20);

	memset(d, 0x55, sizeof(d));
	lapic_ops.read(&l, 0x80, d, 2);
	assert_int_equal(d[0], 0);
	assert_int_equal(d[1], 0);
	memset(d, 0x55, sizeof(d));
	lapic_ops.read(&l, 0x80, d, 8);
	for (int i = 0; i < 8; i++)
		assert_int_equal(d[i], 0);
	assert_int_equal(rd(0x84), 0);
	assert_int_equal(rd(0x30 + 4), 0);
	/* Unknown and write-only registers read 0; the last dword is fine. */
	assert_int_equal(rd(0xb0), 0);
	assert_int_equal(rd(0xffc), 0);
	wr(0xff0, 0xffffffff);
}

static void test_timer_one_shot(void **state)
{
	(void)state;
	enable();
	wr(0x3e0, 0xb);		/* divide by 1 */
	assert_int_equal(clock_calls, 0);
	wr(0x320, 0x40);	/* one-shot, vector 0x40 */
	assert_int_equal(clock_calls, 0);

	fake_now = 1000;
	wr(0x380, 500);
	assert_int_equal(clock_calls, 1);
	assert_int_equal(next_deadline(), 1500);
	assert_int_equal(rd(0x380), 500);

	fake_now = 1200;
	assert_int_equal(rd(0x390), 300);
	assert_int_equal(clock_calls, 2);

	assert_int_equal(vtimer_run_due(&timers, 1499), 0);
	assert_false(irr_has(0x40));
	assert_int_equal(vtimer_run_due(&timers, 1500), 1);
	assert_true(irr_has(0x40));
	assert_int_equal(lapic_pending_vector(&l), 0x40);
	uint64_t d;
	assert_false(vtimer_next(&timers, &d));

	/* Expired: reads 0 without sampling time. */
	fake_now = 5000;
	assert_int_equal(rd(0x390), 0);
	assert_int_equal(clock_calls, 2);

	/* Writing 0 to a stopped timer does not sample time either. */
	wr(0x380, 0);
	assert_int_equal(clock_calls, 2);
}

static void test_timer_stop(void **state)
{
	uint64_t d;

	(void)state;
	enable();
	wr(0x3e0, 0xb);
	wr(0x320, 0x40);
	wr(0x380, 100);
	assert_true(vtimer_next(&timers, &d));
	fake_now = 50;
	wr(0x380, 0);
	assert_false(vtimer_next(&timers, &d));
	assert_int_equal(rd(0x390), 0);
	assert_false(irr_has(0x40));
}

static void test_timer_periodic_drops_missed(void **state)
{
	(void)state;
	enable();
	wr(0x3e0, 0xb);
	wr(0x320, (1u << 17) | 0x40);	/* periodic */
	wr(0x380, 100);			/* at t = 0 */
	assert_int_equal(next_deadline(), 100);

	/* The run loop only gets to it at 350: one interrupt, next at 400. */
	assert_int_equal(vtimer_run_due(&timers, 350), 1);
	assert_true(irr_has(0x40));
	assert_int_equal(next_deadline(), 400);
	fake_now = 350;
	assert_int_equal(rd(0x390), 50);

	lapic_accept(&l, 0x40);
	wr(0xb0, 0);
	/* Exactly on a boundary: the next one is a whole period later. */
	assert_int_equal(vtimer_run_due(&timers, 400), 1);
	assert_int_equal(next_deadline(), 500);
	assert_true(irr_has(0x40));
	fake_now = 400;
	assert_int_equal(rd(0x390), 100);
	fake_now = 499;
	assert_int_equal(rd(0x390), 1);
}

static void test_timer_divide(void **state)
{
	(void)state;
	enable();
	wr(0x320, 0x40);
	wr(0x3e0, 0x3);		/* divide by 16 */
	assert_int_equal(rd(0x3e0), 0x3);
	wr(0x380, 100);		/* t = 0 */
	assert_int_equal(next_deadline(), 1600);
	fake_now = 800;
	assert_int_equal(rd(0x390), 50);

	/* Divide by 1 from here: the remaining 50 ticks take 50 ns. */
	int calls = clock_calls;
	wr(0x3e0, 0xb);
	assert_int_equal(clock_calls, calls + 1);
	assert_int_equal(next_deadline(), 850);
	fake_now = 825;
	assert_int_equal(rd(0x390), 25);

	/* Encodings: 0b1010 is 128, 0b1000 is 32, 0b0000 is 2. */
	fake_now = 1000;
	wr(0x3e0, 0xa);
	wr(0x380, 1);
	assert_int_equal(next_deadline(), 1128);
	wr(0x3e0, 0x8);
	wr(0x380, 1);
	assert_int_equal(next_deadline(), 1032);
	wr(0x3e0, 0x0);
	wr(0x380, 3);
	assert_int_equal(next_deadline(), 1006);
	/* Reserved divide bits are dropped. */
	wr(0x3e0, 0xfffffff4);
	assert_int_equal(rd(0x3e0), 0x0);

	/* A divide change of a stopped timer samples no time. */
	wr(0x380, 0);
	calls = clock_calls;
	wr(0x3e0, 0xb);
	assert_int_equal(clock_calls, calls);
}

static void test_timer_masked(void **state)
{
	(void)state;
	enable();
	wr(0x3e0, 0xb);
	wr(0x320, 0x10040);	/* masked one-shot */
	wr(0x380, 10);
	vtimer_run_due(&timers, 10);
	assert_false(irr_has(0x40));
	/* A masked periodic timer keeps counting. */
	wr(0x320, 0x30040);
	fake_now = 20;
	wr(0x380, 10);
	vtimer_run_due(&timers, 30);
	assert_false(irr_has(0x40));
	assert_int_equal(next_deadline(), 40);
	wr(0x320, 0x20040);	/* unmask */
	vtimer_run_due(&timers, 40);
	assert_true(irr_has(0x40));
}

static void test_timer_mode_change_catches_up(void **state)
{
	uint64_t d;

	(void)state;
	enable();
	wr(0x3e0, 0xb);
	wr(0x320, 0x40);	/* one-shot */
	wr(0x380, 100);		/* deadline 100 */
	/*
	 * At 150 the run loop has not yet fired the vtimer; the guest makes
	 * the timer periodic.  The one-shot expiry happened at 100 under the
	 * old mode: interrupt, and the timer stays stopped.
	 */
	fake_now = 150;
	wr(0x320, (1u << 17) | 0x40);
	assert_true(irr_has(0x40));
	assert_false(vtimer_next(&timers, &d));
	assert_int_equal(rd(0x390), 0);

	/* Same mode, other vector: no time sample. */
	int calls = clock_calls;
	wr(0x320, (1u << 17) | 0x41);
	assert_int_equal(clock_calls, calls);
}

static void test_timer_restart_catches_up(void **state)
{
	(void)state;
	enable();
	wr(0x3e0, 0xb);
	wr(0x320, 0x40);
	wr(0x380, 100);
	/* Re-armed after the old deadline passed: the old expiry counts. */
	fake_now = 120;
	wr(0x380, 100);
	assert_true(irr_has(0x40));
	assert_int_equal(next_deadline(), 220);
}

static void test_restore_timer(void **state)
{
	struct lapic_state saved;
	uint64_t d;

	(void)state;
	enable();
	wr(0x3e0, 0xb);
	wr(0x320, (1u << 17) | 0x40);
	fake_now = 7;
	wr(0x380, 1000);
	memcpy(&saved, &l.state, sizeof(saved));

	memset(&timers, 0, sizeof(timers));
	lapic_init(&l, &fake_nd, &timers, eoi_cb, NULL);
	assert_false(vtimer_next(&timers, &d));
	memcpy(&l.state, &saved, sizeof(saved));
	lapic_state_restored(&l);
	assert_int_equal(next_deadline(), 1007);
	fake_now = 507;
	assert_int_equal(rd(0x390), 500);
}

static void test_bus_registration(void **state)
{
	struct bus mmio;
	uint8_t d[4];

	(void)state;
	bus_init(&mmio, "mmio");
	assert_int_equal(lapic_register(&l, &mmio, 0xfee00000), 0);
	assert_int_equal(bus_access(&mmio, 0xfee00030, d, 4, false, NULL), BUS_OK);
	assert_int_equal(bus_le_get(d, 4), 0x00050014);
	assert_int_equal(bus_access(&mmio, 0xfee00ffc, d, 4, false, NULL), BUS_OK);
	assert_int_equal(bus_access(&mmio, 0xfee01000, d, 4, false, NULL), BUS_UNCLAIMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_reset_state, setup),
		cmocka_unit_test_setup(test_priority_and_nesting, setup),
		cmocka_unit_test_setup(test_tpr_masking, setup),
		cmocka_unit_test_setup(test_eoi_level, setup),
		cmocka_unit_test_setup(test_software_disabled, setup),
		cmocka_unit_test_setup(test_lvt_writable_bits, setup),
		cmocka_unit_test_setup(test_illegal_vector_esr, setup),
		cmocka_unit_test_setup(test_self_ipi, setup),
		cmocka_unit_test_setup(test_unaligned_ignored, setup),
		cmocka_unit_test_setup(test_timer_one_shot, setup),
		cmocka_unit_test_setup(test_timer_stop, setup),
		cmocka_unit_test_setup(test_timer_periodic_drops_missed, setup),
		cmocka_unit_test_setup(test_timer_divide, setup),
		cmocka_unit_test_setup(test_timer_masked, setup),
		cmocka_unit_test_setup(test_timer_mode_change_catches_up, setup),
		cmocka_unit_test_setup(test_timer_restart_catches_up, setup),
		cmocka_unit_test_setup(test_restore_timer, setup),
		cmocka_unit_test_setup(test_bus_registration, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
