/*
 * trace_verify.c - walk a whole trace and say whether it is intact,
 * complete, and what its fingerprint is (the SHA-256 that ends the chain:
 * equal fingerprints mean equal files up to their last good frame).
 *
 * It is the reader run to the end: every check lives there, so that
 * `detvm verify` and a replay refuse exactly the same files.
 */
#include <stdio.h>
#include <sys/stat.h>

#include "trace-format/trace_internal.h"

int trace_verify(const char *path, struct trace_verify_report *rep,
		 char *err, size_t errlen)
{
	struct trace_reader *r;
	struct trace_event ev;
	uint64_t last_seq = UINT64_MAX;
	struct stat st;
	int ret;

	memset(rep, 0, sizeof(*rep));
	if (!stat(path, &st))
		rep->file_bytes = (uint64_t)st.st_size;
	r = trace_reader_open(path, err, errlen);
	if (!r)
		return -1;
	trace_header_version(trace_reader_header(r), &rep->major, &rep->minor);
	while ((ret = trace_reader_next(r, &ev)) > 0) {
		const struct trace_frame_info *fi = trace_reader_frame(r);

		if (fi->seq != last_seq) {
			last_seq = fi->seq;
			rep->frames++;
			rep->raw_bytes += fi->raw_len;
		}
		rep->events = trace_reader_event_ordinal(r) + 1;
		rep->exits = trace_reader_exit_ordinal(r);
		if (ev.type == TRACE_EV_END) {
			rep->has_end = true;
			rep->end_reason = ev.end.reason;
			rep->end_status = ev.end.status;
		}
	}
	trace_reader_chain_hash(r, rep->final_hash);
	trace_hash_hex(rep->final_hash, rep->final_hash_hex);
	if (ret < 0) {
		errf(err, errlen, "%s", trace_reader_error(r));
		trace_reader_close(r);
		return -1;
	}
	rep->complete = trace_reader_complete(r);
	if (!rep->complete) {
		rep->truncated_at = trace_reader_truncated_at(r);
		errf(err, errlen,
		     "%s: cut short at offset %llu after %llu frames%s: the recording did not finish (the recorder was killed, or stopped where it could not end the trace, or power was lost)",
		     path, (unsigned long long)rep->truncated_at,
		     (unsigned long long)rep->frames,
		     rep->has_end ? " (END present, trailer missing)" : "");
	}
	trace_reader_close(r);
	return rep->complete ? 0 : 1;
}
