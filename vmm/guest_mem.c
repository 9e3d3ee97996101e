/* guest_mem.c - see guest_mem.h. */
#include "guest_mem.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGEMAP_PRESENT (1ULL << 63)
#define PAGEMAP_SWAPPED (1ULL << 62)
#define PAGEMAP_CHUNK   8192 /* entries read at a time: 4 reads for 128 MiB, not 64 */

void gm_layout(struct guest_mem *gm, uint8_t *host, uint64_t size)
{
	gm->host = host;
	gm->size = size;
	gm->low_size = size < GM_HOLE_START ? size : GM_HOLE_START;
	gm->high_size = size - gm->low_size;
	gm->dirty = NULL;
}

static void mark_dirty(const struct guest_mem *gm, uint64_t off, uint64_t len)
{
	if (!gm->dirty || !len)
		return;
	for (uint64_t pg = off >> 12; pg <= (off + len - 1) >> 12; pg++)
		gm->dirty[pg / 64] |= 1ULL << (pg % 64);
}

void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	if (gpa + len < gpa)
		return NULL;
	if (gpa < gm->low_size) {
		if (len > gm->low_size - gpa)
			return NULL;
		mark_dirty(gm, gpa, len);
		return gm->host + gpa;
	}
	if (gpa >= GM_HIGH_START && gpa - GM_HIGH_START < gm->high_size) {
		uint64_t off = gpa - GM_HIGH_START;
		if (len > gm->high_size - off)
			return NULL;
		mark_dirty(gm, gm->low_size + off, len);
		return gm->host + gm->low_size + off;
	}
	return NULL;
}

uint64_t gm_offset_to_gpa(const struct guest_mem *gm, uint64_t off)
{
	return off < gm->low_size ? off : GM_HIGH_START + (off - gm->low_size);
}

int64_t gm_gpa_to_offset(const struct guest_mem *gm, uint64_t gpa)
{
	if (gpa < gm->low_size)
		return (int64_t)gpa;
	if (gpa >= GM_HIGH_START && gpa - GM_HIGH_START < gm->high_size)
		return (int64_t)(gm->low_size + gpa - GM_HIGH_START);
	return -1;
}

int gm_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len)
{
	const void *p = gm_ptr(gm, gpa, len);
	if (!p)
		return -1;
	memcpy(dst, p, len);
	return 0;
}

int gm_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = gm_ptr(gm, gpa, len);
	if (!p)
		return -1;
	memcpy(p, src, len);
	return 0;
}

uint64_t gm_populated(const struct guest_mem *gm, uint8_t *vec)
{
	uint64_t npages = gm->size >> 12, n = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t *entries = malloc(PAGEMAP_CHUNK * sizeof(*entries));

	if (fd < 0 || !entries) {
		if (fd >= 0)
			close(fd);
		goto all;
	}
	/* One 8-byte entry per virtual page, at (address / 4096) * 8. */
	uint64_t first = (uint64_t)(uintptr_t)gm->host >> 12;
	for (uint64_t pg = 0; pg < npages;) {
		uint64_t k = npages - pg < PAGEMAP_CHUNK ? npages - pg : PAGEMAP_CHUNK;
		ssize_t got = pread(fd, entries, k * 8, (off_t)((first + pg) * 8));
		if (got != (ssize_t)(k * 8)) {
			close(fd);
			goto all;
		}
		for (uint64_t i = 0; i < k; i++) {
			vec[pg + i] = (entries[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED)) != 0;
			n += vec[pg + i];
		}
		pg += k;
	}
	close(fd);
	free(entries);
	return n;
all:
	free(entries);
	memset(vec, 1, npages);
	return npages;
}

bool gm_page_is_zero(const uint8_t *page)
{
	return page[0] == 0 && memcmp(page, page + 1, 4095) == 0;
}
