/*
 * virtio_blk.h - virtio block device (ID 2) over a struct blockdev.
 *
 * Requests: IN (0), OUT (1), FLUSH (4), GET_ID (8); others complete with
 * VIRTIO_BLK_S_UNSUPP.  Features: VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_BLK_SIZE
 * (512), VIRTIO_BLK_F_SEG_MAX (126: a request must fit in the queue, as
 * indirect descriptors are not offered).  Config: capacity in 512-byte
 * sectors (a trailing partial sector of the image is not visible), seg_max,
 * blk_size.  As virtio 1.x requires, the descriptor layout is free: the
 * readable bytes are the 16-byte header then (OUT) the data, the writable
 * bytes are (IN, GET_ID) the data then the status byte, which is the last
 * writable byte.  A chain with fewer than 16 readable bytes or no writable
 * byte is malformed (the transport sets NEEDS_RESET).  A request past the
 * end or whose data length is not a multiple of 512 completes with
 * VIRTIO_BLK_S_IOERR, as does a host I/O error.  GET_ID writes the 20-byte
 * ID "detvm-virtio-blk" (NUL-padded), truncated to the buffer.
 */
#ifndef DETVM_VIRTIO_BLK_H
#define DETVM_VIRTIO_BLK_H

#include "blockdev.h"
#include "virtio_mmio.h"

struct virtio_blk {
	struct blockdev *bd;
	uint64_t capacity; /* sectors */
	struct virtio_mmio transport;
};

void virtio_blk_init(struct virtio_blk *b, struct blockdev *bd,
		     const struct guest_mem *mem, struct irq_line irq);
int virtio_blk_register(struct virtio_blk *b, struct bus *mmio, uint64_t base);

#endif
