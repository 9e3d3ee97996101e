/*
 * rtc - read the MC146818 RTC: wait for UIP clear, read until two reads
 * agree, decode BCD or binary and 12/24-hour per register B, print the date
 * (time-dependent), check every field's range, then wait (PIT-timed, HLT)
 * for the seconds to advance.
 */
#include "guests/rt/rt.h"

const char *rt_guest_name = "rtc";

struct rtc_time { unsigned sec, min, hour, wday, day, mon, year, century; };

static uint8_t cmos(uint8_t reg)
{
	outb(DEV_RTC_PORT, reg);
	return inb(DEV_RTC_PORT + 1);
}

static int wait_uip_clear(void)
{
	for (int i = 0; i < 100000; i++)
		if (!(cmos(0x0a) & 0x80))
			return 0;
	return -1;
}

static void read_raw(struct rtc_time *t)
{
	t->sec = cmos(0x00);
	t->min = cmos(0x02);
	t->hour = cmos(0x04);
	t->wday = cmos(0x06);
	t->day = cmos(0x07);
	t->mon = cmos(0x08);
	t->year = cmos(0x09);
	t->century = cmos(0x32);
}

static unsigned bcd(unsigned v) { return (v >> 4) * 10 + (v & 15); }

static void read_time(struct rtc_time *t, uint8_t regb)
{
	struct rtc_time a, b;
	int tries = 0;
	do {
		if (wait_uip_clear())
			rt_fail("UIP never cleared");
		read_raw(&a);
		if (wait_uip_clear())
			rt_fail("UIP never cleared");
		read_raw(&b);
		if (++tries > 100)
			rt_fail("RTC reads never agreed");
	} while (memcmp(&a, &b, sizeof(a)));
	unsigned pm = 0;
	if (!(regb & 0x02)) { /* 12-hour mode: bit 7 of the hour is PM */
		pm = a.hour & 0x80;
		a.hour &= 0x7f;
	}
	if (!(regb & 0x04)) { /* BCD */
		a.sec = bcd(a.sec);
		a.min = bcd(a.min);
		a.hour = bcd(a.hour);
		a.wday = bcd(a.wday);
		a.day = bcd(a.day);
		a.mon = bcd(a.mon);
		a.year = bcd(a.year);
		a.century = bcd(a.century);
	}
	if (!(regb & 0x02)) {
		if (a.hour == 12)
			a.hour = 0;
		if (pm)
			a.hour += 12;
	}
	*t = a;
}

static volatile uint64_t ticks;

static void pit_irq(struct trapframe *tf)
{
	(void)tf;
	ticks++;
	rt_pic_eoi(DEV_PIT_IRQ);
}

void guest_main(struct machine *m)
{
	(void)m;
	uint64_t h = FNV64_INIT;
	uint8_t regb = cmos(0x0b);
	rt_printf("rtc: register B: %s, %s\n", (regb & 0x02) ? "24-hour" : "12-hour",
		  (regb & 0x04) ? "binary" : "BCD");
	h = fnv1a64_u64(h, regb & 0x06);

	struct rtc_time t;
	read_time(&t, regb);
	rt_printf(RT_TD "rtc: %02u%02u-%02u-%02u %02u:%02u:%02u (weekday %u)\n", t.century, t.year,
		  t.mon, t.day, t.hour, t.min, t.sec, t.wday);
	if (t.sec > 59) rt_fail("seconds %u out of range", t.sec);
	if (t.min > 59) rt_fail("minutes %u out of range", t.min);
	if (t.hour > 23) rt_fail("hours %u out of range", t.hour);
	if (t.day < 1 || t.day > 31) rt_fail("day %u out of range", t.day);
	if (t.mon < 1 || t.mon > 12) rt_fail("month %u out of range", t.mon);
	if (t.year > 99) rt_fail("year %u out of range", t.year);
	if (t.century < 19 || t.century > 21) rt_fail("century %u out of range", t.century);
	/* The weekday register is not kept by every RTC model; only its range. */
	if (t.wday > 7) rt_fail("weekday %u out of range", t.wday);
	rt_printf("rtc: all fields in range\n");
	h = fnv1a64_str(h, "ranges-ok");

	/* The clock must run: the seconds change within 2.5 s. */
	rt_pic_init();
	rt_lapic_init();
	rt_set_irq_handler(RT_VEC_PIC_BASE + DEV_PIT_IRQ, pit_irq);
	rt_pit_periodic(100);
	rt_pic_unmask(DEV_PIT_IRQ);
	struct rtc_time u = t;
	while (u.sec == t.sec && ticks < 250) {
		sti_hlt();
		cli();
		read_time(&u, regb);
	}
	rt_pic_mask(DEV_PIT_IRQ);
	rt_pit_stop();
	if (u.sec == t.sec)
		rt_fail("RTC seconds did not advance in %lu PIT ticks", ticks);
	rt_printf(RT_TD "rtc: seconds advanced to %02u after %lu PIT ticks\n", u.sec, ticks);
	rt_printf("rtc: clock advances\n");
	h = fnv1a64_str(h, "advances");
	rt_pass(h);
}
