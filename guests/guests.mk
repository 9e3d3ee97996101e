# guests/guests.mk - the test guests (included by the top-level Makefile).
#
# Every guests/NAME.c becomes build/guests/NAME.elf: a freestanding 64-bit
# ELF linked at 1 MiB with guests/link.ld, bootable both by detvm's 64-bit
# ELF entry and as a multiboot v1 kernel (QEMU -kernel; a.out kludge).
# Integer-only code for baseline x86-64, and never an int3 instruction
# (guests/check-int3.sh runs on every link).

BUILD         ?= build
GUEST_CC      := gcc
GUEST_DIR     := guests
GUEST_OBJDIR  := $(BUILD)/guests/obj
GUEST_CFLAGS  := -std=gnu11 -ffreestanding -mgeneral-regs-only -mno-red-zone \
                 -fno-pic -fno-pie -nostdlib -fno-stack-protector \
                 -fno-asynchronous-unwind-tables -fno-unwind-tables -fno-builtin \
                 -fno-tree-loop-distribute-patterns -fcf-protection=none \
                 -O2 -g -Wall -Wextra -Werror -MMD -MP -I.
GUEST_ASFLAGS := -ffreestanding -fno-pic -fno-pie -g -Wall -Werror -MMD -MP -I.
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none \
                 -Wl,-z,max-page-size=0x1000 -Wl,--no-warn-rwx-segments \
                 -T $(GUEST_DIR)/link.ld

GUEST_RT_SRCS := $(sort $(wildcard $(GUEST_DIR)/rt/*.c $(GUEST_DIR)/rt/*.S))
GUEST_RT_OBJS := $(patsubst $(GUEST_DIR)/%,$(GUEST_OBJDIR)/%.o,$(GUEST_RT_SRCS))
GUEST_SRCS    := $(sort $(wildcard $(GUEST_DIR)/*.c))
GUEST_NAMES   := $(GUEST_SRCS:$(GUEST_DIR)/%.c=%)
GUEST_ELFS    := $(GUEST_NAMES:%=$(BUILD)/guests/%.elf)

.PHONY: guests
guests: $(GUEST_ELFS)

$(GUEST_OBJDIR)/%.c.o: $(GUEST_DIR)/%.c
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(GUEST_OBJDIR)/%.S.o: $(GUEST_DIR)/%.S
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_ASFLAGS) -c $< -o $@

$(BUILD)/guests/%.elf: $(GUEST_OBJDIR)/%.c.o $(GUEST_RT_OBJS) $(GUEST_DIR)/link.ld $(GUEST_DIR)/check-int3.sh
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_LDFLAGS) -o $@.tmp $< $(GUEST_RT_OBJS)
	$(GUEST_DIR)/check-int3.sh $@.tmp || { rm -f $@.tmp; exit 1; }
	mv -f $@.tmp $@

-include $(GUEST_RT_OBJS:.o=.d) $(GUEST_NAMES:%=$(GUEST_OBJDIR)/%.c.d)

# Keep the objects (make would delete them as intermediates of the pattern rules).
.SECONDARY: $(GUEST_RT_OBJS) $(GUEST_NAMES:%=$(GUEST_OBJDIR)/%.c.o)
