/*
 * virtio_blk.c - virtio block device over a struct blockdev.  See
 * virtio_blk.h.
 *
 * A request is read as virtio 1.x lays it out, independently of how the
 * driver split it into descriptors: the readable stream is the 16-byte
 * header followed (for OUT) by the data, the writable stream is the data
 * (for IN and GET_ID) followed by the one status byte, which is the last
 * writable byte.  Data moves directly between the blockdev and the validated
 * guest buffers, one segment at a time.
 */
#include "virtio_blk.h"

#include <string.h>

#define VIRTIO_ID_BLOCK		2

#define VIRTIO_BLK_F_SEG_MAX	(1ull << 2)
#define VIRTIO_BLK_F_BLK_SIZE	(1ull << 6)
#define VIRTIO_BLK_F_FLUSH	(1ull << 9)

#define VIRTIO_BLK_T_IN		0
#define VIRTIO_BLK_T_OUT	1
#define VIRTIO_BLK_T_FLUSH	4
#define VIRTIO_BLK_T_GET_ID	8

#define VIRTIO_BLK_S_OK		0
#define VIRTIO_BLK_S_IOERR	1
#define VIRTIO_BLK_S_UNSUPP	2

#define SECTOR_SIZE		512u
#define BLK_HDR_SIZE		16u
#define BLK_ID_BYTES		20u
#define BLK_CONFIG_SIZE		24u

/*
 * Data segments per request.  Without indirect descriptors a request (plus
 * header and status) must fit in the queue; half the largest queue leaves a
 * driver that picks a smaller one room too.
 */
#define BLK_SEG_MAX		(VIRTIO_QUEUE_MAX / 2 - 2)

static const char blk_id[BLK_ID_BYTES] = "detvm-virtio-blk";

static void blk_config_read(void *dev, uint32_t offset, uint8_t *data, unsigned size)
{
	struct virtio_blk *b = dev;
	uint8_t cfg[BLK_CONFIG_SIZE] = { 0 };

	bus_le_put(cfg + 0, 8, b->capacity);	/* capacity */
	bus_le_put(cfg + 12, 4, BLK_SEG_MAX);	/* seg_max */
	bus_le_put(cfg + 20, 4, SECTOR_SIZE);	/* blk_size */
	for (unsigned i = 0; i < size; i++)
		if (offset < BLK_CONFIG_SIZE && i < BLK_CONFIG_SIZE - offset)
			data[i] = cfg[offset + i];
}

/* Is [sector, sector + len) inside the visible capacity?  Overflow-safe. */
static bool blk_in_range(const struct virtio_blk *b, uint64_t sector, uint64_t len)
{
	return sector <= b->capacity && len / SECTOR_SIZE <= b->capacity - sector;
}

/* IN: the writable stream except its last byte receives the data. */
static uint8_t blk_in(struct virtio_blk *b, struct virtio_chain *c, uint64_t sector,
		      uint64_t len, uint64_t *written)
{
	uint64_t off = sector * SECTOR_SIZE;

	if (len % SECTOR_SIZE || !blk_in_range(b, sector, len))
		return VIRTIO_BLK_S_IOERR;
	for (int i = 0; i < c->nseg && len; i++) {
		struct virtio_seg *sg = &c->seg[i];
		uint64_t n = sg->len < len ? sg->len : len;

		if (!sg->writable)
			continue;
		if (blockdev_read(b->bd, off, sg->host, (size_t)n))
			return VIRTIO_BLK_S_IOERR;
		off += n;
		len -= n;
		*written += n;
	}
	return VIRTIO_BLK_S_OK;
}

/* OUT: the readable stream after the header is the data. */
static uint8_t blk_out(struct virtio_blk *b, struct virtio_chain *c, uint64_t sector,
		       uint64_t len)
{
	uint64_t off = sector * SECTOR_SIZE, skip = BLK_HDR_SIZE;

	if (len % SECTOR_SIZE || !blk_in_range(b, sector, len))
		return VIRTIO_BLK_S_IOERR;
	for (int i = 0; i < c->nseg && len; i++) {
		struct virtio_seg *sg = &c->seg[i];
		uint64_t n;

		if (sg->writable)
			break;
		if (skip >= sg->len) {
			skip -= sg->len;
			continue;
		}
		n = sg->len - skip < len ? sg->len - skip : len;
		if (blockdev_write(b->bd, off, (uint8_t *)sg->host + skip, (size_t)n))
			return VIRTIO_BLK_S_IOERR;
		skip = 0;
		off += n;
		len -= n;
	}
	return VIRTIO_BLK_S_OK;
}

static int blk_handle(void *dev, int queue, struct virtio_chain *c)
{
	struct virtio_blk *b = dev;
	uint64_t rlen = virtio_chain_len(c, false);
	uint64_t wlen = virtio_chain_len(c, true);
	uint64_t written = 0;
	uint8_t hdr[BLK_HDR_SIZE], status;
	uint32_t type;
	uint64_t sector;

	(void)queue;
	/* Without a whole header or a status byte there is no request. */
	if (rlen < BLK_HDR_SIZE || wlen < 1)
		return -1;
	virtio_chain_copy_from(c, 0, hdr, sizeof(hdr));
	type = (uint32_t)bus_le_get(hdr, 4);
	sector = bus_le_get(hdr + 8, 8);

	switch (type) {
	case VIRTIO_BLK_T_IN:
		status = b->bd ? blk_in(b, c, sector, wlen - 1, &written)
			       : VIRTIO_BLK_S_IOERR;
		break;
	case VIRTIO_BLK_T_OUT:
		status = b->bd ? blk_out(b, c, sector, rlen - BLK_HDR_SIZE)
			       : VIRTIO_BLK_S_IOERR;
		break;
	case VIRTIO_BLK_T_FLUSH:
		status = b->bd && !blockdev_flush(b->bd) ? VIRTIO_BLK_S_OK
							 : VIRTIO_BLK_S_IOERR;
		break;
	case VIRTIO_BLK_T_GET_ID:
		/* The ID is truncated to the buffer, not refused. */
		written = wlen - 1 < BLK_ID_BYTES ? wlen - 1 : BLK_ID_BYTES;
		virtio_chain_copy_to(c, 0, blk_id, (size_t)written);
		status = VIRTIO_BLK_S_OK;
		break;
	default:
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	virtio_chain_copy_to(c, wlen - 1, &status, 1);
	written += 1;
	return written > INT32_MAX ? INT32_MAX : (int)written;
}

void virtio_blk_init(struct virtio_blk *b, struct blockdev *bd,
		     const struct guest_mem *mem, struct irq_line irq)
{
	struct virtio_backend be = {
		.device_id = VIRTIO_ID_BLOCK,
		.features = VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE |
			    VIRTIO_BLK_F_FLUSH,
		.num_queues = 1,
		.config_read = blk_config_read,
		.handle = blk_handle,
		.dev = b,
	};

	b->bd = bd;
	/* A trailing partial sector of the image is not visible. */
	b->capacity = bd ? blockdev_size(bd) / SECTOR_SIZE : 0;
	virtio_mmio_init(&b->transport, "virtio-blk", mem, irq, &be);
}

int virtio_blk_register(struct virtio_blk *b, struct bus *mmio, uint64_t base)
{
	return virtio_mmio_register(&b->transport, mmio, base);
}
