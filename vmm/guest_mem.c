/* guest_mem.c - see guest_mem.h. */
#include "guest_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

int gm_swap_kib(const char *status_path, uint64_t *kib)
{
	/* About 1.5 KiB on Linux 6; a file that does not fit is refused. */
	char buf[8192];
	size_t len = 0;
	ssize_t r;
	int fd = open(status_path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while ((r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)r;
	close(fd);
	if (r < 0 || len == sizeof(buf) - 1)
		return -1;
	buf[len] = 0;
	const char *line = strncmp(buf, "VmSwap:", 7) == 0 ? buf : strstr(buf, "\nVmSwap:");
	if (!line)
		return -1;
	const char *p = strchr(line + 1, ':') + 1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p < '0' || *p > '9')
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(p, &end, 10);
	if (errno || strncmp(end, " kB", 3) != 0)
		return -1;
	*kib = v;
	return 0;
}

uint64_t gm_populated(const struct guest_mem *gm, uint8_t *vec)
{
	enum gm_map_source src;
	return gm_populated_from(gm, vec, "/proc/self/status", &src);
}

uint64_t gm_populated_from(const struct guest_mem *gm, uint8_t *vec, const char *status_path,
			   enum gm_map_source *src)
{
	uint64_t npages = gm->size >> 12, n = 0, swap_kib;
	int fd;
	uint64_t *entries;

	/* Whole pages only: mincore fills one byte per page it is given. */
	if (gm->size % 4096 == 0 && mincore(gm->host, gm->size, vec) == 0 &&
	    gm_swap_kib(status_path, &swap_kib) == 0 && swap_kib == 0) {
		for (uint64_t i = 0; i < npages; i++) {
			vec[i] &= 1;	/* the other bits are reserved */
			n += vec[i];
		}
		*src = GM_MAP_MINCORE;
		return n;
	}
	*src = GM_MAP_PAGEMAP;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	entries = malloc(PAGEMAP_CHUNK * sizeof(*entries));
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
	*src = GM_MAP_ALL;
	memset(vec, 1, npages);
	return npages;
}

bool gm_page_is_zero(const uint8_t *page)
{
	return page[0] == 0 && memcmp(page, page + 1, 4095) == 0;
}
