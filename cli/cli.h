/*
 * cli.h - the `detvm` command line: shared parsing of the run options that
 * `run` and `record` both take, and the subcommand entry points.
 */
#ifndef DETVM_CLI_H
#define DETVM_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "vmm/vm.h"

#define DETVM_VERSION "0.1.0"

struct run_opts {
	struct vm_config vm;
	const char *serial_in;  /* NULL: none; "-": stdin */
	const char *serial_out; /* NULL: stdout */
	bool quiet;
};

/* Parse one run option at argv[*i] (and its argument); returns 1 if it was
 * one, 0 if not, -1 on error (message printed). */
int run_opt_parse(struct run_opts *o, int argc, char **argv, int *i);
/* Check that the required options are there; -1 with a message if not. */
int run_opts_check(const struct run_opts *o, const char *cmd);
extern const char run_opts_help[];

/*
 * A whole decimal number for an option: digits only (no sign, spaces or
 * suffix), in [min, max].  0; -1 if it is not such a number; -2 if it is
 * out of range.  The caller prints the message, naming the option.
 */
int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* The same for option `opt` of `detvm CMD`: 0; -1 after saying on stderr
 * what is wrong with `s` ("not a whole number", "expected MIN..MAX"). */
int cli_option_u64(const char *cmd, const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Open serial input/output per the options; -1 with a message. */
int open_serial(const struct run_opts *o, int *in_fd, FILE **out);
/*
 * Finish the guest's console output `f` (--serial-out NAME, NULL: stdout):
 * flush it, and close it unless it is stdout.  0; -1 after printing
 * "detvm CMD: writing the guest's serial output to NAME failed" if this or
 * any earlier write failed (write_errno: why, if known; 0 if not).  The
 * exit status is the caller's to decide.
 */
int close_serial_out(FILE *f, const char *name, const char *cmd, int write_errno);
/*
 * Say on stderr what a check of the disk image found (`changed` and `why`
 * as blockdev_changed() gives them): nothing for 0; for 1, that the image
 * was written to while in use; for -1, that it cannot be told.  True if it
 * changed: the command then fails (2).
 */
bool report_disk_changed(const char *cmd, int changed, const char *why);
void install_stop_signals(void);
void print_summary(FILE *f, const struct vm *vm);

int cmd_run(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_inspect(int argc, char **argv);

#endif
