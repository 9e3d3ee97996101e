/*
 * spin - arm the PIT at 100 Hz, enable interrupts, then run a long integer
 * computation with no exits (default 100000 rounds of xorshift and
 * multiply-accumulate, 15 instructions a round: 1.5 million instructions;
 * spin=N to change).
 * The checksum of the computation is deterministic; the number of timer
 * interrupts that landed meanwhile is not (time-dependent line).
 */
#include "guests/rt/rt.h"

const char *rt_guest_name = "spin";

static volatile uint64_t ticks;

static void pit_irq(struct trapframe *tf)
{
	(void)tf;
	ticks++;
	rt_pic_eoi(DEV_PIT_IRQ);
}

static uint64_t compute(uint64_t rounds)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL, acc = 0;
	for (uint64_t i = 0; i < rounds; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		acc = (acc ^ x) * 0x100000001b3ULL + i;
	}
	return acc;
}

void guest_main(struct machine *m)
{
	(void)m;
	uint64_t rounds = rt_cmdline_uint("spin", 100000);
	rt_printf("spin: %lu rounds with the PIT at 100 Hz\n", rounds);
	rt_pic_init();
	rt_lapic_init();
	rt_set_irq_handler(RT_VEC_PIC_BASE + DEV_PIT_IRQ, pit_irq);
	rt_pit_periodic(100);
	rt_pic_unmask(DEV_PIT_IRQ);
	sti();
	uint64_t acc = compute(rounds);
	cli();
	rt_pic_mask(DEV_PIT_IRQ);
	rt_pit_stop();
	rt_printf("spin: result %016lx\n", acc);
	rt_printf(RT_TD "spin: %lu timer interrupts during the computation\n", ticks);
	if (rt_unexpected_irqs)
		rt_fail("%lu unexpected interrupts", rt_unexpected_irqs);
	rt_pass(fnv1a64_u64(FNV64_INIT, acc));
}
