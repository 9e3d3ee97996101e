/*
 * triple - load an empty IDT (limit 0) and execute ud2: #UD cannot be
 * delivered (#GP), nor can #GP (#DF), nor #DF: a triple fault.  detvm
 * reports KVM_EXIT_SHUTDOWN; QEMU with -no-reboot exits (status 0).
 * Nothing is printed after the fault; if the guest survives it fails.
 */
#include "guests/rt/rt.h"

const char *rt_guest_name = "triple";

void guest_main(struct machine *m)
{
	(void)m;
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) empty = { 0, 0 };
	rt_printf("triple: loading an empty IDT and executing ud2: expect a triple fault\n");
	__asm__ volatile("lidt %0\n\tud2" :: "m"(empty) : "memory");
	rt_idt_init();
	rt_fail("survived the triple fault");
}
