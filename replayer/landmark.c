/* landmark.c - see landmark.h. */
#include "landmark.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

/* Never assume the guest faster than 400 ns per instruction (measured on
 * these hosts), and aim at half of what remains: a kick that lands late
 * (measured: several ms under load) must still not carry the guest past the
 * target.  Learning the speed from wall time is unsafe for that reason. */
#define STEP_MAX 1000
#define NS_PER_INSN_HALF 200

static int set_debug(struct vm *vm, uint32_t control, uint64_t bp_rip)
{
	struct kvm_guest_debug dbg;
	memset(&dbg, 0, sizeof(dbg));
	dbg.control = control;
	if (control & KVM_GUESTDBG_USE_HW_BP) {
		dbg.arch.debugreg[0] = bp_rip;
		dbg.arch.debugreg[7] = 0x1; /* L0, execute, 1 byte */
	}
	return ioctl(vm->kvm.vcpu_fd, KVM_SET_GUEST_DEBUG, &dbg);
}

static bool next_is_iretq(struct vm *vm, uint64_t rip)
{
	struct kvm_translation tr = { .linear_address = rip };
	uint8_t b[2];
	if (ioctl(vm->kvm.vcpu_fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid ||
	    gm_read(&vm->mem, tr.physical_address, b, 2))
		return false;
	return b[0] == 0x48 && b[1] == 0xcf;
}

int landmark_reach(struct vm *vm, uint64_t target, uint64_t rip, uint64_t regs_hash,
		   char *err, size_t errlen)
{
	struct kvm_run *run = vm->kvm.run;
	uint64_t cur;
	int rc = -1;
	uint32_t debug = 0;

	for (;;) {
		if (vm_progress(vm, &cur)) {
			snprintf(err, errlen, "cannot read the progress counter");
			goto out;
		}
		if (cur == target)
			break;
		if (cur > target) {
			snprintf(err, errlen, "divergence at exit %" PRIu64 ": ran past the recorded forced exit "
				 "(progress %" PRIu64 ", expected %" PRIu64 ")", vm->stats.exits + 1, cur, target);
			goto out;
		}
		uint64_t rem = target - cur;
		struct kvm_regs regs;
		uint32_t want = 0;
		if (rem <= STEP_MAX) {
			if (ioctl(vm->kvm.vcpu_fd, KVM_GET_REGS, &regs) < 0) {
				snprintf(err, errlen, "KVM_GET_REGS: %s", strerror(errno));
				goto out;
			}
			want = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP;
			if (rem == 1 && next_is_iretq(vm, regs.rip))
				want = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
		} else {
			vm_arm_kick(vm, rem * NS_PER_INSN_HALF);
		}
		if (want != debug) {
			if (set_debug(vm, want, rip) < 0) {
				snprintf(err, errlen, "KVM_SET_GUEST_DEBUG: %s", strerror(errno));
				goto out;
			}
			debug = want;
		}
		int r = ioctl(vm->kvm.vcpu_fd, KVM_RUN, 0);
		run->immediate_exit = 0;
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				if (vm_stop_requested) {
					snprintf(err, errlen, "interrupted while reaching a forced exit");
					goto out;
				}
				continue;
			}
			snprintf(err, errlen, "KVM_RUN: %s", strerror(errno));
			goto out;
		}
		if (run->exit_reason == KVM_EXIT_DEBUG || run->exit_reason == KVM_EXIT_INTR ||
		    run->exit_reason == KVM_EXIT_IRQ_WINDOW_OPEN)
			continue;
		snprintf(err, errlen, "divergence at exit %" PRIu64 ": the guest made a synchronous exit "
			 "(KVM exit reason %u) where the recording has a forced exit at RIP 0x%" PRIx64
			 " (progress %" PRIu64 ", now %" PRIu64 ")", vm->stats.exits + 1, run->exit_reason,
			 rip, target, cur);
		goto out;
	}
	struct kvm_regs regs;
	if (ioctl(vm->kvm.vcpu_fd, KVM_GET_REGS, &regs) < 0) {
		snprintf(err, errlen, "KVM_GET_REGS: %s", strerror(errno));
		goto out;
	}
	if (regs.rip != rip) {
		snprintf(err, errlen, "divergence at exit %" PRIu64 ": forced exit reached at RIP 0x%llx, "
			 "recorded RIP 0x%" PRIx64, vm->stats.exits + 1, (unsigned long long)regs.rip, rip);
		goto out;
	}
	if (vm_regs_hash(vm) != regs_hash) {
		snprintf(err, errlen, "divergence at exit %" PRIu64 ": registers at the forced exit (RIP 0x%"
			 PRIx64 ") differ from the recording (hash %016" PRIx64 " vs %016" PRIx64 ")",
			 vm->stats.exits + 1, rip, vm_regs_hash(vm), regs_hash);
		goto out;
	}
	rc = 0;
out:
	if (debug)
		set_debug(vm, 0, 0);
	return rc;
}
