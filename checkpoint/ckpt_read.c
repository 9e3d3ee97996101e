/*
 * ckpt_read.c - reading checkpoints.db: opening it read-only with its
 * checks, checkpoint lookups, and rebuilding a checkpoint's RAM and disk
 * overlay from its nearest full map and the incremental maps after it,
 * every page checked against its key.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "checkpoint/ckpt_internal.h"

#define READER_BUSY_MS	10000	/* a writer commits in far less */

static bool reader_ok(struct ckpt_db *db, char *err, size_t errlen)
{
	if (db->writer)
		errf(err, errlen, "%s: opened for writing; reading needs ckpt_db_open()",
		     db->path);
	return !db->writer;
}

/* SQLite integers are signed: clamp a u64 bound to what a column can hold. */
static sqlite3_int64 bound(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

static int prep(struct ckpt_db *db, const char *sql, sqlite3_stmt **st, char *err,
		size_t errlen)
{
	if (sqlite3_prepare_v2(db->sql, sql, -1, st, NULL) == SQLITE_OK)
		return 0;
	errf(err, errlen, "%s: preparing \"%s\": %s", db->path, sql, sqlite3_errmsg(db->sql));
	return -1;
}

/* ---- opening ---- */

static int open_conn(struct ckpt_db *db, int flags, char *err, size_t errlen)
{
	int rc = sqlite3_open_v2(db->path, &db->sql, flags, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(db->sql, READER_BUSY_MS);
	if (rc != SQLITE_OK) {
		errf(err, errlen, "%s: cannot open the checkpoint database: %s", db->path,
		     db->sql ? sqlite3_errmsg(db->sql) : sqlite3_errstr(rc));
		sqlite3_close(db->sql);
		db->sql = NULL;
		return -1;
	}
	return 0;
}

/* Read the schema once: the first read is where SQLite looks at the file. */
static int probe(struct ckpt_db *db)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db->sql, "SELECT count(*) FROM sqlite_master", -1, &st,
				    NULL);

	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc == SQLITE_ROW)
			return SQLITE_OK;
	}
	return sqlite3_extended_errcode(db->sql);
}

/*
 * A writer killed inside a transaction leaves a hot journal, which only a
 * read-write connection may roll back (read-only: SQLITE_READONLY_ROLLBACK).
 * Rolling it back is what any SQLite client does on first access, and it
 * only restores the last commit; no writer can hold the file, or the
 * journal would not be hot.
 */
static int roll_back_hot_journal(struct ckpt_db *db, char *err, size_t errlen)
{
	static const char what[] =
		"its writer was killed inside a transaction and the journal must be rolled back";
	int rc;

	sqlite3_close(db->sql);
	db->sql = NULL;
	rc = sqlite3_open_v2(db->path, &db->sql, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(db->sql, READER_BUSY_MS);
	if (rc == SQLITE_OK)
		rc = probe(db);
	sqlite3_close(db->sql);
	db->sql = NULL;
	if (rc != SQLITE_OK) {
		errf(err, errlen, "%s: %s, which needs write access: %s", db->path, what,
		     sqlite3_errstr(rc));
		return -1;
	}
	return open_conn(db, SQLITE_OPEN_READONLY, err, errlen);
}

static int open_checked(struct ckpt_db *db, char *err, size_t errlen)
{
	int rc;

	if (open_conn(db, SQLITE_OPEN_READONLY, err, errlen))
		return -1;
	rc = probe(db);
	if (rc == SQLITE_READONLY_ROLLBACK) {
		if (roll_back_hot_journal(db, err, errlen))
			return -1;
		rc = probe(db);
	}
	if ((rc & 0xff) == SQLITE_NOTADB) {
		errf(err, errlen, "%s: not a checkpoint database (not an SQLite file)",
		     db->path);
		return -1;
	}
	if (rc != SQLITE_OK) {
		errf(err, errlen, "%s: cannot read the checkpoint database: %s", db->path,
		     sqlite3_errmsg(db->sql));
		return -1;
	}
	return ckpt_schema_check(db->sql, db->path, &db->meta, err, errlen);
}

struct ckpt_db *ckpt_db_alloc(const char *path, char *err, size_t errlen)
{
	struct ckpt_db *db = calloc(1, sizeof(*db));

	if (!db || !(db->path = strdup(path))) {
		free(db);
		errf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	return db;
}

struct ckpt_db *ckpt_db_open(const char *path, char *err, size_t errlen)
{
	struct ckpt_db *db;
	struct stat sb;

	if (stat(path, &sb)) {
		errf(err, errlen, "%s: cannot open the checkpoint database: %s", path,
		     strerror(errno));
		return NULL;
	}
	if (!S_ISREG(sb.st_mode)) {
		errf(err, errlen, "%s: not a checkpoint database (not a regular file)", path);
		return NULL;
	}
	if (sb.st_size == 0) {
		/* The recorder claims the file, then its thread writes the schema. */
		errf(err, errlen, "%s: empty: the recorder stopped before it wrote the schema", path);
		return NULL;
	}
	db = ckpt_db_alloc(path, err, errlen);
	if (!db)
		return NULL;
	if (open_checked(db, err, errlen)) {
		ckpt_db_close(db);
		return NULL;
	}
	return db;
}

void ckpt_db_close(struct ckpt_db *db)
{
	if (!db)
		return;
	if (db->writer) {
		ckpt_db_finish(db, NULL, 0);
		return;
	}
	/* Read-only, every statement finalized: nothing to lose here. */
	sqlite3_close(db->sql);
	free(db->path);
	free(db);
}

const struct ckpt_meta *ckpt_db_meta(struct ckpt_db *db)
{
	return &db->meta;
}

struct sqlite3 *ckpt_db_handle(struct ckpt_db *db)
{
	return db->writer ? NULL : db->sql;
}

int ckpt_db_get_meta(struct ckpt_db *db, const char *key, char *out, size_t outlen)
{
	sqlite3_stmt *st;
	int rc, ret = -1;

	if (db->writer || sqlite3_prepare_v2(db->sql, "SELECT value FROM meta WHERE key = ?1",
					     -1, &st, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);

		/* Absent, NULL or too long for out: all -1, never a cut value. */
		if (v && strlen(v) < outlen) {
			strcpy(out, v);
			ret = 0;
		}
	}
	sqlite3_finalize(st);
	return ret;
}

/* ---- checkpoints ---- */

#define INFO_COLUMNS \
	"id, exit, event, progress, host_ns, guest_ns, regs_hash, pause_ns, full, pages, " \
	"blocks, bytes_new, pages_sum, blocks_sum"

/* A map sum column (32 hex digits, as ckpt_hash_hex writes them). */
static int read_sum(struct ckpt_db *db, sqlite3_stmt *st, int col, const char *name,
		    int64_t id, struct ckpt_hash *out, char *err, size_t errlen)
{
	const char *hex = (const char *)sqlite3_column_text(st, col);
	uint8_t b[CKPT_HASH_BLOB];

	if (ckpt_unhex(hex, b, sizeof(b))) {
		errf(err, errlen, "%s: checkpoint %" PRId64 " is damaged: %s is %s", db->path,
		     id, name, hex ? hex : "NULL");
		return -1;
	}
	*out = ckpt_hash_from_blob(b);
	return 0;
}

static int read_info(struct ckpt_db *db, sqlite3_stmt *st, struct ckpt_info *o, char *err,
		     size_t errlen)
{
	const char *regs = (const char *)sqlite3_column_text(st, 6);
	char *end;

	o->id = sqlite3_column_int64(st, 0);
	o->exit = (uint64_t)sqlite3_column_int64(st, 1);
	o->event = (uint64_t)sqlite3_column_int64(st, 2);
	o->progress = (uint64_t)sqlite3_column_int64(st, 3);
	o->host_ns = (uint64_t)sqlite3_column_int64(st, 4);
	o->guest_ns = (uint64_t)sqlite3_column_int64(st, 5);
	o->pause_ns = (uint64_t)sqlite3_column_int64(st, 7);
	o->full = sqlite3_column_int64(st, 8) != 0;
	o->pages = (uint64_t)sqlite3_column_int64(st, 9);
	o->blocks = (uint64_t)sqlite3_column_int64(st, 10);
	o->bytes_new = (uint64_t)sqlite3_column_int64(st, 11);
	errno = 0;
	o->regs_hash = regs ? strtoull(regs, &end, 16) : 0;
	if (!regs || errno || strlen(regs) != 16 || *end) {
		errf(err, errlen, "%s: checkpoint %" PRId64 " is damaged: regs_hash is %s",
		     db->path, o->id, regs ? regs : "NULL");
		return -1;
	}
	return read_sum(db, st, 12, "pages_sum", o->id, &o->pages_sum, err, errlen) ||
	       read_sum(db, st, 13, "blocks_sum", o->id, &o->blocks_sum, err, errlen) ? -1 : 0;
}

/* Run a query for one checkpoint row: 0, 1 if there is none, -1 on error. */
static int query_info(struct ckpt_db *db, const char *sql, sqlite3_int64 arg,
		      struct ckpt_info *out, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int rc, ret = -1;

	if (!reader_ok(db, err, errlen) || prep(db, sql, &st, err, errlen))
		return -1;
	rc = sqlite3_bind_int64(st, 1, arg);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ret = read_info(db, st, out, err, errlen);
	else if (rc == SQLITE_DONE)
		ret = 1;
	else
		errf(err, errlen, "%s: reading checkpoints: %s", db->path,
		     sqlite3_errmsg(db->sql));
	sqlite3_finalize(st);
	return ret;
}

int64_t ckpt_db_count(struct ckpt_db *db, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int64_t n = -1;

	if (!reader_ok(db, err, errlen) ||
	    prep(db, "SELECT count(*) FROM checkpoints", &st, err, errlen))
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		errf(err, errlen, "%s: counting checkpoints: %s", db->path,
		     sqlite3_errmsg(db->sql));
	sqlite3_finalize(st);
	return n;
}

int ckpt_db_get(struct ckpt_db *db, int64_t id, struct ckpt_info *out, char *err,
		size_t errlen)
{
	int r = query_info(db, "SELECT " INFO_COLUMNS " FROM checkpoints WHERE id = ?1", id, out,
			   err, errlen);

	if (r > 0)
		errf(err, errlen, "%s: no checkpoint %" PRId64, db->path, id);
	return r ? -1 : 0;
}

int ckpt_db_find(struct ckpt_db *db, uint64_t exit, struct ckpt_info *out, char *err,
		 size_t errlen)
{
	int r = query_info(db,
			   "SELECT " INFO_COLUMNS " FROM checkpoints WHERE exit <= ?1 "
			   "ORDER BY exit DESC LIMIT 1",
			   bound(exit), out, err, errlen);

	if (r > 0)
		errf(err, errlen, "%s: no checkpoint at or before exit %" PRIu64, db->path,
		     exit);
	return r ? -1 : 0;
}

/* A blob column copied to malloc'd memory (never NULL on success). */
static int copy_blob(struct ckpt_db *db, sqlite3_stmt *st, int col, uint8_t **out,
		     size_t *len, int64_t id, char *err, size_t errlen)
{
	const void *p = sqlite3_column_blob(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);

	if (!p && n) {
		errf(err, errlen, "%s: checkpoint %" PRId64 ": reading a state blob: %s",
		     db->path, id, sqlite3_errmsg(db->sql));
		return -1;
	}
	*out = malloc(n ? n : 1);
	if (!*out) {
		errf(err, errlen, "%s: checkpoint %" PRId64 ": out of memory for %zu bytes",
		     db->path, id, n);
		return -1;
	}
	if (n)
		memcpy(*out, p, n);
	*len = n;
	return 0;
}

int ckpt_db_blobs(struct ckpt_db *db, int64_t id, uint8_t **vcpu, size_t *vcpu_len,
		  uint8_t **devices, size_t *devices_len, char *err, size_t errlen)
{
	uint8_t *v = NULL, *d = NULL;
	size_t vl = 0, dl = 0;
	const char *stored;
	sqlite3_stmt *st;
	char sum[17];
	int rc, ret = -1;

	if (!reader_ok(db, err, errlen) ||
	    prep(db, "SELECT vcpu, devices, checksum FROM checkpoints WHERE id = ?1", &st, err,
		 errlen))
		return -1;
	rc = sqlite3_bind_int64(st, 1, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		errf(err, errlen, "%s: no checkpoint %" PRId64, db->path, id);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		errf(err, errlen, "%s: checkpoint %" PRId64 ": reading its blobs: %s",
		     db->path, id, sqlite3_errmsg(db->sql));
		goto out;
	}
	if (copy_blob(db, st, 0, &v, &vl, id, err, errlen) ||
	    copy_blob(db, st, 1, &d, &dl, id, err, errlen))
		goto out;
	ckpt_blobs_checksum(v, vl, d, dl, sum);
	stored = (const char *)sqlite3_column_text(st, 2);
	if (!stored || strcasecmp(stored, sum)) {
		errf(err, errlen,
		     "%s: checkpoint %" PRId64
		     " is damaged: its vcpu/devices blobs hash to %s, the checksum column says %s",
		     db->path, id, sum, stored ? stored : "NULL");
		goto out;
	}
	*vcpu = v;
	*vcpu_len = vl;
	*devices = d;
	*devices_len = dl;
	v = d = NULL;
	ret = 0;
out:
	free(v);
	free(d);
	sqlite3_finalize(st);
	return ret;
}

/* ---- pages and blocks ---- */

/* How reading a page map differs from reading a block map. */
struct read_kind {
	const char *select;	/* rows of checkpoints ?1..?2, in checkpoint order */
	const char *what;	/* "page for gfn", "disk block": for messages */
	const char *map;	/* "page map", "block map": for messages */
	bool zero_absent;	/* RAM: skip zero pages (see ckpt_db.c, struct map_kind) */
	bool pages;		/* checked against pages_sum, else blocks_sum */
};

static const struct read_kind ram_kind = {
	"SELECT checkpoint, gfn, hash FROM page_map WHERE checkpoint BETWEEN ?1 AND ?2 "
	"ORDER BY checkpoint, gfn", "page for gfn", "page map", true, true,
};
static const struct read_kind disk_kind = {
	"SELECT checkpoint, block, hash FROM block_map WHERE checkpoint BETWEEN ?1 AND ?2 "
	"ORDER BY checkpoint, block", "disk block", "block map", false, false,
};

/* The nearest full checkpoint at or before id (whose row the caller has read). */
static int full_base(struct ckpt_db *db, int64_t id, int64_t *base, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int rc;

	if (prep(db, "SELECT max(id) FROM checkpoints WHERE id <= ?1 AND full = 1", &st, err,
		 errlen))
		return -1;
	rc = sqlite3_bind_int64(st, 1, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		errf(err, errlen, "%s: checkpoint %" PRId64 ": finding its full map: %s",
		     db->path, id, sqlite3_errmsg(db->sql));
		rc = -1;
	} else if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
		errf(err, errlen,
		     "%s: checkpoint %" PRId64 " is damaged: no full checkpoint at or before it",
		     db->path, id);
		rc = -1;
	} else {
		*base = sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Merge the maps of checkpoints base..id: the latest row of each key wins. */
static int merge_maps(struct ckpt_db *db, const struct read_kind *k, int64_t base,
		      int64_t id, struct ckpt_map *map, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int rc;

	if (prep(db, k->select, &st, err, errlen))
		return -1;
	rc = sqlite3_bind_int64(st, 1, base);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, id);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t key = sqlite3_column_int64(st, 1);
		const void *blob = sqlite3_column_blob(st, 2);
		struct ckpt_hash h;

		if (!blob || sqlite3_column_bytes(st, 2) != CKPT_HASH_BLOB || key < 0 ||
		    (uint64_t)key > CKPT_KEY_MAX) {
			errf(err, errlen,
			     "%s: checkpoint %" PRId64 " is damaged: the map row of %s 0x%" PRIx64
			     " in checkpoint %" PRId64 " has a %d-byte hash",
			     db->path, id, k->what, (uint64_t)key, (int64_t)sqlite3_column_int64(st, 0),
			     sqlite3_column_bytes(st, 2));
			sqlite3_finalize(st);
			return -1;
		}
		h = ckpt_hash_from_blob(blob);
		if (ckpt_map_set(map, (uint64_t)key, &h)) {
			errf(err, errlen, "%s: checkpoint %" PRId64 ": out of memory", db->path,
			     id);
			sqlite3_finalize(st);
			return -1;
		}
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_DONE)
		errf(err, errlen, "%s: checkpoint %" PRId64 ": reading its maps: %s",
		     db->path, id, sqlite3_errmsg(db->sql));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Fetch, decode and check one page into out. */
static int fetch_page(struct ckpt_db *db, sqlite3_stmt *st, ZSTD_DCtx *dctx,
		      const struct read_kind *k, int64_t id, uint64_t key,
		      const struct ckpt_hash *h, uint8_t out[CKPT_PAGE_SIZE], char *err,
		      size_t errlen)
{
	uint8_t blob[CKPT_HASH_BLOB];
	char hex[CKPT_HASH_HEX], why[128];
	struct ckpt_hash got;
	int rc;

	ckpt_hash_hex(h, hex);
	ckpt_hash_to_blob(h, blob);
	rc = sqlite3_bind_blob(st, 1, blob, sizeof(blob), SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		errf(err, errlen,
		     "%s: %s 0x%" PRIx64 " in checkpoint %" PRId64
		     " is missing (hash %s is not in the pages table)",
		     db->path, k->what, key, id, hex);
		goto fail;
	}
	if (rc != SQLITE_ROW) {
		errf(err, errlen, "%s: %s 0x%" PRIx64 " in checkpoint %" PRId64 ": %s",
		     db->path, k->what, key, id, sqlite3_errmsg(db->sql));
		goto fail;
	}
	if (ckpt_page_decode(dctx, sqlite3_column_int(st, 0), sqlite3_column_blob(st, 1),
			     (size_t)sqlite3_column_bytes(st, 1), out, why, sizeof(why))) {
		errf(err, errlen,
		     "%s: %s 0x%" PRIx64 " in checkpoint %" PRId64 " is damaged (hash %s: %s)",
		     db->path, k->what, key, id, hex, why);
		goto fail;
	}
	got = ckpt_hash_page(out);
	if (!ckpt_hash_eq(&got, h)) {
		errf(err, errlen,
		     "%s: %s 0x%" PRIx64 " in checkpoint %" PRId64
		     " is damaged (hash %s does not match)",
		     db->path, k->what, key, id, hex);
		goto fail;
	}
	sqlite3_reset(st);
	return 0;
fail:
	sqlite3_reset(st);
	return -1;
}

static int read_map(struct ckpt_db *db, const struct read_kind *k, int64_t id,
		    int (*cb)(void *ctx, uint64_t key, const uint8_t *data), void *ctx,
		    char *err, size_t errlen)
{
	const struct ckpt_hash *zero = ckpt_zero_hash();
	struct ckpt_map map = { 0 };
	struct ckpt_map_ent *e = NULL;
	sqlite3_stmt *st = NULL;
	ZSTD_DCtx *dctx = NULL;
	uint8_t *page = NULL;
	struct ckpt_info info;
	struct ckpt_hash sum = { 0, 0 };
	int64_t base;
	size_t n;
	int ret = -1;

	if (!reader_ok(db, err, errlen) || ckpt_db_get(db, id, &info, err, errlen) ||
	    full_base(db, id, &base, err, errlen) || merge_maps(db, k, base, id, &map, err, errlen))
		goto out;
	if (ckpt_map_sorted(&map, &e, &n)) {
		errf(err, errlen, "%s: checkpoint %" PRId64 ": out of memory", db->path, id);
		goto out;
	}
	ckpt_map_free(&map);
	/*
	 * Before any content is handed out: the rebuilt map must have the sum
	 * the writer's map had (a map row lost, added, or with a changed key
	 * or hash, would otherwise restore a wrong page, or a zero one, with
	 * every page content still matching its hash).
	 */
	for (size_t i = 0; i < n; i++)
		if (!(k->zero_absent && ckpt_hash_eq(&e[i].h, zero)))
			ckpt_sum_entry(&sum, e[i].key, &e[i].h, 1);
	const struct ckpt_hash *want = k->pages ? &info.pages_sum : &info.blocks_sum;
	if (!ckpt_hash_eq(&sum, want)) {
		char got_hex[CKPT_HASH_HEX], want_hex[CKPT_HASH_HEX];

		ckpt_hash_hex(&sum, got_hex);
		ckpt_hash_hex(want, want_hex);
		errf(err, errlen,
		     "%s: checkpoint %" PRId64 " is damaged: its %s, rebuilt from the rows of "
		     "checkpoints %" PRId64 "..%" PRId64 " (%zu entries), sums to %s, the "
		     "checkpoint says %s",
		     db->path, id, k->map, base, id, n, got_hex, want_hex);
		goto out;
	}
	dctx = ZSTD_createDCtx();
	page = malloc(CKPT_PAGE_SIZE);
	if (!dctx || !page) {
		errf(err, errlen, "%s: out of memory for the decompressor", db->path);
		goto out;
	}
	if (prep(db, "SELECT codec, data FROM pages WHERE hash = ?1", &st, err, errlen))
		goto out;
	ret = 0;
	for (size_t i = 0; i < n && !ret; i++) {
		if (k->zero_absent && ckpt_hash_eq(&e[i].h, zero))
			continue;
		if (fetch_page(db, st, dctx, k, id, e[i].key, &e[i].h, page, err, errlen))
			ret = -1;
		else
			ret = cb(ctx, e[i].key, page);
	}
out:
	sqlite3_finalize(st);
	ZSTD_freeDCtx(dctx);
	free(page);
	free(e);
	ckpt_map_free(&map);
	return ret;
}

int ckpt_db_pages(struct ckpt_db *db, int64_t id,
		  int (*cb)(void *ctx, uint64_t gfn, const uint8_t *data), void *ctx,
		  char *err, size_t errlen)
{
	return read_map(db, &ram_kind, id, cb, ctx, err, errlen);
}

int ckpt_db_blocks(struct ckpt_db *db, int64_t id,
		   int (*cb)(void *ctx, uint64_t block, const uint8_t *data), void *ctx,
		   char *err, size_t errlen)
{
	return read_map(db, &disk_kind, id, cb, ctx, err, errlen);
}

/* ---- frames ---- */

int ckpt_db_frame_for_event(struct ckpt_db *db, uint64_t event, struct ckpt_frame_row *out,
			    char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int rc, ret = -1;

	if (!reader_ok(db, err, errlen) ||
	    prep(db,
		 "SELECT seq, offset, first_event, exit_base, events, exits, prev_hash "
		 "FROM frames WHERE first_event <= ?1 ORDER BY first_event DESC LIMIT 1",
		 &st, err, errlen))
		return -1;
	rc = sqlite3_bind_int64(st, 1, bound(event));
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		errf(err, errlen, "%s: no frame holds event %" PRIu64, db->path, event);
	} else if (rc != SQLITE_ROW) {
		errf(err, errlen, "%s: reading frames: %s", db->path, sqlite3_errmsg(db->sql));
	} else {
		const char *hex = (const char *)sqlite3_column_text(st, 6);

		out->seq = (uint64_t)sqlite3_column_int64(st, 0);
		out->offset = (uint64_t)sqlite3_column_int64(st, 1);
		out->first_event = (uint64_t)sqlite3_column_int64(st, 2);
		out->exit_base = (uint64_t)sqlite3_column_int64(st, 3);
		out->events = (uint32_t)sqlite3_column_int64(st, 4);
		out->exits = (uint32_t)sqlite3_column_int64(st, 5);
		if (ckpt_unhex(hex, out->prev_hash, TRACE_HASH_SIZE))
			errf(err, errlen,
			     "%s: frame %" PRIu64 " is damaged: prev_hash is not 64 hex digits",
			     db->path, out->seq);
		else
			ret = 0;
	}
	sqlite3_finalize(st);
	return ret;
}
