/* cmd_replay.c - `detvm replay`: re-execute a recording and check it. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <string.h>

#include "replayer/session.h"

static const char replay_help[] =
	"usage: detvm replay REC [options]\n"
	"Re-execute the recording REC bit for bit, checking every exit against it,\n"
	"the periodic digests and the final register and memory digests.  Idle time\n"
	"is skipped.\n\n"
	"  --to EXIT          stop at exit EXIT (the state after that exit was handled;\n"
	"                     0: before the first instruction): restore the last\n"
	"                     checkpoint at or before it from REC/checkpoints.db and\n"
	"                     replay the rest; prints the register and memory digests there\n"
	"  --from-start       with --to: ignore the checkpoints, replay from the start\n"
	"  --kernel FILE      the kernel, if it is no longer at the recorded path\n"
	"                     (it must be the same file: size and XXH3-128 are checked)\n"
	"  --disk IMAGE       the disk image, likewise\n"
	"  --serial-out FILE  the guest's console output to FILE (default: stdout)\n"
	"  --quiet            no console output; only the summary\n\n"
	"Exit status: 0 the replay reproduced the recording (or reached --to EXIT);\n"
	"3 the recording was cut short and its whole prefix replayed; 10 divergence\n"
	"(the message says at which exit, what was expected and what happened);\n"
	"2 error (bad recording, files, console output that could not be written,\n"
	"EXIT past the end of the recording).\n";

static struct replay_session sess;

/* How the forced exits were reached: the cost of replaying them. */
static void print_landmark_stats(const struct replay_session *s)
{
	const struct landmark_ctl *c = &s->rp.lm;
	if (!c->reached && !c->overshoots)
		return;
	fprintf(stderr, "detvm replay: %" PRIu64 " forced exits reached in %.3f s (%" PRIu64 " timed runs, %" PRIu64
		" single steps, %" PRIu64 " breakpoint runs, %" PRIu64 " overshoots rewound)\n", c->reached,
		(double)c->ns / 1e9, c->runs, c->steps, c->bp_runs, c->overshoots);
	if (c->runs_over || c->pushf_fixed || c->fault_frames_fixed)
		fprintf(stderr, "detvm replay: stepping: %" PRIu64 " INT instructions run over to a breakpoint, %" PRIu64
			" PUSHF images and %" PRIu64 " exception frames cleared of the step's trap flag\n", c->runs_over,
			c->pushf_fixed, c->fault_frames_fixed);
}

/* The value of the option at argv[*i], which moves on to it; NULL (said)
 * if the option is the last argument. */
static const char *value_of(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc) {
		fprintf(stderr, "detvm replay: %s needs an argument (see 'detvm replay --help')\n", argv[*i]);
		return NULL;
	}
	return argv[++*i];
}

int cmd_replay(int argc, char **argv)
{
	const char *rec_path = NULL, *serial_out = NULL;
	struct replay_session_opts so = { 0 };
	bool quiet = false, has_to = false, from_start = false;
	uint64_t to = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(replay_help, stdout);
			return 0;
		} else if (strcmp(a, "--kernel") == 0) {
			if (!(so.kernel = value_of(argc, argv, &i)))
				return 2;
		} else if (strcmp(a, "--disk") == 0) {
			if (!(so.disk = value_of(argc, argv, &i)))
				return 2;
		} else if (strcmp(a, "--serial-out") == 0) {
			if (!(serial_out = value_of(argc, argv, &i)))
				return 2;
		} else if (strcmp(a, "--to") == 0) {
			if (!value_of(argc, argv, &i))
				return 2;
			if (cli_parse_u64(argv[i], 0, UINT64_MAX, &to)) {
				fprintf(stderr, "detvm replay: --to %s: not an exit ordinal (a whole number >= 0)\n", argv[i]);
				return 2;
			}
			has_to = true;
		} else if (strcmp(a, "--from-start") == 0) {
			from_start = true;
		} else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
			quiet = true;
		} else if (a[0] == '-' || rec_path) {
			fprintf(stderr, "detvm replay: unexpected argument '%s' (see 'detvm replay --help')\n", a);
			return 2;
		} else {
			rec_path = a;
		}
	}
	if (!rec_path) {
		fprintf(stderr, "detvm replay: which recording? (see 'detvm replay --help')\n");
		return 2;
	}
	if (from_start && !has_to) {
		fprintf(stderr, "detvm replay: --from-start goes with --to EXIT (a plain replay starts at the start)\n");
		return 2;
	}
	char err[1200];
	FILE *out = quiet ? NULL : stdout;
	if (!quiet && serial_out && !(out = fopen(serial_out, "we"))) {
		fprintf(stderr, "detvm replay: cannot create --serial-out '%s': %m\n", serial_out);
		return 2;
	}
	so.serial_out = out;
	if (replay_session_open(&sess, rec_path, &so, err, sizeof(err))) {
		fprintf(stderr, "detvm replay: %s\n", err);
		return 2;
	}
	install_stop_signals();
	if (has_to && !from_start && !replay_session_db(&sess))
		fprintf(stderr, "detvm replay: %s; replaying from the start\n", sess.db_error);

	int status;
	if (has_to) {
		int rc = replay_session_goto(&sess, to, !from_start, err, sizeof(err));
		if (sess.restored >= 0)
			fprintf(stderr, "detvm replay: restored checkpoint %" PRId64 " in %.1f ms\n", sess.restored,
				sess.restore_seconds * 1e3);
		if (rc) {
			fprintf(stderr, "detvm replay: %s\n", err);
			status = sess.vm.stop == VM_STOP_DIVERGENCE || strncmp(err, "divergence", 10) == 0 ? 10 : 2;
		} else {
			struct vm_digests d;
			char why[200];
			if (vm_digests(&sess.vm, &d, why, sizeof(why))) {
				fprintf(stderr, "detvm replay: the digests at exit %" PRIu64 ": %s\n", to, why);
				replay_session_close(&sess);
				return 2;
			}
			printf("exit %" PRIu64 ": rip %016" PRIx64 " registers %016" PRIx64 " memory %016" PRIx64 "%016"
			       PRIx64 "\n", to, d.rip, d.regs, d.mem_hi, d.mem_lo);
			status = 0;
		}
		fprintf(stderr, "detvm replay: %" PRIu64 " exits (%" PRIu64 " replayed), %.3f s\n", sess.vm.stats.exits,
			sess.vm.stats.by_kind[VMX_IO] + sess.vm.stats.by_kind[VMX_MMIO] + sess.vm.stats.by_kind[VMX_HLT] +
			sess.vm.stats.by_kind[VMX_MSR] + sess.vm.stats.by_kind[VMX_LANDMARK], sess.vm.stats.seconds);
	} else {
		if (replay_session_start(&sess, 0, false, err, sizeof(err))) {
			fprintf(stderr, "detvm replay: %s\n", err);
			replay_session_close(&sess);
			return 2;
		}
		if (sess.cfg.progress == PROGRESS_INSN_EMULATION && sess.vm.kvm.insn_emulation_off < 0)
			fprintf(stderr, "detvm replay: the recording used the insn_emulation progress counter, which this host lacks; "
				"forced exits cannot be reached\n");
		char msg[1200];
		int rc = replay_session_run(&sess, true, msg, sizeof(msg));
		if (rc == 0)
			rc = replayer_finish(&sess.rp, msg, sizeof(msg));
		if (rc)
			status = sess.vm.stop == VM_STOP_DIVERGENCE || strncmp(msg, "divergence", 10) == 0 ? 10 : 2;
		else
			status = sess.rp.ended ? 0 : 3;
		fprintf(stderr, "detvm replay: %s\n", msg);
		fprintf(stderr, "detvm replay: %" PRIu64 " exits (%" PRIu64 " forced), %" PRIu64 " events, %" PRIu64
			" interrupts, %" PRIu64 " digests checked, %.3f s\n", sess.vm.stats.exits,
			sess.vm.stats.by_kind[VMX_LANDMARK], sess.rp.events, sess.vm.stats.injections,
			sess.rp.digests_checked, sess.vm.stats.seconds);
		print_landmark_stats(&sess);
	}
	char why[600];
	if (report_disk_changed("replay", replay_session_disk_changed(&sess, why, sizeof(why)), why) &&
	    (status == 0 || status == 3))
		status = 2;
	int write_errno = sess.vm.serial_out_errno;
	replay_session_close(&sess);
	/* Reproducing the console output is part of the job: failing to write
	 * it is an error (2), unless the replay itself already failed. */
	if (out && close_serial_out(out, serial_out, "replay", write_errno) && status == 0)
		status = 2;
	return status;
}
