/* insp_info.c - `inspect info` and `inspect checkpoints`. */
#include "inspector/insp_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "recorder/recording.h"

#define KEY "%-18s"

static void file_line(const char *what, const char *path)
{
	struct stat st;
	char h[32];
	if (stat(path, &st) < 0)
		printf(KEY "%s (%s)\n", what, path, strerror(errno));
	else
		printf(KEY "%s, %" PRIu64 " bytes (%s)\n", what, path, (uint64_t)st.st_size,
		       insp_human_bytes((uint64_t)st.st_size, h, sizeof(h)));
}

/* Kernel or disk: the recorded identity, and whether the file still matches. */
static void identity_line(const struct trace_header *h, uint16_t tag, const char *what)
{
	struct trace_file_id id;
	struct trace_hash128 now;
	uint64_t size;
	struct stat st;
	char err[400];
	const char *state;

	if (trace_header_get_file_id(h, tag, &id)) {
		printf(KEY "none\n", what);
		return;
	}
	if (stat(id.path, &st) < 0)
		state = "missing now";
	else if ((uint64_t)st.st_size != id.size)
		state = "CHANGED since: other size";
	else if (file_identity(id.path, &size, &now, err, sizeof(err)))
		state = "unreadable now";
	else if (now.lo != id.hash.lo || now.hi != id.hash.hi)
		state = "CHANGED since: other contents";
	else
		state = "present, unchanged";
	printf(KEY "%s, %" PRIu64 " bytes, XXH3-128 %016" PRIx64 "%016" PRIx64 " (%s)\n", what, id.path, id.size,
	       id.hash.hi, id.hash.lo, state);
}

static void str_line(const struct trace_header *h, uint16_t tag, const char *what, const char *absent)
{
	const char *v = trace_header_get_str(h, tag);
	if (!v)
		printf(KEY "%s\n", what, absent);
	else
		printf(KEY "%s\n", what, v);
}

/* The one row of an aggregate query on the checkpoints, stepped to; NULL
 * (said) if it cannot be read. */
static sqlite3_stmt *checkpoints_row(struct insp *in, const char *sql)
{
	sqlite3_stmt *q = insp_prepare(in, sql);
	if (q && sqlite3_step(q) != SQLITE_ROW) {
		insp_err("%s: reading checkpoints: %s", in->db_path, sqlite3_errmsg((sqlite3 *)ckpt_db_handle(in->db)));
		sqlite3_finalize(q);
		return NULL;
	}
	return q;
}

int insp_cmd_info(struct insp *in)
{
	int st = insp_open_files(in, false);
	if (st)
		return st;
	const struct trace_header *h = trace_reader_header(in->r);
	uint16_t major, minor;
	uint64_t v;
	char hb[32];
	int status = INSPECT_OK;

	trace_header_version(h, &major, &minor);
	printf(KEY "%s\n", "recording", in->o->rec);
	file_line("trace", in->trace_path);
	printf(KEY "%u.%u\n", "trace format", major, minor);
	if (in->db)
		file_line("database", in->db_path);
	else
		printf(KEY "none: %s\n", "database", in->db_error);

	/* Configuration, from the trace header. */
	str_line(h, TRACE_TAG_DETVM_VERSION, "detvm version", "(not recorded)");
	str_line(h, TRACE_TAG_HOST, "host", "(not recorded)");
	if (trace_header_get_u64(h, TRACE_TAG_BOOT_EPOCH_NS, &v) == 0) {
		time_t t = (time_t)(v / 1000000000ull);
		struct tm tm;
		char when[64] = "?";
		if (gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
		printf(KEY "%s (guest boot time %" PRIu64 " ns since the Unix epoch)\n", "recorded", when, v);
	}
	identity_line(h, TRACE_TAG_KERNEL_ID, "kernel");
	identity_line(h, TRACE_TAG_DISK_ID, "disk");
	if (trace_header_get_u64(h, TRACE_TAG_MEM_SIZE, &v) == 0)
		printf(KEY "%s (%" PRIu64 " bytes)\n", "memory", insp_human_bytes(v, hb, sizeof(hb)), v);
	const char *cmdline = trace_header_get_str(h, TRACE_TAG_CMDLINE);
	printf(KEY "\"%s\"\n", "cmdline", cmdline ? cmdline : "");
	str_line(h, TRACE_TAG_BOOT_MODE, "boot mode", "(not recorded)");
	const char *sin = trace_header_get_str(h, TRACE_TAG_SERIAL_IN);
	printf(KEY "%s\n", "serial input", sin && *sin ? sin : "(none)");
	str_line(h, TRACE_TAG_PROGRESS_COUNTER, "progress counter", "(not recorded)");
	str_line(h, TRACE_TAG_MEM_DIGEST, "memory digest", TRACE_MEM_DIGEST_FULL " (format 1.0)");
	str_line(h, TRACE_TAG_MSR_POLICY, "MSR policy", TRACE_MSR_POLICY_1 " (before format 1.2)");
	if (trace_header_get_u64(h, TRACE_TAG_DIGEST_INTERVAL, &v) == 0)
		printf(KEY "%" PRIu64 " exits%s\n", "digest interval", v, v ? "" : " (only at the end)");
	if (trace_header_get_u64(h, TRACE_TAG_LANDMARK_BOUND_NS, &v) == 0)
		printf(KEY "%.3f ms\n", "landmark bound", (double)v / 1e6);

	/* The run: exits and events from the database, else from the trace. */
	uint64_t exits = 0, events = 0;
	bool have_counts = false, complete = false;
	char tc[16];
	if (in->db && insp_meta_u64(in, "end_exits", &exits) == 0 && insp_meta_u64(in, "end_events", &events) == 0 &&
	    insp_meta(in, "trace_complete", tc, sizeof(tc)) == 0) {
		have_counts = true;
		complete = strcmp(tc, "1") == 0;
		printf(KEY "%s (as the recorder wrote it in the database)\n", "trace state",
		       complete ? "complete" : "cut short: the recorder did not finish it");
	} else {
		/* Count from the trace: reading it also checks its hash chain. */
		char err[600];
		struct trace_reader *r = trace_reader_open(in->trace_path, err, sizeof(err));
		if (!r) {
			insp_err("%s", err);
			return INSPECT_ERROR;
		}
		struct trace_event ev;
		int rc;
		while ((rc = trace_reader_next(r, &ev)) == 1)
			;
		events = trace_reader_event_ordinal(r) + (trace_reader_frame(r) ? 1 : 0);
		exits = trace_reader_exit_ordinal(r);
		have_counts = true;
		if (rc < 0) {
			printf(KEY "DAMAGED: %s (counts below: up to the damage)\n", "trace state", trace_reader_error(r));
			status = INSPECT_ERROR;
		} else if (trace_reader_complete(r)) {
			complete = true;
			printf(KEY "complete (END and trailer present; counted from the trace)\n", "trace state");
		} else {
			printf(KEY "cut short at offset %" PRIu64 " (counted from the trace)\n", "trace state",
			       trace_reader_truncated_at(r));
		}
		trace_reader_close(r);
	}
	if (have_counts) {
		printf(KEY "%" PRIu64 "\n", "exits", exits);
		printf(KEY "%" PRIu64 "\n", "events", events);
	}
	if (!in->db) {
		if (in->db_exists) {
			insp_err("%s", in->db_error);
			status = INSPECT_ERROR;
		}
		return status;
	}

	sqlite3_stmt *q = insp_prepare(in, "SELECT host_ns FROM events ORDER BY ordinal DESC LIMIT 1");
	if (!q)
		return INSPECT_ERROR;
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		printf(KEY "%.3f s (host time of the last indexed event)\n", "duration",
		       (double)insp_col_u64(q, 0) / 1e9);
	else if (rc == SQLITE_DONE)
		printf(KEY "unknown (no events indexed)\n", "duration");
	sqlite3_finalize(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		insp_err("%s: reading events: %s", in->db_path, sqlite3_errmsg((sqlite3 *)ckpt_db_handle(in->db)));
		return INSPECT_ERROR;
	}

	q = checkpoints_row(in, "SELECT count(*), coalesce(sum(full), 0), min(exit), max(exit), min(host_ns), "
			     "max(host_ns), coalesce(sum(bytes_new), 0), coalesce(avg(pause_ns), 0), "
			     "coalesce(max(pause_ns), 0) FROM checkpoints");
	if (!q)
		return INSPECT_ERROR;
	uint64_t n = insp_col_u64(q, 0), nfull = insp_col_u64(q, 1);
	uint64_t ex0 = insp_col_u64(q, 2), ex1 = insp_col_u64(q, 3), t0 = insp_col_u64(q, 4), t1 = insp_col_u64(q, 5);
	uint64_t bytes_new = insp_col_u64(q, 6);
	double pause_avg = sqlite3_column_double(q, 7);
	uint64_t pause_max = insp_col_u64(q, 8);
	sqlite3_finalize(q);
	printf(KEY "%" PRIu64 " (%" PRIu64 " with a full page map, %" PRIu64 " incremental)\n", "checkpoints", n, nfull,
	       n - nfull);
	if (n >= 2)
		printf(KEY "every %.0f exits, %.1f ms of host time on average (exits %" PRIu64 "..%" PRIu64
		       "); pause %.2f ms mean, %.2f ms max\n", "interval", (double)(ex1 - ex0) / (double)(n - 1),
		       (double)(t1 - t0) / 1e6 / (double)(n - 1), ex0, ex1, pause_avg / 1e6, (double)pause_max / 1e6);
	else if (n == 1)
		printf(KEY "one checkpoint, at exit %" PRIu64 "\n", "interval", ex0);

	/* Captured pages: the first checkpoint's full capture and every
	 * incremental one's rows; a periodic full map (every CKPT_FULL_EVERY
	 * checkpoints) is written from an incremental capture whose size is
	 * not kept, so its rows are counted apart. */
	q = checkpoints_row(in, "SELECT coalesce(sum(CASE WHEN full = 0 OR id = (SELECT min(id) FROM checkpoints) "
			     "THEN pages + blocks END), 0), "
			     "coalesce(sum(CASE WHEN full = 1 AND id > (SELECT min(id) FROM checkpoints) "
			     "THEN pages + blocks END), 0), "
			     "coalesce(sum(CASE WHEN full = 1 AND id > (SELECT min(id) FROM checkpoints) THEN 1 END), 0), "
			     "(SELECT count(*) FROM pages) FROM checkpoints");
	if (!q)
		return INSPECT_ERROR;
	uint64_t captured = insp_col_u64(q, 0), periodic_rows = insp_col_u64(q, 1), periodic = insp_col_u64(q, 2);
	uint64_t distinct = insp_col_u64(q, 3);
	sqlite3_finalize(q);
	printf(KEY "%" PRIu64 " page and disk-block copies captured, %" PRIu64 " distinct contents stored (%s "
	       "compressed): dedup %.1f:1\n", "pages", captured, distinct, insp_human_bytes(bytes_new, hb, sizeof(hb)),
	       distinct ? (double)captured / (double)distinct : 0.0);
	if (periodic)
		printf(KEY "%" PRIu64 " periodic full maps (%" PRIu64 " rows) refer to stored contents too\n", "",
		       periodic, periodic_rows);
	return status;
}

int insp_cmd_checkpoints(struct insp *in)
{
	int st = insp_open_files(in, true);
	if (st)
		return st;
	sqlite3_stmt *q = insp_prepare(in, "SELECT id, exit, event, host_ns, full, pages, blocks, bytes_new, pause_ns "
					   "FROM checkpoints ORDER BY id");
	if (!q)
		return INSPECT_ERROR;
	printf("%6s %12s %12s %12s %-12s %8s %7s %10s %9s\n", "id", "exit", "event", "host_s", "kind", "pages",
	       "blocks", "bytes_new", "pause_ms");
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		printf("%6" PRId64 " %12" PRIu64 " %12" PRIu64 " %12.6f %-12s %8" PRIu64 " %7" PRIu64 " %10" PRIu64
		       " %9.3f\n", (int64_t)sqlite3_column_int64(q, 0), insp_col_u64(q, 1), insp_col_u64(q, 2),
		       (double)insp_col_u64(q, 3) / 1e9, sqlite3_column_int(q, 4) ? "full" : "incremental",
		       insp_col_u64(q, 5), insp_col_u64(q, 6), insp_col_u64(q, 7), (double)insp_col_u64(q, 8) / 1e6);
		if (ferror(stdout))
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		insp_err("%s: reading checkpoints: %s", in->db_path, sqlite3_errmsg((sqlite3 *)ckpt_db_handle(in->db)));
		sqlite3_finalize(q);
		return INSPECT_ERROR;
	}
	sqlite3_finalize(q);
	return INSPECT_OK;
}
