/*
 * fsync_dir.h - making a file's name survive a crash.
 *
 * fsync(2) of a file makes its contents durable, not the directory entry
 * that names it: "an explicit fsync() on a file descriptor for the
 * directory is also needed" (fsync(2)).  detvm's rule: whoever creates a
 * name syncs its directory once, as soon as the name exists, on a thread
 * that nobody waits for where there is one; the file's own fsync, at its
 * end, then makes the contents durable.
 */
#ifndef DETVM_FSYNC_DIR_H
#define DETVM_FSYNC_DIR_H

/* fsync the directory holding `path` (its dirname: "." for a bare name).
 * 0, or -1 with errno.  A file system that cannot sync a directory
 * (EINVAL) counts as done: there is nothing more to do there. */
int fsync_parent_dir(const char *path);

#endif
