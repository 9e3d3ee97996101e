/*
 * fault - exceptions the guest recovers from:
 *  1. a read of an address whose 2 MiB page this guest made non-present in
 *     its own page tables: the #PF handler reports CR2 and the error code,
 *     maps the page (to RAM holding a known value) and the read is retried;
 *  2. a write to another non-present page: same, error code has W set;
 *  3. a read of a non-canonical address: #GP, skipped with rt_fixup;
 *  4. a division by zero: #DE, skipped with rt_fixup.
 * Then prints "survived".  The checksum covers vectors, error codes, CR2s.
 */
#include "guests/rt/rt.h"

const char *rt_guest_name = "fault";

#define HOLE      0x80000000ULL /* 2 GiB: PD 2, entry 0 */
#define HOLE2     0x80200000ULL /* PD 2, entry 1 */
#define BACKING   0x00400000ULL /* 4 MiB: RAM this guest does not use */
#define BACKING2  0x00600000ULL

static uint64_t h = FNV64_INIT;
static volatile int pf_count;
static volatile uint64_t pf_err, pf_cr2;

static int pf_handler(struct trapframe *tf)
{
	uint64_t cr2 = read_cr2();
	uint64_t *pde;
	if (cr2 >= HOLE && cr2 < HOLE + 0x200000)
		pde = &rt_pd[2][0];
	else if (cr2 >= HOLE2 && cr2 < HOLE2 + 0x200000)
		pde = &rt_pd[2][1];
	else
		return 0; /* not ours: the runtime reports it */
	if (*pde & 1)
		return 0; /* already mapped: a second fault would loop */
	pf_count++;
	pf_err = tf->err;
	pf_cr2 = cr2;
	*pde = (pde == &rt_pd[2][0] ? BACKING : BACKING2) | 0x83;
	invlpg(cr2);
	return 1; /* retry the instruction */
}

void guest_main(struct machine *m)
{
	(void)m;
	rt_set_exception_handler(14, pf_handler);

	/* 1. read fault on a page made non-present */
	*(volatile uint64_t *)(uintptr_t)(BACKING + 0x123 * 8) = 0x1122334455667788ULL;
	rt_pd[2][0] = 0;
	rt_pd[2][1] = 0;
	invlpg(HOLE);
	invlpg(HOLE2);
	uint64_t v = *(volatile uint64_t *)(uintptr_t)(HOLE + 0x123 * 8);
	rt_printf("fault: read #PF cr2=%lx err=%lx, mapped, read %lx\n", pf_cr2, pf_err, v);
	if (pf_count != 1)
		rt_fail("read: %d page faults, wanted 1", pf_count);
	if (pf_cr2 != HOLE + 0x123 * 8 || pf_err != 0)
		rt_fail("read: cr2=%lx err=%lx", pf_cr2, pf_err);
	if (v != 0x1122334455667788ULL)
		rt_fail("read %lx through the new mapping", v);
	h = fnv1a64_u64(fnv1a64_u64(h, pf_cr2), pf_err);

	/* 2. write fault */
	*(volatile uint32_t *)(uintptr_t)(HOLE2 + 0x1ffc) = 0xcafef00d;
	rt_printf("fault: write #PF cr2=%lx err=%lx, mapped\n", pf_cr2, pf_err);
	if (pf_count != 2)
		rt_fail("write: %d page faults in all, wanted 2", pf_count);
	if (pf_cr2 != HOLE2 + 0x1ffc || pf_err != 2)
		rt_fail("write: cr2=%lx err=%lx", pf_cr2, pf_err);
	if (*(volatile uint32_t *)(uintptr_t)(BACKING2 + 0x1ffc) != 0xcafef00d)
		rt_fail("write did not reach the backing page");
	h = fnv1a64_u64(fnv1a64_u64(h, pf_cr2), pf_err);

	/* 3. non-canonical address: #GP(0), skipped */
	uint64_t out = 0;
	int r = rt_probe_read64(0x8000000000000000ULL, &out);
	rt_printf("fault: non-canonical read -> vector %lu err=%lx, skipped\n", rt_fixup.vec,
		  rt_fixup.err);
	if (r != -1 || rt_fixup.vec != 13 || rt_fixup.err != 0)
		rt_fail("non-canonical read: r=%d vec=%lu err=%lx", r, rt_fixup.vec, rt_fixup.err);
	h = fnv1a64_u64(fnv1a64_u64(h, rt_fixup.vec), rt_fixup.err);

	/* 4. divide by zero: #DE, skipped */
	uint64_t q;
	__asm__ volatile("leaq 1f(%%rip), %%rax\n\t"
			 "movq %%rax, rt_fixup(%%rip)\n\t"
			 "movl $1, %%eax\n\t"
			 "xorl %%edx, %%edx\n\t"
			 "xorl %%ecx, %%ecx\n\t"
			 "divq %%rcx\n\t"
			 "1:"
			 : "=a"(q) :: "rcx", "rdx", "memory");
	(void)q;
	rt_printf("fault: divide by zero -> vector %lu, skipped\n", rt_fixup.vec);
	if (rt_fixup.vec != 0 || rt_fixup.count != 2)
		rt_fail("divide by zero: vec=%lu count=%lu", rt_fixup.vec, rt_fixup.count);
	h = fnv1a64_u64(h, rt_fixup.vec);

	rt_printf("fault: survived\n");
	rt_pass(h);
}
