/*
 * echo - read bytes from COM1 (receive interrupt, IRQ 4, halting between
 * them) until a newline, an EOF marker byte 0x04, or 256 bytes; print them
 * back as "echo: <text>" (non-printable bytes as \xNN) with their count.
 * The checksum covers the bytes received.  A PIT watchdog (100 Hz) ends the
 * wait after 5 s without input ("echo: input ended by timeout").
 */
#include "guests/rt/rt.h"

const char *rt_guest_name = "echo";

#define COM1 DEV_COM1_PORT
#define MAX 256

static uint8_t buf[MAX];
static volatile unsigned len;
static volatile int done;
static volatile uint64_t idle_ticks, rx_irqs;

static void take(uint8_t c)
{
	if (done)
		return; /* after the end: drained and dropped */
	buf[len++] = c;
	idle_ticks = 0;
	if (c == '\n' || c == 0x04 || len == MAX)
		done = 1;
}

static void uart_irq(struct trapframe *tf)
{
	(void)tf;
	rx_irqs++;
	while (inb(COM1 + 5) & 0x01)
		take(inb(COM1));
	rt_pic_eoi(DEV_COM1_IRQ);
}

static void pit_irq(struct trapframe *tf)
{
	(void)tf;
	idle_ticks++;
	rt_pic_eoi(DEV_PIT_IRQ);
}

void guest_main(struct machine *m)
{
	(void)m;
	rt_printf("echo: waiting for input on COM1 (ends at newline, 0x04 or %d bytes)\n", MAX);
	rt_pic_init();
	rt_lapic_init();
	rt_set_irq_handler(RT_VEC_PIC_BASE + DEV_COM1_IRQ, uart_irq);
	rt_set_irq_handler(RT_VEC_PIC_BASE + DEV_PIT_IRQ, pit_irq);
	rt_pit_periodic(100);
	rt_pic_unmask(DEV_PIT_IRQ);
	rt_pic_unmask(DEV_COM1_IRQ);
	outb(COM1 + 1, 0x01); /* IER: received data available */

	int timeout = 0;
	while (!done) {
		if (idle_ticks >= 500) {
			timeout = 1;
			break;
		}
		sti_hlt();
		cli();
	}
	outb(COM1 + 1, 0x00);
	rt_pic_mask(DEV_COM1_IRQ);
	rt_pic_mask(DEV_PIT_IRQ);
	rt_pit_stop();

	unsigned n = len;
	rt_printf(RT_TD "echo: %lu receive interrupts\n", rx_irqs);
	if (timeout)
		rt_printf("echo: input ended by timeout\n");
	rt_puts("echo: ");
	for (unsigned i = 0; i < n; i++) {
		uint8_t c = buf[i];
		if (i + 1 == n && (c == '\n' || c == 0x04))
			break; /* the terminator */
		if (c >= 0x20 && c < 0x7f && c != '\\')
			rt_putc((char)c);
		else
			rt_printf("\\x%02x", c);
	}
	rt_putc('\n');
	rt_printf("echo: %u bytes received, ended by %s\n", n,
		  timeout ? "timeout" : n == MAX ? "length" :
		  buf[n - 1] == '\n' ? "newline" : "0x04");
	if (rt_unexpected_irqs)
		rt_fail("%lu unexpected interrupts", rt_unexpected_irqs);
	rt_pass(fnv1a64(FNV64_INIT, buf, n));
}
