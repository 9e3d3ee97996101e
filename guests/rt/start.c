/*
 * start.c - rt_start: turn either boot convention into struct machine, set
 * up the console and the IDT, probe virtio, run guest_main.
 */
#include "rt.h"

struct machine rt_machine;

struct multiboot_info {
	uint32_t flags;
	uint32_t mem_lower, mem_upper; /* KiB */
	uint32_t boot_device;
	uint32_t cmdline;
	uint32_t mods_count, mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length, mmap_addr;
} __attribute__((packed));

static char cmdline_buf[BOOT_CMDLINE_MAX];

void rt_virtio_probe(void);
void rt_start(int kind, uint32_t magic, uint64_t info);

static void copy_cmdline(const char *src, size_t max)
{
	size_t n = 0;
	if (src)
		while (n + 1 < sizeof(cmdline_buf) && n < max && src[n]) {
			cmdline_buf[n] = src[n];
			n++;
		}
	cmdline_buf[n] = 0;
}

/*
 * A multiboot loader (GRUB, QEMU) puts the kernel's path first on the
 * command line.  Drop that first word when it looks like a path, so that
 * both boot conventions show the guest the same command line.
 */
static const char *strip_kernel_path(char *s)
{
	char *end = s;
	int pathlike = 0;
	while (*end && *end != ' ') {
		if (*end == '/')
			pathlike = 1;
		end++;
	}
	if (end - s > 4 && !strncmp(end - 4, ".elf", 4))
		pathlike = 1;
	if (!pathlike)
		return s;
	while (*end == ' ')
		end++;
	return end;
}

static int rt_cmdline_has_raw(const char *s, const char *w)
{
	const char *save = rt_machine.cmdline;
	int r;
	if (!s)
		return 0;
	rt_machine.cmdline = s;
	r = rt_cmdline_has(w);
	rt_machine.cmdline = save;
	return r;
}

static void boot_fail(const char *what, uint64_t v)
{
	rt_printf("RESULT %s FAIL boot: %s (0x%lx)\n", rt_guest_name, what, v);
	rt_exit(RT_EXIT_BOOT);
}

void rt_start(int kind, uint32_t magic, uint64_t info)
{
	struct machine *m = &rt_machine;
	rt_serial_init();
	rt_idt_init();
	m->boot = kind;
	m->cmdline = cmdline_buf;

	if (kind == RT_BOOT_MULTIBOOT) {
		const struct multiboot_info *mbi = (const void *)(uintptr_t)info;
		if (magic != 0x2BADB002)
			boot_fail("bad multiboot magic", magic);
		/*
		 * RAM size: the end of the highest usable region of the memory
		 * map (else 1 MiB + mem_upper), rounded up to a whole MiB: a
		 * BIOS keeps a few KiB at the top of RAM for its tables (SeaBIOS:
		 * 128 KiB), which are still RAM the machine was given.
		 */
		if (mbi->flags & 1)
			m->mem_size = ((uint64_t)mbi->mem_upper + 1024) * 1024;
		if (mbi->flags & (1 << 6)) {
			uint64_t p = mbi->mmap_addr, end = p + mbi->mmap_length;
			while (p + 24 <= end) {
				const uint32_t *e = (const void *)(uintptr_t)p;
				uint64_t base = *(const uint64_t *)(e + 1), len = *(const uint64_t *)(e + 3);
				if (e[5] == 1 && base + len > m->mem_size)
					m->mem_size = base + len;
				p += e[0] + 4;
			}
		}
		m->mem_size = (m->mem_size + 0xfffff) & ~0xfffffULL;
		if (rt_cmdline_has_raw((const char *)(uintptr_t)((mbi->flags & 4) ? mbi->cmdline : 0), "verbose")) {
			rt_printf("rt: mbi flags=%x mem_lower=%u mem_upper=%u\n", mbi->flags, mbi->mem_lower, mbi->mem_upper);
			if (mbi->flags & (1 << 6)) {
				uint64_t p = mbi->mmap_addr, end = p + mbi->mmap_length;
				while (p < end) {
					const uint32_t *e = (const void *)(uintptr_t)p;
					rt_printf("rt: mmap %lx+%lx type %u\n", *(const uint64_t *)(e + 1), *(const uint64_t *)(e + 3), e[5]);
					p += e[0] + 4;
				}
			}
		}
		if (mbi->flags & (1 << 2)) {
			copy_cmdline((const char *)(uintptr_t)mbi->cmdline, BOOT_CMDLINE_MAX);
			m->cmdline = strip_kernel_path(cmdline_buf);
		}
	} else {
		const struct detvm_bootinfo *bi = (const void *)(uintptr_t)info;
		if (magic != DETVM_BOOTINFO_MAGIC)
			boot_fail("bad boot-info magic in RSI", magic);
		if (bi->magic != DETVM_BOOTINFO_MAGIC)
			boot_fail("bad boot-info block magic", bi->magic);
		if (bi->version != DETVM_BOOTINFO_VERSION)
			boot_fail("unknown boot-info version", bi->version);
		m->mem_size = bi->mem_size;
		copy_cmdline((const char *)(uintptr_t)bi->cmdline,
			     bi->cmdline_len ? bi->cmdline_len : BOOT_CMDLINE_MAX);
	}

	rt_virtio_probe();

	if (rt_cmdline_has("verbose")) {
		rt_printf("rt: boot=%s mem=%lu MiB cmdline=\"%s\" virtio=%d\n",
			  kind == RT_BOOT_MULTIBOOT ? "multiboot" : "elf64",
			  m->mem_size >> 20, m->cmdline, m->nr_virtio);
		for (int i = 0; i < m->nr_virtio; i++)
			rt_printf("rt: virtio slot %u base=%lx id=%u\n", m->virtio[i].slot,
				  m->virtio[i].base, m->virtio[i].device_id);
	}

	guest_main(m);
	rt_fail("guest_main returned");
}
