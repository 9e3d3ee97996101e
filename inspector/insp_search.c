/*
 * insp_search.c - `inspect search PATTERN`: where and when a byte pattern
 * is in guest physical memory over a range of exits.
 *
 * Replay to --from (restoring a checkpoint), scan all of RAM once, then
 * replay on to --to and, at every exit, re-examine only the pages written
 * since the previous exit: KVM's dirty log (the guest's writes; the replay
 * VM has dirty logging turned on) and guest_mem's bitmap of the monitor's
 * own writes (virtio DMA).  A pattern can straddle a page boundary, so a
 * written page is re-examined together with the page before it.  The state
 * examined at exit N is the state `inspect mem --at N` shows: the run
 * loop's top after exit N was handled.
 *
 * Bookkeeping: for every page, the number of occurrences that start in it;
 * the pattern is present while their sum is non-zero.
 */
#include "inspector/insp_internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define PG ((uint64_t)4096)
#define LIST_MAX 1000	/* addresses listed at the end */

struct search {
	uint8_t pat[INSPECT_PATTERN_MAX];
	size_t len;
	uint64_t from;
	uint32_t *count;	/* occurrences starting in each page (host page index) */
	uint64_t npages, low_pages;
	uint64_t total;		/* sum of count[] */
	uint64_t *dirty;	/* pages to re-examine (host page index) */
	bool scanned;
	bool found;
	uint64_t first_exit, first_gpa;
	uint64_t last_present;
	uint64_t last_exit;	/* last exit examined */
	uint64_t exits_checked, pages_rescanned;
	char err[400];
};

/* End (host offset) of the RAM block holding host offset off. */
static uint64_t block_end(const struct guest_mem *gm, uint64_t off)
{
	return off < gm->low_size ? gm->low_size : gm->size;
}

/*
 * Occurrences starting in host page pg (within its block).  *first: host
 * offset of the first one, if first is not NULL and there is one.
 */
static uint32_t count_page(const struct search *s, const struct guest_mem *gm, uint64_t pg, uint64_t *first)
{
	uint64_t a = pg * PG, end = block_end(gm, a);
	uint64_t lim = a + PG + s->len - 1 < end ? a + PG + s->len - 1 : end;
	const uint8_t *base = gm->host;
	uint64_t pos = a;
	uint32_t n = 0;
	while (pos + s->len <= lim) {
		const uint8_t *hit = memmem(base + pos, lim - pos, s->pat, s->len);
		if (!hit || (uint64_t)(hit - base) >= a + PG)
			break;
		if (!n && first)
			*first = (uint64_t)(hit - base);
		n++;
		pos = (uint64_t)(hit - base) + 1;
	}
	return n;
}

static void recount(struct search *s, const struct guest_mem *gm, uint64_t pg)
{
	uint32_t n = count_page(s, gm, pg, NULL);
	s->total = s->total - s->count[pg] + n;
	s->count[pg] = n;
	s->pages_rescanned++;
}

static void full_scan(struct search *s, const struct guest_mem *gm)
{
	s->total = 0;
	for (uint64_t pg = 0; pg < s->npages; pg++) {
		s->count[pg] = count_page(s, gm, pg, NULL);
		s->total += s->count[pg];
	}
}

static void first_occurrence(struct search *s, const struct guest_mem *gm)
{
	for (uint64_t pg = 0; pg < s->npages; pg++)
		if (s->count[pg]) {
			uint64_t off = pg * PG;
			count_page(s, gm, pg, &off);
			s->first_gpa = gm_offset_to_gpa(gm, off);
			return;
		}
}

static void step(struct insp *in, struct vm *vm)
{
	struct search *s = in->step_ctx;
	const struct guest_mem *gm = &vm->mem;
	uint64_t exit = vm->stats.exits;

	if (exit < s->from)
		return;	/* still on the way from a checkpoint to --from */
	/* A string IN's data reaches RAM when KVM finishes the instruction:
	 * finish it now, as `inspect mem --at` does. */
	struct kvm_run *run = vm->kvm.run;
	if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_IN && run->io.count > 1 &&
	    vcpu_complete_pending(&vm->kvm, s->err, sizeof(s->err))) {
		insp_err("at exit %" PRIu64 ": %s", exit, s->err);
		in->step_failed = INSPECT_ERROR;
		return;
	}
	/* Every record of written pages, collected and reset, into s->dirty. */
	if (vm_take_dirty(vm, s->dirty, s->err, sizeof(s->err))) {
		insp_err("%s", s->err);
		in->step_failed = INSPECT_ERROR;
		return;
	}
	size_t words = (size_t)(s->npages + 63) / 64;
	if (!s->scanned) {
		full_scan(s, gm);
		memset(s->dirty, 0, words * sizeof(uint64_t));
		s->scanned = true;
	} else {
		uint64_t last = UINT64_MAX;
		for (size_t w = 0; w < words; w++) {
			uint64_t bits = s->dirty[w];
			s->dirty[w] = 0;
			while (bits) {
				uint64_t pg = w * 64 + (uint64_t)__builtin_ctzll(bits);
				bits &= bits - 1;
				if (pg >= s->npages)
					break;
				/* The page before may hold the start of an
				 * occurrence running into this one. */
				if (s->len > 1 && pg > 0 && last != pg - 1 && pg != s->low_pages)
					recount(s, gm, pg - 1);
				recount(s, gm, pg);
				last = pg;
			}
		}
	}
	s->exits_checked++;
	s->last_exit = exit;
	if (s->total) {
		if (!s->found) {
			s->found = true;
			s->first_exit = exit;
			first_occurrence(s, gm);
		}
		s->last_present = exit;
	}
}

static int parse_pattern(const struct inspect_opts *o, struct search *s)
{
	const char *p = o->args[0];
	if (!o->hex) {
		s->len = strlen(p);
		if (s->len == 0 || s->len > INSPECT_PATTERN_MAX) {
			insp_err("PATTERN is %zu bytes: must be 1..%d", s->len, INSPECT_PATTERN_MAX);
			return -1;
		}
		memcpy(s->pat, p, s->len);
		return 0;
	}
	/* Hex digits; spaces, ':' and '-' between bytes are ignored. */
	s->len = 0;
	int half = -1;
	for (; *p; p++) {
		if (*p == ' ' || *p == ':' || *p == '-' || *p == '\t') {
			if (half >= 0) {
				insp_err("--hex PATTERN: odd number of hex digits before '%c'", *p);
				return -1;
			}
			continue;
		}
		if (!isxdigit((unsigned char)*p)) {
			insp_err("--hex PATTERN: '%c' is not a hex digit", *p);
			return -1;
		}
		int v = isdigit((unsigned char)*p) ? *p - '0' : (tolower((unsigned char)*p) - 'a' + 10);
		if (half < 0) {
			half = v;
			continue;
		}
		if (s->len == INSPECT_PATTERN_MAX) {
			insp_err("--hex PATTERN: longer than %d bytes", INSPECT_PATTERN_MAX);
			return -1;
		}
		s->pat[s->len++] = (uint8_t)(half << 4 | v);
		half = -1;
	}
	if (half >= 0) {
		insp_err("--hex PATTERN: odd number of hex digits");
		return -1;
	}
	if (s->len == 0) {
		insp_err("--hex PATTERN: no bytes");
		return -1;
	}
	return 0;
}

static void print_pattern(const struct search *s, bool hex)
{
	if (hex) {
		for (size_t i = 0; i < s->len && i < 64; i++)
			printf("%02x", s->pat[i]);
		printf("%s", s->len > 64 ? "..." : "");
	} else {
		insp_json_str(stdout, (const char *)s->pat, s->len < 200 ? s->len : 200);
		printf("%s", s->len > 200 ? "..." : "");
	}
}

static void free_search(struct search *s)
{
	free(s->count);
	free(s->dirty);
	free(s);
}

int insp_cmd_search(struct insp *in)
{
	const struct inspect_opts *o = in->o;
	int st;

	if (o->nargs != 1) {
		insp_err("needs one PATTERN (see 'detvm inspect search --help')");
		return INSPECT_ERROR;
	}
	struct search *s = calloc(1, sizeof(*s));
	if (!s) {
		insp_err("out of memory");
		return INSPECT_ERROR;
	}
	if (parse_pattern(o, s)) {
		free_search(s);
		return INSPECT_ERROR;
	}
	s->from = o->has_from ? o->from : 0;
	if (o->has_from && o->has_to && o->from > o->to) {
		insp_err("--from %" PRIu64 " is after --to %" PRIu64, o->from, o->to);
		free_search(s);
		return INSPECT_ERROR;
	}
	if ((st = insp_open_session(in)) || (o->has_from && (st = insp_check_exit(in, "--from", o->from))) ||
	    (o->has_to && (st = insp_check_exit(in, "--to", o->to)))) {
		free_search(s);
		return st;
	}
	/* Where to stop: --to, else the end of the recording. */
	uint64_t total, to;
	bool complete, stop = true;
	if (o->has_to)
		to = o->to;
	else if (insp_total_exits(in, &total, &complete) == 0)
		to = total;
	else
		stop = false, to = 0;

	uint64_t mem_size = in->s->cfg.mem_size, low = mem_size < GM_HOLE_START ? mem_size : GM_HOLE_START;
	s->npages = mem_size / PG;
	s->low_pages = low / PG;
	size_t words = (size_t)(s->npages + 63) / 64;
	s->count = calloc(s->npages ? s->npages : 1, sizeof(uint32_t));
	s->dirty = calloc(words + 1, sizeof(uint64_t));
	if (!s->count || !s->dirty) {
		insp_err("out of memory for %" PRIu64 " pages", s->npages);
		free_search(s);
		return INSPECT_ERROR;
	}
	in->want_dirty_log = true;
	in->step = step;
	in->step_ctx = s;
	st = insp_replay(in, s->from, stop, to);
	in->step = NULL;
	if (st) {
		free_search(s);
		return st;
	}
	if (!s->scanned) {
		insp_err("internal error: the replay never reached exit %" PRIu64, s->from);
		free_search(s);
		return INSPECT_ERROR;
	}

	const struct guest_mem *gm = &in->s->vm.mem;
	uint64_t end = s->last_exit;
	printf("pattern ");
	print_pattern(s, o->hex);
	printf(" (%zu byte%s) in guest physical memory, exits %" PRIu64 "..%" PRIu64 "\n", s->len, s->len == 1 ? "" : "s", s->from, end);
	if (!s->found) {
		printf("not found at any exit from %" PRIu64 " to %" PRIu64 "\n", s->from, end);
	} else {
		printf("first appears: exit %" PRIu64 " at 0x%" PRIx64 "%s\n", s->first_exit, s->first_gpa,
		       s->first_exit == s->from && s->from > 0 ? " (already there at --from)" : "");
		if (s->total) {
			printf("present at exit %" PRIu64 " (the end of the range) at %" PRIu64 " address%s:\n", end,
			       s->total, s->total == 1 ? "" : "es");
			uint64_t listed = 0;
			for (uint64_t pg = 0; pg < s->npages && listed < LIST_MAX; pg++) {
				if (!s->count[pg])
					continue;
				/* Every occurrence starting in this page. */
				uint64_t a = pg * PG, bend = block_end(gm, a);
				uint64_t lim = a + PG + s->len - 1 < bend ? a + PG + s->len - 1 : bend, pos = a;
				while (pos + s->len <= lim && listed < LIST_MAX) {
					const uint8_t *hit = memmem(gm->host + pos, lim - pos, s->pat, s->len);
					if (!hit || (uint64_t)(hit - gm->host) >= a + PG)
						break;
					pos = (uint64_t)(hit - gm->host);
					printf("  0x%" PRIx64 "\n", gm_offset_to_gpa(gm, pos));
					listed++;
					pos++;
				}
			}
			if (s->total > listed)
				printf("  ... and %" PRIu64 " more\n", s->total - listed);
			printf("last present: exit %" PRIu64 " (still present at the end of the range)\n", end);
		} else {
			printf("present at exit %" PRIu64 " (the end of the range): nowhere\n", end);
			printf("last present: exit %" PRIu64 " (gone at exit %" PRIu64 ")\n", s->last_present,
			       s->last_present + 1);
		}
	}
	if (in->tty)
		fprintf(stderr, "detvm inspect search: %" PRIu64 " exits examined, %" PRIu64 " pages re-examined\n",
			s->exits_checked, s->pages_rescanned);
	free_search(s);
	return INSPECT_OK;
}
