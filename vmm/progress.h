/*
 * progress.h - which deterministic progress counter this host offers.
 *
 * Landmarks (forced exits at which asynchronous events are delivered) must be
 * reached again exactly at replay, which needs a counter of guest progress
 * that the guest cannot perturb and that counts identically each run.
 *   - On hosts whose KVM emulates CPL0 guest code one instruction at a time
 *     (the nested PVM hosts detvm's tests run on), KVM's per-vCPU statistic
 *     insn_emulation counts every guest instruction exactly.
 *   - On hardware KVM hosts it counts only rare emulated instructions; there
 *     the counter would be the PMU's retired conditional branches
 *     (perf_event_open, exclude_host).  detvm does not implement that yet:
 *     such hosts record with PROGRESS_COUNTER "none", and asynchronous events
 *     then wait for the guest's next synchronous exit (see README).
 * progress_detect() finds out by measurement, never by assumption: it runs
 * 100 known real-mode instructions and an OUT in a scratch VM and checks that
 * insn_emulation advanced by exactly 101.
 */
#ifndef DETVM_PROGRESS_H
#define DETVM_PROGRESS_H

enum progress_kind { PROGRESS_NONE, PROGRESS_INSN_EMULATION };

enum progress_kind progress_detect(char *why, unsigned long whylen);
const char *progress_name(enum progress_kind k);

#endif
