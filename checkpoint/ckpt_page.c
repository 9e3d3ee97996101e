/*
 * ckpt_page.c - page contents as the checkpoint database stores them: the
 * XXH3-128 key and its byte layout, zstd coding, the blob checksum, hex.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
/* XXH3_state_t on the stack: no allocation that could fail. */
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "checkpoint/ckpt_internal.h"

void ckpt_vpathf(char *err, size_t errlen, const char *path, const char *fmt, va_list ap)
{
	int k;

	if (!err || !errlen)
		return;
	k = snprintf(err, errlen, "%s: ", path);
	if (k >= 0 && (size_t)k < errlen)
		vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
}

struct ckpt_hash ckpt_hash_page(const uint8_t *data)
{
	XXH128_hash_t x = XXH3_128bits(data, CKPT_PAGE_SIZE);

	return (struct ckpt_hash){ .lo = x.low64, .hi = x.high64 };
}

static struct ckpt_hash zero_hash;
static pthread_once_t zero_once = PTHREAD_ONCE_INIT;

static void zero_init(void)
{
	static const uint8_t z[CKPT_PAGE_SIZE];

	zero_hash = ckpt_hash_page(z);
}

const struct ckpt_hash *ckpt_zero_hash(void)
{
	/* pthread_once cannot fail with a valid once control and routine. */
	pthread_once(&zero_once, zero_init);
	return &zero_hash;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

void ckpt_hash_to_blob(const struct ckpt_hash *h, uint8_t out[CKPT_HASH_BLOB])
{
	put_le64(out, h->lo);
	put_le64(out + 8, h->hi);
}

struct ckpt_hash ckpt_hash_from_blob(const uint8_t in[CKPT_HASH_BLOB])
{
	return (struct ckpt_hash){ .lo = get_le64(in), .hi = get_le64(in + 8) };
}

void ckpt_hash_hex(const struct ckpt_hash *h, char out[CKPT_HASH_HEX])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t b[CKPT_HASH_BLOB];

	ckpt_hash_to_blob(h, b);
	for (int i = 0; i < CKPT_HASH_BLOB; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[2 * CKPT_HASH_BLOB] = 0;
}

void ckpt_blobs_checksum(const void *a, size_t alen, const void *b, size_t blen,
			 char out[17])
{
	XXH3_state_t s;

	XXH3_64bits_reset(&s);
	if (alen)
		XXH3_64bits_update(&s, a, alen);
	if (blen)
		XXH3_64bits_update(&s, b, blen);
	snprintf(out, 17, "%016llx", (unsigned long long)XXH3_64bits_digest(&s));
}

static int unhex1(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int ckpt_unhex(const char *hex, uint8_t *out, size_t n)
{
	if (!hex || strlen(hex) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int a = unhex1(hex[2 * i]), b = unhex1(hex[2 * i + 1]);

		if (a < 0 || b < 0)
			return -1;
		out[i] = (uint8_t)(a << 4 | b);
	}
	return 0;
}

size_t ckpt_page_bound(void)
{
	return ZSTD_compressBound(CKPT_PAGE_SIZE);
}

int ckpt_page_encode(ZSTD_CCtx *cctx, const uint8_t *data, uint8_t *out, size_t *len,
		     char *err, size_t errlen)
{
	size_t r = ZSTD_compressCCtx(cctx, out, ckpt_page_bound(), data, CKPT_PAGE_SIZE,
				     CKPT_ZSTD_LEVEL);

	if (ZSTD_isError(r)) {
		errf(err, errlen, "zstd compression failed: %s", ZSTD_getErrorName(r));
		return -1;
	}
	if (r >= CKPT_PAGE_SIZE) {
		*len = CKPT_PAGE_SIZE;
		return CKPT_CODEC_RAW;
	}
	*len = r;
	return CKPT_CODEC_ZSTD;
}

int ckpt_page_decode(ZSTD_DCtx *dctx, int codec, const void *data, size_t len,
		     uint8_t out[CKPT_PAGE_SIZE], char *why, size_t whylen)
{
	size_t r;

	switch (codec) {
	case CKPT_CODEC_RAW:
		if (len != CKPT_PAGE_SIZE) {
			errf(why, whylen, "raw data is %zu bytes, not %d", len,
			     CKPT_PAGE_SIZE);
			return -1;
		}
		memcpy(out, data, CKPT_PAGE_SIZE);
		return 0;
	case CKPT_CODEC_ZSTD:
		r = ZSTD_decompressDCtx(dctx, out, CKPT_PAGE_SIZE, data, len);
		if (ZSTD_isError(r)) {
			errf(why, whylen, "zstd: %s", ZSTD_getErrorName(r));
			return -1;
		}
		if (r != CKPT_PAGE_SIZE) {
			errf(why, whylen, "decompresses to %zu bytes, not %d", r,
			     CKPT_PAGE_SIZE);
			return -1;
		}
		return 0;
	}
	errf(why, whylen, "unknown codec %d", codec);
	return -1;
}
