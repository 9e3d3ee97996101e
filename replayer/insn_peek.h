/*
 * insn_peek.h - which instructions a single step must not execute.
 *
 * KVM single-steps a guest by setting the trap flag (RFLAGS.TF) for it and
 * hides the flag from KVM_GET_REGS.  An instruction that stores RFLAGS
 * stores the flag with it on a hardware CPU: PUSHF in the guest's memory,
 * INT n / INT3 / INT1 in the interrupt frame (whose IRET then makes the
 * guest trap on its own).  IRET loads RFLAGS and, stepped, runs on into the
 * next instruction.  The replayer (landmark.c) runs over these to a
 * hardware breakpoint instead of stepping them.
 *
 * Only the bytes are looked at, whatever the CPU mode: bytes 0x40-0x4f are
 * REX prefixes in 64-bit mode and one-byte INC/DEC instructions otherwise,
 * which end at the same place, so a breakpoint at the end serves both.
 * Instructions that fault while stepped push the flag too; they cannot be
 * told from their bytes, and are not handled (landmark.h).
 */
#ifndef DETVM_INSN_PEEK_H
#define DETVM_INSN_PEEK_H

#include <stddef.h>
#include <stdint.h>

/* The longest x86 instruction. */
#define INSN_MAX_LEN 15

enum insn_kind {
	INSN_OTHER = 0,   /* none of the below, or not decodable from the bytes given */
	INSN_PUSHF,       /* PUSHF/PUSHFQ (0x9c) */
	INSN_SOFT_INT,    /* INT n (0xcd ib), INT3 (0xcc), INT1 (0xf1) */
	INSN_IRET,        /* IRET/IRETD/IRETQ (0xcf) */
};

/*
 * Classify the instruction whose first `n` bytes are `b` (n may be less
 * than INSN_MAX_LEN near the end of readable memory).  For a kind other
 * than INSN_OTHER, *len is its length in bytes, prefixes included.
 */
enum insn_kind insn_peek(const uint8_t *b, size_t n, size_t *len);

#endif
