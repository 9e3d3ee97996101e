/*
 * trace_sink.c - turn a frame buffer into bytes in the file: compress the
 * payload, fill in the frame header (checksums, previous frame's hash),
 * write header and payload with one write loop, advance the hash chain.
 *
 * One frame is one contiguous buffer written in order, so the file only
 * ever ends inside a frame if the process dies during the write (the reader
 * reports that as "cut short").  When a write fails (ENOSPC, EIO) the
 * partial frame is cut off again with ftruncate, leaving the file ending at
 * a frame boundary, and the sink refuses everything after: a later frame
 * could not chain to one that is not in the file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "trace-format/trace_internal.h"

int trace_write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {	/* not expected from a regular file */
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int trace_sink_init(struct trace_sink *s, const char *path, int fd,
		    uint64_t off, const uint8_t chain[TRACE_HASH_SIZE],
		    int level, size_t max_raw)
{
	ZSTD_CCtx *cctx;
	size_t r;

	memset(s, 0, sizeof(*s));
	s->path = path;
	s->fd = fd;
	s->off = off;
	memcpy(s->chain, chain, TRACE_HASH_SIZE);
	cctx = ZSTD_createCCtx();
	if (!cctx) {
		errf(s->err, sizeof(s->err), "%s: out of memory", path);
		return -1;
	}
	s->cctx = cctx;
	r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
	if (ZSTD_isError(r)) {
		errf(s->err, sizeof(s->err), "%s: zstd level %d: %s",
		     path, level, ZSTD_getErrorName(r));
		return -1;
	}
	s->out_cap = TRACE_FRAME_HDR_SIZE + ZSTD_compressBound(max_raw);
	s->out = malloc(s->out_cap);
	if (!s->out) {
		errf(s->err, sizeof(s->err), "%s: out of memory", path);
		return -1;
	}
	return 0;
}

int trace_sink_put(struct trace_sink *s, const struct trace_frame_buf *f)
{
	struct trace_frame_hdr fh;
	uint8_t *payload = s->out + TRACE_FRAME_HDR_SIZE;
	size_t comp, total;

	if (s->failed)
		return -1;
	if (f->seq != s->frames || !f->events) {
		/* The appending side numbers frames; a gap is a bug here. */
		errf(s->err, sizeof(s->err),
		     "%s: frame %llu at offset %llu: internal error: expected sequence %llu",
		     s->path, (unsigned long long)f->seq,
		     (unsigned long long)s->off,
		     (unsigned long long)s->frames);
		s->failed = true;
		return -1;
	}
	comp = ZSTD_compress2(s->cctx, payload, s->out_cap - TRACE_FRAME_HDR_SIZE,
			      f->raw, f->len);
	if (ZSTD_isError(comp)) {
		errf(s->err, sizeof(s->err),
		     "%s: frame %llu at offset %llu: zstd: %s", s->path,
		     (unsigned long long)f->seq,
		     (unsigned long long)s->off, ZSTD_getErrorName(comp));
		s->failed = true;
		return -1;
	}
	fh.seq = f->seq;
	fh.first_event = f->first_event;
	fh.exit_base = f->exit_base;
	fh.events = f->events;
	fh.exits = f->exits;
	fh.comp_len = (uint32_t)comp;
	fh.raw_len = (uint32_t)f->len;
	fh.payload_xxh = XXH3_64bits(payload, comp);
	memcpy(fh.prev_hash, s->chain, TRACE_HASH_SIZE);
	trace_frame_hdr_pack(&fh, s->out);
	total = TRACE_FRAME_HDR_SIZE + comp;
	if (trace_write_full(s->fd, s->out, total)) {
		int e = errno;

		errf(s->err, sizeof(s->err),
		     "%s: frame %llu at offset %llu: write: %s", s->path,
		     (unsigned long long)f->seq,
		     (unsigned long long)s->off, strerror(e));
		s->failed = true;
		/* Best effort: leave the file ending at a frame boundary. */
		if (ftruncate(s->fd, (off_t)s->off) == 0)
			lseek(s->fd, (off_t)s->off, SEEK_SET);
		return -1;
	}
	if (s->on_frame) {
		struct trace_frame_info fi = {
			.offset = s->off, .seq = fh.seq, .first_event = fh.first_event,
			.exit_base = fh.exit_base, .events = fh.events, .exits = fh.exits,
			.comp_len = fh.comp_len, .raw_len = fh.raw_len,
		};
		memcpy(fi.prev_hash, fh.prev_hash, TRACE_HASH_SIZE);
		s->on_frame(s->on_frame_ctx, &fi);
	}
	trace_sha256_2(s->out, total, NULL, 0, s->chain);
	s->off += total;
	s->frames++;
	s->raw_bytes += f->len;
	return 0;
}

int trace_sink_trailer(struct trace_sink *s)
{
	uint8_t t[TRACE_TRAILER_SIZE];

	if (s->failed)
		return -1;
	trace_trailer_pack(s->frames, s->chain, t);
	if (trace_write_full(s->fd, t, sizeof(t))) {
		errf(s->err, sizeof(s->err),
		     "%s: trailer at offset %llu: write: %s", s->path,
		     (unsigned long long)s->off, strerror(errno));
		s->failed = true;
		return -1;
	}
	s->off += sizeof(t);
	return 0;
}

void trace_sink_fini(struct trace_sink *s)
{
	ZSTD_freeCCtx(s->cctx);
	free(s->out);
	s->cctx = NULL;
	s->out = NULL;
}
