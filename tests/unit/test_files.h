/*
 * test_files.h - for unit tests that work on files: one scratch directory
 * per test binary (made by the group setup, removed with its contents by
 * the group teardown) and whole-file reads and writes that fail the test
 * on any error.  Include after <cmocka.h>.
 */
#ifndef DETVM_TEST_FILES_H
#define DETVM_TEST_FILES_H

#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char test_dir[64];

/* test_dir/name into out. */
static inline void tpath(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", test_dir, name);
}

/* Make test_dir as /tmp/<prefix>.XXXXXX: 0, or -1. */
static inline int test_dir_make(const char *prefix)
{
	snprintf(test_dir, sizeof(test_dir), "/tmp/%s.XXXXXX", prefix);
	return mkdtemp(test_dir) ? 0 : -1;
}

static inline int test_dir_rm_cb(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(p);
}

/* Remove test_dir and everything in it: 0, or -1. */
static inline int test_dir_remove(void)
{
	return nftw(test_dir, test_dir_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* The whole file, with room for one more byte; its length in *len. */
static inline uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *b;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	b = malloc((size_t)st.st_size + 1);
	assert_non_null(b);
	assert_int_equal(read(fd, b, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

/* Create or truncate path and write len bytes of b. */
static inline void spew(const char *path, const void *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, len), (ssize_t)len);
	close(fd);
}

#endif
