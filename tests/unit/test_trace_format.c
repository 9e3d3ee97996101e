/*
 * test_trace_format.c - trace files end to end: round trips through the
 * writer and the reader (sync and async), the hash chain, the END record
 * and trailer, and every way a file can be damaged: cut short at each byte
 * (a killed recorder, including a real kill -9), a flipped bit anywhere,
 * removed, reordered or renumbered frames, garbage tails, a newer format.
 *
 * Events come from gen(i), a deterministic mix of every type, so a reader's
 * output can be checked event by event against what was written.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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
#include <xxhash.h>
#include <zstd.h>

#include "trace-format/trace_internal.h"

static int setup(void **state)
{
	(void)state;
	return test_dir_make("test_trace");
}

static int teardown(void **state)
{
	(void)state;
	return test_dir_remove();
}

/* ---- the event stream ---- */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

/* Event i of the reference stream; byte events point into scratch. */
static void gen(uint64_t i, struct trace_event *ev, uint8_t *scratch)
{
	uint64_t r = mix(i + 1);

	memset(ev, 0, sizeof(*ev));
	switch (i % 16) {
	case 0:
		ev->type = TRACE_EV_EXIT_IO;
		ev->io.flags = TRACE_IOF_WRITE;
		ev->io.port = 0x20;
		ev->io.count = 1;
		ev->io.value = r & 0xff;
		break;
	case 1:
		ev->type = TRACE_EV_EXIT_HLT;
		break;
	case 2:
	case 4:
	case 15:
		ev->type = i % 16 == 2 ? TRACE_EV_TIMER : TRACE_EV_CLOCK;
		ev->time.ns = i * 1000 + (i % 16 == 15 ? 0 : r % 500);
		break;
	case 3:
		ev->type = TRACE_EV_IRQ;
		ev->irq.vector = (uint8_t)r;
		break;
	case 5:
		ev->type = TRACE_EV_EXIT_MMIO;
		ev->mmio.flags = TRACE_IOF_SIZE(2);
		ev->mmio.gpa = 0xfee00000 + (r % 64) * 16;
		break;
	case 6:
		ev->type = TRACE_EV_EXIT_MMIO;
		ev->mmio.flags = TRACE_IOF_WRITE | TRACE_IOF_SIZE(3);
		ev->mmio.gpa = r;
		ev->mmio.value = mix(r);
		break;
	case 7:
		ev->type = TRACE_EV_EXIT_MSR;
		ev->msr.flags = TRACE_IOF_WRITE;
		ev->msr.index = 0x6e0;
		ev->msr.value = r;
		break;
	case 8:
		ev->type = TRACE_EV_EXIT_MSR;
		ev->msr.index = (uint32_t)r;
		break;
	case 9:
		ev->type = TRACE_EV_EXIT_LANDMARK;
		ev->landmark.progress = r % 100000;
		ev->landmark.rip = 0xffffffff81000000ull + (r & 0xffff);
		ev->landmark.regs_hash = mix(r);
		break;
	case 10:
	case 11:
		ev->type = i % 16 == 10 ? TRACE_EV_ENTROPY : TRACE_EV_CONSOLE_IN;
		ev->bytes.len = (uint32_t)(r % 97);
		for (uint32_t k = 0; k < ev->bytes.len; k++)
			scratch[k] = (uint8_t)(r >> (k % 8 * 8)) ^ (uint8_t)k;
		ev->bytes.data = scratch;
		break;
	case 12:
		ev->type = TRACE_EV_DIGEST;
		ev->digest.regs_hash = r;
		ev->digest.mem_hash.lo = mix(r + 1);
		ev->digest.mem_hash.hi = mix(r + 2);
		break;
	case 13:
		ev->type = TRACE_EV_EXIT_IO;
		ev->io.flags = TRACE_IOF_STRING | TRACE_IOF_SIZE(1);
		ev->io.port = 0x1f0;
		ev->io.count = (uint32_t)(r % 300 + 1);
		break;
	case 14:
		ev->type = TRACE_EV_EXIT_IO;
		ev->io.flags = TRACE_IOF_SIZE(0);
		ev->io.port = 0x71;
		ev->io.count = 1;
		break;
	}
}

static const struct trace_event the_end = {
	.type = TRACE_EV_END,
	.end = { TRACE_END_GUEST_EXIT, 3, 0, 0, 0xabcdef, { 1, 2 } },
};

static void assert_ev_equal(const struct trace_event *a,
			    const struct trace_event *b)
{
	assert_int_equal(a->type, b->type);
	switch (a->type) {
	case TRACE_EV_EXIT_IO:
		assert_int_equal(a->io.flags, b->io.flags);
		assert_int_equal(a->io.port, b->io.port);
		assert_int_equal(a->io.count, b->io.count);
		assert_true(a->io.value == b->io.value);
		break;
	case TRACE_EV_EXIT_MMIO:
		assert_int_equal(a->mmio.flags, b->mmio.flags);
		assert_true(a->mmio.gpa == b->mmio.gpa);
		assert_true(a->mmio.value == b->mmio.value);
		break;
	case TRACE_EV_EXIT_MSR:
		assert_int_equal(a->msr.flags, b->msr.flags);
		assert_int_equal(a->msr.index, b->msr.index);
		assert_true(a->msr.value == b->msr.value);
		break;
	case TRACE_EV_EXIT_LANDMARK:
		assert_true(a->landmark.progress == b->landmark.progress);
		assert_true(a->landmark.rip == b->landmark.rip);
		assert_true(a->landmark.regs_hash == b->landmark.regs_hash);
		break;
	case TRACE_EV_CLOCK:
	case TRACE_EV_TIMER:
		assert_true(a->time.ns == b->time.ns);
		break;
	case TRACE_EV_ENTROPY:
	case TRACE_EV_CONSOLE_IN:
		assert_int_equal(a->bytes.len, b->bytes.len);
		if (a->bytes.len)
			assert_memory_equal(a->bytes.data, b->bytes.data,
					    a->bytes.len);
		break;
	case TRACE_EV_IRQ:
		assert_int_equal(a->irq.vector, b->irq.vector);
		break;
	case TRACE_EV_DIGEST:
		assert_true(a->digest.regs_hash == b->digest.regs_hash);
		assert_true(a->digest.mem_hash.lo == b->digest.mem_hash.lo);
		assert_true(a->digest.mem_hash.hi == b->digest.mem_hash.hi);
		break;
	case TRACE_EV_END:
		assert_int_equal(a->end.reason, b->end.reason);
		assert_true(a->end.status == b->end.status);
		assert_true(a->end.regs_hash == b->end.regs_hash);
		assert_true(a->end.mem_hash.lo == b->end.mem_hash.lo);
		assert_true(a->end.mem_hash.hi == b->end.mem_hash.hi);
		break;
	}
}

/* ---- writing and reading ---- */

static struct trace_header *mkheader(void)
{
	struct trace_header *h = trace_header_new();
	struct kvm_cpuid_entry2 cpuid[2] = { { .function = 0 }, { .function = 1 } };
	struct trace_msr msr = { 0x10, 0, 0 };
	struct trace_hash128 kh = { 1, 2 };

	assert_non_null(h);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_DETVM_VERSION, "test"), 0);
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_MEM_SIZE, 32 << 20), 0);
	assert_int_equal(trace_header_add(h, TRACE_TAG_CPUID, cpuid, sizeof(cpuid)), 0);
	assert_int_equal(trace_header_add(h, TRACE_TAG_MSRS, &msr, sizeof(msr)), 0);
	assert_int_equal(trace_header_add_xsave(h, 576, 3), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_CMDLINE, "console=ttyS0"), 0);
	assert_int_equal(trace_header_add_file_id(h, TRACE_TAG_KERNEL_ID, 123, &kh, "k.elf"), 0);
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_BOOT_EPOCH_NS, 1700000000000000000ull), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_HOST, "test host"), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_PROGRESS_COUNTER, "none"), 0);
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_LANDMARK_BOUND_NS, 1000000), 0);
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_DIGEST_INTERVAL, 1000), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_BOOT_MODE, "elf64"), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_SERIAL_IN, "none"), 0);
	return h;
}

/*
 * Write events gen(0..n) with a flush every flush_every events (0: none),
 * then END unless !finish (the writer is then freed without close: a
 * cut-short file).
 */
static void write_n(const char *path, uint64_t n,
		    const struct trace_writer_opts *o, uint64_t flush_every,
		    bool finish, struct trace_writer_stats *st)
{
	struct trace_header *h = mkheader();
	struct trace_writer *w;
	struct trace_event ev;
	uint8_t scratch[128];
	char err[512];

	w = trace_writer_open(path, h, o, err, sizeof(err));
	if (!w)
		fail_msg("%s", err);
	for (uint64_t i = 0; i < n; i++) {
		gen(i, &ev, scratch);
		if (trace_writer_append(w, &ev))
			fail_msg("%s", trace_writer_error(w));
		if (flush_every && i % flush_every == flush_every - 1 &&
		    trace_writer_flush(w))
			fail_msg("%s", trace_writer_error(w));
	}
	if (finish && trace_writer_close(w, &the_end))
		fail_msg("%s", trace_writer_error(w));
	if (st)
		trace_writer_stats(w, st);
	trace_writer_free(w);
	trace_header_free(h);
}

struct readres {
	int ret;		/* last trace_reader_next() result */
	uint64_t events;	/* events returned, END included */
	bool end;		/* END was among them */
	bool complete;
	uint64_t truncated_at;
	char err[512];
};

/* Exits among gen(0..n). */
static uint64_t exits_before(uint64_t n)
{
	struct trace_event ev;
	uint8_t scratch[128];
	uint64_t x = 0;

	for (uint64_t i = 0; i < n; i++) {
		gen(i, &ev, scratch);
		x += trace_event_is_exit(ev.type);
	}
	return x;
}

/*
 * Read from where r stands to the end, checking every event against gen()
 * (from ordinal `first`) and its ordinals.  n: events before END.
 */
static void drain_check(struct trace_reader *r, uint64_t first, uint64_t n,
			struct readres *rr)
{
	struct trace_event ev, want;
	uint8_t scratch[128];
	uint64_t ord = first, exits = exits_before(first);

	memset(rr, 0, sizeof(*rr));
	while ((rr->ret = trace_reader_next(r, &ev)) > 0) {
		assert_false(rr->end);	/* nothing after END */
		assert_true(trace_reader_event_ordinal(r) == ord);
		if (ord == n) {
			assert_int_equal(ev.type, TRACE_EV_END);
			assert_ev_equal(&ev, &the_end);
			assert_true(ev.end.total_events == n + 1);
			assert_true(ev.end.total_exits == exits);
			rr->end = true;
		} else {
			assert_true(ord < n);
			gen(ord, &want, scratch);
			assert_ev_equal(&ev, &want);
			exits += trace_event_is_exit(ev.type);
		}
		assert_true(trace_reader_exit_ordinal(r) == exits);
		ord++;
		rr->events++;
	}
	rr->complete = trace_reader_complete(r);
	rr->truncated_at = trace_reader_truncated_at(r);
	snprintf(rr->err, sizeof(rr->err), "%s", trace_reader_error(r));
}

/* Open path and read it all; -2 in rr->ret if the open failed. */
static void read_check(const char *path, uint64_t n, struct readres *rr)
{
	char err[512];
	struct trace_reader *r = trace_reader_open(path, err, sizeof(err));

	if (!r) {
		memset(rr, 0, sizeof(*rr));
		rr->ret = -2;
		snprintf(rr->err, sizeof(rr->err), "%s", err);
		return;
	}
	drain_check(r, 0, n, rr);
	trace_reader_close(r);
}

struct fidx {
	uint64_t off, seq, first_event, exit_base;
	uint32_t events, size;
	uint8_t prev[TRACE_HASH_SIZE];
};

/* The frame index a tool would build while reading. */
static size_t index_frames(const char *path, struct fidx *fx, size_t max)
{
	char err[512];
	struct trace_reader *r = trace_reader_open(path, err, sizeof(err));
	struct trace_event ev;
	size_t n = 0;
	int ret;

	assert_non_null(r);
	while ((ret = trace_reader_next(r, &ev)) > 0) {
		const struct trace_frame_info *fi = trace_reader_frame(r);

		if (n && fx[n - 1].seq == fi->seq)
			continue;
		assert_true(n < max);
		fx[n].off = fi->offset;
		fx[n].seq = fi->seq;
		fx[n].first_event = fi->first_event;
		fx[n].exit_base = fi->exit_base;
		fx[n].events = fi->events;
		fx[n].size = TRACE_FRAME_HDR_SIZE + fi->comp_len;
		memcpy(fx[n].prev, fi->prev_hash, TRACE_HASH_SIZE);
		assert_true(fi->seq == n);
		n++;
	}
	assert_int_equal(ret, 0);
	trace_reader_close(r);
	return n;
}

/* verify() must fail with a message containing `want`. */
static void expect_corrupt(const char *path, const char *want)
{
	struct trace_verify_report rep;
	char err[512];

	assert_int_equal(trace_verify(path, &rep, err, sizeof(err)), -1);
	if (!strstr(err, want))
		fail_msg("expected \"%s\" in \"%s\"", want, err);
}

/* ---- round trips ---- */

static void test_roundtrip_small_frames(void **state)
{
	struct trace_writer_opts o = { .frame_bytes = 512 };
	struct trace_writer_stats st;
	struct trace_verify_report rep;
	struct readres rr;
	char p[128], err[512];
	struct fidx fx[4096];
	size_t nf, len;
	uint8_t *b;

	(void)state;
	tpath(p, sizeof(p), "small.trc");
	write_n(p, 20000, &o, 0, true, &st);
	read_check(p, 20000, &rr);
	assert_int_equal(rr.ret, 0);
	assert_true(rr.complete && rr.end);
	assert_true(rr.events == 20001);
	nf = index_frames(p, fx, 4096);
	assert_true(nf > 100);
	assert_true(st.frames == nf);
	assert_true(st.events == 20001);
	assert_true(st.exits == exits_before(20000));
	/* Frames tile the file exactly, then the trailer. */
	b = slurp(p, &len);
	for (size_t i = 0; i + 1 < nf; i++)
		assert_true(fx[i].off + fx[i].size == fx[i + 1].off);
	assert_true(fx[nf - 1].off + fx[nf - 1].size + TRACE_TRAILER_SIZE == len);
	assert_true(st.file_bytes == len);
	assert_int_equal(trace_verify(p, &rep, err, sizeof(err)), 0);
	assert_true(rep.frames == nf && rep.events == 20001);
	assert_true(rep.exits == st.exits);
	assert_true(rep.complete && rep.has_end);
	assert_int_equal(rep.end_reason, TRACE_END_GUEST_EXIT);
	assert_true(rep.end_status == 3);
	assert_true(rep.file_bytes == len);
	/* The fingerprint is the trailer's final hash. */
	assert_memory_equal(rep.final_hash, b + len - TRACE_TRAILER_SIZE + TR_HASH,
			    TRACE_HASH_SIZE);
	assert_int_equal(strlen(rep.final_hash_hex), 64);
	free(b);
}

static void test_roundtrip_default_frames(void **state)
{
	struct trace_verify_report rep;
	struct readres rr;
	char p[128], err[512];

	(void)state;
	tpath(p, sizeof(p), "default.trc");
	write_n(p, 300000, NULL, 0, true, NULL);
	read_check(p, 300000, &rr);
	assert_int_equal(rr.ret, 0);
	assert_true(rr.complete && rr.events == 300001);
	assert_int_equal(trace_verify(p, &rep, err, sizeof(err)), 0);
	assert_true(rep.frames > 10);
	assert_true(rep.raw_bytes >= rep.frames * (64 << 10) - (64 << 10));
}

/* One event per frame; and a trace that holds nothing but END. */
static void test_frame_extremes(void **state)
{
	struct trace_writer_opts one = { .frame_bytes = 1 };
	struct trace_verify_report rep;
	struct readres rr;
	char p[128], err[512];
	struct trace_event big = { .type = TRACE_EV_ENTROPY };
	static uint8_t data[TRACE_ENTROPY_MAX];
	struct trace_header *h = mkheader();
	struct trace_writer *w;

	(void)state;
	tpath(p, sizeof(p), "one.trc");
	write_n(p, 50, &one, 0, true, NULL);
	read_check(p, 50, &rr);
	assert_true(rr.complete && rr.events == 51);
	assert_int_equal(trace_verify(p, &rep, err, sizeof(err)), 0);
	assert_true(rep.frames == 51);

	tpath(p, sizeof(p), "empty.trc");
	write_n(p, 0, NULL, 0, true, NULL);
	read_check(p, 0, &rr);
	assert_true(rr.complete && rr.events == 1);

	/* Maximal events in a minimal frame size. */
	tpath(p, sizeof(p), "big.trc");
	w = trace_writer_open(p, h, &one, err, sizeof(err));
	assert_non_null(w);
	big.bytes.len = TRACE_ENTROPY_MAX;
	big.bytes.data = data;
	for (int i = 0; i < 3; i++)
		assert_int_equal(trace_writer_append(w, &big), 0);
	assert_int_equal(trace_writer_close(w, &the_end), 0);
	trace_writer_free(w);
	trace_header_free(h);
	assert_int_equal(trace_verify(p, &rep, err, sizeof(err)), 0);
	assert_true(rep.frames == 4 && rep.events == 4);
}

static void test_async_matches_sync(void **state)
{
	struct trace_writer_opts sync_o = { .frame_bytes = 4096 };
	struct trace_writer_opts async_o = { .frame_bytes = 4096, .async = true };
	struct trace_writer_opts async1 = { .frame_bytes = 4096, .async = true,
					    .queue_frames = 1 };
	struct readres rr;
	char p1[128], p2[128], p3[128];
	size_t l1, l2, l3;
	uint8_t *b1, *b2, *b3;

	(void)state;
	tpath(p1, sizeof(p1), "sync.trc");
	tpath(p2, sizeof(p2), "async.trc");
	tpath(p3, sizeof(p3), "async1.trc");
	write_n(p1, 100000, &sync_o, 777, true, NULL);
	write_n(p2, 100000, &async_o, 777, true, NULL);
	write_n(p3, 100000, &async1, 777, true, NULL);
	read_check(p2, 100000, &rr);
	assert_true(rr.complete && rr.events == 100001);
	/* Same frame boundaries, same compressor: the same bytes. */
	b1 = slurp(p1, &l1);
	b2 = slurp(p2, &l2);
	b3 = slurp(p3, &l3);
	assert_true(l1 == l2 && l1 == l3);
	assert_memory_equal(b1, b2, l1);
	assert_memory_equal(b1, b3, l1);
	free(b1);
	free(b2);
	free(b3);
}

static void test_flush_and_request(void **state)
{
	struct trace_writer_opts o[2] = { { 0 }, { .async = true } };
	struct trace_header *h = mkheader();
	struct trace_writer_stats st;
	struct trace_event ev;
	struct fidx fx[8];
	uint8_t scratch[128];
	char p[128], err[512];

	(void)state;
	for (int k = 0; k < 2; k++) {
		struct trace_writer *w;

		tpath(p, sizeof(p), k ? "flush_a.trc" : "flush_s.trc");
		w = trace_writer_open(p, h, &o[k], err, sizeof(err));
		assert_non_null(w);
		for (int i = 0; i < 5; i++) {
			gen((uint64_t)i, &ev, scratch);
			assert_int_equal(trace_writer_append(w, &ev), 0);
		}
		assert_int_equal(trace_writer_drain(w), 0);
		trace_writer_stats(w, &st);
		assert_true(st.frames == 0);
		assert_int_equal(trace_writer_flush(w), 0);
		assert_int_equal(trace_writer_flush(w), 0);	/* empty: nothing */
		assert_int_equal(trace_writer_drain(w), 0);
		trace_writer_stats(w, &st);
		assert_true(st.frames == 1);
		for (int i = 5; i < 8; i++) {
			gen((uint64_t)i, &ev, scratch);
			assert_int_equal(trace_writer_append(w, &ev), 0);
		}
		/* From "another thread": takes effect at the next append. */
		trace_writer_request_flush(w);
		gen(8, &ev, scratch);
		assert_int_equal(trace_writer_append(w, &ev), 0);
		assert_int_equal(trace_writer_drain(w), 0);
		trace_writer_stats(w, &st);
		assert_true(st.frames == 2 && st.events == 9);
		assert_true(trace_writer_events(w) == 9);
		assert_int_equal(trace_writer_close(w, &the_end), 0);
		trace_writer_free(w);
		assert_int_equal(index_frames(p, fx, 8), 3);
		assert_int_equal(fx[0].events, 5);
		assert_int_equal(fx[1].events, 3);
		assert_int_equal(fx[2].events, 2);	/* event 8 and END */
		assert_true(fx[2].first_event == 8);
		assert_true(fx[2].exit_base == exits_before(8));
	}
	trace_header_free(h);
}

/*
 * write_end leaves a whole trace in the kernel before any fsync (what the
 * recorder's checkpoint database may then say), and close only syncs it.
 */
static void test_write_end_then_close(void **state)
{
	struct trace_writer_opts opts[2] = { { .frame_bytes = 4096 }, { .frame_bytes = 4096, .async = true } };
	struct trace_verify_report rep;
	struct readres rr;
	char p[128], err[512];

	(void)state;
	for (int k = 0; k < 2; k++) {
		struct trace_header *h = mkheader();
		struct trace_event clk = { .type = TRACE_EV_CLOCK, .time = { 1000 } };
		struct trace_writer *w;

		tpath(p, sizeof(p), k ? "end_async.trc" : "end_sync.trc");
		w = trace_writer_open(p, h, &opts[k], err, sizeof(err));
		assert_non_null(w);
		for (uint64_t i = 0; i < 10; i++) {
			struct trace_event ev;
			uint8_t scratch[128];

			gen(i, &ev, scratch);
			assert_int_equal(trace_writer_append(w, &ev), 0);
		}
		assert_int_equal(trace_writer_write_end(w, NULL), -1);
		assert_non_null(strstr(trace_writer_error(w), "needs an END event"));
		assert_int_equal(trace_writer_write_end(w, &the_end), 0);
		/* Complete before the fsyncs. */
		assert_int_equal(trace_verify(p, &rep, err, sizeof(err)), 0);
		assert_true(rep.events == 11);
		read_check(p, 10, &rr);
		assert_true(rr.complete);
		assert_int_equal(trace_writer_write_end(w, &the_end), -1);
		assert_non_null(strstr(trace_writer_error(w), "END was already written"));
		assert_int_equal(trace_writer_append(w, &clk), -1);
		assert_int_equal(trace_writer_close(w, &the_end), -1);
		assert_non_null(strstr(trace_writer_error(w), "END was already written"));
		assert_int_equal(trace_writer_close(w, NULL), 0);
		assert_int_equal(trace_writer_close(w, NULL), -1);
		assert_non_null(strstr(trace_writer_error(w), "already closed"));
		trace_writer_free(w);
		trace_header_free(h);
		assert_int_equal(trace_verify(p, &rep, err, sizeof(err)), 0);
		assert_true(rep.events == 11);
	}
}

static void test_writer_rejects(void **state)
{
	struct trace_header *h = mkheader();
	struct trace_writer *w;
	struct trace_event ev = { .type = TRACE_EV_EXIT_IO,
				  .io = { TRACE_IOF_WRITE, 0x20, 1, 0x1ff } };
	struct trace_event clk = { .type = TRACE_EV_CLOCK, .time = { 1000 } };
	struct trace_verify_report rep;
	char p[128], err[512];

	(void)state;
	tpath(p, sizeof(p), "rejects.trc");
	w = trace_writer_open(p, h, NULL, err, sizeof(err));
	assert_non_null(w);
	assert_int_equal(trace_writer_append(w, &ev), -1);
	assert_non_null(strstr(trace_writer_error(w), "event 0 (type 0x01 EXIT_IO)"));
	assert_non_null(strstr(trace_writer_error(w), "wider than the access"));
	ev.type = 0x42;
	assert_int_equal(trace_writer_append(w, &ev), -1);
	assert_non_null(strstr(trace_writer_error(w), "unknown event type"));
	/* Still usable; time is checked across frame boundaries. */
	assert_int_equal(trace_writer_append(w, &clk), 0);
	assert_int_equal(trace_writer_flush(w), 0);
	clk.time.ns = 999;
	assert_int_equal(trace_writer_append(w, &clk), -1);
	assert_non_null(strstr(trace_writer_error(w), "goes backwards"));
	clk.time.ns = 1000;
	assert_int_equal(trace_writer_append(w, &clk), 0);
	assert_int_equal(trace_writer_append(w, &the_end), -1);
	assert_non_null(strstr(trace_writer_error(w), "trace_writer_close"));
	assert_int_equal(trace_writer_close(w, NULL), -1);
	assert_int_equal(trace_writer_close(w, &the_end), 0);
	assert_int_equal(trace_writer_append(w, &clk), -1);
	assert_non_null(strstr(trace_writer_error(w), "already closed"));
	trace_writer_free(w);
	assert_int_equal(trace_verify(p, &rep, err, sizeof(err)), 0);
	assert_true(rep.events == 3 && rep.frames == 2);

	/* Bad options and headers are refused before anything is created. */
	tpath(p, sizeof(p), "badopts.trc");
	{
		struct trace_writer_opts bad = { .frame_bytes = 64u << 20 };
		struct trace_writer_opts lvl = { .zstd_level = 1000 };

		assert_null(trace_writer_open(p, h, &bad, err, sizeof(err)));
		assert_non_null(strstr(err, "frame size"));
		assert_null(trace_writer_open(p, h, &lvl, err, sizeof(err)));
		assert_non_null(strstr(err, "zstd level"));
		assert_int_equal(trace_header_add(h, TRACE_TAG_FRAME_HEADER_SIZE,
						  "\x60\0\0\0\0\0\0\0", 8), 0);
		assert_null(trace_writer_open(p, h, NULL, err, sizeof(err)));
		assert_non_null(strstr(err, "reserved for the writer"));
		assert_int_equal(access(p, F_OK), -1);
	}
	trace_header_free(h);
}

static void test_oexcl(void **state)
{
	struct trace_writer_opts force = { .force = true };
	struct trace_header *h = mkheader();
	struct readres rr;
	char p[128], err[512];
	size_t l1, l2;
	uint8_t *b1, *b2;

	(void)state;
	tpath(p, sizeof(p), "excl.trc");
	write_n(p, 1000, NULL, 0, true, NULL);
	b1 = slurp(p, &l1);
	assert_null(trace_writer_open(p, h, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "file exists; not overwriting a recording"));
	b2 = slurp(p, &l2);
	assert_true(l1 == l2);
	assert_memory_equal(b1, b2, l1);
	free(b1);
	free(b2);
	/* With force, the old recording is truncated and replaced. */
	write_n(p, 10, &force, 0, true, NULL);
	read_check(p, 10, &rr);
	assert_true(rr.complete && rr.events == 11);
	trace_header_free(h);
}

/*
 * trace_writer_prepare, then begin (the recorder prepares while the VM is
 * created): nothing is destroyed before begin, nothing is left behind by a
 * writer freed before it, and nothing but begin is accepted before it.
 */
static void test_prepare_begin(void **state)
{
	struct trace_writer_opts opts[2] = { { .frame_bytes = 4096 }, { .frame_bytes = 4096, .async = true } };
	struct trace_event clk = { .type = TRACE_EV_CLOCK, .time = { 1000 } };
	struct trace_writer_stats st;
	struct readres rr;
	struct stat sb;
	char p[128], err[512];
	size_t l1, l2;
	uint8_t *b1, *b2;

	(void)state;
	for (int k = 0; k < 2; k++) {
		struct trace_header *h = mkheader();
		struct trace_writer *w;

		/* A new file: made by prepare, removed if never begun. */
		tpath(p, sizeof(p), k ? "prep_async.trc" : "prep_sync.trc");
		unlink(p);
		w = trace_writer_prepare(p, &opts[k], err, sizeof(err));
		assert_non_null(w);
		assert_int_equal(stat(p, &sb), 0);
		assert_true(sb.st_size == 0);
		assert_int_equal(trace_writer_append(w, &clk), -1);
		assert_non_null(strstr(trace_writer_error(w), "header is not written yet"));
		assert_int_equal(trace_writer_write_end(w, &the_end), -1);
		assert_int_equal(trace_writer_close(w, &the_end), -1);
		trace_writer_free(w);
		assert_int_equal(stat(p, &sb), -1);
		assert_int_equal(errno, ENOENT);

		/* A header begin refuses: the writer fails, the file it made
		 * goes. */
		w = trace_writer_prepare(p, &opts[k], err, sizeof(err));
		assert_non_null(w);
		struct trace_header *bad = mkheader();
		assert_int_equal(trace_header_add_u64(bad, TRACE_TAG_FRAME_HEADER_SIZE, 96), 0);
		assert_int_equal(trace_writer_begin(w, bad, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "FRAME_HEADER_SIZE is reserved"));
		trace_header_free(bad);
		assert_int_equal(trace_writer_append(w, &clk), -1);
		trace_writer_free(w);
		assert_int_equal(stat(p, &sb), -1);

		/* Begun: a recording like trace_writer_open's; begin once. */
		w = trace_writer_prepare(p, &opts[k], err, sizeof(err));
		assert_non_null(w);
		assert_int_equal(trace_writer_begin(w, h, err, sizeof(err)), 0);
		assert_int_equal(trace_writer_begin(w, h, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "already written"));
		for (uint64_t i = 0; i < 10; i++) {
			struct trace_event ev;
			uint8_t scratch[128];

			gen(i, &ev, scratch);
			assert_int_equal(trace_writer_append(w, &ev), 0);
		}
		assert_int_equal(trace_writer_write_end(w, &the_end), 0);
		/* The file's figures are exact once END is written (async:
		 * the last frame was written on this thread). */
		trace_writer_stats(w, &st);
		assert_int_equal(stat(p, &sb), 0);
		assert_true(st.file_bytes == (uint64_t)sb.st_size);
		assert_true(st.frames >= 1 && st.events == 11);
		assert_int_equal(trace_writer_close(w, NULL), 0);
		trace_writer_free(w);
		read_check(p, 10, &rr);
		assert_true(rr.complete && rr.events == 11);

		/* Without force an existing file is refused by prepare. */
		b1 = slurp(p, &l1);
		assert_null(trace_writer_prepare(p, &opts[k], err, sizeof(err)));
		assert_non_null(strstr(err, "file exists; not overwriting a recording"));

		/* With force, prepare leaves it whole; freed unbegun, so is it. */
		struct trace_writer_opts fo = opts[k];
		fo.force = true;
		w = trace_writer_prepare(p, &fo, err, sizeof(err));
		assert_non_null(w);
		b2 = slurp(p, &l2);
		assert_true(l1 == l2);
		assert_memory_equal(b1, b2, l1);
		free(b2);
		trace_writer_free(w);
		b2 = slurp(p, &l2);
		assert_true(l1 == l2);
		assert_memory_equal(b1, b2, l1);
		free(b2);
		free(b1);

		/* Begun with force: the old recording is replaced. */
		w = trace_writer_prepare(p, &fo, err, sizeof(err));
		assert_non_null(w);
		assert_int_equal(trace_writer_begin(w, h, err, sizeof(err)), 0);
		assert_int_equal(trace_writer_close(w, &the_end), 0);
		trace_writer_free(w);
		read_check(p, 0, &rr);
		assert_true(rr.complete && rr.events == 1);
		trace_header_free(h);
	}
}

static void test_open_errors(void **state)
{
	char p[128], err[512];
	uint8_t b[64] = "DETVMTRC\x01\x00\x00\x00\x10\x00\x00\x00";

	(void)state;
	tpath(p, sizeof(p), "missing.trc");
	assert_null(trace_reader_open(p, err, sizeof(err)));
	assert_non_null(strstr(err, "No such file"));
	tpath(p, sizeof(p), "zero.trc");
	spew(p, b, 0);
	assert_null(trace_reader_open(p, err, sizeof(err)));
	assert_non_null(strstr(err, "empty file"));
	spew(p, "#!/bin/sh\necho hi\n", 18);
	assert_null(trace_reader_open(p, err, sizeof(err)));
	assert_non_null(strstr(err, "not a detvm trace"));
	spew(p, b, 20);		/* body says 16 bytes, has 4 */
	assert_null(trace_reader_open(p, err, sizeof(err)));
	assert_non_null(strstr(err, "file header cut short"));
}

/* ---- a killed recorder ---- */

static void test_truncate_every_offset(void **state)
{
	struct trace_writer_opts o = { .frame_bytes = 200 };
	struct fidx fx[1024];
	struct readres rr;
	char p[128], c[128];
	size_t nf, len, hlen, first;
	uint8_t *b;

	(void)state;
	tpath(p, sizeof(p), "whole.trc");
	tpath(c, sizeof(c), "cut.trc");
	write_n(p, 600, &o, 0, true, NULL);
	nf = index_frames(p, fx, 1024);
	assert_true(nf >= 8);
	b = slurp(p, &len);
	hlen = (size_t)fx[0].off;
	/* Inside the file header: not a trace (yet). */
	for (size_t t = 1; t < hlen; t += 7) {
		spew(c, b, t);
		read_check(c, 600, &rr);
		assert_int_equal(rr.ret, -2);
	}
	/*
	 * From the header's end through the last three frames and the
	 * trailer: exactly the whole frames' events, then "cut short" at
	 * the start of the first incomplete frame.  (Every offset of the
	 * first frames too: cheap enough.)
	 */
	first = (size_t)fx[nf - 3].off;
	for (size_t t = hlen; t <= len; t++) {
		uint64_t want_events = 0, want_at = hlen;

		if (t > hlen + 400 && t < first)
			continue;
		for (size_t i = 0; i < nf; i++)
			if (fx[i].off + fx[i].size <= t) {
				want_events = fx[i].first_event + fx[i].events;
				want_at = fx[i].off + fx[i].size;
			}
		spew(c, b, t);
		read_check(c, 600, &rr);
		if (rr.ret)
			fail_msg("cut at %zu: %s", t, rr.err);
		assert_true(rr.events == want_events);
		if (t == len) {
			assert_true(rr.complete);
		} else {
			assert_false(rr.complete);
			assert_true(rr.truncated_at == want_at);
		}
	}
	free(b);
}

/* A zero-filled tail (power loss) is cut short, not corruption. */
static void test_zero_tail(void **state)
{
	struct trace_writer_opts o = { .frame_bytes = 200 };
	struct fidx fx[256];
	struct readres rr;
	char p[128], c[128];
	size_t nf, len, cut;
	uint8_t *b;

	(void)state;
	tpath(p, sizeof(p), "zt.trc");
	tpath(c, sizeof(c), "zt_cut.trc");
	write_n(p, 300, &o, 0, true, NULL);
	nf = index_frames(p, fx, 256);
	b = slurp(p, &len);
	cut = (size_t)fx[nf / 2].off;
	memset(b + cut, 0, len - cut);
	spew(c, b, len);
	read_check(c, 300, &rr);
	assert_int_equal(rr.ret, 0);
	assert_false(rr.complete);
	assert_true(rr.truncated_at == cut);
	assert_true(rr.events == fx[nf / 2].first_event);
	free(b);
}

/* A real kill -9 of a recorder writing asynchronously. */
static void test_kill9(void **state)
{
	struct trace_verify_report rep;
	struct readres rr;
	char p[128], err[512];
	struct stat st;
	pid_t pid;
	int status;

	(void)state;
	tpath(p, sizeof(p), "killed.trc");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct trace_writer_opts o = { .async = true, .frame_bytes = 8192 };
		struct trace_header *h = mkheader();
		struct trace_writer *w = trace_writer_open(p, h, &o, NULL, 0);
		struct trace_event ev;
		uint8_t scratch[128];

		if (!w)
			_exit(2);
		for (uint64_t i = 0; i < 200000000; i++) {
			gen(i, &ev, scratch);
			if (trace_writer_append(w, &ev))
				_exit(3);
			if (i % 997 == 0 && trace_writer_flush(w))
				_exit(4);
		}
		_exit(5);
	}
	for (int i = 0; i < 300; i++) {
		if (!stat(p, &st) && st.st_size > (1 << 20))
			break;
		usleep(10000);
	}
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	read_check(p, UINT64_MAX, &rr);
	if (rr.ret)
		fail_msg("%s", rr.err);
	assert_false(rr.complete || rr.end);
	assert_true(rr.events > 1000);
	assert_int_equal(trace_verify(p, &rep, err, sizeof(err)), 1);
	assert_true(rep.events == rr.events);
	assert_non_null(strstr(err, "cut short at offset"));
}

/* A write error (file size limit) leaves whole frames only. */
static void test_write_error(void **state)
{
	struct trace_writer_opts o[2] = { { .frame_bytes = 1000 },
					  { .frame_bytes = 1000, .async = true } };
	struct trace_header *h = mkheader();
	struct trace_verify_report rep;
	struct rlimit old, lim;
	struct readres rr;
	char p[128], err[512];

	(void)state;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	for (int k = 0; k < 2; k++) {
		struct trace_writer *w;
		struct trace_event ev;
		uint8_t scratch[128];
		uint64_t i;
		int r = 0;

		tpath(p, sizeof(p), k ? "efbig_a.trc" : "efbig_s.trc");
		w = trace_writer_open(p, h, &o[k], err, sizeof(err));
		assert_non_null(w);
		lim = old;
		lim.rlim_cur = 5000;
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
		for (i = 0; i < 100000 && !r; i++) {
			gen(i, &ev, scratch);
			r = trace_writer_append(w, &ev);
		}
		if (!r)
			r = trace_writer_close(w, &the_end);
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
		assert_int_equal(r, -1);
		assert_non_null(strstr(trace_writer_error(w), "File too large"));
		assert_non_null(strstr(trace_writer_error(w), " at offset "));
		/* Sticky. */
		assert_int_equal(trace_writer_flush(w), -1);
		assert_int_equal(trace_writer_close(w, &the_end), -1);
		trace_writer_free(w);
		read_check(p, UINT64_MAX, &rr);
		assert_int_equal(rr.ret, 0);
		assert_false(rr.complete);
		assert_true(rr.events > 0);
		assert_int_equal(trace_verify(p, &rep, err, sizeof(err)), 1);
		assert_true(rep.file_bytes == rep.truncated_at);
	}
	signal(SIGXFSZ, SIG_DFL);
	trace_header_free(h);
}

/* ---- damage ---- */

static void test_flip_every_byte(void **state)
{
	struct trace_writer_opts o = { .frame_bytes = 100 };
	static const uint8_t masks[] = { 0x01, 0x80, 0xff };
	struct trace_verify_report rep;
	char p[128], c[128], err[512];
	size_t len;
	uint8_t *b;

	(void)state;
	tpath(p, sizeof(p), "flip.trc");
	tpath(c, sizeof(c), "flipped.trc");
	write_n(p, 60, &o, 0, true, NULL);
	b = slurp(p, &len);
	for (size_t i = 0; i < len; i++)
		for (size_t m = 0; m < sizeof(masks); m++) {
			int r;

			b[i] ^= masks[m];
			spew(c, b, len);
			b[i] ^= masks[m];
			r = trace_verify(c, &rep, err, sizeof(err));
			if (r != -1)
				fail_msg("flip 0x%02x at %zu of %zu: verify %d (%s)",
					 masks[m], i, len, r, err);
		}
	free(b);
}

static void test_flip_messages(void **state)
{
	struct trace_writer_opts o = { .frame_bytes = 300 };
	struct fidx fx[64];
	char p[128], c[128], want[256];
	size_t len, nf;
	uint8_t *b;

	(void)state;
	tpath(p, sizeof(p), "msg.trc");
	tpath(c, sizeof(c), "msg_bad.trc");
	write_n(p, 200, &o, 0, true, NULL);
	nf = index_frames(p, fx, 64);
	assert_true(nf >= 4);
	b = slurp(p, &len);

	b[fx[1].off + TRACE_FRAME_HDR_SIZE + 3] ^= 0x10;
	spew(c, b, len);
	b[fx[1].off + TRACE_FRAME_HDR_SIZE + 3] ^= 0x10;
	snprintf(want, sizeof(want), "%s: frame 1 at offset %llu: payload checksum mismatch",
		 c, (unsigned long long)fx[1].off);
	expect_corrupt(c, want);

	b[fx[2].off + FH_SEQ] ^= 1;
	spew(c, b, len);
	b[fx[2].off + FH_SEQ] ^= 1;
	snprintf(want, sizeof(want), "frame 2 at offset %llu: frame header checksum mismatch",
		 (unsigned long long)fx[2].off);
	expect_corrupt(c, want);

	b[fx[1].off + FH_PREV_HASH + 5] ^= 1;
	spew(c, b, len);
	b[fx[1].off + FH_PREV_HASH + 5] ^= 1;
	expect_corrupt(c, "frame 1 at offset");

	b[fx[3].off] = 'X';
	spew(c, b, len);
	b[fx[3].off] = 'D';
	snprintf(want, sizeof(want), "frame 3 at offset %llu: bad frame magic",
		 (unsigned long long)fx[3].off);
	expect_corrupt(c, want);

	b[fx[1].off + FH_HDR_SIZE] ^= 0x80;
	spew(c, b, len);
	b[fx[1].off + FH_HDR_SIZE] ^= 0x80;
	expect_corrupt(c, "frame 1 at offset");

	b[len - TRACE_TRAILER_SIZE + TR_HASH] ^= 4;
	spew(c, b, len);
	b[len - TRACE_TRAILER_SIZE + TR_HASH] ^= 4;
	snprintf(want, sizeof(want), "trailer at offset %zu: trailer checksum mismatch",
		 len - TRACE_TRAILER_SIZE);
	expect_corrupt(c, want);

	b[40] ^= 1;	/* inside a TLV value */
	spew(c, b, len);
	b[40] ^= 1;
	expect_corrupt(c, "file header checksum mismatch");
	free(b);
}

/* Write buf without frame k. */
static void drop_frame(const char *out, const uint8_t *b, size_t len,
		   const struct fidx *fx, size_t k)
{
	uint8_t *n = malloc(len);
	size_t pos;

	assert_non_null(n);
	memcpy(n, b, (size_t)fx[k].off);
	pos = (size_t)fx[k].off;
	memcpy(n + pos, b + fx[k].off + fx[k].size,
	       len - (size_t)fx[k].off - fx[k].size);
	pos += len - (size_t)fx[k].off - fx[k].size;
	spew(out, n, pos);
	free(n);
}

static void test_removed_and_reordered(void **state)
{
	struct trace_writer_opts o = { .frame_bytes = 300 };
	struct fidx fx[64];
	char p[128], c[128], want[256];
	size_t len, nf;
	uint8_t *b, *s;

	(void)state;
	tpath(p, sizeof(p), "rm.trc");
	tpath(c, sizeof(c), "rm_bad.trc");
	write_n(p, 200, &o, 0, true, NULL);
	nf = index_frames(p, fx, 64);
	b = slurp(p, &len);

	drop_frame(c, b, len, fx, 1);
	snprintf(want, sizeof(want), "frame 1 at offset %llu: sequence number 2, expected 1",
		 (unsigned long long)fx[1].off);
	expect_corrupt(c, want);

	drop_frame(c, b, len, fx, 0);
	expect_corrupt(c, "frame 0 at offset");

	/* Without the END frame the trailer has nothing to close. */
	drop_frame(c, b, len, fx, nf - 1);
	expect_corrupt(c, "trailer found, but no END record before it");

	/* Swap frames 1 and 2. */
	s = malloc(len);
	assert_non_null(s);
	memcpy(s, b, len);
	memcpy(s + fx[1].off, b + fx[2].off, fx[2].size);
	memcpy(s + fx[1].off + fx[2].size, b + fx[1].off, fx[1].size);
	spew(c, s, len);
	snprintf(want, sizeof(want), "frame 1 at offset %llu: sequence number 2, expected 1",
		 (unsigned long long)fx[1].off);
	expect_corrupt(c, want);

	/* A frame missing in the middle. */
	drop_frame(c, b, len, fx, 2);
	snprintf(want, sizeof(want), "frame 2 at offset %llu: sequence number 3, expected 2",
		 (unsigned long long)fx[2].off);
	expect_corrupt(c, want);
	free(s);
	free(b);
}

/*
 * A forger removes frame 1 and renumbers what follows, recomputing the
 * frame header checksums: only the hash chain can tell.
 */
static void test_renumbered_forgery(void **state)
{
	struct trace_writer_opts o = { .frame_bytes = 300 };
	struct fidx fx[64];
	char p[128], c[128], want[256];
	size_t len, nf, pos;
	uint8_t *b, *n;
	uint64_t ev1, ex1;

	(void)state;
	tpath(p, sizeof(p), "forge.trc");
	tpath(c, sizeof(c), "forged.trc");
	write_n(p, 200, &o, 0, true, NULL);
	nf = index_frames(p, fx, 64);
	b = slurp(p, &len);
	n = malloc(len);
	assert_non_null(n);
	memcpy(n, b, (size_t)fx[1].off);
	pos = (size_t)fx[1].off;
	ev1 = fx[1].events;
	ex1 = fx[2].exit_base - fx[1].exit_base;
	for (size_t i = 2; i < nf; i++) {
		uint8_t *h = n + pos;

		memcpy(h, b + fx[i].off, fx[i].size);
		put_le64(h + FH_SEQ, fx[i].seq - 1);
		put_le64(h + FH_FIRST_EVENT, fx[i].first_event - ev1);
		put_le64(h + FH_EXIT_BASE, fx[i].exit_base - ex1);
		put_le64(h + FH_HDR_XXH, trace_frame_hdr_xxh(h, TRACE_FRAME_HDR_SIZE));
		pos += fx[i].size;
	}
	memcpy(n + pos, b + len - TRACE_TRAILER_SIZE, TRACE_TRAILER_SIZE);
	pos += TRACE_TRAILER_SIZE;
	spew(c, n, pos);
	snprintf(want, sizeof(want), "frame 1 at offset %llu: chain hash mismatch",
		 (unsigned long long)fx[1].off);
	expect_corrupt(c, want);
	free(n);
	free(b);
}

/*
 * Re-serialize a complete trace: another minor version, frame headers
 * grown by `extra` bytes (declared by FRAME_HEADER_SIZE), maybe another
 * CMDLINE; everything re-chained.  What a later writer would produce, and
 * what a forger with the whole file in hand can produce.
 */
static uint8_t *rebuild(const uint8_t *in, size_t len, uint16_t minor,
			uint32_t extra, const char *cmdline, size_t *outlen)
{
	size_t hlen = TRACE_FILE_FIXED + get_le32(in + 12) + TRACE_FILE_CSUM;
	struct trace_header *old, *h = trace_header_new();
	uint8_t chain[TRACE_HASH_SIZE], *hb, *out;
	size_t hblen, pos, ipos = hlen;
	uint64_t frames = 0;
	uint32_t hs = TRACE_FRAME_HDR_SIZE + extra;
	char err[256];

	old = trace_header_decode(in, hlen, err, sizeof(err));
	assert_non_null(old);
	for (size_t i = 0; i < trace_header_count(old); i++) {
		uint16_t tag;
		size_t l;
		const void *v = trace_header_at(old, i, &tag, &l);

		if (tag == TRACE_TAG_CMDLINE && cmdline)
			assert_int_equal(trace_header_add_str(h, tag, cmdline), 0);
		else
			assert_int_equal(trace_header_add(h, tag, v, l), 0);
	}
	if (extra)
		assert_int_equal(trace_header_add_u64(h, TRACE_TAG_FRAME_HEADER_SIZE, hs), 0);
	assert_int_equal(trace_header_encode(h, &hb, &hblen, err, sizeof(err)), 0);
	put_le16(hb + 10, minor);
	put_le64(hb + hblen - 8, XXH3_64bits(hb, hblen - 8));
	out = malloc(len * 2 + hblen);
	assert_non_null(out);
	memcpy(out, hb, hblen);
	trace_sha256_2(hb, hblen, NULL, 0, chain);
	pos = hblen;
	while (ipos + TRACE_TRAILER_SIZE < len) {
		uint32_t comp = get_le32(in + ipos + FH_COMP_LEN);
		uint8_t *fh = out + pos;

		memcpy(fh, in + ipos, FH_HDR_XXH);
		memset(fh + FH_HDR_XXH, 0xee, extra);	/* future fields */
		put_le32(fh + FH_HDR_SIZE, hs);
		memcpy(fh + FH_PREV_HASH, chain, TRACE_HASH_SIZE);
		put_le64(fh + hs - 8, trace_frame_hdr_xxh(fh, hs));
		memcpy(fh + hs, in + ipos + TRACE_FRAME_HDR_SIZE, comp);
		trace_sha256_2(fh, hs + comp, NULL, 0, chain);
		pos += hs + comp;
		ipos += TRACE_FRAME_HDR_SIZE + comp;
		frames++;
	}
	trace_trailer_pack(frames, chain, out + pos);
	pos += TRACE_TRAILER_SIZE;
	free(hb);
	trace_header_free(h);
	trace_header_free(old);
	*outlen = pos;
	return out;
}

static void test_versions(void **state)
{
	struct trace_verify_report rep;
	struct trace_reader *r;
	struct readres rr;
	char p[128], c[128], err[512], want[256];
	uint16_t major, minor;
	size_t len, nlen;
	uint8_t *b, *n;

	(void)state;
	tpath(p, sizeof(p), "ver.trc");
	tpath(c, sizeof(c), "ver2.trc");
	write_n(p, 3000, &(struct trace_writer_opts){ .frame_bytes = 1000 },
		0, true, NULL);
	b = slurp(p, &len);

	/* Newer major: refused, telling the user what to do. */
	put_le16(b + 8, 2);
	put_le16(b + 10, 0);
	spew(c, b, len);
	put_le16(b + 8, 1);
	put_le16(b + 10, TRACE_FORMAT_MINOR);
	assert_null(trace_reader_open(c, err, sizeof(err)));
	snprintf(want, sizeof(want),
		 "%s: trace format 2.0 is newer than this detvm supports (1.x): upgrade detvm", c);
	assert_string_equal(err, want);

	/* Newer minor: read. */
	n = rebuild(b, len, 7, 0, NULL, &nlen);
	spew(c, n, nlen);
	free(n);
	read_check(c, 3000, &rr);
	assert_true(rr.complete && rr.events == 3001);
	r = trace_reader_open(c, err, sizeof(err));
	assert_non_null(r);
	trace_header_version(trace_reader_header(r), &major, &minor);
	assert_true(major == 1 && minor == 7);
	trace_reader_close(r);

	/* Newer minor whose frame headers carry 16 more bytes. */
	n = rebuild(b, len, 8, 16, NULL, &nlen);
	spew(c, n, nlen);
	read_check(c, 3000, &rr);
	assert_true(rr.complete && rr.events == 3001);
	assert_int_equal(trace_verify(c, &rep, err, sizeof(err)), 0);
	assert_int_equal(rep.minor, 8);
	/* ... and a flipped extension byte is caught like any other. */
	n[get_le32(n + 12) + 24 + FH_HDR_XXH + 3] ^= 1;	/* frame 0's extension */
	spew(c, n, nlen);
	expect_corrupt(c, "frame 0 at offset");
	free(n);
	free(b);
}

/*
 * A forger who rewrites the header and re-chains every frame produces a
 * self-consistent file: what gives it away is the fingerprint.
 */
static void test_fingerprint(void **state)
{
	struct trace_verify_report a, f;
	char p[128], c[128], err[512];
	size_t len, nlen;
	uint8_t *b, *n;

	(void)state;
	tpath(p, sizeof(p), "fp.trc");
	tpath(c, sizeof(c), "fp_forged.trc");
	write_n(p, 1000, NULL, 0, true, NULL);
	assert_int_equal(trace_verify(p, &a, err, sizeof(err)), 0);
	b = slurp(p, &len);
	n = rebuild(b, len, TRACE_FORMAT_MINOR, 0, NULL, &nlen);	/* identical */
	assert_true(nlen == len);
	assert_memory_equal(n, b, len);
	free(n);
	n = rebuild(b, len, TRACE_FORMAT_MINOR, 0, "init=/bin/evil", &nlen);
	spew(c, n, nlen);
	assert_int_equal(trace_verify(c, &f, err, sizeof(err)), 0);
	assert_string_not_equal(a.final_hash_hex, f.final_hash_hex);
	free(n);
	free(b);
}

static void test_garbage_tails(void **state)
{
	struct trace_writer_opts o = { .frame_bytes = 300 };
	struct fidx fx[64];
	struct readres rr;
	char p[128], c[128], want[256];
	size_t len, nf, at;
	uint8_t *b, *n;

	(void)state;
	tpath(p, sizeof(p), "tail.trc");
	tpath(c, sizeof(c), "tail_bad.trc");
	write_n(p, 200, &o, 0, true, NULL);
	nf = index_frames(p, fx, 64);
	b = slurp(p, &len);
	n = malloc(len + 4096);
	assert_non_null(n);

	/* After a complete trailer, even one byte is too many. */
	memcpy(n, b, len);
	memcpy(n + len, "GARBAGE!", 8);
	spew(c, n, len + 8);
	snprintf(want, sizeof(want), "8 bytes of unexpected data after the trailer (from offset %zu)",
		 len);
	expect_corrupt(c, want);
	n[len] = 0;
	spew(c, n, len + 1);
	expect_corrupt(c, "unexpected data after the trailer");

	/* A cut-short file with garbage where the next frame would be. */
	at = (size_t)fx[nf / 2].off;
	memcpy(n + at, "GARBAGE!", 8);
	spew(c, n, at + 8);
	snprintf(want, sizeof(want), "frame %zu at offset %zu: bad frame magic",
		 nf / 2, at);
	expect_corrupt(c, want);
	memset(n + at, 0, 300);
	spew(c, n, at + 300);
	read_check(c, 200, &rr);
	assert_true(rr.ret == 0 && !rr.complete && rr.truncated_at == at);

	/* Garbage where the trailer should be. */
	at = len - TRACE_TRAILER_SIZE;
	memcpy(n, b, len);
	memcpy(n + at, "GARBAGE!", 8);
	spew(c, n, len);
	expect_corrupt(c, "bad trailer magic");
	/* A frame after END. */
	memcpy(n + at, b + fx[1].off, fx[1].size);
	spew(c, n, at + fx[1].size);
	expect_corrupt(c, "a frame follows the END record");
	free(n);
	free(b);
}

/*
 * Replace the last frame's payload with `raw` (events/exits as given),
 * keeping every checksum and the chain valid: what a buggy or hostile
 * writer could produce.  The reader must refuse it, not misread it.
 */
static void craft_last(const char *out, const uint8_t *b,
		       const struct fidx *last, const uint8_t *raw,
		       size_t rawlen, uint32_t events, uint32_t exits)
{
	size_t cap = ZSTD_compressBound(rawlen), comp, pos;
	uint8_t *n = malloc(last->off + TRACE_FRAME_HDR_SIZE + cap +
			    TRACE_TRAILER_SIZE);
	uint8_t *fh, chain[TRACE_HASH_SIZE];

	assert_non_null(n);
	memcpy(n, b, last->off + TRACE_FRAME_HDR_SIZE);
	fh = n + last->off;
	comp = ZSTD_compress(fh + TRACE_FRAME_HDR_SIZE, cap, raw, rawlen, 1);
	assert_false(ZSTD_isError(comp));
	put_le32(fh + FH_EVENTS, events);
	put_le32(fh + FH_EXITS, exits);
	put_le32(fh + FH_COMP_LEN, (uint32_t)comp);
	put_le32(fh + FH_RAW_LEN, (uint32_t)rawlen);
	put_le64(fh + FH_PAYLOAD_XXH, XXH3_64bits(fh + TRACE_FRAME_HDR_SIZE, comp));
	put_le64(fh + FH_HDR_XXH, trace_frame_hdr_xxh(fh, TRACE_FRAME_HDR_SIZE));
	trace_sha256_2(fh, TRACE_FRAME_HDR_SIZE + comp, NULL, 0, chain);
	pos = last->off + TRACE_FRAME_HDR_SIZE + comp;
	trace_trailer_pack(last->seq + 1, chain, n + pos);
	spew(out, n, pos + TRACE_TRAILER_SIZE);
	free(n);
}

static void test_crafted_payloads(void **state)
{
	struct trace_writer_opts o = { .frame_bytes = 300 };
	struct fidx fx[64];
	struct readres rr;
	char p[128], c[128], want[256];
	size_t len, nf, rawlen;
	uint8_t *b, raw[4096];
	const struct fidx *last;
	uint32_t comp, exits;

	(void)state;
	tpath(p, sizeof(p), "craft.trc");
	tpath(c, sizeof(c), "crafted.trc");
	write_n(p, 200, &o, 0, true, NULL);
	nf = index_frames(p, fx, 64);
	last = &fx[nf - 1];
	b = slurp(p, &len);
	comp = get_le32(b + last->off + FH_COMP_LEN);
	rawlen = ZSTD_decompress(raw, sizeof(raw) - 1,
				 b + last->off + TRACE_FRAME_HDR_SIZE, comp);
	assert_false(ZSTD_isError(rawlen));
	exits = get_le32(b + last->off + FH_EXITS);

	/* The unchanged payload re-crafted: still a valid trace. */
	craft_last(c, b, last, raw, rawlen, last->events, exits);
	read_check(c, 200, &rr);
	assert_true(rr.ret == 0 && rr.complete);

	raw[rawlen] = TRACE_EV_EXIT_HLT;
	craft_last(c, b, last, raw, rawlen + 1, last->events + 1, exits + 1);
	expect_corrupt(c, "END record is not the last event");

	raw[rawlen] = 0;
	craft_last(c, b, last, raw, rawlen + 1, last->events, exits);
	snprintf(want, sizeof(want), "frame %llu at offset %llu: 1 payload bytes after the last of %u events",
		 (unsigned long long)last->seq, (unsigned long long)last->off,
		 last->events);
	expect_corrupt(c, want);

	craft_last(c, b, last, raw, rawlen, last->events, exits + 1);
	expect_corrupt(c, "payload holds");

	raw[0] ^= 0x40;
	craft_last(c, b, last, raw, rawlen, last->events, exits);
	raw[0] ^= 0x40;
	snprintf(want, sizeof(want), "event %llu (payload byte 0): unknown event type",
		 (unsigned long long)last->first_event);
	expect_corrupt(c, want);

	/* END's total_events is the varint right before its 24 hash bytes. */
	raw[rawlen - 25]++;
	craft_last(c, b, last, raw, rawlen, last->events, exits);
	raw[rawlen - 25]--;
	expect_corrupt(c, "END record totals");

	/* Virtual time going back across a frame boundary. */
	memmove(raw + 2, raw, rawlen);
	raw[0] = TRACE_EV_CLOCK;
	raw[1] = 0;
	craft_last(c, b, last, raw, rawlen + 2, last->events + 1, exits);
	snprintf(want, sizeof(want), "event %llu: virtual time goes backwards",
		 (unsigned long long)last->first_event);
	expect_corrupt(c, want);

	/* A trailer miscounting the frames, with a valid checksum. */
	memcpy(raw, b + len - TRACE_TRAILER_SIZE, TRACE_TRAILER_SIZE);
	trace_trailer_pack(nf + 1, raw + TR_HASH, b + len - TRACE_TRAILER_SIZE);
	spew(c, b, len);
	expect_corrupt(c, "trailer counts");
	free(b);
}

/* ---- seeking ---- */

static void test_seek(void **state)
{
	struct trace_writer_opts o = { .frame_bytes = 256 };
	struct fidx fx[1024];
	struct readres rr;
	struct trace_reader *r;
	struct trace_event ev;
	char p[128], err[512];
	size_t nf;

	(void)state;
	tpath(p, sizeof(p), "seek.trc");
	write_n(p, 5000, &o, 0, true, NULL);
	nf = index_frames(p, fx, 1024);
	assert_true(nf > 20);
	r = trace_reader_open(p, err, sizeof(err));
	assert_non_null(r);

	const size_t picks[] = { 0, 1, nf / 2, nf - 2, nf - 1 };

	for (size_t k = 0; k < sizeof(picks) / sizeof(picks[0]); k++) {
		const struct fidx *f = &fx[picks[k]];

		assert_int_equal(trace_reader_seek(r, f->off, f->seq,
						   f->first_event, f->prev), 0);
		drain_check(r, f->first_event, 5000, &rr);
		assert_int_equal(rr.ret, 0);
		assert_true(rr.complete && rr.end);
		assert_true(rr.events == 5001 - f->first_event);
	}
	/* Without the previous hash: the frame's own word is taken. */
	assert_int_equal(trace_reader_seek(r, fx[5].off, 5, fx[5].first_event, NULL), 0);
	drain_check(r, fx[5].first_event, 5000, &rr);
	assert_true(rr.ret == 0 && rr.complete);
	/* A wrong index entry is caught, never misread. */
	assert_int_equal(trace_reader_seek(r, fx[5].off, 5, fx[5].first_event,
					   fx[4].prev), 0);
	assert_int_equal(trace_reader_next(r, &ev), -1);
	assert_non_null(strstr(trace_reader_error(r), "frame 5 at offset"));
	assert_non_null(strstr(trace_reader_error(r), "chain hash mismatch"));
	assert_int_equal(trace_reader_seek(r, fx[5].off, 6, fx[5].first_event,
					   fx[5].prev), 0);
	assert_int_equal(trace_reader_next(r, &ev), -1);
	assert_non_null(strstr(trace_reader_error(r), "sequence number 5, expected 6"));
	assert_int_equal(trace_reader_seek(r, fx[5].off + 1, 5, fx[5].first_event,
					   fx[5].prev), 0);
	assert_int_equal(trace_reader_next(r, &ev), -1);
	assert_int_equal(trace_reader_seek(r, fx[5].off, 5, fx[5].first_event + 1,
					   fx[5].prev), 0);
	assert_int_equal(trace_reader_next(r, &ev), -1);
	assert_non_null(strstr(trace_reader_error(r), "first event ordinal"));
	assert_int_equal(trace_reader_seek(r, 3, 0, 0, NULL), -1);
	/* And back to a sane place. */
	assert_int_equal(trace_reader_seek(r, fx[0].off, 0, 0, fx[0].prev), 0);
	drain_check(r, 0, 5000, &rr);
	assert_true(rr.ret == 0 && rr.complete && rr.events == 5001);
	trace_reader_close(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_small_frames),
		cmocka_unit_test(test_roundtrip_default_frames),
		cmocka_unit_test(test_frame_extremes),
		cmocka_unit_test(test_async_matches_sync),
		cmocka_unit_test(test_flush_and_request),
		cmocka_unit_test(test_write_end_then_close),
		cmocka_unit_test(test_writer_rejects),
		cmocka_unit_test(test_oexcl),
		cmocka_unit_test(test_prepare_begin),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_truncate_every_offset),
		cmocka_unit_test(test_zero_tail),
		cmocka_unit_test(test_kill9),
		cmocka_unit_test(test_write_error),
		cmocka_unit_test(test_flip_every_byte),
		cmocka_unit_test(test_flip_messages),
		cmocka_unit_test(test_removed_and_reordered),
		cmocka_unit_test(test_renumbered_forgery),
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_fingerprint),
		cmocka_unit_test(test_garbage_tails),
		cmocka_unit_test(test_crafted_payloads),
		cmocka_unit_test(test_seek),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
