/*
 * insp_sql.c - `inspect sql`: queries on REC/checkpoints.db, read-only.
 *
 * The file is opened with SQLITE_OPEN_READONLY and PRAGMA query_only=ON, so
 * that a write statement fails with SQLite's own "readonly" error and the
 * database (derived data the recorder wrote) cannot be changed by accident.
 * Output is the sqlite3 shell's default list mode plus a header line:
 * columns separated by '|', NULL as nothing; blobs are shown as x'HEX'.
 */
#include "inspector/insp_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *read_stdin(void)
{
	size_t cap = 4096, len = 0;
	char *b = malloc(cap);
	if (!b)
		return NULL;
	for (;;) {
		if (len + 1 >= cap) {
			char *n = realloc(b, cap * 2);
			if (!n) {
				free(b);
				return NULL;
			}
			b = n;
			cap *= 2;
		}
		size_t got = fread(b + len, 1, cap - 1 - len, stdin);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(stdin)) {
		free(b);
		return NULL;
	}
	b[len] = 0;
	return b;
}

static void print_value(sqlite3_stmt *st, int i)
{
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_NULL:
		break;
	case SQLITE_BLOB: {
		const uint8_t *p = sqlite3_column_blob(st, i);
		int n = sqlite3_column_bytes(st, i);
		fputs("x'", stdout);
		for (int k = 0; k < n; k++)
			printf("%02x", p[k]);
		fputc('\'', stdout);
		break;
	}
	default: {
		const unsigned char *t = sqlite3_column_text(st, i);
		if (t)
			fwrite(t, 1, (size_t)sqlite3_column_bytes(st, i), stdout);
		break;
	}
	}
}

/* Run every statement of text; INSPECT_OK or INSPECT_ERROR (message printed). */
static int run_all(sqlite3 *db, const char *path, const char *text)
{
	const char *tail = text;
	unsigned nstmt = 0;
	while (tail && *tail) {
		sqlite3_stmt *st = NULL;
		const char *start = tail;
		if (sqlite3_prepare_v2(db, start, -1, &st, &tail) != SQLITE_OK) {
			insp_err("%s: %s", path, sqlite3_errmsg(db));
			return INSPECT_ERROR;
		}
		if (!st)	/* whitespace or a comment */
			continue;
		nstmt++;
		int ncol = sqlite3_column_count(st);
		if (ncol > 0) {
			for (int i = 0; i < ncol; i++)
				printf("%s%s", i ? "|" : "", sqlite3_column_name(st, i));
			putchar('\n');
		}
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			for (int i = 0; i < ncol; i++) {
				if (i)
					putchar('|');
				print_value(st, i);
			}
			putchar('\n');
			if (ferror(stdout))
				break;
		}
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			insp_err("%s: %s", path, sqlite3_errmsg(db));
			sqlite3_finalize(st);
			return INSPECT_ERROR;
		}
		sqlite3_finalize(st);
		if (ferror(stdout))
			return INSPECT_ERROR;
	}
	if (!nstmt) {
		insp_err("no SQL statement given");
		return INSPECT_ERROR;
	}
	return INSPECT_OK;
}

int insp_cmd_sql(struct insp *in)
{
	const struct inspect_opts *o = in->o;
	struct stat stt;
	sqlite3 *db = NULL;
	char *text = NULL;
	int status;

	if (o->nargs > 1) {
		insp_err("give one QUERY argument (quote it), or none to read queries from stdin");
		return INSPECT_ERROR;
	}
	if (insp_paths(in))
		return INSPECT_ERROR;
	if (stat(in->db_path, &stt) < 0) {
		insp_err("%s: %s (the recording has no checkpoint database)", in->db_path, strerror(errno));
		return INSPECT_ERROR;
	}
	if (sqlite3_open_v2(in->db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		insp_err("%s: %s", in->db_path, db ? sqlite3_errmsg(db) : "cannot open");
		sqlite3_close(db);
		return INSPECT_ERROR;
	}
	char *msg = NULL;
	if (sqlite3_exec(db, "PRAGMA query_only=ON", NULL, NULL, &msg) != SQLITE_OK) {
		insp_err("%s: %s", in->db_path, msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		sqlite3_close(db);
		return INSPECT_ERROR;
	}
	sqlite3_busy_timeout(db, 5000);	/* a recorder may be writing it */
	if (o->nargs == 1) {
		status = run_all(db, in->db_path, o->args[0]);
	} else {
		text = read_stdin();
		if (!text) {
			insp_err("reading queries from stdin: %s", strerror(errno ? errno : ENOMEM));
			status = INSPECT_ERROR;
		} else {
			status = run_all(db, in->db_path, text);
		}
	}
	free(text);
	sqlite3_close(db);
	return status;
}
