/*
 * virtio_rng.c - virtio entropy device.  See virtio_rng.h.
 *
 * The bytes come from nd_entropy(), one call per writable segment, so the
 * recorder logs them and the replayer hands the guest the same bytes.  The
 * 64 KiB cap per chain bounds how much a single notify can pull from the
 * gateway (and put in a recording); the driver just asks again.
 */
#include "virtio_rng.h"

#define VIRTIO_ID_ENTROPY	4
#define RNG_MAX_PER_CHAIN	(64u * 1024)

static int rng_handle(void *dev, int queue, struct virtio_chain *c)
{
	struct virtio_rng *r = dev;
	uint32_t total = 0;

	(void)queue;
	/* Readable segments carry nothing for this device: skipped. */
	for (int i = 0; i < c->nseg && total < RNG_MAX_PER_CHAIN; i++) {
		struct virtio_seg *sg = &c->seg[i];
		uint32_t n = sg->len;

		if (!sg->writable || n == 0)
			continue;
		if (n > RNG_MAX_PER_CHAIN - total)
			n = RNG_MAX_PER_CHAIN - total;
		nd_entropy(r->nd, sg->host, n);
		total += n;
	}
	return (int)total;
}

void virtio_rng_init(struct virtio_rng *r, struct nd *nd,
		     const struct guest_mem *mem, struct irq_line irq)
{
	struct virtio_backend be = {
		.device_id = VIRTIO_ID_ENTROPY,
		.features = 0,
		.num_queues = 1,
		.config_read = NULL,	/* no configuration space */
		.handle = rng_handle,
		.dev = r,
	};

	r->nd = nd;
	virtio_mmio_init(&r->transport, "virtio-rng", mem, irq, &be);
}

int virtio_rng_register(struct virtio_rng *r, struct bus *mmio, uint64_t base)
{
	return virtio_mmio_register(&r->transport, mmio, base);
}
