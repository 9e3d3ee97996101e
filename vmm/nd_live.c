/* nd_live.c - see nd_live.h. */
#include "nd_live.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Without a hint, look at the console only every this many exits: a
 * poll(2) per exit would cost ~5% of an exit's time. */
#define POLL_EVERY 64

uint64_t nd_host_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t nd_host_real_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t live_clock(struct nd *nd)
{
	struct nd_live *l = nd->backend;
	return nd_host_mono_ns() - l->start_mono_ns;
}

static void live_entropy(struct nd *nd, void *buf, size_t len)
{
	(void)nd;
	uint8_t *p = buf;
	while (len) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* getrandom cannot fail once the pool is initialised;
			 * if it does, the host is broken: say so and stop. */
			fprintf(stderr, "detvm: getrandom(%zu bytes) for the guest's entropy device failed: %s\n",
				len, strerror(errno));
			exit(2);
		}
		p += n;
		len -= (size_t)n;
	}
}

static size_t live_poll_console(struct nd *nd, uint8_t *buf, size_t room, bool hint)
{
	struct nd_live *l = nd->backend;

	if (l->console_fd < 0 || l->console_eof || room == 0)
		return 0;
	if (!hint && ++l->poll_skip % POLL_EVERY)
		return 0;
	if (!l->console_is_file) {
		struct pollfd pfd = { .fd = l->console_fd, .events = POLLIN };
		if (poll(&pfd, 1, 0) <= 0)
			return 0;
	}
	ssize_t n = read(l->console_fd, buf, room);
	if (n < 0) {
		if (errno != EINTR && errno != EAGAIN) {
			fprintf(stderr, "detvm: reading serial input (fd %d): %s; no more input\n",
				l->console_fd, strerror(errno));
			l->console_eof = 1;
		}
		return 0;
	}
	if (n == 0)
		l->console_eof = 1;
	return (size_t)n;
}

static bool live_poll_timers(struct nd *nd, uint64_t deadline, uint64_t *now)
{
	uint64_t t = live_clock(nd);
	if (t < deadline)
		return false;
	*now = t;
	return true;
}

static void live_idle_wait(struct nd *nd, bool has_deadline, uint64_t deadline)
{
	struct nd_live *l = nd->backend;
	struct timespec ts, *tsp = NULL;

	if (l->stop && *l->stop)
		return;
	if (has_deadline) {
		uint64_t now = live_clock(nd);
		uint64_t d = deadline > now ? deadline - now : 0;
		ts.tv_sec = (time_t)(d / 1000000000ULL);
		ts.tv_nsec = (long)(d % 1000000000ULL);
		tsp = &ts;
	}
	int watch = l->console_fd >= 0 && !l->console_eof;
	if (watch && l->console_is_file)
		return; /* a file is always readable */
	struct pollfd pfd = { .fd = watch ? l->console_fd : -1, .events = POLLIN };
	/* EINTR (a signal: Ctrl-C or the host timer) is a normal wake-up. */
	ppoll(&pfd, 1, tsp, NULL);
}

static const struct nd_ops live_ops = {
	.clock_ns = live_clock,
	.entropy = live_entropy,
	.poll_console = live_poll_console,
	.poll_timers = live_poll_timers,
	.idle_wait = live_idle_wait,
};

void nd_live_init(struct nd_live *l, int console_fd, volatile sig_atomic_t *stop)
{
	struct stat st;
	memset(l, 0, sizeof(*l));
	l->nd.ops = &live_ops;
	l->nd.backend = l;
	l->nd.boot_epoch_ns = nd_host_real_ns();
	l->start_mono_ns = nd_host_mono_ns();
	l->console_fd = console_fd;
	l->console_is_file = console_fd >= 0 && fstat(console_fd, &st) == 0 && S_ISREG(st.st_mode);
	l->stop = stop;
}

int nd_live_console_open(const struct nd_live *l)
{
	return l->console_fd >= 0 && !l->console_eof;
}
