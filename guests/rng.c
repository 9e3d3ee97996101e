/*
 * rng - read 64 bytes from virtio-rng (one synchronous request per
 * attempt, repeated until 64 bytes arrived), print them (time-dependent:
 * entropy) and check that they are not all equal.
 */
#include "guests/rt/rt.h"

const char *rt_guest_name = "rng";

#define WANT 64

static struct virtio_dev dev __attribute__((aligned(4096)));
static uint8_t buf[WANT] __attribute__((aligned(64)));

void guest_main(struct machine *m)
{
	(void)m;
	uint64_t h = FNV64_INIT;
	const struct rt_virtio_slot *s = rt_virtio_find(VIRTIO_ID_RNG);
	if (!s)
		rt_fail("no virtio-rng device (%d virtio-mmio transports found)", m->nr_virtio);
	if (rt_virtio_init(&dev, s, 0))
		rt_fail("virtio-rng init: %s", rt_virtio_error());
	rt_printf("rng: virtio-rng initialised\n");

	uint32_t have = 0;
	int requests = 0;
	while (have < WANT) {
		struct virtio_buf b = { buf + have, WANT - have, 1 };
		long n = rt_virtio_request(&dev, &b, 1);
		if (n < 0)
			rt_fail("virtio-rng request: %s", rt_virtio_error());
		if (n > (long)(WANT - have))
			rt_fail("device claims %ld bytes for a %u-byte buffer", n, WANT - have);
		have += (uint32_t)n;
		if (++requests > 64)
			rt_fail("only %u bytes after %d requests", have, requests);
	}
	rt_hexdump_td("rng:", buf, WANT);
	rt_printf(RT_TD "rng: %d request(s), checksum of the bytes %016lx\n", requests,
		  fnv1a64(FNV64_INIT, buf, WANT));
	int all_equal = 1;
	for (int i = 1; i < WANT; i++)
		if (buf[i] != buf[0])
			all_equal = 0;
	if (all_equal)
		rt_fail("all %d bytes are 0x%02x", WANT, buf[0]);
	rt_printf("rng: %d bytes read, not all equal\n", WANT);
	h = fnv1a64_u64(h, WANT);
	rt_pass(h);
}
