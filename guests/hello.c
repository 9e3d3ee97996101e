/* hello - a greeting, the command line and the memory size. */
#include "guests/rt/rt.h"

const char *rt_guest_name = "hello";

void guest_main(struct machine *m)
{
	uint64_t h = FNV64_INIT;
	rt_printf("Hello from the detvm test guest!\n");
	rt_printf("hello: command line: \"%s\"\n", m->cmdline);
	rt_printf("hello: memory: %lu MiB\n", m->mem_size >> 20);
	h = fnv1a64_str(h, m->cmdline);
	h = fnv1a64_u64(h, m->mem_size >> 20);
	rt_pass(h);
}
