/*
 * pvclock - turn on every paravirtual clock a KVM guest can ask for by
 * MSR, whatever CPUID says, and check that no host data reaches guest
 * memory.  KVM answers these MSRs in the kernel, if the monitor lets it,
 * by writing host time into the page the guest names: the wall clock
 * (MSR 0x11 and 0x4b564d00), the system time with the host TSC (0x12 and
 * 0x4b564d01), steal time (0x4b564d03), and the async page fault and PV
 * EOI areas (0x4b564d02, 0x4b564d04).  No exit shows those writes, so a
 * recording could not hold them and its replay would read other values.
 *
 * Each MSR gets its own 64-byte slot of a zeroed page; the guest then
 * makes exits and halts (where KVM refreshes the clocks on re-entry) and
 * checks the page is still all zeros.  Whether a write faults is not
 * printed: QEMU's TCG ignores unknown MSRs, detvm answers #GP, and both
 * are correct.
 */
#include "guests/rt/rt.h"

const char *rt_guest_name = "pvclock";

static volatile uint8_t page[4096] __attribute__((aligned(4096)));

static const struct {
	uint32_t msr;
	uint64_t enable; /* bit 0 turns the area on for most of them */
	const char *what;
} pv[] = {
	{ 0x11, 0, "wall clock" },
	{ 0x12, 1, "system time" },
	{ 0x4b564d00, 0, "wall clock (new)" },
	{ 0x4b564d01, 1, "system time (new)" },
	{ 0x4b564d02, 1, "async page fault" },
	{ 0x4b564d03, 1, "steal time" },
	{ 0x4b564d04, 1, "PV EOI" },
};
#define NPV (sizeof(pv) / sizeof(pv[0]))

static void check(const char *when)
{
	for (unsigned off = 0; off < sizeof(page); off++)
		if (page[off]) {
			unsigned slot = off / 64;
			rt_fail("%s: byte %u of the page is %02x: host data from MSR %x (%s)", when, off,
				page[off], slot < NPV ? pv[slot].msr : 0, slot < NPV ? pv[slot].what : "?");
		}
}

static void tick(struct trapframe *tf)
{
	(void)tf;
	rt_pic_eoi(0);
}

void guest_main(struct machine *m)
{
	(void)m;
	uint64_t base = (uint64_t)(uintptr_t)page;
	for (unsigned i = 0; i < NPV; i++)
		rt_wrmsr_safe(pv[i].msr, (base + 64 * i) | pv[i].enable);
	check("after the MSR writes");

	/* Exits: KVM re-enters the guest after each, and updates the clocks
	 * it was asked for on the way in. */
	for (unsigned i = 0; i < 200; i++)
		outb(DEV_COM1_PORT + 7, (uint8_t)i);
	check("after 200 port exits");

	/* Halts woken by the PIT: a vCPU that was scheduled out accrues steal
	 * time. */
	rt_set_irq_handler(RT_VEC_PIC_BASE + 0, tick);
	rt_pic_init();
	rt_lapic_init();
	rt_pit_periodic(1000);
	rt_pic_unmask(0);
	for (unsigned i = 0; i < 5; i++)
		sti_hlt();
	cli();
	rt_pic_mask(0);
	rt_pit_stop();
	check("after 5 halts");

	rt_printf("pvclock: %u paravirtual clock MSRs written; guest memory untouched\n", (unsigned)NPV);
	rt_pass(fnv1a64_str(FNV64_INIT, "pvclock"));
}
