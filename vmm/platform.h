/*
 * platform.h - the machine: every device, both buses, the virtual timers and
 * the interrupt routing between them (bootinfo.h has the address map).
 *
 * Interrupt routing: an ISA line (GSI < 16) goes to the 8259 pair and to the
 * I/O APIC (IRQ 0 on pin 2, as the MADT override on PCs says; others on
 * their own pin); GSIs 16..23 go to the I/O APIC only.  The I/O APIC
 * delivers to the local APIC.  The CPU takes the local APIC's highest
 * deliverable vector first, otherwise the 8259's INTR if LINT0 passes it.
 */
#ifndef DETVM_PLATFORM_H
#define DETVM_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>

#include "bus.h"
#include "guest_mem.h"
#include "loader.h"
#include "nd.h"
#include "vtimer.h"
#include "devices/blockdev.h"
#include "devices/debug_exit.h"
#include "devices/fw_cfg.h"
#include "devices/ioapic.h"
#include "devices/lapic.h"
#include "devices/pic.h"
#include "devices/pit.h"
#include "devices/rtc.h"
#include "devices/uart.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_rng.h"

struct platform {
	struct bus pio, mmio;
	struct vtimer_set timers;
	struct nd *nd;
	const struct guest_mem *mem;

	struct pic pic;
	struct pit pit;
	struct uart uart;
	struct rtc rtc;
	struct debug_exit dbg;
	struct fw_cfg fw_cfg;
	struct lapic lapic;
	struct ioapic ioapic;
	struct virtio_rng rng;
	struct virtio_blk blk;
	bool has_blk;
};

/* One device's checkpointable state: plain bytes. */
struct platform_state_ref {
	const char *name;
	void *ptr;
	size_t size;
};

/*
 * Build the machine.  bd may be NULL (no disk).  tx receives every byte the
 * guest writes to COM1.  Returns 0 or -1 with a message.
 */
int platform_init(struct platform *p, struct nd *nd, const struct guest_mem *mem,
		  struct blockdev *bd, void (*tx)(void *ctx, uint8_t byte), void *tx_ctx,
		  char *err, size_t errlen);

/* Virtio devices for the boot-info block. */
void platform_boot_params(const struct platform *p, struct boot_params *bp);

/* Is an interrupt waiting for the CPU? */
bool platform_intr_pending(const struct platform *p);
/* The CPU takes it (INTA / IRR->ISR): the vector, or -1 if none after all. */
int platform_intr_ack(struct platform *p);

/* The state of every device, for checkpoints; returns the count (<= max). */
int platform_state_refs(struct platform *p, struct platform_state_ref *refs, int max);

#endif
