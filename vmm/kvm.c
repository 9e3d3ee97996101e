/* kvm.c - see kvm.h.  The KVM API is Documentation/virt/kvm/api.rst. */
#include "kvm.h"
#include "common/errf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpuid.h"
#include "msr.h"

/* Where KVM may put the TSS and identity map it needs on Intel hosts: a page
 * range just below 4 GiB that is neither RAM nor one of our devices. */
#define KVM_TSS_ADDR          0xfffbd000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL

const char *kvm_dev_path(void)
{
	const char *p = getenv("DETVM_KVM_DEV");
	return p && *p ? p : "/dev/kvm";
}

int kvm_open(struct kvm *k, char *err, size_t errlen)
{
	const char *dev = kvm_dev_path();

	memset(k, 0, sizeof(*k));
	k->sys_fd = k->vm_fd = k->vcpu_fd = k->stats_fd = -1;
	k->insn_emulation_off = -1;

	k->sys_fd = open(dev, O_RDWR | O_CLOEXEC);
	if (k->sys_fd < 0) {
		int e = errno;
		const char *hint = e == ENOENT ? " (no KVM on this host: is the kvm module loaded, or is this a VM without nested virtualisation?)"
			: (e == EACCES || e == EPERM) ? " (not permitted: add your user to the 'kvm' group or run as root)" : "";
		return errf(err, errlen, "cannot open %s: %s%s", dev, strerror(e), hint);
	}
	int v = ioctl(k->sys_fd, KVM_GET_API_VERSION, 0);
	if (v != KVM_API_VERSION)
		return errf(err, errlen, "%s: KVM_GET_API_VERSION returned %d, expected %d (is it a KVM device?)",
			    dev, v, KVM_API_VERSION);
	static const struct { int cap; const char *name; } caps[] = {
		{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
		{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
		{ KVM_CAP_X86_USER_SPACE_MSR, "KVM_CAP_X86_USER_SPACE_MSR (Linux 5.10)" },
		{ KVM_CAP_X86_MSR_FILTER, "KVM_CAP_X86_MSR_FILTER (Linux 5.10)" },
	};
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		if (ioctl(k->sys_fd, KVM_CHECK_EXTENSION, caps[i].cap) <= 0)
			return errf(err, errlen, "%s lacks %s, which detvm needs", dev, caps[i].name);

	k->vm_fd = ioctl(k->sys_fd, KVM_CREATE_VM, 0);
	if (k->vm_fd < 0)
		return errf(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
	if (ioctl(k->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0)
		return errf(err, errlen, "KVM_SET_TSS_ADDR: %s", strerror(errno));
	uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
	if (ioctl(k->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0 && errno != EINVAL)
		return errf(err, errlen, "KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));

	struct kvm_enable_cap cap = { .cap = KVM_CAP_X86_USER_SPACE_MSR };
	cap.args[0] = KVM_MSR_EXIT_REASON_FILTER;
	if (ioctl(k->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
		return errf(err, errlen, "KVM_ENABLE_CAP(KVM_CAP_X86_USER_SPACE_MSR): %s", strerror(errno));
	return 0;
}

void kvm_close(struct kvm *k)
{
	if (k->run && k->run != MAP_FAILED)
		munmap(k->run, k->run_size);
	k->run = NULL;
	if (k->stats_fd >= 0)
		close(k->stats_fd);
	if (k->vcpu_fd >= 0)
		close(k->vcpu_fd);
	if (k->vm_fd >= 0)
		close(k->vm_fd);
	if (k->sys_fd >= 0)
		close(k->sys_fd);
	k->stats_fd = k->vcpu_fd = k->vm_fd = k->sys_fd = -1;
}

int kvm_set_memory(struct kvm *k, uint32_t slot, uint64_t gpa, uint64_t size,
		   void *host, bool log_dirty, char *err, size_t errlen)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.flags = log_dirty ? KVM_MEM_LOG_DIRTY_PAGES : 0,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};
	if (ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return errf(err, errlen, "KVM_SET_USER_MEMORY_REGION(slot %u, gpa 0x%llx, %llu MiB): %s",
			    slot, (unsigned long long)gpa, (unsigned long long)(size >> 20), strerror(errno));
	return 0;
}

/* Find the insn_emulation statistic in the vCPU's binary stats. */
static void find_insn_emulation(struct kvm *k)
{
	struct kvm_stats_header h;
	if (pread(k->stats_fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return;
	size_t dsz = sizeof(struct kvm_stats_desc) + h.name_size;
	if (h.num_desc > 4096 || h.name_size > 4096)
		return;
	char *buf = malloc(dsz);
	if (!buf)
		return;
	for (uint32_t i = 0; i < h.num_desc; i++) {
		struct kvm_stats_desc *d = (struct kvm_stats_desc *)buf;
		if (pread(k->stats_fd, buf, dsz, (off_t)(h.desc_offset + i * dsz)) != (ssize_t)dsz)
			break;
		d->name[h.name_size - 1] = 0;
		if (strcmp(d->name, "insn_emulation") == 0 && d->size == 1) {
			k->insn_emulation_off = (int64_t)h.data_offset + d->offset;
			break;
		}
	}
	free(buf);
}

int kvm_create_vcpu(struct kvm *k, char *err, size_t errlen)
{
	k->vcpu_fd = ioctl(k->vm_fd, KVM_CREATE_VCPU, 0);
	if (k->vcpu_fd < 0)
		return errf(err, errlen, "KVM_CREATE_VCPU: %s", strerror(errno));
	int sz = ioctl(k->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz < (int)sizeof(struct kvm_run))
		return errf(err, errlen, "KVM_GET_VCPU_MMAP_SIZE returned %d: %s", sz, strerror(errno));
	k->run_size = (size_t)sz;
	k->run = mmap(NULL, k->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, k->vcpu_fd, 0);
	if (k->run == MAP_FAILED) {
		k->run = NULL;
		return errf(err, errlen, "mmap of the vCPU run area (%d bytes): %s", sz, strerror(errno));
	}
	k->stats_fd = ioctl(k->vcpu_fd, KVM_GET_STATS_FD, 0);
	if (k->stats_fd >= 0)
		find_insn_emulation(k);
	return 0;
}

int kvm_setup_cpuid(struct kvm *k, const struct kvm_cpuid_entry2 *table, size_t n,
		    char *err, size_t errlen)
{
	if (table) {
		if (n > KVM_MAX_CPUID)
			return errf(err, errlen, "CPUID table of %zu entries (at most %d)", n, KVM_MAX_CPUID);
		memcpy(k->cpuid.e, table, n * sizeof(*table));
		k->cpuid.hdr.nent = (uint32_t)n;
	} else {
		k->cpuid.hdr.nent = KVM_MAX_CPUID;
		if (ioctl(k->sys_fd, KVM_GET_SUPPORTED_CPUID, &k->cpuid) < 0)
			return errf(err, errlen, "KVM_GET_SUPPORTED_CPUID (%d entries): %s", KVM_MAX_CPUID, strerror(errno));
		k->cpuid.hdr.nent = (uint32_t)cpuid_filter(k->cpuid.e, (int)k->cpuid.hdr.nent);
	}
	if (ioctl(k->vcpu_fd, KVM_SET_CPUID2, &k->cpuid) < 0)
		return errf(err, errlen, "KVM_SET_CPUID2 (%u entries): %s", k->cpuid.hdr.nent, strerror(errno));
	return 0;
}

int kvm_setup_msr_filter(struct kvm *k, enum msr_policy_rev rev, char *err, size_t errlen)
{
	static uint8_t bitmaps[KVM_MSR_FILTER_MAX_RANGES][0x210 / 8 + 1];
	struct kvm_msr_filter f;

	memset(&f, 0, sizeof(f));
	f.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
	for (int i = 0; i < msr_filter_nranges && i < KVM_MSR_FILTER_MAX_RANGES; i++) {
		const struct msr_range *r = &msr_filter_ranges[i];
		msr_range_bitmap(r, rev, bitmaps[i]);
		f.ranges[i] = (struct kvm_msr_filter_range){
			.flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE,
			.nmsrs = r->n, .base = r->base, .bitmap = bitmaps[i],
		};
	}
	if (ioctl(k->vm_fd, KVM_X86_SET_MSR_FILTER, &f) < 0)
		return errf(err, errlen, "KVM_X86_SET_MSR_FILTER: %s", strerror(errno));
	return 0;
}

static void flat_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code64, bool big)
{
	*s = (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
		.present = 1, .dpl = 0, .db = big, .s = 1, .l = code64, .g = 1,
	};
}

int kvm_set_boot_state(struct kvm *k, const struct boot_cpu *cpu, char *err, size_t errlen)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(k->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return errf(err, errlen, "KVM_GET_SREGS: %s", strerror(errno));
	bool long_mode = cpu->mode == BOOT_NATIVE64;
	flat_seg(&sregs.cs, cpu->code_sel, 0xb, long_mode, !long_mode);
	flat_seg(&sregs.ds, cpu->data_sel, 0x3, false, true);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.gdt.base = cpu->gdt_base;
	sregs.gdt.limit = cpu->gdt_limit;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	if (long_mode) {
		/* PE MP ET NE WP AM PG; PAE OSFXSR OSXMMEXCPT; LME LMA. */
		sregs.cr0 = 0x80050033;
		sregs.cr3 = cpu->cr3;
		sregs.cr4 = 0x620;
		sregs.efer = 0x500;
	} else {
		sregs.cr0 = 0x11; /* PE, ET */
		sregs.cr3 = 0;
		sregs.cr4 = 0;
		sregs.efer = 0;
	}
	if (ioctl(k->vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return errf(err, errlen, "KVM_SET_SREGS: %s", strerror(errno));

	memset(&regs, 0, sizeof(regs));
	regs.rip = cpu->rip;
	regs.rsp = cpu->rsp;
	regs.rflags = cpu->rflags;
	regs.rax = cpu->rax;
	regs.rbx = cpu->rbx;
	regs.rdi = cpu->rdi;
	regs.rsi = cpu->rsi;
	if (ioctl(k->vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return errf(err, errlen, "KVM_SET_REGS: %s", strerror(errno));
	return 0;
}

int kvm_read_insn_emulation(const struct kvm *k, uint64_t *value)
{
	if (k->stats_fd < 0 || k->insn_emulation_off < 0)
		return -1;
	if (pread(k->stats_fd, value, sizeof(*value), (off_t)k->insn_emulation_off) != (ssize_t)sizeof(*value))
		return -1;
	return 0;
}
