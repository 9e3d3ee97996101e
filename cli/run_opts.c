/* run_opts.c - options shared by `detvm run` and `detvm record`. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char run_opts_help[] =
	"  --kernel FILE        guest kernel: 64-bit ELF, or multiboot v1 (required)\n"
	"  --mem SIZE           guest RAM, e.g. 128M, 1G (default 128M; 2M..64G, 4 KiB multiple)\n"
	"  --disk IMAGE         virtio-blk disk image (raw)\n"
	"  --append ARGS        guest command line\n"
	"  --serial-in FILE|-   console input for COM1 from FILE or stdin (default: none)\n"
	"  --serial-out FILE    console output of COM1 to FILE (default: stdout)\n"
	"  --boot MODE          elf64 (default for 64-bit ELF) or multiboot (needs a multiboot header)\n"
	"  --quiet              no summary line on stderr\n";

static const char *arg_of(int argc, char **argv, int *i, const char *name)
{
	const char *a = argv[*i];
	size_t n = strlen(name);
	if (a[n] == '=')
		return a + n + 1;
	if (*i + 1 >= argc) {
		fprintf(stderr, "detvm: %s needs an argument\n", name);
		return NULL;
	}
	return argv[++*i];
}

static bool is_opt(const char *a, const char *name)
{
	size_t n = strlen(name);
	return strncmp(a, name, n) == 0 && (a[n] == 0 || a[n] == '=');
}

int run_opt_parse(struct run_opts *o, int argc, char **argv, int *i)
{
	const char *a = argv[*i], *v;
	char err[200];

	if (is_opt(a, "--kernel")) {
		if (!(v = arg_of(argc, argv, i, "--kernel")))
			return -1;
		o->vm.kernel_path = v;
	} else if (is_opt(a, "--mem")) {
		if (!(v = arg_of(argc, argv, i, "--mem")))
			return -1;
		if (vm_parse_size(v, &o->vm.mem_size, err, sizeof(err))) {
			fprintf(stderr, "detvm: --mem: %s\n", err);
			return -1;
		}
		if (o->vm.mem_size < VM_MEM_MIN || o->vm.mem_size > VM_MEM_MAX || o->vm.mem_size % 4096) {
			fprintf(stderr, "detvm: --mem %s: must be a multiple of 4 KiB between 2M and 64G\n", v);
			return -1;
		}
	} else if (is_opt(a, "--disk")) {
		if (!(v = arg_of(argc, argv, i, "--disk")))
			return -1;
		o->vm.disk_path = v;
	} else if (is_opt(a, "--append")) {
		if (!(v = arg_of(argc, argv, i, "--append")))
			return -1;
		o->vm.cmdline = v;
	} else if (is_opt(a, "--serial-in")) {
		if (!(v = arg_of(argc, argv, i, "--serial-in")))
			return -1;
		o->serial_in = v;
	} else if (is_opt(a, "--serial-out")) {
		if (!(v = arg_of(argc, argv, i, "--serial-out")))
			return -1;
		o->serial_out = v;
	} else if (is_opt(a, "--boot")) {
		if (!(v = arg_of(argc, argv, i, "--boot")))
			return -1;
		if (strcmp(v, "multiboot") == 0)
			o->vm.force_multiboot = true;
		else if (strcmp(v, "elf64") == 0)
			o->vm.force_multiboot = false;
		else {
			fprintf(stderr, "detvm: --boot %s: expected elf64 or multiboot\n", v);
			return -1;
		}
	} else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
		o->quiet = true;
	} else {
		return 0;
	}
	return 1;
}

int run_opts_check(const struct run_opts *o, const char *cmd)
{
	if (!o->vm.kernel_path) {
		fprintf(stderr, "detvm %s: --kernel FILE is required (see 'detvm %s --help')\n", cmd, cmd);
		return -1;
	}
	return 0;
}

int open_serial(const struct run_opts *o, int *in_fd, FILE **out)
{
	*in_fd = -1;
	*out = stdout;
	if (o->serial_in) {
		if (strcmp(o->serial_in, "-") == 0) {
			*in_fd = STDIN_FILENO;
		} else {
			*in_fd = open(o->serial_in, O_RDONLY | O_CLOEXEC);
			if (*in_fd < 0) {
				fprintf(stderr, "detvm: cannot open --serial-in '%s': %s\n", o->serial_in, strerror(errno));
				return -1;
			}
		}
	}
	if (o->serial_out && strcmp(o->serial_out, "-") != 0) {
		*out = fopen(o->serial_out, "we");
		if (!*out) {
			fprintf(stderr, "detvm: cannot create --serial-out '%s': %s\n", o->serial_out, strerror(errno));
			if (*in_fd > STDIN_FILENO)
				close(*in_fd);
			return -1;
		}
	}
	return 0;
}

int close_serial_out(FILE *f, const char *name, const char *cmd, int write_errno)
{
	/* A failed fputc left the stream's error flag set; fflush and fclose
	 * report the rest (a full disk may show only when the buffer goes). */
	bool failed = ferror(f) != 0;
	int e = failed ? write_errno : 0;
	if (fflush(f) == EOF) {
		failed = true;
		e = errno;
	}
	if (f != stdout && fclose(f) == EOF) {
		failed = true;
		e = e ? e : errno;
	}
	if (!failed)
		return 0;
	fprintf(stderr, "detvm %s: writing the guest's serial output to %s failed%s%s\n", cmd,
		name && strcmp(name, "-") ? name : "stdout", e ? ": " : "", e ? strerror(e) : "");
	if (f == stdout)
		clearerr(stdout); /* reported: main's final check must not again */
	return -1;
}

static void on_stop_signal(int signo)
{
	vm_request_stop(signo);
}

void install_stop_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: an idle wait must wake up on Ctrl-C. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

bool report_disk_changed(const char *cmd, int changed, const char *why)
{
	/* The header names the image by a hash of its content taken once,
	 * at the start: one written since is not what the guest read. */
	if (changed < 0)
		fprintf(stderr, "detvm %s: cannot tell whether the disk image changed: %s\n", cmd, why);
	else if (changed)
		fprintf(stderr, "detvm %s: %s: the guest may have read data the recording does not name\n", cmd, why);
	return changed > 0;
}

void print_summary(FILE *f, const struct vm *vm)
{
	const struct vm_stats *s = &vm->stats;
	fprintf(f, "detvm: %s: %s\n", vm_stop_name(vm->stop), vm->detail);
	fprintf(f, "detvm: %" PRIu64 " exits (io %" PRIu64 ", mmio %" PRIu64 ", hlt %" PRIu64 ", msr %" PRIu64
		"), %" PRIu64 " interrupts, %.3f s, %.0f exits/s, exit status %d\n",
		s->exits, s->by_kind[VMX_IO], s->by_kind[VMX_MMIO], s->by_kind[VMX_HLT], s->by_kind[VMX_MSR],
		s->injections, s->seconds, s->seconds > 0 ? (double)s->exits / s->seconds : 0.0,
		vm_exit_status(vm));
}

int cli_option_u64(const char *cmd, const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	int r = cli_parse_u64(s, min, max, out);
	if (r == -1)
		fprintf(stderr, "detvm %s: %s %s: not a whole number\n", cmd, opt, s);
	else if (r)
		fprintf(stderr, "detvm %s: %s %s: expected %" PRIu64 "..%" PRIu64 "\n", cmd, opt, s, min, max);
	return r ? -1 : 0;
}

int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	/* strtoull alone would take " 5", "+5" and "-5" (as 2^64 - 5). */
	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end)
		return -1;
	if (errno == ERANGE || v < min || v > max)
		return -2;
	*out = v;
	return 0;
}
