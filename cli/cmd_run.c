/* cmd_run.c - `detvm run`: run a guest live, nothing recorded. */
#include "cli.h"

#include <string.h>
#include <unistd.h>

#include "vmm/nd_live.h"

static const char run_help[] =
	"usage: detvm run --kernel FILE [options]\n"
	"Run a guest under KVM with every device in userspace.  Nothing is recorded.\n\n"
	"%s"
	"  --landmark-bound MS  how long an expired timer or console input may wait for the\n"
	"                       guest's next exit before the guest is interrupted to take it\n"
	"                       (default 1, as 'detvm record'; 0: every timer at its deadline)\n"
	"\nExit status:\n"
	"  0    the guest powered off (ACPI PM1a SLP_EN, port 0x604)\n"
	"  odd  the guest wrote V to the debug-exit port 0xf4: status (V << 1) | 1, as QEMU\n"
	"  2    detvm could not start or run the guest (bad option, file, KVM error)\n"
	"  4    the guest triple-faulted\n"
	"  6    KVM could not execute a guest instruction (emulation failure)\n"
	"  8    the guest halted and nothing could wake it\n"
	"  128+N  stopped by signal N (Ctrl-C: 130)\n";

static struct nd_live live;

static int live_console(void *ctx)
{
	return nd_live_console_open(ctx);
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o = { .vm.mem_size = VM_MEM_DEFAULT };
	uint64_t bound_ms = VM_KICK_BOUND_DEFAULT_NS / 1000000;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf(run_help, run_opts_help);
			return 0;
		}
		if (strcmp(argv[i], "--landmark-bound") == 0 && i + 1 < argc) {
			if (cli_option_u64("run", argv[i], argv[i + 1], 0, 10000, &bound_ms))
				return 2;
			i++;
			continue;
		}
		int r = run_opt_parse(&o, argc, argv, &i);
		if (r < 0)
			return 2;
		if (r == 0) {
			fprintf(stderr, "detvm run: unknown option '%s' (see 'detvm run --help')\n", argv[i]);
			return 2;
		}
	}
	if (run_opts_check(&o, "run"))
		return 2;

	int in_fd;
	FILE *out;
	if (open_serial(&o, &in_fd, &out))
		return 2;
	install_stop_signals();
	nd_live_init(&live, in_fd, &vm_stop_requested);

	static struct vm vm;
	char err[512];
	if (vm_create(&vm, &o.vm, &live.nd, out, err, sizeof(err))) {
		fprintf(stderr, "detvm run: %s\n", err);
		vm_destroy(&vm);
		return 2;
	}
	vm.host_timer = true;
	vm.kick_bound_ns = bound_ms * 1000000;
	vm.timer_base_mono_ns = live.start_mono_ns;
	vm.console_open_fn = live_console;
	vm.console_ctx = &live;
	vm_run(&vm);
	int status = vm_exit_status(&vm);
	if (!o.quiet)
		print_summary(stderr, &vm);
	vm_destroy(&vm);
	close_serial_out(out, o.serial_out, "run", vm.serial_out_errno);
	if (in_fd > STDIN_FILENO)
		close(in_fd);
	return status;
}
