/*
 * test_progress.c - unit tests for the progress counter choice
 * (vmm/progress.c): names, the PMU event per CPU vendor, and what
 * progress_detect() and progress_calibrate() say on this host.  The detection needs /dev/kvm and
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
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "vmm/kvm.h"
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
		assert_non_null(strstr(why, "42 of 42 instructions: exact"));
	else if (k == PROGRESS_PMU_BRANCHES)
		assert_non_null(strstr(why, "20 of 20 conditional branches: exact"));
	else
		assert_non_null(strstr(why, "insn_emulation"));
	printf("progress_detect: %s (%s)\n", progress_name(k), why);
}

/*
 * On a VM's own fresh vCPU (what vm_create does for the recorder): the
 * same answer as the scratch VM, guest RAM as it was, the OUT completed
 * (RIP past it), and the vCPU usable afterwards.
 */
static void test_calibrate(void **st)
{
	(void)st;
	char why[400], why2[400], err[256];
	struct kvm k;
	if (access("/dev/kvm", R_OK | W_OK) != 0)
		skip();
	enum progress_kind want = progress_detect(why, sizeof(why)), got;
	size_t size = 0x10000;
	uint8_t *ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(ram != MAP_FAILED);
	for (size_t i = 0; i < size; i++)
		ram[i] = (uint8_t)(i * 7 + 3);
	uint8_t *copy = malloc(size);
	assert_non_null(copy);
	memcpy(copy, ram, size);
	assert_int_equal(kvm_open(&k, err, sizeof(err)), 0);
	assert_int_equal(kvm_set_memory(&k, 0, 0, size, ram, false, err, sizeof(err)), 0);
	assert_int_equal(kvm_create_vcpu(&k, err, sizeof(err)), 0);
	assert_int_equal(progress_calibrate(&k, ram, size, &got, why2, sizeof(why2)), 0);
	assert_int_equal(got, want);
	assert_string_equal(why2, why);
	assert_memory_equal(ram, copy, size);
	struct kvm_regs regs;
	assert_int_equal(ioctl(k.vcpu_fd, KVM_GET_REGS, &regs), 0);
	assert_int_equal(regs.rip, 0x1008); /* past mov, loop, out: at the hlt */
	/* Usable: a 1-instruction real-mode OUT runs to its exit. */
	static const uint8_t out[] = { 0xe6, 0x81 };
	memcpy(ram + 0x2000, out, sizeof(out));
	regs.rip = 0x2000;
	assert_int_equal(ioctl(k.vcpu_fd, KVM_SET_REGS, &regs), 0);
	assert_int_equal(ioctl(k.vcpu_fd, KVM_RUN, 0), 0);
	assert_int_equal(k.run->exit_reason, KVM_EXIT_IO);
	assert_int_equal(k.run->io.port, 0x81);
	/* Too little RAM for the loop: refused, nothing touched. */
	assert_int_equal(progress_calibrate(&k, ram, 0x1004, &got, why2, sizeof(why2)), -1);
	assert_int_equal(got, PROGRESS_NONE);
	assert_non_null(strstr(why2, "too small"));
	kvm_close(&k);
	munmap(ram, size);
	free(copy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_pmu_event),
		cmocka_unit_test(test_pmu_open),
		cmocka_unit_test(test_detect),
		cmocka_unit_test(test_calibrate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
