/*
 * flags - a countdown loop that saves and restores RFLAGS on the stack at
 * every iteration (pushfq; popfq), with the PIT at 1 kHz interrupting it.
 * The replay reaches its forced exits by single-stepping the last few
 * instructions, and a stepped PUSHF would store the step's trap flag in
 * guest memory: the POPF after it would then make the guest trap (#DB, an
 * unexpected interrupt here) once stepping is off.  The counts the handler
 * saw are time-dependent; that they are monotonic, and the end, are not.
 */
#include "guests/rt/rt.h"

const char *rt_guest_name = "flags";

volatile uint64_t flags_remaining;
void flags_countdown(void);

__asm__(".text\n"
	".globl flags_countdown\n"
	"flags_countdown:\n"
	"1:	pushfq\n"
	"	popfq\n"
	"	decq flags_remaining(%rip)\n"
	"	jnz 1b\n"
	"	ret\n");

#define LOG_MAX 1024
static uint64_t log[LOG_MAX];
static volatile uint64_t ticks;

static void pit_irq(struct trapframe *tf)
{
	(void)tf;
	if (ticks < LOG_MAX)
		log[ticks] = flags_remaining;
	ticks++;
	rt_pic_eoi(DEV_PIT_IRQ);
}

void guest_main(struct machine *m)
{
	(void)m;
	uint64_t n = rt_cmdline_uint("flags.n", 60000);
	if (n == 0)
		rt_fail("bad flags.n=%lu", n);
	rt_pic_init();
	rt_set_irq_handler(RT_VEC_PIC_BASE + DEV_PIT_IRQ, pit_irq);
	rt_printf("flags: counting %lu down with pushfq/popfq, the PIT at 1 kHz\n", n);
	flags_remaining = n;
	rt_pit_periodic(1000);
	rt_pic_unmask(DEV_PIT_IRQ);
	sti();
	flags_countdown();
	cli();
	rt_pic_mask(DEV_PIT_IRQ);
	rt_pit_stop();
	uint64_t t = ticks, hl = FNV64_INIT;
	for (uint64_t i = 0; i < t && i < LOG_MAX; i++) {
		if (i && log[i] > log[i - 1])
			rt_fail("count went back up from %lu to %lu", log[i - 1], log[i]);
		hl = fnv1a64_u64(hl, log[i]);
	}
	rt_printf(RT_TD "flags: %lu ticks, counts seen %016lx\n", t, hl);
	if (flags_remaining != 0)
		rt_fail("ended at %lu", flags_remaining);
	if (rt_unexpected_irqs)
		rt_fail("%lu unexpected interrupts", rt_unexpected_irqs);
	rt_printf("flags: reached 0, counts monotonic, no unexpected trap\n");
	rt_pass(fnv1a64_u64(FNV64_INIT, n));
}
