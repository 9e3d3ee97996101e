/*
 * ticks - N PIT interrupts at 100 Hz, then N local APIC timer interrupts
 * (periodic, 10 ms), halting between them; checks the counts.
 * Command line: ticks=N (default 20).
 *
 * The PIT phase is also timed with the LAPIC timer (masked one-shot, large
 * count), as a loose plausibility check of the PIT rate (0.5x .. 4x).
 */
#include "guests/rt/rt.h"

const char *rt_guest_name = "ticks";

static volatile uint64_t pit_ticks, lapic_ticks;

static void pit_irq(struct trapframe *tf)
{
	(void)tf;
	pit_ticks++;
	rt_pic_eoi(DEV_PIT_IRQ);
}

static void lapic_irq(struct trapframe *tf)
{
	(void)tf;
	lapic_ticks++;
	rt_lapic_eoi();
}

void guest_main(struct machine *m)
{
	(void)m;
	uint64_t n = rt_cmdline_uint("ticks", 20);
	uint64_t h = FNV64_INIT, halts;
	if (n == 0 || n > 100000)
		rt_fail("bad ticks=%lu", n);
	rt_printf("ticks: %lu PIT interrupts at 100 Hz, then %lu LAPIC timer interrupts every 10 ms\n", n, n);

	rt_pic_init();
	rt_lapic_init();
	rt_set_irq_handler(RT_VEC_PIC_BASE + DEV_PIT_IRQ, pit_irq);
	rt_set_irq_handler(RT_VEC_LAPIC_TMR, lapic_irq);

	/* --- PIT phase, timed by a one-shot LAPIC count at 1 GHz / 128 --- */
	lapic_write(LAPIC_TMR_DIV, 0xa);                     /* divide by 128 */
	lapic_write(LAPIC_LVT_TMR, 0x10000 | RT_VEC_LAPIC_TMR); /* masked one-shot */
	lapic_write(LAPIC_TMR_INIT, 0xffffffff);
	rt_pit_periodic(100);
	rt_pic_unmask(DEV_PIT_IRQ);
	halts = 0;
	while (pit_ticks < n) {
		sti_hlt();
		cli();
		halts++;
	}
	rt_pic_mask(DEV_PIT_IRQ);
	uint32_t left = lapic_read(LAPIC_TMR_CUR);
	rt_pit_stop();
	uint64_t pit_ms = (0xffffffffULL - left) * 128 / 1000000;
	uint64_t got_pit = pit_ticks;
	rt_printf(RT_TD "ticks: PIT phase: %lu interrupts, %lu halts, %lu ms by the LAPIC timer\n",
		  got_pit, halts, pit_ms);
	if (got_pit < n || got_pit > n + 1)
		rt_fail("PIT: %lu interrupts, wanted %lu", got_pit, n);
	if (halts > got_pit)
		rt_fail("PIT: %lu halts woke for %lu interrupts", halts, got_pit);
	if (lapic_ticks != 0)
		rt_fail("LAPIC timer fired while masked (%lu)", lapic_ticks);
	if (pit_ms * 2 < (n - 1) * 10 || pit_ms > n * 10 * 4)
		rt_fail("PIT: %lu ticks at 100 Hz took %lu ms", n, pit_ms);
	rt_printf("ticks: PIT ok: %lu interrupts\n", n);
	h = fnv1a64_str(h, "pit");
	h = fnv1a64_u64(h, n);

	/* --- LAPIC phase --- */
	uint64_t pit_before = pit_ticks;
	rt_lapic_timer_start(10000, 1);
	halts = 0;
	while (lapic_ticks < n) {
		sti_hlt();
		cli();
		halts++;
	}
	rt_lapic_timer_stop();
	uint64_t got_lapic = lapic_ticks;
	rt_printf(RT_TD "ticks: LAPIC phase: %lu interrupts, %lu halts\n", got_lapic, halts);
	if (got_lapic < n || got_lapic > n + 1)
		rt_fail("LAPIC: %lu interrupts, wanted %lu", got_lapic, n);
	if (halts > got_lapic)
		rt_fail("LAPIC: %lu halts woke for %lu interrupts", halts, got_lapic);
	if (pit_ticks != pit_before)
		rt_fail("PIT interrupt while masked");
	if (rt_unexpected_irqs)
		rt_fail("%lu unexpected interrupts", rt_unexpected_irqs);
	rt_printf("ticks: LAPIC ok: %lu interrupts\n", n);
	h = fnv1a64_str(h, "lapic");
	h = fnv1a64_u64(h, n);
	rt_pass(h);
}
