/*
 * dirty - writes one qword into each of dirty.pages pages (default 655:
 * 1% of 256 MiB) spread over RAM above 16 MiB, then prints a line; repeats
 * dirty.rounds times (default 20).  The checkpoint benchmark records it
 * with a checkpoint after every round, so that each incremental checkpoint
 * of a large guest has a known, small dirty set.
 */
#include "guests/rt/rt.h"

const char *rt_guest_name = "dirty";

#define AREA_START (16ULL << 20)

void guest_main(struct machine *m)
{
	uint64_t h = FNV64_INIT;
	uint64_t pages = rt_cmdline_uint("dirty.pages", 655);
	uint64_t rounds = rt_cmdline_uint("dirty.rounds", 20);
	uint64_t top = m->mem_size < (1ULL << 30) ? m->mem_size : (1ULL << 30);

	if (top <= AREA_START + 4096 || pages == 0)
		rt_fail("dirty: needs more than 16 MiB of RAM and dirty.pages > 0");
	uint64_t span = (top - AREA_START) / 4096;
	if (pages > span)
		pages = span;
	uint64_t stride = span / pages;
	for (uint64_t r = 0; r < rounds; r++) {
		for (uint64_t i = 0; i < pages; i++) {
			volatile uint64_t *p = (volatile uint64_t *)(AREA_START + (i * stride) * 4096 + (r % 512) * 8);
			*p = r * 0x100000001ULL + i;
		}
		h = fnv1a64_u64(h, r);
		rt_printf("dirty: round %lu: %lu pages written\n", r, pages);
	}
	rt_pass(h);
}
