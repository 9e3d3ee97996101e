/*
 * loader.h - put a guest kernel into guest RAM and say how the vCPU starts.
 *
 * Two boot protocols (see bootinfo.h for the exact machine state):
 *   - native: a 64-bit x86-64 ELF (ET_EXEC) entered in long mode at e_entry,
 *     with identity page tables, a GDT and a struct detvm_bootinfo built here;
 *   - multiboot v1, as QEMU's -kernel: a kernel whose first 8 KiB hold a
 *     multiboot header, loaded as ELF32 or by the header's a.out-kludge
 *     addresses, entered in 32-bit protected mode with a multiboot info block.
 * A 64-bit ELF boots natively unless the caller forces multiboot (it then
 * needs the a.out kludge, as with QEMU).  Anything else is refused.
 *
 * The loader is pure: it writes only through struct guest_mem and reports
 * the initial CPU state in struct boot_cpu; it needs no KVM.  Every field of
 * the image is untrusted: offsets, sizes and addresses are checked against
 * the file and against guest RAM, and errors name the offending field.
 */
#ifndef DETVM_LOADER_H
#define DETVM_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bootinfo.h"
#include "guest_mem.h"

enum boot_mode { BOOT_NATIVE64, BOOT_MULTIBOOT };

struct boot_params {
	const char *cmdline;  /* may be NULL */
	bool force_multiboot;
	int nr_virtio;
	struct detvm_bootinfo_virtio virtio[BOOTINFO_MAX_VIRTIO];
};

/* Initial CPU state; kvm.c turns it into KVM registers. */
struct boot_cpu {
	enum boot_mode mode;
	uint64_t rip, rsp, rflags;
	uint64_t rax, rbx, rdi, rsi;
	uint64_t cr3;      /* native only */
	uint64_t gdt_base;
	uint16_t gdt_limit;
	uint16_t code_sel; /* selector of the code segment in our GDT */
	uint16_t data_sel;
};

/* GDT layout the loader writes at BOOT_GDT. */
#define GDT_SEL_CODE64 0x08
#define GDT_SEL_DATA   0x10
#define GDT_SEL_CODE32 0x18

/*
 * Load `image` (size bytes) into gm.  Returns 0, or -1 with a message in
 * err[0..errlen).
 */
int loader_load(const struct guest_mem *gm, const uint8_t *image, size_t size,
		const struct boot_params *bp, struct boot_cpu *cpu,
		char *err, size_t errlen);

const char *boot_mode_name(enum boot_mode m);

#endif
