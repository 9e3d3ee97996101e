/* cpuid.c - see cpuid.h. */
#include "cpuid.h"

#include <string.h>

#define BIT(n) (1u << (n))

static void filter_one(struct kvm_cpuid_entry2 *e)
{
	switch (e->function) {
	case 1:
		e->ecx &= ~(BIT(3) | BIT(15) | BIT(21) | BIT(24) | BIT(30) | BIT(31));
		/* APIC ID 0 (bits 31..24), one logical processor (23..16). */
		e->ebx = (e->ebx & 0x0000ffffu) | (1u << 16);
		e->edx &= ~BIT(28); /* HTT: one thread */
		break;
	case 6:
		/* Thermal/power management: APERF/MPERF and friends read the host. */
		e->eax = e->ebx = e->ecx = e->edx = 0;
		break;
	case 7:
		if (e->index == 0) {
			e->ebx &= ~(BIT(1) | BIT(18));
			e->ecx &= ~BIT(22);
		}
		break;
	case 0xa:
		e->eax = e->ebx = e->ecx = e->edx = 0;
		break;
	case 0xb:
	case 0x1f:
		e->edx = 0; /* x2APIC ID */
		break;
	case 0x80000001:
		e->edx &= ~BIT(27);
		e->ecx &= ~(BIT(23) | BIT(24) | BIT(28));
		break;
	}
}

int cpuid_filter(struct kvm_cpuid_entry2 *entries, int n)
{
	int out = 0;
	for (int i = 0; i < n; i++) {
		struct kvm_cpuid_entry2 e = entries[i];
		if (e.function >= 0x40000000u && e.function <= 0x4fffffffu)
			continue;
		filter_one(&e);
		entries[out++] = e;
	}
	return out;
}
