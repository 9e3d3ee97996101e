/*
 * kvm.h - a thin, checked wrapper over the KVM ioctls detvm uses: one VM, one
 * vCPU, no in-kernel irqchip, PIT or kvmclock (every device is in userspace),
 * an explicit CPUID table and an MSR filter.  Errors are returned as -1 with
 * a message naming the ioctl and errno in err[].
 */
#ifndef DETVM_KVM_H
#define DETVM_KVM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loader.h"
#include "msr.h"

#define KVM_MAX_CPUID 256

struct kvm {
	int sys_fd, vm_fd, vcpu_fd;
	struct kvm_run *run;
	size_t run_size;
	/* The CPUID table given to the guest (after cpuid_filter). */
	struct {
		struct kvm_cpuid2 hdr;
		struct kvm_cpuid_entry2 e[KVM_MAX_CPUID];
	} cpuid;
	/* KVM's per-vCPU statistics; insn_emulation is a progress counter on
	 * some hosts (see README, "progress counter"). */
	int stats_fd;
	int64_t insn_emulation_off; /* -1 if the statistic does not exist */
};

const char *kvm_dev_path(void);
/* Open /dev/kvm (or $DETVM_KVM_DEV), check the API and needed capabilities, create the VM. */
int kvm_open(struct kvm *k, char *err, size_t errlen);
void kvm_close(struct kvm *k);
int kvm_set_memory(struct kvm *k, uint32_t slot, uint64_t gpa, uint64_t size,
		   void *host, bool log_dirty, char *err, size_t errlen);
int kvm_create_vcpu(struct kvm *k, char *err, size_t errlen);
/* table NULL: the host's supported table, filtered (cpuid.h); else exactly table. */
int kvm_setup_cpuid(struct kvm *k, const struct kvm_cpuid_entry2 *table, size_t n,
		    char *err, size_t errlen);
int kvm_setup_msr_filter(struct kvm *k, enum msr_policy_rev rev, char *err, size_t errlen);
int kvm_set_boot_state(struct kvm *k, const struct boot_cpu *cpu, char *err, size_t errlen);
/* Read the insn_emulation statistic; -1 if unavailable. */
int kvm_read_insn_emulation(const struct kvm *k, uint64_t *value);

#endif
