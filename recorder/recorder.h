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

#include "checkpoint/ckpt_db.h"
#include "trace-format/trace.h"
#include "vmm/nd_live.h"
#include "vmm/progress.h"
#include "vmm/vm.h"

#define RECORD_DIGEST_INTERVAL  100000ULL   /* exits between DIGEST events */
#define RECORD_FLUSH_NS         100000000ULL  /* close a frame after 100 ms once ... */
#define RECORD_FLUSH_MIN_BYTES  4096          /* ... this much is pending, */
#define RECORD_FLUSH_MAX_NS     1000000000ULL /* and after 1 s whatever is pending */
/*
 * Checkpoints: one whenever replaying from the previous one would take
 * longer than RECORD_CKPT_NS, estimated as the guest's running (not idle)
 * host time plus RECORD_LANDMARK_REPLAY_NS per forced exit, or after
 * RECORD_CKPT_EXITS exits (~8-10 us each at replay).  So that seeking to any
 * exit restores a checkpoint and replays at most ~0.25-0.5 s.
 *
 * Reaching a forced exit at replay costs only 0.2-0.4 ms more than running
 * to it (bench spin and memloop), but about one in 500 overshoots (0-1
 * per memloop replay), and an overshoot rewinds to the last checkpoint and
 * replays from there (replayer/session.c).  Counting each forced exit as
 * 12 ms keeps checkpoints dense where forced exits are: on memloop, 17
 * checkpoints instead of 3, which costs its recording about 3 ms (1%) and
 * saves its replays about 60 ms per overshoot (measured, 8 replays each:
 * at 1 ms a forced exit, 512-517 ms without an overshoot and 605-629 ms
 * with one; at 12 ms, 468-532 ms and 548 ms).
 */
#define RECORD_CKPT_NS          250000000ULL
#define RECORD_CKPT_EXITS       25000ULL
#define RECORD_LANDMARK_REPLAY_NS 12000000ULL
#define RECORD_INDEX_FLUSH_ROWS 4096

struct recorder {
	struct nd nd;             /* what the devices see */
	struct nd_live *live;     /* where the values come from */
	struct trace_writer *w;
	struct vm *vm;
	uint64_t digest_interval;
	uint64_t next_digest;
	uint64_t last_flush_ns;
	bool landmark_pending;
	bool failed;
	uint64_t landmarks;
	uint32_t perturb_us;      /* DETVM_PERTURB_US: random delay before injections (tests) */
	uint64_t last_clock;      /* the guest's virtual time: last CLOCK/TIMER value */

	/* Checkpoints and the index (NULL db: none). */
	struct ckpt_db *db;
	uint64_t ckpt_ns, ckpt_exits;   /* intervals; 0: that trigger off */
	uint64_t start_ns;              /* host monotonic start of the recording */
	uint64_t last_ckpt_ns, last_ckpt_exit, last_ckpt_landmarks, idle_ns;
	bool ckpt_first_done;
	uint64_t checkpoints, ckpt_pause_total_ns, ckpt_pause_max_ns;
	const char *cur_device;         /* device of the exit being handled */
	struct ckpt_event_row *rows;    /* index rows not yet handed to db */
	size_t nrows, caprows;
	uint8_t serial[512];            /* serial output not yet handed to db */
	size_t nserial;
	uint64_t serial_exit;
	struct trace_event end;         /* recorder_end's, for recorder_write_end */
	bool end_ready;
};

/* The progress counter recorded is the VM's (vm_config.detect_progress). */
void recorder_init(struct recorder *r, struct nd_live *live, uint64_t digest_interval);
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
/*
 * Take checkpoints into db (before recorder_attach; NULL: none).  Intervals:
 * ns of estimated replay time, exits; 0 turns that trigger off.
 */
void recorder_set_checkpoints(struct recorder *r, struct ckpt_db *db, uint64_t ns, uint64_t exits);
/* For trace_writer_opts.on_frame: the frame index. */
void recorder_on_frame(void *ctx, const struct trace_frame_info *fi);
/*
 * The end of the recording, in steps that let the VM's teardown
 * (vm_release_begin) and the checkpoint database's last commit and fsync
 * overlap the trace's:
 *
 * recorder_end: the recorder's last use of the VM.  Take the final
 * digests (and a landmark if the guest was stopped between two exits),
 * prepare END, hand the index's last rows to the database.  0, or -1 with
 * a message: the trace then ends without END, as a killed recorder's does,
 * with every frame recorded so far flushed.
 *
 * recorder_write_end: write END, the last frame and the trailer
 * (trace_writer_write_end).  Only after recorder_end returned 0.  The
 * caller then makes the trace durable with trace_writer_close(w, NULL).
 */
int recorder_end(struct recorder *r, char *err, size_t errlen);
int recorder_write_end(struct recorder *r, char *err, size_t errlen);

#endif
