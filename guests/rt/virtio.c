/*
 * virtio.c - virtio-mmio (version 2) driver: probe, 1.x initialisation of
 * queue 0, synchronous requests polled on the used ring.
 */
#include "rt.h"

#define VM_MAGIC        0x000
#define VM_VERSION      0x004
#define VM_DEVICE_ID    0x008
#define VM_DEV_FEAT     0x010
#define VM_DEV_FEAT_SEL 0x014
#define VM_DRV_FEAT     0x020
#define VM_DRV_FEAT_SEL 0x024
#define VM_QUEUE_SEL    0x030
#define VM_QUEUE_NUM_MAX 0x034
#define VM_QUEUE_NUM    0x038
#define VM_QUEUE_READY  0x044
#define VM_QUEUE_NOTIFY 0x050
#define VM_INT_STATUS   0x060
#define VM_INT_ACK      0x064
#define VM_STATUS       0x070
#define VM_QUEUE_DESC_LO 0x080
#define VM_QUEUE_DESC_HI 0x084
#define VM_QUEUE_DRV_LO 0x090
#define VM_QUEUE_DRV_HI 0x094
#define VM_QUEUE_DEV_LO 0x0a0
#define VM_QUEUE_DEV_HI 0x0a4
#define VM_CONFIG_GEN   0x0fc
#define VM_CONFIG       0x100

#define S_ACK         1
#define S_DRIVER      2
#define S_DRIVER_OK   4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 0x40
#define S_FAILED      0x80

#define VIRTIO_F_VERSION_1 (1ULL << 32)

static const char *last_error = "none";

const char *rt_virtio_error(void)
{
	return last_error;
}

static uint32_t rd(const struct virtio_dev *d, uint32_t off) { return mmio_read32(d->base + off); }
static void wr(const struct virtio_dev *d, uint32_t off, uint32_t v) { mmio_write32(d->base + off, v); }

/* Called from rt_start: record every transport that answers with the magic. */
void rt_virtio_probe(void);
void rt_virtio_probe(void)
{
	rt_machine.nr_virtio = 0;
	for (uint32_t i = 0; i < DEV_VIRTIO_SLOTS; i++) {
		uint64_t base = DEV_VIRTIO_BASE + i * DEV_VIRTIO_STRIDE;
		if (mmio_read32(base + VM_MAGIC) != 0x74726976)
			continue;
		if (mmio_read32(base + VM_VERSION) != 2)
			continue;
		uint32_t id = mmio_read32(base + VM_DEVICE_ID);
		if (id == 0)
			continue; /* an empty transport */
		struct rt_virtio_slot *s = &rt_machine.virtio[rt_machine.nr_virtio++];
		s->base = base;
		s->device_id = id;
		s->slot = i;
	}
}

const struct rt_virtio_slot *rt_virtio_find(uint32_t device_id)
{
	for (int i = 0; i < rt_machine.nr_virtio; i++)
		if (rt_machine.virtio[i].device_id == device_id)
			return &rt_machine.virtio[i];
	return NULL;
}

int rt_virtio_init(struct virtio_dev *d, const struct rt_virtio_slot *s, uint64_t wanted)
{
	memset(d, 0, sizeof(*d));
	d->base = s->base;
	d->device_id = s->device_id;

	wr(d, VM_STATUS, 0); /* reset */
	if (rd(d, VM_STATUS) != 0) {
		last_error = "reset did not read back 0";
		return -1;
	}
	wr(d, VM_STATUS, S_ACK);
	wr(d, VM_STATUS, S_ACK | S_DRIVER);

	wr(d, VM_DEV_FEAT_SEL, 0);
	uint64_t feat = rd(d, VM_DEV_FEAT);
	wr(d, VM_DEV_FEAT_SEL, 1);
	feat |= (uint64_t)rd(d, VM_DEV_FEAT) << 32;
	if (!(feat & VIRTIO_F_VERSION_1)) {
		last_error = "device does not offer VIRTIO_F_VERSION_1";
		wr(d, VM_STATUS, S_FAILED);
		return -1;
	}
	d->features = feat & (wanted | VIRTIO_F_VERSION_1);
	wr(d, VM_DRV_FEAT_SEL, 0);
	wr(d, VM_DRV_FEAT, (uint32_t)d->features);
	wr(d, VM_DRV_FEAT_SEL, 1);
	wr(d, VM_DRV_FEAT, (uint32_t)(d->features >> 32));
	wr(d, VM_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(rd(d, VM_STATUS) & S_FEATURES_OK)) {
		last_error = "FEATURES_OK not accepted";
		wr(d, VM_STATUS, S_FAILED);
		return -1;
	}

	wr(d, VM_QUEUE_SEL, 0);
	if (rd(d, VM_QUEUE_READY) != 0) {
		last_error = "queue 0 already ready";
		wr(d, VM_STATUS, S_FAILED);
		return -1;
	}
	uint32_t max = rd(d, VM_QUEUE_NUM_MAX);
	if (max == 0) {
		last_error = "queue 0 not available";
		wr(d, VM_STATUS, S_FAILED);
		return -1;
	}
	d->vq.num = max < RT_VQ_SIZE ? (uint16_t)max : RT_VQ_SIZE;
	wr(d, VM_QUEUE_NUM, d->vq.num);
	uint64_t desc = (uint64_t)(uintptr_t)d->vq.desc;
	uint64_t avail = (uint64_t)(uintptr_t)&d->vq.avail;
	uint64_t used = (uint64_t)(uintptr_t)&d->vq.used;
	wr(d, VM_QUEUE_DESC_LO, (uint32_t)desc);
	wr(d, VM_QUEUE_DESC_HI, (uint32_t)(desc >> 32));
	wr(d, VM_QUEUE_DRV_LO, (uint32_t)avail);
	wr(d, VM_QUEUE_DRV_HI, (uint32_t)(avail >> 32));
	wr(d, VM_QUEUE_DEV_LO, (uint32_t)used);
	wr(d, VM_QUEUE_DEV_HI, (uint32_t)(used >> 32));
	wr(d, VM_QUEUE_READY, 1);

	wr(d, VM_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	uint32_t st = rd(d, VM_STATUS);
	if (st & (S_NEEDS_RESET | S_FAILED)) {
		last_error = "device failed after DRIVER_OK";
		return -1;
	}
	return 0;
}

long rt_virtio_request(struct virtio_dev *d, const struct virtio_buf *bufs, int n)
{
	struct virtq *q = &d->vq;
	if (n <= 0 || n > q->num) {
		last_error = "bad descriptor count";
		return -1;
	}
	for (int i = 0; i < n; i++) {
		q->desc[i].addr = (uint64_t)(uintptr_t)bufs[i].addr;
		q->desc[i].len = bufs[i].len;
		q->desc[i].flags = (uint16_t)((i + 1 < n ? VRING_DESC_F_NEXT : 0) |
					      (bufs[i].device_writes ? VRING_DESC_F_WRITE : 0));
		q->desc[i].next = (uint16_t)(i + 1 < n ? i + 1 : 0);
	}
	uint16_t idx = q->avail.idx;
	q->avail.ring[idx % q->num] = 0;
	barrier();
	*(volatile uint16_t *)&q->avail.idx = (uint16_t)(idx + 1);
	barrier();
	wr(d, VM_QUEUE_NOTIFY, 0);

	/* Poll the used ring (bounded, so a broken device cannot hang us). */
	for (uint32_t spin = 0;; spin++) {
		if (*(volatile uint16_t *)&q->used.idx != q->last_used)
			break;
		if (rd(d, VM_STATUS) & S_NEEDS_RESET) {
			last_error = "device set DEVICE_NEEDS_RESET";
			return -1;
		}
		if (spin > 10000000) {
			last_error = "request never completed";
			return -1;
		}
		pause();
	}
	barrier();
	struct vring_used_elem *e = &q->used.ring[q->last_used % q->num];
	uint32_t len = *(volatile uint32_t *)&e->len;
	uint32_t id = *(volatile uint32_t *)&e->id;
	q->last_used++;
	uint32_t isr = rd(d, VM_INT_STATUS);
	if (isr)
		wr(d, VM_INT_ACK, isr);
	if (id != 0) {
		last_error = "used ring returned a foreign descriptor";
		return -1;
	}
	return (long)len;
}

uint32_t rt_virtio_config32(struct virtio_dev *d, uint32_t off)
{
	uint32_t gen, v;
	do {
		gen = rd(d, VM_CONFIG_GEN);
		v = rd(d, VM_CONFIG + off);
	} while (gen != rd(d, VM_CONFIG_GEN));
	return v;
}
