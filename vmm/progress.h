/*
 * progress.h - which deterministic progress counter this host offers.
 *
 * Landmarks (forced exits at which asynchronous events are delivered) must be
 * reached again exactly at replay, which needs a counter of guest progress
 * that the guest cannot perturb and that counts identically each run.
 *   - PROGRESS_INSN_EMULATION: on hosts whose KVM emulates CPL0 guest code
 *     one instruction at a time (the nested PVM hosts detvm's tests run
 *     on), KVM's per-vCPU statistic insn_emulation counts every guest
 *     instruction exactly.  A landmark is (counter, RIP, register hash).
 *   - PROGRESS_PMU_BRANCHES: on hardware KVM hosts, the PMU's count of
 *     retired conditional branches in guest mode (perf_event_open with
 *     exclude_host), the counter rr uses.  Many instructions share a count,
 *     so a landmark is found as the instant the count is reached and RIP
 *     and the registers match (landmark.c).  NOT EXERCISED on the hosts
 *     detvm is developed on (they have no PMU): written against the
 *     perf_event_open(2) documentation and rr's published event choices.
 *     AMD Zen CPUs are known to overcount conditional branches around
 *     locked instructions unless a chicken bit is set (rr's
 *     "zen_pmu_workaround"); detvm does not set it, and the calibration
 *     below cannot catch a rare overcount.
 *   - PROGRESS_NONE: neither; asynchronous events wait for the guest's next
 *     synchronous exit.
 * Which one is found out by measurement, never by assumption: the vCPU runs
 * a real-mode loop of 20 iterations (42 instructions, 20 conditional
 * branches) ending in an OUT; insn_emulation is accepted if it advanced by
 * exactly 42, else the PMU counter if it advanced by exactly 20.  The
 * recorder measures on its own VM's vCPU before the guest is loaded into
 * it (progress_calibrate, from vm_create): a scratch VM of its own would
 * add about 2 ms to every recording.
 */
#ifndef DETVM_PROGRESS_H
#define DETVM_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum progress_kind { PROGRESS_NONE, PROGRESS_INSN_EMULATION, PROGRESS_PMU_BRANCHES };

/*
 * Measure on the vCPU of `k`, which must be fresh: created, its CPUID set,
 * never run, in its reset state (real mode).  `ram` is guest RAM from GPA
 * 0: the loop runs at GPA 0x1000, and the bytes it overwrote there are put
 * back.  Afterwards the vCPU is in real mode with its exit completed, for
 * the caller to set the state it wants, and insn_emulation has moved on
 * (take its value then as the new zero).  0 with *kind (PROGRESS_NONE,
 * with why, if neither counter is exact); -1 with why if the vCPU did not
 * run the loop as it must, its state then unknown: discard the vCPU.
 */
struct kvm;
int progress_calibrate(struct kvm *k, uint8_t *ram, size_t ram_size, enum progress_kind *kind,
		       char *why, size_t whylen);
/* The same in a scratch VM of its own (about 2 ms); never fails: why says
 * what was measured, or what could not be. */
enum progress_kind progress_detect(char *why, size_t whylen);
/* The trace header's names (trace-format/SPEC.md, PROGRESS_COUNTER). */
const char *progress_name(enum progress_kind k);
/* 0, or -1 for an unknown name. */
int progress_parse(const char *name, enum progress_kind *k);

/*
 * The raw perf event counting retired conditional branches for a CPU whose
 * CPUID vendor string (leaf 0, EBX EDX ECX) is `vendor`, and its name; 0 if
 * detvm knows none for that vendor.  Intel: BR_INST_RETIRED.CONDITIONAL
 * (event 0xc4, umask 0x01); AMD family 17h+: retired conditional branches
 * (event 0xd1).  Both as rr uses them.
 */
uint64_t progress_pmu_event(const char vendor[12], const char **name);
/*
 * Open that counter for the calling thread, counting in guest mode only
 * (the vCPU must be run by this thread).  The fd, or -1 with why.
 */
int progress_pmu_open(char *why, size_t whylen);
/* The counter's value; 0 or -1. */
int progress_pmu_read(int fd, uint64_t *value);

#endif
