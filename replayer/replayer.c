/* replayer.c - see replayer.h. */
#include "replayer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>

#include "recorder/exit_event.h"
#include "replayer/landmark.h"

/* The next event, or NULL at the end of the events / on corruption. */
static const struct trace_event *peek(struct replayer *rp)
{
	if (!rp->have_la) {
		rp->la_state = trace_reader_next(rp->r, &rp->la);
		rp->have_la = true;
		if (rp->la_state == 1 && (rp->la.type == TRACE_EV_ENTROPY || rp->la.type == TRACE_EV_CONSOLE_IN)) {
			uint32_t n = rp->la.bytes.len <= sizeof(rp->la_bytes) ? rp->la.bytes.len : sizeof(rp->la_bytes);
			memcpy(rp->la_bytes, rp->la.bytes.data, n);
			rp->la.bytes.data = rp->la_bytes;
		}
	}
	return rp->la_state == 1 ? &rp->la : NULL;
}

static void take(struct replayer *rp)
{
	rp->have_la = false;
	rp->events++;
}

/* The trace has no more events: stop, saying why. */
static void stop_at_end(struct replayer *rp)
{
	struct vm *vm = rp->vm;
	if (rp->la_state < 0)
		vm_set_stop(vm, VM_STOP_MONITOR_ERROR, "the recording is damaged after exit %" PRIu64 ": %s",
			    vm->stats.exits, trace_reader_error(rp->r));
	else
		vm_set_stop(vm, VM_STOP_TRACE_END, "the recording was cut short (at file offset %" PRIu64
			    "): replayed its complete prefix, %" PRIu64 " exits",
			    trace_reader_truncated_at(rp->r), vm->stats.exits);
}

static void diverge(struct replayer *rp, const char *what, const struct trace_event *expected)
{
	char exp[160];
	const char *name;
	if (!expected)
		snprintf(exp, sizeof(exp), "the end of the recording");
	else if ((name = trace_event_type_name(expected->type)) && !trace_event_is_exit(expected->type))
		snprintf(exp, sizeof(exp), "%s", name);
	else
		exit_event_describe(expected, exp, sizeof(exp));
	vm_set_stop(rp->vm, VM_STOP_DIVERGENCE, "divergence at exit %" PRIu64 ": expected %s, got %s",
		    rp->vm->stats.exits, exp, what);
}

/* ---- the replay backend of the gateway ---- */

static uint64_t rp_clock(struct nd *nd)
{
	struct replayer *rp = nd->backend;
	const struct trace_event *ev = peek(rp);
	if (!ev || ev->type != TRACE_EV_CLOCK) {
		if (!ev && rp->la_state == 0 && !trace_reader_complete(rp->r))
			stop_at_end(rp);
		else
			diverge(rp, "a device reading the clock", ev);
		return rp->last_clock;
	}
	rp->last_clock = ev->time.ns;
	take(rp);
	return rp->last_clock;
}

static void rp_entropy(struct nd *nd, void *buf, size_t len)
{
	struct replayer *rp = nd->backend;
	uint8_t *p = buf;
	while (len) {
		const struct trace_event *ev = peek(rp);
		if (!ev || ev->type != TRACE_EV_ENTROPY || ev->bytes.len > len) {
			char what[80];
			snprintf(what, sizeof(what), "a device reading %zu bytes of entropy", len);
			if (!ev && rp->la_state == 0 && !trace_reader_complete(rp->r))
				stop_at_end(rp);
			else
				diverge(rp, what, ev);
			memset(p, 0, len);
			return;
		}
		memcpy(p, ev->bytes.data, ev->bytes.len);
		p += ev->bytes.len;
		len -= ev->bytes.len;
		take(rp);
	}
}

static const struct nd_ops replay_ops = {
	.clock_ns = rp_clock,
	.entropy = rp_entropy,
};

/* ---- run-loop hooks ---- */

static int hook_exit(void *ctx, struct vm *vm, const struct vm_exit *x)
{
	struct replayer *rp = ctx;
	struct trace_event got;
	char what[160];
	exit_to_event(x, &got);
	const struct trace_event *ev = peek(rp);
	if (!ev) {
		stop_at_end(rp);
		return 1;
	}
	if (!exit_events_equal(ev, &got)) {
		exit_event_describe(&got, what, sizeof(what));
		diverge(rp, what, ev);
		return 1;
	}
	take(rp);
	(void)vm;
	return 0;
}

static char digest_msg[300];

static bool check_digest(struct replayer *rp, uint64_t regs, const struct trace_hash128 *mem,
			 const char *where)
{
	struct vm *vm = rp->vm;
	struct vm_digests d;
	char why[200];
	if (vm_digests(vm, &d, why, sizeof(why))) {
		snprintf(digest_msg, sizeof(digest_msg), "the digests at exit %" PRIu64 ": %s", vm->stats.exits, why);
		vm_set_stop(vm, VM_STOP_MONITOR_ERROR, "%s", digest_msg);
		return false;
	}
	uint64_t r = d.regs, lo = d.mem_lo, hi = d.mem_hi;
	if (r != regs)
		snprintf(digest_msg, sizeof(digest_msg), "divergence at exit %" PRIu64 ": %s register digest %016"
			 PRIx64 ", recorded %016" PRIx64, vm->stats.exits, where, r, regs);
	else if (lo != mem->lo || hi != mem->hi)
		snprintf(digest_msg, sizeof(digest_msg), "divergence at exit %" PRIu64 ": %s memory digest %016"
			 PRIx64 "%016" PRIx64 ", recorded %016" PRIx64 "%016" PRIx64,
			 vm->stats.exits, where, hi, lo, mem->hi, mem->lo);
	else
		return true;
	vm_set_stop(vm, VM_STOP_DIVERGENCE, "%s", digest_msg);
	return false;
}

static bool hook_replay_async(void *ctx, struct vm *vm, bool sync)
{
	struct replayer *rp = ctx;
	bool injected = false;
	char err[400];

	if (!sync)
		return false; /* a signal: nothing was recorded here */
	while (!vm->stop) {
		const struct trace_event *ev = peek(rp);
		if (!ev) {
			if (rp->la_state < 0 || !trace_reader_complete(rp->r))
				stop_at_end(rp);
			return injected;
		}
		switch (ev->type) {
		case TRACE_EV_EXIT_LANDMARK: {
			struct trace_event lm = *ev;
			if (vm->stop_at_set && vm->stats.exits >= vm->stop_at_exit) {
				/* The forced exit is the next exit: stop before it. */
				vm_set_stop(vm, VM_STOP_REACHED, "reached exit %" PRIu64, vm->stats.exits);
				return injected;
			}
			enum landmark_care care = replayer_care(rp, vm->stats.exits + 1);
			int lr = landmark_reach(vm, &rp->lm, care, lm.landmark.progress, lm.landmark.rip,
						lm.landmark.regs_hash, err, sizeof(err));
			if (lr != LANDMARK_REACHED) {
				if (lr == LANDMARK_OVERSHOT)
					vm_set_stop(vm, VM_STOP_OVERSHOT, "%s", err);
				else if (vm_stop_requested) {
					vm->stop_signal = vm_stop_requested;
					vm_set_stop(vm, VM_STOP_SIGNAL, "stopped by signal %d (%s) after exit %" PRIu64,
						    (int)vm_stop_requested, strsignal(vm_stop_requested), vm->stats.exits);
				} else {
					vm_set_stop(vm, lr == LANDMARK_DIVERGED ? VM_STOP_DIVERGENCE : VM_STOP_MONITOR_ERROR,
						    "%s", err);
				}
				return injected;
			}
			take(rp);
			vm_count_landmark(vm);
			/*
			 * `injected` stays as it was: a halted guest that was
			 * woken here (an IRQ before this forced exit) is not
			 * halted any more.  Clearing it made a forced exit
			 * right after a wake-up, delivering nothing, read as
			 * "the guest halted, but the recording has no wake-up
			 * here" (ticks recorded with delays, exit 499).
			 */
			break;
		}
		case TRACE_EV_CONSOLE_IN:
			if (uart_rx_room(&vm->plat.uart) < ev->bytes.len) {
				diverge(rp, "a full serial receive FIFO", ev);
				return injected;
			}
			uart_receive(&vm->plat.uart, ev->bytes.data, ev->bytes.len);
			take(rp);
			break;
		case TRACE_EV_TIMER: {
			uint64_t ns = ev->time.ns;
			take(rp);
			rp->last_clock = ns;
			if (vtimer_run_due(&vm->plat.timers, ns) == 0) {
				vm_set_stop(vm, VM_STOP_DIVERGENCE, "divergence at exit %" PRIu64
					    ": the recording has timers expiring at %" PRIu64 " ns, but none is armed that early",
					    vm->stats.exits, ns);
				return injected;
			}
			break;
		}
		case TRACE_EV_IRQ: {
			uint8_t want = ev->irq.vector;
			if (!vm_can_inject(vm) || !platform_intr_pending(&vm->plat)) {
				char what[80];
				snprintf(what, sizeof(what), "%s", vm_can_inject(vm) ? "no interrupt pending"
										: "a vCPU that cannot take an interrupt");
				vm_set_stop(vm, VM_STOP_DIVERGENCE, "divergence at exit %" PRIu64
					    ": expected to inject vector 0x%x, got %s", vm->stats.exits, want, what);
				return injected;
			}
			int v = platform_intr_ack(&vm->plat);
			if (v != want) {
				vm_set_stop(vm, VM_STOP_DIVERGENCE, "divergence at exit %" PRIu64
					    ": expected interrupt vector 0x%x, got 0x%x", vm->stats.exits, want, v);
				return injected;
			}
			take(rp);
			if (vm_inject(vm, (uint8_t)v))
				return injected;
			injected = true;
			break;
		}
		case TRACE_EV_DIGEST: {
			struct trace_event d = *ev;
			take(rp);
			if (!check_digest(rp, d.digest.regs_hash, &d.digest.mem_hash, "periodic"))
				return injected;
			rp->digests_checked++;
			break;
		}
		case TRACE_EV_END:
			if (ev->end.reason == TRACE_END_GUEST_EXIT || ev->end.reason == TRACE_END_SHUTDOWN) {
				/* The guest stopped itself after this exit: a
				 * triple fault, or a halt nothing could wake. */
				if (ev->end.status == VM_STATUS_HALTED)
					vm_set_stop(vm, VM_STOP_HALTED, "guest halted at exit %" PRIu64
						    " with nothing to wake it, as recorded", vm->stats.exits);
				return injected; /* replayer_finish checks END */
			}
			rp->end = *ev;
			take(rp);
			rp->ended = true;
			vm_set_stop(vm, VM_STOP_TRACE_END, "the recording ends here (it was stopped by its user)");
			return injected;
		default:
			if (trace_event_is_exit(ev->type))
				return injected;
			diverge(rp, "no device reading time or entropy here", ev);
			return injected;
		}
	}
	return injected;
}

/* A DIGEST recorded at exit N is taken before exit N's device runs: the
 * exit hook sees it right after the exit event. */
static int hook_exit_and_digest(void *ctx, struct vm *vm, const struct vm_exit *x)
{
	struct replayer *rp = ctx;
	if (hook_exit(ctx, vm, x))
		return 1;
	const struct trace_event *ev = peek(rp);
	if (ev && ev->type == TRACE_EV_DIGEST) {
		struct trace_event d = *ev;
		take(rp);
		if (!check_digest(rp, d.digest.regs_hash, &d.digest.mem_hash, "periodic"))
			return 1;
		rp->digests_checked++;
	}
	return 0;
}

static bool listed(const uint64_t *list, int n, uint64_t exit)
{
	for (int i = 0; i < n; i++)
		if (list[i] == exit)
			return true;
	return false;
}

enum landmark_care replayer_care(const struct replayer *rp, uint64_t exit)
{
	return replay_care_of(&rp->care, exit);
}

enum landmark_care replay_care_of(const struct replay_care *c, uint64_t exit)
{
	if (exit <= c->step_through || listed(c->step, c->nstep, exit))
		return LANDMARK_STEP;
	if (exit <= c->careful_through || listed(c->careful, c->ncareful, exit))
		return LANDMARK_CAREFUL;
	return LANDMARK_FAST;
}

/* Add exit to a care level's list; once the list is full, the level covers
 * every exit up to it instead (`through`). */
static void add_exit(uint64_t *list, int *n, uint64_t *through, uint64_t exit)
{
	if (*n < REPLAY_CARE_MAX)
		list[(*n)++] = exit;
	else if (exit > *through)
		*through = exit;
}

void replay_care_more(struct replay_care *c, uint64_t exit)
{
	switch (replay_care_of(c, exit)) {
	case LANDMARK_FAST:
		add_exit(c->careful, &c->ncareful, &c->careful_through, exit);
		break;
	case LANDMARK_CAREFUL:
		add_exit(c->step, &c->nstep, &c->step_through, exit);
		break;
	case LANDMARK_STEP:
		break; /* stepping cannot overshoot */
	}
}

void replayer_init(struct replayer *rp, struct trace_reader *r, uint64_t boot_epoch_ns)
{
	memset(rp, 0, sizeof(*rp));
	rp->nd.ops = &replay_ops;
	rp->nd.backend = rp;
	rp->nd.boot_epoch_ns = boot_epoch_ns;
	rp->r = r;
}

void replayer_attach(struct replayer *rp, struct vm *vm)
{
	rp->vm = vm;
	vm->hooks = (struct vm_hooks){
		.exit = hook_exit_and_digest,
		.replay_async = hook_replay_async,
		.ctx = rp,
	};
	vm->host_timer = false;
}

int replayer_finish(struct replayer *rp, char *msg, size_t msglen)
{
	struct vm *vm = rp->vm;
	if (vm->stop == VM_STOP_DIVERGENCE || vm->stop == VM_STOP_MONITOR_ERROR || vm->stop == VM_STOP_SIGNAL) {
		snprintf(msg, msglen, "%s", vm->detail);
		return -1;
	}
	if (vm->stop == VM_STOP_REACHED) {
		struct vm_digests d;
		char why[200];
		if (vm_digests(vm, &d, why, sizeof(why))) {
			snprintf(msg, msglen, "the digests at exit %" PRIu64 ": %s", vm->stats.exits, why);
			return -1;
		}
		snprintf(msg, msglen, "reached exit %" PRIu64 ": registers %016" PRIx64 ", memory %016" PRIx64 "%016" PRIx64,
			 vm->stats.exits, d.regs, d.mem_hi, d.mem_lo);
		return 0;
	}
	if (vm->stop == VM_STOP_TRACE_END && !rp->ended) {
		snprintf(msg, msglen, "%s", vm->detail);
		return 0; /* a cut-short recording: its prefix replayed */
	}
	if (!rp->ended) {
		/* The guest stopped by itself: the recording must end here too. */
		const struct trace_event *ev = peek(rp);
		if (!ev) {
			if (rp->la_state == 0 && !trace_reader_complete(rp->r)) {
				snprintf(msg, msglen, "the recording was cut short exactly where the guest stopped (%s)",
					 vm_stop_name(vm->stop));
				return 0;
			}
			snprintf(msg, msglen, "the recording is damaged: %s", trace_reader_error(rp->r));
			return -1;
		}
		if (ev->type != TRACE_EV_END) {
			char exp[160];
			exit_event_describe(ev, exp, sizeof(exp));
			snprintf(msg, msglen, "divergence at exit %" PRIu64 ": the guest stopped (%s), but the recording continues with %s",
				 vm->stats.exits, vm->detail, exp);
			return -1;
		}
		rp->end = *ev;
		take(rp);
		rp->ended = true;
		if ((int)rp->end.end.status != vm_exit_status(vm)) {
			snprintf(msg, msglen, "divergence at exit %" PRIu64 ": the guest stopped with status %d, recorded %d",
				 vm->stats.exits, vm_exit_status(vm), (int)rp->end.end.status);
			return -1;
		}
	}
	if (!check_digest(rp, rp->end.end.regs_hash, &rp->end.end.mem_hash, "final")) {
		snprintf(msg, msglen, "%s", digest_msg);
		return -1;
	}
	snprintf(msg, msglen, "replay matches the recording: %" PRIu64 " exits, %" PRIu64 " events, final digest %016"
		 PRIx64 "%016" PRIx64 ", recorded status %d", vm->stats.exits, rp->events,
		 rp->end.end.mem_hash.hi, rp->end.end.mem_hash.lo, (int)rp->end.end.status);
	rp->end_ok = true;
	return 0;
}
