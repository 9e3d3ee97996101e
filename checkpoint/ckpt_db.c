/*
 * ckpt_db.c - writing checkpoints.db: the queue the vCPU thread puts into
 * and the one thread that hashes, compresses and inserts.
 *
 * The queue is a list of batches.  A batch collects the index rows (events,
 * frames, serial output, meta) put since the previous checkpoint and is
 * closed by the next checkpoint; the thread writes a batch in one
 * transaction, so a checkpoint commits together with every index row put
 * before it, and a killed recorder leaves the database at a batch boundary.
 * An open batch (index rows and no checkpoint yet) is written when it is
 * FLUSH_NS old, when a sync asks for it, when it grows large, or at finish.
 *
 * Back-pressure: at most CKPT_INFLIGHT checkpoints are queued or being
 * written; a further put_checkpoint waits (stats.queue_waits).  Index rows
 * never wait: between two checkpoints they are few.
 *
 * The thread keeps the current full page map and block map in memory
 * (ckpt_map.c) so that it can write a full map every CKPT_FULL_EVERY
 * checkpoints from incremental captures, and the set of hashes already in
 * the pages table so that a content is compressed and stored once.
 *
 * Failures (SQLite, zstd, memory, an invalid put) are sticky: the first
 * message is kept, ckpt_db_failed() and ckpt_db_finish() return it, every
 * later put returns -1, and the thread drops what is still queued.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/ckpt_internal.h"
#include "common/fsync_dir.h"
#include "common/quiet_thread.h"

#define CKPT_INFLIGHT		2		/* checkpoints queued or being written */
/*
 * Index rows wait at most this.  Short, so that the rows are committed
 * while the guest runs, on the core the vCPU thread leaves idle, rather
 * than all at the recorder's end: with 250 ms, a 20 ms guest's 400 rows
 * made one commit of about 1.2 ms after it stopped, the longest path of
 * its end (bench/record_ab.py hello: 0.4 ms less with 2 or 5 ms).  A
 * commit's own cost, beside its rows, is about 0.15 ms here (the rollback
 * journal's creation and removal): every 5 ms that is 3% of a core.
 */
#define FLUSH_NS		5000000ull
#define BATCH_ROWS_MAX		65536		/* an open batch this big is written now */
#define WRITER_BUSY_MS		60000		/* a reader may hold the file this long */
#define WRITER_CACHE_KIB	16384		/* SQLite page cache: a transaction mostly stays in it */
#define STR_(x)			#x
#define STR(x)			STR_(x)

/* ---- small helpers ---- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A pthread mutex/condition call failing means a corrupted object: stop. */
static void pthread_check(int e, const char *what, const struct ckpt_db *db)
{
	if (e) {
		fprintf(stderr, "detvm: %s: %s: %s\n", db->path, what, strerror(e));
		abort();
	}
}

static void lock(struct ckpt_db *db)
{
	pthread_check(pthread_mutex_lock(&db->lock), "pthread_mutex_lock", db);
}

static void unlock(struct ckpt_db *db)
{
	pthread_check(pthread_mutex_unlock(&db->lock), "pthread_mutex_unlock", db);
}

static void wait_cond(struct ckpt_db *db, pthread_cond_t *c)
{
	pthread_check(pthread_cond_wait(c, &db->lock), "pthread_cond_wait", db);
}

static void wait_until(struct ckpt_db *db, pthread_cond_t *c, uint64_t deadline_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(deadline_ns / 1000000000ull),
		.tv_nsec = (long)(deadline_ns % 1000000000ull),
	};
	int e = pthread_cond_timedwait(c, &db->lock, &ts);

	if (e != ETIMEDOUT)
		pthread_check(e, "pthread_cond_timedwait", db);
}

static void signal_cond(struct ckpt_db *db, pthread_cond_t *c)
{
	pthread_check(pthread_cond_broadcast(c), "pthread_cond_broadcast", db);
}

/* Record the first failure (lock held). */
static void set_failed(struct ckpt_db *db, const char *msg)
{
	if (atomic_load(&db->failed))
		return;
	snprintf(db->err, sizeof(db->err), "%s", msg);
	atomic_store(&db->failed, true);
	signal_cond(db, &db->done);
	signal_cond(db, &db->work);
}

/* Fail a put (lock held): -1. */
static int put_failed(struct ckpt_db *db, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int put_failed(struct ckpt_db *db, const char *fmt, ...)
{
	char msg[CKPT_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	ckpt_vpathf(msg, sizeof(msg), db->path, fmt, ap);
	va_end(ap);
	set_failed(db, msg);
	return -1;
}

/* Make room for need elements of size bytes in *p (capacity *cap). */
static int grow(void **p, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 16;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	q = realloc(*p, n * size);
	if (!q)
		return -1;
	*p = q;
	*cap = n;
	return 0;
}

void ckpt_capture_free(struct ckpt_capture *c)
{
	if (!c)
		return;
	free(c->vcpu);
	free(c->devices);
	free(c->page_gfn);
	free(c->page_data);
	free(c->block_no);
	free(c->block_data);
	free(c);
}

static void batch_free(struct ckpt_batch *b)
{
	ckpt_capture_free(b->ckpt);
	free(b->events);
	free(b->frames);
	for (size_t i = 0; i < b->nserial; i++)
		free(b->serial[i].data);
	free(b->serial);
	for (size_t i = 0; i < b->nmeta; i++) {
		free(b->meta[i].key);
		free(b->meta[i].value);
	}
	free(b->meta);
	free(b);
}

/* ---- the writer thread: SQL ---- */

/* Set the thread's failure message "path: ..." (copied to err by the loop). */
static int tfail(struct ckpt_db *db, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int tfail(struct ckpt_db *db, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ckpt_vpathf(db->terr, sizeof(db->terr), db->path, fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * Step a bound INSERT and reset it.  rc: SQLITE_OK, or the first failed
 * bind's code (the binds are chained with `rc = rc ?: bind(...)`).  what
 * names the row for the message.
 */
static int insert_row(struct ckpt_db *db, sqlite3_stmt *st, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int insert_row(struct ckpt_db *db, sqlite3_stmt *st, int rc, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(st);
		return 0;
	}
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	tfail(db, "%s: %s", what, sqlite3_errmsg(db->sql));
	sqlite3_reset(st);
	return -1;
}

static int exec(struct ckpt_db *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db->sql, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	tfail(db, "%s: %s", sql, msg ? msg : sqlite3_errmsg(db->sql));
	sqlite3_free(msg);
	return -1;
}

/* Direction and size exist for the exits that access something. */
static bool has_access(uint8_t type)
{
	return type == TRACE_EV_EXIT_IO || type == TRACE_EV_EXIT_MMIO ||
	       type == TRACE_EV_EXIT_MSR;
}

static int write_event(struct ckpt_db *db, const struct ckpt_event_row *e)
{
	sqlite3_stmt *st = db->st.event;
	const char *name = trace_event_type_name(e->type);
	char unknown[8];
	int rc;

	if (!name) {
		/* Keep the row: the index mirrors the trace, whatever is in it. */
		snprintf(unknown, sizeof(unknown), "0x%02x", e->type);
		name = unknown;
	}
	rc = ckpt_bind_u64(st, 1, e->ordinal);
	rc = rc ?: ckpt_bind_u64(st, 2, e->exit);
	rc = rc ?: sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
	rc = rc ?: (e->device ? sqlite3_bind_text(st, 4, e->device, -1, SQLITE_STATIC)
			      : sqlite3_bind_null(st, 4));
	if (has_access(e->type)) {
		rc = rc ?: sqlite3_bind_text(st, 5, e->flags & TRACE_IOF_WRITE ? "out" : "in", -1,
					     SQLITE_STATIC);
		rc = rc ?: sqlite3_bind_int(st, 6, 1 << TRACE_IOF_SIZE_LOG2(e->flags));
	} else {
		rc = rc ?: sqlite3_bind_null(st, 5);
		rc = rc ?: sqlite3_bind_null(st, 6);
	}
	rc = rc ?: ckpt_bind_u64(st, 7, e->addr);
	rc = rc ?: ckpt_bind_u64(st, 8, e->value);
	rc = rc ?: ckpt_bind_u64(st, 9, e->host_ns);
	return insert_row(db, st, rc, "inserting event %" PRIu64, e->ordinal);
}

static int write_frame(struct ckpt_db *db, const struct trace_frame_info *f)
{
	sqlite3_stmt *st = db->st.frame;
	char hex[TRACE_HASH_HEX_SIZE];
	int rc;

	trace_hash_hex(f->prev_hash, hex);
	rc = ckpt_bind_u64(st, 1, f->seq);
	rc = rc ?: ckpt_bind_u64(st, 2, f->offset);
	rc = rc ?: ckpt_bind_u64(st, 3, f->first_event);
	rc = rc ?: ckpt_bind_u64(st, 4, f->exit_base);
	rc = rc ?: sqlite3_bind_int64(st, 5, f->events);
	rc = rc ?: sqlite3_bind_int64(st, 6, f->exits);
	rc = rc ?: sqlite3_bind_int64(st, 7, f->comp_len);
	rc = rc ?: sqlite3_bind_int64(st, 8, f->raw_len);
	rc = rc ?: sqlite3_bind_text(st, 9, hex, -1, SQLITE_TRANSIENT);
	return insert_row(db, st, rc, "inserting frame %" PRIu64, f->seq);
}

static int write_serial(struct ckpt_db *db, const struct ckpt_serial_rec *s)
{
	sqlite3_stmt *st = db->st.serial;
	int rc;

	rc = ckpt_bind_u64(st, 1, s->exit);
	rc = rc ?: ckpt_bind_u64(st, 2, db->next_serial);
	rc = rc ?: sqlite3_bind_blob64(st, 3, s->data, s->len, SQLITE_STATIC);
	if (insert_row(db, st, rc, "inserting serial output of exit %" PRIu64, s->exit))
		return -1;
	db->next_serial++;
	return 0;
}

static int write_meta_rec(struct ckpt_db *db, const struct ckpt_meta_rec *m)
{
	sqlite3_stmt *st = db->st.meta;
	int rc;

	rc = sqlite3_bind_text(st, 1, m->key, -1, SQLITE_STATIC);
	rc = rc ?: sqlite3_bind_text(st, 2, m->value, -1, SQLITE_STATIC);
	return insert_row(db, st, rc, "writing meta %s", m->key);
}

/* ---- the writer thread: checkpoints ---- */

/* How a map differs between RAM pages and disk blocks. */
struct map_kind {
	const char *what;	/* "gfn", "block": for messages */
	struct ckpt_map *map;	/* the current full map */
	sqlite3_stmt *insert;	/* INSERT INTO page_map / block_map */
	/*
	 * RAM: a zero page is absent from a full map.  Disk: every overlay
	 * block is in the map, zero or not, since an absent block reads from
	 * the image and not as zeros.
	 */
	bool zero_absent;
};

/* One page of a capture: sorted by key then position, duplicates dropped. */
struct cap_ent {
	uint64_t key;
	size_t idx;
	struct ckpt_hash h;
};

static int cmp_cap(const void *a, const void *b)
{
	const struct cap_ent *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Store a content in the pages table unless it is there already. */
static int store_page(struct ckpt_db *db, const struct ckpt_hash *h, const uint8_t *data,
		      int64_t id, const char *what, uint64_t key, uint64_t *bytes_new)
{
	sqlite3_stmt *st = db->st.page;
	uint8_t blob[CKPT_HASH_BLOB];
	char why[128];
	size_t len;
	int codec, rc;

	if (ckpt_hset_has(&db->stored, h))
		return 0;
	codec = ckpt_page_encode(db->cctx, data, db->zbuf, &len, why, sizeof(why));
	if (codec < 0)
		return tfail(db, "checkpoint %" PRId64 ", %s 0x%" PRIx64 ": %s", id, what, key, why);
	ckpt_hash_to_blob(h, blob);
	rc = sqlite3_bind_blob(st, 1, blob, sizeof(blob), SQLITE_STATIC);
	rc = rc ?: sqlite3_bind_int(st, 2, codec);
	rc = rc ?: sqlite3_bind_blob(st, 3, codec == CKPT_CODEC_RAW ? data : db->zbuf, (int)len,
				     SQLITE_STATIC);
	if (insert_row(db, st, rc, "checkpoint %" PRId64 ": inserting the page of %s 0x%" PRIx64,
		       id, what, key))
		return -1;
	if (ckpt_hset_add(&db->stored, h))
		return tfail(db, "checkpoint %" PRId64 ": out of memory for the page set", id);
	*bytes_new += len;
	db->pend.pages_new++;
	db->pend.bytes_raw += CKPT_PAGE_SIZE;
	db->pend.bytes_stored += len;
	return 0;
}

static int insert_map_row(struct ckpt_db *db, const struct map_kind *k, int64_t id,
			  uint64_t key, const struct ckpt_hash *h)
{
	uint8_t blob[CKPT_HASH_BLOB];
	int rc;

	ckpt_hash_to_blob(h, blob);
	rc = sqlite3_bind_int64(k->insert, 1, id);
	rc = rc ?: ckpt_bind_u64(k->insert, 2, key);
	rc = rc ?: sqlite3_bind_blob(k->insert, 3, blob, sizeof(blob), SQLITE_STATIC);
	return insert_row(db, k->insert, rc,
			  "checkpoint %" PRId64 ": inserting the map row of %s 0x%" PRIx64, id,
			  k->what, key);
}

/* Write the whole current map as checkpoint id's map, in key order. */
static int write_full_map(struct ckpt_db *db, const struct map_kind *k, int64_t id,
			  uint64_t *rows)
{
	struct ckpt_map_ent *e;
	size_t n;
	int ret = 0;

	if (ckpt_map_sorted(k->map, &e, &n))
		return tfail(db, "checkpoint %" PRId64 ": out of memory sorting %zu %ss", id,
			     k->map->count, k->what);
	for (size_t i = 0; i < n && !ret; i++)
		ret = insert_map_row(db, k, id, e[i].key, &e[i].h);
	free(e);
	*rows = n;
	return ret;
}

/* Hash the capture's pages, sort them by key, keep the last copy of each. */
static struct cap_ent *hash_capture(size_t n, const uint64_t *keys, const uint8_t *data,
				    size_t *m)
{
	struct cap_ent *e = malloc((n ? n : 1) * sizeof(*e));
	size_t k = 0;

	if (!e)
		return NULL;
	for (size_t i = 0; i < n; i++)
		e[i] = (struct cap_ent){ keys[i], i, ckpt_hash_page(data + i * CKPT_PAGE_SIZE) };
	qsort(e, n, sizeof(*e), cmp_cap);
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && e[i + 1].key == e[i].key)
			continue;
		e[k++] = e[i];
	}
	*m = k;
	return e;
}

/*
 * One map of checkpoint id: store the new contents, update the current
 * full map, and write either the whole map (store_full) or the capture's
 * rows.  *rows: map rows written.
 */
static int write_map(struct ckpt_db *db, const struct map_kind *k, int64_t id,
		     bool capture_full, bool store_full, size_t n, const uint64_t *keys,
		     const uint8_t *data, uint64_t *rows, uint64_t *bytes_new)
{
	const struct ckpt_hash *zero = ckpt_zero_hash();
	struct cap_ent *e;
	size_t m;
	int ret = -1;

	e = hash_capture(n, keys, data, &m);
	if (!e)
		return tfail(db, "checkpoint %" PRId64 ": out of memory hashing %zu %ss", id, n,
			     k->what);
	db->pend.pages_in += n;
	if (capture_full)
		ckpt_map_clear(k->map);
	for (size_t i = 0; i < m; i++) {
		const uint8_t *page = data + e[i].idx * CKPT_PAGE_SIZE;
		bool zero_gone = k->zero_absent && ckpt_hash_eq(&e[i].h, zero);

		/* A full map has no row for a zero page: nothing to store. */
		if (!(zero_gone && store_full) &&
		    store_page(db, &e[i].h, page, id, k->what, e[i].key, bytes_new))
			goto out;
		if (zero_gone) {
			ckpt_map_del(k->map, e[i].key);
		} else if (ckpt_map_set(k->map, e[i].key, &e[i].h)) {
			tfail(db, "checkpoint %" PRId64 ": out of memory for the %s map", id, k->what);
			goto out;
		}
	}
	if (store_full) {
		ret = write_full_map(db, k, id, rows);
		goto out;
	}
	for (size_t i = 0; i < m; i++)
		if (insert_map_row(db, k, id, e[i].key, &e[i].h))
			goto out;
	*rows = m;
	ret = 0;
out:
	free(e);
	return ret;
}

static int write_checkpoint(struct ckpt_db *db, const struct ckpt_capture *c)
{
	struct map_kind ram = { "gfn", &db->ram, db->st.page_map, true };
	struct map_kind disk = { "block", &db->disk, db->st.block_map, false };
	int64_t id = db->next_id;
	bool full = c->full || id % CKPT_FULL_EVERY == 0;
	uint64_t pages = 0, blocks = 0, bytes_new = 0;
	sqlite3_stmt *st = db->st.ckpt;
	char regs[17], sum[17], psum[CKPT_HASH_HEX], bsum[CKPT_HASH_HEX];
	int rc;

	if (write_map(db, &ram, id, c->full, full, c->npages, c->page_gfn, c->page_data,
		      &pages, &bytes_new) ||
	    write_map(db, &disk, id, c->full, full, c->nblocks, c->block_no, c->block_data,
		      &blocks, &bytes_new))
		return -1;
	snprintf(regs, sizeof(regs), "%016" PRIx64, c->regs_hash);
	ckpt_blobs_checksum(c->vcpu, c->vcpu_len, c->devices, c->devices_len, sum);
	/* The maps' sums, whatever rows this checkpoint wrote: a reader that
	 * rebuilds the full maps from the rows must get these. */
	ckpt_hash_hex(&db->ram.sum, psum);
	ckpt_hash_hex(&db->disk.sum, bsum);
	rc = sqlite3_bind_int64(st, 1, id);
	rc = rc ?: ckpt_bind_u64(st, 2, c->exit);
	rc = rc ?: ckpt_bind_u64(st, 3, c->event);
	rc = rc ?: ckpt_bind_u64(st, 4, c->progress);
	rc = rc ?: ckpt_bind_u64(st, 5, c->host_ns);
	rc = rc ?: ckpt_bind_u64(st, 6, c->guest_ns);
	rc = rc ?: sqlite3_bind_text(st, 7, regs, -1, SQLITE_TRANSIENT);
	rc = rc ?: ckpt_bind_u64(st, 8, c->pause_ns);
	rc = rc ?: sqlite3_bind_int(st, 9, full);
	rc = rc ?: ckpt_bind_u64(st, 10, pages);
	rc = rc ?: ckpt_bind_u64(st, 11, blocks);
	rc = rc ?: ckpt_bind_u64(st, 12, bytes_new);
	rc = rc ?: sqlite3_bind_blob64(st, 13, c->vcpu ? (const void *)c->vcpu : "", c->vcpu_len,
				       SQLITE_STATIC);
	rc = rc ?: sqlite3_bind_blob64(st, 14, c->devices ? (const void *)c->devices : "",
				       c->devices_len, SQLITE_STATIC);
	rc = rc ?: sqlite3_bind_text(st, 15, sum, -1, SQLITE_TRANSIENT);
	rc = rc ?: sqlite3_bind_text(st, 16, psum, -1, SQLITE_TRANSIENT);
	rc = rc ?: sqlite3_bind_text(st, 17, bsum, -1, SQLITE_TRANSIENT);
	if (insert_row(db, st, rc, "inserting checkpoint %" PRId64 " (exit %" PRIu64 ")", id,
		       c->exit))
		return -1;
	db->next_id++;
	db->pend.checkpoints++;
	return 0;
}

/* One batch, one transaction: its index rows, then its checkpoint. */
static int write_batch(struct ckpt_db *db, const struct ckpt_batch *b)
{
	if (exec(db, "BEGIN"))
		return -1;
	memset(&db->pend, 0, sizeof(db->pend));
	for (size_t i = 0; i < b->nevents; i++)
		if (write_event(db, &b->events[i]))
			goto rollback;
	for (size_t i = 0; i < b->nframes; i++)
		if (write_frame(db, &b->frames[i]))
			goto rollback;
	for (size_t i = 0; i < b->nserial; i++)
		if (write_serial(db, &b->serial[i]))
			goto rollback;
	for (size_t i = 0; i < b->nmeta; i++)
		if (write_meta_rec(db, &b->meta[i]))
			goto rollback;
	if (b->ckpt && write_checkpoint(db, b->ckpt))
		goto rollback;
	if (exec(db, "COMMIT"))
		goto rollback;
	return 0;
rollback:
	/*
	 * The failure is already recorded and sticky; a failed COMMIT may
	 * have rolled back by itself, so ROLLBACK's own result says nothing.
	 */
	sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static bool batch_due(const struct ckpt_db *db, const struct ckpt_batch *b, uint64_t now)
{
	return b->ckpt || db->stop || db->sync_target > db->committed ||
	       b->nevents + b->nframes + b->nserial + b->nmeta >= BATCH_ROWS_MAX ||
	       now >= b->opened_ns + db->flush_ns;
}

/* The next batch to write, waiting for one; NULL when stopping and empty. */
static struct ckpt_batch *take_batch(struct ckpt_db *db)
{
	struct ckpt_batch *b;

	lock(db);
	for (;;) {
		b = db->head;
		if (!b && db->stop)
			break;
		if (b && batch_due(db, b, now_ns())) {
			db->head = b->next;
			if (!db->head)
				db->tail = NULL;
			b->next = NULL;
			break;
		}
		if (b)
			wait_until(db, &db->work, b->opened_ns + db->flush_ns);
		else
			wait_cond(db, &db->work);
	}
	unlock(db);
	return b;
}

static void add_stats(struct ckpt_db_stats *to, const struct ckpt_db_stats *d)
{
	to->checkpoints += d->checkpoints;
	to->pages_in += d->pages_in;
	to->pages_new += d->pages_new;
	to->bytes_raw += d->bytes_raw;
	to->bytes_stored += d->bytes_stored;
}

/* ---- creating ---- */

/* Create the file with O_EXCL: 0, or -1 with errno (EEXIST: it exists). */
static int create_excl(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

/* The message for a create_excl that failed with errno; -1. */
static int create_failed(const char *path, char *err, size_t errlen)
{
	if (errno == EEXIST)
		errf(err, errlen,
		     "%s: file exists; not overwriting a checkpoint database (force to replace it)",
		     path);
	else
		errf(err, errlen, "%s: create: %s", path, strerror(errno));
	return -1;
}

/* Remove path's rollback journal, if there is one. */
static int remove_journal(const char *path, char *err, size_t errlen)
{
	char journal[4096];

	if (snprintf(journal, sizeof(journal), "%s-journal", path) >= (int)sizeof(journal)) {
		errf(err, errlen, "%s: path too long", path);
		return -1;
	}
	if (unlink(journal) && errno != ENOENT) {
		errf(err, errlen, "%s: removing the old journal: %s", journal,
		     strerror(errno));
		return -1;
	}
	return 0;
}

/* Claim the file with O_EXCL; force removes an old one and its journal. */
static int claim_file(const char *path, bool force, char *err, size_t errlen)
{
	if (force) {
		if (unlink(path) && errno != ENOENT) {
			errf(err, errlen, "%s: removing the old database: %s", path,
			     strerror(errno));
			return -1;
		}
		if (remove_journal(path, err, errlen))
			return -1;
	}
	return create_excl(path) ? create_failed(path, err, errlen) : 0;
}

/* Remove a database file we claimed and its journal. */
static void unlink_claimed(const char *path)
{
	char journal[4096];

	unlink(path);
	if (snprintf(journal, sizeof(journal), "%s-journal", path) < (int)sizeof(journal))
		unlink(journal);
}

static int prepare(struct ckpt_db *db, sqlite3_stmt **st, const char *sql, char *err,
		   size_t errlen)
{
	if (sqlite3_prepare_v3(db->sql, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) ==
	    SQLITE_OK)
		return 0;
	errf(err, errlen, "%s: preparing \"%s\": %s", db->path, sql, sqlite3_errmsg(db->sql));
	return -1;
}

static int prepare_all(struct ckpt_db *db, char *err, size_t errlen)
{
	struct ckpt_stmts *s = &db->st;

	return prepare(db, &s->event,
		       "INSERT INTO events(ordinal, exit, type, device, direction, size, addr, "
		       "value, host_ns) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", err, errlen) ||
	       prepare(db, &s->frame,
		       "INSERT INTO frames(seq, offset, first_event, exit_base, events, exits, "
		       "comp_len, raw_len, prev_hash) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
		       err, errlen) ||
	       prepare(db, &s->serial, "INSERT INTO serial(exit, seq, data) VALUES(?1, ?2, ?3)",
		       err, errlen) ||
	       prepare(db, &s->meta, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)",
		       err, errlen) ||
	       prepare(db, &s->ckpt,
		       "INSERT INTO checkpoints(id, exit, event, progress, host_ns, guest_ns, "
		       "regs_hash, pause_ns, full, pages, blocks, bytes_new, vcpu, devices, "
		       "checksum, pages_sum, blocks_sum) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
		       "?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)", err, errlen) ||
	       prepare(db, &s->page, "INSERT INTO pages(hash, codec, data) VALUES(?1, ?2, ?3)",
		       err, errlen) ||
	       prepare(db, &s->page_map,
		       "INSERT INTO page_map(checkpoint, gfn, hash) VALUES(?1, ?2, ?3)", err,
		       errlen) ||
	       prepare(db, &s->block_map,
		       "INSERT INTO block_map(checkpoint, block, hash) VALUES(?1, ?2, ?3)", err,
		       errlen) ? -1 : 0;
}

static void finalize_all(struct ckpt_stmts *s)
{
	sqlite3_finalize(s->event);
	sqlite3_finalize(s->frame);
	sqlite3_finalize(s->serial);
	sqlite3_finalize(s->meta);
	sqlite3_finalize(s->ckpt);
	sqlite3_finalize(s->page);
	sqlite3_finalize(s->page_map);
	sqlite3_finalize(s->block_map);
	memset(s, 0, sizeof(*s));
}

/*
 * Open the claimed file: rollback journal, and a kill -9 costs nothing
 * committed.  synchronous = OFF: a process that dies leaves its writes with
 * the kernel, so kill -9 is as safe as with fsyncs (SQLite's documentation
 * says so); only an OS crash or power loss could then damage the file, and
 * the database is derived data whose pages are checked against their hashes
 * on restore.  The fsyncs cost 3-4 ms per commit on the development hosts,
 * a tenth of a short recording; ckpt_db_finish() fsyncs the file once.
 */
static int open_sql(struct ckpt_db *db, char *err, size_t errlen)
{
	static const char pragmas[] =
		"PRAGMA journal_mode = DELETE;"
		"PRAGMA synchronous = OFF;"
		"PRAGMA cache_size = -" STR(WRITER_CACHE_KIB) ";";
	char *msg = NULL;
	int rc = sqlite3_open_v2(db->path, &db->sql, SQLITE_OPEN_READWRITE, NULL);

	if (rc != SQLITE_OK) {
		errf(err, errlen, "%s: sqlite3_open: %s", db->path,
		     db->sql ? sqlite3_errmsg(db->sql) : sqlite3_errstr(rc));
		return -1;
	}
	rc = sqlite3_busy_timeout(db->sql, WRITER_BUSY_MS);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db->sql, pragmas, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		errf(err, errlen, "%s: setting up the connection: %s", db->path,
		     msg ? msg : sqlite3_errmsg(db->sql));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int setup_sql(struct ckpt_db *db, char *err, size_t errlen)
{
	return open_sql(db, err, errlen) || ckpt_schema_create(db->sql, db->path, &db->meta, err, errlen) ||
	       prepare_all(db, err, errlen) ? -1 : 0;
}

/*
 * Close the connection and fsync the file: the one fsync of the
 * recording's database (see open_sql).  On the writer thread; -1 with
 * db->terr set.
 */
static int close_sql(struct ckpt_db *db)
{
	int rc, fd;

	finalize_all(&db->st);
	rc = sqlite3_close(db->sql);
	if (rc != SQLITE_OK) {
		/* Statements are finalised; a busy handle would be our bug. */
		errf(db->terr, sizeof(db->terr), "%s: closing: %s", db->path, sqlite3_errstr(rc));
		return -1;
	}
	db->sql = NULL;
	if (atomic_load(&db->failed))
		return 0;
	fd = open(db->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0) {
		errf(db->terr, sizeof(db->terr), "%s: %s: %s", db->path,
		     fd < 0 ? "open for fsync" : "fsync", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int init_sync(struct ckpt_db *db, char *err, size_t errlen)
{
	pthread_condattr_t ca;
	int e;

	/* Deadlines are CLOCK_MONOTONIC, like now_ns(). */
	e = pthread_condattr_init(&ca);
	if (!e) {
		e = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		e = e ?: pthread_mutex_init(&db->lock, NULL);
		e = e ?: pthread_cond_init(&db->work, &ca);
		e = e ?: pthread_cond_init(&db->done, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (e) {
		errf(err, errlen, "%s: initialising the writer's locks: %s", db->path,
		     strerror(e));
		return -1;
	}
	return 0;
}

/*
 * The writer thread.  It creates the schema first, so that the recorder's
 * start does not wait for it (about 1.5 ms, 4% of recording a 40 ms
 * guest); what is queued meanwhile waits, and then makes the file's name
 * durable (fsync of its directory: the recorder's end then waits only for
 * the file's own fsync, fsync_dir.h).  At the end it closes the
 * connection and makes the file durable, so that the recorder's finish
 * overlaps that with its own teardown.
 */
static void *writer_main(void *arg)
{
	struct ckpt_db *db = arg;
	struct ckpt_batch *b;
	char err[CKPT_ERR_MAX];
	bool begun;

	/* Prepared: wait for the file and the meta (ckpt_db_begin). */
	lock(db);
	while (!db->begun && !db->stop)
		wait_cond(db, &db->work);
	begun = db->begun;
	unlock(db);
	if (!begun)
		return NULL;
	if (setup_sql(db, err, sizeof(err))) {
		lock(db);
		set_failed(db, err);
		unlock(db);
		/* Ours, and without a schema: leave nothing a reader could take. */
		finalize_all(&db->st);
		if (db->sql)
			sqlite3_close(db->sql);
		db->sql = NULL;
		unlink_claimed(db->path);
	} else if (fsync_parent_dir(db->path)) {
		errf(err, sizeof(err), "%s: fsync of its directory: %s", db->path, strerror(errno));
		lock(db);
		set_failed(db, err);
		unlock(db);
	}
	while ((b = take_batch(db))) {
		/* After a failure, batches are only dropped, never written. */
		int r = atomic_load(&db->failed) ? 1 : write_batch(db, b);

		lock(db);
		if (r < 0)
			set_failed(db, db->terr);
		else if (r == 0)
			add_stats(&db->stats, &db->pend);
		db->committed = b->ticket;
		if (b->ckpt)
			db->inflight--;
		signal_cond(db, &db->done);
		unlock(db);
		batch_free(b);
	}
	if (db->sql && close_sql(db)) {
		lock(db);
		set_failed(db, db->terr);
		unlock(db);
	}
	return NULL;
}

static int start_thread(struct ckpt_db *db, char *err, size_t errlen)
{
	/* The writer takes no signals: the recorder's are its vCPU thread's. */
	int e = quiet_thread_start(&db->thread, writer_main, db);

	if (e) {
		errf(err, errlen, "%s: cannot start the writer thread: %s", db->path,
		     strerror(e));
		return -1;
	}
	db->thread_started = true;
	return 0;
}

/* Free a writer whose thread has ended (or never started), its lock and
 * conditions too (init_sync made them). */
static void db_free(struct ckpt_db *db)
{
	pthread_cond_destroy(&db->done);
	pthread_cond_destroy(&db->work);
	pthread_mutex_destroy(&db->lock);
	while (db->head) {
		struct ckpt_batch *b = db->head;

		db->head = b->next;
		batch_free(b);
	}
	finalize_all(&db->st);
	ckpt_map_free(&db->ram);
	ckpt_map_free(&db->disk);
	ckpt_hset_free(&db->stored);
	ZSTD_freeCCtx(db->cctx);
	free(db->zbuf);
	free(db->path);
	free(db);
}

struct ckpt_db *ckpt_db_prepare(const char *path, bool force, char *err, size_t errlen)
{
	struct ckpt_db *db;

	if (!path) {
		errf(err, errlen, "ckpt_db_prepare: path is NULL");
		return NULL;
	}
	db = ckpt_db_alloc(path, err, errlen);
	if (!db)
		return NULL;
	db->writer = true;
	db->force = force;
	db->flush_ns = FLUSH_NS;
	/* Test knob (test_ckpt_db): rows that wait this long for the timer
	 * show that ckpt_db_commit_soon() did not. */
	const char *t = getenv("DETVM_TEST_CKPT_FLUSH_MS");
	if (t && *t)
		db->flush_ns = strtoull(t, NULL, 10) * 1000000ull;
	if (init_sync(db, err, errlen)) {
		free(db->path);
		free(db);
		return NULL;
	}
	db->cctx = ZSTD_createCCtx();
	db->zbuf = malloc(ckpt_page_bound());
	if (!db->cctx || !db->zbuf) {
		errf(err, errlen, "%s: out of memory for the compressor", path);
		goto fail;
	}
	/*
	 * Claim a new file now; an old one stays as it is until begin, so
	 * that a recorder that fails before then leaves it whole.  With
	 * force, a journal left without its database goes (SQLite would take
	 * it as the new file's).
	 */
	if (!create_excl(path)) {
		db->claimed = true;
		if (force && remove_journal(path, err, errlen))
			goto fail;
	} else if (errno != EEXIST || !force) {
		create_failed(path, err, errlen);
		goto fail;
	}
	/* The schema is created on the writer thread (see writer_main). */
	if (start_thread(db, err, errlen))
		goto fail;
	return db;
fail:
	if (db->claimed)
		unlink_claimed(path);
	db_free(db);
	return NULL;
}

int ckpt_db_begin(struct ckpt_db *db, const struct ckpt_meta *meta, char *err, size_t errlen)
{
	if (!meta || !db || !db->writer || db->begun) {
		errf(err, errlen, "ckpt_db_begin: %s", !meta ? "meta is NULL" : !db || !db->writer ?
		     "not a database being written" : "already begun");
		return -1;
	}
	if (!db->claimed) {
		if (claim_file(db->path, db->force, err, errlen))
			return -1;
		db->claimed = true;
	}
	db->meta = *meta;
	lock(db);
	db->begun = true;
	signal_cond(db, &db->work);
	unlock(db);
	return 0;
}

void ckpt_db_discard(struct ckpt_db *db)
{
	if (!db)
		return;
	if (!db->writer) {
		ckpt_db_close(db);
		return;
	}
	ckpt_db_finish_begin(db);
	if (pthread_join(db->thread, NULL))
		return; /* the thread may still use it: leak it rather than crash */
	/* Begun, the file is a database, cut short perhaps, but a reader's. */
	if (db->claimed && !db->begun)
		unlink_claimed(db->path);
	db_free(db);
}

struct ckpt_db *ckpt_db_create(const char *path, bool force, const struct ckpt_meta *meta,
			       char *err, size_t errlen)
{
	struct ckpt_db *db;

	if (!path || !meta) {
		errf(err, errlen, "ckpt_db_create: %s is NULL", path ? "meta" : "path");
		return NULL;
	}
	db = ckpt_db_prepare(path, force, err, errlen);
	if (db && ckpt_db_begin(db, meta, err, errlen)) {
		ckpt_db_discard(db);
		return NULL;
	}
	return db;
}

/* ---- putting ---- */

/* The open batch to append index rows to (lock held); NULL: out of memory. */
static struct ckpt_batch *open_batch(struct ckpt_db *db)
{
	struct ckpt_batch *b = db->tail;

	if (b && !b->ckpt)
		return b;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->opened_ns = now_ns();
	if (db->tail) {
		db->tail->next = b;
	} else {
		/* The thread may be waiting without a deadline: give it one. */
		db->head = b;
		signal_cond(db, &db->work);
	}
	db->tail = b;
	return b;
}

static int check_keys(const char *what, size_t n, const uint64_t *keys, const uint8_t *data,
		      char *msg, size_t msglen)
{
	if (n && (!keys || !data)) {
		errf(msg, msglen, "%zu %ss without their numbers or data", n, what);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (keys[i] > CKPT_KEY_MAX) {
			errf(msg, msglen, "%s 0x%" PRIx64 " out of range", what, keys[i]);
			return -1;
		}
	return 0;
}

/* What can be checked of a capture without the lock. */
static int check_capture(const struct ckpt_capture *c, char *msg, size_t msglen)
{
	if ((c->vcpu_len && !c->vcpu) || (c->devices_len && !c->devices)) {
		errf(msg, msglen, "a state blob without data");
		return -1;
	}
	return check_keys("gfn", c->npages, c->page_gfn, c->page_data, msg, msglen) ||
	       check_keys("block", c->nblocks, c->block_no, c->block_data, msg, msglen)
		       ? -1 : 0;
}

int ckpt_db_put_checkpoint(struct ckpt_db *db, struct ckpt_capture *c)
{
	struct ckpt_batch *b;
	char msg[256] = "";
	bool waited = false;
	int bad = !c ? -1 : check_capture(c, msg, sizeof(msg));

	lock(db);
	if (atomic_load(&db->failed))
		goto fail;
	if (!c) {
		put_failed(db, "put_checkpoint: NULL capture");
		goto fail;
	}
	if (bad) {
		put_failed(db, "checkpoint %" PRIu64 " (exit %" PRIu64 ") refused: %s", db->nput,
			   c->exit, msg);
		goto fail;
	}
	if (db->nput && c->exit <= db->last_exit) {
		put_failed(db, "checkpoint %" PRIu64 " refused: exit %" PRIu64
			   " is not after the previous checkpoint's exit %" PRIu64,
			   db->nput, c->exit, db->last_exit);
		goto fail;
	}
	while (db->inflight >= CKPT_INFLIGHT && !atomic_load(&db->failed)) {
		if (!waited)
			db->stats.queue_waits++;
		waited = true;
		wait_cond(db, &db->done);
	}
	if (atomic_load(&db->failed))
		goto fail;
	b = open_batch(db);
	if (!b) {
		put_failed(db, "checkpoint %" PRIu64 ": out of memory queueing it", db->nput);
		goto fail;
	}
	b->ckpt = c;
	b->ticket = ++db->ticket;
	db->inflight++;
	db->nput++;
	db->last_exit = c->exit;
	signal_cond(db, &db->work);
	unlock(db);
	return 0;
fail:
	unlock(db);
	ckpt_capture_free(c);
	return -1;
}

/* Queue index rows: a batch's arrays grow under the lock (ticket and wake-up). */
static int queued(struct ckpt_db *db, struct ckpt_batch *b)
{
	b->ticket = ++db->ticket;
	if (b->nevents + b->nframes + b->nserial + b->nmeta >= BATCH_ROWS_MAX)
		signal_cond(db, &db->work);
	unlock(db);
	return 0;
}

int ckpt_db_put_events(struct ckpt_db *db, const struct ckpt_event_row *rows, size_t n)
{
	struct ckpt_batch *b;

	lock(db);
	if (atomic_load(&db->failed))
		goto fail;
	if (!n) {
		unlock(db);
		return 0;
	}
	b = open_batch(db);
	if (!b || grow((void **)&b->events, &b->cevents, b->nevents + n, sizeof(*rows))) {
		put_failed(db, "out of memory queueing %zu events", n);
		goto fail;
	}
	memcpy(b->events + b->nevents, rows, n * sizeof(*rows));
	b->nevents += n;
	return queued(db, b);
fail:
	unlock(db);
	return -1;
}

int ckpt_db_put_frame(struct ckpt_db *db, const struct trace_frame_info *f)
{
	struct ckpt_batch *b;

	lock(db);
	if (atomic_load(&db->failed))
		goto fail;
	b = open_batch(db);
	if (!b || grow((void **)&b->frames, &b->cframes, b->nframes + 1, sizeof(*f))) {
		put_failed(db, "out of memory queueing frame %" PRIu64, f->seq);
		goto fail;
	}
	b->frames[b->nframes++] = *f;
	return queued(db, b);
fail:
	unlock(db);
	return -1;
}

int ckpt_db_put_serial(struct ckpt_db *db, uint64_t exit, const uint8_t *data, size_t len)
{
	struct ckpt_batch *b;
	struct ckpt_serial_rec *s;
	uint8_t *p;

	lock(db);
	if (atomic_load(&db->failed))
		goto fail;
	if (!len) {
		unlock(db);
		return 0;
	}
	b = open_batch(db);
	if (!b)
		goto nomem;
	s = b->nserial ? &b->serial[b->nserial - 1] : NULL;
	if (!s || s->exit != exit) {
		/* A new row; consecutive output of one exit shares a row. */
		if (grow((void **)&b->serial, &b->cserial, b->nserial + 1, sizeof(*s)))
			goto nomem;
		s = &b->serial[b->nserial++];
		*s = (struct ckpt_serial_rec){ .exit = exit };
	}
	p = realloc(s->data, s->len + len);
	if (!p)
		goto nomem;
	memcpy(p + s->len, data, len);
	s->data = p;
	s->len += len;
	return queued(db, b);
nomem:
	put_failed(db, "out of memory queueing %zu bytes of serial output of exit %" PRIu64, len,
		   exit);
fail:
	unlock(db);
	return -1;
}

int ckpt_db_put_meta(struct ckpt_db *db, const char *key, const char *value)
{
	struct ckpt_batch *b;
	struct ckpt_meta_rec r;

	lock(db);
	if (atomic_load(&db->failed))
		goto fail;
	if (!key || !value || !strcmp(key, "schema_version")) {
		put_failed(db, "put_meta: %s", !key ? "NULL key" : !value ? "NULL value"
						     : "schema_version is not for callers to set");
		goto fail;
	}
	b = open_batch(db);
	r.key = strdup(key);
	r.value = strdup(value);
	if (!b || !r.key || !r.value ||
	    grow((void **)&b->meta, &b->cmeta, b->nmeta + 1, sizeof(r))) {
		free(r.key);
		free(r.value);
		put_failed(db, "out of memory queueing meta %s", key);
		goto fail;
	}
	b->meta[b->nmeta++] = r;
	return queued(db, b);
fail:
	unlock(db);
	return -1;
}

/* Make everything queued so far due now; under the lock.  The target. */
static uint64_t commit_soon_locked(struct ckpt_db *db)
{
	uint64_t target = db->ticket;

	if (db->sync_target < target)
		db->sync_target = target;
	signal_cond(db, &db->work);
	return target;
}

void ckpt_db_commit_soon(struct ckpt_db *db)
{
	if (!db || !db->writer)
		return;
	lock(db);
	(void)commit_soon_locked(db);
	unlock(db);
}

int ckpt_db_sync(struct ckpt_db *db)
{
	uint64_t target;

	lock(db);
	target = commit_soon_locked(db);
	while (db->committed < target && !atomic_load(&db->failed))
		wait_cond(db, &db->done);
	unlock(db);
	return atomic_load(&db->failed) ? -1 : 0;
}

const char *ckpt_db_failed(struct ckpt_db *db)
{
	return atomic_load(&db->failed) ? db->err : NULL;
}

void ckpt_db_stats(struct ckpt_db *db, struct ckpt_db_stats *st)
{
	if (!db->writer) {
		memset(st, 0, sizeof(*st));
		return;
	}
	lock(db);
	*st = db->stats;
	unlock(db);
}

void ckpt_db_finish_begin(struct ckpt_db *db)
{
	if (!db || !db->writer)
		return;
	lock(db);
	db->stop = true;
	signal_cond(db, &db->work);
	unlock(db);
}

int ckpt_db_finish_stats(struct ckpt_db *db, struct ckpt_db_stats *st, char *err, size_t errlen)
{
	int e, ret;

	if (st)
		memset(st, 0, sizeof(*st));
	if (!db)
		return 0;
	if (!db->writer) {
		ckpt_db_close(db);
		return 0;
	}
	ckpt_db_finish_begin(db);
	e = pthread_join(db->thread, NULL);
	if (e) {
		/* The thread may still use the handle: leak it rather than crash. */
		errf(err, errlen, "%s: pthread_join of the writer: %s", db->path, strerror(e));
		return -1;
	}
	if (st)
		*st = db->stats;
	ret = atomic_load(&db->failed) ? -1 : 0;
	if (ret)
		errf(err, errlen, "%s", db->err);
	db_free(db);
	return ret;
}

int ckpt_db_finish(struct ckpt_db *db, char *err, size_t errlen)
{
	return ckpt_db_finish_stats(db, NULL, err, errlen);
}
