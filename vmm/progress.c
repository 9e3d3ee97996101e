/* progress.c - see progress.h. */
#include "progress.h"

#include <cpuid.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kvm.h"

/*
 * 20 iterations: the loop is emulated, a microsecond or so an instruction
 * here, on every recording's critical path (100 iterations: 0.29 ms of
 * calibration, 20: 0.19 ms, medians of 10 recordings of hello), and a
 * longer loop would not make the check stronger.  A counter that misses
 * or adds any one kind of instruction (the MOV, DEC, JNZ or OUT) or counts
 * exits instead of instructions is off by at least one either way.  Rarer
 * miscounts are what the replay's landmark checks (RIP and register hash
 * at every forced exit) catch.
 */
#define CAL_LOOPS 20
#define CAL_INSNS (1 + 2 * CAL_LOOPS + 1)  /* mov, (dec + jnz) x 20, out */
#define CAL_MEM   0x10000

const char *progress_name(enum progress_kind k)
{
	switch (k) {
	case PROGRESS_INSN_EMULATION: return "insn_emulation";
	case PROGRESS_PMU_BRANCHES: return "pmu-branches";
	case PROGRESS_NONE: break;
	}
	return "none";
}

int progress_parse(const char *name, enum progress_kind *k)
{
	if (strcmp(name, "insn_emulation") == 0)
		*k = PROGRESS_INSN_EMULATION;
	else if (strcmp(name, "pmu-branches") == 0)
		*k = PROGRESS_PMU_BRANCHES;
	else if (strcmp(name, "none") == 0)
		*k = PROGRESS_NONE;
	else
		return -1;
	return 0;
}

uint64_t progress_pmu_event(const char vendor[12], const char **name)
{
	if (memcmp(vendor, "GenuineIntel", 12) == 0) {
		*name = "BR_INST_RETIRED.CONDITIONAL (raw 0x5101c4)";
		return 0x5101c4;
	}
	if (memcmp(vendor, "AuthenticAMD", 12) == 0 || memcmp(vendor, "HygonGenuine", 12) == 0) {
		*name = "retired conditional branches (raw 0x5100d1)";
		return 0x5100d1;
	}
	*name = "none";
	return 0;
}

int progress_pmu_open(char *why, size_t whylen)
{
	unsigned int a, b, c, d;
	char vendor[12];
	const char *name;

	__cpuid(0, a, b, c, d);
	memcpy(vendor, &b, 4);
	memcpy(vendor + 4, &d, 4);
	memcpy(vendor + 8, &c, 4);
	uint64_t config = progress_pmu_event(vendor, &name);
	if (!config) {
		snprintf(why, whylen, "no known conditional-branch event for CPU vendor '%.12s'", vendor);
		return -1;
	}
	struct perf_event_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.type = PERF_TYPE_RAW;
	attr.config = config;
	attr.exclude_host = 1;     /* guest mode only: not the monitor, not KVM */
	attr.exclude_hv = 1;
	attr.pinned = 1;           /* never multiplexed: a multiplexed count is scaled, not exact */
	int fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "perf_event_open(%s): %s", name, strerror(errno));
		return -1;
	}
	return fd;
}

int progress_pmu_read(int fd, uint64_t *value)
{
	return read(fd, value, sizeof(*value)) == (ssize_t)sizeof(*value) ? 0 : -1;
}

/* Real mode at CAL_GPA: mov $100, %cx; 1: dec %cx; jnz 1b; out %al, $0x80; hlt */
#define CAL_GPA 0x1000
static const uint8_t cal_code[] = { 0xb9, CAL_LOOPS, 0x00, 0x49, 0x75, 0xfd, 0xe6, 0x80, 0xf4 };

/* Run the calibration loop (already in guest RAM at CAL_GPA); the deltas
 * of both counters. */
static int calibrate(struct kvm *k, int pmu_fd, uint64_t *insns, uint64_t *branches,
		     char *why, size_t whylen)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	uint64_t i0 = 0, i1 = 0, b0 = 0, b1 = 0;

	if (ioctl(k->vcpu_fd, KVM_GET_SREGS, &sregs) < 0) {
		snprintf(why, whylen, "KVM_GET_SREGS: %s", strerror(errno));
		return -1;
	}
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(k->vcpu_fd, KVM_SET_SREGS, &sregs) < 0) {
		snprintf(why, whylen, "KVM_SET_SREGS: %s", strerror(errno));
		return -1;
	}
	memset(&regs, 0, sizeof(regs));
	regs.rip = CAL_GPA;
	regs.rflags = 2;
	if (ioctl(k->vcpu_fd, KVM_SET_REGS, &regs) < 0) {
		snprintf(why, whylen, "KVM_SET_REGS: %s", strerror(errno));
		return -1;
	}
	bool have_insn = k->insn_emulation_off >= 0 && kvm_read_insn_emulation(k, &i0) == 0;
	if (pmu_fd >= 0 && progress_pmu_read(pmu_fd, &b0)) {
		snprintf(why, whylen, "reading the PMU counter: %s", strerror(errno));
		return -1;
	}
	if (ioctl(k->vcpu_fd, KVM_RUN, 0) < 0 || k->run->exit_reason != KVM_EXIT_IO) {
		snprintf(why, whylen, "calibration guest did not reach its OUT (exit %u)", k->run->exit_reason);
		return -1;
	}
	if (have_insn && kvm_read_insn_emulation(k, &i1))
		have_insn = false;
	if (pmu_fd >= 0 && progress_pmu_read(pmu_fd, &b1)) {
		snprintf(why, whylen, "reading the PMU counter: %s", strerror(errno));
		return -1;
	}
	/* Complete the OUT (api.rst: re-enter with immediate_exit), so that
	 * no half-done instruction is left for the caller's first KVM_RUN. */
	k->run->immediate_exit = 1;
	int r = ioctl(k->vcpu_fd, KVM_RUN, 0);
	int e = errno;
	k->run->immediate_exit = 0;
	if (r == 0 || e != EINTR) {
		snprintf(why, whylen, "completing the calibration guest's OUT: %s",
			 r == 0 ? "KVM asked for another exit" : strerror(e));
		return -1;
	}
	*insns = have_insn ? i1 - i0 : UINT64_MAX;
	*branches = pmu_fd >= 0 ? b1 - b0 : UINT64_MAX;
	return 0;
}

int progress_calibrate(struct kvm *k, uint8_t *ram, size_t ram_size, enum progress_kind *kind,
		       char *why, size_t whylen)
{
	char pwhy[200] = "";
	uint8_t saved[sizeof(cal_code)];
	uint64_t insns, branches;

	*kind = PROGRESS_NONE;
	if (ram_size < CAL_GPA + sizeof(cal_code)) {
		snprintf(why, whylen, "guest RAM too small for the calibration loop");
		return -1;
	}
	memcpy(saved, ram + CAL_GPA, sizeof(saved));
	memcpy(ram + CAL_GPA, cal_code, sizeof(cal_code));
	/* The PMU only matters where insn_emulation is not exact, but one
	 * run measures both. */
	int pmu_fd = progress_pmu_open(pwhy, sizeof(pwhy));
	int rc = calibrate(k, pmu_fd, &insns, &branches, why, whylen);
	if (pmu_fd >= 0)
		close(pmu_fd);
	memcpy(ram + CAL_GPA, saved, sizeof(saved));
	if (rc)
		return -1;
	if (insns == CAL_INSNS) {
		*kind = PROGRESS_INSN_EMULATION;
		snprintf(why, whylen, "insn_emulation counted %d of %d instructions: exact", CAL_INSNS, CAL_INSNS);
	} else if (branches == CAL_LOOPS) {
		*kind = PROGRESS_PMU_BRANCHES;
		snprintf(why, whylen, "the PMU counted %d of %d conditional branches: exact", CAL_LOOPS, CAL_LOOPS);
	} else {
		char a[80], b[260];
		if (insns == UINT64_MAX)
			snprintf(a, sizeof(a), "KVM has no insn_emulation statistic");
		else
			snprintf(a, sizeof(a), "insn_emulation counted %llu of %d instructions",
				 (unsigned long long)insns, CAL_INSNS);
		if (branches == UINT64_MAX)
			snprintf(b, sizeof(b), "no PMU counter (%s)", pwhy);
		else
			snprintf(b, sizeof(b), "the PMU counted %llu of %d conditional branches",
				 (unsigned long long)branches, CAL_LOOPS);
		snprintf(why, whylen, "%s; %s", a, b);
	}
	return 0;
}

enum progress_kind progress_detect(char *why, size_t whylen)
{
	struct kvm k;
	char err[256];
	enum progress_kind result = PROGRESS_NONE;
	uint8_t *mem = mmap(NULL, CAL_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	snprintf(why, whylen, "not measured");
	if (mem == MAP_FAILED) {
		snprintf(why, whylen, "mmap: %s", strerror(errno));
		return PROGRESS_NONE;
	}
	if (kvm_open(&k, err, sizeof(err)) ||
	    kvm_set_memory(&k, 0, 0, CAL_MEM, mem, false, err, sizeof(err)) ||
	    kvm_create_vcpu(&k, err, sizeof(err)))
		snprintf(why, whylen, "scratch VM: %s", err);
	else
		(void)progress_calibrate(&k, mem, CAL_MEM, &result, why, whylen);
	kvm_close(&k);
	munmap(mem, CAL_MEM);
	return result;
}
