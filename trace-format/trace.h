/*
 * trace.h - the detvm trace file: header, events, writer, reader, verify.
 *
 * A trace holds every nondeterministic input of one recorded guest run.  It
 * is a file header (magic, version, TLV fields describing the machine),
 * then frames (a fixed header and a zstd-compressed run of whole events),
 * chained by SHA-256 so that no frame can be altered, removed or reordered
 * unnoticed, then an END record and a fixed trailer that tells a complete
 * recording from one whose recorder was killed.  trace-format/SPEC.md is the
 * byte-exact description; this header is the C interface to it.
 *
 * Error reporting: functions that take (err, errlen) write a one-line
 * message there; objects (writer, reader) keep their last message, returned
 * by trace_writer_error()/trace_reader_error().  Messages name the file and,
 * where there is one, the frame sequence number and file offset.
 */
#ifndef DETVM_TRACE_H
#define DETVM_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

/* ---- format constants (SPEC.md, "File header" and "Frames") ---- */

#define TRACE_FORMAT_MAJOR	1
#define TRACE_FORMAT_MINOR	2	/* 1.1: PACKED_FIELDS, MEM_DIGEST; 1.2: MSR_POLICY */

#define TRACE_HASH_SIZE		32	/* SHA-256: the chain */
#define TRACE_HASH_HEX_SIZE	65	/* 64 hex digits + NUL */
#define TRACE_ENTROPY_MAX	65536	/* bytes in one ENTROPY event */
#define TRACE_CONSOLE_MAX	4096	/* bytes in one CONSOLE_IN event */

/* ---- header fields (TLV) ---- */

/* Bit 15 of a tag: a reader that does not know the tag must refuse. */
#define TRACE_TAG_CRITICAL	0x8000u

enum trace_tag {
	TRACE_TAG_DETVM_VERSION		= 0x8001, /* string */
	TRACE_TAG_MEM_SIZE		= 0x8002, /* u64, bytes of guest RAM */
	TRACE_TAG_CPUID			= 0x8003, /* kvm_cpuid_entry2[] */
	TRACE_TAG_MSRS			= 0x8004, /* struct trace_msr[] */
	TRACE_TAG_XSAVE			= 0x8005, /* u32 size, u64 XCR0 */
	TRACE_TAG_CMDLINE		= 0x8006, /* string */
	TRACE_TAG_KERNEL_ID		= 0x8007, /* file id */
	TRACE_TAG_DISK_ID		= 0x8008, /* file id; absent: no disk */
	TRACE_TAG_BOOT_EPOCH_NS		= 0x8009, /* u64, Unix ns at boot */
	TRACE_TAG_HOST			= 0x000a, /* string, optional */
	TRACE_TAG_PROGRESS_COUNTER	= 0x800b, /* string, enumerated */
	TRACE_TAG_LANDMARK_BOUND_NS	= 0x800c, /* u64 */
	TRACE_TAG_DIGEST_INTERVAL	= 0x800d, /* u64, exits */
	TRACE_TAG_BOOT_MODE		= 0x800e, /* string, enumerated */
	TRACE_TAG_SERIAL_IN		= 0x800f, /* string */
	/*
	 * u64, size of every frame header in the file; absent: 96.  1.0 and
	 * 1.1 writers never write it; it lets a later minor grow frame headers.
	 */
	TRACE_TAG_FRAME_HEADER_SIZE	= 0x8010,
	/*
	 * Format 1.1: u32 raw length + one zstd frame holding more fields.
	 * Never a field of a struct trace_header: the encoder packs fields
	 * into it and the decoder unpacks them, so every accessor below sees
	 * packed and plain fields alike.  trace_header_add() refuses it.
	 */
	TRACE_TAG_PACKED_FIELDS		= 0x8011,
	/*
	 * Format 1.1: string, enumerated: the memory digest of DIGEST and END
	 * events (vmm/mem_digest.h).  Absent: TRACE_MEM_DIGEST_FULL.
	 */
	TRACE_TAG_MEM_DIGEST		= 0x8012,
	/*
	 * String, enumerated: which MSR accesses the monitor answered itself
	 * (each an EXIT_MSR; vmm/msr.h).  Absent: TRACE_MSR_POLICY_1.
	 */
	TRACE_TAG_MSR_POLICY		= 0x8013,
};

/* Values of the enumerated string fields. */
#define TRACE_PROGRESS_INSN_EMULATION	"insn_emulation"
#define TRACE_PROGRESS_PMU_BRANCHES	"pmu-branches"
#define TRACE_PROGRESS_NONE		"none"
#define TRACE_BOOT_ELF64		"elf64"
#define TRACE_BOOT_MULTIBOOT		"multiboot"
#define TRACE_MEM_DIGEST_FULL		"xxh3-128"
#define TRACE_MEM_DIGEST_SPARSE		"xxh3-128-sparse"
#define TRACE_MSR_POLICY_1		"detvm-1"
#define TRACE_MSR_POLICY_2		"detvm-2"

/* XXH3-128 as stored: low 64 bits, then high 64 bits, each little-endian. */
struct trace_hash128 {
	uint64_t lo;
	uint64_t hi;
};

/* One MSRS entry; the file layout is exactly this struct, little-endian. */
struct trace_msr {
	uint32_t index;
	uint32_t pad;	/* 0 */
	uint64_t value;
};

/* KERNEL_ID / DISK_ID, decoded.  path points into the header. */
struct trace_file_id {
	uint64_t size;
	struct trace_hash128 hash;
	const char *path;
};

struct trace_header;

struct trace_header *trace_header_new(void);
void trace_header_free(struct trace_header *h);

/*
 * Add a field.  -1 with errno EEXIST (tag already present: a tag appears at
 * most once), EINVAL (len too large, too many fields, or PACKED_FIELDS, which
 * only the encoding uses) or ENOMEM.  Fields are kept in the order they were
 * added; the writer writes DETVM_VERSION first and packs the others
 * (SPEC.md 4.2), so a header read back lists them in that order.
 */
int trace_header_add(struct trace_header *h, uint16_t tag, const void *data,
		     size_t len);
/*
 * The value of a field, or NULL if absent.  The returned bytes are followed
 * by a NUL that is not part of the value (so string fields can be used
 * directly); they live as long as the header.
 */
const void *trace_header_get(const struct trace_header *h, uint16_t tag,
			     size_t *len);

int trace_header_add_u64(struct trace_header *h, uint16_t tag, uint64_t v);
/* 0, or -1 if absent or not 8 bytes long. */
int trace_header_get_u64(const struct trace_header *h, uint16_t tag,
			 uint64_t *v);
int trace_header_add_str(struct trace_header *h, uint16_t tag, const char *s);
/* NULL if absent. */
const char *trace_header_get_str(const struct trace_header *h, uint16_t tag);
int trace_header_add_file_id(struct trace_header *h, uint16_t tag,
			     uint64_t size, const struct trace_hash128 *hash,
			     const char *path);
int trace_header_get_file_id(const struct trace_header *h, uint16_t tag,
			     struct trace_file_id *id);
int trace_header_add_xsave(struct trace_header *h, uint32_t size,
			   uint64_t xcr0);
int trace_header_get_xsave(const struct trace_header *h, uint32_t *size,
			   uint64_t *xcr0);
/* Arrays; *count entries, NULL if absent. */
const struct kvm_cpuid_entry2 *
trace_header_get_cpuid(const struct trace_header *h, size_t *count);
const struct trace_msr *trace_header_get_msrs(const struct trace_header *h,
					      size_t *count);

/*
 * Iteration in file order (for dumping); index < trace_header_count().  A
 * PACKED_FIELDS entry is not listed: its fields are, in its place.
 */
size_t trace_header_count(const struct trace_header *h);
const void *trace_header_at(const struct trace_header *h, size_t i,
			    uint16_t *tag, size_t *len);
/* Format version of a header read from a file (writers write 1.1). */
void trace_header_version(const struct trace_header *h, uint16_t *major,
			  uint16_t *minor);
/* "MEM_SIZE", ... or NULL for an unknown tag. */
const char *trace_tag_name(uint16_t tag);

/*
 * Shape of every known field (lengths, enumerated values, no NUL inside
 * strings).  The writer and the reader both call it.
 */
int trace_header_validate(const struct trace_header *h, char *err,
			  size_t errlen);
/*
 * Every field a replay needs is present (all known tags but DISK_ID and
 * HOST).  The replayer calls it; the reader does not, so that tools can
 * open partial or test traces.
 */
int trace_header_check_required(const struct trace_header *h, char *err,
				size_t errlen);

/* ---- events ---- */

/* Types 0x01..0x0f are exits: each one advances the exit ordinal. */
enum trace_event_type {
	TRACE_EV_EXIT_IO	= 0x01,
	TRACE_EV_EXIT_MMIO	= 0x02,
	TRACE_EV_EXIT_HLT	= 0x03,
	TRACE_EV_EXIT_MSR	= 0x04,
	TRACE_EV_EXIT_LANDMARK	= 0x05,
	TRACE_EV_CLOCK		= 0x10,
	TRACE_EV_TIMER		= 0x11,
	TRACE_EV_ENTROPY	= 0x12,
	TRACE_EV_CONSOLE_IN	= 0x13,
	TRACE_EV_IRQ		= 0x14,
	TRACE_EV_DIGEST		= 0x15,
	TRACE_EV_END		= 0x1f,
};

static inline bool trace_event_is_exit(uint8_t type)
{
	return type >= 0x01 && type <= 0x0f;
}

/* EXIT_IO / EXIT_MMIO / EXIT_MSR flags. */
#define TRACE_IOF_WRITE		0x01
#define TRACE_IOF_SIZE(log2)	((uint8_t)((log2) << 1))	/* 1 << log2 bytes */
#define TRACE_IOF_SIZE_LOG2(f)	(((f) >> 1) & 7)
#define TRACE_IOF_STRING	0x10	/* EXIT_IO only: ins/outs */

/* END reasons (informational: any value is accepted). */
enum trace_end_reason {
	TRACE_END_GUEST_EXIT	= 0,	/* the guest asked to stop, status */
	TRACE_END_SHUTDOWN	= 1,	/* triple fault / KVM_EXIT_SHUTDOWN */
	TRACE_END_USER_STOP	= 2,	/* the user stopped the recording */
	TRACE_END_LIMIT		= 3,	/* a configured limit was reached */
	TRACE_END_ERROR		= 4,	/* the recorder failed */
};

struct trace_event {
	uint8_t type;
	union {
		struct {
			uint8_t flags;
			uint16_t port;
			uint32_t count;		/* rep count; 1 if not string */
			uint64_t value;		/* non-string writes only */
		} io;
		struct {
			uint8_t flags;
			uint64_t gpa;
			uint64_t value;		/* writes only */
		} mmio;
		struct {
			uint8_t flags;
			uint32_t index;
			uint64_t value;		/* writes only */
		} msr;
		struct {
			uint64_t progress;	/* progress counter since the vCPU was created */
			uint64_t rip;
			uint64_t regs_hash;
		} landmark;
		struct {
			uint64_t ns;		/* absolute virtual ns */
		} time;				/* CLOCK and TIMER */
		struct {
			uint32_t len;
			/* reader: valid until the next trace_reader_next() */
			const uint8_t *data;
		} bytes;			/* ENTROPY and CONSOLE_IN */
		struct {
			uint8_t vector;
		} irq;
		struct {
			uint64_t regs_hash;
			struct trace_hash128 mem_hash;
		} digest;
		struct {
			uint8_t reason;
			uint64_t status;
			uint64_t total_exits;	/* filled in by the writer */
			uint64_t total_events;	/* filled in; counts END too */
			uint64_t regs_hash;
			struct trace_hash128 mem_hash;
		} end;
	};
};

/* "EXIT_IO", ... or NULL. */
const char *trace_event_type_name(uint8_t type);

/* ---- writer ---- */

struct trace_frame_info;

struct trace_writer_opts {
	int zstd_level;		/* 0: 1 */
	size_t frame_bytes;	/* close a frame at this raw size; 0: 64 KiB */
	bool async;		/* compress and write on a background thread */
	unsigned queue_frames;	/* async: frames in flight; 0: 4 */
	bool force;		/* truncate an existing file instead of failing */
	/*
	 * Called after each frame has been written (on the writer thread
	 * when async), with its index entry; for the checkpoint database's
	 * frame index.  Must not call back into the writer.
	 */
	void (*on_frame)(void *ctx, const struct trace_frame_info *fi);
	void *on_frame_ctx;
};

struct trace_writer_stats {
	uint64_t events;	/* appended, END included after close */
	uint64_t exits;
	uint64_t frames;	/* written to the file */
	uint64_t raw_bytes;	/* uncompressed payload bytes written */
	uint64_t file_bytes;	/* file size so far */
	uint64_t queue_waits;	/* async: times append waited for a buffer */
	uint64_t pending_events;	/* in the frame not yet closed */
	uint64_t pending_bytes;		/* its uncompressed size */
};

struct trace_writer;

/*
 * Create `path` (O_EXCL: an existing recording is never overwritten unless
 * opts->force, which truncates it in place) and write the file header.
 * opts may be NULL.  NULL on error, message in err.  The same as
 * trace_writer_prepare() then trace_writer_begin().
 */
struct trace_writer *trace_writer_open(const char *path,
				       const struct trace_header *h,
				       const struct trace_writer_opts *opts,
				       char *err, size_t errlen);
/*
 * The part of trace_writer_open that needs no header, for a caller that
 * builds the header meanwhile (the recorder: this runs on a thread of its
 * own while the VM is created): create `path` (O_EXCL), or with
 * opts->force open an existing file without truncating it yet; fsync its
 * directory, so that the name is durable (close fsyncs only the file);
 * make the compressor and the async thread.  No call but begin and free
 * is valid until begin succeeds.  Freed without begin, a file it created is removed
 * and one it found is left as it was.
 */
struct trace_writer *trace_writer_prepare(const char *path,
					  const struct trace_writer_opts *opts,
					  char *err, size_t errlen);
/*
 * Truncate a file prepare found (force), write the header h.  -1 with the
 * message in err; the writer is then failed and must be freed (which
 * removes a file prepare created).
 */
int trace_writer_begin(struct trace_writer *w, const struct trace_header *h,
		       char *err, size_t errlen);
/*
 * Encode one event (not END) into the current frame; close the frame when
 * it reaches opts.frame_bytes.  -1 on an invalid event (the writer stays
 * usable) or an I/O error (sticky: every later call fails).
 */
int trace_writer_append(struct trace_writer *w, const struct trace_event *ev);
/*
 * Close the current frame now (no-op if empty).  Sync: written before
 * return.  Async: queued; trace_writer_drain() waits for the write.
 * Each frame costs ~100 bytes of header and zstd framing: a timer that
 * flushes every 100 ms whatever is pending makes an idle guest's trace
 * ~6x larger (bench/trace_bench.c).  Flush on the timer when
 * stats.pending_bytes is large enough, and at least every second or so.
 */
int trace_writer_flush(struct trace_writer *w);
/*
 * Ask for a flush from any thread or a signal handler: the next append (or
 * flush) on the writer's thread closes the frame.
 */
void trace_writer_request_flush(struct trace_writer *w);
/* Async: wait until every closed frame is in the file.  Sync: no-op. */
int trace_writer_drain(struct trace_writer *w);
/*
 * Append `end` (type END; totals are filled in), close the last frame and
 * write the trailer: the file is whole in the kernel (a kill -9 after this
 * loses nothing) but not yet durable.  trace_writer_close(w, NULL) then
 * fsyncs it; in between the caller may make other files durable at the
 * same time (the recorder: the checkpoint database).
 */
int trace_writer_write_end(struct trace_writer *w, const struct trace_event *end);
/*
 * trace_writer_write_end(w, end) unless END was written already (then end
 * must be NULL), then fsync the file (prepare made its name durable).  The
 * recording is complete only if this returns 0.  The writer must still be freed.
 */
int trace_writer_close(struct trace_writer *w, const struct trace_event *end);
/* Release everything.  Without a successful close the file stays cut short. */
void trace_writer_free(struct trace_writer *w);
const char *trace_writer_error(const struct trace_writer *w);
/* SHA-256 of the file header: the start of the hash chain, which names this
 * recording (the checkpoint database stores it to check it belongs here). */
void trace_writer_header_hash(const struct trace_writer *w, uint8_t out[TRACE_HASH_SIZE]);
/* events/exits are live; the file counters are exact after drain/close
 * (before, with the async writer: as of the last frame its thread wrote).
 * From the thread that appends. */
void trace_writer_stats(const struct trace_writer *w,
			struct trace_writer_stats *st);
/* Events appended so far (the next event's ordinal), without the lock
 * trace_writer_stats takes for the async writer's counters: for a caller
 * that needs only this, once per event. */
uint64_t trace_writer_events(const struct trace_writer *w);

/* ---- reader ---- */

/* The frame the last returned event came from (for building an index). */
struct trace_frame_info {
	uint64_t offset;	/* file offset of the frame header */
	uint64_t seq;
	uint64_t first_event;	/* ordinal of the frame's first event */
	uint64_t exit_base;	/* exit ordinal before the frame's first event */
	uint32_t events;
	uint32_t exits;
	uint32_t comp_len;
	uint32_t raw_len;
	uint8_t prev_hash[TRACE_HASH_SIZE];
};

struct trace_reader;

/* Open and validate the file header.  NULL on error, message in err. */
struct trace_reader *trace_reader_open(const char *path, char *err,
				       size_t errlen);
/*
 * Next event: 1 and *ev filled; 0 at the end (see trace_reader_complete);
 * -1 on corruption, message in trace_reader_error().  After 0 or -1 every
 * later call returns the same.
 */
int trace_reader_next(struct trace_reader *r, struct trace_event *ev);
/* After next() returned 0: END and trailer present and valid. */
bool trace_reader_complete(const struct trace_reader *r);
/* After next() returned 0 with !complete: where the file was cut short. */
uint64_t trace_reader_truncated_at(const struct trace_reader *r);
/*
 * Continue at the frame at `file_offset` (from an index) whose sequence
 * number is `seq`, first event ordinal `first_event` and whose prev_hash
 * must be `prev_hash` (NULL: trust the frame's own field, which leaves its
 * authenticity unchecked).  The exit ordinal is taken from the frame.
 */
int trace_reader_seek(struct trace_reader *r, uint64_t file_offset,
		      uint64_t seq, uint64_t first_event,
		      const uint8_t prev_hash[TRACE_HASH_SIZE]);
/* Ordinal of the last returned event (0-based). */
uint64_t trace_reader_event_ordinal(const struct trace_reader *r);
/* Exit ordinal of the last returned event (0: before the first exit). */
uint64_t trace_reader_exit_ordinal(const struct trace_reader *r);
/* NULL before the first event. */
const struct trace_frame_info *trace_reader_frame(const struct trace_reader *r);
/* SHA-256 of the last frame fully read (the header's before any). */
void trace_reader_chain_hash(const struct trace_reader *r,
			     uint8_t out[TRACE_HASH_SIZE]);
const struct trace_header *trace_reader_header(const struct trace_reader *r);
/* SHA-256 of the file header (trace_writer_header_hash() of its writer). */
void trace_reader_header_hash(const struct trace_reader *r, uint8_t out[TRACE_HASH_SIZE]);
const char *trace_reader_error(const struct trace_reader *r);
void trace_reader_close(struct trace_reader *r);

/* ---- verify ---- */

struct trace_verify_report {
	uint16_t major, minor;
	uint64_t frames;
	uint64_t events;	/* END included */
	uint64_t exits;
	uint64_t raw_bytes;	/* uncompressed payload */
	uint64_t file_bytes;
	bool complete;		/* END + trailer present and valid */
	uint64_t truncated_at;	/* !complete: end of the last good frame */
	bool has_end;
	uint8_t end_reason;
	uint64_t end_status;
	uint8_t final_hash[TRACE_HASH_SIZE];	/* hash of the last good frame */
	char final_hash_hex[TRACE_HASH_HEX_SIZE];
};

/*
 * Check everything.  0: intact and complete.  1: intact but cut short (the
 * report says where; err says so too).  -1: corrupt or unreadable (err
 * names the frame and offset; the report covers what came before).
 */
int trace_verify(const char *path, struct trace_verify_report *rep,
		 char *err, size_t errlen);

/* 64 lowercase hex digits and a NUL. */
void trace_hash_hex(const uint8_t h[TRACE_HASH_SIZE],
		    char out[TRACE_HASH_HEX_SIZE]);

#endif
