/* session.c - see session.h. */
#include "session.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/snapshot.h"
#include "recorder/recording.h"
#include "vmm/vcpu_state.h"

int replay_check_identity(const struct trace_header *h, uint16_t tag, const char *given,
			  const char **path, const char *what, char *err, size_t errlen)
{
	struct trace_file_id id;
	struct trace_hash128 hash;
	uint64_t size;
	char e2[400];

	if (trace_header_get_file_id(h, tag, &id)) {
		*path = NULL;
		if (given) {
			snprintf(err, errlen, "the recording has no %s, but one was given", what);
			return -1;
		}
		return 0;
	}
	*path = given ? given : id.path;
	if (file_identity(*path, &size, &hash, e2, sizeof(e2))) {
		snprintf(err, errlen, "%s: %s%s", what, e2, given ? "" : " (give its new place with --kernel / --disk)");
		return -1;
	}
	if (size != id.size || hash.lo != id.hash.lo || hash.hi != id.hash.hi) {
		snprintf(err, errlen, "%s '%s' is not the one recorded: %" PRIu64 " bytes, XXH3-128 %016"
			 PRIx64 "%016" PRIx64 "; the recording has %" PRIu64 " bytes, %016" PRIx64 "%016" PRIx64,
			 what, *path, size, hash.hi, hash.lo, id.size, id.hash.hi, id.hash.lo);
		return -1;
	}
	return 0;
}

/* The database, if the recording has one that belongs to this trace. */
struct ckpt_db *replay_session_db(struct replay_session *s)
{
	struct stat st;
	char err[600];

	if (s->db_tried)
		return s->db;
	s->db_tried = true;
	if (stat(s->db_path, &st) < 0) {
		snprintf(s->db_error, sizeof(s->db_error), "the recording has no checkpoint database (%.400s)", s->db_path);
		return NULL;
	}
	s->db = ckpt_db_open(s->db_path, err, sizeof(err));
	if (!s->db) {
		snprintf(s->db_error, sizeof(s->db_error), "%s", err);
		return NULL;
	}
	if (strcmp(ckpt_db_meta(s->db)->trace_id, s->trace_id)) {
		snprintf(s->db_error, sizeof(s->db_error), "%.400s belongs to another recording (trace %.16s..., this trace %.16s...)",
			 s->db_path, ckpt_db_meta(s->db)->trace_id, s->trace_id);
		ckpt_db_close(s->db);
		s->db = NULL;
	}
	return s->db;
}

int replay_session_open(struct replay_session *s, const char *rec,
			const struct replay_session_opts *opts, char *err, size_t errlen)
{
	char e2[600];
	size_t ncpuid = 0;

	memset(s, 0, sizeof(*s));
	s->restored = -1;
	if (opts)
		s->opts = *opts;
	snprintf(s->rec, sizeof(s->rec), "%s", rec);
	if (recording_trace_path(rec, s->trace_path, sizeof(s->trace_path), err, errlen))
		return -1;
	/* The database sits beside the trace. */
	snprintf(s->db_path, sizeof(s->db_path), "%s", s->trace_path);
	char *slash = strrchr(s->db_path, '/');
	if (slash)
		snprintf(slash + 1, sizeof(s->db_path) - (size_t)(slash + 1 - s->db_path), "%s", CKPT_DB_FILE);
	else
		snprintf(s->db_path, sizeof(s->db_path), "%s", CKPT_DB_FILE);
	s->r = trace_reader_open(s->trace_path, err, errlen);
	if (!s->r)
		return -1;
	const struct trace_header *h = trace_reader_header(s->r);
	/* What the database must name (replay_session_db), kept: the reader
	 * is replaced by seeking, and may be gone after a failed one. */
	uint8_t hh[TRACE_HASH_SIZE];
	trace_reader_header_hash(s->r, hh);
	trace_hash_hex(hh, s->trace_id);
	if (trace_header_check_required(h, e2, sizeof(e2))) {
		snprintf(err, errlen, "%s: %s", s->trace_path, e2);
		goto fail;
	}
	if (replay_check_identity(h, TRACE_TAG_KERNEL_ID, s->opts.kernel, &s->cfg.kernel_path, "kernel", err, errlen) ||
	    replay_check_identity(h, TRACE_TAG_DISK_ID, s->opts.disk, &s->cfg.disk_path, "disk image", err, errlen))
		goto fail;
	trace_header_get_u64(h, TRACE_TAG_MEM_SIZE, &s->cfg.mem_size);
	trace_header_get_u64(h, TRACE_TAG_BOOT_EPOCH_NS, &s->epoch);
	s->cfg.cmdline = trace_header_get_str(h, TRACE_TAG_CMDLINE);
	const char *mode = trace_header_get_str(h, TRACE_TAG_BOOT_MODE);
	s->cfg.force_multiboot = mode && strcmp(mode, TRACE_BOOT_MULTIBOOT) == 0;
	s->cfg.disk_overlay = true;
	const char *md = trace_header_get_str(h, TRACE_TAG_MEM_DIGEST);
	s->mem_digest = MEM_DIGEST_FULL; /* format 1.0 */
	if (md && mem_digest_parse(md, &s->mem_digest)) {
		snprintf(err, errlen, "%s: unknown memory digest '%s' in the header", s->trace_path, md);
		goto fail;
	}
	/* The MSRs the recording's monitor answered: a replay that answered
	 * others would see other exits.  Absent: recorded before the field. */
	const char *mp = trace_header_get_str(h, TRACE_TAG_MSR_POLICY);
	s->cfg.msr_policy = MSR_POLICY_1;
	if (mp && msr_policy_parse(mp, &s->cfg.msr_policy)) {
		snprintf(err, errlen, "%s: unknown MSR policy '%s' in the header", s->trace_path, mp);
		goto fail;
	}
	const char *pc = trace_header_get_str(h, TRACE_TAG_PROGRESS_COUNTER);
	if (!pc || progress_parse(pc, &s->cfg.progress)) {
		snprintf(err, errlen, "%s: unknown progress counter '%s' in the header", s->trace_path, pc ? pc : "");
		goto fail;
	}
	s->cfg.cpuid = trace_header_get_cpuid(h, &ncpuid);
	s->cfg.cpuid_count = ncpuid;
	/* The header belongs to the reader, which seeking replaces: keep
	 * copies of what the VM configuration points to. */
	s->cfg_kernel = s->cfg.kernel_path ? strdup(s->cfg.kernel_path) : NULL;
	s->cfg_disk = s->cfg.disk_path ? strdup(s->cfg.disk_path) : NULL;
	s->cfg_cmdline = s->cfg.cmdline ? strdup(s->cfg.cmdline) : NULL;
	s->cfg_cpuid = ncpuid ? malloc(ncpuid * sizeof(*s->cfg_cpuid)) : NULL;
	if ((s->cfg.kernel_path && !s->cfg_kernel) || (s->cfg.disk_path && !s->cfg_disk) ||
	    (s->cfg.cmdline && !s->cfg_cmdline) || (ncpuid && !s->cfg_cpuid)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (ncpuid)
		memcpy(s->cfg_cpuid, s->cfg.cpuid, ncpuid * sizeof(*s->cfg_cpuid));
	s->cfg.kernel_path = s->cfg_kernel;
	s->cfg.disk_path = s->cfg_disk;
	s->cfg.cmdline = s->cfg_cmdline;
	s->cfg.cpuid = s->cfg_cpuid;
	return 0;
fail:
	replay_session_close(s);
	return -1;
}

/* Read and drop events until the next one is number `event`. */
static int skip_to_event(struct replay_session *s, uint64_t have_next, uint64_t event, char *err, size_t errlen)
{
	struct trace_event ev;
	for (uint64_t k = have_next; k < event; k++) {
		int r = trace_reader_next(s->r, &ev);
		if (r != 1) {
			snprintf(err, errlen, "%s: event %" PRIu64 " (where the checkpoint resumes) cannot be read: %s",
				 s->trace_path, event, r < 0 ? trace_reader_error(s->r) : "the trace ends before it");
			return -1;
		}
	}
	return 0;
}

/* Position the trace reader so that its next event is `event`. */
static int seek_trace(struct replay_session *s, uint64_t event, char *err, size_t errlen)
{
	struct ckpt_frame_row f;
	char e2[400];

	/* A fresh reader: earlier sessions may have read past the point. */
	trace_reader_close(s->r);
	s->r = trace_reader_open(s->trace_path, err, errlen);
	if (!s->r)
		return -1;
	if (event == 0)
		return 0;
	if (replay_session_db(s) && ckpt_db_frame_for_event(s->db, event, &f, e2, sizeof(e2)) == 0) {
		if (trace_reader_seek(s->r, f.offset, f.seq, f.first_event, f.prev_hash)) {
			snprintf(err, errlen, "%s: seeking to frame %" PRIu64 " at offset %" PRIu64 ": %s",
				 s->trace_path, f.seq, f.offset, trace_reader_error(s->r));
			return -1;
		}
		return skip_to_event(s, f.first_event, event, err, errlen);
	}
	/* No frame index row (a recorder killed before committing it):
	 * read from the start. */
	return skip_to_event(s, 0, event, err, errlen);
}

/*
 * Test knob (tests/e2e/t_overshoot.sh): with DETVM_TEST_BETWEEN_VMS=FILE,
 * a replay that makes a VM after stopping another (a rewind after an
 * overshoot, or a seek back) creates FILE there and waits until it is gone
 * (at most 60 s), so that a test can act exactly between the two VMs:
 * write to the disk image after the old VM's last look at it and before
 * the new one opens it.
 */
static void test_pause_between_vms(void)
{
	const char *f = getenv("DETVM_TEST_BETWEEN_VMS");
	if (!f || !*f)
		return;
	FILE *m = fopen(f, "w");
	if (!m) {
		fprintf(stderr, "detvm replay: DETVM_TEST_BETWEEN_VMS: cannot create %s: %s\n", f, strerror(errno));
		return;
	}
	fclose(m);
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	for (int i = 0; i < 6000 && access(f, F_OK) == 0; i++)
		nanosleep(&tick, NULL);
}

/* A new VM must not start from an image changed since the first opened
 * it (s->disk_changed says how): -1. */
static int refuse_changed_image(const struct replay_session *s, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: the replay cannot start again from the changed image", s->disk_changed);
	return -1;
}

int replay_session_start(struct replay_session *s, uint64_t target, bool use_checkpoints,
			 char *err, size_t errlen)
{
	struct ckpt_info ci;
	char e2[600];
	bool restore = false;
	bool again = s->vm_live;

	replay_session_stop(s);
	if (again)
		test_pause_between_vms();
	if (s->disk_changed[0])
		return refuse_changed_image(s, err, errlen);
	s->restored = -1;
	s->restore_seconds = 0;
	if (use_checkpoints && replay_session_db(s) && ckpt_db_find(s->db, target, &ci, e2, sizeof(e2)) == 0 &&
	    ci.exit > 0)
		restore = true;
	if (restore && seek_trace(s, ci.event, err, errlen))
		return -1;
	if (!restore && seek_trace(s, 0, err, errlen))
		return -1;
	replayer_init(&s->rp, s->r, s->epoch);
	if (vm_create(&s->vm, &s->cfg, &s->rp.nd, s->opts.serial_out, err, errlen)) {
		vm_destroy(&s->vm);
		return -1;
	}
	s->vm_live = true;
	if (s->vm.bd && !s->disk_first_set) {
		s->disk_first = *blockdev_opened(s->vm.bd);
		s->disk_first_set = true;
	} else if (s->vm.bd && blockdev_changed_since(s->vm.bd, &s->disk_first, s->disk_changed,
						      sizeof(s->disk_changed)) > 0) {
		return refuse_changed_image(s, err, errlen);
	} else {
		s->disk_changed[0] = 0; /* "cannot tell" leaves no message behind */
	}
	/* The kernel file was checked at open; each VM reads it again (a
	 * rewind makes a new one): what it loaded must still be that one. */
	struct trace_file_id kid;
	if (trace_header_get_file_id(trace_reader_header(s->r), TRACE_TAG_KERNEL_ID, &kid) == 0 &&
	    (s->vm.kernel_size != kid.size || s->vm.kernel_hash_lo != kid.hash.lo ||
	     s->vm.kernel_hash_hi != kid.hash.hi)) {
		snprintf(err, errlen, "kernel '%s' changed after it was checked: %" PRIu64 " bytes, XXH3-128 %016"
			 PRIx64 "%016" PRIx64 " were loaded; the recording has %" PRIu64 " bytes, %016" PRIx64
			 "%016" PRIx64, s->cfg.kernel_path, s->vm.kernel_size, s->vm.kernel_hash_hi,
			 s->vm.kernel_hash_lo, kid.size, kid.hash.hi, kid.hash.lo);
		return -1;
	}
	s->vm.mem_digest = s->mem_digest;
	replayer_attach(&s->rp, &s->vm);
	if (restore) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (snapshot_restore(&s->vm, s->db, &ci, err, errlen))
			return -1;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		s->restore_seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		s->rp.events = ci.event;
		s->rp.last_clock = ci.guest_ns;
		s->vm.resume_replay = true;
		s->restored = ci.id;
	}
	return 0;
}

/* What a rewound replay takes over once it is back at the furthest exit
 * the first run reached, and what the caller had set up. */
struct resync {
	struct vm_stats stats;
	uint64_t events, digests;
	bool user_stop_set;
	uint64_t user_stop_exit;
	void (*before_run)(void *, struct vm *);
};

/* Back at the exit where the overshoot happened: carry on from here as the
 * first run would have. */
static void take_over(struct replay_session *s, const struct resync *r)
{
	s->vm.stats = r->stats;
	s->rp.events = r->events;
	s->rp.digests_checked = r->digests;
	s->vm.stop_at_set = r->user_stop_set;
	s->vm.stop_at_exit = r->user_stop_exit;
	s->vm.hooks.before_run = r->before_run;
}

int replay_session_run(struct replay_session *s, bool use_checkpoints, char *err, size_t errlen)
{
	/* The furthest point reached before an overshoot (`resync_at`), and
	 * what the replay had counted there: a rewound replay that gets back
	 * to that exit is in exactly the same state, so it takes these over. */
	bool resyncing = false;
	uint64_t resync_at = 0;
	struct resync saved = {
		.user_stop_set = s->vm.stop_at_set,
		.user_stop_exit = s->vm.stop_at_exit,
		.before_run = s->vm.hooks.before_run,
	};
	double seconds = 0;

	for (;;) {
		vm_run(&s->vm);
		seconds += s->vm.stats.seconds;
		if (resyncing && s->vm.stop == VM_STOP_REACHED && s->vm.stats.exits == resync_at) {
			take_over(s, &saved);
			s->vm.stop = VM_STOP_NONE;
			s->vm.detail[0] = 0;
			s->vm.resume_replay = true; /* the forced exit is next in the trace */
			resyncing = false;
			continue;
		}
		if (s->vm.stop != VM_STOP_OVERSHOT)
			break;

		uint64_t at = s->vm.stats.exits; /* the forced exit is at + 1 */
		if (!resyncing) {
			saved.stats = s->vm.stats;
			saved.events = s->rp.events;
			saved.digests = s->rp.digests_checked;
			resync_at = at;
		}
		/* More care for this forced exit (only): CAREFUL, or STEP if
		 * CAREFUL was not enough here. */
		struct replay_care care = s->rp.care;
		replay_care_more(&care, at + 1);
		struct landmark_ctl lm = s->rp.lm;
		char why[512];
		snprintf(why, sizeof(why), "%s", s->vm.detail);
		if (replay_session_start(s, at, use_checkpoints, err, errlen)) {
			char e2[700];
			snprintf(e2, sizeof(e2), "rewinding after an overshoot (%s): %s", why, err);
			snprintf(err, errlen, "%s", e2);
			if (s->vm_live)
				vm_set_stop(&s->vm, VM_STOP_MONITOR_ERROR, "%s", err);
			return -1;
		}
		s->rewinds++;
		s->rp.lm = lm;
		s->rp.care = care;
		s->vm.serial_mute_through = resync_at;
		if (s->vm.stats.exits == resync_at) {
			/* The checkpoint is at the very exit: nothing to replay. */
			take_over(s, &saved);
			resyncing = false;
		} else {
			s->vm.stop_at_set = true;
			s->vm.stop_at_exit = resync_at;
			s->vm.hooks.before_run = NULL; /* the caller saw these exits already */
			resyncing = true;
		}
	}
	s->vm.stats.seconds = seconds;
	return 0;
}

int replay_session_goto(struct replay_session *s, uint64_t exit, bool use_checkpoints,
			char *err, size_t errlen)
{
	char msg[700];

	if (replay_session_start(s, exit, use_checkpoints, err, errlen))
		return -1;
	s->vm.stop_at_set = true;
	s->vm.stop_at_exit = exit;
	if (s->vm.stats.exits > exit) {
		snprintf(err, errlen, "internal error: checkpoint %" PRId64 " is past exit %" PRIu64, s->restored, exit);
		return -1;
	}
	if (replay_session_run(s, use_checkpoints, err, errlen))
		return -1;
	if (s->vm.stop == VM_STOP_REACHED && s->vm.stats.exits == exit)
		return vcpu_complete_pending(&s->vm.kvm, err, errlen);
	int rc = replayer_finish(&s->rp, msg, sizeof(msg));
	if (rc == 0 && s->vm.stats.exits == exit) {
		/* The guest stopped itself at exactly this exit (its last). */
		return 0;
	}
	if (rc == 0)
		snprintf(err, errlen, "the recording ends at exit %" PRIu64 ", before exit %" PRIu64 " (%s)",
			 s->vm.stats.exits, exit, msg);
	else
		snprintf(err, errlen, "%s", msg);
	return -1;
}

int replay_session_disk_changed(struct replay_session *s, char *err, size_t errlen)
{
	if (s->disk_changed[0]) {
		snprintf(err, errlen, "%s", s->disk_changed);
		return 1;
	}
	return s->vm_live && s->vm.bd ? blockdev_changed_since(s->vm.bd, &s->disk_first, err, errlen) : 0;
}

void replay_session_stop(struct replay_session *s)
{
	if (s->vm_live && s->vm.bd && !s->disk_changed[0]) {
		/* The next VM opens the image afresh: remember a change now.
		 * (A failed fstat, "cannot tell", is not remembered.) */
		char why[sizeof(s->disk_changed)];
		if (blockdev_changed_since(s->vm.bd, &s->disk_first, why, sizeof(why)) > 0)
			snprintf(s->disk_changed, sizeof(s->disk_changed), "%s", why);
	}
	if (s->vm_live) {
		vm_destroy(&s->vm);
		memset(&s->vm, 0, sizeof(s->vm));
		s->vm_live = false;
	}
}

void replay_session_close(struct replay_session *s)
{
	replay_session_stop(s);
	if (s->db)
		ckpt_db_close(s->db);
	s->db = NULL;
	if (s->r)
		trace_reader_close(s->r);
	s->r = NULL;
	free(s->cfg_kernel);
	free(s->cfg_disk);
	free(s->cfg_cmdline);
	free(s->cfg_cpuid);
	s->cfg_kernel = s->cfg_disk = s->cfg_cmdline = NULL;
	s->cfg_cpuid = NULL;
}
