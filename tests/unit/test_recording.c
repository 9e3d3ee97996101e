/*
 * test_recording.c - recorder/recording.h: a recording directory is created
 * once and reused only with force; the trace path of a recording; and a
 * file's identity (size and XXH3-128) equals the hash of its bytes whether
 * the file is dense, sparse (holes hashed as zeros without reading them),
 * all hole or empty.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/unit/test_files.h"
#include "tests/unit/test_mix.h"
#include <xxhash.h>

#include "recorder/recording.h"

static int setup(void **state)
{
	(void)state;
	return test_dir_make("test_recording");
}

static int teardown(void **state)
{
	(void)state;
	return test_dir_remove();
}

/* The identity of `path` must be `len` bytes hashing like `want`. */
static void expect_identity(const char *path, const uint8_t *want, size_t len)
{
	uint64_t size = 0;
	struct trace_hash128 h;
	char err[256];
	if (file_identity(path, &size, &h, err, sizeof(err)))
		fail_msg("%s", err);
	XXH128_hash_t x = XXH3_128bits(want, len);
	assert_true(size == len);
	assert_true(h.lo == x.low64 && h.hi == x.high64);
}

static void fill(uint8_t *b, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(mix(seed + i / 8) >> (8 * (i % 8)));
}

/* Dense, and longer than the 1 MiB read buffer with a ragged end. */
static void test_identity_dense(void **st)
{
	(void)st;
	size_t len = 3 * (1u << 20) + 17;
	uint8_t *b = malloc(len);
	char p[128];
	assert_non_null(b);
	fill(b, len, 1);
	tpath(p, sizeof(p), "dense.img");
	spew(p, b, len);
	expect_identity(p, b, len);
	free(b);
}

/* test_dir/name as a file of `len` bytes, all hole; its fd (read-write). */
static int hole_file(const char *name, size_t len, char *p, size_t plen)
{
	tpath(p, plen, name);
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)len), 0);
	return fd;
}

/*
 * Holes at the start, between two runs of data (one across a 1 MiB
 * boundary) and at the end: the hash is of the bytes, zeros included.
 */
static void test_identity_sparse(void **st)
{
	(void)st;
	size_t len = 9 * (1u << 20) + 123;
	uint8_t *b = calloc(1, len);
	char p[128];
	assert_non_null(b);
	int fd = hole_file("sparse.img", len, p, sizeof(p));
	const struct { size_t off, n; } runs[] = {
		{ 2 * (1u << 20) + 5, 3000 },
		{ 6 * (1u << 20) - 100, 70000 },
	};
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		fill(b + runs[i].off, runs[i].n, 100 + i);
		assert_int_equal(pwrite(fd, b + runs[i].off, runs[i].n, (off_t)runs[i].off), (ssize_t)runs[i].n);
	}
	assert_int_equal(fsync(fd), 0);
	/* Where the file system has holes, the file must have them. */
	off_t d = lseek(fd, 0, SEEK_DATA);
	if (d >= 0)
		assert_true(d > 0);
	close(fd);
	expect_identity(p, b, len);
	free(b);
}

static void test_identity_all_hole_and_empty(void **st)
{
	(void)st;
	size_t len = 16 * (1u << 20);
	uint8_t *b = calloc(1, len);
	char p[128];
	assert_non_null(b);
	close(hole_file("hole.img", len, p, sizeof(p)));
	expect_identity(p, b, len);
	tpath(p, sizeof(p), "empty.img");
	spew(p, b, 0);
	expect_identity(p, b, 0);
	free(b);
}

static void test_identity_missing(void **st)
{
	(void)st;
	char p[128], err[256];
	uint64_t size;
	struct trace_hash128 h;
	tpath(p, sizeof(p), "no-such.img");
	assert_int_equal(file_identity(p, &size, &h, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot open"));
	assert_non_null(strstr(err, p));
	assert_non_null(strstr(err, strerror(ENOENT)));
}

static void test_create(void **st)
{
	(void)st;
	char rec[128], out[256], err[256], expect[300];
	bool created = false;
	tpath(rec, sizeof(rec), "rec");
	assert_int_equal(recording_create(rec, false, &created, out, sizeof(out), err, sizeof(err)), 0);
	assert_true(created);
	snprintf(expect, sizeof(expect), "%s/%s", rec, RECORDING_TRACE);
	assert_string_equal(out, expect);

	/* Never overwritten without force. */
	assert_int_equal(recording_create(rec, false, &created, out, sizeof(out), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "already exists"));
	assert_non_null(strstr(err, "--force"));
	assert_non_null(strstr(err, rec));
	assert_int_equal(recording_create(rec, true, &created, out, sizeof(out), err, sizeof(err)), 0);
	assert_false(created);   /* reused: recording_abandon must not remove it */

	/* A file of that name is not a recording to reuse, even with force. */
	char f[128];
	tpath(f, sizeof(f), "plain-file");
	spew(f, "x", 1);
	assert_int_equal(recording_create(f, true, &created, out, sizeof(out), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a recording directory"));

	/* A parent that does not exist: the reason. */
	tpath(f, sizeof(f), "no/such/parent");
	assert_int_equal(recording_create(f, false, &created, out, sizeof(out), err, sizeof(err)), -1);
	assert_non_null(strstr(err, strerror(ENOENT)));
}

/* A recording that never started is removed with what the recorder put
 * in it; a directory holding anything else is not. */
static void test_abandon(void **st)
{
	(void)st;
	char rec[128], out[256], err[256], f[300];
	bool created;
	tpath(rec, sizeof(rec), "rec-abandoned");
	assert_int_equal(recording_create(rec, false, &created, out, sizeof(out), err, sizeof(err)), 0);
	assert_true(created);
	spew(out, "DTRC", 4);
	snprintf(f, sizeof(f), "%s/checkpoints.db", rec);
	spew(f, "x", 1);
	assert_int_equal(recording_abandon(rec, err, sizeof(err)), 0);
	struct stat sb;
	assert_int_equal(stat(rec, &sb), -1);
	assert_int_equal(errno, ENOENT);

	/* Only the trace there (the database was never created): removed too. */
	assert_int_equal(recording_create(rec, false, &created, out, sizeof(out), err, sizeof(err)), 0);
	assert_int_equal(recording_abandon(rec, err, sizeof(err)), 0);
	assert_int_equal(stat(rec, &sb), -1);

	/* Someone else's file in it: the directory stays, with the reason. */
	assert_int_equal(recording_create(rec, false, &created, out, sizeof(out), err, sizeof(err)), 0);
	snprintf(f, sizeof(f), "%s/notes.txt", rec);
	spew(f, "mine", 4);
	assert_int_equal(recording_abandon(rec, err, sizeof(err)), -1);
	assert_non_null(strstr(err, rec));
	assert_non_null(strstr(err, strerror(ENOTEMPTY)));
	assert_int_equal(stat(f, &sb), 0);
}

static void test_trace_path(void **st)
{
	(void)st;
	char rec[128], out[256], err[256], expect[300];
	tpath(rec, sizeof(rec), "rec2");
	assert_int_equal(mkdir(rec, 0777), 0);
	/* A directory without a trace is no recording, and the error says so. */
	assert_int_equal(recording_trace_path(rec, out, sizeof(out), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "is not a detvm recording"));
	assert_non_null(strstr(err, rec));
	snprintf(expect, sizeof(expect), "%s/%s", rec, RECORDING_TRACE);

	/* REC may name the trace file itself. */
	assert_int_equal(recording_trace_path(expect, out, sizeof(out), err, sizeof(err)), -1);
	spew(expect, "x", 1);
	assert_int_equal(recording_trace_path(expect, out, sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, expect);
	assert_int_equal(recording_trace_path(rec, out, sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, expect);

	/* A path that does not fit. */
	char small[8];
	assert_int_equal(recording_trace_path(rec, small, sizeof(small), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too long"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity_dense),
		cmocka_unit_test(test_identity_sparse),
		cmocka_unit_test(test_identity_all_hole_and_empty),
		cmocka_unit_test(test_identity_missing),
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_abandon),
		cmocka_unit_test(test_trace_path),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
