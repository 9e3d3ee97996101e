/*
 * test_mem_digest.c - unit tests for the memory digest (vmm/mem_digest.c)
 * and the map of populated pages it uses (gm_populated, vmm/guest_mem.c).
 * RAM here is an anonymous private mapping, as in a VM, so that untouched
 * pages are really untouched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>
#include <cmocka.h>

#include "vmm/guest_mem.h"
#include "vmm/mem_digest.h"

#define PG 4096
#define NPAGES 64

static uint8_t *map_ram(uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(p != MAP_FAILED);
	return p;
}

static bool pagemap_readable(void)
{
	FILE *f = fopen("/proc/self/pagemap", "r");
	if (f)
		fclose(f);
	return f != NULL;
}

static void test_populated(void **st)
{
	(void)st;
	struct guest_mem gm;
	uint8_t *ram = map_ram(NPAGES * PG);
	uint8_t vec[NPAGES];
	gm_layout(&gm, ram, NPAGES * PG);
	ram[3 * PG + 17] = 1;
	ram[40 * PG] = 2;
	ram[63 * PG + PG - 1] = 3;
	uint64_t n = gm_populated(&gm, vec);
	/* Written pages are always reported. */
	assert_int_equal(vec[3], 1);
	assert_int_equal(vec[40], 1);
	assert_int_equal(vec[63], 1);
	if (!pagemap_readable()) {
		/* The documented fallback: every page. */
		assert_int_equal(n, NPAGES);
		skip();
	}
	assert_int_equal(n, 3);
	for (int i = 0; i < NPAGES; i++)
		if (i != 3 && i != 40 && i != 63)
			assert_int_equal(vec[i], 0);
	munmap(ram, NPAGES * PG);
}

/* 80 MB of RAM, read from the page map in several pieces (8192 pages
 * each): the pages either side of each piece's edge. */
static void test_populated_across_reads(void **st)
{
	(void)st;
	enum { N = 20000 };
	static const uint64_t touched[] = { 0, 8191, 8192, 16383, 16384, 19999 };
	struct guest_mem gm;
	uint8_t *ram = map_ram((uint64_t)N * PG);
	uint8_t *vec = malloc(N);
	assert_non_null(vec);
	gm_layout(&gm, ram, (uint64_t)N * PG);
	for (size_t i = 0; i < sizeof(touched) / sizeof(touched[0]); i++)
		ram[touched[i] * PG + i] = (uint8_t)(i + 1);
	uint64_t n = gm_populated(&gm, vec);
	for (size_t i = 0; i < sizeof(touched) / sizeof(touched[0]); i++)
		assert_int_equal(vec[touched[i]], 1);
	if (!pagemap_readable()) {
		assert_int_equal(n, N);
		free(vec);
		munmap(ram, (uint64_t)N * PG);
		skip();
	}
	assert_int_equal(n, sizeof(touched) / sizeof(touched[0]));
	free(vec);
	munmap(ram, (uint64_t)N * PG);
}

/* A status file with `text` in it, at a fresh path (written into path). */
static void status_file(char *path, size_t n, const char *text)
{
	snprintf(path, n, "/tmp/test_mem_digest.status.XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void test_swap_kib(void **st)
{
	(void)st;
	static const struct { const char *text; int rc; uint64_t kib; } cases[] = {
		{ "Name:\tdetvm\nVmRSS:\t  1234 kB\nVmSwap:\t       0 kB\nThreads:\t1\n", 0, 0 },
		{ "VmSwap:\t      12 kB\n", 0, 12 },
		{ "Name:\tx\nVmSwap: 4096 kB\n", 0, 4096 },
		{ "Name:\tx\nThreads:\t1\n", -1, 0 },		/* no line (a kernel thread) */
		{ "Name:\tx\nVmSwap:\t kB\n", -1, 0 },		/* no number */
		{ "Name:\tx\nVmSwap:\t-1 kB\n", -1, 0 },
		{ "Name:\tx\nVmSwap:\t12 MB\n", -1, 0 },		/* not the unit it has */
		{ "Name:\tx\nXVmSwap:\t0 kB\n", -1, 0 },		/* not at a line's start */
		{ "", -1, 0 },
	};
	char path[64];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t kib = 99;
		status_file(path, sizeof(path), cases[i].text);
		assert_int_equal(gm_swap_kib(path, &kib), cases[i].rc);
		if (cases[i].rc == 0)
			assert_int_equal(kib, cases[i].kib);
		unlink(path);
	}
	uint64_t kib;
	assert_int_equal(gm_swap_kib("/nonexistent/status", &kib), -1);
	/* This process's own: readable and a number. */
	assert_int_equal(gm_swap_kib("/proc/self/status", &kib), 0);
}

/*
 * mincore's answer is taken only while nothing is in swap; otherwise (or
 * when VmSwap cannot be read) the page map's.  Both give the same map of
 * memory that was never swapped: the pages written, and a page only read
 * (mapped, to the shared zero page) besides.
 */
static void test_populated_sources(void **st)
{
	(void)st;
	static const struct { const char *text; enum gm_map_source src; } cases[] = {
		{ "VmSwap:\t       0 kB\n", GM_MAP_MINCORE },
		{ "VmSwap:\t      12 kB\n", GM_MAP_PAGEMAP },
		{ "Threads:\t1\n", GM_MAP_PAGEMAP },
	};
	struct guest_mem gm;
	uint8_t *ram = map_ram(NPAGES * PG);
	uint8_t vec[NPAGES];
	char path[64];
	gm_layout(&gm, ram, NPAGES * PG);
	ram[0] = 1;
	ram[17 * PG + 5] = 2;
	volatile uint8_t r = ram[30 * PG];	/* read only */
	(void)r;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum gm_map_source src;
		status_file(path, sizeof(path), cases[i].text);
		memset(vec, 0xee, sizeof(vec));
		uint64_t n = gm_populated_from(&gm, vec, path, &src);
		unlink(path);
		if (cases[i].src == GM_MAP_PAGEMAP && !pagemap_readable()) {
			assert_int_equal(src, GM_MAP_ALL);
			continue;
		}
		assert_int_equal(src, cases[i].src);
		assert_int_equal(n, 3);
		for (int p = 0; p < NPAGES; p++)
			assert_int_equal(vec[p], p == 0 || p == 17 || p == 30);
	}
	/* Not whole pages: mincore is not asked (it would write a byte past
	 * the map). */
	struct guest_mem part;
	gm_layout(&part, ram, 3 * PG + 100);
	enum gm_map_source src;
	status_file(path, sizeof(path), "VmSwap:\t0 kB\n");
	gm_populated_from(&part, vec, path, &src);
	unlink(path);
	assert_int_not_equal(src, GM_MAP_MINCORE);
	munmap(ram, NPAGES * PG);
}

/* FULL is XXH3-128 of all of RAM, however much of it was never touched. */
static void test_full_is_plain_xxh3(void **st)
{
	(void)st;
	struct guest_mem gm;
	uint8_t *ram = map_ram(NPAGES * PG);
	uint64_t lo, hi;
	gm_layout(&gm, ram, NPAGES * PG);
	memcpy(ram + 5 * PG + 100, "detvm", 5);
	ram[NPAGES * PG - 1] = 0xff;
	assert_int_equal(mem_digest(&gm, MEM_DIGEST_FULL, &lo, &hi), 0);
	XXH128_hash_t want = XXH3_128bits(ram, NPAGES * PG);
	assert_int_equal(lo, want.low64);
	assert_int_equal(hi, want.high64);
	munmap(ram, NPAGES * PG);
}

/* The definition in mem_digest.h, written out independently. */
static void sparse_reference(const uint8_t *ram, uint64_t npages, uint64_t (*gpa_of)(uint64_t),
			     uint64_t *lo, uint64_t *hi)
{
	size_t cap = (size_t)npages * (8 + PG), len = 0;
	uint8_t *buf = malloc(cap);
	static const uint8_t zero[PG];
	assert_non_null(buf);
	for (uint64_t pg = 0; pg < npages; pg++) {
		if (memcmp(ram + pg * PG, zero, PG) == 0)
			continue;
		uint64_t a = gpa_of(pg);
		for (int i = 0; i < 8; i++)
			buf[len++] = (uint8_t)(a >> (8 * i));
		memcpy(buf + len, ram + pg * PG, PG);
		len += PG;
	}
	XXH128_hash_t h = XXH3_128bits(buf, len);
	*lo = h.low64;
	*hi = h.high64;
	free(buf);
}

static uint64_t identity_gpa(uint64_t pg)
{
	return pg * PG;
}

static void test_sparse_definition(void **st)
{
	(void)st;
	struct guest_mem gm;
	uint8_t *ram = map_ram(NPAGES * PG);
	uint64_t lo, hi, rlo, rhi;
	gm_layout(&gm, ram, NPAGES * PG);
	ram[0] = 1;
	memcpy(ram + 9 * PG + 4000, "pattern", 7);
	ram[33 * PG] = 0;          /* touched, still zero: not in the digest */
	assert_int_equal(mem_digest(&gm, MEM_DIGEST_SPARSE, &lo, &hi), 0);
	sparse_reference(ram, NPAGES, identity_gpa, &rlo, &rhi);
	assert_int_equal(lo, rlo);
	assert_int_equal(hi, rhi);

	/* A page written and zeroed again digests like one never touched. */
	uint8_t *ram2 = map_ram(NPAGES * PG);
	struct guest_mem gm2;
	uint64_t lo2, hi2;
	gm_layout(&gm2, ram2, NPAGES * PG);
	ram2[0] = 1;
	memcpy(ram2 + 9 * PG + 4000, "pattern", 7);
	memset(ram2 + 50 * PG, 0x55, PG);
	memset(ram2 + 50 * PG, 0, PG);
	assert_int_equal(mem_digest(&gm2, MEM_DIGEST_SPARSE, &lo2, &hi2), 0);
	assert_int_equal(lo2, lo);
	assert_int_equal(hi2, hi);

	/* The same bytes one page further on are another memory. */
	memset(ram2 + 9 * PG, 0, PG);
	memcpy(ram2 + 10 * PG + 4000, "pattern", 7);
	assert_int_equal(mem_digest(&gm2, MEM_DIGEST_SPARSE, &lo2, &hi2), 0);
	assert_true(lo2 != lo || hi2 != hi);
	/* One changed byte is another memory. */
	memset(ram2 + 10 * PG, 0, PG);
	memcpy(ram2 + 9 * PG + 4000, "pattern", 7);
	ram2[0] = 2;
	assert_int_equal(mem_digest(&gm2, MEM_DIGEST_SPARSE, &lo2, &hi2), 0);
	assert_true(lo2 != lo || hi2 != hi);
	ram2[0] = 1;
	assert_int_equal(mem_digest(&gm2, MEM_DIGEST_SPARSE, &lo2, &hi2), 0);
	assert_int_equal(lo2, lo);
	assert_int_equal(hi2, hi);
	munmap(ram, NPAGES * PG);
	munmap(ram2, NPAGES * PG);
}

/* Above the 32-bit hole a page's address is its guest-physical one. */
static void test_sparse_high_memory(void **st)
{
	(void)st;
	struct guest_mem gm;
	uint64_t size = GM_HOLE_START + 4 * PG;
	uint8_t *ram = map_ram(size);
	uint64_t lo, hi, rlo, rhi;
	gm_layout(&gm, ram, size);
	ram[gm.low_size + 2 * PG + 1] = 7; /* gpa 4 GiB + 8 KiB + 1 */
	ram[5] = 1;
	assert_int_equal(mem_digest(&gm, MEM_DIGEST_SPARSE, &lo, &hi), 0);
	/* The reference over only the populated pages, with their gpas. */
	uint8_t buf[2 * (8 + PG)];
	size_t len = 0;
	uint64_t gpas[2] = { 0, GM_HIGH_START + 2 * PG };
	const uint8_t *pages[2] = { ram, ram + gm.low_size + 2 * PG };
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < 8; i++)
			buf[len++] = (uint8_t)(gpas[k] >> (8 * i));
		memcpy(buf + len, pages[k], PG);
		len += PG;
	}
	XXH128_hash_t h = XXH3_128bits(buf, len);
	rlo = h.low64;
	rhi = h.high64;
	assert_int_equal(lo, rlo);
	assert_int_equal(hi, rhi);
	munmap(ram, size);
}

static void test_names(void **st)
{
	(void)st;
	enum mem_digest_kind k;
	assert_int_equal(mem_digest_parse(mem_digest_name(MEM_DIGEST_FULL), &k), 0);
	assert_int_equal(k, MEM_DIGEST_FULL);
	assert_int_equal(mem_digest_parse(mem_digest_name(MEM_DIGEST_SPARSE), &k), 0);
	assert_int_equal(k, MEM_DIGEST_SPARSE);
	assert_int_equal(mem_digest_parse("xxh3-64", &k), -1);
	assert_int_equal(mem_digest_parse("", &k), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_populated),
		cmocka_unit_test(test_populated_across_reads),
		cmocka_unit_test(test_swap_kib),
		cmocka_unit_test(test_populated_sources),
		cmocka_unit_test(test_full_is_plain_xxh3),
		cmocka_unit_test(test_sparse_definition),
		cmocka_unit_test(test_sparse_high_memory),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
