/*
 * test_virtio_blk.c - unit tests for the virtio block device
 * (vmm/devices/virtio_blk.c) over file and overlay blockdevs.
 *
 * The tests are the driver: requests are built in a static guest RAM buffer
 * and submitted through the virtio-mmio registers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/devices/virtio_blk.h"

#define RAM_SIZE	0x40000ull
#define DESC		0x1000ull
#define AVAIL		0x2000ull
#define USED		0x3000ull
#define HDR		0x4000ull
#define STATUS		0x4100ull
#define DATA		0x8000ull
#define QNUM		16

#define IMG_SIZE	(64 * 1024 + 100)	/* 128 sectors and a partial one */
#define CAPACITY	128

#define F_NEXT		1
#define F_WRITE		2

#define T_IN		0
#define T_OUT		1
#define T_FLUSH		4
#define T_GET_ID	8

static uint8_t ram[RAM_SIZE];
static struct guest_mem gm;
static struct virtio_blk blk;
static struct blockdev *bd;
static char path[64];
static int irq_level;
static uint16_t avail_idx;

static void irq_set_fake(void *router, unsigned gsi, int level)
{
	(void)router;
	(void)gsi;
	irq_level = level;
}

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 3 + (off >> 9) + 7);
}

static void wr(uint32_t off, uint32_t v)
{
	uint8_t d[4];

	bus_le_put(d, 4, v);
	virtio_mmio_ops.write(&blk.transport, off, d, 4);
}

static uint32_t rd(uint32_t off)
{
	uint8_t d[4];

	virtio_mmio_ops.read(&blk.transport, off, d, 4);
	return (uint32_t)bus_le_get(d, 4);
}

static void open_device(bool overlay)
{
	char err[256];

	bd = blockdev_open(path, overlay, err, sizeof(err));
	assert_non_null(bd);
	virtio_blk_init(&blk, bd, &gm,
			(struct irq_line){ .set = irq_set_fake, .router = NULL, .gsi = 10 });
	/* Driver initialisation, as Linux does it. */
	wr(0x70, 0);
	wr(0x70, 1);
	wr(0x70, 3);
	wr(0x24, 1);
	wr(0x20, 1);		/* VERSION_1 */
	wr(0x24, 0);
	wr(0x20, 1u << 9);	/* FLUSH */
	wr(0x70, 0xb);
	assert_int_equal(rd(0x70), 0xb);
	wr(0x30, 0);
	assert_int_equal(rd(0x34), VIRTIO_QUEUE_MAX);
	wr(0x38, QNUM);
	wr(0x80, (uint32_t)DESC);
	wr(0x90, (uint32_t)AVAIL);
	wr(0xa0, (uint32_t)USED);
	wr(0x44, 1);
	assert_int_equal(rd(0x44), 1);
	wr(0x70, 0xf);
	avail_idx = 0;
}

static int setup_common(bool overlay)
{
	uint8_t *img = malloc(IMG_SIZE);
	int fd;

	assert_non_null(img);
	for (uint64_t i = 0; i < IMG_SIZE; i++)
		img[i] = pattern(i);
	strcpy(path, "/tmp/detvm-test-vblk-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, img, IMG_SIZE), IMG_SIZE);
	close(fd);
	free(img);
	memset(ram, 0, sizeof(ram));
	gm_layout(&gm, ram, RAM_SIZE);
	irq_level = 0;
	open_device(overlay);
	return 0;
}

static int setup_file(void **state)
{
	(void)state;
	return setup_common(false);
}

static int setup_overlay(void **state)
{
	(void)state;
	return setup_common(true);
}

static int teardown(void **state)
{
	(void)state;
	blockdev_close(bd);
	unlink(path);
	return 0;
}

static void set_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint64_t d = DESC + 16 * i;

	bus_le_put(ram + d, 8, addr);
	bus_le_put(ram + d + 8, 4, len);
	bus_le_put(ram + d + 12, 2, flags);
	bus_le_put(ram + d + 14, 2, next);
}

static void set_hdr(uint64_t gpa, uint32_t type, uint64_t sector)
{
	bus_le_put(ram + gpa, 4, type);
	bus_le_put(ram + gpa + 4, 4, 0);
	bus_le_put(ram + gpa + 8, 8, sector);
}

struct seg {
	uint64_t addr;
	uint32_t len;
	bool writable;
};

/*
 * Submit a chain of segments starting at descriptor 0, notify, and return
 * the used length (the used-ring entry is checked).
 */
static uint32_t submit(const struct seg *s, int n)
{
	uint16_t used_before = (uint16_t)bus_le_get(ram + USED + 2, 2);

	for (int i = 0; i < n; i++)
		set_desc((unsigned)i, s[i].addr, s[i].len,
			 (uint16_t)((s[i].writable ? F_WRITE : 0) | (i + 1 < n ? F_NEXT : 0)),
			 (uint16_t)(i + 1));
	bus_le_put(ram + AVAIL + 4 + 2 * (avail_idx % QNUM), 2, 0);
	avail_idx++;
	bus_le_put(ram + AVAIL + 2, 2, avail_idx);
	wr(0x50, 0);
	if (rd(0x70) & 0x40)
		return UINT32_MAX;	/* NEEDS_RESET */
	assert_int_equal((uint16_t)bus_le_get(ram + USED + 2, 2), (uint16_t)(used_before + 1));
	assert_int_equal(bus_le_get(ram + USED + 4 + 8 * (used_before % QNUM), 4), 0);
	assert_int_equal(irq_level, 1);
	wr(0x64, rd(0x60));
	return (uint32_t)bus_le_get(ram + USED + 4 + 8 * (used_before % QNUM) + 4, 4);
}

/* The classic three-descriptor request: header, data, status. */
static uint32_t request(uint32_t type, uint64_t sector, uint64_t data, uint32_t len)
{
	struct seg s[3] = {
		{ HDR, 16, false },
		{ data, len, type != T_OUT },
		{ STATUS, 1, true },
	};

	set_hdr(HDR, type, sector);
	ram[STATUS] = 0xee;
	if (len == 0) {
		s[1] = s[2];
		return submit(s, 2);
	}
	return submit(s, 3);
}

static void file_bytes(uint64_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void test_config_and_features(void **state)
{
	uint8_t d[8];

	(void)state;
	assert_int_equal(rd(0x08), 2);
	wr(0x14, 0);
	assert_int_equal(rd(0x10), (1u << 2) | (1u << 6) | (1u << 9));
	wr(0x14, 1);
	assert_int_equal(rd(0x10), 1);
	virtio_mmio_ops.read(&blk.transport, 0x100, d, 8);
	assert_int_equal(bus_le_get(d, 8), CAPACITY);
	assert_int_equal(rd(0x100), CAPACITY);
	assert_int_equal(rd(0x104), 0);
	assert_int_equal(rd(0x10c), 126);	/* seg_max */
	assert_int_equal(rd(0x114), 512);	/* blk_size */
	virtio_mmio_ops.read(&blk.transport, 0x115, d, 1);
	assert_int_equal(d[0], 2);
	assert_int_equal(rd(0x118), 0);
	assert_int_equal(rd(0x1fc), 0);
}

static void test_read(void **state)
{
	(void)state;
	/* Data split over two descriptors of odd sizes. */
	struct seg s[4] = {
		{ HDR, 16, false },
		{ DATA, 600, true },
		{ DATA + 0x1000, 424, true },
		{ STATUS, 1, true },
	};

	set_hdr(HDR, T_IN, 3);
	ram[STATUS] = 0xee;
	assert_int_equal(submit(s, 4), 1025);
	assert_int_equal(ram[STATUS], 0);
	for (int i = 0; i < 600; i++)
		assert_int_equal(ram[DATA + i], pattern(3 * 512 + i));
	for (int i = 0; i < 424; i++)
		assert_int_equal(ram[DATA + 0x1000 + i], pattern(3 * 512 + 600 + i));

	/* The last visible sector. */
	assert_int_equal(request(T_IN, CAPACITY - 1, DATA, 512), 513);
	assert_int_equal(ram[STATUS], 0);
	assert_int_equal(ram[DATA + 511], pattern(CAPACITY * 512 - 1));
}

static void test_write_file_mode(void **state)
{
	uint8_t chk[1024];

	(void)state;
	for (int i = 0; i < 1024; i++)
		ram[DATA + i] = (uint8_t)(i ^ 0x5a);
	assert_int_equal(request(T_OUT, 5, DATA, 1024), 1);
	assert_int_equal(ram[STATUS], 0);
	file_bytes(5 * 512, chk, 1024);
	assert_memory_equal(chk, ram + DATA, 1024);

	memset(ram + DATA + 0x2000, 0, 1024);
	assert_int_equal(request(T_IN, 5, DATA + 0x2000, 1024), 1025);
	assert_memory_equal(ram + DATA + 0x2000, ram + DATA, 1024);
}

static void test_overlay_mode(void **state)
{
	uint8_t chk[512];

	(void)state;
	memset(ram + DATA, 0x77, 512);
	assert_int_equal(request(T_OUT, 7, DATA, 512), 1);
	assert_int_equal(ram[STATUS], 0);
	/* The image is untouched ... */
	file_bytes(7 * 512, chk, 512);
	for (int i = 0; i < 512; i++)
		assert_int_equal(chk[i], pattern(7 * 512 + i));
	/* ... but the guest reads back what it wrote. */
	assert_int_equal(request(T_IN, 6, DATA + 0x1000, 1536), 1537);
	for (int i = 0; i < 512; i++) {
		assert_int_equal(ram[DATA + 0x1000 + i], pattern(6 * 512 + i));
		assert_int_equal(ram[DATA + 0x1200 + i], 0x77);
		assert_int_equal(ram[DATA + 0x1400 + i], pattern(8 * 512 + i));
	}
	assert_int_equal(request(T_FLUSH, 0, 0, 0), 1);
	assert_int_equal(ram[STATUS], 0);
}

static void test_free_layout(void **state)
{
	(void)state;
	/* Header and data in one readable descriptor (OUT) ... */
	set_hdr(DATA, T_OUT, 9);
	memset(ram + DATA + 16, 0x42, 512);
	struct seg out[2] = { { DATA, 16 + 512, false }, { STATUS, 1, true } };
	ram[STATUS] = 0xee;
	assert_int_equal(submit(out, 2), 1);
	assert_int_equal(ram[STATUS], 0);

	/* ... the header and part of the data, then the rest (OUT) ... */
	set_hdr(DATA + 0x2000, T_OUT, 10);
	for (int i = 0; i < 512; i++)
		ram[(i < 100 ? DATA + 0x2000 + 16 : DATA + 0x3000 - 100) + i] = (uint8_t)i;
	struct seg out2[3] = {
		{ DATA + 0x2000, 16 + 100, false }, { DATA + 0x3000, 412, false },
		{ STATUS, 1, true },
	};
	assert_int_equal(submit(out2, 3), 1);
	assert_int_equal(ram[STATUS], 0);
	uint8_t chk[512];
	assert_int_equal(blockdev_read(bd, 10 * 512, chk, 512), 0);
	for (int i = 0; i < 512; i++)
		assert_int_equal(chk[i], (uint8_t)i);

	/* ... header split in two, data and status in one writable one (IN). */
	set_hdr(HDR, T_IN, 9);
	memcpy(ram + HDR + 0x20, ram + HDR + 8, 8);
	struct seg in[3] = {
		{ HDR, 8, false }, { HDR + 0x20, 8, false }, { DATA + 0x1000, 513, true },
	};
	assert_int_equal(submit(in, 3), 513);
	assert_int_equal(ram[DATA + 0x1000 + 512], 0);	/* status: last byte */
	for (int i = 0; i < 512; i++)
		assert_int_equal(ram[DATA + 0x1000 + i], 0x42);
}

static void test_past_capacity(void **state)
{
	(void)state;
	memset(ram + DATA, 0x99, 1024);
	/* Straddling the end, wholly past it, in the invisible partial sector. */
	assert_int_equal(request(T_IN, CAPACITY - 1, DATA, 1024), 1);
	assert_int_equal(ram[STATUS], 1);
	assert_int_equal(request(T_IN, CAPACITY, DATA, 512), 1);
	assert_int_equal(ram[STATUS], 1);
	assert_int_equal(request(T_OUT, CAPACITY, DATA, 512), 1);
	assert_int_equal(ram[STATUS], 1);
	/* Sector numbers whose byte offset overflows. */
	assert_int_equal(request(T_IN, UINT64_MAX, DATA, 512), 1);
	assert_int_equal(ram[STATUS], 1);
	assert_int_equal(request(T_OUT, UINT64_MAX / 512 + 1, DATA, 512), 1);
	assert_int_equal(ram[STATUS], 1);
	/* Data not a whole number of sectors. */
	assert_int_equal(request(T_IN, 0, DATA, 100), 1);
	assert_int_equal(ram[STATUS], 1);
	assert_int_equal(request(T_OUT, 0, DATA, 513), 1);
	assert_int_equal(ram[STATUS], 1);
	/* Nothing was read into the buffer, nothing written to the file. */
	assert_int_equal(ram[DATA], 0x99);
	uint8_t chk[1];
	file_bytes(0, chk, 1);
	assert_int_equal(chk[0], pattern(0));
	/* A zero-length read at the end is fine. */
	assert_int_equal(request(T_IN, CAPACITY, 0, 0), 1);
	assert_int_equal(ram[STATUS], 0);
}

static void test_short_header(void **state)
{
	(void)state;
	struct seg s[3] = { { HDR, 15, false }, { DATA, 512, true }, { STATUS, 1, true } };

	set_hdr(HDR, T_IN, 0);
	assert_int_equal(submit(s, 3), UINT32_MAX);
}

static void test_missing_status(void **state)
{
	(void)state;
	struct seg s[2] = { { HDR, 16, false }, { DATA, 512, false } };

	set_hdr(HDR, T_OUT, 0);
	assert_int_equal(submit(s, 2), UINT32_MAX);
}

static void test_unsupported_type(void **state)
{
	(void)state;
	assert_int_equal(request(11, 0, DATA, 512), 1);	/* DISCARD */
	assert_int_equal(ram[STATUS], 2);
	assert_int_equal(request(0x12345678, 0, 0, 0), 1);
	assert_int_equal(ram[STATUS], 2);
}

static void test_get_id(void **state)
{
	(void)state;
	memset(ram + DATA, 0xff, 32);
	assert_int_equal(request(T_GET_ID, 0, DATA, 20), 21);
	assert_int_equal(ram[STATUS], 0);
	assert_memory_equal(ram + DATA, "detvm-virtio-blk\0\0\0\0", 20);
	assert_int_equal(ram[DATA + 20], 0xff);
	/* A short buffer gets what fits. */
	memset(ram + DATA, 0xff, 32);
	assert_int_equal(request(T_GET_ID, 0, DATA, 5), 6);
	assert_memory_equal(ram + DATA, "detvm", 5);
	assert_int_equal(ram[DATA + 5], 0xff);
}

static void test_flush(void **state)
{
	(void)state;
	assert_int_equal(request(T_FLUSH, 0, 0, 0), 1);
	assert_int_equal(ram[STATUS], 0);
}

static void test_host_io_error(void **state)
{
	(void)state;
	/* The image shrinks under the device: reads past it fail. */
	assert_int_equal(truncate(path, 512), 0);
	assert_int_equal(request(T_IN, 4, DATA, 512), 1);
	assert_int_equal(ram[STATUS], 1);
	/* The device keeps working for what is still there. */
	assert_int_equal(request(T_IN, 0, DATA, 512), 513);
	assert_int_equal(ram[STATUS], 0);
	assert_false(rd(0x70) & 0x40);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config_and_features, setup_file, teardown),
		cmocka_unit_test_setup_teardown(test_read, setup_file, teardown),
		cmocka_unit_test_setup_teardown(test_write_file_mode, setup_file, teardown),
		cmocka_unit_test_setup_teardown(test_overlay_mode, setup_overlay, teardown),
		cmocka_unit_test_setup_teardown(test_free_layout, setup_overlay, teardown),
		cmocka_unit_test_setup_teardown(test_past_capacity, setup_file, teardown),
		cmocka_unit_test_setup_teardown(test_short_header, setup_file, teardown),
		cmocka_unit_test_setup_teardown(test_missing_status, setup_file, teardown),
		cmocka_unit_test_setup_teardown(test_unsupported_type, setup_file, teardown),
		cmocka_unit_test_setup_teardown(test_get_id, setup_file, teardown),
		cmocka_unit_test_setup_teardown(test_flush, setup_file, teardown),
		cmocka_unit_test_setup_teardown(test_host_io_error, setup_file, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
