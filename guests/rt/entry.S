/*
 * entry.S - the two ways into a test guest.
 *
 * 1. Multiboot v1 (QEMU -kernel, or detvm's multiboot path): the header
 *    below uses the a.out kludge (flags bit 16) so that a loader that
 *    refuses 64-bit ELF multiboot kernels (QEMU) loads the image from the
 *    addresses in the header.  Entry rt_entry_mb: 32-bit protected mode,
 *    paging off, EAX = 0x2BADB002, EBX = multiboot info.  It loads the identity
 *    page tables (2 MiB pages, first 4 GiB), enables PAE + LME + PG and jumps
 *    to 64-bit code.
 * 2. detvm's 64-bit ELF entry (e_entry = rt_entry64): long mode, RDI =
 *    boot-info block, RSI = DETVM_BOOTINFO_MAGIC.  It switches to the same
 *    GDT and page tables as path 1.
 *
 * Both call rt_start(kind, magic, info) on rt_stack.
 */

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00010003 /* page-align modules, memory info, a.out kludge */

	.section .multiboot, "a"
	.balign 4
	.globl rt_multiboot_header
rt_multiboot_header:
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)
	.long rt_multiboot_header /* header_addr */
	.long __image_start       /* load_addr */
	.long __data_end          /* load_end_addr */
	.long __bss_end           /* bss_end_addr */
	.long rt_entry_mb         /* entry_addr */

/* ------------------------------------------------------------------ */
	.section .text32, "ax"
	.code32
	.globl rt_entry_mb
rt_entry_mb:
	cli
	cld
	movl %eax, %ebp            /* multiboot magic */
	/* EBX = multiboot info, kept in EBX throughout */

	/* zero .bss (QEMU did already; a loader need not) */
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	shrl $2, %ecx
	xorl %eax, %eax
	rep stosl

	/* The page tables are data (see the end of this file). */
	movl %cr4, %eax
	orl $0x20, %eax            /* PAE */
	movl %eax, %cr4
	movl $rt_pml4, %eax
	movl %eax, %cr3
	movl $0xc0000080, %ecx     /* EFER */
	rdmsr
	orl $0x100, %eax           /* LME */
	wrmsr
	lgdt rt_gdt_desc
	movl %cr0, %eax
	orl $0x80000001, %eax      /* PG | PE */
	movl %eax, %cr0
	ljmp $0x08, $rt_mb_long

/* ------------------------------------------------------------------ */
	.text
	.code64
rt_mb_long:
	movl $0x10, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	xorl %eax, %eax
	movl %eax, %fs
	movl %eax, %gs
	movq $rt_stack_top, %rsp
	xorl %edi, %edi
	movl $1, %edi              /* RT_BOOT_MULTIBOOT */
	movl %ebp, %esi            /* magic */
	movl %ebx, %edx            /* info */
	xorl %ebp, %ebp
	call rt_start
3:	cli
	hlt
	jmp 3b

	.globl rt_entry64
rt_entry64:
	cli
	cld
	movq %rdi, %r12            /* boot info */
	movq %rsi, %r13            /* magic */

	movq $__bss_start, %rdi
	movq $__bss_end, %rcx
	subq %rdi, %rcx
	shrq $3, %rcx
	xorl %eax, %eax
	rep stosq

	movq $rt_pml4, %rax
	movq %rax, %cr3

	lgdt rt_gdt_desc(%rip)
	movq $rt_stack_top, %rsp
	pushq $0x08
	leaq 4f(%rip), %rax
	pushq %rax
	lretq
4:	movl $0x10, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	xorl %eax, %eax
	movl %eax, %fs
	movl %eax, %gs
	movl $2, %edi              /* RT_BOOT_ELF64 */
	movl %r13d, %esi
	movq %r12, %rdx
	xorl %ebp, %ebp
	call rt_start
5:	cli
	hlt
	jmp 5b

/* ------------------------------------------------------------------ */
	.section .rodata
	.balign 16
rt_gdt:
	.quad 0
	.quad 0x00af9a000000ffff   /* 0x08: 64-bit code */
	.quad 0x00cf92000000ffff   /* 0x10: data */
	.quad 0x00cf9a000000ffff   /* 0x18: 32-bit code */
rt_gdt_end:
	.balign 8
	.globl rt_gdt_desc
rt_gdt_desc:
	.word rt_gdt_end - rt_gdt - 1
	.quad rt_gdt

/*
 * Identity page tables for the first 4 GiB in 2 MiB pages, built by the
 * assembler rather than by a loop at boot: that loop was 10,000 of the
 * 18,000 instructions `hello` runs, and the hosts detvm is developed on
 * emulate guest kernel code at about 1 us an instruction.  In .data, so
 * that both entries (and QEMU's multiboot loader) find them loaded.
 */
	.section .data
	.balign 4096
	.globl rt_pml4, rt_pdpt, rt_pd
rt_pml4:
	.quad rt_pdpt + 3
	.fill 511, 8, 0
rt_pdpt:
	.quad rt_pd + 3, rt_pd + 0x1000 + 3, rt_pd + 0x2000 + 3, rt_pd + 0x3000 + 3
	.fill 508, 8, 0
rt_pd:
	.set pde, 0x83                 /* present | writable | 2 MiB */
	.rept 2048
	.quad pde
	.set pde, pde + 0x200000
	.endr

	.section .bss
	.balign 4096
	.balign 16
rt_stack: .skip 32768
	.globl rt_stack_top
rt_stack_top:

	.section .note.GNU-stack, "", @progbits
