/* test_cpuid_msr.c - the CPUID table filter, the MSR policy and filter
 * bitmaps, and --mem size parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "vmm/cpuid.h"
#include "vmm/msr.h"
#include "vmm/vm.h"
#include "trace-format/trace.h"

static void cpuid_hides_host_state(void **state)
{
	(void)state;
	struct kvm_cpuid_entry2 e[6];
	memset(e, 0xff, sizeof(e));
	e[0].function = 1; e[0].index = 0;
	e[1].function = 7; e[1].index = 0;
	e[2].function = 0x40000000; e[2].index = 0;
	e[3].function = 0x80000001; e[3].index = 0;
	e[4].function = 0xa; e[4].index = 0;
	e[5].function = 0x40000001; e[5].index = 0;
	int n = cpuid_filter(e, 6);
	assert_int_equal(n, 4); /* both hypervisor leaves removed */
	assert_int_equal(e[0].function, 1);
	assert_false(e[0].ecx & (1u << 24)); /* TSC-deadline */
	assert_false(e[0].ecx & (1u << 30)); /* RDRAND */
	assert_false(e[0].ecx & (1u << 31)); /* hypervisor */
	assert_false(e[0].ecx & (1u << 21)); /* x2APIC */
	assert_true(e[0].ecx & (1u << 0));   /* SSE3 untouched */
	assert_int_equal(e[0].ebx >> 24, 0);             /* APIC ID 0 */
	assert_int_equal((e[0].ebx >> 16) & 0xff, 1);    /* one logical CPU */
	assert_int_equal(e[1].function, 7);
	assert_false(e[1].ebx & (1u << 18)); /* RDSEED */
	assert_false(e[1].ecx & (1u << 22)); /* RDPID */
	assert_int_equal(e[2].function, 0x80000001);
	assert_false(e[2].edx & (1u << 27)); /* RDTSCP */
	assert_int_equal(e[3].function, 0xa);
	assert_int_equal(e[3].eax | e[3].ebx | e[3].ecx | e[3].edx, 0); /* no PMU */
}

static void msr_policy_table(void **state)
{
	(void)state;
	assert_int_equal(msr_policy(0x10, MSR_POLICY_CURRENT), MSR_CLOCK);
	assert_int_equal(msr_policy(0x3b, MSR_POLICY_CURRENT), MSR_ZERO);
	assert_int_equal(msr_policy(0x4b564d01, MSR_POLICY_CURRENT), MSR_GP);
	assert_int_equal(msr_policy(0x11, MSR_POLICY_CURRENT), MSR_GP);           /* kvmclock wall clock */
	assert_int_equal(msr_policy(0x12, MSR_POLICY_CURRENT), MSR_GP);           /* kvmclock system time */
	assert_int_equal(msr_policy(0x40000108, MSR_POLICY_CURRENT), MSR_GP);     /* Hyper-V TSC emulation status */
	assert_int_equal(msr_policy(0xe8, MSR_POLICY_CURRENT), MSR_GP);
	assert_int_equal(msr_policy(0x6e0, MSR_POLICY_CURRENT), MSR_GP);
	assert_int_equal(msr_policy(0xc0000103, MSR_POLICY_CURRENT), MSR_GP);
	assert_int_equal(msr_policy(0x1b, MSR_POLICY_CURRENT), MSR_KERNEL);       /* APIC base */
	assert_int_equal(msr_policy(0xc0000080, MSR_POLICY_CURRENT), MSR_KERNEL); /* EFER */

	/* Every MSR the policy takes away from the kernel lies in a filter
	 * range, with its bit clear; every other bit is set. */
	uint32_t special[] = { 0x10, 0x11, 0x12, 0x3b, 0xc1, 0xc8, 0xce, 0xe7, 0xe8, 0x186, 0x18f, 0x19c,
			       0x1a2, 0x1b1, 0x309, 0x30b, 0x38d, 0x390, 0x606, 0x611, 0x619,
			       0x639, 0x641, 0x6e0, 0x40000000, 0x400000ff, 0x40000100, 0x400001ff, 0x4b564d00,
			       0x4b564dff, 0xc0000103, 0xc0010000, 0xc0010007, 0xc0010200, 0xc001020b };
	for (size_t s = 0; s < sizeof(special) / sizeof(special[0]); s++) {
		bool covered = false;
		for (int r = 0; r < msr_filter_nranges; r++) {
			const struct msr_range *mr = &msr_filter_ranges[r];
			if (special[s] >= mr->base && special[s] - mr->base < mr->n) {
				uint8_t bm[0x210 / 8 + 1];
				uint32_t k = special[s] - mr->base;
				msr_range_bitmap(mr, MSR_POLICY_CURRENT, bm);
				assert_false(bm[k / 8] & (1u << (k % 8)));
				covered = true;
			}
		}
		assert_true(covered);
	}
	uint8_t bm[0x210 / 8 + 1];
	msr_range_bitmap(&msr_filter_ranges[0], MSR_POLICY_CURRENT, bm);
	assert_true(bm[0x1b / 8] & (1u << (0x1b % 8))); /* APIC base allowed */
}

/* Revision 1 is what recordings without MSR_POLICY ran under: it must not
 * change.  Revision 2 differs from it in exactly 0x11, 0x12 and
 * 0x40000100..0x400001ff, in the policy and in the filter's bitmaps. */
static void msr_policy_revisions(void **state)
{
	(void)state;
	uint8_t b1[0x210 / 8 + 1], b2[0x210 / 8 + 1];
	for (int r = 0; r < msr_filter_nranges; r++) {
		const struct msr_range *mr = &msr_filter_ranges[r];
		msr_range_bitmap(mr, MSR_POLICY_1, b1);
		msr_range_bitmap(mr, MSR_POLICY_2, b2);
		for (uint32_t k = 0; k < mr->n; k++) {
			uint32_t i = mr->base + k;
			bool changed = i == 0x11 || i == 0x12 || (i >= 0x40000100 && i <= 0x400001ff);
			enum msr_action a1 = msr_policy(i, MSR_POLICY_1), a2 = msr_policy(i, MSR_POLICY_2);
			if (changed) {
				assert_int_equal(a1, MSR_KERNEL);
				assert_int_equal(a2, MSR_GP);
			} else {
				assert_int_equal(a1, a2);
			}
			assert_int_equal(!!(b1[k / 8] & (1u << (k % 8))), a1 == MSR_KERNEL);
			assert_int_equal(!!(b2[k / 8] & (1u << (k % 8))), a2 == MSR_KERNEL);
		}
	}
	/* Names: the trace header's values (trace.h), both ways. */
	enum msr_policy_rev rev = 0;
	assert_string_equal(msr_policy_name(MSR_POLICY_1), TRACE_MSR_POLICY_1);
	assert_string_equal(msr_policy_name(MSR_POLICY_2), TRACE_MSR_POLICY_2);
	assert_string_equal(msr_policy_name(0), "?");
	assert_string_equal(msr_policy_name(MSR_POLICY_CURRENT + 1), "?");
	assert_int_equal(msr_policy_parse(TRACE_MSR_POLICY_1, &rev), 0);
	assert_int_equal(rev, MSR_POLICY_1);
	assert_int_equal(msr_policy_parse(TRACE_MSR_POLICY_2, &rev), 0);
	assert_int_equal(rev, MSR_POLICY_2);
	assert_int_equal(msr_policy_parse("detvm-3", &rev), -1);
	assert_int_equal(msr_policy_parse("", &rev), -1);
}

static void size_parsing(void **state)
{
	(void)state;
	char err[200];
	uint64_t v;
	assert_int_equal(vm_parse_size("128M", &v, err, sizeof(err)), 0);
	assert_int_equal(v, 128ULL << 20);
	assert_int_equal(vm_parse_size("1g", &v, err, sizeof(err)), 0);
	assert_int_equal(v, 1ULL << 30);
	assert_int_equal(vm_parse_size("2GiB", &v, err, sizeof(err)), 0);
	assert_int_equal(v, 2ULL << 30);
	assert_int_equal(vm_parse_size("65536K", &v, err, sizeof(err)), 0);
	assert_int_equal(v, 64ULL << 20);
	assert_int_equal(vm_parse_size("4096", &v, err, sizeof(err)), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(vm_parse_size("", &v, err, sizeof(err)), -1);
	assert_int_equal(vm_parse_size("-1M", &v, err, sizeof(err)), -1);
	assert_int_equal(vm_parse_size("12X", &v, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown suffix"));
	assert_int_equal(vm_parse_size("12Mx", &v, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "trailing"));
	assert_int_equal(vm_parse_size("99999999999999999999", &v, err, sizeof(err)), -1);
	assert_int_equal(vm_parse_size("99999999999T", &v, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too large"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cpuid_hides_host_state),
		cmocka_unit_test(msr_policy_table),
		cmocka_unit_test(msr_policy_revisions),
		cmocka_unit_test(size_parsing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
