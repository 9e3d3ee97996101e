/*
 * msr.h - which guest MSR accesses the monitor answers itself.
 *
 * KVM answers most MSRs from the vCPU's own state, which is deterministic.
 * The ones below would reveal host state (time, temperature, energy, host
 * performance counters) or belong to features the CPUID table hides (the
 * paravirtual clocks would write host time into guest memory); a KVM
 * MSR filter (KVM_X86_SET_MSR_FILTER, default allow) denies them in the
 * kernel so that they exit to userspace (KVM_CAP_X86_USER_SPACE_MSR with
 * KVM_MSR_EXIT_REASON_FILTER), where msr_policy() decides:
 *   MSR_GP     inject #GP (the feature does not exist for this guest)
 *   MSR_ZERO   reads 0, writes ignored
 *   MSR_CLOCK  IA32_TSC (0x10): reads the virtual clock in ns through the
 *              nondeterminism gateway (recorded); writes ignored
 * RDTSC itself cannot be trapped on every host (see README); the TSC MSR
 * at least is consistent with the recorded clock.
 */
#ifndef DETVM_MSR_H
#define DETVM_MSR_H

#include <stdbool.h>
#include <stdint.h>

enum msr_action { MSR_KERNEL = 0, MSR_GP, MSR_ZERO, MSR_CLOCK };

/*
 * Which MSRs the monitor answers is part of the machine a recording ran
 * on (each is an exit), so it is versioned and named in the trace header
 * (MSR_POLICY, trace-format/SPEC.md section 4.1); a replay uses the
 * recording's.  Never change a revision: add one.
 *   detvm-1  recordings whose header has no MSR_POLICY
 *   detvm-2  also the first kvmclock MSRs 0x11 and 0x12 (KVM accepts them
 *            whatever CPUID says, unless KVM_CAP_ENFORCE_PV_FEATURE_CPUID
 *            is enabled, and then writes host time into guest memory,
 *            where no exit shows it) and the Hyper-V MSRs 0x40000100 to
 *            0x400001ff: #GP
 */
enum msr_policy_rev { MSR_POLICY_1 = 1, MSR_POLICY_2 = 2 };
#define MSR_POLICY_CURRENT MSR_POLICY_2

/* "detvm-N" (trace.h's TRACE_MSR_POLICY_*); "?" for no revision. */
const char *msr_policy_name(enum msr_policy_rev rev);
/* 0, or -1 for a name no revision has. */
int msr_policy_parse(const char *name, enum msr_policy_rev *rev);

enum msr_action msr_policy(uint32_t index, enum msr_policy_rev rev);

/* A filter range: MSRs [base, base + n) whose policy is not MSR_KERNEL are denied. */
struct msr_range {
	uint32_t base, n;
};

extern const struct msr_range msr_filter_ranges[];
extern const int msr_filter_nranges;

/* Fill bitmap (n bits, 1 = allow in kernel) for range r under revision rev. */
void msr_range_bitmap(const struct msr_range *r, enum msr_policy_rev rev, uint8_t *bitmap);

#endif
