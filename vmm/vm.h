/*
 * vm.h - one guest: KVM, RAM, the platform, and the run loop.
 *
 * The run loop (vm_run) is the only code that enters the guest.  After each
 * synchronous exit (port I/O, MMIO, HLT, MSR: the guest's own instruction
 * caused it, so its position is deterministic) it increments the exit
 * ordinal, lets the device handle it, then runs the asynchronous phase:
 * console input, timer expiries and interrupt injection, each decided by the
 * nondeterminism gateway (nd.h).  Asynchronous exits (a signal, an
 * interrupt window) do not count as exits; they only run that phase.
 */
#ifndef DETVM_VM_H
#define DETVM_VM_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "guest_mem.h"
#include "mem_digest.h"
#include "kvm.h"
#include "loader.h"
#include "nd.h"
#include "progress.h"
#include "platform.h"

struct vm_config {
	const char *kernel_path;
	uint64_t mem_size;
	const char *disk_path;     /* NULL: no disk */
	bool disk_overlay;         /* writes stay in memory (record/replay) */
	const char *cmdline;       /* NULL: empty */
	bool force_multiboot;
	/* Replay: the recorded CPUID table instead of this host's. */
	const struct kvm_cpuid_entry2 *cpuid;
	size_t cpuid_count;
	/* Track written pages (KVM dirty log + the monitor's own writes) for
	 * incremental checkpoints. */
	bool dirty_log;
	/* The progress counter vm_progress() reads: PROGRESS_PMU_BRANCHES
	 * opens the PMU counter for the calling thread, which must then be
	 * the one that runs the vCPU; anything else reads insn_emulation. */
	enum progress_kind progress;
	/* Instead: measure which counter is exact on this VM's vCPU before
	 * the guest starts (progress_calibrate); vm.progress_why says why. */
	bool detect_progress;
	/* The MSRs the monitor answers (vmm/msr.h); 0: MSR_POLICY_CURRENT. */
	enum msr_policy_rev msr_policy;
};

enum vm_stop {
	VM_STOP_NONE = 0,
	VM_STOP_POWEROFF,      /* guest powered off (ACPI PM1a SLP_EN) */
	VM_STOP_DEBUG_EXIT,    /* guest wrote to the debug-exit port */
	VM_STOP_TRIPLE_FAULT,  /* KVM_EXIT_SHUTDOWN */
	VM_STOP_HALTED,        /* HLT that nothing can ever wake */
	VM_STOP_SIGNAL,        /* SIGINT/SIGTERM */
	VM_STOP_GUEST_ERROR,   /* KVM could not run the guest (emulation failure...) */
	VM_STOP_MONITOR_ERROR, /* a host call failed */
	VM_STOP_DIVERGENCE,    /* replay: the guest did not do what was recorded */
	VM_STOP_TRACE_END,     /* replay: the recording ends here (stopped by its user, or cut short) */
	VM_STOP_REACHED,       /* replay: stop_at_exit reached */
	VM_STOP_OVERSHOT,      /* replay: ran past a forced exit; replay_session_run rewinds */
};

/* Kinds of synchronous exit, as counted and (later) recorded. */
enum vm_exit_kind { VMX_IO, VMX_MMIO, VMX_HLT, VMX_MSR, VMX_LANDMARK, VMX_NKINDS };

struct vm_exit {
	enum vm_exit_kind kind;
	bool write;
	uint8_t size;     /* bytes per element */
	bool string;      /* rep ins/outs */
	uint32_t count;   /* elements (string I/O) */
	uint64_t addr;    /* port, physical address or MSR index */
	uint64_t value;   /* written value (first element) */
};

struct vm;

/* Observers used by the recorder and the replayer; all optional. */
struct vm_hooks {
	/* Exit number vm->stats.exits has been decoded, before its device
	 * runs; return non-zero to stop (VM_STOP_DIVERGENCE, message in
	 * vm->detail). */
	int (*exit)(void *ctx, struct vm *vm, const struct vm_exit *x);
	/* An interrupt is about to be injected (live decision). */
	int (*inject)(void *ctx, struct vm *vm, uint8_t vector);
	/* An asynchronous exit (signal, interrupt window) happened and its
	 * asynchronous phase is about to run (recorder: landmark); after it
	 * async_done() is called. */
	void (*async_exit)(void *ctx, struct vm *vm);
	void (*async_done)(void *ctx, struct vm *vm);
	/*
	 * Replay: replaces the asynchronous phase.  Called after each exit
	 * (sync: true) and after asynchronous exits; applies what the trace
	 * says happened there, forced exits that follow included.  Returns
	 * true if it injected an interrupt (which wakes a halted guest).
	 */
	bool (*replay_async)(void *ctx, struct vm *vm, bool sync);
	/*
	 * At the top of the run loop, before the guest is entered: every
	 * event of the previous exit has happened (recorder: checkpoints).
	 */
	void (*before_run)(void *ctx, struct vm *vm);
	/* Every byte the guest writes to COM1 (recorder: the serial index). */
	void (*serial_byte)(void *ctx, struct vm *vm, uint8_t byte);
	void *ctx;
};

struct vm_stats {
	uint64_t exits;                 /* synchronous exits (the ordinal) */
	uint64_t by_kind[VMX_NKINDS];
	uint64_t async_exits;           /* signals and interrupt windows */
	uint64_t async_put_off;         /* of those, recording with an exception in flight */
	uint64_t injections;
	uint64_t halts_waited;
	double seconds;
};

struct vm {
	struct kvm kvm;
	enum msr_policy_rev msr_policy;  /* the MSRs the monitor answers */
	/* Size and XXH3-128 of the kernel image as loaded: the identity of
	 * what the guest runs, which the file may no longer have. */
	uint64_t kernel_size, kernel_hash_lo, kernel_hash_hi;
	struct guest_mem mem;
	void *ram;
	struct platform plat;
	struct nd *nd;
	struct blockdev *bd;
	struct boot_cpu boot;
	FILE *serial_out;
	bool serial_out_ok;      /* false after a failed write: no more are tried */
	int serial_out_errno;    /* why the first write failed */
	bool host_timer;         /* arm a host timer for vtimer deadlines (live/record) */
	/* How long an expired timer, or console input, may wait for the
	 * guest's next exit before the guest is kicked (an asynchronous exit;
	 * a forced exit when recording).  0: timers kick at their deadline. */
	uint64_t kick_bound_ns;
	bool defer_async;        /* record without a progress counter: async work only at sync exits */
	/*
	 * The guest may have run since the last exit counted in stats.exits:
	 * set by an asynchronous exit, cleared by a synchronous one and by a
	 * forced exit (vm_count_landmark).  Its state is then
	 * none that a replay stops at unless a landmark says where it is.
	 */
	bool between_exits;
	bool stop_wait_reported;  /* "stopping at the guest's next exit" was said */
	/*
	 * Recording: consecutive asynchronous exits that stopped the guest
	 * with an exception in flight (raised, not yet delivered), a point a
	 * replay cannot stop at.  Nothing is recorded there; the guest runs
	 * on to a kick VM_KICK_RETRY_NS later (vm.c, after_async_exit).
	 */
	unsigned kick_retries;
	int console_open;        /* console input may still arrive */
	int (*console_open_fn)(void *ctx);
	void *console_ctx;
	struct vm_hooks hooks;
	struct vm_stats stats;
	/* Which digest vm_mem_hash() computes: the recording's (default FULL,
	 * format 1.0's). */
	enum mem_digest_kind mem_digest;
	/* Replay: stop at the run loop's top once stats.exits >= stop_at_exit. */
	bool stop_at_set;
	uint64_t stop_at_exit;
	/* Replay after a rewind: console output of exits <= this was already
	 * written once, so it is dropped (0: nothing is dropped). */
	uint64_t serial_mute_through;
	/* Replay from a checkpoint: run replay_async once before the guest. */
	bool resume_replay;
	/* Added to the raw progress counter: a vCPU restored from a
	 * checkpoint continues the recording vCPU's count. */
	int64_t progress_offset;
	enum progress_kind progress_kind;
	int progress_fd;         /* the PMU counter, or -1 */
	char progress_why[200];  /* vm_config.detect_progress: what was measured */
	enum vm_stop stop;
	uint32_t guest_code;     /* debug-exit value */
	int stop_signal;
	char detail[512];        /* human-readable reason for the stop */
	/* host timer */
	timer_t timer;
	bool timer_created, timer_armed;
	uint64_t timer_deadline;
	uint64_t timer_base_mono_ns;
	/* vm_release_begin's thread */
	pthread_t release_thread;
	bool release_started;
};

/* Create the VM and load the kernel.  serial_out receives COM1 output. */
int vm_create(struct vm *vm, const struct vm_config *cfg, struct nd *nd,
	      FILE *serial_out, char *err, size_t errlen);
void vm_destroy(struct vm *vm);
/*
 * Start tearing the VM down on a thread of its own: close the KVM file
 * descriptors and unmap guest RAM.  KVM's teardown takes 0.6-0.8 ms here
 * (more with dirty logging), which the recorder's finish (closing and
 * fsyncing the trace and the database) overlaps instead of following.
 * After it, nothing may touch the vCPU, kvm_run or guest memory; the
 * stats, stop reason, devices and disk stay.  vm_destroy() waits for the
 * thread.  Where the thread cannot be started the work is done here.
 */
void vm_release_begin(struct vm *vm);

/* Run until the guest stops.  vm->stop says why; returns 0 (always). */
int vm_run(struct vm *vm);

/*
 * The pages written since the last call (or since the VM was created), as
 * bits (host offset >> 12) ORed into acc, which has room for
 * mem.size / 4096 bits: KVM's dirty log of each RAM slot (the guest's
 * writes) and mem.dirty (the monitor's), both reset.  The VM must have
 * been created with vm_config.dirty_log.  0, or -1 with a message.
 */
int vm_take_dirty(struct vm *vm, uint64_t *acc, char *err, size_t errlen);

/* The progress counter (insn_emulation or the PMU's, + progress_offset); -1 if unavailable. */
int vm_progress(const struct vm *vm, uint64_t *value);
/*
 * 1 if KVM holds an event the guest has not yet taken, which the next
 * entry delivers: an exception raised or being injected, and with
 * `interrupts`, an injected interrupt or NMI; 0 if none; -1 if KVM cannot
 * say (errno, KVM_GET_VCPU_EVENTS).
 */
int vm_event_in_flight(struct vm *vm, bool interrupts);
/* Count a forced exit (the recorder wrote its landmark, or the replay
 * reached it): it is an exit like a synchronous one (vm.between_exits). */
void vm_count_landmark(struct vm *vm);
/* Arm the host timer to kick the vCPU after ns (replay's landmark runs). */
int vm_arm_kick(struct vm *vm, uint64_t ns);
/* Disarm it (a run that ended before its timer), and take a kick that
 * expired meanwhile. */
int vm_disarm_kick(struct vm *vm);
/* Take a pending kick (the host timer's signal, which is blocked outside
 * KVM_RUN and so never delivered): after every KVM_RUN that returned
 * -EINTR, or it would end the next one at once. */
void vm_kick_consume(void);

/* Stop the run (from a hook); the first stop wins. */
void vm_set_stop(struct vm *vm, enum vm_stop s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Inject vector now (replay); 0 or -1 with the stop set. */
int vm_inject(struct vm *vm, uint8_t vector);
/* Can the vCPU take an interrupt at this exit? */
bool vm_can_inject(const struct vm *vm);
/* The general-purpose registers and their XXH3-64; 0, or -1 (errno). */
int vm_regs(struct vm *vm, struct kvm_regs *regs, uint64_t *hash);
/* That hash, of registers read otherwise (kvm_run's sync copy): the one
 * definition of a landmark's and a digest's register fingerprint. */
uint64_t vm_regs_hash(const struct kvm_regs *regs);
/* XXH3-128 of guest RAM, vm->mem_digest's digest; 0, or -1 (out of memory) */
int vm_mem_hash(const struct vm *vm, uint64_t *lo, uint64_t *hi);
/* What a recording's DIGEST and END events carry, and what replay compares. */
struct vm_digests {
	uint64_t regs;          /* vm_regs()'s hash */
	uint64_t mem_lo, mem_hi; /* vm_mem_hash() */
	uint64_t rip;
};
/* Both digests; 0, or -1 with what failed in err (the caller says where). */
int vm_digests(struct vm *vm, struct vm_digests *d, char *err, size_t errlen);

/* Exit statuses of vm_exit_status() that other code compares against. */
#define VM_STATUS_HALTED 8

/* The process exit status for a stop (documented in `detvm run --help`). */
int vm_exit_status(const struct vm *vm);
const char *vm_stop_name(enum vm_stop s);

/*
 * Request a stop from a signal handler (async-signal-safe).  vm_run stops
 * at its loop's top; a recording without a progress counter (defer_async)
 * that is between exits first runs the guest on to its next synchronous
 * exit, unless a second signal came (vm_stop_signals counts them).
 */
void vm_request_stop(int signo);
extern volatile sig_atomic_t vm_stop_requested;
extern volatile sig_atomic_t vm_stop_signals;

/* Parse a memory size ("128M", "1G", "4096K", "2147483648"); 0 or -1. */
int vm_parse_size(const char *s, uint64_t *out, char *err, size_t errlen);

#define VM_MEM_DEFAULT (128ULL << 20)
/*
 * The default of kick_bound_ns for `run` and `record` (--landmark-bound): an
 * expired timer waits up to 1 ms for an exit the guest makes anyway.  Where
 * the guest exits often, as a kernel doing I/O does, interrupts then come at
 * its exits, with no forced exit to record or to reach at replay; a guest
 * that runs without exits takes its timer interrupts up to 1 ms late, and a
 * periodic timer faster than that loses periods (the models drop missed
 * ones).  The issue asked for "a few milliseconds"; 1 ms keeps a 250 Hz or
 * 500 Hz tick whole.
 */
#define VM_KICK_BOUND_DEFAULT_NS 1000000ULL
#define VM_MEM_MIN     (2ULL << 20)
#define VM_MEM_MAX     (64ULL << 30)

#endif
