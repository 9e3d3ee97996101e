/*
 * debug_exit.h - QEMU's isa-debug-exit (port 0xf4, 4 ports) and the ACPI
 * PM1a control register used to power off (port 0x604, 2 ports).
 *
 * Neither acts on its own: a write records a request that the run loop picks
 * up after the exit (debug_exit_requested / poweroff_requested) and turns
 * into the end of the run.  debug-exit: any write of size 1, 2 or 4 at offset
 * 0 requests exit with value V (QEMU's status is (V << 1) | 1; so is detvm's).
 * Power-off: a write that sets bit 13 (SLP_EN): a 16-bit write, or a byte
 * write to 0x605 with bit 5 set (the register is handled byte-wise).  Only
 * the first request of either kind is kept.  Reads return 0 for PM1a and
 * all ones for debug-exit.
 */
#ifndef DETVM_DEBUG_EXIT_H
#define DETVM_DEBUG_EXIT_H

#include <stdbool.h>
#include <stdint.h>

#include "../bus.h"

struct debug_exit_state {
	uint8_t exit_requested;
	uint32_t exit_value;
	uint8_t poweroff_requested;
	uint16_t pm1a_cnt;
};

struct debug_exit {
	struct debug_exit_state state;
};

void debug_exit_init(struct debug_exit *d);
int debug_exit_register(struct debug_exit *d, struct bus *pio); /* 0xf4 and 0x604 */
extern const struct bus_ops debug_exit_ops, poweroff_ops;

bool debug_exit_requested(const struct debug_exit *d, uint32_t *value);
bool poweroff_requested(const struct debug_exit *d);

#endif
