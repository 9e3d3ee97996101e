/*
 * trace_reader.c - stream the events of a trace, one frame in memory at a
 * time, checking everything SPEC.md "How to verify" lists, in its order.
 *
 * A frame is checked whole (header, payload checksum, decompression, every
 * event decoded, counts, END placement) before its first event is handed
 * out, so a caller never sees an event of a frame that turns out to be bad
 * or incomplete.  The end of the file is classified as complete (END and a
 * valid trailer, then EOF), cut short (the file stops at a frame boundary
 * or inside a frame that was being written: what a killed recorder leaves;
 * or it ends in zeros that a power loss left, see torn()) or corrupt
 * (anything else).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "trace-format/trace_internal.h"

enum rd_state { RD_FRAMES, RD_TRAILER, RD_DONE, RD_FAILED };

struct trace_reader {
	char *path;
	int fd;
	struct trace_header *hdr;
	uint64_t hdr_len;
	uint32_t fh_size;	/* every frame header's size */
	ZSTD_DCtx *dctx;

	/* Where the next frame must be, and what it must say. */
	uint64_t off;
	uint64_t next_seq;
	uint64_t events;	/* events in the frames before it */
	uint64_t exits;
	bool exits_known;	/* false right after a seek */
	uint8_t chain[TRACE_HASH_SIZE];
	uint8_t header_hash[TRACE_HASH_SIZE];
	bool chain_known;
	uint64_t time_last;	/* latest CLOCK/TIMER value */
	bool time_known;

	/* The current frame. */
	bool have_frame;
	bool frame_has_end;
	struct trace_frame_info info;
	uint8_t hbuf[TRACE_FRAME_HDR_MAX];
	uint8_t *comp, *raw;
	size_t comp_cap, raw_cap;
	size_t pos;
	uint32_t left;
	uint64_t time_prev;
	uint64_t ev_ord, exit_ord;

	enum rd_state state;
	bool complete;
	uint64_t truncated_at;
	char err[TRACE_ERR_MAX];
};

/* pread until len bytes or EOF; the count, or -1 with errno. */
static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, p + done, len - done, (off_t)(off + done));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static int frame_err(struct trace_reader *r, uint64_t seq, uint64_t off,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int frame_err(struct trace_reader *r, uint64_t seq, uint64_t off,
		     const char *fmt, ...)
{
	char msg[TRACE_ERR_MAX / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(r->err, sizeof(r->err), "%s: frame %llu at offset %llu: %s",
		 r->path, (unsigned long long)seq, (unsigned long long)off, msg);
	r->state = RD_FAILED;
	return -1;
}

static int trailer_err(struct trace_reader *r, const char *msg)
{
	snprintf(r->err, sizeof(r->err), "%s: trailer at offset %llu: %s",
		 r->path, (unsigned long long)r->off, msg);
	r->state = RD_FAILED;
	return -1;
}

/* The recording stops at `off`: what a killed recorder leaves. */
static int cut_short(struct trace_reader *r, uint64_t off)
{
	r->state = RD_DONE;
	r->complete = false;
	r->truncated_at = off;
	return 0;
}

/*
 * Is everything from off to EOF zero?  A power loss can leave the end of
 * a file zero-filled; that is a cut-short recording, not tampering.
 */
static int tail_is_zero(struct trace_reader *r, uint64_t off)
{
	uint8_t buf[4096];

	for (;;) {
		ssize_t n = pread_full(r->fd, buf, sizeof(buf), off);

		if (n < 0)
			return -1;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i])
				return 0;
		if ((size_t)n < sizeof(buf))
			return 1;
		off += (uint64_t)n;
	}
}

/*
 * A magic or a checksum over bytes [start, end) failed: a torn write, if
 * their last 8 bytes (all of them, if fewer) and everything after are
 * zero.  The file's length reached the disk and its last data did not,
 * which a power loss can leave: cut short at `off`, the start of the frame
 * or trailer (SPEC.md section 10, "Torn writes").  Where a checksum ends
 * the range (frame header, trailer), genuine data ends in 8 zero bytes
 * about once in 2^64; a tear within those last 8 bytes is reported as
 * corruption, the safe side.
 * 1: torn; 0: not; -1: read error (errno).
 */
static int torn(struct trace_reader *r, uint64_t start, uint64_t end)
{
	return tail_is_zero(r, end - start >= 8 ? end - 8 : start);
}

/* The frame at off failed the check `msg` over [start, end): cut short if
 * torn (0), else the error (-1). */
static int frame_torn_or(struct trace_reader *r, uint64_t seq, uint64_t off,
			 uint64_t start, uint64_t end, const char *msg)
{
	int z = torn(r, start, end);

	if (z < 0)
		return frame_err(r, seq, off, "read: %s", strerror(errno));
	if (z)
		return cut_short(r, off);
	return frame_err(r, seq, off, "%s", msg);
}

/* The trailer's first `end - r->off` bytes failed the check `msg`: cut
 * short if torn (0), else the error (-1). */
static int trailer_torn_or(struct trace_reader *r, uint64_t end, const char *msg)
{
	int z = torn(r, r->off, end);

	if (z < 0)
		return trailer_err(r, strerror(errno));
	if (z)
		return cut_short(r, r->off);
	return trailer_err(r, msg);
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	uint8_t *nb;

	if (*cap >= need)
		return 0;
	nb = realloc(*buf, need);
	if (!nb)
		return -1;
	*buf = nb;
	*cap = need;
	return 0;
}

struct trace_reader *trace_reader_open(const char *path, char *err,
				       size_t errlen)
{
	struct trace_reader *r = calloc(1, sizeof(*r));
	uint8_t fixed[TRACE_FILE_FIXED], *hb = NULL;
	uint32_t body_len;
	uint64_t fhs;
	ssize_t n;
	char why[TRACE_ERR_MAX];

	if (!r) {
		errf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	r->fd = -1;
	r->path = strdup(path);
	if (!r->path) {
		errf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		errf(err, errlen, "%s: open: %s", path, strerror(errno));
		goto fail;
	}
	n = pread_full(r->fd, fixed, sizeof(fixed), 0);
	if (n < 0) {
		errf(err, errlen, "%s: read at offset 0: %s", path,
		     strerror(errno));
		goto fail;
	}
	if (n == 0) {
		errf(err, errlen,
		     "%s: empty file (no header: the recorder never started writing)",
		     path);
		goto fail;
	}
	if (trace_header_check_fixed(fixed, (size_t)n, &body_len, why,
				     sizeof(why))) {
		errf(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	r->hdr_len = TRACE_FILE_FIXED + (uint64_t)body_len + TRACE_FILE_CSUM;
	hb = malloc(r->hdr_len);
	if (!hb) {
		errf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	n = pread_full(r->fd, hb, r->hdr_len, 0);
	if (n < 0) {
		errf(err, errlen, "%s: read at offset 0: %s", path,
		     strerror(errno));
		goto fail;
	}
	r->hdr = trace_header_decode(hb, (size_t)n, why, sizeof(why));
	if (!r->hdr) {
		errf(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	r->fh_size = TRACE_FRAME_HDR_SIZE;
	if (!trace_header_get_u64(r->hdr, TRACE_TAG_FRAME_HEADER_SIZE, &fhs))
		r->fh_size = (uint32_t)fhs;	/* validated: 96..4096 */
	/* The chain starts from the header exactly as stored. */
	trace_sha256_2(hb, r->hdr_len, NULL, 0, r->chain);
	memcpy(r->header_hash, r->chain, TRACE_HASH_SIZE);
	r->chain_known = true;
	r->exits_known = true;
	r->time_known = true;
	r->off = r->hdr_len;
	r->dctx = ZSTD_createDCtx();
	if (!r->dctx) {
		errf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	free(hb);
	return r;
fail:
	free(hb);
	trace_reader_close(r);
	return NULL;
}

/*
 * Decode every event of the decompressed payload once: counts, END
 * placement and totals, time order.  Only then is the frame served.
 */
static int check_events(struct trace_reader *r,
			const struct trace_frame_hdr *fh, uint64_t off,
			bool *has_end)
{
	uint64_t tprev = 0, tlast = r->time_last;
	struct trace_event end = { 0 };
	uint32_t exits = 0;
	size_t pos = 0;

	*has_end = false;
	for (uint32_t i = 0; i < fh->events; i++) {
		struct trace_event ev;
		const char *why;
		size_t used;

		if (trace_event_decode(r->raw + pos, fh->raw_len - pos, &tprev,
				       &ev, &used, &why))
			return frame_err(r, fh->seq, off,
					 "event %llu (payload byte %zu): %s",
					 (unsigned long long)(fh->first_event + i),
					 pos, why);
		if ((ev.type == TRACE_EV_CLOCK || ev.type == TRACE_EV_TIMER)) {
			if (r->time_known && ev.time.ns < tlast)
				return frame_err(r, fh->seq, off,
						 "event %llu: virtual time goes backwards",
						 (unsigned long long)(fh->first_event + i));
			tlast = ev.time.ns;
		}
		exits += trace_event_is_exit(ev.type);
		if (ev.type == TRACE_EV_END) {
			if (i != fh->events - 1)
				return frame_err(r, fh->seq, off,
						 "event %llu: END record is not the last event",
						 (unsigned long long)(fh->first_event + i));
			end = ev;
			*has_end = true;
		}
		pos += used;
	}
	if (pos != fh->raw_len)
		return frame_err(r, fh->seq, off,
				 "%zu payload bytes after the last of %u events",
				 fh->raw_len - pos, fh->events);
	if (exits != fh->exits)
		return frame_err(r, fh->seq, off,
				 "payload holds %u exits, header says %u", exits,
				 fh->exits);
	if (*has_end && (end.end.total_events != fh->first_event + fh->events ||
			 end.end.total_exits != fh->exit_base + fh->exits))
		return frame_err(r, fh->seq, off,
				 "END record totals (%llu events, %llu exits) do not match the trace (%llu, %llu)",
				 (unsigned long long)end.end.total_events,
				 (unsigned long long)end.end.total_exits,
				 (unsigned long long)(fh->first_event + fh->events),
				 (unsigned long long)(fh->exit_base + fh->exits));
	r->time_last = tlast;
	r->time_known = true;
	return 0;
}

/* The frame header's own fields against what the reader expects. */
static int check_frame_hdr(struct trace_reader *r,
			   const struct trace_frame_hdr *fh, uint64_t seq,
			   uint64_t off)
{
	if (fh->seq != seq)
		return frame_err(r, seq, off,
				 "sequence number %llu, expected %llu (frame missing, duplicated or out of order)",
				 (unsigned long long)fh->seq,
				 (unsigned long long)seq);
	if (fh->first_event != r->events)
		return frame_err(r, seq, off,
				 "first event ordinal %llu, expected %llu",
				 (unsigned long long)fh->first_event,
				 (unsigned long long)r->events);
	if (r->exits_known && fh->exit_base != r->exits)
		return frame_err(r, seq, off,
				 "exit ordinal base %llu, expected %llu",
				 (unsigned long long)fh->exit_base,
				 (unsigned long long)r->exits);
	if (r->chain_known && memcmp(fh->prev_hash, r->chain, TRACE_HASH_SIZE))
		return frame_err(r, seq, off, seq == 0 && r->off == r->hdr_len
				 ? "chain hash mismatch: frame does not follow this file header"
				 : "chain hash mismatch: the previous frame was altered, removed or replaced");
	if (!fh->events)
		return frame_err(r, seq, off, "frame holds no events");
	if (fh->exits > fh->events)
		return frame_err(r, seq, off, "%u exits among %u events",
				 fh->exits, fh->events);
	if (fh->raw_len < fh->events || fh->raw_len > TRACE_FRAME_RAW_MAX)
		return frame_err(r, seq, off,
				 "uncompressed length %u impossible for %u events",
				 fh->raw_len, fh->events);
	if (!fh->comp_len || fh->comp_len > ZSTD_compressBound(fh->raw_len))
		return frame_err(r, seq, off,
				 "compressed length %u impossible for %u bytes",
				 fh->comp_len, fh->raw_len);
	if (fh->first_event > UINT64_MAX - fh->events ||
	    fh->exit_base > UINT64_MAX - fh->exits)
		return frame_err(r, seq, off, "ordinals overflow 64 bits");
	return 0;
}

/* Steps 24-25 (its checksum was checked): one zstd frame, raw_len bytes. */
static int payload(struct trace_reader *r, const struct trace_frame_hdr *fh,
		   uint64_t seq, uint64_t off)
{
	size_t n;

	/* Exactly one zstd frame: no trailing bytes hide in the payload. */
	n = ZSTD_findFrameCompressedSize(r->comp, fh->comp_len);
	if (ZSTD_isError(n) || n != fh->comp_len)
		return frame_err(r, seq, off,
				 "payload is not exactly one zstd frame");
	if (grow(&r->raw, &r->raw_cap, fh->raw_len))
		return frame_err(r, seq, off, "out of memory");
	n = ZSTD_decompressDCtx(r->dctx, r->raw, fh->raw_len, r->comp,
				fh->comp_len);
	if (ZSTD_isError(n))
		return frame_err(r, seq, off, "payload does not decompress to %u bytes: %s",
				 fh->raw_len, ZSTD_getErrorName(n));
	if (n != fh->raw_len)
		return frame_err(r, seq, off,
				 "payload decompresses to %zu bytes, header says %u",
				 n, fh->raw_len);
	return 0;
}

/* 1: a frame is loaded; 0: the file ends (cut short); -1: corrupt. */
static int load_frame(struct trace_reader *r)
{
	uint64_t off = r->off, seq = r->next_seq;
	uint32_t hs = r->fh_size;
	struct trace_frame_hdr fh;
	size_t want;
	ssize_t n;
	bool has_end;

	n = pread_full(r->fd, r->hbuf, hs, off);
	if (n < 0)
		return frame_err(r, seq, off, "read: %s", strerror(errno));
	if (n == 0)
		return cut_short(r, off);
	want = (size_t)n < TRACE_FRAME_MAGIC_LEN ? (size_t)n
						 : TRACE_FRAME_MAGIC_LEN;
	if (memcmp(r->hbuf, TRACE_FRAME_MAGIC, want)) {
		if ((size_t)n >= TRACE_TRAILER_MAGIC_LEN &&
		    !memcmp(r->hbuf, TRACE_TRAILER_MAGIC, TRACE_TRAILER_MAGIC_LEN))
			return frame_err(r, seq, off,
					 "trailer found, but no END record before it");
		return frame_torn_or(r, seq, off, off, off + (uint64_t)n, "bad frame magic");
	}
	/* A prefix of a frame: the write it came from never finished. */
	if ((size_t)n < hs)
		return cut_short(r, off);
	if (get_le32(r->hbuf + FH_HDR_SIZE) != hs) {
		char msg[64];

		snprintf(msg, sizeof(msg), "frame header size %u, expected %u",
			 get_le32(r->hbuf + FH_HDR_SIZE), hs);
		return frame_torn_or(r, seq, off, off, off + hs, msg);
	}
	if (trace_frame_hdr_xxh(r->hbuf, hs) != get_le64(r->hbuf + hs - 8))
		return frame_torn_or(r, seq, off, off, off + hs,
				     "frame header checksum mismatch");
	trace_frame_hdr_unpack(r->hbuf, &fh);
	if (check_frame_hdr(r, &fh, seq, off))
		return -1;
	if (grow(&r->comp, &r->comp_cap, fh.comp_len))
		return frame_err(r, seq, off, "out of memory");
	n = pread_full(r->fd, r->comp, fh.comp_len, off + hs);
	if (n < 0)
		return frame_err(r, seq, off, "read: %s", strerror(errno));
	if ((size_t)n < fh.comp_len)
		return cut_short(r, off);
	if (XXH3_64bits(r->comp, fh.comp_len) != fh.payload_xxh)
		return frame_torn_or(r, seq, off, off + hs, off + hs + fh.comp_len,
				     "payload checksum mismatch");
	if (payload(r, &fh, seq, off) || check_events(r, &fh, off, &has_end))
		return -1;

	/* The frame is good: it becomes the link the next one must name. */
	trace_sha256_2(r->hbuf, hs, r->comp, fh.comp_len, r->chain);
	r->chain_known = true;
	r->info.offset = off;
	r->info.seq = seq;
	r->info.first_event = fh.first_event;
	r->info.exit_base = fh.exit_base;
	r->info.events = fh.events;
	r->info.exits = fh.exits;
	r->info.comp_len = fh.comp_len;
	r->info.raw_len = fh.raw_len;
	memcpy(r->info.prev_hash, fh.prev_hash, TRACE_HASH_SIZE);
	r->off = off + hs + fh.comp_len;
	r->next_seq = seq + 1;
	r->events = fh.first_event + fh.events;
	r->exits = fh.exit_base + fh.exits;
	r->exits_known = true;
	r->have_frame = true;
	r->frame_has_end = has_end;
	r->pos = 0;
	r->left = fh.events;
	r->time_prev = 0;
	r->exit_ord = fh.exit_base;
	return 1;
}

/* After the END frame: the trailer, then nothing. */
static int read_trailer(struct trace_reader *r)
{
	uint8_t t[TRACE_TRAILER_SIZE + 1];
	ssize_t n = pread_full(r->fd, t, sizeof(t), r->off);
	size_t want;
	struct stat st;

	if (n < 0)
		return trailer_err(r, strerror(errno));
	if (n == 0)
		return cut_short(r, r->off);
	want = (size_t)n < TRACE_TRAILER_MAGIC_LEN ? (size_t)n
						   : TRACE_TRAILER_MAGIC_LEN;
	if (memcmp(t, TRACE_TRAILER_MAGIC, want)) {
		if ((size_t)n >= TRACE_FRAME_MAGIC_LEN &&
		    !memcmp(t, TRACE_FRAME_MAGIC, TRACE_FRAME_MAGIC_LEN))
			return trailer_err(r, "a frame follows the END record");
		return trailer_torn_or(r, r->off + ((size_t)n < TRACE_TRAILER_SIZE ? (size_t)n : TRACE_TRAILER_SIZE),
				       "bad trailer magic");
	}
	if ((size_t)n < TRACE_TRAILER_SIZE)
		return cut_short(r, r->off);
	if (XXH3_64bits(t, TR_XXH) != get_le64(t + TR_XXH))
		return trailer_torn_or(r, r->off + TRACE_TRAILER_SIZE, "trailer checksum mismatch");
	if (get_le64(t + TR_FRAMES) != r->next_seq) {
		char msg[128];

		snprintf(msg, sizeof(msg),
			 "trailer counts %llu frames, the file holds %llu",
			 (unsigned long long)get_le64(t + TR_FRAMES),
			 (unsigned long long)r->next_seq);
		return trailer_err(r, msg);
	}
	if (memcmp(t + TR_HASH, r->chain, TRACE_HASH_SIZE))
		return trailer_err(r, "final hash does not match the last frame");
	if (n > TRACE_TRAILER_SIZE) {
		char msg[128];
		uint64_t extra = 1;

		if (!fstat(r->fd, &st))
			extra = (uint64_t)st.st_size - r->off - TRACE_TRAILER_SIZE;
		snprintf(msg, sizeof(msg),
			 "%llu bytes of unexpected data after the trailer (from offset %llu)",
			 (unsigned long long)extra,
			 (unsigned long long)(r->off + TRACE_TRAILER_SIZE));
		return trailer_err(r, msg);
	}
	r->state = RD_DONE;
	r->complete = true;
	return 0;
}

int trace_reader_next(struct trace_reader *r, struct trace_event *ev)
{
	for (;;) {
		int ret;

		switch (r->state) {
		case RD_FAILED:
			return -1;
		case RD_DONE:
			return 0;
		case RD_TRAILER:
			return read_trailer(r);
		case RD_FRAMES:
			break;
		}
		if (r->have_frame && r->left) {
			const char *why;
			size_t used;

			/* Checked when loaded; a failure here is a bug. */
			if (trace_event_decode(r->raw + r->pos,
					       r->info.raw_len - r->pos,
					       &r->time_prev, ev, &used, &why))
				return frame_err(r, r->info.seq, r->info.offset,
						 "internal error: %s", why);
			r->ev_ord = r->info.first_event + r->info.events -
				    r->left;
			r->pos += used;
			r->left--;
			r->exit_ord += trace_event_is_exit(ev->type);
			return 1;
		}
		if (r->have_frame && r->frame_has_end) {
			r->state = RD_TRAILER;
			continue;
		}
		ret = load_frame(r);
		if (ret <= 0)
			return ret;
	}
}

bool trace_reader_complete(const struct trace_reader *r)
{
	return r->state == RD_DONE && r->complete;
}

uint64_t trace_reader_truncated_at(const struct trace_reader *r)
{
	return r->truncated_at;
}

int trace_reader_seek(struct trace_reader *r, uint64_t file_offset,
		      uint64_t seq, uint64_t first_event,
		      const uint8_t prev_hash[TRACE_HASH_SIZE])
{
	if (file_offset < r->hdr_len) {
		snprintf(r->err, sizeof(r->err),
			 "%s: seek to offset %llu: inside the file header",
			 r->path, (unsigned long long)file_offset);
		return -1;
	}
	r->off = file_offset;
	r->next_seq = seq;
	r->events = first_event;
	r->exits_known = false;
	r->chain_known = prev_hash != NULL;
	if (prev_hash)
		memcpy(r->chain, prev_hash, TRACE_HASH_SIZE);
	r->time_known = false;
	r->time_last = 0;
	r->have_frame = false;
	r->frame_has_end = false;
	r->state = RD_FRAMES;
	r->complete = false;
	r->truncated_at = 0;
	r->err[0] = 0;
	return 0;
}

uint64_t trace_reader_event_ordinal(const struct trace_reader *r)
{
	return r->ev_ord;
}

uint64_t trace_reader_exit_ordinal(const struct trace_reader *r)
{
	return r->exit_ord;
}

const struct trace_frame_info *trace_reader_frame(const struct trace_reader *r)
{
	return r->have_frame ? &r->info : NULL;
}

void trace_reader_chain_hash(const struct trace_reader *r,
			     uint8_t out[TRACE_HASH_SIZE])
{
	memcpy(out, r->chain, TRACE_HASH_SIZE);
}

const struct trace_header *trace_reader_header(const struct trace_reader *r)
{
	return r->hdr;
}

const char *trace_reader_error(const struct trace_reader *r)
{
	return r->err;
}

void trace_reader_close(struct trace_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	trace_header_free(r->hdr);
	ZSTD_freeDCtx(r->dctx);
	free(r->comp);
	free(r->raw);
	free(r->path);
	free(r);
}

void trace_reader_header_hash(const struct trace_reader *r, uint8_t out[TRACE_HASH_SIZE])
{
	memcpy(out, r->header_hash, TRACE_HASH_SIZE);
}
