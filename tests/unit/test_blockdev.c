/*
 * test_blockdev.c - unit tests for file and overlay storage
 * (vmm/devices/blockdev.c), on small temporary files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/devices/blockdev.h"

#define IMG_SIZE (3 * 4096 + 100)	/* ends in a partial 4 KiB block */

static char path[64];

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 7 + (off >> 8) * 13 + 1);
}

static void make_image(uint64_t size)
{
	uint8_t *buf = malloc(size);
	int fd;

	assert_non_null(buf);
	for (uint64_t i = 0; i < size; i++)
		buf[i] = pattern(i);
	strcpy(path, "/tmp/detvm-test-blockdev-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, size), (ssize_t)size);
	assert_int_equal(close(fd), 0);
	free(buf);
}

static int setup(void **state)
{
	(void)state;
	make_image(IMG_SIZE);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

/* The file's bytes, read independently of the code under test. */
static void file_bytes(uint64_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void assert_file_pristine(void)
{
	uint8_t *buf = malloc(IMG_SIZE);

	file_bytes(0, buf, IMG_SIZE);
	for (uint64_t i = 0; i < IMG_SIZE; i++)
		if (buf[i] != pattern(i))
			fail_msg("file modified at %llu", (unsigned long long)i);
	free(buf);
}

static void test_open_errors(void **state)
{
	char err[256] = "";

	(void)state;
	assert_null(blockdev_open("/nonexistent/detvm/disk.img", false, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/detvm/disk.img"));
	assert_non_null(strstr(err, "open"));

	err[0] = 0;
	assert_null(blockdev_open("/tmp", true, err, sizeof(err)));
	assert_non_null(strstr(err, "/tmp"));
}

static void test_file_mode(void **state)
{
	char err[256];
	uint8_t buf[8192], chk[8192];
	struct blockdev *bd;

	(void)state;
	bd = blockdev_open(path, false, err, sizeof(err));
	assert_non_null(bd);
	assert_int_equal(blockdev_size(bd), IMG_SIZE);

	assert_int_equal(blockdev_read(bd, 4000, buf, 5000), 0);
	for (int i = 0; i < 5000; i++)
		assert_int_equal(buf[i], pattern(4000 + i));

	memset(buf, 0xab, 300);
	assert_int_equal(blockdev_write(bd, 4090, buf, 300), 0);
	file_bytes(4080, chk, 320);
	for (int i = 0; i < 320; i++)
		assert_int_equal(chk[i], i >= 10 && i < 310 ? 0xab : pattern(4080 + i));
	assert_int_equal(blockdev_flush(bd), 0);

	/* The very end of the device. */
	assert_int_equal(blockdev_write(bd, IMG_SIZE - 1, "z", 1), 0);
	assert_int_equal(blockdev_read(bd, IMG_SIZE - 2, buf, 2), 0);
	assert_int_equal(buf[0], pattern(IMG_SIZE - 2));
	assert_int_equal(buf[1], 'z');
	blockdev_close(bd);
}

static void test_bounds(void **state)
{
	char err[256];
	uint8_t buf[16];
	struct blockdev *bd;

	(void)state;
	for (int overlay = 0; overlay < 2; overlay++) {
		bd = blockdev_open(path, overlay, err, sizeof(err));
		assert_non_null(bd);
		assert_int_equal(blockdev_read(bd, IMG_SIZE, buf, 0), 0);
		assert_int_equal(blockdev_read(bd, IMG_SIZE, buf, 1), -EINVAL);
		assert_int_equal(blockdev_read(bd, IMG_SIZE - 1, buf, 2), -EINVAL);
		assert_int_equal(blockdev_write(bd, IMG_SIZE - 1, buf, 2), -EINVAL);
		assert_int_equal(blockdev_read(bd, UINT64_MAX, buf, 2), -EINVAL);
		assert_int_equal(blockdev_write(bd, UINT64_MAX - 1, buf, 4), -EINVAL);
		assert_int_equal(blockdev_read(bd, 1, buf, SIZE_MAX), -EINVAL);
		blockdev_close(bd);
	}
	assert_file_pristine();
}

static void test_overlay(void **state)
{
	char err[256];
	static uint8_t buf[IMG_SIZE], expect[IMG_SIZE];
	struct blockdev *bd;

	(void)state;
	bd = blockdev_open(path, true, err, sizeof(err));
	assert_non_null(bd);
	assert_int_equal(blockdev_size(bd), IMG_SIZE);
	for (uint64_t i = 0; i < IMG_SIZE; i++)
		expect[i] = pattern(i);

	/* Partial write straddling blocks 0 and 1. */
	memset(buf, 0x11, 20);
	assert_int_equal(blockdev_write(bd, 4090, buf, 20), 0);
	memset(expect + 4090, 0x11, 20);
	/* A whole aligned block. */
	memset(buf, 0x22, 4096);
	assert_int_equal(blockdev_write(bd, 2 * 4096, buf, 4096), 0);
	memset(expect + 2 * 4096, 0x22, 4096);
	/* Inside the partial last block, then overwrite part of it. */
	memset(buf, 0x33, 50);
	assert_int_equal(blockdev_write(bd, 3 * 4096 + 10, buf, 50), 0);
	memset(expect + 3 * 4096 + 10, 0x33, 50);
	assert_int_equal(blockdev_write(bd, 3 * 4096 + 20, "abc", 3), 0);
	memcpy(expect + 3 * 4096 + 20, "abc", 3);

	/* Whole-device read merges overlay and image. */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(blockdev_read(bd, 0, buf, IMG_SIZE), 0);
	assert_memory_equal(buf, expect, IMG_SIZE);
	/* Unaligned reads across the boundaries. */
	for (uint64_t off = 4000; off < IMG_SIZE; off += 777) {
		size_t len = IMG_SIZE - off < 5000 ? IMG_SIZE - off : 5000;

		memset(buf, 0, len);
		assert_int_equal(blockdev_read(bd, off, buf, len), 0);
		assert_memory_equal(buf, expect + off, len);
	}
	assert_int_equal(blockdev_flush(bd), 0);
	blockdev_close(bd);
	/* Nothing reached the file, and a new overlay starts from it again. */
	assert_file_pristine();
	bd = blockdev_open(path, true, err, sizeof(err));
	assert_int_equal(blockdev_read(bd, 4090, buf, 20), 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(buf[i], pattern(4090 + i));
	blockdev_close(bd);
}

static void test_overlay_many_blocks(void **state)
{
	char err[256];
	uint8_t buf[4096];
	struct blockdev *bd;
	const uint64_t size = 1024 * 4096;

	(void)state;
	unlink(path);
	make_image(size);
	bd = blockdev_open(path, true, err, sizeof(err));
	assert_non_null(bd);
	/* Enough blocks to grow the map several times; odd stride. */
	for (uint64_t b = 0; b < 1024; b += 3) {
		memset(buf, (int)(b & 0xff), sizeof(buf));
		buf[0] = (uint8_t)(b >> 8);
		assert_int_equal(blockdev_write(bd, b * 4096, buf, 4096), 0);
	}
	/* One read over a mix of overlay and image blocks. */
	static uint8_t big[10 * 4096];
	assert_int_equal(blockdev_read(bd, 4096 + 5, big, sizeof(big)), 0);
	for (uint64_t i = 0; i < sizeof(big); i++) {
		uint64_t off = 4096 + 5 + i, b = off / 4096;
		uint8_t want = b % 3 ? pattern(off) :
			       off % 4096 == 0 ? (uint8_t)(b >> 8) : (uint8_t)(b & 0xff);

		if (big[i] != want)
			fail_msg("byte %llu", (unsigned long long)off);
	}
	for (uint64_t b = 0; b < 1024; b++) {
		assert_int_equal(blockdev_read(bd, b * 4096, buf, 4096), 0);
		if (b % 3 == 0) {
			assert_int_equal(buf[0], (uint8_t)(b >> 8));
			assert_int_equal(buf[4095], (uint8_t)(b & 0xff));
		} else {
			assert_int_equal(buf[0], pattern(b * 4096));
			assert_int_equal(buf[4095], pattern(b * 4096 + 4095));
		}
	}
	blockdev_close(bd);
}

static void test_image_shrinks(void **state)
{
	char err[256];
	uint8_t buf[4096];
	struct blockdev *bd;

	(void)state;
	for (int overlay = 0; overlay < 2; overlay++) {
		bd = blockdev_open(path, overlay, err, sizeof(err));
		assert_non_null(bd);
		/* Someone truncates the image behind our back. */
		assert_int_equal(truncate(path, 4096), 0);
		assert_int_equal(blockdev_read(bd, 4096, buf, 100), -EIO);
		if (overlay)	/* copy-on-write of a block that is gone */
			assert_int_equal(blockdev_write(bd, 8192, buf, 10), -EIO);
		assert_int_equal(blockdev_read(bd, 0, buf, 4096), 0);
		blockdev_close(bd);
		unlink(path);
		make_image(IMG_SIZE);
	}
}

/*
 * blockdev_changed: a write in place (same size), a change of size, a
 * touch, a replacement under the name and a removal are all seen; the
 * device's own copy-on-write writes and reads are not a change.
 */
static void test_changed(void **state)
{
	char err[256], other[64];
	uint8_t buf[16] = { 0 };
	struct blockdev *bd;
	int fd;
	const struct timespec later[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = 2000000000 } };

	(void)state;
	for (int kind = 0; kind < 5; kind++) {
		bd = blockdev_open(path, true, err, sizeof(err));
		assert_non_null(bd);
		assert_int_equal(blockdev_write(bd, 0, buf, sizeof(buf)), 0);
		assert_int_equal(blockdev_read(bd, 4096, buf, sizeof(buf)), 0);
		assert_int_equal(blockdev_changed(bd, err, sizeof(err)), 0);
		switch (kind) {
		case 0:	/* written in place */
			fd = open(path, O_WRONLY);
			assert_true(fd >= 0);
			assert_int_equal(pwrite(fd, "x", 1, 5000), 1);
			close(fd);
			break;
		case 1:	/* grown */
			assert_int_equal(truncate(path, IMG_SIZE + 1), 0);
			break;
		case 2:	/* only its time moved (a touch, or a write that kept the bytes) */
			assert_int_equal(utimensat(AT_FDCWD, path, later, 0), 0);
			break;
		case 3:	/* replaced under its name */
			strcpy(other, "/tmp/detvm-test-blockdev-XXXXXX");
			fd = mkstemp(other);
			assert_true(fd >= 0);
			close(fd);
			assert_int_equal(rename(other, path), 0);
			break;
		case 4:	/* removed */
			assert_int_equal(unlink(path), 0);
			break;
		}
		assert_int_equal(blockdev_changed(bd, err, sizeof(err)), 1);
		assert_non_null(strstr(err, path));
		assert_non_null(strstr(err, kind == 1 ? "changed size" : kind == 3 ? "replaced under its name" :
					 kind == 4 ? "was removed" : "was modified"));
		blockdev_close(bd);
		unlink(path);
		make_image(IMG_SIZE);
	}
}

struct seen { uint64_t blocks[8]; uint8_t first[8]; int n; };

static int collect(void *ctx, uint64_t block, const uint8_t *data)
{
	struct seen *s = ctx;
	assert_true(s->n < 8);
	s->blocks[s->n] = block;
	s->first[s->n++] = data[0];
	return 0;
}

static int stop_at_first(void *ctx, uint64_t block, const uint8_t *data)
{
	(void)ctx; (void)block; (void)data;
	return 7;
}

/* Checkpoints: changed blocks are listed once, then cleared; put restores. */
static void test_overlay_checkpoint(void **state)
{
	char err[256];
	uint8_t blk[4096], got[4096];
	struct blockdev *bd;
	struct seen s = { 0 };

	(void)state;
	bd = blockdev_open(path, true, err, sizeof(err));
	assert_non_null(bd);
	assert_true(blockdev_is_overlay(bd));
	assert_int_equal(blockdev_overlay_changed(bd), 0);
	assert_int_equal(blockdev_write(bd, 4096 + 10, "\x42", 1), 0);	/* block 1 */
	assert_int_equal(blockdev_write(bd, 2 * 4096, "\x43", 1), 0);	/* block 2 */
	assert_int_equal(blockdev_write(bd, 4096 + 11, "\x44", 1), 0);	/* block 1 again */
	assert_int_equal(blockdev_overlay_changed(bd), 2);
	assert_int_equal(blockdev_overlay_foreach(bd, true, true, collect, &s), 0);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.blocks[0] + s.blocks[1], 3);
	assert_int_equal(blockdev_overlay_changed(bd), 0);
	s.n = 0;
	assert_int_equal(blockdev_overlay_foreach(bd, true, true, collect, &s), 0);
	assert_int_equal(s.n, 0);		/* nothing changed since */
	assert_int_equal(blockdev_overlay_foreach(bd, false, false, collect, &s), 0);
	assert_int_equal(s.n, 2);		/* but both are in the overlay */
	assert_int_equal(blockdev_overlay_foreach(bd, false, false, stop_at_first, NULL), 7);
	blockdev_close(bd);

	/* Restore into a fresh overlay. */
	bd = blockdev_open(path, true, err, sizeof(err));
	assert_non_null(bd);
	memset(blk, 0x5a, sizeof(blk));
	assert_int_equal(blockdev_overlay_put(bd, 1, blk), 0);
	assert_int_equal(blockdev_read(bd, 4096, got, sizeof(got)), 0);
	assert_memory_equal(got, blk, sizeof(blk));
	assert_int_equal(blockdev_overlay_put(bd, (IMG_SIZE + 4095) / 4096, blk), -EINVAL); /* past the end */
	blockdev_close(bd);
	bd = blockdev_open(path, false, err, sizeof(err));
	assert_non_null(bd);
	assert_false(blockdev_is_overlay(bd));
	assert_int_equal(blockdev_overlay_put(bd, 0, blk), -EINVAL);	/* not an overlay */
	blockdev_close(bd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlay_many_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_image_shrinks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlay_checkpoint, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
