/*
 * stubs.S - one entry stub per IDT vector (0..255), a common save/restore
 * path around rt_trap(struct trapframe *), and rt_probe_read64.
 *
 * Each stub pushes a dummy error code when the CPU does not push one
 * (vectors other than 8, 10-14, 17, 21, 29, 30), then the vector number.
 * The frame is 22 quadwords (176 bytes), so RSP stays 16-byte aligned at
 * the call.
 */

	.text
	.code64

	.balign 16
	.globl rt_stub_table
rt_stub_table:
	vec = 0
	.rept 256
	.balign 16
	.if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	.else
	pushq $0
	.endif
	pushq $vec
	jmp rt_trap_common
	vec = vec + 1
	.endr

rt_trap_common:
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	cld
	movq %rsp, %rdi
	call rt_trap
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rbp
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rbx
	popq %rax
	addq $16, %rsp
	iretq

/* int rt_probe_read64(uint64_t addr, uint64_t *out) */
	.globl rt_probe_read64
rt_probe_read64:
	leaq 1f(%rip), %rax
	movq %rax, rt_fixup(%rip)     /* rt_fixup.rip */
	movq (%rdi), %rax             /* may fault -> resumes at 1f */
	movq $0, rt_fixup(%rip)
	movq %rax, (%rsi)
	xorl %eax, %eax
	ret
1:	movl $-1, %eax
	ret

	.section .note.GNU-stack, "", @progbits
