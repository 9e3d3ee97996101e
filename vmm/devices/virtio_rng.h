/*
 * virtio_rng.h - virtio entropy device (ID 4).  Every writable segment of a
 * request is filled from nd_entropy() (so entropy is recorded and replayed),
 * at most 64 KiB per chain.
 */
#ifndef DETVM_VIRTIO_RNG_H
#define DETVM_VIRTIO_RNG_H

#include "../nd.h"
#include "virtio_mmio.h"

struct virtio_rng {
	struct nd *nd;
	struct virtio_mmio transport;
};

void virtio_rng_init(struct virtio_rng *r, struct nd *nd,
		     const struct guest_mem *mem, struct irq_line irq);
int virtio_rng_register(struct virtio_rng *r, struct bus *mmio, uint64_t base);

#endif
