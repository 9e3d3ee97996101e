/*
 * test_pic.c - unit tests for the 8259A pair and ELCR (vmm/devices/pic.c),
 * programmed through its ports as a guest does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/bus.h"
#include "vmm/devices/pic.h"

static struct bus bus;
static struct pic pic;

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

static uint8_t read_isr(uint16_t base)
{
	out8(base, 0x0b);
	return in8(base);
}

static uint8_t read_irr(uint16_t base)
{
	out8(base, 0x0a);
	return in8(base);
}

/* Program both chips the way Linux does: vectors 0x20.. and 0x28... */
static void linux_init(uint8_t icw4_master, uint8_t icw4_slave)
{
	out8(0x20, 0x11);
	out8(0x21, 0x20);
	out8(0x21, 0x04);
	out8(0x21, icw4_master);
	out8(0xa0, 0x11);
	out8(0xa1, 0x28);
	out8(0xa1, 0x02);
	out8(0xa1, icw4_slave);
	out8(0x21, 0x00);
	out8(0xa1, 0x00);
}

static int setup_raw(void **st)
{
	(void)st;
	bus_init(&bus, "pio");
	pic_init(&pic);
	assert_int_equal(pic_register(&pic, &bus), 0);
	return 0;
}

static int setup(void **st)
{
	setup_raw(st);
	linux_init(0x01, 0x01);
	return 0;
}

static void test_reset_state(void **st)
{
	(void)st;
	assert_int_equal(in8(0x21), 0xff);
	assert_int_equal(in8(0xa1), 0xff);
	assert_int_equal(in8(0x4d0), 0);
	pic_set_irq(&pic, 0, 1);
	pic_set_irq(&pic, 8, 1);
	assert_false(pic_has_interrupt(&pic));
	/* Nothing to deliver: the spurious vector at the BIOS base 0x08. */
	assert_int_equal(pic_acknowledge(&pic), 0x0f);
	assert_int_equal(read_isr(0x20), 0);
	/* Unmasking shows the latched requests at the BIOS vectors. */
	out8(0x21, 0xfe);
	assert_true(pic_has_interrupt(&pic));
	assert_int_equal(pic_acknowledge(&pic), 0x08);
	out8(0x21, 0xfa);
	out8(0xa1, 0xfe);
	out8(0x20, 0x20);
	assert_int_equal(pic_acknowledge(&pic), 0x70);
}

static void test_basic_delivery_and_eoi(void **st)
{
	(void)st;
	assert_false(pic_has_interrupt(&pic));
	pic_set_irq(&pic, 1, 1);
	assert_true(pic_has_interrupt(&pic));
	assert_int_equal(read_irr(0x20), 0x02);
	assert_int_equal(pic_acknowledge(&pic), 0x21);
	assert_int_equal(read_isr(0x20), 0x02);
	assert_int_equal(read_irr(0x20), 0x00); /* edge: IRR cleared at INTA */
	assert_false(pic_has_interrupt(&pic));
	out8(0x20, 0x20); /* non-specific EOI */
	assert_int_equal(read_isr(0x20), 0);
	/* Still high: no new edge, no new request. */
	assert_false(pic_has_interrupt(&pic));
	pic_set_irq(&pic, 1, 1);
	assert_false(pic_has_interrupt(&pic));
	pic_set_irq(&pic, 1, 0);
	pic_set_irq(&pic, 1, 1);
	assert_true(pic_has_interrupt(&pic));
}

static void test_priority_and_nesting(void **st)
{
	(void)st;
	pic_set_irq(&pic, 5, 1);
	pic_set_irq(&pic, 3, 1);
	assert_int_equal(pic_acknowledge(&pic), 0x23);
	/* IRQ 5 is blocked by IRQ 3 in service ... */
	assert_false(pic_has_interrupt(&pic));
	/* ... but IRQ 1 nests above it. */
	pic_set_irq(&pic, 1, 1);
	assert_true(pic_has_interrupt(&pic));
	assert_int_equal(pic_acknowledge(&pic), 0x21);
	assert_int_equal(read_isr(0x20), 0x0a);
	out8(0x20, 0x20); /* clears the highest: IRQ 1 */
	assert_int_equal(read_isr(0x20), 0x08);
	assert_false(pic_has_interrupt(&pic));
	out8(0x20, 0x20);
	assert_true(pic_has_interrupt(&pic));
	assert_int_equal(pic_acknowledge(&pic), 0x25);
	/* Nothing left: the spurious vector, ISR unchanged. */
	assert_int_equal(pic_acknowledge(&pic), 0x27);
	assert_int_equal(read_isr(0x20), 0x20);
}

static void test_mask(void **st)
{
	(void)st;
	out8(0x21, 0x10);
	assert_int_equal(in8(0x21), 0x10);
	pic_set_irq(&pic, 4, 1);
	assert_false(pic_has_interrupt(&pic));
	assert_int_equal(read_irr(0x20), 0x10); /* requested while masked */
	pic_set_irq(&pic, 4, 0);
	out8(0x21, 0x00);
	assert_true(pic_has_interrupt(&pic)); /* the edge was latched */
	assert_int_equal(pic_acknowledge(&pic), 0x24);
}

static void test_specific_eoi(void **st)
{
	(void)st;
	pic_set_irq(&pic, 6, 1);
	assert_int_equal(pic_acknowledge(&pic), 0x26);
	pic_set_irq(&pic, 0, 1);
	assert_int_equal(pic_acknowledge(&pic), 0x20);
	assert_int_equal(read_isr(0x20), 0x41);
	out8(0x20, 0x66); /* specific EOI for IRQ 6, not the highest */
	assert_int_equal(read_isr(0x20), 0x01);
	out8(0x20, 0x40); /* OCW2 no-op command */
	assert_int_equal(read_isr(0x20), 0x01);
}

static void test_level_triggered(void **st)
{
	(void)st;
	out8(0x4d0, 0xff);
	assert_int_equal(in8(0x4d0), 0xf8); /* IRQ 0..2 cannot be level */
	out8(0x4d1, 0xff);
	assert_int_equal(in8(0x4d1), 0xde); /* nor IRQ 8, 13 */
	out8(0x4d1, 0x00);
	out8(0x4d0, 0x08);
	assert_int_equal(in8(0x4d0), 0x08);

	pic_set_irq(&pic, 3, 1);
	assert_int_equal(pic_acknowledge(&pic), 0x23);
	assert_int_equal(read_irr(0x20), 0x08); /* level: IRR follows the line */
	assert_false(pic_has_interrupt(&pic)); /* in service */
	out8(0x20, 0x20);
	assert_true(pic_has_interrupt(&pic)); /* still high: again */
	pic_set_irq(&pic, 3, 0);
	assert_false(pic_has_interrupt(&pic));
	assert_int_equal(read_irr(0x20), 0);
	/* The line went away between INTR and INTA: spurious IRQ 7. */
	pic_set_irq(&pic, 3, 1);
	assert_true(pic_has_interrupt(&pic));
	pic_set_irq(&pic, 3, 0);
	assert_int_equal(pic_acknowledge(&pic), 0x27);
	assert_int_equal(read_isr(0x20), 0);
	/* Switching a high line to level makes it request at once. */
	out8(0x4d0, 0x00);
	pic_set_irq(&pic, 5, 1);
	assert_int_equal(pic_acknowledge(&pic), 0x25);
	out8(0x20, 0x20);
	assert_false(pic_has_interrupt(&pic));
	out8(0x4d0, 0x20);
	assert_true(pic_has_interrupt(&pic));
}

static void test_cascade(void **st)
{
	(void)st;
	pic_set_irq(&pic, 9, 1);
	assert_true(pic_has_interrupt(&pic));
	assert_int_equal(read_irr(0x20), 0x04);
	assert_int_equal(pic_acknowledge(&pic), 0x29);
	assert_int_equal(read_isr(0x20), 0x04);
	assert_int_equal(read_isr(0xa0), 0x02);
	/* A second slave request waits for both EOIs. */
	pic_set_irq(&pic, 12, 1);
	assert_false(pic_has_interrupt(&pic));
	out8(0xa0, 0x20);
	assert_false(pic_has_interrupt(&pic)); /* master IRQ 2 still in service */
	out8(0x20, 0x20);
	assert_true(pic_has_interrupt(&pic));
	assert_int_equal(pic_acknowledge(&pic), 0x2c);
	out8(0xa0, 0x20);
	out8(0x20, 0x20);
	/* Priorities across the cascade: 0 > 8..15 > 3. */
	pic_set_irq(&pic, 3, 1);
	pic_set_irq(&pic, 8, 1);
	pic_set_irq(&pic, 0, 1);
	assert_int_equal(pic_acknowledge(&pic), 0x20);
	out8(0x20, 0x20);
	assert_int_equal(pic_acknowledge(&pic), 0x28);
	out8(0xa0, 0x20);
	out8(0x20, 0x20);
	assert_int_equal(pic_acknowledge(&pic), 0x23);
	/* Masking the slave line at the slave or IRQ 2 at the master. */
	out8(0x20, 0x20);
	out8(0xa1, 0x01);
	pic_set_irq(&pic, 8, 0);
	pic_set_irq(&pic, 8, 1);
	assert_false(pic_has_interrupt(&pic));
	out8(0xa1, 0x00);
	assert_true(pic_has_interrupt(&pic));
	out8(0x21, 0x04);
	assert_false(pic_has_interrupt(&pic));
	out8(0x21, 0x00);
	assert_int_equal(pic_acknowledge(&pic), 0x28);
}

static void test_slave_spurious(void **st)
{
	(void)st;
	out8(0x4d1, 0x04); /* IRQ 10 level */
	pic_set_irq(&pic, 10, 1);
	assert_true(pic_has_interrupt(&pic));
	pic_set_irq(&pic, 10, 0);
	/* Master IRQ 2 latched the edge; the slave has nothing: IRQ 15. */
	assert_true(pic_has_interrupt(&pic));
	assert_int_equal(pic_acknowledge(&pic), 0x2f);
	assert_int_equal(read_isr(0x20), 0x04); /* the master took IRQ 2 */
	assert_int_equal(read_isr(0xa0), 0x00);
}

static void test_rotation(void **st)
{
	(void)st;
	pic_set_irq(&pic, 1, 1);
	assert_int_equal(pic_acknowledge(&pic), 0x21);
	out8(0x20, 0xa0); /* rotate on non-specific EOI: IRQ 1 lowest */
	assert_int_equal(read_isr(0x20), 0);
	pic_set_irq(&pic, 0, 1);
	pic_set_irq(&pic, 3, 1);
	assert_int_equal(pic_acknowledge(&pic), 0x23); /* 3 now beats 0 */
	out8(0x20, 0x20);
	assert_int_equal(pic_acknowledge(&pic), 0x20);
	out8(0x20, 0xe0); /* rotate on specific EOI for IRQ 0 */
	assert_int_equal(read_isr(0x20), 0);
	/* Set priority: IRQ 4 lowest, so IRQ 5 is highest. */
	out8(0x20, 0xc4);
	pic_set_irq(&pic, 4, 1);
	pic_set_irq(&pic, 5, 1);
	pic_set_irq(&pic, 6, 1);
	assert_int_equal(pic_acknowledge(&pic), 0x25);
	assert_false(pic_has_interrupt(&pic)); /* 6 and 4 rank below 5 */
	out8(0x20, 0x20);
	assert_int_equal(pic_acknowledge(&pic), 0x26);
	out8(0x20, 0x20);
	assert_int_equal(pic_acknowledge(&pic), 0x24);
}

static void test_auto_eoi(void **st)
{
	(void)st;
	linux_init(0x03, 0x01);
	pic_set_irq(&pic, 4, 1);
	assert_int_equal(pic_acknowledge(&pic), 0x24);
	assert_int_equal(read_isr(0x20), 0); /* no ISR bit */
	pic_set_irq(&pic, 5, 1);
	assert_true(pic_has_interrupt(&pic)); /* nothing blocks */
	/* Rotate in auto-EOI mode: the acknowledged IRQ becomes lowest. */
	out8(0x20, 0x80);
	pic_set_irq(&pic, 5, 0);
	pic_set_irq(&pic, 4, 0);
	assert_int_equal(pic_acknowledge(&pic), 0x25);
	pic_set_irq(&pic, 4, 1);
	pic_set_irq(&pic, 7, 1);
	assert_int_equal(pic_acknowledge(&pic), 0x27); /* 6, 7 rank above 4 */
	out8(0x20, 0x00); /* clear rotate in auto-EOI */
	assert_int_equal(pic_acknowledge(&pic), 0x24);
	pic_set_irq(&pic, 7, 0);
	pic_set_irq(&pic, 7, 1);
	pic_set_irq(&pic, 4, 0);
	pic_set_irq(&pic, 4, 1);
	assert_int_equal(pic_acknowledge(&pic), 0x24); /* no rotation now */
}

static void test_poll(void **st)
{
	(void)st;
	out8(0x20, 0x0c);
	assert_int_equal(in8(0x20), 0x00); /* nothing requested */
	assert_int_equal(in8(0x20), 0x00); /* back to IRR */
	pic_set_irq(&pic, 6, 1);
	out8(0x20, 0x0c);
	assert_int_equal(in8(0x21), 0x86); /* poll works at either port */
	assert_int_equal(read_isr(0x20), 0x40);
	assert_false(pic_has_interrupt(&pic));
	assert_int_equal(in8(0x21), 0x00); /* poll is one-shot: IMR again */
}

static void test_special_mask_mode(void **st)
{
	(void)st;
	pic_set_irq(&pic, 3, 1);
	assert_int_equal(pic_acknowledge(&pic), 0x23);
	pic_set_irq(&pic, 5, 1);
	out8(0x21, 0x08);
	assert_false(pic_has_interrupt(&pic));
	out8(0x20, 0x68); /* set special mask */
	assert_true(pic_has_interrupt(&pic));
	assert_int_equal(pic_acknowledge(&pic), 0x25);
	out8(0x20, 0x48); /* reset special mask */
	pic_set_irq(&pic, 5, 0);
	pic_set_irq(&pic, 5, 1);
	out8(0x20, 0x65); /* specific EOI 5: IRQ 3 still blocks 5 */
	assert_false(pic_has_interrupt(&pic));
}

static void test_special_fully_nested(void **st)
{
	(void)st;
	linux_init(0x11, 0x01);
	pic_set_irq(&pic, 9, 1);
	assert_int_equal(pic_acknowledge(&pic), 0x29);
	pic_set_irq(&pic, 8, 1); /* higher priority on the slave */
	assert_true(pic_has_interrupt(&pic));
	assert_int_equal(pic_acknowledge(&pic), 0x28);
	/* Without SFNM the same sequence is blocked at the master. */
	linux_init(0x01, 0x01);
	pic_set_irq(&pic, 9, 0);
	pic_set_irq(&pic, 8, 0);
	pic_set_irq(&pic, 9, 1);
	assert_int_equal(pic_acknowledge(&pic), 0x29);
	pic_set_irq(&pic, 8, 1);
	assert_false(pic_has_interrupt(&pic));
}

static void test_icw1_resets(void **st)
{
	(void)st;
	out8(0x4d0, 0x20);
	pic_set_irq(&pic, 4, 1);
	pic_set_irq(&pic, 5, 1);
	pic_set_irq(&pic, 6, 1);
	assert_int_equal(pic_acknowledge(&pic), 0x24);
	out8(0x21, 0x80);
	out8(0x20, 0x11);
	out8(0x21, 0x40);
	out8(0x21, 0x04);
	out8(0x21, 0x01);
	assert_int_equal(in8(0x21), 0x00);   /* IMR cleared */
	assert_int_equal(read_isr(0x20), 0); /* ISR cleared */
	/* The edge request (6) is dropped, the level one (5) stays. */
	assert_int_equal(read_irr(0x20), 0x20);
	assert_int_equal(pic_acknowledge(&pic), 0x45);
	/* The ELCR survives. */
	assert_int_equal(in8(0x4d0), 0x20);
}

static void test_single_mode_and_no_icw4(void **st)
{
	(void)st;
	out8(0x20, 0x13); /* single, ICW4 needed: no ICW3 */
	out8(0x21, 0x50);
	out8(0x21, 0x01); /* ICW4 */
	out8(0x21, 0xaa); /* OCW1 */
	assert_int_equal(in8(0x21), 0xaa);
	out8(0x20, 0x10); /* cascade, no ICW4 */
	out8(0x21, 0x60);
	out8(0x21, 0x04); /* ICW3 */
	out8(0x21, 0x55); /* OCW1 already */
	assert_int_equal(in8(0x21), 0x55);
	out8(0x21, 0x00);
	pic_set_irq(&pic, 1, 1);
	assert_int_equal(pic_acknowledge(&pic), 0x61);
}

static void test_out_of_range_and_wide(void **st)
{
	struct pic_state before;
	uint8_t d[2];

	(void)st;
	memcpy(&before, &pic.state, sizeof(before));
	pic_set_irq(&pic, 16, 1);
	pic_set_irq(&pic, 0xffffffffu, 1);
	assert_memory_equal(&before, &pic.state, sizeof(before));
	/* 16-bit write to 0x20: OCW3 (read ISR) then OCW1 at 0x21. */
	d[0] = 0x0b;
	d[1] = 0x80;
	assert_int_equal(bus_access(&bus, 0x20, d, 2, true, NULL), BUS_OK);
	pic_set_irq(&pic, 1, 1);
	pic_acknowledge(&pic);
	assert_int_equal(bus_access(&bus, 0x20, d, 2, false, NULL), BUS_OK);
	assert_int_equal(d[0], 0x02);
	assert_int_equal(d[1], 0x80);
	/* 16-bit ELCR access covers both bytes. */
	d[0] = 0xff;
	d[1] = 0xff;
	assert_int_equal(bus_access(&bus, 0x4d0, d, 2, true, NULL), BUS_OK);
	assert_int_equal(bus_access(&bus, 0x4d0, d, 2, false, NULL), BUS_OK);
	assert_int_equal(d[0], 0xf8);
	assert_int_equal(d[1], 0xde);
	/* Garbage command bytes never break the state machine. */
	for (int v = 0; v < 256; v++) {
		out8(0xa0, (uint8_t)v);
		out8(0xa1, (uint8_t)v);
		in8(0xa0);
		in8(0xa1);
	}
	pic_acknowledge(&pic);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_reset_state, setup_raw),
		cmocka_unit_test_setup(test_basic_delivery_and_eoi, setup),
		cmocka_unit_test_setup(test_priority_and_nesting, setup),
		cmocka_unit_test_setup(test_mask, setup),
		cmocka_unit_test_setup(test_specific_eoi, setup),
		cmocka_unit_test_setup(test_level_triggered, setup),
		cmocka_unit_test_setup(test_cascade, setup),
		cmocka_unit_test_setup(test_slave_spurious, setup),
		cmocka_unit_test_setup(test_rotation, setup),
		cmocka_unit_test_setup(test_auto_eoi, setup),
		cmocka_unit_test_setup(test_poll, setup),
		cmocka_unit_test_setup(test_special_mask_mode, setup),
		cmocka_unit_test_setup(test_special_fully_nested, setup),
		cmocka_unit_test_setup(test_icw1_resets, setup),
		cmocka_unit_test_setup(test_single_mode_and_no_icw4, setup),
		cmocka_unit_test_setup(test_out_of_range_and_wide, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
