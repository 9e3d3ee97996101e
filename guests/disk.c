/*
 * disk - virtio-blk: write a pattern (from "detvm-disk-pattern" and the
 * sector number) to sectors 0..7, one request each, flush if offered, read
 * all eight back in one request, verify, and check that a read past the end
 * fails with IOERR.  The checksum covers the data read back.
 */
#include "guests/rt/rt.h"

const char *rt_guest_name = "disk";

#define SECTORS 8
#define VIRTIO_BLK_T_IN    0
#define VIRTIO_BLK_T_OUT   1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_S_OK     0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_F_FLUSH (1ULL << 9)

struct blk_hdr { uint32_t type, reserved; uint64_t sector; };

static struct virtio_dev dev __attribute__((aligned(4096)));
static struct blk_hdr hdr __attribute__((aligned(16)));
static volatile uint8_t status;
static uint8_t wbuf[SECTORS][512] __attribute__((aligned(4096)));
static uint8_t rbuf[SECTORS][512] __attribute__((aligned(4096)));

static const char pattern[] = "detvm-disk-pattern";

static void fill(uint8_t *p, unsigned sector)
{
	for (unsigned j = 0; j < 512; j++)
		p[j] = (uint8_t)(pattern[(j + sector) % (sizeof(pattern) - 1)] ^ (sector * 37 + j / 64));
}

static int blk(uint32_t type, uint64_t sector, void *data, uint32_t len)
{
	struct virtio_buf b[3];
	int n = 0;
	hdr.type = type;
	hdr.reserved = 0;
	hdr.sector = sector;
	status = 0xff;
	b[n++] = (struct virtio_buf){ &hdr, sizeof(hdr), 0 };
	if (len)
		b[n++] = (struct virtio_buf){ data, len, type == VIRTIO_BLK_T_IN };
	b[n++] = (struct virtio_buf){ (void *)&status, 1, 1 };
	long r = rt_virtio_request(&dev, b, n);
	if (r < 0)
		rt_fail("request type %u sector %lu: %s", type, sector, rt_virtio_error());
	return status;
}

void guest_main(struct machine *m)
{
	(void)m;
	const struct rt_virtio_slot *s = rt_virtio_find(VIRTIO_ID_BLOCK);
	if (!s)
		rt_fail("no virtio-blk device (%d virtio-mmio transports found)", m->nr_virtio);
	if (rt_virtio_init(&dev, s, VIRTIO_BLK_F_FLUSH))
		rt_fail("virtio-blk init: %s", rt_virtio_error());
	uint64_t cap = rt_virtio_config32(&dev, 0) | (uint64_t)rt_virtio_config32(&dev, 4) << 32;
	rt_printf("disk: capacity %lu sectors, flush %s\n", cap,
		  (dev.features & VIRTIO_BLK_F_FLUSH) ? "offered" : "not offered");
	if (cap < SECTORS)
		rt_fail("capacity %lu < %d sectors", cap, SECTORS);

	for (unsigned i = 0; i < SECTORS; i++) {
		fill(wbuf[i], i);
		int st = blk(VIRTIO_BLK_T_OUT, i, wbuf[i], 512);
		if (st != VIRTIO_BLK_S_OK)
			rt_fail("write of sector %u: status %d", i, st);
	}
	rt_printf("disk: wrote sectors 0..%d\n", SECTORS - 1);
	if (dev.features & VIRTIO_BLK_F_FLUSH) {
		int st = blk(VIRTIO_BLK_T_FLUSH, 0, 0, 0);
		if (st != VIRTIO_BLK_S_OK)
			rt_fail("flush: status %d", st);
		rt_printf("disk: flushed\n");
	}

	memset(rbuf, 0x5a, sizeof(rbuf));
	int st = blk(VIRTIO_BLK_T_IN, 0, rbuf, sizeof(rbuf));
	if (st != VIRTIO_BLK_S_OK)
		rt_fail("read of sectors 0..%d: status %d", SECTORS - 1, st);
	for (unsigned i = 0; i < SECTORS; i++)
		for (unsigned j = 0; j < 512; j++)
			if (rbuf[i][j] != wbuf[i][j])
				rt_fail("sector %u byte %u: read %02x, wrote %02x", i, j,
					rbuf[i][j], wbuf[i][j]);
	rt_printf("disk: read back sectors 0..%d, all match\n", SECTORS - 1);

	st = blk(VIRTIO_BLK_T_IN, cap, rbuf, 512);
	if (st != VIRTIO_BLK_S_IOERR)
		rt_fail("read past the end (sector %lu): status %d, wanted IOERR", cap, st);
	rt_printf("disk: read past the end: IOERR as expected\n");

	uint64_t h = fnv1a64(FNV64_INIT, wbuf, sizeof(wbuf));
	h = fnv1a64_u64(h, cap);
	rt_pass(h);
}
