/*
 * trace_writer.c - the recording side: create the file, write the header,
 * encode events into the current frame, close frames by size, on request
 * or at the end, finish with END and the trailer.
 *
 * The appending thread only ever encodes into memory; closed frames go to
 * the sink (trace_sink.c) directly, or through the async queue
 * (trace_async.c) when opts.async, in which case compression and write()
 * happen on a worker thread.  Either way the bytes in the file are the
 * same: frame boundaries are decided here, on the appending thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "common/fsync_dir.h"
#include "trace-format/trace_internal.h"

#define QUEUE_FRAMES_DEFAULT	4
#define QUEUE_FRAMES_MAX	64

struct trace_writer {
	char *path;
	int fd;
	struct trace_writer_opts opts;
	struct trace_sink sink;
	struct trace_async *async;	/* NULL: synchronous */
	struct trace_async *parked;	/* after write_end: idle, to be stopped */
	struct trace_frame_buf *cur;	/* the frame being filled */
	uint64_t events, exits;		/* appended so far */
	uint64_t next_seq;
	uint64_t time_last;		/* CLOCK/TIMER never go back */
	uint64_t time_prev;		/* the current frame's delta base */
	uint64_t queue_waits;
	uint8_t header_hash[TRACE_HASH_SIZE];	/* SHA-256 of the file header */
	atomic_bool flush_req;
	bool failed;			/* sticky I/O failure */
	bool closed;
	bool end_written;	/* trace_writer_write_end succeeded: only the fsyncs remain */
	bool created;		/* prepare made the file (else force opened an old one) */
	bool begun;		/* the header is written: the file is a recording */
	char err[TRACE_ERR_MAX];
};

static int fail(struct trace_writer *w, const char *msg)
{
	if (msg != w->err)
		snprintf(w->err, sizeof(w->err), "%s", msg);
	w->failed = true;
	return -1;
}

static int check_opts(const char *path, struct trace_writer_opts *o,
		      char *err, size_t errlen)
{
	if (!o->zstd_level)
		o->zstd_level = 1;
	if (!o->frame_bytes)
		o->frame_bytes = TRACE_FRAME_BYTES_DEFAULT;
	if (!o->queue_frames)
		o->queue_frames = QUEUE_FRAMES_DEFAULT;
	if (o->zstd_level < ZSTD_minCLevel() ||
	    o->zstd_level > ZSTD_maxCLevel()) {
		errf(err, errlen, "%s: zstd level %d out of range [%d, %d]",
		     path, o->zstd_level, ZSTD_minCLevel(),
		     ZSTD_maxCLevel());
		return -1;
	}
	if (o->frame_bytes > TRACE_FRAME_BYTES_MAX) {
		errf(err, errlen, "%s: frame size %zu above the %u limit",
		     path, o->frame_bytes, TRACE_FRAME_BYTES_MAX);
		return -1;
	}
	if (o->queue_frames > QUEUE_FRAMES_MAX) {
		errf(err, errlen, "%s: queue of %u frames above the %u limit",
		     path, o->queue_frames, QUEUE_FRAMES_MAX);
		return -1;
	}
	return 0;
}

/*
 * Create the file, or with force open an existing one without truncating
 * it yet (trace_writer_begin does, so that a recorder that fails before
 * then leaves the old recording whole).
 */
static int create_file(struct trace_writer *w, char *err, size_t errlen)
{
	w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (w->fd >= 0) {
		w->created = true;
		return 0;
	}
	if (errno == EEXIST && w->opts.force)
		w->fd = open(w->path, O_WRONLY | O_CLOEXEC);
	if (w->fd >= 0)
		return 0;
	if (errno == EEXIST)
		errf(err, errlen,
		     "%s: file exists; not overwriting a recording (force to truncate it)",
		     w->path);
	else
		errf(err, errlen, "%s: open: %s", w->path, strerror(errno));
	return -1;
}

struct trace_writer *trace_writer_prepare(const char *path,
					  const struct trace_writer_opts *opts,
					  char *err, size_t errlen)
{
	struct trace_writer *w = calloc(1, sizeof(*w));
	static const uint8_t no_chain[TRACE_HASH_SIZE];

	if (!w) {
		errf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	w->fd = -1;
	if (opts)
		w->opts = *opts;
	atomic_init(&w->flush_req, false);
	if (check_opts(path, &w->opts, err, errlen))
		goto fail;
	w->path = strdup(path);
	/* Room for one more event after the frame has reached its size. */
	w->cur = trace_frame_buf_new(w->opts.frame_bytes + TRACE_EVENT_MAX_ENC);
	if (!w->path || !w->cur) {
		errf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	if (create_file(w, err, errlen))
		goto fail;
	/*
	 * The file's name is made durable now, so that close has only the
	 * contents to fsync: in the recorder this runs on a thread of its own
	 * while the VM is created, and the directory's fsync (0.1-0.5 ms
	 * here) is no longer one of the last things a recording waits for.
	 * A file that existed (force) is synced too: an earlier recorder
	 * may have died before its own directory fsync.
	 */
	if (fsync_parent_dir(w->path)) {
		errf(err, errlen, "%s: fsync of its directory: %s", w->path,
		     strerror(errno));
		goto fail;
	}
	/* Where frames start and the chain's first link: set by begin. */
	if (trace_sink_init(&w->sink, w->path, w->fd, 0, no_chain,
			    w->opts.zstd_level, w->cur->cap)) {
		errf(err, errlen, "%s", w->sink.err);
		goto fail;
	}
	w->sink.on_frame = w->opts.on_frame;
	w->sink.on_frame_ctx = w->opts.on_frame_ctx;
	if (w->opts.async) {
		w->async = trace_async_start(&w->sink, w->opts.queue_frames,
					     w->cur->cap, err, errlen);
		if (!w->async)
			goto fail;
	}
	return w;
fail:
	trace_writer_free(w);
	return NULL;
}

int trace_writer_begin(struct trace_writer *w, const struct trace_header *h,
		       char *err, size_t errlen)
{
	uint8_t *hb = NULL;
	char why[TRACE_ERR_MAX];
	size_t hlen;

	if (w->begun || w->failed) {
		errf(err, errlen, "%s: %s", w->path,
		     w->begun ? "the header was already written" : w->err);
		return -1;
	}
	if (trace_header_validate(h, why, sizeof(why))) {
		errf(err, errlen, "%s: %s", w->path, why);
		goto fail;
	}
	if (trace_header_get(h, TRACE_TAG_FRAME_HEADER_SIZE, NULL)) {
		/* Frames here are 96 bytes; the field is for later minors. */
		errf(err, errlen,
		     "%s: header field FRAME_HEADER_SIZE is reserved for the writer",
		     w->path);
		goto fail;
	}
	if (trace_header_encode(h, &hb, &hlen, why, sizeof(why))) {
		errf(err, errlen, "%s: %s", w->path, why);
		goto fail;
	}
	if (!w->created && ftruncate(w->fd, 0)) {
		errf(err, errlen, "%s: truncating the old recording: %s",
		     w->path, strerror(errno));
		goto fail;
	}
	if (trace_write_full(w->fd, hb, hlen)) {
		errf(err, errlen, "%s: header at offset 0: write: %s",
		     w->path, strerror(errno));
		goto fail;
	}
	/* From here on the file is a recording, to be left cut short. */
	w->begun = true;
	trace_sha256_2(hb, hlen, NULL, 0, w->header_hash);
	/* The worker reads these only with a frame, which comes later,
	 * through its queue's lock. */
	w->sink.off = hlen;
	memcpy(w->sink.chain, w->header_hash, TRACE_HASH_SIZE);
	if (w->async)
		trace_async_rebase(w->async);
	free(hb);
	return 0;
fail:
	free(hb);
	snprintf(w->err, sizeof(w->err), "%s", err);
	w->failed = true;
	return -1;
}

struct trace_writer *trace_writer_open(const char *path,
				       const struct trace_header *h,
				       const struct trace_writer_opts *opts,
				       char *err, size_t errlen)
{
	struct trace_writer *w = trace_writer_prepare(path, opts, err, errlen);

	if (w && trace_writer_begin(w, h, err, errlen)) {
		trace_writer_free(w);
		return NULL;
	}
	return w;
}

/* Hand the current frame to the sink (or queue); start an empty one. */
static int close_frame(struct trace_writer *w)
{
	struct trace_frame_buf *f = w->cur;
	bool waited;

	if (!f->events)
		return 0;
	f->seq = w->next_seq++;
	f->first_event = w->events - f->events;
	f->exit_base = w->exits - f->exits;
	w->time_prev = 0;	/* frames decode on their own */
	if (w->async) {
		int r = trace_async_swap(w->async, &w->cur, &waited, w->err,
					 sizeof(w->err));

		w->queue_waits += waited;
		w->cur->len = 0;
		w->cur->events = w->cur->exits = 0;
		return r ? fail(w, w->err) : 0;
	}
	if (trace_sink_put(&w->sink, f))
		return fail(w, w->sink.err);
	f->len = 0;
	f->events = f->exits = 0;
	return 0;
}

/* Encode ev into the current frame; the caller checks w->failed. */
static int encode(struct trace_writer *w, const struct trace_event *ev)
{
	struct trace_frame_buf *f = w->cur;
	const char *why;
	size_t n;

	if ((ev->type == TRACE_EV_CLOCK || ev->type == TRACE_EV_TIMER) &&
	    ev->time.ns < w->time_last) {
		snprintf(w->err, sizeof(w->err),
			 "%s: event %llu (%s): virtual time goes backwards (%llu < %llu)",
			 w->path, (unsigned long long)w->events,
			 trace_event_type_name(ev->type),
			 (unsigned long long)ev->time.ns,
			 (unsigned long long)w->time_last);
		return -1;
	}
	if (trace_event_encode(ev, &w->time_prev, f->raw + f->len, &n, &why)) {
		const char *name = trace_event_type_name(ev->type);

		snprintf(w->err, sizeof(w->err), "%s: event %llu (type 0x%02x%s%s): %s",
			 w->path, (unsigned long long)w->events, ev->type,
			 name ? " " : "", name ? name : "", why);
		return -1;
	}
	if (ev->type == TRACE_EV_CLOCK || ev->type == TRACE_EV_TIMER)
		w->time_last = ev->time.ns;
	f->len += n;
	f->events++;
	w->events++;
	if (trace_event_is_exit(ev->type)) {
		f->exits++;
		w->exits++;
	}
	return 0;
}

static int usable(struct trace_writer *w)
{
	if (w->failed)
		return -1;
	if (!w->begun) {
		snprintf(w->err, sizeof(w->err), "%s: the header is not written yet (trace_writer_begin)",
			 w->path);
		return -1;
	}
	if (w->closed) {
		snprintf(w->err, sizeof(w->err), "%s: writer already closed",
			 w->path);
		return -1;
	}
	return 0;
}

int trace_writer_append(struct trace_writer *w, const struct trace_event *ev)
{
	if (usable(w))
		return -1;
	if (ev->type == TRACE_EV_END) {
		snprintf(w->err, sizeof(w->err),
			 "%s: event %llu: END is written by trace_writer_close",
			 w->path, (unsigned long long)w->events);
		return -1;
	}
	/* A relaxed load is enough: a flush a little late is still a flush. */
	if (atomic_load_explicit(&w->flush_req, memory_order_relaxed)) {
		atomic_store_explicit(&w->flush_req, false,
				      memory_order_relaxed);
		if (close_frame(w))
			return -1;
	}
	if (encode(w, ev))
		return -1;
	if (w->cur->len >= w->opts.frame_bytes)
		return close_frame(w);
	return 0;
}

int trace_writer_flush(struct trace_writer *w)
{
	if (usable(w))
		return -1;
	atomic_store_explicit(&w->flush_req, false, memory_order_relaxed);
	return close_frame(w);
}

void trace_writer_request_flush(struct trace_writer *w)
{
	atomic_store_explicit(&w->flush_req, true, memory_order_relaxed);
}

int trace_writer_drain(struct trace_writer *w)
{
	if (usable(w))
		return -1;
	if (w->async && trace_async_drain(w->async, w->err, sizeof(w->err)))
		return fail(w, w->err);
	return 0;
}

int trace_writer_write_end(struct trace_writer *w, const struct trace_event *end)
{
	struct trace_event e;

	if (usable(w))
		return -1;
	if (w->end_written) {
		snprintf(w->err, sizeof(w->err), "%s: END was already written", w->path);
		return -1;
	}
	if (!end || end->type != TRACE_EV_END) {
		snprintf(w->err, sizeof(w->err),
			 "%s: trace_writer_close needs an END event", w->path);
		return -1;
	}
	e = *end;
	e.end.total_events = w->events + 1;	/* END counts itself */
	e.end.total_exits = w->exits;
	/* Always fits: a frame below frame_bytes has room for one event. */
	if (encode(w, &e))
		return fail(w, w->err);
	/*
	 * The frames already closed go first, on the thread; the last one is
	 * written here, with the thread idle, and the thread is joined only
	 * after the fsyncs (trace_writer_close).  Handing the last frame over
	 * and joining the thread here took 0.3-0.45 ms at the end of a short
	 * recording, the join alone a median of 0.33 ms while the VM's
	 * teardown ran (a thread's exit unmaps part of its stack, and the
	 * teardown holds the address space while it unmaps guest RAM; that
	 * is the likely cause, not measured); writing the frame here takes
	 * about 0.1 ms.
	 */
	if (w->async) {
		int r = trace_async_drain(w->async, w->err, sizeof(w->err));

		w->parked = w->async;
		w->async = NULL;
		if (r)
			return fail(w, w->err);
	}
	if (close_frame(w))
		return fail(w, w->err);
	if (trace_sink_trailer(&w->sink))
		return fail(w, w->sink.err);
	w->end_written = true;
	return 0;
}

int trace_writer_close(struct trace_writer *w, const struct trace_event *end)
{
	if (usable(w))
		return -1;
	/* With END written, only a NULL end is right (write_end refuses
	 * a second). */
	if ((!w->end_written || end) && trace_writer_write_end(w, end))
		return -1;
	if (fsync(w->fd)) {
		snprintf(w->err, sizeof(w->err), "%s: fsync: %s", w->path,
			 strerror(errno));
		return fail(w, w->err);
	}
	if (close(w->fd)) {
		w->fd = -1;
		snprintf(w->err, sizeof(w->err), "%s: close: %s", w->path,
			 strerror(errno));
		return fail(w, w->err);
	}
	w->fd = -1;
	/* The name was made durable by prepare. */
	trace_async_stop(w->parked, NULL, 0);	/* idle: nothing to report */
	w->parked = NULL;
	w->closed = true;
	return 0;
}

void trace_writer_free(struct trace_writer *w)
{
	if (!w)
		return;
	/* Frames already closed still reach the file; the rest is lost. */
	if (w->async)
		trace_async_stop(w->async, NULL, 0);
	trace_async_stop(w->parked, NULL, 0);
	trace_sink_fini(&w->sink);
	/*
	 * A file prepare made and no whole header went into is no
	 * recording: remove it (a regular file only, as it must be).
	 */
	if (w->fd >= 0 && w->created && !w->begun) {
		struct stat st;

		if (!fstat(w->fd, &st) && S_ISREG(st.st_mode))
			unlink(w->path);
	}
	if (w->fd >= 0)
		close(w->fd);
	trace_frame_buf_free(w->cur);
	free(w->path);
	free(w);
}

const char *trace_writer_error(const struct trace_writer *w)
{
	return w->err;
}

uint64_t trace_writer_events(const struct trace_writer *w)
{
	return w->events;
}

void trace_writer_stats(const struct trace_writer *w,
			struct trace_writer_stats *st)
{
	st->events = w->events;
	st->exits = w->exits;
	if (w->async) {
		/* The worker thread owns the sink while it runs. */
		trace_async_counts(w->async, &st->frames, &st->raw_bytes, &st->file_bytes);
	} else {
		st->frames = w->sink.frames;
		st->raw_bytes = w->sink.raw_bytes;
		st->file_bytes = w->sink.off;
	}
	st->queue_waits = w->queue_waits;
	st->pending_events = w->cur->events;
	st->pending_bytes = w->cur->len;
}

void trace_writer_header_hash(const struct trace_writer *w, uint8_t out[TRACE_HASH_SIZE])
{
	memcpy(out, w->header_hash, TRACE_HASH_SIZE);
}
