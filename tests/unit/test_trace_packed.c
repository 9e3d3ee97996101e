/*
 * test_trace_packed.c - format 1.1 header packing (PACKED_FIELDS, SPEC.md
 * 4.2): what the writer packs and when, that every accessor sees packed
 * fields as if they were plain, that 1.0 headers and files still read, and
 * that every way the packed part can be wrong is refused with its message
 * (never a crash or a misparse: the crafted headers all carry a valid
 * checksum, so only the PACKED_FIELDS checks stand between them and use).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "tests/unit/test_files.h"
#include <xxhash.h>
#include <zstd.h>

#include "trace-format/trace_internal.h"

static int setup(void **state)
{
	(void)state;
	return test_dir_make("test_packed");
}

static int teardown(void **state)
{
	(void)state;
	return test_dir_remove();
}

/* ---- headers ---- */

#define N_CPUID	69	/* what a recording on the test host carries */
#define N_MSRS	29

static struct kvm_cpuid_entry2 cpuid[N_CPUID];
static struct trace_msr msrs[N_MSRS];

/*
 * A header shaped like a recorder's (KERNEL_ID first, as recorder.c adds
 * it; a CPUID table of mostly small values and zero padding), with DISK_ID
 * and an unknown non-critical field too.
 */
static struct trace_header *big_header(void)
{
	struct trace_header *h = trace_header_new();
	struct trace_hash128 kh = { 0x1111, 0x2222 }, dh = { 3, 4 };

	for (uint32_t i = 0; i < N_CPUID; i++) {
		cpuid[i].function = i < 32 ? i : 0x80000000u + i - 32;
		cpuid[i].index = i % 5 == 0 ? 1 : 0;
		cpuid[i].eax = i * 0x01010101u;
		cpuid[i].ebx = i % 3 ? 0 : 0x756e6547;
		cpuid[i].ecx = 1u << (i % 32);
		cpuid[i].edx = 0x178bfbff;
	}
	for (uint32_t i = 0; i < N_MSRS; i++) {
		msrs[i].index = i < 16 ? 0x170 + i : 0xc0000080 + i - 16;
		msrs[i].value = i % 4 ? 0 : 0xfee00900ull + i;
	}
	assert_non_null(h);
	assert_int_equal(trace_header_add_file_id(h, TRACE_TAG_KERNEL_ID, 78384, &kh, "build/guests/ticks.elf"), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_DETVM_VERSION, "0.1.0"), 0);
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_MEM_SIZE, 128ull << 20), 0);
	assert_int_equal(trace_header_add(h, TRACE_TAG_CPUID, cpuid, sizeof(cpuid)), 0);
	assert_int_equal(trace_header_add(h, TRACE_TAG_MSRS, msrs, sizeof(msrs)), 0);
	assert_int_equal(trace_header_add_xsave(h, 4096, 7), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_CMDLINE, "console=ttyS0"), 0);
	assert_int_equal(trace_header_add_file_id(h, TRACE_TAG_DISK_ID, 1ull << 30, &dh, "/d.img"), 0);
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_BOOT_EPOCH_NS, 1700000000000000000ull), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_HOST, "Linux 6.18 x86_64"), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_PROGRESS_COUNTER, "insn_emulation"), 0);
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_LANDMARK_BOUND_NS, 5000000), 0);
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_DIGEST_INTERVAL, 100000), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_BOOT_MODE, "elf64"), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_SERIAL_IN, ""), 0);
	assert_int_equal(trace_header_add(h, 0x0123, "opaque", 6), 0);
	return h;
}

#define BIG_FIELDS 16

/* Every accessor of a header made by big_header(), after a round trip. */
static void check_big(const struct trace_header *g, uint16_t minor)
{
	static const uint16_t order[BIG_FIELDS] = {
		/* DETVM_VERSION is written first, the others as added. */
		TRACE_TAG_DETVM_VERSION, TRACE_TAG_KERNEL_ID, TRACE_TAG_MEM_SIZE,
		TRACE_TAG_CPUID, TRACE_TAG_MSRS, TRACE_TAG_XSAVE,
		TRACE_TAG_CMDLINE, TRACE_TAG_DISK_ID, TRACE_TAG_BOOT_EPOCH_NS,
		TRACE_TAG_HOST, TRACE_TAG_PROGRESS_COUNTER,
		TRACE_TAG_LANDMARK_BOUND_NS, TRACE_TAG_DIGEST_INTERVAL,
		TRACE_TAG_BOOT_MODE, TRACE_TAG_SERIAL_IN, 0x0123,
	};
	const struct kvm_cpuid_entry2 *c;
	const struct trace_msr *m;
	struct trace_file_id id;
	uint16_t major, mi, tag;
	uint32_t xs;
	uint64_t v, xcr0;
	size_t n, len;
	char err[256];

	trace_header_version(g, &major, &mi);
	assert_int_equal(major, 1);
	assert_int_equal(mi, minor);
	assert_int_equal(trace_header_count(g), BIG_FIELDS);
	for (size_t i = 0; i < BIG_FIELDS; i++) {
		assert_non_null(trace_header_at(g, i, &tag, &len));
		assert_int_equal(tag, order[i]);
	}
	assert_null(trace_header_at(g, BIG_FIELDS, &tag, &len));
	assert_null(trace_header_get(g, TRACE_TAG_PACKED_FIELDS, NULL));
	assert_int_equal(trace_header_check_required(g, err, sizeof(err)), 0);
	assert_string_equal(trace_header_get_str(g, TRACE_TAG_DETVM_VERSION), "0.1.0");
	assert_int_equal(trace_header_get_u64(g, TRACE_TAG_MEM_SIZE, &v), 0);
	assert_true(v == 128ull << 20);
	c = trace_header_get_cpuid(g, &n);
	assert_non_null(c);
	assert_int_equal(n, N_CPUID);
	assert_memory_equal(c, cpuid, sizeof(cpuid));
	m = trace_header_get_msrs(g, &n);
	assert_non_null(m);
	assert_int_equal(n, N_MSRS);
	assert_memory_equal(m, msrs, sizeof(msrs));
	assert_int_equal(trace_header_get_xsave(g, &xs, &xcr0), 0);
	assert_true(xs == 4096 && xcr0 == 7);
	assert_string_equal(trace_header_get_str(g, TRACE_TAG_CMDLINE), "console=ttyS0");
	assert_int_equal(trace_header_get_file_id(g, TRACE_TAG_KERNEL_ID, &id), 0);
	assert_true(id.size == 78384 && id.hash.lo == 0x1111 && id.hash.hi == 0x2222);
	assert_string_equal(id.path, "build/guests/ticks.elf");
	assert_int_equal(trace_header_get_file_id(g, TRACE_TAG_DISK_ID, &id), 0);
	assert_true(id.size == 1ull << 30);
	assert_string_equal(id.path, "/d.img");
	assert_int_equal(trace_header_get_u64(g, TRACE_TAG_BOOT_EPOCH_NS, &v), 0);
	assert_true(v == 1700000000000000000ull);
	assert_string_equal(trace_header_get_str(g, TRACE_TAG_HOST), "Linux 6.18 x86_64");
	assert_string_equal(trace_header_get_str(g, TRACE_TAG_PROGRESS_COUNTER), "insn_emulation");
	assert_int_equal(trace_header_get_u64(g, TRACE_TAG_LANDMARK_BOUND_NS, &v), 0);
	assert_true(v == 5000000);
	assert_int_equal(trace_header_get_u64(g, TRACE_TAG_DIGEST_INTERVAL, &v), 0);
	assert_true(v == 100000);
	assert_string_equal(trace_header_get_str(g, TRACE_TAG_BOOT_MODE), "elf64");
	assert_string_equal(trace_header_get_str(g, TRACE_TAG_SERIAL_IN), "");
	assert_memory_equal(trace_header_get(g, 0x0123, &len), "opaque", 6);
	assert_int_equal(len, 6);
}

/* Bytes of the TLV at p: its total size. */
static size_t tlv_size(const uint8_t *p)
{
	return TRACE_TLV_HDR + get_le32(p + 2);
}

static void test_packed_roundtrip(void **state)
{
	struct trace_header *h = big_header(), *g;
	uint8_t *b, *b2, *plain;
	size_t n, n2, nplain, vlen;
	const uint8_t *pf;
	char err[512];

	(void)state;
	assert_int_equal(trace_header_encode(h, &b, &n, err, sizeof(err)), 0);
	assert_int_equal(trace_header_encode_as(h, 0, false, &plain, &nplain,
						err, sizeof(err)), 0);
	/* This writer's version; body = DETVM_VERSION, then PACKED_FIELDS,
	 * nothing else. */
	assert_memory_equal(b, "DETVMTRC\x01\x00", 10);
	assert_int_equal(get_le16(b + 10), TRACE_FORMAT_MINOR);
	assert_int_equal(get_le32(b + 12), n - TRACE_FILE_FIXED - TRACE_FILE_CSUM);
	assert_int_equal(get_le16(b + 16), TRACE_TAG_DETVM_VERSION);
	pf = b + 16 + tlv_size(b + 16);
	assert_int_equal(get_le16(pf), TRACE_TAG_PACKED_FIELDS);
	assert_true(pf + tlv_size(pf) + TRACE_FILE_CSUM == b + n);
	/* raw_len: the plain body but DETVM_VERSION; one zstd frame after. */
	assert_int_equal(get_le32(pf + TRACE_TLV_HDR),
			 get_le32(plain + 12) - tlv_size(b + 16));
	vlen = get_le32(pf + 2) - TRACE_PACKED_RAW_LEN;
	assert_int_equal(ZSTD_findFrameCompressedSize(pf + 10, vlen), vlen);
	assert_true(ZSTD_getFrameContentSize(pf + 10, vlen) ==
		    get_le32(pf + TRACE_TLV_HDR));
	assert_true(n * 3 < nplain);	/* what packing is for */
	/* The checksum is over the bytes as stored. */
	assert_true(get_le64(b + n - 8) == XXH3_64bits(b, n - 8));

	g = trace_header_decode(b, n, err, sizeof(err));
	if (!g)
		fail_msg("%s", err);
	check_big(g, TRACE_FORMAT_MINOR);
	/* Encoding is deterministic: a decoded header re-encodes the same. */
	assert_int_equal(trace_header_encode(g, &b2, &n2, err, sizeof(err)), 0);
	assert_int_equal(n2, n);
	assert_memory_equal(b2, b, n);
	free(b2);
	trace_header_free(g);
	free(plain);
	free(b);
	trace_header_free(h);
}

/* A 1.0 header (plain body, minor 0) reads, with the same accessors. */
static void test_plain_10_header(void **state)
{
	struct trace_header *h = big_header(), *g;
	uint16_t major, minor;
	uint8_t *b;
	size_t n;
	char err[512];

	(void)state;
	assert_int_equal(trace_header_encode_as(h, 0, false, &b, &n, err,
						sizeof(err)), 0);
	assert_int_equal(get_le16(b + 10), 0);
	assert_int_equal(get_le16(b + 16), TRACE_TAG_KERNEL_ID);	/* as added */
	g = trace_header_decode(b, n, err, sizeof(err));
	if (!g)
		fail_msg("%s", err);
	trace_header_version(g, &major, &minor);
	assert_true(major == 1 && minor == 0);
	assert_int_equal(trace_header_count(g), BIG_FIELDS);
	assert_int_equal(trace_header_check_required(g, err, sizeof(err)), 0);
	assert_memory_equal(trace_header_get_cpuid(g, &n), cpuid, sizeof(cpuid));
	assert_int_equal(n, N_CPUID);
	/* Re-encoded by this writer: its minor and packed, same fields. */
	free(b);
	assert_int_equal(trace_header_encode(g, &b, &n, err, sizeof(err)), 0);
	trace_header_free(g);
	g = trace_header_decode(b, n, err, sizeof(err));
	assert_non_null(g);
	check_big(g, TRACE_FORMAT_MINOR);
	trace_header_free(g);
	free(b);
	trace_header_free(h);
}

/* Packing only when it makes the header smaller. */
static void test_small_headers_stay_plain(void **state)
{
	struct trace_header *h = trace_header_new(), *g;
	uint8_t *b;
	size_t n;
	char err[512];

	(void)state;
	assert_non_null(h);
	/* Nothing but DETVM_VERSION: nothing to pack. */
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_DETVM_VERSION, "x"), 0);
	assert_int_equal(trace_header_encode(h, &b, &n, err, sizeof(err)), 0);
	assert_int_equal(n, TRACE_FILE_FIXED + TRACE_TLV_HDR + 1 + TRACE_FILE_CSUM);
	assert_int_equal(get_le16(b + 10), TRACE_FORMAT_MINOR);
	free(b);
	/* A few small fields: packed would be larger. */
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_MEM_SIZE, 1 << 20), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_HOST, "demo"), 0);
	assert_int_equal(trace_header_encode(h, &b, &n, err, sizeof(err)), 0);
	assert_int_equal(n, TRACE_FILE_FIXED + 7 + 14 + 10 + TRACE_FILE_CSUM);
	assert_int_equal(get_le16(b + 16 + 7), TRACE_TAG_MEM_SIZE);
	assert_int_equal(get_le16(b + 16 + 21), TRACE_TAG_HOST);
	g = trace_header_decode(b, n, err, sizeof(err));
	assert_non_null(g);
	assert_int_equal(trace_header_count(g), 3);
	trace_header_free(g);
	free(b);
	/* PACKED_FIELDS is the encoding's, never a field one adds. */
	assert_int_equal(trace_header_add(h, TRACE_TAG_PACKED_FIELDS, "\1\0\0\0", 4), -1);
	assert_int_equal(errno, EINVAL);
	assert_string_equal(trace_tag_name(TRACE_TAG_PACKED_FIELDS), "PACKED_FIELDS");
	trace_header_free(h);
}

/* ---- crafted headers ---- */

/* A complete header around `body`, checksum included; b holds it. */
static size_t seal(uint8_t *b, uint16_t minor, const uint8_t *body,
		   size_t blen)
{
	memcpy(b, TRACE_FILE_MAGIC, TRACE_FILE_MAGIC_LEN);
	put_le16(b + 8, 1);
	put_le16(b + 10, minor);
	put_le32(b + 12, (uint32_t)blen);
	memmove(b + TRACE_FILE_FIXED, body, blen);
	put_le64(b + TRACE_FILE_FIXED + blen,
		 XXH3_64bits(b, TRACE_FILE_FIXED + blen));
	return TRACE_FILE_FIXED + blen + TRACE_FILE_CSUM;
}

/* An entry's head only: tag and length. */
static void tlv_head(uint8_t *p, uint16_t tag, uint32_t len)
{
	put_le16(p, tag);
	put_le32(p + 2, len);
}

static size_t tlv(uint8_t *p, uint16_t tag, const void *v, uint32_t len)
{
	tlv_head(p, tag, len);
	if (len)
		memcpy(p + TRACE_TLV_HDR, v, len);
	return TRACE_TLV_HDR + len;
}

static size_t tlv_u64(uint8_t *p, uint16_t tag, uint64_t v)
{
	uint8_t b[8];

	put_le64(b, v);
	return tlv(p, tag, b, 8);
}

/* One zstd frame of raw[0..n), with or without its content size. */
static size_t zframe(const void *raw, size_t n, bool content_size,
		     uint8_t *out, size_t cap)
{
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	size_t r;

	assert_non_null(cc);
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag,
							 content_size)));
	r = ZSTD_compress2(cc, out, cap, raw, n);
	assert_false(ZSTD_isError(r));
	ZSTD_freeCCtx(cc);
	return r;
}

/* A PACKED_FIELDS entry at p: raw_len, then frame[0..zlen). */
static size_t packed(uint8_t *p, uint32_t raw_len, const uint8_t *frame,
		     size_t zlen)
{
	put_le16(p, TRACE_TAG_PACKED_FIELDS);
	put_le32(p + 2, (uint32_t)(TRACE_PACKED_RAW_LEN + zlen));
	put_le32(p + TRACE_TLV_HDR, raw_len);
	memcpy(p + TRACE_TLV_HDR + TRACE_PACKED_RAW_LEN, frame, zlen);
	return TRACE_TLV_HDR + TRACE_PACKED_RAW_LEN + zlen;
}

/* Big enough for a body at the 1 MiB limit. */
static uint8_t body[TRACE_HEADER_BODY_MAX], hdr[TRACE_HEADER_BODY_MAX + 64];
static uint8_t z[ZSTD_COMPRESSBOUND(TRACE_HEADER_BODY_MAX)];

/*
 * Decoding hdr[0..n) fails with exactly the message `want`; a `want` that
 * ends with "(" is compared up to there: a zstd error name follows, and
 * those vary with the zstd version.
 */
static void expect_refused(size_t n, const char *want)
{
	struct trace_header *h;
	size_t wl = strlen(want);
	char err[512];

	h = trace_header_decode(hdr, n, err, sizeof(err));
	if (h)
		fail_msg("accepted, expected \"%s\"", want);
	if (wl && want[wl - 1] == '(' ? strncmp(err, want, wl) : strcmp(err, want))
		fail_msg("expected \"%s\", got \"%s\"", want, err);
}

static void expect_read(size_t n, size_t fields)
{
	struct trace_header *h;
	char err[512];

	h = trace_header_decode(hdr, n, err, sizeof(err));
	if (!h)
		fail_msg("refused: %s", err);
	assert_int_equal(trace_header_count(h), fields);
	trace_header_free(h);
}

/*
 * The inner list most cases use: MEM_SIZE and HOST, 14 + 10 bytes.  The
 * outer body puts DETVM_VERSION "v" (7 bytes) before PACKED_FIELDS, which
 * is therefore at file offset 23.
 */
static size_t inner_list(uint8_t *p)
{
	size_t n = tlv_u64(p, TRACE_TAG_MEM_SIZE, 1 << 20);

	return n + tlv(p + n, TRACE_TAG_HOST, "demo", 4);
}

static size_t outer(uint32_t raw_len, const uint8_t *zz, size_t zlen)
{
	size_t n = tlv(body, TRACE_TAG_DETVM_VERSION, "v", 1);

	n += packed(body + n, raw_len, zz, zlen);
	return seal(hdr, 1, body, n);
}

/* outer() around a packed list given as its raw bytes. */
static size_t outer_raw(const uint8_t *raw, size_t rn)
{
	static uint8_t zz[4096];

	return outer((uint32_t)rn, zz, zframe(raw, rn, true, zz, sizeof(zz)));
}

static void test_crafted_good(void **state)
{
	struct trace_header *h;
	uint8_t raw[64];
	size_t rn, zn, n;
	uint16_t major, minor;
	uint64_t v;
	char err[512];

	(void)state;
	rn = inner_list(raw);
	/* With and without a declared content size. */
	for (int cs = 0; cs < 2; cs++) {
		zn = zframe(raw, rn, cs, z, sizeof(z));
		n = outer((uint32_t)rn, z, zn);
		h = trace_header_decode(hdr, n, err, sizeof(err));
		if (!h)
			fail_msg("%s", err);
		assert_int_equal(trace_header_count(h), 3);
		assert_int_equal(trace_header_get_u64(h, TRACE_TAG_MEM_SIZE, &v), 0);
		assert_true(v == 1 << 20);
		assert_string_equal(trace_header_get_str(h, TRACE_TAG_HOST), "demo");
		trace_header_free(h);
	}
	/*
	 * Minor 0 with PACKED_FIELDS: read.  A reader never needs the minor to
	 * parse (SPEC.md 9); no 1.0 writer makes such a file, and refusing it
	 * would make the minor matter.
	 */
	put_le16(hdr + 10, 0);
	put_le64(hdr + n - 8, XXH3_64bits(hdr, n - 8));
	h = trace_header_decode(hdr, n, err, sizeof(err));
	if (!h)
		fail_msg("%s", err);
	trace_header_version(h, &major, &minor);
	assert_true(major == 1 && minor == 0);
	assert_string_equal(trace_header_get_str(h, TRACE_TAG_HOST), "demo");
	trace_header_free(h);
	/* PACKED_FIELDS first, fields after it, a non-critical unknown. */
	n = packed(body, (uint32_t)rn, z, zn);
	n += tlv(body + n, 0x0777, "x", 1);
	n += tlv(body + n, TRACE_TAG_DETVM_VERSION, "v", 1);
	n = seal(hdr, 1, body, n);
	h = trace_header_decode(hdr, n, err, sizeof(err));
	if (!h)
		fail_msg("%s", err);
	assert_int_equal(trace_header_count(h), 4);
	/* File order: the packed fields where PACKED_FIELDS was. */
	assert_non_null(trace_header_at(h, 1, &major, &(size_t){ 0 }));
	assert_int_equal(major, TRACE_TAG_HOST);
	assert_non_null(trace_header_at(h, 2, &major, &(size_t){ 0 }));
	assert_int_equal(major, 0x0777);
	trace_header_free(h);
}

static void test_crafted_frame_errors(void **state)
{
	uint8_t raw[64], two[256];
	size_t rn, zn, n;
	char want[160];

	(void)state;
	rn = inner_list(raw);
	zn = zframe(raw, rn, true, z, sizeof(z));
	assert_true(2 * zn <= sizeof(two));

	/* raw_len out of range, and a value too short to hold it. */
	n = outer(0, z, zn);
	expect_refused(n, "file header: PACKED_FIELDS at offset 23: raw length 0 outside 1..1048576");
	n = outer(TRACE_HEADER_BODY_MAX + 1, z, zn);
	expect_refused(n, "file header: PACKED_FIELDS at offset 23: raw length 1048577 outside 1..1048576");
	n = tlv(body, TRACE_TAG_PACKED_FIELDS, "\x18\0\0", 3);
	n = seal(hdr, 1, body, n);
	expect_refused(n, "file header: PACKED_FIELDS at offset 16: bad length 3");

	/* A truncated frame, garbage, no frame at all. */
	n = outer((uint32_t)rn, z, zn - 3);
	expect_refused(n, "file header: PACKED_FIELDS at offset 23: bad or truncated zstd frame (");
	n = outer((uint32_t)rn, z, 5);
	expect_refused(n, "file header: PACKED_FIELDS at offset 23: bad or truncated zstd frame (");
	n = outer((uint32_t)rn, (const uint8_t *)"garbage!garbage!", 16);
	expect_refused(n, "file header: PACKED_FIELDS at offset 23: bad or truncated zstd frame (");
	n = outer((uint32_t)rn, z, 0);
	expect_refused(n, "file header: PACKED_FIELDS at offset 23: bad or truncated zstd frame (");

	/* A skippable frame, which "decompresses" to nothing. */
	memcpy(two, "\x50\x2a\x4d\x18\x04\0\0\0abcd", 12);
	n = outer((uint32_t)rn, two, 12);
	expect_refused(n, "file header: PACKED_FIELDS at offset 23: a skippable frame instead of a zstd frame");

	/* Trailing bytes: garbage, or a second frame. */
	memcpy(two, z, zn);
	memcpy(two + zn, "\0\0", 2);
	n = outer((uint32_t)rn, two, zn + 2);
	expect_refused(n, "file header: PACKED_FIELDS at offset 23: 2 bytes of trailing data after the zstd frame");
	memcpy(two + zn, z, zn);
	n = outer((uint32_t)rn, two, 2 * zn);
	snprintf(want, sizeof(want),
		 "file header: PACKED_FIELDS at offset 23: %zu bytes of trailing data after the zstd frame",
		 zn);
	expect_refused(n, want);

	/* Sizes: declared content size, or the decompressed size, != raw_len. */
	rn = inner_list(raw);
	n = outer((uint32_t)rn + 1, z, zn);
	expect_refused(n, "file header: PACKED_FIELDS at offset 23: zstd frame holds 24 bytes, raw length says 25");
	zn = zframe(raw, rn, false, z, sizeof(z));
	n = outer((uint32_t)rn + 10, z, zn);
	expect_refused(n, "file header: PACKED_FIELDS at offset 23: zstd frame decompresses to 24 bytes, raw length says 34");
	n = outer((uint32_t)rn - 4, z, zn);
	expect_refused(n, "file header: PACKED_FIELDS at offset 23: zstd frame does not decompress to 20 bytes (");

	/* The entry itself runs past the body. */
	n = outer((uint32_t)rn, z, zn);
	put_le32(hdr + 23 + 2, (uint32_t)(TRACE_PACKED_RAW_LEN + zn + 1));
	put_le64(hdr + n - 8, XXH3_64bits(hdr, n - 8));
	expect_refused(n, "file header: field 0x8011 at offset 23 runs past the header body");
}

/* The packed list obeys the rules of the body, across both. */
static void test_crafted_list_errors(void **state)
{
	uint8_t raw[256], pz[128];
	size_t rn, n, pn;

	(void)state;
	/* A field both outside and inside, either way round. */
	n = tlv(body, TRACE_TAG_DETVM_VERSION, "v", 1);
	n += tlv_u64(body + n, TRACE_TAG_MEM_SIZE, 1);
	rn = inner_list(raw);
	n += packed(body + n, (uint32_t)rn, z, zframe(raw, rn, true, z, sizeof(z)));
	n = seal(hdr, 1, body, n);
	expect_refused(n, "file header: field 0x8002 appears twice (byte 0 of the fields packed at offset 37)");
	n = packed(body, (uint32_t)rn, z, zframe(raw, rn, true, z, sizeof(z)));
	pn = n;
	n += tlv(body + n, TRACE_TAG_HOST, "x", 1);
	n = seal(hdr, 1, body, n);
	{
		char want[128];

		snprintf(want, sizeof(want),
			 "file header: field 0x000a appears twice (offset %zu)",
			 TRACE_FILE_FIXED + pn);
		expect_refused(n, want);
	}
	/* Twice inside. */
	rn = tlv_u64(raw, TRACE_TAG_MEM_SIZE, 1);
	rn += tlv_u64(raw + rn, TRACE_TAG_MEM_SIZE, 2);
	n = outer_raw(raw, rn);
	expect_refused(n, "file header: field 0x8002 appears twice (byte 14 of the fields packed at offset 23)");

	/* Nested, and twice in the body. */
	rn = inner_list(raw);
	pn = packed(pz, (uint32_t)rn, z, zframe(raw, rn, true, z, sizeof(z)));
	rn = tlv_u64(raw, TRACE_TAG_MEM_SIZE, 1);
	memcpy(raw + rn, pz, pn);
	n = outer_raw(raw, rn + pn);
	expect_refused(n, "file header: PACKED_FIELDS inside PACKED_FIELDS (byte 14 of the fields packed at offset 23)");
	n = tlv(body, TRACE_TAG_DETVM_VERSION, "v", 1);
	n += packed(body + n, (uint32_t)get_le32(pz + TRACE_TLV_HDR),
		    pz + 10, pn - 10);
	memcpy(body + n, pz, pn);
	n = seal(hdr, 1, body, n + pn);
	{
		char want[128];

		snprintf(want, sizeof(want),
			 "file header: field 0x8011 appears twice (offset %zu)",
			 23 + pn);
		expect_refused(n, want);
	}
	/* ... but once, after other fields, is fine. */
	expect_read(seal(hdr, 1, body, 7 + pn), 3);

	/* Inner TLV structure. */
	rn = tlv_u64(raw, TRACE_TAG_MEM_SIZE, 1);
	memcpy(raw + rn, "\x0a\0\x01", 3);
	n = outer_raw(raw, rn + 3);
	expect_refused(n, "file header: field at byte 14 of the fields packed at offset 23 cut short");
	rn = tlv(raw, TRACE_TAG_HOST, "demo", 4);
	put_le32(raw + 2, 100);
	n = outer_raw(raw, rn);
	expect_refused(n, "file header: field 0x000a at byte 0 of the fields packed at offset 23 runs past the packed fields");
	rn = tlv(raw, 0x8123, "x", 1);
	n = outer_raw(raw, rn);
	expect_refused(n, "file header: field 0x8123 is critical but unknown to this detvm (format 1.2): upgrade detvm");
	/* Values are validated wherever they are. */
	rn = tlv(raw, TRACE_TAG_MEM_SIZE, "1234", 4);
	n = outer_raw(raw, rn);
	expect_refused(n, "header field MEM_SIZE: bad length 4");
	rn = tlv(raw, TRACE_TAG_BOOT_MODE, "bzimage", 7);
	n = outer_raw(raw, rn);
	expect_refused(n, "header field BOOT_MODE: unknown value \"bzimage\"");
}

/* 1024 fields in all, 1 MiB unpacked in all: the limits span both lists. */
static void test_crafted_limits(void **state)
{
	static uint8_t raw[TRACE_HEADER_BODY_MAX];
	size_t n, rn, zn, outer_fields = 1000;
	char want[160];

	(void)state;
	n = 0;
	for (size_t i = 0; i < outer_fields; i++)
		n += tlv(body + n, (uint16_t)(0x0200 + i), NULL, 0);
	rn = 0;
	for (size_t i = 0; i < TRACE_HEADER_FIELDS_MAX - outer_fields; i++)
		rn += tlv(raw + rn, (uint16_t)(0x1000 + i), NULL, 0);
	zn = zframe(raw, rn, true, z, sizeof(z));
	expect_read(seal(hdr, 1, body, n + packed(body + n, (uint32_t)rn, z, zn)),
		    TRACE_HEADER_FIELDS_MAX);
	rn += tlv(raw + rn, 0x1fff, NULL, 0);
	zn = zframe(raw, rn, true, z, sizeof(z));
	snprintf(want, sizeof(want),
		 "file header: too many fields (more than 1024, at byte %zu of the fields packed at offset %zu)",
		 rn - TRACE_TLV_HDR, TRACE_FILE_FIXED + n);
	expect_refused(seal(hdr, 1, body, n + packed(body + n, (uint32_t)rn, z, zn)),
		       want);

	/* Unpacked: DETVM_VERSION (7 bytes) + the packed list <= 1 MiB. */
	rn = TRACE_HEADER_BODY_MAX - 7;
	memset(raw, 0, rn);
	tlv_head(raw, 0x0001, (uint32_t)(rn - TRACE_TLV_HDR));
	zn = zframe(raw, rn, true, z, sizeof(z));
	expect_read(outer((uint32_t)rn, z, zn), 2);
	rn++;
	tlv_head(raw, 0x0001, (uint32_t)(rn - TRACE_TLV_HDR));
	zn = zframe(raw, rn, true, z, sizeof(z));
	expect_refused(outer((uint32_t)rn, z, zn),
		       "file header: PACKED_FIELDS at offset 23: unpacked, the header body would be 1048577 bytes, above the 1048576 limit");
}

/*
 * Any change to the packed part, checksum re-sealed (as a forger or a bad
 * tool would): refused, or read as a header whose fields all passed the
 * checks; never a crash (run under valgrind or ASan to see the bounds).
 * Cutting the frame short anywhere is always refused.
 */
static void test_damaged_packed(void **state)
{
	static const uint8_t masks[] = { 0x01, 0x80, 0xff };
	struct trace_header *h = big_header(), *g;
	size_t n, at, refused = 0, tries = 0;
	uint8_t *b;
	char err[512];

	(void)state;
	assert_int_equal(trace_header_encode(h, &b, &n, err, sizeof(err)), 0);
	at = TRACE_FILE_FIXED + tlv_size(b + TRACE_FILE_FIXED);
	assert_int_equal(get_le16(b + at), TRACE_TAG_PACKED_FIELDS);
	for (size_t i = at; i < n - TRACE_FILE_CSUM; i++)
		for (size_t m = 0; m < sizeof(masks); m++) {
			memcpy(hdr, b, n);
			hdr[i] ^= masks[m];
			put_le64(hdr + n - 8, XXH3_64bits(hdr, n - 8));
			g = trace_header_decode(hdr, n, err, sizeof(err));
			tries++;
			if (!g) {
				refused++;
				assert_true(!strncmp(err, "file header", 11) ||
					    !strncmp(err, "header field", 12));
				continue;
			}
			/* Read: then it is a well-formed header. */
			assert_true(trace_header_count(g) <= TRACE_HEADER_FIELDS_MAX);
			assert_int_equal(trace_header_validate(g, err, sizeof(err)), 0);
			trace_header_free(g);
		}
	/* Most damage shows (not all: zstd frames carry no checksum here). */
	assert_true(refused * 2 > tries);
	/* The value cut short at every length, body shortened to match. */
	for (size_t k = 0; k < get_le32(b + at + 2); k++) {
		size_t bl = at - TRACE_FILE_FIXED + TRACE_TLV_HDR + k;

		memcpy(body, b + TRACE_FILE_FIXED, bl);
		put_le32(body + at - TRACE_FILE_FIXED + 2, (uint32_t)k);
		assert_null(trace_header_decode(hdr, seal(hdr, 1, body, bl), err,
						sizeof(err)));
		assert_true(strstr(err, "PACKED_FIELDS at offset") != NULL);
	}
	free(b);
	trace_header_free(h);
}

/* ---- files ---- */

static const struct trace_event end_ev = { .type = TRACE_EV_END };

/* A complete trace of 800 HLT exits (2 per frame of 2 bytes) with h. */
static void write_trace(const char *path, const struct trace_header *h,
			uint8_t header_hash[TRACE_HASH_SIZE])
{
	struct trace_writer_opts o = { .frame_bytes = 256 };
	struct trace_event ev = { .type = TRACE_EV_EXIT_HLT };
	struct trace_writer *w;
	char err[512];

	w = trace_writer_open(path, h, &o, err, sizeof(err));
	if (!w)
		fail_msg("%s", err);
	for (int i = 0; i < 800; i++)
		assert_int_equal(trace_writer_append(w, &ev), 0);
	if (trace_writer_close(w, &end_ev))
		fail_msg("%s", trace_writer_error(w));
	trace_writer_header_hash(w, header_hash);
	trace_writer_free(w);
}

static void test_file_packed(void **state)
{
	struct trace_header *h = big_header();
	struct trace_verify_report rep;
	struct trace_reader *r;
	uint8_t whash[TRACE_HASH_SIZE], rhash[TRACE_HASH_SIZE], mine[TRACE_HASH_SIZE];
	char p[128], err[512];
	size_t len, hlen;
	uint8_t *b;

	(void)state;
	tpath(p, sizeof(p), "packed.trc");
	write_trace(p, h, whash);
	b = slurp(p, &len);
	assert_int_equal(get_le16(b + 10), TRACE_FORMAT_MINOR);
	hlen = TRACE_FILE_FIXED + get_le32(b + 12) + TRACE_FILE_CSUM;
	assert_int_equal(get_le16(b + TRACE_FILE_FIXED + tlv_size(b + TRACE_FILE_FIXED)),
			 TRACE_TAG_PACKED_FIELDS);
	/* The chain starts from the header bytes as stored. */
	trace_sha256_2(b, hlen, NULL, 0, mine);
	assert_memory_equal(whash, mine, TRACE_HASH_SIZE);
	assert_memory_equal(b + hlen + FH_PREV_HASH, mine, TRACE_HASH_SIZE);
	r = trace_reader_open(p, err, sizeof(err));
	if (!r)
		fail_msg("%s", err);
	check_big(trace_reader_header(r), TRACE_FORMAT_MINOR);
	trace_reader_header_hash(r, rhash);
	assert_memory_equal(rhash, mine, TRACE_HASH_SIZE);
	trace_reader_close(r);
	assert_int_equal(trace_verify(p, &rep, err, sizeof(err)), 0);
	assert_true(rep.major == 1 && rep.minor == TRACE_FORMAT_MINOR);
	assert_true(rep.exits == 800 && rep.events == 801 && rep.complete);
	assert_true(rep.file_bytes == len);
	free(b);
	trace_header_free(h);
}

/*
 * The same trace with a 1.0 header: what a 1.0 writer wrote (plain body,
 * minor 0), everything after it re-chained from the new header's hash.
 */
static void test_file_10(void **state)
{
	struct trace_header *h = big_header(), *g;
	struct trace_verify_report rep, rep10;
	struct trace_reader *r;
	uint8_t whash[TRACE_HASH_SIZE], chain[TRACE_HASH_SIZE];
	char p[128], c[128], err[512];
	size_t len, hlen, plen, pos, ipos;
	uint8_t *b, *ph, *out;
	uint64_t frames = 0;
	const struct kvm_cpuid_entry2 *cp;
	size_t ncp;

	(void)state;
	tpath(p, sizeof(p), "v11.trc");
	tpath(c, sizeof(c), "v10.trc");
	write_trace(p, h, whash);
	b = slurp(p, &len);
	hlen = TRACE_FILE_FIXED + get_le32(b + 12) + TRACE_FILE_CSUM;
	assert_int_equal(trace_header_encode_as(h, 0, false, &ph, &plen, err,
						sizeof(err)), 0);
	out = malloc(len - hlen + plen);
	assert_non_null(out);
	memcpy(out, ph, plen);
	trace_sha256_2(ph, plen, NULL, 0, chain);
	pos = plen;
	for (ipos = hlen; ipos + TRACE_TRAILER_SIZE < len; frames++) {
		uint32_t size = TRACE_FRAME_HDR_SIZE + get_le32(b + ipos + FH_COMP_LEN);
		uint8_t *fh = out + pos;

		memcpy(fh, b + ipos, size);
		memcpy(fh + FH_PREV_HASH, chain, TRACE_HASH_SIZE);
		put_le64(fh + FH_HDR_XXH, trace_frame_hdr_xxh(fh, TRACE_FRAME_HDR_SIZE));
		trace_sha256_2(fh, size, NULL, 0, chain);
		pos += size;
		ipos += size;
	}
	trace_trailer_pack(frames, chain, out + pos);
	pos += TRACE_TRAILER_SIZE;
	spew(c, out, pos);

	assert_int_equal(trace_verify(p, &rep, err, sizeof(err)), 0);
	assert_int_equal(trace_verify(c, &rep10, err, sizeof(err)), 0);
	assert_true(rep10.major == 1 && rep10.minor == 0);
	assert_true(rep10.events == rep.events && rep10.exits == rep.exits);
	assert_true(rep10.frames == rep.frames);
	assert_true(rep10.file_bytes > rep.file_bytes + 2000);
	/* Another header, another recording: another fingerprint. */
	assert_string_not_equal(rep10.final_hash_hex, rep.final_hash_hex);
	r = trace_reader_open(c, err, sizeof(err));
	if (!r)
		fail_msg("%s", err);
	g = (struct trace_header *)trace_reader_header(r);
	assert_int_equal(trace_header_count(g), BIG_FIELDS);
	assert_int_equal(trace_header_check_required(g, err, sizeof(err)), 0);
	cp = trace_header_get_cpuid(g, &ncp);
	assert_int_equal(ncp, N_CPUID);
	assert_memory_equal(cp, cpuid, sizeof(cpuid));
	trace_reader_close(r);
	free(out);
	free(ph);
	free(b);
	trace_header_free(h);
}

/* A reader's message names the file and the entry's offset. */
static void test_file_messages(void **state)
{
	struct trace_verify_report rep;
	uint8_t raw[64];
	char p[128], err[512], want[256];
	size_t rn, zn, n;

	(void)state;
	tpath(p, sizeof(p), "bad.trc");
	rn = inner_list(raw);
	zn = zframe(raw, rn, true, z, sizeof(z));
	memcpy(z + zn, "\x01\x02\x03", 3);
	n = outer((uint32_t)rn, z, zn + 3);
	spew(p, hdr, n);
	snprintf(want, sizeof(want),
		 "%s: file header: PACKED_FIELDS at offset 23: 3 bytes of trailing data after the zstd frame",
		 p);
	assert_null(trace_reader_open(p, err, sizeof(err)));
	assert_string_equal(err, want);
	assert_int_equal(trace_verify(p, &rep, err, sizeof(err)), -1);
	assert_string_equal(err, want);
	assert_true(rep.file_bytes == n);
}

/* MEM_DIGEST (format 1.1): its two values read, anything else is refused,
 * packed or plain. */
static void test_mem_digest_field(void **state)
{
	struct trace_header *h;
	char err[512];
	size_t n;

	(void)state;
	n = tlv(body, TRACE_TAG_DETVM_VERSION, "v", 1);
	n += tlv(body + n, TRACE_TAG_MEM_DIGEST, TRACE_MEM_DIGEST_SPARSE, strlen(TRACE_MEM_DIGEST_SPARSE));
	n = seal(hdr, 1, body, n);
	h = trace_header_decode(hdr, n, err, sizeof(err));
	if (!h)
		fail_msg("refused: %s", err);
	assert_string_equal(trace_header_get_str(h, TRACE_TAG_MEM_DIGEST), "xxh3-128-sparse");
	trace_header_free(h);

	n = tlv(body, TRACE_TAG_DETVM_VERSION, "v", 1);
	n += tlv(body + n, TRACE_TAG_MEM_DIGEST, TRACE_MEM_DIGEST_FULL, strlen(TRACE_MEM_DIGEST_FULL));
	expect_read(seal(hdr, 1, body, n), 2);

	n = tlv(body, TRACE_TAG_DETVM_VERSION, "v", 1);
	n += tlv(body + n, TRACE_TAG_MEM_DIGEST, "sha-256", 7);
	expect_refused(seal(hdr, 1, body, n), "header field MEM_DIGEST: unknown value \"sha-256\"");

	/* Inside PACKED_FIELDS, the same rule. */
	static uint8_t raw[64];
	size_t rn = tlv(raw, TRACE_TAG_MEM_DIGEST, "xxh3", 4);
	expect_refused(outer_raw(raw, rn), "header field MEM_DIGEST: unknown value \"xxh3\"");
}

/* MSR_POLICY (format 1.2): its two values read, anything else is
 * refused, packed or plain. */
static void test_msr_policy_field(void **state)
{
	struct trace_header *h;
	char err[512];
	size_t n;

	(void)state;
	const char *vals[] = { TRACE_MSR_POLICY_1, TRACE_MSR_POLICY_2 };
	for (int i = 0; i < 2; i++) {
		n = tlv(body, TRACE_TAG_DETVM_VERSION, "v", 1);
		n += tlv(body + n, TRACE_TAG_MSR_POLICY, vals[i], strlen(vals[i]));
		n = seal(hdr, 2, body, n);
		h = trace_header_decode(hdr, n, err, sizeof(err));
		if (!h)
			fail_msg("refused: %s", err);
		assert_string_equal(trace_header_get_str(h, TRACE_TAG_MSR_POLICY), vals[i]);
		assert_string_equal(trace_tag_name(TRACE_TAG_MSR_POLICY), "MSR_POLICY");
		trace_header_free(h);
	}

	n = tlv(body, TRACE_TAG_DETVM_VERSION, "v", 1);
	n += tlv(body + n, TRACE_TAG_MSR_POLICY, "detvm-3", 7);
	expect_refused(seal(hdr, 2, body, n), "header field MSR_POLICY: unknown value \"detvm-3\"");
	n = tlv(body, TRACE_TAG_DETVM_VERSION, "v", 1);
	n += tlv(body + n, TRACE_TAG_MSR_POLICY, "detvm-2\0", 8);
	expect_refused(seal(hdr, 2, body, n), "header field MSR_POLICY: string contains a NUL byte");

	static uint8_t raw[64];
	size_t rn = tlv(raw, TRACE_TAG_MSR_POLICY, "none", 4);
	expect_refused(outer_raw(raw, rn), "header field MSR_POLICY: unknown value \"none\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_packed_roundtrip),
		cmocka_unit_test(test_plain_10_header),
		cmocka_unit_test(test_small_headers_stay_plain),
		cmocka_unit_test(test_crafted_good),
		cmocka_unit_test(test_crafted_frame_errors),
		cmocka_unit_test(test_crafted_list_errors),
		cmocka_unit_test(test_crafted_limits),
		cmocka_unit_test(test_damaged_packed),
		cmocka_unit_test(test_file_packed),
		cmocka_unit_test(test_file_10),
		cmocka_unit_test(test_file_messages),
		cmocka_unit_test(test_mem_digest_field),
		cmocka_unit_test(test_msr_policy_field),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
