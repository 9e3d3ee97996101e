/*
 * test_ckpt_db.c - the checkpoint database (checkpoint/): write a database
 * through the queue and its thread, read it back, and damage it.
 *
 * Page contents are numbered (fill(): 0 is the zero page, odd numbers
 * compress, even ones do not), so a model of each checkpoint is an array
 * of content numbers per gfn or block, and every page read back is compared
 * byte for byte with what the model says it must be.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "tests/unit/test_files.h"
#include "tests/unit/test_mix.h"
#include <sqlite3.h>

#include "checkpoint/ckpt_db.h"

#define PAGE CKPT_PAGE_SIZE
#define ABSENT (-1)	/* model: no such block in the overlay */

static int setup(void **state)
{
	(void)state;
	return test_dir_make("test_ckpt_db");
}

static int teardown(void **state)
{
	(void)state;
	return test_dir_remove();
}

/* Content number c: 0 the zero page, odd compressible, even random. */
static void fill(uint8_t *p, int64_t c)
{
	uint64_t x = (uint64_t)c * 0x9e3779b97f4a7c15ull;

	if (c <= 0) {
		memset(p, 0, PAGE);
		return;
	}
	for (size_t i = 0; i < PAGE; i += 8) {
		uint64_t v = (c & 1) ? (uint64_t)c << 16 | i / 1024 : (x = mix(x + i));

		memcpy(p + i, &v, 8);
	}
}

static struct ckpt_meta test_meta(void)
{
	struct ckpt_meta m = { .mem_size = 1 << 20, .disk_size = 1 << 16,
			       .start_unix_ns = 1700000000123456789ull };

	memset(m.trace_id, 'a', 64);
	m.trace_id[64] = 0;
	return m;
}

static struct ckpt_db *create(const char *name, char *p, size_t plen)
{
	struct ckpt_meta m = test_meta();
	struct ckpt_db *db;
	char err[512];

	tpath(p, plen, name);
	db = ckpt_db_create(p, false, &m, err, sizeof(err));
	if (!db)
		fail_msg("%s", err);
	return db;
}

static void finish(struct ckpt_db *db)
{
	char err[512];

	if (ckpt_db_finish(db, err, sizeof(err)))
		fail_msg("%s", err);
}

static struct ckpt_db *open_db(const char *p)
{
	char err[512];
	struct ckpt_db *db = ckpt_db_open(p, err, sizeof(err));

	if (!db)
		fail_msg("%s", err);
	return db;
}

/* ---- captures from models ---- */

struct pg {
	uint64_t key;
	int64_t content;
};

static void fill_list(const struct pg *l, size_t n, uint64_t **keys, uint8_t **data)
{
	*keys = malloc((n ? n : 1) * sizeof(**keys));
	*data = malloc((n ? n : 1) * PAGE);
	assert_non_null(*keys);
	assert_non_null(*data);
	for (size_t i = 0; i < n; i++) {
		(*keys)[i] = l[i].key;
		fill(*data + i * PAGE, l[i].content);
	}
}

/* A capture after exit `exit` with these pages and blocks. */
static struct ckpt_capture *capture(uint64_t exit, bool full, const struct pg *pages,
				    size_t np, const struct pg *blocks, size_t nb)
{
	struct ckpt_capture *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->exit = exit;
	c->event = exit * 3;
	c->progress = exit * 1000;
	c->host_ns = exit * 7;
	c->guest_ns = exit * 11;
	c->regs_hash = mix(exit) | 1ull << 63;
	c->pause_ns = 42;
	c->full = full;
	c->vcpu = malloc(32);
	assert_non_null(c->vcpu);
	c->vcpu_len = (size_t)snprintf((char *)c->vcpu, 32, "vcpu after exit %" PRIu64, exit);
	c->devices_len = exit % 20 ? 100 + exit : 0;
	c->devices = c->devices_len ? malloc(c->devices_len) : NULL;
	for (size_t i = 0; i < c->devices_len; i++)
		c->devices[i] = (uint8_t)(i ^ exit);
	c->npages = np;
	fill_list(pages, np, &c->page_gfn, &c->page_data);
	c->nblocks = nb;
	fill_list(blocks, nb, &c->block_no, &c->block_data);
	return c;
}

/* Apply a list to a model (later entries win, like the database). */
static void apply(int64_t *model, const struct pg *l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		model[l[i].key] = l[i].content;
}

/* ---- checking a checkpoint against its model ---- */

struct expect {
	const int64_t *model;
	size_t n;
	bool ram;		/* zero pages absent; else ABSENT marks absence */
	size_t seen;
	int64_t last;
};

static int check_cb(void *ctx, uint64_t key, const uint8_t *data)
{
	struct expect *e = ctx;
	uint8_t want[PAGE];

	assert_true(key < e->n);
	assert_true((int64_t)key > e->last);	/* key order */
	e->last = (int64_t)key;
	if (e->ram)
		assert_true(e->model[key] > 0);
	else
		assert_true(e->model[key] != ABSENT);
	fill(want, e->model[key]);
	assert_memory_equal(data, want, PAGE);
	e->seen++;
	return 0;
}

static size_t expected(const int64_t *model, size_t n, bool ram)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += ram ? model[i] > 0 : model[i] != ABSENT;
	return k;
}

static void check_ckpt(struct ckpt_db *db, int64_t id, const int64_t *ram, size_t nram,
		       const int64_t *disk, size_t ndisk)
{
	struct expect r = { ram, nram, true, 0, -1 }, d = { disk, ndisk, false, 0, -1 };
	char err[512];

	if (ckpt_db_pages(db, id, check_cb, &r, err, sizeof(err)))
		fail_msg("checkpoint %" PRId64 ": %s", id, err);
	assert_int_equal(r.seen, expected(ram, nram, true));
	if (!disk)
		return;
	if (ckpt_db_blocks(db, id, check_cb, &d, err, sizeof(err)))
		fail_msg("checkpoint %" PRId64 ": %s", id, err);
	assert_int_equal(d.seen, expected(disk, ndisk, false));
}

static int64_t query_int(const char *p, const char *sql)
{
	sqlite3 *s;
	sqlite3_stmt *st;
	int64_t v;

	assert_int_equal(sqlite3_open_v2(p, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	/* A live writer locks the file while it commits. */
	assert_int_equal(sqlite3_busy_timeout(s, 10000), SQLITE_OK);
	if (sqlite3_prepare_v2(s, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(s));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(s);
	return v;
}

static void exec_rw(const char *p, const char *sql)
{
	sqlite3 *s;
	char *msg = NULL;

	assert_int_equal(sqlite3_open_v2(p, &s, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	if (sqlite3_exec(s, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(s);
}

/* ---- the round trip ---- */

#define NGFN 64
#define NBLK 8

static const struct ckpt_event_row test_events[] = {
	{ 0, 1, 100, 0x3f8, 'H', TRACE_EV_EXIT_IO, TRACE_IOF_WRITE | TRACE_IOF_SIZE(0), "uart" },
	{ 1, 1, 101, 0, 5000, TRACE_EV_CLOCK, 0, "pit" },
	{ 2, 2, 102, 0xfee00300, 0, TRACE_EV_EXIT_MMIO, TRACE_IOF_SIZE(2), "lapic" },
	{ 3, 3, 103, 0xc0000080, 0x8000000000000d01ull, TRACE_EV_EXIT_MSR,
	  TRACE_IOF_WRITE | TRACE_IOF_SIZE(3), NULL },
	{ 4, 3, 104, 32, 0, TRACE_EV_IRQ, 0, "pic" },
	{ 5, 4, 105, 0x70, 0, TRACE_EV_EXIT_IO, TRACE_IOF_SIZE(1), "rtc" },
	{ 6, 5, 106, 0, 0, TRACE_EV_EXIT_HLT, 0, NULL },
};

static void put_index(struct ckpt_db *db)
{
	struct trace_frame_info f[3] = {
		{ .offset = 100, .seq = 0, .first_event = 0, .exit_base = 0, .events = 3,
		  .exits = 2, .comp_len = 50, .raw_len = 80 },
		{ .offset = 250, .seq = 1, .first_event = 3, .exit_base = 2, .events = 3,
		  .exits = 2, .comp_len = 60, .raw_len = 90 },
		{ .offset = 400, .seq = 2, .first_event = 6, .exit_base = 4, .events = 1,
		  .exits = 1, .comp_len = 20, .raw_len = 30 },
	};

	for (int i = 0; i < 3; i++) {
		for (int j = 0; j < TRACE_HASH_SIZE; j++)
			f[i].prev_hash[j] = (uint8_t)(i * 32 + j);
		assert_int_equal(ckpt_db_put_frame(db, &f[i]), 0);
	}
	assert_int_equal(ckpt_db_put_events(db, test_events, 4), 0);
	assert_int_equal(ckpt_db_put_events(db, test_events + 4, 3), 0);
	assert_int_equal(ckpt_db_put_serial(db, 5, (const uint8_t *)"Hel", 3), 0);
	assert_int_equal(ckpt_db_put_serial(db, 5, (const uint8_t *)"lo", 2), 0);
	assert_int_equal(ckpt_db_put_serial(db, 7, (const uint8_t *)"!\n", 2), 0);
	assert_int_equal(ckpt_db_put_meta(db, "end_exits", "1234"), 0);
}

/*
 * Four checkpoints at exits 10, 20, 30, 40: a full one, then incremental
 * ones that change pages to new and to already stored contents, make a
 * page zero and then non-zero again, give a gfn twice, and put a zero
 * block (which must read back: an overlay block of zeros is not absent).
 */
static void test_roundtrip(void **state)
{
	static const struct pg b0[] = { { 0, 100 }, { 1, 101 }, { 2, 100 }, { 3, 101 } };
	static const struct pg p1[] = { { 1, 7 }, { 2, 0 }, { 3, 1 }, { 40, 8 }, { 40, 9 } };
	static const struct pg b1[] = { { 1, 100 }, { 5, 102 } };
	static const struct pg p2[] = { { 2, 10 }, { 50, 0 } };
	static const struct pg b2[] = { { 6, 0 } };
	int64_t ram[4][NGFN], disk[4][NBLK];
	struct pg p0[NGFN];
	struct ckpt_db_stats stats;
	struct ckpt_info info;
	struct ckpt_frame_row fr;
	struct ckpt_db *db;
	uint8_t *v, *d;
	size_t vl, dl;
	char p[128], err[512], buf[64];

	(void)state;
	/* Checkpoint 0: every gfn, contents 1..5 repeated, every 8th zero. */
	for (int g = 0; g < NGFN; g++)
		p0[g] = (struct pg){ (uint64_t)g, g % 8 ? 1 + g % 5 : 0 };
	for (int b = 0; b < NBLK; b++)
		disk[0][b] = ABSENT;
	memset(ram[0], 0, sizeof(ram[0]));
	apply(ram[0], p0, NGFN);
	apply(disk[0], b0, 4);
	memcpy(ram[1], ram[0], sizeof(ram[0]));
	memcpy(disk[1], disk[0], sizeof(disk[0]));
	apply(ram[1], p1, 5);
	apply(disk[1], b1, 2);
	memcpy(ram[2], ram[1], sizeof(ram[0]));
	memcpy(disk[2], disk[1], sizeof(disk[0]));
	apply(ram[2], p2, 2);
	apply(disk[2], b2, 1);
	memcpy(ram[3], ram[2], sizeof(ram[0]));
	memcpy(disk[3], disk[2], sizeof(disk[0]));

	db = create("rt.db", p, sizeof(p));
	put_index(db);
	assert_int_equal(ckpt_db_put_checkpoint(db, capture(10, true, p0, NGFN, b0, 4)), 0);
	assert_int_equal(ckpt_db_put_checkpoint(db, capture(20, false, p1, 5, b1, 2)), 0);
	assert_int_equal(ckpt_db_put_checkpoint(db, capture(30, false, p2, 2, b2, 1)), 0);
	assert_int_equal(ckpt_db_put_checkpoint(db, capture(40, false, NULL, 0, NULL, 0)), 0);
	assert_int_equal(ckpt_db_sync(db), 0);
	ckpt_db_stats(db, &stats);
	assert_null(ckpt_db_failed(db));
	finish(db);

	/*
	 * Distinct contents stored: 1..5, 100, 101 (checkpoint 0; its zero
	 * pages are absent, not stored), 7, the zero page (gfn 2 became
	 * zero), 9, 102 (checkpoint 1; 8 was overwritten in the same
	 * capture, 1 and 100 were there), 10 (checkpoint 2) = 12.
	 */
	assert_int_equal(query_int(p, "SELECT count(*) FROM pages"), 12);
	assert_int_equal(query_int(p, "SELECT count(DISTINCT codec) FROM pages"), 2);
	assert_int_equal(stats.checkpoints, 4);
	assert_int_equal(stats.pages_in, NGFN + 4 + 5 + 2 + 2 + 1);
	assert_int_equal(stats.pages_new, 12);
	assert_int_equal(stats.bytes_raw, 12 * PAGE);
	assert_int_equal(stats.bytes_stored,
			 query_int(p, "SELECT sum(length(data)) FROM pages"));
	assert_int_equal(query_int(p, "SELECT sum(bytes_new) FROM checkpoints"),
			 stats.bytes_stored);
	assert_int_equal(query_int(p, "SELECT count(*) FROM page_map WHERE checkpoint = 1"), 4);

	db = open_db(p);
	assert_int_equal(ckpt_db_count(db, err, sizeof(err)), 4);
	for (int i = 0; i < 4; i++)
		check_ckpt(db, i, ram[i], NGFN, disk[i], NBLK);

	/* Rows. */
	assert_int_equal(ckpt_db_get(db, 0, &info, err, sizeof(err)), 0);
	assert_true(info.full && info.exit == 10 && info.event == 30 && info.progress == 10000);
	assert_true(info.host_ns == 70 && info.guest_ns == 110 && info.pause_ns == 42);
	assert_true(info.regs_hash == (mix(10) | 1ull << 63));
	assert_int_equal(info.pages, NGFN - NGFN / 8);
	assert_int_equal(info.blocks, 4);
	assert_int_equal(ckpt_db_get(db, 1, &info, err, sizeof(err)), 0);
	assert_true(!info.full && info.pages == 4 && info.blocks == 2 && info.bytes_new > 0);
	assert_int_equal(ckpt_db_get(db, 3, &info, err, sizeof(err)), 0);
	assert_true(!info.full && info.pages == 0 && info.blocks == 0 && info.bytes_new == 0);
	assert_int_equal(ckpt_db_get(db, 4, &info, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no checkpoint 4"));

	/* find(): the last checkpoint at or before an exit. */
	assert_int_equal(ckpt_db_find(db, 9, &info, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "exit 9"));
	assert_int_equal(ckpt_db_find(db, 10, &info, err, sizeof(err)), 0);
	assert_int_equal(info.id, 0);
	assert_int_equal(ckpt_db_find(db, 19, &info, err, sizeof(err)), 0);
	assert_int_equal(info.id, 0);
	assert_int_equal(ckpt_db_find(db, 20, &info, err, sizeof(err)), 0);
	assert_int_equal(info.id, 1);
	assert_int_equal(ckpt_db_find(db, UINT64_MAX, &info, err, sizeof(err)), 0);
	assert_int_equal(info.id, 3);

	/* Blobs, checked against their checksum. */
	assert_int_equal(ckpt_db_blobs(db, 1, &v, &vl, &d, &dl, err, sizeof(err)), 0);
	assert_int_equal(vl, strlen("vcpu after exit 20"));
	assert_memory_equal(v, "vcpu after exit 20", vl);
	assert_int_equal(dl, 0);	/* 20 % 20 == 0: no device blob */
	free(v);
	free(d);
	assert_int_equal(ckpt_db_blobs(db, 2, &v, &vl, &d, &dl, err, sizeof(err)), 0);
	assert_int_equal(dl, 130);
	for (size_t i = 0; i < dl; i++)
		assert_int_equal(d[i], (uint8_t)(i ^ 30));
	free(v);
	free(d);

	/* Frames. */
	assert_int_equal(ckpt_db_frame_for_event(db, 0, &fr, err, sizeof(err)), 0);
	assert_int_equal(fr.seq, 0);
	assert_int_equal(ckpt_db_frame_for_event(db, 2, &fr, err, sizeof(err)), 0);
	assert_int_equal(fr.seq, 0);
	assert_int_equal(ckpt_db_frame_for_event(db, 3, &fr, err, sizeof(err)), 0);
	assert_true(fr.seq == 1 && fr.offset == 250 && fr.first_event == 3 && fr.exit_base == 2);
	assert_true(fr.events == 3 && fr.exits == 2);
	for (int j = 0; j < TRACE_HASH_SIZE; j++)
		assert_int_equal(fr.prev_hash[j], 32 + j);
	assert_int_equal(ckpt_db_frame_for_event(db, UINT64_MAX, &fr, err, sizeof(err)), 0);
	assert_int_equal(fr.seq, 2);

	/* Meta. */
	assert_int_equal(ckpt_db_meta(db)->mem_size, 1 << 20);
	assert_int_equal(ckpt_db_meta(db)->disk_size, 1 << 16);
	assert_true(ckpt_db_meta(db)->start_unix_ns == 1700000000123456789ull);
	assert_string_equal(ckpt_db_meta(db)->trace_id, test_meta().trace_id);
	assert_int_equal(ckpt_db_get_meta(db, "end_exits", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1234");
	assert_int_equal(ckpt_db_get_meta(db, "page_size", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "4096");
	assert_int_equal(ckpt_db_get_meta(db, "nope", buf, sizeof(buf)), -1);
	assert_non_null(ckpt_db_handle(db));
	ckpt_db_close(db);

	/* The index rows as SQL sees them. */
	assert_int_equal(query_int(p, "SELECT count(*) FROM events"), 7);
	assert_int_equal(query_int(p, "SELECT count(*) FROM events WHERE type = 'EXIT_IO' "
				      "AND direction = 'out' AND size = 1 AND device = 'uart' "
				      "AND addr = 1016 AND value = 72 AND exit = 1"), 1);
	assert_int_equal(query_int(p, "SELECT count(*) FROM events WHERE type = 'EXIT_MMIO' "
				      "AND direction = 'in' AND size = 4"), 1);
	assert_int_equal(query_int(p, "SELECT count(*) FROM events WHERE type = 'EXIT_MSR' "
				      "AND direction = 'out' AND size = 8 AND device IS NULL "
				      "AND printf('%x', value) = '8000000000000d01'"), 1);
	assert_int_equal(query_int(p, "SELECT count(*) FROM events WHERE direction IS NULL "
				      "AND size IS NULL"), 3);
	assert_int_equal(query_int(p, "SELECT frame_seq FROM event_frames WHERE ordinal = 5"), 1);
	assert_int_equal(query_int(p, "SELECT frame_seq FROM event_frames WHERE ordinal = 6"), 2);
	assert_int_equal(query_int(p, "SELECT count(*) FROM serial"), 2);
	assert_int_equal(query_int(p, "SELECT count(*) FROM serial WHERE seq = 0 AND exit = 5 "
				      "AND CAST(data AS TEXT) = 'Hello'"), 1);
	assert_int_equal(query_int(p, "SELECT count(*) FROM serial WHERE seq = 1 AND exit = 7"), 1);
	assert_int_equal(query_int(p, "SELECT count(*) FROM frames WHERE prev_hash = "
				      "'000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'"),
			 1);
	/* The documented query: gfn 2 at checkpoint 1 is the zero page's row. */
	assert_int_equal(query_int(p, "SELECT checkpoint FROM page_map WHERE gfn = 2 AND "
				      "checkpoint <= 1 AND checkpoint >= (SELECT max(id) FROM "
				      "checkpoints WHERE full = 1 AND id <= 1) "
				      "ORDER BY checkpoint DESC LIMIT 1"), 1);
}

/* ---- the full map every CKPT_FULL_EVERY checkpoints ---- */

#define NSMALL 24

static void small_step(int k, struct pg *l, size_t *n)
{
	/* Two or three pages per checkpoint, sometimes back to zero. */
	*n = 0;
	l[(*n)++] = (struct pg){ (uint64_t)(k % NSMALL), k % 7 == 3 ? 0 : 1 + k % 9 };
	l[(*n)++] = (struct pg){ (uint64_t)((k * 5 + 1) % NSMALL), (k * 3) % 11 };
	if (k % 4 == 0)
		l[(*n)++] = (struct pg){ (uint64_t)((k * 7 + 3) % NSMALL), 20 + k % 3 };
}

static void test_full_every(void **state)
{
	enum { N = CKPT_FULL_EVERY + 8 };
	int64_t ram[N][NSMALL], disk[N][4];
	struct ckpt_info info;
	struct ckpt_db *db;
	char p[128], err[512], q[256];

	(void)state;
	db = create("full.db", p, sizeof(p));
	for (int k = 0; k < N; k++) {
		struct pg l[3], b = { (uint64_t)(k % 4), k % 5 == 0 ? 0 : 30 + k % 2 };
		size_t n;

		small_step(k, l, &n);
		if (k)
			memcpy(ram[k], ram[k - 1], sizeof(ram[k])),
				memcpy(disk[k], disk[k - 1], sizeof(disk[k]));
		else
			memset(ram[k], 0, sizeof(ram[k])),
				memset(disk[k], 0xff, sizeof(disk[k]));	/* ABSENT */
		apply(ram[k], l, n);
		apply(disk[k], &b, 1);
		/* Every capture is incremental, the first one too. */
		assert_int_equal(ckpt_db_put_checkpoint(db, capture(100 + (uint64_t)k, false, l, n,
								    &b, 1)), 0);
	}
	finish(db);

	db = open_db(p);
	for (int k = 0; k < N; k++)
		check_ckpt(db, k, ram[k], NSMALL, disk[k], 4);
	for (int k = 0; k < N; k++) {
		assert_int_equal(ckpt_db_get(db, k, &info, err, sizeof(err)), 0);
		assert_int_equal(info.full, k % CKPT_FULL_EVERY == 0);
	}
	assert_int_equal(ckpt_db_get(db, CKPT_FULL_EVERY, &info, err, sizeof(err)), 0);
	assert_int_equal(info.pages, expected(ram[CKPT_FULL_EVERY], NSMALL, true));
	assert_int_equal(info.blocks, expected(disk[CKPT_FULL_EVERY], 4, false));
	ckpt_db_close(db);
	snprintf(q, sizeof(q), "SELECT count(*) FROM page_map WHERE checkpoint = %d",
		 CKPT_FULL_EVERY);
	assert_int_equal(query_int(p, q), expected(ram[CKPT_FULL_EVERY], NSMALL, true));

	/* Proof that the checkpoints after it need nothing before it. */
	snprintf(q, sizeof(q),
		 "DELETE FROM page_map WHERE checkpoint < %d; DELETE FROM block_map WHERE checkpoint < %d",
		 CKPT_FULL_EVERY, CKPT_FULL_EVERY);
	exec_rw(p, q);
	db = open_db(p);
	for (int k = CKPT_FULL_EVERY; k < N; k++)
		check_ckpt(db, k, ram[k], NSMALL, disk[k], 4);
	ckpt_db_close(db);
}

/* ---- refusing to overwrite ---- */

static void test_overwrite(void **state)
{
	struct ckpt_meta m = test_meta();
	struct ckpt_db *db;
	char p[128], j[160], err[512];
	FILE *f;

	(void)state;
	db = create("ow.db", p, sizeof(p));
	assert_int_equal(ckpt_db_put_checkpoint(db, capture(1, true, NULL, 0, NULL, 0)), 0);
	finish(db);

	assert_null(ckpt_db_create(p, false, &m, err, sizeof(err)));
	assert_non_null(strstr(err, p));
	assert_non_null(strstr(err, "exists"));
	assert_int_equal(query_int(p, "SELECT count(*) FROM checkpoints"), 1);

	/* force: the old file and a stale journal go. */
	snprintf(j, sizeof(j), "%s-journal", p);
	f = fopen(j, "w");
	assert_non_null(f);
	fputs("stale", f);
	fclose(f);
	db = ckpt_db_create(p, true, &m, err, sizeof(err));
	if (!db)
		fail_msg("%s", err);
	/* Gone, or already the new database's own journal: the background
	 * setup may be in a transaction (seen under ThreadSanitizer). */
	f = fopen(j, "r");
	if (f) {
		char head[8] = "";
		size_t n = fread(head, 1, 5, f);
		fclose(f);
		assert_false(n == 5 && memcmp(head, "stale", 5) == 0);
	}
	finish(db);
	assert_int_equal(query_int(p, "SELECT count(*) FROM checkpoints"), 0);
}

/*
 * ckpt_db_prepare, then begin or discard (the recorder prepares while the
 * VM is created): an old database stays whole until begin, a new file is
 * removed by discard, and only one begin is taken.
 */
static void test_prepare_begin(void **state)
{
	struct ckpt_meta m = test_meta();
	struct ckpt_db *db;
	struct stat sb;
	char p[128], err[512];

	(void)state;
	tpath(p, sizeof(p), "prep.db");
	unlink(p);
	/* New: claimed by prepare, removed by discard. */
	db = ckpt_db_prepare(p, false, err, sizeof(err));
	if (!db)
		fail_msg("%s", err);
	assert_int_equal(stat(p, &sb), 0);
	ckpt_db_discard(db);
	assert_int_equal(stat(p, &sb), -1);
	assert_int_equal(errno, ENOENT);

	/* Begun: as ckpt_db_create; a second begin is refused. */
	db = ckpt_db_prepare(p, false, err, sizeof(err));
	if (!db)
		fail_msg("%s", err);
	assert_int_equal(ckpt_db_begin(db, &m, err, sizeof(err)), 0);
	assert_int_equal(ckpt_db_begin(db, &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "already begun"));
	assert_int_equal(ckpt_db_put_checkpoint(db, capture(1, true, NULL, 0, NULL, 0)), 0);
	finish(db);
	assert_int_equal(query_int(p, "SELECT count(*) FROM checkpoints"), 1);

	/* Existing, without force: refused by prepare. */
	assert_null(ckpt_db_prepare(p, false, err, sizeof(err)));
	assert_non_null(strstr(err, p));
	assert_non_null(strstr(err, "exists"));

	/* With force: whole until begin, and after a discard. */
	db = ckpt_db_prepare(p, true, err, sizeof(err));
	if (!db)
		fail_msg("%s", err);
	assert_int_equal(query_int(p, "SELECT count(*) FROM checkpoints"), 1);
	ckpt_db_discard(db);
	assert_int_equal(query_int(p, "SELECT count(*) FROM checkpoints"), 1);

	/* Begun with force: replaced. */
	db = ckpt_db_prepare(p, true, err, sizeof(err));
	if (!db)
		fail_msg("%s", err);
	assert_int_equal(query_int(p, "SELECT count(*) FROM checkpoints"), 1);
	assert_int_equal(ckpt_db_begin(db, &m, err, sizeof(err)), 0);
	finish(db);
	assert_int_equal(query_int(p, "SELECT count(*) FROM checkpoints"), 0);

	/* With force, a journal left without its database goes at prepare. */
	char j[160];
	FILE *f;
	snprintf(j, sizeof(j), "%s-journal", p);
	unlink(p);
	f = fopen(j, "w");
	assert_non_null(f);
	fputs("stale", f);
	fclose(f);
	db = ckpt_db_prepare(p, true, err, sizeof(err));
	if (!db)
		fail_msg("%s", err);
	assert_int_equal(stat(j, &sb), -1);
	ckpt_db_discard(db);
	assert_int_equal(stat(p, &sb), -1);
}

/* ---- files that are not checkpoint databases ---- */

static void expect_open_error(const char *p, const char *what)
{
	char err[512];

	assert_null(ckpt_db_open(p, err, sizeof(err)));
	if (!strstr(err, p) || !strstr(err, what))
		fail_msg("error \"%s\" does not name %s and say \"%s\"", err, p, what);
}

/* A good database `name`, changed by `sql`, is refused with `what`. */
static void expect_altered_error(const char *name, const char *sql, const char *what)
{
	char p[128];

	finish(create(name, p, sizeof(p)));
	exec_rw(p, sql);
	expect_open_error(p, what);
}

static void test_open_errors(void **state)
{
	struct ckpt_db *db;
	char p[128];
	FILE *f;

	(void)state;
	tpath(p, sizeof(p), "missing.db");
	expect_open_error(p, "No such file");
	expect_open_error(test_dir, "not a regular file");

	tpath(p, sizeof(p), "empty.db");
	f = fopen(p, "w");
	assert_non_null(f);
	fclose(f);
	expect_open_error(p, "empty: the recorder stopped before");

	tpath(p, sizeof(p), "text.db");
	f = fopen(p, "w");
	assert_non_null(f);
	for (int i = 0; i < 100; i++)
		fputs("this is not an SQLite database at all\n", f);
	fclose(f);
	expect_open_error(p, "not a checkpoint database");

	/* Version 1 had no map sums; a later one may have other tables. */
	expect_altered_error("v1.db", "UPDATE meta SET value = '1' WHERE key = 'schema_version'",
			     "schema version 1, this detvm reads version 2 (without it, replays start");
	expect_altered_error("v3.db", "UPDATE meta SET value = '3' WHERE key = 'schema_version'",
			     "schema version 3");
	expect_altered_error("notable.db", "DROP TABLE serial", "table serial missing");
	expect_altered_error("nocol.db", "ALTER TABLE pages DROP COLUMN codec", "codec");
	expect_altered_error("nometa.db", "DELETE FROM meta WHERE key = 'mem_size'", "mem_size");

	/* A writer's handle is not for reading. */
	db = create("w.db", p, sizeof(p));
	{
		char err[256];

		assert_int_equal(ckpt_db_count(db, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "writing"));
	}
	finish(db);
}

/* ---- damage ---- */

static void test_damage(void **state)
{
	static const struct pg p0[] = { { 3, 2 }, { 4, 3 }, { 5, 2 } };
	static const struct pg b0[] = { { 9, 4 } };
	struct ckpt_db *db;
	struct expect e = { 0 };
	int64_t model[16] = { 0 };
	uint8_t *v, *d;
	size_t vl, dl;
	char p[128], err[512];
	sqlite3 *s;
	sqlite3_stmt *st;
	uint8_t page[PAGE];

	(void)state;
	db = create("damage.db", p, sizeof(p));
	assert_int_equal(ckpt_db_put_checkpoint(db, capture(1, true, p0, 3, b0, 1)), 0);
	finish(db);

	/* Replace the content of gfn 4 (3, compressed) by another, raw. */
	fill(page, 6);
	assert_int_equal(sqlite3_open_v2(p, &s, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(s, "UPDATE pages SET codec = 0, data = ?1 WHERE hash = "
					       "(SELECT hash FROM page_map WHERE gfn = 4)", -1, &st,
					    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_bind_blob(st, 1, page, PAGE, SQLITE_STATIC), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(s), 1);
	sqlite3_finalize(st);
	sqlite3_close(s);

	db = open_db(p);
	model[3] = model[5] = 2;
	model[4] = 3;
	e = (struct expect){ model, 16, true, 0, -1 };
	assert_int_equal(ckpt_db_pages(db, 0, check_cb, &e, err, sizeof(err)), -1);
	assert_int_equal(e.seen, 1);	/* gfn 3 came before the damage */
	assert_non_null(strstr(err, "page for gfn 0x4 in checkpoint 0 is damaged (hash "));
	assert_non_null(strstr(err, "does not match)"));
	assert_non_null(strstr(err, p));
	ckpt_db_close(db);

	/* Compressed data that does not decompress. */
	exec_rw(p, "UPDATE pages SET codec = 1, data = x'28b52ffd0000' WHERE hash = "
		   "(SELECT hash FROM page_map WHERE gfn = 4)");
	db = open_db(p);
	assert_int_equal(ckpt_db_pages(db, 0, check_cb, &(struct expect){ model, 16, true, 0, -1 },
				       err, sizeof(err)), -1);
	assert_non_null(strstr(err, "gfn 0x4 in checkpoint 0 is damaged"));
	ckpt_db_close(db);

	/* A missing content. */
	exec_rw(p, "DELETE FROM pages WHERE hash = (SELECT hash FROM page_map WHERE gfn = 4)");
	db = open_db(p);
	assert_int_equal(ckpt_db_pages(db, 0, check_cb, &(struct expect){ model, 16, true, 0, -1 },
				       err, sizeof(err)), -1);
	assert_non_null(strstr(err, "page for gfn 0x4 in checkpoint 0 is missing"));
	ckpt_db_close(db);

	/* A block, and the state blobs. */
	exec_rw(p, "UPDATE pages SET data = zeroblob(4096), codec = 0 WHERE hash = "
		   "(SELECT hash FROM block_map WHERE block = 9)");
	exec_rw(p, "UPDATE checkpoints SET vcpu = x'00'");
	db = open_db(p);
	model[9] = 4;
	assert_int_equal(ckpt_db_blocks(db, 0, check_cb,
					&(struct expect){ model, 16, false, 0, -1 }, err,
					sizeof(err)), -1);
	assert_non_null(strstr(err, "disk block 0x9 in checkpoint 0 is damaged"));
	assert_int_equal(ckpt_db_blobs(db, 0, &v, &vl, &d, &dl, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "checkpoint 0 is damaged"));
	ckpt_db_close(db);

	/* No full checkpoint at or before the one asked for. */
	exec_rw(p, "UPDATE checkpoints SET full = 0");
	db = open_db(p);
	assert_int_equal(ckpt_db_pages(db, 0, check_cb, &e, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no full checkpoint"));
	ckpt_db_close(db);
}

/*
 * Damage to the maps themselves: every page content still matches its
 * hash, so only the map sums can tell.  Before them, each of these restored
 * a wrong machine without a word: a lost row gave an older content (or a
 * zero page), a changed gfn moved a page.
 *
 * map_db: a database at p with a full checkpoint and an incremental one
 * after it, then `sql` (if not NULL) run on the file.
 */
static void map_db(const char *name, const char *sql, char *p, size_t plen)
{
	static const struct pg p0[] = { { 3, 2 }, { 4, 3 }, { 5, 2 } };
	static const struct pg p1[] = { { 4, 6 }, { 5, 0 }, { 8, 7 } };
	static const struct pg b0[] = { { 9, 4 }, { 10, 5 } };
	struct ckpt_db *db = create(name, p, plen);

	assert_int_equal(ckpt_db_put_checkpoint(db, capture(1, true, p0, 3, b0, 2)), 0);
	assert_int_equal(ckpt_db_put_checkpoint(db, capture(2, false, p1, 3, NULL, 0)), 0);
	finish(db);
	if (sql)
		exec_rw(p, sql);
}

/* ckpt_db_pages (ram) or ckpt_db_blocks of checkpoint id fails before
 * handing out any content, and err says `what`. */
static void expect_map_damage(const char *p, int64_t id, bool ram, const char *what)
{
	static int64_t any[16];
	struct expect e = { any, 16, ram, 0, -1 };
	struct ckpt_db *db = open_db(p);
	char err[512];
	int r = ram ? ckpt_db_pages(db, id, check_cb, &e, err, sizeof(err))
		    : ckpt_db_blocks(db, id, check_cb, &e, err, sizeof(err));

	assert_int_equal(r, -1);
	assert_int_equal(e.seen, 0);
	if (!strstr(err, p) || !strstr(err, what))
		fail_msg("error \"%s\" does not name %s and say \"%s\"", err, p, what);
	ckpt_db_close(db);
}

static void test_map_damage(void **state)
{
	int64_t ram0[16] = { 0 }, ram1[16] = { 0 }, disk[16];
	char p[128], what[200];
	struct ckpt_db *db;

	(void)state;
	for (int i = 0; i < 16; i++)
		disk[i] = ABSENT;
	disk[9] = 4;
	disk[10] = 5;
	ram0[3] = ram0[5] = 2;
	ram0[4] = 3;
	ram1[3] = 2;
	ram1[4] = 6;
	ram1[8] = 7;	/* gfn 5 became zero */

	/* Undamaged: both checkpoints, through their sums. */
	map_db("maps.db", NULL, p, sizeof(p));
	db = open_db(p);
	check_ckpt(db, 0, ram0, 16, disk, 16);
	check_ckpt(db, 1, ram1, 16, disk, 16);
	ckpt_db_close(db);

	/* A lost incremental row: gfn 4 would read its content of checkpoint 0. */
	map_db("lost.db", "DELETE FROM page_map WHERE checkpoint = 1 AND gfn = 4", p, sizeof(p));
	snprintf(what, sizeof(what), "checkpoint 1 is damaged: its page map, rebuilt from the rows "
		 "of checkpoints 0..1 (4 entries), sums to ");
	expect_map_damage(p, 1, true, what);
	expect_map_damage(p, 1, true, ", the checkpoint says ");
	db = open_db(p);	/* checkpoint 0 is whole */
	check_ckpt(db, 0, ram0, 16, disk, 16);
	ckpt_db_close(db);

	/* The row that makes gfn 5 zero, lost: it would keep its old content. */
	map_db("zero.db", "DELETE FROM page_map WHERE checkpoint = 1 AND gfn = 5", p, sizeof(p));
	expect_map_damage(p, 1, true, "checkpoint 1 is damaged: its page map");

	/* A gfn changed: the page would move. */
	map_db("moved.db", "UPDATE page_map SET gfn = 6 WHERE checkpoint = 0 AND gfn = 5", p, sizeof(p));
	expect_map_damage(p, 0, true, "checkpoint 0 is damaged: its page map");

	/* A block pointed at another stored content. */
	map_db("block.db", "UPDATE block_map SET hash = (SELECT hash FROM block_map WHERE block = 10) "
	       "WHERE block = 9", p, sizeof(p));
	expect_map_damage(p, 0, false, "checkpoint 0 is damaged: its block map");

	/* A sum that is not 32 hex digits. */
	map_db("sum.db", "UPDATE checkpoints SET blocks_sum = 'xyz' WHERE id = 1", p, sizeof(p));
	expect_map_damage(p, 1, false, "checkpoint 1 is damaged: blocks_sum is xyz");
}

/* ---- kill -9 ---- */

/* Checkpoint k of the killed writer: 64 random pages of gfns k..k+63. */
static struct ckpt_capture *kill_capture(int k)
{
	struct pg l[64];

	for (int i = 0; i < 64; i++)
		l[i] = (struct pg){ (uint64_t)(k + i) % 512, 2 * (k * 64 + i + 1) };
	return capture(1000 + (uint64_t)k, k == 0, l, 64, NULL, 0);
}

static void kill_model(int k, int64_t *model)
{
	for (int i = 0; i < 64; i++)
		model[(k + i) % 512] = 2 * (k * 64 + i + 1);
}

static void test_kill9(void **state)
{
	enum { SYNCED = 3 };
	static int64_t model[512];
	struct ckpt_db *db;
	char p[128], j[160], c = 0;
	int fds[2], status;
	int64_t n;
	pid_t pid;

	(void)state;
	tpath(p, sizeof(p), "killed.db");
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct ckpt_meta m = test_meta();
		struct ckpt_event_row ev = { .type = TRACE_EV_EXIT_HLT };

		close(fds[0]);
		db = ckpt_db_create(p, false, &m, NULL, 0);
		if (!db)
			_exit(2);
		for (int k = 0;; k++) {
			ev.ordinal = ev.exit = (uint64_t)k;
			if (ckpt_db_put_events(db, &ev, 1) ||
			    ckpt_db_put_checkpoint(db, kill_capture(k)))
				_exit(3);
			if (k == SYNCED - 1) {
				if (ckpt_db_sync(db) || write(fds[1], "s", 1) != 1)
					_exit(4);
			}
		}
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &c, 1), 1);
	close(fds[0]);
	usleep(30000);	/* let it be inside later transactions */
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	snprintf(j, sizeof(j), "%s-journal", p);
	print_message("killed writer: journal %s\n", access(j, F_OK) ? "absent" : "present (hot)");

	db = open_db(p);
	n = ckpt_db_count(db, NULL, 0);
	assert_true(n >= SYNCED);
	for (int k = 0; k < n; k++) {
		kill_model(k, model);
		check_ckpt(db, k, model, 512, NULL, 0);
	}
	assert_true(query_int(p, "SELECT count(*) FROM events") >= SYNCED);
	ckpt_db_close(db);
	print_message("killed writer: %" PRId64 " checkpoints committed\n", n);
}

/*
 * A writer killed inside a transaction that had already spilled pages into
 * the file: the journal is hot, and opening must roll it back (a read-only
 * connection alone cannot) and see the last commit.
 */
static void test_hot_journal(void **state)
{
	static const struct pg p0[] = { { 1, 2 } };
	struct ckpt_db *db;
	char p[128], j[160], c;
	int fds[2], status;
	int64_t pages;
	pid_t pid;

	(void)state;
	db = create("hot.db", p, sizeof(p));
	assert_int_equal(ckpt_db_put_checkpoint(db, capture(5, true, p0, 1, NULL, 0)), 0);
	finish(db);
	pages = query_int(p, "SELECT count(*) FROM pages");
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		sqlite3 *s;
		sqlite3_stmt *st;
		uint8_t page[PAGE];

		close(fds[0]);
		if (sqlite3_open_v2(p, &s, SQLITE_OPEN_READWRITE, NULL) ||
		    sqlite3_exec(s, "PRAGMA cache_size = 8; BEGIN; "
				    "UPDATE checkpoints SET exit = 999", NULL, NULL, NULL) ||
		    sqlite3_prepare_v2(s, "INSERT INTO pages VALUES(?1, 0, ?2)", -1, &st, NULL))
			_exit(2);
		for (int i = 0; i < 500; i++) {
			uint64_t key[2] = { mix((uint64_t)i), (uint64_t)i };

			fill(page, 2 * i + 2);
			if (sqlite3_bind_blob(st, 1, key, 16, SQLITE_STATIC) ||
			    sqlite3_bind_blob(st, 2, page, PAGE, SQLITE_STATIC) ||
			    sqlite3_step(st) != SQLITE_DONE || sqlite3_reset(st))
				_exit(3);
		}
		if (write(fds[1], "s", 1) != 1)
			_exit(4);
		pause();
		_exit(5);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &c, 1), 1);
	close(fds[0]);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	snprintf(j, sizeof(j), "%s-journal", p);
	assert_int_equal(access(j, F_OK), 0);

	db = open_db(p);
	{
		struct ckpt_info info;
		int64_t model[4] = { 0, 2, 0, 0 };

		assert_int_equal(ckpt_db_get(db, 0, &info, NULL, 0), 0);
		assert_int_equal(info.exit, 5);
		check_ckpt(db, 0, model, 4, NULL, 0);
	}
	ckpt_db_close(db);
	assert_int_equal(query_int(p, "SELECT count(*) FROM pages"), pages);
	assert_int_equal(access(j, F_OK), -1);
}

/* ---- failures are sticky ---- */

static void test_sticky(void **state)
{
	struct ckpt_event_row ev = { .ordinal = 5, .type = TRACE_EV_EXIT_HLT };
	struct ckpt_db *db;
	char p[128], err[512];

	(void)state;
	/* A refused put. */
	db = create("sticky1.db", p, sizeof(p));
	assert_int_equal(ckpt_db_put_checkpoint(db, capture(10, true, NULL, 0, NULL, 0)), 0);
	assert_null(ckpt_db_failed(db));
	assert_int_equal(ckpt_db_put_checkpoint(db, capture(10, false, NULL, 0, NULL, 0)), -1);
	assert_non_null(ckpt_db_failed(db));
	assert_non_null(strstr(ckpt_db_failed(db), "exit 10 is not after"));
	assert_int_equal(ckpt_db_put_events(db, &ev, 1), -1);
	assert_int_equal(ckpt_db_put_checkpoint(db, capture(20, false, NULL, 0, NULL, 0)), -1);
	assert_int_equal(ckpt_db_sync(db), -1);
	assert_int_equal(ckpt_db_finish(db, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "exit 10 is not after"));
	assert_non_null(strstr(err, p));

	/* A failure in the thread: the same event ordinal twice. */
	db = create("sticky2.db", p, sizeof(p));
	assert_int_equal(ckpt_db_put_events(db, &ev, 1), 0);
	assert_int_equal(ckpt_db_sync(db), 0);
	assert_int_equal(ckpt_db_put_events(db, &ev, 1), 0);
	assert_int_equal(ckpt_db_put_checkpoint(db, capture(10, true, NULL, 0, NULL, 0)), 0);
	assert_int_equal(ckpt_db_sync(db), -1);
	assert_non_null(strstr(ckpt_db_failed(db), "event 5"));
	assert_int_equal(ckpt_db_put_frame(db, &(struct trace_frame_info){ 0 }), -1);
	assert_int_equal(ckpt_db_finish(db, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "UNIQUE"));
	/* The failed transaction left nothing: the checkpoint went with it. */
	assert_int_equal(query_int(p, "SELECT count(*) FROM checkpoints"), 0);
	assert_int_equal(query_int(p, "SELECT count(*) FROM events"), 1);

	/* A gfn no address can have. */
	db = create("sticky3.db", p, sizeof(p));
	assert_int_equal(ckpt_db_put_checkpoint(db, capture(1, true, (struct pg[]){ { 1ull << 60, 1 } },
							    1, NULL, 0)), -1);
	assert_non_null(strstr(ckpt_db_failed(db), "out of range"));
	assert_int_equal(ckpt_db_finish(db, err, sizeof(err)), -1);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- index rows: committed within 5 ms, frames from another thread ---- */

static void *frame_thread(void *arg)
{
	struct ckpt_db *db = arg;

	for (uint64_t i = 0; i < 1000; i++) {
		struct trace_frame_info f = { .seq = i, .first_event = i * 10, .offset = i * 100 };

		if (ckpt_db_put_frame(db, &f))
			return (void *)1;
	}
	return NULL;
}

static void test_index_timer(void **state)
{
	struct ckpt_event_row rows[100];
	struct ckpt_db *db;
	pthread_t t;
	uint64_t t0;
	void *tr;
	char p[128];

	(void)state;
	db = create("timer.db", p, sizeof(p));
	/* Let the writer go idle (waiting without a deadline) first. */
	assert_int_equal(ckpt_db_sync(db), 0);
	usleep(100000);
	assert_int_equal(pthread_create(&t, NULL, frame_thread, db), 0);
	for (uint64_t k = 0; k < 100; k++) {
		for (uint64_t i = 0; i < 100; i++)
			rows[i] = (struct ckpt_event_row){ .ordinal = k * 100 + i, .exit = k,
							   .type = TRACE_EV_CLOCK };
		assert_int_equal(ckpt_db_put_events(db, rows, 100), 0);
	}
	assert_int_equal(pthread_join(t, &tr), 0);
	assert_null(tr);
	/*
	 * No sync: the thread commits on its own, 5 ms after the first
	 * row (polled for up to 20 s: valgrind and loaded machines are slow).
	 */
	t0 = mono_ns();
	while (query_int(p, "SELECT count(*) FROM events") < 10000 && mono_ns() - t0 < 20000000000ull)
		usleep(20000);
	print_message("index rows committed without a sync after %.0f ms\n", (mono_ns() - t0) / 1e6);
	assert_int_equal(query_int(p, "SELECT count(*) FROM events"), 10000);
	assert_int_equal(query_int(p, "SELECT count(*) FROM frames"), 1000);
	assert_int_equal(query_int(p, "SELECT frame_seq FROM event_frames WHERE ordinal = 9999"),
			 999);
	finish(db);
}

/*
 * ckpt_db_commit_soon: the rows are committed without a sync and without
 * the timer, which is set to an hour here (polled for up to 20 s).
 */
static void test_commit_soon(void **state)
{
	struct ckpt_event_row rows[50];
	struct ckpt_db *db;
	uint64_t t0;
	char p[128];

	(void)state;
	assert_int_equal(setenv("DETVM_TEST_CKPT_FLUSH_MS", "3600000", 1), 0);
	db = create("soon.db", p, sizeof(p));
	assert_int_equal(unsetenv("DETVM_TEST_CKPT_FLUSH_MS"), 0);
	assert_int_equal(ckpt_db_sync(db), 0);
	for (uint64_t i = 0; i < 50; i++)
		rows[i] = (struct ckpt_event_row){ .ordinal = i, .exit = i, .type = TRACE_EV_CLOCK };
	assert_int_equal(ckpt_db_put_events(db, rows, 50), 0);
	/* The timer alone would keep them for an hour. */
	usleep(100000);
	assert_int_equal(query_int(p, "SELECT count(*) FROM events"), 0);
	ckpt_db_commit_soon(db);
	t0 = mono_ns();
	while (query_int(p, "SELECT count(*) FROM events") < 50 && mono_ns() - t0 < 20000000000ull)
		usleep(5000);
	assert_int_equal(query_int(p, "SELECT count(*) FROM events"), 50);
	/* Rows put after it wait for the next reason again. */
	rows[0].ordinal = 50;
	assert_int_equal(ckpt_db_put_events(db, rows, 1), 0);
	usleep(100000);
	assert_int_equal(query_int(p, "SELECT count(*) FROM events"), 50);
	finish(db);
	assert_int_equal(query_int(p, "SELECT count(*) FROM events"), 51);
}

/* ---- latency (printed, not judged: it depends on the disk) ---- */

/* n pages: nonzero of them random (content numbers from base), the rest zero. */
static struct ckpt_capture *perf_capture(uint64_t exit, bool full, size_t n, size_t nonzero,
					 int64_t base)
{
	struct pg *l = malloc(n * sizeof(*l));
	struct ckpt_capture *c;

	assert_non_null(l);
	for (size_t i = 0; i < n; i++)
		l[i] = (struct pg){ i * 7 % 32768, i < nonzero ? 2 * (base + (int64_t)i) : 0 };
	c = capture(exit, full, l, n, NULL, 0);
	free(l);
	return c;
}

static void test_latency(void **state)
{
	enum { ROUNDS = 10 };
	struct ckpt_capture *caps[ROUNDS];
	struct ckpt_db_stats st;
	struct ckpt_db *db;
	uint64_t t0, put_ns = 0, worst = 0, total = 0;
	char p[128];

	(void)state;
	db = create("perf.db", p, sizeof(p));
	/* A full capture of 32768 pages (128 MiB of RAM), 1024 of them non-zero. */
	{
		struct ckpt_capture *c = perf_capture(1, true, 32768, 1024, 1);

		t0 = mono_ns();
		assert_int_equal(ckpt_db_put_checkpoint(db, c), 0);
		put_ns = mono_ns() - t0;
		assert_int_equal(ckpt_db_sync(db), 0);
		print_message("full 32768-page capture (1024 non-zero): put %.3f ms, "
			      "put -> committed %.1f ms\n", put_ns / 1e6, (mono_ns() - t0) / 1e6);
	}
	/* Incremental captures of 655 changed random pages. */
	for (int r = 0; r < ROUNDS; r++) {
		struct ckpt_capture *c = perf_capture(2 + (uint64_t)r, false, 655, 655,
						      100000 * (r + 1));
		uint64_t dt;

		t0 = mono_ns();
		assert_int_equal(ckpt_db_put_checkpoint(db, c), 0);
		assert_int_equal(ckpt_db_sync(db), 0);
		dt = mono_ns() - t0;
		total += dt;
		worst = dt > worst ? dt : worst;
	}
	print_message("655 random pages: put -> committed mean %.1f ms, worst %.1f ms\n",
		      total / ROUNDS / 1e6, worst / 1e6);
	/* Back to back: the third put waits for the thread. */
	for (int r = 0; r < ROUNDS; r++)
		caps[r] = perf_capture(100 + (uint64_t)r, false, 655, 655, 10000000 * (r + 1));
	t0 = mono_ns();
	for (int r = 0; r < ROUNDS; r++)
		assert_int_equal(ckpt_db_put_checkpoint(db, caps[r]), 0);
	assert_int_equal(ckpt_db_sync(db), 0);
	ckpt_db_stats(db, &st);
	print_message("%d back-to-back 655-page checkpoints: %.1f ms, %" PRIu64 " queue waits; "
		      "stored %" PRIu64 " of %" PRIu64 " bytes\n", ROUNDS, (mono_ns() - t0) / 1e6,
		      st.queue_waits, st.bytes_stored, st.bytes_raw);
	assert_true(st.queue_waits > 0);
	assert_int_equal(st.checkpoints, 1 + 2 * ROUNDS);
	finish(db);
}

/* ---- the schema is made on the writer thread; finish can overlap ---- */

static void test_background_setup(void **state)
{
	struct ckpt_db_stats st;
	struct ckpt_db *db;
	struct rlimit old, none;
	char p[128], err[512];

	(void)state;
	/* finish_begin, then finish_stats: everything put is committed and
	 * counted, and the file is complete. */
	db = create("begin.db", p, sizeof(p));
	assert_int_equal(ckpt_db_put_checkpoint(db, capture(1, true, (struct pg[]){ { 3, 1 }, { 4, 2 } }, 2,
							    NULL, 0)), 0);
	assert_int_equal(ckpt_db_put_meta(db, "end_exits", "9"), 0);
	ckpt_db_finish_begin(db);
	ckpt_db_finish_begin(db); /* idempotent */
	if (ckpt_db_finish_stats(db, &st, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(st.checkpoints, 1);
	assert_int_equal(st.pages_in, 2);
	assert_int_equal(query_int(p, "SELECT count(*) FROM checkpoints"), 1);
	assert_int_equal(query_int(p, "SELECT count(*) FROM meta WHERE key = 'end_exits' AND value = '9'"), 1);

	/* The schema cannot be written (no file may grow): creating succeeds,
	 * the failure is the thread's, reported by finish with the file's
	 * name, and the file it claimed is removed. */
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	none = old;
	none.rlim_cur = 0;
	signal(SIGXFSZ, SIG_IGN);
	tpath(p, sizeof(p), "noschema.db");
	{
		struct ckpt_meta m = test_meta();

		assert_int_equal(setrlimit(RLIMIT_FSIZE, &none), 0);
		db = ckpt_db_create(p, false, &m, err, sizeof(err));
		if (db) {
			/* Queued (0), or refused at once (-1) when the thread has
			 * already failed: both are right, and which one depends
			 * on timing (TSan under load gave -1). */
			int pr = ckpt_db_put_checkpoint(db, capture(1, true, NULL, 0, NULL, 0));
			if (pr != 0 && pr != -1)
				fail_msg("put_checkpoint returned %d", pr);
		}
		int rc = db ? ckpt_db_finish_stats(db, &st, err, sizeof(err)) : 0;
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
		signal(SIGXFSZ, SIG_DFL);
		if (!db)
			fail_msg("create failed where the thread should: %s", err);
		assert_int_equal(rc, -1);
	}
	if (!strstr(err, p))
		fail_msg("error \"%s\" does not name %s", err, p);
	assert_int_equal(st.checkpoints, 0);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(errno, ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_full_every),
		cmocka_unit_test(test_overwrite),
		cmocka_unit_test(test_prepare_begin),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_damage),
		cmocka_unit_test(test_map_damage),
		cmocka_unit_test(test_kill9),
		cmocka_unit_test(test_hot_journal),
		cmocka_unit_test(test_sticky),
		cmocka_unit_test(test_index_timer),
		cmocka_unit_test(test_commit_soon),
		cmocka_unit_test(test_latency),
		cmocka_unit_test(test_background_setup),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
