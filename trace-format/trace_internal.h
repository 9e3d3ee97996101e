/*
 * trace_internal.h - what the trace-format modules share and nobody else
 * needs: byte layouts (SPEC.md), little-endian access, the event codec, the
 * header codec, the frame sink and the async queue.  Unit tests include it
 * to exercise the pieces one at a time.
 */
#ifndef DETVM_TRACE_INTERNAL_H
#define DETVM_TRACE_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "trace-format/trace.h"
#include "trace-format/varint.h"

/* ---- file header (SPEC.md "File header") ---- */
#define TRACE_FILE_MAGIC	"DETVMTRC"
#define TRACE_FILE_MAGIC_LEN	8
#define TRACE_FILE_FIXED	16	/* magic, major, minor, body length */
#define TRACE_FILE_CSUM		8	/* XXH3-64 after the body */
#define TRACE_HEADER_BODY_MAX	(1u << 20)
#define TRACE_HEADER_FIELDS_MAX	1024
#define TRACE_TLV_HDR		6	/* tag u16, length u32 */
/* PACKED_FIELDS (1.1): u32 raw_len, then one zstd frame. */
#define TRACE_PACKED_RAW_LEN	4
/*
 * Written once per recording and a few KiB.  Measured on a recorder's
 * header (3.4 KiB of fields): level 19 packs it to 632 bytes but takes
 * 1.6 ms, 4% of recording a 40 ms guest; level 12 to 650 in 0.35 ms (the
 * whole header encode, timed in `record`); level 6 to 692 in 0.13 ms;
 * level 3 to 697 in 0.08 ms.  Level 3: 47 bytes once per recording are
 * worth less than 0.27 ms of every recording (1.3% of a 20 ms guest).
 * Readers never depend on the level.
 */
#define TRACE_PACKED_ZSTD_LEVEL	3

/* ---- frames (SPEC.md "Frames") ---- */
#define TRACE_FRAME_MAGIC	"DTFR"
#define TRACE_FRAME_MAGIC_LEN	4
#define TRACE_FRAME_HDR_SIZE	96	/* as written by format 1.0 */
#define TRACE_FRAME_HDR_MAX	4096	/* a later minor may grow it */
#define TRACE_FRAME_RAW_MAX	(16u << 20)
#define TRACE_FRAME_BYTES_DEFAULT (64u << 10)
#define TRACE_FRAME_BYTES_MAX	(8u << 20)

/* Offsets inside a frame header. */
#define FH_MAGIC	0
#define FH_HDR_SIZE	4
#define FH_SEQ		8
#define FH_FIRST_EVENT	16
#define FH_EXIT_BASE	24
#define FH_EVENTS	32
#define FH_EXITS	36
#define FH_COMP_LEN	40
#define FH_RAW_LEN	44
#define FH_PAYLOAD_XXH	48
#define FH_PREV_HASH	56
#define FH_HDR_XXH	88	/* in 1.0; always the last 8 bytes */

/* ---- trailer (SPEC.md "The END record") ---- */
#define TRACE_TRAILER_MAGIC	"DTEND\0\0\0"
#define TRACE_TRAILER_MAGIC_LEN	8
#define TRACE_TRAILER_SIZE	56
#define TR_FRAMES	8
#define TR_HASH		16
#define TR_XXH		48

/* Largest encoding of one event: ENTROPY with 64 KiB of data. */
#define TRACE_EVENT_MAX_ENC	(1 + VARINT_MAX + TRACE_ENTROPY_MAX)

#define TRACE_ERR_MAX		512

/* ---- little-endian access ---- */
static inline void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Error messages: errf(), as in every module. */
#include "common/errf.h"

/* ---- header codec (trace_header.c) ---- */

/*
 * The whole file header as this writer writes it (format 1.1: fields
 * packed when that makes the header smaller), checksum included; malloc'd.
 * -1 and a message on allocation or zstd failure.
 */
int trace_header_encode(const struct trace_header *h, uint8_t **out,
			size_t *len, char *err, size_t errlen);
/*
 * The same with the minor version to write and whether to pack at all:
 * !pack gives the body a 1.0 writer wrote (tests and tools use it to make
 * files of other versions).
 */
int trace_header_encode_as(const struct trace_header *h, uint16_t minor,
			   bool pack, uint8_t **out, size_t *len, char *err,
			   size_t errlen);
/*
 * The first TRACE_FILE_FIXED bytes: magic and version checks, in SPEC
 * order.  On success *body_len is the TLV body length.
 */
int trace_header_check_fixed(const uint8_t *b, size_t n, uint32_t *body_len,
			     char *err, size_t errlen);
/*
 * A complete header (fixed part, body, checksum), fully checked, with the
 * fields of PACKED_FIELDS unpacked in its place.
 */
struct trace_header *trace_header_decode(const uint8_t *b, size_t n,
					 char *err, size_t errlen);

/* ---- event codec (trace_event.c) ---- */

/*
 * Encode ev at out (room for TRACE_EVENT_MAX_ENC).  *time_prev is the
 * frame's CLOCK/TIMER delta base (0 at each frame start); the caller keeps
 * time monotonic across frames.  -1 and *why for an invalid event.
 */
int trace_event_encode(const struct trace_event *ev, uint64_t *time_prev,
		       uint8_t *out, size_t *len, const char **why);
/* Decode one event from p[0..avail); *used bytes.  -1 and *why. */
int trace_event_decode(const uint8_t *p, size_t avail, uint64_t *time_prev,
		       struct trace_event *ev, size_t *used, const char **why);

/* ---- frames (trace_frame.c) ---- */

struct trace_frame_hdr {
	uint32_t hdr_size;
	uint64_t seq;
	uint64_t first_event;
	uint64_t exit_base;
	uint32_t events;
	uint32_t exits;
	uint32_t comp_len;
	uint32_t raw_len;
	uint64_t payload_xxh;
	uint8_t prev_hash[TRACE_HASH_SIZE];
	uint64_t hdr_xxh;
};

/* Fill out[0..96) and its checksum (computed here, stored in fh too). */
void trace_frame_hdr_pack(struct trace_frame_hdr *fh, uint8_t *out);
/* Fields of a header whose size (>= 96) has been read; no checks. */
void trace_frame_hdr_unpack(const uint8_t *b, struct trace_frame_hdr *fh);
/* XXH3-64 over b[0..hdr_size - 8): what the last 8 bytes must hold. */
uint64_t trace_frame_hdr_xxh(const uint8_t *b, uint32_t hdr_size);
/* SHA-256(a || b): a frame's hash is over its header then its payload. */
void trace_sha256_2(const void *a, size_t alen, const void *b, size_t blen,
		    uint8_t out[TRACE_HASH_SIZE]);
void trace_trailer_pack(uint64_t frames, const uint8_t hash[TRACE_HASH_SIZE],
			uint8_t out[TRACE_TRAILER_SIZE]);

/* ---- writing frames (trace_sink.c) ---- */

/* One frame's events as the appending thread builds them. */
struct trace_frame_buf {
	uint8_t *raw;
	size_t len;
	size_t cap;
	uint64_t seq;
	uint64_t first_event;
	uint64_t exit_base;
	uint32_t events;
	uint32_t exits;
};

struct trace_frame_buf *trace_frame_buf_new(size_t cap);
void trace_frame_buf_free(struct trace_frame_buf *f);

/*
 * Compresses frames and appends them to the file, keeping the hash chain.
 * Used by one thread at a time: the appending thread (sync) or the worker
 * (async).
 */
struct trace_sink {
	const char *path;
	int fd;
	uint64_t off;		/* file size = where the next frame goes */
	uint64_t frames;	/* written = next sequence number */
	uint64_t raw_bytes;
	uint8_t chain[TRACE_HASH_SIZE];
	void *cctx;		/* ZSTD_CCtx */
	uint8_t *out;		/* frame header + compressed payload */
	size_t out_cap;
	bool failed;		/* sticky: the file ends in a broken state */
	char err[TRACE_ERR_MAX];
	void (*on_frame)(void *ctx, const struct trace_frame_info *fi);
	void *on_frame_ctx;
};

int trace_sink_init(struct trace_sink *s, const char *path, int fd,
		    uint64_t off, const uint8_t chain[TRACE_HASH_SIZE],
		    int level, size_t max_raw);
/* Compress, hash and write f with one write loop.  -1 and s->err. */
int trace_sink_put(struct trace_sink *s, const struct trace_frame_buf *f);
int trace_sink_trailer(struct trace_sink *s);
void trace_sink_fini(struct trace_sink *s);
/* write() until done; -1 with errno. */
int trace_write_full(int fd, const void *buf, size_t len);

/* ---- the async queue (trace_async.c) ---- */

struct trace_async;

/* Start the worker with `depth` spare buffers of `cap` bytes. */
struct trace_async *trace_async_start(struct trace_sink *sink, unsigned depth,
				      size_t cap, char *err, size_t errlen);
/*
 * Queue *buf for writing and replace it with an empty buffer (waiting for
 * one if all are in flight; *waited says so).  -1 if the worker has failed
 * (the frame is dropped, *buf is still replaced), the message in err.
 */
int trace_async_swap(struct trace_async *a, struct trace_frame_buf **buf,
		     bool *waited, char *err, size_t errlen);
/* Wait until the queue is empty and the worker idle.  -1 if it failed. */
int trace_async_drain(struct trace_async *a, char *err, size_t errlen);
/* The sink's file size changed before any frame (the header written after
 * the worker started): take it as the counters' base. */
void trace_async_rebase(struct trace_async *a);
/* Drain, stop and join the worker, free its buffers. */
int trace_async_stop(struct trace_async *a, char *err, size_t errlen);
/* The sink's frames, raw bytes and file size as of the last frame the
 * worker finished (safe to call while it runs). */
void trace_async_counts(struct trace_async *a, uint64_t *frames, uint64_t *raw_bytes, uint64_t *off);

#endif
