/*
 * ckpt_map.c - the two in-memory hash tables of the checkpoint database:
 *   - struct ckpt_map, gfn (or block number) -> content hash: the writer's
 *     current full maps of RAM and disk, from which it writes a full map
 *     every CKPT_FULL_EVERY checkpoints; the reader's merge of a full map
 *     with the incremental maps after it.
 *   - struct ckpt_hset, the set of hashes already in the pages table, so
 *     that the writer compresses and inserts a content only once without
 *     asking SQLite about every page.
 * Both use open addressing with linear probing and grow at 3/4 load; a
 * guest of 4 GiB (1M gfns) costs 2M slots of 24 bytes at most.
 */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "checkpoint/ckpt_internal.h"

#define MIN_CAP 1024

/* gfns are dense runs: spread them over the table. */
static inline size_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return (size_t)x;
}

static struct ckpt_map_ent *map_alloc(size_t cap)
{
	struct ckpt_map_ent *s = malloc(cap * sizeof(*s));

	if (!s)
		return NULL;
	for (size_t i = 0; i < cap; i++)
		s[i].key = CKPT_MAP_EMPTY;
	return s;
}

static void map_put(struct ckpt_map_ent *slot, size_t cap, uint64_t key,
		    const struct ckpt_hash *h, size_t *count)
{
	size_t mask = cap - 1, i = mix(key) & mask;

	while (slot[i].key != CKPT_MAP_EMPTY && slot[i].key != key)
		i = (i + 1) & mask;
	if (slot[i].key == CKPT_MAP_EMPTY)
		(*count)++;
	slot[i].key = key;
	slot[i].h = *h;
}

static int map_grow(struct ckpt_map *m)
{
	size_t cap = m->cap ? 2 * m->cap : MIN_CAP, n = 0;
	struct ckpt_map_ent *s = map_alloc(cap);

	if (!s)
		return -1;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slot[i].key != CKPT_MAP_EMPTY)
			map_put(s, cap, m->slot[i].key, &m->slot[i].h, &n);
	free(m->slot);
	m->slot = s;
	m->cap = cap;
	return 0;
}

void ckpt_sum_entry(struct ckpt_hash *sum, uint64_t key, const struct ckpt_hash *h, int sign)
{
	uint8_t b[8 + CKPT_HASH_BLOB];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(key >> (8 * i));
	ckpt_hash_to_blob(h, b + 8);
	XXH128_hash_t t = XXH3_128bits(b, sizeof(b));
	unsigned __int128 s = ((unsigned __int128)sum->hi << 64) | sum->lo;
	unsigned __int128 v = ((unsigned __int128)t.high64 << 64) | t.low64;

	s = sign > 0 ? s + v : s - v;
	sum->lo = (uint64_t)s;
	sum->hi = (uint64_t)(s >> 64);
}

/* The entry of key, or NULL. */
static struct ckpt_map_ent *map_find(const struct ckpt_map *m, uint64_t key)
{
	size_t mask = m->cap - 1;

	if (!m->cap)
		return NULL;
	for (size_t i = mix(key) & mask; m->slot[i].key != CKPT_MAP_EMPTY; i = (i + 1) & mask)
		if (m->slot[i].key == key)
			return &m->slot[i];
	return NULL;
}

int ckpt_map_set(struct ckpt_map *m, uint64_t key, const struct ckpt_hash *h)
{
	struct ckpt_map_ent *e = map_find(m, key);

	if (e) {
		ckpt_sum_entry(&m->sum, key, &e->h, -1);
		e->h = *h;
	} else {
		if (4 * (m->count + 1) > 3 * m->cap && map_grow(m))
			return -1;
		map_put(m->slot, m->cap, key, h, &m->count);
	}
	ckpt_sum_entry(&m->sum, key, h, 1);
	return 0;
}

/* Backward-shift deletion: no tombstones, probe chains stay short. */
void ckpt_map_del(struct ckpt_map *m, uint64_t key)
{
	struct ckpt_map_ent *e = map_find(m, key);
	size_t mask = m->cap - 1, i, j;

	if (!e)
		return;
	ckpt_sum_entry(&m->sum, key, &e->h, -1);
	i = (size_t)(e - m->slot);
	for (j = i;;) {
		size_t home;

		j = (j + 1) & mask;
		if (m->slot[j].key == CKPT_MAP_EMPTY)
			break;
		home = mix(m->slot[j].key) & mask;
		/* Move j back to i unless its home lies cyclically in (i, j]. */
		if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
			m->slot[i] = m->slot[j];
			i = j;
		}
	}
	m->slot[i].key = CKPT_MAP_EMPTY;
	m->count--;
}

void ckpt_map_clear(struct ckpt_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		m->slot[i].key = CKPT_MAP_EMPTY;
	m->count = 0;
	m->sum = (struct ckpt_hash){ 0, 0 };
}

void ckpt_map_free(struct ckpt_map *m)
{
	free(m->slot);
	memset(m, 0, sizeof(*m));
}

static int cmp_key(const void *a, const void *b)
{
	uint64_t x = ((const struct ckpt_map_ent *)a)->key;
	uint64_t y = ((const struct ckpt_map_ent *)b)->key;

	return x < y ? -1 : x > y;
}

int ckpt_map_sorted(const struct ckpt_map *m, struct ckpt_map_ent **out, size_t *n)
{
	struct ckpt_map_ent *e;
	size_t k = 0;

	*out = NULL;
	*n = 0;
	if (!m->count)
		return 0;
	e = malloc(m->count * sizeof(*e));
	if (!e)
		return -1;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slot[i].key != CKPT_MAP_EMPTY)
			e[k++] = m->slot[i];
	qsort(e, k, sizeof(*e), cmp_key);
	*out = e;
	*n = k;
	return 0;
}

/* ---- the set of stored hashes ---- */

static inline bool hzero(const struct ckpt_hash *h)
{
	return !h->lo && !h->hi;
}

static void hset_put(struct ckpt_hash *slot, size_t cap, const struct ckpt_hash *h)
{
	size_t mask = cap - 1, i = mix(h->lo ^ h->hi) & mask;

	while (!hzero(&slot[i]))
		i = (i + 1) & mask;
	slot[i] = *h;
}

bool ckpt_hset_has(const struct ckpt_hset *s, const struct ckpt_hash *h)
{
	size_t mask = s->cap - 1, i;

	if (hzero(h))
		return s->has_zero_key;
	if (!s->cap)
		return false;
	for (i = mix(h->lo ^ h->hi) & mask; !hzero(&s->slot[i]); i = (i + 1) & mask)
		if (ckpt_hash_eq(&s->slot[i], h))
			return true;
	return false;
}

/* h must not be in the set yet. */
int ckpt_hset_add(struct ckpt_hset *s, const struct ckpt_hash *h)
{
	if (hzero(h)) {
		s->has_zero_key = true;
		return 0;
	}
	if (4 * (s->count + 1) > 3 * s->cap) {
		size_t cap = s->cap ? 2 * s->cap : MIN_CAP;
		struct ckpt_hash *n = calloc(cap, sizeof(*n));

		if (!n)
			return -1;
		for (size_t i = 0; i < s->cap; i++)
			if (!hzero(&s->slot[i]))
				hset_put(n, cap, &s->slot[i]);
		free(s->slot);
		s->slot = n;
		s->cap = cap;
	}
	hset_put(s->slot, s->cap, h);
	s->count++;
	return 0;
}

void ckpt_hset_free(struct ckpt_hset *s)
{
	free(s->slot);
	memset(s, 0, sizeof(*s));
}
