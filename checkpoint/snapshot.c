/* snapshot.c - see snapshot.h. */
#include "snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "vmm/vcpu_state.h"

#define PG 4096u
#define DEV_MAGIC "DDEV"
#define DEV_VERSION 1u
#define MAX_DEVICES 32

/* ---- growable list of pages (gfn + copy) ---- */

struct page_list {
	size_t n, cap;
	uint64_t *no;
	uint8_t *data;
};

static int pl_add(struct page_list *l, uint64_t no, const uint8_t *src)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		uint64_t *no2 = realloc(l->no, cap * sizeof(*no2));
		if (!no2)
			return -1;
		l->no = no2;
		uint8_t *d2 = realloc(l->data, cap * PG);
		if (!d2)
			return -1;
		l->data = d2;
		l->cap = cap;
	}
	l->no[l->n] = no;
	memcpy(l->data + l->n * PG, src, PG);
	l->n++;
	return 0;
}

/* ---- devices ---- */

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

int snapshot_devices_save(struct vm *vm, uint8_t **blob, size_t *len)
{
	struct platform_state_ref refs[MAX_DEVICES];
	int n = platform_state_refs(&vm->plat, refs, MAX_DEVICES);
	size_t size = 12 + 8;
	for (int i = 0; i < n; i++)
		size += 1 + strlen(refs[i].name) + 4 + refs[i].size;
	uint8_t *b = malloc(size), *p = b;
	if (!b)
		return -1;
	memcpy(p, DEV_MAGIC, 4);
	put32(p + 4, DEV_VERSION);
	put32(p + 8, (uint32_t)n);
	p += 12;
	for (int i = 0; i < n; i++) {
		size_t nl = strlen(refs[i].name);
		*p++ = (uint8_t)nl;
		memcpy(p, refs[i].name, nl);
		p += nl;
		put32(p, (uint32_t)refs[i].size);
		p += 4;
		memcpy(p, refs[i].ptr, refs[i].size);
		p += refs[i].size;
	}
	uint64_t h = XXH3_64bits(b, (size_t)(p - b));
	memcpy(p, &h, 8);
	*blob = b;
	*len = size;
	return 0;
}

int snapshot_devices_restore(struct vm *vm, const uint8_t *b, size_t len, char *err, size_t errlen)
{
	struct platform_state_ref refs[MAX_DEVICES];
	const uint8_t *src[MAX_DEVICES];
	int n = platform_state_refs(&vm->plat, refs, MAX_DEVICES);
	uint64_t h;

	if (len < 20 || memcmp(b, DEV_MAGIC, 4)) {
		snprintf(err, errlen, "device state: not a device state blob (%zu bytes)", len);
		return -1;
	}
	memcpy(&h, b + len - 8, 8);
	if (h != XXH3_64bits(b, len - 8)) {
		snprintf(err, errlen, "device state: checksum mismatch (damaged)");
		return -1;
	}
	if (get32(b + 4) != DEV_VERSION) {
		snprintf(err, errlen, "device state: version %u, this detvm reads %u", get32(b + 4), DEV_VERSION);
		return -1;
	}
	if (get32(b + 8) != (uint32_t)n) {
		snprintf(err, errlen, "device state: %u devices, this machine has %d", get32(b + 8), n);
		return -1;
	}
	size_t off = 12, end = len - 8;
	for (int i = 0; i < n; i++) {
		size_t nl = strlen(refs[i].name);
		if (off + 1 > end || b[off] != nl || off + 1 + nl + 4 > end ||
		    memcmp(b + off + 1, refs[i].name, nl)) {
			snprintf(err, errlen, "device state: at offset %zu, expected device '%s'", off, refs[i].name);
			return -1;
		}
		off += 1 + nl;
		uint32_t sz = get32(b + off);
		off += 4;
		if (sz != refs[i].size || off + sz > end) {
			snprintf(err, errlen, "device state: '%s' has %u bytes at offset %zu, this detvm's has %zu",
				 refs[i].name, sz, off, refs[i].size);
			return -1;
		}
		src[i] = b + off;
		off += sz;
	}
	if (off != end) {
		snprintf(err, errlen, "device state: %zu stray bytes at offset %zu", end - off, off);
		return -1;
	}
	for (int i = 0; i < n; i++)
		memcpy(refs[i].ptr, src[i], refs[i].size);
	/* The vtimers mirror the PIT's and the local APIC's state. */
	pit_state_restored(&vm->plat.pit);
	lapic_state_restored(&vm->plat.lapic);
	return 0;
}

/* ---- RAM ---- */

static int capture_pages(struct vm *vm, bool full, struct page_list *l, char *err, size_t errlen)
{
	const struct guest_mem *gm = &vm->mem;
	uint64_t npages = gm->size / PG;
	size_t words = (npages + 63) / 64;
	uint64_t *written = calloc(words ? words : 1, sizeof(uint64_t));
	int ret = -1;

	if (!written) {
		snprintf(err, errlen, "out of memory for the dirty-page bitmap");
		return -1;
	}
	/* Always collect (and so reset) the dirty logs, full or not. */
	if (vm_take_dirty(vm, written, err, errlen))
		goto out;
	if (full) {
		/* Untouched pages of the anonymous mapping read as zero:
		 * only populated ones need a look. */
		unsigned char *vec = malloc(npages ? npages : 1);
		if (!vec) {
			snprintf(err, errlen, "out of memory for the map of populated pages");
			goto out;
		}
		gm_populated(gm, vec);
		for (uint64_t pg = 0; pg < npages; pg++) {
			const uint8_t *p = gm->host + pg * PG;
			if (!vec[pg] || gm_page_is_zero(p))
				continue;
			if (pl_add(l, gm_offset_to_gpa(gm, pg * PG) / PG, p)) {
				free(vec);
				snprintf(err, errlen, "out of memory copying guest pages");
				goto out;
			}
		}
		free(vec);
		ret = 0;
		goto out;
	}
	for (size_t w = 0; w < words; w++)
		for (uint64_t bits = written[w]; bits; bits &= bits - 1) {
			uint64_t pg = w * 64 + (uint64_t)__builtin_ctzll(bits);
			if (pg >= npages)
				break;
			if (pl_add(l, gm_offset_to_gpa(gm, pg * PG) / PG, gm->host + pg * PG)) {
				snprintf(err, errlen, "out of memory copying guest pages");
				goto out;
			}
		}
	ret = 0;
out:
	free(written);
	return ret;
}

static int add_block(void *ctx, uint64_t block, const uint8_t *data)
{
	return pl_add(ctx, block, data);
}

struct ckpt_capture *snapshot_capture(struct vm *vm, bool full, char *err, size_t errlen)
{
	struct ckpt_capture *c = calloc(1, sizeof(*c));
	struct page_list pages = { 0 }, blocks = { 0 };

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->full = full;
	if (vcpu_state_save(&vm->kvm, &c->vcpu, &c->vcpu_len, err, errlen))
		goto fail;
	if (snapshot_devices_save(vm, &c->devices, &c->devices_len)) {
		snprintf(err, errlen, "out of memory saving device state");
		goto fail;
	}
	if (capture_pages(vm, full, &pages, err, errlen))
		goto fail;
	if (vm->bd && blockdev_is_overlay(vm->bd) &&
	    blockdev_overlay_foreach(vm->bd, !full, true, add_block, &blocks)) {
		snprintf(err, errlen, "out of memory copying disk blocks");
		goto fail;
	}
	c->npages = pages.n;
	c->page_gfn = pages.no;
	c->page_data = pages.data;
	c->nblocks = blocks.n;
	c->block_no = blocks.no;
	c->block_data = blocks.data;
	return c;
fail:
	free(pages.no);
	free(pages.data);
	free(blocks.no);
	free(blocks.data);
	ckpt_capture_free(c);
	return NULL;
}

/* ---- restore ---- */

struct restore_ctx {
	struct vm *vm;
	char *err;
	size_t errlen;
};

static int put_page(void *ctx, uint64_t gfn, const uint8_t *data)
{
	struct restore_ctx *rc = ctx;
	int64_t off = gfn > UINT64_MAX / PG ? -1 : gm_gpa_to_offset(&rc->vm->mem, gfn * PG);
	if (off < 0) {
		snprintf(rc->err, rc->errlen, "checkpoint page gfn 0x%" PRIx64 " is outside guest RAM", gfn);
		return -1;
	}
	memcpy(rc->vm->mem.host + off, data, PG);
	return 0;
}

static int put_block(void *ctx, uint64_t block, const uint8_t *data)
{
	struct restore_ctx *rc = ctx;
	int r = blockdev_overlay_put(rc->vm->bd, block, data);
	if (r) {
		snprintf(rc->err, rc->errlen, "checkpoint disk block %" PRIu64 ": %s", block, strerror(-r));
		return -1;
	}
	return 0;
}

int snapshot_restore(struct vm *vm, struct ckpt_db *db, const struct ckpt_info *ci,
		     char *err, size_t errlen)
{
	uint8_t *vcpu = NULL, *dev = NULL;
	size_t vcpu_len = 0, dev_len = 0;
	struct restore_ctx rc = { vm, err, errlen };
	char e2[400];
	uint64_t raw;
	int ret = -1;

	if (ckpt_db_blobs(db, ci->id, &vcpu, &vcpu_len, &dev, &dev_len, err, errlen))
		return -1;
	/* A fresh VM holds the loaded kernel: clear RAM, then write the
	 * checkpoint's pages (absent ones are zero). */
	if (madvise(vm->mem.host, vm->mem.size, MADV_DONTNEED) < 0) {
		snprintf(err, errlen, "clearing guest RAM (madvise): %s", strerror(errno));
		goto out;
	}
	err[0] = 0;
	e2[0] = 0;
	if (ckpt_db_pages(db, ci->id, put_page, &rc, e2, sizeof(e2)) ||
	    (vm->bd && ckpt_db_blocks(db, ci->id, put_block, &rc, e2, sizeof(e2)))) {
		if (!err[0]) /* else put_page/put_block said what */
			snprintf(err, errlen, "%s", e2[0] ? e2 : "reading the checkpoint's pages failed");
		goto out;
	}
	if (vcpu_state_restore(&vm->kvm, vcpu, vcpu_len, e2, sizeof(e2))) {
		snprintf(err, errlen, "checkpoint %" PRId64 " (exit %" PRIu64 "): vCPU state: %s", ci->id, ci->exit, e2);
		goto out;
	}
	if (snapshot_devices_restore(vm, dev, dev_len, e2, sizeof(e2))) {
		snprintf(err, errlen, "checkpoint %" PRId64 " (exit %" PRIu64 "): %s", ci->id, ci->exit, e2);
		goto out;
	}
	struct kvm_regs regs;
	uint64_t h;
	if (vm_regs(vm, &regs, &h)) {
		snprintf(err, errlen, "checkpoint %" PRId64 " (exit %" PRIu64 "): KVM_GET_REGS after restoring: %s",
			 ci->id, ci->exit, strerror(errno));
		goto out;
	}
	if (h != ci->regs_hash) {
		snprintf(err, errlen, "checkpoint %" PRId64 " (exit %" PRIu64 "): restored registers hash to %016"
			 PRIx64 ", the checkpoint says %016" PRIx64, ci->id, ci->exit, h, ci->regs_hash);
		goto out;
	}
	vm->stats.exits = ci->exit;
	vm->progress_offset = 0;
	if (kvm_read_insn_emulation(&vm->kvm, &raw) == 0)
		vm->progress_offset = (int64_t)(ci->progress - raw);
	if (vm->mem.dirty)
		memset(vm->mem.dirty, 0, (vm->mem.size / PG / 64 + 1) * sizeof(uint64_t));
	ret = 0;
out:
	free(vcpu);
	free(dev);
	return ret;
}
