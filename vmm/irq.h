/*
 * irq.h - an interrupt line from a device to the platform's interrupt router.
 *
 * A device holds a struct irq_line and drives it with irq_set().  It does not
 * know whether the line reaches the 8259 PIC, the I/O APIC or both: the
 * router behind `set` (vmm/platform.c) decides.  Lines are level signals; an
 * edge-triggered device raises then lowers (irq_pulse).
 */
#ifndef DETVM_IRQ_H
#define DETVM_IRQ_H

struct irq_line {
	void (*set)(void *router, unsigned gsi, int level);
	void *router;
	unsigned gsi; /* 0..15 are the ISA IRQs */
};

static inline void irq_set(const struct irq_line *l, int level)
{
	if (l && l->set)
		l->set(l->router, l->gsi, level);
}

static inline void irq_pulse(const struct irq_line *l)
{
	irq_set(l, 1);
	irq_set(l, 0);
}

#endif
