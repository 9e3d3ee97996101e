/*
 * insp_core.c - `inspect export-core`: the machine at an exit as an ELF64
 * core file that gdb loads (`gdb -c FILE`).
 *
 * Layout: ELF header, program headers (one PT_NOTE, then one PT_LOAD per
 * RAM block: below the 3 GiB hole, and above 4 GiB if the guest has that
 * much), the notes, then each block's memory at a page-aligned offset.
 * Notes, as Linux writes them for a process: NT_PRSTATUS (struct
 * elf_prstatus; pr_reg in struct user_regs_struct order), NT_PRPSINFO, and
 * NT_FPREGSET (struct user_fpregs_struct, the FXSAVE image) when KVM gives
 * the FPU state.  Segments have p_vaddr = p_paddr = the guest physical
 * address: gdb resolves virtual addresses through p_vaddr, which is right
 * for guests that identity-map their memory (ours do) and wrong otherwise.
 * All-zero pages are left as holes (the file is sparse).
 */
#include "inspector/insp_internal.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/procfs.h>
#include <sys/stat.h>
#include <sys/user.h>
#include <unistd.h>

#define PG ((uint64_t)4096)

struct notes {
	uint8_t buf[4096];
	size_t len;
};

static void note(struct notes *n, uint32_t type, const void *desc, size_t desc_len)
{
	Elf64_Nhdr h = { .n_namesz = 5, .n_descsz = (Elf64_Word)desc_len, .n_type = type };
	memcpy(n->buf + n->len, &h, sizeof(h));
	n->len += sizeof(h);
	memcpy(n->buf + n->len, "CORE\0\0\0", 8);	/* "CORE" + NUL, padded to 4 */
	n->len += 8;
	memcpy(n->buf + n->len, desc, desc_len);
	n->len += (desc_len + 3) & ~(size_t)3;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* The notes of the vCPU's state. */
static void build_notes(struct vm *vm, const struct kvm_regs *g, const struct kvm_sregs *s, struct notes *n,
			bool *have_fpu)
{
	struct elf_prstatus ps;
	struct user_regs_struct u;
	struct elf_prpsinfo pi;
	struct kvm_fpu fpu;

	memset(&u, 0, sizeof(u));
	u.r15 = g->r15, u.r14 = g->r14, u.r13 = g->r13, u.r12 = g->r12;
	u.rbp = g->rbp, u.rbx = g->rbx, u.r11 = g->r11, u.r10 = g->r10;
	u.r9 = g->r9, u.r8 = g->r8, u.rax = g->rax, u.rcx = g->rcx;
	u.rdx = g->rdx, u.rsi = g->rsi, u.rdi = g->rdi;
	u.orig_rax = ~0ull;	/* not in a system call */
	u.rip = g->rip, u.cs = s->cs.selector, u.eflags = g->rflags;
	u.rsp = g->rsp, u.ss = s->ss.selector;
	u.fs_base = s->fs.base, u.gs_base = s->gs.base;
	u.ds = s->ds.selector, u.es = s->es.selector, u.fs = s->fs.selector, u.gs = s->gs.selector;

	*have_fpu = ioctl(vm->kvm.vcpu_fd, KVM_GET_FPU, &fpu) == 0;
	memset(&ps, 0, sizeof(ps));
	ps.pr_pid = 1;
	ps.pr_fpvalid = *have_fpu;
	_Static_assert(sizeof(ps.pr_reg) == sizeof(u), "pr_reg is a user_regs_struct");
	memcpy(&ps.pr_reg, &u, sizeof(u));
	n->len = 0;
	note(n, NT_PRSTATUS, &ps, sizeof(ps));

	memset(&pi, 0, sizeof(pi));
	pi.pr_state = 0;
	pi.pr_sname = 'R';
	pi.pr_pid = 1;
	snprintf(pi.pr_fname, sizeof(pi.pr_fname), "detvm-guest");
	snprintf(pi.pr_psargs, sizeof(pi.pr_psargs), "detvm guest (physical memory, identity-mapped)");
	note(n, NT_PRPSINFO, &pi, sizeof(pi));

	if (*have_fpu) {
		struct user_fpregs_struct f;
		memset(&f, 0, sizeof(f));
		f.cwd = fpu.fcw;
		f.swd = fpu.fsw;
		f.ftw = fpu.ftwx;	/* the abridged tag word, as FXSAVE stores it */
		f.fop = fpu.last_opcode;
		f.rip = fpu.last_ip;
		f.rdp = fpu.last_dp;
		f.mxcsr = fpu.mxcsr;
		f.mxcr_mask = 0xffff;
		_Static_assert(sizeof(f.st_space) == sizeof(fpu.fpr), "8 x87 registers of 16 bytes");
		_Static_assert(sizeof(f.xmm_space) == sizeof(fpu.xmm), "16 XMM registers");
		memcpy(f.st_space, fpu.fpr, sizeof(f.st_space));
		memcpy(f.xmm_space, fpu.xmm, sizeof(f.xmm_space));
		note(n, NT_FPREGSET, &f, sizeof(f));
	}
}

int insp_cmd_export_core(struct insp *in)
{
	const struct inspect_opts *o = in->o;
	struct kvm_regs g;
	struct kvm_sregs s;
	struct stat stt;
	char err[300];
	int st;

	if (o->nargs != 1) {
		insp_err("needs the FILE to write (see 'detvm inspect export-core --help')");
		return INSPECT_ERROR;
	}
	const char *path = o->args[0];
	if (o->nat != 1) {
		insp_err(o->nat ? "takes one --at" : "needs --at EXIT (which exit's state to write)");
		return INSPECT_ERROR;
	}
	if (!o->force && lstat(path, &stt) == 0) {
		insp_err("%s exists: choose another name, or --force to overwrite it", path);
		return INSPECT_ERROR;
	}
	if ((st = insp_open_session(in)) || (st = insp_check_exit(in, "--at", o->at[0])) ||
	    (st = insp_goto(in, o->at[0])))
		return st;
	struct vm *vm = &in->s->vm;
	if (insp_get_cpu(vm, &g, &s, err, sizeof(err))) {
		insp_err("at exit %" PRIu64 ": %s", o->at[0], err);
		return INSPECT_ERROR;
	}

	struct notes *notes = calloc(1, sizeof(*notes));
	if (!notes) {
		insp_err("out of memory");
		return INSPECT_ERROR;
	}
	bool have_fpu;
	build_notes(vm, &g, &s, notes, &have_fpu);

	const struct guest_mem *gm = &vm->mem;
	struct { uint64_t gpa, off, size; } blk[2] = {
		{ 0, 0, gm->low_size }, { GM_HIGH_START, gm->low_size, gm->high_size },
	};
	int nblk = gm->high_size ? 2 : 1;
	uint64_t phoff = sizeof(Elf64_Ehdr), notes_off = phoff + (uint64_t)(1 + nblk) * sizeof(Elf64_Phdr);
	uint64_t data_off = (notes_off + notes->len + PG - 1) & ~(PG - 1);

	Elf64_Ehdr eh;
	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
	eh.e_type = ET_CORE;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_phoff = phoff;
	eh.e_ehsize = sizeof(Elf64_Ehdr);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = (Elf64_Half)(1 + nblk);

	Elf64_Phdr ph[3];
	memset(ph, 0, sizeof(ph));
	ph[0].p_type = PT_NOTE;
	ph[0].p_offset = notes_off;
	ph[0].p_filesz = notes->len;
	ph[0].p_align = 4;
	uint64_t off = data_off;
	for (int i = 0; i < nblk; i++) {
		ph[1 + i].p_type = PT_LOAD;
		ph[1 + i].p_flags = PF_R | PF_W | PF_X;
		ph[1 + i].p_offset = off;
		ph[1 + i].p_vaddr = ph[1 + i].p_paddr = blk[i].gpa;
		ph[1 + i].p_filesz = ph[1 + i].p_memsz = blk[i].size;
		ph[1 + i].p_align = PG;
		off += blk[i].size;
	}
	uint64_t total = off;

	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (o->force ? O_TRUNC : O_EXCL), 0644);
	if (fd < 0) {
		insp_err("cannot create %s: %s%s", path, strerror(errno),
			 errno == EEXIST ? " (--force overwrites it)" : "");
		free(notes);
		return INSPECT_ERROR;
	}
	uint64_t written_pages = 0;
	int rc = pwrite_all(fd, &eh, sizeof(eh), 0) || pwrite_all(fd, ph, (size_t)(1 + nblk) * sizeof(Elf64_Phdr), phoff) ||
		 pwrite_all(fd, notes->buf, notes->len, notes_off);
	/* RAM: runs of non-zero pages; zero pages stay holes. */
	for (int i = 0; i < nblk && !rc; i++) {
		const uint8_t *base = gm->host + blk[i].off;
		uint64_t run = 0, run_len = 0;
		for (uint64_t p = 0; p <= blk[i].size && !rc; p += PG) {
			bool nz = p < blk[i].size && !gm_page_is_zero(base + p);
			if (nz) {
				if (!run_len)
					run = p;
				run_len += PG;
				written_pages++;
			}
			if ((!nz || run_len >= (64ull << 20)) && run_len) {
				rc = pwrite_all(fd, base + run, run_len, ph[1 + i].p_offset + run);
				run_len = 0;
			}
		}
	}
	if (!rc && ftruncate(fd, (off_t)total) < 0)
		rc = -1;
	int e = errno;
	if (close(fd) < 0 && !rc) {
		rc = -1;
		e = errno;
	}
	free(notes);
	if (rc) {
		insp_err("writing %s: %s", path, strerror(e ? e : EIO));
		unlink(path);
		return INSPECT_ERROR;
	}
	printf("wrote %s: ELF64 x86-64 core of exit %" PRIu64 ", rip 0x%llx; %d PT_LOAD segment%s (guest physical "
	       "0x0-0x%" PRIx64 "%s), %" PRIu64 " non-zero pages; registers%s\n", path, o->at[0],
	       (unsigned long long)g.rip, nblk, nblk == 1 ? "" : "s", gm->low_size - 1,
	       nblk == 2 ? " and above 4 GiB" : "", written_pages, have_fpu ? " and FPU/SSE state" : "");
	return INSPECT_OK;
}
