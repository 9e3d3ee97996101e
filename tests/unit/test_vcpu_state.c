/*
 * test_vcpu_state.c - unit tests for the vCPU state blob (vmm/vcpu_state.c):
 * save from one VM, restore into a fresh one, compare through KVM; run a
 * guest after a restore; damaged blobs; decoding without KVM.
 *
 * Needs /dev/kvm (or $DETVM_KVM_DEV); without it every test is skipped with
 * the reason printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <xxhash.h>

#include "vmm/kvm.h"
#include "vmm/vcpu_state.h"

#define RAM_SIZE  (2u << 20)
#define GDT_GPA   0x500u
#define PML4_GPA  0x1000u
#define PDPT_GPA  0x2000u
#define PD_GPA    0x3000u
#define CODE_GPA  0x10000u
#define STACK_GPA 0x8000u

static char no_kvm[300]; /* why the tests are skipped, or "" */

#define NEED_KVM()                                                        \
	do {                                                              \
		if (no_kvm[0]) {                                          \
			print_message("[  SKIP    ] %s\n", no_kvm);       \
			skip();                                           \
		}                                                         \
	} while (0)

struct tvm {
	struct kvm k;
	uint8_t *ram;
};

static void tvm_create(struct tvm *t)
{
	char err[400];

	t->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(t->ram != MAP_FAILED);
	/* As vm_create() does. */
	if (kvm_open(&t->k, err, sizeof(err)) ||
	    kvm_set_memory(&t->k, 0, 0, RAM_SIZE, t->ram, false, err, sizeof(err)) ||
	    kvm_create_vcpu(&t->k, err, sizeof(err)) ||
	    kvm_setup_cpuid(&t->k, NULL, 0, err, sizeof(err)) ||
	    kvm_setup_msr_filter(&t->k, MSR_POLICY_CURRENT, err, sizeof(err)))
		fail_msg("creating a VM: %s", err);
}

static void tvm_destroy(struct tvm *t)
{
	kvm_close(&t->k);
	munmap(t->ram, RAM_SIZE);
}

static void put_u64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

/* Identity map of the first 2 MiB, a GDT, and `code` at CODE_GPA; enter it
 * in 64-bit mode through the project's boot path (kvm_set_boot_state). */
static void guest_setup(struct tvm *t, const uint8_t *code, size_t n)
{
	char err[400];

	put_u64(t->ram + PML4_GPA, PDPT_GPA | 3);
	put_u64(t->ram + PDPT_GPA, PD_GPA | 3);
	put_u64(t->ram + PD_GPA, 0x83); /* 2 MiB page at 0, P RW PS */
	put_u64(t->ram + GDT_GPA + 0, 0);
	put_u64(t->ram + GDT_GPA + 8, 0x00af9a000000ffffULL);  /* code64 */
	put_u64(t->ram + GDT_GPA + 16, 0x00cf92000000ffffULL); /* data */
	memcpy(t->ram + CODE_GPA, code, n);
	struct boot_cpu cpu = {
		.mode = BOOT_NATIVE64, .rip = CODE_GPA, .rsp = STACK_GPA, .rflags = 2,
		.cr3 = PML4_GPA, .gdt_base = GDT_GPA, .gdt_limit = 23,
		.code_sel = 8, .data_sel = 0x10,
	};
	if (kvm_set_boot_state(&t->k, &cpu, err, sizeof(err)))
		fail_msg("kvm_set_boot_state: %s", err);
}

static void get_regs(struct tvm *t, struct kvm_regs *r)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(ioctl(t->k.vcpu_fd, KVM_GET_REGS, r), 0);
}

static void get_sregs(struct tvm *t, struct kvm_sregs *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(ioctl(t->k.vcpu_fd, KVM_GET_SREGS, s), 0);
}

static size_t xsave_size(struct tvm *t)
{
	int r = ioctl(t->k.vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	if (r > 0)
		return (size_t)r < sizeof(struct kvm_xsave) ? sizeof(struct kvm_xsave) : (size_t)r;
	return ioctl(t->k.vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0 ? sizeof(struct kvm_xsave) : 0;
}

static struct kvm_xsave *get_xsave(struct tvm *t, size_t sz)
{
	struct kvm_xsave *x = calloc(1, sz);
	assert_non_null(x);
	bool v2 = ioctl(t->k.vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2) > 0;
	assert_int_equal(ioctl(t->k.vcpu_fd, v2 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, x), 0);
	return x;
}

static const struct kvm_cpuid_entry2 *cpuid_leaf(struct tvm *t, uint32_t fn, uint32_t idx)
{
	for (uint32_t i = 0; i < t->k.cpuid.hdr.nent; i++)
		if (t->k.cpuid.e[i].function == fn && t->k.cpuid.e[i].index == idx)
			return &t->k.cpuid.e[i];
	return NULL;
}

static uint8_t *save(struct tvm *t, size_t *len)
{
	char err[400];
	uint8_t *b = NULL;
	if (vcpu_state_save(&t->k, &b, len, err, sizeof(err)))
		fail_msg("vcpu_state_save: %s", err);
	assert_non_null(b);
	return b;
}

static void restore(struct tvm *t, const uint8_t *b, size_t len)
{
	char err[400];
	if (vcpu_state_restore(&t->k, b, len, err, sizeof(err)))
		fail_msg("vcpu_state_restore: %s", err);
}

/* ---- blob surgery (for damaged blobs) ---------------------------------- */

struct sec {
	uint32_t tag, len;
	const uint8_t *data;
};

/* Split a well-formed blob into its sections. */
static size_t split(const uint8_t *b, size_t len, struct sec *s, size_t max)
{
	size_t n = 0, off = 8;
	while (off < len - 8) {
		assert_true(n < max);
		memcpy(&s[n].tag, b + off, 4);
		memcpy(&s[n].len, b + off + 4, 4);
		s[n].data = b + off + 8;
		off += 8 + s[n].len;
		n++;
	}
	assert_int_equal(off, len - 8);
	return n;
}

/* Build a blob with a valid checksum from sections. */
static uint8_t *build(const struct sec *s, size_t n, uint32_t version, size_t *len)
{
	size_t total = 8 + 8;
	for (size_t i = 0; i < n; i++)
		total += 8 + s[i].len;
	uint8_t *b = malloc(total), *p = b;
	assert_non_null(b);
	memcpy(p, "DVCS", 4);
	memcpy(p + 4, &version, 4);
	p += 8;
	for (size_t i = 0; i < n; i++) {
		memcpy(p, &s[i].tag, 4);
		memcpy(p + 4, &s[i].len, 4);
		memcpy(p + 8, s[i].data, s[i].len);
		p += 8 + s[i].len;
	}
	uint64_t sum = XXH3_64bits(b, total - 8);
	memcpy(p, &sum, 8);
	*len = total;
	return b;
}

static const struct sec *find_sec(const struct sec *s, size_t n, uint32_t tag)
{
	for (size_t i = 0; i < n; i++)
		if (s[i].tag == tag)
			return &s[i];
	return NULL;
}

/* ---- (a) distinctive state survives save + restore into a fresh VM ----- */

static const struct { uint32_t index; uint64_t value; } test_msrs[] = {
	{ 0x174, 0x10 },                        /* IA32_SYSENTER_CS */
	{ 0x175, 0xffff888012345000ULL },       /* IA32_SYSENTER_ESP */
	{ 0x176, 0xffffffff81001000ULL },       /* IA32_SYSENTER_EIP */
	{ 0x277, 0x0007040600070106ULL },       /* IA32_PAT */
	{ 0xc0000081, 0x0023001000000000ULL },  /* STAR */
	{ 0xc0000082, 0xffffffff81a00000ULL },  /* LSTAR */
	{ 0xc0000083, 0xffffffff81a00100ULL },  /* CSTAR */
	{ 0xc0000084, 0x47700 },                /* SFMASK */
	{ 0xc0000102, 0xffff88807fc00000ULL },  /* KERNEL_GS_BASE */
};
#define N_TEST_MSRS (sizeof(test_msrs) / sizeof(test_msrs[0]))

struct probe { bool events_exception; bool avx; uint64_t xcr0; };

static void set_distinctive_state(struct tvm *t, struct probe *pr)
{
	static const uint8_t hlt[] = { 0xf4 };
	guest_setup(t, hlt, sizeof(hlt));
	memset(pr, 0, sizeof(*pr));

	/* Segment and control registers: 64-bit mode (boot state) plus more. */
	struct kvm_sregs s;
	get_sregs(t, &s);
	s.fs.base = 0x7f0000001000ULL;
	s.gs.base = 0xffff800000002000ULL;
	s.idt.base = 0x3000;
	s.idt.limit = 0xfff;
	s.tr = (struct kvm_segment){ .base = 0x4000, .limit = 0x67, .selector = 0x18,
				     .type = 11, .present = 1 };
	s.cr8 = 7;
	s.efer |= 1; /* SCE */
	const struct kvm_cpuid_entry2 *l1 = cpuid_leaf(t, 1, 0);
	if (l1 && (l1->ecx & (1u << 26)))
		s.cr4 |= 1u << 18; /* OSXSAVE */
	assert_int_equal(ioctl(t->k.vcpu_fd, KVM_SET_SREGS, &s), 0);

	struct kvm_regs r;
	get_regs(t, &r);
	__u64 *g = &r.rax;
	for (int i = 0; i < 16; i++) /* rax..r15 */
		g[i] = 0x0101010101010101ULL * (uint64_t)(i + 1) ^ 0x8000000000000000ULL;
	r.rsp = STACK_GPA - 0x18;
	r.rip = CODE_GPA;
	r.rflags = 0x246;
	assert_int_equal(ioctl(t->k.vcpu_fd, KVM_SET_REGS, &r), 0);

	/* XSAVE: x87 control word, MXCSR, XMM0-15 (and the YMM upper halves). */
	size_t xsz = xsave_size(t);
	assert_true(xsz >= 4096);
	struct kvm_xsave *x = get_xsave(t, xsz);
	uint8_t *a = (uint8_t *)x->region;
	uint16_t fcw = 0x027f;
	uint32_t mxcsr = 0x7f80; /* all masked, round toward zero */
	memcpy(a + 0, &fcw, 2);
	memcpy(a + 24, &mxcsr, 4);
	for (int i = 0; i < 256; i++)
		a[160 + i] = (uint8_t)(i ^ 0xa5);
	uint64_t bv;
	memcpy(&bv, a + 512, 8);
	bv |= 3;
	const struct kvm_cpuid_entry2 *d0 = cpuid_leaf(t, 0xd, 0), *d2 = cpuid_leaf(t, 0xd, 2);
	pr->xcr0 = 3;
	if (d0 && (d0->eax & 4) && d2 && d2->eax == 256 && d2->ebx + 256 <= xsz) {
		pr->avx = true;
		pr->xcr0 |= 4;
		for (int i = 0; i < 256; i++)
			a[d2->ebx + i] = (uint8_t)(i * 7 + 1);
		bv |= 4;
	}
	memcpy(a + 512, &bv, 8);
	assert_int_equal(ioctl(t->k.vcpu_fd, KVM_SET_XSAVE, x), 0);
	free(x);

	if (ioctl(t->k.vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0) {
		struct kvm_xcrs xc = { .nr_xcrs = 1 };
		xc.xcrs[0].xcr = 0;
		xc.xcrs[0].value = pr->xcr0;
		assert_int_equal(ioctl(t->k.vcpu_fd, KVM_SET_XCRS, &xc), 0);
	}

	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[N_TEST_MSRS];
	} m;
	memset(&m, 0, sizeof(m));
	m.h.nmsrs = N_TEST_MSRS;
	for (size_t i = 0; i < N_TEST_MSRS; i++) {
		m.e[i].index = test_msrs[i].index;
		m.e[i].data = test_msrs[i].value;
	}
	assert_int_equal(ioctl(t->k.vcpu_fd, KVM_SET_MSRS, &m), (int)N_TEST_MSRS);

	struct kvm_debugregs dr;
	memset(&dr, 0, sizeof(dr));
	assert_int_equal(ioctl(t->k.vcpu_fd, KVM_GET_DEBUGREGS, &dr), 0);
	dr.db[0] = 0x1000;
	dr.db[1] = 0x2000;
	dr.db[2] = 0xffffffff81000000ULL;
	dr.db[3] = 0x4000;
	dr.dr6 = 0xffff0ff1;
	dr.dr7 = 0x405; /* L0, L1 */
	assert_int_equal(ioctl(t->k.vcpu_fd, KVM_SET_DEBUGREGS, &dr), 0);

	/* Events last: an injected #GP with error code, a pending (masked) NMI,
	 * a MOV-SS interrupt shadow. */
	struct kvm_vcpu_events ev;
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(ioctl(t->k.vcpu_fd, KVM_GET_VCPU_EVENTS, &ev), 0);
	ev.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW;
	ev.nmi.pending = 1;
	ev.nmi.masked = 1;
	ev.interrupt.shadow = KVM_X86_SHADOW_INT_MOV_SS;
	ev.exception.injected = 1;
	ev.exception.nr = 13;
	ev.exception.has_error_code = 1;
	ev.exception.error_code = 0x18;
	if (ioctl(t->k.vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) == 0) {
		pr->events_exception = true;
	} else {
		print_message("note: KVM refused an injected exception in KVM_SET_VCPU_EVENTS (%s); NMI only\n",
			      strerror(errno));
		ev.exception.injected = 0;
		ev.exception.nr = 0;
		ev.exception.has_error_code = 0;
		ev.exception.error_code = 0;
		assert_int_equal(ioctl(t->k.vcpu_fd, KVM_SET_VCPU_EVENTS, &ev), 0);
	}
}

/* Everything KVM reports about the vCPU. */
struct full {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	struct kvm_xsave *xsave;
	size_t xsz;
	struct kvm_xcrs xcrs;
	struct kvm_vcpu_events events;
	struct kvm_debugregs dr;
	struct kvm_mp_state mp;
};

static void get_full(struct tvm *t, struct full *f)
{
	memset(f, 0, sizeof(*f));
	get_regs(t, &f->regs);
	get_sregs(t, &f->sregs);
	assert_int_equal(ioctl(t->k.vcpu_fd, KVM_GET_FPU, &f->fpu), 0);
	f->xsz = xsave_size(t);
	f->xsave = get_xsave(t, f->xsz);
	if (ioctl(t->k.vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0)
		assert_int_equal(ioctl(t->k.vcpu_fd, KVM_GET_XCRS, &f->xcrs), 0);
	assert_int_equal(ioctl(t->k.vcpu_fd, KVM_GET_VCPU_EVENTS, &f->events), 0);
	assert_int_equal(ioctl(t->k.vcpu_fd, KVM_GET_DEBUGREGS, &f->dr), 0);
	assert_int_equal(ioctl(t->k.vcpu_fd, KVM_GET_MP_STATE, &f->mp), 0);
}

static void test_roundtrip_fresh_vm(void **st)
{
	(void)st;
	NEED_KVM();
	struct tvm v1, v2;
	struct probe pr;
	struct full f1, f2;
	char err[400];

	tvm_create(&v1);
	set_distinctive_state(&v1, &pr);
	size_t len1;
	uint8_t *b1 = save(&v1, &len1);
	get_full(&v1, &f1);

	tvm_create(&v2);
	restore(&v2, b1, len1);
	get_full(&v2, &f2);

	/* Field by field, through KVM's own view of the fresh vCPU. */
	assert_memory_equal(&f1.regs, &f2.regs, sizeof(f1.regs));
	assert_int_equal(f2.regs.rax, 0x8101010101010101ULL);
	assert_int_equal(f2.regs.r15, 0x1010101010101010ULL ^ 0x8000000000000000ULL);
	assert_int_equal(f2.regs.rip, CODE_GPA);
	assert_int_equal(f2.regs.rflags, 0x246);

	assert_memory_equal(&f1.sregs.cs, &f2.sregs.cs, sizeof(f1.sregs.cs));
	assert_memory_equal(&f1.sregs.tr, &f2.sregs.tr, sizeof(f1.sregs.tr));
	assert_memory_equal(&f1.sregs, &f2.sregs, sizeof(f1.sregs));
	assert_int_equal(f2.sregs.cs.l, 1);
	assert_int_equal(f2.sregs.cr0, 0x80050033);
	assert_int_equal(f2.sregs.cr3, PML4_GPA);
	assert_int_equal(f2.sregs.cr8, 7);
	assert_int_equal(f2.sregs.efer, 0x501);
	assert_int_equal(f2.sregs.fs.base, 0x7f0000001000ULL);
	assert_int_equal(f2.sregs.gs.base, 0xffff800000002000ULL);
	assert_int_equal(f2.sregs.tr.base, 0x4000);
	assert_int_equal(f2.sregs.idt.limit, 0xfff);
	/* KVM_RUN starts from run->cr8 without an in-kernel LAPIC. */
	assert_int_equal(v2.k.run->cr8, 7);

	/* KVM_GET_FPU never reports MXCSR (the kernel copies every fxsave
	 * field but that one): it is checked in the XSAVE area below. */
	assert_memory_equal(&f1.fpu, &f2.fpu, sizeof(f1.fpu));
	assert_int_equal(f2.fpu.fcw, 0x027f);
	assert_int_equal(f2.fpu.xmm[0][1], 1 ^ 0xa5);
	assert_int_equal(f2.fpu.xmm[15][15], 255 ^ 0xa5);
	assert_int_equal(f1.xsz, f2.xsz);
	assert_memory_equal(f1.xsave, f2.xsave, f1.xsz);
	uint32_t mxcsr;
	memcpy(&mxcsr, (uint8_t *)f2.xsave->region + 24, 4);
	assert_int_equal(mxcsr, 0x7f80);
	if (pr.avx) {
		const struct kvm_cpuid_entry2 *d2 = cpuid_leaf(&v2, 0xd, 2);
		assert_int_equal(((uint8_t *)f2.xsave->region)[d2->ebx + 5], 5 * 7 + 1);
	}

	assert_memory_equal(&f1.xcrs, &f2.xcrs, sizeof(f1.xcrs));
	if (ioctl(v2.k.vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0) {
		assert_int_equal(f2.xcrs.nr_xcrs, 1);
		assert_int_equal(f2.xcrs.xcrs[0].value, pr.xcr0);
	}

	assert_memory_equal(&f1.events, &f2.events, sizeof(f1.events));
	assert_int_equal(f2.events.nmi.pending, 1);
	assert_int_equal(f2.events.nmi.masked, 1);
	assert_int_equal(f2.events.interrupt.shadow, KVM_X86_SHADOW_INT_MOV_SS);
	if (pr.events_exception) {
		assert_int_equal(f2.events.exception.injected, 1);
		assert_int_equal(f2.events.exception.nr, 13);
		assert_int_equal(f2.events.exception.error_code, 0x18);
	}

	assert_memory_equal(&f1.dr, &f2.dr, sizeof(f1.dr));
	assert_int_equal(f2.dr.db[0], 0x1000);
	assert_int_equal(f2.dr.db[2], 0xffffffff81000000ULL);
	assert_int_equal(f2.dr.dr7 & 0xff, 0x05);
	assert_memory_equal(&f1.mp, &f2.mp, sizeof(f1.mp));
	assert_int_equal(f2.mp.mp_state, KVM_MP_STATE_RUNNABLE);

	/* MSRs: every one saved reads back the same from the fresh vCPU. */
	const uint8_t *md;
	uint32_t mlen, nm;
	assert_int_equal(vcpu_state_section(b1, len1, VCPU_STATE_MSRS, &md, &mlen, err, sizeof(err)), 0);
	memcpy(&nm, md, 4);
	assert_true(nm > N_TEST_MSRS);
	struct kvm_msrs *q = calloc(1, sizeof(*q) + nm * sizeof(struct kvm_msr_entry));
	assert_non_null(q);
	q->nmsrs = nm;
	for (uint32_t i = 0; i < nm; i++)
		memcpy(&q->entries[i].index, md + 4 + 16 * i, 4);
	assert_int_equal(ioctl(v2.k.vcpu_fd, KVM_GET_MSRS, q), (int)nm);
	for (uint32_t i = 0; i < nm; i++) {
		uint64_t want;
		memcpy(&want, md + 4 + 16 * i + 8, 8);
		if (q->entries[i].data != want)
			fail_msg("MSR 0x%x: saved 0x%llx, restored VM reads 0x%llx", q->entries[i].index,
				 (unsigned long long)want, (unsigned long long)q->entries[i].data);
		for (size_t j = 0; j < N_TEST_MSRS; j++)
			if (test_msrs[j].index == q->entries[i].index)
				assert_int_equal(q->entries[i].data, test_msrs[j].value);
	}
	for (size_t j = 0; j < N_TEST_MSRS; j++) {
		bool found = false;
		for (uint32_t i = 0; i < nm; i++)
			found |= q->entries[i].index == test_msrs[j].index;
		if (!found)
			fail_msg("MSR 0x%x is not in the blob", test_msrs[j].index);
	}
	free(q);

	/*
	 * The blob saved again from the restored VM is byte-for-byte the same.
	 * (No section needs an exception here: IA32_TSC, the one MSR whose
	 * value moves with time, is not saved, and nothing else in the state
	 * changes while the vCPU does not run.)
	 */
	size_t len2;
	uint8_t *b2 = save(&v2, &len2);
	assert_int_equal(len1, len2);
	assert_memory_equal(b1, b2, len1);

	free(f1.xsave);
	free(f2.xsave);
	free(b1);
	free(b2);
	tvm_destroy(&v1);
	tvm_destroy(&v2);
}

/* ---- (b) the guest continues after a restore --------------------------- */

static int run(struct tvm *t)
{
	int r;
	do
		r = ioctl(t->k.vcpu_fd, KVM_RUN, 0);
	while (r < 0 && (errno == EINTR || errno == EAGAIN));
	assert_int_equal(r, 0);
	return (int)t->k.run->exit_reason;
}

static uint32_t io_value(struct tvm *t)
{
	uint32_t v = 0;
	memcpy(&v, (uint8_t *)t->k.run + t->k.run->io.data_offset, t->k.run->io.size);
	return v;
}

static void test_guest_continues(void **st)
{
	(void)st;
	NEED_KVM();
	/* out 0xe9, eax ; hlt */
	static const uint8_t code[] = { 0xe7, 0xe9, 0xf4 };
	struct tvm v1, v2;

	tvm_create(&v1);
	guest_setup(&v1, code, sizeof(code));
	struct kvm_regs r;
	get_regs(&v1, &r);
	r.rax = 0xdeadbeef;
	assert_int_equal(ioctl(v1.k.vcpu_fd, KVM_SET_REGS, &r), 0);
	struct kvm_sregs s;
	get_sregs(&v1, &s);
	s.cr8 = 9;
	assert_int_equal(ioctl(v1.k.vcpu_fd, KVM_SET_SREGS, &s), 0);
	size_t len;
	uint8_t *b = save(&v1, &len);

	tvm_create(&v2);
	memcpy(v2.ram, v1.ram, RAM_SIZE);
	restore(&v2, b, len);
	assert_int_equal(run(&v2), KVM_EXIT_IO);
	assert_int_equal(v2.k.run->io.direction, KVM_EXIT_IO_OUT);
	assert_int_equal(v2.k.run->io.port, 0xe9);
	assert_int_equal(v2.k.run->io.size, 4);
	assert_int_equal(io_value(&v2), 0xdeadbeef);
	assert_int_equal(run(&v2), KVM_EXIT_HLT);
	get_regs(&v2, &r);
	assert_int_equal(r.rip, CODE_GPA + 3);
	get_sregs(&v2, &s);
	assert_int_equal(s.cr8, 9); /* not reset by KVM_RUN from run->cr8 */

	free(b);
	tvm_destroy(&v1);
	tvm_destroy(&v2);
}

/* A save taken at an IN exit (after the device filled in the value) holds
 * the completed instruction: RAX loaded, RIP past the IN. */
static void test_save_at_pending_in(void **st)
{
	(void)st;
	NEED_KVM();
	/* in eax, 0x60 ; out 0xe9, eax ; hlt */
	static const uint8_t code[] = { 0xe5, 0x60, 0xe7, 0xe9, 0xf4 };
	struct tvm v1, v2;

	tvm_create(&v1);
	guest_setup(&v1, code, sizeof(code));
	assert_int_equal(run(&v1), KVM_EXIT_IO);
	assert_int_equal(v1.k.run->io.direction, KVM_EXIT_IO_IN);
	assert_int_equal(v1.k.run->io.port, 0x60);
	assert_int_equal(v1.k.run->io.size, 4);
	uint32_t val = 0x12345678;
	memcpy((uint8_t *)v1.k.run + v1.k.run->io.data_offset, &val, 4);

	size_t len;
	uint8_t *b = save(&v1, &len);
	assert_int_equal(v1.k.run->exit_reason, KVM_EXIT_IO); /* left as it was */
	struct kvm_regs r;
	assert_int_equal(vcpu_state_decode(b, len, &r, NULL, NULL, 0), 0);
	assert_int_equal(r.rip, CODE_GPA + 2);
	assert_int_equal(r.rax & 0xffffffff, 0x12345678);

	tvm_create(&v2);
	memcpy(v2.ram, v1.ram, RAM_SIZE);
	restore(&v2, b, len);
	assert_int_equal(run(&v2), KVM_EXIT_IO);
	assert_int_equal(v2.k.run->io.direction, KVM_EXIT_IO_OUT);
	assert_int_equal(v2.k.run->io.port, 0xe9);
	assert_int_equal(io_value(&v2), 0x12345678);

	/* The recording VM goes on exactly the same way (no second IN). */
	assert_int_equal(run(&v1), KVM_EXIT_IO);
	assert_int_equal(v1.k.run->io.direction, KVM_EXIT_IO_OUT);
	assert_int_equal(io_value(&v1), 0x12345678);
	assert_int_equal(run(&v1), KVM_EXIT_HLT);
	assert_int_equal(run(&v2), KVM_EXIT_HLT);

	free(b);
	tvm_destroy(&v1);
	tvm_destroy(&v2);
}

/* ---- (c) damaged blobs are rejected and change nothing ----------------- */

struct damaged {
	const char *what;
	uint8_t *blob;
	size_t len;
	const char *word; /* the message must contain it */
};

static void test_damaged_blobs(void **st)
{
	(void)st;
	NEED_KVM();
	struct tvm v1, v2;
	struct probe pr;
	struct sec s[16], t[17];
	struct damaged d[20];
	size_t nd = 0, n, len;
	char err[400];

	tvm_create(&v1);
	set_distinctive_state(&v1, &pr);
	uint8_t *good = save(&v1, &len);
	n = split(good, len, s, 16);
	assert_int_equal(n, (size_t)(find_sec(s, n, VCPU_STATE_XSAVE) ? 1 : 0) +
			     (find_sec(s, n, VCPU_STATE_XCRS) ? 1 : 0) + 7);

#define ADD(w, b, l, word_) d[nd++] = (struct damaged){ (w), (b), (l), (word_) }
#define COPY(l) ((uint8_t *)memcpy(malloc(l), good, (l)))
	{ /* one flipped bit in the REGS section */
		uint8_t *b = COPY(len);
		b[8 + 8 + 3] ^= 0x10;
		ADD("flipped bit", b, len, "checksum");
	}
	{ /* flipped bit in the checksum itself */
		uint8_t *b = COPY(len);
		b[len - 1] ^= 1;
		ADD("flipped checksum bit", b, len, "checksum");
	}
	ADD("truncated by 100 bytes", COPY(len - 100), len - 100, "checksum");
	ADD("truncated to 12 bytes", COPY(12), 12, "too short");
	ADD("empty", COPY(1), 0, "too short");
	{ /* cut inside the last section, checksum made valid again */
		size_t l = len - 8 - 2;
		uint8_t *b = COPY(l + 8);
		uint64_t sum = XXH3_64bits(b, l);
		memcpy(b + l, &sum, 8);
		ADD("truncated, valid checksum", b, l + 8, "past the end");
	}
	{
		uint8_t *b = COPY(len);
		memcpy(b, "DVCX", 4);
		ADD("wrong magic", b, len, "magic");
	}
	{
		size_t l;
		ADD("version 2", build(s, n, 2, &l), l, "version");
	}
	{ /* an unknown tag, checksum valid */
		static const uint8_t junk[16] = { 1, 2, 3 };
		memcpy(t, s, n * sizeof(*s));
		t[n] = (struct sec){ .tag = 42, .len = sizeof(junk), .data = junk };
		size_t l;
		ADD("unknown tag", build(t, n + 1, 1, &l), l, "unknown");
	}
	{ /* REGS 8 bytes too long */
		uint8_t big[sizeof(struct kvm_regs) + 8] = { 0 };
		memcpy(t, s, n * sizeof(*s));
		struct sec *r = (struct sec *)find_sec(t, n, VCPU_STATE_REGS);
		memcpy(big, r->data, r->len);
		r->len += 8;
		r->data = big;
		size_t l;
		ADD("REGS length", build(t, n, 1, &l), l, "length");
	}
	{ /* SREGS 8 bytes too short */
		memcpy(t, s, n * sizeof(*s));
		((struct sec *)find_sec(t, n, VCPU_STATE_SREGS))->len -= 8;
		size_t l;
		ADD("SREGS length", build(t, n, 1, &l), l, "SREGS");
	}
	{ /* no REGS */
		size_t m = 0;
		for (size_t i = 0; i < n; i++)
			if (s[i].tag != VCPU_STATE_REGS)
				t[m++] = s[i];
		size_t l;
		ADD("missing REGS", build(t, m, 1, &l), l, "REGS section is missing");
	}
	{ /* no MP_STATE */
		size_t m = 0;
		for (size_t i = 0; i < n; i++)
			if (s[i].tag != VCPU_STATE_MP_STATE)
				t[m++] = s[i];
		size_t l;
		ADD("missing MP_STATE", build(t, m, 1, &l), l, "MP_STATE");
	}
	{ /* DEBUGREGS twice */
		memcpy(t, s, n * sizeof(*s));
		t[n] = *find_sec(s, n, VCPU_STATE_DEBUGREGS);
		size_t l;
		ADD("duplicate DEBUGREGS", build(t, n + 1, 1, &l), l, "duplicate");
	}
	{ /* MSRS count disagrees with the length */
		const struct sec *m = find_sec(s, n, VCPU_STATE_MSRS);
		uint8_t *md = malloc(m->len);
		memcpy(md, m->data, m->len);
		uint32_t c;
		memcpy(&c, md, 4);
		c++;
		memcpy(md, &c, 4);
		memcpy(t, s, n * sizeof(*s));
		((struct sec *)find_sec(t, n, VCPU_STATE_MSRS))->data = md;
		size_t l;
		ADD("MSRS count", build(t, n, 1, &l), l, "MSRS");
		free(md);
	}
	{ /* an MSR that is never saved (IA32_TSC) */
		const struct sec *m = find_sec(s, n, VCPU_STATE_MSRS);
		uint8_t *md = malloc(m->len);
		memcpy(md, m->data, m->len);
		uint32_t tsc = 0x10;
		memcpy(md + 4, &tsc, 4);
		memcpy(t, s, n * sizeof(*s));
		((struct sec *)find_sec(t, n, VCPU_STATE_MSRS))->data = md;
		size_t l;
		ADD("MSR 0x10", build(t, n, 1, &l), l, "0x10");
		free(md);
	}
	{ /* XSAVE shorter than the minimum */
		if (find_sec(s, n, VCPU_STATE_XSAVE)) {
			memcpy(t, s, n * sizeof(*s));
			((struct sec *)find_sec(t, n, VCPU_STATE_XSAVE))->len = 1024;
			size_t l;
			ADD("XSAVE length", build(t, n, 1, &l), l, "XSAVE");
		}
	}

	/* The target: a different vCPU state, which must stay as it is. */
	tvm_create(&v2);
	static const uint8_t hlt[] = { 0xf4 };
	guest_setup(&v2, hlt, sizeof(hlt));
	size_t blen;
	uint8_t *before = save(&v2, &blen);
	for (size_t i = 0; i < nd; i++) {
		err[0] = 0;
		int r = vcpu_state_restore(&v2.k, d[i].blob, d[i].len, err, sizeof(err));
		print_message("  %-26s -> %s\n", d[i].what, err);
		if (r != -1)
			fail_msg("%s: accepted", d[i].what);
		if (!strstr(err, d[i].word))
			fail_msg("%s: message \"%s\" lacks \"%s\"", d[i].what, err, d[i].word);
		/* decode and section agree with restore */
		assert_int_equal(vcpu_state_decode(d[i].blob, d[i].len, NULL, NULL, err, sizeof(err)), -1);
		size_t alen;
		uint8_t *after = save(&v2, &alen);
		assert_int_equal(alen, blen);
		if (memcmp(after, before, blen))
			fail_msg("%s: the vCPU changed", d[i].what);
		free(after);
		free(d[i].blob);
	}
	assert_int_equal(vcpu_state_restore(&v2.k, NULL, 0, err, sizeof(err)), -1);

	/* A blob the parser accepts but KVM refuses: the message names the MSR. */
	{
		const struct sec *m = find_sec(s, n, VCPU_STATE_MSRS);
		uint8_t *md = malloc(m->len + 16);
		uint32_t c;
		memcpy(md, m->data, m->len);
		memcpy(&c, md, 4);
		uint8_t extra[16] = { 0xcd, 0xab, 0x34, 0x12, 0, 0, 0, 0, 0x55 };
		memcpy(md + m->len, extra, 16);
		c++;
		memcpy(md, &c, 4);
		memcpy(t, s, n * sizeof(*s));
		struct sec *tm = (struct sec *)find_sec(t, n, VCPU_STATE_MSRS);
		tm->data = md;
		tm->len += 16;
		size_t l;
		uint8_t *b = build(t, n, 1, &l);
		struct tvm v3;
		tvm_create(&v3);
		assert_int_equal(vcpu_state_restore(&v3.k, b, l, err, sizeof(err)), -1);
		print_message("  %-26s -> %s\n", "MSR KVM refuses", err);
		assert_non_null(strstr(err, "0x1234abcd"));
		tvm_destroy(&v3);
		free(b);
		free(md);
	}

	free(before);
	free(good);
	tvm_destroy(&v1);
	tvm_destroy(&v2);
#undef ADD
#undef COPY
}

/* ---- (d) decoding without KVM ------------------------------------------ */

static void test_decode(void **st)
{
	(void)st;
	NEED_KVM();
	struct tvm v1;
	struct probe pr;
	struct kvm_regs r, rd;
	struct kvm_sregs s, sd;
	char err[400];

	tvm_create(&v1);
	set_distinctive_state(&v1, &pr);
	size_t len;
	uint8_t *b = save(&v1, &len);
	get_regs(&v1, &r);
	get_sregs(&v1, &s);
	tvm_destroy(&v1);

	memset(&rd, 0xee, sizeof(rd));
	memset(&sd, 0xee, sizeof(sd));
	assert_int_equal(vcpu_state_decode(b, len, &rd, &sd, err, sizeof(err)), 0);
	assert_memory_equal(&r, &rd, sizeof(r));
	assert_memory_equal(&s, &sd, sizeof(s));
	assert_int_equal(rd.rip, CODE_GPA);
	assert_int_equal(sd.cr3, PML4_GPA);
	assert_int_equal(sd.cr8, 7);
	assert_int_equal(vcpu_state_decode(b, len, NULL, NULL, err, sizeof(err)), 0);
	memset(&rd, 0, sizeof(rd));
	assert_int_equal(vcpu_state_decode(b, len, &rd, NULL, err, sizeof(err)), 0);
	assert_int_equal(rd.rax, r.rax);

	/* The optional sections: present here, and an unknown tag is refused. */
	const uint8_t *p;
	uint32_t pl;
	assert_int_equal(vcpu_state_section(b, len, VCPU_STATE_FPU, &p, &pl, err, sizeof(err)), 0);
	assert_int_equal(pl, sizeof(struct kvm_fpu));
	assert_int_equal(vcpu_state_section(b, len, 77, &p, &pl, err, sizeof(err)), -1);

	b[len / 2] ^= 0x40;
	memset(&rd, 0x11, sizeof(rd));
	assert_int_equal(vcpu_state_decode(b, len, &rd, &sd, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "checksum"));
	free(b);
}

/* ---- what is saved here, and how fast ----------------------------------- */

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void test_report(void **st)
{
	(void)st;
	NEED_KVM();
	struct tvm v1, v2;
	struct probe pr;
	char err[400];

	tvm_create(&v1);
	set_distinctive_state(&v1, &pr);
	size_t len;
	uint8_t *b = save(&v1, &len);

	const uint8_t *md;
	uint32_t ml, nm;
	assert_int_equal(vcpu_state_section(b, len, VCPU_STATE_MSRS, &md, &ml, err, sizeof(err)), 0);
	memcpy(&nm, md, 4);

	struct kvm_msr_list probe = { .nmsrs = 0 };
	assert_int_equal(ioctl(v1.k.sys_fd, KVM_GET_MSR_INDEX_LIST, &probe), -1);
	assert_int_equal(errno, E2BIG);
	struct kvm_msr_list *l = calloc(1, sizeof(*l) + probe.nmsrs * 4);
	l->nmsrs = probe.nmsrs;
	assert_int_equal(ioctl(v1.k.sys_fd, KVM_GET_MSR_INDEX_LIST, l), 0);

	char saved[4096] = "", excl[1024] = "", unread[2048] = "";
	size_t ps = 0, pe = 0, pu = 0;
	uint32_t ne = 0, nu = 0;
	for (uint32_t i = 0; i < l->nmsrs; i++) {
		uint32_t x = l->indices[i];
		bool in = false;
		for (uint32_t j = 0; j < nm && !in; j++) {
			uint32_t y;
			memcpy(&y, md + 4 + 16 * j, 4);
			in = x == y;
		}
		bool ex = x == 0x10 || x == 0x11 || x == 0x12 || (x >> 8) == 0x4b564d;
		if (in)
			ps += (size_t)snprintf(saved + ps, sizeof(saved) - ps, " %x", x);
		else if (ex)
			ne++, pe += (size_t)snprintf(excl + pe, sizeof(excl) - pe, " %x", x);
		else
			nu++, pu += (size_t)snprintf(unread + pu, sizeof(unread) - pu, " %x", x);
		assert_false(in && ex);
	}
	print_message("KVM_GET_MSR_INDEX_LIST: %u MSRs\n", l->nmsrs);
	print_message("saved (%u):%s\n", nm, saved);
	print_message("excluded (%u):%s\n", ne, excl);
	print_message("unreadable on this vCPU (%u):%s\n", nu, unread);
	const uint8_t *xp;
	uint32_t xl = 0;
	assert_int_equal(vcpu_state_section(b, len, VCPU_STATE_XSAVE, &xp, &xl, err, sizeof(err)), 0);
	print_message("blob: %zu bytes (XSAVE section %u bytes, MSRS %u bytes)\n", len, xl, ml);
	free(l);

	enum { N = 200 };
	double t0 = now_us(), best_s = 1e9, best_r = 1e9;
	for (int i = 0; i < N; i++) {
		double a = now_us();
		size_t l2;
		uint8_t *b2 = save(&v1, &l2);
		double d = now_us() - a;
		best_s = d < best_s ? d : best_s;
		free(b2);
	}
	double save_us = (now_us() - t0) / N;

	tvm_create(&v2);
	t0 = now_us();
	for (int i = 0; i < N; i++) {
		double a = now_us();
		restore(&v2, b, len);
		double d = now_us() - a;
		best_r = d < best_r ? d : best_r;
	}
	double restore_us = (now_us() - t0) / N;
	t0 = now_us();
	for (int i = 0; i < N; i++)
		assert_int_equal(vcpu_state_decode(b, len, NULL, NULL, err, sizeof(err)), 0);
	double parse_us = (now_us() - t0) / N;
	print_message("save: %.1f us mean, %.1f us best; restore: %.1f us mean, %.1f us best; "
		      "validate only: %.2f us (%d rounds each)\n",
		      save_us, best_s, restore_us, best_r, parse_us, N);

	free(b);
	tvm_destroy(&v1);
	tvm_destroy(&v2);
}

int main(void)
{
	int fd = open(kvm_dev_path(), O_RDWR | O_CLOEXEC);
	if (fd < 0)
		snprintf(no_kvm, sizeof(no_kvm), "cannot open %s: %s (these tests need KVM)",
			 kvm_dev_path(), strerror(errno));
	else
		close(fd);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_fresh_vm),
		cmocka_unit_test(test_guest_continues),
		cmocka_unit_test(test_save_at_pending_in),
		cmocka_unit_test(test_damaged_blobs),
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_report),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
