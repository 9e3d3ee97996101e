/* progress.c - see progress.h. */
#include "progress.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "kvm.h"

#define CAL_INSNS 100
#define CAL_MEM   0x10000

const char *progress_name(enum progress_kind k)
{
	return k == PROGRESS_INSN_EMULATION ? "insn_emulation" : "none";
}

enum progress_kind progress_detect(char *why, unsigned long whylen)
{
	struct kvm k;
	char err[256];
	enum progress_kind result = PROGRESS_NONE;
	uint8_t *mem = mmap(NULL, CAL_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	snprintf(why, whylen, "not measured");
	if (mem == MAP_FAILED) {
		snprintf(why, whylen, "mmap: %s", strerror(errno));
		return PROGRESS_NONE;
	}
	/* Real mode at 0x1000: 100 x "inc %ax", "out %al, $0x80", "hlt". */
	memset(mem + 0x1000, 0x40, CAL_INSNS);
	mem[0x1000 + CAL_INSNS] = 0xe6;
	mem[0x1000 + CAL_INSNS + 1] = 0x80;
	mem[0x1000 + CAL_INSNS + 2] = 0xf4;

	if (kvm_open(&k, err, sizeof(err)) ||
	    kvm_set_memory(&k, 0, 0, CAL_MEM, mem, false, err, sizeof(err)) ||
	    kvm_create_vcpu(&k, err, sizeof(err))) {
		snprintf(why, whylen, "scratch VM: %s", err);
		goto out;
	}
	if (k.insn_emulation_off < 0) {
		snprintf(why, whylen, "KVM has no insn_emulation statistic");
		goto out;
	}
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	if (ioctl(k.vcpu_fd, KVM_GET_SREGS, &sregs) < 0) {
		snprintf(why, whylen, "KVM_GET_SREGS: %s", strerror(errno));
		goto out;
	}
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(k.vcpu_fd, KVM_SET_SREGS, &sregs) < 0) {
		snprintf(why, whylen, "KVM_SET_SREGS: %s", strerror(errno));
		goto out;
	}
	memset(&regs, 0, sizeof(regs));
	regs.rip = 0x1000;
	regs.rflags = 2;
	if (ioctl(k.vcpu_fd, KVM_SET_REGS, &regs) < 0) {
		snprintf(why, whylen, "KVM_SET_REGS: %s", strerror(errno));
		goto out;
	}
	uint64_t before, after;
	if (kvm_read_insn_emulation(&k, &before)) {
		snprintf(why, whylen, "reading insn_emulation failed");
		goto out;
	}
	if (ioctl(k.vcpu_fd, KVM_RUN, 0) < 0 || k.run->exit_reason != KVM_EXIT_IO) {
		snprintf(why, whylen, "calibration guest did not reach its OUT (exit %u)", k.run->exit_reason);
		goto out;
	}
	if (kvm_read_insn_emulation(&k, &after)) {
		snprintf(why, whylen, "reading insn_emulation failed");
		goto out;
	}
	if (after - before == CAL_INSNS + 1) {
		result = PROGRESS_INSN_EMULATION;
		snprintf(why, whylen, "insn_emulation counted %d of %d instructions: exact",
			 (int)(after - before), CAL_INSNS + 1);
	} else {
		snprintf(why, whylen, "insn_emulation counted %llu of %d instructions: not a progress counter on this host",
			 (unsigned long long)(after - before), CAL_INSNS + 1);
	}
out:
	kvm_close(&k);
	munmap(mem, CAL_MEM);
	return result;
}
