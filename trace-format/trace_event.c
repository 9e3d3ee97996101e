/*
 * trace_event.c - the byte encoding of one event (SPEC.md "Event
 * encoding"): a type byte, then the type's fields as LEB128 varints, fixed
 * little-endian u64s, single bytes or length-prefixed bytes.
 *
 * Events carry no length of their own: a timer-heavy guest produces a few
 * bytes per exit and a length byte each would cost more than the payload
 * (SPEC.md "Compatibility rules" says why that loses nothing).  So the
 * decoder must know every type, and it checks every constraint the encoder
 * enforces: anything the writer cannot produce is refused, never guessed at.
 */
#include "trace-format/trace_internal.h"

const char *trace_event_type_name(uint8_t type)
{
	switch (type) {
	case TRACE_EV_EXIT_IO:		return "EXIT_IO";
	case TRACE_EV_EXIT_MMIO:	return "EXIT_MMIO";
	case TRACE_EV_EXIT_HLT:		return "EXIT_HLT";
	case TRACE_EV_EXIT_MSR:		return "EXIT_MSR";
	case TRACE_EV_EXIT_LANDMARK:	return "EXIT_LANDMARK";
	case TRACE_EV_CLOCK:		return "CLOCK";
	case TRACE_EV_TIMER:		return "TIMER";
	case TRACE_EV_ENTROPY:		return "ENTROPY";
	case TRACE_EV_CONSOLE_IN:	return "CONSOLE_IN";
	case TRACE_EV_IRQ:		return "IRQ";
	case TRACE_EV_DIGEST:		return "DIGEST";
	case TRACE_EV_END:		return "END";
	}
	return NULL;
}

/* Does v fit an access of 1 << log2 bytes? */
static bool fits(uint64_t v, unsigned log2)
{
	return log2 >= 3 || v >> (8u << log2) == 0;
}

static const char *check_io(uint8_t flags, uint32_t count, uint64_t value)
{
	bool write = flags & TRACE_IOF_WRITE;
	bool string = flags & TRACE_IOF_STRING;

	if (flags & ~(TRACE_IOF_WRITE | TRACE_IOF_STRING | TRACE_IOF_SIZE(7)))
		return "EXIT_IO: reserved flag bits set";
	if (TRACE_IOF_SIZE_LOG2(flags) > 2)
		return "EXIT_IO: access size above 4 bytes";
	if (count == 0 || (!string && count != 1))
		return "EXIT_IO: count must be 1, or >= 1 for a string op";
	if (write && !string && !fits(value, TRACE_IOF_SIZE_LOG2(flags)))
		return "EXIT_IO: written value wider than the access";
	return NULL;
}

static const char *check_mmio(uint8_t flags, uint64_t value)
{
	if (flags & ~(TRACE_IOF_WRITE | TRACE_IOF_SIZE(7)))
		return "EXIT_MMIO: reserved flag bits set";
	if (TRACE_IOF_SIZE_LOG2(flags) > 3)
		return "EXIT_MMIO: access size above 8 bytes";
	if ((flags & TRACE_IOF_WRITE) &&
	    !fits(value, TRACE_IOF_SIZE_LOG2(flags)))
		return "EXIT_MMIO: written value wider than the access";
	return NULL;
}

static size_t put_hash128(uint8_t *p, const struct trace_hash128 *h)
{
	put_le64(p, h->lo);
	put_le64(p + 8, h->hi);
	return 16;
}

int trace_event_encode(const struct trace_event *ev, uint64_t *time_prev,
		       uint8_t *out, size_t *len, const char **why)
{
	uint8_t *p = out;
	const char *bad = NULL;
	uint32_t max;

	*p++ = ev->type;
	switch (ev->type) {
	case TRACE_EV_EXIT_IO:
		bad = check_io(ev->io.flags, ev->io.count, ev->io.value);
		if (bad)
			break;
		*p++ = ev->io.flags;
		p += varint_put(p, ev->io.port);
		p += varint_put(p, ev->io.count);
		if ((ev->io.flags & TRACE_IOF_WRITE) &&
		    !(ev->io.flags & TRACE_IOF_STRING))
			p += varint_put(p, ev->io.value);
		break;
	case TRACE_EV_EXIT_MMIO:
		bad = check_mmio(ev->mmio.flags, ev->mmio.value);
		if (bad)
			break;
		*p++ = ev->mmio.flags;
		p += varint_put(p, ev->mmio.gpa);
		if (ev->mmio.flags & TRACE_IOF_WRITE)
			p += varint_put(p, ev->mmio.value);
		break;
	case TRACE_EV_EXIT_HLT:
		break;
	case TRACE_EV_EXIT_MSR:
		if (ev->msr.flags & ~TRACE_IOF_WRITE) {
			bad = "EXIT_MSR: reserved flag bits set";
			break;
		}
		*p++ = ev->msr.flags;
		p += varint_put(p, ev->msr.index);
		if (ev->msr.flags & TRACE_IOF_WRITE)
			p += varint_put(p, ev->msr.value);
		break;
	case TRACE_EV_EXIT_LANDMARK:
		p += varint_put(p, ev->landmark.progress);
		p += varint_put(p, ev->landmark.rip);
		put_le64(p, ev->landmark.regs_hash);
		p += 8;
		break;
	case TRACE_EV_CLOCK:
	case TRACE_EV_TIMER:
		if (ev->time.ns < *time_prev) {
			bad = "virtual time goes backwards";
			break;
		}
		p += varint_put(p, ev->time.ns - *time_prev);
		*time_prev = ev->time.ns;
		break;
	case TRACE_EV_ENTROPY:
	case TRACE_EV_CONSOLE_IN:
		max = ev->type == TRACE_EV_ENTROPY ? TRACE_ENTROPY_MAX
						   : TRACE_CONSOLE_MAX;
		if (ev->bytes.len > max) {
			bad = ev->type == TRACE_EV_ENTROPY
				? "ENTROPY longer than 65536 bytes"
				: "CONSOLE_IN longer than 4096 bytes";
			break;
		}
		if (ev->bytes.len && !ev->bytes.data) {
			bad = "byte event without data";
			break;
		}
		p += varint_put(p, ev->bytes.len);
		if (ev->bytes.len)
			memcpy(p, ev->bytes.data, ev->bytes.len);
		p += ev->bytes.len;
		break;
	case TRACE_EV_IRQ:
		*p++ = ev->irq.vector;
		break;
	case TRACE_EV_DIGEST:
		put_le64(p, ev->digest.regs_hash);
		p += 8;
		p += put_hash128(p, &ev->digest.mem_hash);
		break;
	case TRACE_EV_END:
		*p++ = ev->end.reason;
		p += varint_put(p, ev->end.status);
		p += varint_put(p, ev->end.total_exits);
		p += varint_put(p, ev->end.total_events);
		put_le64(p, ev->end.regs_hash);
		p += 8;
		p += put_hash128(p, &ev->end.mem_hash);
		break;
	default:
		bad = "unknown event type";
	}
	if (bad) {
		*why = bad;
		return -1;
	}
	*len = (size_t)(p - out);
	return 0;
}

/* A cursor over one event's bytes; the first failure sticks. */
struct dec {
	const uint8_t *p;
	size_t left;
	const char *why;
};

static uint64_t d_varint(struct dec *d)
{
	uint64_t v = 0;
	int n;

	if (d->why)
		return 0;
	n = varint_get(d->p, d->left, &v);
	if (n < 0) {
		d->why = varint_strerror(n);
		return 0;
	}
	d->p += n;
	d->left -= (size_t)n;
	return v;
}

static const uint8_t *d_bytes(struct dec *d, size_t n)
{
	const uint8_t *p = d->p;

	if (d->why)
		return NULL;
	if (d->left < n) {
		d->why = "event runs past the end of the payload";
		return NULL;
	}
	d->p += n;
	d->left -= n;
	return p;
}

static uint8_t d_u8(struct dec *d)
{
	const uint8_t *p = d_bytes(d, 1);

	return p ? *p : 0;
}

static uint64_t d_u64(struct dec *d)
{
	const uint8_t *p = d_bytes(d, 8);

	return p ? get_le64(p) : 0;
}

static void d_hash128(struct dec *d, struct trace_hash128 *h)
{
	h->lo = d_u64(d);
	h->hi = d_u64(d);
}

/* A varint that must fit `max`; names the field in the error. */
static uint64_t d_varint_max(struct dec *d, uint64_t max, const char *why)
{
	uint64_t v = d_varint(d);

	if (!d->why && v > max)
		d->why = why;
	return v;
}

int trace_event_decode(const uint8_t *p, size_t avail, uint64_t *time_prev,
		       struct trace_event *ev, size_t *used, const char **why)
{
	struct dec d = { p, avail, NULL };
	uint64_t v;

	memset(ev, 0, sizeof(*ev));
	ev->type = d_u8(&d);
	switch (ev->type) {
	case TRACE_EV_EXIT_IO:
		ev->io.flags = d_u8(&d);
		ev->io.port = (uint16_t)d_varint_max(&d, 0xffff,
						     "EXIT_IO: port above 0xffff");
		ev->io.count = (uint32_t)d_varint_max(&d, UINT32_MAX,
						      "EXIT_IO: count above 2^32-1");
		if ((ev->io.flags & TRACE_IOF_WRITE) &&
		    !(ev->io.flags & TRACE_IOF_STRING))
			ev->io.value = d_varint(&d);
		if (!d.why)
			d.why = check_io(ev->io.flags, ev->io.count,
					 ev->io.value);
		break;
	case TRACE_EV_EXIT_MMIO:
		ev->mmio.flags = d_u8(&d);
		ev->mmio.gpa = d_varint(&d);
		if (ev->mmio.flags & TRACE_IOF_WRITE)
			ev->mmio.value = d_varint(&d);
		if (!d.why)
			d.why = check_mmio(ev->mmio.flags, ev->mmio.value);
		break;
	case TRACE_EV_EXIT_HLT:
		break;
	case TRACE_EV_EXIT_MSR:
		ev->msr.flags = d_u8(&d);
		if (!d.why && (ev->msr.flags & ~TRACE_IOF_WRITE))
			d.why = "EXIT_MSR: reserved flag bits set";
		ev->msr.index = (uint32_t)d_varint_max(&d, UINT32_MAX,
						       "EXIT_MSR: index above 2^32-1");
		if (ev->msr.flags & TRACE_IOF_WRITE)
			ev->msr.value = d_varint(&d);
		break;
	case TRACE_EV_EXIT_LANDMARK:
		ev->landmark.progress = d_varint(&d);
		ev->landmark.rip = d_varint(&d);
		ev->landmark.regs_hash = d_u64(&d);
		break;
	case TRACE_EV_CLOCK:
	case TRACE_EV_TIMER:
		v = d_varint(&d);
		if (d.why)
			break;
		if (v > UINT64_MAX - *time_prev) {
			d.why = "virtual time overflows 64 bits";
			break;
		}
		ev->time.ns = *time_prev + v;
		break;
	case TRACE_EV_ENTROPY:
	case TRACE_EV_CONSOLE_IN:
		v = d_varint_max(&d, ev->type == TRACE_EV_ENTROPY
					     ? TRACE_ENTROPY_MAX
					     : TRACE_CONSOLE_MAX,
				 ev->type == TRACE_EV_ENTROPY
					 ? "ENTROPY longer than 65536 bytes"
					 : "CONSOLE_IN longer than 4096 bytes");
		ev->bytes.len = (uint32_t)v;
		ev->bytes.data = d_bytes(&d, ev->bytes.len);
		break;
	case TRACE_EV_IRQ:
		ev->irq.vector = d_u8(&d);
		break;
	case TRACE_EV_DIGEST:
		ev->digest.regs_hash = d_u64(&d);
		d_hash128(&d, &ev->digest.mem_hash);
		break;
	case TRACE_EV_END:
		ev->end.reason = d_u8(&d);
		ev->end.status = d_varint(&d);
		ev->end.total_exits = d_varint(&d);
		ev->end.total_events = d_varint(&d);
		ev->end.regs_hash = d_u64(&d);
		d_hash128(&d, &ev->end.mem_hash);
		break;
	default:
		if (!d.why)
			d.why = "unknown event type";
	}
	if (d.why) {
		*why = d.why;
		return -1;
	}
	/* Commit the time base only for a valid event. */
	if (ev->type == TRACE_EV_CLOCK || ev->type == TRACE_EV_TIMER)
		*time_prev = ev->time.ns;
	*used = avail - d.left;
	return 0;
}
