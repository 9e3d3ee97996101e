/*
 * replayer.h - re-execute a recording.
 *
 * The replay backend of the nondeterminism gateway answers every device
 * read of time or entropy with the next recorded event, and replaces the run
 * loop's asynchronous phase: console input, timer expiries and interrupts
 * are applied exactly where the trace says, forced exits (landmarks) are
 * reached with landmark_reach().  At every synchronous exit the exit itself
 * (kind, port or address, size, direction, written value) is compared with
 * the recorded one; DIGEST events and the END event compare register and
 * memory hashes.  The first mismatch stops the replay with
 * "divergence at exit N: expected ..., got ...".
 */
#ifndef DETVM_REPLAYER_H
#define DETVM_REPLAYER_H

#include <stdbool.h>
#include <stdint.h>

#include "replayer/landmark.h"
#include "trace-format/trace.h"
#include "vmm/vm.h"

#define REPLAY_CARE_MAX 32

/* Forced exits that overshot before, by the care they now take; a list that
 * is full gives that care to every forced exit up to its `_through`. */
struct replay_care {
	uint64_t careful[REPLAY_CARE_MAX], step[REPLAY_CARE_MAX];
	int ncareful, nstep;
	uint64_t careful_through, step_through;
};

struct replayer {
	struct nd nd;
	struct trace_reader *r;
	struct vm *vm;
	struct trace_event la;   /* one event of lookahead */
	int la_state;            /* 1: la valid, 0: end of events, -1: error */
	bool have_la;
	uint8_t la_bytes[TRACE_ENTROPY_MAX]; /* copy of la's payload */
	uint64_t events;
	uint64_t digests_checked;
	uint64_t last_clock;
	bool ended;              /* END consumed and checked */
	bool end_ok;
	struct trace_event end;  /* the END event */
	/* Reaching forced exits: what was learned, and after rewinds
	 * (replay_session_run) which forced exits take more care. */
	struct landmark_ctl lm;
	struct replay_care care;
};

/* How much care to reach the forced exit that will be exit `exit`:
 * LANDMARK_FAST unless replayer_more_care() was called for it. */
enum landmark_care replayer_care(const struct replayer *rp, uint64_t exit);
enum landmark_care replay_care_of(const struct replay_care *c, uint64_t exit);
/*
 * The forced exit that will be exit `exit` overshot: approach it with the
 * next level of care from now on (FAST -> CAREFUL -> STEP).  Every other
 * forced exit keeps its level: overshoots are rare, and one replayed
 * CAREFUL costs up to 1000 single steps.
 */
void replay_care_more(struct replay_care *c, uint64_t exit);

void replayer_init(struct replayer *rp, struct trace_reader *r, uint64_t boot_epoch_ns);
void replayer_attach(struct replayer *rp, struct vm *vm);
/*
 * After vm_run: check the recorded END against how the replay stopped.
 * Returns 0 if the replay reproduced the recording (or its whole prefix, if
 * cut short), -1 with a message otherwise.
 */
int replayer_finish(struct replayer *rp, char *msg, size_t msglen);

#endif
