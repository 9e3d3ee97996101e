/*
 * test_virtio_rng.c - unit tests for the virtio entropy device
 * (vmm/devices/virtio_rng.c).
 *
 * The fake gateway's entropy is a byte counter, so the tests know exactly
 * which bytes must land where, and it counts its calls.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/devices/virtio_rng.h"

#define RAM_SIZE	0x80000ull
#define DESC		0x1000ull
#define AVAIL		0x2000ull
#define USED		0x3000ull
#define BUF		0x10000ull
#define QNUM		8

#define F_NEXT		1
#define F_WRITE		2

static uint8_t ram[RAM_SIZE];
static struct guest_mem gm;
static struct virtio_rng rng;
static uint8_t counter;
static int entropy_calls;
static size_t entropy_bytes;
static int clock_calls;
static int irq_level;
static uint16_t avail_idx;

static uint64_t fake_clock(struct nd *nd)
{
	(void)nd;
	clock_calls++;
	return 0;
}

static void fake_entropy(struct nd *nd, void *buf, size_t len)
{
	uint8_t *p = buf;

	(void)nd;
	entropy_calls++;
	entropy_bytes += len;
	for (size_t i = 0; i < len; i++)
		p[i] = counter++;
}

static const struct nd_ops fake_ops = {
	.clock_ns = fake_clock,
	.entropy = fake_entropy,
};
static struct nd fake_nd = { .ops = &fake_ops };

static void irq_set_fake(void *router, unsigned gsi, int level)
{
	(void)router;
	(void)gsi;
	irq_level = level;
}

static void wr(uint32_t off, uint32_t v)
{
	uint8_t d[4];

	bus_le_put(d, 4, v);
	virtio_mmio_ops.write(&rng.transport, off, d, 4);
}

static uint32_t rd(uint32_t off)
{
	uint8_t d[4];

	virtio_mmio_ops.read(&rng.transport, off, d, 4);
	return (uint32_t)bus_le_get(d, 4);
}

static int setup(void **state)
{
	(void)state;
	memset(ram, 0xaa, sizeof(ram));
	memset(ram, 0, BUF);
	gm_layout(&gm, ram, RAM_SIZE);
	counter = 0;
	entropy_calls = 0;
	entropy_bytes = 0;
	clock_calls = 0;
	irq_level = 0;
	avail_idx = 0;
	virtio_rng_init(&rng, &fake_nd, &gm,
			(struct irq_line){ .set = irq_set_fake, .gsi = 11 });
	wr(0x70, 1);
	wr(0x70, 3);
	wr(0x24, 1);
	wr(0x20, 1);
	wr(0x70, 0xb);
	assert_int_equal(rd(0x70), 0xb);
	wr(0x30, 0);
	wr(0x38, QNUM);
	wr(0x80, (uint32_t)DESC);
	wr(0x90, (uint32_t)AVAIL);
	wr(0xa0, (uint32_t)USED);
	wr(0x44, 1);
	wr(0x70, 0xf);
	return 0;
}

struct seg {
	uint64_t addr;
	uint32_t len;
	bool writable;
};

/* Submit one chain from descriptor 0 and return its used length. */
static uint32_t submit(const struct seg *s, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t d = DESC + 16 * (uint64_t)i;

		bus_le_put(ram + d, 8, s[i].addr);
		bus_le_put(ram + d + 8, 4, s[i].len);
		bus_le_put(ram + d + 12, 2,
			   (s[i].writable ? F_WRITE : 0) | (i + 1 < n ? F_NEXT : 0));
		bus_le_put(ram + d + 14, 2, (uint64_t)i + 1);
	}
	bus_le_put(ram + AVAIL + 4 + 2 * (avail_idx % QNUM), 2, 0);
	avail_idx++;
	bus_le_put(ram + AVAIL + 2, 2, avail_idx);
	wr(0x50, 0);
	assert_false(rd(0x70) & 0x40);
	assert_int_equal(bus_le_get(ram + USED + 2, 2), avail_idx);
	assert_int_equal(irq_level, 1);
	wr(0x64, 1);
	assert_int_equal(irq_level, 0);
	return (uint32_t)bus_le_get(ram + USED + 4 + 8 * ((avail_idx - 1) % QNUM) + 4, 4);
}

static void test_identity(void **state)
{
	uint8_t d[4];

	(void)state;
	assert_int_equal(rd(0x08), 4);
	wr(0x14, 0);
	assert_int_equal(rd(0x10), 0);
	wr(0x14, 1);
	assert_int_equal(rd(0x10), 1);	/* VERSION_1 only */
	memset(d, 0xff, sizeof(d));
	virtio_mmio_ops.read(&rng.transport, 0x100, d, 4);
	assert_int_equal(bus_le_get(d, 4), 0);
}

static void test_fill(void **state)
{
	(void)state;
	struct seg s[1] = { { BUF, 32, true } };

	assert_int_equal(submit(s, 1), 32);
	for (int i = 0; i < 32; i++)
		assert_int_equal(ram[BUF + i], i);
	assert_int_equal(ram[BUF + 32], 0xaa);
	assert_int_equal(entropy_calls, 1);
	assert_int_equal(clock_calls, 0);

	/* The next request continues the (recorded) stream. */
	assert_int_equal(submit(s, 1), 32);
	assert_int_equal(ram[BUF], 32);
	assert_int_equal(entropy_calls, 2);
}

static void test_several_segments(void **state)
{
	(void)state;
	struct seg s[4] = {
		{ BUF + 0x100, 16, false },	/* readable: ignored */
		{ BUF, 10, true },
		{ BUF + 0x200, 0, true },	/* empty: no call */
		{ BUF + 0x300, 6, true },
	};

	assert_int_equal(submit(s, 4), 16);
	for (int i = 0; i < 10; i++)
		assert_int_equal(ram[BUF + i], i);
	for (int i = 0; i < 6; i++)
		assert_int_equal(ram[BUF + 0x300 + i], 10 + i);
	assert_int_equal(ram[BUF + 0x100], 0xaa);
	assert_int_equal(ram[BUF + 0x200], 0xaa);
	assert_int_equal(entropy_calls, 2);
}

static void test_cap_one_segment(void **state)
{
	(void)state;
	struct seg s[1] = { { BUF, 100 * 1024, true } };

	assert_int_equal(submit(s, 1), 64 * 1024);
	assert_int_equal(entropy_bytes, 64 * 1024);
	assert_int_equal(ram[BUF + 64 * 1024 - 1], (uint8_t)(64 * 1024 - 1));
	assert_int_equal(ram[BUF + 64 * 1024], 0xaa);
}

static void test_cap_across_segments(void **state)
{
	(void)state;
	struct seg s[4] = {
		{ BUF, 30 * 1024, true },
		{ BUF + 0x10000, 30 * 1024, true },
		{ BUF + 0x20000, 30 * 1024, true },
		{ BUF + 0x30000, 30 * 1024, true },
	};

	assert_int_equal(submit(s, 4), 64 * 1024);
	assert_int_equal(entropy_calls, 3);
	assert_int_equal(entropy_bytes, 64 * 1024);
	assert_int_equal(ram[BUF + 0x20000 + 4 * 1024 - 1], (uint8_t)(64 * 1024 - 1));
	assert_int_equal(ram[BUF + 0x20000 + 4 * 1024], 0xaa);
	assert_int_equal(ram[BUF + 0x30000], 0xaa);
}

static void test_readable_only(void **state)
{
	(void)state;
	struct seg s[1] = { { BUF, 64, false } };

	assert_int_equal(submit(s, 1), 0);
	assert_int_equal(entropy_calls, 0);
	assert_int_equal(ram[BUF], 0xaa);
}

static void test_register(void **state)
{
	struct bus mmio;
	uint8_t d[4];

	(void)state;
	bus_init(&mmio, "mmio");
	assert_int_equal(virtio_rng_register(&rng, &mmio, 0xfeb00200), 0);
	assert_int_equal(bus_access(&mmio, 0xfeb00208, d, 4, false, NULL), BUS_OK);
	assert_int_equal(bus_le_get(d, 4), 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_identity, setup),
		cmocka_unit_test_setup(test_fill, setup),
		cmocka_unit_test_setup(test_several_segments, setup),
		cmocka_unit_test_setup(test_cap_one_segment, setup),
		cmocka_unit_test_setup(test_cap_across_segments, setup),
		cmocka_unit_test_setup(test_readable_only, setup),
		cmocka_unit_test_setup(test_register, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
