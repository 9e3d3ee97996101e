/*
 * trace_header.c - the file header: an ordered set of TLV fields, its
 * encoding (magic, version, body length, TLVs, XXH3-64) and the checks a
 * reader makes on it, in the order SPEC.md "How to verify" gives.
 *
 * Format 1.1 packs fields into one zstd frame (PACKED_FIELDS, SPEC.md 4.2):
 * the CPUID and MSR tables are most of a header, and on a short recording
 * the header is most of the file.  Packing exists only in the encoding: a
 * decoded header holds the unpacked fields, so every accessor works the
 * same on 1.0 and 1.1 files.
 *
 * Values are kept with one extra NUL byte after them, which is not part of
 * the value: string fields can then be handed out as C strings without a
 * copy, and a string with a NUL inside is refused by validation.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>
#include <zstd.h>

#include "trace-format/trace_internal.h"

#define CPUID_ENTRY_SIZE	40
#define MSR_ENTRY_SIZE		16
#define XSAVE_SIZE		12
#define FILE_ID_FIXED		24	/* u64 size + XXH3-128 */

_Static_assert(sizeof(struct kvm_cpuid_entry2) == CPUID_ENTRY_SIZE,
	       "CPUID field layout is struct kvm_cpuid_entry2");
_Static_assert(sizeof(struct trace_msr) == MSR_ENTRY_SIZE,
	       "MSRS field layout");

struct trace_field {
	uint16_t tag;
	uint32_t len;
	uint8_t *data;		/* len bytes + NUL */
};

struct trace_header {
	uint16_t major, minor;	/* as read; TRACE_FORMAT_* when built */
	struct trace_field *f;
	size_t n, cap;
	size_t body_len;	/* encoded size of the TLV list */
};

enum field_kind {
	FK_STR, FK_U64, FK_CPUID, FK_MSRS, FK_XSAVE, FK_FILE_ID,
	FK_PROGRESS, FK_BOOT_MODE, FK_FRAME_HDR, FK_PACKED, FK_MEM_DIGEST,
	FK_MSR_POLICY,
};

static const struct known_tag {
	uint16_t tag;
	const char *name;
	enum field_kind kind;
	bool required;		/* a replay cannot do without it */
} known_tags[] = {
	{ TRACE_TAG_DETVM_VERSION, "DETVM_VERSION", FK_STR, true },
	{ TRACE_TAG_MEM_SIZE, "MEM_SIZE", FK_U64, true },
	{ TRACE_TAG_CPUID, "CPUID", FK_CPUID, true },
	{ TRACE_TAG_MSRS, "MSRS", FK_MSRS, true },
	{ TRACE_TAG_XSAVE, "XSAVE", FK_XSAVE, true },
	{ TRACE_TAG_CMDLINE, "CMDLINE", FK_STR, true },
	{ TRACE_TAG_KERNEL_ID, "KERNEL_ID", FK_FILE_ID, true },
	{ TRACE_TAG_DISK_ID, "DISK_ID", FK_FILE_ID, false },
	{ TRACE_TAG_BOOT_EPOCH_NS, "BOOT_EPOCH_NS", FK_U64, true },
	{ TRACE_TAG_HOST, "HOST", FK_STR, false },
	{ TRACE_TAG_PROGRESS_COUNTER, "PROGRESS_COUNTER", FK_PROGRESS, true },
	{ TRACE_TAG_LANDMARK_BOUND_NS, "LANDMARK_BOUND_NS", FK_U64, true },
	{ TRACE_TAG_DIGEST_INTERVAL, "DIGEST_INTERVAL", FK_U64, true },
	{ TRACE_TAG_BOOT_MODE, "BOOT_MODE", FK_BOOT_MODE, true },
	{ TRACE_TAG_SERIAL_IN, "SERIAL_IN", FK_STR, true },
	{ TRACE_TAG_FRAME_HEADER_SIZE, "FRAME_HEADER_SIZE", FK_FRAME_HDR, false },
	{ TRACE_TAG_PACKED_FIELDS, "PACKED_FIELDS", FK_PACKED, false },
	{ TRACE_TAG_MEM_DIGEST, "MEM_DIGEST", FK_MEM_DIGEST, false },
	{ TRACE_TAG_MSR_POLICY, "MSR_POLICY", FK_MSR_POLICY, false },
};

#define N_KNOWN (sizeof(known_tags) / sizeof(known_tags[0]))

static const struct known_tag *find_known(uint16_t tag)
{
	for (size_t i = 0; i < N_KNOWN; i++)
		if (known_tags[i].tag == tag)
			return &known_tags[i];
	return NULL;
}

const char *trace_tag_name(uint16_t tag)
{
	const struct known_tag *k = find_known(tag);

	return k ? k->name : NULL;
}

struct trace_header *trace_header_new(void)
{
	struct trace_header *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->major = TRACE_FORMAT_MAJOR;
	h->minor = TRACE_FORMAT_MINOR;
	return h;
}

void trace_header_free(struct trace_header *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++)
		free(h->f[i].data);
	free(h->f);
	free(h);
}

static struct trace_field *find_field(const struct trace_header *h,
				      uint16_t tag)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->f[i].tag == tag)
			return &h->f[i];
	return NULL;
}

int trace_header_add(struct trace_header *h, uint16_t tag, const void *data,
		     size_t len)
{
	struct trace_field *f;
	uint8_t *copy;

	if (find_field(h, tag)) {
		errno = EEXIST;
		return -1;
	}
	/*
	 * The whole body must stay under the limit a reader enforces, counted
	 * unpacked: a reader applies it to the header as if nothing were
	 * packed.  PACKED_FIELDS is how the encoder stores fields, not one.
	 */
	if (tag == TRACE_TAG_PACKED_FIELDS || len > TRACE_HEADER_BODY_MAX ||
	    h->body_len + TRACE_TLV_HDR + len > TRACE_HEADER_BODY_MAX ||
	    h->n >= TRACE_HEADER_FIELDS_MAX || (len && !data)) {
		errno = EINVAL;
		return -1;
	}
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 16;
		struct trace_field *nf = realloc(h->f, cap * sizeof(*nf));

		if (!nf)
			return -1;
		h->f = nf;
		h->cap = cap;
	}
	copy = malloc(len + 1);
	if (!copy)
		return -1;
	if (len)
		memcpy(copy, data, len);
	copy[len] = 0;
	f = &h->f[h->n++];
	f->tag = tag;
	f->len = (uint32_t)len;
	f->data = copy;
	h->body_len += TRACE_TLV_HDR + len;
	return 0;
}

const void *trace_header_get(const struct trace_header *h, uint16_t tag,
			     size_t *len)
{
	const struct trace_field *f = find_field(h, tag);

	if (!f)
		return NULL;
	if (len)
		*len = f->len;
	return f->data;
}

int trace_header_add_u64(struct trace_header *h, uint16_t tag, uint64_t v)
{
	uint8_t b[8];

	put_le64(b, v);
	return trace_header_add(h, tag, b, sizeof(b));
}

int trace_header_get_u64(const struct trace_header *h, uint16_t tag,
			 uint64_t *v)
{
	size_t len;
	const uint8_t *p = trace_header_get(h, tag, &len);

	if (!p || len != 8)
		return -1;
	*v = get_le64(p);
	return 0;
}

int trace_header_add_str(struct trace_header *h, uint16_t tag, const char *s)
{
	return trace_header_add(h, tag, s, strlen(s));
}

const char *trace_header_get_str(const struct trace_header *h, uint16_t tag)
{
	return trace_header_get(h, tag, NULL);
}

int trace_header_add_file_id(struct trace_header *h, uint16_t tag,
			     uint64_t size, const struct trace_hash128 *hash,
			     const char *path)
{
	size_t plen = strlen(path);
	uint8_t *b = malloc(FILE_ID_FIXED + plen);
	int ret;

	if (!b)
		return -1;
	put_le64(b, size);
	put_le64(b + 8, hash->lo);
	put_le64(b + 16, hash->hi);
	memcpy(b + FILE_ID_FIXED, path, plen);
	ret = trace_header_add(h, tag, b, FILE_ID_FIXED + plen);
	free(b);
	return ret;
}

int trace_header_get_file_id(const struct trace_header *h, uint16_t tag,
			     struct trace_file_id *id)
{
	size_t len;
	const uint8_t *p = trace_header_get(h, tag, &len);

	if (!p || len < FILE_ID_FIXED)
		return -1;
	id->size = get_le64(p);
	id->hash.lo = get_le64(p + 8);
	id->hash.hi = get_le64(p + 16);
	id->path = (const char *)p + FILE_ID_FIXED;	/* NUL-terminated */
	return 0;
}

int trace_header_add_xsave(struct trace_header *h, uint32_t size,
			   uint64_t xcr0)
{
	uint8_t b[XSAVE_SIZE];

	put_le32(b, size);
	put_le64(b + 4, xcr0);
	return trace_header_add(h, TRACE_TAG_XSAVE, b, sizeof(b));
}

int trace_header_get_xsave(const struct trace_header *h, uint32_t *size,
			   uint64_t *xcr0)
{
	size_t len;
	const uint8_t *p = trace_header_get(h, TRACE_TAG_XSAVE, &len);

	if (!p || len != XSAVE_SIZE)
		return -1;
	*size = get_le32(p);
	*xcr0 = get_le64(p + 4);
	return 0;
}

/*
 * The arrays are handed out in place: the value buffer comes from malloc
 * (aligned for any type) and x86 is little-endian like the file.
 */
const struct kvm_cpuid_entry2 *
trace_header_get_cpuid(const struct trace_header *h, size_t *count)
{
	size_t len;
	const void *p = trace_header_get(h, TRACE_TAG_CPUID, &len);

	if (!p || len % CPUID_ENTRY_SIZE)
		return NULL;
	*count = len / CPUID_ENTRY_SIZE;
	return p;
}

const struct trace_msr *trace_header_get_msrs(const struct trace_header *h,
					      size_t *count)
{
	size_t len;
	const void *p = trace_header_get(h, TRACE_TAG_MSRS, &len);

	if (!p || len % MSR_ENTRY_SIZE)
		return NULL;
	*count = len / MSR_ENTRY_SIZE;
	return p;
}

size_t trace_header_count(const struct trace_header *h)
{
	return h->n;
}

const void *trace_header_at(const struct trace_header *h, size_t i,
			    uint16_t *tag, size_t *len)
{
	if (i >= h->n)
		return NULL;
	*tag = h->f[i].tag;
	*len = h->f[i].len;
	return h->f[i].data;
}

void trace_header_version(const struct trace_header *h, uint16_t *major,
			  uint16_t *minor)
{
	*major = h->major;
	*minor = h->minor;
}

static bool is_one_of(const char *s, const char *const *vals)
{
	for (; *vals; vals++)
		if (!strcmp(s, *vals))
			return true;
	return false;
}

/* One known field's value: length and content rules of SPEC.md. */
static int validate_field(const struct known_tag *k,
			  const struct trace_field *f, char *err,
			  size_t errlen)
{
	static const char *const progress[] = {
		TRACE_PROGRESS_INSN_EMULATION, TRACE_PROGRESS_PMU_BRANCHES,
		TRACE_PROGRESS_NONE, NULL,
	};
	static const char *const boot[] = {
		TRACE_BOOT_ELF64, TRACE_BOOT_MULTIBOOT, NULL,
	};
	static const char *const digest[] = {
		TRACE_MEM_DIGEST_FULL, TRACE_MEM_DIGEST_SPARSE, NULL,
	};
	static const char *const msr_policy[] = {
		TRACE_MSR_POLICY_1, TRACE_MSR_POLICY_2, NULL,
	};
	const char *s = (const char *)f->data;

	switch (k->kind) {
	case FK_STR:
	case FK_PROGRESS:
	case FK_BOOT_MODE:
	case FK_MEM_DIGEST:
	case FK_MSR_POLICY:
		if (memchr(f->data, 0, f->len))
			goto nul;
		if (k->kind == FK_MEM_DIGEST && !is_one_of(s, digest))
			goto value;
		if (k->kind == FK_MSR_POLICY && !is_one_of(s, msr_policy))
			goto value;
		if (k->kind == FK_PROGRESS && !is_one_of(s, progress))
			goto value;
		if (k->kind == FK_BOOT_MODE && !is_one_of(s, boot))
			goto value;
		return 0;
	case FK_U64:
		if (f->len != 8)
			goto length;
		return 0;
	case FK_FRAME_HDR:
		if (f->len != 8)
			goto length;
		if (get_le64(f->data) < TRACE_FRAME_HDR_SIZE ||
		    get_le64(f->data) > TRACE_FRAME_HDR_MAX ||
		    get_le64(f->data) % 8)
			goto value_u64;
		return 0;
	case FK_XSAVE:
		if (f->len != XSAVE_SIZE)
			goto length;
		return 0;
	case FK_CPUID:
		if (f->len % CPUID_ENTRY_SIZE)
			goto length;
		return 0;
	case FK_MSRS:
		if (f->len % MSR_ENTRY_SIZE)
			goto length;
		for (uint32_t i = 0; i < f->len; i += MSR_ENTRY_SIZE)
			if (get_le32(f->data + i + 4)) {
				errf(err, errlen,
				     "header field MSRS: entry %u has a nonzero pad",
				     i / MSR_ENTRY_SIZE);
				return -1;
			}
		return 0;
	case FK_FILE_ID:
		if (f->len < FILE_ID_FIXED)
			goto length;
		if (memchr(f->data + FILE_ID_FIXED, 0, f->len - FILE_ID_FIXED))
			goto nul;
		return 0;
	case FK_PACKED:
		/* trace_header_add() refuses it; a header never holds it. */
		errf(err, errlen,
		     "header field PACKED_FIELDS is written by the encoder only");
		return -1;
	}
	return 0;
length:
	errf(err, errlen, "header field %s: bad length %u", k->name,
	     f->len);
	return -1;
nul:
	errf(err, errlen, "header field %s: string contains a NUL byte",
	     k->name);
	return -1;
value:
	errf(err, errlen, "header field %s: unknown value \"%.64s\"",
	     k->name, s);
	return -1;
value_u64:
	errf(err, errlen, "header field %s: invalid value %llu", k->name,
	     (unsigned long long)get_le64(f->data));
	return -1;
}

int trace_header_validate(const struct trace_header *h, char *err,
			  size_t errlen)
{
	for (size_t i = 0; i < h->n; i++) {
		const struct known_tag *k = find_known(h->f[i].tag);

		if (k && validate_field(k, &h->f[i], err, errlen))
			return -1;
	}
	return 0;
}

int trace_header_check_required(const struct trace_header *h, char *err,
				size_t errlen)
{
	for (size_t i = 0; i < N_KNOWN; i++)
		if (known_tags[i].required && !find_field(h, known_tags[i].tag)) {
			errf(err, errlen,
			     "header field %s is missing: not a replayable recording",
			     known_tags[i].name);
			return -1;
		}
	return 0;
}

/*
 * Which fields a 1.1 writer packs: all but DETVM_VERSION.  Packing all of
 * them gives the smallest header and needs no list of "big" tags to keep
 * up to date as later minors add fields; DETVM_VERSION stays plain at the
 * start of the body so that the first bytes of a file name the detvm that
 * wrote it, even to a program that cannot unpack (it costs 11 bytes).
 */
static bool packed_tag(uint16_t tag)
{
	return tag != TRACE_TAG_DETVM_VERSION;
}

static uint8_t *put_field(uint8_t *p, const struct trace_field *f)
{
	put_le16(p, f->tag);
	put_le32(p + 2, f->len);
	memcpy(p + TRACE_TLV_HDR, f->data, f->len);
	return p + TRACE_TLV_HDR + f->len;
}

/*
 * The fields packed_tag() selects, as a TLV list of *raw_len bytes
 * compressed into one zstd frame: *comp (malloc'd), *comp_len bytes.
 * *comp is NULL when there is nothing to pack.
 */
static int pack_fields(const struct trace_header *h, uint8_t **comp,
		       size_t *comp_len, size_t *raw_len, char *err,
		       size_t errlen)
{
	uint8_t *raw = NULL, *p, *out = NULL;
	ZSTD_CCtx *cc = NULL;
	size_t n = 0, bound, r;
	int ret = -1;

	*comp = NULL;
	for (size_t i = 0; i < h->n; i++)
		if (packed_tag(h->f[i].tag))
			n += TRACE_TLV_HDR + h->f[i].len;
	*raw_len = n;
	if (!n)
		return 0;
	bound = ZSTD_compressBound(n);
	raw = malloc(n);
	out = malloc(bound);
	cc = ZSTD_createCCtx();
	if (!raw || !out || !cc) {
		errf(err, errlen, "file header: packing fields: out of memory");
		goto out;
	}
	p = raw;
	for (size_t i = 0; i < h->n; i++)
		if (packed_tag(h->f[i].tag))
			p = put_field(p, &h->f[i]);
	/*
	 * No zstd checksum: the header checksum and the hash chain cover the
	 * frame.  The content size lets a reader check raw_len against the
	 * frame before decompressing.
	 */
	r = ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel,
				   TRACE_PACKED_ZSTD_LEVEL);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 0);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 1);
	if (!ZSTD_isError(r))
		r = ZSTD_compress2(cc, out, bound, raw, n);
	if (ZSTD_isError(r)) {
		errf(err, errlen,
		     "file header: packing %zu bytes of fields: zstd: %s",
		     n, ZSTD_getErrorName(r));
		goto out;
	}
	*comp = out;
	*comp_len = r;
	out = NULL;
	ret = 0;
out:
	ZSTD_freeCCtx(cc);
	free(out);
	free(raw);
	return ret;
}

int trace_header_encode_as(const struct trace_header *h, uint16_t minor,
			   bool pack, uint8_t **out, size_t *len, char *err,
			   size_t errlen)
{
	size_t body = h->body_len, comp_len = 0, raw_len = 0, n;
	uint8_t *comp = NULL, *b, *p;

	if (pack && pack_fields(h, &comp, &comp_len, &raw_len, err, errlen))
		return -1;
	/*
	 * Pack only when it pays: a header of a few small fields (tests,
	 * benchmarks) would grow by the entry head, raw_len and zstd's own
	 * frame header.  Either way the body stays under the 1 MiB limit:
	 * trace_header_add() keeps the plain one under it.
	 */
	if (comp) {
		size_t packed = h->body_len - raw_len + TRACE_TLV_HDR +
				TRACE_PACKED_RAW_LEN + comp_len;

		if (packed < body) {
			body = packed;
		} else {
			free(comp);
			comp = NULL;
		}
	}
	n = TRACE_FILE_FIXED + body + TRACE_FILE_CSUM;
	b = malloc(n);
	if (!b) {
		free(comp);
		errf(err, errlen, "file header: out of memory");
		return -1;
	}
	memcpy(b, TRACE_FILE_MAGIC, TRACE_FILE_MAGIC_LEN);
	put_le16(b + 8, TRACE_FORMAT_MAJOR);
	put_le16(b + 10, minor);
	put_le32(b + 12, (uint32_t)body);
	p = b + TRACE_FILE_FIXED;
	for (size_t i = 0; i < h->n; i++)
		if (!comp || !packed_tag(h->f[i].tag))
			p = put_field(p, &h->f[i]);
	if (comp) {
		put_le16(p, TRACE_TAG_PACKED_FIELDS);
		put_le32(p + 2, (uint32_t)(TRACE_PACKED_RAW_LEN + comp_len));
		put_le32(p + TRACE_TLV_HDR, (uint32_t)raw_len);
		memcpy(p + TRACE_TLV_HDR + TRACE_PACKED_RAW_LEN, comp, comp_len);
		p += TRACE_TLV_HDR + TRACE_PACKED_RAW_LEN + comp_len;
		free(comp);
	}
	put_le64(p, XXH3_64bits(b, (size_t)(p - b)));
	*out = b;
	*len = n;
	return 0;
}

int trace_header_encode(const struct trace_header *h, uint8_t **out,
			size_t *len, char *err, size_t errlen)
{
	return trace_header_encode_as(h, TRACE_FORMAT_MINOR, true, out, len,
				      err, errlen);
}

int trace_header_check_fixed(const uint8_t *b, size_t n, uint32_t *body_len,
			     char *err, size_t errlen)
{
	uint16_t major, minor;

	if (n < TRACE_FILE_MAGIC_LEN ||
	    memcmp(b, TRACE_FILE_MAGIC, TRACE_FILE_MAGIC_LEN)) {
		errf(err, errlen, "not a detvm trace (bad magic)");
		return -1;
	}
	if (n < TRACE_FILE_FIXED) {
		errf(err, errlen,
		     "file header cut short at offset %zu", n);
		return -1;
	}
	/*
	 * The version comes before the checksum: a newer major may lay out
	 * everything after byte 12 differently, checksum included.
	 */
	major = get_le16(b + 8);
	minor = get_le16(b + 10);
	if (major > TRACE_FORMAT_MAJOR) {
		errf(err, errlen,
		     "trace format %u.%u is newer than this detvm supports (%u.x): upgrade detvm",
		     major, minor, TRACE_FORMAT_MAJOR);
		return -1;
	}
	if (major < TRACE_FORMAT_MAJOR) {
		errf(err, errlen,
		     "trace format %u.%u is older than any this detvm reads (%u.x)",
		     major, minor, TRACE_FORMAT_MAJOR);
		return -1;
	}
	*body_len = get_le32(b + 12);
	if (*body_len > TRACE_HEADER_BODY_MAX) {
		errf(err, errlen,
		     "file header body of %u bytes exceeds the %u limit",
		     *body_len, TRACE_HEADER_BODY_MAX);
		return -1;
	}
	return 0;
}

/*
 * A TLV list: the header body itself, or the fields unpacked from the
 * PACKED_FIELDS entry at file offset packed_at (never 0: the body starts
 * at 16).
 */
struct tlv_list {
	const uint8_t *p;
	size_t n;
	size_t packed_at;
};

/*
 * Where an entry is, for messages: a file offset in the body; in packed
 * fields, which have no file offset, the byte in the unpacked list.
 */
static const char *where(char *buf, size_t len, const struct tlv_list *l,
			 size_t pos)
{
	if (l->packed_at)
		snprintf(buf, len, "byte %zu of the fields packed at offset %zu",
			 pos, l->packed_at);
	else
		snprintf(buf, len, "offset %zu", TRACE_FILE_FIXED + pos);
	return buf;
}

static int parse_tlvs(struct trace_header *h, const struct tlv_list *l,
		      size_t body_len, bool *packed_seen, char *err,
		      size_t errlen);

static int packed_err(char *err, size_t errlen, size_t at, const char *fmt,
		      ...) __attribute__((format(printf, 4, 5)));

static int packed_err(char *err, size_t errlen, size_t at, const char *fmt,
		      ...)
{
	char msg[TRACE_ERR_MAX / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	errf(err, errlen, "file header: PACKED_FIELDS at offset %zu: %s",
	     at, msg);
	return -1;
}

/*
 * The value v[0..len) of the PACKED_FIELDS entry at file offset `at`, in a
 * body of body_len bytes: the checks of SPEC.md 10 step 8, then its fields
 * into h.  Memory is bounded before anything is allocated: raw_len <= 1
 * MiB, and one-shot decompression writes into that buffer only (a frame
 * cannot make zstd allocate a window of its choosing).
 */
static int unpack(struct trace_header *h, const uint8_t *v, uint32_t len,
		  size_t at, size_t body_len, bool *packed_seen, char *err,
		  size_t errlen)
{
	struct tlv_list l = { .packed_at = at };
	const uint8_t *z = v + TRACE_PACKED_RAW_LEN;
	unsigned long long csize;
	ZSTD_DCtx *dc = NULL;
	uint8_t *raw = NULL;
	uint32_t raw_len;
	size_t zlen, r;
	int ret = -1;

	if (len < TRACE_PACKED_RAW_LEN)
		return packed_err(err, errlen, at, "bad length %u", len);
	raw_len = get_le32(v);
	if (!raw_len || raw_len > TRACE_HEADER_BODY_MAX)
		return packed_err(err, errlen, at, "raw length %u outside 1..%u",
				  raw_len, TRACE_HEADER_BODY_MAX);
	/* Its fields count as if they were in the body: so does the limit. */
	if (body_len - TRACE_TLV_HDR - len + raw_len > TRACE_HEADER_BODY_MAX)
		return packed_err(err, errlen, at,
				  "unpacked, the header body would be %zu bytes, above the %u limit",
				  body_len - TRACE_TLV_HDR - len + raw_len,
				  TRACE_HEADER_BODY_MAX);
	zlen = len - TRACE_PACKED_RAW_LEN;
	/* Exactly one zstd frame: nothing may hide after it. */
	r = ZSTD_findFrameCompressedSize(z, zlen);
	if (ZSTD_isError(r))
		return packed_err(err, errlen, at,
				  "bad or truncated zstd frame (%s)",
				  ZSTD_getErrorName(r));
	if (get_le32(z) != ZSTD_MAGICNUMBER)
		return packed_err(err, errlen, at,
				  "a skippable frame instead of a zstd frame");
	if (r != zlen)
		return packed_err(err, errlen, at,
				  "%zu bytes of trailing data after the zstd frame",
				  zlen - r);
	csize = ZSTD_getFrameContentSize(z, zlen);
	if (csize == ZSTD_CONTENTSIZE_ERROR)
		return packed_err(err, errlen, at, "bad zstd frame header");
	if (csize != ZSTD_CONTENTSIZE_UNKNOWN && csize != raw_len)
		return packed_err(err, errlen, at,
				  "zstd frame holds %llu bytes, raw length says %u",
				  csize, raw_len);
	raw = malloc(raw_len);
	dc = ZSTD_createDCtx();
	if (!raw || !dc) {
		packed_err(err, errlen, at, "out of memory");
		goto out;
	}
	r = ZSTD_decompressDCtx(dc, raw, raw_len, z, zlen);
	if (ZSTD_isError(r)) {
		packed_err(err, errlen, at,
			   "zstd frame does not decompress to %u bytes (%s)",
			   raw_len, ZSTD_getErrorName(r));
		goto out;
	}
	if (r != raw_len) {
		packed_err(err, errlen, at,
			   "zstd frame decompresses to %zu bytes, raw length says %u",
			   r, raw_len);
		goto out;
	}
	l.p = raw;
	l.n = raw_len;
	ret = parse_tlvs(h, &l, body_len, packed_seen, err, errlen);
out:
	ZSTD_freeDCtx(dc);
	free(raw);
	return ret;
}

/*
 * A TLV list of a checksummed body into h, PACKED_FIELDS unpacked in
 * place; structural checks only (values: trace_header_validate()).
 */
static int parse_tlvs(struct trace_header *h, const struct tlv_list *l,
		      size_t body_len, bool *packed_seen, char *err,
		      size_t errlen)
{
	size_t pos = 0;
	char at[96];

	while (pos < l->n) {
		uint16_t tag;
		uint32_t len;

		if (l->n - pos < TRACE_TLV_HDR) {
			errf(err, errlen, "file header: field at %s cut short",
			     where(at, sizeof(at), l, pos));
			return -1;
		}
		tag = get_le16(l->p + pos);
		len = get_le32(l->p + pos + 2);
		if (len > l->n - pos - TRACE_TLV_HDR) {
			errf(err, errlen,
			     "file header: field 0x%04x at %s runs past the %s",
			     tag, where(at, sizeof(at), l, pos),
			     l->packed_at ? "packed fields" : "header body");
			return -1;
		}
		if (tag == TRACE_TAG_PACKED_FIELDS) {
			/* One level and one entry: unpacking stays bounded. */
			if (l->packed_at) {
				errf(err, errlen,
				     "file header: PACKED_FIELDS inside PACKED_FIELDS (%s)",
				     where(at, sizeof(at), l, pos));
				return -1;
			}
			if (*packed_seen) {
				errf(err, errlen,
				     "file header: field 0x%04x appears twice (%s)",
				     tag, where(at, sizeof(at), l, pos));
				return -1;
			}
			*packed_seen = true;
			if (unpack(h, l->p + pos + TRACE_TLV_HDR, len,
				   TRACE_FILE_FIXED + pos, body_len, packed_seen,
				   err, errlen))
				return -1;
			pos += TRACE_TLV_HDR + len;
			continue;
		}
		if (find_field(h, tag)) {
			errf(err, errlen,
			     "file header: field 0x%04x appears twice (%s)",
			     tag, where(at, sizeof(at), l, pos));
			return -1;
		}
		if (!find_known(tag) && (tag & TRACE_TAG_CRITICAL)) {
			errf(err, errlen,
			     "file header: field 0x%04x is critical but unknown to this detvm (format %u.%u): upgrade detvm",
			     tag, TRACE_FORMAT_MAJOR, TRACE_FORMAT_MINOR);
			return -1;
		}
		if (h->n >= TRACE_HEADER_FIELDS_MAX) {
			errf(err, errlen,
			     "file header: too many fields (more than %u, at %s)",
			     TRACE_HEADER_FIELDS_MAX,
			     where(at, sizeof(at), l, pos));
			return -1;
		}
		/* unpack() checked the unpacked size: only memory can fail. */
		if (trace_header_add(h, tag, l->p + pos + TRACE_TLV_HDR, len)) {
			errf(err, errlen, "file header: field at %s: %s",
			     where(at, sizeof(at), l, pos),
			     strerror(errno));
			return -1;
		}
		pos += TRACE_TLV_HDR + len;
	}
	return 0;
}

struct trace_header *trace_header_decode(const uint8_t *b, size_t n,
					 char *err, size_t errlen)
{
	struct trace_header *h;
	struct tlv_list body = { 0 };
	bool packed_seen = false;
	uint32_t body_len;
	size_t total;

	if (trace_header_check_fixed(b, n, &body_len, err, errlen))
		return NULL;
	total = TRACE_FILE_FIXED + (size_t)body_len + TRACE_FILE_CSUM;
	if (n != total) {
		errf(err, errlen,
		     "file header cut short: %zu of %zu bytes", n, total);
		return NULL;
	}
	if (XXH3_64bits(b, total - TRACE_FILE_CSUM) !=
	    get_le64(b + total - TRACE_FILE_CSUM)) {
		errf(err, errlen,
		     "file header checksum mismatch (offset 0, %zu bytes)",
		     total);
		return NULL;
	}
	h = trace_header_new();
	if (!h) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	h->major = get_le16(b + 8);
	h->minor = get_le16(b + 10);
	/*
	 * PACKED_FIELDS is read whatever the minor says: a 1.x reader never
	 * needs the minor to parse a file (SPEC.md 9).
	 */
	body.p = b + TRACE_FILE_FIXED;
	body.n = body_len;
	if (parse_tlvs(h, &body, body_len, &packed_seen, err, errlen) ||
	    trace_header_validate(h, err, errlen)) {
		trace_header_free(h);
		return NULL;
	}
	return h;
}
