/*
 * session.h - a recording opened for replay: its trace, its checkpoint
 * database (if any) and one VM built from the recorded configuration.
 * `detvm replay` and the inspector use it to bring a fresh VM to any exit:
 *
 *   replay_session_open(&s, "REC", &opts, err, n);
 *   replay_session_goto(&s, 12345, true, err, n);   // restore + replay
 *   ... inspect s.vm (registers, RAM) ...
 *   replay_session_close(&s);
 *
 * "The state at exit N" is the state after exit N was handled completely
 * (its device, the interrupts delivered there), where the run loop is
 * about to enter the guest again; exit 0 is before the first instruction.
 * Checkpoints are taken at exactly such points, so seeking restores the
 * last checkpoint at or before N and replays the rest with every check of a
 * normal replay (exits, digests, landmarks).
 */
#ifndef DETVM_SESSION_H
#define DETVM_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "checkpoint/ckpt_db.h"
#include "replayer/replayer.h"
#include "trace-format/trace.h"
#include "vmm/vm.h"

struct replay_session_opts {
	const char *kernel, *disk;   /* new places of the recorded files, or NULL */
	FILE *serial_out;            /* the guest's console output, or NULL */
	bool quiet_warnings;
};

struct replay_session {
	char rec[4096];
	char trace_path[4200], db_path[4200];
	struct replay_session_opts opts;
	/* Replaced by every start (seeking opens the trace afresh): nothing
	 * may keep a pointer into its header across one (cfg has copies). */
	struct trace_reader *r;
	/* Use replay_session_db(): opened at the first need. */
	struct ckpt_db *db;          /* NULL: none, or not opened yet */
	bool db_tried;               /* replay_session_db() was called */
	char trace_id[TRACE_HASH_HEX_SIZE]; /* the header's hash, which the database names */
	char db_error[600];          /* why db is NULL once tried */
	struct vm_config cfg;        /* points into the copies below, not the reader;
				      * set cfg.dirty_log before start for vm_take_dirty() */
	char *cfg_kernel, *cfg_disk, *cfg_cmdline;
	struct kvm_cpuid_entry2 *cfg_cpuid;
	uint64_t epoch;
	enum mem_digest_kind mem_digest; /* the recording's (header MEM_DIGEST) */
	struct replayer rp;
	struct vm vm;
	bool vm_live;
	int64_t restored;            /* checkpoint restored, or -1 (replayed from the start) */
	uint64_t rewinds;            /* overshoot recoveries by replay_session_run */
	double restore_seconds;      /* time spent restoring it */
	/* Set when a VM's disk image was found written to as its VM was torn
	 * down (a rewind): the image is checked by content only once, at open. */
	char disk_changed[600];
	/* The image as the first VM opened it: later ones (rewinds) open it
	 * afresh, and a write between two VMs must not become their base. */
	struct stat disk_first;
	bool disk_first_set;
};

/*
 * Whether the disk image was written to since it was checked (by any of
 * the session's VMs so far): 1 with what in err, 0 if not, -1 if that
 * cannot be told (message in err).  See blockdev_changed().
 */
int replay_session_disk_changed(struct replay_session *s, char *err, size_t errlen);

/*
 * The recording's checkpoint database, opened at the first call (checked to
 * belong to this trace): NULL, with db_error, if the recording has none or
 * it cannot be used.  Opening it is 1-2 ms of SQLite here, which a replay
 * from the start that never rewinds never needs.
 */
struct ckpt_db *replay_session_db(struct replay_session *s);

/* Open the trace; check the recorded files.  The database waits for
 * replay_session_db(). */
int replay_session_open(struct replay_session *s, const char *rec,
			const struct replay_session_opts *opts, char *err, size_t errlen);
/*
 * Create the VM and make it ready to replay from the last checkpoint at or
 * before `target` (use_checkpoints, and the database has one), or from the
 * start.  Then vm_run(&s->vm) replays; set s->vm.stop_at_* to stop early.
 */
int replay_session_start(struct replay_session *s, uint64_t target, bool use_checkpoints,
			 char *err, size_t errlen);
/*
 * vm_run the started session until it stops for good, recovering from
 * overshot forced exits: the free-running approach to a forced exit can
 * run past it (landmark.h), and there is no stepping back, so the session
 * rewinds: it restores the last checkpoint before that exit (or starts
 * again), replays up to the exit before it with the guest's console output
 * muted (it was written once already) and the forced exits approached with
 * more care, then goes on as if nothing happened: statistics, output and
 * every check are those of one uninterrupted replay.  A hook the caller set
 * in s->vm.hooks.before_run is called once per exit, never for a replayed
 * stretch twice.  0, or -1 with a message if a rewind failed (the VM then
 * stops with VM_STOP_MONITOR_ERROR).  s->vm.stats.seconds is the total.
 */
int replay_session_run(struct replay_session *s, bool use_checkpoints, char *err, size_t errlen);
/*
 * start + run to the state at exit `exit`.  0 if reached; -1 with a message
 * (divergence, the recording ends before it, ...).
 */
int replay_session_goto(struct replay_session *s, uint64_t exit, bool use_checkpoints,
			char *err, size_t errlen);
/* Tear down the VM (the trace and database stay open for another start). */
void replay_session_stop(struct replay_session *s);
void replay_session_close(struct replay_session *s);

/* Size/XXH3-128 check of a recorded file against the header (replay --kernel/--disk). */
int replay_check_identity(const struct trace_header *h, uint16_t tag, const char *given,
			  const char **path, const char *what, char *err, size_t errlen);

#endif
