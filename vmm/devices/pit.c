/*
 * pit.c - 8254 programmable interval timer and port 0x61 (see pit.h).
 *
 * A channel does not tick: it remembers when its count was loaded
 * (load_time_ns) and how many ticks it had counted before that moment
 * (ticks_before, non-zero only after the gate paused it), and computes its
 * count and OUT from the elapsed ticks d = ticks_before +
 * floor((now - load_time_ns) * PIT_HZ / 1e9) whenever the guest looks.  The
 * clock is read (nd_clock_ns, a recorded event) only when the answer really
 * depends on time: a read of a running counter, a status latch or port 0x61
 * read of a running channel, and loading a count into a channel that starts
 * counting at once.  One access reads the clock at most once.
 *
 * With count N (1..65536; 0 written means 65536), the elapsed-tick model is:
 *   mode 0, 4:  count = (N - d) mod 2^16 (wraps after terminal count);
 *               mode 0 OUT = d >= N; mode 4 OUT is low only at d == N.
 *   mode 1, 5:  as 0 and 4, but only after a gate rising edge (trigger);
 *               on channels 0 and 1 the gate is tied high, so they never
 *               start, as on a PC.
 *   mode 2:     count = N - (d mod N); OUT low while the count is 1.
 *   mode 3:     count = N - (2d mod N); OUT high for the first
 *               ceil(N/2) ticks of each period.  (Exact for even N; for odd
 *               N the readable count sequence is approximate.)
 * Channel 0's rising output edges (mode 0: at d = N; modes 2 and 3: at every
 * d = kN) pulse IRQ 0 from a vtimer, which re-arms for the next period
 * boundary strictly after the firing time: missed periods are dropped.
 *
 * Gate (channel 2: port 0x61 bit 0; channels 0, 1: always high): in modes 0
 * and 4 a low gate pauses counting; in modes 2 and 3 it stops counting and
 * forces OUT high, and the rising edge restarts the count from N; in modes 1
 * and 5 the rising edge (re)starts the count.
 *
 * Simplifications (documented): a count is loaded at the moment it is
 * written, not on the next CLK; a new count written in mode 2 or 3 restarts
 * the period at once rather than at the end of the current one; a new count
 * in mode 1 or 5 waits for the next trigger; BCD mode is accepted (and
 * reported in the status byte) but counts in binary, 0 meaning 65536; modes
 * 1, 4 and 5 raise no IRQ.  After reset no count is loaded: every channel is
 * in mode 3, lobyte/hibyte, and no IRQ is raised until the guest writes a
 * count (a BIOS would have started channel 0; detvm's guests boot without
 * one).  Reads of the control port return 0xff (write-only, floating bus).
 *
 * Wider port accesses are split into byte accesses to successive ports, low
 * byte first, as the ISA bus does for an 8-bit device.
 */
#include "pit.h"

#include <string.h>

#include "../bootinfo.h"

#define NS_PER_SEC 1000000000ULL
#define PORTB_WRITABLE 0x0f /* gate 2, speaker data, parity/IOCHK enables */
#define PORTB_REFRESH  0x10
#define PORTB_OUT2     0x20

/* The clock, read at most once per guest access and only if needed. */
struct clk {
	struct nd *nd;
	bool have;
	uint64_t now;
};

static uint64_t clk_now(struct clk *k)
{
	if (!k->have) {
		k->now = nd_clock_ns(k->nd);
		k->have = true;
	}
	return k->now;
}

static uint64_t ns_to_ticks(uint64_t ns)
{
	return (uint64_t)((unsigned __int128)ns * PIT_HZ / NS_PER_SEC);
}

/* The smallest ns such that ns_to_ticks(ns) >= ticks (saturating). */
static uint64_t ticks_to_ns_ceil(uint64_t ticks)
{
	unsigned __int128 ns = ((unsigned __int128)ticks * NS_PER_SEC + PIT_HZ - 1) / PIT_HZ;

	return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

/* Is the counting element decrementing right now? */
static bool counting(const struct pit_channel_state *c)
{
	if (!c->armed)
		return false;
	if (c->mode == 1 || c->mode == 5)
		return c->triggered;
	return c->gate;
}

/* Ticks counted since the count was loaded; reads the clock only if running. */
static uint64_t elapsed(const struct pit_channel_state *c, struct clk *k)
{
	uint64_t now;

	if (!counting(c))
		return c->ticks_before;
	now = clk_now(k);
	return c->ticks_before +
	       (now > c->load_time_ns ? ns_to_ticks(now - c->load_time_ns) : 0);
}

static bool started(const struct pit_channel_state *c)
{
	return c->armed && !((c->mode == 1 || c->mode == 5) && !c->triggered);
}

static uint16_t current_count(const struct pit_channel_state *c, struct clk *k)
{
	uint64_t n = c->reload, d;

	if (!started(c))
		return (uint16_t)n;
	d = elapsed(c, k);
	switch (c->mode) {
	case 2:
		return (uint16_t)(n - d % n);
	case 3:
		return (uint16_t)(n - (2 * (d % n)) % n);
	default: /* 0, 1, 4, 5: keeps counting down through 0 */
		return (uint16_t)(n - d);
	}
}

static int current_out(const struct pit_channel_state *c, struct clk *k)
{
	uint64_t n = c->reload, d;

	if (!c->armed)
		return c->mode != 0; /* mode 0 starts low, the others high */
	if (!started(c))
		return 1;
	if ((c->mode == 2 || c->mode == 3) && !c->gate)
		return 1;
	d = elapsed(c, k);
	switch (c->mode) {
	case 0:
	case 1:
		return d >= n;
	case 2:
		return d % n != n - 1;
	case 3:
		return d % n < (n + 1) / 2;
	default: /* 4, 5: a one-tick low strobe at terminal count */
		return d != n;
	}
}

/*
 * Arm channel 0's vtimer for its next rising output edge, or disarm it.
 * `k` is only consulted if the channel is counting.
 */
static void update_timer(struct pit *p, struct clk *k)
{
	struct pit_channel_state *c = &p->state.ch[0];
	uint64_t d, n = c->reload, target = 0;

	if (counting(c)) {
		d = elapsed(c, k);
		if (c->mode == 0 && d < n)
			target = n;
		else if (c->mode == 2 || c->mode == 3)
			target = (d / n + 1) * n;
	}
	if (!target) {
		p->state.next_irq_ns = 0;
		vtimer_disarm(&p->timer);
		return;
	}
	p->state.next_irq_ns = add_sat(c->load_time_ns,
				       ticks_to_ns_ceil(target - c->ticks_before));
	vtimer_arm(&p->timer, p->state.next_irq_ns);
}

/* Channel 0's vtimer: an output rising edge is due. */
static void pit_fire(void *dev, uint64_t now)
{
	struct pit *p = dev;
	struct pit_channel_state *c = &p->state.ch[0];
	struct clk k = { .nd = p->nd, .have = true, .now = now };

	p->state.next_irq_ns = 0;
	if (!counting(c))
		return;
	if (c->mode == 2 || c->mode == 3 ||
	    (c->mode == 0 && elapsed(c, &k) >= c->reload))
		irq_pulse(&p->irq);
	update_timer(p, &k);
}

static void load_count(struct pit *p, int ch, uint32_t count, struct clk *k)
{
	struct pit_channel_state *c = &p->state.ch[ch];

	c->reload = count ? count : 65536;
	c->ticks_before = 0;
	c->triggered = 0;
	c->armed = 1;
	c->null_count = 0;
	/* Only a channel that starts counting now needs to know when. */
	if (counting(c))
		c->load_time_ns = clk_now(k);
	if (ch == 0)
		update_timer(p, k);
}

static void stop_channel(struct pit *p, int ch)
{
	struct pit_channel_state *c = &p->state.ch[ch];

	c->armed = 0;
	c->triggered = 0;
	c->ticks_before = 0;
	if (ch == 0)
		update_timer(p, NULL); /* not counting: the clock is not used */
}

static void latch_count(struct pit_channel_state *c, struct clk *k)
{
	if (c->latched)
		return; /* a second latch before the read is ignored */
	c->latch_value = current_count(c, k);
	c->latched = c->rw_mode == 3 ? 2 : 1;
}

static void latch_status(struct pit_channel_state *c, struct clk *k)
{
	if (c->status_latched)
		return;
	c->status = (uint8_t)(current_out(c, k) << 7 | c->null_count << 6 |
			      c->rw_mode << 4 | c->mode << 1 | c->bcd);
	c->status_latched = 1;
}

static void write_control(struct pit *p, uint8_t val, struct clk *k)
{
	unsigned sc = val >> 6, rw = (val >> 4) & 3;
	struct pit_channel_state *c;

	if (sc == 3) { /* read-back command */
		for (int i = 0; i < 3; i++) {
			if (!(val & (2 << i)))
				continue;
			if (!(val & 0x20))
				latch_count(&p->state.ch[i], k);
			if (!(val & 0x10))
				latch_status(&p->state.ch[i], k);
		}
		return;
	}
	c = &p->state.ch[sc];
	if (rw == 0) {
		latch_count(c, k);
		return;
	}
	/* A control word resets the channel's logic; counting waits for a count. */
	c->rw_mode = rw;
	c->mode = (val >> 1) & 7;
	if (c->mode >= 6) /* x11 is mode 2 or 3 */
		c->mode -= 4;
	c->bcd = val & 1;
	c->write_lsb_next = 1;
	c->read_lsb_next = 1;
	c->latched = 0;
	c->status_latched = 0;
	c->null_count = 1;
	stop_channel(p, sc);
}

static void write_counter(struct pit *p, int ch, uint8_t val, struct clk *k)
{
	struct pit_channel_state *c = &p->state.ch[ch];

	switch (c->rw_mode) {
	case 1:
		load_count(p, ch, val, k);
		break;
	case 2:
		load_count(p, ch, (uint32_t)val << 8, k);
		break;
	default:
		if (c->write_lsb_next) {
			c->write_latch_lsb = val;
			c->write_lsb_next = 0;
			/* In mode 0 the first byte stops the count (OUT low). */
			if (c->mode == 0)
				stop_channel(p, ch);
		} else {
			c->write_lsb_next = 1;
			load_count(p, ch, c->write_latch_lsb | (uint32_t)val << 8, k);
		}
		break;
	}
}

static uint8_t read_counter(struct pit_channel_state *c, struct clk *k)
{
	uint16_t count;
	uint8_t val;

	if (c->status_latched) {
		c->status_latched = 0;
		return c->status;
	}
	if (c->latched) {
		if (c->rw_mode == 2 || (c->rw_mode == 3 && c->latched == 1))
			val = c->latch_value >> 8;
		else
			val = c->latch_value & 0xff;
		c->latched--;
		if (c->rw_mode != 3)
			c->latched = 0;
		return val;
	}
	count = current_count(c, k);
	switch (c->rw_mode) {
	case 1:
		return count & 0xff;
	case 2:
		return count >> 8;
	default:
		c->read_lsb_next = !c->read_lsb_next;
		return c->read_lsb_next ? count >> 8 : count & 0xff;
	}
}

/* Channel 2's gate (port 0x61 bit 0). */
static void set_gate(struct pit *p, int ch, uint8_t gate, struct clk *k)
{
	struct pit_channel_state *c = &p->state.ch[ch];
	uint64_t now;

	if (c->gate == gate)
		return;
	if (c->armed) {
		switch (c->mode) {
		case 0:
		case 4:
		case 2:
		case 3:
			now = clk_now(k);
			if (!gate) {
				/* pause (0, 4) or stop (2, 3): keep the count */
				c->ticks_before = elapsed(c, k);
			} else if (c->mode == 2 || c->mode == 3) {
				c->ticks_before = 0; /* restart from N */
			}
			c->load_time_ns = now;
			break;
		default: /* 1, 5: a rising edge triggers */
			if (gate) {
				c->load_time_ns = clk_now(k);
				c->ticks_before = 0;
				c->triggered = 1;
			}
			break;
		}
	}
	c->gate = gate;
	if (ch == 0)
		update_timer(p, k);
}

static void pit_read(void *dev, uint64_t offset, uint8_t *data, unsigned size)
{
	struct pit *p = dev;
	struct clk k = { .nd = p->nd };

	for (unsigned i = 0; i < size; i++) {
		unsigned port = (offset + i) & 3;

		data[i] = port == 3 ? 0xff : read_counter(&p->state.ch[port], &k);
	}
}

static void pit_write(void *dev, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct pit *p = dev;
	struct clk k = { .nd = p->nd };

	for (unsigned i = 0; i < size; i++) {
		unsigned port = (offset + i) & 3;

		if (port == 3)
			write_control(p, data[i], &k);
		else
			write_counter(p, port, data[i], &k);
	}
}

static void portb_read(void *dev, uint64_t offset, uint8_t *data, unsigned size)
{
	struct pit *p = dev;
	struct clk k = { .nd = p->nd };

	(void)offset;
	for (unsigned i = 0; i < size; i++) {
		/*
		 * The refresh bit toggles on each read rather than with
		 * time: guests only wait for it to change, and this way the
		 * read needs no clock.
		 */
		data[i] = (p->state.speaker & PORTB_WRITABLE) |
			  (p->state.refresh ? PORTB_REFRESH : 0) |
			  (current_out(&p->state.ch[2], &k) ? PORTB_OUT2 : 0);
		p->state.refresh ^= 1;
	}
}

static void portb_write(void *dev, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct pit *p = dev;
	struct clk k = { .nd = p->nd };

	(void)offset;
	for (unsigned i = 0; i < size; i++) {
		p->state.speaker = data[i] & PORTB_WRITABLE;
		set_gate(p, 2, data[i] & 1, &k);
	}
}

const struct bus_ops pit_ops = { .read = pit_read, .write = pit_write };
const struct bus_ops pit_portb_ops = { .read = portb_read, .write = portb_write };

void pit_init(struct pit *p, struct nd *nd, struct irq_line irq,
	      struct vtimer_set *timers)
{
	memset(&p->state, 0, sizeof(p->state));
	for (int i = 0; i < 3; i++) {
		struct pit_channel_state *c = &p->state.ch[i];

		c->reload = 65536;
		c->mode = 3;
		c->rw_mode = 3;
		c->gate = i != 2; /* channel 2's gate is port 0x61 bit 0 */
		c->write_lsb_next = 1;
		c->read_lsb_next = 1;
	}
	p->nd = nd;
	p->irq = irq;
	vtimer_init(&p->timer, "pit", pit_fire, p);
	if (timers)
		vtimer_set_add(timers, &p->timer);
}

int pit_register(struct pit *p, struct bus *pio)
{
	int rc = bus_register(pio, 0x40, 4, &pit_ops, p, "pit");

	if (!rc)
		rc = bus_register(pio, 0x61, 1, &pit_portb_ops, p, "port-b");
	return rc;
}

void pit_state_restored(struct pit *p)
{
	if (p->state.next_irq_ns)
		vtimer_arm(&p->timer, p->state.next_irq_ns);
	else
		vtimer_disarm(&p->timer);
}
