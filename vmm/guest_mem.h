/*
 * guest_mem.h - guest physical RAM and bounds-checked access to it.
 *
 * RAM occupies [0, low_size) and, when the guest has more than fits below the
 * 32-bit device hole, [4 GiB, 4 GiB + high_size).  Everything a device does
 * with a guest-supplied address goes through gm_ptr()/gm_read()/gm_write(),
 * which refuse any range that is not wholly inside one RAM block: a guest
 * cannot make the monitor touch memory outside its own RAM.
 */
#ifndef DETVM_GUEST_MEM_H
#define DETVM_GUEST_MEM_H

#include <stdbool.h>
#include <stdint.h>

#define GM_HOLE_START 0xC0000000ULL /* 3 GiB: devices live above */
#define GM_HIGH_START 0x100000000ULL

struct guest_mem {
	uint8_t *host;      /* one mapping: low block, then high block */
	uint64_t size;      /* total RAM */
	uint64_t low_size;  /* RAM below GM_HOLE_START */
	uint64_t high_size; /* RAM from GM_HIGH_START */
	/*
	 * Optional: one bit per 4 KiB page of `host` (host offset >> 12), set by
	 * gm_ptr()/gm_write() for writes the monitor itself makes (virtio DMA).
	 * KVM's dirty log sees only the guest's own writes; checkpoints need
	 * both.  gm_ptr() cannot know whether its caller writes, so it marks
	 * the range too: a checkpoint may then copy a page that did not change,
	 * never miss one that did.
	 */
	uint64_t *dirty;
};

/* Host pointer for [gpa, gpa + len), or NULL if not wholly in one RAM block. */
void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len);
/* 0, or -1 if the range is not RAM. */
int gm_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len);
int gm_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len);

/*
 * Set up the layout for `size` bytes over an existing host buffer (no
 * allocation: tests pass a static array, the VM an mmap).
 */
void gm_layout(struct guest_mem *gm, uint8_t *host, uint64_t size);

/*
 * Which pages of RAM may hold anything but zeros: vec[i] (i = host offset
 * >> 12, size >> 12 entries) is 1 if page i is mapped in this process or
 * swapped out, 0 if it was never touched and so reads as zero.  Found
 * without touching the pages: reading an untouched page of the anonymous
 * mapping would fault it in (some 30 ms for 128 MiB on the nested hosts).
 * RAM must be a private anonymous mapping (vm_create's), and nothing may
 * touch it meanwhile (the vCPU stopped).
 *
 * mincore() is asked first: 0.09 ms for 128 MiB here with the VmSwap
 * read, against 0.235 ms for /proc/self/pagemap, on every final and
 * periodic digest and full checkpoint.  But it reports a swapped-out page
 * as absent, so its answer is taken only if afterwards none of this
 * process's memory is in swap (VmSwap in /proc/self/status is 0): a page
 * swapped out before or while mincore looked is still out then, since
 * only a fault on it (nothing touches RAM meanwhile) or a swapoff(2)
 * brings it back.  Otherwise the page map is read, which tells swapped
 * pages apart; if it cannot be read, every page is reported (slower, never
 * wrong).  Returns the number of pages reported.
 */
uint64_t gm_populated(const struct guest_mem *gm, uint8_t *vec);

/* What gm_populated_from() took its answer from. */
enum gm_map_source { GM_MAP_MINCORE, GM_MAP_PAGEMAP, GM_MAP_ALL };
/* gm_populated, with the status file to read VmSwap from (the tests' own)
 * and what the answer came from. */
uint64_t gm_populated_from(const struct guest_mem *gm, uint8_t *vec, const char *status_path,
			   enum gm_map_source *src);
/* The "VmSwap:" of a /proc/PID/status file, in KiB: 0, or -1 if the file
 * cannot be read or has no such line with a number. */
int gm_swap_kib(const char *status_path, uint64_t *kib);

/* Whether the 4096 bytes at `page` are all zero. */
bool gm_page_is_zero(const uint8_t *page);

/* Guest physical address of host offset `off` (off < size). */
uint64_t gm_offset_to_gpa(const struct guest_mem *gm, uint64_t off);
/* Host offset of gpa, or -1 if gpa is not RAM. */
int64_t gm_gpa_to_offset(const struct guest_mem *gm, uint64_t gpa);

#endif
