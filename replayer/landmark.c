/* landmark.c - see landmark.h. */
#include "landmark.h"
#include "insn_peek.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>

#include "vmm/nd_live.h"
#include "vmm/vcpu_state.h"

/* Single-step zones: how close the free run aims before stepping. */
#define FAST_ZONE      32
#define CAREFUL_ZONE   1000
/*
 * FAST, until the speed is learned: CAREFUL's aim, stepping only the last
 * 128.  A round armed for rem * 200 ns overshoots only if its timer fires
 * more than rem * 200 ns late (the guest needs >= 400 ns an instruction),
 * 25 us here; short rounds measured on memloop were never more than about
 * 4 us late.  Stepping CAREFUL's last 1000 instead cost the first 2-4
 * forced exits of every replay 9 ms each, and where forced exits are fewer
 * than 1000 instructions apart no round was ever timed, so nothing was
 * learned and everything was stepped: memloop recordings with 355 forced
 * exits replayed in 2.2 s (213,000 single steps) instead of 0.46 s.
 */
#define LEARN_ZONE     128
/* CAREFUL's speed: half of the remaining time at 400 ns an instruction,
 * the fastest guest speed measured on the insn_emulation hosts. */
#define CAREFUL_NS_PER_INSN 200
/* A measured speed below this is treated as this (a sanity floor; the
 * hosts with this counter run CPL0 code at >= 400 ns an instruction). */
#define FLOOR_PS_PER_INSN 50000
/* Rounds shorter than this teach nothing about the speed: the fixed cost
 * of entering and leaving the guest dominates them. */
#define LEARN_MIN_INSNS 64
/* Of a round's wall time, at least this much is not the guest running
 * (measured: a round whose timer fires before the guest starts takes
 * 23 us; a 53 us round ran the guest for 37 us of its 65). */
#define ROUND_OVERHEAD_NS 20000
/* Of that, the part before the guest starts running after the timer was
 * armed (measured: about 16 us); added to a round's aim. */
#define ENTRY_NS 12000
#define LEARN_ROUNDS 8
/* After this many, the fastest speed seen is trusted for a first round
 * aimed 1/8 short of the target rather than half-way. */
#define TRUST_ROUNDS 64
/* A timed round costs about 25 us of entering and leaving the guest. */
#define MIN_RUN_NS 20000
/*
 * A run to a hardware breakpoint on the recorded RIP, instead of a single
 * step (over an IRETQ, or with an event to deliver): stopped by a timer
 * too, after this plus CAREFUL's time for the remaining instructions, so
 * that a guest that never reaches the RIP cannot run on for ever.
 */
#define BP_BACKSTOP_NS 50000

/*
 * The last instructions, run to a hardware breakpoint on the recorded RIP
 * rather than stepped one by one, where that RIP does not recur soon.  A
 * step costs about 12 us here; a breakpoint run costs about one step, the
 * guest's time for what it runs (about 1.25 us an instruction) and a look
 * at the events KVM holds (any vCPU ioctl: 6-9 us).  It stops at the next
 * pass of the RIP: the target if the RIP does not recur before it, else an
 * earlier pass, from which a step moves off the breakpoint (RF does not
 * resume past one on these hosts) and another run follows.  So it pays where the
 * passes are far apart (spin's loop: 15 instructions) and not where they
 * are close (memloop's loops: 2 and 3, where every run would stop a pass
 * early and add two KVM_SET_GUEST_DEBUGs): how far apart they are is
 * learned per RIP, from two passes seen in one approach, and a RIP whose
 * passes come fewer than BP_MIN_PERIOD instructions apart is stepped to.
 * Fewer than BP_MIN_REM instructions are stepped in any case.
 */
#define BP_MIN_REM    4
#define BP_MIN_PERIOD 8

/*
 * Short rounds, within SHORT_REM instructions of the target.  A round
 * costs about 25 us of entering and leaving the guest, a single step about
 * 9.5 us, and the guest runs about 1.25 us an instruction: a round that
 * runs just 4 instructions is already cheaper than stepping them.  What
 * stops aiming close is the error, so it is measured.  Measured on memloop
 * (780 rounds): in rounds armed for under 200 us, the instructions run
 * follow a + b * ns (a about -14, b about 0.8 an us) and never ran more
 * than 3 beyond the fit's median, while they often ran 10-30 fewer (a
 * slow entry); long rounds vary with the guest's speed by +-5%.  So a
 * short round aims to leave a margin: 6, plus the largest excess of the
 * last 64 short rounds over the current fit, plus 8 for every overshoot so
 * far, plus 1/32 of the way.  Only rounds armed for up to 400 us (the
 * short rounds' range) make the fit: with rounds up to 2 ms in it, memloop
 * got a line 40 instructions too high for short rounds (a = +41, b = 0.61
 * against a = -13, b = 0.81), whose aim was then too short to run at all.
 */
#define SHORT_REM          256
#define FIT_MAX_NS         400000   /* longer rounds stay out of the fit */
#define FIT_DECAY          0.97     /* the fit's memory, per round */
#define FIT_MIN_ROUNDS     16
#define FIT_SLOW_MIN       8        /* a round this many + FIT_SLOW_FRAC short */
#define FIT_SLOW_FRAC      0.10     /* of its prediction was slowed down */
#define FIT_SLOW_RESET     8        /* this many such rounds in a row: refit */
#define MARGIN_MIN         6
#define MARGIN_MAX         96
#define MARGIN_PER_OVERSHOOT 8
#define SHORT_MIN_COVER    4        /* a round must be meant to run this many */
#define SHORT_MIN_NS       25000    /* below this a round mostly enters and leaves */

/*
 * Guest debugging: `control` (0: off), with execution breakpoints on
 * bp[0] and bp[1] where non-zero and KVM_GUESTDBG_USE_HW_BP is in it.
 */
static int set_debug(struct vm *vm, uint32_t control, const uint64_t bp[2])
{
	struct kvm_guest_debug dbg;
	memset(&dbg, 0, sizeof(dbg));
	dbg.control = control;
	if (control & KVM_GUESTDBG_USE_HW_BP)
		for (int i = 0; i < 2; i++)
			if (bp[i]) {
				dbg.arch.debugreg[i] = bp[i];
				/* Li, execute, 1 byte (RW and LEN 0). */
				dbg.arch.debugreg[7] |= 1ull << (2 * i);
			}
	return ioctl(vm->kvm.vcpu_fd, KVM_SET_GUEST_DEBUG, &dbg);
}

/* 1 if the vCPU is at `rip` with registers hashing to `regs_hash`, 0 if
 * not, -1 if they cannot be read. */
static int regs_match(struct vm *vm, uint64_t rip, uint64_t regs_hash)
{
	struct kvm_regs regs;
	uint64_t h;
	if (vm_regs(vm, &regs, &h))
		return -1;
	return regs.rip == rip && h == regs_hash;
}

/*
 * An interrupt or exception KVM delivers at the next entry (the replayer
 * injected one at the exit before).  That entry must not be a single step:
 * KVM steps by setting the trap flag, the delivery pushes RFLAGS with it
 * into the guest's interrupt frame, and the guest traps on its own (#DB)
 * after its IRETQ once stepping is off.  Seen on memloop recorded under
 * load, whose forced exit came one instruction after an interrupt was
 * injected: "divergence at exit 821: forced exit reached at RIP 0x102925",
 * the guest's trap handler for vector 1.  Unknown (the ioctl failed) counts
 * as queued: the safe way is only slower.
 */
static bool event_queued(struct vm *vm)
{
	return vm_event_in_flight(vm, true) != 0;
}

/*
 * Registers without an ioctl: with KVM_CAP_SYNC_REGS, KVM copies them into
 * kvm_run at every exit of KVM_RUN.  Every vCPU ioctl costs about 6 us on
 * these hosts (a single step about 9.5), so reading RIP and CS with
 * KVM_GET_REGS and KVM_GET_SREGS before every step would more than double
 * its cost.  1 if this KVM has it, 0 if not.
 */
static bool sync_regs_supported(struct vm *vm)
{
	static int have = -1;
	if (have < 0) {
		int r = ioctl(vm->kvm.vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);
		have = r > 0 && (r & (KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS)) ==
			(KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS);
	}
	return have;
}

/*
 * What the approach to one landmark knows about the code it steps through:
 * whether kvm_run's copy of the registers is from the last KVM_RUN, and the
 * last code pages translated.  A translation is kept for the approach only,
 * a few microseconds of guest time: should the guest change its page
 * tables or code meanwhile, an instruction is misjudged, which costs a
 * breakpoint run too many or lets an INT be stepped (on hardware hosts a
 * divergence, not a silent one; landmark.h), or a PUSHF's image is looked
 * for in the wrong place (found without the flag: left alone; with it,
 * fix_pushf translates again before it writes).
 */
struct code_view {
	bool regs_fresh;
	struct { uint64_t lin, phys; } page[4];  /* code, and the stack */
	unsigned npages, next;
};

static int code_page(struct vm *vm, struct code_view *cv, uint64_t lin_page, uint64_t *phys)
{
	for (unsigned i = 0; i < cv->npages; i++)
		if (cv->page[i].lin == lin_page) {
			*phys = cv->page[i].phys;
			return 0;
		}
	struct kvm_translation tr = { .linear_address = lin_page };
	if (ioctl(vm->kvm.vcpu_fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid)
		return -1;
	*phys = tr.physical_address & ~4095ull;
	cv->page[cv->next].lin = lin_page;
	cv->page[cv->next].phys = *phys;
	cv->next = (cv->next + 1) % 4;
	if (cv->npages < 4)
		cv->npages++;
	return 0;
}

/* The registers as of now: kvm_run's copy if fresh, else from KVM. */
static int view_regs(struct vm *vm, const struct code_view *cv, struct kvm_regs *regs,
		     struct kvm_sregs *sregs)
{
	if (cv->regs_fresh) {
		*regs = vm->kvm.run->s.regs.regs;
		*sregs = vm->kvm.run->s.regs.sregs;
		return 0;
	}
	if (ioctl(vm->kvm.vcpu_fd, KVM_GET_REGS, regs) < 0 ||
	    ioctl(vm->kvm.vcpu_fd, KVM_GET_SREGS, sregs) < 0)
		return -1;
	return 0;
}

/* The linear address of `off` in segment `seg`: its base counts outside
 * 64-bit mode, where offsets are 32 bits (16 in a 16-bit segment). */
static uint64_t linear(const struct kvm_sregs *sregs, const struct kvm_segment *seg, uint64_t off)
{
	if ((sregs->efer & (1u << 10)) && sregs->cs.l)     /* EFER.LMA, 64-bit code */
		return off;
	return (seg->base + (seg->db ? off & 0xffffffffull : off & 0xffff)) & 0xffffffffull;
}

/* Read (or, with `write`, write) `n` bytes at linear address `lin`. */
static int access_linear(struct vm *vm, struct code_view *cv, uint64_t lin, void *buf, size_t n,
			 bool write)
{
	size_t done = 0;

	/* Page by page: the bytes may cross into another page. */
	while (done < n) {
		uint64_t at = lin + done, phys;
		size_t k = 4096 - (at & 4095);
		if (k > n - done)
			k = n - done;
		if (code_page(vm, cv, at & ~4095ull, &phys))
			return done ? (int)done : -1;
		phys += at & 4095;
		if (write ? gm_write(&vm->mem, phys, (uint8_t *)buf + done, k)
			  : gm_read(&vm->mem, phys, (uint8_t *)buf + done, k))
			return done ? (int)done : -1;
		done += k;
	}
	return (int)done;
}

/*
 * The instruction the vCPU executes next, at regs->rip: its kind
 * (insn_peek.h) and length.  INSN_OTHER when its bytes cannot be read (not
 * mapped: it will fault, which no look at its bytes can help with).
 */
static enum insn_kind next_insn(struct vm *vm, struct code_view *cv, const struct kvm_regs *regs,
				const struct kvm_sregs *sregs, size_t *len)
{
	uint8_t b[INSN_MAX_LEN];
	int got = access_linear(vm, cv, linear(sregs, &sregs->cs, regs->rip), b, sizeof(b), false);
	return got > 0 ? insn_peek(b, (size_t)got, len) : INSN_OTHER;
}

/*
 * Clear the trap flag (bit 8) of a flags image whose second byte is at
 * linear address `at`, found there through the approach's translations.
 * Before writing guest memory, translate afresh (a translation kept from
 * earlier in the approach may be stale) and look again.  1 if cleared, 0
 * if the fresh look finds no flag, -1 if the byte cannot be read or
 * written.
 */
static int clear_trap_flag(struct vm *vm, struct code_view *cv, uint64_t at)
{
	uint8_t b;
	cv->npages = cv->next = 0;
	if (access_linear(vm, cv, at, &b, 1, false) != 1)
		return -1;
	if (!(b & 1))
		return 0;
	b &= (uint8_t)~1u;
	return access_linear(vm, cv, at, &b, 1, true) == 1 ? 1 : -1;
}

/*
 * After a single step over the PUSHF at `rip`, `len` bytes long: a hardware
 * CPU stored the step's trap flag (RFLAGS bit 8) in the image it pushed,
 * which an unstepped run (the recording) did not; clear it.  Only if the
 * PUSHF completed (RIP right after it).  The guest's own trap flag cannot
 * be told apart (KVM hides it while stepping); CPL0 guests do not set it.
 * These hosts store the guest's own flags, so here it only ever looks.
 * 1 if the flag was cleared, 0 if there was none, -1 if the stack could not
 * be read or written.
 */
static int fix_pushf(struct vm *vm, struct code_view *cv, uint64_t rip, size_t len)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	uint8_t hi;

	if (view_regs(vm, cv, &regs, &sregs))
		return -1;
	if (regs.rip != rip + len)
		return 0;
	/* Bit 8 is bit 0 of the image's second byte, whatever its size. */
	uint64_t at = linear(&sregs, &sregs.ss, regs.rsp) + 1;
	if (access_linear(vm, cv, at, &hi, 1, false) != 1)
		return -1;
	if (!(hi & 1))
		return 0;
	return clear_trap_flag(vm, cv, at);
}

/*
 * After a single step that moved the stack down: did the stepped
 * instruction fault, with its exception delivered within the step, and
 * does the frame the delivery pushed hold the step's trap flag?  If so,
 * clear it: the handler's IRET would restore it and the guest would take
 * #DB where the recording ran on.  Seen here, not only on hardware: a
 * RDMSR of an unknown MSR stepped as the first step after stepping was
 * turned on (tests/unit/test_landmark.c, test_step_over_fault; a hostile
 * guest's replay printed an unexpected #DB).
 *
 * The frame is found by what it must hold, between the stack pointers
 * after and before the step: the faulting instruction's RIP, its CS, its
 * flags (bar TF and RF) and, in 64-bit mode, its RSP and SS.  A fault
 * taken on another stack (an IST entry, or from CPL3) is not found and
 * left as it is.  `pre` and `psr`: the registers before the step.  1 if
 * a flag was cleared, 0 if none, -1 if the stack could not be read or
 * written.
 */
static int fix_fault_frame(struct vm *vm, struct code_view *cv, const struct kvm_regs *pre,
			   const struct kvm_sregs *psr)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	const uint64_t tf = 1u << 8, rf = 1u << 16;

	if (view_regs(vm, cv, &regs, &sregs))
		return -1;
	if (regs.rsp >= pre->rsp || pre->rsp - regs.rsp > 512)
		return 0;
	bool longmode = (psr->efer & (1u << 10)) && psr->cs.l;
	unsigned w = longmode ? 8 : psr->cs.db ? 4 : 2;  /* slot size */
	unsigned nslots = longmode ? 5 : 3;              /* RIP, CS, RFLAGS[, RSP, SS] */
	uint64_t mask = w == 8 ? ~0ull : (1ull << (8 * w)) - 1;
	uint64_t lo = linear(&sregs, &sregs.ss, regs.rsp);
	size_t span = (size_t)(pre->rsp - regs.rsp);
	uint8_t buf[512];
	if (access_linear(vm, cv, lo, buf, span, false) != (int)span)
		return -1;
	for (size_t at = 0; at + nslots * w <= span; at += w) {
		uint64_t slot[5] = { 0 };
		for (unsigned i = 0; i < nslots; i++)
			memcpy(&slot[i], buf + at + i * w, w);
		if (slot[0] != (pre->rip & mask) || (slot[1] & 0xffff) != psr->cs.selector ||
		    ((slot[2] ^ pre->rflags) & mask & ~(tf | rf)))
			continue;
		if (longmode && (slot[3] != pre->rsp || (slot[4] & 0xffff) != psr->ss.selector))
			continue;
		if (!(slot[2] & tf))
			return 0;
		return clear_trap_flag(vm, cv, lo + at + 2 * w + 1);
	}
	return 0;
}

int landmark_fix_pushf(struct vm *vm, uint64_t rip, size_t len)
{
	struct code_view cv = { .regs_fresh = false };
	return fix_pushf(vm, &cv, rip, len);
}

/* The short-round fit, in instructions and microseconds; false until it
 * has FIT_MIN_ROUNDS rounds and says that more time runs more. */
static bool fit_ready(const struct landmark_ctl *c, double *a, double *b)
{
	if (c->fitted < FIT_MIN_ROUNDS)
		return false;
	double det = c->sw * c->sxx - c->sx * c->sx;
	if (!(det > 0))
		return false;
	*b = (c->sw * c->sxy - c->sx * c->sy) / det;
	*a = (c->sy - *b * c->sx) / c->sw;
	return *b > 0 && isfinite(*a);
}

/*
 * The margin a short round leaves: how far the recent short rounds ran
 * beyond what the fit predicts for them now.  Measured against the current
 * fit, not the one each round was aimed with: the first fits, from few
 * rounds, are poor (memloop: a slope of 0.6 instruction a us before it
 * settles at 0.8), and their errors kept the margin at 30-60 instructions,
 * all single-stepped, for the next 64 forced exits.
 */
static uint64_t short_margin(const struct landmark_ctl *c)
{
	double a, b, worst = 0;
	if (fit_ready(c, &a, &b))
		for (unsigned i = 0; i < c->nrecent; i++) {
			double r = c->recent[i].ran - (a + b * c->recent[i].us);
			if (r > worst)
				worst = r;
		}
	uint64_t m = MARGIN_MIN + (worst < MARGIN_MAX ? (uint64_t)ceil(worst) : MARGIN_MAX) + c->margin_extra;
	return m > MARGIN_MAX ? MARGIN_MAX : m;
}

/* A timed round armed for `ns` ran `ran` instructions; `short_round`: it
 * was aimed with the fit, whose error the margin is made of. */
static void learn_round(struct landmark_ctl *c, uint64_t ns, uint64_t ran, bool short_round)
{
	double a, b, x = (double)ns / 1000.0, y = (double)ran;
	if (ns > FIT_MAX_NS)
		return;
	if (fit_ready(c, &a, &b)) {
		double pred = a + b * x, r = y - pred;
		if (short_round) {
			c->recent[c->irecent].us = (float)x;
			c->recent[c->irecent].ran = (float)y;
			c->irecent = (c->irecent + 1) % LANDMARK_RESID_N;
			if (c->nrecent < LANDMARK_RESID_N)
				c->nrecent++;
		}
		/*
		 * A round that ran far fewer than predicted was slowed down
		 * (the host preempted us, the entry was slow): it must not
		 * lower the line, since a line too low aims too long.  Only
		 * if the guest stays slower is the fit started afresh.
		 */
		if (r < -(FIT_SLOW_MIN + pred * FIT_SLOW_FRAC)) {
			if (++c->slow_rounds >= FIT_SLOW_RESET) {
				c->sw = c->sx = c->sy = c->sxx = c->sxy = 0;
				c->fitted = 0;
				c->slow_rounds = 0;
			}
			return;
		}
	}
	c->slow_rounds = 0;
	c->sw = c->sw * FIT_DECAY + 1;
	c->sx = c->sx * FIT_DECAY + x;
	c->sy = c->sy * FIT_DECAY + y;
	c->sxx = c->sxx * FIT_DECAY + x * x;
	c->sxy = c->sxy * FIT_DECAY + x * y;
	c->fitted++;
}

/*
 * How long to let the guest run freely towards `rem` more instructions, in
 * ns; 0: close enough, single-step instead.  `local_ps` is the speed
 * measured on the way to this landmark (0 before the first round).
 *
 * FAST measured here (spin, 12,700 instructions between forced exits): the
 * instructions a timed round runs are within about 5% of its aim for long
 * rounds and within about 30 for short ones.  Each round's wall time gives
 * a slow bound of the speed (entering and leaving the guest, and the host
 * preempting us, are in it), so the fastest bound seen is the one to aim
 * with; one slow round must not be trusted, so until LEARN_ROUNDS rounds
 * were measured the careful aim is used.  The first round of a landmark
 * aims at half the way (the code here may be faster than any seen so far);
 * later rounds aim short of the target by 1/16 of the way plus 32, at the
 * fastest of that and the speed measured on the way here.
 */
static uint64_t free_run_ns(const struct landmark_ctl *c, enum landmark_care care, uint64_t rem,
			    uint64_t local_ps, bool *short_round)
{
	*short_round = false;
	switch (care) {
	case LANDMARK_FAST: {
		double a, b;
		if (rem <= SHORT_REM && c->learned >= LEARN_ROUNDS && fit_ready(c, &a, &b)) {
			/* The guest's speed depends on the code it runs: never
			 * aim slower than the fastest speed seen (ps_per_insn),
			 * and leave 1/32 of the way besides the margin. */
			uint64_t m = short_margin(c) + rem / 32;
			double fastest = 1e6 / (double)c->ps_per_insn;
			if (rem < m + SHORT_MIN_COVER)
				return 0;
			double ns = ((double)(rem - m) - a) / (b > fastest ? b : fastest) * 1000.0;
			*short_round = ns >= SHORT_MIN_NS;
			return ns < SHORT_MIN_NS ? 0 : (uint64_t)ns;
		}
		if (rem <= FAST_ZONE)
			return 0;
		if (c->learned < LEARN_ROUNDS)
			return rem <= LEARN_ZONE ? 0 : rem * CAREFUL_NS_PER_INSN;
		uint64_t ns;
		if (!local_ps)
			ns = (c->learned < TRUST_ROUNDS ? rem / 2 : rem - rem / 8 - FAST_ZONE / 2) * c->ps_per_insn / 1000;
		else
			ns = (rem - rem / 16 - FAST_ZONE / 2) * (local_ps < c->ps_per_insn ? local_ps : c->ps_per_insn) / 1000;
		/* Too short to be worth entering and leaving the guest: step. */
		return ns < MIN_RUN_NS ? 0 : ns + ENTRY_NS;
	}
	case LANDMARK_CAREFUL:
		return rem <= CAREFUL_ZONE ? 0 : rem * CAREFUL_NS_PER_INSN;
	case LANDMARK_STEP:
		break;
	}
	return 0;
}

static unsigned recur_slot(uint64_t rip)
{
	return (unsigned)((rip ^ rip >> 7 ^ rip >> 17) % LANDMARK_RECUR_N);
}

/* Whether the `rem` instructions left to the recorded `rip` are better run
 * to a breakpoint on it than stepped (see BP_MIN_PERIOD). */
static bool bp_worth(const struct landmark_ctl *c, uint64_t rip, uint64_t rem)
{
	unsigned i = recur_slot(rip);
	if (rem < BP_MIN_REM)
		return false;
	return c->recur[i].rip != rip || !c->recur[i].period || c->recur[i].period >= BP_MIN_PERIOD;
}

/* Two passes of `rip` were seen `period` instructions apart. */
static void bp_learn(struct landmark_ctl *c, uint64_t rip, uint64_t period)
{
	unsigned i = recur_slot(rip);
	if (c->recur[i].rip != rip || !c->recur[i].period || period < c->recur[i].period) {
		c->recur[i].rip = rip;
		c->recur[i].period = period;
	}
}

/* Count an overshoot; a FAST one widens the short rounds' margin. */
static int overshot(struct landmark_ctl *c, enum landmark_care care)
{
	c->overshoots++;
	if (care == LANDMARK_FAST)
		c->margin_extra += MARGIN_PER_OVERSHOOT;
	return LANDMARK_OVERSHOT;
}

/*
 * Fault injection for the tests (tests/e2e/t_overshoot.sh), so that the
 * rewinding is exercised on any host: with DETVM_TEST_OVERSHOOT=N in the
 * environment, the first timed round of every Nth FAST approach runs 8
 * times longer than aimed, which overshoots; DETVM_TEST_OVERSHOOT_CAREFUL=M
 * does the same to every Mth CAREFUL approach (which then escalates to STEP).
 */
static uint64_t env_every(const char *name, int64_t *cache)
{
	if (*cache < 0) {
		const char *v = getenv(name);
		char *end;
		*cache = v && *v ? (int64_t)strtoull(v, &end, 10) : 0;
		if (v && *v && *end)
			*cache = 0;
	}
	return (uint64_t)*cache;
}

static bool test_fault(struct landmark_ctl *c, enum landmark_care care)
{
	static int64_t fast = -1, careful = -1;
	uint64_t every;
	if (care == LANDMARK_FAST) {
		every = env_every("DETVM_TEST_OVERSHOOT", &fast);
		return every && ++c->approaches % every == 0;
	}
	if (care == LANDMARK_CAREFUL) {
		every = env_every("DETVM_TEST_OVERSHOOT_CAREFUL", &careful);
		return every && ++c->careful_approaches % every == 0;
	}
	return false;
}

int landmark_reach(struct vm *vm, struct landmark_ctl *c, enum landmark_care care,
		   uint64_t target, uint64_t rip, uint64_t regs_hash, char *err, size_t errlen)
{
	static bool slack_set;
	struct kvm_run *run = vm->kvm.run;
	uint64_t cur, t_start = nd_host_mono_ns();
	int rc = LANDMARK_DIVERGED;
	uint32_t debug = 0;
	uint64_t debug_bp[2] = { 0, 0 }; /* the breakpoints set with `debug` */
	struct code_view cv = { .regs_fresh = false };
	uint32_t valid_regs = run->kvm_valid_regs;
	bool free_ran = false;   /* a free run since the last step */
	bool bp_ran = false;     /* the last run was to the breakpoint */
	/* An event to deliver at the next entry; asked of KVM (an ioctl, about
	 * 9 us here) only before a move that could be a step, not before a
	 * timed run, which runs the guest as it is. */
	bool queued = false, queued_unknown = true;
	uint64_t local_ps = 0;   /* speed measured on the way to this landmark */
	uint64_t last_pass = 0;  /* counter at the last early pass of the RIP + 1 (0: none) */
	bool fault = test_fault(c, care);

	/*
	 * The forced exit can come right after the last exit's instruction
	 * was completed and before any other ran: the recorder's vCPU was
	 * kicked on the very KVM_RUN that finished an IN (seen under load:
	 * "forced exit reached at RIP 0x100435, recorded RIP 0x100436", the
	 * IN and the instruction after it).  Finish it here the same way,
	 * without running the guest; the counter does not count that.
	 */
	if (vcpu_complete_pending(&vm->kvm, err, errlen)) {
		rc = LANDMARK_ERROR;
		goto out;
	}
	/* Only now may `queued` be asked: finishing a WRMSR or RDMSR the
	 * monitor refused is what queues its #GP (a hostile guest's replay
	 * stepped that #GP's delivery when this was asked first;
	 * test_landmark.c). */
	if (sync_regs_supported(vm))
		run->kvm_valid_regs = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS;
	if (!slack_set) {
		/* The default 50 us of timer slack is some 60 instructions of
		 * lateness; ask for none.  Failure only costs precision. */
		(void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
		slack_set = true;
	}
	for (;;) {
		if (vm_progress(vm, &cur)) {
			snprintf(err, errlen, "cannot read the progress counter");
			rc = LANDMARK_ERROR;
			goto out;
		}
		if (cur == target) {
			if (vm->progress_kind != PROGRESS_PMU_BRANCHES)
				break;
			/* Many instructions share a branch count: step on
			 * until RIP and the registers are the recorded ones
			 * (a rep-string iteration repeats RIP, not RCX). */
			int m = regs_match(vm, rip, regs_hash);
			if (m < 0) {
				snprintf(err, errlen, "KVM_GET_REGS: %s", strerror(errno));
				rc = LANDMARK_ERROR;
				goto out;
			}
			if (m)
				break;
		}
		if (cur > target) {
			if (bp_ran && care == LANDMARK_STEP) {
				/* The breakpoint stops the guest at the RIP whatever
				 * the time: passing the count without reaching it
				 * is not a matter of timing. */
				snprintf(err, errlen, "divergence at exit %" PRIu64 ": the guest passed the recorded "
					 "forced exit without reaching its RIP 0x%" PRIx64 " (progress %" PRIu64
					 ", expected %" PRIu64 ")", vm->stats.exits + 1, rip, cur, target);
			} else if (free_ran || bp_ran) {
				snprintf(err, errlen, "approaching the forced exit %" PRIu64 " ran %" PRIu64
					 " instructions past it (progress %" PRIu64 ", target %" PRIu64 ")",
					 vm->stats.exits + 1, cur - target, cur, target);
				rc = overshot(c, care);
			} else {
				snprintf(err, errlen, "divergence at exit %" PRIu64 ": single-stepping went past the "
					 "recorded forced exit (progress %" PRIu64 ", expected %" PRIu64 ")",
					 vm->stats.exits + 1, cur, target);
			}
			goto out;
		}
		uint64_t rem = target - cur;
		bool short_round;
		uint64_t ns = free_run_ns(c, care, rem, local_ps, &short_round);
		uint32_t want;
		uint64_t backstop = 0, want_bp[2] = { 0, 0 };
		bool bp_rest = false;    /* a run to the breakpoint instead of steps */
		enum insn_kind next = INSN_OTHER;
		uint64_t next_rip = 0;
		size_t next_len = 0;
		/* The registers before a step or breakpoint run: what the next
		 * instruction is decoded with, and what the frame of a fault
		 * within a step would hold. */
		struct kvm_regs pre;
		struct kvm_sregs psr;
		if (!ns && queued_unknown) {
			queued = event_queued(vm);
			queued_unknown = false;
		}
		bool have_pre = !ns && !queued && view_regs(vm, &cv, &pre, &psr) == 0;
		if (have_pre) {
			next_rip = pre.rip;
			next = next_insn(vm, &cv, &pre, &psr, &next_len);
		}
		if (ns) {
			want = 0;
		} else if (queued ||
			   (next == INSN_IRET && (rem == 1 || (rem == 0 && vm->progress_kind == PROGRESS_PMU_BRANCHES)))) {
			want = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
			want_bp[0] = rip;
			backstop = BP_BACKSTOP_NS + rem * CAREFUL_NS_PER_INSN;
		} else if (care != LANDMARK_STEP && have_pre && pre.rip != rip && bp_worth(c, rip, rem)) {
			/* The rest to a breakpoint (BP_MIN_PERIOD); not from the
			 * RIP itself, where it would stop before moving. */
			want = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
			want_bp[0] = linear(&psr, &psr.cs, rip);
			backstop = BP_BACKSTOP_NS + rem * CAREFUL_NS_PER_INSN;
			bp_rest = true;
		} else if (next == INSN_SOFT_INT) {
			/*
			 * Over it to a breakpoint after it, where the handler
			 * returns to, and on the recorded RIP in case the guest
			 * gets there first (in the handler); not on the RIP the
			 * vCPU is at, which would stop it before it moved.  A
			 * PUSHF is cheaper to step and repair (fix_pushf): a
			 * breakpoint run and the two KVM_SET_GUEST_DEBUGs around
			 * it cost about 20 us more than a step here.
			 */
			want = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
			want_bp[0] = rip != next_rip ? rip : 0;
			want_bp[1] = next_rip + next_len;
			backstop = BP_BACKSTOP_NS + rem * CAREFUL_NS_PER_INSN;
			c->runs_over++;
		} else {
			want = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP;
		}
		if (want != debug || want_bp[0] != debug_bp[0] || want_bp[1] != debug_bp[1]) {
			if (set_debug(vm, want, want_bp) < 0) {
				snprintf(err, errlen, "KVM_SET_GUEST_DEBUG: %s", strerror(errno));
				rc = LANDMARK_ERROR;
				goto out;
			}
			debug = want;
			debug_bp[0] = want_bp[0];
			debug_bp[1] = want_bp[1];
		}
		bool injected = false;
		if (ns && fault) {
			ns *= 8;
			fault = false;
			injected = true;
		}
		if ((ns || backstop) && vm_arm_kick(vm, ns ? ns : backstop)) {
			snprintf(err, errlen, "cannot arm the host timer to reach a forced exit");
			rc = LANDMARK_ERROR;
			goto out;
		}
		uint64_t t0 = nd_host_mono_ns();
		int r = ioctl(vm->kvm.vcpu_fd, KVM_RUN, 0);
		int run_errno = errno; /* the calls below may change errno */
		if (r < 0 && run_errno == EINTR)
			vm_kick_consume();
		cv.regs_fresh = (run->kvm_valid_regs & (KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS)) ==
				(KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS);
		uint64_t t1 = nd_host_mono_ns();
		run->immediate_exit = 0;
		bp_ran = backstop != 0;
		/* The breakpoint usually stops the run first: its timer must
		 * not kick a later one. */
		if (bp_ran && vm_disarm_kick(vm)) {
			snprintf(err, errlen, "cannot disarm the host timer after reaching a breakpoint");
			rc = LANDMARK_ERROR;
			goto out;
		}
		if (ns) {
			free_ran = true;
			c->runs++;
			uint64_t after;
			if (vm_progress(vm, &after) == 0 && after >= cur) {
				if (!injected)
					learn_round(c, ns, after - cur, short_round);
				if (after - cur >= LEARN_MIN_INSNS) {
					/* Wall time includes entering and leaving the
					 * guest, so this is a slow bound of the speed;
					 * the fastest such bound seen is the one to aim
					 * with. */
					uint64_t el = t1 - t0 > ROUND_OVERHEAD_NS ? t1 - t0 - ROUND_OVERHEAD_NS : 0;
					uint64_t ps = el * 1000 / (after - cur);
					if (ps < FLOOR_PS_PER_INSN)
						ps = FLOOR_PS_PER_INSN;
					if (!c->ps_per_insn || ps < c->ps_per_insn)
						c->ps_per_insn = ps;
					c->learned++;
					if (!local_ps || ps < local_ps)
						local_ps = ps;
				}
			}
		} else if (backstop) {
			free_ran = false;
			c->bp_runs++;
		} else {
			free_ran = false;
			c->steps++;
		}
		/* Stopped by the breakpoint short of the target: a pass of the
		 * RIP before the recorded one.  Two such passes in a row tell how
		 * far apart they come. */
		if (bp_rest && r == 0 && run->exit_reason == KVM_EXIT_DEBUG) {
			uint64_t at;
			if (vm_progress(vm, &at) == 0 && at < target) {
				c->bp_early++;
				if (last_pass && at >= last_pass)
					bp_learn(c, rip, at + 1 - last_pass);
				last_pass = at + 1;
			}
		}
		/*
		 * A run the timer or a breakpoint ended can stop where an
		 * instruction has just faulted and KVM holds the exception, not
		 * yet delivered: the next entry delivers it, and must not be a
		 * single step either.  (Stepping the faulting instruction itself
		 * is fine here: the fault is delivered within the step, with the
		 * guest's own flags.)  Seen with a hostile guest (seed 20): a
		 * round stopped on a RDMSR's pending #GP, the step that followed
		 * pushed the trap flag into the #GP's frame, and the guest took
		 * #DB after its IRETQ (an "unexpected exception" printed: "the
		 * guest made a synchronous exit ... where the recording has a
		 * forced exit").
		 */
		if (queued || ns || backstop)
			queued_unknown = true;
		if (r < 0) {
			if (run_errno == EINTR || run_errno == EAGAIN) {
				if (vm_stop_requested) {
					snprintf(err, errlen, "interrupted while reaching a forced exit");
					rc = LANDMARK_ERROR;
					goto out;
				}
				continue;
			}
			snprintf(err, errlen, "KVM_RUN: %s", strerror(run_errno));
			rc = LANDMARK_ERROR;
			goto out;
		}
		if (run->exit_reason == KVM_EXIT_DEBUG && next == INSN_PUSHF && (want & KVM_GUESTDBG_SINGLESTEP)) {
			int f = fix_pushf(vm, &cv, next_rip, next_len);
			if (f < 0) {
				snprintf(err, errlen, "cannot reach the stack to check the image the PUSHF at RIP 0x%"
					 PRIx64 " pushed while stepped (approaching forced exit %" PRIu64 ")",
					 next_rip, vm->stats.exits + 1);
				rc = LANDMARK_ERROR;
				goto out;
			}
			c->pushf_fixed += (uint64_t)f;
		} else if (run->exit_reason == KVM_EXIT_DEBUG && have_pre && (want & KVM_GUESTDBG_SINGLESTEP)) {
			int f = fix_fault_frame(vm, &cv, &pre, &psr);
			if (f < 0) {
				snprintf(err, errlen, "cannot reach the stack to check for an exception frame after the "
					 "step at RIP 0x%llx (approaching forced exit %" PRIu64 ")",
					 (unsigned long long)pre.rip, vm->stats.exits + 1);
				rc = LANDMARK_ERROR;
				goto out;
			}
			c->fault_frames_fixed += (uint64_t)f;
		}
		if (run->exit_reason == KVM_EXIT_DEBUG || run->exit_reason == KVM_EXIT_INTR ||
		    run->exit_reason == KVM_EXIT_IRQ_WINDOW_OPEN)
			continue;
		if (ns || (backstop && care != LANDMARK_STEP)) {
			uint64_t after;
			if (vm_progress(vm, &after) == 0 && after > target) {
				/* The timed round ran past the target and on into
				 * the guest's next exit: an overshoot. */
				snprintf(err, errlen, "approaching the forced exit %" PRIu64 " ran %" PRIu64
					 " instructions past it, into an exit (progress %" PRIu64 ", target %" PRIu64 ")",
					 vm->stats.exits + 1, after - target, after, target);
				rc = overshot(c, care);
				goto out;
			}
		}
		snprintf(err, errlen, "divergence at exit %" PRIu64 ": the guest made a synchronous exit "
			 "(KVM exit reason %u) where the recording has a forced exit at RIP 0x%" PRIx64
			 " (progress %" PRIu64 ", now %" PRIu64 ")", vm->stats.exits + 1, run->exit_reason,
			 rip, target, cur);
		goto out;
	}
	struct kvm_regs regs;
	uint64_t h;
	if (cv.regs_fresh) {
		/* The same struct KVM_GET_REGS fills (no padding): an
		 * ioctl saved. */
		regs = run->s.regs.regs;
		h = vm_regs_hash(&regs);
	} else if (vm_regs(vm, &regs, &h)) {
		snprintf(err, errlen, "KVM_GET_REGS: %s", strerror(errno));
		rc = LANDMARK_ERROR;
		goto out;
	}
	if (regs.rip != rip) {
		snprintf(err, errlen, "divergence at exit %" PRIu64 ": forced exit reached at RIP 0x%llx, "
			 "recorded RIP 0x%" PRIx64, vm->stats.exits + 1, (unsigned long long)regs.rip, rip);
		goto out;
	}
	if (h != regs_hash) {
		snprintf(err, errlen, "divergence at exit %" PRIu64 ": registers at the forced exit (RIP 0x%"
			 PRIx64 ") differ from the recording (hash %016" PRIx64 " vs %016" PRIx64 ")",
			 vm->stats.exits + 1, rip, h, regs_hash);
		goto out;
	}
	c->reached++;
	rc = LANDMARK_REACHED;
out:
	run->kvm_valid_regs = valid_regs;
	if (debug && set_debug(vm, 0, debug_bp) < 0 && rc == LANDMARK_REACHED) {
		snprintf(err, errlen, "KVM_SET_GUEST_DEBUG (off): %s", strerror(errno));
		rc = LANDMARK_ERROR;
	}
	c->ns += nd_host_mono_ns() - t_start;
	return rc;
}
