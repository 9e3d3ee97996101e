/*
 * pic.c - the 8259A pair and the ELCR (see pic.h).
 *
 * Each chip keeps IRR (requests), ISR (in service) and IMR (masks).  An
 * input line is remembered in last_irr (its current level): an edge-triggered
 * line sets IRR on a rising edge only; a level-triggered line (ELCR bit set)
 * makes IRR follow the line.  The slave's INT output is the master's IRQ 2
 * input and is recomputed after every change to the slave, so that
 * pic_has_interrupt() is a pure function of the state.
 *
 * Wider port accesses are split into byte accesses to successive ports, low
 * byte first, as the ISA bus does for an 8-bit device.
 *
 * Deliberately not modelled: ICW1's LTIM bit (edge/level comes from the ELCR
 * only, as on PIIX-class chipsets), single mode and ICW3 (the cascade on
 * master IRQ 2 is wired), buffered mode and the MCS-80 call format.
 *
 * After pic_init both chips are programmed as a PC BIOS leaves them (master
 * vectors 0x08.., slave 0x70.., cascade on IRQ 2, 8086 mode) but with every
 * line masked, so a guest that never programs the 8259 gets no interrupts
 * from it.
 */
#include "pic.h"

#include <string.h>

#define MASTER 0
#define SLAVE  1

/* Lines that cannot be level-triggered: IRQ 0, 1, 2 and IRQ 8, 13. */
#define ELCR_MASK_MASTER 0xf8
#define ELCR_MASK_SLAVE  0xde

/*
 * Priority (0 = highest) of the highest-priority bit set in mask, given the
 * rotation; 8 if none.
 */
static int get_priority(const struct pic_chip_state *c, uint8_t mask)
{
	int priority = 0;

	if (!mask)
		return 8;
	while (!(mask & (1 << ((priority + c->priority_add) & 7))))
		priority++;
	return priority;
}

/* The IRQ (0..7) this chip would present to the CPU, or -1. */
static int chip_get_irq(const struct pic_chip_state *c, bool is_master)
{
	int priority, cur;
	uint8_t mask;

	priority = get_priority(c, c->irr & ~c->imr);
	if (priority == 8)
		return -1;
	/*
	 * In-service levels block requests of equal or lower priority.  In
	 * special mask mode a masked in-service level does not; in special
	 * fully nested mode the master lets further slave requests through
	 * while the slave is in service (the slave resolves their priority).
	 */
	mask = c->isr;
	if (c->special_mask)
		mask &= ~c->imr;
	if (is_master && c->special_fully_nested)
		mask &= ~(1 << 2);
	cur = get_priority(c, mask);
	if (priority < cur)
		return (priority + c->priority_add) & 7;
	return -1;
}

static void chip_set_irq(struct pic_chip_state *c, unsigned irq, int level)
{
	uint8_t mask = 1 << irq;

	if (c->elcr & mask) {
		if (level) {
			c->irr |= mask;
			c->last_irr |= mask;
		} else {
			c->irr &= ~mask;
			c->last_irr &= ~mask;
		}
	} else {
		if (level) {
			if (!(c->last_irr & mask))
				c->irr |= mask;
			c->last_irr |= mask;
		} else {
			c->last_irr &= ~mask;
		}
	}
}

/* Propagate the slave's INT output to master IRQ 2. */
static void pic_update(struct pic *p)
{
	struct pic_state *s = &p->state;

	chip_set_irq(&s->chip[MASTER], 2,
		     chip_get_irq(&s->chip[SLAVE], false) >= 0);
}

/* The INTA cycle on one chip: IRR -> ISR (or auto-EOI). */
static void chip_intack(struct pic_chip_state *c, int irq)
{
	if (c->auto_eoi) {
		if (c->rotate_on_auto_eoi)
			c->priority_add = (irq + 1) & 7;
	} else {
		c->isr |= 1 << irq;
	}
	/* A level-triggered request stays in IRR as long as the line is high. */
	if (!(c->elcr & (1 << irq)))
		c->irr &= ~(1 << irq);
}

/* ICW1: start the initialisation sequence. */
static void chip_icw1(struct pic_chip_state *c, uint8_t val)
{
	/*
	 * The edge detectors are reset: edge requests are dropped, but
	 * last_irr keeps the true line levels, so a line already high needs
	 * a new low-to-high transition, as on the real part.  Level requests
	 * follow their lines and survive.
	 */
	c->irr &= c->elcr;
	c->isr = 0;
	c->imr = 0;
	c->priority_add = 0;
	c->irq_base = 0;
	c->read_reg_select = 0;
	c->poll = 0;
	c->special_mask = 0;
	c->auto_eoi = 0;
	c->rotate_on_auto_eoi = 0;
	c->special_fully_nested = 0;
	c->init4 = val & 1;
	c->single_mode = (val >> 1) & 1;
	c->init_state = 1;
}

/* OCW2: EOI and rotation commands. */
static void chip_ocw2(struct pic_chip_state *c, uint8_t val)
{
	int cmd = val >> 5, irq = val & 7, priority;

	switch (cmd) {
	case 0: /* clear rotate in auto-EOI mode */
		c->rotate_on_auto_eoi = 0;
		break;
	case 4: /* set rotate in auto-EOI mode */
		c->rotate_on_auto_eoi = 1;
		break;
	case 1: /* non-specific EOI */
	case 5: /* rotate on non-specific EOI */
		priority = get_priority(c, c->isr);
		if (priority != 8) {
			irq = (priority + c->priority_add) & 7;
			c->isr &= ~(1 << irq);
			if (cmd == 5)
				c->priority_add = (irq + 1) & 7;
		}
		break;
	case 3: /* specific EOI */
		c->isr &= ~(1 << irq);
		break;
	case 7: /* rotate on specific EOI */
		c->isr &= ~(1 << irq);
		c->priority_add = (irq + 1) & 7;
		break;
	case 6: /* set priority: irq becomes the lowest */
		c->priority_add = (irq + 1) & 7;
		break;
	case 2: /* no operation */
		break;
	}
}

static void chip_write(struct pic *p, int which, unsigned port, uint8_t val)
{
	struct pic_chip_state *c = &p->state.chip[which];

	if (port == 0) {
		if (val & 0x10) {
			chip_icw1(c, val);
		} else if (val & 0x08) { /* OCW3 */
			if (val & 0x04)
				c->poll = 1;
			if (val & 0x02)
				c->read_reg_select = val & 1;
			if (val & 0x40)
				c->special_mask = (val >> 5) & 1;
		} else {
			chip_ocw2(c, val);
		}
	} else {
		switch (c->init_state) {
		case 0: /* OCW1 */
			c->imr = val;
			break;
		case 1: /* ICW2 */
			c->irq_base = val & 0xf8;
			if (!c->single_mode)
				c->init_state = 2;
			else
				c->init_state = c->init4 ? 3 : 0;
			break;
		case 2: /* ICW3: the cascade wiring is fixed, value ignored */
			c->init_state = c->init4 ? 3 : 0;
			break;
		default: /* ICW4 */
			c->special_fully_nested = (val >> 4) & 1;
			c->auto_eoi = (val >> 1) & 1;
			c->init_state = 0;
			break;
		}
	}
	pic_update(p);
}

/*
 * Poll command: the next read returns 0x80 | level of the highest request
 * and acknowledges it as INTA would, or 0 when nothing is requested.
 */
static uint8_t chip_poll(struct pic *p, int which)
{
	struct pic_chip_state *c = &p->state.chip[which];
	int irq = chip_get_irq(c, which == MASTER);

	c->poll = 0;
	if (irq < 0)
		return 0;
	chip_intack(c, irq);
	pic_update(p);
	return 0x80 | irq;
}

static uint8_t chip_read(struct pic *p, int which, unsigned port)
{
	struct pic_chip_state *c = &p->state.chip[which];

	/* After a poll command the next read, at either port, is the poll. */
	if (c->poll)
		return chip_poll(p, which);
	if (port == 0)
		return c->read_reg_select ? c->isr : c->irr;
	return c->imr;
}

static void master_read(void *dev, uint64_t offset, uint8_t *data, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		data[i] = chip_read(dev, MASTER, (offset + i) & 1);
}

static void master_write(void *dev, uint64_t offset, const uint8_t *data, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		chip_write(dev, MASTER, (offset + i) & 1, data[i]);
}

static void slave_read(void *dev, uint64_t offset, uint8_t *data, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		data[i] = chip_read(dev, SLAVE, (offset + i) & 1);
}

static void slave_write(void *dev, uint64_t offset, const uint8_t *data, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		chip_write(dev, SLAVE, (offset + i) & 1, data[i]);
}

static void elcr_read(void *dev, uint64_t offset, uint8_t *data, unsigned size)
{
	struct pic *p = dev;

	for (unsigned i = 0; i < size; i++)
		data[i] = p->state.chip[(offset + i) & 1].elcr;
}

static void elcr_write(void *dev, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct pic *p = dev;

	for (unsigned i = 0; i < size; i++) {
		struct pic_chip_state *c = &p->state.chip[(offset + i) & 1];

		c->elcr = data[i] & c->elcr_mask;
		/* A line that is now level-triggered requests iff it is high. */
		c->irr = (c->irr & ~c->elcr) | (c->last_irr & c->elcr);
	}
	pic_update(p);
}

const struct bus_ops pic_master_ops = { .read = master_read, .write = master_write };
const struct bus_ops pic_slave_ops = { .read = slave_read, .write = slave_write };
const struct bus_ops pic_elcr_ops = { .read = elcr_read, .write = elcr_write };

void pic_init(struct pic *p)
{
	struct pic_state *s = &p->state;

	memset(s, 0, sizeof(*s));
	s->chip[MASTER].irq_base = 0x08;
	s->chip[SLAVE].irq_base = 0x70;
	s->chip[MASTER].imr = 0xff;
	s->chip[SLAVE].imr = 0xff;
	s->chip[MASTER].elcr_mask = ELCR_MASK_MASTER;
	s->chip[SLAVE].elcr_mask = ELCR_MASK_SLAVE;
}

int pic_register(struct pic *p, struct bus *pio)
{
	int rc;

	rc = bus_register(pio, 0x20, 2, &pic_master_ops, p, "pic-master");
	if (!rc)
		rc = bus_register(pio, 0xa0, 2, &pic_slave_ops, p, "pic-slave");
	if (!rc)
		rc = bus_register(pio, 0x4d0, 2, &pic_elcr_ops, p, "elcr");
	return rc;
}

void pic_set_irq(struct pic *p, unsigned irq, int level)
{
	if (irq >= 16)
		return;
	chip_set_irq(&p->state.chip[irq >> 3], irq & 7, level != 0);
	pic_update(p);
}

bool pic_has_interrupt(const struct pic *p)
{
	return chip_get_irq(&p->state.chip[MASTER], true) >= 0;
}

uint8_t pic_acknowledge(struct pic *p)
{
	struct pic_state *s = &p->state;
	struct pic_chip_state *m = &s->chip[MASTER], *sl = &s->chip[SLAVE];
	int irq, irq2;
	uint8_t vector;

	irq = chip_get_irq(m, true);
	if (irq < 0) /* the request went away: spurious IRQ 7 */
		return m->irq_base + 7;
	if (irq == 2) {
		irq2 = chip_get_irq(sl, false);
		if (irq2 >= 0) {
			chip_intack(sl, irq2);
			vector = sl->irq_base + irq2;
		} else {
			/* Spurious IRQ 15; the master still takes IRQ 2. */
			vector = sl->irq_base + 7;
		}
	} else {
		vector = m->irq_base + irq;
	}
	chip_intack(m, irq);
	pic_update(p);
	return vector;
}
