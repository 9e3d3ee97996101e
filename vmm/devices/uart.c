/*
 * uart.c - 16550A UART model (see uart.h).
 *
 * Timing is not modelled: a byte written to THR leaves at once (through the
 * tx callback), so THR and the transmitter are always empty again by the
 * next access, and the divisor latch is stored and read back but changes
 * nothing.  Receive is flow-controlled from the host side: the run loop only
 * hands us as many bytes as uart_rx_room() reports, so console input is never
 * dropped; the only way to overrun the receiver is loopback mode.
 *
 * Wider accesses are split into byte accesses to successive registers, low
 * byte first, as the ISA bus does for an 8-bit device (and QEMU's model).
 *
 * Deliberately not modelled: the character-timeout delay (with FIFOs on and
 * fewer bytes than the trigger level, IIR reports the timeout source at once,
 * so no data is ever stranded), parity/framing/break errors, the transmit
 * FIFO as a queue, DMA mode signalling, and the modem inputs outside loopback
 * (fixed at CTS, DSR and DCD asserted, RI off, as QEMU reports them).
 */
#include "uart.h"

#include <string.h>

/* Register offsets. */
#define UART_RBR 0 /* read, DLAB = 0 */
#define UART_THR 0 /* write, DLAB = 0 */
#define UART_DLL 0 /* DLAB = 1 */
#define UART_IER 1 /* DLAB = 0 */
#define UART_DLM 1 /* DLAB = 1 */
#define UART_IIR 2 /* read */
#define UART_FCR 2 /* write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_RDI   0x01 /* received data available */
#define IER_THRI  0x02 /* THR empty */
#define IER_RLSI  0x04 /* receiver line status */
#define IER_MSI   0x08 /* modem status */
#define IER_MASK  0x0f /* bits 4..7 read as 0 on a 16550A */

#define IIR_NO_INT   0x01
#define IIR_MSI      0x00
#define IIR_THRI     0x02
#define IIR_RDI      0x04
#define IIR_RLSI     0x06
#define IIR_TIMEOUT  0x0c
#define IIR_FIFO_ON  0xc0

#define FCR_ENABLE    0x01
#define FCR_CLEAR_RX  0x02
#define FCR_CLEAR_TX  0x04
#define FCR_DMA       0x08
#define FCR_TRIGGER   0xc0

#define LCR_DLAB 0x80

#define MCR_DTR  0x01
#define MCR_RTS  0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR   0x01
#define LSR_OE   0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
/* Error bits that raise the line-status interrupt (PE, FE, BI only exist
 * on a real line; OE can happen here through loopback). */
#define LSR_ERRORS 0x1e

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS  0x10
#define MSR_DSR  0x20
#define MSR_RI   0x40
#define MSR_DCD  0x80
#define MSR_DELTAS 0x0f

/* What the modem inputs read outside loopback (QEMU reports the same). */
#define MSR_IDLE_INPUTS (MSR_DCD | MSR_DSR | MSR_CTS)

static unsigned fifo_depth(const struct uart_state *s)
{
	return (s->fcr & FCR_ENABLE) ? UART_FIFO_SIZE : 1;
}

static unsigned trigger_level(const struct uart_state *s)
{
	static const uint8_t level[4] = { 1, 4, 8, 14 };
	return level[s->fcr >> 6];
}

static void rx_clear(struct uart_state *s)
{
	s->rx_head = 0;
	s->rx_count = 0;
}

/*
 * A byte arrives at the receiver.  When the buffer is full it is an overrun:
 * with FIFOs the new byte is lost (the FIFO keeps its contents); without,
 * the new byte overwrites RBR, as the 16450 does.
 */
static void rx_push(struct uart_state *s, uint8_t byte)
{
	if (s->rx_count >= fifo_depth(s)) {
		s->lsr |= LSR_OE;
		if (!(s->fcr & FCR_ENABLE) && s->rx_count)
			s->rx_fifo[s->rx_head] = byte;
		return;
	}
	s->rx_fifo[(s->rx_head + s->rx_count) % UART_FIFO_SIZE] = byte;
	s->rx_count++;
}

static uint8_t rx_pop(struct uart_state *s)
{
	uint8_t byte;

	if (!s->rx_count)
		return 0; /* empty RBR: a real 16550A returns stale data */
	byte = s->rx_fifo[s->rx_head];
	s->rx_head = (s->rx_head + 1) % UART_FIFO_SIZE;
	s->rx_count--;
	return byte;
}

/* The interrupt identification for the current state, by 16550A priority. */
static uint8_t compute_iir(const struct uart_state *s)
{
	uint8_t fifo = (s->fcr & FCR_ENABLE) ? IIR_FIFO_ON : 0;

	if ((s->ier & IER_RLSI) && (s->lsr & LSR_ERRORS))
		return fifo | IIR_RLSI;
	if ((s->ier & IER_RDI) && s->rx_count) {
		if (!(s->fcr & FCR_ENABLE) || s->rx_count >= trigger_level(s))
			return fifo | IIR_RDI;
		return fifo | IIR_TIMEOUT;
	}
	if ((s->ier & IER_THRI) && s->thr_ipending)
		return fifo | IIR_THRI;
	if ((s->ier & IER_MSI) && (s->msr & MSR_DELTAS))
		return fifo | IIR_MSI;
	return fifo | IIR_NO_INT;
}

/*
 * Recompute IIR and drive the line.  On a PC the UART's interrupt output
 * reaches the PIC through a buffer enabled by OUT2, so the line is only
 * asserted while OUT2 is set.  The line is only driven when its level
 * changes, so the router sees no redundant transitions.
 */
static void update_irq(struct uart *u)
{
	struct uart_state *s = &u->state;
	uint8_t level;

	s->iir = compute_iir(s);
	level = !(s->iir & IIR_NO_INT) && (s->mcr & MCR_OUT2);
	if (level != s->irq_level) {
		s->irq_level = level;
		irq_set(&u->irq, level);
	}
}

/* The modem inputs as the MSR sees them: looped back from MCR or idle. */
static uint8_t modem_inputs(uint8_t mcr)
{
	uint8_t in = 0;

	if (!(mcr & MCR_LOOP))
		return MSR_IDLE_INPUTS;
	if (mcr & MCR_RTS)
		in |= MSR_CTS;
	if (mcr & MCR_DTR)
		in |= MSR_DSR;
	if (mcr & MCR_OUT1)
		in |= MSR_RI;
	if (mcr & MCR_OUT2)
		in |= MSR_DCD;
	return in;
}

/* Set the inputs and latch the delta bits for the ones that changed. */
static void set_modem_inputs(struct uart_state *s, uint8_t in)
{
	uint8_t old = s->msr & ~MSR_DELTAS;
	uint8_t changed = old ^ in;
	uint8_t deltas = s->msr & MSR_DELTAS;

	if (changed & MSR_CTS)
		deltas |= MSR_DCTS;
	if (changed & MSR_DSR)
		deltas |= MSR_DDSR;
	if (changed & MSR_DCD)
		deltas |= MSR_DDCD;
	/* TERI flags only the trailing edge of RI. */
	if ((old & MSR_RI) && !(in & MSR_RI))
		deltas |= MSR_TERI;
	s->msr = in | deltas;
}

static void write_fcr(struct uart_state *s, uint8_t val)
{
	/*
	 * On a 16550A the other FCR bits are only programmed together with
	 * bit 0; changing bit 0 resets both FIFOs.
	 */
	if (!(val & FCR_ENABLE)) {
		if (s->fcr & FCR_ENABLE)
			rx_clear(s);
		s->fcr = 0;
		return;
	}
	if (!(s->fcr & FCR_ENABLE) || (val & FCR_CLEAR_RX))
		rx_clear(s);
	/* FCR_CLEAR_TX: the transmit side is always empty already. */
	s->fcr = val & (FCR_ENABLE | FCR_DMA | FCR_TRIGGER);
}

static void transmit(struct uart *u, uint8_t byte)
{
	struct uart_state *s = &u->state;

	if (s->mcr & MCR_LOOP)
		rx_push(s, byte); /* the serial output is looped to the input */
	else if (u->tx)
		u->tx(u->tx_ctx, byte);
	/* Sent at once: THR is empty again, which is an interrupt source. */
	s->thr_ipending = 1;
}

static void write_reg(struct uart *u, unsigned reg, uint8_t val)
{
	struct uart_state *s = &u->state;
	uint8_t old;

	switch (reg) {
	case UART_THR:
		if (s->lcr & LCR_DLAB)
			s->dll = val;
		else
			transmit(u, val);
		break;
	case UART_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = val;
			break;
		}
		old = s->ier;
		s->ier = val & IER_MASK;
		/*
		 * Enabling the THR-empty interrupt while THR is empty raises
		 * it at once (Linux's 8250 driver relies on this).
		 */
		if (!(old & IER_THRI) && (s->ier & IER_THRI))
			s->thr_ipending = 1;
		break;
	case UART_FCR:
		write_fcr(s, val);
		break;
	case UART_LCR:
		s->lcr = val;
		break;
	case UART_MCR:
		s->mcr = val & MCR_MASK;
		set_modem_inputs(s, modem_inputs(s->mcr));
		break;
	case UART_LSR:
	case UART_MSR:
		break; /* read-only on a 16550A */
	case UART_SCR:
		s->scr = val;
		break;
	}
	update_irq(u);
}

static uint8_t read_reg(struct uart *u, unsigned reg)
{
	struct uart_state *s = &u->state;
	uint8_t val = 0;

	switch (reg) {
	case UART_RBR:
		val = (s->lcr & LCR_DLAB) ? s->dll : rx_pop(s);
		break;
	case UART_IER:
		val = (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
		break;
	case UART_IIR:
		val = compute_iir(s);
		/* Reading IIR acknowledges a THR-empty interrupt it reports. */
		if ((val & 0x0f) == IIR_THRI)
			s->thr_ipending = 0;
		break;
	case UART_LCR:
		val = s->lcr;
		break;
	case UART_MCR:
		val = s->mcr;
		break;
	case UART_LSR:
		val = (s->lsr & LSR_ERRORS) | LSR_THRE | LSR_TEMT |
		      (s->rx_count ? LSR_DR : 0);
		s->lsr &= ~LSR_ERRORS; /* error bits clear on read */
		break;
	case UART_MSR:
		val = s->msr;
		s->msr &= ~MSR_DELTAS;
		break;
	case UART_SCR:
		val = s->scr;
		break;
	}
	update_irq(u);
	return val;
}

static void uart_read(void *dev, uint64_t offset, uint8_t *data, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		data[i] = read_reg(dev, (unsigned)((offset + i) & 7));
}

static void uart_write(void *dev, uint64_t offset, const uint8_t *data, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		write_reg(dev, (unsigned)((offset + i) & 7), data[i]);
}

const struct bus_ops uart_ops = {
	.read = uart_read,
	.write = uart_write,
};

void uart_init(struct uart *u, struct irq_line irq,
	       void (*tx)(void *ctx, uint8_t byte), void *tx_ctx)
{
	struct uart_state *s = &u->state;

	memset(s, 0, sizeof(*s));
	s->iir = IIR_NO_INT;
	s->lsr = 0; /* THRE/TEMT/DR are computed on read */
	s->msr = MSR_IDLE_INPUTS;
	s->dll = 0x01; /* 115200 baud, as firmware usually leaves it */
	u->irq = irq;
	u->tx = tx;
	u->tx_ctx = tx_ctx;
}

int uart_register(struct uart *u, struct bus *pio, uint16_t port)
{
	return bus_register(pio, port, 8, &uart_ops, u, "uart");
}

size_t uart_rx_room(const struct uart *u)
{
	const struct uart_state *s = &u->state;

	/*
	 * In loopback the receiver is disconnected from the line; report no
	 * room so the run loop keeps the input until loopback ends instead
	 * of losing it.
	 */
	if (s->mcr & MCR_LOOP)
		return 0;
	return s->rx_count < fifo_depth(s) ? fifo_depth(s) - s->rx_count : 0;
}

size_t uart_receive(struct uart *u, const uint8_t *buf, size_t len)
{
	size_t room = uart_rx_room(u);
	size_t n = len < room ? len : room;

	for (size_t i = 0; i < n; i++)
		rx_push(&u->state, buf[i]);
	if (n)
		update_irq(u);
	return n;
}
