/*
 * lapic.c - local APIC (xAPIC MMIO), one CPU.  See lapic.h.
 *
 * The interrupt logic follows the SDM (vol. 3, ch. 11 "Advanced Programmable
 * Interrupt Controller"): IRR/ISR/TMR bitmaps, PPR from TPR and the highest
 * in-service vector, delivery of the highest IRR vector whose priority class
 * is above PPR's.
 *
 * The timer never reads host time: its count is a function of virtual time,
 * sampled with nd_clock_ns() only when the guest reads the current count or
 * reprograms the timer (each sample is a recorded event), and its expiry is a
 * vtimer that the run loop fires at the recorded moment.  Whenever a sample
 * is taken and the pending expiry already lies at or before it, the expiry is
 * processed first ("catch-up"), so the outcome does not depend on whether the
 * run loop happened to poll the vtimer before the guest's access.
 */
#include "lapic.h"

#include <string.h>

#include "../bootinfo.h"

#define REG_ID		0x020
#define REG_VERSION	0x030
#define REG_TPR		0x080
#define REG_APR		0x090
#define REG_PPR		0x0a0
#define REG_EOI		0x0b0
#define REG_RRD		0x0c0
#define REG_LDR		0x0d0
#define REG_DFR		0x0e0
#define REG_SVR		0x0f0
#define REG_ISR		0x100
#define REG_TMR		0x180
#define REG_IRR		0x200
#define REG_ESR		0x280
#define REG_ICR_LO	0x300
#define REG_ICR_HI	0x310
#define REG_LVT0	0x320	/* timer; the others follow at 16-byte stride */
#define REG_TIMER_ICR	0x380
#define REG_TIMER_CCR	0x390
#define REG_TIMER_DCR	0x3e0

#define LAPIC_VERSION	0x00050014u	/* integrated APIC, max LVT index 5 */

enum { LVT_TIMER, LVT_THERMAL, LVT_PERF, LVT_LINT0, LVT_LINT1, LVT_ERROR, LVT_N };

#define LVT_MASKED		(1u << 16)
#define LVT_TIMER_PERIODIC	(1u << 17)
#define LVT_DM_SHIFT		8
#define LVT_DM_EXTINT		7u

#define SVR_ENABLE		(1u << 8)

#define ESR_SEND_ACCEPT		(1u << 2)
#define ESR_SEND_ILLEGAL_VEC	(1u << 5)
#define ESR_RECV_ILLEGAL_VEC	(1u << 6)

#define ICR_DELIVERY_STATUS	(1u << 12)
#define ICR_DEST_LOGICAL	(1u << 11)
#define ICR_WRITABLE		0x000ccfffu
#define ICR_SH_NONE		0
#define ICR_SH_SELF		1
#define ICR_SH_ALL_INCL		2
#define ICR_SH_ALL_EXCL		3
#define ICR_DM_FIXED		0
#define ICR_DM_LOWEST		1

/* Writable bits of each LVT entry (read-only status bits excluded). */
static const uint32_t lvt_writable[LVT_N] = {
	[LVT_TIMER]   = 0x000700ff, /* vector, mask, mode (2 bits) */
	[LVT_THERMAL] = 0x000107ff, /* vector, delivery mode, mask */
	[LVT_PERF]    = 0x000107ff,
	[LVT_LINT0]   = 0x0001a7ff, /* + polarity, trigger mode */
	[LVT_LINT1]   = 0x0001a7ff,
	[LVT_ERROR]   = 0x000100ff,
};

static inline bool bit_test(const uint32_t *bm, unsigned v)
{
	return bm[v >> 5] & (1u << (v & 31));
}

static inline void bit_set(uint32_t *bm, unsigned v)
{
	bm[v >> 5] |= 1u << (v & 31);
}

static inline void bit_clear(uint32_t *bm, unsigned v)
{
	bm[v >> 5] &= ~(1u << (v & 31));
}

/* Highest vector set in a 256-bit map, or -1. */
static int highest_bit(const uint32_t *bm)
{
	for (int i = 7; i >= 0; i--)
		if (bm[i])
			return i * 32 + 31 - __builtin_clz(bm[i]);
	return -1;
}

static bool sw_enabled(const struct lapic_state *s)
{
	return s->svr & SVR_ENABLE;
}

static uint32_t ppr(const struct lapic_state *s)
{
	int isrv = highest_bit(s->isr);
	uint32_t isr_class = isrv < 0 ? 0 : (uint32_t)isrv & 0xf0;

	if ((s->tpr & 0xf0) >= isr_class)
		return s->tpr & 0xff;
	return isr_class;
}

static uint32_t apr(const struct lapic_state *s)
{
	int irrv = highest_bit(s->irr), isrv = highest_bit(s->isr);
	uint32_t irr_class = irrv < 0 ? 0 : (uint32_t)irrv & 0xf0;
	uint32_t isr_class = isrv < 0 ? 0 : (uint32_t)isrv & 0xf0;
	uint32_t tpr_class = s->tpr & 0xf0, m;

	if (tpr_class >= irr_class && tpr_class > isr_class)
		return s->tpr & 0xff;
	m = tpr_class > isr_class ? tpr_class : isr_class;
	return m > irr_class ? m : irr_class;
}

/*
 * Record an error.  ESR itself only changes when the guest writes it (the
 * errors collected since the last write are latched then); the error LVT
 * raises its interrupt now, unless masked.  An illegal vector in the error
 * LVT itself is dropped silently rather than recursing.
 */
static void raise_error(struct lapic *l, uint32_t bits)
{
	struct lapic_state *s = &l->state;
	uint32_t lvt = s->lvt[LVT_ERROR];
	uint8_t vec = lvt & 0xff;

	s->esr_pending |= bits;
	if (!(lvt & LVT_MASKED) && vec >= 16 && sw_enabled(s)) {
		bit_set(s->irr, vec);
		bit_clear(s->tmr, vec);
	}
}

void lapic_deliver(struct lapic *l, uint8_t vector, bool level_triggered)
{
	struct lapic_state *s = &l->state;

	if (vector < 16) {
		raise_error(l, ESR_RECV_ILLEGAL_VEC);
		return;
	}
	/* A software-disabled APIC does not accept fixed interrupts (as KVM). */
	if (!sw_enabled(s))
		return;
	bit_set(s->irr, vector);
	if (level_triggered)
		bit_set(s->tmr, vector);
	else
		bit_clear(s->tmr, vector);
}

int lapic_pending_vector(const struct lapic *l)
{
	const struct lapic_state *s = &l->state;
	int v = highest_bit(s->irr);

	if (v < 0 || ((uint32_t)v & 0xf0) <= (ppr(s) & 0xf0))
		return -1;
	return v;
}

void lapic_accept(struct lapic *l, uint8_t vector)
{
	struct lapic_state *s = &l->state;

	if (!bit_test(s->irr, vector))
		return;
	bit_clear(s->irr, vector);
	bit_set(s->isr, vector);
}

bool lapic_accepts_pic(const struct lapic *l)
{
	uint32_t lint0 = l->state.lvt[LVT_LINT0];

	return !(lint0 & LVT_MASKED) &&
	       ((lint0 >> LVT_DM_SHIFT) & 7) == LVT_DM_EXTINT;
}

static void eoi(struct lapic *l)
{
	struct lapic_state *s = &l->state;
	int v = highest_bit(s->isr);

	if (v < 0)
		return;
	bit_clear(s->isr, (unsigned)v);
	if (bit_test(s->tmr, (unsigned)v) && l->eoi_cb)
		l->eoi_cb(l->eoi_ctx, (uint8_t)v);
}

/* ---- timer ---- */

/* Divide configuration register bits 0, 1, 3 -> divisor 1..128. */
static uint64_t timer_divisor(const struct lapic_state *s)
{
	uint32_t v = (s->timer_divide & 3) | ((s->timer_divide >> 1) & 4);

	return v == 7 ? 1 : 2ull << v;
}

/* Virtual nanoseconds for `ticks` timer ticks at the current divisor. */
static uint64_t ticks_to_ns(const struct lapic_state *s, uint64_t ticks)
{
	unsigned __int128 ns = (unsigned __int128)ticks * timer_divisor(s) *
			       1000000000ull / LAPIC_TIMER_HZ;

	return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

/* Whole timer ticks in `ns` virtual nanoseconds at the current divisor. */
static uint64_t ns_to_ticks(const struct lapic_state *s, uint64_t ns)
{
	return (uint64_t)((unsigned __int128)ns * LAPIC_TIMER_HZ /
			  (1000000000ull * timer_divisor(s)));
}

static void timer_arm(struct lapic *l, uint64_t deadline)
{
	l->state.timer_deadline = deadline;
	l->state.timer_armed = 1;
	vtimer_arm(&l->timer, deadline);
}

static void timer_disarm(struct lapic *l)
{
	l->state.timer_armed = 0;
	vtimer_disarm(&l->timer);
}

void lapic_state_restored(struct lapic *l)
{
	if (l->state.timer_armed)
		vtimer_arm(&l->timer, l->state.timer_deadline);
	else
		vtimer_disarm(&l->timer);
}

static bool timer_periodic(const struct lapic_state *s)
{
	/* Mode 0 one-shot, 1 periodic; TSC-deadline (2) and 3 act as one-shot. */
	return ((s->lvt[LVT_TIMER] >> 17) & 3) == 1;
}

/* The armed expiry at s->timer_deadline has been reached at `now`. */
static void timer_expire(struct lapic *l, uint64_t now)
{
	struct lapic_state *s = &l->state;
	uint32_t lvt = s->lvt[LVT_TIMER];
	uint64_t period, next;

	if (!(lvt & LVT_MASKED))
		lapic_deliver(l, lvt & 0xff, false);

	if (!timer_periodic(s) || s->timer_initial == 0) {
		timer_disarm(l);
		return;
	}
	/*
	 * Periodic: the next boundary strictly after `now`.  Periods missed
	 * while the run loop was not polling are dropped, not replayed as a
	 * burst of interrupts (which the guest could not tell apart anyway:
	 * IRR holds one bit per vector).
	 */
	period = ticks_to_ns(s, s->timer_initial);
	if (period == 0)
		period = 1;
	next = s->timer_deadline + period;
	if (next <= now)
		next = s->timer_deadline + ((now - s->timer_deadline) / period + 1) * period;
	s->timer_start_ns = next - period;
	timer_arm(l, next);
}

static void timer_fire(void *dev, uint64_t now)
{
	struct lapic *l = dev;

	if (l->state.timer_armed && l->state.timer_deadline <= now)
		timer_expire(l, now);
	else
		lapic_state_restored(l);	/* stale vtimer: resynchronise */
}

/* Take a time sample, processing an expiry that is already due. */
static uint64_t timer_now(struct lapic *l)
{
	uint64_t now = nd_clock_ns(l->nd);

	if (l->state.timer_armed && l->state.timer_deadline <= now)
		timer_expire(l, now);
	return now;
}

/* Is the counter counting (so that its value depends on time)? */
static bool timer_running(const struct lapic_state *s)
{
	return s->timer_initial != 0 && s->timer_armed;
}

/* Current count at `now`, for a running timer. */
static uint32_t timer_count_at(const struct lapic_state *s, uint64_t now)
{
	/* Unsigned wrap-around: see timer_write_divide(). */
	uint64_t ticks = ns_to_ticks(s, now - s->timer_start_ns);

	if (timer_periodic(s))
		ticks %= s->timer_initial;
	else if (ticks >= s->timer_initial)
		return 0;
	return s->timer_initial - (uint32_t)ticks;
}

static uint32_t timer_read_current(struct lapic *l)
{
	uint64_t now;

	/* A stopped or expired one-shot timer reads 0 whatever the time. */
	if (!timer_running(&l->state))
		return 0;
	now = timer_now(l);
	if (!timer_running(&l->state))
		return 0;
	return timer_count_at(&l->state, now);
}

static void timer_write_initial(struct lapic *l, uint32_t v)
{
	struct lapic_state *s = &l->state;
	uint64_t now = 0, period;

	/*
	 * An expiry of the old count that is already due happens first.  A
	 * stopped timer needs no time sample to be stopped again.
	 */
	if (v != 0 || timer_running(s))
		now = timer_now(l);
	s->timer_initial = v;
	if (v == 0) {
		timer_disarm(l);
		return;
	}
	s->timer_start_ns = now;
	period = ticks_to_ns(s, v);
	timer_arm(l, now + period < now ? UINT64_MAX : now + period);
}

static void timer_write_divide(struct lapic *l, uint32_t v)
{
	struct lapic_state *s = &l->state;
	uint64_t now, remaining, done;

	v &= 0xb;
	if (v == s->timer_divide)
		return;
	if (!timer_running(s)) {
		s->timer_divide = v;
		return;
	}
	now = timer_now(l);
	if (!timer_running(s)) {
		s->timer_divide = v;
		return;
	}
	/*
	 * Keep the count where it is and run the rest of the period at the
	 * new rate.  The period's virtual start is moved so that
	 * timer_count_at() gives the same count now; it may lie before time 0,
	 * which the unsigned (modulo 2^64) subtraction there handles.
	 */
	remaining = timer_count_at(s, now);
	done = s->timer_initial - remaining;
	s->timer_divide = v;
	s->timer_start_ns = now - ticks_to_ns(s, done);
	timer_arm(l, now + ticks_to_ns(s, remaining));
}

static void write_lvt(struct lapic *l, int idx, uint32_t v)
{
	struct lapic_state *s = &l->state;
	uint32_t nv = v & lvt_writable[idx];

	/* A software-disabled APIC keeps every LVT entry masked. */
	if (!sw_enabled(s))
		nv |= LVT_MASKED;

	/*
	 * A timer mode change decides what the pending expiry does: let an
	 * expiry that is already due happen under the old mode first.
	 */
	if (idx == LVT_TIMER && timer_running(s) &&
	    ((nv ^ s->lvt[idx]) & (3u << 17)))
		timer_now(l);
	s->lvt[idx] = nv;
}

/* ---- IPIs ---- */

static bool ipi_targets_self(const struct lapic_state *s, uint32_t lo, uint32_t hi)
{
	uint8_t dest = hi >> 24;

	switch ((lo >> 18) & 3) {
	case ICR_SH_SELF:
	case ICR_SH_ALL_INCL:
		return true;
	case ICR_SH_ALL_EXCL:
		return false;
	}
	if (!(lo & ICR_DEST_LOGICAL))
		return dest == 0xff || dest == (s->id >> 24);
	if (dest == 0xff)
		return true;
	if ((s->dfr >> 28) == 0xf)	/* flat model */
		return (s->ldr >> 24) & dest;
	/* cluster model: same cluster, overlapping member bits */
	return (dest >> 4) == (s->ldr >> 28) && (dest & (s->ldr >> 24) & 0xf);
}

static void send_ipi(struct lapic *l)
{
	struct lapic_state *s = &l->state;
	uint32_t lo = s->icr_lo;
	uint32_t mode = (lo >> 8) & 7;
	uint8_t vec = lo & 0xff;

	if (mode != ICR_DM_FIXED && mode != ICR_DM_LOWEST) {
		/* NMI, SMI, INIT, SIPI to a single CPU: not modelled. */
		raise_error(l, ESR_SEND_ACCEPT);
		return;
	}
	if (vec < 16) {
		raise_error(l, ESR_SEND_ILLEGAL_VEC);
		return;
	}
	if (!ipi_targets_self(s, lo, s->icr_hi)) {
		raise_error(l, ESR_SEND_ACCEPT);
		return;
	}
	lapic_deliver(l, vec, false);
}

/* ---- registers ---- */

static uint32_t reg_read(struct lapic *l, uint32_t off)
{
	struct lapic_state *s = &l->state;

	if (off >= REG_ISR && off < REG_ISR + 0x80)
		return s->isr[(off - REG_ISR) >> 4];
	if (off >= REG_TMR && off < REG_TMR + 0x80)
		return s->tmr[(off - REG_TMR) >> 4];
	if (off >= REG_IRR && off < REG_IRR + 0x80)
		return s->irr[(off - REG_IRR) >> 4];
	if (off >= REG_LVT0 && off < REG_LVT0 + LVT_N * 0x10)
		return s->lvt[(off - REG_LVT0) >> 4];

	switch (off) {
	case REG_ID:		return s->id;
	case REG_VERSION:	return LAPIC_VERSION;
	case REG_TPR:		return s->tpr;
	case REG_APR:		return apr(s);
	case REG_PPR:		return ppr(s);
	case REG_LDR:		return s->ldr;
	case REG_DFR:		return s->dfr;
	case REG_SVR:		return s->svr;
	case REG_ESR:		return s->esr;
	case REG_ICR_LO:	return s->icr_lo;
	case REG_ICR_HI:	return s->icr_hi;
	case REG_TIMER_ICR:	return s->timer_initial;
	case REG_TIMER_CCR:	return timer_read_current(l);
	case REG_TIMER_DCR:	return s->timer_divide;
	default:		return 0; /* EOI, RRD, reserved */
	}
}

static void reg_write(struct lapic *l, uint32_t off, uint32_t v)
{
	struct lapic_state *s = &l->state;

	if (off >= REG_LVT0 && off < REG_LVT0 + LVT_N * 0x10) {
		write_lvt(l, (off - REG_LVT0) >> 4, v);
		return;
	}

	switch (off) {
	case REG_ID:
		s->id = v & 0xff000000;
		break;
	case REG_TPR:
		s->tpr = v & 0xff;
		break;
	case REG_EOI:
		eoi(l);
		break;
	case REG_LDR:
		s->ldr = v & 0xff000000;
		break;
	case REG_DFR:
		s->dfr = (v & 0xf0000000) | 0x0fffffff;
		break;
	case REG_SVR:
		s->svr = v & 0x3ff;
		if (!sw_enabled(s))
			for (int i = 0; i < LVT_N; i++)
				s->lvt[i] |= LVT_MASKED;
		break;
	case REG_ESR:
		s->esr = s->esr_pending;
		s->esr_pending = 0;
		break;
	case REG_ICR_LO:
		/* Delivery is instantaneous: the status bit always reads idle. */
		s->icr_lo = v & ICR_WRITABLE & ~ICR_DELIVERY_STATUS;
		send_ipi(l);
		break;
	case REG_ICR_HI:
		s->icr_hi = v & 0xff000000;
		break;
	case REG_TIMER_ICR:
		timer_write_initial(l, v);
		break;
	case REG_TIMER_DCR:
		timer_write_divide(l, v);
		break;
	default:
		/* Read-only and reserved registers: writes are ignored. */
		break;
	}
}

/*
 * Only aligned 32-bit accesses to the first dword of a 16-byte register slot
 * act, as on hardware; anything else reads as 0 and is dropped on write.
 */
static void lapic_mmio_read(void *dev, uint64_t offset, uint8_t *data, unsigned size)
{
	uint32_t v = 0;

	if (size == 4 && (offset & 0xf) == 0)
		v = reg_read(dev, (uint32_t)offset);
	memset(data, 0, size);
	if (size == 4)
		bus_le_put(data, 4, v);
}

static void lapic_mmio_write(void *dev, uint64_t offset, const uint8_t *data, unsigned size)
{
	if (size == 4 && (offset & 0xf) == 0)
		reg_write(dev, (uint32_t)offset, (uint32_t)bus_le_get(data, 4));
}

const struct bus_ops lapic_ops = {
	.read = lapic_mmio_read,
	.write = lapic_mmio_write,
};

void lapic_init(struct lapic *l, struct nd *nd, struct vtimer_set *timers,
		void (*eoi_cb)(void *ctx, uint8_t vector), void *eoi_ctx)
{
	struct lapic_state *s = &l->state;

	memset(l, 0, sizeof(*l));
	l->nd = nd;
	l->eoi_cb = eoi_cb;
	l->eoi_ctx = eoi_ctx;

	/* Power-on state of QEMU's BSP (virtual-wire mode through LINT0). */
	s->dfr = 0xffffffff;
	s->svr = 0xff;
	for (int i = 0; i < LVT_N; i++)
		s->lvt[i] = LVT_MASKED;
	s->lvt[LVT_LINT0] = LVT_DM_EXTINT << LVT_DM_SHIFT;

	vtimer_init(&l->timer, "lapic-timer", timer_fire, l);
	if (timers)
		vtimer_set_add(timers, &l->timer);
}

int lapic_register(struct lapic *l, struct bus *mmio, uint64_t base)
{
	return bus_register(mmio, base, LAPIC_MMIO_SIZE, &lapic_ops, l, "lapic");
}
