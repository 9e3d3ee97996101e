/* recording.c - see recording.h. */
#include "recording.h"
#include "common/errf.h"
#include "checkpoint/ckpt_db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

int recording_create(const char *rec, bool force, bool *created, char *out, size_t outlen,
		     char *err, size_t errlen)
{
	struct stat st;
	*created = false;
	if (mkdir(rec, 0777) == 0) {
		*created = true;
	} else {
		if (errno != EEXIST)
			return errf(err, errlen, "cannot create recording directory '%s': %s", rec, strerror(errno));
		if (stat(rec, &st) < 0 || !S_ISDIR(st.st_mode))
			return errf(err, errlen, "'%s' exists and is not a recording directory", rec);
		if (!force)
			return errf(err, errlen, "recording '%s' already exists: choose another name, or --force to overwrite it", rec);
	}
	if ((size_t)snprintf(out, outlen, "%s/%s", rec, RECORDING_TRACE) >= outlen)
		return errf(err, errlen, "recording path '%s' is too long", rec);
	return 0;
}

int recording_abandon(const char *rec, char *err, size_t errlen)
{
	static const char *const ours[] = { RECORDING_TRACE, CKPT_DB_FILE, CKPT_DB_FILE "-journal" };
	char path[4200];
	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", rec, ours[i]) >= sizeof(path))
			return errf(err, errlen, "recording path '%s' is too long", rec);
		if (unlink(path) < 0 && errno != ENOENT)
			return errf(err, errlen, "cannot remove '%s': %s", path, strerror(errno));
	}
	if (rmdir(rec) < 0)
		return errf(err, errlen, "cannot remove the directory '%s': %s", rec, strerror(errno));
	return 0;
}

int recording_trace_path(const char *rec, char *out, size_t outlen, char *err, size_t errlen)
{
	struct stat st;
	if (stat(rec, &st) < 0)
		return errf(err, errlen, "cannot open recording '%s': %s", rec, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		if ((size_t)snprintf(out, outlen, "%s/%s", rec, RECORDING_TRACE) >= outlen)
			return errf(err, errlen, "recording path '%s' is too long", rec);
		/* Say what the directory lacks rather than "REC/trace: open: No such file". */
		if (stat(out, &st) < 0 && errno == ENOENT)
			return errf(err, errlen, "'%s' is not a detvm recording: it has no '%s' file", rec,
				    RECORDING_TRACE);
	} else if ((size_t)snprintf(out, outlen, "%s", rec) >= outlen) {
		return errf(err, errlen, "recording path '%s' is too long", rec);
	}
	return 0;
}

/*
 * Holes (SEEK_HOLE) read as zeros and are hashed as zeros from a static
 * buffer without reading them, which on a sparse disk image saves reading
 * (and filling the page cache with) gigabytes of zeros at every record and
 * replay.  A file system without SEEK_DATA (EINVAL) is read whole.  The
 * hash is of the bytes either way (tests/unit/test_recording.c).
 */
#define ID_BUF (1u << 20)
static const uint8_t id_zeros[ID_BUF];

/*
 * Hash `len` bytes of `fd` read from `off`, or with `to_eof` all bytes up to
 * EOF; *done: how many were hashed.
 */
static int hash_data(int fd, const char *path, XXH3_state_t *s, uint8_t *buf, uint64_t off, uint64_t len,
		     bool to_eof, uint64_t *done, char *err, size_t errlen)
{
	*done = 0;
	while (to_eof || *done < len) {
		size_t want = to_eof || len - *done >= ID_BUF ? ID_BUF : (size_t)(len - *done);
		ssize_t n = pread(fd, buf, want, (off_t)(off + *done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errf(err, errlen, "reading '%s' at offset %llu: %s", path,
				    (unsigned long long)(off + *done), strerror(errno));
		if (n == 0 && to_eof)
			return 0;
		if (n == 0)
			return errf(err, errlen, "'%s' became shorter while it was hashed (at offset %llu)",
				    path, (unsigned long long)(off + *done));
		XXH3_128bits_update(s, buf, (size_t)n);
		*done += (uint64_t)n;
	}
	return 0;
}

static void hash_zeros(XXH3_state_t *s, uint64_t len)
{
	while (len) {
		size_t k = len < ID_BUF ? (size_t)len : ID_BUF;
		XXH3_128bits_update(s, id_zeros, k);
		len -= k;
	}
}

int file_identity(const char *path, uint64_t *size, struct trace_hash128 *hash,
		  char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		int rc = errf(err, errlen, "cannot stat '%s': %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	XXH3_state_t *s = XXH3_createState();
	uint8_t *buf = malloc(ID_BUF);
	if (!s || !buf) {
		close(fd);
		free(buf);
		XXH3_freeState(s);
		return errf(err, errlen, "out of memory hashing '%s'", path);
	}
	XXH3_128bits_reset(s);
	uint64_t total = 0, pos = 0, done;
	bool sparse = true;
	int rc = 0;
	if (!S_ISREG(st.st_mode)) {
		/* A block device has st_size 0: read it to EOF. */
		rc = hash_data(fd, path, s, buf, 0, 0, true, &total, err, errlen);
		pos = total;
	} else {
		total = (uint64_t)st.st_size;
	}
	while (!rc && pos < total) {
		/* [pos, data) is a hole, [data, end) data. */
		uint64_t data = pos, end = total;
		if (sparse) {
			off_t d = lseek(fd, (off_t)pos, SEEK_DATA);
			if (d < 0 && errno == ENXIO) {
				data = total;	/* a hole to the end */
			} else if (d < 0) {
				sparse = false;	/* EINVAL: no SEEK_DATA here; read it all */
			} else {
				data = (uint64_t)d < total ? (uint64_t)d : total;
				off_t h = lseek(fd, d, SEEK_HOLE);
				end = h < 0 || (uint64_t)h > total ? total : (uint64_t)h;
			}
		}
		hash_zeros(s, data - pos);
		rc = hash_data(fd, path, s, buf, data, end - data, false, &done, err, errlen);
		pos = end;
	}
	if (!rc) {
		XXH128_hash_t h = XXH3_128bits_digest(s);
		hash->lo = h.low64;
		hash->hi = h.high64;
		*size = total;
	}
	close(fd);
	free(buf);
	XXH3_freeState(s);
	return rc;
}
