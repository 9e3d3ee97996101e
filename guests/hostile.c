/*
 * hostile - what a careless or malicious kernel might do to its monitor,
 * with interrupts disabled throughout (IF=0), so that nothing it writes into
 * the interrupt controllers and timers can stop it:
 *  1. port I/O: a byte out and in at every port below 0x800, words and
 *     dwords at every fourth, and all three at random ports above, with
 *     random values (never the debug-exit and power-off ports, nor COM1,
 *     which it reports through);
 *  2. string I/O: rep outsb of 5000 bytes and rep insb of 64 KiB at a port
 *     nothing decodes,
 *     rep insw at fw_cfg's byte-wide data port;
 *  3. MMIO of 1, 2, 4 and 8 bytes, read and written, at the holes between
 *     devices, just past the end of RAM, across the boundary of two
 *     virtio-mmio slots, and at random registers of every virtio-mmio slot,
 *     the LAPIC and the IOAPIC (interrupt entries it writes are masked,
 *     fixed delivery), and 100 IPIs with random ICR values, every
 *     delivery mode and destination included;
 *  4. virtio queues made of garbage: every present transport is driven to
 *     DRIVER_OK with a random queue size and its rings in a page of random
 *     bytes (or at random addresses), then notified, several times;
 *  5. RDMSR at random indices in and around the ranges the monitor filters,
 *     and WRMSR of random values to those it answers with #GP (each #GP is
 *     skipped with rt_fixup).
 * The monitor must neither crash nor hang, and a recording of all this must
 * replay exactly.  `hostile.seed=N` (1) chooses the random values.
 *
 * The checksum covers what does not depend on time: values read from ports
 * other than the timers' and interrupt controllers', from the holes and the
 * virtio slots, and which MSRs faulted.  Output and checksum depend on the
 * monitor's devices, so tests/e2e/qemu_diff.sh leaves this guest out.
 */
#include "guests/rt/rt.h"

const char *rt_guest_name = "hostile";

static uint64_t rng_state;
static uint64_t h = FNV64_INIT;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static int port_writable(uint32_t p)
{
	return p != DEV_DEBUG_EXIT && !(p >= 0x600 && p <= 0x607) &&   /* power off */
	       !(p >= DEV_COM1_PORT && p <= DEV_COM1_PORT + 7);
}

/* Reads that depend on time: timers, interrupt controllers, RTC, port B. */
static int port_timed(uint32_t p)
{
	return (p >= 0x20 && p <= 0x21) || (p >= 0xa0 && p <= 0xa1) || (p >= 0x40 && p <= 0x43) ||
	       p == 0x61 || (p >= 0x70 && p <= 0x71) || (p >= 0x4d0 && p <= 0x4d1);
}

static uint64_t port_rw(uint32_t p, unsigned size)
{
	uint64_t v = rnd(), got = 0;
	if (port_writable(p)) {
		if (size == 1)
			outb((uint16_t)p, (uint8_t)v);
		else if (size == 2)
			outw((uint16_t)p, (uint16_t)v);
		else
			outl((uint16_t)p, (uint32_t)v);
	}
	if (p >= DEV_COM1_PORT && p <= DEV_COM1_PORT + 7)
		return 0; /* reading RBR or IIR would change the UART's state */
	if (size == 1)
		got = inb((uint16_t)p);
	else if (size == 2)
		got = inw((uint16_t)p);
	else
		got = inl((uint16_t)p);
	if (!port_timed(p) && !port_timed(p + size - 1))
		h = fnv1a64_u64(h, (uint64_t)p << 32 ^ got);
	return 1;
}

static void ports(void)
{
	uint64_t n = 0;
	for (uint32_t p = 0; p < 0x800; p++) {
		n += port_rw(p, 1);
		if (p % 4 == 0) {
			n += port_rw(p, 2);
			n += port_rw(p, 4);
		}
	}
	for (int i = 0; i < 256; i++) {
		uint32_t p = 0x800 + (uint32_t)(rnd() % (0x10000 - 0x800 - 4));
		for (unsigned size = 1; size <= 4; size *= 2)
			n += port_rw(p, size);
	}
	rt_printf("hostile: port I/O done (%lu reads, values hashed)\n", n);
}

static uint8_t strbuf[65536] __attribute__((aligned(4096)));

static void string_io(void)
{
	for (size_t i = 4000; i < 9000; i += 8)
		*(uint64_t *)&strbuf[i] = rnd();
	/* rep outs exits once an element: 5000 bytes, across a page boundary. */
	uint64_t cnt = 5000;
	void *src = strbuf + 4000;
	__asm__ volatile("cld; rep outsb" : "+S"(src), "+c"(cnt) : "d"(0x5f0) : "memory");
	cnt = sizeof(strbuf);
	void *dst = strbuf;
	__asm__ volatile("cld; rep insb" : "+D"(dst), "+c"(cnt) : "d"(0x5f0) : "memory");
	h = fnv1a64(h, strbuf, 256);
	h = fnv1a64(h, strbuf + sizeof(strbuf) - 256, 256);
	/* fw_cfg: select the signature, read it two bytes at a time. */
	outw(DEV_FWCFG_PORT, 0);
	cnt = 8;
	dst = strbuf;
	__asm__ volatile("cld; rep insw" : "+D"(dst), "+c"(cnt) : "d"(DEV_FWCFG_PORT + 1) : "memory");
	h = fnv1a64(h, strbuf, 16);
	rt_printf("hostile: string I/O done (fw_cfg by words: %02x %02x %02x %02x)\n", strbuf[0], strbuf[1],
		  strbuf[2], strbuf[3]);
}

static uint64_t mmio_read(uint64_t a, unsigned size)
{
	switch (size) {
	case 1: return *(volatile uint8_t *)(uintptr_t)a;
	case 2: return *(volatile uint16_t *)(uintptr_t)a;
	case 4: return *(volatile uint32_t *)(uintptr_t)a;
	default: return *(volatile uint64_t *)(uintptr_t)a;
	}
}

static void mmio_write(uint64_t a, unsigned size, uint64_t v)
{
	switch (size) {
	case 1: *(volatile uint8_t *)(uintptr_t)a = (uint8_t)v; break;
	case 2: *(volatile uint16_t *)(uintptr_t)a = (uint16_t)v; break;
	case 4: *(volatile uint32_t *)(uintptr_t)a = (uint32_t)v; break;
	default: *(volatile uint64_t *)(uintptr_t)a = v; break;
	}
}

static void mmio(struct machine *m)
{
	const uint64_t holes[] = {
		m->mem_size, m->mem_size + 0x1000 - 8, 0xc0000000ULL, 0xe0000000ULL, 0xfd000000ULL,
		DEV_VIRTIO_BASE + DEV_VIRTIO_SLOTS * DEV_VIRTIO_STRIDE, DEV_IOAPIC_BASE + 0x1000,
		0xfed00000ULL, DEV_LAPIC_BASE + 0x1000, 0xfffff000ULL,
		DEV_VIRTIO_BASE + DEV_VIRTIO_STRIDE - 4,   /* 8 bytes across two slots */
	};
	uint64_t n = 0;
	for (unsigned i = 0; i < sizeof(holes) / sizeof(holes[0]); i++)
		for (unsigned size = 1; size <= 8; size *= 2) {
			mmio_write(holes[i], size, rnd());
			h = fnv1a64_u64(h, mmio_read(holes[i], size));
			n++;
		}
	/* Random registers of every virtio-mmio slot, present or not. */
	for (unsigned s = 0; s < DEV_VIRTIO_SLOTS; s++)
		for (int i = 0; i < 48; i++) {
			unsigned size = 1u << (rnd() % 4);
			uint64_t a = DEV_VIRTIO_BASE + s * DEV_VIRTIO_STRIDE + (rnd() % DEV_VIRTIO_STRIDE & ~(uint64_t)(size - 1));
			if (rnd() % 2)
				mmio_write(a, size, rnd());
			h = fnv1a64_u64(h, mmio_read(a, size));
			n++;
		}
	/* LAPIC: not the ICR; LVT entries masked, fixed delivery.  Reads
	 * (counts, pending bits) depend on time: not hashed. */
	for (int i = 0; i < 200; i++) {
		unsigned size = 1u << (rnd() % 4);
		uint32_t reg = (uint32_t)(rnd() % 0x1000) & ~(size - 1);
		uint64_t v = rnd();
		if (reg >= 0x320 && reg < 0x380)
			v = (v & 0xff) | 0x10000;
		if (!(reg >= 0x300 && reg < 0x320) && rnd() % 2)
			mmio_write(DEV_LAPIC_BASE + reg, size, v);
		(void)mmio_read(DEV_LAPIC_BASE + reg, size);
		n++;
	}
	/* The ICR: IPIs of every delivery mode (fixed, lowest priority, SMI,
	 * NMI, INIT, SIPI, ExtINT) to every destination.  With IF=0 a fixed
	 * one to itself only stays pending; a monitor that made the others
	 * real would stop or reset this vCPU (the guest, not the monitor). */
	for (int i = 0; i < 100; i++) {
		mmio_write32(DEV_LAPIC_BASE + 0x310, (uint32_t)rnd());
		mmio_write32(DEV_LAPIC_BASE + 0x300, (uint32_t)rnd());
		(void)mmio_read32(DEV_LAPIC_BASE + 0x300);
		n++;
	}
	/* IOAPIC: random register numbers; redirection entries masked, fixed. */
	for (int i = 0; i < 200; i++) {
		uint32_t sel = (uint32_t)rnd() & 0xff;
		mmio_write32(DEV_IOAPIC_BASE, sel);
		uint32_t v = (uint32_t)rnd();
		if (sel >= 0x10 && sel % 2 == 0)
			v = (v & 0xff) | 0x10000;
		if (rnd() % 2)
			mmio_write32(DEV_IOAPIC_BASE + 0x10, v);
		(void)mmio_read32(DEV_IOAPIC_BASE + 0x10);
		/* and at offsets that are no register */
		unsigned size = 1u << (rnd() % 4);
		uint64_t a = DEV_IOAPIC_BASE + ((rnd() % 0x100) & ~(uint64_t)(size - 1));
		if (a != DEV_IOAPIC_BASE + 0x10 && rnd() % 2)
			mmio_write(a, size, rnd() & ~0x7ULL);
		n++;
	}
	rt_printf("hostile: MMIO done (%lu accesses)\n", n);
}

/* virtio-mmio v2 registers (virtio 1.x, 4.2.2) */
#define VIO_MAGIC 0x000
#define VIO_STATUS 0x070
#define VIO_QSEL 0x030
#define VIO_QNUM 0x038
#define VIO_QREADY 0x044
#define VIO_QNOTIFY 0x050
#define VIO_QDESC 0x080
#define VIO_QDRIVER 0x090
#define VIO_QDEVICE 0x0a0
#define VIO_DRVFEAT 0x020
#define VIO_DRVFEATSEL 0x024

static uint8_t garbage[3][4096] __attribute__((aligned(4096)));

static void queue_at(uint64_t base, uint32_t reg, uint64_t addr)
{
	mmio_write32(base + reg, (uint32_t)addr);
	mmio_write32(base + reg + 4, (uint32_t)(addr >> 32));
}

static void virtio_garbage(struct machine *m)
{
	unsigned present = 0, notifies = 0, rounds = 0, refused = 0;
	for (unsigned s = 0; s < DEV_VIRTIO_SLOTS; s++) {
		uint64_t base = DEV_VIRTIO_BASE + s * DEV_VIRTIO_STRIDE;
		if (mmio_read32(base + VIO_MAGIC) != 0x74726976 || mmio_read32(base + 0x008) == 0)
			continue;
		present++;
		for (int round = 0; round < 16; round++) {
			/* Fresh garbage: 64 random words in each page. */
			for (unsigned g = 0; g < 3; g++)
				for (unsigned i = 0; i < 64; i++)
					*(volatile uint64_t *)&garbage[g][(rnd() % 512) * 8] = rnd();
			mmio_write32(base + VIO_STATUS, 0);            /* reset */
			mmio_write32(base + VIO_STATUS, 1 | 2);        /* ACKNOWLEDGE, DRIVER */
			mmio_write32(base + VIO_DRVFEATSEL, 1);
			mmio_write32(base + VIO_DRVFEAT, 1);           /* VERSION_1 */
			mmio_write32(base + VIO_STATUS, 1 | 2 | 8);    /* FEATURES_OK */
			mmio_write32(base + VIO_QSEL, (uint32_t)(rnd() % 3));
			mmio_write32(base + VIO_QNUM, (uint32_t)(rnd() % 300));
			for (unsigned r = 0; r < 3; r++) {
				uint32_t reg = r == 0 ? VIO_QDESC : r == 1 ? VIO_QDRIVER : VIO_QDEVICE;
				uint64_t kind = rnd() % 4, addr;
				if (kind == 0)
					addr = rnd();                                  /* anywhere */
				else if (kind == 1)
					addr = m->mem_size - 16 + (rnd() % 32);        /* across RAM's end */
				else
					addr = (uint64_t)(uintptr_t)garbage[r] + (rnd() % 64) * 16;
				queue_at(base, reg, addr);
			}
			mmio_write32(base + VIO_QREADY, 1);
			mmio_write32(base + VIO_STATUS, 1 | 2 | 8 | 4); /* DRIVER_OK */
			for (int k = 0; k < 4; k++) {
				mmio_write32(base + VIO_QNOTIFY, (uint32_t)(rnd() % 3));
				notifies++;
			}
			uint32_t st = mmio_read32(base + VIO_STATUS);
			h = fnv1a64_u64(h, st);
			rounds++;
			refused += (st & 0x40) != 0;     /* DEVICE_NEEDS_RESET */
		}
		mmio_write32(base + VIO_STATUS, 0);
	}
	rt_printf("hostile: virtio garbage done (%u transports, %u notifies; %u of %u rounds ended in "
		  "DEVICE_NEEDS_RESET)\n", present, notifies, refused, rounds);
}

static void msrs(void)
{
	static const uint32_t bases[] = { 0x0, 0x300, 0x600, 0x40000000, 0x4b564d00, 0xc0000100, 0xc0010000 };
	/* Answered with #GP by the monitor (vmm/msr.c): random writes are safe. */
	static const uint32_t gp[] = { 0x11, 0x12, 0xc1, 0xce, 0xe7, 0x186, 0x309, 0x38f, 0x606, 0x6e0,
				       0x40000000, 0x40000108, 0x4b564d00, 0x4b564d01, 0xc0010000 };
	unsigned faults = 0, n = 0;
	for (int i = 0; i < 300; i++) {
		uint32_t idx = i < 280 ? bases[rnd() % 7] + (uint32_t)(rnd() % 0x220) : (uint32_t)rnd();
		uint64_t v;
		uint64_t vec = rt_rdmsr_safe(idx, &v);
		faults += vec != 0;
		h = fnv1a64_u64(h, ((uint64_t)idx << 8) | vec);
		n++;
	}
	for (unsigned i = 0; i < sizeof(gp) / sizeof(gp[0]); i++) {
		uint64_t vec = rt_wrmsr_safe(gp[i], rnd());
		faults += vec != 0;
		h = fnv1a64_u64(h, ((uint64_t)gp[i] << 8) | vec);
		n++;
	}
	rt_printf("hostile: MSRs done (%u accesses, %u faulted)\n", n, faults);
}

void guest_main(struct machine *m)
{
	cli();
	rng_state = rt_cmdline_uint("hostile.seed", 1) * 0x9e3779b97f4a7c15ULL | 1;
	for (unsigned g = 0; g < 3; g++)
		for (unsigned i = 0; i < 4096; i += 8)
			*(uint64_t *)&garbage[g][i] = rnd();
	ports();
	string_io();
	mmio(m);
	virtio_garbage(m);
	msrs();
	rt_printf("hostile: survived\n");
	rt_pass(h);
}
