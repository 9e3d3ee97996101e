/* guest_mem.c - see guest_mem.h. */
#include "guest_mem.h"

#include <string.h>

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
