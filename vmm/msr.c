/* msr.c - see msr.h. */
#include "msr.h"

#include <string.h>

static const char *const policy_names[] = {
	[MSR_POLICY_1] = "detvm-1",
	[MSR_POLICY_2] = "detvm-2",
};

const char *msr_policy_name(enum msr_policy_rev rev)
{
	return rev >= MSR_POLICY_1 && rev <= MSR_POLICY_CURRENT ? policy_names[rev] : "?";
}

int msr_policy_parse(const char *name, enum msr_policy_rev *rev)
{
	for (int r = MSR_POLICY_1; r <= MSR_POLICY_CURRENT; r++)
		if (strcmp(name, policy_names[r]) == 0) {
			*rev = (enum msr_policy_rev)r;
			return 0;
		}
	return -1;
}

enum msr_action msr_policy(uint32_t i, enum msr_policy_rev rev)
{
	if (i == 0x10)                           /* IA32_TSC */
		return MSR_CLOCK;
	if (i == 0x3b)                           /* IA32_TSC_ADJUST */
		return MSR_ZERO;
	if (rev >= MSR_POLICY_2 &&
	    (i == 0x11 || i == 0x12 ||               /* kvmclock, first version */
	     (i >= 0x40000100 && i <= 0x400001ff)))  /* Hyper-V: crash, TSC emulation, ... */
		return MSR_GP;
	if ((i >= 0xc1 && i <= 0xc8) ||          /* IA32_PMCx */
	    i == 0xce ||                         /* PLATFORM_INFO */
	    i == 0xe7 || i == 0xe8 ||            /* MPERF, APERF */
	    (i >= 0x186 && i <= 0x18f) ||        /* PERFEVTSELx */
	    i == 0x19c || i == 0x1a2 || i == 0x1b1 || /* thermal */
	    (i >= 0x309 && i <= 0x30b) ||        /* fixed counters */
	    (i >= 0x38d && i <= 0x390) ||        /* perf global ctrl/status */
	    i == 0x606 || i == 0x611 || i == 0x619 || i == 0x639 || i == 0x641 || /* RAPL */
	    i == 0x6e0 ||                        /* TSC_DEADLINE */
	    (i >= 0x40000000 && i <= 0x400000ff) || /* Hyper-V */
	    (i >= 0x4b564d00 && i <= 0x4b564dff) || /* KVM paravirtual */
	    i == 0xc0000103 ||                   /* TSC_AUX (RDTSCP hidden) */
	    (i >= 0xc0010000 && i <= 0xc0010007) || /* AMD perf */
	    (i >= 0xc0010200 && i <= 0xc001020b))   /* AMD core perf ext */
		return MSR_GP;
	return MSR_KERNEL;
}

const struct msr_range msr_filter_ranges[] = {
	{ 0x0, 0x200 },
	{ 0x300, 0x100 },
	{ 0x600, 0x100 },
	{ 0x40000000, 0x200 },
	{ 0x4b564d00, 0x100 },
	{ 0xc0000103, 0x1 },
	{ 0xc0010000, 0x210 },
};
const int msr_filter_nranges = sizeof(msr_filter_ranges) / sizeof(msr_filter_ranges[0]);

void msr_range_bitmap(const struct msr_range *r, enum msr_policy_rev rev, uint8_t *bitmap)
{
	memset(bitmap, 0, (r->n + 7) / 8);
	for (uint32_t k = 0; k < r->n; k++)
		if (msr_policy(r->base + k, rev) == MSR_KERNEL)
			bitmap[k / 8] |= (uint8_t)(1u << (k % 8));
}
