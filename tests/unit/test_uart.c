/*
 * test_uart.c - unit tests for the 16550A model (vmm/devices/uart.c), driven
 * through a port bus as the guest would, with a fake IRQ line that records
 * every level it is driven to.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/bus.h"
#include "vmm/devices/uart.h"

#define COM1 0x3f8

struct irq_rec {
	int level;
	int calls;
};

struct tx_rec {
	uint8_t buf[64];
	int n;
};

static struct bus bus;
static struct uart uart;
static struct irq_rec irq;
static struct tx_rec txr;

static void rec_set(void *router, unsigned gsi, int level)
{
	struct irq_rec *r = router;

	assert_int_equal(gsi, 4);
	r->level = level;
	r->calls++;
}

static void rec_tx(void *ctx, uint8_t byte)
{
	struct tx_rec *t = ctx;

	if (t->n < (int)sizeof(t->buf))
		t->buf[t->n] = byte;
	t->n++;
}

static int setup(void **st)
{
	(void)st;
	memset(&irq, 0, sizeof(irq));
	memset(&txr, 0, sizeof(txr));
	bus_init(&bus, "pio");
	uart_init(&uart, (struct irq_line){ rec_set, &irq, 4 }, rec_tx, &txr);
	assert_int_equal(uart_register(&uart, &bus, COM1), 0);
	return 0;
}

static uint8_t in8(unsigned reg)
{
	uint8_t d = 0;

	assert_int_equal(bus_access(&bus, COM1 + reg, &d, 1, false, NULL), BUS_OK);
	return d;
}

static void out8(unsigned reg, uint8_t v)
{
	assert_int_equal(bus_access(&bus, COM1 + reg, &v, 1, true, NULL), BUS_OK);
}

static void test_reset_state(void **st)
{
	(void)st;
	assert_int_equal(in8(5), 0x60); /* THRE | TEMT, no data */
	assert_int_equal(in8(2), 0x01); /* no interrupt, FIFOs off */
	assert_int_equal(in8(6), 0xb0); /* DCD, DSR, CTS */
	assert_int_equal(in8(1), 0);
	assert_int_equal(in8(3), 0);
	assert_int_equal(in8(4), 0);
	assert_int_equal(in8(0), 0); /* empty RBR */
	assert_int_equal(irq.calls, 0);
	assert_int_equal(uart_rx_room(&uart), 1);
}

static void test_transmit(void **st)
{
	(void)st;
	out8(0, 'h');
	out8(0, 'i');
	assert_int_equal(txr.n, 2);
	assert_memory_equal(txr.buf, "hi", 2);
	assert_int_equal(in8(5) & 0x60, 0x60); /* empty again at once */
}

static void test_dlab(void **st)
{
	(void)st;
	out8(1, 0x05);       /* IER */
	out8(3, 0x83);       /* DLAB, 8N1 */
	assert_int_equal(in8(3), 0x83);
	assert_int_equal(in8(0), 0x01); /* default divisor 1 */
	out8(0, 0x0c);
	out8(1, 0x34);
	assert_int_equal(in8(0), 0x0c);
	assert_int_equal(in8(1), 0x34);
	assert_int_equal(txr.n, 0); /* a DLL write is not a byte sent */
	/* Received data stays put while DLAB hides RBR. */
	out8(3, 0x03);
	assert_int_equal(uart_receive(&uart, (const uint8_t *)"x", 1), 1);
	out8(3, 0x83);
	assert_int_equal(in8(0), 0x0c);
	assert_int_equal(in8(5) & 1, 1);
	out8(3, 0x03);
	assert_int_equal(in8(1), 0x05); /* IER untouched by the DLM write */
	assert_int_equal(in8(0), 'x');
	out8(0, 'y');
	assert_int_equal(txr.n, 1);
}

static void test_rx_no_fifo(void **st)
{
	(void)st;
	assert_int_equal(uart_receive(&uart, (const uint8_t *)"abc", 3), 1);
	assert_int_equal(uart_rx_room(&uart), 0);
	assert_int_equal(uart_receive(&uart, (const uint8_t *)"b", 1), 0);
	assert_int_equal(in8(5), 0x61);
	assert_int_equal(in8(0), 'a');
	assert_int_equal(in8(5), 0x60);
	assert_int_equal(uart_rx_room(&uart), 1);
	assert_int_equal(uart_receive(&uart, NULL, 0), 0);
}

static void test_fifo_fill_and_drain(void **st)
{
	uint8_t in[20];

	(void)st;
	for (int i = 0; i < 20; i++)
		in[i] = (uint8_t)(0x40 + i);
	out8(2, 0x07); /* enable, clear both */
	assert_int_equal(in8(2), 0xc1);
	assert_int_equal(uart_rx_room(&uart), 16);
	assert_int_equal(uart_receive(&uart, in, 5), 5);
	assert_int_equal(uart_rx_room(&uart), 11);
	/* Host-side flow control: only the room is taken, never an overrun. */
	assert_int_equal(uart_receive(&uart, in + 5, 15), 11);
	assert_int_equal(uart_rx_room(&uart), 0);
	assert_int_equal(uart_receive(&uart, in, 1), 0);
	assert_int_equal(in8(5), 0x61);
	for (int i = 0; i < 16; i++)
		assert_int_equal(in8(0), 0x40 + i);
	assert_int_equal(in8(5), 0x60); /* no OE */
	assert_int_equal(in8(0), 0);
	/* The ring wraps correctly. */
	assert_int_equal(uart_receive(&uart, in, 10), 10);
	assert_int_equal(in8(0), 0x40);
	assert_int_equal(uart_receive(&uart, in + 10, 7), 7);
	for (int i = 1; i < 17; i++)
		assert_int_equal(in8(0), 0x40 + i);
	assert_int_equal(in8(5) & 1, 0);
}

static void test_fcr_clear_and_disable(void **st)
{
	(void)st;
	out8(2, 0x01);
	assert_int_equal(uart_receive(&uart, (const uint8_t *)"abcd", 4), 4);
	out8(2, 0x03); /* clear RX, stay enabled */
	assert_int_equal(in8(5) & 1, 0);
	assert_int_equal(uart_rx_room(&uart), 16);
	assert_int_equal(uart_receive(&uart, (const uint8_t *)"abcd", 4), 4);
	out8(2, 0x00); /* disabling resets the FIFO */
	assert_int_equal(in8(5) & 1, 0);
	assert_int_equal(in8(2), 0x01);
	assert_int_equal(uart_rx_room(&uart), 1);
	/* Other bits are ignored unless bit 0 is set with them. */
	out8(2, 0xc0);
	assert_int_equal(in8(2) & 0xc0, 0);
	/* Re-enabling with the same value does not clear. */
	out8(2, 0x01);
	assert_int_equal(uart_receive(&uart, (const uint8_t *)"ab", 2), 2);
	out8(2, 0x01);
	assert_int_equal(in8(0), 'a');
}

static void test_rx_interrupt_and_out2(void **st)
{
	(void)st;
	out8(1, 0x01); /* ERBFI, OUT2 still clear */
	assert_int_equal(uart_receive(&uart, (const uint8_t *)"z", 1), 1);
	assert_int_equal(in8(2), 0x04);
	assert_int_equal(irq.calls, 0); /* gated by OUT2 */
	out8(4, 0x08);
	assert_int_equal(irq.level, 1);
	assert_int_equal(irq.calls, 1);
	out8(4, 0x00);
	assert_int_equal(irq.level, 0);
	out8(4, 0x08);
	assert_int_equal(irq.level, 1);
	assert_int_equal(irq.calls, 3);
	/* Reading IIR does not acknowledge received data ... */
	assert_int_equal(in8(2), 0x04);
	assert_int_equal(irq.level, 1);
	/* ... reading the data does, and the line is only driven on change. */
	assert_int_equal(in8(0), 'z');
	assert_int_equal(irq.level, 0);
	assert_int_equal(irq.calls, 4);
	in8(5);
	in8(2);
	assert_int_equal(irq.calls, 4);
	/* Disabling the source deasserts too. */
	uart_receive(&uart, (const uint8_t *)"q", 1);
	assert_int_equal(irq.level, 1);
	out8(1, 0);
	assert_int_equal(irq.level, 0);
	assert_int_equal(in8(2), 0x01);
}

static void test_fifo_trigger_and_timeout(void **st)
{
	uint8_t in[16] = { 0 };

	(void)st;
	out8(4, 0x08);
	out8(1, 0x01);
	out8(2, 0xc1); /* trigger level 14 */
	uart_receive(&uart, in, 1);
	assert_int_equal(in8(2), 0xcc); /* below trigger: character timeout */
	assert_int_equal(irq.level, 1);
	uart_receive(&uart, in, 12);
	assert_int_equal(in8(2), 0xcc);
	uart_receive(&uart, in, 1);
	assert_int_equal(in8(2), 0xc4); /* 14 bytes: at trigger level */
	in8(0);
	assert_int_equal(in8(2), 0xcc);
	out8(2, 0x43); /* trigger 4, clear */
	uart_receive(&uart, in, 4);
	assert_int_equal(in8(2), 0xc4);
}

static void test_thre_interrupt(void **st)
{
	(void)st;
	out8(4, 0x08);
	assert_int_equal(in8(2), 0x01);
	out8(1, 0x02); /* enabling ETBEI with THR empty interrupts at once */
	assert_int_equal(irq.level, 1);
	assert_int_equal(in8(2), 0x02);
	/* The IIR read acknowledged it. */
	assert_int_equal(irq.level, 0);
	assert_int_equal(in8(2), 0x01);
	out8(0, 'a'); /* sent at once: THR empty again */
	assert_int_equal(irq.level, 1);
	assert_int_equal(txr.n, 1);
	/* Re-writing IER with ETBEI still set is no new enable. */
	in8(2);
	out8(1, 0x02);
	assert_int_equal(in8(2), 0x01);
	/* Turning it off and on again re-raises. */
	out8(1, 0x00);
	out8(1, 0x02);
	assert_int_equal(in8(2), 0x02);
	/* A pending THRE is dropped from IIR while disabled. */
	out8(0, 'b');
	out8(1, 0x00);
	assert_int_equal(in8(2), 0x01);
	assert_int_equal(irq.level, 0);
}

static void test_loopback(void **st)
{
	(void)st;
	out8(4, 0x10);
	/* Entering loopback drops CTS, DSR, DCD: deltas latched. */
	assert_int_equal(in8(6), 0x0b);
	assert_int_equal(in8(6), 0x00);
	out8(0, 'L');
	assert_int_equal(txr.n, 0); /* not on the wire */
	assert_int_equal(in8(5), 0x61);
	assert_int_equal(in8(0), 'L');
	/* Console input is held back while the receiver is looped. */
	assert_int_equal(uart_rx_room(&uart), 0);
	assert_int_equal(uart_receive(&uart, (const uint8_t *)"x", 1), 0);
	/* MCR outputs loop to MSR inputs. */
	out8(4, 0x1f);
	assert_int_equal(in8(6), 0xfb); /* RI rose: no TERI; others changed */
	out8(4, 0x1b); /* OUT1 off: RI falls -> TERI */
	assert_int_equal(in8(6), 0xb4);
	out8(4, 0x11); /* DTR only */
	assert_int_equal(in8(6), 0x29);
	/* Leaving loopback: the idle inputs again, output goes to tx. */
	out8(4, 0x00);
	assert_int_equal(in8(6) & 0xf0, 0xb0);
	out8(0, 'W');
	assert_int_equal(txr.n, 1);
	assert_int_equal(txr.buf[0], 'W');
	assert_int_equal(uart_rx_room(&uart), 1);
}

static void test_loopback_fifo_overrun(void **st)
{
	(void)st;
	out8(2, 0x01);
	out8(4, 0x10);
	for (int i = 0; i < 17; i++)
		out8(0, (uint8_t)i);
	assert_int_equal(in8(5), 0x63); /* DR | OE */
	assert_int_equal(in8(5), 0x61); /* OE clears on read */
	for (int i = 0; i < 16; i++)
		assert_int_equal(in8(0), i); /* the 17th byte was lost */
	assert_int_equal(in8(5), 0x60);
}

static void test_interrupt_priority(void **st)
{
	(void)st;
	out8(4, 0x18); /* loopback + OUT2: CTS, DSR fall */
	out8(1, 0x0f); /* all sources; THRE raised by the enable */
	out8(0, 'A');
	out8(0, 'B'); /* no FIFO: overrun, B overwrites A */
	assert_int_equal(irq.level, 1);
	assert_int_equal(in8(2), 0x06); /* line status first */
	assert_int_equal(in8(5), 0x63);
	assert_int_equal(in8(2), 0x04); /* then data */
	assert_int_equal(in8(0), 'B');
	assert_int_equal(in8(2), 0x02); /* then THR empty (read acks it) */
	assert_int_equal(in8(2), 0x00); /* then modem status */
	assert_int_equal(irq.level, 1);
	assert_int_equal(in8(6), 0x83); /* DCD (from OUT2), DCTS, DDSR */
	assert_int_equal(in8(2), 0x01);
	assert_int_equal(irq.level, 0);
}

static void test_register_masks_and_readonly(void **st)
{
	(void)st;
	out8(1, 0xff);
	assert_int_equal(in8(1), 0x0f);
	in8(2);
	out8(4, 0xe0);
	assert_int_equal(in8(4), 0x00);
	out8(5, 0xff); /* LSR, MSR: read-only */
	out8(6, 0xff);
	assert_int_equal(in8(5), 0x60);
	assert_int_equal(in8(6), 0xb0);
	out8(7, 0x5a);
	assert_int_equal(in8(7), 0x5a);
	out8(3, 0x7f);
	assert_int_equal(in8(3), 0x7f);
}

static void test_wide_access_is_bytewise(void **st)
{
	uint8_t d[8];

	(void)st;
	/* 16-bit write at LCR: LCR then MCR. */
	d[0] = 0x03;
	d[1] = 0x08;
	assert_int_equal(bus_access(&bus, COM1 + 3, d, 2, true, NULL), BUS_OK);
	assert_int_equal(in8(3), 0x03);
	assert_int_equal(in8(4), 0x08);
	/* 32-bit write at THR: one byte sent, then IER, FCR, LCR. */
	memcpy(d, "\x41\x00\x01\x03", 4);
	assert_int_equal(bus_access(&bus, COM1, d, 4, true, NULL), BUS_OK);
	assert_int_equal(txr.n, 1);
	assert_int_equal(txr.buf[0], 0x41);
	assert_int_equal(in8(2), 0xc1);
	/* 16-bit read at LSR: LSR then MSR. */
	uart_receive(&uart, (const uint8_t *)"k", 1);
	assert_int_equal(bus_access(&bus, COM1 + 5, d, 2, false, NULL), BUS_OK);
	assert_int_equal(d[0], 0x61);
	assert_int_equal(d[1], 0xb0);
	/* 64-bit read of the whole block: RBR is consumed once. */
	assert_int_equal(bus_access(&bus, COM1, d, 8, false, NULL), BUS_OK);
	assert_int_equal(d[0], 'k');
	assert_int_equal(d[3], 0x03);
	assert_int_equal(d[5], 0x60);
	/* The bus refuses a straddling access; the device is not called. */
	assert_int_equal(bus_access(&bus, COM1 + 6, d, 4, false, NULL), BUS_STRADDLE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_reset_state, setup),
		cmocka_unit_test_setup(test_transmit, setup),
		cmocka_unit_test_setup(test_dlab, setup),
		cmocka_unit_test_setup(test_rx_no_fifo, setup),
		cmocka_unit_test_setup(test_fifo_fill_and_drain, setup),
		cmocka_unit_test_setup(test_fcr_clear_and_disable, setup),
		cmocka_unit_test_setup(test_rx_interrupt_and_out2, setup),
		cmocka_unit_test_setup(test_fifo_trigger_and_timeout, setup),
		cmocka_unit_test_setup(test_thre_interrupt, setup),
		cmocka_unit_test_setup(test_loopback, setup),
		cmocka_unit_test_setup(test_loopback_fifo_overrun, setup),
		cmocka_unit_test_setup(test_interrupt_priority, setup),
		cmocka_unit_test_setup(test_register_masks_and_readonly, setup),
		cmocka_unit_test_setup(test_wide_access_is_bytewise, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
