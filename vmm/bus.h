/*
 * bus.h - the port-I/O and MMIO buses on which devices are registered.
 *
 * Every guest access to a port or to an unbacked physical address reaches the
 * monitor as an exit and is dispatched here.  The bus is the single place that
 * checks an access against the device that claims it: a device callback is
 * only ever called with 0 <= offset and offset + size <= region length, and
 * with size in {1, 2, 4, 8}.  Devices therefore never see an out-of-range
 * offset, whatever the guest does.
 *
 * Data is passed as little-endian byte arrays, as the guest would put it on
 * the wire.  bus_le_get()/bus_le_put() convert.
 */
#ifndef DETVM_BUS_H
#define DETVM_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BUS_MAX_REGIONS 64

struct bus_ops {
	/* Fill data[0..size) with the value the device returns. */
	void (*read)(void *dev, uint64_t offset, uint8_t *data, unsigned size);
	/* Apply a write of data[0..size). */
	void (*write)(void *dev, uint64_t offset, const uint8_t *data, unsigned size);
};

struct bus_region {
	uint64_t base;
	uint64_t len;
	const struct bus_ops *ops;
	void *dev;
	const char *name; /* static string, for messages */
};

struct bus {
	const char *name; /* "pio" or "mmio", for messages */
	struct bus_region regions[BUS_MAX_REGIONS];
	int n;
};

enum bus_result {
	BUS_OK = 0,
	BUS_UNCLAIMED, /* no device claims addr: reads return all ones, writes are dropped */
	BUS_STRADDLE,  /* the access starts in a region but runs past its end: refused */
	BUS_BADSIZE,   /* size is not 1, 2, 4 or 8: refused */
};

void bus_init(struct bus *bus, const char *name);

/*
 * Claim [base, base + len) for dev.  Returns 0, or -EINVAL (len 0 or range
 * wraps), -EEXIST (overlaps a registered region), -ENOSPC (table full).
 */
int bus_register(struct bus *bus, uint64_t base, uint64_t len,
		 const struct bus_ops *ops, void *dev, const char *name);

/* The region that contains addr, or NULL. */
const struct bus_region *bus_find(const struct bus *bus, uint64_t addr);

/*
 * Dispatch one guest access.  On anything but BUS_OK a read's data is filled
 * with 0xff (what an unclaimed ISA/PCI bus returns) and no device is called.
 * *region, if not NULL, is set to the region found (or NULL).
 */
enum bus_result bus_access(struct bus *bus, uint64_t addr, uint8_t *data,
			   unsigned size, bool is_write,
			   const struct bus_region **region);

const char *bus_result_str(enum bus_result r);

static inline uint64_t bus_le_get(const uint8_t *data, unsigned size)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < size && i < 8; i++)
		v |= (uint64_t)data[i] << (8 * i);
	return v;
}

static inline void bus_le_put(uint8_t *data, unsigned size, uint64_t v)
{
	for (unsigned i = 0; i < size && i < 8; i++)
		data[i] = (uint8_t)(v >> (8 * i));
}

#endif
