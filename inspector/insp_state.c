/* insp_state.c - the machine at an exit: `inspect regs`, `mem`, `diff`. */
#include "inspector/insp_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG ((uint64_t)4096)

/* ---- registers as a list of named values ---- */

enum reg_kind { R_GP, R_HEX, R_FLAGS, R_SEG, R_CR0, R_CR4, R_EFER, R_TABLE, R_HIDDEN };

struct reg {
	char name[16];
	uint64_t v;
	enum reg_kind kind;
	const struct kvm_segment *seg;	/* R_SEG */
	const struct kvm_dtable *dt;	/* R_TABLE */
};

#define MAX_REGS 96

static size_t add(struct reg *r, size_t n, const char *name, uint64_t v, enum reg_kind k)
{
	snprintf(r[n].name, sizeof(r[n].name), "%s", name);
	r[n].v = v;
	r[n].kind = k;
	r[n].seg = NULL;
	r[n].dt = NULL;
	return n + 1;
}

static uint32_t seg_attr(const struct kvm_segment *s)
{
	return (uint32_t)s->type | (uint32_t)s->s << 4 | (uint32_t)s->dpl << 5 | (uint32_t)s->present << 7 |
	       (uint32_t)s->avl << 12 | (uint32_t)s->l << 13 | (uint32_t)s->db << 14 | (uint32_t)s->g << 15 |
	       (uint32_t)s->unusable << 16;
}

static size_t add_seg(struct reg *r, size_t n, const char *name, const struct kvm_segment *s)
{
	char nm[16];
	n = add(r, n, name, s->selector, R_SEG);
	r[n - 1].seg = s;
	snprintf(nm, sizeof(nm), "%s.base", name);
	n = add(r, n, nm, s->base, R_HIDDEN);
	snprintf(nm, sizeof(nm), "%s.limit", name);
	n = add(r, n, nm, s->limit, R_HIDDEN);
	snprintf(nm, sizeof(nm), "%s.attr", name);
	return add(r, n, nm, seg_attr(s), R_HIDDEN);
}

/* gdb's order for the general registers, then the system state. */
static size_t reg_list(const struct kvm_regs *g, const struct kvm_sregs *s, struct reg *r)
{
	size_t n = 0;
	n = add(r, n, "rax", g->rax, R_GP);
	n = add(r, n, "rbx", g->rbx, R_GP);
	n = add(r, n, "rcx", g->rcx, R_GP);
	n = add(r, n, "rdx", g->rdx, R_GP);
	n = add(r, n, "rsi", g->rsi, R_GP);
	n = add(r, n, "rdi", g->rdi, R_GP);
	n = add(r, n, "rbp", g->rbp, R_HEX);
	n = add(r, n, "rsp", g->rsp, R_HEX);
	n = add(r, n, "r8", g->r8, R_GP);
	n = add(r, n, "r9", g->r9, R_GP);
	n = add(r, n, "r10", g->r10, R_GP);
	n = add(r, n, "r11", g->r11, R_GP);
	n = add(r, n, "r12", g->r12, R_GP);
	n = add(r, n, "r13", g->r13, R_GP);
	n = add(r, n, "r14", g->r14, R_GP);
	n = add(r, n, "r15", g->r15, R_GP);
	n = add(r, n, "rip", g->rip, R_HEX);
	n = add(r, n, "eflags", g->rflags, R_FLAGS);
	n = add_seg(r, n, "cs", &s->cs);
	n = add_seg(r, n, "ss", &s->ss);
	n = add_seg(r, n, "ds", &s->ds);
	n = add_seg(r, n, "es", &s->es);
	n = add_seg(r, n, "fs", &s->fs);
	n = add_seg(r, n, "gs", &s->gs);
	n = add(r, n, "fs_base", s->fs.base, R_GP);
	n = add(r, n, "gs_base", s->gs.base, R_GP);
	n = add_seg(r, n, "tr", &s->tr);
	n = add_seg(r, n, "ldtr", &s->ldt);
	n = add(r, n, "gdtr", s->gdt.base, R_TABLE);
	r[n - 1].dt = &s->gdt;
	n = add(r, n, "gdtr.limit", s->gdt.limit, R_HIDDEN);
	n = add(r, n, "idtr", s->idt.base, R_TABLE);
	r[n - 1].dt = &s->idt;
	n = add(r, n, "idtr.limit", s->idt.limit, R_HIDDEN);
	n = add(r, n, "cr0", s->cr0, R_CR0);
	n = add(r, n, "cr2", s->cr2, R_HEX);
	n = add(r, n, "cr3", s->cr3, R_HEX);
	n = add(r, n, "cr4", s->cr4, R_CR4);
	n = add(r, n, "cr8", s->cr8, R_HEX);
	n = add(r, n, "efer", s->efer, R_EFER);
	n = add(r, n, "apic_base", s->apic_base, R_HEX);
	return n;
}

static void flag_names(uint64_t v, const char *const *names, unsigned nbits, char *out, size_t outlen)
{
	size_t p = (size_t)snprintf(out, outlen, "[");
	for (unsigned b = 0; b < nbits && p < outlen; b++)
		if ((v >> b) & 1 && names[b])
			p += (size_t)snprintf(out + p, outlen - p, " %s", names[b]);
	if (p < outlen)
		snprintf(out + p, outlen - p, " ]");
}

static const char *const eflags_bits[22] = {
	"CF", NULL, "PF", NULL, "AF", NULL, "ZF", "SF", "TF", "IF", "DF", "OF",
	NULL, NULL, "NT", NULL, "RF", "VM", "AC", "VIF", "VIP", "ID",
};
static const char *const cr0_bits[32] = {
	"PE", "MP", "EM", "TS", "ET", "NE", [16] = "WP", [18] = "AM", [29] = "NW", [30] = "CD", [31] = "PG",
};
static const char *const cr4_bits[25] = {
	"VME", "PVI", "TSD", "DE", "PSE", "PAE", "MCE", "PGE", "PCE", "OSFXSR", "OSXMMEXCPT", "UMIP",
	"LA57", "VMXE", "SMXE", NULL, "FSGSBASE", "PCIDE", "OSXSAVE", NULL, "SMEP", "SMAP", "PKE",
	"CET", "PKS",
};
static const char *const efer_bits[16] = {
	"SCE", [8] = "LME", [10] = "LMA", [11] = "NXE", [12] = "SVME", [13] = "LMSLE", [14] = "FFXSR", [15] = "TCE",
};

static void print_reg(const struct reg *r)
{
	char hex[24], rest[200];
	snprintf(hex, sizeof(hex), "0x%" PRIx64, r->v);
	rest[0] = 0;
	switch (r->kind) {
	case R_GP:
		snprintf(rest, sizeof(rest), "%" PRId64, (int64_t)r->v);
		break;
	case R_HEX:
		snprintf(rest, sizeof(rest), "%s", hex);
		break;
	case R_FLAGS: {
		char f[160];
		flag_names(r->v, eflags_bits, 22, f, sizeof(f));
		snprintf(rest, sizeof(rest), "%s IOPL=%u", f, (unsigned)(r->v >> 12) & 3);
		break;
	}
	case R_CR0:
		flag_names(r->v, cr0_bits, 32, rest, sizeof(rest));
		break;
	case R_CR4:
		flag_names(r->v, cr4_bits, 25, rest, sizeof(rest));
		break;
	case R_EFER:
		flag_names(r->v, efer_bits, 16, rest, sizeof(rest));
		break;
	case R_SEG: {
		const struct kvm_segment *s = r->seg;
		snprintf(rest, sizeof(rest), "base 0x%" PRIx64 " limit 0x%x type 0x%x%s dpl %u%s%s%s%s", (uint64_t)s->base,
			 s->limit, s->type, s->s ? "" : " system", s->dpl, s->present ? "" : " not-present",
			 s->l ? " 64-bit" : s->db ? " 32-bit" : "", s->g ? " 4k-granular" : "",
			 s->unusable ? " unusable" : "");
		break;
	}
	case R_TABLE:
		snprintf(rest, sizeof(rest), "limit 0x%x", r->dt->limit);
		break;
	case R_HIDDEN:
		return;
	}
	printf("%-15s%-19s %s\n", r->name, hex, rest);
}

/* Exactly n --at values; each within the recording. */
static int need_at(struct insp *in, int n)
{
	const struct inspect_opts *o = in->o;
	if (o->nat < n) {
		insp_err(n == 1 ? "needs --at EXIT (which exit's state to show)" : "needs --at A --at B (the two exits to compare)");
		return INSPECT_ERROR;
	}
	if (o->nat > n) {
		insp_err("takes one --at (diff compares two exits)");
		return INSPECT_ERROR;
	}
	return INSPECT_OK;
}

static int open_and_check(struct insp *in)
{
	int st = insp_open_session(in);
	if (st)
		return st;
	for (int i = 0; i < in->o->nat; i++)
		if (insp_check_exit(in, "--at", in->o->at[i]))
			return INSPECT_ERROR;
	return INSPECT_OK;
}

static int cpu_at(struct insp *in, uint64_t exit, struct kvm_regs *g, struct kvm_sregs *s)
{
	char err[300];
	int st = insp_goto(in, exit);
	if (st)
		return st;
	if (insp_get_cpu(&in->s->vm, g, s, err, sizeof(err))) {
		insp_err("at exit %" PRIu64 ": %s", exit, err);
		return INSPECT_ERROR;
	}
	return INSPECT_OK;
}

int insp_cmd_regs(struct insp *in)
{
	struct kvm_regs g;
	struct kvm_sregs s;
	struct reg r[MAX_REGS];
	int st = need_at(in, 1);
	if (st || (st = open_and_check(in)) || (st = cpu_at(in, in->o->at[0], &g, &s)))
		return st;
	size_t n = reg_list(&g, &s, r);
	for (size_t i = 0; i < n; i++)
		print_reg(&r[i]);
	return INSPECT_OK;
}

/* ---- memory ---- */

static void hexdump(uint64_t addr, const uint8_t *p, size_t len)
{
	char line[100];
	for (size_t off = 0; off < len; off += 16) {
		size_t n = len - off < 16 ? len - off : 16, pos;
		pos = (size_t)snprintf(line, sizeof(line), "%016" PRIx64 " ", addr + off);
		for (size_t i = 0; i < 16; i++) {
			if (i == 8)
				line[pos++] = ' ';
			if (i < n)
				pos += (size_t)snprintf(line + pos, sizeof(line) - pos, " %02x", p[off + i]);
			else
				pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "   ");
		}
		pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "  |");
		for (size_t i = 0; i < n; i++) {
			uint8_t c = p[off + i];
			line[pos++] = c >= 0x20 && c < 0x7f ? (char)c : '.';
		}
		line[pos++] = '|';
		line[pos++] = '\n';
		if (fwrite(line, 1, pos, stdout) != pos)
			return;
	}
}

/* Copy guest-virtual [va, va + len) through the vCPU's page tables. */
static int read_virtual(struct insp *in, uint64_t va, uint64_t len, uint8_t *out)
{
	struct vm *vm = &in->s->vm;
	char ram[160];
	uint64_t done = 0;
	while (done < len) {
		uint64_t v = va + done;
		uint64_t chunk = PG - (v & (PG - 1));
		if (chunk > len - done)
			chunk = len - done;
		struct kvm_translation tr = { .linear_address = v };
		if (ioctl(vm->kvm.vcpu_fd, KVM_TRANSLATE, &tr) < 0) {
			insp_err("KVM_TRANSLATE of virtual address 0x%" PRIx64 ": %s", v, strerror(errno));
			return -1;
		}
		if (!tr.valid) {
			insp_err("virtual address 0x%" PRIx64 " is not mapped at exit %" PRIu64, v, in->o->at[0]);
			return -1;
		}
		uint64_t bad;
		const uint8_t *p = insp_phys(&vm->mem, tr.physical_address, chunk, &bad);
		if (!p) {
			insp_ram_desc(&vm->mem, ram, sizeof(ram));
			insp_err("virtual address 0x%" PRIx64 " maps to physical 0x%" PRIx64 ", which is not guest RAM (%s)",
				 v, (uint64_t)tr.physical_address, ram);
			return -1;
		}
		memcpy(out + done, p, chunk);
		done += chunk;
	}
	return 0;
}

int insp_cmd_mem(struct insp *in)
{
	const struct inspect_opts *o = in->o;
	uint64_t addr, len;
	char ram[160];
	int st;

	if (o->nargs != 2) {
		insp_err("needs ADDR and LEN (see 'detvm inspect mem --help')");
		return INSPECT_ERROR;
	}
	if (insp_parse_num(o->args[0], false, &addr)) {
		insp_err("ADDR '%s' is not an address (decimal, or hexadecimal with 0x)", o->args[0]);
		return INSPECT_ERROR;
	}
	if (insp_parse_num(o->args[1], true, &len)) {
		insp_err("LEN '%s' is not a length (decimal or 0x hexadecimal, optionally K, M or G)", o->args[1]);
		return INSPECT_ERROR;
	}
	if (len == 0 || len > INSPECT_MEM_MAX) {
		insp_err("LEN %" PRIu64 ": must be 1..%llu (64 MiB)", len, (unsigned long long)INSPECT_MEM_MAX);
		return INSPECT_ERROR;
	}
	if (addr + len < addr) {
		insp_err("ADDR 0x%" PRIx64 " + LEN %" PRIu64 " is past the end of the address space", addr, len);
		return INSPECT_ERROR;
	}
	if ((st = need_at(in, 1)) || (st = open_and_check(in)) || (st = insp_goto(in, o->at[0])))
		return st;
	const struct guest_mem *gm = &in->s->vm.mem;
	const uint8_t *p;
	uint8_t *buf = NULL;
	if (o->virt) {
		buf = malloc(len);
		if (!buf) {
			insp_err("out of memory for %" PRIu64 " bytes", len);
			return INSPECT_ERROR;
		}
		if (read_virtual(in, addr, len, buf)) {
			free(buf);
			return INSPECT_ERROR;
		}
		p = buf;
	} else {
		uint64_t bad;
		p = insp_phys(gm, addr, len, &bad);
		if (!p) {
			insp_ram_desc(gm, ram, sizeof(ram));
			if (bad == addr)
				insp_err("physical address 0x%" PRIx64 " is not guest RAM (%s)", bad, ram);
			else
				insp_err("physical range 0x%" PRIx64 "-0x%" PRIx64 " leaves guest RAM at 0x%" PRIx64 " (%s)",
					 addr, addr + len - 1, bad, ram);
			return INSPECT_ERROR;
		}
	}
	if (o->raw)
		fwrite(p, 1, len, stdout);
	else
		hexdump(addr, p, len);
	free(buf);
	return INSPECT_OK;
}

/* ---- diff ---- */

static void print_range(const struct guest_mem *gm, uint64_t first_off, uint64_t pages, uint64_t bytes)
{
	uint64_t g0 = gm_offset_to_gpa(gm, first_off), g1 = gm_offset_to_gpa(gm, first_off + (pages - 1) * PG);
	char gfns[64];
	if (pages == 1)
		snprintf(gfns, sizeof(gfns), "gfn 0x%" PRIx64, g0 / PG);
	else
		snprintf(gfns, sizeof(gfns), "gfn 0x%" PRIx64 "-0x%" PRIx64, g0 / PG, g1 / PG);
	printf("  %-28s %6" PRIu64 " page%s %8" PRIu64 " bytes changed  (0x%" PRIx64 "-0x%" PRIx64 ")\n", gfns, pages,
	       pages == 1 ? " " : "s", bytes, g0, g1 + PG - 1);
}

int insp_cmd_diff(struct insp *in)
{
	const struct inspect_opts *o = in->o;
	struct kvm_regs ga, gb;
	struct kvm_sregs sa, sb;
	struct reg ra[MAX_REGS], rb[MAX_REGS];
	int st;

	if ((st = need_at(in, 2)) || (st = open_and_check(in)) || (st = cpu_at(in, o->at[0], &ga, &sa)))
		return st;
	/* A copy of A's RAM: only non-zero pages are written, so that the
	 * copy costs what the guest really uses. */
	const struct guest_mem *gm = &in->s->vm.mem;
	uint64_t size = gm->size;
	uint8_t *copy = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (copy == MAP_FAILED) {
		insp_err("mmap of %" PRIu64 " bytes for a copy of guest RAM: %s", size, strerror(errno));
		return INSPECT_ERROR;
	}
	for (uint64_t off = 0; off < size; off += PG)
		if (!gm_page_is_zero(gm->host + off))
			memcpy(copy + off, gm->host + off, PG);
	if ((st = cpu_at(in, o->at[1], &gb, &sb))) {
		munmap(copy, size);
		return st;
	}
	gm = &in->s->vm.mem;

	printf("exit %" PRIu64 " -> exit %" PRIu64 "\n", o->at[0], o->at[1]);
	size_t n = reg_list(&ga, &sa, ra);
	reg_list(&gb, &sb, rb);
	unsigned nreg = 0;
	for (size_t i = 0; i < n; i++)
		if (ra[i].v != rb[i].v) {
			char a[24], b[24];
			if (!nreg++) {
				snprintf(a, sizeof(a), "exit %" PRIu64, o->at[0]);
				snprintf(b, sizeof(b), "exit %" PRIu64, o->at[1]);
				printf("registers that differ:\n  %-15s%-21s%s\n", "register", a, b);
			}
			snprintf(a, sizeof(a), "0x%" PRIx64, ra[i].v);
			snprintf(b, sizeof(b), "0x%" PRIx64, rb[i].v);
			printf("  %-15s%-21s%s\n", ra[i].name, a, b);
		}
	if (!nreg)
		printf("registers: identical\n");

	uint64_t pages = 0, bytes = 0, ranges = 0;
	uint64_t r_first = 0, r_pages = 0, r_bytes = 0;
	bool header = false;
	for (uint64_t off = 0; off <= size; off += PG) {
		uint64_t changed = 0;
		if (off < size && memcmp(copy + off, gm->host + off, PG)) {
			const uint8_t *x = copy + off, *y = gm->host + off;
			for (size_t i = 0; i < PG; i++)
				changed += x[i] != y[i];
		}
		/* A range continues while pages change and stay contiguous in gpa. */
		bool contiguous = r_pages && off < size &&
				  gm_offset_to_gpa(gm, off) == gm_offset_to_gpa(gm, r_first) + r_pages * PG;
		if (r_pages && (!changed || !contiguous)) {
			if (!header) {
				header = true;
				printf("changed physical pages:\n");
			}
			print_range(gm, r_first, r_pages, r_bytes);
			ranges++;
			r_pages = 0;
		}
		if (changed) {
			if (!r_pages) {
				r_first = off;
				r_bytes = 0;
			}
			r_pages++;
			r_bytes += changed;
			pages++;
			bytes += changed;
		}
	}
	munmap(copy, size);
	if (pages)
		printf("memory: %" PRIu64 " page%s changed in %" PRIu64 " range%s, %" PRIu64 " bytes changed\n", pages,
		       pages == 1 ? "" : "s", ranges, ranges == 1 ? "" : "s", bytes);
	else
		printf("memory: identical\n");
	return INSPECT_OK;
}
