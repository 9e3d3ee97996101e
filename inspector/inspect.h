/*
 * inspect.h - `detvm inspect REC COMMAND`: look into a recording.
 *
 * Two kinds of command:
 *   - from the recording's files only: info, checkpoints, events, serial,
 *     sql (the trace header and REC/checkpoints.db);
 *   - from the machine at an exit: regs, mem, diff, export-core, search.
 *     These replay the recording: restore the last checkpoint at or before
 *     the exit (unless --from-start) and replay the rest with every check of
 *     a normal replay, so that what they show is what the guest had.
 *
 * cli/cmd_inspect.c parses the command line into struct inspect_opts and
 * calls inspect_run(); the commands live in inspector/insp_*.c.  Every
 * command prints its result on stdout and its errors on stderr
 * ("detvm inspect COMMAND: ..."), and returns an exit status.
 */
#ifndef DETVM_INSPECT_H
#define DETVM_INSPECT_H

#include <stdbool.h>
#include <stdint.h>

/* Exit statuses. */
#define INSPECT_OK		0
#define INSPECT_ERROR		2	/* bad input, damaged or missing files, past the end */
#define INSPECT_DIVERGED	10	/* the replay needed diverged from the recording */
#define INSPECT_INTERRUPTED	130	/* Ctrl-C during a replay */

#define INSPECT_MEM_MAX		(64ULL << 20)	/* mem: largest LEN */
#define INSPECT_PATTERN_MAX	4096		/* search: longest pattern */
#define INSPECT_AT_MAX		2		/* --at given at most twice (diff) */

enum inspect_format { INSPECT_FMT_TEXT, INSPECT_FMT_JSON, INSPECT_FMT_CSV };

struct inspect_opts {
	const char *rec;		/* the recording (directory or trace file) */
	const char *command;
	const char *args[3];		/* positional arguments after the command */
	int nargs;
	uint64_t at[INSPECT_AT_MAX];	/* --at, in the order given */
	int nat;
	bool has_from, has_to;
	uint64_t from, to;		/* --from / --to: exit ordinals */
	const char *type;		/* events --type */
	enum inspect_format format;	/* events --format */
	bool virt;			/* mem --virtual */
	bool raw;			/* mem/serial --raw */
	bool hex;			/* search --hex */
	bool force;			/* export-core --force */
	bool from_start;		/* --from-start: replay without checkpoints */
	const char *kernel, *disk;	/* --kernel / --disk: moved recorded files */
};

/* Run command o->command; returns the exit status. */
int inspect_run(const struct inspect_opts *o);

/* The accepted names of events --type, for messages ("exit_io, io, ..."). */
const char *inspect_event_type_names(void);

#endif
