/*
 * msr.h - which guest MSR accesses the monitor answers itself.
 *
 * KVM answers most MSRs from the vCPU's own state, which is deterministic.
 * The ones below would reveal host state (time, temperature, energy, host
 * performance counters) or belong to features the CPUID table hides; a KVM
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

enum msr_action msr_policy(uint32_t index);

/* A filter range: MSRs [base, base + n) whose policy is not MSR_KERNEL are denied. */
struct msr_range {
	uint32_t base, n;
};

extern const struct msr_range msr_filter_ranges[];
extern const int msr_filter_nranges;

/* Fill bitmap (n bits, 1 = allow in kernel) for range r. */
void msr_range_bitmap(const struct msr_range *r, uint8_t *bitmap);

#endif
