/*
 * ioapic.c - I/O APIC, 24 pins, one destination CPU.  See ioapic.h.
 *
 * Pin inputs are logical "asserted" levels as driven by the interrupt router
 * (as in QEMU and KVM, the polarity bit is stored but not applied: the router
 * already presents an asserted line as 1).  The destination fields are
 * stored but not used: there is one CPU, and every accepted interrupt goes to
 * it through the deliver callback.
 */
#include "ioapic.h"

#include <stdio.h>
#include <string.h>

#define IOREGSEL		0x00
#define IOWIN			0x10
#define IOEOI			0x40

#define REG_ID			0x00
#define REG_VERSION		0x01
#define REG_ARB			0x02
#define REG_REDIR		0x10

#define IOAPIC_VERSION		0x00170020u	/* 24 entries, version 0x20 */

#define RTE_VECTOR		0xffull
#define RTE_DM_SHIFT		8
#define RTE_DELIVERY_STATUS	(1ull << 12)
#define RTE_REMOTE_IRR		(1ull << 14)
#define RTE_LEVEL		(1ull << 15)
#define RTE_MASKED		(1ull << 16)
/* vector, delivery mode, destination mode, polarity, trigger, mask; dest */
#define RTE_WRITABLE		(0xff000000000000ffull | 0x1af00ull)

#define DM_FIXED		0
#define DM_LOWEST		1

static void service(struct ioapic *io, unsigned pin)
{
	struct ioapic_state *s = &io->state;
	uint64_t e = s->redir[pin];
	unsigned dm = (e >> RTE_DM_SHIFT) & 7;
	bool level = e & RTE_LEVEL;

	if (e & RTE_MASKED)
		return;
	if (level && (e & RTE_REMOTE_IRR))
		return;
	if (dm != DM_FIXED && dm != DM_LOWEST) {
		static bool warned;

		if (!warned) {
			warned = true;
			fprintf(stderr, "ioapic: pin %u: delivery mode %u not "
				"supported, interrupt dropped\n", pin, dm);
		}
		return;
	}
	/*
	 * Remote IRR is set before the delivery so that a level pin is not
	 * delivered again until the CPU's EOI for it.
	 */
	if (level)
		s->redir[pin] |= RTE_REMOTE_IRR;
	if (io->deliver)
		io->deliver(io->deliver_ctx, (uint8_t)(e & RTE_VECTOR), level);
}

void ioapic_set_irq(struct ioapic *io, unsigned pin, int level)
{
	struct ioapic_state *s = &io->state;
	uint32_t bit;
	bool was;

	if (pin >= IOAPIC_PINS)
		return;
	bit = 1u << pin;
	was = s->pin_level & bit;
	if (level)
		s->pin_level |= bit;
	else
		s->pin_level &= ~bit;

	if (!level)
		return;
	if (s->redir[pin] & RTE_LEVEL)
		service(io, pin);
	else if (!was)
		service(io, pin);	/* rising edge; lost if masked */
}

void ioapic_eoi(struct ioapic *io, uint8_t vector)
{
	struct ioapic_state *s = &io->state;

	for (unsigned pin = 0; pin < IOAPIC_PINS; pin++) {
		uint64_t e = s->redir[pin];

		if ((e & RTE_VECTOR) != vector || !(e & RTE_REMOTE_IRR))
			continue;
		s->redir[pin] &= ~RTE_REMOTE_IRR;
		/* A level source still asserted interrupts again. */
		if ((e & RTE_LEVEL) && (s->pin_level & (1u << pin)))
			service(io, pin);
	}
}

static uint32_t reg_read(struct ioapic *io)
{
	struct ioapic_state *s = &io->state;
	unsigned r = s->ioregsel;

	switch (r) {
	case REG_ID:
		return s->id;
	case REG_VERSION:
		return IOAPIC_VERSION;
	case REG_ARB:
		return s->id;
	}
	if (r >= REG_REDIR && r < REG_REDIR + 2 * IOAPIC_PINS) {
		uint64_t e = s->redir[(r - REG_REDIR) / 2];

		return (r & 1) ? (uint32_t)(e >> 32) : (uint32_t)e;
	}
	return 0;
}

static void reg_write(struct ioapic *io, uint32_t v)
{
	struct ioapic_state *s = &io->state;
	unsigned r = s->ioregsel, pin;
	uint64_t e, ro;

	if (r == REG_ID) {
		s->id = v & 0x0f000000;
		return;
	}
	if (r < REG_REDIR || r >= REG_REDIR + 2 * IOAPIC_PINS)
		return;	/* version, arbitration, reserved: read-only */

	pin = (r - REG_REDIR) / 2;
	e = s->redir[pin];
	ro = e & (RTE_REMOTE_IRR | RTE_DELIVERY_STATUS);
	if (r & 1)
		e = ((uint64_t)v << 32) | (uint32_t)e;
	else
		e = (e & 0xffffffff00000000ull) | v;
	e = (e & RTE_WRITABLE) | ro;
	/* Remote IRR only has meaning for level-triggered pins. */
	if (!(e & RTE_LEVEL))
		e &= ~RTE_REMOTE_IRR;
	s->redir[pin] = e;

	/*
	 * An asserted level pin that has just been unmasked (or switched to
	 * level) interrupts now.  Edges that arrived while masked are lost.
	 */
	if ((e & RTE_LEVEL) && (s->pin_level & (1u << pin)))
		service(io, pin);
}

static void ioapic_mmio_read(void *dev, uint64_t offset, uint8_t *data, unsigned size)
{
	struct ioapic *io = dev;
	uint32_t v = 0;

	if (offset == IOREGSEL)
		v = io->state.ioregsel;
	else if (offset == IOWIN && size == 4)
		v = reg_read(io);
	memset(data, 0, size);
	bus_le_put(data, size < 4 ? size : 4, v);
}

static void ioapic_mmio_write(void *dev, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct ioapic *io = dev;

	if (offset == IOREGSEL)
		io->state.ioregsel = data[0];
	else if (offset == IOWIN && size == 4)
		reg_write(io, (uint32_t)bus_le_get(data, 4));
	else if (offset == IOEOI)
		ioapic_eoi(io, data[0]);
}

const struct bus_ops ioapic_ops = {
	.read = ioapic_mmio_read,
	.write = ioapic_mmio_write,
};

void ioapic_init(struct ioapic *io,
		 void (*deliver)(void *ctx, uint8_t vector, bool level_triggered),
		 void *deliver_ctx)
{
	memset(io, 0, sizeof(*io));
	io->deliver = deliver;
	io->deliver_ctx = deliver_ctx;
	for (unsigned i = 0; i < IOAPIC_PINS; i++)
		io->state.redir[i] = RTE_MASKED;
}

int ioapic_register(struct ioapic *io, struct bus *mmio, uint64_t base)
{
	return bus_register(mmio, base, IOAPIC_MMIO_SIZE, &ioapic_ops, io, "ioapic");
}
