/*
 * varint.h - unsigned LEB128, the integer encoding of trace events.
 *
 * Seven bits per byte, least significant group first, bit 7 set on every
 * byte but the last.  A u64 takes 1 to 10 bytes.  The decoder accepts only
 * the shortest encoding of each value, so that an encoded event stream is
 * canonical (one byte string per event stream) and a flipped continuation
 * bit cannot hide behind an equivalent spelling.
 */
#ifndef DETVM_TRACE_VARINT_H
#define DETVM_TRACE_VARINT_H

#include <stddef.h>
#include <stdint.h>

#define VARINT_MAX 10

/* Write v at p (room for VARINT_MAX bytes); returns the bytes written. */
static inline size_t varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)v | 0x80;
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

enum {
	VARINT_TRUNCATED = -1,	/* ran out of bytes mid-value */
	VARINT_OVERLONG = -2,	/* not the shortest encoding */
	VARINT_OVERFLOW = -3,	/* more than 64 bits */
};

/*
 * Read one value from p[0..avail).  Returns the bytes consumed (1..10) or a
 * negative VARINT_* code.
 */
static inline int varint_get(const uint8_t *p, size_t avail, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < VARINT_MAX; i++) {
		uint8_t b;

		if (i >= avail)
			return VARINT_TRUNCATED;
		b = p[i];
		/* The tenth byte holds bit 63 only and must end the value. */
		if (i == VARINT_MAX - 1 && b > 1)
			return VARINT_OVERFLOW;
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			/* A zero final group after others is padding. */
			if (b == 0 && i > 0)
				return VARINT_OVERLONG;
			*out = v;
			return (int)i + 1;
		}
	}
	return VARINT_OVERFLOW;	/* not reached: byte 10 checked above */
}

static inline const char *varint_strerror(int code)
{
	switch (code) {
	case VARINT_TRUNCATED:
		return "varint runs past the end of the payload";
	case VARINT_OVERLONG:
		return "varint not in shortest form";
	default:
		return "varint exceeds 64 bits";
	}
}

#endif
