/* main.c - `detvm`: one tool, subcommands. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"usage: detvm COMMAND [options]\n"
	"detvm " DETVM_VERSION " - a record-and-replay virtual machine monitor on KVM.\n\n"
	"Commands:\n"
	"  run       run a guest live (nothing recorded)\n"
	"  record    run a guest and record it\n"
	"  replay    re-execute a recording, checking it as it goes\n"
	"  verify    check a recording's checksums and hash chain\n"
	"  inspect   look into a recording: events, registers, memory, search, core files\n"
	"  help      this text\n"
	"  version   print the version\n\n"
	"'detvm COMMAND --help' describes each command.\n";

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
};

static const struct command commands[] = {
	{ "run", cmd_run },
	{ "record", cmd_record },
	{ "replay", cmd_replay },
	{ "verify", cmd_verify },
	{ "inspect", cmd_inspect },
};

/*
 * What a command printed must have reached stdout (a report of `verify`, a
 * table of `inspect`): if it did not, say so and fail, unless the command
 * failed already.  Commands that check their own output have done so
 * (run and record report the guest's console output, keep the guest's
 * status, and clear the error).
 */
static int finish_stdout(const char *cmd, int status)
{
	if (status != 0)
		return status; /* failed already, and said why */
	errno = 0;
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "detvm %s: writing to stdout failed%s%s\n", cmd, errno ? ": " : "",
			errno ? strerror(errno) : "");
		status = 2;
	}
	return status;
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : finish_stdout("help", 0);
	}
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("detvm %s\n", DETVM_VERSION);
		return finish_stdout("version", 0);
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return finish_stdout(commands[i].name, commands[i].fn(argc - 1, argv + 1));
	fprintf(stderr, "detvm: unknown command '%s' (see 'detvm help')\n", argv[1]);
	return 2;
}
