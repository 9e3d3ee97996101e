/*
 * nd_live.h - the live backend of the nondeterminism gateway (nd.h): host
 * monotonic clock, getrandom(2), the serial-input file descriptor.  Used by
 * `detvm run`, and by the recorder underneath its logging.
 */
#ifndef DETVM_ND_LIVE_H
#define DETVM_ND_LIVE_H

#include <signal.h>

#include "nd.h"

struct nd_live {
	struct nd nd;
	uint64_t start_mono_ns; /* host CLOCK_MONOTONIC at virtual time 0 */
	int console_fd;         /* -1: no console input */
	int console_is_file;    /* regular file: always readable, no poll needed */
	int console_eof;
	unsigned poll_skip;
	volatile sig_atomic_t *stop; /* set by the signal handler: wake up */
};

/* console_fd may be -1.  stop may be NULL. */
void nd_live_init(struct nd_live *l, int console_fd, volatile sig_atomic_t *stop);
uint64_t nd_host_mono_ns(void);
uint64_t nd_host_real_ns(void);
/* Is more console input possible (fd open and not at EOF)? */
int nd_live_console_open(const struct nd_live *l);

#endif
