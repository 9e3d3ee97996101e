/*
 * trace_frame.c - the fixed-layout pieces around the event payload: the
 * frame header, the trailer, the SHA-256 of a frame, and frame buffers.
 * Byte offsets are the FH_* and TR_* constants, documented in SPEC.md.
 */
#include <nettle/sha2.h>
#include <stdlib.h>
#include <xxhash.h>

#include "trace-format/trace_internal.h"

uint64_t trace_frame_hdr_xxh(const uint8_t *b, uint32_t hdr_size)
{
	return XXH3_64bits(b, hdr_size - 8);
}

void trace_frame_hdr_pack(struct trace_frame_hdr *fh, uint8_t *out)
{
	memcpy(out + FH_MAGIC, TRACE_FRAME_MAGIC, TRACE_FRAME_MAGIC_LEN);
	put_le32(out + FH_HDR_SIZE, TRACE_FRAME_HDR_SIZE);
	put_le64(out + FH_SEQ, fh->seq);
	put_le64(out + FH_FIRST_EVENT, fh->first_event);
	put_le64(out + FH_EXIT_BASE, fh->exit_base);
	put_le32(out + FH_EVENTS, fh->events);
	put_le32(out + FH_EXITS, fh->exits);
	put_le32(out + FH_COMP_LEN, fh->comp_len);
	put_le32(out + FH_RAW_LEN, fh->raw_len);
	put_le64(out + FH_PAYLOAD_XXH, fh->payload_xxh);
	memcpy(out + FH_PREV_HASH, fh->prev_hash, TRACE_HASH_SIZE);
	fh->hdr_size = TRACE_FRAME_HDR_SIZE;
	fh->hdr_xxh = trace_frame_hdr_xxh(out, TRACE_FRAME_HDR_SIZE);
	put_le64(out + FH_HDR_XXH, fh->hdr_xxh);
}

void trace_frame_hdr_unpack(const uint8_t *b, struct trace_frame_hdr *fh)
{
	fh->hdr_size = get_le32(b + FH_HDR_SIZE);
	fh->seq = get_le64(b + FH_SEQ);
	fh->first_event = get_le64(b + FH_FIRST_EVENT);
	fh->exit_base = get_le64(b + FH_EXIT_BASE);
	fh->events = get_le32(b + FH_EVENTS);
	fh->exits = get_le32(b + FH_EXITS);
	fh->comp_len = get_le32(b + FH_COMP_LEN);
	fh->raw_len = get_le32(b + FH_RAW_LEN);
	fh->payload_xxh = get_le64(b + FH_PAYLOAD_XXH);
	memcpy(fh->prev_hash, b + FH_PREV_HASH, TRACE_HASH_SIZE);
	/* A later minor may grow the header: the checksum stays last. */
	fh->hdr_xxh = get_le64(b + fh->hdr_size - 8);
}

void trace_sha256_2(const void *a, size_t alen, const void *b, size_t blen,
		    uint8_t out[TRACE_HASH_SIZE])
{
	struct sha256_ctx ctx;

	sha256_init(&ctx);
	sha256_update(&ctx, alen, a);
	if (blen)
		sha256_update(&ctx, blen, b);
	sha256_digest(&ctx, TRACE_HASH_SIZE, out);
}

void trace_trailer_pack(uint64_t frames, const uint8_t hash[TRACE_HASH_SIZE],
			uint8_t out[TRACE_TRAILER_SIZE])
{
	memcpy(out, TRACE_TRAILER_MAGIC, TRACE_TRAILER_MAGIC_LEN);
	put_le64(out + TR_FRAMES, frames);
	memcpy(out + TR_HASH, hash, TRACE_HASH_SIZE);
	put_le64(out + TR_XXH, XXH3_64bits(out, TR_XXH));
}

void trace_hash_hex(const uint8_t h[TRACE_HASH_SIZE],
		    char out[TRACE_HASH_HEX_SIZE])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < TRACE_HASH_SIZE; i++) {
		out[2 * i] = hex[h[i] >> 4];
		out[2 * i + 1] = hex[h[i] & 15];
	}
	out[2 * TRACE_HASH_SIZE] = 0;
}

struct trace_frame_buf *trace_frame_buf_new(size_t cap)
{
	struct trace_frame_buf *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->raw = malloc(cap);
	if (!f->raw) {
		free(f);
		return NULL;
	}
	f->cap = cap;
	return f;
}

void trace_frame_buf_free(struct trace_frame_buf *f)
{
	if (!f)
		return;
	free(f->raw);
	free(f);
}
