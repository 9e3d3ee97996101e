/*
 * fw_cfg.h - QEMU's fw_cfg, legacy I/O interface only (selector at 0x510,
 * 16-bit; data at 0x511, 8-bit; no DMA).
 *
 * Items: 0x0000 signature "QEMU", 0x0001 ID (1: traditional interface only),
 * 0x0003 RAM size (8 bytes LE), 0x0005 CPU count (2 bytes), 0x000f max CPUs
 * (2 bytes), 0x0019 file directory (empty: a 4-byte big-endian count of 0).
 * Every item is a constant of the VM configuration, so fw_cfg is not a
 * recorded channel.  Reading past an item's end, or an unknown item,
 * returns 0.
 */
#ifndef DETVM_FW_CFG_H
#define DETVM_FW_CFG_H

#include <stdint.h>

#include "../bus.h"

struct fw_cfg_state {
	uint16_t selector;
	uint32_t offset;
};

struct fw_cfg {
	struct fw_cfg_state state;
	uint64_t ram_size;
	uint16_t nb_cpus;
};

void fw_cfg_init(struct fw_cfg *f, uint64_t ram_size, uint16_t nb_cpus);
int fw_cfg_register(struct fw_cfg *f, struct bus *pio);
extern const struct bus_ops fw_cfg_ops;

#endif
