/* recording.c - see recording.h. */
#include "recording.h"
#include "common/errf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

int recording_create(const char *rec, bool force, char *out, size_t outlen,
		     char *err, size_t errlen)
{
	struct stat st;
	if (mkdir(rec, 0777) < 0) {
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

int recording_trace_path(const char *rec, char *out, size_t outlen, char *err, size_t errlen)
{
	struct stat st;
	if (stat(rec, &st) < 0)
		return errf(err, errlen, "cannot open recording '%s': %s", rec, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		if ((size_t)snprintf(out, outlen, "%s/%s", rec, RECORDING_TRACE) >= outlen)
			return errf(err, errlen, "recording path '%s' is too long", rec);
	} else if ((size_t)snprintf(out, outlen, "%s", rec) >= outlen) {
		return errf(err, errlen, "recording path '%s' is too long", rec);
	}
	return 0;
}

int file_identity(const char *path, uint64_t *size, struct trace_hash128 *hash,
		  char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
	XXH3_state_t *s = XXH3_createState();
	size_t bufsz = 1 << 20;
	uint8_t *buf = malloc(bufsz);
	if (!s || !buf) {
		close(fd);
		free(buf);
		XXH3_freeState(s);
		return errf(err, errlen, "out of memory hashing '%s'", path);
	}
	XXH3_128bits_reset(s);
	uint64_t total = 0;
	int rc = 0;
	for (;;) {
		ssize_t n = read(fd, buf, bufsz);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = errf(err, errlen, "reading '%s' at offset %llu: %s", path,
				  (unsigned long long)total, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		XXH3_128bits_update(s, buf, (size_t)n);
		total += (uint64_t)n;
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
