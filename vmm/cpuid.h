/*
 * cpuid.h - the CPUID table detvm gives its guest.
 *
 * Starting from what KVM supports (KVM_GET_SUPPORTED_CPUID), hide everything
 * that would let the guest read host state or time behind the monitor's
 * back, or that the monitor does not emulate:
 *   TSC-deadline, x2APIC, MONITOR/MWAIT, PDCM, hypervisor bit (leaf 1 ECX);
 *   RDRAND (leaf 1 ECX 30), RDSEED (leaf 7 EBX 18), TSC_ADJUST (leaf 7 EBX 1),
 *   RDPID (leaf 7 ECX 22), RDTSCP (0x80000001 EDX 27);
 *   the PMU (leaf 0xA zeroed, AMD PerfCtrExt* bits), thermal/power leaf 6;
 *   every hypervisor leaf 0x40000000..0x4fffffff (no KVM PV features).
 * One CPU: leaf 1 EBX says APIC ID 0 and one logical processor; x2APIC ID
 * fields of leaves 0xB/0x1F are 0.
 *
 * Note (host notes): on the nested PVM host these tests run on, KVM honours
 * only some of these bits at CPL0 (the vendor leaf, leaf 1 EBX, leaf 1 ECX
 * bits 31/24/21/13 and the 0x40000000 signature).  The table is still what a
 * hardware KVM host shows the guest, and it is what the trace records.
 */
#ifndef DETVM_CPUID_H
#define DETVM_CPUID_H

#include <linux/kvm.h>

/* Filter entries[0..n) in place; returns the new count (entries removed). */
int cpuid_filter(struct kvm_cpuid_entry2 *entries, int n);

#endif
