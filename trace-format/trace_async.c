/*
 * trace_async.c - a bounded queue of closed frames and the thread that
 * compresses and writes them, so that the thread appending events (the
 * vCPU's run loop) only encodes into memory.
 *
 * There are depth + 1 frame buffers: the one the appender fills and `depth`
 * spares.  A full buffer goes to the queue; the appender takes a spare, and
 * waits for the worker to return one when all are in flight.  That wait is
 * the back-pressure that bounds memory when the disk or the compressor is
 * slower than the guest.  One worker keeps the frames in order, which the
 * hash chain needs.  After a write error the worker keeps recycling
 * buffers (dropping their frames) so that the appender never waits for
 * ever; the error is reported at the next swap, drain or stop.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/quiet_thread.h"
#include "trace-format/trace_internal.h"

struct trace_async {
	struct trace_sink *sink;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t work;	/* worker: something queued, or stop */
	pthread_cond_t done;	/* appender: a spare came back, or idle */
	struct trace_frame_buf **queue;	/* ring of depth + 1 */
	unsigned qcap, qhead, qlen;
	struct trace_frame_buf **spare;	/* stack of depth */
	unsigned nspare;
	bool busy;		/* worker holds a frame outside the lock */
	/* The sink's counters after the last frame the worker finished: the
	 * worker writes the sink's own outside the lock. */
	uint64_t frames, raw_bytes, off;
	bool stop;
	bool failed;
	char err[TRACE_ERR_MAX];
};

static void *worker(void *arg)
{
	struct trace_async *a = arg;

	pthread_mutex_lock(&a->lock);
	for (;;) {
		struct trace_frame_buf *f;
		bool skip;
		int r = 0;

		while (!a->qlen && !a->stop)
			pthread_cond_wait(&a->work, &a->lock);
		if (!a->qlen)
			break;
		f = a->queue[a->qhead];
		a->qhead = (a->qhead + 1) % a->qcap;
		a->qlen--;
		a->busy = true;
		skip = a->failed;
		pthread_mutex_unlock(&a->lock);

		if (!skip)
			r = trace_sink_put(a->sink, f);

		pthread_mutex_lock(&a->lock);
		if (r && !a->failed) {
			a->failed = true;
			memcpy(a->err, a->sink->err, sizeof(a->err));
		}
		a->frames = a->sink->frames;
		a->raw_bytes = a->sink->raw_bytes;
		a->off = a->sink->off;
		f->len = 0;
		a->spare[a->nspare++] = f;
		a->busy = false;
		pthread_cond_broadcast(&a->done);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

static void free_async(struct trace_async *a)
{
	for (unsigned i = 0; i < a->nspare; i++)
		trace_frame_buf_free(a->spare[i]);
	free(a->spare);
	free(a->queue);
	pthread_cond_destroy(&a->done);
	pthread_cond_destroy(&a->work);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

struct trace_async *trace_async_start(struct trace_sink *sink, unsigned depth,
				      size_t cap, char *err, size_t errlen)
{
	struct trace_async *a = calloc(1, sizeof(*a));
	int e;

	if (!a)
		goto nomem;
	a->sink = sink;
	a->frames = sink->frames;
	a->raw_bytes = sink->raw_bytes;
	a->off = sink->off;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->work, NULL);
	pthread_cond_init(&a->done, NULL);
	a->qcap = depth + 1;
	a->queue = calloc(a->qcap, sizeof(*a->queue));
	a->spare = calloc(a->qcap, sizeof(*a->spare));
	if (!a->queue || !a->spare)
		goto nomem_free;
	for (unsigned i = 0; i < depth; i++) {
		struct trace_frame_buf *f = trace_frame_buf_new(cap);

		if (!f)
			goto nomem_free;
		a->spare[a->nspare++] = f;
	}
	/* The worker takes no signals: the recorder's are its vCPU thread's. */
	e = quiet_thread_start(&a->thread, worker, a);
	if (e) {
		errf(err, errlen, "%s: cannot start the writer thread: %s",
		     sink->path, strerror(e));
		free_async(a);
		return NULL;
	}
	a->started = true;
	return a;

nomem_free:
	free_async(a);
nomem:
	errf(err, errlen, "%s: out of memory", sink->path);
	return NULL;
}

int trace_async_swap(struct trace_async *a, struct trace_frame_buf **buf,
		     bool *waited, char *err, size_t errlen)
{
	int ret = 0;

	*waited = false;
	pthread_mutex_lock(&a->lock);
	a->queue[(a->qhead + a->qlen) % a->qcap] = *buf;
	a->qlen++;
	pthread_cond_signal(&a->work);
	while (!a->nspare) {
		*waited = true;
		pthread_cond_wait(&a->done, &a->lock);
	}
	*buf = a->spare[--a->nspare];
	if (a->failed) {
		errf(err, errlen, "%s", a->err);
		ret = -1;
	}
	pthread_mutex_unlock(&a->lock);
	return ret;
}

int trace_async_drain(struct trace_async *a, char *err, size_t errlen)
{
	int ret = 0;

	pthread_mutex_lock(&a->lock);
	while (a->qlen || a->busy)
		pthread_cond_wait(&a->done, &a->lock);
	if (a->failed) {
		errf(err, errlen, "%s", a->err);
		ret = -1;
	}
	pthread_mutex_unlock(&a->lock);
	return ret;
}

int trace_async_stop(struct trace_async *a, char *err, size_t errlen)
{
	int ret;

	if (!a)
		return 0;
	ret = trace_async_drain(a, err, errlen);
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_signal(&a->work);
	pthread_mutex_unlock(&a->lock);
	if (a->started)
		pthread_join(a->thread, NULL);
	free_async(a);
	return ret;
}

void trace_async_rebase(struct trace_async *a)
{
	pthread_mutex_lock(&a->lock);
	a->off = a->sink->off;
	pthread_mutex_unlock(&a->lock);
}

void trace_async_counts(struct trace_async *a, uint64_t *frames, uint64_t *raw_bytes, uint64_t *off)
{
	pthread_mutex_lock(&a->lock);
	*frames = a->frames;
	*raw_bytes = a->raw_bytes;
	*off = a->off;
	pthread_mutex_unlock(&a->lock);
}
