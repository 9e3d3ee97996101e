/*
 * loader.c - ELF64 native boot and multiboot v1 boot.  See loader.h.
 *
 * Why both: our own guests boot natively (long mode straight away, which is
 * cheap here because 32-bit code is emulated), while test kernels written for
 * QEMU's -kernel (kvm-unit-tests and the like) expect multiboot.
 */
#include "loader.h"
#include "common/errf.h"

#include <elf.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MB_HEADER_MAGIC  0x1BADB002u
#define MB_BOOT_MAGIC    0x2BADB002u
#define MB_SEARCH        8192
#define MB_FLAG_ALIGN    (1u << 0)
#define MB_FLAG_MEMINFO  (1u << 1)
#define MB_FLAG_VIDEO    (1u << 2)
#define MB_FLAG_AOUT     (1u << 16)

#define MBI_MEM     (1u << 0)
#define MBI_CMDLINE (1u << 2)
#define MBI_MMAP    (1u << 6)
#define MBI_LOADER  (1u << 9)

struct mb_header {
	uint32_t magic, flags, checksum;
	uint32_t header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr;
};

struct mb_info {
	uint32_t flags, mem_lower, mem_upper, boot_device, cmdline;
	uint32_t mods_count, mods_addr, syms[4];
	uint32_t mmap_length, mmap_addr;
	uint32_t drives_length, drives_addr, config_table, boot_loader_name;
} __attribute__((packed));

struct mb_mmap {
	uint32_t size;
	uint64_t base, len;
	uint32_t type;
} __attribute__((packed));

const char *boot_mode_name(enum boot_mode m)
{
	return m == BOOT_NATIVE64 ? "elf64" : "multiboot";
}

/* Copy file bytes [off, off + filesz) to gpa and zero up to memsz. */
static int place(const struct guest_mem *gm, const uint8_t *image, size_t size,
		 uint64_t off, uint64_t filesz, uint64_t gpa, uint64_t memsz,
		 const char *what, char *err, size_t errlen)
{
	if (filesz > memsz)
		return errf(err, errlen, "%s: file size 0x%llx exceeds memory size 0x%llx",
			    what, (unsigned long long)filesz, (unsigned long long)memsz);
	if (off > size || filesz > size - off)
		return errf(err, errlen, "%s: file range 0x%llx+0x%llx lies beyond the end of the image (%zu bytes)",
			    what, (unsigned long long)off, (unsigned long long)filesz, size);
	if (gpa < BOOT_KERNEL_MIN)
		return errf(err, errlen, "%s: load address 0x%llx is below 1 MiB, where detvm keeps its boot data",
			    what, (unsigned long long)gpa);
	uint8_t *dst = gm_ptr(gm, gpa, memsz);
	if (!dst)
		return errf(err, errlen, "%s: 0x%llx..0x%llx does not fit in guest RAM (%llu MiB); give more --mem",
			    what, (unsigned long long)gpa, (unsigned long long)(gpa + memsz),
			    (unsigned long long)(gm->size >> 20));
	memcpy(dst, image + off, filesz);
	memset(dst + filesz, 0, memsz - filesz);
	return 0;
}

static int load_elf64(const struct guest_mem *gm, const uint8_t *image, size_t size,
		      uint64_t *entry, char *err, size_t errlen)
{
	Elf64_Ehdr eh;
	memcpy(&eh, image, sizeof(eh));
	if (eh.e_machine != EM_X86_64)
		return errf(err, errlen, "ELF machine is %u, not x86-64 (62)", eh.e_machine);
	if (eh.e_type != ET_EXEC)
		return errf(err, errlen, "ELF type is %u, not an executable (ET_EXEC); relocatable and PIE kernels are not supported", eh.e_type);
	if (eh.e_phentsize != sizeof(Elf64_Phdr))
		return errf(err, errlen, "ELF program header entry size is %u, expected %zu", eh.e_phentsize, sizeof(Elf64_Phdr));
	if (eh.e_phoff > size || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > size - eh.e_phoff)
		return errf(err, errlen, "ELF program headers (offset 0x%llx, %u entries) lie beyond the end of the file",
			    (unsigned long long)eh.e_phoff, eh.e_phnum);
	int loaded = 0;
	bool entry_ok = false;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		char what[48];
		memcpy(&ph, image + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		snprintf(what, sizeof(what), "ELF segment %u", i);
		if (place(gm, image, size, ph.p_offset, ph.p_filesz, ph.p_paddr, ph.p_memsz, what, err, errlen))
			return -1;
		if (eh.e_entry >= ph.p_paddr && eh.e_entry - ph.p_paddr < ph.p_memsz)
			entry_ok = true;
		loaded++;
	}
	if (!loaded)
		return errf(err, errlen, "ELF file has no loadable segment");
	if (!entry_ok)
		return errf(err, errlen, "ELF entry point 0x%llx is not inside any loaded segment",
			    (unsigned long long)eh.e_entry);
	*entry = eh.e_entry;
	return 0;
}

static int load_elf32(const struct guest_mem *gm, const uint8_t *image, size_t size,
		      uint64_t *entry, char *err, size_t errlen)
{
	Elf32_Ehdr eh;
	memcpy(&eh, image, sizeof(eh));
	if (eh.e_machine != EM_386)
		return errf(err, errlen, "ELF32 machine is %u, not i386 (3)", eh.e_machine);
	if (eh.e_phentsize != sizeof(Elf32_Phdr))
		return errf(err, errlen, "ELF32 program header entry size is %u, expected %zu", eh.e_phentsize, sizeof(Elf32_Phdr));
	if (eh.e_phoff > size || (uint64_t)eh.e_phnum * sizeof(Elf32_Phdr) > size - eh.e_phoff)
		return errf(err, errlen, "ELF32 program headers lie beyond the end of the file");
	int loaded = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf32_Phdr ph;
		char what[48];
		memcpy(&ph, image + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		snprintf(what, sizeof(what), "ELF32 segment %u", i);
		if (place(gm, image, size, ph.p_offset, ph.p_filesz, ph.p_paddr, ph.p_memsz, what, err, errlen))
			return -1;
		loaded++;
	}
	if (!loaded)
		return errf(err, errlen, "ELF32 file has no loadable segment");
	*entry = eh.e_entry;
	return 0;
}

/* Offset of a valid multiboot header in the first 8 KiB, or -1. */
static long find_multiboot(const uint8_t *image, size_t size, struct mb_header *h)
{
	size_t limit = size < MB_SEARCH ? size : MB_SEARCH;
	for (size_t off = 0; off + 12 <= limit; off += 4) {
		uint32_t w[3];
		memcpy(w, image + off, 12);
		if (w[0] == MB_HEADER_MAGIC && (uint32_t)(w[0] + w[1] + w[2]) == 0) {
			memset(h, 0, sizeof(*h));
			memcpy(h, image + off, off + sizeof(*h) <= size ? sizeof(*h) : 12);
			return (long)off;
		}
	}
	return -1;
}

static int load_aout_kludge(const struct guest_mem *gm, const uint8_t *image, size_t size,
			    long hoff, const struct mb_header *h, uint64_t *entry,
			    char *err, size_t errlen)
{
	if ((size_t)hoff + sizeof(*h) > size)
		return errf(err, errlen, "multiboot header at offset 0x%lx is cut off by the end of the file", hoff);
	if (h->load_addr > h->header_addr)
		return errf(err, errlen, "multiboot load_addr 0x%x is above header_addr 0x%x", h->load_addr, h->header_addr);
	uint64_t file_off = (uint64_t)hoff - (h->header_addr - h->load_addr);
	if ((uint64_t)(h->header_addr - h->load_addr) > (uint64_t)hoff)
		return errf(err, errlen, "multiboot header_addr - load_addr (0x%x) is larger than the header's file offset 0x%lx",
			    h->header_addr - h->load_addr, hoff);
	uint64_t load_end = h->load_end_addr ? h->load_end_addr : h->load_addr + (size - file_off);
	if (load_end < h->load_addr)
		return errf(err, errlen, "multiboot load_end_addr 0x%x is below load_addr 0x%x", h->load_end_addr, h->load_addr);
	uint64_t filesz = load_end - h->load_addr;
	uint64_t memsz = filesz;
	if (h->bss_end_addr) {
		if (h->bss_end_addr < load_end)
			return errf(err, errlen, "multiboot bss_end_addr 0x%x is below load_end_addr 0x%llx",
				    h->bss_end_addr, (unsigned long long)load_end);
		memsz = h->bss_end_addr - h->load_addr;
	}
	if (place(gm, image, size, file_off, filesz, h->load_addr, memsz, "multiboot image", err, errlen))
		return -1;
	if (h->entry_addr < h->load_addr || h->entry_addr >= h->load_addr + memsz)
		return errf(err, errlen, "multiboot entry_addr 0x%x is outside the loaded image 0x%x..0x%llx",
			    h->entry_addr, h->load_addr, (unsigned long long)(h->load_addr + memsz));
	*entry = h->entry_addr;
	return 0;
}

static int memory_map(const struct guest_mem *gm, struct detvm_bootinfo_mem *m)
{
	int n = 0;
	m[n++] = (struct detvm_bootinfo_mem){ 0, 0x9fc00, BOOTINFO_MEM_USABLE, 0 };
	m[n++] = (struct detvm_bootinfo_mem){ 0x9fc00, 0x100000 - 0x9fc00, BOOTINFO_MEM_RESERVED, 0 };
	m[n++] = (struct detvm_bootinfo_mem){ 0x100000, gm->low_size - 0x100000, BOOTINFO_MEM_USABLE, 0 };
	if (gm->high_size)
		m[n++] = (struct detvm_bootinfo_mem){ GM_HIGH_START, gm->high_size, BOOTINFO_MEM_USABLE, 0 };
	return n;
}

static int write_cmdline(const struct guest_mem *gm, const char *cmdline, uint32_t *len,
			 char *err, size_t errlen)
{
	const char *s = cmdline ? cmdline : "";
	size_t n = strlen(s);
	if (n + 1 > BOOT_CMDLINE_MAX)
		return errf(err, errlen, "command line is %zu bytes; at most %llu fit", n,
			    (unsigned long long)BOOT_CMDLINE_MAX - 1);
	if (gm_write(gm, BOOT_CMDLINE, s, n + 1))
		return errf(err, errlen, "guest RAM too small for the command line");
	*len = (uint32_t)n;
	return 0;
}

static void write_gdt(const struct guest_mem *gm, struct boot_cpu *cpu)
{
	const uint64_t gdt[4] = {
		0,
		0x00af9a000000ffffULL, /* 0x08: 64-bit code, DPL0 */
		0x00cf92000000ffffULL, /* 0x10: flat data, 4 GiB */
		0x00cf9a000000ffffULL, /* 0x18: flat 32-bit code, 4 GiB */
	};
	gm_write(gm, BOOT_GDT, gdt, sizeof(gdt));
	cpu->gdt_base = BOOT_GDT;
	cpu->gdt_limit = sizeof(gdt) - 1;
	cpu->data_sel = GDT_SEL_DATA;
}

/* Identity-map [0, max(4 GiB, top of RAM)) with 2 MiB pages. */
static int write_page_tables(const struct guest_mem *gm, char *err, size_t errlen)
{
	uint64_t top = gm->high_size ? GM_HIGH_START + gm->high_size : GM_HIGH_START;
	uint64_t gibs = (top + (1ULL << 30) - 1) >> 30;
	uint64_t pml4 = BOOT_PAGE_TABLES, pdpt = pml4 + 0x1000, pd0 = pdpt + 0x1000;

	if (gibs > 512 || pd0 + gibs * 0x1000 > BOOT_PAGE_TABLES_END)
		return errf(err, errlen, "guest RAM too large to identity-map (%llu GiB)", (unsigned long long)gibs);
	uint64_t *t = gm_ptr(gm, pml4, BOOT_PAGE_TABLES_END - pml4);
	if (!t)
		return errf(err, errlen, "guest RAM too small for the boot page tables");
	memset(t, 0, BOOT_PAGE_TABLES_END - pml4);
	t[0] = pdpt | 0x3; /* present, writable */
	uint64_t *pdpte = t + 512;
	for (uint64_t g = 0; g < gibs; g++) {
		pdpte[g] = (pd0 + g * 0x1000) | 0x3;
		uint64_t *pd = t + 1024 + g * 512;
		for (uint64_t i = 0; i < 512; i++)
			pd[i] = ((g << 30) + (i << 21)) | 0x83; /* present, writable, 2 MiB */
	}
	return 0;
}

static int boot_native(const struct guest_mem *gm, const struct boot_params *bp,
		       uint64_t entry, struct boot_cpu *cpu, char *err, size_t errlen)
{
	struct detvm_bootinfo bi;
	memset(&bi, 0, sizeof(bi));
	bi.magic = DETVM_BOOTINFO_MAGIC;
	bi.version = DETVM_BOOTINFO_VERSION;
	bi.size = sizeof(bi);
	bi.mem_size = gm->size;
	bi.nr_mem = (uint32_t)memory_map(gm, bi.mem);
	bi.cmdline = BOOT_CMDLINE;
	if (write_cmdline(gm, bp->cmdline, &bi.cmdline_len, err, errlen))
		return -1;
	bi.nr_virtio = (uint32_t)bp->nr_virtio;
	memcpy(bi.virtio, bp->virtio, sizeof(bi.virtio[0]) * (size_t)bp->nr_virtio);
	bi.lapic_base = DEV_LAPIC_BASE;
	bi.ioapic_base = DEV_IOAPIC_BASE;
	bi.com1_port = DEV_COM1_PORT;
	bi.com1_irq = DEV_COM1_IRQ;
	if (gm_write(gm, BOOT_INFO, &bi, sizeof(bi)))
		return errf(err, errlen, "guest RAM too small for the boot-info block");
	if (write_page_tables(gm, err, errlen))
		return -1;
	write_gdt(gm, cpu);
	cpu->mode = BOOT_NATIVE64;
	cpu->rip = entry;
	cpu->rsp = BOOT_STACK_TOP;
	cpu->rflags = 0x2;
	cpu->rdi = BOOT_INFO;
	cpu->rsi = DETVM_BOOTINFO_MAGIC;
	cpu->cr3 = BOOT_PAGE_TABLES;
	cpu->code_sel = GDT_SEL_CODE64;
	return 0;
}

static int boot_multiboot(const struct guest_mem *gm, const struct boot_params *bp,
			  uint64_t entry, struct boot_cpu *cpu, char *err, size_t errlen)
{
	struct detvm_bootinfo_mem map[BOOTINFO_MAX_MEM];
	int n = memory_map(gm, map);
	struct mb_info mbi;
	uint32_t cmdlen;
	static const char loader_name[] = "detvm";

	if (entry > 0xffffffffULL)
		return errf(err, errlen, "multiboot entry 0x%llx is above 4 GiB", (unsigned long long)entry);
	if (write_cmdline(gm, bp->cmdline, &cmdlen, err, errlen))
		return -1;
	memset(&mbi, 0, sizeof(mbi));
	mbi.flags = MBI_MEM | MBI_CMDLINE | MBI_MMAP | MBI_LOADER;
	mbi.mem_lower = 640;
	mbi.mem_upper = (uint32_t)((gm->low_size - 0x100000) >> 10);
	mbi.cmdline = BOOT_CMDLINE;
	uint64_t mmap_addr = BOOT_MBINFO + sizeof(mbi);
	for (int i = 0; i < n; i++) {
		struct mb_mmap e = { 20, map[i].base, map[i].len, map[i].type };
		if (gm_write(gm, mmap_addr + (uint64_t)i * sizeof(e), &e, sizeof(e)))
			return errf(err, errlen, "guest RAM too small for the multiboot memory map");
	}
	mbi.mmap_addr = (uint32_t)mmap_addr;
	mbi.mmap_length = (uint32_t)(n * sizeof(struct mb_mmap));
	uint64_t name_addr = mmap_addr + mbi.mmap_length;
	mbi.boot_loader_name = (uint32_t)name_addr;
	if (gm_write(gm, name_addr, loader_name, sizeof(loader_name)) ||
	    gm_write(gm, BOOT_MBINFO, &mbi, sizeof(mbi)))
		return errf(err, errlen, "guest RAM too small for the multiboot info");
	write_gdt(gm, cpu);
	cpu->mode = BOOT_MULTIBOOT;
	cpu->rip = entry;
	cpu->rsp = 0;
	cpu->rflags = 0x2;
	cpu->rax = MB_BOOT_MAGIC;
	cpu->rbx = BOOT_MBINFO;
	cpu->code_sel = GDT_SEL_CODE32;
	return 0;
}

int loader_load(const struct guest_mem *gm, const uint8_t *image, size_t size,
		const struct boot_params *bp, struct boot_cpu *cpu,
		char *err, size_t errlen)
{
	struct mb_header mbh;
	long mboff = find_multiboot(image, size, &mbh);
	bool is_elf = size >= EI_NIDENT && memcmp(image, ELFMAG, SELFMAG) == 0;
	uint64_t entry = 0;

	memset(cpu, 0, sizeof(*cpu));
	if (gm->low_size < 2 * BOOT_KERNEL_MIN)
		return errf(err, errlen, "guest RAM (%llu KiB) is too small: at least 2 MiB are needed",
			    (unsigned long long)(gm->size >> 10));
	if (is_elf && image[EI_DATA] != ELFDATA2LSB)
		return errf(err, errlen, "ELF file is not little-endian");
	if (is_elf && image[EI_CLASS] == ELFCLASS64 && size < sizeof(Elf64_Ehdr))
		return errf(err, errlen, "ELF64 header is cut off (file is %zu bytes)", size);
	if (is_elf && image[EI_CLASS] == ELFCLASS32 && size < sizeof(Elf32_Ehdr))
		return errf(err, errlen, "ELF32 header is cut off (file is %zu bytes)", size);

	if (is_elf && image[EI_CLASS] == ELFCLASS64 && !bp->force_multiboot) {
		if (load_elf64(gm, image, size, &entry, err, errlen))
			return -1;
		return boot_native(gm, bp, entry, cpu, err, errlen);
	}
	if (mboff < 0) {
		if (bp->force_multiboot)
			return errf(err, errlen, "--boot multiboot: no multiboot v1 header in the first 8 KiB");
		if (is_elf)
			return errf(err, errlen, "32-bit ELF without a multiboot header: not bootable (detvm boots 64-bit ELF or multiboot v1)");
		return errf(err, errlen, "not an ELF file and no multiboot v1 header in the first 8 KiB");
	}
	if (mbh.flags & 0xfff8u)
		return errf(err, errlen, "multiboot header (offset 0x%lx) requires features 0x%x that detvm does not provide",
			    mboff, mbh.flags & 0xfff8u);
	if (mbh.flags & MB_FLAG_AOUT) {
		if (load_aout_kludge(gm, image, size, mboff, &mbh, &entry, err, errlen))
			return -1;
	} else if (is_elf && image[EI_CLASS] == ELFCLASS32) {
		if (load_elf32(gm, image, size, &entry, err, errlen))
			return -1;
	} else if (is_elf) {
		return errf(err, errlen, "64-bit ELF multiboot kernel without the a.out kludge (flag bit 16): QEMU refuses these too");
	} else {
		return errf(err, errlen, "multiboot header without the a.out kludge, and the file is not ELF32");
	}
	return boot_multiboot(gm, bp, entry, cpu, err, errlen);
}
