/* trap.c - IDT, exception reporting and recovery, interrupt dispatch. */
#include "rt.h"

struct idt_entry {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, zero;
} __attribute__((packed));

static struct idt_entry idt[256] __attribute__((aligned(16)));
static rt_exc_handler exc_handlers[32];
static rt_irq_handler irq_handlers[256];
volatile uint64_t rt_unexpected_irqs;
struct rt_fixup rt_fixup;

extern char rt_stub_table[];

static const char *const exc_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
	"#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
	"#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23",
	"#24", "#25", "#26", "#27", "#HV", "#VC", "#SX", "#31",
};

void rt_idt_init(void)
{
	for (int v = 0; v < 256; v++) {
		uint64_t a = (uint64_t)(uintptr_t)(rt_stub_table + 16 * v);
		idt[v].off0 = (uint16_t)a;
		idt[v].sel = 0x08;
		idt[v].ist = 0;
		idt[v].type = 0x8e; /* present, DPL0, 64-bit interrupt gate */
		idt[v].off1 = (uint16_t)(a >> 16);
		idt[v].off2 = (uint32_t)(a >> 32);
		idt[v].zero = 0;
	}
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) desc = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };
	__asm__ volatile("lidt %0" :: "m"(desc));
}

void rt_set_exception_handler(unsigned vec, rt_exc_handler h)
{
	if (vec < 32)
		exc_handlers[vec] = h;
}

void rt_set_irq_handler(unsigned vec, rt_irq_handler h)
{
	if (vec >= 32 && vec < 256)
		irq_handlers[vec] = h;
}

void rt_trap(struct trapframe *tf);
void rt_trap(struct trapframe *tf)
{
	unsigned vec = (unsigned)tf->vec;
	if (vec >= 32) {
		if (irq_handlers[vec]) {
			irq_handlers[vec](tf);
			return;
		}
		rt_unexpected_irqs++;
		/* Keep an unclaimed PIC line from blocking the others (not for
		 * the spurious IRQ 7 / 15, which must not be acknowledged). */
		if (vec >= RT_VEC_PIC_BASE && vec < RT_VEC_PIC_BASE + 16 &&
		    vec != RT_VEC_PIC_BASE + 7 && vec != RT_VEC_PIC_BASE + 15)
			rt_pic_eoi(vec - RT_VEC_PIC_BASE);
		else if (vec != RT_VEC_SPURIOUS && vec != RT_VEC_PIC_BASE + 7 &&
			 vec != RT_VEC_PIC_BASE + 15)
			rt_lapic_eoi();
		return;
	}
	uint64_t cr2 = read_cr2();
	if (rt_fixup.rip) {
		rt_fixup.vec = vec;
		rt_fixup.err = tf->err;
		rt_fixup.cr2 = vec == 14 ? cr2 : 0;
		rt_fixup.fault_rip = tf->rip;
		rt_fixup.count++;
		tf->rip = rt_fixup.rip;
		rt_fixup.rip = 0;
		return;
	}
	if (exc_handlers[vec] && exc_handlers[vec](tf))
		return;
	rt_printf("EXCEPTION vec=%u (%s) err=%lx rip=%lx cr2=%lx rsp=%lx rflags=%lx\n",
		  vec, exc_names[vec], tf->err, tf->rip, cr2, tf->rsp, tf->rflags);
	rt_printf("RESULT %s FAIL exception %s at rip=%lx\n", rt_guest_name,
		  exc_names[vec], tf->rip);
	rt_exit(RT_EXIT_EXCEPTION);
}

/* RDMSR and WRMSR through rt_fixup (rt.h). */
uint64_t rt_rdmsr_safe(uint32_t idx, uint64_t *v)
{
	uint32_t lo = 0, hi = 0;
	uint64_t before = rt_fixup.count;
	__asm__ volatile("leaq 1f(%%rip), %%r8\n\t"
			 "movq %%r8, rt_fixup(%%rip)\n\t"
			 "rdmsr\n\t"
			 "movq $0, rt_fixup(%%rip)\n\t"
			 "1:"
			 : "+a"(lo), "+d"(hi) : "c"(idx) : "r8", "memory");
	*v = ((uint64_t)hi << 32) | lo;
	return rt_fixup.count != before ? rt_fixup.vec : 0;
}

uint64_t rt_wrmsr_safe(uint32_t idx, uint64_t v)
{
	uint64_t before = rt_fixup.count;
	__asm__ volatile("leaq 1f(%%rip), %%r8\n\t"
			 "movq %%r8, rt_fixup(%%rip)\n\t"
			 "wrmsr\n\t"
			 "movq $0, rt_fixup(%%rip)\n\t"
			 "1:"
			 :: "a"((uint32_t)v), "d"((uint32_t)(v >> 32)), "c"(idx) : "r8", "memory");
	return rt_fixup.count != before ? rt_fixup.vec : 0;
}
