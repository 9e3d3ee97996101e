/*
 * pit.h - 8254 programmable interval timer (ports 0x40..0x43, IRQ 0) and the
 * port 0x61 gate/speaker bits that read channel 2's output.
 *
 * Counters run at PIT_HZ (bootinfo.h).  Their value is computed from virtual
 * time (nd_clock_ns) when the guest reads it, so a read is recorded and
 * replayed like any other device-visible time.  Channel 0's output edges are
 * delivered through a vtimer: modes 0 (interrupt on terminal count), 2 (rate
 * generator) and 3 (square wave) raise IRQ 0; modes 1, 4, 5 are modelled for
 * reads.  Supports the access modes (latch, lobyte, hibyte, lobyte/hibyte),
 * the counter-latch command and the read-back command (count and status
 * latch), and binary counting (BCD mode is accepted and counts in binary,
 * documented).
 */
#ifndef DETVM_PIT_H
#define DETVM_PIT_H

#include <stdbool.h>
#include <stdint.h>

#include "../bus.h"
#include "../irq.h"
#include "../nd.h"
#include "../vtimer.h"

struct pit_channel_state {
	uint32_t reload;       /* 1..65536 (0 written means 65536) */
	uint64_t load_time_ns; /* virtual time the count was loaded */
	uint8_t mode, rw_mode, bcd;
	uint8_t gate;
	uint8_t write_lsb_next; /* lobyte/hibyte write toggle */
	uint8_t read_lsb_next;
	uint8_t latched;        /* count latched: 0, or 1/2 bytes remaining */
	uint16_t latch_value;
	uint8_t status_latched;
	uint8_t status;
	uint8_t null_count;
	uint8_t armed;          /* a count has been loaded */
	uint8_t write_latch_lsb;
	uint8_t triggered;      /* modes 1, 5: a gate rising edge has started the count */
	uint64_t ticks_before;  /* ticks counted before load_time_ns (gate pauses) */
};

struct pit_state {
	struct pit_channel_state ch[3];
	uint8_t speaker;       /* port 0x61 bits 0..3 as written */
	uint8_t refresh;       /* port 0x61 bit 4: toggles on each read */
	uint64_t next_irq_ns;  /* channel 0's next output edge; 0 = none */
};

struct pit {
	struct pit_state state;
	struct nd *nd;
	struct irq_line irq;
	struct vtimer timer;
};

void pit_init(struct pit *p, struct nd *nd, struct irq_line irq,
	      struct vtimer_set *timers);
int pit_register(struct pit *p, struct bus *pio); /* 0x40..0x43 and 0x61 */
extern const struct bus_ops pit_ops, pit_portb_ops;

/*
 * After the state has been overwritten (checkpoint restore), re-arm the
 * vtimer from state.next_irq_ns: the vtimer itself is not part of the state.
 */
void pit_state_restored(struct pit *p);

#endif
