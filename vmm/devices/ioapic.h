/*
 * ioapic.h - 82093AA-style I/O APIC at 0xfec00000, 24 pins, version 0x20.
 *
 * IOREGSEL (0x00), IOWIN (0x10), EOI (0x40).  Registers: ID (0), version
 * (1: 0x00170020), arbitration (2), redirection table (0x10..0x3f).  Fixed
 * and lowest-priority delivery to the single CPU; edge pins deliver on a
 * rising edge, level pins while asserted and not remote-IRR; masking;
 * remote IRR cleared by ioapic_eoi() (the LAPIC's EOI broadcast) or by the
 * EOI register.  Other delivery modes (SMI, NMI, INIT, ExtINT) are logged
 * once and dropped (documented).  An edge arriving on a masked pin is lost;
 * an asserted level pin interrupts when unmasked.  Pin inputs are asserted
 * levels (the polarity bit is stored, not applied, as in QEMU/KVM) and the
 * destination is stored but ignored (one CPU).  IOWIN acts on 32-bit accesses,
 * IOREGSEL and EOI on any size; the MMIO window is 4 KiB.
 */
#ifndef DETVM_IOAPIC_H
#define DETVM_IOAPIC_H

#include <stdbool.h>
#include <stdint.h>

#include "../bus.h"

#define IOAPIC_PINS 24
#define IOAPIC_MMIO_SIZE 0x1000

struct ioapic_state {
	uint32_t id;
	uint8_t ioregsel;
	uint64_t redir[IOAPIC_PINS];
	uint32_t pin_level; /* bitmap of asserted pins */
};

struct ioapic {
	struct ioapic_state state;
	void (*deliver)(void *ctx, uint8_t vector, bool level_triggered);
	void *deliver_ctx;
};

void ioapic_init(struct ioapic *io,
		 void (*deliver)(void *ctx, uint8_t vector, bool level_triggered),
		 void *deliver_ctx);
int ioapic_register(struct ioapic *io, struct bus *mmio, uint64_t base);
extern const struct bus_ops ioapic_ops;

void ioapic_set_irq(struct ioapic *io, unsigned pin, int level);
void ioapic_eoi(struct ioapic *io, uint8_t vector);

#endif
