/* guest_mem.c - see guest_mem.h. */
#include "guest_mem.h"

#include <string.h>

void gm_layout(struct guest_mem *gm, uint8_t *host, uint64_t size)
{
	gm->host = host;
	gm->size = size;
	gm->low_size = size < GM_HOLE_START ? size : GM_HOLE_START;
	gm->high_size = size - gm->low_size;
}

void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	if (gpa + len < gpa)
		return NULL;
	if (gpa < gm->low_size)
		return len <= gm->low_size - gpa ? gm->host + gpa : NULL;
	if (gpa >= GM_HIGH_START && gpa - GM_HIGH_START < gm->high_size) {
		uint64_t off = gpa - GM_HIGH_START;
		return len <= gm->high_size - off ? gm->host + gm->low_size + off : NULL;
	}
	return NULL;
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
