/*
 * landmark.h - bring the vCPU to an exact point between two exits: the
 * instant where the progress counter (insn_emulation, see vmm/progress.h)
 * has a given value.  Fast and exact, as measured on these hosts: let the
 * guest run with a one-shot host timer at about half the remaining time
 * (estimated at <= 400 ns per instruction), repeatedly, then single-step the
 * last <= 1000 instructions.  Single-stepping over IRETQ also executes the
 * next instruction, so a last step onto an IRETQ is done with a hardware
 * breakpoint on the recorded RIP instead.  There is no stepping back: an
 * overshoot is a divergence.
 */
#ifndef DETVM_LANDMARK_H
#define DETVM_LANDMARK_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/vm.h"

/* 0: reached, RIP and register hash checked.  -1: divergence, message in err. */
int landmark_reach(struct vm *vm, uint64_t target, uint64_t rip, uint64_t regs_hash,
		   char *err, size_t errlen);

#endif
