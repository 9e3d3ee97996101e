/*
 * test_replay_care.c - which forced exits replay approaches with more care
 * after overshoots (replayer/replayer.h, replay_care_*): an overshoot
 * escalates that exit only, FAST -> CAREFUL -> STEP; full lists fall back
 * to care for every forced exit up to the latest one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "replayer/replayer.h"

static void test_escalation(void **st)
{
	(void)st;
	struct replay_care c;
	memset(&c, 0, sizeof(c));
	assert_int_equal(replay_care_of(&c, 10), LANDMARK_FAST);
	replay_care_more(&c, 10);
	assert_int_equal(replay_care_of(&c, 10), LANDMARK_CAREFUL);
	/* Only that exit: the ones before and after stay FAST. */
	assert_int_equal(replay_care_of(&c, 9), LANDMARK_FAST);
	assert_int_equal(replay_care_of(&c, 11), LANDMARK_FAST);
	replay_care_more(&c, 10);
	assert_int_equal(replay_care_of(&c, 10), LANDMARK_STEP);
	replay_care_more(&c, 10); /* stepping cannot overshoot: stays */
	assert_int_equal(replay_care_of(&c, 10), LANDMARK_STEP);
	assert_int_equal(c.ncareful, 1);
	assert_int_equal(c.nstep, 1);
	replay_care_more(&c, 4);
	assert_int_equal(replay_care_of(&c, 4), LANDMARK_CAREFUL);
	assert_int_equal(replay_care_of(&c, 10), LANDMARK_STEP);
}

static void test_full_lists(void **st)
{
	(void)st;
	struct replay_care c;
	memset(&c, 0, sizeof(c));
	for (uint64_t e = 1; e <= REPLAY_CARE_MAX; e++)
		replay_care_more(&c, e * 100);
	assert_int_equal(replay_care_of(&c, 150), LANDMARK_FAST);
	/* One more: every forced exit up to it is CAREFUL from now on. */
	replay_care_more(&c, 5000);
	assert_int_equal(replay_care_of(&c, 150), LANDMARK_CAREFUL);
	assert_int_equal(replay_care_of(&c, 5000), LANDMARK_CAREFUL);
	assert_int_equal(replay_care_of(&c, 5001), LANDMARK_FAST);
	for (uint64_t e = 1; e <= REPLAY_CARE_MAX; e++)
		replay_care_more(&c, e * 100);
	assert_int_equal(replay_care_of(&c, 3200), LANDMARK_STEP);
	assert_int_equal(replay_care_of(&c, 150), LANDMARK_CAREFUL);
	replay_care_more(&c, 4000);
	assert_int_equal(replay_care_of(&c, 150), LANDMARK_STEP);
	assert_int_equal(replay_care_of(&c, 4000), LANDMARK_STEP);
	assert_int_equal(replay_care_of(&c, 4500), LANDMARK_CAREFUL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escalation),
		cmocka_unit_test(test_full_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
