/*
 * exit_event.h - how a synchronous exit is written in the trace.  The
 * recorder writes it; the replayer builds the same event from the exit it
 * sees and compares: one function, so the two can never disagree on the
 * encoding.
 */
#ifndef DETVM_EXIT_EVENT_H
#define DETVM_EXIT_EVENT_H

#include <stdbool.h>
#include <stddef.h>

#include "trace-format/trace.h"
#include "vmm/vm.h"

void exit_to_event(const struct vm_exit *x, struct trace_event *ev);
bool exit_events_equal(const struct trace_event *a, const struct trace_event *b);
/* "OUT port 0x20 size 1 value 0x20", "HLT", ... */
void exit_event_describe(const struct trace_event *ev, char *out, size_t outlen);

#endif
