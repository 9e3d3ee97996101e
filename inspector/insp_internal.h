/*
 * insp_internal.h - what the inspector's modules share (not for cli/):
 *
 *   insp_common.c   messages, opening the recording's files, the number of
 *                   exits, replaying to an exit (progress on a terminal),
 *                   the vCPU's registers, physical/virtual memory access
 *   insp_info.c     info, checkpoints
 *   insp_events.c   events, serial
 *   insp_state.c    regs, mem, diff
 *   insp_search.c   search
 *   insp_core.c     export-core
 *   insp_sql.c      sql
 */
#ifndef DETVM_INSP_INTERNAL_H
#define DETVM_INSP_INTERNAL_H

#include <linux/kvm.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "inspector/inspect.h"
#include "replayer/session.h"
#include "vmm/vcpu_state.h"

/* ---- messages ---- */

/* "detvm inspect COMMAND: " + message + newline, on stderr. */
void insp_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same with "warning: " after the prefix. */
void insp_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Set the command named in messages. */
void insp_set_command(const char *name);
/* Flush stdout; INSPECT_ERROR with a message if writing failed. */
int insp_finish_output(int status);

/* ---- one inspection: the recording's files, or a replay session ---- */

struct insp;
/* Called at every exit boundary of a replay (search). */
typedef void (*insp_step_fn)(struct insp *in, struct vm *vm);

struct insp {
	const struct inspect_opts *o;
	char trace_path[4200], db_path[4200];
	/* files (insp_open_files): header reader and database */
	struct trace_reader *r;
	struct ckpt_db *db;
	char db_error[1200];
	bool db_exists;			/* the file is there (db NULL: damaged or foreign) */
	/* machine (insp_open_session) */
	struct replay_session *s;
	/* replay bookkeeping */
	bool warned_no_db;
	bool want_dirty_log;		/* enable dirty logging on the replay VM */
	insp_step_fn step;
	void *step_ctx;
	uint64_t last_step_exit;	/* UINT64_MAX: none yet */
	int step_failed;		/* a step asked to stop: its status */
	/* progress on a terminal */
	bool tty;
	bool progress_shown;
	uint64_t progress_target;	/* 0: unknown */
	uint64_t t_start_ns, t_last_ns;
};

void insp_init(struct insp *in, const struct inspect_opts *o);
/* Fill in->trace_path and in->db_path from the recording's name. */
int insp_paths(struct insp *in);
void insp_close(struct insp *in);

/*
 * Open the trace's header and the database beside it (which must belong to
 * this trace).  need_db: a missing or damaged database is an error (its
 * message names the file); else in->db may stay NULL with in->db_error.
 */
int insp_open_files(struct insp *in, bool need_db);
/* Open a replay session (checks the kernel and disk identity). */
int insp_open_session(struct insp *in);

/*
 * Exits in the recording: the database's end_exits, or counted from the
 * trace.  *complete: the trace ends with END and its trailer (unknown when
 * the count came from the database: true if the database says so).
 */
int insp_total_exits(struct insp *in, uint64_t *exits, bool *complete);
/* INSPECT_ERROR with a message if exit is past the end of the recording. */
int insp_check_exit(struct insp *in, const char *opt, uint64_t exit);

/*
 * Replay: restore the last checkpoint at or before `restore_at` (unless
 * --from-start), then run to exactly exit `target` (stop; target >=
 * restore_at) or to the end of the recording (!stop).  Calls in->step at every exit boundary reached
 * (including the first and the last).  Returns an exit status, message
 * printed: INSPECT_OK, INSPECT_ERROR (the recording ends before target, a
 * damaged checkpoint, ...), INSPECT_DIVERGED, INSPECT_INTERRUPTED, or the
 * status a step asked for.
 */
int insp_replay(struct insp *in, uint64_t restore_at, bool stop, uint64_t target);
/* insp_replay(target, stop) and finish the exit's pending instruction. */
int insp_goto(struct insp *in, uint64_t target);

/* Registers (after vcpu_complete_pending(), which insp_goto() calls).  0, or -1 with a message. */
int insp_get_cpu(struct vm *vm, struct kvm_regs *regs, struct kvm_sregs *sregs,
		 char *err, size_t errlen);

/*
 * Host pointer for guest physical [gpa, gpa + len) when it lies in one RAM
 * block, without marking it dirty (gm_ptr does).  NULL with *bad = the
 * first address of the range that is not RAM.
 */
const uint8_t *insp_phys(const struct guest_mem *gm, uint64_t gpa, uint64_t len, uint64_t *bad);
/* "RAM 0x0-0x7ffffff" (and the block above 4 GiB) for messages. */
void insp_ram_desc(const struct guest_mem *gm, char *out, size_t outlen);

/* ---- database helpers ---- */

/* Prepare on the database; NULL with a message naming the file. */
sqlite3_stmt *insp_prepare(struct insp *in, const char *sql);
/* An unsigned column (SQLite integers are signed 64-bit). */
static inline uint64_t insp_col_u64(sqlite3_stmt *st, int i)
{
	return (uint64_t)sqlite3_column_int64(st, i);
}
/* A meta value, or -1 if absent. */
int insp_meta(struct insp *in, const char *key, char *out, size_t outlen);
int insp_meta_u64(struct insp *in, const char *key, uint64_t *v);

/* ---- parsing and formatting ---- */

/*
 * A number: decimal (a leading 0 does not make it octal) or 0x
 * hexadecimal; with suffix, optionally followed by K, M or G (x 1024^n).
 * 0, or -1 (not a number, or too large).
 */
int insp_parse_num(const char *s, bool suffix, uint64_t *out);

/* 1234567 -> "1.2 MB" style (bytes), into out. */
const char *insp_human_bytes(uint64_t n, char *out, size_t outlen);
/* JSON string literal of s (len bytes) to f. */
void insp_json_str(FILE *f, const char *s, size_t len);
/* CSV field (quoted when needed). */
void insp_csv_str(FILE *f, const char *s);

/* ---- the commands ---- */

int insp_cmd_info(struct insp *in);
int insp_cmd_checkpoints(struct insp *in);
int insp_cmd_events(struct insp *in);
int insp_cmd_serial(struct insp *in);
int insp_cmd_regs(struct insp *in);
int insp_cmd_mem(struct insp *in);
int insp_cmd_diff(struct insp *in);
int insp_cmd_search(struct insp *in);
int insp_cmd_export_core(struct insp *in);
int insp_cmd_sql(struct insp *in);

#endif
