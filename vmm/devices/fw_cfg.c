/*
 * fw_cfg.c - QEMU fw_cfg, legacy port interface (see fw_cfg.h).
 *
 * Port 0x510 is the 16-bit selector, 0x511 the 8-bit data port.  As in
 * QEMU's combined I/O region: a 16-bit write at 0x510 selects an item and
 * rewinds to its first byte; a byte read at either port returns the next
 * data byte (0 past the end, where the offset stops advancing); byte writes
 * are data writes, which the legacy interface ignores (QEMU does since 2.4).
 * The only other access the 2-port region admits, a 16-bit read, is one
 * QEMU refuses: it reads as all ones and has no effect.
 *
 * The selector is compared in full: bit 14 (write channel) and bit 15
 * (architecture-specific items) select nothing here, so such items read as
 * 0.  No DMA interface (ID bit 1 is clear; nothing answers at 0x514).
 */
#include "fw_cfg.h"

#include <string.h>

#define FW_CFG_SIGNATURE 0x0000
#define FW_CFG_ID        0x0001
#define FW_CFG_RAM_SIZE  0x0003
#define FW_CFG_NB_CPUS   0x0005
#define FW_CFG_MAX_CPUS  0x000f
#define FW_CFG_FILE_DIR  0x0019

/* Longest item: the 8-byte RAM size. */
#define FW_CFG_MAX_ITEM 8

/* The selected item's bytes; returns its length (0: unknown item). */
static unsigned item_bytes(const struct fw_cfg *f, uint8_t *buf)
{
	switch (f->state.selector) {
	case FW_CFG_SIGNATURE:
		memcpy(buf, "QEMU", 4);
		return 4;
	case FW_CFG_ID:
		bus_le_put(buf, 4, 1); /* traditional interface only */
		return 4;
	case FW_CFG_RAM_SIZE:
		bus_le_put(buf, 8, f->ram_size);
		return 8;
	case FW_CFG_NB_CPUS:
	case FW_CFG_MAX_CPUS:
		bus_le_put(buf, 2, f->nb_cpus);
		return 2;
	case FW_CFG_FILE_DIR:
		memset(buf, 0, 4); /* big-endian count of files: none */
		return 4;
	}
	return 0;
}

static uint8_t data_read(struct fw_cfg *f)
{
	uint8_t buf[FW_CFG_MAX_ITEM];
	unsigned len = item_bytes(f, buf);

	if (f->state.offset >= len)
		return 0; /* past the end: the offset stops advancing */
	return buf[f->state.offset++];
}

static void fw_cfg_read(void *dev, uint64_t offset, uint8_t *data, unsigned size)
{
	(void)offset;
	if (size != 1) {
		memset(data, 0xff, size);
		return;
	}
	data[0] = data_read(dev);
}

static void fw_cfg_write(void *dev, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct fw_cfg *f = dev;

	if (size == 2 && offset == 0) {
		f->state.selector = (uint16_t)bus_le_get(data, 2);
		f->state.offset = 0;
	}
}

const struct bus_ops fw_cfg_ops = { .read = fw_cfg_read, .write = fw_cfg_write };

void fw_cfg_init(struct fw_cfg *f, uint64_t ram_size, uint16_t nb_cpus)
{
	memset(&f->state, 0, sizeof(f->state));
	f->ram_size = ram_size;
	f->nb_cpus = nb_cpus;
}

int fw_cfg_register(struct fw_cfg *f, struct bus *pio)
{
	return bus_register(pio, 0x510, 2, &fw_cfg_ops, f, "fw_cfg");
}
