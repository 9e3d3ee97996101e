/*
 * bootinfo.h - the machine detvm presents to a guest, and the boot-info block
 * it passes to a 64-bit ELF guest.  Shared verbatim with the guests (which
 * are freestanding: this header needs only <stdint.h>).
 *
 * 64-bit ELF entry: the vCPU starts at e_entry in long mode, CPL0, flat
 * segments, interrupts disabled, identity paging of [0, max(4 GiB, top of
 * RAM)) with 2 MiB pages (page tables at BOOT_PAGE_TABLES, read/write,
 * executable), RSP = BOOT_STACK_TOP, RDI = physical address of a struct
 * detvm_bootinfo, RSI = DETVM_BOOTINFO_MAGIC.
 *
 * Multiboot v1 entry (a kernel whose first 8 KiB hold a multiboot header):
 * as QEMU's -kernel does it: 32-bit protected mode, paging off, flat 4 GiB
 * segments, EAX = 0x2BADB002, EBX = physical address of the multiboot info
 * (flags: MEM, CMDLINE, MMAP).
 */
#ifndef DETVM_BOOTINFO_H
#define DETVM_BOOTINFO_H

#include <stdint.h>

/* Low memory used by the monitor at boot; all of it is ordinary RAM that
 * the guest may reuse once it has read what it needs. */
#define BOOT_GDT          0x1000ULL
#define BOOT_INFO         0x2000ULL
#define BOOT_CMDLINE      0x3000ULL /* NUL-terminated, at most BOOT_CMDLINE_MAX */
#define BOOT_CMDLINE_MAX  0x1000ULL
#define BOOT_MBINFO       0x4000ULL /* multiboot info + memory map */
#define BOOT_PAGE_TABLES  0x10000ULL /* PML4, PDPT, then one PD per GiB */
#define BOOT_PAGE_TABLES_END 0x70000ULL
#define BOOT_STACK_TOP    0x80000ULL
#define BOOT_KERNEL_MIN   0x100000ULL /* kernels load at or above 1 MiB */

/* Devices (fixed addresses, as on a PC / QEMU microvm). */
#define DEV_COM1_PORT     0x3f8
#define DEV_COM1_IRQ      4
#define DEV_PIC_MASTER    0x20
#define DEV_PIC_SLAVE     0xa0
#define DEV_PIC_ELCR      0x4d0
#define DEV_PIT_PORT      0x40
#define DEV_PIT_IRQ       0
#define DEV_PORTB         0x61
#define DEV_RTC_PORT      0x70
#define DEV_RTC_IRQ       8
#define DEV_DEBUG_EXIT    0xf4   /* write V: the run ends, status (V << 1) | 1 */
#define DEV_POWEROFF      0x604  /* 16-bit write with bit 13 (SLP_EN): power off */
#define DEV_FWCFG_PORT    0x510  /* selector (16-bit) at 0x510, data at 0x511 */
#define DEV_LAPIC_BASE    0xfee00000ULL
#define DEV_IOAPIC_BASE   0xfec00000ULL
#define DEV_VIRTIO_BASE   0xfeb00000ULL /* slot i at BASE + i * STRIDE */
#define DEV_VIRTIO_STRIDE 0x200ULL
#define DEV_VIRTIO_SLOTS  24
#define DEV_VIRTIO_IRQ0   10     /* slot i uses GSI DEV_VIRTIO_IRQ0 + i */

#define PIT_HZ            1193182ULL
#define LAPIC_TIMER_HZ    1000000000ULL /* APIC bus clock before the divider */

#define DETVM_BOOTINFO_MAGIC   0x4d565444u /* "DTVM" */
#define DETVM_BOOTINFO_VERSION 1

#define BOOTINFO_MEM_USABLE   1
#define BOOTINFO_MEM_RESERVED 2
#define BOOTINFO_MAX_MEM      8
#define BOOTINFO_MAX_VIRTIO   8

struct detvm_bootinfo_mem {
	uint64_t base;
	uint64_t len;
	uint32_t type;
	uint32_t reserved;
};

struct detvm_bootinfo_virtio {
	uint64_t base;      /* MMIO base of the virtio-mmio transport */
	uint32_t irq;       /* GSI */
	uint32_t device_id; /* 2 = block, 4 = entropy */
};

struct detvm_bootinfo {
	uint32_t magic;   /* DETVM_BOOTINFO_MAGIC */
	uint32_t version; /* DETVM_BOOTINFO_VERSION */
	uint32_t size;    /* sizeof(struct detvm_bootinfo) */
	uint32_t nr_mem;
	uint64_t mem_size; /* total RAM bytes */
	uint64_t cmdline;  /* physical address of the NUL-terminated command line */
	uint32_t cmdline_len;
	uint32_t nr_virtio;
	uint64_t lapic_base;
	uint64_t ioapic_base;
	uint16_t com1_port;
	uint8_t com1_irq;
	uint8_t reserved0[5];
	struct detvm_bootinfo_mem mem[BOOTINFO_MAX_MEM];
	struct detvm_bootinfo_virtio virtio[BOOTINFO_MAX_VIRTIO];
};

#endif
