/*
 * vtimer.h - deadlines in virtual time, for device models.
 *
 * A device that must act at a future moment (PIT, LAPIC timer, RTC) arms a
 * struct vtimer with a deadline in virtual nanoseconds (the scale of
 * nd_clock_ns()).  It never looks at host time itself: the run loop asks
 * vtimer_next() for the earliest deadline, and when the nondeterminism
 * gateway says that moment has come (nd_poll_timers in nd.h) it calls
 * vtimer_run_due().  During replay the gateway says so at exactly the exit
 * where it happened during recording, so device state evolves identically.
 *
 * Timers fire in deadline order; ties in registration order.  A fire callback
 * may re-arm its own timer (periodic modes); vtimer_run_due() keeps firing
 * until no armed deadline is <= now, so a periodic device whose callback
 * re-arms at or before `now` must skip ahead itself (the models here drop
 * missed periods rather than replay a burst).
 */
#ifndef DETVM_VTIMER_H
#define DETVM_VTIMER_H

#include <stdbool.h>
#include <stdint.h>

#define VTIMER_MAX 16

struct vtimer {
	uint64_t deadline;
	bool armed;
	void (*fire)(void *dev, uint64_t now);
	void *dev;
	const char *name;
};

struct vtimer_set {
	struct vtimer *timers[VTIMER_MAX];
	int n;
};

void vtimer_init(struct vtimer *t, const char *name,
		 void (*fire)(void *dev, uint64_t now), void *dev);
/* Returns 0, or -1 when the set is full (a programming error). */
int vtimer_set_add(struct vtimer_set *set, struct vtimer *t);
void vtimer_arm(struct vtimer *t, uint64_t deadline);
void vtimer_disarm(struct vtimer *t);
/* Earliest armed deadline; false when nothing is armed. */
bool vtimer_next(const struct vtimer_set *set, uint64_t *deadline);
/* Fire every timer due at `now`; returns how many callbacks ran. */
int vtimer_run_due(struct vtimer_set *set, uint64_t now);

#endif
