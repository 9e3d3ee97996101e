/*
 * ckpt_internal.h - what the checkpoint database's files share: the handle,
 * the in-memory tables (gfn -> hash maps, the set of stored page hashes),
 * page hashing and coding, error helpers.  Not for use outside checkpoint/.
 *
 * Files: ckpt_db.c (the writer and its thread), ckpt_read.c (the reader),
 * ckpt_schema.c (the SQL schema, meta, opening checks), ckpt_map.c (the
 * hash tables), ckpt_page.c (hashing, zstd, blobs, hex).
 */
#ifndef DETVM_CKPT_INTERNAL_H
#define DETVM_CKPT_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <zstd.h>

#include "checkpoint/ckpt_db.h"

#define CKPT_ERR_MAX		512
#define CKPT_HASH_BLOB		16	/* bytes of a hash key in the database */
#define CKPT_HASH_HEX		33	/* 32 hex digits and a NUL */
#define CKPT_CODEC_RAW		0
#define CKPT_CODEC_ZSTD		1
#define CKPT_ZSTD_LEVEL		1
/* gfns and block numbers: a 64-bit address space of 4 KiB pages. */
#define CKPT_KEY_MAX		((UINT64_C(1) << 52) - 1)

/* ---- hash tables (ckpt_map.c) ---- */

struct ckpt_map_ent {
	uint64_t key;		/* gfn or block number; CKPT_MAP_EMPTY: free */
	struct ckpt_hash h;
};
#define CKPT_MAP_EMPTY		UINT64_MAX

/*
 * key -> hash, open addressing with linear probing (keys <= CKPT_KEY_MAX).
 * `sum` is the map's sum (ckpt_sum_entry over its entries), kept up to
 * date by set, del and clear.
 */
struct ckpt_map {
	struct ckpt_map_ent *slot;
	size_t cap;		/* power of two, or 0 before the first set */
	size_t count;
	struct ckpt_hash sum;
};

/*
 * A map's sum: the XXH3-128 of each entry's 24 bytes (the key as 8 bytes
 * little-endian, then the hash as stored, ckpt_hash_to_blob) added modulo
 * 2^128, hi:lo.  It does not depend on the entries' order, so the writer
 * keeps it as entries change and a reader recomputes it from the rows it
 * merged: a map row lost, added, or with a changed key or hash, changes it.
 * sign > 0 adds the entry, sign < 0 takes it out.
 */
void ckpt_sum_entry(struct ckpt_hash *sum, uint64_t key, const struct ckpt_hash *h, int sign);

int ckpt_map_set(struct ckpt_map *m, uint64_t key, const struct ckpt_hash *h);
void ckpt_map_del(struct ckpt_map *m, uint64_t key);
void ckpt_map_clear(struct ckpt_map *m);
void ckpt_map_free(struct ckpt_map *m);
/* The entries sorted by key, malloc'd (NULL with count 0 is not an error). */
int ckpt_map_sorted(const struct ckpt_map *m, struct ckpt_map_ent **out, size_t *n);

/* A set of hashes (the contents already in the pages table). */
struct ckpt_hset {
	struct ckpt_hash *slot;	/* {0, 0}: free */
	size_t cap, count;
	bool has_zero_key;	/* the hash {0, 0} itself, which cannot be a slot */
};

bool ckpt_hset_has(const struct ckpt_hset *s, const struct ckpt_hash *h);
int ckpt_hset_add(struct ckpt_hset *s, const struct ckpt_hash *h);
void ckpt_hset_free(struct ckpt_hset *s);

/* ---- pages, blobs, hex (ckpt_page.c) ---- */

struct ckpt_hash ckpt_hash_page(const uint8_t *data);
/* XXH3-128 of 4096 zero bytes. */
const struct ckpt_hash *ckpt_zero_hash(void);
static inline bool ckpt_hash_eq(const struct ckpt_hash *a, const struct ckpt_hash *b)
{
	return a->lo == b->lo && a->hi == b->hi;
}
/* The 16-byte key as stored: lo then hi, little-endian. */
void ckpt_hash_to_blob(const struct ckpt_hash *h, uint8_t out[CKPT_HASH_BLOB]);
struct ckpt_hash ckpt_hash_from_blob(const uint8_t in[CKPT_HASH_BLOB]);
/* Hex of the stored key bytes (what sqlite3's lower(hex(hash)) shows). */
void ckpt_hash_hex(const struct ckpt_hash *h, char out[CKPT_HASH_HEX]);
/* XXH3-64 of a || b as 16 hex digits (the checkpoints.checksum column). */
void ckpt_blobs_checksum(const void *a, size_t alen, const void *b, size_t blen,
			 char out[17]);
/* 64 hex digits -> 32 bytes; -1 if malformed. */
int ckpt_unhex(const char *hex, uint8_t *out, size_t n);

/*
 * Encode one page for the pages table: zstd level 1 into out (capacity
 * ckpt_page_bound()), or raw if that does not make it smaller.  Returns the
 * codec: CKPT_CODEC_ZSTD (store *len bytes of out) or CKPT_CODEC_RAW (store
 * data itself, *len = 4096); -1 on a zstd error, message in err.
 */
size_t ckpt_page_bound(void);
int ckpt_page_encode(ZSTD_CCtx *cctx, const uint8_t *data, uint8_t *out, size_t *len,
		     char *err, size_t errlen);
/* Decode a stored page into out[4096]: 0, or -1 with what is wrong in why. */
int ckpt_page_decode(ZSTD_DCtx *dctx, int codec, const void *data, size_t len,
		     uint8_t out[CKPT_PAGE_SIZE], char *why, size_t whylen);

/* Error messages: errf(), as in every module. */
#include "common/errf.h"
/* "path: " and the formatted rest, cut to errlen. */
void ckpt_vpathf(char *err, size_t errlen, const char *path, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));

/* ---- the handle ---- */

/* Index rows queued between two checkpoints: written in one transaction. */
struct ckpt_serial_rec {
	uint64_t exit;
	uint8_t *data;
	size_t len;
};

struct ckpt_meta_rec {
	char *key, *value;
};

struct ckpt_batch {
	struct ckpt_batch *next;
	struct ckpt_capture *ckpt;	/* closes the batch; NULL: still open */
	uint64_t ticket;		/* of the last put in it */
	uint64_t opened_ns;		/* CLOCK_MONOTONIC of its first put */
	struct ckpt_event_row *events;
	size_t nevents, cevents;
	struct trace_frame_info *frames;
	size_t nframes, cframes;
	struct ckpt_serial_rec *serial;
	size_t nserial, cserial;
	struct ckpt_meta_rec *meta;
	size_t nmeta, cmeta;
};

/* The writer's prepared statements. */
struct ckpt_stmts {
	sqlite3_stmt *event, *frame, *serial, *meta, *ckpt, *page, *page_map, *block_map;
};

struct ckpt_db {
	char *path;
	sqlite3 *sql;
	bool writer;
	struct ckpt_meta meta;		/* reader: as read; writer: as given */
	uint64_t flush_ns;		/* writer: index rows wait at most this (set before the thread) */
	bool force;			/* writer: begin replaces an old file (prepare found one) */
	bool claimed;			/* writer: the file is ours (created with O_EXCL) */

	/* ---- writer: shared with the thread, under lock ---- */
	pthread_mutex_t lock;
	pthread_cond_t work;		/* thread: something to do */
	pthread_cond_t done;		/* putters: a batch was committed */
	pthread_t thread;
	bool thread_started;
	bool begun;			/* ckpt_db_begin: the thread may create the schema */
	bool stop;
	struct ckpt_batch *head, *tail;	/* tail is the open batch, if any */
	uint64_t ticket;		/* puts so far */
	uint64_t committed;		/* ticket of the last batch written */
	uint64_t sync_target;		/* a sync waits for this ticket */
	unsigned inflight;		/* checkpoints queued or being written */
	uint64_t last_exit;		/* of the last checkpoint put */
	uint64_t nput;			/* checkpoints put */
	struct ckpt_db_stats stats;
	atomic_bool failed;		/* err holds the first failure */
	char err[CKPT_ERR_MAX];

	/* ---- writer: the thread's own ---- */
	struct ckpt_stmts st;
	int64_t next_id;
	uint64_t next_serial;
	struct ckpt_map ram, disk;	/* the current full maps */
	struct ckpt_hset stored;	/* every hash in the pages table */
	ZSTD_CCtx *cctx;
	uint8_t *zbuf;			/* ckpt_page_bound() bytes */
	struct ckpt_db_stats pend;	/* of the transaction being written */
	char terr[CKPT_ERR_MAX];	/* its failure, copied to err */
};

/* A zeroed handle that owns a copy of path; NULL (message in err) if out of memory. */
struct ckpt_db *ckpt_db_alloc(const char *path, char *err, size_t errlen);

/* ---- schema (ckpt_schema.c) ---- */

/* Create every table, index and view and write meta, in one transaction. */
int ckpt_schema_create(sqlite3 *sql, const char *path, const struct ckpt_meta *meta,
		       char *err, size_t errlen);
/* Check that sql is a checkpoint database of our version; fill meta. */
int ckpt_schema_check(sqlite3 *sql, const char *path, struct ckpt_meta *meta,
		      char *err, size_t errlen);

/* sqlite3_bind_int64 of a u64 (SQLite integers are signed 64-bit). */
static inline int ckpt_bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
	return sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

#endif
