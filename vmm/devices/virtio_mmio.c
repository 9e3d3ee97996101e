/*
 * virtio_mmio.c - virtio-mmio transport (version 2) with split virtqueues.
 * See virtio_mmio.h.
 *
 * Everything in a virtqueue is written by the guest and is read here through
 * bounds-checked pointers (gm_ptr) into guest RAM, with fields accessed by
 * memcpy (so misaligned rings cannot cause undefined behaviour).  Ring sizes
 * and addresses are validated when the queue is made ready and again on
 * every notify; descriptor chains are validated before the backend sees
 * them.  A malformed queue puts the device into DEVICE_NEEDS_RESET, after
 * which nothing is processed until the driver resets the device.
 *
 * Not offered: indirect descriptors, event-index notification suppression,
 * packed rings, notification data, queue reset, shared memory regions.  The
 * VRING_AVAIL_F_NO_INTERRUPT hint is honoured.
 */
#include "virtio_mmio.h"

#include <string.h>

#define REG_MAGIC		0x000
#define REG_VERSION		0x004
#define REG_DEVICE_ID		0x008
#define REG_VENDOR_ID		0x00c
#define REG_DEVICE_FEATURES	0x010
#define REG_DEVICE_FEATURES_SEL	0x014
#define REG_DRIVER_FEATURES	0x020
#define REG_DRIVER_FEATURES_SEL	0x024
#define REG_QUEUE_SEL		0x030
#define REG_QUEUE_NUM_MAX	0x034
#define REG_QUEUE_NUM		0x038
#define REG_QUEUE_READY		0x044
#define REG_QUEUE_NOTIFY	0x050
#define REG_INTERRUPT_STATUS	0x060
#define REG_INTERRUPT_ACK	0x064
#define REG_STATUS		0x070
#define REG_QUEUE_DESC_LO	0x080
#define REG_QUEUE_DESC_HI	0x084
#define REG_QUEUE_DRIVER_LO	0x090
#define REG_QUEUE_DRIVER_HI	0x094
#define REG_QUEUE_DEVICE_LO	0x0a0
#define REG_QUEUE_DEVICE_HI	0x0a4
#define REG_SHM_SEL		0x0ac
#define REG_SHM_LEN_LO		0x0b0
#define REG_SHM_LEN_HI		0x0b4
#define REG_SHM_BASE_LO		0x0b8
#define REG_SHM_BASE_HI		0x0bc
#define REG_CONFIG_GENERATION	0x0fc
#define REG_CONFIG		0x100

#define VIRTIO_MMIO_MAGIC	0x74726976u	/* "virt" */
#define VIRTIO_MMIO_VENDOR	0x4d565444u	/* "DTVM" */
#define VIRTIO_F_VERSION_1	(1ull << 32)

#define STATUS_DRIVER_OK	0x04
#define STATUS_FEATURES_OK	0x08
#define STATUS_NEEDS_RESET	0x40

#define INT_USED_BUFFER		0x1
#define INT_CONFIG_CHANGE	0x2

#define VRING_DESC_F_NEXT	1
#define VRING_DESC_F_WRITE	2
#define VRING_DESC_F_INDIRECT	4
#define VRING_AVAIL_F_NO_INTERRUPT 1

/* Sizes of the three areas of a split virtqueue of `num` entries. */
#define DESC_SIZE(num)		(16ull * (num))
#define AVAIL_SIZE(num)		(6ull + 2ull * (num))
#define USED_SIZE(num)		(6ull + 8ull * (num))

static inline uint16_t ld16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t ld32(const uint8_t *p)
{
	return (uint32_t)bus_le_get(p, 4);
}

static inline uint64_t ld64(const uint8_t *p)
{
	return bus_le_get(p, 8);
}

static inline void st16(uint8_t *p, uint16_t v)
{
	bus_le_put(p, 2, v);
}

static inline void st32(uint8_t *p, uint32_t v)
{
	bus_le_put(p, 4, v);
}

/* Drive the line from interrupt_status, signalling changes only. */
static void set_interrupt(struct virtio_mmio *vm, uint32_t isr)
{
	uint32_t old = vm->state.interrupt_status;

	vm->state.interrupt_status = isr;
	if (!old != !isr)
		irq_set(&vm->irq, isr != 0);
}

static void needs_reset(struct virtio_mmio *vm)
{
	struct virtio_mmio_state *s = &vm->state;

	if (s->status & STATUS_NEEDS_RESET)
		return;
	s->status |= STATUS_NEEDS_RESET;
	/* Spec 2.1.2: once DRIVER_OK, tell the driver by a config change. */
	if (s->status & STATUS_DRIVER_OK)
		set_interrupt(vm, s->interrupt_status | INT_CONFIG_CHANGE);
}

static void transport_reset(struct virtio_mmio *vm)
{
	set_interrupt(vm, 0);
	memset(&vm->state, 0, sizeof(vm->state));
}

static struct virtio_queue_state *sel_queue(struct virtio_mmio *vm)
{
	if (vm->state.queue_sel >= (uint32_t)vm->be.num_queues)
		return NULL;
	return &vm->state.q[vm->state.queue_sel];
}

static bool queue_layout_valid(const struct virtio_mmio *vm,
			       const struct virtio_queue_state *q)
{
	uint32_t num = q->num;

	if (num == 0 || num > VIRTIO_QUEUE_MAX || (num & (num - 1)))
		return false;
	/* Alignment required by the spec (2.7): 16, 2 and 4 bytes. */
	if ((q->desc & 15) || (q->driver & 1) || (q->device & 3))
		return false;
	return gm_ptr(vm->mem, q->desc, DESC_SIZE(num)) &&
	       gm_ptr(vm->mem, q->driver, AVAIL_SIZE(num)) &&
	       gm_ptr(vm->mem, q->device, USED_SIZE(num));
}

/*
 * Walk the chain that starts at `head` and fill `c`.  Returns false if it is
 * malformed: index out of range, more descriptors than the queue has (which
 * also catches loops), an indirect descriptor (not negotiated), a readable
 * descriptor after a writable one, or a buffer not wholly in guest RAM.
 */
static bool build_chain(const struct virtio_mmio *vm, const uint8_t *desc,
			uint32_t num, uint16_t head, struct virtio_chain *c)
{
	uint32_t idx = head;
	bool seen_writable = false;

	c->head = head;
	c->nseg = 0;
	for (;;) {
		const uint8_t *d;
		uint64_t addr;
		uint32_t len;
		uint16_t flags;
		void *host;

		if (idx >= num || (uint32_t)c->nseg >= num || c->nseg >= VIRTIO_MAX_SEGS)
			return false;
		d = desc + 16 * idx;
		addr = ld64(d);
		len = ld32(d + 8);
		flags = ld16(d + 12);
		if (flags & VRING_DESC_F_INDIRECT)
			return false;
		if (flags & VRING_DESC_F_WRITE)
			seen_writable = true;
		else if (seen_writable)
			return false;
		host = gm_ptr(vm->mem, addr, len);
		if (!host)
			return false;
		c->seg[c->nseg++] = (struct virtio_seg){
			.host = host, .len = len, .writable = flags & VRING_DESC_F_WRITE,
		};
		if (!(flags & VRING_DESC_F_NEXT))
			return true;
		idx = ld16(d + 14);
	}
}

static void process_queue(struct virtio_mmio *vm, int qi)
{
	struct virtio_mmio_state *s = &vm->state;
	struct virtio_queue_state *q = &s->q[qi];
	struct virtio_chain chain;
	const uint8_t *desc, *avail;
	uint8_t *used;
	uint16_t avail_idx;
	uint32_t num = q->num;
	bool completed = false;

	if (!q->ready || !(s->status & STATUS_DRIVER_OK) ||
	    (s->status & STATUS_NEEDS_RESET))
		return;
	if (!queue_layout_valid(vm, q)) {
		needs_reset(vm);
		return;
	}
	desc = gm_ptr(vm->mem, q->desc, DESC_SIZE(num));
	avail = gm_ptr(vm->mem, q->driver, AVAIL_SIZE(num));
	used = gm_ptr(vm->mem, q->device, USED_SIZE(num));

	/*
	 * The index is read once: the vCPU is stopped while the exit is being
	 * handled, so the driver cannot add more meanwhile, and a backend that
	 * writes over the ring (a buffer aliasing it) cannot make us loop.
	 */
	avail_idx = ld16(avail + 2);
	if ((uint16_t)(avail_idx - q->last_avail) > num) {
		needs_reset(vm);
		return;
	}
	while (q->last_avail != avail_idx) {
		uint16_t head = ld16(avail + 4 + 2 * (q->last_avail & (num - 1)));
		uint64_t wlen = 0;
		uint8_t *elem;
		int n;

		if (!build_chain(vm, desc, num, head, &chain)) {
			needs_reset(vm);
			break;
		}
		n = vm->be.handle(vm->be.dev, qi, &chain);
		if (n < 0) {
			needs_reset(vm);
			break;
		}
		for (int i = 0; i < chain.nseg; i++)
			if (chain.seg[i].writable)
				wlen += chain.seg[i].len;
		if ((uint64_t)n > wlen)
			n = (int)wlen;	/* a backend bug must not mislead the driver */

		elem = used + 4 + 8 * (q->used_idx & (num - 1));
		st32(elem, head);
		st32(elem + 4, (uint32_t)n);
		q->used_idx++;
		/* The element is in place before the index that publishes it. */
		__atomic_thread_fence(__ATOMIC_RELEASE);
		st16(used + 2, q->used_idx);
		q->last_avail++;
		completed = true;
	}
	if (completed && !(ld16(avail) & VRING_AVAIL_F_NO_INTERRUPT))
		set_interrupt(vm, s->interrupt_status | INT_USED_BUFFER);
}

static bool features_acceptable(const struct virtio_mmio *vm)
{
	uint64_t drv = vm->state.driver_features;

	return !(drv & ~vm->be.features) && (drv & VIRTIO_F_VERSION_1);
}

static void write_status(struct virtio_mmio *vm, uint32_t v)
{
	struct virtio_mmio_state *s = &vm->state;
	uint32_t nv = v & 0xff;

	if (nv == 0) {
		transport_reset(vm);
		return;
	}
	/* NEEDS_RESET is the device's to set; only a reset clears it. */
	nv = (nv & ~STATUS_NEEDS_RESET) | (s->status & STATUS_NEEDS_RESET);
	/* Refusing FEATURES_OK is how a device rejects the feature set. */
	if ((nv & STATUS_FEATURES_OK) && !(s->status & STATUS_FEATURES_OK) &&
	    !features_acceptable(vm))
		nv &= ~STATUS_FEATURES_OK;
	s->status = nv;
}

static void write_queue_ready(struct virtio_mmio *vm, uint32_t v)
{
	struct virtio_queue_state *q = sel_queue(vm);

	if (!q)
		return;
	if (!(v & 1)) {
		q->ready = 0;
		return;
	}
	if (q->ready)
		return;
	if (!queue_layout_valid(vm, q)) {
		needs_reset(vm);
		return;
	}
	/* A freshly set-up ring starts at index 0 on both sides. */
	q->last_avail = 0;
	q->used_idx = 0;
	q->ready = 1;
}

static void set_lo(uint64_t *r, uint32_t v)
{
	*r = (*r & 0xffffffff00000000ull) | v;
}

static void set_hi(uint64_t *r, uint32_t v)
{
	*r = (*r & 0xffffffffull) | (uint64_t)v << 32;
}

static uint32_t reg_read(struct virtio_mmio *vm, uint32_t off)
{
	struct virtio_mmio_state *s = &vm->state;
	struct virtio_queue_state *q = sel_queue(vm);

	switch (off) {
	case REG_MAGIC:		return VIRTIO_MMIO_MAGIC;
	case REG_VERSION:	return 2;
	case REG_DEVICE_ID:	return vm->be.device_id;
	case REG_VENDOR_ID:	return VIRTIO_MMIO_VENDOR;
	case REG_DEVICE_FEATURES:
		if (s->device_features_sel == 0)
			return (uint32_t)vm->be.features;
		if (s->device_features_sel == 1)
			return (uint32_t)(vm->be.features >> 32);
		return 0;
	case REG_QUEUE_NUM_MAX:	return q ? VIRTIO_QUEUE_MAX : 0;
	case REG_QUEUE_NUM:	return q ? q->num : 0;
	case REG_QUEUE_READY:	return q ? q->ready : 0;
	case REG_INTERRUPT_STATUS: return s->interrupt_status;
	case REG_STATUS:	return s->status;
	case REG_QUEUE_DESC_LO:	return q ? (uint32_t)q->desc : 0;
	case REG_QUEUE_DESC_HI:	return q ? (uint32_t)(q->desc >> 32) : 0;
	case REG_QUEUE_DRIVER_LO: return q ? (uint32_t)q->driver : 0;
	case REG_QUEUE_DRIVER_HI: return q ? (uint32_t)(q->driver >> 32) : 0;
	case REG_QUEUE_DEVICE_LO: return q ? (uint32_t)q->device : 0;
	case REG_QUEUE_DEVICE_HI: return q ? (uint32_t)(q->device >> 32) : 0;
	case REG_SHM_LEN_LO:
	case REG_SHM_LEN_HI:
	case REG_SHM_BASE_LO:
	case REG_SHM_BASE_HI:
		return 0xffffffff;	/* no shared memory regions */
	case REG_CONFIG_GENERATION: return s->config_generation;
	default:		return 0;
	}
}

static void reg_write(struct virtio_mmio *vm, uint32_t off, uint32_t v)
{
	struct virtio_mmio_state *s = &vm->state;
	struct virtio_queue_state *q = sel_queue(vm);
	/* A live queue's layout is fixed until it is disabled or reset. */
	struct virtio_queue_state *qw = q && !q->ready ? q : NULL;

	switch (off) {
	case REG_DEVICE_FEATURES_SEL:
		s->device_features_sel = v;
		break;
	case REG_DRIVER_FEATURES:
		if (s->status & STATUS_FEATURES_OK)
			break;	/* negotiation is over */
		if (s->driver_features_sel == 0)
			set_lo(&s->driver_features, v);
		else if (s->driver_features_sel == 1)
			set_hi(&s->driver_features, v);
		break;
	case REG_DRIVER_FEATURES_SEL:
		s->driver_features_sel = v;
		break;
	case REG_QUEUE_SEL:
		s->queue_sel = v;
		break;
	case REG_QUEUE_NUM:
		/* Checked when the queue is made ready. */
		if (qw)
			qw->num = v;
		break;
	case REG_QUEUE_READY:
		write_queue_ready(vm, v);
		break;
	case REG_QUEUE_NOTIFY:
		if (v < (uint32_t)vm->be.num_queues)
			process_queue(vm, (int)v);
		break;
	case REG_INTERRUPT_ACK:
		set_interrupt(vm, s->interrupt_status & ~v);
		break;
	case REG_STATUS:
		write_status(vm, v);
		break;
	case REG_QUEUE_DESC_LO:
		if (qw)
			set_lo(&qw->desc, v);
		break;
	case REG_QUEUE_DESC_HI:
		if (qw)
			set_hi(&qw->desc, v);
		break;
	case REG_QUEUE_DRIVER_LO:
		if (qw)
			set_lo(&qw->driver, v);
		break;
	case REG_QUEUE_DRIVER_HI:
		if (qw)
			set_hi(&qw->driver, v);
		break;
	case REG_QUEUE_DEVICE_LO:
		if (qw)
			set_lo(&qw->device, v);
		break;
	case REG_QUEUE_DEVICE_HI:
		if (qw)
			set_hi(&qw->device, v);
		break;
	default:
		/* Read-only and unknown registers (SHMSel: no regions). */
		break;
	}
}

static void virtio_mmio_read(void *dev, uint64_t offset, uint8_t *data, unsigned size)
{
	struct virtio_mmio *vm = dev;

	memset(data, 0, size);
	if (offset >= REG_CONFIG) {
		/* Any width; bytes the backend does not fill read as 0. */
		if (vm->be.config_read)
			vm->be.config_read(vm->be.dev, (uint32_t)(offset - REG_CONFIG),
					   data, size);
		return;
	}
	/* Control registers: aligned 32-bit accesses only (spec 4.2.2.2). */
	if (size == 4 && !(offset & 3))
		bus_le_put(data, 4, reg_read(vm, (uint32_t)offset));
}

static void virtio_mmio_write(void *dev, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct virtio_mmio *vm = dev;

	/* The configuration spaces here are read-only: config writes drop. */
	if (offset >= REG_CONFIG)
		return;
	if (size == 4 && !(offset & 3))
		reg_write(vm, (uint32_t)offset, (uint32_t)bus_le_get(data, 4));
}

const struct bus_ops virtio_mmio_ops = {
	.read = virtio_mmio_read,
	.write = virtio_mmio_write,
};

void virtio_mmio_init(struct virtio_mmio *vm, const char *name,
		      const struct guest_mem *mem, struct irq_line irq,
		      const struct virtio_backend *be)
{
	memset(vm, 0, sizeof(*vm));
	vm->name = name;
	vm->mem = mem;
	vm->irq = irq;
	vm->be = *be;
	vm->be.features |= VIRTIO_F_VERSION_1;
	if (vm->be.num_queues < 0)
		vm->be.num_queues = 0;
	if (vm->be.num_queues > VIRTIO_MAX_QUEUES)
		vm->be.num_queues = VIRTIO_MAX_QUEUES;
}

int virtio_mmio_register(struct virtio_mmio *vm, struct bus *mmio, uint64_t base)
{
	return bus_register(mmio, base, VIRTIO_MMIO_SIZE, &virtio_mmio_ops, vm, vm->name);
}

/* ---- helpers for backends ---- */

uint64_t virtio_chain_len(const struct virtio_chain *c, bool writable)
{
	uint64_t n = 0;

	for (int i = 0; i < c->nseg; i++)
		if (c->seg[i].writable == writable)
			n += c->seg[i].len;
	return n;
}

size_t virtio_chain_copy_from(const struct virtio_chain *c, uint64_t off,
			      void *dst, size_t len)
{
	uint8_t *out = dst;
	size_t done = 0;

	for (int i = 0; i < c->nseg && done < len; i++) {
		const struct virtio_seg *sg = &c->seg[i];
		size_t n;

		if (sg->writable)
			break;	/* readable segments come first */
		if (off >= sg->len) {
			off -= sg->len;
			continue;
		}
		n = sg->len - off < len - done ? (size_t)(sg->len - off) : len - done;
		memcpy(out + done, (const uint8_t *)sg->host + off, n);
		done += n;
		off = 0;
	}
	return done;
}

size_t virtio_chain_copy_to(struct virtio_chain *c, uint64_t off,
			    const void *src, size_t len)
{
	const uint8_t *in = src;
	size_t done = 0;

	for (int i = 0; i < c->nseg && done < len; i++) {
		struct virtio_seg *sg = &c->seg[i];
		size_t n;

		if (!sg->writable)
			continue;
		if (off >= sg->len) {
			off -= sg->len;
			continue;
		}
		n = sg->len - off < len - done ? (size_t)(sg->len - off) : len - done;
		memcpy((uint8_t *)sg->host + off, in + done, n);
		done += n;
		off = 0;
	}
	return done;
}
