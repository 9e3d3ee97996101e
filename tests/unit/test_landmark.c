/*
 * test_landmark.c - landmark_reach() (replayer/landmark.c) on a hand-made
 * VM, for forced exits that need no timing to reach.  Needs /dev/kvm
 * (skipped without it) and the insn_emulation progress counter (skipped
 * where KVM has no such statistic).
 *
 * After an exit that reads (an IN), KVM finishes the instruction on the
 * next KVM_RUN.  A recorder's vCPU kicked on that very KVM_RUN stops with
 * the IN finished and nothing else run, and records a forced exit there:
 * same counter as the IN's exit, RIP after the IN, AL loaded.  The replay
 * must reach exactly that, without running a guest instruction.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>
#include <xxhash.h>

#include "replayer/landmark.h"
#include "vmm/kvm.h"
#include "vmm/vm.h"

#define RAM_SIZE 0x10000
#define CODE 0x1000

/* A real-mode vCPU on `ram` at CS:IP 0:ip, with `rflags`, SS:SP 0:0x8000.
 * -1 (and nothing to close) if there is no insn_emulation counter. */
static int real_mode_vm(struct vm *vm, uint8_t *ram, uint16_t ip, uint64_t rflags)
{
	char err[512];
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	uint64_t v;

	memset(vm, 0, sizeof(*vm));
	assert_int_equal(kvm_open(&vm->kvm, err, sizeof(err)), 0);
	assert_int_equal(kvm_set_memory(&vm->kvm, 0, 0, RAM_SIZE, ram, false, err, sizeof(err)), 0);
	assert_int_equal(kvm_create_vcpu(&vm->kvm, err, sizeof(err)), 0);
	vm->progress_kind = PROGRESS_INSN_EMULATION;
	vm->progress_fd = -1;
	if (vm_progress(vm, &v) != 0) {
		kvm_close(&vm->kvm);
		return -1;
	}
	assert_int_equal(ioctl(vm->kvm.vcpu_fd, KVM_GET_SREGS, &sregs), 0);
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	sregs.ss.base = 0;
	sregs.ss.selector = 0;
	assert_int_equal(ioctl(vm->kvm.vcpu_fd, KVM_SET_SREGS, &sregs), 0);
	memset(&regs, 0, sizeof(regs));
	regs.rip = ip;
	regs.rflags = rflags;
	regs.rsp = 0x8000;
	assert_int_equal(ioctl(vm->kvm.vcpu_fd, KVM_SET_REGS, &regs), 0);
	return 0;
}

/*
 * A forced exit one instruction after an interrupt the replayer injected
 * (a recorder kicked right after injecting): the replay must deliver the
 * interrupt without single-stepping it, or the step's trap flag lands in
 * the FLAGS the delivery pushes, and the guest traps after its IRET.
 * "Recorded" here on one VM, stopped by a breakpoint; replayed on another.
 */
static void test_forced_exit_after_injection(void **st)
{
	(void)st;
	char err[512];
	static struct vm rec, rep;
	struct kvm_regs regs;
	uint64_t target, hash;

	if (access("/dev/kvm", R_OK | W_OK) != 0)
		skip();
	uint8_t *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *ram2 = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(ram != MAP_FAILED && ram2 != MAP_FAILED);
	/* Main code: nops, hlt.  Vector 0x20's handler at 0:0x2000: nop, nop, iret. */
	memset(ram + CODE, 0x90, 16);
	ram[CODE + 16] = 0xf4;
	static const uint8_t handler[] = { 0x90, 0x90, 0xcf };
	memcpy(ram + 0x2000, handler, sizeof(handler));
	ram[0x20 * 4] = 0x00;
	ram[0x20 * 4 + 1] = 0x20; /* IP 0x2000 */
	ram[0x20 * 4 + 2] = 0;
	ram[0x20 * 4 + 3] = 0;    /* CS 0 */
	memcpy(ram2, ram, RAM_SIZE);

	/* Record: inject, run to a breakpoint on the handler's second nop. */
	if (real_mode_vm(&rec, ram, CODE, 0x202)) {
		munmap(ram, RAM_SIZE);
		munmap(ram2, RAM_SIZE);
		skip();
	}
	struct kvm_interrupt irq = { .irq = 0x20 };
	assert_int_equal(ioctl(rec.kvm.vcpu_fd, KVM_INTERRUPT, &irq), 0);
	struct kvm_guest_debug dbg;
	memset(&dbg, 0, sizeof(dbg));
	dbg.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
	dbg.arch.debugreg[0] = 0x2001;
	dbg.arch.debugreg[7] = 0x1;
	assert_int_equal(ioctl(rec.kvm.vcpu_fd, KVM_SET_GUEST_DEBUG, &dbg), 0);
	assert_int_equal(ioctl(rec.kvm.vcpu_fd, KVM_RUN, 0), 0);
	assert_int_equal(rec.kvm.run->exit_reason, KVM_EXIT_DEBUG);
	memset(&dbg, 0, sizeof(dbg));
	assert_int_equal(ioctl(rec.kvm.vcpu_fd, KVM_SET_GUEST_DEBUG, &dbg), 0);
	assert_int_equal(vm_regs(&rec, &regs, &hash), 0);
	assert_int_equal(regs.rip, 0x2001);
	assert_int_equal(vm_progress(&rec, &target), 0);
	/* The pushed FLAGS (at SS:SP + 4): IF, no TF. */
	uint16_t flags;
	memcpy(&flags, ram + regs.rsp + 4, 2);
	assert_int_equal(flags & 0x300, 0x200);

	/* Replay: the same, reached by landmark_reach. */
	assert_int_equal(real_mode_vm(&rep, ram2, CODE, 0x202), 0);
	assert_int_equal(ioctl(rep.kvm.vcpu_fd, KVM_INTERRUPT, &irq), 0);
	struct landmark_ctl c;
	memset(&c, 0, sizeof(c));
	int rc = landmark_reach(&rep, &c, LANDMARK_FAST, target, 0x2001, hash, err, sizeof(err));
	if (rc != LANDMARK_REACHED)
		fail_msg("landmark_reach: %d: %s", rc, err);
	assert_memory_equal(ram2 + 0x7000, ram + 0x7000, 0x1000); /* the stack: no trap flag */
	/* And the guest goes on to its hlt without trapping (a #DB would
	 * find no vector 1 handler: IVT entry 0 -> 0:0, not the hlt).  A kick
	 * of the approach's timer may still be due: retried. */
	int r;
	while ((r = ioctl(rep.kvm.vcpu_fd, KVM_RUN, 0)) < 0 && errno == EINTR)
		rep.kvm.run->immediate_exit = 0;
	assert_int_equal(r, 0);
	assert_int_equal(rep.kvm.run->exit_reason, KVM_EXIT_HLT);
	assert_int_equal(ioctl(rep.kvm.vcpu_fd, KVM_GET_REGS, &regs), 0);
	assert_int_equal(regs.rip, CODE + 17);
	kvm_close(&rec.kvm);
	kvm_close(&rep.kvm);
	munmap(ram, RAM_SIZE);
	munmap(ram2, RAM_SIZE);
}

static void test_forced_exit_after_in(void **st)
{
	(void)st;
	char err[512];
	static struct vm vm;
	struct kvm_regs regs;
	uint64_t target, after;

	if (access("/dev/kvm", R_OK | W_OK) != 0)
		skip();
	uint8_t *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(ram != MAP_FAILED);
	/* Real mode: mov dx, 0x3fd; in al, dx; nop; hlt */
	static const uint8_t code[] = { 0xba, 0xfd, 0x03, 0xec, 0x90, 0xf4 };
	memcpy(ram + CODE, code, sizeof(code));

	if (real_mode_vm(&vm, ram, CODE, 0x2)) {
		munmap(ram, RAM_SIZE);
		skip(); /* no insn_emulation statistic on this host */
	}
	assert_int_equal(ioctl(vm.kvm.vcpu_fd, KVM_GET_REGS, &regs), 0);
	regs.rax = 0x1234;
	assert_int_equal(ioctl(vm.kvm.vcpu_fd, KVM_SET_REGS, &regs), 0);

	/* Run to the IN's exit and answer it, as the replayer does. */
	assert_int_equal(ioctl(vm.kvm.vcpu_fd, KVM_RUN, 0), 0);
	assert_int_equal(vm.kvm.run->exit_reason, KVM_EXIT_IO);
	assert_int_equal(vm.kvm.run->io.direction, KVM_EXIT_IO_IN);
	assert_int_equal(vm.kvm.run->io.port, 0x3fd);
	*((uint8_t *)vm.kvm.run + vm.kvm.run->io.data_offset) = 0x60;

	/* What the recorder saw at its forced exit: the IN finished. */
	assert_int_equal(vm_progress(&vm, &target), 0);
	assert_int_equal(ioctl(vm.kvm.vcpu_fd, KVM_GET_REGS, &regs), 0);
	struct kvm_regs want = regs;
	want.rip = CODE + 4;
	want.rax = 0x1260;
	uint64_t hash = XXH3_64bits(&want, sizeof(want));

	struct landmark_ctl c;
	memset(&c, 0, sizeof(c));
	int rc = landmark_reach(&vm, &c, LANDMARK_FAST, target, CODE + 4, hash, err, sizeof(err));
	if (rc != LANDMARK_REACHED)
		fail_msg("landmark_reach: %d: %s", rc, err);
	assert_int_equal(ioctl(vm.kvm.vcpu_fd, KVM_GET_REGS, &regs), 0);
	assert_int_equal(regs.rip, CODE + 4);
	assert_int_equal(regs.rax & 0xffff, 0x1260);
	/* Without running a guest instruction. */
	assert_int_equal(vm_progress(&vm, &after), 0);
	assert_int_equal(after, target);
	assert_int_equal(c.steps, 0);
	assert_int_equal(c.runs, 0);

	/* The vCPU goes on from there: nop, then hlt. */
	assert_int_equal(ioctl(vm.kvm.vcpu_fd, KVM_RUN, 0), 0);
	assert_int_equal(vm.kvm.run->exit_reason, KVM_EXIT_HLT);
	kvm_close(&vm.kvm);
	munmap(ram, RAM_SIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forced_exit_after_in),
		cmocka_unit_test(test_forced_exit_after_injection),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
