/* insn_peek.c - see insn_peek.h. */
#include "insn_peek.h"

#include <stdbool.h>

static bool legacy_prefix(uint8_t b)
{
	switch (b) {
	case 0x26: case 0x2e: case 0x36: case 0x3e: case 0x64: case 0x65: /* segments */
	case 0x66: case 0x67:                                              /* sizes */
	case 0xf0: case 0xf2: case 0xf3:                                   /* lock, rep */
		return true;
	default:
		return false;
	}
}

enum insn_kind insn_peek(const uint8_t *b, size_t n, size_t *len)
{
	size_t i = 0;

	if (n > INSN_MAX_LEN)
		n = INSN_MAX_LEN;
	/* Prefixes in any order; a REX counts only right before the opcode,
	 * but skipping it elsewhere too ends at the same opcode. */
	while (i < n && (legacy_prefix(b[i]) || (b[i] & 0xf0) == 0x40))
		i++;
	if (i >= n)
		return INSN_OTHER;
	switch (b[i]) {
	case 0x9c:
		*len = i + 1;
		return INSN_PUSHF;
	case 0xcc:
	case 0xf1:
		*len = i + 1;
		return INSN_SOFT_INT;
	case 0xcd:
		if (i + 1 >= n)
			return INSN_OTHER;
		*len = i + 2;
		return INSN_SOFT_INT;
	case 0xcf:
		*len = i + 1;
		return INSN_IRET;
	default:
		return INSN_OTHER;
	}
}
