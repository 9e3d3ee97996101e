/*
 * ckpt_schema.c - the SQL schema of checkpoints.db (version 2, described
 * table by table in docs/checkpoints.md), its creation with the meta rows,
 * and the checks a reader makes before trusting a file.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/ckpt_internal.h"

/*
 * Integers are SQLite's signed 64 bits: u64 values at or above 2^63 (an
 * MSR value, a hash) read back negative, which is why hashes are TEXT or
 * BLOB.  page_map/block_map are WITHOUT ROWID with (checkpoint, key) as
 * the primary key: writing a map appends in key order and reading one
 * checkpoint's map is a range of the table itself; the (key, checkpoint)
 * indexes answer "what did gfn G hold at checkpoint K".
 *
 * pages is an ordinary rowid table whose hash is PRIMARY KEY (hence
 * UNIQUE, with its own small index), not WITHOUT ROWID: there a row longer
 * than ~1 KiB (an incompressible page) overflows, and SQLite reads the
 * whole overflowing record at every key comparison of a search, so
 * inserting and looking up random pages cost 2.5-3x more (measured: 655
 * random pages 55-80 ms vs 19-27 ms per checkpoint, restoring 32768 random
 * pages 1.0 s vs 0.4 s).
 */
static const char schema_sql[] =
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);\n"
	"CREATE TABLE checkpoints(\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  exit INTEGER UNIQUE NOT NULL,\n"
	"  event INTEGER, progress INTEGER, host_ns INTEGER, guest_ns INTEGER,\n"
	"  regs_hash TEXT, pause_ns INTEGER, full INTEGER, pages INTEGER,\n"
	"  blocks INTEGER, bytes_new INTEGER, vcpu BLOB, devices BLOB,\n"
	"  checksum TEXT, pages_sum TEXT, blocks_sum TEXT);\n"
	"CREATE TABLE pages(hash BLOB PRIMARY KEY, codec INTEGER, data BLOB);\n"
	"CREATE TABLE page_map(checkpoint INTEGER, gfn INTEGER, hash BLOB,\n"
	"  PRIMARY KEY(checkpoint, gfn)) WITHOUT ROWID;\n"
	"CREATE INDEX page_map_gfn ON page_map(gfn, checkpoint);\n"
	"CREATE TABLE block_map(checkpoint INTEGER, block INTEGER, hash BLOB,\n"
	"  PRIMARY KEY(checkpoint, block)) WITHOUT ROWID;\n"
	"CREATE INDEX block_map_block ON block_map(block, checkpoint);\n"
	"CREATE TABLE frames(seq INTEGER PRIMARY KEY, offset INTEGER,\n"
	"  first_event INTEGER, exit_base INTEGER, events INTEGER, exits INTEGER,\n"
	"  comp_len INTEGER, raw_len INTEGER, prev_hash TEXT);\n"
	"CREATE INDEX frames_first_event ON frames(first_event);\n"
	"CREATE TABLE events(ordinal INTEGER PRIMARY KEY, exit INTEGER, type TEXT,\n"
	"  device TEXT, direction TEXT, size INTEGER, addr INTEGER, value INTEGER,\n"
	"  host_ns INTEGER);\n"
	"CREATE INDEX events_exit ON events(exit);\n"
	"CREATE VIEW event_frames AS\n"
	"  SELECT e.*, (SELECT f.seq FROM frames f WHERE f.first_event <= e.ordinal\n"
	"               ORDER BY f.first_event DESC LIMIT 1) AS frame_seq\n"
	"  FROM events e;\n"
	"CREATE TABLE serial(exit INTEGER, seq INTEGER, data BLOB, PRIMARY KEY(seq));\n";

/* What a reader needs of each table: selecting these must compile. */
static const struct {
	const char *name, *type, *columns;
} required[] = {
	{ "checkpoints", "table", "id, exit, event, progress, host_ns, guest_ns, regs_hash, "
				  "pause_ns, full, pages, blocks, bytes_new, vcpu, devices, checksum, "
				  "pages_sum, blocks_sum" },
	{ "pages", "table", "hash, codec, data" },
	{ "page_map", "table", "checkpoint, gfn, hash" },
	{ "block_map", "table", "checkpoint, block, hash" },
	{ "frames", "table", "seq, offset, first_event, exit_base, events, exits, comp_len, "
			     "raw_len, prev_hash" },
	{ "events", "table", "ordinal, exit, type, device, direction, size, addr, value, host_ns" },
	{ "event_frames", "view", "ordinal, frame_seq" },
	{ "serial", "table", "exit, seq, data" },
};

static int put_meta(sqlite3 *sql, sqlite3_stmt *st, const char *key, const char *value,
		    const char *path, char *err, size_t errlen)
{
	int rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		errf(err, errlen, "%s: writing meta %s: %s", path, key, sqlite3_errmsg(sql));
		return -1;
	}
	sqlite3_reset(st);
	return 0;
}

static int write_meta(sqlite3 *sql, const char *path, const struct ckpt_meta *m,
		      char *err, size_t errlen)
{
	char num[4][24];
	sqlite3_stmt *st;
	int ret = -1;

	if (sqlite3_prepare_v2(sql, "INSERT INTO meta(key, value) VALUES(?1, ?2)", -1, &st,
			       NULL) != SQLITE_OK) {
		errf(err, errlen, "%s: preparing meta insert: %s", path, sqlite3_errmsg(sql));
		return -1;
	}
	snprintf(num[0], sizeof(num[0]), "%d", CKPT_SCHEMA_VERSION);
	snprintf(num[1], sizeof(num[1]), "%" PRIu64, m->mem_size);
	snprintf(num[2], sizeof(num[2]), "%" PRIu64, m->disk_size);
	snprintf(num[3], sizeof(num[3]), "%" PRIu64, m->start_unix_ns);
	if (put_meta(sql, st, "schema_version", num[0], path, err, errlen) ||
	    put_meta(sql, st, "mem_size", num[1], path, err, errlen) ||
	    put_meta(sql, st, "disk_size", num[2], path, err, errlen) ||
	    put_meta(sql, st, "start_unix_ns", num[3], path, err, errlen) ||
	    put_meta(sql, st, "trace_id", m->trace_id, path, err, errlen) ||
	    put_meta(sql, st, "page_size", "4096", path, err, errlen))
		goto out;
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

int ckpt_schema_create(sqlite3 *sql, const char *path, const struct ckpt_meta *meta,
		       char *err, size_t errlen)
{
	char *msg = NULL;

	if (memchr(meta->trace_id, 0, sizeof(meta->trace_id)) == NULL) {
		errf(err, errlen, "%s: meta trace_id is not NUL-terminated", path);
		return -1;
	}
	if (sqlite3_exec(sql, "BEGIN", NULL, NULL, &msg) != SQLITE_OK)
		goto sqlerr;
	if (sqlite3_exec(sql, schema_sql, NULL, NULL, &msg) != SQLITE_OK)
		goto sqlerr;
	if (write_meta(sql, path, meta, err, errlen))
		goto rollback;
	if (sqlite3_exec(sql, "COMMIT", NULL, NULL, &msg) != SQLITE_OK)
		goto sqlerr;
	return 0;
sqlerr:
	errf(err, errlen, "%s: creating the schema: %s", path,
	     msg ? msg : sqlite3_errmsg(sql));
	sqlite3_free(msg);
rollback:
	/* Nothing to check: the file is deleted by our caller anyway. */
	sqlite3_exec(sql, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* A meta value, malloc'd; NULL with *err set when absent or unreadable. */
static char *get_meta(sqlite3 *sql, const char *path, const char *key, char *err,
		      size_t errlen)
{
	sqlite3_stmt *st;
	char *v = NULL;
	int rc;

	if (sqlite3_prepare_v2(sql, "SELECT value FROM meta WHERE key = ?1", -1, &st,
			       NULL) != SQLITE_OK) {
		errf(err, errlen, "%s: reading meta: %s", path, sqlite3_errmsg(sql));
		return NULL;
	}
	rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);

		if (!t && sqlite3_errcode(sql) == SQLITE_NOMEM)
			errf(err, errlen, "%s: meta %s: out of memory", path, key);
		else if (!t)
			errf(err, errlen, "%s: meta %s is NULL", path, key);
		else if (!(v = strdup((const char *)t)))
			errf(err, errlen, "%s: meta %s: out of memory", path, key);
	} else if (rc == SQLITE_DONE) {
		errf(err, errlen, "%s: not a complete checkpoint database: meta has no %s",
		     path, key);
	} else {
		errf(err, errlen, "%s: reading meta %s: %s", path, key, sqlite3_errmsg(sql));
	}
	sqlite3_finalize(st);
	return v;
}

static int meta_u64(sqlite3 *sql, const char *path, const char *key, uint64_t *out,
		    char *err, size_t errlen)
{
	char *v = get_meta(sql, path, key, err, errlen), *end;

	if (!v)
		return -1;
	errno = 0;
	*out = strtoull(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-') {
		errf(err, errlen, "%s: meta %s is \"%s\", not a number", path, key, v);
		free(v);
		return -1;
	}
	free(v);
	return 0;
}

static int has_object(sqlite3 *sql, const char *path, const char *name, const char *type,
		      char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(sql, "SELECT type FROM sqlite_master WHERE name = ?1", -1,
			       &st, NULL) != SQLITE_OK) {
		errf(err, errlen, "%s: reading the schema: %s", path, sqlite3_errmsg(sql));
		return -1;
	}
	rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);

		rc = t && !strcmp(t, type) ? 0 : 1;
		if (rc)
			errf(err, errlen, "%s: not a checkpoint database: %s is a %s, not a %s",
			     path, name, t ? t : "?", type);
	} else if (rc == SQLITE_DONE) {
		errf(err, errlen, "%s: not a checkpoint database: %s %s missing", path,
		     type, name);
		rc = 1;
	} else {
		errf(err, errlen, "%s: reading the schema: %s", path, sqlite3_errmsg(sql));
	}
	sqlite3_finalize(st);
	return rc ? -1 : 0;
}

/* The table has the columns we read: selecting them compiles. */
static int has_columns(sqlite3 *sql, const char *path, const char *name, const char *cols,
		       char *err, size_t errlen)
{
	char q[512];
	sqlite3_stmt *st;

	snprintf(q, sizeof(q), "SELECT %s FROM %s LIMIT 0", cols, name);
	if (sqlite3_prepare_v2(sql, q, -1, &st, NULL) != SQLITE_OK) {
		errf(err, errlen, "%s: not a checkpoint database of schema %d: %s: %s", path,
		     CKPT_SCHEMA_VERSION, name, sqlite3_errmsg(sql));
		return -1;
	}
	sqlite3_finalize(st);
	return 0;
}

static int read_meta(sqlite3 *sql, const char *path, struct ckpt_meta *m, char *err,
		     size_t errlen)
{
	char *id;

	if (meta_u64(sql, path, "mem_size", &m->mem_size, err, errlen) ||
	    meta_u64(sql, path, "disk_size", &m->disk_size, err, errlen) ||
	    meta_u64(sql, path, "start_unix_ns", &m->start_unix_ns, err, errlen))
		return -1;
	id = get_meta(sql, path, "trace_id", err, errlen);
	if (!id)
		return -1;
	if (strlen(id) >= sizeof(m->trace_id)) {
		errf(err, errlen, "%s: meta trace_id is %zu characters long", path,
		     strlen(id));
		free(id);
		return -1;
	}
	strcpy(m->trace_id, id);
	free(id);
	return 0;
}

int ckpt_schema_check(sqlite3 *sql, const char *path, struct ckpt_meta *meta,
		      char *err, size_t errlen)
{
	uint64_t version, page_size;

	/* The version first: another version may have other tables. */
	if (has_object(sql, path, "meta", "table", err, errlen) ||
	    has_columns(sql, path, "meta", "key, value", err, errlen) ||
	    meta_u64(sql, path, "schema_version", &version, err, errlen))
		return -1;
	if (version != CKPT_SCHEMA_VERSION) {
		errf(err, errlen,
		     "%s: checkpoint database schema version %" PRIu64
		     ", this detvm reads version %d (without it, replays start from the "
		     "beginning of the trace)",
		     path, version, CKPT_SCHEMA_VERSION);
		return -1;
	}
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (has_object(sql, path, required[i].name, required[i].type, err, errlen) ||
		    has_columns(sql, path, required[i].name, required[i].columns, err, errlen))
			return -1;
	if (meta_u64(sql, path, "page_size", &page_size, err, errlen))
		return -1;
	if (page_size != CKPT_PAGE_SIZE) {
		errf(err, errlen, "%s: meta page_size is %" PRIu64 ", not %d", path,
		     page_size, CKPT_PAGE_SIZE);
		return -1;
	}
	return read_meta(sql, path, meta, err, errlen);
}
