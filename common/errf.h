/*
 * errf.h - how a function that fails fills in its caller's error buffer.
 *
 * Functions that can fail take (char *err, size_t errlen) and, when they
 * fail, leave there a message saying what failed and where (file, offset,
 * exit ordinal, guest address).  errf() writes it, in every module.
 */
#ifndef DETVM_ERRF_H
#define DETVM_ERRF_H

#include <stddef.h>

/*
 * Format into err (cut to errlen bytes, NUL-terminated; nothing if err is
 * NULL or errlen is 0), leaving errno as it was, so that a caller can still
 * report the failed call's errno.  Returns -1, so that a failing path can
 * end with `return errf(err, errlen, ...)`.
 */
int errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
