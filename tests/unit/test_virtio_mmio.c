/*
 * test_virtio_mmio.c - unit tests for the virtio-mmio transport
 * (vmm/devices/virtio_mmio.c).
 *
 * The tests act as the driver: they build split virtqueues in a static
 * "guest RAM" buffer and drive the registers through virtio_mmio_ops, with a
 * recording test backend behind the transport.  The malformed cases check
 * that the transport sets NEEDS_RESET and never hands the backend a buffer
 * outside guest RAM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/devices/virtio_mmio.h"

#define RAM_SIZE	0x10000ull
#define DESC		0x1000ull
#define AVAIL		0x2000ull
#define USED		0x3000ull
#define BUF		0x4000ull

#define S_ACK		0x01
#define S_DRIVER	0x02
#define S_DRIVER_OK	0x04
#define S_FEATURES_OK	0x08
#define S_NEEDS_RESET	0x40

#define F_NEXT		1
#define F_WRITE		2
#define F_INDIRECT	4

static uint8_t ram[RAM_SIZE] __attribute__((aligned(4096)));
static struct guest_mem gm;
static struct virtio_mmio vm;

/* irq line */
static int irq_level, irq_changes;

static void irq_set_fake(void *router, unsigned gsi, int level)
{
	assert_ptr_equal(router, &vm);
	assert_int_equal(gsi, 12);
	irq_level = level;
	irq_changes++;
}

/* backend */
static int handled;
static int fail_handle;
static int last_queue;
static struct virtio_chain last_chain;

static void be_config(void *dev, uint32_t offset, uint8_t *data, unsigned size)
{
	static const uint8_t cfg[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

	(void)dev;
	for (unsigned i = 0; i < size; i++)
		if (offset + i < sizeof(cfg))
			data[i] = cfg[offset + i];
}

static int be_handle(void *dev, int queue, struct virtio_chain *c)
{
	int n = 0;

	assert_ptr_equal(dev, &vm);
	handled++;
	last_queue = queue;
	last_chain = *c;
	assert_true(c->nseg >= 1 && c->nseg <= VIRTIO_MAX_SEGS);
	for (int i = 0; i < c->nseg; i++) {
		uint8_t *p = c->seg[i].host;

		/* Every segment lies wholly inside guest RAM. */
		assert_true(p >= ram && p <= ram + RAM_SIZE);
		assert_true(c->seg[i].len <= (uint64_t)(ram + RAM_SIZE - p));
		if (c->seg[i].writable) {
			memset(p, 0xa5, c->seg[i].len);
			n += (int)c->seg[i].len;
		}
	}
	if (fail_handle == 2)
		return 1 << 30;	/* a buggy backend overstating its writes */
	return fail_handle ? -1 : n;
}

static const struct virtio_backend test_be = {
	.device_id = 0x42,
	.features = (1ull << 0) | (1ull << 5),
	.num_queues = 2,
	.config_read = be_config,
	.handle = be_handle,
	.dev = &vm,
};

static int setup(void **state)
{
	(void)state;
	memset(ram, 0, sizeof(ram));
	gm_layout(&gm, ram, RAM_SIZE);
	virtio_mmio_init(&vm, "test", &gm,
			 (struct irq_line){ .set = irq_set_fake, .router = &vm, .gsi = 12 },
			 &test_be);
	irq_level = 0;
	irq_changes = 0;
	handled = 0;
	fail_handle = 0;
	last_queue = -1;
	memset(&last_chain, 0, sizeof(last_chain));
	return 0;
}

static void wr(uint32_t off, uint32_t v)
{
	uint8_t d[4];

	bus_le_put(d, 4, v);
	virtio_mmio_ops.write(&vm, off, d, 4);
}

static uint32_t rd(uint32_t off)
{
	uint8_t d[4];

	virtio_mmio_ops.read(&vm, off, d, 4);
	return (uint32_t)bus_le_get(d, 4);
}

static void put16(uint64_t gpa, uint16_t v) { bus_le_put(ram + gpa, 2, v); }
static void put32(uint64_t gpa, uint32_t v) { bus_le_put(ram + gpa, 4, v); }
static void put64(uint64_t gpa, uint64_t v) { bus_le_put(ram + gpa, 8, v); }
static uint16_t get16(uint64_t gpa) { return (uint16_t)bus_le_get(ram + gpa, 2); }
static uint32_t get32(uint64_t gpa) { return (uint32_t)bus_le_get(ram + gpa, 4); }

/* The driver's side of a queue. */
struct drvq {
	uint32_t num;
	uint64_t desc, avail, used;
	uint16_t avail_idx;
};

static struct drvq dq[2];

static void set_desc(const struct drvq *q, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint64_t d = q->desc + 16 * i;

	put64(d, addr);
	put32(d + 8, len);
	put16(d + 12, flags);
	put16(d + 14, next);
}

static void push(struct drvq *q, uint16_t head)
{
	put16(q->avail + 4 + 2 * (q->avail_idx % q->num), head);
	q->avail_idx++;
	put16(q->avail + 2, q->avail_idx);
}

static void negotiate(uint64_t features)
{
	wr(0x70, 0);
	wr(0x70, S_ACK);
	wr(0x70, S_ACK | S_DRIVER);
	wr(0x24, 0);
	wr(0x20, (uint32_t)features);
	wr(0x24, 1);
	wr(0x20, (uint32_t)(features >> 32));
	wr(0x70, S_ACK | S_DRIVER | S_FEATURES_OK);
}

/* Program queue `qi`; returns QueueReady as read back. */
static uint32_t setup_queue(int qi, uint32_t num, uint64_t desc, uint64_t avail,
			    uint64_t used)
{
	dq[qi] = (struct drvq){ .num = num, .desc = desc, .avail = avail, .used = used };
	wr(0x30, (uint32_t)qi);
	wr(0x38, num);
	wr(0x80, (uint32_t)desc);
	wr(0x84, (uint32_t)(desc >> 32));
	wr(0x90, (uint32_t)avail);
	wr(0x94, (uint32_t)(avail >> 32));
	wr(0xa0, (uint32_t)used);
	wr(0xa4, (uint32_t)(used >> 32));
	wr(0x44, 1);
	return rd(0x44);
}

/* A device ready to use with queue 0 of size `num`. */
static void bring_up(uint32_t num)
{
	negotiate(1ull << 32);
	assert_int_equal(rd(0x70) & S_FEATURES_OK, S_FEATURES_OK);
	assert_int_equal(setup_queue(0, num, DESC, AVAIL, USED), 1);
	wr(0x70, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

static void assert_broken(void)
{
	assert_true(rd(0x70) & S_NEEDS_RESET);
	/* Before DRIVER_OK there is no config-change interrupt. */
	if (!(rd(0x70) & S_DRIVER_OK)) {
		assert_int_equal(rd(0x60), 0);
		assert_int_equal(irq_level, 0);
	}
}

/* ---- tests ---- */

static void test_identity_registers(void **state)
{
	uint8_t d[8];

	(void)state;
	assert_int_equal(rd(0x000), 0x74726976);
	assert_int_equal(rd(0x004), 2);
	assert_int_equal(rd(0x008), 0x42);
	wr(0x14, 0);
	assert_int_equal(rd(0x10), 0x21);
	wr(0x14, 1);
	assert_int_equal(rd(0x10), 1);		/* VERSION_1 */
	wr(0x14, 2);
	assert_int_equal(rd(0x10), 0);
	assert_int_equal(rd(0xfc), 0);		/* config generation */
	assert_int_equal(rd(0xb0), 0xffffffff);	/* no shared memory */

	/* Config space: any width, read-only, zero past the backend's. */
	virtio_mmio_ops.read(&vm, 0x101, d, 2);
	assert_int_equal(bus_le_get(d, 2), 0x0302);
	virtio_mmio_ops.read(&vm, 0x104, d, 8);
	assert_int_equal(bus_le_get(d, 8), 0x08070605);
	virtio_mmio_ops.read(&vm, 0x1ff, d, 1);
	assert_int_equal(d[0], 0);
	memset(d, 0xff, sizeof(d));
	virtio_mmio_ops.write(&vm, 0x100, d, 4);
	assert_int_equal(rd(0x100), 0x04030201);

	/* Control registers: only aligned 32-bit accesses. */
	memset(d, 0xff, sizeof(d));
	virtio_mmio_ops.read(&vm, 0x000, d, 2);
	assert_int_equal(bus_le_get(d, 2), 0);
	virtio_mmio_ops.read(&vm, 0x002, d, 4);
	assert_int_equal(bus_le_get(d, 4), 0);
	virtio_mmio_ops.read(&vm, 0x000, d, 8);
	assert_int_equal(bus_le_get(d, 8), 0);
	bus_le_put(d, 2, S_ACK);
	virtio_mmio_ops.write(&vm, 0x70, d, 2);
	assert_int_equal(rd(0x70), 0);
}

static void test_feature_negotiation(void **state)
{
	(void)state;
	/* Without VERSION_1: refused. */
	negotiate(1ull << 0);
	assert_int_equal(rd(0x70), S_ACK | S_DRIVER);
	/* A feature the device does not offer: refused. */
	negotiate((1ull << 32) | (1ull << 1));
	assert_int_equal(rd(0x70), S_ACK | S_DRIVER);
	/* A subset with VERSION_1: accepted. */
	negotiate((1ull << 32) | (1ull << 5));
	assert_int_equal(rd(0x70), S_ACK | S_DRIVER | S_FEATURES_OK);
	assert_int_equal(vm.state.driver_features, (1ull << 32) | (1ull << 5));
	/* Changing features after FEATURES_OK is ignored. */
	wr(0x24, 0);
	wr(0x20, 0xffffffff);
	assert_int_equal(vm.state.driver_features, (1ull << 32) | (1ull << 5));
	/* Other selectors are ignored. */
	negotiate(1ull << 32);
	wr(0x24, 7);
	wr(0x20, 0);
	assert_int_equal(vm.state.driver_features, 1ull << 32);
}

static void test_basic_request(void **state)
{
	(void)state;
	bring_up(8);
	assert_int_equal(rd(0x34), VIRTIO_QUEUE_MAX);
	set_desc(&dq[0], 3, BUF, 16, F_NEXT, 5);
	set_desc(&dq[0], 5, BUF + 0x100, 32, F_WRITE, 0);
	push(&dq[0], 3);
	wr(0x50, 0);

	assert_int_equal(handled, 1);
	assert_int_equal(last_queue, 0);
	assert_int_equal(last_chain.head, 3);
	assert_int_equal(last_chain.nseg, 2);
	assert_ptr_equal(last_chain.seg[0].host, ram + BUF);
	assert_int_equal(last_chain.seg[0].len, 16);
	assert_false(last_chain.seg[0].writable);
	assert_ptr_equal(last_chain.seg[1].host, ram + BUF + 0x100);
	assert_true(last_chain.seg[1].writable);
	assert_int_equal(ram[BUF + 0x100 + 31], 0xa5);

	assert_int_equal(get16(USED + 2), 1);
	assert_int_equal(get32(USED + 4), 3);	/* id */
	assert_int_equal(get32(USED + 8), 32);	/* len */
	assert_int_equal(rd(0x60), 1);
	assert_int_equal(irq_level, 1);

	/* A second notify with nothing new does nothing. */
	wr(0x50, 0);
	assert_int_equal(handled, 1);

	wr(0x64, 1);
	assert_int_equal(rd(0x60), 0);
	assert_int_equal(irq_level, 0);
	assert_int_equal(irq_changes, 2);
	assert_false(rd(0x70) & S_NEEDS_RESET);
}

static void test_ring_wraparound(void **state)
{
	(void)state;
	bring_up(4);
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 3; i++) {
			set_desc(&dq[0], (unsigned)i, BUF + 64 * i, 8, F_WRITE, 0);
			push(&dq[0], (uint16_t)i);
		}
		wr(0x50, 0);
		assert_int_equal(handled, 3 * (round + 1));
		assert_int_equal(get16(USED + 2), 3 * (round + 1));
	}
	/* 15 completions in a 4-entry ring: the last went to slot 14 % 4. */
	assert_int_equal(get32(USED + 4 + 8 * (14 % 4)), 2);
	assert_int_equal(get32(USED + 4 + 8 * (14 % 4) + 4), 8);
	assert_false(rd(0x70) & S_NEEDS_RESET);

	/* Across the 16-bit index wrap too. */
	vm.state.q[0].last_avail = 0xfffe;
	vm.state.q[0].used_idx = 0xfffe;
	dq[0].avail_idx = 0xfffe;
	push(&dq[0], 0);
	push(&dq[0], 1);
	push(&dq[0], 2);
	wr(0x50, 0);
	assert_int_equal(handled, 18);
	assert_int_equal(get16(USED + 2), 1);
}

static void test_used_len_clamped(void **state)
{
	(void)state;
	bring_up(8);
	fail_handle = 2;
	set_desc(&dq[0], 0, BUF, 8, F_NEXT, 1);
	set_desc(&dq[0], 1, BUF + 8, 24, F_WRITE, 0);
	push(&dq[0], 0);
	wr(0x50, 0);
	assert_int_equal(handled, 1);
	assert_int_equal(get32(USED + 8), 24);
}

static void test_no_interrupt_flag(void **state)
{
	(void)state;
	bring_up(8);
	put16(AVAIL, 1);	/* VRING_AVAIL_F_NO_INTERRUPT */
	set_desc(&dq[0], 0, BUF, 8, F_WRITE, 0);
	push(&dq[0], 0);
	wr(0x50, 0);
	assert_int_equal(handled, 1);
	assert_int_equal(get16(USED + 2), 1);
	assert_int_equal(rd(0x60), 0);
	assert_int_equal(irq_level, 0);
}

static void test_second_queue_and_selectors(void **state)
{
	(void)state;
	bring_up(8);
	wr(0x70, S_ACK | S_DRIVER | S_FEATURES_OK);	/* set up queue 1 too */
	assert_int_equal(setup_queue(1, 2, 0x5000, 0x5100, 0x5200), 1);
	wr(0x70, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	set_desc(&dq[1], 1, BUF, 4, F_WRITE, 0);
	push(&dq[1], 1);
	wr(0x50, 1);
	assert_int_equal(handled, 1);
	assert_int_equal(last_queue, 1);
	assert_int_equal(get32(0x5200 + 4), 1);

	/* Queue-specific registers follow QueueSel. */
	wr(0x30, 0);
	assert_int_equal(rd(0x38), 8);
	assert_int_equal(rd(0x80), DESC);
	wr(0x30, 1);
	assert_int_equal(rd(0x38), 2);
	assert_int_equal(rd(0x90), 0x5100);
}

static void test_out_of_range_queue(void **state)
{
	(void)state;
	bring_up(8);
	wr(0x30, 5);
	assert_int_equal(rd(0x34), 0);		/* not available */
	wr(0x38, 8);
	wr(0x80, (uint32_t)DESC);
	wr(0x44, 1);
	assert_int_equal(rd(0x44), 0);
	assert_int_equal(rd(0x38), 0);
	wr(0x30, 0xffffffff);
	assert_int_equal(rd(0x34), 0);
	wr(0x50, 5);
	wr(0x50, 0xffffffff);
	assert_int_equal(handled, 0);
	assert_false(rd(0x70) & S_NEEDS_RESET);
}

static void test_notify_not_ready(void **state)
{
	(void)state;
	negotiate(1ull << 32);
	wr(0x70, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	/* Queue 0 never made ready: a notify is ignored. */
	dq[0] = (struct drvq){ .num = 8, .desc = DESC, .avail = AVAIL, .used = USED };
	set_desc(&dq[0], 0, BUF, 8, F_WRITE, 0);
	push(&dq[0], 0);
	wr(0x50, 0);
	assert_int_equal(handled, 0);
	assert_false(rd(0x70) & S_NEEDS_RESET);

	/* Ready but DRIVER_OK not yet set: ignored as well. */
	wr(0x70, 0);
	negotiate(1ull << 32);
	assert_int_equal(setup_queue(0, 8, DESC, AVAIL, USED), 1);
	push(&dq[0], 0);
	wr(0x50, 0);
	assert_int_equal(handled, 0);
}

static void test_queue_layout_validation(void **state)
{
	(void)state;
	negotiate(1ull << 32);
	/* Sizes: 0, not a power of two, above the maximum. */
	assert_int_equal(setup_queue(0, 0, DESC, AVAIL, USED), 0);
	assert_broken();
	negotiate(1ull << 32);
	assert_int_equal(setup_queue(0, 6, DESC, AVAIL, USED), 0);
	assert_broken();
	negotiate(1ull << 32);
	assert_int_equal(setup_queue(0, 512, DESC, AVAIL, USED), 0);
	assert_broken();
	negotiate(1ull << 32);
	assert_int_equal(setup_queue(0, VIRTIO_QUEUE_MAX, DESC, AVAIL, USED), 1);
	assert_false(rd(0x70) & S_NEEDS_RESET);

	/* Rings outside RAM, straddling its end, or above 4 GiB. */
	negotiate(1ull << 32);
	assert_int_equal(setup_queue(0, 8, RAM_SIZE, AVAIL, USED), 0);
	assert_broken();
	negotiate(1ull << 32);
	assert_int_equal(setup_queue(0, 8, DESC, RAM_SIZE - 16, USED), 0);
	assert_broken();
	negotiate(1ull << 32);
	assert_int_equal(setup_queue(0, 8, DESC, AVAIL, 0x100000000ull + USED), 0);
	assert_broken();
	negotiate(1ull << 32);
	assert_int_equal(setup_queue(0, 8, DESC, AVAIL, UINT64_MAX - 8), 0);
	assert_broken();

	/* Misaligned rings. */
	negotiate(1ull << 32);
	assert_int_equal(setup_queue(0, 8, DESC + 8, AVAIL, USED), 0);
	assert_broken();
	negotiate(1ull << 32);
	assert_int_equal(setup_queue(0, 8, DESC, AVAIL + 1, USED), 0);
	assert_broken();
	negotiate(1ull << 32);
	assert_int_equal(setup_queue(0, 8, DESC, AVAIL, USED + 2), 0);
	assert_broken();
}

static void test_layout_frozen_while_ready(void **state)
{
	(void)state;
	bring_up(8);
	wr(0x30, 0);
	wr(0x38, 1000);
	wr(0x80, 0xfffff000);
	assert_int_equal(rd(0x38), 8);
	assert_int_equal(rd(0x80), DESC);
	/* Disabled, it can be moved; re-enabling restarts the indices. */
	set_desc(&dq[0], 0, BUF, 8, F_WRITE, 0);
	push(&dq[0], 0);
	wr(0x50, 0);
	assert_int_equal(handled, 1);
	wr(0x44, 0);
	assert_int_equal(rd(0x44), 0);
	memset(ram + 0x8000, 0, 0x3000);
	assert_int_equal(setup_queue(0, 4, 0x8000, 0x9000, 0xa000), 1);
	set_desc(&dq[0], 2, BUF, 8, F_WRITE, 0);
	push(&dq[0], 2);
	wr(0x50, 0);
	assert_int_equal(handled, 2);
	assert_int_equal(get16(0xa000 + 2), 1);
	assert_int_equal(get32(0xa000 + 4), 2);
}

/* Submit one chain with head `head` on a fresh device; expect NEEDS_RESET. */
static void expect_malformed(uint16_t head)
{
	push(&dq[0], head);
	wr(0x50, 0);
	assert_int_equal(handled, 0);
	assert_broken();
	assert_int_equal(get16(USED + 2), 0);
	/* Reported by a config-change interrupt (DRIVER_OK was set). */
	assert_int_equal(rd(0x60), 2);
	assert_int_equal(irq_level, 1);
}

static void test_bad_head_index(void **state)
{
	(void)state;
	bring_up(8);
	expect_malformed(8);
}

static void test_bad_next_index(void **state)
{
	(void)state;
	bring_up(8);
	set_desc(&dq[0], 0, BUF, 8, F_NEXT, 0xffff);
	expect_malformed(0);
}

static void test_descriptor_loop(void **state)
{
	(void)state;
	bring_up(8);
	set_desc(&dq[0], 0, BUF, 8, F_NEXT, 1);
	set_desc(&dq[0], 1, BUF, 8, F_NEXT, 0);
	expect_malformed(0);
}

static void test_chain_length_limit(void **state)
{
	(void)state;
	/* A chain using every descriptor once is fine ... */
	bring_up(8);
	for (unsigned i = 0; i < 8; i++)
		set_desc(&dq[0], i, BUF + 16 * i, 16, F_WRITE | (i < 7 ? F_NEXT : 0),
			 (uint16_t)(i + 1));
	push(&dq[0], 0);
	wr(0x50, 0);
	assert_int_equal(handled, 1);
	assert_int_equal(last_chain.nseg, 8);
	assert_int_equal(get32(USED + 8), 128);

	/* ... one more (revisiting a descriptor) is not. */
	set_desc(&dq[0], 7, BUF + 16 * 7, 16, F_WRITE | F_NEXT, 3);
	handled = 0;
	push(&dq[0], 0);
	wr(0x50, 0);
	assert_int_equal(handled, 0);
	assert_broken();
}

static void test_buffer_straddles_ram_end(void **state)
{
	(void)state;
	bring_up(8);
	set_desc(&dq[0], 0, RAM_SIZE - 8, 16, F_WRITE, 0);
	expect_malformed(0);
}

static void test_buffer_huge_length(void **state)
{
	(void)state;
	bring_up(8);
	set_desc(&dq[0], 0, BUF, 0xffffffff, F_WRITE, 0);
	expect_malformed(0);
}

static void test_buffer_address_wraps(void **state)
{
	(void)state;
	bring_up(8);
	set_desc(&dq[0], 0, UINT64_MAX - 3, 16, F_WRITE, 0);
	expect_malformed(0);
}

static void test_readable_after_writable(void **state)
{
	(void)state;
	bring_up(8);
	set_desc(&dq[0], 0, BUF, 8, F_WRITE | F_NEXT, 1);
	set_desc(&dq[0], 1, BUF + 8, 8, 0, 0);
	expect_malformed(0);
}

static void test_indirect_refused(void **state)
{
	(void)state;
	bring_up(8);
	set_desc(&dq[0], 0, BUF, 16, F_INDIRECT, 0);
	expect_malformed(0);
}

static void test_avail_index_jump(void **state)
{
	(void)state;
	bring_up(8);
	set_desc(&dq[0], 0, BUF, 8, F_WRITE, 0);
	put16(AVAIL + 2, 9);	/* more than the ring holds */
	wr(0x50, 0);
	assert_int_equal(handled, 0);
	assert_broken();
}

static void test_backend_refusal_and_reset(void **state)
{
	(void)state;
	bring_up(8);
	/* The first chain completes, the second is refused. */
	set_desc(&dq[0], 0, BUF, 8, F_WRITE, 0);
	set_desc(&dq[0], 1, BUF, 8, F_WRITE, 0);
	push(&dq[0], 0);
	wr(0x50, 0);
	fail_handle = 1;
	push(&dq[0], 1);
	push(&dq[0], 0);
	wr(0x50, 0);
	assert_int_equal(handled, 2);
	assert_broken();
	assert_int_equal(get16(USED + 2), 1);
	assert_int_equal(rd(0x60), 3);

	/* Broken: notifies do nothing, the driver cannot clear the bit. */
	fail_handle = 0;
	wr(0x50, 0);
	assert_int_equal(handled, 2);
	wr(0x70, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	assert_broken();

	/* Reset: everything back to zero, line lowered. */
	wr(0x70, 0);
	assert_int_equal(rd(0x70), 0);
	assert_int_equal(rd(0x60), 0);
	assert_int_equal(irq_level, 0);
	wr(0x30, 0);
	assert_int_equal(rd(0x44), 0);
	assert_int_equal(rd(0x38), 0);
	assert_int_equal(vm.state.driver_features, 0);

	/* And the device works again after a fresh setup. */
	memset(ram + USED, 0, 0x100);
	memset(ram + AVAIL, 0, 0x100);
	bring_up(8);
	push(&dq[0], 0);
	wr(0x50, 0);
	assert_int_equal(handled, 3);
	assert_false(rd(0x70) & S_NEEDS_RESET);
}

static void test_chain_helpers(void **state)
{
	uint8_t out[16];
	struct virtio_chain c = { .nseg = 4 };

	(void)state;
	memcpy(ram + 0x100, "abcde", 5);
	memcpy(ram + 0x200, "fgh", 3);
	c.seg[0] = (struct virtio_seg){ ram + 0x100, 5, false };
	c.seg[1] = (struct virtio_seg){ ram + 0x200, 3, false };
	c.seg[2] = (struct virtio_seg){ ram + 0x300, 2, true };
	c.seg[3] = (struct virtio_seg){ ram + 0x400, 4, true };
	assert_int_equal(virtio_chain_len(&c, false), 8);
	assert_int_equal(virtio_chain_len(&c, true), 6);
	memset(out, 0, sizeof(out));
	assert_int_equal(virtio_chain_copy_from(&c, 3, out, 16), 5);
	assert_memory_equal(out, "defgh", 5);
	assert_int_equal(virtio_chain_copy_from(&c, 8, out, 16), 0);
	assert_int_equal(virtio_chain_copy_to(&c, 1, "WXYZQ", 5), 5);
	assert_int_equal(ram[0x300], 0);
	assert_int_equal(ram[0x301], 'W');
	assert_memory_equal(ram + 0x400, "XYZQ", 4);
	assert_int_equal(virtio_chain_copy_to(&c, 5, "12", 2), 1);
	assert_int_equal(ram[0x403], '1');
	assert_int_equal(virtio_chain_copy_to(&c, 100, "12", 2), 0);
}

/*
 * Random descriptor tables, heads and register writes, mostly plausible so
 * that many chains get through and many do not: whatever the guest puts
 * there, the backend only ever sees buffers inside RAM (checked in
 * be_handle) and the transport never touches memory outside it (run the
 * test under -fsanitize=address to see the latter).
 */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(uint64_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return n ? rng_state % n : rng_state;
}

static void test_random_garbage(void **state)
{
	int broken = 0;

	(void)state;
	for (int iter = 0; iter < 4000; iter++) {
		if (iter % 8 == 0 || (rd(0x70) & S_NEEDS_RESET)) {
			broken += !!(rd(0x70) & S_NEEDS_RESET);
			wr(0x70, 0);
			memset(ram, 0, BUF);
			bring_up(1u << rnd(5));
		}
		uint32_t num = dq[0].num;

		for (unsigned i = 0; i < num; i++) {
			uint64_t addr = rnd(10) ? BUF + rnd(RAM_SIZE - BUF) : rnd(0);
			uint32_t len = rnd(10) ? (uint32_t)rnd(64) : (uint32_t)rnd(0);
			uint16_t flags = (uint16_t)(rnd(4) ? (rnd(2) ? F_NEXT : 0) |
						    (i >= num / 2 ? F_WRITE : 0) : rnd(8));
			uint16_t next = (uint16_t)(rnd(8) ? i + 1 + rnd(2) : rnd(0));

			set_desc(&dq[0], i, addr, len, flags, next);
		}
		for (uint64_t n = rnd(3); n; n--)
			push(&dq[0], (uint16_t)(rnd(16) ? rnd(num) : rnd(0)));
		if (rnd(20) == 0)
			put16(AVAIL + 2, (uint16_t)rnd(0));
		if (rnd(30) == 0)
			wr((uint32_t)rnd(0x100) & ~3u, (uint32_t)rnd(0));
		wr(0x50, (uint32_t)rnd(3));
	}
	/* Both outcomes were exercised, many times. */
	assert_true(handled > 300);
	assert_true(broken > 300);
}

static void test_bus_registration(void **state)
{
	struct bus mmio;
	uint8_t d[4];

	(void)state;
	bus_init(&mmio, "mmio");
	assert_int_equal(virtio_mmio_register(&vm, &mmio, 0xfeb00000), 0);
	assert_int_equal(bus_access(&mmio, 0xfeb00000, d, 4, false, NULL), BUS_OK);
	assert_int_equal(bus_le_get(d, 4), 0x74726976);
	assert_int_equal(bus_access(&mmio, 0xfeb001fc, d, 4, false, NULL), BUS_OK);
	assert_int_equal(bus_access(&mmio, 0xfeb00200, d, 4, false, NULL), BUS_UNCLAIMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_identity_registers, setup),
		cmocka_unit_test_setup(test_feature_negotiation, setup),
		cmocka_unit_test_setup(test_basic_request, setup),
		cmocka_unit_test_setup(test_ring_wraparound, setup),
		cmocka_unit_test_setup(test_used_len_clamped, setup),
		cmocka_unit_test_setup(test_no_interrupt_flag, setup),
		cmocka_unit_test_setup(test_second_queue_and_selectors, setup),
		cmocka_unit_test_setup(test_out_of_range_queue, setup),
		cmocka_unit_test_setup(test_notify_not_ready, setup),
		cmocka_unit_test_setup(test_queue_layout_validation, setup),
		cmocka_unit_test_setup(test_layout_frozen_while_ready, setup),
		cmocka_unit_test_setup(test_bad_head_index, setup),
		cmocka_unit_test_setup(test_bad_next_index, setup),
		cmocka_unit_test_setup(test_descriptor_loop, setup),
		cmocka_unit_test_setup(test_chain_length_limit, setup),
		cmocka_unit_test_setup(test_buffer_straddles_ram_end, setup),
		cmocka_unit_test_setup(test_buffer_huge_length, setup),
		cmocka_unit_test_setup(test_buffer_address_wraps, setup),
		cmocka_unit_test_setup(test_readable_after_writable, setup),
		cmocka_unit_test_setup(test_indirect_refused, setup),
		cmocka_unit_test_setup(test_avail_index_jump, setup),
		cmocka_unit_test_setup(test_backend_refusal_and_reset, setup),
		cmocka_unit_test_setup(test_chain_helpers, setup),
		cmocka_unit_test_setup(test_random_garbage, setup),
		cmocka_unit_test_setup(test_bus_registration, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
