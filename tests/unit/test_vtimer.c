/*
 * test_vtimer.c - unit tests for virtual-time deadlines (vmm/vtimer.c):
 * ordering, ties, re-arming from a callback and the bound on catch-up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/vtimer.h"

/* Every firing, in order: which timer and the `now` it was given. */
static char fired[64];
static uint64_t fired_now[64];
static int nfired;

struct dev {
	char id;
	struct vtimer *t;
	struct vtimer *other; /* armed by the callback, if set */
	uint64_t period;      /* re-arm at deadline + period, if set */
	bool saw_armed;
	int rearm_at_zero;    /* keep re-arming at 0 (a misbehaving device) */
};

static void fire(void *p, uint64_t now)
{
	struct dev *d = p;

	d->saw_armed = d->t->armed;
	if (nfired < 64) {
		fired[nfired] = d->id;
		fired_now[nfired] = now;
	}
	nfired++;
	if (d->other)
		vtimer_arm(d->other, now);
	if (d->period)
		vtimer_arm(d->t, d->t->deadline + d->period);
	if (d->rearm_at_zero)
		vtimer_arm(d->t, 0);
}

static struct vtimer_set set;
static struct vtimer ta, tb, tc;
static struct dev da, db, dc;

static int setup(void **st)
{
	(void)st;
	memset(&set, 0, sizeof(set));
	memset(fired, 0, sizeof(fired));
	nfired = 0;
	da = (struct dev){ .id = 'a', .t = &ta };
	db = (struct dev){ .id = 'b', .t = &tb };
	dc = (struct dev){ .id = 'c', .t = &tc };
	vtimer_init(&ta, "a", fire, &da);
	vtimer_init(&tb, "b", fire, &db);
	vtimer_init(&tc, "c", fire, &dc);
	assert_int_equal(vtimer_set_add(&set, &ta), 0);
	assert_int_equal(vtimer_set_add(&set, &tb), 0);
	assert_int_equal(vtimer_set_add(&set, &tc), 0);
	return 0;
}

static void test_init_and_next(void **st)
{
	uint64_t d = 77;

	(void)st;
	assert_false(ta.armed);
	assert_string_equal(ta.name, "a");
	assert_false(vtimer_next(&set, &d));
	assert_int_equal(d, 77);
	assert_int_equal(vtimer_run_due(&set, UINT64_MAX), 0);
	vtimer_arm(&tb, 500);
	vtimer_arm(&tc, 300);
	assert_true(vtimer_next(&set, &d));
	assert_int_equal(d, 300);
	vtimer_disarm(&tc);
	assert_true(vtimer_next(&set, &d));
	assert_int_equal(d, 500);
	/* Re-arming replaces the deadline, later or earlier. */
	vtimer_arm(&tb, 900);
	assert_true(vtimer_next(&set, &d));
	assert_int_equal(d, 900);
	vtimer_arm(&tb, 5);
	assert_true(vtimer_next(&set, &d));
	assert_int_equal(d, 5);
}

static void test_only_due_in_order(void **st)
{
	(void)st;
	vtimer_arm(&ta, 30);
	vtimer_arm(&tb, 10);
	vtimer_arm(&tc, 20);
	assert_int_equal(vtimer_run_due(&set, 9), 0);
	assert_int_equal(vtimer_run_due(&set, 25), 2);
	assert_memory_equal(fired, "bc", 2);
	assert_int_equal(fired_now[0], 25); /* the callback gets `now` */
	assert_false(tb.armed);
	assert_false(db.saw_armed); /* disarmed before its callback runs */
	assert_true(ta.armed);
	assert_int_equal(vtimer_run_due(&set, 30), 1);
	assert_int_equal(fired[2], 'a');
	assert_int_equal(vtimer_run_due(&set, 1000), 0);
}

static void test_ties_in_registration_order(void **st)
{
	(void)st;
	vtimer_arm(&tc, 50);
	vtimer_arm(&ta, 50);
	vtimer_arm(&tb, 50);
	assert_int_equal(vtimer_run_due(&set, 50), 3);
	assert_memory_equal(fired, "abc", 3);
}

static void test_periodic_rearm(void **st)
{
	uint64_t d;

	(void)st;
	da.period = 100;
	vtimer_arm(&ta, 100);
	/* Re-arming at deadline + period: catches up while still due. */
	assert_int_equal(vtimer_run_due(&set, 350), 3);
	assert_true(vtimer_next(&set, &d));
	assert_int_equal(d, 400);
	assert_int_equal(vtimer_run_due(&set, 399), 0);
	assert_int_equal(vtimer_run_due(&set, 400), 1);
}

static void test_callback_arms_another(void **st)
{
	(void)st;
	da.other = &tc; /* a arms c at `now`: due in the same pass */
	vtimer_arm(&ta, 10);
	vtimer_arm(&tb, 40);
	assert_int_equal(vtimer_run_due(&set, 20), 2);
	assert_memory_equal(fired, "ac", 2);
	assert_true(tb.armed);
}

static void test_runaway_bounded(void **st)
{
	(void)st;
	da.rearm_at_zero = 1;
	vtimer_arm(&ta, 0);
	assert_int_equal(vtimer_run_due(&set, 0), 1024);
	assert_true(ta.armed); /* still due: the next call continues */
	da.rearm_at_zero = 0;
	assert_int_equal(vtimer_run_due(&set, 0), 1);
	assert_false(ta.armed);
}

static void test_set_full(void **st)
{
	struct vtimer_set s;
	struct vtimer t[VTIMER_MAX + 1];

	(void)st;
	memset(&s, 0, sizeof(s));
	for (int i = 0; i < VTIMER_MAX; i++) {
		vtimer_init(&t[i], "t", fire, &da);
		assert_int_equal(vtimer_set_add(&s, &t[i]), 0);
	}
	vtimer_init(&t[VTIMER_MAX], "t", fire, &da);
	assert_int_equal(vtimer_set_add(&s, &t[VTIMER_MAX]), -1);
	assert_int_equal(s.n, VTIMER_MAX);
}

static void test_max_deadline(void **st)
{
	(void)st;
	vtimer_arm(&ta, UINT64_MAX);
	assert_int_equal(vtimer_run_due(&set, UINT64_MAX - 1), 0);
	assert_int_equal(vtimer_run_due(&set, UINT64_MAX), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_init_and_next, setup),
		cmocka_unit_test_setup(test_only_due_in_order, setup),
		cmocka_unit_test_setup(test_ties_in_registration_order, setup),
		cmocka_unit_test_setup(test_periodic_rearm, setup),
		cmocka_unit_test_setup(test_callback_arms_another, setup),
		cmocka_unit_test_setup(test_runaway_bounded, setup),
		cmocka_unit_test_setup(test_set_full, setup),
		cmocka_unit_test_setup(test_max_deadline, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
