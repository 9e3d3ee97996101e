/* platform.c - see platform.h. */
#include "platform.h"
#include "common/errf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void route_irq(void *ctx, unsigned gsi, int level)
{
	struct platform *p = ctx;
	if (gsi < 16)
		pic_set_irq(&p->pic, gsi, level);
	if (gsi < IOAPIC_PINS)
		ioapic_set_irq(&p->ioapic, gsi == 0 ? 2 : gsi, level);
}

static void ioapic_to_lapic(void *ctx, uint8_t vector, bool level)
{
	struct platform *p = ctx;
	lapic_deliver(&p->lapic, vector, level);
}

static void lapic_eoi_to_ioapic(void *ctx, uint8_t vector)
{
	struct platform *p = ctx;
	ioapic_eoi(&p->ioapic, vector);
}

static struct irq_line line(struct platform *p, unsigned gsi)
{
	return (struct irq_line){ .set = route_irq, .router = p, .gsi = gsi };
}

#define CHECK(call, what)                                                     \
	do {                                                                  \
		int rc_ = (call);                                             \
		if (rc_)                                                      \
			return errf(err, errlen, "registering %s: error %d", \
				    what, rc_);                               \
	} while (0)

int platform_init(struct platform *p, struct nd *nd, const struct guest_mem *mem,
		  struct blockdev *bd, void (*tx)(void *ctx, uint8_t byte), void *tx_ctx,
		  char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	p->nd = nd;
	p->mem = mem;
	bus_init(&p->pio, "port I/O");
	bus_init(&p->mmio, "MMIO");

	pic_init(&p->pic);
	CHECK(pic_register(&p->pic, &p->pio), "8259 PIC");
	pit_init(&p->pit, nd, line(p, DEV_PIT_IRQ), &p->timers);
	CHECK(pit_register(&p->pit, &p->pio), "8254 PIT");
	uart_init(&p->uart, line(p, DEV_COM1_IRQ), tx, tx_ctx);
	CHECK(uart_register(&p->uart, &p->pio, DEV_COM1_PORT), "COM1");
	rtc_init(&p->rtc, nd, line(p, DEV_RTC_IRQ), mem->size);
	CHECK(rtc_register(&p->rtc, &p->pio), "RTC");
	debug_exit_init(&p->dbg);
	CHECK(debug_exit_register(&p->dbg, &p->pio), "debug-exit");
	fw_cfg_init(&p->fw_cfg, mem->size, 1);
	CHECK(fw_cfg_register(&p->fw_cfg, &p->pio), "fw_cfg");

	lapic_init(&p->lapic, nd, &p->timers, lapic_eoi_to_ioapic, p);
	CHECK(lapic_register(&p->lapic, &p->mmio, DEV_LAPIC_BASE), "local APIC");
	ioapic_init(&p->ioapic, ioapic_to_lapic, p);
	CHECK(ioapic_register(&p->ioapic, &p->mmio, DEV_IOAPIC_BASE), "I/O APIC");

	/* Slot 0: disk (if any), slot 1: entropy - fixed, so a guest sees the
	 * same layout in every run of the same configuration. */
	if (bd) {
		virtio_blk_init(&p->blk, bd, mem, line(p, DEV_VIRTIO_IRQ0 + 0));
		CHECK(virtio_blk_register(&p->blk, &p->mmio, DEV_VIRTIO_BASE), "virtio-blk");
		p->has_blk = true;
	}
	virtio_rng_init(&p->rng, nd, mem, line(p, DEV_VIRTIO_IRQ0 + 1));
	CHECK(virtio_rng_register(&p->rng, &p->mmio, DEV_VIRTIO_BASE + DEV_VIRTIO_STRIDE), "virtio-rng");
	return 0;
}

void platform_boot_params(const struct platform *p, struct boot_params *bp)
{
	bp->nr_virtio = 0;
	if (p->has_blk)
		bp->virtio[bp->nr_virtio++] = (struct detvm_bootinfo_virtio){
			DEV_VIRTIO_BASE, DEV_VIRTIO_IRQ0 + 0, 2 };
	bp->virtio[bp->nr_virtio++] = (struct detvm_bootinfo_virtio){
		DEV_VIRTIO_BASE + DEV_VIRTIO_STRIDE, DEV_VIRTIO_IRQ0 + 1, 4 };
}

bool platform_intr_pending(const struct platform *p)
{
	return lapic_pending_vector(&p->lapic) >= 0 ||
	       (lapic_accepts_pic(&p->lapic) && pic_has_interrupt(&p->pic));
}

int platform_intr_ack(struct platform *p)
{
	int v = lapic_pending_vector(&p->lapic);
	if (v >= 0) {
		lapic_accept(&p->lapic, (uint8_t)v);
		return v;
	}
	if (lapic_accepts_pic(&p->lapic) && pic_has_interrupt(&p->pic))
		return pic_acknowledge(&p->pic);
	return -1;
}

int platform_state_refs(struct platform *p, struct platform_state_ref *refs, int max)
{
	struct platform_state_ref all[] = {
		{ "pic", &p->pic.state, sizeof(p->pic.state) },
		{ "pit", &p->pit.state, sizeof(p->pit.state) },
		{ "uart", &p->uart.state, sizeof(p->uart.state) },
		{ "rtc", &p->rtc.state, sizeof(p->rtc.state) },
		{ "debug_exit", &p->dbg.state, sizeof(p->dbg.state) },
		{ "fw_cfg", &p->fw_cfg.state, sizeof(p->fw_cfg.state) },
		{ "lapic", &p->lapic.state, sizeof(p->lapic.state) },
		{ "ioapic", &p->ioapic.state, sizeof(p->ioapic.state) },
		{ "virtio_rng", &p->rng.transport.state, sizeof(p->rng.transport.state) },
		{ "virtio_blk", &p->blk.transport.state, sizeof(p->blk.transport.state) },
	};
	int n = 0;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]) && n < max; i++)
		refs[n++] = all[i];
	return n;
}
