/*
 * test_fsync_log.h - which files a unit test binary fsyncs, in order.
 *
 * Including this in a test file defines fsync() for the whole binary: the
 * library's calls (linked statically) and SQLite's (through the dynamic
 * symbol table) come here.  Each call logs the path of the descriptor
 * (/proc/self/fd) and then makes the real system call, so nothing the
 * tests check loses its durability.  Thread-safe: the checkpoint
 * database fsyncs on its writer thread.
 */
#ifndef DETVM_TEST_FSYNC_LOG_H
#define DETVM_TEST_FSYNC_LOG_H

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FSYNC_LOG_MAX 256

static pthread_mutex_t fsync_log_lock = PTHREAD_MUTEX_INITIALIZER;
static char fsync_log[FSYNC_LOG_MAX][PATH_MAX];
static unsigned fsync_log_n;

int fsync(int fd)
{
	char link[64], path[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	path[n > 0 ? n : 0] = 0;
	pthread_mutex_lock(&fsync_log_lock);
	if (fsync_log_n < FSYNC_LOG_MAX)
		snprintf(fsync_log[fsync_log_n++], PATH_MAX, "%s", path);
	pthread_mutex_unlock(&fsync_log_lock);
	return (int)syscall(SYS_fsync, fd);
}

static inline void fsync_log_reset(void)
{
	pthread_mutex_lock(&fsync_log_lock);
	fsync_log_n = 0;
	pthread_mutex_unlock(&fsync_log_lock);
}

/* How many fsyncs of `path` (as /proc/self/fd names it: absolute) so far. */
static inline unsigned fsync_log_count(const char *path)
{
	unsigned c = 0;

	pthread_mutex_lock(&fsync_log_lock);
	for (unsigned i = 0; i < fsync_log_n; i++)
		c += strcmp(fsync_log[i], path) == 0;
	pthread_mutex_unlock(&fsync_log_lock);
	return c;
}

#endif
