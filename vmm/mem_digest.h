/*
 * mem_digest.h - the digest of guest RAM that DIGEST and END events carry
 * and replay compares (trace-format/SPEC.md, header field MEM_DIGEST).
 *
 *   MEM_DIGEST_FULL    XXH3-128 of all of RAM, host offset order (format
 *                      1.0, and any trace without MEM_DIGEST).
 *   MEM_DIGEST_SPARSE  XXH3-128 of, for every 4 KiB page that is not all
 *                      zero, in increasing guest-physical order: its
 *                      guest-physical address (u64, little-endian), then
 *                      its 4096 bytes.
 *
 * Both are functions of RAM's content only.  The sparse one costs time in
 * proportion to the pages in use rather than to RAM's size: 128 MiB took
 * 34 ms with FULL the naive way (every untouched page faulted in to be
 * read) and 9 ms with FULL reading untouched pages as zeros; SPARSE skips
 * them.  Untouched pages are found with gm_populated() either way.
 */
#ifndef DETVM_MEM_DIGEST_H
#define DETVM_MEM_DIGEST_H

#include <stdint.h>

#include "guest_mem.h"

enum mem_digest_kind { MEM_DIGEST_FULL, MEM_DIGEST_SPARSE };

#define MEM_DIGEST_FULL_NAME   "xxh3-128"
#define MEM_DIGEST_SPARSE_NAME "xxh3-128-sparse"

const char *mem_digest_name(enum mem_digest_kind k);
/* 0, or -1 if `name` is not a known digest. */
int mem_digest_parse(const char *name, enum mem_digest_kind *k);
/* 0, or -1 if xxHash could not allocate its state. */
int mem_digest(const struct guest_mem *gm, enum mem_digest_kind k, uint64_t *lo, uint64_t *hi);

#endif
