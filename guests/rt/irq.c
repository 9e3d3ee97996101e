/* irq.c - 8259 PIC, 8254 PIT channel 0, local APIC and its timer. */
#include "rt.h"

static uint8_t pic_mask[2] = { 0xff, 0xff };

void rt_pic_init(void)
{
	outb(DEV_PIC_MASTER + 1, 0xff);
	outb(DEV_PIC_SLAVE + 1, 0xff);
	outb(DEV_PIC_MASTER, 0x11);     /* ICW1: edge, cascade, ICW4 */
	outb(DEV_PIC_SLAVE, 0x11);
	outb(DEV_PIC_MASTER + 1, RT_VEC_PIC_BASE);     /* ICW2 */
	outb(DEV_PIC_SLAVE + 1, RT_VEC_PIC_BASE + 8);
	outb(DEV_PIC_MASTER + 1, 0x04); /* ICW3: slave on IRQ 2 */
	outb(DEV_PIC_SLAVE + 1, 0x02);
	outb(DEV_PIC_MASTER + 1, 0x01); /* ICW4: 8086 mode */
	outb(DEV_PIC_SLAVE + 1, 0x01);
	pic_mask[0] = 0xfb;             /* all masked but the cascade */
	pic_mask[1] = 0xff;
	outb(DEV_PIC_MASTER + 1, pic_mask[0]);
	outb(DEV_PIC_SLAVE + 1, pic_mask[1]);
}

void rt_pic_unmask(unsigned irq)
{
	if (irq < 8) {
		pic_mask[0] &= (uint8_t)~(1u << irq);
		outb(DEV_PIC_MASTER + 1, pic_mask[0]);
	} else if (irq < 16) {
		pic_mask[1] &= (uint8_t)~(1u << (irq - 8));
		outb(DEV_PIC_SLAVE + 1, pic_mask[1]);
	}
}

void rt_pic_mask(unsigned irq)
{
	if (irq < 8) {
		pic_mask[0] |= (uint8_t)(1u << irq);
		outb(DEV_PIC_MASTER + 1, pic_mask[0]);
	} else if (irq < 16) {
		pic_mask[1] |= (uint8_t)(1u << (irq - 8));
		outb(DEV_PIC_SLAVE + 1, pic_mask[1]);
	}
}

void rt_pic_eoi(unsigned irq)
{
	if (irq >= 8)
		outb(DEV_PIC_SLAVE, 0x20);
	outb(DEV_PIC_MASTER, 0x20);
}

void rt_pit_periodic(unsigned hz)
{
	uint32_t div = (uint32_t)((PIT_HZ + hz / 2) / hz);
	if (div > 65535)
		div = 0; /* 65536 */
	outb(DEV_PIT_PORT + 3, 0x34);   /* channel 0, lobyte/hibyte, mode 2, binary */
	outb(DEV_PIT_PORT, (uint8_t)div);
	outb(DEV_PIT_PORT, (uint8_t)(div >> 8));
}

void rt_pit_stop(void)
{
	/* Mode 0 with the longest count: one edge ~55 ms later at most, which
	 * callers keep masked at the PIC. */
	outb(DEV_PIT_PORT + 3, 0x30);
	outb(DEV_PIT_PORT, 0xff);
	outb(DEV_PIT_PORT, 0xff);
}

void rt_lapic_init(void)
{
	lapic_write(LAPIC_SVR, 0x100 | RT_VEC_SPURIOUS);  /* software enable */
	lapic_write(LAPIC_TPR, 0);
	lapic_write(LAPIC_LVT_TMR, 0x10000 | RT_VEC_LAPIC_TMR); /* masked */
	lapic_write(LAPIC_LVT_LINT0, 0x700);              /* ExtINT: the 8259 */
	lapic_write(LAPIC_LVT_LINT1, 0x400);              /* NMI */
	lapic_write(LAPIC_LVT_ERR, 0x10000 | RT_VEC_LAPIC_ERR);
}

void rt_lapic_eoi(void)
{
	lapic_write(LAPIC_EOI, 0);
}

void rt_lapic_timer_start(uint32_t period_us, int periodic)
{
	/* LAPIC_TIMER_HZ / 16 ticks per second */
	uint64_t count = (uint64_t)period_us * (LAPIC_TIMER_HZ / 16) / 1000000;
	if (count == 0)
		count = 1;
	if (count > 0xffffffffULL)
		count = 0xffffffffULL;
	lapic_write(LAPIC_TMR_DIV, 0x3); /* divide by 16 */
	lapic_write(LAPIC_LVT_TMR, (periodic ? 0x20000 : 0) | RT_VEC_LAPIC_TMR);
	lapic_write(LAPIC_TMR_INIT, (uint32_t)count);
}

void rt_lapic_timer_stop(void)
{
	lapic_write(LAPIC_LVT_TMR, 0x10000 | RT_VEC_LAPIC_TMR);
	lapic_write(LAPIC_TMR_INIT, 0);
}
