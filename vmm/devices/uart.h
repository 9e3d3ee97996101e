/*
 * uart.h - 16550A UART (COM1: ports 0x3f8..0x3ff, IRQ 4).
 *
 * Transmit is immediate (THR is always empty again by the next access); each
 * byte written goes to the `tx` callback.  Receive is fed by the run loop
 * with uart_receive() (console input comes through the nondeterminism
 * gateway, never read here).  Implements DLAB/divisor latch, IER, IIR with
 * FIFO bits, FCR (FIFO enable and clear), LCR, MCR (incl. loopback and OUT2),
 * LSR, MSR, SCR; interrupts for received data and THR empty (and receiver
 * line status and modem status), raised on the irq line as a level while
 * pending and enabled - and, as on a PC, only while MCR.OUT2 is set.  In
 * loopback uart_rx_room() is 0, so console input waits instead of being lost.
 * Wider accesses act byte by byte on successive registers.
 */
#ifndef DETVM_UART_H
#define DETVM_UART_H

#include <stddef.h>
#include <stdint.h>

#include "../bus.h"
#include "../irq.h"

#define UART_FIFO_SIZE 16

/* Everything that changes at run time; plain data, saved in checkpoints. */
struct uart_state {
	uint8_t ier, iir, lcr, mcr, lsr, msr, scr, fcr;
	uint8_t dll, dlm;
	uint8_t rx_fifo[UART_FIFO_SIZE];
	uint8_t rx_head, rx_count;
	uint8_t thr_ipending; /* THR-empty interrupt pending until IIR read / THR write */
	uint8_t irq_level;    /* last level driven on the line */
};

struct uart {
	struct uart_state state;
	struct irq_line irq;
	void (*tx)(void *ctx, uint8_t byte);
	void *tx_ctx;
};

void uart_init(struct uart *u, struct irq_line irq,
	       void (*tx)(void *ctx, uint8_t byte), void *tx_ctx);
/* Register at `port` (8 ports).  Returns bus_register()'s result. */
int uart_register(struct uart *u, struct bus *pio, uint16_t port);
extern const struct bus_ops uart_ops;

/* Free space in the receive FIFO. */
size_t uart_rx_room(const struct uart *u);
/* Queue up to uart_rx_room() bytes of input; returns how many were taken. */
size_t uart_receive(struct uart *u, const uint8_t *buf, size_t len);

#endif
