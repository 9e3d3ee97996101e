/*
 * blockdev.c - file-backed and copy-on-write overlay storage.  See blockdev.h.
 *
 * The overlay keeps every 4 KiB block the guest has written in an
 * open-addressing hash table (block index -> heap buffer).  A block enters
 * the table whole: a partial write first copies the block's current contents
 * from the image, so a later read of the block never needs the image again.
 * Reads are split into runs of blocks that are and are not in the overlay;
 * the latter are read from the image with one pread per run.
 *
 * Host I/O errors are reported on stderr once per device (a guest retrying a
 * failing request must not flood the log); the caller gets -errno and the
 * guest an I/O error.
 */
#include "blockdev.h"
#include "common/errf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OV_BLOCK	4096u
#define OV_MIN_CAP	64u

struct ov_slot {
	uint64_t block;
	uint8_t *data;	/* NULL: empty slot */
	bool changed;	/* written since the last checkpoint took it */
};

struct blockdev {
	int fd;
	bool overlay;
	bool error_reported;
	uint64_t size;
	char *path;
	struct stat opened;	/* the file as opened: blockdev_changed() compares */
	/* overlay only */
	struct ov_slot *slots;
	size_t cap;	/* power of two, or 0 */
	size_t used;
	size_t changed;	/* slots with .changed set */
};

static void report_io_error(struct blockdev *bd, const char *call,
			    uint64_t off, const char *what)
{
	if (bd->error_reported)
		return;
	bd->error_reported = true;
	fprintf(stderr, "blockdev: %s: %s at offset %" PRIu64 ": %s "
		"(further errors on this device are not reported)\n",
		bd->path, call, off, what);
}

static bool in_range(const struct blockdev *bd, uint64_t off, size_t len)
{
	return off <= bd->size && len <= bd->size - off;
}

/* pread all of [off, off + len), retrying short reads and EINTR. */
static int read_full(struct blockdev *bd, uint64_t off, uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = pread(bd->fd, buf, len, (off_t)off);

		if (n < 0) {
			int e = errno;

			if (e == EINTR)
				continue;
			report_io_error(bd, "pread", off, strerror(e));
			return -e;
		}
		if (n == 0) {
			/* The image shrank under us. */
			report_io_error(bd, "pread", off, "unexpected end of file");
			return -EIO;
		}
		buf += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_full(struct blockdev *bd, uint64_t off, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = pwrite(bd->fd, buf, len, (off_t)off);

		if (n < 0) {
			int e = errno;

			if (e == EINTR)
				continue;
			report_io_error(bd, "pwrite", off, strerror(e));
			return -e;
		}
		if (n == 0) {
			report_io_error(bd, "pwrite", off, "no progress");
			return -EIO;
		}
		buf += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- overlay map ---- */

static size_t ov_hash(uint64_t block, size_t cap)
{
	/* Fibonacci hashing: consecutive blocks spread over the table. */
	return (size_t)((block * 0x9e3779b97f4a7c15ull) >> 17) & (cap - 1);
}

static struct ov_slot *ov_find(const struct blockdev *bd, uint64_t block)
{
	if (!bd->cap)
		return NULL;
	for (size_t i = ov_hash(block, bd->cap);; i = (i + 1) & (bd->cap - 1)) {
		struct ov_slot *s = &bd->slots[i];

		if (!s->data)
			return NULL;
		if (s->block == block)
			return s;
	}
}

static struct ov_slot *ov_place(struct ov_slot *slots, size_t cap, uint64_t block, uint8_t *data)
{
	size_t i = ov_hash(block, cap);

	while (slots[i].data)
		i = (i + 1) & (cap - 1);
	slots[i].block = block;
	slots[i].data = data;
	slots[i].changed = false;
	return &slots[i];
}

/* Keep the load factor at most 1/2 so that probing stays short. */
static int ov_reserve(struct blockdev *bd)
{
	size_t ncap;
	struct ov_slot *ns;

	if (bd->cap && (bd->used + 1) * 2 <= bd->cap)
		return 0;
	ncap = bd->cap ? bd->cap * 2 : OV_MIN_CAP;
	if (ncap < bd->cap)
		return -ENOMEM;
	ns = calloc(ncap, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	for (size_t i = 0; i < bd->cap; i++)
		if (bd->slots[i].data)
			ov_place(ns, ncap, bd->slots[i].block, bd->slots[i].data)->changed =
				bd->slots[i].changed;
	free(bd->slots);
	bd->slots = ns;
	bd->cap = ncap;
	return 0;
}

/*
 * The overlay buffer of `block`, created from the image's current contents
 * if absent (`whole`: the caller overwrites all of it, skip the read).
 */
static void ov_mark(struct blockdev *bd, struct ov_slot *s)
{
	if (!s->changed) {
		s->changed = true;
		bd->changed++;
	}
}

static int ov_get(struct blockdev *bd, uint64_t block, bool whole, uint8_t **out)
{
	struct ov_slot *s = ov_find(bd, block);
	uint64_t start = block * OV_BLOCK;
	uint8_t *data;
	int r;

	if (s) {
		ov_mark(bd, s);
		*out = s->data;
		return 0;
	}
	r = ov_reserve(bd);
	if (r)
		return r;
	data = calloc(1, OV_BLOCK);
	if (!data)
		return -ENOMEM;
	if (!whole) {
		/* The image's last block may be partial: the rest stays zero. */
		uint64_t n = bd->size - start < OV_BLOCK ? bd->size - start : OV_BLOCK;

		r = read_full(bd, start, data, (size_t)n);
		if (r) {
			free(data);
			return r;
		}
	}
	ov_mark(bd, ov_place(bd->slots, bd->cap, block, data));
	bd->used++;
	*out = data;
	return 0;
}

static int ov_read(struct blockdev *bd, uint64_t off, uint8_t *buf, size_t len)
{
	while (len) {
		uint64_t block = off / OV_BLOCK;
		size_t in = (size_t)(off % OV_BLOCK);
		size_t n = OV_BLOCK - in < len ? OV_BLOCK - in : len;
		struct ov_slot *s = ov_find(bd, block);
		int r;

		if (s) {
			memcpy(buf, s->data + in, n);
		} else {
			/* Extend to the whole run of blocks not in the overlay. */
			while (n < len && !ov_find(bd, (off + n) / OV_BLOCK))
				n += OV_BLOCK < len - n ? OV_BLOCK : len - n;
			r = read_full(bd, off, buf, n);
			if (r)
				return r;
		}
		buf += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int ov_write(struct blockdev *bd, uint64_t off, const uint8_t *buf, size_t len)
{
	while (len) {
		uint64_t block = off / OV_BLOCK;
		size_t in = (size_t)(off % OV_BLOCK);
		size_t n = OV_BLOCK - in < len ? OV_BLOCK - in : len;
		uint8_t *data;
		int r = ov_get(bd, block, n == OV_BLOCK, &data);

		if (r)
			return r;
		memcpy(data + in, buf, n);
		buf += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* ---- interface ---- */

struct blockdev *blockdev_open(const char *path, bool overlay, char *err, size_t errlen)
{
	struct blockdev *bd;
	struct stat st;
	off_t end;

	bd = calloc(1, sizeof(*bd));
	if (!bd || !(bd->path = strdup(path))) {
		snprintf(err, errlen, "%s: out of memory", path);
		free(bd);
		return NULL;
	}
	bd->overlay = overlay;
	bd->fd = open(path, (overlay ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (bd->fd < 0) {
		snprintf(err, errlen, "open(%s, %s): %s", path,
			 overlay ? "O_RDONLY" : "O_RDWR", strerror(errno));
		goto fail;
	}
	if (fstat(bd->fd, &st) < 0) {
		snprintf(err, errlen, "fstat(%s): %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file or block device", path);
		goto fail;
	}
	/* lseek gives the size of block devices too, where st_size is 0. */
	end = lseek(bd->fd, 0, SEEK_END);
	if (end < 0) {
		snprintf(err, errlen, "lseek(%s, SEEK_END): %s", path, strerror(errno));
		goto fail;
	}
	bd->size = (uint64_t)end;
	bd->opened = st;
	return bd;

fail:
	if (bd->fd >= 0)
		close(bd->fd);
	free(bd->path);
	free(bd);
	return NULL;
}

static bool same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

const struct stat *blockdev_opened(const struct blockdev *bd)
{
	return &bd->opened;
}

int blockdev_changed(const struct blockdev *bd, char *err, size_t errlen)
{
	return blockdev_changed_since(bd, &bd->opened, err, errlen);
}

int blockdev_changed_since(const struct blockdev *bd, const struct stat *since, char *err, size_t errlen)
{
	struct stat now, named;

	/* A block device's times do not follow writes to it: cannot tell. */
	if (!S_ISREG(since->st_mode))
		return 0;
	if (fstat(bd->fd, &now) < 0)
		return errf(err, errlen, "fstat(%s): %s", bd->path, strerror(errno));
	/* Replaced under its name (what is hashed by name is another file), or
	 * removed; first: unlinking moves the open file's change time too. */
	if (stat(bd->path, &named) < 0) {
		if (errno == ENOENT) {
			errf(err, errlen, "disk image '%s' was removed while in use", bd->path);
			return 1;
		}
		return errf(err, errlen, "stat(%s): %s", bd->path, strerror(errno));
	}
	if (named.st_dev != now.st_dev || named.st_ino != now.st_ino ||
	    named.st_dev != since->st_dev || named.st_ino != since->st_ino)
		errf(err, errlen, "disk image '%s' was replaced under its name while in use", bd->path);
	else if (now.st_size != since->st_size)
		errf(err, errlen, "disk image '%s' changed size from %lld to %lld bytes while in use", bd->path,
		     (long long)since->st_size, (long long)now.st_size);
	else if (!same_time(&now.st_mtim, &since->st_mtim) || !same_time(&now.st_ctim, &since->st_ctim))
		errf(err, errlen, "disk image '%s' was modified while in use (its modification or change "
		     "time moved)", bd->path);
	else
		return 0;
	return 1;
}

void blockdev_close(struct blockdev *bd)
{
	if (!bd)
		return;
	for (size_t i = 0; i < bd->cap; i++)
		free(bd->slots[i].data);
	free(bd->slots);
	if (close(bd->fd) < 0)
		fprintf(stderr, "blockdev: close(%s): %s\n", bd->path, strerror(errno));
	free(bd->path);
	free(bd);
}

uint64_t blockdev_size(const struct blockdev *bd)
{
	return bd->size;
}

int blockdev_read(struct blockdev *bd, uint64_t off, void *buf, size_t len)
{
	if (!in_range(bd, off, len))
		return -EINVAL;
	if (bd->overlay)
		return ov_read(bd, off, buf, len);
	return read_full(bd, off, buf, len);
}

int blockdev_write(struct blockdev *bd, uint64_t off, const void *buf, size_t len)
{
	if (!in_range(bd, off, len))
		return -EINVAL;
	if (bd->overlay)
		return ov_write(bd, off, buf, len);
	return write_full(bd, off, buf, len);
}

int blockdev_flush(struct blockdev *bd)
{
	/* The overlay lives only in memory: nothing to make durable. */
	if (bd->overlay)
		return 0;
	if (fdatasync(bd->fd) < 0) {
		int e = errno;

		report_io_error(bd, "fdatasync", 0, strerror(e));
		return -e;
	}
	return 0;
}

/* ---- checkpoints ---- */

bool blockdev_is_overlay(const struct blockdev *bd)
{
	return bd->overlay;
}

size_t blockdev_overlay_changed(const struct blockdev *bd)
{
	return bd->changed;
}

int blockdev_overlay_foreach(struct blockdev *bd, bool only_changed, bool clear_changed,
			     int (*cb)(void *ctx, uint64_t block, const uint8_t *data), void *ctx)
{
	for (size_t i = 0; i < bd->cap; i++) {
		struct ov_slot *s = &bd->slots[i];
		int r;

		if (!s->data || (only_changed && !s->changed))
			continue;
		r = cb(ctx, s->block, s->data);
		if (r)
			return r;
		if (clear_changed && s->changed) {
			s->changed = false;
			bd->changed--;
		}
	}
	return 0;
}

int blockdev_overlay_put(struct blockdev *bd, uint64_t block, const uint8_t *data)
{
	uint8_t *dst;
	int r;

	if (!bd->overlay || block >= (bd->size + OV_BLOCK - 1) / OV_BLOCK)
		return -EINVAL;
	r = ov_get(bd, block, true, &dst);
	if (r)
		return r;
	memcpy(dst, data, OV_BLOCK);
	return 0;
}
