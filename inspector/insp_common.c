/* insp_common.c - see insp_internal.h: what every inspector command uses. */
#include "inspector/insp_internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "recorder/recording.h"
#include "vmm/kvm.h"

#define PROGRESS_AFTER_NS	500000000ull	/* show progress after 0.5 s */
#define PROGRESS_EVERY_NS	100000000ull	/* then update it every 0.1 s */

/* ---- messages ---- */

static const char *cmd_name = "";

void insp_set_command(const char *name)
{
	cmd_name = name ? name : "";
}

static void vmsg(const char *kind, const char *fmt, va_list ap)
{
	fflush(stdout);
	fprintf(stderr, "detvm inspect%s%s: %s", cmd_name[0] ? " " : "", cmd_name, kind);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void insp_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg("", fmt, ap);
	va_end(ap);
}

void insp_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg("warning: ", fmt, ap);
	va_end(ap);
}

int insp_finish_output(int status)
{
	if (fflush(stdout) == EOF || ferror(stdout)) {
		if (status == INSPECT_OK)
			insp_err("writing the output: %s", strerror(errno ? errno : EIO));
		return status == INSPECT_OK ? INSPECT_ERROR : status;
	}
	return status;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- opening ---- */

void insp_init(struct insp *in, const struct inspect_opts *o)
{
	memset(in, 0, sizeof(*in));
	in->o = o;
	in->last_step_exit = UINT64_MAX;
	in->tty = isatty(STDERR_FILENO) == 1;
}

static bool db_owned(const struct insp *in)
{
	return in->db && !(in->s && in->db == in->s->db);
}

void insp_close(struct insp *in)
{
	if (db_owned(in))
		ckpt_db_close(in->db);
	in->db = NULL;
	if (in->r)
		trace_reader_close(in->r);
	in->r = NULL;
	if (in->s) {
		replay_session_close(in->s);
		free(in->s);
		in->s = NULL;
	}
}

/* REC/trace and REC/checkpoints.db (the database sits beside the trace). */
int insp_paths(struct insp *in)
{
	char err[600];
	if (recording_trace_path(in->o->rec, in->trace_path, sizeof(in->trace_path), err, sizeof(err))) {
		insp_err("%s", err);
		return -1;
	}
	snprintf(in->db_path, sizeof(in->db_path), "%s", in->trace_path);
	char *slash = strrchr(in->db_path, '/');
	if (slash)
		snprintf(slash + 1, sizeof(in->db_path) - (size_t)(slash + 1 - in->db_path), "%s", CKPT_DB_FILE);
	else
		snprintf(in->db_path, sizeof(in->db_path), "%s", CKPT_DB_FILE);
	return 0;
}

int insp_open_files(struct insp *in, bool need_db)
{
	char err[600];
	struct stat st;

	if (insp_paths(in))
		return INSPECT_ERROR;
	in->r = trace_reader_open(in->trace_path, err, sizeof(err));
	if (!in->r) {
		insp_err("%s", err);
		return INSPECT_ERROR;
	}
	if (stat(in->db_path, &st) < 0) {
		snprintf(in->db_error, sizeof(in->db_error), "%.600s: %s (the recording has no checkpoint database)",
			 in->db_path, strerror(errno));
	} else if ((in->db_exists = true, !(in->db = ckpt_db_open(in->db_path, err, sizeof(err))))) {
		/* ckpt_db_open's messages name the file. */
		if (strstr(err, in->db_path))
			snprintf(in->db_error, sizeof(in->db_error), "%s", err);
		else
			snprintf(in->db_error, sizeof(in->db_error), "%.400s: %s", in->db_path, err);
	} else {
		uint8_t hh[TRACE_HASH_SIZE];
		char hex[TRACE_HASH_HEX_SIZE];
		trace_reader_header_hash(in->r, hh);
		trace_hash_hex(hh, hex);
		if (strcmp(ckpt_db_meta(in->db)->trace_id, hex)) {
			snprintf(in->db_error, sizeof(in->db_error),
				 "%.500s: belongs to another recording (trace %.16s..., this trace %.16s...)",
				 in->db_path, ckpt_db_meta(in->db)->trace_id, hex);
			ckpt_db_close(in->db);
			in->db = NULL;
		}
	}
	if (need_db && !in->db) {
		insp_err("%s", in->db_error);
		return INSPECT_ERROR;
	}
	return INSPECT_OK;
}

int insp_open_session(struct insp *in)
{
	char err[1200];
	struct replay_session_opts so = {
		.kernel = in->o->kernel, .disk = in->o->disk, .serial_out = NULL, .quiet_warnings = true,
	};

	if (insp_paths(in))
		return INSPECT_ERROR;
	in->s = calloc(1, sizeof(*in->s));
	if (!in->s) {
		insp_err("out of memory");
		return INSPECT_ERROR;
	}
	if (replay_session_open(in->s, in->o->rec, &so, err, sizeof(err))) {
		insp_err("%s", err);
		free(in->s);
		in->s = NULL;
		return INSPECT_ERROR;
	}
	in->db = replay_session_db(in->s);
	if (!in->db) {
		const char *why = in->s->db_error;
		struct stat st;
		if (stat(in->s->db_path, &st) < 0)
			snprintf(in->db_error, sizeof(in->db_error), "%.600s: %s (the recording has no checkpoint database)",
				 in->s->db_path, strerror(errno));
		else if (strstr(why, in->s->db_path))
			snprintf(in->db_error, sizeof(in->db_error), "%s", why);
		else
			snprintf(in->db_error, sizeof(in->db_error), "%.300s: %s", in->s->db_path, why);
	}
	return INSPECT_OK;
}

/* ---- the recording's length ---- */

int insp_total_exits(struct insp *in, uint64_t *exits, bool *complete)
{
	char v[64], err[600];
	uint64_t n;

	if (in->db && insp_meta_u64(in, "end_exits", &n) == 0) {
		*exits = n;
		*complete = insp_meta(in, "trace_complete", v, sizeof(v)) == 0 && strcmp(v, "1") == 0;
		return 0;
	}
	/* Count from the trace (decompressing is fast; nothing is replayed). */
	struct trace_reader *r = trace_reader_open(in->trace_path[0] ? in->trace_path : in->s->trace_path,
						   err, sizeof(err));
	if (!r)
		return -1;
	struct trace_event ev;
	int rc;
	uint64_t last = 0;
	while ((rc = trace_reader_next(r, &ev)) == 1)
		last = trace_reader_exit_ordinal(r);
	*exits = last;
	*complete = rc == 0 && trace_reader_complete(r);
	trace_reader_close(r);
	return rc < 0 ? -1 : 0;
}

int insp_check_exit(struct insp *in, const char *opt, uint64_t exit)
{
	uint64_t total;
	bool complete;

	/* A damaged trace: let the replay say where. */
	if (insp_total_exits(in, &total, &complete))
		return INSPECT_OK;
	if (exit > total) {
		insp_err("%s %" PRIu64 ": past the end of the recording, which has %" PRIu64
			 " exits (valid: 0..%" PRIu64 ")%s", opt, exit, total, total,
			 complete ? "" : "; its trace is cut short");
		return INSPECT_ERROR;
	}
	return INSPECT_OK;
}

/* ---- replaying ---- */

static struct insp *active;	/* the replay in progress (one at a time) */

static void progress(struct insp *in, uint64_t exits, bool final)
{
	if (!in->tty)
		return;
	if (final) {
		if (in->progress_shown)
			fputs("\r\033[K", stderr);
		in->progress_shown = false;
		return;
	}
	/* A clock read (vDSO) is noise next to a KVM_RUN. */
	uint64_t t = now_ns();
	if (t - in->t_start_ns < PROGRESS_AFTER_NS || (in->progress_shown && t - in->t_last_ns < PROGRESS_EVERY_NS))
		return;
	in->t_last_ns = t;
	in->progress_shown = true;
	if (in->progress_target)
		fprintf(stderr, "\rdetvm inspect: replaying: exit %" PRIu64 " of %" PRIu64 " (%.1f s)\033[K",
			exits, in->progress_target, (double)(t - in->t_start_ns) / 1e9);
	else
		fprintf(stderr, "\rdetvm inspect: replaying: exit %" PRIu64 " (%.1f s)\033[K", exits,
			(double)(t - in->t_start_ns) / 1e9);
}

static void do_step(struct insp *in, struct vm *vm)
{
	in->last_step_exit = vm->stats.exits;
	if (in->step && !in->step_failed)
		in->step(in, vm);
}

/* vm_hooks.before_run: the replayer itself does not use it. */
static void hook_before_run(void *ctx, struct vm *vm)
{
	struct insp *in = active;
	(void)ctx;
	if (!in)
		return;
	if (vm->stats.exits != in->last_step_exit) {
		do_step(in, vm);
		if (in->step_failed) {
			vm_set_stop(vm, VM_STOP_MONITOR_ERROR, "stopped by the inspector");
			return;
		}
	}
	progress(in, vm->stats.exits, false);
}

static int stop_status(const struct vm *vm, const char *msg)
{
	/* First: a Ctrl-C can also cut a landmark run short, which the
	 * replayer then reports as a divergence. */
	if (vm->stop == VM_STOP_SIGNAL || vm_stop_requested)
		return INSPECT_INTERRUPTED;
	if (vm->stop == VM_STOP_DIVERGENCE || strncmp(msg, "divergence", 10) == 0)
		return INSPECT_DIVERGED;
	return INSPECT_ERROR;
}

int insp_replay(struct insp *in, uint64_t restore_at, bool stop, uint64_t target)
{
	struct replay_session *s = in->s;
	char err[1200], msg[800], e2[600];
	struct ckpt_info ci;
	bool will_restore = false;

	struct ckpt_db *db = replay_session_db(s);
	if (!in->o->from_start && db)
		will_restore = ckpt_db_find(db, restore_at, &ci, e2, sizeof(e2)) == 0 && ci.exit > 0;
	if (!db && !in->o->from_start && !in->warned_no_db) {
		insp_warn("%s; replaying from the start", in->db_error);
		in->warned_no_db = true;
	}
	in->last_step_exit = UINT64_MAX;
	in->step_failed = 0;
	in->progress_shown = false;
	in->t_start_ns = now_ns();
	s->cfg.dirty_log = in->want_dirty_log;
	if (replay_session_start(s, restore_at, !in->o->from_start, err, sizeof(err))) {
		if (will_restore) {
			bool named = strstr(err, s->db_path) != NULL;
			insp_err("%s%srestoring checkpoint %" PRId64 " (exit %" PRIu64 "): %s (--from-start replays "
				 "without the checkpoints)", named ? "" : s->db_path, named ? "" : ": ", ci.id, ci.exit, err);
		} else {
			insp_err("%s", err);
		}
		return INSPECT_ERROR;
	}
	s->vm.stop_at_set = stop;
	s->vm.stop_at_exit = target;
	if (stop && s->vm.stats.exits > target) {
		insp_err("internal error: checkpoint %" PRId64 " is past exit %" PRIu64, s->restored, target);
		return INSPECT_ERROR;
	}
	if (stop)
		in->progress_target = target;
	s->vm.hooks.before_run = hook_before_run;
	active = in;
	int run_rc = replay_session_run(s, !in->o->from_start, err, sizeof(err));
	active = NULL;
	progress(in, 0, true);
	if (in->step_failed)
		return in->step_failed;
	if (run_rc) {
		insp_err("%s", err);
		return INSPECT_ERROR;
	}
	if (!(stop && s->vm.stop == VM_STOP_REACHED && s->vm.stats.exits == target)) {
		int rc = replayer_finish(&s->rp, msg, sizeof(msg));
		if (rc) {
			insp_err("%s", msg);
			return stop_status(&s->vm, msg);
		}
		if (stop && s->vm.stats.exits != target) {
			insp_err("exit %" PRIu64 " is past the end of the recording: its replay ends at exit %" PRIu64
				 " (%s)", target, s->vm.stats.exits, msg);
			return INSPECT_ERROR;
		}
	}
	/* The last state reached: after the final exit of the range. */
	if (in->step && s->vm.stats.exits != in->last_step_exit) {
		do_step(in, &s->vm);
		if (in->step_failed)
			return in->step_failed;
	}
	return INSPECT_OK;
}

int insp_goto(struct insp *in, uint64_t target)
{
	char err[600];
	int st = insp_replay(in, target, true, target);
	if (st)
		return st;
	if (vcpu_complete_pending(&in->s->vm.kvm, err, sizeof(err))) {
		insp_err("at exit %" PRIu64 ": %s", target, err);
		return INSPECT_ERROR;
	}
	return INSPECT_OK;
}

/* ---- the vCPU and memory ---- */

int insp_get_cpu(struct vm *vm, struct kvm_regs *regs, struct kvm_sregs *sregs, char *err, size_t errlen)
{
	if (regs && ioctl(vm->kvm.vcpu_fd, KVM_GET_REGS, regs) < 0) {
		snprintf(err, errlen, "KVM_GET_REGS: %s", strerror(errno));
		return -1;
	}
	if (sregs && ioctl(vm->kvm.vcpu_fd, KVM_GET_SREGS, sregs) < 0) {
		snprintf(err, errlen, "KVM_GET_SREGS: %s", strerror(errno));
		return -1;
	}
	return 0;
}

const uint8_t *insp_phys(const struct guest_mem *gm, uint64_t gpa, uint64_t len, uint64_t *bad)
{
	if (gpa < gm->low_size) {
		if (len <= gm->low_size - gpa)
			return gm->host + gpa;
		*bad = gm->low_size;
		return NULL;
	}
	if (gpa >= GM_HIGH_START && gpa - GM_HIGH_START < gm->high_size) {
		uint64_t off = gpa - GM_HIGH_START;
		if (len <= gm->high_size - off)
			return gm->host + gm->low_size + off;
		*bad = GM_HIGH_START + gm->high_size;
		return NULL;
	}
	*bad = gpa;
	return NULL;
}

void insp_ram_desc(const struct guest_mem *gm, char *out, size_t outlen)
{
	if (gm->high_size)
		snprintf(out, outlen, "RAM is 0x0-0x%" PRIx64 " and 0x%" PRIx64 "-0x%" PRIx64, gm->low_size - 1,
			 (uint64_t)GM_HIGH_START, (uint64_t)GM_HIGH_START + gm->high_size - 1);
	else
		snprintf(out, outlen, "RAM is 0x0-0x%" PRIx64, gm->low_size - 1);
}

/* ---- database ---- */

sqlite3_stmt *insp_prepare(struct insp *in, const char *sql)
{
	sqlite3 *h = (sqlite3 *)ckpt_db_handle(in->db);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK) {
		insp_err("%s: %s", in->db_path[0] ? in->db_path : CKPT_DB_FILE, sqlite3_errmsg(h));
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

int insp_meta(struct insp *in, const char *key, char *out, size_t outlen)
{
	if (!in->db)
		return -1;
	return ckpt_db_get_meta(in->db, key, out, outlen);
}

int insp_meta_u64(struct insp *in, const char *key, uint64_t *v)
{
	char buf[64], *end;
	if (insp_meta(in, key, buf, sizeof(buf)))
		return -1;
	errno = 0;
	unsigned long long x = strtoull(buf, &end, 10);
	if (errno || end == buf || *end || buf[0] == '-')
		return -1;
	*v = x;
	return 0;
}

/* ---- parsing and formatting ---- */

int insp_parse_num(const char *s, bool suffix, uint64_t *out)
{
	char *end;
	int base = 10;
	const char *p = s;

	if (!s || !*s || !isdigit((unsigned char)*s))
		return -1;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
		if (!isxdigit((unsigned char)*p))
			return -1;
	}
	errno = 0;
	unsigned long long v = strtoull(p, &end, base);
	if (errno)
		return -1;
	unsigned shift = 0;
	if (suffix && *end) {
		switch (*end) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		default: return -1;
		}
		end++;
		if (*end == 'i' && end[1] == 'B')
			end += 2;
		else if (*end == 'B')
			end++;
	}
	if (*end)
		return -1;
	if (shift && v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

const char *insp_human_bytes(uint64_t n, char *out, size_t outlen)
{
	static const char *unit[] = { "KiB", "MiB", "GiB", "TiB" };
	if (n < 1024) {
		snprintf(out, outlen, "%" PRIu64 " B", n);
		return out;
	}
	double v = (double)n / 1024;
	unsigned u = 0;
	while (v >= 1024 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		v /= 1024;
		u++;
	}
	snprintf(out, outlen, "%.1f %s", v, unit[u]);
	return out;
}

void insp_json_str(FILE *f, const char *s, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\u%04x", c); /* bytes as code points: valid JSON either way */
		else
			fputc(c, f);
	}
	fputc('"', f);
}

void insp_csv_str(FILE *f, const char *s)
{
	if (!strpbrk(s, ",\"\n\r")) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

/* ---- dispatch ---- */

static const struct {
	const char *name;
	int (*fn)(struct insp *in);
} commands[] = {
	{ "info", insp_cmd_info },
	{ "checkpoints", insp_cmd_checkpoints },
	{ "events", insp_cmd_events },
	{ "serial", insp_cmd_serial },
	{ "regs", insp_cmd_regs },
	{ "mem", insp_cmd_mem },
	{ "diff", insp_cmd_diff },
	{ "search", insp_cmd_search },
	{ "export-core", insp_cmd_export_core },
	{ "sql", insp_cmd_sql },
};

int inspect_run(const struct inspect_opts *o)
{
	struct insp in;
	int status = INSPECT_ERROR;

	insp_set_command(o->command);
	insp_init(&in, o);
	size_t i;
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(o->command, commands[i].name) == 0) {
			status = commands[i].fn(&in);
			break;
		}
	if (i == sizeof(commands) / sizeof(commands[0]))
		insp_err("unknown command");
	insp_close(&in);
	return insp_finish_output(status);
}
