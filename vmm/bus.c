/* bus.c - see bus.h.  A linear table: a guest has a dozen devices. */
#include "bus.h"

#include <errno.h>
#include <string.h>

void bus_init(struct bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len,
		 const struct bus_ops *ops, void *dev, const char *name)
{
	if (len == 0 || base + len < base || !ops || !ops->read || !ops->write)
		return -EINVAL;
	for (int i = 0; i < bus->n; i++) {
		const struct bus_region *r = &bus->regions[i];
		if (base < r->base + r->len && r->base < base + len)
			return -EEXIST;
	}
	if (bus->n >= BUS_MAX_REGIONS)
		return -ENOSPC;
	bus->regions[bus->n++] = (struct bus_region){
		.base = base, .len = len, .ops = ops, .dev = dev, .name = name,
	};
	return 0;
}

const struct bus_region *bus_find(const struct bus *bus, uint64_t addr)
{
	for (int i = 0; i < bus->n; i++) {
		const struct bus_region *r = &bus->regions[i];
		if (addr >= r->base && addr - r->base < r->len)
			return r;
	}
	return NULL;
}

enum bus_result bus_access(struct bus *bus, uint64_t addr, uint8_t *data,
			   unsigned size, bool is_write,
			   const struct bus_region **region)
{
	const struct bus_region *r = bus_find(bus, addr);
	enum bus_result res = BUS_OK;

	if (region)
		*region = r;
	if (size != 1 && size != 2 && size != 4 && size != 8)
		res = BUS_BADSIZE;
	else if (!r)
		res = BUS_UNCLAIMED;
	else if (addr - r->base + size > r->len)
		res = BUS_STRADDLE;

	if (res != BUS_OK) {
		if (!is_write && size <= 8)
			memset(data, 0xff, size);
		return res;
	}
	if (is_write)
		r->ops->write(r->dev, addr - r->base, data, size);
	else
		r->ops->read(r->dev, addr - r->base, data, size);
	return BUS_OK;
}

const char *bus_result_str(enum bus_result r)
{
	switch (r) {
	case BUS_OK: return "ok";
	case BUS_UNCLAIMED: return "no device at this address";
	case BUS_STRADDLE: return "access runs past the end of the device's range";
	case BUS_BADSIZE: return "access size is not 1, 2, 4 or 8";
	}
	return "?";
}
