/*
 * landmark.h - bring the vCPU to an exact point between two exits: the
 * instant where the progress counter (insn_emulation, see vmm/progress.h)
 * has a given value.
 *
 * With the PMU's branch counter (hardware hosts, not exercised here) many
 * instructions share a count: having reached it, the approach single-steps
 * on until RIP and the register hash are the recorded ones.
 *
 * How (measured on these hosts, see docs/design.md "Record and replay"):
 * let the guest run freely under a one-shot host timer aimed at a point a
 * little before the target, read the counter when the timer stops it, and
 * repeat; cover the last few instructions by runs to a hardware breakpoint
 * on the recorded RIP where its passes come far enough apart (learned per
 * RIP, landmark.c BP_MIN_PERIOD), else by single steps.
 *
 * Tried and dropped: a thread of our own on the other CPU that reads the
 * counter (pread of the stats fd, about 0.7 us a read) and sends the kick
 * when it reaches target - m.  The guest stops 1-4 instructions after the
 * kick in 93% of runs (at most 6 in 98%), but in about 1.4% the counter the
 * thread sees jumps by 12-800 instructions between two reads, and such an
 * overshoot costs a rewind (30-90 ms).  memloop replays took 0.44-0.87 s against 0.49-0.77 s
 * for the timers, on the same recording (November 2026).
 *
 * KVM steps with the trap flag, and a hardware CPU stores that flag where
 * an instruction saves RFLAGS (on these hosts, the delivery of an injected
 * event and of a fault raised within a step store it; PUSHF and INT n do
 * not).  So some moves are not steps:
 *   - any move while an interrupt or exception is queued for delivery at
 *     the next entry (see event_queued(): injected by the replayer, raised
 *     by finishing a refused RDMSR or WRMSR, or by an instruction a timed
 *     run stopped on), and the last one when it is an IRET (stepping over
 *     IRET also executes the next instruction here): a run to a hardware
 *     breakpoint on the recorded RIP;
 *   - an INT n, INT3 or INT1: a run to a breakpoint after it, where the
 *     handler returns to (and on the recorded RIP);
 *   - a PUSHF is stepped, and the trap flag, if in the image it pushed, is
 *     cleared (landmark_fix_pushf(); cheaper than a breakpoint run).
 * Which instruction is next comes from its bytes (insn_peek.h), read with
 * the registers KVM copies into kvm_run (KVM_CAP_SYNC_REGS) rather than an
 * ioctl.  On these hosts stepping PUSHF and INT n stores the guest's own
 * flags (the flags guest, tests/unit/test_landmark.c), so the clearing
 * never finds a flag here: that it is needed on hardware hosts is from the
 * x86 manuals, not tested.  An instruction that faults while stepped
 * cannot be told from its bytes; after a step, the frame its fault pushed
 * is looked for between the stack pointers after and before it (its RIP,
 * CS, flags and, in 64-bit mode, RSP and SS) and the flag cleared there
 * (these hosts store it: test_step_over_fault).  A fault taken on another
 * stack (IST, or from CPL3) is not found: such a replay would report a
 * divergence, not pass silently.
 * All of it is for the last few instructions only: timed runs use no
 * guest debugging.
 *
 * There is no stepping back.  The free-running phase aims with a guest speed
 * learned from the counter itself, so a timer that fires late, or a guest
 * that suddenly runs faster, can carry it past the target: that is an
 * overshoot, not a divergence, and the caller recovers by rewinding (see
 * replay_session_run) and approaching this landmark again with more care:
 *   LANDMARK_FAST     aim at the learned speed, then, within 256
 *                     instructions, with a learned model of short rounds
 *                     that leaves a learned margin; step the rest (until
 *                     the speed is learned: CAREFUL's aim, stepping the
 *                     last 128)
 *   LANDMARK_CAREFUL  aim at half the remaining time at the fastest speed
 *                     ever measured here (400 ns an instruction), step the
 *                     last <= 1000 (a timer would have to fire milliseconds
 *                     late to overshoot)
 *   LANDMARK_STEP     single-step all the way (breakpoint runs only for
 *                     the moves above that are no steps): cannot overshoot
 * Passing the target while single-stepping is a divergence.
 */
#ifndef DETVM_LANDMARK_H
#define DETVM_LANDMARK_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/vm.h"

enum landmark_care { LANDMARK_FAST, LANDMARK_CAREFUL, LANDMARK_STEP };

enum landmark_result {
	LANDMARK_REACHED = 0,    /* RIP and register hash checked */
	LANDMARK_DIVERGED = -1,  /* message in err */
	LANDMARK_OVERSHOT = 1,   /* the free run went past: rewind and retry (message in err) */
	LANDMARK_ERROR = -2,     /* a host call failed, or a stop was requested (message in err) */
};

/* Short rounds: how many recent prediction errors the margin looks at. */
#define LANDMARK_RESID_N 64
/* Breakpoint runs: how many RIPs' recurrence is remembered. */
#define LANDMARK_RECUR_N 64

/* What the approach learns and counts; zero it once per replay. */
struct landmark_ctl {
	uint64_t ps_per_insn;    /* fastest guest speed measured, picoseconds an instruction; 0: none yet */
	uint64_t learned;        /* rounds it was learned from */
	/*
	 * Short rounds (landmark.c, free_run_ns): instructions run as a
	 * straight line in the armed time, ran = a + b * ns, fitted by least
	 * squares with weights that decay by round; and the recent short
	 * rounds, whose largest excess over the fit is the safety margin.
	 */
	double sw, sx, sy, sxx, sxy;
	uint64_t fitted;                     /* rounds in the fit */
	struct { float us, ran; } recent[LANDMARK_RESID_N]; /* recent short rounds: armed, ran */
	unsigned nrecent, irecent;
	uint64_t margin_extra;               /* added after each overshoot of a short round */
	unsigned slow_rounds;                /* slowed-down rounds in a row, kept out of the fit */
	/* Per recorded RIP (direct-mapped): the fewest instructions seen
	 * between two passes of it, 0 if not seen; see landmark.c, bp_worth. */
	struct { uint64_t rip; uint64_t period; } recur[LANDMARK_RECUR_N];
	uint64_t reached;        /* landmarks reached */
	uint64_t runs;           /* free-running rounds (each ended by the host timer) */
	uint64_t steps;          /* single steps */
	uint64_t bp_runs;        /* runs to a hardware breakpoint on the recorded RIP instead */
	uint64_t bp_early;       /* of those, stopped at an earlier pass of the RIP */
	uint64_t runs_over;      /* of those, runs over an INT instead of a step (insn_peek.h) */
	uint64_t pushf_fixed;    /* stepped PUSHFs whose image had the step's trap flag, cleared */
	uint64_t fault_frames_fixed; /* likewise, frames of faults delivered within a step */
	uint64_t overshoots;
	uint64_t ns;             /* host time spent reaching landmarks */
	uint64_t approaches, careful_approaches; /* for the tests' fault injection */
};

/*
 * After a single step over the PUSHF at `rip`, `len` bytes long, clear the
 * step's trap flag from the image it pushed, if there (hardware CPUs store
 * it; these hosts do not).  1 if cleared, 0 if not there or the PUSHF did
 * not complete, -1 if the stack cannot be read or written.  For the tests;
 * landmark_reach() does it after every PUSHF it steps.
 */
int landmark_fix_pushf(struct vm *vm, uint64_t rip, size_t len);

int landmark_reach(struct vm *vm, struct landmark_ctl *c, enum landmark_care care,
		   uint64_t target, uint64_t rip, uint64_t regs_hash, char *err, size_t errlen);

#endif
