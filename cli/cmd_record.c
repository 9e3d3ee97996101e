/* cmd_record.c - `detvm record`: run a guest and record it. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/ckpt_db.h"
#include "common/fsync_dir.h"
#include "common/quiet_thread.h"
#include "recorder/recorder.h"
#include "recorder/recording.h"

static const char record_help[] =
	"usage: detvm record -o REC --kernel FILE [options]\n"
	"Run a guest and record every nondeterministic input into the recording REC\n"
	"(a directory; REC/trace is the trace).  'detvm replay REC' re-executes it.\n\n"
	"  -o, --output REC     the recording to create (required)\n"
	"  --force              overwrite an existing recording REC\n"
	"  --digest-interval N  exits between register+memory digests (default 100000; 0: only at the end)\n"
	"  --landmark-bound MS  how long an expired timer or console input may wait for the\n"
	"                       guest's next exit before a forced exit delivers it (default 1;\n"
	"                       0: every timer at its deadline, at a forced exit if need be)\n"
	"  --frame-bytes N      uncompressed bytes per trace frame (default 65536; 256..8388608)\n"
	"  --checkpoint-ms MS   a checkpoint whenever replaying from the last one would take\n"
	"                       about MS ms (default 250; 0: off), so that 'replay --to' and\n"
	"                       'inspect --at' reach any exit quickly\n"
	"  --checkpoint-exits N ... or after N exits (default 25000; 0: off)\n"
	"  --no-checkpoints     no checkpoint database (REC/checkpoints.db)\n"
	"%s"
	"The disk image is never written while recording: guest writes stay in memory,\n"
	"so that the image still matches the recording for replay.\n"
	"Exit status: as 'detvm run' (the guest's outcome); 2 if the recording failed.\n";

static struct nd_live live;
static struct recorder rec;

static int live_console(void *ctx)
{
	return nd_live_console_open(ctx);
}

/*
 * The recording failed before its guest ran: remove what it created, so
 * that the next 'record -o' of the same name is not refused.  A recording
 * reused with --force is left as it is.  The command's status.
 */
static int abandon(const char *rec, bool created)
{
	char err[600];
	if (created && recording_abandon(rec, err, sizeof(err)))
		fprintf(stderr, "detvm record: leaving the unfinished recording behind: %s\n", err);
	return 2;
}

/*
 * The trace writer and the checkpoint database are made on a thread of
 * their own while the main thread creates the VM (1.5-4 ms of KVM calls):
 * creating two files and the threads that write them cost about 0.6 ms,
 * a twentieth of recording a 20 ms guest, when they followed it.  Neither
 * destroys an old recording (--force) until begun, after the VM exists.
 * The recording's directory is made durable in its parent here too: the
 * files make their own names durable (fsync_dir.h).
 */
struct record_prep {
	const char *rec_path, *trace_path, *db_path;
	bool force, checkpoints;
	struct trace_writer_opts wopts;
	struct trace_writer *w;
	struct ckpt_db *db;	/* NULL without checkpoints */
	char err[600];		/* why, if w is NULL */
};

static void *record_prep(void *arg)
{
	struct record_prep *p = arg;
	if (fsync_parent_dir(p->rec_path)) {
		if (errno != EACCES && errno != EPERM) {
			snprintf(p->err, sizeof(p->err), "%s: fsync of the directory holding it: %s", p->rec_path,
				 strerror(errno));
			return NULL;
		}
		/* A directory one may write in but not read (mode 0733)
		 * cannot be opened to be fsynced; detvm recorded there before
		 * it fsynced it, and still does. */
		fprintf(stderr, "detvm record: warning: the directory holding %s cannot be opened to be fsynced (%s): "
			"the recording's name may not survive a crash of the OS\n", p->rec_path, strerror(errno));
	}
	p->w = trace_writer_prepare(p->trace_path, &p->wopts, p->err, sizeof(p->err));
	if (p->w && p->checkpoints) {
		p->db = ckpt_db_prepare(p->db_path, p->force, p->err, sizeof(p->err));
		if (!p->db) {
			trace_writer_free(p->w);
			p->w = NULL;
		}
	}
	return NULL;
}

/* Start record_prep on a thread that takes no signals (nor do the threads
 * it starts).  If no thread can be made, do it here. */
static bool prep_start(struct record_prep *p, pthread_t *t)
{
	if (!quiet_thread_start(t, record_prep, p))
		return true;
	record_prep(p);
	return false;
}

/* Join it; then undo it if `keep` is false (the VM could not be made). */
static void prep_join(struct record_prep *p, pthread_t t, bool threaded, bool keep)
{
	if (threaded) {
		int e = pthread_join(t, NULL);
		if (e) {
			/* Cannot happen with a joinable thread we made; were it
			 * to, its writers are unknown: fail without them. */
			snprintf(p->err, sizeof(p->err), "pthread_join of the set-up thread: %s", strerror(e));
			p->w = NULL;
			p->db = NULL;
			return;
		}
	}
	if (!keep) {
		ckpt_db_discard(p->db);
		trace_writer_free(p->w);
		p->db = NULL;
		p->w = NULL;
	}
}

int cmd_record(int argc, char **argv)
{
	struct run_opts o = { .vm.mem_size = VM_MEM_DEFAULT };
	const char *out_path = NULL;
	bool force = false;
	uint64_t digest_interval = RECORD_DIGEST_INTERVAL, bound_ms = VM_KICK_BOUND_DEFAULT_NS / 1000000;
	uint64_t frame_bytes = 0;
	uint64_t ckpt_ms = RECORD_CKPT_NS / 1000000, ckpt_exits = RECORD_CKPT_EXITS;
	bool checkpoints = true;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			printf(record_help, run_opts_help);
			return 0;
		}
		if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && i + 1 < argc) {
			out_path = argv[++i];
		} else if (strcmp(a, "--force") == 0) {
			force = true;
		} else if (strcmp(a, "--frame-bytes") == 0 && i + 1 < argc) {
			if (cli_option_u64("record", a, argv[++i], 256, 8u << 20, &frame_bytes))
				return 2;
		} else if (strcmp(a, "--digest-interval") == 0 && i + 1 < argc) {
			if (cli_option_u64("record", a, argv[++i], 0, UINT64_MAX, &digest_interval))
				return 2;
		} else if (strcmp(a, "--checkpoint-ms") == 0 && i + 1 < argc) {
			if (cli_option_u64("record", a, argv[++i], 0, 3600000, &ckpt_ms))
				return 2;
		} else if (strcmp(a, "--checkpoint-exits") == 0 && i + 1 < argc) {
			if (cli_option_u64("record", a, argv[++i], 0, UINT64_MAX, &ckpt_exits))
				return 2;
		} else if (strcmp(a, "--no-checkpoints") == 0) {
			checkpoints = false;
		} else if (strcmp(a, "--landmark-bound") == 0 && i + 1 < argc) {
			if (cli_option_u64("record", a, argv[++i], 0, 10000, &bound_ms))
				return 2;
		} else {
			int r = run_opt_parse(&o, argc, argv, &i);
			if (r < 0)
				return 2;
			if (r == 0) {
				fprintf(stderr, "detvm record: unknown option or missing argument '%s' (see 'detvm record --help')\n", a);
				return 2;
			}
		}
	}
	if (!out_path) {
		fprintf(stderr, "detvm record: -o REC is required (see 'detvm record --help')\n");
		return 2;
	}
	if (run_opts_check(&o, "record"))
		return 2;
	o.vm.disk_overlay = true;
	o.vm.dirty_log = checkpoints;

	char trace_path[4096], err[600];
	bool created;
	if (recording_create(out_path, force, &created, trace_path, sizeof(trace_path), err, sizeof(err))) {
		fprintf(stderr, "detvm record: %s\n", err);
		return 2;
	}
	/* Which progress counter: measured on the VM's own vCPU. */
	o.vm.detect_progress = true;
	/* Test knob (t_record.sh): record as detvm did before the header named
	 * the MSR policy, so that replaying such a recording is tested. */
	const char *old_msrs = getenv("DETVM_TEST_MSR_POLICY_1");
	if (old_msrs && strcmp(old_msrs, "1") == 0)
		o.vm.msr_policy = MSR_POLICY_1;

	int in_fd;
	FILE *serial;
	if (open_serial(&o, &in_fd, &serial))
		return abandon(out_path, created);
	install_stop_signals();
	nd_live_init(&live, in_fd, &vm_stop_requested);
	recorder_init(&rec, &live, digest_interval);

	char db_path[4200];
	snprintf(db_path, sizeof(db_path), "%s/%s", out_path, CKPT_DB_FILE);
	struct record_prep prep = {
		.rec_path = out_path, .trace_path = trace_path, .db_path = db_path, .force = force, .checkpoints = checkpoints,
		.wopts = { .async = true, .force = force, .frame_bytes = (size_t)frame_bytes,
			   .on_frame = recorder_on_frame, .on_frame_ctx = &rec },
	};
	pthread_t prep_thread;
	bool prep_threaded = prep_start(&prep, &prep_thread);

	static struct vm vm;
	if (vm_create(&vm, &o.vm, &rec.nd, serial, err, sizeof(err))) {
		fprintf(stderr, "detvm record: %s\n", err);
		prep_join(&prep, prep_thread, prep_threaded, false);
		vm_destroy(&vm);
		return abandon(out_path, created);
	}
	prep_join(&prep, prep_thread, prep_threaded, true);
	struct trace_writer *w = prep.w;
	struct ckpt_db *db = prep.db;
	if (!w) {
		fprintf(stderr, "detvm record: %s\n", prep.err);
		vm_destroy(&vm);
		return abandon(out_path, created);
	}
	enum progress_kind progress = vm.progress_kind;
	if (progress == PROGRESS_NONE)
		fprintf(stderr, "detvm record: no exact progress counter on this host (%s): interrupts will be "
			"delivered only at synchronous exits\n", vm.progress_why);
	struct recorder_header_info info = {
		.kernel_path = o.vm.kernel_path, .disk_path = o.vm.disk_path,
		.serial_in = o.serial_in, .cmdline = o.vm.cmdline,
		.landmark_bound_ns = bound_ms * 1000000,
	};
	struct trace_header *h = recorder_header(&rec, &vm, &info, err, sizeof(err));
	int brc = !h || trace_writer_begin(w, h, err, sizeof(err));
	if (!brc && db) {
		struct ckpt_meta meta = { .mem_size = vm.mem.size, .start_unix_ns = nd_host_real_ns() };
		uint8_t hh[TRACE_HASH_SIZE];
		trace_writer_header_hash(w, hh);
		trace_hash_hex(hh, meta.trace_id);
		if (vm.bd)
			meta.disk_size = blockdev_size(vm.bd);
		brc = ckpt_db_begin(db, &meta, err, sizeof(err));
	} else if (!brc && force && unlink(db_path) < 0 && errno != ENOENT) {
		snprintf(err, sizeof(err), "removing the old %.400s: %s", db_path, strerror(errno));
		brc = -1;
	}
	trace_header_free(h);
	if (brc) {
		fprintf(stderr, "detvm record: %s\n", err);
		ckpt_db_discard(db);
		trace_writer_free(w);
		vm_destroy(&vm);
		return abandon(out_path, created);
	}
	recorder_set_checkpoints(&rec, db, ckpt_ms * 1000000, ckpt_exits);
	recorder_attach(&rec, &vm, w);
	vm.host_timer = true;
	vm.timer_base_mono_ns = live.start_mono_ns;
	vm.kick_bound_ns = bound_ms * 1000000;
	vm.console_open_fn = live_console;
	vm.console_ctx = &live;

	vm_run(&vm);
	int status = vm_exit_status(&vm);
	char disk_why[600];
	int disk_changed = vm.bd ? blockdev_changed(vm.bd, disk_why, sizeof(disk_why)) : 0;
	int rc = recorder_end(&rec, err, sizeof(err));
	/*
	 * Three slow things of 0.4-1 ms each here overlap instead of
	 * following each other: the VM's teardown, the trace's fsyncs and
	 * the database's last commits and fsync (0.6 ms less of the 3 ms that
	 * recording adds to a 20 ms guest, bench/record_ab.py).
	 */
	vm_release_begin(&vm);
	if (!rc)
		rc = recorder_write_end(&rec, err, sizeof(err));
	struct trace_writer_stats st;
	if (rc)
		(void)trace_writer_drain(w); /* so that the figures below are the file's */
	trace_writer_stats(w, &st);
	if (rc) {
		/* Its thread indexes frames: it ends before the database's
		 * last puts.  (After recorder_write_end it has ended.) */
		trace_writer_free(w);
		w = NULL;
	}
	struct ckpt_db_stats cst = { 0 };
	char dberr[600] = "";
	int dbrc = 0;
	if (db) {
		/* trace_complete: END and the trailer are written (kill -9 can
		 * no longer lose them); if the fsync below fails, the record
		 * command fails with it. */
		char v[32];
		snprintf(v, sizeof(v), "%" PRIu64, vm.stats.exits);
		ckpt_db_put_meta(db, "end_exits", v);
		snprintf(v, sizeof(v), "%" PRIu64, st.events);
		ckpt_db_put_meta(db, "end_events", v);
		snprintf(v, sizeof(v), "%d", rc == 0);
		ckpt_db_put_meta(db, "trace_complete", v);
		ckpt_db_finish_begin(db);
	}
	if (w && trace_writer_close(w, NULL)) {
		snprintf(err, sizeof(err), "closing the trace: %s", trace_writer_error(w));
		rc = -1;
	}
	trace_writer_free(w);
	if (!o.quiet) {
		print_summary(stderr, &vm);
		fprintf(stderr, "detvm: recorded %s: %" PRIu64 " events, %" PRIu64 " landmarks, %" PRIu64
			" frames, %" PRIu64 " bytes (%.2f bytes/exit), progress counter %s\n",
			out_path, st.events, rec.landmarks, st.frames, st.file_bytes,
			vm.stats.exits ? (double)st.file_bytes / (double)vm.stats.exits : 0.0, progress_name(progress));
		if (vm.stats.async_put_off)
			fprintf(stderr, "detvm: %" PRIu64 " kicks found an exception in flight: their forced exits were "
				"put off until it was delivered\n", vm.stats.async_put_off);
	}
	vm_destroy(&vm);
	if (db)
		dbrc = ckpt_db_finish_stats(db, &cst, dberr, sizeof(dberr));
	if (!o.quiet) {
		if (db)
			fprintf(stderr, "detvm: %" PRIu64 " checkpoints (pause mean %.2f ms, max %.2f ms), %" PRIu64
				" distinct pages stored (%" PRIu64 " bytes compressed) of %" PRIu64 " captured\n",
				rec.checkpoints, rec.checkpoints ? (double)rec.ckpt_pause_total_ns / 1e6 / (double)rec.checkpoints : 0.0,
				(double)rec.ckpt_pause_max_ns / 1e6, cst.pages_new, cst.bytes_stored, cst.pages_in);
	}
	if (dbrc) {
		fprintf(stderr, "detvm record: checkpoint database: %s\n", dberr);
		if (!rc)
			status = 2;
	}
	if (rc) {
		fprintf(stderr, "detvm record: %s\n", err);
		status = 2;
	}
	if (report_disk_changed("record", disk_changed, disk_why))
		status = 2;
	close_serial_out(serial, o.serial_out, "record", vm.serial_out_errno);
	if (in_fd > STDIN_FILENO)
		close(in_fd);
	return status;
}
