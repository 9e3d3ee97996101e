/*
 * nd.h - the nondeterminism gateway.
 *
 * Every input that reaches the guest and is not a function of the guest's own
 * state and the recorded configuration passes through a struct nd:
 *
 *   - device-visible time      nd_clock_ns()       (PIT/APIC counts, RTC, TSC MSR)
 *   - entropy                  nd_entropy()        (virtio-rng)
 *   - console input            nd_poll_console()   (run loop -> UART)
 *   - timer expiry             nd_poll_timers()    (run loop -> vtimers)
 *   - idle wake-ups            nd_idle_wait()      (HLT)
 *
 * Three backends implement it: live (detvm run: host clock, getrandom, the
 * serial-in fd), record (the live values, also appended to the trace) and
 * replay (the values read back from the trace).  Device models see only the
 * first two calls and never know which backend is behind them; the run loop
 * makes the rest.  Nothing else in detvm may read host time or host entropy
 * on the guest's behalf.
 *
 * Time is virtual nanoseconds since the guest started; it never goes back.
 * The wall-clock moment of boot (boot_epoch_ns, Unix ns) is fixed for the
 * whole run and recorded in the trace header: the RTC adds the two.
 */
#ifndef DETVM_ND_H
#define DETVM_ND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nd;

struct nd_ops {
	/* Synchronous: called by devices while an exit is being handled. */
	uint64_t (*clock_ns)(struct nd *nd);
	void (*entropy)(struct nd *nd, void *buf, size_t len);

	/*
	 * Asynchronous: called by the run loop after each exit has been
	 * handled, in this order.  Each may be NULL in a test fake.
	 *
	 * poll_console: up to `room` bytes of console input that arrived, 0
	 * if none.  `hint` is true when polling is cheap enough to do now (the
	 * live backend rate-limits itself otherwise).
	 */
	size_t (*poll_console)(struct nd *nd, uint8_t *buf, size_t room, bool hint);
	/* Has virtual time reached `deadline`?  If so, *now is that time. */
	bool (*poll_timers)(struct nd *nd, uint64_t deadline, uint64_t *now);
	/*
	 * The guest halted with interrupts enabled: block until `deadline`
	 * (if has_deadline) or until console input may be available, or until
	 * a stop is requested.  Replay returns at once.
	 */
	void (*idle_wait)(struct nd *nd, bool has_deadline, uint64_t deadline);
};

struct nd {
	const struct nd_ops *ops;
	uint64_t boot_epoch_ns; /* wall-clock time at boot, Unix ns */
	void *backend;
};

static inline uint64_t nd_clock_ns(struct nd *nd)
{
	return nd->ops->clock_ns(nd);
}

static inline void nd_entropy(struct nd *nd, void *buf, size_t len)
{
	nd->ops->entropy(nd, buf, len);
}

#endif
