/*
 * cmd_inspect.c - `detvm inspect REC COMMAND [options]`: the command line
 * only (the commands are in inspector/).
 */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "inspector/inspect.h"

static const char inspect_usage[] =
	"usage: detvm inspect REC COMMAND [options]\n"
	"Look into the recording REC (a directory made by 'detvm record').\n\n"
	"From the recording's files (nothing is replayed):\n"
	"  info          configuration, length, trace state, checkpoint and storage figures\n"
	"  checkpoints   one line per checkpoint\n"
	"  events        the timeline of trace events (text, JSON or CSV)\n"
	"  serial        the guest's console output, each line with the exit that began it\n"
	"  sql           read-only SQL queries on REC/checkpoints.db\n"
	"From the machine at an exit (replays the recording up to it):\n"
	"  regs          the vCPU's registers\n"
	"  mem           guest memory, as a hex dump or raw bytes\n"
	"  diff          registers and physical pages that differ between two exits\n"
	"  search        where and when a byte pattern is in guest physical memory\n"
	"  export-core   an ELF core file of the machine, for gdb\n\n"
	"'detvm inspect COMMAND --help' describes each command and its options.\n\n"
	"Exit ordinals: \"exit N\" is the machine's state after the guest's N-th exit\n"
	"(port or MMIO access, HLT, MSR access, or a forced exit) was handled completely,\n"
	"where the guest is about to run again; exit 0 is before the first instruction.\n"
	"Reaching it restores the last checkpoint at or before N from REC/checkpoints.db\n"
	"and replays the rest with every check of 'detvm replay' (--from-start: replay\n"
	"from the start instead; without a database, that happens anyway).  Replays\n"
	"longer than half a second show their progress when stderr is a terminal.\n\n"
	"Exit status: 0 done; 2 error (bad arguments, an exit past the end of the\n"
	"recording, a missing or damaged file); 10 the replay diverged from the\n"
	"recording (the message says where); 130 interrupted.\n";

enum {
	O_AT = 1 << 0, O_FROM = 1 << 1, O_TO = 1 << 2, O_TYPE = 1 << 3, O_FORMAT = 1 << 4,
	O_VIRT = 1 << 5, O_RAW = 1 << 6, O_HEX = 1 << 7, O_FORCE = 1 << 8, O_FROM_START = 1 << 9,
	O_KERNEL = 1 << 10, O_DISK = 1 << 11,
};
#define O_REPLAY (O_FROM_START | O_KERNEL | O_DISK)

#define REPLAY_OPTS_HELP \
	"  --from-start       replay from the start instead of restoring a checkpoint\n" \
	"  --kernel FILE      the recorded kernel, if it is no longer where it was\n" \
	"                     (it must be the same file: size and XXH3-128 are checked)\n" \
	"  --disk IMAGE       the recorded disk image, likewise\n"

#define STATUS_HELP \
	"Exit status: 0 done, 2 error, 10 the replay diverged, 130 interrupted.\n"

static const struct command_spec {
	const char *name;
	unsigned opts;
	int min_args, max_args;
	const char *help;
} specs[] = {
	{ "info", 0, 0, 0,
	  "usage: detvm inspect REC info\n"
	  "The recording's configuration from the trace header (kernel and disk with\n"
	  "their size and XXH3-128, and whether the files at those paths still match;\n"
	  "memory, command line, boot mode, serial input, progress counter, detvm version,\n"
	  "host), the trace's state (complete, or cut short), its exits and events, the\n"
	  "duration (host time of the last indexed event), the checkpoints (count, mean\n"
	  "interval, pause) and storage (file sizes; pages and disk blocks captured by\n"
	  "the checkpoints against distinct contents stored: the deduplication ratio).\n"
	  "Exits, events and the trace's state come from the database's meta table\n"
	  "(end_exits, end_events, trace_complete), else from reading the whole trace.\n"
	  "Without a database, only the trace's part is shown.\n"
	  "Exit status: 0 done, 2 error (or a damaged trace).\n" },
	{ "checkpoints", 0, 0, 0,
	  "usage: detvm inspect REC checkpoints\n"
	  "One line per checkpoint in REC/checkpoints.db: id, exit ordinal, event ordinal\n"
	  "(events before it in the trace), host time since the recording started (s),\n"
	  "kind (full: a complete page map; incremental: the pages written since the\n"
	  "previous checkpoint), RAM pages and disk blocks in its map, bytes_new (the\n"
	  "compressed size of the page contents it stored first), and how long the\n"
	  "recording guest was paused to take it (ms).\n"
	  "Exit status: 0 done, 2 error.\n" },
	{ "events", O_TYPE | O_FROM | O_TO | O_FORMAT, 0, 0,
	  "usage: detvm inspect REC events [--type T] [--from N] [--to M] [--format F]\n"
	  "The timeline of the recording: every trace event from the event index in\n"
	  "REC/checkpoints.db, in trace order: ordinal, exit ordinal (for an exit its\n"
	  "own; for other events the exit after which they happened), host time since\n"
	  "the recording started, type, device, and what it carried.\n\n"
	  "  --type T        only events of type T (case-insensitive; several: T1,T2):\n"
	  "                  exit (every exit), exit_io (or io), exit_mmio (mmio),\n"
	  "                  exit_hlt (hlt), exit_msr (msr), exit_landmark (landmark),\n"
	  "                  clock, timer, entropy, console_in, irq, digest, end\n"
	  "  --from N        only events at exit ordinals >= N\n"
	  "  --to M          only events at exit ordinals <= M\n"
	  "  --format F      text (default), json (one array of objects) or csv (with a\n"
	  "                  header line).  json and csv give the raw columns: ordinal,\n"
	  "                  exit, host_ns, type, device, direction (in/out), size\n"
	  "                  (bytes), addr (port, physical address, MSR, vector, landmark\n"
	  "                  RIP) and value (written value, ns, byte count, progress)\n"
	  "Exit status: 0 done, 2 error.\n" },
	{ "serial", O_FROM | O_TO | O_RAW, 0, 0,
	  "usage: detvm inspect REC serial [--from N] [--to M] [--raw]\n"
	  "The guest's console (COM1) output recorded in REC/checkpoints.db, each line\n"
	  "prefixed by the exit ordinal of the port write of its first byte, e.g.\n"
	  "\"[exit 123] RESULT ...\".  Control characters show as \\xNN; a carriage\n"
	  "return is dropped.\n\n"
	  "  --from N        only lines that began at exit N or later\n"
	  "  --to M          only lines that began at exit M or earlier\n"
	  "  --raw           the bytes written at exits N..M, exactly, with nothing added\n"
	  "Exit status: 0 done, 2 error.\n" },
	{ "sql", 0, 0, 1,
	  "usage: detvm inspect REC sql [QUERY]\n"
	  "Run QUERY (or, without it, the SQL read from stdin; several statements may\n"
	  "be given, separated by ';') on REC/checkpoints.db, opened read-only\n"
	  "(SQLITE_OPEN_READONLY and PRAGMA query_only=ON: a write fails with SQLite's\n"
	  "\"readonly\" error).  For each statement that returns columns: a header line\n"
	  "with the column names, then one line per row, columns separated by '|' (the\n"
	  "sqlite3 shell's default list mode); NULL prints as nothing, a blob as x'HEX'.\n"
	  "Tables: meta, checkpoints, pages, page_map, block_map, frames, events,\n"
	  "serial, and the view event_frames (see docs/checkpoints.md).\n"
	  "Example: detvm inspect REC sql \"select type, count(*) from events group by type\"\n"
	  "Exit status: 0 done, 2 error (the message is SQLite's).\n" },
	{ "regs", O_AT | O_REPLAY, 0, 0,
	  "usage: detvm inspect REC regs --at EXIT [options]\n"
	  "The vCPU's registers at exit EXIT, in the style of gdb's \"info registers\":\n"
	  "general registers (hex and signed decimal), rip, eflags (with its flags),\n"
	  "segment selectors with base, limit and attributes, fs_base and gs_base, tr,\n"
	  "ldtr, gdtr and idtr, cr0, cr2, cr3, cr4, cr8 (with their flags), efer and\n"
	  "apic_base.  The instruction that caused the exit is complete (an IN's value\n"
	  "is in rax, rip is past it), as in a checkpoint.\n\n"
	  "  --at EXIT          the exit ordinal (0 .. the recording's last exit)\n"
	  REPLAY_OPTS_HELP
	  STATUS_HELP },
	{ "mem", O_AT | O_VIRT | O_RAW | O_REPLAY, 2, 2,
	  "usage: detvm inspect REC mem --at EXIT ADDR LEN [--virtual] [--raw] [options]\n"
	  "LEN bytes of guest memory from ADDR at exit EXIT: a hex dump (16 bytes a\n"
	  "line: address, bytes, ASCII) or, with --raw, the bytes themselves on stdout.\n"
	  "ADDR and LEN are decimal or 0x hexadecimal; LEN may end in K, M or G and is\n"
	  "at most 64 MiB.  A range that is not wholly guest RAM is an error naming the\n"
	  "first address outside it.\n\n"
	  "  --at EXIT          the exit ordinal (0 .. the recording's last exit)\n"
	  "  --virtual          ADDR is a virtual address: each page is translated\n"
	  "                     through the guest's page tables at that exit\n"
	  "                     (KVM_TRANSLATE); an unmapped page is an error\n"
	  "  --raw              raw bytes instead of the hex dump\n"
	  REPLAY_OPTS_HELP
	  STATUS_HELP },
	{ "diff", O_AT | O_REPLAY, 0, 0,
	  "usage: detvm inspect REC diff --at A --at B [options]\n"
	  "What differs between the machine at exit A and at exit B: each register\n"
	  "(as 'regs' names them, plus segment bases/limits/attributes and the\n"
	  "descriptor table limits) with its value at A and at B, then the physical\n"
	  "pages whose contents differ, as ranges of contiguous page frame numbers\n"
	  "(gfn = physical address / 4096) with the number of bytes that differ, and\n"
	  "the totals.  Replays to A, keeps a copy of its RAM, then to B.\n\n"
	  "  --at A --at B      the two exit ordinals (either order)\n"
	  REPLAY_OPTS_HELP
	  STATUS_HELP },
	{ "search", O_FROM | O_TO | O_HEX | O_REPLAY, 1, 1,
	  "usage: detvm inspect REC search PATTERN [--from N] [--to M] [--hex] [options]\n"
	  "Where and when the bytes PATTERN are in guest physical memory.  Replays to\n"
	  "exit N (default 0), scans all of RAM, then replays on to exit M (default:\n"
	  "the end of the recording) and, at every exit, re-examines the pages written\n"
	  "since the exit before (KVM's dirty log and the monitor's own writes), so\n"
	  "that no exit in N..M is skipped; an occurrence may straddle pages.  Reports\n"
	  "the first appearance (exit ordinal and physical address; the lowest address\n"
	  "if several appear at once), every address where it is present at exit M (up\n"
	  "to 1000), and the last exit at which it was present (or that it still is at\n"
	  "M).  Not finding it is not an error.\n\n"
	  "  PATTERN          1..4096 bytes: the argument's text as is (use -- before a\n"
	  "                   pattern that begins with '-')\n"
	  "  --hex            PATTERN is hex digits (\"de ad be ef\", \"deadbeef\")\n"
	  "  --from N         the first exit examined\n"
	  "  --to M           the last exit examined\n"
	  REPLAY_OPTS_HELP
	  STATUS_HELP },
	{ "export-core", O_AT | O_FORCE | O_REPLAY, 1, 1,
	  "usage: detvm inspect REC export-core --at EXIT FILE [--force] [options]\n"
	  "Write the machine at exit EXIT as an ELF64 x86-64 core file (ET_CORE) that\n"
	  "gdb loads: gdb [build/guests/NAME.elf] -c FILE.  It has a PT_NOTE with\n"
	  "NT_PRSTATUS (the general registers, rip, eflags, segment selectors, fs_base,\n"
	  "gs_base), NT_PRPSINFO and NT_FPREGSET (x87/SSE state), and one PT_LOAD per\n"
	  "RAM block holding its contents (all-zero pages are holes: the file is\n"
	  "sparse).  Each PT_LOAD has p_vaddr = p_paddr = the guest PHYSICAL address,\n"
	  "so gdb's addresses are physical: right for guests that identity-map their\n"
	  "memory, as detvm's test guests do; for other guests use 'mem --virtual'.\n"
	  "Control registers, segment descriptors and MSRs are not in the file (see\n"
	  "'regs').\n\n"
	  "  --at EXIT          the exit ordinal (0 .. the recording's last exit)\n"
	  "  --force            overwrite FILE if it exists (else that is an error)\n"
	  REPLAY_OPTS_HELP
	  STATUS_HELP },
};
#define NSPECS (sizeof(specs) / sizeof(specs[0]))

static const struct command_spec *find_spec(const char *name)
{
	for (size_t i = 0; i < NSPECS; i++)
		if (strcmp(specs[i].name, name) == 0)
			return &specs[i];
	return NULL;
}

static const struct {
	const char *name;
	unsigned bit;
	bool arg;
} options[] = {
	{ "--at", O_AT, true }, { "--from", O_FROM, true }, { "--to", O_TO, true },
	{ "--type", O_TYPE, true }, { "--format", O_FORMAT, true }, { "--virtual", O_VIRT, false },
	{ "--raw", O_RAW, false }, { "--hex", O_HEX, false }, { "--force", O_FORCE, false },
	{ "--from-start", O_FROM_START, false }, { "--kernel", O_KERNEL, true }, { "--disk", O_DISK, true },
};

static int parse_exit(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
	if (cli_parse_u64(s, 0, UINT64_MAX, out) == 0)
		return 0;
	fprintf(stderr, "detvm inspect %s: %s %s: not an exit ordinal (a whole number >= 0)\n", cmd, opt, s);
	return -1;
}

static void list_commands(FILE *f)
{
	for (size_t i = 0; i < NSPECS; i++)
		fprintf(f, "%s%s", i ? ", " : "", specs[i].name);
}

int cmd_inspect(int argc, char **argv)
{
	struct inspect_opts o;
	memset(&o, 0, sizeof(o));

	/* --help anywhere: the command's help if one is named in the first
	 * two words (REC COMMAND, or just COMMAND), else the overview. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			const struct command_spec *sp = NULL;
			for (int k = 1; k <= 2 && k < argc && !sp; k++)
				sp = find_spec(argv[k]);
			fputs(sp ? sp->help : inspect_usage, stdout);
			return 0;
		}
	}
	if (argc == 2 && strcmp(argv[1], "help") == 0) {
		fputs(inspect_usage, stdout);
		return 0;
	}
	if (argc < 3) {
		if (argc == 2 && find_spec(argv[1]))
			fprintf(stderr, "detvm inspect: which recording? usage: detvm inspect REC %s (see 'detvm inspect %s --help')\n",
				argv[1], argv[1]);
		else
			fprintf(stderr, "detvm inspect: usage: detvm inspect REC COMMAND [options] (see 'detvm inspect --help')\n");
		return 2;
	}
	o.rec = argv[1];
	o.command = argv[2];
	if (strcmp(o.command, "help") == 0) {
		fputs(inspect_usage, stdout);
		return 0;
	}
	const struct command_spec *sp = find_spec(o.command);
	if (!sp) {
		if (find_spec(o.rec))
			fprintf(stderr, "detvm inspect: the recording comes first: detvm inspect REC %s ...\n", o.rec);
		else {
			fprintf(stderr, "detvm inspect: unknown command '%s' (commands: ", o.command);
			list_commands(stderr);
			fprintf(stderr, "; see 'detvm inspect --help')\n");
		}
		return 2;
	}
	bool seen_type = false, seen_format = false, no_more_opts = false;
	for (int i = 3; i < argc; i++) {
		const char *a = argv[i];
		if (no_more_opts || a[0] != '-' || a[1] == 0) {
			if (o.nargs == sp->max_args || o.nargs == (int)(sizeof(o.args) / sizeof(o.args[0]))) {
				fprintf(stderr, "detvm inspect %s: unexpected argument '%s' (see 'detvm inspect %s --help')\n",
					sp->name, a, sp->name);
				return 2;
			}
			o.args[o.nargs++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			no_more_opts = true;
			continue;
		}
		/* --opt VALUE or --opt=VALUE */
		char name[32];
		const char *eq = strchr(a, '='), *val = NULL;
		size_t nl = eq ? (size_t)(eq - a) : strlen(a);
		snprintf(name, sizeof(name), "%.*s", (int)(nl < sizeof(name) - 1 ? nl : sizeof(name) - 1), a);
		size_t k;
		for (k = 0; k < sizeof(options) / sizeof(options[0]); k++)
			if (strcmp(name, options[k].name) == 0)
				break;
		if (k == sizeof(options) / sizeof(options[0]) || nl >= sizeof(name) - 1) {
			fprintf(stderr, "detvm inspect %s: unknown option '%s' (see 'detvm inspect %s --help')\n", sp->name,
				a, sp->name);
			return 2;
		}
		if (!(sp->opts & options[k].bit)) {
			fprintf(stderr, "detvm inspect %s: option %s does not apply to %s (see 'detvm inspect %s --help')\n",
				sp->name, name, sp->name, sp->name);
			return 2;
		}
		if (options[k].arg) {
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else {
				fprintf(stderr, "detvm inspect %s: %s needs a value\n", sp->name, name);
				return 2;
			}
		} else if (eq) {
			fprintf(stderr, "detvm inspect %s: %s takes no value\n", sp->name, name);
			return 2;
		}
		switch (options[k].bit) {
		case O_AT:
			if (o.nat == INSPECT_AT_MAX) {
				fprintf(stderr, "detvm inspect %s: --at given more than %d times\n", sp->name, INSPECT_AT_MAX);
				return 2;
			}
			if (parse_exit(sp->name, name, val, &o.at[o.nat]))
				return 2;
			o.nat++;
			break;
		case O_FROM:
			if (o.has_from || parse_exit(sp->name, name, val, &o.from)) {
				if (o.has_from)
					fprintf(stderr, "detvm inspect %s: --from given twice\n", sp->name);
				return 2;
			}
			o.has_from = true;
			break;
		case O_TO:
			if (o.has_to || parse_exit(sp->name, name, val, &o.to)) {
				if (o.has_to)
					fprintf(stderr, "detvm inspect %s: --to given twice\n", sp->name);
				return 2;
			}
			o.has_to = true;
			break;
		case O_TYPE:
			if (seen_type) {
				fprintf(stderr, "detvm inspect %s: --type given twice (list several types as T1,T2)\n", sp->name);
				return 2;
			}
			seen_type = true;
			o.type = val;
			break;
		case O_FORMAT:
			if (seen_format) {
				fprintf(stderr, "detvm inspect %s: --format given twice\n", sp->name);
				return 2;
			}
			seen_format = true;
			if (strcmp(val, "text") == 0)
				o.format = INSPECT_FMT_TEXT;
			else if (strcmp(val, "json") == 0)
				o.format = INSPECT_FMT_JSON;
			else if (strcmp(val, "csv") == 0)
				o.format = INSPECT_FMT_CSV;
			else {
				fprintf(stderr, "detvm inspect %s: --format %s: expected text, json or csv\n", sp->name, val);
				return 2;
			}
			break;
		case O_VIRT: o.virt = true; break;
		case O_RAW: o.raw = true; break;
		case O_HEX: o.hex = true; break;
		case O_FORCE: o.force = true; break;
		case O_FROM_START: o.from_start = true; break;
		case O_KERNEL: o.kernel = val; break;
		case O_DISK: o.disk = val; break;
		}
	}
	if (o.nargs < sp->min_args) {
		fprintf(stderr, "detvm inspect %s: missing argument (usage: %.*s)\n", sp->name,
			(int)strcspn(sp->help + 7, "\n"), sp->help + 7);
		return 2;
	}
	if (sp->opts & O_FROM_START) {
		/* A replay: Ctrl-C stops it cleanly; output may still go to a pipe. */
		install_stop_signals();
		signal(SIGPIPE, SIG_DFL);
	}
	return inspect_run(&o);
}
