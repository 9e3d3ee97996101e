/*
 * test_bus.c - unit tests for the port/MMIO bus (vmm/bus.c): registration
 * rules, lookup at region edges, and the access checks that guarantee a
 * device never sees an out-of-range offset or a bad size.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/bus.h"

/* A device that records its last call and answers reads with a pattern. */
struct fake_dev {
	int reads, writes;
	uint64_t offset;
	unsigned size;
	uint8_t wdata[8];
};

static void fake_read(void *dev, uint64_t offset, uint8_t *data, unsigned size)
{
	struct fake_dev *f = dev;

	f->reads++;
	f->offset = offset;
	f->size = size;
	for (unsigned i = 0; i < size; i++)
		data[i] = (uint8_t)(0x10 + offset + i);
}

static void fake_write(void *dev, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct fake_dev *f = dev;

	f->writes++;
	f->offset = offset;
	f->size = size;
	memcpy(f->wdata, data, size);
}

static const struct bus_ops fake_ops = { fake_read, fake_write };
static const struct bus_ops no_read_ops = { NULL, fake_write };
static const struct bus_ops no_write_ops = { fake_read, NULL };

static void test_register_rules(void **st)
{
	struct bus b;
	struct fake_dev d = { 0 };

	(void)st;
	bus_init(&b, "pio");
	assert_string_equal(b.name, "pio");
	assert_int_equal(b.n, 0);
	assert_int_equal(bus_register(&b, 0x100, 0x10, &fake_ops, &d, "a"), 0);
	assert_int_equal(bus_register(&b, 0x200, 0, &fake_ops, &d, "len0"), -EINVAL);
	assert_int_equal(bus_register(&b, UINT64_MAX, 2, &fake_ops, &d, "wrap"), -EINVAL);
	assert_int_equal(bus_register(&b, 0x300, 1, NULL, &d, "noops"), -EINVAL);
	assert_int_equal(bus_register(&b, 0x300, 1, &no_read_ops, &d, "r"), -EINVAL);
	assert_int_equal(bus_register(&b, 0x300, 1, &no_write_ops, &d, "w"), -EINVAL);
	/* Every kind of overlap with [0x100, 0x110). */
	assert_int_equal(bus_register(&b, 0x100, 0x10, &fake_ops, &d, "same"), -EEXIST);
	assert_int_equal(bus_register(&b, 0xf8, 0x9, &fake_ops, &d, "front"), -EEXIST);
	assert_int_equal(bus_register(&b, 0x10f, 0x4, &fake_ops, &d, "back"), -EEXIST);
	assert_int_equal(bus_register(&b, 0x0, 0x1000, &fake_ops, &d, "around"), -EEXIST);
	assert_int_equal(bus_register(&b, 0x104, 0x1, &fake_ops, &d, "inside"), -EEXIST);
	/* Adjacent on both sides is fine. */
	assert_int_equal(bus_register(&b, 0xf0, 0x10, &fake_ops, &d, "below"), 0);
	assert_int_equal(bus_register(&b, 0x110, 0x10, &fake_ops, &d, "above"), 0);
	assert_int_equal(b.n, 3);
}

static void test_table_full(void **st)
{
	struct bus b;
	struct fake_dev d = { 0 };

	(void)st;
	bus_init(&b, "mmio");
	for (int i = 0; i < BUS_MAX_REGIONS; i++)
		assert_int_equal(bus_register(&b, 0x1000 + 0x10 * (uint64_t)i, 0x10,
					      &fake_ops, &d, "x"), 0);
	assert_int_equal(bus_register(&b, 0x100000, 0x10, &fake_ops, &d, "y"), -ENOSPC);
	/* An overlap is still reported as such when full. */
	assert_int_equal(bus_register(&b, 0x1000, 0x10, &fake_ops, &d, "z"), -EEXIST);
	assert_int_equal(b.n, BUS_MAX_REGIONS);
}

static void test_find_edges(void **st)
{
	struct bus b;
	struct fake_dev d1 = { 0 }, d2 = { 0 };

	(void)st;
	bus_init(&b, "mmio");
	assert_null(bus_find(&b, 0));
	bus_register(&b, 0xfee00000, 0x1000, &fake_ops, &d1, "lapic");
	bus_register(&b, 0xfee01000, 0x10, &fake_ops, &d2, "next");
	assert_null(bus_find(&b, 0xfedfffff));
	assert_ptr_equal(bus_find(&b, 0xfee00000)->dev, &d1);
	assert_ptr_equal(bus_find(&b, 0xfee00fff)->dev, &d1);
	assert_ptr_equal(bus_find(&b, 0xfee01000)->dev, &d2);
	assert_string_equal(bus_find(&b, 0xfee0100f)->name, "next");
	assert_null(bus_find(&b, 0xfee01010));
	assert_null(bus_find(&b, UINT64_MAX));
}

static void test_access_dispatch(void **st)
{
	struct bus b;
	struct fake_dev d = { 0 };
	const struct bus_region *r = NULL;
	uint8_t data[8];

	(void)st;
	bus_init(&b, "pio");
	bus_register(&b, 0x3f8, 8, &fake_ops, &d, "uart");
	assert_int_equal(bus_access(&b, 0x3fa, data, 2, false, &r), BUS_OK);
	assert_ptr_equal(r->dev, &d);
	assert_int_equal(d.reads, 1);
	assert_int_equal(d.offset, 2);
	assert_int_equal(d.size, 2);
	assert_int_equal(data[0], 0x12);
	assert_int_equal(data[1], 0x13);
	bus_le_put(data, 4, 0xa1b2c3d4);
	assert_int_equal(bus_access(&b, 0x3fc, data, 4, true, NULL), BUS_OK);
	assert_int_equal(d.writes, 1);
	assert_int_equal(d.offset, 4);
	assert_int_equal(d.size, 4);
	assert_int_equal(bus_le_get(d.wdata, 4), 0xa1b2c3d4);
	/* The whole region in one 8-byte access. */
	assert_int_equal(bus_access(&b, 0x3f8, data, 8, false, NULL), BUS_OK);
	assert_int_equal(d.offset, 0);
	assert_int_equal(data[7], 0x17);
}

static void test_access_refusals(void **st)
{
	struct bus b;
	struct fake_dev d = { 0 };
	const struct bus_region *r;
	uint8_t data[8];

	(void)st;
	bus_init(&b, "pio");
	bus_register(&b, 0x70, 2, &fake_ops, &d, "rtc");

	/* Unclaimed: reads all ones, writes dropped, region NULL. */
	r = (const void *)&d;
	memset(data, 0, sizeof(data));
	assert_int_equal(bus_access(&b, 0x80, data, 4, false, &r), BUS_UNCLAIMED);
	assert_null(r);
	assert_int_equal(bus_le_get(data, 4), 0xffffffff);
	assert_int_equal(data[4], 0);
	assert_int_equal(bus_access(&b, 0x80, data, 4, true, NULL), BUS_UNCLAIMED);

	/* Straddling the end of a region: refused, region reported. */
	memset(data, 0, sizeof(data));
	assert_int_equal(bus_access(&b, 0x71, data, 2, false, &r), BUS_STRADDLE);
	assert_ptr_equal(r->dev, &d);
	assert_int_equal(data[0], 0xff);
	assert_int_equal(data[1], 0xff);
	assert_int_equal(bus_access(&b, 0x70, data, 4, true, NULL), BUS_STRADDLE);

	/* Sizes other than 1, 2, 4, 8. */
	memset(data, 0, sizeof(data));
	assert_int_equal(bus_access(&b, 0x70, data, 3, false, NULL), BUS_BADSIZE);
	assert_int_equal(data[0], 0xff);
	assert_int_equal(data[2], 0xff);
	assert_int_equal(data[3], 0x00);
	assert_int_equal(bus_access(&b, 0x70, data, 0, false, NULL), BUS_BADSIZE);
	assert_int_equal(bus_access(&b, 0x70, data, 16, true, NULL), BUS_BADSIZE);
	assert_int_equal(bus_access(&b, 0x80, data, 5, false, NULL), BUS_BADSIZE);

	assert_int_equal(d.reads, 0);
	assert_int_equal(d.writes, 0);
}

static void test_result_strings_and_le(void **st)
{
	uint8_t d[8];

	(void)st;
	assert_string_equal(bus_result_str(BUS_OK), "ok");
	assert_string_not_equal(bus_result_str(BUS_UNCLAIMED), bus_result_str(BUS_STRADDLE));
	assert_string_not_equal(bus_result_str(BUS_STRADDLE), bus_result_str(BUS_BADSIZE));
	assert_string_equal(bus_result_str((enum bus_result)99), "?");
	bus_le_put(d, 8, 0x0102030405060708ULL);
	assert_int_equal(d[0], 0x08);
	assert_int_equal(d[7], 0x01);
	assert_int_equal(bus_le_get(d, 8), 0x0102030405060708ULL);
	assert_int_equal(bus_le_get(d, 2), 0x0708);
	assert_int_equal(bus_le_get(d, 0), 0);
	memset(d, 0xee, sizeof(d));
	bus_le_put(d, 1, 0x1234);
	assert_int_equal(d[0], 0x34);
	assert_int_equal(d[1], 0xee);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_rules),
		cmocka_unit_test(test_table_full),
		cmocka_unit_test(test_find_edges),
		cmocka_unit_test(test_access_dispatch),
		cmocka_unit_test(test_access_refusals),
		cmocka_unit_test(test_result_strings_and_le),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
