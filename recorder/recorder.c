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

#include "recorder/exit_event.h"
#include "recorder/recording.h"

#define CLI_VERSION "0.1.0"

static void record_fail(struct recorder *r)
{
	if (r->failed)
		return;
	r->failed = true;
	vm_set_stop(r->vm, VM_STOP_MONITOR_ERROR, "writing the trace failed at exit %" PRIu64 ": %s",
		    r->vm ? r->vm->stats.exits : 0, trace_writer_error(r->w));
}

static void emit_landmark(struct recorder *r)
{
	struct trace_event ev = { .type = TRACE_EV_EXIT_LANDMARK };
	struct kvm_regs regs;
	uint64_t counter = 0;

	r->landmark_pending = false;
	kvm_read_insn_emulation(&r->vm->kvm, &counter);
	memset(&regs, 0, sizeof(regs));
	ioctl(r->vm->kvm.vcpu_fd, KVM_GET_REGS, &regs);
	ev.landmark.progress = counter;
	ev.landmark.rip = regs.rip;
	ev.landmark.regs_hash = vm_regs_hash(r->vm);
	r->vm->stats.exits++;
	r->vm->stats.by_kind[VMX_LANDMARK]++;
	r->landmarks++;
	if (trace_writer_append(r->w, &ev))
		record_fail(r);
}

/* Append one event; a pending landmark goes first. */
static void append(struct recorder *r, const struct trace_event *ev)
{
	if (!r->w || r->failed)
		return;
	if (r->landmark_pending)
		emit_landmark(r);
	if (trace_writer_append(r->w, ev))
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
}

static void rec_idle_wait(struct nd *nd, bool has_deadline, uint64_t deadline)
{
	struct recorder *r = nd->backend;
	maybe_flush(r);
	r->live->nd.ops->idle_wait(&r->live->nd, has_deadline, deadline);
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
	ev.digest.regs_hash = vm_regs_hash(r->vm);
	vm_mem_hash(r->vm, &ev.digest.mem_hash.lo, &ev.digest.mem_hash.hi);
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

void recorder_init(struct recorder *r, struct nd_live *live, enum progress_kind progress,
		   uint64_t digest_interval)
{
	memset(r, 0, sizeof(*r));
	r->nd.ops = &record_ops;
	r->nd.backend = r;
	r->nd.boot_epoch_ns = live->nd.boot_epoch_ns;
	r->live = live;
	r->progress = progress;
	r->digest_interval = digest_interval;
	const char *p = getenv("DETVM_PERTURB_US");
	r->perturb_us = p ? (uint32_t)strtoul(p, NULL, 10) : 0;
}

void recorder_attach(struct recorder *r, struct vm *vm, struct trace_writer *w)
{
	r->vm = vm;
	r->w = w;
	r->next_digest = r->digest_interval;
	r->last_flush_ns = nd_host_mono_ns();
	vm->hooks = (struct vm_hooks){
		.exit = hook_exit,
		.inject = hook_inject,
		.async_exit = hook_async_exit,
		.async_done = hook_async_done,
		.ctx = r,
	};
	/* Without an exact progress counter an asynchronous delivery could not
	 * be replayed at the same instruction: wait for a synchronous exit. */
	vm->defer_async = r->progress == PROGRESS_NONE;
}

struct trace_header *recorder_header(struct recorder *r, struct vm *vm,
				     const struct recorder_header_info *info,
				     char *err, size_t errlen)
{
	struct trace_header *h = trace_header_new();
	struct trace_hash128 id;
	uint64_t size;
	char host[400];
	struct utsname u;
	int rc = 0;

	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (file_identity(info->kernel_path, &size, &id, err, errlen))
		goto fail;
	rc |= trace_header_add_file_id(h, TRACE_TAG_KERNEL_ID, size, &id, info->kernel_path);
	if (info->disk_path) {
		if (file_identity(info->disk_path, &size, &id, err, errlen))
			goto fail;
		rc |= trace_header_add_file_id(h, TRACE_TAG_DISK_ID, size, &id, info->disk_path);
	}
	rc |= trace_header_add_str(h, TRACE_TAG_DETVM_VERSION, CLI_VERSION);
	rc |= trace_header_add_u64(h, TRACE_TAG_MEM_SIZE, vm->mem.size);
	rc |= trace_header_add(h, TRACE_TAG_CPUID, vm->kvm.cpuid.e,
			       vm->kvm.cpuid.hdr.nent * sizeof(struct kvm_cpuid_entry2));
	/* MSR values: the MSRs the monitor answers itself are a fixed policy
	 * (msr.c); initial values of the others are KVM's reset values and
	 * not captured yet (README, "not done"). */
	rc |= trace_header_add(h, TRACE_TAG_MSRS, "", 0);
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
	rc |= trace_header_add_str(h, TRACE_TAG_PROGRESS_COUNTER,
				   r->progress == PROGRESS_INSN_EMULATION ? TRACE_PROGRESS_INSN_EMULATION
									  : TRACE_PROGRESS_NONE);
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

int recorder_finish(struct recorder *r, char *err, size_t errlen)
{
	struct trace_event ev = { .type = TRACE_EV_END };
	ev.end.reason = end_reason(r->vm);
	ev.end.status = (uint64_t)vm_exit_status(r->vm);
	ev.end.regs_hash = vm_regs_hash(r->vm);
	vm_mem_hash(r->vm, &ev.end.mem_hash.lo, &ev.end.mem_hash.hi);
	r->landmark_pending = false;
	if (trace_writer_close(r->w, &ev)) {
		snprintf(err, errlen, "closing the trace: %s", trace_writer_error(r->w));
		return -1;
	}
	return 0;
}
