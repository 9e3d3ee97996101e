/*
 * test_insn_peek.c - insn_peek() (replayer/insn_peek.h): the instructions
 * a single step must not execute, found from their bytes with any
 * prefixes, their lengths, and nothing else taken for them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "replayer/insn_peek.h"

/* insn_peek on the given bytes; *len is 0 unless it set it. */
static enum insn_kind peek(const uint8_t *b, size_t n, size_t *len)
{
	*len = 0;
	return insn_peek(b, n, len);
}

#define PEEK(len, ...) ({ static const uint8_t b_[] = { __VA_ARGS__ }; peek(b_, sizeof(b_), len); })

static void test_pushf(void **st)
{
	(void)st;
	size_t len;
	assert_int_equal(PEEK(&len, 0x9c), INSN_PUSHF);
	assert_int_equal(len, 1);
	assert_int_equal(PEEK(&len, 0x66, 0x9c), INSN_PUSHF);         /* PUSHF (16-bit) */
	assert_int_equal(len, 2);
	assert_int_equal(PEEK(&len, 0x48, 0x9c), INSN_PUSHF);         /* REX.W; DEC EAX outside 64-bit mode */
	assert_int_equal(len, 2);
	assert_int_equal(PEEK(&len, 0x2e, 0x66, 0x41, 0x9c, 0x90), INSN_PUSHF);
	assert_int_equal(len, 4);
	/* The bytes after it do not matter. */
	assert_int_equal(PEEK(&len, 0x9c, 0xcd, 0x21), INSN_PUSHF);
	assert_int_equal(len, 1);
}

static void test_soft_int_and_iret(void **st)
{
	(void)st;
	size_t len;
	assert_int_equal(PEEK(&len, 0xcd, 0x80), INSN_SOFT_INT);
	assert_int_equal(len, 2);
	assert_int_equal(PEEK(&len, 0xcc), INSN_SOFT_INT);
	assert_int_equal(len, 1);
	assert_int_equal(PEEK(&len, 0xf1), INSN_SOFT_INT);
	assert_int_equal(len, 1);
	assert_int_equal(PEEK(&len, 0x66, 0xcd, 0x21), INSN_SOFT_INT);
	assert_int_equal(len, 3);
	assert_int_equal(PEEK(&len, 0x48, 0xcf), INSN_IRET);
	assert_int_equal(len, 2);
	assert_int_equal(PEEK(&len, 0xcf), INSN_IRET);
	assert_int_equal(len, 1);
	/* INT n without its vector byte: not decodable. */
	assert_int_equal(PEEK(&len, 0xcd), INSN_OTHER);
	assert_int_equal(PEEK(&len, 0xf3, 0xcd), INSN_OTHER);
}

static void test_others(void **st)
{
	(void)st;
	size_t len;
	assert_int_equal(PEEK(&len, 0x90), INSN_OTHER);
	assert_int_equal(PEEK(&len, 0x0f, 0x9c, 0xc0), INSN_OTHER);   /* SETL AL: 9c as a second byte */
	assert_int_equal(PEEK(&len, 0x9d), INSN_OTHER);               /* POPF */
	assert_int_equal(PEEK(&len, 0xc3), INSN_OTHER);
	assert_int_equal(PEEK(&len, 0xb0, 0x9c), INSN_OTHER);         /* MOV AL, 0x9c */
	assert_int_equal(PEEK(&len, 0x66, 0x66), INSN_OTHER);         /* only prefixes */
	assert_int_equal(len, 0);
	assert_int_equal(insn_peek(NULL, 0, &len), INSN_OTHER);
}

/* No instruction is longer than 15 bytes: 14 prefixes and the opcode are
 * one, a 15th prefix makes it none, however many bytes follow. */
static void test_length_limit(void **st)
{
	(void)st;
	uint8_t b[32];
	size_t len = 0;
	memset(b, 0x66, sizeof(b));
	b[14] = 0x9c;
	assert_int_equal(insn_peek(b, sizeof(b), &len), INSN_PUSHF);
	assert_int_equal(len, 15);
	b[14] = 0x66;
	b[15] = 0x9c;
	len = 0;
	assert_int_equal(insn_peek(b, sizeof(b), &len), INSN_OTHER);
	assert_int_equal(len, 0);
	/* INT n whose vector would be the 16th byte. */
	memset(b, 0x66, sizeof(b));
	b[14] = 0xcd;
	assert_int_equal(insn_peek(b, sizeof(b), &len), INSN_OTHER);
	/* Fewer bytes than the instruction needs. */
	b[0] = 0x66;
	b[1] = 0x9c;
	assert_int_equal(insn_peek(b, 1, &len), INSN_OTHER);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pushf),
		cmocka_unit_test(test_soft_int_and_iret),
		cmocka_unit_test(test_others),
		cmocka_unit_test(test_length_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
