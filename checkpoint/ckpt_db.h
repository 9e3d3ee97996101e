/*
 * ckpt_db.h - the checkpoint database of a recording: REC/checkpoints.db, a
 * SQLite file beside REC/trace (schema: docs/checkpoints.md).
 *
 * It holds derived data only: everything in it can be recomputed by
 * replaying the trace, and the trace stays the evidence.  It stores
 *   - checkpoints: the machine's state after a given exit (vCPU and device
 *     blobs, and guest memory and disk-overlay blocks as maps of pages);
 *   - pages: 4 KiB blocks, content-addressed by XXH3-128, stored once,
 *     zstd-compressed;
 *   - the event index (every trace event: ordinal, exit ordinal, type,
 *     device, host time) and the frame index (every trace frame: offset,
 *     sequence number, first event, previous frame's hash);
 *   - the guest's serial output with the exit ordinal that produced it.
 *
 * Writing (the recorder): ckpt_db_create(), then ckpt_db_put_*() from the
 * vCPU thread: each call only queues its argument (ownership moves to the
 * database) and returns; one background thread hashes, compresses and
 * inserts, committing one transaction per checkpoint and every 5 ms of
 * queued index rows, so that a killed recorder leaves a database that is
 * consistent up to its last commit (SQLite's journal).  ckpt_db_finish()
 * drains the queue and closes.
 *
 * Reading (replay --to, the inspector): ckpt_db_open() read-only, then the
 * lookup functions.  Every page read is checked against its XXH3-128 key;
 * a damaged database or a missing row is an error naming the checkpoint,
 * page (gfn) or table.
 *
 * Errors: functions return 0 / -1 (or NULL) and put a message in err[],
 * naming the database file and what failed.
 */
#ifndef DETVM_CKPT_DB_H
#define DETVM_CKPT_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trace-format/trace.h"

#define CKPT_DB_FILE		"checkpoints.db"
#define CKPT_PAGE_SIZE		4096
#define CKPT_SCHEMA_VERSION	2
/* A full page map every this many checkpoints, so that restoring reads a
 * bounded number of incremental maps. */
#define CKPT_FULL_EVERY		32

struct ckpt_hash { uint64_t lo, hi; };	/* XXH3-128 */

/*
 * The machine state captured after exit `exit` had been handled completely
 * (device, interrupts delivered there): the point where the run loop is
 * about to enter the guest again.  exit 0 is before the first instruction.
 */
struct ckpt_capture {
	uint64_t exit;		/* exit ordinal */
	uint64_t event;		/* events in the trace before this point = the next event's ordinal */
	uint64_t progress;	/* progress counter (insn_emulation) of the recording vCPU */
	uint64_t host_ns;	/* host monotonic ns since the recording started */
	uint64_t guest_ns;	/* the guest's virtual clock (last value it read) */
	uint64_t regs_hash;	/* vm_regs() */
	uint64_t pause_ns;	/* how long the vCPU was stopped to capture */
	bool full;		/* pages = every non-zero page of RAM / every overlay block;
				 * else only those written since the previous capture */
	uint8_t *vcpu;		/* vcpu_state blob (vmm/vcpu_state.h) */
	size_t vcpu_len;
	uint8_t *devices;	/* device state blob (vmm/snapshot.h) */
	size_t devices_len;
	size_t npages;		/* RAM pages: gfn (gpa >> 12) and 4096 bytes each */
	uint64_t *page_gfn;
	uint8_t *page_data;
	size_t nblocks;		/* disk overlay blocks: block number and 4096 bytes each */
	uint64_t *block_no;
	uint8_t *block_data;
};
/* Free a capture's buffers (and the struct itself, which must be malloc'd). */
void ckpt_capture_free(struct ckpt_capture *c);

/* One trace event, for the event index.  device: a static string or NULL. */
struct ckpt_event_row {
	uint64_t ordinal;	/* event ordinal in the trace (0-based) */
	uint64_t exit;		/* exit ordinal at that point (an exit event: its own) */
	uint64_t host_ns;	/* host monotonic ns since the recording started */
	uint64_t addr;		/* port, gpa, MSR index, vector; 0 otherwise */
	uint64_t value;		/* written value, time ns, byte count; 0 otherwise */
	uint8_t type;		/* enum trace_event_type */
	uint8_t flags;		/* the event's flags (direction, size) */
	const char *device;	/* "uart", "pit", "virtio-blk", ...; NULL if none */
};

/* Configuration of the recording, stored in the meta table. */
struct ckpt_meta {
	uint64_t mem_size;
	uint64_t disk_size;	/* 0: no disk */
	uint64_t start_unix_ns;	/* wall-clock time the recording started */
	char trace_id[TRACE_HASH_HEX_SIZE]; /* hex SHA-256 of the trace's file header (its hash chain start) */
};

struct ckpt_db;

/* ---- writing ---- */

/*
 * Create `path` (O_EXCL semantics: fails if it exists unless force, which
 * deletes it first) and start the writer thread, which creates the schema
 * and writes meta before anything queued.  NULL on error (the file exists,
 * cannot be created, out of memory); a failure of the schema itself is a
 * background failure (ckpt_db_failed(), ckpt_db_finish()), and the thread
 * then removes the file it claimed.  Until the schema is committed, a
 * reader finds the file empty.
 */
struct ckpt_db *ckpt_db_create(const char *path, bool force, const struct ckpt_meta *meta,
			       char *err, size_t errlen);
/*
 * ckpt_db_create in two steps, for a caller that learns the meta later (the
 * recorder: prepare runs on a thread of its own while the VM is created).
 * prepare creates the file if it does not exist (O_EXCL) and starts the
 * thread, which waits; an existing file is an error, or with force is left
 * as it is until begin deletes it.  begin sets meta and lets the thread
 * create the schema; -1 with the message in err if the file cannot be
 * claimed (then discard).  discard ends a database that was not begun, or
 * whose begin failed, removing a file prepare created; after begin, finish.
 */
struct ckpt_db *ckpt_db_prepare(const char *path, bool force, char *err, size_t errlen);
int ckpt_db_begin(struct ckpt_db *db, const struct ckpt_meta *meta, char *err, size_t errlen);
void ckpt_db_discard(struct ckpt_db *db);
/*
 * Queue a checkpoint (ownership of c moves to the database, also on error).
 * Checkpoint ids are given in put order from 0; exits must increase
 * strictly.  At most 2 checkpoints are queued or being written: a third
 * put waits (stats.queue_waits).  A refused capture (exit not after the
 * previous one, a gfn or block number >= 2^52, arrays missing) is a
 * failure like a background one: sticky, message in ckpt_db_failed().
 */
int ckpt_db_put_checkpoint(struct ckpt_db *db, struct ckpt_capture *c);
/* Queue index rows (copied). */
int ckpt_db_put_events(struct ckpt_db *db, const struct ckpt_event_row *rows, size_t n);
/* Queue a frame's index row (copied; may be called from any thread). */
int ckpt_db_put_frame(struct ckpt_db *db, const struct trace_frame_info *f);
/* Queue serial output produced at exit `exit` (copied). */
int ckpt_db_put_serial(struct ckpt_db *db, uint64_t exit, const uint8_t *data, size_t len);
/* Queue a key/value for the meta table (e.g. "end_exits"). */
int ckpt_db_put_meta(struct ckpt_db *db, const char *key, const char *value);
/* Block until everything queued so far is committed. */
int ckpt_db_sync(struct ckpt_db *db);
/*
 * Have the thread commit everything queued so far now, rather than when
 * its batch is full or 5 ms old, without waiting for it (the recorder's
 * last index rows, committed while the trace closes).
 */
void ckpt_db_commit_soon(struct ckpt_db *db);
/*
 * Drain, commit, stop the thread, close and fsync the file.  Returns 0, or
 * -1 if anything failed since creation (the first failure's message).  db
 * is freed.  ckpt_db_finish_stats() also gives the final statistics.
 */
int ckpt_db_finish(struct ckpt_db *db, char *err, size_t errlen);
struct ckpt_db_stats;
int ckpt_db_finish_stats(struct ckpt_db *db, struct ckpt_db_stats *st, char *err, size_t errlen);
/*
 * Let the thread drain, commit, close and fsync on its own while the caller
 * does other work; nothing may be put after it.  ckpt_db_finish() then
 * waits for it.
 */
void ckpt_db_finish_begin(struct ckpt_db *db);
/* The first background failure, or NULL.  Non-blocking. */
const char *ckpt_db_failed(struct ckpt_db *db);

struct ckpt_db_stats {
	uint64_t checkpoints;
	uint64_t pages_in;	/* page and block copies received */
	uint64_t pages_new;	/* of those, distinct contents not yet stored */
	uint64_t bytes_raw;	/* 4096 * pages_new */
	uint64_t bytes_stored;	/* compressed bytes of new pages */
	uint64_t queue_waits;	/* put_checkpoint waited for the thread */
};
void ckpt_db_stats(struct ckpt_db *db, struct ckpt_db_stats *st);

/* ---- reading ---- */

struct ckpt_info {
	int64_t id;		/* checkpoint number: 0, 1, 2 ... in exit order */
	uint64_t exit, event, progress, host_ns, guest_ns, regs_hash, pause_ns;
	bool full;
	uint64_t pages;		/* RAM pages in this checkpoint's map (delta rows if !full) */
	uint64_t blocks;	/* disk blocks likewise */
	uint64_t bytes_new;	/* compressed bytes of pages first stored by it */
	/* The sums of the machine's full page and block maps at this
	 * checkpoint (docs/checkpoints.md, "Map sums"): ckpt_db_pages and
	 * ckpt_db_blocks check the maps they rebuild against them. */
	struct ckpt_hash pages_sum, blocks_sum;
};

struct ckpt_frame_row {
	uint64_t seq, offset, first_event, exit_base;
	uint32_t events, exits;
	uint8_t prev_hash[TRACE_HASH_SIZE];
};

/*
 * Open read-only, check the schema version and the meta table.  A hot
 * journal left by a writer killed inside a transaction is rolled back first
 * (this one step opens the file read-write).  The reading functions below
 * need a database opened this way, not one being written.
 */
struct ckpt_db *ckpt_db_open(const char *path, char *err, size_t errlen);
void ckpt_db_close(struct ckpt_db *db);
/* The meta table as read. */
const struct ckpt_meta *ckpt_db_meta(struct ckpt_db *db);
/* A meta value by key into out; -1 if absent (or longer than outlen - 1). */
int ckpt_db_get_meta(struct ckpt_db *db, const char *key, char *out, size_t outlen);

/* Number of checkpoints; -1 on error. */
int64_t ckpt_db_count(struct ckpt_db *db, char *err, size_t errlen);
/* Checkpoint by id.  -1 if absent (message says so). */
int ckpt_db_get(struct ckpt_db *db, int64_t id, struct ckpt_info *out, char *err, size_t errlen);
/* The last checkpoint with exit <= `exit`.  -1 if none. */
int ckpt_db_find(struct ckpt_db *db, uint64_t exit, struct ckpt_info *out, char *err, size_t errlen);
/* Its vCPU / device blobs (malloc'd, caller frees). */
int ckpt_db_blobs(struct ckpt_db *db, int64_t id, uint8_t **vcpu, size_t *vcpu_len,
		  uint8_t **devices, size_t *devices_len, char *err, size_t errlen);
/*
 * Every non-zero RAM page of checkpoint id (the nearest full map at or
 * before it plus the incremental maps up to it), in gfn order: cb(ctx,
 * gfn, 4096 bytes).  A page whose content does not hash to its key, or
 * that is missing, is an error.  cb returns non-zero to stop (returned).
 */
int ckpt_db_pages(struct ckpt_db *db, int64_t id,
		  int (*cb)(void *ctx, uint64_t gfn, const uint8_t *data), void *ctx,
		  char *err, size_t errlen);
/*
 * The same for disk overlay blocks, except that zero blocks are returned:
 * every block of the overlay is in it, since an absent block reads from
 * the disk image and not as zeros.
 */
int ckpt_db_blocks(struct ckpt_db *db, int64_t id,
		   int (*cb)(void *ctx, uint64_t block, const uint8_t *data), void *ctx,
		   char *err, size_t errlen);
/* The frame whose first event is the greatest <= event.  -1 if none. */
int ckpt_db_frame_for_event(struct ckpt_db *db, uint64_t event, struct ckpt_frame_row *out,
			    char *err, size_t errlen);
/* The raw SQLite handle (read-only), for the inspector's queries; NULL for
 * a database being written (its handle belongs to the writer thread). */
struct sqlite3 *ckpt_db_handle(struct ckpt_db *db);

#endif
