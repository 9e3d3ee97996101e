/*
 * test_errf.c - errf() (common/errf.h): the message, cut to the buffer and
 * always terminated; nothing written without a buffer; errno kept; -1.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/errf.h"

static void test_message(void **st)
{
	(void)st;
	char err[64];
	assert_int_equal(errf(err, sizeof(err), "%s: read at offset %d: %s", "trace", 42, "EIO"), -1);
	assert_string_equal(err, "trace: read at offset 42: EIO");
}

static void test_cut(void **st)
{
	(void)st;
	char err[8];
	memset(err, 'x', sizeof(err));
	assert_int_equal(errf(err, 5, "%s", "abcdefgh"), -1);
	assert_string_equal(err, "abcd");
	assert_int_equal(err[5], 'x'); /* nothing past errlen */
}

static void test_no_buffer(void **st)
{
	(void)st;
	char err[4] = "old";
	assert_int_equal(errf(NULL, 100, "%s", "x"), -1);
	assert_int_equal(errf(err, 0, "%s", "new"), -1);
	assert_string_equal(err, "old");
}

static void test_errno_kept(void **st)
{
	(void)st;
	char err[16];
	errno = ENOSPC;
	errf(err, sizeof(err), "%s", "a message");
	assert_int_equal(errno, ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message),
		cmocka_unit_test(test_cut),
		cmocka_unit_test(test_no_buffer),
		cmocka_unit_test(test_errno_kept),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
