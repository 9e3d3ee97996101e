/*
 * vcpu_state.h - the complete architectural state of the vCPU as one
 * self-describing blob, for checkpoints: saved from one VM, restored into a
 * fresh VM created with the same configuration (CPUID table, memory).
 *
 * Blob layout (little-endian): magic "DVCS", u32 version (1), then
 * sections { u32 tag, u32 length, bytes }, then u64 XXH3-64 of everything
 * before it.  Sections: REGS (struct kvm_regs), SREGS (struct kvm_sregs),
 * FPU (struct kvm_fpu), XSAVE (KVM_GET_XSAVE2 area; absent without
 * KVM_CAP_XSAVE), XCRS (struct kvm_xcrs; absent without KVM_CAP_XCRS),
 * MSRS (u32 count, then {u32 index, u32 pad, u64 value}), VCPU_EVENTS
 * (struct kvm_vcpu_events), DEBUGREGS (struct kvm_debugregs), MP_STATE
 * (struct kvm_mp_state).  Unknown tags are an error (a newer detvm wrote
 * it).  The kernel structs are stored as the ioctls return them: a blob is
 * meant for the same architecture (x86-64) and the same KVM ABI.
 *
 * MSRs: every index of KVM_GET_MSR_INDEX_LIST that this vCPU can read,
 * except those that cannot be restored by design: IA32_TSC (0x10; the guest
 * TSC is the host's, see README) and KVM's paravirtual MSRs
 * (0x4b564d00-0x4b564dff, 0x11, 0x12: detvm gives the guest no kvmclock;
 * writing them fails without an in-kernel irqchip).
 */
#ifndef DETVM_VCPU_STATE_H
#define DETVM_VCPU_STATE_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#include "kvm.h"

/* Capture the vCPU's state into a malloc'd blob.  0 or -1 with message. */
int vcpu_state_save(struct kvm *k, uint8_t **blob, size_t *len, char *err, size_t errlen);
/*
 * Let KVM finish the instruction of the last exit (an IN's value into RAX,
 * RIP past it) without running the guest further, so that the registers
 * read afterwards are the state after that exit.  vcpu_state_save() does it
 * itself.
 */
int vcpu_complete_pending(struct kvm *k, char *err, size_t errlen);
/* Restore a blob into k's vCPU (checksum and every section checked first). */
int vcpu_state_restore(struct kvm *k, const uint8_t *blob, size_t len, char *err, size_t errlen);
/*
 * Decode without KVM (inspector): the REGS and SREGS sections.  Either
 * output may be NULL.  0 or -1 with message (damaged blob).
 */
int vcpu_state_decode(const uint8_t *blob, size_t len, struct kvm_regs *regs,
		      struct kvm_sregs *sregs, char *err, size_t errlen);

/*
 * Additions (the declarations above are the contract; these describe how
 * vcpu_state.c meets it).
 *
 * Section tags and the fixed header.  The writer emits the sections in tag
 * order; the reader accepts any order.
 */
#define VCPU_STATE_MAGIC   "DVCS"
#define VCPU_STATE_VERSION 1u
enum vcpu_state_tag {
	VCPU_STATE_REGS = 1,        /* struct kvm_regs */
	VCPU_STATE_SREGS = 2,       /* struct kvm_sregs */
	VCPU_STATE_FPU = 3,         /* struct kvm_fpu */
	VCPU_STATE_XSAVE = 4,       /* KVM_GET_XSAVE2 area: >= 4096 bytes, a multiple of 4 */
	VCPU_STATE_XCRS = 5,        /* struct kvm_xcrs */
	VCPU_STATE_MSRS = 6,        /* u32 count, count x {u32 index, u32 pad (0), u64 value} */
	VCPU_STATE_VCPU_EVENTS = 7, /* struct kvm_vcpu_events */
	VCPU_STATE_DEBUGREGS = 8,   /* struct kvm_debugregs */
	VCPU_STATE_MP_STATE = 9,    /* struct kvm_mp_state */
};

/*
 * Check a blob completely (as vcpu_state_restore does before it touches the
 * vCPU) and return where section `tag` lies in it: *data and *len, or NULL
 * and 0 if the blob has no such section (XSAVE and XCRS are optional).
 * 0, or -1 with a message (damaged blob).  For the inspector and tests.
 */
int vcpu_state_section(const uint8_t *blob, size_t len, uint32_t tag,
		       const uint8_t **data, uint32_t *data_len, char *err, size_t errlen);

/*
 * Behaviour the contract leaves implicit:
 *
 * - Pending exits.  After a KVM_EXIT_IO, KVM_EXIT_MMIO, KVM_EXIT_X86_RDMSR,
 *   KVM_EXIT_X86_WRMSR or KVM_EXIT_HYPERCALL, KVM finishes the instruction
 *   (an IN's value into RAX, RIP past the instruction) only at the next
 *   KVM_RUN, and that pending work is in no state userspace can read
 *   (api.rst: complete it before migrating).  vcpu_state_save() therefore
 *   first completes it with a KVM_RUN that has immediate_exit set (no guest
 *   instruction runs), so call it where the run loop would re-enter the
 *   guest, after the exit's device has filled in any read data.  It leaves
 *   run->exit_reason as it found it.  If completing needs yet another exit
 *   to userspace (a read-modify-write of MMIO), it fails and says so.  The
 *   registers after a save are those of the completed instruction: hash
 *   them after the save, not before.  vcpu_state_restore() likewise
 *   completes such an exit of the target vCPU before it sets anything, so
 *   that a later KVM_RUN does not finish a stale instruction on top of the
 *   restored state (restore into a fresh VM and this never happens).
 * - CR8.  Without an in-kernel local APIC, every KVM_RUN first sets CR8 from
 *   run->cr8; vcpu_state_restore() sets run->cr8 to the restored CR8.
 * - Restore order (as QEMU's kvm_arch_put_registers): SREGS, REGS, XSAVE
 *   (or FPU when the blob has no XSAVE section), XCRS, MSRS, VCPU_EVENTS
 *   (after REGS: KVM_SET_REGS drops a pending exception), MP_STATE,
 *   DEBUGREGS.  Restore guest memory first: with PAE paging KVM_SET_SREGS
 *   reads the PDPTEs from guest memory.  A damaged or foreign blob is
 *   rejected before any change; if KVM itself refuses a value (message
 *   names the ioctl, or the MSR index), the vCPU is partly restored and
 *   should be discarded.
 */

#endif
