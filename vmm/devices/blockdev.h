/*
 * blockdev.h - the storage behind a virtio-blk device.
 *
 * Two kinds:
 *  - file:    reads and writes go to the image file (detvm run).
 *  - overlay: the image is opened read-only and never modified; writes go to
 *             an in-memory copy-on-write map of 4 KiB blocks (record and
 *             replay: the image must stay identical to what the recording's
 *             header identifies, so a guest's writes cannot touch it).
 * Sizes are whole bytes; a request must lie within [0, size).
 */
#ifndef DETVM_BLOCKDEV_H
#define DETVM_BLOCKDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct blockdev;

/*
 * Open `path`.  On failure returns NULL and writes a message naming the file
 * and the failing call into err[0..errlen).
 */
struct blockdev *blockdev_open(const char *path, bool overlay, char *err, size_t errlen);
void blockdev_close(struct blockdev *bd);
/*
 * Whether the image file changed since it was opened: written to (size,
 * modification or change time), or replaced or removed under its name.
 * 1 if so, with what in err; 0 if not, or if it cannot tell (a block
 * device); -1 if fstat or stat fails (message in err).  For overlays:
 * record and replay name the image by its content, hashed once, and one
 * modified meanwhile is not the image the guest read.  (In file mode the
 * guest's own writes change it.)
 */
int blockdev_changed(const struct blockdev *bd, char *err, size_t errlen);
/* The same against `since`, the file as another open of it found it
 * (blockdev_opened()): a replay's later VMs, which open the image afresh,
 * compare with its first. */
int blockdev_changed_since(const struct blockdev *bd, const struct stat *since, char *err, size_t errlen);
/* The file as this open found it. */
const struct stat *blockdev_opened(const struct blockdev *bd);
uint64_t blockdev_size(const struct blockdev *bd);
/* 0, or -errno.  -EINVAL if [off, off + len) is not within the device. */
int blockdev_read(struct blockdev *bd, uint64_t off, void *buf, size_t len);
int blockdev_write(struct blockdev *bd, uint64_t off, const void *buf, size_t len);
int blockdev_flush(struct blockdev *bd);

/*
 * Overlay only (checkpoints): the 4 KiB blocks the guest has written.
 * foreach calls cb(ctx, block number, 4096 bytes) for every overlay block
 * (only_changed: those written since the last foreach with clear_changed),
 * in no particular order; cb returns non-zero to stop (returned).
 * Blocks past the end of a partial last block read as zero.
 */
#define BLOCKDEV_BLOCK 4096u
int blockdev_overlay_foreach(struct blockdev *bd, bool only_changed, bool clear_changed,
			     int (*cb)(void *ctx, uint64_t block, const uint8_t *data), void *ctx);
/* Number of overlay blocks changed since the last clear. */
size_t blockdev_overlay_changed(const struct blockdev *bd);
/* Put a whole block into the overlay (restoring a checkpoint).  0 or -errno. */
int blockdev_overlay_put(struct blockdev *bd, uint64_t block, const uint8_t *data);
bool blockdev_is_overlay(const struct blockdev *bd);

#endif
