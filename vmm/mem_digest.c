/* mem_digest.c - see mem_digest.h. */
#include "mem_digest.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define PG 4096

static const uint8_t zero_page[PG];

const char *mem_digest_name(enum mem_digest_kind k)
{
	return k == MEM_DIGEST_SPARSE ? MEM_DIGEST_SPARSE_NAME : MEM_DIGEST_FULL_NAME;
}

int mem_digest_parse(const char *name, enum mem_digest_kind *k)
{
	if (strcmp(name, MEM_DIGEST_FULL_NAME) == 0)
		*k = MEM_DIGEST_FULL;
	else if (strcmp(name, MEM_DIGEST_SPARSE_NAME) == 0)
		*k = MEM_DIGEST_SPARSE;
	else
		return -1;
	return 0;
}

int mem_digest(const struct guest_mem *gm, enum mem_digest_kind k, uint64_t *lo, uint64_t *hi)
{
	uint64_t npages = gm->size / PG;
	uint8_t *vec = malloc(npages ? npages : 1);
	XXH3_state_t *st = XXH3_createState();
	XXH128_hash_t h;
	int rc = -1;

	if (!st || XXH3_128bits_reset(st) != XXH_OK)
		goto out;
	/* Without the map (no memory for it), every page is read: slower,
	 * the same digest. */
	if (vec)
		gm_populated(gm, vec);
	for (uint64_t pg = 0; pg < npages; pg++) {
		const uint8_t *p = gm->host + pg * PG;
		bool untouched = vec && !vec[pg];
		if (k == MEM_DIGEST_FULL) {
			if (XXH3_128bits_update(st, untouched ? zero_page : p, PG) != XXH_OK)
				goto out;
			continue;
		}
		if (untouched || gm_page_is_zero(p))
			continue;
		uint8_t gpa[8];
		uint64_t a = gm_offset_to_gpa(gm, pg * PG);
		for (int i = 0; i < 8; i++)
			gpa[i] = (uint8_t)(a >> (8 * i));
		if (XXH3_128bits_update(st, gpa, sizeof(gpa)) != XXH_OK ||
		    XXH3_128bits_update(st, p, PG) != XXH_OK)
			goto out;
	}
	/* vm_create refuses RAM that is not whole pages; a tail, in a
	 * test's buffer, is hashed as it is. */
	if (gm->size % PG && XXH3_128bits_update(st, gm->host + npages * PG, gm->size % PG) != XXH_OK)
		goto out;
	h = XXH3_128bits_digest(st);
	*lo = h.low64;
	*hi = h.high64;
	rc = 0;
out:
	XXH3_freeState(st);
	free(vec);
	return rc;
}
