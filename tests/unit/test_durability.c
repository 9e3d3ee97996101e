/*
 * test_durability.c - what is fsynced, and when (common/fsync_dir.h): a
 * new file's name is made durable by its creator as soon as it exists (an
 * fsync of its directory), its contents at its end (an fsync of the file).
 *   - fsync_parent_dir() syncs the directory holding a path, "." for a
 *     bare name, and says why it cannot;
 *   - the trace writer syncs its directory in prepare, before any frame,
 *     and at close only the file;
 *   - the checkpoint database syncs its directory once its writer thread
 *     has made the schema (also when the file is replaced at begin, with
 *     force), and the file at finish.
 * The fsyncs are seen through test_fsync_log.h.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "tests/unit/test_files.h"
#include "tests/unit/test_fsync_log.h"

#include "checkpoint/ckpt_db.h"
#include "common/fsync_dir.h"
#include "trace-format/trace.h"

static char real_dir[256];

static int setup(void **state)
{
	(void)state;
	char rp[PATH_MAX];
	if (test_dir_make("test_durability") || !realpath(test_dir, rp) || strlen(rp) >= sizeof(real_dir))
		return -1;
	memcpy(real_dir, rp, strlen(rp) + 1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return test_dir_remove();
}

/* real_dir/name, as /proc/self/fd names the file. */
static void rpath(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", real_dir, name);
}

static void test_fsync_parent_dir(void **state)
{
	char p[PATH_MAX], cwd[PATH_MAX], sub[PATH_MAX];

	(void)state;
	fsync_log_reset();
	tpath(p, sizeof(p), "some-file");	/* need not exist */
	assert_int_equal(fsync_parent_dir(p), 0);
	assert_int_equal(fsync_log_count(real_dir), 1);

	/* A bare name: the working directory. */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(test_dir), 0);
	assert_int_equal(fsync_parent_dir("bare"), 0);
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(fsync_log_count(real_dir), 2);

	/* A directory that is not there, or is a file: -1 with errno. */
	tpath(sub, sizeof(sub), "no-such-dir/f");
	errno = 0;
	assert_int_equal(fsync_parent_dir(sub), -1);
	assert_int_equal(errno, ENOENT);
	tpath(p, sizeof(p), "plain");
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fclose(f);
	tpath(sub, sizeof(sub), "plain/f");
	errno = 0;
	assert_int_equal(fsync_parent_dir(sub), -1);
	assert_int_equal(errno, ENOTDIR);
	unlink(p);
}

static struct trace_header *mkheader(void)
{
	struct trace_header *h = trace_header_new();
	struct kvm_cpuid_entry2 cpuid[1] = { { .function = 0 } };
	struct trace_hash128 kh = { 1, 2 };

	assert_non_null(h);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_DETVM_VERSION, "test"), 0);
	assert_int_equal(trace_header_add_u64(h, TRACE_TAG_MEM_SIZE, 32 << 20), 0);
	assert_int_equal(trace_header_add(h, TRACE_TAG_CPUID, cpuid, sizeof(cpuid)), 0);
	assert_int_equal(trace_header_add_xsave(h, 576, 3), 0);
	assert_int_equal(trace_header_add_str(h, TRACE_TAG_CMDLINE, ""), 0);
	assert_int_equal(trace_header_add_file_id(h, TRACE_TAG_KERNEL_ID, 123, &kh, "k.elf"), 0);
	return h;
}

static void trace_names(bool async)
{
	struct trace_writer_opts o = { .async = async };
	struct trace_event end = { .type = TRACE_EV_END };
	struct trace_event ev = { .type = TRACE_EV_EXIT_IO,
				  .io = { .flags = TRACE_IOF_SIZE(0), .port = 0x71, .count = 1 } };
	struct trace_header *h = mkheader();
	char p[PATH_MAX], rp[PATH_MAX], err[512];

	tpath(p, sizeof(p), "trace");
	rpath(rp, sizeof(rp), "trace");
	unlink(p);
	fsync_log_reset();
	struct trace_writer *w = trace_writer_prepare(p, &o, err, sizeof(err));
	if (!w)
		fail_msg("%s", err);
	/* The name is durable before the header. */
	assert_int_equal(fsync_log_count(real_dir), 1);
	assert_int_equal(fsync_log_count(rp), 0);
	assert_int_equal(trace_writer_begin(w, h, err, sizeof(err)), 0);
	assert_int_equal(trace_writer_append(w, &ev), 0);
	assert_int_equal(trace_writer_close(w, &end), 0);
	trace_writer_free(w);
	/* Close: the file once, the directory not again. */
	assert_int_equal(fsync_log_count(rp), 1);
	assert_int_equal(fsync_log_count(real_dir), 1);

	/* With force, an existing file's directory is synced too (an earlier
	 * writer may have died before it could). */
	o.force = true;
	fsync_log_reset();
	w = trace_writer_open(p, h, &o, err, sizeof(err));
	if (!w)
		fail_msg("%s", err);
	assert_int_equal(fsync_log_count(real_dir), 1);
	assert_int_equal(trace_writer_close(w, &end), 0);
	trace_writer_free(w);
	assert_int_equal(fsync_log_count(rp), 1);
	assert_int_equal(fsync_log_count(real_dir), 1);
	trace_header_free(h);
	unlink(p);
}

static void test_trace_sync(void **state)
{
	(void)state;
	trace_names(false);
}

static void test_trace_async(void **state)
{
	(void)state;
	trace_names(true);
}

static void test_ckpt_db(void **state)
{
	struct ckpt_meta m = { .mem_size = 1 << 20, .start_unix_ns = 1 };
	char p[PATH_MAX], rp[PATH_MAX], err[512];

	(void)state;
	memset(m.trace_id, 'a', 64);
	tpath(p, sizeof(p), "ck.db");
	rpath(rp, sizeof(rp), "ck.db");
	unlink(p);
	for (int force = 0; force <= 1; force++) {
		/* force: the file exists and is replaced at begin, after
		 * prepare; its new name must be made durable all the same. */
		fsync_log_reset();
		struct ckpt_db *db = ckpt_db_prepare(p, force, err, sizeof(err));
		if (!db)
			fail_msg("%s", err);
		assert_int_equal(ckpt_db_begin(db, &m, err, sizeof(err)), 0);
		/* The schema is made first; a sync waits for it. */
		ckpt_db_put_meta(db, "k", "v");
		assert_int_equal(ckpt_db_sync(db), 0);
		assert_int_equal(fsync_log_count(real_dir), 1);
		assert_int_equal(fsync_log_count(rp), 0);
		assert_int_equal(ckpt_db_finish(db, err, sizeof(err)), 0);
		assert_int_equal(fsync_log_count(rp), 1);
		assert_int_equal(fsync_log_count(real_dir), 1);
	}
	unlink(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fsync_parent_dir),
		cmocka_unit_test(test_trace_sync),
		cmocka_unit_test(test_trace_async),
		cmocka_unit_test(test_ckpt_db),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
