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

struct blockdev;

/*
 * Open `path`.  On failure returns NULL and writes a message naming the file
 * and the failing call into err[0..errlen).
 */
struct blockdev *blockdev_open(const char *path, bool overlay, char *err, size_t errlen);
void blockdev_close(struct blockdev *bd);
uint64_t blockdev_size(const struct blockdev *bd);
/* 0, or -errno.  -EINVAL if [off, off + len) is not within the device. */
int blockdev_read(struct blockdev *bd, uint64_t off, void *buf, size_t len);
int blockdev_write(struct blockdev *bd, uint64_t off, const void *buf, size_t len);
int blockdev_flush(struct blockdev *bd);

#endif
