/* cmd_verify.c - `detvm verify`: prove a recording intact. */
#include "cli.h"

#include <inttypes.h>
#include <string.h>

#include "recorder/recording.h"
#include "trace-format/trace.h"

int cmd_verify(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-') {
		FILE *f = argc == 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr;
		fprintf(f, "usage: detvm verify REC\n"
			"Check every frame's checksums, the SHA-256 hash chain, sequence numbers and the\n"
			"END record of the recording REC.  Prints the final chain hash: the recording's\n"
			"fingerprint.  Exit status: 0 intact and complete; 1 intact but cut short;\n"
			"2 damaged, altered or unreadable.\n");
		return f == stdout ? 0 : 2;
	}
	char path[4096], err[600];
	if (recording_trace_path(argv[1], path, sizeof(path), err, sizeof(err))) {
		fprintf(stderr, "detvm verify: %s\n", err);
		return 2;
	}
	struct trace_verify_report rep;
	memset(&rep, 0, sizeof(rep));
	int rc = trace_verify(path, &rep, err, sizeof(err));
	if (rc < 0 && rep.major == 0) {
		/* The file header itself was refused: nothing to summarise. */
		fprintf(stderr, "detvm verify: %s\n", err);
		return 2;
	}
	printf("trace %s: format %u.%u, %" PRIu64 " frames, %" PRIu64 " events, %" PRIu64 " exits, %" PRIu64
	       " bytes (%" PRIu64 " uncompressed)\n", path, rep.major, rep.minor, rep.frames, rep.events,
	       rep.exits, rep.file_bytes, rep.raw_bytes);
	if (rc == 0) {
		printf("intact and complete; chain hash %s\n", rep.final_hash_hex);
		return 0;
	}
	if (rc == 1) {
		printf("intact but cut short at offset %" PRIu64 " (the recorder did not finish); chain hash %s\n",
		       rep.truncated_at, rep.final_hash_hex);
		fprintf(stderr, "detvm verify: %s\n", err);
		return 1;
	}
	fprintf(stderr, "detvm verify: %s\n", err);
	return 2;
}
