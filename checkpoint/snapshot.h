/*
 * snapshot.h - the whole machine to and from a checkpoint.
 *
 * A checkpoint is taken at the top of the run loop (vm_hooks.before_run):
 * exit N has been handled completely and the guest is about to run again.
 * It holds the vCPU (vmm/vcpu_state.h), every device's state (the plain
 * structs platform_state_refs() names), guest RAM and the disk overlay.
 *
 * RAM: the first capture is full (every non-zero page: only pages the host
 * has resident can be non-zero, so mincore() bounds the scan); later ones
 * take the pages written since the previous capture, from KVM's dirty log
 * (the guest's writes) and guest_mem's own bitmap (the monitor's writes,
 * virtio DMA).  The VM must have been created with vm_config.dirty_log.
 *
 * Restoring goes into a fresh VM created with the recording's
 * configuration: RAM is cleared, then the checkpoint's pages written; the
 * progress counter is offset so that it continues the recording vCPU's.
 */
#ifndef DETVM_SNAPSHOT_H
#define DETVM_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint/ckpt_db.h"
#include "vmm/vm.h"

/*
 * Capture vm's state (vcpu, devices, pages, blocks) into a new capture;
 * the caller fills in the ordinals and times.  NULL with a message.
 */
struct ckpt_capture *snapshot_capture(struct vm *vm, bool full, char *err, size_t errlen);

/* Device state blob: "DDEV", u32 version, u32 count, { u8 name length, name,
 * u32 size, bytes } per device, u64 XXH3-64 of all before it. */
int snapshot_devices_save(struct vm *vm, uint8_t **blob, size_t *len);
/* Checked in full before anything changes; then the timers are re-armed. */
int snapshot_devices_restore(struct vm *vm, const uint8_t *blob, size_t len,
			     char *err, size_t errlen);

/* Restore checkpoint ci of db into vm (fresh, same configuration). */
int snapshot_restore(struct vm *vm, struct ckpt_db *db, const struct ckpt_info *ci,
		     char *err, size_t errlen);

#endif
