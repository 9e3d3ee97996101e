/*
 * lapic.h - local APIC in xAPIC mode (MMIO page at 0xfee00000), one CPU.
 *
 * Registers: ID (0x20), version (0x30, 0x00050014: 6 LVT entries), TPR
 * (0x80), APR (0x90), PPR (0xa0), EOI (0xb0), LDR (0xd0), DFR (0xe0), SVR
 * (0xf0), ISR/TMR/IRR (0x100/0x180/0x200, 8 x 32 bits each at 16-byte
 * stride), ESR (0x280, write-to-latch), ICR (0x300/0x310: fixed or
 * lowest-priority IPIs that reach this CPU - shorthand "self" or "all
 * including self", or no shorthand with a physical destination of the own ID
 * or 0xff, or a logical destination matching LDR under the DFR model - are
 * delivered to it; others, and NMI/SMI/INIT/SIPI, set the send-accept error
 * in ESR), LVT timer (0x320), thermal (0x330), perf
 * (0x340), LINT0 (0x350), LINT1 (0x360), error (0x370), timer initial count
 * (0x380), current count (0x390, computed from nd_clock_ns), divide
 * configuration (0x3e0).  Timer: one-shot and periodic modes
 * (TSC-deadline is not offered in CPUID and is treated as one-shot), clock
 * LAPIC_TIMER_HZ divided by 1..128.  Accesses must be 4-byte aligned 32-bit;
 * others are ignored (reads return 0), as are accesses to bytes 4..15 of a
 * register slot.  Illegal vectors (< 16) set ESR bits (send/receive illegal
 * vector) and raise the error LVT; "illegal register address" is not
 * reported.  While software-disabled (SVR bit 8 clear) every LVT is kept
 * masked and fixed interrupts are not accepted into IRR (as KVM does).
 *
 * Time is sampled (nd_clock_ns) only on a current-count read of a running
 * timer, an initial-count write, a divide change of a running timer and a
 * timer-mode change of a running timer; an expiry already due at the sampled
 * moment is processed first.  A divide change keeps the current count and
 * runs the rest of the period at the new rate.
 *
 * Reset state as QEMU's BSP: LINT0 = ExtINT unmasked (virtual-wire mode,
 * so the 8259's INTR reaches the CPU), other LVTs masked, SVR = 0xff.
 */
#ifndef DETVM_LAPIC_H
#define DETVM_LAPIC_H

#include <stdbool.h>
#include <stdint.h>

#include "../bus.h"
#include "../nd.h"
#include "../vtimer.h"

#define LAPIC_MMIO_SIZE 0x1000

struct lapic_state {
	uint32_t id, tpr, ldr, dfr, svr, esr, esr_pending;
	uint32_t isr[8], tmr[8], irr[8];
	uint32_t icr_lo, icr_hi;
	uint32_t lvt[6]; /* timer, thermal, perf, lint0, lint1, error */
	uint32_t timer_initial, timer_divide;
	uint64_t timer_start_ns; /* virtual time the current period began */
	/*
	 * The timer's pending expiry.  Mirrored into `timer` (the vtimer),
	 * which is not part of the POD state: after a checkpoint restore call
	 * lapic_state_restored() to re-arm the vtimer from these.
	 */
	uint64_t timer_deadline;
	uint32_t timer_armed;
};

struct lapic {
	struct lapic_state state;
	struct nd *nd;
	struct vtimer timer;
	/* Called on EOI of a level-triggered vector (for the I/O APIC). */
	void (*eoi_cb)(void *ctx, uint8_t vector);
	void *eoi_ctx;
};

void lapic_init(struct lapic *l, struct nd *nd, struct vtimer_set *timers,
		void (*eoi_cb)(void *ctx, uint8_t vector), void *eoi_ctx);
int lapic_register(struct lapic *l, struct bus *mmio, uint64_t base);
extern const struct bus_ops lapic_ops;

/* Set IRR bit for vector (from the I/O APIC, a self-IPI or the timer). */
void lapic_deliver(struct lapic *l, uint8_t vector, bool level_triggered);
/* Highest-priority deliverable vector (IRR above PPR), or -1. */
int lapic_pending_vector(const struct lapic *l);
/* The CPU takes `vector`: IRR -> ISR. */
void lapic_accept(struct lapic *l, uint8_t vector);
/* Does the 8259's INTR reach the CPU (LINT0 unmasked ExtINT)? */
bool lapic_accepts_pic(const struct lapic *l);
/* Re-arm (or disarm) the vtimer from l->state, e.g. after restoring it. */
void lapic_state_restored(struct lapic *l);

#endif
