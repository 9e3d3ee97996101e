/* vcpu_state.c - see vcpu_state.h.  The KVM API is Documentation/virt/kvm/api.rst. */
#include "vcpu_state.h"
#include "common/errf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <xxhash.h>

#define HDR_LEN     8u  /* magic, version */
#define SUM_LEN     8u  /* trailing XXH3-64 */
#define SEC_HDR_LEN 8u  /* tag, length */
#define NTAGS       10u /* tags 1..9 */

/* Bounds on the variable sections (far above what KVM produces today). */
#define XSAVE_MIN   ((uint32_t)sizeof(struct kvm_xsave)) /* 4096 */
#define XSAVE_MAX   (1u << 20)
#define MSRS_MAX    4096u
/* KVM refuses KVM_GET_MSRS/KVM_SET_MSRS with nmsrs >= MAX_IO_MSRS (256). */
#define MSR_CHUNK   128u

struct msr_rec {
	uint32_t index, pad;
	uint64_t value;
};

static const char *tag_name(uint32_t tag)
{
	static const char *const names[NTAGS] = {
		[VCPU_STATE_REGS] = "REGS",
		[VCPU_STATE_SREGS] = "SREGS",
		[VCPU_STATE_FPU] = "FPU",
		[VCPU_STATE_XSAVE] = "XSAVE",
		[VCPU_STATE_XCRS] = "XCRS",
		[VCPU_STATE_MSRS] = "MSRS",
		[VCPU_STATE_VCPU_EVENTS] = "VCPU_EVENTS",
		[VCPU_STATE_DEBUGREGS] = "DEBUGREGS",
		[VCPU_STATE_MP_STATE] = "MP_STATE",
	};
	return tag > 0 && tag < NTAGS ? names[tag] : NULL;
}

/* Fixed section sizes; 0 = variable (checked separately). */
static size_t tag_size(uint32_t tag)
{
	switch (tag) {
	case VCPU_STATE_REGS: return sizeof(struct kvm_regs);
	case VCPU_STATE_SREGS: return sizeof(struct kvm_sregs);
	case VCPU_STATE_FPU: return sizeof(struct kvm_fpu);
	case VCPU_STATE_XCRS: return sizeof(struct kvm_xcrs);
	case VCPU_STATE_VCPU_EVENTS: return sizeof(struct kvm_vcpu_events);
	case VCPU_STATE_DEBUGREGS: return sizeof(struct kvm_debugregs);
	case VCPU_STATE_MP_STATE: return sizeof(struct kvm_mp_state);
	default: return 0;
	}
}

static bool tag_required(uint32_t tag)
{
	return tag != VCPU_STATE_XSAVE && tag != VCPU_STATE_XCRS;
}

/* MSRs never saved (see vcpu_state.h): IA32_TSC and KVM's paravirtual MSRs. */
static bool msr_excluded(uint32_t index)
{
	return index == 0x10 || index == 0x11 || index == 0x12 ||
	       (index >= 0x4b564d00u && index <= 0x4b564dffu);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

/* ---- parsing and validation ------------------------------------------- */

struct parsed {
	const uint8_t *data[NTAGS];
	uint32_t len[NTAGS];
	size_t off[NTAGS]; /* offset of the section header in the blob */
};

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* The MSRS section's own content. */
static int check_msrs(const uint8_t *d, uint32_t len, size_t off, char *err, size_t errlen)
{
	size_t doff = off + SEC_HDR_LEN;
	if (len < 4)
		return errf(err, errlen, "MSRS section at offset %zu: length %u, too short for its count", off, len);
	uint32_t n = get32(d);
	if (n > MSRS_MAX)
		return errf(err, errlen, "MSRS section at offset %zu: count %u (at most %u)", off, n, MSRS_MAX);
	if ((uint64_t)len != 4 + (uint64_t)n * sizeof(struct msr_rec))
		return errf(err, errlen, "MSRS section at offset %zu: length %u, expected %zu for %u MSRs",
			    off, len, 4 + (size_t)n * sizeof(struct msr_rec), n);
	uint32_t *idx = malloc(((size_t)n + 1) * sizeof(*idx));
	if (!idx)
		return errf(err, errlen, "out of memory checking the MSRS section");
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = d + 4 + (size_t)i * sizeof(struct msr_rec);
		uint32_t index = get32(e);
		idx[i] = index;
		if (get32(e + 4) != 0) {
			free(idx);
			return errf(err, errlen, "MSRS section at offset %zu: entry %u (byte offset %zu, MSR 0x%x) has a non-zero pad",
				    off, i, doff + 4 + (size_t)i * sizeof(struct msr_rec), index);
		}
		if (msr_excluded(index)) {
			free(idx);
			return errf(err, errlen, "MSRS section at offset %zu: entry %u (byte offset %zu) is MSR 0x%x, which is never saved",
				    off, i, doff + 4 + (size_t)i * sizeof(struct msr_rec), index);
		}
	}
	qsort(idx, n, sizeof(*idx), cmp_u32);
	for (uint32_t i = 1; i < n; i++)
		if (idx[i] == idx[i - 1]) {
			uint32_t dup = idx[i];
			free(idx);
			return errf(err, errlen, "MSRS section at offset %zu: MSR 0x%x appears twice", off, dup);
		}
	free(idx);
	return 0;
}

static int parse(const uint8_t *blob, size_t len, struct parsed *p, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	if (!blob)
		return errf(err, errlen, "no vCPU state blob (NULL)");
	if (len < HDR_LEN + SUM_LEN)
		return errf(err, errlen, "vCPU state blob of %zu bytes is too short (truncated): at least %u needed for magic, version and checksum",
			    len, HDR_LEN + SUM_LEN);
	if (memcmp(blob, VCPU_STATE_MAGIC, 4) != 0)
		return errf(err, errlen, "bad magic at offset 0 (%02x %02x %02x %02x, expected \"%s\"): not a vCPU state blob",
			    blob[0], blob[1], blob[2], blob[3], VCPU_STATE_MAGIC);
	uint32_t version = get32(blob + 4);
	if (version != VCPU_STATE_VERSION)
		return errf(err, errlen, "vCPU state version %u at offset 4; this detvm reads version %u",
			    version, VCPU_STATE_VERSION);
	size_t end = len - SUM_LEN;
	uint64_t stored = get64(blob + end), computed = XXH3_64bits(blob, end);
	if (stored != computed)
		return errf(err, errlen, "checksum mismatch at offset %zu (stored %016llx, computed %016llx): the blob is damaged or truncated",
			    end, (unsigned long long)stored, (unsigned long long)computed);

	size_t off = HDR_LEN;
	while (off < end) {
		if (end - off < SEC_HDR_LEN)
			return errf(err, errlen, "section header at offset %zu runs past the end of the sections (offset %zu)",
				    off, end);
		uint32_t tag = get32(blob + off), slen = get32(blob + off + 4);
		const char *name = tag_name(tag);
		if (!name)
			return errf(err, errlen, "unknown section tag %u at offset %zu (written by a newer detvm?)", tag, off);
		if (p->data[tag])
			return errf(err, errlen, "duplicate %s section at offset %zu (the first is at offset %zu)",
				    name, off, p->off[tag]);
		if (slen > end - off - SEC_HDR_LEN)
			return errf(err, errlen, "%s section at offset %zu: length %u runs past the end of the sections (offset %zu)",
				    name, off, slen, end);
		size_t want = tag_size(tag);
		if (want && slen != want)
			return errf(err, errlen, "%s section at offset %zu: length %u, expected %zu (the size of the kernel's struct)",
				    name, off, slen, want);
		if (tag == VCPU_STATE_XSAVE && (slen < XSAVE_MIN || slen > XSAVE_MAX || slen % 4))
			return errf(err, errlen, "XSAVE section at offset %zu: length %u (must be a multiple of 4 from %u to %u)",
				    off, slen, XSAVE_MIN, XSAVE_MAX);
		p->data[tag] = blob + off + SEC_HDR_LEN;
		p->len[tag] = slen;
		p->off[tag] = off;
		off += SEC_HDR_LEN + slen;
	}
	for (uint32_t t = 1; t < NTAGS; t++)
		if (tag_required(t) && !p->data[t])
			return errf(err, errlen, "required %s section is missing (sections end at offset %zu)",
				    tag_name(t), end);

	/* Content the kernel would refuse anyway, checked before any change. */
	if (check_msrs(p->data[VCPU_STATE_MSRS], p->len[VCPU_STATE_MSRS], p->off[VCPU_STATE_MSRS], err, errlen))
		return -1;
	if (p->data[VCPU_STATE_XCRS]) {
		struct kvm_xcrs x;
		memcpy(&x, p->data[VCPU_STATE_XCRS], sizeof(x));
		if (x.nr_xcrs > KVM_MAX_XCRS)
			return errf(err, errlen, "XCRS section at offset %zu: nr_xcrs %u (at most %d)",
				    p->off[VCPU_STATE_XCRS], x.nr_xcrs, KVM_MAX_XCRS);
	}
	struct kvm_debugregs dr;
	memcpy(&dr, p->data[VCPU_STATE_DEBUGREGS], sizeof(dr));
	if (dr.flags)
		return errf(err, errlen, "DEBUGREGS section at offset %zu: flags 0x%llx (must be 0)",
			    p->off[VCPU_STATE_DEBUGREGS], (unsigned long long)dr.flags);
	return 0;
}

int vcpu_state_section(const uint8_t *blob, size_t len, uint32_t tag,
		       const uint8_t **data, uint32_t *data_len, char *err, size_t errlen)
{
	struct parsed p;
	if (parse(blob, len, &p, err, errlen))
		return -1;
	if (!tag_name(tag))
		return errf(err, errlen, "no such vCPU state section tag %u", tag);
	if (data)
		*data = p.data[tag];
	if (data_len)
		*data_len = p.len[tag];
	return 0;
}

int vcpu_state_decode(const uint8_t *blob, size_t len, struct kvm_regs *regs,
		      struct kvm_sregs *sregs, char *err, size_t errlen)
{
	struct parsed p;
	if (parse(blob, len, &p, err, errlen))
		return -1;
	if (regs)
		memcpy(regs, p.data[VCPU_STATE_REGS], sizeof(*regs));
	if (sregs)
		memcpy(sregs, p.data[VCPU_STATE_SREGS], sizeof(*sregs));
	return 0;
}

/* ---- KVM helpers ------------------------------------------------------- */

/* Does the last exit leave KVM an instruction to finish at the next KVM_RUN? */
static bool exit_pending(const struct kvm_run *run)
{
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
	case KVM_EXIT_MMIO:
	case KVM_EXIT_X86_RDMSR:
	case KVM_EXIT_X86_WRMSR:
	case KVM_EXIT_HYPERCALL:
		return true;
	default:
		return false;
	}
}

/*
 * Let KVM finish the instruction of the last exit without running the guest
 * further: KVM_RUN with immediate_exit set completes the pending userspace
 * I/O, then returns -EINTR (api.rst, "immediate_exit").
 */
static int complete_pending(struct kvm *k, bool keep_exit_reason, char *err, size_t errlen)
{
	struct kvm_run *run = k->run;
	if (!run || !exit_pending(run))
		return 0;
	uint32_t reason = run->exit_reason;
	uint8_t had = run->immediate_exit;
	run->immediate_exit = 1;
	int r = ioctl(k->vcpu_fd, KVM_RUN, 0);
	int e = errno;
	run->immediate_exit = had;
	if (r == 0)
		return errf(err, errlen, "completing the instruction of the last exit (KVM exit reason %u) needs another "
			    "exit to userspace (reason %u): handle it, then save again", reason, run->exit_reason);
	if (e != EINTR) {
		errno = e;
		return errf(err, errlen, "KVM_RUN with immediate_exit (completing exit reason %u): %s",
			    reason, strerror(e));
	}
	if (keep_exit_reason)
		run->exit_reason = reason;
	return 0;
}

/* KVM_GET_MSR_INDEX_LIST on the system fd: first the count (E2BIG), then the list. */
static int msr_index_list(struct kvm *k, uint32_t **out, uint32_t *count, char *err, size_t errlen)
{
	*out = NULL;
	*count = 0;
	for (int attempt = 0; attempt < 4; attempt++) {
		struct kvm_msr_list probe = { .nmsrs = 0 };
		if (ioctl(k->sys_fd, KVM_GET_MSR_INDEX_LIST, &probe) == 0) {
			if (probe.nmsrs == 0)
				return 0;
		} else if (errno != E2BIG) {
			return errf(err, errlen, "KVM_GET_MSR_INDEX_LIST (count): %s", strerror(errno));
		}
		uint32_t n = probe.nmsrs;
		if (n > MSRS_MAX)
			return errf(err, errlen, "KVM_GET_MSR_INDEX_LIST: %u MSRs (at most %u)", n, MSRS_MAX);
		struct kvm_msr_list *l = malloc(sizeof(*l) + (size_t)n * sizeof(uint32_t));
		if (!l)
			return errf(err, errlen, "out of memory for %u MSR indices", n);
		l->nmsrs = n;
		if (ioctl(k->sys_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
			int e = errno;
			free(l);
			if (e == E2BIG)
				continue; /* the list grew: ask again */
			errno = e;
			return errf(err, errlen, "KVM_GET_MSR_INDEX_LIST (%u MSRs): %s", n, strerror(e));
		}
		uint32_t *idx = malloc(((size_t)l->nmsrs + 1) * sizeof(*idx));
		if (!idx) {
			free(l);
			return errf(err, errlen, "out of memory for %u MSR indices", n);
		}
		memcpy(idx, l->indices, (size_t)l->nmsrs * sizeof(*idx));
		*count = l->nmsrs;
		*out = idx;
		free(l);
		return 0;
	}
	return errf(err, errlen, "KVM_GET_MSR_INDEX_LIST: the list keeps changing size");
}

/*
 * Read every listed, non-excluded MSR the vCPU can read.  KVM_GET_MSRS
 * returns how many entries it read and stops at the first it cannot read:
 * keep those, skip the failing index, continue after it.
 */
static int read_msrs(struct kvm *k, struct msr_rec **out, uint32_t *count, char *err, size_t errlen)
{
	uint32_t *idx, n;
	*out = NULL;
	*count = 0;
	if (msr_index_list(k, &idx, &n, err, errlen))
		return -1;
	uint32_t m = 0;
	for (uint32_t i = 0; i < n; i++)
		if (!msr_excluded(idx[i]))
			idx[m++] = idx[i];

	struct msr_rec *recs = calloc((size_t)m + 1, sizeof(*recs));
	struct kvm_msrs *req = malloc(sizeof(*req) + MSR_CHUNK * sizeof(struct kvm_msr_entry));
	if (!recs || !req) {
		free(idx);
		free(recs);
		free(req);
		return errf(err, errlen, "out of memory reading %u MSRs", m);
	}
	uint32_t got = 0, pos = 0;
	while (pos < m) {
		uint32_t c = m - pos < MSR_CHUNK ? m - pos : MSR_CHUNK;
		memset(req, 0, sizeof(*req) + c * sizeof(struct kvm_msr_entry));
		req->nmsrs = c;
		for (uint32_t i = 0; i < c; i++)
			req->entries[i].index = idx[pos + i];
		int r = ioctl(k->vcpu_fd, KVM_GET_MSRS, req);
		if (r < 0 || (uint32_t)r > c) {
			int e = errno;
			if (r < 0)
				errf(err, errlen, "KVM_GET_MSRS (%u MSRs from 0x%x): %s", c, idx[pos], strerror(e));
			else
				errf(err, errlen, "KVM_GET_MSRS returned %d for %u MSRs", r, c);
			free(idx);
			free(recs);
			free(req);
			errno = e;
			return -1;
		}
		for (int i = 0; i < r; i++)
			recs[got++] = (struct msr_rec){ .index = req->entries[i].index, .value = req->entries[i].data };
		pos += (uint32_t)r;
		if ((uint32_t)r < c)
			pos++; /* idx[pos] is not readable on this vCPU: not saved */
	}
	free(idx);
	free(req);
	*out = recs;
	*count = got;
	return 0;
}

/* Size of the XSAVE area this VM uses: 0 without KVM_CAP_XSAVE. */
static size_t xsave_size(struct kvm *k, bool *v2)
{
	int r = ioctl(k->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	*v2 = r > 0;
	if (r > 0)
		return (size_t)r < sizeof(struct kvm_xsave) ? sizeof(struct kvm_xsave) : (size_t)r;
	if (ioctl(k->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0)
		return sizeof(struct kvm_xsave);
	return 0;
}

static bool has_xcrs(struct kvm *k)
{
	return ioctl(k->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;
}

/* ---- save -------------------------------------------------------------- */

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static uint8_t *buf_grow(struct buf *b, size_t n)
{
	if (b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 8192;
		while (cap - b->len < n)
			cap *= 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p)
			return NULL;
		b->p = p;
		b->cap = cap;
	}
	uint8_t *at = b->p + b->len;
	b->len += n;
	return at;
}

static int buf_section(struct buf *b, uint32_t tag, const void *data, size_t len)
{
	uint8_t *at = buf_grow(b, SEC_HDR_LEN + len);
	if (!at)
		return -1;
	put32(at, tag);
	put32(at + 4, (uint32_t)len);
	memcpy(at + SEC_HDR_LEN, data, len);
	return 0;
}

int vcpu_state_save(struct kvm *k, uint8_t **blob, size_t *len, char *err, size_t errlen)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	struct kvm_xcrs xcrs;
	struct kvm_vcpu_events events;
	struct kvm_debugregs dregs;
	struct kvm_mp_state mp;
	struct kvm_xsave *xsave = NULL;
	struct msr_rec *msrs = NULL;
	uint32_t nmsrs = 0;
	struct buf b = { 0 };
	bool v2, xcr;
	size_t xsz;

	*blob = NULL;
	*len = 0;
	if (k->vcpu_fd < 0)
		return errf(err, errlen, "no vCPU to save");
	if (complete_pending(k, true, err, errlen))
		return -1;

	/* Memset: the structs go into the blob whole, padding included. */
	memset(&regs, 0, sizeof(regs));
	memset(&sregs, 0, sizeof(sregs));
	memset(&fpu, 0, sizeof(fpu));
	memset(&xcrs, 0, sizeof(xcrs));
	memset(&events, 0, sizeof(events));
	memset(&dregs, 0, sizeof(dregs));
	memset(&mp, 0, sizeof(mp));

	/* QEMU's order (kvm_arch_get_registers): events and MP state first,
	 * as reading them may process pending events. */
	if (ioctl(k->vcpu_fd, KVM_GET_VCPU_EVENTS, &events) < 0)
		return errf(err, errlen, "KVM_GET_VCPU_EVENTS: %s", strerror(errno));
	if (ioctl(k->vcpu_fd, KVM_GET_MP_STATE, &mp) < 0)
		return errf(err, errlen, "KVM_GET_MP_STATE: %s", strerror(errno));
	if (ioctl(k->vcpu_fd, KVM_GET_REGS, &regs) < 0)
		return errf(err, errlen, "KVM_GET_REGS: %s", strerror(errno));
	if (ioctl(k->vcpu_fd, KVM_GET_FPU, &fpu) < 0)
		return errf(err, errlen, "KVM_GET_FPU: %s", strerror(errno));
	xsz = xsave_size(k, &v2);
	if (xsz) {
		xsave = calloc(1, xsz);
		if (!xsave)
			return errf(err, errlen, "out of memory for the XSAVE area (%zu bytes)", xsz);
		if (ioctl(k->vcpu_fd, v2 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, xsave) < 0) {
			errf(err, errlen, "%s (%zu bytes): %s", v2 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE", xsz, strerror(errno));
			goto out;
		}
	}
	xcr = has_xcrs(k);
	if (xcr && ioctl(k->vcpu_fd, KVM_GET_XCRS, &xcrs) < 0) {
		errf(err, errlen, "KVM_GET_XCRS: %s", strerror(errno));
		goto out;
	}
	if (ioctl(k->vcpu_fd, KVM_GET_SREGS, &sregs) < 0) {
		errf(err, errlen, "KVM_GET_SREGS: %s", strerror(errno));
		goto out;
	}
	if (read_msrs(k, &msrs, &nmsrs, err, errlen))
		goto out;
	if (ioctl(k->vcpu_fd, KVM_GET_DEBUGREGS, &dregs) < 0) {
		errf(err, errlen, "KVM_GET_DEBUGREGS: %s", strerror(errno));
		goto out;
	}

	uint8_t *hdr = buf_grow(&b, HDR_LEN);
	if (!hdr)
		goto oom;
	memcpy(hdr, VCPU_STATE_MAGIC, 4);
	put32(hdr + 4, VCPU_STATE_VERSION);
	if (buf_section(&b, VCPU_STATE_REGS, &regs, sizeof(regs)) ||
	    buf_section(&b, VCPU_STATE_SREGS, &sregs, sizeof(sregs)) ||
	    buf_section(&b, VCPU_STATE_FPU, &fpu, sizeof(fpu)) ||
	    (xsave && buf_section(&b, VCPU_STATE_XSAVE, xsave, xsz)) ||
	    (xcr && buf_section(&b, VCPU_STATE_XCRS, &xcrs, sizeof(xcrs))))
		goto oom;
	size_t mlen = 4 + (size_t)nmsrs * sizeof(struct msr_rec);
	uint8_t *m = buf_grow(&b, SEC_HDR_LEN + mlen);
	if (!m)
		goto oom;
	put32(m, VCPU_STATE_MSRS);
	put32(m + 4, (uint32_t)mlen);
	put32(m + 8, nmsrs);
	for (uint32_t i = 0; i < nmsrs; i++) {
		uint8_t *e = m + 12 + (size_t)i * sizeof(struct msr_rec);
		put32(e, msrs[i].index);
		put32(e + 4, 0);
		put64(e + 8, msrs[i].value);
	}
	if (buf_section(&b, VCPU_STATE_VCPU_EVENTS, &events, sizeof(events)) ||
	    buf_section(&b, VCPU_STATE_DEBUGREGS, &dregs, sizeof(dregs)) ||
	    buf_section(&b, VCPU_STATE_MP_STATE, &mp, sizeof(mp)))
		goto oom;
	uint64_t sum = XXH3_64bits(b.p, b.len);
	uint8_t *s = buf_grow(&b, SUM_LEN);
	if (!s)
		goto oom;
	put64(s, sum);

	free(xsave);
	free(msrs);
	*blob = b.p;
	*len = b.len;
	return 0;
oom:
	errf(err, errlen, "out of memory building the vCPU state blob");
out:
	free(xsave);
	free(msrs);
	free(b.p);
	return -1;
}

/* ---- restore ----------------------------------------------------------- */

static int set_msrs(struct kvm *k, const uint8_t *d, char *err, size_t errlen)
{
	uint32_t n = get32(d);
	struct kvm_msrs *req = malloc(sizeof(*req) + MSR_CHUNK * sizeof(struct kvm_msr_entry));
	if (!req)
		return errf(err, errlen, "out of memory restoring %u MSRs", n);
	for (uint32_t pos = 0; pos < n;) {
		uint32_t c = n - pos < MSR_CHUNK ? n - pos : MSR_CHUNK;
		memset(req, 0, sizeof(*req) + c * sizeof(struct kvm_msr_entry));
		req->nmsrs = c;
		for (uint32_t i = 0; i < c; i++) {
			const uint8_t *e = d + 4 + (size_t)(pos + i) * sizeof(struct msr_rec);
			req->entries[i].index = get32(e);
			req->entries[i].data = get64(e + 8);
		}
		int r = ioctl(k->vcpu_fd, KVM_SET_MSRS, req);
		if (r < 0) {
			int e = errno;
			free(req);
			errno = e;
			return errf(err, errlen, "KVM_SET_MSRS (%u MSRs from 0x%x): %s", c, get32(d + 4 + (size_t)pos * sizeof(struct msr_rec)), strerror(e));
		}
		if ((uint32_t)r != c) {
			uint32_t bad = (uint32_t)r < c ? req->entries[r].index : 0;
			uint64_t val = (uint32_t)r < c ? req->entries[r].data : 0;
			free(req);
			return errf(err, errlen, "KVM_SET_MSRS set %u of %u MSRs: KVM refused MSR 0x%x = 0x%llx (MSRS entry %u)",
				    pos + (uint32_t)r, n, bad, (unsigned long long)val, pos + (uint32_t)r);
		}
		pos += c;
	}
	free(req);
	return 0;
}

int vcpu_state_restore(struct kvm *k, const uint8_t *blob, size_t len, char *err, size_t errlen)
{
	struct parsed p;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	struct kvm_xcrs xcrs;
	struct kvm_vcpu_events events;
	struct kvm_debugregs dregs;
	struct kvm_mp_state mp;
	struct kvm_xsave *xsave = NULL;
	bool v2;
	int ret = -1;

	if (parse(blob, len, &p, err, errlen))
		return -1;
	if (k->vcpu_fd < 0)
		return errf(err, errlen, "no vCPU to restore into");

	/* What this KVM must offer for the blob, checked before any change. */
	size_t xsz = xsave_size(k, &v2);
	if (p.data[VCPU_STATE_XSAVE]) {
		uint32_t blen = p.len[VCPU_STATE_XSAVE];
		if (!xsz)
			return errf(err, errlen, "XSAVE section at offset %zu, but this KVM lacks KVM_CAP_XSAVE",
				    p.off[VCPU_STATE_XSAVE]);
		/* A larger area from another host may only add zeros here. */
		for (size_t i = xsz; i < blen; i++)
			if (p.data[VCPU_STATE_XSAVE][i])
				return errf(err, errlen, "XSAVE section at offset %zu: %u bytes with state at byte %zu, beyond the %zu bytes this KVM takes",
					    p.off[VCPU_STATE_XSAVE], blen, i, xsz);
	}
	if (p.data[VCPU_STATE_XCRS] && !has_xcrs(k))
		return errf(err, errlen, "XCRS section at offset %zu, but this KVM lacks KVM_CAP_XCRS",
			    p.off[VCPU_STATE_XCRS]);
	memcpy(&regs, p.data[VCPU_STATE_REGS], sizeof(regs));
	memcpy(&sregs, p.data[VCPU_STATE_SREGS], sizeof(sregs));
	memcpy(&fpu, p.data[VCPU_STATE_FPU], sizeof(fpu));
	memcpy(&events, p.data[VCPU_STATE_VCPU_EVENTS], sizeof(events));
	memcpy(&dregs, p.data[VCPU_STATE_DEBUGREGS], sizeof(dregs));
	memcpy(&mp, p.data[VCPU_STATE_MP_STATE], sizeof(mp));
	if (p.data[VCPU_STATE_XCRS])
		memcpy(&xcrs, p.data[VCPU_STATE_XCRS], sizeof(xcrs));
	if (p.data[VCPU_STATE_XSAVE]) {
		size_t n = p.len[VCPU_STATE_XSAVE] < xsz ? p.len[VCPU_STATE_XSAVE] : xsz;
		xsave = calloc(1, xsz);
		if (!xsave)
			return errf(err, errlen, "out of memory for the XSAVE area (%zu bytes)", xsz);
		memcpy(xsave, p.data[VCPU_STATE_XSAVE], n);
	}

	/* An exit KVM has not finished yet would otherwise be finished by the
	 * next KVM_RUN, on top of the restored registers. */
	if (complete_pending(k, false, err, errlen))
		goto out;

	/* QEMU's order (kvm_arch_put_registers); see vcpu_state.h. */
	if (ioctl(k->vcpu_fd, KVM_SET_SREGS, &sregs) < 0) {
		errf(err, errlen, "KVM_SET_SREGS: %s", strerror(errno));
		goto out;
	}
	if (ioctl(k->vcpu_fd, KVM_SET_REGS, &regs) < 0) {
		errf(err, errlen, "KVM_SET_REGS: %s", strerror(errno));
		goto out;
	}
	if (xsave) {
		if (ioctl(k->vcpu_fd, KVM_SET_XSAVE, xsave) < 0) {
			errf(err, errlen, "KVM_SET_XSAVE (%zu bytes): %s", xsz, strerror(errno));
			goto out;
		}
	} else if (ioctl(k->vcpu_fd, KVM_SET_FPU, &fpu) < 0) {
		errf(err, errlen, "KVM_SET_FPU: %s", strerror(errno));
		goto out;
	}
	if (p.data[VCPU_STATE_XCRS] && ioctl(k->vcpu_fd, KVM_SET_XCRS, &xcrs) < 0) {
		errf(err, errlen, "KVM_SET_XCRS (XCR0 0x%llx): %s",
		     xcrs.nr_xcrs ? (unsigned long long)xcrs.xcrs[0].value : 0ULL, strerror(errno));
		goto out;
	}
	if (set_msrs(k, p.data[VCPU_STATE_MSRS], err, errlen))
		goto out;
	if (ioctl(k->vcpu_fd, KVM_SET_VCPU_EVENTS, &events) < 0) {
		errf(err, errlen, "KVM_SET_VCPU_EVENTS (flags 0x%x): %s", events.flags, strerror(errno));
		goto out;
	}
	if (ioctl(k->vcpu_fd, KVM_SET_MP_STATE, &mp) < 0) {
		errf(err, errlen, "KVM_SET_MP_STATE (%u): %s", mp.mp_state, strerror(errno));
		goto out;
	}
	if (ioctl(k->vcpu_fd, KVM_SET_DEBUGREGS, &dregs) < 0) {
		errf(err, errlen, "KVM_SET_DEBUGREGS: %s", strerror(errno));
		goto out;
	}
	/* Without an in-kernel LAPIC, KVM_RUN begins with CR8 = run->cr8. */
	if (k->run)
		k->run->cr8 = sregs.cr8;
	ret = 0;
out:
	free(xsave);
	return ret;
}

int vcpu_complete_pending(struct kvm *k, char *err, size_t errlen)
{
	return complete_pending(k, true, err, errlen);
}
