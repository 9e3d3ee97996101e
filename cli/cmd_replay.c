/* cmd_replay.c - `detvm replay`: re-execute a recording and check it. */
#include "cli.h"

#include <inttypes.h>
#include <string.h>

#include "recorder/recording.h"
#include "replayer/replayer.h"

static const char replay_help[] =
	"usage: detvm replay REC [options]\n"
	"Re-execute the recording REC bit for bit, checking every exit against it,\n"
	"the periodic digests and the final register and memory digests.  Idle time\n"
	"is skipped.\n\n"
	"  --kernel FILE      the kernel, if it is no longer at the recorded path\n"
	"                     (it must be the same file: size and XXH3-128 are checked)\n"
	"  --disk IMAGE       the disk image, likewise\n"
	"  --serial-out FILE  the guest's console output to FILE (default: stdout)\n"
	"  --quiet            no console output; only the summary\n\n"
	"Exit status: 0 the replay reproduced the recording; 3 the recording was cut\n"
	"short and its whole prefix replayed; 10 divergence (the message says at which\n"
	"exit, what was expected and what happened); 2 error (bad recording, files).\n";

static struct replayer rp;

static int check_identity(const struct trace_header *h, uint16_t tag, const char *given,
			  const char **path, const char *what)
{
	struct trace_file_id id;
	struct trace_hash128 hash;
	uint64_t size;
	char err[400];

	if (trace_header_get_file_id(h, tag, &id)) {
		*path = NULL;
		if (given) {
			fprintf(stderr, "detvm replay: the recording has no %s, but one was given\n", what);
			return -1;
		}
		return 0;
	}
	*path = given ? given : id.path;
	if (file_identity(*path, &size, &hash, err, sizeof(err))) {
		fprintf(stderr, "detvm replay: %s: %s%s\n", what, err,
			given ? "" : " (give its new place with --kernel / --disk)");
		return -1;
	}
	if (size != id.size || hash.lo != id.hash.lo || hash.hi != id.hash.hi) {
		fprintf(stderr, "detvm replay: %s '%s' is not the one recorded: %" PRIu64 " bytes, XXH3-128 %016"
			PRIx64 "%016" PRIx64 "; the recording has %" PRIu64 " bytes, %016" PRIx64 "%016" PRIx64 "\n",
			what, *path, size, hash.hi, hash.lo, id.size, id.hash.hi, id.hash.lo);
		return -1;
	}
	return 0;
}

int cmd_replay(int argc, char **argv)
{
	const char *rec_path = NULL, *kernel = NULL, *disk = NULL, *serial_out = NULL;
	bool quiet = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(replay_help, stdout);
			return 0;
		} else if (strcmp(a, "--kernel") == 0 && i + 1 < argc) {
			kernel = argv[++i];
		} else if (strcmp(a, "--disk") == 0 && i + 1 < argc) {
			disk = argv[++i];
		} else if (strcmp(a, "--serial-out") == 0 && i + 1 < argc) {
			serial_out = argv[++i];
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
	char trace_path[4096], err[600];
	if (recording_trace_path(rec_path, trace_path, sizeof(trace_path), err, sizeof(err))) {
		fprintf(stderr, "detvm replay: %s\n", err);
		return 2;
	}
	struct trace_reader *r = trace_reader_open(trace_path, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "detvm replay: %s\n", err);
		return 2;
	}
	const struct trace_header *h = trace_reader_header(r);
	if (trace_header_check_required(h, err, sizeof(err))) {
		fprintf(stderr, "detvm replay: %s: %s\n", trace_path, err);
		trace_reader_close(r);
		return 2;
	}
	struct vm_config cfg = { 0 };
	uint64_t epoch = 0;
	size_t ncpuid = 0;
	if (check_identity(h, TRACE_TAG_KERNEL_ID, kernel, &cfg.kernel_path, "kernel") ||
	    check_identity(h, TRACE_TAG_DISK_ID, disk, &cfg.disk_path, "disk image")) {
		trace_reader_close(r);
		return 2;
	}
	trace_header_get_u64(h, TRACE_TAG_MEM_SIZE, &cfg.mem_size);
	trace_header_get_u64(h, TRACE_TAG_BOOT_EPOCH_NS, &epoch);
	cfg.cmdline = trace_header_get_str(h, TRACE_TAG_CMDLINE);
	const char *mode = trace_header_get_str(h, TRACE_TAG_BOOT_MODE);
	cfg.force_multiboot = mode && strcmp(mode, TRACE_BOOT_MULTIBOOT) == 0;
	cfg.disk_overlay = true;
	cfg.cpuid = trace_header_get_cpuid(h, &ncpuid);
	cfg.cpuid_count = ncpuid;
	const char *pc = trace_header_get_str(h, TRACE_TAG_PROGRESS_COUNTER);

	FILE *out = quiet ? NULL : stdout;
	if (!quiet && serial_out && !(out = fopen(serial_out, "we"))) {
		fprintf(stderr, "detvm replay: cannot create --serial-out '%s': %m\n", serial_out);
		trace_reader_close(r);
		return 2;
	}
	install_stop_signals();
	replayer_init(&rp, r, epoch);
	static struct vm vm;
	if (vm_create(&vm, &cfg, &rp.nd, out, err, sizeof(err))) {
		fprintf(stderr, "detvm replay: %s\n", err);
		vm_destroy(&vm);
		trace_reader_close(r);
		return 2;
	}
	if (pc && strcmp(pc, TRACE_PROGRESS_INSN_EMULATION) == 0 && vm.kvm.insn_emulation_off < 0)
		fprintf(stderr, "detvm replay: the recording used the insn_emulation progress counter, which this host lacks; "
			"forced exits cannot be reached\n");
	replayer_attach(&rp, &vm);
	vm_run(&vm);
	char msg[700];
	int rc = replayer_finish(&rp, msg, sizeof(msg));
	int status;
	if (rc)
		status = vm.stop == VM_STOP_DIVERGENCE || strncmp(msg, "divergence", 10) == 0 ? 10 : 2;
	else
		status = rp.ended ? 0 : 3;
	fprintf(stderr, "detvm replay: %s\n", msg);
	fprintf(stderr, "detvm replay: %" PRIu64 " exits (%" PRIu64 " forced), %" PRIu64 " events, %" PRIu64
		" interrupts, %" PRIu64 " digests checked, %.3f s\n", vm.stats.exits, vm.stats.by_kind[VMX_LANDMARK],
		rp.events, vm.stats.injections, rp.digests_checked, vm.stats.seconds);
	vm_destroy(&vm);
	trace_reader_close(r);
	if (out && out != stdout)
		fclose(out);
	return status;
}
