/*
 * rt.h - the freestanding runtime shared by detvm's test guests.
 *
 * Boot: rt/entry.S (multiboot v1 with the a.out kludge, or detvm's 64-bit
 * ELF entry) -> rt_start() (rt/start.c) -> guest_main(), which each guest
 * defines and which must end in rt_pass() or rt_fail().
 *
 * Output convention: every guest prints one final line
 *   RESULT <name> ok checksum=<hex>      (exit value 0, status 1)
 *   RESULT <name> FAIL <why>             (exit value RT_EXIT_FAIL, status 3)
 * Lines whose content depends on time or entropy start with "time-dependent:"
 * (RT_TD) so that tests/e2e/qemu_diff.sh can drop them.
 */
#ifndef GUESTS_RT_H
#define GUESTS_RT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "../../vmm/bootinfo.h"

#define RT_TD "time-dependent: "

/* Exit values (the debug-exit port turns V into status (V << 1) | 1). */
#define RT_EXIT_OK        0
#define RT_EXIT_FAIL      1 /* a check failed */
#define RT_EXIT_EXCEPTION 2 /* an exception nobody handled */
#define RT_EXIT_BOOT      3 /* the boot information made no sense */

#define RT_BOOT_MULTIBOOT 1
#define RT_BOOT_ELF64     2

#define RT_MAX_VIRTIO DEV_VIRTIO_SLOTS

struct rt_virtio_slot {
	uint64_t base;
	uint32_t device_id;
	uint32_t slot;
};

/* The normalised view of the machine, whichever way the guest booted. */
struct machine {
	int boot;             /* RT_BOOT_* */
	uint64_t mem_size;    /* bytes of RAM */
	const char *cmdline;  /* without a leading kernel path */
	int nr_virtio;
	struct rt_virtio_slot virtio[RT_MAX_VIRTIO];
};

extern struct machine rt_machine;
extern const char *rt_guest_name;

/* Defined by each guest. */
void guest_main(struct machine *m);

/* ---- ports, MMIO, CPU ---- */
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" :: "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint16_t inw(uint16_t port) { uint16_t v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static inline uint32_t mmio_read32(uint64_t addr) { return *(volatile uint32_t *)(uintptr_t)addr; }
static inline void mmio_write32(uint64_t addr, uint32_t v) { *(volatile uint32_t *)(uintptr_t)addr = v; }
static inline uint8_t mmio_read8(uint64_t addr) { return *(volatile uint8_t *)(uintptr_t)addr; }

static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
/* Enable interrupts and halt atomically (the STI shadow covers the HLT). */
static inline void sti_hlt(void) { __asm__ volatile("sti; hlt" ::: "memory"); }
static inline void hlt(void) { __asm__ volatile("hlt" ::: "memory"); }
static inline void pause(void) { __asm__ volatile("pause" ::: "memory"); }
static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}
static inline uint64_t read_cr2(void) { uint64_t v; __asm__ volatile("mov %%cr2, %0" : "=r"(v)); return v; }
static inline uint64_t read_cr3(void) { uint64_t v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v; }
static inline void invlpg(uint64_t va) { __asm__ volatile("invlpg (%0)" :: "r"(va) : "memory"); }

/* ---- library (rt/lib.c) ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);

#define FNV64_INIT 0xcbf29ce484222325ULL
uint64_t fnv1a64(uint64_t h, const void *data, size_t len);
uint64_t fnv1a64_u64(uint64_t h, uint64_t v);
uint64_t fnv1a64_str(uint64_t h, const char *s);

/* Command line: "key=value" words; returns def when absent or malformed. */
uint64_t rt_cmdline_uint(const char *key, uint64_t def);
int rt_cmdline_has(const char *word);

/* ---- console (rt/console.c): COM1, polled ---- */
void rt_serial_init(void);
void rt_putc(char c);
void rt_puts(const char *s);
int rt_vprintf(const char *fmt, va_list ap);
int rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int rt_snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void rt_hexdump_td(const char *label, const void *data, size_t len);

void rt_exit(uint32_t value) __attribute__((noreturn));
void rt_pass(uint64_t checksum) __attribute__((noreturn));
void rt_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* ---- traps (rt/trap.c, rt/stubs.S) ---- */
struct trapframe {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vec, err;
	uint64_t rip, cs, rflags, rsp, ss;
};

/* Return nonzero if the exception was handled (the frame may be edited). */
typedef int (*rt_exc_handler)(struct trapframe *tf);
typedef void (*rt_irq_handler)(struct trapframe *tf);

void rt_idt_init(void);
void rt_set_exception_handler(unsigned vec, rt_exc_handler h);
void rt_set_irq_handler(unsigned vec, rt_irq_handler h);
extern volatile uint64_t rt_unexpected_irqs;

/*
 * One-shot recovery: if an exception happens while rt_fixup.rip is nonzero,
 * execution resumes at rt_fixup.rip (which is then cleared) and the
 * exception is recorded in rt_fixup.
 */
struct rt_fixup {
	volatile uint64_t rip;
	volatile uint64_t vec, err, cr2, fault_rip;
	volatile uint64_t count;
};
extern struct rt_fixup rt_fixup;
/* Read 8 bytes at addr; returns 0, or -1 if it faulted (see rt_fixup). */
int rt_probe_read64(uint64_t addr, uint64_t *out);
/* RDMSR / WRMSR with an exception (#GP) skipped: 0, or the vector. */
uint64_t rt_rdmsr_safe(uint32_t idx, uint64_t *v);
uint64_t rt_wrmsr_safe(uint32_t idx, uint64_t v);

/* ---- interrupt controllers and timers (rt/irq.c) ---- */
#define RT_VEC_PIC_BASE   0x20 /* IRQ n -> 0x20 + n */
#define RT_VEC_LAPIC_TMR  0x40
#define RT_VEC_LAPIC_ERR  0x41
#define RT_VEC_SPURIOUS   0xff

void rt_pic_init(void);                 /* remap to 0x20/0x28, all masked */
void rt_pic_unmask(unsigned irq);
void rt_pic_mask(unsigned irq);
void rt_pic_eoi(unsigned irq);
void rt_pit_periodic(unsigned hz);      /* channel 0, mode 2 */
void rt_pit_stop(void);                 /* channel 0, mode 0, never fires again soon */

#define LAPIC_ID     0x20
#define LAPIC_VER    0x30
#define LAPIC_TPR    0x80
#define LAPIC_EOI    0xb0
#define LAPIC_SVR    0xf0
#define LAPIC_ESR    0x280
#define LAPIC_LVT_TMR 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_LVT_ERR 0x370
#define LAPIC_TMR_INIT 0x380
#define LAPIC_TMR_CUR 0x390
#define LAPIC_TMR_DIV 0x3e0
static inline uint32_t lapic_read(uint32_t reg) { return mmio_read32(DEV_LAPIC_BASE + reg); }
static inline void lapic_write(uint32_t reg, uint32_t v) { mmio_write32(DEV_LAPIC_BASE + reg, v); }
void rt_lapic_init(void);               /* enable, LINT0 ExtINT, timer masked */
void rt_lapic_eoi(void);
/* Timer at LAPIC_TIMER_HZ / 16; period_us > 0. */
void rt_lapic_timer_start(uint32_t period_us, int periodic);
void rt_lapic_timer_stop(void);

/* ---- virtio-mmio (rt/virtio.c) ---- */
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_RNG   4

struct vring_desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
#define VRING_DESC_F_NEXT  1
#define VRING_DESC_F_WRITE 2
#define RT_VQ_SIZE 16
struct vring_avail { uint16_t flags, idx; uint16_t ring[RT_VQ_SIZE]; uint16_t used_event; };
struct vring_used_elem { uint32_t id, len; };
struct vring_used { uint16_t flags, idx; struct vring_used_elem ring[RT_VQ_SIZE]; uint16_t avail_event; };

struct virtq {
	struct vring_desc desc[RT_VQ_SIZE] __attribute__((aligned(16)));
	struct vring_avail avail __attribute__((aligned(16)));
	struct vring_used used __attribute__((aligned(16)));
	uint16_t num, last_used;
};

struct virtio_dev {
	uint64_t base;
	uint32_t device_id;
	uint64_t features; /* negotiated */
	struct virtq vq;
};

struct virtio_buf { void *addr; uint32_t len; int device_writes; };

/* Find the first transport with this device ID; NULL if none. */
const struct rt_virtio_slot *rt_virtio_find(uint32_t device_id);
/* Full 1.x init of queue 0; wanted = device feature bits we accept (besides VERSION_1). */
int rt_virtio_init(struct virtio_dev *d, const struct rt_virtio_slot *s, uint64_t wanted);
/* One synchronous request on queue 0; returns used length or -1. */
long rt_virtio_request(struct virtio_dev *d, const struct virtio_buf *bufs, int n);
uint32_t rt_virtio_config32(struct virtio_dev *d, uint32_t off);
const char *rt_virtio_error(void);

/* ---- paging (rt/entry.S) ---- */
extern uint64_t rt_pml4[512], rt_pdpt[512], rt_pd[4][512];

#endif
