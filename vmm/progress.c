/* progress.c - see progress.h. */
#include "progress.h"

#include <cpuid.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kvm.h"

#define CAL_LOOPS 100
#define CAL_INSNS (1 + 2 * CAL_LOOPS + 1)  /* mov, (dec + jnz) x 100, out */
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

/* Run the calibration loop in a scratch VM; the deltas of both counters. */
static int calibrate(struct kvm *k, int pmu_fd, uint64_t *insns, uint64_t *branches,
		     char *why, unsigned long whylen)
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
	regs.rip = 0x1000;
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
	*insns = have_insn ? i1 - i0 : UINT64_MAX;
	*branches = pmu_fd >= 0 ? b1 - b0 : UINT64_MAX;
	return 0;
}

enum progress_kind progress_detect(char *why, unsigned long whylen)
{
	struct kvm k;
	char err[256], pwhy[200] = "";
	enum progress_kind result = PROGRESS_NONE;
	int pmu_fd = -1;
	uint64_t insns, branches;
	uint8_t *mem = mmap(NULL, CAL_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	snprintf(why, whylen, "not measured");
	if (mem == MAP_FAILED) {
		snprintf(why, whylen, "mmap: %s", strerror(errno));
		return PROGRESS_NONE;
	}
	/* Real mode at 0x1000: mov $100, %cx; 1: dec %cx; jnz 1b; out %al, $0x80; hlt */
	static const uint8_t code[] = { 0xb9, CAL_LOOPS, 0x00, 0x49, 0x75, 0xfd, 0xe6, 0x80, 0xf4 };
	memcpy(mem + 0x1000, code, sizeof(code));

	if (kvm_open(&k, err, sizeof(err)) ||
	    kvm_set_memory(&k, 0, 0, CAL_MEM, mem, false, err, sizeof(err)) ||
	    kvm_create_vcpu(&k, err, sizeof(err))) {
		snprintf(why, whylen, "scratch VM: %s", err);
		goto out;
	}
	/* The PMU only matters where insn_emulation is not exact, but one
	 * run measures both. */
	pmu_fd = progress_pmu_open(pwhy, sizeof(pwhy));
	if (calibrate(&k, pmu_fd, &insns, &branches, why, whylen))
		goto out;
	if (insns == CAL_INSNS) {
		result = PROGRESS_INSN_EMULATION;
		snprintf(why, whylen, "insn_emulation counted %d of %d instructions: exact", CAL_INSNS, CAL_INSNS);
	} else if (branches == CAL_LOOPS) {
		result = PROGRESS_PMU_BRANCHES;
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
out:
	if (pmu_fd >= 0)
		close(pmu_fd);
	kvm_close(&k);
	munmap(mem, CAL_MEM);
	return result;
}

static void *probe_main(void *arg)
{
	struct progress_probe *p = arg;
	p->kind = progress_detect(p->why, sizeof(p->why));
	return NULL;
}

void progress_probe_start(struct progress_probe *p)
{
	sigset_t all, old;

	memset(p, 0, sizeof(*p));
	/* The stop signals and the vCPU kick are for the caller's thread. */
	sigfillset(&all);
	if (pthread_sigmask(SIG_SETMASK, &all, &old))
		return;
	p->started = pthread_create(&p->thread, NULL, probe_main, p) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

enum progress_kind progress_probe_wait(struct progress_probe *p, char *why, size_t whylen)
{
	if (!p->started || pthread_join(p->thread, NULL))
		p->kind = progress_detect(p->why, sizeof(p->why));
	p->started = false;
	snprintf(why, whylen, "%s", p->why);
	return p->kind;
}
