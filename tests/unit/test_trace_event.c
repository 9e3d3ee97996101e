/*
 * test_trace_event.c - the pieces of the trace format that need no file:
 * LEB128 varints, the encoding of every event type (extreme values, and
 * everything the decoder must refuse), and the header's TLV fields.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <xxhash.h>

#include "trace-format/trace_internal.h"

/* ---- varints ---- */

static void test_varint_roundtrip(void **state)
{
	static const uint64_t vals[] = {
		0, 1, 0x7f, 0x80, 0x3fff, 0x4000, 0xffffffffull,
		1ull << 56, (1ull << 63) - 1, 1ull << 63, UINT64_MAX,
	};
	static const int lens[] = { 1, 1, 1, 2, 2, 3, 5, 9, 9, 10, 10 };
	uint8_t b[VARINT_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		uint64_t v;
		size_t n = varint_put(b, vals[i]);

		assert_int_equal(n, lens[i]);
		assert_int_equal(varint_get(b, n, &v), (int)n);
		assert_true(v == vals[i]);
		/* One byte short is always "truncated". */
		assert_int_equal(varint_get(b, n - 1, &v), VARINT_TRUNCATED);
	}
}

static void test_varint_rejects(void **state)
{
	uint64_t v;
	const uint8_t overlong[] = { 0x80, 0x00 };	/* 0 in two bytes */
	const uint8_t overlong2[] = { 0xff, 0x80, 0x00 };
	const uint8_t overflow[] = { 0xff, 0xff, 0xff, 0xff, 0xff,
				     0xff, 0xff, 0xff, 0xff, 0x02 };
	const uint8_t eleven[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
				   0x80, 0x80, 0x80, 0x81, 0x00 };

	(void)state;
	assert_int_equal(varint_get(overlong, 2, &v), VARINT_OVERLONG);
	assert_int_equal(varint_get(overlong2, 3, &v), VARINT_OVERLONG);
	assert_int_equal(varint_get(overflow, 10, &v), VARINT_OVERFLOW);
	assert_int_equal(varint_get(eleven, 11, &v), VARINT_OVERFLOW);
	assert_int_equal(varint_get(overlong, 0, &v), VARINT_TRUNCATED);
}

/* ---- events ---- */

static void assert_ev_equal(const struct trace_event *a,
			    const struct trace_event *b)
{
	assert_int_equal(a->type, b->type);
	switch (a->type) {
	case TRACE_EV_EXIT_IO:
		assert_int_equal(a->io.flags, b->io.flags);
		assert_int_equal(a->io.port, b->io.port);
		assert_int_equal(a->io.count, b->io.count);
		if ((a->io.flags & TRACE_IOF_WRITE) &&
		    !(a->io.flags & TRACE_IOF_STRING))
			assert_true(a->io.value == b->io.value);
		break;
	case TRACE_EV_EXIT_MMIO:
		assert_int_equal(a->mmio.flags, b->mmio.flags);
		assert_true(a->mmio.gpa == b->mmio.gpa);
		if (a->mmio.flags & TRACE_IOF_WRITE)
			assert_true(a->mmio.value == b->mmio.value);
		break;
	case TRACE_EV_EXIT_MSR:
		assert_int_equal(a->msr.flags, b->msr.flags);
		assert_int_equal(a->msr.index, b->msr.index);
		if (a->msr.flags & TRACE_IOF_WRITE)
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
		assert_true(a->end.total_exits == b->end.total_exits);
		assert_true(a->end.total_events == b->end.total_events);
		assert_true(a->end.regs_hash == b->end.regs_hash);
		assert_true(a->end.mem_hash.lo == b->end.mem_hash.lo);
		assert_true(a->end.mem_hash.hi == b->end.mem_hash.hi);
		break;
	}
}

static uint8_t big[TRACE_ENTROPY_MAX];

/* Encode then decode one event: same event, same length, same time. */
static size_t roundtrip(const struct trace_event *ev, uint64_t *tenc,
			uint64_t *tdec)
{
	uint8_t buf[TRACE_EVENT_MAX_ENC];
	struct trace_event out;
	const char *why = NULL;
	size_t n, used;

	assert_int_equal(trace_event_encode(ev, tenc, buf, &n, &why), 0);
	assert_true(n <= TRACE_EVENT_MAX_ENC);
	assert_int_equal(trace_event_decode(buf, n, tdec, &out, &used, &why), 0);
	assert_int_equal(used, n);
	assert_ev_equal(ev, &out);
	assert_true(*tenc == *tdec);
	/* Every proper prefix is refused, never misread. */
	for (size_t k = 0; k < n; k++) {
		uint64_t t = *tdec;

		assert_int_equal(trace_event_decode(buf, k, &t, &out, &used,
						    &why), -1);
	}
	return n;
}

static void test_event_roundtrip_extremes(void **state)
{
	const uint64_t M = UINT64_MAX;
	struct trace_event evs[] = {
		{ .type = TRACE_EV_EXIT_IO, .io = { TRACE_IOF_WRITE, 0x20, 1, 0x20 } },
		{ .type = TRACE_EV_EXIT_IO, .io = { TRACE_IOF_WRITE | TRACE_IOF_SIZE(2), 0xffff, 1, 0xffffffff } },
		{ .type = TRACE_EV_EXIT_IO, .io = { TRACE_IOF_SIZE(1), 0, 1, 0 } },
		{ .type = TRACE_EV_EXIT_IO, .io = { TRACE_IOF_STRING | TRACE_IOF_WRITE, 0x3f8, UINT32_MAX, 0 } },
		{ .type = TRACE_EV_EXIT_IO, .io = { TRACE_IOF_STRING | TRACE_IOF_SIZE(2), 0x1f0, 1, 0 } },
		{ .type = TRACE_EV_EXIT_MMIO, .mmio = { TRACE_IOF_WRITE | TRACE_IOF_SIZE(3), M, M } },
		{ .type = TRACE_EV_EXIT_MMIO, .mmio = { TRACE_IOF_SIZE(0), 0, 0 } },
		{ .type = TRACE_EV_EXIT_MMIO, .mmio = { TRACE_IOF_WRITE, 0xfee000b0, 0xff } },
		{ .type = TRACE_EV_EXIT_HLT },
		{ .type = TRACE_EV_EXIT_MSR, .msr = { TRACE_IOF_WRITE, UINT32_MAX, M } },
		{ .type = TRACE_EV_EXIT_MSR, .msr = { 0, 0x10, 0 } },
		{ .type = TRACE_EV_EXIT_LANDMARK, .landmark = { M, M, M } },
		{ .type = TRACE_EV_EXIT_LANDMARK, .landmark = { 0, 0, 0 } },
		{ .type = TRACE_EV_CLOCK, .time = { 0 } },
		{ .type = TRACE_EV_CLOCK, .time = { 10000000 } },
		{ .type = TRACE_EV_TIMER, .time = { 10000000 } },	/* delta 0 */
		{ .type = TRACE_EV_TIMER, .time = { M } },
		{ .type = TRACE_EV_ENTROPY, .bytes = { 0, NULL } },
		{ .type = TRACE_EV_ENTROPY, .bytes = { TRACE_ENTROPY_MAX, big } },
		{ .type = TRACE_EV_CONSOLE_IN, .bytes = { 1, (const uint8_t *)"x" } },
		{ .type = TRACE_EV_CONSOLE_IN, .bytes = { TRACE_CONSOLE_MAX, big } },
		{ .type = TRACE_EV_IRQ, .irq = { 0 } },
		{ .type = TRACE_EV_IRQ, .irq = { 255 } },
		{ .type = TRACE_EV_DIGEST, .digest = { M, { M, 0 } } },
		{ .type = TRACE_EV_DIGEST, .digest = { 0, { 1, M } } },
		{ .type = TRACE_EV_END, .end = { 255, M, M, M, M, { M, M } } },
		{ .type = TRACE_EV_END, .end = { 0, 0, 0, 0, 0, { 0, 0 } } },
	};
	uint64_t tenc = 0, tdec = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 131 + 7);
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		roundtrip(&evs[i], &tenc, &tdec);
}

/* The sizes SPEC.md promises for the common exits. */
static void test_event_sizes(void **state)
{
	uint64_t t0 = 0, t1 = 0;
	struct trace_event eoi = {
		.type = TRACE_EV_EXIT_IO,
		.io = { TRACE_IOF_WRITE, 0x20, 1, 0x20 },
	};
	struct trace_event hlt = { .type = TRACE_EV_EXIT_HLT };
	struct trace_event irq = { .type = TRACE_EV_IRQ, .irq = { 0x20 } };
	struct trace_event tmr = { .type = TRACE_EV_TIMER, .time = { 10000000 } };

	(void)state;
	assert_int_equal(roundtrip(&eoi, &t0, &t1), 5);
	assert_int_equal(roundtrip(&hlt, &t0, &t1), 1);
	assert_int_equal(roundtrip(&irq, &t0, &t1), 2);
	assert_int_equal(roundtrip(&tmr, &t0, &t1), 5);	/* 10 ms: 4 bytes */
}

static void expect_encode_fails(const struct trace_event *ev)
{
	uint8_t buf[TRACE_EVENT_MAX_ENC];
	uint64_t t = 0;
	const char *why = NULL;
	size_t n;

	assert_int_equal(trace_event_encode(ev, &t, buf, &n, &why), -1);
	assert_non_null(why);
}

static void test_event_encode_rejects(void **state)
{
	struct trace_event bad[] = {
		{ .type = 0 },
		{ .type = 0x06 },
		{ .type = 0x7f },
		{ .type = TRACE_EV_EXIT_IO, .io = { 0x20, 0x20, 1, 0 } },
		{ .type = TRACE_EV_EXIT_IO, .io = { TRACE_IOF_SIZE(3), 0x20, 1, 0 } },
		{ .type = TRACE_EV_EXIT_IO, .io = { 0, 0x20, 0, 0 } },
		{ .type = TRACE_EV_EXIT_IO, .io = { 0, 0x20, 2, 0 } },
		{ .type = TRACE_EV_EXIT_IO, .io = { TRACE_IOF_WRITE, 0x20, 1, 0x100 } },
		{ .type = TRACE_EV_EXIT_MMIO, .mmio = { TRACE_IOF_SIZE(4), 0, 0 } },
		{ .type = TRACE_EV_EXIT_MMIO, .mmio = { 0x40, 0, 0 } },
		{ .type = TRACE_EV_EXIT_MMIO, .mmio = { TRACE_IOF_WRITE | TRACE_IOF_SIZE(1), 0, 0x10000 } },
		{ .type = TRACE_EV_EXIT_MSR, .msr = { 2, 0, 0 } },
		{ .type = TRACE_EV_ENTROPY, .bytes = { TRACE_ENTROPY_MAX + 1, big } },
		{ .type = TRACE_EV_CONSOLE_IN, .bytes = { TRACE_CONSOLE_MAX + 1, big } },
		{ .type = TRACE_EV_CONSOLE_IN, .bytes = { 3, NULL } },
	};
	struct trace_event clk = { .type = TRACE_EV_CLOCK, .time = { 5 } };
	uint8_t buf[TRACE_EVENT_MAX_ENC];
	uint64_t t = 6;
	const char *why;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_encode_fails(&bad[i]);
	/* Time never goes back; the base is unchanged by the refusal. */
	assert_int_equal(trace_event_encode(&clk, &t, buf, &n, &why), -1);
	assert_true(t == 6);
}

static void expect_decode_fails(const uint8_t *b, size_t n, uint64_t t)
{
	struct trace_event ev;
	const char *why = NULL;
	size_t used;

	assert_int_equal(trace_event_decode(b, n, &t, &ev, &used, &why), -1);
	assert_non_null(why);
}

static void test_event_decode_rejects(void **state)
{
	(void)state;
	/* Unknown types: 0, unassigned exit, unassigned non-exit, high. */
	expect_decode_fails((const uint8_t[]){ 0x00 }, 1, 0);
	expect_decode_fails((const uint8_t[]){ 0x06 }, 1, 0);
	expect_decode_fails((const uint8_t[]){ 0x16 }, 1, 0);
	expect_decode_fails((const uint8_t[]){ 0xff }, 1, 0);
	/* IO: reserved flag, port > 0xffff, count 0, overlong port. */
	expect_decode_fails((const uint8_t[]){ 0x01, 0x40, 0x20, 0x01 }, 4, 0);
	expect_decode_fails((const uint8_t[]){ 0x01, 0x00, 0x80, 0x80, 0x04, 0x01 }, 6, 0);
	expect_decode_fails((const uint8_t[]){ 0x01, 0x00, 0x20, 0x00 }, 4, 0);
	expect_decode_fails((const uint8_t[]){ 0x01, 0x00, 0xa0, 0x00, 0x01 }, 5, 0);
	/* IO write of 0x100 with a 1-byte access. */
	expect_decode_fails((const uint8_t[]){ 0x01, 0x01, 0x20, 0x01, 0x80, 0x02 }, 6, 0);
	/* MSR: reserved flag; index above 32 bits. */
	expect_decode_fails((const uint8_t[]){ 0x04, 0x02, 0x10 }, 3, 0);
	expect_decode_fails((const uint8_t[]){ 0x04, 0x00, 0x80, 0x80, 0x80, 0x80, 0x10 }, 7, 0);
	/* Time overflowing 64 bits from a nonzero base. */
	expect_decode_fails((const uint8_t[]){ 0x10, 0xff, 0xff, 0xff, 0xff, 0xff,
					       0xff, 0xff, 0xff, 0xff, 0x01 }, 11, 1);
	/* ENTROPY longer than the limit; length past the payload. */
	expect_decode_fails((const uint8_t[]){ 0x12, 0x81, 0x80, 0x04 }, 4, 0);
	expect_decode_fails((const uint8_t[]){ 0x13, 0x05, 'a', 'b' }, 4, 0);
	/* Truncated fixed-size fields. */
	expect_decode_fails((const uint8_t[]){ 0x15, 1, 2, 3, 4, 5, 6, 7, 8 }, 9, 0);
	expect_decode_fails((const uint8_t[]){ 0x14 }, 1, 0);
	expect_decode_fails((const uint8_t[]){ 0 }, 0, 0);
}

static void test_event_names(void **state)
{
	(void)state;
	assert_string_equal(trace_event_type_name(TRACE_EV_EXIT_LANDMARK),
			    "EXIT_LANDMARK");
	assert_null(trace_event_type_name(0x06));
	assert_true(trace_event_is_exit(TRACE_EV_EXIT_IO));
	assert_true(trace_event_is_exit(TRACE_EV_EXIT_LANDMARK));
	assert_false(trace_event_is_exit(TRACE_EV_CLOCK));
	assert_false(trace_event_is_exit(TRACE_EV_END));
}

/* ---- header fields ---- */

static struct trace_header *decode_of(const struct trace_header *h, char *err,
				      size_t errlen)
{
	uint8_t *b;
	size_t n;
	struct trace_header *out;

	assert_int_equal(trace_header_encode(h, &b, &n, err, errlen), 0);
	out = trace_header_decode(b, n, err, errlen);
	free(b);
	return out;
}

static void test_header_tlv_roundtrip(void **state)
{
	struct trace_header *h = trace_header_new(), *g;
	struct kvm_cpuid_entry2 cpuid[3] = {
		{ .function = 0, .eax = 0xd },
		{ .function = 1, .index = 0, .ecx = 0x80000000 },
		{ .function = 7, .index = 0, .ebx = 0x209c01a9 },
	};
	struct trace_msr msrs[2] = {
		{ 0x10, 0, 0x123456789abcdefull }, { 0xc0000080, 0, 0x500 },
	};
	struct trace_hash128 kh = { 0x1111, 0x2222 }, dh = { 3, 4 };
	struct trace_file_id id;
	const struct kvm_cpuid_entry2 *c;
	const struct trace_msr *m;
	uint32_t xs;
	uint64_t v, xcr0;
	size_t n, len;
	uint16_t tag, major, minor;
	char err[256];

	(void)state;
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_DETVM_VERSION, "0.1.0"), 0);
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_MEM_SIZE, 64ull << 20), 0);
	assert_int_equal(trace_header_add(h, TRACE_TAG_CPUID, cpuid, sizeof(cpuid)), 0);
	assert_int_equal(trace_header_add(h, TRACE_TAG_MSRS, msrs, sizeof(msrs)), 0);
	assert_int_equal(trace_header_add_xsave(h, 832, 7), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_CMDLINE, ""), 0);
	assert_int_equal(trace_header_add_file_id(h, TRACE_TAG_KERNEL_ID, 4096, &kh, "guests/hello.elf"), 0);
	assert_int_equal(trace_header_add_file_id(h, TRACE_TAG_DISK_ID, 1ull << 30, &dh, "/d.img"), 0);
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_BOOT_EPOCH_NS, UINT64_MAX), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_HOST, "6.18 AMD EPYC"), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_PROGRESS_COUNTER, "insn_emulation"), 0);
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_LANDMARK_BOUND_NS, 1000000), 0);
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_DIGEST_INTERVAL, 100000), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_BOOT_MODE, "multiboot"), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_SERIAL_IN, "stdin"), 0);
	assert_int_equal(trace_header_check_required(h, err, sizeof(err)), 0);

	g = decode_of(h, err, sizeof(err));
	assert_non_null(g);
	trace_header_version(g, &major, &minor);
	assert_int_equal(major, TRACE_FORMAT_MAJOR);
	assert_int_equal(minor, TRACE_FORMAT_MINOR);
	assert_int_equal(trace_header_count(g), 15);
	/* File order is insertion order. */
	assert_non_null(trace_header_at(g, 1, &tag, &len));
	assert_int_equal(tag, TRACE_TAG_MEM_SIZE);
	assert_int_equal(len, 8);
	assert_string_equal(trace_header_get_str(g, TRACE_TAG_DETVM_VERSION), "0.1.0");
	assert_int_equal(trace_header_get_u64(g, TRACE_TAG_MEM_SIZE, &v), 0);
	assert_true(v == 64ull << 20);
	c = trace_header_get_cpuid(g, &n);
	assert_non_null(c);
	assert_int_equal(n, 3);
	assert_memory_equal(c, cpuid, sizeof(cpuid));
	m = trace_header_get_msrs(g, &n);
	assert_int_equal(n, 2);
	assert_true(m[1].index == 0xc0000080 && m[1].value == 0x500);
	assert_int_equal(trace_header_get_xsave(g, &xs, &xcr0), 0);
	assert_true(xs == 832 && xcr0 == 7);
	assert_string_equal(trace_header_get_str(g, TRACE_TAG_CMDLINE), "");
	assert_int_equal(trace_header_get_file_id(g, TRACE_TAG_KERNEL_ID, &id), 0);
	assert_true(id.size == 4096 && id.hash.lo == 0x1111 && id.hash.hi == 0x2222);
	assert_string_equal(id.path, "guests/hello.elf");
	assert_int_equal(trace_header_get_file_id(g, TRACE_TAG_DISK_ID, &id), 0);
	assert_string_equal(id.path, "/d.img");
	assert_int_equal(trace_header_get_u64(g, TRACE_TAG_BOOT_EPOCH_NS, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_string_equal(trace_header_get_str(g, TRACE_TAG_HOST), "6.18 AMD EPYC");
	assert_string_equal(trace_header_get_str(g, TRACE_TAG_BOOT_MODE), "multiboot");
	assert_null(trace_header_get(g, 0x7777, NULL));
	assert_int_equal(trace_header_get_u64(g, TRACE_TAG_CMDLINE, &v), -1);
	assert_string_equal(trace_tag_name(TRACE_TAG_LANDMARK_BOUND_NS), "LANDMARK_BOUND_NS");
	assert_null(trace_tag_name(0x7777));
	trace_header_free(g);
	trace_header_free(h);
}

static void test_header_unknown_tags(void **state)
{
	struct trace_header *h = trace_header_new(), *g;
	char err[256];
	size_t len;
	const char *v;

	(void)state;
	/* Non-critical: skipped by a reader that does not know it, kept. */
	assert_int_equal(trace_header_add(h, 0x0123, "opaque", 6), 0);
	assert_int_equal(trace_header_add(h, 0x7fff, NULL, 0), 0);
	g = decode_of(h, err, sizeof(err));
	assert_non_null(g);
	v = trace_header_get(g, 0x0123, &len);
	assert_int_equal(len, 6);
	assert_memory_equal(v, "opaque", 6);
	assert_non_null(trace_header_get(g, 0x7fff, &len));
	assert_int_equal(len, 0);
	trace_header_free(g);
	/* Critical and unknown: refused, with a message saying so. */
	assert_int_equal(trace_header_add(h, 0x8123, "x", 1), 0);
	g = decode_of(h, err, sizeof(err));
	assert_null(g);
	assert_non_null(strstr(err, "0x8123 is critical but unknown"));
	trace_header_free(h);
}

static void expect_invalid(uint16_t tag, const void *v, size_t len,
			   const char *msg)
{
	struct trace_header *h = trace_header_new();
	char err[256];

	assert_int_equal(trace_header_add(h, tag, v, len), 0);
	assert_int_equal(trace_header_validate(h, err, sizeof(err)), -1);
	assert_non_null(strstr(err, msg));
	assert_null(decode_of(h, err, sizeof(err)));
	trace_header_free(h);
}

static void test_header_validation(void **state)
{
	struct trace_header *h = trace_header_new();
	uint8_t msr_pad[16] = { 0x10, 0, 0, 0, 1 };
	char err[256];

	(void)state;
	expect_invalid(TRACE_TAG_MEM_SIZE, "1234", 4, "MEM_SIZE: bad length 4");
	expect_invalid(TRACE_TAG_CPUID, msr_pad, 16, "CPUID: bad length");
	expect_invalid(TRACE_TAG_MSRS, msr_pad, 16, "nonzero pad");
	expect_invalid(TRACE_TAG_MSRS, msr_pad, 8, "MSRS: bad length");
	expect_invalid(TRACE_TAG_XSAVE, msr_pad, 8, "XSAVE: bad length");
	expect_invalid(TRACE_TAG_KERNEL_ID, msr_pad, 16, "KERNEL_ID: bad length");
	expect_invalid(TRACE_TAG_CMDLINE, "a\0b", 3, "NUL");
	expect_invalid(TRACE_TAG_PROGRESS_COUNTER, "pmu", 3, "unknown value \"pmu\"");
	expect_invalid(TRACE_TAG_BOOT_MODE, "bzimage", 7, "unknown value");
	expect_invalid(TRACE_TAG_FRAME_HEADER_SIZE, "\x61\0\0\0\0\0\0\0", 8, "invalid value 97");
	/* A tag appears once. */
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_MEM_SIZE, 1), 0);
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_MEM_SIZE, 2), -1);
	assert_int_equal(errno, EEXIST);
	/* Past the body limit. */
	assert_int_equal(trace_header_add(h, 0x0001, big, TRACE_HEADER_BODY_MAX), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(trace_header_check_required(h, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "DETVM_VERSION is missing"));
	trace_header_free(h);
}

/* Raw header bytes with a correct checksum over whatever body we give. */
static size_t craft(uint8_t *b, uint16_t major, uint16_t minor,
		    const uint8_t *body, uint32_t blen)
{
	memcpy(b, "DETVMTRC", 8);
	put_le16(b + 8, major);
	put_le16(b + 10, minor);
	put_le32(b + 12, blen);
	if (blen)
		memcpy(b + 16, body, blen);
	put_le64(b + 16 + blen, XXH3_64bits(b, 16 + blen));
	return 16 + blen + 8;
}

static void test_header_crafted(void **state)
{
	uint8_t b[256];
	char err[256];
	struct trace_header *h;
	const uint8_t dup[] = { 0x0a, 0x00, 1, 0, 0, 0, 'a',
				0x0a, 0x00, 1, 0, 0, 0, 'b' };
	const uint8_t overrun[] = { 0x0a, 0x00, 9, 0, 0, 0, 'a' };
	const uint8_t stub[] = { 0x0a, 0x00, 1 };
	size_t n;

	(void)state;
	n = craft(b, 1, 0, dup, sizeof(dup));
	assert_null(trace_header_decode(b, n, err, sizeof(err)));
	assert_non_null(strstr(err, "appears twice"));
	n = craft(b, 1, 0, overrun, sizeof(overrun));
	assert_null(trace_header_decode(b, n, err, sizeof(err)));
	assert_non_null(strstr(err, "runs past"));
	n = craft(b, 1, 0, stub, sizeof(stub));
	assert_null(trace_header_decode(b, n, err, sizeof(err)));
	assert_non_null(strstr(err, "cut short"));
	/* Version: newer major refused before anything else, minor read. */
	n = craft(b, 2, 0, NULL, 0);
	assert_null(trace_header_decode(b, n, err, sizeof(err)));
	assert_string_equal(err, "trace format 2.0 is newer than this detvm supports (1.x): upgrade detvm");
	n = craft(b, 0, 9, NULL, 0);
	assert_null(trace_header_decode(b, n, err, sizeof(err)));
	assert_non_null(strstr(err, "older"));
	n = craft(b, 1, 65535, NULL, 0);
	h = trace_header_decode(b, n, err, sizeof(err));
	assert_non_null(h);
	trace_header_free(h);
	/* Checksum, magic, length. */
	n = craft(b, 1, 0, NULL, 0);
	b[n - 1] ^= 1;
	assert_null(trace_header_decode(b, n, err, sizeof(err)));
	assert_non_null(strstr(err, "file header checksum mismatch"));
	b[0] = 'X';
	assert_null(trace_header_decode(b, n, err, sizeof(err)));
	assert_non_null(strstr(err, "bad magic"));
	n = craft(b, 1, 0, NULL, 0);
	put_le32(b + 12, TRACE_HEADER_BODY_MAX + 1);
	assert_null(trace_header_decode(b, n, err, sizeof(err)));
	assert_non_null(strstr(err, "exceeds"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_varint_roundtrip),
		cmocka_unit_test(test_varint_rejects),
		cmocka_unit_test(test_event_roundtrip_extremes),
		cmocka_unit_test(test_event_sizes),
		cmocka_unit_test(test_event_encode_rejects),
		cmocka_unit_test(test_event_decode_rejects),
		cmocka_unit_test(test_event_names),
		cmocka_unit_test(test_header_tlv_roundtrip),
		cmocka_unit_test(test_header_unknown_tags),
		cmocka_unit_test(test_header_validation),
		cmocka_unit_test(test_header_crafted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
