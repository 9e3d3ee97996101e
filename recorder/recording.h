/*
 * recording.h - a recording on disk: a directory holding the trace and the
 * checkpoint database beside it.
 *
 *   REC/trace            the trace (trace-format/SPEC.md)
 *   REC/checkpoints.db   the checkpoint database (docs/checkpoints.md)
 *
 * An existing recording is never overwritten unless the caller says so.
 */
#ifndef DETVM_RECORDING_H
#define DETVM_RECORDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trace-format/trace.h"

#define RECORDING_TRACE "trace"

/*
 * Create the directory REC (or reuse it with force); path of the trace in
 * out; *created: the directory is new (so recording_abandon may remove it).
 */
int recording_create(const char *rec, bool force, bool *created, char *out, size_t outlen,
		     char *err, size_t errlen);
/*
 * Remove a recording that never started (its VM, trace or database could
 * not be set up), which recording_create made: the files the recorder
 * creates in it, then the directory, which fails if anything else is in
 * it.  So that a failed 'detvm record -o REC' leaves no REC behind that
 * the next one would refuse to overwrite.
 */
int recording_abandon(const char *rec, char *err, size_t errlen);
/* Path of the trace of an existing recording (REC may also name the trace file). */
int recording_trace_path(const char *rec, char *out, size_t outlen, char *err, size_t errlen);
/* Size and XXH3-128 of a file, streamed. */
int file_identity(const char *path, uint64_t *size, struct trace_hash128 *hash,
		  char *err, size_t errlen);

#endif
