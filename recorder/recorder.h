/*
 * recorder.h - recording a run: the record backend of the nondeterminism
 * gateway and the run-loop hooks that put every exit, every device-visible
 * time, entropy byte, console byte, timer expiry and injected interrupt into
 * the trace, in the order they happened.
 *
 * Event order in the trace (the replayer relies on it): an EXIT_* event,
 * then the CLOCK/ENTROPY events its device handling produced, then the
 * asynchronous phase's CONSOLE_IN, TIMER, IRQ events.  An asynchronous
 * exit (host timer kick, interrupt window) that delivers anything is
 * written as an EXIT_LANDMARK first: the value of the progress counter, RIP
 * and a register hash, which the replayer reaches exactly.  Without a
 * progress counter the recorder never delivers at asynchronous exits.
 */
#ifndef DETVM_RECORDER_H
#define DETVM_RECORDER_H

#include "trace-format/trace.h"
#include "vmm/nd_live.h"
#include "vmm/progress.h"
#include "vmm/vm.h"

#define RECORD_DIGEST_INTERVAL  100000ULL   /* exits between DIGEST events */
#define RECORD_LANDMARK_BOUND   5000000ULL  /* ns: longest exit-free run while input may be pending */
#define RECORD_FLUSH_NS         100000000ULL  /* close a frame after 100 ms once ... */
#define RECORD_FLUSH_MIN_BYTES  4096          /* ... this much is pending, */
#define RECORD_FLUSH_MAX_NS     1000000000ULL /* and after 1 s whatever is pending */

struct recorder {
	struct nd nd;             /* what the devices see */
	struct nd_live *live;     /* where the values come from */
	struct trace_writer *w;
	struct vm *vm;
	enum progress_kind progress;
	uint64_t digest_interval;
	uint64_t next_digest;
	uint64_t last_flush_ns;
	bool landmark_pending;
	bool failed;
	uint64_t landmarks;
	uint32_t perturb_us;      /* DETVM_PERTURB_US: random delay before injections (tests) */
};

void recorder_init(struct recorder *r, struct nd_live *live, enum progress_kind progress,
		   uint64_t digest_interval);
/* Hook into the VM and start writing to w. */
void recorder_attach(struct recorder *r, struct vm *vm, struct trace_writer *w);

struct recorder_header_info {
	const char *kernel_path, *disk_path, *serial_in, *cmdline;
	uint64_t landmark_bound_ns;
};
/* The trace header describing vm's configuration.  NULL with a message. */
struct trace_header *recorder_header(struct recorder *r, struct vm *vm,
				     const struct recorder_header_info *info,
				     char *err, size_t errlen);
/* Write END (with the final digests) and close the trace. */
int recorder_finish(struct recorder *r, char *err, size_t errlen);

#endif
