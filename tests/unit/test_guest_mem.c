/*
 * test_guest_mem.c - unit tests for guest RAM layout and bounds-checked
 * access (vmm/guest_mem.c).  Large layouts are tested over an address-space
 * reservation that is never touched (PROT_NONE), so only pointer arithmetic
 * is checked there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "vmm/guest_mem.h"

#define GIB (1ULL << 30)

static uint8_t ram[64 * 1024];

static void test_small_layout(void **st)
{
	struct guest_mem gm;

	(void)st;
	gm_layout(&gm, ram, sizeof(ram));
	assert_int_equal(gm.size, sizeof(ram));
	assert_int_equal(gm.low_size, sizeof(ram));
	assert_int_equal(gm.high_size, 0);
	assert_ptr_equal(gm_ptr(&gm, 0, 1), ram);
	assert_ptr_equal(gm_ptr(&gm, 0, sizeof(ram)), ram);
	assert_ptr_equal(gm_ptr(&gm, sizeof(ram) - 1, 1), ram + sizeof(ram) - 1);
	assert_null(gm_ptr(&gm, sizeof(ram) - 1, 2));
	assert_null(gm_ptr(&gm, 0, sizeof(ram) + 1));
	assert_null(gm_ptr(&gm, sizeof(ram), 1));
	assert_null(gm_ptr(&gm, GM_HIGH_START, 1));
	/* Ranges that wrap the address space. */
	assert_null(gm_ptr(&gm, UINT64_MAX, 2));
	assert_null(gm_ptr(&gm, 16, UINT64_MAX));
	assert_null(gm_ptr(&gm, 1, UINT64_MAX));
}

static void test_read_write(void **st)
{
	struct guest_mem gm;
	uint8_t buf[16], guard[16];

	(void)st;
	memset(ram, 0, sizeof(ram));
	gm_layout(&gm, ram, sizeof(ram));
	assert_int_equal(gm_write(&gm, 0x100, "hello", 5), 0);
	assert_memory_equal(ram + 0x100, "hello", 5);
	assert_int_equal(gm_read(&gm, 0x101, buf, 4), 0);
	assert_memory_equal(buf, "ello", 4);
	/* A refused range copies nothing, either way. */
	memset(buf, 0xaa, sizeof(buf));
	memcpy(guard, buf, sizeof(buf));
	assert_int_equal(gm_read(&gm, sizeof(ram) - 8, buf, 16), -1);
	assert_memory_equal(buf, guard, sizeof(buf));
	assert_int_equal(gm_write(&gm, sizeof(ram) - 8, guard, 16), -1);
	for (size_t i = sizeof(ram) - 8; i < sizeof(ram); i++)
		assert_int_equal(ram[i], 0);
	assert_int_equal(gm_write(&gm, UINT64_MAX - 3, guard, 8), -1);
	/* The last bytes are reachable. */
	assert_int_equal(gm_write(&gm, sizeof(ram) - 2, "zz", 2), 0);
	assert_int_equal(gm_read(&gm, sizeof(ram) - 2, buf, 2), 0);
	assert_memory_equal(buf, "zz", 2);
}

static void test_split_layout(void **st)
{
	struct guest_mem gm;
	uint64_t size = 5 * GIB;
	uint8_t *host = mmap(NULL, size, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	(void)st;
	if (host == MAP_FAILED)
		skip();
	gm_layout(&gm, host, size);
	assert_int_equal(gm.low_size, GM_HOLE_START);
	assert_int_equal(gm.high_size, 2 * GIB);
	/* Below the hole: identity offset. */
	assert_ptr_equal(gm_ptr(&gm, GM_HOLE_START - 1, 1), host + GM_HOLE_START - 1);
	/* The hole itself and ranges running into it. */
	assert_null(gm_ptr(&gm, GM_HOLE_START, 1));
	assert_null(gm_ptr(&gm, GM_HOLE_START - 1, 2));
	assert_null(gm_ptr(&gm, GM_HIGH_START - 1, 1));
	assert_null(gm_ptr(&gm, GM_HOLE_START - 16, GM_HIGH_START));
	/* Above 4 GiB: right after the low block in the host mapping. */
	assert_ptr_equal(gm_ptr(&gm, GM_HIGH_START, 1), host + GM_HOLE_START);
	assert_ptr_equal(gm_ptr(&gm, GM_HIGH_START, 2 * GIB), host + GM_HOLE_START);
	assert_ptr_equal(gm_ptr(&gm, GM_HIGH_START + 2 * GIB - 1, 1), host + size - 1);
	assert_null(gm_ptr(&gm, GM_HIGH_START + 2 * GIB - 1, 2));
	assert_null(gm_ptr(&gm, GM_HIGH_START + 2 * GIB, 1));
	assert_null(gm_ptr(&gm, GM_HIGH_START, 2 * GIB + 1));
	assert_null(gm_ptr(&gm, UINT64_MAX - 1, 1));
	munmap(host, size);
}

static void test_exactly_hole_sized(void **st)
{
	struct guest_mem gm;

	(void)st;
	/* No access happens, so any base pointer will do for the layout. */
	gm_layout(&gm, ram, GM_HOLE_START);
	assert_int_equal(gm.low_size, GM_HOLE_START);
	assert_int_equal(gm.high_size, 0);
	assert_null(gm_ptr(&gm, GM_HIGH_START, 1));
	assert_null(gm_ptr(&gm, GM_HOLE_START, 1));
}

/* The monitor's own writes are tracked per page; out-of-range ones are not. */
static void test_dirty_bitmap(void **st)
{
	struct guest_mem gm;
	uint64_t bits[1] = { 0 };
	uint8_t b = 1;

	(void)st;
	gm_layout(&gm, ram, sizeof(ram));	/* 16 pages */
	assert_null(gm.dirty);
	assert_int_equal(gm_write(&gm, 0x10, &b, 1), 0); /* no bitmap: no tracking, no crash */
	gm.dirty = bits;
	assert_int_equal(gm_write(&gm, 0x1ffe, "ab", 2), 0);	/* page 1 */
	assert_int_equal(bits[0], 1ULL << 1);
	assert_int_equal(gm_write(&gm, 0x2fff, "ab", 2), 0);	/* straddles pages 2 and 3 */
	assert_int_equal(bits[0], (1ULL << 1) | (1ULL << 2) | (1ULL << 3));
	assert_non_null(gm_ptr(&gm, 0xf000, 0x1000));		/* page 15 via gm_ptr */
	assert_true(bits[0] & (1ULL << 15));
	bits[0] = 0;
	assert_int_equal(gm_write(&gm, sizeof(ram) - 1, "ab", 2), -1);	/* refused: nothing marked */
	assert_null(gm_ptr(&gm, GM_HIGH_START, 1));
	assert_int_equal(bits[0], 0);
	assert_int_equal(gm_read(&gm, 0x4000, &b, 1), 0);	/* a read may mark its own page (gm_ptr over-approximates), no other */
	assert_int_equal(bits[0] & ~(1ULL << 4), 0);
}

static void test_offset_gpa(void **st)
{
	struct guest_mem gm;

	(void)st;
	gm_layout(&gm, NULL, GM_HOLE_START + 8192);
	assert_int_equal(gm_offset_to_gpa(&gm, 4096), 4096);
	assert_int_equal(gm_offset_to_gpa(&gm, GM_HOLE_START), GM_HIGH_START);
	assert_int_equal(gm_gpa_to_offset(&gm, GM_HIGH_START + 4096), GM_HOLE_START + 4096);
	assert_int_equal(gm_gpa_to_offset(&gm, GM_HOLE_START), -1);
	assert_int_equal(gm_gpa_to_offset(&gm, GM_HIGH_START + 8192), -1);
	assert_int_equal(gm_gpa_to_offset(&gm, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_layout),
		cmocka_unit_test(test_read_write),
		cmocka_unit_test(test_split_layout),
		cmocka_unit_test(test_exactly_hole_sized),
		cmocka_unit_test(test_dirty_bitmap),
		cmocka_unit_test(test_offset_gpa),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
