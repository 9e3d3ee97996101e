/*
 * debug_exit.c - isa-debug-exit and ACPI PM1a power-off (see debug_exit.h).
 *
 * Both only record a request; the run loop ends the run after the exit that
 * made it.  The first request wins: once a run is ending, a later write
 * (for instance a second one in the same string instruction) cannot change
 * the exit status it reports.
 *
 * debug-exit: a write of any size at offset 0 (1, 2 or 4 bytes: the bus
 * refuses 8 bytes on a 4-port region) takes its little-endian value as V.
 * Writes at offsets 1..3 are ignored, reads return all ones (QEMU's device
 * has no readable register).
 *
 * PM1a control: a 16-bit register, handled byte-wise so that a byte write to
 * 0x605 with bit 5 set (bit 13 of the register) is also a power-off request.
 * SLP_TYP is not checked: without ACPI tables there is only one sleep state
 * a guest can ask for.  Reads return 0, as documented in the header.
 */
#include "debug_exit.h"

#include <string.h>

#define PM1_SLP_EN (1u << 13)

static void dbg_read(void *dev, uint64_t offset, uint8_t *data, unsigned size)
{
	(void)dev;
	(void)offset;
	memset(data, 0xff, size);
}

static void dbg_write(void *dev, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct debug_exit_state *s = &((struct debug_exit *)dev)->state;

	if (offset != 0 || s->exit_requested)
		return;
	s->exit_requested = 1;
	s->exit_value = (uint32_t)bus_le_get(data, size < 4 ? size : 4);
}

static void pm_read(void *dev, uint64_t offset, uint8_t *data, unsigned size)
{
	(void)dev;
	(void)offset;
	memset(data, 0, size);
}

static void pm_write(void *dev, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct debug_exit_state *s = &((struct debug_exit *)dev)->state;

	for (unsigned i = 0; i < size && offset + i < 2; i++) {
		unsigned shift = 8 * (unsigned)(offset + i);

		s->pm1a_cnt = (uint16_t)((s->pm1a_cnt & ~(0xffu << shift)) |
					 ((unsigned)data[i] << shift));
	}
	if (s->pm1a_cnt & PM1_SLP_EN) {
		s->poweroff_requested = 1;
		/* SLP_EN is write-only: it triggers and does not stay set. */
		s->pm1a_cnt &= ~PM1_SLP_EN;
	}
}

const struct bus_ops debug_exit_ops = { .read = dbg_read, .write = dbg_write };
const struct bus_ops poweroff_ops = { .read = pm_read, .write = pm_write };

void debug_exit_init(struct debug_exit *d)
{
	memset(&d->state, 0, sizeof(d->state));
}

int debug_exit_register(struct debug_exit *d, struct bus *pio)
{
	int rc = bus_register(pio, 0xf4, 4, &debug_exit_ops, d, "debug-exit");

	if (!rc)
		rc = bus_register(pio, 0x604, 2, &poweroff_ops, d, "pm1a-cnt");
	return rc;
}

bool debug_exit_requested(const struct debug_exit *d, uint32_t *value)
{
	if (!d->state.exit_requested)
		return false;
	if (value)
		*value = d->state.exit_value;
	return true;
}

bool poweroff_requested(const struct debug_exit *d)
{
	return d->state.poweroff_requested;
}
