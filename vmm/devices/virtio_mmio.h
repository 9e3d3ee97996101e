/*
 * virtio_mmio.h - virtio-mmio transport, version 2 (virtio 1.x), split
 * virtqueues, polled synchronously.
 *
 * A QueueNotify write processes every available descriptor chain of that
 * queue before the write returns, so request completion happens at a fixed
 * point of the guest's execution (the notifying exit) - deterministic by
 * construction.  The device backend (blk, rng) handles one chain at a time
 * through struct virtio_chain, whose buffers have already been checked to lie
 * in guest RAM.  Every guest-supplied value is untrusted: descriptor indices
 * >= queue size, chains longer than the queue, loops, buffers outside RAM,
 * writable/readable order violations, queue sizes not a power of two or
 * above the maximum, and rings outside RAM all make the transport set
 * DEVICE_NEEDS_RESET (status bit 0x40) and stop processing that queue; they
 * never make the monitor read or write outside guest RAM.
 *
 * Registers as in the virtio 1.2 spec section 4.2.2.  VIRTIO_F_VERSION_1
 * (feature 32) is always offered; a driver that does not accept it, or that
 * accepts a feature not offered, fails FEATURES_OK.  Queue size and ring
 * addresses (which must be aligned as the spec requires) are checked when
 * QueueReady is set to 1: an invalid layout sets NEEDS_RESET and leaves the
 * queue not ready; they cannot be changed while the queue is ready.  A
 * notify of a queue that is not ready, of a device without DRIVER_OK or in
 * NEEDS_RESET, or of a queue index out of range is ignored.  Setting
 * NEEDS_RESET after DRIVER_OK also raises a configuration-change interrupt
 * (spec 2.1.2).  Writing 0 to Status resets the whole transport state.
 * Control registers act on aligned 32-bit accesses only; the configuration
 * space (read-only) on any size.  Not offered: indirect descriptors,
 * event index, packed rings, shared memory regions.
 */
#ifndef DETVM_VIRTIO_MMIO_H
#define DETVM_VIRTIO_MMIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../bus.h"
#include "../guest_mem.h"
#include "../irq.h"

#define VIRTIO_MMIO_SIZE   0x200
#define VIRTIO_MAX_QUEUES  2
#define VIRTIO_QUEUE_MAX   256
#define VIRTIO_MAX_SEGS    VIRTIO_QUEUE_MAX

struct virtio_seg {
	void *host;  /* validated host pointer into guest RAM */
	uint32_t len;
	bool writable; /* device-writable (driver reads it) */
};

/* One descriptor chain, validated: readable segments first, then writable. */
struct virtio_chain {
	uint16_t head;
	int nseg;
	struct virtio_seg seg[VIRTIO_MAX_SEGS];
};

struct virtio_backend {
	uint32_t device_id;
	uint64_t features;   /* device features, VIRTIO_F_VERSION_1 added by the transport */
	int num_queues;
	/* Device-specific configuration space (read-only to the guest here). */
	void (*config_read)(void *dev, uint32_t offset, uint8_t *data, unsigned size);
	/*
	 * Handle one chain; return the number of bytes written into the
	 * writable segments (the used-ring length), or -1 if the chain is
	 * malformed for this device (the transport then sets NEEDS_RESET).
	 */
	int (*handle)(void *dev, int queue, struct virtio_chain *chain);
	void *dev;
};

struct virtio_queue_state {
	uint32_t num;    /* size chosen by the driver */
	uint32_t ready;
	uint64_t desc, driver, device; /* guest physical addresses */
	uint16_t last_avail;
	uint16_t used_idx;
};

struct virtio_mmio_state {
	uint32_t device_features_sel, driver_features_sel;
	uint64_t driver_features;
	uint32_t queue_sel;
	uint32_t status;
	uint32_t interrupt_status;
	uint32_t config_generation;
	struct virtio_queue_state q[VIRTIO_MAX_QUEUES];
};

struct virtio_mmio {
	struct virtio_mmio_state state;
	const struct guest_mem *mem;
	struct irq_line irq;
	struct virtio_backend be;
	const char *name;
};

/*
 * Helpers for backends.  A chain's readable segments form one byte stream
 * and its writable segments another (virtio 1.x: a device must not depend on
 * how the driver splits a request into descriptors).
 *
 * virtio_chain_len: total length of the readable or writable stream.
 * virtio_chain_copy_from: copy up to len bytes of the readable stream,
 *   starting off bytes into it, to dst; returns the bytes copied.
 * virtio_chain_copy_to: copy up to len bytes from src into the writable
 *   stream at off; returns the bytes copied.
 */
uint64_t virtio_chain_len(const struct virtio_chain *c, bool writable);
size_t virtio_chain_copy_from(const struct virtio_chain *c, uint64_t off,
			      void *dst, size_t len);
size_t virtio_chain_copy_to(struct virtio_chain *c, uint64_t off,
			    const void *src, size_t len);

void virtio_mmio_init(struct virtio_mmio *vm, const char *name,
		      const struct guest_mem *mem, struct irq_line irq,
		      const struct virtio_backend *be);
int virtio_mmio_register(struct virtio_mmio *vm, struct bus *mmio, uint64_t base);
extern const struct bus_ops virtio_mmio_ops;

#endif
