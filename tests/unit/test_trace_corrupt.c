/*
 * test_trace_corrupt.c - the trace library's integrity promises, checked
 * exhaustively on one small real trace instead of at a few hand-picked
 * offsets.  The trace is written by the library: a header with every
 * required field (packed as a 1.1 writer packs it), 60 events of every
 * type in frames of 128 raw bytes (5 frames), END and the trailer, about
 * 1.5 KB.  SPEC.md sections 10 (how to verify) and 11 (cut short) say what
 * each kind of damage must give; every case asserts exactly that, for both
 * trace_verify() (what `detvm verify` runs) and the streaming reader, whose
 * delivered events are compared field by field, with their event and exit
 * ordinals, against the events written:
 *
 * test_pristine           the trace reads back exactly and verifies
 *                         complete; its layout is SPEC.md 2's (the other
 *                         tests compute their expectations from it).
 * test_flip_every_bit     each of the 8 bits of every byte flipped: the
 *                         header refused at open by the check its field
 *                         reaches first, a frame or the trailer refused at
 *                         its own offset (bad magic, header size, header,
 *                         payload or trailer checksum), and exactly the
 *                         frames before it delivered.
 * test_truncate_every_length  every length 0 .. size-1: an error while the
 *                         cut is inside the file header, else "cut short"
 *                         at the first incomplete frame (or the trailer)
 *                         with exactly the events of the whole frames.
 * test_zero_tail_every_offset  the end of the file zeroed (power loss) from
 *                         every offset after the header: cut short where
 *                         the zeros start a frame or the trailer, or tear
 *                         a frame or the trailer through the last 8 bytes
 *                         of a checked range; else corruption of the
 *                         structure they damage.
 * test_spliced_frames     every frame removed, every pair of frames
 *                         swapped, every frame duplicated, each as is and
 *                         forged (numbers and XXH3 checksums rewritten):
 *                         refused at the first displaced frame, the
 *                         forgeries by the hash chain (SPEC.md 6).
 * test_data_after_trailer 1 .. 400 bytes of zeros, 0xff, noise, frame or
 *                         trailer copies after the trailer: corruption,
 *                         after every event (END included) was delivered.
 * test_resealed_header_flips, test_resealed_frame_header_flips,
 * test_resealed_payload_flips  every bit flipped and the checksums made
 *                         to match again (a forger, or a writer bug): the
 *                         checks behind the checksums, and the chain,
 *                         still refuse the file.  These feed the header,
 *                         zstd and event decoders corrupt input, which is
 *                         what a run under ASan/UBSan is for.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "tests/unit/test_files.h"
#include "tests/unit/test_mix.h"
#include <xxhash.h>
#include <zstd.h>

#include "trace-format/trace_internal.h"

#define NEV		60	/* events before END */
#define FRAME_BYTES	128	/* close frames early: several of them */
#define MAXF		32
#define BYTES_MAX	24	/* data of an ENTROPY / CONSOLE_IN event */
#define MSG_MAX		512
#define GARBAGE_MAX	400	/* longest tail after the trailer tried */
#define VERSION		"0.1.0-test"	/* DETVM_VERSION, the one field left unpacked */

/* ---- the events written, and what the reader must give back ---- */

static struct trace_event ref[NEV + 1];	/* END last, its totals filled in */
static uint64_t ref_exit_ord[NEV + 1];	/* exit ordinal of each event */
static uint8_t ref_data[NEV][BYTES_MAX];

enum kind {
	K_IO_OUT, K_IO_IN, K_IO_STRING, K_MMIO_READ, K_MMIO_WRITE, K_HLT,
	K_MSR_READ, K_MSR_WRITE, K_LANDMARK, K_CLOCK, K_TIMER, K_ENTROPY,
	K_CONSOLE, K_IRQ, K_DIGEST, K_KINDS
};

/* Every event type and flavour in turn, time going forward. */
static void make_events(void)
{
	uint64_t now = 1000000000, exits = 0;

	for (size_t i = 0; i < NEV; i++) {
		struct trace_event *ev = &ref[i];
		uint64_t r = mix(i + 1);

		memset(ev, 0, sizeof(*ev));
		switch ((enum kind)(i % K_KINDS)) {
		case K_IO_OUT:
			ev->type = TRACE_EV_EXIT_IO;
			ev->io.flags = TRACE_IOF_WRITE | TRACE_IOF_SIZE(0);
			ev->io.port = 0x20;
			ev->io.count = 1;
			ev->io.value = r & 0xff;
			break;
		case K_IO_IN:
			ev->type = TRACE_EV_EXIT_IO;
			ev->io.flags = TRACE_IOF_SIZE(1);
			ev->io.port = (uint16_t)(0x1f0 + r % 8);
			ev->io.count = 1;
			break;
		case K_IO_STRING:
			ev->type = TRACE_EV_EXIT_IO;
			ev->io.flags = TRACE_IOF_STRING | TRACE_IOF_SIZE(2);
			ev->io.port = 0x3f8;
			ev->io.count = (uint32_t)(r % 500 + 1);
			break;
		case K_MMIO_READ:
			ev->type = TRACE_EV_EXIT_MMIO;
			ev->mmio.flags = TRACE_IOF_SIZE(2);
			ev->mmio.gpa = 0xfee00000 + (r % 64) * 16;
			break;
		case K_MMIO_WRITE:
			ev->type = TRACE_EV_EXIT_MMIO;
			ev->mmio.flags = TRACE_IOF_WRITE | TRACE_IOF_SIZE(3);
			ev->mmio.gpa = 0xd0000000 + (r & 0xffff);
			ev->mmio.value = mix(r);
			break;
		case K_HLT:
			ev->type = TRACE_EV_EXIT_HLT;
			break;
		case K_MSR_READ:
			ev->type = TRACE_EV_EXIT_MSR;
			ev->msr.index = 0xc0000080;
			break;
		case K_MSR_WRITE:
			ev->type = TRACE_EV_EXIT_MSR;
			ev->msr.flags = TRACE_IOF_WRITE;
			ev->msr.index = 0x6e0;
			ev->msr.value = r;
			break;
		case K_LANDMARK:
			ev->type = TRACE_EV_EXIT_LANDMARK;
			ev->landmark.progress = i * 1000 + r % 1000;
			ev->landmark.rip = 0xffffffff81000000ull + (r & 0xffff);
			ev->landmark.regs_hash = mix(r);
			break;
		case K_CLOCK:
		case K_TIMER:
			ev->type = i % K_KINDS == K_CLOCK ? TRACE_EV_CLOCK
							 : TRACE_EV_TIMER;
			now += r % 10000000;
			ev->time.ns = now;
			break;
		case K_ENTROPY:
		case K_CONSOLE:
			ev->type = i % K_KINDS == K_ENTROPY ? TRACE_EV_ENTROPY
							   : TRACE_EV_CONSOLE_IN;
			ev->bytes.len = (uint32_t)(r % BYTES_MAX + 1);
			for (uint32_t k = 0; k < ev->bytes.len; k++)
				ref_data[i][k] = (uint8_t)mix(r + k);
			ev->bytes.data = ref_data[i];
			break;
		case K_IRQ:
			ev->type = TRACE_EV_IRQ;
			ev->irq.vector = (uint8_t)(0x20 + r % 32);
			break;
		case K_DIGEST:
			ev->type = TRACE_EV_DIGEST;
			ev->digest.regs_hash = r;
			ev->digest.mem_hash.lo = mix(r + 1);
			ev->digest.mem_hash.hi = mix(r + 2);
			break;
		case K_KINDS:
			break;
		}
		exits += trace_event_is_exit(ev->type);
		ref_exit_ord[i] = exits;
	}
	memset(&ref[NEV], 0, sizeof(ref[NEV]));
	ref[NEV].type = TRACE_EV_END;
	ref[NEV].end.reason = TRACE_END_GUEST_EXIT;
	ref[NEV].end.status = 7;
	ref[NEV].end.total_exits = exits;
	ref[NEV].end.total_events = NEV + 1;
	ref[NEV].end.regs_hash = 0x1122334455667788ull;
	ref[NEV].end.mem_hash.lo = 0x99;
	ref[NEV].end.mem_hash.hi = 0xaa;
	ref_exit_ord[NEV] = exits;
}

/* In ev_diff: field f of the event read against the event written; its
 * name if they differ. */
#define SAME(f) do { if (ev->f != w->f) return #f; } while (0)

/* NULL if ev, the i-th event delivered by r, is the one written; else why not. */
static const char *ev_diff(const struct trace_reader *r,
			   const struct trace_event *ev, uint64_t i)
{
	const struct trace_event *w;

	if (i > NEV)
		return "an event after END";
	w = &ref[i];
	if (trace_reader_event_ordinal(r) != i)
		return "event ordinal";
	if (trace_reader_exit_ordinal(r) != ref_exit_ord[i])
		return "exit ordinal";
	SAME(type);
	switch (w->type) {
	case TRACE_EV_EXIT_IO:
		SAME(io.flags);
		SAME(io.port);
		SAME(io.count);
		SAME(io.value);
		break;
	case TRACE_EV_EXIT_MMIO:
		SAME(mmio.flags);
		SAME(mmio.gpa);
		SAME(mmio.value);
		break;
	case TRACE_EV_EXIT_MSR:
		SAME(msr.flags);
		SAME(msr.index);
		SAME(msr.value);
		break;
	case TRACE_EV_EXIT_LANDMARK:
		SAME(landmark.progress);
		SAME(landmark.rip);
		SAME(landmark.regs_hash);
		break;
	case TRACE_EV_CLOCK:
	case TRACE_EV_TIMER:
		SAME(time.ns);
		break;
	case TRACE_EV_ENTROPY:
	case TRACE_EV_CONSOLE_IN:
		SAME(bytes.len);
		if (memcmp(ev->bytes.data, w->bytes.data, w->bytes.len))
			return "bytes.data";
		break;
	case TRACE_EV_IRQ:
		SAME(irq.vector);
		break;
	case TRACE_EV_DIGEST:
		SAME(digest.regs_hash);
		SAME(digest.mem_hash.lo);
		SAME(digest.mem_hash.hi);
		break;
	case TRACE_EV_END:
		SAME(end.reason);
		SAME(end.status);
		SAME(end.total_exits);
		SAME(end.total_events);
		SAME(end.regs_hash);
		SAME(end.mem_hash.lo);
		SAME(end.mem_hash.hi);
		break;
	}
#undef SAME
	return NULL;
}

/* ---- the trace, and where everything is in it ---- */

struct frame_loc {
	size_t off;		/* file offset of the frame header */
	size_t size;		/* header + payload */
	uint32_t comp_len, raw_len, events, exits;
	uint64_t first_event, exit_base;
};

static struct {
	char path[128];
	uint8_t *b;
	size_t len;
	size_t hdr_len;		/* file header, 24 + B bytes */
	size_t nf;
	struct frame_loc f[MAXF];
	size_t trailer;		/* offset of the trailer: len - 56 */
	/* chain[k]: the chain hash after k whole frames (chain[0]: header's) */
	uint8_t chain[MAXF + 1][TRACE_HASH_SIZE];
} fx;

/* Offset of frame k, or of the trailer when k is the number of frames. */
static size_t frame_off(size_t k)
{
	return k < fx.nf ? fx.f[k].off : fx.trailer;
}

/* Events in frames [0, k). */
static uint64_t events_before(size_t k)
{
	return k < fx.nf ? fx.f[k].first_event : NEV + 1;
}

/* Exits in frames [0, k). */
static uint64_t exits_before(size_t k)
{
	return k < fx.nf ? fx.f[k].exit_base : ref_exit_ord[NEV];
}

/* Uncompressed payload bytes of frames [0, k). */
static uint64_t raw_before(size_t k)
{
	uint64_t raw = 0;

	for (size_t i = 0; i < k; i++)
		raw += fx.f[i].raw_len;
	return raw;
}

static struct trace_header *make_header(void)
{
	struct trace_header *h = trace_header_new();
	struct kvm_cpuid_entry2 cpuid[3] = {
		{ .function = 0, .eax = 0xd, .ebx = 0x756e6547 },
		{ .function = 1, .eax = 0x806f8, .ecx = 0x80202001 },
		{ .function = 7, .index = 0, .ebx = 0x9c2 },
	};
	struct trace_msr msrs[2] = { { 0x10, 0, 0 }, { 0x1b, 0, 0xfee00900 } };
	struct trace_hash128 kh = { 0x0123456789abcdefull, 0xfedcba9876543210ull };
	char err[MSG_MAX];

	assert_non_null(h);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_DETVM_VERSION, VERSION), 0);
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_MEM_SIZE, 64 << 20), 0);
	assert_int_equal(trace_header_add(h, TRACE_TAG_CPUID, cpuid, sizeof(cpuid)), 0);
	assert_int_equal(trace_header_add(h, TRACE_TAG_MSRS, msrs, sizeof(msrs)), 0);
	assert_int_equal(trace_header_add_xsave(h, 2696, 0x7), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_CMDLINE, "console=ttyS0"), 0);
	assert_int_equal(trace_header_add_file_id(h, TRACE_TAG_KERNEL_ID, 4096, &kh, "guest.elf"), 0);
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_BOOT_EPOCH_NS, 1700000000000000000ull), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_HOST, "test host"), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_PROGRESS_COUNTER, TRACE_PROGRESS_INSN_EMULATION), 0);
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_LANDMARK_BOUND_NS, 1000000), 0);
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_DIGEST_INTERVAL, 16), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_BOOT_MODE, TRACE_BOOT_ELF64), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_SERIAL_IN, "none"), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_MEM_DIGEST, TRACE_MEM_DIGEST_SPARSE), 0);
	if (trace_header_check_required(h, err, sizeof(err)))
		fail_msg("header lacks a required field: %s", err);
	return h;
}

static void write_trace(const char *path)
{
	struct trace_writer_opts o = { .frame_bytes = FRAME_BYTES };
	struct trace_header *h = make_header();
	struct trace_event end = ref[NEV];
	struct trace_writer *w;
	char err[MSG_MAX];

	w = trace_writer_open(path, h, &o, err, sizeof(err));
	if (!w)
		fail_msg("%s", err);
	for (size_t i = 0; i < NEV; i++)
		if (trace_writer_append(w, &ref[i]))
			fail_msg("event %zu: %s", i, trace_writer_error(w));
	end.end.total_exits = end.end.total_events = 0;	/* the writer's job */
	if (trace_writer_close(w, &end))
		fail_msg("%s", trace_writer_error(w));
	trace_writer_free(w);
	trace_header_free(h);
}

/*
 * Find the frames and the trailer by SPEC.md 2 and 5, independently of the
 * reader, and compute the chain (SPEC.md 6).
 */
static void parse_layout(void)
{
	uint64_t events = 0, exits = 0;
	size_t off;

	assert_true(fx.len > TRACE_FILE_FIXED);
	fx.hdr_len = TRACE_FILE_FIXED + get_le32(fx.b + 12) + TRACE_FILE_CSUM;
	assert_true(fx.hdr_len + TRACE_TRAILER_SIZE < fx.len);
	trace_sha256_2(fx.b, fx.hdr_len, NULL, 0, fx.chain[0]);
	fx.nf = 0;
	for (off = fx.hdr_len; off + TRACE_TRAILER_SIZE < fx.len;) {
		struct frame_loc *f = &fx.f[fx.nf];
		const uint8_t *h = fx.b + off;

		assert_true(fx.nf < MAXF);
		assert_memory_equal(h, TRACE_FRAME_MAGIC, TRACE_FRAME_MAGIC_LEN);
		assert_int_equal(get_le32(h + FH_HDR_SIZE), TRACE_FRAME_HDR_SIZE);
		assert_true(get_le64(h + FH_SEQ) == fx.nf);
		assert_true(get_le64(h + FH_FIRST_EVENT) == events);
		assert_true(get_le64(h + FH_EXIT_BASE) == exits);
		assert_memory_equal(h + FH_PREV_HASH, fx.chain[fx.nf], TRACE_HASH_SIZE);
		f->off = off;
		f->comp_len = get_le32(h + FH_COMP_LEN);
		f->raw_len = get_le32(h + FH_RAW_LEN);
		f->events = get_le32(h + FH_EVENTS);
		f->exits = get_le32(h + FH_EXITS);
		f->first_event = events;
		f->exit_base = exits;
		f->size = TRACE_FRAME_HDR_SIZE + f->comp_len;
		assert_true(off + f->size + TRACE_TRAILER_SIZE <= fx.len);
		trace_sha256_2(h, f->size, NULL, 0, fx.chain[fx.nf + 1]);
		events += f->events;
		exits += f->exits;
		off += f->size;
		fx.nf++;
	}
	fx.trailer = off;
	assert_true(off + TRACE_TRAILER_SIZE == fx.len);
	assert_memory_equal(fx.b + off, TRACE_TRAILER_MAGIC, TRACE_TRAILER_MAGIC_LEN);
	assert_true(get_le64(fx.b + off + TR_FRAMES) == fx.nf);
	assert_memory_equal(fx.b + off + TR_HASH, fx.chain[fx.nf], TRACE_HASH_SIZE);
	assert_true(events == NEV + 1);
	assert_true(exits == ref_exit_ord[NEV]);
}

static int group_setup(void **state)
{
	(void)state;
	if (test_dir_make("test_trace_corrupt"))
		return -1;
	make_events();
	tpath(fx.path, sizeof(fx.path), "orig.trc");
	write_trace(fx.path);
	fx.b = slurp(fx.path, &fx.len);
	parse_layout();
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	free(fx.b);
	return test_dir_remove();
}

/* ---- naming a byte of the file, for failure messages ---- */

struct field {
	size_t end;		/* offset just past the field */
	const char *name;
};

static const struct field header_fields[] = {
	{ 8, "magic" }, { 10, "major" }, { 12, "minor" }, { 16, "body_len" },
};

static const struct field frame_fields[] = {
	{ FH_HDR_SIZE, "magic" }, { FH_SEQ, "hdr_size" },
	{ FH_FIRST_EVENT, "seq" }, { FH_EXIT_BASE, "first_event" },
	{ FH_EVENTS, "exit_base" }, { FH_EXITS, "events" },
	{ FH_COMP_LEN, "exits" }, { FH_RAW_LEN, "comp_len" },
	{ FH_PAYLOAD_XXH, "raw_len" }, { FH_PREV_HASH, "payload_xxh" },
	{ FH_HDR_XXH, "prev_hash" }, { TRACE_FRAME_HDR_SIZE, "hdr_xxh" },
};

static const struct field trailer_fields[] = {
	{ TR_FRAMES, "magic" }, { TR_HASH, "frames" },
	{ TR_XXH, "final_hash" }, { TRACE_TRAILER_SIZE, "xxh" },
};

#define FIELD_NAME(table, rel) field_name(table, sizeof(table) / sizeof(table[0]), rel)

static const char *field_name(const struct field *t, size_t n, size_t rel)
{
	for (size_t i = 0; i < n; i++)
		if (rel < t[i].end)
			return t[i].name;
	return NULL;
}

/* The frame holding file offset off, or fx.nf if it is not in a frame. */
static size_t frame_at(size_t off)
{
	for (size_t k = 0; k < fx.nf; k++)
		if (off >= fx.f[k].off && off < fx.f[k].off + fx.f[k].size)
			return k;
	return fx.nf;
}

/* "offset 417 (frame 1 header: seq)", in buf. */
static const char *describe(size_t off, char *buf, size_t n)
{
	size_t k = frame_at(off);
	const char *name;

	if (off < TRACE_FILE_FIXED) {
		snprintf(buf, n, "offset %zu (file header: %s)", off,
			 FIELD_NAME(header_fields, off));
	} else if (off < fx.hdr_len - TRACE_FILE_CSUM) {
		snprintf(buf, n, "offset %zu (file header: fields, body byte %zu)",
			 off, off - TRACE_FILE_FIXED);
	} else if (off < fx.hdr_len) {
		snprintf(buf, n, "offset %zu (file header: checksum)", off);
	} else if (k < fx.nf) {
		size_t rel = off - fx.f[k].off;

		name = FIELD_NAME(frame_fields, rel);
		if (name)
			snprintf(buf, n, "offset %zu (frame %zu header: %s)", off,
				 k, name);
		else
			snprintf(buf, n, "offset %zu (frame %zu payload byte %zu)",
				 off, k, rel - TRACE_FRAME_HDR_SIZE);
	} else if (off < fx.len) {
		snprintf(buf, n, "offset %zu (trailer: %s)", off,
			 FIELD_NAME(trailer_fields, off - fx.trailer));
	} else {
		snprintf(buf, n, "offset %zu (after the trailer)", off);
	}
	return buf;
}

/* ---- a scratch copy of the trace, changed in place ---- */

struct scratch {
	char path[128];
	int fd;
};

static void scratch_open(struct scratch *s)
{
	tpath(s->path, sizeof(s->path), "case.trc");
	s->fd = open(s->path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (s->fd < 0)
		fail_msg("%s: open: %s", s->path, strerror(errno));
}

static void scratch_close(struct scratch *s)
{
	assert_int_equal(close(s->fd), 0);
	assert_int_equal(unlink(s->path), 0);
}

/* Write n bytes of p at off. */
static void scratch_patch(struct scratch *s, size_t off, const void *p, size_t n)
{
	ssize_t w = pwrite(s->fd, p, n, (off_t)off);

	if (w != (ssize_t)n)
		fail_msg("%s: pwrite %zu bytes at %zu: %s", s->path, n, off,
			 w < 0 ? strerror(errno) : "short write");
}

/* Make the file exactly b[0..len). */
static void scratch_set(struct scratch *s, const uint8_t *b, size_t len)
{
	if (len)
		scratch_patch(s, 0, b, len);
	if (ftruncate(s->fd, (off_t)len))
		fail_msg("%s: ftruncate %zu: %s", s->path, len, strerror(errno));
}

/* ---- what the reader and verify did, against what they must do ---- */

enum verdict {
	REFUSED,	/* trace_reader_open() fails */
	CORRUPT,	/* an error after the frames before it */
	CUT_SHORT,	/* the whole frames' events, then "cut short" */
	COMPLETE,
};

struct expect {
	enum verdict v;
	size_t frames;		/* whole good frames: their events come out */
	uint64_t at;		/* CUT_SHORT: where the file is cut */
	/* in the error (REFUSED, CORRUPT), in verify's message (CUT_SHORT) */
	char msg[MSG_MAX];
	/* the chain hash after those frames; NULL: the original's */
	const uint8_t *fingerprint;
};

struct outcome {
	bool opened;
	int ret;		/* the last trace_reader_next() */
	uint64_t delivered;	/* events */
	uint64_t same;		/* leading events equal to the written ones */
	char diff[128];		/* how event `same` differs */
	bool complete;
	uint64_t truncated_at;
	char err[MSG_MAX];	/* the reader's */
	int vret;		/* trace_verify() */
	struct trace_verify_report rep;
	char verr[MSG_MAX];
};

static void expect_set(struct expect *x, enum verdict v, size_t frames,
		       uint64_t at, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void expect_set(struct expect *x, enum verdict v, size_t frames,
		       uint64_t at, const char *fmt, ...)
{
	va_list ap;

	x->v = v;
	x->frames = frames;
	x->at = at;
	x->fingerprint = NULL;
	va_start(ap, fmt);
	vsnprintf(x->msg, sizeof(x->msg), fmt, ap);
	va_end(ap);
}

/* Read path to the end with the reader, then run trace_verify() on it. */
static void examine(const char *path, struct outcome *o)
{
	struct trace_reader *r;
	struct trace_event ev;

	memset(o, 0, sizeof(*o));
	r = trace_reader_open(path, o->err, sizeof(o->err));
	o->opened = r != NULL;
	if (r) {
		while ((o->ret = trace_reader_next(r, &ev)) > 0) {
			if (o->same == o->delivered) {
				const char *d = ev_diff(r, &ev, o->delivered);

				if (d)
					snprintf(o->diff, sizeof(o->diff),
						 "event %llu: %s",
						 (unsigned long long)o->delivered, d);
				else
					o->same++;
			}
			if (++o->delivered > 2 * (NEV + 1))
				break;	/* runaway: fails the event count */
		}
		o->complete = trace_reader_complete(r);
		o->truncated_at = trace_reader_truncated_at(r);
		if (o->ret < 0)
			snprintf(o->err, sizeof(o->err), "%s", trace_reader_error(r));
		trace_reader_close(r);
	}
	o->vret = trace_verify(path, &o->rep, o->verr, sizeof(o->verr));
}

/* The reader's events: exactly those of the first n frames, as written. */
static void check_events(const struct outcome *o, size_t n, const char *what)
{
	if (o->same != o->delivered)
		fail_msg("%s: the reader delivered altered events (%s)", what,
			 o->diff);
	if (o->delivered != events_before(n))
		fail_msg("%s: the reader delivered %llu events, expected %llu (%zu frames)",
			 what, (unsigned long long)o->delivered,
			 (unsigned long long)events_before(n), n);
}

/*
 * verify's report covers exactly the first n frames, and its fingerprint
 * is the chain hash after them: fp, or the original file's when NULL.
 */
static void check_report(const struct outcome *o, size_t n,
			 const uint8_t *fp, const char *what)
{
	char want[TRACE_HASH_HEX_SIZE];

	if (o->rep.frames != n || o->rep.events != events_before(n) ||
	    o->rep.exits != exits_before(n) || o->rep.raw_bytes != raw_before(n))
		fail_msg("%s: verify counted %llu frames, %llu events, %llu exits, %llu raw bytes; expected %zu, %llu, %llu, %llu",
			 what, (unsigned long long)o->rep.frames,
			 (unsigned long long)o->rep.events,
			 (unsigned long long)o->rep.exits,
			 (unsigned long long)o->rep.raw_bytes, n,
			 (unsigned long long)events_before(n),
			 (unsigned long long)exits_before(n),
			 (unsigned long long)raw_before(n));
	if (o->rep.has_end != (n == fx.nf))
		fail_msg("%s: verify says END %s", what,
			 o->rep.has_end ? "present" : "absent");
	trace_hash_hex(fp ? fp : fx.chain[n], want);
	if (strcmp(o->rep.final_hash_hex, want))
		fail_msg("%s: fingerprint %s, expected the hash after %zu frames %s",
			 what, o->rep.final_hash_hex, n, want);
}

static void check(const struct outcome *o, const struct expect *x,
		  const char *what)
{
	switch (x->v) {
	case REFUSED:
		if (o->opened)
			fail_msg("%s: the reader opened the file, expected \"%s\" (then: %d, %llu events, %s)",
				 what, x->msg, o->ret,
				 (unsigned long long)o->delivered, o->err);
		break;
	case CORRUPT:
	case CUT_SHORT:
	case COMPLETE:
		if (!o->opened)
			fail_msg("%s: the reader refused the file at open: %s",
				 what, o->err);
		check_events(o, x->frames, what);
		break;
	}
	switch (x->v) {
	case REFUSED:
	case CORRUPT:
		if (x->v == CORRUPT && o->ret != -1)
			fail_msg("%s: the reader ended with %d (%s at %llu), expected the error \"%s\"",
				 what, o->ret, o->complete ? "complete" : "cut short",
				 (unsigned long long)o->truncated_at, x->msg);
		if (!o->err[0] || !strstr(o->err, x->msg))
			fail_msg("%s: reader error \"%s\", expected \"%s\"", what,
				 o->err, x->msg);
		if (o->vret != -1)
			fail_msg("%s: verify returned %d (%s), expected -1", what,
				 o->vret, o->verr);
		/* `detvm verify` and a replay refuse with the same words. */
		if (strcmp(o->verr, o->err))
			fail_msg("%s: verify says \"%s\", the reader \"%s\"", what,
				 o->verr, o->err);
		if (x->v == REFUSED) {
			if (o->rep.frames || o->rep.events)
				fail_msg("%s: verify counted frames of a refused file",
					 what);
			return;
		}
		break;
	case CUT_SHORT:
		if (o->ret != 0 || o->complete || o->truncated_at != x->at)
			fail_msg("%s: the reader ended with %d, complete %d, cut at %llu (%s); expected cut short at %llu",
				 what, o->ret, o->complete,
				 (unsigned long long)o->truncated_at, o->err,
				 (unsigned long long)x->at);
		if (o->vret != 1 || o->rep.complete ||
		    o->rep.truncated_at != x->at)
			fail_msg("%s: verify returned %d, cut at %llu (%s); expected 1, cut short at %llu",
				 what, o->vret,
				 (unsigned long long)o->rep.truncated_at, o->verr,
				 (unsigned long long)x->at);
		if (!strstr(o->verr, x->msg))
			fail_msg("%s: verify says \"%s\", expected \"%s\"", what,
				 o->verr, x->msg);
		break;
	case COMPLETE:
		if (o->ret != 0 || !o->complete)
			fail_msg("%s: the reader ended with %d (%s), expected a complete trace",
				 what, o->ret, o->err);
		if (o->vret != 0 || !o->rep.complete)
			fail_msg("%s: verify returned %d (%s), expected 0", what,
				 o->vret, o->verr);
		break;
	}
	check_report(o, x->frames, x->fingerprint, what);
}

/* ---- what the SPEC says each damage gives ---- */

/*
 * Flip `mask` in file header byte off (SPEC.md 10, steps 2-7): the magic,
 * then the major, then the body length are checked before the checksum,
 * which covers everything else (the minor included).
 */
static void expect_header_flip(const char *path, size_t off, uint8_t mask,
			       struct expect *x)
{
	if (off < TRACE_FILE_MAGIC_LEN) {
		expect_set(x, REFUSED, 0, 0, "%s: not a detvm trace", path);
	} else if (off < 10) {
		unsigned major = get_le16(fx.b + 8) ^ (unsigned)mask << 8 * (off - 8);
		unsigned minor = get_le16(fx.b + 10);

		expect_set(x, REFUSED, 0, 0, "%s: trace format %u.%u is %s", path,
			   major, minor, major > TRACE_FORMAT_MAJOR
			   ? "newer than this detvm supports (1.x): upgrade detvm"
			   : "older than any this detvm reads");
	} else if (off >= 12 && off < TRACE_FILE_FIXED) {
		uint32_t body = get_le32(fx.b + 12) ^ (uint32_t)mask << 8 * (off - 12);
		size_t hlen = TRACE_FILE_FIXED + (size_t)body + TRACE_FILE_CSUM;

		if (body > TRACE_HEADER_BODY_MAX)
			expect_set(x, REFUSED, 0, 0,
				   "%s: file header body of %u bytes exceeds", path,
				   body);
		else if (hlen > fx.len)
			expect_set(x, REFUSED, 0, 0,
				   "%s: file header cut short: %zu of %zu bytes",
				   path, fx.len, hlen);
		else
			expect_set(x, REFUSED, 0, 0,
				   "%s: file header checksum mismatch (offset 0, %zu bytes)",
				   path, hlen);
	} else {
		expect_set(x, REFUSED, 0, 0,
			   "%s: file header checksum mismatch (offset 0, %zu bytes)",
			   path, fx.hdr_len);
	}
}

/*
 * The file keeps its length and its first changed byte is d, in a frame or
 * in the trailer (SPEC.md 10, steps 13-16 and 23, 30-32): the frames before
 * it are delivered and the structure holding d is refused at its own
 * offset, by the first check its damaged bytes reach.  Every byte of a
 * frame is under its magic, hdr_size, header checksum or payload checksum;
 * every byte of the trailer under its magic or its checksum.
 */
static void expect_damage(const char *path, size_t d, struct expect *x)
{
	size_t k = frame_at(d);

	if (k < fx.nf) {
		size_t rel = d - fx.f[k].off;

		expect_set(x, CORRUPT, k, 0, "%s: frame %zu at offset %zu: %s",
			   path, k, fx.f[k].off,
			   rel < FH_HDR_SIZE ? "bad frame magic"
			   : rel < FH_SEQ ? "frame header size"
			   : rel < TRACE_FRAME_HDR_SIZE ? "frame header checksum mismatch"
			   : "payload checksum mismatch");
	} else {
		expect_set(x, CORRUPT, fx.nf, 0, "%s: trailer at offset %zu: %s",
			   path, fx.trailer,
			   d - fx.trailer < TR_FRAMES ? "bad trailer magic"
			   : "trailer checksum mismatch");
	}
}

/*
 * The file cut to n bytes (SPEC.md 10 steps 1-6 in the header; 12, 14, 22,
 * 29 and 31 after it, and 11): inside the header an error; after it the
 * events of the whole frames, and "cut short" at the first frame that is
 * not whole, or at the trailer once every frame is.
 */
static void expect_cut(const char *path, size_t n, struct expect *x)
{
	size_t k = 0;

	if (n == 0) {
		expect_set(x, REFUSED, 0, 0, "%s: empty file", path);
	} else if (n < TRACE_FILE_MAGIC_LEN) {
		expect_set(x, REFUSED, 0, 0, "%s: not a detvm trace", path);
	} else if (n < TRACE_FILE_FIXED) {
		expect_set(x, REFUSED, 0, 0, "%s: file header cut short at offset %zu",
			   path, n);
	} else if (n < fx.hdr_len) {
		expect_set(x, REFUSED, 0, 0, "%s: file header cut short: %zu of %zu bytes",
			   path, n, fx.hdr_len);
	} else {
		while (k < fx.nf && fx.f[k].off + fx.f[k].size <= n)
			k++;
		expect_set(x, CUT_SHORT, k, frame_off(k),
			   "%s: cut short at offset %zu after %zu frames%s: the recording did not finish",
			   path, frame_off(k), k,
			   k == fx.nf ? " (END present, trailer missing)" : "");
	}
}

/*
 * Bytes [z, len) zeroed (SPEC.md 10 steps 13 and 30, "Torn writes", and
 * 11).  Zeroing bytes that were zero changes nothing: what counts is the
 * first byte that changes (d), the check it fails (the magic or checksum
 * of the frame header, payload or trailer holding it) and where the zeros
 * that run to the end of the file start (zs).  If they cover the last 8
 * bytes of the range that check covers (all of it, if shorter), the write
 * was torn: cut short at the frame or trailer holding d.  Else it is
 * damage to that structure.
 */
static void expect_zero_tail(const char *path, size_t z, struct expect *x)
{
	size_t d = z, zs = z, k, start, end;

	while (d < fx.len && !fx.b[d])
		d++;
	if (d == fx.len) {
		expect_set(x, COMPLETE, fx.nf, 0, "%s", "");
		return;
	}
	while (zs > 0 && !fx.b[zs - 1])
		zs--;
	k = frame_at(d);	/* fx.nf: the trailer */
	if (k == fx.nf) {
		start = fx.trailer;
		end = fx.len;
	} else if (d - fx.f[k].off < TRACE_FRAME_HDR_SIZE) {
		start = fx.f[k].off;
		end = start + TRACE_FRAME_HDR_SIZE;
	} else {
		start = fx.f[k].off + TRACE_FRAME_HDR_SIZE;
		end = fx.f[k].off + fx.f[k].size;
	}
	if (zs <= (end - start >= 8 ? end - 8 : start))
		expect_set(x, CUT_SHORT, k, frame_off(k),
			   "%s: cut short at offset %zu after %zu frames", path,
			   frame_off(k), k);
	else
		expect_damage(path, d, x);
}

/* ---- the tests ---- */

static void test_pristine(void **state)
{
	struct trace_reader *r;
	struct trace_event ev;
	struct outcome o;
	struct expect x;
	char err[MSG_MAX];
	uint64_t seen = 0;
	int ret;

	(void)state;
	/* A few KB in 4 or more frames, and a packed 1.1 header. */
	assert_true(fx.nf >= 4);
	assert_true(fx.len < 4096);
	assert_int_equal(get_le16(fx.b + 8), TRACE_FORMAT_MAJOR);
	assert_int_equal(get_le16(fx.b + 10), TRACE_FORMAT_MINOR);
	assert_true(get_le16(fx.b + TRACE_FILE_FIXED) == TRACE_TAG_DETVM_VERSION);
	assert_true(get_le16(fx.b + TRACE_FILE_FIXED + TRACE_TLV_HDR +
			     strlen(VERSION)) == TRACE_TAG_PACKED_FIELDS);

	examine(fx.path, &o);
	expect_set(&x, COMPLETE, fx.nf, 0, "%s", "");
	check(&o, &x, "the pristine trace");
	assert_true(o.rep.file_bytes == fx.len);
	assert_int_equal(o.rep.end_reason, TRACE_END_GUEST_EXIT);
	assert_true(o.rep.end_status == 7);

	/* The reader sees the frames where parse_layout() found them. */
	r = trace_reader_open(fx.path, err, sizeof(err));
	if (!r)
		fail_msg("%s", err);
	if (trace_header_check_required(trace_reader_header(r), err, sizeof(err)))
		fail_msg("read back: %s", err);
	while ((ret = trace_reader_next(r, &ev)) > 0) {
		const struct trace_frame_info *fi = trace_reader_frame(r);

		assert_non_null(fi);
		assert_true(fi->seq < fx.nf);
		assert_true(fi->offset == fx.f[fi->seq].off);
		assert_true(fi->first_event == fx.f[fi->seq].first_event);
		assert_true(fi->exit_base == fx.f[fi->seq].exit_base);
		assert_int_equal(fi->events, fx.f[fi->seq].events);
		assert_int_equal(fi->comp_len, fx.f[fi->seq].comp_len);
		assert_memory_equal(fi->prev_hash, fx.chain[fi->seq], TRACE_HASH_SIZE);
		seen++;
	}
	if (ret)
		fail_msg("%s", trace_reader_error(r));
	assert_true(seen == NEV + 1);
	trace_reader_close(r);
}

static void test_flip_every_bit(void **state)
{
	struct scratch s;
	struct outcome o;
	struct expect x;
	char what[160], where[96];

	(void)state;
	scratch_open(&s);
	scratch_set(&s, fx.b, fx.len);
	for (size_t off = 0; off < fx.len; off++) {
		for (int bit = 0; bit < 8; bit++) {
			uint8_t mask = (uint8_t)(1u << bit);
			uint8_t c = fx.b[off] ^ mask;

			snprintf(what, sizeof(what), "bit %d flipped at %s", bit,
				 describe(off, where, sizeof(where)));
			if (off < fx.hdr_len)
				expect_header_flip(s.path, off, mask, &x);
			else
				expect_damage(s.path, off, &x);
			scratch_patch(&s, off, &c, 1);
			examine(s.path, &o);
			check(&o, &x, what);
		}
		scratch_patch(&s, off, fx.b + off, 1);
	}
	scratch_close(&s);
}

static void test_truncate_every_length(void **state)
{
	struct scratch s;
	struct outcome o;
	struct expect x;
	char what[64];

	(void)state;
	scratch_open(&s);
	for (size_t n = 0; n < fx.len; n++) {
		snprintf(what, sizeof(what), "cut to %zu of %zu bytes", n, fx.len);
		expect_cut(s.path, n, &x);
		scratch_set(&s, fx.b, n);
		examine(s.path, &o);
		check(&o, &x, what);
	}
	scratch_close(&s);
}

static void test_zero_tail_every_offset(void **state)
{
	uint8_t *b = malloc(fx.len);
	struct scratch s;
	struct outcome o;
	struct expect x;
	char what[160], where[96];
	unsigned at_start = 0, torn = 0, damaged = 0;

	(void)state;
	assert_non_null(b);
	scratch_open(&s);
	for (size_t z = fx.hdr_len; z < fx.len; z++) {
		memcpy(b, fx.b, z);
		memset(b + z, 0, fx.len - z);
		snprintf(what, sizeof(what), "zeros from %s to the end",
			 describe(z, where, sizeof(where)));
		expect_zero_tail(s.path, z, &x);
		scratch_set(&s, b, fx.len);
		examine(s.path, &o);
		check(&o, &x, what);
		if (x.v == CUT_SHORT) {
			/* Torn: bytes written survive between the frame's
			 * (or trailer's) start and the zeros. */
			bool kept = false;

			for (size_t i = (size_t)x.at; i < z; i++)
				kept |= fx.b[i] != 0;
			kept ? torn++ : at_start++;
		} else if (x.v == CORRUPT) {
			damaged++;
		}
	}
	scratch_close(&s);
	free(b);
	/* All three outcomes occur, so none of the rules is untested. */
	printf("zero tails: %u cut short at a frame or the trailer, %u torn inside one, %u damage\n",
	       at_start, torn, damaged);
	assert_true(at_start > 0 && torn > 0 && damaged > 0);
}

/*
 * The file with the original frames in `order` (n of them).  Forged: each
 * frame's seq, first_event and exit_base rewritten for its new place and
 * its header checksum recomputed, and the trailer rebuilt for the new
 * frames (count, final hash of the last, checksum): everything a forger
 * can fix but the chain (SPEC.md 6).  Returns the length.
 */
static size_t rearrange(const size_t *order, size_t n, bool forge, uint8_t *out)
{
	uint8_t last[TRACE_HASH_SIZE];
	uint64_t events = 0, exits = 0;
	size_t pos = fx.hdr_len;

	memcpy(out, fx.b, fx.hdr_len);
	memcpy(last, fx.chain[0], TRACE_HASH_SIZE);
	for (size_t i = 0; i < n; i++) {
		const struct frame_loc *f = &fx.f[order[i]];
		uint8_t *h = out + pos;

		memcpy(h, fx.b + f->off, f->size);
		if (forge) {
			put_le64(h + FH_SEQ, i);
			put_le64(h + FH_FIRST_EVENT, events);
			put_le64(h + FH_EXIT_BASE, exits);
			put_le64(h + FH_HDR_XXH,
				 trace_frame_hdr_xxh(h, TRACE_FRAME_HDR_SIZE));
		}
		trace_sha256_2(h, f->size, NULL, 0, last);
		events += f->events;
		exits += f->exits;
		pos += f->size;
	}
	if (forge)
		trace_trailer_pack(n, last, out + pos);
	else
		memcpy(out + pos, fx.b + fx.trailer, TRACE_TRAILER_SIZE);
	return pos + TRACE_TRAILER_SIZE;
}

/*
 * SPEC.md 10 steps 13, 17, 20 and 30: the reader stops at the first place
 * p where the frames differ from the original's.  There: after the END
 * frame, a frame instead of the trailer; before END, the trailer; else the
 * sequence number, or, when forged, the chain.
 */
static void expect_splice(const char *path, const size_t *order, size_t n,
			  bool forge, struct expect *x)
{
	size_t p = 0;

	while (p < n && p < fx.nf && order[p] == p)
		p++;
	if (p == fx.nf)
		expect_set(x, CORRUPT, p, 0,
			   "%s: trailer at offset %zu: a frame follows the END record",
			   path, fx.trailer);
	else if (p == n)
		expect_set(x, CORRUPT, p, 0,
			   "%s: frame %zu at offset %zu: trailer found, but no END record before it",
			   path, p, fx.f[p].off);
	else if (!forge)
		expect_set(x, CORRUPT, p, 0,
			   "%s: frame %zu at offset %zu: sequence number %zu, expected %zu (frame missing, duplicated or out of order)",
			   path, p, fx.f[p].off, order[p], p);
	else
		expect_set(x, CORRUPT, p, 0,
			   "%s: frame %zu at offset %zu: chain hash mismatch: %s",
			   path, p, fx.f[p].off,
			   p ? "the previous frame was altered, removed or replaced"
			     : "frame does not follow this file header");
}

static void try_splice(struct scratch *s, uint8_t *buf, const size_t *order,
		       size_t n, const char *what)
{
	char full[128];
	struct outcome o;
	struct expect x;

	for (int forge = 0; forge < 2; forge++) {
		snprintf(full, sizeof(full), "%s%s", what,
			 forge ? ", renumbered and re-checksummed" : "");
		scratch_set(s, buf, rearrange(order, n, forge, buf));
		expect_splice(s->path, order, n, forge, &x);
		examine(s->path, &o);
		check(&o, &x, full);
	}
}

static void test_spliced_frames(void **state)
{
	uint8_t *buf = malloc(2 * fx.len);
	size_t order[MAXF + 1], n;
	struct scratch s;
	char what[64];

	(void)state;
	assert_non_null(buf);
	scratch_open(&s);
	for (size_t k = 0; k < fx.nf; k++) {	/* frame k removed */
		n = 0;
		for (size_t i = 0; i < fx.nf; i++)
			if (i != k)
				order[n++] = i;
		snprintf(what, sizeof(what), "frame %zu removed", k);
		try_splice(&s, buf, order, n, what);
	}
	for (size_t i = 0; i < fx.nf; i++) {	/* frames i and j swapped */
		for (size_t j = i + 1; j < fx.nf; j++) {
			for (size_t m = 0; m < fx.nf; m++)
				order[m] = m == i ? j : m == j ? i : m;
			snprintf(what, sizeof(what), "frames %zu and %zu swapped", i, j);
			try_splice(&s, buf, order, fx.nf, what);
		}
	}
	for (size_t k = 0; k < fx.nf; k++) {	/* frame k twice in a row */
		n = 0;
		for (size_t i = 0; i < fx.nf; i++) {
			order[n++] = i;
			if (i == k)
				order[n++] = i;
		}
		snprintf(what, sizeof(what), "frame %zu duplicated", k);
		try_splice(&s, buf, order, n, what);
	}
	scratch_close(&s);
	free(buf);
}

/*
 * SPEC.md 7 and 10 step 35: the file MUST end right after the trailer;
 * anything after it, zeros included, is corruption ("unexpected data after
 * the trailer"), reported once every event has been delivered.
 */
static void test_data_after_trailer(void **state)
{
	static const char *const kinds[] = {
		"zeros", "0xff bytes", "noise", "copies of frame 0",
		"copies of the trailer",
	};
	uint8_t *buf = malloc(fx.len + GARBAGE_MAX);
	struct scratch s;
	struct outcome o;
	struct expect x;
	char what[96];

	(void)state;
	assert_non_null(buf);
	memcpy(buf, fx.b, fx.len);
	scratch_open(&s);
	for (size_t kind = 0; kind < sizeof(kinds) / sizeof(kinds[0]); kind++) {
		for (size_t g = 1; g <= GARBAGE_MAX; g++) {
			uint8_t *t = buf + fx.len;

			for (size_t i = 0; i < g; i++)
				t[i] = kind == 0 ? 0 : kind == 1 ? 0xff
				     : kind == 2 ? (uint8_t)mix(i)
				     : kind == 3 ? fx.b[fx.f[0].off + i % fx.f[0].size]
				     : fx.b[fx.trailer + i % TRACE_TRAILER_SIZE];
			snprintf(what, sizeof(what), "%zu bytes of %s after the trailer",
				 g, kinds[kind]);
			expect_set(&x, CORRUPT, fx.nf, 0,
				   "%s: trailer at offset %zu: %zu bytes of unexpected data after the trailer (from offset %zu)",
				   s.path, fx.trailer, g, fx.len);
			scratch_set(&s, buf, fx.len + g);
			examine(s.path, &o);
			check(&o, &x, what);
		}
	}
	scratch_close(&s);
	free(buf);
}

/*
 * Header fields and minor flipped, the header checksum recomputed.  The
 * header then either fails its own checks at open (SPEC.md 10 steps 8-9),
 * or it is a different header whose hash no longer starts the chain:
 * frame 0 is refused and no event comes out (SPEC.md 6, "Altering the
 * header breaks frame 0's prev_hash").
 */
static void test_resealed_header_flips(void **state)
{
	size_t csum = fx.hdr_len - TRACE_FILE_CSUM, refused = 0, chained = 0;
	uint8_t *h = malloc(fx.hdr_len), hh[TRACE_HASH_SIZE];
	struct scratch s;
	struct outcome o;
	struct expect x;
	char what[160], where[96];

	(void)state;
	assert_non_null(h);
	scratch_open(&s);
	scratch_set(&s, fx.b, fx.len);
	for (size_t off = 10; off < csum; off++) {
		if (off >= 12 && off < TRACE_FILE_FIXED)
			continue;	/* body_len: test_flip_every_bit */
		for (int bit = 0; bit < 8; bit++) {
			memcpy(h, fx.b, fx.hdr_len);
			h[off] ^= (uint8_t)(1u << bit);
			put_le64(h + csum, XXH3_64bits(h, csum));
			scratch_patch(&s, 0, h, fx.hdr_len);
			snprintf(what, sizeof(what),
				 "bit %d flipped at %s, header checksum recomputed",
				 bit, describe(off, where, sizeof(where)));
			examine(s.path, &o);
			if (!o.opened) {
				/* Any reason, but a reason: the path and words. */
				expect_set(&x, REFUSED, 0, 0, "%s: ", s.path);
				refused++;
			} else {
				expect_set(&x, CORRUPT, 0, 0,
					   "%s: frame 0 at offset %zu: chain hash mismatch: frame does not follow this file header",
					   s.path, fx.hdr_len);
				trace_sha256_2(h, fx.hdr_len, NULL, 0, hh);
				x.fingerprint = hh;
				chained++;
			}
			check(&o, &x, what);
			if (strlen(o.err) <= strlen(s.path) + 2)
				fail_msg("%s: empty reason \"%s\"", what, o.err);
		}
	}
	scratch_patch(&s, 0, fx.b, fx.hdr_len);
	scratch_close(&s);
	free(h);
	print_message("resealed header flips: %zu refused at open, %zu caught by the chain at frame 0\n",
		      refused, chained);
}

/*
 * A frame header field flipped and the header checksum recomputed: the
 * frame's own checks still refuse it, at its offset (SPEC.md 10 steps
 * 13-26), with one exception the SPEC makes: a comp_len grown past the end
 * of the file reads as a frame whose write never finished, so the trace is
 * cut short there (step 22).
 */
static void expect_resealed_frame_hdr(const char *path, size_t k, size_t rel,
				      const uint8_t *h, struct expect *x)
{
	const struct frame_loc *f = &fx.f[k];
	uint32_t comp = get_le32(h + FH_COMP_LEN);
	const char *why = "";

	if (rel < FH_HDR_SIZE)
		why = "bad frame magic";
	else if (rel < FH_SEQ)
		why = "frame header size";
	else if (rel < FH_FIRST_EVENT)
		why = "sequence number";
	else if (rel < FH_EXIT_BASE)
		why = "first event ordinal";
	else if (rel < FH_EVENTS)
		why = "exit ordinal base";
	else if (rel >= FH_COMP_LEN && rel < FH_RAW_LEN) {
		if (comp && comp <= ZSTD_compressBound(f->raw_len) &&
		    f->off + TRACE_FRAME_HDR_SIZE + comp > fx.len) {
			expect_set(x, CUT_SHORT, k, f->off,
				   "%s: cut short at offset %zu after %zu frames",
				   path, f->off, k);
			return;
		}
		why = comp && comp <= ZSTD_compressBound(f->raw_len)
		      ? "payload checksum mismatch" : "compressed length";
	} else if (rel >= FH_PAYLOAD_XXH && rel < FH_PREV_HASH)
		why = "payload checksum mismatch";
	else if (rel >= FH_PREV_HASH)
		why = "chain hash mismatch";
	/* events, exits, raw_len: one of several checks; the place is the point */
	expect_set(x, CORRUPT, k, 0, "%s: frame %zu at offset %zu: %s", path, k,
		   f->off, why);
}

static void test_resealed_frame_header_flips(void **state)
{
	uint8_t h[TRACE_FRAME_HDR_SIZE];
	size_t cases = 0, cut = 0;
	struct scratch s;
	struct outcome o;
	struct expect x;
	char what[160], where[96];

	(void)state;
	scratch_open(&s);
	scratch_set(&s, fx.b, fx.len);
	for (size_t k = 0; k < fx.nf; k++) {
		for (size_t rel = 0; rel < FH_HDR_XXH; rel++) {
			for (int bit = 0; bit < 8; bit++) {
				memcpy(h, fx.b + fx.f[k].off, sizeof(h));
				h[rel] ^= (uint8_t)(1u << bit);
				put_le64(h + FH_HDR_XXH,
					 trace_frame_hdr_xxh(h, TRACE_FRAME_HDR_SIZE));
				scratch_patch(&s, fx.f[k].off, h, sizeof(h));
				snprintf(what, sizeof(what),
					 "bit %d flipped at %s, frame header checksum recomputed",
					 bit, describe(fx.f[k].off + rel, where, sizeof(where)));
				expect_resealed_frame_hdr(s.path, k, rel, h, &x);
				examine(s.path, &o);
				check(&o, &x, what);
				cases++;
				cut += x.v == CUT_SHORT;
			}
		}
		scratch_patch(&s, fx.f[k].off, fx.b + fx.f[k].off,
			      TRACE_FRAME_HDR_SIZE);
	}
	scratch_close(&s);
	print_message("resealed frame header flips: %zu, all refused at their frame (%zu cut short there by a comp_len past the end)\n",
		      cases, cut);
}

/*
 * A payload bit flipped, payload_xxh and the header checksum recomputed.
 * Frame k fails its own checks (zstd, event decoding, counts, time), or it
 * passes them and is delivered as it now reads (SPEC.md 10 step 28 allows
 * that: its hash is checked by what follows it), and then the next frame's
 * prev_hash, or the trailer's final hash, refuses the file (SPEC.md 6).
 * Either way verify fails and nothing before frame k changes.
 */
static void test_resealed_payload_flips(void **state)
{
	size_t at_frame = 0, by_chain = 0, altered = 0;
	uint8_t *buf = malloc(fx.len);
	struct scratch s;
	struct outcome o;
	char what[160], where[96], here[MSG_MAX];

	(void)state;
	assert_non_null(buf);
	scratch_open(&s);
	scratch_set(&s, fx.b, fx.len);
	for (size_t k = 0; k < fx.nf; k++) {
		const struct frame_loc *f = &fx.f[k];
		size_t next = frame_off(k + 1);
		uint8_t *h = buf + f->off, *p = h + TRACE_FRAME_HDR_SIZE;

		for (size_t rel = 0; rel < f->comp_len; rel++) {
			for (int bit = 0; bit < 8; bit++) {
				char chain_msg[3][MSG_MAX];
				bool later = false;

				memcpy(h, fx.b + f->off, f->size);
				p[rel] ^= (uint8_t)(1u << bit);
				put_le64(h + FH_PAYLOAD_XXH, XXH3_64bits(p, f->comp_len));
				put_le64(h + FH_HDR_XXH,
					 trace_frame_hdr_xxh(h, TRACE_FRAME_HDR_SIZE));
				scratch_patch(&s, f->off, h, f->size);
				snprintf(what, sizeof(what),
					 "bit %d flipped at %s, checksums recomputed", bit,
					 describe(f->off + TRACE_FRAME_HDR_SIZE + rel,
						  where, sizeof(where)));
				examine(s.path, &o);

				if (!o.opened || o.ret != -1 || o.vret != -1)
					fail_msg("%s: reader %s %d, verify %d (%s): expected both to fail",
						 what, o.opened ? "ended with" : "refused it,",
						 o.ret, o.vret, o.verr);
				if (strcmp(o.err, o.verr))
					fail_msg("%s: verify says \"%s\", the reader \"%s\"",
						 what, o.verr, o.err);
				/* Caught after frame k: by its successor. */
				snprintf(chain_msg[0], MSG_MAX,
					 "%s: frame %zu at offset %zu: chain hash mismatch: the previous frame was altered, removed or replaced",
					 s.path, k + 1, next);
				snprintf(chain_msg[1], MSG_MAX,
					 k + 1 < fx.nf
					 ? "%s: trailer at offset %zu: a frame follows the END record"
					 : "%s: trailer at offset %zu: final hash does not match the last frame",
					 s.path, next);
				snprintf(chain_msg[2], MSG_MAX,
					 "%s: frame %zu at offset %zu: trailer found, but no END record before it",
					 s.path, k + 1, next);
				for (int m = 0; m < 3; m++)
					later |= !strcmp(o.err, chain_msg[m]);
				snprintf(here, sizeof(here), "%s: frame %zu at offset %zu: ",
					 s.path, k, f->off);
				if (later) {
					/* Frame k passed its checks and came out. */
					if (o.same < f->first_event ||
					    o.delivered != events_before(k + 1))
						fail_msg("%s: %llu events delivered (%llu as written) before \"%s\"",
							 what, (unsigned long long)o.delivered,
							 (unsigned long long)o.same, o.err);
					if (o.rep.frames != k + 1)
						fail_msg("%s: verify counted %llu frames before \"%s\"",
							 what, (unsigned long long)o.rep.frames, o.err);
					by_chain++;
					altered += o.same < o.delivered;
				} else if (!strncmp(o.err, here, strlen(here))) {
					check_events(&o, k, what);
					check_report(&o, k, NULL, what);
					at_frame++;
				} else {
					fail_msg("%s: error \"%s\", expected it at frame %zu (offset %zu) or at offset %zu",
						 what, o.err, k, f->off, next);
				}
			}
		}
		scratch_patch(&s, f->off, fx.b + f->off, f->size);
	}
	scratch_close(&s);
	free(buf);
	print_message("resealed payload flips: %zu refused by the frame's own checks, %zu passed them and were caught by the chain (%zu of those delivered altered events first)\n",
		      at_frame, by_chain, altered);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pristine),
		cmocka_unit_test(test_flip_every_bit),
		cmocka_unit_test(test_truncate_every_length),
		cmocka_unit_test(test_zero_tail_every_offset),
		cmocka_unit_test(test_spliced_frames),
		cmocka_unit_test(test_data_after_trailer),
		cmocka_unit_test(test_resealed_header_flips),
		cmocka_unit_test(test_resealed_frame_header_flips),
		cmocka_unit_test(test_resealed_payload_flips),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
