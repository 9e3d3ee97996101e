/*
 * pic.h - the 8259A pair (master 0x20/0x21, slave 0xa0/0xa1 cascaded on
 * IRQ 2) and the ELCR (0x4d0/0x4d1).
 *
 * Implements ICW1..ICW4 initialisation, OCW1 (mask), OCW2 (non-specific and
 * specific EOI, rotate), OCW3 (read IRR/ISR, poll, special mask), edge and
 * level triggering (ELCR), auto-EOI, priority resolution, and spurious IRQ 7
 * / 15 when the requesting line has gone away by acknowledge time.
 *
 * The CPU side: pic_has_interrupt() is the INTR pin; pic_acknowledge() is the
 * INTA cycle and returns the vector.
 *
 * After pic_init() both chips are set up as a BIOS leaves them (vectors
 * 0x08 and 0x70, cascade on IRQ 2) but with every line masked; ELCR all
 * edge.  Wider port accesses act byte by byte on successive ports.
 */
#ifndef DETVM_PIC_H
#define DETVM_PIC_H

#include <stdbool.h>
#include <stdint.h>

#include "../bus.h"

struct pic_chip_state {
	uint8_t irr, isr, imr;
	uint8_t last_irr;      /* for edge detection */
	uint8_t priority_add;  /* rotation */
	uint8_t irq_base;      /* ICW2 */
	uint8_t read_reg_select; /* 0 = IRR, 1 = ISR */
	uint8_t poll;
	uint8_t special_mask;
	uint8_t init_state;    /* 0 = ready, 1..3 = expecting ICW2..ICW4 */
	uint8_t auto_eoi;
	uint8_t rotate_on_auto_eoi;
	uint8_t special_fully_nested;
	uint8_t init4;         /* ICW4 expected */
	uint8_t single_mode;
	uint8_t elcr;          /* level-triggered lines */
	uint8_t elcr_mask;
};

struct pic_state {
	struct pic_chip_state chip[2]; /* 0 = master, 1 = slave */
};

struct pic {
	struct pic_state state;
};

void pic_init(struct pic *p);
/* Registers the master, slave and ELCR port ranges. */
int pic_register(struct pic *p, struct bus *pio);
extern const struct bus_ops pic_master_ops, pic_slave_ops, pic_elcr_ops;

/* Drive ISA line irq (0..15) to level; out-of-range lines are ignored. */
void pic_set_irq(struct pic *p, unsigned irq, int level);
/* Is INTR asserted? */
bool pic_has_interrupt(const struct pic *p);
/* INTA: the vector to deliver (spurious vector if nothing is pending). */
uint8_t pic_acknowledge(struct pic *p);

#endif
