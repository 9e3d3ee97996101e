/* recorder.c - see recorder.h. */
#include "recorder.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "checkpoint/snapshot.h"
#include "recorder/exit_event.h"
#include "recorder/recording.h"
#include "vmm/vcpu_state.h"

#define CLI_VERSION "0.1.0"

/* The recording cannot go on: stop the VM with `why` (the first failure wins). */
static void stop_recording(struct recorder *r, const char *what, const char *why)
{
	if (r->failed)
		return;
	r->failed = true;
	vm_set_stop(r->vm, VM_STOP_MONITOR_ERROR, "%s at exit %" PRIu64 ": %s", what,
		    r->vm ? r->vm->stats.exits : 0, why);
}

static void record_fail(struct recorder *r)
{
	stop_recording(r, "writing the trace failed", trace_writer_error(r->w));
}

/* The vCPU could not be read: nothing true can be recorded from here on. */
static void reg_fail(struct recorder *r, const char *what)
{
	int e = errno;
	char m[120];
	snprintf(m, sizeof(m), "reading %s", what);
	stop_recording(r, m, strerror(e));
}

/* ---- the event index (checkpoints.db) ---- */

static void index_flush(struct recorder *r)
{
	if (!r->db)
		return;
	if (r->nrows && ckpt_db_put_events(r->db, r->rows, r->nrows))
		vm_set_stop(r->vm, VM_STOP_MONITOR_ERROR, "checkpoint database: %s", ckpt_db_failed(r->db));
	r->nrows = 0;
	if (r->nserial && ckpt_db_put_serial(r->db, r->serial_exit, r->serial, r->nserial))
		vm_set_stop(r->vm, VM_STOP_MONITOR_ERROR, "checkpoint database: %s", ckpt_db_failed(r->db));
	r->nserial = 0;
}

static const char *region_name(const struct bus *bus, uint64_t addr)
{
	const struct bus_region *reg = bus_find(bus, addr);
	return reg ? reg->name : "unclaimed";
}

/* One index row for ev, about to be appended as event number `ordinal`. */
static void index_event(struct recorder *r, const struct trace_event *ev, uint64_t ordinal)
{
	struct ckpt_event_row row = {
		.ordinal = ordinal, .exit = r->vm->stats.exits, .type = ev->type,
		.host_ns = nd_host_mono_ns() - r->start_ns,
	};
	if (!r->db)
		return;
	switch (ev->type) {
	case TRACE_EV_EXIT_IO:
		row.flags = ev->io.flags, row.addr = ev->io.port, row.value = ev->io.value;
		row.device = r->cur_device = region_name(&r->vm->plat.pio, ev->io.port);
		break;
	case TRACE_EV_EXIT_MMIO:
		row.flags = ev->mmio.flags, row.addr = ev->mmio.gpa, row.value = ev->mmio.value;
		row.device = r->cur_device = region_name(&r->vm->plat.mmio, ev->mmio.gpa);
		break;
	case TRACE_EV_EXIT_MSR:
		row.flags = ev->msr.flags, row.addr = ev->msr.index, row.value = ev->msr.value;
		row.device = r->cur_device = "msr";
		break;
	case TRACE_EV_EXIT_HLT:
		row.device = r->cur_device = "cpu";
		break;
	case TRACE_EV_EXIT_LANDMARK:
		row.addr = ev->landmark.rip, row.value = ev->landmark.progress;
		row.device = r->cur_device = "cpu";
		break;
	case TRACE_EV_CLOCK:
	case TRACE_EV_TIMER:
		row.value = ev->time.ns;
		row.device = ev->type == TRACE_EV_TIMER ? "timers" : r->cur_device;
		break;
	case TRACE_EV_ENTROPY:
	case TRACE_EV_CONSOLE_IN:
		row.value = ev->bytes.len;
		row.device = ev->type == TRACE_EV_CONSOLE_IN ? "uart" : r->cur_device;
		break;
	case TRACE_EV_IRQ:
		row.addr = ev->irq.vector;
		row.device = "cpu";
		break;
	default:
		break;
	}
	if (r->nrows == r->caprows) {
		size_t cap = r->caprows ? r->caprows * 2 : 1024;
		struct ckpt_event_row *n = realloc(r->rows, cap * sizeof(*n));
		if (!n) {
			vm_set_stop(r->vm, VM_STOP_MONITOR_ERROR, "out of memory for the event index");
			return;
		}
		r->rows = n;
		r->caprows = cap;
	}
	r->rows[r->nrows++] = row;
	if (r->nrows >= RECORD_INDEX_FLUSH_ROWS)
		index_flush(r);
}

static int append_indexed(struct recorder *r, const struct trace_event *ev)
{
	if (r->db)
		index_event(r, ev, trace_writer_events(r->w));
	return trace_writer_append(r->w, ev);
}

static void emit_landmark(struct recorder *r)
{
	struct trace_event ev = { .type = TRACE_EV_EXIT_LANDMARK };
	struct kvm_regs regs;
	uint64_t counter = 0;

	r->landmark_pending = false;
	if (vm_progress(r->vm, &counter) || vm_regs(r->vm, &regs, &ev.landmark.regs_hash)) {
		reg_fail(r, "the forced exit's progress counter or registers");
		return;
	}
	ev.landmark.progress = counter;
	ev.landmark.rip = regs.rip;
	vm_count_landmark(r->vm);
	r->landmarks++;
	if (append_indexed(r, &ev))
		record_fail(r);
}

/* Append one event; a pending landmark goes first. */
static void append(struct recorder *r, const struct trace_event *ev)
{
	if (!r->w || r->failed)
		return;
	if (r->landmark_pending)
		emit_landmark(r);
	if (ev->type == TRACE_EV_CLOCK || ev->type == TRACE_EV_TIMER)
		r->last_clock = ev->time.ns;
	if (append_indexed(r, ev))
		record_fail(r);
}

/* ---- the record backend of the gateway ---- */

static uint64_t rec_clock(struct nd *nd)
{
	struct recorder *r = nd->backend;
	uint64_t v = r->live->nd.ops->clock_ns(&r->live->nd);
	struct trace_event ev = { .type = TRACE_EV_CLOCK, .time.ns = v };
	append(r, &ev);
	return v;
}

static void rec_entropy(struct nd *nd, void *buf, size_t len)
{
	struct recorder *r = nd->backend;
	uint8_t *p = buf;
	r->live->nd.ops->entropy(&r->live->nd, buf, len);
	while (len) {
		size_t n = len > TRACE_ENTROPY_MAX ? TRACE_ENTROPY_MAX : len;
		struct trace_event ev = { .type = TRACE_EV_ENTROPY, .bytes = { (uint32_t)n, p } };
		append(r, &ev);
		p += n;
		len -= n;
	}
}

static size_t rec_poll_console(struct nd *nd, uint8_t *buf, size_t room, bool hint)
{
	struct recorder *r = nd->backend;
	if (room > TRACE_CONSOLE_MAX)
		room = TRACE_CONSOLE_MAX;
	size_t n = r->live->nd.ops->poll_console(&r->live->nd, buf, room, hint);
	if (n) {
		struct trace_event ev = { .type = TRACE_EV_CONSOLE_IN, .bytes = { (uint32_t)n, buf } };
		append(r, &ev);
	}
	return n;
}

static bool rec_poll_timers(struct nd *nd, uint64_t deadline, uint64_t *now)
{
	struct recorder *r = nd->backend;
	if (!r->live->nd.ops->poll_timers(&r->live->nd, deadline, now))
		return false;
	struct trace_event ev = { .type = TRACE_EV_TIMER, .time.ns = *now };
	append(r, &ev);
	return true;
}

/*
 * Close the current frame so that a killed recorder loses little: after
 * RECORD_FLUSH_NS once a few KiB are pending, and after RECORD_FLUSH_MAX_NS
 * whatever is pending.  Flushing a near-empty frame every 100 ms would cost
 * ~100 bytes of frame header each time and make an idle guest's trace ~6x
 * larger (bench/trace_bench.c).
 */
static void maybe_flush(struct recorder *r)
{
	uint64_t now = nd_host_mono_ns();
	uint64_t age = now - r->last_flush_ns;
	if (!r->w || age < RECORD_FLUSH_NS)
		return;
	struct trace_writer_stats st;
	trace_writer_stats(r->w, &st);
	if (st.pending_events == 0 ||
	    (st.pending_bytes < RECORD_FLUSH_MIN_BYTES && age < RECORD_FLUSH_MAX_NS))
		return;
	r->last_flush_ns = now;
	if (trace_writer_flush(r->w))
		record_fail(r);
	index_flush(r);
}

static void rec_idle_wait(struct nd *nd, bool has_deadline, uint64_t deadline)
{
	struct recorder *r = nd->backend;
	maybe_flush(r);
	uint64_t t0 = nd_host_mono_ns();
	r->live->nd.ops->idle_wait(&r->live->nd, has_deadline, deadline);
	r->idle_ns += nd_host_mono_ns() - t0;	/* skipped at replay */
}

static const struct nd_ops record_ops = {
	.clock_ns = rec_clock,
	.entropy = rec_entropy,
	.poll_console = rec_poll_console,
	.poll_timers = rec_poll_timers,
	.idle_wait = rec_idle_wait,
};

/* ---- run-loop hooks ---- */

static void digest(struct recorder *r)
{
	struct trace_event ev = { .type = TRACE_EV_DIGEST };
	struct vm_digests d;
	char why[200];
	if (vm_digests(r->vm, &d, why, sizeof(why))) {
		stop_recording(r, "computing a digest", why);
		return;
	}
	ev.digest.regs_hash = d.regs;
	ev.digest.mem_hash.lo = d.mem_lo;
	ev.digest.mem_hash.hi = d.mem_hi;
	append(r, &ev);
}

static int hook_exit(void *ctx, struct vm *vm, const struct vm_exit *x)
{
	struct recorder *r = ctx;
	struct trace_event ev;
	(void)vm;
	exit_to_event(x, &ev);
	append(r, &ev);
	if (r->digest_interval && vm->stats.exits >= r->next_digest) {
		/* Before the device runs: the state at this exit's start. */
		r->next_digest = vm->stats.exits + r->digest_interval;
		digest(r);
	}
	maybe_flush(r);
	return r->failed;
}

static int hook_inject(void *ctx, struct vm *vm, uint8_t vector)
{
	struct recorder *r = ctx;
	(void)vm;
	if (r->perturb_us) {
		/* Test aid (DETVM_PERTURB_US): a random host delay before each
		 * injection, so that recordings of one guest differ. */
		uint32_t x;
		if (getrandom(&x, sizeof(x), 0) == (ssize_t)sizeof(x))
			usleep(x % r->perturb_us);
	}
	struct trace_event ev = { .type = TRACE_EV_IRQ, .irq.vector = vector };
	append(r, &ev);
	return r->failed;
}

static void hook_async_exit(void *ctx, struct vm *vm)
{
	struct recorder *r = ctx;
	(void)vm;
	r->landmark_pending = true;
}

static void hook_async_done(void *ctx, struct vm *vm)
{
	struct recorder *r = ctx;
	(void)vm;
	r->landmark_pending = false;
}

/* ---- checkpoints ---- */

/*
 * There is no checkpoint at exit 0: the state there is the one vm_create
 * builds from the header, so seeking never restores one (a fresh VM is
 * that state), and taking it would only add a pause to every recording.
 * The first checkpoint is therefore a full one, taken when one is due.
 */
static bool checkpoint_due(struct recorder *r, uint64_t now)
{
	if (r->ckpt_exits && r->vm->stats.exits - r->last_ckpt_exit >= r->ckpt_exits)
		return true;
	if (!r->ckpt_ns || r->vm->stats.exits == r->last_ckpt_exit)
		return false;
	uint64_t busy = now - r->last_ckpt_ns;
	busy = busy > r->idle_ns ? busy - r->idle_ns : 0;
	busy += (r->landmarks - r->last_ckpt_landmarks) * RECORD_LANDMARK_REPLAY_NS;
	return busy >= r->ckpt_ns;
}

static void hook_before_run(void *ctx, struct vm *vm)
{
	struct recorder *r = ctx;
	char err[400];
	uint64_t t0 = nd_host_mono_ns();

	/* A checkpoint is the machine after exit N: not one that has run on
	 * since (an asynchronous exit that delivered nothing).  It is taken
	 * at the next exit instead, so that restoring it gives what a replay
	 * stopped at exit N holds. */
	if (!r->db || r->failed || vm->between_exits || !checkpoint_due(r, t0))
		return;
	/* A checkpoint starts a frame, so that replay from it starts reading
	 * at a frame boundary. */
	if (trace_writer_flush(r->w)) {
		record_fail(r);
		return;
	}
	struct ckpt_capture *c = snapshot_capture(vm, !r->ckpt_first_done, err, sizeof(err));
	if (!c) {
		vm_set_stop(vm, VM_STOP_MONITOR_ERROR, "checkpoint at exit %" PRIu64 ": %s", vm->stats.exits, err);
		return;
	}
	c->exit = vm->stats.exits;
	c->event = trace_writer_events(r->w);
	struct kvm_regs regs;
	/* Without a progress counter (no forced exits to count to) it may
	 * not be readable: progress stays 0. */
	bool no_progress = vm_progress(vm, &c->progress) != 0;
	if ((no_progress && vm->progress_kind != PROGRESS_NONE) || vm_regs(vm, &regs, &c->regs_hash)) {
		ckpt_capture_free(c);
		reg_fail(r, "the progress counter or the registers for a checkpoint");
		return;
	}
	c->guest_ns = r->last_clock;
	uint64_t t1 = nd_host_mono_ns();
	c->host_ns = t0 - r->start_ns;
	c->pause_ns = t1 - t0;
	index_flush(r); /* the index rows before this checkpoint commit with it */
	if (ckpt_db_put_checkpoint(r->db, c)) {
		vm_set_stop(vm, VM_STOP_MONITOR_ERROR, "checkpoint at exit %" PRIu64 ": %s", vm->stats.exits,
			    ckpt_db_failed(r->db) ? ckpt_db_failed(r->db) : "queueing failed");
		return;
	}
	uint64_t pause = nd_host_mono_ns() - t0;
	r->checkpoints++;
	r->ckpt_pause_total_ns += pause;
	if (pause > r->ckpt_pause_max_ns)
		r->ckpt_pause_max_ns = pause;
	r->ckpt_first_done = true;
	r->last_ckpt_exit = vm->stats.exits;
	r->last_ckpt_landmarks = r->landmarks;
	r->last_ckpt_ns = nd_host_mono_ns();
	r->idle_ns = 0;
}

static void hook_serial(void *ctx, struct vm *vm, uint8_t byte)
{
	struct recorder *r = ctx;
	if (!r->db)
		return;
	if (r->nserial && (r->serial_exit != vm->stats.exits || r->nserial == sizeof(r->serial)))
		index_flush(r);
	r->serial_exit = vm->stats.exits;
	r->serial[r->nserial++] = byte;
}

void recorder_set_checkpoints(struct recorder *r, struct ckpt_db *db, uint64_t ns, uint64_t exits)
{
	r->db = db;
	r->ckpt_ns = ns;
	r->ckpt_exits = exits;
}

void recorder_on_frame(void *ctx, const struct trace_frame_info *fi)
{
	struct recorder *r = ctx;
	if (r->db)
		ckpt_db_put_frame(r->db, fi); /* a failure is sticky: reported at finish */
}

void recorder_init(struct recorder *r, struct nd_live *live, uint64_t digest_interval)
{
	memset(r, 0, sizeof(*r));
	r->nd.ops = &record_ops;
	r->nd.backend = r;
	r->nd.boot_epoch_ns = live->nd.boot_epoch_ns;
	r->live = live;
	r->digest_interval = digest_interval;
	const char *p = getenv("DETVM_PERTURB_US");
	r->perturb_us = p ? (uint32_t)strtoul(p, NULL, 10) : 0;
	r->start_ns = nd_host_mono_ns();
}

void recorder_attach(struct recorder *r, struct vm *vm, struct trace_writer *w)
{
	r->vm = vm;
	r->w = w;
	vm->mem_digest = MEM_DIGEST_SPARSE; /* as recorder_header() says */
	r->next_digest = r->digest_interval;
	r->last_ckpt_ns = nd_host_mono_ns();
	r->last_flush_ns = nd_host_mono_ns();
	vm->hooks = (struct vm_hooks){
		.exit = hook_exit,
		.inject = hook_inject,
		.async_exit = hook_async_exit,
		.async_done = hook_async_done,
		.before_run = hook_before_run,
		.serial_byte = hook_serial,
		.ctx = r,
	};
	/* Without an exact progress counter an asynchronous delivery could not
	 * be replayed at the same instruction: wait for a synchronous exit. */
	vm->defer_async = vm->progress_kind == PROGRESS_NONE;
}

/*
 * A file's identity under its absolute path: replay finds it there from
 * any working directory (and accepts it only by content).  Header errors
 * are ORed into *rc.
 */
static void add_file_id(struct trace_header *h, uint16_t tag, const char *path, uint64_t size,
			const struct trace_hash128 *id, int *rc)
{
	char *abs = realpath(path, NULL);   /* the path as given if it cannot be resolved */
	*rc |= trace_header_add_file_id(h, tag, size, id, abs ? abs : path);
	free(abs);
}

struct trace_header *recorder_header(struct recorder *r, struct vm *vm,
				     const struct recorder_header_info *info,
				     char *err, size_t errlen)
{
	struct trace_header *h = trace_header_new();
	char host[400];
	struct utsname u;
	int rc = 0;

	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* The kernel as vm_create loaded it, not as the file is now.  The
	 * disk is read at its name; blockdev_changed() catches an image
	 * replaced since it was opened. */
	struct trace_hash128 id = { .lo = vm->kernel_hash_lo, .hi = vm->kernel_hash_hi };
	uint64_t size;
	add_file_id(h, TRACE_TAG_KERNEL_ID, info->kernel_path, vm->kernel_size, &id, &rc);
	if (info->disk_path) {
		if (file_identity(info->disk_path, &size, &id, err, errlen))
			goto fail;
		add_file_id(h, TRACE_TAG_DISK_ID, info->disk_path, size, &id, &rc);
	}
	rc |= trace_header_add_str(h, TRACE_TAG_DETVM_VERSION, CLI_VERSION);
	rc |= trace_header_add_u64(h, TRACE_TAG_MEM_SIZE, vm->mem.size);
	rc |= trace_header_add(h, TRACE_TAG_CPUID, vm->kvm.cpuid.e,
			       vm->kvm.cpuid.hdr.nent * sizeof(struct kvm_cpuid_entry2));
	/* Initial MSR values: every MSR KVM saves for this vCPU (the vCPU
	 * state's MSRS section has the SPEC's entry layout after a u32 count);
	 * the ones the monitor answers itself are MSR_POLICY's (msr.h). */
	{
		uint8_t *blob = NULL;
		size_t blen = 0;
		const uint8_t *sec = NULL;
		uint32_t slen = 0;
		char e2[300];
		if (vcpu_state_save(&vm->kvm, &blob, &blen, e2, sizeof(e2)) ||
		    vcpu_state_section(blob, blen, VCPU_STATE_MSRS, &sec, &slen, e2, sizeof(e2)) || slen < 4) {
			free(blob);
			snprintf(err, errlen, "reading the initial MSR values: %s", e2);
			goto fail;
		}
		rc |= trace_header_add(h, TRACE_TAG_MSRS, sec + 4, slen - 4);
		free(blob);
	}
	int xsz = ioctl(vm->kvm.sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	uint64_t xcr0 = 0;
	for (uint32_t i = 0; i < vm->kvm.cpuid.hdr.nent; i++)
		if (vm->kvm.cpuid.e[i].function == 0xd && vm->kvm.cpuid.e[i].index == 0)
			xcr0 = vm->kvm.cpuid.e[i].eax | ((uint64_t)vm->kvm.cpuid.e[i].edx << 32);
	rc |= trace_header_add_xsave(h, xsz > 0 ? (uint32_t)xsz : 0, xcr0);
	rc |= trace_header_add_str(h, TRACE_TAG_CMDLINE, info->cmdline ? info->cmdline : "");
	rc |= trace_header_add_u64(h, TRACE_TAG_BOOT_EPOCH_NS, r->nd.boot_epoch_ns);
	snprintf(host, sizeof(host), "unknown");
	if (uname(&u) == 0)
		snprintf(host, sizeof(host), "%s %s %s", u.sysname, u.release, u.machine);
	rc |= trace_header_add_str(h, TRACE_TAG_HOST, host);
	rc |= trace_header_add_str(h, TRACE_TAG_PROGRESS_COUNTER, progress_name(vm->progress_kind));
	/* The digest whose cost follows the memory in use, not RAM's size
	 * (vmm/mem_digest.h); recorder_attach() makes the VM compute it. */
	rc |= trace_header_add_str(h, TRACE_TAG_MEM_DIGEST, TRACE_MEM_DIGEST_SPARSE);
	/* Absent means detvm-1, as in recordings made before the field. */
	if (vm->msr_policy != MSR_POLICY_1)
		rc |= trace_header_add_str(h, TRACE_TAG_MSR_POLICY, msr_policy_name(vm->msr_policy));
	rc |= trace_header_add_u64(h, TRACE_TAG_LANDMARK_BOUND_NS, info->landmark_bound_ns);
	rc |= trace_header_add_u64(h, TRACE_TAG_DIGEST_INTERVAL, r->digest_interval);
	rc |= trace_header_add_str(h, TRACE_TAG_BOOT_MODE,
				   vm->boot.mode == BOOT_NATIVE64 ? TRACE_BOOT_ELF64 : TRACE_BOOT_MULTIBOOT);
	rc |= trace_header_add_str(h, TRACE_TAG_SERIAL_IN, info->serial_in ? info->serial_in : "");
	if (rc) {
		snprintf(err, errlen, "building the trace header: %s", strerror(errno));
		goto fail;
	}
	return h;
fail:
	trace_header_free(h);
	return NULL;
}

static uint8_t end_reason(const struct vm *vm)
{
	switch (vm->stop) {
	case VM_STOP_POWEROFF:
	case VM_STOP_DEBUG_EXIT:
	case VM_STOP_HALTED:
		return TRACE_END_GUEST_EXIT;
	case VM_STOP_TRIPLE_FAULT:
		return TRACE_END_SHUTDOWN;
	case VM_STOP_SIGNAL:
		return TRACE_END_USER_STOP;
	default:
		return TRACE_END_ERROR;
	}
}

/*
 * The final digests cannot be taken: the trace ends without END, as a
 * killed recorder's does, but everything recorded up to here still reaches
 * the file (the current frame is closed here; freeing the writer drains it)
 * and the database's index.
 */
static int finish_without_end(struct recorder *r, char *err, size_t errlen, const char *why)
{
	r->landmark_pending = false;
	index_flush(r);
	snprintf(err, errlen, "%s: the trace ends without END", why);
	if (trace_writer_flush(r->w))
		snprintf(err, errlen, "%s: the trace ends without END, and its last frame was lost: %s", why,
			 trace_writer_error(r->w));
	return -1;
}

int recorder_end(struct recorder *r, char *err, size_t errlen)
{
	struct trace_event ev = { .type = TRACE_EV_END };
	ev.end.reason = end_reason(r->vm);
	ev.end.status = (uint64_t)vm_exit_status(r->vm);
	struct vm_digests d;
	char why[200], msg[300];
	/* Test knob (t_record.sh): the path a failed KVM_GET_REGS takes. */
	const char *t = getenv("DETVM_TEST_FINAL_DIGEST_FAILS");
	if (t && strcmp(t, "1") == 0)
		return finish_without_end(r, err, errlen, "the final digests: DETVM_TEST_FINAL_DIGEST_FAILS is set");
	if (vm_digests(r->vm, &d, why, sizeof(why))) {
		snprintf(msg, sizeof(msg), "the final digests: %s", why);
		return finish_without_end(r, err, errlen, msg);
	}
	ev.end.regs_hash = d.regs;
	ev.end.mem_hash.lo = d.mem_lo;
	ev.end.mem_hash.hi = d.mem_hi;
	r->landmark_pending = false;
	if (r->vm->between_exits) {
		/* Stopped (Ctrl-C) after the guest ran on from its last exit: a
		 * landmark tells the replay where the digests were taken.
		 * Without a progress counter vm_run stops here only when told
		 * twice, and a replay could not find the place. */
		if (r->vm->progress_kind == PROGRESS_NONE)
			return finish_without_end(r, err, errlen,
						  "stopped between two exits of the guest, with no progress counter "
						  "to say where");
		emit_landmark(r);
		if (r->failed)
			return finish_without_end(r, err, errlen, "the final landmark");
	}
	if (r->db) {
		index_event(r, &ev, trace_writer_events(r->w));
		index_flush(r);
		/* The index's last rows are committed while the trace closes. */
		ckpt_db_commit_soon(r->db);
	}
	r->end = ev;
	r->end_ready = true;
	return 0;
}

int recorder_write_end(struct recorder *r, char *err, size_t errlen)
{
	if (!r->end_ready) {
		snprintf(err, errlen, "recorder_write_end: no END (recorder_end failed or was not called)");
		return -1;
	}
	r->end_ready = false;
	if (trace_writer_write_end(r->w, &r->end)) {
		snprintf(err, errlen, "closing the trace: %s", trace_writer_error(r->w));
		return -1;
	}
	return 0;
}
