/* vm.c - see vm.h. */
#include "vm.h"
#include "common/errf.h"
#include "common/quiet_thread.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <xxhash.h>

#include "msr.h"
#include "nd_live.h"

#define KICK_SIGNAL (SIGRTMIN + 1)
/* An exception in flight at a recorder's kick: how long the guest runs on
 * before the next look (some tens of instructions here, where an
 * instruction takes about 1 us), and how many looks before the recorder
 * gives up and records the point anyway. */
#define VM_KICK_RETRY_NS  50000
#define VM_KICK_RETRY_MAX 1000
#define KERNEL_MAX_BYTES (1ULL << 30)

volatile sig_atomic_t vm_stop_requested;
volatile sig_atomic_t vm_stop_signals;
static struct kvm_run *volatile current_run;

/* ---- options ----------------------------------------------------------- */

int vm_parse_size(const char *s, uint64_t *out, char *err, size_t errlen)
{
	char *end;
	if (!s || !*s || !isdigit((unsigned char)*s))
		return errf(err, errlen, "'%s' is not a size (examples: 128M, 1G, 65536K)", s ? s : "");
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return errf(err, errlen, "size '%s' is too large", s);
	unsigned shift = 0;
	switch (toupper((unsigned char)*end)) {
	case 0: break;
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case 'T': shift = 40; end++; break;
	default:
		return errf(err, errlen, "size '%s' has an unknown suffix (use K, M, G or T)", s);
	}
	if (shift && (strcasecmp(end, "iB") == 0 || strcasecmp(end, "B") == 0))
		end += strlen(end);
	if (*end)
		return errf(err, errlen, "size '%s' has trailing characters '%s'", s, end);
	if (shift && v > (UINT64_MAX >> shift))
		return errf(err, errlen, "size '%s' is too large", s);
	*out = (uint64_t)v << shift;
	return 0;
}

/* ---- signals and the host timer ---------------------------------------- */

void vm_request_stop(int signo)
{
	vm_stop_requested = signo;
	vm_stop_signals++;
	struct kvm_run *r = current_run;
	if (r)
		r->immediate_exit = 1;
}

/* Never runs while the kick is blocked outside KVM_RUN (setup_host_timer);
 * a process must have a handler for the signal to interrupt KVM_RUN. */
static void kick_handler(int signo)
{
	(void)signo;
}

void vm_kick_consume(void)
{
	sigset_t k;
	struct timespec zero = { 0, 0 };
	sigemptyset(&k);
	sigaddset(&k, KICK_SIGNAL);
	while (sigtimedwait(&k, NULL, &zero) == KICK_SIGNAL)
		;
}

/*
 * The kick is blocked in the vCPU thread except while it is inside
 * KVM_RUN (KVM_SET_SIGNAL_MASK, as api.rst describes): a timer that
 * expires while the monitor is on its way into KVM_RUN leaves the signal
 * pending, and KVM_RUN returns -EINTR as soon as it starts, whatever runs
 * in between.  (A handler that set kvm_run.immediate_exit did this before;
 * ThreadSanitizer defers such a handler until the thread's next blocking
 * libc call, so that under it a kick could be lost and the guest run on to
 * its next exit: a replay of spin once took 324 s of a 14 min test run.)
 * The signal is never delivered: vm_kick_consume() takes it after the
 * -EINTR.
 */
static int mask_kick(struct vm *vm, char *err, size_t errlen)
{
	sigset_t kick, cur;
	struct {
		struct kvm_signal_mask m;
		uint8_t set[8];	/* the kernel's sigset on x86-64: 64 bits */
	} km;

	sigemptyset(&kick);
	sigaddset(&kick, KICK_SIGNAL);
	int e = pthread_sigmask(SIG_BLOCK, &kick, &cur);
	if (e)
		return errf(err, errlen, "pthread_sigmask (blocking SIGRTMIN+1): %s", strerror(e));
	/* In KVM_RUN: the thread's mask as it was, the kick unblocked. */
	sigdelset(&cur, KICK_SIGNAL);
	memset(&km, 0, sizeof(km));
	km.m.len = sizeof(km.set);
	memcpy(km.set, &cur, sizeof(km.set));
	if (ioctl(vm->kvm.vcpu_fd, KVM_SET_SIGNAL_MASK, &km) < 0)
		return errf(err, errlen, "KVM_SET_SIGNAL_MASK: %s", strerror(errno));
	vm_kick_consume(); /* one left by an earlier VM's timer */
	return 0;
}

static int setup_host_timer(struct vm *vm, char *err, size_t errlen)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	if (sigaction(KICK_SIGNAL, &sa, NULL) < 0)
		return errf(err, errlen, "sigaction(SIGRTMIN+1): %s", strerror(errno));
	if (mask_kick(vm, err, errlen))
		return -1;
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = KICK_SIGNAL;
	sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	if (timer_create(CLOCK_MONOTONIC, &sev, &vm->timer) < 0)
		return errf(err, errlen, "timer_create(CLOCK_MONOTONIC): %s", strerror(errno));
	vm->timer_created = true;
	return 0;
}

/*
 * The host timer, one-shot: at ns (absolute with TIMER_ABSTIME, else from
 * now), or disarmed.  A time of 0 becomes 1 ns, since timer_settime takes
 * an all-zero it_value as "disarm".
 */
static int settime(struct vm *vm, int flags, bool arm, uint64_t ns)
{
	struct itimerspec its;
	memset(&its, 0, sizeof(its));
	if (arm) {
		its.it_value.tv_sec = (time_t)(ns / 1000000000ULL);
		its.it_value.tv_nsec = (long)(ns % 1000000000ULL);
		if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
			its.it_value.tv_nsec = 1;
	}
	if (timer_settime(vm->timer, flags, &its, NULL) < 0) {
		fprintf(stderr, "detvm: timer_settime (%s): %s\n", arm ? "arming" : "disarming", strerror(errno));
		return -1;
	}
	return 0;
}

/* Arm the host timer for virtual time `deadline` (live clock: virtual time
 * 0 is timer_base_mono_ns), or disarm it. */
static void host_timer_set(struct vm *vm, bool arm, uint64_t deadline)
{
	if (!vm->timer_created || (arm == vm->timer_armed && (!arm || deadline == vm->timer_deadline)))
		return;
	if (settime(vm, TIMER_ABSTIME, arm, vm->timer_base_mono_ns + deadline))
		return;
	vm->timer_armed = arm;
	vm->timer_deadline = deadline;
}

int vm_arm_kick(struct vm *vm, uint64_t ns)
{
	char err[200];
	if (!vm->timer_created && setup_host_timer(vm, err, sizeof(err))) {
		fprintf(stderr, "detvm: %s\n", err);
		return -1;
	}
	vm_kick_consume(); /* a kick from an earlier arming is not this one */
	if (settime(vm, 0, true, ns))
		return -1;
	vm->timer_armed = false; /* relative: not a vtimer deadline */
	return 0;
}

int vm_disarm_kick(struct vm *vm)
{
	if (!vm->timer_created)
		return 0;
	if (settime(vm, 0, false, 0))
		return -1;
	vm->timer_armed = false;
	vm_kick_consume(); /* one that expired before it was disarmed */
	return 0;
}

/* ---- creation ---------------------------------------------------------- */

static void serial_tx(void *ctx, uint8_t byte)
{
	struct vm *vm = ctx;
	if (vm->stats.exits <= vm->serial_mute_through && vm->serial_mute_through)
		return;
	if (vm->hooks.serial_byte)
		vm->hooks.serial_byte(vm->hooks.ctx, vm, byte);
	if (vm->serial_out && vm->serial_out_ok && fputc(byte, vm->serial_out) == EOF) {
		vm->serial_out_ok = false;
		vm->serial_out_errno = errno;
	}
}

static int read_file(const char *path, uint8_t **data, size_t *size, uint64_t limit,
		     char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errf(err, errlen, "cannot open kernel '%s': %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		close(fd);
		return errf(err, errlen, "fstat '%s': %s", path, strerror(errno));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return errf(err, errlen, "kernel '%s' is not a regular file", path);
	}
	if (st.st_size == 0 || (uint64_t)st.st_size > limit) {
		close(fd);
		return errf(err, errlen, "kernel '%s' is %lld bytes: %s", path, (long long)st.st_size,
			    st.st_size == 0 ? "empty" : "larger than guest RAM");
	}
	uint8_t *buf = malloc((size_t)st.st_size);
	if (!buf) {
		close(fd);
		return errf(err, errlen, "out of memory reading '%s'", path);
	}
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			free(buf);
			close(fd);
			return errf(err, errlen, "reading '%s' at offset %zu: %s", path, got,
				    n < 0 ? strerror(e) : "unexpected end of file");
		}
		got += (size_t)n;
	}
	close(fd);
	*data = buf;
	*size = got;
	return 0;
}

/* Use `kind` as the progress counter; PROGRESS_PMU_BRANCHES opens the
 * counter for the calling thread.  0, or -1 with a message. */
static int set_progress(struct vm *vm, enum progress_kind kind, char *err, size_t errlen)
{
	char e2[400];

	if (vm->progress_kind == PROGRESS_PMU_BRANCHES && vm->progress_fd >= 0)
		close(vm->progress_fd);
	vm->progress_fd = -1;
	vm->progress_kind = PROGRESS_NONE;
	if (kind == PROGRESS_PMU_BRANCHES) {
		vm->progress_fd = progress_pmu_open(e2, sizeof(e2));
		if (vm->progress_fd < 0)
			return errf(err, errlen, "the PMU progress counter: %s", e2);
	}
	vm->progress_kind = kind;
	return 0;
}

/* The KVM VM with guest RAM, and its vCPU with CPUID and MSR filter. */
static int open_kvm(struct vm *vm, const struct vm_config *cfg, char *err, size_t errlen)
{
	if (kvm_open(&vm->kvm, err, errlen))
		return -1;
	if (kvm_set_memory(&vm->kvm, 0, 0, vm->mem.low_size, vm->mem.host, cfg->dirty_log, err, errlen))
		return -1;
	if (vm->mem.high_size &&
	    kvm_set_memory(&vm->kvm, 1, GM_HIGH_START, vm->mem.high_size,
			   vm->mem.host + vm->mem.low_size, cfg->dirty_log, err, errlen))
		return -1;
	if (kvm_create_vcpu(&vm->kvm, err, errlen) ||
	    kvm_setup_cpuid(&vm->kvm, cfg->cpuid, cfg->cpuid_count, err, errlen) ||
	    kvm_setup_msr_filter(&vm->kvm, vm->msr_policy, err, errlen))
		return -1;
	return 0;
}

int vm_create(struct vm *vm, const struct vm_config *cfg, struct nd *nd,
	      FILE *serial_out, char *err, size_t errlen)
{
	uint8_t *image = NULL;
	size_t image_size = 0;
	char e2[400];

	memset(vm, 0, sizeof(*vm));
	vm->kvm.sys_fd = vm->kvm.vm_fd = vm->kvm.vcpu_fd = vm->kvm.stats_fd = -1;
	vm->progress_fd = -1;
	vm->nd = nd;
	vm->serial_out = serial_out;
	vm->serial_out_ok = true;
	vm->msr_policy = cfg->msr_policy ? cfg->msr_policy : MSR_POLICY_CURRENT;
	if (vm->msr_policy < MSR_POLICY_1 || vm->msr_policy > MSR_POLICY_CURRENT)
		return errf(err, errlen, "MSR policy revision %d: this detvm has 1 to %d",
			    (int)vm->msr_policy, (int)MSR_POLICY_CURRENT);

	if (cfg->mem_size < VM_MEM_MIN || cfg->mem_size > VM_MEM_MAX || cfg->mem_size % 4096)
		return errf(err, errlen, "--mem %llu bytes: must be a multiple of 4 KiB between 2 MiB and 64 GiB",
			    (unsigned long long)cfg->mem_size);
	if (read_file(cfg->kernel_path, &image, &image_size, cfg->mem_size, err, errlen))
		return -1;
	XXH128_hash_t kh = XXH3_128bits(image, image_size);
	vm->kernel_size = image_size;
	vm->kernel_hash_lo = kh.low64;
	vm->kernel_hash_hi = kh.high64;

	vm->ram = mmap(NULL, cfg->mem_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->ram == MAP_FAILED) {
		vm->ram = NULL;
		free(image);
		return errf(err, errlen, "mmap of %llu MiB of guest RAM: %s",
			    (unsigned long long)(cfg->mem_size >> 20), strerror(errno));
	}
	gm_layout(&vm->mem, vm->ram, cfg->mem_size);
	if (cfg->dirty_log) {
		/* The monitor's own writes (virtio DMA), beside KVM's log. */
		vm->mem.dirty = calloc(cfg->mem_size / 4096 / 64 + 1, sizeof(uint64_t));
		if (!vm->mem.dirty) {
			free(image);
			return errf(err, errlen, "out of memory for the dirty-page bitmap");
		}
	}

	if (cfg->disk_path) {
		vm->bd = blockdev_open(cfg->disk_path, cfg->disk_overlay, e2, sizeof(e2));
		if (!vm->bd) {
			free(image);
			return errf(err, errlen, "disk image: %s", e2);
		}
	}
	if (platform_init(&vm->plat, nd, &vm->mem, vm->bd, serial_tx, vm, err, errlen)) {
		free(image);
		return -1;
	}
	struct boot_params bp = { .cmdline = cfg->cmdline, .force_multiboot = cfg->force_multiboot };
	platform_boot_params(&vm->plat, &bp);
	if (loader_load(&vm->mem, image, image_size, &bp, &vm->boot, e2, sizeof(e2))) {
		free(image);
		return errf(err, errlen, "kernel '%s': %s", cfg->kernel_path, e2);
	}
	free(image);

	enum progress_kind progress = cfg->progress;
	if (open_kvm(vm, cfg, err, errlen))
		return -1;
	if (cfg->detect_progress) {
		/* Before the boot state is set: the vCPU is still fresh.  The
		 * tests (t_record.sh) set DETVM_TEST_CALIBRATION_FAILS to take
		 * a calibration as failed, so that the way out is exercised on
		 * hosts where it never fails. */
		const char *t = getenv("DETVM_TEST_CALIBRATION_FAILS");
		int crc = progress_calibrate(&vm->kvm, vm->mem.host, vm->mem.low_size, &progress,
					     vm->progress_why, sizeof(vm->progress_why));
		if (!crc && t && *t) {
			snprintf(vm->progress_why, sizeof(vm->progress_why), "DETVM_TEST_CALIBRATION_FAILS is set");
			crc = -1;
		}
		if (crc) {
			/* The vCPU's state is unknown: start again with a new
			 * VM, and no progress counter. */
			kvm_close(&vm->kvm);
			progress = PROGRESS_NONE;
			if (open_kvm(vm, cfg, err, errlen))
				return -1;
		}
	}
	if (kvm_set_boot_state(&vm->kvm, &vm->boot, err, errlen))
		return -1;
	/* The counter reads 0 at the guest's first instruction, whatever the
	 * calibration ran: a replay's fresh vCPU starts from 0 too. */
	uint64_t raw;
	if (progress != PROGRESS_PMU_BRANCHES && kvm_read_insn_emulation(&vm->kvm, &raw) == 0)
		vm->progress_offset = -(int64_t)raw;
	return set_progress(vm, progress, err, errlen);
}

/* The host timer, and the stop signals' target: a signal after kvm_run is
 * unmapped must find nothing to write to (vm_request_stop). */
static void stop_host_timer(struct vm *vm)
{
	if (vm->timer_created)
		timer_delete(vm->timer);
	vm->timer_created = false;
	current_run = NULL;
}

/* KVM's descriptors and guest RAM; vm_release_begin may run it on a thread. */
static void release_kvm_and_ram(struct vm *vm)
{
	/* (A VM that was never created is all zeros: fd 0 is not ours.) */
	if (vm->progress_kind == PROGRESS_PMU_BRANCHES && vm->progress_fd >= 0)
		close(vm->progress_fd);
	vm->progress_fd = -1;
	kvm_close(&vm->kvm);
	if (vm->ram)
		munmap(vm->ram, vm->mem.size);
	vm->ram = NULL;
}

static void *release_main(void *arg)
{
	release_kvm_and_ram(arg);
	return NULL;
}

void vm_release_begin(struct vm *vm)
{
	if (vm->release_started)
		return;
	stop_host_timer(vm);
	vm->release_started = quiet_thread_start(&vm->release_thread, release_main, vm) == 0;
	if (!vm->release_started)
		release_kvm_and_ram(vm);
	/* Either way the memory is gone: nothing may read it. */
	vm->mem.host = NULL;
}

void vm_destroy(struct vm *vm)
{
	stop_host_timer(vm);
	if (vm->release_started) {
		pthread_join(vm->release_thread, NULL);
		vm->release_started = false;
	} else {
		release_kvm_and_ram(vm);
	}
	if (vm->bd)
		blockdev_close(vm->bd);
	vm->bd = NULL;
	free(vm->mem.dirty);
	vm->mem.dirty = NULL;
}

/* KVM's dirty log of one slot, ORed into acc from host page first_page. */
static int take_slot_log(struct vm *vm, uint32_t slot, uint64_t first_page, uint64_t npages,
			 uint64_t *acc, char *err, size_t errlen)
{
	size_t words = (npages + 63) / 64;
	uint64_t *bm = calloc(words ? words : 1, sizeof(uint64_t));
	struct kvm_dirty_log dl = { .slot = slot, .dirty_bitmap = bm };

	if (!bm)
		return errf(err, errlen, "out of memory for the dirty log");
	if (ioctl(vm->kvm.vm_fd, KVM_GET_DIRTY_LOG, &dl) < 0) {
		errf(err, errlen, "KVM_GET_DIRTY_LOG (slot %u) at exit %" PRIu64 ": %s", slot,
		     vm->stats.exits, strerror(errno));
		free(bm);
		return -1;
	}
	for (size_t w = 0; w < words; w++)
		for (uint64_t bits = bm[w]; bits; bits &= bits - 1) {
			uint64_t pg = first_page + w * 64 + (uint64_t)__builtin_ctzll(bits);
			acc[pg / 64] |= 1ULL << (pg % 64);
		}
	free(bm);
	return 0;
}

int vm_take_dirty(struct vm *vm, uint64_t *acc, char *err, size_t errlen)
{
	struct guest_mem *gm = &vm->mem;
	size_t words = (gm->size / 4096 + 63) / 64;

	if (!gm->dirty)
		return errf(err, errlen, "this VM was created without dirty-page tracking");
	if (take_slot_log(vm, 0, 0, gm->low_size / 4096, acc, err, errlen) ||
	    (gm->high_size && take_slot_log(vm, 1, gm->low_size / 4096, gm->high_size / 4096,
					    acc, err, errlen)))
		return -1;
	for (size_t w = 0; w < words; w++) {
		acc[w] |= gm->dirty[w];
		gm->dirty[w] = 0;
	}
	return 0;
}

int vm_progress(const struct vm *vm, uint64_t *value)
{
	uint64_t raw;
	if (vm->progress_kind == PROGRESS_PMU_BRANCHES ? progress_pmu_read(vm->progress_fd, &raw)
						       : kvm_read_insn_emulation(&vm->kvm, &raw))
		return -1;
	*value = raw + (uint64_t)vm->progress_offset;
	return 0;
}

/* ---- the run loop ------------------------------------------------------ */

void vm_set_stop(struct vm *vm, enum vm_stop s, const char *fmt, ...)
{
	va_list ap;
	if (vm->stop != VM_STOP_NONE)
		return;
	vm->stop = s;
	va_start(ap, fmt);
	vsnprintf(vm->detail, sizeof(vm->detail), fmt, ap);
	va_end(ap);
}

static uint64_t guest_rip(struct vm *vm)
{
	struct kvm_regs r;
	if (ioctl(vm->kvm.vcpu_fd, KVM_GET_REGS, &r) < 0)
		return ~0ULL;
	return r.rip;
}

/* Up to 16 instruction bytes at the guest's RIP, as hex, for error reports. */
static void insn_bytes(struct vm *vm, uint64_t rip, char *out, size_t outlen)
{
	struct kvm_translation tr = { .linear_address = rip };
	out[0] = 0;
	if (ioctl(vm->kvm.vcpu_fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid)
		return;
	size_t pos = 0;
	for (int i = 0; i < 16 && pos + 4 < outlen; i++) {
		uint8_t b;
		if (gm_read(&vm->mem, tr.physical_address + (uint64_t)i, &b, 1))
			break;
		pos += (size_t)snprintf(out + pos, outlen - pos, "%s%02x", i ? " " : "", b);
	}
}

static void handle_msr(struct vm *vm, struct kvm_run *run, bool write)
{
	uint32_t index = run->msr.index;
	run->msr.error = 0;
	switch (msr_policy(index, vm->msr_policy)) {
	case MSR_CLOCK:
		if (!write)
			run->msr.data = nd_clock_ns(vm->nd);
		break;
	case MSR_ZERO:
		if (!write)
			run->msr.data = 0;
		break;
	case MSR_GP:
	case MSR_KERNEL: /* not expected here: only filtered MSRs exit */
		run->msr.error = 1;
		break;
	}
}

/* Count the next exit ordinal, an exit of `kind`: the guest is at an exit
 * again (vm.between_exits). */
static void count_exit(struct vm *vm, enum vm_exit_kind kind)
{
	vm->stats.exits++;
	vm->stats.by_kind[kind]++;
	vm->between_exits = false;
}

void vm_count_landmark(struct vm *vm)
{
	count_exit(vm, VMX_LANDMARK);
}

/* Decode a synchronous exit, tell the hooks, dispatch it to its device. */
static void handle_sync_exit(struct vm *vm, struct kvm_run *run, struct vm_exit *x)
{
	count_exit(vm, x->kind);
	if (vm->hooks.exit && vm->hooks.exit(vm->hooks.ctx, vm, x)) {
		vm_set_stop(vm, VM_STOP_DIVERGENCE, "%s", vm->detail[0] ? vm->detail : "divergence");
		return;
	}
	switch (x->kind) {
	case VMX_IO: {
		uint8_t *data = (uint8_t *)run + run->io.data_offset;
		for (uint32_t i = 0; i < x->count; i++)
			bus_access(&vm->plat.pio, x->addr, data + (size_t)i * x->size, x->size, x->write, NULL);
		break;
	}
	case VMX_MMIO:
		bus_access(&vm->plat.mmio, x->addr, run->mmio.data, x->size, x->write, NULL);
		break;
	case VMX_MSR:
		handle_msr(vm, run, x->write);
		break;
	case VMX_HLT:
	case VMX_LANDMARK:
	case VMX_NKINDS:
		break;
	}
}

bool vm_can_inject(const struct vm *vm)
{
	return vm->kvm.run->ready_for_interrupt_injection && vm->kvm.run->if_flag;
}

int vm_inject(struct vm *vm, uint8_t vector)
{
	struct kvm_interrupt irq = { .irq = vector };
	if (ioctl(vm->kvm.vcpu_fd, KVM_INTERRUPT, &irq) < 0) {
		vm_set_stop(vm, VM_STOP_MONITOR_ERROR, "KVM_INTERRUPT(vector 0x%x) at exit %" PRIu64 ": %s",
			    vector, vm->stats.exits, strerror(errno));
		return -1;
	}
	vm->stats.injections++;
	return 0;
}

uint64_t vm_regs_hash(const struct kvm_regs *regs)
{
	return XXH3_64bits(regs, sizeof(*regs));
}

int vm_regs(struct vm *vm, struct kvm_regs *regs, uint64_t *hash)
{
	/* Memset: the hash covers the whole struct, padding included. */
	memset(regs, 0, sizeof(*regs));
	if (ioctl(vm->kvm.vcpu_fd, KVM_GET_REGS, regs) < 0)
		return -1;
	*hash = vm_regs_hash(regs);
	return 0;
}

int vm_mem_hash(const struct vm *vm, uint64_t *lo, uint64_t *hi)
{
	return mem_digest(&vm->mem, vm->mem_digest, lo, hi);
}

int vm_digests(struct vm *vm, struct vm_digests *d, char *err, size_t errlen)
{
	struct kvm_regs regs;
	if (vm_regs(vm, &regs, &d->regs))
		return errf(err, errlen, "KVM_GET_REGS: %s", strerror(errno));
	d->rip = regs.rip;
	if (vm_mem_hash(vm, &d->mem_lo, &d->mem_hi))
		return errf(err, errlen, "out of memory computing the memory digest");
	return 0;
}

/*
 * The asynchronous phase: console input, expired timers, then interrupt
 * injection if the guest can take one now.  Returns true if an interrupt
 * was injected.
 */
static bool async_phase(struct vm *vm, struct kvm_run *run, bool hint)
{
	struct platform *p = &vm->plat;
	const struct nd_ops *ops = vm->nd->ops;
	uint64_t deadline, now;

	if (ops->poll_console) {
		uint8_t buf[UART_FIFO_SIZE];
		size_t room = uart_rx_room(&p->uart);
		size_t n = room ? ops->poll_console(vm->nd, buf, room, hint) : 0;
		if (n)
			uart_receive(&p->uart, buf, n);
	}
	if (ops->poll_timers && vtimer_next(&p->timers, &deadline) &&
	    ops->poll_timers(vm->nd, deadline, &now))
		vtimer_run_due(&p->timers, now);

	run->request_interrupt_window = 0;
	if (!platform_intr_pending(p))
		return false;
	if (!(run->ready_for_interrupt_injection && run->if_flag)) {
		run->request_interrupt_window = 1;
		return false;
	}
	int vector = platform_intr_ack(p);
	if (vector < 0)
		return false;
	if (vm->hooks.inject && vm->hooks.inject(vm->hooks.ctx, vm, (uint8_t)vector)) {
		vm_set_stop(vm, VM_STOP_MONITOR_ERROR, "%s", vm->detail);
		return false;
	}
	return vm_inject(vm, (uint8_t)vector) == 0;
}

/* The asynchronous phase after a synchronous exit, or its replay. */
static bool after_sync_exit(struct vm *vm, struct kvm_run *run, bool hint)
{
	if (vm->hooks.replay_async)
		return vm->hooks.replay_async(vm->hooks.ctx, vm, true);
	return async_phase(vm, run, hint);
}

int vm_event_in_flight(struct vm *vm, bool interrupts)
{
	struct kvm_vcpu_events ev;
	if (ioctl(vm->kvm.vcpu_fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return -1;
	return ev.exception.injected || ev.exception.pending ||
	       (interrupts && (ev.interrupt.injected || ev.nmi.injected));
}

/*
 * Recording: may the guest's state at this asynchronous exit be a forced
 * exit?  Not while an exception is in flight: an instruction faulted (a
 * RDMSR KVM refused, a page fault) or a WRMSR the monitor refused was
 * finished with its #GP, and the kick came before the guest took it.  The
 * counter has counted the faulting attempt and RIP is still on it, and KVM
 * may already have set RFLAGS.RF for the delivery; a replay cannot stop
 * there (a single step runs the delivery and the handler's first
 * instruction), or stops there without RF.  Seen with a hostile guest
 * (seed 20) whose fast timer gave thousands of forced exits: "divergence at
 * exit 19369: registers at the forced exit (RIP 0x10374b) differ from the
 * recording", the RDMSR, whose recorded registers differed in RF alone.
 * So nothing is recorded here: the guest runs on and is kicked again soon.
 */
static bool landmark_point(struct vm *vm)
{
	int f = vm_event_in_flight(vm, false);
	if (f < 0) {
		vm_set_stop(vm, VM_STOP_MONITOR_ERROR, "KVM_GET_VCPU_EVENTS after exit %" PRIu64 ": %s",
			    vm->stats.exits, strerror(errno));
		return false;
	}
	if (!f) {
		vm->kick_retries = 0;
		return true;
	}
	if (++vm->kick_retries <= VM_KICK_RETRY_MAX) {
		vm->stats.async_put_off++;
		return false;
	}
	fprintf(stderr, "detvm: an exception stayed in flight over %d kicks (RIP 0x%" PRIx64 ", after exit %" PRIu64
		"): recording a forced exit there, which a replay may not reach\n", VM_KICK_RETRY_MAX, guest_rip(vm),
		vm->stats.exits);
	vm->kick_retries = 0;
	return true;
}

/* An asynchronous exit: a signal or an interrupt window. */
static void after_async_exit(struct vm *vm, struct kvm_run *run)
{
	vm->stats.async_exits++;
	vm->between_exits = true;
	if (vm->hooks.replay_async) {
		vm->hooks.replay_async(vm->hooks.ctx, vm, false);
		return;
	}
	if (vm->defer_async)
		return;
	/* Only a recorder writes forced exits (async_exit is its hook). */
	if (vm->hooks.async_exit) {
		if (!landmark_point(vm))
			return;
		vm->hooks.async_exit(vm->hooks.ctx, vm);
	}
	async_phase(vm, run, false);
	if (vm->hooks.async_done)
		vm->hooks.async_done(vm->hooks.ctx, vm);
}

/* HLT with interrupts enabled: wait (live) until something can wake it. */
static void idle(struct vm *vm, struct kvm_run *run)
{
	uint64_t deadline;
	for (bool first = true;; first = false) {
		if ((first ? after_sync_exit(vm, run, true) : async_phase(vm, run, true)) || vm->stop)
			return;
		if (vm_stop_requested)
			return;
		if (vm->hooks.replay_async) {
			vm_set_stop(vm, VM_STOP_DIVERGENCE, "divergence at exit %" PRIu64
				    ": the guest halted, but the recording has no wake-up here",
				    vm->stats.exits);
			return;
		}
		bool has = vtimer_next(&vm->plat.timers, &deadline);
		bool console = vm->console_open_fn && vm->console_open_fn(vm->console_ctx);
		if (!has && !console) {
			vm_set_stop(vm, VM_STOP_HALTED, "guest halted at exit %" PRIu64 " (RIP 0x%" PRIx64
				 ") with no timer armed and no console input to wake it",
				 vm->stats.exits, guest_rip(vm));
			return;
		}
		vm->stats.halts_waited++;
		if (vm->nd->ops->idle_wait)
			vm->nd->ops->idle_wait(vm->nd, has, deadline);
	}
}

static void check_device_stops(struct vm *vm)
{
	uint32_t v;
	if (debug_exit_requested(&vm->plat.dbg, &v)) {
		vm->guest_code = v;
		vm_set_stop(vm, VM_STOP_DEBUG_EXIT, "guest wrote 0x%x to the debug-exit port 0x%x at exit %" PRIu64,
			 v, DEV_DEBUG_EXIT, vm->stats.exits);
	} else if (poweroff_requested(&vm->plat.dbg)) {
		vm_set_stop(vm, VM_STOP_POWEROFF, "guest powered off at exit %" PRIu64, vm->stats.exits);
	}
}

static void report_guest_error(struct vm *vm, struct kvm_run *run, const char *what)
{
	char bytes[80];
	uint64_t rip = guest_rip(vm);
	insn_bytes(vm, rip, bytes, sizeof(bytes));
	vm_set_stop(vm, VM_STOP_GUEST_ERROR, "%s at RIP 0x%" PRIx64 " after exit %" PRIu64
		 " (exit reason %u, suberror %u; instruction bytes: %s)", what, rip,
		 vm->stats.exits, run->exit_reason,
		 run->exit_reason == KVM_EXIT_INTERNAL_ERROR ? run->internal.suberror : 0,
		 bytes[0] ? bytes : "unreadable");
}

/*
 * A stop was requested.  A recording ends with the final digests of the
 * state its replay stops at: after the last exit, or at a landmark the
 * recorder writes where the guest is (recorder_end).  Without a
 * progress counter there is no landmark, so a recording between exits
 * first runs the guest on to its next synchronous exit.  A second signal
 * stops it where it is: a guest that makes no exits cannot hold the user
 * hostage (its recording then ends without final digests).
 */
static bool stop_waits_for_exit(struct vm *vm, struct kvm_run *run)
{
	if (!vm->defer_async || !vm->between_exits || vm_stop_signals >= 2)
		return false;
	if (!vm->stop_wait_reported) {
		vm->stop_wait_reported = true;
		fprintf(stderr, "detvm: stopping at the guest's next exit (signal again to stop now)\n");
	}
	/* The handler set immediate_exit: clear it so that the guest runs.  A
	 * signal that comes after this sets it again. */
	int seen = vm_stop_signals;
	run->immediate_exit = 0;
	return seen == vm_stop_signals;
}

int vm_run(struct vm *vm)
{
	struct kvm_run *run = vm->kvm.run;
	char err[256];
	uint64_t t0 = nd_host_mono_ns();

	current_run = run;
	if (!run)
		return 0;
	if (vm->host_timer && !vm->timer_created && setup_host_timer(vm, err, sizeof(err))) {
		vm_set_stop(vm, VM_STOP_MONITOR_ERROR, "%s", err);
		return 0;
	}
	if (vm->resume_replay && vm->hooks.replay_async) {
		/* Restored from a checkpoint taken where the recording's run
		 * loop was about to enter the guest: what the trace has there
		 * (a forced exit's landmark, its deliveries) comes first. */
		vm->resume_replay = false;
		vm->hooks.replay_async(vm->hooks.ctx, vm, true);
	}

	while (!vm->stop) {
		uint64_t deadline;
		if (vm->stop_at_set && vm->stats.exits >= vm->stop_at_exit) {
			vm_set_stop(vm, VM_STOP_REACHED, "reached exit %" PRIu64, vm->stats.exits);
			break;
		}
		/* The one point where every event of the last exit is in the
		 * trace and the guest is about to run: checkpoints are taken here. */
		if (vm->hooks.before_run) {
			vm->hooks.before_run(vm->hooks.ctx, vm);
			if (vm->stop)
				break;
		}
		/* Not at a point with an exception in flight either: the
		 * recording's last forced exit goes there (recorder_end). */
		if (vm_stop_requested && !vm->kick_retries && !stop_waits_for_exit(vm, run)) {
			vm->stop_signal = vm_stop_requested;
			vm_set_stop(vm, VM_STOP_SIGNAL, "stopped by signal %d (%s) after exit %" PRIu64,
				 vm->stop_signal, strsignal(vm->stop_signal), vm->stats.exits);
			break;
		}
		if (vm->host_timer && vm->kick_retries) {
			/* Relative: the deadline that was due is due still. */
			run->immediate_exit = 0;
			if (settime(vm, 0, true, VM_KICK_RETRY_NS)) {
				vm_set_stop(vm, VM_STOP_MONITOR_ERROR, "arming the host timer after exit %" PRIu64,
					    vm->stats.exits);
				break;
			}
			vm->timer_armed = false;
		} else if (vm->host_timer) {
			bool has = vtimer_next(&vm->plat.timers, &deadline);
			/* An expired timer is handled at the guest's next exit
			 * (the asynchronous phase after every exit polls the
			 * timers); the guest is kicked only if it runs that long
			 * past the deadline without one (kick_bound_ns). */
			if (has)
				deadline = deadline > UINT64_MAX - vm->kick_bound_ns ? UINT64_MAX
										      : deadline + vm->kick_bound_ns;
			if (vm->kick_bound_ns && vm->console_open_fn && vm->console_open_fn(vm->console_ctx)) {
				/* Input may arrive while the guest runs without
				 * exits: look at least every kick_bound_ns. */
				uint64_t now = nd_host_mono_ns() - vm->timer_base_mono_ns;
				uint64_t lim = now + vm->kick_bound_ns;
				if (!has || deadline > lim) {
					/* Round so that the timer is not re-armed at every exit. */
					deadline = (lim / vm->kick_bound_ns + 1) * vm->kick_bound_ns;
					has = true;
				}
			}
			host_timer_set(vm, has, has ? deadline : 0);
		}

		int r = ioctl(vm->kvm.vcpu_fd, KVM_RUN, 0);
		run->immediate_exit = 0;
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				vm_kick_consume();
				after_async_exit(vm, run);
				continue;
			}
			vm_set_stop(vm, VM_STOP_MONITOR_ERROR, "KVM_RUN after exit %" PRIu64 ": %s",
				 vm->stats.exits, strerror(errno));
			break;
		}

		vm->kick_retries = 0; /* the guest ran on to an exit */
		struct vm_exit x = { .count = 1 };
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			if (run->io.size != 1 && run->io.size != 2 && run->io.size != 4) {
				report_guest_error(vm, run, "port I/O of impossible size");
				continue;
			}
			if (run->io.data_offset >= vm->kvm.run_size ||
			    (uint64_t)run->io.size * run->io.count > vm->kvm.run_size - run->io.data_offset) {
				vm_set_stop(vm, VM_STOP_MONITOR_ERROR, "KVM reported port I/O data outside the run area");
				continue;
			}
			x.kind = VMX_IO;
			x.write = run->io.direction == KVM_EXIT_IO_OUT;
			x.size = run->io.size;
			x.addr = run->io.port;
			x.count = run->io.count;
			x.string = run->io.count != 1;
			if (x.write)
				x.value = bus_le_get((uint8_t *)run + run->io.data_offset, x.size);
			handle_sync_exit(vm, run, &x);
			break;
		case KVM_EXIT_MMIO:
			if (run->mmio.len == 0 || run->mmio.len > 8) {
				report_guest_error(vm, run, "MMIO access of impossible size");
				continue;
			}
			x.kind = VMX_MMIO;
			x.write = run->mmio.is_write;
			x.size = (uint8_t)run->mmio.len;
			x.addr = run->mmio.phys_addr;
			if (x.write)
				x.value = bus_le_get(run->mmio.data, x.size);
			handle_sync_exit(vm, run, &x);
			break;
		case KVM_EXIT_X86_RDMSR:
		case KVM_EXIT_X86_WRMSR:
			x.kind = VMX_MSR;
			x.write = run->exit_reason == KVM_EXIT_X86_WRMSR;
			x.size = 8;
			x.addr = run->msr.index;
			x.value = x.write ? run->msr.data : 0;
			handle_sync_exit(vm, run, &x);
			break;
		case KVM_EXIT_HLT:
			x.kind = VMX_HLT;
			handle_sync_exit(vm, run, &x);
			check_device_stops(vm);
			if (vm->stop)
				break;
			if (!run->if_flag) {
				vm_set_stop(vm, VM_STOP_HALTED, "guest halted with interrupts disabled at exit %" PRIu64
					 " (RIP 0x%" PRIx64 "): nothing can wake it", vm->stats.exits, guest_rip(vm));
				break;
			}
			idle(vm, run);
			continue;
		case KVM_EXIT_IRQ_WINDOW_OPEN:
		case KVM_EXIT_INTR:
			after_async_exit(vm, run);
			continue;
		case KVM_EXIT_SHUTDOWN:
			vm_set_stop(vm, VM_STOP_TRIPLE_FAULT, "guest triple-faulted (KVM_EXIT_SHUTDOWN) after exit %"
				 PRIu64 ", RIP 0x%" PRIx64, vm->stats.exits, guest_rip(vm));
			continue;
		case KVM_EXIT_INTERNAL_ERROR:
			report_guest_error(vm, run, "KVM could not emulate the guest's instruction");
			continue;
		case KVM_EXIT_FAIL_ENTRY:
			vm_set_stop(vm, VM_STOP_GUEST_ERROR, "KVM could not enter the guest (hardware reason 0x%llx) after exit %"
				 PRIu64, (unsigned long long)run->fail_entry.hardware_entry_failure_reason, vm->stats.exits);
			continue;
		case KVM_EXIT_SYSTEM_EVENT:
			vm_set_stop(vm, VM_STOP_POWEROFF, "KVM system event %u after exit %" PRIu64,
				 run->system_event.type, vm->stats.exits);
			continue;
		default:
			report_guest_error(vm, run, "unexpected KVM exit");
			continue;
		}
		if (vm->stop)
			break;
		check_device_stops(vm);
		if (vm->stop)
			break;
		after_sync_exit(vm, run, x.kind == VMX_IO && x.addr >= DEV_COM1_PORT && x.addr < DEV_COM1_PORT + 8);
	}
	host_timer_set(vm, false, 0);
	vm->stats.seconds = (double)(nd_host_mono_ns() - t0) / 1e9;
	if (vm->serial_out && vm->serial_out_ok && fflush(vm->serial_out) == EOF) {
		vm->serial_out_ok = false;
		vm->serial_out_errno = errno;
	}
	current_run = NULL;
	return 0;
}

const char *vm_stop_name(enum vm_stop s)
{
	switch (s) {
	case VM_STOP_NONE: return "running";
	case VM_STOP_POWEROFF: return "poweroff";
	case VM_STOP_DEBUG_EXIT: return "debug-exit";
	case VM_STOP_TRIPLE_FAULT: return "triple-fault";
	case VM_STOP_HALTED: return "halted";
	case VM_STOP_SIGNAL: return "interrupted";
	case VM_STOP_GUEST_ERROR: return "guest-error";
	case VM_STOP_MONITOR_ERROR: return "monitor-error";
	case VM_STOP_DIVERGENCE: return "divergence";
	case VM_STOP_TRACE_END: return "end-of-recording";
	case VM_STOP_REACHED: return "reached";
	case VM_STOP_OVERSHOT: return "overshot";
	}
	return "?";
}

int vm_exit_status(const struct vm *vm)
{
	switch (vm->stop) {
	case VM_STOP_POWEROFF: return 0;
	case VM_STOP_DEBUG_EXIT: return (int)(((vm->guest_code << 1) | 1) & 0xff);
	case VM_STOP_TRIPLE_FAULT: return 4;
	case VM_STOP_GUEST_ERROR: return 6;
	case VM_STOP_HALTED: return VM_STATUS_HALTED;
	case VM_STOP_DIVERGENCE: return 10;
	case VM_STOP_TRACE_END: return 0;
	case VM_STOP_REACHED: return 0;
	case VM_STOP_OVERSHOT: return 2; /* only seen by a caller that does not rewind */
	case VM_STOP_SIGNAL: return 128 + vm->stop_signal;
	case VM_STOP_MONITOR_ERROR:
	case VM_STOP_NONE:
		return 2;
	}
	return 2;
}
