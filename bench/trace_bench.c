/*
 * trace_bench.c - how fast the trace writer takes events, and how small
 * the trace of a timer-interrupt-driven guest is.
 *
 * The synthetic guest idles at 100 Hz: each tick is EXIT_HLT, TIMER
 * (10 ms later, plus up to 65 us of host wake-up jitter), IRQ 0x20 and the
 * handler's EOI, an EXIT_IO write of 0x20 to port 0x20: four events, two
 * exits.  A DIGEST follows every 100000 exits.  Each configuration writes
 * the same N events; the figures are:
 *   append ns  wall time of the append loop / events: what the vCPU
 *              thread pays (sync: compression and write() included)
 *   p99 / max  per-append latency from a second, individually timed run
 *   Mev/s      events / (append loop + close), i.e. end to end
 *   B/exit     file size / exits
 * The "+flush" rows flush every 100 ms / 1 s of *virtual* time, as the
 * recorder's host timer would in a live run of this guest (where virtual
 * time runs at host speed): they show what small frames cost in bytes.
 * Their speed figures are not meaningful (a real run spreads those flushes
 * over minutes), so no async variant is run.
 *
 * Build and run: bench/trace_bench.sh [options] (the compile command is
 * there: this file and the trace-format sources, -lzstd -lxxhash -lnettle
 * -lpthread).
 * Run: build/trace_bench [-n MILLION_EVENTS] [-d DIR] [-l ZSTD_LEVEL]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "trace-format/trace.h"

#define TICK_NS		10000000ull	/* 100 Hz */
#define DIGEST_EVERY	100000		/* exits */

struct config {
	const char *name;
	bool async;
	uint64_t flush_ns;	/* flush every this much virtual time; 0: never */
};

struct result {
	double loop_s, close_s, cpu_s;
	uint64_t p99_ns, max_ns;
	struct trace_writer_stats st;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* The guest: event i of the stream, with its own state. */
struct guest {
	uint64_t rng;
	uint64_t vns;
	uint64_t exits;
	unsigned phase;
	bool digest_due;
};

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void next_event(struct guest *g, struct trace_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	if (g->digest_due) {
		g->digest_due = false;
		ev->type = TRACE_EV_DIGEST;
		ev->digest.regs_hash = xorshift(&g->rng);
		ev->digest.mem_hash.lo = xorshift(&g->rng);
		ev->digest.mem_hash.hi = xorshift(&g->rng);
		return;
	}
	switch (g->phase++ & 3) {
	case 0:
		ev->type = TRACE_EV_EXIT_HLT;
		break;
	case 1:
		g->vns += TICK_NS + (xorshift(&g->rng) & 0xffff);
		ev->type = TRACE_EV_TIMER;
		ev->time.ns = g->vns;
		break;
	case 2:
		ev->type = TRACE_EV_IRQ;
		ev->irq.vector = 0x20;
		break;
	case 3:
		ev->type = TRACE_EV_EXIT_IO;
		ev->io.flags = TRACE_IOF_WRITE;
		ev->io.port = 0x20;
		ev->io.count = 1;
		ev->io.value = 0x20;
		break;
	}
	if (trace_event_is_exit(ev->type) && ++g->exits % DIGEST_EVERY == 0)
		g->digest_due = true;
}

static struct trace_header *bench_header(void)
{
	struct trace_header *h = trace_header_new();
	struct trace_hash128 zero = { 0, 0 };

	if (!h ||
	    trace_header_add_str(h, TRACE_TAG_DETVM_VERSION, "bench") ||
	    trace_header_add_u64(h, TRACE_TAG_MEM_SIZE, 128ull << 20) ||
	    trace_header_add(h, TRACE_TAG_CPUID, NULL, 0) ||
	    trace_header_add(h, TRACE_TAG_MSRS, NULL, 0) ||
	    trace_header_add_xsave(h, 576, 3) ||
	    trace_header_add_str(h, TRACE_TAG_CMDLINE, "") ||
	    trace_header_add_file_id(h, TRACE_TAG_KERNEL_ID, 0, &zero, "bench") ||
	    trace_header_add_u64(h, TRACE_TAG_BOOT_EPOCH_NS, 0) ||
	    trace_header_add_str(h, TRACE_TAG_PROGRESS_COUNTER, "none") ||
	    trace_header_add_u64(h, TRACE_TAG_LANDMARK_BOUND_NS, 1000000) ||
	    trace_header_add_u64(h, TRACE_TAG_DIGEST_INTERVAL, DIGEST_EVERY) ||
	    trace_header_add_str(h, TRACE_TAG_BOOT_MODE, "elf64") ||
	    trace_header_add_str(h, TRACE_TAG_SERIAL_IN, "none")) {
		fprintf(stderr, "trace_bench: cannot build the header\n");
		exit(1);
	}
	return h;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * One run.  lat: NULL for the throughput run; else an array of n per-append
 * latencies to fill.
 */
static int run(const char *path, const struct config *c, int level,
	       uint64_t n, uint64_t *lat, struct result *res)
{
	struct trace_writer_opts o = { .zstd_level = level, .async = c->async };
	struct trace_header *h = bench_header();
	struct trace_event ev, end = { .type = TRACE_EV_END };
	struct guest g = { .rng = 0x9e3779b97f4a7c15ull };
	struct trace_writer *w;
	uint64_t t0, t1, next_flush = c->flush_ns;
	double c0;
	char err[512];

	unlink(path);
	w = trace_writer_open(path, h, &o, err, sizeof(err));
	trace_header_free(h);
	if (!w) {
		fprintf(stderr, "trace_bench: %s\n", err);
		return -1;
	}
	c0 = cpu_s();
	t0 = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		uint64_t a = 0;
		int r;

		next_event(&g, &ev);
		if (lat)
			a = now_ns();
		r = trace_writer_append(w, &ev);
		/* The recorder's timer: flush when virtual time says so. */
		if (!r && c->flush_ns && g.vns >= next_flush) {
			next_flush = g.vns + c->flush_ns;
			r = trace_writer_flush(w);
		}
		if (lat)
			lat[i] = now_ns() - a;
		if (r) {
			fprintf(stderr, "trace_bench: %s\n", trace_writer_error(w));
			trace_writer_free(w);
			return -1;
		}
	}
	t1 = now_ns();
	if (trace_writer_close(w, &end)) {
		fprintf(stderr, "trace_bench: %s\n", trace_writer_error(w));
		trace_writer_free(w);
		return -1;
	}
	res->loop_s = (double)(t1 - t0) / 1e9;
	res->close_s = (double)(now_ns() - t1) / 1e9;
	res->cpu_s = cpu_s() - c0;
	trace_writer_stats(w, &res->st);
	trace_writer_free(w);
	if (lat) {
		qsort(lat, n, sizeof(*lat), cmp_u64);
		res->p99_ns = lat[n * 99 / 100];
		res->max_ns = lat[n - 1];
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct config configs[] = {
		{ "sync", false, 0 },
		{ "async", true, 0 },
		{ "sync+flush100ms", false, 100000000ull },
		{ "sync+flush1s", false, 1000000000ull },
	};
	const char *dir = "/tmp";
	double millions = 10;
	int level = 1, opt;
	char path[4096];
	uint64_t n, *lat;

	while ((opt = getopt(argc, argv, "n:d:l:h")) != -1) {
		switch (opt) {
		case 'n':
			millions = atof(optarg);
			break;
		case 'd':
			dir = optarg;
			break;
		case 'l':
			level = atoi(optarg);
			break;
		default:
			fprintf(stderr,
				"usage: %s [-n MILLION_EVENTS] [-d DIR] [-l ZSTD_LEVEL]\n",
				argv[0]);
			return opt == 'h' ? 0 : 2;
		}
	}
	n = (uint64_t)(millions * 1e6);
	if (n < 1000) {
		fprintf(stderr, "trace_bench: -n too small\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/trace_bench.%d.trc", dir, (int)getpid());
	lat = malloc(n * sizeof(*lat));
	if (!lat) {
		fprintf(stderr, "trace_bench: out of memory\n");
		return 1;
	}
	printf("%llu events (%llu exits), timer guest at 100 Hz, zstd level %d, %s, %ld CPUs\n",
	       (unsigned long long)n, (unsigned long long)n / 2, level, dir,
	       sysconf(_SC_NPROCESSORS_ONLN));
	printf("%-17s %9s %7s %7s %7s %8s %7s %7s %9s %8s\n", "mode", "append ns",
	       "p99 ns", "max us", "Mev/s", "CPU s", "B/exit", "frames",
	       "file MB", "waits");
	for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++) {
		struct result r, rl;

		if (run(path, &configs[i], level, n, NULL, &r) ||
		    run(path, &configs[i], level, n, lat, &rl)) {
			unlink(path);
			return 1;
		}
		printf("%-17s %9.1f %7llu %7.1f %7.2f %8.2f %7.3f %7llu %9.2f %8llu\n",
		       configs[i].name, r.loop_s * 1e9 / (double)n,
		       (unsigned long long)rl.p99_ns, (double)rl.max_ns / 1e3,
		       (double)n / (r.loop_s + r.close_s) / 1e6, r.cpu_s,
		       (double)r.st.file_bytes / (double)r.st.exits,
		       (unsigned long long)r.st.frames,
		       (double)r.st.file_bytes / 1e6,
		       (unsigned long long)r.st.queue_waits);
	}
	unlink(path);
	free(lat);
	return 0;
}
