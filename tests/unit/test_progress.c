/*
 * test_progress.c - unit tests for the progress counter choice
 * (vmm/progress.c): names, the PMU event per CPU vendor, and what
 * progress_detect() says on this host.  The detection needs /dev/kvm and
 * is skipped without it.  The PMU path cannot be exercised on hosts
 * without a PMU (these development hosts): there the test checks that
 * opening the counter fails with a message, and that detection still
 * finds insn_emulation or says why not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "vmm/progress.h"

static void test_names(void **st)
{
	(void)st;
	enum progress_kind k;
	enum progress_kind all[] = { PROGRESS_NONE, PROGRESS_INSN_EMULATION, PROGRESS_PMU_BRANCHES };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		assert_int_equal(progress_parse(progress_name(all[i]), &k), 0);
		assert_int_equal(k, all[i]);
	}
	/* The names are the trace header's (SPEC 4.1, PROGRESS_COUNTER). */
	assert_string_equal(progress_name(PROGRESS_INSN_EMULATION), "insn_emulation");
	assert_string_equal(progress_name(PROGRESS_PMU_BRANCHES), "pmu-branches");
	assert_string_equal(progress_name(PROGRESS_NONE), "none");
	assert_int_equal(progress_parse("pmu_branches", &k), -1);
	assert_int_equal(progress_parse("", &k), -1);
}

static void test_pmu_event(void **st)
{
	(void)st;
	const char *name;
	assert_int_equal(progress_pmu_event("GenuineIntel", &name), 0x5101c4);
	assert_non_null(strstr(name, "BR_INST_RETIRED.CONDITIONAL"));
	assert_int_equal(progress_pmu_event("AuthenticAMD", &name), 0x5100d1);
	assert_int_equal(progress_pmu_event("HygonGenuine", &name), 0x5100d1);
	assert_int_equal(progress_pmu_event("CentaurHauls", &name), 0);
	assert_string_equal(name, "none");
}

static void test_pmu_open(void **st)
{
	(void)st;
	char why[200] = "";
	int fd = progress_pmu_open(why, sizeof(why));
	if (fd >= 0) {
		/* A host with a PMU: the counter reads. */
		uint64_t v;
		assert_int_equal(progress_pmu_read(fd, &v), 0);
		close(fd);
		return;
	}
	/* No PMU: a message that says which call failed. */
	assert_true(strstr(why, "perf_event_open") != NULL || strstr(why, "no known") != NULL);
}

static void test_detect(void **st)
{
	(void)st;
	char why[400];
	if (access("/dev/kvm", R_OK | W_OK) != 0)
		skip();
	enum progress_kind k = progress_detect(why, sizeof(why));
	/* Whatever the host, the reason names what was measured. */
	assert_true(strlen(why) > 0 && strcmp(why, "not measured") != 0);
	if (k == PROGRESS_INSN_EMULATION)
		assert_non_null(strstr(why, "202 of 202 instructions: exact"));
	else if (k == PROGRESS_PMU_BRANCHES)
		assert_non_null(strstr(why, "100 of 100 conditional branches: exact"));
	else
		assert_non_null(strstr(why, "insn_emulation"));
	printf("progress_detect: %s (%s)\n", progress_name(k), why);
}

/* The probe thread gives what detection on the caller's thread gives, with
 * the caller's signal mask untouched and the thread taking none. */
static void test_probe(void **st)
{
	(void)st;
	char why[400], why2[400];
	struct progress_probe p;
	sigset_t before, after;
	if (access("/dev/kvm", R_OK | W_OK) != 0)
		skip();
	enum progress_kind k = progress_detect(why, sizeof(why));
	assert_int_equal(pthread_sigmask(SIG_SETMASK, NULL, &before), 0);
	progress_probe_start(&p);
	assert_true(p.started);
	assert_int_equal(pthread_sigmask(SIG_SETMASK, NULL, &after), 0);
	assert_int_equal(sigismember(&before, SIGINT), sigismember(&after, SIGINT));
	assert_int_equal(sigismember(&before, SIGUSR1), sigismember(&after, SIGUSR1));
	assert_int_equal(progress_probe_wait(&p, why2, sizeof(why2)), k);
	assert_string_equal(why2, why);
	assert_false(p.started);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_pmu_event),
		cmocka_unit_test(test_pmu_open),
		cmocka_unit_test(test_detect),
		cmocka_unit_test(test_probe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
