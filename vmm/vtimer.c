/* vtimer.c - see vtimer.h. */
#include "vtimer.h"

#include <stddef.h>

void vtimer_init(struct vtimer *t, const char *name,
		 void (*fire)(void *dev, uint64_t now), void *dev)
{
	t->deadline = 0;
	t->armed = false;
	t->fire = fire;
	t->dev = dev;
	t->name = name;
}

int vtimer_set_add(struct vtimer_set *set, struct vtimer *t)
{
	if (set->n >= VTIMER_MAX)
		return -1;
	set->timers[set->n++] = t;
	return 0;
}

void vtimer_arm(struct vtimer *t, uint64_t deadline)
{
	t->deadline = deadline;
	t->armed = true;
}

void vtimer_disarm(struct vtimer *t)
{
	t->armed = false;
}

static struct vtimer *earliest(const struct vtimer_set *set)
{
	struct vtimer *best = NULL;
	for (int i = 0; i < set->n; i++) {
		struct vtimer *t = set->timers[i];
		if (t->armed && (!best || t->deadline < best->deadline))
			best = t;
	}
	return best;
}

bool vtimer_next(const struct vtimer_set *set, uint64_t *deadline)
{
	struct vtimer *t = earliest(set);
	if (!t)
		return false;
	*deadline = t->deadline;
	return true;
}

int vtimer_run_due(struct vtimer_set *set, uint64_t now)
{
	int fired = 0;
	struct vtimer *t;

	/*
	 * Bounded: a callback that keeps re-arming at or before `now` would
	 * otherwise spin forever; 1024 firings in one call is far beyond any
	 * legitimate catch-up.
	 */
	while ((t = earliest(set)) && t->deadline <= now && fired < 1024) {
		t->armed = false;
		t->fire(t->dev, now);
		fired++;
	}
	return fired;
}
