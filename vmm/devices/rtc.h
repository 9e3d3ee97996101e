/*
 * rtc.h - MC146818 CMOS real-time clock (ports 0x70 index, 0x71 data, IRQ 8).
 *
 * The time is nd->boot_epoch_ns + nd_clock_ns(), i.e. host date and time at
 * boot advanced by virtual time, so it is recorded and replayed.  Registers
 * 0..9 (seconds..year), 0x32 (century); A (UIP: set during the last 244 us
 * before each second's update, a function of virtual time), B (24/12 h,
 * binary/BCD, SET, interrupt enables), C (flags, cleared on read), D (VRT).
 * Writes to the time registers set an offset kept in the state.  The other
 * CMOS bytes are 128 bytes of RAM; the memory-size bytes 0x34/0x35 and
 * 0x5b..0x5d are filled as QEMU does.  Port 0x70 bit 7 (NMI mask) is kept but
 * has no effect.  Update-ended and alarm interrupts are not generated
 * (documented); periodic interrupts are not generated either, and register
 * C always reads 0.  While B.SET is 1 the clock registers are frozen RAM;
 * clearing SET makes them the time.  Dates are clamped to 1900..2199; the
 * day of week is computed from the date (writes to it are ignored).
 */
#ifndef DETVM_RTC_H
#define DETVM_RTC_H

#include <stdint.h>

#include "../bus.h"
#include "../irq.h"
#include "../nd.h"

struct rtc_state {
	uint8_t index;
	uint8_t nmi_disabled;
	uint8_t cmos[128];
	int64_t offset_ns; /* guest-set time minus host time */
};

struct rtc {
	struct rtc_state state;
	struct nd *nd;
	struct irq_line irq;
};

void rtc_init(struct rtc *r, struct nd *nd, struct irq_line irq, uint64_t mem_size);
int rtc_register(struct rtc *r, struct bus *pio);
extern const struct bus_ops rtc_ops;

#endif
