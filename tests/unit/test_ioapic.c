/*
 * test_ioapic.c - unit tests for the I/O APIC model (vmm/devices/ioapic.c).
 *
 * The deliver callback records what reaches the (absent) local APIC.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/devices/ioapic.h"

#define RTE_LEVEL	(1u << 15)
#define RTE_MASKED	(1u << 16)
#define RTE_REMOTE_IRR	(1u << 14)

static struct ioapic io;
static int ndeliv;
static uint8_t last_vec;
static bool last_level;

static void deliver(void *ctx, uint8_t vector, bool level)
{
	assert_ptr_equal(ctx, &io);
	ndeliv++;
	last_vec = vector;
	last_level = level;
}

static int setup(void **state)
{
	(void)state;
	ioapic_init(&io, deliver, &io);
	ndeliv = 0;
	last_vec = 0;
	last_level = false;
	return 0;
}

static void mwr(uint32_t off, uint32_t v, unsigned size)
{
	uint8_t d[8];

	bus_le_put(d, size, v);
	ioapic_ops.write(&io, off, d, size);
}

static uint32_t mrd(uint32_t off, unsigned size)
{
	uint8_t d[8];

	memset(d, 0xaa, sizeof(d));
	ioapic_ops.read(&io, off, d, size);
	return (uint32_t)bus_le_get(d, size);
}

static uint32_t reg_rd(uint8_t r)
{
	mwr(0x00, r, 4);
	return mrd(0x10, 4);
}

static void reg_wr(uint8_t r, uint32_t v)
{
	mwr(0x00, r, 4);
	mwr(0x10, v, 4);
}

static void set_rte(unsigned pin, uint32_t lo, uint32_t hi)
{
	reg_wr(0x11 + 2 * pin, hi);
	reg_wr(0x10 + 2 * pin, lo);
}

static void test_id_version(void **state)
{
	(void)state;
	assert_int_equal(reg_rd(0x01), 0x00170020);
	assert_int_equal(reg_rd(0x00), 0);
	reg_wr(0x00, 0xffffffff);
	assert_int_equal(reg_rd(0x00), 0x0f000000);
	assert_int_equal(reg_rd(0x02), 0x0f000000);
	/* Version and arbitration are read-only. */
	reg_wr(0x01, 0);
	assert_int_equal(reg_rd(0x01), 0x00170020);
	/* Every pin comes out of reset masked. */
	for (unsigned pin = 0; pin < IOAPIC_PINS; pin++) {
		assert_int_equal(reg_rd(0x10 + 2 * pin), RTE_MASKED);
		assert_int_equal(reg_rd(0x11 + 2 * pin), 0);
	}
	/* Past the table and reserved registers read 0. */
	assert_int_equal(reg_rd(0x40), 0);
	assert_int_equal(reg_rd(0xff), 0);
	reg_wr(0x40, 0x1234);
	assert_int_equal(reg_rd(0x40), 0);
}

static void test_redirection_rw(void **state)
{
	(void)state;
	set_rte(7, 0x0001a9ff, 0xff000000);
	assert_int_equal(reg_rd(0x1e), 0x0001a9ff);
	assert_int_equal(reg_rd(0x1f), 0xff000000);
	/* Delivery status and remote IRR are read-only; reserved bits drop. */
	set_rte(8, 0xfffeffff, 0x00ffffff);
	assert_int_equal(reg_rd(0x20), 0x0000afff);
	assert_int_equal(reg_rd(0x21), 0);
	/* IOREGSEL reads back; it is one byte. */
	mwr(0x00, 0x1234, 4);
	assert_int_equal(mrd(0x00, 4), 0x34);
	mwr(0x00, 0x21, 1);
	assert_int_equal(mrd(0x00, 1), 0x21);
	/* IOWIN acts only on 32-bit accesses. */
	mwr(0x00, 0x1e, 4);
	mwr(0x10, 0x55, 1);
	assert_int_equal(reg_rd(0x1e), 0x0001a9ff);
	mwr(0x00, 0x1e, 4);
	assert_int_equal(mrd(0x10, 2), 0);
	/* Other offsets in the window read 0 and ignore writes. */
	mwr(0x20, 0xffffffff, 4);
	assert_int_equal(mrd(0x20, 4), 0);
	assert_int_equal(mrd(0xffc, 4), 0);
}

static void test_edge(void **state)
{
	(void)state;
	set_rte(3, 0x33, 0);
	ioapic_set_irq(&io, 3, 1);
	assert_int_equal(ndeliv, 1);
	assert_int_equal(last_vec, 0x33);
	assert_false(last_level);
	/* Still high: no new edge. */
	ioapic_set_irq(&io, 3, 1);
	assert_int_equal(ndeliv, 1);
	ioapic_set_irq(&io, 3, 0);
	assert_int_equal(ndeliv, 1);
	ioapic_set_irq(&io, 3, 1);
	assert_int_equal(ndeliv, 2);
	/* Edge pins never set remote IRR. */
	assert_int_equal(reg_rd(0x16) & RTE_REMOTE_IRR, 0);
}

static void test_level_remote_irr(void **state)
{
	(void)state;
	set_rte(5, RTE_LEVEL | 0x35, 0);
	ioapic_set_irq(&io, 5, 1);
	assert_int_equal(ndeliv, 1);
	assert_int_equal(last_vec, 0x35);
	assert_true(last_level);
	assert_true(reg_rd(0x1a) & RTE_REMOTE_IRR);
	/* Until the EOI, nothing more. */
	ioapic_set_irq(&io, 5, 1);
	assert_int_equal(ndeliv, 1);
	/* EOI for another vector changes nothing. */
	ioapic_eoi(&io, 0x36);
	assert_int_equal(ndeliv, 1);
	assert_true(reg_rd(0x1a) & RTE_REMOTE_IRR);
	/* EOI while still asserted: delivered again. */
	ioapic_eoi(&io, 0x35);
	assert_int_equal(ndeliv, 2);
	assert_true(reg_rd(0x1a) & RTE_REMOTE_IRR);
	/* Lowered, then EOI: remote IRR clears, no delivery. */
	ioapic_set_irq(&io, 5, 0);
	ioapic_eoi(&io, 0x35);
	assert_int_equal(ndeliv, 2);
	assert_int_equal(reg_rd(0x1a) & RTE_REMOTE_IRR, 0);
	ioapic_set_irq(&io, 5, 1);
	assert_int_equal(ndeliv, 3);
}

static void test_eoi_register(void **state)
{
	(void)state;
	set_rte(9, RTE_LEVEL | 0x59, 0);
	ioapic_set_irq(&io, 9, 1);
	ioapic_set_irq(&io, 9, 0);
	assert_true(reg_rd(0x22) & RTE_REMOTE_IRR);
	mwr(0x40, 0x58, 4);
	assert_true(reg_rd(0x22) & RTE_REMOTE_IRR);
	mwr(0x40, 0x59, 4);
	assert_int_equal(reg_rd(0x22) & RTE_REMOTE_IRR, 0);
}

static void test_masking(void **state)
{
	(void)state;
	/* Level, masked, asserted: delivered when unmasked. */
	set_rte(10, RTE_MASKED | RTE_LEVEL | 0x40, 0);
	ioapic_set_irq(&io, 10, 1);
	assert_int_equal(ndeliv, 0);
	set_rte(10, RTE_LEVEL | 0x40, 0);
	assert_int_equal(ndeliv, 1);
	assert_int_equal(last_vec, 0x40);

	/* Edge while masked: lost. */
	set_rte(11, RTE_MASKED | 0x41, 0);
	ioapic_set_irq(&io, 11, 1);
	set_rte(11, 0x41, 0);
	assert_int_equal(ndeliv, 1);
	ioapic_set_irq(&io, 11, 0);
	ioapic_set_irq(&io, 11, 1);
	assert_int_equal(ndeliv, 2);
	assert_int_equal(last_vec, 0x41);

	/* A level pin masked while remote IRR is set keeps it until EOI. */
	set_rte(10, RTE_MASKED | RTE_LEVEL | 0x40, 0);
	assert_true(reg_rd(0x24) & RTE_REMOTE_IRR);
	ioapic_eoi(&io, 0x40);
	assert_int_equal(ndeliv, 2);	/* masked: no re-delivery */
	assert_int_equal(reg_rd(0x24) & RTE_REMOTE_IRR, 0);
}

static void test_switch_to_edge_clears_remote_irr(void **state)
{
	(void)state;
	set_rte(4, RTE_LEVEL | 0x44, 0);
	ioapic_set_irq(&io, 4, 1);
	assert_true(reg_rd(0x18) & RTE_REMOTE_IRR);
	set_rte(4, 0x44, 0);
	assert_int_equal(reg_rd(0x18) & RTE_REMOTE_IRR, 0);
	assert_int_equal(ndeliv, 1);
}

static void test_unsupported_modes_and_pins(void **state)
{
	(void)state;
	/* NMI (4), INIT (5), ExtINT (7): dropped. */
	set_rte(1, (4u << 8) | 0x21, 0);
	set_rte(2, RTE_LEVEL | (7u << 8) | 0x22, 0);
	ioapic_set_irq(&io, 1, 1);
	ioapic_set_irq(&io, 2, 1);
	assert_int_equal(ndeliv, 0);
	assert_int_equal(reg_rd(0x14) & RTE_REMOTE_IRR, 0);
	/* Lowest priority goes to the one CPU. */
	set_rte(6, (1u << 8) | 0x26, 0);
	ioapic_set_irq(&io, 6, 1);
	assert_int_equal(ndeliv, 1);
	assert_int_equal(last_vec, 0x26);
	/* Pins out of range are ignored. */
	ioapic_set_irq(&io, IOAPIC_PINS, 1);
	ioapic_set_irq(&io, 1000, 1);
	assert_int_equal(ndeliv, 1);
	assert_int_equal(io.state.pin_level & ~((1u << IOAPIC_PINS) - 1), 0);
}

static void test_bus_registration(void **state)
{
	struct bus mmio;
	uint8_t d[4];

	(void)state;
	bus_init(&mmio, "mmio");
	assert_int_equal(ioapic_register(&io, &mmio, 0xfec00000), 0);
	bus_le_put(d, 4, 1);
	assert_int_equal(bus_access(&mmio, 0xfec00000, d, 4, true, NULL), BUS_OK);
	assert_int_equal(bus_access(&mmio, 0xfec00010, d, 4, false, NULL), BUS_OK);
	assert_int_equal(bus_le_get(d, 4), 0x00170020);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_id_version, setup),
		cmocka_unit_test_setup(test_redirection_rw, setup),
		cmocka_unit_test_setup(test_edge, setup),
		cmocka_unit_test_setup(test_level_remote_irr, setup),
		cmocka_unit_test_setup(test_eoi_register, setup),
		cmocka_unit_test_setup(test_masking, setup),
		cmocka_unit_test_setup(test_switch_to_edge_clears_remote_irr, setup),
		cmocka_unit_test_setup(test_unsupported_modes_and_pins, setup),
		cmocka_unit_test_setup(test_bus_registration, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
