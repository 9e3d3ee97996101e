/*
 * tsc - act on the time stamp counter, which no VMM here can trap: the
 * number of port writes (to the COM1 scratch register) and of lines
 * printed depends on the TSC's low bits.  A replay that does not control
 * the TSC diverges here, and must detect it.  Also checks that the TSC
 * moves forward.
 */
#include "guests/rt/rt.h"

const char *rt_guest_name = "tsc";

void guest_main(struct machine *m)
{
	(void)m;
	uint64_t t0 = rdtsc();
	unsigned writes = 1 + (unsigned)((t0 >> 4) & 7);
	for (unsigned i = 0; i < writes; i++)
		outb(DEV_COM1_PORT + 7, (uint8_t)(0xa0 + i));
	uint8_t scr = inb(DEV_COM1_PORT + 7);
	rt_printf(RT_TD "tsc: %016lx -> %u scratch-register writes\n", t0, writes);
	for (unsigned i = 0; i < (unsigned)(t0 >> 8 & 3); i++)
		rt_printf(RT_TD "tsc: extra line %u\n", i);
	uint64_t t1 = rdtsc();
	rt_printf(RT_TD "tsc: %016lx later, delta %lu\n", t1, t1 - t0);
	if (scr != (uint8_t)(0xa0 + writes - 1))
		rt_fail("scratch register reads %02x, wrote %02x last", scr, 0xa0 + writes - 1);
	if (t1 <= t0)
		rt_fail("TSC went from %lx to %lx", t0, t1);
	rt_printf("tsc: advances; scratch register ok\n");
	rt_pass(fnv1a64_str(FNV64_INIT, "tsc"));
}
