/* insp_events.c - `inspect events` (the event index) and `inspect serial`. */
#include "inspector/insp_internal.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --type names: the trace's type names without "EXIT_" also work. */
static const struct {
	const char *name;
	uint8_t type;		/* 0: every exit */
} type_names[] = {
	{ "exit", 0 },
	{ "exit_io", TRACE_EV_EXIT_IO }, { "io", TRACE_EV_EXIT_IO },
	{ "exit_mmio", TRACE_EV_EXIT_MMIO }, { "mmio", TRACE_EV_EXIT_MMIO },
	{ "exit_hlt", TRACE_EV_EXIT_HLT }, { "hlt", TRACE_EV_EXIT_HLT },
	{ "exit_msr", TRACE_EV_EXIT_MSR }, { "msr", TRACE_EV_EXIT_MSR },
	{ "exit_landmark", TRACE_EV_EXIT_LANDMARK }, { "landmark", TRACE_EV_EXIT_LANDMARK },
	{ "clock", TRACE_EV_CLOCK },
	{ "timer", TRACE_EV_TIMER },
	{ "entropy", TRACE_EV_ENTROPY },
	{ "console_in", TRACE_EV_CONSOLE_IN },
	{ "irq", TRACE_EV_IRQ },
	{ "digest", TRACE_EV_DIGEST },
	{ "end", TRACE_EV_END },
};
#define NTYPES (sizeof(type_names) / sizeof(type_names[0]))

const char *inspect_event_type_names(void)
{
	return "exit (every exit), exit_io (or io), exit_mmio (mmio), exit_hlt (hlt), exit_msr (msr), "
	       "exit_landmark (landmark), clock, timer, entropy, console_in, irq, digest, end";
}

/* Range options: --from/--to within the recording, from <= to. */
static int exit_range(struct insp *in, uint64_t *from, uint64_t *to)
{
	const struct inspect_opts *o = in->o;
	*from = o->has_from ? o->from : 0;
	*to = o->has_to ? o->to : UINT64_MAX;
	if (o->has_from && o->has_to && o->from > o->to) {
		insp_err("--from %" PRIu64 " is after --to %" PRIu64, o->from, o->to);
		return INSPECT_ERROR;
	}
	if ((o->has_from && insp_check_exit(in, "--from", o->from)) ||
	    (o->has_to && insp_check_exit(in, "--to", o->to)))
		return INSPECT_ERROR;
	return INSPECT_OK;
}

/*
 * The SQL condition for --type (a comma-separated list): "" or
 * " AND (type IN ('EXIT_IO', ...) OR type LIKE 'EXIT\_%' ESCAPE '\')".
 * The names put in are the trace's own (trace_event_type_name), never the
 * user's text.
 */
static int type_condition(const char *spec, char *out, size_t outlen)
{
	char buf[256], *save = NULL;
	bool any_exit = false, first = true;
	size_t pos = 0;

	if (!spec) {
		out[0] = 0;
		return 0;
	}
	if (strlen(spec) >= sizeof(buf)) {
		insp_err("--type '%.40s...': too long", spec);
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s", spec);
	pos += (size_t)snprintf(out + pos, outlen - pos, " AND (type IN (");
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		while (isspace((unsigned char)*t))
			t++;
		size_t l = strlen(t);
		while (l && isspace((unsigned char)t[l - 1]))
			t[--l] = 0;
		size_t i;
		for (i = 0; i < NTYPES; i++)
			if (strcasecmp(t, type_names[i].name) == 0)
				break;
		if (i == NTYPES) {
			insp_err("--type '%s': unknown event type; valid types: %s", t, inspect_event_type_names());
			return -1;
		}
		if (type_names[i].type == 0) {
			any_exit = true;
			continue;
		}
		if (pos + 40 >= outlen) {
			insp_err("--type: too many types");
			return -1;
		}
		pos += (size_t)snprintf(out + pos, outlen - pos, "%s'%s'", first ? "" : ", ",
					trace_event_type_name(type_names[i].type));
		first = false;
	}
	if (first && !any_exit) {
		insp_err("--type '%s': no type given; valid types: %s", spec, inspect_event_type_names());
		return -1;
	}
	snprintf(out + pos, outlen - pos, ")%s)", any_exit ? " OR type LIKE 'EXIT\\_%' ESCAPE '\\'" : "");
	return 0;
}

/* Column values of one row, NULL-aware. */
struct ev_row {
	uint64_t ordinal, exit, size, addr, value, host_ns;
	bool has_size;
	const char *type, *device, *dir;
};

static void text_detail(const struct ev_row *e, char *out, size_t outlen)
{
	const char *t = e->type;
	out[0] = 0;
	if (!strcmp(t, "EXIT_IO") || !strcmp(t, "EXIT_MMIO") || !strcmp(t, "EXIT_MSR")) {
		bool out_dir = e->dir && !strcmp(e->dir, "out");
		size_t p = (size_t)snprintf(out, outlen, "%-3s %" PRIu64 " %s 0x%" PRIx64, e->dir ? e->dir : "?",
					    e->size, !strcmp(t, "EXIT_MSR") ? "msr" : !strcmp(t, "EXIT_IO") ? "port" : "gpa",
					    e->addr);
		if (out_dir && p < outlen) {
			p += (size_t)snprintf(out + p, outlen - p, " = 0x%" PRIx64, e->value);
			if (!strcmp(t, "EXIT_IO") && e->device && !strcmp(e->device, "uart") && e->size == 1 &&
			    e->value >= 0x20 && e->value < 0x7f && p < outlen)
				snprintf(out + p, outlen - p, " '%c'", (char)e->value);
		}
	} else if (!strcmp(t, "EXIT_LANDMARK")) {
		snprintf(out, outlen, "rip 0x%" PRIx64 " progress %" PRIu64, e->addr, e->value);
	} else if (!strcmp(t, "CLOCK") || !strcmp(t, "TIMER")) {
		snprintf(out, outlen, "%" PRIu64 " ns", e->value);
	} else if (!strcmp(t, "ENTROPY") || !strcmp(t, "CONSOLE_IN")) {
		snprintf(out, outlen, "%" PRIu64 " bytes", e->value);
	} else if (!strcmp(t, "IRQ")) {
		snprintf(out, outlen, "vector 0x%" PRIx64, e->addr);
	}
}

static void json_opt_str(const char *key, const char *v)
{
	printf(", \"%s\": ", key);
	if (v)
		insp_json_str(stdout, v, strlen(v));
	else
		fputs("null", stdout);
}

int insp_cmd_events(struct insp *in)
{
	const struct inspect_opts *o = in->o;
	uint64_t from, to;
	char cond[1024], sql[1400];
	int st = insp_open_files(in, true);
	if (st)
		return st;
	if (type_condition(o->type, cond, sizeof(cond)))
		return INSPECT_ERROR;
	if (exit_range(in, &from, &to))
		return INSPECT_ERROR;
	snprintf(sql, sizeof(sql),
		 "SELECT ordinal, exit, type, device, direction, size, addr, value, host_ns FROM events "
		 "WHERE exit >= ?1 AND exit <= ?2%s ORDER BY ordinal", cond);
	sqlite3_stmt *q = insp_prepare(in, sql);
	if (!q)
		return INSPECT_ERROR;
	sqlite3_bind_int64(q, 1, (sqlite3_int64)from);
	sqlite3_bind_int64(q, 2, to > INT64_MAX ? INT64_MAX : (sqlite3_int64)to);

	switch (o->format) {
	case INSPECT_FMT_TEXT:
		printf("%10s %10s %12s  %-13s %-11s %s\n", "ordinal", "exit", "host_s", "type", "device", "detail");
		break;
	case INSPECT_FMT_CSV:
		printf("ordinal,exit,host_ns,type,device,direction,size,addr,value\n");
		break;
	case INSPECT_FMT_JSON:
		printf("[");
		break;
	}
	int rc;
	uint64_t n = 0;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct ev_row e = {
			.ordinal = insp_col_u64(q, 0), .exit = insp_col_u64(q, 1),
			.type = (const char *)sqlite3_column_text(q, 2),
			.device = (const char *)sqlite3_column_text(q, 3),
			.dir = (const char *)sqlite3_column_text(q, 4),
			.has_size = sqlite3_column_type(q, 5) != SQLITE_NULL, .size = insp_col_u64(q, 5),
			.addr = insp_col_u64(q, 6), .value = insp_col_u64(q, 7), .host_ns = insp_col_u64(q, 8),
		};
		if (!e.type)
			e.type = "?";
		char detail[160];
		switch (o->format) {
		case INSPECT_FMT_TEXT:
			text_detail(&e, detail, sizeof(detail));
			printf("%10" PRIu64 " %10" PRIu64 " %12.6f  %-13s %-11s %s\n", e.ordinal, e.exit,
			       (double)e.host_ns / 1e9, e.type, e.device ? e.device : "-", detail);
			break;
		case INSPECT_FMT_CSV:
			printf("%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",", e.ordinal, e.exit, e.host_ns);
			insp_csv_str(stdout, e.type);
			putchar(',');
			insp_csv_str(stdout, e.device ? e.device : "");
			printf(",%s,", e.dir ? e.dir : "");
			if (e.has_size)
				printf("%" PRIu64, e.size);
			printf(",%" PRIu64 ",%" PRIu64 "\n", e.addr, e.value);
			break;
		case INSPECT_FMT_JSON:
			printf("%s\n  {\"ordinal\": %" PRIu64 ", \"exit\": %" PRIu64 ", \"host_ns\": %" PRIu64,
			       n ? "," : "", e.ordinal, e.exit, e.host_ns);
			json_opt_str("type", e.type);
			json_opt_str("device", e.device);
			json_opt_str("direction", e.dir);
			if (e.has_size)
				printf(", \"size\": %" PRIu64, e.size);
			else
				printf(", \"size\": null");
			printf(", \"addr\": %" PRIu64 ", \"value\": %" PRIu64 "}", e.addr, e.value);
			break;
		}
		n++;
		if (ferror(stdout))
			break;
	}
	if (o->format == INSPECT_FMT_JSON)
		printf("%s]\n", n ? "\n" : "");
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		insp_err("%s: reading events: %s", in->db_path, sqlite3_errmsg((sqlite3 *)ckpt_db_handle(in->db)));
		sqlite3_finalize(q);
		return INSPECT_ERROR;
	}
	sqlite3_finalize(q);
	return INSPECT_OK;
}

/* ---- serial ---- */

struct line {
	char *buf;
	size_t len, cap;
	uint64_t exit;		/* where the line started */
	bool open;
};

static int line_put(struct line *l, const char *s, size_t n)
{
	if (l->len + n > l->cap) {
		size_t cap = l->cap ? l->cap : 256;
		while (cap < l->len + n)
			cap *= 2;
		char *b = realloc(l->buf, cap);
		if (!b)
			return -1;
		l->buf = b;
		l->cap = cap;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	return 0;
}

/* A byte of a line, escaped so that the line prints as one line. */
static int line_byte(struct line *l, uint8_t c)
{
	char esc[8];
	if (c == '\r')
		return 0;
	if ((c < 0x20 && c != '\t') || c == 0x7f) {
		snprintf(esc, sizeof(esc), "\\x%02x", c);
		return line_put(l, esc, 4);
	}
	return line_put(l, (const char *)&c, 1);
}

int insp_cmd_serial(struct insp *in)
{
	const struct inspect_opts *o = in->o;
	uint64_t from, to;
	int st = insp_open_files(in, true);
	if (st)
		return st;
	if (exit_range(in, &from, &to))
		return INSPECT_ERROR;
	/* Lines: read from the start, so that line starts are known. */
	sqlite3_stmt *q = insp_prepare(in, o->raw ? "SELECT exit, data FROM serial WHERE exit >= ?1 AND exit <= ?2 "
						    "ORDER BY seq"
						  : "SELECT exit, data FROM serial ORDER BY seq");
	if (!q)
		return INSPECT_ERROR;
	if (o->raw) {
		sqlite3_bind_int64(q, 1, (sqlite3_int64)from);
		sqlite3_bind_int64(q, 2, to > INT64_MAX ? INT64_MAX : (sqlite3_int64)to);
	}
	struct line l = { 0 };
	int rc = SQLITE_DONE, status = INSPECT_OK;
	bool done = false;
	while (!done && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		uint64_t exit = insp_col_u64(q, 0);
		const uint8_t *d = sqlite3_column_blob(q, 1);
		size_t n = (size_t)sqlite3_column_bytes(q, 1);
		if (o->raw) {
			if (n && fwrite(d, 1, n, stdout) != n)
				break;
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			if (!l.open) {
				if (exit > to) {
					done = true;
					break;
				}
				l.open = true;
				l.exit = exit;
				l.len = 0;
			}
			if (d[i] == '\n') {
				if (l.exit >= from)
					printf("[exit %" PRIu64 "] %.*s\n", l.exit, (int)l.len, l.buf ? l.buf : "");
				l.open = false;
			} else if (line_byte(&l, d[i])) {
				insp_err("out of memory");
				status = INSPECT_ERROR;
				done = true;
				break;
			}
		}
		if (ferror(stdout))
			break;
	}
	if (!done && rc != SQLITE_ROW && rc != SQLITE_DONE) {
		insp_err("%s: reading serial output: %s", in->db_path, sqlite3_errmsg((sqlite3 *)ckpt_db_handle(in->db)));
		status = INSPECT_ERROR;
	} else if (!o->raw && l.open && l.exit >= from && status == INSPECT_OK) {
		/* The output ends without a newline. */
		printf("[exit %" PRIu64 "] %.*s\n", l.exit, (int)l.len, l.buf ? l.buf : "");
	}
	free(l.buf);
	sqlite3_finalize(q);
	return status;
}
