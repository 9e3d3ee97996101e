/*
 * memloop - loops whose register state repeats exactly every iteration
 * while only memory changes, with timer interrupts landing in them: a
 * replay must put each interrupt at the exact instruction, which no
 * register or RIP comparison can tell apart.
 *
 * Phase 1: "1: incq counter; cmpl $0, stop; je 1b" with the LAPIC timer
 *   periodic (2 ms); its handler logs the counter at every tick and sets
 *   stop after K ticks (memloop.k=K, default 10).  At the loop head every
 *   register, RIP and RFLAGS included, is the same in every iteration.
 * Phase 2: "1: decq remaining; jnz 1b" from a fixed count kept only in
 *   memory (memloop.n=N, default 100000) with the PIT at 1 kHz; its handler
 *   logs the remaining count at every tick.
 * The counts the handlers saw are time-dependent; that they are monotonic,
 * and the final counts, are not.
 */
#include "guests/rt/rt.h"

const char *rt_guest_name = "memloop";

volatile uint64_t memloop_counter, memloop_remaining;
volatile uint32_t memloop_stop;
void memloop_until_stop(void);
void memloop_countdown(void);

__asm__(".text\n"
	".globl memloop_until_stop\n"
	"memloop_until_stop:\n"
	"1:	incq memloop_counter(%rip)\n"
	"	cmpl $0, memloop_stop(%rip)\n"
	"	je 1b\n"
	"	ret\n"
	".globl memloop_countdown\n"
	"memloop_countdown:\n"
	"2:	decq memloop_remaining(%rip)\n"
	"	jnz 2b\n"
	"	ret\n");

#define LOG_MAX 1024
static uint64_t log1[LOG_MAX], log2[LOG_MAX];
static volatile uint64_t ticks1, ticks2, k;

static void lapic_irq(struct trapframe *tf)
{
	(void)tf;
	if (ticks1 < LOG_MAX)
		log1[ticks1] = memloop_counter;
	if (++ticks1 >= k)
		memloop_stop = 1;
	rt_lapic_eoi();
}

static void pit_irq(struct trapframe *tf)
{
	(void)tf;
	if (ticks2 < LOG_MAX)
		log2[ticks2] = memloop_remaining;
	ticks2++;
	rt_pic_eoi(DEV_PIT_IRQ);
}

void guest_main(struct machine *m)
{
	(void)m;
	uint64_t h = FNV64_INIT;
	k = rt_cmdline_uint("memloop.k", 10);
	uint64_t n = rt_cmdline_uint("memloop.n", 100000);
	if (k == 0 || k > LOG_MAX || n == 0)
		rt_fail("bad memloop.k=%lu or memloop.n=%lu", k, n);
	rt_pic_init();
	rt_lapic_init();
	rt_set_irq_handler(RT_VEC_LAPIC_TMR, lapic_irq);
	rt_set_irq_handler(RT_VEC_PIC_BASE + DEV_PIT_IRQ, pit_irq);

	/* Phase 1 */
	rt_printf("memloop: phase 1: incrementing a memory counter until %lu LAPIC timer ticks\n", k);
	rt_lapic_timer_start(2000, 1);
	sti();
	memloop_until_stop();
	cli();
	rt_lapic_timer_stop();
	uint64_t t1 = ticks1, total1 = memloop_counter;
	if (t1 < k)
		rt_fail("phase 1 stopped after %lu ticks", t1);
	uint64_t hl = FNV64_INIT;
	for (uint64_t i = 0; i < t1 && i < LOG_MAX; i++) {
		if (i && log1[i] < log1[i - 1])
			rt_fail("phase 1: counter went back from %lu to %lu", log1[i - 1], log1[i]);
		if (log1[i] > total1)
			rt_fail("phase 1: counter %lu beyond the final %lu", log1[i], total1);
		hl = fnv1a64_u64(hl, log1[i]);
	}
	rt_printf(RT_TD "memloop: phase 1: %lu iterations, %lu ticks, counters seen %016lx, first %lu\n",
		  total1, t1, hl, log1[0]);
	rt_printf("memloop: phase 1: stopped after %lu ticks, counters monotonic\n", k);
	h = fnv1a64_u64(h, k);

	/* Phase 2 */
	rt_printf("memloop: phase 2: counting %lu down in memory with the PIT at 1 kHz\n", n);
	memloop_remaining = n;
	rt_pit_periodic(1000);
	rt_pic_unmask(DEV_PIT_IRQ);
	sti();
	memloop_countdown();
	cli();
	rt_pic_mask(DEV_PIT_IRQ);
	rt_pit_stop();
	uint64_t t2 = ticks2;
	hl = FNV64_INIT;
	for (uint64_t i = 0; i < t2 && i < LOG_MAX; i++) {
		if (i && log2[i] > log2[i - 1])
			rt_fail("phase 2: count went back up from %lu to %lu", log2[i - 1], log2[i]);
		if (log2[i] > n)
			rt_fail("phase 2: count %lu above the start %lu", log2[i], n);
		hl = fnv1a64_u64(hl, log2[i]);
	}
	rt_printf(RT_TD "memloop: phase 2: %lu ticks, counts seen %016lx\n", t2, hl);
	if (memloop_remaining != 0)
		rt_fail("phase 2 ended at %lu", memloop_remaining);
	rt_printf("memloop: phase 2: reached 0, counts monotonic\n");
	h = fnv1a64_u64(h, n);
	if (rt_unexpected_irqs)
		rt_fail("%lu unexpected interrupts", rt_unexpected_irqs);
	rt_pass(h);
}
