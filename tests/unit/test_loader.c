/* test_loader.c - ELF64 native boot and multiboot v1 loading, and every
 * malformed-image error path. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/loader.h"

#define MEM (8u << 20)
static uint8_t *ram;
static struct guest_mem gm;
static char err[256];

static int setup(void **state)
{
	(void)state;
	ram = calloc(1, MEM);
	gm_layout(&gm, ram, MEM);
	err[0] = 0;
	return ram ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	free(ram);
	return 0;
}

/* A minimal ELF64 with one PT_LOAD of `code` at paddr, memsz = filesz + bss. */
static size_t make_elf64(uint8_t *buf, uint64_t paddr, const uint8_t *code, size_t n, size_t bss)
{
	Elf64_Ehdr eh = { 0 };
	Elf64_Phdr ph = { 0 };
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_entry = paddr;
	eh.e_phoff = sizeof(eh);
	eh.e_phentsize = sizeof(ph);
	eh.e_phnum = 1;
	ph.p_type = PT_LOAD;
	ph.p_offset = 0x1000;
	ph.p_paddr = ph.p_vaddr = paddr;
	ph.p_filesz = n;
	ph.p_memsz = n + bss;
	memset(buf, 0, 0x1000 + n);
	memcpy(buf, &eh, sizeof(eh));
	memcpy(buf + sizeof(eh), &ph, sizeof(ph));
	memcpy(buf + 0x1000, code, n);
	return 0x1000 + n;
}

static void elf64_native_boot(void **state)
{
	(void)state;
	static uint8_t img[0x2000];
	const uint8_t code[] = { 0xf4, 0xeb, 0xfd };
	size_t n = make_elf64(img, 0x100000, code, sizeof(code), 16);
	memset(ram + 0x100003, 0xaa, 16); /* bss must be zeroed */
	struct boot_params bp = { .cmdline = "ticks=5", .nr_virtio = 1,
				  .virtio = { { 0xfeb00000, 10, 2 } } };
	struct boot_cpu cpu;
	assert_int_equal(loader_load(&gm, img, n, &bp, &cpu, err, sizeof(err)), 0);
	assert_int_equal(cpu.mode, BOOT_NATIVE64);
	assert_int_equal(cpu.rip, 0x100000);
	assert_memory_equal(ram + 0x100000, code, sizeof(code));
	for (int i = 0; i < 16; i++)
		assert_int_equal(ram[0x100003 + i], 0);
	assert_int_equal(cpu.rdi, BOOT_INFO);
	assert_int_equal(cpu.rsi, DETVM_BOOTINFO_MAGIC);
	assert_int_equal(cpu.cr3, BOOT_PAGE_TABLES);

	struct detvm_bootinfo bi;
	memcpy(&bi, ram + BOOT_INFO, sizeof(bi));
	assert_int_equal(bi.magic, DETVM_BOOTINFO_MAGIC);
	assert_int_equal(bi.mem_size, MEM);
	assert_int_equal(bi.nr_virtio, 1);
	assert_int_equal(bi.virtio[0].device_id, 2);
	assert_string_equal((char *)ram + bi.cmdline, "ticks=5");
	assert_int_equal(bi.cmdline_len, 7);
	/* The last usable region ends at the end of RAM. */
	assert_int_equal(bi.mem[bi.nr_mem - 1].base + bi.mem[bi.nr_mem - 1].len, MEM);

	/* Page tables: PML4[0] -> PDPT, PDPT[3] -> PD mapping 3 GiB with 2 MiB pages. */
	uint64_t *pml4 = (uint64_t *)(ram + BOOT_PAGE_TABLES);
	assert_int_equal(pml4[0] & ~0xfffULL, BOOT_PAGE_TABLES + 0x1000);
	uint64_t *pdpt = (uint64_t *)(ram + BOOT_PAGE_TABLES + 0x1000);
	uint64_t *pd3 = (uint64_t *)(ram + (pdpt[3] & ~0xfffULL));
	assert_int_equal(pd3[511], (3ULL << 30) + (511ULL << 21) + 0x83);
}

static void elf_errors(void **state)
{
	(void)state;
	static uint8_t img[0x2000];
	const uint8_t code[] = { 0xf4 };
	struct boot_params bp = { 0 };
	struct boot_cpu cpu;
	size_t n;

	/* Not an ELF, no multiboot header. */
	memset(img, 0x90, sizeof(img));
	assert_int_equal(loader_load(&gm, img, sizeof(img), &bp, &cpu, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not an ELF file"));

	/* Wrong machine. */
	n = make_elf64(img, 0x100000, code, 1, 0);
	((Elf64_Ehdr *)img)->e_machine = EM_AARCH64;
	assert_int_equal(loader_load(&gm, img, n, &bp, &cpu, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not x86-64"));

	/* Segment below 1 MiB. */
	n = make_elf64(img, 0x8000, code, 1, 0);
	assert_int_equal(loader_load(&gm, img, n, &bp, &cpu, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "below 1 MiB"));

	/* Segment that does not fit in RAM. */
	n = make_elf64(img, MEM - 0x10, code, 1, 0x100);
	assert_int_equal(loader_load(&gm, img, n, &bp, &cpu, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "does not fit in guest RAM"));

	/* File range beyond the end of the image. */
	n = make_elf64(img, 0x100000, code, 1, 0);
	assert_int_equal(loader_load(&gm, img, n - 1, &bp, &cpu, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "beyond the end"));

	/* Program headers beyond the end. */
	n = make_elf64(img, 0x100000, code, 1, 0);
	((Elf64_Ehdr *)img)->e_phnum = 60000;
	assert_int_equal(loader_load(&gm, img, n, &bp, &cpu, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "program headers"));

	/* Entry outside every segment. */
	n = make_elf64(img, 0x100000, code, 1, 0);
	((Elf64_Ehdr *)img)->e_entry = 0x200000;
	assert_int_equal(loader_load(&gm, img, n, &bp, &cpu, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "entry point"));

	/* Truncated header. */
	assert_int_equal(loader_load(&gm, img, 20, &bp, &cpu, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cut off"));

	/* Command line too long. */
	n = make_elf64(img, 0x100000, code, 1, 0);
	char *big = malloc(BOOT_CMDLINE_MAX + 10);
	memset(big, 'a', BOOT_CMDLINE_MAX + 9);
	big[BOOT_CMDLINE_MAX + 9] = 0;
	bp.cmdline = big;
	assert_int_equal(loader_load(&gm, img, n, &bp, &cpu, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "command line"));
	free(big);
}

/* A raw multiboot image with the a.out kludge, loaded at 1 MiB. */
static size_t make_aout(uint8_t *buf, uint32_t flags_extra)
{
	uint32_t h[8];
	memset(buf, 0x90, 0x1000);
	h[0] = 0x1BADB002;
	h[1] = (1u << 16) | flags_extra;
	h[2] = (uint32_t)-(h[0] + h[1]);
	h[3] = 0x100040;            /* header_addr: header at file offset 0x40 */
	h[4] = 0x100000;            /* load_addr */
	h[5] = 0;                   /* load_end: whole file */
	h[6] = 0x102000;            /* bss_end */
	h[7] = 0x100080;            /* entry */
	memcpy(buf + 0x40, h, sizeof(h));
	return 0x1000;
}

static void multiboot_aout(void **state)
{
	(void)state;
	static uint8_t img[0x1000];
	size_t n = make_aout(img, 0);
	struct boot_params bp = { .cmdline = "hello" };
	struct boot_cpu cpu;
	memset(ram + 0x101000, 0x55, 0x1000);
	assert_int_equal(loader_load(&gm, img, n, &bp, &cpu, err, sizeof(err)), 0);
	assert_int_equal(cpu.mode, BOOT_MULTIBOOT);
	assert_int_equal(cpu.rip, 0x100080);
	assert_int_equal(cpu.rax, 0x2BADB002);
	assert_int_equal(cpu.rbx, BOOT_MBINFO);
	assert_int_equal(cpu.code_sel, GDT_SEL_CODE32);
	assert_int_equal(ram[0x100000], 0x90);
	assert_int_equal(ram[0x101000], 0); /* bss zeroed */
	uint32_t mbi[12];
	memcpy(mbi, ram + BOOT_MBINFO, sizeof(mbi));
	assert_true(mbi[0] & (1u << 6));               /* MMAP */
	assert_int_equal(mbi[2], (MEM - 0x100000) >> 10); /* mem_upper in KiB */
	assert_string_equal((char *)ram + mbi[4], "hello");

	/* An unsupported required flag is refused. */
	n = make_aout(img, 1u << 5);
	assert_int_equal(loader_load(&gm, img, n, &bp, &cpu, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "requires features"));

	/* Entry outside the image. */
	n = make_aout(img, 0);
	uint32_t bad_entry = 0x900000;
	memcpy(img + 0x40 + 28, &bad_entry, 4);
	assert_int_equal(loader_load(&gm, img, n, &bp, &cpu, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "entry_addr"));
}

static void force_multiboot_on_elf64(void **state)
{
	(void)state;
	static uint8_t img[0x2000];
	const uint8_t code[] = { 0xf4 };
	size_t n = make_elf64(img, 0x100000, code, 1, 0);
	struct boot_params bp = { .force_multiboot = true };
	struct boot_cpu cpu;
	assert_int_equal(loader_load(&gm, img, n, &bp, &cpu, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no multiboot v1 header"));
}

static void tiny_ram_refused(void **state)
{
	(void)state;
	struct guest_mem small;
	gm_layout(&small, ram, 1 << 20);
	static uint8_t img[0x2000];
	const uint8_t code[] = { 0xf4 };
	size_t n = make_elf64(img, 0x100000, code, 1, 0);
	struct boot_params bp = { 0 };
	struct boot_cpu cpu;
	assert_int_equal(loader_load(&small, img, n, &bp, &cpu, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too small"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(elf64_native_boot, setup, teardown),
		cmocka_unit_test_setup_teardown(elf_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(multiboot_aout, setup, teardown),
		cmocka_unit_test_setup_teardown(force_multiboot_on_elf64, setup, teardown),
		cmocka_unit_test_setup_teardown(tiny_ram_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
