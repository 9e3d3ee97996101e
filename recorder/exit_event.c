/* exit_event.c - see exit_event.h. */
#include "exit_event.h"

#include <stdio.h>
#include <string.h>

static uint8_t log2_size(unsigned size)
{
	return size == 8 ? 3 : size == 4 ? 2 : size == 2 ? 1 : 0;
}

void exit_to_event(const struct vm_exit *x, struct trace_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	uint8_t f = (uint8_t)((x->write ? TRACE_IOF_WRITE : 0) | TRACE_IOF_SIZE(log2_size(x->size)));
	switch (x->kind) {
	case VMX_IO:
		ev->type = TRACE_EV_EXIT_IO;
		ev->io.flags = (uint8_t)(f | (x->string ? TRACE_IOF_STRING : 0));
		ev->io.port = (uint16_t)x->addr;
		ev->io.count = x->count;
		ev->io.value = x->write && !x->string ? x->value : 0;
		break;
	case VMX_MMIO:
		ev->type = TRACE_EV_EXIT_MMIO;
		ev->mmio.flags = f;
		ev->mmio.gpa = x->addr;
		ev->mmio.value = x->write ? x->value : 0;
		break;
	case VMX_MSR:
		ev->type = TRACE_EV_EXIT_MSR;
		ev->msr.flags = x->write ? TRACE_IOF_WRITE : 0;
		ev->msr.index = (uint32_t)x->addr;
		ev->msr.value = x->write ? x->value : 0;
		break;
	case VMX_HLT:
	case VMX_LANDMARK:
	case VMX_NKINDS:
		ev->type = TRACE_EV_EXIT_HLT;
		break;
	}
}

bool exit_events_equal(const struct trace_event *a, const struct trace_event *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case TRACE_EV_EXIT_IO:
		return a->io.flags == b->io.flags && a->io.port == b->io.port &&
		       a->io.count == b->io.count && a->io.value == b->io.value;
	case TRACE_EV_EXIT_MMIO:
		return a->mmio.flags == b->mmio.flags && a->mmio.gpa == b->mmio.gpa &&
		       a->mmio.value == b->mmio.value;
	case TRACE_EV_EXIT_MSR:
		return a->msr.flags == b->msr.flags && a->msr.index == b->msr.index &&
		       a->msr.value == b->msr.value;
	default:
		return true;
	}
}

void exit_event_describe(const struct trace_event *ev, char *out, size_t outlen)
{
	switch (ev->type) {
	case TRACE_EV_EXIT_IO: {
		bool w = ev->io.flags & TRACE_IOF_WRITE;
		int n = snprintf(out, outlen, "%s%s port 0x%x size %u", w ? "OUT" : "IN",
				 ev->io.flags & TRACE_IOF_STRING ? "S" : "", ev->io.port,
				 1u << TRACE_IOF_SIZE_LOG2(ev->io.flags));
		if (n > 0 && (size_t)n < outlen) {
			if (ev->io.flags & TRACE_IOF_STRING)
				snprintf(out + n, outlen - (size_t)n, " count %u", ev->io.count);
			else if (w)
				snprintf(out + n, outlen - (size_t)n, " value 0x%llx", (unsigned long long)ev->io.value);
		}
		break;
	}
	case TRACE_EV_EXIT_MMIO: {
		bool w = ev->mmio.flags & TRACE_IOF_WRITE;
		int n = snprintf(out, outlen, "MMIO %s 0x%llx size %u", w ? "write" : "read",
				 (unsigned long long)ev->mmio.gpa, 1u << TRACE_IOF_SIZE_LOG2(ev->mmio.flags));
		if (w && n > 0 && (size_t)n < outlen)
			snprintf(out + n, outlen - (size_t)n, " value 0x%llx", (unsigned long long)ev->mmio.value);
		break;
	}
	case TRACE_EV_EXIT_MSR:
		if (ev->msr.flags & TRACE_IOF_WRITE)
			snprintf(out, outlen, "WRMSR 0x%x value 0x%llx", ev->msr.index, (unsigned long long)ev->msr.value);
		else
			snprintf(out, outlen, "RDMSR 0x%x", ev->msr.index);
		break;
	case TRACE_EV_EXIT_HLT:
		snprintf(out, outlen, "HLT");
		break;
	case TRACE_EV_EXIT_LANDMARK:
		snprintf(out, outlen, "forced exit at RIP 0x%llx after %llu instructions",
			 (unsigned long long)ev->landmark.rip, (unsigned long long)ev->landmark.progress);
		break;
	default: {
		const char *name = trace_event_type_name(ev->type);
		snprintf(out, outlen, "%s", name ? name : "unknown event");
	}
	}
}
